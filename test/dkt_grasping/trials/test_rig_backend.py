"""The rig trial backend against the real `simulation` node graph (child processes over Fast DDS)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import yaml

from dkt_grasping.trials.rig import RigTimeouts, RigUnavailableError, arm_selection
from dkt_grasping.trials.session import SessionSpec

STAGE_ORDER = ["capture", "grasp_detection", "planning", "execution"]


def rig_spec(**changes) -> SessionSpec:
    fields = {"backend": "rig", "method": "raw", "arm": "simulated", "judge": "operator", "n_trials": 2, "seed": 3}
    return SessionSpec(**{**fields, **changes})


def test_arm_selection_maps_names_to_namespace_and_backend():
    assert arm_selection("piper") == ("", "piper")
    assert arm_selection("simulated") == ("", "simulated")
    assert arm_selection("left") == ("/left", None)
    assert arm_selection("piper:right") == ("/right", "piper")
    assert arm_selection("") == ("", None)
    assert arm_selection("auto") == (None, None)  # the graph's grasp node chooses the arm
    with pytest.raises(ValueError, match="rig arm must be .* got 'ur5:left'"):
        arm_selection("ur5:left")
    with pytest.raises(ValueError, match="got 'left/arm x'"):
        arm_selection("left/arm x")


@pytest.mark.ros
def test_no_graph_running_is_a_clear_error():
    from dkt_grasping.trials.rig import RigTrialBackend

    with pytest.raises(RigUnavailableError) as err:
        RigTrialBackend(rig_spec(), RigTimeouts(graph_s=1.0))
    text = str(err.value)
    assert "missing service /grasp/detect, clouds on /camera/points" in text
    assert "dkt-stack up cobot_magic backend:=raw" in text and "dkt-stack up simulation" in text


def start_simulation_graph(folder, env: dict[str, str] | None = None, planner: dict | None = None):
    """The `simulation` graph, 320x240 at 5 Hz, showing the trial layout (objects in the PiPER's reach) with the matching hand-eye pose."""
    from dkt_grasping.trials.synthetic_layout import BASE_IN_WORLD, HOME_Q, trial_scene_config
    from dkt_perception.synthetic_scene import SyntheticScene
    from dkt_stack.config import to_dict
    from dkt_stack.graph import resolve_graph
    from dkt_stack.runner import GraphRunner
    from dkt_stack.transforms import matrix_to_quat

    scene = trial_scene_config(SessionSpec(), seed=0)
    scene.width, scene.height = 320, 240
    plain = json.loads(json.dumps(to_dict(scene), default=float))  # numpy scalars of the jittered layout -> floats
    (folder / "scene.yaml").write_text(yaml.safe_dump(plain))
    T = SyntheticScene(scene).T_world_camera.copy()
    T[:3, 3] -= np.asarray(BASE_IN_WORLD)  # base axes = world axes
    graph = resolve_graph("simulation", {"backend": "raw", "fps": 5.0})
    graph.node("camera").parameters["synthetic"].update(width=320, height=240, scene_file=str(folder / "scene.yaml"))
    graph.node("grasp").parameters["camera_pose"] = [*T[:3, 3].tolist(), *matrix_to_quat(T[:3, :3]).tolist()]
    graph.node("arm").parameters.setdefault("simulated", {})["initial_q"] = list(HOME_Q)
    graph.node("planner").parameters.update(planner or {})
    return GraphRunner(graph, env=env, log_dir=folder / "logs").start()


@pytest.mark.ros
def test_rig_reports_the_planners_refusal_of_each_trial(tmp_path, monkeypatch):
    """A graph whose planner accepts no grasp centre (its workspace starts at x = 0.9 m), in its own ROS domain."""
    from dkt_grasping.trials.rig import RigTrialBackend

    domain = str(int(os.environ["ROS_DOMAIN_ID"]) + 101)  # conftest picks 1..100; this graph must not meet the module's
    monkeypatch.setenv("ROS_DOMAIN_ID", domain)
    runner = start_simulation_graph(tmp_path, env={"ROS_DOMAIN_ID": domain}, planner={"cpu": {"workspace": {"x_min": 0.9, "x_max": 1.0}}})
    try:
        backend = RigTrialBackend(rig_spec(), RigTimeouts(graph_s=30.0, capture_s=5.0, planning_s=20.0))
        try:
            attempts = [backend.run_trial(i, 1, seed=i) for i in range(2)]
        finally:
            backend.close()
    finally:
        runner.stop()
    for i, a in enumerate(attempts):
        assert a.failure_stage == "planning" and a.failure_reason.startswith("no plan: "), (a.failure_stage, a.failure_reason)
        assert a.parameters["plan_request"] == i + 1  # each trial waited for the refusal of its own grasps
        assert a.parameters["grasps_found"] > 0 and a.trajectory is None and a.grasp is None and a.gripper_width_m is None
        assert a.suggestion(0.005) == "failure" and 0 < a.timings_ms["planning"] < 20_000 and "execution" not in a.timings_ms


@pytest.mark.ros
def test_rig_refuses_a_graph_that_does_not_match_the_session(simulation_graph):
    from dkt_grasping.trials.rig import RigTrialBackend

    with pytest.raises(RigUnavailableError, match="depth_node uses depth backend 'raw' but the session's method is 'dkt'"):
        RigTrialBackend(rig_spec(method="dkt"), RigTimeouts(graph_s=30.0))
    with pytest.raises(RigUnavailableError, match="arm node /arm drives arm 'simulated' but the session says 'piper'"):
        RigTrialBackend(rig_spec(arm="piper"), RigTimeouts(graph_s=30.0))


@pytest.fixture(scope="module")
def simulation_graph(tmp_path_factory):
    runner = start_simulation_graph(tmp_path_factory.mktemp("rig"))
    try:
        yield runner
    finally:
        runner.stop()


@pytest.mark.ros
def test_rig_trials_drive_the_node_graph_through_the_runner(simulation_graph, tmp_path):
    from dkt_grasping.gripper import GripperConfig
    from dkt_grasping.trials.database import TrialDatabase
    from dkt_grasping.trials.judge import OperatorPrompt
    from dkt_grasping.trials.rig import RigTrialBackend
    from dkt_grasping.trials.runner import TrialRunner, start_session

    spec = rig_spec()
    backend = RigTrialBackend(spec, RigTimeouts(graph_s=30.0, capture_s=5.0, planning_s=20.0, execution_s=20.0))
    said: list[str] = []
    try:
        with TrialDatabase(tmp_path / "t.sqlite") as db:
            sid = start_session(db, spec)
            judge = OperatorPrompt(ask=lambda _: "", say=said.append)  # Enter: accept the gripper's suggestion
            result = TrialRunner(db, backend=backend, judge=judge, progress=False).run(sid)
            records = db.trials(sid)
    finally:
        backend.close()
    assert result.status == "complete" and [r.trial_index for r in records] == [0, 1] and len(said) == 2
    for r in records:
        assert (r.backend, r.method, r.weights_checksum, r.decided_by, r.target) == ("rig", "raw", "n/a", "operator", "translucent")
        ran = [s for s in STAGE_ORDER if s in r.timings_ms]  # the database keeps timings as a JSON object (keys sorted)
        # "grasp": the pipeline ran through and the operator said nothing was held
        pipeline_failure = r.failure_stage not in (None, "grasp")
        failed_at = STAGE_ORDER.index(r.failure_stage) if pipeline_failure else len(STAGE_ORDER) - 1
        assert ran == STAGE_ORDER[: failed_at + 1], (ran, r.failure_stage, r.notes)  # every stage up to the failing one, none after
        assert all(v > 0 for v in r.timings_ms.values()) and r.timings_ms["total"] >= sum(r.timings_ms[s] for s in ran)
        assert {"colour", "depth", "cloud"} <= set(r.artifacts)
        depth = np.load(tmp_path / r.artifacts["depth"])["depth_m"]
        assert depth.shape == (240, 320) and 0.3 < np.nanmedian(depth) < 1.0  # the table 0.55 m below a tilted camera
        if pipeline_failure:  # reported with its reason; the operator accepted "failure"
            assert r.outcome == "failure" and r.notes.startswith("accepted the suggestion; ") and len(r.notes) > 30
            assert r.gripper_width_m is None
        if r.failure_stage in ("planning", "execution", "grasp", None):  # detection succeeded
            assert r.parameters["grasps_found"] > 0 and r.parameters["grasp_frame"] == "base_link"
        if r.failure_stage in ("execution", "grasp", None):  # planned: the grasp the planner used, in the base frame
            g, pose = r.grasp, np.asarray(r.grasp["pose_base"])
            assert g["grasp_index_from"] == "planner diagnostics" and 0 <= g["grasp_index"] < r.parameters["grasps_found"]
            assert r.parameters["plan_request"] == r.trial_index + 1  # this trial's plan, not the previous one's status
            assert 0 < g["width_m"] <= GripperConfig().max_opening and g["frame"] == "base_link"
            np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-5)
            assert 0.1 < np.linalg.norm(pose[:2, 3]) < 0.7  # within the PiPER's reach
        if r.failure_stage in ("grasp", None):  # executed: the arm ended at the trajectory's last point, the gripper at its command
            np.testing.assert_allclose(r.parameters["final_q_rad"], r.trajectory["q_end_rad"], atol=1e-5)
            assert r.gripper_width_m == pytest.approx(r.trajectory["gripper_close_m"], abs=1e-4)
            assert r.outcome == ("success" if r.gripper_width_m > spec.holding_threshold_m else "failure")
    assert any(r.failure_stage in ("planning", "execution", "grasp", None) for r in records), [r.notes for r in records]
