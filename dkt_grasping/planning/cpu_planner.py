"""CPU grasp planner: Pinocchio IK, coal collision checks, OMPL RRTConnect and ruckig timing.

For each candidate grasp (best first) it solves IK for the pre-grasp (the
fingertips ``approach_distance`` back along the approach axis), the grasp and
the lift pose, checks the approach and lift as straight tool motions against
the scene without the grasped object, and connects the start to the pre-grasp
with a densely checked straight joint path or, when that collides, OMPL's
RRTConnect. Every piece is timed with ruckig within the joint velocity,
acceleration and jerk limits. Goals outside the workspace or the joint
limits, unreachable or colliding ones raise :class:`PlanningError`.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import numpy as np

from dkt_grasping.collision import ArmCollisionConfig, ArmCollisionModel, SceneCollision
from dkt_grasping.grasp import Grasp
from dkt_grasping.gripper import GripperConfig
from dkt_grasping.kinematics import IKError, PiperKinematics
from dkt_grasping.piper_model import DEFAULT_TCP_OFFSET
from dkt_grasping.planning.base import GraspPlan, GripperCommand, JointTrajectory, PlanningError, PlanStep
from dkt_grasping.planning.time_parameterization import time_parameterize
from dkt_grasping.workspace import WorkspaceLimits
from dkt_stack.config import param

_HALF_TURN_Z = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class CpuPlannerConfig:
    """CPU planner settings (metres, radians, seconds)."""

    workspace: WorkspaceLimits = param(default_factory=WorkspaceLimits, help="grasp centres must lie in this base-frame box")
    gripper: GripperConfig = param(default_factory=GripperConfig, help="PiPER gripper geometry")
    collision: ArmCollisionConfig = param(default_factory=ArmCollisionConfig, help="capsule model and margins")
    tcp_offset: float = param(DEFAULT_TCP_OFFSET, help="flange to fingertip centre along the flange z axis (m)")
    max_velocity: list[float] = param(default_factory=lambda: [1.0] * 6, help="joint speed limits (rad/s)")
    max_acceleration: list[float] = param(default_factory=lambda: [2.0] * 6, help="joint acceleration limits (rad/s^2)")
    max_jerk: list[float] = param(default_factory=lambda: [20.0] * 6, help="joint jerk limits (rad/s^3)")
    approach_distance: float = param(0.08, help="pre-grasp stand-off along the approach axis (m)")
    lift_height: float = param(0.08, help="lift after closing, along base +z (m)")
    cartesian_steps: int = param(8, help="IK waypoints along the approach and lift lines")
    max_cartesian_deviation: float = param(0.005, help="allowed tool deviation from the straight approach/lift line (m)")
    path_resolution: float = param(0.02, help="joint step for dense collision checks (rad)")
    target_clearance_radius: float = param(
        0.06, help="scene points this close to the grasp are the object, ignored for approach and lift (m)"
    )
    ompl_max_checks: int = param(
        20000, help="RRTConnect budget per query, in collision checks (a count, not seconds, so a plan does not depend on machine load)"
    )
    ompl_simplify_checks: int = param(2000, help="path simplification budget, in collision checks")
    ompl_time_limit: float = param(10.0, help="safety net per query (s): planning stops here even within the check budget")
    ompl_range: float = param(0.3, help="RRTConnect extension step (rad)")
    ik_seeds: int = param(12, help="random IK restarts per pose")
    max_grasp_candidates: int = param(10, help="grasps tried, best first, before giving up")
    sample_dt: float = param(0.01, help="trajectory sampling period (s)")
    close_effort: float = param(1.0, help="gripper effort when closing (N*m)")
    seed: int = param(0, help="random seed (IK restarts, OMPL)")

    def __post_init__(self):
        for name in ("max_velocity", "max_acceleration", "max_jerk"):
            v = getattr(self, name)
            if len(v) != 6 or min(v) <= 0:
                raise ValueError(f"{name} must be 6 positive numbers, got {v}")


class CpuGraspPlanner:
    """Grasp planning on the CPU; see the module docstring."""

    def __init__(self, config: CpuPlannerConfig | None = None):
        self.config = config or CpuPlannerConfig()
        self.kin = PiperKinematics(self.config.tcp_offset)
        self.collision = ArmCollisionModel(self.kin, self.config.collision)
        self._rng = np.random.default_rng(self.config.seed)

    # -- public API ------------------------------------------------------------------------
    def plan_grasp(self, q_start: np.ndarray, grasps: list[Grasp], scene_points: np.ndarray | None) -> GraspPlan:
        """Plan open -> approach -> grasp -> close -> lift for the first feasible grasp (grasps sorted best first).

        q_start: (6,) rad; scene_points: Nx3 base frame (m), or None for free space.
        """
        t0 = time.perf_counter()
        if not grasps:
            raise PlanningError("unreachable", "no grasp candidates were given")
        self._rng = np.random.default_rng(self.config.seed)  # a plan depends on its request only, not on earlier requests
        scene = SceneCollision(scene_points, self.config.collision.voxel_size)
        q_start = self._check_start(q_start, scene)
        failures = []
        for grasp in grasps[: self.config.max_grasp_candidates]:
            try:
                plan = self._plan_one(q_start, grasp, scene)
                plan.planning_time = time.perf_counter() - t0
                return plan
            except PlanningError as exc:
                failures.append(exc)
        first = failures[0]
        kinds = sorted({f.kind for f in failures})
        raise PlanningError(first.kind, f"none of {len(failures)} grasps could be planned ({', '.join(kinds)}); best grasp: {first.reason}")

    def plan_to_pose(self, q_start: np.ndarray, T_target: np.ndarray, scene_points: np.ndarray | None) -> JointTrajectory:
        """Collision-free timed motion to a tcp pose (4x4, base frame, m)."""
        self._rng = np.random.default_rng(self.config.seed)
        scene = SceneCollision(scene_points, self.config.collision.voxel_size)
        q_start = self._check_start(q_start, scene)
        self._check_workspace(np.asarray(T_target)[:3, 3], "target")
        q_goal = self._ik(T_target, q_start, "target")
        if self.collision.in_collision(q_goal, scene):
            raise PlanningError("collision", f"the arm collides at the target ({', '.join(self.collision.colliding_links(q_goal, scene))})")
        return self._timed(self._connect(q_start, q_goal, scene))

    # -- pieces ----------------------------------------------------------------------------
    def _check_start(self, q_start, scene) -> np.ndarray:
        try:
            q = self.kin.check_q(q_start, "q_start")
        except ValueError as exc:
            raise PlanningError("start_invalid", str(exc)) from exc
        if not self.kin.within_limits(q, tol=1e-6):
            raise PlanningError("joint_limits", f"start configuration outside joint limits: {'; '.join(self.kin.limit_violations(q))}")
        hits = self.collision.colliding_links(q, scene)
        if hits:
            raise PlanningError("start_invalid", f"start configuration is in collision ({', '.join(hits)})")
        return np.clip(q, self.kin.lower, self.kin.upper)

    def _check_workspace(self, p: np.ndarray, what: str) -> None:
        ws = self.config.workspace
        if not ws.contains(p):
            raise PlanningError(
                "workspace",
                f"{what} position {np.round(p, 3).tolist()} m is outside the workspace "
                f"x[{ws.x_min}, {ws.x_max}] y[{ws.y_min}, {ws.y_max}] z[{ws.z_min}, {ws.z_max}] (base frame)",
            )

    def _ik(self, T: np.ndarray, q_seed: np.ndarray | None, what: str, num_random_seeds: int | None = None) -> np.ndarray:
        try:
            return self.kin.ik(
                T, q_seed, num_random_seeds=self.config.ik_seeds if num_random_seeds is None else num_random_seeds, rng=self._rng
            )
        except IKError as exc:
            raise PlanningError("unreachable", f"{what}: {exc.reason}") from exc

    def _plan_one(self, q_start: np.ndarray, grasp: Grasp, scene: SceneCollision) -> GraspPlan:
        cfg = self.config
        self._check_workspace(grasp.position, "grasp")
        if grasp.width > cfg.gripper.max_opening + 1e-9:
            raise PlanningError("unreachable", f"grasp width {grasp.width:.3f} m exceeds the gripper opening {cfg.gripper.max_opening} m")
        # The fingers are symmetric: the half-turn twin of the grasp is the same grasp and may suit the wrist better.
        errors = []
        for flip in (np.eye(4), _HALF_TURN_Z):
            try:
                return self._plan_tool_pose(q_start, grasp, grasp.fingertip_pose() @ flip, scene)
            except PlanningError as exc:
                errors.append(exc)
        raise errors[0]

    def _plan_tool_pose(self, q_start, grasp: Grasp, T_tcp: np.ndarray, scene: SceneCollision) -> GraspPlan:
        cfg = self.config
        approach = T_tcp[:3, 2]
        T_pre = T_tcp.copy()
        T_pre[:3, 3] -= cfg.approach_distance * approach
        T_lift = T_tcp.copy()
        T_lift[2, 3] += cfg.lift_height
        q_pre = self._ik(T_pre, q_start, "pre-grasp")
        hits = self.collision.colliding_links(q_pre, scene)
        if hits:
            raise PlanningError("collision", f"the arm collides at the pre-grasp ({', '.join(hits)})")
        local_scene = scene.without_sphere(grasp.position, cfg.target_clearance_radius)
        approach_path = self._cartesian_path(q_pre, T_pre, T_tcp, local_scene, "approach")
        lift_path = self._cartesian_path(approach_path[-1], T_tcp, T_lift, local_scene, "lift")
        free_path = self._connect(q_start, q_pre, scene)
        steps = [
            PlanStep("open", GripperCommand(width=min(cfg.gripper.max_opening, grasp.width), effort=cfg.close_effort)),
            PlanStep("move_to_pregrasp", self._timed(free_path)),
            PlanStep("approach", self._timed(approach_path)),
            PlanStep("close", GripperCommand(width=0.0, effort=cfg.close_effort)),
            PlanStep("lift", self._timed(lift_path)),
        ]
        return GraspPlan(grasp=grasp, steps=steps, q_grasp=approach_path[-1])

    def _cartesian_path(self, q_from: np.ndarray, T_from: np.ndarray, T_to: np.ndarray, scene: SceneCollision, what: str) -> np.ndarray:
        """Joint waypoints moving the tcp on the straight line T_from -> T_to (same orientation), fingers ignored."""
        cfg = self.config
        q_to = self._ik(T_to, q_from, what, num_random_seeds=0)
        straight = self._line_deviation(q_from, q_to, T_from[:3, 3], T_to[:3, 3]) <= cfg.max_cartesian_deviation
        if straight:
            path = np.array([q_from, q_to])
        else:
            qs, q = [q_from], q_from
            for s in np.linspace(0, 1, cfg.cartesian_steps + 1)[1:]:
                T = T_to.copy()
                T[:3, 3] = (1 - s) * T_from[:3, 3] + s * T_to[:3, 3]
                q = self._ik(T, q, what, num_random_seeds=0)
                qs.append(q)
            path = np.array(qs)
        if np.abs(np.diff(path, axis=0)).max(initial=0.0) > 1.0:
            raise PlanningError("unreachable", f"{what}: the straight tool line needs a wrist flip (joint jump > 1 rad)")
        for a, b in itertools.pairwise(path):
            if self.collision.path_in_collision(a, b, scene, resolution=cfg.path_resolution, include_fingers=False):
                raise PlanningError("collision", f"the {what} motion collides with the scene")
        return path

    def _line_deviation(self, q_from, q_to, p_from, p_to, samples: int = 6) -> float:
        d = p_to - p_from
        L2 = max(float(d @ d), 1e-12)
        worst = 0.0
        for s in np.linspace(0, 1, samples):
            p = self.kin.fk(q_from + s * (q_to - q_from))[:3, 3]
            u = np.clip((p - p_from) @ d / L2, 0, 1)
            worst = max(worst, float(np.linalg.norm(p - (p_from + u * d))))
        return worst

    def _connect(self, q_from: np.ndarray, q_to: np.ndarray, scene: SceneCollision) -> np.ndarray:
        """Joint waypoints from q_from to q_to: straight if free, else OMPL RRTConnect (simplified)."""
        res = self.config.path_resolution
        if not self.collision.path_in_collision(q_from, q_to, scene, resolution=res):
            return np.array([q_from, q_to])
        path = self._rrt_connect(q_from, q_to, scene)
        for a, b in itertools.pairwise(path):  # OMPL checks at its own resolution; re-check at ours
            if self.collision.path_in_collision(a, b, scene, resolution=res):
                raise PlanningError("no_path", "RRTConnect's path failed the dense collision re-check")
        return path

    def _rrt_connect(self, q_from: np.ndarray, q_to: np.ndarray, scene: SceneCollision) -> np.ndarray:
        from ompl import base as ob
        from ompl import geometric as og
        from ompl import util as ou

        cfg = self.config
        ou.setLogLevel(ou.LogLevel.LOG_WARN)
        ou.RNG.setSeed(int(cfg.seed) + 1)
        space = ob.RealVectorStateSpace(6)
        bounds = ob.RealVectorBounds(6)
        for i in range(6):
            bounds.setLow(i, float(self.kin.lower[i]))
            bounds.setHigh(i, float(self.kin.upper[i]))
        space.setBounds(bounds)
        ss = og.SimpleSetup(space)
        collision = self.collision

        checks = [0]
        budget = [cfg.ompl_max_checks]
        deadline = time.perf_counter() + cfg.ompl_time_limit

        def valid(state) -> bool:
            checks[0] += 1
            return not collision.in_collision(np.array([state[i] for i in range(6)]), scene)

        def stop() -> bool:  # seeded RNG + a check budget: the same query gives the same path on any machine
            return checks[0] >= budget[0] or time.perf_counter() > deadline

        ss.setStateValidityChecker(valid)
        si = ss.getSpaceInformation()
        si.setStateValidityCheckingResolution(cfg.path_resolution / space.getMaximumExtent())
        start, goal = space.allocState(), space.allocState()
        planner = og.RRTConnect(si)
        try:
            for i in range(6):
                start[i], goal[i] = float(q_from[i]), float(q_to[i])
            ss.setStartAndGoalStates(start, goal)
            planner.setRange(cfg.ompl_range)
            ss.setPlanner(planner)
            solved = ss.solve(ob.PlannerTerminationCondition(stop))
            if not solved or not ss.haveExactSolutionPath():
                raise PlanningError(
                    "no_path", f"RRTConnect found no collision-free path to the pre-grasp within {checks[0]} collision checks"
                )
            budget[0] = checks[0] + cfg.ompl_simplify_checks
            ss.simplifySolution(ob.PlannerTerminationCondition(stop))
            path = ss.getSolutionPath()
            return np.array([[path.getState(k)[i] for i in range(6)] for k in range(path.getStateCount())])
        finally:
            # Drop the OMPL objects now: a traceback holding this frame would otherwise keep them (and the
            # Python validity callback) alive until interpreter exit, where nanobind reports them as leaks.
            ss.clear()
            del ss, si, planner, start, goal, space, bounds, valid

    def _timed(self, waypoints: np.ndarray) -> JointTrajectory:
        cfg = self.config
        return time_parameterize(waypoints, cfg.max_velocity, cfg.max_acceleration, cfg.max_jerk, dt=cfg.sample_dt)
