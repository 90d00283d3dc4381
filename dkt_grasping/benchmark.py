"""``dkt-stack bench grasp``: executable grasps, and detection and planning timings, on synthetic tabletop clouds.

Scenes: ``--scenes`` seeded tabletops, each a single camera view (table plus
three or four boxes and cylinders placed across the PiPER's workspace, base
frame x 0.18-0.50 m, y -0.25-0.25 m), cut to ``--points`` points in the camera
optical frame. Per scene the detector publishes what grasp_node publishes
(executable grasps, best first), and the CPU planner is asked for a full plan
(move to pre-grasp, approach, close, lift) of each of the top 10 alone.

Prints ``reachable_fraction`` (planned / published top-10 grasps over all
scenes), ``grasps_found`` (median per scene), ``grasp_ms`` and ``plan_ms``
(median over repeats and scenes, with min and max: detection, and the goal-set
plan over all published grasps) and the drop counts by reason.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np

from dkt_grasping.grasp_detection import create_grasp_detector
from dkt_grasping.grasp_detection.executable import ExecutableGraspDetector
from dkt_grasping.planning import PlanningError, create_planner
from dkt_grasping.reachability import ReachabilityChecker
from dkt_grasping.tabletop_clouds import Box, Cylinder, look_at_camera, tabletop_cloud, to_camera_frame
from dkt_grasping.workspace import WorkspaceLimits
from dkt_stack.transforms import transform_points

#: Start configuration of the planning runs: arm raised above the table (rad).
Q_READY = np.array([0.0, 0.8, -0.9, 0.0, 0.5, 0.0])
#: Published grasps per scene whose plans count towards reachable_fraction.
TOP_K = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one line of JSON")
    parser.add_argument("--points", type=int, default=20000, help="points in each tabletop cloud")
    parser.add_argument("--scenes", type=int, default=4, help="tabletop scenes (seeds 0..N-1); at least 3")
    parser.add_argument("--repeats", type=int, default=3, help="timed detections and plans per scene (median reported)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first scene")


def scene_objects(seed: int) -> list:
    """Three or four boxes and cylinders spread over the workspace (base frame), seeded."""
    rng = np.random.default_rng(seed)
    # one object per region of the workspace: near/far x and both sides, so reach is exercised everywhere
    regions = [(0.18, 0.28, -0.22, -0.05), (0.18, 0.28, 0.05, 0.22), (0.34, 0.48, -0.22, -0.05), (0.34, 0.48, 0.05, 0.22)]
    objects = []
    for x0, x1, y0, y1 in regions[: 3 + seed % 2]:
        x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
        if rng.random() < 0.5:
            size = (rng.uniform(0.03, 0.05), rng.uniform(0.04, 0.06), rng.uniform(0.05, 0.10))
            objects.append(Box(x, y, size, yaw=rng.uniform(-0.8, 0.8)))
        else:
            objects.append(Cylinder(x, y, rng.uniform(0.02, 0.03), rng.uniform(0.06, 0.12)))
    return objects


def benchmark_scene(points: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(camera-frame float32 cloud with exactly ``points`` points, T_base_camera) of scene ``seed``."""
    camera = np.array([0.0, 0.0, 0.6])
    T = look_at_camera(camera, [0.33, 0.0, 0.0])
    cloud = tabletop_cloud(
        scene_objects(seed), table_extent=(0.12, 0.55, -0.3, 0.3), density=2.5e5, camera_position=camera, noise=0.001, seed=seed
    )
    rng = np.random.default_rng(seed)
    if len(cloud) < points:
        raise ValueError(f"the synthetic scene has {len(cloud)} points, fewer than the {points} requested")
    cloud = cloud[rng.choice(len(cloud), points, replace=False)]
    return to_camera_frame(cloud, T), T


def _spread(values: list[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"median": round(float(np.median(v)), 1), "min": round(float(v.min()), 1), "max": round(float(v.max()), 1)}


def run(args: argparse.Namespace) -> dict:
    if args.scenes < 3:
        raise ValueError(f"--scenes must be >= 3 (objects across the workspace), got {args.scenes}")
    workspace = WorkspaceLimits()
    detector = ExecutableGraspDetector(create_grasp_detector("antipodal"), ReachabilityChecker())
    planner = create_planner("cpu")
    grasp_ms, plan_ms, found, dropped = [], [], [], Counter()
    planned = tried = 0
    failures = Counter()
    for scene in range(args.seed, args.seed + args.scenes):
        cloud, T = benchmark_scene(args.points, scene)
        base_cloud = transform_points(T, cloud.astype(np.float64))
        if scene == args.seed:
            detector.detect(cloud, None, T, workspace)  # warm-up: imports, open3d and KD-tree first-call costs
        for _ in range(max(args.repeats, 1)):
            t0 = time.perf_counter()
            grasps = detector.detect(cloud, None, T, workspace)
            grasp_ms.append((time.perf_counter() - t0) * 1000)
        found.append(len(grasps))
        dropped.update(detector.last.dropped)
        if grasps:
            for _ in range(max(args.repeats, 1)):
                t0 = time.perf_counter()
                try:
                    planner.plan_grasp(Q_READY, grasps, base_cloud)
                except PlanningError:
                    pass  # a failed goal-set plan costs the node time too: timed all the same; failures are counted per grasp below
                plan_ms.append((time.perf_counter() - t0) * 1000)
        for g in grasps[:TOP_K]:
            tried += 1
            try:
                planner.plan_grasp(Q_READY, [g], base_cloud)
                planned += 1
            except PlanningError as exc:
                failures[exc.kind] += 1
    return {
        "scenes": args.scenes,
        "points": args.points,
        "reachable_fraction": round(planned / tried, 3) if tried else None,
        "top_grasps_planned": planned,
        "top_grasps_tried": tried,
        "plan_failures": dict(failures),
        "grasps_found": int(np.median(found)),
        "grasps_found_per_scene": found,
        "candidates_dropped": dict(dropped),
        "grasp_ms": _spread(grasp_ms)["median"],
        "grasp_ms_spread": _spread(grasp_ms),
        "plan_ms": _spread(plan_ms)["median"] if plan_ms else None,
        "plan_ms_spread": _spread(plan_ms) if plan_ms else None,
        "repeats": max(args.repeats, 1),
    }
