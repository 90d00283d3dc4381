"""The trial loop: run, judge, record, one committed transaction per trial; resumable.

``start_session`` stores a new session; ``TrialRunner.run(session_id)`` runs
its remaining trials from the first index not yet recorded, so a session
killed at any point resumes exactly where it stopped (the trial that was in
flight is run again from scratch, with the same seed).
"""

from __future__ import annotations

import secrets
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from dkt_grasping.trials.artifacts import write_npz_atomic, write_png_atomic
from dkt_grasping.trials.backend import TrialAttempt, TrialBackend, create_trial_backend, trial_seed
from dkt_grasping.trials.database import TrialDatabase, TrialRecord
from dkt_grasping.trials.judge import DecisionCancelled, Judge, create_judge
from dkt_grasping.trials.session import SessionSpec

_OUTCOME_OF = {"success": "success", "failure": "failure", "skip": "skipped", "abort": "aborted"}


def new_session_id(spec: SessionSpec) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    label = "".join(c if c.isalnum() or c in "-_" else "_" for c in spec.surface)
    return f"{stamp}-{label}-{spec.method}-{secrets.token_hex(2)}"


def start_session(db: TrialDatabase, spec: SessionSpec, session_id: str | None = None) -> str:
    """Store a new session (status running); returns its id."""
    session_id = session_id or new_session_id(spec)
    db.create_session(
        session_id,
        surface=spec.surface,
        method=spec.method,
        backend=spec.backend,
        arm=spec.arm,
        n_trials=spec.n_trials,
        spec=spec.to_json_dict(),
    )
    return session_id


@dataclass
class SessionResult:
    session_id: str
    status: str
    recorded: list[TrialRecord] = field(default_factory=list)


class TrialRunner:
    """Runs a stored session's remaining trials with a backend and a judge, writing each trial in one transaction.

    backend/judge default to the ones the session's spec names. Snapshots go to
    ``<database folder>/artifacts/<session id>/trial_<index>/``. ``on_record`` is called with
    every committed trial; setting ``stop`` ends the session (as interrupted) before the next trial.
    """

    def __init__(
        self,
        db: TrialDatabase,
        *,
        backend: TrialBackend | None = None,
        judge: Judge | None = None,
        progress: bool = True,
        on_record: Callable[[TrialRecord], None] | None = None,
        stop: threading.Event | None = None,
    ):
        self.db, self._backend, self._judge, self.progress = db, backend, judge, progress
        self.on_record, self.stop = on_record, stop

    def run(self, session_id: str, *, max_trials: int | None = None) -> SessionResult:
        """Run trials until the session is complete, aborted, or ``max_trials`` more are recorded."""
        row = self.db.session(session_id)
        spec = SessionSpec.from_json_dict(row.spec)
        if row.status == "complete":
            return SessionResult(session_id, "complete")
        backend = self._backend or create_trial_backend(spec)
        judge = self._judge or create_judge(spec.resolved_judge)
        checksum = backend.weights_checksum()
        result = SessionResult(session_id, "running")
        self.db.set_session_status(session_id, "running")
        start = self.db.next_trial_index(session_id)
        end = spec.n_trials if max_trials is None else min(spec.n_trials, start + max_trials)
        bar = tqdm(range(start, end), desc=f"{spec.surface}/{spec.method}", unit="trial", disable=not self.progress, file=sys.stderr)
        try:
            for index in bar:
                if self.stop is not None and self.stop.is_set():
                    self.db.set_session_status(session_id, "interrupted")
                    result.status = "interrupted"
                    return result
                record = self._one_trial(spec, backend, judge, checksum, session_id, index)
                result.recorded.append(record)
                if self.on_record is not None:
                    self.on_record(record)
                bar.set_postfix_str(f"{record.outcome}")
                if record.outcome == "aborted":
                    self.db.set_session_status(session_id, "aborted")
                    result.status = "aborted"
                    return result
        except (KeyboardInterrupt, DecisionCancelled):
            self.db.set_session_status(session_id, "interrupted")
            result.status = "interrupted"
            raise
        finally:
            bar.close()
            if self._backend is None:
                backend.close()
        if self.db.next_trial_index(session_id) >= spec.n_trials:
            self.db.set_session_status(session_id, "complete")
            result.status = "complete"
        return result

    def _one_trial(self, spec: SessionSpec, backend: TrialBackend, judge: Judge, checksum: str, session_id: str, index: int) -> TrialRecord:
        attempt_no = 1
        while True:
            seed = trial_seed(spec.seed, index, attempt_no)
            attempt = backend.run_trial(index, attempt_no, seed)
            suggestion = attempt.suggestion(spec.holding_threshold_m)
            verdict = judge.decide(attempt, suggestion)
            if verdict.action != "retry":
                break
            attempt_no += 1
        notes = "; ".join(n for n in (verdict.note, attempt.failure_reason if verdict.decided_by != "physics" else "") if n)
        outcome = _OUTCOME_OF[verdict.action]
        # The stage a failure is charged to: the pipeline's, else the judge's, else the pipeline ran through (grasp).
        stage = attempt.failure_stage or verdict.stage or ("grasp" if outcome == "failure" else None)
        artifacts = self._save_snapshots(attempt, session_id, index) if spec.save_snapshots else {}
        timings = dict(attempt.timings_ms)
        record = TrialRecord(
            session_id=session_id,
            trial_index=index,
            outcome=outcome,
            suggestion=suggestion,
            surface=spec.surface,
            method=spec.method,
            backend=spec.backend,
            weights_checksum=checksum,
            target=attempt.target,
            seed=attempt.seed,
            attempt=attempt_no,
            parameters=attempt.parameters,
            timings_ms=timings,
            grasp=attempt.grasp,
            trajectory=attempt.trajectory,
            decided_by=verdict.decided_by,
            gripper_width_m=attempt.gripper_width_m,
            failure_stage=stage,
            notes=notes,
            artifacts=artifacts,
        )
        if attempt.physics is not None:
            p = attempt.physics
            record.parameters = {**record.parameters, "physics": {"held": p.held, "stage": p.stage, "reason": p.reason, **p.details}}
        self.db.add_trial(record)
        return record

    def _save_snapshots(self, attempt: TrialAttempt, session_id: str, index: int) -> dict[str, str]:
        """Write the attempt's snapshots (atomically); returns kind -> path relative to the database folder.

        colour.png, depth.npz (depth_m), cloud.npz (xyz, rgb), strip.png (the trial's picture strip).
        """
        root = self.db.path.parent
        folder = Path("artifacts") / session_id / f"trial_{index:04d}"
        snaps, out = attempt.snapshots, {}
        if "rgb" in snaps:
            write_png_atomic(root / folder / "colour.png", snaps["rgb"])
            out["colour"] = str(folder / "colour.png")
        if "depth_m" in snaps:
            write_npz_atomic(root / folder / "depth.npz", depth_m=snaps["depth_m"])
            out["depth"] = str(folder / "depth.npz")
        if "cloud_xyz" in snaps:
            arrays = {"xyz": snaps["cloud_xyz"]}
            if "cloud_rgb" in snaps:
                arrays["rgb"] = snaps["cloud_rgb"]
            write_npz_atomic(root / folder / "cloud.npz", **arrays)
            out["cloud"] = str(folder / "cloud.npz")
        if "strip" in snaps:
            write_png_atomic(root / folder / "strip.png", snaps["strip"])
            out["strip"] = str(folder / "strip.png")
        return out
