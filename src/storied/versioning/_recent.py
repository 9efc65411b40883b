"""Recent-write announcements: convergence without listing a file's whole history.

On storages with real directories (local disks, SFTP, WebDAV, memory) listing
``versions/<path>/`` reads every record of the file, so a write's convergence check would grow
with the file's history. Schema-2 histories there (``"converge": "recent"`` in
``format.json``) keep a small second directory per file::

    <root>/recent/<h[:2]>/<h>/<record-name>      h = SHA-256 of the engine-relative path

A writer creates its empty announcement after its record and before its working-copy write,
and lists the announcements (not the history) after it: the last working-copy write of all is
then checked against the newest record (``docs/FORMAT.md`` §4). Each writer prunes the
announcements of records older than its own: the newest record's announcement is never pruned
(nothing is newer), and it is the only one a late writer must find, so the directory holds
about one entry per writer in flight whatever the history's length. Announcements are hints;
the records stay the truth (an announcement whose record is gone sends the writer to the
listing).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from storied.backends.base import Backend
from storied.errors import StorageError, StorageNotFoundError
from storied.versioning.records import Record, parse_record

__all__ = ["Recent"]

_PRUNE_PER_WRITE = 64
_REMEMBERED = 4096


class Recent:
    """The announcement directories of one history root.

    Args:
        meta: The backend holding the history.
        root: The history root inside ``meta``.
    """

    def __init__(self, meta: Backend, root: str) -> None:
        self.meta, self.root = meta, root
        self._renames = bool(meta.capabilities.atomic_rename)
        self._mine: OrderedDict[str, str] = OrderedDict()  # path -> our last announcement
        self._folders: OrderedDict[str, str] = OrderedDict()  # path -> folder (a pure map)
        self._lock = threading.Lock()

    def folder(self, path: str) -> str:
        """The announcement directory of ``path`` inside ``meta`` (remembered for the paths
        this engine announced lately: a write asks twice)."""
        with self._lock:
            known = self._folders.get(path)
        if known is not None:
            return known
        digest = hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()
        folder = "/".join(p for p in (self.root, "recent", digest[:2], digest) if p)
        with self._lock:
            self._folders[path] = folder
            while len(self._folders) > _REMEMBERED:
                self._folders.popitem(last=False)
        return folder

    def announce(self, path: str, record: Record) -> str | None:
        """Create the empty announcement of ``record``: where renames are atomic, by renaming
        this engine's previous announcement of ``path`` (older than ``record``, so it may go;
        one metadata operation instead of a creation and a deletion), else a new empty object.
        Raises on failure; the caller then undoes its write (an unannounced version could hide
        from other writers). Returns the name of the announcement it renamed, if any, for
        :meth:`withdraw`."""
        folder = self.folder(path)
        target = f"{folder}/{record.name}"
        with self._lock:
            previous = self._mine.pop(path, None)
        if previous is not None and self._renames and previous < record.name:
            try:
                self.meta.move(f"{folder}/{previous}", target)
            except StorageNotFoundError:
                pass  # pruned by a newer writer meanwhile: create it
            else:
                self._remember(path, record.name)
                return previous
        self.meta.write(target, b"")
        self._remember(path, record.name)
        return None

    def knows(self, path: str) -> bool:
        """True when this engine announced a write of ``path`` lately (and remembers it)."""
        with self._lock:
            return path in self._mine

    def _remember(self, path: str, name: str) -> None:
        with self._lock:
            self._mine[path] = name
            self._mine.move_to_end(path)
            while len(self._mine) > _REMEMBERED:
                self._mine.popitem(last=False)

    def withdraw(self, path: str, record: Record, renamed: str | None = None) -> None:
        """Undo the announcement of ``record`` (best effort: undoing a failed write). When it
        was made by renaming ``renamed``, that announcement is renamed back: it may announce
        the newest record, which must stay announced."""
        folder = self.folder(path)
        with self._lock:
            if self._mine.get(path) == record.name:
                del self._mine[path]
        try:
            if renamed is not None:
                self.meta.move(f"{folder}/{record.name}", f"{folder}/{renamed}")
                self._remember(path, renamed)
            else:
                self.meta.delete(f"{folder}/{record.name}")
        except StorageError:
            pass

    def newer(self, path: str, mine: Record, after: Record) -> list[Record] | None:
        """Announced records newer than ``after``, oldest first; prunes (a bounded number of)
        announcements older than ``mine``. None when the announcements cannot be listed and
        the caller must list the history."""
        folder = self.folder(path)
        try:
            names = [name for name, is_dir in self.meta.list_names(folder) if not is_dir]
        except StorageNotFoundError:
            names = []
        except StorageError:
            return None
        found: list[Record] = []
        stale: list[str] = []
        for name in names:
            if name < mine.name and len(stale) < _PRUNE_PER_WRITE:
                stale.append(name)  # record names sort in history order
            elif name > after.name:
                record = parse_record(name)
                if record is not None:
                    found.append(record)
        for name in stale:
            try:
                self.meta.delete(f"{folder}/{name}")
            except StorageError:
                pass  # another writer pruned it first
        return sorted(found)
