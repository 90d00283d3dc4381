"""The one description of a rig's geometry: which arms there are and where the front camera sits for each.

A rig file (``config/rig/<name>.yaml``) is read by everything that needs the
camera-to-arm geometry: grasp nodes (grasps in an arm's base frame), the TF
publisher, the dual-arm choice, the simulator, and hand-eye calibration, which
writes its result back into it. Poses are ``x y z qx qy qz qw`` (metres,
quaternion as in ROS): ``camera_pose`` is the camera's colour *optical* frame
(REP 103: z forward, x right, y down) expressed in the arm's base frame, i.e.
``p_base = T_base_camera @ p_camera``. An arm may also carry a wrist camera:
``wrist_camera_pose`` is its colour optical frame in the arm's flange
(``link6``) frame. :func:`update_rig_pose` writes a calibrated pose back
atomically and logs the value it replaces in ``<rig>.history.yaml``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dkt_stack.config import ConfigError, load_config, param
from dkt_stack.transforms import make_transform, matrix_to_quat, quat_to_matrix


def pose7_to_matrix(pose: list[float] | tuple[float, ...], what: str = "pose") -> np.ndarray:
    """``[x, y, z, qx, qy, qz, qw]`` (m, unit quaternion) -> 4x4 transform; a clear error for anything else."""
    values = np.asarray(pose, dtype=np.float64).reshape(-1)
    if values.shape != (7,) or not np.all(np.isfinite(values)):
        raise ValueError(f"{what} must be 7 finite numbers x y z qx qy qz qw (m, quaternion), got {list(pose)}")
    if abs(np.linalg.norm(values[3:]) - 1.0) > 1e-3:
        raise ValueError(f"{what}: the quaternion {values[3:].tolist()} is not unit length (norm {np.linalg.norm(values[3:]):.4f})")
    return make_transform(quat_to_matrix(values[3:]), values[:3])


def matrix_to_pose7(T: np.ndarray) -> list[float]:
    """4x4 rigid transform -> ``[x, y, z, qx, qy, qz, qw]`` (qw >= 0)."""
    T = np.asarray(T, dtype=np.float64)
    return [*map(float, T[:3, 3]), *map(float, matrix_to_quat(T[:3, :3]))]


@dataclass
class RigCamera:
    """The front camera's frame names (realsense2_camera's defaults)."""

    optical_frame: str = param("camera_color_optical_frame", help="frame_id of the colour images and clouds (REP 103 optical frame)")
    link_frame: str = param("camera_link", help="the camera body frame (x forward, z up), as realsense2_camera names it")


@dataclass
class ArmMount:
    """One arm of the rig: its base frame, CAN interface, and where the camera is seen from its base."""

    base_frame: str = param(help="TF frame of the arm's base (joint1 axis at its origin)")
    camera_pose: list[float] = param(
        help="camera colour optical frame in this arm's base frame: x y z (m) qx qy qz qw; from hand-eye calibration"
    )
    can_name: str = param("", help="SocketCAN interface of the arm (empty: not a CAN arm, e.g. in simulation)")
    wrist_camera_pose: list[float] | None = param(
        None,
        help="this arm's wrist camera colour optical frame in its flange (link6) frame: x y z (m) qx qy qz qw; "
        "from eye-in-hand calibration (null: no wrist camera, or not calibrated yet)",
    )
    wrist_camera_frame: str = param("", help="frame_id of the wrist camera's colour images (empty: no wrist camera)")

    def __post_init__(self):
        pose7_to_matrix(self.camera_pose, f"camera_pose of {self.base_frame}")
        if self.wrist_camera_pose is not None:
            pose7_to_matrix(self.wrist_camera_pose, f"wrist_camera_pose of {self.base_frame}")

    @property
    def T_base_camera(self) -> np.ndarray:  # noqa: N802 - conventional transform name
        """4x4 ``T_base_camera`` (camera optical frame -> arm base frame, m)."""
        return pose7_to_matrix(self.camera_pose)

    @property
    def T_flange_wrist_camera(self) -> np.ndarray | None:  # noqa: N802 - conventional transform name
        """4x4 ``T_flange_wrist_camera`` (wrist camera optical frame -> flange frame, m), or None when not set."""
        return None if self.wrist_camera_pose is None else pose7_to_matrix(self.wrist_camera_pose)


@dataclass
class RigConfig:
    """A rig: one front camera and named arms (``left``, ``right`` on the Cobot Magic)."""

    name: str = param(help="rig name")
    arms: dict[str, ArmMount] = param(help="arms by name; each says where the camera is in its base frame")
    camera: RigCamera = param(default_factory=RigCamera, help="the front camera's frame names")
    description: str = param("", help="free text")

    def __post_init__(self):
        if not self.arms:
            raise ValueError("a rig needs at least one arm")

    def arm(self, name: str) -> ArmMount:
        if name not in self.arms:
            raise ConfigError(f"rig '{self.name}' has no arm '{name}' (arms: {', '.join(self.arms)})", key="arms")
        return self.arms[name]


def rig_dir() -> Path:
    """Folder of the shipped rig files."""
    from dkt_stack.graph import config_dir

    return config_dir() / "rig"


def rig_path(name_or_path: str | os.PathLike) -> Path:
    """A shipped rig by name (``cobot_magic``) or a path to a rig YAML file."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or os.sep in text:
        return Path(text)
    shipped = rig_dir() / f"{text}.yaml"
    if not shipped.is_file():
        names = sorted(p.stem for p in rig_dir().glob("*.yaml"))
        raise ConfigError(f"no shipped rig '{text}' (shipped: {', '.join(names)}); pass a path to your own rig file")
    return shipped


def load_rig(name_or_path: str | os.PathLike) -> RigConfig:
    """Load a rig file (see the module docstring) with the one config loader's checks."""
    return load_config(RigConfig, rig_path(name_or_path))


# ----------------------------------------------------------------------------- calibration results

#: The rig-file keys a calibration may write, per arm.
CALIBRATED_KEYS = ("camera_pose", "wrist_camera_pose")


@dataclass
class RigUpdate:
    """What :func:`update_rig_pose` did: the file, the key, the value before and after, the history file."""

    path: Path
    arm: str
    key: str
    previous: list[float] | None
    value: list[float]
    history_path: Path
    comments_kept: bool  #: False when the file had to be rewritten without its comments


def history_path(rig_file: str | os.PathLike) -> Path:
    """``<rig>.history.yaml`` beside the rig file: every calibration written into it, with the value it replaced."""
    p = Path(rig_file)
    return p.with_name(f"{p.stem}.history.yaml")


def read_history(rig_file: str | os.PathLike) -> list[dict]:
    """The history entries of a rig file (oldest first); [] when there is none."""
    import yaml

    p = history_path(rig_file)
    if not p.is_file():
        return []
    entries = yaml.safe_load(p.read_text(encoding="utf-8")) or []
    if not isinstance(entries, list):
        raise ConfigError("a rig history file must hold a list of entries", source=p)
    return entries


def _flow(values: list[float]) -> str:
    return "[" + ", ".join(repr(float(v)) for v in values) + "]"


def _edit_arm_key(text: str, arm: str, key: str, value: list[float], comment: str) -> str | None:
    """Set ``arms.<arm>.<key>`` to a flow list in the YAML text, keeping everything else; None when the layout is unusual.

    The comment line goes right above the key (an earlier calibration comment there is replaced).
    """
    lines = text.splitlines(keepends=True)
    newline = "\n"

    def indent(line: str) -> int:
        return len(line) - len(line.lstrip(" "))

    def is_content(line: str) -> bool:
        stripped = line.strip()
        return bool(stripped) and not stripped.startswith("#")

    arms_at = next((i for i, ln in enumerate(lines) if ln.rstrip().split("#")[0].rstrip() == "arms:" and indent(ln) == 0), None)
    if arms_at is None:
        return None
    arm_at = None
    for i in range(arms_at + 1, len(lines)):
        if is_content(lines[i]) and indent(lines[i]) == 0:
            break
        if is_content(lines[i]) and lines[i].strip().split("#")[0].rstrip() == f"{arm}:":
            arm_at = i
            break
    if arm_at is None:
        return None
    block_end, child_indent = len(lines), None
    for i in range(arm_at + 1, len(lines)):
        if is_content(lines[i]):
            if indent(lines[i]) <= indent(lines[arm_at]):
                block_end = i
                break
            child_indent = child_indent if child_indent is not None else indent(lines[i])
    if child_indent is None:
        return None
    pad = " " * child_indent
    new_line = f"{pad}{key}: {_flow(value)}{newline}"
    comment_line = f"{pad}# {comment}{newline}"
    marker = f"{pad}# {key} calibrated "
    for i in range(arm_at + 1, block_end):
        ln = lines[i]
        if is_content(ln) and indent(ln) == child_indent and ln.strip().startswith(f"{key}:"):
            rest = ln.strip()[len(key) + 1 :].strip()
            if not rest.startswith("[") and rest.split("#")[0].strip() not in ("null", "~"):
                return None  # a block-style list: leave it to the full rewrite
            end = i
            if rest.startswith("["):  # a flow list may continue over several lines
                while "]" not in lines[end] and end + 1 < block_end:
                    end += 1
            start = i - 1 if i > 0 and lines[i - 1].startswith(marker) else i
            return "".join([*lines[:start], comment_line, new_line, *lines[end + 1 :]])
    # the key is not there yet: append it to the arm's block (after its last content line)
    last = max(i for i in range(arm_at, block_end) if is_content(lines[i]) or i == arm_at)
    return "".join([*lines[: last + 1], comment_line, new_line, *lines[last + 1 :]])


def update_rig_pose(
    rig: str | os.PathLike, arm: str, key: str, T: np.ndarray, *, source: str, details: dict | None = None, now: str | None = None
) -> RigUpdate:
    """Write a calibrated pose into ``arms.<arm>.<key>`` of a rig file, atomically, and log it in the history.

    ``key`` is ``camera_pose`` (the camera optical frame in the arm's base frame)
    or ``wrist_camera_pose`` (the wrist camera optical frame in the flange frame).
    The history file (:func:`history_path`) gets an entry with the time, the
    previous and the new value, ``source`` and ``details`` *before* the rig file
    changes, so the previous value is never lost. Comments and layout of the rig
    file are kept; the new file is checked to load with only that value changed.
    """
    import datetime

    import yaml

    from dkt_stack.atomic_files import write_text_atomic
    from dkt_stack.config import from_dict, to_dict

    if key not in CALIBRATED_KEYS:
        raise ValueError(f"a calibration writes one of {', '.join(CALIBRATED_KEYS)}, not {key!r}")
    path = rig_path(rig)
    before = load_rig(path)
    mount = before.arm(arm)
    previous = getattr(mount, key)
    T = np.asarray(T, dtype=np.float64)
    R = T[:3, :3] if T.shape == (4, 4) else np.zeros((3, 3))
    if not (np.all(np.isfinite(T)) and np.allclose(R @ R.T, np.eye(3), atol=1e-6) and np.linalg.det(R) > 0):
        raise ValueError(f"{key}: not a rigid 4x4 transform: {np.round(T, 4).tolist()}")  # refused before touching anything
    value = [round(v, 7) for v in matrix_to_pose7(T)]  # 0.1 um, 1e-5 deg: far below any calibration's error
    stamp = now or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    hist = history_path(path)
    entries = read_history(path)
    entries.append(
        {"time": stamp, "arm": arm, "key": key, "previous": previous, "value": value, "source": source, **({"details": details} if details else {})}
    )
    write_text_atomic(hist, yaml.safe_dump(entries, sort_keys=False, default_flow_style=None))

    text = path.read_text(encoding="utf-8")
    comment = f"{key} calibrated {stamp} ({source}); earlier values in {hist.name}"
    edited = _edit_arm_key(text, arm, key, value, comment)
    expected = to_dict(before)
    expected["arms"][arm][key] = value

    def matches(candidate: str | None) -> bool:
        if candidate is None:
            return False
        try:
            got = to_dict(from_dict(RigConfig, yaml.safe_load(candidate), source=path))
        except (ConfigError, yaml.YAMLError):
            return False
        return bool(np.allclose(got["arms"][arm][key], value, atol=1e-6)) and _same_except(got, expected, arm, key)

    kept = matches(edited)
    if not kept:  # unusual layout: write the whole description again (comments are lost, the values are not)
        edited = f"# {comment}\n" + yaml.safe_dump(expected, sort_keys=False, default_flow_style=None)
    write_text_atomic(path, edited)
    return RigUpdate(path, arm, key, previous, value, hist, kept)


def _same_except(a: dict, b: dict, arm: str, key: str) -> bool:
    a = {**a, "arms": {**a["arms"], arm: {k: v for k, v in a["arms"][arm].items() if k != key}}}
    b = {**b, "arms": {**b["arms"], arm: {k: v for k, v in b["arms"][arm].items() if k != key}}}
    return a == b
