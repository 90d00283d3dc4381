"""Reading training frames from disk: RGB images, depth maps in metres with validity masks.

Depth formats (``depth_format`` in the dataset manifest; ``auto`` picks by extension):

==========  ==========================  =====================================  ==================
format      extensions                  stored value                           default scale
==========  ==========================  =====================================  ==================
``png16``   .png                        uint16, 0 = invalid (ClearGrasp-style  0.001 (millimetres)
                                        sensor depth, DREDS/HISS exports)
``npy``     .npy                        float or integer array (H, W)          1.0 (metres)
``exr``     .exr                        float, first channel (ClearGrasp)      1.0 (metres)
``tiff``    .tif, .tiff                 float32 (H, W)                         1.0 (metres)
==========  ==========================  =====================================  ==================

``depth_m = stored * scale``. A pixel is valid when the stored value is finite
and > 0, the depth lies in ``[min_m, max_m]`` and (when given) the mask image is
non-zero there. Invalid pixels come back as ``nan`` with ``valid == False``.

EXR goes through OpenCV with ``OPENCV_IO_ENABLE_OPENEXR=1``; OpenCV wheels built
without OpenEXR (as the 5.0 wheel here is) cannot read it, and the error says to
convert such files to ``.npy`` or float ``.tiff`` first.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dkt_stack.atomic_files import write_bytes_atomic

DEPTH_FORMATS = ("png16", "npy", "exr", "tiff")
DEFAULT_SCALE = {"png16": 0.001, "npy": 1.0, "exr": 1.0, "tiff": 1.0}
_BY_SUFFIX = {".png": "png16", ".npy": "npy", ".exr": "exr", ".tif": "tiff", ".tiff": "tiff"}


class DataFormatError(ValueError):
    """A training file that cannot be read as what the manifest says it is."""


def _cv2():
    # The flag is read when OpenCV's imgcodecs first needs it; set it before importing.
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    import cv2

    return cv2


def depth_format_for(path: str | Path, declared: str = "auto") -> str:
    """The depth format of ``path``: ``declared`` unless it is 'auto', else from the extension."""
    if declared != "auto":
        if declared not in DEPTH_FORMATS:
            raise DataFormatError(f"unknown depth format {declared!r}; expected auto or one of {', '.join(DEPTH_FORMATS)}")
        return declared
    fmt = _BY_SUFFIX.get(Path(path).suffix.lower())
    if fmt is None:
        raise DataFormatError(f"cannot tell the depth format of {path} from its extension; expected one of {', '.join(_BY_SUFFIX)}")
    return fmt


def read_rgb(path: str | Path) -> np.ndarray:
    """An 8-bit colour image -> uint8 (H, W, 3) RGB."""
    cv2 = _cv2()
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataFormatError(f"cannot read RGB image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_raw_depth(path: str | Path, fmt: str = "auto") -> np.ndarray:
    """The stored depth values of one file as (H, W) float64 (no scaling, no masking)."""
    path = Path(path)
    fmt = depth_format_for(path, fmt)
    if not path.is_file():
        raise DataFormatError(f"missing depth file {path}")
    if fmt == "npy":
        arr = np.load(str(path), allow_pickle=False)
    else:
        cv2 = _cv2()
        arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if arr is None:
            hint = ""
            if fmt == "exr" and "OpenEXR:                     NO" in cv2.getBuildInformation():
                hint = " (this OpenCV build has no OpenEXR support: convert the files to .npy or float32 .tiff)"
            raise DataFormatError(f"cannot read {fmt} depth {path}{hint}")
        if fmt == "png16" and arr.dtype != np.uint16:
            raise DataFormatError(f"{path}: expected a 16-bit single-channel PNG (millimetres), got {arr.dtype} {arr.shape}")
        if arr.ndim == 3:  # EXR/TIFF stored as 3 identical channels (ClearGrasp); OpenCV gives BGR: take one
            arr = arr[..., 0]
    if arr.ndim != 2:
        raise DataFormatError(f"{path}: expected a single-channel (H, W) depth map, got shape {arr.shape}")
    return arr.astype(np.float64)


def read_mask(path: str | Path) -> np.ndarray:
    """A mask image (any bit depth) -> bool (H, W), True where non-zero."""
    cv2 = _cv2()
    m = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if m is None:
        raise DataFormatError(f"cannot read mask image {path}")
    return (m.max(axis=2) if m.ndim == 3 else m) > 0


def read_depth(path: str | Path, fmt: str = "auto", scale: float | None = None, *, min_m: float = 0.0, max_m: float = float("inf"),
               mask_path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Depth in metres (float32 (H, W), nan where invalid) and the validity mask (bool (H, W)).

    Args:
        path: the depth file. fmt: see the module table ('auto' = by extension).
        scale: metres per stored unit; None = the format's default (0.001 for png16, 1 otherwise).
        min_m, max_m: valid depth range in metres. mask_path: optional mask image (non-zero = valid).
    """
    fmt = depth_format_for(path, fmt)
    raw = read_raw_depth(path, fmt)
    depth = raw * (DEFAULT_SCALE[fmt] if scale is None else float(scale))
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(raw) & (raw > 0) & (depth >= min_m) & (depth <= max_m)
    if mask_path is not None:
        m = read_mask(mask_path)
        if m.shape != valid.shape:
            raise DataFormatError(f"mask {mask_path} is {m.shape}, depth {path} is {valid.shape}")
        valid &= m
    return np.where(valid, depth, np.nan).astype(np.float32), valid


def write_depth_png16(path: str | Path, depth_m: np.ndarray, scale: float = 0.001) -> Path:
    """Write depth (metres, (H, W); nan/<=0 = invalid -> 0) as a 16-bit PNG of ``depth / scale`` (rounded), atomically."""
    cv2 = _cv2()
    path = Path(path)
    d = np.asarray(depth_m, dtype=np.float64)
    units = np.where(np.isfinite(d) & (d > 0), np.round(d / scale), 0)
    if units.max(initial=0) > 65535:
        raise DataFormatError(f"depth up to {np.nanmax(d):.3f} m does not fit 16 bits at scale {scale} m/unit")
    ok, buf = cv2.imencode(".png", units.astype(np.uint16))
    if not ok:
        raise DataFormatError(f"could not encode {path}")
    write_bytes_atomic(path, buf.tobytes())
    return path


def write_rgb(path: str | Path, rgb: np.ndarray) -> Path:
    """Write uint8 (H, W, 3) RGB as PNG (lossless), atomically."""
    cv2 = _cv2()
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise DataFormatError(f"could not encode {path}")
    return write_bytes_atomic(Path(path), buf.tobytes())


