"""StorageManager: the mount table and the node factory."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from storied import paths
from storied.backends import registry
from storied.backends.base import Backend
from storied.backends.wrappers import HideReserved, Permission, Permissions, Prefixed, Retrying
from storied.core.config import load_mounts
from storied.errors import MountNotFoundError, StorageConfigError

if TYPE_CHECKING:
    from storied.core.node import StorageNode
    from storied.core.virtual import DiffNode, IterNode
    from storied.versioning.engine import VerifyReport
    from storied.versioning.history import MountHistory

__all__ = ["StorageManager"]

_MOUNT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


class StorageManager:
    """Holds named mounts and makes nodes for ``'mount:path'`` strings.

    Example:
        >>> storage = StorageManager()
        >>> storage.configure([{'name': 'scratch', 'type': 'memory'}])
        >>> storage.node('scratch:notes/today.txt').write_text('hello')
        True
        >>> storage.node('scratch:notes/today.txt').read_text()
        'hello'
    """

    def __init__(self) -> None:
        self._mounts: dict[str, Backend] = {}
        self._configs: dict[str, dict[str, Any]] = {}
        self._raw: dict[str, Backend] = {}  # below permissions: what an engine writes through
        self._parents: dict[str, tuple[str, str]] = {}  # relative mount -> (parent, sub-path)
        self._histories: dict[str, MountHistory | None] = {}

    # ------------------------------------------------------------------ configuration
    def configure(self, source: str | os.PathLike[str] | Sequence[Mapping[str, Any]]) -> None:
        """Add (or replace, by name) the mounts described by ``source``.

        Args:
            source: A list of mount dicts or a ``.yaml``/``.yml``/``.json``/``.toml`` file path.

        Raises:
            TypeError: ``source`` is neither a list nor a path.
            StorageConfigError: A mount is invalid; the message names the mount and the key.
        """
        for config in load_mounts(source):
            self.add_mount(config)

    def add_mount(self, config: Mapping[str, Any]) -> None:
        """Add one mount (replacing a mount of the same name).

        Common keys: ``name`` (required), ``type`` or ``protocol`` (required unless ``path`` names
        a parent mount as ``'parent:sub/dir'``), ``permissions`` (``readonly`` | ``readwrite`` |
        ``delete``), ``retries`` (attempts for transient errors; default 4 for network storages,
        1 for local ones; 1 disables).
        The other keys depend on the type (see :mod:`storied.backends.registry`).
        """
        name = config.get("name")
        if not name:
            raise StorageConfigError("Mount configuration missing required field: 'name'")
        if not isinstance(name, str) or not _MOUNT_NAME.match(name):
            raise StorageConfigError(
                f"Invalid mount name {name!r}: use letters, digits, '_', '-', '.'"
            )
        self._parents.pop(name, None)
        backend = self._build(name, config)
        self._mounts[name] = backend
        self._configs[name] = dict(config)
        self._histories.pop(name, None)
        _check_history_keys(name, config, self)

    def _build(self, name: str, config: Mapping[str, Any]) -> Backend:
        parent_path = config.get("path")
        if isinstance(parent_path, str) and ":" in parent_path and not _is_windows(parent_path):
            backend = self._build_relative(name, config, parent_path)
        else:
            kind = config.get("type") or config.get("protocol")
            if not kind:
                raise StorageConfigError(
                    f"Mount configuration for {name!r} missing required field: 'type'"
                )
            backend = registry.build(str(kind), name, config)
            attempts = config.get("retries", registry.TYPES[str(kind)].retries)
            if not isinstance(attempts, int) or attempts < 1:
                raise StorageConfigError(f"Mount {name!r}: 'retries' must be an integer >= 1")
            if attempts > 1:
                backend = Retrying(backend, attempts=attempts)
            self._raw[name] = backend
            backend = HideReserved(backend)
        return self._apply_permissions(name, config, backend)

    def _build_relative(self, name: str, config: Mapping[str, Any], spec: str) -> Backend:
        extra = set(config) - {"name", "path", "permissions", "type", "protocol", "readonly"}
        if extra:
            raise StorageConfigError(
                f"Unknown key {sorted(extra)[0]!r} for relative mount {name!r}. "
                "Accepted keys: name, path, permissions"
            )
        parent_name, sub = paths.split_fullpath(spec)
        parent = self._mounts.get(parent_name)
        if parent is None:
            raise StorageConfigError(
                f"Parent mount {parent_name!r} not found for relative mount {name!r}. "
                f"Available mounts: {', '.join(self._mounts) or '(none)'}"
            )
        try:
            sub = paths.check_public(paths.normalize(sub, allow_absolute=False))
        except ValueError as exc:
            raise StorageConfigError(f"Mount {name!r}: invalid 'path' {spec!r}: {exc}") from exc
        self._parents[name] = (parent_name, sub)
        return Prefixed(parent, sub) if sub else parent

    def _apply_permissions(self, name: str, config: Mapping[str, Any], backend: Backend) -> Backend:
        value = config.get("permissions")
        if config.get("readonly") is True:
            value = value or "readonly"
        if value is None:
            return backend
        level = Permission.parse(str(value), name)
        caps = backend.static_capabilities
        if caps.readonly and level is not Permission.READONLY:
            raise StorageConfigError(
                f"Invalid permissions {level.value!r} for mount {name!r}: Backend type is "
                "read-only (supports only 'readonly' permission)"
            )
        if level is Permission.DELETE and not caps.delete:
            raise StorageConfigError(f"Mount {name!r}: backend cannot delete")
        return Permissions(backend, level)

    def delete_mount(self, name: str) -> None:
        """Remove a mount. Nodes already made keep working on the backend they hold.

        Raises:
            MountNotFoundError: No such mount (also a ``KeyError`` and a ``FileNotFoundError``).
        """
        if name not in self._mounts:
            raise MountNotFoundError(self._missing(name))
        del self._mounts[name]
        del self._configs[name]
        self._raw.pop(name, None)
        self._parents.pop(name, None)
        self._histories.pop(name, None)

    def get_mount_names(self) -> list[str]:
        """Mount names in the order they were added."""
        return list(self._mounts)

    def has_mount(self, name: str) -> bool:
        """True if a mount of that name exists."""
        return name in self._mounts

    def get_backend(self, name: str) -> Backend:
        """The (wrapped) backend of mount ``name``."""
        try:
            return self._mounts[name]
        except KeyError:
            raise MountNotFoundError(self._missing(name)) from None

    def _missing(self, name: str) -> str:
        available = ", ".join(self._mounts) or "(none)"
        return f"Mount point {name!r} not found. Available mounts: {available}"

    # ------------------------------------------------------------------ nodes
    def node(
        self,
        mount_or_path: str | None = None,
        *path_parts: str,
        version: int | str | None = None,
    ) -> StorageNode:
        """A node for ``'mount:path'``, ``'mount'`` or ``'mount', 'part', 'part'``.

        The path is normalised (empty and ``.`` segments dropped, a leading slash means the mount
        root). ``..``, control characters and backslashes are refused. With ``version`` the node
        is a read-only view of that version. With no argument the node has no mount (virtual).

        Raises:
            MountNotFoundError: The mount does not exist.
            PathEscapeError: The path tries to leave the mount (also ``ValueError``).
        """
        from storied.core.node import StorageNode

        if mount_or_path is None:
            return StorageNode(self, None, "")
        mount, first = paths.split_fullpath(mount_or_path)
        backend = self.get_backend(mount)
        if backend.capabilities.opaque_paths:
            return StorageNode(self, mount, "/".join(p for p in (first, *path_parts) if p), version)
        path = paths.normalize(first)
        if path_parts:
            path = paths.join(path, *path_parts)
        return StorageNode(self, mount, paths.check_public(path), version)

    # ------------------------------------------------------------------ history
    def history(self, name: str) -> MountHistory | None:
        """The version history of mount ``name``, or None when it keeps none.

        A mount keeps history when it says ``versioning: true`` (the portable engine, or the
        native one where the storage has versions) or, without saying, when the storage has
        native versions (an S3 bucket with versioning enabled: probed once). Relative mounts
        share their parent's history.
        """
        if name not in self._histories:
            self.get_backend(name)
            self._histories[name] = self._make_history(name)
        return self._histories[name]

    def _make_history(self, name: str) -> MountHistory | None:
        from storied.versioning.history import MountHistory

        if name in self._parents:
            parent, sub = self._parents[name]
            found = self.history(parent)
            if found is None:
                return None
            prefix = paths.join(found.prefix, sub) if sub else found.prefix
            return MountHistory(found.engine, prefix)
        wanted = self._configs[name].get("versioning")
        raw = self._raw[name]
        if wanted is False:
            return None
        if raw.has_native_versions():
            from storied.versioning.native import NativeEngine

            return MountHistory(NativeEngine(raw))
        if not wanted:
            return None
        from storied.versioning.portable import PortableEngine

        meta, root = raw, paths.RESERVED
        spec = self._configs[name].get("history")
        if spec:
            other, root = paths.split_fullpath(spec)
            meta, root = self._raw_of(other), paths.join(self._prefix_of(other), root)
        return MountHistory(PortableEngine(raw, meta, root or paths.RESERVED))

    def _raw_of(self, name: str) -> Backend:
        while name in self._parents:
            name = self._parents[name][0]
        return self._raw[name]

    def _prefix_of(self, name: str) -> str:
        prefix = ""
        while name in self._parents:
            name, sub = self._parents[name]
            prefix = paths.join(sub, prefix) if prefix else sub
        return prefix

    def verify(self, prefix: str | None = None) -> VerifyReport:
        """Check the history of one ``'mount:path'`` prefix, or of every versioned mount.

        Returns:
            A report whose ``ok`` is True when no invariant is broken; ``problems``,
            ``orphans`` (allowed, collectable) and ``stale`` working copies are listed apart.
        """
        from storied.versioning.engine import VerifyReport

        targets: list[tuple[str, str]]
        if prefix is None:
            targets = [(m, "") for m in self._mounts if m not in self._parents]
        else:
            mount, sub = paths.split_fullpath(prefix)
            targets = [(mount, paths.normalize(sub))]
        total = VerifyReport()
        for mount, sub in targets:
            found = self.history(mount)
            if found is None:
                continue
            part = found.verify(sub)
            total.checked += part.checked
            for attr in ("problems", "orphans", "stale"):
                getattr(total, attr).extend(f"{mount}: {item}" for item in getattr(part, attr))
        return total

    # ------------------------------------------------------------------ bulk & snapshots
    def bulk_compact_versions(self, prefix: str, dry_run: bool = False,
                              progress: Callable[[int, int], object] | None = None
                              ) -> dict[str, int]:
        """Compact every file with history under ``'mount:prefix'``.

        Returns:
            ``{fullpath: versions removed}`` (with ``dry_run``: that would be removed).
        """
        from storied.versioning.bulk import bulk_compact

        return bulk_compact(self, prefix, dry_run, progress)

    def bulk_cleanup_versions(self, prefix: str, keep_last: int | None = None,
                              keep_days: float | None = None, dry_run: bool = False,
                              progress: Callable[[int, int], object] | None = None
                              ) -> dict[str, list[str]]:
        """Apply ``cleanup_versions`` rules to every file under ``'mount:prefix'``.

        Returns:
            ``{fullpath: [removed version ids]}`` (with ``dry_run``: that would be removed).
        """
        from storied.versioning.bulk import bulk_cleanup

        return bulk_cleanup(self, prefix, keep_last, keep_days, dry_run, progress)

    def create_snapshot(self, prefix: str, tag: str) -> dict[str, Any]:
        """Record the current version of every file under ``'mount:prefix'`` as ``tag``."""
        from storied.versioning.bulk import create_snapshot

        return create_snapshot(self, prefix, tag)

    def list_snapshots(self, prefix: str | None = None) -> list[dict[str, Any]]:
        """Every snapshot (optionally only those within ``'mount:prefix'``), oldest first."""
        from storied.versioning.bulk import list_snapshots

        return list_snapshots(self, prefix)

    def get_snapshot(self, tag: str) -> dict[str, Any]:
        """A snapshot's tag, prefix, creation time and files (``{path: version_id}``)."""
        from storied.versioning.bulk import get_snapshot

        return get_snapshot(self, tag)

    def restore_snapshot(self, tag: str, dry_run: bool = False, delete_new: bool = False,
                         progress: Callable[[int, int], object] | None = None
                         ) -> dict[str, list[str]]:
        """Write every file of snapshot ``tag`` back as it was (new versions); see
        :func:`storied.versioning.bulk.restore_snapshot`."""
        from storied.versioning.bulk import restore_snapshot

        return restore_snapshot(self, tag, dry_run, delete_new, progress)

    def delete_snapshot(self, tag: str) -> None:
        """Remove snapshot ``tag``."""
        from storied.versioning.bulk import delete_snapshot

        delete_snapshot(self, tag)

    def iternode(self, *nodes: StorageNode) -> IterNode:
        """A virtual node whose content is its sources' contents, concatenated at read time."""
        from storied.core.virtual import IterNode

        return IterNode(self, list(nodes))

    def diffnode(self, node1: StorageNode, node2: StorageNode) -> DiffNode:
        """A virtual node whose text is the unified diff of two text nodes (computed lazily)."""
        from storied.core.virtual import DiffNode

        return DiffNode(self, node1, node2)

    def close(self) -> None:
        """Close every mount's backend."""
        for backend in self._mounts.values():
            backend.close()

    def __repr__(self) -> str:
        return f"StorageManager(mounts=[{', '.join(self._mounts)}])"


def _is_windows(path: str) -> bool:
    return len(path) > 2 and path[1] == ":" and path[2] in "\\/"


def _check_history_keys(name: str, config: Mapping[str, Any], manager: StorageManager) -> None:
    versioning, spec = config.get("versioning"), config.get("history")
    if versioning is not None and not isinstance(versioning, bool):
        raise StorageConfigError(f"Mount {name!r}: 'versioning' must be true or false")
    if spec is None:
        return
    if not versioning:
        raise StorageConfigError(f"Mount {name!r}: 'history' needs 'versioning: true'")
    other, _ = paths.split_fullpath(str(spec))
    if ":" not in str(spec) or not manager.has_mount(other):
        raise StorageConfigError(
            f"Mount {name!r}: 'history' must be 'mount:prefix' of an existing mount, not {spec!r}"
        )
