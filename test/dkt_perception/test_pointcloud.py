"""Point clouds: exact back-projection of the synthetic scene, crops, voxel grid, outliers, normals."""

from __future__ import annotations

import numpy as np
import pytest

from dkt_perception.pointcloud import CloudBuilder, CloudConfig, CloudError, back_project, crop_box
from dkt_perception.synthetic_scene import TABLE_LABEL, SyntheticScene, default_scene_config
from dkt_stack.transforms import invert_transform, transform_points, xyz_rpy_to_transform


@pytest.fixture(scope="module")
def scene():
    return SyntheticScene(default_scene_config(seed=0, width=320, height=240))


@pytest.fixture(scope="module")
def frame(scene):
    return scene.render(0)


def test_back_projection_reproduces_the_scene_points(scene, frame):
    xyz, idx = back_project(frame.depth_gt_m, scene.intrinsics)
    assert xyz.dtype == np.float32 and xyz.shape == (idx.size, 3)
    assert idx.size == np.isfinite(frame.depth_gt_m).sum()
    # Table pixels: the back-projected points lie on the table plane (world z = 0) ...
    labels = frame.labels.reshape(-1)[idx]
    world = transform_points(scene.T_world_camera, xyz.astype(np.float64))
    np.testing.assert_allclose(world[labels == TABLE_LABEL, 2], 0.0, atol=2e-6)
    # ... object pixels lie on their object, and every point projects back to its own pixel centre.
    for obj in scene.objects:
        sel = labels == obj.id
        assert np.all(obj.contains_world(world[sel], margin_m=1e-5))
    uv = scene.intrinsics.project(xyz.astype(np.float64))
    W = scene.intrinsics.width
    np.testing.assert_allclose(uv[:, 0], idx % W, atol=1e-3)
    np.testing.assert_allclose(uv[:, 1], idx // W, atol=1e-3)
    np.testing.assert_array_equal(xyz[:, 2], frame.depth_gt_m.reshape(-1)[idx])


def test_stride_maps_back_to_full_resolution_pixels(scene, frame):
    full, full_idx = back_project(frame.depth_gt_m, scene.intrinsics)
    sub, sub_idx = back_project(frame.depth_gt_m, scene.intrinsics, stride=3)
    W = scene.intrinsics.width
    assert np.all((sub_idx % W) % 3 == 0) and np.all((sub_idx // W) % 3 == 0)
    lookup = dict(zip(full_idx.tolist(), range(full_idx.size)))
    np.testing.assert_array_equal(sub, full[[lookup[i] for i in sub_idx.tolist()]])


def test_nan_and_range_are_dropped(scene):
    depth = np.full((scene.intrinsics.height, scene.intrinsics.width), np.nan, np.float32)
    depth[0, :4] = [0.05, 0.5, 2.5, 1.0]
    xyz, idx = back_project(depth, scene.intrinsics, z_min_m=0.1, z_max_m=2.0)
    np.testing.assert_array_equal(idx, [1, 3])
    np.testing.assert_array_equal(xyz[:, 2], [0.5, 1.0])


def test_camera_frame_crop_keeps_exactly_the_points_in_the_box(scene, frame):
    lo, hi = [-0.15, -0.1, 0.5], [0.15, 0.2, 0.8]
    cloud = CloudBuilder(CloudConfig(stride=1, crop_min=lo, crop_max=hi, voxel_size_m=0.0)).build(frame.depth_gt_m, scene.intrinsics, frame.rgb)
    xyz, idx = back_project(frame.depth_gt_m, scene.intrinsics, z_min_m=0.1, z_max_m=2.0)
    inside = crop_box(xyz, lo, hi)
    assert len(cloud) == inside.sum() > 1000
    np.testing.assert_array_equal(cloud.xyz, xyz[inside])
    np.testing.assert_array_equal(cloud.rgb, frame.rgb.reshape(-1, 3)[idx[inside]])
    assert cloud.normals is None and cloud.frame == "camera"


def test_base_frame_crop_with_an_extrinsic(scene, frame):
    # Put the robot base 0.3 m in front of the table centre; the workspace is the table-top slab.
    T_world_base = xyz_rpy_to_transform((0.0, -0.3, 0.0), (0.0, 0.0, 0.3))
    T_base_camera = invert_transform(T_world_base) @ scene.T_world_camera
    cfg = CloudConfig(
        crop_frame="base",
        crop_min=[-0.2, 0.1, 0.005],
        crop_max=[0.3, 0.7, 0.3],
        camera_to_base=T_base_camera.reshape(-1).tolist(),
        output_frame="base",
        voxel_size_m=0.0,
    )
    cloud = CloudBuilder(cfg).build(frame.depth_gt_m, scene.intrinsics)
    assert len(cloud) > 500 and cloud.frame == "base"
    assert np.all(cloud.xyz >= np.array(cfg.crop_min, np.float32)) and np.all(cloud.xyz <= np.array(cfg.crop_max, np.float32))
    # z >= 5 mm above the table: only object points survive, and they lie on the objects.
    world = transform_points(T_world_base, cloud.xyz.astype(np.float64))
    on_object = np.zeros(len(world), bool)
    for obj in scene.objects:
        on_object |= obj.contains_world(world, margin_m=1e-4)
    assert on_object.all()


def test_voxel_grid_gives_one_point_per_occupied_voxel(scene, frame):
    v = 0.01
    cfg = CloudConfig(stride=1, crop_min=[-0.3, -0.3, 0.3], crop_max=[0.3, 0.3, 1.0], voxel_size_m=v)
    dense = CloudBuilder(cfg).build(frame.depth_gt_m, scene.intrinsics, frame.rgb, downsample=False)
    cloud = CloudBuilder(cfg).build(frame.depth_gt_m, scene.intrinsics, frame.rgb)
    # open3d's grid starts half a voxel below the cloud's minimum corner.
    origin = dense.xyz.astype(np.float64).min(axis=0) - v / 2
    keys = np.floor((dense.xyz.astype(np.float64) - origin) / v).astype(np.int64)
    n_voxels = len(np.unique(keys, axis=0))
    assert len(cloud) == pytest.approx(n_voxels, rel=0.002)
    assert len(cloud) < len(dense) / 5
    assert cloud.rgb.shape == (len(cloud), 3) and cloud.rgb.dtype == np.uint8
    lo, hi = dense.xyz.min(axis=0), dense.xyz.max(axis=0)
    assert np.all(cloud.xyz >= lo - 1e-6) and np.all(cloud.xyz <= hi + 1e-6)


def test_statistical_outlier_removal_drops_flying_points(scene, frame):
    depth = frame.depth_gt_m.copy()
    rng = np.random.default_rng(0)
    table = np.flatnonzero((frame.labels == TABLE_LABEL).reshape(-1))
    flying = rng.choice(table, 40, replace=False)
    depth.reshape(-1)[flying] -= 0.15  # isolated points 15 cm in front of the table
    cfg = CloudConfig(voxel_size_m=0.0, outlier_neighbors=20, outlier_std_ratio=2.0, crop_min=[-0.4, -0.4, 0.3], crop_max=[0.4, 0.4, 1.1])
    cloud = CloudBuilder(cfg).build(depth, scene.intrinsics)
    xyz, idx = back_project(depth, scene.intrinsics)
    flying_pts = xyz[np.isin(idx, flying)]
    flying_pts = flying_pts[crop_box(flying_pts, cfg.crop_min, cfg.crop_max)]
    assert len(flying_pts) > 20
    remaining = {tuple(p) for p in cloud.xyz.tolist()}
    assert sum(tuple(p) in remaining for p in flying_pts.tolist()) == 0


def test_normals_of_the_table_point_up_towards_the_camera(scene, frame):
    depth = np.where(frame.labels == TABLE_LABEL, frame.depth_gt_m, np.nan).astype(np.float32)
    cfg = CloudConfig(voxel_size_m=0.01, normals=True, normal_radius_m=0.03, crop_min=[-0.3, -0.3, 0.3], crop_max=[0.3, 0.3, 1.0])
    cloud = CloudBuilder(cfg).build(depth, scene.intrinsics)
    assert cloud.normals.shape == cloud.xyz.shape
    table_normal_camera = scene.T_camera_world[:3, :3] @ np.array([0.0, 0.0, 1.0])
    cos = cloud.normals @ table_normal_camera
    assert np.median(cos) > 0.999
    assert np.all(np.sum(cloud.normals * cloud.xyz, axis=1) < 0)  # facing the camera at the origin


@pytest.mark.parametrize(
    "kwargs",
    [
        {"crop_min": [0.0, 0.0], "crop_max": [1.0, 1.0]},
        {"crop_min": [1.0, 0.0, 0.0], "crop_max": [0.0, 1.0, 1.0]},
        {"camera_to_base": [1.0] * 16},
        {"stride": 0},
        {"z_min_m": 2.0, "z_max_m": 1.0},
    ],
)
def test_bad_config_is_rejected(kwargs):
    with pytest.raises(CloudError):
        CloudConfig(**kwargs)


def test_bad_inputs_are_rejected(scene, frame):
    builder = CloudBuilder(CloudConfig())
    with pytest.raises(CloudError, match="intrinsics"):
        builder.build(frame.depth_gt_m[:10], scene.intrinsics)
    with pytest.raises(CloudError, match="float"):
        builder.build(np.zeros(frame.depth_gt_m.shape, np.uint16), scene.intrinsics)
    with pytest.raises(CloudError, match="rgb"):
        builder.build(frame.depth_gt_m, scene.intrinsics, frame.rgb[..., :2])


def test_back_project_crop_matches_a_crop_of_all_points(scene, frame):
    T = xyz_rpy_to_transform((0.1, -0.2, 0.3), (0.2, -0.1, 0.5))
    lo, hi = np.array([-0.2, -0.5, 0.5]), np.array([0.4, 0.2, 1.2])
    xyz, idx = back_project(frame.depth_gt_m, scene.intrinsics)
    inside = crop_box(transform_points(T, xyz.astype(np.float64)).astype(np.float32), lo, hi)
    cropped, cidx = back_project(frame.depth_gt_m, scene.intrinsics, crop=(lo, hi, T))
    np.testing.assert_array_equal(cropped, xyz[np.isin(idx, cidx)])
    # float32 on-grid transform vs float64 per point: only points within rounding of a face may differ.
    assert abs(len(cidx) - inside.sum()) <= 5 and inside.sum() > 1000
    common = np.intersect1d(cidx, idx[inside])
    assert len(common) >= inside.sum() - 5
