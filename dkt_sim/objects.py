"""The object library and seeded scene randomisation.

Each :class:`ObjectKind` is a shape built from primitives or a convex mesh made
here (box, cylinder, bottle, cup, thin plate) with a realistic size, mass and
friction, and a surface class:

* ``translucent``: rendered with alpha and a tint (glass, clear plastic);
* ``reflective``: specular metal (MuJoCo reflectance on boxes);
* ``diffusive``: a textured, matte surface (cardboard, ceramic, painted wood).

Friction is the coefficient between the gripper's pads and the material (the
object's geoms get contact priority, so their friction is the one MuJoCo uses).

:func:`randomise_scene` draws a scene from a seed: a target of the session's
surface class, one or two neighbours near it, and flat distractors, placed on
the table within reach of at least one arm (see
:class:`~dkt_sim.rig_geometry.CobotMagicGeometry` ``object_*``). Thin plates are
distractors only: lying flat, a parallel gripper cannot take them from above.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from dkt_perception.d435_model import TRANSLUCENT
from dkt_sim.rig_geometry import COBOT_MAGIC, CobotMagicGeometry
from dkt_stack.config import param

Shape = Literal["box", "cylinder", "bottle", "cup", "plate"]
SIM_SURFACES = ("translucent", "reflective", "diffusive")


@dataclass(frozen=True)
class ObjectKind:
    """A library entry. size: box/plate (x, y, z); cylinder, bottle, cup (diameter, diameter, height); metres. mass kg."""

    name: str
    shape: Shape
    surface: str
    size: tuple[float, float, float]
    mass: float
    friction: float
    rgb: tuple[float, float, float]
    graspable: bool = True


LIBRARY: tuple[ObjectKind, ...] = (
    # translucent: glass and clear plastic (tinted, alpha-rendered)
    ObjectKind("glass_cup", "cup", "translucent", (0.064, 0.064, 0.095), 0.20, 0.6, (0.82, 0.93, 0.97)),
    ObjectKind("plastic_bottle", "bottle", "translucent", (0.060, 0.060, 0.20), 0.12, 0.7, (0.80, 0.92, 0.98)),
    ObjectKind("clear_box", "box", "translucent", (0.055, 0.075, 0.065), 0.08, 0.7, (0.90, 0.96, 0.92)),
    ObjectKind("glass_jar", "cylinder", "translucent", (0.060, 0.060, 0.10), 0.25, 0.6, (0.85, 0.95, 0.90)),
    # reflective: metal
    ObjectKind("soda_can", "cylinder", "reflective", (0.066, 0.066, 0.122), 0.35, 0.5, (0.78, 0.78, 0.82)),
    ObjectKind("steel_cup", "cup", "reflective", (0.062, 0.062, 0.09), 0.15, 0.5, (0.80, 0.80, 0.83)),
    ObjectKind("tin_box", "box", "reflective", (0.050, 0.080, 0.050), 0.20, 0.5, (0.83, 0.80, 0.72)),
    ObjectKind("steel_bottle", "bottle", "reflective", (0.062, 0.062, 0.19), 0.25, 0.5, (0.75, 0.76, 0.80)),
    # diffusive: cardboard, ceramic, painted wood, opaque plastic
    ObjectKind("cardboard_box", "box", "diffusive", (0.060, 0.090, 0.070), 0.10, 0.8, (0.72, 0.55, 0.36)),
    ObjectKind("ceramic_mug", "cup", "diffusive", (0.064, 0.064, 0.09), 0.30, 0.7, (0.93, 0.90, 0.84)),
    ObjectKind("wooden_cylinder", "cylinder", "diffusive", (0.050, 0.050, 0.09), 0.12, 0.8, (0.25, 0.45, 0.80)),
    ObjectKind("shampoo_bottle", "bottle", "diffusive", (0.058, 0.058, 0.18), 0.15, 0.7, (0.85, 0.30, 0.30)),
    # flat distractors, one per class
    ObjectKind("glass_coaster", "plate", "translucent", (0.10, 0.10, 0.008), 0.08, 0.6, (0.85, 0.95, 0.95), graspable=False),
    ObjectKind("steel_plate", "plate", "reflective", (0.11, 0.08, 0.006), 0.15, 0.5, (0.80, 0.80, 0.82), graspable=False),
    ObjectKind("cork_mat", "plate", "diffusive", (0.10, 0.08, 0.008), 0.03, 0.9, (0.62, 0.48, 0.33), graspable=False),
)
KINDS = {k.name: k for k in LIBRARY}


def surface_class(surface: str) -> str:
    """A session's surface label -> the library's class (``transparent`` is the synthetic scene's word for translucent)."""
    return "translucent" if surface in TRANSLUCENT else surface


@dataclass
class PlacedObject:
    """An object in a scene: its kind (size possibly scaled), footprint centre on the table (world x, y, m) and yaw (rad)."""

    name: str
    kind: str
    shape: str
    surface: str
    size: tuple[float, float, float]
    mass: float
    friction: float
    rgb: tuple[float, float, float]
    x: float
    y: float
    yaw: float = 0.0

    @property
    def footprint_radius(self) -> float:
        """Radius (m) of a circle around the footprint (boxes: half diagonal)."""
        sx, sy, _ = self.size
        return float(np.hypot(sx, sy) / 2 if self.shape in ("box", "plate") else sx / 2)


@dataclass
class SceneSpec:
    """A scene: objects (index + 1 is the object's label in renders) and which one is the target."""

    objects: list[PlacedObject] = field(default_factory=list)
    target: int = 0
    seed: int = 0

    @property
    def target_object(self) -> PlacedObject:
        return self.objects[self.target]

    def to_json_dict(self) -> dict:
        return {"seed": self.seed, "target": self.target, "objects": [asdict(o) for o in self.objects]}


@dataclass
class SceneRandomisation:
    """How scenes are drawn (counts are inclusive ranges)."""

    neighbours: tuple[int, int] = param((1, 2), help="graspable objects besides the target, drawn from every class (min, max)")
    distractors: tuple[int, int] = param((0, 1), help="flat distractors (plates) on the table (min, max)")
    size_jitter: float = param(0.08, help="object sizes are scaled by a factor drawn from 1 +- this")
    neighbour_distance_m: tuple[float, float] = param((0.11, 0.17), help="neighbour centres lie this far from the target's (m)")
    clearance_m: float = param(0.03, help="gap between object footprints at least (m)")


def _draw_position(rng, geometry: CobotMagicGeometry, radius: float, placed: list[PlacedObject], clearance: float, around=None, distance=None):
    """A footprint centre (x, y) in the workspace, clear of placed objects and tags; None after 300 tries."""
    lo_r, hi_r = geometry.object_reach
    for _ in range(300):
        if around is None:
            x = rng.uniform(*geometry.object_x)
            y = rng.uniform(-geometry.object_y_max, geometry.object_y_max)
        else:
            angle, d = rng.uniform(0, 2 * np.pi), rng.uniform(*distance)
            x, y = around[0] + d * np.cos(angle), around[1] + d * np.sin(angle)
            if not (geometry.object_x[0] - 0.05 <= x <= geometry.object_x[1] + 0.05 and abs(y) <= geometry.object_y_max + 0.05):
                continue
        if not lo_r <= geometry.nearest_base_distance(np.array([x, y])) <= hi_r:
            continue
        if any(np.hypot(x - o.x, y - o.y) < radius + o.footprint_radius + clearance for o in placed):
            continue
        if any(np.hypot(x - t.x, y - t.y) < radius + 0.75 * t.size_m + clearance for t in geometry.tags):
            continue
        return float(x), float(y)
    return None


def _instance(rng, kind: ObjectKind, jitter: float, index: int) -> PlacedObject:
    s = rng.uniform(1 - jitter, 1 + jitter)
    size = tuple(float(v * s) for v in kind.size)
    if kind.shape in ("box", "plate"):
        size = (size[0], size[1], float(kind.size[2] * rng.uniform(1 - jitter, 1 + jitter)))
    mass = float(kind.mass * s**3)
    return PlacedObject(f"{kind.name}_{index}", kind.name, kind.shape, kind.surface, size, mass, kind.friction, kind.rgb, 0.0, 0.0)


def randomise_scene(
    seed: int,
    surface: str,
    *,
    target_kinds: list[str] | None = None,
    config: SceneRandomisation | None = None,
    geometry: CobotMagicGeometry = COBOT_MAGIC,
) -> SceneSpec:
    """A seeded scene whose target is of class ``surface`` (or one of ``target_kinds``, library names)."""
    config = config or SceneRandomisation()
    rng = np.random.default_rng(seed)
    if target_kinds:
        unknown = [k for k in target_kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown object kind(s) {unknown}; the library has {', '.join(KINDS)}")
        candidates = [KINDS[k] for k in target_kinds]
    else:
        cls = surface_class(surface)
        if cls not in SIM_SURFACES:
            raise ValueError(f"surface {surface!r} is not one of the simulator's classes {SIM_SURFACES}; name target objects instead")
        candidates = [k for k in LIBRARY if k.surface == cls and k.graspable]
    target = _instance(rng, candidates[rng.integers(len(candidates))], config.size_jitter, 0)
    placed: list[PlacedObject] = []
    pos = _draw_position(rng, geometry, target.footprint_radius, placed, config.clearance_m)
    if pos is None:
        raise RuntimeError("no room for the target in the workspace (check the rig geometry)")
    target.x, target.y = pos
    target.yaw = float(rng.uniform(-np.pi, np.pi))
    placed.append(target)
    graspable = [k for k in LIBRARY if k.graspable]
    plates = [k for k in LIBRARY if not k.graspable]
    extra = [(graspable, True) for _ in range(rng.integers(config.neighbours[0], config.neighbours[1] + 1))]
    extra += [(plates, False) for _ in range(rng.integers(config.distractors[0], config.distractors[1] + 1))]
    for pool, near in extra:
        obj = _instance(rng, pool[rng.integers(len(pool))], config.size_jitter, len(placed))
        where = (target.x, target.y) if near else None
        pos = _draw_position(rng, geometry, obj.footprint_radius, placed, config.clearance_m, where, config.neighbour_distance_m)
        if pos is None:
            continue  # a crowded draw: fewer neighbours rather than overlapping ones
        obj.x, obj.y = pos
        obj.yaw = float(rng.uniform(-np.pi, np.pi))
        placed.append(obj)
    return SceneSpec(objects=placed, target=0, seed=int(seed))


def single_object_scene(kind: str, x: float, y: float, yaw: float = 0.0, seed: int = 0) -> SceneSpec:
    """A scene with one library object at a given place (tests, hand-placed grasps)."""
    k = KINDS[kind]
    obj = PlacedObject(f"{k.name}_0", k.name, k.shape, k.surface, k.size, k.mass, k.friction, k.rgb, x, y, yaw)
    return SceneSpec(objects=[obj], target=0, seed=seed)
