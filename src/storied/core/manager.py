"""StorageManager: the mount table and the node factory."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from storied import paths
from storied.backends import registry
from storied.backends.base import Backend
from storied.backends.wrappers import HideReserved
from storied.core.bulkmethods import BulkMethods
from storied.core.config import (
    HistoryPlace,
    check_history_keys,
    check_history_places,
    has_portable_history,
    load_mounts,
    location,
    refuse_engine_switch,
    relative_spec,
)
from storied.core.encryption import EncryptionMethods
from storied.core.eventing import EventMethods
from storied.core.mounting import MountBuilding
from storied.core.optimizing import OptimizeMethods
from storied.core.recording import RecordingMethods
from storied.core.webhooking import WebhookMethods
from storied.errors import (
    InvalidPathError,
    MountNotFoundError,
    StorageConfigError,
    StorageError,
)

if TYPE_CHECKING:
    from storied.core.node import StorageNode
    from storied.core.virtual import DiffNode, IterNode
    from storied.versioning.engine import VerifyReport
    from storied.versioning.history import MountHistory

__all__ = ["StorageManager"]

_MOUNT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


class StorageManager(
    MountBuilding,
    BulkMethods,
    EventMethods,
    WebhookMethods,
    RecordingMethods,
    OptimizeMethods,
    EncryptionMethods,
):
    """Holds named mounts and makes nodes for ``'mount:path'`` strings.

    Examples:
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
        self._hiders: dict[str, HideReserved] = {}  # root mount -> its reserved-area layer
        self._implicit_mounts: set[str] = set()  # made for URL addresses (core/urls.py)
        self._local_mounts: dict[str, bool] = {}  # mount -> its nodes are os.PathLike

    # ------------------------------------------------------------------ configuration
    def configure(self, source: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
                  storage_key: str | None = None) -> None:
        """Add (or replace, by name) the mounts described by ``source``, all or none.

        No network I/O happens here: a remote storage connects at first use, and its errors
        (unreachable host, refused credentials) come then, as storied errors.

        Args:
            source: A list of mount dicts or a ``.yaml``/``.yml``/``.json``/``.toml`` file path.

        Raises:
            StorageConfigError: ``source`` is neither a list nor a path, the file is not UTF-8
                or does not parse, or a mount is invalid (the message names the mount and the
                key). When any mount is refused, no mount of ``source`` is added.
            StorageNotFoundError: The file does not exist.

        ``storage_key`` (genro-storage's name): key material for encrypted writes, installed
        with :meth:`set_encryption_keys` before the mounts.
        """
        mounts = load_mounts(source)
        if storage_key is not None:
            self.set_encryption_keys(storage_key)
        saved = self._save()
        try:
            for config in mounts:
                self._add(config)
            self._protect_histories()
        except BaseException:
            self._restore(saved)
            raise
        for config in mounts:
            self._mount_webhooks(config["name"], config)

    def add_mount(self, config: Mapping[str, Any]) -> None:
        """Add one mount (replacing a mount of the same name); a refused mount changes nothing.

        Common keys: ``name`` (required), ``type`` or ``protocol`` (required unless ``path`` names
        a parent mount as ``'parent:sub/dir'``), ``permissions`` (``readonly`` | ``readwrite`` |
        ``delete``), ``readonly`` (a bool: ``true`` is ``permissions: readonly``), ``retries``
        (attempts for transient errors, an int >= 1; default 4 for network storages, 1 for local
        ones; 1 disables), ``versioning`` (a bool), ``history`` (``'mount:prefix'``).
        The other keys depend on the type (see :mod:`storied.backends.registry`); every value
        is type-checked.

        Raises:
            StorageConfigError: The message names the mount, the key and the expected type.
        """
        saved = self._save()
        try:
            self._add(config)
            self._protect_histories()
        except BaseException:
            self._restore(saved)
            raise
        self._mount_webhooks(config["name"], config)

    def _tables(self) -> tuple[dict[str, Any], ...]:
        return self._mounts, self._configs, self._raw, self._parents, self._hiders

    def _save(self) -> tuple[dict[str, Any], ...]:
        return tuple(dict(d) for d in self._tables())

    def _restore(self, saved: tuple[dict[str, Any], ...]) -> None:
        for current, old in zip(self._tables(), saved, strict=True):
            current.clear()
            current.update(old)
        self._histories.clear()

    def _add(self, config: Mapping[str, Any]) -> None:
        if not isinstance(config, Mapping):
            raise StorageConfigError(
                f"A mount configuration is a mapping, not {registry.short_repr(config)}"
            )
        name = config.get("name")
        if name is None or name == "":
            raise StorageConfigError("Mount configuration missing required field: 'name'")
        if not isinstance(name, str) or not _MOUNT_NAME.match(name):
            raise StorageConfigError(
                f"Invalid mount name {name!r}: use letters, digits, '_', '-', '.'"
            )
        bad = [k for k in config if not isinstance(k, str)]
        if bad:
            raise StorageConfigError(f"Mount {name!r}: config keys are strings, not {bad[0]!r}")
        relative = relative_spec(config)
        registry.check_common(
            name, config, registry.RELATIVE_SCHEMA if relative else registry.COMMON_SCHEMA
        )
        if not relative:
            self._check_webhooks(name, config)
        for table in (self._parents, self._raw, self._hiders):
            table.pop(name, None)
        backend = self._build(name, config, relative)
        self._mounts[name] = backend
        self._local_mounts.clear()  # relative mounts follow their parent
        self._cassette_mount_added(name)
        self.set_mount_default_encrypted(name, config.get("default_encrypted") or False)
        self._configs[name] = dict(config)
        self._forget_histories(name)
        check_history_keys(name, config, self.has_mount)
        self._check_history_targets()

    def _check_history_targets(self) -> None:
        """Refuse portable histories that are read-only, shared, or inside their own data."""
        check_history_places([
            HistoryPlace(name, self._raw[name], config.get("history"),
                         self._mounts[paths.split_fullpath(config["history"])[0]]
                         if config.get("history") else None,
                         *self._history_place(name))
            for name, config in self._configs.items()
            if config.get("versioning") is True and name not in self._parents
        ])  # fmt: skip

    def _protect_histories(self) -> None:
        """Hide every portable history from every mount whose storage holds it, decided on
        resolved locations (:func:`~storied.core.config.location`), not mount names: the mount
        ``history: 'other:prefix'`` names, and any other mount of the same directory, bucket or
        memory store (``/x`` and ``/x/``, a symlinked path). There it is not listed, not
        writable, not deleted (engines write below this layer).

        Raises:
            StorageConfigError: A mount lies inside the history of a versioned mount (it could
                only show or destroy that history).
        """
        for name, config in self._configs.items():
            if config.get("versioning") is not True or name in self._parents:
                continue
            place = location(*self._history_place(name))
            for other, hider in self._hiders.items():
                where = location(self._raw[other])
                if where[0] != place[0]:
                    continue
                if paths.is_under(where[1], place[1]):
                    raise StorageConfigError(
                        f"Mount {other!r} lies inside the history of mount {name!r} "
                        f"({place[1] or '/'}): mount a place outside it"
                    )
                if paths.is_under(place[1], where[1]):
                    hider.hide(paths.relative_to(place[1], where[1]))

    def _forget_histories(self, name: str) -> None:
        """Drop the cached histories that depend on mount ``name``: its own, those of mounts
        relative to it, and those kept in it (``history:``)."""
        for mount in list(self._histories):
            spec = self._configs.get(mount, {}).get("history")
            target = paths.split_fullpath(spec)[0] if spec else None
            if name in self._chain(mount) or (target and name in self._chain(target)):
                del self._histories[mount]

    def _history_place(self, name: str) -> tuple[Backend, str]:
        """(backend, root) where the portable history of non-relative mount ``name`` lives."""
        spec = self._configs[name].get("history")
        if not spec:
            return self._raw[name], paths.RESERVED
        other, root = paths.split_fullpath(spec)
        root = paths.join(self._prefix_of(other), root)
        return self._raw_of(other), root or paths.RESERVED

    def delete_mount(self, name: str) -> None:
        """Remove a mount. Nodes already made keep working on the backend they hold.

        Raises:
            MountNotFoundError: No such mount (also a ``KeyError`` and a ``FileNotFoundError``).
            StorageConfigError: The mount holds the history of another mount (``history:``).
        """
        if name not in self._mounts:
            raise MountNotFoundError(self._missing(name))
        for other, config in self._configs.items():
            spec = config.get("history")
            if other != name and spec and name in self._chain(paths.split_fullpath(spec)[0]):
                raise StorageConfigError(
                    f"Mount {name!r} holds the history of mount {other!r}: delete or "
                    f"reconfigure {other!r} first"
                )
        self._forget_histories(name)
        del self._mounts[name]
        del self._configs[name]
        self._unmount_webhooks(name)
        for table in (self._raw, self._parents, self._hiders):
            table.pop(name, None)

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
        """A node for ``'mount:path'``, ``'mount'`` or ``'mount', 'part', 'part'``, or a URL
        (``'s3://bucket/key'``, ``'gs://…'``, ``'az://…'``, ``'file:///…'``, ``'memory://…'``:
        an implicit mount, see :mod:`storied.core.urls`).

        The path is normalised (empty and ``.`` segments dropped, a leading slash means the mount
        root). ``..``, control characters and backslashes are refused. With ``version`` the node
        is a read-only view of that version. With no argument the node has no mount (virtual).

        Raises:
            MountNotFoundError: The mount does not exist.
            PathEscapeError: The path tries to leave the mount (also ``ValueError``).
            InvalidPathError: A part is not a str, or the path is malformed.
        """
        from storied.core.node import StorageNode

        if mount_or_path is None:
            return StorageNode(self, None, "")
        if not isinstance(mount_or_path, str):
            raise InvalidPathError(
                f"A node path is a 'mount:path' str, not {type(mount_or_path).__name__}"
            )
        if "://" in mount_or_path[:10]:
            from storied.core.urls import is_url, mount_for_url

            if is_url(mount_or_path):
                mount_or_path = mount_for_url(self, mount_or_path)
        mount, first = paths.split_fullpath(mount_or_path)
        backend = self.get_backend(mount)
        if backend.capabilities.opaque_paths:
            return StorageNode(self, mount, "/".join(p for p in (first, *path_parts) if p), version)
        path = paths.normalize(first)
        if path_parts:
            path = paths.join(path, *path_parts)
        from storied.core.localnode import node_class

        return node_class(self, mount, backend)(self, mount, paths.check_public(path), version)

    # ------------------------------------------------------------------ history
    def history(self, name: str) -> MountHistory | None:
        """The version history of mount ``name``, or None when it keeps none.

        A mount keeps history when it says ``versioning: true`` (the portable engine, or the
        native one where the storage has versions) or, without saying, when the storage has
        native versions (an S3 bucket with versioning enabled: probed once). Relative mounts
        share their parent's history.

        The engine never switches on a storage that has history: a bucket with versioning
        enabled but a portable history (``.storied/versions/``) is refused, and so is
        ``versioning: true`` on a bucket whose versioning is suspended (native versions may
        exist) unless a portable history is already there (the mount was portable before).
        A probe that fails is not cached: the next call asks again.

        Raises:
            MountNotFoundError: No such mount.
            TransientStorageError: The versioning probe failed (the next call probes again).
            StorageConfigError: Choosing an engine would ignore the history the storage has.
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
        meta, root = self._history_place(name)
        if raw.has_native_versions():  # a failed probe raises: nothing is cached
            refuse_engine_switch(name, has_portable_history(meta, root), "portable")
            from storied.versioning.native import NativeEngine

            return MountHistory(NativeEngine(raw))
        if not wanted:
            return None
        status = getattr(raw.unwrap(), "versioning_status", None)  # S3: probed, cached
        if callable(status) and status() == "Suspended":  # native versions may exist
            refuse_engine_switch(name, not has_portable_history(meta, root), "native")
        from storied.versioning.portable import PortableEngine

        return MountHistory(PortableEngine(raw, meta, root))

    def _chain(self, name: str) -> list[str]:
        """``name`` and the mounts it is relative to, nearest first."""
        chain = [name]
        while chain[-1] in self._parents:
            chain.append(self._parents[chain[-1]][0])
        return chain

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
            A mount whose history cannot be opened (its versioning probe fails, or its engine
            would switch) is a problem of the report, not an exception.

        Raises:
            MountNotFoundError: ``prefix`` names no mount.
        """
        from storied.versioning.engine import VerifyReport
        from storied.versioning.verify import verify_history

        targets: list[tuple[str, str]]
        if prefix is None:
            targets = [(m, "") for m in self._mounts if m not in self._parents]
        else:
            mount, sub = paths.split_fullpath(prefix)
            targets = [(mount, paths.normalize(sub))]
        total = VerifyReport()
        for mount, sub in targets:
            try:
                found = self.history(mount)
            except MountNotFoundError:
                raise
            except StorageError as exc:  # a failed probe, an engine switch refused...
                total.problems.append(f"{mount}: cannot open its history: {exc}")
                continue
            if found is None:
                continue
            part = verify_history(found.engine, found._p(sub))
            total.checked += part.checked
            for attr in ("problems", "orphans", "stale"):
                getattr(total, attr).extend(f"{mount}: {item}" for item in getattr(part, attr))
        return total

    def iternode(self, *nodes: StorageNode) -> IterNode:
        """A virtual node whose content is its sources' contents, concatenated at read time."""
        from storied.core.virtual import IterNode

        return IterNode(self, list(nodes))

    def diffnode(self, node1: StorageNode, node2: StorageNode) -> DiffNode:
        """A virtual node whose text is the unified diff of two text nodes (computed lazily)."""
        from storied.core.virtual import DiffNode

        return DiffNode(self, node1, node2)

    def close(self) -> None:
        """Stop webhook deliveries (pending ones stay in their outbox), then close every
        mount's backend."""
        self.close_webhooks()
        for backend in self._mounts.values():
            backend.close()

    def __repr__(self) -> str:
        return f"StorageManager(mounts=[{', '.join(self._mounts)}])"
