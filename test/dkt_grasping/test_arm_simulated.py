"""The simulated arm: same interface as the PiPER driver, limits and velocity bounds on setpoints."""

import numpy as np
import pytest

from dkt_grasping.arm import ArmError, SetpointLimiter, create_arm, execute_plan
from dkt_grasping.planning.base import GraspPlan, GripperCommand, PlanStep
from dkt_grasping.planning.time_parameterization import time_parameterize


def test_limiter_clamps_position_and_speed():
    lim = SetpointLimiter([-1] * 6, [1] * 6, [2.0] * 6, np.zeros(6))
    q = lim.step([5, -5, 0.01, 0, 0, 0], dt=0.1)
    np.testing.assert_allclose(q, [0.2, -0.2, 0.01, 0, 0, 0])
    for _ in range(20):
        q = lim.step([5, -5, 0.01, 0, 0, 0], dt=0.1)
    np.testing.assert_allclose(q, [1, -1, 0.01, 0, 0, 0])


def test_simulated_arm_executes_a_plan():
    arm = create_arm("simulated", {"initial_q": [0.0, 0.5, -0.5, 0.0, 0.2, 0.0], "max_velocity": [1.0] * 6})
    with pytest.raises(ArmError, match="not enabled"):
        arm.set_gripper(0.05, 1.0)
    arm.connect()
    arm.enable()
    q0 = arm.read_state().q
    q1 = q0 + np.array([0.3, 0.2, -0.2, 0.1, 0.1, -0.3])
    traj = time_parameterize(np.array([q0, q1]), [0.8] * 6, [2.0] * 6, [20.0] * 6)
    plan = GraspPlan(
        grasp=None, steps=[PlanStep("open", GripperCommand(0.09, 1.0)), PlanStep("move", traj), PlanStep("close", GripperCommand(0.0))]
    )
    state = execute_plan(arm, plan)
    np.testing.assert_allclose(state.q, q1, atol=1e-12)
    assert state.gripper_width == 0.0
    trace = np.array(arm.trace)
    assert np.abs(np.diff(trace, axis=0)).max() <= 1.0 / 100 + 1e-12  # 1 rad/s at 100 Hz
    arm.set_gripper(0.09, 1.0)
    assert arm.read_state().gripper_width == pytest.approx(0.07)  # clamped to the opening
    arm.stop()
    with pytest.raises(ArmError, match="emergency-stopped"):
        arm.execute(traj)


def test_unknown_arm_backend():
    with pytest.raises(ValueError, match="piper"):
        create_arm("ur5")
