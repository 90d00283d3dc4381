"""AprilTag detection and metric depth anchors.

A detected tag gives the metric depth of every pixel on its printed square:
intersect the pixel's camera ray with the tag plane. These anchors fix the
scale and shift of DKT's affine-invariant disparity (see ``metric_scale``).

Pose: ``cv2.solvePnPGeneric(..., SOLVEPNP_IPPE_SQUARE)`` on the four
detected corners rather than pupil-apriltags' own pose estimate, because
(1) IPPE is closed-form and returns *both* planar-pose solutions with their
reprojection errors, so a tag whose pose is ambiguous (small, far, seen
frontally) can be down-weighted instead of silently trusted; (2) the tag size
can differ per id without a second detector pass (pupil takes one size per
``detect`` call); (3) detection can skip pupil's pose step entirely.

Conventions: pixel coordinates use the CameraInfo convention (centre of pixel
(0, 0) at (0, 0)); depth is z in the camera optical frame, metres. The tag
frame is pupil's: origin at the tag centre, corners in the order IPPE_SQUARE
expects, (-s/2, s/2), (s/2, s/2), (s/2, -s/2), (-s/2, -s/2), z normal to the face.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import cv2
import numpy as np

from dkt_stack.config import param
from dkt_stack.intrinsics import CameraIntrinsics
from dkt_stack.transforms import make_transform


@dataclass
class TagConfig:
    """Which tags to trust, their sizes, detector settings and how anchors are drawn from them."""

    family: str = param("tag36h11", help="AprilTag family (pupil-apriltags name)")
    ids: list[int] = param(default_factory=list, help="tag ids to use; empty = any id (then sizes_m must hold one size)")
    sizes_m: list[float] = param(
        default_factory=lambda: [0.06], help="black-square edge in metres: one per id in `ids`, or a single size for all"
    )
    quad_decimate: float = param(2.0, help="detector input decimation (faster, coarser quads; corners are refined at full resolution)")
    quad_sigma: float = param(0.0, help="Gaussian blur sigma applied before quad detection, px")
    refine_edges: bool = param(True, help="snap quad edges to strong gradients (sub-pixel corners)")
    decode_sharpening: float = param(0.25, help="sharpening of the decoded image")
    threads: int = param(1, help="detector threads")
    min_decision_margin: float = param(30.0, help="reject detections whose decision margin is below this")
    max_hamming: int = param(0, help="reject detections with more corrected bit errors than this")
    corner_offset_px: float = param(
        -0.5,
        help="added to pupil-apriltags corners: its edge refinement reports pixel-corner coordinates; -0.5 gives CameraInfo's pixel-centre convention",
    )
    refine_corners: bool = param(
        True,
        help="re-locate the black square's edges by pixel area (unbiased for straight edges) and intersect them; off, on failure or for border cells under ~3.5 px: pupil-apriltags' corners",
    )
    max_reprojection_error_px: float = param(2.0, help="reject tags whose best pose reprojects the corners worse than this (RMS, px)")
    margin_good: float = param(80.0, help="decision margin at which a tag gets full weight")
    ambiguity_ratio: float = param(
        2.0, help="a pose whose second IPPE solution reprojects within this factor of the best is ambiguous: half weight"
    )
    anchor_margin: float = param(
        0.0, help="grow the anchor region by this fraction of the tag size on every side (0.125 = the whole white border)"
    )
    anchor_stride: int = param(
        2, help="use every n-th pixel (in u and v) of a tag as an anchor (neighbours are redundant; 2 makes the fit 4x cheaper)"
    )
    balance_tags: bool = param(True, help="give every tag the same total weight whatever its pixel count (spreads anchors over depths)")

    def __post_init__(self) -> None:
        if self.ids and len(self.sizes_m) not in (1, len(self.ids)):
            raise ValueError(f"tags.sizes_m must hold 1 or len(ids)={len(self.ids)} sizes, got {len(self.sizes_m)}")
        if not self.ids and len(self.sizes_m) != 1:
            raise ValueError(f"with no tags.ids, tags.sizes_m must hold exactly one size, got {len(self.sizes_m)}")
        if any(s <= 0 for s in self.sizes_m):
            raise ValueError(f"tag sizes must be positive metres, got {self.sizes_m}")
        if self.anchor_stride < 1:
            raise ValueError(f"anchor_stride must be >= 1, got {self.anchor_stride}")
        if self.quad_decimate < 1.0:
            raise ValueError(f"quad_decimate must be >= 1, got {self.quad_decimate}")

    def size_of(self, tag_id: int) -> float | None:
        """Edge of the black square of ``tag_id`` in metres; None when the id is not allowed."""
        if not self.ids:
            return float(self.sizes_m[0])
        if tag_id not in self.ids:
            return None
        return float(self.sizes_m[0] if len(self.sizes_m) == 1 else self.sizes_m[self.ids.index(tag_id)])


@dataclass
class TagDetection:
    """One accepted tag. ``T_camera_tag`` maps tag-frame points (m) to the camera optical frame."""

    id: int
    size_m: float
    corners_px: np.ndarray  #: 4x2 float64, pixel-centre convention, IPPE_SQUARE order
    center_px: np.ndarray  #: (2,) float64
    decision_margin: float
    hamming: int
    T_camera_tag: np.ndarray  #: 4x4
    reprojection_error_px: float  #: RMS over the 4 corners, best pose
    ambiguity: float  #: reprojection error of the second IPPE solution / the best's (large = unambiguous)
    weight: float  #: trust in [0, 1]
    corners_refined: bool = False  #: corners from :func:`refine_square_corners` (else pupil-apriltags' own)

    @property
    def normal_camera(self) -> np.ndarray:
        return self.T_camera_tag[:3, 2]

    @property
    def distance_m(self) -> float:
        return float(np.linalg.norm(self.T_camera_tag[:3, 3]))


@dataclass
class TagAnchors:
    """Metric depth anchors: pixel (u, v) has z = ``depth_m`` (camera optical frame, m)."""

    u: np.ndarray  #: int32 (N,) column
    v: np.ndarray  #: int32 (N,) row
    depth_m: np.ndarray  #: float32 (N,) z-depth in metres
    weight: np.ndarray  #: float32 (N,) >= 0
    tag_id: np.ndarray  #: int32 (N,) id of the tag each anchor lies on (-1: not from a tag)

    def __len__(self) -> int:
        return int(self.u.size)

    @classmethod
    def empty(cls) -> TagAnchors:
        i = np.zeros(0, dtype=np.int32)
        return cls(i, i.copy(), np.zeros(0, np.float32), np.zeros(0, np.float32), i.copy())

    @classmethod
    def concatenate(cls, parts: list[TagAnchors]) -> TagAnchors:
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in ("u", "v", "depth_m", "weight", "tag_id")))


@dataclass
class TagObservation:
    """Everything the tags in one image tell: accepted detections, rejections (id, reason) and anchors."""

    detections: list[TagDetection]
    anchors: TagAnchors
    rejected: list[tuple[int, str]] = field(default_factory=list)


def to_gray(image: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) or grey (H, W) uint8 -> contiguous grey uint8 (what the detector takes)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"tag detection needs a uint8 image, got dtype {image.dtype}")
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if image.ndim == 3 and image.shape[2] == 1:
        return np.ascontiguousarray(image[..., 0])
    raise ValueError(f"tag detection needs an (H, W) or (H, W, 3) image, got shape {image.shape}")


def square_object_points(size_m: float, margin: float = 0.0) -> np.ndarray:
    """4x3 tag-frame corners of the black square grown by ``margin`` x size per side, IPPE_SQUARE order."""
    h = size_m * (0.5 + margin)
    return np.array([[-h, h, 0.0], [h, h, 0.0], [h, -h, 0.0], [-h, -h, 0.0]])


def tag_pose_ippe(corners_px: np.ndarray, size_m: float, intrinsics: CameraIntrinsics) -> tuple[np.ndarray, float, float]:
    """Pose of a square tag from its 4 corners (px, IPPE order): (T_camera_tag 4x4, RMS reprojection px, ambiguity ratio).

    OpenCV's IPPE turns its rotation into a vector by dividing by sin(angle), which breaks down at a rotation of
    exactly 180 deg (a tag seen straight on and upside down, with exact corners): the pose is also solved with the
    corners relabelled a quarter turn (the tag frame turned 90 deg about its normal, far from 180 deg for any visible
    tag), and the labelling that reprojects better is kept. Both are the same pose otherwise.
    """
    obj = square_object_points(size_m).astype(np.float64)
    img = np.asarray(corners_px, dtype=np.float64).reshape(4, 2)
    best = None
    for quarter in (0, 1):
        # Image corner k + quarter is solved as object corner k; object corner k + 1 is corner k turned -90 deg about z.
        labelled = np.roll(img, -quarter, axis=0).reshape(4, 1, 2)
        n, rvecs, tvecs, errs = cv2.solvePnPGeneric(obj, labelled, intrinsics.K, None, flags=cv2.SOLVEPNP_IPPE_SQUARE)
        if n < 1:
            continue
        errs = np.asarray(errs, dtype=np.float64).reshape(-1)
        order = np.argsort(errs)
        if best is not None and not errs[order[0]] < best[1]:
            continue
        R, _ = cv2.Rodrigues(rvecs[order[0]])
        R = R @ _QUARTER_TURN_Z if quarter else R
        ambiguity = float(errs[order[1]] / max(errs[order[0]], 1e-6)) if n > 1 else float("inf")
        best = (make_transform(R, np.asarray(tvecs[order[0]]).reshape(3)), float(errs[order[0]]), ambiguity)
    if best is None:
        raise ValueError("IPPE_SQUARE found no pose for the tag corners")
    return best


#: Rotation by +90 deg about z: takes a pose solved with the corners relabelled a quarter turn back to the tag frame.
_QUARTER_TURN_Z = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def plane_depth(T_camera_tag: np.ndarray, u: np.ndarray, v: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """z-depth (m) where the rays of pixels (u, v) meet the tag plane; NaN where the ray misses it (float64)."""
    n = T_camera_tag[:3, 2]
    d = float(n @ T_camera_tag[:3, 3])
    x = (np.asarray(u, dtype=np.float64) - intrinsics.cx) / intrinsics.fx
    y = (np.asarray(v, dtype=np.float64) - intrinsics.cy) / intrinsics.fy
    denom = n[0] * x + n[1] * y + n[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = d / denom
    return np.where((np.abs(denom) > 1e-9) & (z > 0), z, np.nan)


#: A refined corner farther than this from pupil-apriltags' (px) means the edge fits saw something else: keep pupil's.
_MAX_REFINE_SHIFT_PX = 1.0
#: The end pixels of an edge's sampling window lie at least this far (px) from the edge: pure paper and pure ink.
_EDGE_CLEARANCE_PX = 0.5
#: Tag-plane corners of the black square in cells (8 cells a side: 6 data + 2 border), IPPE_SQUARE order.
_SQUARE_CELLS = np.array([[-4.0, 4.0], [4.0, 4.0], [4.0, -4.0], [-4.0, -4.0]])


def refine_square_corners(gray: np.ndarray, corners_px: np.ndarray, iterations: int = 2) -> np.ndarray | None:
    """Sub-pixel corners of a tag's black square from its four edges; None when the tag is too small or a fit fails.

    Why: pupil-apriltags places each edge at the gradient-weighted mean of nearest-pixel samples, biased by up to
    ~0.2 px depending on where the edge falls within a pixel (most for edges along the pixel grid). On a 50 px tag
    0.1 px is ~0.5 mm of depth at 0.7 m, and the metric scale fit extrapolates that error across the image.

    How: a pixel integrates light over its area, so across a straight ink/paper edge the sum of a pixel column's
    paper fractions ``(I - ink) / (paper - ink)`` is exactly the length of the column's paper part, whatever the
    edge's sub-pixel phase or slope, and a symmetric blur that stays inside the window does not change it. Each edge
    is measured so in every pixel column (row, for steep edges) of the band half a cell either side of it (the black
    border inside, the printed white margin outside; wider for small tags, up to the cell), away from the corners;
    a robust straight-line fit per edge and the intersections of neighbouring edges give the corners. Ink and paper
    levels are medians of the windows' end pixels along the edge (lighting uniform along one edge). Each column's
    window is symmetric about the current edge estimate, so that a blur tail reaching the end pixels biases both
    levels alike and cancels in the sum; a second pass re-centres the windows on the first pass's corners.

    Args:
        gray: (H, W) uint8 image the tag was detected in.
        corners_px: 4x2 corners of the black square in IPPE order (px, CameraInfo convention: pixel centres at
            integers), within a few tenths of a pixel (pupil-apriltags' are).
    Returns:
        4x2 float64 corners in the same order and convention, or None (the caller keeps its corners).
        ``iterations`` > 1 re-centres the sampling windows on the previous pass's corners. On sharp images one pass
        is exact from corners within a few tenths of a pixel; under blur an off-centre window leaves a bias of about
        twice the blur tail at the window's ends times the offset, and the second pass removes most of it
        (``python -m dkt_perception.tag_accuracy --seeds 0 --blur 1.5``, corner RMS of tags 0/1/2: 0.070/0.018/
        0.098 px after two passes, 0.105/0.024/0.149 after one, pupil-apriltags' 0.089/0.058/0.240; a third pass
        does not help).
    """
    start = np.asarray(corners_px, dtype=np.float64).reshape(4, 2)
    c = start
    swap = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    for _ in range(iterations):
        try:
            H = cv2.getPerspectiveTransform(_SQUARE_CELLS.astype(np.float32), c.astype(np.float32))  # cells -> px
            lines = []
            for e in range(4):
                steep = abs(c[(e + 1) % 4, 1] - c[e, 1]) > abs(c[(e + 1) % 4, 0] - c[e, 0])  # fitted in the transposed image
                fit = _fit_edge(gray.T if steep else gray, swap @ H if steep else H, e)
                if fit is None:
                    return None
                slope, offset = fit  # v = slope * u + offset (u, v swapped for steep edges)
                lines.append((np.array([1.0, -slope]) if steep else np.array([-slope, 1.0]), offset))
            c = np.array([np.linalg.solve(np.stack([lines[k - 1][0], lines[k][0]]), [lines[k - 1][1], lines[k][1]]) for k in range(4)])
        except np.linalg.LinAlgError:  # a degenerate quad or parallel neighbouring edges: nothing to refine
            return None
        if not np.all(np.isfinite(c)) or np.max(np.linalg.norm(c - start, axis=1)) > _MAX_REFINE_SHIFT_PX:
            return None
    return c


def diagonal_intersection(corners_px: np.ndarray) -> np.ndarray:
    """Image of a square's centre (px): where the diagonals of its four projected corners (in order) cross."""
    p0, p1, p2, p3 = np.asarray(corners_px, dtype=np.float64).reshape(4, 2)
    d1, d2, r = p2 - p0, p3 - p1, p1 - p0
    t = (r[0] * d2[1] - r[1] * d2[0]) / (d1[0] * d2[1] - d1[1] * d2[0])
    return p0 + t * d1


def _fit_edge(img: np.ndarray, H: np.ndarray, edge: int) -> tuple[float, float] | None:
    """Line v = slope * u + offset (px) through edge ``edge`` (corner e -> e+1) of the square, or None.

    ``H`` maps tag-plane cells (the square is [-4, 4]^2) to this image's (u, v); the edge must be at most 45 deg
    from the u axis. A tag-plane line l maps to the image line ``inv(H).T @ l``, which crosses column u at
    v = -(l0 u + l2) / l1.
    """
    rows, cols = img.shape
    a, b = _SQUARE_CELLS[edge], _SQUARE_CELLS[(edge + 1) % 4]
    out_dir, along = (a + b) / 8.0, (b - a) / 8.0  # unit outward normal and edge direction, tag plane
    H_inv = np.linalg.inv(H)
    # Image lines of the tag lines {p: out_dir . p = 4 + offset} for offsets (cells) 0 (the edge), -1, -w, +w.
    ends = np.array([H @ (a[0], a[1], 1.0), H @ (b[0], b[1], 1.0)])
    ends = ends[:, :2] / ends[:, 2:]
    mid = 0.5 * (ends[0, 0] + ends[1, 0])
    if not abs(ends[1, 0] - ends[0, 0]) >= 1.0:  # a degenerate (or non-finite) edge
        return None
    slope = (ends[1, 1] - ends[0, 1]) / (ends[1, 0] - ends[0, 0])

    def column_v(offset_cells: float, u):
        line = H_inv.T @ (out_dir[0], out_dir[1], -(4.0 + offset_cells))
        return -(line[0] * u + line[2]) / line[1]

    cell_px = abs(column_v(-1.0, mid) - column_v(0.0, mid)) / np.hypot(1.0, slope)  # border width along the normal
    # Band half-width (cells): half a cell leaves room for blur on both sides; small tags need more of the cell
    # for the edge's own transition (|slope| / 2), the clearance and one pure pixel each side.
    half = max(0.5, (_EDGE_CLEARANCE_PX + 2.0 + 0.5 * abs(slope)) / cell_px)
    if half > 1.0 - 0.25 / cell_px:
        return None
    u = np.arange(max(np.ceil(ends[:, 0].min()), 0.0), min(np.floor(ends[:, 0].max()), cols - 1.0) + 1.0)
    strip = np.stack([u - 0.5, u + 0.5])  # each column's extent in u
    v_edge, v_in, v_out = (column_v(o, strip) for o in (0.0, -half, half))
    ink_below = column_v(-half, mid) > column_v(0.0, mid)
    lo_line, hi_line = (v_out, v_in) if ink_below else (v_in, v_out)
    first = np.ceil(lo_line.max(axis=0) + 0.5)  # pixels entirely inside the band
    last = np.floor(hi_line.min(axis=0) - 0.5)
    ok = (first >= 0) & (last <= rows - 1)
    ok &= (first + 0.5 <= v_edge.min(axis=0) - _EDGE_CLEARANCE_PX) & (last - 0.5 >= v_edge.max(axis=0) + _EDGE_CLEARANCE_PX)
    # Half a cell from the corners, where the neighbouring edges enter the band: the window's corners, in cells.
    box = np.stack([np.repeat(strip, 2, axis=0), np.tile(np.stack([first - 0.5, last + 0.5]), (2, 1)), np.ones((4, u.size))])
    tag_box = np.einsum("ij,jkn->ikn", H_inv, box)
    ok &= np.all(np.abs(along[0] * tag_box[0] + along[1] * tag_box[1]) <= 3.5 * np.abs(tag_box[2]), axis=0)
    centre = column_v(0.0, u)[ok]  # the edge at each column's centre, from the current corners
    u, first, last = u[ok].astype(np.int64), first[ok].astype(np.int64), last[ok].astype(np.int64)
    if u.size < 4:
        return None
    # The window is symmetric about the current edge: the end pixels' levels then err by the same blur tail on
    # both sides, and that error cancels in the sum (an off-centre window would shift the edge by about twice the
    # tail fraction times the offset). The largest symmetric window inside the pure pixels; ends are fractional.
    half_px = np.minimum(centre - (first - 0.5), (last + 0.5) - centre)
    lo, hi = centre - half_px, centre + half_px
    k = first[:, None] + np.arange(int((last - first).max()) + 1)
    weight = np.clip(np.minimum(k + 0.5, hi[:, None]) - np.maximum(k - 0.5, lo[:, None]), 0.0, 1.0)  # pixel overlap
    profile = img[np.minimum(k, last[:, None]), u[:, None]].astype(np.float64)  # (columns, window)
    rows_idx = np.arange(u.size)
    span = last - first
    top_px = profile[rows_idx, np.clip(np.floor(lo + 0.5).astype(np.int64) - first, 0, span)]  # pixels holding the ends
    bottom_px = profile[rows_idx, np.clip(np.ceil(hi - 0.5).astype(np.int64) - first, 0, span)]
    paper, ink = np.median(np.stack([top_px, bottom_px] if ink_below else [bottom_px, top_px]), axis=1)
    if paper - ink < 10.0:  # no contrast: not this tag's edge
        return None
    paper_px = np.sum(weight * (profile - ink), axis=1) / (paper - ink)
    v = lo + paper_px if ink_below else hi - paper_px
    keep = np.ones(u.size, dtype=bool)
    for _ in range(2):  # least squares, then again without columns off the line (glints, occluders, noise)
        slope_fit, offset = _line_fit(u[keep], v[keep])
        resid = np.abs(v - (slope_fit * u + offset))
        keep = resid <= max(3.0 * 1.4826 * np.median(resid[keep]), 0.05)
        if keep.sum() < 4:
            return None
    return _line_fit(u[keep], v[keep])


def _line_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares (slope, offset) of y = slope * x + offset."""
    xm, ym = x.mean(), y.mean()
    dx = x - xm
    slope = float(dx @ (y - ym) / (dx @ dx))
    return slope, float(ym - slope * xm)


@functools.lru_cache(maxsize=1)
def _safe_detector_class():
    """pupil-apriltags' Detector with a destructor that does not read freed memory.

    pupil-apriltags 1.0.4's ``Detector.__del__`` frees the tag families and then calls
    ``apriltag_detector_destroy``, which walks those families again
    (``apriltag_detector_clear_families``): a use-after-free that aborts the process now
    and then when a detector is garbage-collected (pupil-labs/apriltags#34, #46). Clearing
    the families from the detector first makes the library's own destructor safe.
    """
    import pupil_apriltags

    class _Detector(pupil_apriltags.Detector):
        def __del__(self):
            ptr = getattr(self, "tag_detector_ptr", None)
            if ptr is not None:
                self.libc.apriltag_detector_clear_families.restype = None
                self.libc.apriltag_detector_clear_families(ptr)
            super().__del__()

    return _Detector


class TagDetector:
    """pupil-apriltags detection + IPPE pose + per-pixel metric anchors. One detector per thread."""

    def __init__(self, config: TagConfig | None = None):
        try:
            detector_class = _safe_detector_class()
        except ImportError as exc:  # pragma: no cover - a hard dependency, named for a clear message
            raise ImportError("tag detection needs the 'pupil-apriltags' package (pip install pupil-apriltags)") from exc
        self.config = config or TagConfig()
        c = self.config
        self._detector = detector_class(
            families=c.family,
            nthreads=int(c.threads),
            quad_decimate=float(c.quad_decimate),
            quad_sigma=float(c.quad_sigma),
            refine_edges=int(bool(c.refine_edges)),
            decode_sharpening=float(c.decode_sharpening),
        )

    def detect(self, image: np.ndarray, intrinsics: CameraIntrinsics) -> tuple[list[TagDetection], list[tuple[int, str]]]:
        """Accepted tags in an RGB/grey uint8 image, and (id, reason) for each rejected one."""
        c = self.config
        gray = to_gray(image)
        if gray.shape != (intrinsics.height, intrinsics.width):
            raise ValueError(f"image is {gray.shape[1]}x{gray.shape[0]} but the intrinsics are {intrinsics.width}x{intrinsics.height}")
        accepted: list[TagDetection] = []
        rejected: list[tuple[int, str]] = []
        for det in self._detector.detect(gray):
            tag_id = int(det.tag_id)
            size = c.size_of(tag_id)
            if size is None:
                rejected.append((tag_id, "id not in tags.ids"))
                continue
            if det.hamming > c.max_hamming:
                rejected.append((tag_id, f"hamming {det.hamming} > {c.max_hamming}"))
                continue
            if det.decision_margin < c.min_decision_margin:
                rejected.append((tag_id, f"decision margin {det.decision_margin:.1f} < {c.min_decision_margin}"))
                continue
            corners = np.asarray(det.corners, dtype=np.float64) + c.corner_offset_px
            center = np.asarray(det.center, dtype=np.float64) + c.corner_offset_px
            refined = refine_square_corners(gray, corners) if c.refine_corners else None
            if refined is not None:
                corners, center = refined, diagonal_intersection(refined)
            T, err, ambiguity = tag_pose_ippe(corners, size, intrinsics)
            if not err <= c.max_reprojection_error_px or T[2, 3] <= 0:
                rejected.append((tag_id, f"pose reprojection error {err:.2f} px > {c.max_reprojection_error_px}"))
                continue
            weight = min(1.0, det.decision_margin / c.margin_good) / (1.0 + (err / 0.5) ** 2)
            if ambiguity < c.ambiguity_ratio:
                weight *= 0.5
            accepted.append(
                TagDetection(
                    id=tag_id,
                    size_m=size,
                    corners_px=corners,
                    center_px=center,
                    decision_margin=float(det.decision_margin),
                    hamming=int(det.hamming),
                    T_camera_tag=T,
                    reprojection_error_px=err,
                    ambiguity=ambiguity,
                    weight=float(weight),
                    corners_refined=refined is not None,
                )
            )
        # A tag id seen twice is a misdetection or a duplicate print: trust neither.
        ids = [d.id for d in accepted]
        dup = {i for i in ids if ids.count(i) > 1}
        rejected.extend((i, "id seen more than once") for i in sorted(dup))
        return [d for d in accepted if d.id not in dup], rejected

    def anchors(self, detections: list[TagDetection], intrinsics: CameraIntrinsics) -> TagAnchors:
        """Per-pixel metric depth on every detected tag (grown by ``anchor_margin``)."""
        c = self.config
        parts = []
        for det in detections:
            u, v = tag_pixels(det, intrinsics, c.anchor_margin, c.anchor_stride)
            z = plane_depth(det.T_camera_tag, u, v, intrinsics)
            ok = np.isfinite(z)
            u, v, z = u[ok], v[ok], z[ok]
            if u.size == 0:
                continue
            parts.append(
                TagAnchors(
                    u.astype(np.int32),
                    v.astype(np.int32),
                    z.astype(np.float32),
                    np.full(u.size, det.weight, dtype=np.float32),
                    np.full(u.size, det.id, dtype=np.int32),
                )
            )
        anchors = TagAnchors.concatenate(parts)
        if c.balance_tags and parts:
            mean_count = len(anchors) / len(parts)
            for p, start in zip(parts, np.cumsum([0] + [len(p) for p in parts[:-1]])):
                anchors.weight[start : start + len(p)] *= np.float32(mean_count / len(p))
        return anchors

    def observe(self, image: np.ndarray, intrinsics: CameraIntrinsics) -> TagObservation:
        """Detect tags in an RGB (or grey) uint8 image and draw their metric anchors."""
        detections, rejected = self.detect(image, intrinsics)
        return TagObservation(detections, self.anchors(detections, intrinsics), rejected)


def tag_pixels(det: TagDetection, intrinsics: CameraIntrinsics, margin: float = 0.0, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres (u, v) inside the tag square grown by ``margin`` x size, as projected by the tag's pose."""
    corners_cam = (det.T_camera_tag[:3, :3] @ square_object_points(det.size_m, margin).T).T + det.T_camera_tag[:3, 3]
    if np.any(corners_cam[:, 2] <= 1e-6):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    poly = intrinsics.project(corners_cam)
    u0 = int(np.clip(np.floor(poly[:, 0].min()), 0, intrinsics.width - 1))
    u1 = int(np.clip(np.ceil(poly[:, 0].max()), 0, intrinsics.width - 1))
    v0 = int(np.clip(np.floor(poly[:, 1].min()), 0, intrinsics.height - 1))
    v1 = int(np.clip(np.ceil(poly[:, 1].max()), 0, intrinsics.height - 1))
    mask = np.zeros((v1 - v0 + 1, u1 - u0 + 1), dtype=np.uint8)
    shift = 4  # sub-pixel polygon vertices
    pts = np.round((poly - (u0, v0)) * (1 << shift)).astype(np.int32)
    cv2.fillConvexPoly(mask, pts, 1, lineType=cv2.LINE_8, shift=shift)
    if stride > 1:
        keep = np.zeros_like(mask)  # a global pixel grid, so anchors do not depend on the bounding box
        keep[(-v0) % stride :: stride, (-u0) % stride :: stride] = 1
        mask &= keep
    vv, uu = np.nonzero(mask)
    return uu + u0, vv + v0
