"""dkt_stack: an ament_python ROS 2 package that also installs with pip.

Python packages: dkt_stack (shared: CLI, config, graph, conversions),
dkt_perception, dkt_grasping, dkt_sim (MuJoCo simulation of the rig), and dkt_training (kept in ./training).
Dependencies are listed in requirements*.txt, not install_requires, so that
`colcon build` on the rig never pip-installs over the system's ROS or the
user's CUDA torch (see README, "Rig install").
"""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "dkt_stack"

# Node executables: one console script per node (ros2 run dkt_stack <name>).
NODES = {
    "camera_node": "dkt_perception.nodes.camera_node:main",
    "depth_node": "dkt_perception.nodes.depth_node:main",
    "metric_depth_node": "dkt_perception.nodes.metric_depth_node:main",
    "grasp_node": "dkt_grasping.nodes.grasp_node:main",
    "planner_node": "dkt_grasping.nodes.planner_node:main",
    "arm_node": "dkt_grasping.nodes.arm_node:main",
    "trial_node": "dkt_grasping.nodes.trial_node:main",
    "sim_node": "dkt_sim.nodes.sim_node:main",
    "calibration_node": "dkt_grasping.nodes.calibration_node:main",
    "static_tf_node": "dkt_stack.nodes.static_tf_node:main",
}


def tree(src: str, dst: str) -> list[tuple[str, list[str]]]:
    """data_files entries installing every file under src into share/<pkg>/dst."""
    entries = {}
    for path in sorted(Path(src).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            target = str(Path("share", PACKAGE, dst, path.parent.relative_to(src)))
            entries.setdefault(target, []).append(str(path))
    return sorted(entries.items())


training_packages = ["dkt_training"] + [f"dkt_training.{p}" for p in find_packages("training")]

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["dkt_stack", "dkt_stack.*", "dkt_perception", "dkt_perception.*", "dkt_grasping", "dkt_grasping.*", "dkt_sim", "dkt_sim.*"])
    + training_packages,
    package_dir={"dkt_training": "training"},
    # model configs and the robot description ship inside the packages (never fetched at run time)
    package_data={"": ["*.json", "*.yaml", "*.urdf", "*.txt", "**/*.json"]},
    include_package_data=True,
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        *tree("config", "config"),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="dkt_stack maintainers",
    maintainer_email="dkt-stack@example.org",
    description="ROS 2 stack for grasping transparent and reflective objects with DKT depth",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "dkt-stack = dkt_stack.cli:main",
            *(f"{name} = {target}" for name, target in NODES.items()),
        ],
    },
)
