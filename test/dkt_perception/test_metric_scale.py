"""Metric depth from affine-invariant disparity + AprilTags, against synthetic ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from dkt_perception.metric_scale import (
    MetricDepthEstimator,
    MetricScaleConfig,
    MetricScaleError,
    RawAnchorConfig,
    ScaleFilter,
    ScaleFilterConfig,
    ScaleFit,
    ScaleFitConfig,
    fit_scale_shift,
    metric_depth,
    raw_depth_anchors,
)
from dkt_perception.synthetic_scene import SceneConfig, SyntheticScene, TagSpec, default_scene, default_scene_config
from dkt_perception.tags import TagConfig

# DKT's disparity is an unknown affine function of inverse depth: r = A / z + B.
A, B = 0.37, 0.12
TRUE_SCALE, TRUE_SHIFT = 1.0 / A, -B / A


def affine_disparity(depth_m: np.ndarray) -> np.ndarray:
    return (A / depth_m + B).astype(np.float32)


@pytest.fixture(scope="module")
def scene():
    return default_scene(seed=2)


@pytest.fixture(scope="module")
def frame(scene):
    return scene.render(0)


def evaluation_mask(gt: np.ndarray) -> np.ndarray:
    return (gt >= 0.4) & (gt <= 1.0)


def estimator(**overrides) -> MetricDepthEstimator:
    cfg = MetricScaleConfig(tags=TagConfig(ids=[0, 1, 2], sizes_m=[0.06]), **overrides)
    return MetricDepthEstimator(cfg)


@pytest.mark.parametrize("ids", [[0, 1], [0, 1, 2]])
def test_exact_affine_disparity_gives_millimetre_depth(scene, frame, ids):
    gt = frame.depth_gt_m
    est = MetricDepthEstimator(MetricScaleConfig(tags=TagConfig(ids=ids, sizes_m=[0.06])))
    res = est.update(affine_disparity(gt), frame.rgb, scene.intrinsics, frame.stamp_ns)
    assert res.valid and res.depth_m is not None
    assert res.fit.mode == "affine"
    assert sorted(d.id for d in res.tags) == ids
    m = evaluation_mask(gt)
    assert m.sum() > 100_000
    err = np.abs(res.depth_m[m].astype(np.float64) - gt[m])
    assert np.nanmedian(err) <= 0.001
    assert np.isfinite(res.depth_m[m]).mean() > 0.999
    assert res.depth_m.dtype == np.float32 and res.depth_m.shape == gt.shape
    assert res.fit.residual_median_mm < 1.0 and res.fit.inlier_ratio > 0.9


def test_three_percent_disparity_noise_stays_within_one_percent(scene, frame):
    gt = frame.depth_gt_m.astype(np.float64)
    rng = np.random.default_rng(5)
    clean = affine_disparity(gt)
    noisy = (clean * (1.0 + 0.03 * rng.standard_normal(gt.shape))).astype(np.float32)
    res = estimator().update(noisy, frame.rgb, scene.intrinsics, frame.stamp_ns)
    assert res.valid and res.fit.mode == "affine"
    m = evaluation_mask(gt)
    # The recovered scale/shift: applied to the noise-free disparity, within 1% of the truth...
    z_clean = res.fit.depth_at(clean[m])
    assert np.nanmedian(np.abs(z_clean - gt[m]) / gt[m]) <= 0.01
    # ... and the published depth within 1% of what the true scale/shift make of the same noisy disparity.
    z_ideal = 1.0 / (TRUE_SCALE * noisy[m].astype(np.float64) + TRUE_SHIFT)
    assert np.nanmedian(np.abs(res.depth_m[m] - z_ideal) / z_ideal) <= 0.01


def test_single_fronto_parallel_tag_takes_the_scale_only_path():
    cfg = SceneConfig(
        width=320,
        height=240,
        camera_position=(0.0, 0.0, 0.6),
        camera_look_at=(0.0, 0.0, 0.0),
        tags=[TagSpec(id=5, size_m=0.08, position=(0.0, 0.0, 0.0))],
    )
    s = SyntheticScene(cfg)
    f = s.render(0)
    r = affine_disparity(f.depth_gt_m)
    est = MetricDepthEstimator(MetricScaleConfig(tags=TagConfig(ids=[5], sizes_m=[0.08]), fit=ScaleFitConfig(default_shift=TRUE_SHIFT)))
    res = est.update(r, f.rgb, s.intrinsics, f.stamp_ns)
    assert res.valid
    assert res.fit.mode == "scale_only"
    assert res.fit.shift == TRUE_SHIFT
    assert res.fit.inverse_depth_spread < 0.01
    # With the right prior shift the scale is recovered and the tag's depth is right.
    assert res.fit.scale == pytest.approx(TRUE_SCALE, rel=0.005)
    # The same frame forced through the affine solver would be ill-posed: the condition number says so.
    assert res.fit.condition_number > 50 or res.fit.inverse_depth_spread < 0.01


def test_no_tag_means_invalid_after_the_timeout(scene, frame):
    no_tags = SyntheticScene(default_scene_config(seed=2, tags=[]))
    est = estimator(filter=ScaleFilterConfig(tag_timeout_s=0.5))
    gt = frame.depth_gt_m
    r = affine_disparity(gt)
    res = est.update(r, frame.rgb, scene.intrinsics, frame.stamp_ns)
    assert res.valid
    dark = no_tags.render(1)
    held = est.update(r, dark.rgb, scene.intrinsics, frame.stamp_ns + 300_000_000)
    assert held.valid and held.fit is None and "holding" in held.reason
    assert np.nanmedian(np.abs(held.depth_m - gt)) < 0.002
    stale = est.update(r, dark.rgb, scene.intrinsics, frame.stamp_ns + 600_000_000)
    assert not stale.valid and stale.depth_m is None and stale.scale is None
    assert "tag_timeout_s" in stale.reason
    # A fresh estimator that never saw a tag is invalid from the first frame.
    first = estimator().update(r, dark.rgb, scene.intrinsics, frame.stamp_ns)
    assert not first.valid and first.depth_m is None and "no scale yet" in first.reason


def test_raw_depth_through_glass_does_not_pull_the_fit(scene, frame):
    gt = frame.depth_gt_m.astype(np.float64)
    r = affine_disparity(frame.depth_gt_m)
    raw = frame.raw_depth_m
    labels = frame.labels
    glass = np.isin(labels, [o.id for o in scene.objects if o.surface == "transparent"])
    metal = np.isin(labels, [o.id for o in scene.objects if o.surface == "reflective"])
    # The sensor really is wrong there: most measured glass pixels see the table behind.
    measured = glass & np.isfinite(raw)
    assert np.median(raw[measured] - gt[measured]) > 0.02

    est = estimator(raw=RawAnchorConfig(enabled=True, weight=1.0))
    res = est.update(r, frame.rgb, scene.intrinsics, frame.stamp_ns, raw_depth_m=raw)
    assert res.valid and res.fit.n_raw_anchors > 500 and res.fit.n_raw_rejected > 0
    m = evaluation_mask(gt)
    err = np.abs(res.depth_m.astype(np.float64) - gt)
    assert np.nanmedian(err[m]) <= 0.0015
    assert np.nanmedian(err[glass]) <= 0.002
    assert np.nanmedian(err[metal]) <= 0.002

    # The gate is what protects the fit: raw anchors on the glass alone, ungated, give a wrong scale.
    anchors, _ = raw_depth_anchors(raw, r, RawAnchorConfig(stride=1, max_local_deviation=1.0), None, 1.0, exclude=~glass)
    assert len(anchors) > 200
    bad = fit_scale_shift(r[anchors.v, anchors.u], anchors.depth_m, anchors.weight)
    assert np.nanmedian(np.abs(bad.depth_at(r[glass]) - gt[glass])) > 0.01


def test_fit_recovers_exact_parameters_and_resists_outliers():
    rng = np.random.default_rng(0)
    z = rng.uniform(0.4, 1.0, 2000)
    r = A / z + B
    fit = fit_scale_shift(r, z)
    assert fit.mode == "affine"
    assert fit.scale == pytest.approx(TRUE_SCALE, rel=1e-9)
    assert fit.shift == pytest.approx(TRUE_SHIFT, rel=1e-9, abs=1e-12)
    assert fit.residual_median_mm < 1e-6 and fit.inlier_ratio == 1.0
    # 10% gross outliers (+-5..30 cm): the Huber IRLS keeps the fit within a millimetre.
    z_bad = z.copy()
    idx = rng.choice(z.size, 200, replace=False)
    z_bad[idx] += rng.choice([-1, 1], 200) * rng.uniform(0.05, 0.3, 200)
    robust = fit_scale_shift(r, z_bad)
    assert np.max(np.abs(robust.depth_at(r) - z)) < 0.001
    assert robust.inlier_ratio == pytest.approx(0.9, abs=0.01)


def test_fit_degenerate_inputs():
    z = np.full(500, 0.7)
    r = A / z + B
    fit = fit_scale_shift(r, z, prior_shift=TRUE_SHIFT)
    assert fit.mode == "scale_only" and fit.shift == TRUE_SHIFT
    assert fit.scale == pytest.approx(TRUE_SCALE, rel=1e-9)
    assert fit_scale_shift(r[:5], z[:5]) is None  # too few anchors
    assert fit_scale_shift(-r, z, prior_shift=0.0) is None  # disparity falling with inverse depth: no positive scale
    with pytest.raises(MetricScaleError, match="one value per anchor"):
        fit_scale_shift(r, z[:-1])


def test_metric_depth_values_and_range():
    r = np.array([[1.0, 0.5, 0.0, -1.0]], dtype=np.float32)
    z = metric_depth(r, 2.0, 0.5, z_min_m=0.3, z_max_m=1.5)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z[0, :2], [0.4, 1.0 / 1.5], rtol=1e-6)
    assert np.isnan(z[0, 2])  # 1 / 0.5 = 2 m > z_max
    assert np.isnan(z[0, 3])  # s r + t < 0


def make_fit(scale, shift, r_range=(0.5, 0.9)):
    return ScaleFit(scale, shift, "affine", 100, 100, 1.0, 0.1, 0.1, 0.1, 10.0, 0.1, r_range)


def test_filter_smooths_gates_resets_and_times_out():
    f = ScaleFilter(ScaleFilterConfig(alpha=0.5, gate_rel=0.05, reset_after=3, tag_timeout_s=1.0))
    t0 = 1_000_000_000
    assert f.update(make_fit(2.0, 0.0), t0) == (True, "initialised from this frame's affine fit")
    valid, _ = f.update(make_fit(2.04, 0.0), t0 + 10)
    assert valid and f.scale == pytest.approx(2.02)
    # A 50% jump is an outlier: kept out, twice ...
    for k in range(2):
        valid, reason = f.update(make_fit(3.0, 0.0), t0 + 20 + k)
        assert valid and "outlier" in reason and f.scale == pytest.approx(2.02)
    # ... and the third consecutive one is a real change: reset.
    valid, reason = f.update(make_fit(3.0, 0.0), t0 + 30)
    assert valid and "reset" in reason and f.scale == 3.0
    valid, reason = f.update(None, t0 + 30 + 999_000_000)
    assert valid and "holding" in reason
    valid, reason = f.update(None, t0 + 30 + 1_001_000_000)
    assert not valid and "tag_timeout_s" in reason
    # Time going backwards (a bag restarted) forgets everything.
    valid, reason = f.update(None, t0)
    assert not valid and not f.initialised


def test_bad_shapes_raise(scene, frame):
    est = estimator()
    with pytest.raises(MetricScaleError, match="disparity"):
        est.update(np.zeros((10, 10), np.float32), frame.rgb, scene.intrinsics, 0)
    with pytest.raises(MetricScaleError, match="raw_depth_m"):
        est.update(affine_disparity(frame.depth_gt_m), frame.rgb, scene.intrinsics, 0, raw_depth_m=np.zeros((4, 4)))
    with pytest.raises(ValueError, match="z_min_m"):
        MetricScaleConfig(z_min_m=2.0, z_max_m=1.0)
