"""Tags, annotations, queries and retention on a node's versions (both engines).

Tags and annotations live in the storage next to the history (see
:mod:`storied.versioning.catalog`), so every process that mounts it sees them.

Tag lifecycle: a name points at one version of one file; names are unique per file (re-using one
needs ``move=True``). A tagged version is protected: ``delete_version``, ``compact_versions`` and
``cleanup_versions`` leave it alone until it is untagged. Deleting the file keeps its tags and
history; writing it again continues both.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from storied.errors import (
    StorageAlreadyExistsError,
    StorageNotFoundError,
)

if TYPE_CHECKING:
    from storied.versioning.catalog import Refs
    from storied.versioning.history import MountHistory

__all__ = ["TagMethods"]


class TagMethods:
    """Mixed into ``StorageNode``; uses the history plumbing of ``VersionMethods``."""

    _path: str

    if TYPE_CHECKING:

        def _need_history(self, what: str = "versioning") -> MountHistory: ...

        def require_writable(self) -> None: ...

        def _need_delete(self) -> None: ...

        def _notify_deleted_versions(self, gone: list[Any]) -> None: ...

        def _drop_versions(self, history: MountHistory, doomed: list[Any],
                           keep: Callable[[], None], kept: list[str] | None = None
                           ) -> list[Any]: ...

    # ---------------------------------------------------------------- tags
    def tag_version(self, version: int | str, tag: str, move: bool = False) -> str:
        """Point tag ``tag`` at a version (index, id or another tag); return its version id.

        The version is protected from the moment the tag is set; if another process's
        cleanup deleted it meanwhile (see :mod:`storied.versioning.maintenance`), or that
        cannot be ruled out (a storage error, a cleanup outlasting the wait), the tag is
        taken back and the call fails instead of leaving a tag that may name nothing. Taking
        it back never removes a tag that pointed at that version before the call; a moved
        tag returns to its previous version if that still exists. Six requests on S3 (one
        more when ``version`` is a tag name) when no cleanup runs.

        Raises:
            StorageAlreadyExistsError: The tag exists on another version and ``move`` is false.
            StorageNotFoundError: The version does not exist, or was deleted while tagging.
            PreconditionFailedError: A cleanup held the maintenance lease for too long (the
                tag is taken back; try again).
            UnsupportedOperation: The storage has no conditional writes.
            ValueError: An empty tag name, or one that is also a version id.
        """
        self.require_writable()
        if not isinstance(tag, str) or not tag.strip() or any(ord(c) < 32 for c in tag):
            raise ValueError(f"Invalid tag name {tag!r}")
        from storied.versioning.maintenance import ProtectionGuard

        history = self._need_history()
        guard = ProtectionGuard(history.engine.catalog)  # before resolving: see maintenance.py
        found = history.versions(self._path)
        if any(v.version_id == tag for v in found):
            raise ValueError(f"Tag name {tag!r} is a version id of {self._path!r}")
        target = history.resolve_in(self._path, found, version)
        previous: list[str | None] = [None]

        def change(refs: Refs) -> None:
            current = refs.tags.get(tag)
            if current not in (None, target.version_id) and not move:
                raise StorageAlreadyExistsError(
                    f"Tag {tag!r} already points at version {current} of {self._path!r}; "
                    "pass move=True to move it"
                )
            previous[0] = current
            refs.tags[tag] = target.version_id

        history.update_refs(self._path, change)
        try:
            alive = None if guard.settle() else {v.version_id
                                                  for v in history.versions(self._path)}
        except BaseException:
            # not known to be safe (the lease or the listing could not be read, or a deleter
            # ran too long): the tag must not stay, it may name a version being deleted
            self._undo_tag(history, tag, target.version_id, previous[0])
            raise
        if alive is not None and target.version_id not in alive:
            self._undo_tag(history, tag, target.version_id, previous[0], alive)
            raise StorageNotFoundError(
                f"Version {target.version_id} of {self._path!r} was deleted while it was "
                f"being tagged {tag!r}; the tag was not set"
            )
        from storied.core.eventing import notify

        vid, before = target.version_id, previous[0]
        notify(self, "tag_created",  # type: ignore[arg-type]
               lambda: {"tag": tag, "version_id": vid, "previous": before}, vid)
        return target.version_id

    def _undo_tag(self, history: MountHistory, tag: str, version_id: str,
                  previous: str | None, alive: set[str] | None = None) -> None:
        """Take back a tag this call set (compare-and-swap: only if it still points there).

        A moved tag goes back to its previous version unless ``alive`` (the versions that
        exist now) shows that version was deleted too (it lost its protection while the tag
        pointed elsewhere): then the tag is removed rather than left naming nothing.
        """
        if previous == version_id:
            return  # it pointed there before this call: it protected the version all along
        if alive is not None and previous not in alive:
            previous = None

        def change(refs: Refs) -> None:
            if refs.tags.get(tag) == version_id:
                if previous is None:
                    del refs.tags[tag]
                else:
                    refs.tags[tag] = previous

        history.update_refs(self._path, change)

    def untag_version(self, tag: str) -> None:
        """Remove tag ``tag`` (its version loses that protection).

        Raises:
            StorageNotFoundError: No such tag on this file.
        """
        self.require_writable()
        gone: list[str | None] = [None]

        def change(refs: Refs) -> None:
            gone[0] = refs.tags.pop(tag, None)
            if gone[0] is None:
                raise StorageNotFoundError(f"No tag {tag!r} on {self._path!r}")

        self._need_history().update_refs(self._path, change)
        from storied.core.eventing import notify

        notify(self, "tag_deleted",  # type: ignore[arg-type]
               lambda: {"tag": tag, "version_id": gone[0]}, gone[0])

    def get_version_tags(self) -> dict[str, str]:
        """``{tag: version_id}`` for this file (one read)."""
        return dict(self._need_history().refs(self._path).tags)

    # ---------------------------------------------------------------- annotations
    def annotate_version(self, version: int | str = -1, metadata: dict[str, Any] | None = None
                         ) -> dict[str, Any]:
        """Merge JSON-serialisable ``metadata`` into a version's metadata; return the result.

        Raises:
            TypeError: A value that cannot be stored as JSON.
        """
        self.require_writable()
        extra = dict(metadata or {})
        json.dumps(extra)  # fail early on values that cannot be stored
        history = self._need_history()
        target = history.resolve(self._path, version)
        refs = history.update_refs(
            self._path,
            lambda r: r.annotations.setdefault(target.version_id, {}).update(extra),
        )
        from storied.core.eventing import notify, version_info

        vid = target.version_id
        notify(self, "version_annotated",  # type: ignore[arg-type]
               lambda: version_info(target, refs.annotations.get(vid), refs.tags_of(vid)), vid)
        return dict(refs.annotations[target.version_id])

    def find_versions(self, **criteria: Any) -> list[dict[str, Any]]:
        """Version dicts whose metadata matches every criterion, oldest first.

        A criterion matches when the metadata value equals it; a callable criterion is called
        with the value (``None`` when the key is missing) and matches when it returns true.
        """
        found = self._need_history().described(self._path)
        return [v for v in found if all(_match(v["metadata"], k, c) for k, c in criteria.items())]

    # ---------------------------------------------------------------- retention
    def cleanup_versions(
        self,
        keep_last: int | None = None,
        keep_days: float | None = None,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Remove the versions no rule keeps (see :mod:`storied.policies.retention`).

        With both rules a version stays if either keeps it. The current version, tagged
        versions, versions in a snapshot and versions under legal hold or unexpired retention
        (reasons ``legal-hold``, ``retention:<MODE> until <iso>``; expiry is judged by
        :func:`storied.policies.retention.clock`, never by ``now``) always stay; protection
        is read under the history's maintenance lease
        (:mod:`storied.versioning.maintenance`), so a tag, snapshot or hold another process
        adds meanwhile is honoured too. ``keep_last`` is an int >= 0,
        ``keep_days`` a number >= 0 (``float('inf')`` keeps every version by age).

        Raises:
            InvalidArgumentError: (a ``ValueError``) a rule of the wrong type or range.
            StoragePermissionError: Not a dry run and the mount has no delete permission.

        Returns:
            With ``dry_run``: the plan, one dict per version with ``version_id``,
            ``last_modified``, ``size``, ``keep`` and ``reasons``; nothing is deleted.
            Otherwise: the version dicts that were removed (a ``CleanupResult``, whose
            ``kept_by_server`` lists the versions an S3 Object Lock bucket refused to delete
            because they are locked there).
        """
        from storied.core.objectlock import CleanupResult
        from storied.policies.retention import check_rules, plan_retention
        from storied.versioning.catalog import Locks
        from storied.versioning.history import merged_lock_reasons
        from storied.versioning.maintenance import maintenance

        check_rules(keep_last, keep_days)
        history = self._need_history()
        moment = now or datetime.now(UTC)

        def plan() -> tuple[list[Any], dict[str, Any]]:
            found = history.versions(self._path)
            tags: dict[str, list[str]] = {}
            refs = history.refs(self._path)  # tags and locks: one read
            for name, vid in refs.tags.items():
                tags.setdefault(vid, []).append(name)
            snaps = history.engine.catalog.snapshot_refs().get(history._p(self._path), {})
            holds = merged_lock_reasons(history.engine, found, Locks(refs.locks))
            decisions = plan_retention(found, moment, keep_last, keep_days, tags, snaps, holds)
            return decisions, {v.version_id: v for v in found}

        if dry_run:
            decisions, by_id = plan()
            return [_plan_row(by_id[d.version_id], d.keep, d.reasons) for d in decisions]
        self._need_delete()
        # under the lease, protection is read after every tagger that could miss us is done
        with maintenance(history.engine.catalog) as lease:
            decisions, by_id = plan()
            gone = [by_id[d.version_id] for d in decisions if not d.keep]
            kept: list[str] = []
            gone = self._drop_versions(history, gone, lease.keep, kept)
            removed = CleanupResult([version.as_dict() for version in gone], kept)
        self._notify_deleted_versions(gone)  # after the lease: taggers wait on it
        return removed


def _match(metadata: dict[str, Any], key: str, criterion: Any) -> bool:
    value = metadata.get(key)
    if isinstance(criterion, Callable):  # type: ignore[arg-type]
        return bool(criterion(value))
    return key in metadata and value == criterion


def _plan_row(version: Any, keep: bool, reasons: tuple[str, ...]) -> dict[str, Any]:
    return {
        "version_id": version.version_id,
        "last_modified": version.last_modified,
        "size": version.size,
        "keep": keep,
        "reasons": list(reasons) or ["remove"],
    }
