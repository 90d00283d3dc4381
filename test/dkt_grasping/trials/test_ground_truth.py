"""Exact-geometry grasp outcomes on hand-placed boxes (base frame = world frame here)."""

from __future__ import annotations

import numpy as np
import pytest

from dkt_grasping.grasp_frames import gripper_frame_from_axes
from dkt_grasping.trials.ground_truth import GroundTruthGrasp, object_points
from dkt_perception.synthetic_scene import SceneObject
from dkt_stack.transforms import make_transform


def _box(oid, name, xy, size):
    T = make_transform(np.eye(3), [xy[0], xy[1], 0.0])
    return SceneObject(oid, name, "box", "diffusive", size, T, T)


def _top_down(x, y, z):
    """Gripper pose: approach straight down, closing along world x, centre at (x, y, z) (m)."""
    return make_transform(gripper_frame_from_axes(np.array([0.0, 0.0, -1.0]), np.array([1.0, 0.0, 0.0])), [x, y, z])


@pytest.fixture
def world():
    # A 5 cm (x) x 8 cm (y) x 6 cm box at the origin, and a second box 9 cm away along x.
    return GroundTruthGrasp([_box(1, "box", (0, 0), (0.05, 0.08, 0.06)), _box(2, "other", (0.09, 0), (0.04, 0.04, 0.06))], np.eye(4))


def test_object_points_fill_the_object_exactly_to_its_faces():
    pts = object_points(_box(1, "b", (0, 0), (0.05, 0.08, 0.06)), 0.0025)
    np.testing.assert_allclose(pts.min(axis=0), [-0.025, -0.04, 0.0], atol=1e-12)
    np.testing.assert_allclose(pts.max(axis=0), [0.025, 0.04, 0.06], atol=1e-12)
    cyl = SceneObject(1, "c", "cylinder", "transparent", (0.07, 0.07, 0.1), np.eye(4), np.eye(4))
    r = np.hypot(*object_points(cyl, 0.0025)[:, :2].T)
    assert r.max() == pytest.approx(0.035, abs=1e-12) and np.all(r <= 0.035 + 1e-12)


def test_centred_top_down_grasp_holds_at_the_box_width(world):
    T = _top_down(0.0, 0.0, 0.04)  # fingertips (depth 0.02) at z = 0.02, pads up to z = 0.065
    out = world.judge(T, 0.02, 0.07, "box")
    assert out.held, out.reason
    assert out.details["contact_opening_m"] == pytest.approx(0.05, abs=1e-9)
    assert world.contact_opening(T, 0.02, 0.07) == pytest.approx(0.05, abs=1e-9)


def test_misses_collisions_and_table(world):
    assert "in free space" in world.judge(_top_down(0.0, 0.2, 0.04), 0.02, 0.07, "box").reason
    assert "not on box (on other)" in world.judge(_top_down(0.09, 0.0, 0.04), 0.02, 0.07, "box").reason
    # Opened to 4 cm on a 5 cm box: each finger lands 5 mm inside it, beyond the 3 mm push tolerance.
    narrow = world.judge(_top_down(0.0, 0.0, 0.04), 0.02, 0.04, "box")
    assert not narrow.held and "hits box (it would have to push it 5.0 mm aside)" in narrow.reason
    # Opened to 4.6 cm: 2 mm inside: a brush that pushes the box, still held.
    assert world.judge(_top_down(0.0, 0.0, 0.04), 0.02, 0.046, "box").held
    # A 2 cm high box grasped with the centre 5 mm above the table: the fingertips (depth 2 cm) go 15 mm into it.
    flat = GroundTruthGrasp([_box(1, "flat", (0, 0), (0.05, 0.08, 0.02))], np.eye(4))
    deep = flat.judge(_top_down(0.0, 0.0, 0.005), 0.02, 0.07, "flat")
    assert not deep.held and "finger +y goes 15.0 mm into the table" in deep.reason
    assert flat.judge(_top_down(0.0, 0.0, 0.021), 0.02, 0.07, "flat").held  # tips 1 mm above the table top
    # Grasp centre near the box's edge, 3.4 cm off-centre along x: the +x finger (x 0.069 .. 0.077 m) comes down on
    # the other box (x 0.07 .. 0.11 m): it would push it 7 mm outwards.
    assert (
        "the finger +y hits other (it would have to push it 7.0 mm aside)"
        in world.judge(_top_down(0.034, 0.0, 0.04), 0.02, 0.07, "box").reason
    )
    # A neighbour whose near face (x = 0.038 m) lies 5 mm inside the open +x finger (x 0.035 .. 0.043 m): pushed out 5 mm, a hit;
    # 2 mm inside (x = 0.041 m): a brush within the 3 mm tolerance.
    for x, held in ((0.058, False), (0.061, True)):
        near = GroundTruthGrasp([_box(1, "box", (0, 0), (0.05, 0.08, 0.06)), _box(2, "near", (x, 0), (0.04, 0.04, 0.06))], np.eye(4))
        out = near.judge(_top_down(0.0, 0.0, 0.04), 0.02, 0.07, "box")
        assert out.held == held, out.reason
        if not held:
            assert "the finger +y hits near (it would have to push it 5.0 mm aside)" in out.reason
    assert world.contact_opening(_top_down(0.0, 0.2, 0.04), 0.02, 0.07) == 0.0
    with pytest.raises(ValueError, match="unknown target object 'cup'"):
        world.judge(_top_down(0.0, 0.0, 0.04), 0.02, 0.07, "cup")
