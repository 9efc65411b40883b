"""Reading mount configurations from lists or files (.yaml, .yml, .json, .toml), and where a
mount's data and history live (for the manager's cross-mount checks)."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storied import paths
from storied.backends.base import Backend, WrappedBackend
from storied.backends.registry import short_repr
from storied.backends.wrappers import Permission, Permissions, Prefixed
from storied.errors import (
    ConfigSourceTypeError,
    NotADirectoryStorageError,
    StorageConfigError,
    StorageNotFoundError,
    StoragePermissionError,
)

__all__ = [
    "HistoryPlace",
    "Location",
    "check_history_keys",
    "check_history_places",
    "has_portable_history",
    "load_mounts",
    "location",
    "nested",
    "refuse_engine_switch",
    "relative_spec",
    "writable_level",
]

#: Where something lives: (identity of the storage, full path in it).
Location = tuple[Hashable, str]


def _parser_error(path: Path, exc: Exception) -> StorageConfigError:
    """A StorageConfigError naming the file and the line the parser reported."""
    mark = getattr(exc, "problem_mark", None)  # yaml.MarkedYAMLError
    problem = getattr(exc, "problem", None)
    if mark is not None:
        detail = f"line {mark.line + 1}, column {mark.column + 1}: {problem or exc}"
    elif isinstance(exc, json.JSONDecodeError):
        detail = f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
    else:  # tomllib says "(at line N, column M)" in its message
        detail = str(exc)
    return StorageConfigError(f"Cannot parse {path}: {detail}")


def _unique(path: Path, pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """A mapping from ``pairs``, refusing a key given twice (parsers keep the last one
    silently: ``base_path`` twice would pick a directory the user may not have meant)."""
    result: dict[Any, Any] = {}
    for key, value in pairs:
        if key in result:
            raise StorageConfigError(f"{path}: key {key!r} is given twice in one mapping")
        result[key] = value
    return result


def _toml_mounts(path: Path, data: dict[str, Any]) -> Any:
    """The ``[[mounts]]`` array; any other top-level key (a ``[[mount]]`` typo) is refused."""
    if "mounts" not in data:
        raise StorageConfigError(f"{path}: a TOML configuration is a [[mounts]] array of tables")
    extra = sorted(set(data) - {"mounts"})
    if extra:
        raise StorageConfigError(
            f"{path}: unknown top-level key {extra[0]!r}; mounts go in [[mounts]] tables"
        )
    return data["mounts"]


def _yaml_load(path: Path, text: str) -> Any:
    """``yaml.safe_load`` that refuses a key given twice in one mapping (merge keys ``<<``
    may still be overridden, as YAML intends)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                keys = [self.construct_object(k, deep=True) for k, _ in node.value
                        if k.tag != "tag:yaml.org,2002:merge"]
                _unique(path, [(k, None) for k in keys if isinstance(k, Hashable)])
            return super().construct_mapping(node, deep=deep)

    return yaml.load(text, Loader=Loader)  # a SafeLoader subclass: no arbitrary objects


def _parse_file(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json", ".toml"):
        raise StorageConfigError(
            f"Unsupported configuration file type {suffix!r} ({path}); "
            "use .yaml, .yml, .json or .toml"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StorageNotFoundError(f"Configuration file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise StorageConfigError(
            f"Cannot read {path}: not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from exc
    except PermissionError as exc:
        raise StoragePermissionError(f"Cannot read configuration file {path}: {exc}") from exc
    except OSError as exc:  # a directory, an unreadable device...
        raise StorageConfigError(f"Cannot read configuration file {path}: {exc}") from exc
    try:
        if suffix == ".json":
            return json.loads(text, object_pairs_hook=lambda pairs: _unique(path, pairs))
        if suffix == ".toml":
            return _toml_mounts(path, tomllib.loads(text))
        return _yaml_load(path, text)
    except StorageConfigError:
        raise
    except ImportError as exc:
        raise StorageConfigError(f"Cannot parse {path}: {exc} (pip install pyyaml)") from exc
    except RecursionError as exc:
        raise StorageConfigError(f"Cannot parse {path}: nested too deeply") from exc
    except Exception as exc:  # JSONDecodeError, TOMLDecodeError, yaml.YAMLError
        raise _parser_error(path, exc) from exc


def load_mounts(source: Any) -> list[dict[str, Any]]:
    """Return the list of mount dicts in ``source``.

    Args:
        source: A list of mount dicts, or the path of a YAML/JSON file holding such a list, or of a
            TOML file with a ``[[mounts]]`` array of tables.

    Raises:
        StorageNotFoundError: The file does not exist (also a ``FileNotFoundError``).
        StoragePermissionError: The file cannot be read for lack of permission.
        ConfigSourceTypeError: ``source`` is neither a path nor a list (a
            ``StorageConfigError``, so a ``ValueError``, and a ``TypeError`` as in genro-storage).
        StorageConfigError: The file is not UTF-8, cannot be parsed (the message gives the
            parser's line), or its top level is not a list of mappings (YAML and JSON files
            may also hold that list under a single ``mounts`` key).
    """
    if isinstance(source, (str, os.PathLike)):
        try:
            path = Path(source)
        except TypeError as exc:  # a PathLike whose fspath is bytes
            raise StorageConfigError(f"Invalid configuration path {source!r}: {exc}") from exc
        data, where = _parse_file(path), str(path)
        if isinstance(data, Mapping) and set(data) == {"mounts"}:
            data = data["mounts"]  # a 'mounts:' key, as TOML's [[mounts]] (genro: no such key)
        if not isinstance(data, list):
            raise StorageConfigError(
                f"{where}: the top level must be a list of mounts (or a 'mounts' key holding "
                "one)")
    elif isinstance(source, Mapping):
        raise ConfigSourceTypeError(
            "configure() takes a list of mount dicts or a file path, not one mapping: "
            "wrap it in a list ([{...}]) or call add_mount()"
        )
    elif isinstance(source, Sequence) and not isinstance(source, (bytes, bytearray)):
        data, where = source, "configuration list"
    else:
        raise ConfigSourceTypeError(
            "configure() takes a list of mount dicts or a file path, "
            f"not {type(source).__name__}: {short_repr(source)}"
        )
    for index, item in enumerate(data):
        if not isinstance(item, Mapping):
            raise StorageConfigError(
                f"{where}: mount #{index} is not a mapping: {short_repr(item)}"
            )
    return [dict(item) for item in data]


def _is_windows(path: str) -> bool:
    return len(path) > 2 and path[1] == ":" and path[2] in "\\/"


def relative_spec(config: Mapping[str, Any]) -> str | None:
    """The ``'parent:sub'`` of a relative mount, or None for an ordinary one."""
    spec = config.get("path")
    if isinstance(spec, str) and ":" in spec and not _is_windows(spec):
        return spec
    return None


# ------------------------------------------------------------------------------- locations
def location(backend: Backend, path: str = "") -> Location:
    """Where ``path`` of ``backend`` lives, through every wrapper: the storage's
    :meth:`~storied.backends.base.Backend.storage_key` and the full path in it (mount prefixes
    and base directories included). Local disks share the key ``"file"`` with the absolute real
    path, as :meth:`Backend.location` gives, so ``/x`` and ``/x/sub`` nest whatever the mounts
    are called.

    Unlike :meth:`Backend.location` this does no I/O and never calls a local callable
    ``base_path`` (a mount with one is only the same as itself).
    """
    current, parts = backend, [path] if path else []
    while isinstance(current, WrappedBackend):
        if isinstance(current, Prefixed) and current.prefix:
            parts.insert(0, current.prefix)
        current = current.inner
    root = getattr(current, "_static_root", None)  # a local mount with a fixed base directory
    if isinstance(root, str):
        parts.insert(0, root)
        key: Hashable = "file"
    else:
        key = current.storage_key()
    return key, "/".join(p.strip("/") for p in parts if p.strip("/"))


def nested(a: Location, b: Location) -> bool:
    """True when ``a`` and ``b`` are the same place or one contains the other."""
    if a[0] != b[0]:
        return False
    x, y = a[1], b[1]
    return x == y or not x or not y or x.startswith(y + "/") or y.startswith(x + "/")


def writable_level(backend: Backend) -> str | None:
    """Why writes or deletes through ``backend`` are refused (None: both are allowed), read from
    its permission layers and static capabilities (no I/O)."""
    current: Backend = backend
    while True:
        if isinstance(current, Permissions) and current.level is not Permission.DELETE:
            return f"its permissions are {current.level.value!r}"
        if not isinstance(current, WrappedBackend):
            break
        current = current.inner
    caps = current.static_capabilities
    if caps.readonly or not caps.write or not caps.delete:
        return f"the {current.protocol} storage is read-only"
    return None


# ------------------------------------------------------------------------------- history keys
@dataclass(frozen=True)
class HistoryPlace:
    """Where one versioned (non-relative) mount keeps its portable history.

    Attributes:
        mount: The versioned mount.
        data: Its raw backend (its data area).
        spec: Its ``history`` key, if any.
        target: The mount ``spec`` names (with its permission layers), if any.
        meta: The raw backend the history is written to.
        root: The history root in ``meta``.
    """

    mount: str
    data: Backend
    spec: str | None
    target: Backend | None
    meta: Backend
    root: str


def check_history_places(places: list[HistoryPlace]) -> None:
    """Refuse a history target that refuses writes or deletes, a history inside its mount's own
    data (other than ``.storied/``), and two histories at the same or nested locations.

    Raises:
        StorageConfigError: Naming the mount(s) and the reason.
    """
    seen: list[tuple[str, Location]] = []
    for item in places:
        place = location(item.meta, item.root)
        if item.spec and item.target is not None:
            name, other = item.mount, paths.split_fullpath(item.spec)[0]
            why = writable_level(item.target)
            if why is not None:
                raise StorageConfigError(
                    f"Mount {name!r}: 'history' {item.spec!r} names a mount the history cannot "
                    f"be written to ({other!r}: {why})"
                )
            data = location(item.data)
            reserved = (data[0], f"{data[1]}/{paths.RESERVED}" if data[1] else paths.RESERVED)
            if nested(place, data) and not nested(place, reserved):
                raise StorageConfigError(
                    f"Mount {name!r}: 'history' {item.spec!r} lies inside the mount's own data; "
                    "name a place outside it (or omit 'history' to use .storied/)"
                )
        for other_name, other_place in seen:
            if nested(place, other_place):
                raise StorageConfigError(
                    f"Mounts {other_name!r} and {item.mount!r} would share one history location "
                    f"({other_place[1] or '/'} and {place[1] or '/'}): give each versioned "
                    "mount its own 'history' (or make one relative to the other)"
                )
        seen.append((item.mount, place))


def has_portable_history(meta: Backend, root: str) -> bool:
    """Whether a portable history has records under ``root`` (one listing, first name only)."""
    try:
        return next(iter(meta.list_names(paths.join(root, "versions"))), None) is not None
    except (StorageNotFoundError, NotADirectoryStorageError):
        return False


def refuse_engine_switch(name: str, found: bool, other: str) -> None:
    """Raise when ``found``: the storage holds an ``other`` engine's history (the rule: storied
    never switches engines on a storage that has history; see docs/adr/0007)."""
    if not found:
        return
    if other == "portable":
        where = "the storage has native versioning now, but a portable history exists"
        fix = ("suspend the bucket's versioning to keep using the portable history, or move "
               ".storied/versions/ away to start a native history")
    else:
        where = "the bucket's versioning is suspended, but its native versions may exist"
        fix = ("re-enable the bucket's versioning to keep the native history, or set "
               "'versioning: false'")
    raise StorageConfigError(
        f"Mount {name!r}: {where}; storied never switches engines on a storage that has "
        f"history: {fix}"
    )


def check_history_keys(
    name: str, config: Mapping[str, Any], has_mount: Callable[[str], bool]
) -> None:
    """Check ``versioning``/``history`` of one mount against the mounts that exist."""
    spec = config.get("history")  # types already checked by registry.check_common
    if spec is None:
        return
    if config.get("versioning") is not True:
        raise StorageConfigError(f"Mount {name!r}: 'history' needs 'versioning: true'")
    other, prefix = paths.split_fullpath(spec)
    if other == name:
        raise StorageConfigError(
            f"Mount {name!r}: 'history' {spec!r} names the mount itself; omit 'history' to keep "
            "the history in its .storied/ area"
        )
    if not has_mount(other):
        raise StorageConfigError(
            f"Mount {name!r}: 'history' must be 'mount:prefix' of an existing mount, not {spec!r}"
        )
    try:
        paths.check_public(paths.normalize(prefix, allow_absolute=False))
    except ValueError as exc:
        raise StorageConfigError(f"Mount {name!r}: invalid 'history' {spec!r}: {exc}") from exc
