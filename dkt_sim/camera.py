"""The front D435 on MuJoCo's renders: colour, raw depth with material-specific failures, ground truth.

Per capture, four passes of the ``d435`` camera: RGB (translucent objects
alpha-blended, metal reflecting), depth (z-depth, metres, everything
included: the ground truth), segmentation (geom per pixel -> object label) and
depth with the translucent objects hidden (what the sensor sees through them).
:func:`dkt_perception.d435_model.static_raw_depth` and
:func:`~dkt_perception.d435_model.frame_raw_depth` turn them into the raw
depth: the same failure model as the synthetic tabletop. Specular dropouts on
metal come from the surface normals of the ground-truth depth and the scene's
key light. The raw depth is aligned to colour (same camera) and millimetre
quantised, as ``aligned_depth_to_color/image_raw`` (16UC1) carries it.

Renders are taken from a copy of the world's state (positions only), so a
physics thread may keep stepping meanwhile (see :meth:`SimCamera.snapshot`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from dkt_perception.d435_model import D435Config, dropout_fields, frame_raw_depth, specular_intensity, static_raw_depth
from dkt_sim.mjcf import GROUP_TRANSLUCENT, KEY_LIGHT_DIRECTION
from dkt_sim.world import BACKGROUND_LABEL, SimWorld
from dkt_stack.config import param
from dkt_stack.intrinsics import CameraIntrinsics


@dataclass
class CameraConfig:
    """The simulated D435's image settings and sensor model."""

    rgb_noise_std: float = param(2.0, help="colour sensor noise, 8-bit levels (Gaussian)")
    d435: D435Config = param(default_factory=D435Config, help="depth sensor geometry and failure rates")


@dataclass
class SimFrame:
    """One capture, camera optical frame. Images are (H, W)."""

    rgb: np.ndarray  #: uint8 (H, W, 3)
    depth_gt_m: np.ndarray  #: float32 exact z-depth (m), NaN where nothing is hit
    raw_depth_m: np.ndarray  #: float32 D435 depth (m), mm-quantised, NaN = no measurement
    labels: np.ndarray  #: int32: objects 1..N, 0 table and tags, -2 arms, -1 the rest
    intrinsics: CameraIntrinsics
    T_world_camera: np.ndarray  #: 4x4 optical frame in the world (m)
    frame_index: int
    sim_time_s: float


def normals_from_depth(depth_m: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """Unit surface normals (H, W, 3) in the camera optical frame from a z-depth image (m); facing the camera, zeros where undefined."""
    xs, ys = intrinsics.pixel_rays()
    z = np.where(np.isfinite(depth_m), depth_m, np.nan).astype(np.float64)
    p = np.stack([xs * z, ys * z, z], axis=-1)
    du = np.zeros_like(p)
    dv = np.zeros_like(p)
    du[:, 1:-1] = p[:, 2:] - p[:, :-2]
    dv[1:-1] = p[2:] - p[:-2]
    n = np.cross(dv, du)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.where(norm > 1e-12, n / norm, 0.0)
    n = np.where(np.sum(n * p, axis=-1, keepdims=True) > 0, -n, n)  # towards the camera
    return np.nan_to_num(n)


class SimCamera:
    """Renders the world's ``d435`` (and ``external``) cameras; deterministic in ``seed`` and the frame index."""

    def __init__(self, world: SimWorld, config: CameraConfig | None = None, seed: int = 0):
        self.world, self.config, self.seed = world, config or CameraConfig(), int(seed)
        self.intrinsics = world.geometry.intrinsics(world.width, world.height)
        mj = world.mj
        self._renderers: dict[tuple[int, int], object] = {}
        self._snapshot = mj.MjData(world.model)
        self._lock = threading.Lock()
        self._fields = None
        self._visible = mj.MjvOption()
        for g in range(6):
            self._visible.geomgroup[g] = 1 if g <= GROUP_TRANSLUCENT else 0
        self._no_translucent = mj.MjvOption()
        for g in range(6):
            self._no_translucent.geomgroup[g] = 1 if g < GROUP_TRANSLUCENT else 0
        self.surfaces = [(k, o.surface) for k, o in enumerate(world.scene.objects, start=1)]
        self.T_world_camera = world.geometry.T_world_camera

    def _renderer(self, width: int, height: int):
        key = (width, height)
        if key not in self._renderers:
            self._renderers[key] = self.world.mj.Renderer(self.world.model, height, width)
        return self._renderers[key]

    def snapshot(self) -> None:
        """Copy the world's positions for the next renders (call it where the world is not being stepped)."""
        mj, w = self.world.mj, self.world
        with self._lock:
            self._snapshot.qpos[:] = w.data.qpos
            self._snapshot.time = w.data.time
            mj.mj_kinematics(w.model, self._snapshot)
            mj.mj_comPos(w.model, self._snapshot)
            mj.mj_camlight(w.model, self._snapshot)  # camera and light poses

    def _render(self, camera: str, width: int, height: int, mode: str, option) -> np.ndarray:
        r = self._renderer(width, height)
        if mode == "depth":
            r.enable_depth_rendering()
        elif mode == "segmentation":
            r.enable_segmentation_rendering()
        try:
            r.update_scene(self._snapshot, camera=camera, scene_option=option)
            return r.render().copy()
        finally:
            if mode == "depth":
                r.disable_depth_rendering()
            elif mode == "segmentation":
                r.disable_segmentation_rendering()

    def _depth(self, option) -> np.ndarray:
        d = self._render("d435", self.world.width, self.world.height, "depth", option).astype(np.float32)
        far = 0.99 * self.world.model.vis.map.zfar * self.world.model.stat.extent
        d[(d <= 0) | (d >= far)] = np.nan
        return d

    def view(self, camera: str = "external", width: int = 320, height: int = 240) -> np.ndarray:
        """Plain RGB (uint8 (H, W, 3)) of a world camera at the last snapshot."""
        with self._lock:
            return self._render(camera, width, height, "rgb", self._visible)

    def colour(self, camera: str = "d435", frame_index: int = 0) -> np.ndarray:
        """Colour image uint8 (H, W, 3) of a world camera at the D435's size and the last snapshot, with the colour sensor
        noise of :meth:`capture` (seeded by ``seed`` and ``frame_index``); no depth passes, so a few times cheaper."""
        w, c = self.world, self.config
        with self._lock:
            rgb = self._render(camera, w.width, w.height, "rgb", self._visible)
        if c.rgb_noise_std > 0:
            rng = np.random.default_rng((self.seed, int(frame_index), 1))
            rgb = np.clip(rgb + rng.normal(0.0, c.rgb_noise_std, rgb.shape), 0, 255).astype(np.uint8)
        return rgb

    def render_passes(self, see_through: bool = True) -> tuple[np.ndarray, ...]:
        """The raw renders of the ``d435`` camera at the last snapshot: RGB uint8, depth (m, NaN = nothing),
        segmentation (geom id, object type) int32 (H, W, 2) and, with ``see_through``, the depth without the
        translucent objects; plus the snapshot's simulated time (s)."""
        w = self.world
        with self._lock:
            rgb = self._render("d435", w.width, w.height, "rgb", self._visible)
            depth = self._depth(self._visible)
            seg = self._render("d435", w.width, w.height, "segmentation", self._visible)
            behind = self._depth(self._no_translucent) if see_through else None
            return rgb, depth, seg, behind, float(self._snapshot.time)

    def capture(self, frame_index: int = 0) -> SimFrame:
        """Colour, ground truth and D435 depth of the ``d435`` camera at the last snapshot."""
        c, w = self.config, self.world
        rgb, depth, seg, behind, sim_time = self.render_passes()
        geom = seg[:, :, 0]
        labels = np.where(geom >= 0, w.geom_label[np.clip(geom, 0, None)], BACKGROUND_LABEL).astype(np.int32)
        # The key light (world) in the camera frame; the view direction is towards the camera along each ray.
        light = self.T_world_camera[:3, :3].T @ np.asarray(KEY_LIGHT_DIRECTION)
        xs, ys = self.intrinsics.pixel_rays()
        view = -np.stack([xs, ys, np.ones_like(xs)], axis=-1).astype(np.float64)
        view /= np.linalg.norm(view, axis=-1, keepdims=True)
        specular = specular_intensity(normals_from_depth(depth, self.intrinsics), light, view)
        if self._fields is None:
            self._fields = dropout_fields(self.seed, depth.shape)
        raw_base, sigma = static_raw_depth(depth, behind, labels, self.surfaces, specular, self.intrinsics.fx, c.d435, self.seed, self._fields)
        rng = np.random.default_rng((self.seed, int(frame_index)))
        noise = rng.standard_normal(depth.shape).astype(np.float32)
        flicker = rng.random(depth.shape) < c.d435.flicker_hole
        raw = frame_raw_depth(raw_base, sigma, noise, flicker, c.d435)
        if c.rgb_noise_std > 0:
            rgb = np.clip(rgb + rng.normal(0.0, c.rgb_noise_std, rgb.shape), 0, 255).astype(np.uint8)
        return SimFrame(rgb, depth, raw, labels, self.intrinsics, self.T_world_camera.copy(), int(frame_index), sim_time)

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()
