"""The one error path of ``dkt-stack``: ``<prog> <cmd>: <what> — <fix>`` on stderr, exit 1, no traceback unless --debug."""

from __future__ import annotations

import sys
import types

import pytest

from dkt_stack.cli import dispatch, format_error, main
from dkt_stack.errors import UserError


def _module(exc: BaseException | None, name: str = "fake_command"):
    mod = types.ModuleType(name)

    def add_arguments(parser):
        parser.add_argument("--count", type=int, default=1, help="a number")

    def run(args):
        if exc is not None:
            raise exc
        return 0

    mod.add_arguments, mod.run = add_arguments, run
    return mod


@pytest.fixture
def command(monkeypatch):
    def make(exc):
        monkeypatch.setitem(sys.modules, "fake_command", _module(exc))
        return lambda *argv: dispatch("dkt-stack", "test", {"fake": ("fake_command", "a fake command")}, list(argv),
                                      lambda module, args: int(module.run(args) or 0))
    return make


@pytest.mark.parametrize(("exc", "line"), [
    (UserError("/data/x: not found", fix="check the path"), "dkt-stack fake: /data/x: not found — check the path"),
    (ValueError("steps must be in 1..50, got 0"), "dkt-stack fake: steps must be in 1..50, got 0"),
    (FileNotFoundError(2, "No such file or directory", "/data/y"), "dkt-stack fake: /data/y: no such file or directory — check the path"),
    (ModuleNotFoundError("No module named 'gsnet'"), "dkt-stack fake: No module named 'gsnet' — install the missing package"),
    (KeyError("frames"), "dkt-stack fake: internal error (KeyError: 'frames') — rerun with --debug for the traceback and report it"),
])
def test_every_failure_is_one_line_with_exit_1(command, capsys, exc, line):
    run = command(exc)
    assert run("fake") == 1
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith(line) and "Traceback" not in captured.err
    assert captured.out == ""


def test_debug_prints_the_traceback_then_the_line(command, capsys):
    run = command(RuntimeError("boom"))
    assert run("fake", "--debug") == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "RuntimeError: boom" in err
    assert err.splitlines()[-1].startswith("dkt-stack fake: internal error (RuntimeError: boom)")


def test_global_debug_flag_and_environment(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "fake_command", _module(UserError("bad", fix="fix it")))
    monkeypatch.setitem(__import__("dkt_stack.cli", fromlist=["SUBCOMMANDS"]).SUBCOMMANDS, "fake", ("fake_command", "a fake command"))
    assert main(["--debug", "fake"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().endswith("dkt-stack fake: bad — fix it")
    import os

    assert "DKT_STACK_DEBUG" not in os.environ  # restored after the command
    assert main(["fake"]) == 1 and "Traceback" not in capsys.readouterr().err


def test_usage_errors_are_one_line_with_exit_2(command, capsys):
    run = command(None)
    with pytest.raises(SystemExit) as info:
        run("fake", "--count", "many")
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err == "dkt-stack fake: argument --count: invalid int value: 'many' — run 'dkt-stack fake --help' for the options\n"
    assert main(["nonsense"]) == 2
    assert capsys.readouterr().err.startswith("dkt-stack: unknown command 'nonsense' — choose from demo, up, depth")


def test_torch_out_of_memory_is_expected():
    oom = type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert format_error(oom).startswith("out of memory (CUDA out of memory.") and "smaller --height/--width" in format_error(oom)
