"""Metric depth from DKT's affine-invariant disparity: AprilTag anchors, a robust fit and a temporal filter.

DKT predicts relative disparity ``r`` (inverse depth up to an unknown scale and
shift). With metric anchors (pixels of known z-depth from tags, optionally from
the sensor's raw depth) we fit, per frame,

    1 / z = s * r + t

and publish ``z = 1 / (s * r + t)`` in metres. Fitting scale only on depth is
wrong for this model (see FACTS section 4).

Fit: iteratively reweighted least squares with Huber weights (IRLS-Huber),
chosen over RANSAC because the model is linear in two parameters, the tag
anchors are dense and nearly outlier-free, and IRLS is deterministic and takes
a few microseconds per iteration; gross outliers (raw depth through glass) are
removed before it by per-pixel gating. Rows are scaled by z^2 so residuals are
(to first order) depth errors in metres, and the Huber threshold comes from a
MAD estimate of their spread.

Shift observability: all anchors at nearly one depth (a single fronto-parallel
tag) leave ``t`` undetermined; the fit then keeps the previous (filtered) or
configured shift and solves the scale only (``mode="scale_only"``).

Time: every stamp is integer nanoseconds. When no tag has been seen for
``filter.tag_timeout_s`` the output is invalid (``depth_m is None``): a stale
scale is never published silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from dkt_perception.tags import TagAnchors, TagConfig, TagDetection, TagDetector
from dkt_stack.config import param
from dkt_stack.intrinsics import CameraIntrinsics


class MetricScaleError(ValueError):
    """Input that cannot be turned into metric depth (shapes, dtypes)."""


@dataclass
class ScaleFitConfig:
    """Robust fit of 1/z = s * r + t."""

    min_anchors: int = param(30, help="fewer usable anchors than this: no fit")
    irls_iterations: int = param(10, help="IRLS (Huber) iterations")
    huber_k: float = param(1.345, help="Huber threshold in robust standard deviations of the depth residual")
    huber_min_mm: float = param(0.5, help="floor of the Huber threshold, mm (keeps exact data from collapsing it to zero)")
    inlier_sigmas: float = param(3.0, help="an anchor is an inlier when its residual is within this many robust sigmas")
    inlier_min_mm: float = param(2.0, help="... or within this many mm")
    min_inverse_depth_spread: float = param(
        0.01, help="relative weighted std of 1/z among anchors below which the shift is unobservable (scale-only)"
    )
    max_condition: float = param(1.0e4, help="condition number of the column-normalised design above which the shift is unobservable")
    default_shift: float = param(0.0, help="shift t (1/m) used by the scale-only fit when no previous fit exists")
    min_inlier_ratio: float = param(0.5, help="reject a fit with fewer inliers than this fraction")
    max_median_residual_mm: float = param(30.0, help="reject a fit whose median absolute residual exceeds this, mm")


@dataclass
class RawAnchorConfig:
    """Anchors from the depth sensor on pixels it measures well (never on glass or metal: gated)."""

    enabled: bool = param(False, help="add raw-depth anchors to the tag anchors")
    stride: int = param(8, help="sample every n-th pixel in u and v")
    min_m: float = param(0.2, help="ignore raw depth nearer than this, m")
    max_m: float = param(2.0, help="ignore raw depth farther than this, m")
    window: int = param(5, help="local-consistency median window, px: 3 or 5")
    max_local_deviation: float = param(0.01, help="reject a pixel whose depth differs from its window's median by more than this fraction")
    gate_rel: float = param(0.03, help="reject a pixel whose depth differs from the tag-only prediction by more than this fraction ...")
    gate_sigmas: float = param(3.0, help="... or by more than this many robust residual sigmas of the tag-only fit, whichever is larger")
    weight: float = param(0.5, help="total weight of the raw anchors relative to the total weight of the tag anchors")
    max_anchors: int = param(4000, help="at most this many raw anchors (evenly thinned)")


@dataclass
class ScaleFilterConfig:
    """Temporal filter on (s, t)."""

    alpha: float = param(0.4, help="EMA weight of a new fit (1 = no smoothing)")
    gate_rel: float = param(0.05, help="a fit whose predicted depth differs from the filter's by more than this fraction is an outlier")
    reset_after: int = param(3, help="this many consecutive outliers mean the scale really changed: reset to the new fit")
    tag_timeout_s: float = param(1.0, help="without an accepted fit for this long, the output is invalid, s")


@dataclass
class MetricScaleConfig:
    """Metric depth from DKT disparity and AprilTags."""

    tags: TagConfig = param(default_factory=TagConfig, help="AprilTag detection and anchors")
    fit: ScaleFitConfig = param(default_factory=ScaleFitConfig, help="robust scale/shift fit")
    raw: RawAnchorConfig = param(default_factory=RawAnchorConfig, help="raw sensor-depth anchors")
    filter: ScaleFilterConfig = param(default_factory=ScaleFilterConfig, help="temporal filter")
    z_min_m: float = param(0.1, help="metric depth below this is NaN, m")
    z_max_m: float = param(3.0, help="metric depth beyond this is NaN, m")

    def __post_init__(self) -> None:
        if not 0.0 < self.z_min_m < self.z_max_m:
            raise ValueError(f"need 0 < z_min_m < z_max_m, got {self.z_min_m}, {self.z_max_m}")
        if not 0.0 < self.filter.alpha <= 1.0:
            raise ValueError(f"filter.alpha must be in (0, 1], got {self.filter.alpha}")


@dataclass
class ScaleFit:
    """One frame's fit of 1/z = scale * r + shift (z in metres, r DKT disparity)."""

    scale: float
    shift: float
    mode: Literal["affine", "scale_only"]
    n_anchors: int
    n_inliers: int
    inlier_ratio: float
    residual_median_mm: float  #: median |z_fit - z_anchor| over all anchors
    residual_rms_mm: float  #: RMS over inliers
    residual_sigma_mm: float  #: robust (MAD) standard deviation of the depth residual
    condition_number: float  #: of the column-normalised weighted design [r, 1]
    inverse_depth_spread: float  #: weighted std(1/z) / mean(1/z) over anchors
    r_range: tuple[float, float]  #: 5th and 95th percentile of the anchors' disparity
    n_tag_anchors: int = 0
    n_raw_anchors: int = 0
    n_raw_rejected: int = 0

    def depth_at(self, r: np.ndarray | float) -> np.ndarray:
        """Metric depth (m) for disparity r; NaN where s*r + t <= 0."""
        q = self.scale * np.asarray(r, dtype=np.float64) + self.shift
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(q > 0, 1.0 / q, np.nan)


@dataclass
class MetricResult:
    """Output of :meth:`MetricDepthEstimator.update`."""

    depth_m: np.ndarray | None  #: float32 (H, W) metres, camera optical frame; NaN invalid; None when the frame is invalid
    valid: bool
    reason: str  #: why (in)valid, for diagnostics
    fit: ScaleFit | None  #: this frame's fit (None when no tag / fit rejected)
    scale: float | None  #: filtered scale used for depth_m
    shift: float | None  #: filtered shift used for depth_m
    tags: list[TagDetection] = field(default_factory=list)
    stamp_ns: int = 0


def fit_scale_shift(
    disparity: np.ndarray,
    depth_m: np.ndarray,
    weight: np.ndarray | None = None,
    *,
    prior_shift: float | None = None,
    config: ScaleFitConfig | None = None,
    force_scale_only: bool = False,
) -> ScaleFit | None:
    """Robust fit of ``1/depth_m = s * disparity + t`` over anchors (1-D arrays of equal length).

    Args:
        disparity: DKT relative disparity at the anchors (unitless).
        depth_m: anchor z-depth in metres (camera optical frame).
        weight: non-negative anchor weights (default 1).
        prior_shift: t used when the shift is unobservable (else ``config.default_shift``).
    Returns:
        the fit, or None when there are too few usable anchors or the scale is not positive.
    """
    c = config or ScaleFitConfig()
    r = np.asarray(disparity, dtype=np.float64).reshape(-1)
    z = np.asarray(depth_m, dtype=np.float64).reshape(-1)
    w = np.ones_like(z) if weight is None else np.asarray(weight, dtype=np.float64).reshape(-1)
    if not (r.shape == z.shape == w.shape):
        raise MetricScaleError(f"disparity, depth and weight must have one value per anchor, got {r.shape}, {z.shape}, {w.shape}")
    ok = np.isfinite(r) & np.isfinite(z) & (z > 0) & np.isfinite(w) & (w > 0)
    r, z, w = r[ok], z[ok], w[ok]
    if r.size < max(c.min_anchors, 2):
        return None
    inv = 1.0 / z
    wsum = w.sum()
    inv_mean = float((w * inv).sum() / wsum)
    spread = float(np.sqrt((w * (inv - inv_mean) ** 2).sum() / wsum) / inv_mean)
    # The noise is in the disparity, not in the anchors' depth (tags give z to ~1 mm), so regress
    # r = alpha * (1/z) + beta and invert (s = 1/alpha, t = -beta/alpha): regressing 1/z on a noisy r
    # would shrink the scale (errors-in-variables bias). Rows are scaled by z^2 so that a residual
    # divided by alpha is, to first order, a depth error in metres.
    z2 = z * z
    A = np.stack([z2 * inv, z2], axis=1)  # columns: z^2 * (1/z), z^2 * 1
    b = z2 * r
    # Condition number of the column-normalised weighted design, from its 2x2 Gram matrix.
    G = (A * w[:, None]).T @ A
    d = np.sqrt(np.diag(G))
    cond = float(np.sqrt(np.linalg.cond(G / np.outer(d, d)))) if np.all(d > 0) else float("inf")
    affine = not force_scale_only and spread >= c.min_inverse_depth_spread and cond <= c.max_condition
    t0 = c.default_shift if prior_shift is None else float(prior_shift)

    hw = np.ones_like(z)
    params = np.zeros(2)
    prev = None
    a0 = z2 * (inv - t0)  # scale-only design: 1/z = s r + t0  <=>  r = alpha (1/z - t0)
    for _ in range(max(c.irls_iterations, 1)):
        ww = w * hw
        if affine:
            # 2x2 weighted normal equations (the columns are well scaled: cond checked above).
            Aw = A * ww[:, None]
            params = np.linalg.solve(Aw.T @ A, Aw.T @ b)
        else:
            denom = float((ww * a0) @ a0)
            if denom <= 0:
                return None
            alpha = float((ww * a0) @ b) / denom
            params = np.array([alpha, -alpha * t0])
        if not params[0] > 0:
            return None
        e = (A @ params - b) / params[0]  # ~ depth error, m
        sigma = 1.4826 * float(np.median(np.abs(e - np.median(e))))
        delta = max(c.huber_k * sigma, c.huber_min_mm * 1e-3)
        ae = np.abs(e)
        hw = np.minimum(1.0, delta / np.maximum(ae, 1e-15))
        # Converged when the fit moves less than 1e-6 relative (sub-micrometre at these depths).
        if prev is not None and np.all(np.abs(params - prev) <= 1e-6 * np.maximum(np.abs(params), 1e-12)):
            break
        prev = params
    params = np.array([1.0 / params[0], -params[1] / params[0]])
    s, t = float(params[0]), float(params[1])
    if not (np.isfinite(s) and np.isfinite(t)) or s <= 0:
        return None
    q = s * r + t
    with np.errstate(divide="ignore"):
        z_fit = np.where(q > 0, 1.0 / q, np.inf)
    res = np.abs(z_fit - z)
    sigma = 1.4826 * float(np.median(np.abs(res - np.median(res)))) if res.size else 0.0
    thr = max(c.inlier_sigmas * sigma, c.inlier_min_mm * 1e-3)
    inl = res <= thr
    return ScaleFit(
        scale=s,
        shift=t,
        mode="affine" if affine else "scale_only",
        n_anchors=int(r.size),
        n_inliers=int(inl.sum()),
        inlier_ratio=float(inl.mean()),
        residual_median_mm=float(np.median(res) * 1e3),
        residual_rms_mm=float(np.sqrt(np.mean(res[inl] ** 2)) * 1e3) if inl.any() else float("nan"),
        residual_sigma_mm=float(sigma * 1e3),
        condition_number=cond,
        inverse_depth_spread=spread,
        r_range=tuple(float(v) for v in np.percentile(r, [5, 95])),
    )


def metric_depth(disparity: np.ndarray, scale: float, shift: float, z_min_m: float, z_max_m: float) -> np.ndarray:
    """z = 1 / (scale * disparity + shift) in metres, float32; NaN where invalid or outside [z_min_m, z_max_m]."""
    r = np.asarray(disparity, dtype=np.float32)
    q = r * np.float32(scale) + np.float32(shift)
    # 1/q lies in [z_min, z_max] iff q in [1/z_max, 1/z_min]: one range test, then one division.
    ok = (q >= np.float32(1.0 / z_max_m)) & (q <= np.float32(1.0 / z_min_m))
    q[~ok] = np.nan
    return np.reciprocal(q, out=q)


def raw_depth_anchors(
    raw_depth_m: np.ndarray,
    disparity: np.ndarray,
    config: RawAnchorConfig,
    reference: ScaleFit | None,
    tag_weight_total: float,
    exclude: np.ndarray | None = None,
) -> tuple[TagAnchors, int]:
    """Anchors from raw sensor depth (m, camera optical frame) on pixels it measures well.

    A pixel is kept when its depth is finite and in range, agrees with the median of its
    ``window`` (no edges, no speckle), and, when ``reference`` (the tag-only fit) is given,
    agrees with the depth it predicts from the disparity: raw depth through glass (the table
    behind) or spikes on metal disagree with DKT's disparity there and are dropped.
    Returns (anchors with tag_id -1, number of candidate pixels rejected).
    """
    c = config
    H, W = raw_depth_m.shape
    s = max(int(c.stride), 1)
    raw = np.asarray(raw_depth_m, dtype=np.float32)
    filled = np.where(np.isfinite(raw), raw, 0.0).astype(np.float32)
    if c.window not in (3, 5):  # OpenCV's float median filter supports these two sizes
        raise MetricScaleError(f"raw.window must be 3 or 5, got {c.window}")
    med = cv2.medianBlur(filled, c.window)
    # A window with holes has a lower median: the hole test below rejects those pixels too.
    vv, uu = np.mgrid[s // 2 : H : s, s // 2 : W : s]
    z = raw[vv, uu]
    m = med[vv, uu]
    r = np.asarray(disparity, dtype=np.float32)[vv, uu]
    with np.errstate(invalid="ignore"):
        cand = np.isfinite(z) & (z >= c.min_m) & (z <= c.max_m) & np.isfinite(r)
        good = cand & (np.abs(z - m) <= c.max_local_deviation * z)
    if exclude is not None:
        good &= ~exclude[vv, uu]
    if reference is not None:
        z_ref = reference.depth_at(r)
        gate = np.maximum(c.gate_rel * z_ref, c.gate_sigmas * reference.residual_sigma_mm * 1e-3)
        with np.errstate(invalid="ignore"):
            good &= np.abs(z - z_ref) <= gate
    n_rejected = int(cand.sum() - good.sum())
    u, v, zz = uu[good], vv[good], z[good]
    if u.size > c.max_anchors:
        pick = np.linspace(0, u.size - 1, c.max_anchors).astype(np.int64)
        u, v, zz = u[pick], v[pick], zz[pick]
    n = int(u.size)
    w = np.full(n, c.weight * tag_weight_total / n if n else 0.0, dtype=np.float32)
    anchors = TagAnchors(u.astype(np.int32), v.astype(np.int32), zz.astype(np.float32), w, np.full(n, -1, dtype=np.int32))
    return anchors, n_rejected


class ScaleFilter:
    """EMA on (s, t) with outlier gating, reset on a persistent jump, and a staleness timeout."""

    def __init__(self, config: ScaleFilterConfig | None = None):
        self.config = config or ScaleFilterConfig()
        self.reset()

    def reset(self) -> None:
        self.scale: float | None = None
        self.shift: float | None = None
        self.last_fit_ns: int | None = None
        self.last_stamp_ns: int | None = None
        self._outliers = 0
        self._r_range: tuple[float, float] = (0.0, 1.0)

    @property
    def initialised(self) -> bool:
        return self.scale is not None

    def state(self) -> dict:
        """The filter's whole state, JSON-safe (floats round-trip exactly): a resumed replay continues from it."""
        f = lambda v: None if v is None else float(v)  # noqa: E731 (numpy scalars -> plain floats)
        return {"scale": f(self.scale), "shift": f(self.shift), "last_fit_ns": self.last_fit_ns, "last_stamp_ns": self.last_stamp_ns,
                "outliers": self._outliers, "r_range": [float(x) for x in self._r_range]}

    def restore(self, state: dict) -> None:
        """Undo to a :meth:`state`."""
        self.scale, self.shift = state["scale"], state["shift"]
        self.last_fit_ns, self.last_stamp_ns = state["last_fit_ns"], state["last_stamp_ns"]
        self._outliers, self._r_range = int(state["outliers"]), tuple(state["r_range"])

    def _relative_difference(self, fit: ScaleFit) -> float:
        """Largest relative depth difference between the fit and the filter over the fit's disparity range."""
        r = np.array(fit.r_range, dtype=np.float64)
        z_new = fit.depth_at(r)
        with np.errstate(divide="ignore", invalid="ignore"):
            z_old = 1.0 / (self.scale * r + self.shift)
        d = np.abs(z_new - z_old) / np.abs(z_old)
        return float(np.max(d)) if np.all(np.isfinite(d)) else float("inf")

    def update(self, fit: ScaleFit | None, stamp_ns: int) -> tuple[bool, str]:
        """Feed this frame's fit (or None). Returns (valid, reason); the filtered (s, t) are attributes."""
        c = self.config
        stamp_ns = int(stamp_ns)
        if self.last_stamp_ns is not None and stamp_ns < self.last_stamp_ns:
            self.reset()  # time went backwards: a bag restarted or the clock jumped
        self.last_stamp_ns = stamp_ns
        if fit is not None:
            if not self.initialised:
                self.scale, self.shift = fit.scale, fit.shift
                self.last_fit_ns, self._outliers = stamp_ns, 0
                return True, f"initialised from this frame's {fit.mode} fit"
            diff = self._relative_difference(fit)
            if diff > c.gate_rel:
                self._outliers += 1
                if self._outliers >= c.reset_after:
                    self.scale, self.shift = fit.scale, fit.shift
                    self.last_fit_ns, self._outliers = stamp_ns, 0
                    return True, f"reset after {c.reset_after} consecutive jumps (last {diff:.1%})"
                reason = f"fit rejected as an outlier ({diff:.1%} depth change)"
            else:
                a = c.alpha
                self.scale = (1 - a) * self.scale + a * fit.scale
                self.shift = (1 - a) * self.shift + a * fit.shift
                self.last_fit_ns, self._outliers = stamp_ns, 0
                return True, f"{fit.mode} fit"
        else:
            reason = "no tag fit this frame"
        if not self.initialised or self.last_fit_ns is None:
            return False, f"{reason}; no scale yet"
        age_s = (stamp_ns - self.last_fit_ns) * 1e-9
        if age_s > c.tag_timeout_s:
            return False, f"{reason}; last fit {age_s:.2f} s ago > tag_timeout_s {c.tag_timeout_s}"
        return True, f"{reason}; holding the fit from {age_s:.2f} s ago"


class MetricDepthEstimator:
    """Tags -> anchors -> robust fit -> temporal filter -> metric depth. Called by the ROS node and the replay."""

    def __init__(self, config: MetricScaleConfig | None = None):
        self.config = config or MetricScaleConfig()
        self.detector = TagDetector(self.config.tags)
        self.filter = ScaleFilter(self.config.filter)

    def reset(self) -> None:
        self.filter.reset()

    def fit_frame(
        self,
        disparity: np.ndarray,
        anchors: TagAnchors,
        raw_depth_m: np.ndarray | None = None,
    ) -> tuple[ScaleFit | None, str]:
        """This frame's fit from tag anchors (+ gated raw-depth anchors); (fit or None, reason)."""
        c = self.config
        prior = self.filter.shift if self.filter.initialised else None
        if len(anchors) == 0:
            return None, "no tag anchors"
        r_tag = disparity[anchors.v, anchors.u]
        tag_fit = fit_scale_shift(r_tag, anchors.depth_m, anchors.weight, prior_shift=prior, config=c.fit)
        fit = tag_fit
        if c.raw.enabled and raw_depth_m is not None:
            tag_mask = np.zeros(disparity.shape, dtype=bool)
            tag_mask[anchors.v, anchors.u] = True
            reference = tag_fit
            if reference is None and self.filter.initialised:
                reference = ScaleFit(self.filter.scale, self.filter.shift, "affine", 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, (0.0, 1.0))
            raw, n_rej = raw_depth_anchors(raw_depth_m, disparity, c.raw, reference, float(anchors.weight.sum()), exclude=tag_mask)
            if reference is not None and len(raw):
                both = TagAnchors.concatenate([anchors, raw])
                combined = fit_scale_shift(disparity[both.v, both.u], both.depth_m, both.weight, prior_shift=prior, config=c.fit)
                if combined is not None:
                    combined.n_raw_anchors, combined.n_raw_rejected = len(raw), n_rej
                    fit = combined
        if fit is None:
            return None, "too few usable anchors or non-positive scale"
        fit.n_tag_anchors = len(anchors)
        if fit.inlier_ratio < c.fit.min_inlier_ratio:
            return None, f"fit rejected: inlier ratio {fit.inlier_ratio:.2f} < {c.fit.min_inlier_ratio}"
        if fit.residual_median_mm > c.fit.max_median_residual_mm:
            return None, f"fit rejected: median residual {fit.residual_median_mm:.1f} mm > {c.fit.max_median_residual_mm}"
        return fit, f"{fit.mode} fit"

    def update(
        self,
        disparity: np.ndarray,
        rgb: np.ndarray,
        intrinsics: CameraIntrinsics,
        stamp_ns: int,
        raw_depth_m: np.ndarray | None = None,
    ) -> MetricResult:
        """One frame.

        Args:
            disparity: (H, W) DKT affine-invariant disparity, same size as ``rgb``.
            rgb: (H, W, 3) uint8 RGB (or (H, W) grey) image the tags are detected in.
            intrinsics: of ``rgb`` (and of the disparity and raw depth, which are aligned to it).
            stamp_ns: frame stamp, integer nanoseconds.
            raw_depth_m: optional (H, W) float sensor depth in metres (NaN/0 = no data), aligned to ``rgb``.
        """
        disparity = np.asarray(disparity)
        size = (intrinsics.height, intrinsics.width)
        if disparity.ndim != 2 or disparity.shape != size:
            raise MetricScaleError(f"disparity must be (H, W) = {size} like the intrinsics, got shape {disparity.shape}")
        if np.asarray(rgb).shape[:2] != size:
            raise MetricScaleError(f"rgb must be {size[1]}x{size[0]} like the intrinsics, got shape {np.asarray(rgb).shape}")
        if raw_depth_m is not None:
            raw_depth_m = np.asarray(raw_depth_m, dtype=np.float32)
            if raw_depth_m.shape != size:
                raise MetricScaleError(f"raw_depth_m must be {size}, got shape {raw_depth_m.shape}")
            raw_depth_m = np.where(raw_depth_m > 0, raw_depth_m, np.nan)
        obs = self.detector.observe(rgb, intrinsics)
        fit, fit_reason = self.fit_frame(disparity, obs.anchors, raw_depth_m)
        valid, reason = self.filter.update(fit, stamp_ns)
        if fit is None:
            reason = f"{fit_reason}; {reason}"
        if not valid:
            return MetricResult(None, False, reason, fit, None, None, obs.detections, int(stamp_ns))
        depth = metric_depth(disparity, self.filter.scale, self.filter.shift, self.config.z_min_m, self.config.z_max_m)
        return MetricResult(depth, True, reason, fit, self.filter.scale, self.filter.shift, obs.detections, int(stamp_ns))
