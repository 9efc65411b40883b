"""Capabilities: what a backend can do, declared as data.

Tests and callers decide by reading these flags, never by checking a backend's class. Flags that a
server can lie about (conditional writes on an S3-compatible server, bucket versioning) are probed
once per mount and the probed value is what the record says.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

__all__ = ["Capabilities"]

_LABELS = (
    ("versioning", "versioning"),
    ("metadata", "metadata"),
    ("presigned_urls", "presigned URLs"),
    ("copy_optimization", "server-side copy"),
    ("hash_on_metadata", "fast hashing"),
    ("symbolic_links", "symbolic links"),
    ("readonly", "read-only"),
    ("temporary", "temporary storage"),
    ("storage_classes", "storage classes"),
)


@dataclass(frozen=True)
class Capabilities:
    """A frozen, hashable record of what a backend (or a mount) can do.

    The first nineteen fields keep genro-storage's ``BackendCapabilities`` names and defaults; the
    rest are storied's own.

    Attributes:
        read: Files can be read.
        write: Files can be written.
        delete: Files and directories can be deleted.
        mkdir: Directories can be created.
        list_dir: Directories can be listed.
        versioning: The mount keeps version history (native or storied's portable engine).
        version_listing: Versions can be listed.
        version_access: Old versions can be read.
        metadata: User metadata (str -> str) can be stored with a file.
        presigned_urls: Time-limited URLs can be issued.
        public_urls: Files have a plain URL.
        atomic_operations: A write is all-or-nothing: readers never see a partial file.
        symbolic_links: The storage has symbolic links.
        copy_optimization: Copies inside the backend happen server-side.
        hash_on_metadata: An MD5 is known from metadata without reading the content.
        append_mode: Files can be opened for appending.
        seek_support: Readers can seek.
        readonly: Nothing can be written at all.
        temporary: Content does not outlive the process.
        conditional_write: Create-only and replace-if-etag-matches writes are honoured.
        native_versions: The storage itself keeps versions (S3 bucket versioning).
        empty_dirs: Empty directories exist on their own (false on object stores).
        atomic_rename: A move inside the backend is a rename, not copy + delete.
        range_reads: Byte ranges can be read without reading the whole file.
        opaque_paths: Paths are data, not names (base64): never split or normalised.
        hard_links: ``link()`` gives an immutable object a second name without copying it.
        process_local_writes: Writes (conditional ones included) are seen by this process only
            until a later flush (a writable archive held in memory): other processes sharing
            the file cannot be excluded, so locks refuse such a mount.
        storage_classes: Objects have storage classes (S3): ``storage_class()``,
            ``set_storage_class()`` and ``restore_archived()`` work. Legal holds and retention
            need no flag: they work on every mount with history (natively where the bucket has
            S3 Object Lock, probed on first use), see :mod:`storied.core.objectlock`.
    """

    read: bool = True
    write: bool = True
    delete: bool = True
    mkdir: bool = True
    list_dir: bool = True
    versioning: bool = False
    version_listing: bool = False
    version_access: bool = False
    metadata: bool = False
    presigned_urls: bool = False
    public_urls: bool = False
    atomic_operations: bool = True
    symbolic_links: bool = False
    copy_optimization: bool = False
    hash_on_metadata: bool = False
    append_mode: bool = True
    seek_support: bool = True
    readonly: bool = False
    temporary: bool = False
    conditional_write: bool = False
    native_versions: bool = False
    empty_dirs: bool = True
    atomic_rename: bool = False
    range_reads: bool = True
    opaque_paths: bool = False
    hard_links: bool = False
    process_local_writes: bool = False
    storage_classes: bool = False

    def replace(self, **changes: bool) -> Capabilities:
        """Return a copy with some flags changed."""
        return replace(self, **changes)

    def as_readonly(self) -> Capabilities:
        """Return the flags of a read-only view of this backend."""
        return replace(
            self, write=False, delete=False, mkdir=False, append_mode=False, readonly=True
        )

    def enabled(self) -> list[str]:
        """Names of the flags that are true, in declaration order."""
        return [f.name for f in fields(self) if getattr(self, f.name)]

    def __str__(self) -> str:
        labels = [label for name, label in _LABELS if getattr(self, name)]
        return ", ".join(labels) if labels else "basic file operations"
