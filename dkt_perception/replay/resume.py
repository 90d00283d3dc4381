"""Checkpoints of a replay's output, and what ``dkt-stack replay IN --out OUT --resume`` starts from.

While a replay runs, its writer makes the output durable about every
``checkpoint_s`` seconds, at a frame boundary, and then records in
``OUT/replay_progress.json`` (atomically) what is durable: the first
``messages`` messages of the output (write order) hold the first ``copies``
input messages and every output of the first ``frames`` frames, plus the
counters and the metric step's temporal filter after those frames. A replay
that finishes removes the file; one that fails or is killed keeps it.

Resuming (:func:`prepare_resume`): the unfinished output is moved aside to
``OUT.partial``, made readable and cut back to its checkpoint
(:func:`~dkt_perception.replay.bag_recovery.recover_bag`); the new run copies
it into a fresh ``OUT`` first, then continues after the checkpoint (see
:mod:`.bag_replay`), and removes ``OUT.partial`` when it finishes. Killed again
at any point, the next ``--resume`` finds the better of ``OUT`` and
``OUT.partial`` and goes on from there. The settings of the run (mode, topics,
backend, metric pipeline, storage, the input itself) are recorded too: a
resume with other settings is refused, since its output could not equal one
uninterrupted run.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dkt_perception.replay.bag_io import PROGRESS_FILE, BagError
from dkt_perception.replay.bag_recovery import recover_bag
from dkt_stack.atomic_files import write_text_atomic

PROGRESS_VERSION = 1
#: files a replay's output folder may hold (anything else: not ours, never deleted)
_OWN_FILES = ("*.db3", "*.db3-journal", "*.mcap", "metadata.yaml", "metadata.yaml.tmp", PROGRESS_FILE, ".*.tmp")


@dataclass
class Checkpoint:
    """What is durable in an output bag (see the module docstring)."""

    messages: int = 0
    copies: int = 0
    frames: int = 0
    counters: dict = field(default_factory=dict)  #: frames_relative, frames_metric, clouds, topics_written
    filter_state: dict | None = None  #: the metric pipeline's state after frame ``frames - 1``


@dataclass
class ResumePlan:
    """Where a resumed replay starts: copy ``source`` (None: nothing) into the new output, then go on after ``checkpoint``."""

    checkpoint: Checkpoint = field(default_factory=Checkpoint)
    source: Path | None = None
    complete: bool = False  #: the output is already a finished replay: nothing to do
    notes: list[str] = field(default_factory=list)


def partial_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def write_progress(folder: Path, settings: dict, checkpoint: Checkpoint) -> None:
    doc = {"version": PROGRESS_VERSION, "settings": settings, "checkpoint": asdict(checkpoint)}
    write_text_atomic(folder / PROGRESS_FILE, json.dumps(doc, indent=1, default=str) + "\n")


def read_progress(folder: Path) -> tuple[dict, Checkpoint] | None:
    """(settings, checkpoint) of an unfinished output, or None (no file, or an unreadable one)."""
    try:
        doc = json.loads((folder / PROGRESS_FILE).read_text())
        if doc.get("version") != PROGRESS_VERSION:
            return None
        return doc["settings"], Checkpoint(**doc["checkpoint"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def normalised(settings: dict) -> dict:
    """``settings`` as they read back from the progress file (tuples become lists, numbers stay exact)."""
    return json.loads(json.dumps(settings, default=str))


def _is_ours(folder: Path) -> bool:
    """A folder holding only what a replay writes (so it may be removed)."""
    return folder.is_dir() and all(any(p.match(pattern) for pattern in _OWN_FILES) for p in folder.iterdir())


def remove_output(folder: Path) -> None:
    """Delete a replay output folder, refusing anything that holds other files."""
    if not folder.exists():
        return
    if not _is_ours(folder):
        raise BagError(f"{folder} holds files a replay does not write; refusing to delete it", fix="move them away, or choose another output")
    shutil.rmtree(folder)


def _differences(recorded: dict, wanted: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(recorded) | set(wanted))
    out = []
    for k in keys:
        a, b = recorded.get(k), wanted.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}")
    return out


def prepare_resume(out: Path, settings: dict) -> ResumePlan:
    """Find what a resumed replay into ``out`` starts from; moves the unfinished output to ``OUT.partial``.

    Returns a plan with ``complete`` when ``out`` is a finished replay, with no
    ``source`` when nothing usable exists (the replay starts over).
    Raises BagError when the recorded settings differ from ``settings``.
    """
    out = Path(out)
    partial = partial_path(out)
    wanted = normalised(settings)
    candidates: list[tuple[Path, Checkpoint]] = []
    unusable: list[Path] = []
    for folder in (out, partial):
        if not folder.exists():
            continue
        found = read_progress(folder)
        if found is None:
            if folder == out and (out / "metadata.yaml").exists():
                if partial.exists():
                    remove_output(partial)  # a finished output makes any older partial one useless
                return ResumePlan(complete=True)
            unusable.append(folder)  # killed before its first checkpoint
            continue
        recorded, checkpoint = found
        diff = _differences(recorded, wanted)
        if diff:
            raise BagError(f"{folder} was replayed with other settings ({', '.join(diff[:6])}{' ...' if len(diff) > 6 else ''})",
                           fix="resume with the same options and config, or pass --force to start over")
        candidates.append((folder, checkpoint))
    for folder in unusable:
        remove_output(folder)
    if not candidates:
        return ResumePlan(notes=["nothing to resume from (no checkpoint yet): starting from the beginning"])
    best, checkpoint = max(candidates, key=lambda c: (c[1].messages, c[0] == out))
    for folder, _ in candidates:
        if folder != best:
            remove_output(folder)
    if best == out:
        out.rename(partial)
    recovery = recover_bag(partial, keep=checkpoint.messages)
    notes = [f"resuming after frame {checkpoint.frames} ({checkpoint.messages} messages kept"
             + (f", {recovery.dropped} after the checkpoint dropped" if recovery.dropped else "") + ")"]
    return ResumePlan(checkpoint=checkpoint, source=partial, notes=notes)
