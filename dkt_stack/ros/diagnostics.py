"""A node's status on /diagnostics (diagnostic_msgs), with the health of its streams.

diagnostic_updater is not installable from PyPI; this covers what the nodes need:

* the node's own level, message and key/value figures (:meth:`NodeDiagnostics.set`,
  :meth:`NodeDiagnostics.update`);
* for every input subscribed through :meth:`NodeDiagnostics.subscribe` and every
  output created with :meth:`NodeDiagnostics.publisher`: the rate, the age of the
  last message and, for inputs, the messages lost in the DDS queue or transport
  (:mod:`dkt_stack.ros.stream_monitor`). A silent input turns the status WARN after
  ``stale_warn_s`` and ERROR after ``stale_error_s``; a stamp going backwards is a
  WARN for ``jump_hold_s``; heavy losses are a WARN;
* publishing on a steady-clock timer (so the status goes stale-ERROR even when a
  played bag's /clock stops) and at once when the node reports an error.

The published level is the worst of the node's own level and its streams' levels.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile

from dkt_stack.ros.qos import sensor_subscription_qos
from dkt_stack.ros.stream_monitor import DiagnosticsConfig, StreamMonitor

OK, WARN, ERROR, STALE = (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR, DiagnosticStatus.STALE)
LEVEL_NAMES = {OK: "OK", WARN: "WARN", ERROR: "ERROR", STALE: "STALE"}

__all__ = ["ERROR", "LEVEL_NAMES", "OK", "STALE", "WARN", "DiagnosticsConfig", "MonitoredPublisher", "NodeDiagnostics"]


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _level(value: int | bytes) -> int:
    return value[0] if isinstance(value, bytes) else int(value)


def _header_stamp_ns(msg: Any) -> int | None:
    header = getattr(msg, "header", msg)  # a std_msgs/Header message is its own header
    stamp = getattr(header, "stamp", None)
    return None if stamp is None else int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class MonitoredPublisher:
    """A publisher whose messages are counted for the node's diagnostics (rate and age of the output)."""

    def __init__(self, publisher, monitor: StreamMonitor):
        self._publisher, self.monitor = publisher, monitor

    def publish(self, msg: Any) -> None:
        self._publisher.publish(msg)
        self.monitor.record(time.monotonic(), _header_stamp_ns(msg))

    def __getattr__(self, name: str) -> Any:  # get_subscription_count, topic_name, handle, ...
        return getattr(self._publisher, name)


class NodeDiagnostics:
    """Holds the node's status and stream monitors; publishes them periodically and on every new error."""

    def __init__(self, node: Node, hardware_id: str = "", period_s: float | None = None, config: DiagnosticsConfig | None = None):
        self._node = node
        self.config = config or DiagnosticsConfig()
        self._name = f"{node.get_name()}: {node.get_fully_qualified_name()}"
        self._hardware_id = hardware_id
        self._lock = threading.Lock()
        self._level, self._message, self._values = OK, "starting", {}
        self._streams: list[StreamMonitor] = []
        self._logged_level = 0
        self._logged_message = ""
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        period = period_s if period_s is not None else self.config.period_s
        # steady clock: with use_sim_time a ROS-time timer stops with /clock, and so would the staleness reports
        self._timer = node.create_timer(period, self.publish, clock=Clock(clock_type=ClockType.STEADY_TIME))

    # ------------------------------------------------------------------ streams

    def subscribe(
        self,
        msg_type: Any,
        topic: str,
        callback: Callable[[Any], None],
        qos: QoSProfile | None = None,
        *,
        stale: bool = True,
        jump_note: str = "",
        **kwargs: Any,
    ):
        """``node.create_subscription`` whose messages feed an input monitor before ``callback`` runs.

        Args:
            qos: default best effort with a small queue (a sensor stream: accepts reliable and best-effort publishers).
            stale: silence on this input makes the node WARN/ERROR (False for commands that come when they come).
            jump_note: what the node does when the stamps jump back, appended to the warning.
        """
        monitor = StreamMonitor(topic, "in", self.config, stale=stale, jump_note=jump_note, now=time.monotonic())

        def on_message(msg: Any, info: Any) -> None:
            gid = info.get("publisher_gid") if info else None
            jumped = monitor.record(
                time.monotonic(), _header_stamp_ns(msg), info.get("publication_sequence_number") if info else None, bytes(gid["data"]) if gid else b""
            )
            if jumped:
                self._node.get_logger().warning(jumped)
                self._logged_message = jumped
            callback(msg)

        sub = self._node.create_subscription(msg_type, topic, on_message, qos if qos is not None else sensor_subscription_qos(), **kwargs)
        monitor.topic = sub.topic_name
        with self._lock:
            self._streams.append(monitor)
        return sub

    def publisher(self, msg_type: Any, topic: str, qos: QoSProfile | int, *, stale: bool = False) -> MonitoredPublisher:
        """``node.create_publisher`` whose messages feed an output monitor (``stale``: silence is WARN/ERROR)."""
        pub = self._node.create_publisher(msg_type, topic, qos)
        monitor = StreamMonitor(pub.topic_name, "out", self.config, stale=stale, now=time.monotonic())
        with self._lock:
            self._streams.append(monitor)
        return MonitoredPublisher(pub, monitor)

    # ------------------------------------------------------------------ status

    def set(self, level: int, message: str, **values: Any) -> None:
        """Replace the node's own status; values are merged into the key/value table."""
        with self._lock:
            changed = level != self._level or message != self._message
            self._level, self._message = level, message
            self._values.update(values)
        if _level(level) >= _level(ERROR) and changed:
            self._node.get_logger().error(message)
            self.publish()

    def update(self, **values: Any) -> None:
        """Update figures without changing level or message."""
        with self._lock:
            self._values.update(values)

    @property
    def level(self) -> int:
        """The node's own level (without the streams'; see :meth:`status` for the published one)."""
        return self._level

    def status(self, now: float | None = None) -> DiagnosticStatus:
        now = time.monotonic() if now is None else now
        with self._lock:
            node_level, node_message, values = self._level, self._message, dict(self._values)
            streams = list(self._streams)
        healths = [m.health(now) for m in streams]
        for h in healths:
            values.update(h.figures())
        own = _level(node_level)
        level = max([own, *(h.level for h in healths)])
        messages = [h.message for h in healths if h.level == level and h.message]
        if own == level or not messages:
            messages.append(node_message)
        return DiagnosticStatus(
            level=bytes([level]),
            name=self._name,
            message="; ".join(messages),
            hardware_id=self._hardware_id,
            values=[KeyValue(key=k, value=_format(v)) for k, v in sorted(values.items())],
        )

    def publish(self) -> None:
        status = self.status()
        level = _level(status.level)
        if level != self._logged_level and level > _level(self._level) and status.message != self._logged_message:
            # stream trouble is logged once per change of level; two call sites: rclpy refuses one logging at two severities
            if level >= _level(ERROR):
                self._node.get_logger().error(status.message)
            else:
                self._node.get_logger().warning(status.message)
            self._logged_message = status.message
        self._logged_level = level
        msg = DiagnosticArray()
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.status = [status]
        try:
            self._pub.publish(msg)
        except Exception:  # the context is shutting down under a worker thread's error report: nothing left to tell
            if self._node.context.ok():
                raise
