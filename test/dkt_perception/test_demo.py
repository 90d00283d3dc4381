"""The DKT path of the live graph without weights: tiny model, random weights, real node processes end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image, PointCloud2

from dkt_perception.demo import RANDOM_WEIGHTS_NOTE, accept_any_scale
from dkt_stack import conversions as cv
from dkt_stack.graph import resolve_graph
from dkt_stack.ros.qos import sensor_subscription_qos
from dkt_stack.runner import GraphRunner

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_perception_graph_with_tiny_random_dkt_carries_colour_stamps_to_clouds(ros, tmp_path):
    graph = resolve_graph(
        "perception",
        {"camera_source": "synthetic", "backend": "dkt", "model": "tiny", "random_weights": "true", "model_height": "64", "model_width": "96", "fps": "5.0"},
    )
    graph.node("camera").parameters["synthetic"].update(width=160, height=120)
    accept_any_scale(graph)
    qos = sensor_subscription_qos(depth=50)
    colour = ros.collect(Image, "/camera/camera/color/image_raw", qos)
    relative = ros.collect(Image, "/camera/depth/relative", qos)
    metric = ros.collect(Image, "/camera/depth/metric", qos)
    clouds = ros.collect(PointCloud2, "/camera/points", qos)
    diags = ros.collect(DiagnosticArray, "/diagnostics", 100)
    runner = GraphRunner(graph, log_dir=tmp_path / "logs", report=lambda line: print(line))
    try:
        runner.start()
        clouds.wait(2, timeout=240)
        assert not runner.poll(), [p.output() for p in runner.processes]
    finally:
        runner.stop()
    colour_stamps = {cv.stamp_to_ns(m.header.stamp) for m in colour.messages}
    rel = relative.messages[-1]
    assert (rel.encoding, rel.height, rel.width, rel.header.frame_id) == ("32FC1", 120, 160, "camera_color_optical_frame")  # back at the input size
    for collector in (relative, metric, clouds):
        stamps = [cv.stamp_to_ns(m.header.stamp) for m in collector.messages]
        assert stamps and set(stamps) <= colour_stamps and stamps == sorted(stamps)  # each output carries its colour frame's stamp
    depth_status = [s for m in diags.messages for s in m.status if s.name == "depth: /camera/depth" and any(kv.key == "latency_ms_p50" for kv in s.values)]
    figures = {kv.key: kv.value for kv in depth_status[-1].values}
    assert depth_status[-1].hardware_id == "depth:dkt" and figures["device"] == "cpu"
    # streaming latency: a frame's depth comes out with a later chunk (4 frames at 5 Hz is >= 0.6 s)
    assert float(figures["latency_ms_p50"]) > 0.0 and float(figures["latency_ms_p95"]) >= float(figures["latency_ms_p50"])
    assert float(figures["in /camera/camera/color/image_raw rate_hz"]) > 0.0 and int(figures["frames_out"]) >= 2


def test_demo_labels_the_random_weights_run_a_plumbing_check(tmp_path):
    cmd = [sys.executable, "-m", "dkt_stack.cli", "demo", "--backend", "dkt", "--model", "tiny", "--random-weights", "--frames", "1", "--fps", "5"]
    out = subprocess.run([*cmd, "--out", str(tmp_path), "--timeout", "240"], capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["backend"] == "dkt (tiny, random weights)" and summary["depth_meaningful"] is False
    assert summary["purpose"] == "plumbing check" and summary["note"] == RANDOM_WEIGHTS_NOTE
    assert summary["frames_out"] >= 1 and summary["latency_ms_p50"] > 0
    assert f"note: {RANDOM_WEIGHTS_NOTE}" in out.stdout
