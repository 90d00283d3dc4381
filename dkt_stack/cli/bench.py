"""``dkt-stack bench TARGET``: benchmarks that print one JSON object.

Each target lives beside the code it measures, in a module with
``add_arguments(parser)`` and ``run(args) -> dict``; this command only
dispatches and prints. Timings go here, never into tests.
"""

from __future__ import annotations

import argparse
import json
import sys

from dkt_stack.cli import dispatch

#: target -> (module, help)
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs=argparse.REMAINDER, help=f"one of: {', '.join(BENCHMARKS)}, then its options")


def _print(module, args: argparse.Namespace) -> int:
    try:
        result = module.run(args)
    except ValueError as exc:  # bad options reach the configs' own checks (ConfigError, CloudError, ...): one line, exit 2
        print(f"dkt-stack bench: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    json.dump(result, sys.stdout, indent=None if getattr(args, "json", False) else 2)
    sys.stdout.write("\n")
    return 0


def run(args: argparse.Namespace) -> int:
    return dispatch("dkt-stack bench", "Benchmarks that print one JSON object of figures.", BENCHMARKS, args.target, _print)


def peak_memory_mb(device: str = "cpu") -> float:
    """Peak memory of this process in MiB: CUDA's max allocated on a GPU, else the peak resident set size."""
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 2**10)
