"""What ``dkt-stack up`` sees of its graph over ROS: every node's latest /diagnostics status.

The supervisor reads the nodes' own reports (level, message, output rates from
:class:`dkt_stack.ros.diagnostics.NodeDiagnostics`) to print one line per node,
and publishes its own status (which node is alive, restarting or down, and how
often it was restarted) on /diagnostics under ``dkt-stack up: /<graph>``, so
``dkt-stack up GRAPH --status`` from another terminal shows the same.
"""

from __future__ import annotations

import threading
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from dkt_stack.ros.transport import use_large_data_profile

SUPERVISOR_PREFIX = "dkt-stack up: "
LEVEL_NAMES = {0: "OK", 1: "WARN", 2: "ERROR", 3: "STALE"}


def status_node_name(status: DiagnosticStatus) -> str:
    """The reporting node's fully qualified name (``"depth: /camera/depth"`` -> ``/camera/depth``)."""
    return status.name.partition(": ")[2] or status.name


def level_of(status: DiagnosticStatus) -> int:
    return status.level[0] if isinstance(status.level, bytes) else int(status.level)


def output_rates(status: DiagnosticStatus) -> list[tuple[str, float]]:
    """``[(topic, Hz)]`` from a node's ``out <topic> rate_hz`` figures, leaving out outputs that never published (on-demand ones)."""
    figures = {kv.key: kv.value for kv in status.values}
    out = []
    for key, value in figures.items():
        parts = key.split(" ")
        if len(parts) == 3 and parts[0] == "out" and parts[2] == "rate_hz" and figures.get(f"out {parts[1]} published") != "0":
            try:
                out.append((parts[1], float(value)))
            except ValueError:
                continue
    return out


class GraphMonitor:
    """Subscribes to /diagnostics in its own rclpy context (no signal handlers: the caller owns Ctrl-C)."""

    def __init__(self, node_name: str = "dkt_stack_up") -> None:
        use_large_data_profile()
        self.context = Context()
        rclpy.init(args=[], context=self.context, signal_handler_options=SignalHandlerOptions.NO)  # not our argv: name:=value is no remap
        self.node = Node(node_name, context=self.context)
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[float, DiagnosticStatus]] = {}
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 100)
        self._pub = self.node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="graph-monitor", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:  # the context was shut down under the executor
            if self.context.ok():
                raise

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        now = time.monotonic()
        with self._lock:
            for status in msg.status:
                self._latest[status.name if status.name.startswith(SUPERVISOR_PREFIX) else status_node_name(status)] = (now, status)

    def latest(self) -> dict[str, tuple[float, DiagnosticStatus]]:
        """``{fully qualified node name: (monotonic arrival time, latest status)}`` (supervisors under their own name)."""
        with self._lock:
            return dict(self._latest)

    def publish(self, level: int, name: str, message: str, values: dict[str, str]) -> None:
        msg = DiagnosticArray()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.status = [
            DiagnosticStatus(
                level=bytes([level]), name=name, message=message, hardware_id="supervisor", values=[KeyValue(key=k, value=v) for k, v in values.items()]
            )
        ]
        self._pub.publish(msg)

    def close(self) -> None:
        self._executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        if self.context.ok():
            rclpy.shutdown(context=self.context)
        self._thread.join(timeout=5.0)
