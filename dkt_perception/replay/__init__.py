"""Offline rosbag replay through the depth pipeline, and live playback of bags.

* :mod:`.bag_io`: reading/writing rosbag2 (sqlite3, MCAP), topic resolution, BagError;
* :mod:`.frames`: colour + camera_info + raw depth assembled into frames;
* :mod:`.bag_replay`: ``replay_bag(in, out, ReplayConfig) -> ReplaySummary`` (``dkt-stack replay``);
* :mod:`.player`: ``play_bag(path, rate=, loop=)`` on live topics with /clock (``dkt-stack replay --play``);
* :mod:`.synthetic_bag`: the synthetic tabletop recorded as a realsense2_camera-like bag;
* :mod:`.benchmark`: ``dkt-stack bench replay``.
"""
