"""Writing a calibration into the rig file: atomic, comments kept, history with the previous value."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

from dkt_stack.config import ConfigError
from dkt_stack.rig import history_path, load_rig, matrix_to_pose7, pose7_to_matrix, read_history, rig_dir, update_rig_pose
from dkt_stack.transforms import make_transform, quat_to_matrix


@pytest.fixture
def rig_file(tmp_path):
    path = tmp_path / "cobot_magic.yaml"
    shutil.copy(rig_dir() / "cobot_magic.yaml", path)
    return path


def _pose(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_transform(quat_to_matrix(rng.normal(size=4)), rng.uniform(-0.5, 0.5, 3))


def test_camera_pose_written_with_history(rig_file):
    before = load_rig(rig_file)
    text_before = rig_file.read_text()
    T = _pose(1)
    update = update_rig_pose(rig_file, "left", "camera_pose", T, source="unit test", details={"rms_px": 0.3}, now="2030-01-01T00:00:00+00:00")
    after = load_rig(rig_file)
    np.testing.assert_allclose(after.arm("left").T_base_camera, T, atol=1e-6)
    assert update.comments_kept and update.previous == before.arm("left").camera_pose
    # nothing else changed: the other arm, frames, and every comment line of the file
    assert after.arm("right") == before.arm("right") and after.camera == before.camera
    comments = [ln for ln in text_before.splitlines() if ln.strip().startswith("#")]
    assert all(c in rig_file.read_text() for c in comments)
    assert "# camera_pose calibrated 2030-01-01T00:00:00+00:00 (unit test)" in rig_file.read_text()
    [entry] = read_history(rig_file)
    assert entry["previous"] == before.arm("left").camera_pose and entry["value"] == update.value
    assert entry["details"] == {"rms_px": 0.3} and history_path(rig_file).name == "cobot_magic.history.yaml"


def test_repeated_writes_keep_one_comment_and_every_previous_value(rig_file):
    values = []
    for k in range(3):
        values.append(update_rig_pose(rig_file, "right", "camera_pose", _pose(10 + k), source=f"run {k}").value)
    text = rig_file.read_text()
    assert text.count("# camera_pose calibrated") == 1 and "(run 2)" in text
    history = read_history(rig_file)
    assert [h["value"] for h in history] == values and [h["previous"] for h in history[1:]] == values[:-1]
    np.testing.assert_allclose(load_rig(rig_file).arm("right").camera_pose, values[-1])


def test_wrist_camera_pose_added(rig_file):
    assert load_rig(rig_file).arm("left").T_flange_wrist_camera is None
    T = _pose(5)
    update = update_rig_pose(rig_file, "left", "wrist_camera_pose", T, source="eye in hand")
    assert update.previous is None and update.comments_kept
    mount = load_rig(rig_file).arm("left")
    np.testing.assert_allclose(mount.T_flange_wrist_camera, T, atol=1e-6)
    assert load_rig(rig_file).arm("right").wrist_camera_pose is None


def test_block_style_file_rewritten_without_losing_values(tmp_path):
    path = tmp_path / "rig.yaml"
    path.write_text("name: r\narms:\n  a:\n    base_frame: b\n    camera_pose:\n      - 0.3\n      - 0.0\n      - 0.5\n      - 1.0\n      - 0.0\n      - 0.0\n      - 0.0\n")
    update = update_rig_pose(path, "a", "camera_pose", _pose(3), source="t")
    assert not update.comments_kept
    np.testing.assert_allclose(load_rig(path).arm("a").camera_pose, update.value)
    assert yaml.safe_load(path.read_text())["arms"]["a"]["base_frame"] == "b"


def test_bad_requests_change_nothing(rig_file):
    text = rig_file.read_text()
    with pytest.raises(ValueError, match="writes one of camera_pose, wrist_camera_pose"):
        update_rig_pose(rig_file, "left", "base_frame", _pose(1), source="t")
    with pytest.raises(ConfigError, match="no arm 'middle'"):
        update_rig_pose(rig_file, "middle", "camera_pose", _pose(1), source="t")
    bad = np.eye(4)
    bad[:3, :3] *= 2.0
    with pytest.raises(ValueError):
        update_rig_pose(rig_file, "left", "camera_pose", bad, source="t")
    assert rig_file.read_text() == text and not history_path(rig_file).exists()


def test_wrist_pose_checked_on_load(tmp_path):
    path = tmp_path / "rig.yaml"
    path.write_text("name: r\narms:\n  a:\n    base_frame: b\n    camera_pose: [0, 0, 0, 0, 0, 0, 1]\n    wrist_camera_pose: [0, 0, 0, 0, 0, 0, 3]\n")
    with pytest.raises(ConfigError, match="wrist_camera_pose of b.*not unit"):
        load_rig(path)
    assert matrix_to_pose7(pose7_to_matrix([0, 0, 0, 0, 0, 0, 1])) == [0.0] * 6 + [1.0]
