"""grasp_node: point clouds in, ranked grasps out.

Subscribes: points (sensor_msgs/PointCloud2, camera optical frame, metres).
Publishes: grasps (geometry_msgs/PoseArray in ``base_frame``, best first, PiPER
gripper convention z = approach, y = closing), grasp_info
(std_msgs/Float32MultiArray, one row [width m, score, depth m] per pose),
scene (PointCloud2 of the workspace cloud in ``base_frame``, for the planner),
grasps/markers (MarkerArray for rviz), /diagnostics.
Service: ~/detect (std_srvs/Trigger) computes grasps on the latest cloud.
By default grasps are computed only on request: planner_node plans whenever
grasps arrive and arm_node executes what it plans, so detecting on every cloud
(``continuous: true``) makes the arm act on its own. The camera pose in the
base frame is a parameter (hand-eye result).
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

from dkt_grasping.grasp_detection import CloudError, create_grasp_detector
from dkt_grasping.grasp_detection.antipodal import AntipodalConfig
from dkt_grasping.grasp_detection.anygrasp import AnyGraspConfig
from dkt_grasping.workspace import WorkspaceLimits
from dkt_stack import conversions as cv
from dkt_stack.config import ConfigError, param
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
    workspace: WorkspaceLimits = param(default_factory=WorkspaceLimits, help="base-frame box for grasp centres")
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


def grasp_info_message(grasps) -> Float32MultiArray:
    """Rows [width m, score, depth m], one per grasp, as a 2-D Float32MultiArray."""
    msg = Float32MultiArray()
    msg.layout.dim = [
        MultiArrayDimension(label="grasp", size=len(grasps), stride=3 * len(grasps)),
        MultiArrayDimension(label="width_score_depth", size=3, stride=3),
    ]
    msg.data = [float(v) for g in grasps for v in (g.width, g.score, g.depth)]
    return msg


class GraspNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__("grasp", **node_kwargs)
        self.params = p = declare_and_read(self, GraspNodeParams)
        if len(p.camera_pose) != 7:
            raise ConfigError(f"expected 7 numbers (x y z qx qy qz qw), got {p.camera_pose}", key="camera_pose")
        self.T_base_camera = make_transform(quat_to_matrix(p.camera_pose[3:]), p.camera_pose[:3])
        self.diagnostics = NodeDiagnostics(self, hardware_id=f"grasp:{p.detector}", config=p.diagnostics)
        self.detector = create_grasp_detector(p.detector, getattr(p, p.detector))
        qos = qos_by_name(p.qos)
        self._pub = self.create_publisher(PoseArray, "grasps", qos)
        self._pub_info = self.create_publisher(Float32MultiArray, "grasp_info", qos)
        self._pub_scene = self.create_publisher(PointCloud2, "scene", qos)
        self._pub_markers = self.create_publisher(MarkerArray, "grasps/markers", 10)
        self._busy = threading.Lock()
        self._dropped = 0
        self._latest: PointCloud2 | None = None
        self.diagnostics.subscribe(PointCloud2, "points", self._on_points, qos_by_name(p.points_qos))
        self.create_service(Trigger, "~/detect", self._on_detect, callback_group=ReentrantCallbackGroup())
        self.diagnostics.set(OK, "waiting for points", detector=p.detector)

    def _on_points(self, msg: PointCloud2) -> None:
        self._latest = msg
        if self.params.continuous:
            self._detect(msg)

    def _on_detect(self, request, response):
        if self._latest is None:
            response.success, response.message = False, "no cloud received yet on points"
            return response
        n = self._detect(self._latest, wait=True)
        response.success = bool(n)
        response.message = f"{n} grasps" if n else "no grasp found (see diagnostics)"
        return response

    def _detect(self, msg: PointCloud2, wait: bool = False) -> int:
        """Detect and publish; returns the number of grasps (0 on failure)."""
        if not self._busy.acquire(blocking=wait):  # still detecting on the previous cloud: keep latency low
            self._dropped += 1
            self.diagnostics.update(clouds_dropped=self._dropped)
            return 0
        try:
            xyz, rgb = cv.cloud_to_points(msg)
            t0 = time.perf_counter()
            grasps = self.detector.detect(xyz, rgb, self.T_base_camera, self.params.workspace)
            ms = (time.perf_counter() - t0) * 1000
        except (CloudError, cv.ConversionError) as exc:
            self.diagnostics.set(WARN, f"points: {exc}")
            return 0
        except Exception as exc:  # a detector failure must not kill the node; report it
            self.diagnostics.set(ERROR, f"grasp detection failed: {exc}")
            return 0
        finally:
            self._busy.release()
        header = cv.make_header(self.params.base_frame, stamp=msg.header.stamp)
        # Scene and info first: planner_node plans when the poses arrive.
        base_pts = transform_points(self.T_base_camera, xyz[np.all(np.isfinite(xyz), axis=1)])
        self._pub_scene.publish(cv.points_to_cloud(base_pts.astype(np.float32), header=header))
        self._pub_info.publish(grasp_info_message(grasps))
        self._pub.publish(cv.matrices_to_pose_array([g.pose for g in grasps], header))
        self._pub_markers.publish(grasp_markers(grasps[: self.params.markers], header))
        self.diagnostics.set(OK if grasps else WARN, f"{len(grasps)} grasps" if grasps else "no grasp found")
        self.diagnostics.update(detect_ms=ms, grasps=len(grasps), best_score=grasps[0].score if grasps else 0.0)
        return len(grasps)


def main(args: list[str] | None = None) -> int:
    return run_node(GraspNode, args)
