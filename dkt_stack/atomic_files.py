"""Atomic file writes: readers see the old file or the whole new one, never a part.

Every writer of the stack (depth .npz, trial artifacts, reports, checkpoints,
caches, the URDF) goes through here: write a temporary file in the target's
folder, fsync, then ``os.replace`` (atomic on POSIX within one filesystem).
A failure removes the temporary file and leaves the old target untouched.

Modes: ``mkstemp`` makes the temporary file 0600 and ``os.replace`` keeps it,
so before the rename the file gets the mode a plain ``open(path, "w")`` would
give: the existing target's mode, else ``0666 & ~umask`` (0644 under the usual
umask 022), so the stack's outputs are readable on a shared rig.
"""

from __future__ import annotations

import io
import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (/proc), else set and restored under a lock."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass  # not Linux, or an old kernel without the field: fall back to os.umask
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def new_file_mode(path: str | os.PathLike) -> int:
    """Permission bits for a file written at ``path``: the existing file's, else ``0666 & ~umask``."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    For writers that need a file name (safetensors, matplotlib, torch.save).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:  # the data must be on disk before the rename makes it visible
            os.fsync(f.fileno())
        os.chmod(tmp, new_file_mode(path))  # mkstemp's 0600 would otherwise survive the rename
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """UTF-8 text, newlines written as given."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_npz_atomic(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    """Named arrays as a compressed .npz."""
    if not arrays:
        raise ValueError("write_npz_atomic needs at least one array")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    return write_bytes_atomic(path, buffer.getvalue())


class StackedNpzWriter:
    """An .npz whose main array is stacked one slice at a time: memory holds one slice, not the stack.

    Slices (same shape and dtype) are appended to a hidden scratch file beside
    ``path``; :meth:`close` packs them as ``name`` (N, *slice shape) into a
    compressed .npz with any extra (small) arrays, atomically like every writer
    here, and removes the scratch file. ``np.load`` reads it exactly as one
    written by ``np.savez_compressed``. :meth:`abort` (or an exception inside a
    ``with`` block) removes the scratch file and leaves ``path`` untouched.
    Nothing is created on disk before the first slice.
    """

    def __init__(self, path: str | os.PathLike, name: str):
        self.path, self.name = Path(path), name
        self.count = 0
        self.shape: tuple[int, ...] | None = None
        self.dtype: np.dtype | None = None
        self._scratch: Path | None = None
        self._file = None

    def append(self, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array)
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".stack", dir=self.path.parent)
            self._scratch, self._file = Path(tmp), os.fdopen(fd, "wb")
            self.shape, self.dtype = array.shape, array.dtype
        elif array.shape != self.shape or array.dtype != self.dtype:
            raise ValueError(f"slice {self.count} of {self.name} is {array.dtype}{array.shape}, expected {self.dtype}{self.shape}")
        self._file.write(array.tobytes())
        self.count += 1

    def close(self, **extra: np.ndarray) -> Path:
        """Write ``path`` (``name`` plus ``extra``) and remove the scratch file; returns ``path``."""
        import zipfile

        if self._file is None:
            raise ValueError(f"{self.path}: no slice was appended to {self.name}")
        self._file.close()
        try:
            header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (self.count, *self.shape)}
            with atomic_path(self.path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
                with zf.open(f"{self.name}.npy", "w", force_zip64=True) as f, open(self._scratch, "rb") as src:
                    np.lib.format.write_array_header_2_0(f, header)
                    while block := src.read(1 << 20):  # small blocks: packing must not need memory in proportion to the stack
                        f.write(block)
                for key, value in extra.items():
                    with zf.open(f"{key}.npy", "w", force_zip64=True) as f:
                        np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)
        finally:
            self._scratch.unlink(missing_ok=True)
        return self.path

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._scratch.unlink(missing_ok=True)

    def __enter__(self) -> StackedNpzWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None:
            self.abort()
