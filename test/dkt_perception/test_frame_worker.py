"""The nodes' frame worker: bounded drop-oldest queue, errors reported and recovered."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from dkt_perception.depth import DepthConfig, DepthFrame, DepthInputError, create_backend
from dkt_perception.frame_worker import FrameWorker


class Sink:
    def __init__(self):
        self.results, self.errors = [], []
        self.event = threading.Event()

    def result(self, r):
        self.results.append(r)
        self.event.set()

    def error(self, e):
        self.errors.append(e)
        self.event.set()

    def wait_for(self, n_results, timeout=30.0):
        deadline = time.monotonic() + timeout
        while len(self.results) < n_results:
            assert time.monotonic() < deadline, f"only {len(self.results)} results"
            self.event.wait(0.05)
            self.event.clear()


def frame(i, h=24, w=32, depth=1.25):
    return DepthFrame(np.full((h, w, 3), i % 255, np.uint8), 1000 + i, np.full((h, w), depth, np.float32))


def test_results_in_order_and_errors_do_not_stop_the_worker():
    sink = Sink()
    backend = create_backend("raw", DepthConfig(backend="raw"))
    worker = FrameWorker(backend.stream, sink.result, sink.error, backend.reset, queue_size=100)
    try:
        worker.submit(frame(0))
        sink.wait_for(1)
        bad = DepthFrame(np.zeros((24, 32, 3), np.uint8), 5, np.ones((10, 10), np.float32))  # raw depth of the wrong size
        worker.submit(bad)
        for i in range(1, 4):
            worker.submit(frame(i))
        sink.wait_for(4)
    finally:
        worker.close()
    assert [r.stamp_ns for r in sink.results] == [1000, 1001, 1002, 1003]
    np.testing.assert_array_equal(sink.results[0].disparity, np.full((24, 32), np.float32(1 / 1.25)))
    assert len(sink.errors) == 1 and isinstance(sink.errors[0], DepthInputError)
    assert worker.stats.errors == 1 and worker.stats.dropped == 0 and "expected raw depth of shape (24, 32)" in worker.stats.last_error


def test_a_burst_drops_the_oldest_frames_and_submit_never_blocks():
    # the real DKT engine (tiny random model) is slow enough on a CPU to fall behind a burst
    backend = create_backend("dkt", DepthConfig(backend="dkt", model="tiny", random_weights=True, height=32, width=32, steps=1))
    sink = Sink()
    worker = FrameWorker(backend.stream, sink.result, sink.error, backend.reset, queue_size=2)
    try:
        t0 = time.perf_counter()
        for i in range(40):
            worker.submit(frame(i))
        submit_s = time.perf_counter() - t0
        assert worker.pending() <= 2
        deadline = time.monotonic() + 60
        while worker.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.close()
    s = worker.stats
    assert s.submitted == 40 and s.dropped > 0 and s.processed + s.dropped + worker.pending() <= 40
    assert submit_s < 1.0  # 40 submits while the model runs: nothing waited for it
    # what did get through kept its order
    stamps = [r.stamp_ns for r in sink.results]
    assert stamps == sorted(stamps) and not sink.errors


def test_queue_size_is_validated():
    with pytest.raises(ValueError, match="queue_size must be >= 1"):
        FrameWorker(print, print, print, queue_size=0)
