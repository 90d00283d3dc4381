"""CPU grasp planner: closed-form IK, coal collision checks, OMPL RRTConnect to a goal set, ruckig timing.

The grasps (best first; the top ``max_grasp_candidates``) form a goal set:

1. for each grasp, the goals of :class:`~dkt_grasping.reachability.ReachabilityChecker`
   (IK branches reaching pre-grasp, grasp and lift within the limits, no
   self-collision, arm free at the pre-grasp) are tried nearest to the start
   first: the approach (fingertips from ``approach_distance`` back to the
   grasp) and the lift must be straight tool motions (a joint interpolation that
   keeps the tool on the line, or IK waypoints along it), free of
   the scene without the grasped object; the first goal that passes is the
   grasp's;
2. the start connects to the best grasp whose pre-grasp a densely checked
   straight joint path reaches;
3. otherwise OMPL's RRTConnect plans once to all pre-grasps at once (an
   ``ob.GoalStates`` goal set) and the grasp whose pre-grasp it reached is
   executed.

The plan says which grasp it chose (``GraspPlan.grasp_index``). Every piece is
timed with ruckig within the joint velocity, acceleration and jerk limits.
Goals outside the workspace or the joint limits, unreachable or colliding
ones raise :class:`PlanningError` naming the best grasp's reason.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import numpy as np

from dkt_grasping.collision import ArmCollisionConfig, SceneCollision
from dkt_grasping.grasp import Grasp
from dkt_grasping.gripper import GripperConfig
from dkt_grasping.kinematics import IKError
from dkt_grasping.planning.base import GraspPlan, GripperCommand, JointTrajectory, PlanningError, PlanningFailure, PlanStep
from dkt_grasping.planning.time_parameterization import time_parameterize
from dkt_grasping.reachability import ArmModelConfig, GraspGoal, GraspMotionConfig, ReachabilityChecker, ReachabilityConfig
from dkt_grasping.workspace import WorkspaceLimits
from dkt_stack.config import param

#: PlanningError kind for each reachability drop reason.
_REACH_FAILURE = {
    "out_of_reach": "unreachable",
    "joint_limits": "joint_limits",
    "wrist_flip": "unreachable",
    "self_collision": "collision",
    "scene_collision": "collision",
    "approach_collision": "collision",
}


@dataclass
class CpuPlannerConfig:
    """CPU planner settings (metres, radians, seconds)."""

    workspace: WorkspaceLimits = param(default_factory=WorkspaceLimits, help="grasp centres must lie in this base-frame box")
    gripper: GripperConfig = param(default_factory=GripperConfig, help="PiPER gripper geometry")
    collision: ArmCollisionConfig = param(default_factory=ArmCollisionConfig, help="capsule model and margins")
    arm: ArmModelConfig = param(default_factory=ArmModelConfig, help="the arm's kinematic model (zero convention, tool)")
    motion: GraspMotionConfig = param(default_factory=GraspMotionConfig, help="pre-grasp stand-off and lift")
    max_joint_step: float = param(1.0, help="largest joint change between neighbouring IK waypoints of the approach and lift lines (rad)")
    max_velocity: list[float] = param(default_factory=lambda: [1.0] * 6, help="joint speed limits (rad/s)")
    max_acceleration: list[float] = param(default_factory=lambda: [2.0] * 6, help="joint acceleration limits (rad/s^2)")
    max_jerk: list[float] = param(default_factory=lambda: [20.0] * 6, help="joint jerk limits (rad/s^3)")
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
    max_grasp_candidates: int = param(10, help="grasps in the goal set: the best this many are tried")
    sample_dt: float = param(0.01, help="trajectory sampling period (s)")
    close_effort: float = param(1.0, help="gripper effort when closing (N*m)")
    seed: int = param(0, help="random seed of OMPL")

    def __post_init__(self):
        for name in ("max_velocity", "max_acceleration", "max_jerk"):
            v = getattr(self, name)
            if len(v) != 6 or min(v) <= 0:
                raise ValueError(f"{name} must be 6 positive numbers, got {v}")


class CpuGraspPlanner:
    """Grasp planning on the CPU; see the module docstring."""

    def __init__(self, config: CpuPlannerConfig | None = None):
        self.config = c = config or CpuPlannerConfig()
        self.reachability = ReachabilityChecker(
            ReachabilityConfig(
                arm=c.arm,
                motion=c.motion,
                collision=c.collision,
                max_joint_step=c.max_joint_step,
                line_steps=c.cartesian_steps,
                max_line_deviation=c.max_cartesian_deviation,
                check_scene=True,
                target_clearance_radius=c.target_clearance_radius,
            )
        )
        self.kin = self.reachability.kin
        self.collision = self.reachability.collision

    # -- public API ------------------------------------------------------------------------
    def plan_grasp(self, q_start: np.ndarray, grasps: list[Grasp], scene_points: np.ndarray | None) -> GraspPlan:
        """Plan open -> approach -> grasp -> close -> lift for the best grasp of the goal set (grasps sorted best first).

        q_start: (6,) rad; scene_points: Nx3 base frame (m), or None for free space.
        """
        t0 = time.perf_counter()
        if not grasps:
            raise PlanningError("unreachable", "no grasp candidates were given")
        scene = SceneCollision(scene_points, self.config.collision.voxel_size)
        q_start = self._check_start(q_start, scene)
        goals: list[tuple[int, GraspGoal, np.ndarray, np.ndarray]] = []
        failures: list[PlanningError] = []
        for index, grasp in enumerate(grasps[: self.config.max_grasp_candidates]):
            try:
                goals.append((index, *self._grasp_goal(q_start, grasp, scene)))
            except PlanningError as exc:
                failures.append(exc)
        if not goals:
            first = failures[0]
            kinds = sorted({f.kind for f in failures})
            raise PlanningError(first.kind, f"none of {len(failures)} grasps could be planned ({', '.join(kinds)}); best grasp: {first.reason}")
        res = self.config.path_resolution
        chosen = next((g for g in goals if not self.collision.path_in_collision(q_start, g[1].q_pre, scene, resolution=res)), None)
        if chosen is not None:
            free_path = np.array([q_start, chosen[1].q_pre])
        else:
            free_path, k = self._rrt_connect(q_start, [g[1].q_pre for g in goals], scene)
            chosen = goals[k]
        index, _, approach_path, lift_path = chosen
        grasp = grasps[index]
        cfg = self.config
        steps = [
            PlanStep("open", GripperCommand(width=min(cfg.gripper.max_opening, grasp.width), effort=cfg.close_effort)),
            PlanStep("move_to_pregrasp", self._timed(free_path)),
            PlanStep("approach", self._timed(approach_path)),
            PlanStep("close", GripperCommand(width=0.0, effort=cfg.close_effort)),
            PlanStep("lift", self._timed(lift_path)),
        ]
        return GraspPlan(grasp=grasp, steps=steps, q_grasp=approach_path[-1], planning_time=time.perf_counter() - t0, grasp_index=index)

    def plan_to_pose(self, q_start: np.ndarray, T_target: np.ndarray, scene_points: np.ndarray | None) -> JointTrajectory:
        """Collision-free timed motion to a tcp pose (4x4, base frame, m): the collision-free IK solution nearest the start."""
        scene = SceneCollision(scene_points, self.config.collision.voxel_size)
        q_start = self._check_start(q_start, scene)
        self._check_workspace(np.asarray(T_target)[:3, 3], "target")
        solutions = self.kin.ik_all(T_target)
        if not len(solutions):
            raise PlanningError("unreachable", f"target: {self.kin.explain_unreachable(T_target)}")
        solutions = solutions[np.argsort(np.abs(solutions - q_start).sum(axis=1))]
        free = [q for q in solutions if not self.collision.in_collision(q, scene)]
        if not free:
            q = solutions[0]
            raise PlanningError("collision", f"the arm collides at the target ({', '.join(self.collision.colliding_links(q, scene))})")
        return self._timed(self._connect(q_start, free[0], scene))

    def plan_to_joints(self, q_start: np.ndarray, q_goal: np.ndarray, scene_points: np.ndarray | None) -> JointTrajectory:
        """Collision-free timed motion to a joint configuration (rad)."""
        scene = SceneCollision(scene_points, self.config.collision.voxel_size)
        q_start = self._check_start(q_start, scene)
        q_goal = self._check_configuration(q_goal, "goal", scene, collision_kind="collision")
        return self._timed(self._connect(q_start, q_goal, scene))

    # -- pieces ----------------------------------------------------------------------------
    def _check_start(self, q_start, scene) -> np.ndarray:
        return self._check_configuration(q_start, "start", scene, collision_kind="start_invalid")

    def _check_configuration(self, q, what: str, scene, *, collision_kind: PlanningFailure) -> np.ndarray:
        """A finite joint configuration within the limits and free of collision, or a PlanningError saying which it is not."""
        try:
            q = self.kin.check_q(q, f"q_{what}")
        except ValueError as exc:
            raise PlanningError("start_invalid", str(exc)) from exc
        if not self.kin.within_limits(q, tol=1e-6):
            raise PlanningError("joint_limits", f"{what} configuration outside joint limits: {'; '.join(self.kin.limit_violations(q))}")
        hits = self.collision.colliding_links(q, scene)
        if hits:
            raise PlanningError(collision_kind, f"{what} configuration is in collision ({', '.join(hits)})")
        return np.clip(q, self.kin.lower, self.kin.upper)

    def _check_workspace(self, p: np.ndarray, what: str) -> None:
        ws = self.config.workspace
        if not ws.contains(p):
            raise PlanningError(
                "workspace",
                f"{what} position {np.round(p, 3).tolist()} m is outside the workspace "
                f"x[{ws.x_min}, {ws.x_max}] y[{ws.y_min}, {ws.y_max}] z[{ws.z_min}, {ws.z_max}] (base frame)",
            )

    def _ik(self, T: np.ndarray, q_seed: np.ndarray, what: str) -> np.ndarray:
        try:
            return self.kin.ik(T, q_seed)
        except IKError as exc:
            raise PlanningError("unreachable", f"{what}: {exc.reason}") from exc

    def _grasp_goal(self, q_start: np.ndarray, grasp: Grasp, scene: SceneCollision) -> tuple[GraspGoal, np.ndarray, np.ndarray]:
        """The reachability goal of ``grasp`` nearest the start whose approach and lift are free straight tool lines.

        Returns (goal, approach joint path, lift joint path).
        """
        cfg = self.config
        self._check_workspace(grasp.position, "grasp")
        if grasp.width > cfg.gripper.max_opening + 1e-9:
            raise PlanningError("unreachable", f"grasp width {grasp.width:.3f} m exceeds the gripper opening {cfg.gripper.max_opening} m")
        reach = self.reachability.check([grasp], scene)[0]
        if not reach.reachable:
            T = grasp.fingertip_pose()
            detail = self.kin.explain_unreachable(T) if reach.reason in ("out_of_reach", "joint_limits") else reach.reason.replace("_", " ")
            raise PlanningError(_REACH_FAILURE[reach.reason], f"grasp at {np.round(grasp.position, 3).tolist()} m: {detail}")
        local_scene = scene.without_sphere(grasp.position, cfg.target_clearance_radius)
        errors = []
        for goal in sorted(reach.goals, key=lambda g: float(np.abs(g.q_pre - q_start).sum())):
            T_pre, T_lift = goal.T_tcp.copy(), goal.T_tcp.copy()
            T_pre[:3, 3] -= cfg.motion.approach_distance * goal.T_tcp[:3, 2]
            T_lift[2, 3] += cfg.motion.lift_height
            try:
                approach_path = self._cartesian_path(goal.q_pre, T_pre, goal.T_tcp, local_scene, "approach", goal.q_grasp)
                lift_q = goal.q_lift if np.array_equal(approach_path[-1], goal.q_grasp) else None
                lift_path = self._cartesian_path(approach_path[-1], goal.T_tcp, T_lift, local_scene, "lift", lift_q)
            except PlanningError as exc:
                errors.append(exc)
                continue
            return goal, approach_path, lift_path
        raise errors[0]

    def _cartesian_path(
        self, q_from: np.ndarray, T_from: np.ndarray, T_to: np.ndarray, scene: SceneCollision, what: str, q_to: np.ndarray | None = None
    ) -> np.ndarray:
        """Joint waypoints moving the tcp on the straight line T_from -> T_to (same orientation), fingers ignored.

        ``q_to`` (the reachability goal's solution at T_to; default: the IK solution nearest q_from): when the plain
        joint interpolation to it keeps the tool on the line (:meth:`ReachabilityChecker.joint_line_ok`), that is
        the path; otherwise each waypoint takes the IK solution nearest the previous one.
        """
        cfg = self.config
        if q_to is None:
            q_to = self._ik(T_to, q_from, what)
        if self.reachability.joint_line_ok(q_from, q_to, T_from, T_to):
            path = np.array([q_from, q_to])
        else:
            qs, q = [q_from], q_from
            for s in np.linspace(0, 1, cfg.cartesian_steps + 1)[1:]:
                T = T_to.copy()
                T[:3, 3] = (1 - s) * T_from[:3, 3] + s * T_to[:3, 3]
                q = self._ik(T, q, what)
                qs.append(q)
            path = np.array(qs)
            if np.abs(np.diff(path, axis=0)).max(initial=0.0) > cfg.max_joint_step:
                raise PlanningError("unreachable", f"{what}: the straight tool line needs a wrist flip (joint jump > {cfg.max_joint_step} rad)")
        for a, b in itertools.pairwise(path):
            if self.collision.path_in_collision(a, b, scene, resolution=cfg.path_resolution, include_fingers=False):
                raise PlanningError("collision", f"the {what} motion collides with the scene")
        return path

    def _connect(self, q_from: np.ndarray, q_to: np.ndarray, scene: SceneCollision) -> np.ndarray:
        """Joint waypoints from q_from to q_to: straight if free, else OMPL RRTConnect (simplified)."""
        if not self.collision.path_in_collision(q_from, q_to, scene, resolution=self.config.path_resolution):
            return np.array([q_from, q_to])
        return self._rrt_connect(q_from, [q_to], scene)[0]

    def _rrt_connect(self, q_from: np.ndarray, goals: list[np.ndarray], scene: SceneCollision) -> tuple[np.ndarray, int]:
        """RRTConnect from q_from to whichever of ``goals`` (rad) it reaches first; returns (waypoints, goal index).

        The path is simplified and re-checked densely at ``path_resolution``.
        """
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
        start = space.allocState()
        goal_set = ob.GoalStates(si)
        goal_states = []
        planner = og.RRTConnect(si)
        try:
            for i in range(6):
                start[i] = float(q_from[i])
            for q in goals:
                state = space.allocState()
                for i in range(6):
                    state[i] = float(q[i])
                goal_set.addState(state)
                goal_states.append(state)
            ss.setStartState(start)
            ss.setGoal(goal_set)
            planner.setRange(cfg.ompl_range)
            ss.setPlanner(planner)
            solved = ss.solve(ob.PlannerTerminationCondition(stop))
            if not solved or not ss.haveExactSolutionPath():
                raise PlanningError(
                    "no_path",
                    f"RRTConnect found no collision-free path to {'any of ' + str(len(goals)) + ' pre-grasps' if len(goals) > 1 else 'the goal'} "
                    f"within {checks[0]} collision checks",
                )
            budget[0] = checks[0] + cfg.ompl_simplify_checks
            ss.simplifySolution(ob.PlannerTerminationCondition(stop))
            path = ss.getSolutionPath()
            waypoints = np.array([[path.getState(k)[i] for i in range(6)] for k in range(path.getStateCount())])
        finally:
            # Drop the OMPL objects now: a traceback holding this frame would otherwise keep them (and the
            # Python validity callback) alive until interpreter exit, where nanobind reports them as leaks.
            ss.clear()
            del ss, si, planner, start, goal_set, goal_states, space, bounds, valid
        # The simplifier may end on a different member of the goal set: the goal is whichever the path ends at.
        index = int(np.argmin([np.abs(waypoints[-1] - q).max() for q in goals]))
        waypoints[-1] = goals[index]
        res = cfg.path_resolution
        for a, b in itertools.pairwise(waypoints):  # OMPL checks at its own resolution; re-check at ours
            if self.collision.path_in_collision(a, b, scene, resolution=res):
                raise PlanningError("no_path", "RRTConnect's path failed the dense collision re-check")
        return waypoints, index

    def _timed(self, waypoints: np.ndarray) -> JointTrajectory:
        cfg = self.config
        return time_parameterize(waypoints, cfg.max_velocity, cfg.max_acceleration, cfg.max_jerk, dt=cfg.sample_dt)
