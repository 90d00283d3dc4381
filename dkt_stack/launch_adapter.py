"""Turn a graph description into a ``ros2 launch`` LaunchDescription.

The launch files in ``launch/`` are one call to :func:`graph_launch_description`;
all logic (arguments, substitution, parameters) lives in :mod:`dkt_stack.graph`
and is shared with ``dkt-stack up``. ``launch``/``launch_ros`` are imported only
here, when a launch file runs (they exist only in a ROS 2 installation).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from dkt_stack.graph import ResolvedNode, find_graph, load_graph, resolve_graph
from dkt_stack.ros.transport import large_data_profile, use_large_data_profile


def node_action_kwargs(node: ResolvedNode, params_dir: str | Path) -> dict[str, Any]:
    """Keyword arguments of ``launch_ros.actions.Node`` for one resolved node.

    Parameters go through a params file, exactly as ``dkt-stack up`` passes them;
    ``respawn``/``respawn_delay`` are launch's own (a constant delay there; ``dkt-stack up``
    doubles it after quick crashes). The graph's static transforms arrive here as
    the ``static_tf`` node, like any other.
    """
    params_file = Path(params_dir) / f"{node.fully_qualified_name.strip('/').replace('/', '__')}.yaml"
    params_file.write_text(node.params_yaml())
    return {
        "package": node.package,
        "executable": node.executable,
        "name": node.name,
        "namespace": node.namespace or "",
        "parameters": [str(params_file)],
        "remappings": list(node.remappings.items()),
        "respawn": node.respawn,
        "respawn_delay": float(node.respawn_delay),
        "output": "screen",
    }


def graph_launch_description(graph: str):
    """LaunchDescription declaring the graph's arguments and starting its nodes."""
    from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from launch import LaunchDescription

    path = find_graph(graph)
    description, _ = load_graph(path)
    declared = [
        DeclareLaunchArgument(name, default_value=str(spec.default), description=spec.description, choices=spec.choices or None)
        for name, spec in description.arguments.items()
    ]

    def nodes(context, *args, **kwargs):
        overrides = {name: LaunchConfiguration(name).perform(context) for name in description.arguments}
        resolved = resolve_graph(path, overrides)
        params_dir = tempfile.mkdtemp(prefix=f"dkt-stack-{resolved.name}-")
        return [Node(**node_action_kwargs(n, params_dir)) for n in resolved.nodes]

    # the same DDS profile `dkt-stack up` uses, unless the user set one (see dkt_stack/ros/transport.py)
    dds = [SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", large_data_profile())] if use_large_data_profile(dict(os.environ)) else []
    return LaunchDescription([*declared, *dds, OpaqueFunction(function=nodes)])
