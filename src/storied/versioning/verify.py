"""``verify``: the history's invariants, on both engines, as a report that is always returned.

:func:`verify_history` is what ``MountHistory.verify`` (and so ``StorageManager.verify`` and
``storied verify``) runs: the engine's own checks (:func:`verify_portable` for the portable
engine: every record's blob exists and hashes right), then the catalog's (every tag and every
snapshot entry names a version that exists). Any error met while checking one item becomes a
problem of the report; verify never raises because of what it finds in the storage.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from storied import paths
from storied.backends.base import CHUNK
from storied.errors import StorageError, StorageNotFoundError
from storied.versioning.catalog import Refs
from storied.versioning.engine import VerifyReport, Version
from storied.versioning.records import blob_path, parse_record

if TYPE_CHECKING:
    from storied.versioning.engine import VersionEngine
    from storied.versioning.portable import PortableEngine

__all__ = ["check_catalog", "verify_history", "verify_portable"]

# what checking one item may raise: storage errors, OS errors, unparsable JSON (ValueError)
_ITEM_ERRORS = (StorageError, OSError, ValueError, KeyError, TypeError)


def verify_history(engine: VersionEngine, prefix: str = "") -> VerifyReport:
    """The engine's checks below ``prefix``, then the catalog's (:func:`check_catalog`).

    Never raises for what it finds: an error while checking becomes a problem.
    """
    try:
        report = engine.verify(prefix)
    except _ITEM_ERRORS as exc:
        report = VerifyReport()
        report.problems.append(f"cannot check the history below {prefix or '/'!r}: {exc}")
    try:
        check_catalog(engine, prefix, report)
    except _ITEM_ERRORS as exc:
        report.problems.append(f"cannot check tags and snapshots below {prefix or '/'!r}: {exc}")
    return report


def _versions_below(engine: VersionEngine, prefix: str) -> dict[str, set[str]]:
    everything: dict[str, list[Version]] = engine.all_versions(prefix)
    if not everything and prefix:  # the prefix may name a single file
        found = engine.versions(prefix)
        everything = {prefix: found} if found else {}
    return {path: {v.version_id for v in found} for path, found in everything.items()}


def check_catalog(engine: VersionEngine, prefix: str, report: VerifyReport) -> None:
    """Add a problem for each dangling tag or snapshot entry below ``prefix``.

    A tag whose version does not exist, a snapshot entry (within ``prefix``) naming a
    version that does not exist, and an unreadable refs document or manifest are problems.
    Cost: one flat version listing, one listing of the refs (plus a read per file with refs),
    one read per snapshot manifest.
    """
    catalog = engine.catalog
    existing = _versions_below(engine, prefix)
    base = catalog._key("refs")
    try:
        entries = list(catalog.backend.walk(catalog._key("refs", prefix)))
    except (StorageNotFoundError, NotADirectoryError):
        entries = []
    for entry in entries:
        parent, _, name = entry.path.rpartition("/")
        if name != "refs.json":
            continue
        path = paths.relative_to(parent, base)
        try:
            refs = Refs.from_json(catalog.backend.read_bytes(entry.path))
        except _ITEM_ERRORS as exc:
            report.problems.append(f"unreadable tags and annotations of {path}: {exc}")
            continue
        for tag, vid in sorted(refs.tags.items()):
            if vid not in existing.get(path, set()):
                report.problems.append(
                    f"dangling tag {tag!r} of {path}: version {vid} does not exist"
                )
    for tag in list(catalog.snapshot_tags()):
        try:
            files = catalog.snapshot(tag).files
        except _ITEM_ERRORS as exc:
            report.problems.append(f"unreadable snapshot {tag!r}: {exc}")
            continue
        for path, vid in sorted(files.items()):
            if paths.is_under(path, prefix) and vid not in existing.get(path, set()):
                report.problems.append(
                    f"dangling entry of snapshot {tag!r}: version {vid} of {path} does not exist"
                )


def verify_portable(engine: PortableEngine, prefix: str = "") -> VerifyReport:
    """Check the history below ``prefix``.

    Problems (``ok`` becomes False): an object in a history directory whose name is not a record,
    an object in a segment directory whose name is not a segment, a malformed segment, a record
    (live or sealed) whose blob is missing, a blob whose content does not hash to its name,
    anything that could not be checked. Orphans (allowed): blobs no record refers to (only looked
    for when ``prefix`` is the whole mount) and temporary objects. Stale: working copies that
    differ from their newest record. A record both live and sealed (a seal interrupted before
    it removed the record objects) is one record, and no problem.
    """
    from storied.versioning._sealing import history_names

    report = VerifyReport()
    wanted: dict[str, list[str]] = {}
    try:
        found = history_names(engine, prefix, report.problems)
    except _ITEM_ERRORS as exc:
        report.problems.append(f"cannot list the history below {prefix or '/'!r}: {exc}")
        found = {}
    for path, names in found.items():
        for name in names:
            record = parse_record(name)
            if record is None:  # pragma: no cover - history_names keeps records only
                continue
            report.checked += 1
            if not record.deleted:
                wanted.setdefault(record.sha256, []).append(path)
    for sha, users in sorted(wanted.items()):
        try:
            _check_blob(engine, sha, users, report)
        except _ITEM_ERRORS as exc:
            report.problems.append(f"cannot check blob {sha}: {exc}")
    for path in sorted({p for users in wanted.values() for p in users}):
        try:
            _check_working_copy(engine, path, report)
        except _ITEM_ERRORS as exc:
            report.stale.append(f"{path}: working copy cannot be checked: {exc}")
    if not prefix:
        try:
            _find_orphans(engine, set(wanted), report)
        except _ITEM_ERRORS as exc:
            report.problems.append(f"cannot look for orphans: {exc}")
    return report


def _check_blob(engine: PortableEngine, sha: str, users: list[str], report: VerifyReport) -> None:
    try:
        actual = engine.blob_sha256(sha)
    except StorageNotFoundError:
        report.problems.append(f"missing blob {sha} (versions of {', '.join(sorted(set(users)))})")
        return
    if actual != sha:
        report.problems.append(f"blob {sha} is corrupt: its content hashes to {actual}")


def _check_working_copy(engine: PortableEngine, path: str, report: VerifyReport) -> None:
    records = engine.records(path)
    if not records:
        return
    newest = records[-1]
    try:
        info = engine.data.info(path)
    except StorageNotFoundError:
        if not newest.deleted:
            report.stale.append(f"{path}: working copy missing, newest version {newest.version_id}")
        return
    if newest.deleted:
        report.stale.append(f"{path}: deleted in history but present")
        return
    if info.is_dir:
        report.stale.append(f"{path}: a directory where version {newest.version_id} belongs")
        return
    if info.size != newest.size or _md5(engine, path, info.md5) != newest.md5:
        report.stale.append(f"{path}: working copy differs from version {newest.version_id}")


def _md5(engine: PortableEngine, path: str, known: str | None) -> str:
    if known:
        return known
    digest = hashlib.md5()
    with engine.data.open_read(path) as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _find_orphans(engine: PortableEngine, referenced: set[str], report: VerifyReport) -> None:
    for area in ("blobs", "tmp"):
        try:
            stored = list(engine.meta.walk(engine._meta(area)))
        except StorageNotFoundError:
            continue
        for entry in stored:
            name = entry.name
            if area == "tmp" or (name not in referenced and entry.path.endswith(blob_path(name))):
                report.orphans.append(entry.path)
