"""``dkt-stack bench calibrate``: hand-eye accuracy against a simulated rig's ground truth.

Per trial: a seeded synthetic rig (:func:`.synthetic.synthetic_rig`, true
geometry off the nominal by 15 mm / 3 deg), ``--poses`` automatic poses from
the real pose generator (PiPER kinematics, IK, collision checks), samples
from projected corners with ``--noise-px`` Gaussian noise (``--source
projection``) or from rendered tag images run through the detector
(``--source render``; ``--noise-px`` then adds to the detector's own error),
optional joint encoder noise, then the full solver. ``--source mujoco`` runs
the same in the MuJoCo Cobot Magic (:mod:`.mujoco_rig`): the board rendered
on the gripper (or the table), the arm driven to each pose in physics, the
D435's colour renders through the detector, the truth read from the model.
Prints the final result's ``translation_error_mm`` and ``rotation_error_deg``
(median over trials, with the worst), each OpenCV method's errors, and timings.
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
    parser.add_argument(
        "--source", choices=("projection", "render", "mujoco"), default="projection",
        help="projected corners, rendered and detected tags (synthetic rig), or the MuJoCo rig (physics + renders + detector)",
    )  # fmt: skip
    parser.add_argument("--arm", default="left", help="--source mujoco: which simulated arm (left, right)")
    parser.add_argument("--joint-noise-deg", type=float, default=0.0, help="Gaussian joint encoder noise, deg")
    parser.add_argument("--flange-noise-deg", type=float, default=0.0, help="solver.flange_noise_deg: flange error the refinement allows, deg")
    parser.add_argument("--flange-noise-mm", type=float, default=0.0, help="solver.flange_noise_mm: flange error the refinement allows, mm")
    parser.add_argument("--trials", type=int, default=5, help="independent calibrations (seeds seed..seed+trials-1)")
    parser.add_argument("--seed", type=int, default=0, help="first random seed")
    parser.add_argument("--no-loo", action="store_true", help="skip the leave-one-out spread (faster)")
    parser.add_argument("--json", action="store_true", help="print one line of JSON")


def run_trial(
    mode: str, poses: int, noise_px: float, source: str, joint_noise_deg: float, seed: int, solver=None, arm: str = "left", planner=None
) -> dict:
    """One calibration against the truth (``solver``: a SolverConfig; ``planner``: the motion planner of ``--source mujoco``,
    made once per run); errors in mm and deg."""
    from dkt_grasping.calibration.collection import Collector, run_auto
    from dkt_grasping.calibration.config import CalibrationConfig
    from dkt_grasping.calibration.detection import DetectionConfig
    from dkt_grasping.calibration.poses import PosePlanConfig, generate_pose_plan
    from dkt_grasping.calibration.samples import TagCorners
    from dkt_grasping.calibration.session import CalibrationSession, SessionInfo
    from dkt_grasping.calibration.solver import SolverConfig, calibrate, pose_difference
    from dkt_grasping.calibration.synthetic import SyntheticSource, synthetic_rig

    t0 = time.perf_counter()
    if source == "mujoco":
        from dkt_grasping.calibration.mujoco_rig import MujocoSource, mujoco_calibration_rig

        rig = mujoco_calibration_rig(mode, arm, seed=seed)
        plan_config = rig.plan_config(poses, seed)
    else:
        rig = synthetic_rig(mode, seed=seed)
        plan_config = PosePlanConfig(count=poses, distance_m=list(rig.distance_m), seed=seed)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    plan = generate_pose_plan(mode, rig.X_nominal, rig.Y_nominal, rig.model, rig.intrinsics, plan_config, kinematics=rig.kinematics)
    plan_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed + 1000)
    joint_noise = np.radians(joint_noise_deg)
    collect_s, failed_moves, rejected = 0.0, 0, 0
    if source == "projection":
        samples = [rig.projected_sample(q, noise_px, rng, joint_noise) for q in plan.qs]
    else:
        config = CalibrationConfig(board=rig.board, save_images=False)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            session = CalibrationSession.open_or_create(tmp, SessionInfo(mode, arm, "simulated", rig.board, rig.intrinsics))
            collector = Collector(session, config, rig.kinematics)
            src = MujocoSource(rig, planner=planner) if source == "mujoco" else SyntheticSource(rig, plan.qs[0], seed=seed + 2000)
            summary = run_auto(collector, src, src, plan.qs, lambda _question: True, lambda _line: None)
            samples = session.samples
        collect_s, failed_moves, rejected = time.perf_counter() - t0, summary.failed_moves, summary.rejected
        if source == "mujoco":
            rig.close()
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
        "samples_collected": len(samples),
        "failed_moves": failed_moves,
        "rejected": rejected,
        "samples_used": len(result.used),
        "reprojection_rms_px": final.reprojection_rms_px,
        "loo_mm": final.loo_mm,
        "loo_deg": final.loo_deg,
        "std_translation_mm": result.std_translation_mm,
        "std_rotation_deg": result.std_rotation_deg,
        "rotation_span_deg": result.coverage.rotation_span_deg[:2],
        "problems": result.problems,
        "build_s": build_s,
        "plan_s": plan_s,
        "collect_s": collect_s,
        "solve_s": solve_s,
    }


def run(args: argparse.Namespace) -> dict:
    if args.poses < 3:
        raise ValueError(f"--poses must be >= 3, got {args.poses}")
    if args.noise_px < 0 or args.trials < 1:
        raise ValueError("--noise-px must be >= 0 and --trials >= 1")
    from dkt_grasping.calibration.solver import SolverConfig

    solver = SolverConfig(leave_one_out=not args.no_loo, flange_noise_deg=args.flange_noise_deg, flange_noise_mm=args.flange_noise_mm)
    arm, planner = getattr(args, "arm", "left"), None
    if args.source == "mujoco":  # one planner for all trials (each new one reseeds OMPL's global generator, which OMPL warns about)
        from dkt_grasping.calibration.mujoco_rig import motion_planner
        from dkt_grasping.reachability import ArmModelConfig

        planner = motion_planner(ArmModelConfig())
    trials = [
        run_trial(args.mode, args.poses, args.noise_px, args.source, args.joint_noise_deg, args.seed + k, solver, arm, planner)
        for k in range(args.trials)
    ]

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
        "arm": arm if args.source == "mujoco" else None,
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
        "samples_collected_min": int(min(t["samples_collected"] for t in trials)),
        "failed_moves": int(sum(t["failed_moves"] for t in trials)),
        "rejected": int(sum(t["rejected"] for t in trials)),
        "samples_used_min": int(min(t["samples_used"] for t in trials)),
        "rotation_span_deg_min": [round(float(min(t["rotation_span_deg"][i] for t in trials)), 1) for i in (0, 1)],
        "problems": sorted({p for t in trials for p in t["problems"]}),
        "build_s": med("build_s"),
        "plan_s": med("plan_s"),
        "collect_s": med("collect_s"),
        "solve_s": med("solve_s"),
        "trial_s": round(float(np.median([t["build_s"] + t["plan_s"] + t["collect_s"] + t["solve_s"] for t in trials])), 3),
    }
