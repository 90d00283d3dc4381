"""``dkt-stack``: one command line for the whole stack.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; the table below maps names to modules, and only the
module of the command being run is imported (heavy ones pull in torch). A
subcommand whose module has not been written yet says so plainly and exits
with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable

#: name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("dkt_perception.demo", "run the perception pipeline on the embedded synthetic scene and summarise it"),
    "up": ("dkt_stack.cli.up", "start a node graph from its description (no ros2 launch needed)"),
    "depth": ("dkt_perception.depth.cli", "estimate depth for a video or an image folder"),
    "replay": ("dkt_perception.replay.cli", "replay a rosbag through the depth pipeline, or play it on live topics"),
    "eval": ("dkt_perception.evaluation.cli", "paper-standard depth metrics over bags or datasets"),
    "bench": ("dkt_stack.cli.bench", "benchmarks that print JSON figures"),
    "weights": ("dkt_perception.depth.weights_cli", "fetch, check and export DKT weights"),
    "trials": ("dkt_grasping.trials.cli", "grasp success-rate trials: run and report"),
    "train": ("dkt_training.cli", "LoRA fine-tuning of DKT"),
    "calibrate": ("dkt_grasping.calibration.cli", "hand-eye calibration: front camera to arm base, wrist camera to flange"),
}

NOT_AVAILABLE_STATUS = 2


class NotAvailable(Exception):
    """A subcommand (or benchmark) whose implementation has not landed yet."""


def is_available(module_name: str) -> bool:
    """True when the module exists (checked without importing it)."""
    try:
        return importlib.util.find_spec(module_name) is not None
    except ModuleNotFoundError:
        return False


def load_command(module_name: str):
    """Import a subcommand module; a missing module becomes :class:`NotAvailable`."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the command's own module (or its package) missing means "not built yet";
        # any other missing import is a real installation problem and must surface.
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise NotAvailable(module_name) from exc
        raise


def dispatch(
    prog: str, description: str, table: dict[str, tuple[str, str]], argv: list[str], finish: Callable[[object, argparse.Namespace], int]
) -> int:
    """Run ``argv[0]`` from ``table``: import only its module, parse the rest, call ``finish``."""
    if not argv or argv[0] in ("-h", "--help"):
        width = max(len(n) for n in table)
        lines = [f"usage: {prog} COMMAND [options]", "", description, "", "commands:"]
        for name, (module_name, help_text) in table.items():
            mark = "" if is_available(module_name) else "  [not available yet]"
            lines.append(f"  {name:<{width}}  {help_text}{mark}")
        lines += ["", f"Run '{prog} COMMAND --help' for a command's options."]
        print("\n".join(lines))
        return 0 if argv else NOT_AVAILABLE_STATUS
    name = argv[0]
    if name not in table:
        print(f"{prog}: unknown command '{name}' (choose from {', '.join(table)})", file=sys.stderr)
        return NOT_AVAILABLE_STATUS
    module_name, help_text = table[name]
    try:
        module = load_command(module_name)
    except NotAvailable:
        print(f"{prog} {name}: not available yet (its implementation has not landed in this version).", file=sys.stderr)
        return NOT_AVAILABLE_STATUS
    parser = argparse.ArgumentParser(prog=f"{prog} {name}", description=help_text)
    module.add_arguments(parser)
    try:  # options may follow positionals (`up GRAPH --print a:=1`)
        args = parser.parse_intermixed_args(argv[1:])
    except TypeError:  # parsers with REMAINDER/subcommands cannot intermix
        args = parser.parse_args(argv[1:])
    return finish(module, args)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    description = "DKT grasping stack: depth for transparent and reflective objects, from camera to arm."
    try:
        return dispatch("dkt-stack", description, SUBCOMMANDS, argv, lambda module, args: int(module.run(args) or 0))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
