"""``dkt-stack bench replay``: replay frames per second on a generated realsense-like bag, per stage.

Generates a bag of the synthetic tabletop (640x480, 300 frames, 16UC1 raw
depth, no ground truth: a plain camera recording) in a temporary folder, then
times :func:`replay_bag` on it (generation is not timed). ``stage_ms`` are mean
milliseconds per frame, summed over the replay's threads (they overlap, so
they add up to more than the wall time): ``read`` (bag reading +
deserialisation), ``decode`` (images -> arrays), ``depth`` (backend),
``metric`` (tags + scale fit + metric depth), ``cloud`` (point cloud),
``serialise`` (output messages -> CDR), ``write`` (input copies and outputs
into the output bag).

The bag is generated once; the replay runs ``--runs`` times into fresh outputs
(medians with min/max: see :func:`dkt_stack.cli.bench.median_of_runs`).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from dkt_stack.cli.bench import add_runs_argument, median_of_runs
from dkt_stack.errors import UserError

#: figures that vary from run to run
FIGURES = ("frames_per_second", "wall_s", "stage_ms")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one-line JSON")
    parser.add_argument("--frames", type=int, default=300, help="frames in the generated bag")
    parser.add_argument("--width", type=int, default=640, help="image width (px)")
    parser.add_argument("--height", type=int, default=480, help="image height (px)")
    parser.add_argument("--backend", default="raw", choices=["raw", "dkt"], help="dkt uses the tiny random model (pipeline overhead only)")
    parser.add_argument("--mode", default="offline", choices=["offline", "streaming"], help="replay mode (see dkt-stack replay)")
    parser.add_argument("--storage", default="mcap", choices=["sqlite3", "mcap"], help="storage of the generated and the output bag (mcap: what ros2 bag record writes by default since Iron)")
    parser.add_argument("--no-clouds", action="store_true", help="do not write <ns>/points (clouds are still built by the metric step)")
    parser.add_argument("--cloud-stride", type=int, default=2, help="pipeline.cloud.stride: back-project every n-th pixel (2 = the node's default)")
    parser.add_argument("--voxel", type=float, default=0.0, help="pipeline.cloud.voxel_size_m (0 = the node's default: no voxel grid)")
    parser.add_argument("--checkpoint-s", type=float, default=1.0,
                        help="checkpoints of the output (fsync + progress file, for --resume) every N s, as replay's default; 1e9 = none")
    parser.add_argument("--workdir", default="", help="an existing folder for the bags (default: a temporary folder; removed afterwards either way)")
    add_runs_argument(parser)


def run(args: argparse.Namespace) -> dict:
    from dkt_perception.depth import DepthConfig
    from dkt_perception.replay.bag_replay import ReplayConfig, replay_bag
    from dkt_perception.replay.synthetic_bag import write_synthetic_bag
    from dkt_perception.synthetic_scene import default_scene

    workdir = Path(args.workdir) if args.workdir else None
    if workdir is not None and not workdir.is_dir():
        raise UserError(f"--workdir {workdir}: no such folder", fix=f"create it first (mkdir -p {workdir}), or leave --workdir out for a temporary folder")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        scene = default_scene(0, width=args.width, height=args.height)
        bag = write_synthetic_bag(work / "in", args.frames, scene=scene, storage=args.storage, ground_truth=False)
        generate_s = time.perf_counter() - t0
        depth = DepthConfig(backend="raw")
        if args.backend == "dkt":
            depth = DepthConfig(backend="dkt", model="tiny", random_weights=True, height=16, width=16, steps=1, device="cpu")
        config = ReplayConfig(mode=args.mode, depth=depth, checkpoint_s=args.checkpoint_s)
        config.write_clouds = not args.no_clouds
        # replace(): the cloud config's checks run on the command-line values (stride >= 1, voxel >= 0)
        config.pipeline.cloud = replace(config.pipeline.cloud, stride=args.cloud_stride, voxel_size_m=args.voxel)
        runs = []

        def measure() -> dict:
            out = work / f"out{len(runs)}"
            summary = replay_bag(bag, out, config, progress=False)
            runs.append(summary)
            out_mb = sum(p.stat().st_size for p in out.iterdir()) / 1e6
            shutil.rmtree(out)  # one output at a time on disk
            return {
                "frames_per_second": round(summary.frames_per_second, 2),
                "wall_s": round(summary.wall_s, 3),
                "stage_ms": {k: round(v, 3) for k, v in summary.stage_ms.items()},
                "output_mb": round(out_mb, 1),
            }

        figures = median_of_runs(measure, args.runs, FIGURES)
        in_mb = sum(p.stat().st_size for p in (work / "in").iterdir()) / 1e6
    summary = runs[-1]
    return {
        "frames": summary.frames,
        "width": args.width,
        "height": args.height,
        "backend": summary.backend,
        "mode": summary.mode,
        "storage": args.storage,
        **figures,
        "frames_metric": summary.frames_metric,
        "clouds": summary.clouds,
        "cloud_stride": args.cloud_stride,
        "voxel_m": args.voxel,
        "checkpoint_s": args.checkpoint_s,
        "input_mb": round(in_mb, 1),
        "generate_s": round(generate_s, 2),
    }
