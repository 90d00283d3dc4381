"""What one calibration sample holds, and its JSON form.

A sample is the arm held still at one pose: the joint angles, the flange pose
the project's kinematics gives for them, and the corners of the board's tags
in the image with the quality figures they were accepted on. Corners are kept
in pixels, not as a board pose, so that a session can be solved again with a
corrected tag size or layout without collecting anew.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Mode = Literal["eye_to_hand", "eye_in_hand"]
MODES: tuple[str, ...] = ("eye_to_hand", "eye_in_hand")

#: Frame of the flange pose a sample stores (``PiperKinematics.fk(q, frame=FLANGE_FRAME)``).
FLANGE_FRAME = "link6"


@dataclass
class TagCorners:
    """One detected board tag: corners in pixels (CameraInfo convention, detector order) and quality figures."""

    id: int
    corners_px: np.ndarray  #: (4, 2) float64
    decision_margin: float = float("inf")
    edge_width_px: float = 0.0  #: 10-90 % width of the black/white edge, px (blur measure)
    reprojection_error_px: float = 0.0  #: RMS of the tag's own best planar pose, px

    def to_dict(self) -> dict:
        return {
            "id": int(self.id),
            "corners_px": np.round(np.asarray(self.corners_px, dtype=np.float64), 4).tolist(),
            "decision_margin": _finite_or_none(self.decision_margin),
            "edge_width_px": round(float(self.edge_width_px), 3),
            "reprojection_error_px": round(float(self.reprojection_error_px), 4),
        }

    @classmethod
    def from_dict(cls, d: dict) -> TagCorners:
        corners = np.asarray(d["corners_px"], dtype=np.float64)
        if corners.shape != (4, 2):
            raise ValueError(f"tag {d.get('id')}: corners_px must be 4x2, got {corners.shape}")
        margin = d.get("decision_margin")
        return cls(
            int(d["id"]),
            corners,
            float("inf") if margin is None else float(margin),
            float(d.get("edge_width_px", 0.0)),
            float(d.get("reprojection_error_px", 0.0)),
        )


@dataclass
class Sample:
    """The arm still at one pose. ``T_base_flange`` is the flange (``link6``) in the arm's base frame (m)."""

    q: np.ndarray  #: (6,) joint angles, rad
    T_base_flange: np.ndarray  #: 4x4 from the kinematics at capture time
    tags: list[TagCorners]
    stamp_ns: int = 0  #: image stamp
    pose_index: int = -1  #: index in the automatic pose plan; -1 for a manual pose
    image: str = ""  #: saved image, relative to the session folder ('' when not saved)
    board_rms_px: float = 0.0  #: board pose reprojection error at capture, px
    board_ambiguity: float = float("inf")  #: planar PnP ambiguity ratio at capture
    notes: list[str] = field(default_factory=list)  #: warnings raised at capture (foreign tag ids seen, ...)

    def to_dict(self) -> dict:
        return {
            "q": [float(v) for v in np.asarray(self.q).reshape(-1)],
            "T_base_flange": np.asarray(self.T_base_flange, dtype=np.float64).tolist(),
            "tags": [t.to_dict() for t in self.tags],
            "stamp_ns": int(self.stamp_ns),
            "pose_index": int(self.pose_index),
            "image": self.image,
            "board_rms_px": round(float(self.board_rms_px), 4),
            "board_ambiguity": _finite_or_none(self.board_ambiguity),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Sample:
        q = np.asarray(d["q"], dtype=np.float64)
        T = np.asarray(d["T_base_flange"], dtype=np.float64)
        if q.shape != (6,) or T.shape != (4, 4):
            raise ValueError(f"a sample needs q (6,) and T_base_flange 4x4, got {q.shape} and {T.shape}")
        amb = d.get("board_ambiguity")
        return cls(
            q=q,
            T_base_flange=T,
            tags=[TagCorners.from_dict(t) for t in d["tags"]],
            stamp_ns=int(d.get("stamp_ns", 0)),
            pose_index=int(d.get("pose_index", -1)),
            image=str(d.get("image", "")),
            board_rms_px=float(d.get("board_rms_px", 0.0)),
            board_ambiguity=float("inf") if amb is None else float(amb),
            notes=list(d.get("notes", [])),
        )


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"calibration mode must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def _finite_or_none(value: float):
    value = float(value)
    return round(value, 4) if np.isfinite(value) else None
