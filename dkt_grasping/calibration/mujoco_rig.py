"""Hand-eye calibration in the MuJoCo Cobot Magic (:mod:`dkt_sim`): a rendered tag board, the arm moved in physics.

The calibration target is the calibration config's :class:`~.board.BoardConfig`,
printed into one texture (:func:`board_image`, the print convention included)
and shown on a thin plate of the simulated world (:mod:`dkt_sim.attachments`):

* **eye_to_hand**: on a bracket on the arm's flange (:data:`FLANGE_BOARD_MOUNT`,
  beside the gripper, facing back along the approach axis as in
  ``config/calibration/eye_to_hand.yaml``), seen by the rig's front D435;
* **eye_in_hand**: lying face up on the table in front of the arm
  (:data:`TABLE_BOARD_POSE`), seen by a D435 on the flange
  (:data:`WRIST_CAMERA_MOUNT`: behind the gripper, pitched a little towards
  the fingertips, which stay at the edge of its view).

The truth is read back from the compiled MuJoCo model (camera and plate poses
after forward kinematics), not from the constants that built it; for
eye_to_hand it is the camera pose of ``config/rig/cobot_magic_sim.yaml`` (a
test checks). As with :mod:`.synthetic`, the *nominal* geometry a user would
start from (a rig file's rough camera pose, a ruler-measured mount) is the
truth off by 15 mm / 3 deg (camera) and 5 mm / 2 deg (board), seeded, and is
only used to plan poses.

:class:`MujocoSource` is the rig as collection sees it (:mod:`.collection`):
``move_to`` plans the move with the CPU planner as ``calibration_node`` does
(the table and the platform as obstacles), tracks it in physics
(:class:`dkt_sim.execution.SequenceRunner`, which watches for collisions and a
blocked arm) and waits until the arm has settled; ``capture`` renders the
camera's colour image (:meth:`dkt_sim.camera.SimCamera.colour`, with the colour
sensor noise) and reads the joints of the same physics state. The poses come
from the real automatic plan (:mod:`.poses`), made with the nominal geometry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from dkt_grasping.calibration.board import BoardConfig, BoardModel
from dkt_grasping.calibration.samples import FLANGE_FRAME, check_mode
from dkt_grasping.calibration.synthetic import perturb
from dkt_stack.intrinsics import CameraIntrinsics
from dkt_stack.transforms import invert_transform, make_transform

#: Grey levels of the printed board: paper and ink (a print is neither pure white nor pure black; keeps the render unsaturated).
PAPER, INK = 225, 25
#: Board frame in the flange (link6) frame, eye_to_hand: 9.5 cm beside the flange axis (clear of the 3.3 cm gripper body),
#: 3 cm along it, board z (into the board) along the approach axis, facing back towards the camera.
FLANGE_BOARD_MOUNT = make_transform(np.eye(3), (0.095, 0.0, 0.03))
#: Board frame in the arm's base frame, eye_in_hand: face up on the table (board z pointing down), 0.38 m in front of the base;
#: its z is set to the table top (plus the plate) of the simulated geometry.
TABLE_BOARD_POSE = make_transform(Rotation.from_euler("x", 180.0, degrees=True).as_matrix(), (0.38, 0.0, 0.0))
#: Wrist D435 colour optical frame in the flange frame, eye_in_hand: 7.5 cm beside the gripper axis, 2 cm along it, image
#: "down" towards the gripper, pitched 15 deg towards the fingertips, which then show in a band at the bottom of the image.
WRIST_CAMERA_MOUNT = make_transform(Rotation.from_euler("YZ", [15.0, -90.0], degrees=True).as_matrix(), (-0.075, 0.0, 0.02))
PLATE_THICKNESS_M = {"eye_to_hand": 0.003, "eye_in_hand": 0.002}


def board_image(board: BoardConfig, cell_px: int = 12, margin_m: float = 0.01, supersample: int = 4) -> tuple[np.ndarray, tuple[float, float], np.ndarray]:
    """The printed board: (grey uint8 image, its (width, height) in m, ``T_board_face`` 4x4).

    Each tag is printed as the convention of ``board.pattern_rotation_deg`` says:
    the official image for 0, OpenCV's render (the official one turned 180 deg)
    for 180, turned by its ``yaw_deg`` and centred at its ``x, y``; the white
    border included and ``margin_m`` of paper around the tags. The smallest tag
    gets ``cell_px`` pixels per cell. ``T_board_face`` places the picture's face
    frame (:mod:`dkt_sim.attachments`: x along its columns, y along its rows, z
    into it; origin at its centre) in the board frame: the same axes, shifted.
    """
    from dkt_perception.synthetic_scene import tag_texture

    model = BoardModel(board)
    px_per_m = cell_px * 8 / min(t.size_m for t in board.tags)
    corners = []
    for t in board.tags:
        outer = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.625 * t.size_m  # 10 cells printed where the black square is 8
        a = np.radians(t.yaw_deg)
        R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        corners.append(outer @ R.T + (t.x, t.y))
    corners = np.concatenate(corners)
    lo, hi = corners.min(axis=0) - margin_m, corners.max(axis=0) + margin_m
    width, height = (int(np.ceil((hi[i] - lo[i]) * px_per_m)) for i in (0, 1))
    size = (width / px_per_m, height / px_per_m)  # whole pixels: the picture is exactly this many metres
    ss = int(supersample)
    scale = ss * px_per_m  # canvas pixels per metre
    canvas = np.full((height * ss, width * ss), float(PAPER), dtype=np.float32)
    for t in board.tags:
        cell = max(1, round(cell_px * t.size_m / min(x.size_m for x in board.tags)))
        printed = tag_texture(t.id, cell).astype(np.float32)  # OpenCV's pattern
        if model.pattern_rotation_deg == 0.0:
            printed = np.ascontiguousarray(printed[::-1, ::-1])  # the official pattern: OpenCV's turned 180 deg
        printed = INK + printed * ((PAPER - INK) / 255.0)
        n, outer = printed.shape[0], 1.25 * t.size_m
        a = np.radians(t.yaw_deg)
        R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        # canvas pixel (U, V) centre -> board (x, y) -> tag-local (p, q) -> printed pixel (c, r)
        to_board = np.array([[1 / scale, 0.0, lo[0] + 0.5 / scale], [0.0, 1 / scale, lo[1] + 0.5 / scale], [0.0, 0.0, 1.0]])
        to_tag = np.block([[R.T, (-R.T @ np.array([t.x, t.y]))[:, None]], [np.zeros((1, 2)), np.ones((1, 1))]])
        to_printed = np.array([[n / outer, 0.0, n / 2 - 0.5], [0.0, n / outer, n / 2 - 0.5], [0.0, 0.0, 1.0]])
        M = (to_printed @ to_tag @ to_board)[:2]
        warped = cv2.warpAffine(printed, M, (canvas.shape[1], canvas.shape[0]), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)  # fmt: skip
        inside = warped >= 0
        canvas[inside] = warped[inside]
    image = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)  # each pixel the mean of its ss x ss samples
    T_board_face = make_transform(np.eye(3), (lo[0] + size[0] / 2, lo[1] + size[1] / 2, 0.0))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), size, T_board_face


@dataclass
class MujocoCalibrationRig:
    """The simulated Cobot Magic set up for one calibration (see the module docstring); frames as in :mod:`.solver`.

    ``X_true``/``Y_true`` are read from the compiled model; ``X_nominal``/``Y_nominal`` plan the poses.
    """

    mode: str
    arm: str
    board: BoardConfig
    world: object  #: dkt_sim.world.SimWorld
    camera: object  #: dkt_sim.camera.SimCamera
    camera_name: str  #: the MuJoCo camera the board is seen with
    X_true: np.ndarray
    Y_true: np.ndarray
    X_nominal: np.ndarray
    Y_nominal: np.ndarray
    seed: int = 0
    distance_m: list[float] = field(default_factory=lambda: [0.3, 0.5])  #: camera to board distances to plan, m

    def __post_init__(self) -> None:
        self.model = BoardModel(self.board)
        self.kinematics = self.world.arm_model.kinematics()

    @property
    def intrinsics(self) -> CameraIntrinsics:
        return self.camera.intrinsics

    def flange(self, q: np.ndarray) -> np.ndarray:
        return self.kinematics.fk(q, frame=FLANGE_FRAME)

    def surfaces(self) -> list[tuple[float, float, float, float, float]]:
        """Tops of the table and the platform the arm stands on, in the arm's base frame as read from the model:
        (x_min, x_max, y_min, y_max, z) each, m (boxes aligned with the world; the arm bases are not turned)."""
        w = self.world
        T_base_world = invert_transform(w.T_world_base(self.arm))
        out = []
        for name in ("table", "platform"):
            g = w._id("geom", name)
            centre, half = w.data.geom_xpos[g], w.model.geom_size[g]
            lo = T_base_world @ np.append(centre - half, 1.0)
            hi = T_base_world @ np.append(centre + half, 1.0)
            out.append((float(min(lo[0], hi[0])), float(max(lo[0], hi[0])), float(min(lo[1], hi[1])), float(max(lo[1], hi[1])), float(hi[2])))
        return out

    def plan_config(self, count: int, seed: int):
        """Automatic-pose settings for this rig: its distances, and one plane over the table and the platform at the higher
        of the two tops (the platform's: the table is 2.2 cm lower) for collision checks, base frame."""
        from dkt_grasping.calibration.poses import PosePlanConfig

        s = np.array(self.surfaces())
        extent = [float(s[:, 0].min()), float(s[:, 1].max()), float(s[:, 2].min()), float(s[:, 3].max())]
        return PosePlanConfig(count=count, distance_m=list(self.distance_m), seed=seed, table_z_m=float(s[:, 4].max()), table_extent_m=extent)

    def scene_points(self, spacing: float = 0.02) -> np.ndarray:
        """Points (N, 3) on the table and platform tops, base frame (m), for the motion planner; the arm's foot is left out."""
        pts = []
        for x0, x1, y0, y1, z in self.surfaces():
            xs, ys = np.meshgrid(np.arange(x0, x1 + 1e-9, spacing), np.arange(y0, y1 + 1e-9, spacing))
            pts.append(np.column_stack([xs.ravel(), ys.ravel(), np.full(xs.size, z)]))
        pts = np.concatenate(pts)
        return pts[np.hypot(pts[:, 0], pts[:, 1]) > 0.12]

    def close(self) -> None:
        self.camera.close()


def _body_pose(world, name: str) -> np.ndarray:
    b = world._id("body", name)
    return make_transform(world.data.xmat[b].reshape(3, 3), world.data.xpos[b])


def _camera_pose(world, name: str) -> np.ndarray:
    """A MuJoCo camera's optical frame in the world (MuJoCo cameras look along -z with y up: flip y and z)."""
    c = world.mj.mj_name2id(world.model, world.mj.mjtObj.mjOBJ_CAMERA, name)
    if c < 0:
        raise KeyError(f"the simulated world has no camera {name!r}")
    return make_transform(world.data.cam_xmat[c].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0]), world.data.cam_xpos[c])


def mujoco_calibration_rig(
    mode: str,
    arm: str = "left",
    seed: int = 0,
    board: BoardConfig | None = None,
    *,
    width: int = 640,
    height: int = 480,
    rgb_noise_std: float = 2.0,
    geometry=None,
) -> MujocoCalibrationRig:
    """The simulated rig with the board of ``config/calibration/<mode>.yaml`` (or ``board``) mounted for ``mode``;
    poses are planned at that file's camera-to-board distances.

    The world has no objects; the other arm rests at home. ``rgb_noise_std``: the colour sensor noise, 8-bit levels.
    """
    from dkt_grasping.calibration.config import load_calibration_config
    from dkt_sim.attachments import Attachments, MountedCamera, TexturedPlate, face_to_geom
    from dkt_sim.camera import CameraConfig, SimCamera
    from dkt_sim.objects import SceneSpec
    from dkt_sim.rig_geometry import COBOT_MAGIC
    from dkt_sim.world import SimWorld

    check_mode(mode)
    geometry = geometry or COBOT_MAGIC
    placement = geometry.arm(arm)
    config = load_calibration_config(mode)
    board = board or config.board
    image, size, T_board_face = board_image(board)
    thickness = PLATE_THICKNESS_M[mode]
    if mode == "eye_to_hand":
        plate = TexturedPlate("calibration_board", image, size, FLANGE_BOARD_MOUNT @ T_board_face, parent=arm, thickness_m=thickness)
        attachments = Attachments(plates=(plate,))
        camera_name = "d435"
    else:
        table_z = geometry.table_top_z - placement.position[2]
        T_base_board = TABLE_BOARD_POSE.copy()
        T_base_board[2, 3] = table_z + thickness
        T_world_face = placement.T_world_base @ T_base_board @ T_board_face
        camera_name = f"{arm}_wrist_camera"
        attachments = Attachments(
            plates=(TexturedPlate("calibration_board", image, size, T_world_face, thickness_m=thickness),),
            cameras=(MountedCamera(camera_name, arm, WRIST_CAMERA_MOUNT),),
        )
    world = SimWorld(SceneSpec(), width=width, height=height, geometry=geometry, attachments=attachments)
    camera = SimCamera(world, CameraConfig(rgb_noise_std=rgb_noise_std), seed=seed)
    # The truth as MuJoCo compiled it: the board's face geom and the camera, after forward kinematics.
    world.mj.mj_kinematics(world.model, world.data)
    g = world._id("geom", "calibration_board")
    T_world_geom = make_transform(world.data.geom_xmat[g].reshape(3, 3), world.data.geom_xpos[g])
    T_world_board = T_world_geom @ invert_transform(face_to_geom(thickness)) @ invert_transform(T_board_face)
    T_world_base = world.T_world_base(arm)
    T_world_flange = _body_pose(world, f"{arm}_link6")
    T_world_camera = _camera_pose(world, camera_name)
    if mode == "eye_to_hand":
        X_true = invert_transform(T_world_base) @ T_world_camera
        Y_true = invert_transform(T_world_flange) @ T_world_board
    else:
        X_true = invert_transform(T_world_flange) @ T_world_camera
        Y_true = invert_transform(T_world_base) @ T_world_board
    rng = np.random.default_rng(seed)
    X_nominal, Y_nominal = perturb(X_true, 0.015, 3.0, rng), perturb(Y_true, 0.005, 2.0, rng)
    return MujocoCalibrationRig(
        mode, arm, board, world, camera, camera_name, X_true, Y_true, X_nominal, Y_nominal, seed, list(config.poses.distance_m)
    )


def motion_planner(arm_model):
    """The CPU planner that visits the automatic poses, set up as ``calibration_node`` sets it up (the arm's reach as workspace)."""
    from dkt_grasping.calibration.poses import REACH_WORKSPACE
    from dkt_grasping.planning import create_planner
    from dkt_stack.config import to_dict

    return create_planner("cpu", {"workspace": REACH_WORKSPACE, "arm": to_dict(arm_model)})


class MujocoSource:
    """A :class:`MujocoCalibrationRig` as collection sees a rig: a :class:`~.collection.SampleSource` and an
    :class:`~.collection.ArmMotion` (see the module docstring).

    Moves are planned as on the rig, by the CPU planner (``plan_to_joints``, the arm's reach as workspace,
    the table and platform as obstacles), and tracked in physics; a move ends when every joint is within
    ``settle_rad`` of the goal and slower than ``settle_rad_s``, or fails after ``settle_timeout_s``.
    """

    def __init__(
        self,
        rig: MujocoCalibrationRig,
        *,
        planner=None,
        settle_rad: float = 1e-3,
        settle_rad_s: float = 2e-3,
        settle_timeout_s: float = 3.0,
    ):
        if settle_rad <= 0 or settle_rad_s <= 0 or settle_timeout_s <= 0:
            raise ValueError("settle_rad, settle_rad_s and settle_timeout_s must be > 0")
        self.rig, self.world, self.arm = rig, rig.world, rig.arm
        self.planner = planner or motion_planner(rig.world.arm_model)
        self.scene_points = rig.scene_points()
        self.settle_rad, self.settle_rad_s, self.settle_timeout_s = settle_rad, settle_rad_s, settle_timeout_s
        self.captures = 0
        self.moves = 0

    @property
    def intrinsics(self) -> CameraIntrinsics:
        return self.rig.intrinsics

    def current_q(self) -> np.ndarray:
        return self.world.arm_q(self.arm)

    def move_to(self, q_goal: np.ndarray) -> np.ndarray:
        """Plan to ``q_goal`` (rad), run the trajectory in physics, wait until the arm settles; MotionError otherwise."""
        from dkt_grasping.calibration.collection import MotionError
        from dkt_grasping.planning import PlanningError
        from dkt_sim.execution import SequenceRunner, TimedSequence, run_to_end
        from dkt_sim.world import CommandError

        w = self.world
        try:
            traj = self.planner.plan_to_joints(w.arm_q(self.arm), np.asarray(q_goal, dtype=np.float64), self.scene_points)
        except PlanningError as exc:
            raise MotionError(f"no plan: {exc}") from exc
        opening = w.gripper_command(self.arm)
        n = len(traj.times)
        try:
            sequence = TimedSequence(traj.times, np.column_stack([traj.positions, np.full(n, opening)]), np.column_stack([traj.velocities, np.zeros(n)]))
        except CommandError as exc:
            raise MotionError(f"the planned trajectory is not a valid setpoint sequence: {exc}") from exc
        report = run_to_end(w, SequenceRunner(w, self.arm, sequence))
        self.moves += 1
        hits = [e.text for e in report.events if e.kind in ("collision", "table")]
        if report.stopped or hits:
            w.command(self.arm, w.arm_q(self.arm), opening=opening)
            raise MotionError(f"the move {'stopped: ' + report.stopped if report.stopped else 'collided'}{': ' + '; '.join(hits) if hits else ''}")
        q1 = traj.positions[-1]
        deadline = w.time + self.settle_timeout_s
        while True:
            err, speed = float(np.max(np.abs(w.arm_q(self.arm) - q1))), float(np.max(np.abs(w.arm_qd(self.arm))))
            if err <= self.settle_rad and speed <= self.settle_rad_s:
                return w.arm_q(self.arm)
            if w.time > deadline:
                raise MotionError(f"the arm did not settle within {self.settle_timeout_s:g} s ({np.degrees(err):.2f} deg from the goal)")
            w.step(10)

    def capture(self):
        """The camera's colour image and the joints (rad) of the same physics state; the stamp is the simulated time (ns)."""
        from dkt_grasping.calibration.collection import Capture

        self.captures += 1
        cam = self.rig.camera
        cam.snapshot()
        image = cam.colour(self.rig.camera_name, frame_index=self.captures)
        return Capture(image, self.world.arm_q(self.arm), round(self.world.time * 1e9))
