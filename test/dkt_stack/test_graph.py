"""The node-graph description: loading, includes, substitution, errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from dkt_stack.config import ConfigError
from dkt_stack.graph import graphs_dir, resolve_graph

BASE = """
name: base
arguments:
  backend: {default: dkt, choices: [dkt, raw]}
  fps: {default: 30.0}
  use_sim_time: {default: false}
  serial: {default: ""}
parameters:
  use_sim_time: ${use_sim_time}
nodes:
  - name: camera
    executable: camera_node
    namespace: camera
    parameters: {fps: "${fps}", serial: "${serial}", label: "cam-${backend}", sizes: [1, 2.5]}
    remappings: {color/image_raw: /front/color}
  - name: depth
    executable: depth_node
    namespace: /camera/
    parameters: {backend: "${backend}"}
"""

RIG = """
name: rig
include: [base.yaml]
arguments:
  with_arm: {default: true}
  backend: {default: raw}
nodes:
  - name: arm
    executable: arm_node
    enabled: ${with_arm}
    parameters: {can: can_left_slave}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_resolve_types_substitution_and_ros_args(tmp_path):
    path = write(tmp_path, "base.yaml", BASE)
    graph = resolve_graph(path, {"fps": "15", "use_sim_time": "true", "serial": "0123"})
    cam = graph.node("camera")
    assert cam.parameters == {"use_sim_time": True, "fps": 15.0, "serial": "0123", "label": "cam-dkt", "sizes": [1.0, 2.5]}
    assert graph.node("depth").namespace == "camera"
    assert cam.fully_qualified_name == "/camera/camera"
    assert cam.ros_arguments("p.yaml") == [
        "--ros-args", "-r", "__node:=camera", "-r", "__ns:=/camera", "-r", "color/image_raw:=/front/color", "--params-file", "p.yaml",
    ]  # fmt: skip
    assert yaml.safe_load(cam.params_yaml()) == {"/**": {"ros__parameters": cam.parameters}}


def test_include_merges_and_overrides(tmp_path):
    write(tmp_path, "base.yaml", BASE)
    rig = write(tmp_path, "rig.yaml", RIG)
    graph = resolve_graph(rig)
    assert [n.name for n in graph.nodes] == ["camera", "depth", "arm"]
    assert graph.node("depth").parameters["backend"] == "raw"  # the including file's default wins
    assert graph.node("arm").parameters == {"use_sim_time": False, "can": "can_left_slave"}
    assert [n.name for n in resolve_graph(rig, {"with_arm": "false"}).nodes] == ["camera", "depth"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"colour": "x"}, "unknown argument\\(s\\) colour"),
        ({"backend": "sgbm"}, "argument 'backend' must be one of dkt, raw"),
        ({"fps": "fast"}, "argument 'fps' expects a float"),
        ({"use_sim_time": "maybe"}, "argument 'use_sim_time' expects a bool"),
    ],
)
def test_bad_overrides(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        resolve_graph(write(tmp_path, "base.yaml", BASE), overrides)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: g\nnodes: [{name: a, executable: x, paramters: {}}]\n", "key 'nodes\\[0\\].paramters': unknown key"),
        ("name: g\nnodes: [{name: a}]\n", "key 'nodes\\[0\\].executable': missing required key"),
        ("name: g\nnodes: [{name: a, executable: x, parameters: {p: '${nope}'}}]\n", "unknown argument '\\$\\{nope\\}'"),
        ("name: g\nnodes: [{name: a, executable: x}, {name: a, executable: y}]\n", "duplicate node /a"),
        ("name: g\nnodes: [{name: a, executable: x, parameters: {p: [1, a]}}]\n", "one scalar type"),
        ("name: g\nnodes: [{name: a, executable: x, parameters: {p: null}}]\n", "must be a bool, int, float, string"),
        ("name: g\ninclude: [other.yaml]\n", "included file not found"),
        ("name: g\ninclude: [g.yaml]\n", "include cycle"),
        ("- a list\n", "must be a mapping"),
    ],
)
def test_graph_file_errors_name_the_file_and_key(tmp_path, text, message):
    path = write(tmp_path, "g.yaml", text)
    with pytest.raises(ConfigError, match=message) as info:
        resolve_graph(path)
    assert "g.yaml" in str(info.value)


def test_unknown_shipped_graph_lists_the_choices():
    with pytest.raises(ConfigError, match="unknown graph 'nope' \\(shipped graphs: .*perception"):
        resolve_graph("nope")


@pytest.mark.parametrize("path", sorted(graphs_dir().glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_graph_resolves_to_installed_executables(path):
    from dkt_stack.runner import console_script_target

    graph = resolve_graph(path)
    assert graph.nodes
    for node in graph.nodes:
        module, func = console_script_target(node.executable).split(":")
        assert func == "main" and module.split(".")[0] in ("dkt_perception", "dkt_grasping", "dkt_sim", "dkt_stack")


def test_respawn_and_delay_resolve_with_arguments(tmp_path):
    text = """
name: g
arguments:
  restart: {default: true}
nodes:
  - {name: a, executable: camera_node, respawn: "${restart}", respawn_delay: 0.5}
  - {name: b, executable: depth_node}
"""
    graph = resolve_graph(write(tmp_path, "g.yaml", text))
    assert [(n.respawn, n.respawn_delay) for n in graph.nodes] == [(True, 0.5), (False, 1.0)]
    assert resolve_graph(write(tmp_path, "g.yaml", text), {"restart": "false"}).node("a").respawn is False
    with pytest.raises(ConfigError, match="key 'nodes\\[0\\]': respawn_delay must be >= 0 s, got -1.0"):
        resolve_graph(write(tmp_path, "g.yaml", text.replace("0.5", "-1")))


def test_shipped_perception_arguments_reach_the_nodes():
    graph = resolve_graph("perception", {"qos": "sensor_data", "model": "tiny", "random_weights": "true", "model_height": "64", "model_width": "96"})
    assert {n.parameters["qos"] for n in graph.nodes} == {"sensor_data"}
    engine = graph.node("depth").parameters["engine"]
    assert (engine["model"], engine["random_weights"], engine["height"], engine["width"]) == ("tiny", True, 64, 96)
    assert {n.name: n.respawn for n in graph.nodes} == {"camera": True, "depth": True, "metric_depth": True, "static_tf": True}
    assert resolve_graph("perception").node("camera").parameters["qos"] == "reliable"  # the default: rviz2 and rosbag2 receive
    with pytest.raises(ConfigError, match="argument 'model' must be one of 1.3b, tiny"):
        resolve_graph("perception", {"model": "14b"})
    # on the rig the arm drivers are not restarted on their own (that would enable the motors again)
    rig = resolve_graph("cobot_magic")
    assert [n.respawn for n in rig.nodes if n.executable == "arm_node"] == [False, False]
