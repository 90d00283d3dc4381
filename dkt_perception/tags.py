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

from dkt_perception.tag_corners import diagonal_intersection, refine_square_corners
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
    corners_refined: bool = False  #: corners from :func:`~dkt_perception.tag_corners.refine_square_corners` (else pupil-apriltags' own)

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
