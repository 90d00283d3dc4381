"""Plans executed in physics: a timed arm + gripper sequence tracked by the position actuators, watched as it runs.

A sequence is what ``planner_node`` publishes and
:func:`dkt_grasping.planning.base.plan_to_arrays` builds: times (T,) s,
positions (T, 7) with joint1..joint6 in rad and the gripper opening in m as the
last column, velocities (T, 7). Joint setpoints are interpolated linearly (the
planner samples at 10 ms) with the velocity as feed-forward; a change of the
gripper column is a gripper command, taken from the start of the interval that
leads to it (the dwell the planner leaves for the gripper), so the fingers
close during the dwell and the lift starts after it.

:class:`SequenceRunner` is incremental (``update`` before each physics step),
so one physics loop can drive both arms and stop one at any time. While it
runs it records what a judge needs: contacts of the arm (other than the
finger pads) with the table or objects, the fingers pressing on the table,
the target pushed or tipped before the gripper closed, the arm lagging far
behind its setpoint (blocked), and the grip (which objects each pad touches)
when the gripper has closed, at the end of the lift and after the hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dkt_sim.world import ROBOT_LABEL, TABLE_LABEL, CommandError, SimWorld, check_setpoint

#: Before the gripper closes the target may move this far (m) or tip this much (deg) before it counts as pushed.
PUSH_TOLERANCE_M = 0.02
TIP_TOLERANCE_DEG = 20.0
#: A finger pressing on the table harder than this (N) is a collision, not a brush.
TABLE_FORCE_N = 5.0
#: Tracking error (rad) beyond which the arm is blocked and the sequence stops.
BLOCKED_RAD = 0.2


@dataclass
class TimedSequence:
    """A validated arm + gripper sequence (see the module docstring); :class:`CommandError` for a bad one."""

    times: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray

    def __post_init__(self):
        self.times = np.asarray(self.times, dtype=np.float64).reshape(-1)
        self.positions = np.asarray(self.positions, dtype=np.float64)
        v = np.asarray(self.velocities, dtype=np.float64) if self.velocities is not None and len(self.velocities) else None
        n = len(self.times)
        if n < 1 or self.positions.shape != (n, 7):
            raise CommandError(f"a sequence needs times (T,) and positions (T, 7) (6 joints + gripper), got {self.times.shape} and {self.positions.shape}")
        if not np.all(np.isfinite(self.times)) or not np.all(np.isfinite(self.positions)):
            bad = np.argwhere(~np.isfinite(self.positions))
            where = f" (first at point {bad[0][0]}, column {bad[0][1]})" if len(bad) else ""
            raise CommandError(f"the sequence has non-finite (NaN or inf) times or setpoints{where}")
        if n > 1 and np.any(np.diff(self.times) <= 0):
            raise CommandError("sequence times must be strictly increasing")
        if v is None or v.shape != (n, 7) or not np.all(np.isfinite(v)):
            v = np.zeros((n, 7))
            if n > 1:
                v[:, :6] = np.gradient(self.positions[:, :6], self.times, axis=0)
        self.velocities = v
        # Each point's joints must be within limits; CommandError names the joint and the point.
        for i, q in enumerate(self.positions):
            try:
                check_setpoint(q[:6], q[6])
            except CommandError as exc:
                raise CommandError(f"point {i} (t = {self.times[i]:.3f} s): {exc}") from None

    @property
    def duration(self) -> float:
        return float(self.times[-1] - self.times[0])

    def close_interval(self) -> tuple[float, float] | None:
        """(start, end) s of the first gripper closing (the dwell before the point where the opening drops), or None."""
        drop = np.flatnonzero(np.diff(self.positions[:, 6]) < -1e-9)
        if not drop.size:
            return None
        i = int(drop[0])
        return float(self.times[i] - self.times[0]), float(self.times[i + 1] - self.times[0])

    def setpoint(self, t: float) -> tuple[np.ndarray, np.ndarray, float]:
        """(q rad, qd rad/s, gripper opening m) at ``t`` s from the start."""
        times = self.times - self.times[0]
        if t <= 0.0:
            return self.positions[0, :6].copy(), np.zeros(6), float(self.positions[0, 6])
        if t >= times[-1]:
            return self.positions[-1, :6].copy(), np.zeros(6), float(self.positions[-1, 6])
        j = int(np.searchsorted(times, t, side="right"))  # times[j-1] <= t < times[j]
        s = (t - times[j - 1]) / (times[j] - times[j - 1])
        q = (1 - s) * self.positions[j - 1, :6] + s * self.positions[j, :6]
        qd = (1 - s) * self.velocities[j - 1, :6] + s * self.velocities[j, :6]
        return q, qd, float(self.positions[j, 6])  # the gripper heads for the next point's opening


def sequence_from_plan(plan, gripper_dwell: float = 0.5) -> TimedSequence:
    """A :class:`~dkt_grasping.planning.base.GraspPlan` as the timed sequence planner_node would publish."""
    from dkt_grasping.planning.base import plan_to_arrays

    times, pos, vel, _ = plan_to_arrays(plan, gripper_dwell)
    return TimedSequence(times, pos, vel)


@dataclass
class ExecutionEvent:
    """Something that went wrong while the sequence ran: when (s from its start), in which phase, what."""

    time_s: float
    phase: str  #: approach (before the gripper closes), close, lift, hold
    kind: str  #: collision, table, pushed, blocked
    text: str


@dataclass
class GripState:
    """Which scene objects (labels) each finger pad touches, the gripper opening (m), the target's height (world z, m)."""

    time_s: float
    opening_m: float
    left: set[int]
    right: set[int]
    target_z: float

    def holds(self, label: int) -> bool:
        return label in self.left and label in self.right


@dataclass
class ExecutionReport:
    completed: bool = False
    stopped: str = ""  #: why the sequence stopped early ("" when it ran to its end)
    events: list[ExecutionEvent] = field(default_factory=list)
    grips: dict[str, GripState] = field(default_factory=dict)  #: closed, lifted, held
    max_tracking_error_rad: float = 0.0
    sim_time_s: float = 0.0

    def approach_events(self) -> list[ExecutionEvent]:
        return [e for e in self.events if e.phase == "approach" or e.kind == "blocked"]


class SequenceRunner:
    """Drives one arm through a :class:`TimedSequence`, then holds the last setpoint for ``hold_s`` (see the module docstring).

    ``target`` is the 0-based scene index of the object to grasp (None: no push check).
    ``update()`` before every ``world.step(1)``; ``done`` when the sequence and the hold are over.
    """

    def __init__(self, world: SimWorld, arm: str, sequence: TimedSequence, *, target: int | None = None, hold_s: float = 0.0, check_every: int = 5):
        self.world, self.arm, self.seq, self.target = world, arm, sequence, target
        self.hold_s, self.check_every = float(hold_s), max(1, int(check_every))
        self.report = ExecutionReport()
        self.t0 = world.time
        self._steps = 0
        self._seen: set[tuple[str, str, str]] = set()
        self._close = sequence.close_interval()
        self._target_start = world.object_pose(target) if target is not None else None
        self.done = False

    @property
    def elapsed(self) -> float:
        return self.world.time - self.t0

    def phase(self, t: float) -> str:
        if t > self.seq.duration:
            return "hold"
        if self._close is None or t < self._close[0]:
            return "approach"
        return "close" if t < self._close[1] else "lift"

    def stop(self, why: str) -> None:
        """Stop here: hold the current joint positions, keep the gripper command."""
        if self.done:
            return
        self.report.stopped = why
        self.world.command(self.arm, self.world.arm_q(self.arm), opening=self.world.gripper_command(self.arm))
        self._finish()

    def _finish(self) -> None:
        self.done = True
        self.report.sim_time_s = self.elapsed
        self.report.completed = not self.report.stopped

    def update(self) -> None:
        if self.done:
            return
        t = self.elapsed
        if t > self.seq.duration + self.hold_s:
            self._record_grip("held")
            self._finish()
            return
        q, qd, opening = self.seq.setpoint(t)
        self.world.command(self.arm, q, qd, opening)
        if self._steps % self.check_every == 0:
            self._check(t, q)
        self._steps += 1
        if self._close is not None and "closed" not in self.report.grips and t >= self._close[1]:
            self._record_grip("closed")
        if "lifted" not in self.report.grips and t >= self.seq.duration:
            self._record_grip("lifted")

    def _event(self, t: float, kind: str, key: str, text: str) -> None:
        phase = self.phase(t)
        if (phase, kind, key) in self._seen:
            return
        self._seen.add((phase, kind, key))
        self.report.events.append(ExecutionEvent(round(t, 4), phase, kind, text))

    def _check(self, t: float, q_set: np.ndarray) -> None:
        w, h = self.world, self.world.arms[self.arm]
        err = float(np.abs(w.arm_q(self.arm) - q_set).max())
        self.report.max_tracking_error_rad = max(self.report.max_tracking_error_rad, err)
        if err > BLOCKED_RAD:
            self._event(t, "blocked", "arm", f"the arm is {np.rad2deg(err):.0f} deg behind its setpoint (blocked)")
            self.stop("blocked")
            return
        for g1, g2, force in w.contacts():
            for mine, other in ((g1, g2), (g2, g1)):
                if mine not in h.geoms or other in h.geoms or w.geom_label[other] == ROBOT_LABEL:
                    continue
                what = w.geom_name(other)
                if mine in h.finger_geoms:
                    if w.geom_label[other] == TABLE_LABEL and force > TABLE_FORCE_N:
                        self._event(t, "table", what, f"a finger pressed on the {what} with {force:.0f} N")
                elif w.geom_label[other] >= TABLE_LABEL or w.model.geom(other).name in ("platform", "mast"):
                    self._event(t, "collision", f"{w.model.geom(mine).name}/{what}", f"{w.model.geom(mine).name} hit {what}")
        if self.target is not None and self.phase(t) == "approach":
            T0, T = self._target_start, w.object_pose(self.target)
            moved = float(np.linalg.norm(T[:2, 3] - T0[:2, 3]))
            tilt = float(np.degrees(np.arccos(np.clip(T[2, 2], -1.0, 1.0))))
            if moved > PUSH_TOLERANCE_M or tilt > TIP_TOLERANCE_DEG:
                name = w.scene.objects[self.target].name
                self._event(t, "pushed", name, f"{name} was pushed {moved * 1000:.0f} mm and tipped {tilt:.0f} deg before the gripper closed")

    def _record_grip(self, when: str) -> None:
        w, h = self.world, self.world.arms[self.arm]
        left_geom, right_geom = sorted(h.finger_geoms, key=lambda g: w.model.geom(g).name)  # *_finger_left, *_finger_right
        touch = {left_geom: set(), right_geom: set()}
        for g1, g2, _ in w.contacts():
            for mine, other in ((g1, g2), (g2, g1)):
                if mine in touch and w.geom_label[other] >= 1:
                    touch[mine].add(int(w.geom_label[other]))
        z = float(w.object_pose(self.target)[2, 3]) if self.target is not None else float("nan")
        self.report.grips[when] = GripState(round(self.elapsed, 4), w.gripper_opening(self.arm), touch[left_geom], touch[right_geom], z)


def run_to_end(world: SimWorld, runner: SequenceRunner, on_grip=None, max_s: float = 120.0) -> ExecutionReport:
    """Step the world until ``runner`` is done (every other arm holds its setpoint); ``on_grip(name)`` after each grip record."""
    seen = set()
    deadline = world.time + max_s
    while not runner.done:
        runner.update()
        world.step(1)
        if on_grip is not None:
            for name in runner.report.grips:
                if name not in seen:
                    seen.add(name)
                    on_grip(name)
        if world.time > deadline:
            runner.stop(f"did not finish within {max_s:g} s of simulated time")
    return runner.report
