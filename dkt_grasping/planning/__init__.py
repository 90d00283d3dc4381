"""Motion planners behind one interface, chosen by a config string.

``create_planner("cpu", {...})`` builds the CPU fallback (Pinocchio + coal +
OMPL + ruckig); ``"curobo"`` the cuRobo adapter (CUDA; imported only then).
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from dkt_grasping.planning.base import GraspPlan, GraspPlanner, GripperCommand, JointTrajectory, PlanningError, PlanStep
from dkt_stack.config import from_dict

#: name -> (module, planner class, config class)
PLANNERS: dict[str, tuple[str, str, str]] = {
    "cpu": ("dkt_grasping.planning.cpu_planner", "CpuGraspPlanner", "CpuPlannerConfig"),
    "curobo": ("dkt_grasping.planning.curobo", "CuroboGraspPlanner", "CuroboConfig"),
}


def create_planner(name: str, config: Any = None) -> GraspPlanner:
    """Planner ``name`` from a config dataclass, a mapping (validated by ``from_dict``) or None (defaults)."""
    if name not in PLANNERS:
        raise ValueError(f"unknown planner '{name}' (known: {', '.join(sorted(PLANNERS))})")
    module_name, cls_name, cfg_name = PLANNERS[name]
    module = importlib.import_module(module_name)
    cfg_cls = getattr(module, cfg_name)
    if config is None:
        config = cfg_cls()
    elif isinstance(config, dict):
        config = from_dict(cfg_cls, config)
    elif not (dataclasses.is_dataclass(config) and isinstance(config, cfg_cls)):
        raise TypeError(f"config for '{name}' must be {cfg_cls.__name__} or a mapping, got {type(config).__name__}")
    return getattr(module, cls_name)(config)


__all__ = ["PLANNERS", "GraspPlan", "GraspPlanner", "GripperCommand", "JointTrajectory", "PlanStep", "PlanningError", "create_planner"]
