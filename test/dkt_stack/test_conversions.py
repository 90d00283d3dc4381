"""Exact round trips and clear errors of dkt_stack.conversions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from dkt_stack import conversions as cv
from dkt_stack.intrinsics import CameraIntrinsics
from dkt_stack.transforms import make_transform, quat_to_matrix

SHAPES = {"rgb8": 3, "bgr8": 3, "mono8": 1, "mono16": 1, "16UC1": 1, "32FC1": 1, "rgba8": 4}


def _array_for(encoding: str, h: int, w: int, seed: int) -> np.ndarray:
    dtype, ch = cv.IMAGE_ENCODINGS[encoding]
    rng = np.random.default_rng(seed)
    shape = (h, w, ch) if ch > 1 else (h, w)
    if dtype == np.float32:
        return rng.normal(size=shape).astype(np.float32)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)


@settings(max_examples=40, deadline=None)
@given(encoding=st.sampled_from(sorted(SHAPES)), h=st.integers(1, 9), w=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_image_round_trip_is_exact(encoding, h, w, seed):
    arr = _array_for(encoding, h, w, seed)
    header = cv.make_header("cam", stamp_ns=1_700_000_000_123_456_789)
    msg = cv.numpy_to_image(arr, encoding, header)
    assert msg.step == w * SHAPES[encoding] * arr.dtype.itemsize
    # through the wire format too: what a subscriber or a bag sees
    back = cv.image_to_numpy(deserialize_message(serialize_message(msg), Image))
    assert back.dtype == arr.dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)
    assert cv.stamp_to_ns(msg.header.stamp) == 1_700_000_000_123_456_789


def test_image_with_row_padding_and_big_endian():
    arr = np.arange(3 * 5, dtype=np.uint16).reshape(3, 5) * 1000
    padded_step = 5 * 2 + 6
    rows = [arr[r].astype(">u2").tobytes() + b"\xee" * 6 for r in range(3)]
    msg = Image(height=3, width=5, encoding="16UC1", is_bigendian=1, step=padded_step, data=b"".join(rows))
    np.testing.assert_array_equal(cv.image_to_numpy(msg), arr)
    f = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)
    msg = Image(height=3, width=4, encoding="32FC1", is_bigendian=1, step=16, data=f.astype(">f4").tobytes())
    np.testing.assert_array_equal(cv.image_to_numpy(msg), f)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: cv.numpy_to_image(np.zeros((4, 4), np.uint8), "yuv422"), "unsupported image encoding 'yuv422'"),
        (lambda: cv.numpy_to_image(np.zeros((4, 4), np.float64), "32FC1"), "needs dtype float32"),
        (lambda: cv.numpy_to_image(np.zeros((4, 4), np.uint8), "rgb8"), r"needs shape \(H, W, 3\)"),
        (lambda: cv.numpy_to_image(np.zeros((0, 4), np.uint8), "mono8"), "empty image"),
        (lambda: cv.image_to_numpy(Image(height=2, width=2, encoding="rgb8", step=6, data=b"\0" * 5)), "expected height\\*step = 12"),
        (lambda: cv.image_to_numpy(Image(height=2, width=2, encoding="rgb8", step=4, data=b"\0" * 8)), "smaller than"),
        (lambda: cv.to_rgb8(np.zeros((2, 2), np.uint16), "16UC1"), "cannot convert a 16UC1"),
        (lambda: cv.depth_to_metres(np.zeros((2, 2), np.uint8), "mono8"), "16UC1 \\(mm\\) or 32FC1"),
    ],
)
def test_conversion_errors_are_clear(make, match):
    with pytest.raises(cv.ConversionError, match=match):
        make()


def test_colour_and_depth_helpers():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    np.testing.assert_array_equal(cv.to_rgb8(rgb[:, :, ::-1].copy(), "bgr8"), rgb)
    np.testing.assert_array_equal(cv.to_rgb8(rgb[:, :, 0], "mono8"), np.repeat(rgb[:, :, :1], 3, axis=2))
    mm = np.array([[0, 1, 1234], [65535, 500, 0]], dtype=np.uint16)
    m = cv.depth_to_metres(mm, "16UC1")
    assert np.isnan(m[0, 0]) and np.isnan(m[1, 2])
    np.testing.assert_allclose(m[0, 2], 1.234, rtol=1e-6)
    np.testing.assert_array_equal(cv.metres_to_depth16(m), mm)
    f = np.array([[np.nan, -1.0, 0.0, np.inf, 0.5]], dtype=np.float32)
    out = cv.depth_to_metres(f, "32FC1")
    assert np.isnan(out[0, :4]).all() and out[0, 4] == np.float32(0.5)


def test_compressed_png_is_lossless_and_jpeg_is_close():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    back, enc = cv.compressed_to_numpy(cv.numpy_to_compressed(rgb, "rgb8", "png"))
    assert enc == "rgb8"
    np.testing.assert_array_equal(back, rgb)
    smooth = np.dstack([np.tile(np.linspace(0, 255, 32, dtype=np.uint8), (24, 1))] * 3)
    back, _ = cv.compressed_to_numpy(cv.numpy_to_compressed(smooth, "rgb8", "jpeg"))
    assert np.abs(back.astype(int) - smooth).mean() < 3.0
    depth = rng.integers(0, 65535, (8, 8), dtype=np.uint16)
    back, enc = cv.compressed_to_numpy(cv.numpy_to_compressed(depth, "16UC1", "png"))
    assert enc == "16UC1"
    np.testing.assert_array_equal(back, depth)
    # image_transport's compressedDepth: 12-byte header then PNG
    png = cv.numpy_to_compressed(depth, "16UC1", "png")
    cd = type(png)(format="16UC1; compressedDepth png", data=b"\0" * 12 + bytes(png.data))
    np.testing.assert_array_equal(cv.compressed_to_numpy(cd)[0], depth)
    with pytest.raises(cv.ConversionError, match="could not decode"):
        cv.compressed_to_numpy(type(png)(format="jpeg", data=b"not an image"))


def test_camera_info_round_trip():
    intr = CameraIntrinsics(640, 480, 615.3, 615.9, 319.2, 241.7, distortion=(0.1, -0.2, 0.0, 0.0, 0.01), frame_id="cam_optical")
    msg = cv.intrinsics_to_camera_info(intr, stamp=cv.ns_to_stamp(42))
    msg = deserialize_message(serialize_message(msg), CameraInfo)
    assert cv.camera_info_to_intrinsics(msg) == intr
    assert list(msg.p) == [615.3, 0, 319.2, 0, 0, 615.9, 241.7, 0, 0, 0, 1, 0]
    with pytest.raises(cv.ConversionError, match="no camera matrix"):
        cv.camera_info_to_intrinsics(CameraInfo(width=640, height=480))

    # plumb_bob without coefficients (an ideal pinhole) is published as realsense does: D with its 5 coefficients, zero
    ideal = cv.intrinsics_to_camera_info(CameraIntrinsics(64, 48, 50.0, 50.0, 31.5, 23.5))
    assert (ideal.distortion_model, list(ideal.d)) == ("plumb_bob", [0.0] * 5)


def test_colour_conversion_error_names_only_colour_encodings():
    for encoding, data in (("16UC1", b"\0" * 8), ("yuv422", b"\0" * 8), ("32FC1", b"\0" * 16)):
        msg = Image(height=2, width=2, encoding=encoding, step=len(data) // 2, data=data)
        with pytest.raises(cv.ConversionError) as info:
            cv.image_to_rgb8(msg)
        assert str(info.value) == f"cannot convert a {encoding} image to rgb8 (colour encodings: rgb8, bgr8, rgba8, bgra8, mono8, 8UC1, 8UC3)"
    rgb = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    np.testing.assert_array_equal(cv.image_to_rgb8(cv.numpy_to_image(rgb[:, :, ::-1].copy(), "bgr8")), rgb)


def test_transform_stamped_round_trip():
    T = make_transform(quat_to_matrix([0.1, -0.2, 0.3, 0.9]), [0.3, -0.1, 0.55])
    msg = cv.matrix_to_transform_stamped(T, "camera_color_optical_frame", "left_base_link", cv.ns_to_stamp(7))
    assert (msg.header.frame_id, msg.child_frame_id, cv.stamp_to_ns(msg.header.stamp)) == ("camera_color_optical_frame", "left_base_link", 7)
    np.testing.assert_allclose(cv.transform_stamped_to_matrix(msg), T, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(xyz=hnp.arrays(np.float32, st.tuples(st.integers(1, 50), st.just(3)), elements=st.floats(-10, 10, width=32)), with_rgb=st.booleans())
def test_unorganised_cloud_round_trip(xyz, with_rgb):
    rgb = (np.arange(xyz.size, dtype=np.int64).reshape(-1, 3) % 256).astype(np.uint8) if with_rgb else None
    msg = cv.points_to_cloud(xyz, rgb, cv.make_header("base_link"))
    assert msg.height == 1 and msg.width == len(xyz) and msg.point_step == (16 if with_rgb else 12)
    assert msg.row_step == msg.point_step * msg.width and msg.is_dense
    back_xyz, back_rgb = cv.cloud_to_points(deserialize_message(serialize_message(msg), PointCloud2))
    np.testing.assert_array_equal(back_xyz, xyz)
    if with_rgb:
        np.testing.assert_array_equal(back_rgb, rgb)
    else:
        assert back_rgb is None


def test_organised_cloud_keeps_nans_and_shape():
    xyz = np.random.default_rng(1).normal(size=(4, 5, 3)).astype(np.float32)
    xyz[1, 2] = np.nan
    rgb = np.full((4, 5, 3), (10, 200, 30), np.uint8)
    msg = cv.points_to_cloud(xyz, rgb)
    assert (msg.height, msg.width, msg.is_dense) == (4, 5, False)
    back, back_rgb = cv.cloud_to_points(msg, organised=True)
    np.testing.assert_array_equal(back, xyz)
    np.testing.assert_array_equal(back_rgb, rgb)


def test_cloud_reader_handles_foreign_layouts():
    # x y z at odd offsets, an extra intensity field, padded rows, big-endian: as other drivers publish
    n = 3
    pts = np.array([[1.5, -2.0, 3.25], [0.0, 0.5, 9.0], [-7.0, 8.0, 0.125]], np.float32)
    dtype = np.dtype({"names": ["intensity", "x", "y", "z"], "formats": [">f4"] * 4, "offsets": [0, 4, 8, 12], "itemsize": 20})
    arr = np.zeros(n, dtype)
    arr["x"], arr["y"], arr["z"], arr["intensity"] = pts[:, 0], pts[:, 1], pts[:, 2], 7
    msg = PointCloud2(height=1, width=n, point_step=20, row_step=64, is_bigendian=True)
    msg.fields = [PointField(name=k, offset=o, datatype=PointField.FLOAT32, count=1) for k, o in zip(["intensity", "x", "y", "z"], [0, 4, 8, 12])]
    msg.data = arr.tobytes() + b"\0" * 4
    xyz, rgb = cv.cloud_to_points(msg)
    np.testing.assert_array_equal(xyz, pts)
    assert rgb is None
    msg.fields = msg.fields[:2]
    with pytest.raises(cv.ConversionError, match="lacks field"):
        cv.cloud_to_points(msg)


def test_cloud_errors():
    with pytest.raises(cv.ConversionError, match=r"\(N, 3\)"):
        cv.points_to_cloud(np.zeros((5, 2), np.float32))
    with pytest.raises(cv.ConversionError, match="floating point"):
        cv.points_to_cloud(np.zeros((5, 3), np.int32))
    with pytest.raises(cv.ConversionError, match="do not match"):
        cv.points_to_cloud(np.zeros((5, 3), np.float32), np.zeros((4, 3), np.uint8))


def test_pose_array_round_trip():
    rng = np.random.default_rng(3)
    Ts = []
    for _ in range(5):
        q = rng.normal(size=4)
        Ts.append(make_transform(quat_to_matrix(q), rng.normal(size=3)))
    msg = cv.matrices_to_pose_array(Ts, cv.make_header("base_link"))
    back = cv.pose_array_to_matrices(msg)
    np.testing.assert_allclose(back, np.stack(Ts), atol=1e-12)
    assert cv.pose_array_to_matrices(cv.matrices_to_pose_array([])).shape == (0, 4, 4)
