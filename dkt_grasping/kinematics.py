"""PiPER forward and inverse kinematics: Pinocchio FK on the generated URDF, closed-form batched IK.

Joint vectors q are 6 angles in radians (SDK order joint1..joint6); poses are
4x4 ``T_base_tcp`` in metres, the ``tcp`` frame following the PiPER gripper
convention (z = approach, y = closing).

The PiPER has a spherical wrist (the axes of joints 4, 5 and 6 meet in one
point, the wrist centre, ``d6`` behind the flange), so inverse kinematics has
a closed form: the wrist centre fixes joints 1-3 (shoulder turned to face it
or facing away, elbow up or down: a planar two-link problem with the forearm
offset ``a3``), and the remaining rotation fixes joints 4-6 as Y-Z-Y Euler
angles (wrist flipped or not). :meth:`PiperKinematics.ik_solutions` returns
all eight branches for any number of poses at once in plain numpy (about
30 µs per pose); every returned solution is checked by forward kinematics.
Because the enumeration is complete, "no solution within the joint limits"
is a fact about the pose, not a solver giving up.
"""

from __future__ import annotations

import numpy as np
import pinocchio as pin

from dkt_grasping.piper_model import DEFAULT_DH_IS_OFFSET, DEFAULT_TCP_OFFSET, DH_A, DH_ALPHA, DH_D, dh_theta_offset, piper_urdf

#: Branch flags of the eight IK solutions, in the order of :meth:`PiperKinematics.ik_solutions`:
#: (shoulder facing away from the wrist centre, elbow down, wrist flipped).
BRANCHES = tuple((s, e, w) for s in (0, 1) for e in (0, 1) for w in (0, 1))


class IKError(ValueError):
    """No joint solution within limits reaches the target pose; ``reason`` says why."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def _wrap(a: np.ndarray) -> np.ndarray:
    """Angles wrapped to [-pi, pi)."""
    return (a + np.pi) % (2 * np.pi) - np.pi


class PiperKinematics:
    """FK (Pinocchio, from the generated URDF) and closed-form IK of the PiPER arm.

    tcp_offset: flange to fingertip centre along the flange z axis (m).
    dh_is_offset: the firmware's zero convention (see :mod:`dkt_grasping.piper_model`).
    """

    #: Frames whose origins the collision model uses, base to tool.
    CHAIN = ("base_link", "link1", "link2", "link3", "link4", "link5", "link6", "tcp")

    def __init__(self, tcp_offset: float = DEFAULT_TCP_OFFSET, dh_is_offset: int = DEFAULT_DH_IS_OFFSET):
        self.dh_is_offset = int(dh_is_offset)
        self.model = pin.buildModelFromXML(piper_urdf(tcp_offset, dh_is_offset=self.dh_is_offset))
        self.data = self.model.createData()
        self.tcp_id = self.model.getFrameId("tcp")
        self.frame_ids = [self.model.getFrameId(n) for n in self.CHAIN]
        self.lower = np.array(self.model.lowerPositionLimit)
        self.upper = np.array(self.model.upperPositionLimit)
        self.velocity_limit = np.array(self.model.velocityLimit)
        self.tcp_offset = float(np.array(self.model.frames[self.tcp_id].placement.translation)[2])
        self.theta_offset = np.array(dh_theta_offset(self.dh_is_offset))
        # Shoulder (joint2) to wrist centre (joints 4-6): upper arm plus forearm.
        self.max_wrist_reach = float(DH_A[2] + np.hypot(DH_A[3], DH_D[3]))

    @property
    def dof(self) -> int:
        return self.model.nq

    def check_q(self, q: np.ndarray, name: str = "q") -> np.ndarray:
        q = np.asarray(q, dtype=np.float64).reshape(-1)
        if q.shape != (self.dof,) or not np.all(np.isfinite(q)):
            raise ValueError(f"{name} must be {self.dof} finite joint angles (rad), got {q}")
        return q

    def within_limits(self, q: np.ndarray, tol: float = 1e-9) -> bool:
        q = np.asarray(q)
        return bool(np.all(q >= self.lower - tol) and np.all(q <= self.upper + tol))

    def limit_violations(self, q: np.ndarray, tol: float = 1e-9) -> list[str]:
        """Human-readable list of joints outside their limits."""
        return [
            f"joint{i + 1}={np.rad2deg(v):.2f} deg not in [{np.rad2deg(lo):.1f}, {np.rad2deg(hi):.1f}]"
            for i, (v, lo, hi) in enumerate(zip(q, self.lower, self.upper))
            if v < lo - tol or v > hi + tol
        ]

    def limit_margin(self, q: np.ndarray) -> np.ndarray:
        """Distance to the nearest joint limit as a fraction of half that joint's range, per configuration (..., 6) -> (...)."""
        q = np.asarray(q, dtype=np.float64)
        half = (self.upper - self.lower) / 2
        return np.min(np.minimum(q - self.lower, self.upper - q) / half, axis=-1)

    def fk(self, q: np.ndarray, frame: str = "tcp") -> np.ndarray:
        """4x4 ``T_base_frame`` for joint angles q (rad)."""
        q = self.check_q(q)
        pin.forwardKinematics(self.model, self.data, q)
        fid = self.tcp_id if frame == "tcp" else self.model.getFrameId(frame)
        return np.array(pin.updateFramePlacement(self.model, self.data, fid).homogeneous)

    def chain_points(self, q: np.ndarray) -> np.ndarray:
        """Origins of :attr:`CHAIN` frames (8x3, base frame, m) plus the tcp z axis as a 9th row (unit)."""
        pin.forwardKinematics(self.model, self.data, np.asarray(q, dtype=np.float64))
        pin.updateFramePlacements(self.model, self.data)
        pts = [np.array(self.data.oMf[f].translation) for f in self.frame_ids]
        pts.append(np.array(self.data.oMf[self.tcp_id].rotation[:, 2]))
        return np.array(pts)

    def manipulability(self, q: np.ndarray) -> float:
        """Yoshikawa's measure sqrt(det(J J^T)) of the tcp's 6-D Jacobian (base-aligned frame); 0 at a singularity."""
        J = pin.computeFrameJacobian(self.model, self.data, self.check_q(q), self.tcp_id, pin.LOCAL_WORLD_ALIGNED)
        return float(np.sqrt(max(np.linalg.det(J @ J.T), 0.0)))

    # -- inverse kinematics ---------------------------------------------------------------------
    def wrist_centre(self, T_tcp: np.ndarray) -> np.ndarray:
        """Wrist centre (..., 3) (base frame, m) of tcp poses (..., 4, 4): where the axes of joints 4-6 meet."""
        T = np.asarray(T_tcp, dtype=np.float64)
        return T[..., :3, 3] - T[..., :3, 2] * (self.tcp_offset + DH_D[5])

    def fk_batch(self, q: np.ndarray) -> np.ndarray:
        """Vectorised FK of the tcp: joint angles (..., 6) rad -> poses (..., 4, 4), the same chain as the URDF."""
        q = np.asarray(q, dtype=np.float64)
        T = np.broadcast_to(np.eye(4), (*q.shape[:-1], 4, 4)).copy()
        for i in range(6):
            T = T @ _dh_batch(DH_ALPHA[i], DH_A[i], q[..., i] + self.theta_offset[i], DH_D[i])
        tool = np.eye(4)
        tool[2, 3] = self.tcp_offset
        return T @ tool

    def ik_branches(self, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The eight branches for poses (N, 4, 4): q (N, 8, 6) (limits not applied) and whether each exists (N, 8)."""
        n = len(T)
        a2, a3, d1, d4 = DH_A[2], DH_A[3], DH_D[0], DH_D[3]
        pw = self.wrist_centre(T)
        R_flange = T[:, :3, :3]
        q = np.zeros((n, 8, 6))
        exists = np.zeros((n, 8), dtype=bool)
        rho, phi = np.hypot(a3, d4), np.arctan2(d4, a3)
        for k, (shoulder, elbow, wrist) in enumerate(BRANCHES):
            # Joint 1 turns the arm's vertical plane through the wrist centre (or away from it: r < 0).
            t1 = np.arctan2(pw[:, 1], pw[:, 0]) + (np.pi if shoulder else 0.0)
            r = pw[:, 0] * np.cos(t1) + pw[:, 1] * np.sin(t1)
            h = pw[:, 2] - d1
            # Planar two-link problem in that plane: |(u, v)| = |(r, h)| with u, v the wrist in link-2 coordinates.
            cos_el = (r * r + h * h - a2 * a2 - a3 * a3 - d4 * d4) / (2 * a2 * rho)
            t3 = phi + (-1.0 if elbow else 1.0) * np.arccos(np.clip(cos_el, -1.0, 1.0))
            u = a2 + a3 * np.cos(t3) + d4 * np.sin(t3)
            v = a3 * np.sin(t3) - d4 * np.cos(t3)
            t2 = np.arctan2(-h, r) - np.arctan2(v, u)
            # Wrist: R03^T R_flange Rx(-pi/2) = Ry(-q4) Rz(q5) Ry(-q6) (modified-DH twists of joints 4-6).
            c1, s1, c23, s23 = np.cos(t1), np.sin(t1), np.cos(t2 + t3), np.sin(t2 + t3)
            R03 = np.zeros((n, 3, 3))
            R03[:, 0, 0], R03[:, 0, 1], R03[:, 0, 2] = c1 * c23, -c1 * s23, -s1
            R03[:, 1, 0], R03[:, 1, 1], R03[:, 1, 2] = s1 * c23, -s1 * s23, c1
            R03[:, 2, 0], R03[:, 2, 1] = -s23, -c23
            M = np.einsum("nji,njk->nik", R03, R_flange) @ _RX_MINUS_HALF_PI
            cb = np.clip(M[:, 1, 1], -1.0, 1.0)
            sb = np.sqrt(1.0 - cb * cb) * (-1.0 if wrist else 1.0)
            singular = np.abs(sb) < 1e-9  # q5 = 0: only q4 + q6 is defined; q4 = 0 is taken
            safe = np.where(singular, 1.0, sb)
            alpha = np.where(singular, 0.0, np.arctan2(M[:, 2, 1] / safe, -M[:, 0, 1] / safe))
            gamma = np.where(singular, np.arctan2(M[:, 0, 2], M[:, 0, 0]), np.arctan2(M[:, 1, 2] / safe, M[:, 1, 0] / safe))
            beta = np.arctan2(sb, cb)
            raw = np.stack([t1, t2, t3, -alpha, beta, -gamma], axis=1) - self.theta_offset
            q[:, k] = self._into_limits(_wrap(raw))
            exists[:, k] = np.abs(cos_el) <= 1.0
        return q, exists

    def ik_solutions(self, T_tcp: np.ndarray, *, tol: float = 1e-9) -> tuple[np.ndarray, np.ndarray]:
        """All eight closed-form IK branches for tcp poses ``T_tcp`` (..., 4, 4), base frame, m.

        Returns ``(q, valid)``: q (..., 8, 6) rad in the order of :data:`BRANCHES`, each joint
        moved by 2 pi into its limits where that is possible; valid (..., 8) is True where the
        branch exists (pose within reach), lies within the joint limits (``tol`` rad) and its
        forward kinematics reproduces the pose (0.01 mm, 0.1 mrad).
        """
        T = np.asarray(T_tcp, dtype=np.float64)
        if T.shape[-2:] != (4, 4):
            raise ValueError(f"IK targets must be 4x4 poses, got shape {T.shape}")
        batch = T.shape[:-2]
        T = T.reshape(-1, 4, 4)
        finite = np.all(np.isfinite(T.reshape(len(T), -1)), axis=1)
        T = np.where(finite[:, None, None], T, np.eye(4))
        q, exists = self.ik_branches(T)
        within = np.all((q >= self.lower - tol) & (q <= self.upper + tol), axis=-1)
        F = self.fk_batch(q)
        reproduces = (np.linalg.norm(F[..., :3, 3] - T[:, None, :3, 3], axis=-1) < 1e-5) & (
            np.linalg.norm(F[..., :3, :3] - T[:, None, :3, :3], axis=(-2, -1)) < 1e-4
        )
        valid = exists & within & reproduces & finite[:, None]
        return q.reshape(*batch, 8, 6), valid.reshape(*batch, 8)

    def _into_limits(self, q: np.ndarray) -> np.ndarray:
        """Move each angle by +-2 pi where that brings it inside its joint's limits (every range is < 2 pi wide)."""
        inside = (q >= self.lower) & (q <= self.upper)
        for shift in (2 * np.pi, -2 * np.pi):
            moved = q + shift
            better = (moved >= self.lower) & (moved <= self.upper) & ~inside
            q = np.where(better, moved, q)
            inside |= better
        return q

    def ik_all(self, T_target: np.ndarray) -> np.ndarray:
        """Every IK solution of one pose within the joint limits, (K, 6) rad, K <= 8 (possibly 0)."""
        q, valid = self.ik_solutions(np.asarray(T_target, dtype=np.float64)[None])
        return q[0][valid[0]]

    def ik(self, T_target: np.ndarray, q_seed: np.ndarray | None = None) -> np.ndarray:
        """The IK solution (rad) for ``T_target`` (4x4, base frame, m) closest to ``q_seed``.

        Without a seed, the solution farthest from the joint limits. Raises
        :class:`IKError` saying why no solution exists: the wrist centre out of
        reach, or every branch outside the joint limits (naming the joints).
        """
        T_target = np.asarray(T_target, dtype=np.float64)
        if T_target.shape != (4, 4) or not np.all(np.isfinite(T_target)):
            raise ValueError(f"IK target must be a finite 4x4 pose, got shape {T_target.shape}")
        q_all, valid = self.ik_solutions(T_target[None])
        solutions = q_all[0][valid[0]]
        if len(solutions):
            if q_seed is None:
                return solutions[int(np.argmax(self.limit_margin(solutions)))].copy()
            seed = self.check_q(q_seed, "q_seed")
            return solutions[int(np.argmin(np.abs(solutions - seed).sum(axis=1)))].copy()
        raise IKError(self.explain_unreachable(T_target))

    def explain_unreachable(self, T_target: np.ndarray) -> str:
        """Why no IK solution of ``T_target`` lies within the joint limits (one sentence)."""
        T_target = np.asarray(T_target, dtype=np.float64)
        pw = self.wrist_centre(T_target)
        reach = float(np.linalg.norm(pw - [0.0, 0.0, DH_D[0]]))
        where = np.round(T_target[:3, 3], 4).tolist()
        q_all, exists = self.ik_branches(T_target[None])
        if not exists.any():
            side = "far from" if reach > self.max_wrist_reach else "close to"
            limit = self.max_wrist_reach if reach > self.max_wrist_reach else abs(DH_A[2] - np.hypot(DH_A[3], DH_D[3]))
            return (
                f"target position {where} m is out of reach: its wrist centre is {reach:.3f} m from the shoulder, too {side} it "
                f"(the arm reaches {'at most' if side == 'far from' else 'no closer than'} {limit:.3f} m)"
            )
        candidates = q_all[0][exists[0]]
        excess = np.maximum(self.lower - candidates, 0) + np.maximum(candidates - self.upper, 0)
        best = candidates[int(np.argmin(excess.sum(axis=1)))]
        return f"no IK solution within joint limits for target position {where} m (closest branch: {'; '.join(self.limit_violations(best))})"


_RX_MINUS_HALF_PI = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def _dh_batch(alpha: float, a: float, theta: np.ndarray, d: float) -> np.ndarray:
    """Modified-DH link transforms ``Rx(alpha) Tx(a) Rz(theta) Tz(d)`` for an array of theta (rad) -> (..., 4, 4)."""
    ca, sa = np.cos(alpha), np.sin(alpha)
    ct, st = np.cos(theta), np.sin(theta)
    T = np.zeros((*np.shape(theta), 4, 4))
    T[..., 0, 0], T[..., 0, 1], T[..., 0, 3] = ct, -st, a
    T[..., 1, 0], T[..., 1, 1], T[..., 1, 2], T[..., 1, 3] = st * ca, ct * ca, -sa, -sa * d
    T[..., 2, 0], T[..., 2, 1], T[..., 2, 2], T[..., 2, 3] = st * sa, ct * sa, ca, ca * d
    T[..., 3, 3] = 1.0
    return T
