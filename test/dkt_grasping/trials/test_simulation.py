"""A simulated session end to end: synthetic scene, real depth/cloud/grasp/planner code, simulated arm, ground-truth judge."""

from __future__ import annotations

import numpy as np
import pytest

from dkt_grasping.trials.database import TrialDatabase
from dkt_grasping.trials.demo import run_demo_trials
from dkt_grasping.trials.depth_methods import MethodUnavailableError
from dkt_grasping.trials.runner import TrialRunner, start_session
from dkt_grasping.trials.session import SessionSpec, SimulationSettings
from dkt_grasping.trials.simulation import SimulationTrialBackend, session_targets, trial_scene_config


def _spec(**kw) -> SessionSpec:
    return SessionSpec(
        **{"surface": "translucent", "method": "ground_truth", "n_trials": 2, **kw}, simulation=SimulationSettings(width=320, height=240)
    )


def test_simulated_session_end_to_end(tmp_path):
    spec = _spec()
    assert session_targets(spec, trial_scene_config(spec, 0)) == ["glass", "plastic_box"]  # translucent = the scene's transparent
    with TrialDatabase(tmp_path / "t.sqlite") as db:
        sid = start_session(db, spec)
        result = TrialRunner(db, progress=False).run(sid)
        assert result.status == "complete"
        records = db.trials(sid)
    assert [r.target for r in records] == ["glass", "plastic_box"]
    executed = [r for r in records if r.failure_stage is None]
    assert executed, "no simulated trial got as far as executing a grasp"
    for r in records:
        assert r.decided_by == "ground_truth" and r.weights_checksum == "n/a" and r.parameters["oracle"] is True
        assert r.outcome in ("success", "failure") and r.timings_ms["total"] > 0
        depth = np.load(tmp_path / r.artifacts["depth"])["depth_m"]
        assert depth.shape == (240, 320) and depth.dtype == np.float32
        cloud = np.load(tmp_path / r.artifacts["cloud"])
        assert cloud["xyz"].shape[1] == 3 and cloud["xyz"].shape[0] == r.parameters["cloud_points"]
    for r in executed:
        gt = r.parameters["ground_truth"]
        assert (r.outcome == "success") == gt["held"]
        # The simulated fingers stop where the exact geometry says they touch the object.
        if gt["held"]:
            assert r.suggestion == "success"
            assert r.gripper_width_m == pytest.approx(gt["contact_opening_m"], abs=1e-4)
        assert len(r.grasp["executed_pose_base"]) == 4 and r.trajectory["duration_s"] > 0
        # The arm really went there: the executed gripper pose is the planned grasp (same centre within 1 mm).
        planned = np.array(r.grasp["pose_base"])[:3, 3]
        assert np.linalg.norm(np.array(r.grasp["executed_pose_base"])[:3, 3] - planned) < 1e-3


def test_same_seed_same_trial():
    backend = SimulationTrialBackend(_spec(surface="diffusive", method="raw"))
    a, b = backend.run_trial(0, 1, 1234), backend.run_trial(0, 1, 1234)
    assert a.failure_stage == b.failure_stage and a.grasp == b.grasp and a.gripper_width_m == b.gripper_width_m
    np.testing.assert_array_equal(a.snapshots["rgb"], b.snapshots["rgb"])


def test_missing_weights_make_a_method_unavailable_not_faked(tmp_path, monkeypatch):
    monkeypatch.setenv("DKT_WEIGHTS_DIR", str(tmp_path / "no_weights"))
    with pytest.raises(MethodUnavailableError, match="'dkt' is unavailable: missing DKT weights"):
        SimulationTrialBackend(_spec(method="dkt"))
    text = run_demo_trials(1, tmp_path / "demo", ["dkt"], image_size=(320, 240), progress=False)
    assert "No trials recorded." in text and "Unavailable: dkt: depth method 'dkt' is unavailable" in text


def test_cli_run_resume_and_errors(tmp_path, capsys):
    from dkt_stack.cli import main

    db = tmp_path / "t.sqlite"
    args = ["trials", "run", "--db", str(db), "--surface", "reflective", "--method", "raw", "--trials", "1", "--size", "320x240"]
    assert main([*args, "--no-snapshots", "--quiet"]) == 0
    out = capsys.readouterr().out
    with TrialDatabase(db) as check:
        (session,) = check.sessions()
        assert session.status == "complete" and len(check.trials(session.id)) == 1 and check.trials(session.id)[0].artifacts == {}
    assert f"session {session.id}: complete" in out
    assert main(["trials", "run", "--db", str(db), "--resume", session.id]) == 0
    assert "already complete (1 trials)" in capsys.readouterr().out
    # Nothing is stored for a session that cannot run.
    assert main(["trials", "run", "--db", str(db), "--backend", "rig"]) == 2
    assert main(["trials", "run", "--db", str(db), "--method", "ground_truth", "--backend", "rig"]) == 2
    assert "oracle" in capsys.readouterr().err
    with TrialDatabase(db) as check:
        assert len(check.sessions()) == 1
