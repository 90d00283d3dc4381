"""synthetic camera -> depth -> metric cloud -> grasps -> plan -> simulated arm (config/graphs/simulation.yaml).

    ros2 launch dkt_stack simulation.launch.py --show-args
"""

from dkt_stack.launch_adapter import graph_launch_description


def generate_launch_description():
    return graph_launch_description("simulation")
