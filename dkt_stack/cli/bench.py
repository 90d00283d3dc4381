"""``dkt-stack bench TARGET``: benchmarks that print one JSON object.

Each target lives beside the code it measures, in a module with
``add_arguments(parser)`` and ``run(args) -> dict``; this command only
dispatches and prints. Timings go here, never into tests.

A target repeats its measurement (``--runs``, default :data:`DEFAULT_RUNS`,
added by :func:`add_runs_argument`) through :func:`median_of_runs`: the printed
figures are the medians, ``min``/``max`` hold their spread, ``runs`` how many
there were. (Targets with their own repetition, e.g. ``grasp --repeats``, print
the same median/min/max.)
A machine shared with other work gives a wide spread: say so beside a figure.
Failures (bad options, a missing ``--workdir``) print one line, as every command does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable, Iterable

from dkt_stack.cli import USAGE_STATUS, dispatch

#: target -> (module, help); one line per target (several people add targets)
BENCHMARKS: dict[str, tuple[str, str]] = {
    "depth": ("dkt_perception.depth.benchmark", "depth engine ms/frame and peak memory"),
    "metric": ("dkt_perception.metric_benchmark", "tag detection, scale fit, metric depth and cloud timings"),
    "graph": ("dkt_perception.graph_benchmark", "camera -> depth -> metric -> cloud rate and latency over ROS"),
    "replay": ("dkt_perception.replay.benchmark", "rosbag replay frames per second"),
    "grasp": ("dkt_grasping.benchmark", "CPU grasp detection and planning timings"),
    "train": ("dkt_training.benchmark", "training steps per second and memory (tiny config)"),
    "sim": ("dkt_sim.benchmark", "MuJoCo Cobot Magic: render ms, physics real-time factor, seconds per trial"),
    "calibrate": ("dkt_grasping.calibration.benchmark", "hand-eye calibration error against a synthetic rig's ground truth"),
}

DEFAULT_RUNS = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs=argparse.REMAINDER, help=f"one of: {', '.join(BENCHMARKS)}, then its options")


def _print(module, args: argparse.Namespace) -> int:
    try:
        result = module.run(args)
    except ValueError as exc:  # a benchmark's options reach the configs' own checks: a usage error, one line (dispatch), exit 2
        exc.exit_status = USAGE_STATUS
        raise
    json.dump(result, sys.stdout, indent=None if getattr(args, "json", False) else 2)
    sys.stdout.write("\n")
    return 0


def run(args: argparse.Namespace) -> int:
    return dispatch("dkt-stack bench", "Benchmarks that print one JSON object of figures.", BENCHMARKS, args.target, _print)


def add_runs_argument(parser: argparse.ArgumentParser, default: int = DEFAULT_RUNS) -> None:
    """``--runs N``: how many times a benchmark repeats its measurement (medians with min/max are printed)."""
    parser.add_argument("--runs", type=positive_int, default=default,
                        help=f"measure this many times and print the median with min/max (default {default})")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _numeric(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _summarise(values: list, how: Callable[[list], float]):
    """One figure (or a dict of figures, leaf by leaf) from its values over the runs; None values are ignored."""
    if all(isinstance(v, dict) for v in values):
        keys = [k for k in values[0] if all(k in v for v in values)]
        return {k: _summarise([v[k] for v in values], how) for k in keys}
    numbers = [v for v in values if _numeric(v)]
    if not numbers:
        return values[-1]
    out = how(numbers)
    return round(float(out), 6) if isinstance(out, float) or any(isinstance(v, float) for v in numbers) else out


def median_of_runs(measure: Callable[[], dict], runs: int, figures: Iterable[str]) -> dict:
    """Call ``measure()`` ``runs`` times; the ``figures`` keys become medians, with ``min``/``max`` beside them.

    Other keys (sizes, settings, counts) come from the last run. A figure may be
    a number or a dict of numbers (e.g. milliseconds per stage), summarised leaf by leaf.
    """
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    results = [measure() for _ in range(runs)]
    out = dict(results[-1])
    names = [f for f in figures if all(f in r for r in results)]
    for name in names:
        out[name] = _summarise([r[name] for r in results], statistics.median)
    out["runs"] = runs
    out["min"] = {name: _summarise([r[name] for r in results], min) for name in names}
    out["max"] = {name: _summarise([r[name] for r in results], max) for name in names}
    return out


def peak_memory_mb(device: str = "cpu") -> float:
    """Peak memory of this process in MiB: CUDA's max allocated on a GPU, else the peak resident set size."""
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 2**10)
