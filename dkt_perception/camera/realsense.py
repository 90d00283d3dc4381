"""Intel RealSense D435 through pyrealsense2: live device or .bag playback.

Frame processing (:class:`FramesetConverter`) is kept apart from
``pipeline.start()`` so tests feed framesets from an ``rs.software_device``
through exactly the code a live camera uses (pyrealsense2 2.59 cannot run a
pipeline on a software device).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from dkt_perception.camera.frames import CameraFrame, CameraLost, EndOfStream, NoCameraError
from dkt_stack.config import param
from dkt_stack.intrinsics import CameraIntrinsics

_DISTORTION_NAMES = {
    "none": "plumb_bob",
    "brown_conrady": "plumb_bob",
    "modified_brown_conrady": "plumb_bob",
    "inverse_brown_conrady": "plumb_bob",
    "kannala_brandt4": "equidistant",
    "ftheta": "equidistant",
}


@dataclass
class RealSenseConfig:
    serial: str = param("", help="device serial number; empty = the first D4xx found")
    width: int = param(640, help="colour and depth width (px)")
    height: int = param(480, help="colour and depth height (px)")
    fps: float = param(30.0, help="frame rate (Hz): 6, 15, 30 or 60 on a D435")
    enable_depth: bool = param(True, help="stream the sensor's own depth, aligned to colour (the 'raw' baseline)")
    bag_path: str = param("", help="RealSense .bag recording played by the 'bag' source")
    bag_realtime: bool = param(True, help="play a .bag at recorded speed (false: as fast as it is read)")
    frame_id: str = param("camera_color_optical_frame", help="optical frame id (the node sets it from its frame_id parameter)")
    timeout_ms: int = param(2000, help="a frame not arriving within this time counts as a lost camera")


def intrinsics_from_rs(intr, frame_id: str) -> CameraIntrinsics:
    """pyrealsense2 intrinsics -> CameraIntrinsics."""
    model = str(intr.model).split(".")[-1]
    return CameraIntrinsics(
        width=int(intr.width),
        height=int(intr.height),
        fx=float(intr.fx),
        fy=float(intr.fy),
        cx=float(intr.ppx),
        cy=float(intr.ppy),
        distortion=tuple(float(c) for c in intr.coeffs),
        distortion_model=_DISTORTION_NAMES.get(model, "plumb_bob"),
        frame_id=frame_id,
    )


class FramesetConverter:
    """rs.composite_frame (colour + depth) -> CameraFrame: align depth to colour, convert units.

    Args:
        depth_scale: metres per depth unit of the device (0.001 on a D435).
        frame_id: optical frame id for the intrinsics.
    """

    def __init__(self, depth_scale: float = 0.001, frame_id: str = "camera_color_optical_frame"):
        import pyrealsense2 as rs

        self._rs = rs
        self.depth_scale = float(depth_scale)
        self.frame_id = frame_id
        self._align = rs.align(rs.stream.color)
        self._intrinsics: CameraIntrinsics | None = None

    def convert(self, frameset, wall_clock_ns: int | None = None) -> CameraFrame | None:
        """Convert one frameset; None when it lacks a colour frame (the first ones may be incomplete)."""
        rs = self._rs
        frameset = frameset.as_frameset()
        has_depth = frameset.get_depth_frame() is not None and bool(frameset.get_depth_frame())
        if has_depth:
            frameset = self._align.process(frameset)
        color = frameset.get_color_frame()
        if not color:
            return None
        profile = color.get_profile().as_video_stream_profile()
        if self._intrinsics is None or (self._intrinsics.width, self._intrinsics.height) != (profile.width(), profile.height()):
            self._intrinsics = intrinsics_from_rs(profile.get_intrinsics(), self.frame_id)
        rgb = np.asanyarray(color.get_data())
        fmt = profile.format()
        if fmt == rs.format.bgr8:
            rgb = rgb[:, :, ::-1]
        elif fmt != rs.format.rgb8:
            raise ValueError(f"colour stream must be rgb8 or bgr8, got {fmt}")
        rgb = np.ascontiguousarray(rgb)
        depth_mm = None
        if has_depth:
            depth = frameset.get_depth_frame()
            raw = np.asanyarray(depth.get_data())
            if abs(self.depth_scale - 0.001) < 1e-9:
                depth_mm = raw.copy()
            else:
                depth_mm = np.clip(np.rint(raw.astype(np.float64) * (self.depth_scale * 1000.0)), 0, 65535).astype(np.uint16)
        stamp_ns = wall_clock_ns if wall_clock_ns is not None else int(color.get_timestamp() * 1e6)
        return CameraFrame(rgb=rgb, depth_mm=depth_mm, intrinsics=self._intrinsics, stamp_ns=stamp_ns, frame_number=int(color.get_frame_number()))


class RealSenseSource:
    """A live D435 (or .bag) behind ``rs.pipeline``; ``read()`` returns the next CameraFrame."""

    def __init__(self, config: RealSenseConfig):
        import pyrealsense2 as rs

        self._rs = rs
        self.config = config
        self._pipeline = None
        self._converter: FramesetConverter | None = None
        self._playback = None
        self.description = ""

    def open(self) -> None:
        rs, cfg = self._rs, self.config
        rs_config = rs.config()
        if cfg.bag_path:
            rs_config.enable_device_from_file(cfg.bag_path, repeat_playback=False)
        else:
            devices = rs.context().query_devices()
            serials = [d.get_info(rs.camera_info.serial_number) for d in devices]
            if not serials:
                raise NoCameraError("no RealSense device found (is the D435 plugged into a USB 3 port? `rs-enumerate-devices` lists them)")
            if cfg.serial and cfg.serial not in serials:
                raise NoCameraError(f"no RealSense device with serial {cfg.serial} (found: {', '.join(serials)})")
            if cfg.serial:
                rs_config.enable_device(cfg.serial)
            rs_config.enable_stream(rs.stream.color, cfg.width, cfg.height, rs.format.rgb8, int(cfg.fps))
            if cfg.enable_depth:
                rs_config.enable_stream(rs.stream.depth, cfg.width, cfg.height, rs.format.z16, int(cfg.fps))
        pipeline = rs.pipeline()
        try:
            profile = pipeline.start(rs_config)
        except RuntimeError as exc:
            raise NoCameraError(f"cannot start the RealSense pipeline: {exc}") from exc
        device = profile.get_device()
        depth_scale = 0.001
        try:
            depth_scale = device.first_depth_sensor().get_depth_scale()
        except RuntimeError:
            pass  # colour-only recording
        if cfg.bag_path:
            self._playback = device.as_playback()
            self._playback.set_real_time(cfg.bag_realtime)
        self._pipeline = pipeline
        self._converter = FramesetConverter(depth_scale, cfg.frame_id)
        name = device.get_info(rs.camera_info.name)
        serial = device.get_info(rs.camera_info.serial_number) if device.supports(rs.camera_info.serial_number) else "?"
        self.description = f"{name} serial {serial}" + (f" from {cfg.bag_path}" if cfg.bag_path else "")

    def read(self) -> CameraFrame:
        if self._pipeline is None:
            self.open()
        for _ in range(10):  # skip incomplete framesets (first ones after start)
            ok, frameset = self._pipeline.try_wait_for_frames(self.config.timeout_ms)
            if not ok:
                if self._playback is not None and self._playback.current_status() == self._rs.playback_status.stopped:
                    raise EndOfStream(f"end of recording {self.config.bag_path}")
                raise CameraLost(f"no frame from {self.description or 'the camera'} within {self.config.timeout_ms} ms")
            # Live: stamp with the host clock (the D435's hardware clock is not ROS time).
            stamp = None if self._playback is not None else time.time_ns()
            frame = self._converter.convert(frameset, stamp)
            if frame is not None:
                return frame
        raise CameraLost("the camera delivers framesets without a colour frame")

    def close(self) -> None:
        if self._pipeline is not None:
            try:
                self._pipeline.stop()
            except RuntimeError:
                pass  # already stopped (e.g. the device was unplugged): nothing left to release
            self._pipeline = None
