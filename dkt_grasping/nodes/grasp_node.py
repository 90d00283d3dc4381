"""grasp_node: point clouds in, ranked grasps the arm can execute out.

Subscribes: points (sensor_msgs/PointCloud2, camera optical frame, metres).
Publishes: grasps (geometry_msgs/PoseArray in ``base_frame``, best first, PiPER
gripper convention z = approach, y = closing), grasp_info
(std_msgs/Float32MultiArray, one row [width m, score, depth m] per pose; the
first dimension's label says how many candidates were dropped and why),
scene (PointCloud2 of the workspace cloud in ``base_frame``, for the planner),
grasps/markers (MarkerArray for rviz), /diagnostics.
Service: ~/detect (std_srvs/Trigger) computes grasps on the latest cloud.
By default grasps are computed only on request: planner_node plans whenever
grasps arrive and arm_node executes what it plans, so detecting on every cloud
(``continuous: true``) makes the arm act on its own.

With ``check_reachability`` (default) only grasps the arm can execute are
published (:mod:`dkt_grasping.reachability`), ranked by quality and reach
margin. One arm: ``camera_pose`` (hand-eye result) and ``base_frame``. Two
arms (``arms: [left, right]``): each arm's camera pose and base frame come
from the ``rig`` description, the arm with the best executable grasp is
chosen (:mod:`dkt_grasping.arm_choice`) and the grasps go to that arm's
``<arm>/grasps``, ``<arm>/grasp_info`` and ``<arm>/scene``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
from geometry_msgs.msg import Point, PoseArray, Vector3
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import ColorRGBA, Float32MultiArray, MultiArrayDimension
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker, MarkerArray

from dkt_grasping.arm_choice import ArmOption, choose_arm
from dkt_grasping.grasp_detection import CloudError, create_grasp_detector
from dkt_grasping.grasp_detection.antipodal import AntipodalConfig
from dkt_grasping.grasp_detection.anygrasp import AnyGraspConfig
from dkt_grasping.grasp_detection.executable import ExecutableGraspDetector
from dkt_grasping.reachability import DROP_REASONS, ReachabilityChecker, ReachabilityConfig
from dkt_grasping.workspace import WorkspaceLimits
from dkt_stack import conversions as cv
from dkt_stack.config import ConfigError, param
from dkt_stack.rig import load_rig
from dkt_stack.ros.diagnostics import ERROR, OK, WARN, DiagnosticsConfig, NodeDiagnostics
from dkt_stack.ros.main import run_node
from dkt_stack.ros.params import declare_and_read
from dkt_stack.ros.qos import qos_by_name
from dkt_stack.transforms import make_transform, quat_to_matrix, transform_points


@dataclass
class GraspNodeParams:
    detector: Literal["antipodal", "anygrasp"] = param("antipodal", help="grasp detector: the open antipodal sampler or the AnyGrasp SDK")
    base_frame: str = param("base_link", help="robot base frame of the published grasps")
    camera_pose: list[float] = param(
        default_factory=lambda: [0.0, 0.0, 0.55, 1.0, 0.0, 0.0, 0.0], help="camera optical frame in the base frame: x y z (m) qx qy qz qw"
    )
    qos: str = param("reliable", help="QoS of the published grasps, info and scene: sensor_data or reliable")
    points_qos: str = param("sensor_data", help="QoS of the points subscription (metric_depth_node publishes sensor_data)")
    continuous: bool = param(False, help="detect on every cloud (true) or only when ~/detect is called (false, the safe default)")
    markers: int = param(10, help="best grasps drawn on grasps/markers")
    workspace: WorkspaceLimits = param(default_factory=WorkspaceLimits, help="base-frame box for grasp centres (each arm's own base frame)")
    check_reachability: bool = param(
        True, help="publish only grasps the arm can execute (IK for pre-grasp, grasp and lift within limits, no collision), ranked with the reach margin"
    )
    reachability: ReachabilityConfig = param(default_factory=ReachabilityConfig, help="the arm model and the executability check")
    arms: list[str] = param(
        default_factory=list, help="rig arms to choose between, e.g. [left, right]: grasps go to the chosen arm's <arm>/grasps; empty = one arm"
    )
    rig: str = param("cobot_magic", help="rig description (config/rig/<name>.yaml or a path): camera pose and base frame per arm, with arms")
    antipodal: AntipodalConfig = param(default_factory=AntipodalConfig, help="antipodal detector settings")
    anygrasp: AnyGraspConfig = param(default_factory=AnyGraspConfig, help="AnyGrasp SDK settings")
    diagnostics: DiagnosticsConfig = param(default_factory=DiagnosticsConfig, help="staleness thresholds and rate window of /diagnostics")


def grasp_markers(grasps, header) -> MarkerArray:
    """An arrow along each grasp's approach (z) ending at the grasp centre, green = best score."""
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    top = max((g.score for g in grasps), default=1.0) or 1.0
    for i, g in enumerate(grasps):
        tip = g.pose[:3, 3]
        tail = tip - 0.08 * g.pose[:3, 2]
        quality = max(0.0, min(1.0, g.score / top))
        markers.append(
            Marker(
                header=header, ns="grasps", id=i, type=Marker.ARROW, action=Marker.ADD,
                points=[Point(x=float(tail[0]), y=float(tail[1]), z=float(tail[2])), Point(x=float(tip[0]), y=float(tip[1]), z=float(tip[2]))],
                scale=Vector3(x=0.006, y=0.012, z=0.015), color=ColorRGBA(r=1.0 - quality, g=quality, b=0.1, a=0.9),
            )
        )  # fmt: skip
    return MarkerArray(markers=markers)


def grasp_info_message(grasps, dropped: dict[str, int] | None = None) -> Float32MultiArray:
    """Rows [width m, score, depth m], one per grasp, as a 2-D Float32MultiArray.

    The first dimension's label is ``grasp`` followed by the drop counts, e.g. ``grasp; dropped joint_limits=20 wrist_flip=3``.
    """
    msg = Float32MultiArray()
    label = "grasp" + ("; dropped " + " ".join(f"{k}={v}" for k, v in sorted(dropped.items())) if dropped else "")
    msg.layout.dim = [
        MultiArrayDimension(label=label, size=len(grasps), stride=3 * len(grasps)),
        MultiArrayDimension(label="width_score_depth", size=3, stride=3),
    ]
    msg.data = [float(v) for g in grasps for v in (g.width, g.score, g.depth)]
    return msg


class GraspNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__("grasp", **node_kwargs)
        self.params = p = declare_and_read(self, GraspNodeParams)
        self.diagnostics = NodeDiagnostics(self, hardware_id=f"grasp:{p.detector}", config=p.diagnostics)
        detector = create_grasp_detector(p.detector, getattr(p, p.detector))
        qos = qos_by_name(p.qos)
        # (arm name, base frame, T_base_camera) for each arm; the single arm is named ""
        if p.arms:
            rig = load_rig(p.rig)
            arms = [(name, rig.arm(name).base_frame, rig.arm(name).T_base_camera) for name in p.arms]
        else:
            if len(p.camera_pose) != 7:
                raise ConfigError(f"expected 7 numbers (x y z qx qy qz qw), got {p.camera_pose}", key="camera_pose")
            arms = [("", p.base_frame, make_transform(quat_to_matrix(p.camera_pose[3:]), p.camera_pose[:3]))]
        if len(arms) > 1 and not p.check_reachability:
            raise ConfigError("choosing between arms needs check_reachability: true", key="arms")
        self.options = [
            ArmOption(name, T, ExecutableGraspDetector(detector, ReachabilityChecker(p.reachability)) if p.check_reachability else detector, p.workspace)
            for name, _, T in arms
        ]
        self.base_frames = {name: frame for name, frame, _ in arms}
        self._pubs = {
            name: tuple(self.create_publisher(t, f"{name}/{topic}" if name else topic, qos) for t, topic in _OUTPUTS) for name, _, _ in arms
        }
        self._pub_markers = self.create_publisher(MarkerArray, "grasps/markers", 10)
        self._busy = threading.Lock()
        self._dropped = 0
        self._latest: PointCloud2 | None = None
        self.diagnostics.subscribe(PointCloud2, "points", self._on_points, qos_by_name(p.points_qos))
        self.create_service(Trigger, "~/detect", self._on_detect, callback_group=ReentrantCallbackGroup())
        self.diagnostics.set(OK, "waiting for points", detector=p.detector, arms=",".join(p.arms) or p.base_frame)

    def _on_points(self, msg: PointCloud2) -> None:
        self._latest = msg
        if self.params.continuous:
            self._detect(msg)

    def _on_detect(self, request, response):
        if self._latest is None:
            response.success, response.message = False, "no cloud received yet on points"
            return response
        n, message = self._detect(self._latest, wait=True)
        response.success, response.message = bool(n), message
        return response

    def _detect(self, msg: PointCloud2, wait: bool = False) -> tuple[int, str]:
        """Detect and publish; returns the number of grasps (0 on failure) and a one-line summary."""
        if not self._busy.acquire(blocking=wait):  # still detecting on the previous cloud: keep latency low
            self._dropped += 1
            self.diagnostics.update(clouds_dropped=self._dropped)
            return 0, "busy with the previous cloud"
        try:
            xyz, rgb = cv.cloud_to_points(msg)
            t0 = time.perf_counter()
            if len(self.options) > 1:
                choice = choose_arm(self.options, xyz, rgb)
                arm, grasps, summary = choice.arm, choice.grasps, choice.reason
                dropped = choice.per_arm[arm]["dropped"] if arm else {}
            else:
                option = self.options[0]
                arm, grasps = option.name, option.detector.detect(xyz, rgb, option.T_base_camera, option.workspace)
                last = getattr(option.detector, "last", None)
                dropped, summary = (dict(last.dropped), last.summary()) if last is not None else ({}, f"{len(grasps)} grasps")
            ms = (time.perf_counter() - t0) * 1000
        except (CloudError, cv.ConversionError) as exc:
            self.diagnostics.set(WARN, f"points: {exc}")
            return 0, f"points: {exc}"
        except Exception as exc:  # a detector failure must not kill the node; report it
            self.diagnostics.set(ERROR, f"grasp detection failed: {exc}")
            return 0, f"grasp detection failed: {exc}"
        finally:
            self._busy.release()
        drops = {f"dropped_{reason}": int(dropped.get(reason, 0)) for reason in DROP_REASONS}
        if arm is None:  # two arms and neither can execute a grasp
            self.diagnostics.set(WARN, summary)
            self.diagnostics.update(detect_ms=ms, grasps=0, **drops)
            return 0, summary
        option = next(o for o in self.options if o.name == arm)
        header = cv.make_header(self.base_frames[arm], stamp=msg.header.stamp)
        pub_scene, pub_info, pub_grasps = self._pubs[arm]
        # Scene and info first: planner_node plans when the poses arrive.
        base_pts = transform_points(option.T_base_camera, xyz[np.all(np.isfinite(xyz), axis=1)])
        pub_scene.publish(cv.points_to_cloud(base_pts.astype(np.float32), header=header))
        pub_info.publish(grasp_info_message(grasps, dropped))
        pub_grasps.publish(cv.matrices_to_pose_array([g.pose for g in grasps], header))
        self._pub_markers.publish(grasp_markers(grasps[: self.params.markers], header))
        message = (f"{arm}: " if arm else "") + (f"{len(grasps)} grasps; {summary}" if grasps else f"no executable grasp found; {summary}")
        self.diagnostics.set(OK if grasps else WARN, message)
        self.diagnostics.update(detect_ms=ms, grasps=len(grasps), best_score=grasps[0].score if grasps else 0.0, arm=arm, **drops)
        return len(grasps), message


#: (message type, topic) of each arm's outputs, in publication order: scene and info before the poses.
_OUTPUTS = ((PointCloud2, "scene"), (Float32MultiArray, "grasp_info"), (PoseArray, "grasps"))


def main(args: list[str] | None = None) -> int:
    return run_node(GraspNode, args)
