"""MuJoCo Cobot Magic (D435, two PiPER arms) -> depth -> metric cloud -> grasps and plans per arm (config/graphs/cobot_magic_sim.yaml).

    ros2 launch dkt_stack cobot_magic_sim.launch.py --show-args
"""

from dkt_stack.launch_adapter import graph_launch_description


def generate_launch_description():
    return graph_launch_description("cobot_magic_sim")
