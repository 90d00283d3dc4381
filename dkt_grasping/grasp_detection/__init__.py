"""Grasp detectors behind one interface, chosen by a config string.

``create_grasp_detector("antipodal", {...})`` builds the open CPU fallback;
``"anygrasp"`` the AnyGrasp SDK adapter (licensed, CUDA; imported only then).
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from dkt_grasping.grasp_detection.base import CloudError, EmptyCloudError, GraspDetector
from dkt_stack.config import from_dict

#: name -> (module, detector class, config class)
GRASP_DETECTORS: dict[str, tuple[str, str, str]] = {
    "antipodal": ("dkt_grasping.grasp_detection.antipodal", "AntipodalGraspDetector", "AntipodalConfig"),
    "anygrasp": ("dkt_grasping.grasp_detection.anygrasp", "AnyGraspDetector", "AnyGraspConfig"),
}


def create_grasp_detector(name: str, config: Any = None) -> GraspDetector:
    """Detector ``name`` built from a config dataclass, a mapping (validated by ``from_dict``) or None (defaults)."""
    if name not in GRASP_DETECTORS:
        raise ValueError(f"unknown grasp detector '{name}' (known: {', '.join(sorted(GRASP_DETECTORS))})")
    module_name, cls_name, cfg_name = GRASP_DETECTORS[name]
    module = importlib.import_module(module_name)
    cfg_cls = getattr(module, cfg_name)
    if config is None:
        config = cfg_cls()
    elif isinstance(config, dict):
        config = from_dict(cfg_cls, config)
    elif not (dataclasses.is_dataclass(config) and isinstance(config, cfg_cls)):
        raise TypeError(f"config for '{name}' must be {cfg_cls.__name__} or a mapping, got {type(config).__name__}")
    return getattr(module, cls_name)(config)


__all__ = ["GRASP_DETECTORS", "CloudError", "EmptyCloudError", "GraspDetector", "create_grasp_detector"]
