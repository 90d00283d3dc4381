"""Collecting samples: where they come from, how the arm gets to its poses, and the manual and automatic loops.

Two small interfaces keep the loops independent of the hardware:

* :class:`SampleSource` gives a :class:`Capture`: a camera image (or already
  measured corners) with the joint angles of the arm held still while it was
  taken. The rig over ROS (:mod:`.live`, fed by ``calibration_node``), the
  synthetic rig (:class:`.synthetic.SyntheticSource`) and, once it lands, the
  MuJoCo simulation of the rig implement it.
* :class:`ArmMotion` moves the arm to a joint configuration and returns when
  it has settled (the planner and arm_node on the rig).

Every accepted sample and every rejection goes into the session at once
(atomically), so an interrupted run loses nothing and continues.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from dkt_grasping.calibration.board import BoardModel
from dkt_grasping.calibration.config import CalibrationConfig
from dkt_grasping.calibration.detection import SampleRejected, checked_board_pose, detect_board
from dkt_grasping.calibration.pose_set import pose_set_coverage
from dkt_grasping.calibration.samples import FLANGE_FRAME, Sample, TagCorners
from dkt_grasping.calibration.session import CalibrationSession
from dkt_stack.intrinsics import CameraIntrinsics


class CaptureError(RuntimeError):
    """No usable capture right now (no image yet, the arm is moving, joint states are stale...)."""


class MotionError(RuntimeError):
    """The arm did not get to the requested pose (no plan, stopped, did not settle)."""


@dataclass
class Capture:
    """One still moment: a uint8 RGB or grey image (or detections already measured) and the joints (rad) when it was taken."""

    image: np.ndarray | None
    q: np.ndarray
    stamp_ns: int = 0
    corners: list[TagCorners] | None = None  #: a source that measures corners itself (the synthetic projection)


class SampleSource(Protocol):
    @property
    def intrinsics(self) -> CameraIntrinsics: ...

    def capture(self) -> Capture:
        """The next image taken with the arm still, and its joints; raises CaptureError."""
        ...


class ArmMotion(Protocol):
    def current_q(self) -> np.ndarray: ...

    def move_to(self, q_goal: np.ndarray) -> np.ndarray:
        """Move to joints q_goal (rad), wait until settled, return where it stopped; raises MotionError."""
        ...


class Collector:
    """Turns captures into samples of one session: detection, checks, flange pose, storage."""

    def __init__(self, session: CalibrationSession, config: CalibrationConfig, kinematics=None):
        self.session = session
        self.config = config
        self.model = BoardModel(session.info.board)
        self.intrinsics = session.info.intrinsics
        self.kin = kinematics or config.arm.kinematics()
        self._detector = config.detection.detector(self.model)

    def capture(self, source: SampleSource, pose_index: int = -1) -> Sample:
        """Take one sample from ``source``; rejections are recorded in the session and raised as SampleRejected."""
        try:
            return self._capture(source, pose_index)
        except SampleRejected as exc:
            self.session.reject(exc.reason, pose_index)
            raise

    def _capture(self, source: SampleSource, pose_index: int) -> Sample:
        cap = source.capture()
        q = self.kin.check_q(cap.q, "joint state")
        if not self.kin.within_limits(q, tol=1e-3):
            raise SampleRejected(f"joint state outside the model's limits: {'; '.join(self.kin.limit_violations(q, tol=1e-3))}")
        notes: list[str] = []
        if cap.corners is not None:
            tags = [t for t in cap.corners if t.id in self.model.tags]
            foreign = sorted({t.id for t in cap.corners} - set(self.model.ids))
            if foreign:
                notes.append(f"tag ids {foreign} in view are not on the board (ids {self.model.ids})")
            if not tags:
                raise SampleRejected(f"no tag of the board (ids {self.model.ids}) in view" + (f"; saw ids {foreign}" if foreign else ""))
            pose = checked_board_pose(self.model, tags, self.intrinsics, self.config.detection)
        else:
            if cap.image is None:
                raise CaptureError("the source gave neither an image nor corners")
            det = detect_board(cap.image, self.intrinsics, self.model, self.config.detection, self._detector)
            tags, pose, notes = det.tags, det.pose, det.notes
        sample = Sample(
            q=q,
            T_base_flange=self.kin.fk(q, frame=FLANGE_FRAME),
            tags=tags,
            stamp_ns=int(cap.stamp_ns),
            pose_index=pose_index,
            board_rms_px=pose.rms_px,
            board_ambiguity=pose.ambiguity,
            notes=notes,
        )
        self.session.add(sample, cap.image if self.config.save_images and cap.image is not None else None)
        return sample

    def coverage_hint(self) -> str:
        """One line on how the samples so far cover rotations, for the operator."""
        cov = pose_set_coverage([s.T_base_flange for s in self.session.samples], self.config.solver.coverage)
        spans = ", ".join(f"{v:.0f}" for v in cov.rotation_span_deg[:2])
        advice = (cov.problems or cov.warnings or ["coverage is good"])[0]
        return f"{cov.count} samples, rotation spans {spans} deg: {advice}"


def describe(sample: Sample, index: int) -> str:
    ids = ",".join(str(t.id) for t in sample.tags)
    widths = max((t.edge_width_px for t in sample.tags), default=0.0)
    note = f" (note: {sample.notes[0]})" if sample.notes else ""
    return f"sample {index}: tags [{ids}], board fit {sample.board_rms_px:.2f} px, edge width {widths:.1f} px{note}"


@dataclass
class CollectionSummary:
    """What a collection run did."""

    accepted: int = 0
    rejected: int = 0
    skipped: int = 0  #: automatic poses already captured in an earlier run
    failed_moves: int = 0
    messages: list[str] = field(default_factory=list)


def run_manual(
    collector: Collector, source: SampleSource, ask: Callable[[str], str], say: Callable[[str], None], target: int = 0
) -> CollectionSummary:
    """The operator moves the arm (leader arm or teach mode) and presses Enter per pose.

    ``ask(prompt)`` returns the operator's line: empty = capture, ``d`` = drop the
    last sample, ``q`` = finish (EOFError too). Stops by itself at ``target``
    samples when ``target`` > 0.
    """
    summary = CollectionSummary()
    session = collector.session
    if session.samples:
        say(f"continuing session {session.folder} with {len(session.samples)} samples")
    while not target or len(session.samples) < target:
        try:
            reply = ask(
                f"[{len(session.samples)}{f'/{target}' if target else ''}] move the arm to a new pose and hold it still; "
                "Enter = capture, d = drop the last sample, q = finish: "
            ).strip().lower()
        except EOFError:
            break
        if reply == "q":
            break
        if reply == "d":
            dropped = session.remove_last()
            say("dropped the last sample" if dropped else "no sample to drop")
            continue
        try:
            sample = collector.capture(source)
        except SampleRejected as exc:
            summary.rejected += 1
            say(f"rejected: {exc.reason}")
            continue
        except CaptureError as exc:
            summary.rejected += 1
            say(f"no capture: {exc}")
            continue
        summary.accepted += 1
        say(describe(sample, len(session.samples) - 1))
        say(collector.coverage_hint())
    return summary


def run_auto(
    collector: Collector,
    source: SampleSource,
    motion: ArmMotion,
    plan_qs: list[np.ndarray],
    confirm: Callable[[str], bool],
    say: Callable[[str], None],
) -> CollectionSummary:
    """Visit the planned joint configurations and capture at each; poses captured in an earlier run are skipped.

    ``confirm(question)`` must return True (the operator confirms that the
    workspace is clear) before the arm moves at all.
    """
    summary = CollectionSummary()
    session = collector.session
    done = session.captured_poses
    todo = [k for k in range(len(plan_qs)) if k not in done]
    summary.skipped = len(plan_qs) - len(todo)
    if not todo:
        say(f"all {len(plan_qs)} poses of the plan are captured already")
        return summary
    if summary.skipped:
        say(f"continuing: {summary.skipped} of {len(plan_qs)} poses captured already, {len(todo)} to go")
    if not confirm(f"The arm will move through {len(todo)} poses. Is the workspace clear of people and objects?"):
        summary.messages.append("not confirmed: the arm did not move")
        say("not confirmed: the arm did not move")
        return summary
    for k in todo:
        try:
            motion.move_to(plan_qs[k])
        except MotionError as exc:
            summary.failed_moves += 1
            session.reject(f"could not reach pose {k}: {exc}", k)
            say(f"pose {k}: could not reach it: {exc}")
            continue
        try:
            sample = collector.capture(source, pose_index=k)
        except SampleRejected as exc:
            summary.rejected += 1
            say(f"pose {k}: rejected: {exc.reason}")
            continue
        except CaptureError as exc:
            summary.rejected += 1
            session.reject(f"no capture: {exc}", k)
            say(f"pose {k}: no capture: {exc}")
            continue
        summary.accepted += 1
        say(f"pose {k}: " + describe(sample, len(session.samples) - 1))
    return summary
