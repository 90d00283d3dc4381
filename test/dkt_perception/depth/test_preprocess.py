"""The one pre/post-processing module: sizes, ranges, padding, rotation, training targets."""

import numpy as np
import pytest
import torch

from dkt_perception.depth import DepthInputError
from dkt_perception.depth.preprocess import (
    decoded_to_disparity,
    disparity_to_input_size,
    disparity_to_model,
    geometry_for,
    pad_frames_4n1,
    padded_frame_count,
    rgb_to_model,
)


def test_padded_frame_count():
    assert [padded_frame_count(n) for n in (1, 2, 4, 5, 6, 8, 9, 30, 81)] == [1, 5, 5, 5, 9, 9, 9, 33, 81]
    with pytest.raises(DepthInputError):
        padded_frame_count(0)


def test_pad_repeats_last_frame():
    v = torch.arange(6.0).view(1, 1, 6, 1, 1)
    p = pad_frames_4n1(v)
    assert p.shape[2] == 9 and p.flatten().tolist() == [0, 1, 2, 3, 4, 5, 5, 5, 5]


def test_rgb_to_model_range_and_layout():
    rgb = np.zeros((3, 10, 20, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 0, 255, 51
    x, geom = rgb_to_model(rgb, 16, 32)
    assert x.shape == (1, 3, 3, 16, 32) and x.dtype == torch.float32
    assert torch.allclose(x[0, 0], torch.tensor(-1.0)) and torch.allclose(x[0, 1], torch.tensor(1.0))
    assert torch.allclose(x[0, 2], torch.tensor(51 / 255 * 2 - 1), atol=1e-6)
    assert (geom.height, geom.width, geom.rotated) == (10, 20, False)
    with pytest.raises(DepthInputError, match="multiples of 16"):
        rgb_to_model(rgb, 15, 32)


def test_decoded_to_disparity_is_channel_mean_in_01():
    d = torch.tensor([-1.0, 0.0, 0.5]).view(1, 3, 1, 1, 1).expand(1, 3, 2, 2, 2)
    out = decoded_to_disparity(d)
    assert out.shape == (2, 2, 2) and torch.allclose(out, torch.tensor((-1 + 0 + 0.5) / 3 * 0.5 + 0.5))


def test_portrait_rotation_round_trip():
    rgb = np.zeros((1, 40, 20, 3), np.uint8)
    rgb[0, :10] = 255  # bright top band
    x, geom = rgb_to_model(rgb, 16, 32, rotate_portrait=True)
    assert geom.rotated and x.shape[-2:] == (16, 32)
    disp = decoded_to_disparity(x)  # pretend the model echoed the image: bright = near
    back = disparity_to_input_size(disp, geom)
    assert back.shape == (1, 40, 20)
    assert back[0, :8].mean() > 0.9 and back[0, 14:].mean() < 0.1  # the band is back at the top
    assert geometry_for(20, 40, True).rotated is False


def test_disparity_to_model_training_target():
    d = np.linspace(0.5, 2.0, 2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8)
    t = disparity_to_model(d, 16, 16)
    assert t.shape == (1, 3, 2, 16, 16)
    assert torch.equal(t[:, 0], t[:, 1]) and torch.equal(t[:, 1], t[:, 2])
    assert t.min() >= -1 - 1e-6 and t.max() <= 1 + 1e-6 and t.max() - t.min() > 1.8
