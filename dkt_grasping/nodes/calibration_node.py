"""calibration_node: hand-eye calibration on the rig graph (the front camera to an arm base, or a wrist camera to its flange).

Subscribes: color/image_raw, color/camera_info (the calibrating camera),
joint_states (sensor_msgs/JointState of joint1..joint6, + ``gripper``).
Publishes: joint_trajectory (automatic collection, to arm_node, as
planner_node does), /diagnostics.
Services (std_srvs/Trigger):
  ~/capture                  take a sample now (the arm held still: leader arm or teach mode)
  ~/confirm_workspace_clear  the operator confirms the workspace is clear; needed before ~/collect_auto moves the arm
  ~/collect_auto             visit the planned poses and capture at each (runs in the background)
  ~/stop                     stop the automatic collection after the current motion
  ~/solve                    calibrate from the session and, with ``write_rig``, write the rig file
  ~/verify                   compare the rig file's calibration with the session's samples (purpose: verify)
The samples live in the session folder (written as they come); restarting
with the same ``session_dir`` continues the session. ``dkt-stack calibrate
collect`` runs this node in-process and drives it from the terminal.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

import numpy as np
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from dkt_grasping.calibration import workflow
from dkt_grasping.calibration.collection import Collector, describe, run_auto
from dkt_grasping.calibration.config import load_calibration_config
from dkt_grasping.calibration.detection import SampleRejected
from dkt_grasping.calibration.live import LiveRig, LiveRigConfig
from dkt_grasping.calibration.poses import table_points
from dkt_grasping.piper_model import JOINT_NAMES
from dkt_grasping.planning.base import GRIPPER_JOINT
from dkt_stack import conversions as cv
from dkt_stack.config import param, to_dict
from dkt_stack.ros.diagnostics import ERROR, OK, WARN, NodeDiagnostics
from dkt_stack.ros.main import run_node
from dkt_stack.ros.params import declare_and_read
from dkt_stack.ros.qos import qos_by_name

#: The automatic poses leave the grasping workspace box: the planner gets a box as large as the arm's reach.
REACH_WORKSPACE = {"x_min": -0.7, "x_max": 0.7, "y_min": -0.7, "y_max": 0.7, "z_min": -0.05, "z_max": 0.8}


@dataclass
class CalibrationNodeParams:
    mode: Literal["eye_to_hand", "eye_in_hand"] = param("eye_to_hand", help="eye_to_hand: front camera to arm base; eye_in_hand: wrist camera to flange")
    arm: str = param("left", help="the arm (a key of the rig file's arms)")
    rig: str = param("cobot_magic", help="rig file: a shipped name or a path; the result is written into it")
    config_file: str = param("", help="calibration YAML (board, detection, solver, poses); empty: config/calibration/<mode>.yaml")
    session_dir: str = param("", help="session folder; empty: ~/.local/share/dkt_stack/calibration/<rig>_<arm>_<mode>_<date>")
    purpose: Literal["calibrate", "verify"] = param("calibrate", help="collect samples to calibrate, or to verify the rig file's calibration")
    write_rig: bool = param(True, help="~/solve writes the result into the rig file (when it has no problems)")
    qos: str = param("reliable", help="QoS of joint_states and joint_trajectory: sensor_data or reliable")
    image_qos: str = param("sensor_data", help="QoS of the camera subscriptions (camera_node publishes sensor_data)")
    live: LiveRigConfig = param(default_factory=LiveRigConfig, help="when the arm counts as still, and timeouts")


class CalibrationNode(Node):
    def __init__(self, **node_kwargs) -> None:
        from dkt_grasping.planning import create_planner

        super().__init__("calibration", **node_kwargs)
        self.params = p = declare_and_read(self, CalibrationNodeParams)
        self.config = load_calibration_config(p.config_file or p.mode)
        self.kin = self.config.arm.kinematics()
        planner = create_planner("cpu", {"workspace": REACH_WORKSPACE, "arm": to_dict(self.config.arm)})
        self.live = LiveRig(p.live, planner=planner, kinematics=self.kin, send_trajectory=self._send, scene_points=table_points(self.config.poses))
        self.diagnostics = NodeDiagnostics(self, hardware_id=f"calibration:{p.arm}:{p.mode}")
        qos = qos_by_name(p.qos)
        self._traj_pub = self.create_publisher(JointTrajectory, "joint_trajectory", qos)
        image_qos = qos_by_name(p.image_qos)
        self.create_subscription(CameraInfo, "color/camera_info", lambda m: self.live.on_camera_info(cv.camera_info_to_intrinsics(m)), image_qos)
        self.create_subscription(Image, "color/image_raw", self._on_image, image_qos)
        self.create_subscription(JointState, "joint_states", self._on_joints, qos)
        group = ReentrantCallbackGroup()  # a capture waits for images while other callbacks keep flowing
        for name, handler in (
            ("capture", self._srv_capture), ("confirm_workspace_clear", self._srv_confirm), ("collect_auto", self._srv_auto),
            ("stop", self._srv_stop), ("solve", self._srv_solve), ("verify", self._srv_verify),
        ):  # fmt: skip
            self.create_service(Trigger, f"~/{name}", handler, callback_group=group)
        self._lock = threading.Lock()
        self._collector: Collector | None = None
        self._clear_confirmed = False
        self._auto: threading.Thread | None = None
        self.diagnostics.set(OK, "waiting for images, camera_info and joint_states", mode=p.mode, arm=p.arm)

    # -- inputs ----------------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        image = cv.image_to_numpy(msg)
        image = image if msg.encoding in ("mono8", "8UC1") else cv.to_rgb8(image, msg.encoding)
        self.live.on_image(image, cv.stamp_to_ns(msg.header.stamp))

    def _on_joints(self, msg: JointState) -> None:
        index = {n: i for i, n in enumerate(msg.name)}
        if all(n in index for n in JOINT_NAMES):
            gripper = msg.position[index[GRIPPER_JOINT]] if GRIPPER_JOINT in index else None
            self.live.on_joints(np.array([msg.position[index[n]] for n in JOINT_NAMES]), gripper)

    def _send(self, traj, gripper: float) -> None:
        pos = np.column_stack([traj.positions, np.full(len(traj.times), gripper)])
        vel = np.column_stack([traj.velocities, np.zeros(len(traj.times))])
        self._traj_pub.publish(cv.arrays_to_joint_trajectory([*JOINT_NAMES, GRIPPER_JOINT], traj.times, pos, vel))

    # -- the session -------------------------------------------------------------------------
    def collector(self) -> Collector:
        """The session's collector, started on first use (it needs the camera intrinsics)."""
        with self._lock:
            if self._collector is None:
                p = self.params
                folder = p.session_dir or workflow.default_session_dir(p.rig, p.arm, p.mode, p.purpose)
                session = workflow.start_session(folder, p.mode, p.arm, p.rig, self.config, self.live.intrinsics, p.purpose)
                self._collector = Collector(session, self.config, self.kin)
                self.diagnostics.update(session=str(session.folder), samples=len(session.samples))
            return self._collector

    # -- services ----------------------------------------------------------------------------
    def _srv_capture(self, _req, res):
        try:
            collector = self.collector()
            sample = collector.capture(self.live)
            res.success, res.message = True, describe(sample, len(collector.session.samples) - 1) + "; " + collector.coverage_hint()
        except SampleRejected as exc:
            res.success, res.message = False, f"rejected: {exc.reason}"
        except Exception as exc:  # report, keep serving (no image yet, config problems, a full disk...)
            res.success, res.message = False, str(exc)
        self.diagnostics.set(OK if res.success else WARN, res.message, samples=len(self._collector.session.samples) if self._collector else 0)
        return res

    def _srv_confirm(self, _req, res):
        self._clear_confirmed = True
        res.success, res.message = True, "workspace confirmed clear: ~/collect_auto may move the arm once"
        return res

    def _srv_auto(self, _req, res):
        if self._auto is not None and self._auto.is_alive():
            res.success, res.message = False, "automatic collection already running"
        elif not self._clear_confirmed:
            res.success, res.message = False, "call ~/confirm_workspace_clear first (the arm will move)"
        else:
            self._clear_confirmed, self.live.stopped = False, False
            self._auto = threading.Thread(target=self._run_auto, daemon=True)
            self._auto.start()
            res.success, res.message = True, "automatic collection started (progress on /diagnostics)"
        return res

    def _run_auto(self) -> None:
        try:
            collector = self.collector()
            plan = workflow.plan_poses(collector.session, self.config, self.live.current_q(), self.kin)
            qs = plan if isinstance(plan, list) else plan.qs
            if len(qs) < 3:
                raise ValueError("no usable pose plan: " + "; ".join(getattr(plan, "notes", [])))
            summary = run_auto(collector, self.live, self.live, qs, lambda _q: True, lambda m: self.diagnostics.set(OK, m))
            self.diagnostics.set(OK, f"automatic collection done: {summary.accepted} accepted, {summary.rejected} rejected, "
                                 f"{summary.failed_moves} poses not reached", samples=len(collector.session.samples))  # fmt: skip
        except Exception as exc:  # the run stops; what was collected stays in the session
            self.diagnostics.set(ERROR, f"automatic collection stopped: {exc}")

    def _srv_stop(self, _req, res):
        self.live.stopped = True
        res.success, res.message = True, "stopping after the current motion"
        return res

    def _srv_solve(self, _req, res):
        try:
            collector = self.collector()
            result = workflow.solve_session(collector.session, self.config, self.kin)
            message = workflow.report_text(result, collector.session).splitlines()[-1] if result.problems else f"solved ({result.method})"
            if self.params.write_rig and result.ok:
                update = workflow.apply_result(result, collector.session)
                message += f"; wrote {update.key} of arm {update.arm} into {update.path}"
            res.success, res.message = result.ok, message
        except Exception as exc:  # degenerate pose sets, too few samples: the message says which
            res.success, res.message = False, str(exc)
        self.diagnostics.set(OK if res.success else WARN, res.message)
        return res

    def _srv_verify(self, _req, res):
        try:
            result = workflow.verify_session(self.collector().session, self.config, kinematics=self.kin)
            res.success, res.message = result.passed, result.text().splitlines()[0] + f" (median {result.median_mm:.2f} mm)"
        except Exception as exc:  # no calibration yet, no usable samples: the message says which
            res.success, res.message = False, str(exc)
        self.diagnostics.set(OK if res.success else WARN, res.message)
        return res


def main(args: list[str] | None = None) -> int:
    return run_node(CalibrationNode, args, threads=2)
