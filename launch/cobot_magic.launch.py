"""front D435 -> DKT depth -> metric cloud -> grasps, plans and PiPER arms (left and right) (config/graphs/cobot_magic.yaml).

    ros2 launch dkt_stack cobot_magic.launch.py --show-args
"""

from dkt_stack.launch_adapter import graph_launch_description


def generate_launch_description():
    return graph_launch_description("cobot_magic")
