"""A seeded, deterministic synthetic tabletop: colour, exact depth, labels and a D435-like raw depth.

Used by the tests, by the camera node's ``synthetic`` source (a live 30 Hz
stream), by the demo and by simulated grasp trials.

Frames:
  * world (= table) frame: z up, the table top is the plane z = 0, metres;
  * camera optical frame (REP 103): x right, y down, z forward, metres.
    ``T_world_camera`` maps camera points into the world frame.

The static geometry is ray cast once in ``__init__`` (exactly, in float64);
``render()`` then only adds per-frame sensor noise and D435 dropouts taken
from pre-drawn noise pools at a per-frame random offset, so a 640x480 frame
costs a few milliseconds. With ``camera_motion`` enabled every frame is ray
cast again from a slightly moved camera (slower, for video tests and demos).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from dkt_perception.d435_model import D435Config, dropout_fields, frame_raw_depth, specular_intensity, static_raw_depth
from dkt_stack.config import param
from dkt_stack.intrinsics import CameraIntrinsics
from dkt_stack.transforms import invert_transform, make_transform, transform_points, xyz_rpy_to_transform

Surface = Literal["diffusive", "transparent", "reflective"]

#: Label of pixels that see neither the table nor an object (floor or nothing).
BACKGROUND_LABEL = -1
#: Label of the table top (tags lying on it included).
TABLE_LABEL = 0

# Tag36h11 geometry: 6x6 data bits + 1 black border cell each side = 8 cells (the "tag size"),
# plus the 1-cell white border printed around it = 10 cells.
_TAG_CELLS_BLACK = 8
_TAG_CELLS_TOTAL = 10


@dataclass
class TagSpec:
    """An AprilTag (tag36h11) placed in the world frame."""

    id: int = param(0, help="tag36h11 id")
    size_m: float = param(0.06, help="edge of the black square in metres (the size AprilTag pose estimation uses)")
    position: tuple[float, float, float] = param((0.0, 0.0, 0.0), help="tag centre in the world (table) frame, metres")
    rpy: tuple[float, float, float] = param(
        (0.0, 0.0, 0.0), help="tag orientation in the world frame (roll, pitch, yaw), rad; zeros = lying flat, face up"
    )


@dataclass
class ObjectSpec:
    """A box or an upright cylinder standing on the table."""

    kind: Literal["box", "cylinder"] = param("box", help="primitive shape")
    surface: Surface = param("diffusive", help="material class: diffusive, transparent (translucent) or reflective")
    position: tuple[float, float] = param((0.0, 0.0), help="centre of the footprint on the table, world x, y in metres")
    size: tuple[float, float, float] = param(
        (0.05, 0.05, 0.1), help="box: length x, width y, height z (m); cylinder: diameter, diameter, height (m)"
    )
    yaw: float = param(0.0, help="rotation about world z, rad (boxes)")
    color: tuple[int, int, int] = param((200, 60, 50), help="base RGB colour (transparent: tint)")
    name: str = param("", help="free-form name for logs")


@dataclass
class SceneConfig:
    """The synthetic scene: camera, table, tags, objects and the sensor model."""

    width: int = param(640, help="image width, px")
    height: int = param(480, help="image height, px")
    hfov_deg: float = param(55.0, help="horizontal field of view, degrees (D435 colour at 640x480 is about 55)")
    seed: int = param(0, help="random seed: textures, dropouts and noise are deterministic in it")
    fps: float = param(30.0, help="frame rate used for stamps, Hz")
    start_stamp_ns: int = param(1_700_000_000_000_000_000, help="stamp of frame 0, ns")
    camera_position: tuple[float, float, float] = param((0.0, -0.42, 0.55), help="camera centre in the world frame, m")
    camera_look_at: tuple[float, float, float] = param((0.0, 0.06, 0.0), help="point the optical axis passes through, world frame, m")
    camera_motion: bool = param(False, help="move the camera slightly every frame (re-ray-casts each frame: slower)")
    motion_amplitude_m: float = param(0.01, help="camera motion amplitude, m")
    motion_period_frames: int = param(90, help="camera motion period, frames")
    table_size: tuple[float, float] = param((1.2, 0.9), help="table top extent along world x, y, m (centred at the origin)")
    table_height_m: float = param(0.75, help="table height above the floor (the background), m")
    table_color: tuple[int, int, int] = param((168, 140, 110), help="table base RGB")
    tags: list[TagSpec] = param(default_factory=list, help="AprilTags in the scene")
    objects: list[ObjectSpec] = param(default_factory=list, help="boxes and cylinders on the table")
    light_direction: tuple[float, float, float] = param((0.3, -0.5, 1.0), help="direction towards the key light, world frame")
    rgb_noise_std: float = param(2.0, help="colour sensor noise, 8-bit levels")
    depth_baseline_m: float = param(0.05, help="D435 stereo baseline, m (sets occlusion shadows and noise)")
    depth_subpixel: float = param(0.08, help="D435 sub-pixel disparity RMS, px: depth noise = z^2 * subpixel / (f * baseline)")
    depth_min_m: float = param(0.2, help="raw depth below this is invalid (NaN), m")
    depth_max_m: float = param(4.0, help="raw depth beyond this is invalid (NaN), m")
    transparent_see_through: float = param(
        0.65, help="fraction of a transparent object's pixels where the raw depth is the background behind it"
    )
    transparent_hole: float = param(0.3, help="fraction of a transparent object's pixels with no raw depth")
    reflective_hole: float = param(0.35, help="fraction of a reflective object's pixels with no raw depth (besides specular dropouts)")
    reflective_spike: float = param(0.05, help="fraction of a reflective object's pixels with a wrong (spike) depth")
    edge_flying: float = param(0.5, help="fraction of depth-edge pixels with a flying (mixed) depth; the rest of the edge band is holes")
    flicker_hole: float = param(0.01, help="fraction of pixels dropped at random in each frame")


@dataclass(frozen=True)
class SceneTag:
    """A tag as placed: ``T_world_tag`` / ``T_camera_tag`` map tag-frame points (x right, y up on the printed face, z out of the face).

    This frame is the scene's, not pupil-apriltags' (whose z points into the tag, and OpenCV's
    pattern is the official one turned 180 deg): compare centres and planes, not axes.
    """

    id: int
    size_m: float
    T_world_tag: np.ndarray
    T_camera_tag: np.ndarray

    def corners_camera(self, margin: float = 0.0) -> np.ndarray:
        """4x3 corners of the black square (grown by ``margin`` x size on every side), camera frame, m."""
        h = self.size_m * (0.5 + margin)
        local = np.array([[-h, h, 0.0], [h, h, 0.0], [h, -h, 0.0], [-h, -h, 0.0]])
        return transform_points(self.T_camera_tag, local)


@dataclass(frozen=True)
class SceneObject:
    """An object as placed. The object frame sits at the centre of its footprint, z up (world-aligned z)."""

    id: int
    name: str
    kind: str
    surface: str
    size: tuple[float, float, float]
    T_world_object: np.ndarray
    T_camera_object: np.ndarray

    @property
    def height(self) -> float:
        return float(self.size[2])

    def contains_world(self, points_world: np.ndarray, margin_m: float = 0.0) -> np.ndarray:
        """Whether Nx3 world-frame points (m) lie inside the object grown by ``margin_m``; bool (N,)."""
        p = transform_points(invert_transform(self.T_world_object), np.asarray(points_world, dtype=np.float64).reshape(-1, 3))
        inside_z = (p[:, 2] >= -margin_m) & (p[:, 2] <= self.size[2] + margin_m)
        if self.kind == "box":
            return inside_z & (np.abs(p[:, 0]) <= self.size[0] / 2 + margin_m) & (np.abs(p[:, 1]) <= self.size[1] / 2 + margin_m)
        return inside_z & (np.hypot(p[:, 0], p[:, 1]) <= self.size[0] / 2 + margin_m)

    def contains_camera(self, points_camera: np.ndarray, T_world_camera: np.ndarray, margin_m: float = 0.0) -> np.ndarray:
        """Same as :meth:`contains_world` for camera-frame points (m)."""
        return self.contains_world(transform_points(T_world_camera, np.asarray(points_camera, dtype=np.float64).reshape(-1, 3)), margin_m)


@dataclass
class SceneFrame:
    """One rendered frame. All images are (height, width), camera optical frame."""

    rgb: np.ndarray  #: uint8 (H, W, 3) RGB
    depth_gt_m: np.ndarray  #: float32 (H, W) exact z-depth in metres, NaN where a ray hits nothing
    raw_depth_m: np.ndarray  #: float32 (H, W) simulated D435 depth in metres, mm-quantised, NaN holes
    labels: np.ndarray  #: int32 (H, W): 0 table (and tags), -1 background, k >= 1 object id
    stamp_ns: int
    frame_index: int
    T_world_camera: np.ndarray = field(repr=False)  #: 4x4 camera-to-world transform of this frame


def look_at_transform(position, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """``T_world_camera`` of an optical-frame camera at ``position`` looking at ``target`` (world frame, m)."""
    position = np.asarray(position, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - position
    if np.linalg.norm(forward) < 1e-9:
        raise ValueError(f"camera position and look-at point coincide: {position}")
    z = forward / np.linalg.norm(forward)
    x = np.cross(z, np.asarray(up, dtype=np.float64))
    if np.linalg.norm(x) < 1e-6:  # looking straight along 'up': image x follows world x
        x = np.cross(z, (0.0, 1.0, 0.0)) if abs(z[1]) < 0.9 else np.cross(z, (1.0, 0.0, 0.0))
        x = x if np.dot(x, (1.0, 0.0, 0.0)) >= 0 else -x
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return make_transform(np.stack([x, y, z], axis=1), position)


def tag_texture(tag_id: int, cell_px: int) -> np.ndarray:
    """Printed tag36h11 image (uint8 grey) with its white border: 10 x ``cell_px`` pixels a side.

    OpenCV's pattern is the official one rotated 180 deg about z; it still decodes to the same id,
    and only the tag frame's in-plane axes differ, which metric anchors never use.
    """
    dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_APRILTAG_36h11)
    marker = cv2.aruco.generateImageMarker(dictionary, int(tag_id), _TAG_CELLS_BLACK * cell_px)
    return cv2.copyMakeBorder(marker, cell_px, cell_px, cell_px, cell_px, cv2.BORDER_CONSTANT, value=255)


class _Hits:
    """Nearest ray hits: t (= camera z-depth, since rays have unit z), label, world normal, hit kind."""

    def __init__(self, shape):
        self.t = np.full(shape, np.inf)
        self.label = np.full(shape, BACKGROUND_LABEL, dtype=np.int32)
        self.normal = np.zeros((*shape, 3))
        self.tag = np.full(shape, -1, dtype=np.int32)  # index into scene tags where a tag is hit

    def window(self, rows: slice, cols: slice) -> _Hits:
        """A view of a sub-rectangle: writes go to this buffer."""
        view = _Hits.__new__(_Hits)
        view.t, view.label, view.normal, view.tag = (
            self.t[rows, cols],
            self.label[rows, cols],
            self.normal[rows, cols],
            self.tag[rows, cols],
        )
        return view

    def copy(self) -> _Hits:
        out = _Hits.__new__(_Hits)
        out.t, out.label, out.normal, out.tag = self.t.copy(), self.label.copy(), self.normal.copy(), self.tag.copy()
        return out

    def take(self, mask, t, label, normal, tag=-1):
        self.t[mask] = t[mask]
        self.label[mask] = label
        self.normal[mask] = normal[mask] if np.ndim(normal) == 3 else normal
        self.tag[mask] = tag


class SyntheticScene:
    """The tabletop scene. ``render(i)`` is cheap; construction ray casts the static geometry once."""

    def __init__(self, config: SceneConfig | None = None):
        self.config = config or default_scene_config()
        c = self.config
        if c.width <= 0 or c.height <= 0:
            raise ValueError(f"image size must be positive, got {c.width}x{c.height}")
        if not 1.0 < c.hfov_deg < 170.0:
            raise ValueError(f"hfov_deg must be in (1, 170) degrees, got {c.hfov_deg}")
        ids = [t.id for t in c.tags]
        if len(set(ids)) != len(ids):
            raise ValueError(f"tag ids must be unique, got {ids}")
        for o in c.objects:
            if o.kind not in ("box", "cylinder"):
                raise ValueError(f"object kind must be 'box' or 'cylinder', got {o.kind!r}")
            if o.surface not in ("diffusive", "transparent", "reflective"):
                raise ValueError(f"object surface must be diffusive, transparent or reflective, got {o.surface!r}")
            if min(o.size) <= 0:
                raise ValueError(f"object size must be positive, got {o.size}")
        self.intrinsics = CameraIntrinsics.from_fov(c.width, c.height, c.hfov_deg, frame_id="camera_color_optical_frame")
        self.d435 = d435_config(c)
        self._rng = np.random.default_rng(c.seed)
        self._table_texture = self._make_table_texture()
        self._tag_images: dict[int, np.ndarray] = {}
        self.T_world_camera = look_at_transform(c.camera_position, c.camera_look_at)
        self._static = self._render_static(self.T_world_camera)
        n = c.width * c.height
        # Noise pools: a frame takes a contiguous window at a random offset (a free view, no copy).
        self._depth_noise = self._rng.standard_normal(2 * n).astype(np.float32)
        self._rgb_noise = np.clip(self._rng.normal(0.0, c.rgb_noise_std, 6 * n), -127, 127).astype(np.int16)
        self._flicker = self._rng.random(2 * n) < c.flicker_hole

    # ------------------------------------------------------------------ public views

    @property
    def tags(self) -> list[SceneTag]:
        """Tags with their poses in the world and (static) camera frame."""
        return self._static["tags"]

    @property
    def objects(self) -> list[SceneObject]:
        """Objects (ids 1..N, the label values) with poses in the world and (static) camera frame."""
        return self._static["objects"]

    @property
    def T_camera_world(self) -> np.ndarray:  # noqa: N802 - the transform's conventional name
        return invert_transform(self.T_world_camera)

    def stamp_ns(self, frame_index: int) -> int:
        return int(self.config.start_stamp_ns + round(frame_index * 1e9 / self.config.fps))

    def render(self, frame_index: int = 0) -> SceneFrame:
        """Frame ``frame_index``: deterministic in (seed, frame_index)."""
        if frame_index < 0:
            raise ValueError(f"frame_index must be >= 0, got {frame_index}")
        c = self.config
        static = self._static
        T_world_camera = self.T_world_camera
        if c.camera_motion and frame_index > 0:
            phase = 2.0 * np.pi * frame_index / max(c.motion_period_frames, 1)
            offset = c.motion_amplitude_m * np.array([np.sin(phase), 0.5 * np.sin(2 * phase), 0.3 * (1 - np.cos(phase))])
            T_world_camera = look_at_transform(np.asarray(c.camera_position) + offset, c.camera_look_at)
            static = self._render_static(T_world_camera)
        n = c.width * c.height
        rng = np.random.default_rng((c.seed, frame_index))
        o_depth, o_flicker = (int(v) for v in rng.integers(0, n, 2))
        o_rgb = int(rng.integers(0, 3 * n))
        shape = (c.height, c.width)
        noise = self._depth_noise[o_depth : o_depth + n].reshape(shape)
        raw = frame_raw_depth(static["raw_base"], static["raw_sigma"], noise, self._flicker[o_flicker : o_flicker + n].reshape(shape), self.d435)
        rgb = static["rgb_base"] + self._rgb_noise[o_rgb : o_rgb + 3 * n].reshape(*shape, 3)
        rgb = np.clip(rgb, 0, 255).astype(np.uint8)
        return SceneFrame(
            rgb=rgb,
            depth_gt_m=static["depth_gt"],
            raw_depth_m=raw,
            labels=static["labels"],
            stamp_ns=self.stamp_ns(frame_index),
            frame_index=frame_index,
            T_world_camera=T_world_camera,
        )

    def points_camera_to_world(self, points_camera: np.ndarray) -> np.ndarray:
        """Nx3 camera-frame points (static camera, m) -> world frame."""
        return transform_points(self.T_world_camera, points_camera)

    def object_at(self, points_camera: np.ndarray, margin_m: float = 0.0) -> np.ndarray:
        """Object id (>= 1) containing each Nx3 camera-frame point (static camera, m), 0 where none; int32 (N,)."""
        pw = self.points_camera_to_world(np.asarray(points_camera, dtype=np.float64).reshape(-1, 3))
        out = np.zeros(len(pw), dtype=np.int32)
        for obj in self.objects:
            out[(out == 0) & obj.contains_world(pw, margin_m)] = obj.id
        return out

    # ------------------------------------------------------------------ static rendering

    def _make_table_texture(self) -> np.ndarray:
        """A low-contrast wood-like grain (float32 gain around 1) over the table, 2 mm per texel."""
        c = self.config
        nx, ny = int(c.table_size[0] / 0.002) + 2, int(c.table_size[1] / 0.002) + 2
        coarse = self._rng.random((ny // 40 + 2, nx // 40 + 2)).astype(np.float32)
        blotch = cv2.resize(coarse, (nx, ny), interpolation=cv2.INTER_CUBIC)
        ys = np.arange(ny, dtype=np.float32)[:, None]
        grain = 0.5 + 0.5 * np.sin(ys * 0.35 + 3.0 * blotch + self._rng.random() * 6.0)
        fine = cv2.GaussianBlur(self._rng.random((ny, nx)).astype(np.float32), (0, 0), 1.0)
        return (0.85 + 0.12 * blotch + 0.06 * grain + 0.08 * (fine - 0.5)).astype(np.float32)

    def _tag_image(self, tag_id: int, cell_px: int) -> np.ndarray:
        key = tag_id * 1000 + cell_px
        if key not in self._tag_images:
            self._tag_images[key] = tag_texture(tag_id, cell_px)
        return self._tag_images[key]

    def _placements(self, T_world_camera):
        c = self.config
        T_camera_world = invert_transform(T_world_camera)
        tags = []
        for spec in c.tags:
            T_wt = xyz_rpy_to_transform(spec.position, spec.rpy)
            tags.append(SceneTag(spec.id, spec.size_m, T_wt, T_camera_world @ T_wt))
        objects = []
        for k, spec in enumerate(c.objects, start=1):
            T_wo = xyz_rpy_to_transform((spec.position[0], spec.position[1], 0.0), (0.0, 0.0, spec.yaw if spec.kind == "box" else 0.0))
            name = spec.name or f"{spec.surface}_{spec.kind}_{k}"
            objects.append(SceneObject(k, name, spec.kind, spec.surface, tuple(spec.size), T_wo, T_camera_world @ T_wo))
        return tags, objects

    def _cast_static(self, origin, dirs, tags) -> _Hits:
        """Nearest hits of rays ``origin + t * dirs`` on floor, table and tags (world frame; dirs have unit camera z, so t is z-depth)."""
        c = self.config
        hits = _Hits(dirs.shape[:2])
        dx, dy, dz = dirs[..., 0], dirs[..., 1], dirs[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            # Floor (background): z = -table_height.
            t = (-c.table_height_m - origin[2]) / dz
            m = (t > 0) & (t < hits.t)
            hits.take(m, t, BACKGROUND_LABEL, np.array([0.0, 0.0, 1.0]))
            # Table top: z = 0 inside its extent.
            t = -origin[2] / dz
            px, py = origin[0] + t * dx, origin[1] + t * dy
            m = (t > 0) & (t < hits.t) & (np.abs(px) <= c.table_size[0] / 2) & (np.abs(py) <= c.table_size[1] / 2)
            hits.take(m, t, TABLE_LABEL, np.array([0.0, 0.0, 1.0]))
            # Tags (printed paper, border included); ties with the table go to the tag.
            for i, tag in enumerate(tags):
                R, p0 = tag.T_world_tag[:3, :3], tag.T_world_tag[:3, 3]
                n = R[:, 2]
                denom = dirs @ n
                t = ((p0 - origin) @ n) / denom
                rel = origin - p0
                a = rel @ R[:, 0] + t * (dirs @ R[:, 0])
                b = rel @ R[:, 1] + t * (dirs @ R[:, 1])
                half = tag.size_m * _TAG_CELLS_TOTAL / _TAG_CELLS_BLACK / 2
                m = (t > 0) & (t <= hits.t + 1e-9) & (np.abs(a) <= half) & (np.abs(b) <= half)
                hits.take(m, t, TABLE_LABEL, np.where((denom < 0)[..., None], n, -n), tag=i)
        return hits

    def _object_window(self, obj: SceneObject) -> tuple[slice, slice]:
        """Pixel rectangle that can see the object (its projected bounding box + 2 px), or the whole image."""
        K = self.intrinsics
        sx, sy, sz = obj.size
        corners = np.array([[x, y, z] for x in (-sx / 2, sx / 2) for y in (-sy / 2, sy / 2) for z in (0.0, sz)])
        cam = transform_points(obj.T_camera_object, corners)
        if np.any(cam[:, 2] <= 1e-3):
            return slice(None), slice(None)
        uv = K.project(cam)
        u0, v0 = np.floor(uv.min(axis=0)).astype(int) - 2
        u1, v1 = np.ceil(uv.max(axis=0)).astype(int) + 3
        return slice(max(v0, 0), max(min(v1, K.height), 0)), slice(max(u0, 0), max(min(u1, K.width), 0))

    def _cast(self, origin, dirs, tags, objects, *, skip_surfaces=(), static: _Hits | None = None) -> _Hits:
        """Nearest hits on the whole scene (objects of ``skip_surfaces`` left out); ``static`` reuses a floor/table/tag cast."""
        hits = static.copy() if static is not None else self._cast_static(origin, dirs, tags)
        with np.errstate(divide="ignore", invalid="ignore"):
            for obj in objects:
                if obj.surface in skip_surfaces:
                    continue
                rows, cols = self._object_window(obj)
                self._cast_object(obj, origin, dirs[rows, cols], hits.window(rows, cols))
        return hits

    @staticmethod
    def _cast_object(obj: SceneObject, origin, dirs, hits: _Hits) -> None:
        R, p0 = obj.T_world_object[:3, :3], obj.T_world_object[:3, 3]
        o = (origin - p0) @ R  # ray origin and directions in the object frame
        d = dirs @ R
        sx, sy, sz = obj.size
        if obj.kind == "box":
            lo = np.array([-sx / 2, -sy / 2, 0.0])
            hi = np.array([sx / 2, sy / 2, sz])
            t1 = (lo - o) / d
            t2 = (hi - o) / d
            tnear = np.minimum(t1, t2)
            tfar = np.maximum(t1, t2)
            axis = np.argmax(tnear, axis=-1)
            t = np.max(tnear, axis=-1)
            m = (t <= np.min(tfar, axis=-1)) & (t > 0) & (t < hits.t)
            sign = -np.sign(np.take_along_axis(d, axis[..., None], axis=-1)[..., 0])
            n_local = np.zeros(d.shape)
            np.put_along_axis(n_local, axis[..., None], sign[..., None], axis=-1)
        else:
            r = sx / 2
            a = d[..., 0] ** 2 + d[..., 1] ** 2
            b = 2 * (o[0] * d[..., 0] + o[1] * d[..., 1])
            cc = o[0] ** 2 + o[1] ** 2 - r * r
            disc = b * b - 4 * a * cc
            t_side = (-b - np.sqrt(disc)) / (2 * a)
            z_side = o[2] + t_side * d[..., 2]
            side_ok = (disc >= 0) & (t_side > 0) & (z_side >= 0) & (z_side <= sz)
            t_cap = (sz - o[2]) / d[..., 2]
            cap_ok = (t_cap > 0) & ((o[0] + t_cap * d[..., 0]) ** 2 + (o[1] + t_cap * d[..., 1]) ** 2 <= r * r)
            t_side = np.where(side_ok, t_side, np.inf)
            t_cap = np.where(cap_ok, t_cap, np.inf)
            use_cap = t_cap < t_side
            t = np.minimum(t_side, t_cap)
            m = np.isfinite(t) & (t < hits.t)
            n_local = np.zeros(d.shape)
            n_local[..., 0] = (o[0] + t_side * d[..., 0]) / r
            n_local[..., 1] = (o[1] + t_side * d[..., 1]) / r
            n_local[use_cap] = (0.0, 0.0, 1.0)
        hits.take(m, t, obj.id, n_local @ R.T)

    def _world_rays(self, T_world_camera):
        xs, ys = self.intrinsics.pixel_rays()
        rays_c = np.stack([xs.astype(np.float64), ys.astype(np.float64), np.ones(xs.shape)], axis=-1)
        return T_world_camera[:3, 3].copy(), rays_c @ T_world_camera[:3, :3].T

    def _render_static(self, T_world_camera) -> dict:
        c = self.config
        tags, objects = self._placements(T_world_camera)
        origin, dirs = self._world_rays(T_world_camera)
        static = self._cast_static(origin, dirs, tags)
        hits = self._cast(origin, dirs, tags, objects, static=static)
        # What the camera would see without the transparent objects: shows through them, and is what a D435 measures there.
        behind = self._cast(origin, dirs, tags, objects, skip_surfaces=("transparent",), static=static)
        light = np.asarray(c.light_direction, dtype=np.float64)
        light /= np.linalg.norm(light)
        view = -dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)  # towards the camera

        surface_of = {o.id: o.surface for o in objects}
        color_of = {o.id: np.asarray(c.objects[o.id - 1].color, dtype=np.float64) for o in objects}
        opaque_rgb = self._shade_opaque(behind, origin, dirs, light, view, tags, T_world_camera, surface_of, color_of)
        rgb = opaque_rgb.copy()
        for obj in objects:
            if obj.surface != "transparent":
                continue
            m = hits.label == obj.id
            if not m.any():
                continue
            n = hits.normal[m]
            ndotv = np.abs(np.sum(n * view[m], axis=-1))
            # Refraction: sample the background a little off along the normal's image-plane direction.
            n_cam = n @ T_world_camera[:3, :3]
            vv, uu = np.nonzero(m)
            su = np.clip(uu + 6.0 * n_cam[:, 0], 0, c.width - 1).astype(np.int64)
            sv = np.clip(vv + 6.0 * n_cam[:, 1], 0, c.height - 1).astype(np.int64)
            seen = opaque_rgb[sv, su]
            tint = color_of[obj.id] / 255.0
            fresnel = (1.0 - ndotv) ** 3
            spec = specular_intensity(n, light, view[m], 60.0)
            rgb[m] = seen * (0.55 + 0.35 * tint) + 60.0 * fresnel[:, None] + 220.0 * spec[:, None] + 12.0
        depth_gt = np.where(np.isfinite(hits.t), hits.t, np.nan).astype(np.float32)

        raw_base, raw_sigma = self._raw_depth(hits, behind, objects, light, view)
        return {
            "tags": tags,
            "objects": objects,
            "depth_gt": depth_gt,
            "labels": hits.label,
            "rgb_base": np.clip(rgb, 0, 255).astype(np.int16),
            "raw_base": raw_base,
            "raw_sigma": raw_sigma,
        }

    def _shade_opaque(self, hits, origin, dirs, light, view, tags, T_world_camera, surface_of, color_of) -> np.ndarray:
        c = self.config
        H, W = hits.t.shape
        n = hits.normal
        lambert = np.clip(np.sum(n * light, axis=-1), 0.0, 1.0)
        shade = 0.35 + 0.65 * lambert
        rgb = np.empty((H, W, 3))
        rgb[:] = (70.0, 72.0, 78.0)  # floor / void
        floor = hits.label == BACKGROUND_LABEL
        rgb[floor] *= shade[floor][:, None]
        # Table with its grain texture, looked up at the hit point.
        table = hits.label == TABLE_LABEL
        p = origin + np.where(np.isfinite(hits.t), hits.t, 0.0)[..., None] * dirs
        tex = self._table_texture
        tu = np.clip(((p[..., 0] + c.table_size[0] / 2) / 0.002).astype(np.int64), 0, tex.shape[1] - 1)
        tv = np.clip(((p[..., 1] + c.table_size[1] / 2) / 0.002).astype(np.int64), 0, tex.shape[0] - 1)
        gain = tex[tv, tu]
        rgb[table] = np.asarray(c.table_color, dtype=np.float64) * (gain[table] * shade[table])[:, None]
        # Tags: the printed pattern warped in by the homography of the tag plane, kept where the tag is hit.
        for i, tag in enumerate(tags):
            m = hits.tag == i
            if not m.any():
                continue
            rgb[m] = self._tag_pattern(tag, T_world_camera)[m][:, None] * (0.25 + 0.75 * shade[m])[:, None] * np.array([0.97, 0.98, 1.0])
        for oid, surface in surface_of.items():
            m = hits.label == oid
            if not m.any():
                continue
            base = color_of[oid]
            if surface == "reflective":
                # Metal: dark body, sharp highlights and streaks from a striped environment (the room's lights).
                refl = 2.0 * np.sum(n[m] * view[m], axis=-1, keepdims=True) * n[m] - view[m]
                azimuth = np.arctan2(refl[:, 1], refl[:, 0])
                elevation = np.arctan2(refl[:, 2], np.hypot(refl[:, 0], refl[:, 1]))
                stripes = np.maximum(0.5 + 0.5 * np.cos(9.0 * azimuth), 0.5 + 0.5 * np.cos(14.0 * elevation))
                env = np.where(stripes > 0.85, 1.0, 0.25 * stripes)
                spec = specular_intensity(n[m], light, view[m], 80.0)
                rgb[m] = 0.3 * base * shade[m][:, None] + 170.0 * env[:, None] + 255.0 * spec[:, None]
            else:
                spec = specular_intensity(n[m], light, view[m], 20.0)
                rgb[m] = base * shade[m][:, None] + 40.0 * spec[:, None]
        return rgb

    def _tag_pattern(self, tag: SceneTag, T_world_camera) -> np.ndarray:
        """Grey levels of the printed tag (float, 0..255) at every pixel: exact area coverage of its black cells.

        Each cell of the printed pattern projects (pinhole, no distortion) to an exact quadrilateral; a pixel
        gets the area-weighted mean of paper and ink over its square, as a sensor integrates it. Point-sampled
        supersampling instead snaps edges to its sub-pixel grid, which shifts edges parallel to that grid
        coherently by up to ~0.03 px: enough to bias the tag poses (and the metric scale) by a millimetre.
        """
        K = self.intrinsics
        half = tag.size_m * _TAG_CELLS_TOTAL / _TAG_CELLS_BLACK / 2
        T_camera_tag = invert_transform(T_world_camera) @ tag.T_world_tag
        corners_tag = np.array([[-half, half, 0.0], [half, half, 0.0], [half, -half, 0.0], [-half, -half, 0.0]])
        if np.any(transform_points(T_camera_tag, corners_tag)[:, 2] <= 1e-6):
            return np.full((K.height, K.width), 255.0)
        n = _TAG_CELLS_TOTAL
        # Cell-grid corners: column c, row r of the printed image sits at tag (x, y) = (-half + c s, half - r s).
        g = np.linspace(-half, half, n + 1)
        grid = np.stack(np.broadcast_arrays(g[None, :], -g[:, None], 0.0), axis=-1).reshape(-1, 3)
        grid_px = K.project(transform_points(T_camera_tag, grid)).reshape(n + 1, n + 1, 2)
        rows, cols = np.nonzero(self._tag_image(tag.id, 1) == 0)  # black cells
        quads = np.stack([grid_px[rows, cols], grid_px[rows, cols + 1], grid_px[rows + 1, cols + 1], grid_px[rows + 1, cols]], axis=1)
        ink, paper = 22.0, 257.0  # printed black is not ink-black; the levels the warped texture had (22 + 235 * bit)
        return (paper - (paper - ink) * polygon_coverage(quads, (K.height, K.width))).astype(np.float32)

    def _raw_depth(self, hits, behind, objects, light, view) -> tuple[np.ndarray, np.ndarray]:
        """D435-like depth before per-frame noise: (depth m with NaN holes, noise sigma m), float32 (the shared model)."""
        c = self.config
        if getattr(self, "_fields", None) is None:  # drawn once: the camera-motion mode re-renders with the same patches
            self._fields = dropout_fields(c.seed, hits.t.shape)
        specular = specular_intensity(hits.normal, light, view)
        surfaces = [(obj.id, obj.surface) for obj in objects]
        return static_raw_depth(hits.t, behind.t, hits.label, surfaces, specular, self.intrinsics.fx, self.d435, c.seed, self._fields)


def d435_config(c: SceneConfig) -> D435Config:
    """The scene's sensor settings as the shared D435 model's config."""
    return D435Config(
        baseline_m=c.depth_baseline_m,
        subpixel=c.depth_subpixel,
        min_m=c.depth_min_m,
        max_m=c.depth_max_m,
        translucent_see_through=c.transparent_see_through,
        translucent_hole=c.transparent_hole,
        reflective_hole=c.reflective_hole,
        reflective_spike=c.reflective_spike,
        edge_flying=c.edge_flying,
        flicker_hole=c.flicker_hole,
    )


def polygon_coverage(polygons: np.ndarray, shape: tuple[int, int], max_elements: int = 2_000_000) -> np.ndarray:
    """Exact fraction of every pixel's area covered by non-overlapping polygons, float64 (H, W).

    ``polygons``: (K, V, 2) vertices in pixels (u, v), pixel (u, v) covering [u - 0.5, u + 0.5] x [v - 0.5, v + 0.5]
    (the CameraInfo convention), either winding; simple polygons (the tag's cells are convex quads).
    By Green's theorem a polygon's area inside a pixel is, up to the winding's sign, the sum over its edges of
    the integral along x of the part of the pixel's row interval lying below the edge; that integral is closed-form
    for a straight edge, so the result is exact up to rounding. Done in chunks of polygons to bound memory.
    """
    H, W = shape
    polygons = np.asarray(polygons, dtype=np.float64)
    out = np.zeros(H * W)
    if polygons.size == 0:
        return out.reshape(H, W)
    ext = np.clip(np.ptp(polygons, axis=1) + 2.0, 1.0, (W, H))
    per_polygon = polygons.shape[1] * float(ext[:, 0].max() * ext[:, 1].max())
    for chunk in np.array_split(polygons, int(np.ceil(len(polygons) * per_polygon / max_elements))):
        p, q = chunk, np.roll(chunk, -1, axis=1)
        winding = -np.sign(np.sum(p[..., 0] * q[..., 1] - q[..., 0] * p[..., 1], axis=1))  # either winding counts positive
        v_lo, v_hi = (np.clip(np.floor(f(chunk[..., 1], axis=1) + 0.5), 0, H - 1).astype(int) for f in (np.min, np.max))
        nv = chunk.shape[1]
        p, q = p.reshape(-1, 2), q.reshape(-1, 2)
        sign = np.repeat(winding, nv) * np.sign(q[:, 0] - p[:, 0])
        row0, row1 = np.repeat(v_lo, nv), np.repeat(v_hi, nv)
        x_lo, x_hi = np.minimum(p[:, 0], q[:, 0]), np.maximum(p[:, 0], q[:, 0])
        col0 = np.clip(np.floor(x_lo + 0.5), 0, W - 1).astype(int)
        col1 = np.clip(np.floor(x_hi + 0.5), 0, W - 1).astype(int)
        j = col0[:, None] + np.arange(int((col1 - col0).max()) + 1)  # (E, nj) pixel columns
        i = row0[:, None] + np.arange(int((row1 - row0).max()) + 1)  # (E, ni) pixel rows
        a, b = np.maximum(x_lo[:, None], j - 0.5), np.minimum(x_hi[:, None], j + 0.5)  # the edge's x-span in each column
        dx = np.clip(b - a, 0.0, None)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.nan_to_num((q[:, 1] - p[:, 1]) / (q[:, 0] - p[:, 0]), posinf=0.0, neginf=0.0)[:, None]
        # Heights of the edge above each row's top (v - (i - 0.5)) at both ends of its span in the column.
        h1 = (p[:, 1, None] + (a - p[:, 0, None]) * slope)[:, :, None] - (i[:, None, :] - 0.5)
        h2 = (p[:, 1, None] + (b - p[:, 0, None]) * slope)[:, :, None] - (i[:, None, :] - 0.5)
        # Mean over the span of clip(h, 0, 1) (the row's part below the edge), via its antiderivative.
        dh = h2 - h1
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(np.abs(dh) > 1e-9, (_clip01_integral(h2) - _clip01_integral(h1)) / dh, np.clip(0.5 * (h1 + h2), 0.0, 1.0))
        contrib = sign[:, None, None] * dx[:, :, None] * mean
        jj, ii = np.broadcast_arrays(j[:, :, None], i[:, None, :])
        ok = (dx[:, :, None] > 0.0) & (jj <= col1[:, None, None]) & (ii <= row1[:, None, None])
        np.add.at(out, ii[ok] * W + jj[ok], contrib[ok])
    return out.reshape(H, W)


def _clip01_integral(h: np.ndarray) -> np.ndarray:
    """Antiderivative of clip(h, 0, 1), zero at h <= 0."""
    return np.where(h <= 0.0, 0.0, np.where(h >= 1.0, h - 0.5, 0.5 * h * h))


def default_scene_config(seed: int = 0, **overrides) -> SceneConfig:
    """Three tags and one object of every surface type on a table seen from about 0.7 m."""
    tags = [
        TagSpec(id=0, size_m=0.06, position=(-0.20, -0.06, 0.0)),
        TagSpec(id=1, size_m=0.06, position=(0.21, -0.04, 0.0), rpy=(0.0, 0.0, 0.4)),
        TagSpec(id=2, size_m=0.06, position=(0.0, 0.28, 0.0), rpy=(0.0, 0.0, -0.3)),
    ]
    objects = [
        ObjectSpec(
            kind="box", surface="diffusive", position=(-0.10, 0.12), size=(0.08, 0.05, 0.07), yaw=0.5, color=(200, 70, 50), name="red_box"
        ),
        ObjectSpec(
            kind="cylinder", surface="transparent", position=(0.04, 0.04), size=(0.07, 0.07, 0.12), color=(210, 235, 240), name="glass"
        ),
        ObjectSpec(
            kind="cylinder", surface="reflective", position=(0.14, 0.16), size=(0.066, 0.066, 0.115), color=(190, 190, 200), name="can"
        ),
        ObjectSpec(
            kind="box",
            surface="transparent",
            position=(-0.05, -0.06),
            size=(0.06, 0.09, 0.05),
            yaw=-0.3,
            color=(225, 240, 230),
            name="plastic_box",
        ),
        ObjectSpec(
            kind="cylinder", surface="diffusive", position=(0.20, 0.30), size=(0.05, 0.05, 0.09), color=(60, 110, 190), name="blue_cup"
        ),
    ]
    cfg = SceneConfig(seed=seed, tags=tags, objects=objects)
    for key, value in overrides.items():
        if not hasattr(cfg, key):
            raise ValueError(f"unknown SceneConfig field {key!r}")
        setattr(cfg, key, value)
    return cfg


def default_scene(seed: int = 0, **overrides) -> SyntheticScene:
    """The default tabletop (see :func:`default_scene_config`)."""
    return SyntheticScene(default_scene_config(seed, **overrides))
