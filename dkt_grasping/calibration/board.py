"""The calibration target: one AprilTag or a flat board of them, and its pose from detected corners.

Board frame: the tags lie in its z = 0 plane. Each tag's frame is the one the
detector reports for an officially printed tag (pupil-apriltags / IPPE_SQUARE,
see :mod:`dkt_perception.tags`): x along the printed image's rows (left to
right), y down its columns, z into the printed face. A tag is placed by its
centre (x, y) and an in-plane yaw.

Tags printed from OpenCV's ``cv2.aruco`` renders of ``DICT_APRILTAG_36h11``
are the official pattern turned 180 deg about z (FACTS): they decode to the
same id, but every detected corner lands on the physically opposite corner.
``pattern_rotation_deg: 180`` says so. With a single tag this only turns the
unknown board-mount transform and changes nothing in the result; on a
multi-tag board the wrong setting puts each tag's corners on the wrong side
of its centre, which :func:`board_pose` sees as a large reprojection error
and :func:`check_pattern_rotation` names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from dkt_perception.tags import TagConfig, square_object_points
from dkt_stack.config import param
from dkt_stack.intrinsics import CameraIntrinsics
from dkt_stack.transforms import make_transform


@dataclass
class BoardTag:
    """One tag of the board: id, black-square size and where it sits in the board frame."""

    id: int = param(help="tag id (tag36h11 unless board.family says otherwise)")
    size_m: float = param(help="edge of the black square, m (measure the print: this sets the calibration's scale)")
    x: float = param(0.0, help="tag centre along the board x axis, m")
    y: float = param(0.0, help="tag centre along the board y axis, m")
    yaw_deg: float = param(0.0, help="rotation of the tag about the board z axis, deg")


def _one_tag() -> list[BoardTag]:
    return [BoardTag(id=0, size_m=0.06)]


@dataclass
class BoardConfig:
    """The calibration target: a single tag or a flat board of tags (see the module docstring for frames)."""

    family: str = param("tag36h11", help="AprilTag family (pupil-apriltags name)")
    tags: list[BoardTag] = param(default_factory=_one_tag, help="the board's tags: id, size_m, x, y (m), yaw_deg")
    pattern_rotation_deg: float = param(
        0.0,
        help="0 for the official AprilTag images; 180 when the tags were printed from OpenCV cv2.aruco renders "
        "(turned 180 deg about z); only matters on multi-tag boards",
    )

    def __post_init__(self) -> None:
        if not self.tags:
            raise ValueError("the calibration board needs at least one tag")
        ids = [t.id for t in self.tags]
        if len(set(ids)) != len(ids):
            raise ValueError(f"board tag ids must be unique, got {ids}")
        for t in self.tags:
            if not t.size_m > 0:
                raise ValueError(f"tag {t.id}: size_m must be a positive number of metres, got {t.size_m}")
        if self.pattern_rotation_deg not in (0.0, 180.0):
            raise ValueError(f"pattern_rotation_deg must be 0 or 180, got {self.pattern_rotation_deg}")


def grid_board(rows: int, cols: int, size_m: float, pitch_m: float, first_id: int = 0, pattern_rotation_deg: float = 0.0) -> BoardConfig:
    """A rows x cols grid of equal tags ``pitch_m`` apart (centre to centre), ids row by row, centred on the board origin."""
    if rows < 1 or cols < 1 or pitch_m < size_m:
        raise ValueError(f"a grid needs rows, cols >= 1 and pitch >= tag size, got {rows}x{cols}, pitch {pitch_m}, size {size_m}")
    tags = [
        BoardTag(id=first_id + r * cols + c, size_m=size_m, x=(c - (cols - 1) / 2) * pitch_m, y=(r - (rows - 1) / 2) * pitch_m)
        for r in range(rows)
        for c in range(cols)
    ]
    return BoardConfig(tags=tags, pattern_rotation_deg=pattern_rotation_deg)


def _rz(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])


@dataclass
class BoardPose:
    """Board pose from one image: ``T_camera_board`` (board frame -> camera optical frame, m)."""

    T_camera_board: np.ndarray
    rms_px: float  #: RMS corner reprojection error of this pose, px
    ambiguity: float  #: reprojection error of the second planar solution / the best's (large = unambiguous)
    tag_ids: list[int] = field(default_factory=list)


class BoardModel:
    """Corner coordinates of a :class:`BoardConfig` in the board frame, and the board's pose from detections."""

    def __init__(self, config: BoardConfig, pattern_rotation_deg: float | None = None):
        self.config = config
        rotation = config.pattern_rotation_deg if pattern_rotation_deg is None else pattern_rotation_deg
        self.pattern_rotation_deg = float(rotation)
        self.tags = {t.id: t for t in config.tags}
        self._points = {}
        for t in config.tags:
            T = self.T_board_tag(t.id)
            self._points[t.id] = square_object_points(t.size_m) @ T[:3, :3].T + T[:3, 3]

    @property
    def ids(self) -> list[int]:
        return list(self.tags)

    def T_board_tag(self, tag_id: int) -> np.ndarray:  # noqa: N802 - conventional transform name
        """4x4 pose of the detector's frame of tag ``tag_id`` in the board frame (print convention included)."""
        t = self.tags[tag_id]
        return make_transform(_rz(t.yaw_deg + self.pattern_rotation_deg), (t.x, t.y, 0.0))

    def object_points(self, tag_id: int) -> np.ndarray:
        """4x3 corners of tag ``tag_id`` in the board frame (m), in the detector's corner order."""
        return self._points[tag_id]

    def correspondences(self, tags) -> tuple[np.ndarray, np.ndarray]:
        """(Nx3 board-frame points m, Nx2 pixels) for detections with ``id`` and ``corners_px`` (board ids only)."""
        obj, img = [], []
        for t in tags:
            if t.id in self._points:
                obj.append(self._points[t.id])
                img.append(np.asarray(t.corners_px, dtype=np.float64).reshape(4, 2))
        if not obj:
            return np.zeros((0, 3)), np.zeros((0, 2))
        return np.concatenate(obj), np.concatenate(img)

    def tag_config(self, **detector_settings) -> TagConfig:
        """Detector settings that accept exactly this board's ids and sizes."""
        return TagConfig(
            family=self.config.family,
            ids=[t.id for t in self.config.tags],
            sizes_m=[t.size_m for t in self.config.tags],
            **detector_settings,
        )

    def extent_m(self) -> float:
        """Largest distance of a corner from the board origin (m)."""
        return float(max(np.linalg.norm(p, axis=1).max() for p in self._points.values()))


def board_pose(model: BoardModel, tags, intrinsics: CameraIntrinsics) -> BoardPose:
    """Pose of the board from the detected corners of its tags (one or more).

    Planar PnP (IPPE: both planar solutions with their errors, for the ambiguity
    ratio), refined with Levenberg-Marquardt on all corners. Pixels use the
    CameraInfo convention; the camera is taken as distortion-free like the rest
    of the stack.
    """
    obj, img = model.correspondences(tags)
    if len(obj) < 4:
        raise ValueError("no tag of the board among the detections")
    ids = [t.id for t in tags if t.id in model.tags]
    if len(ids) == 1:
        flags = cv2.SOLVEPNP_IPPE_SQUARE
        # IPPE_SQUARE wants the tag's own square in its own frame: solve there, then move to the board frame.
        tag_obj = square_object_points(model.tags[ids[0]].size_m)
    else:
        flags = cv2.SOLVEPNP_IPPE
        tag_obj = obj
    n, rvecs, tvecs, errs = cv2.solvePnPGeneric(tag_obj.astype(np.float64), img.reshape(-1, 1, 2), intrinsics.K, None, flags=flags)
    if n < 1:
        raise ValueError("planar PnP found no pose for the board corners")
    errs = np.asarray(errs, dtype=np.float64).reshape(-1)
    order = np.argsort(errs)
    best = int(order[0])
    ambiguity = float(errs[order[1]] / max(errs[best], 1e-9)) if n > 1 else float("inf")
    rvec, tvec = rvecs[best].reshape(3, 1).copy(), tvecs[best].reshape(3, 1).copy()
    rvec, tvec = cv2.solvePnPRefineLM(tag_obj.astype(np.float64), img.reshape(-1, 1, 2), intrinsics.K, None, rvec, tvec)
    R, _ = cv2.Rodrigues(rvec)
    T = make_transform(R, tvec.reshape(3))
    if len(ids) == 1:
        T = T @ np.linalg.inv(model.T_board_tag(ids[0]))
    proj = project(T, obj, intrinsics)
    rms = float(np.sqrt(np.mean(np.sum((proj - img) ** 2, axis=1))))
    return BoardPose(T, rms, ambiguity, ids)


def project(T_camera_board: np.ndarray, points_board: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """Nx3 board-frame points (m) -> Nx2 pixels through ``T_camera_board`` and the pinhole model."""
    p = points_board @ T_camera_board[:3, :3].T + T_camera_board[:3, 3]
    return intrinsics.project(p)


def check_pattern_rotation(model: BoardModel, tags, intrinsics: CameraIntrinsics, rms_px: float) -> str:
    """A sentence when the other print convention fits this image clearly better than the configured one, else ''.

    Only meaningful with two or more board tags in view (one tag fits either way).
    """
    if len({t.id for t in tags if t.id in model.tags}) < 2:
        return ""
    other = BoardModel(model.config, 180.0 - model.pattern_rotation_deg)
    try:
        alt = board_pose(other, tags, intrinsics)
    except (ValueError, cv2.error):
        return ""
    if alt.rms_px < 0.25 * rms_px:
        return (
            f"the board's tags fit {alt.rms_px:.2f} px with pattern_rotation_deg {other.pattern_rotation_deg:.0f} but "
            f"{rms_px:.2f} px with the configured {model.pattern_rotation_deg:.0f}: tags printed from OpenCV renders are turned "
            f"180 deg; set board.pattern_rotation_deg: {other.pattern_rotation_deg:.0f}"
        )
    return ""
