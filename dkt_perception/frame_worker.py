"""Run per-frame work on its own thread behind a bounded, drop-oldest queue.

A node must never block its executor on a 30-300 ms computation (the depth
model, the metric fit and cloud): it submits frames here and returns. When
frames arrive faster than the work runs, the oldest waiting frame is dropped
(fresh depth beats complete depth on a robot) and counted. Pure Python: no rclpy.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class WorkerStats:
    submitted: int = 0
    dropped: int = 0
    processed: int = 0
    results: int = 0
    errors: int = 0
    last_error: str = ""
    busy_ms: deque = field(default_factory=lambda: deque(maxlen=100))


class FrameWorker:
    """Feeds ``process(frame) -> [results]`` from a queue on a daemon thread.

    Args:
        process: the work; returns the results that became ready (a streaming
            depth backend returns 0..n per frame).
        on_result: called on the worker thread with each result.
        on_error: called on the worker thread with the exception of a failed frame,
            after ``reset()`` (a new sequence starts); the worker keeps going.
        reset: called after a failure (e.g. ``backend.reset``), or None.
        queue_size: frames waiting at most; older ones are dropped first.
    """

    def __init__(
        self,
        process: Callable[[Any], list[Any]],
        on_result: Callable[[Any], None],
        on_error: Callable[[Exception], None],
        reset: Callable[[], None] | None = None,
        queue_size: int = 2,
    ):
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self._process, self._reset = process, reset
        self._on_result, self._on_error = on_result, on_error
        self._queue: deque[Any] = deque()
        self._queue_size = queue_size
        self._cond = threading.Condition()
        self._stop = False
        self.stats = WorkerStats()
        self._thread = threading.Thread(target=self._run, name="frame-worker", daemon=True)
        self._thread.start()

    def submit(self, frame: Any) -> None:
        """Queue a frame (never blocks); drops the oldest waiting frame when full."""
        with self._cond:
            self.stats.submitted += 1
            while len(self._queue) >= self._queue_size:
                self._queue.popleft()
                self.stats.dropped += 1
            self._queue.append(frame)
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                frame = self._queue.popleft()
            t0 = time.perf_counter()
            try:
                results = self._process(frame)
            except Exception as exc:  # a bad frame must not kill the node: report, reset, go on
                self.stats.errors += 1
                self.stats.last_error = str(exc)
                try:
                    if self._reset is not None:
                        self._reset()
                finally:
                    self._on_error(exc)
                continue
            self.stats.processed += 1
            self.stats.busy_ms.append((time.perf_counter() - t0) * 1000.0)
            for result in results:
                self.stats.results += 1
                self._on_result(result)

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout)
