"""The one D435 failure model, per material, against the ground truth: on arrays, and on MuJoCo renders."""

from __future__ import annotations

import numpy as np
import pytest

from dkt_perception.d435_model import D435Config, dropout_fields, frame_raw_depth, static_raw_depth
from dkt_sim.objects import PlacedObject, SceneSpec


def test_static_model_per_material_on_arrays():
    """A flat scene at 0.6 m with one object per class (labels 1..3) in front of a background at 0.9 m."""
    h, w, cfg, seed = 60, 90, D435Config(), 11
    depth = np.full((h, w), 0.9)
    labels = np.zeros((h, w), dtype=np.int32)
    for k, cols in enumerate((slice(5, 25), slice(35, 55), slice(65, 85)), start=1):
        labels[10:50, cols] = k
        depth[10:50, cols] = 0.6
    behind = np.full((h, w), 0.9)
    specular = np.zeros((h, w))
    specular[20:22, 40:42] = 0.9  # a highlight on the metal object
    surfaces = [(1, "translucent"), (2, "reflective"), (3, "diffusive")]
    raw, sigma = static_raw_depth(depth, behind, labels, surfaces, specular, 500.0, cfg, seed)
    field, field2 = dropout_fields(seed, (h, w))
    interior = np.zeros((h, w), dtype=bool)
    interior[13:47] = True  # away from the 1-2 px edge band, where flying pixels and holes are drawn
    for k in (1, 2, 3):
        m = (labels == k) & interior
        m[:, np.flatnonzero(m.any(axis=0))[[0, 1, -2, -1]]] = False  # and from the side edges
        if k == 1:
            through = m & (field < cfg.translucent_see_through)
            hole = m & (field >= cfg.translucent_see_through) & (field < cfg.translucent_see_through + cfg.translucent_hole)
            np.testing.assert_array_equal(raw[through], np.float32(0.9))  # the depth of what lies behind the glass
            assert np.isnan(raw[hole]).all() and through.sum() > 0.4 * m.sum()
            np.testing.assert_array_equal(raw[m & ~through & ~hole], np.float32(0.6))  # the rest sees the object
        elif k == 2:
            hole = m & ((field2 < cfg.reflective_hole) | (specular > 0.3))
            spike = m & ~hole & (field2 < cfg.reflective_hole + cfg.reflective_spike)
            assert np.isnan(raw[hole]).all() and np.isnan(raw[20:22, 40:42]).all()
            factors = raw[spike].astype(np.float64) / 0.6
            assert spike.any() and np.all(np.min(np.abs(factors[:, None] - [0.85, 0.9, 1.12, 1.3]), axis=1) < 1e-6)
            np.testing.assert_array_equal(raw[m & ~hole & ~spike], np.float32(0.6))
        else:
            np.testing.assert_array_equal(raw[m], np.float32(0.6))  # a matte object: exact before noise
    # Noise grows with the square of the range: sigma = z^2 * subpixel / (f * baseline).
    np.testing.assert_allclose(sigma[30, 75], 0.36 * cfg.subpixel / (500.0 * cfg.baseline_m), rtol=1e-6)
    # One frame: millimetre quantised, the random dropouts, deterministic.
    rng = np.random.default_rng(3)
    noise, flicker = rng.standard_normal((h, w)).astype(np.float32), rng.random((h, w)) < 0.05
    frame = frame_raw_depth(raw, sigma, noise, flicker, cfg)
    assert np.isnan(frame[flicker]).all()
    ok = np.isfinite(frame)
    np.testing.assert_allclose(frame[ok] * 1000, np.rint(frame[ok] * 1000), atol=1e-3)
    again, _ = static_raw_depth(depth, behind, labels, surfaces, specular, 500.0, cfg, seed)
    np.testing.assert_array_equal(raw, again)


def _three_materials() -> SceneSpec:
    def obj(kind, shape, surface, x, y):
        return PlacedObject(kind, kind, shape, surface, (0.07, 0.07, 0.10), 0.2, 0.6, (0.8, 0.8, 0.8), x, y, 0.0)

    return SceneSpec([obj("glass", "box", "translucent", 0.52, 0.15), obj("metal", "cylinder", "reflective", 0.52, 0.0),
                      obj("card", "box", "diffusive", 0.52, -0.15)])  # fmt: skip


@pytest.fixture(scope="module")
def frames():
    from dkt_sim.camera import SimCamera
    from dkt_sim.world import SimWorld

    world = SimWorld(_three_materials(), width=240, height=180)
    cam = SimCamera(world, seed=5)
    try:
        cam.snapshot()
        yield cam.capture(0), cam.capture(0), cam.capture(1)
    finally:
        cam.close()


def test_rendered_d435_fails_like_a_d435_on_each_material(frames):
    f, _, _ = frames
    cfg = D435Config()
    table = f.labels == 0
    ok = table & np.isfinite(f.raw_depth_m)
    assert ok.sum() > 0.9 * table.sum()
    assert np.median(np.abs(f.raw_depth_m[ok] - f.depth_gt_m[ok])) < 0.003  # matte table: a few mm of noise
    for label, name in ((1, "glass"), (2, "metal"), (3, "card")):
        m = f.labels == label
        assert m.sum() > 300, name
        raw, gt = f.raw_depth_m[m], f.depth_gt_m[m]
        valid = np.isfinite(raw)
        exact = valid & (np.abs(raw - gt) < 0.01)
        deeper = valid & (raw - gt > 0.02)  # what lies behind the object
        # Fractions over the whole mask, edges included (a 1-2 px band of flying pixels and holes at 240x180).
        if name == "glass":  # mostly the table behind it, or nothing
            assert deeper.mean() > 0.35 and exact.mean() < 0.15 and (~valid).mean() > 0.8 * cfg.translucent_hole
        elif name == "metal":  # holes and a few spikes, the rest right
            assert (~valid).mean() > 0.8 * cfg.reflective_hole and exact.mean() > 0.4 and deeper.mean() < 0.1
        else:  # matte cardboard: right but for the edges
            assert exact.mean() > 0.8 and deeper.mean() < 0.06


def test_rendered_frames_are_deterministic_and_aligned_to_colour(frames):
    a, b, c = frames
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.raw_depth_m, b.raw_depth_m)
    assert not np.array_equal(a.raw_depth_m, c.raw_depth_m, equal_nan=True)  # a new frame: new noise, same scene
    np.testing.assert_array_equal(a.depth_gt_m, c.depth_gt_m)
    assert a.rgb.shape[:2] == a.raw_depth_m.shape == a.labels.shape == (180, 240)
    ok = np.isfinite(a.raw_depth_m)
    np.testing.assert_allclose(a.raw_depth_m[ok] * 1000, np.rint(a.raw_depth_m[ok] * 1000), atol=1e-3)  # 16UC1 millimetres
