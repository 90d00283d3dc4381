"""Optional things fixed to the simulated rig: pictures on thin plates (a calibration board) and extra cameras (a wrist D435).

Off by default: :func:`dkt_sim.mjcf.build_model_spec` without ``attachments``
writes exactly the MJCF it writes without this module, and with them it only
adds elements (a test diffs the two). Trials and renders are unchanged.

* :class:`TexturedPlate`: a thin box showing an image, lying in the world or
  fixed to an arm's flange (``link6``). Visual only: it neither collides nor
  adds mass (an arm's links carry explicit inertias, and the PiPER's
  controller compensates a light bracket anyway). Its pose is given by the
  *face frame* of the picture: origin at the picture's centre on the visible
  face, x along the picture's columns (left to right), y along its rows (top
  to bottom), z into the plate (the way a viewer looks at it): the frame an
  AprilTag detector reports for a printed tag.
* :class:`MountedCamera`: a camera on an arm's flange with the D435's field of
  view, rendered with :meth:`dkt_sim.camera.SimCamera.colour`.

MuJoCo maps a 2D texture onto each face of a box: on the +z face the image's
columns run along the box's +x, its rows along -y, seen from outside (+z).
So the face frame is the geom frame turned 180 deg about x, on the +z face
(a test renders a plate and detects its tags where the face frame says).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dkt_sim.mjcf import GROUP_ARM, GROUP_ROOM, _camera_xml, _quat_wxyz, _v
from dkt_stack.transforms import make_transform


def face_to_geom(thickness_m: float) -> np.ndarray:
    """4x4 pose of a plate's box geom in its face frame: half the thickness into the plate, turned 180 deg about x
    (the picture is on the box's +z face, columns along +x, rows along -y; see the module docstring)."""
    return make_transform(np.diag([1.0, -1.0, -1.0]), (0.0, 0.0, thickness_m / 2))


@dataclass(eq=False)
class TexturedPlate:
    """A picture on a thin plate (see the module docstring for the face frame). Sizes in metres."""

    name: str
    image: np.ndarray  #: uint8 grey (H, W) or RGB (H, W, 3); row 0 is the top of the picture
    size_m: tuple[float, float]  #: picture width (along its columns) and height (along its rows), m
    T_parent_face: np.ndarray  #: 4x4 face frame in the parent: the world frame, or the arm's flange (link6) frame
    parent: str = "world"  #: "world" or an arm name (fixed to that arm's flange)
    thickness_m: float = 0.002

    def __post_init__(self):
        img = np.asarray(self.image)
        if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3) or min(img.shape[:2]) < 2:
            raise ValueError(f"plate {self.name!r}: image must be uint8 (H, W) or (H, W, 3), got {img.dtype} {img.shape}")
        if min(self.size_m) <= 0 or self.thickness_m <= 0:
            raise ValueError(f"plate {self.name!r}: size_m and thickness_m must be > 0, got {self.size_m}, {self.thickness_m}")
        if np.asarray(self.T_parent_face).shape != (4, 4):
            raise ValueError(f"plate {self.name!r}: T_parent_face must be 4x4")

    @property
    def T_parent_geom(self) -> np.ndarray:  # noqa: N802 - conventional transform name
        """4x4 box geom frame in the parent (:func:`face_to_geom` after the face frame)."""
        return np.asarray(self.T_parent_face, dtype=np.float64) @ face_to_geom(self.thickness_m)

    def png(self) -> bytes:
        import cv2

        img = np.asarray(self.image)
        ok, data = cv2.imencode(".png", img if img.ndim == 2 else img[:, :, ::-1])
        if not ok:
            raise RuntimeError(f"PNG encoding of plate {self.name!r} failed")
        return data.tobytes()


@dataclass(eq=False)
class MountedCamera:
    """A camera on an arm's flange: its colour optical frame (REP 103: z forward, x right, y down) in the flange frame (4x4, m)."""

    name: str
    arm: str
    T_flange_optical: np.ndarray


@dataclass(eq=False)
class Attachments:
    """What :func:`dkt_sim.mjcf.build_model_spec` adds to the rig (nothing by default)."""

    plates: tuple[TexturedPlate, ...] = ()
    cameras: tuple[MountedCamera, ...] = ()

    def __post_init__(self):
        names = [p.name for p in self.plates] + [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"attachment names must be unique, got {names}")

    def __bool__(self) -> bool:
        return bool(self.plates or self.cameras)


@dataclass
class AttachmentXml:
    """The MJCF pieces of some attachments: PNG assets, ``<asset>`` lines, worldbody lines, lines inside each arm's link6."""

    assets: dict[str, bytes]
    asset_lines: list[str]
    world_lines: list[str]
    flange_lines: dict[str, list[str]]


def attachment_xml(attachments: Attachments, arms: list[str], fovy_deg: float) -> AttachmentXml:
    """MJCF of ``attachments`` for a model with these ``arms``; cameras get ``fovy_deg`` (the D435's, vertical)."""
    out = AttachmentXml({}, [], [], {a: [] for a in arms})
    for p in attachments.plates:
        if p.parent != "world" and p.parent not in out.flange_lines:
            raise ValueError(f"plate {p.name!r}: parent must be 'world' or an arm ({', '.join(arms)}), got {p.parent!r}")
        out.assets[f"{p.name}.png"] = p.png()
        out.asset_lines.append(f'<texture name="{p.name}" type="2d" file="{p.name}.png"/>')
        out.asset_lines.append(f'<material name="{p.name}" texture="{p.name}" specular="0" shininess="0"/>')
        T = p.T_parent_geom
        w, h = p.size_m
        group = GROUP_ROOM if p.parent == "world" else GROUP_ARM
        line = (
            f'<geom name="{p.name}" type="box" pos="{_v(T[:3, 3])}" quat="{_quat_wxyz(T[:3, :3])}" '
            f'size="{w / 2:.9g} {h / 2:.9g} {p.thickness_m / 2:.9g}" material="{p.name}" group="{group}" contype="0" conaffinity="0"/>'
        )
        (out.world_lines if p.parent == "world" else out.flange_lines[p.parent]).append(line)
    for c in attachments.cameras:
        if c.arm not in out.flange_lines:
            raise ValueError(f"camera {c.name!r}: arm must be one of {', '.join(arms)}, got {c.arm!r}")
        out.flange_lines[c.arm].append(_camera_xml(c.name, np.asarray(c.T_flange_optical, dtype=np.float64), fovy_deg))
    return out
