"""Dataset layouts, clip loading, geometry-preserving augmentation and the disparity target."""

import numpy as np
import pytest
import torch

from dkt_perception.depth.preprocess import disparity_to_model
from dkt_training.augment import ClipAugmentation, apply_geometry, crop_box, draw_augmentation, jitter_rgb
from dkt_training.config import AugmentSettings
from dkt_training.cotrain_sampler import CoTrainingSampler
from dkt_training.datasets import (
    ClipBatches,
    clip_to_model,
    depth_to_disparity,
    index_dataset,
    index_manifest,
    load_clip,
    load_manifest,
    sources_of,
)
from dkt_training.depth_io import DataFormatError, read_depth


def test_tiny_dataset_indexes_per_layout(tiny_data):
    video, images = index_manifest(load_manifest(tiny_data))
    assert (video.spec.kind, video.lengths) == ("video", [9, 9])
    assert (images.spec.kind, images.lengths) == ("image", [1, 1, 1])
    rgb, depth, valid = load_clip(video, 1, 3, 5)
    assert rgb.shape == (5, 32, 48, 3) and rgb.dtype == np.uint8
    ref, ref_valid = read_depth(video.sequences[1][3].depth)  # frame 3 of sequence 1, 16-bit mm
    np.testing.assert_array_equal(depth[0][valid[0]], ref[ref_valid])
    assert not valid[:, :2, :3].any() and valid[:, 2:, 3:].all()
    with pytest.raises(IndexError, match="9 frames"):
        load_clip(video, 0, 6, 5)


def test_missing_depth_is_an_error_not_a_skip(tmp_path, tiny_data):
    manifest = load_manifest(tiny_data)
    spec = manifest.datasets[1]
    spec.root = str(tmp_path)
    (tmp_path / "rgb").mkdir()
    (tmp_path / "depth").mkdir()
    (tmp_path / "rgb" / "a-rgb.png").write_bytes(b"")
    spec.rgb_suffix = "-rgb"
    with pytest.raises(DataFormatError, match=r"1 RGB frames .* no depth file .*\['a'\]"):
        index_dataset(spec)


def test_flip_and_crop_move_rgb_and_depth_identically():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (3, 10, 16, 3), dtype=np.uint8)
    depth = rng.uniform(0.5, 2.0, (3, 10, 16)).astype(np.float32)
    valid = rng.random((3, 10, 16)) > 0.2
    aug = ClipAugmentation(flip=True, crop_scale=0.5, crop_y=1.0, crop_x=0.5)
    top, left, h, w = crop_box(10, 16, aug)
    assert (top, left, h, w) == (5, 4, 5, 8)
    r, d, v = apply_geometry(rgb, depth, valid, aug)
    np.testing.assert_array_equal(r, rgb[:, 5:10, 4:12][:, :, ::-1])
    np.testing.assert_array_equal(d, depth[:, 5:10, 4:12][:, :, ::-1])
    np.testing.assert_array_equal(v, valid[:, 5:10, 4:12][:, :, ::-1])
    # a pixel keeps its RGB/depth pairing after the transform
    i = np.unravel_index(np.argmax(d), d.shape)
    j = np.argwhere(depth == d[i])[0]
    np.testing.assert_array_equal(r[i], rgb[tuple(j)])


def test_colour_jitter_touches_rgb_only_and_stays_in_range():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (5, 32, 48, 3), dtype=np.uint8)
    depth = rng.uniform(0.5, 2.0, (5, 32, 48)).astype(np.float32)
    valid = np.ones_like(depth, dtype=bool)
    plain = clip_to_model(rgb, depth, valid, ClipAugmentation(), 32, 48, (2.0, 98.0))
    jit = clip_to_model(rgb, depth, valid, ClipAugmentation(brightness=1.2, contrast=0.8, saturation=0.7), 32, 48, (2.0, 98.0))
    assert torch.equal(plain[1], jit[1])  # depth target untouched
    assert (plain[0] - jit[0]).abs().max() > 0.05
    assert jit[0].min() >= -1.0 and jit[0].max() <= 1.0
    assert plain[0].shape == plain[1].shape == (3, 5, 32, 48)
    assert torch.equal(jitter_rgb(plain[0][None], ClipAugmentation()), plain[0][None])


def test_draws_are_per_clip_seeded_and_flip_survives_disabling_crop():
    s = AugmentSettings()
    a = draw_augmentation(np.random.default_rng(5), s)
    assert a == draw_augmentation(np.random.default_rng(5), s)
    b = draw_augmentation(np.random.default_rng(5), s, crop=False, photometric=False)
    assert b == ClipAugmentation(flip=a.flip)
    flips = [draw_augmentation(np.random.default_rng(i), s).flip for i in range(2000)]
    assert abs(np.mean(flips) - 0.5) < 0.04


def test_disparity_target_masked_percentiles():
    # model-size input (no resampling): percentiles over valid pixels only, outliers clipped, invalid -> -1 (far)
    disp = np.linspace(1.0, 2.0, 96, dtype=np.float32).reshape(1, 1, 96).repeat(16, axis=1)
    disp[0, 0, 0] = 100.0  # an outlier
    valid = np.ones_like(disp, dtype=bool)
    valid[0, :, 50] = False
    lo, hi = np.percentile(disp[valid], [2, 98])
    d, v = torch.from_numpy(disp), torch.from_numpy(valid)
    ref = torch.where(v, ((d - float(lo)) / float(hi - lo)).clamp(0, 1), torch.zeros_like(d)) * 2 - 1
    got = disparity_to_model(disp, 16, 96, valid=valid, percentiles=(2.0, 98.0))
    assert got.shape == (1, 3, 1, 16, 96)
    torch.testing.assert_close(got[0, 0], ref, atol=1e-5, rtol=0)
    assert torch.equal(got[0, 0], got[0, 1]) and torch.equal(got[0, 0], got[0, 2])
    assert got[0, 0, 0, 0, 0] == 1.0 and (got[0, 0, 0, :, 50] == -1.0).all() and (got[0, 0, 0, :, 1] == -1.0).all()
    # default (no percentiles) keeps the min/max normalisation: the outlier maps to 1, the rest squeezes near -1
    legacy = disparity_to_model(disp, 16, 96, valid=valid)
    assert legacy[0, 0, 0, 0, 0] == 1.0 and legacy[0, 0, 0, 1, 95] < -0.97


def test_depth_to_disparity_zero_where_invalid():
    d = np.array([[0.5, np.nan, 2.0]], dtype=np.float32)
    np.testing.assert_array_equal(depth_to_disparity(d, np.array([[True, False, True]])), [[2.0, 0.0, 0.5]])


def test_batches_share_frame_count_and_are_reproducible(tiny_data):
    datasets = index_manifest(load_manifest(tiny_data))
    sampler = CoTrainingSampler(sources_of(datasets), batch_size=2, max_latent_n=2, seed=0)
    batches = ClipBatches(datasets, sampler, 32, 48, AugmentSettings())
    item = batches[3]
    f = sampler.plan(3).frames
    assert item["rgb"].shape == item["depth"].shape == (2, 3, f, 32, 48)
    assert item["depth"].min() >= -1 and item["depth"].max() <= 1
    again = batches[3]
    assert torch.equal(item["rgb"], again["rgb"]) and torch.equal(item["depth"], again["depth"]) and item["keys"] == again["keys"]
