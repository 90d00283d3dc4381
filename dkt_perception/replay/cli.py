"""``dkt-stack replay IN_BAG --out OUT_BAG``: a bag through the depth pipeline; ``--play``: a bag on live topics.

Examples::

    dkt-stack replay recording/ --out replayed/ --backend raw
    dkt-stack replay recording/ --out replayed/ --backend dkt --mode offline --tags-config config/tags.yaml
    dkt-stack replay recording/ --out replayed/ --mode streaming --storage mcap --force
    dkt-stack replay recording/ --play --rate 0.5 --loop      # then run the graph with use_sim_time:=true
    dkt-stack replay recording/ --out replayed/ --resume        # continue a replay that was killed
    dkt-stack replay --reindex killed_recording/               # make a bag whose writer was killed readable

Offline mode with DKT holds every frame in memory (about 4.5 MB per 640x480
frame with raw depth): use ``--mode streaming`` or ``--chunk-frames N`` for long
bags (chunks are also the points a resumed DKT replay restarts from).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from dkt_stack.config import load_config
from dkt_stack.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="rosbag2 folder (sqlite3 or MCAP, any ROS 2 distro); with --reindex, the bag to repair")
    parser.add_argument("--out", help="output bag folder (required unless --play)")
    parser.add_argument("--config", help="YAML ReplayConfig file (mode, topics, depth, pipeline); the options below override it")
    parser.add_argument("--backend", choices=["dkt", "raw", "depth_anything_v2"], help="depth backend (default raw, or the config's)")
    parser.add_argument("--mode", choices=["offline", "streaming"], help="offline: infer_video over the sequence (default); streaming: as the live node")
    parser.add_argument("--chunk-frames", type=int, help="offline: frames per infer_video call (bounds memory); 0 = whole bag")
    parser.add_argument("--color-topic", help="colour topic (default: realsense2_camera's, with or without /camera/camera)")
    parser.add_argument("--info-topic", help="colour camera_info topic")
    parser.add_argument("--raw-depth-topic", help="aligned raw depth topic")
    parser.add_argument("--tags-config", help="YAML TagConfig file (ids, sizes_m, ...), as metric_depth_node's tags_config")
    parser.add_argument("--weights-dir", help="DKT weights folder (default $DKT_WEIGHTS_DIR or ~/.cache/dkt_stack/weights)")
    parser.add_argument("--model", choices=["1.3b", "tiny"], help="DKT architecture (tiny: tests only)")
    parser.add_argument("--random-weights", action="store_true", help="DKT with random weights (smoke tests; output is meaningless)")
    parser.add_argument("--device", help="'auto', 'cpu' or 'cuda[:N]'")
    parser.add_argument("--steps", type=int, help="DKT denoising steps")
    parser.add_argument("--height", type=int, help="model input height (multiple of 16)")
    parser.add_argument("--width", type=int, help="model input width (multiple of 16)")
    parser.add_argument("--storage", choices=["sqlite3", "mcap"], help="output storage (default: the input's)")
    parser.add_argument("--no-clouds", action="store_true", help="do not write <ns>/points")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output bag")
    parser.add_argument("--resume", action="store_true",
                        help="continue the replay into OUT_BAG that was killed or failed, after its last checkpoint (same input and options)")
    parser.add_argument("--checkpoint-s", type=float, help="seconds between checkpoints of the output for --resume (default 1, or the config's)")
    parser.add_argument("--reindex", action="store_true",
                        help="only repair INPUT: rebuild the index (metadata.yaml, MCAP summary) of a bag whose writer was killed")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    play = parser.add_argument_group("live playback")
    play.add_argument("--play", action="store_true", help="publish the bag on live ROS 2 topics with /clock instead of replaying it")
    play.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1)")
    play.add_argument("--loop", action="store_true", help="play again from the start at the end")
    play.add_argument("--topics", nargs="*", help="only these topics (default: all)")
    play.add_argument("--wait-for", nargs="*", default=[], metavar="TOPIC", help="start only once these topics have a subscriber")
    play.add_argument("--delay", type=float, default=0.5, help="seconds between creating the publishers and the first message")


def build_config(args: argparse.Namespace):
    """ReplayConfig from ``--config`` (if any) with the command-line options on top."""
    from dkt_perception.replay.bag_replay import ReplayConfig

    config = load_config(ReplayConfig, args.config) if args.config else ReplayConfig()
    top = {k: v for k, v in {
        "mode": args.mode,
        "color_topic": args.color_topic,
        "info_topic": args.info_topic,
        "raw_depth_topic": args.raw_depth_topic,
        "storage": args.storage,
        "offline_chunk_frames": args.chunk_frames,
        "checkpoint_s": args.checkpoint_s,
    }.items() if v is not None}
    depth = {k: v for k, v in {
        "backend": args.backend,
        "weights_dir": args.weights_dir,
        "model": args.model,
        "device": args.device,
        "steps": args.steps,
        "height": args.height,
        "width": args.width,
    }.items() if v is not None}
    if args.random_weights:
        depth["random_weights"] = True
    return replace(config, **top, force=args.force or config.force, write_clouds=config.write_clouds and not args.no_clouds,
                   depth=replace(config.depth, **depth))


def run(args: argparse.Namespace) -> int:
    if args.reindex:
        from dkt_perception.replay.bag_recovery import recover_bag

        result = recover_bag(args.input)
        state = "rebuilt its index" if result.rebuilt else "it was readable already"
        print(f"{result.path}: {result.messages} messages ({result.storage}); {state}")
        return 0
    if args.play:
        from dkt_perception.replay.player import play_bag

        stats = play_bag(args.input, rate=args.rate, loop=args.loop, topics=args.topics or None, start_delay_s=args.delay,
                         wait_for=args.wait_for)
        print(f"played {stats.messages} messages on {len(stats.topics)} topics ({stats.loops} pass(es))")
        return 0
    if not args.out:
        raise UserError("no output bag given", fix="pass --out OUT_BAG (or --play to publish the bag on live topics)")
    from dkt_perception.replay.bag_replay import replay_bag

    # errors (a bag that is not one, missing weights, bad options, an output that exists) end as one line (dkt_stack.cli)
    summary = replay_bag(args.input, args.out, build_config(args), tags_config=args.tags_config, progress=not args.quiet,
                         resume=args.resume)
    if args.json:
        print(json.dumps(summary.to_dict()))
    else:
        print(
            f"{summary.frames} frames ({summary.mode}, {summary.backend}) -> {summary.output}: "
            f"{summary.frames_relative} relative, {summary.frames_metric} metric, {summary.clouds} clouds, "
            f"{summary.messages_copied} messages copied; {summary.frames_per_second:.1f} frames/s"
        )
        if summary.frames < summary.colour_messages:
            print(f"note: {summary.colour_messages - summary.frames} colour frame(s) had no raw depth within the sync slop and were skipped")
        if summary.frames_metric < summary.frames:
            print(f"note: {summary.frames - summary.frames_metric} frame(s) had no valid metric scale (see /diagnostics in the output)")
        for note in summary.notes:
            print(f"note: {note}")
    return 0
