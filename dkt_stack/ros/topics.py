"""Topic names of the perception graph: realsense-ros 4.x's layout, so realsense2_camera drops in.

realsense-ros 4.x starts a node ``camera`` in namespace ``camera`` and publishes
on its private names (``~/color/image_raw``), i.e. ``/camera/camera/color/image_raw``.
camera_node (and the simulator's camera) does exactly that. The perception
nodes run in namespace ``camera`` too and subscribe to ``camera/...`` (relative:
``/camera/camera/...``), so with ``camera:=false`` a realsense2_camera started
with its defaults feeds them without any remapping; they publish their own
outputs beside it, under ``/camera/`` (``/camera/depth/relative``, ``/camera/points``).
Pure names, no rclpy.
"""

from __future__ import annotations

#: the camera driver's node name and namespace (realsense-ros 4.x defaults: ``camera_name``, ``camera_namespace``)
CAMERA_NODE = "camera"
CAMERA_NAMESPACE = "camera"

# what the camera publishes, as private names of its node
COLOR = "~/color/image_raw"
COLOR_INFO = "~/color/camera_info"
ALIGNED_DEPTH = "~/aligned_depth_to_color/image_raw"
ALIGNED_DEPTH_INFO = "~/aligned_depth_to_color/camera_info"
GROUND_TRUTH_DEPTH = "~/ground_truth/depth"  # synthetic and simulated cameras only

# the same streams as a perception node in the camera's namespace subscribes to them
IN_COLOR = f"{CAMERA_NODE}/color/image_raw"
IN_COLOR_INFO = f"{CAMERA_NODE}/color/camera_info"
IN_ALIGNED_DEPTH = f"{CAMERA_NODE}/aligned_depth_to_color/image_raw"

# the perception nodes' outputs, relative to their namespace
RELATIVE_DEPTH = "depth/relative"
RELATIVE_PREVIEW = "depth/relative_preview"
METRIC_DEPTH = "depth/metric"
METRIC_INFO = "depth/camera_info"
POINTS = "points"
TAG_MARKERS = "tags/markers"


def camera_topic(private_name: str, namespace: str = CAMERA_NAMESPACE, node: str = CAMERA_NODE) -> str:
    """Absolute name of a camera stream: ``camera_topic(COLOR)`` -> ``/camera/camera/color/image_raw``."""
    return f"/{namespace.strip('/')}/{node}/{private_name.removeprefix('~/')}" if namespace.strip("/") else f"/{node}/{private_name.removeprefix('~/')}"


def output_topic(name: str, namespace: str = CAMERA_NAMESPACE) -> str:
    """Absolute name of a perception output: ``output_topic(POINTS)`` -> ``/camera/points``."""
    ns = namespace.strip("/")
    return f"/{ns}/{name}" if ns else f"/{name}"
