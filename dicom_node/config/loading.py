"""Reading a config file: YAML -> NodeConfig, with every problem named by its YAML path and line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dicom_node.config.models import NodeConfig
from dicom_node.errors import ConfigError

__all__ = ["ConfigProblem", "load_config", "resolve_paths"]


@dataclass(frozen=True)
class ConfigProblem:
    path: str  # dotted YAML path, e.g. "dimse.allowed_peers.0.ae_title"; "" for the whole file
    message: str
    line: int | None = None  # 1-based line in the YAML file, when known

    def __str__(self) -> str:
        where = self.path or "<config>"
        line = f" (line {self.line})" if self.line else ""
        return f"{where}{line}: {self.message}"


def _line_index(node: yaml.Node, prefix: tuple[str, ...], out: dict[tuple[str, ...], int]) -> None:
    out[prefix] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*prefix, str(key_node.value))
            out[key] = key_node.start_mark.line + 1
            _line_index(value_node, key, out)
            out[key] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            _line_index(item, (*prefix, str(position)), out)


def _yaml_path(loc: tuple[str, ...], data: Any) -> tuple[str, ...]:
    """Drop the tag pydantic adds for a discriminated union ("destinations.x.dimse.port")."""
    path: list[str] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("kind") == part:
            continue
        path.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            node = None
    return tuple(path)


def _nearest_line(path: tuple[str, ...], lines: dict[tuple[str, ...], int]) -> int | None:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def _problems_from(
    error: ValidationError, data: Any, lines: dict[tuple[str, ...], int]
) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    for item in error.errors(include_url=False):
        loc = _yaml_path(tuple(str(part) for part in item["loc"]), data)
        message = str(item["msg"]).removeprefix("Value error, ")
        if not loc:
            # Cross-reference checks report one "path: message" line per problem.
            for line in message.splitlines():
                path, sep, text = line.partition(": ")
                if not sep or " " in path:
                    path, text = "", line
                key = tuple(path.split(".")) if path else ()
                problems.append(ConfigProblem(path, text, _nearest_line(key, lines)))
            continue
        problems.append(ConfigProblem(".".join(loc), message, _nearest_line(loc, lines)))
    return problems


def load_config(path: Path) -> NodeConfig:
    """Read, validate and resolve a config file; raise ConfigError listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, [ConfigProblem("", f"cannot read config file: {exc}")]) from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(path, [ConfigProblem("", f"not valid YAML: {exc}", line)]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, [ConfigProblem("", "the top level must be a mapping of keys")])
    lines: dict[tuple[str, ...], int] = {}
    if root is not None:
        _line_index(root, (), lines)
    try:
        config = NodeConfig.model_validate(data, context={"base": path.resolve().parent})
    except ValidationError as exc:
        raise ConfigError(path, _problems_from(exc, data, lines)) from exc
    return resolve_paths(config, path.resolve().parent)


def resolve_paths(config: NodeConfig, base: Path) -> NodeConfig:
    """Make relative filesystem paths (storage, models, a SQLite file) relative to `base`,
    the config file's folder, so the node behaves the same whatever its working directory."""
    storage = config.storage.model_copy(update={"path": base / config.storage.path})
    database = config.database
    prefix = "sqlite:///"
    if database.url.startswith(prefix):
        target = database.url[len(prefix) :]
        if target and target != ":memory:" and not target.startswith("/"):
            database = database.model_copy(update={"url": prefix + str(base / target)})
    http = config.http
    if http.viewer is not None:
        viewer = http.viewer.model_copy(update={"path": base / http.viewer.path})
        http = http.model_copy(update={"viewer": viewer})
    return config.model_copy(
        update={
            "storage": storage,
            "database": database,
            "models_dir": base / config.models_dir,
            "http": http,
        }
    )
