"""``dkt-stack bench metric``: tag detection, scale fit, metric depth and point-cloud timings.

Runs on the synthetic tabletop (640x480 by default) on one CPU thread
(OpenCV, open3d/OpenMP and the AprilTag detector pinned to ``--threads``) and
reports the median milliseconds per frame of each stage:

  detect            grey conversion + AprilTag detection + IPPE poses + anchors
  fit               robust scale/shift fit over the anchors + temporal filter
  metric_depth      1 / (s r + t) over the full frame, range-checked
  cloud             back-projection + workspace crop (numpy)
  cloud_downsampled the same + open3d voxel grid
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from dkt_stack.cli.bench import add_runs_argument, median_of_runs

TARGETS_MS = {"fit_plus_metric_depth": 5.0, "cloud_downsampled": 25.0}


#: figures that vary from run to run (medians printed, min/max beside them)
FIGURES = ("ms", "p90_ms", "synthetic_render_ms")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result on one line")
    parser.add_argument("--repeats", type=int, default=30, help="timed repetitions per stage (median reported)")
    parser.add_argument("--width", type=int, default=640, help="frame width, px")
    parser.add_argument("--height", type=int, default=480, help="frame height, px")
    parser.add_argument("--voxel", type=float, default=0.005, help="voxel size for cloud_downsampled, m")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for OpenCV, open3d and the tag detector")
    parser.add_argument("--raw-anchors", action="store_true", help="also use gated raw-depth anchors in the fit")
    add_runs_argument(parser)


def _time_ms(fn, repeats: int) -> tuple[float, float, object]:
    out = fn()  # warm-up (caches, lazy initialisation)
    samples = []
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        out = fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(samples)), float(np.percentile(samples, 90)), out


def run(args: argparse.Namespace) -> dict:
    """``--runs`` measurements: medians, with min/max beside them (:func:`dkt_stack.cli.bench.median_of_runs`)."""
    return median_of_runs(lambda: _run_once(args), args.runs, FIGURES)


def _run_once(args: argparse.Namespace) -> dict:
    threads = max(int(args.threads), 1)
    # OpenMP reads this when open3d first starts its thread pool: set it before open3d is imported.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import cv2

    cv2.setNumThreads(threads)
    if "torch" in sys.modules:  # not needed here; keep it from competing if something imported it
        sys.modules["torch"].set_num_threads(threads)

    from dkt_perception.metric_scale import MetricDepthEstimator, MetricScaleConfig, RawAnchorConfig, metric_depth
    from dkt_perception.pointcloud import CloudBuilder, CloudConfig
    from dkt_perception.synthetic_scene import default_scene
    from dkt_perception.tags import TagConfig

    scene = default_scene(seed=0, width=int(args.width), height=int(args.height))
    t0 = time.perf_counter()
    frame = scene.render(1)
    render_ms = (time.perf_counter() - t0) * 1e3
    K = scene.intrinsics
    rng = np.random.default_rng(0)
    gt = frame.depth_gt_m
    # DKT-like input: affine-invariant disparity with a smooth 1% multiplicative error (a depth
    # network errs in patches, not per pixel; per-pixel noise would also inflate the voxel count).
    field = cv2.GaussianBlur(rng.standard_normal(gt.shape).astype(np.float32), (0, 0), 15.0)
    field *= 0.01 / max(float(field.std()), 1e-12)
    disparity = ((0.37 / gt + 0.12) * (1.0 + field)).astype(np.float32)

    cfg = MetricScaleConfig(tags=TagConfig(ids=[t.id for t in scene.tags], sizes_m=[scene.tags[0].size_m], threads=threads))
    if args.raw_anchors:
        cfg.raw = RawAnchorConfig(enabled=True)
    est = MetricDepthEstimator(cfg)
    raw = frame.raw_depth_m if args.raw_anchors else None

    detect_ms, detect_p90, obs = _time_ms(lambda: est.detector.observe(frame.rgb, K), args.repeats)

    def fit_and_filter():
        fit, _ = est.fit_frame(disparity, obs.anchors, raw)
        est.filter.update(fit, frame.stamp_ns)
        return fit

    fit_ms, fit_p90, fit = _time_ms(fit_and_filter, args.repeats)
    if fit is None:
        raise RuntimeError("benchmark scene produced no scale fit: the tag detector found no usable tags")
    depth_ms, depth_p90, depth = _time_ms(
        lambda: metric_depth(disparity, est.filter.scale, est.filter.shift, cfg.z_min_m, cfg.z_max_m), args.repeats
    )
    err = np.abs(depth - gt)[(gt >= 0.4) & (gt <= 1.0)]

    crop = {"crop_min": [-0.35, -0.3, 0.3], "crop_max": [0.35, 0.3, 1.1]}
    cloud_builder = CloudBuilder(CloudConfig(voxel_size_m=0.0, **crop))
    cloud_ms, cloud_p90, cloud = _time_ms(lambda: cloud_builder.build(depth, K, frame.rgb, downsample=False), args.repeats)
    ds_builder = CloudBuilder(CloudConfig(voxel_size_m=float(args.voxel), **crop))
    ds_ms, ds_p90, ds_cloud = _time_ms(lambda: ds_builder.build(depth, K, frame.rgb), args.repeats)

    ms = {"detect": detect_ms, "fit": fit_ms, "metric_depth": depth_ms, "cloud": cloud_ms, "cloud_downsampled": ds_ms}
    return {
        "frame": f"{K.width}x{K.height}",
        "threads": threads,
        "repeats": int(args.repeats),
        "ms": {k: round(v, 3) for k, v in ms.items()},
        "p90_ms": {
            k: round(v, 3)
            for k, v in {
                "detect": detect_p90,
                "fit": fit_p90,
                "metric_depth": depth_p90,
                "cloud": cloud_p90,
                "cloud_downsampled": ds_p90,
            }.items()
        },
        "synthetic_render_ms": round(render_ms, 3),
        "tags": len(obs.detections),
        "anchors": len(obs.anchors),
        "fit_mode": fit.mode,
        "metric_abs_err_mm_median": round(float(np.nanmedian(err)) * 1e3, 3),
        "cloud_points": len(cloud),
        "cloud_downsampled_points": len(ds_cloud),
        "voxel_m": float(args.voxel),
        "targets_ms": TARGETS_MS,
        "meets_targets": {
            "fit_plus_metric_depth": fit_ms + depth_ms <= TARGETS_MS["fit_plus_metric_depth"],
            "cloud_downsampled": ds_ms <= TARGETS_MS["cloud_downsampled"],
        },
    }
