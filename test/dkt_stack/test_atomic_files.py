"""Atomic writes: whole new content or the old file, no temporary files left."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from dkt_stack.atomic_files import atomic_path, current_umask, write_npz_atomic, write_text_atomic


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


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_files_follow_the_umask_like_open_does(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        assert current_umask() == umask
        summary = write_text_atomic(tmp_path / "summary.json", "{}\n")
        npz = write_npz_atomic(tmp_path / "depth.npz", d=np.zeros(2))
        with atomic_path(tmp_path / "plot.png") as tmp:
            tmp.write_bytes(b"png")
        plain = tmp_path / "plain.txt"
        plain.write_text("x")  # what open() gives under the same umask
    finally:
        os.umask(old)
    for path in (summary, npz, tmp_path / "plot.png", plain):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path.name


def test_replacing_a_file_keeps_its_mode(tmp_path):
    p = tmp_path / "metrics.csv"
    write_text_atomic(p, "a\n")
    p.chmod(0o640)
    write_text_atomic(p, "b\n")
    assert stat.S_IMODE(p.stat().st_mode) == 0o640 and p.read_text() == "b\n"
