"""Seeded scene randomisation: same seed, same scene; targets of the asked class, in reach, never overlapping."""

from __future__ import annotations

import numpy as np
import pytest

from dkt_sim.objects import KINDS, LIBRARY, randomise_scene
from dkt_sim.rig_geometry import COBOT_MAGIC


def test_library_covers_every_class_and_shape():
    assert {k.surface for k in LIBRARY} == {"translucent", "reflective", "diffusive"}
    assert {k.shape for k in LIBRARY} == {"box", "cylinder", "bottle", "cup", "plate"}
    for k in LIBRARY:
        assert 0.01 < k.mass < 1.0 and 0.3 <= k.friction <= 1.0, k.name
        if k.graspable:  # fits the PiPER gripper's 70 mm opening across its narrowest side
            assert min(k.size[:2]) <= 0.066, k.name


@pytest.mark.parametrize("surface", ["translucent", "transparent", "reflective", "diffusive"])
def test_scenes_are_seeded_and_valid(surface):
    cls = "translucent" if surface == "transparent" else surface
    for seed in range(12):
        scene = randomise_scene(seed, surface)
        assert scene.to_json_dict() == randomise_scene(seed, surface).to_json_dict()
        target = scene.target_object
        assert target.surface == cls and KINDS[target.kind].graspable and 2 <= len(scene.objects) <= 4
        for i, a in enumerate(scene.objects):
            d = COBOT_MAGIC.nearest_base_distance(np.array([a.x, a.y]))
            assert COBOT_MAGIC.object_reach[0] <= d <= COBOT_MAGIC.object_reach[1]
            for b in scene.objects[i + 1 :]:
                assert np.hypot(a.x - b.x, a.y - b.y) >= a.footprint_radius + b.footprint_radius + 0.03 - 1e-9
            for t in COBOT_MAGIC.tags:
                assert np.hypot(a.x - t.x, a.y - t.y) > a.footprint_radius + 0.75 * t.size_m
    assert randomise_scene(1, surface).to_json_dict() != randomise_scene(2, surface).to_json_dict()


def test_named_targets_and_bad_requests():
    assert {randomise_scene(s, "anything", target_kinds=["soda_can"]).target_object.kind for s in range(5)} == {"soda_can"}
    with pytest.raises(ValueError, match="unknown object kind"):
        randomise_scene(0, "diffusive", target_kinds=["teapot"])
    with pytest.raises(ValueError, match="not one of the simulator's classes"):
        randomise_scene(0, "wood")
