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
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from storied.backends._config_kinds import (  # re-exported: adapters and tests use them
    ATTEMPTS as ATTEMPTS,
)
from storied.backends._config_kinds import (
    BOOL as BOOL,
)
from storied.backends._config_kinds import (
    CERT as CERT,
)
from storied.backends._config_kinds import (
    ENCRYPTED as ENCRYPTED,
)
from storied.backends._config_kinds import (
    FAULTS as FAULTS,
)
from storied.backends._config_kinds import (
    GLOBS as GLOBS,
)
from storied.backends._config_kinds import (
    HISTORY as HISTORY,
)
from storied.backends._config_kinds import (
    INTEGER as INTEGER,
)
from storied.backends._config_kinds import (
    MAPPING as MAPPING,
)
from storied.backends._config_kinds import (
    MAX_RETRIES as MAX_RETRIES,
)
from storied.backends._config_kinds import (
    MAX_SECONDS as MAX_SECONDS,
)
from storied.backends._config_kinds import (
    NON_NEGATIVE as NON_NEGATIVE,
)
from storied.backends._config_kinds import (
    PATH as PATH,
)
from storied.backends._config_kinds import (
    PATH_OR_CALLABLE as PATH_OR_CALLABLE,
)
from storied.backends._config_kinds import (
    PATHS as PATHS,
)
from storied.backends._config_kinds import (
    PORT as PORT,
)
from storied.backends._config_kinds import (
    POSITIVE_INT as POSITIVE_INT,
)
from storied.backends._config_kinds import (
    PROBABILITY as PROBABILITY,
)
from storied.backends._config_kinds import (
    SECONDS as SECONDS,
)
from storied.backends._config_kinds import (
    STR as STR,
)
from storied.backends._config_kinds import (
    STR_MAP as STR_MAP,
)
from storied.backends._config_kinds import (
    STR_OR_MAPPING as STR_OR_MAPPING,
)
from storied.backends._config_kinds import (
    VERIFY as VERIFY,
)
from storied.backends._config_kinds import (
    Kind as Kind,
)
from storied.backends._config_kinds import (
    check_value as check_value,
)
from storied.backends._config_kinds import (
    choice as choice,
)
from storied.backends._config_kinds import (
    short_repr as short_repr,
)
from storied.backends._config_kinds import (
    timeouts as timeouts,
)
from storied.backends._unavailable import UnavailableBackend
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


log: logging.Logger = logging.getLogger("storied.backends")


def _missing_name(exc: ModuleNotFoundError) -> str:
    """The module a MissingDependencyError raised by an adapter names, if it says."""
    text = str(exc)
    start = text.find("needs '")
    return text[start + 7 : text.find("'", start + 7)] if start >= 0 else ""


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
    "compress": GLOBS,
    "compression": choice("gzip", "zstd"),  # a tar mount's own 'compression' is its archive's
}
#: Common keys that a mount type may also declare as its own (then they are the type's).
SHARED_KEYS = frozenset({"compression"})
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
    declared = TYPES.get(config.get("protocol") or config.get("type") or "")
    own = set(declared.optional) | set(declared.required) if declared else set()
    for key, kind in schema.items():
        value = config.get(key)
        if value is not None and not (key in SHARED_KEYS and key in own):
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
            if key in COMMON_KEYS and not (key in SHARED_KEYS and key in allowed):
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
#: Per-mount timeouts of every network type (resolved by :func:`timeouts`; S3 has its own).
_TIMEOUTS = ("connect_timeout", "read_timeout")
_TIMEOUT_KINDS = {"connect_timeout": SECONDS, "read_timeout": SECONDS}
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
                "multipart_chunksize",
                "max_concurrency",
                "version_aware",  # genro-storage's; storied probes the bucket's versioning
                "profile",
                "sse",
                "sse_kms_key_id",
                "storage_class",
                "connect_timeout",
                "read_timeout",
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
                "multipart_chunksize": POSITIVE_INT,
                "max_concurrency": POSITIVE_INT,
                "version_aware": BOOL,
                "sse": choice("AES256", "aws:kms"),
                "connect_timeout": SECONDS,
                "read_timeout": SECONDS,
            },
            label="S3",
        ),
        _t(
            "gcs",
            "fsspec_builders",
            "gcs",
            required=("bucket",),
            optional=("base_path", "token", "project", "endpoint_url", *_TIMEOUTS),
            aliases=_BUCKET,
            kinds={"token": STR_OR_MAPPING, **_TIMEOUT_KINDS},
            label="GCS",
        ),
        _t(
            "azure",
            "fsspec_builders",
            "azure",
            required=("container", "account_name"),
            optional=("base_path", "account_key", "sas_token", "connection_string", *_TIMEOUTS),
            kinds=_TIMEOUT_KINDS,
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
                *_TIMEOUTS,
            ),
            aliases={"path": "base_path"},
            kinds={
                **_TIMEOUT_KINDS,
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
            optional=("base_path", "username", "password", "token", "cert", "verify_ssl",
                      *_TIMEOUTS),
            aliases={"base_url": "url"},
            kinds={"cert": CERT, "verify_ssl": VERIFY, **_TIMEOUT_KINDS},
            label="WebDAV",
        ),
        _t(
            "http",
            "fsspec_builders",
            "http",
            required=("base_path",),
            optional=("headers", *_TIMEOUTS),
            aliases={"base_url": "base_path", "url": "base_path"},
            kinds={"headers": STR_MAP, **_TIMEOUT_KINDS},
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
            optional=("base_path", "username", "password", "domain", "port", "timeout",
                      *_TIMEOUTS),
            aliases={"path": "base_path"},
            kinds={"port": PORT, "timeout": SECONDS, **_TIMEOUT_KINDS},
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
            optional=("sha", "username", "token", "base_path", "api_url", "timeout", *_TIMEOUTS),
            kinds={"timeout": SECONDS, **_TIMEOUT_KINDS},
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
                "seed": INTEGER,
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

    No network I/O happens here: adapters of remote storages connect at first use. A type
    whose optional extra is not installed still gets its config fully checked, then an
    :class:`~storied.backends._unavailable.UnavailableBackend`: the mount's first operation
    raises :class:`MissingDependencyError` naming the extra (``pip install 'storied[gcs]'``),
    and the other mounts of the same config keep working.

    Raises:
        StorageConfigError: Unknown type, unknown key, missing required key, a value of the
            wrong type, or a value the adapter refuses.
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
        backend: Backend = getattr(module, func)(options)
    except ModuleNotFoundError as exc:  # MissingDependencyError too
        missing = exc.name or _missing_name(exc)
        if missing.startswith("storied") and not isinstance(exc, MissingDependencyError):
            raise
        log.info("mount %r (%s) is unavailable until %r is installed", mount, type_name,
                    missing)
        detail = str(exc) if isinstance(exc, MissingDependencyError) else None
        return UnavailableBackend(type_name, mount, missing or None, spec.extra, detail)
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
