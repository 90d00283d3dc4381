"""Offline replay of a rosbag2 bag through the depth pipeline: ``replay_bag(in, out) -> ReplaySummary``.

The same code as the live graph: a depth backend from
:func:`dkt_perception.depth.create_backend` (what ``depth_node`` runs) and
:class:`dkt_perception.metric_pipeline.MetricPipeline` (what
``metric_depth_node`` runs), on the frames of a recorded camera.

Modes:
  * ``offline``: the whole sequence goes through ``infer_video`` at once (DKT's
    best quality: every frame sees its past and its future). The frames are held
    in memory until the end, so memory grows with the bag: about 4.5 MB per
    640x480 frame with raw depth (1.5 MB without). For long bags use
    ``streaming`` or ``offline_chunk_frames`` (each chunk is one ``infer_video``
    call; chunks do not see each other, so DKT's relative scale may jump at a
    chunk boundary, which the per-frame metric fit absorbs).
  * ``streaming``: ``stream()`` per frame, then ``flush()``: exactly the
    disparity the live depth node would publish (without the node's drops when
    the model is slower than the camera).

Output bag: every input message copied unchanged (same bag timestamps, the
source's own type definitions), plus, in the colour camera's namespace ``<ns>``
(``/camera`` or ``/camera/camera`` for realsense2_camera):
  * ``<ns>/depth/relative`` (32FC1 relative disparity) for every frame with a depth result;
  * ``<ns>/depth/metric`` (32FC1 metres), ``<ns>/depth/camera_info`` and
    ``<ns>/points`` (PointCloud2 XYZRGB, camera optical frame unless the cloud
    config says base) for frames with a valid metric scale, as the metric node;
  * ``/diagnostics`` (scale, shift, residual, inliers, valid) for every frame.
Outputs carry the colour image's header stamp and frame id and are written at
the colour message's bag timestamp. The input bag is only read.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
from rosbags.rosbag2 import StoragePlugin

from dkt_perception.depth import DepthConfig, DepthFrame, DepthInputError, create_backend
from dkt_perception.metric_pipeline import FrameMismatchError, MetricFrame, MetricPipeline, MetricPipelineConfig
from dkt_perception.replay.bag_io import BagError, BagTopics, BagWriter, iter_connection_messages, open_reader, resolve_topics, storage_of
from dkt_perception.replay.frames import BagFrame, FrameAssembler
from dkt_stack import conversions as cv
from dkt_stack.config import param

#: backends that need the sensor's depth (mirrors depth_node's BACKENDS_USING_SENSOR_DEPTH)
BACKENDS_USING_SENSOR_DEPTH = ("raw",)
DIAGNOSTIC_NAME = "replay: metric_depth"


@dataclass
class ReplayConfig:
    """Everything ``replay_bag`` needs besides the two paths."""

    mode: Literal["offline", "streaming"] = param("offline", help="offline: infer_video over the sequence; streaming: the live node's stream()")
    color_topic: str = param("", help="colour image topic (Image or CompressedImage); empty = realsense2_camera's name")
    info_topic: str = param("", help="colour camera_info topic; empty = realsense2_camera's name")
    raw_depth_topic: str = param("", help="aligned raw depth topic (16UC1 mm, 32FC1 m or compressedDepth); empty = realsense2_camera's if present")
    storage: Literal["", "sqlite3", "mcap"] = param("", help="output storage; empty = the input's")
    sync_slop_s: float = param(0.005, help="largest header-stamp difference between a colour image and its raw depth, s")
    offline_chunk_frames: int = param(0, help="offline: frames per infer_video call; 0 = the whole bag in one call")
    base_frame: str = param("base_link", help="frame id of the cloud when pipeline.cloud.output_frame is base")
    write_clouds: bool = param(True, help="write <ns>/points")
    force: bool = param(False, help="overwrite an existing output bag")
    depth: DepthConfig = param(default_factory=lambda: DepthConfig(backend="raw"), help="depth backend settings (backend name included)")
    pipeline: MetricPipelineConfig = param(default_factory=MetricPipelineConfig, help="metric scale and point cloud (as metric_depth_node)")


@dataclass
class ReplaySummary:
    """What a replay did; ``stage_ms`` are mean milliseconds per frame of each stage."""

    input: str
    output: str
    mode: str
    backend: str
    topics: dict[str, str | None]
    frames: int  #: colour frames assembled (colour + camera_info [+ raw depth])
    colour_messages: int
    frames_relative: int  #: frames with a depth result
    frames_metric: int  #: frames with a valid metric scale
    clouds: int
    messages_copied: int
    messages_written: int
    wall_s: float
    frames_per_second: float
    stage_ms: dict[str, float] = field(default_factory=dict)
    output_topics: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class _Timer:
    """Accumulates wall time per stage."""

    def __init__(self) -> None:
        self.total_ms: dict[str, float] = defaultdict(float)

    def add(self, stage: str, ms: float) -> None:
        self.total_ms[stage] += ms

    def since(self, stage: str, t0: float) -> float:
        now = time.perf_counter()
        self.total_ms[stage] += (now - t0) * 1e3
        return now


class _OutputWriter:
    """Writes the depth outputs of one frame, exactly the messages the two nodes publish."""

    def __init__(self, writer: BagWriter, topics: BagTopics, config: ReplayConfig, timer: _Timer):
        ns = topics.namespace
        self.writer, self.config, self.timer = writer, config, timer
        self.relative, self.metric, self.info, self.points = (f"{ns}/depth/relative", f"{ns}/depth/metric", f"{ns}/depth/camera_info", f"{ns}/points")
        self.frames_relative = self.frames_metric = self.clouds = 0
        self.topics_written: set[str] = set()

    def _write(self, topic: str, msg, bag_ns: int) -> None:
        self.writer.write(topic, msg, bag_ns)
        self.topics_written.add(topic)

    def write(self, frame: BagFrame, disparity: np.ndarray, metric: MetricFrame) -> None:
        from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

        t0 = time.perf_counter()
        header = cv.make_header(frame.frame_id, stamp_ns=frame.stamp_ns)
        self._write(self.relative, cv.numpy_to_image(np.ascontiguousarray(disparity, dtype=np.float32), "32FC1", header), frame.bag_ns)
        self.frames_relative += 1
        result = metric.result
        if result.valid and result.depth_m is not None:
            self._write(self.metric, cv.numpy_to_image(result.depth_m, "32FC1", header), frame.bag_ns)
            info = cv.intrinsics_to_camera_info(frame.intrinsics, stamp=header.stamp)
            info.header.frame_id = frame.frame_id
            self._write(self.info, info, frame.bag_ns)
            self.frames_metric += 1
            if metric.cloud is not None and self.config.write_clouds:
                cloud_frame = self.config.base_frame if metric.cloud.frame == "base" else frame.frame_id
                self._write(self.points, cv.points_to_cloud(metric.cloud.xyz, metric.cloud.rgb, cv.make_header(cloud_frame, stamp=header.stamp)), frame.bag_ns)
                self.clouds += 1
        level = DiagnosticStatus.OK if result.valid else DiagnosticStatus.WARN
        figures = metric.figures()
        status = DiagnosticStatus(
            level=level,
            name=DIAGNOSTIC_NAME,
            message=result.reason if result.valid else f"invalid scale: {result.reason}",
            hardware_id="metric_depth",
            values=[KeyValue(key=k, value=f"{v:.6g}" if isinstance(v, float) else str(v)) for k, v in sorted(figures.items())],
        )
        self._write("/diagnostics", DiagnosticArray(header=cv.make_header("", stamp_ns=frame.stamp_ns), status=[status]), frame.bag_ns)
        self.timer.since("serialise_write", t0)


class _OfflineDepth:
    """Buffers frames; runs ``infer_video`` per chunk (or once at the end)."""

    def __init__(self, backend, chunk: int, timer: _Timer):
        self.backend, self.chunk, self.timer = backend, chunk, timer
        self.frames: list[BagFrame] = []

    def add(self, frame: BagFrame) -> list[tuple[BagFrame, np.ndarray]]:
        self.frames.append(frame)
        return self._run() if self.chunk and len(self.frames) >= self.chunk else []

    def finish(self) -> list[tuple[BagFrame, np.ndarray]]:
        return self._run() if self.frames else []

    def _run(self) -> list[tuple[BagFrame, np.ndarray]]:
        frames, self.frames = self.frames, []
        t0 = time.perf_counter()
        rgb = np.stack([f.rgb for f in frames])
        raw = np.stack([f.raw_depth_m for f in frames]) if all(f.raw_depth_m is not None for f in frames) else None
        video = self.backend.infer_video(rgb, raw)
        self.timer.since("depth", t0)
        if video.disparity.shape[:3] != rgb.shape[:3]:
            raise BagError(f"depth backend returned disparity of shape {video.disparity.shape} for {rgb.shape[:3]} frames")
        return list(zip(frames, video.disparity, strict=True))


class _StreamingDepth:
    """Pushes frames through ``stream()``; results come back (maybe later) by stamp."""

    def __init__(self, backend, timer: _Timer):
        self.backend, self.timer = backend, timer
        self.pending: dict[int, deque[BagFrame]] = defaultdict(deque)

    def add(self, frame: BagFrame) -> list[tuple[BagFrame, np.ndarray]]:
        self.pending[frame.stamp_ns].append(frame)
        t0 = time.perf_counter()
        results = self.backend.stream(DepthFrame(frame.rgb, frame.stamp_ns, frame.raw_depth_m))
        self.timer.since("depth", t0)
        return self._match(results)

    def finish(self) -> list[tuple[BagFrame, np.ndarray]]:
        t0 = time.perf_counter()
        results = self.backend.flush()
        self.timer.since("depth", t0)
        return self._match(results)

    def _match(self, results) -> list[tuple[BagFrame, np.ndarray]]:
        out = []
        for r in results:
            queue = self.pending.get(r.stamp_ns)
            if queue:  # a stamp the backend invents (none do) has no frame to attach to
                out.append((queue.popleft(), r.disparity))
                if not queue:
                    del self.pending[r.stamp_ns]
        return out


def _metric_config(config: ReplayConfig, tags_config: str | Path | None) -> MetricPipelineConfig:
    pipeline = config.pipeline
    if tags_config:
        from dkt_perception.tags import TagConfig
        from dkt_stack.config import load_config

        pipeline = replace(pipeline, metric=replace(pipeline.metric, tags=load_config(TagConfig, tags_config)))
    return pipeline


def replay_bag(
    input_bag: str | Path,
    output_bag: str | Path,
    config: ReplayConfig | None = None,
    *,
    tags_config: str | Path | None = None,
    backend=None,
    progress: bool = True,
) -> ReplaySummary:
    """Replay ``input_bag`` through the depth backend and the metric step into a new bag ``output_bag``.

    Args:
        config: mode, topics, backend settings, metric pipeline; defaults = raw backend, offline.
        tags_config: optional YAML TagConfig file (as metric_depth_node's ``tags_config``).
        backend: an already built depth backend (else built from ``config.depth``).
        progress: show a tqdm progress bar over the bag's messages.

    Raises:
        BagError: unreadable/truncated bag, missing topic, mismatched sizes, an
            undecodable frame, or an output that exists without ``force``. A
            failure after the output was opened leaves it closed and readable,
            holding everything written so far.
        MissingWeightsError: DKT weights are missing (its message gives the fetch command).
    """
    from tqdm import tqdm

    config = config or ReplayConfig()
    input_bag, output_bag = Path(input_bag), Path(output_bag)
    if output_bag.resolve() == input_bag.resolve():
        raise BagError(f"output {output_bag} is the input bag; choose another path (the input is never modified)")
    pipeline = MetricPipeline(_metric_config(config, tags_config))
    reader = open_reader(input_bag)
    try:
        topics = resolve_topics(reader, config.color_topic or None, config.info_topic or None, config.raw_depth_topic or None)
        depth_cfg = config.depth
        if depth_cfg.backend in BACKENDS_USING_SENSOR_DEPTH and topics.raw_depth is None:
            raise BagError(f"the {depth_cfg.backend} backend needs raw depth, but the bag has no raw depth topic (pass --raw-depth-topic)")
        backend = backend or create_backend(depth_cfg.backend, depth_cfg)
        backend.reset()  # a backend passed in may hold another sequence's stream state
        storage = StoragePlugin.MCAP if config.storage == "mcap" else StoragePlugin.SQLITE3 if config.storage == "sqlite3" else storage_of(input_bag)
        decoded = [t for t in (topics.color, topics.info, topics.raw_depth) if t]
        import diagnostic_msgs.msg  # noqa: F401 - imported before the clock starts: the first frame should not pay for it
        import rclpy.serialization  # noqa: F401

        timer = _Timer()
        start = time.perf_counter()
        assembler = FrameAssembler(topics, slop_ns=int(config.sync_slop_s * 1e9))
        depth = _StreamingDepth(backend, timer) if config.mode == "streaming" else _OfflineDepth(backend, config.offline_chunk_frames, timer)
        copied = 0
        with BagWriter(output_bag, storage, force=config.force) as writer:
            out = _OutputWriter(writer, topics, config, timer)

            def emit(pairs) -> None:
                for frame, disparity in pairs:
                    try:
                        metric = pipeline.process(disparity, frame.rgb, frame.intrinsics, frame.stamp_ns, frame.raw_depth_m)
                    except FrameMismatchError as exc:
                        raise BagError(f"frame {frame.index} (stamp {frame.stamp_ns} ns): {exc}") from exc
                    for stage, ms in metric.timings_ms.items():
                        timer.add(stage, ms)
                    out.write(frame, disparity, metric)

            bar = tqdm(total=reader.message_count, unit="msg", desc=f"replay {input_bag.name}", disable=not progress)
            try:
                t_read = time.perf_counter()
                for conn, bag_ns, msg, raw in iter_connection_messages(reader, decoded):
                    t0 = timer.since("read", t_read)
                    writer.copy(conn, bag_ns, raw, reader.typestore)
                    copied += 1
                    t0 = timer.since("copy", t0)
                    if msg is not None:
                        frames = assembler.add(conn.topic, conn.msgtype, bag_ns, msg)
                        t0 = timer.since("decode", t0)
                        for frame in frames:
                            emit(depth.add(frame))
                    bar.update(1)
                    t_read = time.perf_counter()
                assembler.finish()
                emit(depth.finish())
            except DepthInputError as exc:
                raise BagError(f"depth backend rejected the input: {exc}") from exc
            finally:
                bar.close()
        wall = time.perf_counter() - start
    finally:
        reader.close()
    n = max(assembler.count, 1)
    return ReplaySummary(
        input=str(input_bag),
        output=str(output_bag),
        mode=config.mode,
        backend=getattr(backend, "name", depth_cfg.backend),
        topics={"color": topics.color, "info": topics.info, "raw_depth": topics.raw_depth, "ground_truth": topics.ground_truth},
        frames=assembler.count,
        colour_messages=assembler.colour_messages,
        frames_relative=out.frames_relative,
        frames_metric=out.frames_metric,
        clouds=out.clouds,
        messages_copied=copied,
        messages_written=writer.written,
        wall_s=wall,
        frames_per_second=assembler.count / wall if wall > 0 else 0.0,
        stage_ms={k: v / n for k, v in sorted(timer.total_ms.items())},
        output_topics=sorted(out.topics_written),
    )
