"""``storied://``: an fsspec filesystem over storied's mounts, permissions and history.

::

    pandas.read_csv('storied://docs/reports/q3.csv', storage_options={'config': 'storied.yaml'})
    pandas.read_csv('storied://docs/reports/q3.csv?version=-2', storage_options={...})
    fs = StoriedFileSystem(storage=my_manager, as_of=datetime(2026, 11, 1, tzinfo=UTC))

A path is ``<mount>/<path inside the mount>``; the root lists the mounts as directories. Reads
may be pinned to a version: ``?version=V`` at the end of a path (an index such as ``-2``, a
version id or a tag), or ``version=``/``as_of=`` for the whole filesystem (then writes are
refused, as on a pinned node). Everything else goes through the mounts as configured: their
permissions, confinement, history (a write on a versioned mount is a new version).

Registered under the protocol ``storied`` (entry point ``fsspec.specs``), so
``fsspec.filesystem('storied', config=...)`` and ``storied://`` URLs work once storied is
installed.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

from storied.core.manager import StorageManager
from storied.core.node import StorageNode
from storied.errors import (
    InvalidPathError,
    IsADirectoryStorageError,
    MissingDependencyError,
    ReadOnlyVersionError,
    StorageNotFoundError,
)

try:
    from fsspec.spec import AbstractFileSystem
except ModuleNotFoundError as _missing:  # pragma: no cover - a subprocess test hides fsspec
    raise MissingDependencyError(
        "storied.fsspec needs 'fsspec': pip install 'storied[fsspec]'"
    ) from _missing

__all__ = ["StoriedFileSystem"]


def _version_arg(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text


class StoriedFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """An fsspec filesystem whose top-level directories are a storied manager's mounts.

    Args:
        storage: The manager to use; or give ``config``.
        config: A configuration file path or a list of mount mappings (as for
            :meth:`StorageManager.configure`) to build a manager from.
        version: Read every file at this version (index, id or tag); writes are refused.
        as_of: Read every file as it was at this moment (tz-aware); writes are refused.
    """

    protocol = ("storied",)
    root_marker = ""
    cachable = False  # a manager is not a value: every instance is its own

    def __init__(self, storage: StorageManager | None = None, config: Any = None,
                 version: int | str | None = None, as_of: datetime | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if storage is None:
            storage = StorageManager()
            if config is not None:
                storage.configure(config)
        self.storage = storage
        self.version = version
        self.as_of = as_of

    # ---------------------------------------------------------------- paths
    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        text = str(path)
        if text.startswith("storied://"):
            text = text[len("storied://"):]
        elif text.startswith("storied:"):
            text = text[len("storied:"):]
        return text.strip("/")

    def _split(self, path: str) -> tuple[str, int | str | None]:
        """``(path, version)``: a trailing ``?version=V`` pins that read."""
        path = self._strip_protocol(path)
        head, sep, query = path.rpartition("?")
        if sep and query.startswith("version="):
            return head.rstrip("/"), _version_arg(query[len("version="):])
        return path, None

    def _node(self, path: str, version: int | str | None = None) -> StorageNode:
        mount, _, rest = path.partition("/")
        if not mount:
            raise InvalidPathError("the root of storied:// holds the mounts, not files")
        return self.storage.node(f"{mount}:{rest}", version=version)

    def _pinned(self) -> bool:
        return self.version is not None or self.as_of is not None

    def _not_foreign(self, node: StorageNode, seen: dict[str, Any] | None = None) -> None:
        """Refuse deleting or moving files of another mount's portable history by this name
        (nothing would be recorded; that mount's verify would call them stale). ``seen``
        keeps each mount's answer for one call."""
        from storied.optimize.apply import foreign_roots, refuse_foreign

        seen = {} if seen is None else seen
        mount = str(node.mount_name)
        if mount not in seen:
            seen[mount] = foreign_roots(self.storage, f"{mount}:")
        refuse_foreign(node, seen[mount])

    def _changing(self, path: str) -> str:
        """The stripped ``path`` of a change (write, delete, move, mkdir), refused on a pinned
        filesystem, for a ``?version=`` path (deleting "a version" must never delete the
        current file) and at the root (it holds the mounts, which are configuration)."""
        stripped, version = self._split(path)
        if version is not None or self._pinned():
            raise ReadOnlyVersionError(f"{path}: a version-pinned path cannot be changed")
        if not stripped:
            raise InvalidPathError("the root of storied:// holds the mounts: it cannot change")
        return stripped

    # ---------------------------------------------------------------- listing
    def _entry(self, path: str, node: StorageNode, info: Any) -> dict[str, Any]:
        kind = "directory" if info.is_dir else "file"
        return {"name": path, "size": 0 if info.is_dir else info.size, "type": kind,
                "mtime": info.mtime, "etag": info.etag}

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path, _ = self._split(path)
        if not path:
            rows = [{"name": m, "size": 0, "type": "directory"}
                    for m in sorted(self.storage.get_mount_names())]
        else:
            node = self._node(path)
            info = node.info()
            if not info.is_dir:
                rows = [self._entry(path, node, info)]
            else:
                rows = [self._entry(f"{path}/{child.basename}", child,
                                    child._listed or child.info())
                        for child in node.children()]
        return rows if detail else [r["name"] for r in rows]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path, version = self._split(path)
        if not path:
            return {"name": "", "size": 0, "type": "directory"}
        if "/" not in path:
            if not self.storage.has_mount(path):
                raise FileNotFoundError(path)
            return {"name": path, "size": 0, "type": "directory"}
        node = self._node(path)
        if version is not None or self._pinned():
            found = node.versions
            if not found:
                raise FileNotFoundError(path)
            with self._open_pinned(node, version) as stream:
                size = stream.seek(0, io.SEEK_END)
            return {"name": path, "size": size, "type": "file"}
        return self._entry(path, node, node.info())

    # ---------------------------------------------------------------- reading & writing
    def _open_pinned(self, node: StorageNode, version: int | str | None) -> Any:
        if version is None and self.as_of is not None:
            return node.open("rb", as_of=self.as_of)
        return node.open("rb", version=version if version is not None else self.version)

    def _open(self, path: str, mode: str = "rb", block_size: Any = None,
              autocommit: bool = True, cache_options: Any = None, **kwargs: Any) -> Any:
        path, version = self._split(path)
        node = self._node(path)
        writing = any(c in mode for c in "wax+")
        if writing and (version is not None or self._pinned()):
            raise ReadOnlyVersionError(f"{path}: a version-pinned path cannot be written")
        if writing:
            return node.open(mode if "b" in mode else mode + "b")
        if version is not None or self._pinned():
            return self._open_pinned(node, version)
        if node.is_dir():
            raise IsADirectoryStorageError(f"Is a directory: {path!r}")
        return node.open("rb")

    def cat_file(self, path: str, start: int | None = None, end: int | None = None,
                 **kwargs: Any) -> bytes:
        path, version = self._split(path)
        node = self._node(path)
        if version is not None or self._pinned():
            with self._open_pinned(node, version) as stream:
                data: bytes = stream.read()
            return data[start:end]
        if start is None and end is None:
            return node.read_bytes()
        size = node.size() if (start or 0) < 0 or (end is not None and end < 0) else None
        lo = (start or 0) if (start or 0) >= 0 else max(0, (size or 0) + (start or 0))
        hi = end if end is None or end >= 0 else max(0, (size or 0) + end)
        with node._be.open_read(node.path, lo, hi) as stream:
            return stream.read()

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite",
                  **kwargs: Any) -> None:
        with self._open(path, "xb" if mode == "create" else "wb") as out:
            out.write(value)

    # ---------------------------------------------------------------- changing
    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        path = self._changing(path)
        self._node(path).mkdir(parents=create_parents, exist_ok=False)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        path, _ = self._split(path)
        if "/" not in path:
            return  # a mount is always there
        self._node(self._changing(path)).mkdir(parents=True, exist_ok=exist_ok)

    def rmdir(self, path: str) -> None:
        path = self._changing(path)
        node = self._node(path)
        if not node.is_dir():
            raise NotADirectoryError(path)
        node.delete(recursive=False)

    def rm_file(self, path: str) -> None:
        path = self._changing(path)
        node = self._node(path)
        if node.is_dir():
            raise IsADirectoryStorageError(f"Is a directory: {path!r}")
        self._not_foreign(node)
        node.delete()

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        """Delete ``path`` (a list, or a glob when nothing has that exact name: a file named
        ``a?b`` deletes only itself, never ``axb``). A mount root is emptied (its history
        and reserved area stay); the root of ``storied://``, a pinned filesystem and
        ``?version=`` paths are refused before anything is deleted."""
        targets: list[str] = []
        for word in path if isinstance(path, list | tuple) else [path]:
            stripped = self._changing(word)
            if any(c in stripped for c in "*?[") and not self.exists(stripped):
                found = self.expand_path(stripped, recursive=recursive, maxdepth=maxdepth)
                targets += [self._changing(p) for p in found]
                continue
            targets.append(stripped)
            if recursive and self.isdir(stripped):
                targets += [self._strip_protocol(p)
                            for p in self.find(stripped, withdirs=True, maxdepth=maxdepth)]
        nodes = [self._node(p) for p in sorted(set(targets), key=len, reverse=True)]
        seen: dict[str, Any] = {}
        for node in nodes:  # all checked before anything is deleted
            self._not_foreign(node, seen)
        for node in nodes:  # files and children first
            try:
                node.delete(recursive=recursive and node.is_dir())
            except StorageNotFoundError:
                continue

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        src_path, version = self._split(path1)
        dest_path = self._changing(path2)
        src, dest = self._node(src_path, version), self._node(dest_path)
        if version is None and src.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            return
        src.copy_to(dest)

    def mv(self, path1: str, path2: str, recursive: bool = False, maxdepth: int | None = None,
           **kwargs: Any) -> None:
        """Move a file or a directory with the node's ``move_to``: a rename within a mount; a
        copy, then the source deleted once all is copied, across mounts; a no-op onto the
        same storage location through another mount (copy-then-delete would lose it)."""
        src_path, dest_path = self._changing(path1), self._changing(path2)
        src = self._node(src_path)
        self._not_foreign(src)
        src.move_to(self._node(dest_path))
        return None

    def created(self, path: str) -> datetime:
        return self.modified(path)

    def modified(self, path: str) -> datetime:
        from datetime import UTC

        mtime = self.info(path).get("mtime")
        if mtime is None:
            raise NotImplementedError(f"{path}: the storage gives no modification time")
        return datetime.fromtimestamp(mtime, UTC)

    def ukey(self, path: str) -> str:
        info = self.info(path)
        return str(info.get("etag") or (info.get("size"), info.get("mtime")))
