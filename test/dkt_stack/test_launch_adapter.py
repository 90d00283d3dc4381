"""The pure part of the launch adapter (launch/launch_ros are not installable here)."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from dkt_stack.graph import resolve_graph
from dkt_stack.launch_adapter import node_action_kwargs

ROOT = Path(__file__).resolve().parents[2]


def test_node_kwargs_match_what_up_passes(tmp_path):
    graph = resolve_graph("perception", {"backend": "raw", "camera_source": "synthetic"})
    depth = graph.node("depth")
    kwargs = node_action_kwargs(depth, tmp_path)
    assert kwargs["package"] == "dkt_stack" and kwargs["executable"] == "depth_node"
    assert kwargs["name"] == "depth" and kwargs["namespace"] == "camera"
    (params_file,) = kwargs["parameters"]
    assert yaml.safe_load(Path(params_file).read_text()) == {"/**": {"ros__parameters": depth.parameters}}
    assert depth.parameters["engine"]["backend"] == "raw"
    assert (kwargs["respawn"], kwargs["respawn_delay"]) == (True, 2.0)  # launch_ros's own respawn, from the graph


def test_static_transforms_become_a_launch_node(tmp_path):
    graph = resolve_graph("cobot_magic", {"arms": "false"})
    kwargs = node_action_kwargs(graph.node("static_tf"), tmp_path)
    assert (kwargs["executable"], kwargs["name"], kwargs["namespace"], kwargs["respawn"]) == ("static_tf_node", "static_tf", "", True)
    (params_file,) = kwargs["parameters"]
    params = yaml.safe_load(Path(params_file).read_text())["/**"]["ros__parameters"]
    assert params["rig"] == str(ROOT / "config" / "rig" / "cobot_magic.yaml") and params["camera_link"] is True


def test_launch_files_are_thin_adapters_over_shipped_graphs():
    graphs = {p.stem for p in (ROOT / "config" / "graphs").glob("*.yaml")}
    for launch_file in (ROOT / "launch").glob("*.launch.py"):
        tree = ast.parse(launch_file.read_text())
        funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
        assert [f.name for f in funcs] == ["generate_launch_description"], launch_file
        (ret,) = funcs[0].body
        call = ret.value
        assert call.func.id == "graph_launch_description" and call.args[0].value in graphs, launch_file
