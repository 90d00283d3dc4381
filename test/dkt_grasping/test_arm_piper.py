"""The PiPER driver over the real piper-sdk on python-can's virtual bus, against a simulated arm peer.

The peer decodes the SDK's frames independently (struct, big-endian) and
answers with joint, gripper and motor-status feedback frames.
"""

from __future__ import annotations

import struct
import threading
import time
import uuid

import can
import numpy as np
import pytest

from dkt_grasping.arm import ArmError, ArmFeedbackLost, create_arm, execute_plan
from dkt_grasping.arm.piper import PiperArm, PiperArmConfig
from dkt_grasping.planning.base import GraspPlan, GripperCommand, JointTrajectory, PlanStep
from dkt_grasping.planning.time_parameterization import time_parameterize

# piper-sdk itself still passes python-can the deprecated `bustype` argument.
pytestmark = pytest.mark.filterwarnings("ignore:The .bustype. argument is deprecated:DeprecationWarning")


class PiperPeer:
    """The arm side of the bus: follows joint commands, reports feedback every 5 ms unless silent."""

    def __init__(self, channel: str, q0_mdeg=(0, 10000, -20000, 0, 15000, 0)):
        self.bus = can.Bus(interface="virtual", channel=channel, receive_own_messages=False)
        self.q = list(q0_mdeg)  # 0.001 deg
        self.gripper = (0, 0)  # 0.001 mm, 0.001 N*m
        self.enabled = False
        self.silent = False
        self.frames: list[tuple[float, int, bytes]] = []
        self.running = True
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _handle(self, msg: can.Message) -> None:
        data = bytes(msg.data)
        with self.lock:
            self.frames.append((time.monotonic(), msg.arbitration_id, data))
        if msg.arbitration_id in (0x155, 0x156, 0x157):
            a, b = struct.unpack(">ii", data)
            k = 2 * (msg.arbitration_id - 0x155)
            self.q[k], self.q[k + 1] = a, b
        elif msg.arbitration_id == 0x471 and data[0] == 7:
            self.enabled = data[1] == 0x02
        elif msg.arbitration_id == 0x159:
            angle, effort, code, _ = struct.unpack(">iHBB", data)
            if code == 0x01:
                self.gripper = (angle, effort)

    def _send_feedback(self) -> None:
        for k, cid in enumerate((0x2A5, 0x2A6, 0x2A7)):
            self.bus.send(can.Message(arbitration_id=cid, data=struct.pack(">ii", self.q[2 * k], self.q[2 * k + 1]), is_extended_id=False))
        self.bus.send(
            can.Message(arbitration_id=0x2A8, data=struct.pack(">ihBB", self.gripper[0], self.gripper[1], 0x40, 0), is_extended_id=False)
        )
        status = 0x40 if self.enabled else 0x00  # bit 6: driver enabled
        for m in range(6):
            self.bus.send(can.Message(arbitration_id=0x261 + m, data=struct.pack(">HhbBH", 240, 30, 30, status, 0), is_extended_id=False))

    def _run(self) -> None:
        next_fb = time.monotonic()
        while self.running:
            try:
                msg = self.bus.recv(timeout=0.002)
                if msg is not None:
                    self._handle(msg)
                if not self.silent and time.monotonic() >= next_fb:
                    self._send_feedback()
                    next_fb = time.monotonic() + 0.005
            except can.CanOperationError:
                return

    def received(self, can_id: int) -> list[bytes]:
        with self.lock:
            return [d for _, i, d in self.frames if i == can_id]

    def wait_for(self, can_id: int, count: int, timeout: float = 1.0) -> list[bytes]:
        """Frames with ``can_id`` once at least ``count`` of them arrived (the peer reads asynchronously)."""
        deadline = time.monotonic() + timeout
        while len(self.received(can_id)) < count and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.received(can_id)

    def shutdown(self) -> None:
        self.running = False
        self.thread.join(timeout=1)
        self.bus.shutdown()


@pytest.fixture
def channel():
    return f"piper_test_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def peer(channel):
    p = PiperPeer(channel)
    yield p
    p.shutdown()


def make_arm(channel: str, **kw) -> PiperArm:
    cfg = PiperArmConfig(can_name=channel, bustype="virtual", check_can_port=False, watchdog_timeout=0.15, connect_timeout=1.0, **kw)
    return create_arm("piper", cfg)


def test_feedback_is_decoded_to_radians_and_metres(peer, channel):
    peer.gripper = (35000, 1200)
    with make_arm(channel) as arm:
        arm.connect()
        time.sleep(0.05)
        state = arm.read_state()
    np.testing.assert_allclose(np.rad2deg(state.q), [0, 10, -20, 0, 15, 0], atol=1e-9)
    assert state.gripper_width == pytest.approx(0.035)
    assert state.gripper_effort == pytest.approx(1.2)


def test_execute_streams_limited_setpoints_and_gripper_frames(peer, channel):
    arm = make_arm(channel, speed_percent=40, max_velocity=[1.0] * 6, rate_hz=100.0)
    arm.connect()
    arm.enable()
    assert peer.received(0x471)[-1][:2] == bytes([7, 0x02])
    q0 = arm.read_state().q
    q1 = q0 + np.deg2rad([10, 5, -5, 20, -10, 30])
    traj = time_parameterize(np.array([q0, q1]), [2.0] * 6, [4.0] * 6, [40.0] * 6, dt=0.01)
    state = arm.execute(traj)
    np.testing.assert_allclose(state.q, q1, atol=np.deg2rad(0.002))
    modes = peer.received(0x151)
    assert modes and all(m[:4] == bytes([0x01, 0x01, 40, 0x00]) for m in modes)
    # Joint setpoints, decoded independently: int32 big-endian 0.001 deg, two joints per frame.
    j12 = np.array([struct.unpack(">ii", d) for d in peer.received(0x155)], float)
    j34 = np.array([struct.unpack(">ii", d) for d in peer.received(0x156)], float)
    j56 = np.array([struct.unpack(">ii", d) for d in peer.received(0x157)], float)
    n = min(len(j12), len(j34), len(j56))
    setpoints = np.deg2rad(np.hstack([j12[:n], j34[:n], j56[:n]]) / 1000.0)
    np.testing.assert_allclose(setpoints[-1], q1, atol=np.deg2rad(0.001))
    # Streamed at 100 Hz and bounded by max_velocity 1 rad/s: at most 0.01 rad (+ rounding) per frame.
    assert np.abs(np.diff(setpoints, axis=0)).max() <= 0.01 + 1e-4
    n = len(peer.received(0x159))
    arm.set_gripper(0.05, 1.5)
    angle, effort, code, zero = struct.unpack(">iHBB", peer.wait_for(0x159, n + 1)[-1])
    assert (angle, effort, code, zero) == (50000, 1500, 0x01, 0)
    arm.set_gripper(0.2, 9.0)  # clamped to 0.07 m and 5 N*m
    assert struct.unpack(">iHBB", peer.wait_for(0x159, n + 2)[-1])[:2] == (70000, 5000)
    n = len(peer.received(0x471))
    arm.close()
    assert peer.wait_for(0x471, n + 1)[-1][:2] == bytes([7, 0x01])  # disabled on close


def test_setpoints_are_clamped_to_joint_limits(peer, channel):
    arm = make_arm(channel, max_velocity=[3.0] * 6)
    arm.connect()
    arm.enable()
    q0 = arm.read_state().q
    beyond = q0.copy()
    beyond[4] = np.deg2rad(90.0)  # joint5 limit is 1.22 rad (69.9 deg; piper-sdk's and AgileX's URDF's value)
    traj = JointTrajectory(np.array([0.0, 0.5]), np.array([q0, beyond]), np.zeros((2, 6)), np.zeros((2, 6)))
    state = arm.execute(traj)  # ends at the limit, never beyond it
    assert state.q[4] == pytest.approx(1.22, abs=2e-5)
    time.sleep(0.05)
    j56 = np.array([struct.unpack(">ii", d) for d in peer.received(0x157)])
    assert j56[:, 0].max() == round(np.rad2deg(1.22) * 1000)  # 0.001 deg units
    arm.close()


def test_silent_arm_triggers_watchdog_stop(peer, channel):
    arm = make_arm(channel)
    arm.connect()
    arm.enable()
    q0 = arm.read_state().q
    traj = time_parameterize(np.array([q0, q0 + 0.5]), [0.5] * 6, [1.0] * 6, [10.0] * 6)
    threading.Timer(0.2, lambda: setattr(peer, "silent", True)).start()
    t0 = time.monotonic()
    with pytest.raises(ArmFeedbackLost, match="feedback .* old"):
        arm.execute(traj)
    assert time.monotonic() - t0 < 1.0  # well before the 1+ s trajectory ends
    stops = peer.wait_for(0x150, 1)
    assert stops and stops[-1][0] == 0x01  # quick stop sent
    with pytest.raises(ArmError, match="stopped"):
        arm.execute(traj)
    arm.close()


def test_peer_bus_shutdown_is_detected(channel):
    peer = PiperPeer(channel)
    arm = make_arm(channel)
    arm.connect()
    arm.enable()
    peer.shutdown()
    time.sleep(0.3)
    q0 = arm.read_state().q
    traj = time_parameterize(np.array([q0, q0 + 0.2]), [0.5] * 6, [1.0] * 6, [10.0] * 6)
    with pytest.raises(ArmFeedbackLost, match="CAN bus lost"):
        arm.execute(traj)
    arm.close()


def test_no_arm_on_the_bus_is_a_clear_error(channel):
    arm = make_arm(channel)
    arm.config.connect_timeout = 0.3
    with pytest.raises(ArmFeedbackLost, match="no joint feedback"):
        arm.connect()
    arm.close()


def test_execute_plan_runs_steps_in_order(peer, channel):
    arm = make_arm(channel)
    arm.connect()
    arm.enable()
    q0 = arm.read_state().q
    traj = time_parameterize(np.array([q0, q0 + 0.05]), [1.0] * 6, [2.0] * 6, [20.0] * 6)
    plan = GraspPlan(
        grasp=None, steps=[PlanStep("open", GripperCommand(0.06, 1.0)), PlanStep("move", traj), PlanStep("close", GripperCommand(0.0, 2.0))]
    )
    state = execute_plan(arm, plan)
    np.testing.assert_allclose(state.q, q0 + 0.05, atol=1e-4)
    time.sleep(0.1)  # let the peer read everything
    grip = [struct.unpack(">iHBB", d)[:2] for d in peer.received(0x159)]
    assert grip[-2:] == [(60000, 1000), (0, 2000)]
    arm.close()
