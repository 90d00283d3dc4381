"""``dkt-stack calibrate`` and ``dkt-stack bench calibrate`` in-process: synthetic session -> solve -> rig file -> verify."""

from __future__ import annotations

import json

import numpy as np

from dkt_grasping.calibration.collection import Collector
from dkt_grasping.calibration.config import CalibrationConfig
from dkt_grasping.calibration.poses import PosePlanConfig, generate_pose_plan
from dkt_grasping.calibration.session import CalibrationSession
from dkt_grasping.calibration.solver import pose_difference
from dkt_grasping.calibration.synthetic import SyntheticSource, synthetic_rig
from dkt_grasping.calibration.workflow import start_session
from dkt_stack.cli import main
from dkt_stack.rig import load_rig, read_history


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_synthetic_solve_write_verify(tmp_path, capsys):
    folder = tmp_path / "cal"
    code, out, _ = _run(capsys, "calibrate", "synthetic", "--mode", "eye_to_hand", "--session", str(folder), "--poses", "10", "--json")
    assert code == 0 and json.loads(out)["samples"] == 10
    rig_file = folder / "rig.yaml"
    nominal = load_rig(rig_file).arm("left").T_base_camera
    truth = np.asarray(json.loads((folder / "truth.json").read_text())["X_true"])

    code, out, _ = _run(capsys, "calibrate", "solve", str(folder / "session"), "--json")
    data = json.loads(out)
    assert code == 0 and data["ok"] and data["rig_key"] == "camera_pose" and "written" not in data
    np.testing.assert_allclose(load_rig(rig_file).arm("left").T_base_camera, nominal)  # solve alone writes nothing

    code, out, _ = _run(capsys, "calibrate", "solve", str(folder / "session"), "--write")
    assert code == 0 and "refined" in out and "wrote camera_pose of arm left" in out
    mm, deg = pose_difference(load_rig(rig_file).arm("left").T_base_camera, truth)
    assert mm < 2.0 and deg < 0.2
    [entry] = read_history(rig_file)
    np.testing.assert_allclose(entry["previous"][:3], nominal[:3, 3])

    # a verification run at new poses, against the rig file just written
    rig = synthetic_rig("eye_to_hand", seed=0)
    config = CalibrationConfig(board=rig.board, save_images=False)
    session = start_session(tmp_path / "check", "eye_to_hand", "left", str(rig_file), config, rig.intrinsics, purpose="verify")
    plan = generate_pose_plan("eye_to_hand", rig.X_nominal, rig.Y_nominal, rig.model, rig.intrinsics,
                              PosePlanConfig(count=5, distance_m=rig.distance_m, seed=9), kinematics=rig.kinematics)  # fmt: skip
    source = SyntheticSource(rig, plan.qs[0], seed=5, render=False, noise_px=0.3)
    collector = Collector(session, config, rig.kinematics)
    for q in plan.qs:
        source.move_to(q)
        collector.capture(source)
    code, out, _ = _run(capsys, "calibrate", "verify", str(tmp_path / "check"), "--calibration", str(folder / "session"))
    assert code == 0 and "PASSED" in out and "board mount from the calibration" in out
    assert (tmp_path / "check" / "verify.json").is_file()


def test_wrong_tag_size_and_degenerate_sessions(tmp_path, capsys):
    folder = tmp_path / "cal"
    assert _run(capsys, "calibrate", "synthetic", "--mode", "eye_in_hand", "--session", str(folder), "--poses", "8")[0] == 0
    code, out, _ = _run(capsys, "calibrate", "solve", str(folder / "session"), "--tag-size", "0.05", "--write")
    assert code == 2 and "tag size mismatch" in _ and "0.0400" in _  # refused to write, and says what the data measure
    assert read_history(folder / "rig.yaml") == []
    code, out, _ = _run(capsys, "calibrate", "solve", str(folder / "session"), "--tag-size", "0.05")
    assert code == 1 and "PROBLEM: tag size mismatch" in out
    # cut the session to two samples: refused with a clear message, exit 2
    session = CalibrationSession.open(folder / "session")
    while len(session.samples) > 2:
        session.remove_last()
    code, _, err = _run(capsys, "calibrate", "solve", str(folder / "session"))
    assert code == 2 and "needs at least 3 poses" in err


def test_bench_calibrate_prints_errors(capsys):
    code, out, _ = _run(capsys, "bench", "calibrate", "--mode", "eye_in_hand", "--poses", "8", "--noise-px", "0.3", "--trials", "1", "--no-loo", "--json")
    data = json.loads(out)
    assert code == 0 and data["poses"] == 8 and data["samples_used_min"] == 8
    assert 0 < data["translation_error_mm"] < 2.0 and 0 < data["rotation_error_deg"] < 0.2
    assert set(data["methods"]) == {"tsai", "park", "horaud", "andreff", "daniilidis", "shah", "li", "refined"}
    code, _, err = _run(capsys, "bench", "calibrate", "--poses", "2", "--json")
    assert code == 2 and "--poses must be >= 3" in err


def test_plan_on_the_shipped_rig(capsys):
    code, out, _ = _run(capsys, "calibrate", "plan", "--mode", "eye_in_hand", "--arm", "right", "--poses", "6", "--json")
    data = json.loads(out)
    assert code == 0 and len(data["qs"]) == 6 and data["coverage"]["problems"] == []
