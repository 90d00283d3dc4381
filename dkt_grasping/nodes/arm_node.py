"""arm_node: the arm driver as a ROS node (PiPER over CAN, or the simulated arm).

Publishes: joint_states (sensor_msgs/JointState: joint1..joint6 in rad and
``gripper`` opening in m) at ``state_rate_hz``, /diagnostics.
Subscribes: joint_trajectory (trajectory_msgs/JointTrajectory with
joint1..joint6 + gripper, as planner_node publishes), executed on a worker
thread; a new trajectory while one runs is rejected.
Services: ~/stop (std_srvs/Trigger): quick stop; ~/enable (std_srvs/Trigger).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from dkt_grasping.arm import ArmError, create_arm, execute_plan
from dkt_grasping.arm.piper import PiperArmConfig
from dkt_grasping.arm.simulated import SimulatedArmConfig
from dkt_grasping.piper_model import JOINT_NAMES
from dkt_grasping.planning.base import GRIPPER_JOINT, GraspPlan, steps_from_arrays
from dkt_stack import conversions as cv
from dkt_stack.config import param
from dkt_stack.ros.diagnostics import ERROR, OK, WARN, DiagnosticsConfig, NodeDiagnostics
from dkt_stack.ros.main import run_node
from dkt_stack.ros.params import declare_and_read
from dkt_stack.ros.qos import qos_by_name


@dataclass
class ArmNodeParams:
    arm: Literal["piper", "simulated"] = param("simulated", help="arm backend: the PiPER over CAN or the simulated arm")
    state_rate_hz: float = param(50.0, help="joint_states publishing rate (Hz)")
    qos: str = param("reliable", help="QoS of subscriptions and publishers: sensor_data or reliable")
    piper: PiperArmConfig = param(default_factory=PiperArmConfig, help="PiPER driver settings")
    simulated: SimulatedArmConfig = param(default_factory=SimulatedArmConfig, help="simulated arm settings")
    diagnostics: DiagnosticsConfig = param(default_factory=DiagnosticsConfig, help="staleness thresholds and rate window of /diagnostics")


class ArmNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__("arm", **node_kwargs)
        self.params = p = declare_and_read(self, ArmNodeParams)
        self.diagnostics = NodeDiagnostics(self, hardware_id=f"arm:{p.arm}", config=p.diagnostics)
        self.arm = create_arm(p.arm, getattr(p, p.arm))
        self._busy = threading.Lock()
        self._worker: threading.Thread | None = None
        qos = qos_by_name(p.qos)
        self._pub = self.diagnostics.publisher(JointState, "joint_states", qos)
        self.create_subscription(JointTrajectory, "joint_trajectory", self._on_trajectory, qos)
        self.create_service(Trigger, "~/stop", self._on_stop)
        self.create_service(Trigger, "~/enable", self._on_enable)
        self._ready = self._start()
        self.create_timer(1.0 / p.state_rate_hz, self._publish_state)

    def _start(self) -> bool:
        try:
            self.arm.connect()
            self.arm.enable()
        except ArmError as exc:
            self.diagnostics.set(ERROR, f"arm not ready: {exc}")
            return False
        self.diagnostics.set(OK, "ready", backend=self.params.arm)
        return True

    def _publish_state(self) -> None:
        if not self._ready:
            return
        try:
            s = self.arm.read_state()
        except ArmError as exc:
            self.diagnostics.set(ERROR, f"cannot read the arm: {exc}")
            return
        msg = JointState(name=[*JOINT_NAMES, GRIPPER_JOINT], position=[*s.q.tolist(), s.gripper_width])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._pub.publish(msg)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        try:
            names, times, pos, vel, eff = cv.joint_trajectory_to_arrays(msg)
            if names != [*JOINT_NAMES, GRIPPER_JOINT]:
                raise ValueError(f"expected joints {[*JOINT_NAMES, GRIPPER_JOINT]}, got {names}")
            plan = GraspPlan(grasp=None, steps=steps_from_arrays(times, pos, vel, eff))
        except ValueError as exc:
            self.diagnostics.set(WARN, f"joint_trajectory rejected: {exc}")
            return
        if not self._ready or not self._busy.acquire(blocking=False):
            self.diagnostics.set(WARN, "joint_trajectory rejected: arm not ready or still executing")
            return
        self._worker = threading.Thread(target=self._execute, args=(plan,), daemon=True)
        self._worker.start()

    def _execute(self, plan: GraspPlan) -> None:
        try:
            self.diagnostics.set(OK, "executing")
            execute_plan(self.arm, plan)  # stops the arm itself on failure
            self.diagnostics.set(OK, "trajectory done")
        except ArmError as exc:
            self.diagnostics.set(ERROR, f"execution stopped: {exc}")
        finally:
            self._busy.release()

    def _on_stop(self, request, response):
        self.arm.stop()
        self.diagnostics.set(WARN, "stopped on request")
        response.success, response.message = True, "arm stopped"
        return response

    def _on_enable(self, request, response):
        self._ready = self._start()
        response.success, response.message = self._ready, "enabled" if self._ready else "enable failed (see /diagnostics)"
        return response

    def close(self) -> None:
        if self._worker is not None:
            self._worker.join(timeout=5.0)
        self.arm.close()


def main(args: list[str] | None = None) -> int:
    return run_node(ArmNode, args)
