"""Hand-eye solvers: OpenCV's closed forms, then a joint refinement of the corner reprojection error.

The two set-ups share one equation. With ``F_i`` the flange pose in the arm's
base frame (``T_base_flange``), ``C_i`` the board pose in the camera optical
frame (``T_camera_board``) and

* eye-to-hand (front camera, board on the gripper): ``X = T_base_camera``
  (what the rig file's ``camera_pose`` holds), ``Y = T_flange_board``,
  ``G_i = F_i``;
* eye-in-hand (wrist camera, board on the table): ``X = T_flange_camera``
  (the rig file's ``wrist_camera_pose``), ``Y = T_base_board``,
  ``G_i = F_i^-1``;

every sample satisfies ``C_i = X^-1 G_i Y``. OpenCV's ``calibrateHandEye``
(AX = XB: Tsai, Park, Horaud, Andreff, Daniilidis) gets
``gripper2base = G_i^-1`` and returns X; ``calibrateRobotWorldHandEye``
(AX = ZB: Shah, Li) gets ``world2cam = C_i``, ``base2gripper = G_i`` and
returns ``base2world = Y^-1`` and ``gripper2cam = X^-1``.

The refinement then minimises the pixel distance between every detected tag
corner and its prediction ``K X^-1 G_i Y P`` over X and Y together (scipy
least squares, robust loss), drops samples whose corner error stands out,
and reports the result's uncertainty from the Jacobian. A second fit with a
free board scale tells whether the configured tag size matches the metric
motion of the arm: a wrong size is reported, not silently absorbed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import lil_matrix
from scipy.spatial.transform import Rotation

from dkt_grasping.calibration.board import BoardModel
from dkt_grasping.calibration.detection import DetectionConfig, SampleRejected, checked_board_pose
from dkt_grasping.calibration.pose_set import CoverageConfig, DegeneratePoseSet, PoseSetCoverage, pose_set_coverage
from dkt_grasping.calibration.samples import Sample, check_mode
from dkt_stack.config import param
from dkt_stack.intrinsics import CameraIntrinsics
from dkt_stack.transforms import invert_transform, make_transform

#: OpenCV AX = XB methods, by the names the report uses.
HAND_EYE_METHODS = {
    "tsai": cv2.CALIB_HAND_EYE_TSAI,
    "park": cv2.CALIB_HAND_EYE_PARK,
    "horaud": cv2.CALIB_HAND_EYE_HORAUD,
    "andreff": cv2.CALIB_HAND_EYE_ANDREFF,
    "daniilidis": cv2.CALIB_HAND_EYE_DANIILIDIS,
}
#: OpenCV AX = ZB (robot-world/hand-eye) methods.
ROBOT_WORLD_METHODS = {"shah": cv2.CALIB_ROBOT_WORLD_HAND_EYE_SHAH, "li": cv2.CALIB_ROBOT_WORLD_HAND_EYE_LI}
ALL_METHODS = (*HAND_EYE_METHODS, *ROBOT_WORLD_METHODS)
REFINED = "refined"


class CalibrationError(ValueError):
    """The samples cannot give a calibration (too few usable, degenerate, every solver failed)."""


@dataclass
class SolverConfig:
    """Which solvers run and how the refinement treats outliers (pixels, fractions)."""

    methods: list[str] = param(default_factory=lambda: list(ALL_METHODS), help=f"OpenCV methods to run and report: {', '.join(ALL_METHODS)}")
    refine: bool = param(True, help="jointly refine the best closed-form result on the corner reprojection error")
    loss: Literal["linear", "huber", "soft_l1", "cauchy"] = param("soft_l1", help="robust loss of the refinement (scipy least_squares)")
    loss_scale_px: float = param(1.0, help="corner error (px) where the robust loss starts to flatten")
    outlier_factor: float = param(
        4.0, help="a sample whose RMS corner error exceeds the median by more than this many robust standard deviations is an outlier"
    )
    outlier_min_px: float = param(1.0, help="a sample with an RMS corner error below this (px) is never an outlier")
    max_outlier_fraction: float = param(0.2, help="drop at most this fraction of the samples as outliers (the worst first)")
    max_outlier_rounds: int = param(3, help="refine / drop outliers at most this many times")
    flange_noise_deg: float = param(
        0.0,
        help="per-sample flange orientation error the refinement allows (joint backlash, kinematic model errors), deg; "
        "0 with flange_noise_mm 0: trust the kinematics fully",
    )
    flange_noise_mm: float = param(0.0, help="per-sample flange position error the refinement allows, mm (used with flange_noise_deg)")
    leave_one_out: bool = param(True, help="report each method's spread when one sample at a time is left out")
    check_scale: bool = param(True, help="fit a free board scale to check the configured tag size")
    scale_tolerance: float = param(0.02, help="refuse the result when the fitted board scale differs from 1 by more than this")
    coverage: CoverageConfig = param(default_factory=CoverageConfig, help="pose-set checks")

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in ALL_METHODS]
        if unknown:
            raise ValueError(f"unknown hand-eye method(s) {unknown}; choose from {', '.join(ALL_METHODS)}")
        if not self.methods:
            raise ValueError("solver.methods needs at least one method")
        if (self.flange_noise_deg > 0) != (self.flange_noise_mm > 0) or min(self.flange_noise_deg, self.flange_noise_mm) < 0:
            raise ValueError("flange_noise_deg and flange_noise_mm are both 0 (trust the kinematics) or both > 0")
        if self.loss_scale_px <= 0 or self.outlier_factor <= 1 or self.scale_tolerance <= 0 or not 0 <= self.max_outlier_fraction < 1:
            raise ValueError("loss_scale_px and scale_tolerance must be > 0, outlier_factor > 1 and max_outlier_fraction in [0, 1)")


@dataclass
class Observation:
    """One usable sample: its motion ``G`` (see the module docstring), board pose and corner correspondences."""

    index: int  #: sample index in the session
    G: np.ndarray  #: 4x4
    C: np.ndarray  #: 4x4 T_camera_board from planar PnP
    object_points: np.ndarray  #: (N, 3) board frame, m
    image_points: np.ndarray  #: (N, 2) px
    pnp_rms_px: float
    ambiguity: float
    flange_on_right: bool = True  #: G = F (eye-to-hand): the flange frame is G's right-hand frame; False for G = F^-1


@dataclass
class MethodResult:
    """One solver's answer and its figures: RMS corner error (px), RMS pose consistency (mm, deg), leave-one-out spread."""

    name: str
    X: np.ndarray | None = None
    Y: np.ndarray | None = None
    reprojection_rms_px: float = float("nan")
    reprojection_max_px: float = float("nan")  #: worst sample's RMS, px
    consistency_mm: float = float("nan")
    consistency_deg: float = float("nan")
    loo_mm: float = float("nan")  #: largest change of X's translation when one sample is left out, mm
    loo_deg: float = float("nan")  #: largest change of X's rotation when one sample is left out, deg
    seconds: float = 0.0
    error: str = ""

    def to_dict(self) -> dict:
        out = {"method": self.name, "error": self.error} if self.error else {"method": self.name}
        if self.X is not None:
            out["X"] = np.round(self.X, 9).tolist()
            out["Y"] = np.round(self.Y, 9).tolist()
        for key in ("reprojection_rms_px", "reprojection_max_px", "consistency_mm", "consistency_deg", "loo_mm", "loo_deg"):
            v = getattr(self, key)
            out[key] = round(float(v), 4) if np.isfinite(v) else None
        out["seconds"] = round(self.seconds, 4)
        return out


@dataclass
class CalibrationResult:
    """The calibration: ``X`` (the output transform, see the module docstring) with everything that backs it."""

    mode: str
    X: np.ndarray
    Y: np.ndarray
    method: str  #: which solver gave X ('refined' after the joint refinement)
    methods: list[MethodResult]
    used: list[int]  #: sample indices the final result rests on
    rejected: list[tuple[int, str]]  #: samples dropped before solving, with the reason
    outliers: list[tuple[int, float]]  #: samples dropped by the refinement (index, RMS px)
    coverage: PoseSetCoverage
    per_sample: list[dict]  #: index, rms_px, consistency mm/deg under the final X, Y
    std_translation_mm: float = float("nan")  #: 1-sigma of X's translation from the refinement's Jacobian
    std_rotation_deg: float = float("nan")
    board_scale: float = float("nan")  #: fitted board scale (1 = the configured tag size is right)
    board_scale_std: float = float("nan")
    problems: list[str] = field(default_factory=list)  #: reasons not to use the result (it is not written)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def method_result(self, name: str) -> MethodResult:
        return next(m for m in self.methods if m.name == name)

    def to_dict(self) -> dict:
        def num(v):
            return round(float(v), 6) if np.isfinite(v) else None

        return {
            "mode": self.mode,
            "method": self.method,
            "X": np.round(self.X, 9).tolist(),
            "Y": np.round(self.Y, 9).tolist(),
            "ok": self.ok,
            "problems": list(self.problems),
            "warnings": list(self.warnings),
            "used": list(self.used),
            "rejected": [{"index": i, "reason": r} for i, r in self.rejected],
            "outliers": [{"index": i, "rms_px": round(r, 3)} for i, r in self.outliers],
            "coverage": self.coverage.to_dict(),
            "std_translation_mm": num(self.std_translation_mm),
            "std_rotation_deg": num(self.std_rotation_deg),
            "board_scale": num(self.board_scale),
            "board_scale_std": num(self.board_scale_std),
            "methods": [m.to_dict() for m in self.methods],
            "per_sample": self.per_sample,
        }

    def table(self) -> str:
        """The per-method report as a fixed-width text table."""
        head = f"{'method':<11} {'reproj px':>9} {'max px':>7} {'cons mm':>8} {'cons deg':>8} {'LOO mm':>7} {'LOO deg':>7}"
        lines = [head, "-" * len(head)]
        for m in self.methods:
            if m.error:
                lines.append(f"{m.name:<11} failed: {m.error}")
                continue
            lines.append(
                f"{m.name:<11} {m.reprojection_rms_px:9.3f} {m.reprojection_max_px:7.3f} {m.consistency_mm:8.2f} "
                f"{m.consistency_deg:8.3f} {m.loo_mm:7.2f} {m.loo_deg:7.3f}"
            )
        return "\n".join(lines)


# ----------------------------------------------------------------------------- geometry helpers


def pose_difference(T_a: np.ndarray, T_b: np.ndarray) -> tuple[float, float]:
    """(translation distance mm, rotation angle deg) between two 4x4 poses."""
    dt = float(np.linalg.norm(T_a[:3, 3] - T_b[:3, 3])) * 1000.0
    dR = T_a[:3, :3].T @ T_b[:3, :3]
    angle = float(np.degrees(np.arccos(np.clip((np.trace(dR) - 1.0) / 2.0, -1.0, 1.0))))
    return dt, angle


def motion(mode: str, T_base_flange: np.ndarray) -> np.ndarray:
    """``G_i`` of the module docstring: the flange pose (eye-to-hand) or its inverse (eye-in-hand)."""
    return np.asarray(T_base_flange, dtype=np.float64) if check_mode(mode) == "eye_to_hand" else invert_transform(T_base_flange)


def mean_pose(poses: list[np.ndarray]) -> np.ndarray:
    """Chordal mean rotation and mean translation of 4x4 poses."""
    poses = np.asarray(poses)
    return make_transform(Rotation.from_matrix(poses[:, :3, :3]).mean().as_matrix(), poses[:, :3, 3].mean(axis=0))


def nuisance_from_X(observations: list[Observation], X: np.ndarray) -> np.ndarray:  # noqa: N802 - X is the unknown's name
    """Best Y for a given X: the mean of ``G_i^-1 X C_i`` over the samples."""
    return mean_pose([invert_transform(o.G) @ X @ o.C for o in observations])


def _is_rigid(T: np.ndarray) -> bool:
    R = T[:3, :3]
    return bool(np.all(np.isfinite(T)) and np.allclose(R @ R.T, np.eye(3), atol=1e-6) and np.linalg.det(R) > 0)


def _orthonormalise(R: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(R)
    return u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt


def solve_closed_form(observations: list[Observation], method: str, *, with_y: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """(X, Y) from one OpenCV method (Y None unless ``with_y``); raises CalibrationError when it fails or returns no rigid transform."""
    if len(observations) < 3:
        raise CalibrationError(f"{method}: needs at least 3 samples, got {len(observations)}")
    try:
        if method in HAND_EYE_METHODS:
            inv_g = [invert_transform(o.G) for o in observations]
            R, t = cv2.calibrateHandEye(
                [g[:3, :3] for g in inv_g],
                [g[:3, 3].reshape(3, 1) for g in inv_g],
                [o.C[:3, :3] for o in observations],
                [o.C[:3, 3].reshape(3, 1) for o in observations],
                method=HAND_EYE_METHODS[method],
            )
            X = make_transform(_orthonormalise(np.asarray(R)), np.asarray(t).reshape(3))
            Y = nuisance_from_X(observations, X) if with_y else np.eye(4)
        elif method in ROBOT_WORLD_METHODS:
            R_bw, t_bw, R_gc, t_gc = cv2.calibrateRobotWorldHandEye(
                [o.C[:3, :3] for o in observations],
                [o.C[:3, 3].reshape(3, 1) for o in observations],
                [o.G[:3, :3] for o in observations],
                [o.G[:3, 3].reshape(3, 1) for o in observations],
                method=ROBOT_WORLD_METHODS[method],
            )
            Y = invert_transform(make_transform(_orthonormalise(np.asarray(R_bw)), np.asarray(t_bw).reshape(3)))
            X = invert_transform(make_transform(_orthonormalise(np.asarray(R_gc)), np.asarray(t_gc).reshape(3)))
        else:
            raise CalibrationError(f"unknown method {method!r}")
    except cv2.error as exc:
        raise CalibrationError(f"{method}: OpenCV failed: {str(exc).strip().splitlines()[-1]}") from exc
    if not (_is_rigid(X) and _is_rigid(Y)):
        raise CalibrationError(f"{method}: returned no rigid transform (degenerate motions?)")
    return X, (Y if with_y else None)


# ----------------------------------------------------------------------------- residuals


class _Stacked:
    """All corner correspondences of a set of observations as flat arrays, for vectorised residuals."""

    def __init__(self, observations: list[Observation], intrinsics: CameraIntrinsics):
        self.G = np.stack([o.G for o in observations])
        self.P = np.concatenate([o.object_points for o in observations])
        self.uv = np.concatenate([o.image_points for o in observations])
        self.owner = np.concatenate([np.full(len(o.object_points), k) for k, o in enumerate(observations)])
        self.K = intrinsics

    def predict(self, X: np.ndarray, Y: np.ndarray, scale: float = 1.0, G: np.ndarray | None = None) -> np.ndarray:
        """(N, 2) predicted pixels of every corner (with corrected motions ``G`` when given)."""
        T = invert_transform(X) @ (self.G if G is None else G) @ Y  # C_i predicted, (n_obs, 4, 4)
        Ti = T[self.owner]
        p = np.einsum("nij,nj->ni", Ti[:, :3, :3], self.P * scale) + Ti[:, :3, 3]
        z = np.maximum(p[:, 2], 1e-6)  # behind the camera: a large residual instead of a division by zero
        return np.stack([self.K.fx * p[:, 0] / z + self.K.cx, self.K.fy * p[:, 1] / z + self.K.cy], axis=1)

    def sample_rms(self, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
        err = np.sum((self.predict(X, Y) - self.uv) ** 2, axis=1)
        return np.sqrt(np.bincount(self.owner, err) / np.bincount(self.owner))


def evaluate(observations: list[Observation], X: np.ndarray, Y: np.ndarray, intrinsics: CameraIntrinsics) -> tuple[dict, list[dict]]:
    """Summary and per-sample figures of (X, Y): RMS corner error (px) and pose consistency ``X C_i`` vs ``G_i Y`` (mm, deg)."""
    stacked = _Stacked(observations, intrinsics)
    rms = stacked.sample_rms(X, Y)
    per = []
    for o, r in zip(observations, rms):
        mm, deg = pose_difference(X @ o.C, o.G @ Y)
        per.append({"index": o.index, "rms_px": round(float(r), 4), "mm": round(mm, 3), "deg": round(deg, 4)})
    all_err = np.sum((stacked.predict(X, Y) - stacked.uv) ** 2, axis=1)
    summary = {
        "reprojection_rms_px": float(np.sqrt(all_err.mean())),
        "reprojection_max_px": float(rms.max()),
        "consistency_mm": float(np.sqrt(np.mean([p["mm"] ** 2 for p in per]))),
        "consistency_deg": float(np.sqrt(np.mean([p["deg"] ** 2 for p in per]))),
    }
    return summary, per


# ----------------------------------------------------------------------------- refinement


@dataclass
class _Refinement:
    X: np.ndarray
    Y: np.ndarray
    scale: float
    std_translation_mm: float
    std_rotation_deg: float
    scale_std: float


def _compose(T0: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """T0 perturbed by [rotation vector (rad, applied on the right), translation (m)]."""
    R, _ = cv2.Rodrigues(np.asarray(delta[:3], dtype=np.float64))  # far cheaper than scipy's Rotation per call
    return make_transform(T0[:3, :3] @ R, T0[:3, 3] + delta[3:6])


def refine(
    observations: list[Observation], X0: np.ndarray, Y0: np.ndarray, intrinsics: CameraIntrinsics, config: SolverConfig, *, fit_scale: bool = False
) -> _Refinement:
    """Minimise the corner reprojection error over X and Y (and a board scale when ``fit_scale``).

    With ``flange_noise_deg`` / ``flange_noise_mm`` set, every sample's flange pose
    may move too, at a Gaussian cost of that size (a bundle adjustment with a
    prior on the robot's poses); pixels are then weighted by their robust noise
    estimate. Only the X and Y of the result are kept.
    """
    stacked = _Stacked(observations, intrinsics)
    n = len(observations)
    k = 13 if fit_scale else 12
    robot = config.flange_noise_deg > 0
    n_params = k + (6 * n if robot else 0)
    right = [o.flange_on_right for o in observations]

    def unpack(p):
        X, Y, s = _compose(X0, p[:6]), _compose(Y0, p[6:12]), float(np.exp(p[12])) if fit_scale else 1.0
        if not robot:
            return X, Y, s, None
        # a flange correction acts in the flange frame: on G's right (G = F) or left (G = F^-1) side
        G = np.array([g @ _compose(np.eye(4), d) if r else _compose(np.eye(4), d) @ g for g, d, r in zip(stacked.G, p[k:].reshape(n, 6), right)])
        return X, Y, s, G

    def pixel_residuals(p):
        X, Y, s, G = unpack(p)
        return (stacked.predict(X, Y, s, G) - stacked.uv).ravel()

    # The robust loss flattens beyond a few noise sigmas of the data at hand (never below loss_scale_px): with
    # noisier corners or kinematics a fixed scale would treat ordinary samples as outliers and lose efficiency.
    sigma = max(1.4826 * float(np.median(np.abs(pixel_residuals(np.zeros(n_params))))), 0.05)
    f_scale = max(config.loss_scale_px, 3.0 * sigma)
    sparsity = None
    if robot:
        prior_scale = np.tile(np.r_[[np.radians(config.flange_noise_deg)] * 3, [config.flange_noise_mm / 1000.0] * 3], n)

        def residuals(p):
            return np.concatenate([pixel_residuals(p) / sigma, p[k:] / prior_scale])

        f_scale /= sigma
        # each sample's correction touches its own corners and its own prior only: finite differences stay cheap
        m = stacked.uv.size
        sparsity = lil_matrix((m + 6 * n, n_params), dtype=np.int8)
        sparsity[:m, :k] = 1
        rows = np.repeat(stacked.owner, 2)
        for i in range(n):
            cols = k + 6 * i + np.arange(6)
            sparsity[np.nonzero(rows == i)[0][:, None], cols] = 1
            sparsity[m + 6 * i + np.arange(6), cols] = 1
    else:
        residuals = pixel_residuals
    res = least_squares(
        residuals, np.zeros(n_params), jac_sparsity=sparsity, loss=config.loss, f_scale=f_scale, x_scale="jac", method="trf", tr_solver="lsmr"
    )
    X, Y, s, _ = unpack(res.x)
    # Covariance from the Gauss-Newton Hessian, scaled by the residual variance.
    dof = max(res.fun.size - n_params, 1)
    sigma2 = float(res.fun @ res.fun) / dof
    jac = res.jac.toarray() if hasattr(res.jac, "toarray") else res.jac
    try:
        cov = np.linalg.inv(jac.T @ jac) * sigma2
        std_rot = float(np.degrees(np.sqrt(np.trace(cov[0:3, 0:3]))))
        std_t = float(np.sqrt(np.trace(cov[3:6, 3:6]))) * 1000.0
        std_s = float(np.sqrt(cov[12, 12]) * s) if fit_scale else float("nan")
    except np.linalg.LinAlgError:
        std_rot = std_t = std_s = float("inf")
    return _Refinement(X, Y, s, std_t, std_rot, std_s)


def _leave_one_out(observations: list[Observation], X: np.ndarray, solve) -> tuple[float, float]:
    """Largest (mm, deg) change of X when each sample in turn is left out; ``solve(obs) -> X``."""
    if len(observations) < 4:
        return float("nan"), float("nan")
    worst_mm, worst_deg = 0.0, 0.0
    for k in range(len(observations)):
        try:
            X_k = solve(observations[:k] + observations[k + 1 :])
        except CalibrationError:
            return float("inf"), float("inf")
        mm, deg = pose_difference(X, X_k)
        worst_mm, worst_deg = max(worst_mm, mm), max(worst_deg, deg)
    return worst_mm, worst_deg


# ----------------------------------------------------------------------------- the whole calibration


def prepare_observations(
    samples: list[Sample], mode: str, model: BoardModel, intrinsics: CameraIntrinsics, checks: DetectionConfig
) -> tuple[list[Observation], list[tuple[int, str]]]:
    """Board poses of the samples under the current board description; (usable observations, (index, reason) rejected).

    The board pose is computed again from the stored corners, so a corrected tag
    size or layout takes effect; the ambiguity and fit checks are the capture's.
    """
    observations, rejected = [], []
    for index, s in enumerate(samples):
        tags = [t for t in s.tags if t.id in model.tags]
        if not tags:
            seen = sorted({t.id for t in s.tags})
            rejected.append((index, f"no tag of the board (ids {model.ids}) in view" + (f"; saw ids {seen}" if seen else "")))
            continue
        try:
            pose = checked_board_pose(model, tags, intrinsics, checks)
        except SampleRejected as exc:
            rejected.append((index, exc.reason))
            continue
        obj, img = model.correspondences(tags)
        observations.append(
            Observation(index, motion(mode, s.T_base_flange), pose.T_camera_board, obj, img, pose.rms_px, pose.ambiguity, mode == "eye_to_hand")
        )
    return observations, rejected


def calibrate(
    samples: list[Sample],
    mode: str,
    model: BoardModel,
    intrinsics: CameraIntrinsics,
    config: SolverConfig | None = None,
    checks: DetectionConfig | None = None,
) -> CalibrationResult:
    """Run every configured method, refine, reject outliers and report; see the module docstring.

    Raises:
        DegeneratePoseSet: fewer than 3 usable samples, or rotations about one axis only.
        CalibrationError: every closed-form method failed.
    """
    config = config or SolverConfig()
    check_mode(mode)
    observations, rejected = prepare_observations(samples, mode, model, intrinsics, checks or DetectionConfig())
    if not observations and rejected:
        raise CalibrationError(f"none of the {len(samples)} samples is usable; first: sample {rejected[0][0]}: {rejected[0][1]}")
    coverage = pose_set_coverage([samples[o.index].T_base_flange for o in observations], config.coverage)
    if not coverage.usable:
        raise DegeneratePoseSet(
            "pose set refused: "
            + "; ".join(coverage.problems)
            + (f" ({len(rejected)} of {len(samples)} samples rejected before solving)" if rejected else "")
        )

    def closed(obs, name):
        return solve_closed_form(obs, name, with_y=False)[0]

    methods: list[MethodResult] = []
    for name in config.methods:
        t0 = time.perf_counter()
        try:
            X, Y = solve_closed_form(observations, name)
        except CalibrationError as exc:
            methods.append(MethodResult(name, error=str(exc)))
            continue
        summary, _ = evaluate(observations, X, Y, intrinsics)
        loo = _leave_one_out(observations, X, lambda obs, n=name: closed(obs, n)) if config.leave_one_out else (np.nan, np.nan)
        methods.append(MethodResult(name, X, Y, **summary, loo_mm=loo[0], loo_deg=loo[1], seconds=time.perf_counter() - t0))
    good = [m for m in methods if not m.error and np.isfinite(m.reprojection_rms_px)]
    if not good:
        raise CalibrationError("every hand-eye method failed: " + "; ".join(m.error for m in methods))
    best = min(good, key=lambda m: m.reprojection_rms_px)
    X, Y, final_name = best.X, best.Y, best.name
    scale_problem, scale, scale_std = "", float("nan"), float("nan")
    if config.check_scale:
        # on every sample, before outlier rejection: a wrong tag size makes every sample look bad, and dropping
        # the worst of them would only hide the cause
        scaled = refine(observations, X, Y, intrinsics, config, fit_scale=True)
        scale, scale_std = scaled.scale, scaled.scale_std
        off = abs(scale - 1.0)
        if off > config.scale_tolerance and off > 4.0 * scale_std:
            sizes = sorted({t.size_m for t in model.config.tags})
            measured = ", ".join(f"{s * scale:.4f}" for s in sizes)
            scale_problem = (
                f"tag size mismatch: the arm's motion fits a board {scale:.3f}x the configured size "
                f"(+-{scale_std:.3f}; configured {', '.join(f'{s:.4f}' for s in sizes)} m, the data say {measured} m): "
                "measure the printed black square, fix board.tags[].size_m and solve the session again"
            )
    outliers: list[tuple[int, float]] = []
    warnings = list(coverage.warnings)
    problems: list[str] = []
    used = observations
    ref = None
    if config.refine:
        t0 = time.perf_counter()
        for round_ in range(max(config.max_outlier_rounds, 0) + 1):
            ref = refine(used, X, Y, intrinsics, config)
            X, Y = ref.X, ref.Y
            if round_ == config.max_outlier_rounds:
                break  # the last refinement keeps every sample it was given
            rms = _Stacked(used, intrinsics).sample_rms(X, Y)
            med = float(np.median(rms))
            spread = max(1.4826 * float(np.median(np.abs(rms - med))), 0.1 * med)
            limit = max(config.outlier_min_px, med + config.outlier_factor * spread)
            budget = int(config.max_outlier_fraction * len(observations)) - len(outliers)
            worst_first = [k for k in np.argsort(-rms) if rms[k] > limit][: max(budget, 0)]
            bad = np.zeros(len(used), dtype=bool)
            bad[worst_first] = True
            if not bad.any() or len(used) - int(bad.sum()) < config.coverage.min_poses:
                break
            outliers += [(o.index, float(r)) for o, r, b in zip(used, rms, bad) if b]
            used = [o for o, b in zip(used, bad) if not b]
        final_name = REFINED
        summary, _ = evaluate(used, X, Y, intrinsics)
        x0, y0 = X, Y  # leave-one-out solutions start at the full solution (the optimum moves little)
        loo = (
            _leave_one_out(used, X, lambda obs: refine(obs, x0, y0, intrinsics, config).X) if config.leave_one_out else (np.nan, np.nan)
        )
        methods.append(MethodResult(REFINED, X, Y, **summary, loo_mm=loo[0], loo_deg=loo[1], seconds=time.perf_counter() - t0))
        if outliers:
            warnings.append(f"dropped {len(outliers)} outlier sample(s): " + ", ".join(f"{i} ({r:.2f} px)" for i, r in outliers))
        coverage = pose_set_coverage([samples[o.index].T_base_flange for o in used], config.coverage)
        problems += coverage.problems
    _, per_sample = evaluate(used, X, Y, intrinsics)
    result = CalibrationResult(
        mode=mode,
        X=X,
        Y=Y,
        method=final_name,
        methods=methods,
        used=[o.index for o in used],
        rejected=rejected,
        outliers=outliers,
        coverage=coverage,
        per_sample=per_sample,
        std_translation_mm=ref.std_translation_mm if ref else float("nan"),
        std_rotation_deg=ref.std_rotation_deg if ref else float("nan"),
        board_scale=scale,
        board_scale_std=scale_std,
        problems=([scale_problem] if scale_problem else []) + problems,
        warnings=warnings,
    )
    return result


__all__ = [
    "ALL_METHODS",
    "CalibrationError",
    "CalibrationResult",
    "DegeneratePoseSet",
    "MethodResult",
    "Observation",
    "SolverConfig",
    "calibrate",
    "evaluate",
    "motion",
    "pose_difference",
    "prepare_observations",
    "refine",
    "solve_closed_form",
]
