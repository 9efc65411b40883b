"""How a mount's configuration becomes its layered backend.

Layers, from the storage up: the adapter (:mod:`storied.backends.registry`), ``Compressing``
(the ``compress`` globs, ADR 0021), ``Retrying`` for transient errors, ``Referencing`` (dedup
references, ADR 0022), ``HideReserved`` (the ``.storied`` area), then ``Permissions``. The manager
keeps ``_raw`` (below the reserved-area layer: what history engines write through) and
``_hiders`` per root mount; a relative mount is a ``Prefixed`` view of its parent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from storied import paths
from storied.backends import compressing, registry
from storied.backends.base import Backend
from storied.backends.referencing import Referencing, find_layer
from storied.backends.wrappers import HideReserved, Permission, Permissions, Prefixed, Retrying
from storied.errors import StorageConfigError, StoragePermissionError

__all__ = ["MountBuilding"]

#: Longest chain of relative mounts (a relative mount of a relative mount...).
_MAX_RELATIVE_DEPTH = 64


class MountBuilding:
    """Mixed into :class:`~storied.core.manager.StorageManager`: builds mounts' layers."""

    _mounts: dict[str, Backend]
    _raw: dict[str, Backend]
    _parents: dict[str, tuple[str, str]]
    _hiders: dict[str, HideReserved]

    def _build(self, name: str, config: Mapping[str, Any], relative: str | None) -> Backend:
        if relative is not None:
            backend = self._build_relative(name, config, relative)
        elif config.get("backend") is not None:  # a Backend instance (MockBackend, ...)
            backend = self._instance_backend(name, config)
        else:
            kind = config.get("protocol") or config.get("type")
            if config.get("type") and config.get("protocol") not in (None, config["type"]):
                raise StorageConfigError(
                    f"Mount {name!r}: 'type' {config['type']!r} and 'protocol' "
                    f"{config['protocol']!r} disagree (give one of them)"
                )
            if not kind:
                raise StorageConfigError(
                    f"Mount configuration for {name!r} missing required field: 'protocol' "
                    "(or 'type')"
                )
            backend = registry.build(kind, name, config)
            backend = compressing.wrap(name, config, backend)
            attempts = config.get("retries")
            if attempts is None:
                attempts = registry.TYPES[kind].retries
            if attempts > 1:
                backend = Retrying(backend, attempts=attempts)
            backend = Referencing(backend)  # dedup references (REF, ADR 0022)
            self._raw[name] = backend
            backend = self._hiders[name] = HideReserved(backend)
        return self._apply_permissions(name, config, backend)

    def _instance_backend(self, name: str, config: Mapping[str, Any]) -> Backend:
        """A mount over a ready :class:`Backend` (``{'name': ..., 'backend': obj}``), retried
        like a remote storage unless ``retries`` says otherwise."""
        if config.get("type") or config.get("protocol"):
            raise StorageConfigError(f"Mount {name!r}: give 'backend' or 'type', not both")
        backend: Backend = compressing.wrap(name, config, config["backend"])
        attempts = config.get("retries")
        if attempts is None:
            attempts = 3
        if attempts > 1:
            backend = Retrying(backend, attempts=attempts)
        if find_layer(backend, "") is None:
            backend = Referencing(backend)  # dedup references, unless the instance has them
        self._raw[name] = backend
        backend = self._hiders[name] = HideReserved(backend)
        return self._apply_permissions(name, config, backend)

    def _build_relative(self, name: str, config: Mapping[str, Any], spec: str) -> Backend:
        extra = set(config) - set(registry.RELATIVE_SCHEMA)
        if extra:
            raise StorageConfigError(
                f"Unknown key {sorted(extra)[0]!r} for relative mount {name!r}. "
                "Accepted keys: name, path, permissions, readonly"
            )
        parent_name, sub = paths.split_fullpath(spec)
        ancestor, depth = parent_name, 1
        while ancestor in self._parents and ancestor != name:
            ancestor, depth = self._parents[ancestor][0], depth + 1
        if depth > _MAX_RELATIVE_DEPTH:  # each level is a wrapper: deeper chains hit RecursionError
            raise StorageConfigError(
                f"Relative mount {name!r}: 'path' {spec!r} is {depth} relative mounts deep "
                f"(at most {_MAX_RELATIVE_DEPTH}); make it relative to a mount nearer the root"
            )
        if ancestor == name:
            raise StorageConfigError(
                f"Relative mount {name!r} cannot be inside itself: 'path' {spec!r} "
                f"leads back to {name!r}"
            )
        parent = self._mounts.get(parent_name)
        if parent is None:
            available = ", ".join(f"'{m}'" for m in self._mounts) or "none"  # genro's wording
            raise StorageConfigError(
                f"Parent mount {parent_name!r} not found for relative mount {name!r}. "
                f"Available mounts: {available}"
            )
        try:
            sub = paths.check_public(paths.normalize(sub, allow_absolute=False))
        except (ValueError, StoragePermissionError) as exc:  # StoragePermissionError: .storied
            raise StorageConfigError(f"Mount {name!r}: invalid 'path' {spec!r}: {exc}") from exc
        self._parents[name] = (parent_name, sub)
        return Prefixed(parent, sub) if sub else parent

    def _apply_permissions(self, name: str, config: Mapping[str, Any], backend: Backend) -> Backend:
        value = config.get("permissions")
        if config.get("readonly") is True:
            if value not in (None, "readonly"):
                raise StorageConfigError(
                    f"Mount {name!r}: 'readonly: true' contradicts 'permissions: {value}'"
                )
            value = "readonly"
        if value is None:
            return backend
        level = Permission.parse(value, name)
        caps = backend.static_capabilities
        refused = f"Cannot configure mount {name!r} with {level.value!r} permission. "  # genro's
        if caps.readonly and level is not Permission.READONLY:
            raise StorageConfigError(
                refused + "Backend type is read-only (supports only 'readonly' permission)"
            )
        if not caps.write and level is not Permission.READONLY:
            raise StorageConfigError(refused + "Backend does not support write operations")
        if level is Permission.DELETE and not caps.delete:
            raise StorageConfigError(refused + "Backend does not support delete operations")
        return Permissions(backend, level)
