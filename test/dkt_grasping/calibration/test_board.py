"""The board model, its pose from detections, and OpenCV's 180-degree tag convention on real tag renders."""

from __future__ import annotations

import numpy as np
import pytest

from dkt_grasping.calibration.board import BoardModel, board_pose, grid_board
from dkt_grasping.calibration.detection import DetectionConfig, SampleRejected, detect_board
from dkt_grasping.calibration.solver import pose_difference
from dkt_grasping.calibration.synthetic import D435_COLOUR, render_board
from dkt_perception.tags import square_object_points
from dkt_stack.transforms import make_transform, xyz_rpy_to_transform

BACKGROUND = np.full((D435_COLOUR.height, D435_COLOUR.width), 120.0, dtype=np.float32)


def _image(model, T):
    return np.clip(np.rint(render_board(model, T, D435_COLOUR, BACKGROUND)), 0, 255).astype(np.uint8)


def test_grid_layout_and_object_points():
    board = grid_board(2, 3, 0.03, 0.05, first_id=4)
    model = BoardModel(board)
    assert model.ids == [4, 5, 6, 7, 8, 9]
    np.testing.assert_allclose([(t.x, t.y) for t in board.tags][:3], [(-0.05, -0.025), (0.0, -0.025), (0.05, -0.025)])
    # object points are the tag's IPPE square moved to its place; a 180-degree print swaps opposite corners
    np.testing.assert_allclose(model.object_points(5), square_object_points(0.03) + np.array([0.0, -0.025, 0.0]), atol=1e-12)
    flipped = BoardModel(board, pattern_rotation_deg=180.0)
    np.testing.assert_allclose(flipped.object_points(5), model.object_points(5)[[2, 3, 0, 1]], atol=1e-12)


@pytest.mark.parametrize("bad", [{"tags": []}, {"pattern_rotation_deg": 90.0}])
def test_bad_board_refused(bad):
    from dkt_grasping.calibration.board import BoardConfig
    from dkt_stack.config import ConfigError, from_dict

    with pytest.raises(ConfigError):
        from_dict(BoardConfig, bad)


def test_opencv_rendered_tag_is_turned_180_degrees():
    """FACTS: an OpenCV-rendered tag decodes fine, but the detector's tag frame is turned 180 deg about z."""
    board = grid_board(1, 1, 0.06, 0.06)  # one tag at the board origin, configured as an official print
    model = BoardModel(board)
    T = xyz_rpy_to_transform((0.03, -0.02, 0.42), (0.35, -0.25, 0.6))
    detector = DetectionConfig().detector(model)
    opencv_print = BoardModel(board, pattern_rotation_deg=180.0)  # the renderer prints what the convention says
    dets, rejected = detector.detect(_image(opencv_print, T), D435_COLOUR)
    assert not rejected and [d.id for d in dets] == [0]
    rz180 = make_transform(np.diag([-1.0, -1.0, 1.0]))
    mm, deg = pose_difference(dets[0].T_camera_tag, T @ rz180)
    assert mm < 1.0 and deg < 0.5, (mm, deg)
    assert pose_difference(dets[0].T_camera_tag, T)[1] > 179.0
    # an official print (OpenCV's render turned back) is detected in the tag's own frame
    dets, _ = detector.detect(_image(model, T), D435_COLOUR)
    mm, deg = pose_difference(dets[0].T_camera_tag, T)
    assert mm < 1.0 and deg < 0.5, (mm, deg)
    # with the print convention set, the board pose is the true one
    flipped = BoardModel(board, pattern_rotation_deg=180.0)
    det = detect_board(_image(flipped, T), D435_COLOUR, flipped, DetectionConfig())
    mm, deg = pose_difference(det.pose.T_camera_board, T)
    assert mm < 1.0 and deg < 0.5, (mm, deg)


def test_multi_tag_board_pose_and_wrong_print_convention():
    board = grid_board(2, 2, 0.035, 0.045, pattern_rotation_deg=180.0)
    model = BoardModel(board)
    T = xyz_rpy_to_transform((-0.02, 0.01, 0.38), (0.4, 0.3, -0.8))
    image = _image(model, T)
    det = detect_board(image, D435_COLOUR, model, DetectionConfig())
    assert sorted(t.id for t in det.tags) == [0, 1, 2, 3]
    assert det.pose.rms_px < 0.3 and det.pose.ambiguity > 3.0
    mm, deg = pose_difference(det.pose.T_camera_board, T)
    assert mm < 1.0 and deg < 0.2, (mm, deg)
    # the same image with the official-print convention: the corners do not fit, and the message says why
    wrong = board_pose(BoardModel(grid_board(2, 2, 0.035, 0.045)), det.tags, D435_COLOUR)
    assert wrong.rms_px > 5.0
    with pytest.raises(SampleRejected, match="pattern_rotation_deg: 180"):
        detect_board(image, D435_COLOUR, BoardModel(grid_board(2, 2, 0.035, 0.045)), DetectionConfig())


def test_wrong_tag_id_is_named():
    board = grid_board(2, 2, 0.035, 0.045, pattern_rotation_deg=180.0)
    image = _image(BoardModel(board), xyz_rpy_to_transform((0.0, 0.0, 0.38), (0.4, 0.3, 0.2)))
    configured = grid_board(1, 1, 0.035, 0.045, first_id=17)
    with pytest.raises(SampleRejected, match=r"tag ids \[0, 1, 2, 3\] in view are not on the board \(ids \[17\]\)"):
        detect_board(image, D435_COLOUR, BoardModel(configured), DetectionConfig())
