"""A small diagnostics publisher (diagnostic_msgs on /diagnostics), one status per node.

diagnostic_updater is not installable from PyPI; this covers what the nodes need:
a level, a message and key/value figures, published at a fixed rate and at once
on errors.
"""

from __future__ import annotations

import threading
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

OK, WARN, ERROR, STALE = (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR, DiagnosticStatus.STALE)
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class NodeDiagnostics:
    """Holds the node's current status; publishes it periodically and on every error."""

    def __init__(self, node: Node, hardware_id: str = "", period_s: float = 1.0):
        self._node = node
        self._name = f"{node.get_name()}: {node.get_fully_qualified_name()}"
        self._hardware_id = hardware_id
        self._lock = threading.Lock()
        self._level, self._message, self._values = OK, "starting", {}
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._timer = node.create_timer(period_s, self.publish)

    def set(self, level: int, message: str, **values: Any) -> None:
        """Replace the status; values are merged into the key/value table."""
        with self._lock:
            changed = level != self._level or message != self._message
            self._level, self._message = level, message
            self._values.update(values)
        if level >= ERROR and changed:
            self._node.get_logger().error(message)
            self.publish()

    def update(self, **values: Any) -> None:
        """Update figures without changing level or message."""
        with self._lock:
            self._values.update(values)

    @property
    def level(self) -> int:
        return self._level

    def status(self) -> DiagnosticStatus:
        with self._lock:
            return DiagnosticStatus(
                level=self._level,
                name=self._name,
                message=self._message,
                hardware_id=self._hardware_id,
                values=[KeyValue(key=k, value=_format(v)) for k, v in sorted(self._values.items())],
            )

    def publish(self) -> None:
        msg = DiagnosticArray()
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.status = [self.status()]
        self._pub.publish(msg)
