"""Can the arm execute a grasp? Batched closed-form IK for the pre-grasp, grasp and lift poses, limits and collisions.

A grasp is *executable* by an arm when one IK branch (shoulder, elbow and
wrist configuration, see :data:`dkt_grasping.kinematics.BRANCHES`) reaches its
pre-grasp (fingertips ``approach_distance`` back along the approach), the grasp
itself and the lift pose (``lift_height`` up), all within the joint limits,
without a joint jumping more than ``max_joint_step`` between them (a wrist
flip cannot be a straight approach), and without self-collision; with a scene,
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

from dkt_grasping.collision import ArmCollisionConfig, ArmCollisionModel, SceneCollision
from dkt_grasping.grasp import Grasp
from dkt_grasping.kinematics import PiperKinematics
from dkt_grasping.piper_model import DEFAULT_DH_IS_OFFSET, DEFAULT_TCP_OFFSET, DH_IS_OFFSET_HELP
from dkt_stack.config import param

#: Why a grasp was dropped, in the order the checks run (the first failing one is reported).
DROP_REASONS = ("out_of_reach", "joint_limits", "wrist_flip", "self_collision", "scene_collision")
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
    max_joint_step: float = param(1.0, help="largest joint change between pre-grasp, grasp and lift in one IK branch (rad)")
    check_scene: bool = param(True, help="also require the arm to be free of the scene cloud at the pre-grasp")
    margin_weight: float = param(0.3, help="ranking: score = (1 - w) * grasp quality + w * reach score")
    margin_reference: float = param(0.25, help="joint-limit margin (fraction of half the joint range) that earns the full reach score")
    manipulability_reference: float = param(0.02, help="Yoshikawa manipulability at the grasp that earns the full reach score")

    def __post_init__(self):
        if not 0.0 <= self.margin_weight <= 1.0:
            raise ValueError(f"margin_weight must be in [0, 1], got {self.margin_weight}")
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
        motion = self.config.motion
        out = np.empty((2, 3, 4, 4))
        for f, flip in enumerate((np.eye(4), _HALF_TURN_Z)):
            T = grasp.fingertip_pose() @ flip
            pre, lift = T.copy(), T.copy()
            pre[:3, 3] -= motion.approach_distance * T[:3, 2]
            lift[2, 3] += motion.lift_height
            out[f] = (pre, T, lift)
        return out

    def check(self, grasps: list[Grasp], scene: SceneCollision | np.ndarray | None = None) -> list[GraspReach]:
        """One :class:`GraspReach` per grasp (same order). scene: base-frame points (m) or a prepared SceneCollision."""
        if not grasps:
            return []
        cfg = self.config
        if scene is not None and not isinstance(scene, SceneCollision):
            scene = SceneCollision(scene, cfg.collision.voxel_size)
        poses = np.stack([self.tool_poses(g) for g in grasps])  # (N, 2, 3, 4, 4)
        q, valid = self.kin.ik_solutions(poses)  # (N, 2, 3, 8, 6), (N, 2, 3, 8)
        _, exists = self.kin.ik_branches(poses[:, :, 1].reshape(-1, 4, 4))
        grasp_exists = exists.reshape(len(grasps), 2, 8).any(axis=(1, 2))
        steps = np.maximum(np.abs(q[:, :, 1] - q[:, :, 0]).max(-1), np.abs(q[:, :, 2] - q[:, :, 1]).max(-1))  # (N, 2, 8)
        all_valid = valid.all(axis=2)  # (N, 2, 8): this branch reaches all three poses
        smooth = all_valid & (steps <= cfg.max_joint_step)
        margins = self.kin.limit_margin(q).min(axis=2)  # (N, 2, 8)
        out = []
        for i, grasp in enumerate(grasps):
            reach = GraspReach(grasp)
            if not grasp_exists[i]:
                reach.reason = "out_of_reach"
            elif not valid[i].any(axis=-1).all(axis=-1).any():
                reach.reason = "joint_limits"  # for neither finger order do all three poses have a solution in the limits
            elif not smooth[i].any():
                reach.reason = "wrist_flip" if all_valid[i].any() else "joint_limits"
            else:
                self._collect_goals(reach, poses[i], q[i], smooth[i], margins[i], scene)
            out.append(reach)
        return out

    def _collect_goals(self, reach: GraspReach, poses, q, smooth, margins, scene) -> None:
        """Goals of one grasp that pass the collision checks, best margin first; sets the reason when none does."""
        reasons = set()
        for f, k in sorted(zip(*np.nonzero(smooth)), key=lambda fk: -margins[fk]):
            q_pre, q_grasp, q_lift = q[f, 0, k], q[f, 1, k], q[f, 2, k]
            if any(self.collision.colliding_links(qq, None) for qq in (q_pre, q_grasp, q_lift)):
                reasons.add("self_collision")
                continue
            if self.config.check_scene and scene is not None and self.collision.in_collision(q_pre, scene):
                reasons.add("scene_collision")
                continue
            reach.goals.append(GraspGoal(poses[f, 1].copy(), q_pre.copy(), q_grasp.copy(), q_lift.copy(), bool(f), int(k), float(margins[f, k])))
        if not reach.goals:
            reach.reason = "self_collision" if "self_collision" in reasons else "scene_collision"
            return
        cfg = self.config
        reach.manipulability = self.kin.manipulability(reach.goals[0].q_grasp)
        reach.reach_score = float(
            min(np.clip(reach.goals[0].margin / cfg.margin_reference, 0, 1), np.clip(reach.manipulability / cfg.manipulability_reference, 0, 1))
        )

    def goals(self, grasp: Grasp, scene: SceneCollision | None = None) -> list[GraspGoal]:
        """All collision-checked goals of one grasp (best margin first); empty when it cannot be executed."""
        return self.check([grasp], scene)[0].goals

    def rank(self, grasps: list[Grasp], scene: SceneCollision | np.ndarray | None = None) -> RankedGrasps:
        """The executable grasps, best combined score first, with ``score`` replaced by the combined score.

        combined = (1 - margin_weight) * quality + margin_weight * reach_score; the
        detector's score is the quality. Dropped grasps are counted by reason.
        """
        reaches = self.check(grasps, scene)
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
