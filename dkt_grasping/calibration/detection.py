"""From one image to the board's tag corners, rejecting what would spoil a calibration.

A detection is turned down when it is

* **blurred**: the black/white edges of the tag's square are wider than
  ``max_edge_width_px`` (10-90 % rise, measured across all four edges; a sharp
  edge is about 1 px wide, a Gaussian blur of sigma s adds about 2.6 s), or
  the tag is too small in the image to measure;
* **ambiguous**: the planar pose has a second solution that reprojects
  almost as well (a small or frontal board), so the pose could flip;
* **inconsistent**: the board's corners do not fit one rigid board pose (a
  wrong layout or print convention, see :mod:`dkt_grasping.calibration.board`);
* **not the board**: no tag of the board in view. Tags of other ids are named
  in the message, so a wrong id in the configuration is obvious.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dkt_grasping.calibration.board import BoardModel, BoardPose, board_pose, check_pattern_rotation
from dkt_grasping.calibration.samples import TagCorners
from dkt_perception.tags import TagDetector, to_gray
from dkt_stack.config import param
from dkt_stack.intrinsics import CameraIntrinsics


class SampleRejected(ValueError):
    """This capture cannot be a calibration sample; ``reason`` says why in one sentence."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


@dataclass
class DetectionConfig:
    """Tag detector settings and the checks every captured sample passes (pixels)."""

    quad_decimate: float = param(1.0, help="detector input decimation (1 = full resolution: calibration wants every corner pixel)")
    min_decision_margin: float = param(30.0, help="reject tags whose decision margin is below this")
    max_hamming: int = param(0, help="reject tags with more corrected bit errors than this")
    max_edge_width_px: float = param(2.5, help="reject blurred tags: 10-90 % edge width above this, px")
    min_tag_side_px: float = param(24.0, help="reject tags whose black square is smaller than this in the image, px")
    max_tag_rms_px: float = param(1.0, help="reject tags whose own planar pose reprojects their corners worse than this (RMS px)")
    min_ambiguity_ratio: float = param(3.0, help="reject samples whose board pose is ambiguous: second solution error / best below this")
    max_board_rms_px: float = param(1.5, help="reject samples whose board corners fit one rigid pose worse than this (RMS px)")

    def detector(self, model: BoardModel) -> TagDetector:
        """A tag detector for exactly the board's ids and sizes, at these settings."""
        return TagDetector(
            model.tag_config(
                quad_decimate=self.quad_decimate,
                min_decision_margin=self.min_decision_margin,
                max_hamming=self.max_hamming,
                max_reprojection_error_px=self.max_tag_rms_px,
                # weights are for metric anchors; calibration only needs the corners
            )
        )


def edge_width_px(gray: np.ndarray, corners_px: np.ndarray) -> float:
    """Widest 10-90 % black-to-white rise across the 4 edges of a tag's black square, px (NaN when unmeasurable).

    Profiles are sampled along the outward normal at points of each edge away
    from the corners, averaged per edge (noise), within one border cell on
    either side so that neither the data bits nor the surroundings interfere.
    """
    c = np.asarray(corners_px, dtype=np.float64).reshape(4, 2)
    centre = c.mean(axis=0)
    side = float(np.mean(np.linalg.norm(np.roll(c, -1, axis=0) - c, axis=1)))
    reach = min(0.7 * side / 8.0, 8.0)  # one border cell is side / 8 wide; its inner half borders the data bits
    if reach < 1.5:
        return float("nan")
    s = np.arange(-reach, reach + 1e-9, 0.25)
    img = gray.astype(np.float32)
    widths = []
    for k in range(4):
        a, b = c[k], c[(k + 1) % 4]
        direction = (b - a) / np.linalg.norm(b - a)
        normal = np.array([direction[1], -direction[0]])
        if normal @ ((a + b) / 2 - centre) < 0:
            normal = -normal  # outward: from the black square into the white border
        t = np.linspace(0.25, 0.75, 9)
        base = a[None, :] + t[:, None] * (b - a)[None, :]
        pts = base[:, None, :] + s[None, :, None] * normal[None, None, :]
        prof = cv2.remap(img, pts[..., 0].astype(np.float32), pts[..., 1].astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        p = prof.mean(axis=0)
        mid = len(s) // 2
        lo, hi = float(np.median(p[:mid])), float(np.median(p[mid + 1 :]))
        if hi - lo < 20.0:  # no clear black/white step here (occluded or washed out)
            return float("nan")
        q = (p - lo) / (hi - lo)
        edge = int(np.argmax(np.diff(q)))  # the steepest rise; walk out from it to the 10 % and 90 % levels
        widths.append(_crossing(s, q, 0.9, edge + 1, +1) - _crossing(s, q, 0.1, edge, -1))
    return float(max(widths))


def _crossing(s: np.ndarray, q: np.ndarray, level: float, start: int, step: int) -> float:
    """Where the rising profile q(s) passes ``level``, walking from index ``start`` in direction ``step``; interpolated."""
    i = start
    while 0 <= i + step < len(q) and (q[i] < level if step > 0 else q[i] > level):
        i += step
    j = i - step  # the neighbour on the other side of the level
    if not 0 <= j < len(q) or (q[i] - level) * (q[j] - level) > 0:
        return float(s[i])
    return float(s[j] + (level - q[j]) / (q[i] - q[j]) * (s[i] - s[j]))


@dataclass
class BoardDetection:
    """The board in one image: accepted tag corners, its pose and notes on what was left out."""

    tags: list[TagCorners]
    pose: BoardPose
    notes: list[str]


def detect_board(
    image: np.ndarray, intrinsics: CameraIntrinsics, model: BoardModel, config: DetectionConfig, detector: TagDetector | None = None
) -> BoardDetection:
    """Detect the board's tags in an RGB or grey uint8 image; raises :class:`SampleRejected` with the reason."""
    detector = detector or config.detector(model)
    gray = to_gray(image)
    detections, rejected = detector.detect(gray, intrinsics)
    notes: list[str] = []
    foreign = sorted({i for i, reason in rejected if reason.startswith("id not in")})
    if foreign:
        notes.append(f"tag ids {foreign} in view are not on the board (ids {model.ids}): a wrong tag or a wrong board configuration")
    notes += [f"tag {i}: {reason}" for i, reason in rejected if not reason.startswith("id not in")]
    tags: list[TagCorners] = []
    for det in detections:
        side = float(np.mean(np.linalg.norm(np.roll(det.corners_px, -1, axis=0) - det.corners_px, axis=1)))
        if side < config.min_tag_side_px:
            notes.append(f"tag {det.id}: {side:.0f} px in the image, smaller than {config.min_tag_side_px:g} px")
            continue
        width = edge_width_px(gray, det.corners_px)
        if not width <= config.max_edge_width_px:
            notes.append(f"tag {det.id}: blurred (edge width {width:.1f} px > {config.max_edge_width_px:g} px)")
            continue
        tags.append(TagCorners(det.id, det.corners_px, det.decision_margin, width, det.reprojection_error_px))
    if not tags:
        raise SampleRejected("no usable board tag: " + ("; ".join(notes) if notes else f"none of the board's ids {model.ids} detected"))
    return BoardDetection(tags, checked_board_pose(model, tags, intrinsics, config), notes)


def checked_board_pose(model: BoardModel, tags: list[TagCorners], intrinsics: CameraIntrinsics, config: DetectionConfig) -> BoardPose:
    """The board pose from accepted tags, or :class:`SampleRejected` when it does not fit one pose or is ambiguous."""
    tags = [t for t in tags if t.id in model.tags]
    if not tags:
        raise SampleRejected(f"no tag of the board (ids {model.ids}) in view")
    try:
        pose = board_pose(model, tags, intrinsics)
    except (ValueError, cv2.error) as exc:
        raise SampleRejected(f"no board pose: {exc}") from exc
    if pose.rms_px > config.max_board_rms_px:
        hint = check_pattern_rotation(model, tags, intrinsics, pose.rms_px)
        raise SampleRejected(
            hint or f"the board's tags do not fit one board pose ({pose.rms_px:.2f} px RMS > {config.max_board_rms_px:g}): check the layout"
        )
    if pose.ambiguity < config.min_ambiguity_ratio:
        raise SampleRejected(
            f"ambiguous board pose (the second planar solution reprojects within {pose.ambiguity:.2f}x of the best, "
            f"< {config.min_ambiguity_ratio:g}): tilt the board more or bring it closer"
        )
    return pose
