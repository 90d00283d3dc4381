"""Camera -> DKT depth -> AprilTag metric depth -> point cloud (config/graphs/perception.yaml).

    ros2 launch dkt_stack perception.launch.py backend:=dkt camera_serial:=123456789
    ros2 launch dkt_stack perception.launch.py --show-args
"""

from dkt_stack.launch_adapter import graph_launch_description


def generate_launch_description():
    return graph_launch_description("perception")
