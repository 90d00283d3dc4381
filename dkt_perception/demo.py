"""``dkt-stack demo``: the perception graph on the synthetic scene, as real ROS 2 nodes.

Starts camera (synthetic) -> depth -> metric depth -> cloud from the
``perception`` graph description (the same one ``ros2 launch`` uses), watches
the topics from a probe node, and after N metric frames writes
``summary.json`` and a few PNGs. The backend is ``dkt`` when its weights are
present, otherwise ``raw`` (the simulated sensor's depth) with a note.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

DEFAULT_OUT = "outputs/demo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=60, help="metric depth frames to collect (default 60)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder for summary.json and PNGs (default {DEFAULT_OUT})")
    parser.add_argument("--backend", default="auto", choices=["auto", "dkt", "raw", "depth_anything_v2"], help="depth backend; auto = dkt if weights are present, else raw")
    parser.add_argument("--weights-dir", default="", help="DKT weights folder (default $DKT_WEIGHTS_DIR or ~/.cache/dkt_stack/weights)")
    parser.add_argument("--fps", type=float, default=15.0, help="synthetic camera rate (Hz)")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    parser.add_argument(
        "--trials", type=int, default=0, metavar="N",
        help="also run N grasp trials per surface type (translucent, reflective, diffusive) in the MuJoCo physics simulation, "
        "print the success-rate report and where each trial's pictures are",
    )  # fmt: skip


def choose_backend(requested: str, weights_dir: str) -> tuple[str, str]:
    """(backend, note): dkt when requested or when auto and its weights are complete."""
    if requested != "auto":
        return requested, ""
    from dkt_perception.depth import MissingWeightsError
    from dkt_perception.depth.weights import fetch_command, runtime_weights

    try:
        runtime_weights(weights_dir or None)
        return "dkt", ""
    except MissingWeightsError:
        root = Path(weights_dir) if weights_dir else None
        from dkt_perception.depth.weights import default_weights_dir

        return "raw", f"note: DKT weights not found, using the simulated sensor's raw depth; fetch them with `{fetch_command(root or default_weights_dir())}`"


class DemoRecorder:
    """Per-frame figures computed as messages arrive (nothing big is kept but the last frame)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.frames_in = 0
        self.gt: dict[int, np.ndarray] = {}
        self.errors_mm: list[float] = []
        self.latency_ms: list[float] = []
        self.cloud_points: list[int] = []
        self.cloud_times: list[float] = []
        self.last: dict[str, object] = {}
        self.done = threading.Event()
        self.target = 0

    def on_color(self, msg) -> None:
        from dkt_stack import conversions as cv

        with self.lock:
            self.frames_in += 1
            self.last["rgb"] = cv.image_to_numpy(msg)

    def on_gt(self, msg) -> None:
        from dkt_stack import conversions as cv

        with self.lock:
            self.gt[cv.stamp_to_ns(msg.header.stamp)] = cv.image_to_numpy(msg)
            while len(self.gt) > 120:
                self.gt.pop(min(self.gt))

    def on_metric(self, msg) -> None:
        from dkt_stack import conversions as cv

        depth = cv.image_to_numpy(msg)
        with self.lock:
            gt = self.gt.get(cv.stamp_to_ns(msg.header.stamp))
            self.last["metric"] = depth
            if gt is not None:
                ok = np.isfinite(depth) & np.isfinite(gt)
                if ok.any():
                    self.errors_mm.append(float(np.median(np.abs(depth[ok] - gt[ok]))) * 1000.0)
                    self.last["gt"] = gt

    def on_points(self, msg) -> None:
        from dkt_stack import conversions as cv

        now = time.time_ns()
        with self.lock:
            self.latency_ms.append((now - cv.stamp_to_ns(msg.header.stamp)) / 1e6)
            self.cloud_points.append(int(msg.width * msg.height))
            self.cloud_times.append(time.monotonic())
            self.last["cloud"] = msg
            if len(self.cloud_points) >= self.target:
                self.done.set()

    def summary(self, backend: str, note: str) -> dict:
        def pct(values, q):
            return float(np.percentile(values, q)) if values else None

        t = self.cloud_times
        return {
            "backend": backend,
            "note": note,
            "frames_in": self.frames_in,
            "frames_out": len(self.cloud_points),
            "rate_hz_out": (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 else None,
            "latency_ms_p50": pct(self.latency_ms, 50),
            "latency_ms_p95": pct(self.latency_ms, 95),
            "metric_abs_err_mm_median": pct(self.errors_mm, 50),
            "metric_frames_compared": len(self.errors_mm),
            "cloud_points_median": pct(self.cloud_points, 50),
        }


def write_pngs(out: Path, last: dict) -> list[str]:
    """colour.png, metric_depth.png (and ground_truth_depth.png), cloud_top.png."""
    import cv2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dkt_perception.visualization import colorize
    from dkt_stack import conversions as cv

    written = []
    if "rgb" in last:
        cv2.imwrite(str(out / "colour.png"), np.ascontiguousarray(last["rgb"][:, :, ::-1]))
        written.append("colour.png")
    if "metric" in last:
        gt = last.get("gt")
        lo, hi = (np.nanpercentile(gt, [2, 98]) if gt is not None else (None, None))
        cv2.imwrite(str(out / "metric_depth.png"), colorize(last["metric"], lo, hi)[:, :, ::-1])
        written.append("metric_depth.png")
        if gt is not None:
            cv2.imwrite(str(out / "ground_truth_depth.png"), colorize(gt, lo, hi)[:, :, ::-1])
            written.append("ground_truth_depth.png")
    if "cloud" in last:
        xyz, rgb = cv.cloud_to_points(last["cloud"])
        ok = np.isfinite(xyz).all(axis=1)
        xyz = xyz[ok]
        fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
        colours = rgb[ok] / 255.0 if rgb is not None else "k"
        ax.scatter(xyz[:, 0], xyz[:, 2], s=0.5, c=colours, linewidths=0)
        ax.set_xlabel("x (m, camera right)")
        ax.set_ylabel("z (m, camera forward)")
        ax.set_title(f"point cloud, top view ({len(xyz)} points, {last['cloud'].header.frame_id})")
        ax.set_aspect("equal")
        fig.tight_layout()
        fig.savefig(out / "cloud_top.png")
        plt.close(fig)
        written.append("cloud_top.png")
    return written


class GraphStopped(RuntimeError):
    """A node of the observed graph exited, or the frames did not come in time."""


def observe_perception_graph(
    graph, frames: int, timeout_s: float, log_dir: Path, accuracy: bool = True
) -> tuple[DemoRecorder, float]:
    """Run a resolved perception graph until ``frames`` clouds arrived; returns the recorder and the wall time.

    The probe subscribes to the camera namespace's cloud topic and, with
    ``accuracy``, to colour, ground truth and metric depth (for the error
    figures and the PNGs; a benchmark leaves them out so the probe does not
    compete for the CPU it measures). Raises GraphStopped naming the node and its log.
    """
    from sensor_msgs.msg import Image, PointCloud2

    from dkt_stack.ros.harness import RosHarness
    from dkt_stack.ros.qos import qos_by_name
    from dkt_stack.runner import GraphRunner

    recorder = DemoRecorder()
    recorder.target = frames
    harness = RosHarness()
    qos = qos_by_name("sensor_data")
    ns = "/" + graph.node("camera").namespace
    if accuracy:
        harness.probe.create_subscription(Image, f"{ns}/color/image_raw", recorder.on_color, qos)
        harness.probe.create_subscription(Image, f"{ns}/ground_truth/depth", recorder.on_gt, qos)
        harness.probe.create_subscription(Image, f"{ns}/depth/metric", recorder.on_metric, qos)
    harness.probe.create_subscription(PointCloud2, f"{ns}/points", recorder.on_points, qos)
    runner = GraphRunner(graph, log_dir=log_dir)
    started = time.monotonic()
    try:
        runner.start()
        while not recorder.done.wait(0.5):
            down = runner.poll()
            if down:
                names = ", ".join(f"{p.node.name} (status {p.proc.returncode}, log {log_dir / (p.node.name + '.log')})" for p in down)
                raise GraphStopped(f"node(s) exited: {names}")
            if time.monotonic() - started > timeout_s:
                raise GraphStopped(f"timed out after {timeout_s:.0f} s with {len(recorder.cloud_points)} frames; logs in {log_dir}")
    finally:
        runner.stop()
        harness.close()
    return recorder, time.monotonic() - started


def run(args: argparse.Namespace) -> int:
    from dkt_stack.atomic_files import write_text_atomic
    from dkt_stack.graph import resolve_graph

    if args.frames < 1:
        print("dkt-stack demo: --frames must be >= 1", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    backend, note = choose_backend(args.backend, args.weights_dir)
    if note:
        print(note)
    graph = resolve_graph(
        "perception",
        {"camera_source": "synthetic", "backend": backend, "fps": args.fps, "weights_dir": args.weights_dir},
    )
    print(f"dkt-stack demo: {len(graph.nodes)} nodes ({', '.join(n.name for n in graph.nodes)}), backend {backend}, {args.frames} frames")
    try:
        recorder, wall_s = observe_perception_graph(graph, args.frames, args.timeout, out / "logs")
    except GraphStopped as exc:
        print(f"dkt-stack demo: {exc}", file=sys.stderr)
        return 1
    with recorder.lock:
        summary = recorder.summary(backend, note)
        summary["wall_s"] = round(wall_s, 2)
        summary["pngs"] = write_pngs(out, recorder.last)
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    for key, value in summary.items():
        if key not in ("pngs", "note"):
            print(f"  {key:26s} {value if not isinstance(value, float) else round(value, 2)}")
    print(f"dkt-stack demo: wrote {out / 'summary.json'} and {', '.join(summary['pngs'])}")
    if args.trials > 0:
        from dkt_grasping.trials.demo import run_demo_trials

        methods = ["raw", "ground_truth"] + (["dkt"] if backend == "dkt" else [])
        print(f"dkt-stack demo: {args.trials} simulated grasp trial(s) per surface type with {', '.join(methods)}")
        print(run_demo_trials(args.trials, out / "trials", methods))
    return 0
