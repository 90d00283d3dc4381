"""The rig description: pose conversions and the shipped rig files."""

from __future__ import annotations

import numpy as np
import pytest

from dkt_stack.config import ConfigError
from dkt_stack.rig import load_rig, matrix_to_pose7, pose7_to_matrix, rig_dir
from dkt_stack.transforms import make_transform, quat_to_matrix


def test_pose7_round_trip():
    rng = np.random.default_rng(3)
    for _ in range(20):
        q = rng.normal(size=4)
        T = make_transform(quat_to_matrix(q), rng.uniform(-1, 1, 3))
        np.testing.assert_allclose(pose7_to_matrix(matrix_to_pose7(T)), T, atol=1e-12)


@pytest.mark.parametrize(
    ("pose", "message"),
    [([0, 0, 0, 0, 0, 0], "7 finite numbers"), ([0, 0, float("nan"), 0, 0, 0, 1], "7 finite numbers"), ([0, 0, 0, 0, 0, 0, 2], "not unit")],
)
def test_bad_pose_is_refused(pose, message):
    with pytest.raises(ValueError, match=message):
        pose7_to_matrix(pose)


def test_shipped_rigs_load():
    names = sorted(p.stem for p in rig_dir().glob("*.yaml"))
    assert "cobot_magic" in names
    for name in names:
        rig = load_rig(name)
        for arm in rig.arms.values():
            T = arm.T_base_camera
            np.testing.assert_allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-9)


def test_rig_file_errors_name_the_key(tmp_path):
    bad = tmp_path / "rig.yaml"
    bad.write_text("name: x\narms:\n  left:\n    base_frame: b\n    camera_pose: [0, 0, 0, 0, 0, 0]\n")
    with pytest.raises(ConfigError, match=r"arms\.left.*7 finite numbers"):
        load_rig(bad)
    with pytest.raises(ConfigError, match="no arm 'middle'"):
        load_rig("cobot_magic").arm("middle")
    with pytest.raises(ConfigError, match="no shipped rig"):
        load_rig("no_such_rig")
