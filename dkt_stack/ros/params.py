"""ROS parameters declared from, and read back into, a params dataclass.

A node describes its parameters once, as a dataclass whose fields carry a help
text (:func:`dkt_stack.config.param`). :func:`declare_and_read` declares each
field (nested dataclasses become dotted names, ``tags.family``) with a
descriptor holding the help text, then validates the values through the one
config loader, so a wrong type or value fails at start-up naming the parameter.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar, get_type_hints

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.node import Node

from dkt_stack.config import ConfigError, from_dict

T = TypeVar("T")


def flatten_fields(cls: type, prefix: str = "") -> list[tuple[str, dataclasses.Field, Any]]:
    """(dotted name, field, type) for every leaf field of a (nested) params dataclass."""
    out = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        name = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            out.extend(flatten_fields(tp, name + "."))
        else:
            out.append((name, f, tp))
    return out


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _ros_default(value: Any, tp: Any) -> Any:
    """ROS needs a typed default; empty lists take their type from the annotation."""
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list) and not value:
        item = (typing.get_args(tp) or (str,))[0]
        from rclpy.parameter import Parameter

        return {float: Parameter.Type.DOUBLE_ARRAY, int: Parameter.Type.INTEGER_ARRAY, str: Parameter.Type.STRING_ARRAY, bool: Parameter.Type.BOOL_ARRAY}.get(
            item, Parameter.Type.STRING_ARRAY
        )
    return value


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for name, value in flat.items():
        parts = name.split(".")
        d = nested
        for part in parts[:-1]:
            d = d.setdefault(part, {})
        d[parts[-1]] = value
    return nested


def declare_and_read(node: Node, cls: type[T]) -> T:
    """Declare every field of ``cls`` as a ROS parameter and return the validated values.

    Raises:
        ConfigError: naming the node and the parameter, for a wrong type or value.
    """
    flat: dict[str, Any] = {}
    for name, f, tp in flatten_fields(cls):
        default = _default(f)
        descriptor = ParameterDescriptor(name=name, description=f.metadata.get("help", ""), dynamic_typing=default is None)
        if default is None:
            node.declare_parameter(name, None, descriptor)
        else:
            node.declare_parameter(name, _ros_default(default, tp), descriptor)
        try:
            value = node.get_parameter(name).value
        except ParameterUninitializedException:  # an empty-list default is declared by type only
            value = default
        if value is None and default is None:
            continue
        if isinstance(value, (list, tuple)) or type(value).__name__ == "array":
            value = list(value)
        flat[name] = value
    try:
        return from_dict(cls, _nest(flat), source=f"node {node.get_fully_qualified_name()} parameters")
    except ConfigError:
        raise
