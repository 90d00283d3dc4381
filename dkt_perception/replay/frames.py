"""Camera frames assembled from a bag's messages: colour + camera_info (+ raw depth), matched by header stamp.

The replay feeds every deserialised message of the colour, camera_info and raw
depth topics in bag order; :class:`FrameAssembler` returns complete
:class:`BagFrame` objects as soon as they exist, so only a few messages are
held at a time. Matching follows the depth node: colour and raw depth by
header stamp within ``slop_ns`` (realsense2_camera stamps aligned depth with the
depth frame's time, a few ms from the colour frame's), and the newest
camera_info for the intrinsics. Colour frames before the first camera_info
wait for it.

Array conventions: ``rgb`` uint8 (H, W, 3) RGB; ``raw_depth_m`` float32 (H, W)
z-depth along the colour camera's optical axis in metres, NaN where the sensor
has no measurement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dkt_perception.replay.bag_io import BagError, BagTopics
from dkt_stack import conversions as cv
from dkt_stack.intrinsics import CameraIntrinsics
from dkt_stack.stamp_sync import StampSynchronizer

COMPRESSED = "sensor_msgs/msg/CompressedImage"


def decode_rgb(msg, msgtype: str) -> np.ndarray:
    """sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8) or CompressedImage (jpeg/png) -> uint8 (H, W, 3) RGB."""
    if msgtype == COMPRESSED:
        array, encoding = cv.compressed_to_numpy(msg)
    else:
        array, encoding = cv.image_to_numpy(msg), msg.encoding
    return cv.to_rgb8(array, encoding)


def decode_depth_m(msg, msgtype: str) -> np.ndarray:
    """Depth Image (16UC1 mm / 32FC1 m) or CompressedImage (compressedDepth or 16-bit png) -> float32 metres, NaN invalid."""
    if msgtype == COMPRESSED:
        array, encoding = cv.compressed_to_numpy(msg)
    else:
        array, encoding = cv.image_to_numpy(msg), msg.encoding
    return cv.depth_to_metres(array, encoding)


@dataclass
class BagFrame:
    """One camera frame of a bag, ready for the depth backend and the metric step."""

    index: int  #: 0-based order of assembly
    stamp_ns: int  #: header stamp of the colour image, ns
    bag_ns: int  #: bag (receive) timestamp of the colour message, ns: the outputs are written at this time
    frame_id: str  #: optical frame of the colour image
    rgb: np.ndarray
    intrinsics: CameraIntrinsics
    raw_depth_m: np.ndarray | None = None


@dataclass
class _Pending:
    stamp_ns: int
    bag_ns: int
    msg: object
    msgtype: str


class FrameAssembler:
    """Builds :class:`BagFrame` objects from messages fed in bag order.

    Raises BagError (naming the frame and both sizes) when the colour image,
    camera_info and raw depth of a frame do not have the same size, or when a
    message cannot be decoded.
    """

    def __init__(self, topics: BagTopics, slop_ns: int = 5_000_000, queue_size: int = 30):
        self.topics = topics
        self._sync = StampSynchronizer(["rgb", "raw"], slop_ns=slop_ns, queue_size=queue_size) if topics.raw_depth else None
        self._info = None
        self._waiting_for_info: list[tuple[_Pending, _Pending | None]] = []
        self.count = 0
        self.colour_messages = 0

    def add(self, topic: str, msgtype: str, bag_ns: int, msg) -> list[BagFrame]:
        """One message of the colour, camera_info or raw depth topic; returns the frames it completes."""
        if topic == self.topics.info:
            self._info = msg
            waiting, self._waiting_for_info = self._waiting_for_info, []
            return [self._build(colour, raw) for colour, raw in waiting]
        item = _Pending(cv.stamp_to_ns(msg.header.stamp), bag_ns, msg, msgtype)
        if topic == self.topics.color:
            self.colour_messages += 1
            if self._sync is None:
                return self._complete(item, None)
            match = self._sync.add("rgb", item.stamp_ns, item)
        elif topic == self.topics.raw_depth and self._sync is not None:
            match = self._sync.add("raw", item.stamp_ns, item)
        else:
            return []
        if match is None:
            return []
        _, items = match
        return self._complete(items["rgb"], items["raw"])

    def _complete(self, colour: _Pending, raw: _Pending | None) -> list[BagFrame]:
        if self._info is None:
            self._waiting_for_info.append((colour, raw))
            return []
        return [self._build(colour, raw)]

    def finish(self) -> None:
        """Call after the last message: frames still waiting mean the bag has no camera_info."""
        if self._waiting_for_info:
            raise BagError(f"{len(self._waiting_for_info)} colour frame(s) but no camera_info message on {self.topics.info}")

    def _build(self, colour: _Pending, raw: _Pending | None) -> BagFrame:
        where = f"frame {self.count} (stamp {colour.stamp_ns} ns)"
        try:
            intrinsics = cv.camera_info_to_intrinsics(self._info)
            rgb = decode_rgb(colour.msg, colour.msgtype)
            raw_m = decode_depth_m(raw.msg, raw.msgtype) if raw is not None else None
        except cv.ConversionError as exc:
            raise BagError(f"{where}: {exc}") from exc
        size = (intrinsics.height, intrinsics.width)
        if rgb.shape[:2] != size or (raw_m is not None and raw_m.shape != size):
            raw_size = f", raw depth {raw_m.shape[1]}x{raw_m.shape[0]} on {self.topics.raw_depth}" if raw_m is not None else ""
            raise BagError(
                f"{where}: sizes do not match: colour {rgb.shape[1]}x{rgb.shape[0]} on {self.topics.color}, "
                f"camera_info {intrinsics.width}x{intrinsics.height} on {self.topics.info}{raw_size}"
            )
        frame = BagFrame(self.count, colour.stamp_ns, colour.bag_ns, colour.msg.header.frame_id, rgb, intrinsics, raw_m)
        self.count += 1
        return frame
