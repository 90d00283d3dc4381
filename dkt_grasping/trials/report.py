"""Success-rate report: per surface type x method with Wilson 95 % intervals, the paper's mean column,
failures by stage, pairwise Fisher exact tests, and a bar chart.

Rates count successes among decided trials (success + failure); skipped and
aborted trials are listed but never enter a rate. Rows are (method, backend,
judge): simulated and real trials, or trials decided by different judges
(``physics``, ``operator``), are never pooled, and only rows of the same
backend and judge are compared. Every failure is counted at the stage it
stopped at (:data:`~dkt_grasping.trials.backend.REPORT_STAGES`).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dkt_grasping.trials.backend import REPORT_STAGES, report_stage
from dkt_grasping.trials.database import TrialRecord
from dkt_grasping.trials.session import METHODS, PAPER_SURFACES, method_label
from dkt_grasping.trials.statistics import fisher_exact_two_sided, success_rate, wilson_interval
from dkt_stack.atomic_files import atomic_path

_BACKEND_ORDER = ("simulation", "rig")

FISHER_NOTE = (
    "Pairwise comparisons: Fisher's exact test, two-sided, on the 2x2 table (successes, failures) of two methods "
    "on one surface type, backend and judge; no correction for multiple comparisons."
)
STAGE_NOTE = (
    "Stages: perception (no capture, no metric scale or no cloud), detection (no grasp on the target), planning, "
    "execution (collision or push before the gripper closed), grasp (closed on nothing, slipped or dropped)."
)
RATE_NOTE = "Rate = successes / (successes + failures), 95 % Wilson score interval in brackets; skipped and aborted trials are excluded."
MEAN_NOTE = "Mean = mean of the per-surface rates (as in the paper); * = over the surfaces this row has trials for only."
ORACLE_NOTE = "ground_truth (oracle) is the simulator's exact depth: an upper bound, not a method."


@dataclass
class Cell:
    surface: str
    method: str
    backend: str
    judge: str = ""
    successes: int = 0
    failures: int = 0
    skipped: int = 0
    aborted: int = 0
    failures_by_stage: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REPORT_STAGES, 0))

    @property
    def trials(self) -> int:
        return self.successes + self.failures

    @property
    def rate(self) -> float:
        return success_rate(self.successes, self.trials)

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.trials)


@dataclass
class Comparison:
    surface: str
    backend: str
    judge: str
    method_a: str
    method_b: str
    successes_a: int
    trials_a: int
    successes_b: int
    trials_b: int
    p_value: float


Row = tuple[str, str, str]  #: (method, backend, judge)


@dataclass
class Report:
    surfaces: list[str]
    rows: list[Row]
    cells: dict[tuple[str, str, str, str], Cell]  #: (surface, method, backend, judge) -> cell
    comparisons: list[Comparison] = field(default_factory=list)

    def cell(self, surface: str, row: Row) -> Cell | None:
        return self.cells.get((surface, *row))

    def mean(self, method: str, backend: str, judge: str | None = None) -> tuple[float, bool]:
        """(mean of the per-surface rates, complete = every report surface has trials); judge None = the row's only judge."""
        if judge is None:
            judges = [r[2] for r in self.rows if r[:2] == (method, backend)]
            judge = judges[0] if judges else ""
        rates = [c.rate for s in self.surfaces if (c := self.cells.get((s, method, backend, judge))) is not None and c.trials > 0]
        return (sum(rates) / len(rates) if rates else math.nan), len(rates) == len(self.surfaces)


def _surface_order(surfaces) -> list[str]:
    paper = [s for s in PAPER_SURFACES if s in surfaces]
    return paper + sorted(set(surfaces) - set(paper))


def _row_order(rows) -> list[Row]:
    def key(r):
        method, backend, judge = r
        m = METHODS.index(method) if method in METHODS else len(METHODS)
        b = _BACKEND_ORDER.index(backend) if backend in _BACKEND_ORDER else len(_BACKEND_ORDER)
        return (b, backend, judge, m, method)

    return sorted(set(rows), key=key)


def build_report(records: list[TrialRecord]) -> Report:
    cells: dict[tuple[str, str, str, str], Cell] = {}
    for r in records:
        key = (r.surface, r.method, r.backend, r.decided_by)
        cell = cells.setdefault(key, Cell(r.surface, r.method, r.backend, r.decided_by))
        if r.outcome == "success":
            cell.successes += 1
        elif r.outcome == "failure":
            cell.failures += 1
            cell.failures_by_stage[report_stage(r.failure_stage)] += 1
        elif r.outcome == "skipped":
            cell.skipped += 1
        else:
            cell.aborted += 1
    surfaces = _surface_order({k[0] for k in cells})
    rows = _row_order(k[1:] for k in cells)
    report = Report(surfaces, rows, cells)
    for surface in surfaces:
        for ra, rb in itertools.combinations(rows, 2):
            a, b = report.cell(surface, ra), report.cell(surface, rb)
            if ra[1:] != rb[1:] or a is None or b is None or a.trials == 0 or b.trials == 0:
                continue
            p = fisher_exact_two_sided(a.successes, a.trials, b.successes, b.trials)
            report.comparisons.append(Comparison(surface, ra[1], ra[2], ra[0], rb[0], a.successes, a.trials, b.successes, b.trials, p))
    return report


def _cell_text(cell: Cell | None) -> str:
    if cell is None or cell.trials == 0:
        return "-"
    lo, hi = cell.interval
    return f"{cell.rate:.2f} ({cell.successes}/{cell.trials}) [{lo:.2f}, {hi:.2f}]"


def _mean_text(report: Report, row: Row) -> str:
    mean, complete = report.mean(*row)
    return "-" if math.isnan(mean) else f"{mean:.3f}" + ("" if complete else "*")


def _stages_text(cell: Cell) -> str:
    return ", ".join(f"{stage} {n}" for stage, n in cell.failures_by_stage.items() if n) or "-"


def format_markdown(report: Report) -> str:
    if not report.cells:
        return "No trials recorded.\n"
    lines = ["## Grasp success rate", ""]
    lines.append("| method | backend | judge | " + " | ".join(report.surfaces) + " | mean |")
    lines.append("|---|---|---|" + "---|" * len(report.surfaces) + "---|")
    for row in report.rows:
        method, backend, judge = row
        cells = [_cell_text(report.cell(s, row)) for s in report.surfaces]
        lines.append(f"| {method_label(method)} | {backend} | {judge} | " + " | ".join(cells) + f" | {_mean_text(report, row)} |")
    lines += ["", RATE_NOTE, MEAN_NOTE]
    if any(r[0] == "ground_truth" for r in report.rows):
        lines.append(ORACLE_NOTE)
    excluded = [c for c in report.cells.values() if c.skipped or c.aborted]
    if excluded:
        parts = [f"{c.surface}/{method_label(c.method)}/{c.backend}/{c.judge}: {c.skipped} skipped, {c.aborted} aborted" for c in excluded]
        lines.append("Excluded from rates: " + "; ".join(sorted(parts)) + ".")
    lines += ["", "## Failures by stage", ""]
    lines.append("| method | backend | judge | surface | n | failures | " + " | ".join(REPORT_STAGES) + " |")
    lines.append("|---|---|---|---|---|---|" + "---|" * len(REPORT_STAGES))
    for row in report.rows:
        for s in report.surfaces:
            c = report.cell(s, row)
            if c is None or c.trials == 0:
                continue
            counts = " | ".join(str(c.failures_by_stage[st]) for st in REPORT_STAGES)
            lines.append(f"| {method_label(row[0])} | {row[1]} | {row[2]} | {s} | {c.trials} | {c.failures} | {counts} |")
    lines += ["", STAGE_NOTE]
    lines += ["", "## Pairwise comparisons (Fisher's exact test, two-sided)", ""]
    if report.comparisons:
        lines.append("| surface | backend | judge | method A | method B | A | B | p (two-sided) |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for c in report.comparisons:
            lines.append(
                f"| {c.surface} | {c.backend} | {c.judge} | {method_label(c.method_a)} | {method_label(c.method_b)} | "
                f"{c.successes_a}/{c.trials_a} | {c.successes_b}/{c.trials_b} | {c.p_value:.3g} |"
            )
    else:
        lines.append("No pair of methods shares a surface type, backend and judge.")
    lines += ["", FISHER_NOTE]
    return "\n".join(lines) + "\n"


CSV_COLUMNS = (
    "surface", "method", "backend", "judge", "successes", "failures", "trials", "rate", "wilson_low", "wilson_high", "skipped", "aborted",
    *(f"failures_{stage}" for stage in REPORT_STAGES),
)  # fmt: skip


def format_csv(report: Report) -> str:
    """One row per surface x (method, backend, judge), then one ``mean`` row per (method, backend, judge) (rate only)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    blank = [""] * len(REPORT_STAGES)
    for row in report.rows:
        method, backend, judge = row
        for s in report.surfaces:
            c = report.cell(s, row)
            if c is None:
                continue
            lo, hi = c.interval
            f = lambda v: "" if math.isnan(v) else f"{v:.6f}"  # noqa: E731 - local formatter
            stages = [c.failures_by_stage[st] for st in REPORT_STAGES]
            writer.writerow([s, method, backend, judge, c.successes, c.failures, c.trials, f(c.rate), f(lo), f(hi), c.skipped, c.aborted, *stages])
        mean, complete = report.mean(*row)
        writer.writerow(
            ["mean" if complete else "mean*", method, backend, judge, "", "", "", "" if math.isnan(mean) else f"{mean:.6f}", "", "", "", "", *blank]
        )
    return buffer.getvalue()


def _finite(v: float) -> float | None:
    return None if math.isnan(v) else round(v, 6)


def format_json(report: Report) -> str:
    """Cells (with ``judge``, ``n`` and ``failures_by_stage``), means, comparisons and notes as JSON."""
    cells = []
    for (_surface, m, _backend, _judge), c in sorted(
        report.cells.items(), key=lambda kv: (report.rows.index(kv[0][1:]), report.surfaces.index(kv[0][0]))
    ):
        lo, hi = c.interval
        cells.append(
            {
                **asdict(c),
                "trials": c.trials,
                "n": c.trials,
                "rate": _finite(c.rate),
                "wilson_low": _finite(lo),
                "wilson_high": _finite(hi),
                "oracle": m == "ground_truth",
            }
        )
    means = []
    for m, b, j in report.rows:
        mean, complete = report.mean(m, b, j)
        means.append({"method": m, "backend": b, "judge": j, "mean_rate": _finite(mean), "all_surfaces": complete})
    comps = [{**asdict(c), "p_value": _finite(c.p_value), "test": "fisher_exact_two_sided"} for c in report.comparisons]
    doc = {
        "surfaces": report.surfaces, "stages": list(REPORT_STAGES), "cells": cells, "means": means, "comparisons": comps,
        "notes": [RATE_NOTE, MEAN_NOTE, STAGE_NOTE, FISHER_NOTE],
    }  # fmt: skip
    return json.dumps(doc, indent=2) + "\n"


FORMATTERS = {"md": format_markdown, "csv": format_csv, "json": format_json}


def plot_report(report: Report, path: str | Path) -> Path:
    """Bar chart, PNG (atomic): success rate per surface (+ mean) with Wilson 95 % error bars and n on each bar (top),
    failures by stage stacked per bar (bottom). A surface a row has no trials for gets no bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    path = Path(path)
    if not report.rows:
        raise ValueError("nothing to plot: the database has no trials")
    groups = [*report.surfaces, "mean"]
    width = 0.8 / len(report.rows)
    size = (max(6.5, 1.5 + len(groups) * (0.6 + 0.4 * len(report.rows))), 7.5)
    fig, (ax, ax_fail) = plt.subplots(2, 1, figsize=size, dpi=120, gridspec_kw={"height_ratios": [3, 2]}, sharex=True)
    stage_colours = plt.get_cmap("Set2")(np.arange(len(REPORT_STAGES)))
    several = {(b, j) for _, b, j in report.rows}
    for i, row in enumerate(report.rows):
        x = np.arange(len(groups)) - 0.4 + width * (i + 0.5)
        label = method_label(row[0]) + ("" if len(several) == 1 else f" [{row[1]}, {row[2]}]")
        cells = [report.cell(s, row) for s in report.surfaces]
        have = [k for k, c in enumerate(cells) if c is not None and c.trials > 0]
        rates = [cells[k].rate for k in have]
        # a 10/10 or 0/10 cell's Wilson bound equals the rate up to rounding: matplotlib refuses a bar of -1e-17
        lo = [max(cells[k].rate - cells[k].interval[0], 0.0) for k in have]
        hi = [max(cells[k].interval[1] - cells[k].rate, 0.0) for k in have]
        bars = ax.bar(x[have], rates, width, yerr=[lo, hi], capsize=3, label=label)
        colour = bars.patches[0].get_facecolor() if bars.patches else None
        for k in have:  # n at the foot of each bar, clear of the error bars
            ax.text(x[k], 0.01, f"n={cells[k].trials}", ha="center", va="bottom", fontsize=7, rotation=90 if width < 0.2 else 0)
        mean, _ = report.mean(*row)
        if not math.isnan(mean):  # the mean of rates has no binomial interval: no error bar
            ax.bar(x[-1], mean, width, color=colour, hatch="//", edgecolor="white")
        bottom = np.zeros(len(have))
        for st, stage in enumerate(REPORT_STAGES):
            counts = np.array([cells[k].failures_by_stage[stage] for k in have], dtype=float)
            ax_fail.bar(x[have], counts, width, bottom=bottom, color=stage_colours[st], edgecolor=colour, linewidth=1.2,
                        label=stage if i == 0 else None)  # fmt: skip
            bottom += counts
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("grasp success rate")
    ax.set_title("Grasp success per surface type (error bars: Wilson 95 % interval; n = decided trials)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", ncol=min(3, len(report.rows)), frameon=False)
    ax_fail.set_xticks(np.arange(len(groups)), groups)
    ax_fail.set_ylabel("failures by stage")
    ax_fail.legend(fontsize=7, loc="upper left", ncol=len(REPORT_STAGES), frameon=False)
    ax_fail.yaxis.get_major_locator().set_params(integer=True)
    ax_fail.set_ylim(0, max(1.0, ax_fail.get_ylim()[1] * 1.3))  # room for the legend
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path
