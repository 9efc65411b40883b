"""``strategy='reference'`` and the collection of unreferenced content copies.

Per group (see docs/adr/0022-dedup-references.md):

1. the survivor's content is proven (SHA-256) and a content copy ``<sha>/<gen>`` that gc has
   not condemned is found, or made from the survivor's bytes staged locally and hashed first
   (a survivor changed meanwhile fails the check and no copy is made);
2. each member, the survivor last, is re-hashed (its etag read first) and replaced by a
   reference, conditional on that etag where the storage has conditional writes, else after a
   last etag check (the remaining window is one request long: see the ADR). A member that
   changed is left alone and reported.

A SIGKILL at any point leaves every path readable with its original bytes: a content copy is
complete before any reference names it (atomic writes), and a reference replaces a file in
one atomic write. What a kill can leave is a content copy nobody references: :func:`collect`
removes it.

:func:`collect` (gc) is mark and sweep in two passes separated by ``grace`` seconds: a copy
no reference names is first *condemned* (a marker next to it), and removed only by a later
pass whose walk started at least ``grace`` after the mark and still found no reference.
``deduplicate`` never makes a new reference to a condemned copy, and checks that right before
its writes (again whenever :data:`RECHECK` seconds passed; ``grace`` is at least four times
that), so a reference written concurrently with gc is always seen by the walk that would
remove its copy.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from typing import TYPE_CHECKING, Any

from storied.backends.referencing import BLOBS, REF_SIZE, Ref, Referencing, blob_path, find_layer
from storied.errors import (
    InvalidArgumentError,
    PreconditionFailedError,
    StorageError,
    StorageNotFoundError,
    StoragePermissionError,
    UnsupportedOperation,
)
from storied.info import WriteMode

if TYPE_CHECKING:
    from storied.core.manager import StorageManager
    from storied.optimize.dedup import DuplicateGroup, Member

__all__ = ["GRACE", "collect", "layer_of", "reference_gain", "reference_group"]

#: Default seconds between gc's condemnation of a content copy and its removal.
GRACE = 3600.0
#: deduplicate checks again that its content copy is not condemned when this many seconds
#: passed since the last check; gc's ``grace`` must be at least :data:`MIN_GRACE` (or 0).
RECHECK = 60.0
MIN_GRACE = 4 * RECHECK
_CHUNK = 1 << 20
_SPOOL = 8 << 20  # content copies are staged in memory up to this size, then on disk


def layer_of(node: Any) -> tuple[Referencing, str]:
    """The reference layer serving ``node`` and the node's path there.

    Raises:
        UnsupportedOperation: The mount has no reference layer, is read-only, or keeps native
            versions (each reference would be one more version and reclaim nothing).
    """
    found = find_layer(node._be, node.path)
    if found is None:
        raise UnsupportedOperation(
            f"strategy='reference' is not available yet on mount {node.mount_name!r}: its "
            "layers lack storied.backends.referencing.Referencing")
    layer, path = found
    if layer.has_native_versions():
        raise UnsupportedOperation(
            "the storage keeps every version itself: a reference would add a version and "
            "reclaim nothing")
    return layer, path


def _usable(layer: Referencing, sha256: str, size: int) -> str | None:
    """A generation of ``sha256``'s copy that gc has not condemned, or None."""
    folder = f"{BLOBS}/{sha256[:2]}/{sha256}"
    try:
        names = {e.name: e for e in layer.inner.list(folder) if not e.is_dir}
    except (StorageNotFoundError, NotADirectoryError):
        return None
    condemned = {n.split(".", 1)[0] for n in names if ".condemned." in n}
    for name, entry in sorted(names.items()):
        if "." not in name and name not in condemned and entry.size == size:
            return name
    return None


def _content_copy(layer: Referencing, survivor: Member, path: str, sha256: str,
                  md5: str) -> tuple[Ref, bool]:
    """``(ref, made)``: a usable content copy of the survivor's content. A copy found is
    re-hashed first (one read): one changed outside storied (cut, rotted, replaced) is never
    named by new references; a new generation is made instead."""
    size = survivor.info.size
    gen = _usable(layer, sha256, size)
    if gen is not None and _holds(layer, blob_path(sha256, gen), sha256):
        return Ref(sha256, size, md5, gen), False
    gen = os.urandom(6).hex()
    with tempfile.SpooledTemporaryFile(_SPOOL) as spool:
        digest = hashlib.sha256()
        with layer.open_read(path) as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
                spool.write(chunk)
        if digest.hexdigest() != sha256:
            raise PreconditionFailedError("the survivor changed while its content was copied")
        spool.seek(0)
        layer.inner.write(blob_path(sha256, gen), spool)  # type: ignore[arg-type]
    return Ref(sha256, size, md5, gen), True


def _holds(layer: Referencing, blob: str, sha256: str) -> bool:
    """Whether the content copy ``blob`` still hashes to ``sha256`` (False when it is gone)."""
    digest = hashlib.sha256()
    try:
        with layer.inner.open_read(blob) as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
    except StorageNotFoundError:
        return False
    return digest.hexdigest() == sha256


def _hash_both(node: Any) -> tuple[str, str, str | None]:
    """``(sha256, md5, etag)`` of ``node``: the etag is read *before* the content."""
    etag = node.info().etag
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with node._be.open_read(node.path) as stream:
        while chunk := stream.read(_CHUNK):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest(), etag


def _swap(layer: Referencing, path: str, data: bytes, etag: str | None, sha256: str,
          metadata: dict[str, str] | None) -> None:
    """Replace ``path`` by the reference ``data`` only while its etag is ``etag`` (atomic
    where the storage has conditional writes); without an etag, only after the content
    hashed to ``sha256`` once more (the remaining window: between that read and the write)."""
    if etag is None:
        digest = hashlib.sha256()
        with layer.open_read(path) as stream:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise PreconditionFailedError("changed")
        layer.inner.write(path, data, metadata=metadata)
        return
    if layer.capabilities.conditional_write:
        layer.inner.write(path, data, mode=WriteMode.IF_MATCH, etag=etag, metadata=metadata)
        return
    if layer.inner.info(path).etag != etag:  # last check: the window is this one request
        raise PreconditionFailedError("changed")
    layer.inner.write(path, data, metadata=metadata)


def compressed_below(layer: Referencing, path: str) -> bool:
    """Whether a compression layer below the reference layer compresses ``path`` (the
    mount's ``compress`` globs): its copies are stored compressed, while a content copy in
    the reserved area would be stored plain."""
    current: Any = layer.inner
    while current is not None:
        applies = getattr(type(current), "applies", None)
        if callable(applies):
            return bool(current.applies(path))
        current = current.__dict__.get("inner")
    return False


def reference_gain(group: DuplicateGroup) -> int:
    """Bytes turning every member of ``group`` into a reference frees, a new content copy
    counted (negative for files barely larger than a reference)."""
    return len(group.members) * (group.size - REF_SIZE) - group.size


def reference_group(group: DuplicateGroup, survivor: Member, row: dict[str, Any]) -> int:
    """Turn the members of ``group`` into references (``row``: the report row to fill);
    return the bytes of new content copies made (to subtract from what was reclaimed)."""
    others = [m for m in group.members if m is not survivor] + [survivor]
    try:
        layer, spath = layer_of(survivor.node)
        survivor.node.require_writable()
        wanted, md5, _ = _hash_both(survivor.node)
        if group.digest.startswith("sha256:") and group.digest[7:] != wanted:
            raise PreconditionFailedError("the survivor changed since the scan")
        if compressed_below(layer, spath):
            raise UnsupportedOperation(
                "the mount compresses these files: a plain content copy could take more "
                "space than the compressed copies")
        ref, made = _content_copy(layer, survivor, spath, wanted, md5)
    except StorageError as exc:
        row["skipped"] = [{"path": m.node.fullpath, "reason": f"survivor: {exc}"}
                          for m in others]
        return 0
    checked = time.monotonic()
    for member in others:
        path = member.node.fullpath
        try:
            mlayer, mpath = layer_of(member.node)
            if mlayer is not layer:
                raise UnsupportedOperation("not on the survivor's storage")
            current = layer.reference(mpath)
            if current is not None and current.gen == ref.gen and current.sha256 == wanted:
                row["skipped"].append({"path": path, "reason": "already a reference"})
                continue
            member.node.require_writable()
            digest, _, etag = _hash_both(member.node)
            if digest != wanted:
                raise PreconditionFailedError("content differs from the survivor's")
            if time.monotonic() - checked > RECHECK:
                if _usable(layer, wanted, ref.size) != ref.gen:
                    raise PreconditionFailedError("the content copy was condemned by gc")
                checked = time.monotonic()
            meta = None
            if layer.capabilities.metadata:
                meta = layer.inner.get_metadata(mpath) or None
            _swap(layer, mpath, layer.make_reference(ref), etag, wanted, meta)
            row["done"].append(path)
        except (PreconditionFailedError, StorageNotFoundError) as exc:
            row["skipped"].append({"path": path, "reason": f"changed: {exc}"})
        except StorageError as exc:
            row["skipped"].append({"path": path, "reason": str(exc)})
    return ref.size if made else 0


def collect(manager: StorageManager, mount: str, *, grace: float = GRACE,
            dry_run: bool = False) -> dict[str, Any]:
    """Remove the content copies of ``mount`` that no reference names (see the module doc).

    A copy is condemned by one pass and removed by a later one that starts at least ``grace``
    seconds after; ``grace=0`` does both in one call (safe only while no ``deduplicate`` runs
    on the mount).

    Any reference-shaped object keeps the copy it names (its HMAC is not required), and a
    read error during the walk stops gc before it condemns or removes anything.

    Raises:
        InvalidArgumentError: ``grace`` between 0 and :data:`MIN_GRACE` (exclusive).
        StoragePermissionError: The mount refuses writes or deletes (a dry run is allowed).
        StorageError: A file could not be listed or read (nothing was changed by that pass).

    Returns:
        ``{'mount', 'copies', 'referenced', 'condemned': [paths], 'removed': [paths],
        'bytes_freed'}``.
    """
    if 0 < grace < MIN_GRACE:
        raise InvalidArgumentError(
            f"grace must be 0 (no deduplicate running) or at least {MIN_GRACE:.0f} seconds "
            f"(deduplicate re-checks its content copy every {RECHECK:.0f} s), not {grace!r}")
    node = manager.node(f"{mount}:")
    layer, _ = layer_of(node)
    if not dry_run:
        node.require_writable()
        if not node._be.capabilities.delete:
            raise StoragePermissionError(
                f"mount {mount!r} does not allow deletes: its content copies cannot be removed")
    report: dict[str, Any] = {"mount": mount, "copies": 0, "referenced": 0, "condemned": [],
                              "removed": [], "bytes_freed": 0}
    for _ in range(2 if grace <= 0 else 1):
        if not _pass(layer, grace, dry_run, report) or dry_run:
            break
    return report


def _pass(layer: Referencing, grace: float, dry_run: bool, report: dict[str, Any]) -> bool:
    """One mark-and-sweep pass; True when it condemned something. A mount that never kept a
    content copy (no ``.storied/dedup/blobs`` yet) has nothing to collect: no walk of it."""
    blobs: dict[tuple[str, str], Any] = {}
    marks: dict[tuple[str, str], list[tuple[str, int]]] = {}
    try:
        stored = list(layer.inner.walk(BLOBS))
    except (StorageNotFoundError, NotADirectoryError):
        stored = []
    if not stored:
        return False
    for entry in stored:
        parts = entry.path.split("/")
        if len(parts) < 3:
            continue
        sha, name = parts[-2], parts[-1]
        if ".condemned." in name:
            gen, _, ts = name.partition(".condemned.")
            marks.setdefault((sha, gen), []).append((entry.path, int(ts or 0)))
        elif "." not in name:
            blobs[(sha, name)] = entry
    started = time.time_ns()
    used: set[tuple[str, str]] = set()
    for entry in layer.inner.walk(""):
        if entry.is_dir or entry.size != REF_SIZE or entry.path.startswith(".storied/dedup/"):
            continue
        named = layer.named_copy(entry.path, entry)  # a read error stops gc: no partial view
        if named is not None:
            used.add(named)
    report["copies"] = len(blobs)
    report["referenced"] = len(used & set(blobs))
    condemned_any = False
    limit = started - int(grace * 1e9)
    for key, entry in sorted(blobs.items()):
        mine = marks.get(key, [])
        if key in used:
            if not dry_run:
                layer.inner.delete_many([(p, None) for p, _ in mine])
            continue
        if mine and min(ts for _, ts in mine) <= limit:
            report["removed"].append(entry.path)
            report["bytes_freed"] += entry.size
            if not dry_run:
                layer.inner.delete_many([(entry.path, None)])
                layer.inner.delete_many([(p, None) for p, _ in mine])
            continue
        young = entry.mtime is not None and time.time() - entry.mtime < grace
        if not mine and not young:
            report["condemned"].append(entry.path)
            condemned_any = True
            if not dry_run:
                layer.inner.write(f"{entry.path}.condemned.{time.time_ns()}", b"")
            elif grace <= 0:  # the plan of grace=0: its second pass would remove it
                report["removed"].append(entry.path)
                report["bytes_freed"] += entry.size
    return condemned_any
