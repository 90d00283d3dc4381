"""The one place that converts between numpy and ROS 2 messages.

Used by every node, by the rosbag replay (rosbags' deserialised messages are
accepted too: only attribute access is used when reading) and by the tests.
Only message packages are imported, never rclpy itself.

Arrays:
  * images are (H, W) or (H, W, C) in the encoding's dtype; colour is RGB
    unless the encoding says BGR;
  * depth is 16UC1 millimetres (realsense2_camera) or 32FC1 metres;
  * point clouds are float32 metres in the message's frame.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, PoseArray, Quaternion, TransformStamped, Vector3
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header

from dkt_stack.intrinsics import CameraIntrinsics
from dkt_stack.transforms import make_transform, matrix_to_quat, quat_to_matrix


class ConversionError(ValueError):
    """A message or array that cannot be converted (encoding, size, dtype)."""


#: encoding -> (numpy dtype, channels)
IMAGE_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "8UC1": (np.dtype(np.uint8), 1),
    "8UC3": (np.dtype(np.uint8), 3),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
}

#: the encodings :func:`to_rgb8` accepts as a colour image (mono is repeated to grey RGB)
COLOUR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1", "8UC3")

_NATIVE_BIG_ENDIAN = sys.byteorder == "big"


# --------------------------------------------------------------------------- time / header


def stamp_to_ns(stamp) -> int:
    """builtin_interfaces/Time (or rosbags' equivalent) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    """Integer nanoseconds -> builtin_interfaces/Time."""
    ns = int(ns)
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def make_header(frame_id: str, stamp_ns: int | None = None, stamp: Time | None = None) -> Header:
    """A std_msgs/Header from a frame id and either a stamp or nanoseconds."""
    if stamp is None:
        stamp = ns_to_stamp(stamp_ns or 0)
    elif not isinstance(stamp, Time):  # a rosbags Time: copy the fields
        stamp = Time(sec=int(stamp.sec), nanosec=int(stamp.nanosec))
    return Header(stamp=stamp, frame_id=frame_id)


# --------------------------------------------------------------------------- images


def image_to_numpy(msg) -> np.ndarray:
    """sensor_msgs/Image -> array (H, W) or (H, W, C) in native byte order.

    Honours row padding in ``step`` and ``is_bigendian``. The result is a new
    array that owns its data (safe to keep after the message is gone).
    """
    encoding = msg.encoding
    if encoding not in IMAGE_ENCODINGS:
        raise ConversionError(f"unsupported image encoding '{encoding}' (supported: {', '.join(IMAGE_ENCODINGS)})")
    dtype, channels = IMAGE_ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ConversionError(f"{encoding} image step {step} is smaller than width*channels*size = {row_bytes}")
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    # Some writers omit the padding after the last row; accept that, nothing shorter or longer.
    if buf.size not in (height * step, height * step - (step - row_bytes)):
        raise ConversionError(f"{encoding} image data has {buf.size} bytes, expected height*step = {height * step}")
    if height == 0 or width == 0:
        raise ConversionError(f"empty {encoding} image ({width}x{height})")
    rows = np.lib.stride_tricks.as_strided(buf, shape=(height, row_bytes), strides=(step, 1))
    swap = bool(msg.is_bigendian) != _NATIVE_BIG_ENDIAN and dtype.itemsize > 1
    arr = np.ascontiguousarray(rows).view(dtype.newbyteorder(">" if msg.is_bigendian else "<") if swap else dtype)
    arr = arr.astype(dtype) if swap else arr
    return arr.reshape(height, width, channels) if channels > 1 else arr.reshape(height, width)


def numpy_to_image(array: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """Array -> sensor_msgs/Image with a tight ``step`` and native byte order."""
    if encoding not in IMAGE_ENCODINGS:
        raise ConversionError(f"unsupported image encoding '{encoding}' (supported: {', '.join(IMAGE_ENCODINGS)})")
    dtype, channels = IMAGE_ENCODINGS[encoding]
    array = np.asarray(array)
    if array.dtype != dtype:
        raise ConversionError(f"{encoding} needs dtype {dtype}, got {array.dtype}")
    expected_ndim = 2 if channels == 1 else 3
    if array.ndim == 3 and channels == 1 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim != expected_ndim or (channels > 1 and array.shape[2] != channels):
        raise ConversionError(f"{encoding} needs shape (H, W{', ' + str(channels) if channels > 1 else ''}), got {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ConversionError(f"empty image of shape {array.shape}")
    array = np.ascontiguousarray(array)
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(_NATIVE_BIG_ENDIAN)
    msg.step = msg.width * channels * dtype.itemsize
    msg.data = array.tobytes()
    return msg


def image_to_rgb8(msg) -> np.ndarray:
    """A colour (or mono8) sensor_msgs/Image -> (H, W, 3) uint8 RGB; the error names only colour encodings."""
    if msg.encoding not in COLOUR_ENCODINGS:
        raise ConversionError(f"cannot convert a {msg.encoding} image to rgb8 (colour encodings: {', '.join(COLOUR_ENCODINGS)})")
    return to_rgb8(image_to_numpy(msg), msg.encoding)


def to_rgb8(array: np.ndarray, encoding: str) -> np.ndarray:
    """Any supported colour/mono 8-bit image -> (H, W, 3) uint8 RGB."""
    if encoding in ("rgb8", "8UC3"):
        return array
    if encoding == "bgr8":
        return array[:, :, ::-1].copy()
    if encoding == "rgba8":
        return array[:, :, :3].copy()
    if encoding == "bgra8":
        return array[:, :, 2::-1].copy()
    if encoding in ("mono8", "8UC1"):
        return np.repeat(array[:, :, None], 3, axis=2)
    raise ConversionError(f"cannot convert a {encoding} image to rgb8 (colour encodings: {', '.join(COLOUR_ENCODINGS)})")


def depth_to_metres(array: np.ndarray, encoding: str) -> np.ndarray:
    """Depth image (16UC1/mono16 mm or 32FC1 m) -> float32 metres, NaN where 0/invalid."""
    if encoding in ("16UC1", "mono16"):
        out = array.astype(np.float32) * np.float32(0.001)
        out[array == 0] = np.nan
        return out
    if encoding == "32FC1":
        out = array.astype(np.float32, copy=True)
        out[~np.isfinite(out) | (out <= 0)] = np.nan
        return out
    raise ConversionError(f"depth image must be 16UC1 (mm) or 32FC1 (m), got '{encoding}'")


def metres_to_depth16(depth_m: np.ndarray) -> np.ndarray:
    """float metres (NaN invalid) -> uint16 millimetres (0 invalid), rounded, clipped to 65.535 m."""
    depth_m = np.asarray(depth_m, dtype=np.float32)
    mm = np.where(np.isfinite(depth_m) & (depth_m > 0), np.rint(depth_m * 1000.0), 0)
    return np.clip(mm, 0, 65535).astype(np.uint16)


def compressed_to_numpy(msg) -> tuple[np.ndarray, str]:
    """sensor_msgs/CompressedImage (jpeg/png, or image_transport compressedDepth) -> (array, encoding)."""
    import cv2

    fmt = (msg.format or "").lower()
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if "compresseddepth" in fmt:
        # compressedDepth: a 12-byte ConfigHeader (format enum + two floats) precedes the PNG.
        if data.size <= 12:
            raise ConversionError("compressedDepth image is too short")
        depth = cv2.imdecode(data[12:], cv2.IMREAD_UNCHANGED)
        if depth is None or depth.dtype != np.uint16:
            raise ConversionError("could not decode compressedDepth image (only 16UC1 PNG is supported)")
        return depth, "16UC1"
    if data.size == 0:
        raise ConversionError("empty compressed image")
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise ConversionError(f"could not decode compressed image with format '{msg.format}'")
    if decoded.ndim == 2:
        return decoded, "mono8" if decoded.dtype == np.uint8 else "16UC1"
    if decoded.shape[2] == 4:
        decoded = decoded[:, :, :3]
    return np.ascontiguousarray(decoded[:, :, ::-1]), "rgb8"  # OpenCV decodes to BGR


def numpy_to_compressed(array: np.ndarray, encoding: str, fmt: str = "jpeg", header: Header | None = None) -> CompressedImage:
    """rgb8/mono8/16UC1 array -> CompressedImage (``jpeg`` or ``png``), format string as image_transport writes it."""
    import cv2

    if fmt not in ("jpeg", "png"):
        raise ConversionError(f"compressed format must be jpeg or png, got '{fmt}'")
    if encoding == "rgb8":
        ok, buf = cv2.imencode("." + ("jpg" if fmt == "jpeg" else "png"), np.ascontiguousarray(array[:, :, ::-1]))
        fmt_str = f"rgb8; {fmt} compressed bgr8"
    elif encoding in ("mono8", "16UC1"):
        if fmt == "jpeg" and encoding == "16UC1":
            raise ConversionError("16UC1 images can only be compressed as png")
        ok, buf = cv2.imencode("." + ("jpg" if fmt == "jpeg" else "png"), array)
        fmt_str = f"{encoding}; {fmt} compressed {encoding}"
    else:
        raise ConversionError(f"cannot compress a {encoding} image")
    if not ok:
        raise ConversionError("OpenCV failed to encode the image")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = fmt_str
    msg.data = buf.tobytes()
    return msg


# --------------------------------------------------------------------------- camera info


def camera_info_to_intrinsics(msg) -> CameraIntrinsics:
    """sensor_msgs/CameraInfo -> CameraIntrinsics (frame id from the header)."""
    K = np.asarray(msg.k, dtype=np.float64)
    if K.size != 9 or not np.any(K):
        raise ConversionError("camera_info has no camera matrix K (all zeros: uncalibrated camera?)")
    try:
        return CameraIntrinsics.from_matrix(
            K,
            int(msg.width),
            int(msg.height),
            distortion=tuple(float(d) for d in msg.d),
            distortion_model=msg.distortion_model,
            frame_id=msg.header.frame_id,
        )
    except ValueError as exc:
        raise ConversionError(f"invalid camera_info: {exc}") from exc


def intrinsics_to_camera_info(intrinsics: CameraIntrinsics, stamp: Time | None = None) -> CameraInfo:
    """CameraIntrinsics -> sensor_msgs/CameraInfo (R = I, P = [K | 0]).

    ``plumb_bob`` always carries its 5 coefficients (k1 k2 t1 t2 k3), as
    realsense2_camera publishes them: no coefficients means no distortion, zeros.
    """
    msg = CameraInfo()
    msg.header = make_header(intrinsics.frame_id, stamp=stamp)
    msg.width, msg.height = intrinsics.width, intrinsics.height
    msg.distortion_model = intrinsics.distortion_model
    d = list(intrinsics.distortion)
    msg.d = [0.0] * 5 if intrinsics.distortion_model == "plumb_bob" and not d else d
    K = intrinsics.K
    msg.k = K.reshape(-1).tolist()
    msg.r = np.eye(3).reshape(-1).tolist()
    P = np.zeros((3, 4))
    P[:, :3] = K
    msg.p = P.reshape(-1).tolist()
    return msg


# --------------------------------------------------------------------------- point clouds

_PF_DTYPES = {
    PointField.INT8: np.int8,
    PointField.UINT8: np.uint8,
    PointField.INT16: np.int16,
    PointField.UINT16: np.uint16,
    PointField.INT32: np.int32,
    PointField.UINT32: np.uint32,
    PointField.FLOAT32: np.float32,
    PointField.FLOAT64: np.float64,
}


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB -> (...,) float32 holding 0x00RRGGBB bits (the PCL/rviz ``rgb`` field)."""
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.shape[-1] != 3:
        raise ConversionError(f"colours must be (..., 3) uint8, got {rgb.dtype} {rgb.shape}")
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2].astype(np.uint32)
    return packed.view(np.float32)


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_rgb`."""
    bits = np.ascontiguousarray(packed, dtype=np.float32).view(np.uint32)
    return np.stack([(bits >> 16) & 0xFF, (bits >> 8) & 0xFF, bits & 0xFF], axis=-1).astype(np.uint8)


def points_to_cloud(xyz: np.ndarray, rgb: np.ndarray | None = None, header: Header | None = None) -> PointCloud2:
    """XYZ (+RGB) -> PointCloud2 with float32 x, y, z (+ packed rgb).

    Args:
        xyz: (N, 3) unorganised or (H, W, 3) organised points in metres; NaN
            marks an invalid point (organised clouds keep them, ``is_dense`` False).
        rgb: matching (N, 3) or (H, W, 3) uint8 colours, or None.
    """
    xyz = np.asarray(xyz)
    if xyz.ndim not in (2, 3) or xyz.shape[-1] != 3:
        raise ConversionError(f"points must be (N, 3) or (H, W, 3), got {xyz.shape}")
    if xyz.dtype.kind != "f":
        raise ConversionError(f"points must be floating point metres, got {xyz.dtype}")
    height, width = (1, xyz.shape[0]) if xyz.ndim == 2 else xyz.shape[:2]
    names = ["x", "y", "z"] + (["rgb"] if rgb is not None else [])
    dtype = np.dtype({"names": names, "formats": [np.float32] * len(names), "offsets": [4 * i for i in range(len(names))], "itemsize": 4 * len(names)})
    flat = np.empty(height * width, dtype=dtype)
    xyz32 = xyz.reshape(-1, 3).astype(np.float32, copy=False)
    flat["x"], flat["y"], flat["z"] = xyz32[:, 0], xyz32[:, 1], xyz32[:, 2]
    if rgb is not None:
        rgb = np.asarray(rgb)
        if rgb.shape[:-1] != xyz.shape[:-1]:
            raise ConversionError(f"colours {rgb.shape} do not match points {xyz.shape}")
        flat["rgb"] = pack_rgb(rgb.reshape(-1, 3))
    msg = PointCloud2()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(height), int(width)
    msg.fields = [PointField(name=n, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, n in enumerate(names)]
    msg.is_bigendian = _NATIVE_BIG_ENDIAN
    msg.point_step = dtype.itemsize
    msg.row_step = msg.point_step * msg.width
    msg.is_dense = bool(np.isfinite(xyz32).all())
    msg.data = flat.tobytes()
    return msg


def cloud_to_points(msg, organised: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """PointCloud2 -> (xyz float32, rgb uint8 or None).

    Reads any field layout (offsets, point_step, row padding, endianness).
    Returns (N, 3) / (N, 3) unless ``organised`` and the cloud has height > 1,
    then (H, W, 3). Invalid points are kept as NaN.
    """
    fields = {f.name: f for f in msg.fields}
    missing = [n for n in ("x", "y", "z") if n not in fields]
    if missing:
        raise ConversionError(f"PointCloud2 lacks field(s) {missing}")
    order = ">" if msg.is_bigendian else "<"
    names, formats, offsets = [], [], []
    for name in ("x", "y", "z", "rgb", "rgba"):
        if name in fields:
            f = fields[name]
            if f.datatype not in _PF_DTYPES:
                raise ConversionError(f"PointCloud2 field '{name}' has unknown datatype {f.datatype}")
            names.append(name)
            formats.append(np.dtype(_PF_DTYPES[f.datatype]).newbyteorder(order))
            offsets.append(f.offset)
    height, width, point_step, row_step = int(msg.height), int(msg.width), int(msg.point_step), int(msg.row_step)
    if point_step <= 0 or row_step < width * point_step:
        raise ConversionError(f"inconsistent PointCloud2 layout: point_step {point_step}, row_step {row_step}, width {width}")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size < height * row_step:
        raise ConversionError(f"PointCloud2 data has {data.size} bytes, expected height*row_step = {height * row_step}")
    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step})
    rows = np.lib.stride_tricks.as_strided(data, shape=(height, width * point_step), strides=(row_step, 1))
    pts = np.ascontiguousarray(rows).view(dtype).reshape(-1)
    xyz = np.stack([pts["x"].astype(np.float32), pts["y"].astype(np.float32), pts["z"].astype(np.float32)], axis=1)
    rgb = None
    colour_field = "rgb" if "rgb" in names else "rgba" if "rgba" in names else None
    if colour_field is not None:
        rgb = unpack_rgb(pts[colour_field].astype(np.float32) if pts[colour_field].dtype.kind == "f" else pts[colour_field].astype(np.uint32).view(np.float32))
    if organised and height > 1:
        xyz = xyz.reshape(height, width, 3)
        rgb = rgb.reshape(height, width, 3) if rgb is not None else None
    return xyz, rgb


# --------------------------------------------------------------------------- poses


def matrix_to_pose(T: np.ndarray) -> Pose:
    """4x4 transform -> geometry_msgs/Pose."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4):
        raise ConversionError(f"transform must be 4x4, got {T.shape}")
    q = matrix_to_quat(T[:3, :3])
    return Pose(
        position=Point(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
        orientation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])),
    )


def matrix_to_transform_stamped(T: np.ndarray, parent: str, child: str, stamp: Time | None = None) -> TransformStamped:
    """4x4 transform of ``child`` in ``parent`` (``p_parent = T @ p_child``) -> geometry_msgs/TransformStamped, as TF wants it."""
    pose = matrix_to_pose(T)
    msg = TransformStamped(header=make_header(parent, stamp=stamp), child_frame_id=child)
    msg.transform.translation = Vector3(x=pose.position.x, y=pose.position.y, z=pose.position.z)
    msg.transform.rotation = pose.orientation
    return msg


def transform_stamped_to_matrix(msg) -> np.ndarray:
    """geometry_msgs/TransformStamped (or Transform) -> 4x4 transform of the child frame in the parent."""
    t = getattr(msg, "transform", msg)
    q, p = t.rotation, t.translation
    return make_transform(quat_to_matrix([q.x, q.y, q.z, q.w]), [p.x, p.y, p.z])


def pose_to_matrix(pose) -> np.ndarray:
    """geometry_msgs/Pose -> 4x4 transform."""
    q = pose.orientation
    p = pose.position
    return make_transform(quat_to_matrix([q.x, q.y, q.z, q.w]), [p.x, p.y, p.z])


def matrices_to_pose_array(transforms: Sequence[np.ndarray] | np.ndarray, header: Header | None = None) -> PoseArray:
    """Sequence of 4x4 transforms -> geometry_msgs/PoseArray (order kept)."""
    msg = PoseArray()
    if header is not None:
        msg.header = header
    msg.poses = [matrix_to_pose(T) for T in transforms]
    return msg


def pose_array_to_matrices(msg) -> np.ndarray:
    """geometry_msgs/PoseArray -> (N, 4, 4) transforms."""
    if not msg.poses:
        return np.zeros((0, 4, 4))
    return np.stack([pose_to_matrix(p) for p in msg.poses])


# --------------------------------------------------------------------------- joint trajectories


def arrays_to_joint_trajectory(
    joint_names: Sequence[str],
    times: np.ndarray,
    positions: np.ndarray,
    velocities: np.ndarray | None = None,
    efforts: np.ndarray | None = None,
    header: Header | None = None,
):
    """(T,) times (s from start) and (T, J) positions [, velocities, efforts] -> trajectory_msgs/JointTrajectory."""
    from builtin_interfaces.msg import Duration
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    times, positions = np.asarray(times, dtype=np.float64), np.asarray(positions, dtype=np.float64)
    if positions.ndim != 2 or positions.shape != (len(times), len(joint_names)):
        raise ConversionError(f"positions must be (T, {len(joint_names)}) for T={len(times)} times, got {positions.shape}")
    msg = JointTrajectory()
    if header is not None:
        msg.header = header
    msg.joint_names = list(joint_names)
    for i, t in enumerate(times):
        ns = int(np.rint(t * 1e9))
        pt = JointTrajectoryPoint(time_from_start=Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000))
        pt.positions = positions[i].tolist()
        if velocities is not None:
            pt.velocities = np.asarray(velocities, dtype=np.float64)[i].tolist()
        if efforts is not None:
            pt.effort = np.asarray(efforts, dtype=np.float64)[i].tolist()
        msg.points.append(pt)
    return msg


def joint_trajectory_to_arrays(msg) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """trajectory_msgs/JointTrajectory -> (names, times (T,), positions, velocities, efforts (T, J)); missing fields are zeros."""
    names = list(msg.joint_names)
    n, j = len(msg.points), len(names)
    times = np.array([p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points])
    out = [np.zeros((n, j)) for _ in range(3)]
    for i, p in enumerate(msg.points):
        for arr, values in zip(out, (p.positions, p.velocities, p.effort)):
            if len(values) not in (0, j):
                raise ConversionError(f"trajectory point {i} has {len(values)} values for {j} joints")
            if len(values):
                arr[i] = values
    return names, times, out[0], out[1], out[2]
