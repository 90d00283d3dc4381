"""Live playback: the bag's messages on real ROS 2 topics at bag rate, with /clock."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from dkt_perception.replay.bag_io import BagError
from dkt_perception.replay.player import play_bag
from dkt_perception.replay.synthetic_bag import write_synthetic_bag
from dkt_stack import conversions as cv

pytestmark = pytest.mark.ros


def test_play_publishes_every_message_with_clock_at_the_bag_rate(ros, tmp_path):
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image

    bag = write_synthetic_bag(tmp_path / "in", 4, width=32, height=24, storage="mcap")
    with AnyReader([bag]) as reader:
        conn = [c for c in reader.connections if c.topic == "/camera/color/image_raw"]
        recorded = [(t, reader.deserialize(raw, c.msgtype)) for c, t, raw in reader.messages(connections=conn)]
        duration_s = (reader.end_time - reader.start_time) / 1e9
    images = ros.collect(Image, "/camera/color/image_raw")
    clocks = ros.collect(Clock, "/clock")
    rate = 0.5
    result = {}
    player = threading.Thread(target=lambda: result.update(stats=play_bag(bag, rate=rate, context=ros.context, start_delay_s=0.2,
                                                                   wait_for=["/camera/color/image_raw", "/clock"])))
    player.start()
    player.join(timeout=30)
    assert not player.is_alive()
    stats = result["stats"]
    assert stats.loops == 1 and "/camera/color/image_raw" in stats.topics and "/notes" in stats.topics
    got = images.wait(4, timeout=10)
    assert [cv.stamp_to_ns(m.header.stamp) for m in got] == [cv.stamp_to_ns(m.header.stamp) for _, m in recorded]
    assert np.array_equal(cv.image_to_numpy(got[2]), cv.image_to_numpy(recorded[2][1]))  # the stored bytes, unchanged
    wanted = {t for t, _ in recorded}
    clock_ns = [cv.stamp_to_ns(c.clock) for c in clocks.wait(timeout=10, predicate=lambda ms: wanted <= {cv.stamp_to_ns(c.clock) for c in ms})]
    assert stats.clock_messages >= len(clock_ns) > len(wanted)  # each message's bag time, plus interpolated ticks between them
    assert clock_ns == sorted(clock_ns)  # bag time never runs backwards within one pass
    assert stats.wall_s >= 0.9 * duration_s / rate  # paced at half speed, not dumped at once


def test_play_stops_on_request_and_rejects_unknown_topics(ros, tmp_path):
    bag = write_synthetic_bag(tmp_path / "in", 2, width=32, height=24)
    with pytest.raises(BagError, match="/nope"):
        play_bag(bag, topics=["/nope"], context=ros.context, start_delay_s=0)
    with pytest.raises(ValueError, match="rate"):
        play_bag(bag, rate=0, context=ros.context)
    stop = threading.Event()
    stats = {}
    t = threading.Thread(target=lambda: stats.update(s=play_bag(bag, loop=True, rate=1.0, context=ros.context, start_delay_s=0, stop=stop)))
    t.start()
    time.sleep(0.5)
    stop.set()
    t.join(timeout=10)
    assert not t.is_alive() and stats["s"].loops >= 2  # a 33 ms bag looped several times in 0.5 s


def test_cli_play(tmp_path, capsys):
    from dkt_stack.cli import main

    bag = write_synthetic_bag(tmp_path / "in", 2, width=32, height=24)
    assert main(["replay", str(bag), "--play", "--rate", "4", "--delay", "0"]) == 0
    assert "played 9 messages on 5 topics (1 pass(es))" in capsys.readouterr().out
    assert main(["replay", str(bag), "--play", "--rate", "0"]) == 1
    assert "rate must be > 0" in capsys.readouterr().err


def test_depth_node_with_sim_time_consumes_the_played_bag(ros, tmp_path):
    """The raw-backend depth_node, started with use_sim_time, turns the played colour + depth into depth/relative on bag time."""
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    from dkt_stack.graph import ResolvedNode
    from dkt_stack.ros.qos import qos_by_name
    from dkt_stack.runner import NodeProcess

    bag = write_synthetic_bag(tmp_path / "in", 6, width=32, height=24, prefix="/camera/camera")  # realsense-ros 4.x names
    with AnyReader([bag]) as reader:
        bag_range = (reader.start_time, reader.end_time)
        conn = [c for c in reader.connections if c.topic == "/camera/camera/aligned_depth_to_color/image_raw"]
        raw_mm = {cv.stamp_to_ns(m.header.stamp): cv.image_to_numpy(m) for m in (reader.deserialize(r, c.msgtype) for c, _, r in reader.messages(conn))}
    relative = ros.collect(Image, "/camera/depth/relative", qos_by_name("sensor_data"))
    diags = ros.collect(DiagnosticArray, "/diagnostics")
    node = ResolvedNode("depth", "depth_node", "dkt_stack", "camera", {"engine": {"backend": "raw"}, "use_sim_time": True}, {})
    proc = NodeProcess(node, tmp_path, log_path=tmp_path / "depth.log")
    stop = threading.Event()
    player = threading.Thread(target=lambda: play_bag(bag, loop=True, context=ros.context, start_delay_s=0, stop=stop,
                                                      wait_for=["/camera/camera/color/image_raw", "/camera/camera/aligned_depth_to_color/image_raw"],
                                                      wait_timeout_s=60))
    player.start()
    try:
        got = relative.wait(3, timeout=60)
        stamps = [cv.stamp_to_ns(m.header.stamp) for m in got]
        assert all(s in raw_mm for s in stamps)  # the bag's own header stamps
        m = got[-1]
        mm = raw_mm[stamps[-1]]
        expected = np.full(mm.shape, np.nan, dtype=np.float32)
        np.divide(np.float32(1.0), mm.astype(np.float32) * np.float32(0.001), out=expected, where=mm > 0)
        assert np.array_equal(cv.image_to_numpy(m), expected, equal_nan=True)
        # the node's clock is bag time: its diagnostics are stamped inside the bag's time range, not with the wall clock
        msgs = diags.wait(
            timeout=30, predicate=lambda ms: any(s.name.startswith("depth") and cv.stamp_to_ns(d.header.stamp) for d in ms for s in d.status)
        )
        # (zero before the first /clock: diagnostics run on a steady timer, so a node waiting for a bag still reports)
        stamped = [cv.stamp_to_ns(d.header.stamp) for d in msgs if any(s.name.startswith("depth") for s in d.status)]
        stamped = [s for s in stamped if s != 0]
        assert all(bag_range[0] - 1_000_000_000 <= s <= bag_range[1] + 1_000_000_000 for s in stamped), (stamped, bag_range)
    finally:
        stop.set()
        player.join(timeout=10)
        proc.stop()


def test_cli_play_delivers_every_frame_of_a_60_frame_bag_to_a_default_subscriber(tmp_path):
    """`dkt-stack replay --play` loads the large-data DDS profile itself: a plain default-QoS subscriber gets all 60 frames."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from dkt_stack.ros.transport import PROFILE_VARIABLES

    bag = write_synthetic_bag(tmp_path / "in", 60, width=640, height=480, prefix="/camera/camera", ground_truth=False)
    env = {k: v for k, v in os.environ.items() if k not in PROFILE_VARIABLES}  # neither side gets the profile from outside
    probe_script = Path(__file__).parents[2] / "dkt_stack" / "default_qos_probe.py"
    topics = ["Image:/camera/camera/color/image_raw", "Image:/camera/camera/aligned_depth_to_color/image_raw"]
    probe = subprocess.Popen([sys.executable, str(probe_script), "4", *topics], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert probe.stdout.readline().strip() == "ready"
        play = subprocess.run([sys.executable, "-m", "dkt_stack.cli", "replay", str(bag), "--play"], env=env, capture_output=True, text=True, timeout=300)
        assert play.returncode == 0, play.stderr
        figures = json.loads(probe.communicate(timeout=120)[0].splitlines()[-1])
    finally:
        probe.kill()
    assert figures["/camera/camera/color/image_raw"]["received"] == 60, figures
    assert figures["/camera/camera/aligned_depth_to_color/image_raw"]["received"] == 60, figures
