"""Bags whose writer was SIGKILLed: what is left, what recovery rebuilds (sqlite3 index, MCAP summary), and the one-line errors."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest
from rosbags.highlevel import AnyReader

from dkt_perception.replay.bag_io import BagError, open_reader
from dkt_perception.replay.bag_recovery import recover_bag

#: writes 50 + 17 messages on /a and /b, checkpoints after 40, writes 10 more, then kills itself
CHILD = textwrap.dedent("""
    import os, signal, sys
    from rosbags.rosbag2 import StoragePlugin
    from std_msgs.msg import String
    from dkt_perception.replay.bag_io import BagWriter

    writer = BagWriter(sys.argv[1], StoragePlugin.MCAP if sys.argv[2] == "mcap" else StoragePlugin.SQLITE3)
    writer.__enter__()
    for i in range(50):
        writer.write("/a", String(data="x" * (1000 * i)), 1000 + i)
        if i % 3 == 0:
            writer.write("/b", String(data=f"b{i}"), 1000 + i)
        if i == 29:
            writer.checkpoint()  # 40 messages: 30 on /a, 10 on /b
    os.kill(os.getpid(), signal.SIGKILL)
""")


def _killed_bag(tmp_path, storage):
    path = tmp_path / f"killed_{storage}"
    child = subprocess.run([sys.executable, "-c", CHILD, str(path), storage], check=False)
    assert child.returncode == -signal.SIGKILL
    return path


def _topics(path):
    with AnyReader([path]) as reader:
        out = {}
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, reader.deserialize(raw, conn.msgtype).data))
        return out


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_killed_writer_keeps_its_checkpoint_and_recovery_rebuilds_the_index(tmp_path, storage, capsys):
    from dkt_stack.cli import main

    path = _killed_bag(tmp_path, storage)
    assert not (path / "metadata.yaml").exists()
    with pytest.raises(BagError, match=r"recorder was killed \(no metadata.yaml\) — rebuild its index with `dkt-stack replay --reindex"):
        open_reader(path)

    result = recover_bag(path, keep=40)
    assert result.rebuilt and result.messages == 40
    topics = _topics(path)
    assert topics["/a"] == [(1000 + i, "x" * (1000 * i)) for i in range(30)]  # exactly the first 40 messages, in order
    assert topics["/b"] == [(1000 + i, f"b{i}") for i in range(0, 30, 3)]
    with AnyReader([path]) as reader:  # the type hashes are there (the reader checks them against the definitions)
        assert all(c.digest.startswith("RIHS01_") for c in reader.connections)

    again = recover_bag(path, keep=40)  # recovering twice changes nothing
    assert not again.rebuilt and _topics(path) == topics
    assert main(["replay", "--reindex", str(path)]) == 0
    assert "40 messages" in capsys.readouterr().out


def test_reindex_without_a_checkpoint_keeps_every_complete_message(tmp_path):
    path = _killed_bag(tmp_path, "sqlite3")
    assert recover_bag(path).messages == 40  # sqlite3: the last commit, whatever came after it is rolled back


def test_mcap_cut_inside_a_chunk_is_refused(tmp_path):
    path = _killed_bag(tmp_path, "mcap")
    with pytest.raises(BagError, match="falls inside a chunk"):
        recover_bag(path, keep=30)


def test_reindex_errors_are_one_line(tmp_path, capsys):
    from dkt_stack.cli import main

    (tmp_path / "empty").mkdir()
    assert main(["replay", "--reindex", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "expected one .db3 or .mcap file, found none" in err and "Traceback" not in err
