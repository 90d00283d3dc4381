"""The grasp-trial database: SQLite in WAL mode with a versioned schema.

Schema (version :data:`SCHEMA_VERSION`, stored in ``PRAGMA user_version``):

``sessions``
    one row per session: ``id`` (text, e.g. ``20261121-061530-translucent-raw-3f2a``),
    ``created_at`` (ISO 8601 UTC), ``surface`` (the label as given: translucent,
    reflective, diffusive or a custom label), ``method`` (raw, dkt,
    depth_anything_v2, ground_truth), ``backend`` (simulation or rig), ``arm``,
    ``n_trials`` (planned), ``spec_json`` (the whole :class:`~dkt_grasping.trials.session.SessionSpec`,
    enough to resume), ``status`` (running, complete, aborted, interrupted).
``trials``
    one row per finished trial, unique per ``(session_id, trial_index)``:
    every input (``surface``, ``method``, ``backend``, ``weights_checksum``
    or ``n/a``, ``target``, ``seed``, ``parameters_json``), ``timings_json``
    (ms per stage), ``grasp_json`` (chosen grasp: base-frame pose, width,
    score), ``trajectory_json`` (planned trajectory summary), ``outcome``
    (success, failure, skipped, aborted), ``suggestion`` (from gripper
    feedback: success, failure or none), ``gripper_width_m`` (v2: the measured
    finger opening after closing and lifting, m; NULL when nothing ran),
    ``decided_by`` (v2: operator, physics; ground_truth in databases written by the
    geometric simulator that preceded the physics one), ``failure_stage`` (the
    pipeline stage that failed: capture, depth, metric_depth, grasp_detection,
    planning, execution, or grasp when the pipeline ran but nothing was held;
    reports group them into perception, detection, planning, execution, grasp),
    ``attempt`` (1 + retries), ``notes``, ``created_at``.
``artifacts``
    files saved with a trial (colour PNG, depth and cloud NPZ): ``trial_id``,
    ``kind``, ``path`` (relative to the database's folder).

Every trial and its artifacts are written in ONE transaction, so a process
killed mid-trial loses at most that trial. Opening a database with an older
``user_version`` runs the migrations in :data:`MIGRATIONS` in order, each in
its own transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2

OUTCOMES = ("success", "failure", "skipped", "aborted")
SUGGESTIONS = ("success", "failure", "none")
SESSION_STATUSES = ("running", "complete", "aborted", "interrupted")

#: Version 1, kept verbatim: migrations start from it and the tests build v1 files with it.
SCHEMA_V1 = """
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    surface TEXT NOT NULL,
    method TEXT NOT NULL,
    backend TEXT NOT NULL,
    arm TEXT NOT NULL,
    n_trials INTEGER NOT NULL CHECK (n_trials >= 1),
    spec_json TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'complete', 'aborted', 'interrupted'))
);
CREATE TABLE trials (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    trial_index INTEGER NOT NULL CHECK (trial_index >= 0),
    attempt INTEGER NOT NULL DEFAULT 1,
    seed INTEGER,
    surface TEXT NOT NULL,
    method TEXT NOT NULL,
    backend TEXT NOT NULL,
    weights_checksum TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    parameters_json TEXT NOT NULL DEFAULT '{}',
    timings_json TEXT NOT NULL DEFAULT '{}',
    grasp_json TEXT,
    trajectory_json TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'skipped', 'aborted')),
    suggestion TEXT NOT NULL CHECK (suggestion IN ('success', 'failure', 'none')),
    failure_stage TEXT,
    notes TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    UNIQUE (session_id, trial_index)
);
CREATE TABLE artifacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    trial_id INTEGER NOT NULL REFERENCES trials(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    path TEXT NOT NULL
);
CREATE INDEX trials_by_session ON trials(session_id, trial_index);
CREATE INDEX artifacts_by_trial ON artifacts(trial_id);
"""


def _migrate_v1_to_v2(conn: sqlite3.Connection) -> None:
    # v2 records who decided the outcome (v1 trials were all decided at the operator prompt) and the
    # gripper feedback the suggestion came from (unknown for v1 trials).
    conn.execute("ALTER TABLE trials ADD COLUMN decided_by TEXT NOT NULL DEFAULT 'operator'")
    conn.execute("ALTER TABLE trials ADD COLUMN gripper_width_m REAL")


#: from_version -> migration to from_version + 1 (runs inside a transaction).
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _migrate_v1_to_v2}


class TrialDatabaseError(ValueError):
    """A database that cannot be used (newer schema, not a trial database) or a bad record."""


class SessionNotFoundError(TrialDatabaseError, KeyError):
    """No session with that id."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class TrialRecord:
    """One finished trial as stored. JSON fields are plain dicts; artifacts map kind -> path relative to the database folder."""

    session_id: str
    trial_index: int
    outcome: str
    suggestion: str
    surface: str
    method: str
    backend: str
    weights_checksum: str = "n/a"
    target: str = ""
    seed: int | None = None
    attempt: int = 1
    parameters: dict[str, Any] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    grasp: dict[str, Any] | None = None
    trajectory: dict[str, Any] | None = None
    decided_by: str = "operator"
    gripper_width_m: float | None = None
    failure_stage: str | None = None
    notes: str = ""
    created_at: str = ""
    artifacts: dict[str, str] = field(default_factory=dict)
    id: int | None = None

    def __post_init__(self):
        if self.outcome not in OUTCOMES:
            raise TrialDatabaseError(f"trial outcome must be one of {', '.join(OUTCOMES)}, got {self.outcome!r}")
        if self.suggestion not in SUGGESTIONS:
            raise TrialDatabaseError(f"trial suggestion must be one of {', '.join(SUGGESTIONS)}, got {self.suggestion!r}")
        if self.trial_index < 0:
            raise TrialDatabaseError(f"trial_index must be >= 0, got {self.trial_index}")


@dataclass
class SessionRow:
    id: str
    created_at: str
    surface: str
    method: str
    backend: str
    arm: str
    n_trials: int
    spec: dict[str, Any]
    status: str


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, allow_nan=False)


class TrialDatabase:
    """Connection to one trial database file (created when missing, migrated when older).

    Use as a context manager or call :meth:`close`. Not shared between threads.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so each trial is exactly one transaction.
        self.conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=30.0)
        self.conn.row_factory = sqlite3.Row
        try:
            mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise TrialDatabaseError(f"{self.path}: could not switch to WAL journal mode (got {mode!r})")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self._ensure_schema()
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise TrialDatabaseError(f"{self.path} is not a usable SQLite trial database: {exc}") from exc
        except BaseException:
            self.conn.close()
            raise

    # ------------------------------------------------------------------ schema
    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def _ensure_schema(self) -> None:
        version = self.schema_version
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version == 0:
            if tables - {"sqlite_sequence"}:
                raise TrialDatabaseError(f"{self.path} holds tables {sorted(tables)} but no trial schema version: not a trial database")
            with self.transaction():
                # Statement by statement: executescript() would COMMIT on its own and break the transaction.
                for statement in SCHEMA_V1.split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute("PRAGMA user_version = 1")
            version = 1
        if version > SCHEMA_VERSION:
            raise TrialDatabaseError(
                f"{self.path} has trial schema version {version}, newer than this code's {SCHEMA_VERSION}: update dkt_stack to open it"
            )
        while version < SCHEMA_VERSION:
            with self.transaction():
                MIGRATIONS[version](self.conn)
                self.conn.execute(f"PRAGMA user_version = {version + 1}")
            version += 1

    # ------------------------------------------------------------------ transactions
    def transaction(self):
        """``with db.transaction():`` BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any exception)."""
        return _Transaction(self.conn)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> TrialDatabase:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ sessions
    def create_session(self, session_id: str, *, surface: str, method: str, backend: str, arm: str, n_trials: int, spec: dict) -> None:
        with self.transaction():
            if self.conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone():
                raise TrialDatabaseError(f"session {session_id!r} already exists in {self.path}")
            self.conn.execute(
                "INSERT INTO sessions (id, created_at, surface, method, backend, arm, n_trials, spec_json, status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running')",
                (session_id, utc_now(), surface, method, backend, arm, int(n_trials), _dumps(spec)),
            )

    def session(self, session_id: str) -> SessionRow:
        row = self.conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            known = [r[0] for r in self.conn.execute("SELECT id FROM sessions ORDER BY created_at DESC LIMIT 5")]
            raise SessionNotFoundError(f"no session {session_id!r} in {self.path} (latest: {', '.join(known) or 'none'})")
        return SessionRow(
            row["id"],
            row["created_at"],
            row["surface"],
            row["method"],
            row["backend"],
            row["arm"],
            row["n_trials"],
            json.loads(row["spec_json"]),
            row["status"],
        )

    def sessions(self) -> list[SessionRow]:
        return [self.session(r[0]) for r in self.conn.execute("SELECT id FROM sessions ORDER BY created_at, id")]

    def set_session_status(self, session_id: str, status: str) -> None:
        if status not in SESSION_STATUSES:
            raise TrialDatabaseError(f"session status must be one of {', '.join(SESSION_STATUSES)}, got {status!r}")
        with self.transaction():
            if self.conn.execute("UPDATE sessions SET status = ? WHERE id = ?", (status, session_id)).rowcount != 1:
                raise SessionNotFoundError(f"no session {session_id!r} in {self.path}")

    def next_trial_index(self, session_id: str) -> int:
        """Index of the first trial not yet recorded (trials are recorded in order)."""
        row = self.conn.execute("SELECT MAX(trial_index) FROM trials WHERE session_id = ?", (session_id,)).fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    # ------------------------------------------------------------------ trials
    def add_trial(self, record: TrialRecord) -> int:
        """Insert a trial and its artifacts in one transaction; returns the trial's row id."""
        created = record.created_at or utc_now()
        with self.transaction():
            cur = self.conn.execute(
                "INSERT INTO trials (session_id, trial_index, attempt, seed, surface, method, backend, weights_checksum, target,"
                " parameters_json, timings_json, grasp_json, trajectory_json, outcome, suggestion, decided_by, gripper_width_m, failure_stage,"
                " notes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.session_id,
                    record.trial_index,
                    record.attempt,
                    record.seed,
                    record.surface,
                    record.method,
                    record.backend,
                    record.weights_checksum,
                    record.target,
                    _dumps(record.parameters),
                    _dumps(record.timings_ms),
                    _dumps(record.grasp),
                    _dumps(record.trajectory),
                    record.outcome,
                    record.suggestion,
                    record.decided_by,
                    record.gripper_width_m,
                    record.failure_stage,
                    record.notes,
                    created,
                ),
            )
            trial_id = int(cur.lastrowid)
            self.conn.executemany(
                "INSERT INTO artifacts (trial_id, kind, path) VALUES (?, ?, ?)",
                [(trial_id, k, p) for k, p in sorted(record.artifacts.items())],
            )
        record.id, record.created_at = trial_id, created
        return trial_id

    def trials(self, session_id: str | None = None) -> list[TrialRecord]:
        """Recorded trials (of one session, or all), in session and index order."""
        where, args = ("WHERE session_id = ?", (session_id,)) if session_id is not None else ("", ())
        rows = self.conn.execute(f"SELECT * FROM trials {where} ORDER BY session_id, trial_index", args).fetchall()
        out = []
        for r in rows:
            arts = dict(self.conn.execute("SELECT kind, path FROM artifacts WHERE trial_id = ? ORDER BY kind", (r["id"],)).fetchall())
            out.append(
                TrialRecord(
                    session_id=r["session_id"],
                    trial_index=r["trial_index"],
                    outcome=r["outcome"],
                    suggestion=r["suggestion"],
                    surface=r["surface"],
                    method=r["method"],
                    backend=r["backend"],
                    weights_checksum=r["weights_checksum"],
                    target=r["target"],
                    seed=r["seed"],
                    attempt=r["attempt"],
                    parameters=json.loads(r["parameters_json"]),
                    timings_ms=json.loads(r["timings_json"]),
                    grasp=json.loads(r["grasp_json"]) if r["grasp_json"] else None,
                    trajectory=json.loads(r["trajectory_json"]) if r["trajectory_json"] else None,
                    decided_by=r["decided_by"],
                    gripper_width_m=r["gripper_width_m"],
                    failure_stage=r["failure_stage"],
                    notes=r["notes"],
                    created_at=r["created_at"],
                    artifacts=arts,
                    id=r["id"],
                )
            )
        return out


class _Transaction:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
        return False
