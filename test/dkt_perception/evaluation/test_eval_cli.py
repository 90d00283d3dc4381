"""``dkt-stack eval`` on a replayed bag and on ClearPose / DREDS fixture folders, against reference computations."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from dkt_perception.evaluation.datasets import DatasetError, detect_layout, list_sequences, load_sequence
from dkt_perception.evaluation.metrics import evaluate_sequence
from dkt_perception.replay.bag_replay import replay_bag
from dkt_perception.replay.synthetic_bag import write_synthetic_bag
from dkt_perception.synthetic_scene import default_scene
from dkt_stack.cli import main


def read_json(path):
    return json.loads(path.read_text())


def test_eval_replayed_bag_matches_a_reference_computation(tmp_path, capsys):
    scene = default_scene(1, width=640, height=480)
    bag = write_synthetic_bag(tmp_path / "in", 3, scene=scene, storage="mcap")
    replay_bag(bag, tmp_path / "replayed", progress=False)
    assert main(["eval", str(tmp_path / "replayed"), "--out", str(tmp_path / "res")]) == 0
    table = capsys.readouterr().out
    assert "/camera/depth/relative (disparity)" in table and "/camera/depth/metric (none)" in table
    report = read_json(tmp_path / "res" / "metrics.json")
    rows = {r["name"]: r for r in report["rows"]}

    frames = [scene.render(i) for i in range(3)]
    gt = np.stack([f.depth_gt_m for f in frames])
    ref = evaluate_sequence(np.stack([1.0 / f.raw_depth_m for f in frames]).astype(np.float32), gt, "disparity")
    rel = rows["/camera/depth/relative (disparity)"]
    for key, value in ref.row().items():
        assert rel[key] == pytest.approx(value, rel=1e-9, abs=1e-12)
    assert rel["valid_pixels"] == ref.valid_pixels and rel["frames"] == 3 and rel["coverage"] == 1.0
    assert rel["scale"] == pytest.approx(1.0, abs=0.05) and rel["shift"] == pytest.approx(0.0, abs=0.05)  # raw 1/z is nearly metric (glass pulls the fit)
    metric = rows["/camera/depth/metric (none)"]
    assert metric["coverage"] == 1.0 and metric["space"] == "none" and metric["scale"] == 1.0
    assert metric["delta_1.05"] > 0.9 and metric["rmse_cm"] < 10.0  # tag-scaled raw depth: flying pixels at edges dominate the RMSE

    with open(tmp_path / "res" / "metrics.csv", newline="") as f:
        lines = list(csv.DictReader(f))
    assert [r["name"] for r in lines] == [r["name"] for r in report["rows"]]
    assert float(lines[0]["rel_pct"]) == pytest.approx(report["rows"][0]["rel_pct"])
    assert not list((tmp_path / "res").glob(".*.tmp"))  # atomic writes leave no temp files

    # the unreplayed bag has ground truth but nothing to evaluate: a clear error
    assert main(["eval", str(bag)]) == 1
    assert "replay the bag first" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "replayed"), "--pred", "/camera/depth/relative:sideways"]) == 1
    assert "TOPIC:SPACE" in capsys.readouterr().err


def _clearpose(root, scene_specs):
    """<root>/<set>/<scene>/<frame:06d>-{color,depth,depth_true}.png (+ -meta.mat with factor_depth)."""
    from scipy.io import savemat

    truth = {}
    for (set_name, scene_name, seed, factor) in scene_specs:
        folder = root / set_name / scene_name
        folder.mkdir(parents=True)
        scene = default_scene(seed, width=64, height=48)
        for i in range(2):
            f = scene.render(i)
            stem = f"{i:06d}"
            cv2.imwrite(str(folder / f"{stem}-color.png"), f.rgb[:, :, ::-1])
            for suffix, depth in (("-depth.png", f.raw_depth_m), ("-depth_true.png", f.depth_gt_m)):
                cv2.imwrite(str(folder / f"{stem}{suffix}"), np.where(np.isfinite(depth), np.rint(depth * factor), 0).astype(np.uint16))
            savemat(str(folder / f"{stem}-meta.mat"), {"factor_depth": np.array([[factor]], dtype=np.float64)})
            truth.setdefault(f"{set_name}/{scene_name}", []).append(f)
    return truth


def test_clearpose_fixture_eval_with_the_raw_backend(tmp_path, capsys):
    root = tmp_path / "clearpose"
    truth = _clearpose(root, [("set1", "scene1", 0, 1000.0), ("set1", "scene2", 1, 4000.0)])
    assert detect_layout(root) == "clearpose"
    seqs = list_sequences(root)
    assert [s.name for s in seqs] == ["set1/scene1", "set1/scene2"] and [s.depth_scale for s in seqs] == [1000.0, 4000.0]
    loaded = load_sequence(seqs[1])
    gt_ref = np.stack([f.depth_gt_m for f in truth["set1/scene2"]])
    ok = np.isfinite(gt_ref)
    assert np.array_equal(np.isfinite(loaded.gt_depth_m), ok)
    assert np.abs(loaded.gt_depth_m[ok] - gt_ref[ok]).max() <= 0.5 / 4000 + 1e-6  # quantised by factor_depth from -meta.mat
    assert np.array_equal(loaded.rgb[0], truth["set1/scene2"][0].rgb)

    assert main(["eval", str(root), "--backend", "raw", "--out", str(tmp_path / "res")]) == 0
    out = capsys.readouterr().out
    assert "set1/scene1" in out and "mean" in out
    rows = {r["name"]: r for r in read_json(tmp_path / "res" / "metrics.json")["rows"]}
    for s in seqs:  # equal to metrics computed by hand from the loaded arrays
        seq = load_sequence(s)
        ref = evaluate_sequence(1.0 / seq.raw_depth_m, seq.gt_depth_m, "disparity")
        for key, value in ref.row().items():
            assert rows[s.name][key] == pytest.approx(value, rel=1e-6, abs=1e-9)
        assert rows[s.name]["delta_1.25"] > 0.85
    assert rows["mean"]["rmse_cm"] == pytest.approx((rows["set1/scene1"]["rmse_cm"] + rows["set1/scene2"]["rmse_cm"]) / 2)


def test_dreds_fixture_npy_depth_and_exr_message(tmp_path, capsys):
    root = tmp_path / "dreds"
    scene = default_scene(2, width=64, height=48)
    folder = root / "00000"
    folder.mkdir(parents=True)
    frames = [scene.render(i) for i in range(3)]
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}_color.png"), f.rgb[:, :, ::-1])
        np.save(folder / f"{i:04d}_depth_120.npy", np.nan_to_num(f.depth_gt_m, nan=0.0))
        np.save(folder / f"{i:04d}_simDepthImage.npy", np.repeat(np.nan_to_num(f.raw_depth_m, nan=0.0)[:, :, None], 3, axis=2))  # 3 channels
    assert detect_layout(root) == "dreds"
    seq = load_sequence(list_sequences(root)[0])
    assert seq.name == "00000" and seq.rgb.shape == (3, 48, 64, 3)
    assert np.array_equal(seq.gt_depth_m, np.stack([f.depth_gt_m for f in frames]), equal_nan=True)
    assert np.array_equal(seq.raw_depth_m, np.stack([f.raw_depth_m for f in frames]), equal_nan=True)

    assert main(["eval", str(root), "--backend", "raw", "--layout", "dreds", "--max-frames", "2", "--out", str(tmp_path / "res")]) == 0
    rows = {r["name"]: r for r in read_json(tmp_path / "res" / "metrics.json")["rows"]}
    ref = evaluate_sequence(1.0 / seq.raw_depth_m[:2], seq.gt_depth_m[:2], "disparity")
    assert rows["00000"]["frames"] == 2 and rows["00000"]["rel_pct"] == pytest.approx(ref.rel_pct, rel=1e-6)
    capsys.readouterr()

    (folder / "0000_depth_120.npy").unlink()
    (folder / "0000_depth_120.exr").write_bytes(b"not an exr")
    with pytest.raises(DatasetError, match=r"0000_depth_120\.npy"):
        load_sequence(list_sequences(root)[0])
    (tmp_path / "empty").mkdir()
    assert main(["eval", str(tmp_path / "empty")]) == 1
    assert "neither a ClearPose" in capsys.readouterr().err
