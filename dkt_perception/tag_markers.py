"""rviz markers for detected AprilTags (a thin square and the id, in the camera frame)."""

from __future__ import annotations

from geometry_msgs.msg import Vector3
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from dkt_stack.conversions import matrix_to_pose


def tag_markers(detections, header) -> MarkerArray:
    """One CUBE (the tag's black square, 2 mm thick) and one TEXT per detection; DELETEALL first."""
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    for det in detections:
        pose = matrix_to_pose(det.T_camera_tag)
        markers.append(
            Marker(
                header=header, ns="tags", id=2 * det.id, type=Marker.CUBE, action=Marker.ADD, pose=pose,
                scale=Vector3(x=det.size_m, y=det.size_m, z=0.002), color=ColorRGBA(r=0.1, g=0.8, b=0.2, a=0.6),
            )
        )  # fmt: skip
        markers.append(
            Marker(
                header=header, ns="tag_ids", id=2 * det.id + 1, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD, pose=pose,
                scale=Vector3(z=0.03), color=ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0), text=f"tag {det.id} ({det.weight:.2f})",
            )
        )  # fmt: skip
    return MarkerArray(markers=markers)
