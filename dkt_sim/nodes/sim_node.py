"""sim_node: the MuJoCo Cobot Magic standing in for the front D435's driver and the follower arms' nodes.

One process, one simulated world (:class:`dkt_sim.live.SimRuntime`), several ROS nodes with the real rig's names:

* ``/camera/camera`` (realsense-ros 4.x: node ``camera`` in namespace ``camera``) publishes
  ``~/color/image_raw`` (rgb8), ``~/color/camera_info``, ``~/aligned_depth_to_color/image_raw``
  (16UC1, mm, with the D435's failures on glass and metal) and its ``camera_info``, and
  ``~/ground_truth/depth`` (32FC1, m, while someone subscribes), reliable QoS by default;
* ``/left/arm`` and ``/right/arm`` (one per arm of ``config/rig/cobot_magic_sim.yaml``), like
  arm_node: ``joint_states`` (joint1..joint6 rad + ``gripper`` opening m), ``joint_trajectory`` in
  (joint1..joint6 + gripper, as planner_node publishes; executed in physics; a bad one is refused
  with a diagnostics WARN "joint_trajectory rejected: ..." and nothing moves), services ``~/stop``
  and ``~/enable``;
* ``/sim`` (this node, its name from the launch): the parameters, ``~/reset`` (std_srvs/Trigger:
  a new scene, the next seed) and /diagnostics naming the scene.

The camera and arm nodes take their names from the rig, not from ``--ros-args`` remappings.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from dkt_grasping.piper_model import JOINT_NAMES
from dkt_grasping.planning.base import GRIPPER_JOINT
from dkt_sim.execution import TimedSequence
from dkt_sim.live import SimRuntime, SimRuntimeConfig
from dkt_sim.world import CommandError
from dkt_stack import conversions as cv
from dkt_stack.config import param
from dkt_stack.ros.diagnostics import ERROR, OK, WARN, NodeDiagnostics
from dkt_stack.ros.params import declare_and_read
from dkt_stack.ros.qos import qos_by_name


@dataclass
class SimNodeParams:
    fps: float = param(5.0, help="D435 frame rate at most (Hz); a 640x480 frame takes about 0.2-1 s to render on a CPU")
    qos: str = param("reliable", help="QoS of every publisher and subscription: reliable (realsense-ros 4.x's default) or sensor_data")
    frame_id: str = param("camera_color_optical_frame", help="optical frame id of the images")
    publish_ground_truth: bool = param(True, help="publish ~/ground_truth/depth (32FC1, m) while someone subscribes")
    state_rate_hz: float = param(50.0, help="joint_states rate of each arm (Hz)")
    sim: SimRuntimeConfig = param(default_factory=SimRuntimeConfig, help="the simulated world")


class ArmShell(Node):
    """``/<arm>/arm``: joint_states out, joint_trajectory in, ~/stop and ~/enable (the names of arm_node)."""

    def __init__(self, runtime: SimRuntime, arm: str, params: SimNodeParams, context) -> None:
        super().__init__("arm", namespace=arm, context=context, use_global_arguments=False)
        self.runtime, self.arm = runtime, arm
        self.diagnostics = NodeDiagnostics(self, hardware_id="arm:mujoco")
        qos = qos_by_name(params.qos)
        self._pub = self.create_publisher(JointState, "joint_states", qos)
        self.create_subscription(JointTrajectory, "joint_trajectory", self._on_trajectory, qos)
        self.create_service(Trigger, "~/stop", self._on_stop)
        self.create_service(Trigger, "~/enable", self._on_enable)
        self.create_timer(1.0 / params.state_rate_hz, self._publish_state)
        self.create_timer(0.5, self._report)
        self._executing = False
        self.diagnostics.set(OK, "ready", backend="mujoco")

    def _publish_state(self) -> None:
        s = self.runtime.status(self.arm)
        msg = JointState(name=[*JOINT_NAMES, GRIPPER_JOINT], position=[*s.q.tolist(), s.opening])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._pub.publish(msg)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        try:
            names, times, pos, vel, _ = cv.joint_trajectory_to_arrays(msg)
            if names != [*JOINT_NAMES, GRIPPER_JOINT]:
                raise CommandError(f"expected joints {[*JOINT_NAMES, GRIPPER_JOINT]}, got {names}")
            self.runtime.execute(self.arm, TimedSequence(times, pos, vel))
        except (CommandError, ValueError) as exc:
            self.diagnostics.set(WARN, f"joint_trajectory rejected: {exc}")
            self.get_logger().warning(f"joint_trajectory rejected: {exc}")
            return
        self._executing = True
        self.diagnostics.set(OK, "executing")

    def _report(self) -> None:
        s = self.runtime.status(self.arm)
        if self._executing and not s.busy:
            self._executing = False
            events = s.last.events if s.last is not None else []
            self.diagnostics.set(OK, "trajectory done", events=len(events), last_event=events[0].text if events else "")

    def _on_stop(self, request, response):
        self.runtime.stop(self.arm)
        self._executing = False
        self.diagnostics.set(WARN, "stopped on request")
        response.success, response.message = True, "arm stopped"
        return response

    def _on_enable(self, request, response):
        self.runtime.enable(self.arm)
        self.diagnostics.set(OK, "enabled")
        response.success, response.message = True, "enabled"
        return response


class CameraShell(Node):
    """``/camera/camera``: the D435's topics (realsense-ros 4.x names), frames rendered on a thread of their own."""

    def __init__(self, sim: SimNode, params: SimNodeParams, context) -> None:
        super().__init__("camera", namespace="camera", context=context, use_global_arguments=False)
        self.sim, self.params = sim, params
        qos = qos_by_name(params.qos)
        self._pub = {k: self.create_publisher(t, f"~/{k}", qos) for k, t in (("color/image_raw", Image), ("color/camera_info", CameraInfo),
                     ("aligned_depth_to_color/image_raw", Image), ("aligned_depth_to_color/camera_info", CameraInfo))}  # fmt: skip
        self._gt = self.create_publisher(Image, "~/ground_truth/depth", qos) if params.publish_ground_truth else None
        self.diagnostics = NodeDiagnostics(self, hardware_id="camera:mujoco")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sim-camera", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        period, index, runtime = 1.0 / self.params.fps, 0, self.sim.runtime
        try:
            while not self._stop.is_set():
                t0 = time.monotonic()
                try:
                    self.sim.apply_pending_reset()  # on this thread: the renderers' GL context lives here
                    self._publish(runtime.capture(index))
                    index += 1
                except Exception as exc:  # a render failure is reported, and the next frame tried
                    self.diagnostics.set(ERROR, f"render failed: {exc}")
                self._stop.wait(max(0.0, period - (time.monotonic() - t0)))
        finally:
            runtime.camera.close()

    def _publish(self, frame) -> None:
        header = cv.make_header(self.params.frame_id, stamp=self.get_clock().now().to_msg())
        info = cv.intrinsics_to_camera_info(frame.intrinsics, stamp=header.stamp)
        info.header.frame_id = self.params.frame_id
        colour = cv.numpy_to_image(frame.rgb, "rgb8", header)
        self._pub["color/image_raw"].publish(colour)
        self._pub["color/camera_info"].publish(info)
        self._pub["aligned_depth_to_color/image_raw"].publish(cv.numpy_to_image(cv.metres_to_depth16(frame.raw_depth_m), "16UC1", header))
        self._pub["aligned_depth_to_color/camera_info"].publish(info)
        if self._gt is not None and self._gt.get_subscription_count() > 0:
            self._gt.publish(cv.numpy_to_image(frame.depth_gt_m, "32FC1", header))
        self.diagnostics.set(OK, "streaming", frame=frame.frame_index, sim_time_s=round(frame.sim_time_s, 3))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10.0)


class SimNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__("sim", **node_kwargs)
        self.params = p = declare_and_read(self, SimNodeParams)
        self.diagnostics = NodeDiagnostics(self, hardware_id="sim:mujoco")
        self.runtime = SimRuntime(p.sim).start()
        self._reset_lock, self._pending_reset = threading.Lock(), False
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.children: list[Node] = [ArmShell(self.runtime, arm, p, self.context) for arm in self.runtime.arms]
        self.children.append(CameraShell(self, p, self.context))
        self._describe()

    def _describe(self) -> None:
        scene = self.runtime.scene
        objects = ", ".join(f"{o.name} ({o.surface})" for o in scene.objects)
        self.diagnostics.set(OK, f"seed {self.runtime.seed}: target {scene.target_object.name}", seed=self.runtime.seed, objects=objects)

    def _on_reset(self, request, response):
        with self._reset_lock:
            self._pending_reset = True
        response.success, response.message = True, "a new scene is drawn before the next camera frame"
        return response

    def apply_pending_reset(self) -> None:
        with self._reset_lock:
            if not self._pending_reset:
                return
            self._pending_reset = False
        self.runtime.reset()
        self._describe()

    def close(self) -> None:
        for child in self.children:
            close = getattr(child, "close", None)
            if close is not None:
                close()
        self.runtime.close()


def main(args: list[str] | None = None) -> int:
    """Like :func:`dkt_stack.ros.main.run_node`, spinning the camera and arm nodes too."""
    import sys

    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from dkt_stack.config import ConfigError

    rclpy.init(args=sys.argv if args is None else args)
    node = None
    try:
        try:
            node = SimNode()
        except (ConfigError, ValueError) as exc:
            print(f"[ERROR] {exc}", file=sys.stderr)
            return 2
        executor = SingleThreadedExecutor()
        for n in (node, *node.children):
            executor.add_node(n)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.close()
            for n in (*node.children, node):
                n.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0
