"""Run a resolved node graph as child processes and supervise them: what ``dkt-stack up`` does.

Why processes and not one process with a MultiThreadedExecutor: it is what
``ros2 launch`` does with the same description (same argv, params files and
remappings, so a graph behaves the same both ways), a crashing or hanging node
(a CUDA error in the depth node, a lost CAN bus) cannot take the others down,
and on a small CPU the nodes run in parallel instead of sharing one GIL.

Supervision (:meth:`GraphRunner.poll`): a node that exits is restarted when
its description says ``respawn``, after ``respawn_delay`` seconds, doubled
after each crash that came less than :data:`QUICK_CRASH_S` after its start (up
to :data:`MAX_RESPAWN_DELAY_S`); the other nodes keep running. A node that
cannot start (exit status 2: bad parameter, missing weights or package) is not
restarted: it would fail the same way. Every exit is reported in one line with
the node's own last word (its ``[FATAL]`` line, or the last line it printed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import IO

from dkt_stack.config import ConfigError
from dkt_stack.graph import ResolvedGraph, ResolvedNode
from dkt_stack.ros.transport import use_large_data_profile

#: a node that exits this soon after starting has crashed "quickly": its next restart waits twice as long
QUICK_CRASH_S = 10.0
#: the longest wait before a restart
MAX_RESPAWN_DELAY_S = 30.0
#: exit status of a node that cannot start (dkt_stack.ros.main.EXIT_CANNOT_START; kept here so the runner needs no rclpy)
EXIT_CANNOT_START = 2
FATAL_PREFIX = "[FATAL]"


def console_script_target(executable: str) -> str:
    """``module:function`` of an installed console script (the node executables in setup.py)."""
    matches = entry_points(group="console_scripts", name=executable)
    for ep in matches:
        return ep.value
    raise ConfigError(f"no installed executable '{executable}' (is the package installed? `make setup` / `colcon build`)")


def node_command(target: str, ros_args: list[str]) -> list[str]:
    """The argv that runs console-script ``target`` with this interpreter (venv or ROS install alike)."""
    module, func = target.split(":")
    name = module.rsplit(".", 1)[-1]
    code = f"import sys; from {module} import {func} as main; sys.argv[0] = {name!r}; sys.exit(main())"
    return [sys.executable, "-c", code, *ros_args]


def describe_exit(code: int | None) -> str:
    """``exited with status 1`` / ``killed by SIGKILL``."""
    if code is None:
        return "running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def exit_reason(lines: list[str]) -> str:
    """The node's own last word: its last ``[FATAL]`` line, else its last non-empty line (a traceback's exception line)."""
    lines = [ln.strip() for ln in lines if ln.strip()]
    for line in reversed(lines):
        if line.startswith(FATAL_PREFIX):
            return line[len(FATAL_PREFIX) :].strip()
    return lines[-1] if lines else ""


class NodeProcess:
    """One node as a child process; its output goes to a log file or, prefixed, to a stream.

    ``state`` is ``running``, ``waiting`` (crashed, restart scheduled at ``restart_at``) or ``down`` (for good).
    """

    def __init__(
        self,
        node: ResolvedNode,
        params_dir: Path,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        stream: IO[str] | None = None,
    ):
        self.node = node
        self.target = console_script_target(node.executable)
        params_file = Path(params_dir) / f"{node.fully_qualified_name.strip('/').replace('/', '__')}.yaml"
        params_file.write_text(node.params_yaml())
        self.argv = node_command(self.target, node.ros_arguments(params_file))
        self._env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        use_large_data_profile(self._env)
        self.log_path = log_path
        self._stream = stream
        self._tail: deque[str] = deque(maxlen=40)
        self.restarts = 0
        self.quick_crashes = 0
        self.state = "running"
        self.restart_at = 0.0
        self.last_exit: int | None = None
        self._start()

    def _start(self) -> None:
        self._tail.clear()
        if self.log_path is not None:
            # a fresh log per run; a respawn appends to the crashed run's log
            self._log = open(self.log_path, "ab" if self.restarts else "wb")  # noqa: SIM115 - closed in stop()
            out = self._log
        else:
            self._log = None
            out = subprocess.PIPE
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=self._env, start_new_session=True)
        self.state = "running"
        if out is subprocess.PIPE:
            self._pump_thread = threading.Thread(target=self._pump, args=(self.proc,), daemon=True)
            self._pump_thread.start()

    def _pump(self, proc: subprocess.Popen) -> None:
        stream = self._stream or sys.stdout
        for line in iter(proc.stdout.readline, b""):
            text = line.decode(errors="replace")
            self._tail.append(text)
            stream.write(f"[{self.node.name}] {text}")
            stream.flush()

    def output(self) -> str:
        """The node's log so far (log-file mode only)."""
        if self._log is not None and not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def output_tail(self) -> list[str]:
        """The last lines the node printed (this run)."""
        if self.log_path is not None:
            return self.output().splitlines()[-40:]
        thread = getattr(self, "_pump_thread", None)
        if thread is not None:
            thread.join(timeout=1.0)  # the process has exited: its last lines are on their way
        return list(self._tail)

    def exit_reason(self) -> str:
        return exit_reason(self.output_tail())

    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def restart(self) -> None:
        self.restarts += 1
        if self._log is not None:
            self._log.close()
        self._start()

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT (clean rclpy shutdown, arm disabled), then SIGKILL after ``timeout``."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self._log is not None:
            self._log.close()
        self.state = "down"
        return self.proc.returncode


class GraphRunner:
    """Start every node of a resolved graph; watch, respawn and stop them together.

    Args:
        report: called with one line per event (a node exited, is restarted, cannot start);
            default: print to stderr prefixed ``dkt-stack:``.
    """

    def __init__(
        self,
        graph: ResolvedGraph,
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
        stream: IO[str] | None = None,
        report: Callable[[str], None] | None = None,
    ):
        self.graph = graph
        self._env = env
        self._log_dir = Path(log_dir) if log_dir else None
        self._stream = stream
        self._report = report or (lambda line: print(f"dkt-stack: {line}", file=sys.stderr, flush=True))
        self._params_dir = tempfile.TemporaryDirectory(prefix=f"dkt-stack-{graph.name}-")
        self.processes: list[NodeProcess] = []

    def start(self) -> GraphRunner:
        if self._log_dir:
            self._log_dir.mkdir(parents=True, exist_ok=True)
        for node in self.graph.nodes:  # resolve every executable first: a typo starts nothing
            try:
                console_script_target(node.executable)
            except ConfigError as exc:
                raise ConfigError(f"graph '{self.graph.name}', node {node.fully_qualified_name}: {exc}") from exc
        for node in self.graph.nodes:
            log = self._log_dir / f"{node.fully_qualified_name.strip('/').replace('/', '__')}.log" if self._log_dir else None
            self.processes.append(NodeProcess(node, Path(self._params_dir.name), env=self._env, log_path=log, stream=self._stream))
        return self

    def process(self, name: str) -> NodeProcess:
        """A node by name (``depth``) or fully qualified name (``/left/arm``)."""
        for p in self.processes:
            if name in (p.node.name, p.node.fully_qualified_name):
                return p
        raise KeyError(name)

    def poll(self, now: float | None = None) -> list[NodeProcess]:
        """Handle exits and due restarts; return the nodes that went down for good in this call."""
        now = time.monotonic() if now is None else now
        down = []
        for p in self.processes:
            name = p.node.fully_qualified_name
            if p.state == "running" and not p.alive():
                p.last_exit = code = p.proc.returncode
                reason = p.exit_reason()
                why = f": {reason}" if reason else ""
                log = f" (log {p.log_path})" if p.log_path else ""
                if code == EXIT_CANNOT_START:
                    p.state = "down"
                    down.append(p)
                    why = f": {reason.removeprefix('cannot start: ')}" if reason else ""
                    self._report(f"node {name} cannot start{why}{log}")
                elif not p.node.respawn:
                    p.state = "down"
                    down.append(p)
                    self._report(f"node {name} {describe_exit(code)}{why}{log}; not restarted (respawn is off)")
                else:
                    p.quick_crashes = p.quick_crashes + 1 if now - p.started_at < QUICK_CRASH_S else 0
                    delay = min(p.node.respawn_delay * 2 ** max(p.quick_crashes - 1, 0), MAX_RESPAWN_DELAY_S)
                    p.state, p.restart_at = "waiting", now + delay
                    self._report(f"node {name} {describe_exit(code)}{why}; restarting in {delay:.1f} s")
            elif p.state == "waiting" and now >= p.restart_at:
                p.restart()
                self._report(f"node {name} restarted (restart {p.restarts}, pid {p.pid})")
        return down

    def cannot_start(self) -> list[NodeProcess]:
        """Nodes down because they could not start (exit status 2)."""
        return [p for p in self.processes if p.state == "down" and p.last_exit == EXIT_CANNOT_START]

    def all_down(self) -> bool:
        return bool(self.processes) and all(p.state == "down" for p in self.processes)

    def wait(self, duration: float | None = None, poll_s: float = 0.2, stop: threading.Event | None = None) -> list[NodeProcess]:
        """Supervise until every node is down, one cannot start, ``stop`` is set or ``duration`` seconds pass; returns the down nodes."""
        end = None if duration is None else time.monotonic() + duration
        stop = stop or threading.Event()
        while not stop.is_set() and (end is None or time.monotonic() < end):
            self.poll()
            if self.cannot_start() or self.all_down():
                break
            stop.wait(poll_s)
        return [p for p in self.processes if p.state == "down"]

    def stop(self, timeout: float = 10.0) -> dict[str, int]:
        codes = {p.node.fully_qualified_name: p.stop(timeout) for p in reversed(self.processes)}
        self._params_dir.cleanup()
        return codes

    def __enter__(self) -> GraphRunner:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
