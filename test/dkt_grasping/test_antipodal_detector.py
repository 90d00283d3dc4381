"""The open antipodal grasp detector on synthetic tabletop clouds of boxes and cylinders."""

import numpy as np
import pytest

from dkt_grasping.grasp_detection import CloudError, EmptyCloudError, create_grasp_detector
from dkt_grasping.grasp_detection.antipodal import AntipodalConfig
from dkt_grasping.grasp_detection.tabletop import ransac_plane
from dkt_grasping.gripper import GripperConfig
from dkt_grasping.tabletop_clouds import Box, Cylinder, look_at_camera, tabletop_cloud, to_camera_frame
from dkt_grasping.workspace import WorkspaceLimits

OBJECTS = [Box(0.35, 0.0, (0.04, 0.06, 0.08), yaw=0.3), Cylinder(0.3, 0.15, 0.025, 0.10), Box(0.42, -0.15, (0.05, 0.05, 0.05))]
CAMERA = np.array([0.05, 0.0, 0.6])


def solid_samples(obj, step=0.003):
    """Points filling an object's volume (base frame), to check grasps against the true solid."""
    if isinstance(obj, Box):
        axes = [np.arange(-s / 2, s / 2 + 1e-9, step) for s in obj.size]
        g = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
        c, s = np.cos(obj.yaw), np.sin(obj.yaw)
        return g @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T + [obj.x, obj.y, obj.size[2] / 2]
    r = np.arange(-obj.radius, obj.radius + 1e-9, step)
    g = np.stack(np.meshgrid(r, r, np.arange(0, obj.height + 1e-9, step), indexing="ij"), -1).reshape(-1, 3)
    return g[np.hypot(g[:, 0], g[:, 1]) <= obj.radius] + [obj.x, obj.y, 0]


def inside_object(p, obj, tol):
    if isinstance(obj, Box):
        c, s = np.cos(obj.yaw), np.sin(obj.yaw)
        d = p - [obj.x, obj.y, obj.size[2] / 2]
        local = np.array([d[0] * c + d[1] * s, -d[0] * s + d[1] * c, d[2]])
        return bool(np.all(np.abs(local) <= np.array(obj.size) / 2 + tol))
    return bool(np.hypot(p[0] - obj.x, p[1] - obj.y) <= obj.radius + tol and -tol <= p[2] <= obj.height + tol)


def detect(points_base, T=None, **cfg):
    T = look_at_camera(CAMERA, [0.35, 0.0, 0.0]) if T is None else T
    det = create_grasp_detector("antipodal", AntipodalConfig(**cfg))
    return det.detect(to_camera_frame(points_base, T), None, T, WorkspaceLimits())


@pytest.fixture(scope="module")
def grasps():
    return detect(tabletop_cloud(OBJECTS, density=4e4, table_extent=(0.15, 0.55, -0.25, 0.25)))


def test_grasps_are_found_on_every_object(grasps):
    assert len(grasps) >= 10
    scores = [g.score for g in grasps]
    assert scores == sorted(scores, reverse=True)
    for obj in OBJECTS:
        assert any(inside_object(g.position, obj, 0.005) for g in grasps), f"no grasp on {obj}"


def test_grasps_lie_on_objects_and_fit_the_gripper(grasps):
    gripper = GripperConfig()
    for g in grasps:
        assert any(inside_object(g.position, obj, 0.005) for obj in OBJECTS), g.position
        assert 0 < g.width <= gripper.max_opening
        assert 0 <= g.score <= 1
        np.testing.assert_allclose(g.pose[:3, :3].T @ g.pose[:3, :3], np.eye(3), atol=1e-9)


def test_grasps_do_not_collide_with_the_solid_objects_or_table(grasps):
    gripper = GripperConfig()
    solids = np.concatenate([solid_samples(o) for o in OBJECTS])
    tol = 0.003  # the detector works on a 5 mm voxel grid
    for g in grasps:
        centres, halves = gripper.collision_boxes(g.width, g.depth)
        local = (solids - g.position) @ g.pose[:3, :3]  # base -> gripper frame
        for c, h in zip(centres, halves):
            inside = np.all(np.abs(local - c) < np.maximum(h - tol, 0), axis=1)
            assert not inside.any(), f"gripper box {c} hits an object for grasp at {g.position}"
        # Every box corner stays above the table top (z = 0).
        corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        for c, h in zip(centres, halves):
            world = (c + corners * h) @ g.pose[:3, :3].T + g.position
            assert world[:, 2].min() > 0.0, f"gripper goes below the table for grasp at {g.position}"
        # The closing region actually holds part of the object.
        rc, rh = gripper.closing_region(g.width, g.depth)
        assert np.all(np.abs(local - rc) < rh, axis=1).any()


def test_cylinder_grasps_close_across_the_diameter(grasps):
    cyl = OBJECTS[1]
    on_cyl = [g for g in grasps if inside_object(g.position, cyl, 0.005)]
    assert on_cyl
    level = [g for g in on_cyl if abs(g.closing[2]) < 0.1]
    assert level
    for g in level:
        # Closing horizontally across an upright cylinder spans its diameter: the opening is that plus the two
        # 5 mm margins, within the 5 mm voxel slack.
        assert 2 * cyl.radius + 2 * 0.005 - 0.006 <= g.width <= 2 * cyl.radius + 2 * 0.005 + 0.006


def test_single_view_cloud():
    pts = tabletop_cloud(OBJECTS, density=4e4, camera_position=CAMERA, table_extent=(0.15, 0.55, -0.25, 0.25), noise=0.001)
    found = detect(pts)
    assert found
    assert all(any(inside_object(g.position, o, 0.008) for o in OBJECTS) for g in found)


def test_object_wider_than_the_gripper_gets_no_grasp():
    big = Box(0.35, 0.0, (0.12, 0.12, 0.12))
    found = detect(tabletop_cloud([big], density=4e4, table_extent=(0.15, 0.55, -0.25, 0.25)))
    assert all(g.width <= 0.07 for g in found)
    assert not [g for g in found if inside_object(g.position, big, 0.0) and g.approach[2] < -0.9]  # no top-down grasp across it


def test_table_only_gives_no_grasps():
    assert detect(tabletop_cloud([], density=4e4, table_extent=(0.15, 0.55, -0.25, 0.25))) == []


def test_bad_and_empty_clouds():
    T = look_at_camera(CAMERA, [0.35, 0.0, 0.0])
    det = create_grasp_detector("antipodal")
    ws = WorkspaceLimits()
    with pytest.raises(EmptyCloudError, match="no finite"):
        det.detect(np.zeros((0, 3), np.float32), None, T, ws)
    with pytest.raises(EmptyCloudError, match="no finite"):
        det.detect(np.full((10, 3), np.nan, np.float32), None, T, ws)
    far = to_camera_frame(np.array([[2.0, 2.0, 0.0]] * 50, np.float32), T)
    with pytest.raises(EmptyCloudError, match="workspace"):
        det.detect(far, None, T, ws)
    with pytest.raises(CloudError, match="Nx3"):
        det.detect(np.zeros((10, 2), np.float32), None, T, ws)
    with pytest.raises(CloudError, match="uint8"):
        det.detect(np.ones((10, 3), np.float32), np.ones((10, 3), np.float32), T, ws)
    with pytest.raises(ValueError, match="rigid"):
        det.detect(np.ones((10, 3), np.float32), None, np.eye(4) * 2, ws)


def test_ransac_plane_finds_the_tilted_table_among_clutter_and_repeats_exactly():
    rng = np.random.default_rng(3)
    n_true = np.array([0.1, -0.05, 1.0]) / np.linalg.norm([0.1, -0.05, 1.0])
    d_true = -0.02
    uv = rng.uniform(-0.3, 0.3, size=(3000, 2))
    e1 = np.cross(n_true, [1.0, 0, 0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(n_true, e1)
    table = uv[:, :1] * e1 + uv[:, 1:] * e2 - d_true * n_true + rng.normal(0, 0.001, (3000, 1)) * n_true
    clutter = rng.uniform([-0.3, -0.3, 0.03], [0.3, 0.3, 0.2], size=(1500, 3))  # objects above the table
    points = np.concatenate([table, clutter])
    plane, inliers = ransac_plane(points, 0.004, 200, np.random.default_rng(0))
    n = plane[:3] * np.sign(plane[2])
    assert np.degrees(np.arccos(min(1.0, n @ n_true))) < 0.2 and abs(plane[3] * np.sign(plane[2]) - d_true) < 1e-3
    assert len(set(range(3000)) - set(inliers.tolist())) < 5  # ~all table points (1 mm noise, 4 mm threshold)
    assert np.sum(inliers >= 3000) < 0.02 * 1500  # almost no clutter
    again = ransac_plane(points, 0.004, 200, np.random.default_rng(0))
    assert np.array_equal(again[0], plane) and np.array_equal(again[1], inliers)  # same seed, same plane, bit for bit
    assert ransac_plane(points[:2], 0.004, 10, np.random.default_rng(0))[1].size == 0


def camera_view(objects, **kw):
    """A single-view cloud (surfaces facing the camera) of ``objects`` on the table, base frame."""
    return tabletop_cloud(objects, density=4e4, camera_position=CAMERA, table_extent=(0.15, 0.55, -0.25, 0.25), **kw)


def cup_cloud(x, y, r_out, wall, height, density=4e4, seed=0):
    """A cup (outer and inner wall, rim, floor) as the camera sees it: the surfaces facing it, base frame (m)."""
    rng = np.random.default_rng(seed)
    r_in, parts = r_out - wall, []
    for r, sign in ((r_out, 1.0), (r_in, -1.0)):
        n = int(2 * np.pi * r * height * density)
        a, z = rng.uniform(0, 2 * np.pi, n), rng.uniform(0, height, n)
        parts.append((np.column_stack([x + r * np.cos(a), y + r * np.sin(a), z]), sign * np.column_stack([np.cos(a), np.sin(a), np.zeros(n)])))
    for z, r0, r1 in ((height, r_in, r_out), (0.006, 0.0, r_in)):
        n = int(np.pi * (r1**2 - r0**2) * density) + 50
        a, rr = rng.uniform(0, 2 * np.pi, n), np.sqrt(rng.uniform(r0**2, r1**2, n))
        parts.append((np.column_stack([x + rr * np.cos(a), y + rr * np.sin(a), np.full(n, z)]), np.tile([0.0, 0.0, 1.0], (n, 1))))
    P, N = np.concatenate([p for p, _ in parts]), np.concatenate([n for _, n in parts])
    table = tabletop_cloud([], density=density, table_extent=(0.15, 0.55, -0.25, 0.25))
    table = table[np.hypot(table[:, 0] - x, table[:, 1] - y) > r_out]
    return np.concatenate([table, P[np.sum((CAMERA - P) * N, axis=1) > 0]]).astype(np.float32)


def test_box_grasps_close_across_its_faces():
    # closing axes off a box's faces turn it in the grip or slide off its corners: the outline seen from above,
    # narrowest across the faces, sets the axis even where the side faces are seen edge-on
    box = Box(0.33, 0.05, (0.045, 0.07, 0.07), yaw=0.5)
    found = detect(camera_view([box]))
    faces = np.array([[np.cos(box.yaw), np.sin(box.yaw), 0.0], [-np.sin(box.yaw), np.cos(box.yaw), 0.0]])
    level = [g for g in found if abs(g.closing[2]) < 0.1]
    assert len(level) >= 5
    off_face = [np.degrees(np.arccos(np.abs(faces @ g.closing).max())) for g in level]
    assert max(off_face) < 6.0  # measured: 3.8 deg at most (the 15 deg sweep, then the outline's own direction)


def test_cylinder_grasps_span_its_diameter_in_a_single_view():
    # the far side of a cylinder is hidden: a width measured to it would be a chord; the detector closes between
    # the two silhouettes, the full diameter, whatever the tilt of the approach
    cyl = Cylinder(0.3, 0.12, 0.025, 0.10)
    level = [g for g in detect(camera_view([cyl])) if abs(g.closing[2]) < 0.1]
    assert len(level) >= 10
    assert min(g.width for g in level) >= 2 * cyl.radius + 2 * 0.002  # measured: 0.054 for a 0.05 m cylinder


def test_a_cup_wider_than_the_gripper_is_taken_by_its_rim():
    # 72 mm across: no grasp around it fits the 70 mm opening; the fingers take the 5 mm wall, one of them inside the
    # cup, where the camera sees empty space
    found = detect(cup_cloud(0.33, -0.05, 0.036, 0.005, 0.09))
    assert len(found) >= 5
    for g in found[:5]:  # the best ones
        r = np.hypot(g.position[0] - 0.33, g.position[1] + 0.05)
        radial = (g.position[:2] - [0.33, -0.05]) / r
        assert g.width <= 0.025 and 0.029 <= r <= 0.038, (g.width, r)  # across the wall at the rim
        assert abs(g.closing[:2] @ radial) > 0.9 and g.position[2] > 0.07


def test_an_object_just_narrower_than_the_opening_is_taken_fully_open():
    # a 66 mm can leaves 2 mm each side in the 70 mm opening: less than width_margin, not less than min_width_margin
    pts = camera_view([Cylinder(0.3, -0.1, 0.033, 0.12)])
    found = detect(pts)
    assert found and all(g.width == pytest.approx(0.07) for g in found if abs(g.closing[2]) < 0.1)
    assert detect(pts, min_width_margin=0.005) == []


def test_an_operator_target_focuses_the_detector_on_one_object():
    pts = tabletop_cloud(OBJECTS, density=4e4, table_extent=(0.15, 0.55, -0.25, 0.25))
    T = look_at_camera(CAMERA, [0.35, 0.0, 0.0])
    cyl = OBJECTS[1]
    target = np.array([inside_object(p, cyl, 0.004) for p in pts.astype(np.float64)])
    det = create_grasp_detector("antipodal")
    cam = to_camera_frame(pts, T)
    found = det.detect(cam, None, T, WorkspaceLimits(), target)
    assert len(found) >= 5 and all(inside_object(g.position, cyl, 0.005) for g in found)
    # all seeds go to the target: more grasps on it than the detector finds there when it samples the whole scene
    everywhere = [g for g in det.detect(cam, None, T, WorkspaceLimits()) if inside_object(g.position, cyl, 0.005)]
    assert len(found) > len(everywhere)
    with pytest.raises(EmptyCloudError, match="target"):
        det.detect(np.where(target[:, None], np.nan, cam).astype(np.float32), None, T, WorkspaceLimits(), target)
    with pytest.raises(CloudError, match="bool mask"):
        det.detect(cam, None, T, WorkspaceLimits(), target[:-1])


def test_seen_free_space_is_in_front_of_what_the_camera_saw():
    from dkt_grasping.grasp_detection.tabletop import TabletopScene

    xy = np.stack(np.meshgrid(np.arange(-0.1, 0.1, 0.005), np.arange(-0.1, 0.1, 0.005)), -1).reshape(-1, 2)
    plane = np.column_stack([xy, np.zeros(len(xy))])  # a floor seen from 0.5 m above
    scene = TabletopScene(plane, np.tile([0.0, 0.0, 1.0], (len(plane), 1)), np.ones(len(plane), bool), np.array([0.0, 0.0, 1.0]), 0.0,
                          camera_position=np.array([0.0, 0.0, 0.5]))  # fmt: skip
    free = scene.seen_free(np.array([[0.02, 0.01, 0.1], [0.02, 0.01, -0.05], [0.5, 0.0, 0.1], [0.0, 0.0, 0.003]]), 0.005, 0.005)
    assert free.tolist() == [True, False, False, False]  # above it; under it; where nothing was measured; on it
