"""Depth and metric nodes on a played rosbag's topics and clock (config/graphs/replay.yaml).

    dkt-stack replay my_bag --play &   # or: ros2 bag play my_bag --clock
    ros2 launch dkt_stack replay.launch.py backend:=dkt
"""

from dkt_stack.launch_adapter import graph_launch_description


def generate_launch_description():
    return graph_launch_description("replay")
