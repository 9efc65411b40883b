"""Backends that wrap backends: mount root, reserved area, permissions (and, re-exported from
:mod:`storied.backends.retrying`, retries).

Each keeps the :class:`~storied.backends.base.Backend` contract, so they stack in any order. The
manager builds a mount as ``Permissions(Prefixed(Retrying(adapter)))`` (only the layers it needs).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Hashable, Iterator
from dataclasses import replace
from enum import StrEnum
from typing import BinaryIO, cast

from storied import paths
from storied.backends.base import Backend, WrappedBackend, delete_tree
from storied.backends.retrying import Retrying as Retrying  # re-exported: its home until now
from storied.capabilities import Capabilities
from storied.errors import (
    StorageConfigError,
    StorageNotFoundError,
    StoragePermissionError,
)
from storied.info import Data, Info, ObjectVersion, WriteMode

__all__ = ["HideReserved", "Permission", "Permissions", "Prefixed", "Retrying"]


class Prefixed(WrappedBackend):
    """Confine a backend to a sub-path: the only place a mount path is joined.

    Paths given to this wrapper are relative to ``prefix``; the :class:`Info` records it returns
    are too. A mount root exists even before anything is stored under the prefix.
    """

    prefix: str

    def __init__(self, inner: Backend, prefix: str) -> None:
        super().__init__(inner)
        self.prefix = paths.normalize(prefix)

    def _in(self, path: str) -> str:
        return paths.join(self.prefix, path) if path else self.prefix

    def _out(self, info: Info) -> Info:
        return info.moved(paths.relative_to(info.path, self.prefix))

    def info(self, path: str) -> Info:
        try:
            return self._out(self.inner.info(self._in(path)))
        except StorageNotFoundError:
            if path:
                raise
            return Info("", is_dir=True)  # a mount root exists even before anything is in it

    def _entries(self, method: Callable[[str], Iterator[Info]], path: str) -> Iterator[Info]:
        try:
            yield from method(self._in(path))
        except StorageNotFoundError:
            if path:
                raise

    def list(self, path: str) -> Iterator[Info]:
        for entry in self._entries(self.inner.list, path):
            yield self._out(entry)

    def walk(self, path: str) -> Iterator[Info]:
        for entry in self._entries(self.inner.walk, path):
            yield self._out(entry)

    def walk_split(self, path: str) -> tuple[builtins.list[Info], builtins.list[Info]]:
        try:
            shown, hidden = self.inner.walk_split(self._in(path))
        except StorageNotFoundError:
            if path:
                raise
            return [], []
        return [self._out(e) for e in shown], [self._out(e) for e in hidden]

    def list_names(self, path: str, start_after: str | None = None) -> Iterator[tuple[str, bool]]:
        try:
            yield from self.inner.list_names(self._in(path), start_after)
        except StorageNotFoundError:
            if path:
                raise

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        return self.inner.open_read(self._in(path), start, end)

    def write(
        self,
        path: str,
        data: Data,
        *,
        mode: WriteMode = WriteMode.OVERWRITE,
        etag: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Info:
        info = self.inner.write(self._in(path), data, mode=mode, etag=etag, metadata=metadata)
        return self._out(info)

    def delete(self, path: str, *, recursive: bool = False) -> None:
        self.inner.delete(self._in(path), recursive=recursive)

    def delete_if_match(self, path: str, etag: str) -> None:
        self.inner.delete_if_match(self._in(path), etag)

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        self.inner.mkdir(self._in(path), parents=parents, exist_ok=exist_ok)

    def copy(self, src: str, dst: str) -> Info:
        return self._out(self.inner.copy(self._in(src), self._in(dst)))

    def move(self, src: str, dst: str) -> None:
        self.inner.move(self._in(src), self._in(dst))

    def exists(self, path: str) -> bool:
        return self.inner.exists(self._in(path))

    def read_bytes(self, path: str) -> bytes:
        return self.inner.read_bytes(self._in(path))

    def set_metadata(self, path: str, metadata: dict[str, str]) -> None:
        self.inner.set_metadata(self._in(path), metadata)

    def get_metadata(self, path: str) -> dict[str, str]:
        return self.inner.get_metadata(self._in(path))

    def url(self, path: str, expires_in: int = 3600) -> str | None:
        return self.inner.url(self._in(path), expires_in)

    def list_versions(self, path: str) -> builtins.list[ObjectVersion]:
        return [
            replace(v, path=paths.relative_to(v.path, self.prefix))
            for v in self.inner.list_versions(self._in(path))
        ]

    def open_version(
        self, path: str, version_id: str, start: int = 0, end: int | None = None
    ) -> BinaryIO:
        return self.inner.open_version(self._in(path), version_id, start, end)

    def delete_version(self, path: str, version_id: str) -> None:
        self.inner.delete_version(self._in(path), version_id)

    def delete_many(self, items: builtins.list[tuple[str, str | None]]) -> None:
        self.inner.delete_many([(self._in(p), v) for p, v in items])

    def link(self, src: str, dst: str) -> None:
        self.inner.link(self._in(src), self._in(dst))

    def walk_versions(self, path: str) -> Iterator[ObjectVersion]:
        walk = cast(Callable[[str], Iterator[Info]], self.inner.walk_versions)
        for version in cast(Iterator[ObjectVersion], self._entries(walk, path)):
            yield replace(version, path=paths.relative_to(version.path, self.prefix))

    def local_path(self, path: str) -> str | None:
        return self.inner.local_path(self._in(path))

    def location(self, path: str) -> tuple[Hashable, str]:
        return self.inner.location(self._in(path))

    def unlink_links(self, path: str) -> int:
        return self.inner.unlink_links(self._in(path))


class HideReserved(WrappedBackend):
    """What users see of a mount: the reserved area (:data:`storied.paths.RESERVED`) and
    temporary names (:data:`storied.paths.TMP_MARK`) hidden at any depth, and recursive
    deletes that delete only what listings show.

    Version engines write below this wrapper, so they still see everything. A recursive
    delete is :func:`~storied.backends.base.delete_tree`: the walked files, then the
    directories left empty; the history kept under ``.storied/`` (at the root or, from foreign
    copies, deeper) survives ``delete('', recursive=True)``. :meth:`hide` adds more protected
    prefixes (a history another mount keeps here with ``history: 'this:prefix'``).
    """

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self._extra: set[str] = set()

    def hide(self, prefix: str) -> None:
        """Hide ``prefix`` and everything below it from listings and walks, and refuse writes
        and deletes there (``StoragePermissionError``); recursive deletes above it skip it."""
        prefix = paths.normalize(prefix)
        if not prefix:
            raise StorageConfigError("The whole mount cannot be hidden")
        self._extra.add(prefix)

    def _hidden(self, path: str) -> bool:
        return paths.is_hidden(path) or any(paths.is_under(path, p) for p in self._extra)

    def _guard(self, *targets: str) -> None:
        for path in targets:
            if self._hidden(path):
                raise StoragePermissionError(f"{path!r} is reserved for storied's own records")

    def list(self, path: str) -> Iterator[Info]:
        return (e for e in self.inner.list(path) if not self._hidden(e.path))

    def walk(self, path: str) -> Iterator[Info]:
        return (e for e in self.inner.walk(path) if not self._hidden(e.path))

    def walk_split(self, path: str) -> tuple[builtins.list[Info], builtins.list[Info]]:
        shown: list[Info] = []
        hidden: list[Info] = []
        for entry in self.inner.walk(path):
            (hidden if self._hidden(entry.path) else shown).append(entry)
        return shown, hidden

    def list_names(self, path: str, start_after: str | None = None) -> Iterator[tuple[str, bool]]:
        names = self.inner.list_names(path, start_after)
        return (n for n in names if not self._hidden(f"{path}/{n[0]}" if path else n[0]))

    def write(
        self,
        path: str,
        data: Data,
        *,
        mode: WriteMode = WriteMode.OVERWRITE,
        etag: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Info:
        self._guard(path)
        return self.inner.write(path, data, mode=mode, etag=etag, metadata=metadata)

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        self._guard(path)
        self.inner.mkdir(path, parents=parents, exist_ok=exist_ok)

    def copy(self, src: str, dst: str) -> Info:
        self._guard(dst)
        return self.inner.copy(src, dst)

    def move(self, src: str, dst: str) -> None:
        self._guard(src, dst)
        if any(paths.is_under(p, src) for p in self._extra) and self.inner.info(src).is_dir:
            Backend.move(self, src, dst)  # a rename would carry the protected area along
            return
        self.inner.move(src, dst)

    def set_metadata(self, path: str, metadata: dict[str, str]) -> None:
        self._guard(path)
        self.inner.set_metadata(path, metadata)

    def delete_many(self, items: builtins.list[tuple[str, str | None]]) -> None:
        self._guard(*(p for p, _ in items))
        self.inner.delete_many(items)

    def unlink_links(self, path: str) -> int:
        self._guard(path)
        return self.inner.unlink_links(path)

    def delete(self, path: str, *, recursive: bool = False) -> None:
        self._guard(path)
        if not recursive or not self.inner.info(path).is_dir:
            self.inner.delete(path, recursive=recursive)
            return
        delete_tree(self, path)

    def delete_if_match(self, path: str, etag: str) -> None:
        self._guard(path)
        self.inner.delete_if_match(path, etag)


class Permission(StrEnum):
    """Mount permission levels, each including the one before."""

    READONLY = "readonly"
    READWRITE = "readwrite"
    DELETE = "delete"

    @classmethod
    def parse(cls, value: str, mount: str) -> Permission:
        """The level named ``value``, or a :class:`StorageConfigError` naming ``mount``."""
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(p.value for p in cls)
            raise StorageConfigError(
                f"Invalid permissions {value!r} for mount {mount!r}. Valid values: {valid}"
            ) from None


class Permissions(WrappedBackend):
    """Refuse the operations a mount's permission level does not allow.

    ``readonly`` allows reads, listings and metadata reads; ``readwrite`` adds writes, mkdir and
    metadata writes; ``delete`` adds deletes and moves (a move deletes its source).
    """

    def __init__(self, inner: Backend, level: Permission) -> None:
        super().__init__(inner)
        self.level = level

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        if self.level is Permission.READONLY:
            return self.inner.static_capabilities.as_readonly()
        caps = self.inner.capabilities
        if self.level is Permission.READWRITE:
            return caps.replace(delete=False)
        return caps

    def _need_write(self) -> None:
        if self.level is Permission.READONLY:
            raise StoragePermissionError("Mount is read-only. Write operations are not permitted.")

    def _need_delete(self) -> None:
        self._need_write()
        if self.level is not Permission.DELETE:
            raise StoragePermissionError(
                f"Mount does not have delete permission (current: {self.level.value})"
            )

    def write(
        self,
        path: str,
        data: Data,
        *,
        mode: WriteMode = WriteMode.OVERWRITE,
        etag: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Info:
        self._need_write()
        return self.inner.write(path, data, mode=mode, etag=etag, metadata=metadata)

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        self._need_write()
        self.inner.mkdir(path, parents=parents, exist_ok=exist_ok)

    def copy(self, src: str, dst: str) -> Info:
        self._need_write()
        return self.inner.copy(src, dst)

    def set_metadata(self, path: str, metadata: dict[str, str]) -> None:
        self._need_write()
        self.inner.set_metadata(path, metadata)

    def delete(self, path: str, *, recursive: bool = False) -> None:
        self._need_delete()
        self.inner.delete(path, recursive=recursive)

    def delete_if_match(self, path: str, etag: str) -> None:
        self._need_delete()
        self.inner.delete_if_match(path, etag)

    def delete_version(self, path: str, version_id: str) -> None:
        self._need_delete()
        self.inner.delete_version(path, version_id)

    def delete_many(self, items: builtins.list[tuple[str, str | None]]) -> None:
        self._need_delete()
        self.inner.delete_many(items)

    def link(self, src: str, dst: str) -> None:
        self._need_write()
        self.inner.link(src, dst)

    def unlink_links(self, path: str) -> int:
        self._need_delete()
        return self.inner.unlink_links(path)

    def move(self, src: str, dst: str) -> None:
        self._need_delete()
        self.inner.move(src, dst)
