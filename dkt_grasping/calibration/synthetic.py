"""A synthetic rig with a known answer: the PiPER's kinematics, a camera and a tag board, exactly placed.

Calibration is tested and benchmarked here (in milliseconds) and in the
MuJoCo Cobot Magic (:mod:`.mujoco_rig`, seconds). The ground truth is the camera pose ``X_true`` and
the board mount ``Y_true`` (frames as in :mod:`dkt_grasping.calibration.solver`);
the *nominal* values are what a user would start from (the rig file's
current camera pose, a ruler-measured mount): a few centimetres and degrees
off, and used only to choose poses.

Two ways to observe a joint configuration:

* :meth:`SyntheticRig.project`: the board's corners projected exactly, plus
  Gaussian noise of ``noise_px`` (the benchmark's ``--noise-px``);
* :meth:`SyntheticRig.render`: a grey image of the printed board: real
  tag36h11 patterns rendered by OpenCV, printed as the board's
  ``pattern_rotation_deg`` says (180, as in :func:`synthetic_rig`'s boards:
  OpenCV's renders as they are; 0: turned 180 deg into the official ones),
  warped by the board-plane homography with 4x supersampling and area
  averaging, over a textured background, with optional blur and sensor noise.
  The images go through the same detector as a camera's.

:class:`SyntheticSource` wraps a rig as a sample source and an arm that moves
instantly, the interfaces collection uses (see :mod:`.collection`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from dkt_grasping.calibration.board import BoardConfig, BoardModel, grid_board, project
from dkt_grasping.calibration.samples import FLANGE_FRAME, Sample, TagCorners, check_mode
from dkt_grasping.calibration.solver import motion
from dkt_perception.synthetic_scene import look_at_transform, tag_texture
from dkt_stack.intrinsics import CameraIntrinsics
from dkt_stack.transforms import invert_transform, make_transform

#: A D435's colour stream at 640x480 (about 55 deg horizontal field of view).
D435_COLOUR = CameraIntrinsics(640, 480, 615.0, 615.0, 321.3, 238.7)

_PAPER, _INK = 235.0, 22.0  # grey levels of the white paper and the printed black


def perturb(T: np.ndarray, translation_m: float, rotation_deg: float, rng: np.random.Generator) -> np.ndarray:
    """T moved by ``translation_m`` in a random direction and turned by ``rotation_deg`` about a random axis."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    R = Rotation.from_rotvec(np.radians(rotation_deg) * axis).as_matrix()
    return make_transform(T[:3, :3] @ R, T[:3, 3] + translation_m * direction)


@dataclass
class SyntheticRig:
    """Ground truth of one calibration set-up (see the module docstring); frames as in the solver."""

    mode: str
    board: BoardConfig
    X_true: np.ndarray
    Y_true: np.ndarray
    X_nominal: np.ndarray
    Y_nominal: np.ndarray
    intrinsics: CameraIntrinsics = D435_COLOUR
    seed: int = 0
    distance_m: list[float] = field(default_factory=lambda: [0.25, 0.40])  #: camera to board distances the arm reaches here, m
    _kin: object = field(default=None, repr=False)
    _background: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_mode(self.mode)
        self.model = BoardModel(self.board)

    @property
    def kinematics(self):
        if self._kin is None:
            from dkt_grasping.kinematics import PiperKinematics

            self._kin = PiperKinematics()
        return self._kin

    def flange(self, q: np.ndarray) -> np.ndarray:
        return self.kinematics.fk(q, frame=FLANGE_FRAME)

    def board_in_camera(self, q: np.ndarray) -> np.ndarray:
        """True ``T_camera_board`` at joints q (rad)."""
        return invert_transform(self.X_true) @ motion(self.mode, self.flange(q)) @ self.Y_true

    def project(self, q: np.ndarray, noise_px: float, rng: np.random.Generator) -> list[TagCorners]:
        """Exact corners of the board tags in the image, plus N(0, noise_px) per coordinate; tags off the image are left out."""
        T = self.board_in_camera(q)
        out = []
        for tag_id in self.model.ids:
            pts = self.model.object_points(tag_id)
            if np.any((pts @ T[:3, :3].T + T[:3, 3])[:, 2] <= 0.01):
                continue
            uv = project(T, pts, self.intrinsics) + rng.normal(0.0, noise_px, (4, 2))
            inside = (uv[:, 0] >= 0) & (uv[:, 0] <= self.intrinsics.width - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= self.intrinsics.height - 1)
            if inside.all():
                out.append(TagCorners(tag_id, uv))
        return out

    def projected_sample(self, q: np.ndarray, noise_px: float, rng: np.random.Generator, joint_noise_rad: float = 0.0) -> Sample:
        """A sample from :meth:`project`; the joints it reports carry N(0, joint_noise_rad) encoder noise."""
        q_read = np.asarray(q, dtype=np.float64) + rng.normal(0.0, joint_noise_rad, 6) if joint_noise_rad > 0 else np.asarray(q, float)
        return Sample(q=q_read, T_base_flange=self.flange(q_read), tags=self.project(q, noise_px, rng))

    # ------------------------------------------------------------------ rendering

    def background(self) -> np.ndarray:
        """A fixed smooth grey texture (float32, H x W) behind the board."""
        if self._background is None:
            K = self.intrinsics
            rng = np.random.default_rng((self.seed, 271828))
            noise = cv2.GaussianBlur(rng.standard_normal((K.height, K.width)).astype(np.float32), (0, 0), 6.0)
            self._background = (120.0 + 35.0 * noise / max(float(noise.std()), 1e-6)).astype(np.float32)
        return self._background

    def render(self, q: np.ndarray, rng: np.random.Generator, blur_sigma_px: float = 0.0, noise_levels: float = 2.0) -> np.ndarray:
        """Grey uint8 (H, W) camera image of the board at joints q; see the module docstring."""
        img = render_board(self.model, self.board_in_camera(q), self.intrinsics, self.background())
        if blur_sigma_px > 0:
            img = cv2.GaussianBlur(img, (0, 0), blur_sigma_px)
        if noise_levels > 0:
            img = img + rng.normal(0.0, noise_levels, img.shape).astype(np.float32)
        return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def render_board(model: BoardModel, T_camera_board: np.ndarray, intrinsics: CameraIntrinsics, background: np.ndarray, ss: int = 4) -> np.ndarray:
    """The board (white plate with its OpenCV-rendered tags) over ``background``, float32 grey (H, W).

    Only the bounding box of the plate is rendered, ``ss`` x supersampled; tag
    textures are warped with the homography of the board plane, so edges get
    the partial-pixel grey a sensor integrates.
    """
    K = intrinsics
    out = background.astype(np.float32).copy()
    # plate: the tags with their white borders and 1 cm of paper around them
    lo = np.min([(t.x - 0.625 * t.size_m, t.y - 0.625 * t.size_m) for t in model.tags.values()], axis=0) - 0.01
    hi = np.max([(t.x + 0.625 * t.size_m, t.y + 0.625 * t.size_m) for t in model.tags.values()], axis=0) + 0.01
    plate = np.array([[lo[0], lo[1], 0.0], [hi[0], lo[1], 0.0], [hi[0], hi[1], 0.0], [lo[0], hi[1], 0.0]])
    p = plate @ T_camera_board[:3, :3].T + T_camera_board[:3, 3]
    if np.any(p[:, 2] <= 0.01) or T_camera_board[2, 2] <= 0.0:  # behind the camera, or seen from the back
        return out
    uv = K.project(p)
    u0, v0 = (int(np.clip(np.floor(uv[:, i].min()) - 1, 0, n - 1)) for i, n in ((0, K.width), (1, K.height)))
    u1, v1 = (int(np.clip(np.ceil(uv[:, i].max()) + 1, 0, n - 1)) for i, n in ((0, K.width), (1, K.height)))
    w, h = u1 - u0 + 1, v1 - v0 + 1
    if w < 2 or h < 2:
        return out
    # Image pixel u has its centre at u; patch sub-pixel i at image u0 - 0.5 + (i + 0.5) / ss.
    to_patch = np.array([[ss, 0.0, (0.5 - u0) * ss - 0.5], [0.0, ss, (0.5 - v0) * ss - 0.5], [0.0, 0.0, 1.0]])
    H_plane = to_patch @ K.K @ np.column_stack([T_camera_board[:3, 0], T_camera_board[:3, 1], T_camera_board[:3, 3]])
    size = (w * ss, h * ss)
    shade = 0.6 + 0.4 * abs(float(T_camera_board[2, 2]))  # a board turned away from the camera looks darker
    patch = np.full((size[1], size[0]), _PAPER, dtype=np.float32)
    alpha = _polygon_mask((_apply(H_plane, plate[:, :2])), size)
    for tag_id in model.ids:
        tag = model.tags[tag_id]
        cell = 16
        tex = tag_texture(tag_id, cell).astype(np.float32)  # OpenCV's print
        if model.pattern_rotation_deg == 0.0:
            tex = tex[::-1, ::-1]  # the official print: OpenCV's turned 180 deg
        tex = _INK + tex * ((_PAPER - _INK) / 255.0)
        n = tex.shape[0]
        yaw = tag.yaw_deg
        if abs(yaw / 90.0 - round(yaw / 90.0)) > 1e-9:
            raise ValueError(f"the synthetic renderer places tags at multiples of 90 deg only, tag {tag_id} has yaw {yaw}")
        tex = np.ascontiguousarray(np.rot90(tex, k=-round(yaw / 90.0) % 4))
        outer = tag.size_m * 1.25  # 10 cells printed where the black square is 8
        # texture pixel (c, r) centre -> tag-aligned board point (x, y)
        to_board = np.array([[outer / n, 0.0, tag.x - outer / 2 + 0.5 * outer / n], [0.0, outer / n, tag.y - outer / 2 + 0.5 * outer / n], [0, 0, 1]])
        corners = np.array([[tag.x - outer / 2, tag.y - outer / 2], [tag.x + outer / 2, tag.y - outer / 2], [tag.x + outer / 2, tag.y + outer / 2], [tag.x - outer / 2, tag.y + outer / 2]])
        quad = _apply(H_plane, corners)
        # warp into the tag's own bounding box of the patch only (a 3x3 board close up is large)
        x0, y0 = (int(np.clip(np.floor(quad[:, i].min()) - 1, 0, size[i] - 1)) for i in (0, 1))
        x1, y1 = (int(np.clip(np.ceil(quad[:, i].max()) + 1, 0, size[i] - 1)) for i in (0, 1))
        box = (x1 - x0 + 1, y1 - y0 + 1)
        shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]])
        warped = cv2.warpPerspective(tex, shift @ H_plane @ to_board, box, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        m = _polygon_mask(quad - (x0, y0), box)
        sub = patch[y0 : y1 + 1, x0 : x1 + 1]
        patch[y0 : y1 + 1, x0 : x1 + 1] = sub * (1.0 - m) + warped * m
    patch *= shade
    a = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA)
    v = cv2.resize(alpha * patch, (w, h), interpolation=cv2.INTER_AREA)
    out[v0 : v1 + 1, u0 : u1 + 1] = out[v0 : v1 + 1, u0 : u1 + 1] * (1.0 - a) + v
    return out


def _apply(H: np.ndarray, xy: np.ndarray) -> np.ndarray:
    p = np.column_stack([xy, np.ones(len(xy))]) @ H.T
    return p[:, :2] / p[:, 2:3]


def _polygon_mask(poly: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float32 mask (size[1], size[0]) of a convex polygon given in pixel-centre coordinates."""
    mask = np.zeros((size[1], size[0]), dtype=np.float32)
    shift = 4
    cv2.fillConvexPoly(mask, np.round(poly * (1 << shift)).astype(np.int32), 1.0, lineType=cv2.LINE_8, shift=shift)
    return mask


# ----------------------------------------------------------------------------- default set-ups


def _rx(deg: float) -> np.ndarray:
    return Rotation.from_euler("x", deg, degrees=True).as_matrix()


def synthetic_rig(mode: str, seed: int = 0, board: BoardConfig | None = None) -> SyntheticRig:
    """The Cobot Magic's two set-ups with a seeded true geometry.

    eye_to_hand: the front camera 0.55 m up, behind the arm's base, looking
    forward and down at the workspace (as on the Cobot Magic's frame), a 2x2
    board of 35 mm tags on a bracket beside the gripper, facing back along the
    approach axis. eye_in_hand: a wrist camera beside the gripper pitched 30 deg
    towards the fingertips, a 3x3 board of 40 mm tags flat on the table. The truth
    is the nominal geometry off by 15 mm / 3 deg (camera) and 5 mm / 2 deg (board).
    """
    check_mode(mode)
    rng = np.random.default_rng(seed)
    if mode == "eye_to_hand":
        # the front camera high above and behind the arm's base, looking forward and down at the workspace
        X_nom = look_at_transform((0.0, -0.15, 0.55), (0.32, -0.05, 0.10))
        # a bracket holds the board 7 cm beside the flange axis, facing back along the approach axis
        # (board z, into the board, = flange z): towards the camera when the gripper reaches forward and down
        Y_nom = make_transform(np.eye(3), (0.07, 0.0, 0.03))
        board = board or grid_board(2, 2, 0.035, 0.045, pattern_rotation_deg=180.0)
        distance = [0.32, 0.48]
    else:
        # the wrist camera 7 cm beside the flange axis, pitched 30 deg towards it: it looks at the fingertips
        X_nom = make_transform(Rotation.from_euler("y", 30.0, degrees=True).as_matrix(), (-0.07, 0.0, 0.03))
        Y_nom = make_transform(_rx(180.0), (0.30, 0.0, 0.0))  # face up on the table, 0.30 m in front of the base
        board = board or grid_board(3, 3, 0.04, 0.05, pattern_rotation_deg=180.0)
        distance = [0.22, 0.38]
    X_true = perturb(X_nom, 0.015, 3.0, rng)
    Y_true = perturb(Y_nom, 0.005, 2.0, rng)
    return SyntheticRig(mode, board, X_true, Y_true, X_nom, Y_nom, seed=seed, distance_m=distance)


# ----------------------------------------------------------------------------- as a sample source


class SyntheticSource:
    """A :class:`SyntheticRig` as collection sees a rig: an arm that moves at once and a camera.

    ``capture()`` renders the board at the current joints (or projects its
    corners when ``render`` is False; then the image is None and
    ``corners`` carries the noisy detections). ``fail_after`` raises
    KeyboardInterrupt at that capture, to test interrupted runs.
    """

    def __init__(
        self,
        rig: SyntheticRig,
        q_start: np.ndarray,
        *,
        seed: int = 0,
        render: bool = True,
        noise_px: float = 0.0,
        blur_sigma_px: float = 0.0,
        fail_after: int | None = None,
    ):
        self.rig = rig
        self.q = np.asarray(q_start, dtype=np.float64).copy()
        self.rng = np.random.default_rng(seed)
        self.render = render
        self.noise_px = noise_px
        self.blur_sigma_px = blur_sigma_px
        self.fail_after = fail_after
        self.captures = 0
        self.moves = 0

    @property
    def intrinsics(self) -> CameraIntrinsics:
        return self.rig.intrinsics

    def current_q(self) -> np.ndarray:
        return self.q.copy()

    def move_to(self, q_goal: np.ndarray) -> np.ndarray:
        self.q = np.asarray(q_goal, dtype=np.float64).copy()
        self.moves += 1
        return self.q.copy()

    def capture(self):
        from dkt_grasping.calibration.collection import Capture

        if self.fail_after is not None and self.captures >= self.fail_after:
            raise KeyboardInterrupt
        self.captures += 1
        stamp = 1_700_000_000_000_000_000 + self.captures * 1_000_000_000
        if self.render:
            return Capture(self.rig.render(self.q, self.rng, self.blur_sigma_px), self.q.copy(), stamp)
        return Capture(None, self.q.copy(), stamp, corners=self.rig.project(self.q, self.noise_px, self.rng))
