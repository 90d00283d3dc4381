"""static_tf_node: the rig's static TF tree on /tf_static (see dkt_stack/static_transforms.py).

Publishes: /tf_static (tf2_msgs/TFMessage: reliable, transient local, depth 1, as
tf2_ros's StaticTransformBroadcaster) with camera_link -> camera optical frame
(``camera_link``) and camera optical frame -> each arm base from the rig file
(``rig``); /diagnostics with every transform as ``parent -> child: x y z qx qy qz qw``.
tf2_msgs comes with ROS from apt (the rig) but has no PyPI wheel: without it the
node says once that TF is unavailable, and keeps the transforms in its diagnostics.
"""

from __future__ import annotations

from dataclasses import dataclass

from rclpy.node import Node

from dkt_stack import conversions as cv
from dkt_stack.config import ConfigError, param
from dkt_stack.rig import load_rig
from dkt_stack.ros.diagnostics import OK, WARN, NodeDiagnostics
from dkt_stack.ros.main import run_node
from dkt_stack.ros.params import declare_and_read
from dkt_stack.ros.qos import static_tf_qos
from dkt_stack.static_transforms import rig_static_transforms


@dataclass
class StaticTfNodeParams:
    rig: str = param("", help="rig file (shipped name or path): camera optical frame -> each arm base from its camera_pose; empty = no arms")
    camera_link: bool = param(True, help="publish camera_link -> optical frame as realsense2_camera does (false when the driver publishes it)")


class StaticTfNode(Node):
    def __init__(self) -> None:
        super().__init__("static_tf")
        p = declare_and_read(self, StaticTfNodeParams)
        try:
            rig = load_rig(p.rig) if p.rig else None
            self.transforms = rig_static_transforms(rig, camera_link=p.camera_link)
        except ValueError as exc:  # ConfigError included: a bad rig file, or frames that do not form a tree
            raise ConfigError(f"rig {p.rig!r}: {exc}", source=f"node {self.get_fully_qualified_name()} parameters") from exc
        self.diagnostics = NodeDiagnostics(self, hardware_id="tf")
        figures = {f"{t.parent} -> {t.child}": " ".join(f"{v:.6g}" for v in t.pose7) for t in self.transforms}
        stamp = self.get_clock().now().to_msg()
        self.messages = [cv.matrix_to_transform_stamped(t.T, t.parent, t.child, stamp) for t in self.transforms]
        try:
            from tf2_msgs.msg import TFMessage
        except ImportError:
            text = "TF unavailable: tf2_msgs is not installed (ROS 2 from apt has it; the PyPI wheels do not): /tf_static not published"
            self.get_logger().warning(text)
            self.diagnostics.set(WARN, text, transforms=len(self.transforms), **figures)
            return
        # transient local: rviz and tf2 listeners started later still get the tree; kept alive by this node
        self._pub = self.create_publisher(TFMessage, "/tf_static", static_tf_qos())
        self._pub.publish(TFMessage(transforms=self.messages))
        self.get_logger().info(f"published {len(self.messages)} static transform(s) on /tf_static")
        self.diagnostics.set(OK, f"{len(self.messages)} static transform(s) on /tf_static", transforms=len(self.transforms), **figures)


def main(args: list[str] | None = None) -> int:
    return run_node(StaticTfNode, args)
