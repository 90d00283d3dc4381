"""The cobot_magic_sim graph: its camera poses are the rig file's, and the rig trial backend drives it like the robot."""

from __future__ import annotations

import os

import numpy as np
import pytest

from dkt_stack.graph import resolve_graph
from dkt_stack.rig import load_rig


def test_graph_uses_the_rig_files_camera_poses():
    graph = resolve_graph("cobot_magic_sim")
    rig = load_rig("cobot_magic_sim")
    # one grasp node for both arms, reading each arm's camera pose and base frame from the rig file
    (grasp,) = [n for n in graph.nodes if n.executable == "grasp_node"]
    assert grasp.parameters["arms"] == sorted(rig.arms) == ["left", "right"]
    assert load_rig(grasp.parameters["rig"]) == rig and "camera_pose" not in grasp.parameters
    assert {n.namespace for n in graph.nodes if n.executable == "planner_node"} == {"left", "right"}
    # TF from the same rig file
    tf = {t.child: t.T for t in graph.static_transforms}
    for mount in rig.arms.values():
        np.testing.assert_allclose(tf[mount.base_frame], np.linalg.inv(mount.T_base_camera), atol=1e-12)
    # sim_node stands in for the camera driver and the arm nodes: none of those in the graph.
    assert {n.executable for n in graph.nodes} == {"sim_node", "depth_node", "metric_depth_node", "grasp_node", "planner_node", "static_tf_node"}
    assert graph.node("sim").parameters["sim"] == {"seed": 0, "surface": "translucent", "width": 640, "height": 480}


@pytest.mark.ros
def test_rig_trials_run_unchanged_against_the_simulated_cobot_magic(tmp_path, monkeypatch):
    from dkt_grasping.trials.database import TrialDatabase
    from dkt_grasping.trials.judge import OperatorPrompt
    from dkt_grasping.trials.rig import RigTimeouts, RigTrialBackend
    from dkt_grasping.trials.runner import TrialRunner, start_session
    from dkt_grasping.trials.session import SessionSpec
    from dkt_stack.runner import GraphRunner

    domain = str(int(os.environ["ROS_DOMAIN_ID"]) + 131)  # its own ROS domain: no other test's nodes
    monkeypatch.setenv("ROS_DOMAIN_ID", domain)
    graph = resolve_graph("cobot_magic_sim", {"backend": "raw", "width": 320, "height": 240, "fps": 2.0, "seed": 1, "surface": "diffusive"})
    runner = GraphRunner(graph, env={"ROS_DOMAIN_ID": domain}, log_dir=tmp_path / "logs").start()
    try:
        spec = SessionSpec(backend="rig", method="raw", arm="auto", judge="operator", surface="diffusive", n_trials=1, seed=2)
        backend = RigTrialBackend(spec, RigTimeouts(graph_s=90.0, capture_s=30.0, planning_s=60.0, execution_s=60.0))
        try:
            with TrialDatabase(tmp_path / "t.sqlite") as db:
                sid = start_session(db, spec)
                said: list[str] = []
                result = TrialRunner(db, backend=backend, judge=OperatorPrompt(ask=lambda _: "", say=said.append), progress=False).run(sid)
                (record,) = db.trials(sid)
        finally:
            backend.close()
    finally:
        runner.stop()
    assert result.status == "complete" and len(said) == 1, said
    assert (record.backend, record.method, record.decided_by) == ("rig", "raw", "operator")
    assert {"colour", "depth", "cloud"} <= set(record.artifacts)
    depth = np.load(tmp_path / record.artifacts["depth"])["depth_m"]
    assert depth.shape == (240, 320) and 0.4 < np.nanmedian(depth) < 1.2  # the table seen from the mast
    assert record.parameters["cloud_points"] > 1000
    # the grasp node chose the arm; the trial followed it and records it
    if record.failure_stage != "grasp_detection":
        assert record.parameters["arm_namespace"] in ("/left", "/right")
    # Detection ran on the simulated cloud; the stage the trial reached is the rig backend's own account.
    assert record.failure_stage in (None, "grasp", "grasp_detection", "planning", "execution"), record.notes
    if record.failure_stage in (None, "grasp"):  # executed in physics: the fingers report what they closed on
        assert record.trajectory["points"] > 10 and record.gripper_width_m is not None
        assert record.grasp["arm"] == record.parameters["arm_namespace"].strip("/")
        assert record.suggestion == ("success" if record.gripper_width_m > spec.holding_threshold_m else "failure")
