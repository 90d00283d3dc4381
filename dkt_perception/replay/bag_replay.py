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

Per-image backends (``raw``, ``depth_anything_v2``: ``video_context`` False) give
the same result whatever frames they see together, so ``offline`` runs them
``PER_IMAGE_CHUNK`` frames per call: bounded memory, no wait for the whole bag.

Threads: the work runs as four stages joined by short bounded queues, so
reading, computing and writing overlap on a multi-core machine (numpy, OpenCV,
AprilTag, sqlite and file I/O release the GIL):
  1. the calling thread reads the bag, queues the input messages' copies and
     assembles frames;
  2. ``replay-depth``: depth backend, then the metric scale (in frame order: the
     temporal filter);
  3. ``replay-outputs``: point cloud, output messages, serialisation;
  4. ``replay-write``: every write to the output bag, in queue order (one writer).
A failing stage lets the stages after it finish what they hold and stops the
ones before it; an error in the input (a corrupt frame, a truncated bag) first
lets the frames read before it finish. The partial output is closed, readable,
and holds everything up to the failure.

Crash safety: about every ``checkpoint_s`` seconds, at a frame boundary, the
write stage makes the output durable and records the checkpoint beside it
(:mod:`.resume`). A replay killed hard (SIGKILL, OOM, power loss) or stopped by
an error continues with ``resume=True`` (``dkt-stack replay IN --out OUT
--resume``): the output is recovered (:mod:`.bag_recovery`) and cut back to its
checkpoint, copied into the new output, and the replay goes on after the last
complete frame; the result equals one uninterrupted run, message for message.
Frames before the checkpoint skip the depth backend unless it needs them as
context (DKT streaming, or the DKT chunk the checkpoint falls in), and the
metric step's temporal filter is restored, not recomputed.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import defaultdict, deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
from rosbags.rosbag2 import StoragePlugin

from dkt_perception.depth import DepthConfig, DepthFrame, DepthInputError, create_backend
from dkt_perception.metric_pipeline import FrameMismatchError, MetricFrame, MetricPipeline, MetricPipelineConfig
from dkt_perception.replay.bag_io import (
    PROGRESS_FILE,
    BagError,
    BagTopics,
    BagWriter,
    iter_connection_messages,
    open_reader,
    resolve_topics,
    serialise,
    storage_of,
)
from dkt_perception.replay.frames import BagFrame, FrameAssembler
from dkt_perception.replay.resume import Checkpoint, ResumePlan, partial_path, prepare_resume, remove_output, write_progress
from dkt_stack import conversions as cv
from dkt_stack.config import param

#: backends that need the sensor's depth (mirrors depth_node's BACKENDS_USING_SENSOR_DEPTH)
BACKENDS_USING_SENSOR_DEPTH = ("raw",)
DIAGNOSTIC_NAME = "replay: metric_depth"
#: offline mode: frames per infer_video call of a per-image backend (same result as any other chunking)
PER_IMAGE_CHUNK = 8
#: depth of the queues between the stages (frames, writes): enough to ride over jitter, little memory
FRAME_QUEUE = 4
WRITE_QUEUE = 32
#: a checkpoint (fsync of what was written since the last one) waits at least this many times its own duration:
#: it then costs the writer at most ~1/10 of its time, however slow the disk
CHECKPOINT_SPACING = 10.0


@dataclass
class ReplayConfig:
    """Everything ``replay_bag`` needs besides the two paths."""

    mode: Literal["offline", "streaming"] = param("offline", help="offline: infer_video over the sequence; streaming: the live node's stream()")
    color_topic: str = param("", help="colour image topic (Image or CompressedImage); empty = realsense2_camera's name")
    info_topic: str = param("", help="colour camera_info topic; empty = realsense2_camera's name")
    raw_depth_topic: str = param("", help="aligned raw depth topic (16UC1 mm, 32FC1 m or compressedDepth); empty = realsense2_camera's if present")
    storage: Literal["", "sqlite3", "mcap"] = param("", help="output storage; empty = the input's")
    sync_slop_s: float = param(0.005, help="largest header-stamp difference between a colour image and its raw depth, s")
    offline_chunk_frames: int = param(
        0, help="offline: frames per infer_video call; 0 = the whole bag in one call for DKT, 8 for per-image backends (raw, depth_anything_v2)"
    )
    base_frame: str = param("base_link", help="frame id of the cloud when pipeline.cloud.output_frame is base")
    write_clouds: bool = param(True, help="write <ns>/points")
    force: bool = param(False, help="overwrite an existing output bag")
    checkpoint_s: float = param(
        1.0, help="seconds between checkpoints of the output (what a killed replay keeps for --resume); never under 10x the last checkpoint's duration"
    )
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
    resumed_from_frame: int = 0  #: frames already complete in the output when this run started (``resume``)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class _Timer:
    """Accumulates wall time per stage (from any of the stage threads)."""

    def __init__(self) -> None:
        self.total_ms: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    def add(self, stage: str, ms: float) -> None:
        with self._lock:
            self.total_ms[stage] += ms

    def since(self, stage: str, t0: float) -> float:
        now = time.perf_counter()
        self.add(stage, (now - t0) * 1e3)
        return now


class _OutputWriter:
    """Builds and serialises the depth outputs of one frame, exactly the messages the two nodes publish.

    ``sink(topic, msgtype, bag_ns, cdr_bytes)`` receives them (set by :class:`_Stages`: the write stage's queue).
    """

    def __init__(self, topics: BagTopics, config: ReplayConfig, timer: _Timer):
        ns = topics.namespace
        self.config, self.timer = config, timer
        self.sink = None
        self.relative, self.metric, self.info, self.points = (f"{ns}/depth/relative", f"{ns}/depth/metric", f"{ns}/depth/camera_info", f"{ns}/points")
        self.frames_relative = self.frames_metric = self.clouds = 0
        self.topics_written: set[str] = set()

    def counters(self) -> dict:
        """The counts so far (a checkpoint records them; a resumed run starts from them)."""
        return {"frames_relative": self.frames_relative, "frames_metric": self.frames_metric, "clouds": self.clouds,
                "topics_written": sorted(self.topics_written)}

    def restore(self, counters: dict) -> None:
        self.frames_relative = int(counters.get("frames_relative", 0))
        self.frames_metric = int(counters.get("frames_metric", 0))
        self.clouds = int(counters.get("clouds", 0))
        self.topics_written = set(counters.get("topics_written", ()))

    def _write(self, topic: str, msg, bag_ns: int) -> None:
        msgtype, data = serialise(msg)
        self.sink(topic, msgtype, bag_ns, data)
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
        self.timer.since("serialise", t0)


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


_DONE = object()  #: end-of-stream marker on the stage queues


class _Aborted(Exception):
    """Inside a stage: the stage it feeds has stopped, or the output failed; stop quietly (the error is reported elsewhere)."""


class _Link:
    """A bounded queue into one stage; putting fails fast once that stage has stopped."""

    def __init__(self, size: int, aborted: threading.Event):
        self.queue: queue.Queue = queue.Queue(size)
        self.consumer_done = threading.Event()
        self._aborted = aborted

    def put(self, item) -> None:
        while True:
            if self._aborted.is_set() or self.consumer_done.is_set():
                raise _Aborted
            try:
                self.queue.put(item, timeout=0.05)
                return
            except queue.Full:
                continue  # still full: check again whether the consumer has stopped

    def get(self):
        while True:
            try:
                return self.queue.get(timeout=0.05)
            except queue.Empty:
                if self._aborted.is_set():
                    raise _Aborted from None


class _Stages:
    """The three worker threads of one replay and the bounded queues between them.

    frames -> ``replay-depth`` (depth backend, metric scale; in frame order)
           -> ``replay-outputs`` (cloud, output messages, serialisation)
           -> ``replay-write`` (the only thread touching the output bag; also gets the input copies)

    The calling thread hands over input copies (:meth:`copy`) and assembled frames
    (:meth:`frame`), then calls :meth:`finish` (drain, join, re-raise the first
    stage error) or :meth:`abort` (stop now). A failing stage passes the end
    marker on, so what it produced before is still written; a failing writer stops
    everything. ``writer`` must not be open yet: the write stage opens and closes it.
    """

    def __init__(self, writer: BagWriter, depth, pipeline: MetricPipeline, out: _OutputWriter, timer: _Timer, *,
                 start: Checkpoint | None = None, source: Path | None = None, on_checkpoint=None, checkpoint_s: float = 1.0,
                 needs_depth=None):
        self.writer, self.depth, self.pipeline, self.out, self.timer = writer, depth, pipeline, out, timer
        self.start = start or Checkpoint()  #: where this run starts (a resumed one: after the checkpoint's frames and copies)
        self.source = source  #: the recovered output of the interrupted run, copied first
        self.on_checkpoint = on_checkpoint  #: records a Checkpoint once what it describes is durable
        self.checkpoint_s = checkpoint_s
        self.needs_depth = needs_depth or (lambda index: True)  #: for frames before the start: does the backend need them as context?
        self.aborted = threading.Event()
        self.errors: list[BaseException] = []
        self.frames = _Link(FRAME_QUEUE, self.aborted)
        self.results = _Link(FRAME_QUEUE, self.aborted)
        self.writes = _Link(WRITE_QUEUE, self.aborted)
        out.sink = self._write
        self._threads = [
            threading.Thread(target=self._stage, args=(self.frames, self._depth_step, self._depth_done, self.results), name="replay-depth", daemon=True),
            threading.Thread(target=self._stage, args=(self.results, self._output_step, None, self.writes), name="replay-outputs", daemon=True),
            threading.Thread(target=self._write_stage, name="replay-write", daemon=True),
        ]
        for t in self._threads:
            t.start()

    # -- the calling thread's side
    def copy(self, conn, bag_ns: int, raw: bytes, typestore) -> None:
        self.writes.put(("copy", conn, bag_ns, raw, typestore))

    def frame(self, frame: BagFrame) -> None:
        self.frames.put(frame)

    def finish(self) -> None:
        """No more input: let the queued frames and writes finish, join, re-raise the first stage error."""
        try:
            self.frames.put(_DONE)
        except _Aborted:
            pass  # the depth stage has stopped already (it failed, or the writer did)
        for t in self._threads:
            t.join()
        if self.errors:
            raise self.errors[0]

    def abort(self) -> None:
        self.aborted.set()
        for t in self._threads:
            t.join(timeout=5.0)

    # -- the stages
    def _stage(self, inbox: _Link, step, done, outbox: _Link) -> None:
        try:
            while (item := inbox.get()) is not _DONE:
                step(item)
            if done is not None:
                done()
        except _Aborted:
            pass  # the stage this one feeds stopped first: its error is the one reported
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            inbox.consumer_done.set()
            with contextlib.suppress(_Aborted):
                outbox.put(_DONE)  # downstream finishes what it has, then stops

    def _scale(self, pairs) -> None:
        for frame, disparity in pairs:
            if frame.index < self.start.frames:
                continue  # context for the backend only: its outputs, and the filter after it, are in the checkpoint
            try:
                metric = self.pipeline.scale(disparity, frame.rgb, frame.intrinsics, frame.stamp_ns, frame.raw_depth_m)
            except FrameMismatchError as exc:
                raise BagError(f"frame {frame.index} (stamp {frame.stamp_ns} ns): {exc}") from exc
            self.results.put((frame, disparity, metric, self.pipeline.state()))

    def _depth_step(self, frame: BagFrame) -> None:
        if frame.index < self.start.frames and not self.needs_depth(frame.index):
            return  # complete in the output already, and no context for the frames after it
        self._scale(self.depth.add(frame))

    def _depth_done(self) -> None:
        self._scale(self.depth.finish())

    def _output_step(self, item) -> None:
        frame, disparity, metric, filter_state = item
        metric = self.pipeline.add_cloud(metric, frame.rgb, frame.intrinsics)
        for stage, ms in metric.timings_ms.items():
            self.timer.add(stage, ms)
        self.out.write(frame, disparity, metric)
        self.writes.put(("frame", frame.index, self.out.counters(), filter_state))  # every output of this frame is queued

    def _write(self, topic: str, msgtype: str, bag_ns: int, data: bytes) -> None:
        self.writes.put(("raw", topic, msgtype, bag_ns, data))

    def _write_stage(self) -> None:
        """Owns the output bag: opens it, writes in queue order, checkpoints, closes it (also on failure: it stays readable).

        sqlite3 connections belong to the thread that made them, hence open and close here.
        """
        boundary = None  # the last frame boundary: what a checkpoint may record
        try:
            with self.writer:
                copies = self.start.copies
                if self.source is not None:
                    self._prefill(self.source)
                boundary = replace(self.start, messages=self.writer.written)
                self._checkpoint(boundary)  # at once: from now on the folder is recognisably an unfinished replay
                gap = self.checkpoint_s
                last = time.monotonic()
                while (item := self.writes.get()) is not _DONE:
                    t0 = time.perf_counter()
                    if item[0] == "copy":
                        self.writer.copy(*item[1:])
                        copies += 1
                    elif item[0] == "raw":
                        self.writer.write_raw(*item[1:])
                    else:  # ("frame", index, counters, filter state): frame `index` is complete
                        boundary = Checkpoint(self.writer.written, copies, item[1] + 1, item[2], item[3])
                        if time.monotonic() - last >= gap:
                            gap = max(self._checkpoint(boundary) * CHECKPOINT_SPACING, self.checkpoint_s)
                            last = time.monotonic()
                    self.timer.since("write", t0)
        except _Aborted:
            pass  # abort(): stop now; the bag is still closed by the with-block
        except BaseException as exc:
            self.errors.append(exc)
            self.aborted.set()
        finally:
            self.writes.consumer_done.set()
            if boundary is not None and self.writer.closed and self.on_checkpoint is not None:
                with contextlib.suppress(OSError):  # closed: everything written is durable; the error reported is the first one
                    self.on_checkpoint(boundary)

    def _checkpoint(self, boundary: Checkpoint) -> float:
        """Make the output durable up to ``boundary`` and record it; returns the seconds it took."""
        t0 = time.monotonic()
        self.writer.checkpoint()
        if self.on_checkpoint is not None:
            self.on_checkpoint(boundary)
        return time.monotonic() - t0

    def _prefill(self, source: Path) -> None:
        """Copy the recovered output of the interrupted run (cut back to its checkpoint) into the new output, first."""
        reader = open_reader(source)
        try:
            for conn, bag_ns, raw in reader.messages():
                if self.aborted.is_set():
                    raise _Aborted
                self.writer.copy(conn, bag_ns, raw, reader.typestore)
        finally:
            reader.close()


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
    resume: bool = False,
) -> ReplaySummary:
    """Replay ``input_bag`` through the depth backend and the metric step into a new bag ``output_bag``.

    Args:
        config: mode, topics, backend settings, metric pipeline; defaults = raw backend, offline.
        tags_config: optional YAML TagConfig file (as metric_depth_node's ``tags_config``).
        backend: an already built depth backend (else built from ``config.depth``).
        progress: show a tqdm progress bar over the bag's messages.
        resume: continue an output left by a replay that was killed or failed
            (same input and settings), after its last checkpoint; with nothing to
            resume from, start from the beginning; a finished output is left as it is.

    Raises:
        BagError: unreadable/truncated bag, missing topic, mismatched sizes, an
            undecodable frame, an output that exists without ``force`` or
            ``resume``, or a resume with other settings. A failure after the
            output was opened leaves it closed and readable, holding everything
            written so far, and resumable.
        MissingWeightsError: DKT weights are missing (its message gives the fetch command).
    """
    from tqdm import tqdm

    config = config or ReplayConfig()
    input_bag, output_bag = Path(input_bag), Path(output_bag)
    if output_bag.resolve() == input_bag.resolve():
        raise BagError(f"output {output_bag} is the input bag", fix="choose another output (the input is never modified)")
    metric_config = _metric_config(config, tags_config)
    pipeline = MetricPipeline(metric_config)
    reader = open_reader(input_bag)
    try:
        topics = resolve_topics(reader, config.color_topic or None, config.info_topic or None, config.raw_depth_topic or None)
        depth_cfg = config.depth
        if depth_cfg.backend in BACKENDS_USING_SENSOR_DEPTH and topics.raw_depth is None:
            raise BagError(f"the {depth_cfg.backend} backend needs raw depth, but the bag has no raw depth topic",
                           fix="pass --raw-depth-topic, or choose another --backend")
        backend = backend or create_backend(depth_cfg.backend, depth_cfg)
        backend.reset()  # a backend passed in may hold another sequence's stream state
        storage = StoragePlugin.MCAP if config.storage == "mcap" else StoragePlugin.SQLITE3 if config.storage == "sqlite3" else storage_of(input_bag)
        backend_name = getattr(backend, "name", depth_cfg.backend)
        settings = {
            "input": str(input_bag.resolve()),
            "input_messages": reader.message_count,
            "config": asdict(replace(config, force=False, checkpoint_s=0.0, pipeline=metric_config)),
            "backend": backend_name,
            "storage": storage.name.lower(),
            "topics": asdict(topics),
        }
        plan = _plan(output_bag, settings, config.force, resume)
        if plan.complete:
            return _finished_summary(input_bag, output_bag, config, backend_name, topics)
        decoded = [t for t in (topics.color, topics.info, topics.raw_depth) if t]
        import diagnostic_msgs.msg  # noqa: F401 - imported before the clock starts: the first frame should not pay for it
        import rclpy.serialization  # noqa: F401

        timer = _Timer()
        start = time.perf_counter()
        assembler = FrameAssembler(topics, slop_ns=int(config.sync_slop_s * 1e9))
        video_context = getattr(backend, "video_context", True)
        if config.mode == "streaming":
            depth = _StreamingDepth(backend, timer)
        else:
            depth = _OfflineDepth(backend, config.offline_chunk_frames or (0 if video_context else PER_IMAGE_CHUNK), timer)
        first = plan.checkpoint
        needs_depth = _context_frames(first.frames, video_context, config.mode, getattr(depth, "chunk", 0))
        context = [i for i in range(first.frames) if needs_depth(i)]
        if context:
            hint = "; --chunk-frames N gives resume points every N frames" if config.mode == "offline" and not getattr(depth, "chunk", 0) else ""
            plan.notes.append(f"the {backend_name} backend sees frames {context[0]}..{context[-1]} again as context "
                              f"(their outputs are kept from the checkpoint{hint})")
        if first.filter_state is not None:
            pipeline.restore(first.filter_state)
        writer = BagWriter(output_bag, storage, force=config.force)  # opened, written and closed by the write stage
        out = _OutputWriter(topics, config, timer)
        out.restore(first.counters)
        stages = _Stages(writer, depth, pipeline, out, timer, start=first, source=plan.source, checkpoint_s=config.checkpoint_s,
                         on_checkpoint=lambda checkpoint: write_progress(output_bag, settings, checkpoint), needs_depth=needs_depth)
        copied = 0
        bar = tqdm(total=reader.message_count, unit="msg", desc=f"replay {input_bag.name}", disable=not progress)
        try:
            t_read = time.perf_counter()
            for conn, bag_ns, msg, raw in iter_connection_messages(reader, decoded):
                t0 = timer.since("read", t_read)
                if copied >= first.copies:  # the first ones are in the output already (resume)
                    stages.copy(conn, bag_ns, raw, reader.typestore)
                copied += 1
                if msg is not None:
                    frames = assembler.add(conn.topic, conn.msgtype, bag_ns, msg)
                    timer.since("decode", t0)
                    for frame in frames:
                        stages.frame(frame)  # waits while the depth stage is FRAME_QUEUE frames behind
                bar.update(1)
                t_read = time.perf_counter()
            assembler.finish()
        except _Aborted:
            pass  # a stage failed; finish() raises its error
        except BagError:
            with contextlib.suppress(Exception):  # the input error is the one to report
                stages.finish()  # the frames read before the bad input still go through
            raise
        except BaseException:
            stages.abort()
            raise
        finally:
            bar.close()
        try:
            stages.finish()
        except DepthInputError as exc:
            raise BagError(f"depth backend rejected the input: {exc}") from exc
        # finished: a plain bag from now on (no checkpoint, no leftover of an interrupted run)
        (output_bag / PROGRESS_FILE).unlink(missing_ok=True)
        if plan.source is not None:
            remove_output(plan.source)
        wall = time.perf_counter() - start
    finally:
        reader.close()
    n = max(assembler.count, 1)
    done = assembler.count - first.frames
    return ReplaySummary(
        input=str(input_bag),
        output=str(output_bag),
        mode=config.mode,
        backend=backend_name,
        topics={"color": topics.color, "info": topics.info, "raw_depth": topics.raw_depth, "ground_truth": topics.ground_truth},
        frames=assembler.count,
        colour_messages=assembler.colour_messages,
        frames_relative=out.frames_relative,
        frames_metric=out.frames_metric,
        clouds=out.clouds,
        messages_copied=copied,
        messages_written=writer.written,
        wall_s=wall,
        frames_per_second=done / wall if wall > 0 else 0.0,
        stage_ms={k: v / n for k, v in sorted(timer.total_ms.items())},
        output_topics=sorted(out.topics_written),
        resumed_from_frame=first.frames,
        notes=plan.notes,
    )


def _plan(output_bag: Path, settings: dict, force: bool, resume: bool) -> ResumePlan:
    """Where this run starts: from scratch (``force`` clears old outputs), or after the checkpoint of an interrupted run."""
    partial = partial_path(output_bag)
    if resume and not force:
        return prepare_resume(output_bag, settings)
    if force:
        remove_output(partial)  # the leftover of an interrupted resume; BagWriter removes the output itself
    elif partial.exists():
        raise BagError(f"{partial} holds an interrupted replay into {output_bag}", fix="continue it with --resume, or pass --force to start over")
    return ResumePlan()


def _context_frames(start: int, video_context: bool, mode: str, chunk: int):
    """For frames before ``start`` (complete in the output): must the depth backend still see them?

    Per-image backends: never. DKT streaming, or offline over the whole bag: all
    of them (each output depends on every frame before it). DKT offline in chunks:
    the frames of the chunk ``start`` falls in.
    """
    if not video_context:
        return lambda index: False
    if mode == "streaming" or chunk == 0:
        return lambda index: True
    first = (start // chunk) * chunk
    return lambda index: index >= first


def _finished_summary(input_bag: Path, output_bag: Path, config: ReplayConfig, backend_name: str, topics: BagTopics) -> ReplaySummary:
    """The summary of an output that is already a finished replay (``resume`` on it): counted from its index."""
    reader = open_reader(output_bag)
    try:
        counts: dict[str, int] = defaultdict(int)
        for c in reader.connections:
            counts[c.topic] += c.msgcount
    finally:
        reader.close()
    ns = topics.namespace
    relative = counts.get(f"{ns}/depth/relative", 0)
    derived = [f"{ns}/depth/relative", f"{ns}/depth/metric", f"{ns}/depth/camera_info", f"{ns}/points"]
    return ReplaySummary(
        input=str(input_bag), output=str(output_bag), mode=config.mode, backend=backend_name,
        topics={"color": topics.color, "info": topics.info, "raw_depth": topics.raw_depth, "ground_truth": topics.ground_truth},
        frames=relative, colour_messages=counts.get(topics.color, 0), frames_relative=relative,
        frames_metric=counts.get(f"{ns}/depth/metric", 0), clouds=counts.get(f"{ns}/points", 0),
        messages_copied=0, messages_written=0, wall_s=0.0, frames_per_second=0.0,
        output_topics=sorted(t for t in derived if counts.get(t)), resumed_from_frame=relative,
        notes=[f"{output_bag} is a finished replay: nothing to resume"],
    )
