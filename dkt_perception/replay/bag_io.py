"""Reading and writing rosbag2 bags (sqlite3 and MCAP, any ROS 2 distro) with rosbags.

Input messages are deserialised with the bag's own type definitions, so a
Humble bag reads the same as a Kilted one; :mod:`dkt_stack.conversions` reads
the result by attribute. Output messages are rclpy messages serialised with
``rclpy.serialization`` (byte-identical CDR), written under Kilted's types.
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from dkt_stack.errors import UserError

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
#: image_transport sub-topics tried after the plain topic (compressed colour, compressedDepth depth)
TRANSPORT_SUFFIXES = ("/compressed", "/compressedDepth")

#: realsense2_camera names, without and with the /camera/camera prefix of its newer launch files
COLOR_CANDIDATES = ("/camera/color/image_raw", "/camera/camera/color/image_raw", "/color/image_raw")
INFO_CANDIDATES = ("/camera/color/camera_info", "/camera/camera/color/camera_info", "/color/camera_info")
RAW_DEPTH_CANDIDATES = (
    "/camera/aligned_depth_to_color/image_raw",
    "/camera/camera/aligned_depth_to_color/image_raw",
    "/aligned_depth_to_color/image_raw",
)
GT_DEPTH_CANDIDATES = ("/camera/ground_truth/depth", "/camera/camera/ground_truth/depth", "/ground_truth/depth")


class BagError(UserError):
    """A bag that cannot be used: missing, corrupt, truncated, or without the topics needed (``fix`` says what to do)."""


#: written beside a replay's output bag while it is not finished (see bag_replay's resume)
PROGRESS_FILE = "replay_progress.json"



@dataclass
class BagTopics:
    """Topics the replay reads; ``namespace`` is where the outputs go (e.g. ``/camera``)."""

    color: str
    info: str
    raw_depth: str | None
    ground_truth: str | None
    namespace: str


def open_reader(path: str | Path) -> AnyReader:
    """Open a rosbag2 folder (or a single .mcap/.db3 file's folder) for reading, with a clear error."""
    path = Path(path)
    if not path.exists():
        raise BagError(f"{path}: no such bag", fix="check the path (a rosbag2 folder holding metadata.yaml)")
    if path.is_dir() and not (path / "metadata.yaml").exists():
        if (path / PROGRESS_FILE).exists():
            raise BagError(f"{path}: the output of a replay that did not finish",
                           fix=f"continue it with `dkt-stack replay IN_BAG --out {path} --resume`")
        if any(path.glob("*.db3")) or any(path.glob("*.mcap")):
            raise BagError(f"{path}: a bag whose recorder was killed (no metadata.yaml)",
                           fix=f"rebuild its index with `dkt-stack replay --reindex {path}`")
        raise BagError(f"{path}: not a rosbag2 bag (no metadata.yaml)", fix="give the folder that holds metadata.yaml and the .db3/.mcap file")
    reader = AnyReader([path], default_typestore=get_typestore(Stores.ROS2_KILTED))
    try:
        reader.open()
    except Exception as exc:  # rosbags raises several types for unreadable bags
        raise BagError(f"{path}: cannot open bag ({type(exc).__name__}: {exc})",
                       fix=f"if its writer was killed, try `dkt-stack replay --reindex {path}`") from exc
    return reader


def _topic(reader: AnyReader, requested: str | None, candidates: Sequence[str], what: str, required: bool) -> str | None:
    topics = {c.topic: c.msgtype for c in reader.connections}
    if requested:
        names = [requested] + [requested.rstrip("/") + suffix for suffix in TRANSPORT_SUFFIXES]
        found = [n for n in names if n in topics]
        if not found:
            raise BagError(f"{what} topic {requested} is not in the bag (topics: {', '.join(sorted(topics))})")
        return found[0]
    for name in candidates:
        for n in (name, *(name + suffix for suffix in TRANSPORT_SUFFIXES)):
            if n in topics:
                return n
    if required:
        raise BagError(f"no {what} topic found (looked for {', '.join(candidates)}; topics in the bag: {', '.join(sorted(topics)) or 'none'})")
    return None


def resolve_topics(reader: AnyReader, color: str | None = None, info: str | None = None, raw_depth: str | None = None) -> BagTopics:
    """Pick the replay's topics: explicit names, else realsense2_camera's (with or without /camera/camera)."""
    color_topic = _topic(reader, color, COLOR_CANDIDATES, "colour image", True)
    info_topic = _topic(reader, info, INFO_CANDIDATES, "colour camera_info", True)
    raw_topic = _topic(reader, raw_depth, RAW_DEPTH_CANDIDATES, "raw depth", bool(raw_depth))
    gt_topic = _topic(reader, None, GT_DEPTH_CANDIDATES, "ground truth depth", False)
    base = color_topic.removesuffix("/compressed").removesuffix("/compressedDepth")
    namespace = base.removesuffix("/color/image_raw") if base.endswith("/color/image_raw") else ""
    msgtypes = {c.topic: c.msgtype for c in reader.connections}
    for topic in (color_topic, raw_topic, gt_topic):
        if topic is not None and msgtypes[topic] not in IMAGE_TYPES:
            raise BagError(f"topic {topic} has type {msgtypes[topic]}, expected sensor_msgs/msg/Image or CompressedImage")
    if msgtypes[info_topic] != "sensor_msgs/msg/CameraInfo":
        raise BagError(f"topic {info_topic} has type {msgtypes[info_topic]}, expected sensor_msgs/msg/CameraInfo")
    return BagTopics(color_topic, info_topic, raw_topic, gt_topic, namespace)


def iter_messages(reader: AnyReader, topics: Sequence[str] | None = None) -> Iterator[tuple[str, str, int, object, bytes]]:
    """(topic, msgtype, bag timestamp ns, deserialised message or None, raw bytes), in bag order.

    Only ``topics`` are deserialised (others pass through as bytes). A truncated
    or corrupt bag raises BagError naming the bag and the position.
    """
    for conn, timestamp, msg, raw in iter_connection_messages(reader, topics):
        yield conn.topic, conn.msgtype, timestamp, msg, raw


def iter_connection_messages(reader: AnyReader, topics: Sequence[str] | None = None) -> Iterator[tuple[object, int, object, bytes]]:
    """Like :func:`iter_messages` but yields the rosbags Connection (for :meth:`BagWriter.copy`)."""
    wanted = set(topics or ())
    count = 0
    try:
        for conn, timestamp, raw in reader.messages():
            msg = reader.deserialize(raw, conn.msgtype) if conn.topic in wanted else None
            count += 1
            yield conn, timestamp, msg, raw
    except BagError:
        raise
    except Exception as exc:
        raise BagError(f"bag is corrupt or truncated after {count} messages ({type(exc).__name__}: {exc})") from exc


def message_class(msgtype: str):
    """``sensor_msgs/msg/Image`` -> the rclpy message class."""
    package, kind, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError) as exc:
        raise BagError(f"message type {msgtype} is not installed (its Python package {package} is missing)") from exc


def storage_of(path: str | Path) -> StoragePlugin:
    """The storage plug-in of an existing bag folder."""
    path = Path(path)
    if list(path.glob("*.mcap")):
        return StoragePlugin.MCAP
    return StoragePlugin.SQLITE3


class BagWriter:
    """A rosbag2 writer that adds connections on first use and serialises rclpy messages.

    Refuses to overwrite an existing path unless ``force``; with ``force`` it
    removes only a previous bag (a folder holding ``metadata.yaml``, or a
    replay's unfinished output). Closing (also on an exception) writes the
    metadata, so a partial bag stays readable; :meth:`checkpoint` makes what was
    written so far survive even a hard kill (see :mod:`.bag_recovery`).
    """

    def __init__(self, path: str | Path, storage: StoragePlugin = StoragePlugin.SQLITE3, force: bool = False):
        self.path = Path(path)
        if self.path.exists():
            unfinished = (self.path / PROGRESS_FILE).exists()
            if not force:
                if unfinished:
                    raise BagError(f"{self.path} holds a replay that did not finish",
                                   fix="continue it with --resume, or pass --force to start over")
                raise BagError(f"{self.path} exists", fix="pass --force to overwrite it, or choose another output")
            if not ((self.path / "metadata.yaml").exists() or unfinished):
                raise BagError(f"{self.path} exists and is not a rosbag2 folder; refusing to delete it", fix="choose another output")
            shutil.rmtree(self.path)
        self._typestore = get_typestore(Stores.ROS2_KILTED)
        self._writer = Writer(self.path, version=9, storage_plugin=storage)
        self._connections: dict[str, object] = {}
        self.written = 0
        self.closed = False  #: True once close() has written the metadata

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def checkpoint(self) -> None:
        """Make every message written so far durable: a writer killed after this keeps them.

        Reaches into rosbags' storage plug-ins (their only private use here):
        the sqlite3 writer holds everything in one transaction until it closes,
        and the MCAP writer keeps the current chunk in memory.
        """
        storage = self._writer.storage
        if hasattr(storage, "conn"):  # sqlite3: commit (sqlite syncs the file and its journal)
            storage.conn.commit()
        else:  # MCAP: close the pending chunk, then push the file to disk
            if storage.chunk.bio.tell():
                storage.close_chunk()
            storage.bio.flush()
            os.fsync(storage.bio.fileno())

    def __exit__(self, *exc) -> None:
        self._writer.close()
        self.closed = True

    def _connection(self, topic: str, msgtype: str, msgdef: str | None = None, rihs01: str | None = None):
        conn = self._connections.get(topic)
        if conn is None:
            if msgdef is not None:
                conn = self._writer.add_connection(topic, msgtype, msgdef=msgdef, rihs01=rihs01 or "")
            else:
                conn = self._writer.add_connection(topic, msgtype, typestore=self._typestore)
            self._connections[topic] = conn
        return conn

    def write_raw(self, topic: str, msgtype: str, timestamp: int, data: bytes, msgdef: str | None = None, rihs01: str | None = None) -> None:
        """Write already-serialised bytes; without ``msgdef`` the type definition is Kilted's."""
        self._writer.write(self._connection(topic, msgtype, msgdef, rihs01), timestamp, data)
        self.written += 1

    def copy(self, source, timestamp: int, data: bytes, typestore=None) -> None:
        """Copy one message of the rosbags Connection ``source`` with its own type definition and QoS.

        Bags that store no definition (older Humble sqlite3 bags) get one from
        ``typestore`` (the reader's, which knows the bag's types), else Kilted's.
        """
        conn = self._connections.get(source.topic)
        if conn is None:
            msgdef = source.msgdef.data if source.msgdef is not None else ""
            qos = getattr(source.ext, "offered_qos_profiles", None) or ()
            if not msgdef or not source.digest:
                store = typestore or self._typestore
                msgdef, _ = store.generate_msgdef(source.msgtype, ros_version=2)
                digest = store.hash_rihs01(source.msgtype)
            else:
                digest = source.digest
            conn = self._writer.add_connection(source.topic, source.msgtype, msgdef=msgdef, rihs01=digest, offered_qos_profiles=qos)
            self._connections[source.topic] = conn
        self._writer.write(conn, timestamp, data)
        self.written += 1

    def write(self, topic: str, msg, timestamp: int) -> None:
        """Serialise an rclpy message and write it."""
        msgtype, data = serialise(msg)
        self.write_raw(topic, msgtype, timestamp, data)


def serialise(msg) -> tuple[str, bytes]:
    """An rclpy message -> (``pkg/msg/Name``, CDR bytes), for :meth:`BagWriter.write_raw` (thread-safe: no writer state)."""
    from rclpy.serialization import serialize_message

    module = type(msg).__module__.split(".")[0]
    return f"{module}/msg/{type(msg).__name__}", serialize_message(msg)
