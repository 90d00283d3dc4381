"""PiPER forward and inverse kinematics with Pinocchio, on the URDF of :mod:`dkt_grasping.piper_model`.

Joint vectors q are 6 angles in radians (SDK order joint1..joint6); poses are
4x4 ``T_base_tcp`` in metres, the ``tcp`` frame following the PiPER gripper
convention (z = approach, y = closing).
"""

from __future__ import annotations

import numpy as np
import pinocchio as pin

from dkt_grasping.piper_model import DEFAULT_TCP_OFFSET, DH_A, DH_D, piper_urdf


class IKError(ValueError):
    """No joint solution within limits reaches the target pose; ``reason`` says how close it got."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class PiperKinematics:
    """FK/IK of the PiPER arm (Pinocchio model built from the generated URDF)."""

    #: Frames whose origins the collision model uses, base to tool.
    CHAIN = ("base_link", "link1", "link2", "link3", "link4", "link5", "link6", "tcp")

    def __init__(self, tcp_offset: float = DEFAULT_TCP_OFFSET, urdf: str | None = None):
        self.model = pin.buildModelFromXML(urdf if urdf is not None else piper_urdf(tcp_offset))
        self.data = self.model.createData()
        self.tcp_id = self.model.getFrameId("tcp")
        self.frame_ids = [self.model.getFrameId(n) for n in self.CHAIN]
        self.lower = np.array(self.model.lowerPositionLimit)
        self.upper = np.array(self.model.upperPositionLimit)
        self.velocity_limit = np.array(self.model.velocityLimit)
        self._table = None  # (q, tcp position, tcp y, tcp z) samples for IK seeding, built on first use
        self.tcp_offset = float(np.array(self.model.frames[self.tcp_id].placement.translation)[2])
        # Shoulder (joint2) to wrist centre (joints 4-6): upper arm plus forearm.
        self.max_wrist_reach = float(np.hypot(DH_A[2], 0.0) + np.hypot(DH_A[3], DH_D[3]))

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

    def _nearest_table_configurations(self, T: np.ndarray, k: int) -> np.ndarray:
        """k sampled configurations whose tcp pose is closest to T (position m + 0.1 m per unit axis error)."""
        if k <= 0:
            return np.zeros((0, self.dof))
        if self._table is None:
            rng = np.random.default_rng(12345)
            qs = rng.uniform(self.lower, self.upper, size=(4000, self.dof))
            poses = np.array([self.fk(q) for q in qs])
            self._table = (qs, poses[:, :3, 3], poses[:, :3, 1], poses[:, :3, 2])
        qs, p, y, z = self._table
        cost = np.linalg.norm(p - T[:3, 3], axis=1) + 0.1 * (np.linalg.norm(z - T[:3, 2], axis=1) + np.linalg.norm(y - T[:3, 1], axis=1))
        return qs[np.argsort(cost)[:k]]

    def ik(
        self,
        T_target: np.ndarray,
        q_seed: np.ndarray | None = None,
        *,
        num_random_seeds: int = 16,
        position_tolerance: float = 2e-4,
        rotation_tolerance: float = 1e-3,
        max_iterations: int = 150,
        damping: float = 1e-4,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """Joint angles (rad) placing the tcp at ``T_target`` (4x4, base frame, m).

        Damped least squares on the SE(3) log error with joint limits enforced
        by clipping each step, from ``q_seed`` (if given) and then random seeds;
        the first converged solution is returned (the seeded one stays near
        ``q_seed``). Raises :class:`IKError` with the best residual otherwise.
        """
        T_target = np.asarray(T_target, dtype=np.float64)
        if T_target.shape != (4, 4) or not np.all(np.isfinite(T_target)):
            raise ValueError(f"IK target must be a finite 4x4 pose, got shape {T_target.shape}")
        target = pin.SE3(T_target[:3, :3], T_target[:3, 3])
        rng = rng or np.random.default_rng(0)
        seeds = [] if q_seed is None else [np.clip(self.check_q(q_seed, "q_seed"), self.lower, self.upper)]
        # Half the restarts from the nearest poses of a pre-sampled table (fast near the workspace edges), half random.
        n_table = (num_random_seeds + 1) // 2
        seeds += list(self._nearest_table_configurations(T_target, n_table))
        seeds += [rng.uniform(self.lower, self.upper) for _ in range(num_random_seeds - n_table)]
        wrist = T_target[:3, 3] - T_target[:3, 2] * (self.tcp_offset + DH_D[5])
        reach = np.linalg.norm(wrist - [0.0, 0.0, DH_D[0]])
        if reach > self.max_wrist_reach:
            raise IKError(
                f"target position {np.round(T_target[:3, 3], 4).tolist()} m is out of reach: its wrist centre is "
                f"{reach:.3f} m from the shoulder, the arm reaches {self.max_wrist_reach:.3f} m"
            )
        best = (np.inf, np.inf)
        for q in seeds:
            q = q.copy()
            history = []
            for it in range(max_iterations):
                pin.forwardKinematics(self.model, self.data, q)
                current = pin.updateFramePlacement(self.model, self.data, self.tcp_id)
                err = pin.log6(current.actInv(target)).vector  # twist in the tcp frame: [v, w]
                pos_err, rot_err = np.linalg.norm(current.rotation @ err[:3]), np.linalg.norm(err[3:])
                if pos_err < position_tolerance and rot_err < rotation_tolerance:
                    return q
                history.append(pos_err + 0.1 * rot_err)
                if it >= 30 and history[-1] > 0.99 * history[-31] and pos_err > 20 * position_tolerance:
                    break  # stuck (at a joint limit or a local minimum): next seed
                J = pin.computeFrameJacobian(self.model, self.data, q, self.tcp_id, pin.LOCAL)
                J = pin.Jlog6(current.actInv(target)) @ J
                # Damping fades with the error (Levenberg-Marquardt style) so that convergence near singular wrists stays fast.
                dq = J.T @ np.linalg.solve(J @ J.T + damping * min(1.0, float(err @ err) * 100) * np.eye(6), err)
                step = np.abs(dq).max()
                if step > 0.5:  # keep steps small so clipping at the limits does not throw the solver around
                    dq *= 0.5 / step
                q = np.clip(q + dq, self.lower, self.upper)
            if pos_err + rot_err < sum(best):
                best = (pos_err, rot_err)
        raise IKError(
            f"no IK solution within joint limits for target position {np.round(T_target[:3, 3], 4).tolist()} m "
            f"(best residual {best[0] * 1000:.1f} mm, {np.rad2deg(best[1]):.2f} deg over {len(seeds)} seeds)"
        )
