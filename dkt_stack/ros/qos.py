"""QoS profiles chosen by name, as a node parameter."""

from __future__ import annotations

from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data

QOS_CHOICES = ("sensor_data", "reliable")


def qos_by_name(name: str, depth: int = 5) -> QoSProfile:
    """``sensor_data`` (best effort, like realsense2_camera's default) or ``reliable`` (needed by rosbag record, rviz defaults)."""
    if name == "sensor_data":
        profile = QoSProfile(**{k: getattr(qos_profile_sensor_data, k) for k in ("reliability", "durability", "history")}, depth=depth)
        return profile
    if name == "reliable":
        return QoSProfile(
            reliability=QoSReliabilityPolicy.RELIABLE,
            durability=QoSDurabilityPolicy.VOLATILE,
            history=QoSHistoryPolicy.KEEP_LAST,
            depth=depth,
        )
    raise ValueError(f"unknown QoS profile '{name}' (choose {' or '.join(QOS_CHOICES)})")
