"""``dkt-stack bench sim`` prints its figures as one JSON object; bad options are a one-line error."""

from __future__ import annotations

import json

from dkt_stack.cli import main


def test_bench_sim_prints_figures(capsys):
    assert main(["bench", "sim", "--json", "--renders", "1", "--trials", "0", "--width", "96", "--height", "72"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["width"], doc["height"], doc["renders"], doc["trials"]) == (96, 72, 1, 0) and "trial_s" not in doc
    assert doc["render_ms"] > 0 and doc["capture_ms"] > 0 and doc["physics_realtime_factor"] > 0
    assert doc["physics_grasp_held"] is True and 5.0 < doc["physics_sim_s"] < 10.0  # the scripted grasp and its 2 s hold


def test_bench_sim_rejects_bad_options(capsys):
    assert main(["bench", "sim", "--renders", "0"]) == 2
    assert "bench sim needs --renders >= 1" in capsys.readouterr().err
