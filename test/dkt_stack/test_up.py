"""`dkt-stack up` starts a graph from its description; real nodes pass real messages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sensor_msgs.msg import Image

from dkt_stack import conversions as cv
from dkt_stack.ros.qos import qos_by_name

pytestmark = pytest.mark.ros

TWO_NODES = """
name: two_nodes
arguments:
  fps: {default: 15.0}
nodes:
  - name: camera
    executable: camera_node
    namespace: cam
    parameters: {source: synthetic, synthetic: {fps: "${fps}", width: 128, height: 96}}
  - name: depth
    executable: depth_node
    namespace: cam
    parameters: {engine: {backend: raw}, qos: sensor_data}
"""


def test_up_runs_a_two_node_graph(ros, tmp_path):
    graph = tmp_path / "two_nodes.yaml"
    graph.write_text(textwrap.dedent(TWO_NODES))
    qos = qos_by_name("sensor_data")
    raw = ros.collect(Image, "/cam/aligned_depth_to_color/image_raw", qos)
    rel = ros.collect(Image, "/cam/depth/relative", qos)
    cmd = [sys.executable, "-m", "dkt_stack.cli", "up", str(graph), "fps:=20.0", "--log-dir", str(tmp_path / "logs")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    def stamps(collector):
        return {cv.stamp_to_ns(m.header.stamp) for m in collector.messages}

    try:  # discovery of each topic takes its own time: wait for frames seen on both
        rel.wait(predicate=lambda _: len(stamps(rel) & stamps(raw)) >= 3, timeout=60)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out = proc.communicate(timeout=30)[0].decode()
    logs = {p.name: p.read_text() for p in (tmp_path / "logs").iterdir()}
    assert proc.returncode == 0, (out, logs)
    assert "started 2 node(s) of graph 'two_nodes'" in out
    # depth_node's raw backend publishes exactly 1/z of the camera's depth, same stamp and frame
    by_stamp = {cv.stamp_to_ns(m.header.stamp): m for m in raw.messages}
    matched = [(m, by_stamp[cv.stamp_to_ns(m.header.stamp)]) for m in rel.messages if cv.stamp_to_ns(m.header.stamp) in by_stamp]
    assert matched, "no relative depth frame matched a camera frame by stamp"
    rel_msg, raw_msg = matched[-1]
    assert rel_msg.encoding == "32FC1" and rel_msg.header.frame_id == raw_msg.header.frame_id == "camera_color_optical_frame"
    z = cv.depth_to_metres(cv.image_to_numpy(raw_msg), "16UC1")
    disparity = cv.image_to_numpy(rel_msg)
    np.testing.assert_array_equal(np.isnan(disparity), np.isnan(z))
    np.testing.assert_allclose(disparity[np.isfinite(z)], 1.0 / z[np.isfinite(z)], rtol=1e-6)


def test_up_reports_config_errors_with_file_and_key(tmp_path):
    graph = tmp_path / "bad.yaml"
    graph.write_text("name: bad\nnodes: [{name: cam, executable: camera_node, namespace: 5}]\n")
    out = subprocess.run([sys.executable, "-m", "dkt_stack.cli", "up", str(graph)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert f"{graph}: key 'nodes[0].namespace': expected a string, got 5" in out.stderr
    out = subprocess.run([sys.executable, "-m", "dkt_stack.cli", "up", "perception", "backend=raw"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "graph arguments are written name:=value, got 'backend=raw'" in out.stderr
    graph.write_text("name: typo\nnodes: [{name: cam, executable: camera_node}, {name: d, executable: dept_node}]\n")
    out = subprocess.run([sys.executable, "-m", "dkt_stack.cli", "up", str(graph)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "graph 'typo', node /d: no installed executable 'dept_node'" in out.stderr and "started" not in out.stderr


def test_up_print_shows_resolved_parameters():
    out = subprocess.run(
        [sys.executable, "-m", "dkt_stack.cli", "up", "perception", "backend:=raw", "camera_source:=synthetic", "--print"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "name: /camera/depth" in out.stdout and "backend: raw" in out.stdout and "source: synthetic" in out.stdout
