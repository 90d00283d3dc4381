"""QoS profiles, as realsense-ros and rviz2 users expect them.

* **Publishers are reliable by default** (``qos: reliable``), like
  realsense-ros 4.x's images and clouds (system default profile). A reliable
  publisher serves reliable subscribers (rviz2 displays added by hand,
  image_view, ``ros2 topic echo``, rosbag2, a node created with depth 10) and
  best-effort ones alike; a best-effort publisher serves only best-effort
  subscribers. ``qos: sensor_data`` makes a node's publishers best effort.
* **Subscriptions to sensor streams are best effort with a small queue**
  (:func:`sensor_subscription_qos`), so they accept either kind of publisher
  and never build up latency behind a slow consumer: a frame that is late is
  worth less than the next one.
* Commands and results that must not be lost (grasps, trajectories) are
  reliable on both ends.
"""

from __future__ import annotations

from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy

QOS_CHOICES = ("reliable", "sensor_data")

#: queue of a sensor-stream subscription: enough to ride out one slow callback, small enough to stay fresh
SENSOR_QUEUE_DEPTH = 5


def qos_by_name(name: str, depth: int = 5) -> QoSProfile:
    """``reliable`` (the default of every publisher) or ``sensor_data`` (best effort), keep-last ``depth``, volatile."""
    if name not in QOS_CHOICES:
        raise ValueError(f"unknown QoS profile '{name}' (choose {' or '.join(QOS_CHOICES)})")
    reliability = QoSReliabilityPolicy.RELIABLE if name == "reliable" else QoSReliabilityPolicy.BEST_EFFORT
    return QoSProfile(reliability=reliability, durability=QoSDurabilityPolicy.VOLATILE, history=QoSHistoryPolicy.KEEP_LAST, depth=depth)


def publisher_qos(name: str = "reliable", depth: int = 5) -> QoSProfile:
    """Profile of a node's data publishers, chosen by its ``qos`` parameter."""
    return qos_by_name(name, depth)


def sensor_subscription_qos(depth: int = SENSOR_QUEUE_DEPTH) -> QoSProfile:
    """Best effort, keep-last ``depth``: matches reliable and best-effort publishers alike."""
    return qos_by_name("sensor_data", depth)


def static_tf_qos() -> QoSProfile:
    """/tf_static as tf2_ros publishes it: reliable, transient local (late subscribers get the transforms), depth 1."""
    return QoSProfile(
        reliability=QoSReliabilityPolicy.RELIABLE,
        durability=QoSDurabilityPolicy.TRANSIENT_LOCAL,
        history=QoSHistoryPolicy.KEEP_LAST,
        depth=1,
    )
