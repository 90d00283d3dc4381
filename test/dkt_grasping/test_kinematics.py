"""PiPER URDF generated from the DH table, Pinocchio FK against plain modified-DH maths and the SDK's FK, IK round trips."""

import numpy as np
import pytest
from piper_sdk.kinematics.piper_fk import C_PiperForwardKinematics

from dkt_grasping.kinematics import IKError, PiperKinematics
from dkt_grasping.piper_model import SHIPPED_URDF, piper_urdf
from dkt_stack.transforms import xyz_rpy_to_transform

# FACTS, section 4: modified DH in mm and degrees.
A_MM = [0, 0, 285.03, -21.98, 0, 0]
ALPHA = [0, -np.pi / 2, 0, np.pi / 2, -np.pi / 2, np.pi / 2]
D_MM = [123, 0, 0, 250.75, 0, 91]
OFFSET_DEG = [0, -172.22, -102.78, 0, 0, 0]
LIMITS_DEG = [(-150, 150), (0, 180), (-170, 0), (-100, 100), (-70, 70), (-120, 120)]


def dh_fk(q, tcp_offset=0.0):
    """Plain Craig modified-DH chain: Rx(alpha) Tx(a) Rz(theta) Tz(d), metres."""
    T = np.eye(4)
    for i in range(6):
        ca, sa = np.cos(ALPHA[i]), np.sin(ALPHA[i])
        th = q[i] + np.deg2rad(OFFSET_DEG[i])
        ct, st = np.cos(th), np.sin(th)
        Rx = np.array([[1, 0, 0, 0], [0, ca, -sa, 0], [0, sa, ca, 0], [0, 0, 0, 1]])
        Tx = np.eye(4)
        Tx[0, 3] = A_MM[i] / 1000
        Rz = np.array([[ct, -st, 0, 0], [st, ct, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
        Tz = np.eye(4)
        Tz[2, 3] = D_MM[i] / 1000
        T = T @ Rx @ Tx @ Rz @ Tz
    tool = np.eye(4)
    tool[2, 3] = tcp_offset
    return T @ tool


def random_q(rng, kin, n):
    return [rng.uniform(kin.lower, kin.upper) for _ in range(n)]


def test_shipped_urdf_is_the_generated_one():
    assert SHIPPED_URDF.read_text(encoding="utf-8") == piper_urdf()


def test_joint_limits_from_the_sdk_table():
    kin = PiperKinematics()
    np.testing.assert_allclose(np.rad2deg(kin.lower), [lo for lo, _ in LIMITS_DEG], atol=1e-7)
    np.testing.assert_allclose(np.rad2deg(kin.upper), [hi for _, hi in LIMITS_DEG], atol=1e-7)


@pytest.mark.parametrize("tcp_offset", [0.0, 0.135])
def test_pinocchio_fk_equals_modified_dh(tcp_offset):
    kin = PiperKinematics(tcp_offset)
    rng = np.random.default_rng(1)
    for q in [*random_q(rng, kin, 25), np.zeros(6)]:
        np.testing.assert_allclose(kin.fk(q), dh_fk(q, tcp_offset), atol=1e-8)


def test_flange_matches_piper_sdk_fk():
    kin = PiperKinematics()
    sdk_fk = C_PiperForwardKinematics(dh_is_offset=0x01)
    rng = np.random.default_rng(2)
    for q in random_q(rng, kin, 10):
        x, y, z, rx, ry, rz = sdk_fk.CalFK(list(q))[5]  # link6: mm and degrees (fixed-axis roll, pitch, yaw)
        T_sdk = xyz_rpy_to_transform(np.array([x, y, z]) / 1000, np.deg2rad([rx, ry, rz]))
        np.testing.assert_allclose(kin.fk(q, "link6"), T_sdk, atol=1e-7)
    # The SDK's documented zero pose of the flange: (56.128, 0, 213.266) mm.
    np.testing.assert_allclose(kin.fk(np.zeros(6), "link6")[:3, 3] * 1000, [56.128, 0, 213.266], atol=1e-3)


def test_ik_round_trips_fk():
    kin = PiperKinematics()
    rng = np.random.default_rng(3)
    margin = np.deg2rad(5.0)  # configurations pinned into two joint limits at once are not sampled
    for i in range(20):
        q = rng.uniform(kin.lower + margin, kin.upper - margin)
        T = kin.fk(q)
        q_ik = kin.ik(T, rng=np.random.default_rng(i))
        assert kin.within_limits(q_ik)
        T_ik = kin.fk(q_ik)
        assert np.linalg.norm(T_ik[:3, 3] - T[:3, 3]) < 1e-3
        angle = np.arccos(np.clip((np.trace(T_ik[:3, :3].T @ T[:3, :3]) - 1) / 2, -1, 1))
        assert np.rad2deg(angle) < 0.1


def test_ik_from_a_nearby_seed_stays_near_it():
    kin = PiperKinematics()
    q = np.array([0.2, 1.0, -1.2, 0.3, 0.4, -0.5])
    T = kin.fk(q)
    T[2, 3] += 0.01
    q_ik = kin.ik(T, q, num_random_seeds=0)
    assert np.abs(q_ik - q).max() < 0.1


def test_ik_errors():
    kin = PiperKinematics()
    far = np.eye(4)
    far[:3, 3] = [1.5, 0, 0.2]
    with pytest.raises(IKError, match="out of reach"):
        kin.ik(far)
    with pytest.raises(ValueError, match="4x4"):
        kin.ik(np.eye(3))
    with pytest.raises(ValueError, match="6 finite"):
        kin.fk([0, 0, 0])
