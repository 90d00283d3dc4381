"""``dkt-stack calibrate``: hand-eye calibration of the rig from the terminal.

    dkt-stack calibrate collect --mode eye_to_hand --arm left [--auto] [--session DIR]   # on the rig, ROS graph running
    dkt-stack calibrate solve SESSION [--write]        # calibrate a session again (e.g. after fixing the tag size)
    dkt-stack calibrate verify SESSION [--calibration CAL_SESSION]
    dkt-stack calibrate plan --mode eye_in_hand --arm left    # the automatic poses, without moving anything
    dkt-stack calibrate synthetic --mode eye_to_hand --session DIR   # a session from the synthetic rig, to try solve/verify
    dkt-stack calibrate synthetic --source mujoco --mode eye_to_hand --session DIR   # ... from the MuJoCo Cobot Magic

``collect`` runs ``calibration_node`` in this process against the running
graph (camera_node and arm_node: ``dkt-stack up cobot_magic`` or
``dkt-stack up calibration``), collects manually (Enter per pose) or
automatically (``--auto``: planned poses, after you confirm the workspace is
clear), then solves and writes the result into the rig file. Samples are
written as they come: run the same command with the same ``--session`` to
continue an interrupted run.

``synthetic`` writes a session, a rig file holding the rough (uncalibrated)
pose and the truth (``truth.json``) into a new folder; ``solve`` on that
session then also prints its error against the truth.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from dkt_grasping.calibration.samples import MODES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def common(p):
        p.add_argument("--config", default="", help="calibration YAML (board, detection, solver, poses); default: config/calibration/<mode>.yaml")
        p.add_argument("--json", action="store_true", help="print the result as one JSON object")

    c = sub.add_parser("collect", help="collect samples on the rig over ROS, then solve (or verify) and write the rig file")
    c.add_argument("--mode", choices=MODES, required=True, help="eye_to_hand: front camera to arm base; eye_in_hand: wrist camera to flange")
    c.add_argument("--arm", default="left", help="arm name in the rig file")
    c.add_argument("--rig", default="cobot_magic", help="rig file (shipped name or path) the result is written into")
    c.add_argument("--session", default="", help="session folder (default: ~/.local/share/dkt_stack/calibration/<rig>_<arm>_<mode>_<date>)")
    c.add_argument("--auto", action="store_true", help="visit planned poses with the planner instead of moving the arm by hand")
    c.add_argument("--poses", type=int, default=0, help="manual: stop after this many samples (0: until you type q); --auto: poses to plan")
    c.add_argument("--verify", action="store_true", help="collect new poses and compare them with the rig file's calibration instead of calibrating")
    c.add_argument("--calibration", default="", help="with --verify: the calibration's session folder (its board mount is used)")
    c.add_argument("--camera-ns", default="/camera", help="namespace of the camera's color/image_raw and color/camera_info topics")
    c.add_argument("--arm-ns", default="", help="namespace of the arm's joint_states and joint_trajectory topics (default: /<arm>)")
    c.add_argument("--no-write", action="store_true", help="solve but do not write the rig file")
    c.add_argument("--force", action="store_true", help="write the result even when the solver reports problems")
    common(c)

    s = sub.add_parser("solve", help="calibrate from a session's samples; --write puts the result into the rig file")
    s.add_argument("session", help="session folder")
    s.add_argument("--write", action="store_true", help="write the result into the rig file")
    s.add_argument("--rig", default="", help="rig file to write (default: the session's)")
    s.add_argument(
        "--tag-size", type=float, default=0.0,
        help="measured black-square size of the first board tag (m): the whole board is scaled to it (a print at another scale)",
    )  # fmt: skip
    s.add_argument("--force", action="store_true", help="write the result even when the solver reports problems")
    common(s)

    v = sub.add_parser("verify", help="compare a verification session's detections with the rig file's calibration")
    v.add_argument("session", help="verification session folder (collected with collect --verify)")
    v.add_argument("--calibration", default="", help="the calibration's session folder (its board mount is used; else fitted)")
    common(v)

    p = sub.add_parser("plan", help="print the automatic poses and their coverage (nothing moves)")
    p.add_argument("--mode", choices=MODES, required=True, help="calibration mode")
    p.add_argument("--arm", default="left", help="arm name in the rig file")
    p.add_argument("--rig", default="cobot_magic", help="rig file (its current camera pose seeds the plan)")
    p.add_argument("--poses", type=int, default=0, help="poses to plan (default: the config's)")
    common(p)

    y = sub.add_parser(
        "synthetic", help="write a session from a simulated rig (projected corners, rendered tags, or the MuJoCo Cobot Magic), to try solve and verify"
    )
    y.add_argument("--mode", choices=MODES, required=True, help="calibration mode")
    y.add_argument("--session", required=True, help="new folder: gets the session, its own rig.yaml (the rough pose) and truth.json")
    y.add_argument("--poses", type=int, default=15, help="poses")
    y.add_argument(
        "--source", choices=("projection", "render", "mujoco"), default=None,
        help="projection: the synthetic rig's corners projected with --noise-px noise; render: its tags rendered and detected; "
        "mujoco: the board on the simulated Cobot Magic, the arm moved in physics, the D435's renders detected (default: projection)",
    )  # fmt: skip
    y.add_argument("--render", action="store_true", help="same as --source render")
    y.add_argument("--arm", default="left", help="--source mujoco: the simulated arm (left, right)")
    y.add_argument("--noise-px", type=float, default=0.3, help="corner noise of the projection, px (render, mujoco: the detector's own error on the images)")
    y.add_argument("--seed", type=int, default=0, help="random seed (true geometry, poses, noise)")
    common(y)


def run(args: argparse.Namespace) -> int:
    from dkt_grasping.calibration.pose_set import DegeneratePoseSet
    from dkt_grasping.calibration.session import SessionMismatch
    from dkt_grasping.calibration.solver import CalibrationError
    from dkt_stack.config import ConfigError

    actions = {"collect": _collect, "solve": _solve, "verify": _verify, "plan": _plan, "synthetic": _synthetic}
    try:
        return actions[args.action](args)
    except (DegeneratePoseSet, CalibrationError, SessionMismatch, ConfigError, ValueError) as exc:
        print(f"dkt-stack calibrate {args.action}: {exc}", file=sys.stderr)
        return 2


def _load_config(path: str, mode: str):
    from dkt_grasping.calibration.config import load_calibration_config

    return load_calibration_config(path or mode)


def _emit(args, data: dict, text: str) -> None:
    print(json.dumps(data) if args.json else text)


# ----------------------------------------------------------------------------- solve / verify / plan (no ROS)


def _solve(args) -> int:
    from dkt_grasping.calibration import workflow
    from dkt_grasping.calibration.session import CalibrationSession

    session = CalibrationSession.open(args.session)
    config = _load_config(args.config, session.info.mode)
    if not args.config:
        config.board = session.info.board  # the board the samples were taken with, unless told otherwise
    if args.tag_size:  # a print at another scale: sizes and spacing change together
        factor = float(args.tag_size) / config.board.tags[0].size_m
        for t in config.board.tags:
            t.size_m, t.x, t.y = t.size_m * factor, t.x * factor, t.y * factor
    result = workflow.solve_session(session, config)
    data = workflow.result_dict(result, session)
    text = workflow.report_text(result, session)
    truth = _truth_error(session, result)
    if truth:
        data["truth"] = truth
        text += f"\nagainst the simulated rig's truth ({truth['file']}): {truth['translation_error_mm']:.3f} mm, {truth['rotation_error_deg']:.4f} deg"
    if args.write:
        update = workflow.apply_result(result, session, args.rig or None, force=args.force)
        data["written"] = {"path": str(update.path), "key": update.key, "previous": update.previous, "history": str(update.history_path)}
        text += f"\nwrote {update.key} of arm {update.arm} into {update.path} (previous value kept in {update.history_path.name})"
    _emit(args, data, text)
    return 0 if result.ok else 1


def _truth_error(session, result) -> dict | None:
    """The result's error against ``truth.json`` beside a session written by ``calibrate synthetic``, or None."""
    from dkt_grasping.calibration.solver import pose_difference

    path = Path(session.folder).parent / "truth.json"
    if not path.is_file():
        return None
    truth = json.loads(path.read_text())
    if truth.get("mode") != result.mode:
        return None
    mm, deg = pose_difference(result.X, np.asarray(truth["X_true"], dtype=np.float64))
    return {"file": str(path), "translation_error_mm": round(mm, 4), "rotation_error_deg": round(deg, 5)}


def _verify(args) -> int:
    from dkt_grasping.calibration import workflow
    from dkt_grasping.calibration.session import CalibrationSession

    session = CalibrationSession.open(args.session)
    config = _load_config(args.config, session.info.mode)
    if not args.config:
        config.board = session.info.board
    calibration = CalibrationSession.open(args.calibration) if args.calibration else None
    result = workflow.verify_session(session, config, calibration)
    _emit(args, result.to_dict(), result.text())
    return 0 if result.passed else 1


def _plan(args) -> int:
    from dkt_grasping.calibration.board import BoardModel
    from dkt_grasping.calibration.config import nominal_geometry
    from dkt_grasping.calibration.poses import generate_pose_plan
    from dkt_grasping.calibration.synthetic import D435_COLOUR
    from dkt_stack.rig import load_rig

    config = _load_config(args.config, args.mode)
    if args.poses:
        config.poses.count = args.poses
    X, Y = nominal_geometry(args.mode, load_rig(args.rig), args.arm, config)
    t0 = time.perf_counter()
    # a D435's colour intrinsics: the plan only needs the field of view roughly
    plan = generate_pose_plan(args.mode, X, Y, BoardModel(config.board), D435_COLOUR, config.poses, coverage=config.solver.coverage)
    data = {**plan.to_dict(), "seconds": round(time.perf_counter() - t0, 2)}
    lines = [f"{len(plan.qs)} poses ({plan.feasible} feasible of {plan.candidates} tried), rotation spans "
             + ", ".join(f"{v:.0f}" for v in plan.coverage.rotation_span_deg) + " deg"]  # fmt: skip
    lines += [f"  {k:2d}: " + " ".join(f"{np.degrees(v):7.1f}" for v in q) + "  (deg)" for k, q in enumerate(plan.qs)]
    lines += [f"note: {n}" for n in plan.notes]
    _emit(args, data, "\n".join(lines))
    return 0 if plan.coverage.usable and len(plan.qs) >= 3 else 1


def _synthetic(args) -> int:
    import yaml

    from dkt_grasping.calibration import workflow
    from dkt_grasping.calibration.collection import Collector, run_auto
    from dkt_grasping.calibration.config import CalibrationConfig
    from dkt_grasping.calibration.poses import PosePlanConfig, generate_pose_plan
    from dkt_grasping.calibration.synthetic import SyntheticSource, synthetic_rig
    from dkt_stack.atomic_files import write_text_atomic
    from dkt_stack.config import to_dict
    from dkt_stack.rig import ArmMount, RigConfig, matrix_to_pose7

    if args.render and args.source not in (None, "render"):
        raise ValueError(f"--render and --source {args.source} contradict each other")
    source = args.source or ("render" if args.render else "projection")
    if args.noise_px < 0 or args.poses < 1:
        raise ValueError(f"--noise-px must be >= 0 and --poses >= 1, got {args.noise_px} and {args.poses}")
    folder = Path(args.session)
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f"{folder} is not empty: the synthetic command writes a new session")
    X_key = "camera_pose" if args.mode == "eye_to_hand" else "wrist_camera_pose"
    board = _load_config(args.config, args.mode).board if args.config else None  # else the rig's own board
    if source == "mujoco":
        from dkt_grasping.calibration.mujoco_rig import MujocoSource, mujoco_calibration_rig

        rig = mujoco_calibration_rig(args.mode, args.arm, seed=args.seed, board=board)
        arm_name, plan_config = args.arm, rig.plan_config(args.poses, args.seed)
        # a copy of the simulated rig's file, with the rough pose where calibration writes its result
        description = rig.world.geometry.rig_config()
        description.description = f"the MuJoCo Cobot Magic, uncalibrated {X_key} of arm {arm_name} (dkt-stack calibrate synthetic, seed {args.seed})"
        mount = description.arm(arm_name)
    else:
        rig = synthetic_rig(args.mode, seed=args.seed, board=board)
        arm_name, plan_config = "left", PosePlanConfig(count=args.poses, distance_m=list(rig.distance_m), seed=args.seed)
        mount = ArmMount(base_frame="left_base_link", camera_pose=[0.3, 0.0, 0.55, 1.0, 0.0, 0.0, 0.0])
        description = RigConfig(name="synthetic", arms={"left": mount}, description=f"synthetic {args.mode} rig, seed {args.seed} (dkt-stack calibrate synthetic)")
    # the rig file holds the nominal (uncalibrated) geometry: solve --write changes this copy only
    setattr(mount, X_key, matrix_to_pose7(rig.X_nominal))
    if args.mode == "eye_in_hand":
        mount.wrist_camera_frame = f"{arm_name}_wrist_camera_color_optical_frame"
    rig_file = folder / "rig.yaml"
    write_text_atomic(rig_file, yaml.safe_dump(to_dict(description), sort_keys=False, default_flow_style=None, width=200))
    config = CalibrationConfig(board=rig.board, save_images=source != "projection", poses=plan_config)
    plan = generate_pose_plan(args.mode, rig.X_nominal, rig.Y_nominal, rig.model, rig.intrinsics, config.poses, kinematics=rig.kinematics)
    session = workflow.start_session(folder / "session", args.mode, arm_name, str(rig_file), config, rig.intrinsics)
    if plan.qs:
        session.set_pose_plan(plan.qs)
    collector = Collector(session, config, rig.kinematics)
    t0 = time.perf_counter()
    if source == "mujoco":
        src = MujocoSource(rig)
    else:
        src = SyntheticSource(rig, plan.qs[0] if plan.qs else np.zeros(6), seed=args.seed + 1, render=source == "render", noise_px=args.noise_px)
    summary = run_auto(collector, src, src, plan.qs, lambda _question: True, lambda _line: None)
    collect_s = time.perf_counter() - t0
    truth = {"mode": args.mode, "source": source, "arm": arm_name, "X_true": rig.X_true.tolist(), "Y_true": rig.Y_true.tolist(),
             "pose_true": matrix_to_pose7(rig.X_true), "rig_key": X_key}  # fmt: skip
    if source == "mujoco":
        rig.close()
    write_text_atomic(folder / "truth.json", json.dumps(truth, indent=1) + "\n")
    data = {"session": str(session.folder), "rig": str(rig_file), "source": source, "samples": len(session.samples),
            "rejected": summary.rejected, "failed_moves": summary.failed_moves, "collect_s": round(collect_s, 2)}  # fmt: skip
    _emit(args, data, f"wrote {len(session.samples)} samples ({summary.rejected} rejected, {summary.failed_moves} moves failed) to "
                      f"{session.folder} in {collect_s:.1f} s; rig file {rig_file}; truth in {folder / 'truth.json'}\n"
                      f"next: dkt-stack calibrate solve {session.folder} --write")  # fmt: skip
    return 0


# ----------------------------------------------------------------------------- collect (ROS)


def _ask_yes(question: str) -> bool:
    try:
        return input(f"{question} Type 'yes' to start: ").strip().lower() == "yes"
    except EOFError:
        return False


def _collect(args) -> int:
    import threading

    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from dkt_grasping.calibration import workflow
    from dkt_grasping.calibration.collection import CaptureError, run_auto, run_manual
    from dkt_grasping.nodes.calibration_node import CalibrationNode

    purpose = "verify" if args.verify else "calibrate"
    arm_ns = args.arm_ns or f"/{args.arm}"
    remaps = {
        "color/image_raw": f"{args.camera_ns.rstrip('/')}/color/image_raw",
        "color/camera_info": f"{args.camera_ns.rstrip('/')}/color/camera_info",
        "joint_states": f"{arm_ns.rstrip('/')}/joint_states",
        "joint_trajectory": f"{arm_ns.rstrip('/')}/joint_trajectory",
    }
    overrides = [
        Parameter("mode", value=args.mode), Parameter("arm", value=args.arm), Parameter("rig", value=args.rig),
        Parameter("config_file", value=args.config), Parameter("session_dir", value=args.session),
        Parameter("purpose", value=purpose), Parameter("write_rig", value=False),
    ]  # fmt: skip
    cli_args = ["--ros-args", *[x for k, v in remaps.items() for x in ("-r", f"{k}:={v}")]]
    rclpy.init()
    node = CalibrationNode(parameter_overrides=overrides, cli_args=cli_args)
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        print(f"waiting for {remaps['color/camera_info']} and {remaps['joint_states']} ...")
        deadline = time.monotonic() + 15.0
        while True:
            try:
                node.live.intrinsics  # noqa: B018 - raises until camera_info arrived
                node.live.current_q()
                break
            except (CaptureError, RuntimeError) as exc:
                if time.monotonic() > deadline:
                    raise ValueError(f"no data from the rig after 15 s ({exc}): is the graph running (dkt-stack up calibration)?") from exc
                time.sleep(0.2)
        collector = node.collector()
        print(f"session {collector.session.folder} ({len(collector.session.samples)} samples so far)")
        if args.auto:
            if args.poses:
                node.config.poses.count = args.poses
            plan = workflow.plan_poses(collector.session, node.config, node.live.current_q(), node.kin)
            qs = plan if isinstance(plan, list) else plan.qs
            for note in getattr(plan, "notes", []):
                print(f"note: {note}")
            if len(qs) < 3:
                raise ValueError("no usable automatic pose plan; move the arm by hand (without --auto)")
            summary = run_auto(collector, node.live, node.live, qs, _ask_yes, print)
        else:
            summary = run_manual(collector, node.live, input, print, target=args.poses)
        print(f"collected: {summary.accepted} accepted, {summary.rejected} rejected this run; {len(collector.session.samples)} in the session")
    except KeyboardInterrupt:
        print("\ninterrupted: the samples so far are saved; run the same command to continue", file=sys.stderr)
        return 130
    finally:
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    session = collector.session
    if args.verify:
        return _verify(argparse.Namespace(session=str(session.folder), calibration=args.calibration, config=args.config, json=args.json))
    return _solve(argparse.Namespace(session=str(session.folder), config=args.config, tag_size=0.0, write=not args.no_write, rig=args.rig,
                                     force=args.force, json=args.json))  # fmt: skip
