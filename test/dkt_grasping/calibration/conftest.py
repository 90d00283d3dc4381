"""Shared synthetic rigs and pose plans (planning costs a second or two: once per session)."""

from __future__ import annotations

import numpy as np
import pytest

from dkt_grasping.calibration.poses import PosePlanConfig, generate_pose_plan
from dkt_grasping.calibration.synthetic import synthetic_rig

_CACHE: dict = {}


def _rig_and_plan(mode: str, count: int = 15, seed: int = 0):
    """(SyntheticRig, PosePlan) for a mode, cached per (mode, count, seed)."""
    key = (mode, count, seed)
    if key not in _CACHE:
        rig = synthetic_rig(mode, seed=seed)
        plan = generate_pose_plan(
            mode, rig.X_nominal, rig.Y_nominal, rig.model, rig.intrinsics,
            PosePlanConfig(count=count, distance_m=list(rig.distance_m), seed=seed), kinematics=rig.kinematics,
        )  # fmt: skip
        _CACHE[key] = (rig, plan)
    return _CACHE[key]


@pytest.fixture(scope="session")
def rig_and_plan():
    """``rig_and_plan(mode, count=15, seed=0)`` -> (SyntheticRig, PosePlan), computed once per session."""
    return _rig_and_plan


@pytest.fixture(params=["eye_to_hand", "eye_in_hand"])
def mode(request) -> str:
    return request.param


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)
