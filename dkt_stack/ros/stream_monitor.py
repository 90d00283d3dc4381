"""Health of one topic stream: rate, age, losses and time jumps (pure Python, no rclpy).

A node's diagnostics (:mod:`dkt_stack.ros.diagnostics`) keep one
:class:`StreamMonitor` per input and per output. Losses are counted where they
happen:

* **DDS queue and transport**: each received message carries the DDS
  publication sequence number of its writer (rclpy's ``MessageInfo``); a gap
  between two messages of one writer is that many messages published but never
  handed to the node: dropped by a full subscription queue (the executor was
  late) or lost in transport (a large message without the large-data DDS
  profile). Where the RMW gives no sequence number, gaps in the header stamps
  (larger than 1.5 nominal periods, the period being the median recent stamp
  step) estimate the same.
* Drops inside the node (a worker queue, unmatched stamps) are counted by the
  node itself and reported beside these figures.

All times are ``time.monotonic()`` seconds (ages must keep growing when the
data stops, whatever the ROS clock does); stamps are header nanoseconds.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from dkt_stack.config import param

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels


@dataclass
class DiagnosticsConfig:
    """When a node's diagnostics call an input stale, and over what window rates and losses are computed."""

    stale_warn_s: float = param(1.0, help="WARN when an input stream has been silent this long (s)")
    stale_error_s: float = param(3.0, help="ERROR when an input stream has been silent this long (s)")
    period_s: float = param(1.0, help="diagnostics publishing period (s, steady clock: keeps going when /clock stops)")
    window_s: float = param(5.0, help="window of the reported rates and loss fractions (s)")
    loss_warn_fraction: float = param(0.2, help="WARN when an input loses more than this fraction of its messages over the window")
    jump_hold_s: float = param(5.0, help="a backwards time jump keeps the status at WARN this long (s)")

    def __post_init__(self):
        if not 0 < self.stale_warn_s <= self.stale_error_s:
            raise ValueError(f"need 0 < stale_warn_s <= stale_error_s, got {self.stale_warn_s}, {self.stale_error_s}")
        if self.period_s <= 0 or self.window_s <= 0 or self.jump_hold_s < 0:
            raise ValueError("period_s and window_s must be > 0, jump_hold_s >= 0")
        if not 0 < self.loss_warn_fraction <= 1:
            raise ValueError(f"loss_warn_fraction must be in (0, 1], got {self.loss_warn_fraction}")


@dataclass
class StreamHealth:
    """A snapshot of one stream (see :meth:`StreamMonitor.health`)."""

    topic: str
    direction: str  #: "in" or "out"
    count: int  #: messages received (in) or published (out) since start
    rate_hz: float  #: over the window
    age_s: float | None  #: since the last message; None before the first one
    silent_s: float  #: since the last message, or since monitoring began when there was none
    lost: int  #: since start (inputs: DDS queue/transport losses)
    lost_window: int  #: within the window
    count_window: int  #: messages within the window
    level: int  #: OK / WARN / ERROR from staleness, losses and time jumps
    message: str  #: why the level is not OK ("" when OK)

    def figures(self) -> dict[str, float | int]:
        """Key/value figures for a DiagnosticStatus, keys ``"in <topic> <figure>"``."""
        prefix = f"{self.direction} {self.topic}"
        out: dict[str, float | int] = {f"{prefix} rate_hz": round(self.rate_hz, 2), f"{prefix} age_s": round(self.silent_s, 3)}
        out[f"{prefix} {'received' if self.direction == 'in' else 'published'}"] = self.count
        if self.direction == "in":
            out[f"{prefix} lost"] = self.lost
        return out


class StreamMonitor:
    """Rate, age, losses and backwards time jumps of one topic (thread-safe).

    Args:
        topic: the topic's name as reported.
        direction: ``"in"`` (a subscription) or ``"out"`` (a publisher).
        config: thresholds and window.
        stale: report silence as WARN/ERROR (sensor streams; not for commands that come when they come).
        jump_note: appended to the time-jump warning (what the node did about it, e.g. "scale filter reset").
        now: monotonic seconds at creation (the silence of a stream that never delivered counts from here).
    """

    def __init__(self, topic: str, direction: str, config: DiagnosticsConfig, *, stale: bool = True, jump_note: str = "", now: float = 0.0):
        if direction not in ("in", "out"):
            raise ValueError(f"direction must be 'in' or 'out', got {direction!r}")
        self.topic, self.direction, self.config = topic, direction, config
        self.stale, self.jump_note = stale, jump_note
        self._lock = threading.Lock()
        self._created = now
        self._times: deque[float] = deque()
        self._losses: deque[tuple[float, int]] = deque()
        self._count = 0
        self._lost = 0
        self._last: float | None = None
        self._last_seq: dict[bytes, int] = {}
        self._last_stamp: dict[bytes, int] = {}  # per writer: two publishers on one topic have independent clocks
        self._steps: deque[int] = deque(maxlen=30)
        self._jump: tuple[float, str] | None = None
        self.jumps = 0

    def record(self, now: float, stamp_ns: int | None = None, sequence: int | None = None, writer: bytes = b"") -> str | None:
        """One message at ``now``; returns a warning text when its stamp jumped backwards.

        Args:
            stamp_ns: header stamp (losses estimated from stamp gaps when ``sequence`` is None; jump detection).
            sequence: DDS publication sequence number of ``writer``'s message, when the RMW gives it.
            writer: the publishing writer's id (sequence numbers are per writer).
        """
        with self._lock:
            self._count += 1
            self._last = now
            self._times.append(now)
            lost = 0
            if sequence is not None:
                previous = self._last_seq.get(writer)
                if previous is not None and sequence > previous + 1:
                    lost = sequence - previous - 1
                if previous is None or sequence > previous:
                    self._last_seq[writer] = sequence
            jumped = None
            if stamp_ns is not None:
                stamp_ns = int(stamp_ns)
                last = self._last_stamp.get(writer)
                if last is not None and stamp_ns < last and self.direction == "in":  # an output follows its inputs: not its news
                    jumped = f"time jumped back {(last - stamp_ns) / 1e9:.3g} s on {self.topic} (bag loop or clock reset)"
                    if self.jump_note:
                        jumped += f": {self.jump_note}"
                    self._jump = (now, jumped)
                    self.jumps += 1
                    self._steps.clear()
                elif last is not None and stamp_ns > last:
                    step = stamp_ns - last
                    if sequence is None and len(self._steps) >= 5:
                        period = sorted(self._steps)[len(self._steps) // 2]  # the median step: robust to jitter
                        if step > 1.5 * period:
                            lost = round(step / period) - 1
                    self._steps.append(step)
                self._last_stamp[writer] = stamp_ns
            if lost:
                self._lost += lost
                self._losses.append((now, lost))
            self._trim(now)
            return jumped

    def _trim(self, now: float) -> None:
        horizon = now - self.config.window_s
        while self._times and self._times[0] < horizon:
            self._times.popleft()
        while self._losses and self._losses[0][0] < horizon:
            self._losses.popleft()

    def health(self, now: float) -> StreamHealth:
        """The stream's figures and level at ``now``."""
        c = self.config
        with self._lock:
            self._trim(now)
            n = len(self._times)
            span = min(c.window_s, now - self._created)
            rate = n / span if span > 0 else 0.0  # messages per second over the window (or since monitoring began)
            age = None if self._last is None else now - self._last
            silent = now - (self._last if self._last is not None else self._created)
            lost_window = sum(k for _, k in self._losses)
            level, message = OK, ""
            if self.stale and silent > c.stale_error_s:
                level, message = ERROR, self._silence_text(silent)
            elif self.stale and silent > c.stale_warn_s:
                level, message = WARN, self._silence_text(silent)
            elif self.direction == "in" and lost_window and lost_window > c.loss_warn_fraction * (lost_window + n):
                level = WARN
                message = (
                    f"lost {lost_window} of {lost_window + n} messages on {self.topic} in the last {c.window_s:g} s "
                    "(subscription queue overflowed or transport lost them: is the publisher using the large-data DDS profile?)"
                )
            if level < WARN and self._jump is not None and now - self._jump[0] <= c.jump_hold_s:
                level, message = WARN, self._jump[1]
            return StreamHealth(self.topic, self.direction, self._count, rate, age, silent, self._lost, lost_window, n, level, message)

    def _silence_text(self, silent: float) -> str:
        what = "received" if self.direction == "in" else "published"
        if self._last is None:
            return f"nothing {what} on {self.topic} yet ({silent:.1f} s)"
        return f"nothing {what} on {self.topic} for {silent:.1f} s"
