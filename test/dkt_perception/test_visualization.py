"""Depth previews: the colour bar beside the image shows the colour map over the limits used."""

import cv2
import numpy as np

from dkt_perception.visualization import color_limits, colorize, colorize_with_bar


def test_bar_beside_the_unchanged_image_spans_the_colour_map():
    values = np.linspace(0.4, 1.2, 120 * 160, dtype=np.float32).reshape(120, 160)
    values[:10, :10] = np.nan
    out = colorize_with_bar(values, "depth (m)", 0.4, 1.2)
    assert out.shape[0] == 120 and out.shape[1] > 160 and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :160], colorize(values, 0.4, 1.2))  # the image itself is untouched
    turbo = cv2.applyColorMap(np.array([[255], [0]], np.uint8), cv2.COLORMAP_TURBO)[:, 0, ::-1]
    bar = out[:, 160:]
    colours = {tuple(c) for c in bar.reshape(-1, 3)}
    assert tuple(turbo[0]) in colours and tuple(turbo[1]) in colours  # both ends of the scale are drawn


def test_limits_default_to_the_2nd_and_98th_percentiles():
    values = np.arange(10000, dtype=np.float32).reshape(100, 100)
    lo, hi = color_limits(values)
    assert lo == np.percentile(values[::4, ::4], 2) and hi == np.percentile(values[::4, ::4], 98)
    assert color_limits(np.full((4, 4), np.nan, np.float32)) == (0.0, 1.0)
