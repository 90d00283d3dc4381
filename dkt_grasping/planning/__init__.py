"""Motion planners behind one interface, chosen by a config string.

``create_planner("cpu", {...})`` builds the CPU fallback (Pinocchio + coal +
OMPL + ruckig); ``"curobo"`` the cuRobo adapter (CUDA; imported only then).
"""

from __future__ import annotations

from typing import Any

from dkt_grasping.planning.base import GraspPlan, GraspPlanner, GripperCommand, JointTrajectory, PlanningError, PlanStep
from dkt_stack.backends import create_backend

#: name -> (module, planner class, config class)
PLANNERS: dict[str, tuple[str, str, str]] = {
    "cpu": ("dkt_grasping.planning.cpu_planner", "CpuGraspPlanner", "CpuPlannerConfig"),
    "curobo": ("dkt_grasping.planning.curobo", "CuroboGraspPlanner", "CuroboConfig"),
}


def create_planner(name: str, config: Any = None) -> GraspPlanner:
    """Planner ``name`` from a config dataclass, a mapping (validated by ``from_dict``) or None (defaults)."""
    return create_backend("planner", PLANNERS, name, config)


__all__ = ["PLANNERS", "GraspPlan", "GraspPlanner", "GripperCommand", "JointTrajectory", "PlanStep", "PlanningError", "create_planner"]
