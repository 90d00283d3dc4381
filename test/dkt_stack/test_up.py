"""`dkt-stack up` starts a graph from its description; real nodes pass real messages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from sensor_msgs.msg import Image, PointCloud2

from dkt_stack import conversions as cv
from dkt_stack.ros.qos import qos_by_name, sensor_subscription_qos
from dkt_stack.ros.transport import PROFILE_VARIABLES, large_data_profile

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
    raw = ros.collect(Image, "/cam/camera/aligned_depth_to_color/image_raw", qos)  # realsense-ros 4.x: under the camera node's name
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
    assert "started 2 node(s) of graph 'two_nodes' (/cam/camera, /cam/depth)" in out and "Traceback" not in out
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


PROBE = Path(__file__).with_name("default_qos_probe.py")


def children_of(pid: int) -> dict[str, int]:
    """{executable: pid} of the node processes `dkt-stack up` (pid) started (their argv holds the console script name)."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if int(fields[1]) == pid:  # ppid
            for name in ("camera_node", "depth_node", "metric_depth_node", "static_tf_node"):
                if f"sys.argv[0] = '{name}'" in cmdline:
                    out[name] = int(stat.parent.name)
    return out


class Lines:
    """A child's output, read on a thread (so the pipe never fills)."""

    def __init__(self, proc: subprocess.Popen):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc):
        for line in iter(proc.stdout.readline, b""):
            self.lines.append(line.decode(errors="replace"))

    def text(self) -> str:
        return "".join(self.lines)

    def join(self) -> str:
        self._thread.join(timeout=30)
        return self.text()


def test_up_serves_default_subscribers_reports_a_dead_camera_restarts_it_and_stops_cleanly(ros, tmp_path):
    """The acceptance of the rig-facing ROS interface, on `dkt-stack up perception backend:=raw camera_source:=synthetic`."""
    diags = ros.collect(DiagnosticArray, "/diagnostics", 200)
    logs = tmp_path / "logs"
    cmd = [sys.executable, "-m", "dkt_stack.cli", "up", "perception", "backend:=raw", "camera_source:=synthetic", "--log-dir", str(logs), "--status-every", "2"]
    up = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    out = Lines(up)
    try:
        # 1. a user's node: default QoS (reliable), no DDS profile of ours, its own process
        env = {k: v for k, v in os.environ.items() if k not in PROFILE_VARIABLES}
        probe = subprocess.run(
            [sys.executable, str(PROBE), "8", "Image:/camera/camera/color/image_raw", "PointCloud2:/camera/points"],
            env=env, capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        figures = json.loads(probe.stdout.splitlines()[-1])
        colour, clouds = figures["/camera/camera/color/image_raw"], figures["/camera/points"]
        assert colour["rate_hz"] >= 20.0, (figures, out.text())
        # clouds: every one the graph makes reaches it (their rate is the CPU's; `dkt-stack bench graph` measures it)
        published = [
            float(v) for s in statuses(diags, "/camera/metric_depth")[-8:] for k, v in figures_of(s).items() if k == "out /camera/points rate_hz"
        ]
        assert clouds["in_window"] > 20 and clouds["rate_hz"] >= 0.85 * float(np.median(published)), (figures, published)
        nodes = children_of(up.pid)
        assert set(nodes) == {"camera_node", "depth_node", "metric_depth_node", "static_tf_node"}, nodes
        # 2. SIGKILL the camera: depth_node's diagnostics leave OK within 5 s
        n_diags = len(diags.messages)
        killed_at, killed_wall_ns = time.monotonic(), time.time_ns()
        os.kill(nodes["camera_node"], signal.SIGKILL)

        def not_ok_from_depth(_):
            return any(s.level != DiagnosticStatus.OK for s in statuses(diags, "/camera/depth", n_diags))

        diags.wait(predicate=not_ok_from_depth, timeout=30)
        (warned, status) = next(
            (t, s) for m, t in zip(diags.messages[n_diags:], diags.receive_times[n_diags:], strict=True)
            for s in m.status if s.name.endswith("/camera/depth") and s.level != DiagnosticStatus.OK
        )  # fmt: skip
        assert warned - killed_at <= 5.0 and "nothing received on /camera/camera/color/image_raw" in status.message, status.message
        # 3. the supervisor restarts the camera alone; clouds resume within 20 s
        clouds_after = ros.collect(PointCloud2, "/camera/points", sensor_subscription_qos())
        clouds_after.wait(predicate=lambda ms: any(cv.stamp_to_ns(m.header.stamp) > killed_wall_ns for m in ms), timeout=60)
        resumed = next(t for m, t in zip(clouds_after.messages, clouds_after.receive_times, strict=True) if cv.stamp_to_ns(m.header.stamp) > killed_wall_ns)
        assert resumed - killed_at <= 20.0, resumed - killed_at
        print(f"default-QoS probe without DDS profile: {figures}; clouds published {np.median(published):.1f} Hz; "
              f"non-OK after {warned - killed_at:.2f} s; clouds resumed after {resumed - killed_at:.2f} s")  # fmt: skip
        after = children_of(up.pid)
        assert after["camera_node"] != nodes["camera_node"]
        assert {k: v for k, v in after.items() if k != "camera_node"} == {k: v for k, v in nodes.items() if k != "camera_node"}
        # 4. `--status` from another terminal: one line per node, the camera restarted once
        status_out = subprocess.run(
            [sys.executable, "-m", "dkt_stack.cli", "up", "perception", "backend:=raw", "camera_source:=synthetic", "--status"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        lines = {ln.split()[0]: ln for ln in status_out.stdout.splitlines()[1:]}
        assert status_out.returncode == 0, status_out.stdout + status_out.stderr
        assert "restarted 1x" in lines["/camera/camera"] and "alive" in lines["/camera/depth"] and "points " in lines["/camera/metric_depth"].split("out:")[1]
    finally:
        up.send_signal(signal.SIGINT)  # 5. Ctrl-C: everything stops, status 0, no traceback anywhere
        code = up.wait(timeout=60)
    text = out.join()
    assert code == 0, text
    assert "node /camera/camera killed by SIGKILL" in text and "restarting in 1.0 s" in text and "node /camera/camera restarted (restart 1" in text
    assert "stopping the graph" in text and "Traceback" not in text
    for log in logs.iterdir():
        assert "Traceback" not in log.read_text(), log


def test_a_node_that_cannot_start_says_why_in_one_line(tmp_path):
    """depth_node with backend dkt and no weights: one line naming the missing files and the fetch command; the graph stops."""
    empty = tmp_path / "no_weights"
    empty.mkdir()
    cmd = [sys.executable, "-m", "dkt_stack.cli", "up", "perception", "backend:=dkt", f"weights_dir:={empty}", "camera_source:=synthetic", "fps:=5.0"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 2, text
    assert "Traceback" not in text
    (line,) = [ln for ln in out.stderr.splitlines() if ln.startswith("dkt-stack up: node /camera/depth")]
    assert line.startswith(f"dkt-stack up: node /camera/depth cannot start: MissingWeightsError: missing DKT weights in {empty}: ")
    assert line.endswith(f"run `dkt-stack weights fetch --dir {empty}`")
    assert "stopping the graph: fix the cause above" in out.stderr


def test_demo_with_dkt_and_no_weights_says_why_in_one_line(tmp_path):
    empty = tmp_path / "no_weights"
    empty.mkdir()
    cmd = [sys.executable, "-m", "dkt_stack.cli", "demo", "--backend", "dkt", "--weights-dir", str(empty), "--frames", "2", "--fps", "5", "--out", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "Traceback" not in out.stdout + out.stderr
    # the demo checks DKT's weights before it starts any node: one line, at once (a node that cannot start: the test above)
    assert out.stderr.count("\n") == 1 and out.stderr.startswith(f"dkt-stack demo: missing DKT weights in {empty}: ")
    assert "--backend auto" in out.stderr and not (tmp_path / "logs").exists()


def test_up_prints_the_dds_profile_for_an_external_driver():
    out = subprocess.run([sys.executable, "-m", "dkt_stack.cli", "up", "--dds-profile"], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == large_data_profile() and Path(out.stdout.strip()).is_file()


def figures_of(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def statuses(collector, node: str, start: int = 0) -> list:
    return [s for m in collector.messages[start:] for s in m.status if s.name.endswith(f": {node}")]


def test_every_perception_output_reaches_a_default_qos_subscriber(ros, tmp_path):
    """rviz2-style subscriptions (rclpy's default profile: reliable, depth 10) to every topic of the perception graph get data."""
    from sensor_msgs.msg import CameraInfo
    from visualization_msgs.msg import MarkerArray

    from dkt_stack.graph import resolve_graph
    from dkt_stack.runner import GraphRunner

    graph = resolve_graph("perception", {"backend": "raw", "camera_source": "synthetic", "fps": "10.0"})
    graph.node("camera").parameters["synthetic"].update(width=160, height=120)
    topics = {
        "/camera/camera/color/image_raw": Image, "/camera/camera/color/camera_info": CameraInfo,
        "/camera/camera/aligned_depth_to_color/image_raw": Image, "/camera/camera/aligned_depth_to_color/camera_info": CameraInfo,
        "/camera/camera/ground_truth/depth": Image, "/camera/depth/relative": Image, "/camera/depth/relative_preview": Image,
        "/camera/depth/metric": Image, "/camera/depth/camera_info": CameraInfo, "/camera/points": PointCloud2,
        "/camera/tags/markers": MarkerArray,
    }  # fmt: skip
    collectors = {topic: ros.collect(msg_type, topic, 10) for topic, msg_type in topics.items()}
    with GraphRunner(graph, log_dir=tmp_path / "logs") as runner:
        deadline = time.monotonic() + 120
        while not all(len(c.messages) >= 2 for c in collectors.values()) and time.monotonic() < deadline:
            assert not runner.poll(), [p.output() for p in runner.processes]
            time.sleep(0.2)
    assert {t: len(c.messages) for t, c in collectors.items() if len(c.messages) < 2} == {}
    info = collectors["/camera/camera/color/camera_info"].messages[-1]
    assert (info.distortion_model, list(info.d)) == ("plumb_bob", [0.0] * 5)
