"""The trial database: round trips, one transaction per trial, WAL, schema version and the v1 -> v2 migration."""

from __future__ import annotations

import sqlite3

import pytest

from dkt_grasping.trials.database import SCHEMA_V1, SCHEMA_VERSION, TrialDatabase, TrialDatabaseError, TrialRecord


def _record(session_id: str, index: int, outcome: str = "success", **kw) -> TrialRecord:
    return TrialRecord(
        session_id=session_id,
        trial_index=index,
        outcome=outcome,
        suggestion="success",
        surface="translucent",
        method="raw",
        backend="simulation",
        **kw,
    )


def _new_session(db: TrialDatabase, sid: str = "s1", n: int = 3) -> None:
    db.create_session(sid, surface="translucent", method="raw", backend="simulation", arm="simulated", n_trials=n, spec={"n_trials": n})


def test_round_trip_and_pragmas(tmp_path):
    path = tmp_path / "t.sqlite"
    with TrialDatabase(path) as db:
        assert db.schema_version == SCHEMA_VERSION == 2
        assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        _new_session(db)
        rec = _record(
            "s1",
            0,
            weights_checksum="ab" * 32,
            target="glass",
            seed=7,
            attempt=2,
            parameters={"w": [320, 240]},
            timings_ms={"total": 12.5},
            grasp={"width_m": 0.05},
            trajectory={"duration_s": 3.25},
            decided_by="ground_truth",
            gripper_width_m=0.0512,
            notes="fine",
            artifacts={"colour": "artifacts/s1/trial_0000/colour.png"},
        )
        db.add_trial(rec)
        _ = db.add_trial(_record("s1", 1, "failure", failure_stage="planning"))
    with TrialDatabase(path) as db:
        back = db.trials("s1")
        assert [r.trial_index for r in back] == [0, 1]
        assert back[0] == rec  # every field, artifacts and JSON included
        assert back[1].outcome == "failure" and back[1].failure_stage == "planning" and back[1].weights_checksum == "n/a"
        assert db.next_trial_index("s1") == 2
        assert db.session("s1").spec == {"n_trials": 3} and db.session("s1").status == "running"


def test_a_failed_trial_insert_changes_nothing(tmp_path):
    with TrialDatabase(tmp_path / "t.sqlite") as db:
        _new_session(db)
        db.add_trial(_record("s1", 0))
        with pytest.raises(sqlite3.IntegrityError):  # the same index twice
            db.add_trial(_record("s1", 0, artifacts={"colour": "x.png"}))
        assert len(db.trials()) == 1 and db.trials()[0].artifacts == {}
        assert db.conn.execute("SELECT COUNT(*) FROM artifacts").fetchone()[0] == 0
        with pytest.raises(TrialDatabaseError, match="outcome must be one of"):
            _record("s1", 1, outcome="maybe")
        with pytest.raises(TrialDatabaseError, match="already exists"):
            _new_session(db)
        with pytest.raises(KeyError, match="no session 'nope'"):
            db.session("nope")


def test_migration_from_v1_keeps_data_and_adds_decided_by(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_V1)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO sessions VALUES ('old', '2025-01-01T00:00:00Z', 'reflective', 'dkt', 'rig', 'piper', 2, '{}', 'running')")
    conn.execute(
        "INSERT INTO trials (session_id, trial_index, surface, method, backend, weights_checksum, outcome, suggestion, created_at)"
        " VALUES ('old', 0, 'reflective', 'dkt', 'rig', 'cafe', 'success', 'success', '2025-01-01T00:01:00Z')"
    )
    conn.commit()
    cols = [r[1] for r in conn.execute("PRAGMA table_info(trials)")]
    assert "decided_by" not in cols and "gripper_width_m" not in cols
    conn.close()
    with TrialDatabase(path) as db:
        assert db.schema_version == 2
        (old,) = db.trials("old")
        assert (old.outcome, old.method, old.weights_checksum, old.decided_by, old.gripper_width_m) == (
            "success",
            "dkt",
            "cafe",
            "operator",
            None,
        )
        assert db.next_trial_index("old") == 1
        db.add_trial(TrialRecord("old", 1, "failure", "failure", "reflective", "dkt", "rig", decided_by="operator"))
    with TrialDatabase(path) as db:  # opening a current file again migrates nothing
        assert db.schema_version == 2 and len(db.trials("old")) == 2


def test_newer_or_foreign_databases_are_refused(tmp_path):
    newer = tmp_path / "newer.sqlite"
    conn = sqlite3.connect(newer)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(TrialDatabaseError, match="schema version 99, newer"):
        TrialDatabase(newer)
    foreign = tmp_path / "foreign.sqlite"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE stuff (x)")
    conn.close()
    with pytest.raises(TrialDatabaseError, match="not a trial database"):
        TrialDatabase(foreign)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(TrialDatabaseError, match="not a usable SQLite"):
        TrialDatabase(junk)
