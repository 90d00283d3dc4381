"""The common ``main()`` of every node executable."""

from __future__ import annotations

import signal
import sys
import threading
import traceback
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from dkt_stack.config import ConfigError

#: first word of the one line a node prints when it cannot start or crashes; ``dkt-stack up`` shows that line
FATAL_PREFIX = "[FATAL]"
#: exit status of a node that cannot start (bad parameters, missing weights or package): restarting cannot help
EXIT_CANNOT_START = 2

# Errors that mean "this configuration cannot run here" (a bad parameter, missing weights, a missing optional
# package, no device): one line says why. Anything else at start-up is a bug: its traceback comes first.
_EXPECTED = (ValueError, ImportError, OSError, RuntimeError)


def fatal_line(what: str, exc: BaseException) -> str:
    """The one line naming why a node stopped (the exception type only when the message alone would not say)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    reason = text if isinstance(exc, ConfigError) and text else f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return f"{FATAL_PREFIX} {what}: {reason}"


def run_node(factory: Callable[[], Node], args: list[str] | None = None, threads: int = 1) -> int:
    """Init rclpy, build the node, spin it until SIGINT/SIGTERM, then stop it in order.

    One executor thread by default: every node here does its long work (the
    model, the fit, planning, arm motion) on worker threads, so callbacks are
    short, and rclpy's MultiThreadedExecutor costs a large share of a core at
    camera rates for nothing. ``threads > 1`` gives a MultiThreadedExecutor.

    Shutdown order matters: rclpy's own signal handler would invalidate the
    context while worker threads still publish (a traceback on every Ctrl-C).
    Here a signal only asks the spin loop to end; the node's ``close()`` stops
    its threads, then the node and the context go.

    A node that cannot start (bad parameter, missing weights, missing optional
    package) prints one ``[FATAL]`` line and exits with status 2; ``dkt-stack
    up`` shows that line and does not restart it.
    """
    rclpy.init(args=sys.argv if args is None else args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        try:
            node = factory()
        except KeyboardInterrupt:  # Ctrl-C while loading (a model can take a while): just leave
            return 0
        except Exception as exc:
            if not isinstance(exc, _EXPECTED):
                traceback.print_exc()
            print(fatal_line("cannot start", exc), file=sys.stderr, flush=True)
            return EXIT_CANNOT_START
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
        executor.add_node(node)
        try:
            while not stop.is_set() and rclpy.ok():
                executor.spin_once(timeout_sec=0.25)  # returns at least 4 times a second to see the stop request
        except ExternalShutdownException:
            pass
        except Exception as exc:  # a callback raised: say so in one line after the traceback, exit non-zero (respawn may restart it)
            traceback.print_exc()
            print(fatal_line("crashed", exc), file=sys.stderr, flush=True)
            return 1
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0
