"""``verify`` for the portable engine: every record's blob exists and hashes right."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from storied import paths
from storied.backends.base import CHUNK
from storied.errors import StorageNotFoundError
from storied.versioning.engine import VerifyReport
from storied.versioning.records import blob_path, parse_record

if TYPE_CHECKING:
    from storied.versioning.portable import PortableEngine

__all__ = ["verify_portable"]


def verify_portable(engine: PortableEngine, prefix: str = "") -> VerifyReport:
    """Check the history below ``prefix``.

    Problems (``ok`` becomes False): an object in a history directory whose name is not a record,
    a record whose blob is missing, a blob whose content does not hash to its name. Orphans
    (allowed): blobs no record refers to (only looked for when ``prefix`` is the whole mount)
    and temporary objects. Stale: working copies that differ from their newest record.
    """
    report = VerifyReport()
    versions_root = engine._meta("versions")
    wanted: dict[str, list[str]] = {}
    try:
        entries = list(engine.meta.walk(engine._history_dir(prefix)))
    except StorageNotFoundError:
        entries = []
    for entry in entries:
        parent, _, name = entry.path.rpartition("/")
        record = parse_record(name)
        if record is None:
            report.problems.append(f"not a version record: {entry.path}")
            continue
        report.checked += 1
        if not record.deleted:
            wanted.setdefault(record.sha256, []).append(paths.relative_to(parent, versions_root))
    for sha, users in sorted(wanted.items()):
        _check_blob(engine, sha, users, report)
    for path in sorted({p for users in wanted.values() for p in users}):
        _check_working_copy(engine, path, report)
    if not prefix:
        _find_orphans(engine, set(wanted), report)
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
