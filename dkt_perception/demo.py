"""``dkt-stack demo``: the perception graph on the synthetic scene, as real ROS 2 nodes.

Starts camera (synthetic) -> depth -> metric depth -> cloud from the
``perception`` graph description (the same one ``ros2 launch`` uses), watches
the topics from a probe node, and after N metric frames writes
``summary.json`` and a few PNGs. The backend is ``dkt`` when its weights are
present, otherwise ``raw`` (the simulated sensor's depth) with a note.
``--backend dkt --model tiny --random-weights`` runs the DKT path of the live
graph without weights: the depth is meaningless, the run checks the plumbing
(frames in, relative and metric depth and clouds out, streaming latency).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from dkt_stack.errors import UserError

DEFAULT_OUT = "outputs/demo"
#: DKT input size of the tiny random-weights plumbing check (pixels; small so it runs on a CPU)
TINY_MODEL_SIZE = (96, 128)
RANDOM_WEIGHTS_NOTE = "random weights: the depth is meaningless; this run is a plumbing check of the DKT path (frames in, depth and clouds out)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=60, help="metric depth frames to collect (default 60)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder for summary.json and PNGs (default {DEFAULT_OUT})")
    parser.add_argument("--backend", default="auto", choices=["auto", "dkt", "raw", "depth_anything_v2"], help="depth backend; auto = dkt if weights are present, else raw")
    parser.add_argument("--weights-dir", default="", help="DKT weights folder (default $DKT_WEIGHTS_DIR or ~/.cache/dkt_stack/weights)")
    parser.add_argument("--model", default="1.3b", choices=["1.3b", "tiny"], help="DKT architecture (tiny: the test config, with --random-weights)")
    parser.add_argument(
        "--random-weights", action="store_true",
        help="DKT with random weights: meaningless depth, a plumbing check of the live DKT path without weights",
    )  # fmt: skip
    parser.add_argument("--fps", type=float, default=15.0, help="synthetic camera rate (Hz)")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    parser.add_argument(
        "--trials", type=int, default=0, metavar="N",
        help="also run N grasp trials per surface type (translucent, reflective, diffusive) in the MuJoCo physics simulation, "
        "print the success-rate report and where each trial's pictures are",
    )  # fmt: skip


def choose_backend(requested: str, weights_dir: str, random_weights: bool = False) -> tuple[str, str]:
    """(backend, note): dkt when requested or when auto and its weights are complete.

    ``dkt`` requested without its weights (and without ``random_weights``) fails
    here, before any node starts (MissingWeightsError: the fetch command, or ``--backend auto``).
    """
    from dkt_perception.depth import MissingWeightsError
    from dkt_perception.depth.weights import fetch_command, runtime_weights

    if requested == "dkt" and not random_weights:
        try:
            runtime_weights(weights_dir or None)
        except MissingWeightsError as exc:
            raise MissingWeightsError(exc.what, fix=f"{exc.fix}; or use --backend auto (raw depth while DKT's weights are missing)") from exc
        return "dkt", ""
    if requested != "auto":
        return requested, ""

    try:
        runtime_weights(weights_dir or None)
        return "dkt", ""
    except MissingWeightsError:
        root = Path(weights_dir) if weights_dir else None
        from dkt_perception.depth.weights import default_weights_dir

        return "raw", f"note: DKT weights not found, using the simulated sensor's raw depth; fetch them with `{fetch_command(root or default_weights_dir())}`"


class DemoRecorder:
    """Per-frame figures computed as messages arrive (nothing big is kept but the last frame).

    ``frames_in`` is what the camera published (its ``frames_published`` on
    /diagnostics), not what the probe happened to receive (``frames_seen``): a
    busy probe drops frames, the camera's count does not.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.frames_seen = 0
        self.frames_published: int | None = None  #: the camera's own count, from its diagnostics
        self.camera_report = threading.Condition(self.lock)
        self._camera_reports = 0
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
            self.frames_seen += 1
            self.last["rgb"] = cv.image_to_numpy(msg)

    def on_diagnostics(self, msg) -> None:
        """The camera node's status (hardware_id ``camera:<source>``) carries ``frames_published``."""
        for status in msg.status:
            if not status.hardware_id.startswith("camera:"):
                continue
            values = {kv.key: kv.value for kv in status.values}
            if "frames_published" in values:
                with self.lock:
                    self.frames_published = int(values["frames_published"])
                    self._camera_reports += 1
                    self.camera_report.notify_all()

    def wait_camera_report(self, timeout_s: float) -> bool:
        """Wait for the camera's next diagnostics (published once a second), so ``frames_in`` covers every frame out."""
        with self.lock:
            seen = self._camera_reports
            return self.camera_report.wait_for(lambda: self._camera_reports > seen, timeout_s)

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
            "frames_in": self.frames_published if self.frames_published is not None else self.frames_seen,
            "frames_in_source": "camera diagnostics" if self.frames_published is not None else "probe (no camera diagnostics received)",
            "frames_out": len(self.cloud_points),
            "rate_hz_out": (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 else None,
            "latency_ms_p50": pct(self.latency_ms, 50),
            "latency_ms_p95": pct(self.latency_ms, 95),
            "metric_abs_err_mm_median": pct(self.errors_mm, 50),
            "metric_frames_compared": len(self.errors_mm),
            "cloud_points_median": pct(self.cloud_points, 50),
        }


def write_png(path: Path, rgb: np.ndarray) -> None:
    """uint8 (H, W, 3) RGB -> PNG, atomically (mode as any file the stack writes)."""
    import cv2

    from dkt_stack.atomic_files import write_bytes_atomic

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise ValueError(f"OpenCV could not encode {path.name}")
    write_bytes_atomic(path, buf.tobytes())


def write_pngs(out: Path, last: dict) -> list[str]:
    """colour.png, metric_depth.png (and ground_truth_depth.png), cloud_top.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dkt_perception.visualization import colorize_with_bar
    from dkt_stack import conversions as cv
    from dkt_stack.atomic_files import atomic_path

    written = []
    if "rgb" in last:
        write_png(out / "colour.png", last["rgb"])
        written.append("colour.png")
    if "metric" in last:
        gt = last.get("gt")
        lo, hi = (np.nanpercentile(gt, [2, 98]) if gt is not None else (None, None))  # one scale for both: comparable colours
        write_png(out / "metric_depth.png", colorize_with_bar(last["metric"], "metric depth (m)", lo, hi))
        written.append("metric_depth.png")
        if gt is not None:
            write_png(out / "ground_truth_depth.png", colorize_with_bar(gt, "ground-truth depth (m)", lo, hi))
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
        with atomic_path(out / "cloud_top.png") as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        written.append("cloud_top.png")
    return written


def accept_any_scale(graph) -> None:
    """Random-weights plumbing check: let metric_depth accept any fit, so that metric depth and clouds flow.

    Random disparity fits the tags badly and would (rightly) be rejected, leaving nothing downstream to check.
    """
    metric = graph.node("metric_depth").parameters.setdefault("pipeline", {}).setdefault("metric", {})
    metric.setdefault("fit", {}).update(min_inlier_ratio=0.0, max_median_residual_mm=1.0e9)
    metric.setdefault("filter", {}).update(gate_rel=1.0e9)


class GraphStopped(RuntimeError):
    """A node of the observed graph exited, or the frames did not come in time."""


def observe_perception_graph(
    graph, frames: int, timeout_s: float, log_dir: Path, accuracy: bool = True, report=None
) -> tuple[DemoRecorder, float]:
    """Run a resolved perception graph until ``frames`` clouds arrived; returns the recorder and the wall time.

    The probe subscribes to the camera namespace's cloud topic and, with
    ``accuracy``, to colour, ground truth and metric depth (for the error
    figures and the PNGs; a benchmark leaves them out so the probe does not
    compete for the CPU it measures). A node that exits is reported through
    ``report`` in one line (its own reason) and restarted when its description
    says so; one that is down for good raises GraphStopped.
    """
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image, PointCloud2

    from dkt_stack.ros import topics
    from dkt_stack.ros.harness import RosHarness
    from dkt_stack.ros.qos import sensor_subscription_qos
    from dkt_stack.runner import GraphRunner

    recorder = DemoRecorder()
    recorder.target = frames
    harness = RosHarness()
    qos = sensor_subscription_qos()
    camera = graph.node("camera")
    ns = camera.namespace
    if accuracy:
        harness.probe.create_subscription(Image, topics.camera_topic(topics.COLOR, ns, camera.name), recorder.on_color, qos)
        harness.probe.create_subscription(Image, topics.camera_topic(topics.GROUND_TRUTH_DEPTH, ns, camera.name), recorder.on_gt, qos)
        harness.probe.create_subscription(Image, topics.output_topic(topics.METRIC_DEPTH, ns), recorder.on_metric, qos)
    harness.probe.create_subscription(PointCloud2, topics.output_topic(topics.POINTS, ns), recorder.on_points, qos)
    harness.probe.create_subscription(DiagnosticArray, "/diagnostics", recorder.on_diagnostics, 10)
    runner = GraphRunner(graph, log_dir=log_dir, report=report)
    started = time.monotonic()
    try:
        runner.start()
        while not recorder.done.wait(0.5):
            down = runner.poll()
            if down:
                raise GraphStopped(f"stopped: {', '.join(p.node.fully_qualified_name for p in down)} down (reason above; logs in {log_dir})")
            if time.monotonic() - started > timeout_s:
                raise GraphStopped(f"timed out after {timeout_s:.0f} s with {len(recorder.cloud_points)} frames; logs in {log_dir}")
        wall_s = time.monotonic() - started
        if accuracy:
            recorder.wait_camera_report(3.0)  # the camera's count after the last cloud (its diagnostics come once a second)
    finally:
        runner.stop()
        harness.close()
    return recorder, wall_s


def _raise_keyboard_interrupt(*_) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    from dkt_stack.atomic_files import write_text_atomic
    from dkt_stack.graph import resolve_graph

    if args.frames < 1:
        raise UserError(f"--frames must be >= 1, got {args.frames}", fix="ask for at least one frame")
    # dkt without weights (and without --random-weights): one line, before any node starts
    backend, note = choose_backend(args.backend, args.weights_dir, random_weights=args.random_weights)
    # SIGTERM (timeout, systemd) stops the node processes like Ctrl-C instead of orphaning them
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if note:
        print(note)
    overrides = {"camera_source": "synthetic", "backend": backend, "fps": args.fps, "weights_dir": args.weights_dir}
    plumbing = backend == "dkt" and args.random_weights
    if backend == "dkt":
        overrides |= {"model": args.model, "random_weights": args.random_weights}
        if args.model == "tiny":
            overrides |= {"model_height": TINY_MODEL_SIZE[0], "model_width": TINY_MODEL_SIZE[1]}
    graph = resolve_graph("perception", overrides)
    if plumbing:
        note = RANDOM_WEIGHTS_NOTE
        print(f"note: {note}")
        accept_any_scale(graph)
    print(f"dkt-stack demo: {len(graph.nodes)} nodes ({', '.join(n.name for n in graph.nodes)}), backend {backend}, {args.frames} frames")
    try:
        recorder, wall_s = observe_perception_graph(
            graph, args.frames, args.timeout, out / "logs", report=lambda line: print(f"dkt-stack demo: {line}", file=sys.stderr, flush=True)
        )
    except GraphStopped as exc:
        print(f"dkt-stack demo: {exc}", file=sys.stderr)
        return 1
    with recorder.lock:
        summary = recorder.summary(backend if not plumbing else f"dkt ({args.model}, random weights)", note)
        if plumbing:
            summary["depth_meaningful"] = False
            summary["purpose"] = "plumbing check"
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
