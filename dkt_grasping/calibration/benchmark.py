"""``dkt-stack bench calibrate``: hand-eye accuracy against the synthetic rig's ground truth.

Per trial: a seeded synthetic rig (:func:`.synthetic.synthetic_rig`, true
geometry off the nominal by 15 mm / 3 deg), ``--poses`` automatic poses from
the real pose generator (PiPER kinematics, IK, collision checks), samples
from projected corners with ``--noise-px`` Gaussian noise (``--source
projection``) or from rendered tag images run through the detector
(``--source render``; ``--noise-px`` then adds to the detector's own error),
optional joint encoder noise, then the full solver. Prints the final
result's ``translation_error_mm`` and ``rotation_error_deg`` (median over
trials, with the worst), each OpenCV method's errors, and timings.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from dkt_grasping.calibration.samples import MODES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=MODES, default="eye_to_hand", help="calibration set-up")
    parser.add_argument("--poses", type=int, default=15, help="poses per calibration")
    parser.add_argument("--noise-px", type=float, default=0.3, help="Gaussian corner noise, px (per coordinate)")
    parser.add_argument("--source", choices=("projection", "render"), default="projection", help="projected corners or rendered, detected tags")
    parser.add_argument("--joint-noise-deg", type=float, default=0.0, help="Gaussian joint encoder noise, deg")
    parser.add_argument("--flange-noise-deg", type=float, default=0.0, help="solver.flange_noise_deg: flange error the refinement allows, deg")
    parser.add_argument("--flange-noise-mm", type=float, default=0.0, help="solver.flange_noise_mm: flange error the refinement allows, mm")
    parser.add_argument("--trials", type=int, default=5, help="independent calibrations (seeds seed..seed+trials-1)")
    parser.add_argument("--seed", type=int, default=0, help="first random seed")
    parser.add_argument("--no-loo", action="store_true", help="skip the leave-one-out spread (faster)")
    parser.add_argument("--json", action="store_true", help="print one line of JSON")


def run_trial(mode: str, poses: int, noise_px: float, source: str, joint_noise_deg: float, seed: int, solver=None) -> dict:
    """One calibration against the truth (``solver``: a SolverConfig); errors in mm and deg."""
    from dkt_grasping.calibration.collection import Collector, SampleRejected
    from dkt_grasping.calibration.config import CalibrationConfig
    from dkt_grasping.calibration.detection import DetectionConfig
    from dkt_grasping.calibration.poses import PosePlanConfig, generate_pose_plan
    from dkt_grasping.calibration.samples import TagCorners
    from dkt_grasping.calibration.session import CalibrationSession, SessionInfo
    from dkt_grasping.calibration.solver import SolverConfig, calibrate, pose_difference
    from dkt_grasping.calibration.synthetic import SyntheticSource, synthetic_rig

    rig = synthetic_rig(mode, seed=seed)
    t0 = time.perf_counter()
    plan = generate_pose_plan(
        mode, rig.X_nominal, rig.Y_nominal, rig.model, rig.intrinsics,
        PosePlanConfig(count=poses, distance_m=list(rig.distance_m), seed=seed), kinematics=rig.kinematics,
    )  # fmt: skip
    plan_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed + 1000)
    joint_noise = np.radians(joint_noise_deg)
    if source == "projection":
        samples = [rig.projected_sample(q, noise_px, rng, joint_noise) for q in plan.qs]
    else:
        config = CalibrationConfig(board=rig.board, save_images=False)
        with tempfile.TemporaryDirectory() as tmp:
            session = CalibrationSession.open_or_create(tmp, SessionInfo(mode, "left", "synthetic", rig.board, rig.intrinsics))
            collector = Collector(session, config, rig.kinematics)
            src = SyntheticSource(rig, plan.qs[0], seed=seed + 2000)
            for k, q in enumerate(plan.qs):
                src.move_to(q)
                try:
                    collector.capture(src, pose_index=k)
                except SampleRejected:
                    pass
            samples = session.samples
        for s in samples:  # extra corner noise and encoder noise on top of the detector's own error
            s.tags = [TagCorners(t.id, t.corners_px + rng.normal(0.0, noise_px, (4, 2)), t.decision_margin, t.edge_width_px) for t in s.tags]
            if joint_noise > 0:
                s.q = s.q + rng.normal(0.0, joint_noise, 6)
                s.T_base_flange = rig.flange(s.q)
    t0 = time.perf_counter()
    result = calibrate(samples, mode, rig.model, rig.intrinsics, solver or SolverConfig(), DetectionConfig())
    solve_s = time.perf_counter() - t0
    methods = {}
    for m in result.methods:
        if m.X is not None:
            mm, deg = pose_difference(m.X, rig.X_true)
            methods[m.name] = (mm, deg)
    mm, deg = pose_difference(result.X, rig.X_true)
    final = result.method_result(result.method)
    return {
        "translation_error_mm": mm,
        "rotation_error_deg": deg,
        "methods": methods,
        "poses_planned": len(plan.qs),
        "samples_used": len(result.used),
        "reprojection_rms_px": final.reprojection_rms_px,
        "loo_mm": final.loo_mm,
        "loo_deg": final.loo_deg,
        "std_translation_mm": result.std_translation_mm,
        "std_rotation_deg": result.std_rotation_deg,
        "rotation_span_deg": result.coverage.rotation_span_deg[:2],
        "problems": result.problems,
        "plan_s": plan_s,
        "solve_s": solve_s,
    }


def run(args: argparse.Namespace) -> dict:
    if args.poses < 3:
        raise ValueError(f"--poses must be >= 3, got {args.poses}")
    if args.noise_px < 0 or args.trials < 1:
        raise ValueError("--noise-px must be >= 0 and --trials >= 1")
    from dkt_grasping.calibration.solver import SolverConfig

    solver = SolverConfig(leave_one_out=not args.no_loo, flange_noise_deg=args.flange_noise_deg, flange_noise_mm=args.flange_noise_mm)
    trials = [run_trial(args.mode, args.poses, args.noise_px, args.source, args.joint_noise_deg, args.seed + k, solver) for k in range(args.trials)]

    def med(key):
        return round(float(np.median([t[key] for t in trials])), 4)

    def worst(key):
        return round(float(np.max([t[key] for t in trials])), 4)

    names = [n for n in trials[0]["methods"] if all(n in t["methods"] for t in trials)]
    return {
        "mode": args.mode,
        "poses": args.poses,
        "noise_px": args.noise_px,
        "source": args.source,
        "joint_noise_deg": args.joint_noise_deg,
        "flange_noise_deg": args.flange_noise_deg,
        "flange_noise_mm": args.flange_noise_mm,
        "trials": args.trials,
        "translation_error_mm": med("translation_error_mm"),
        "rotation_error_deg": med("rotation_error_deg"),
        "translation_error_mm_max": worst("translation_error_mm"),
        "rotation_error_deg_max": worst("rotation_error_deg"),
        "methods": {
            n: {
                "translation_error_mm": round(float(np.median([t["methods"][n][0] for t in trials])), 3),
                "rotation_error_deg": round(float(np.median([t["methods"][n][1] for t in trials])), 4),
            }
            for n in names
        },
        "reprojection_rms_px": med("reprojection_rms_px"),
        "loo_mm": None if args.no_loo else med("loo_mm"),
        "loo_deg": None if args.no_loo else med("loo_deg"),
        "std_translation_mm": med("std_translation_mm"),
        "std_rotation_deg": med("std_rotation_deg"),
        "samples_used_min": int(min(t["samples_used"] for t in trials)),
        "rotation_span_deg_min": [round(float(min(t["rotation_span_deg"][i] for t in trials)), 1) for i in (0, 1)],
        "problems": sorted({p for t in trials for p in t["problems"]}),
        "plan_s": med("plan_s"),
        "solve_s": med("solve_s"),
    }
