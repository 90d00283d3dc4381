"""One description of the node graph, shared by launch files and ``dkt-stack up``.

A graph file (``config/graphs/*.yaml``) names launch-style arguments with
defaults, parameters common to every node, and the nodes with their
parameters, namespaces and remappings. ``${arg}`` in any string is replaced by
the argument's value (a value that is exactly ``${arg}`` keeps the argument's
type). ``include`` pulls in other graph files (relative to the including file)
so the rig graph extends the perception graph instead of copying it.

Each node may be restarted when it exits (``respawn``, ``respawn_delay``: the
same as launch_ros's ``Node(respawn=..., respawn_delay=...)``; ``dkt-stack up``
doubles the delay after each quick crash). ``static_transforms`` adds a
``static_tf`` node publishing the rig's TF tree (camera_link -> optical frame ->
each arm base, see :mod:`dkt_stack.static_transforms`) from the rig file.

:func:`resolve_graph` turns a file plus argument overrides into
:class:`ResolvedNode` objects; ``launch/*.launch.py`` and
:mod:`dkt_stack.runner` only turn those into processes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dkt_stack.config import ConfigError, from_dict, load_yaml, param

PACKAGE_NAME = "dkt_stack"
_SUBST = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass
class GraphArgument:
    default: str | bool | int | float = param(help="default value; overrides are coerced to its type")
    description: str = param("", help="what the argument sets, shown by `dkt-stack up --help-args` and ros2 launch -s")
    choices: list[str] = param(default_factory=list, help="allowed values (empty: any)")


@dataclass
class NodeSpec:
    name: str = param(help="node name (unique within its namespace)")
    executable: str = param(help="console script of this package, e.g. camera_node")
    package: str = param(PACKAGE_NAME, help="ROS package holding the executable")
    namespace: str = param("", help="ROS namespace, e.g. camera")
    enabled: bool | str = param(True, help="start this node; may be '${arg}'")
    parameters: dict[str, Any] = param(default_factory=dict, help="ROS parameters of the node")
    remappings: dict[str, str] = param(default_factory=dict, help="topic remappings, from: to")
    respawn: bool | str = param(False, help="restart the node when it exits (launch_ros's respawn); may be '${arg}'")
    respawn_delay: float = param(1.0, help="seconds before a restart (launch_ros's respawn_delay); `dkt-stack up` doubles it after each quick crash, up to 30 s")

    def __post_init__(self):
        if self.respawn_delay < 0:
            raise ValueError(f"respawn_delay must be >= 0 s, got {self.respawn_delay}")


@dataclass
class StaticTransformsSpec:
    enabled: bool | str = param(True, help="start the static_tf node publishing the transforms on /tf_static; may be '${arg}'")
    rig: str = param("", help="rig file (a shipped name such as cobot_magic, or a path) whose camera pose in each arm base becomes optical -> base; empty = no arms")
    camera_link: bool | str = param(True, help="publish camera_link -> optical frame as realsense2_camera does; false when the camera driver publishes its own")


@dataclass
class GraphDescription:
    name: str = param(help="graph name")
    description: str = param("", help="one line on what the graph is for")
    include: list[str] = param(default_factory=list, help="other graph files merged before this one")
    arguments: dict[str, GraphArgument] = param(default_factory=dict, help="launch arguments with defaults")
    parameters: dict[str, Any] = param(default_factory=dict, help="parameters given to every node")
    nodes: list[NodeSpec] = param(default_factory=list, help="the nodes to run")
    static_transforms: StaticTransformsSpec | None = param(None, help="the rig's static TF tree, published by a static_tf node")


#: name of the node that publishes the graph's static transforms
STATIC_TF_NODE = "static_tf"


@dataclass
class ResolvedNode:
    """A node ready to start: everything substituted and typed."""

    name: str
    executable: str
    package: str
    namespace: str
    parameters: dict[str, Any]
    remappings: dict[str, str]
    respawn: bool = False
    respawn_delay: float = 1.0

    @property
    def fully_qualified_name(self) -> str:
        ns = self.namespace.strip("/")
        return f"/{ns}/{self.name}" if ns else f"/{self.name}"

    def ros_arguments(self, params_file: str | os.PathLike | None = None) -> list[str]:
        """Command-line ``--ros-args`` as ``ros2 launch`` would pass them."""
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        if self.namespace:
            args += ["-r", f"__ns:=/{self.namespace.strip('/')}"]
        for src, dst in self.remappings.items():
            args += ["-r", f"{src}:={dst}"]
        if params_file is not None:
            args += ["--params-file", str(params_file)]
        return args

    def params_yaml(self) -> str:
        """The node's parameters as a ROS 2 params file (``/**`` wildcard key)."""
        return yaml.safe_dump({"/**": {"ros__parameters": self.parameters}}, sort_keys=True)


@dataclass
class ResolvedGraph:
    name: str
    description: str
    arguments: dict[str, Any]
    nodes: list[ResolvedNode] = field(default_factory=list)
    #: the transforms the static_tf node publishes (empty when disabled)
    static_transforms: list = field(default_factory=list)

    def node(self, name: str) -> ResolvedNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"graph '{self.name}' has no node '{name}' (nodes: {', '.join(n.name for n in self.nodes)})")


def config_dir() -> Path:
    """The shipped ``config/`` folder (source tree / editable install, or share/dkt_stack under ROS)."""
    here = Path(__file__).resolve().parent.parent / "config"
    if here.is_dir():
        return here
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE_NAME)) / "config"
    except Exception as exc:  # ament_index missing or package not installed
        raise ConfigError(f"cannot find the shipped config folder ({exc})") from exc


def graphs_dir() -> Path:
    """Folder of the shipped graph files."""
    return config_dir() / "graphs"


def find_graph(name_or_path: str | os.PathLike) -> Path:
    """A graph file path, or the name of a shipped graph (``perception``)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError("graph file not found", source=path)
        return path
    shipped = graphs_dir() / f"{name_or_path}.yaml"
    if not shipped.is_file():
        names = sorted(p.stem for p in graphs_dir().glob("*.yaml"))
        raise ConfigError(f"unknown graph '{name_or_path}' (shipped graphs: {', '.join(names)})")
    return shipped


def load_graph(path: str | os.PathLike, _seen: tuple[Path, ...] = ()) -> tuple[GraphDescription, list[tuple[NodeSpec, Path]]]:
    """Load a graph file and its includes; returns the merged description and nodes with their source files."""
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError(f"include cycle: {' -> '.join(str(p) for p in (*_seen, path))}", source=path)
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError("a graph file must be a mapping with 'name' and 'nodes'", source=path)
    graph = from_dict(GraphDescription, data, source=path)
    merged_args: dict[str, GraphArgument] = {}
    merged_params: dict[str, Any] = {}
    merged_tf: StaticTransformsSpec | None = None
    nodes: list[tuple[NodeSpec, Path]] = []
    for inc in graph.include:
        inc_path = (path.parent / inc) if not os.path.isabs(inc) else Path(inc)
        if not inc_path.is_file():
            raise ConfigError(f"included file not found: {inc_path}", source=path, key="include")
        sub, sub_nodes = load_graph(inc_path, (*_seen, path))
        merged_args.update(sub.arguments)
        merged_params.update(sub.parameters)
        merged_tf = sub.static_transforms or merged_tf
        nodes.extend(sub_nodes)
    merged_args.update(graph.arguments)
    merged_params.update(graph.parameters)
    nodes.extend((n, path) for n in graph.nodes)
    graph.arguments, graph.parameters = merged_args, merged_params
    graph.static_transforms = graph.static_transforms or merged_tf
    return graph, nodes


def coerce_argument(name: str, value: Any, spec: GraphArgument) -> Any:
    """Coerce an override (often a string from a command line) to the default's type."""
    target = type(spec.default)
    if isinstance(value, str) and target is not str:
        try:
            value = yaml.safe_load(value) if value != "" else value
        except yaml.YAMLError:
            pass  # not YAML: keep the string; the type check below names the argument and the expected type
    if target is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if target is str and not isinstance(value, str):
        value = str(value)
    if type(value) is not target:
        raise ConfigError(f"argument '{name}' expects a {target.__name__}, got {value!r}")
    if spec.choices and str(value) not in spec.choices:
        raise ConfigError(f"argument '{name}' must be one of {', '.join(spec.choices)}, got {value!r}")
    return value


def _substitute(value: Any, args: dict[str, Any], source: Path, key: str) -> Any:
    if isinstance(value, str):
        whole = _SUBST.fullmatch(value)
        if whole:
            name = whole.group(1)
            if name not in args:
                raise ConfigError(f"unknown argument '${{{name}}}' (arguments: {', '.join(sorted(args))})", source=source, key=key)
            return args[name]

        def repl(m: re.Match) -> str:
            if m.group(1) not in args:
                raise ConfigError(f"unknown argument '${{{m.group(1)}}}' (arguments: {', '.join(sorted(args))})", source=source, key=key)
            return str(args[m.group(1)])

        return _SUBST.sub(repl, value)
    if isinstance(value, dict):
        return {k: _substitute(v, args, source, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, args, source, f"{key}[{i}]") for i, v in enumerate(value)]
    return value


def _normalise_parameter_value(value: Any, source: Path, key: str) -> Any:
    """ROS parameters are scalars, homogeneous lists of scalars, or nested mappings of those.

    A list mixing ints and floats becomes a float list (rcl rejects mixed arrays).
    """
    if isinstance(value, dict):
        return {k: _normalise_parameter_value(v, source, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        kinds = {type(v) for v in value}
        if kinds == {int, float}:
            return [float(v) for v in value]
        if not kinds <= {bool, int, float, str} or len(kinds) > 1:
            raise ConfigError("a list parameter must hold values of one scalar type", source=source, key=key)
        return value
    if value is None or not isinstance(value, (bool, int, float, str)):
        raise ConfigError(f"a parameter must be a bool, int, float, string or list of them, got {value!r}", source=source, key=key)
    return value


def resolve_graph(name_or_path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> ResolvedGraph:
    """Load a graph and substitute argument values into every node.

    Args:
        name_or_path: a shipped graph name or a path to a graph YAML file.
        overrides: argument values (``{"backend": "raw"}``); strings are coerced.
    """
    path = find_graph(name_or_path).resolve()
    graph, nodes = load_graph(path)
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(graph.arguments))
    if unknown:
        raise ConfigError(f"unknown argument(s) {', '.join(unknown)} (arguments: {', '.join(sorted(graph.arguments))})", source=path)
    args = {name: coerce_argument(name, overrides.get(name, spec.default), spec) for name, spec in graph.arguments.items()}
    resolved = ResolvedGraph(name=graph.name, description=graph.description, arguments=args)
    seen: set[str] = set()
    for i, (spec, source) in enumerate(nodes):
        key = f"nodes[{i}]({spec.name})"
        enabled = _substitute(spec.enabled, args, source, f"{key}.enabled")
        if isinstance(enabled, str):
            enabled = coerce_argument("enabled", enabled, GraphArgument(default=True))
        if not enabled:
            continue
        if not _NAME.match(spec.name):
            raise ConfigError(f"invalid node name '{spec.name}'", source=source, key=f"{key}.name")
        params = _substitute({**graph.parameters, **spec.parameters}, args, source, f"{key}.parameters")
        params = _normalise_parameter_value(params, source, f"{key}.parameters")
        node = ResolvedNode(
            name=spec.name,
            executable=_substitute(spec.executable, args, source, f"{key}.executable"),
            package=spec.package,
            namespace=_substitute(spec.namespace, args, source, f"{key}.namespace").strip("/"),
            parameters=params,
            remappings=_substitute(spec.remappings, args, source, f"{key}.remappings"),
            respawn=_flag(spec.respawn, args, source, f"{key}.respawn"),
            respawn_delay=float(spec.respawn_delay),
        )
        if node.fully_qualified_name in seen:
            raise ConfigError(f"duplicate node {node.fully_qualified_name}", source=source, key=key)
        seen.add(node.fully_qualified_name)
        resolved.nodes.append(node)
    if graph.static_transforms is not None:
        tf_node = _static_tf_node(graph, args, path, resolved)
        if tf_node is not None:
            if tf_node.fully_qualified_name in seen:
                raise ConfigError(f"duplicate node {tf_node.fully_qualified_name} (the static_transforms node)", source=path)
            resolved.nodes.append(tf_node)
    return resolved


def _flag(value: bool | str, args: dict[str, Any], source: Path, key: str) -> bool:
    """A boolean field that may be written ``${arg}``."""
    value = _substitute(value, args, source, key)
    if isinstance(value, str):
        try:
            value = coerce_argument(key, value, GraphArgument(default=True))
        except ConfigError as exc:
            raise ConfigError(str(exc), source=source, key=key) from exc
    return bool(value)


def _static_tf_node(graph: GraphDescription, args: dict[str, Any], path: Path, resolved: ResolvedGraph) -> ResolvedNode | None:
    """The static_tf node of the graph's ``static_transforms`` (None when disabled); fills ``resolved.static_transforms``."""
    from dkt_stack.rig import load_rig, rig_path
    from dkt_stack.static_transforms import rig_static_transforms

    spec = graph.static_transforms
    if not _flag(spec.enabled, args, path, "static_transforms.enabled"):
        return None
    camera_link = _flag(spec.camera_link, args, path, "static_transforms.camera_link")
    rig_name = str(_substitute(spec.rig, args, path, "static_transforms.rig"))
    rig_file = ""
    rig = None
    if rig_name:
        try:
            rig_file = str(rig_path(rig_name).resolve())
            rig = load_rig(rig_file)
        except (ConfigError, ValueError, OSError) as exc:
            raise ConfigError(f"static_transforms.rig '{rig_name}': {exc}", source=path, key="static_transforms.rig") from exc
    resolved.static_transforms = rig_static_transforms(rig, camera_link=camera_link)
    if not resolved.static_transforms:  # e.g. an external camera driver publishes camera_link and no rig is given
        return None
    params = _normalise_parameter_value(
        {**_substitute(graph.parameters, args, path, "parameters"), "rig": rig_file, "camera_link": camera_link}, path, "static_transforms"
    )
    return ResolvedNode(STATIC_TF_NODE, "static_tf_node", PACKAGE_NAME, "", params, {}, respawn=True, respawn_delay=1.0)
