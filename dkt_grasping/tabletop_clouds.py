"""Surface-sampled tabletop clouds (table plane + boxes + upright cylinders) for grasp tests and benchmarks.

Surfaces are sampled uniformly in the base frame (metres, z up, table top at
``table_z``); with ``camera_position`` given, only surface points facing the
camera are kept (a single-view cloud, as a depth camera sees it). Occlusion
between objects is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dkt_stack.transforms import invert_transform, transform_points


@dataclass
class Box:
    """Box standing on the table: centre (x, y) m, size (sx, sy, sz) m, yaw rad about z."""

    x: float
    y: float
    size: tuple[float, float, float]
    yaw: float = 0.0


@dataclass
class Cylinder:
    """Upright cylinder on the table: axis at (x, y) m, radius and height m."""

    x: float
    y: float
    radius: float
    height: float


def _box_surface(box: Box, table_z: float, density: float, rng) -> tuple[np.ndarray, np.ndarray]:
    sx, sy, sz = box.size
    pts, nrm = [], []
    # (axis, sign) faces, excluding the bottom resting on the table
    for axis, sign in [(0, 1), (0, -1), (1, 1), (1, -1), (2, 1)]:
        dims = [sx, sy, sz]
        other = [i for i in range(3) if i != axis]
        area = dims[other[0]] * dims[other[1]]
        n = max(int(area * density), 4)
        p = np.zeros((n, 3))
        p[:, other[0]] = rng.uniform(-0.5, 0.5, n) * dims[other[0]]
        p[:, other[1]] = rng.uniform(-0.5, 0.5, n) * dims[other[1]]
        p[:, axis] = sign * dims[axis] / 2
        nn = np.zeros((n, 3))
        nn[:, axis] = sign
        pts.append(p)
        nrm.append(nn)
    p, nn = np.concatenate(pts), np.concatenate(nrm)
    c, s = np.cos(box.yaw), np.sin(box.yaw)
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    return p @ R.T + np.array([box.x, box.y, table_z + sz / 2]), nn @ R.T


def _cylinder_surface(cyl: Cylinder, table_z: float, density: float, rng) -> tuple[np.ndarray, np.ndarray]:
    n_side = max(int(2 * np.pi * cyl.radius * cyl.height * density), 8)
    a = rng.uniform(0, 2 * np.pi, n_side)
    side = np.column_stack([cyl.radius * np.cos(a), cyl.radius * np.sin(a), rng.uniform(0, cyl.height, n_side)])
    side_n = np.column_stack([np.cos(a), np.sin(a), np.zeros(n_side)])
    n_top = max(int(np.pi * cyl.radius**2 * density), 4)
    r = cyl.radius * np.sqrt(rng.uniform(0, 1, n_top))
    b = rng.uniform(0, 2 * np.pi, n_top)
    top = np.column_stack([r * np.cos(b), r * np.sin(b), np.full(n_top, cyl.height)])
    p = np.concatenate([side, top]) + np.array([cyl.x, cyl.y, table_z])
    return p, np.concatenate([side_n, np.tile([0.0, 0.0, 1.0], (n_top, 1))])


def tabletop_cloud(
    objects: list[Box | Cylinder],
    *,
    table_extent: tuple[float, float, float, float] = (0.1, 0.6, -0.3, 0.3),
    table_z: float = 0.0,
    density: float = 2.0e5,
    camera_position: np.ndarray | None = None,
    noise: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """Nx3 float32 points in the base frame (m): table rectangle (x0, x1, y0, y1) + object surfaces.

    density: points per square metre of surface; noise: Gaussian std (m).
    """
    rng = np.random.default_rng(seed)
    x0, x1, y0, y1 = table_extent
    n_table = int((x1 - x0) * (y1 - y0) * density)
    table = np.column_stack([rng.uniform(x0, x1, n_table), rng.uniform(y0, y1, n_table), np.full(n_table, table_z)])
    pts, nrm = [table], [np.tile([0.0, 0.0, 1.0], (n_table, 1))]
    for obj in objects:
        p, n = (_box_surface if isinstance(obj, Box) else _cylinder_surface)(obj, table_z, density, rng)
        pts.append(p)
        nrm.append(n)
    P, Nrm = np.concatenate(pts), np.concatenate(nrm)
    # Drop table points under the objects' footprints.
    keep = np.ones(len(P), dtype=bool)
    for obj in objects:
        on_table = np.abs(P[:, 2] - table_z) < 1e-9
        if isinstance(obj, Box):
            c, s = np.cos(obj.yaw), np.sin(obj.yaw)
            d = P[:, :2] - [obj.x, obj.y]
            u, v = d @ [c, s], d @ [-s, c]
            under = (np.abs(u) < obj.size[0] / 2) & (np.abs(v) < obj.size[1] / 2)
        else:
            under = np.hypot(P[:, 0] - obj.x, P[:, 1] - obj.y) < obj.radius
        keep &= ~(on_table & under)
    P, Nrm = P[keep], Nrm[keep]
    if camera_position is not None:
        facing = np.sum((np.asarray(camera_position) - P) * Nrm, axis=1) > 0
        P = P[facing]
    if noise > 0:
        P = P + rng.normal(0, noise, P.shape)
    return P.astype(np.float32)


def look_at_camera(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``T_base_camera`` of an optical-frame camera (z forward, y down) at ``position`` looking at ``target`` (m)."""
    position, target = np.asarray(position, float), np.asarray(target, float)
    z = target - position
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    if np.linalg.norm(x) < 1e-6:
        x = np.array([0.0, -1.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.column_stack([x, y, z])
    T[:3, 3] = position
    return T


def to_camera_frame(points_base: np.ndarray, T_base_camera: np.ndarray) -> np.ndarray:
    """Base-frame points -> camera optical frame (float32)."""
    return transform_points(invert_transform(T_base_camera), np.asarray(points_base, np.float64)).astype(np.float32)
