"""Backends chosen by a config string: the one lazy-import registry used by every family.

Each family (grasp detectors, planners, arms) maps a name to
``(module, backend class, config class)``; the module is imported only when
that backend is chosen, so an optional heavy dependency (AnyGrasp, cuRobo,
piper-sdk) never affects the others, and its ImportError names the package.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any


def create_backend(family: str, table: dict[str, tuple[str, str, str]], name: str, config: Any = None) -> Any:
    """Build backend ``name`` of ``family`` from a config dataclass, a mapping (validated by ``from_dict``) or None (defaults)."""
    from dkt_stack.config import from_dict

    if name not in table:
        raise ValueError(f"unknown {family} '{name}' (known: {', '.join(sorted(table))})")
    module_name, cls_name, cfg_name = table[name]
    module = importlib.import_module(module_name)
    cfg_cls = getattr(module, cfg_name)
    if config is None:
        config = cfg_cls()
    elif isinstance(config, dict):
        config = from_dict(cfg_cls, config, source=f"{family} '{name}' config")
    elif not (dataclasses.is_dataclass(config) and isinstance(config, cfg_cls)):
        raise TypeError(f"config for {family} '{name}' must be {cfg_cls.__name__} or a mapping, got {type(config).__name__}")
    return getattr(module, cls_name)(config)
