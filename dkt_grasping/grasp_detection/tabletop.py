"""The tabletop a grasp detector works on: a downsampled cloud with normals in the arm's base frame, split into table
and objects by a seeded RANSAC plane, plus what the camera saw to be empty (for finger placement).

No rclpy; shared by the CPU detectors (:mod:`dkt_grasping.grasp_detection.antipodal`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import open3d as o3d
from scipy.spatial import cKDTree

from dkt_grasping.grasp_detection.base import EmptyCloudError


@dataclass
class TabletopScene:
    """A downsampled cloud with normals in the base frame, split into table and objects."""

    points: np.ndarray  # Mx3 base frame (m)
    normals: np.ndarray  # Mx3 unit, oriented towards the camera
    object_mask: np.ndarray  # M bool: above the table
    table_normal: np.ndarray  # 3 unit, pointing up (base frame)
    table_offset: float  # plane n.p + offset = 0 (m); nan when no table was found
    target_mask: np.ndarray | None = None  # M bool: the operator's target (None: no target given)
    camera_position: np.ndarray | None = None  # 3, base frame (m): where the points were seen from
    _rays: tuple | None = field(default=None, repr=False)

    def mark_target(self, target_points: np.ndarray, radius: float) -> None:
        """Set :attr:`target_mask`: the scene points within ``radius`` (m) of a target point (Kx3, base frame)."""
        distance, _ = cKDTree(np.asarray(target_points, dtype=np.float64)).query(self.points, distance_upper_bound=radius)
        self.target_mask = np.isfinite(distance)

    def seen_free(self, points_base: np.ndarray, spacing: float, tolerance: float) -> np.ndarray:
        """Which points (Kx3, base frame, m) the camera saw to be empty: the first surface on their line of sight
        (scene points within about ``spacing`` m of it) lies more than ``tolerance`` m beyond them. Space behind a
        seen surface (inside a box under its lid, behind a bottle) or without any measurement is not seen free."""
        X = np.asarray(points_base, dtype=np.float64).reshape(-1, 3)
        if self.camera_position is None or not len(X):
            return np.zeros(len(X), dtype=bool)
        if self._rays is None:
            d = self.points - self.camera_position
            r = np.linalg.norm(d, axis=1)
            self._rays = (cKDTree(d / np.maximum(r, 1e-9)[:, None]), r)
        tree, ranges = self._rays
        d = X - self.camera_position
        rx = np.linalg.norm(d, axis=1)
        free = np.zeros(len(X), dtype=bool)
        for i, near in enumerate(tree.query_ball_point(d / np.maximum(rx, 1e-9)[:, None], r=spacing / np.maximum(rx, 1e-9))):
            free[i] = bool(near) and ranges[near].min() > rx[i] + tolerance
        return free


def ransac_plane(points: np.ndarray, threshold: float, iterations: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The plane with the most points within ``threshold`` (m), refitted to its inliers by least squares.

    Deterministic for a given ``rng`` state. Returns ((a, b, c, d) with unit (a, b, c): a x + b y + c z + d = 0,
    indices of the inliers); a zero plane and no inliers when fewer than 3 points are given.
    """
    P = np.asarray(points, dtype=np.float64)
    if len(P) < 3:
        return np.zeros(4), np.zeros(0, dtype=np.int64)
    idx = rng.integers(0, len(P), size=(iterations, 3))
    a, b, c = P[idx[:, 0]], P[idx[:, 1]], P[idx[:, 2]]
    normals = np.cross(b - a, c - a)
    norms = np.linalg.norm(normals, axis=1)
    usable = norms > 1e-12
    normals[usable] /= norms[usable, None]
    offsets = -np.einsum("ij,ij->i", normals, a)
    counts = np.full(iterations, -1)
    for start in range(0, iterations, 32):  # (N, 32) distance blocks: bounded memory
        sl = slice(start, start + 32)
        counts[sl] = (np.abs(P @ normals[sl].T + offsets[sl]) <= threshold).sum(axis=0)
    counts[~usable] = -1
    best = int(np.argmax(counts))
    if counts[best] < 3:
        return np.zeros(4), np.zeros(0, dtype=np.int64)
    inliers = np.flatnonzero(np.abs(P @ normals[best] + offsets[best]) <= threshold)
    centroid = P[inliers].mean(axis=0)
    n = np.linalg.svd(P[inliers] - centroid, full_matrices=False)[2][2]  # least-squares normal of the inliers
    d = -float(n @ centroid)
    inliers = np.flatnonzero(np.abs(P @ n + d) <= threshold)
    return np.array([*n, d]), inliers


def segment_tabletop(
    points_base: np.ndarray,
    camera_position: np.ndarray,
    *,
    voxel_size: float,
    normal_radius: float,
    normal_max_neighbours: int,
    table_distance: float,
    max_table_tilt_deg: float,
    object_min_height: float,
    seed: int,
) -> TabletopScene:
    """Downsample (``voxel_size`` m), estimate normals oriented to ``camera_position`` (base frame, m) and find the table.

    The table is the RANSAC plane (inliers within ``table_distance`` m) when it holds at least 10 % of the points,
    tilts at most ``max_table_tilt_deg`` from base z and has (almost) nothing under it; points higher than
    ``object_min_height`` m above it are objects. Without such a plane every point is an object and the table offset
    is NaN. Raises :class:`EmptyCloudError` when fewer than 10 points are left after downsampling.
    """
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.ascontiguousarray(points_base, dtype=np.float64)))
    pcd = pcd.voxel_down_sample(voxel_size)
    if len(pcd.points) < 10:
        raise EmptyCloudError(f"only {len(pcd.points)} points left after {voxel_size} m voxel downsampling; need >= 10")
    pcd.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=normal_radius, max_nn=normal_max_neighbours))
    pcd.orient_normals_towards_camera_location(np.asarray(camera_position, dtype=np.float64))
    P, N = np.asarray(pcd.points), np.asarray(pcd.normals)
    up = np.array([0.0, 0.0, 1.0])
    table_normal, offset, object_mask = up, float("nan"), np.ones(len(P), dtype=bool)
    # Our own RANSAC, not open3d's segment_plane: that one runs its iterations on parallel threads that
    # share one random generator, so the same cloud can give different planes (and grasps) run to run.
    plane, inliers = ransac_plane(P, table_distance, 200, np.random.default_rng(seed))
    n = np.asarray(plane[:3], dtype=np.float64)
    scale = np.linalg.norm(n)
    if scale > 0 and len(inliers) >= 0.1 * len(P):
        n, d = n / scale, plane[3] / scale
        if n @ up < 0:
            n, d = -n, -d
        height = P @ n + d
        # Accept the plane as the table only if it is level-ish and (almost) nothing lies under it.
        if n @ up > np.cos(np.deg2rad(max_table_tilt_deg)) and np.mean(height < -3 * table_distance) < 0.05:
            table_normal, offset, object_mask = n, float(d), height > object_min_height
    return TabletopScene(P, N, object_mask, table_normal, offset, camera_position=np.asarray(camera_position, dtype=np.float64))
