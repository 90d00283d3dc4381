"""trial_node: a grasp-trial session as a ROS node, with the operator's decision over services.

Runs the session named by the ``session.*`` parameters (or resumes ``resume``)
on a worker thread with the trial runner of :mod:`dkt_grasping.trials`; every
trial is committed to the SQLite database ``db`` before the next one starts.
When the operator judges (``session.judge`` operator, the default on the rig):

Publishes: ~/pending (std_msgs/String, JSON: session, trial, target, what
happened, gripper opening, suggestion) when a trial waits for a decision;
~/trials (std_msgs/String, JSON of every recorded trial); /diagnostics.
Services (std_srvs/Trigger): ~/success, ~/failure, ~/skip, ~/retry, ~/abort
answer the pending trial (they fail when none is pending).
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass

from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import Trigger

from dkt_grasping.trials.backend import TrialAttempt
from dkt_grasping.trials.database import TrialDatabase, TrialRecord
from dkt_grasping.trials.judge import ExternalJudge, create_judge
from dkt_grasping.trials.runner import TrialRunner, start_session
from dkt_grasping.trials.session import SessionSpec
from dkt_stack.config import param
from dkt_stack.ros.diagnostics import ERROR, OK, WARN, NodeDiagnostics
from dkt_stack.ros.main import run_node
from dkt_stack.ros.params import declare_and_read
from dkt_stack.ros.qos import qos_by_name

ACTIONS = ("success", "failure", "skip", "retry", "abort")


@dataclass
class TrialNodeParams:
    db: str = param("outputs/trials/trials.sqlite", help="trial database (SQLite), created when missing")
    resume: str = param("", help="session id to resume; empty = start a new session from the session.* parameters")
    session: SessionSpec = param(default_factory=SessionSpec, help="the session to run (see dkt_grasping.trials.session)")


class TrialNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__("trials", **node_kwargs)
        self.params = declare_and_read(self, TrialNodeParams)
        self.diagnostics = NodeDiagnostics(self, hardware_id=f"trials:{self.params.session.backend}")
        qos = qos_by_name("reliable")
        self._pending_pub = self.create_publisher(String, "~/pending", qos)
        self._trials_pub = self.create_publisher(String, "~/trials", qos)
        self.judge = ExternalJudge(self._announce)
        for action in ACTIONS:
            self.create_service(Trigger, f"~/{action}", lambda req, res, a=action: self._on_decision(a, res))
        self._stop = threading.Event()
        self.session_id: str | None = None
        self.status = "starting"
        self._worker = threading.Thread(target=self._run_session, daemon=True)
        self._worker.start()

    def _run_session(self) -> None:
        p = self.params
        try:
            with TrialDatabase(p.db) as db:  # opened on this thread: sqlite connections are per thread
                spec = SessionSpec.from_json_dict(db.session(p.resume).spec) if p.resume else p.session
                judge = self.judge if spec.resolved_judge == "operator" else create_judge(spec.resolved_judge)
                self.session_id = p.resume or start_session(db, spec)
                self.diagnostics.set(OK, "running", session=self.session_id, surface=spec.surface, method=spec.method)
                result = TrialRunner(db, judge=judge, progress=False, on_record=self._publish_record, stop=self._stop).run(self.session_id)
                self.status = result.status
                self.diagnostics.set(OK if result.status == "complete" else WARN, f"session {result.status}", session=self.session_id)
        except Exception as exc:  # any failure must reach the operator, not die silently on this thread
            self.status = "error"
            self.diagnostics.set(ERROR, f"trial session failed: {exc}")

    def _announce(self, attempt: TrialAttempt, suggestion: str) -> None:
        doc = {
            "session": self.session_id, "target": attempt.target, "failure_stage": attempt.failure_stage,
            "failure_reason": attempt.failure_reason, "gripper_width_m": attempt.gripper_width_m, "suggestion": suggestion,
        }  # fmt: skip
        self._pending_pub.publish(String(data=json.dumps(doc)))
        self.diagnostics.set(OK, "waiting for the operator's decision", session=self.session_id, suggestion=suggestion)

    def _publish_record(self, record: TrialRecord) -> None:
        self._trials_pub.publish(String(data=json.dumps(asdict(record), sort_keys=True)))

    def _on_decision(self, action: str, response):
        response.success = self.judge.answer(action)
        response.message = f"trial marked {action}" if response.success else "no trial is waiting for a decision"
        return response

    def close(self) -> None:
        self._stop.set()
        self.judge.cancel()
        self._worker.join(timeout=30.0)


def main(args: list[str] | None = None) -> int:
    return run_node(TrialNode, args)
