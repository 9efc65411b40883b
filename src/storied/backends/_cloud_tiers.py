"""Storage classes on GCS and access tiers on Azure Blob (issue 11 §2): the fsspec backends.

:class:`GcsBackend` and :class:`AzureBackend` are :class:`FsspecBackend` with the three methods
:mod:`storied.core.objectlock` looks for on an unwrapped backend (``storage_class_of``,
``change_storage_class``, ``restore_archived``); the other fsspec storages (SFTP, WebDAV, HTTP)
have none, so ``node.set_storage_class`` there is :class:`~storied.errors.UnsupportedOperation`.
Every method takes the backend-relative key (the node maps a mount path with ``location()``).

Names (accepted case-insensitively; answered in the storage's own spelling):

- **GCS**: ``STANDARD``, ``NEARLINE``, ``COLDLINE``, ``ARCHIVE`` (settable); the legacy
  ``MULTI_REGIONAL``, ``REGIONAL``, ``DURABLE_REDUCED_AVAILABILITY`` are reported when an object
  has them, never set. Every class is readable at once (no restore). Costs:
  ``storage_class_of`` one object GET (none when the node came from a listing: gcsfs listings
  carry ``storageClass``, which fills ``Info.storage_class``); ``change_storage_class`` one
  GET plus one ``rewriteTo`` onto the object itself (repeated with the ``rewriteToken`` until
  ``done``), sending the source's content type, encoding, disposition, language, cache control
  and custom metadata with the new class (GCS would otherwise reset what the body omits), pinned
  to the generation read (``sourceGeneration`` and ``ifGenerationMatch``: a concurrent write
  or delete wins and the change is a :class:`~storied.errors.PreconditionFailedError`).
- **Azure**: ``Hot``, ``Cool``, ``Cold``, ``Archive`` (the access tier, changed in place with
  Set Blob Tier: no copy, same etag and metadata). adlfs listings omit the tier, so
  ``storage_class_of`` is one Get Blob Properties. An Archive blob must be rehydrated before
  it can be read (a read raises :class:`~storied.errors.ArchivedObjectError`):
  ``restore_archived`` sets tier ``Hot`` with standard priority (hours);
  Azure's rehydration is permanent, so ``days`` is checked and otherwise unused.

Writing a file again gives it the bucket's (container's) default class, as on the storages.
S3 class names are refused with the equivalent named (``GLACIER`` on GCS: "use ARCHIVE"):
mapping them silently would make ``storage_class()`` answer another name than the one set.
A server that accepts a change but does not apply it (fake-gcs-server ignores ``storageClass``
in a rewrite) is reported as :class:`~storied.errors.StorageIOError`, never as success.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from storied.backends._fsspec_support import to_info
from storied.backends.fsspec_adapters import FsspecBackend
from storied.errors import (
    ArchivedObjectError,
    InvalidArgumentError,
    PreconditionFailedError,
    StorageError,
    StorageIOError,
    StorageNotFoundError,
)
from storied.info import Info

__all__ = ["AZURE_TIERS", "GCS_CLASSES", "AzureBackend", "GcsBackend"]

#: The classes ``set_storage_class`` accepts on GCS.
GCS_CLASSES = ("STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE")
#: The access tiers ``set_storage_class`` accepts on Azure Blob.
AZURE_TIERS = ("Hot", "Cool", "Cold", "Archive")
_S3_ON_GCS = {
    "STANDARD_IA": "NEARLINE", "ONEZONE_IA": "NEARLINE", "INTELLIGENT_TIERING": "STANDARD",
    "GLACIER_IR": "COLDLINE", "GLACIER": "ARCHIVE", "DEEP_ARCHIVE": "ARCHIVE",
    "REDUCED_REDUNDANCY": "STANDARD",
}  # fmt: skip
_S3_ON_AZURE = {
    "STANDARD": "Hot", "STANDARD_IA": "Cool", "ONEZONE_IA": "Cool", "GLACIER_IR": "Cold",
    "GLACIER": "Archive", "DEEP_ARCHIVE": "Archive", "INTELLIGENT_TIERING": "Hot",
    "REDUCED_REDUNDANCY": "Hot",
}  # fmt: skip
#: Object fields a rewrite must repeat to keep them (GCS resets what the body omits).
_KEPT = ("contentType", "contentEncoding", "contentDisposition", "contentLanguage",
         "cacheControl", "metadata")


def _canonical(name: Any, names: tuple[str, ...], hints: dict[str, str], where: str) -> str:
    """``name`` in the storage's spelling, or :class:`InvalidArgumentError`."""
    if isinstance(name, str):
        for known in names:
            if name.upper() == known.upper():
                return known
        hint = hints.get(name.upper())
        if hint is not None:
            raise InvalidArgumentError(
                f"{name!r} is an S3 storage class; on {where} use {hint!r} "
                f"(one of: {', '.join(names)})"
            )
    raise InvalidArgumentError(
        f"Unknown {where} storage class {name!r}; one of: {', '.join(names)}"
    )


class GcsBackend(FsspecBackend):
    """A GCS bucket (gcsfs) with storage classes."""

    def _split(self, key: str) -> tuple[str, str]:
        bucket, name, _ = self.fs.split_path(self._fs(key))
        if not name:
            raise InvalidArgumentError("The bucket root has no storage class")
        return str(bucket), str(name)

    def _object(self, key: str) -> dict[str, Any]:
        bucket, name = self._split(key)
        with self._mapped(key, "info"):
            found: dict[str, Any] = self.fs.call("GET", "b/{}/o/{}", bucket, name,
                                                 json_out=True)
        return found

    def storage_class_of(self, key: str) -> str:
        """The object's storage class (one GET of its metadata).

        Raises:
            StorageNotFoundError: No such object.
        """
        return str(self._object(key).get("storageClass") or "STANDARD")

    def change_storage_class(self, key: str, name: str) -> Info:
        """Rewrite the object onto itself in class ``name`` (a new generation, same content
        and metadata); the new object's :class:`Info`.

        Raises:
            InvalidArgumentError: ``name`` is not a GCS class.
            StorageNotFoundError: No such object.
            PreconditionFailedError: The object was replaced or deleted by someone else
                meanwhile (the generation read is gone: nothing was changed).
            StorageIOError: The server answered but did not apply the class.
        """
        klass = _canonical(name, GCS_CLASSES, _S3_ON_GCS, "GCS")
        source = self._object(key)
        bucket, obj = self._split(key)
        body: dict[str, Any] = {k: source[k] for k in _KEPT if source.get(k)}
        body["storageClass"] = klass
        generation = str(source.get("generation") or "")
        pinned = {"sourceGeneration": generation, "ifGenerationMatch": generation} \
            if generation else {}
        token: str | None = None
        while True:
            params = dict(pinned, rewriteToken=token) if token else dict(pinned)
            try:
                with self._mapped(key, "rewrite"):
                    reply = self.fs.call(
                        "POST", "b/{}/o/{}/rewriteTo/b/{}/o/{}", bucket, obj, bucket, obj,
                        json_out=True, json=body, **params,
                    )
            except StorageNotFoundError as exc:  # the generation read is gone
                raise PreconditionFailedError(
                    f"{key!r} was replaced or deleted while its storage class was being set; "
                    "nothing was changed"
                ) from exc
            if reply.get("done"):
                break
            token = reply.get("rewriteToken")
            if not token:
                raise StorageIOError(f"GCS rewrite of {key!r} stopped without a rewriteToken")
        self._forget()
        resource = dict(reply.get("resource") or {})
        applied = str(resource.get("storageClass") or "")
        if applied.upper() != klass:
            raise StorageIOError(
                f"GCS accepted the rewrite of {key!r} to {klass} but the object is {applied!r}: "
                "the server does not apply storage classes in rewrites (an emulator?)"
            )
        entry = {**resource, "type": "file", "size": int(resource.get("size") or 0)}
        info = to_info(key, entry, True)
        return replace(info, storage_class=applied)

    def restore_archived(self, key: str, days: int = 1) -> bool:
        """GCS reads objects of every class at once: there is never anything to restore.

        Raises:
            InvalidArgumentError: Always (after checking ``days`` and that the object exists).
            StorageNotFoundError: No such object.
        """
        _check_days(days)
        klass = self.storage_class_of(key)
        raise InvalidArgumentError(
            f"{key!r} ({klass}) on GCS is readable as it is: GCS has no archive restores"
        )


def _check_days(days: Any) -> None:
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise InvalidArgumentError(f"days must be an int >= 1, not {days!r}")


class AzureBackend(FsspecBackend):
    """An Azure Blob container (adlfs) with access tiers. Reading an ``Archive`` blob (Azure
    answers 409 ``BlobArchived``) raises :class:`~storied.errors.ArchivedObjectError`."""

    @contextmanager
    def _mapped(self, path: str, op: str = "request") -> Iterator[None]:
        try:
            with super()._mapped(path, op):
                yield
        except ArchivedObjectError:
            raise
        except StorageError as exc:
            if not _blob_archived(exc):
                raise
            raise ArchivedObjectError(
                f"{path!r} in container {self.root!r} is in the Archive tier: rehydrate it "
                "first (node.restore_archived()) and wait for the rehydration to finish"
            ) from exc

    def _blob(self, key: str) -> tuple[str, str]:
        if not key:
            raise InvalidArgumentError("The container root has no access tier")
        return self.root, key

    def _run(self, key: str, op: str, call: Any) -> Any:
        """Run ``call(blob_client)`` (a coroutine function) on adlfs's loop, mapped."""
        from fsspec.asyn import sync

        container, blob = self._blob(key)
        fs = self.fs

        async def run() -> Any:
            async with fs.service_client.get_blob_client(container, blob) as client:
                return await call(client)

        with self._mapped(key, op):
            return sync(fs.loop, run)

    def _properties(self, key: str) -> Any:
        async def props(client: Any) -> Any:
            return await client.get_blob_properties()

        return self._run(key, "info", props)

    def storage_class_of(self, key: str) -> str:
        """The blob's access tier (one Get Blob Properties; the account default, inferred,
        is reported as Azure reports it).

        Raises:
            StorageNotFoundError: No such blob.
        """
        found = self._properties(key)
        return _azure_name(getattr(found, "blob_tier", None))

    def change_storage_class(self, key: str, name: str) -> Info:
        """Set the blob's access tier to ``name`` in place (Set Blob Tier: same content, etag
        and metadata). Out of ``Archive`` this starts a rehydration (hours).

        Raises:
            InvalidArgumentError: ``name`` is not an Azure tier.
            StorageNotFoundError: No such blob.
            ArchivedObjectError: The blob is being rehydrated; wait until it is done.
        """
        tier = _canonical(name, AZURE_TIERS, _S3_ON_AZURE, "Azure")
        found = self._properties(key)
        status = str(getattr(found, "archive_status", None) or "")
        if status.startswith("rehydrate-pending"):
            raise ArchivedObjectError(
                f"{key!r} in container {self.root!r} is being rehydrated ({status}): its tier "
                "can change once the rehydration is done"
            )

        async def set_tier(client: Any) -> None:
            await client.set_standard_blob_tier(tier)

        self._run(key, "set-tier", set_tier)
        self._forget()
        info = self.info(key)
        return replace(info, storage_class=tier)

    def restore_archived(self, key: str, days: int = 1) -> bool:
        """Start rehydrating an ``Archive`` blob to ``Hot`` (standard priority); True when
        started, False when a rehydration is already in progress. Azure's rehydration is a
        permanent tier change: ``days`` is checked, then unused.

        Raises:
            InvalidArgumentError: ``days`` not an int >= 1, or the blob is not archived.
            StorageNotFoundError: No such blob.
        """
        _check_days(days)
        found = self._properties(key)
        status = str(getattr(found, "archive_status", None) or "")
        if status.startswith("rehydrate-pending"):
            return False
        tier = _azure_name(getattr(found, "blob_tier", None))
        if tier != "Archive":
            raise InvalidArgumentError(
                f"{key!r} in container {self.root!r} is not archived ({tier}): nothing to restore"
            )

        async def rehydrate(client: Any) -> None:
            await client.set_standard_blob_tier("Hot", rehydrate_priority="Standard")

        self._run(key, "rehydrate", rehydrate)
        return True


def _blob_archived(exc: BaseException) -> bool:
    """Whether Azure refused the request because the blob is archived."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if getattr(seen, "error_code", None) == "BlobArchived" or "BlobArchived" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _azure_name(tier: Any) -> str:
    """An SDK tier (enum or string) in Azure's spelling (``Hot`` when unknown)."""
    text = str(getattr(tier, "value", tier) or "Hot")
    for known in AZURE_TIERS:
        if text.upper() == known.upper():
            return known
    return text

