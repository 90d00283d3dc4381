"""A real-ROS harness: rclpy nodes in-process and in subprocesses (tests, demo, benchmarks).

No mocking: messages travel over Fast DDS on localhost. Used by the pytest
fixtures in ``test/conftest.py`` and usable in a user's own tests.

* :func:`isolate_ros_environment` gives the process a unique ``ROS_DOMAIN_ID``
  and localhost-only discovery (call before rclpy is initialised).
* :class:`RosHarness` owns an rclpy Context and an executor spinning
  on a background thread; :meth:`RosHarness.collect` subscribes and waits for
  messages with a timeout.
* Child-process nodes use :class:`dkt_stack.runner.NodeProcess`, the same
  code ``dkt-stack up`` runs graphs with.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile

from dkt_stack.ros.transport import use_large_data_profile


def isolate_ros_environment(domain_id: int | None = None) -> int:
    """Pick a ROS_DOMAIN_ID for this process (and its children) and keep discovery on localhost."""
    if domain_id is None:
        domain_id = 1 + os.getpid() % 100  # 1..100: valid with the default port mapping
    os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.pop("ROS_LOCALHOST_ONLY", None)  # deprecated; conflicts with the range above
    use_large_data_profile()
    return domain_id


class MessageCollector:
    """Messages received on one topic, with a condition to wait on."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.receive_times: list[float] = []  #: time.monotonic() at arrival
        self.receive_wall_ns: list[int] = []  #: time.time_ns() at arrival (comparable with header stamps)
        self._cond = threading.Condition()

    def __call__(self, msg: Any) -> None:
        with self._cond:
            self.receive_wall_ns.append(time.time_ns())
            self.messages.append(msg)
            self.receive_times.append(time.monotonic())
            self._cond.notify_all()

    def wait(self, count: int = 1, timeout: float = 10.0, predicate: Callable[[list[Any]], bool] | None = None) -> list[Any]:
        """Block until ``count`` messages (or ``predicate`` holds); raise TimeoutError naming what arrived."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (predicate(self.messages) if predicate else len(self.messages) >= count):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"waited {timeout:.1f} s for {count} message(s), got {len(self.messages)}")
                self._cond.wait(remaining)
            return list(self.messages)


class RosHarness:
    """An isolated rclpy Context with a background executor."""

    def __init__(self, threads: int = 1) -> None:
        use_large_data_profile()  # no-op when set already; must precede this process's first rclpy.init
        self.context = Context()
        rclpy.init(context=self.context)
        # one thread by default: the probe's callbacks are short, and rclpy's multi-threaded executor is CPU-hungry
        self.executor = (
            MultiThreadedExecutor(num_threads=threads, context=self.context) if threads > 1 else SingleThreadedExecutor(context=self.context)
        )
        self._nodes: list[Node] = []
        self.probe = self.add_node(Node("test_probe", context=self.context))
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # the executor raises when the context shuts down under it
            if self.context.ok():
                raise

    def add_node(self, node: Node) -> Node:
        self._nodes.append(node)
        self.executor.add_node(node)
        return node

    def collect(self, msg_type: Any, topic: str, qos: QoSProfile | int = 10) -> MessageCollector:
        """Subscribe the probe node to ``topic`` and return the collector."""
        collector = MessageCollector()
        self.probe.create_subscription(msg_type, topic, collector, qos)
        return collector

    def publisher(self, msg_type: Any, topic: str, qos: QoSProfile | int = 10):
        return self.probe.create_publisher(msg_type, topic, qos)

    def wait_for_subscribers(self, publisher, count: int = 1, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while publisher.get_subscription_count() < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no subscriber on {publisher.topic_name} after {timeout:.1f} s")
            time.sleep(0.02)

    def call(self, client, request, timeout: float = 10.0):
        """Call a service from the probe (the executor thread does the spinning)."""
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"service {client.srv_name} not available after {timeout:.1f} s")
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"service {client.srv_name} did not answer in {timeout:.1f} s")
            time.sleep(0.01)
        return future.result()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        for node in self._nodes:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        if self.context.ok():
            rclpy.shutdown(context=self.context)
        self._thread.join(timeout=5.0)
