"""``dkt-stack bench graph``: the perception graph's rate and latency over real ROS 2 transport.

Runs camera (synthetic 640x480) -> depth (raw backend) -> metric depth -> cloud
as separate processes, from the same graph description as the demo and the
launch files, and measures at a probe node: clouds per second and the latency
from the camera's stamp to the cloud's arrival. Target on a 2-core machine:
>= 29 Hz out at 30 Hz in, p95 <= 60 ms.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from dkt_stack.cli.bench import add_runs_argument, median_of_runs

#: figures that vary from run to run (medians printed, min/max beside them)
FIGURES = ("rate_hz_out", "latency_ms_p50", "latency_ms_p95", "wall_s")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=300, help="clouds to measure (default 300)")
    parser.add_argument("--fps", type=float, default=30.0, help="camera rate (Hz)")
    parser.add_argument("--width", type=int, default=640, help="image width (px)")
    parser.add_argument("--height", type=int, default=480, help="image height (px)")
    parser.add_argument("--warmup", type=int, default=30, help="clouds ignored at the start (start-up transients)")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    parser.add_argument("--json", action="store_true", help="one-line JSON")
    add_runs_argument(parser)


def run(args: argparse.Namespace) -> dict:
    """``--runs`` measurements: medians, with min/max beside them (:func:`dkt_stack.cli.bench.median_of_runs`)."""
    return median_of_runs(lambda: _run_once(args), args.runs, FIGURES)


def _run_once(args: argparse.Namespace) -> dict:
    import numpy as np

    from dkt_perception.demo import observe_perception_graph
    from dkt_stack.graph import resolve_graph

    graph = resolve_graph("perception", {"camera_source": "synthetic", "backend": "raw", "fps": args.fps})
    graph.node("camera").parameters["synthetic"].update({"width": args.width, "height": args.height})
    with tempfile.TemporaryDirectory(prefix="dkt-bench-graph-") as logs:
        rec, wall_s = observe_perception_graph(graph, args.frames + args.warmup, args.timeout, Path(logs), accuracy=False)
    t = np.asarray(rec.cloud_times[args.warmup :])
    lat = np.asarray(rec.latency_ms[args.warmup :])
    return {
        "rate_hz_in": args.fps,
        "rate_hz_out": float((len(t) - 1) / (t[-1] - t[0])) if len(t) > 1 else 0.0,
        "latency_ms_p50": float(np.percentile(lat, 50)),
        "latency_ms_p95": float(np.percentile(lat, 95)),
        "frames_out": len(t),
        "cloud_points_median": float(np.median(rec.cloud_points)),
        "size": f"{args.width}x{args.height}",
        "wall_s": round(wall_s, 1),
    }
