"""The simulated world: MuJoCo model and data of the rig and a scene, arm control, state and contacts.

Frames and units: world frame of :mod:`dkt_sim.rig_geometry` (z up, metres);
arm joints q (6,) in rad in the PiPER SDK's order; gripper *opening* in metres
(the distance between the pads, twice one finger's travel).

Control is through :meth:`SimWorld.command` (position and velocity setpoints
of an arm's joints and a gripper opening); the gripper setpoint moves towards
its command at ``gripper_speed_m_s`` every step, and the fingers stop on what
they meet (force-limited actuator). :meth:`SimWorld.step` advances physics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dkt_grasping.piper_model import JOINT_LOWER, JOINT_NAMES, JOINT_UPPER
from dkt_grasping.reachability import ArmModelConfig
from dkt_sim.mjcf import FINGER_TRAVEL, PhysicsConfig, build_model_spec
from dkt_sim.mujoco_runtime import load_mujoco
from dkt_sim.objects import SceneSpec
from dkt_sim.rig_geometry import COBOT_MAGIC, CobotMagicGeometry
from dkt_stack.transforms import make_transform

#: Label of pixels/geoms: objects are 1..N (scene order), the table and tags 0, the arms ROBOT_LABEL, the rest BACKGROUND_LABEL.
TABLE_LABEL, BACKGROUND_LABEL, ROBOT_LABEL = 0, -1, -2


class CommandError(ValueError):
    """A setpoint the simulated arm refuses (outside the joint limits, not finite, wrong size)."""


def check_setpoint(q: np.ndarray, opening: float | None = None) -> np.ndarray:
    """A validated joint setpoint (6,) rad (and gripper opening, m); :class:`CommandError` saying what is wrong otherwise."""
    q = np.asarray(q, dtype=np.float64).reshape(-1)
    if q.shape != (6,) or not np.all(np.isfinite(q)):
        raise CommandError(f"joint setpoint must be 6 finite angles (rad), got {q.tolist()}")
    lo, hi = np.asarray(JOINT_LOWER), np.asarray(JOINT_UPPER)
    bad = [f"joint{i + 1}={np.rad2deg(v):.2f} deg not in [{np.rad2deg(a):.1f}, {np.rad2deg(b):.1f}]" for i, (v, a, b) in enumerate(zip(q, lo, hi))
           if v < a - 1e-6 or v > b + 1e-6]  # fmt: skip
    if bad:
        raise CommandError("joint setpoint outside the joint limits: " + "; ".join(bad))
    if opening is not None and (not np.isfinite(opening) or not -1e-9 <= opening <= 2 * FINGER_TRAVEL + 1e-9):
        raise CommandError(f"gripper opening must be in [0, {2 * FINGER_TRAVEL}] m, got {opening}")
    return np.clip(q, lo, hi)


@dataclass
class ArmHandles:
    """Indices of one arm in the MuJoCo model."""

    name: str
    qpos: np.ndarray  #: (6,) qpos addresses of joint1..joint6
    dof: np.ndarray  #: (6,) dof addresses
    position_actuators: np.ndarray  #: (6,)
    velocity_actuators: np.ndarray  #: (6,)
    gripper_actuator: int
    finger_qpos: np.ndarray  #: (2,) left, right finger slide
    finger_geoms: frozenset[int]
    geoms: frozenset[int]  #: every geom of the arm, fingers included
    tcp_site: int
    base_body: int


class SimWorld:
    """Rig + scene in MuJoCo. ``width`` x ``height`` is the D435's image size (sets its vertical field of view);
    ``arm_model`` the PiPERs' zero convention and tool (the planner's :class:`~dkt_grasping.reachability.ArmModelConfig`);
    ``attachments`` optional plates and flange cameras (:mod:`dkt_sim.attachments`; none by default)."""

    def __init__(
        self,
        scene: SceneSpec,
        *,
        width: int = 640,
        height: int = 480,
        geometry: CobotMagicGeometry = COBOT_MAGIC,
        physics: PhysicsConfig | None = None,
        arm_model: ArmModelConfig | None = None,
        offscreen: tuple[int, int] | None = None,
        attachments=None,
    ):
        mujoco = load_mujoco()
        self.mj = mujoco
        self.scene, self.geometry = scene, geometry
        self.physics, self.arm_model = physics or PhysicsConfig(), arm_model or ArmModelConfig()
        self.width, self.height = width, height
        spec = build_model_spec(
            scene, width=width, height=height, geometry=geometry, physics=self.physics, arm_model=self.arm_model, offscreen=offscreen,
            attachments=attachments,
        )  # fmt: skip
        self.model = mujoco.MjModel.from_xml_string(spec.xml, spec.assets)
        self.data = mujoco.MjData(self.model)
        m = self.model
        self.arms: dict[str, ArmHandles] = {}
        for arm in geometry.arms:
            jid = [self._id("joint", f"{arm.name}_{j}") for j in JOINT_NAMES]
            fid = [self._id("joint", f"{arm.name}_finger_{s}") for s in ("left", "right")]
            bodies = {self._id("body", f"{arm.name}_base_link")}
            bodies |= {self._id("body", f"{arm.name}_link{i}") for i in range(1, 7)}
            bodies |= {self._id("body", f"{arm.name}_finger_{s}") for s in ("left", "right")}
            geoms = frozenset(int(g) for g in range(m.ngeom) if m.geom_bodyid[g] in bodies)
            self.arms[arm.name] = ArmHandles(
                name=arm.name,
                qpos=np.array([m.jnt_qposadr[j] for j in jid]),
                dof=np.array([m.jnt_dofadr[j] for j in jid]),
                position_actuators=np.array([self._id("actuator", f"{arm.name}_{j}") for j in JOINT_NAMES]),
                velocity_actuators=np.array([self._id("actuator", f"{arm.name}_{j}_velocity") for j in JOINT_NAMES]),
                gripper_actuator=self._id("actuator", f"{arm.name}_gripper"),
                finger_qpos=np.array([m.jnt_qposadr[f] for f in fid]),
                finger_geoms=frozenset({self._id("geom", f"{arm.name}_finger_left"), self._id("geom", f"{arm.name}_finger_right")}),
                geoms=geoms,
                tcp_site=self._id("site", f"{arm.name}_tcp"),
                base_body=self._id("body", f"{arm.name}_base_link"),
            )
        # Object bodies (label k = scene index + 1), and the label of every geom.
        self.object_bodies = [self._id("body", f"obj{k}") for k in range(1, len(scene.objects) + 1)]
        self.object_qpos = [m.jnt_qposadr[self._id("joint", f"obj{k}")] for k in range(1, len(scene.objects) + 1)]
        self.geom_label = np.full(m.ngeom, BACKGROUND_LABEL, dtype=np.int32)
        body_label = {b: k for k, b in enumerate(self.object_bodies, start=1)}
        robot = set().union(*(a.geoms for a in self.arms.values()))
        for gid in range(m.ngeom):
            name = m.geom(gid).name
            if gid in robot:
                self.geom_label[gid] = ROBOT_LABEL
            elif int(m.geom_bodyid[gid]) in body_label:
                self.geom_label[gid] = body_label[int(m.geom_bodyid[gid])]
            elif name == "table" or name.startswith("tag"):
                self.geom_label[gid] = TABLE_LABEL
        self.table_geom = self._id("geom", "table")
        self._gripper_command = {a: 0.0 for a in self.arms}
        self._gripper_setpoint = {a: 0.0 for a in self.arms}
        self.reset()

    def _id(self, kind: str, name: str) -> int:
        obj = {"joint": self.mj.mjtObj.mjOBJ_JOINT, "body": self.mj.mjtObj.mjOBJ_BODY, "actuator": self.mj.mjtObj.mjOBJ_ACTUATOR,
               "geom": self.mj.mjtObj.mjOBJ_GEOM, "site": self.mj.mjtObj.mjOBJ_SITE}[kind]  # fmt: skip
        i = self.mj.mj_name2id(self.model, obj, name)
        if i < 0:
            raise KeyError(f"the simulated world has no {kind} {name!r}")
        return int(i)

    # ------------------------------------------------------------------ state
    def reset(self, settle_s: float = 0.3) -> None:
        """Arms at home with open grippers, objects where the scene puts them, then ``settle_s`` of physics."""
        self.mj.mj_resetData(self.model, self.data)
        home = np.asarray(self.geometry.home_q, dtype=np.float64)
        for name, arm in self.arms.items():
            self.data.qpos[arm.qpos] = home
            self.data.qpos[arm.finger_qpos] = 0.0
            self._gripper_command[name] = self._gripper_setpoint[name] = 0.0
            self.command(name, home)
        self.mj.mj_forward(self.model, self.data)
        self.step(round(settle_s / self.model.opt.timestep))

    @property
    def time(self) -> float:
        """Simulated time (s)."""
        return float(self.data.time)

    def arm_q(self, arm: str) -> np.ndarray:
        """Joint angles (6,) rad."""
        return self.data.qpos[self.arms[arm].qpos].copy()

    def arm_qd(self, arm: str) -> np.ndarray:
        return self.data.qvel[self.arms[arm].dof].copy()

    def gripper_opening(self, arm: str) -> float:
        """Distance between the pads (m)."""
        return float(self.data.qpos[self.arms[arm].finger_qpos].sum())

    def tcp_pose(self, arm: str) -> np.ndarray:
        """4x4 tcp (fingertip centre, PiPER gripper convention) in the world (m)."""
        s = self.arms[arm].tcp_site
        return make_transform(self.data.site_xmat[s].reshape(3, 3), self.data.site_xpos[s])

    def T_world_base(self, arm: str) -> np.ndarray:  # noqa: N802
        b = self.arms[arm].base_body
        return make_transform(self.data.xmat[b].reshape(3, 3), self.data.xpos[b])

    def object_pose(self, index: int) -> np.ndarray:
        """4x4 pose of scene object ``index`` (0-based; its footprint-centre frame) in the world (m)."""
        b = self.object_bodies[index]
        return make_transform(self.data.xmat[b].reshape(3, 3), self.data.xpos[b])

    # ------------------------------------------------------------------ control
    def command(self, arm: str, q: np.ndarray, qd: np.ndarray | None = None, opening: float | None = None) -> None:
        """Set an arm's joint position (rad) and velocity (rad/s) setpoints and, optionally, its gripper opening command (m)."""
        q = check_setpoint(q, opening)
        h = self.arms[arm]
        self.data.ctrl[h.position_actuators] = q
        self.data.ctrl[h.velocity_actuators] = 0.0 if qd is None else np.clip(np.asarray(qd, dtype=np.float64), -10.0, 10.0)
        if opening is not None:
            self._gripper_command[arm] = float(np.clip(opening, 0.0, 2 * FINGER_TRAVEL))

    def gripper_command(self, arm: str) -> float:
        return self._gripper_command[arm]

    def step(self, n: int = 1) -> None:
        """Advance ``n`` physics steps; gripper setpoints move towards their commands at the gripper speed."""
        dt = self.model.opt.timestep
        rate = self.physics.gripper_speed_m_s * dt
        for _ in range(max(0, int(n))):
            for name, h in self.arms.items():
                sp = self._gripper_setpoint[name]
                sp += float(np.clip(self._gripper_command[name] - sp, -rate, rate))
                self._gripper_setpoint[name] = sp
                self.data.ctrl[h.gripper_actuator] = sp / 2.0
            self.mj.mj_step(self.model, self.data)

    # ------------------------------------------------------------------ contacts
    def contacts(self) -> list[tuple[int, int, float]]:
        """Active contacts as (geom1, geom2, normal force N)."""
        out = []
        force = np.zeros(6)
        for i in range(self.data.ncon):
            c = self.data.contact[i]
            if c.efc_address < 0:
                continue  # excluded or inactive
            self.mj.mj_contactForce(self.model, self.data, i, force)
            out.append((int(c.geom1), int(c.geom2), float(abs(force[0]))))
        return out

    def geom_name(self, geom: int) -> str:
        name = self.model.geom(geom).name
        label = int(self.geom_label[geom])
        if label >= 1:
            return self.scene.objects[label - 1].name
        return name or f"geom {geom}"
