"""The one config loader: types, unknown keys, missing keys, file errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from dkt_stack.config import ConfigError, field_help, from_dict, load_config, param, to_dict


@dataclass
class Inner:
    size_m: float = param(0.05, help="tag size (m)")
    ids: list[int] = param(default_factory=lambda: [0, 1], help="ids")


@dataclass
class Outer:
    name: str = param(help="required name")
    mode: Literal["offline", "streaming"] = param("offline", help="mode")
    steps: int = param(5, help="steps")
    scale: float | None = param(None, help="optional")
    inner: Inner = param(default_factory=Inner, help="nested")
    pair: tuple[int, int] = param((1, 2), help="a pair")
    table: dict[str, float] = field(default_factory=dict)


def test_valid_nested_config_and_round_trip():
    cfg = from_dict(Outer, {"name": "x", "mode": "streaming", "steps": 3, "scale": 2, "inner": {"size_m": 1, "ids": [4]}, "pair": [3, 4]})
    assert cfg == Outer(name="x", mode="streaming", steps=3, scale=2.0, inner=Inner(size_m=1.0, ids=[4]), pair=(3, 4))
    assert isinstance(cfg.scale, float) and isinstance(cfg.inner.size_m, float)
    assert from_dict(Outer, to_dict(cfg)) == cfg
    assert field_help(Inner) == {"size_m": "tag size (m)", "ids": "ids"}


@pytest.mark.parametrize(
    ("data", "key", "message"),
    [
        ({"name": "x", "stepz": 3}, "stepz", "unknown key"),
        ({}, "name", "missing required key"),
        ({"name": "x", "steps": "5"}, "steps", "expected an integer"),
        ({"name": "x", "steps": True}, "steps", "expected an integer"),
        ({"name": "x", "mode": "fast"}, "mode", "expected one of 'offline', 'streaming'"),
        ({"name": "x", "inner": {"size_m": "big"}}, "inner.size_m", "expected a number"),
        ({"name": "x", "inner": {"ids": [1, "a"]}}, "inner.ids[1]", "expected an integer"),
        ({"name": "x", "inner": {"colour": 1}}, "inner.colour", "unknown key"),
        ({"name": "x", "pair": [1]}, "pair", "expected 2 items"),
        ({"name": 3}, "name", "expected a string"),
    ],
)
def test_errors_name_file_and_key(data, key, message):
    with pytest.raises(ConfigError) as info:
        from_dict(Outer, data, source="robot.yaml")
    assert info.value.key == key
    assert str(info.value).startswith(f"robot.yaml: key '{key}': {message}")


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="missing.yaml: file not found"):
        load_config(Outer, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML \(line 2"):
        load_config(Outer, bad)
    good = tmp_path / "good.yaml"
    good.write_text("outer:\n  name: rig\n  inner: {size_m: 0.08}\n")
    assert load_config(Outer, good, section="outer").inner.size_m == 0.08
    with pytest.raises(ConfigError, match="missing section 'other'"):
        load_config(Outer, good, section="other")
