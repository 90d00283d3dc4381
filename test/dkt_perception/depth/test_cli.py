"""``dkt-stack depth`` and ``dkt-stack weights check`` on tiny inputs (random tiny weights, nothing downloaded)."""

import argparse
import json

import cv2
import numpy as np

from dkt_perception.depth import benchmark, cli, weights_cli


def _parse(module, argv):
    p = argparse.ArgumentParser()
    module.add_arguments(p)
    return p.parse_args(argv)


def test_depth_cli_on_image_folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        cv2.imwrite(str(src / f"f{i}.png"), np.random.default_rng(i).integers(0, 256, (18, 26, 3), dtype=np.uint8))
    args = _parse(cli, [str(src), "--out", str(tmp_path / "out"), "--model", "tiny", "--random-weights", "--height", "16",
                        "--width", "32", "--steps", "1", "--device", "cpu"])
    assert cli.run(args) == 0
    data = np.load(tmp_path / "out" / "depth.npz")
    assert data["disparity"].shape == (3, 18, 26) and data["disparity"].dtype == np.float32
    assert list(data["names"]) == ["f0.png", "f1.png", "f2.png"]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["f0_disparity.png", "f1_disparity.png", "f2_disparity.png"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.run(_parse(cli, [str(empty), "--out", str(tmp_path / "o2"), "--model", "tiny", "--random-weights"])) == 1


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
                              "--mode", "streaming", "--device", "cpu", "--json"])
    out = benchmark.run(args)
    assert set(out["ms_per_frame"]) == {"encode", "denoise", "decode", "total"}
    assert out["frames_encoded_per_frame"] == 1.0 and out["device"] == "cpu" and out["peak_memory_mb"] > 0
