"""The synthetic tabletop: exact geometry, determinism and the D435 failure model."""

from __future__ import annotations

import numpy as np
import pupil_apriltags
import pytest

from dkt_perception.synthetic_scene import (
    BACKGROUND_LABEL,
    TABLE_LABEL,
    ObjectSpec,
    SceneConfig,
    SyntheticScene,
    TagSpec,
    default_scene,
    default_scene_config,
    look_at_transform,
    polygon_coverage,
    tag_texture,
)
from dkt_stack.transforms import invert_transform, transform_points


@pytest.fixture(scope="module")
def scene():
    return default_scene(seed=3)


@pytest.fixture(scope="module")
def frame(scene):
    return scene.render(0)


def test_default_scene_has_tags_and_every_surface(scene, frame):
    assert len(scene.tags) >= 2
    assert {o.surface for o in scene.objects} == {"diffusive", "transparent", "reflective"}
    assert frame.rgb.shape == (480, 640, 3) and frame.rgb.dtype == np.uint8
    assert frame.depth_gt_m.dtype == np.float32 and frame.raw_depth_m.dtype == np.float32
    assert frame.labels.dtype == np.int32
    labels = set(np.unique(frame.labels).tolist())
    assert {TABLE_LABEL, BACKGROUND_LABEL} <= labels
    for obj in scene.objects:
        assert obj.id in labels, f"object {obj.name} not visible"
    assert scene.intrinsics.width == 640 and scene.intrinsics.height == 480


def test_table_depth_is_the_exact_ray_plane_intersection(scene, frame):
    K = scene.intrinsics
    T_wc = scene.T_world_camera
    v, u = np.nonzero(frame.labels == TABLE_LABEL)
    rays = np.stack([(u - K.cx) / K.fx, (v - K.cy) / K.fy, np.ones(u.size)], axis=1)
    d_world = rays @ T_wc[:3, :3].T
    t = -T_wc[2, 3] / d_world[:, 2]  # table top z = 0 (tags lie on it)
    np.testing.assert_allclose(frame.depth_gt_m[v, u], t, rtol=1e-6)
    assert np.percentile(t, 1) > 0.45 and np.percentile(t, 99) < 1.2


def test_box_top_depth_matches_its_pose(scene, frame):
    box = next(o for o in scene.objects if o.kind == "box" and o.surface == "diffusive")
    top_centre_camera = transform_points(box.T_camera_object, np.array([[0.0, 0.0, box.height]]))
    u, v = scene.intrinsics.project(top_centre_camera)[0]
    ui, vi = round(float(u)), round(float(v))
    assert frame.labels[vi, ui] == box.id
    # The top is the plane z_world = height: exact depth at the pixel centre from the ray.
    K, T_wc = scene.intrinsics, scene.T_world_camera
    d = T_wc[:3, :3] @ np.array([(ui - K.cx) / K.fx, (vi - K.cy) / K.fy, 1.0])
    expected = (box.height - T_wc[2, 3]) / d[2]
    assert frame.depth_gt_m[vi, ui] == pytest.approx(expected, rel=1e-6)


def test_render_is_deterministic_and_noise_changes_per_frame(scene):
    a0 = scene.render(0)
    b0 = default_scene(seed=3).render(0)
    np.testing.assert_array_equal(a0.rgb, b0.rgb)
    np.testing.assert_array_equal(a0.raw_depth_m, b0.raw_depth_m)
    a1 = scene.render(1)
    np.testing.assert_array_equal(a0.depth_gt_m, a1.depth_gt_m)
    assert not np.array_equal(a0.rgb, a1.rgb)
    assert a1.stamp_ns - a0.stamp_ns == round(1e9 / 30)
    other = default_scene(seed=4).render(0)
    assert not np.array_equal(np.nan_to_num(a0.raw_depth_m), np.nan_to_num(other.raw_depth_m))


def test_raw_depth_fails_like_a_d435(scene, frame):
    gt, raw, labels = frame.depth_gt_m.astype(np.float64), frame.raw_depth_m.astype(np.float64), frame.labels
    valid = np.isfinite(raw)
    # Millimetre quantisation.
    np.testing.assert_allclose(raw[valid] * 1000, np.rint(raw[valid] * 1000), atol=1e-3)
    # The table is measured well: small error, noise growing with distance (~z^2).
    table = (labels == TABLE_LABEL) & valid
    err = raw - gt
    assert np.median(np.abs(err[table])) < 0.002
    near = table & (gt < 0.6)
    far = table & (gt > 0.9)
    assert np.std(err[far]) > 1.8 * np.std(err[near])
    for obj in scene.objects:
        m = labels == obj.id
        holes = np.mean(~valid[m])
        if obj.surface == "transparent":
            # Most measured pixels on glass are the background behind it (deeper than the surface).
            measured = m & valid
            through = np.mean(raw[measured] > gt[measured] + 0.01)
            assert through > 0.6, obj.name
            assert holes > 0.15, obj.name
        elif obj.surface == "reflective":
            assert holes > 0.25, obj.name
            measured = m & valid
            assert np.mean(np.abs(err[measured]) > 0.03) > 0.02, "reflective surfaces should show depth spikes"
        else:
            assert holes < 0.2, obj.name
    # Edges: holes or flying pixels where the true depth jumps.
    assert np.mean(~valid) > 0.02


def test_tags_render_detectably_at_their_poses(scene, frame):
    det = pupil_apriltags.Detector(families="tag36h11", quad_decimate=1.0)
    found = {
        d.tag_id: d for d in det.detect(frame.rgb.mean(axis=2).astype(np.uint8), True, scene.intrinsics.as_tuple, scene.tags[0].size_m)
    }
    assert set(found) == {t.id for t in scene.tags}
    for tag in scene.tags:
        t = found[tag.id].pose_t.reshape(3)
        assert np.linalg.norm(t - tag.T_camera_tag[:3, 3]) < 0.004


def test_objects_in_world_and_camera_frames_agree(scene, frame):
    for obj in scene.objects:
        np.testing.assert_allclose(scene.T_world_camera @ obj.T_camera_object, obj.T_world_object, atol=1e-12)
        centre_world = transform_points(obj.T_world_object, np.array([[0.0, 0.0, obj.height / 2]]))
        assert obj.contains_world(centre_world)[0]
        centre_cam = transform_points(invert_transform(scene.T_world_camera), centre_world)
        assert scene.object_at(centre_cam)[0] == obj.id
    # Points back-projected from an object's pixels lie on that object (margin 1 mm).
    obj = scene.objects[0]
    v, u = np.nonzero(frame.labels == obj.id)
    z = frame.depth_gt_m[v, u].astype(np.float64)
    K = scene.intrinsics
    pts = np.stack([(u - K.cx) / K.fx * z, (v - K.cy) / K.fy * z, z], axis=1)
    assert np.all(scene.object_at(pts, margin_m=0.001) == obj.id)
    table_point = transform_points(invert_transform(scene.T_world_camera), np.array([[0.5, -0.4, 0.0]]))
    assert scene.object_at(table_point)[0] == 0


def test_camera_motion_moves_the_camera():
    cfg = default_scene_config(camera_motion=True, motion_amplitude_m=0.02, width=160, height=120)
    s = SyntheticScene(cfg)
    f0, f1 = s.render(0), s.render(10)
    assert np.linalg.norm(f1.T_world_camera[:3, 3] - f0.T_world_camera[:3, 3]) > 0.005
    assert not np.allclose(np.nan_to_num(f0.depth_gt_m), np.nan_to_num(f1.depth_gt_m))


def test_look_at_builds_an_optical_frame():
    T = look_at_transform((0.0, -1.0, 0.0), (0.0, 0.0, 0.0))
    np.testing.assert_allclose(T[:3, 2], (0.0, 1.0, 0.0), atol=1e-12)  # z forward
    np.testing.assert_allclose(T[:3, 0], (1.0, 0.0, 0.0), atol=1e-12)  # x right
    np.testing.assert_allclose(T[:3, 1], (0.0, 0.0, -1.0), atol=1e-12)  # y down
    down = look_at_transform((0.0, 0.0, 1.0), (0.0, 0.0, 0.0))
    np.testing.assert_allclose(down[:3, :3] @ down[:3, :3].T, np.eye(3), atol=1e-12)


@pytest.mark.parametrize(
    "cfg",
    [
        SceneConfig(tags=[TagSpec(id=1), TagSpec(id=1)]),
        SceneConfig(objects=[ObjectSpec(kind="sphere")]),
        SceneConfig(objects=[ObjectSpec(surface="glass")]),
        SceneConfig(hfov_deg=0.0),
    ],
)
def test_bad_configs_are_rejected(cfg):
    with pytest.raises(ValueError):
        SyntheticScene(cfg)


def test_scene_config_round_trips_through_yaml(tmp_path):
    import yaml

    from dkt_stack.config import load_config, to_dict

    cfg = default_scene_config(seed=9)
    path = tmp_path / "scene.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    loaded = load_config(SceneConfig, path)
    assert loaded == cfg
    np.testing.assert_array_equal(SyntheticScene(loaded).render(0).rgb, SyntheticScene(cfg).render(0).rgb)


def _supersampled_coverage(quad: np.ndarray, shape: tuple[int, int], n: int = 64) -> np.ndarray:
    """Brute-force reference: fraction of n x n sample points per pixel inside the convex quad (either winding)."""
    h, w = shape
    offsets = (np.arange(n) + 0.5) / n - 0.5
    y = (np.arange(h)[:, None] + offsets[None, :]).reshape(-1)
    x = (np.arange(w)[:, None] + offsets[None, :]).reshape(-1)
    xx, yy = np.meshgrid(x, y)
    sides = []
    for k in range(4):
        p, q = quad[k], quad[(k + 1) % 4]
        sides.append((q[0] - p[0]) * (yy - p[1]) - (q[1] - p[1]) * (xx - p[0]))
    sides = np.stack(sides)
    inside = np.all(sides >= 0, axis=0) | np.all(sides <= 0, axis=0)
    return inside.reshape(h, n, w, n).mean(axis=(1, 3))


def test_polygon_coverage_is_the_exact_pixel_area():
    rng = np.random.default_rng(0)
    quads = []
    for k in range(6):
        centre = rng.uniform(3.0, 9.0, 2)
        angles = np.sort(rng.uniform(0.0, 2 * np.pi, 4))
        quad = centre + rng.uniform(1.0, 4.0, 2) * np.stack([np.cos(angles), np.sin(angles)], axis=1)  # on an ellipse: convex
        quads.append(quad if k % 2 else quad[::-1])  # both windings
    quads.append(np.array([[2.5, 3.5], [5.5, 3.5], [5.5, 4.5], [2.5, 4.5]]))  # pixel-aligned: exactly 0 or 1
    for quad in quads:
        cov = polygon_coverage(quad[None], (13, 13))
        area = 0.5 * abs(np.sum(quad[:, 0] * np.roll(quad[:, 1], -1) - np.roll(quad[:, 0], -1) * quad[:, 1]))
        assert cov.sum() == pytest.approx(area, abs=1e-9)
        assert cov.min() >= -1e-12 and cov.max() <= 1 + 1e-12
        np.testing.assert_allclose(cov, _supersampled_coverage(quad, (13, 13)), atol=2.0 / 64)
    aligned = np.zeros((13, 13))
    aligned[4, 3:6] = 1.0
    np.testing.assert_array_equal(polygon_coverage(quads[-1][None], (13, 13)), aligned)
    # Partly outside the image: only the part inside is counted, exactly.
    off = np.array([[-3.0, -2.0], [4.0, -2.0], [4.0, 2.0], [-3.0, 2.0]])
    assert polygon_coverage(off[None], (6, 6)).sum() == pytest.approx(4.5 * 2.5, abs=1e-9)


def test_tag_pattern_has_the_exact_ink_area(scene):
    # Each printed cell projects to an exact quadrilateral: the rendered ink area (in px^2) is their total area.
    for tag in scene.tags:
        pattern = scene._tag_pattern(tag, scene.T_world_camera).astype(np.float64)
        ink_px2 = np.sum((257.0 - pattern) / (257.0 - 22.0))
        s = tag.size_m / 8  # one cell, m
        total = 0.0
        for r, c in zip(*np.nonzero(tag_texture(tag.id, 1) == 0)):
            x0, y0 = -5 * s + c * s, 5 * s - r * s
            cell = np.array([[x0, y0, 0.0], [x0 + s, y0, 0.0], [x0 + s, y0 - s, 0.0], [x0, y0 - s, 0.0]])
            p = scene.intrinsics.project(transform_points(tag.T_camera_tag, cell))
            total += 0.5 * abs(np.sum(p[:, 0] * np.roll(p[:, 1], -1) - np.roll(p[:, 0], -1) * p[:, 1]))
        assert ink_px2 == pytest.approx(total, rel=1e-7)
