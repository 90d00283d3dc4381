"""The demo's parts that run without ROS nodes: backend choice (one-line error before any node starts), frames_in, PNGs."""

from __future__ import annotations

import os
import stat

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from dkt_perception.demo import DemoRecorder, choose_backend, write_pngs
from dkt_perception.depth import MissingWeightsError
from dkt_stack.cli import main


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
