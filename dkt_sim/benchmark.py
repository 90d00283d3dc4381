"""``dkt-stack bench sim``: render, physics and trial speed of the MuJoCo Cobot Magic.

* ``render_ms``: median wall time of the three raw passes of one D435 frame at
  ``--width`` x ``--height`` (RGB, depth, segmentation) on a seeded scene;
  ``capture_ms`` adds the see-through depth pass and the D435 failure model
  (what a trial and sim_node pay per frame).
* ``physics_realtime_factor``: simulated seconds per wall second while one arm
  runs a hand-placed grasp (approach, close, lift, hold) with the execution
  monitor on, the other arm holding still.
* ``trial_s``: median wall time of one ``simulation`` trial (the whole
  pipeline: scene, capture, depth, cloud, grasp detection, planning, physics,
  picture strip), ``--trials`` trials with ground-truth depth.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one line of JSON")
    parser.add_argument("--width", type=int, default=640, help="D435 image width (px)")
    parser.add_argument("--height", type=int, default=480, help="D435 image height (px)")
    parser.add_argument("--renders", type=int, default=5, help="timed frames for render_ms and capture_ms (median reported)")
    parser.add_argument("--trials", type=int, default=3, help="timed trials for trial_s (median reported); 0 skips them")
    parser.add_argument("--surface", default="diffusive", help="surface class of the trials' targets")
    parser.add_argument("--seed", type=int, default=0, help="scene and session seed")


def run(args: argparse.Namespace) -> dict:
    from dkt_sim.camera import SimCamera
    from dkt_sim.execution import SequenceRunner, run_to_end
    from dkt_sim.objects import randomise_scene, single_object_scene
    from dkt_sim.scripted import grasp_sequence, tangential_grasp_pose
    from dkt_sim.world import SimWorld

    if args.renders < 1 or args.trials < 0 or args.width < 64 or args.height < 48:
        raise ValueError("bench sim needs --renders >= 1, --trials >= 0 and an image of at least 64x48 px")
    out: dict = {"width": args.width, "height": args.height}
    # -- renders
    world = SimWorld(randomise_scene(args.seed, "translucent"), width=args.width, height=args.height)
    camera = SimCamera(world, seed=args.seed)
    try:
        camera.snapshot()
        camera.capture(0)  # warm-up: GL context, shader compilation, texture upload
        render, capture = [], []
        for i in range(args.renders):
            t0 = time.perf_counter()
            camera.render_passes(see_through=False)
            render.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            camera.capture(i + 1)
            capture.append((time.perf_counter() - t0) * 1000)
    finally:
        camera.close()
    out["render_ms"] = round(float(np.median(render)), 1)
    out["capture_ms"] = round(float(np.median(capture)), 1)
    # -- physics: a scripted grasp of a can in front of the left arm
    world = SimWorld(single_object_scene("soda_can", 0.45, 0.2), width=96, height=72)
    sequence = grasp_sequence(world.arm_q("left"), tangential_grasp_pose(world, "left", 0), 0.07)
    sim0, t0 = world.time, time.perf_counter()
    report = run_to_end(world, SequenceRunner(world, "left", sequence, target=0, hold_s=2.0))
    wall = time.perf_counter() - t0
    out["physics_realtime_factor"] = round((world.time - sim0) / wall, 2)
    out["physics_sim_s"] = round(world.time - sim0, 2)
    out["physics_step_us"] = round(wall / max(1, round((world.time - sim0) / world.model.opt.timestep)) * 1e6, 1)
    out["physics_grasp_held"] = bool(report.grips.get("held") is not None and report.grips["held"].holds(1))
    # -- trials
    if args.trials:
        from dkt_grasping.trials.backend import trial_seed
        from dkt_grasping.trials.session import SessionSpec, SimulationSettings
        from dkt_grasping.trials.simulation import SimulationTrialBackend

        spec = SessionSpec(surface=args.surface, method="ground_truth", seed=args.seed, simulation=SimulationSettings(width=args.width, height=args.height))
        backend = SimulationTrialBackend(spec)
        times, stages = [], []
        for k in range(args.trials):
            t0 = time.perf_counter()
            attempt = backend.run_trial(k, 1, trial_seed(args.seed, k, 1))
            times.append(time.perf_counter() - t0)
            stages.append(attempt.failure_stage or (attempt.physics.stage or "held" if attempt.physics else "?"))
        out["trial_s"] = round(float(np.median(times)), 2)
        out["trial_s_min_max"] = [round(min(times), 2), round(max(times), 2)]
        out["trial_outcomes"] = stages
    out["renders"], out["trials"] = args.renders, args.trials
    return out
