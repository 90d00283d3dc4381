"""Arm backends behind one interface: ``create_arm("piper" | "simulated", config)``, and plan execution."""

from __future__ import annotations

from typing import Any

from dkt_grasping.arm.base import Arm, ArmError, ArmFeedbackLost, ArmState, SetpointLimiter
from dkt_grasping.planning.base import GraspPlan, GripperCommand
from dkt_stack.backends import create_backend

#: name -> (module, class, config class)
ARMS: dict[str, tuple[str, str, str]] = {
    "piper": ("dkt_grasping.arm.piper", "PiperArm", "PiperArmConfig"),
    "simulated": ("dkt_grasping.arm.simulated", "SimulatedArm", "SimulatedArmConfig"),
}


def create_arm(name: str, config: Any = None) -> Arm:
    """Arm backend ``name`` from a config dataclass, a mapping or None (defaults)."""
    return create_backend("arm", ARMS, name, config)


def execute_plan(arm: Arm, plan: GraspPlan) -> ArmState:
    """Run a grasp plan's steps in order on a connected, enabled arm; stops the arm on any failure."""
    try:
        for step in plan.steps:
            if isinstance(step.action, GripperCommand):
                arm.set_gripper(step.action.width, step.action.effort)
            else:
                arm.execute(step.action)
        return arm.read_state()
    except BaseException:
        arm.stop()
        raise


__all__ = ["ARMS", "Arm", "ArmError", "ArmFeedbackLost", "ArmState", "SetpointLimiter", "create_arm", "execute_plan"]
