"""``dkt-stack up GRAPH [name:=value ...]``: start a node graph without ``ros2 launch``.

GRAPH is a shipped graph name (``perception``, ``cobot_magic``, ...) or a path to
a graph YAML file; ``name:=value`` sets its arguments exactly like
``ros2 launch dkt_stack GRAPH.launch.py name:=value``. Each node runs as its own
process (see :mod:`dkt_stack.runner`); Ctrl-C stops them all cleanly.
"""

from __future__ import annotations

import argparse
import signal
import sys

import yaml

from dkt_stack.config import ConfigError
from dkt_stack.graph import find_graph, load_graph, resolve_graph


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("graph", help="shipped graph name or path to a graph YAML file")
    parser.add_argument("arguments", nargs="*", metavar="name:=value", help="graph arguments, as for ros2 launch")
    parser.add_argument("--print", action="store_true", help="print the resolved nodes and parameters, start nothing")
    parser.add_argument("--show-args", action="store_true", help="list the graph's arguments with defaults and exit")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: run until Ctrl-C)")
    parser.add_argument("--log-dir", default=None, help="write each node's output to DIR/<node>.log instead of the terminal")


def parse_assignments(items: list[str]) -> dict[str, str]:
    """``["a:=1", "b:=x"]`` -> ``{"a": "1", "b": "x"}``, with a clear error for anything else."""
    out = {}
    for item in items:
        if ":=" not in item:
            raise ConfigError(f"graph arguments are written name:=value, got '{item}'")
        name, value = item.split(":=", 1)
        out[name] = value
    return out


def run(args: argparse.Namespace) -> int:
    from dkt_stack.runner import GraphRunner

    try:
        if args.show_args:
            graph, _ = load_graph(find_graph(args.graph))
            for name, spec in graph.arguments.items():
                choices = f" (one of {', '.join(spec.choices)})" if spec.choices else ""
                print(f"{name} [default: {spec.default!r}]{choices}\n    {spec.description}")
            return 0
        graph = resolve_graph(args.graph, parse_assignments(args.arguments))
    except ConfigError as exc:
        print(f"dkt-stack up: {exc}", file=sys.stderr)
        return 2
    if args.print:
        doc = {
            "graph": graph.name,
            "arguments": graph.arguments,
            "nodes": [
                {"name": n.fully_qualified_name, "executable": n.executable, "parameters": n.parameters, "remappings": n.remappings}
                for n in graph.nodes
            ],
        }
        print(yaml.safe_dump(doc, sort_keys=False))
        return 0
    runner = GraphRunner(graph, log_dir=args.log_dir)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        runner.start()
        print(f"dkt-stack up: started {len(runner.processes)} node(s) of graph '{graph.name}'", file=sys.stderr)
        down = runner.wait(args.duration)
        for p in down:
            print(f"dkt-stack up: node {p.node.name} exited with status {p.proc.returncode}; stopping the graph", file=sys.stderr)
        status = 1 if any(p.proc.returncode not in (0, None) for p in down) else 0
    except KeyboardInterrupt:
        status = 0
    except ConfigError as exc:
        print(f"dkt-stack up: {exc}", file=sys.stderr)
        status = 2
    finally:
        runner.stop()
    return status
