"""The MJCF (MuJoCo XML) of the simulated Cobot Magic and a scene, generated from code.

Arms: each PiPER's kinematic chain is written from :mod:`dkt_grasping.piper_model`
at run time: body i sits at ``dh_link_transform(DH_ALPHA[i], DH_A[i],
dh_theta_offset(dh_is_offset)[i], DH_D[i])`` in its parent and rotates about its
z axis within ``JOINT_LOWER..JOINT_UPPER``; a ``tcp`` site sits ``tcp_offset``
along the flange z axis, both from an
:class:`~dkt_grasping.reachability.ArmModelConfig` (the firmware's zero
convention and the tool), the planner's own. So the planner's model and the simulated arm cannot
disagree (a test compares the tcp site with ``PiperKinematics(...).fk`` to 1e-6
for both conventions).
Link shapes are the planner's capsules (:class:`~dkt_grasping.collision.ArmCollisionConfig`)
and gripper boxes (:class:`~dkt_grasping.gripper.GripperConfig`); masses are
rough figures for a 4.2 kg arm and matter little: the bodies are gravity
compensated, as the PiPER's own controller does.

Each joint has a position actuator and a velocity actuator (PD tracking of a
trajectory with its velocity as feed-forward). The gripper's two slide fingers
(0..``FINGER_TRAVEL`` m each) are coupled by an equality constraint, as the
PiPER's are mechanically, and driven by one force-limited position actuator:
commanded to close, they stop on the object and squeeze it with the force limit.

Geom groups: 0 the room (floor, platform, table, tags), 1 the arms, 2 opaque
objects, 3 translucent objects (hidden for the D435's see-through depth pass).
Contact bits: arm geoms collide with the world and objects but not with each
other (self and arm-to-arm collisions are not simulated).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dkt_grasping.collision import ArmCollisionConfig
from dkt_grasping.gripper import GripperConfig
from dkt_grasping.piper_model import DH_A, DH_ALPHA, DH_D, JOINT_LOWER, JOINT_NAMES, JOINT_UPPER, dh_link_transform, dh_theta_offset
from dkt_grasping.reachability import ArmModelConfig
from dkt_sim.objects import PlacedObject, SceneSpec
from dkt_sim.rig_geometry import COBOT_MAGIC, CobotMagicGeometry
from dkt_stack.config import param
from dkt_stack.transforms import matrix_to_quat

#: Travel of each gripper finger (m): the PiPER gripper opens 0..0.076 m between the pads.
FINGER_TRAVEL = 0.038
GROUP_ROOM, GROUP_ARM, GROUP_OPAQUE, GROUP_TRANSLUCENT = 0, 1, 2, 3
#: Rough link masses (kg), base_link..link6 (link6 carries the gripper), and each finger.
LINK_MASSES = (0.16, 0.10, 0.29, 0.29, 0.13, 0.14, 0.55)
FINGER_MASS = 0.03


@dataclass
class PhysicsConfig:
    """Simulation and control settings (SI units)."""

    timestep_s: float = param(0.002, help="physics step (s)")
    arm_kp: list[float] = param(default_factory=lambda: [600.0, 600.0, 600.0, 150.0, 150.0, 150.0], help="joint position gains (N*m/rad)")
    arm_kv: list[float] = param(default_factory=lambda: [40.0, 40.0, 30.0, 5.0, 5.0, 4.0], help="joint velocity gains (N*m*s/rad)")
    arm_torque_limit: list[float] = param(default_factory=lambda: [60.0, 60.0, 60.0, 20.0, 20.0, 20.0], help="joint torque limits (N*m)")
    grip_force_n: float = param(12.0, help="squeeze force of each finger when the gripper closes on an object (N)")
    gripper_speed_m_s: float = param(0.1, help="finger opening rate of change at most (m/s, opening = both fingers)")
    object_torsion: float = param(0.005, help="torsional friction of objects (m): resists turning about the contact normal")

    def __post_init__(self):
        for name in ("arm_kp", "arm_kv", "arm_torque_limit"):
            v = getattr(self, name)
            if len(v) != 6 or min(v) <= 0:
                raise ValueError(f"{name} must be 6 positive numbers, got {v}")
        if self.timestep_s <= 0 or self.grip_force_n <= 0 or self.gripper_speed_m_s <= 0:
            raise ValueError("timestep_s, grip_force_n and gripper_speed_m_s must be > 0")


def _v(values) -> str:
    return " ".join(f"{0.0 if abs(float(v)) < 1e-12 else float(v):.9g}" for v in values)


def _quat_wxyz(R: np.ndarray) -> str:
    x, y, z, w = matrix_to_quat(R)
    return _v((w, x, y, z))


def _yaw_quat(yaw: float) -> str:
    return _v((np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)))


def _camera_xml(name: str, T_world_optical: np.ndarray, fovy_deg: float) -> str:
    # MuJoCo cameras look along their -z with y up: the optical frame with y and z flipped.
    R = T_world_optical[:3, :3] @ np.diag([1.0, -1.0, -1.0])
    return f'<camera name="{name}" pos="{_v(T_world_optical[:3, 3])}" xyaxes="{_v(R[:, 0])} {_v(R[:, 1])}" fovy="{fovy_deg:.9g}"/>'


def _inertial(mass: float, half: float = 0.03) -> str:
    i = mass * (2 * half) ** 2 / 6.0  # a cube of side 2*half
    return f'<inertial pos="0 0 0" mass="{mass:.6g}" diaginertia="{i:.6g} {i:.6g} {i:.6g}"/>'


def arm_xml(
    arm: str, T_world_base: np.ndarray, physics: PhysicsConfig, arm_model: ArmModelConfig, flange_lines: list[str] | None = None
) -> tuple[str, str, str]:
    """(worldbody XML, actuator XML, equality XML) of one PiPER arm named ``arm`` (names are prefixed ``{arm}_``);
    ``flange_lines``: extra elements inside its link6 body (see :mod:`dkt_sim.attachments`)."""
    caps, grip = ArmCollisionConfig(), GripperConfig()
    offsets, tcp = dh_theta_offset(arm_model.dh_is_offset), arm_model.tcp_offset
    # Capsule (start, end) in the body frame of link i: the origin and link i+1's origin (fixed in link i).
    child_origin = [dh_link_transform(DH_ALPHA[i], DH_A[i], offsets[i], DH_D[i])[:3, 3] for i in range(6)]
    capsule_of = {0: (child_origin[0], caps.base_radius), 2: (child_origin[2], caps.upper_arm_radius),
                  3: (child_origin[3], caps.forearm_radius), 5: (child_origin[5], caps.wrist_radius)}  # fmt: skip
    cls = 'class="arm"'
    lines = [f'<body name="{arm}_base_link" pos="{_v(T_world_base[:3, 3])}" quat="{_quat_wxyz(T_world_base[:3, :3])}">']
    lines.append(f'  {_inertial(LINK_MASSES[0])}')
    end, radius = capsule_of[0]
    lines.append(f'  <geom name="{arm}_base" {cls} type="capsule" fromto="0 0 0 {_v(end)}" size="{radius}"/>')
    indent = "  "
    for i in range(6):
        T = dh_link_transform(DH_ALPHA[i], DH_A[i], offsets[i], DH_D[i])
        body = f"{arm}_link{i + 1}"
        lines.append(f'{indent}<body name="{body}" pos="{_v(T[:3, 3])}" quat="{_quat_wxyz(T[:3, :3])}" gravcomp="1">')
        indent += "  "
        lines.append(f"{indent}{_inertial(LINK_MASSES[i + 1])}")
        lines.append(
            f'{indent}<joint name="{arm}_{JOINT_NAMES[i]}" type="hinge" axis="0 0 1" range="{JOINT_LOWER[i]:.9g} {JOINT_UPPER[i]:.9g}" '
            f'damping="0.5" armature="0.02" ref="0"/>'
        )
        if i + 1 in capsule_of:
            end, radius = capsule_of[i + 1]
            lines.append(f'{indent}<geom name="{arm}_link{i + 1}_capsule" {cls} type="capsule" fromto="0 0 0 {_v(end)}" size="{radius}"/>')
    # link6 = flange: gripper body, palm, fingers (their tips at the tcp), tcp site (z = approach, y = closing).
    L, t, w = grip.finger_length, grip.finger_thickness, grip.finger_width
    palm = grip.palm_depth
    body_len = tcp - L - palm  # the gripper body fills the rest, from the flange to the palm
    if body_len <= 0:
        raise ValueError(f"tcp_offset {tcp} m is shorter than the fingers and palm ({L + palm} m)")
    span = grip.max_opening / 2 + t
    lines += [
        f'{indent}<geom name="{arm}_gripper_body" {cls} type="box" pos="0 0 {body_len / 2:.9g}" size="{grip.body_half_extent} {grip.body_half_extent} {body_len / 2:.9g}"/>',
        f'{indent}<geom name="{arm}_palm" {cls} type="box" pos="0 0 {body_len + palm / 2:.9g}" size="{grip.palm_width / 2:.9g} {span:.9g} {palm / 2:.9g}"/>',
        f'{indent}<site name="{arm}_tcp" pos="0 0 {tcp:.9g}" size="0.005" group="5"/>',
    ]
    lines += [f"{indent}{line}" for line in flange_lines or ()]
    for side, sign in (("left", 1.0), ("right", -1.0)):
        lines += [
            f'{indent}<body name="{arm}_finger_{side}" gravcomp="1">',
            f"{indent}  {_inertial(FINGER_MASS, 0.01)}",
            f'{indent}  <joint name="{arm}_finger_{side}" type="slide" axis="0 {sign:g} 0" range="0 {FINGER_TRAVEL}" damping="8" armature="0.01"/>',
            f'{indent}  <geom name="{arm}_finger_{side}" class="finger" type="box" pos="0 {sign * t / 2:.9g} {tcp - L / 2:.9g}" '
            f'size="{w / 2:.9g} {t / 2:.9g} {L / 2:.9g}"/>',
            f"{indent}</body>",
        ]
    for _ in range(6):
        indent = indent[:-2]
        lines.append(f"{indent}</body>")
    lines.append("</body>")
    acts = []
    for i, name in enumerate(JOINT_NAMES):
        lo, hi = JOINT_LOWER[i], JOINT_UPPER[i]
        tau = physics.arm_torque_limit[i]
        acts.append(f'<position name="{arm}_{name}" joint="{arm}_{name}" kp="{physics.arm_kp[i]:.9g}" ctrlrange="{lo:.9g} {hi:.9g}" forcerange="{-tau:g} {tau:g}"/>')
        acts.append(f'<velocity name="{arm}_{name}_velocity" joint="{arm}_{name}" kv="{physics.arm_kv[i]:.9g}" ctrlrange="-10 10" forcerange="{-tau:g} {tau:g}"/>')
    # One actuator drives the coupled pair: its force splits over the two pads (each squeezes with grip_force_n).
    force = 2.0 * physics.grip_force_n
    acts.append(f'<position name="{arm}_gripper" joint="{arm}_finger_left" kp="3000" ctrlrange="0 {FINGER_TRAVEL}" forcerange="{-force:g} {force:g}"/>')
    equality = f'<joint joint1="{arm}_finger_left" joint2="{arm}_finger_right" polycoef="0 1 0 0 0" solref="0.004 1"/>'
    return "\n".join(lines), "\n".join(acts), equality


def _frustum_vertices(r0: float, r1: float, z0: float, z1: float, n: int = 16) -> str:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = lambda r, z: np.stack([r * np.cos(a), r * np.sin(a), np.full(n, z)], axis=1)  # noqa: E731
    return _v(np.concatenate([ring(r0, z0), ring(r1, z1)]).reshape(-1))


def object_xml(obj: PlacedObject, label: int, table_z: float, physics: PhysicsConfig) -> tuple[str, str]:
    """(asset XML, worldbody XML) of one object: a free body named ``obj{label}`` whose origin is its footprint centre."""
    translucent = obj.surface == "translucent"
    group = GROUP_TRANSLUCENT if translucent else GROUP_OPAQUE
    r, g, b = obj.rgb
    mat = f"obj{label}_material"
    assets = []
    if translucent:
        assets.append(f'<material name="{mat}" rgba="{r:.3g} {g:.3g} {b:.3g} 0.3" specular="0.9" shininess="0.95" reflectance="0.05"/>')
    elif obj.surface == "reflective":
        assets.append(f'<material name="{mat}" rgba="{r:.3g} {g:.3g} {b:.3g} 1" specular="1" shininess="1" reflectance="0.45"/>')
    else:
        dark = tuple(0.7 * v for v in obj.rgb)
        assets.append(
            f'<texture name="{mat}_tex" type="2d" builtin="flat" mark="random" random="0.15" width="128" height="128" '
            f'rgb1="{r:.3g} {g:.3g} {b:.3g}" rgb2="{_v(dark)}" markrgb="{_v(dark)}"/>'
        )
        assets.append(f'<material name="{mat}" texture="{mat}_tex" texrepeat="3 3" texuniform="true" specular="0.15" shininess="0.2"/>')
    common = f'material="{mat}" group="{group}" class="object"'
    sx, sy, sz = obj.size
    geoms = []  # (xml without mass, volume)
    if obj.shape in ("box", "plate"):
        geoms.append((f'type="box" pos="0 0 {sz / 2:.9g}" size="{sx / 2:.9g} {sy / 2:.9g} {sz / 2:.9g}"', sx * sy * sz))
    elif obj.shape == "cylinder":
        geoms.append((f'type="cylinder" pos="0 0 {sz / 2:.9g}" size="{sx / 2:.9g} {sz / 2:.9g}"', np.pi * (sx / 2) ** 2 * sz))
    elif obj.shape == "bottle":
        rad, neck = sx / 2, 0.32 * sx / 2
        z_body, z_shoulder = 0.62 * sz, 0.82 * sz
        assets.append(f'<mesh name="obj{label}_shoulder" vertex="{_frustum_vertices(rad, neck, 0.0, z_shoulder - z_body)}"/>')
        geoms.append((f'type="cylinder" pos="0 0 {z_body / 2:.9g}" size="{rad:.9g} {z_body / 2:.9g}"', np.pi * rad**2 * z_body))
        geoms.append((f'type="mesh" mesh="obj{label}_shoulder" pos="0 0 {z_body:.9g}"', np.pi * rad**2 * (z_shoulder - z_body) / 2))
        geoms.append(
            (f'type="cylinder" pos="0 0 {(z_shoulder + sz) / 2:.9g}" size="{neck:.9g} {(sz - z_shoulder) / 2:.9g}"', np.pi * neck**2 * (sz - z_shoulder))
        )
    elif obj.shape == "cup":
        rad, wall, n, floor = sx / 2, 0.005, 14, 0.006
        chord = 2 * rad * np.tan(np.pi / n)
        for k in range(n):
            a = 2 * np.pi * k / n
            c = (rad - wall / 2) * np.array([np.cos(a), np.sin(a)])
            geoms.append(
                (f'type="box" pos="{c[0]:.9g} {c[1]:.9g} {sz / 2:.9g}" euler="0 0 {a:.9g}" size="{wall / 2:.9g} {chord / 2:.9g} {sz / 2:.9g}"', wall * chord * sz)
            )
        geoms.append((f'type="cylinder" pos="0 0 {floor / 2:.9g}" size="{rad - wall:.9g} {floor / 2:.9g}"', np.pi * (rad - wall) ** 2 * floor))
    else:
        raise ValueError(f"unknown object shape {obj.shape!r}")
    total = sum(v for _, v in geoms)
    body = [f'<body name="obj{label}" pos="{obj.x:.9g} {obj.y:.9g} {table_z + 1e-4:.9g}" quat="{_yaw_quat(obj.yaw)}">', f'  <freejoint name="obj{label}"/>']
    for k, (g, vol) in enumerate(geoms):
        body.append(f'  <geom name="obj{label}_g{k}" {g} {common} mass="{obj.mass * vol / total:.6g}" friction="{obj.friction:.4g} {physics.object_torsion:.4g} 0.0001"/>')
    body.append("</body>")
    return "\n".join(assets), "\n".join(body)


@dataclass
class ModelSpec:
    """An MJCF document and the binary assets (PNG textures) it names."""

    xml: str
    assets: dict[str, bytes]


def tag_png(tag_id: int, cell_px: int = 16) -> bytes:
    """A printed tag36h11 (white border included) as PNG bytes, for the tag's texture."""
    import cv2

    from dkt_perception.synthetic_scene import tag_texture

    ok, png = cv2.imencode(".png", tag_texture(tag_id, cell_px))
    if not ok:
        raise RuntimeError("PNG encoding of an AprilTag texture failed")
    return png.tobytes()


def build_model_spec(
    scene: SceneSpec,
    *,
    width: int = 640,
    height: int = 480,
    geometry: CobotMagicGeometry = COBOT_MAGIC,
    physics: PhysicsConfig | None = None,
    arm_model: ArmModelConfig | None = None,
    offscreen: tuple[int, int] | None = None,
    attachments=None,
) -> ModelSpec:
    """The whole world (room, arms, scene objects) with a ``width`` x ``height`` D435 (``offscreen``: the largest render size);
    ``attachments`` (:class:`dkt_sim.attachments.Attachments`, optional) adds plates and flange cameras."""
    physics, arm_model = physics or PhysicsConfig(), arm_model or ArmModelConfig()
    g = geometry
    # MuJoCo's pinhole: square pixels, principal point at ((W-1)/2, (H-1)/2), vertical field of view 2 atan(H / 2 fy).
    fovy = float(np.degrees(2 * np.arctan(height / (2 * g.intrinsics(width, height).fy))))
    off_w, off_h = offscreen or (width, height)
    assets: dict[str, bytes] = {}
    asset_xml, bodies, actuators, equalities = [], [], [], []
    extra = None
    if attachments:
        from dkt_sim.attachments import attachment_xml

        extra = attachment_xml(attachments, [a.name for a in g.arms], fovy)
        assets.update(extra.assets)
    for tag in g.tags:
        assets[f"tag{tag.id}.png"] = tag_png(tag.id)
        asset_xml.append(f'<texture name="tag{tag.id}" type="2d" file="tag{tag.id}.png"/>')
        asset_xml.append(f'<material name="tag{tag.id}" texture="tag{tag.id}" specular="0" shininess="0"/>')
    for arm in g.arms:
        body, act, eq = arm_xml(arm.name, arm.T_world_base, physics, arm_model, extra.flange_lines[arm.name] if extra else None)
        bodies.append(body)
        actuators.append(act)
        equalities.append(eq)
    for k, obj in enumerate(scene.objects, start=1):
        a, b = object_xml(obj, k, g.table_top_z, physics)
        asset_xml.append(a)
        bodies.append(b)
    near, far = g.table_x
    table_t = 0.03
    room = [
        '<geom name="floor" type="plane" size="4 4 0.1" material="floor" group="0"/>',
        f'<geom name="table" type="box" pos="{(near + far) / 2:.9g} 0 {g.table_top_z - table_t / 2:.9g}" '
        f'size="{(far - near) / 2:.9g} {g.table_half_width:.9g} {table_t / 2:.9g}" material="table" group="0" class="room"/>',
        f'<geom name="platform" type="box" pos="0 0 {g.platform_top_z / 2:.9g}" size="0.3 0.42 {g.platform_top_z / 2:.9g}" rgba="0.2 0.2 0.22 1" group="0" class="room"/>',
        f'<geom name="mast" type="box" pos="{g.camera_position[0] - 0.07:.9g} 0 {(g.platform_top_z + g.camera_position[2]) / 2:.9g}" '
        f'size="0.015 0.015 {(g.camera_position[2] - g.platform_top_z) / 2:.9g}" rgba="0.7 0.7 0.72 1" group="0" class="room"/>',
    ]
    for tag in g.tags:
        half = tag.size_m * 10 / 8 / 2  # the printed square: 8 cells of black square + a 1-cell white border each side
        room.append(
            f'<geom name="tag{tag.id}" type="box" pos="{tag.x:.9g} {tag.y:.9g} {g.table_top_z + 0.0003:.9g}" quat="{_yaw_quat(tag.yaw)}" '
            f'size="{half:.9g} {half:.9g} 0.0003" material="tag{tag.id}" group="0" contype="0" conaffinity="0"/>'
        )
    if extra:
        asset_xml += extra.asset_lines
        room += extra.world_lines
    xml = f"""<mujoco model="cobot_magic_sim">
<compiler angle="radian" autolimits="true"/>
<option timestep="{physics.timestep_s:.9g}" integrator="implicitfast" cone="elliptic" impratio="10"/>
<visual>
  <global offwidth="{off_w}" offheight="{off_h}"/>
  <quality shadowsize="0"/>
  <headlight ambient="0.35 0.35 0.35" diffuse="0.45 0.45 0.45" specular="0.2 0.2 0.2"/>
  <map znear="0.05" zfar="20"/>
</visual>
<default>
  <default class="arm"><geom contype="2" conaffinity="1" group="{GROUP_ARM}" rgba="0.55 0.56 0.6 1" condim="3"/></default>
  <default class="finger"><geom contype="2" conaffinity="1" group="{GROUP_ARM}" rgba="0.15 0.15 0.16 1" condim="4" friction="1 0.005 0.0001"/></default>
  <default class="object"><geom contype="1" conaffinity="3" condim="4" priority="1" solref="0.004 1"/></default>
  <default class="room"><geom contype="1" conaffinity="3"/></default>
</default>
<asset>
  <texture name="floor" type="2d" builtin="checker" rgb1="0.32 0.33 0.35" rgb2="0.27 0.28 0.3" width="256" height="256"/>
  <material name="floor" texture="floor" texrepeat="8 8" texuniform="true"/>
  <texture name="table" type="2d" builtin="flat" mark="random" random="0.25" width="512" height="512" rgb1="0.66 0.55 0.43" rgb2="0.6 0.5 0.38" markrgb="0.52 0.42 0.32"/>
  <material name="table" texture="table" texrepeat="4 4" texuniform="true" specular="0.1" shininess="0.1"/>
{chr(10).join(asset_xml)}
</asset>
<worldbody>
  <light name="key" pos="0.6 -0.3 2.4" dir="-0.1 0.15 -1" directional="true" diffuse="0.55 0.55 0.55" specular="0.5 0.5 0.5" castshadow="false"/>
  {_camera_xml("d435", g.T_world_camera, fovy)}
  {_camera_xml("external", g.T_world_external, 50.0)}
{chr(10).join(room)}
{chr(10).join(bodies)}
</worldbody>
<equality>
{chr(10).join(equalities)}
</equality>
<actuator>
{chr(10).join(actuators)}
</actuator>
</mujoco>
"""
    return ModelSpec(xml=xml, assets=assets)


#: World-frame direction towards the key light (for the D435's specular dropouts).
KEY_LIGHT_DIRECTION = tuple(-np.asarray((-0.1, 0.15, -1.0)) / np.linalg.norm((-0.1, 0.15, -1.0)))
