"""Depth readers: exact values and validity masks for PNG16 (mm), NPY and float TIFF; clear errors."""

import os

import numpy as np
import pytest

from dkt_training.depth_io import DataFormatError, read_depth, read_raw_depth, write_depth_png16, write_rgb

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
import cv2


def test_png16_exact_millimetres_and_mask(tmp_path):
    mm = np.array([[0, 1, 1234], [65535, 300, 0]], dtype=np.uint16)
    path = tmp_path / "d.png"
    assert cv2.imwrite(str(path), mm)
    depth, valid = read_depth(path)  # auto: png16, 0.001 m per unit
    np.testing.assert_array_equal(valid, mm > 0)
    np.testing.assert_array_equal(depth[valid], (mm[mm > 0] * 0.001).astype(np.float32))
    assert np.isnan(depth[~valid]).all()
    # valid range and an explicit scale
    depth, valid = read_depth(path, "png16", 0.0001, min_m=0.02, max_m=1.0)
    np.testing.assert_array_equal(valid, [[False, False, True], [False, True, False]])
    assert depth[0, 2] == np.float32(0.1234)


def test_png16_writer_round_trip(tmp_path):
    d = np.array([[0.5, np.nan], [1.2345, -1.0]])
    path = write_depth_png16(tmp_path / "w.png", d)
    np.testing.assert_array_equal(read_raw_depth(path, "png16"), [[500, 0], [1234, 0]])  # 1234.5 rounds to even


def test_npy_and_tiff_exact_with_mask_file(tmp_path):
    d = np.array([[0.25, np.inf, 0.0], [1.5, np.nan, 2.0]], dtype=np.float32)
    np.save(tmp_path / "d.npy", d)
    assert cv2.imwrite(str(tmp_path / "d.tiff"), d)
    mask = np.array([[255, 255, 255], [0, 255, 255]], dtype=np.uint8)
    write_rgb(tmp_path / "m.png", np.repeat(mask[..., None], 3, axis=2))
    for name in ("d.npy", "d.tiff"):
        depth, valid = read_depth(tmp_path / name, mask_path=tmp_path / "m.png")
        np.testing.assert_array_equal(valid, [[True, False, False], [False, False, True]])
        np.testing.assert_array_equal(depth[valid], [0.25, 2.0])


def test_errors_say_what_was_expected(tmp_path):
    with pytest.raises(DataFormatError, match="extension"):
        read_depth(tmp_path / "d.bmp")
    with pytest.raises(DataFormatError, match="missing depth file"):
        read_depth(tmp_path / "none.npy")
    write_rgb(tmp_path / "rgb.png", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(DataFormatError, match="16-bit"):
        read_depth(tmp_path / "rgb.png", "png16")
    np.save(tmp_path / "v.npy", np.zeros((2, 2, 2)))
    with pytest.raises(DataFormatError, match=r"\(H, W\)"):
        read_depth(tmp_path / "v.npy")
    (tmp_path / "x.exr").write_bytes(b"not an exr")
    with pytest.raises(DataFormatError, match="exr"):
        read_depth(tmp_path / "x.exr")
