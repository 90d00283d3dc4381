"""``dkt-stack bench grasp``: CPU grasp detection and planning timings on a synthetic tabletop cloud.

The cloud is a single camera view (table, two boxes and a cylinder), cut to
``--points`` points in the camera optical frame. Prints the median wall time
of the antipodal detector (``grasp_ms``) and of the CPU planner on its grasps
(``plan_ms``), and how many grasps were found.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dkt_grasping.grasp_detection import create_grasp_detector
from dkt_grasping.planning import PlanningError, create_planner
from dkt_grasping.tabletop_clouds import Box, Cylinder, look_at_camera, tabletop_cloud, to_camera_frame
from dkt_grasping.workspace import WorkspaceLimits
from dkt_stack.cli.bench import add_runs_argument, median_of_runs

#: Start configuration of the planning runs: arm raised above the table (rad).
Q_READY = np.array([0.0, 0.8, -0.9, 0.0, 0.5, 0.0])


#: figures that vary from run to run (medians printed, min/max beside them)
FIGURES = ("grasp_ms", "plan_ms")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one line of JSON")
    parser.add_argument("--points", type=int, default=20000, help="points in the tabletop cloud")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (median reported)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the scene")
    add_runs_argument(parser)


def benchmark_scene(points: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(camera-frame float32 cloud with exactly ``points`` points, T_base_camera)."""
    objects = [
        Box(0.30, -0.06, (0.04, 0.05, 0.08), yaw=0.3),
        Cylinder(0.27, 0.10, 0.025, 0.10),
        Box(0.34, 0.14, (0.05, 0.05, 0.05), yaw=-0.4),
    ]
    camera = np.array([0.0, 0.0, 0.55])
    T = look_at_camera(camera, [0.3, 0.0, 0.0])
    cloud = tabletop_cloud(objects, table_extent=(0.12, 0.5, -0.25, 0.25), density=2.5e5, camera_position=camera, noise=0.001, seed=seed)
    rng = np.random.default_rng(seed)
    if len(cloud) < points:
        raise ValueError(f"the synthetic scene has {len(cloud)} points, fewer than the {points} requested")
    cloud = cloud[rng.choice(len(cloud), points, replace=False)]
    return to_camera_frame(cloud, T), T


def run(args: argparse.Namespace) -> dict:
    """``--runs`` measurements: medians, with min/max beside them (:func:`dkt_stack.cli.bench.median_of_runs`)."""
    return median_of_runs(lambda: _run_once(args), args.runs, FIGURES)


def _run_once(args: argparse.Namespace) -> dict:
    cloud, T = benchmark_scene(args.points, args.seed)
    workspace = WorkspaceLimits()
    detector = create_grasp_detector("antipodal")
    planner = create_planner("cpu")
    base_cloud = (cloud.astype(np.float64) @ T[:3, :3].T + T[:3, 3]).astype(np.float32)
    grasp_ms, plan_ms, grasps, planned = [], [], [], None
    detector.detect(cloud, None, T, workspace)  # warm-up: imports, open3d and KD-tree first-call costs
    for _ in range(max(args.repeats, 1)):
        t0 = time.perf_counter()
        grasps = detector.detect(cloud, None, T, workspace)
        grasp_ms.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        try:
            planned = planner.plan_grasp(Q_READY, grasps, base_cloud)
        except PlanningError as exc:
            planned = exc
        plan_ms.append((time.perf_counter() - t0) * 1000)
    return {
        "points": len(cloud),
        "grasp_ms": round(float(np.median(grasp_ms)), 1),
        "plan_ms": round(float(np.median(plan_ms)), 1),
        "grasps_found": len(grasps),
        "plan_ok": not isinstance(planned, PlanningError),
        "plan_duration_s": round(planned.duration, 2) if not isinstance(planned, PlanningError) else None,
        "best_score": round(grasps[0].score, 3) if grasps else None,
        "repeats": max(args.repeats, 1),
    }
