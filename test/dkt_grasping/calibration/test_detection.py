"""Sample checks on rendered tags: blur, ambiguity, tag size in the image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dkt_grasping.calibration.board import BoardModel, grid_board
from dkt_grasping.calibration.detection import DetectionConfig, SampleRejected, checked_board_pose, detect_board, edge_width_px
from dkt_grasping.calibration.samples import TagCorners
from dkt_grasping.calibration.synthetic import D435_COLOUR, render_board
from dkt_stack.transforms import xyz_rpy_to_transform

BOARD = grid_board(2, 2, 0.035, 0.045, pattern_rotation_deg=180.0)
MODEL = BoardModel(BOARD)
T_VIEW = xyz_rpy_to_transform((0.01, 0.02, 0.36), (0.35, -0.3, 0.5))


def _render(blur_sigma: float = 0.0, T=T_VIEW, model=MODEL) -> np.ndarray:
    img = render_board(model, T, D435_COLOUR, np.full((480, 640), 110.0, np.float32))
    if blur_sigma:
        img = cv2.GaussianBlur(img, (0, 0), blur_sigma)
    return np.clip(np.rint(img + np.random.default_rng(0).normal(0, 2.0, img.shape)), 0, 255).astype(np.uint8)


def test_edge_width_grows_with_blur():
    widths = []
    for sigma in (0.0, 1.0, 2.0):
        img = _render(sigma)
        dets, _ = DetectionConfig().detector(MODEL).detect(img, D435_COLOUR)
        widths.append(max(edge_width_px(img, d.corners_px) for d in dets))
    assert widths[0] < 1.8, widths  # a sharp, area-sampled edge is about one pixel wide
    assert widths[0] < widths[1] < widths[2] and widths[2] > 2.5, widths


def test_sharp_board_accepted_blurred_rejected():
    det = detect_board(_render(0.0), D435_COLOUR, MODEL, DetectionConfig())
    assert len(det.tags) == 4 and all(t.edge_width_px < 2.0 for t in det.tags)
    with pytest.raises(SampleRejected, match="blurred"):
        detect_board(_render(2.0), D435_COLOUR, MODEL, DetectionConfig())


def test_tiny_tags_rejected():
    far = xyz_rpy_to_transform((0.0, 0.0, 1.2), (0.3, 0.2, 0.0))
    with pytest.raises(SampleRejected, match="smaller than"):
        detect_board(_render(T=far), D435_COLOUR, MODEL, DetectionConfig())


def test_ambiguous_pose_rejected():
    """A small tag seen head-on has two planar poses that fit almost equally: not a sample."""
    model = BoardModel(grid_board(1, 1, 0.03, 0.03))
    T = xyz_rpy_to_transform((0.0, 0.0, 0.6), (0.02, -0.01, 0.3))
    rng = np.random.default_rng(1)
    corners = D435_COLOUR.project((model.object_points(0) @ T[:3, :3].T) + T[:3, 3]) + rng.normal(0, 0.3, (4, 2))
    with pytest.raises(SampleRejected, match="ambiguous board pose"):
        checked_board_pose(model, [TagCorners(0, corners)], D435_COLOUR, DetectionConfig())
    # tilted by 35 degrees it is not ambiguous
    T = xyz_rpy_to_transform((0.0, 0.0, 0.4), (0.6, 0.0, 0.3))
    corners = D435_COLOUR.project((model.object_points(0) @ T[:3, :3].T) + T[:3, 3]) + rng.normal(0, 0.3, (4, 2))
    assert checked_board_pose(model, [TagCorners(0, corners)], D435_COLOUR, DetectionConfig()).ambiguity > 3.0
