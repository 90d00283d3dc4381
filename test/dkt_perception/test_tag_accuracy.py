"""The tag accuracy report: its figures against the acceptance bounds, and its command line."""

from __future__ import annotations

import json

from dkt_perception.tag_accuracy import evaluate, main


def test_refined_corners_meet_the_millimetre_acceptance():
    result = evaluate(2)
    refined = result["refined"]
    assert set(refined["tags"]) == {0, 1, 2}
    for tag in refined["tags"].values():
        assert tag["refined"] and tag["corner_max_px"] < 0.04 and abs(tag["z_error_mm"]) < 0.6
    assert all(mm <= 1.0 for mm in refined["median_depth_error_mm"].values())
    assert not any(tag["refined"] for tag in result["detector"]["tags"].values())


def test_command_line_prints_one_json_line_per_seed(capsys):
    assert main(["--seeds", "1", "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["seed"] == 1
