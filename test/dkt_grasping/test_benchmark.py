"""The grasp benchmark runs end to end on a small cloud and reports its figures."""

import argparse

from dkt_grasping import benchmark


def test_benchmark_reports_figures():
    parser = argparse.ArgumentParser()
    benchmark.add_arguments(parser)
    result = benchmark.run(parser.parse_args(["--json", "--points", "6000", "--repeats", "1"]))
    assert result["points"] == 6000
    assert result["grasps_found"] > 0
    assert result["grasp_ms"] > 0 and result["plan_ms"] > 0
    assert result["plan_ok"] is True and result["plan_duration_s"] > 0
