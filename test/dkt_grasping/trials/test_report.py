"""The report on a fixture database built here: exact table text, CSV, JSON, the plot and the CLI."""

from __future__ import annotations

import json

import pytest

from dkt_grasping.trials.database import TrialDatabase, TrialRecord
from dkt_grasping.trials.report import build_report, format_csv, format_json, format_markdown, plot_report
from dkt_stack.cli import main

# (surface, method, successes, failure stages (one per failure, as recorded), skipped, aborted)
FIXTURE = [
    ("translucent", "raw", 2, ["grasp_detection"] * 5 + ["metric_depth", "planning", "grasp"], 0, 0),
    ("reflective", "raw", 0, ["grasp_detection", "grasp_detection", "execution", "grasp", None], 1, 0),
    ("diffusive", "raw", 4, ["planning", "planning", "grasp", "execution"], 0, 0),
    ("translucent", "ground_truth", 8, ["planning", "grasp"], 0, 0),
    ("reflective", "ground_truth", 1, ["planning", "capture", "grasp", "grasp", "execution"], 0, 1),
]

EXPECTED_MD = """\
## Grasp success rate

| method | backend | judge | translucent | reflective | diffusive | mean |
|---|---|---|---|---|---|---|
| raw | simulation | physics | 0.20 (2/10) [0.06, 0.51] | 0.00 (0/5) [0.00, 0.43] | 0.50 (4/8) [0.22, 0.78] | 0.233 |
| ground_truth (oracle) | simulation | physics | 0.80 (8/10) [0.49, 0.94] | 0.17 (1/6) [0.03, 0.56] | - | 0.483* |

Rate = successes / (successes + failures), 95 % Wilson score interval in brackets; skipped and aborted trials are excluded.
Mean = mean of the per-surface rates (as in the paper); * = over the surfaces this row has trials for only.
ground_truth (oracle) is the simulator's exact depth: an upper bound, not a method.
Excluded from rates: reflective/ground_truth (oracle)/simulation/physics: 0 skipped, 1 aborted; reflective/raw/simulation/physics: 1 skipped, 0 aborted.

## Failures by stage

| method | backend | judge | surface | n | failures | perception | detection | planning | execution | grasp |
|---|---|---|---|---|---|---|---|---|---|---|
| raw | simulation | physics | translucent | 10 | 8 | 1 | 5 | 1 | 0 | 1 |
| raw | simulation | physics | reflective | 5 | 5 | 0 | 2 | 0 | 1 | 2 |
| raw | simulation | physics | diffusive | 8 | 4 | 0 | 0 | 2 | 1 | 1 |
| ground_truth (oracle) | simulation | physics | translucent | 10 | 2 | 0 | 0 | 1 | 0 | 1 |
| ground_truth (oracle) | simulation | physics | reflective | 6 | 5 | 1 | 0 | 1 | 1 | 2 |

Stages: perception (no capture, no metric scale or no cloud), detection (no grasp on the target), planning, execution (collision or push before the gripper closed), grasp (closed on nothing, slipped or dropped).

## Pairwise comparisons (Fisher's exact test, two-sided)

| surface | backend | judge | method A | method B | A | B | p (two-sided) |
|---|---|---|---|---|---|---|---|
| translucent | simulation | physics | raw | ground_truth (oracle) | 2/10 | 8/10 | 0.023 |
| reflective | simulation | physics | raw | ground_truth (oracle) | 0/5 | 1/6 | 1 |

Pairwise comparisons: Fisher's exact test, two-sided, on the 2x2 table (successes, failures) of two methods on one surface type, backend and judge; no correction for multiple comparisons.
"""


@pytest.fixture
def fixture_db(tmp_path):
    path = tmp_path / "trials.sqlite"
    with TrialDatabase(path) as db:
        for surface, method, s, stages, k, a in FIXTURE:
            sid = f"{surface}-{method}"
            rows = [("success", None)] * s + [("failure", st) for st in stages] + [("skipped", None)] * k + [("aborted", None)] * a
            db.create_session(sid, surface=surface, method=method, backend="simulation", arm="simulated", n_trials=len(rows), spec={})
            for i, (outcome, stage) in enumerate(rows):
                db.add_trial(TrialRecord(sid, i, outcome, "none", surface, method, "simulation", decided_by="physics", failure_stage=stage))
    return path


def test_markdown_table_matches_exactly(fixture_db):
    with TrialDatabase(fixture_db) as db:
        report = build_report(db.trials())
    assert format_markdown(report) == EXPECTED_MD
    # The mean is the mean of the per-surface rates, as in the paper: (0.2 + 0.0 + 0.5) / 3.
    assert report.mean("raw", "simulation") == (pytest.approx(0.7 / 3), True)
    assert report.mean("raw", "simulation", "physics") == (pytest.approx(0.7 / 3), True)
    # Each failure counted once, at the report stage of what was recorded (None: ran through, so grasp).
    refl = report.cell("reflective", ("raw", "simulation", "physics"))
    assert refl.failures_by_stage == {"perception": 0, "detection": 2, "planning": 0, "execution": 1, "grasp": 2}
    assert all(sum(c.failures_by_stage.values()) == c.failures for c in report.cells.values())
    # Fisher on [[2, 8], [8, 2]]: P(a) = C(10, a)^2 / C(20, 10); a in {0, 1, 2, 8, 9, 10} -> (1 + 100 + 2025) * 2 / 184756.
    assert report.comparisons[0].p_value == pytest.approx(4252 / 184756, rel=1e-12)


def test_csv_and_json(fixture_db):
    with TrialDatabase(fixture_db) as db:
        report = build_report(db.trials())
    lines = format_csv(report).splitlines()
    assert lines[0] == (
        "surface,method,backend,judge,successes,failures,trials,rate,wilson_low,wilson_high,skipped,aborted,"
        "failures_perception,failures_detection,failures_planning,failures_execution,failures_grasp"
    )
    assert lines[1] == "translucent,raw,simulation,physics,2,8,10,0.200000,0.056682,0.509838,0,0,1,5,1,0,1"
    assert lines[2] == "reflective,raw,simulation,physics,0,5,5,0.000000,0.000000,0.434482,1,0,0,2,0,1,2"
    assert lines[4] == "mean,raw,simulation,physics,,,,0.233333,,,,,,,,,"
    assert lines[-1] == "mean*,ground_truth,simulation,physics,,,,0.483333,,,,,,,,,"
    doc = json.loads(format_json(report))
    assert doc["surfaces"] == ["translucent", "reflective", "diffusive"]
    assert doc["comparisons"][0]["test"] == "fisher_exact_two_sided" and doc["comparisons"][0]["p_value"] == pytest.approx(
        0.023014, abs=1e-6
    )
    gt = [c for c in doc["cells"] if c["method"] == "ground_truth"]
    assert all(c["oracle"] for c in gt) and gt[0]["wilson_low"] == pytest.approx(0.490162, abs=2e-6)
    assert doc["stages"] == ["perception", "detection", "planning", "execution", "grasp"]
    raw = {c["surface"]: c for c in doc["cells"] if c["method"] == "raw"}
    assert {c["judge"] for c in doc["cells"]} == {"physics"} and raw["translucent"]["n"] == 10
    assert raw["translucent"]["failures_by_stage"] == {"perception": 1, "detection": 5, "planning": 1, "execution": 0, "grasp": 1}
    assert doc["means"][0] == {"method": "raw", "backend": "simulation", "judge": "physics", "mean_rate": 0.233333, "all_surfaces": True}


def test_plot_is_written_atomically(fixture_db, tmp_path):
    with TrialDatabase(fixture_db) as db:
        report = build_report(db.trials())
    out = plot_report(report, tmp_path / "plots" / "rates.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["rates.png"]  # no temporary file left behind


def test_judges_are_never_pooled(tmp_path):
    with TrialDatabase(tmp_path / "t.sqlite") as db:
        db.create_session("s", surface="diffusive", method="raw", backend="simulation", arm="simulated", n_trials=4, spec={})
        for i, (outcome, judge) in enumerate([("success", "physics"), ("failure", "physics"), ("success", "operator"), ("success", "operator")]):
            db.add_trial(TrialRecord("s", i, outcome, "none", "diffusive", "raw", "simulation", decided_by=judge))
        report = build_report(db.trials())
    assert report.rows == [("raw", "simulation", "operator"), ("raw", "simulation", "physics")]
    assert [report.cell("diffusive", r).rate for r in report.rows] == [1.0, 0.5]
    assert report.cell("diffusive", report.rows[1]).failures_by_stage["grasp"] == 1  # no stage recorded: it ran through
    # Same backend, different judges: never compared.
    assert report.comparisons == []


def test_cli_report(fixture_db, tmp_path, capsys):
    assert main(["trials", "report", "--db", str(fixture_db)]) == 0
    assert capsys.readouterr().out == EXPECTED_MD
    out = tmp_path / "r.csv"
    assert main(["trials", "report", "--db", str(fixture_db), "--format", "csv", "--output", str(out)]) == 0
    assert out.read_text().startswith("surface,method,backend,")
    assert main(["trials", "report", "--db", str(tmp_path / "missing.sqlite")]) == 2
