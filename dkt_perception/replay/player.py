"""Live playback of a rosbag2 bag on ROS 2 topics with ``/clock`` (``ros2 bag play --clock`` without ros2cli).

Each message is published as its stored CDR bytes (rclpy publishes serialised
bytes as they are: no decode/encode), at the bag's pace scaled by ``rate``.
Before each message ``/clock`` (rosgraph_msgs/Clock) carries its bag timestamp,
and while waiting between messages ``/clock`` ticks at ``clock_hz`` with the
interpolated bag time, so nodes started with ``use_sim_time:=true`` see bag
time. Publishers are reliable (a reliable publisher serves both reliable and
best-effort subscribers, e.g. the nodes' ``sensor_data`` QoS) with a deep
queue. With ``loop`` the bag restarts and bag time jumps back, as with
``ros2 bag play --loop``.

Camera-sized messages need the large-data Fast DDS profile
(:mod:`dkt_stack.ros.transport`): without it only 12-18 of 60 colour frames
reached a subscriber here. The player sets it (unless the user chose a profile)
before its context starts. Before playing it waits until the subscribers that
exist are discovered and matched (see :func:`_wait_for_subscribers`), so a
subscriber started before the player gets every message.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from dkt_perception.replay.bag_io import BagError, message_class, open_reader


@dataclass
class PlayStats:
    messages: int = 0
    clock_messages: int = 0
    loops: int = 0
    topics: list[str] = field(default_factory=list)
    wall_s: float = 0.0


def _stamp(ns: int):
    from builtin_interfaces.msg import Time

    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


#: with nobody subscribed yet, wait this long for a first subscriber to be discovered (s): a participant that
#: started earlier is found at its next periodic announcement, every 3 s by default in Fast DDS
DISCOVERY_WAIT_S = 3.5
#: after the last new match, wait this long before playing: the subscriber's side of the match lags the player's (s)
MATCH_SETTLE_S = 0.75


def _wait_for_subscribers(node, publishers: dict, min_s: float, stop: threading.Event) -> None:
    """Hold playback until the subscribers that exist are matched, so none misses the first messages.

    At least ``min_s``; until every subscriber the ROS graph knows on a played topic is matched; and, when no
    data topic has any subscriber yet, up to :data:`DISCOVERY_WAIT_S` for a first one to be discovered
    (a subscriber started before the player is found at its next periodic announcement, up to 3 s later; a
    volatile subscriber never gets what was published before it matched). Then :data:`MATCH_SETTLE_S` without a new match.
    Gives up quietly 10 s after ``min_s`` (an incompatible QoS never matches).
    """
    start = time.monotonic()
    data = {t: p for t, p in publishers.items() if t != "/clock"}
    last_total, last_change = -1, start
    while not stop.is_set():
        now = time.monotonic()
        total = sum(p.get_subscription_count() for p in data.values())
        if total != last_total:
            last_total, last_change = total, now
        known = all(p.get_subscription_count() >= node.count_subscribers(t) for t, p in publishers.items())
        waited = now - start
        if waited >= min_s and known and now - last_change >= MATCH_SETTLE_S and (total > 0 or waited >= max(min_s, DISCOVERY_WAIT_S)):
            return
        if waited > min_s + 10.0:
            return
        time.sleep(0.02)


def play_bag(
    path: str | Path,
    *,
    rate: float = 1.0,
    loop: bool = False,
    topics: list[str] | None = None,
    context=None,
    clock_hz: float = 100.0,
    start_delay_s: float = 0.5,
    stop: threading.Event | None = None,
    node_name: str = "bag_player",
    wait_for: list[str] | None = None,
    wait_timeout_s: float = 10.0,
) -> PlayStats:
    """Publish the bag's messages live; returns when done (or when ``stop`` is set / Ctrl-C).

    Args:
        rate: speed factor (2 = twice as fast); > 0.
        topics: only these topics (default: every topic of the bag).
        context: an rclpy Context to create the node in (default: a new one, shut down at the end).
        clock_hz: /clock rate while waiting between messages.
        start_delay_s: wait at least this long after creating the publishers (DDS discovery); longer while
            subscribers are still being matched, up to 3.5 s when none is there yet; 0 starts at once.
        wait_for: topics (``/clock`` included) that must have a subscriber before playing starts (BagError after ``wait_timeout_s``).
    """
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node
    from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
    from rosgraph_msgs.msg import Clock

    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    stop = stop or threading.Event()
    reader = open_reader(path)
    own_context = context is None
    if own_context:
        from dkt_stack.ros.transport import use_large_data_profile

        use_large_data_profile()  # must precede this process's first rclpy.init (a caller's context has its own)
        context = Context()
        rclpy.init(context=context)
    stats = PlayStats()
    node = None
    try:
        conns = [c for c in reader.connections if topics is None or c.topic in topics]
        if topics:
            missing = sorted(set(topics) - {c.topic for c in conns})
            if missing:
                raise BagError(f"topic(s) {', '.join(missing)} not in the bag (topics: {', '.join(sorted({c.topic for c in reader.connections}))})")
        if not conns:
            raise BagError(f"{path}: nothing to play (no messages)")
        node = Node(node_name, context=context)
        qos = QoSProfile(depth=100, reliability=QoSReliabilityPolicy.RELIABLE, durability=QoSDurabilityPolicy.VOLATILE)
        publishers = {}
        for c in conns:
            if c.topic not in publishers:
                publishers[c.topic] = node.create_publisher(message_class(c.msgtype), c.topic, qos)
        clock = node.create_publisher(Clock, "/clock", QoSProfile(depth=10))
        stats.topics = sorted(publishers)
        by_topic = {**publishers, "/clock": clock}
        if start_delay_s > 0:  # 0: start at once, as asked
            _wait_for_subscribers(node, by_topic, start_delay_s, stop)
        deadline = time.monotonic() + wait_timeout_s
        for topic in wait_for or ():
            if topic not in by_topic:
                raise BagError(f"cannot wait for {topic}: it is not played (topics: {', '.join(sorted(by_topic))})")
            while by_topic[topic].get_subscription_count() == 0 and not stop.is_set():
                if time.monotonic() > deadline:
                    raise BagError(f"no subscriber on {topic} after {wait_timeout_s:.1f} s")
                time.sleep(0.02)
        start = time.monotonic()
        tick = 1.0 / clock_hz if clock_hz > 0 else None
        while not stop.is_set():
            wall0, bag0 = time.monotonic(), None
            try:
                for conn, bag_ns, raw in reader.messages(connections=conns):
                    if bag0 is None:
                        bag0 = bag_ns
                    due = wall0 + (bag_ns - bag0) / 1e9 / rate
                    while (now := time.monotonic()) < due and not stop.is_set():
                        wait = due - now if tick is None else min(tick, due - now)
                        time.sleep(wait)
                        if tick is not None and time.monotonic() < due:  # interpolated bag time while waiting
                            clock.publish(Clock(clock=_stamp(bag0 + int((time.monotonic() - wall0) * rate * 1e9))))
                            stats.clock_messages += 1
                    if stop.is_set():
                        break
                    clock.publish(Clock(clock=_stamp(bag_ns)))
                    stats.clock_messages += 1
                    publishers[conn.topic].publish(bytes(raw))
                    stats.messages += 1
            except (BagError, KeyboardInterrupt):
                raise
            except Exception as exc:  # rosbags' errors on a truncated/corrupt bag
                raise BagError(f"{path}: bag is corrupt or truncated after {stats.messages} messages ({type(exc).__name__}: {exc})") from exc
            stats.loops += 1
            if not loop:
                break
        stats.wall_s = time.monotonic() - start
        return stats
    except KeyboardInterrupt:
        return stats
    finally:
        reader.close()
        if node is not None:
            node.destroy_node()
        if own_context and context.ok():
            rclpy.shutdown(context=context)
