"""Automatic pose sets: collision-free joint configurations that keep the board in view, spread over rotations.

With the nominal geometry (the rig file's current camera pose, a roughly
measured board or wrist-camera mount; frames as in :mod:`.solver`) every
joint configuration predicts a *view*, the board's pose in the camera
``C = X^-1 G Y``. Candidates start as random joint configurations whose view
is roughly right (board in front, face towards the camera, about the right
distance) and are then corrected to a view that is fully right:

1. turned about the camera centre until the board centre lies inside
   ``view_cone`` of the half field of view;
2. moved along the line of sight into ``distance_m``;
3. the board turned about its own centre until the angle between its normal
   and the line of sight is between ``min_view_angle_deg`` (head-on views
   have ambiguous poses) and ``max_view_angle_deg``.

The corrected view gives the flange pose ``G = X C Y^-1`` (eye-to-hand:
``F = G``; eye-in-hand: ``F = G^-1``), IK from the random configuration finds
the joints (so poses stay natural for the arm), and the planner's capsule
model rejects self- and table collisions. A greedy farthest-point choice
keeps the ``count`` most different poses (rotation angle plus translation),
ordered for short joint travel from the start; the pose-set check reports
their rotation spans (the target: 30 deg or more about two axes).
A rough nominal geometry is enough: views only need the board in the image,
with ``image_margin_px`` to spare.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from dkt_grasping.calibration.board import BoardModel
from dkt_grasping.calibration.pose_set import CoverageConfig, PoseSetCoverage, pose_set_coverage
from dkt_grasping.calibration.samples import FLANGE_FRAME, check_mode
from dkt_stack.config import param
from dkt_stack.intrinsics import CameraIntrinsics
from dkt_stack.transforms import invert_transform


@dataclass
class PosePlanConfig:
    """How automatic poses are drawn (metres, degrees)."""

    count: int = param(15, help="poses to visit")
    distance_m: list[float] = param(default_factory=lambda: [0.25, 0.40], help="camera to board centre distance range, m")
    max_view_angle_deg: float = param(45.0, help="largest angle between the board's normal and the line of sight, deg")
    min_view_angle_deg: float = param(
        20.0, help="smallest angle between the board's normal and the line of sight, deg (a board seen head-on has an ambiguous pose)"
    )
    view_cone: float = param(0.5, help="board centre within this fraction of the half field of view from the optical axis")
    image_margin_px: float = param(20.0, help="every board corner (white border included) stays this far inside the image, px")
    candidates_per_pose: int = param(8, help="corrected candidates (each one IK solve) per pose to visit")
    joint_samples: int = param(6000, help="random joint configurations screened for roughly right views")
    table_z_m: float | None = param(0.0, help="table top height in the base frame for collision checks, m (null: no table)")
    table_extent_m: list[float] = param(
        default_factory=lambda: [-0.1, 0.7, -0.5, 0.5], help="table area checked for collisions: x_min x_max y_min y_max, base frame, m"
    )
    seed: int = param(0, help="random seed")

    def __post_init__(self) -> None:
        if self.count < 1 or self.candidates_per_pose < 1 or self.joint_samples < 1:
            raise ValueError(f"count, candidates_per_pose and joint_samples must be >= 1, got {self.count}, {self.candidates_per_pose}, {self.joint_samples}")
        if len(self.distance_m) != 2 or not 0 < self.distance_m[0] <= self.distance_m[1]:
            raise ValueError(f"distance_m must be [near, far] with 0 < near <= far, got {self.distance_m}")
        if len(self.table_extent_m) != 4:
            raise ValueError(f"table_extent_m must be x_min x_max y_min y_max, got {self.table_extent_m}")
        if not 0 < self.view_cone <= 1 or not 0 <= self.min_view_angle_deg < self.max_view_angle_deg < 90:
            raise ValueError(
                "view_cone must be in (0, 1] and 0 <= min_view_angle_deg < max_view_angle_deg < 90, got "
                f"{self.view_cone}, {self.min_view_angle_deg}, {self.max_view_angle_deg}"
            )


@dataclass
class PosePlan:
    """The poses to visit: joints (rad) and the expected flange poses (base frame, m), in visiting order."""

    qs: list[np.ndarray]
    T_base_flange: list[np.ndarray]
    coverage: PoseSetCoverage
    candidates: int = 0  #: corrected views tried (one IK solve each)
    feasible: int = 0  #: of which reachable and collision-free
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "qs": [np.round(q, 6).tolist() for q in self.qs],
            "coverage": self.coverage.to_dict(),
            "candidates": self.candidates,
            "feasible": self.feasible,
            "notes": list(self.notes),
        }


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    n = np.linalg.norm(axis)
    if n < 1e-12 or abs(angle) < 1e-12:
        return np.eye(3)
    return Rotation.from_rotvec(axis / n * angle).as_matrix()


def correct_view(T_camera_board: np.ndarray, config: PosePlanConfig, half_fov: float) -> np.ndarray:
    """The nearest view meeting the cone, distance and facing limits (steps 1-3 of the module docstring)."""
    C = np.array(T_camera_board, dtype=np.float64)
    t = C[:3, 3]
    dist = float(np.linalg.norm(t))
    direction = t / dist
    off_axis = float(np.arccos(np.clip(direction[2], -1.0, 1.0)))
    cone = config.view_cone * half_fov
    if off_axis > cone:  # turn about the camera centre (board position and orientation together)
        R = _rotation(np.cross(direction, (0.0, 0.0, 1.0)), off_axis - cone)
        C[:3, :3] = R @ C[:3, :3]
        C[:3, 3] = R @ t
    dist_new = float(np.clip(dist, *config.distance_m))
    C[:3, 3] *= dist_new / dist
    direction = C[:3, 3] / dist_new
    normal = C[:3, :3][:, 2]  # into the board: along the line of sight when it faces the camera
    view = float(np.arccos(np.clip(normal @ direction, -1.0, 1.0)))
    limit, least = np.radians(config.max_view_angle_deg), np.radians(config.min_view_angle_deg)
    if view > limit:  # turn the board about its own centre towards the camera
        C[:3, :3] = _rotation(np.cross(normal, direction), view - limit) @ C[:3, :3]
    elif view < least:  # ... or away from it: seen head-on, its pose would be ambiguous
        axis = np.cross(normal, direction)
        if np.linalg.norm(axis) < 1e-6:
            axis = np.cross(normal, (1.0, 0.0, 0.0))
        C[:3, :3] = _rotation(axis, view - least) @ C[:3, :3]
    return C


def flange_from_view(mode: str, T_camera_board: np.ndarray, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Flange pose ``T_base_flange`` that shows the board as ``T_camera_board`` under the geometry (X, Y)."""
    G = X @ T_camera_board @ invert_transform(Y)
    return G if check_mode(mode) == "eye_to_hand" else invert_transform(G)


def board_in_view(T_camera_board: np.ndarray, model: BoardModel, intrinsics: CameraIntrinsics, margin_px: float) -> bool:
    """Whether every tag corner (white border included) lies in front of the camera and ``margin_px`` inside the image."""
    pts = np.concatenate([model.object_points(i) for i in model.ids])
    centre = pts.reshape(-1, 4, 3).mean(axis=1).repeat(4, axis=0)
    pts = centre + (pts - centre) * 1.25  # the printed white border: 10 cells where the black square has 8
    p = pts @ T_camera_board[:3, :3].T + T_camera_board[:3, 3]
    if np.any(p[:, 2] <= 0.05):
        return False
    uv = intrinsics.project(p)
    return bool(
        np.all(uv[:, 0] >= margin_px)
        and np.all(uv[:, 0] <= intrinsics.width - 1 - margin_px)
        and np.all(uv[:, 1] >= margin_px)
        and np.all(uv[:, 1] <= intrinsics.height - 1 - margin_px)
    )


def table_points(config: PosePlanConfig, spacing: float = 0.02) -> np.ndarray | None:
    """Base-frame points of the table top for collision checks (None without a table); the arm's foot area is left out."""
    if config.table_z_m is None:
        return None
    x0, x1, y0, y1 = config.table_extent_m
    xs, ys = np.meshgrid(np.arange(x0, x1 + 1e-9, spacing), np.arange(y0, y1 + 1e-9, spacing))
    pts = np.column_stack([xs.ravel(), ys.ravel(), np.full(xs.size, config.table_z_m)])
    return pts[np.hypot(pts[:, 0], pts[:, 1]) > 0.12]


def generate_pose_plan(
    mode: str,
    X_nominal: np.ndarray,
    Y_nominal: np.ndarray,
    model: BoardModel,
    intrinsics: CameraIntrinsics,
    config: PosePlanConfig | None = None,
    *,
    q_start: np.ndarray | None = None,
    kinematics=None,
    collision=None,
    coverage: CoverageConfig | None = None,
) -> PosePlan:
    """Joint configurations to visit for a calibration; see the module docstring.

    ``kinematics`` is a :class:`~dkt_grasping.kinematics.PiperKinematics` (one is
    built when None); ``collision`` an object with ``in_collision(q, scene)``
    (the planner's capsule model when None), checked against the table of
    :func:`table_points`.
    """
    from dkt_grasping.collision import ArmCollisionModel, SceneCollision
    from dkt_grasping.kinematics import PiperKinematics

    c = config or PosePlanConfig()
    check_mode(mode)
    kin = kinematics or PiperKinematics()
    collision = collision or ArmCollisionModel(kin)
    scene = SceneCollision(table_points(c))
    q0 = np.zeros(kin.dof)
    T_flange_tcp = invert_transform(kin.fk(q0, frame=FLANGE_FRAME)) @ kin.fk(q0, frame="tcp")
    rng = np.random.default_rng(c.seed)
    half_fov = float(np.arctan2(min(intrinsics.width, intrinsics.height) / 2.0, max(intrinsics.fx, intrinsics.fy)))
    X_inv = invert_transform(X_nominal)

    # Screen random configurations for roughly right views: in front, about the right distance, face visible.
    samples = rng.uniform(kin.lower, kin.upper, (c.joint_samples, kin.dof))
    flanges = np.array([kin.fk(q, frame=FLANGE_FRAME) for q in samples])
    G = flanges if mode == "eye_to_hand" else np.array([invert_transform(f) for f in flanges])
    views = np.einsum("ij,njk,kl->nil", X_inv, G, Y_nominal)
    t = views[:, :3, 3]
    dist = np.linalg.norm(t, axis=1)
    facing = np.einsum("ni,ni->n", views[:, :3, 2], t) / np.maximum(dist, 1e-9)
    rough = (t[:, 2] > 0) & (dist > 0.7 * c.distance_m[0]) & (dist < 1.3 * c.distance_m[1]) & (facing > 0.2)
    # Smallest corrections first: views close to a screened configuration are the likeliest to be reachable.
    off_axis = np.arccos(np.clip(t[:, 2] / np.maximum(dist, 1e-9), -1.0, 1.0))
    needed = (
        np.maximum(off_axis - c.view_cone * half_fov, 0.0)
        + np.maximum(np.arccos(np.clip(facing, -1.0, 1.0)) - np.radians(c.max_view_angle_deg), 0.0)
        + np.maximum(np.maximum(c.distance_m[0] - dist, dist - c.distance_m[1]), 0.0) / 0.1
    )
    order = np.nonzero(rough)[0]
    order = order[np.argsort(needed[order], kind="stable")]

    total = c.count * c.candidates_per_pose
    tried, qs, poses = 0, [], []
    for i in order:
        if tried >= total:
            break
        view = correct_view(views[i], c, half_fov)
        if not board_in_view(view, model, intrinsics, c.image_margin_px):
            continue
        tried += 1
        F = flange_from_view(mode, view, X_nominal, Y_nominal)
        # every IK branch of the view, nearest the screened configuration first; the first collision-free one
        solutions = kin.ik_all(F @ T_flange_tcp)
        solutions = solutions[np.argsort(np.abs(solutions - samples[i]).sum(axis=1))]
        q = next((s for s in solutions if not collision.in_collision(s, scene)), None)
        if q is None:
            continue
        qs.append(q)
        poses.append(kin.fk(q, frame=FLANGE_FRAME))
    notes = []
    if len(qs) < c.count:
        notes.append(
            f"only {len(qs)} reachable, collision-free views of {tried} tried ({len(order)} of {c.joint_samples} random "
            f"configurations were roughly right; wanted {c.count}): check the nominal camera pose and board mount, or widen distance_m"
        )
    chosen = _farthest_points(poses, c.count)
    start = np.clip(np.asarray(q_start, dtype=np.float64), kin.lower, kin.upper) if q_start is not None else (qs[chosen[0]] if chosen else q0)
    chosen = [chosen[k] for k in _short_tour([qs[i] for i in chosen], start)]
    cover = pose_set_coverage([poses[i] for i in chosen], coverage)
    return PosePlan([qs[i] for i in chosen], [poses[i] for i in chosen], cover, tried, len(qs), notes + cover.problems + cover.warnings)


def _farthest_points(poses: list[np.ndarray], count: int) -> list[int]:
    """Greedy farthest-point choice of ``count`` poses; distance = rotation angle (deg) + translation (cm)."""
    if not poses:
        return []
    P = np.asarray(poses)
    R, t = P[:, :3, :3], P[:, :3, 3]

    def dist(i):
        cos = (np.einsum("ij,nij->n", R[i], R) - 1.0) / 2.0
        return np.degrees(np.arccos(np.clip(cos, -1, 1))) + 100.0 * np.linalg.norm(t - t[i], axis=1)

    chosen = [0]
    d = dist(0)
    while len(chosen) < min(count, len(poses)):
        nxt = int(np.argmax(d))
        chosen.append(nxt)
        d = np.minimum(d, dist(nxt))
    return chosen


def _short_tour(qs: list[np.ndarray], q_start: np.ndarray) -> list[int]:
    """Nearest-neighbour visiting order in joint space (largest joint step) from ``q_start``."""
    left = list(range(len(qs)))
    order, q = [], np.asarray(q_start)
    while left:
        k = min(left, key=lambda i: float(np.max(np.abs(qs[i] - q))))
        order.append(k)
        left.remove(k)
        q = qs[k]
    return order
