"""cuRobo adapter (CUDA): the only module that imports ``curobo``.

Written against cuRobo's documented APIs:

* v2 (>= 0.8, Apache-2.0): ``from curobo.motion_planner import MotionPlanner, MotionPlannerCfg``;
  ``MotionPlanner(MotionPlannerCfg.create(robot=..., scene_model=...))``, ``warmup()``,
  ``plan_grasp(start_state, grasp_poses, grasp_approach_offset=..., grasp_lift_offset=..., ...)``;
* v1 (<= 0.7.x, non-commercial): ``MotionGen(MotionGenConfig.load_from_robot_config(robot, world))``,
  ``warmup()``, ``plan_grasp(start_state, grasp_poses, plan_config, grasp_approach_offset=Pose, retract_offset=Pose)``.

Poses use scalar-first quaternions (w, x, y, z). The robot description
(PiPER URDF of the configured zero convention, collision spheres along the
same capsules the CPU planner uses) and the scene (occupied voxels as
cuboids) are built here as plain dicts; those builders are pure and tested
without CUDA. Like the CPU planner, the grasps are first checked with
:class:`~dkt_grasping.reachability.ReachabilityChecker` (closed-form IK,
limits, collisions): only executable ones enter cuRobo's goal set, and the
plan names the input grasp cuRobo chose (``GraspPlan.grasp_index``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from dkt_grasping.collision import ArmCollisionConfig
from dkt_grasping.grasp import Grasp
from dkt_grasping.piper_model import (
    DEFAULT_DH_IS_OFFSET,
    DEFAULT_TCP_OFFSET,
    DH_A,
    DH_ALPHA,
    DH_D,
    JOINT_NAMES,
    SHIPPED_URDF,
    dh_link_transform,
    dh_theta_offset,
    write_piper_urdf,
)
from dkt_grasping.planning.base import GraspPlan, GripperCommand, JointTrajectory, PlanningError, PlanStep
from dkt_grasping.reachability import ArmModelConfig, GraspMotionConfig, ReachabilityChecker, ReachabilityConfig
from dkt_stack.config import param
from dkt_stack.transforms import matrix_to_quat, quat_to_matrix


class CuroboUnavailable(ImportError):
    """cuRobo (or CUDA) is missing."""


@dataclass
class CuroboConfig:
    api: Literal["v2", "v1"] = param("v2", help="cuRobo API: v2 MotionPlanner (>= 0.8) or v1 MotionGen (<= 0.7.x)")
    urdf_path: str = param(
        "", help="PiPER URDF given to cuRobo; empty = generated for `arm` (the shipped dkt_grasping/robots/piper.urdf for the defaults)"
    )
    arm: ArmModelConfig = param(default_factory=ArmModelConfig, help="the arm's kinematic model (zero convention, tool)")
    motion: GraspMotionConfig = param(default_factory=GraspMotionConfig, help="pre-grasp stand-off and lift")
    collision: ArmCollisionConfig = param(default_factory=ArmCollisionConfig, help="capsule radii turned into collision spheres")
    spheres_per_link: int = param(4, help="collision spheres along each link capsule")
    scene_voxel_size: float = param(0.02, help="occupied scene voxels become cuboids of this size (m)")
    max_velocity: float = param(1.0, help="joint speed limit (rad/s)")
    max_acceleration: float = param(2.0, help="joint acceleration limit (rad/s^2)")
    max_jerk: float = param(20.0, help="joint jerk limit (rad/s^3)")
    interpolation_dt: float = param(0.01, help="trajectory sampling period (s)")
    close_effort: float = param(1.0, help="gripper effort when closing (N*m)")
    max_grasp_candidates: int = param(10, help="executable grasps given to cuRobo's goal set, best first")


def pose_to_curobo(T: np.ndarray) -> list[float]:
    """4x4 pose (m) -> ``[x, y, z, qw, qx, qy, qz]`` as cuRobo's ``Pose.from_list`` expects."""
    T = np.asarray(T, dtype=np.float64)
    x, y, z, w = matrix_to_quat(T[:3, :3])
    return [float(v) for v in (*T[:3, 3], w, x, y, z)]


def pose_from_curobo(values) -> np.ndarray:
    """``[x, y, z, qw, qx, qy, qz]`` -> 4x4 pose."""
    v = np.asarray(values, dtype=np.float64).reshape(7)
    T = np.eye(4)
    T[:3, :3] = quat_to_matrix([v[4], v[5], v[6], v[3]])
    T[:3, 3] = v[:3]
    return T


def urdf_for(cfg: CuroboConfig) -> str:
    """The URDF cuRobo loads: ``urdf_path``, the shipped one for the default arm, else one generated into the user cache."""
    if cfg.urdf_path:
        return cfg.urdf_path
    arm = cfg.arm
    if arm.dh_is_offset == DEFAULT_DH_IS_OFFSET and arm.tcp_offset == DEFAULT_TCP_OFFSET:
        return str(SHIPPED_URDF)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dkt_stack" / "urdf"
    path = cache / f"piper_dh{arm.dh_is_offset}_tcp{arm.tcp_offset:.4f}.urdf"
    return str(write_piper_urdf(path, arm.tcp_offset, arm.dh_is_offset))


def robot_config_dict(cfg: CuroboConfig) -> dict:
    """cuRobo robot description of the PiPER: kinematics, collision spheres along the link capsules, cspace limits."""
    c = cfg.collision
    offsets = dh_theta_offset(cfg.arm.dh_is_offset)

    def child_origin(i: int) -> np.ndarray:
        """Origin of link i+1 in link i's frame (m): the fixed part of joint i+1."""
        return dh_link_transform(DH_ALPHA[i], DH_A[i], offsets[i], DH_D[i])[:3, 3]

    # (link, segment start, segment end, radius) in that link's frame: the capsules of the CPU model.
    segments = [
        ("link1", np.array([0.0, 0.0, -DH_D[0]]), np.zeros(3), c.base_radius),
        ("link2", np.zeros(3), child_origin(2), c.upper_arm_radius),
        ("link3", np.zeros(3), child_origin(3), c.forearm_radius),
        ("link5", np.zeros(3), child_origin(5), c.wrist_radius),
        ("link6", np.array([0.0, 0.0, c.gripper_radius]), np.array([0.0, 0.0, cfg.arm.tcp_offset - c.gripper_radius]), c.gripper_radius),
    ]
    spheres = {
        link: [{"center": (a + t * (b - a)).round(5).tolist(), "radius": r} for t in np.linspace(0, 1, cfg.spheres_per_link)]
        for link, a, b, r in segments
    }
    n = len(JOINT_NAMES)
    return {
        "robot_cfg": {
            "kinematics": {
                "urdf_path": urdf_for(cfg),
                "base_link": "base_link",
                "ee_link": "tcp",
                "collision_link_names": list(spheres),
                "collision_spheres": spheres,
                "collision_sphere_buffer": c.scene_margin,
                "self_collision_ignore": {"link1": ["link2"], "link2": ["link3"], "link3": ["link5"], "link5": ["link6"]},
                "self_collision_buffer": {k: 0.0 for k in spheres},
                "cspace": {
                    "joint_names": list(JOINT_NAMES),
                    "retract_config": [0.0, 0.8, -0.9, 0.0, 0.5, 0.0],
                    "null_space_weight": [1.0] * n,
                    "cspace_distance_weight": [1.0] * n,
                    "max_acceleration": cfg.max_acceleration,
                    "max_jerk": cfg.max_jerk,
                    "velocity_scale": [cfg.max_velocity / 3.0] * n,  # URDF velocity limit is 3 rad/s
                },
            }
        }
    }


def scene_config_dict(points_base: np.ndarray | None, voxel_size: float) -> dict:
    """Occupied voxels of a base-frame cloud (m) as cuRobo world cuboids (identity orientation, wxyz)."""
    cuboids = {}
    if points_base is not None and len(points_base):
        keys = np.unique(np.floor(np.asarray(points_base, float) / voxel_size).astype(np.int64), axis=0)
        for k, key in enumerate(keys):
            centre = (key + 0.5) * voxel_size
            cuboids[f"voxel_{k}"] = {"dims": [voxel_size] * 3, "pose": [*centre.round(6).tolist(), 1.0, 0.0, 0.0, 0.0]}
    return {"cuboid": cuboids}


def _import_curobo(api: str):
    try:
        if api == "v2":
            from curobo.motion_planner import MotionPlanner, MotionPlannerCfg
            from curobo.types import JointState, Pose

            return {"Planner": MotionPlanner, "Cfg": MotionPlannerCfg, "JointState": JointState, "Pose": Pose}
        from curobo.types.math import Pose
        from curobo.types.state import JointState
        from curobo.wrap.reacher.motion_gen import MotionGen, MotionGenConfig, MotionGenPlanConfig

        return {"Planner": MotionGen, "Cfg": MotionGenConfig, "PlanCfg": MotionGenPlanConfig, "JointState": JointState, "Pose": Pose}
    except ImportError as exc:
        raise CuroboUnavailable(
            f"cuRobo ({api} API) is not installed: it needs CUDA and a source install from https://github.com/NVlabs/curobo "
            "(the PyPI 'curobo'/'nvidia-curobo' packages are placeholders); or use the 'cpu' planner"
        ) from exc


class CuroboGraspPlanner:
    """Grasp planning with cuRobo on the GPU; same interface and plan type as the CPU planner."""

    def __init__(self, config: CuroboConfig | None = None):
        self.config = config or CuroboConfig()
        self._api = _import_curobo(self.config.api)
        c = self.config
        self.reachability = ReachabilityChecker(ReachabilityConfig(arm=c.arm, motion=c.motion, collision=c.collision))
        self._planner = None
        self._scene_key = None

    def _ensure_planner(self, scene_points):
        cfg, api = self.config, self._api
        robot, scene = robot_config_dict(cfg), scene_config_dict(scene_points, cfg.scene_voxel_size)
        if self._planner is None:
            if cfg.api == "v2":
                self._planner = api["Planner"](api["Cfg"].create(robot=robot, scene_model=scene))
            else:
                self._planner = api["Planner"](api["Cfg"].load_from_robot_config(robot, scene, interpolation_dt=cfg.interpolation_dt))
            self._planner.warmup()
        else:
            update = getattr(self._planner, "update_world", None) or self._planner.update_scene
            update(scene)

    def plan_grasp(self, q_start: np.ndarray, grasps: list[Grasp], scene_points: np.ndarray | None) -> GraspPlan:
        import torch

        t0 = time.perf_counter()
        cfg, api = self.config, self._api
        if not grasps:
            raise PlanningError("unreachable", "no grasp candidates were given")
        reaches = self.reachability.check(grasps, scene_points)
        executable = [i for i, r in enumerate(reaches) if r.reachable][: cfg.max_grasp_candidates]
        if not executable:
            reasons = sorted({r.reason for r in reaches})
            raise PlanningError("unreachable", f"none of {len(grasps)} grasps is executable by this arm ({', '.join(reasons)})")
        self._ensure_planner(scene_points)
        device = "cuda"
        start = api["JointState"].from_position(
            torch.tensor(np.asarray(q_start, np.float32)[None], device=device), joint_names=list(JOINT_NAMES)
        )
        # each grasp as the tool pose of its best executable goal (the grasp or its half-turn twin)
        chosen = [reaches[i].goals[0].T_tcp for i in executable]
        poses = torch.tensor([pose_to_curobo(T) for T in chosen], device=device, dtype=torch.float32)
        goal = api["Pose"](position=poses[None, :, :3], quaternion=poses[None, :, 3:])
        if cfg.api == "v2":
            result = self._planner.plan_grasp(
                start, goal, grasp_approach_offset=-cfg.motion.approach_distance, grasp_lift_offset=cfg.motion.lift_height
            )
        else:
            offset = api["Pose"].from_list([0.0, 0.0, -cfg.motion.approach_distance, 1.0, 0.0, 0.0, 0.0])
            lift = api["Pose"].from_list([0.0, 0.0, -cfg.motion.lift_height, 1.0, 0.0, 0.0, 0.0])
            result = self._planner.plan_grasp(start, goal, api["PlanCfg"](), grasp_approach_offset=offset, retract_offset=lift)
        success = getattr(result, "success", None)
        if success is None or not bool(np.asarray(success.cpu() if hasattr(success, "cpu") else success).any()):
            raise PlanningError("no_path", f"cuRobo found no grasp plan ({getattr(result, 'status', 'no status')})")
        index = int(getattr(result, "goalset_index", torch.zeros(1)).reshape(-1)[0])
        segments = [
            ("move_to_pregrasp", "approach_interpolated_trajectory"),
            ("approach", "grasp_interpolated_trajectory"),
            ("lift", "retract_interpolated_trajectory"),
        ]
        trajs = {}
        for name, attr in segments:
            traj = getattr(result, attr, None)
            if traj is None:
                raise PlanningError("backend", f"cuRobo result has no '{attr}' (API mismatch for {cfg.api})")
            trajs[name] = _to_joint_trajectory(traj, cfg.interpolation_dt)
        grasp_index = executable[index]
        grasp = grasps[grasp_index]
        steps = [
            PlanStep("open", GripperCommand(width=grasp.width, effort=cfg.close_effort)),
            PlanStep("move_to_pregrasp", trajs["move_to_pregrasp"]),
            PlanStep("approach", trajs["approach"]),
            PlanStep("close", GripperCommand(width=0.0, effort=cfg.close_effort)),
            PlanStep("lift", trajs["lift"]),
        ]
        return GraspPlan(
            grasp=grasp, steps=steps, q_grasp=trajs["approach"].positions[-1], planning_time=time.perf_counter() - t0, grasp_index=grasp_index
        )


def _to_joint_trajectory(state, dt: float) -> JointTrajectory:
    """cuRobo JointState (position/velocity/acceleration tensors, [1, T, dof] or [T, dof]) -> JointTrajectory."""

    def arr(x):
        return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64).reshape(-1, len(JOINT_NAMES))

    pos = arr(state.position)
    vel = arr(state.velocity) if getattr(state, "velocity", None) is not None else np.zeros_like(pos)
    acc = arr(state.acceleration) if getattr(state, "acceleration", None) is not None else np.zeros_like(pos)
    return JointTrajectory(np.arange(len(pos)) * dt, pos, vel, acc)
