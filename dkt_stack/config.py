"""The one config loader: YAML files into typed, validated dataclasses.

Every configuration in the stack (node parameters, the node graph, tag sets,
training recipes) is a dataclass; this module turns a YAML mapping into one,
rejecting unknown keys, wrong types and missing required keys with a single
message that names the file and the dotted key. Field docs live in
``field(metadata={"help": ...})`` and feed ROS parameter descriptors and the
README's configuration reference.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem, with the file and the dotted key it concerns."""

    def __init__(self, message: str, *, source: str | os.PathLike | None = None, key: str | None = None):
        self.source = str(source) if source is not None else None
        self.key = key
        where = []
        if self.source:
            where.append(self.source)
        if key:
            where.append(f"key '{key}'")
        super().__init__(f"{': '.join(where)}: {message}" if where else message)


def param(default: Any = dataclasses.MISSING, help: str = "", *, default_factory: Any = dataclasses.MISSING, **extra) -> Any:
    """A dataclass field with a help text (units included) for docs and ROS descriptors."""
    metadata = {"help": help, **extra}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def load_yaml(path: str | os.PathLike) -> Any:
    """Read a YAML file, with clear errors for a missing file or a syntax error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("file not found", source=path)
    try:
        with path.open("r", encoding="utf-8") as f:
            return yaml.safe_load(f)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(f"invalid YAML{at}: {getattr(exc, 'problem', exc)}", source=path) from exc


def load_config(cls: type[T], path: str | os.PathLike, *, section: str | None = None) -> T:
    """Load ``path`` (optionally one top-level ``section`` of it) into dataclass ``cls``."""
    data = load_yaml(path)
    if section is not None:
        if not isinstance(data, dict) or section not in data:
            raise ConfigError(f"missing section '{section}'", source=path)
        data = data[section]
    return from_dict(cls, data if data is not None else {}, source=path)


def from_dict(cls: type[T], data: Any, *, source: str | os.PathLike | None = None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, validating keys and types recursively."""
    return _convert(cls, data, source, prefix)


def to_dict(obj: Any) -> Any:
    """Dataclass (nested) -> plain dict/list/scalars, the inverse of :func:`from_dict`."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def field_help(cls: type) -> dict[str, str]:
    """Help text of every field of a dataclass."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(tp: Any, value: Any, source: Any, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping for {tp.__name__}, got {type(value).__name__}", source=source, key=key or None)
        hints = get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
        unknown = [k for k in value if k not in fields]
        if unknown:
            sub = f"{key}.{unknown[0]}" if key else str(unknown[0])
            raise ConfigError(f"unknown key (allowed: {', '.join(sorted(fields))})", source=source, key=sub)
        kwargs = {}
        for name, f in fields.items():
            sub = f"{key}.{name}" if key else name
            if name in value:
                kwargs[name] = _convert(hints[name], value[name], source, sub)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError("missing required key", source=source, key=sub)
        try:
            return tp(**kwargs)
        except (ValueError, TypeError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(str(exc), source=source, key=key or None) from exc
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, source, key)
            except ConfigError as exc:
                errors.append(exc)
        raise ConfigError(f"expected {' or '.join(_type_name(a) for a in args)}, got {value!r}", source=source, key=key or None)
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"expected one of {', '.join(repr(a) for a in get_args(tp))}, got {value!r}", source=source, key=key or None)
        return value
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"expected a list, got {type(value).__name__} {value!r}", source=source, key=key or None)
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"expected {len(args)} items, got {len(value)}", source=source, key=key or None)
            return tuple(_convert(a, v, source, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
        item = args[0] if args else Any
        items = [_convert(item, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or tp is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping, got {type(value).__name__}", source=source, key=key or None)
        kt, vt = get_args(tp) or (Any, Any)
        return {_convert(kt, k, source, key): _convert(vt, v, source, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"expected true or false, got {value!r}", source=source, key=key or None)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"expected an integer, got {value!r}", source=source, key=key or None)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"expected a number, got {value!r}", source=source, key=key or None)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {value!r}", source=source, key=key or None)
        return value
    if tp is Path:
        if not isinstance(value, str):
            raise ConfigError(f"expected a path string, got {value!r}", source=source, key=key or None)
        return Path(value)
    raise ConfigError(f"unsupported type {tp!r} in config schema", source=source, key=key or None)
