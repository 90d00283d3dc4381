"""Success-rate report: per surface type x method with Wilson 95 % intervals, the paper's mean column,
pairwise Fisher exact tests, and a grouped bar chart.

Rates count successes among decided trials (success + failure); skipped and
aborted trials are listed but never enter a rate. Rows are (method, backend):
simulated and real trials are never pooled, and only rows of the same backend
are compared.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dkt_grasping.trials.database import TrialRecord
from dkt_grasping.trials.session import METHODS, PAPER_SURFACES, method_label
from dkt_grasping.trials.statistics import fisher_exact_two_sided, success_rate, wilson_interval
from dkt_stack.atomic_files import atomic_path

_BACKEND_ORDER = ("simulation", "rig")

FISHER_NOTE = (
    "Pairwise comparisons: Fisher's exact test, two-sided, on the 2x2 table (successes, failures) of two methods "
    "on one surface type and backend; no correction for multiple comparisons."
)
RATE_NOTE = "Rate = successes / (successes + failures), 95 % Wilson score interval in brackets; skipped and aborted trials are excluded."
MEAN_NOTE = "Mean = mean of the per-surface rates (as in the paper); * = over the surfaces this row has trials for only."
ORACLE_NOTE = "ground_truth (oracle) is the simulator's exact depth: an upper bound, not a method."


@dataclass
class Cell:
    surface: str
    method: str
    backend: str
    successes: int = 0
    failures: int = 0
    skipped: int = 0
    aborted: int = 0

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
    method_a: str
    method_b: str
    successes_a: int
    trials_a: int
    successes_b: int
    trials_b: int
    p_value: float


@dataclass
class Report:
    surfaces: list[str]
    rows: list[tuple[str, str]]  #: (method, backend)
    cells: dict[tuple[str, str, str], Cell]  #: (surface, method, backend) -> cell
    comparisons: list[Comparison] = field(default_factory=list)

    def mean(self, method: str, backend: str) -> tuple[float, bool]:
        """(mean of the per-surface rates, complete = every report surface has trials)."""
        rates = [c.rate for s in self.surfaces if (c := self.cells.get((s, method, backend))) is not None and c.trials > 0]
        return (sum(rates) / len(rates) if rates else math.nan), len(rates) == len(self.surfaces)


def _surface_order(surfaces) -> list[str]:
    paper = [s for s in PAPER_SURFACES if s in surfaces]
    return paper + sorted(set(surfaces) - set(paper))


def _row_order(rows) -> list[tuple[str, str]]:
    def key(r):
        method, backend = r
        m = METHODS.index(method) if method in METHODS else len(METHODS)
        b = _BACKEND_ORDER.index(backend) if backend in _BACKEND_ORDER else len(_BACKEND_ORDER)
        return (b, backend, m, method)

    return sorted(set(rows), key=key)


def build_report(records: list[TrialRecord]) -> Report:
    cells: dict[tuple[str, str, str], Cell] = {}
    for r in records:
        cell = cells.setdefault((r.surface, r.method, r.backend), Cell(r.surface, r.method, r.backend))
        if r.outcome == "success":
            cell.successes += 1
        elif r.outcome == "failure":
            cell.failures += 1
        elif r.outcome == "skipped":
            cell.skipped += 1
        else:
            cell.aborted += 1
    surfaces = _surface_order({k[0] for k in cells})
    rows = _row_order((k[1], k[2]) for k in cells)
    report = Report(surfaces, rows, cells)
    for surface in surfaces:
        for (ma, ba), (mb, bb) in itertools.combinations(rows, 2):
            a, b = cells.get((surface, ma, ba)), cells.get((surface, mb, bb))
            if ba != bb or a is None or b is None or a.trials == 0 or b.trials == 0:
                continue
            p = fisher_exact_two_sided(a.successes, a.trials, b.successes, b.trials)
            report.comparisons.append(Comparison(surface, ba, ma, mb, a.successes, a.trials, b.successes, b.trials, p))
    return report


def _cell_text(cell: Cell | None) -> str:
    if cell is None or cell.trials == 0:
        return "-"
    lo, hi = cell.interval
    return f"{cell.rate:.2f} ({cell.successes}/{cell.trials}) [{lo:.2f}, {hi:.2f}]"


def _mean_text(report: Report, method: str, backend: str) -> str:
    mean, complete = report.mean(method, backend)
    return "-" if math.isnan(mean) else f"{mean:.3f}" + ("" if complete else "*")


def format_markdown(report: Report) -> str:
    if not report.cells:
        return "No trials recorded.\n"
    lines = ["## Grasp success rate", ""]
    lines.append("| method | backend | " + " | ".join(report.surfaces) + " | mean |")
    lines.append("|---|---|" + "---|" * len(report.surfaces) + "---|")
    for method, backend in report.rows:
        cells = [_cell_text(report.cells.get((s, method, backend))) for s in report.surfaces]
        lines.append(f"| {method_label(method)} | {backend} | " + " | ".join(cells) + f" | {_mean_text(report, method, backend)} |")
    lines += ["", RATE_NOTE, MEAN_NOTE]
    if any(m == "ground_truth" for m, _ in report.rows):
        lines.append(ORACLE_NOTE)
    excluded = [c for c in report.cells.values() if c.skipped or c.aborted]
    if excluded:
        parts = [f"{c.surface}/{method_label(c.method)}/{c.backend}: {c.skipped} skipped, {c.aborted} aborted" for c in excluded]
        lines.append("Excluded from rates: " + "; ".join(sorted(parts)) + ".")
    lines += ["", "## Pairwise comparisons (Fisher's exact test, two-sided)", ""]
    if report.comparisons:
        lines.append("| surface | backend | method A | method B | A | B | p (two-sided) |")
        lines.append("|---|---|---|---|---|---|---|")
        for c in report.comparisons:
            lines.append(
                f"| {c.surface} | {c.backend} | {method_label(c.method_a)} | {method_label(c.method_b)} | "
                f"{c.successes_a}/{c.trials_a} | {c.successes_b}/{c.trials_b} | {c.p_value:.3g} |"
            )
    else:
        lines.append("No pair of methods shares a surface type and backend.")
    lines += ["", FISHER_NOTE]
    return "\n".join(lines) + "\n"


CSV_COLUMNS = ("surface", "method", "backend", "successes", "failures", "trials", "rate", "wilson_low", "wilson_high", "skipped", "aborted")


def format_csv(report: Report) -> str:
    """One row per surface x (method, backend), then one ``mean`` row per (method, backend) (rate only)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for method, backend in report.rows:
        for s in report.surfaces:
            c = report.cells.get((s, method, backend))
            if c is None:
                continue
            lo, hi = c.interval
            f = lambda v: "" if math.isnan(v) else f"{v:.6f}"  # noqa: E731 - local formatter
            writer.writerow([s, method, backend, c.successes, c.failures, c.trials, f(c.rate), f(lo), f(hi), c.skipped, c.aborted])
        mean, complete = report.mean(method, backend)
        writer.writerow(
            ["mean" if complete else "mean*", method, backend, "", "", "", "" if math.isnan(mean) else f"{mean:.6f}", "", "", "", ""]
        )
    return buffer.getvalue()


def _finite(v: float) -> float | None:
    return None if math.isnan(v) else round(v, 6)


def format_json(report: Report) -> str:
    cells = []
    for (_surface, m, _backend), c in sorted(
        report.cells.items(), key=lambda kv: (report.rows.index(kv[0][1:]), report.surfaces.index(kv[0][0]))
    ):
        lo, hi = c.interval
        cells.append(
            {
                **asdict(c),
                "trials": c.trials,
                "rate": _finite(c.rate),
                "wilson_low": _finite(lo),
                "wilson_high": _finite(hi),
                "oracle": m == "ground_truth",
            }
        )
    means = []
    for m, b in report.rows:
        mean, complete = report.mean(m, b)
        means.append({"method": m, "backend": b, "mean_rate": _finite(mean), "all_surfaces": complete})
    comps = [{**asdict(c), "p_value": _finite(c.p_value), "test": "fisher_exact_two_sided"} for c in report.comparisons]
    doc = {"surfaces": report.surfaces, "cells": cells, "means": means, "comparisons": comps, "notes": [RATE_NOTE, MEAN_NOTE, FISHER_NOTE]}
    return json.dumps(doc, indent=2) + "\n"


FORMATTERS = {"md": format_markdown, "csv": format_csv, "json": format_json}


def plot_report(report: Report, path: str | Path) -> Path:
    """Grouped bar chart (surfaces + mean on x, one bar per method and backend) with Wilson 95 % error bars; PNG, atomic."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    path = Path(path)
    if not report.rows:
        raise ValueError("nothing to plot: the database has no trials")
    groups = [*report.surfaces, "mean"]
    width = 0.8 / len(report.rows)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.5 + len(groups) * (0.6 + 0.35 * len(report.rows))), 4.5), dpi=120)
    for i, (method, backend) in enumerate(report.rows):
        rates, err_lo, err_hi = [], [], []
        for s in report.surfaces:
            c = report.cells.get((s, method, backend))
            if c is None or c.trials == 0:
                rates.append(np.nan)
                err_lo.append(np.nan)
                err_hi.append(np.nan)
                continue
            lo, hi = c.interval
            rates.append(c.rate)
            err_lo.append(c.rate - lo)
            err_hi.append(hi - c.rate)
        mean, _ = report.mean(method, backend)
        rates.append(mean)
        err_lo.append(np.nan)  # the mean of rates has no binomial interval: no error bar
        err_hi.append(np.nan)
        x = np.arange(len(groups)) - 0.4 + width * (i + 0.5)
        label = method_label(method) + ("" if len({b for _, b in report.rows}) == 1 else f" [{backend}]")
        ax.bar(x, rates, width, yerr=[err_lo, err_hi], capsize=3, label=label)
    ax.set_xticks(np.arange(len(groups)), groups)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("grasp success rate")
    ax.set_title("Grasp success per surface type (error bars: Wilson 95 % interval)", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=min(3, len(report.rows)), frameon=False)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path
