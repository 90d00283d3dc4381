"""NodeDiagnostics on real rclpy: stream figures, staleness WARN/ERROR, time jumps, DDS queue losses; QoS matching."""

from __future__ import annotations

import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.node import Node
from std_msgs.msg import Header

from dkt_stack.conversions import ns_to_stamp
from dkt_stack.ros.diagnostics import OK, DiagnosticsConfig, NodeDiagnostics
from dkt_stack.ros.qos import publisher_qos, qos_by_name, sensor_subscription_qos

pytestmark = pytest.mark.ros


def figures(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def statuses(collector, name: str) -> list[DiagnosticStatus]:
    return [s for m in collector.messages for s in m.status if s.name.endswith(name)]


def test_stream_health_staleness_and_time_jump_on_diagnostics(ros):
    diags = ros.collect(DiagnosticArray, "/diagnostics")
    node = ros.add_node(Node("watched", namespace="diag_test", context=ros.context))
    config = DiagnosticsConfig(stale_warn_s=0.4, stale_error_s=1.0, period_s=0.1, jump_hold_s=1.0)
    d = NodeDiagnostics(node, hardware_id="test", config=config)
    d.set(OK, "running")
    got = []
    d.subscribe(Header, "input", got.append, jump_note="filter reset")
    out = d.publisher(Header, "output", publisher_qos())
    pub = ros.publisher(Header, "/diag_test/input", publisher_qos())
    ros.wait_for_subscribers(pub, timeout=30)
    stamp = 10**18
    for _ in range(20):
        stamp += 20_000_000
        pub.publish(Header(stamp=ns_to_stamp(stamp)))
        out.publish(Header(stamp=ns_to_stamp(stamp)))
        time.sleep(0.02)
    deadline = time.monotonic() + 20
    while len(got) < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(got) == 20
    # silent input: WARN, then ERROR, each saying how long and on which topic
    diags.wait(timeout=20, predicate=lambda _: any(s.level == DiagnosticStatus.ERROR for s in statuses(diags, "/diag_test/watched")))
    mine = statuses(diags, "/diag_test/watched")
    levels = [s.level for s in mine]
    first_warn, first_error = levels.index(DiagnosticStatus.WARN), levels.index(DiagnosticStatus.ERROR)
    assert levels[0] == DiagnosticStatus.OK and first_warn < first_error
    assert mine[first_warn].message.startswith("nothing received on /diag_test/input for 0.")
    assert mine[first_error].message.startswith("nothing received on /diag_test/input for 1.")
    f = figures(mine[first_error])
    assert f["in /diag_test/input received"] == "20" and f["in /diag_test/input lost"] == "0"
    assert f["out /diag_test/output published"] == "20" and float(f["in /diag_test/input age_s"]) > 1.0
    assert mine[first_error].hardware_id == "test" and mine[first_error].name == "watched: /diag_test/watched"
    # a stamp going back: WARN naming the jump and what the node did, for jump_hold_s, then OK again while fed
    n = len(diags.messages)
    pub.publish(Header(stamp=ns_to_stamp(stamp - 5 * 10**9)))

    def after(k):
        return [s for m in diags.messages[k:] for s in m.status if s.name.endswith("/diag_test/watched")]

    diags.wait(timeout=20, predicate=lambda _: any("time jumped back 5 s" in s.message for s in after(n)))
    jump = next(s for s in after(n) if "time jumped back" in s.message)
    assert jump.level == DiagnosticStatus.WARN and jump.message == "time jumped back 5 s on /diag_test/input (bag loop or clock reset): filter reset"
    n = len(diags.messages)
    deadline = time.monotonic() + 20
    stamp -= 5 * 10**9
    while not any(s.level == DiagnosticStatus.OK for s in after(n)):
        assert time.monotonic() < deadline, [s.message for s in after(n)]
        stamp += 20_000_000
        pub.publish(Header(stamp=ns_to_stamp(stamp)))
        time.sleep(0.02)
    assert next(s for s in after(n) if s.level == DiagnosticStatus.OK).message == "running"


def test_losses_in_the_subscription_queue_are_counted_from_sequence_numbers(ros):
    node = ros.add_node(Node("slow", namespace="diag_test", context=ros.context))
    d = NodeDiagnostics(node, config=DiagnosticsConfig(period_s=10.0))
    got = []

    def slow(msg):  # a callback slower than the publisher: the depth-1 queue overflows
        got.append(msg)
        time.sleep(0.03)

    d.subscribe(Header, "burst", slow, sensor_subscription_qos(depth=1))
    pub = ros.publisher(Header, "/diag_test/burst", publisher_qos(depth=50))
    ros.wait_for_subscribers(pub, timeout=30)
    for i in range(60):
        pub.publish(Header(frame_id=str(i)))
        time.sleep(0.002)
    deadline = time.monotonic() + 20
    while (not got or got[-1].frame_id != "59") and time.monotonic() < deadline:
        time.sleep(0.05)
    f = figures(d.status())
    received, lost = int(f["in /diag_test/burst received"]), int(f["in /diag_test/burst lost"])
    assert got[-1].frame_id == "59" and received == len(got)
    assert lost > 0 and received + lost == 60 - int(got[0].frame_id)  # every message after the first is received or counted lost


def test_reliable_publishers_serve_default_and_best_effort_subscribers(ros):
    """The ecosystem's rule: a reliable publisher serves both; a best-effort publisher only best-effort subscribers."""
    default_sub = ros.collect(Header, "/qos_test/reliable", 10)  # rclpy's default profile: reliable, depth 10
    sensor_sub = ros.collect(Header, "/qos_test/reliable", sensor_subscription_qos())
    best_effort_default = ros.collect(Header, "/qos_test/best_effort", 10)
    best_effort_sensor = ros.collect(Header, "/qos_test/best_effort", sensor_subscription_qos())
    reliable_pub = ros.publisher(Header, "/qos_test/reliable", publisher_qos())
    best_effort_pub = ros.publisher(Header, "/qos_test/best_effort", qos_by_name("sensor_data"))
    ros.wait_for_subscribers(reliable_pub, count=2, timeout=30)
    ros.wait_for_subscribers(best_effort_pub, count=1, timeout=30)
    time.sleep(0.5)
    assert best_effort_pub.get_subscription_count() == 1  # the reliable (default) subscriber never matches
    for i in range(5):
        reliable_pub.publish(Header(frame_id=str(i)))
        best_effort_pub.publish(Header(frame_id=str(i)))
        time.sleep(0.02)
    assert [m.frame_id for m in default_sub.wait(5)] == ["0", "1", "2", "3", "4"]
    assert len(sensor_sub.wait(5)) == 5 and len(best_effort_sensor.wait(5)) == 5
    assert best_effort_default.messages == []
