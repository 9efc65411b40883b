"""Kinds of mount config values: what each key accepts, and the error naming what is wrong.

A :class:`Kind` pairs a test with a label for messages and an optional conversion;
:func:`check_value` applies one and raises :class:`~storied.errors.StorageConfigError`
naming the mount, the key and the expected type.
"""

from __future__ import annotations

import math
import os
import re
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from storied.errors import StorageConfigError


# ------------------------------------------------------------------------------- value kinds
@dataclass(frozen=True)
class Kind:
    """One expected type of a config value.

    Attributes:
        label: What the error message calls it (``"a bool (true or false)"``).
        accepts: True when a value is of this kind.
        convert: Applied to an accepted value before the adapter sees it.
    """

    label: str
    accepts: Callable[[Any], bool]
    convert: Callable[[Any], Any] = field(default=lambda value: value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_digits(value: Any) -> bool:
    return isinstance(value, str) and value.isascii() and value.isdigit()


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and value > 0


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike)) and isinstance(os.fspath(value), str)


def _is_str_map(value: Any) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


_BOOL_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "0", "1", ""})

STR = Kind("a string", lambda v: isinstance(v, str))
BOOL = Kind("a bool (true or false)", lambda v: isinstance(v, bool))
POSITIVE_INT = Kind("an integer >= 1", lambda v: _is_int(v) and v >= 1)
PORT = Kind(
    "a port number (an integer 1-65535)",
    lambda v: (_is_int(v) or _is_digits(v)) and 1 <= int(v) <= 65535,
    int,
)
#: Upper bounds of values that pass a type check but break later: a socket timeout beyond ~1e9 s
#: overflows at connect time (OverflowError), and 10**30 retries of a transient error is a hang.
MAX_SECONDS = 86400
MAX_RETRIES = 100
SECONDS = Kind(
    f"a number of seconds > 0 and <= {MAX_SECONDS}",
    lambda v: (_is_number(v) or (_is_digits(v) and int(v) > 0)) and float(v) <= MAX_SECONDS,
    lambda v: v if not isinstance(v, str) else int(v),
)
ATTEMPTS = Kind(
    f"an integer >= 1 and <= {MAX_RETRIES}", lambda v: _is_int(v) and 1 <= v <= MAX_RETRIES
)
PATH = Kind("a path (a string or os.PathLike)", _is_path, os.fspath)
PATH_OR_CALLABLE = Kind(
    "a path (a string or os.PathLike) or a callable",
    lambda v: callable(v) or _is_path(v),
    lambda v: v if callable(v) else os.fspath(v),
)
PATHS = Kind(
    "a path or a list of paths",
    lambda v: _is_path(v) or (isinstance(v, (list, tuple)) and bool(v) and all(map(_is_path, v))),
    lambda v: os.fspath(v) if _is_path(v) else [os.fspath(p) for p in v],
)
MAPPING = Kind(
    "a mapping with string keys",
    lambda v: isinstance(v, Mapping) and all(isinstance(k, str) for k in v),
    dict,
)
STR_MAP = Kind("a mapping of strings to strings", _is_str_map, dict)
STR_OR_MAPPING = Kind(
    "a string or a mapping", lambda v: isinstance(v, str) or MAPPING.accepts(v)
)
CERT = Kind(
    "a path or a [certificate, key] pair of paths",
    lambda v: _is_path(v)
    or (isinstance(v, (list, tuple)) and len(v) == 2 and all(map(_is_path, v))),
    lambda v: os.fspath(v) if _is_path(v) else tuple(os.fspath(p) for p in v),
)
VERIFY = Kind(
    "a bool (true or false) or the path of a CA bundle",
    lambda v: isinstance(v, bool) or (_is_path(v) and os.fspath(v).lower() not in _BOOL_WORDS),
    lambda v: v if isinstance(v, bool) else os.fspath(v),
)
HISTORY = Kind(
    "a 'mount:prefix' string", lambda v: isinstance(v, str) and ":" in v and v[0] != ":"
)


NON_NEGATIVE = Kind(
    "a number >= 0",
    lambda v: not isinstance(v, bool) and isinstance(v, (int, float)) and 0 <= v < math.inf,
)
PROBABILITY = Kind(
    "a number between 0 and 1",
    lambda v: not isinstance(v, bool) and isinstance(v, (int, float)) and 0 <= v <= 1,
)
FAULTS = Kind(
    "a list of fault kinds or a mapping of fault kind to weight",
    lambda v: (isinstance(v, (list, tuple)) and all(isinstance(k, str) for k in v))
    or (isinstance(v, Mapping) and all(isinstance(k, str) for k in v)),
    lambda v: list(v) if isinstance(v, (list, tuple)) else dict(v),
)


def choice(*values: str) -> Kind:
    """A string that must be one of ``values``."""
    return Kind(f"one of {', '.join(repr(v) for v in values)}", lambda v: v in values)


_SHORT = reprlib.Repr()  # keyword arguments only from Python 3.12
for _attr in ("maxlist", "maxtuple", "maxdict", "maxset", "maxfrozenset", "maxdeque", "maxarray"):
    setattr(_SHORT, _attr, 4)
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxlong, _SHORT.maxother = 3, 60, 60, 60


def short_repr(value: Any) -> str:
    """A repr of at most ~60 characters that never builds the full repr first (a YAML alias
    bomb is a small document whose full repr takes gigabytes)."""
    text = _SHORT.repr(value)
    return text[:57] + "..." if len(text) > 60 else text


def _describe(value: Any) -> str:
    text = short_repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def check_value(mount: str, key: str, value: Any, kind: Kind, where: str = "") -> Any:
    """``value`` converted by ``kind``, or a :class:`StorageConfigError` naming the mount, the
    key and the expected type (``where`` adds the mount type to the message)."""
    try:
        ok = kind.accepts(value)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise StorageConfigError(
            f"Mount {mount!r}{where}: {key!r} must be {kind.label}, got {_describe(value)}"
        )
    return kind.convert(value)


#: ``default_encrypted``: a bool, or an encryption domain name ([a-z0-9_-], up to 64).
ENCRYPTED = Kind(
    "a bool or an encryption domain name ([a-z0-9_-], up to 64 characters)",
    lambda v: isinstance(v, bool) or (isinstance(v, str) and re.fullmatch(r"[a-z0-9_-]{0,64}",
                                                                            v) is not None),
)


GLOBS = Kind(
    "a list of glob patterns ('*.json') or one pattern",
    lambda v: (isinstance(v, str) and v != "")
    or (isinstance(v, (list, tuple)) and bool(v) and all(isinstance(g, str) and g for g in v)),
    lambda v: [v] if isinstance(v, str) else list(v),
)

INTEGER = Kind("an integer", _is_int)

#: Defaults of the network mounts' ``connect_timeout`` and ``read_timeout`` (seconds): a hung
#: endpoint fails in seconds, not minutes.
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0


def timeouts(config: Mapping[str, Any]) -> tuple[float, float]:
    """``(connect, read)`` seconds of a network mount's checked config.

    ``connect_timeout`` bounds opening the connection (TCP connect, TLS, the protocol's
    handshake and login); ``read_timeout`` bounds each wait for the server's answer or the
    next bytes of a body. genro-storage's single ``timeout`` (sftp, smb, github) sets both
    where the specific key is absent. Defaults: :data:`DEFAULT_CONNECT_TIMEOUT`,
    :data:`DEFAULT_READ_TIMEOUT`.
    """
    legacy = config.get("timeout")
    connect = config.get("connect_timeout") or legacy or DEFAULT_CONNECT_TIMEOUT
    read = config.get("read_timeout") or legacy or DEFAULT_READ_TIMEOUT
    return float(connect), float(read)
