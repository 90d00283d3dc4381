"""Optional attachments (dkt_sim.attachments): off by default the model is unchanged; a plate shows its picture in its face frame."""

from __future__ import annotations

import difflib

import numpy as np
import pytest

from dkt_perception.synthetic_scene import tag_texture
from dkt_perception.tags import TagConfig, TagDetector
from dkt_sim.attachments import Attachments, MountedCamera, TexturedPlate
from dkt_sim.mjcf import build_model_spec
from dkt_sim.objects import single_object_scene
from dkt_sim.rig_geometry import COBOT_MAGIC
from dkt_sim.world import SimWorld
from dkt_stack.transforms import invert_transform, make_transform

SCENE = single_object_scene("soda_can", 0.5, -0.2)
TAG_M = 0.08  # black square of the test tag


def _official_tag_picture(tag_id: int) -> np.ndarray:
    """The official tag36h11 image (white border included): OpenCV's render turned 180 deg (FACTS)."""
    return np.ascontiguousarray(tag_texture(tag_id, 8)[::-1, ::-1])


def _attachments() -> Attachments:
    # a tag lying on the table in front of the camera, turned 30 deg about the vertical; a plate and a camera on an arm
    T_world_face = make_transform(np.diag([1.0, -1.0, -1.0]), (0.62, 0.05, COBOT_MAGIC.table_top_z + 0.001))
    T_world_face[:3, :3] = T_world_face[:3, :3] @ np.array([[np.cos(0.5), -np.sin(0.5), 0], [np.sin(0.5), np.cos(0.5), 0], [0, 0, 1]])
    table_tag = TexturedPlate("test_tag", _official_tag_picture(5), (1.25 * TAG_M, 1.25 * TAG_M), T_world_face)
    flange_plate = TexturedPlate("flange_plate", np.full((8, 8), 200, np.uint8), (0.05, 0.05), make_transform(None, (0.09, 0.0, 0.03)), parent="left")
    camera = MountedCamera("left_wrist_camera", "left", make_transform(None, (-0.07, 0.0, 0.02)))
    return Attachments(plates=(table_tag, flange_plate), cameras=(camera,))


def test_default_model_is_unchanged_and_attachments_only_add():
    """Without attachments the MJCF is what it was; with them no line of it changes, lines are only added."""
    default = build_model_spec(SCENE, width=160, height=120)
    assert build_model_spec(SCENE, width=160, height=120, attachments=None).xml == default.xml
    assert build_model_spec(SCENE, width=160, height=120, attachments=Attachments()).xml == default.xml
    assert "test_tag" not in default.xml and "wrist_camera" not in default.xml and set(default.assets) == {"tag0.png", "tag1.png", "tag2.png"}
    extra = build_model_spec(SCENE, width=160, height=120, attachments=_attachments())
    diff = [d for d in difflib.ndiff(default.xml.splitlines(), extra.xml.splitlines()) if d[:1] in "+-"]
    assert not [d for d in diff if d.startswith("-")]  # nothing removed or changed
    added = [d[2:].strip() for d in diff]
    assert len(added) == 7  # 2 textures, 2 materials, 2 plate geoms, 1 camera
    assert sum(a.startswith("<texture") for a in added) == 2 and sum(a.startswith("<camera") for a in added) == 1
    assert set(extra.assets) - set(default.assets) == {"test_tag.png", "flange_plate.png"}


def test_attachments_leave_physics_alone():
    """A world with a plate on the flange and a table plate steps exactly as the default world (visual only: no contact, no mass)."""
    plain = SimWorld(SCENE, width=96, height=72)
    dressed = SimWorld(SCENE, width=96, height=72, attachments=_attachments())
    assert (plain.model.nq, plain.model.nv, plain.model.nu, plain.model.nbody) == (dressed.model.nq, dressed.model.nv, dressed.model.nu, dressed.model.nbody)
    np.testing.assert_array_equal(plain.model.body_mass, dressed.model.body_mass)
    q = np.array([0.3, 1.2, -0.9, 0.2, 0.5, -0.4])
    for w in (plain, dressed):
        w.command("left", q)
        w.step(300)
    np.testing.assert_array_equal(plain.data.qpos, dressed.data.qpos)
    names = {dressed.model.geom(g).name for g in dressed.arms["left"].geoms}
    assert names == {plain.model.geom(g).name for g in plain.arms["left"].geoms} | {"flange_plate"}  # it rides with link6


def test_plate_shows_its_picture_in_the_face_frame():
    """The official tag on a table plate is detected by the D435 with the id and the 6-D pose of the plate's face frame."""
    from dkt_sim.camera import CameraConfig, SimCamera

    att = _attachments()
    world = SimWorld(SCENE, width=640, height=480, attachments=att)
    cam = SimCamera(world, CameraConfig(rgb_noise_std=0.0))
    try:
        cam.snapshot()
        image = cam.colour()
        assert image.shape == (480, 640, 3)
        detector = TagDetector(TagConfig(ids=[5], sizes_m=[TAG_M], quad_decimate=1.0))
        detections, _ = detector.detect(image.mean(axis=2).astype(np.uint8), cam.intrinsics)
        assert [d.id for d in detections] == [5]
        T_camera_face = invert_transform(COBOT_MAGIC.T_world_camera) @ att.plates[0].T_parent_face
        T = detections[0].T_camera_tag
        # measured 0.02 mm and 0.002 deg at 0.8 m: half a texel (0.6 mm) off, or the picture mirrored or turned, fails
        assert np.linalg.norm(T[:3, 3] - T_camera_face[:3, 3]) < 0.0003
        angle = np.degrees(np.arccos(np.clip((np.trace(T[:3, :3].T @ T_camera_face[:3, :3]) - 1) / 2, -1, 1)))
        assert angle < 0.05
        # the flange camera is a MuJoCo camera of the model, rendered like the D435
        assert cam.colour("left_wrist_camera").shape == (480, 640, 3)
    finally:
        cam.close()


def test_bad_attachments_are_refused():
    with pytest.raises(ValueError, match="uint8"):
        TexturedPlate("p", np.zeros((4, 4)), (0.1, 0.1), np.eye(4))
    with pytest.raises(ValueError, match="unique"):
        Attachments(cameras=(MountedCamera("c", "left", np.eye(4)), MountedCamera("c", "right", np.eye(4))))
    with pytest.raises(ValueError, match="parent must be"):
        build_model_spec(SCENE, attachments=Attachments(plates=(TexturedPlate("p", np.zeros((4, 4), np.uint8), (0.1, 0.1), np.eye(4), parent="middle"),)))
