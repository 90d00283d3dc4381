"""Import MuJoCo for offscreen rendering: the one place that picks the OpenGL backend."""

from __future__ import annotations

import os


def load_mujoco():
    """The ``mujoco`` module, with ``MUJOCO_GL=egl`` set first when the environment names no backend.

    EGL renders without a display (Mesa's llvmpipe on a CPU machine, the NVIDIA driver on a GPU one);
    ``MUJOCO_GL=glfw`` or ``osmesa`` in the environment is respected. A missing package is a clear error.
    """
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        import mujoco
    except ImportError as exc:  # the simulator is optional on a rig without it
        raise ImportError(
            f"the physics simulation needs the 'mujoco' package (pip install mujoco; see requirements.txt) and EGL (Debian: "
            f"libegl1 libgl1-mesa-dri, installed by .ci/system-deps.sh): {exc}"
        ) from exc
    return mujoco
