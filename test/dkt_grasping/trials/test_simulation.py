"""Simulated sessions in the physics simulation end to end: real depth/cloud/grasp/planner code, MuJoCo, the physics judge."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from dkt_grasping.trials.backend import trial_seed
from dkt_grasping.trials.database import TrialDatabase
from dkt_grasping.trials.demo import run_demo_trials
from dkt_grasping.trials.depth_methods import MethodUnavailableError
from dkt_grasping.trials.runner import TrialRunner, start_session
from dkt_grasping.trials.session import SessionSpec, SessionSpecError, SimulationSettings
from dkt_grasping.trials.simulation import SimulationTrialBackend


def _spec(**kw) -> SessionSpec:
    settings = SimulationSettings(width=320, height=240, strip_tile_px=160, hold_s=1.0)
    return SessionSpec(**{"surface": "diffusive", "method": "ground_truth", "n_trials": 2, "seed": 4, **kw}, simulation=settings)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim")
    spec = _spec()
    with TrialDatabase(folder / "t.sqlite") as db:
        sid = start_session(db, spec)
        result = TrialRunner(db, progress=False).run(sid)
        records = db.trials(sid)
    return folder, spec, result, records


def test_physics_session_end_to_end(session):
    folder, spec, result, records = session
    assert result.status == "complete" and [r.trial_index for r in records] == [0, 1]
    for r in records:
        scene = r.parameters["scene"]
        assert r.target == scene["objects"][0]["kind"] and scene["objects"][0]["surface"] == "diffusive"
        assert r.decided_by == "physics" and r.weights_checksum == "n/a" and r.parameters["oracle"] is True
        assert r.outcome in ("success", "failure") and r.timings_ms["total"] > 0
        assert (r.outcome == "failure") == (r.failure_stage is not None)
        depth = np.load(folder / r.artifacts["depth"])["depth_m"]
        assert depth.shape == (240, 320) and depth.dtype == np.float32
        strip = cv2.imread(str(folder / r.artifacts["strip"]))
        assert strip.shape[0] == 2 * 120 and strip.shape[1] in (160, 480)  # capture only, or capture + grasp + lift
    executed = [r for r in records if "physics" in r.parameters]
    assert executed, [r.notes for r in records]  # seed 4 reaches execution: physics decided at least one trial
    for r in executed:
        p = r.parameters["physics"]
        assert (r.outcome == "success") == p["held"] and r.parameters["arm"] in ("left", "right")
        assert (p["lift_m"] >= spec.simulation.lift_success_m) if p["held"] else (r.failure_stage in ("execution", "grasp"))
        assert cv2.imread(str(folder / r.artifacts["strip"])).shape[1] == 3 * 160
        # The fingers closed where the planner put them (the executed tcp is the planned grasp's fingertips within 5 mm).
        planned = np.array(r.grasp["pose_base"])
        fingertips = planned[:3, 3] + r.grasp["depth_m"] * planned[:3, 2]
        assert np.linalg.norm(np.array(r.grasp["executed_tcp_base"])[:3, 3] - fingertips) < 0.005


def test_same_seed_same_trial(session):
    _, spec, _, records = session
    first = records[0]
    again = SimulationTrialBackend(spec).run_trial(0, 1, trial_seed(spec.seed, 0, 1))
    assert again.seed == first.seed and (again.failure_stage or (again.physics and again.physics.stage)) == first.failure_stage
    assert again.grasp == first.grasp and again.gripper_width_m == first.gripper_width_m
    if again.physics is not None:
        assert again.physics.details == {k: v for k, v in first.parameters["physics"].items() if k not in ("held", "stage", "reason")}


def test_report_json_has_judge_and_failures_by_stage(session, capsys):
    from dkt_stack.cli import main

    folder, _, _, records = session
    assert main(["trials", "report", "--db", str(folder / "t.sqlite"), "--format", "json"]) == 0
    (cell,) = json.loads(capsys.readouterr().out)["cells"]
    assert cell["judge"] == "physics" and cell["n"] == 2 and cell["method"] == "ground_truth"
    assert sum(cell["failures_by_stage"].values()) == cell["failures"] == sum(r.outcome == "failure" for r in records)
    assert set(cell["failures_by_stage"]) == {"perception", "detection", "planning", "execution", "grasp"}


def test_missing_weights_make_a_method_unavailable_not_faked(tmp_path, monkeypatch):
    monkeypatch.setenv("DKT_WEIGHTS_DIR", str(tmp_path / "no_weights"))
    with pytest.raises(MethodUnavailableError, match="'dkt' is unavailable: missing DKT weights"):
        SimulationTrialBackend(_spec(method="dkt"))
    text = run_demo_trials(1, tmp_path / "demo", ["dkt"], image_size=(320, 240), progress=False)
    assert "No trials recorded." in text and "Unavailable: dkt: depth method 'dkt' is unavailable" in text


def test_bad_session_specs():
    with pytest.raises(SessionSpecError, match=r"unknown simulated object\(s\) \['teapot'\]"):
        _spec(objects=["teapot"])
    with pytest.raises(SessionSpecError, match="custom surface label 'wood'"):
        _spec(surface="wood")
    with pytest.raises(SessionSpecError, match=r"unknown simulated object\(s\) \['cork_mat'\]"):
        _spec(objects=["cork_mat"])  # a flat distractor, not a target
    assert _spec(surface="wood", objects=["soda_can"]).objects == ["soda_can"]  # a custom label with named objects
    assert _spec(judge="auto").resolved_judge == "physics" and _spec(judge="operator").resolved_judge == "operator"
    with pytest.raises(SessionSpecError, match="the physics judge is the simulator's"):
        SessionSpec(backend="rig", arm="left", judge="physics")


def test_cli_run_resume_and_errors(tmp_path, capsys):
    from dkt_stack.cli import main

    db = tmp_path / "t.sqlite"
    args = ["trials", "run", "--db", str(db), "--surface", "reflective", "--method", "raw", "--trials", "1", "--size", "160x120"]
    assert main([*args, "--no-snapshots", "--quiet"]) == 0
    out = capsys.readouterr().out
    with TrialDatabase(db) as check:
        (session,) = check.sessions()
        (trial,) = check.trials(session.id)
        assert session.status == "complete" and trial.artifacts == {} and trial.decided_by == "physics"
    assert f"session {session.id}: complete" in out
    assert main(["trials", "run", "--db", str(db), "--resume", session.id]) == 0
    assert "already complete (1 trials)" in capsys.readouterr().out
    # Nothing is stored for a session that cannot run.
    assert main(["trials", "run", "--db", str(db), "--backend", "rig"]) == 2
    assert main(["trials", "run", "--db", str(db), "--method", "ground_truth", "--backend", "rig"]) == 2
    assert "oracle" in capsys.readouterr().err
    with TrialDatabase(db) as check:
        assert len(check.sessions()) == 1


def test_the_operator_target_is_the_cloud_points_on_its_pixels():
    from dkt_grasping.trials.simulation import target_points
    from dkt_stack.intrinsics import CameraIntrinsics

    K = CameraIntrinsics.from_fov(64, 48, 55.0)
    mask = np.zeros((48, 64), dtype=bool)
    mask[10:20, 30:40] = True
    # a point for every pixel centre at 0.5 m, then one without depth and one behind the camera
    v, u = np.mgrid[0:48, 0:64]
    z = 0.5
    xyz = np.column_stack([(u.ravel() - K.cx) / K.fx * z, (v.ravel() - K.cy) / K.fy * z, np.full(u.size, z)])
    xyz = np.concatenate([xyz, [[np.nan, 0.0, 0.5], [0.0, 0.0, -0.5]]])
    on = target_points(xyz, K, mask)
    assert on.shape == (len(xyz),) and on.sum() == 100
    np.testing.assert_array_equal(on[:-2], mask.ravel())
    assert not on[-2:].any()
