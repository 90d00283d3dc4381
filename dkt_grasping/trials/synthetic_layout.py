"""The synthetic tabletop as the ``simulation`` node graph shows it: objects in the simulated PiPER's reach.

``config/graphs/simulation.yaml`` (camera_node's synthetic source, depth,
metric cloud, grasp, planner and the kinematic simulated arm) places the arm's
base at :data:`BASE_IN_WORLD` of the synthetic scene's world (table) frame,
axes parallel, and starts it at :data:`HOME_Q`; :func:`trial_scene_config`
moves the default tabletop's objects to :data:`TRIAL_LAYOUT` (with a seeded
jitter) so that they lie within the PiPER's reach (base x 0.2 .. 0.36 m). The
physics trials (:mod:`dkt_grasping.trials.simulation`) use :mod:`dkt_sim`
instead.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dkt_perception.synthetic_scene import SceneConfig, default_scene_config
from dkt_stack.transforms import make_transform

#: Robot base origin in the scene's world (table) frame, m; base axes = world axes.
BASE_IN_WORLD = (-0.30, 0.10, 0.0)
#: Footprint centres (world x, y, m) of the default tabletop's objects: in reach, clear of each other and of the tags.
TRIAL_LAYOUT = {
    "red_box": (-0.10, 0.12),
    "glass": (0.04, 0.04),
    "can": (0.06, 0.20),
    "plastic_box": (-0.05, -0.06),
    "blue_cup": (-0.09, 0.30),
}
#: Arm configuration at start (rad): raised above the table, out of the way.
HOME_Q = (0.0, 0.8, -0.9, 0.0, 0.5, 0.0)
#: Objects move by up to this much (m, world x and y) and boxes turn by up to this much (deg) between seeds.
JITTER_M = 0.015
YAW_JITTER_DEG = 20.0


def T_world_base() -> np.ndarray:  # noqa: N802 - the transform's conventional name
    return make_transform(np.eye(3), np.asarray(BASE_IN_WORLD, dtype=np.float64))


def trial_scene_config(spec, seed: int) -> SceneConfig:
    """The default tabletop at ``spec.simulation``'s image size, objects at :data:`TRIAL_LAYOUT` moved/turned by a seeded jitter."""
    s = spec.simulation
    config = default_scene_config(seed, width=s.width, height=s.height)
    rng = np.random.default_rng(seed)
    moved = []
    for obj in config.objects:
        x, y = TRIAL_LAYOUT.get(obj.name, obj.position)
        dx, dy = rng.uniform(-JITTER_M, JITTER_M, 2)
        dyaw = np.deg2rad(rng.uniform(-YAW_JITTER_DEG, YAW_JITTER_DEG)) if obj.kind == "box" else 0.0
        moved.append(dataclasses.replace(obj, position=(x + dx, y + dy), yaw=obj.yaw + dyaw))
    config.objects = moved
    return config
