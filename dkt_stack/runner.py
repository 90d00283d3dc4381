"""Run a resolved node graph as child processes: what ``dkt-stack up`` does.

Why processes and not one process with a MultiThreadedExecutor: it is what
``ros2 launch`` does with the same description (same argv, params files and
remappings, so a graph behaves the same both ways), a crashing or hanging node
(a CUDA error in the depth node, a lost CAN bus) cannot take the others down,
and on a small CPU the nodes run in parallel instead of sharing one GIL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import IO

from dkt_stack.config import ConfigError
from dkt_stack.graph import ResolvedGraph, ResolvedNode
from dkt_stack.ros.transport import use_large_data_profile


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


class NodeProcess:
    """One node as a child process; its output goes to a log file or, prefixed, to a stream."""

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
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        if self.log_path is not None:
            # a fresh log per run; a respawn appends to the crashed run's log
            self._log = open(self.log_path, "ab" if self.restarts else "wb")  # noqa: SIM115 - closed in stop()
            out = self._log
        else:
            self._log = None
            out = subprocess.PIPE
        self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=self._env, start_new_session=True)
        if out is subprocess.PIPE:
            threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        stream = self._stream or sys.stdout
        for line in iter(self.proc.stdout.readline, b""):
            stream.write(f"[{self.node.name}] {line.decode(errors='replace')}")
            stream.flush()

    def output(self) -> str:
        """The node's log so far (log-file mode only)."""
        if self._log is not None:
            self._log.flush()
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

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
        return self.proc.returncode


class GraphRunner:
    """Start every node of a resolved graph; watch, respawn and stop them together."""

    def __init__(self, graph: ResolvedGraph, env: dict[str, str] | None = None, log_dir: Path | None = None, stream: IO[str] | None = None):
        self.graph = graph
        self._env = env
        self._log_dir = Path(log_dir) if log_dir else None
        self._stream = stream
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
            log = self._log_dir / f"{node.name}.log" if self._log_dir else None
            self.processes.append(NodeProcess(node, Path(self._params_dir.name), env=self._env, log_path=log, stream=self._stream))
        return self

    def process(self, name: str) -> NodeProcess:
        for p in self.processes:
            if p.node.name == name:
                return p
        raise KeyError(name)

    def poll(self) -> list[NodeProcess]:
        """Respawn nodes marked ``respawn``; return the ones that exited and stay down."""
        down = []
        for p in self.processes:
            if not p.alive():
                if p.node.respawn:
                    p.restart()
                else:
                    down.append(p)
        return down

    def wait(self, duration: float | None = None, poll_s: float = 0.2) -> list[NodeProcess]:
        """Watch the nodes until one exits for good, or ``duration`` seconds pass."""
        end = None if duration is None else time.monotonic() + duration
        while end is None or time.monotonic() < end:
            down = self.poll()
            if down:
                return down
            time.sleep(poll_s)
        return []

    def stop(self, timeout: float = 10.0) -> dict[str, int]:
        codes = {p.node.name: p.stop(timeout) for p in reversed(self.processes)}
        self._params_dir.cleanup()
        return codes

    def __enter__(self) -> GraphRunner:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
