"""Collection into a session: manual and automatic runs, rejections, interruption and continuation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dkt_grasping.calibration.collection import Collector, MotionError, run_auto, run_manual
from dkt_grasping.calibration.config import CalibrationConfig
from dkt_grasping.calibration.samples import Sample
from dkt_grasping.calibration.session import CalibrationSession, SessionInfo, SessionMismatch
from dkt_grasping.calibration.synthetic import SyntheticSource
from dkt_grasping.calibration.workflow import solve_session


def _session(folder, rig, mode="eye_in_hand"):
    return CalibrationSession.open_or_create(folder, SessionInfo(mode, "left", "synthetic", rig.board, rig.intrinsics))


def _config(rig, save_images=False):
    return CalibrationConfig(board=rig.board, save_images=save_images)


def test_manual_run_with_undo_and_rejection(tmp_path, rig_and_plan):
    rig, plan = rig_and_plan("eye_in_hand")
    session = _session(tmp_path / "s", rig)
    collector = Collector(session, _config(rig, save_images=True), rig.kinematics)
    source = SyntheticSource(rig, plan.qs[0], seed=1)
    poses = iter([plan.qs[0], plan.qs[1], plan.qs[2], plan.qs[2], plan.qs[3]])
    replies = iter(["", "", "d", "", "x", "", "q"])
    said = []

    def ask(_prompt):
        reply = next(replies)
        if reply in ("", "x"):
            source.move_to(next(poses))
            source.blur_sigma_px = 3.0 if reply == "x" else 0.0  # 'x' here: a capture while the arm shook
        return "" if reply == "x" else reply

    summary = run_manual(collector, source, ask, said.append)
    assert summary.accepted == 4 and summary.rejected == 1
    assert len(session.samples) == 3 and any("rejected: no usable board tag" in s and "blurred" in s for s in said)
    assert any(s.startswith("dropped the last sample") for s in said)
    # what is on disk is what the run holds: samples, the rejection, and the images
    again = CalibrationSession.open(tmp_path / "s")
    assert len(again.samples) == 3 and len(again.rejections) == 1 and "blurred" in again.rejections[0].reason
    for s, t in zip(again.samples, session.samples):
        np.testing.assert_allclose(s.q, t.q)
        np.testing.assert_allclose(s.tags[0].corners_px, t.tags[0].corners_px, atol=1e-4)
        assert (tmp_path / "s" / s.image).is_file()
    np.testing.assert_allclose(again.samples[0].T_base_flange, rig.flange(again.samples[0].q), atol=1e-12)


def test_interrupted_auto_run_continues(tmp_path, rig_and_plan):
    rig, plan = rig_and_plan("eye_to_hand", count=8)
    folder = tmp_path / "session"
    config = _config(rig)
    # first run: interrupted (Ctrl-C) at the 4th capture
    session = _session(folder, rig, "eye_to_hand")
    session.set_pose_plan(plan.qs)
    source = SyntheticSource(rig, plan.qs[0], seed=2, fail_after=3)
    with pytest.raises(KeyboardInterrupt):
        run_auto(Collector(session, config, rig.kinematics), source, source, plan.qs, lambda _q: True, print)
    on_disk = json.loads((folder / "samples.json").read_text())
    assert [s["pose_index"] for s in on_disk["samples"]] == [0, 1, 2]
    # second run, same folder: only the missing poses are visited
    resumed = _session(folder, rig, "eye_to_hand")
    assert resumed.resumed and len(resumed.samples) == 3 and resumed.captured_poses == {0, 1, 2}
    stored_plan = [np.asarray(q) for q in resumed.info.pose_plan]
    np.testing.assert_allclose(stored_plan, plan.qs, atol=1e-8)
    source = SyntheticSource(rig, plan.qs[2], seed=3)
    said = []
    summary = run_auto(Collector(resumed, config, rig.kinematics), source, source, stored_plan, lambda _q: True, said.append)
    assert summary.skipped == 3 and summary.accepted == 5 and source.captures == 5 and source.moves == 5
    assert sorted(s.pose_index for s in resumed.samples) == list(range(8))
    assert "continuing: 3 of 8 poses captured already" in said[0]
    # the continued session calibrates like an uninterrupted one
    result = solve_session(CalibrationSession.open(folder), config, rig.kinematics)
    from dkt_grasping.calibration.solver import pose_difference

    mm, deg = pose_difference(result.X, rig.X_true)
    assert len(result.used) == 8 and mm < 2.0 and deg < 0.2
    assert (folder / "result.json").is_file() and "refined" in (folder / "report.txt").read_text()


def test_auto_run_needs_confirmation_and_survives_failed_moves(tmp_path, rig_and_plan):
    rig, plan = rig_and_plan("eye_in_hand")
    session = _session(tmp_path / "s", rig)
    collector = Collector(session, _config(rig), rig.kinematics)
    source = SyntheticSource(rig, plan.qs[0], seed=4)
    summary = run_auto(collector, source, source, plan.qs[:4], lambda _q: False, print)
    assert source.moves == 0 and summary.accepted == 0 and "did not move" in summary.messages[0]

    class FlakyArm:
        def __init__(self):
            self.calls = 0

        def current_q(self):
            return source.current_q()

        def move_to(self, q):
            self.calls += 1
            if self.calls == 2:
                raise MotionError("no plan: the target collides")
            return source.move_to(q)

    summary = run_auto(collector, source, FlakyArm(), plan.qs[:4], lambda _q: True, print)
    assert summary.accepted == 3 and summary.failed_moves == 1
    assert session.rejections[-1].pose_index == 1 and "could not reach pose 1" in session.rejections[-1].reason
    # a continued run tries the pose that failed, and only that one
    summary = run_auto(collector, source, source, plan.qs[:4], lambda _q: True, print)
    assert summary.skipped == 3 and summary.accepted == 1 and sorted(session.captured_poses) == [0, 1, 2, 3]


def test_session_for_something_else_is_refused(tmp_path, rig_and_plan):
    rig, _ = rig_and_plan("eye_in_hand")
    _session(tmp_path / "s", rig)
    with pytest.raises(SessionMismatch, match="mode 'eye_in_hand' \\(now 'eye_to_hand'\\)"):
        _session(tmp_path / "s", rig, "eye_to_hand")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(SessionMismatch, match="not a calibration session"):
        _session(tmp_path / "other", rig)


def test_sample_json_round_trip(rig_and_plan, rng):
    rig, plan = rig_and_plan("eye_to_hand")
    s = rig.projected_sample(plan.qs[0], 0.3, rng)
    back = Sample.from_dict(json.loads(json.dumps(s.to_dict())))
    np.testing.assert_array_equal(back.q, s.q)
    np.testing.assert_array_equal(back.T_base_flange, s.T_base_flange)
    assert [t.id for t in back.tags] == [t.id for t in s.tags]
    np.testing.assert_allclose(back.tags[0].corners_px, s.tags[0].corners_px, atol=5e-5)
