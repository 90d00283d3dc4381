"""Offline replay of generated bags: topics, counts, stamps, metric error against the scene's ground truth, errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from dkt_perception.depth import DepthConfig
from dkt_perception.replay.bag_io import BagError
from dkt_perception.replay.bag_replay import ReplayConfig, replay_bag
from dkt_perception.replay.synthetic_bag import write_synthetic_bag
from dkt_perception.synthetic_scene import default_scene
from dkt_stack import conversions as cv

W, H, FRAMES = 320, 240, 3


@pytest.fixture(scope="module")
def scene():
    return default_scene(0, width=W, height=H)


@pytest.fixture(scope="module")
def vga_scene():
    """640x480: all three tags are detected, as with a real D435 at this distance."""
    return default_scene(0, width=640, height=480)


def read_bag(path: Path) -> dict[str, list[tuple[int, object]]]:
    out: dict[str, list[tuple[int, object]]] = {}
    with AnyReader([path]) as reader:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, reader.deserialize(raw, conn.msgtype)))
    return out


def raw_messages(path: Path) -> dict[str, list[tuple[int, bytes]]]:
    out: dict[str, list[tuple[int, bytes]]] = {}
    with AnyReader([path]) as reader:
        for conn, t, raw in reader.messages():
            out.setdefault(conn.topic, []).append((t, bytes(raw)))
    return out


def file_hashes(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


CASES = [
    pytest.param("sqlite3", "/camera", "", False, id="sqlite3-raw-images-camera"),
    pytest.param("mcap", "/camera/camera", "jpeg", True, id="mcap-compressed-camera-camera"),
]


@pytest.mark.parametrize(("storage", "prefix", "compressed", "compressed_depth"), CASES)
def test_raw_backend_replay_copies_inputs_and_gives_metric_depth_near_ground_truth(tmp_path, vga_scene, storage, prefix, compressed, compressed_depth):
    scene = vga_scene
    bag = write_synthetic_bag(tmp_path / "in", FRAMES, storage=storage, prefix=prefix, compressed_color=compressed,
                              compressed_depth=compressed_depth, scene=scene)
    before = file_hashes(bag)
    summary = replay_bag(bag, tmp_path / "out", progress=False)
    assert file_hashes(bag) == before  # the input is never modified

    assert summary.frames == FRAMES and summary.frames_relative == FRAMES and summary.frames_metric == FRAMES == summary.clouds
    assert summary.topics["color"].startswith(f"{prefix}/color/image_raw")
    assert list((tmp_path / "out").glob("*.mcap" if storage == "mcap" else "*.db3"))  # same storage as the input

    inp, out = raw_messages(bag), raw_messages(tmp_path / "out")
    for topic, messages in inp.items():  # every input message copied byte for byte, same bag timestamps
        assert out[topic] == messages
    new_topics = {f"{prefix}/depth/relative", f"{prefix}/depth/metric", f"{prefix}/depth/camera_info", f"{prefix}/points", "/diagnostics"}
    assert set(out) == set(inp) | new_topics
    assert all(len(out[t]) == FRAMES for t in new_topics)
    assert summary.messages_copied == sum(len(m) for m in inp.values())

    with AnyReader([bag]) as r_in, AnyReader([tmp_path / "out"]) as r_out:  # copied topics keep their own (Humble) definitions
        defs_in = {c.topic: (c.msgdef.data, c.digest) for c in r_in.connections}
        defs_out = {c.topic: (c.msgdef.data, c.digest) for c in r_out.connections}
    assert all(defs_out[t] == d for t, d in defs_in.items())

    msgs = read_bag(tmp_path / "out")
    colour = msgs[summary.topics["color"]]
    colour_stamps = [cv.stamp_to_ns(m.header.stamp) for _, m in colour]
    assert colour_stamps == [scene.stamp_ns(i) for i in range(FRAMES)]
    for topic in new_topics:  # outputs keep the colour image's header stamp and bag timestamp
        got = msgs[topic]
        assert [t for t, _ in got] == [t for t, _ in colour]
        assert [cv.stamp_to_ns(m.header.stamp) for _, m in got] == colour_stamps
    assert all(m.header.frame_id == "camera_color_optical_frame" for _, m in msgs[f"{prefix}/depth/metric"])
    info = msgs[f"{prefix}/depth/camera_info"][0][1]
    assert np.allclose(np.asarray(info.k).reshape(3, 3), scene.intrinsics.K)

    for i, (_, m) in enumerate(msgs[f"{prefix}/depth/metric"]):
        f = scene.render(i)
        depth = cv.image_to_numpy(m)
        rel = cv.image_to_numpy(msgs[f"{prefix}/depth/relative"][i][1])
        assert m.encoding == "32FC1" and depth.shape == (480, 640)
        assert np.array_equal(rel, (1.0 / f.raw_depth_m).astype(np.float32), equal_nan=True)  # raw backend: 1/z of the decoded raw depth
        table = cv2.erode((f.labels == 0).astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)  # away from flying-pixel edges
        diffuse = table & np.isfinite(depth)
        err_mm = np.abs(depth[diffuse] - f.depth_gt_m[diffuse]) * 1000.0
        assert diffuse.sum() > 0.5 * depth.size
        assert np.median(err_mm) < 3.0 and np.percentile(err_mm, 90) < 8.0

    diag = msgs["/diagnostics"][0][1].status[0]
    values = {kv.key: kv.value for kv in diag.values}
    assert values["valid"] == "True" and abs(float(values["scale"]) - 1.0) < 0.05
    assert {"shift", "residual_median_mm", "inlier_ratio"} <= set(values)
    xyz, rgb = cv.cloud_to_points(msgs[f"{prefix}/points"][0][1])
    assert len(xyz) > 100 and rgb is not None and np.nanmax(xyz[:, 2]) < 2.0


def test_streaming_equals_offline_for_the_raw_backend_and_mcap_output(tmp_path, scene):
    bag = write_synthetic_bag(tmp_path / "in", 3, scene=scene)
    replay_bag(bag, tmp_path / "off", ReplayConfig(mode="offline"), progress=False)
    s = replay_bag(bag, tmp_path / "str", ReplayConfig(mode="streaming", storage="mcap"), progress=False)
    assert s.frames_relative == 3 and list((tmp_path / "str").glob("*.mcap"))
    a, b = read_bag(tmp_path / "off"), read_bag(tmp_path / "str")
    for topic in ("/camera/depth/relative", "/camera/depth/metric"):
        for (_, ma), (_, mb) in zip(a[topic], b[topic], strict=True):
            assert np.array_equal(cv.image_to_numpy(ma), cv.image_to_numpy(mb), equal_nan=True)


TINY_DKT = DepthConfig(backend="dkt", model="tiny", random_weights=True, height=16, width=16, steps=1, device="cpu", stream_window=2)


@pytest.fixture(scope="module")
def tiny_dkt():
    from dkt_perception.depth import create_backend

    return create_backend("dkt", TINY_DKT)  # random weights: no files needed


def test_dkt_tiny_random_model_offline_chunks_and_streaming(tmp_path, tiny_dkt):
    bag = write_synthetic_bag(tmp_path / "in", 5, width=64, height=48, raw_depth=False)
    full = None
    for mode, chunk in (("offline", 0), ("offline", 3), ("streaming", 0), ("offline", 0)):
        out = tmp_path / f"out_{mode}_{chunk}_{full is None}"
        s = replay_bag(bag, out, ReplayConfig(mode=mode, depth=TINY_DKT, offline_chunk_frames=chunk), backend=tiny_dkt, progress=False)
        assert s.backend == "dkt" and s.frames == 5 and s.frames_relative == 5, (mode, chunk)
        rel = [cv.image_to_numpy(m) for _, m in read_bag(out)["/camera/depth/relative"]]
        assert len(rel) == 5 and all(r.shape == (48, 64) and np.isfinite(r).all() for r in rel)
        assert len(read_bag(out)["/diagnostics"]) == 5  # every frame reports, valid or not (tags too small here)
        if mode == "offline" and chunk == 0:  # deterministic: the same sequence gives the same disparity twice
            if full is not None:
                assert all(np.array_equal(a, b) for a, b in zip(full, rel, strict=True))
            full = rel


def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_truncated_bag_is_a_clear_error(tmp_path, scene, storage):
    bag = write_synthetic_bag(tmp_path / "in", 3, storage=storage, scene=scene)
    (db,) = [p for p in bag.iterdir() if p.suffix in (".db3", ".mcap")]
    _truncate(db, 0.5)
    with pytest.raises(BagError, match="corrupt or truncated|cannot open"):
        replay_bag(bag, tmp_path / "out", progress=False)


def test_missing_topics_sizes_and_existing_output_are_clear_errors(tmp_path, scene, tiny_dkt):
    bag = write_synthetic_bag(tmp_path / "in", 2, scene=scene)
    with pytest.raises(BagError, match="colour image topic /nope is not in the bag"):
        replay_bag(bag, tmp_path / "o1", ReplayConfig(color_topic="/nope"), progress=False)
    no_depth = write_synthetic_bag(tmp_path / "no_depth", 2, scene=scene, raw_depth=False)
    with pytest.raises(BagError, match="raw backend needs raw depth"):
        replay_bag(no_depth, tmp_path / "o2", progress=False)
    with pytest.raises(BagError, match="no such bag"):
        replay_bag(tmp_path / "absent", tmp_path / "o3", progress=False)
    replay_bag(bag, tmp_path / "o4", progress=False)
    with pytest.raises(BagError, match="--force"):
        replay_bag(bag, tmp_path / "o4", progress=False)
    assert replay_bag(bag, tmp_path / "o4", ReplayConfig(force=True), progress=False).frames == 2
    with pytest.raises(BagError, match="is the input bag"):
        replay_bag(bag, bag, ReplayConfig(force=True), progress=False)
    # camera_info of another size than the images: named in the error
    other = default_scene(0, width=W // 2, height=H // 2)
    wrong = tmp_path / "wrong"
    write_synthetic_bag(wrong, 1, scene=scene, raw_depth=False)
    mixed = tmp_path / "mixed"
    _merge_info(wrong, write_synthetic_bag(tmp_path / "small", 1, scene=other), mixed)
    with pytest.raises(BagError, match=r"sizes do not match: colour 320x240 .* camera_info 160x120"):
        replay_bag(mixed, tmp_path / "o5", ReplayConfig(depth=TINY_DKT), backend=tiny_dkt, progress=False)


def _merge_info(colour_bag: Path, info_bag: Path, out: Path) -> None:
    """A bag with ``colour_bag``'s colour and ``info_bag``'s camera_info (mismatched sizes)."""
    from rosbags.rosbag2 import Writer

    with AnyReader([colour_bag]) as a, AnyReader([info_bag]) as b, Writer(out, version=9) as w:
        conns = {}
        for reader, topic in ((a, "/camera/color/image_raw"), (b, "/camera/color/camera_info")):
            for conn, t, raw in reader.messages(connections=[c for c in reader.connections if c.topic == topic]):
                if topic not in conns:
                    conns[topic] = w.add_connection(topic, conn.msgtype, msgdef=conn.msgdef.data, rihs01=conn.digest)
                w.write(conns[topic], t - 10 if "info" in topic else t, raw)


def test_failure_midway_leaves_a_closed_readable_partial_output(tmp_path, scene):
    bag = write_synthetic_bag(tmp_path / "in", 4, scene=scene, compressed_color="png")
    # a copy of the bag whose frame 2 is not a decodable PNG
    bad = tmp_path / "bad"
    from rosbags.rosbag2 import Writer

    with AnyReader([bag]) as reader, Writer(bad, version=9) as w:
        conns = {c.id: w.add_connection(c.topic, c.msgtype, msgdef=c.msgdef.data, rihs01=c.digest) for c in reader.connections}
        seen = 0
        for conn, t, raw in reader.messages():
            if conn.msgtype == "sensor_msgs/msg/CompressedImage":
                seen += 1
                if seen == 3:
                    msg = reader.deserialize(raw, conn.msgtype)
                    broken = type(msg)(header=msg.header, format=msg.format, data=np.frombuffer(b"\x89PNG broken", dtype=np.uint8))
                    raw = reader.typestore.serialize_cdr(broken, conn.msgtype)
            w.write(conns[conn.id], t, raw)
    with pytest.raises(BagError, match=r"frame 2 \(stamp"):
        replay_bag(bad, tmp_path / "out", ReplayConfig(mode="streaming"), progress=False)
    partial = read_bag(tmp_path / "out")  # closed cleanly: metadata written, readable
    assert len(partial["/camera/depth/relative"]) == 2 and len(partial["/camera/depth/metric"]) == 2
    assert len(partial["/camera/color/image_raw/compressed"]) == 3  # copied up to the bad frame
    meta = (tmp_path / "out" / "metadata.yaml").read_text()
    assert "message_count" in meta


def test_cli_replay_json_and_errors(tmp_path, scene, capsys):
    from dkt_stack.cli import main

    bag = write_synthetic_bag(tmp_path / "in", 2, scene=scene)
    assert main(["replay", str(bag), "--out", str(tmp_path / "out"), "--json", "--quiet", "--storage", "mcap"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 2 and summary["frames_metric"] == 2 and "/camera/points" in summary["output_topics"]
    assert main(["replay", str(bag), "--out", str(tmp_path / "out"), "--quiet"]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["replay", str(bag), "--out", str(tmp_path / "o2"), "--backend", "dkt", "--weights-dir", str(tmp_path / "w"), "--quiet"]) == 1
    assert "dkt-stack weights fetch" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()  # nothing written when the model cannot load
    tags = tmp_path / "tags.yaml"
    tags.write_text("ids: [7]\nsizes_m: [0.06]\n")  # a tag id the scene does not have: no metric scale
    assert main(["replay", str(bag), "--out", str(tmp_path / "o3"), "--tags-config", str(tags), "--quiet", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["frames_metric"] == 0


@pytest.mark.parametrize("mode", ["streaming", "offline"])
def test_a_depth_stage_failure_keeps_the_frames_before_it(tmp_path, scene, mode):
    """The depth backend fails on frame 3 (on the depth thread): a clear error, and frames 0-2 are in the closed output."""
    from dkt_perception.depth import DepthInputError
    from dkt_perception.depth.raw_backend import RawDepthBackend

    class FailsOnFrame3(RawDepthBackend):
        seen = 0  # frames pushed so far (per instance once incremented)

        def stream(self, frame):
            self.seen += 1
            if self.seen == 4:
                raise DepthInputError("frame 3 is unusable")
            return super().stream(frame)

        def infer_video(self, rgb, raw_depth_m=None):
            if len(rgb) > 1:  # offline chunks of one frame here (offline_chunk_frames=1)
                raise AssertionError("expected one frame per call")
            self.seen += 1
            if self.seen == 4:
                raise DepthInputError("frame 3 is unusable")
            return super().infer_video(rgb, raw_depth_m)

    bag = write_synthetic_bag(tmp_path / "in", 6, scene=scene)
    with pytest.raises(BagError, match="depth backend rejected the input: frame 3 is unusable"):
        replay_bag(bag, tmp_path / "out", ReplayConfig(mode=mode, offline_chunk_frames=1), backend=FailsOnFrame3(), progress=False)
    partial = read_bag(tmp_path / "out")
    assert [t for t, _ in partial["/camera/depth/relative"]] == [t for t, _ in partial["/camera/color/image_raw"]][:3]
    assert len(partial["/camera/points"]) == 3


def test_bench_replay_rejects_bad_cloud_options_and_workdir_in_one_line(capsys, tmp_path):
    from dkt_stack.cli import main

    assert main(["bench", "replay", "--frames", "2", "--voxel", "-1"]) == 2  # an option value a check refused
    assert capsys.readouterr().err == "dkt-stack bench replay: voxel_size_m must be >= 0, got -1.0\n"
    assert main(["bench", "replay", "--frames", "2", "--cloud-stride", "0"]) == 2
    assert "stride must be >= 1, got 0" in capsys.readouterr().err
    assert main(["bench", "replay", "--frames", "2", "--workdir", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--workdir {tmp_path / 'absent'}: no such folder — create it first" in err


def test_not_a_bag_gives_one_line_with_the_fix(tmp_path, capsys):
    from dkt_stack.cli import main

    (tmp_path / "notabag").mkdir()
    assert main(["replay", str(tmp_path / "notabag"), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err == f"dkt-stack replay: {tmp_path / 'notabag'}: not a rosbag2 bag (no metadata.yaml) — give the folder that holds metadata.yaml and the .db3/.mcap file\n"
    assert not (tmp_path / "o").exists()
