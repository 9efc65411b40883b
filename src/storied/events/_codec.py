"""The bytes of a journal entry (docs/EVENTS.md §2): encoding an event, freezing what a
deferred entry will encode later, and reviving dates on reading."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

__all__ = ["SCHEMA_VERSION"]

SCHEMA_VERSION = 1
_DATES = ("last_modified", "created")
_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=lambda v: _default(v))


def _default(value: Any) -> Any:
    """How the encoder writes what JSON has no type for: datetimes as ISO 8601."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    raise TypeError(type(value).__name__)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):  # sorted, as the encoder writes sets
        return [_jsonable(v) for v in sorted(value, key=str)]
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


_SCALARS = frozenset({str, int, float, bool, type(None), datetime})
_EMPTY: dict[type, type] = {list: list, tuple: list, dict: dict}  # an empty one's JSON form


def _frozen(value: Any) -> Any:
    """``value`` with every dict, list and tuple copied (a dict and a list, as JSON has them),
    sets as sorted lists, and what JSON has no type for as :func:`_jsonable` makes it: what a
    deferred entry encodes later is what it was at :meth:`JournalStore.append`."""
    kind = type(value)
    if kind is dict:  # the common case first: a copy, then only its containers replaced
        out = value.copy()
        for key, item in out.items():
            if type(item) not in _SCALARS:  # an existing key: the dict does not grow
                out[key] = _EMPTY[type(item)]() if not item and type(item) in _EMPTY \
                    else _frozen(item)
        return out
    if kind is list or kind is tuple:
        return [v if type(v) in _SCALARS else _frozen(v) for v in value]
    if kind in _SCALARS:
        return value
    if isinstance(value, dict):
        return {k: _frozen(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_frozen(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return [_frozen(v) for v in sorted(value, key=str)]
    if isinstance(value, (str, int, float, datetime)):
        return value
    return _jsonable(value)


def _encoded(event: str, path: str, version_id: str | None, when: float, ident: str,
             info: dict[str, Any]) -> bytes:
    """The bytes of one entry (``when``: seconds since the epoch)."""
    body: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "id": ident, "type": event,
        "path": path, "version_id": version_id,
        "time": datetime.fromtimestamp(when, UTC).isoformat(), "info": info,
    }
    try:
        return _ENCODER.encode(body).encode()
    except (TypeError, ValueError):  # keys or values JSON has no form for: made plain
        body["info"] = _jsonable(info)
        return _ENCODER.encode(body).encode()


def _revive(info: dict[str, Any]) -> dict[str, Any]:
    for key in _DATES:
        if isinstance(info.get(key), str):
            try:
                info[key] = datetime.fromisoformat(info[key])
            except ValueError:
                pass
    return info
