"""Calibration in the MuJoCo Cobot Magic: the rendered board, the physics source, and the true camera pose recovered."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dkt_grasping.calibration.benchmark import run_trial
from dkt_grasping.calibration.board import BoardModel, grid_board
from dkt_grasping.calibration.collection import MotionError
from dkt_grasping.calibration.detection import DetectionConfig, SampleRejected, detect_board
from dkt_grasping.calibration.mujoco_rig import WRIST_CAMERA_MOUNT, MujocoSource, board_image, mujoco_calibration_rig
from dkt_grasping.calibration.poses import generate_pose_plan
from dkt_grasping.calibration.solver import motion, pose_difference
from dkt_stack.cli import main
from dkt_stack.rig import load_rig
from dkt_stack.transforms import invert_transform


def test_board_image_prints_the_configured_convention():
    """One tag: the official print (0) is OpenCV's render (180) turned 180 deg; the picture's size and centre follow the layout."""
    from dkt_grasping.calibration.board import BoardConfig, BoardTag

    official = BoardConfig(tags=[BoardTag(id=3, size_m=0.04, x=0.01, y=-0.02)], pattern_rotation_deg=0.0)
    opencv = BoardConfig(tags=[BoardTag(id=3, size_m=0.04, x=0.01, y=-0.02)], pattern_rotation_deg=180.0)
    a, size_a, T_a = board_image(official, cell_px=10, margin_m=0.01)
    b, size_b, T_b = board_image(opencv, cell_px=10, margin_m=0.01)
    # 10 cells of 10 px for the printed tag (5 mm each) plus 1 cm of paper (20 px) each side
    assert a.shape == b.shape == (140, 140) and size_a == size_b == pytest.approx((0.07, 0.07))
    np.testing.assert_allclose(T_a[:3, 3], (0.01, -0.02, 0.0), atol=1e-12)
    np.testing.assert_array_equal(T_a, T_b)
    np.testing.assert_array_equal(a, b[::-1, ::-1])
    assert a[0, 0] == a[-1, -1] == 225 and a[20:30, 20:120].max() == 225 and a[35, 35] == 25  # paper, white border, black square


@pytest.fixture(scope="module")
def hand_rig():
    """The eye_to_hand rig with the shipped board (official print) and two of its automatic poses."""
    rig = mujoco_calibration_rig("eye_to_hand", seed=0)
    plan = generate_pose_plan("eye_to_hand", rig.X_nominal, rig.Y_nominal, rig.model, rig.intrinsics, rig.plan_config(2, 0), kinematics=rig.kinematics)
    yield rig, plan
    rig.close()


def _board_in_view(rig, plan, pose: int = 0):
    source = MujocoSource(rig)
    q = source.move_to(plan.qs[pose])
    np.testing.assert_allclose(q, plan.qs[pose], atol=1e-3)  # settled within settle_rad of the goal
    capture = source.capture()
    np.testing.assert_array_equal(capture.q, rig.world.arm_q("left"))
    T_true = invert_transform(rig.X_true) @ motion(rig.mode, rig.flange(capture.q)) @ rig.Y_true
    return capture, T_true


@pytest.mark.parametrize("pattern_rotation_deg", [0.0, 180.0])
def test_board_renders_and_is_detected_with_its_ids_and_pose(hand_rig, pattern_rotation_deg):
    """The gripper's board in the D435's render: every id, the true board pose; the other print convention is caught."""
    rig, plan = hand_rig
    if pattern_rotation_deg == 180.0:  # tags printed from OpenCV renders: another world with that print on the flange
        board = grid_board(2, 2, 0.035, 0.045, first_id=10, pattern_rotation_deg=180.0)
        rig = mujoco_calibration_rig("eye_to_hand", seed=0, board=board)
    try:
        capture, T_true = _board_in_view(rig, plan)
        det = detect_board(capture.image, rig.intrinsics, rig.model, DetectionConfig())
        assert sorted(t.id for t in det.tags) == [10, 11, 12, 13]
        mm, deg = pose_difference(det.pose.T_camera_board, T_true)
        assert mm < 3.0 and deg < 0.2 and det.pose.rms_px < 0.5  # one view, 0.5 m away: depth is its weak axis (measured ~1 mm)
        wrong = BoardModel(rig.board, 180.0 - pattern_rotation_deg)
        with pytest.raises(SampleRejected, match=f"set board.pattern_rotation_deg: {pattern_rotation_deg:.0f}"):
            detect_board(capture.image, rig.intrinsics, wrong, DetectionConfig())
    finally:
        if pattern_rotation_deg == 180.0:
            rig.close()


def test_truth_comes_from_the_model_and_the_rig_file(hand_rig):
    """eye_to_hand: the true camera pose is the shipped sim rig file's; eye_in_hand: the wrist mount and the board on the table."""
    rig, _ = hand_rig
    np.testing.assert_allclose(rig.X_true, load_rig("cobot_magic_sim").arm("left").T_base_camera, atol=1e-6)
    assert 10.0 < pose_difference(rig.X_nominal, rig.X_true)[0] < 20.0  # the plan starts from a pose 15 mm off
    wrist = mujoco_calibration_rig("eye_in_hand", "right", seed=0)
    try:
        np.testing.assert_allclose(wrist.X_true, WRIST_CAMERA_MOUNT, atol=1e-6)
        assert wrist.Y_true[2, 2] == pytest.approx(-1.0)  # face up: board z points down
        table_top = wrist.surfaces()[0][4]  # the table geom's top in the base frame
        assert wrist.Y_true[2, 3] == pytest.approx(table_top + 0.002, abs=1e-6)  # on the table, a 2 mm plate
    finally:
        wrist.close()


def test_move_to_refuses_an_unreachable_goal(hand_rig):
    rig, _ = hand_rig
    source = MujocoSource(rig)
    before = source.current_q()
    with pytest.raises(MotionError, match="no plan"):
        source.move_to(np.array([0.0, 3.5, 0.0, 0.0, 0.0, 0.0]))  # joint 2 beyond its limit
    np.testing.assert_allclose(source.current_q(), before, atol=1e-6)


@pytest.mark.parametrize("mode", ["eye_to_hand", "eye_in_hand"])
def test_calibration_in_the_sim_recovers_the_true_camera_pose(mode):
    """6 automatic poses visited in physics, the D435's renders through the detector, the full solver, no added noise.

    Bound: ``dkt-stack bench calibrate --source mujoco --poses 6 --noise-px 0 --trials 8`` gave at worst 0.42 mm /
    0.046 deg (eye_to_hand) and 0.25 mm / 0.028 deg (eye_in_hand); the test allows about twice the worse of them,
    half of issue 16's 2 mm / 0.2 deg for 15 poses. The nominal pose the plan starts from is 15 mm / 3 deg off.
    """
    trial = run_trial(mode, 6, 0.0, "mujoco", 0.0, seed=0)
    assert trial["samples_collected"] == 6 and trial["failed_moves"] == 0 and not trial["problems"]
    assert trial["translation_error_mm"] < 1.0 and trial["rotation_error_deg"] < 0.1
    assert trial["reprojection_rms_px"] < 0.5


def test_cli_collects_solves_and_writes_a_copy_of_the_rig_file(tmp_path, capsys):
    """calibrate synthetic --source mujoco, then solve --write: the copy of the rig file gets the true camera pose."""
    folder = tmp_path / "cal"
    assert main(["calibrate", "synthetic", "--source", "mujoco", "--mode", "eye_to_hand", "--poses", "5", "--session", str(folder), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["samples"] == 5 and data["source"] == "mujoco" and len(list((folder / "session" / "images").glob("*.png"))) == 5
    shipped = load_rig("cobot_magic_sim")
    start = load_rig(folder / "rig.yaml")
    assert pose_difference(start.arm("left").T_base_camera, shipped.arm("left").T_base_camera)[0] > 10.0  # uncalibrated
    assert main(["calibrate", "solve", str(folder / "session"), "--write", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["truth"]["translation_error_mm"] < 1.0 and result["truth"]["rotation_error_deg"] < 0.1
    written = load_rig(folder / "rig.yaml")
    mm, deg = pose_difference(written.arm("left").T_base_camera, shipped.arm("left").T_base_camera)
    assert mm < 1.0 and deg < 0.1
    np.testing.assert_allclose(written.arm("right").T_base_camera, shipped.arm("right").T_base_camera)  # the other arm untouched
