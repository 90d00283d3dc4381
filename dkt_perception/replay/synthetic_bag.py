"""Record the synthetic tabletop as a realsense2_camera-like rosbag2 bag (tests, benchmarks, demos).

Written with rosbags alone, under a chosen distro's type store (Humble by
default, so the replay is exercised on definitions that are not its own), in
sqlite3 or MCAP. Topics (``prefix`` = ``/camera`` or ``/camera/camera``):
  * ``<prefix>/color/image_raw`` rgb8 (or ``.../image_raw/compressed``, jpeg/png);
  * ``<prefix>/color/camera_info``;
  * ``<prefix>/aligned_depth_to_color/image_raw`` 16UC1 mm (or ``/compressedDepth``);
  * ``<prefix>/ground_truth/depth`` 32FC1 metres (exact z-depth; NaN where nothing is hit);
  * ``/notes`` (std_msgs/String, every other frame): a topic the replay must copy untouched.
Header stamps are the scene's; bag timestamps are the stamps plus a fixed
transport delay (``delay_ns``), as a recorder sees them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from dkt_perception.synthetic_scene import SyntheticScene, default_scene

FRAME_ID = "camera_color_optical_frame"


def _header(ts, stamp_ns: int, frame_id: str):
    Time = ts.types["builtin_interfaces/msg/Time"]
    Header = ts.types["std_msgs/msg/Header"]
    return Header(stamp=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000), frame_id=frame_id)


def _image(ts, array: np.ndarray, encoding: str, header):
    array = np.ascontiguousarray(array)
    h, w = array.shape[:2]
    step = array.strides[0]
    return ts.types["sensor_msgs/msg/Image"](
        header=header, height=h, width=w, encoding=encoding, is_bigendian=0, step=step, data=array.view(np.uint8).reshape(-1)
    )


def _compressed(ts, array: np.ndarray, encoding: str, header, depth: bool):
    import cv2

    if depth:
        ok, buf = cv2.imencode(".png", array)
        # image_transport's compressedDepth: 12-byte ConfigHeader (format enum + two float depth params) before the PNG
        data = np.concatenate([np.zeros(12, dtype=np.uint8), buf.reshape(-1)])
        fmt = "16UC1; compressedDepth png"
    else:
        ok, buf = cv2.imencode(".png" if encoding == "png" else ".jpg", np.ascontiguousarray(array[:, :, ::-1]))
        data = buf.reshape(-1)
        fmt = f"rgb8; {'png' if encoding == 'png' else 'jpeg'} compressed bgr8"
    if not ok:
        raise ValueError("OpenCV could not encode the synthetic image")
    return ts.types["sensor_msgs/msg/CompressedImage"](header=header, format=fmt, data=data)


def _camera_info(ts, scene: SyntheticScene, header):
    K = scene.intrinsics.K
    P = np.zeros((3, 4))
    P[:, :3] = K
    RoI = ts.types["sensor_msgs/msg/RegionOfInterest"]
    return ts.types["sensor_msgs/msg/CameraInfo"](
        header=header,
        height=scene.intrinsics.height,
        width=scene.intrinsics.width,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=K.reshape(-1).astype(np.float64),
        r=np.eye(3).reshape(-1),
        p=P.reshape(-1),
        binning_x=0,
        binning_y=0,
        roi=RoI(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
    )


def write_synthetic_bag(
    path: str | Path,
    frames: int = 5,
    *,
    width: int = 160,
    height: int = 120,
    seed: int = 0,
    storage: Literal["sqlite3", "mcap"] = "sqlite3",
    prefix: str = "/camera",
    compressed_color: Literal["", "jpeg", "png"] = "",
    compressed_depth: bool = False,
    raw_depth: bool = True,
    ground_truth: bool = True,
    distro: Stores = Stores.ROS2_HUMBLE,
    delay_ns: int = 2_000_000,
    scene: SyntheticScene | None = None,
) -> Path:
    """Write ``frames`` frames of the default synthetic scene to a new bag folder ``path``; returns ``path``.

    ``scene`` overrides the default scene (its size then wins over width/height).
    """
    path = Path(path)
    scene = scene or default_scene(seed, width=width, height=height)
    ts = get_typestore(distro)
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    String = ts.types["std_msgs/msg/String"]
    with Writer(path, version=9 if distro == Stores.ROS2_KILTED else 8, storage_plugin=plugin) as w:
        color_topic = f"{prefix}/color/image_raw" + ("/compressed" if compressed_color else "")
        depth_topic = f"{prefix}/aligned_depth_to_color/image_raw" + ("/compressedDepth" if compressed_depth else "")
        conns = {
            "color": w.add_connection(color_topic, "sensor_msgs/msg/" + ("CompressedImage" if compressed_color else "Image"), typestore=ts),
            "info": w.add_connection(f"{prefix}/color/camera_info", "sensor_msgs/msg/CameraInfo", typestore=ts),
            "notes": w.add_connection("/notes", "std_msgs/msg/String", typestore=ts),
        }
        if raw_depth:
            conns["depth"] = w.add_connection(depth_topic, "sensor_msgs/msg/" + ("CompressedImage" if compressed_depth else "Image"), typestore=ts)
        if ground_truth:
            conns["gt"] = w.add_connection(f"{prefix}/ground_truth/depth", "sensor_msgs/msg/Image", typestore=ts)

        def put(key: str, msg, t: int) -> None:
            w.write(conns[key], t, ts.serialize_cdr(msg, conns[key].msgtype))

        for i in range(frames):
            f = scene.render(i)
            header = _header(ts, f.stamp_ns, FRAME_ID)
            t = f.stamp_ns + delay_ns
            put("info", _camera_info(ts, scene, header), t)
            if compressed_color:
                put("color", _compressed(ts, f.rgb, compressed_color, header, depth=False), t + 1)
            else:
                put("color", _image(ts, f.rgb, "rgb8", header), t + 1)
            if raw_depth:
                mm = np.where(np.isfinite(f.raw_depth_m), np.rint(f.raw_depth_m * 1000.0), 0).astype(np.uint16)
                put("depth", _compressed(ts, mm, "16UC1", header, depth=True) if compressed_depth else _image(ts, mm, "16UC1", header), t + 2)
            if ground_truth:
                put("gt", _image(ts, f.depth_gt_m.astype(np.float32), "32FC1", header), t + 3)
            if i % 2 == 0:
                put("notes", String(data=f"frame {i}"), t + 4)
    return path
