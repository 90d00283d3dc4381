"""Collision checking for the PiPER arm with coal: capsule links against a voxelised scene cloud, plus self-collision.

The arm is a chain of capsules between the origins of its kinematic frames
(see :attr:`PiperKinematics.CHAIN`) and a capsule for the gripper along the
tcp z axis; the scene is a coal OcTree built from a base-frame point cloud.
The static base column is skipped against the scene (the table around the
robot's foot is always there).
"""

from __future__ import annotations

from dataclasses import dataclass

import coal
import numpy as np

from dkt_grasping.kinematics import PiperKinematics
from dkt_stack.config import param
from dkt_stack.transforms import cross3


@dataclass
class ArmCollisionConfig:
    """Link radii and margins of the capsule model (metres)."""

    base_radius: float = param(0.04, help="base column capsule radius (m)")
    upper_arm_radius: float = param(0.045, help="link2 capsule radius (m), joint2 to joint3")
    forearm_radius: float = param(0.04, help="link3 capsule radius (m), joint3 to the wrist centre")
    wrist_radius: float = param(0.035, help="wrist capsule radius (m), wrist centre to the flange")
    gripper_radius: float = param(0.045, help="gripper capsule radius (m), flange to tcp; covers the open fingers")
    finger_length: float = param(0.045, help="length of the fingers at the tool end, dropped when fingers are ignored (m)")
    voxel_size: float = param(0.01, help="octree resolution of the scene (m)")
    scene_margin: float = param(0.01, help="required clearance between links and scene voxels (m)")
    self_margin: float = param(0.005, help="required clearance between non-adjacent links (m)")


# Capsules as (name, start chain index, end chain index); index 8 means "tcp" and the gripper is handled separately.
_LINKS = (("base", 0, 1), ("upper_arm", 2, 3), ("forearm", 3, 4), ("wrist", 4, 6))
# Non-adjacent pairs that can touch.
_SELF_PAIRS = (("gripper", "base"), ("gripper", "upper_arm"), ("wrist", "base"), ("forearm", "base"))


def _capsule_transform(a: np.ndarray, b: np.ndarray) -> tuple[coal.Transform3s, float]:
    """coal transform putting a z-aligned capsule centred between a and b; returns it and the length."""
    axis = b - a
    length = float(np.sqrt(axis @ axis))
    z = axis / length if length > 1e-9 else np.array([0.0, 0.0, 1.0])
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = cross3(helper, z)
    x /= np.sqrt(x @ x)
    R = np.empty((3, 3))
    R[:, 0], R[:, 1], R[:, 2] = x, cross3(z, x), z
    return coal.Transform3s(R, (a + b) / 2), length


class SceneCollision:
    """A base-frame point cloud as a coal OcTree (``None`` points means an empty scene)."""

    def __init__(self, points_base: np.ndarray | None, voxel_size: float = 0.01):
        pts = np.zeros((0, 3)) if points_base is None else np.asarray(points_base, dtype=np.float64).reshape(-1, 3)
        pts = pts[np.all(np.isfinite(pts), axis=1)]
        self.points = pts
        self.voxel_size = voxel_size
        self.object = coal.CollisionObject(coal.makeOctree(pts, voxel_size), coal.Transform3s()) if len(pts) else None

    def without_sphere(self, centre: np.ndarray, radius: float) -> SceneCollision:
        """A copy without the points within ``radius`` (m) of ``centre`` (e.g. the object being grasped)."""
        keep = np.linalg.norm(self.points - np.asarray(centre), axis=1) > radius
        return SceneCollision(self.points[keep], self.voxel_size)


class ArmCollisionModel:
    """Capsule model of the PiPER; ``in_collision(q, scene)`` answers for one configuration."""

    def __init__(self, kinematics: PiperKinematics, config: ArmCollisionConfig | None = None):
        self.kin = kinematics
        self.config = config or ArmCollisionConfig()
        c = self.config
        self._radius = {
            "base": c.base_radius,
            "upper_arm": c.upper_arm_radius,
            "forearm": c.forearm_radius,
            "wrist": c.wrist_radius,
            "gripper": c.gripper_radius,
        }
        self._request = coal.CollisionRequest()
        self._request.security_margin = c.scene_margin
        self._self_request = coal.CollisionRequest()
        self._self_request.security_margin = c.self_margin

    def capsules(self, q: np.ndarray, *, include_fingers: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
        """name -> (start, end, radius) of each capsule in the base frame (m)."""
        pts = self.kin.chain_points(q)
        out = {name: (pts[i], pts[j], self._radius[name]) for name, i, j in _LINKS}
        flange, tcp, approach = pts[6], pts[7], pts[8]
        end = tcp if include_fingers else tcp - approach * self.config.finger_length
        # The capsule's round end must not stick out past the fingertips: pull its segment in by the radius.
        r = self._radius["gripper"]
        start = flange + approach * min(r, 0.5 * np.linalg.norm(end - flange))
        end = end - approach * min(r, 0.5 * np.linalg.norm(end - flange))
        out["gripper"] = (start, end, r)
        return out

    def _objects(self, caps) -> dict[str, coal.CollisionObject]:
        objs = {}
        for name, (a, b, r) in caps.items():
            tf, length = _capsule_transform(a, b)
            objs[name] = coal.CollisionObject(coal.Capsule(r, length), tf)
        return objs

    def colliding_links(self, q: np.ndarray, scene: SceneCollision | None, *, include_fingers: bool = True) -> list[str]:
        """Names of links in collision: ``link`` (with the scene) or ``a/b`` (self-collision)."""
        objs = self._objects(self.capsules(q, include_fingers=include_fingers))
        hits = []
        if scene is not None and scene.object is not None:
            for name, obj in objs.items():
                if name == "base":
                    continue
                result = coal.CollisionResult()
                if coal.collide(obj, scene.object, self._request, result):
                    hits.append(name)
        for a, b in _SELF_PAIRS:
            result = coal.CollisionResult()
            if coal.collide(objs[a], objs[b], self._self_request, result):
                hits.append(f"{a}/{b}")
        return hits

    def in_collision(self, q: np.ndarray, scene: SceneCollision | None, *, include_fingers: bool = True) -> bool:
        return bool(self.colliding_links(q, scene, include_fingers=include_fingers))

    def path_in_collision(
        self, q_from: np.ndarray, q_to: np.ndarray, scene: SceneCollision | None, *, resolution: float = 0.02, include_fingers: bool = True
    ) -> bool:
        """Check the straight joint-space segment densely (joint steps <= ``resolution`` rad)."""
        q_from, q_to = np.asarray(q_from, float), np.asarray(q_to, float)
        n = max(int(np.ceil(np.abs(q_to - q_from).max() / resolution)), 1)
        return any(self.in_collision(q_from + (q_to - q_from) * (i / n), scene, include_fingers=include_fingers) for i in range(n + 1))
