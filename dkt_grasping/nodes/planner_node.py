"""planner_node: ranked grasps + scene + joint state in, one arm-and-gripper trajectory out.

Subscribes: grasps (PoseArray, base frame, best first), grasp_info
(Float32MultiArray rows [width m, score, depth m]), scene (PointCloud2, base
frame), joint_states (sensor_msgs/JointState of joint1..joint6).
Publishes: joint_trajectory (trajectory_msgs/JointTrajectory, joints
joint1..joint6 + ``gripper`` opening in m, gripper effort in the effort field),
/diagnostics with the planning time and which grasp of the goal set was
planned (``grasp_index``, 0 = best ranked), or the planner's refusal reason.
The grasps are a goal set: the planner executes the best one it can reach.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
from geometry_msgs.msg import PoseArray
from rclpy.node import Node
from sensor_msgs.msg import JointState, PointCloud2
from std_msgs.msg import Float32MultiArray
from trajectory_msgs.msg import JointTrajectory

from dkt_grasping.grasp import Grasp
from dkt_grasping.piper_model import JOINT_NAMES
from dkt_grasping.planning import PlanningError, create_planner
from dkt_grasping.planning.base import GRIPPER_JOINT, plan_to_arrays
from dkt_grasping.planning.cpu_planner import CpuPlannerConfig
from dkt_grasping.planning.curobo import CuroboConfig
from dkt_stack import conversions as cv
from dkt_stack.config import param
from dkt_stack.ros.diagnostics import ERROR, OK, WARN, DiagnosticsConfig, NodeDiagnostics
from dkt_stack.ros.main import run_node
from dkt_stack.ros.params import declare_and_read
from dkt_stack.ros.qos import qos_by_name


@dataclass
class PlannerNodeParams:
    planner: Literal["cpu", "curobo"] = param("cpu", help="motion planner: the CPU fallback or cuRobo")
    qos: str = param("reliable", help="QoS of subscriptions and publishers: sensor_data or reliable")
    gripper_dwell_s: float = param(0.5, help="time given to each gripper command in the published trajectory (s)")
    cpu: CpuPlannerConfig = param(default_factory=CpuPlannerConfig, help="CPU planner settings")
    curobo: CuroboConfig = param(default_factory=CuroboConfig, help="cuRobo settings")
    diagnostics: DiagnosticsConfig = param(default_factory=DiagnosticsConfig, help="staleness thresholds and rate window of /diagnostics")


def grasps_from_messages(poses: PoseArray, info: Float32MultiArray) -> list[Grasp]:
    """PoseArray + [width, score, depth] rows -> Grasps (order kept)."""
    mats = cv.pose_array_to_matrices(poses)
    rows = np.asarray(info.data, dtype=np.float64).reshape(-1, 3) if len(info.data) else np.zeros((0, 3))
    if len(rows) != len(mats):
        raise ValueError(f"grasp_info has {len(rows)} rows for {len(mats)} grasp poses")
    return [Grasp(pose=T, width=float(w), score=float(s), depth=float(d)) for T, (w, s, d) in zip(mats, rows)]


class PlannerNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__("planner", **node_kwargs)
        self.params = p = declare_and_read(self, PlannerNodeParams)
        self.diagnostics = NodeDiagnostics(self, hardware_id=f"planner:{p.planner}", config=p.diagnostics)
        self.planner = create_planner(p.planner, getattr(p, p.planner))
        qos = qos_by_name(p.qos)
        self._pub = self.create_publisher(JointTrajectory, "joint_trajectory", qos)
        self._lock = threading.Lock()
        self._busy = threading.Lock()
        self._info: Float32MultiArray | None = None
        self._scene: np.ndarray | None = None
        self._q: np.ndarray | None = None
        self._grasps: PoseArray | None = None
        self._requests = 0  # planning attempts so far: lets a client tell this attempt's outcome from a stale status
        self.create_subscription(Float32MultiArray, "grasp_info", self._on_info, qos)
        self.create_subscription(PointCloud2, "scene", self._on_scene, qos)
        self.diagnostics.subscribe(JointState, "joint_states", self._on_joints)  # a sensor stream: best effort, any publisher
        self.create_subscription(PoseArray, "grasps", self._on_grasps, qos)
        self.diagnostics.set(OK, "waiting for joint_states and grasps", planner=p.planner)

    def _on_info(self, msg: Float32MultiArray) -> None:
        with self._lock:
            self._info = msg
        self._try_plan()

    def _on_scene(self, msg: PointCloud2) -> None:
        xyz, _ = cv.cloud_to_points(msg)
        with self._lock:
            self._scene = xyz[np.all(np.isfinite(xyz), axis=1)]

    def _on_joints(self, msg: JointState) -> None:
        index = {n: i for i, n in enumerate(msg.name)}
        if all(n in index for n in JOINT_NAMES):
            with self._lock:
                self._q = np.array([msg.position[index[n]] for n in JOINT_NAMES])

    def _on_grasps(self, msg: PoseArray) -> None:
        with self._lock:
            self._grasps = msg
        self._try_plan()

    def _try_plan(self) -> None:
        """Plan once grasp poses and their info rows (same count) and a joint state are all there."""
        with self._lock:
            msg, info, scene, q = self._grasps, self._info, self._scene, self._q
            if msg is None or info is None or len(info.data) != 3 * len(msg.poses):
                return  # the other half of the pair is still on its way
            if q is None:
                self.diagnostics.set(WARN, "grasps received before joint_states; waiting")
                return
            self._grasps = self._info = None
        if not self._busy.acquire(blocking=False):
            return  # still planning for earlier grasps
        self._requests += 1
        # acknowledge at once (a client can tell "planning" from "never got the grasps")
        self.diagnostics.set(OK, f"planning request {self._requests}", plan_request=self._requests)
        try:
            grasps = grasps_from_messages(msg, info)
            t0 = time.perf_counter()
            plan = self.planner.plan_grasp(q, grasps, scene)
            ms = (time.perf_counter() - t0) * 1000
        except PlanningError as exc:
            self.diagnostics.set(WARN, f"no plan: {exc.reason}", failure=exc.kind, plan_request=self._requests)
            return
        except Exception as exc:  # report, keep serving
            self.diagnostics.set(ERROR, f"planning failed: {exc}", plan_request=self._requests)
            return
        finally:
            self._busy.release()
        times, pos, vel, eff = plan_to_arrays(plan, self.params.gripper_dwell_s)
        header = cv.make_header(msg.header.frame_id, stamp=msg.header.stamp)
        self._pub.publish(cv.arrays_to_joint_trajectory([*JOINT_NAMES, GRIPPER_JOINT], times, pos, vel, eff, header))
        # which grasp of the received PoseArray the goal set chose (0 = the best ranked)
        self.diagnostics.set(OK, f"plan published for grasp {plan.grasp_index}", failure="", plan_request=self._requests, grasp_index=plan.grasp_index)
        self.diagnostics.update(plan_ms=ms, plan_duration_s=float(times[-1]), grasp_score=plan.grasp.score)


def main(args: list[str] | None = None) -> int:
    return run_node(PlannerNode, args)
