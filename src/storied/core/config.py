"""Reading mount configurations from lists or files (.yaml, .yml, .json, .toml)."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from storied.errors import StorageConfigError, StorageNotFoundError

__all__ = ["load_mounts"]


def _parse_file(path: Path) -> Any:
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StorageNotFoundError(f"Configuration file not found: {path}") from None
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text)
        if suffix == ".json":
            return json.loads(text)
        if suffix == ".toml":
            data = tomllib.loads(text)
            return data.get("mounts", data)
    except (ValueError, ImportError) as exc:  # json/toml errors are ValueErrors
        raise StorageConfigError(f"Cannot parse {path}: {exc}") from exc
    except Exception as exc:  # yaml.YAMLError
        raise StorageConfigError(f"Cannot parse {path}: {exc}") from exc
    raise StorageConfigError(
        f"Unsupported configuration file type {suffix!r} ({path}); use .yaml, .yml, .json or .toml"
    )


def load_mounts(
    source: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Return the list of mount dicts in ``source``.

    Args:
        source: A list of mount dicts, or the path of a YAML/JSON file holding such a list, or of a
            TOML file with a ``[[mounts]]`` array of tables.

    Raises:
        TypeError: ``source`` is neither a path nor a list.
        StorageNotFoundError: The file does not exist (also a ``FileNotFoundError``).
        StorageConfigError: The file cannot be parsed or its top level is not a list of mappings.
    """
    if isinstance(source, (str, os.PathLike)):
        data = _parse_file(Path(source))
        where = str(source)
    elif isinstance(source, Sequence) and not isinstance(source, (bytes, bytearray)):
        data, where = source, "configuration list"
    else:
        raise TypeError(f"configure() takes a list of mount dicts or a file path, not {source!r}")
    if not isinstance(data, list):
        raise StorageConfigError(f"{where}: the top level must be a list of mounts")
    for index, item in enumerate(data):
        if not isinstance(item, Mapping):
            raise StorageConfigError(f"{where}: mount #{index} is not a mapping: {item!r}")
    return [dict(item) for item in data]
