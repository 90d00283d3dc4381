"""The one D435 depth failure model: what an Intel RealSense D435 measures, given the exact scene.

Used by the synthetic tabletop (:mod:`dkt_perception.synthetic_scene`, ray cast)
and by the MuJoCo camera (:mod:`dkt_sim.camera`, rendered): both compute the
exact depth of the scene, the depth with translucent objects left out, a label
image and a specular-highlight image, and this module turns them into the
sensor's depth.

Failures, by surface class of the pixel's object:

* **translucent** (``transparent`` in the synthetic scene): the stereo matcher
  sees the texture *behind* the object, so a fraction of its pixels returns the
  depth of what lies behind it, another fraction is a hole;
* **reflective**: holes in patches and wherever a specular highlight washes out
  the projector pattern, plus a few wrong (spike) depths;
* everywhere (diffusive included): noise growing with the square of the range
  (sub-pixel disparity error), flying pixels or holes along depth edges, the
  stereo occlusion shadow beside foreground edges, random per-frame dropouts,
  millimetre quantisation (16UC1) and the valid range.

Images are (H, W) in the camera optical frame; depths are z-depth in metres,
NaN (or inf) where nothing is hit. Deterministic in the seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from dkt_stack.config import param

#: Surface class names of see-through objects (the synthetic scene says transparent, trials say translucent).
TRANSLUCENT = ("translucent", "transparent")
REFLECTIVE = "reflective"
DIFFUSIVE = "diffusive"
SURFACES = (*TRANSLUCENT, REFLECTIVE, DIFFUSIVE)
#: Specular intensity (Blinn-Phong, shininess 80, in [0, 1]) above which a reflective pixel has no depth.
SPECULAR_HOLE = 0.3
#: Blinn-Phong exponent of the highlight that blinds the sensor on metal.
SPECULAR_SHININESS = 80.0


@dataclass
class D435Config:
    """Sensor geometry and failure rates (defaults: a D435 at 640x480 on a tabletop)."""

    baseline_m: float = param(0.05, help="stereo baseline, m (sets occlusion shadows and noise)")
    subpixel: float = param(0.08, help="sub-pixel disparity RMS, px: depth noise = z^2 * subpixel / (f * baseline)")
    min_m: float = param(0.2, help="depth below this is invalid (NaN), m")
    max_m: float = param(4.0, help="depth beyond this is invalid (NaN), m")
    translucent_see_through: float = param(0.65, help="fraction of a translucent object's pixels whose depth is what lies behind it")
    translucent_hole: float = param(0.3, help="fraction of a translucent object's pixels with no depth")
    reflective_hole: float = param(0.35, help="fraction of a reflective object's pixels with no depth (besides specular dropouts)")
    reflective_spike: float = param(0.05, help="fraction of a reflective object's pixels with a wrong (spike) depth")
    edge_flying: float = param(0.5, help="fraction of depth-edge pixels with a flying (mixed) depth; the rest of the edge band is holes")
    flicker_hole: float = param(0.01, help="fraction of pixels dropped at random in each frame")

    def __post_init__(self):
        for name in ("translucent_see_through", "translucent_hole", "reflective_hole", "reflective_spike", "edge_flying", "flicker_hole"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"D435 {name} must be a fraction in [0, 1], got {value}")
        if self.translucent_see_through + self.translucent_hole > 1.0 or self.reflective_hole + self.reflective_spike > 1.0:
            raise ValueError("D435 failure fractions of one surface class must add up to at most 1")
        if self.baseline_m <= 0 or self.subpixel < 0 or not 0 <= self.min_m < self.max_m:
            raise ValueError(f"D435 needs baseline_m > 0, subpixel >= 0 and 0 <= min_m < max_m, got {self}")


def specular_intensity(normals: np.ndarray, light: np.ndarray, view: np.ndarray, shininess: float = SPECULAR_SHININESS) -> np.ndarray:
    """Blinn-Phong highlight ``max(0, n.h)^shininess`` (..., ) for unit normals, unit light and view directions (..., 3), any frame."""
    h = light + view
    h = h / np.linalg.norm(h, axis=-1, keepdims=True)
    return np.clip(np.sum(normals * h, axis=-1), 0.0, 1.0) ** shininess


def dropout_fields(seed: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Two spatially coherent uniform fields in [0, 1] (image space): dropouts come in patches, not salt."""
    rng = np.random.default_rng((seed, 104729))
    fields = []
    for scale_px in (3.0, 2.0):
        f = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), scale_px)
        ranks = np.empty(f.size, dtype=np.float32)
        ranks[np.argsort(f, axis=None)] = np.linspace(0.0, 1.0, f.size, dtype=np.float32)
        fields.append(ranks.reshape(shape))
    return fields[0], fields[1]


def static_raw_depth(
    depth_m: np.ndarray,
    behind_m: np.ndarray,
    labels: np.ndarray,
    surfaces: Sequence[tuple[int, str]],
    specular: np.ndarray,
    fx: float,
    config: D435Config,
    seed: int,
    fields: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The sensor's depth before per-frame noise: ``(raw depth m with NaN holes, noise sigma m)``, both float32 (H, W).

    depth_m: exact z-depth (m), NaN/inf where nothing is hit; behind_m: the same with translucent
    objects left out (m); labels: int (H, W) object label per pixel; surfaces: ``(label, surface class)``
    of each object, in a fixed order (the random draws follow it); specular: (H, W) highlight intensity
    in [0, 1] (see :func:`specular_intensity`); fx: focal length (px); fields: :func:`dropout_fields`
    when already computed for this seed and shape.
    """
    depth_m = np.asarray(depth_m, dtype=np.float64)
    shape = depth_m.shape
    rng = np.random.default_rng((seed, 7919))
    raw = np.where(np.isfinite(depth_m), depth_m, np.nan)
    field, field2 = fields if fields is not None else dropout_fields(seed, shape)
    for label, surface in surfaces:
        if surface not in SURFACES:
            raise ValueError(f"unknown surface class {surface!r} (known: {', '.join(SURFACES)})")
        m = labels == label
        if not m.any():
            continue
        if surface in TRANSLUCENT:
            u = field[m]
            through = u < config.translucent_see_through
            hole = (u >= config.translucent_see_through) & (u < config.translucent_see_through + config.translucent_hole)
            vals = raw[m]
            vals[through] = np.asarray(behind_m)[m][through]
            vals[hole] = np.nan
            raw[m] = vals
        elif surface == REFLECTIVE:
            u = field2[m]
            hole = (u < config.reflective_hole) | (specular[m] > SPECULAR_HOLE)
            spike = (u >= config.reflective_hole) & (u < config.reflective_hole + config.reflective_spike)
            vals = raw[m]
            vals[spike] *= rng.choice([0.85, 0.9, 1.12, 1.3], size=int(spike.sum()))
            vals[hole] = np.nan
            raw[m] = vals
    # Depth edges: flying pixels (foreground/background mix) or holes in a 1-2 px band.
    z = np.where(np.isfinite(depth_m), depth_m, 10.0).astype(np.float32)
    zmax = cv2.dilate(z, np.ones((3, 3), np.uint8))
    zmin = cv2.erode(z, np.ones((3, 3), np.uint8))
    edge = (zmax - zmin) > 0.02 * zmin
    u = rng.random(shape)
    flying = edge & (u < config.edge_flying)
    mix = rng.random(shape)
    raw[flying] = (zmin + mix * (zmax - zmin))[flying]
    raw[edge & ~flying] = np.nan
    # Stereo occlusion shadow left of foreground edges: the right imager cannot see those points.
    disp = fx * config.baseline_m / z
    shadow = np.zeros(shape, dtype=bool)
    max_shift = int(np.ceil(np.nanmax(disp) - np.nanmin(disp))) if np.isfinite(disp).any() else 0
    for k in range(1, min(max_shift, 64) + 1):
        shadow[:, :-k] |= (disp[:, k:] - disp[:, :-k]) >= k
    raw[shadow] = np.nan
    raw[~np.isfinite(raw)] = np.nan
    sigma = (config.subpixel / (fx * config.baseline_m)) * np.square(np.where(np.isfinite(raw), raw, 0.0))
    return raw.astype(np.float32), sigma.astype(np.float32)


def frame_raw_depth(raw_base: np.ndarray, sigma: np.ndarray, noise: np.ndarray, flicker: np.ndarray, config: D435Config) -> np.ndarray:
    """One frame of sensor depth (m, float32, NaN = no measurement), millimetre-quantised as the D435 publishes it.

    raw_base, sigma: from :func:`static_raw_depth`; noise: standard normal (H, W); flicker: bool (H, W)
    pixels dropped in this frame.
    """
    raw = raw_base + sigma * noise
    raw[flicker] = np.nan
    raw = np.rint(raw * 1000.0) * np.float32(0.001)  # 16UC1 millimetres
    with np.errstate(invalid="ignore"):
        raw[(raw < config.min_m) | (raw > config.max_m)] = np.nan
    return raw.astype(np.float32, copy=False)
