"""Who decides a trial's outcome: the operator at a terminal prompt, or the physics simulation.

Either way the decision comes with the automatic suggestion from gripper
feedback (finger opening after closing > threshold = holding something). The
operator may also skip the trial, retry it (the attempt is discarded and the
same trial runs again) or abort the session.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from dkt_grasping.trials.backend import TrialAttempt

Action = Literal["success", "failure", "skip", "retry", "abort"]


@dataclass
class Verdict:
    """A decision; ``stage`` is the report stage a failure is charged to when the judge knows it (else the runner infers it)."""

    action: Action
    decided_by: str
    note: str = ""
    stage: str | None = None


class Judge(Protocol):
    name: str

    def decide(self, attempt: TrialAttempt, suggestion: str) -> Verdict: ...


class PhysicsJudge:
    """Simulation: success exactly when the physics says the target was lifted and held; never skips or retries.

    A failure is charged to the stage that failed: the pipeline's, or the physics' (``execution`` or ``grasp``).
    """

    name = "physics"

    def decide(self, attempt: TrialAttempt, suggestion: str) -> Verdict:
        if attempt.failure_stage is not None:
            return Verdict("failure", self.name, f"{attempt.failure_stage}: {attempt.failure_reason}", attempt.failure_stage)
        if attempt.physics is None:
            raise ValueError("the physics judge needs a simulated attempt with a physics outcome")
        p = attempt.physics
        if p.held:
            return Verdict("success", self.name, p.reason)
        return Verdict("failure", self.name, p.reason, p.stage or "grasp")


_ANSWERS = {
    **{w: "success" for w in ("y", "yes", "success")},
    **{w: "failure" for w in ("n", "no", "failure")},
    **{w: "skip" for w in ("k", "skip")},
    **{w: "retry" for w in ("r", "retry")},
    **{w: "abort" for w in ("a", "abort")},
}


class OperatorPrompt:
    """Terminal prompt: shows what happened and the suggestion; Enter accepts the suggestion.

    ``ask`` and ``say`` default to :func:`input` and :func:`print` (tests pass their own).
    """

    name = "operator"

    def __init__(self, ask: Callable[[str], str] = input, say: Callable[[str], None] = print):
        self.ask, self.say = ask, say

    def decide(self, attempt: TrialAttempt, suggestion: str) -> Verdict:
        width = "n/a" if attempt.gripper_width_m is None else f"{attempt.gripper_width_m * 1000:.1f} mm"
        status = f"failed at {attempt.failure_stage}: {attempt.failure_reason}" if attempt.failure_stage else "executed and lifted"
        self.say(f"target {attempt.target}: {status}; gripper opening after closing {width}; suggestion: {suggestion}")
        default = suggestion if suggestion in ("success", "failure") else ""
        hint = f" [Enter = {default}]" if default else ""
        while True:
            answer = self.ask(f"outcome? y=success n=failure k=skip r=retry a=abort{hint}: ").strip().lower()
            if not answer and default:
                return Verdict(default, self.name, "accepted the suggestion")  # type: ignore[arg-type]
            key, _, note = answer.partition(" ")
            if key in _ANSWERS:
                return Verdict(_ANSWERS[key], self.name, note.strip())  # type: ignore[arg-type]
            self.say(f"not understood: {answer!r} (answer y, n, k, r or a, optionally followed by a note)")


class DecisionCancelled(Exception):
    """A decision that will never come (the node is shutting down): the session stops as interrupted."""


class ExternalJudge:
    """Waits for a decision made on another thread (trial_node's services), after announcing the attempt.

    ``announce(attempt, suggestion)`` is called first (e.g. publishes it); :meth:`answer` from any thread
    delivers the operator's action; :meth:`cancel` makes the waiting :meth:`decide` raise
    :class:`DecisionCancelled`.
    """

    name = "operator"

    def __init__(self, announce: Callable[[TrialAttempt, str], None], timeout_s: float | None = None):
        self.announce, self.timeout_s = announce, timeout_s
        self._answers: queue.Queue[Verdict | None] = queue.Queue()
        self._lock = threading.Lock()
        self._cancelled = False
        self.pending: TrialAttempt | None = None

    def decide(self, attempt: TrialAttempt, suggestion: str) -> Verdict:
        with self._lock:
            while not self._answers.empty():  # an answer given while nothing was pending is stale
                self._answers.get_nowait()
            if self._cancelled:
                raise DecisionCancelled("the judge was cancelled")
            self.pending = attempt
        self.announce(attempt, suggestion)
        try:
            verdict = self._answers.get(timeout=self.timeout_s)
        except queue.Empty as exc:
            raise DecisionCancelled(f"no decision within {self.timeout_s} s") from exc
        finally:
            with self._lock:
                self.pending = None
        if verdict is None:
            raise DecisionCancelled("cancelled while waiting for the operator")
        return verdict

    def answer(self, action: str, note: str = "") -> bool:
        """Deliver a decision; False (and nothing delivered) when no attempt is waiting for one."""
        if action not in ("success", "failure", "skip", "retry", "abort"):
            raise ValueError(f"action must be success, failure, skip, retry or abort, got {action!r}")
        with self._lock:
            if self.pending is None:
                return False
            self._answers.put(Verdict(action, self.name, note))  # type: ignore[arg-type]
            return True

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            self._answers.put(None)


def create_judge(name: str, **kwargs) -> Judge:
    if name == "physics":
        return PhysicsJudge()
    if name == "operator":
        return OperatorPrompt(**kwargs)
    raise ValueError(f"unknown judge {name!r} (known: operator, physics)")
