"""Atomic writes: whole new content or the old file, no temporary files left."""

from __future__ import annotations

import numpy as np
import pytest

from dkt_stack.atomic_files import atomic_path, write_npz_atomic, write_text_atomic


def test_round_trips_and_no_leftovers(tmp_path):
    p = tmp_path / "sub" / "a.txt"
    write_text_atomic(p, "first\n")
    write_text_atomic(p, "second\r\n")
    assert p.read_bytes() == b"second\r\n"
    z = write_npz_atomic(tmp_path / "d.npz", depth=np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(np.load(z)["depth"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert sorted(f.name for f in tmp_path.rglob("*") if f.is_file()) == ["a.txt", "d.npz"]
    with pytest.raises(ValueError, match="at least one array"):
        write_npz_atomic(tmp_path / "e.npz")


def test_failure_keeps_the_old_file(tmp_path):
    p = tmp_path / "keep.txt"
    write_text_atomic(p, "old")
    with pytest.raises(RuntimeError), atomic_path(p) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer died")
    assert p.read_text() == "old" and [f.name for f in tmp_path.iterdir()] == ["keep.txt"]
