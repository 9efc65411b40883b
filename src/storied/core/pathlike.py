"""pathlib's names on nodes: ``node / 'x'``, ``name``, ``suffixes``, ``parents``, ``parts``,
``with_name``, ``with_suffix``, ``joinpath``, ``iterdir``, ``glob``, ``rglob``, ``walk``,
``stat``, ``touch``, ``unlink``, ``rmdir``, ``rename``, ``replace``, ``samefile``.

Semantics follow :class:`pathlib.Path` where a storage can have them; the genro-storage names
(``basename``, ``children``, ``delete``, ``move_to``...) keep working beside them. ``parts``
starts with the mount as anchor (``('docs:', 'a', 'b.txt')``), as ``('/', 'a', 'b.txt')`` does
for an absolute path. ``stat()`` returns a real :class:`os.stat_result` built from one info
request (mode ``S_IFREG|0o644`` or ``S_IFDIR|0o755``; inode, device, owner are 0 where the
storage has none). ``touch()`` of an existing file leaves it as it is (a storage cannot set a
modification time without rewriting the content).
"""

from __future__ import annotations

import fnmatch
import os
import stat as stat_module
from collections.abc import Iterator, Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from storied.errors import (
    DirectoryNotEmptyError,
    InvalidArgumentError,
    IsADirectoryStorageError,
    NotADirectoryStorageError,
    StorageNotFoundError,
)

if TYPE_CHECKING:
    from storied.core.node import StorageNode

__all__ = ["PathlibMethods"]


class PathlibMethods:
    """Mixed into :class:`~storied.core.node.StorageNode`."""

    if TYPE_CHECKING:
        _path: str
        _mount_name: str | None
        @property
        def basename(self) -> str: ...
        @property
        def suffix(self) -> str: ...
        @property
        def fullpath(self) -> str: ...
        @property
        def parent(self) -> StorageNode: ...

        def child(self, *parts: str) -> StorageNode: ...
        def _related(self, path: str, info: Any = None) -> StorageNode: ...
        def children(self) -> list[StorageNode]: ...
        def info(self) -> Any: ...
        def exists(self) -> bool: ...
        def is_dir(self) -> bool: ...
        def delete(self, recursive: bool = False) -> bool: ...
        def move_to(self, dest: StorageNode | str) -> StorageNode: ...
        def write_bytes(self, data: Any, *args: Any, **kwargs: Any) -> bool: ...

        @property
        def _be(self) -> Any: ...

    # ---------------------------------------------------------------- pure
    def __truediv__(self, other: str | os.PathLike[str]) -> StorageNode:
        """``node / 'sub' / 'file.txt'``: the same as :meth:`child`."""
        return self.child(os.fspath(other))

    @property
    def name(self) -> str:
        """The last path segment (pathlib's name for :attr:`basename`)."""
        return self.basename

    @property
    def suffixes(self) -> list[str]:
        """Every suffix of the name (``['.tar', '.gz']``)."""
        return PurePosixPath(self._path).suffixes

    @property
    def parts(self) -> tuple[str, ...]:
        """``('mount:', 'dir', 'file')``: the anchor, then each segment."""
        anchor = f"{self._mount_name}:" if self._mount_name else ""
        return (anchor, *[p for p in self._path.split("/") if p])

    @property
    def parents(self) -> Sequence[StorageNode]:
        """The ancestors, nearest first, ending with the mount root."""
        found: list[StorageNode] = []
        path = self._path
        while path:
            path = path.rpartition("/")[0]
            found.append(self._related(path))
        return tuple(found)

    def with_name(self, name: str) -> StorageNode:
        """This node's sibling called ``name`` (``ValueError`` for the mount root or a
        name holding ``/``)."""
        if not self._path:
            raise InvalidArgumentError(f"{self.fullpath} has an empty name")
        if not name or "/" in name or name in (".", ".."):
            raise InvalidArgumentError(f"Invalid name {name!r}")
        return self.parent.child(name)

    def with_suffix(self, suffix: str) -> StorageNode:
        """This node with its last suffix replaced (``''`` removes it)."""
        if suffix and (not suffix.startswith(".") or suffix == "." or "/" in suffix):
            raise InvalidArgumentError(f"Invalid suffix {suffix!r}")
        return self.with_name(PurePosixPath(self.basename).with_suffix(suffix).name)

    def joinpath(self, *parts: str | os.PathLike[str]) -> StorageNode:
        """``node.joinpath('a', 'b')``: the same as ``node / 'a' / 'b'``."""
        return self.child(*(os.fspath(p) for p in parts))

    def match(self, pattern: str) -> bool:
        """pathlib's right-anchored match of the mount-relative path against ``pattern``."""
        return PurePosixPath(self._path).match(pattern)

    # ---------------------------------------------------------------- listing
    def iterdir(self) -> Iterator[StorageNode]:
        """The entries of this directory (one listing)."""
        if not self.is_dir():
            raise NotADirectoryStorageError(f"Not a directory: {self.fullpath}")
        return iter(self.children())

    def _walk_infos(self) -> list[Any]:
        """Every file below this directory (one walk; one listing on object stores)."""
        return [i for i in self._be.walk(self._path) if not i.is_dir]

    def _relative(self, path: str) -> str:
        base = self._path.rstrip("/")
        return path[len(base):].lstrip("/") if base else path

    def glob(self, pattern: str) -> Iterator[StorageNode]:
        """Entries matching ``pattern`` relative to this directory; ``**`` matches any number
        of directories (``'**/*.csv'``). Files come from one walk; a pattern without ``/``
        or ``**`` reads only this directory's listing."""
        if not pattern or pattern.startswith("/"):
            raise InvalidArgumentError(f"Invalid glob pattern {pattern!r}")
        if "/" not in pattern and "**" not in pattern:
            return iter([c for c in self.children() if fnmatch.fnmatchcase(c.basename, pattern)])
        found = []
        for info in self._walk_infos():
            rel = self._relative(info.path)
            if _glob_match(rel, pattern):
                found.append(self._related(info.path, info))
        return iter(sorted(found, key=lambda n: n._path))

    def rglob(self, pattern: str) -> Iterator[StorageNode]:
        """``glob('**/' + pattern)``: files matching ``pattern`` at any depth."""
        return self.glob(f"**/{pattern}")

    def walk(self, top_down: bool = True) -> Iterator[tuple[StorageNode, list[str], list[str]]]:
        """``(directory node, directory names, file names)`` for this tree, as
        :meth:`pathlib.Path.walk` (one listing per directory)."""
        entries = self.children()
        dirs = [c.basename for c in entries if c.is_dir()]
        files = [c.basename for c in entries if not c.is_dir()]
        if top_down:
            yield self._related(self._path), dirs, files
        for name in list(dirs):
            yield from self.child(name).walk(top_down)
        if not top_down:
            yield self._related(self._path), dirs, files

    # ---------------------------------------------------------------- status
    def stat(self) -> os.stat_result:
        """An :class:`os.stat_result` from one info request (see the module doc)."""
        info = self.info()
        mode = (stat_module.S_IFDIR | 0o755) if info.is_dir else (stat_module.S_IFREG | 0o644)
        mtime = float(info.mtime or 0.0)
        return os.stat_result((mode, 0, 0, 1, 0, 0, 0 if info.is_dir else info.size,
                               int(mtime), int(mtime), int(mtime)))

    def samefile(self, other: StorageNode | str) -> bool:
        """True when both name the same data in the same storage (through any mounts)."""
        if isinstance(other, str):
            other = self._related(self._path)._manager.node(other)
        here = self._be.location(self._path)
        there = other._be.location(other._path)
        return bool(here == there)

    # ---------------------------------------------------------------- changing
    def touch(self, exist_ok: bool = True) -> None:
        """Create an empty file if nothing is here; an existing file is left as it is. Under a
        lost lock it is refused either way (``LockLostError``), as every write is."""
        from storied.core.locking import guard_write

        guard_write(self)  # type: ignore[arg-type]
        if self.exists():
            if not exist_ok:
                from storied.errors import StorageAlreadyExistsError

                raise StorageAlreadyExistsError(f"Already exists: {self.fullpath}")
            return
        self.write_bytes(b"")

    def unlink(self, missing_ok: bool = False) -> None:
        """Delete this file (not a directory: ``IsADirectoryError``)."""
        try:
            info = self.info()
        except StorageNotFoundError:
            if missing_ok:
                return
            raise
        if info.is_dir:
            raise IsADirectoryStorageError(f"Is a directory: {self.fullpath}")
        try:
            self.delete()
        except StorageNotFoundError:
            if not missing_ok:
                raise

    def rmdir(self) -> None:
        """Delete this directory, which must be empty."""
        if not self.is_dir():
            if not self.exists():
                raise StorageNotFoundError(f"No such directory: {self.fullpath}")
            raise NotADirectoryStorageError(f"Not a directory: {self.fullpath}")
        if self.children():
            raise DirectoryNotEmptyError(f"Directory not empty: {self.fullpath}")
        self.delete()

    def rename(self, target: StorageNode | str) -> StorageNode:
        """Move to ``target`` (a node or ``'mount:path'``) and return the new node."""
        return self.move_to(target)

    def replace(self, target: StorageNode | str) -> StorageNode:
        """Move to ``target``, replacing a file there; return the new node."""
        return self.move_to(target)


def _glob_match(rel: str, pattern: str) -> bool:
    """fnmatch per segment, ``**`` for any number of segments (none included)."""
    return _match(rel.split("/"), pattern.split("/"))


def _match(parts: list[str], pats: list[str]) -> bool:
    if not pats:
        return not parts
    if pats[0] == "**":
        return any(_match(parts[i:], pats[1:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], pats[0]) and _match(parts[1:], pats[1:])
