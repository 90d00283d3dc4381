"""Can the arm execute a grasp? Batched closed-form IK for the pre-grasp, grasp and lift poses, limits and collisions.

A grasp is *executable* by an arm when an IK solution of the grasp and the
nearest solutions of its pre-grasp (fingertips ``approach_distance`` back along
the approach) and lift pose (``lift_height`` up) all lie within the joint
limits, without a joint changing more than ``max_joint_step`` between them (a
wrist flip cannot be a straight approach), and without self-collision. The
partners are matched by continuity, as the planner follows a straight tool
line, not by the closed-form branch label (see
:data:`dkt_grasping.kinematics.BRANCHES`), which flips when joint 5 passes
through zero on the way; with a scene,
the arm must also be free of it at the pre-grasp. The half-turn twin of a
grasp (fingers swapped) is the same grasp and is tried too.

:class:`ReachabilityChecker` answers this for many grasps at once, re-ranks
them by quality and reach margin, and says how many it dropped and why.
The CPU planner starts from the same goals (:meth:`ReachabilityChecker.goals`),
so a grasp the checker keeps is one the planner can plan in free space.

All poses and points are in the arm's base frame (metres).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from dkt_grasping.collision import ArmCollisionConfig, ArmCollisionModel, SceneCollision
from dkt_grasping.grasp import Grasp
from dkt_grasping.kinematics import PiperKinematics
from dkt_grasping.piper_model import DEFAULT_DH_IS_OFFSET, DEFAULT_TCP_OFFSET, DH_IS_OFFSET_HELP
from dkt_stack.config import param

#: Why a grasp was dropped, in the order the checks run (the first failing one is reported).
DROP_REASONS = ("out_of_reach", "joint_limits", "wrist_flip", "self_collision", "scene_collision", "approach_collision")
_HALF_TURN_Z = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class ArmModelConfig:
    """The arm a grasp is checked for: the PiPER's zero convention and tool."""

    dh_is_offset: int = param(DEFAULT_DH_IS_OFFSET, help=DH_IS_OFFSET_HELP)
    tcp_offset: float = param(DEFAULT_TCP_OFFSET, help="flange to fingertip centre along the flange z axis (m)")

    def __post_init__(self):
        if self.dh_is_offset not in (0, 1):
            raise ValueError(f"dh_is_offset must be 0 or 1, got {self.dh_is_offset}")
        if not 0.0 <= self.tcp_offset < 0.5:
            raise ValueError(f"tcp_offset must be in [0, 0.5) m, got {self.tcp_offset}")

    def kinematics(self) -> PiperKinematics:
        return PiperKinematics(self.tcp_offset, dh_is_offset=self.dh_is_offset)


@dataclass
class GraspMotionConfig:
    """The straight tool motions around a grasp; the planner and the reachability check must agree on them."""

    approach_distance: float = param(0.08, help="pre-grasp stand-off: the fingertips start this far back along the approach axis (m)")
    lift_height: float = param(0.08, help="lift after closing, along base +z (m)")

    def __post_init__(self):
        if self.approach_distance < 0 or self.lift_height < 0:
            raise ValueError("approach_distance and lift_height must be >= 0 m")


@dataclass
class ReachabilityConfig:
    """Settings of the executability check and of the ranking that uses it."""

    arm: ArmModelConfig = param(default_factory=ArmModelConfig, help="the arm's kinematic model")
    motion: GraspMotionConfig = param(default_factory=GraspMotionConfig, help="pre-grasp and lift (same as the planner's)")
    collision: ArmCollisionConfig = param(default_factory=ArmCollisionConfig, help="capsule model for the self- and scene-collision checks")
    max_joint_step: float = param(1.0, help="largest joint change between neighbouring poses when the approach or lift is followed pose by pose (rad)")
    line_steps: int = param(8, help="IK poses along the approach and the lift when they are followed pose by pose (the planner's cartesian_steps)")
    max_line_deviation: float = param(0.005, help="a joint interpolation is a straight tool motion when the tcp stays this close to the line (m)")
    max_line_rotation_deg: float = param(10.0, help="... and turns less than this from the grasp orientation on the way (deg)")
    check_scene: bool = param(
        True, help="also require the arm to be free of the scene cloud at the pre-grasp, and of the scene beyond the object on the approach and lift"
    )
    target_clearance_radius: float = param(
        0.06, help="scene points this close to the grasp are the object, ignored on the approach and lift (m; the planner's)"
    )
    margin_weight: float = param(0.3, help="ranking: score = (1 - w) * grasp quality + w * reach score")
    margin_reference: float = param(0.25, help="joint-limit margin (fraction of half the joint range) that earns the full reach score")
    manipulability_reference: float = param(0.02, help="Yoshikawa manipulability at the grasp that earns the full reach score")

    def __post_init__(self):
        if not 0.0 <= self.margin_weight <= 1.0:
            raise ValueError(f"margin_weight must be in [0, 1], got {self.margin_weight}")
        if self.line_steps < 1:
            raise ValueError(f"line_steps must be >= 1, got {self.line_steps}")
        if self.max_joint_step <= 0 or self.margin_reference <= 0 or self.manipulability_reference <= 0:
            raise ValueError("max_joint_step, margin_reference and manipulability_reference must be > 0")


@dataclass
class GraspGoal:
    """One way to execute a grasp: the tcp pose used (the grasp or its half-turn twin) and the joint goals (rad)."""

    T_tcp: np.ndarray
    q_pre: np.ndarray
    q_grasp: np.ndarray
    q_lift: np.ndarray
    flipped: bool
    branch: int
    margin: float


@dataclass
class GraspReach:
    """The verdict on one grasp: its goals (best margin first) or why it has none."""

    grasp: Grasp
    goals: list[GraspGoal] = field(default_factory=list)
    reason: str = ""  #: one of DROP_REASONS when there is no goal
    manipulability: float = 0.0
    reach_score: float = 0.0  #: in [0, 1]: joint-limit margin and manipulability against their references

    @property
    def reachable(self) -> bool:
        return bool(self.goals)


@dataclass
class RankedGrasps:
    """Executable grasps, re-ranked (``grasp.score`` = combined score), and what was dropped."""

    grasps: list[Grasp]
    reaches: list[GraspReach]
    dropped: Counter

    def summary(self) -> str:
        """``kept 12 of 40 (dropped: joint_limits 20, wrist_flip 8)``."""
        total = len(self.grasps) + sum(self.dropped.values())
        detail = ", ".join(f"{k} {v}" for k, v in self.dropped.most_common())
        return f"kept {len(self.grasps)} of {total}" + (f" (dropped: {detail})" if detail else "")


class ReachabilityChecker:
    """Executability of grasps for one PiPER arm (see the module docstring)."""

    def __init__(self, config: ReachabilityConfig | None = None, kinematics: PiperKinematics | None = None):
        self.config = config or ReachabilityConfig()
        self.kin = kinematics or self.config.arm.kinematics()
        self.collision = ArmCollisionModel(self.kin, self.config.collision)

    def tool_poses(self, grasp: Grasp) -> np.ndarray:
        """(2, 3, 4, 4): for the grasp and its half-turn twin, the tcp at the pre-grasp, the grasp and the lift."""
        return self.line_poses(grasp, 1)

    def line_poses(self, grasp: Grasp, steps: int) -> np.ndarray:
        """(2, 2 * steps + 1, 4, 4): for the grasp and its half-turn twin, the tcp along the straight approach
        (pre-grasp -> grasp in ``steps`` intervals) and on along the lift (grasp -> lift); index ``steps`` is the grasp."""
        motion = self.config.motion
        T = grasp.fingertip_pose()
        s = np.linspace(0.0, 1.0, steps + 1)
        offsets = np.concatenate([np.outer(s - 1.0, motion.approach_distance * T[:3, 2]), np.outer(s[1:], [0.0, 0.0, motion.lift_height])])
        out = np.empty((2, 2 * steps + 1, 4, 4))
        for f, flip in enumerate((np.eye(4), _HALF_TURN_Z)):
            out[f] = T @ flip
            out[f, :, :3, 3] += offsets
        return out

    def joint_line_ok(self, q_from: np.ndarray, q_to: np.ndarray, T_from: np.ndarray, T_to: np.ndarray) -> np.ndarray:
        """Does moving the joints linearly from q_from to q_to (..., 6) rad keep the tcp on the straight line T_from -> T_to?

        T_from, T_to (..., 4, 4) share one orientation (base frame, m). True where the tcp stays within
        ``max_line_deviation`` of the segment and turns less than ``max_line_rotation_deg`` from that orientation
        (sampled at a quarter, half and three quarters): then the plain joint interpolation is the straight motion.
        """
        cfg = self.config
        t = np.array([0.25, 0.5, 0.75])
        q = q_from[..., None, :] + t[:, None] * (q_to - q_from)[..., None, :]
        F = self.kin.fk_batch(q)  # (..., 3, 4, 4)
        a, b = T_from[..., None, :3, 3], T_to[..., None, :3, 3]
        d = b - a
        u = np.clip(np.einsum("...i,...i->...", F[..., :3, 3] - a, d) / np.maximum(np.einsum("...i,...i->...", d, d), 1e-12), 0.0, 1.0)
        off = np.linalg.norm(F[..., :3, 3] - (a + u[..., None] * d), axis=-1)
        cos_turn = (np.einsum("...ij,...ij->...", F[..., :3, :3], T_to[..., None, :3, :3]) - 1.0) / 2.0
        return np.all((off <= cfg.max_line_deviation) & (cos_turn >= np.cos(np.deg2rad(cfg.max_line_rotation_deg))), axis=-1)

    def check(self, grasps: list[Grasp], scene: SceneCollision | np.ndarray | None = None, max_goals: int | None = None) -> list[GraspReach]:
        """One :class:`GraspReach` per grasp (same order). scene: base-frame points (m) or a prepared SceneCollision;
        max_goals: stop collecting a grasp's goals after this many (best joint-limit margin first; None: all)."""
        if not grasps:
            return []
        cfg = self.config
        if scene is not None and not isinstance(scene, SceneCollision):
            scene = SceneCollision(scene, cfg.collision.voxel_size)
        steps = cfg.line_steps
        key = [0, steps, 2 * steps]  # pre-grasp, grasp, lift
        lines = np.stack([self.line_poses(g, steps) for g in grasps])  # (N, 2, 2 * steps + 1, 4, 4)
        poses = lines[:, :, key]  # (N, 2, 3, 4, 4)
        q, valid = self.kin.ik_solutions(poses)  # (N, 2, 3, 8, 6), (N, 2, 3, 8)
        _, exists = self.kin.ik_branches(poses[:, :, 1].reshape(-1, 4, 4))
        grasp_exists = exists.reshape(len(grasps), 2, 8).any(axis=(1, 2))
        ends_valid = valid.any(axis=-1).all(axis=-1)  # (N, 2): every key pose has a solution within the limits
        trees: list[cKDTree] = []

        def scene_tree() -> cKDTree:  # built once per call, when a grasp gets that far
            if not trees:
                trees.append(cKDTree(scene.points))
            return trees[0]

        q, ok, step = self._goal_chains(lines, q, valid)  # chains (N, 2, 8): grasp solution k and its pre-grasp and lift partners
        smooth = ok & (step <= cfg.max_joint_step)
        margins = self.kin.limit_margin(q).min(axis=2)  # (N, 2, 8)
        out = []
        for i, grasp in enumerate(grasps):
            reach = GraspReach(grasp)
            if not grasp_exists[i]:
                reach.reason = "out_of_reach"
            elif not ends_valid[i].any():
                reach.reason = "joint_limits"  # for neither finger order do all three poses have a solution in the limits
            elif not smooth[i].any():
                reach.reason = "wrist_flip" if ok[i].any() else "joint_limits"  # a jump on the way, or the limits on the way
            else:
                self._collect_goals(reach, poses[i], q[i], smooth[i], margins[i], scene, scene_tree, max_goals)
            out.append(reach)
        return out

    def _goal_chains(self, lines: np.ndarray, q: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each grasp solution k, the pre-grasp and lift solutions the arm reaches it from and goes on to.

        lines (N, 2, S, 4, 4): :meth:`line_poses`; q (N, 2, 3, 8, 6), valid (N, 2, 3, 8): IK of its key poses.
        A partner is the valid solution nearest the grasp solution (whatever its closed-form branch label: that
        label flips when joint 5 passes through zero, the arm does not). If the plain joint interpolation
        between them leaves the straight tool line (near the wrist singularity joints 4 and 6 swing), the line
        is followed instead, pose by pose, each taking the solution nearest the previous one, as the planner
        does. Returns q (N, 2, 3, 8, 6) re-ordered so that index k at every pose belongs to grasp solution k,
        ok (N, 2, 8): both partners found within the limits, and step (N, 2, 8): the largest joint change (rad)
        between neighbouring poses (0 on a straight joint interpolation).
        """
        steps = self.config.line_steps
        q_grasp, ok = q[:, :, 1], valid[:, :, 1].copy()
        out, step = q.copy(), np.zeros(ok.shape)
        for pose, path in ((0, slice(steps, None, -1)), (2, slice(steps, None))):  # grasp -> pre-grasp, grasp -> lift
            dist = np.abs(q[:, :, pose, None] - q_grasp[:, :, :, None]).max(axis=-1)  # (N, 2, 8 grasp, 8 partner)
            dist = np.where(valid[:, :, pose, None, :], dist, np.inf)
            best = np.argmin(dist, axis=-1)
            partner = np.take_along_axis(q[:, :, pose], best[..., None], axis=-2)  # (N, 2, 8, 6)
            found = ok & np.isfinite(np.take_along_axis(dist, best[..., None], axis=-1)[..., 0])
            straight = np.zeros(ok.shape, dtype=bool)
            n, f, k = np.nonzero(found)
            T_grasp, T_end = lines[n, f, steps], lines[n, f, path][:, -1]
            straight[n, f, k] = self.joint_line_ok(q_grasp[n, f, k], partner[n, f, k], T_grasp, T_end)
            n, f, k = np.nonzero(found & ~straight)
            if len(n):
                end, complete, max_step = self._follow(lines[n, f, path], q_grasp[n, f, k])
                partner[n, f, k] = end
                found[n, f, k] = complete
                step[n, f, k] = np.maximum(step[n, f, k], max_step)
            out[:, :, pose] = partner
            ok &= found
        return out, ok, step

    def _follow(self, poses: np.ndarray, q_start: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Follow M straight tool lines poses (M, S, 4, 4) from joint solutions q_start (M, 6) at their first pose.

        Returns the solution at the last pose (M, 6), whether every pose had one within the limits (M,) and the
        largest joint change between neighbouring poses (M,) rad.
        """
        q, valid = self.kin.ik_solutions(poses[:, 1:])  # (M, S - 1, 8, 6)
        current, complete, max_step = q_start.copy(), np.ones(len(q_start), dtype=bool), np.zeros(len(q_start))
        for s in range(q.shape[1]):
            dist = np.where(valid[:, s], np.abs(q[:, s] - current[:, None]).max(axis=-1), np.inf)  # (M, 8)
            best = np.argmin(dist, axis=-1)
            d = dist[np.arange(len(best)), best]
            complete &= np.isfinite(d)
            max_step = np.maximum(max_step, np.where(np.isfinite(d), d, 0.0))
            current = np.where(np.isfinite(d)[:, None], q[np.arange(len(best)), s, best], current)
        return current, complete, max_step

    def _collect_goals(self, reach: GraspReach, poses, q, smooth, margins, scene, scene_tree, max_goals=None) -> None:
        """Goals of one grasp that pass the collision checks, best margin first; sets the reason when none does."""
        reasons = set()
        check_scene = self.config.check_scene and scene is not None
        for f, k in sorted(zip(*np.nonzero(smooth)), key=lambda fk: -margins[fk]):
            if max_goals is not None and len(reach.goals) >= max_goals:
                break
            q_pre, q_grasp, q_lift = q[f, 0, k], q[f, 1, k], q[f, 2, k]
            if any(self.collision.colliding_links(qq, None) for qq in (q_pre, q_grasp, q_lift)):
                reasons.add("self_collision")
                continue
            if check_scene and self.collision.in_collision(q_pre, scene):
                reasons.add("scene_collision")
                continue
            if check_scene and not self._motion_clear(q_pre, q_grasp, q_lift, reach.grasp.position, scene, scene_tree()):
                reasons.add("approach_collision")
                continue
            reach.goals.append(GraspGoal(poses[f, 1].copy(), q_pre.copy(), q_grasp.copy(), q_lift.copy(), bool(f), int(k), float(margins[f, k])))
        if not reach.goals:
            reach.reason = next(r for r in ("self_collision", "scene_collision", "approach_collision") if r in reasons)
            return
        cfg = self.config
        reach.manipulability = self.kin.manipulability(reach.goals[0].q_grasp)
        reach.reach_score = float(
            min(np.clip(reach.goals[0].margin / cfg.margin_reference, 0, 1), np.clip(reach.manipulability / cfg.manipulability_reference, 0, 1))
        )

    def _motion_clear(self, q_pre, q_grasp, q_lift, centre, scene: SceneCollision, tree: cKDTree) -> bool:
        """Is the arm, fingers left out, clear of the scene beyond the object (points farther than
        ``target_clearance_radius`` from the grasp centre) halfway and at the end of the approach and of the lift?

        The planner checks these motions densely against the same scene; this is the cheap look that keeps
        grasps it would refuse out of the ranking (points within a capsule's radius plus the scene margin and
        half a voxel diagonal, the octree's resolution, count as a hit)."""
        cfg = self.config
        pad = cfg.collision.scene_margin + 0.87 * scene.voxel_size
        segments = [
            (a, b, r)
            for q in (0.5 * (q_pre + q_grasp), q_grasp, 0.5 * (q_grasp + q_lift), q_lift)
            for name, (a, b, r) in self.collision.capsules(q, include_fingers=False).items()
            if name != "base"
        ]
        samples, radii, owner = [], [], []
        for i, (a, b, r) in enumerate(segments):
            n = max(int(np.ceil(np.linalg.norm(b - a) / r)), 1)
            samples.append(a + np.linspace(0.0, 1.0, n + 1)[:, None] * (b - a))
            radii.append(np.full(n + 1, r + pad + 0.5 * np.linalg.norm(b - a) / n))
            owner.append(np.full(n + 1, i))
        owner = np.concatenate(owner)
        hits = tree.query_ball_point(np.concatenate(samples), np.concatenate(radii))
        for i in np.unique(owner[[bool(h) for h in hits]]):
            near = np.unique(np.concatenate([np.asarray(h, dtype=int) for h, o in zip(hits, owner) if o == i]))
            P = scene.points[near]
            P = P[np.linalg.norm(P - centre, axis=1) > cfg.target_clearance_radius]
            a, b, r = segments[i]
            if len(P) and _segment_distance(P, a, b).min() < r + pad:
                return False
        return True

    def goals(self, grasp: Grasp, scene: SceneCollision | None = None) -> list[GraspGoal]:
        """All collision-checked goals of one grasp (best margin first); empty when it cannot be executed."""
        return self.check([grasp], scene)[0].goals

    def rank(self, grasps: list[Grasp], scene: SceneCollision | np.ndarray | None = None) -> RankedGrasps:
        """The executable grasps, best combined score first, with ``score`` replaced by the combined score.

        combined = (1 - margin_weight) * quality + margin_weight * reach_score; the
        detector's score is the quality. Dropped grasps are counted by reason.
        """
        reaches = self.check(grasps, scene, max_goals=1)  # the ranking needs the best goal only
        w = self.config.margin_weight
        kept, kept_reaches, dropped = [], [], Counter()
        for r in reaches:
            if not r.reachable:
                dropped[r.reason] += 1
                continue
            g = r.grasp
            kept.append(Grasp(pose=g.pose, width=g.width, score=(1 - w) * g.score + w * r.reach_score, depth=g.depth, object_id=g.object_id))
            kept_reaches.append(r)
        order = sorted(range(len(kept)), key=lambda i: -kept[i].score)
        return RankedGrasps([kept[i] for i in order], [kept_reaches[i] for i in order], dropped)


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance (m) from points (N, 3) to the segment a-b."""
    d = b - a
    t = np.clip((points - a) @ d / max(float(d @ d), 1e-12), 0.0, 1.0)
    return np.linalg.norm(points - (a + t[:, None] * d), axis=1)
