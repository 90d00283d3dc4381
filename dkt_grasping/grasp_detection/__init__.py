"""Grasp detectors behind one interface, chosen by a config string.

``create_grasp_detector("antipodal", {...})`` builds the open CPU fallback;
``"anygrasp"`` the AnyGrasp SDK adapter (licensed, CUDA; imported only then).
"""

from __future__ import annotations

from typing import Any

from dkt_grasping.grasp_detection.base import CloudError, EmptyCloudError, GraspDetector
from dkt_stack.backends import create_backend

#: name -> (module, detector class, config class)
GRASP_DETECTORS: dict[str, tuple[str, str, str]] = {
    "antipodal": ("dkt_grasping.grasp_detection.antipodal", "AntipodalGraspDetector", "AntipodalConfig"),
    "anygrasp": ("dkt_grasping.grasp_detection.anygrasp", "AnyGraspDetector", "AnyGraspConfig"),
}


def create_grasp_detector(name: str, config: Any = None) -> GraspDetector:
    """Detector ``name`` built from a config dataclass, a mapping (validated by ``from_dict``) or None (defaults)."""
    return create_backend("grasp detector", GRASP_DETECTORS, name, config)


__all__ = ["GRASP_DETECTORS", "CloudError", "EmptyCloudError", "GraspDetector", "create_grasp_detector"]
