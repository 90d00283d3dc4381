"""trial_node on real rclpy: a simulated trial waits for the operator, who answers through a service."""

from __future__ import annotations

import json
import threading

import pytest

from dkt_grasping.trials.backend import TrialAttempt
from dkt_grasping.trials.judge import DecisionCancelled, ExternalJudge


def test_external_judge_waits_for_an_answer_from_another_thread():
    announced = []
    judge = ExternalJudge(lambda attempt, suggestion: announced.append((attempt.target, suggestion)))
    assert judge.answer("success") is False  # nothing pending: not delivered
    attempt = TrialAttempt(target="glass", seed=1, gripper_width_m=0.06)
    timer = threading.Timer(0.1, lambda: judge.answer("retry", "moved it back"))
    timer.start()
    verdict = judge.decide(attempt, "success")
    assert (verdict.action, verdict.decided_by, verdict.note) == ("retry", "operator", "moved it back")
    assert announced == [("glass", "success")] and judge.pending is None
    with pytest.raises(ValueError, match="action must be"):
        judge.answer("maybe")
    judge.cancel()
    with pytest.raises(DecisionCancelled):
        judge.decide(attempt, "success")


@pytest.mark.ros
def test_trial_node_operator_decides_over_a_service(ros, tmp_path):
    from rclpy.parameter import Parameter
    from std_msgs.msg import String
    from std_srvs.srv import Trigger

    from dkt_grasping.nodes.trial_node import TrialNode
    from dkt_grasping.trials.database import TrialDatabase

    db = tmp_path / "t.sqlite"
    overrides = [
        Parameter("db", value=str(db)),
        Parameter("session.surface", value="diffusive"),
        Parameter("session.method", value="ground_truth"),
        Parameter("session.n_trials", value=1),
        Parameter("session.judge", value="operator"),
        Parameter("session.save_snapshots", value=False),
        Parameter("session.simulation.width", value=320),
        Parameter("session.simulation.height", value=240),
    ]
    pending = ros.collect(String, "/trials/pending")
    recorded = ros.collect(String, "/trials/trials")
    node = ros.add_node(TrialNode(context=ros.context, parameter_overrides=overrides))
    doc = json.loads(pending.wait(1, timeout=60)[0].data)
    from dkt_sim.objects import LIBRARY

    diffusive = {k.name for k in LIBRARY if k.surface == "diffusive" and k.graspable}
    assert doc["session"] == node.session_id and doc["target"] in diffusive and doc["suggestion"] in ("success", "failure")
    client = ros.probe.create_client(Trigger, "/trials/failure")
    reply = ros.call(client, Trigger.Request())
    assert reply.success and reply.message == "trial marked failure"
    rec = json.loads(recorded.wait(1, timeout=30)[0].data)
    assert (rec["outcome"], rec["decided_by"], rec["trial_index"]) == ("failure", "operator", 0)
    assert ros.call(client, Trigger.Request()).success is False  # nothing pending any more
    node._worker.join(timeout=30)
    assert node.status == "complete"
    with TrialDatabase(db) as check:
        assert [r.outcome for r in check.trials(node.session_id)] == ["failure"]
