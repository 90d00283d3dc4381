"""A D435 + one PiPER arm (+ calibration_node) for hand-eye calibration (config/graphs/calibration.yaml).

    ros2 launch dkt_stack calibration.launch.py arm:=left mode:=eye_to_hand camera_serial:=123456789
    ros2 launch dkt_stack calibration.launch.py --show-args
"""

from dkt_stack.launch_adapter import graph_launch_description


def generate_launch_description():
    return graph_launch_description("calibration")
