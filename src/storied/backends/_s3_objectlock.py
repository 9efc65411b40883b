"""S3 Object Lock, legal hold and storage classes: methods mixed into the S3 backend.

Every method takes a full object key (the caller maps a mount path with ``location()``) and
maps S3's errors through the backend's one mapping site (``_mapped``). Request costs:

- :meth:`object_lock_config`: one GetObjectLockConfiguration per backend, cached (a bucket's
  Object Lock, once enabled, cannot be disabled; its default retention rarely changes);
- :meth:`object_lock`: one HEAD of the version (mode, retain-until date and legal hold all come
  back as headers);
- :meth:`put_legal_hold`, :meth:`put_retention`: one PUT each, with ``Content-MD5`` added to the
  body before signing (S3 refuses these requests without an integrity header; botocore sends a
  CRC32 checksum where the server accepts one, some S3-compatible servers want the MD5);
- :meth:`change_storage_class`: one HEAD and one CopyObject onto the key itself
  (``MetadataDirective=COPY``, ``TaggingDirective=COPY``, ``CopySourceIfMatch`` the HEAD's
  ETag, so a write landing in between is never undone: the copy is refused and tried again),
  or, at or above ``part_copy_threshold`` (5 GiB, CopyObject's limit), a multipart upload
  whose parts are UploadPartCopy ranges of the source version, checked by one more HEAD
  before it completes; like :mod:`storied.backends._s3_upload` it asks for a CRC32 per part
  (``ChecksumAlgorithm`` at create, each part's checksum listed at complete: a composite
  checksum, not a full-object one computed at the complete step), none when the client
  computes checksums only when required;
- :meth:`restore_archived`: one RestoreObject.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from storied.backends._s3_upload import checksum_algorithm, part_entry
from storied.errors import (
    ArchivedObjectError,
    InvalidArgumentError,
    PreconditionFailedError,
    StorageError,
    StorageNotFoundError,
    StoragePermissionError,
    UnsupportedOperation,
)
from storied.info import Info
from storied.policies.retention import CLOCK_MARGIN, Lock, clock

__all__ = ["ARCHIVE_CLASSES", "PART_COPY_LIMIT", "STORAGE_CLASSES", "S3ObjectLockMixin"]

_log = logging.getLogger(__name__)

#: Largest object one CopyObject may copy (above it: UploadPartCopy).
PART_COPY_LIMIT = 5 * 1024**3
_PART = 512 * 1024**2  # bytes per UploadPartCopy part (at most 10,000 parts: 5 TB objects)
#: The storage classes S3 accepts for ``set_storage_class``.
STORAGE_CLASSES = (
    "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING",
    "GLACIER", "DEEP_ARCHIVE", "GLACIER_IR", "OUTPOSTS", "SNOW", "EXPRESS_ONEZONE",
)  # fmt: skip
#: Classes whose objects must be restored before they can be read.
ARCHIVE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
_ATTEMPTS = 3  # class changes tried while the key keeps being written
_LOCK_OPS = ("PutObjectLegalHold", "PutObjectRetention", "PutObjectLockConfiguration")


def _add_content_md5(request: Any, **_: Any) -> None:
    """botocore ``before-sign`` hook: ``Content-MD5`` of the serialised body."""
    body = request.body
    if isinstance(body, str):
        body = body.encode()
    if isinstance(body, bytes | bytearray) and "Content-MD5" not in request.headers:
        digest = base64.b64encode(hashlib.md5(body).digest()).decode()
        request.headers["Content-MD5"] = digest


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class S3ObjectLockMixin:
    """Mixed into :class:`~storied.backends.s3.S3Backend` (which supplies ``_client``,
    ``bucket`` and ``_mapped``)."""

    _client: Any
    bucket: str
    _lock_config: dict[str, Any] | bool | None = False  # False: not asked yet
    _md5_hooked = False

    def _mapped(self, path: str, create: bool = False) -> Any:  # pragma: no cover - S3Backend's
        raise NotImplementedError

    # ---------------------------------------------------------------- configuration
    def object_lock_config(self) -> dict[str, Any] | None:
        """The bucket's ``ObjectLockConfiguration`` (``{'ObjectLockEnabled': 'Enabled',
        'Rule': ...}``) or None when Object Lock is not enabled or the configuration may not be
        read (access denied): asked once, cached.

        Raises:
            TransientStorageError: The server could not answer (not cached).
        """
        if self._lock_config is not False:
            return self._lock_config  # type: ignore[return-value]
        from botocore.exceptions import ClientError

        found: dict[str, Any] | None = None
        try:
            with self._mapped(""):
                try:
                    reply = self._client.get_object_lock_configuration(Bucket=self.bucket)
                    found = dict(reply.get("ObjectLockConfiguration") or {})
                except ClientError as exc:
                    code = _error_code(exc)
                    if code not in ("ObjectLockConfigurationNotFoundError", "NotImplemented",
                                    "MethodNotAllowed", "InvalidRequest"):
                        raise
        except UnsupportedOperation:
            found = None
        except StoragePermissionError:
            # credentials without s3:GetBucketObjectLockConfiguration (or an anonymous mount):
            # storied then keeps its own records and the server still refuses what it locks
            _log.info("bucket %r: Object Lock configuration not readable; storied records "
                      "holds itself", self.bucket)
            found = None
        if found is not None and found.get("ObjectLockEnabled") != "Enabled":
            found = None
        self._lock_config = found
        return found

    def object_lock_enabled(self) -> bool:
        """Whether the bucket has Object Lock (see :meth:`object_lock_config`)."""
        return self.object_lock_config() is not None

    def object_lock_default(self) -> tuple[str, timedelta] | None:
        """The bucket's default retention as ``(mode, period)``, None without one."""
        config = self.object_lock_config() or {}
        rule = (config.get("Rule") or {}).get("DefaultRetention") or {}
        if rule.get("Mode") not in ("GOVERNANCE", "COMPLIANCE"):
            return None
        days = int(rule.get("Days") or 0) + 365 * int(rule.get("Years") or 0)
        return (str(rule["Mode"]), timedelta(days=days)) if days else None

    def _hook_md5(self) -> None:
        if not self._md5_hooked:
            for op in _LOCK_OPS:
                self._client.meta.events.register(f"before-sign.s3.{op}", _add_content_md5)
            self._md5_hooked = True

    # ---------------------------------------------------------------- lock state
    def object_lock(self, key: str, version_id: str) -> Lock:
        """The legal hold and retention of one version (one HEAD).

        Raises:
            StorageNotFoundError: No such version.
        """
        with self._mapped(key):
            head = self._client.head_object(Bucket=self.bucket, Key=key, VersionId=version_id)
        until = head.get("ObjectLockRetainUntilDate")
        if isinstance(until, datetime):
            until = until if until.tzinfo else until.replace(tzinfo=UTC)
            until = until.astimezone(UTC)
        mode = head.get("ObjectLockMode") or None
        return Lock(head.get("ObjectLockLegalHoldStatus") == "ON",
                    str(mode) if mode and until else None, until if mode else None)

    def refusal_reasons(self, key: str, version_id: str) -> tuple[str, ...]:
        """Why the server refuses to delete this version, when its Object Lock is the cause
        (one HEAD): the lock's reasons (``legal-hold``, ``retention:MODE until ISO``; a
        retention ending less than ``CLOCK_MARGIN`` ago still counts, the server's clock may
        be behind ours), or ``()`` when no lock holds it (the refusal has another cause: a
        policy, missing permissions) or the version no longer exists.

        Raises:
            StorageError: The HEAD failed otherwise.
        """
        try:
            state = self.object_lock(key, version_id)
        except StorageNotFoundError:
            return ()
        return state.reasons(clock() - CLOCK_MARGIN)

    def put_legal_hold(self, key: str, version_id: str, on: bool) -> None:
        """PutObjectLegalHold ``ON``/``OFF`` on one version (one request)."""
        self._hook_md5()
        with self._mapped(key):
            self._client.put_object_legal_hold(
                Bucket=self.bucket, Key=key, VersionId=version_id,
                LegalHold={"Status": "ON" if on else "OFF"},
            )

    def put_retention(self, key: str, version_id: str, mode: str | None,
                      until: datetime | None, bypass_governance: bool = False) -> None:
        """PutObjectRetention on one version (``mode=None`` removes it; one request)."""
        self._hook_md5()
        retention: dict[str, Any] = {}
        if mode is not None and until is not None:
            retention = {"Mode": mode, "RetainUntilDate": until}
        extra = {"BypassGovernanceRetention": True} if bypass_governance else {}
        with self._mapped(key):
            self._client.put_object_retention(
                Bucket=self.bucket, Key=key, VersionId=version_id, Retention=retention, **extra,
            )

    # ---------------------------------------------------------------- storage classes
    def storage_class_of(self, key: str) -> str:
        """The object's storage class (one HEAD; S3 omits it for ``STANDARD``)."""
        with self._mapped(key):
            head = self._client.head_object(Bucket=self.bucket, Key=key)
        return str(head.get("StorageClass") or "STANDARD")

    def archive_state(self, key: str) -> tuple[str, bool]:
        """``(storage class, readable)`` of the current object: readable is False for an
        archived object not restored (one HEAD)."""
        with self._mapped(key):
            head = self._client.head_object(Bucket=self.bucket, Key=key)
        klass = str(head.get("StorageClass") or "STANDARD")
        restore = str(head.get("Restore") or "")
        readable = klass not in ARCHIVE_CLASSES or 'ongoing-request="false"' in restore
        return klass, readable

    def change_storage_class(self, key: str, name: str,
                             part_copy_threshold: int | None = None) -> Info:
        """Copy the object onto itself in class ``name``, keeping metadata, content type and
        tags (a new version on a versioned bucket); the new object's :class:`Info`. At or
        above ``part_copy_threshold`` (default :data:`PART_COPY_LIMIT`, read at call time)
        the copy is a multipart upload of UploadPartCopy ranges (parts of ``_PART`` bytes).

        Raises:
            InvalidArgumentError: ``name`` is not an S3 storage class.
            ArchivedObjectError: The object is archived and not restored.
            PreconditionFailedError: The key was written again and again while the class
                was being changed (three tries), or during a part copy; nothing changed.
            StorageNotFoundError: No such object.
        """
        if name not in STORAGE_CLASSES:
            raise InvalidArgumentError(
                f"Unknown S3 storage class {name!r}; one of: {', '.join(STORAGE_CLASSES)}"
            )
        for _ in range(_ATTEMPTS):
            with self._mapped(key):
                head = self._client.head_object(Bucket=self.bucket, Key=key)
            klass = str(head.get("StorageClass") or "STANDARD")
            restore = str(head.get("Restore") or "")
            if klass in ARCHIVE_CLASSES and 'ongoing-request="false"' not in restore:
                raise ArchivedObjectError(
                    f"{key!r} in bucket {self.bucket!r} is archived ({klass}): restore it "
                    "first (node.restore_archived(days=1)) and wait for the restore to finish"
                )
            size = int(head.get("ContentLength", 0))
            threshold = PART_COPY_LIMIT if part_copy_threshold is None else part_copy_threshold
            if size >= threshold:
                return self._part_copy(key, name, head, size)
            # the current object, only while it is still the one the HEAD saw: a copy pinned
            # to that version would put its old bytes back on top of a write made since
            source = {"Bucket": self.bucket, "Key": key}
            try:
                with self._mapped(key):
                    reply = self._client.copy_object(
                        Bucket=self.bucket, Key=key, CopySource=source, StorageClass=name,
                        MetadataDirective="COPY", TaggingDirective="COPY",
                        CopySourceIfMatch=head["ETag"],
                    )
            except PreconditionFailedError:
                continue  # written meanwhile: look again
            etag = str((reply.get("CopyObjectResult") or {}).get("ETag", "")).strip('"')
            return Info(key, False, size, None, etag or None, None, None,
                        reply.get("VersionId"))
        raise PreconditionFailedError(
            f"{key!r} in bucket {self.bucket!r} changed {_ATTEMPTS} times while its storage "
            "class was being changed; nothing was changed, try again")

    def _part_copy(self, key: str, name: str, head: dict[str, Any], size: int) -> Info:
        """The multipart form of :meth:`change_storage_class` (UploadPartCopy ranges of the
        object the HEAD saw: pinned to its version, and to its ETag; metadata and content type
        carried over; tags copied). When the key was written while the parts were copied
        (checked with one HEAD before completing) the upload is aborted and
        :class:`~storied.errors.PreconditionFailedError` raised: completing it would put the
        old bytes back on top of that write. (The window left: that HEAD to the completion.)"""
        source = {"Bucket": self.bucket, "Key": key}
        if head.get("VersionId"):
            source["VersionId"] = head["VersionId"]
        extra: dict[str, Any] = {"Metadata": dict(head.get("Metadata") or {})}
        for field in ("ContentType", "ContentEncoding", "ContentDisposition", "CacheControl"):
            if head.get(field):
                extra[field] = head[field]
        with self._mapped(key):
            tags = self._client.get_object_tagging(Bucket=self.bucket, Key=key,
                                                   **_version(source)).get("TagSet") or []
            if tags:
                extra["Tagging"] = "&".join(f"{_q(t['Key'])}={_q(t['Value'])}" for t in tags)
            algorithm = checksum_algorithm(self._client, {})
            if algorithm:  # a composite checksum of the parts, as _s3_upload asks for
                extra["ChecksumAlgorithm"] = algorithm
            upload = self._client.create_multipart_upload(
                Bucket=self.bucket, Key=key, StorageClass=name, **extra)["UploadId"]
        part = max(_PART, -(-size // 10_000))
        try:
            done = []
            for number, start in enumerate(range(0, size, part), start=1):
                end = min(size, start + part) - 1
                with self._mapped(key):
                    reply = self._client.upload_part_copy(
                        Bucket=self.bucket, Key=key, UploadId=upload, PartNumber=number,
                        CopySource=source, CopySourceRange=f"bytes={start}-{end}",
                        CopySourceIfMatch=head["ETag"],
                    )
                done.append(part_entry(number, reply["CopyPartResult"], algorithm))
            with self._mapped(key):
                now = self._client.head_object(Bucket=self.bucket, Key=key)
            if (now.get("VersionId"), now.get("ETag")) != (head.get("VersionId"), head["ETag"]):
                raise PreconditionFailedError(
                    f"{key!r} in bucket {self.bucket!r} changed while its storage class was "
                    "being changed; nothing was changed, try again")
            with self._mapped(key):
                reply = self._client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload,
                    MultipartUpload={"Parts": done},
                )
        except BaseException:
            try:
                with self._mapped(key):
                    self._client.abort_multipart_upload(Bucket=self.bucket, Key=key,
                                                        UploadId=upload)
            except StorageError:
                pass  # the original error wins; a lifecycle rule collects the parts
            raise
        etag = str(reply.get("ETag", "")).strip('"') or None
        return Info(key, False, size, None, etag, None, None, reply.get("VersionId"))

    def restore_archived(self, key: str, days: int = 1) -> bool:
        """Start restoring an archived object for ``days`` days (one RestoreObject); True
        when a restore was started (or a finished one extended), False when one is already
        in progress.

        Raises:
            InvalidArgumentError: ``days`` not an int >= 1, or the object is not archived.
            StorageNotFoundError: No such object.
        """
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise InvalidArgumentError(f"days must be an int >= 1, not {days!r}")
        from botocore.exceptions import ClientError

        with self._mapped(key):
            try:
                self._client.restore_object(Bucket=self.bucket, Key=key,
                                            RestoreRequest={"Days": days})
            except ClientError as exc:
                code = _error_code(exc)
                if code == "RestoreAlreadyInProgress":
                    return False
                if code in ("InvalidObjectState", "InvalidStorageClass"):
                    raise InvalidArgumentError(
                        f"{key!r} in bucket {self.bucket!r} is not archived: nothing to restore"
                    ) from exc
                if code in ("NoSuchKey", "404"):
                    raise StorageNotFoundError(f"No such file: {key!r}") from exc
                raise
        return True


def _version(source: dict[str, str]) -> dict[str, str]:
    return {"VersionId": source["VersionId"]} if "VersionId" in source else {}


def _q(text: str) -> str:
    from urllib.parse import quote

    return quote(str(text), safe="")
