"""``dkt-stack trials``: run grasp success-rate sessions, list them, and report.

dkt-stack trials run --surface translucent --method raw --trials 10
dkt-stack trials run --resume 20261121-061530-translucent-raw-3f2a
dkt-stack trials list
dkt-stack trials report --format md --plot outputs/trials/success.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_DB = "outputs/trials/trials.sqlite"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="{run,list,report}")
    run_p = sub.add_parser("run", help="run a new session, or resume one")
    run_p.add_argument("--db", default=DEFAULT_DB, help=f"trial database (default {DEFAULT_DB})")
    run_p.add_argument(
        "--resume", metavar="SESSION_ID", help="continue a stored session where it stopped (other session options are ignored)"
    )
    run_p.add_argument("--config", help="YAML file with a SessionSpec (command-line options override it)")
    run_p.add_argument("--surface", help="translucent | reflective | diffusive | a custom label")
    run_p.add_argument("--method", help="raw | dkt | depth_anything_v2 | ground_truth (simulation only: oracle)")
    run_p.add_argument(
        "--backend",
        choices=["simulation", "rig"],
        help="trial backend (default simulation: MuJoCo); rig drives a running node graph (start it first: dkt-stack up cobot_magic | cobot_magic_sim | simulation)",
    )
    run_p.add_argument(
        "--arm",
        help="arm: simulated (simulation); on the rig piper (default), simulated, left, right, BACKEND:NAMESPACE such as piper:left, "
        "or auto (two-arm graphs: the grasp node chooses the arm per trial)",
    )
    run_p.add_argument(
        "--objects", help="comma-separated target objects (simulation: library kinds such as glass_cup,soda_can; default: any of the surface type)"
    )
    run_p.add_argument("--trials", type=int, help="trials in the session (default 10)")
    run_p.add_argument("--seed", type=int, help="session seed")
    run_p.add_argument(
        "--judge", choices=["auto", "operator", "physics"], help="who decides success (auto: physics in simulation, the operator on the rig)"
    )
    run_p.add_argument("--holding-threshold", type=float, help="gripper opening (m) above which the suggestion is 'holding'")
    run_p.add_argument("--weights-dir", help="DKT weights folder")
    run_p.add_argument("--size", help="simulated D435 image size WxH, e.g. 320x240 (default 640x480)")
    run_p.add_argument("--no-snapshots", action="store_true", help="do not save colour/depth/cloud snapshots")
    run_p.add_argument("--notes", help="free text stored with the session")
    run_p.add_argument("--quiet", action="store_true", help="no progress bar")
    list_p = sub.add_parser("list", help="list stored sessions")
    list_p.add_argument("--db", default=DEFAULT_DB, help=f"trial database (default {DEFAULT_DB})")
    rep = sub.add_parser("report", help="success rates per surface x method, Wilson intervals, Fisher tests, bar chart")
    rep.add_argument("--db", default=DEFAULT_DB, help=f"trial database (default {DEFAULT_DB})")
    rep.add_argument("--format", choices=["md", "csv", "json"], default="md", help="output format (default md)")
    rep.add_argument("--plot", metavar="OUT.png", help="also write a grouped bar chart with Wilson error bars")
    rep.add_argument("--output", metavar="FILE", help="write the report to FILE (atomically) instead of stdout")


def _spec_from_args(args: argparse.Namespace):
    from dkt_grasping.trials.session import SessionSpec
    from dkt_stack.config import from_dict, load_yaml, to_dict

    data = to_dict(SessionSpec())
    if args.config:
        loaded = load_yaml(args.config) or {}
        data = to_dict(from_dict(SessionSpec, loaded, source=args.config))
    overrides = {
        "surface": args.surface,
        "method": args.method,
        "backend": args.backend,
        "arm": args.arm,
        "n_trials": args.trials,
        "seed": args.seed,
        "judge": args.judge,
        "holding_threshold_m": args.holding_threshold,
        "weights_dir": args.weights_dir,
        "notes": args.notes,
    }
    data.update({k: v for k, v in overrides.items() if v is not None})
    if args.backend == "rig" and args.arm is None:
        data["arm"] = "piper"
    if args.objects:
        data["objects"] = [o.strip() for o in args.objects.split(",") if o.strip()]
    if args.no_snapshots:
        data["save_snapshots"] = False
    if args.size:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
        except ValueError as exc:
            raise ValueError(f"--size must look like 320x240, got {args.size!r}") from exc
        data["simulation"] = {**data["simulation"], "width": w, "height": h}
    return from_dict(SessionSpec, data)


def _run(args: argparse.Namespace) -> int:
    from dkt_grasping.trials.backend import create_trial_backend
    from dkt_grasping.trials.database import TrialDatabase
    from dkt_grasping.trials.depth_methods import MethodUnavailableError
    from dkt_grasping.trials.rig import RigUnavailableError
    from dkt_grasping.trials.runner import TrialRunner, start_session
    from dkt_grasping.trials.session import SessionSpec

    with TrialDatabase(args.db) as db:
        if args.resume:
            row = db.session(args.resume)
            spec = SessionSpec.from_json_dict(row.spec)
            if db.next_trial_index(args.resume) >= row.n_trials:
                if row.status != "complete":
                    db.set_session_status(args.resume, "complete")
                print(f"session {args.resume} is already complete ({row.n_trials} trials)")
                return 0
        else:
            spec = _spec_from_args(args)
        # The backend first: a method without weights or a missing rig stores nothing.
        try:
            backend = create_trial_backend(spec)
        except (MethodUnavailableError, RigUnavailableError) as exc:
            print(f"dkt-stack trials run: {exc}", file=sys.stderr)
            return 2
        try:
            if args.resume:
                session_id = args.resume
                done = db.next_trial_index(session_id)
                print(
                    f"resuming session {session_id} ({spec.surface}/{spec.method}, {spec.backend}) at trial {done + 1} of {spec.n_trials}"
                )
            else:
                session_id = start_session(db, spec)
                print(f"session {session_id}: {spec.n_trials} trials, surface {spec.surface}, method {spec.method}, backend {spec.backend}")
            result = TrialRunner(db, backend=backend, progress=not args.quiet).run(session_id)
        finally:
            backend.close()
        counts: dict[str, int] = {}
        for r in db.trials(session_id):
            counts[r.outcome] = counts.get(r.outcome, 0) + 1
        summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        print(f"session {session_id}: {result.status} ({summary or 'no trials'})")
        if result.status != "complete":
            print(f"resume with: dkt-stack trials run --db {args.db} --resume {session_id}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from dkt_grasping.trials.database import TrialDatabase

    if not Path(args.db).is_file():
        print(f"dkt-stack trials list: no database at {args.db}", file=sys.stderr)
        return 2
    with TrialDatabase(args.db) as db:
        for s in db.sessions():
            print(
                f"{s.id}  {s.status:<11} {s.surface}/{s.method} ({s.backend})  {db.next_trial_index(s.id)}/{s.n_trials} trials  {s.created_at}"
            )
    return 0


def _report(args: argparse.Namespace) -> int:
    from dkt_grasping.trials.artifacts import write_bytes_atomic
    from dkt_grasping.trials.database import TrialDatabase
    from dkt_grasping.trials.report import FORMATTERS, build_report, plot_report

    if not Path(args.db).is_file():
        print(f"dkt-stack trials report: no database at {args.db}", file=sys.stderr)
        return 2
    with TrialDatabase(args.db) as db:
        report = build_report(db.trials())
    text = FORMATTERS[args.format](report)
    if args.output:
        write_bytes_atomic(args.output, text.encode())
    else:
        sys.stdout.write(text)
    if args.plot:
        if not report.rows:
            print("dkt-stack trials report: no trials, no plot", file=sys.stderr)
            return 2
        plot_report(report, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    from dkt_grasping.trials.database import TrialDatabaseError
    from dkt_grasping.trials.session import SessionSpecError
    from dkt_stack.config import ConfigError

    try:
        return {"run": _run, "list": _list, "report": _report}[args.action](args)
    except (SessionSpecError, ConfigError, TrialDatabaseError, ValueError) as exc:
        print(f"dkt-stack trials {args.action}: {exc}", file=sys.stderr)
        return 2
