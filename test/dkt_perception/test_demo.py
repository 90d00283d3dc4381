"""The demo: the DKT path of the live graph without weights (real node processes), and its parts that run without nodes
(backend choice: one-line error before any node starts; frames_in from the camera's diagnostics; PNGs with a colour bar)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import Image, PointCloud2

from dkt_perception.demo import RANDOM_WEIGHTS_NOTE, DemoRecorder, accept_any_scale, choose_backend, write_pngs
from dkt_perception.depth import MissingWeightsError
from dkt_stack import conversions as cv
from dkt_stack.cli import main
from dkt_stack.graph import resolve_graph
from dkt_stack.ros.qos import sensor_subscription_qos
from dkt_stack.runner import GraphRunner


@pytest.mark.ros
@pytest.mark.slow
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


@pytest.mark.ros
@pytest.mark.slow
def test_demo_labels_the_random_weights_run_a_plumbing_check(tmp_path):
    cmd = [sys.executable, "-m", "dkt_stack.cli", "demo", "--backend", "dkt", "--model", "tiny", "--random-weights", "--frames", "1", "--fps", "5"]
    out = subprocess.run([*cmd, "--out", str(tmp_path), "--timeout", "240"], capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["backend"] == "dkt (tiny, random weights)" and summary["depth_meaningful"] is False
    assert summary["purpose"] == "plumbing check" and summary["note"] == RANDOM_WEIGHTS_NOTE
    assert summary["frames_out"] >= 1 and summary["latency_ms_p50"] > 0
    assert f"note: {RANDOM_WEIGHTS_NOTE}" in out.stdout


def test_dkt_without_weights_fails_before_any_node_starts(tmp_path, capsys):
    with pytest.raises(MissingWeightsError, match="--backend auto"):
        choose_backend("dkt", str(tmp_path / "weights"))
    assert choose_backend("auto", str(tmp_path / "weights"))[0] == "raw"
    rc = main(["demo", "--backend", "dkt", "--weights-dir", str(tmp_path / "weights"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and err.startswith(f"dkt-stack demo: missing DKT weights in {tmp_path / 'weights'}: ")
    assert not (tmp_path / "out").exists()


def _camera_status(published: int) -> DiagnosticArray:
    values = [KeyValue(key="frames_published", value=str(published)), KeyValue(key="width", value="640")]
    return DiagnosticArray(status=[DiagnosticStatus(name="camera: /camera/camera", hardware_id="camera:synthetic", values=values),
                                   DiagnosticStatus(name="depth: /camera/depth", hardware_id="depth:raw",
                                                    values=[KeyValue(key="frames_published", value="3")])])


def test_frames_in_is_what_the_camera_published():
    rec = DemoRecorder()
    rec.frames_seen = 40  # what the probe received: fewer than the camera sent
    assert rec.summary("raw", "")["frames_in_source"].startswith("probe")
    rec.on_diagnostics(_camera_status(57))
    rec.on_diagnostics(_camera_status(61))
    summary = rec.summary("raw", "")
    assert summary["frames_in"] == 61 and summary["frames_in_source"] == "camera diagnostics"
    assert not rec.wait_camera_report(0.01)  # no newer report arrived


def test_pngs_have_a_colour_bar_and_the_usual_mode(tmp_path):
    depth = np.linspace(0.5, 1.5, 60 * 80, dtype=np.float32).reshape(60, 80)
    old = os.umask(0o022)
    try:
        written = write_pngs(tmp_path, {"metric": depth, "gt": depth, "rgb": np.zeros((60, 80, 3), np.uint8)})
    finally:
        os.umask(old)
    assert written == ["colour.png", "metric_depth.png", "ground_truth_depth.png"]
    metric = cv2.imread(str(tmp_path / "metric_depth.png"))
    assert metric.shape[0] == 60 and metric.shape[1] > 80  # the image plus the bar with its scale in metres
    assert all(stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644 for name in written)
