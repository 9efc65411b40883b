"""A read-only view of a local git repository at a branch, tag or commit (genro's ``git`` type).

Mount keys (genro-storage's): ``base_path`` (or ``path``, or genro's ``fo``): the repository (a
work tree or a bare ``.git`` directory; enclosing folders are not searched), ``ref``: a branch,
tag, commit id or any rev-parse expression (``main~2``). genro-storage (fsspec's ``GitFileSystem``)
defaults ``ref`` to ``"master"``; storied defaults to ``HEAD``, which is the same on a repository
whose checked-out branch is ``master`` and also works on one whose default branch is ``main``.

The repository is opened and ``ref`` checked when the mount is built (a local folder: no network),
so a wrong path or ref is a :class:`~storied.errors.StorageConfigError` then. ``ref`` is resolved
again at every operation: a branch mount follows new commits, a commit-id mount never changes.

* Files are the blobs of the commit's tree; directories its trees. A symbolic link is a file
  whose content is the link's target (it is never followed); submodules are not listed.
* ``etag`` is the blob id (content-addressed), ``mtime`` the commit time, ``size`` the blob size.
* Reads load the blob (libgit2 inflates objects whole); ranges are slices of it.
* History is the repository's: a file's versions are the commits of the ref's first-parent
  chain that changed it (``node.versions``, ``node(..., version=-2)``; version id = commit id,
  ``etag`` = blob id), and a commit that removed it is a delete marker. The list for one head
  commit is computed once (one tree diff per commit) and kept until the ref moves.
* Everything that would change the repository raises
  :class:`~storied.errors.StoragePermissionError`.

Errors are mapped in :meth:`GitBackend._mapped` only.
"""

from __future__ import annotations

import builtins
import dataclasses
import io
import os
import posixpath
import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import pygit2

from storied import paths
from storied.backends.base import Backend
from storied.backends.readonly import ReadOnlyBackend
from storied.capabilities import Capabilities
from storied.errors import (
    IsADirectoryStorageError,
    NotADirectoryStorageError,
    StorageConfigError,
    StorageError,
    StorageIOError,
    StorageNotFoundError,
    StoragePermissionError,
)
from storied.info import Info, ObjectVersion

__all__ = ["GitBackend", "git_from_config"]

_CAPS = Capabilities(readonly=True, write=False, delete=False, mkdir=False, append_mode=False,
                     versioning=True, version_listing=True, version_access=True,
                     native_versions=True)
_SUBMODULE = 0o160000


class GitBackend(ReadOnlyBackend):
    """The tree of one ref of a local git repository, read-only.

    Args:
        repository: Path of the work tree or of the bare repository.
        ref: Branch, tag, commit id or rev-parse expression (default ``HEAD``).

    Raises:
        StorageConfigError: Not a git repository, or ``ref`` does not name a commit.
    """

    repository: str
    ref: str

    protocol = "git"
    capabilities = _CAPS

    def __init__(self, repository: str | os.PathLike[str], ref: str | None = None) -> None:
        self.repository = os.fspath(repository)
        self.ref = ref or "HEAD"
        self._lock = threading.Lock()
        self._log: tuple[Any, list[ObjectVersion]] | None = None
        try:
            self._repo = pygit2.Repository(
                self.repository, pygit2.enums.RepositoryOpenFlag.NO_SEARCH
            )
        except pygit2.GitError as exc:
            raise StorageConfigError(f"Not a git repository: {self.repository!r}") from exc
        try:
            self._commit()
        except StorageNotFoundError as exc:
            raise StorageConfigError(str(exc)) from exc

    def storage_key(self) -> Hashable:
        """The repository (by real path) and the ref: another ref is other content."""
        return ("git", os.path.realpath(self.repository), self.ref)

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def _mapped(self, path: str) -> Iterator[None]:
        """The one place where pygit2's errors become storied errors."""
        try:
            with self._lock:
                yield
        except StorageError:
            raise
        except KeyError as exc:  # pygit2.NotFoundError is a KeyError too
            raise StorageNotFoundError(
                f"No such path in git {self.repository!r} at {self.ref!r}: {path!r}"
            ) from exc
        except (pygit2.GitError, OSError) as exc:
            raise StorageIOError(f"git {self.repository!r}: {path!r}: {exc}") from exc

    def _commit(self) -> Any:
        try:
            obj = self._repo.revparse_single(self.ref)
            commit = obj.peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise StorageNotFoundError(
                f"git ref {self.ref!r} not found in {self.repository!r}"
            ) from exc
        return commit

    def _object(self, path: str) -> tuple[Any, Any]:
        """(commit, object at ``path``): a Tree, a Blob; KeyError when missing."""
        commit = self._commit()
        if not path:
            return commit, commit.tree
        entry = commit.tree[path]
        if entry.type_str == "commit":  # a submodule: nothing readable here
            raise KeyError(path)
        return commit, entry

    @staticmethod
    def _is_tree(obj: Any) -> bool:
        return bool(obj.type_str == "tree")

    # ------------------------------------------------------------------ reads
    def info(self, path: str) -> Info:
        with self._mapped(path):
            commit, obj = self._object(path)
            if self._is_tree(obj):
                return Info(path, is_dir=True, mtime=float(commit.commit_time))
            return Info(path, False, obj.size, float(commit.commit_time), str(obj.id))

    def list(self, path: str) -> Iterator[Info]:
        out: list[Info] = []
        with self._mapped(path):
            commit, tree = self._object(path)
            if not self._is_tree(tree):
                raise NotADirectoryStorageError(f"Not a directory: {path!r}")
            mtime = float(commit.commit_time)
            for entry in tree:
                child = posixpath.join(path, entry.name) if path else entry.name
                if not _servable(child) or entry.type_str == "commit":
                    continue
                if entry.type_str == "tree":
                    out.append(Info(child, is_dir=True, mtime=mtime))
                else:
                    out.append(Info(child, False, entry.size, mtime, str(entry.id)))
        return iter(out)

    def walk(self, path: str) -> Iterator[Info]:
        out: list[Info] = []
        with self._mapped(path):
            commit, tree = self._object(path)
            if not self._is_tree(tree):
                raise NotADirectoryStorageError(f"Not a directory: {path!r}")
            mtime = float(commit.commit_time)
            stack = [(path, tree)]
            while stack:
                base, node = stack.pop()
                for entry in node:
                    child = posixpath.join(base, entry.name) if base else entry.name
                    if not _servable(child) or entry.type_str == "commit":
                        continue
                    if entry.type_str == "tree":
                        stack.append((child, entry))
                    else:
                        out.append(Info(child, False, entry.size, mtime, str(entry.id)))
        return iter(out)

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        with self._mapped(path):
            _, obj = self._object(path)
            if self._is_tree(obj):
                raise IsADirectoryStorageError(f"Is a directory: {path!r}")
            data = obj.data
        view = memoryview(data)[start:end]
        return io.BytesIO(view)

    # ------------------------------------------------------------------ history
    def _history(self) -> builtins.list[ObjectVersion]:
        """Every change of the first-parent chain of the ref, oldest first (cached per head)."""
        commit = self._commit()
        if self._log is not None and self._log[0] == commit.id:
            return self._log[1]
        chain, step = [], commit
        while step is not None:  # the first-parent chain, newest first
            chain.append(step)
            step = step.parents[0] if step.parents else None
        out: list[ObjectVersion] = []
        for item in reversed(chain):
            when = float(item.commit_time)
            if item.parents:
                diff = item.parents[0].tree.diff_to_tree(item.tree)
            else:
                diff = item.tree.diff_to_tree(swap=True)
            for delta in diff.deltas:
                if delta.status == pygit2.enums.DeltaStatus.DELETED:
                    if delta.old_file.mode != _SUBMODULE:
                        out.append(ObjectVersion(delta.old_file.path, str(item.id), when,
                                                 is_delete_marker=True))
                elif delta.new_file.mode != _SUBMODULE:
                    blob: Any = self._repo[delta.new_file.id]
                    out.append(ObjectVersion(delta.new_file.path, str(item.id), when, blob.size,
                                             str(blob.id)))
        latest: dict[str, int] = {}
        for position, entry in enumerate(out):
            latest[entry.path] = position
        marked = [dataclasses.replace(e, is_latest=latest[e.path] == i) for i, e in enumerate(out)]
        self._log = (commit.id, marked)
        return marked

    def list_versions(self, path: str) -> builtins.list[ObjectVersion]:
        with self._mapped(path):
            return [entry for entry in self._history() if entry.path == path]

    def walk_versions(self, path: str) -> Iterator[ObjectVersion]:
        with self._mapped(path):
            found = [entry for entry in self._history() if paths.is_under(entry.path, path)]
        return iter(found)

    def open_version(
        self, path: str, version_id: str, start: int = 0, end: int | None = None
    ) -> BinaryIO:
        with self._mapped(path):
            try:
                commit = self._repo[version_id].peel(pygit2.Commit)
            except (ValueError, TypeError) as exc:
                raise KeyError(version_id) from exc
            obj: Any = commit.tree[path]
            if obj.type_str != "blob":
                raise IsADirectoryStorageError(f"Is a directory: {path!r}")
            data = obj.data
        return io.BytesIO(memoryview(data)[start:end])

    def delete_version(self, path: str, version_id: str) -> None:
        raise self._refuse(f"delete version {version_id!r} of {path!r}")

    # ------------------------------------------------------------------ refused
    def _refuse(self, action: str) -> StoragePermissionError:
        return StoragePermissionError(
            f"git mount of {self.repository!r} at {self.ref!r} is read-only: cannot {action}"
        )

    def close(self) -> None:
        with self._lock:
            self._repo.free()


def _servable(path: str) -> bool:
    """True for a name storied can represent (others are left out of listings)."""
    try:
        return paths.normalize(path) == path
    except StorageError:
        return False


def git_from_config(config: dict[str, Any]) -> Backend:
    """Build a git mount: ``base_path`` (the repository; genro's ``fo`` is accepted instead)
    and ``ref``.

    Raises:
        StorageConfigError: Not a repository, unknown ref, or a key of the wrong type.
    """
    repository = config.get("fo") or config.get("base_path")
    ref = config.get("ref")
    if ref is not None and not isinstance(ref, str):
        raise StorageConfigError(f"Git storage {config.get('name')!r}: 'ref' must be a string")
    return GitBackend(repository, ref)  # type: ignore[arg-type]
