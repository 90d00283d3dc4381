"""A user's node as rviz2 or a plain rclpy script subscribes: default QoS (reliable, depth 10), no DDS profile.

Run as a separate process with FASTDDS_DEFAULT_PROFILES_FILE unset (the project's
tests and tools set it for themselves). Prints one JSON line: per topic, the
messages received, the rate over the measurement window (after the first
message, so discovery time does not count) and the publisher's sequence numbers
that never arrived (at the start: discovery; in the middle: losses).

    python default_qos_probe.py SECONDS TYPE:TOPIC [TYPE:TOPIC ...]    (TYPE: Image | PointCloud2 | DiagnosticArray)
"""

from __future__ import annotations

import json
import sys
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import Image, PointCloud2

TYPES = {"Image": Image, "PointCloud2": PointCloud2, "DiagnosticArray": DiagnosticArray}


def main() -> int:
    seconds = float(sys.argv[1])
    rclpy.init()
    node = Node("default_qos_probe")
    arrivals: dict[str, list[float]] = {}
    sequences: dict[str, list[int]] = {}

    def on_message(topic: str, info) -> None:
        arrivals[topic].append(time.monotonic())
        sequences[topic].append(info["publication_sequence_number"] or 0)

    for spec in sys.argv[2:]:
        type_name, topic = spec.split(":", 1)
        arrivals[topic], sequences[topic] = [], []
        node.create_subscription(TYPES[type_name], topic, lambda _msg, info, t=topic: on_message(t, info), 10)
    print("ready", flush=True)
    start = time.monotonic()
    first = None
    while True:
        rclpy.spin_once(node, timeout_sec=0.05)
        now = time.monotonic()
        if first is None and all(arrivals.values()):
            first = now
        if (first is not None and now - first >= seconds) or now - start > seconds + 60:
            break
    result = {}
    for topic, times in arrivals.items():
        window = [t for t in times if first is not None and t >= first]
        span = (window[-1] - window[0]) if len(window) > 1 else 0.0
        seqs = sequences[topic]
        missing = sorted(set(range(1, max(seqs) + 1)) - set(seqs)) if seqs else []  # the writer's sequence numbers start at 1
        result[topic] = {
            "received": len(times), "in_window": len(window), "rate_hz": (len(window) - 1) / span if span > 0 else 0.0, "missing_sequence": missing,
        }  # fmt: skip
    print(json.dumps(result), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
