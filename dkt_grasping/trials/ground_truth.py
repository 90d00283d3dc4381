"""Did the closed gripper hold the target? Decided from the synthetic scene's exact geometry.

Each object is filled with points on a regular grid (plus its exact rim for
cylinders), kept in the robot base frame. For a gripper pose at the moment of
closing (``T_base_gripper``: PiPER convention, origin at the grasp centre,
z = approach, y = closing, fingertips at z = depth; metres) the grasp holds
the target when, in this order:

1. the grasp centre lies on the target (inside it, grown by a small margin);
2. the open fingers, palm and body touch no object and stay above the table
   top (the object fits between the fingers, nothing is knocked over); a
   finger may brush an object by up to ``push_tolerance_m`` across its inner
   face (it pushes it aside, as real fingers do, rather than knocking it over);
3. target material lies between the finger pads;
4. the fingers, closed symmetrically until they touch (the PiPER fingers are
   coupled), still touch no other object and stay above the table.

The same contact computation gives the simulated gripper's feedback: the
opening at which the fingers stop.
"""

from __future__ import annotations

import numpy as np

from dkt_grasping.gripper import GripperConfig, points_in_boxes
from dkt_grasping.trials.backend import GroundTruthOutcome
from dkt_perception.synthetic_scene import SceneObject
from dkt_stack.transforms import invert_transform, transform_points

_PART_NAMES = ("finger +y", "finger -y", "palm", "body")


def object_points(obj: SceneObject, spacing_m: float) -> np.ndarray:
    """Points filling the object (volume grid + cylinder rim), object frame (z up from the footprint centre), m; float64 Nx3."""
    if spacing_m <= 0:
        raise ValueError(f"object sampling spacing must be > 0 m, got {spacing_m}")
    sx, sy, sz = obj.size

    def axis(lo, hi):
        return np.linspace(lo, hi, max(2, int(np.ceil((hi - lo) / spacing_m)) + 1))

    zs = axis(0.0, sz)
    if obj.kind == "box":
        g = np.stack(np.meshgrid(axis(-sx / 2, sx / 2), axis(-sy / 2, sy / 2), zs, indexing="ij"), axis=-1).reshape(-1, 3)
        return g
    r = sx / 2
    g = np.stack(np.meshgrid(axis(-r, r), axis(-r, r), zs, indexing="ij"), axis=-1).reshape(-1, 3)
    g = g[np.hypot(g[:, 0], g[:, 1]) <= r]
    angles = np.linspace(0.0, 2 * np.pi, max(8, int(np.ceil(2 * np.pi * r / spacing_m))), endpoint=False)
    ring = np.stack(np.meshgrid(angles, zs, indexing="ij"), axis=-1).reshape(-1, 2)
    rim = np.stack([r * np.cos(ring[:, 0]), r * np.sin(ring[:, 0]), ring[:, 1]], axis=1)
    return np.concatenate([g, rim])


class GroundTruthGrasp:
    """Exact-geometry grasp outcome in one scene (see the module docstring).

    objects: the scene's objects; T_world_base: 4x4 robot base pose in the scene's world (table) frame.
    """

    def __init__(
        self,
        objects: list[SceneObject],
        T_world_base: np.ndarray,
        gripper: GripperConfig | None = None,
        *,
        spacing_m: float = 0.0025,
        centre_margin_m: float = 0.01,
        table_tolerance_m: float = 0.002,
        push_tolerance_m: float = 0.003,
    ):
        self.objects = {o.name: o for o in objects}
        if len(self.objects) != len(objects):
            raise ValueError(f"object names must be unique, got {[o.name for o in objects]}")
        self.T_world_base = np.asarray(T_world_base, dtype=np.float64)
        self.T_base_world = invert_transform(self.T_world_base)
        self.gripper = gripper or GripperConfig()
        self.centre_margin_m = centre_margin_m
        self.table_tolerance_m = table_tolerance_m
        self.push_tolerance_m = push_tolerance_m
        names, chunks = [], []
        for o in objects:
            pts = transform_points(self.T_base_world @ o.T_world_object, object_points(o, spacing_m))
            chunks.append(pts)
            names.append(np.full(len(pts), len(names)))
        self._names = [o.name for o in objects]
        self.points_base = np.concatenate(chunks) if chunks else np.zeros((0, 3))
        self.point_object = np.concatenate(names) if names else np.zeros(0, dtype=int)

    # ------------------------------------------------------------------ pieces
    def _local(self, T_base_gripper: np.ndarray) -> np.ndarray:
        return transform_points(invert_transform(np.asarray(T_base_gripper, dtype=np.float64)), self.points_base)

    def _between_fingers(self, local: np.ndarray, depth: float, opening: float) -> np.ndarray:
        """Mask of points in the region the pads sweep when closing from ``opening`` (gripper frame)."""
        g = self.gripper
        return (
            (np.abs(local[:, 0]) <= g.finger_width / 2)
            & (local[:, 2] >= depth - g.finger_length)
            & (local[:, 2] <= depth)
            & (np.abs(local[:, 1]) < opening / 2)
        )

    def contact_opening(self, T_base_gripper: np.ndarray, depth: float, opening: float) -> float:
        """Opening (m) at which fingers closing symmetrically from ``opening`` stop on an object; 0 when nothing is between them."""
        local = self._local(T_base_gripper)
        inside = self._between_fingers(local, depth, opening)
        return float(2.0 * np.abs(local[inside, 1]).max()) if inside.any() else 0.0

    def _collisions(self, T_base_gripper: np.ndarray, local: np.ndarray, opening: float, depth: float, ignore: int | None = None) -> str:
        """'' when the gripper at this opening is free, else a sentence naming the part and what it hits."""
        opening = min(opening, self.gripper.max_opening)
        centres, halves = self.gripper.collision_boxes(opening, depth)
        hit = points_in_boxes(local, centres, halves)  # (N, K)
        if ignore is not None:
            hit[self.point_object == ignore] = False
        # A finger overlapping an object only slightly pushes it aside (inwards if the object lies mostly between the
        # fingers, outwards otherwise) instead of knocking it over: within the push tolerance it is a brush, not a hit.
        inner, outer = opening / 2, opening / 2 + self.gripper.finger_thickness
        push = np.zeros(len(local))
        for k in (0, 1):
            for o in np.unique(self.point_object[hit[:, k]]):
                of_o = self.point_object == o
                rows = np.flatnonzero(hit[:, k] & of_o)
                inwards = abs(np.mean(local[of_o, 1])) < (inner + outer) / 2
                push[rows] = np.abs(local[rows, 1]) - inner if inwards else outer - np.abs(local[rows, 1])
                if push[rows].max() <= self.push_tolerance_m:
                    hit[rows, k] = False
        if hit.any():
            k = int(np.flatnonzero(hit.any(axis=0))[0])
            points = np.flatnonzero(hit[:, k])
            n = points[np.argmax(push[points])]  # report the deepest point of the first part that hits
            depth_mm = f" (it would have to push it {push[n] * 1000:.1f} mm aside)" if k < 2 else ""
            return f"the {_PART_NAMES[k]} hits {self._names[self.point_object[n]]}{depth_mm}"
        # Table: every box corner must stay above the table top (world z = 0).
        T_world_gripper = self.T_world_base @ np.asarray(T_base_gripper, dtype=np.float64)
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
        for k, (c, h) in enumerate(zip(centres, halves)):
            z = transform_points(T_world_gripper, c + signs * h)[:, 2]
            if z.min() < -self.table_tolerance_m:
                return f"the {_PART_NAMES[k]} goes {(-z.min()) * 1000:.1f} mm into the table"
        return ""

    # ------------------------------------------------------------------ verdict
    def judge(self, T_base_gripper: np.ndarray, depth: float, open_width: float, target: str) -> GroundTruthOutcome:
        """Outcome of closing at ``T_base_gripper`` (grasp depth ``depth``, opened to ``open_width``; m) on object ``target``."""
        if target not in self.objects:
            raise ValueError(f"unknown target object {target!r}; the scene has {', '.join(self.objects)}")
        T = np.asarray(T_base_gripper, dtype=np.float64)
        centre_world = transform_points(self.T_world_base, T[:3, 3][None])
        details = {"grasp_centre_base_m": [round(float(v), 4) for v in T[:3, 3]]}
        obj = self.objects[target]
        if not obj.contains_world(centre_world, self.centre_margin_m)[0]:
            on = [n for n, o in self.objects.items() if o.contains_world(centre_world, self.centre_margin_m)[0]]
            where = f"on {on[0]}" if on else "in free space"
            return GroundTruthOutcome(False, f"missed: the grasp centre is not on {target} ({where})", details)
        local = self._local(T)
        hit = self._collisions(T, local, open_width, depth)
        if hit:
            return GroundTruthOutcome(False, f"collision with the gripper open: {hit}", details)
        inside = self._between_fingers(local, depth, open_width)
        target_index = self._names.index(target)
        if not np.any(inside & (self.point_object == target_index)):
            return GroundTruthOutcome(False, f"empty: no part of {target} between the finger pads", details)
        closed = float(2.0 * np.abs(local[inside, 1]).max())
        details["contact_opening_m"] = round(closed, 4)
        others = sorted({self._names[i] for i in np.unique(self.point_object[inside]) if i != target_index})
        if others:
            return GroundTruthOutcome(False, f"also between the fingers: {', '.join(others)}", details)
        # Closed on the object: the pads sit just outside its widest point between them.
        hit = self._collisions(T, local, closed + 1e-4, depth, ignore=target_index)
        if hit:
            return GroundTruthOutcome(False, f"collision with the gripper closed: {hit}", details)
        return GroundTruthOutcome(True, f"held: {target} between the fingers at {closed * 1000:.1f} mm", details)
