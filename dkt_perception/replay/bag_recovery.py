"""Make a bag whose writer was killed readable again (``dkt-stack replay --reindex``, ``replay --resume``).

A rosbag2 writer killed hard (SIGKILL, OOM, power loss) leaves its storage
file but no ``metadata.yaml``, and an MCAP file without its summary and
footer; rosbags and ``ros2 bag`` then refuse the whole bag. :func:`recover_bag`
rebuilds what is missing from what is complete:

* sqlite3: opening the database rolls back an unfinished transaction (sqlite's
  journal), so what remains is exactly the last commit; the index
  (``metadata.yaml``: topics, types, QoS, counts, times) is rebuilt from its tables;
* MCAP: the complete records (chunks, with the schemas and channels inside
  them) are copied into a new file, a summary (schemas, channels, chunk index,
  statistics) and footer are appended, the new file replaces the old one
  atomically, and ``metadata.yaml`` is written.

``keep`` truncates to the first ``keep`` messages in write order (what a
replay checkpoint recorded as durable); a bag that ends short of it is an error.
Recovering twice gives the same bag.
"""

from __future__ import annotations

import io
import sqlite3
import struct
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dkt_perception.replay.bag_io import BagError
from dkt_stack.atomic_files import atomic_path, write_text_atomic

MCAP_MAGIC = b"\x89MCAP0\r\n"
_HEADER, _FOOTER, _SCHEMA, _CHANNEL, _MESSAGE, _CHUNK = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
_MESSAGE_INDEX, _CHUNK_INDEX, _METADATA, _STATISTICS, _SUMMARY_OFFSET, _DATA_END = 0x07, 0x08, 0x0C, 0x0B, 0x0E, 0x0F
#: records of the data section copied as they are (message indexes are optional and are dropped)
_DATA_RECORDS = (_SCHEMA, _CHANNEL, _MESSAGE, _CHUNK, _METADATA)


@dataclass
class TopicInfo:
    """One topic of a recovered bag, as ``metadata.yaml`` lists it."""

    name: str
    msgtype: str
    serialization_format: str = "cdr"
    qos: str = ""  #: offered_qos_profiles as the storage holds it (YAML text)
    digest: str = ""  #: type_description_hash (RIHS01); empty when unknown
    count: int = 0


@dataclass
class Recovery:
    """What :func:`recover_bag` found: messages kept, whether anything had to be rebuilt, the storage file."""

    path: Path
    storage: str
    messages: int
    rebuilt: bool
    dropped: int = 0  #: complete messages after ``keep`` that were removed
    topics: list[TopicInfo] = field(default_factory=list)


def storage_file(path: Path) -> tuple[Path, str]:
    """The bag folder's one storage file and its plug-in name."""
    files = sorted(path.glob("*.mcap")) + sorted(path.glob("*.db3"))
    if len(files) != 1:
        found = ", ".join(p.name for p in files) or "none"
        raise BagError(f"{path}: expected one .db3 or .mcap file, found {found}", fix="recover split bags with `ros2 bag reindex`")
    return files[0], "mcap" if files[0].suffix == ".mcap" else "sqlite3"


def recover_bag(path: str | Path, keep: int | None = None) -> Recovery:
    """Rebuild the index of the bag folder ``path`` (see the module docstring); with ``keep``, truncate to that many messages.

    A bag that already has ``metadata.yaml`` is left as it is unless ``keep``
    asks for fewer messages than it holds.
    """
    path = Path(path)
    if not path.is_dir():
        raise BagError(f"{path}: no such bag folder", fix="check the path")
    file, storage = storage_file(path)
    if storage == "sqlite3":
        return _recover_sqlite(path, file, keep)
    return _recover_mcap(path, file, keep)


# ----------------------------------------------------------------- sqlite3


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def _recover_sqlite(path: Path, file: Path, keep: int | None) -> Recovery:
    has_metadata = (path / "metadata.yaml").is_file()
    try:
        conn = sqlite3.connect(file)  # a hot journal from the killed writer is rolled back here
        try:
            total = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
            if keep is not None and total < keep:
                raise BagError(f"{file}: holds {total} complete messages, fewer than the {keep} its checkpoint recorded",
                               fix="the bag was modified after the replay; start over with --force")
            dropped = 0
            if keep is not None and total > keep:
                with conn:  # one transaction: a kill here leaves the bag as it was
                    conn.execute("DELETE FROM messages WHERE id NOT IN (SELECT id FROM messages ORDER BY id LIMIT ?)", (keep,))
                dropped = total - keep
            if has_metadata and not dropped:
                return Recovery(path, "sqlite3", total, rebuilt=False)
            cols = _columns(conn, "topics")
            digest = "type_description_hash" if "type_description_hash" in cols else "''"
            qos = "offered_qos_profiles" if "offered_qos_profiles" in cols else "''"
            topics = {
                row[0]: TopicInfo(row[1], row[2], row[3], row[4] or "", row[5] or "")
                for row in conn.execute(f"SELECT id, name, type, serialization_format, {qos}, {digest} FROM topics ORDER BY id")
            }
            for topic_id, count in conn.execute("SELECT topic_id, COUNT(*) FROM messages GROUP BY topic_id"):
                if topic_id in topics:
                    topics[topic_id].count = count
            start, end, count = conn.execute("SELECT MIN(timestamp), MAX(timestamp), COUNT(*) FROM messages").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BagError(f"{file}: the sqlite3 database is damaged ({exc})", fix="nothing can be recovered from it; start over with --force") from exc
    _write_metadata(path, "sqlite3", file.name, list(topics.values()), count, start, end)
    return Recovery(path, "sqlite3", count, rebuilt=True, dropped=dropped, topics=list(topics.values()))


# ----------------------------------------------------------------- MCAP


def _u16(b: bytes, o: int) -> int:
    return struct.unpack_from("<H", b, o)[0]


def _u32(b: bytes, o: int) -> int:
    return struct.unpack_from("<I", b, o)[0]


def _u64(b: bytes, o: int) -> int:
    return struct.unpack_from("<Q", b, o)[0]


def _string(b: bytes, o: int) -> tuple[str, int]:
    n = _u32(b, o)
    return b[o + 4 : o + 4 + n].decode(), o + 4 + n


def _record(op: int, content: bytes) -> bytes:
    return struct.pack("<BQ", op, len(content)) + content


def _pack_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<I", len(data)) + data


@dataclass
class _McapScan:
    header: bytes = b""
    schemas: dict[int, bytes] = field(default_factory=dict)  #: id -> record content
    channels: dict[int, bytes] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    messages: int = 0
    start: int = 2**63 - 1
    end: int = 0


def _scan_records(data: bytes, scan: _McapScan, index: dict[int, list[tuple[int, int]]] | None = None) -> int:
    """Schemas, channels and messages of a run of records (a chunk's content or the data section); returns messages.

    ``index`` receives, per channel, (log time, record offset) of each message (a chunk's message index).
    """
    o, n = 0, 0
    while o + 9 <= len(data):
        op, length = data[o], _u64(data, o + 1)
        body = data[o + 9 : o + 9 + length]
        if op == _SCHEMA:
            scan.schemas.setdefault(_u16(body, 0), body)
        elif op == _CHANNEL:
            scan.channels.setdefault(_u16(body, 0), body)
        elif op == _MESSAGE:
            channel, log_time = _u16(body, 0), _u64(body, 6)
            scan.counts[channel] += 1
            scan.start, scan.end = min(scan.start, log_time), max(scan.end, log_time)
            if index is not None:
                index.setdefault(channel, []).append((log_time, o))
            n += 1
        o += 9 + length
    return n


def _chunk_messages(body: bytes, scan: _McapScan) -> tuple[int, tuple]:
    """Messages in one chunk record's content, and its index (times, compression, sizes, per-channel message offsets)."""
    from rosbags.rosbag2.storage_mcap import decompress

    start, end, size, crc = struct.unpack_from("<QQQI", body, 0)
    compression, o = _string(body, 28)
    compressed = _u64(body, o)
    records = decompress(body[o + 8 : o + 8 + compressed], compression, size, crc)
    messages: dict[int, list[tuple[int, int]]] = {}
    return _scan_records(records, scan, messages), (start, end, compression, compressed, size, messages)


def _recover_mcap(path: Path, file: Path, keep: int | None) -> Recovery:
    has_metadata = (path / "metadata.yaml").is_file()
    scan = _McapScan()
    kept: list[tuple[int, bytes, tuple | None]] = []  # (opcode, record content, chunk index fields)
    total_size = file.stat().st_size
    complete_file = False
    with file.open("rb") as f:
        if f.read(8) != MCAP_MAGIC:
            raise BagError(f"{file}: not an MCAP file (bad magic)", fix="nothing can be recovered from it; start over with --force")
        pos = 8
        while pos + 9 <= total_size:
            op, length = struct.unpack("<BQ", f.read(9))
            if pos + 9 + length > total_size:
                break  # the record the writer was in the middle of
            if op in (_DATA_END, _FOOTER, _SUMMARY_OFFSET, _CHUNK_INDEX, _STATISTICS):
                complete_file = True  # the summary section starts: the writer closed the file
                break
            if keep is not None and scan.messages >= keep and op in (_MESSAGE, _CHUNK):
                break
            body = f.read(length)
            pos += 9 + length
            if op == _HEADER:
                scan.header = body
                continue
            if op not in _DATA_RECORDS:
                continue  # message indexes (rebuilt readers do without them), attachments
            before = scan.messages
            if op == _CHUNK:
                n, index = _chunk_messages(body, scan)
                scan.messages += n
                kept.append((op, body, index))
            else:
                scan.messages += _scan_records(_record(op, body), scan)
                kept.append((op, body, None))
            if keep is not None and scan.messages > keep:
                raise BagError(f"{file}: message {keep} (the checkpoint) falls inside a chunk ({before}..{scan.messages})",
                               fix="the bag was not written by this replay; start over with --force")
    if not scan.header:
        raise BagError(f"{file}: the MCAP header is missing or truncated", fix="nothing can be recovered from it; start over with --force")
    if keep is not None and scan.messages < keep:
        raise BagError(f"{file}: holds {scan.messages} complete messages, fewer than the {keep} its checkpoint recorded",
                       fix="the bag was modified after the replay; start over with --force")
    dropped = 0
    if complete_file and has_metadata and (keep is None or keep == _metadata_count(path)):
        return Recovery(path, "mcap", scan.messages, rebuilt=False)
    if keep is not None:
        dropped = max(_metadata_count(path) - keep, 0) if has_metadata else 0
    _write_mcap(file, scan, kept)
    topics = _mcap_topics(scan)
    _write_metadata(path, "mcap", file.name, topics, scan.messages, scan.start if scan.messages else 0, scan.end)
    return Recovery(path, "mcap", scan.messages, rebuilt=True, dropped=dropped, topics=topics)


def _metadata_count(path: Path) -> int:
    try:
        info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        return int(info["message_count"])
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return 0


def _write_mcap(file: Path, scan: _McapScan, kept: list[tuple[int, bytes, tuple | None]]) -> None:
    """A complete MCAP with the ``kept`` data records, then a summary, replacing ``file`` atomically."""
    with atomic_path(file) as tmp, tmp.open("wb") as out:
        out.write(MCAP_MAGIC)
        out.write(_record(_HEADER, scan.header))
        chunk_indexes = []
        for op, body, index in kept:
            offset = out.tell()
            out.write(_record(op, body))
            if index is not None:
                start, end, compression, compressed, size, messages = index
                length = out.tell() - offset
                offsets = []  # readers find a chunk's channels through its message index records
                for channel, entries in sorted(messages.items()):
                    offsets.append(struct.pack("<HQ", channel, out.tell()))
                    table = b"".join(struct.pack("<QQ", t, o) for t, o in entries)
                    out.write(_record(_MESSAGE_INDEX, struct.pack("<HI", channel, len(table)) + table))
                table = b"".join(offsets)
                chunk_indexes.append(struct.pack("<QQQQ", start, end, offset, length) + struct.pack("<I", len(table)) + table
                                     + struct.pack("<Q", out.tell() - offset - length) + _pack_string(compression)
                                     + struct.pack("<QQ", compressed, size))
        out.write(_record(_DATA_END, struct.pack("<I", 0)))
        summary_start = out.tell()
        groups = []
        for op, bodies in ((_SCHEMA, scan.schemas.values()), (_CHANNEL, scan.channels.values()), (_CHUNK_INDEX, chunk_indexes)):
            group_start = out.tell()
            for body in bodies:
                out.write(_record(op, body))
            if out.tell() > group_start:
                groups.append((op, group_start, out.tell() - group_start))
        counts = b"".join(struct.pack("<HQ", cid, n) for cid, n in sorted(scan.counts.items()))
        stats_start = out.tell()
        out.write(_record(_STATISTICS, struct.pack("<QHIIIIQQ", scan.messages, len(scan.schemas), len(scan.channels), 0, 0,
                                                   len(chunk_indexes), scan.start if scan.messages else 0, scan.end)
                          + struct.pack("<I", len(counts)) + counts))
        groups.append((_STATISTICS, stats_start, out.tell() - stats_start))
        offsets_start = out.tell()
        for op, start, length in groups:
            out.write(_record(_SUMMARY_OFFSET, struct.pack("<BQQ", op, start, length)))
        out.write(_record(_FOOTER, struct.pack("<QQI", summary_start, offsets_start, 0)))
        out.write(MCAP_MAGIC)
        out.flush()


def _mcap_topics(scan: _McapScan) -> list[TopicInfo]:
    schemas = {}
    for sid, body in scan.schemas.items():
        name, o = _string(body, 2)
        encoding, o = _string(body, o)
        n = _u32(body, o)
        schemas[sid] = (name, encoding, body[o + 4 : o + 4 + n].decode())
    topics = []
    for cid, body in sorted(scan.channels.items()):
        schema_id = _u16(body, 2)
        topic, o = _string(body, 4)
        encoding, o = _string(body, o)
        meta_len, o = _u32(body, o), o + 4
        meta, end, qos = body[o : o + meta_len], 0, ""
        while end < len(meta):
            key, end = _string(meta, end)
            value, end = _string(meta, end)
            if key == "offered_qos_profiles":
                qos = value
        msgtype, schema_encoding, msgdef = schemas.get(schema_id, ("", "", ""))
        topics.append(TopicInfo(topic, msgtype, encoding, qos, _digest(msgtype, schema_encoding, msgdef), scan.counts.get(cid, 0)))
    return topics


def _digest(msgtype: str, encoding: str, msgdef: str) -> str:
    """RIHS01 type hash of a message definition (as the rosbags reader checks it); "" when it cannot be computed."""
    if encoding != "ros2msg" or not msgdef:
        return ""  # an IDL definition (rare in bags): the reader accepts an empty hash
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    try:
        store = get_typestore(Stores.EMPTY)
        store.register(get_types_from_msg(msgdef, msgtype))
        return store.hash_rihs01(msgtype)
    except Exception:  # an unparsable definition: leave the hash out rather than fail the recovery
        return ""


# ----------------------------------------------------------------- metadata.yaml


def _qos_list(text: str) -> list:
    try:
        value = yaml.safe_load(text) if text else []
    except yaml.YAMLError:
        return []
    return value if isinstance(value, list) else []


def _write_metadata(path: Path, storage: str, filename: str, topics: list[TopicInfo], count: int, start: int | None, end: int | None) -> None:
    """``metadata.yaml`` (rosbag2 version 9) for a single-file bag, written atomically."""
    start = int(start or 0) if count else 0
    duration = max(int(end or 0) - start, 0) if count else 0
    info = {
        "version": 9,
        "storage_identifier": storage,
        "relative_file_paths": [filename],
        "duration": {"nanoseconds": duration},
        "starting_time": {"nanoseconds_since_epoch": start},
        "message_count": count,
        "topics_with_message_count": [
            {
                "topic_metadata": {
                    "name": t.name,
                    "type": t.msgtype,
                    "serialization_format": t.serialization_format or "cdr",
                    "offered_qos_profiles": _qos_list(t.qos),
                    "type_description_hash": t.digest,
                },
                "message_count": t.count,
            }
            for t in topics
        ],
        "compression_format": "",
        "compression_mode": "",
        "files": [{"path": filename, "starting_time": {"nanoseconds_since_epoch": start}, "duration": {"nanoseconds": duration},
                   "message_count": count}],
        "custom_data": None,
        "ros_distro": "rosbags",
    }
    text = io.StringIO()
    yaml.safe_dump({"rosbag2_bagfile_information": info}, text, sort_keys=False)
    write_text_atomic(path / "metadata.yaml", text.getvalue())
