"""``dkt-stack``: one command line for the whole stack.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; the table below maps names to modules, and only the
module of the command being run is imported (heavy ones pull in torch). A
subcommand whose module has not been written yet says so plainly and exits
with status 2.

Errors: every failure of a command ends as ONE line on stderr,
``dkt-stack <command>: <what> — <fix>``, with exit status 1 (2 for a bad
option), and no traceback. Commands just raise: a :class:`dkt_stack.errors.UserError`
(or any error the stack raises on purpose: ValueError, OSError, the packages'
own error classes) prints its message; anything else is reported as an internal
error. ``--debug`` (after the command, or before it, or ``DKT_STACK_DEBUG=1``)
prints the traceback as well.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable

from dkt_stack.errors import FIX_SEPARATOR, UserError, one_line

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
#: exit status of a command that failed
FAILURE_STATUS = 1
#: exit status of a bad option (argparse's); an exception can carry its own in ``exit_status``
USAGE_STATUS = 2
DEBUG_ENV = "DKT_STACK_DEBUG"
#: packages whose own exception classes are raised on purpose, with a message meant for the user
OWN_PACKAGES = ("dkt_stack", "dkt_perception", "dkt_grasping", "dkt_sim", "dkt_training")


class NotAvailable(Exception):
    """A subcommand (or benchmark) whose implementation has not landed yet."""


class CommandParser(argparse.ArgumentParser):
    """argparse with one-line usage errors (``prog: message — run 'prog --help' for the options``, exit 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {one_line(message)}{FIX_SEPARATOR}run '{self.prog} --help' for the options\n")


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


@contextlib.contextmanager
def debug_environment(on: bool):
    """Set ``DKT_STACK_DEBUG=1`` for the duration (when ``on``), then restore the previous value."""
    previous = os.environ.get(DEBUG_ENV)
    if on:
        os.environ[DEBUG_ENV] = "1"
    try:
        yield
    finally:
        if on:
            if previous is None:
                os.environ.pop(DEBUG_ENV, None)
            else:
                os.environ[DEBUG_ENV] = previous


def is_expected(exc: BaseException) -> bool:
    """True for errors raised on purpose with a message for the user (bad input, missing files, no network...)."""
    if isinstance(exc, (ValueError, OSError, ImportError)):
        return True
    if type(exc).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError (CUDA), a RuntimeError
        return True
    return type(exc).__module__.split(".")[0] in OWN_PACKAGES


def format_error(exc: BaseException) -> str:
    """``<what> — <fix>`` (one line) for an exception; unexpected ones are called internal errors."""
    if isinstance(exc, UserError):
        return one_line(str(exc))
    if isinstance(exc, OSError) and exc.strerror and not isinstance(exc, UserError):
        where = f"{exc.filename}: " if exc.filename else ""
        text = f"{where}{exc.strerror.lower()}"
        if isinstance(exc, FileNotFoundError):
            return f"{text}{FIX_SEPARATOR}check the path (relative paths start from {os.getcwd()})"
        if isinstance(exc, PermissionError):
            return f"{text}{FIX_SEPARATOR}choose a path you can write to, or fix its permissions"
        return text
    if type(exc).__name__ == "OutOfMemoryError":
        return f"out of memory ({one_line(str(exc))[:160]}){FIX_SEPARATOR}use a smaller --height/--width or window, or a device with more memory"
    message = one_line(str(exc)) or type(exc).__name__
    if isinstance(exc, ImportError) and FIX_SEPARATOR not in message:
        return f"{message}{FIX_SEPARATOR}install the missing package (README: Dependency notes, Optional extras)"
    if is_expected(exc):
        return message
    return f"internal error ({type(exc).__name__}: {message[:300]}){FIX_SEPARATOR}rerun with --debug for the traceback and report it"


def report_error(prog: str, exc: BaseException, debug: bool = False) -> int:
    """Print ``prog: <what> — <fix>`` on stderr (the traceback first with ``debug``); returns the exit status.

    The status is 1, or the exception's ``exit_status`` (2 for an option value a check refused).
    """
    if debug or debug_enabled():
        traceback.print_exception(exc)
    print(f"{prog}: {format_error(exc)}", file=sys.stderr)
    return int(getattr(exc, "exit_status", FAILURE_STATUS))


def add_debug_option(parser: argparse.ArgumentParser) -> None:
    """``--debug`` on a command's parser and on each of its sub-parsers (``weights fetch --debug``)."""
    actions = parser._actions
    if not any("--debug" in action.option_strings for action in actions):
        parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                            help="on an error, print the full traceback as well as the one-line message")
    for action in actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                add_debug_option(sub)


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
    """Run ``argv[0]`` from ``table``: import only its module, parse the rest, call ``finish``.

    Every exception of the import or of ``finish`` becomes one line on stderr
    (:func:`report_error`) and exit status 1; ``--debug`` adds the traceback.
    """
    if not argv or argv[0] in ("-h", "--help"):
        width = max(len(n) for n in table)
        lines = [f"usage: {prog} [--debug] COMMAND [options]", "", description, "", "commands:"]
        for name, (module_name, help_text) in table.items():
            mark = "" if is_available(module_name) else "  [not available yet]"
            lines.append(f"  {name:<{width}}  {help_text}{mark}")
        lines += ["", f"Run '{prog} COMMAND --help' for a command's options; --debug shows the traceback of an error."]
        print("\n".join(lines))
        return 0 if argv else NOT_AVAILABLE_STATUS
    name = argv[0]
    if name not in table:
        print(f"{prog}: unknown command '{name}'{FIX_SEPARATOR}choose from {', '.join(table)}", file=sys.stderr)
        return NOT_AVAILABLE_STATUS
    module_name, help_text = table[name]
    command = f"{prog} {name}"
    debug = "--debug" in argv[1:]
    try:
        module = load_command(module_name)
    except NotAvailable:
        print(f"{command}: not available yet (its implementation has not landed in this version).", file=sys.stderr)
        return NOT_AVAILABLE_STATUS
    except Exception as exc:
        return report_error(command, exc, debug)
    parser = CommandParser(prog=command, description=help_text)
    module.add_arguments(parser)
    add_debug_option(parser)
    try:  # options may follow positionals (`up GRAPH --print a:=1`)
        args = parser.parse_intermixed_args(argv[1:])
    except TypeError:  # parsers with REMAINDER/subcommands cannot intermix
        args = parser.parse_args(argv[1:])
    for action in parser._actions:  # `dkt-stack weights fetch: ...`: name the sub-action too
        if isinstance(action, argparse._SubParsersAction) and getattr(args, action.dest, None):
            command = f"{command} {getattr(args, action.dest)}"
    # nested dispatchers (bench TARGET) see --debug through the environment
    with debug_environment(debug or bool(getattr(args, "debug", False))):
        try:
            return finish(module, args)
        except Exception as exc:
            return report_error(command, exc, debug)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = bool(argv) and argv[0] == "--debug"  # `dkt-stack --debug COMMAND ...`
    argv = argv[1:] if debug else argv
    description = "DKT grasping stack: depth for transparent and reflective objects, from camera to arm."
    try:
        with debug_environment(debug):
            return dispatch("dkt-stack", description, SUBCOMMANDS, argv, lambda module, args: int(module.run(args) or 0))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
