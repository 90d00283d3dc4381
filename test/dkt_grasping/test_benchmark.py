"""The grasp benchmark runs end to end on small clouds and reports its figures."""

import argparse

import pytest

from dkt_grasping import benchmark


def test_benchmark_reports_figures():
    parser = argparse.ArgumentParser()
    benchmark.add_arguments(parser)
    result = benchmark.run(parser.parse_args(["--json", "--points", "6000", "--repeats", "1", "--scenes", "3"]))
    assert result["points"] == 6000 and result["scenes"] == 3
    assert result["grasps_found"] > 0 and len(result["grasps_found_per_scene"]) == 3
    assert result["grasp_ms"] > 0 and result["plan_ms"] > 0
    assert result["top_grasps_tried"] > 0
    assert result["reachable_fraction"] == pytest.approx(result["top_grasps_planned"] / result["top_grasps_tried"], abs=1e-3)
    assert result["reachable_fraction"] >= 0.9  # what grasp_node publishes, the planner can execute
    with pytest.raises(ValueError, match="--scenes must be >= 3"):
        benchmark.run(parser.parse_args(["--scenes", "2"]))
