"""Depth backends by name: ``create_backend("dkt" | "raw" | "depth_anything_v2", config)``.

Each backend lives in its own module, imported only when chosen, so a heavy
optional dependency never affects the others.
"""

from __future__ import annotations

import importlib

from dkt_perception.depth.config import DepthConfig
from dkt_perception.depth.interface import DepthBackend

#: name -> "module:class"
BACKENDS: dict[str, str] = {
    "dkt": "dkt_perception.depth.dkt_backend:DKTBackend",
    "raw": "dkt_perception.depth.raw_backend:RawDepthBackend",
    "depth_anything_v2": "dkt_perception.depth.depth_anything_backend:DepthAnythingBackend",
}


class UnknownBackendError(ValueError):
    """A backend name that is not registered."""


def create_backend(name: str, config: DepthConfig | None = None) -> DepthBackend:
    """Build the backend ``name`` from ``config`` (defaults when None)."""
    if name not in BACKENDS:
        raise UnknownBackendError(f"unknown depth backend {name!r}; expected one of {', '.join(sorted(BACKENDS))}")
    module_name, cls_name = BACKENDS[name].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(config or DepthConfig(backend=name))
