"""The README's configuration reference, generated from the params dataclasses.

    python -m dkt_stack.config_reference --write README.md

rewrites the block between ``<!-- config-reference:start -->`` and
``<!-- config-reference:end -->``; a test fails when the README is stale, so
every parameter stays documented where users look.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
from pathlib import Path
from typing import Any, get_type_hints

from dkt_stack.atomic_files import write_text_atomic

#: section title -> "module:ParamsClass" (a node's parameters, or a config file's schema)
SECTIONS: dict[str, str] = {
    "camera_node": "dkt_perception.nodes.camera_node:CameraNodeParams",
    "depth_node": "dkt_perception.nodes.depth_node:DepthNodeParams",
    "metric_depth_node": "dkt_perception.nodes.metric_depth_node:MetricDepthNodeParams",
    "grasp_node": "dkt_grasping.nodes.grasp_node:GraspNodeParams",
    "planner_node": "dkt_grasping.nodes.planner_node:PlannerNodeParams",
    "arm_node": "dkt_grasping.nodes.arm_node:ArmNodeParams",
    "sim_node": "dkt_sim.nodes.sim_node:SimNodeParams",
    "calibration_node": "dkt_grasping.nodes.calibration_node:CalibrationNodeParams",
    "calibration files (config/calibration/*.yaml)": "dkt_grasping.calibration.config:CalibrationConfig",
    "static_tf_node": "dkt_stack.nodes.static_tf_node:StaticTfNodeParams",
    "graph files (config/graphs/*.yaml)": "dkt_stack.graph:GraphDescription",
    "a node of a graph file (nodes[])": "dkt_stack.graph:NodeSpec",
    "static_transforms of a graph file": "dkt_stack.graph:StaticTransformsSpec",
}

START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return "(required)"


def _rows(cls: type, prefix: str = "") -> list[str]:
    rows = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(_rows(tp, f"{prefix}{f.name}."))
            continue
        default = _default(f)
        shown = "(required)" if default == "(required)" else f"`{default!r}`"
        help_text = f.metadata.get("help", "").replace("|", "\\|")
        rows.append(f"| `{prefix}{f.name}` | {shown} | {help_text} |")
    return rows


def render() -> str:
    parts = []
    for title, target in SECTIONS.items():
        module, name = target.split(":")
        cls = getattr(importlib.import_module(module), name)
        parts += [f"### {title}", "", "| key | default | meaning |", "|---|---|---|", *_rows(cls), ""]
    return "\n".join(parts).rstrip() + "\n"


def replace_block(text: str, block: str) -> str:
    if START not in text or END not in text:
        raise ValueError(f"README lacks the markers {START} ... {END}")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", metavar="README", help="rewrite the reference block of this file (atomically)")
    args = parser.parse_args(argv)
    block = render()
    if not args.write:
        sys.stdout.write(block)
        return 0
    path = Path(args.write)
    write_text_atomic(path, replace_block(path.read_text(), block))
    return 0


if __name__ == "__main__":
    sys.exit(main())
