"""Match messages from several topics by header stamp (message_filters is not on PyPI).

Pure logic, no rclpy: nodes feed ``(key, stamp_ns, item)`` from their callbacks
and get back complete sets. Policy: approximate time, like
message_filters' ApproximateTimeSynchronizer with a ``slop``: a set is emitted
when every key has an item within ``slop_ns`` of the newest arrival's stamp;
items older than an emitted set are dropped (they can never complete).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import Any


class StampSynchronizer:
    """Thread-safe approximate-time matching of ``keys``.

    Args:
        keys: topic keys that must all be present in a set.
        slop_ns: largest stamp difference within a set (0 = exact match).
        queue_size: items kept per key while waiting for partners.
    """

    def __init__(self, keys: Sequence[str], slop_ns: int = 0, queue_size: int = 10):
        if not keys:
            raise ValueError("StampSynchronizer needs at least one key")
        if slop_ns < 0 or queue_size < 1:
            raise ValueError(f"slop_ns must be >= 0 and queue_size >= 1, got {slop_ns}, {queue_size}")
        self.keys = tuple(keys)
        self.slop_ns = int(slop_ns)
        self._queues: dict[str, deque[tuple[int, Any]]] = {k: deque(maxlen=queue_size) for k in self.keys}
        self._lock = threading.Lock()
        self.dropped = 0

    def add(self, key: str, stamp_ns: int, item: Any) -> tuple[int, dict[str, Any]] | None:
        """Add one item; returns ``(stamp_ns of the set's first key, {key: item})`` when a set completes."""
        if key not in self._queues:
            raise KeyError(f"unknown key '{key}' (keys: {', '.join(self.keys)})")
        with self._lock:
            q = self._queues[key]
            if len(q) == q.maxlen:
                self.dropped += 1
            q.append((int(stamp_ns), item))
            chosen: dict[str, tuple[int, Any]] = {}
            for k in self.keys:
                best = None
                for entry in self._queues[k]:
                    d = abs(entry[0] - stamp_ns)
                    if d <= self.slop_ns and (best is None or d < abs(best[0] - stamp_ns)):
                        best = entry
                if best is None:
                    return None
                chosen[k] = best
            stamps = [s for s, _ in chosen.values()]
            if max(stamps) - min(stamps) > self.slop_ns:
                return None
            for k, (s, _) in chosen.items():
                q = self._queues[k]
                while q and q[0][0] <= s:
                    q.popleft()
            return chosen[self.keys[0]][0], {k: it for k, (_, it) in chosen.items()}

    def clear(self) -> None:
        with self._lock:
            for q in self._queues.values():
                q.clear()
