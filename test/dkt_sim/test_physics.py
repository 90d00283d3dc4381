"""Physics execution and the physical judge on hand-placed grasps; bad setpoints refused with the world intact."""

from __future__ import annotations

import numpy as np
import pytest

from dkt_grasping.piper_model import JOINT_LOWER, JOINT_UPPER
from dkt_sim.execution import SequenceRunner, TimedSequence, run_to_end
from dkt_sim.judge import judge_grasp
from dkt_sim.objects import single_object_scene
from dkt_sim.scripted import grasp_sequence, tangential_grasp_pose
from dkt_sim.world import CommandError, SimWorld

X, Y = 0.45, 0.2  # in front of the left arm, 0.23 m from its base


def hand_placed(kind: str, *, offset_m: float = 0.0, below_top_m: float = 0.03, hold_s: float = 1.0):
    """A hand-placed grasp of one object in front of the left arm (see tangential_grasp_pose): (world, report, verdict)."""
    base = np.array([0.2305, 0.297])
    radial = np.array([X, Y]) - base
    yaw = float(np.arctan2(radial[0], -radial[1]))  # a box's short side (x) along the closing direction
    world = SimWorld(single_object_scene(kind, X, Y, yaw), width=96, height=72)
    T_base_tcp = tangential_grasp_pose(world, "left", 0, below_top_m=below_top_m, offset_m=offset_m)
    seq = grasp_sequence(world.arm_q("left"), T_base_tcp, 0.07)
    z0 = float(world.object_pose(0)[2, 3])
    report = run_to_end(world, SequenceRunner(world, "left", seq, target=0, hold_s=hold_s))
    return world, report, judge_grasp(report, 1, [o.name for o in world.scene.objects], z0)


@pytest.mark.parametrize("kind", ["cardboard_box", "soda_can"])
def test_a_good_grasp_lifts_and_holds(kind):
    world, report, verdict = hand_placed(kind)
    assert verdict.held and verdict.stage is None, verdict.reason
    assert report.completed and not report.events and report.max_tracking_error_rad < 0.02
    assert 0.07 < verdict.details["lift_m"] < 0.09  # the 8 cm lift, the object firmly in the fingers
    closed = report.grips["closed"]
    width = world.scene.objects[0].size[0]
    assert closed.holds(1) and closed.opening_m == pytest.approx(width, abs=0.004)  # the fingers stopped on the object
    assert world.gripper_opening("left") == pytest.approx(closed.opening_m, abs=0.002)


def test_a_grasp_beside_the_object_fails_at_grasp():
    _, report, verdict = hand_placed("cardboard_box", offset_m=0.09)
    assert not verdict.held and verdict.stage == "grasp"
    assert verdict.reason.startswith("closed on nothing") and report.grips["closed"].left == set()
    assert abs(verdict.details["lift_m"]) < 0.005


def test_a_grasp_into_the_object_fails_at_execution():
    """Fingertips 8.5 cm below the top of a 7 cm box: the palm comes down on it before the gripper closes."""
    _, report, verdict = hand_placed("cardboard_box", below_top_m=0.085)
    assert not verdict.held and verdict.stage == "execution"
    assert verdict.reason.startswith("before the grasp: ") and {e.kind for e in report.approach_events()} & {"pushed", "collision", "blocked"}


def test_the_same_run_twice_is_the_same_run():
    a, _, va = hand_placed("soda_can", hold_s=0.2)
    b, _, vb = hand_placed("soda_can", hold_s=0.2)
    np.testing.assert_array_equal(a.data.qpos, b.data.qpos)
    assert va == vb


def test_bad_setpoints_are_refused_and_the_world_keeps_running():
    world = SimWorld(single_object_scene("soda_can", X, Y), width=96, height=72)
    q = world.arm_q("left")
    good = np.tile([*q, 0.05], (3, 1))
    with pytest.raises(CommandError, match="non-finite"):
        bad = good.copy()
        bad[1, 2] = np.nan
        TimedSequence(np.array([0.0, 0.5, 1.0]), bad, None)
    lo, hi = np.rad2deg(JOINT_LOWER[4]), np.rad2deg(JOINT_UPPER[4])
    with pytest.raises(CommandError, match=rf"point 2 \(t = 1.000 s\): joint setpoint outside the joint limits: joint5=80.21 deg not in \[{lo:.1f}, {hi:.1f}\]"):
        bad = good.copy()
        bad[2, 4] = np.deg2rad(80.21)
        TimedSequence(np.array([0.0, 0.5, 1.0]), bad, None)
    with pytest.raises(CommandError, match="gripper opening must be in"):
        world.command("left", q, opening=0.2)
    with pytest.raises(CommandError, match="strictly increasing"):
        TimedSequence(np.array([0.0, 0.5, 0.5]), good, None)
    before = world.data.ctrl.copy()
    world.step(50)  # nothing was applied: the arm holds where it was
    np.testing.assert_array_equal(world.data.ctrl[:12], before[:12])
    assert np.abs(world.arm_q("left") - q).max() < 1e-3
