"""``dkt-stack depth`` and ``dkt-stack weights`` on tiny inputs (random tiny weights, nothing downloaded).

Covers: results equal to ``infer_video``; input errors that name the file and
the fix (missing, corrupt, mixed sizes) and their options; memory that does not
grow with the number of frames; one-line errors from the command line.
"""

import argparse
import json
import tracemalloc

import cv2
import numpy as np
import pytest

from dkt_perception.depth import DepthConfig, DepthInputError, benchmark, cli, create_backend, weights_cli
from dkt_stack.cli import main

TINY = ["--model", "tiny", "--random-weights", "--height", "16", "--width", "32", "--steps", "1", "--device", "cpu", "--quiet"]


def _parse(module, argv):
    p = argparse.ArgumentParser()
    module.add_arguments(p)
    return p.parse_args(argv)


def _images(folder, n, h=18, w=26, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"f{i}.png"), f[:, :, ::-1])
    return np.stack(frames)


def test_depth_cli_streams_the_same_disparity_as_infer_video(tmp_path):
    rgb = _images(tmp_path / "in", 6)
    assert cli.run(_parse(cli, [str(tmp_path / "in"), "--out", str(tmp_path / "out"), *TINY])) == 0
    data = np.load(tmp_path / "out" / "depth.npz")
    assert list(data["names"]) == [f"f{i}.png" for i in range(6)]
    backend = create_backend("dkt", DepthConfig(model="tiny", random_weights=True, height=16, width=32, steps=1, device="cpu"))
    np.testing.assert_array_equal(data["disparity"], backend.infer_video(rgb).disparity)  # bit-exact: same windows, same chunks
    previews = sorted((tmp_path / "out").glob("*.png"))
    assert [p.name for p in previews] == [f"f{i}_disparity.png" for i in range(6)]
    preview = cv2.imread(str(previews[0]))
    assert preview.shape[0] == 18 and preview.shape[1] > 26  # the frame plus a colour bar on the right


def test_missing_empty_and_unreadable_inputs_are_named(tmp_path):
    with pytest.raises(DepthInputError, match=r"nothing\.mp4: not found — check the path"):
        cli.run(_parse(cli, [str(tmp_path / "nothing.mp4"), "--out", str(tmp_path / "o"), *TINY]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DepthInputError, match="no images in this folder"):
        cli.run(_parse(cli, [str(tmp_path / "empty"), "--out", str(tmp_path / "o"), *TINY]))
    (tmp_path / "clip.mp4").write_bytes(b"not a video")
    with pytest.raises(DepthInputError, match="cannot open it as a video|no frame could be decoded"):
        cli.run(_parse(cli, [str(tmp_path / "clip.mp4"), "--out", str(tmp_path / "o"), *TINY]))
    assert not (tmp_path / "o").exists()  # nothing written, not even the folder


def test_corrupt_image_is_refused_by_name_or_skipped(tmp_path):
    rgb = _images(tmp_path / "in", 4)
    (tmp_path / "in" / "f2.png").write_bytes(b"\x89PNG truncated")
    with pytest.raises(DepthInputError, match=r"f2\.png: cannot decode the image .* --skip-corrupt"):
        cli.run(_parse(cli, [str(tmp_path / "in"), "--out", str(tmp_path / "o1"), *TINY]))
    assert cli.run(_parse(cli, [str(tmp_path / "in"), "--out", str(tmp_path / "o2"), "--skip-corrupt", *TINY])) == 0
    data = np.load(tmp_path / "o2" / "depth.npz")
    assert list(data["names"]) == ["f0.png", "f1.png", "f3.png"]
    backend = create_backend("dkt", DepthConfig(model="tiny", random_weights=True, height=16, width=32, steps=1, device="cpu"))
    np.testing.assert_array_equal(data["disparity"], backend.infer_video(rgb[[0, 1, 3]]).disparity)


def test_mixed_sizes_are_refused_by_name_or_resized(tmp_path):
    _images(tmp_path / "in", 3)
    odd = np.full((30, 40, 3), 90, np.uint8)
    cv2.imwrite(str(tmp_path / "in" / "f1.png"), odd)
    with pytest.raises(DepthInputError, match=r"f1\.png is 40x30 but the first frame is 26x18.*--resize"):
        cli.run(_parse(cli, [str(tmp_path / "in"), "--out", str(tmp_path / "o1"), *TINY]))
    assert cli.run(_parse(cli, [str(tmp_path / "in"), "--out", str(tmp_path / "o2"), "--resize", *TINY])) == 0
    assert np.load(tmp_path / "o2" / "depth.npz")["disparity"].shape == (3, 18, 26)


def _traced_peak_mb(tmp_path, n: int, trace: bool = True) -> float:
    src = tmp_path / f"in{n}"
    src.mkdir()
    y, x = np.mgrid[0:240, 0:320]
    for i in range(n):  # smooth images: cheap to write and read
        cv2.imwrite(str(src / f"f{i:03d}.png"), np.stack([(x + i) % 256, (y + 2 * i) % 256, (x + y) % 256], -1).astype(np.uint8))
    args = _parse(cli, [str(src), "--out", str(tmp_path / f"out{n}"), *TINY])
    if not trace:
        return cli.run(args)
    tracemalloc.start()
    try:
        cli.run(args)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_peak_memory_does_not_grow_with_the_number_of_frames(tmp_path):
    """numpy's and Python's allocations (traced) for 4 vs 24 frames of 320x240: loading the video whole grows ~1 MB/frame."""
    _traced_peak_mb(tmp_path, 1, trace=False)  # warm-up: imports and first-call caches are not the command's working memory
    small, large = _traced_peak_mb(tmp_path, 4), _traced_peak_mb(tmp_path, 24)
    assert large < 1.3 * small + 1.0, (small, large)


def test_cli_errors_are_one_line_without_traceback(tmp_path, capsys):
    rc = main(["depth", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o"), *TINY])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"dkt-stack depth: {tmp_path / 'missing.mp4'}: not found — ")
    rc = main(["depth", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "o"), *TINY, "--debug"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" in err and err.rstrip().endswith("(a video file or a folder of images)")


def test_weights_check_lists_missing(tmp_path, capsys):
    (tmp_path / "Wan2.1-T2V-1.3B").mkdir()
    (tmp_path / "Wan2.1-T2V-1.3B" / "Wan2.1_VAE.pth").write_bytes(b"abc")
    rc = weights_cli.run(_parse(weights_cli, ["check", "--dir", str(tmp_path), "--json"]))
    rows = {r["file"]: r for r in json.loads(capsys.readouterr().out)}
    assert rc == 1
    vae = rows["Wan2.1-T2V-1.3B/Wan2.1_VAE.pth"]
    assert vae["present"] and vae["size"] == 3
    assert vae["sha256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert not rows["dkt_text_depth.safetensors"]["present"]


def test_benchmark_tiny_reports_figures():
    args = _parse(benchmark, ["--config", "tiny", "--frames", "5", "--height", "16", "--width", "32", "--steps", "1",
                              "--mode", "streaming", "--device", "cpu", "--json", "--runs", "3"])
    out = benchmark.run(args)
    assert set(out["ms_per_frame"]) == {"encode", "denoise", "decode", "total"}
    assert out["frames_encoded_per_frame"] == 1.0 and out["device"] == "cpu" and out["peak_memory_mb"] > 0
    assert out["runs"] == 3
    for stage in ("encode", "denoise", "decode", "total"):
        assert out["min"]["ms_per_frame"][stage] <= out["ms_per_frame"][stage] <= out["max"]["ms_per_frame"][stage]
