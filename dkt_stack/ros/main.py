"""The common ``main()`` of every node executable."""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node

from dkt_stack.config import ConfigError


def run_node(factory: Callable[[], Node], args: list[str] | None = None, threads: int = 1) -> int:
    """Init rclpy, build the node, spin it, shut down cleanly.

    One executor thread by default: every node here does its long work (the
    model, the fit, planning, arm motion) on worker threads, so callbacks are
    short, and rclpy's MultiThreadedExecutor costs a large share of a core at
    camera rates for nothing. ``threads > 1`` gives a MultiThreadedExecutor.

    A configuration error at start-up (bad parameter) is printed as one line and
    gives exit status 2, so a launch file shows the cause instead of a traceback.
    """
    rclpy.init(args=sys.argv if args is None else args)
    node = None
    try:
        try:
            node = factory()
        except ConfigError as exc:
            print(f"[ERROR] {exc}", file=sys.stderr)
            return 2
        executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0
