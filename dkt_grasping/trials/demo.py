"""Simulated trial sessions for ``dkt-stack demo --trials N``: one session per surface type and method in the physics
simulation (:mod:`dkt_sim`), then the report, the plot and where each trial's picture strip is."""

from __future__ import annotations

from pathlib import Path

from dkt_grasping.trials.database import TrialDatabase
from dkt_grasping.trials.depth_methods import MethodUnavailableError
from dkt_grasping.trials.report import build_report, format_markdown, plot_report
from dkt_grasping.trials.runner import TrialRunner, start_session
from dkt_grasping.trials.session import PAPER_SURFACES, SessionSpec, SimulationSettings
from dkt_grasping.trials.simulation import SimulationTrialBackend

DEMO_DB = "trials.sqlite"
DEMO_PLOT = "success_rates.png"


def run_demo_trials(
    n_per_surface: int,
    out_dir: Path,
    methods: list[str],
    *,
    image_size: tuple[int, int] = (640, 480),
    seed: int = 0,
    progress: bool = True,
    save_snapshots: bool = True,
) -> str:
    """Run ``n_per_surface`` simulated trials per surface type and method; returns the report text (markdown).

    Writes ``out_dir/trials.sqlite`` (a new session per surface x method each call),
    ``out_dir/success_rates.png`` and, with ``save_snapshots``, each trial's colour image, depth,
    cloud and picture strip under ``out_dir/artifacts/<session>/trial_<k>/``. A method whose
    weights are missing is reported as unavailable, never replaced by another one.
    """
    if n_per_surface < 1:
        raise ValueError(f"n_per_surface must be >= 1, got {n_per_surface}")
    if not methods:
        raise ValueError("methods must name at least one depth method")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    unavailable: dict[str, str] = {}
    session_ids: list[str] = []
    with TrialDatabase(out_dir / DEMO_DB) as db:
        for method in methods:
            for surface in PAPER_SURFACES:
                spec = SessionSpec(
                    surface=surface,
                    method=method,
                    backend="simulation",
                    n_trials=n_per_surface,
                    seed=seed,
                    save_snapshots=save_snapshots,
                    simulation=SimulationSettings(width=image_size[0], height=image_size[1]),
                    notes="dkt-stack demo --trials",
                )
                try:
                    backend = SimulationTrialBackend(spec)
                except MethodUnavailableError as exc:
                    unavailable[method] = str(exc)
                    break
                session_id = start_session(db, spec)
                TrialRunner(db, backend=backend, progress=progress).run(session_id)
                session_ids.append(session_id)
        records = [r for sid in session_ids for r in db.trials(sid)]
    report = build_report(records)
    text = format_markdown(report)
    if report.rows:
        plot_report(report, out_dir / DEMO_PLOT)
        text += f"\nPlot: {out_dir / DEMO_PLOT}; database: {out_dir / DEMO_DB}\n"
    strips = [out_dir / r.artifacts["strip"] for r in records if "strip" in r.artifacts]
    if strips:
        text += f"Pictures ({len(strips)} trial strips: camera and external view at capture, grasp, lift): {out_dir / 'artifacts'}/<session>/trial_<k>/strip.png\n"
        text += "".join(f"  {p}\n" for p in strips)
    for method, reason in unavailable.items():
        text += f"\nUnavailable: {method}: {reason}\n"
    return text
