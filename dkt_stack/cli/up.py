"""``dkt-stack up GRAPH [name:=value ...]``: start a node graph without ``ros2 launch``, and supervise it.

GRAPH is a shipped graph name (``perception``, ``cobot_magic``, ...) or a path to
a graph YAML file; ``name:=value`` sets its arguments exactly like
``ros2 launch dkt_stack GRAPH.launch.py name:=value``. Each node runs as its own
process (see :mod:`dkt_stack.runner`): a node that crashes is restarted with
back-off when its description says ``respawn`` while the others keep running; a
node that cannot start says why in one line and stops the graph (exit status 2).
Every ``--status-every`` seconds one line per node says whether it is alive or
was restarted, its diagnostics level and its output rates (from /diagnostics).
Ctrl-C (or SIGTERM) stops every node cleanly and exits with status 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

import yaml

from dkt_stack.config import ConfigError
from dkt_stack.graph import find_graph, load_graph, resolve_graph


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("graph", nargs="?", help="shipped graph name or path to a graph YAML file")
    parser.add_argument("arguments", nargs="*", metavar="name:=value", help="graph arguments, as for ros2 launch")
    parser.add_argument("--print", action="store_true", help="print the resolved nodes and parameters, start nothing")
    parser.add_argument("--show-args", action="store_true", help="list the graph's arguments with defaults and exit")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: run until Ctrl-C)")
    parser.add_argument("--log-dir", default=None, help="write each node's output to DIR/<namespace>__<node>.log instead of the terminal")
    parser.add_argument(
        "--status-every", type=float, default=5.0, metavar="S",
        help="print one line per node (alive/restarted, diagnostics level, output rates) every S seconds; 0 = never (default 5)",
    )  # fmt: skip
    parser.add_argument(
        "--status", action="store_true",
        help="do not start anything: print the status of GRAPH's nodes running in this ROS domain (from /diagnostics) and exit",
    )  # fmt: skip
    parser.add_argument(
        "--status-wait", type=float, default=5.0, metavar="S", help="--status: listen to /diagnostics until every node reported, at most S seconds (default 5)"
    )
    parser.add_argument(
        "--dds-profile", action="store_true",
        help="print the path of the large-data Fast DDS profile (for FASTDDS_DEFAULT_PROFILES_FILE of an external driver) and exit",
    )  # fmt: skip


def parse_assignments(items: list[str]) -> dict[str, str]:
    """``["a:=1", "b:=x"]`` -> ``{"a": "1", "b": "x"}``, with a clear error for anything else."""
    out = {}
    for item in items:
        if ":=" not in item:
            raise ConfigError(f"graph arguments are written name:=value, got '{item}'")
        name, value = item.split(":=", 1)
        out[name] = value
    return out


def _err(line: str) -> None:
    print(f"dkt-stack up: {line}", file=sys.stderr, flush=True)


def node_status_line(name: str, state: str, diag, now: float) -> str:
    """One line: node, process state, diagnostics level and message, output rates."""
    from dkt_stack.ros.graph_monitor import LEVEL_NAMES, level_of, output_rates

    if diag is None:
        return f"  {name:<22} {state:<20} no diagnostics yet"
    seen, status = diag
    ns = name.rsplit("/", 1)[0] + "/"
    rates = ", ".join(f"{topic.removeprefix(ns)} {hz:.1f} Hz" for topic, hz in output_rates(status))
    level = LEVEL_NAMES.get(level_of(status), "?")
    age = f" ({now - seen:.0f} s ago)" if now - seen > 3.0 else ""
    message = status.message if len(status.message) <= 90 else status.message[:87] + "..."
    return f"  {name:<22} {state:<20} {level:<5}{age} {message}" + (f" | out: {rates}" if rates else "")


def _process_state(p, now: float) -> str:
    from dkt_stack.runner import describe_exit

    if p.state == "waiting":
        return f"restarting in {max(0.0, p.restart_at - now):.0f} s"
    if p.state == "down":
        return f"down ({describe_exit(p.last_exit)})"
    return f"alive, pid {p.pid}" if p.restarts == 0 else f"restarted {p.restarts}x, pid {p.pid}"


def _print_status(runner, monitor, graph_name: str) -> None:
    now = time.monotonic()
    latest = monitor.latest() if monitor is not None else {}
    _err(f"status of graph '{graph_name}':")
    for p in runner.processes:
        print(node_status_line(p.node.fully_qualified_name, _process_state(p, now), latest.get(p.node.fully_qualified_name), now), file=sys.stderr)
    sys.stderr.flush()


def _publish_supervisor_status(runner, monitor, graph_name: str) -> None:
    """The supervisor's own status on /diagnostics: each node alive, restarting or down, and its restarts (read by --status)."""
    from dkt_stack.ros.graph_monitor import SUPERVISOR_PREFIX

    now = time.monotonic()
    states = {p.node.fully_qualified_name: _process_state(p, now) for p in runner.processes}
    level = 2 if any(p.state == "down" for p in runner.processes) else 1 if any(p.state == "waiting" for p in runner.processes) else 0
    alive = sum(p.state == "running" for p in runner.processes)
    monitor.publish(level, f"{SUPERVISOR_PREFIX}/{graph_name}", f"{alive} of {len(runner.processes)} nodes alive", states)


def show_status(graph, wait_s: float) -> int:
    """``--status``: one line per node of ``graph`` from what is on /diagnostics now; 1 when a node is missing."""
    from dkt_stack.ros.graph_monitor import SUPERVISOR_PREFIX, GraphMonitor

    monitor = GraphMonitor("dkt_stack_status")
    wanted = {f"{SUPERVISOR_PREFIX}/{graph.name}", *(n.fully_qualified_name for n in graph.nodes)}
    try:  # until every node and the supervisor have reported (each does once a second), or wait_s
        deadline = time.monotonic() + wait_s
        while not wanted <= monitor.latest().keys() and time.monotonic() < deadline:
            time.sleep(0.1)
        latest = monitor.latest()
    finally:
        monitor.close()
    now = time.monotonic()
    supervisor = latest.get(f"{SUPERVISOR_PREFIX}/{graph.name}")
    states = {kv.key: kv.value for kv in supervisor[1].values} if supervisor else {}
    print(f"graph '{graph.name}': " + (supervisor[1].message if supervisor else "no `dkt-stack up` supervisor seen (started with ros2 launch?)"))
    missing = 0
    for node in graph.nodes:
        name = node.fully_qualified_name
        diag = latest.get(name)
        missing += diag is None
        print(node_status_line(name, states.get(name, "reporting" if diag else "not seen"), diag, now))
    return 1 if missing else 0


def run(args: argparse.Namespace) -> int:
    if args.dds_profile:
        from dkt_stack.ros.transport import large_data_profile

        print(large_data_profile())
        return 0
    if not args.graph:
        _err("name a graph (shipped: perception, cobot_magic, simulation, replay; or a YAML file)")
        return 2
    try:
        if args.show_args:
            graph, _ = load_graph(find_graph(args.graph))
            for name, spec in graph.arguments.items():
                choices = f" (one of {', '.join(spec.choices)})" if spec.choices else ""
                print(f"{name} [default: {spec.default!r}]{choices}\n    {spec.description}")
            return 0
        graph = resolve_graph(args.graph, parse_assignments(args.arguments))
    except ConfigError as exc:
        _err(str(exc))
        return 2
    if args.print:
        doc = {
            "graph": graph.name,
            "arguments": graph.arguments,
            "nodes": [
                {
                    "name": n.fully_qualified_name, "executable": n.executable, "parameters": n.parameters, "remappings": n.remappings,
                    "respawn": n.respawn, "respawn_delay": n.respawn_delay,
                }
                for n in graph.nodes
            ],
            "static_transforms": [{"parent": t.parent, "child": t.child, "xyz_qxyzw": [round(v, 6) for v in t.pose7]} for t in graph.static_transforms],
        }  # fmt: skip
        print(yaml.safe_dump(doc, sort_keys=False))
        return 0
    if args.status:
        return show_status(graph, args.status_wait)
    return supervise(graph, args)


def supervise(graph, args: argparse.Namespace) -> int:
    from dkt_stack.runner import GraphRunner

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    runner = GraphRunner(graph, log_dir=args.log_dir, report=_err)
    monitor = None
    status = 0
    try:
        try:
            from dkt_stack.ros.graph_monitor import GraphMonitor

            monitor = GraphMonitor()
        except Exception as exc:  # rclpy missing or broken: supervise without the nodes' own reports
            _err(f"no /diagnostics (status lines without rates): {exc}")
        runner.start()
        _err(f"started {len(runner.processes)} node(s) of graph '{graph.name}' ({', '.join(p.node.fully_qualified_name for p in runner.processes)}); Ctrl-C stops them")
        started = last_status = last_report = time.monotonic()
        while not stop.is_set():
            runner.poll()
            if runner.cannot_start():
                _err("stopping the graph: fix the cause above and start it again")
                status = 2
                break
            if runner.all_down():
                _err("every node has exited")
                status = 1 if any(p.last_exit not in (0, None) for p in runner.processes) else 0
                break
            now = time.monotonic()
            if args.duration is not None and now - started >= args.duration:
                break
            if monitor is not None and now - last_report >= 1.0:
                last_report = now
                _publish_supervisor_status(runner, monitor, graph.name)
            if args.status_every > 0 and now - last_status >= args.status_every:
                last_status = now
                _print_status(runner, monitor, graph.name)
            stop.wait(0.2)
        if stop.is_set():
            _err("stopping the graph")
    except ConfigError as exc:
        _err(str(exc))
        status = 2
    finally:
        stop.set()
        runner.stop()
        if monitor is not None:
            monitor.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status
