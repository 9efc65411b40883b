"""Mount types: which keys each accepts (with their types), and where its adapter lives.

Each adapter module exposes ``from_config(config: dict) -> Backend`` (imported lazily).
``config`` has already been checked here: required keys present, aliases folded into their
standard names, no unknown keys, every value of its declared :class:`Kind` (converted where a
kind says so: a ``PathLike`` becomes a ``str``, a port given as ``"2222"`` an ``int``);
``config["name"]`` is the mount's name and ``config["retries"]`` its attempts for transient
errors (already applied around the adapter by the manager; an adapter may use it for probes of
its own). An adapter with a key prefix or remote base directory
returns its backend wrapped in :class:`~storied.backends.wrappers.Prefixed`.

The schema is declarative: :data:`COMMON_SCHEMA` for the keys every mount accepts,
:data:`RELATIVE_SCHEMA` for relative mounts (``path: 'parent:sub'``) and one
:class:`BackendType` per type. A key whose value is ``None`` counts as absent (YAML's empty
value, ``os.environ.get`` of an unset variable); a required key that is absent, ``None`` or ``""``
is reported with genro-storage's wording (``SFTP storage 'x' missing required field: 'host'``).
"""

from __future__ import annotations

import importlib
import math
import os
import re
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from storied.backends.base import Backend
from storied.errors import (
    InvalidPathError,
    MissingDependencyError,
    PathEscapeError,
    StorageConfigError,
    StorageError,
)

__all__ = [
    "COMMON_KEYS",
    "COMMON_SCHEMA",
    "RELATIVE_SCHEMA",
    "TYPES",
    "BackendType",
    "Kind",
    "build",
    "check_common",
    "check_value",
]


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


def _is_backend(value: Any) -> bool:
    from storied.backends.base import Backend

    return isinstance(value, Backend)


#: Keys every mount accepts, whatever its type (handled by the manager, not the adapter).
COMMON_SCHEMA: Mapping[str, Kind] = {
    "name": STR,
    "type": STR,
    "protocol": STR,
    "permissions": STR,  # the value is checked by Permission.parse (genro-storage's wording)
    "retries": ATTEMPTS,
    "readonly": BOOL,
    "versioning": BOOL,
    "history": HISTORY,
    "backend": Kind("a storied Backend instance", lambda v: _is_backend(v)),
    "default_encrypted": ENCRYPTED,
    "webhooks": Kind("a list of webhook mappings (url, events, secret, timeout)",
                     lambda v: isinstance(v, list) and all(isinstance(i, Mapping) for i in v)),
}
COMMON_KEYS = frozenset(COMMON_SCHEMA)
#: Keys of a relative mount (``path: 'parent:sub/dir'``); ``type``/``protocol`` are ignored.
RELATIVE_SCHEMA: Mapping[str, Kind] = {
    "default_encrypted": ENCRYPTED,
    "name": STR,
    "path": STR,
    "permissions": STR,
    "readonly": BOOL,
    "type": STR,
    "protocol": STR,
}


def check_common(mount: str, config: Mapping[str, Any], schema: Mapping[str, Kind]) -> None:
    """Check the types of the common keys of ``config`` (``None`` counts as absent)."""
    for key, kind in schema.items():
        value = config.get(key)
        if value is not None:
            check_value(mount, key, value, kind)


# ------------------------------------------------------------------------------- mount types
@dataclass(frozen=True)
class BackendType:
    """How to build one mount type.

    Attributes:
        name: The ``type`` value.
        target: ``"module:function"`` of the adapter's ``from_config``.
        required: Keys that must be present (after aliases are folded).
        optional: Keys that may be present.
        aliases: Legacy key -> standard key (genro-storage spellings).
        extra: The pip extra that installs the adapter's dependencies, if any.
        retries: Default attempts for transient errors (1 for storages that never have them).
        kinds: Key -> expected :class:`Kind`; a key not listed is a string (:data:`STR`).
        label: How genro-storage names the type in messages (``"SFTP"``); default capitalised.
        unless: Required key -> keys any one of which makes it unnecessary (Azure's
            ``account_name`` when a ``connection_string`` is given).
    """

    name: str
    target: str
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)
    extra: str | None = None
    retries: int = 4
    kinds: Mapping[str, Kind] = field(default_factory=dict)
    label: str = ""
    unless: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def normalize(self, mount: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """Fold aliases, check unknown keys, types and required keys; return the adapter's
        config (values converted by their kind, ``None`` values dropped)."""
        out: dict[str, Any] = {}
        allowed = set(self.required) | set(self.optional)
        where = f" ({self.name})"
        for key, value in config.items():
            if key in COMMON_KEYS:
                continue
            std = self.aliases.get(key, key) if isinstance(key, str) else key
            if std not in allowed:
                raise StorageConfigError(
                    f"Unknown key {key!r} for {self.name} mount {mount!r}. "
                    f"Accepted keys: {', '.join(sorted(allowed | set(self.aliases)))}"
                )
            if value is None or (std in out and key != std):
                continue  # the standard spelling wins over its alias
            out[std] = check_value(mount, key, value, self.kinds.get(std, STR), where)
        for key in self.required:
            if out.get(key) in (None, "") and not any(out.get(k) for k in self.unless.get(key, ())):
                raise StorageConfigError(
                    f"{self.label or self.name.capitalize()} storage {mount!r} "
                    f"missing required field: {key!r}"
                )
        return out


def _t(name: str, module: str, extra: str | None = None, **kw: Any) -> BackendType:
    func = "from_config" if module in ("local", "memory", "s3", "base64") else f"{name}_from_config"
    return BackendType(name, f"storied.backends.{module}:{func}", extra=extra, **kw)


_BUCKET = {"prefix": "base_path"}
TYPES: dict[str, BackendType] = {
    t.name: t
    for t in (
        _t(
            "local",
            "local",
            required=("base_path",),
            optional=("base_url", "fsync"),
            aliases={"path": "base_path"},
            retries=1,
            kinds={"base_path": PATH_OR_CALLABLE, "fsync": BOOL},
        ),
        _t("memory", "memory", optional=("base_path", "store"), retries=1),
        _t(
            "s3",
            "s3",
            "s3",
            required=("bucket",),
            optional=(
                "base_path",
                "region",
                "key",
                "secret",
                "token",
                "endpoint_url",
                "anon",
                "client_kwargs",
                "multipart_threshold",
                "version_aware",  # genro-storage's; storied probes the bucket's versioning
            ),
            aliases={
                **_BUCKET,
                "access_key": "key",
                "secret_key": "secret",
                "region_name": "region",
            },
            kinds={
                "anon": BOOL,
                "client_kwargs": MAPPING,
                "multipart_threshold": POSITIVE_INT,
                "version_aware": BOOL,
            },
            label="S3",
        ),
        _t(
            "gcs",
            "fsspec_builders",
            "gcs",
            required=("bucket",),
            optional=("base_path", "token", "project", "endpoint_url"),
            aliases=_BUCKET,
            kinds={"token": STR_OR_MAPPING},
            label="GCS",
        ),
        _t(
            "azure",
            "fsspec_builders",
            "azure",
            required=("container", "account_name"),
            optional=("base_path", "account_key", "sas_token", "connection_string"),
            label="Azure",
            unless={"account_name": ("connection_string",)},
        ),
        _t(
            "sftp",
            "fsspec_builders",
            "sftp",
            required=("host", "username"),
            optional=(
                "base_path",
                "password",
                "port",
                "key_filename",
                "passphrase",
                "timeout",
                "known_hosts",
            ),
            aliases={"path": "base_path"},
            kinds={
                "port": PORT,
                "timeout": SECONDS,
                "key_filename": PATHS,
                "known_hosts": PATH,
            },
            label="SFTP",
        ),
        _t(
            "webdav",
            "fsspec_builders",
            "webdav",
            required=("url",),
            optional=("base_path", "username", "password", "token", "cert", "verify_ssl"),
            aliases={"base_url": "url"},
            kinds={"cert": CERT, "verify_ssl": VERIFY},
            label="WebDAV",
        ),
        _t(
            "http",
            "fsspec_builders",
            "http",
            required=("base_path",),
            optional=("headers",),
            aliases={"base_url": "base_path", "url": "base_path"},
            kinds={"headers": STR_MAP},
            label="HTTP",
        ),
        _t(
            "zip",
            "archive",
            required=("file",),
            optional=("base_path", "mode", "autoflush"),
            retries=1,
            kinds={"file": PATH, "mode": choice("r", "w", "a"), "autoflush": BOOL},
            label="ZIP",
        ),
        _t(
            "tar",
            "archive",
            required=("file",),
            optional=("base_path", "compression"),
            retries=1,
            kinds={"file": PATH, "compression": choice("gz", "bz2", "xz", "none")},
            label="TAR",
        ),
        _t(
            "smb",
            "smb",
            "smb",
            required=("host", "share"),
            optional=("base_path", "username", "password", "domain", "port", "timeout"),
            aliases={"path": "base_path"},
            kinds={"port": PORT, "timeout": SECONDS},
            label="SMB",
        ),
        _t(
            "git",
            "git",
            "git",
            required=("base_path",),
            optional=("ref", "fo"),
            aliases={"path": "base_path"},
            retries=1,
            kinds={"base_path": PATH, "fo": PATH},
            label="Git",
        ),
        _t(
            "github",
            "github",
            required=("org", "repo"),
            optional=("sha", "username", "token", "base_path", "api_url", "timeout"),
            kinds={"timeout": SECONDS},
            label="GitHub",
        ),
        _t(
            "libarchive",
            "libarchive",
            "libarchive",
            required=("file",),
            optional=("base_path",),
            retries=1,
            kinds={"file": PATH},
            label="LibArchive",
        ),
        _t("base64", "base64", retries=1, label="Base64"),
        BackendType(
            "mock",
            "storied.testing.mock:from_config",
            optional=("latency_ms", "jitter_ms", "failure_rate", "seed", "faults", "wraps"),
            kinds={
                "latency_ms": NON_NEGATIVE,
                "jitter_ms": NON_NEGATIVE,
                "failure_rate": PROBABILITY,
                "seed": Kind("an integer", _is_int),
                "faults": FAULTS,
                "wraps": MAPPING,
            },
            label="Mock",
        ),
    )
}
TYPES["az"] = TYPES["azure"]


def build(type_name: str, mount: str, config: Mapping[str, Any]) -> Backend:
    """Build the adapter for ``type_name`` from a mount's ``config``.

    No network I/O happens here: adapters of remote storages connect at first use.

    Raises:
        StorageConfigError: Unknown type, unknown key, missing required key, a value of the
            wrong type, or a value the adapter refuses.
        MissingDependencyError: The type's optional extra is not installed.
    """
    spec = TYPES.get(type_name)
    if spec is None:
        supported = ", ".join(sorted(TYPES))
        raise StorageConfigError(
            f"Unknown storage type {type_name!r} for mount {mount!r}. Supported types: {supported}"
        )
    options = spec.normalize(mount, config)
    options["name"] = mount
    options["retries"] = config.get("retries") or spec.retries
    module_name, _, func = spec.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").startswith("storied"):
            raise
        hint = f"pip install 'storied[{spec.extra}]'" if spec.extra else "reinstall storied"
        raise MissingDependencyError(
            f"Mount {mount!r} of type {type_name!r} needs {exc.name!r}: {hint}"
        ) from exc
    try:
        backend: Backend = getattr(module, func)(options)
    except StorageConfigError as exc:
        if repr(mount) in str(exc):
            raise
        raise StorageConfigError(f"Mount {mount!r} ({type_name}): {exc}") from exc
    except (PathEscapeError, InvalidPathError) as exc:
        raise StorageConfigError(f"Mount {mount!r} ({type_name}): invalid path: {exc}") from exc
    except StorageError:
        raise  # a missing base directory, a refused credential...: the adapter's own error
    except (TypeError, ValueError, AttributeError, LookupError) as exc:
        raise StorageConfigError(
            f"Mount {mount!r} ({type_name}): invalid configuration: {exc}"
        ) from exc
    if type_name in ("azure", "az"):
        backend.protocol = "azure"
    return backend
