"""The README's configuration reference is generated from the params dataclasses and current."""

from __future__ import annotations

from pathlib import Path

from dkt_stack.config_reference import END, START, render

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_reference_is_current():
    text = README.read_text()
    block = text.split(START, 1)[1].split(END, 1)[0].lstrip("\n")
    assert block == render(), "run: python -m dkt_stack.config_reference --write README.md"


def test_every_parameter_has_help_text():
    for line in render().splitlines():
        if line.startswith("| `"):
            assert line.rstrip(" |").split("|")[-1].strip(), f"undocumented: {line}"
