"""AnyGrasp SDK adapter (licensed, x86_64 + CUDA): the only module that imports ``gsnet``.

Written against the SDK's documented API (graspnet/anygrasp_sdk):

* legacy: ``AnyGrasp(cfgs)``, ``load_net()``, then
  ``gg, cloud = get_grasp(points, colors, lims=[xmin, xmax, ymin, ymax, zmin, zmax],
  apply_object_mask=True, dense_grasp=False, collision_detection=True)``;
  it returns ``None`` when no grasp survives;
* newer: ``create_detector(cfgs).get_grasp(points, optional_params)``.

``points``/``colors`` are float32 Nx3 in the camera frame (metres, colours
0..1); ``lims`` are camera-frame bounds. A GraspGroup row is
``[score, width, height, depth, R(9, row-major), t(3), object_id]`` in the
GraspNet gripper frame (x = approach, y = closing), converted here to the
PiPER convention in the robot base frame.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from dkt_grasping.grasp import Grasp, grasp_nms
from dkt_grasping.grasp_detection.base import EmptyCloudError, check_cloud, check_target, check_transform, target_share
from dkt_grasping.grasp_frames import graspnet_to_piper
from dkt_grasping.gripper import GripperConfig
from dkt_grasping.workspace import WorkspaceLimits
from dkt_stack.config import param
from dkt_stack.transforms import transform_points

#: Columns of a GraspNet/AnyGrasp GraspGroup array.
GRASP_ARRAY_WIDTH = 17


class AnyGraspUnavailable(ImportError):
    """The AnyGrasp SDK (module ``gsnet``) or its licence is missing."""


@dataclass
class AnyGraspConfig:
    """AnyGrasp SDK settings (SDK names kept) and our post-processing."""

    checkpoint_path: str = param("", help="path of the AnyGrasp checkpoint (checkpoint_detection.tar)")
    max_gripper_width: float = param(0.07, help="widest grasp the SDK may return (m, <= 0.1); PiPER opens 0.07 m")
    gripper_height: float = param(0.03, help="gripper finger height used by the SDK (m)")
    top_down_grasp: bool = param(False, help="SDK option: output top-down grasps only")
    debug: bool = param(False, help="SDK option: also return the processed cloud for visualisation")
    api: Literal["auto", "legacy", "detector"] = param(
        "auto", help="SDK entry point: AnyGrasp(cfgs) (legacy), create_detector(cfgs), or auto"
    )
    apply_object_mask: bool = param(True, help="SDK option: keep grasps on segmented objects only")
    dense_grasp: bool = param(False, help="SDK option: dense grasp prediction")
    collision_detection: bool = param(True, help="SDK option: the SDK's own gripper collision check")
    nms_translation: float = param(0.01, help="NMS: centres closer than this are duplicates (m)")
    nms_rotation_deg: float = param(30.0, help="NMS: orientations closer than this are duplicates (deg)")
    max_grasps: int = param(40, help="grasps returned at most")
    min_target_fraction: float = param(
        0.8, help="with an operator target: share of the points between the fingers that must be the target's (0..1)"
    )
    base_lean_deg: list[float] = param(
        default_factory=lambda: [20.0, 35.0, 50.0],
        help="also try each AnyGrasp grasp's contacts with the approach tilted toward the arm base by these angles (deg); "
        "the variants pass the open gripper model's checks (empty = AnyGrasp's poses only)",
    )
    lean_score_factor: float = param(
        0.9, help="score of a leaning variant = its AnyGrasp grasp's score times this (AnyGrasp never scored the tilted pose itself)"
    )

    def __post_init__(self):
        if not 0 < self.max_gripper_width <= 0.1:
            raise ValueError(f"max_gripper_width must be in (0, 0.1] m (SDK limit), got {self.max_gripper_width}")
        if not 0 < self.lean_score_factor <= 1:
            raise ValueError(f"lean_score_factor must be in (0, 1], got {self.lean_score_factor}")


def build_sdk_config(cfg: AnyGraspConfig) -> types.SimpleNamespace:
    """The argparse-like ``cfgs`` object the SDK constructors read."""
    return types.SimpleNamespace(
        checkpoint_path=cfg.checkpoint_path,
        max_gripper_width=float(cfg.max_gripper_width),
        gripper_height=float(cfg.gripper_height),
        top_down_grasp=bool(cfg.top_down_grasp),
        debug=bool(cfg.debug),
    )


def grasp_array_from_result(result: Any) -> np.ndarray:
    """Kx17 GraspGroup array from whatever ``get_grasp`` returned (None, (gg, cloud), gg or an array)."""
    if result is None:
        return np.zeros((0, GRASP_ARRAY_WIDTH))
    if isinstance(result, tuple):
        result = result[0] if result else None
        if result is None:
            return np.zeros((0, GRASP_ARRAY_WIDTH))
    array = getattr(result, "grasp_group_array", result)
    array = np.asarray(array, dtype=np.float64)
    if array.size == 0:
        return np.zeros((0, GRASP_ARRAY_WIDTH))
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != GRASP_ARRAY_WIDTH:
        raise ValueError(f"expected a GraspGroup array of shape Kx{GRASP_ARRAY_WIDTH}, got {array.shape}")
    return array


def grasps_from_array(array: np.ndarray, T_base_camera: np.ndarray) -> list[Grasp]:
    """GraspGroup rows (camera frame, GraspNet convention) -> Grasps in the base frame, PiPER convention."""
    grasps = []
    for row in np.asarray(array, dtype=np.float64).reshape(-1, GRASP_ARRAY_WIDTH):
        T_cam = np.eye(4)
        T_cam[:3, :3] = row[4:13].reshape(3, 3)
        T_cam[:3, 3] = row[13:16]
        pose = graspnet_to_piper(T_base_camera @ T_cam)
        grasps.append(Grasp(pose=pose, width=float(row[1]), score=float(row[0]), depth=float(row[3]), object_id=int(row[16])))
    return grasps


def _import_sdk():
    try:
        import gsnet  # the AnyGrasp SDK; licensed, CUDA only
    except ImportError as exc:
        raise AnyGraspUnavailable(
            "the AnyGrasp SDK (python module 'gsnet') is not installed. It is licensed and needs x86_64 + CUDA: "
            "get it from https://github.com/graspnet/anygrasp_sdk, register this machine for a licence "
            "(license_registration), and copy gsnet.*.so and lib_cxx.*.so next to your code; or use the open "
            "'antipodal' grasp detector."
        ) from exc
    return gsnet


class AnyGraspDetector:
    """Grasp detection with the AnyGrasp SDK; same interface as the other detectors."""

    def __init__(self, config: AnyGraspConfig | None = None):
        self.config = config or AnyGraspConfig()
        gsnet = _import_sdk()
        cfgs = build_sdk_config(self.config)
        use_detector = self.config.api == "detector" or (self.config.api == "auto" and hasattr(gsnet, "create_detector"))
        try:
            if use_detector:
                self._sdk = gsnet.create_detector(cfgs)
                self._legacy = False
            else:
                self._sdk = gsnet.AnyGrasp(cfgs)
                self._sdk.load_net()
                self._legacy = True
        except Exception as exc:
            raise AnyGraspUnavailable(
                f"AnyGrasp could not load its network ({exc}); check the licence files of this machine "
                f"(license_registration) and checkpoint_path={self.config.checkpoint_path!r}"
            ) from exc

    def detect(
        self, points: np.ndarray, colors: np.ndarray | None, T_base_camera: np.ndarray, workspace: WorkspaceLimits, target: np.ndarray | None = None
    ) -> list[Grasp]:
        """Grasps sorted by score. points: float Nx3 camera frame (m); colors uint8 Nx3 or None; target: bool (N,) or None
        (the operator's object: only grasps closing on it)."""
        return self.select(self.candidates(points, colors, T_base_camera, workspace, target))

    def select(self, grasps: list[Grasp]) -> list[Grasp]:
        """Non-maximum suppression, at most ``max_grasps``, best first."""
        cfg = self.config
        return grasp_nms(grasps, cfg.nms_translation, np.deg2rad(cfg.nms_rotation_deg), max_keep=cfg.max_grasps)

    def candidates(
        self, points: np.ndarray, colors: np.ndarray | None, T_base_camera: np.ndarray, workspace: WorkspaceLimits, target: np.ndarray | None = None
    ) -> list[Grasp]:
        """AnyGrasp's grasps in the workspace (its own poses and scores) plus their leaning variants, before NMS;
        with a ``target``, those closing on it (``min_target_fraction``)."""
        cfg = self.config
        pts, cols = check_cloud(points, colors)
        on_target = check_target(target, points)
        T = check_transform(T_base_camera)
        pts_base = transform_points(T, pts)
        inside = workspace.contains(pts_base)
        if not inside.any():
            raise EmptyCloudError(f"none of the {len(pts)} points lies inside the workspace (base frame)")
        pts32 = pts.astype(np.float32)
        col32 = (cols.astype(np.float32) / 255.0) if cols is not None else np.full_like(pts32, 0.5)
        lims = workspace.camera_frame_limits(T)
        options = {
            "apply_object_mask": cfg.apply_object_mask,
            "dense_grasp": cfg.dense_grasp,
            "collision_detection": cfg.collision_detection,
        }
        if self._legacy:
            result = self._sdk.get_grasp(pts32, col32, lims=lims, **options)
        else:
            result = self._sdk.get_grasp(pts32, {"colors": col32, "lims": lims, **options})
        grasps = [g for g in grasps_from_array(grasp_array_from_result(result), T) if workspace.contains(g.position)]
        grasps += leaning_variants(grasps, pts_base, T[:3, 3], workspace, cfg)
        if on_target is None or not grasps:
            return grasps
        share = target_share(grasps, pts_base, on_target, GripperConfig())
        return [g for g, f in zip(grasps, share) if f >= cfg.min_target_fraction]


def leaning_variants(
    grasps: list[Grasp], points_base: np.ndarray, camera_position: np.ndarray, workspace: WorkspaceLimits, cfg: AnyGraspConfig
) -> list[Grasp]:
    """The contacts of ``grasps`` approached leaning toward the base, checked by the open gripper model (base frame, m)."""
    if not grasps or not cfg.base_lean_deg:
        return []
    from dkt_grasping.grasp_detection.antipodal import AntipodalConfig, AntipodalGraspDetector

    model = AntipodalGraspDetector(AntipodalConfig(base_lean_deg=list(cfg.base_lean_deg)))
    margin = model.config.gripper.flange_to_fingertip
    context = np.all((points_base >= workspace.lower - margin) & (points_base <= workspace.upper + margin), axis=1)
    try:
        scene = model.prepare_scene(points_base[context], camera_position)
    except EmptyCloudError:
        return []
    return [
        Grasp(pose=v.pose, width=v.width, score=grasps[i].score * cfg.lean_score_factor, depth=v.depth, object_id=grasps[i].object_id)
        for i, v in model.lean_variants(grasps, scene)
        if workspace.contains(v.position)
    ]
