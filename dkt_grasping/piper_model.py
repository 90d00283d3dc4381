"""The PiPER arm's kinematic model: modified-DH parameters, joint limits and the URDF built from them.

Craig's modified DH: the transform from link i-1 to link i is
``Rx(alpha_i) Tx(a_i) Rz(q_i + offset_i) Tz(d_i)`` with the parameters below
at index i (piper-sdk 0.6.2, ``piper_sdk/kinematics/piper_fk.py``). The URDF
writes each joint's fixed part ``Rx(alpha) Tx(a) Rz(offset) Tz(d)`` as the
joint origin (Rz and Tz commute) and rotates about the joint's z axis. A fixed
``tcp`` frame sits ``tcp_offset`` metres along the flange (link6) z axis, at
the fingertip centre of the PiPER gripper; its axes are the PiPER gripper
convention (z = approach, y = closing, see :mod:`dkt_grasping.grasp_frames`).

**Two zero conventions.** PiPER firmware S-V1.6-3 changed where joints 2 and
3 read zero: the DH theta offsets of j2/j3 moved by 2 degrees. piper-sdk
selects them with ``dh_is_offset``: ``0x01`` (its default) = firmware
S-V1.6-3 and later, offsets -172.22/-102.78 deg; ``0x00`` = older firmware,
offsets -174.22/-100.78 deg (the SDK's constructor documentation and
AgileX's piper_ros README: "DH parameters before S-V1.6-3 take each joint's
contact limit as the initial coordinate; from S-V1.6-3 j2 and j3 are offset
by 2 degrees"). The joint angles the arm reports are the same numbers in
both; only the geometry they mean differs (about 10 mm at the flange), so
the planner, the driver, the simulator and rviz must all use the firmware's
convention: :data:`DEFAULT_DH_IS_OFFSET` = current firmware.

**Limits.** Per joint the narrower of AgileX's URDF (agilexrobotics/Piper_ros
``piper_description.urdf``: j1 +-2.618, j2 0..3.14, j3 -2.967..0, j4 +-1.832,
j5 +-1.22, j6 +-3.14 rad) and piper-sdk's joint-limit table
(``piper_sdk/piper_param/piper_param_manager.py``: j1 +-2.6179, j2 0..3.14,
j3 -2.967..0, j4 +-1.745, j5 +-1.22, j6 +-2.09439 rad): the SDK's is narrower
for j1 (by 0.1 mrad), j4 (100 vs 105 deg) and j6 (120 vs 180 deg), so the SDK
table is used as it is.

**AgileX's URDF** (measured, see test/dkt_grasping/test_kinematics.py): it
matches the ``0x00`` offsets, turns joints 4 and 6 about -z (so its j4/j6
angles are the SDK's negated), and its joint-5 origin carries a 5 deg pitch
and its joint-6 origin a 1.4 mm offset that the SDK's DH table does not: its
flange sits a constant 8.1 mm from the SDK's. This project follows the SDK
(what the firmware computes its end pose with) and generates its own URDF.

The shipped ``dkt_grasping/robots/piper.urdf`` is ``piper_urdf()`` with the
defaults; regenerate it with ``python -m dkt_grasping.piper_model``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from dkt_stack.atomic_files import write_text_atomic
from dkt_stack.transforms import matrix_to_rpy

#: Modified-DH parameters (metres, radians), index i = joint i+1.
DH_A = (0.0, 0.0, 0.28503, -0.02198, 0.0, 0.0)
DH_ALPHA = (0.0, -np.pi / 2, 0.0, np.pi / 2, -np.pi / 2, np.pi / 2)
DH_D = (0.123, 0.0, 0.0, 0.25075, 0.0, 0.091)
#: DH theta offsets (deg) by piper-sdk ``dh_is_offset``: 1 = firmware S-V1.6-3 and later, 0 = older firmware.
DH_THETA_OFFSETS_DEG = {
    1: (0.0, -172.22, -102.78, 0.0, 0.0, 0.0),
    0: (0.0, -174.22, -100.78, 0.0, 0.0, 0.0),
}
#: What current firmware (S-V1.6-3 and later) uses, and piper-sdk's default.
DEFAULT_DH_IS_OFFSET = 1
DH_IS_OFFSET_HELP = (
    "PiPER zero convention, as piper-sdk's dh_is_offset: 1 = firmware S-V1.6-3 and later (j2/j3 DH offsets "
    "-172.22/-102.78 deg; the SDK default), 0 = older firmware (-174.22/-100.78 deg). Read your arm's firmware "
    "with piper-sdk's GetPiperFirmwareVersion(); a wrong value shifts the flange by about 10 mm"
)


def dh_theta_offset(dh_is_offset: int = DEFAULT_DH_IS_OFFSET) -> tuple[float, ...]:
    """DH theta offsets (rad) of the firmware convention ``dh_is_offset`` (0 or 1, as piper-sdk)."""
    if dh_is_offset not in DH_THETA_OFFSETS_DEG:
        raise ValueError(f"dh_is_offset must be 0 (firmware before S-V1.6-3) or 1 (S-V1.6-3 and later), got {dh_is_offset!r}")
    return tuple(float(np.deg2rad(v)) for v in DH_THETA_OFFSETS_DEG[dh_is_offset])


#: Theta offsets of the default convention (rad).
DH_THETA_OFFSET = dh_theta_offset()
#: Joint limits (rad): piper-sdk's joint-limit table (narrower than or equal to AgileX's URDF, see the module docstring).
JOINT_LOWER = (-2.6179, 0.0, -2.967, -1.745, -1.22, -2.09439)
JOINT_UPPER = (2.6179, 3.14, 0.0, 1.745, 1.22, 2.09439)
#: Motor speed limit (rad/s): the SDK's default max joint speed, 3000 in 0.001 rad/s.
JOINT_VELOCITY_LIMIT = 3.0
JOINT_NAMES = tuple(f"joint{i}" for i in range(1, 7))
#: Flange to fingertip centre of the PiPER gripper (m), the default ``tcp`` offset.
DEFAULT_TCP_OFFSET = 0.135

SHIPPED_URDF = Path(__file__).resolve().parent / "robots" / "piper.urdf"


def dh_link_transform(alpha: float, a: float, theta: float, d: float) -> np.ndarray:
    """Craig modified-DH link transform ``Rx(alpha) Tx(a) Rz(theta) Tz(d)`` (m, rad)."""
    ca, sa, ct, st = np.cos(alpha), np.sin(alpha), np.cos(theta), np.sin(theta)
    return np.array(
        [
            [ct, -st, 0.0, a],
            [st * ca, ct * ca, -sa, -sa * d],
            [st * sa, ct * sa, ca, ca * d],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )


def _fmt(values) -> str:
    return " ".join(f"{0.0 if abs(v) < 1e-12 else v:.10g}" for v in values)


def piper_urdf(tcp_offset: float = DEFAULT_TCP_OFFSET, name: str = "piper", dh_is_offset: int = DEFAULT_DH_IS_OFFSET) -> str:
    """URDF text of the PiPER arm (kinematics and limits only) with a ``tcp`` frame ``tcp_offset`` m past the flange.

    ``dh_is_offset`` picks the firmware's zero convention (see the module docstring).
    """
    if not 0.0 <= tcp_offset < 0.5:
        raise ValueError(f"tcp_offset must be in [0, 0.5) m, got {tcp_offset}")
    offsets = dh_theta_offset(dh_is_offset)
    generator = f"piper_urdf(tcp_offset={tcp_offset!r}, dh_is_offset={dh_is_offset!r})"
    lines = ['<?xml version="1.0"?>', f"<!-- Generated by dkt_grasping.piper_model.{generator}; do not edit. -->"]
    lines.append(f'<robot name="{name}">')
    lines.append('  <link name="base_link"/>')
    parent = "base_link"
    for i in range(6):
        origin = dh_link_transform(DH_ALPHA[i], DH_A[i], offsets[i], DH_D[i])
        child = f"link{i + 1}"
        lines += [
            f'  <link name="{child}"/>',
            f'  <joint name="{JOINT_NAMES[i]}" type="revolute">',
            f'    <parent link="{parent}"/>',
            f'    <child link="{child}"/>',
            f'    <origin xyz="{_fmt(origin[:3, 3])}" rpy="{_fmt(matrix_to_rpy(origin[:3, :3]))}"/>',
            '    <axis xyz="0 0 1"/>',
            f'    <limit lower="{JOINT_LOWER[i]:.10g}" upper="{JOINT_UPPER[i]:.10g}" effort="100" velocity="{JOINT_VELOCITY_LIMIT:.10g}"/>',
            "  </joint>",
        ]
        parent = child
    lines += [
        '  <link name="tcp"/>',
        '  <joint name="tcp_joint" type="fixed">',
        '    <parent link="link6"/>',
        '    <child link="tcp"/>',
        f'    <origin xyz="0 0 {tcp_offset:.10g}" rpy="0 0 0"/>',
        "  </joint>",
        "</robot>",
        "",
    ]
    return "\n".join(lines)


def write_piper_urdf(
    path: str | os.PathLike = SHIPPED_URDF, tcp_offset: float = DEFAULT_TCP_OFFSET, dh_is_offset: int = DEFAULT_DH_IS_OFFSET
) -> Path:
    """Write :func:`piper_urdf` to ``path`` atomically (temp file + rename)."""
    return write_text_atomic(path, piper_urdf(tcp_offset, dh_is_offset=dh_is_offset))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dkt_grasping.piper_model", description="write the PiPER URDF (rviz, cuRobo)")
    parser.add_argument("--out", default=str(SHIPPED_URDF), help="output file (default: the shipped URDF)")
    parser.add_argument("--tcp-offset", type=float, default=DEFAULT_TCP_OFFSET, help="flange to fingertip centre (m)")
    parser.add_argument("--dh-is-offset", type=int, choices=[0, 1], default=DEFAULT_DH_IS_OFFSET, help=DH_IS_OFFSET_HELP)
    args = parser.parse_args(argv)
    print(write_piper_urdf(args.out, args.tcp_offset, args.dh_is_offset))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
