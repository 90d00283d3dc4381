"""The hardware-independent trial interface: a backend runs one trial and says what happened.

A :class:`TrialBackend` captures, estimates depth, detects grasps, plans,
executes and lifts, and returns a :class:`TrialAttempt`; it never decides
the outcome (the judge does, see :mod:`dkt_grasping.trials.judge`) and never
writes the database (the runner does). Backends by name:
``simulation`` (the MuJoCo Cobot Magic of :mod:`dkt_sim`, see
:mod:`dkt_grasping.trials.simulation`) and ``rig`` (the real nodes; see
:mod:`dkt_grasping.trials.rig`).

Failure stages: a backend names the pipeline stage that failed
(:data:`STAGES`); reports group them into the five :data:`REPORT_STAGES`
(:func:`report_stage`): ``perception`` (no capture, no valid metric scale, no
cloud), ``detection`` (no grasp on the target), ``planning``, ``execution``
(collision or push before the gripper closed, the arm blocked) and ``grasp``
(closed on nothing, slipped or dropped: the pipeline ran but the object was
not held).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from dkt_grasping.trials.session import SessionSpec

#: Pipeline stages in order; ``TrialAttempt.failure_stage`` names the first one that failed.
STAGES = ("capture", "depth", "metric_depth", "grasp_detection", "planning", "execution", "grasp")
#: The stages reports count failures by, in pipeline order.
REPORT_STAGES = ("perception", "detection", "planning", "execution", "grasp")
_REPORT_STAGE = {"capture": "perception", "depth": "perception", "metric_depth": "perception", "perception": "perception",
                 "grasp_detection": "detection", "detection": "detection", "planning": "planning", "execution": "execution",
                 "grasp": "grasp"}  # fmt: skip


def report_stage(failure_stage: str | None) -> str:
    """The report stage of a failed trial's recorded stage; a failure with no stage ran through: ``grasp``."""
    if failure_stage is None or failure_stage == "":
        return "grasp"
    if failure_stage not in _REPORT_STAGE:
        raise ValueError(f"unknown failure stage {failure_stage!r} (known: {', '.join(_REPORT_STAGE)})")
    return _REPORT_STAGE[failure_stage]


@dataclass
class PhysicsOutcome:
    """What the physics simulation says about an executed grasp: held (lifted and still held after the hold) or not.

    stage: ``execution`` or ``grasp`` when not held (see :mod:`dkt_sim.judge`); details: figures (lift m, events, openings).
    """

    held: bool
    reason: str
    stage: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrialAttempt:
    """Everything one run of the pipeline produced, before anyone judged it.

    grasp: the executed grasp (base frame: ``pose`` 4x4 nested list, m; ``width`` m; ``score``; ``depth`` m) or None.
    trajectory: summary of the planned motion (durations s, joint configurations rad) or None.
    gripper_width_m: measured finger opening after closing and lifting (m), None when nothing ran.
    snapshots: arrays to save: ``rgb`` uint8 (H, W, 3), ``depth_m`` float32 (H, W) metric depth in the
        camera optical frame (m), ``cloud_xyz`` float32 (N, 3) camera frame (m), ``cloud_rgb`` uint8 (N, 3),
        ``strip`` uint8 (H, W, 3) picture strip of the trial.
    physics: the simulator's verdict on an executed grasp (simulation only).
    """

    target: str
    seed: int
    failure_stage: str | None = None
    failure_reason: str = ""
    grasp: dict[str, Any] | None = None
    trajectory: dict[str, Any] | None = None
    gripper_width_m: float | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    snapshots: dict[str, np.ndarray] = field(default_factory=dict)
    physics: PhysicsOutcome | None = None

    @property
    def executed(self) -> bool:
        return self.failure_stage is None

    def suggestion(self, holding_threshold_m: float) -> str:
        """Automatic suggestion from gripper feedback: fingers stopped wider than the threshold = holding something."""
        if self.gripper_width_m is None:
            return "failure" if self.failure_stage is not None else "none"
        return "success" if self.gripper_width_m > holding_threshold_m else "failure"


class TrialBackend(Protocol):
    """Runs trials of one session; built once per session (models and planners load once)."""

    name: str

    def weights_checksum(self) -> str:
        """sha256 identifying the depth weights in use, or ``n/a`` for methods without weights."""
        ...

    def run_trial(self, trial_index: int, attempt: int, seed: int) -> TrialAttempt:
        """Capture -> depth -> grasp -> plan -> execute -> lift for trial ``trial_index`` (attempt >= 1)."""
        ...

    def close(self) -> None: ...


#: name -> "module:class"
TRIAL_BACKENDS: dict[str, str] = {
    "simulation": "dkt_grasping.trials.simulation:SimulationTrialBackend",
    "rig": "dkt_grasping.trials.rig:RigTrialBackend",
}


def create_trial_backend(spec: SessionSpec) -> TrialBackend:
    """The backend ``spec.backend`` for this session (raises the backend's own clear errors, e.g. missing weights)."""
    if spec.backend not in TRIAL_BACKENDS:
        raise ValueError(f"unknown trial backend {spec.backend!r} (known: {', '.join(sorted(TRIAL_BACKENDS))})")
    module_name, cls_name = TRIAL_BACKENDS[spec.backend].split(":")
    return getattr(importlib.import_module(module_name), cls_name)(spec)


def trial_seed(session_seed: int, trial_index: int, attempt: int) -> int:
    """Deterministic per-trial seed (a retry gets a fresh scene; a resumed session the same ones)."""
    return int(np.random.SeedSequence([int(session_seed), int(trial_index), int(attempt)]).generate_state(1)[0])
