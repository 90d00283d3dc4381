"""A calibration session on disk: what it is for, its samples as they come in, and its result.

One folder per session::

    session.json    mode, arm, rig, board, camera intrinsics, the automatic pose plan
    samples.json    accepted samples and the rejected captures, rewritten after each one
    images/         sample_NNN.png, the accepted images (when saving images)
    result.json     the last solve: transforms, per-method figures, per-sample residuals
    report.txt      the same as a table
    verify.json     the last verification against the rig file (and verify.txt)

Every file is written atomically, so an interrupted run (Ctrl-C, a crash, a
lost arm) leaves every sample taken so far, and opening the same folder again
continues the session: a manual run adds to the samples, an automatic one
visits only the poses without an accepted sample yet.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from dkt_grasping.calibration.board import BoardConfig
from dkt_grasping.calibration.samples import Sample, check_mode
from dkt_stack.atomic_files import write_bytes_atomic, write_text_atomic
from dkt_stack.config import ConfigError, from_dict, to_dict
from dkt_stack.intrinsics import CameraIntrinsics

SESSION_FILE, SAMPLES_FILE, RESULT_FILE, REPORT_FILE = "session.json", "samples.json", "result.json", "report.txt"
FORMAT = 1


class SessionMismatch(ValueError):
    """The folder holds a session started for something else (another mode, arm, camera or board)."""


@dataclass
class SessionInfo:
    """What a session is for. ``intrinsics`` are the camera's at collection time (pixels)."""

    mode: str
    arm: str
    rig: str
    board: BoardConfig
    intrinsics: CameraIntrinsics
    purpose: str = "calibrate"  #: "calibrate", or "verify" for a verification run
    created: str = ""
    pose_plan: list[list[float]] | None = None  #: joints (rad) of the automatic poses, in visiting order

    def to_dict(self) -> dict:
        K = self.intrinsics
        return {
            "format": FORMAT,
            "mode": self.mode,
            "arm": self.arm,
            "rig": self.rig,
            "purpose": self.purpose,
            "created": self.created,
            "board": to_dict(self.board),
            "intrinsics": {
                "width": K.width, "height": K.height, "fx": K.fx, "fy": K.fy, "cx": K.cx, "cy": K.cy,
                "distortion": list(K.distortion), "distortion_model": K.distortion_model, "frame_id": K.frame_id,
            },
            "pose_plan": self.pose_plan,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict, source: str = "") -> SessionInfo:
        if d.get("format") != FORMAT:
            raise ConfigError(f"unknown session format {d.get('format')!r} (this version reads {FORMAT})", source=source)
        k = d["intrinsics"]
        intr = CameraIntrinsics(
            int(k["width"]), int(k["height"]), float(k["fx"]), float(k["fy"]), float(k["cx"]), float(k["cy"]),
            tuple(k.get("distortion", ())), k.get("distortion_model", "plumb_bob"), k.get("frame_id", ""),
        )  # fmt: skip
        return cls(
            mode=check_mode(d["mode"]),
            arm=d["arm"],
            rig=d["rig"],
            board=from_dict(BoardConfig, d["board"], source=source, prefix="board"),
            intrinsics=intr,
            purpose=d.get("purpose", "calibrate"),
            created=d.get("created", ""),
            pose_plan=d.get("pose_plan"),
        )


@dataclass
class Rejection:
    """A capture that did not become a sample."""

    reason: str
    pose_index: int = -1
    time: str = ""


@dataclass
class CalibrationSession:
    """A session folder (see the module docstring). Create or continue one with :meth:`open_or_create`."""

    folder: Path
    info: SessionInfo
    samples: list[Sample] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    resumed: bool = False

    @classmethod
    def open(cls, folder: str | os.PathLike) -> CalibrationSession:
        """An existing session (to solve or verify it)."""
        folder = Path(folder)
        path = folder / SESSION_FILE
        if not path.is_file():
            raise ConfigError(f"no calibration session here (no {SESSION_FILE})", source=folder)
        info = SessionInfo.from_dict(json.loads(path.read_text(encoding="utf-8")), str(path))
        samples, rejections = [], []
        sp = folder / SAMPLES_FILE
        if sp.is_file():
            data = json.loads(sp.read_text(encoding="utf-8"))
            samples = [Sample.from_dict(s) for s in data.get("samples", [])]
            rejections = [Rejection(**r) for r in data.get("rejected", [])]
        return cls(folder, info, samples, rejections, resumed=True)

    @classmethod
    def open_or_create(cls, folder: str | os.PathLike, info: SessionInfo) -> CalibrationSession:
        """Continue the session in ``folder`` when it was started for the same mode, arm, camera and board; else start one."""
        folder = Path(folder)
        if (folder / SESSION_FILE).is_file():
            session = cls.open(folder)
            session._check_compatible(info)
            return session
        if folder.exists() and any(folder.iterdir()):
            raise SessionMismatch(f"{folder} exists and is not a calibration session: choose an empty or new folder")
        info = dataclasses.replace(info, created=info.created or _now())
        session = cls(folder, info)
        session._write_info()
        session._write_samples()
        return session

    def _check_compatible(self, new: SessionInfo) -> None:
        old = self.info
        problems = []
        for name in ("mode", "arm", "purpose"):
            if getattr(old, name) != getattr(new, name):
                problems.append(f"{name} {getattr(old, name)!r} (now {getattr(new, name)!r})")
        a, b = old.intrinsics, new.intrinsics
        if (a.width, a.height) != (b.width, b.height) or not np.allclose([a.fx, a.fy, a.cx, a.cy], [b.fx, b.fy, b.cx, b.cy], atol=0.5):
            problems.append(f"camera intrinsics {a.width}x{a.height} fx {a.fx:.1f} (now {b.width}x{b.height} fx {b.fx:.1f})")
        if sorted(t.id for t in old.board.tags) != sorted(t.id for t in new.board.tags):
            problems.append(f"board tag ids {[t.id for t in old.board.tags]} (now {[t.id for t in new.board.tags]})")
        if problems:
            raise SessionMismatch(f"session {self.folder} was started with " + ", ".join(problems) + ": use another --session folder")

    # -- writing -------------------------------------------------------------------------

    def _write_info(self) -> None:
        write_text_atomic(self.folder / SESSION_FILE, json.dumps(self.info.to_dict(), indent=1) + "\n")

    def _write_samples(self) -> None:
        data = {"samples": [s.to_dict() for s in self.samples], "rejected": [dataclasses.asdict(r) for r in self.rejections]}
        write_text_atomic(self.folder / SAMPLES_FILE, json.dumps(data, indent=1) + "\n")

    def set_pose_plan(self, qs: list[np.ndarray]) -> None:
        self.info.pose_plan = [np.round(np.asarray(q, dtype=np.float64), 9).tolist() for q in qs]
        self._write_info()

    def add(self, sample: Sample, image: np.ndarray | None = None) -> int:
        """Store an accepted sample (and its image) at once; returns its index."""
        index = len(self.samples)
        if image is not None:
            ok, png = cv2.imencode(".png", image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            if ok:
                name = f"images/sample_{index:03d}.png"
                write_bytes_atomic(self.folder / name, png.tobytes())
                sample.image = name
        self.samples.append(sample)
        self._write_samples()
        return index

    def reject(self, reason: str, pose_index: int = -1) -> None:
        self.rejections.append(Rejection(reason, pose_index, _now()))
        self._write_samples()

    def remove_last(self) -> Sample | None:
        """Drop the last sample (the operator's undo); its image stays on disk."""
        if not self.samples:
            return None
        sample = self.samples.pop()
        self._write_samples()
        return sample

    def write_result(self, result: dict, report: str, name: str = "result") -> None:
        """``<name>.json`` and its text report (``report.txt`` for the calibration, ``<name>.txt`` otherwise)."""
        write_text_atomic(self.folder / f"{name}.json", json.dumps(result, indent=1) + "\n")
        write_text_atomic(self.folder / (REPORT_FILE if name == "result" else f"{name}.txt"), report.rstrip() + "\n")

    def read_result(self) -> dict:
        path = self.folder / RESULT_FILE
        if not path.is_file():
            raise ConfigError(f"the session has not been solved yet (no {RESULT_FILE}): run `dkt-stack calibrate solve {self.folder}`")
        return json.loads(path.read_text(encoding="utf-8"))

    @property
    def captured_poses(self) -> set[int]:
        """Indices of automatic poses with an accepted sample: a continued run skips them (and tries rejected ones again)."""
        return {s.pose_index for s in self.samples if s.pose_index >= 0}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
