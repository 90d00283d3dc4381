"""A replay killed hard (SIGKILL) or stopped by an error, then resumed, equals one uninterrupted run, message for message.

Messages are compared decoded (arrays bit for bit, NaN included): rclpy's CDR
leaves alignment padding bytes uninitialised, so two uninterrupted runs differ
in a few padding bytes already. Input copies are compared byte for byte.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from dkt_perception.depth import DepthConfig, DepthInputError
from dkt_perception.replay.bag_io import PROGRESS_FILE, BagError
from dkt_perception.replay.bag_replay import ReplayConfig, replay_bag
from dkt_perception.replay.synthetic_bag import write_synthetic_bag
from dkt_perception.synthetic_scene import default_scene

FRAMES = 30
KILL_AFTER_FRAMES = 6
TINY_DKT = DepthConfig(backend="dkt", model="tiny", random_weights=True, height=16, width=16, steps=1, device="cpu", stream_window=2)

#: the child replays with the raw backend slowed to ~20 frames/s and a checkpoint after every frame
CHILD = textwrap.dedent("""
    import sys, time
    from dkt_perception.depth.raw_backend import RawDepthBackend
    from dkt_perception.replay.bag_replay import ReplayConfig, replay_bag

    class SlowRaw(RawDepthBackend):
        def infer_video(self, rgb, raw_depth_m=None):
            time.sleep(0.05 * len(rgb))
            return super().infer_video(rgb, raw_depth_m)

    replay_bag(sys.argv[1], sys.argv[2], ReplayConfig(checkpoint_s=0.0), backend=SlowRaw(), progress=False)
""")


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if hasattr(a, "__dataclass_fields__"):
        return type(a).__name__ == type(b).__name__ and all(_same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _messages(path: Path) -> dict[str, list[tuple[int, bytes, object]]]:
    out: dict[str, list] = {}
    with AnyReader([path]) as reader:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, bytes(raw), reader.deserialize(raw, conn.msgtype)))
    return {topic: sorted(items, key=lambda m: m[0]) for topic, items in out.items()}


def assert_same_bags(reference: Path, resumed: Path, copied_topics: set[str]) -> None:
    a, b = _messages(reference), _messages(resumed)
    assert set(a) == set(b)
    for topic in a:
        assert [t for t, _, _ in a[topic]] == [t for t, _, _ in b[topic]], topic
        for (t, raw_a, msg_a), (_, raw_b, msg_b) in zip(a[topic], b[topic], strict=True):
            assert _same(msg_a, msg_b), (topic, t)
            if topic in copied_topics:
                assert raw_a == raw_b, (topic, t)


@pytest.fixture(scope="module")
def vga_scene():
    return default_scene(0, width=640, height=480)


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_sigkilled_replay_resumes_to_the_uninterrupted_output(tmp_path, vga_scene, storage):
    bag = write_synthetic_bag(tmp_path / "in", FRAMES, scene=vga_scene, storage=storage)
    reference = replay_bag(bag, tmp_path / "reference", progress=False)
    assert reference.frames_metric == FRAMES

    out = tmp_path / "out"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(bag), str(out)])
    deadline = time.monotonic() + 180
    frames_done = 0
    while frames_done < KILL_AFTER_FRAMES:
        assert child.poll() is None, "the replay ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint in time"
        try:
            frames_done = json.loads((out / PROGRESS_FILE).read_text())["checkpoint"]["frames"]
        except (OSError, ValueError, KeyError):
            pass  # not written yet
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    assert not (out / "metadata.yaml").exists()  # what a killed writer leaves: nothing can read it as it is

    with pytest.raises(BagError, match=r"did not finish — continue it with --resume"):
        replay_bag(bag, out, progress=False)  # a plain rerun still refuses
    summary = replay_bag(bag, out, progress=False, resume=True)
    assert KILL_AFTER_FRAMES <= summary.resumed_from_frame < FRAMES
    assert summary.frames == FRAMES and summary.frames_metric == FRAMES == summary.clouds
    assert_same_bags(tmp_path / "reference", out, copied_topics={t for t in _messages(bag)})
    assert not (out / PROGRESS_FILE).exists() and not (tmp_path / "out.partial").exists()

    again = replay_bag(bag, out, progress=False, resume=True)  # a finished output: nothing to do
    assert "finished replay" in again.notes[0] and again.frames_metric == FRAMES


class _FailingAt:
    """Wraps a DKT backend: the stream raises on frame ``fail_at`` (a depth stage failure midway); records what it sees."""

    name, video_context = "dkt", True

    def __init__(self, backend, fail_at: int | None = None):
        self.backend, self.fail_at, self.pushed = backend, fail_at, 0

    def reset(self):
        self.backend.reset()

    def stream(self, frame):
        if self.pushed == self.fail_at:
            raise DepthInputError(f"frame {self.pushed} is unusable")
        self.pushed += 1
        return self.backend.stream(frame)

    def flush(self):
        return self.backend.flush()

    def infer_video(self, rgb, raw_depth_m=None):
        return self.backend.infer_video(rgb, raw_depth_m)


def test_a_failed_dkt_streaming_replay_resumes_with_its_context(tmp_path):
    from dkt_perception.depth import create_backend

    dkt = create_backend("dkt", TINY_DKT)
    bag = write_synthetic_bag(tmp_path / "in", 12, width=64, height=48, raw_depth=False)
    config = ReplayConfig(mode="streaming", depth=TINY_DKT, checkpoint_s=0.0)
    replay_bag(bag, tmp_path / "reference", config, backend=dkt, progress=False)

    with pytest.raises(BagError, match="frame 9 is unusable"):
        replay_bag(bag, tmp_path / "out", config, backend=_FailingAt(dkt, fail_at=9), progress=False)
    progress = json.loads((tmp_path / "out" / PROGRESS_FILE).read_text())["checkpoint"]
    assert 0 < progress["frames"] <= 9  # frames 0..8 were pushed; streaming emits them per 4-frame chunk

    with pytest.raises(BagError, match=r"other settings \(config\.mode"):
        replay_bag(bag, tmp_path / "out", ReplayConfig(mode="offline", depth=TINY_DKT), backend=dkt, progress=False, resume=True)
    again = _FailingAt(dkt)
    summary = replay_bag(bag, tmp_path / "out", config, backend=again, progress=False, resume=True)
    assert summary.resumed_from_frame == progress["frames"]
    assert again.pushed == 12  # the stream sees every frame again: each output depends on all frames before it
    assert any("as context" in note for note in summary.notes)
    assert_same_bags(tmp_path / "reference", tmp_path / "out", copied_topics={"/camera/color/image_raw", "/notes"})


def test_offline_chunks_are_resume_points(tmp_path):
    """Offline DKT in chunks of 4: resuming after frame 8 runs only the chunk from frame 8 on."""
    from dkt_perception.depth import create_backend

    dkt = create_backend("dkt", TINY_DKT)
    bag = write_synthetic_bag(tmp_path / "in", 10, width=64, height=48, raw_depth=False)
    config = ReplayConfig(depth=TINY_DKT, offline_chunk_frames=4, checkpoint_s=0.0)
    replay_bag(bag, tmp_path / "reference", config, backend=dkt, progress=False)

    class FailsOnThirdChunk(_FailingAt):
        calls = 0

        def __init__(self, backend, fail_at=None):
            super().__init__(backend, fail_at)
            self.frames_seen: list[int] = []

        def infer_video(self, rgb, raw_depth_m=None):
            self.calls += 1
            if self.fail_at is not None and self.calls == 3:
                raise DepthInputError("the third chunk is unusable")
            self.frames_seen.append(len(rgb))
            return super().infer_video(rgb, raw_depth_m)

    with pytest.raises(BagError, match="third chunk is unusable"):
        replay_bag(bag, tmp_path / "out", config, backend=FailsOnThirdChunk(dkt, fail_at=0), progress=False)
    resumed = FailsOnThirdChunk(dkt)
    summary = replay_bag(bag, tmp_path / "out", config, backend=resumed, progress=False, resume=True)
    assert summary.resumed_from_frame == 8 and resumed.frames_seen == [2]  # frames 8 and 9 only
    assert_same_bags(tmp_path / "reference", tmp_path / "out", copied_topics={"/camera/color/image_raw", "/notes"})


def test_resume_without_an_output_starts_from_the_beginning(tmp_path):
    bag = write_synthetic_bag(tmp_path / "in", 2, width=160, height=120)
    summary = replay_bag(bag, tmp_path / "out", progress=False, resume=True)
    assert summary.resumed_from_frame == 0 and summary.frames_relative == 2
    assert not (tmp_path / "out" / PROGRESS_FILE).exists()
