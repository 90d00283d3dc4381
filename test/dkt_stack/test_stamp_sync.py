"""Approximate-time matching by stamp."""

from __future__ import annotations

import pytest

from dkt_stack.stamp_sync import StampSynchronizer


def test_exact_sets_in_any_arrival_order():
    sync = StampSynchronizer(["rel", "rgb", "raw"])
    assert sync.add("rgb", 100, "c1") is None
    assert sync.add("raw", 100, "d1") is None
    assert sync.add("rgb", 200, "c2") is None
    assert sync.add("rel", 100, "r1") == (100, {"rel": "r1", "rgb": "c1", "raw": "d1"})
    assert sync.add("rel", 200, "r2") is None  # raw for 200 not there yet
    assert sync.add("raw", 200, "d2") == (200, {"rel": "r2", "rgb": "c2", "raw": "d2"})


def test_slop_picks_the_closest_and_drops_the_older():
    sync = StampSynchronizer(["a", "b"], slop_ns=10)
    sync.add("b", 95, "b95")
    sync.add("b", 103, "b103")
    sync.add("b", 130, "b130")
    assert sync.add("a", 100, "a100") == (100, {"a": "a100", "b": "b103"})
    # b95 was older than the emitted set: gone; b130 waits
    assert sync.add("a", 96, "a96") is None
    assert sync.add("a", 127, "a127") == (127, {"a": "a127", "b": "b130"})
    assert sync.add("a", 200, "x") is None


def test_queue_overflow_is_counted_and_errors_are_clear():
    sync = StampSynchronizer(["a", "b"], queue_size=2)
    for s in range(5):
        sync.add("a", s, s)
    assert sync.dropped == 3
    assert sync.add("b", 4, "b") == (4, {"a": 4, "b": "b"})
    with pytest.raises(KeyError, match="unknown key 'c'"):
        sync.add("c", 1, None)
    with pytest.raises(ValueError, match="slop_ns must be >= 0"):
        StampSynchronizer(["a"], slop_ns=-1)
