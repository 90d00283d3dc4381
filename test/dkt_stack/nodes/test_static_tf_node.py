"""static_tf_node as a real ROS process: the rig's transforms on /tf_static, or one clear note when TF is unavailable."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from dkt_stack import conversions as cv
from dkt_stack.graph import resolve_graph
from dkt_stack.rig import pose7_to_matrix
from dkt_stack.ros.qos import static_tf_qos
from dkt_stack.runner import NodeProcess

pytestmark = pytest.mark.ros
HAVE_TF2_MSGS = importlib.util.find_spec("tf2_msgs") is not None


def start(tmp_path):
    graph = resolve_graph("cobot_magic", {"arms": "false"})
    return graph, NodeProcess(graph.node("static_tf"), tmp_path, log_path=tmp_path / "static_tf.log")


def reported_transforms(status: DiagnosticStatus) -> dict[tuple[str, str], np.ndarray]:
    out = {}
    for kv in status.values:
        if " -> " in kv.key:
            parent, child = kv.key.split(" -> ")
            out[(parent, child)] = pose7_to_matrix([float(v) for v in kv.value.split()])
    return out


@pytest.mark.skipif(HAVE_TF2_MSGS, reason="tf2_msgs is installed: the publishing test runs instead")
def test_without_tf2_msgs_the_node_says_so_once_and_reports_the_transforms(ros, tmp_path):
    diags = ros.collect(DiagnosticArray, "/diagnostics")
    graph, proc = start(tmp_path)
    try:
        msgs = diags.wait(timeout=60, predicate=lambda ms: sum(s.name == "static_tf: /static_tf" for m in ms for s in m.status) >= 2)
        assert proc.alive()
    finally:
        assert proc.stop() == 0, proc.output()
    status = [s for m in msgs for s in m.status if s.name == "static_tf: /static_tf"][-1]
    assert status.level == DiagnosticStatus.WARN and status.message.startswith("TF unavailable: tf2_msgs is not installed")
    assert proc.output().count("TF unavailable") == 1  # logged once, not per diagnostics period
    got = reported_transforms(status)
    assert set(got) == {(t.parent, t.child) for t in graph.static_transforms} and len(got) == 3
    for t in graph.static_transforms:
        np.testing.assert_allclose(got[(t.parent, t.child)], t.T, atol=1e-5)  # 6 significant digits in the report


@pytest.mark.skipif(not HAVE_TF2_MSGS, reason="tf2_msgs comes with ROS from apt (the rig), not with the PyPI wheels")
def test_with_tf2_msgs_the_tree_is_on_tf_static_for_late_subscribers(ros, tmp_path):
    from tf2_msgs.msg import TFMessage

    graph, proc = start(tmp_path)
    try:
        tf = ros.collect(TFMessage, "/tf_static", static_tf_qos())  # transient local: subscribing after the publish still delivers
        (msg,) = tf.wait(1, timeout=60)
    finally:
        assert proc.stop() == 0, proc.output()
    got = {(t.header.frame_id, t.child_frame_id): cv.transform_stamped_to_matrix(t) for t in msg.transforms}
    assert list(got) == [(t.parent, t.child) for t in graph.static_transforms]
    for t in graph.static_transforms:
        np.testing.assert_allclose(got[(t.parent, t.child)], t.T, atol=1e-12)
