"""The physical judge: did the arm lift the target and hold it, and if not, where did it go wrong?

Success: after the lift and a hold (2 s by default), the target stands at
least ``lift_success_m`` (5 cm) above where it started and both finger pads
touch it. Otherwise the trial failed at

* ``execution`` when something went wrong before the gripper closed: an arm
  link, the gripper body or palm hit the table or an object, a finger pressed
  on the table, the target was pushed or tipped, or the arm was blocked;
* ``grasp`` otherwise: the gripper closed on nothing (or on another object, or
  on an edge of the target only), or the target slipped out during the lift or
  dropped during the hold.

The earlier stages (perception, detection, planning) are decided before
anything moves, by the trial pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dkt_sim.execution import ExecutionReport

#: The target must rise at least this much (m) and still be held after the hold.
LIFT_SUCCESS_M = 0.05
HOLD_S = 2.0
#: Fingers closed tighter than this (m) while touching the target caught only an edge or a corner of it.
EDGE_OPENING_M = 0.005


@dataclass
class PhysicalOutcome:
    """The judge's verdict: held or not, the stage a failure is charged to, a sentence, and figures."""

    held: bool
    stage: str | None  #: None when held; execution or grasp
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


def judge_grasp(report: ExecutionReport, target_label: int, names: list[str], start_z: float, lift_success_m: float = LIFT_SUCCESS_M) -> PhysicalOutcome:
    """Verdict from an execution report (see the module docstring).

    target_label: the target's scene index + 1; names: the scene's object names (label k is ``names[k - 1]``);
    start_z: the target's world z before the trial (m).
    """
    target_name = names[target_label - 1]
    grips = report.grips
    held_state, lifted, closed = grips.get("held"), grips.get("lifted"), grips.get("closed")
    rise = (held_state.target_z - start_z) if held_state is not None else float("nan")
    details: dict[str, Any] = {
        "lift_m": round(rise, 4) if rise == rise else None,
        "events": [f"{e.phase} {e.time_s:.2f} s: {e.text}" for e in report.events],
        "max_tracking_error_rad": round(report.max_tracking_error_rad, 5),
    }
    for name, g in grips.items():
        details[f"opening_{name}_m"] = round(g.opening_m, 5)
    if held_state is not None and held_state.holds(target_label) and rise >= lift_success_m:
        return PhysicalOutcome(True, None, f"held: {target_name} lifted {rise * 100:.1f} cm and held for the whole hold", details)
    early = report.approach_events()
    if early:
        return PhysicalOutcome(False, "execution", f"before the grasp: {early[0].text}", details)
    if report.stopped:
        return PhysicalOutcome(False, "execution", f"execution stopped: {report.stopped}", details)
    if closed is None:
        return PhysicalOutcome(False, "grasp", "the gripper never closed", details)
    if not (target_label in closed.left or target_label in closed.right):
        others = sorted(names[k - 1] for k in closed.left | closed.right)
        what = f"closed on {', '.join(others)}" if others else f"closed on nothing ({closed.opening_m * 1000:.0f} mm)"
        return PhysicalOutcome(False, "grasp", f"{what}: {target_name} was not between the fingers", details)
    if closed.opening_m < EDGE_OPENING_M:
        return PhysicalOutcome(False, "grasp", f"the fingers closed to {closed.opening_m * 1000:.0f} mm on an edge of {target_name}: nothing firm between them", details)
    if lifted is not None and not lifted.holds(target_label):
        return PhysicalOutcome(False, "grasp", f"{target_name} slipped out of the fingers during the lift", details)
    if held_state is not None and not held_state.holds(target_label):
        return PhysicalOutcome(False, "grasp", f"{target_name} dropped during the hold", details)
    return PhysicalOutcome(False, "grasp", f"{target_name} rose only {rise * 100:.1f} cm (needs {lift_success_m * 100:.0f} cm)", details)
