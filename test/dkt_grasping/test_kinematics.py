"""PiPER kinematics: the generated URDF against plain modified-DH maths, piper-sdk's FK (both zero conventions)
and AgileX's URDF; closed-form IK against FK."""

import numpy as np
import pinocchio as pin
import pytest
from piper_sdk.kinematics.piper_fk import C_PiperForwardKinematics

from dkt_grasping.kinematics import BRANCHES, IKError, PiperKinematics
from dkt_grasping.piper_model import SHIPPED_URDF, piper_urdf
from dkt_stack.transforms import xyz_rpy_to_transform

# FACTS, section 4: modified DH in mm and degrees; j2/j3 offsets per piper-sdk dh_is_offset.
A_MM = [0, 0, 285.03, -21.98, 0, 0]
ALPHA = [0, -np.pi / 2, 0, np.pi / 2, -np.pi / 2, np.pi / 2]
D_MM = [123, 0, 0, 250.75, 0, 91]
OFFSET_DEG = {1: [0, -172.22, -102.78, 0, 0, 0], 0: [0, -174.22, -100.78, 0, 0, 0]}
# piper-sdk's joint-limit table (piper_param_manager.py), rad.
LIMITS_RAD = [(-2.6179, 2.6179), (0, 3.14), (-2.967, 0), (-1.745, 1.745), (-1.22, 1.22), (-2.09439, 2.09439)]

# AgileX's URDF (agilexrobotics/Piper_ros, src/piper_description/urdf/piper_description.urdf, first commit
# 2024-09-04): joint origins (xyz m, rpy rad) and axes of joint1..joint6, read from that file.
AGILEX_JOINTS = [
    ((0, 0, 0.123), (0, 0, -1.5708), 1),
    ((0, 0, 0), (1.5708, -0.10095, -1.5708), 1),
    ((0.28503, 0, 0), (0, 0, 1.3826), 1),
    ((0.021984, 0.25075, 0), (-1.5708, 0, 0), -1),
    ((0, 0, 0), (1.5708, -0.087266, 0), 1),
    ((0, 0.091, 0.0014165), (-1.5708, -1.5708, 0), -1),
]


def agilex_urdf() -> str:
    """A kinematics-only URDF with AgileX's joint origins and axes (no meshes)."""
    lines = ['<robot name="agilex_piper">', '<link name="base_link"/>']
    for i, (xyz, rpy, axis) in enumerate(AGILEX_JOINTS):
        parent = "base_link" if i == 0 else f"link{i}"
        lines += [
            f'<link name="link{i + 1}"/>',
            f'<joint name="joint{i + 1}" type="revolute"><parent link="{parent}"/><child link="link{i + 1}"/>',
            f'<origin xyz="{" ".join(map(str, xyz))}" rpy="{" ".join(map(str, rpy))}"/><axis xyz="0 0 {axis}"/>',
            '<limit lower="-6.3" upper="6.3" effort="1" velocity="1"/></joint>',
        ]
    return "\n".join([*lines, "</robot>"])


def dh_fk(q, tcp_offset=0.0, dh_is_offset=1):
    """Plain Craig modified-DH chain: Rx(alpha) Tx(a) Rz(theta) Tz(d), metres."""
    T = np.eye(4)
    for i in range(6):
        ca, sa = np.cos(ALPHA[i]), np.sin(ALPHA[i])
        th = q[i] + np.deg2rad(OFFSET_DEG[dh_is_offset][i])
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
    np.testing.assert_allclose(kin.lower, [lo for lo, _ in LIMITS_RAD], atol=1e-12)
    np.testing.assert_allclose(kin.upper, [hi for _, hi in LIMITS_RAD], atol=1e-12)
    # never wider than AgileX's URDF
    agilex = [(-2.618, 2.618), (0, 3.14), (-2.967, 0), (-1.832, 1.832), (-1.22, 1.22), (-3.14, 3.14)]
    assert np.all(kin.lower >= [lo for lo, _ in agilex]) and np.all(kin.upper <= [hi for _, hi in agilex])


@pytest.mark.parametrize("dh_is_offset", [1, 0])
@pytest.mark.parametrize("tcp_offset", [0.0, 0.135])
def test_pinocchio_fk_equals_modified_dh(tcp_offset, dh_is_offset):
    kin = PiperKinematics(tcp_offset, dh_is_offset=dh_is_offset)
    rng = np.random.default_rng(1)
    qs = [*random_q(rng, kin, 25), np.zeros(6)]
    for q in qs:
        np.testing.assert_allclose(kin.fk(q), dh_fk(q, tcp_offset, dh_is_offset), atol=1e-8)
    np.testing.assert_allclose(kin.fk_batch(np.array(qs)), [dh_fk(q, tcp_offset, dh_is_offset) for q in qs], atol=1e-8)


@pytest.mark.parametrize(("dh_is_offset", "zero_flange_mm"), [(1, [56.128, 0, 213.266]), (0, [54.953, 0, 203.387])])
def test_flange_matches_piper_sdk_fk_for_both_conventions(dh_is_offset, zero_flange_mm):
    kin = PiperKinematics(dh_is_offset=dh_is_offset)
    sdk_fk = C_PiperForwardKinematics(dh_is_offset=dh_is_offset)
    rng = np.random.default_rng(2)
    for q in random_q(rng, kin, 10):
        x, y, z, rx, ry, rz = sdk_fk.CalFK(list(q))[5]  # link6: mm and degrees (fixed-axis roll, pitch, yaw)
        T_sdk = xyz_rpy_to_transform(np.array([x, y, z]) / 1000, np.deg2rad([rx, ry, rz]))
        np.testing.assert_allclose(kin.fk(q, "link6"), T_sdk, atol=1e-7)
    # The SDK's zero pose of the flange (its init_pos for 0x01: 56.128, 0, 213.266 mm).
    np.testing.assert_allclose(kin.fk(np.zeros(6), "link6")[:3, 3] * 1000, zero_flange_mm, atol=1e-3)


def test_convention_switch_changes_fk_exactly_as_the_sdk():
    """The same joint angles mean different flange poses under the two conventions, by the SDK's own amount."""
    new, old = PiperKinematics(dh_is_offset=1), PiperKinematics(dh_is_offset=0)
    sdk_new, sdk_old = C_PiperForwardKinematics(0x01), C_PiperForwardKinematics(0x00)
    rng = np.random.default_rng(7)
    shifts = []
    for q in random_q(rng, new, 20):
        ours = new.fk(q, "link6")[:3, 3] - old.fk(q, "link6")[:3, 3]
        sdk = (np.array(sdk_new.CalFK(list(q))[5][:3]) - np.array(sdk_old.CalFK(list(q))[5][:3])) / 1000
        np.testing.assert_allclose(ours, sdk, atol=1e-9)
        shifts.append(np.linalg.norm(ours))
    assert 0.005 < np.median(shifts) < 0.03  # a 2 deg shift of j2/j3: about a centimetre at the flange


def test_agilex_urdf_relation_to_the_sdk_convention():
    """AgileX's URDF = SDK offsets 0x00 with joints 4 and 6 negated, up to its own joint-5/6 origin offsets.

    The wrist centre (link5) agrees to 0.05 mm; the flange sits a constant 8.07 mm away (the URDF's 5 deg
    joint-5 origin pitch and 1.4 mm joint-6 offset, which the SDK's DH table does not have).
    """
    model = pin.buildModelFromXML(agilex_urdf())
    data = model.createData()
    ours = PiperKinematics(0.0, dh_is_offset=0)
    mapping = np.array([1, 1, 1, -1, 1, -1])
    rng = np.random.default_rng(11)
    wrist_err, flange_dist = [], []
    for q in random_q(rng, ours, 200):
        pin.forwardKinematics(model, data, mapping * q)
        pin.updateFramePlacements(model, data)
        wrist = np.array(data.oMf[model.getFrameId("link5")].translation)
        flange = np.array(data.oMf[model.getFrameId("link6")].translation)
        wrist_err.append(np.linalg.norm(wrist - ours.fk(q, "link5")[:3, 3]))
        flange_dist.append(np.linalg.norm(flange - ours.fk(q, "link6")[:3, 3]))
    assert max(wrist_err) < 5e-5
    assert abs(np.median(flange_dist) - 0.00807) < 5e-5 and np.ptp(flange_dist) < 1e-4
    # Without the sign mapping (angles passed as the SDK reports them) the URDF is far off: its j4/j6 turn the other way.
    pin.forwardKinematics(model, data, np.array([0.3, 1.0, -1.0, 0.8, 0.5, 0.4]))
    pin.updateFramePlacements(model, data)
    far = np.linalg.norm(np.array(data.oMf[model.getFrameId("link6")].translation) - ours.fk([0.3, 1.0, -1.0, 0.8, 0.5, 0.4], "link6")[:3, 3])
    assert far > 0.03


@pytest.mark.parametrize("dh_is_offset", [1, 0])
def test_closed_form_ik_recovers_every_configuration(dh_is_offset):
    kin = PiperKinematics(dh_is_offset=dh_is_offset)
    rng = np.random.default_rng(3)
    qs = rng.uniform(kin.lower, kin.upper, size=(300, 6))
    poses = kin.fk_batch(qs)
    q_ik, valid = kin.ik_solutions(poses)
    assert q_ik.shape == (300, 8, 6) and valid.shape == (300, 8)
    # every valid branch reproduces the pose and respects the limits
    F = kin.fk_batch(q_ik)
    pos_err = np.linalg.norm(F[..., :3, 3] - poses[:, None, :3, 3], axis=-1)
    assert pos_err[valid].max() < 1e-9
    assert np.all(q_ik[valid] >= kin.lower - 1e-9) and np.all(q_ik[valid] <= kin.upper + 1e-9)
    # the configuration we started from is one of them (q5 = 0 is a wrist singularity: only q4 + q6 is defined there)
    found = (np.abs(q_ik - qs[:, None]).max(axis=-1) < 1e-6) & valid
    regular = np.abs(qs[:, 4]) > 1e-3
    assert found[regular].any(axis=1).all()


def test_ik_picks_the_solution_nearest_the_seed_and_the_safest_without_one():
    kin = PiperKinematics()
    q = np.array([0.2, 1.0, -1.2, 0.3, 0.4, -0.5])
    T = kin.fk(q)
    np.testing.assert_allclose(kin.ik(T, q), q, atol=1e-8)
    solutions = kin.ik_all(T)
    best = kin.ik(T)
    assert any(np.allclose(best, s) for s in solutions)
    assert kin.limit_margin(best) == pytest.approx(kin.limit_margin(solutions).max())
    T[2, 3] += 0.01
    q_near = kin.ik(T, q)
    assert np.abs(q_near - q).max() < 0.1


def test_ik_batch_shapes_and_bad_poses():
    kin = PiperKinematics()
    poses = np.broadcast_to(kin.fk(np.array([0.1, 1.2, -1.0, 0.2, 0.3, 0.1])), (2, 3, 4, 4)).copy()
    poses[1, 2, 0, 3] = np.nan
    q, valid = kin.ik_solutions(poses)
    assert q.shape == (2, 3, 8, 6) and valid.shape == (2, 3, 8)
    assert valid[0, 0].any() and not valid[1, 2].any()
    assert len(BRANCHES) == 8


def test_ik_errors():
    kin = PiperKinematics()
    far = np.eye(4)
    far[:3, 3] = [1.5, 0, 0.2]
    with pytest.raises(IKError, match="out of reach"):
        kin.ik(far)
    # within reach but straight down far in front of the base: joint 5 would need more than its 70 deg
    down = np.diag([1.0, -1.0, -1.0, 1.0])
    down[:3, 3] = [0.5, 0.0, 0.03]
    with pytest.raises(IKError, match="joint5"):
        kin.ik(down)
    with pytest.raises(ValueError, match="4x4"):
        kin.ik(np.eye(3))
    with pytest.raises(ValueError, match="6 finite"):
        kin.fk([0, 0, 0])
