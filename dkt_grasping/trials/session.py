"""What a trial session is: surface type, depth method, objects, arm, backend and counts.

One session = one surface type x one depth method, ``n_trials`` trials. The
spec is stored as JSON with the session, so ``--resume`` rebuilds exactly the
same runner.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from dkt_grasping.reachability import ReachabilityConfig
from dkt_sim.mjcf import PhysicsConfig
from dkt_sim.objects import KINDS, SceneRandomisation
from dkt_stack.config import from_dict, param, to_dict

#: Surface labels of the paper's table, in its column order.
PAPER_SURFACES = ("translucent", "reflective", "diffusive")
#: Surface labels the physics simulation draws targets for (``transparent`` is an older word for translucent).
SIMULATED_SURFACES = ("translucent", "transparent", "reflective", "diffusive")
#: Depth methods; ``ground_truth`` is the simulator's exact depth: an oracle, never a real method.
METHODS = ("raw", "dkt", "depth_anything_v2", "ground_truth")
ORACLE_METHODS = ("ground_truth",)
TRIAL_BACKEND_NAMES = ("simulation", "rig")


class SessionSpecError(ValueError):
    """A session description that cannot be run (unknown method, oracle on the rig, ...)."""


@dataclass
class SimulationSettings:
    """The physics simulation used by the ``simulation`` trial backend (:mod:`dkt_sim`)."""

    width: int = param(640, help="D435 image width, px")
    height: int = param(480, help="D435 image height, px")
    capture_frames: int = param(1, help="frames captured per trial (the depth method sees them as one video; the last one is used)")
    roi_margin_px: int = param(6, help="the operator's pointing: the cloud points on the target's pixels grown by this much (px) are the grasp detector's target")
    gripper_dwell_s: float = param(0.5, help="time the plan gives each gripper command (s), as planner_node publishes it")
    hold_s: float = param(2.0, help="after the lift the arm holds still this long before the judge looks (s)")
    lift_success_m: float = param(0.05, help="success: the target stands at least this much above its start after the hold (m)")
    strips: bool = param(True, help="save a picture strip (camera and external view at capture, grasp, lift) with every trial")
    strip_tile_px: int = param(320, help="width of one picture in the strip (px)")
    scene: SceneRandomisation = param(default_factory=SceneRandomisation, help="how each trial's scene is drawn")
    physics: PhysicsConfig = param(default_factory=PhysicsConfig, help="physics and control settings")


@dataclass
class SessionSpec:
    """One trial session (see the module docstring)."""

    surface: str = param("translucent", help="surface type: translucent, reflective, diffusive or a custom label")
    method: str = param("raw", help="depth method: raw, dkt, depth_anything_v2 or ground_truth (simulation only: oracle)")
    backend: Literal["simulation", "rig"] = param("simulation", help="trial backend: simulation (MuJoCo physics) or rig (real nodes)")
    arm: str = param("simulated", help="arm backend (dkt_grasping.arm): simulated, or piper on the rig")
    objects: list[str] = param(
        default_factory=list, help="target objects: simulation: library kinds (dkt_sim.objects); rig: names for the record; empty = any of the surface type"
    )
    n_trials: int = param(10, help="trials in the session")
    seed: int = param(0, help="session seed: trial k of attempt a uses a seed derived from (seed, k, a)")
    judge: Literal["auto", "operator", "physics"] = param(
        "auto",
        help="who decides success: operator (terminal prompt), physics (the simulator: lifted and held); auto = physics in simulation",
    )
    holding_threshold_m: float = param(0.005, help="gripper opening after closing above this = holding something (the suggestion), m")
    grasp_detector: str = param("antipodal", help="grasp detector (dkt_grasping.grasp_detection)")
    check_reachability: bool = param(
        True, help="simulation: keep only grasps the arm can execute and choose the arm by them, as grasp_node does (false: every grasp, nearest arm)"
    )
    reachability: ReachabilityConfig = param(
        default_factory=ReachabilityConfig, help="simulation: the arm model (also the simulated arms' and the planner's) and the executability check"
    )
    planner: str = param("cpu", help="motion planner (dkt_grasping.planning)")
    weights_dir: str = param("", help="DKT weights folder; empty = $DKT_WEIGHTS_DIR or ~/.cache/dkt_stack/weights")
    depth_anything_model: str = param("depth-anything/Depth-Anything-V2-Small-hf", help="HF id or folder for depth_anything_v2")
    save_snapshots: bool = param(True, help="save colour PNG, depth and cloud NPZ with every trial")
    simulation: SimulationSettings = param(default_factory=SimulationSettings, help="simulated scene settings")
    notes: str = param("", help="free text stored with the session")

    def __post_init__(self):
        if not self.surface or not self.surface.strip() or any(c in self.surface for c in "\n\r\t,|"):
            raise SessionSpecError(f"surface must be a non-empty label without tabs, commas, '|' or newlines, got {self.surface!r}")
        if self.method not in METHODS:
            raise SessionSpecError(f"depth method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.backend not in TRIAL_BACKEND_NAMES:
            raise SessionSpecError(f"trial backend must be one of {', '.join(TRIAL_BACKEND_NAMES)}, got {self.backend!r}")
        if self.method in ORACLE_METHODS and self.backend != "simulation":
            raise SessionSpecError(
                f"method {self.method!r} is the simulator's exact depth (an oracle): it exists only with --backend simulation"
            )
        if self.judge == "physics" and self.backend != "simulation":
            raise SessionSpecError("the physics judge is the simulator's: on the rig the operator judges (--judge operator or auto)")
        if self.backend == "simulation":
            if self.arm != "simulated":
                raise SessionSpecError(f"the simulation backend drives the simulated arm; got arm {self.arm!r}")
            if self.surface not in SIMULATED_SURFACES and not self.objects:
                raise SessionSpecError(
                    f"custom surface label {self.surface!r} in simulation: name the target objects (--objects), "
                    f"the simulator only knows {', '.join(PAPER_SURFACES)}"
                )
            unknown = [o for o in self.objects if o not in KINDS or not KINDS[o].graspable]
            if unknown:
                raise SessionSpecError(f"unknown simulated object(s) {unknown}; the library has {', '.join(k for k, v in KINDS.items() if v.graspable)}")
        if self.n_trials < 1:
            raise SessionSpecError(f"n_trials must be >= 1, got {self.n_trials}")
        if self.holding_threshold_m < 0:
            raise SessionSpecError(f"holding_threshold_m must be >= 0 m, got {self.holding_threshold_m}")
        s = self.simulation
        if s.width < 64 or s.height < 48 or s.capture_frames < 1:
            raise SessionSpecError(
                f"simulation image must be at least 64x48 px with >= 1 frame, got {s.width}x{s.height}, {s.capture_frames}"
            )
        if s.hold_s < 0 or s.lift_success_m <= 0 or s.gripper_dwell_s <= 0:
            raise SessionSpecError(f"simulation needs hold_s >= 0, lift_success_m > 0 and gripper_dwell_s > 0, got {s.hold_s}, {s.lift_success_m}, {s.gripper_dwell_s}")

    @property
    def resolved_judge(self) -> str:
        if self.judge != "auto":
            return self.judge
        return "physics" if self.backend == "simulation" else "operator"

    @property
    def is_oracle(self) -> bool:
        return self.method in ORACLE_METHODS

    def to_json_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_json_dict(cls, data: dict) -> SessionSpec:
        return from_dict(cls, data)

    def replace(self, **changes) -> SessionSpec:
        return dataclasses.replace(self, **changes)


def method_label(method: str) -> str:
    """How a method is named in reports: the oracle says it is one."""
    return f"{method} (oracle)" if method in ORACLE_METHODS else method
