"""Mount types: which keys each accepts, and where its adapter lives (imported lazily).

Each adapter module exposes ``from_config(config: dict) -> Backend``. ``config`` has already been
checked here: required keys present, aliases folded into their standard names, no unknown keys;
``config["name"]`` is the mount's name. An adapter with a key prefix or remote base directory
returns its backend wrapped in :class:`~storied.backends.wrappers.Prefixed`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from storied.backends.base import Backend
from storied.errors import MissingDependencyError, StorageConfigError

__all__ = ["COMMON_KEYS", "TYPES", "BackendType", "build"]

#: Keys every mount accepts, whatever its type (handled by the manager, not the adapter).
COMMON_KEYS = frozenset(
    {"name", "type", "protocol", "permissions", "retries", "readonly", "versioning", "history"}
)


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
    """

    name: str
    target: str
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)
    extra: str | None = None
    retries: int = 4

    def normalize(self, mount: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """Fold aliases, then check required and unknown keys; return the adapter's config."""
        out: dict[str, Any] = {}
        allowed = set(self.required) | set(self.optional)
        for key, value in config.items():
            if key in COMMON_KEYS:
                continue
            std = self.aliases.get(key, key)
            if std not in allowed:
                raise StorageConfigError(
                    f"Unknown key {key!r} for {self.name} mount {mount!r}. "
                    f"Accepted keys: {', '.join(sorted(allowed | set(self.aliases)))}"
                )
            out[std] = value
        for key in self.required:
            if key not in out or out[key] in (None, ""):
                raise StorageConfigError(
                    f"{self.name.capitalize()} storage {mount!r} missing required field: {key!r}"
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
            ),
            aliases={
                **_BUCKET,
                "access_key": "key",
                "secret_key": "secret",
                "region_name": "region",
            },
        ),
        _t(
            "gcs",
            "fsspec_adapters",
            "gcs",
            required=("bucket",),
            optional=("base_path", "token", "project", "endpoint_url"),
            aliases=_BUCKET,
        ),
        _t(
            "azure",
            "fsspec_adapters",
            "azure",
            required=("container",),
            optional=("base_path", "account_name", "account_key", "sas_token", "connection_string"),
        ),
        _t(
            "sftp",
            "fsspec_adapters",
            "sftp",
            required=("host",),
            optional=(
                "username",
                "base_path",
                "password",
                "port",
                "key_filename",
                "passphrase",
                "timeout",
                "known_hosts",
            ),
            aliases={"path": "base_path"},
        ),
        _t(
            "webdav",
            "fsspec_adapters",
            "webdav",
            required=("url",),
            optional=("base_path", "username", "password", "token", "cert", "verify_ssl"),
            aliases={"base_url": "url"},
        ),
        _t(
            "http",
            "fsspec_adapters",
            "http",
            required=("base_path",),
            optional=("headers",),
            aliases={"base_url": "base_path", "url": "base_path"},
        ),
        _t("zip", "archive", required=("file",), optional=("base_path",), retries=1),
        _t("tar", "archive", required=("file",), optional=("base_path", "compression"), retries=1),
        _t("base64", "base64", retries=1),
    )
}
TYPES["az"] = TYPES["azure"]


def build(type_name: str, mount: str, config: Mapping[str, Any]) -> Backend:
    """Build the adapter for ``type_name`` from a mount's ``config``.

    Raises:
        StorageConfigError: Unknown type, unknown key or missing required key.
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
    backend: Backend = getattr(module, func)(options)
    if type_name in ("azure", "az"):
        backend.protocol = "azure"
    return backend
