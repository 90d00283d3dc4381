"""Stream health, pure: rates, ages, staleness levels, losses by sequence and by stamps, time jumps."""

from __future__ import annotations

import pytest

from dkt_stack.config import ConfigError, from_dict
from dkt_stack.ros.stream_monitor import ERROR, OK, WARN, DiagnosticsConfig, StreamMonitor

PERIOD_NS = 33_333_333  # 30 Hz


def feed(monitor: StreamMonitor, n: int, t0: float = 0.0, stamp0: int = 10**18, seq0: int | None = 1, dt: float = 1 / 30, skip=()):
    """n messages at 30 Hz from t0; indices in ``skip`` are published but never arrive."""
    for i in range(n):
        if i in skip:
            continue
        monitor.record(t0 + i * dt, stamp0 + i * PERIOD_NS, None if seq0 is None else seq0 + i, b"w1")
    return t0 + (n - 1) * dt


def test_rate_age_and_staleness_levels_at_the_configured_thresholds():
    config = DiagnosticsConfig(stale_warn_s=1.0, stale_error_s=3.0, window_s=5.0)
    m = StreamMonitor("/cam/color", "in", config, now=0.0)
    last = feed(m, 150)  # 5 s at 30 Hz
    h = m.health(last)
    assert h.level == OK and h.count == 150 and h.lost == 0
    assert h.rate_hz == pytest.approx(30.0, rel=0.01)
    assert h.age_s == pytest.approx(0.0)
    assert m.health(last + 0.99).level == OK
    h = m.health(last + 1.01)
    assert h.level == WARN and h.message == "nothing received on /cam/color for 1.0 s"
    h = m.health(last + 3.2)
    assert h.level == ERROR and h.message == "nothing received on /cam/color for 3.2 s" and h.age_s == pytest.approx(3.2)
    assert m.health(last + 3.2).rate_hz == pytest.approx(55 / 5.0, abs=0.21)  # the ~55 messages of the last 1.8 s, still in the 5 s window
    assert m.health(last + 6.0).rate_hz == 0.0  # nothing inside the window any more
    # figures as the diagnostics publish them
    figures = m.health(last + 3.2).figures()
    assert figures.keys() == {"in /cam/color rate_hz", "in /cam/color age_s", "in /cam/color received", "in /cam/color lost"}
    assert (figures["in /cam/color age_s"], figures["in /cam/color received"], figures["in /cam/color lost"]) == (3.2, 150, 0)


def test_a_stream_that_never_delivered_is_stale_from_the_start_and_commands_never_are():
    config = DiagnosticsConfig()
    m = StreamMonitor("/x", "in", config, now=100.0)
    assert m.health(100.5).level == OK
    h = m.health(104.0)
    assert h.level == ERROR and h.message == "nothing received on /x yet (4.0 s)" and h.age_s is None
    command = StreamMonitor("/grasps", "in", config, stale=False, now=100.0)
    assert command.health(200.0).level == OK
    out = StreamMonitor("/camera/color", "out", config, stale=True, now=0.0)
    out.record(1.0)
    assert out.health(5.0).message == "nothing published on /camera/color for 4.0 s"
    assert "out /camera/color published" in out.health(5.0).figures()


def test_losses_counted_from_publication_sequence_numbers_per_writer():
    config = DiagnosticsConfig(window_s=5.0, loss_warn_fraction=0.2)
    m = StreamMonitor("/t", "in", config, now=0.0)
    last = feed(m, 30, skip={5, 6, 7})  # 3 lost in the DDS queue
    assert m.health(last).lost == 3 and m.health(last).level == OK  # 3 of 30: under the warning fraction
    # a second writer on the same topic has its own sequence; its first message is no loss
    m.record(last + 0.01, 2 * 10**18, 500, b"w2")
    m.record(last + 0.02, 2 * 10**18 + PERIOD_NS, 501, b"w2")
    assert m.health(last + 0.02).lost == 3
    # a burst: 4 of every 5 lost (a large message without the DDS profile) -> WARN naming the count
    m2 = StreamMonitor("/big", "in", config, now=0.0)
    last = feed(m2, 146, skip={i for i in range(146) if i % 5})  # the last one received is #145
    h = m2.health(last)
    assert h.lost == 116 and h.lost_window == 116 and h.count_window == 30
    assert h.level == WARN and h.message.startswith("lost 116 of 146 messages on /big in the last 5 s")
    assert "large-data DDS profile" in h.message


def test_losses_estimated_from_stamp_gaps_without_sequence_numbers():
    m = StreamMonitor("/t", "in", DiagnosticsConfig(), now=0.0)
    last = feed(m, 60, seq0=None, skip={20, 21, 40})
    assert m.health(last).lost == 3
    # jitter (here +-20 % of a period) is not a loss
    j = StreamMonitor("/j", "in", DiagnosticsConfig(), now=0.0)
    jitter = [0.0, 0.2, -0.2, 0.1, -0.15, 0.05, 0.2, -0.1]
    stamps = [10**18 + int((i + jitter[i % len(jitter)]) * PERIOD_NS) for i in range(40)]
    for i, s in enumerate(stamps):
        j.record(i / 30, s)
    assert j.health(2.0).lost == 0


def test_time_jump_backwards_warns_for_the_hold_time_with_the_nodes_note():
    config = DiagnosticsConfig(jump_hold_s=5.0)
    m = StreamMonitor("/camera/depth/relative", "in", config, stale=False, jump_note="scale filter reset", now=0.0)
    last = feed(m, 10)
    text = m.record(last + 0.03, 10**18 - 12 * 10**9, 11, b"w1")  # a bag looped: 12.3 s back
    assert text == "time jumped back 12.3 s on /camera/depth/relative (bag loop or clock reset): scale filter reset"
    feed(m, 10, t0=last + 0.06, stamp0=10**18 - 12 * 10**9 + PERIOD_NS, seq0=12)
    assert m.health(last + 1.0).level == WARN and m.health(last + 1.0).message == text
    assert m.health(last + 5.2).level == OK and m.jumps == 1
    assert m.health(last + 0.5).lost == 0  # a jump is not a loss


def test_config_is_validated_through_the_config_loader():
    with pytest.raises(ConfigError, match="stale_warn_s <= stale_error_s"):
        from_dict(DiagnosticsConfig, {"stale_warn_s": 4.0, "stale_error_s": 3.0})
    with pytest.raises(ConfigError, match="loss_warn_fraction"):
        from_dict(DiagnosticsConfig, {"loss_warn_fraction": 0.0})
    with pytest.raises(ValueError, match="direction"):
        StreamMonitor("/t", "sideways", DiagnosticsConfig())
