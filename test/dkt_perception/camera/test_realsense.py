"""The D435 frame path, fed by a pyrealsense2 software device (no camera needed)."""

from __future__ import annotations

import numpy as np
import pyrealsense2 as rs
import pytest

from dkt_perception.camera.frames import NoCameraError
from dkt_perception.camera.realsense import FramesetConverter, RealSenseConfig, RealSenseSource

W, H = 64, 48


def _intrinsics(fx=60.0, fy=61.0, ppx=31.5, ppy=23.25):
    intr = rs.intrinsics()
    intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy = W, H, fx, fy, ppx, ppy
    intr.model = rs.distortion.brown_conrady
    intr.coeffs = [0.0] * 5
    return intr


def _video_stream(kind, fmt, bpp, index, uid):
    vs = rs.video_stream()
    vs.type, vs.fmt, vs.bpp, vs.index, vs.uid = kind, fmt, bpp, index, uid
    vs.width, vs.height, vs.fps = W, H, 30
    vs.intrinsics = _intrinsics()
    return vs


class SoftwareD435:
    """A software device with a depth and a colour sensor that share intrinsics and an identity extrinsic."""

    def __init__(self, depth_units=0.001):
        self.device = rs.software_device()
        self.depth_sensor = self.device.add_sensor("Depth")
        self.color_sensor = self.device.add_sensor("Color")
        self.depth_profile = self.depth_sensor.add_video_stream(_video_stream(rs.stream.depth, rs.format.z16, 2, 0, 0))
        self.color_profile = self.color_sensor.add_video_stream(_video_stream(rs.stream.color, rs.format.rgb8, 3, 0, 1))
        self.depth_sensor.add_read_only_option(rs.option.depth_units, depth_units)
        ext = rs.extrinsics()
        ext.rotation = [1, 0, 0, 0, 1, 0, 0, 0, 1]
        ext.translation = [0, 0, 0]
        self.depth_profile.register_extrinsics_to(self.color_profile, ext)
        self.sync = rs.syncer()
        self.depth_sensor.open(self.depth_profile)
        self.color_sensor.open(self.color_profile)
        self.depth_sensor.start(self.sync)
        self.color_sensor.start(self.sync)
        self._keep = []

    def push(self, i: int, rgb: np.ndarray, depth: np.ndarray):
        for sensor, profile, arr, bpp in ((self.depth_sensor, self.depth_profile, depth, 2), (self.color_sensor, self.color_profile, rgb, 3)):
            frame = rs.software_video_frame()
            arr = np.ascontiguousarray(arr)
            self._keep.append(arr)
            frame.pixels = arr
            frame.bpp, frame.stride = bpp, W * bpp
            frame.timestamp = i * 33.3
            frame.domain = rs.timestamp_domain.hardware_clock
            frame.frame_number = i
            frame.profile = profile.as_video_stream_profile()
            sensor.on_video_frame(frame)

    def close(self):
        for s in (self.depth_sensor, self.color_sensor):
            s.stop()
            s.close()


def test_software_framesets_convert_exactly():
    cam = SoftwareD435()
    conv = FramesetConverter(depth_scale=0.001, frame_id="cam_optical")
    rng = np.random.default_rng(0)
    got = []
    try:
        for i in range(1, 8):
            rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
            depth = np.full((H, W), 700 + i, np.uint16)
            depth[5:9, 10:20] = 0  # a hole stays a hole
            cam.push(i, rgb, depth)
            ok, fs = cam.sync.try_wait_for_frames(1000)
            if ok:
                frame = conv.convert(fs, wall_clock_ns=1000 + i)
                if frame is not None and frame.depth_mm is not None:
                    got.append((i, rgb, depth, frame))
    finally:
        cam.close()
    assert got, "the syncer delivered no complete frameset"
    i, rgb, depth, frame = got[-1]
    np.testing.assert_array_equal(frame.rgb, rgb)
    assert frame.depth_mm.dtype == np.uint16 and frame.depth_mm.shape == (H, W)
    # identity extrinsic + equal intrinsics: alignment keeps every valid pixel's depth
    valid = frame.depth_mm > 0
    assert valid.mean() > 0.8
    np.testing.assert_array_equal(frame.depth_mm[valid], depth[valid])
    assert (frame.depth_mm[5:9, 12:18] == 0).all()
    assert frame.intrinsics.as_tuple == (60.0, 61.0, 31.5, 23.25) and frame.intrinsics.frame_id == "cam_optical"
    assert frame.stamp_ns == 1000 + i and frame.frame_number == i


def test_depth_scale_other_than_millimetres_is_converted():
    cam = SoftwareD435(depth_units=0.0001)
    conv = FramesetConverter(depth_scale=0.0001)
    try:
        frame = None
        for i in range(1, 8):
            cam.push(i, np.zeros((H, W, 3), np.uint8), np.full((H, W), 12345, np.uint16))
            ok, fs = cam.sync.try_wait_for_frames(1000)
            if ok:
                frame = conv.convert(fs) or frame
    finally:
        cam.close()
    assert frame is not None and frame.depth_mm is not None
    valid = frame.depth_mm > 0
    assert (frame.depth_mm[valid] == 1234).all()  # 12345 * 0.1 mm, rounded


def test_no_device_gives_a_clear_error():
    if len(rs.context().query_devices()) > 0:
        pytest.skip("a RealSense camera is connected")
    source = RealSenseSource(RealSenseConfig(serial="123"))
    with pytest.raises(NoCameraError, match="no RealSense device found"):
        source.open()
