"""The trial loop with a scripted backend: one transaction per trial, operator prompt (retry, skip, abort),
resume after abort, and a process SIGKILLed mid-trial that leaves committed trials intact and resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dkt_grasping.trials.backend import PhysicsOutcome, TrialAttempt, trial_seed
from dkt_grasping.trials.database import TrialDatabase
from dkt_grasping.trials.judge import OperatorPrompt, PhysicsJudge
from dkt_grasping.trials.runner import TrialRunner, start_session
from dkt_grasping.trials.session import SessionSpec


class ScriptedBackend:
    """A TrialBackend whose trial k holds the target when k is even (gripper stops at 50 mm) and closes empty otherwise.

    With ``hang_at`` it writes ``marker`` and sleeps in that trial (for the kill test).
    """

    name = "scripted"

    def __init__(self, hang_at: int | None = None, marker: str | None = None):
        self.hang_at, self.marker = hang_at, marker
        self.calls: list[tuple[int, int, int]] = []

    def weights_checksum(self) -> str:
        return "n/a"

    def run_trial(self, trial_index: int, attempt: int, seed: int) -> TrialAttempt:
        self.calls.append((trial_index, attempt, seed))
        if trial_index == self.hang_at:
            Path(self.marker).write_text(str(os.getpid()))
            time.sleep(120)
        held = trial_index % 2 == 0
        rgb = np.full((6, 8, 3), trial_index, dtype=np.uint8)
        return TrialAttempt(
            target="glass",
            seed=seed,
            gripper_width_m=0.05 if held else 0.0,
            timings_ms={"total": 1.0},
            grasp={"width_m": 0.06},
            snapshots={"rgb": rgb, "depth_m": np.full((6, 8), 0.7, np.float32)},
            physics=PhysicsOutcome(held, "held" if held else "closed on nothing", None if held else "grasp"),
        )

    def close(self) -> None:
        """Nothing to release: this backend holds no devices."""


def _spec(n: int) -> SessionSpec:
    return SessionSpec(surface="translucent", method="raw", n_trials=n, seed=3)


def child_main(db_path: str, marker: str) -> None:
    """Run in a subprocess: a 5-trial session that hangs inside trial index 2."""
    with TrialDatabase(db_path) as db:
        start_session(db, _spec(5), session_id="killme")
        TrialRunner(db, backend=ScriptedBackend(hang_at=2, marker=marker), judge=PhysicsJudge(), progress=False).run("killme")


def test_sigkill_mid_trial_keeps_committed_trials_and_resumes(tmp_path):
    db_path, marker = tmp_path / "t.sqlite", tmp_path / "in_trial_2"
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('runner_test_child', {str(Path(__file__))!r})\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        f"mod.child_main({str(db_path)!r}, {str(marker)!r})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(f"child exited early ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
            assert time.monotonic() < deadline, "the child never reached trial 2"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with TrialDatabase(db_path) as db:
        before = db.trials("killme")
        assert [(r.trial_index, r.outcome) for r in before] == [(0, "success"), (1, "failure")]
        assert db.session("killme").status == "running" and db.next_trial_index("killme") == 2
        for r in before:
            assert (db_path.parent / r.artifacts["colour"]).is_file() and (db_path.parent / r.artifacts["depth"]).is_file()
        backend = ScriptedBackend()
        result = TrialRunner(db, backend=backend, judge=PhysicsJudge(), progress=False).run("killme")
        assert result.status == "complete"
        assert [c[:2] for c in backend.calls] == [(2, 1), (3, 1), (4, 1)]  # resumed at the trial that was in flight
        assert backend.calls[0][2] == trial_seed(3, 2, 1)  # with the seed it would have had
        after = db.trials("killme")
        assert after[:2] == before
        assert [r.outcome for r in after] == ["success", "failure", "success", "failure", "success"]
        assert [(r.decided_by, r.failure_stage) for r in after[:2]] == [("physics", None), ("physics", "grasp")]
        assert db.session("killme").status == "complete"


def test_operator_prompt_retry_skip_abort_and_resume(tmp_path):
    answers = iter(["r", "", "k", "bogus", "n slipped out", "a"])
    said: list[str] = []
    judge = OperatorPrompt(ask=lambda prompt: next(answers), say=said.append)
    backend = ScriptedBackend()
    with TrialDatabase(tmp_path / "t.sqlite") as db:
        sid = start_session(db, _spec(5))
        result = TrialRunner(db, backend=backend, judge=judge, progress=False).run(sid)
        assert result.status == "aborted" and db.session(sid).status == "aborted"
        got = [(r.trial_index, r.outcome, r.attempt, r.suggestion, r.decided_by, r.notes) for r in db.trials(sid)]
        assert got == [
            (0, "success", 2, "success", "operator", "accepted the suggestion"),  # retried once, then Enter took the suggestion
            (1, "skipped", 1, "failure", "operator", ""),
            (2, "failure", 1, "success", "operator", "slipped out"),  # the operator overrides the suggestion
            (3, "aborted", 1, "failure", "operator", ""),
        ]
        assert [c[:2] for c in backend.calls] == [(0, 1), (0, 2), (1, 1), (2, 1), (3, 1)]
        # An executed trial the operator calls a failure stopped at the grasp; successes and skips have no stage.
        assert [r.failure_stage for r in db.trials(sid)] == [None, None, "grasp", None]
        assert any("not understood" in s for s in said) and any("suggestion: success" in s for s in said)
        # Resume after the abort: the last trial runs, the session completes.
        more = iter(["y"])
        result = TrialRunner(db, backend=backend, judge=OperatorPrompt(ask=lambda p: next(more), say=said.append), progress=False).run(sid)
        assert result.status == "complete" and [r.outcome for r in db.trials(sid)][-1] == "success"
        assert TrialRunner(db, backend=backend, judge=judge, progress=False).run(sid).recorded == []  # complete: nothing more


def test_rig_backend_and_oracle_on_rig_fail_clearly():
    from dkt_grasping.trials.session import SessionSpecError

    # the rig backend without a running graph: test_rig_backend.py::test_no_graph_running_is_a_clear_error
    with pytest.raises(SessionSpecError, match="oracle"):
        SessionSpec(backend="rig", arm="piper", method="ground_truth")
    with pytest.raises(SessionSpecError, match="custom surface label 'wood'"):
        SessionSpec(surface="wood")
    with pytest.raises(SessionSpecError, match="depth method must be one of"):
        SessionSpec(method="lidar")


def test_physics_judge_charges_failures_to_their_stage():
    from dkt_grasping.trials.backend import REPORT_STAGES, report_stage

    judge = PhysicsJudge()
    planned = TrialAttempt(target="glass_cup", seed=1, failure_stage="planning", failure_reason="unreachable: pre-grasp")
    assert (judge.decide(planned, "failure").action, judge.decide(planned, "failure").stage) == ("failure", "planning")
    pushed = TrialAttempt(target="glass_cup", seed=1, physics=PhysicsOutcome(False, "before the grasp: glass_cup was pushed", "execution"))
    assert (judge.decide(pushed, "none").stage, judge.decide(pushed, "none").note) == ("execution", "before the grasp: glass_cup was pushed")
    held = TrialAttempt(target="glass_cup", seed=1, physics=PhysicsOutcome(True, "held"))
    assert (judge.decide(held, "success").action, judge.decide(held, "success").stage) == ("success", None)
    with pytest.raises(ValueError, match="needs a simulated attempt"):
        judge.decide(TrialAttempt(target="x", seed=1), "none")
    stages = ["capture", "depth", "metric_depth", "grasp_detection", "planning", "execution", "grasp", None]
    assert [report_stage(s) for s in stages] == ["perception"] * 3 + ["detection", "planning", "execution", "grasp", "grasp"]
    assert set(map(report_stage, stages)) == set(REPORT_STAGES)
    with pytest.raises(ValueError, match="unknown failure stage 'teleport'"):
        report_stage("teleport")
