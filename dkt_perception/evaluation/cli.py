"""``dkt-stack eval INPUT``: the paper's depth table over a replayed bag or a dataset folder.

Examples::

    # a bag replayed by `dkt-stack replay` that holds /camera/ground_truth/depth
    dkt-stack eval replayed/ --out results/
    # a ClearPose or DREDS folder (layouts: dkt_perception.evaluation.datasets), DKT over every sequence
    dkt-stack eval /data/clearpose/set1 --backend dkt --max-frames 120 --out results/

Bags: ``<ns>/depth/relative`` is aligned in disparity space (one scale and shift
per sequence), ``<ns>/depth/metric`` is scored as is (``--pred TOPIC:SPACE``
chooses others). Datasets: each sequence goes through the backend's
``infer_video`` and is aligned in ``--space`` (disparity for every backend: the
``raw`` backend's 1/z then gets an identity-like fit). Pixels: ground truth
within [--depth-min, --depth-max] m and a finite prediction; ``coverage`` is the
fraction of such ground-truth pixels the method predicted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from dkt_perception.evaluation.datasets import LAYOUTS, DatasetError
from dkt_perception.evaluation.metrics import format_table, mean_over_sequences, valid_mask


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="a rosbag2 folder (with a ground-truth depth topic) or a dataset folder")
    parser.add_argument("--layout", default="auto", choices=["auto", "bag", *LAYOUTS], help="input kind (auto: metadata.yaml = bag, else by file names)")
    parser.add_argument("--out", help="folder for metrics.csv and metrics.json (written atomically)")
    parser.add_argument("--depth-min", type=float, default=0.3, help="ground truth nearer than this is not evaluated, m (ClearPose: 0.3)")
    parser.add_argument("--depth-max", type=float, default=1.5, help="ground truth farther than this is not evaluated, m (ClearPose: 1.5)")
    bag = parser.add_argument_group("bags")
    bag.add_argument("--gt-topic", help="ground-truth depth topic (default: <ns>/ground_truth/depth)")
    bag.add_argument("--pred", action="append", default=[], metavar="TOPIC:SPACE",
                     help="prediction topic and alignment space (disparity, depth or none); repeatable")
    data = parser.add_argument_group("datasets")
    data.add_argument("--backend", default="dkt", choices=["dkt", "raw", "depth_anything_v2"], help="depth backend run over each sequence")
    data.add_argument("--space", default="disparity", choices=["disparity", "depth", "none"], help="alignment space of the backend's output")
    data.add_argument("--max-frames", type=int, default=0, help="at most this many frames per sequence (0 = all)")
    data.add_argument("--stride", type=int, default=1, help="use every n-th frame")
    data.add_argument("--depth-scale", type=float, default=1000.0, help="ClearPose PNG depth units per metre when no -meta.mat says otherwise")
    data.add_argument("--model", default="1.3b", choices=["1.3b", "tiny"], help="DKT architecture (tiny: the test config)")
    data.add_argument("--random-weights", action="store_true", help="DKT with random weights (smoke tests only)")
    data.add_argument("--weights-dir", default="", help="DKT weights folder (default $DKT_WEIGHTS_DIR or ~/.cache/dkt_stack/weights)")
    data.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    data.add_argument("--steps", type=int, default=5, help="denoising steps (default 5)")
    data.add_argument("--height", type=int, default=480, help="model input height, multiple of 16")
    data.add_argument("--width", type=int, default=832, help="model input width, multiple of 16")


def _row(name: str, metrics, coverage: float) -> dict:
    return {"name": name, **metrics.row(), "valid_pixels": metrics.valid_pixels, "frames": metrics.frames, "coverage": coverage,
            "space": metrics.alignment.space, "scale": metrics.alignment.scale, "shift": metrics.alignment.shift}


def evaluate_bag_rows(args: argparse.Namespace) -> list[dict]:
    from dkt_perception.evaluation.bag_eval import evaluate_bag

    predictions = []
    for item in args.pred:
        topic, _, space = item.rpartition(":")
        if not topic or space not in ("disparity", "depth", "none"):
            raise ValueError(f"--pred expects TOPIC:SPACE with SPACE disparity, depth or none, got {item!r}")
        predictions.append((topic, space))
    results = evaluate_bag(args.input, predictions or None, args.gt_topic, args.depth_min, args.depth_max)
    return [_row(f"{r.topic} ({r.space})", r.metrics, r.coverage) for r in results]


def evaluate_dataset_rows(args: argparse.Namespace, layout: str) -> list[dict]:
    from tqdm import tqdm

    from dkt_perception.depth import DepthConfig, create_backend
    from dkt_perception.evaluation.datasets import list_sequences, load_sequence
    from dkt_perception.evaluation.metrics import evaluate_sequence

    files = list_sequences(args.input, layout, args.depth_scale)  # type: ignore[arg-type]
    cfg = DepthConfig(backend=args.backend, model=args.model, random_weights=args.random_weights, weights_dir=args.weights_dir,
                      device=args.device, steps=args.steps, height=args.height, width=args.width)
    backend = create_backend(args.backend, cfg)
    rows, results = [], []
    for seq_files in tqdm(files, desc=f"eval {args.backend}", unit="seq"):
        seq = load_sequence(seq_files, args.max_frames, args.stride)
        if args.backend == "raw" and seq.raw_depth_m is None:
            raise DatasetError(f"sequence {seq.name} has no raw sensor depth: the raw backend cannot run on it")
        backend.reset()
        disparity = backend.infer_video(seq.rgb, seq.raw_depth_m).disparity
        metrics = evaluate_sequence(disparity, seq.gt_depth_m, args.space, args.depth_min, args.depth_max)
        gt_ok = valid_mask(seq.gt_depth_m, np.zeros_like(seq.gt_depth_m), args.depth_min, args.depth_max)
        coverage = float((gt_ok & np.isfinite(disparity)).sum() / max(gt_ok.sum(), 1))
        rows.append(_row(seq.name, metrics, coverage))
        results.append(metrics)
    mean = mean_over_sequences(results)
    rows.append({"name": "mean", **mean, "valid_pixels": sum(r.valid_pixels for r in results), "frames": sum(r.frames for r in results),
                 "coverage": float(np.mean([r["coverage"] for r in rows])), "space": args.space})
    return rows


def run(args: argparse.Namespace) -> int:
    from dkt_perception.depth import WeightsError
    from dkt_perception.evaluation.report import write_report
    from dkt_perception.replay.bag_io import BagError

    path = Path(args.input)
    layout = args.layout
    if layout == "auto":
        layout = "bag" if (path / "metadata.yaml").exists() else "auto"
    try:
        if layout == "bag":
            rows = evaluate_bag_rows(args)
        else:
            if layout == "auto":
                from dkt_perception.evaluation.datasets import detect_layout

                layout = detect_layout(path)
            rows = evaluate_dataset_rows(args, layout)
    except (BagError, DatasetError, WeightsError, ValueError) as exc:
        print(f"dkt-stack eval: {exc}", file=sys.stderr)
        return 1
    print(format_table({r["name"]: r for r in rows}))
    if args.out:
        report = {"input": str(path), "layout": layout, "depth_range_m": [args.depth_min, args.depth_max], "rows": rows}
        if layout != "bag":
            report["backend"] = args.backend
        csv_path, json_path = write_report(args.out, report)
        print(f"wrote {csv_path} and {json_path}")
    return 0
