"""botocore plumbing for :mod:`storied.backends.s3`: the client, error mapping, bodies, parts.

Private to the S3 adapter. :func:`error_for` is the adapter's one error-mapping site: every
``ClientError`` / ``BotoCoreError`` goes through :func:`mapped`, which chains the original.
"""

from __future__ import annotations

import email.utils
import heapq
import itertools
import mimetypes
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO
from xml.etree import ElementTree

import urllib3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from storied.backends.base import read_full
from storied.errors import (
    ArchivedObjectError,
    InvalidContentError,
    InvalidPathError,
    PreconditionFailedError,
    StorageAlreadyExistsError,
    StorageConfigError,
    StorageError,
    StorageIOError,
    StorageNotFoundError,
    StoragePermissionError,
    StorageTimeoutError,
    TransientStorageError,
    UnsupportedOperation,
)
from storied.info import Info, ObjectVersion

__all__ = [
    "MAX_PART",
    "MIN_PART",
    "RangeNotSatisfiable",
    "Refusal",
    "by_key",
    "byte_range",
    "check_key",
    "content_type",
    "delete_keys",
    "error_for",
    "exact_key",
    "is_marker",
    "listed_info",
    "mapped",
    "md5_of",
    "oldest_first",
    "page_versions",
    "parts",
    "read_full",
    "record_entry_order",
    "refusals_of",
    "timestamp",
    "unquote",
    "usable",
    "version_pages",
]

MIN_PART = 5 * 1024 * 1024
MAX_PART = 5 * 1024 * 1024 * 1024
_BATCH = 1000  # keys per DeleteObjects request, entries per version listing request
_MD5 = re.compile(r"[0-9a-f]{32}")

_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchVersion", "NoSuchUpload"}
_DENIED = {
    "AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch",
    "AllAccessDisabled", "AccountProblem", "InvalidToken", "ExpiredToken",
}  # fmt: skip
_TRANSIENT = {
    "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeoutException",
    "InternalError", "ServiceUnavailable", "RequestLimitExceeded", "TooManyRequests",
    "ConditionalRequestConflict", "OperationAborted",
}  # fmt: skip


class RangeNotSatisfiable(StorageError):
    """HTTP 416: the range starts at or after the end of the object (the reader returns b"")."""


# --------------------------------------------------------------------------- error mapping
def error_for(code: str, status: int, path: str, bucket: str, create: bool) -> StorageError:
    """The storied error for S3 error ``code`` / HTTP ``status`` on ``path``.

    Args:
        code: The S3 error code (``NoSuchKey``...), or the status as text for bodiless replies.
        status: The HTTP status (0 when unknown, as in DeleteObjects per-key errors).
        path: The key concerned, for the message.
        bucket: The bucket, named in the message (and alone for ``NoSuchBucket``).
        create: The request was a create-only write: 412 means "already exists".
    """
    where = f"{path!r} in bucket {bucket!r}"
    if code == "NoSuchBucket":
        return StorageNotFoundError(f"No such bucket: {bucket!r}")
    if code in _NOT_FOUND:
        return StorageNotFoundError(f"No such file: {where}")
    if code == "PreconditionFailed" or status == 412:
        if create:
            return StorageAlreadyExistsError(f"Already exists: {where}")
        return PreconditionFailedError(f"Etag mismatch on {where}")
    if code == "InvalidObjectState":
        return ArchivedObjectError(
            f"{where} is archived (an S3 Glacier / Deep Archive storage class) and cannot be "
            "read before it is restored: call node.restore_archived(days=1), wait for the "
            "restore to finish, then read it again"
        )
    if code in _DENIED:
        return StoragePermissionError(f"Access denied ({code}) to {where}")
    if code == "InvalidRange" or status == 416:
        return RangeNotSatisfiable(f"Range not satisfiable on {where}")
    if code in _TRANSIENT or status == 429 or status >= 500:
        return TransientStorageError(f"S3 error {code} (HTTP {status}) on {where}")
    if code in ("KeyTooLongError", "InvalidObjectName"):
        return InvalidPathError(f"S3 refuses the key {path!r}: {code}")
    if code == "NotImplemented" or status == 501:
        return UnsupportedOperation(f"The S3 server does not implement this request on {where}")
    return StorageIOError(f"S3 error {code} (HTTP {status}) on {where}")


def check_key(key: str) -> str:
    """``key`` if S3 can carry it (UTF-8), else InvalidPathError, before any request is sent.

    A local file name holding bytes that are not UTF-8 reaches Python as lone surrogates
    (``'caf\\udce9.txt'``); S3 keys are UTF-8, so such a name has no S3 spelling.
    """
    try:
        key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidPathError(
            f"S3 keys are UTF-8 text: {key!r} holds bytes that are not UTF-8 (a file name "
            "in another encoding?); rename it to copy it to S3"
        ) from exc
    return key


def _translate(exc: BaseException, path: str, bucket: str, create: bool) -> StorageError:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        if (meta.get("HTTPHeaders") or {}).get("x-amz-delete-marker") == "true":
            # GET/HEAD of a delete marker's id: AWS answers 405 MethodNotAllowed
            return StorageNotFoundError(f"Deleted (a delete marker): {path!r} in bucket {bucket!r}")
        status = int(meta.get("HTTPStatusCode") or 0)
        return error_for(str(error.get("Code", status)), status, path, bucket, create)
    timeouts = (ConnectTimeoutError, ReadTimeoutError, TimeoutError,
                urllib3.exceptions.TimeoutError)  # fmt: skip
    if isinstance(exc, timeouts):
        return StorageTimeoutError(f"S3 request timed out on {path!r} in bucket {bucket!r}: {exc}")
    if isinstance(exc, ProfileNotFound):
        return StorageConfigError(f"S3 mount of bucket {bucket!r}: {exc}")
    if isinstance(exc, (HTTPClientError, BotoConnectionError, IncompleteReadError)):
        return TransientStorageError(f"S3 connection problem on {path!r}: {exc}")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return StorageConfigError(f"S3 credentials missing for bucket {bucket!r}: {exc}")
    if isinstance(exc, ParamValidationError):
        text = " ".join(str(exc).split())
        if "bucket name" in text.lower():
            return StorageConfigError(f"S3 refuses the bucket name {bucket!r}: {text}")
        if "metadata" in text.lower():
            return InvalidContentError(f"S3 metadata of {path!r} must be ASCII text: {text}")
        return InvalidPathError(f"S3 refuses a request on {path!r}: {text}")
    if isinstance(exc, BotoCoreError):
        return StorageIOError(f"S3 client error on {path!r}: {exc}")
    if isinstance(exc, UnicodeEncodeError):
        return InvalidPathError(f"S3 cannot send {path!r}: text that is not encodable ({exc})")
    return TransientStorageError(f"S3 connection problem on {path!r}: {exc}")


#: Low-level failures that can escape botocore while a response body is read.
_CONNECTION = (ConnectionError, TimeoutError, urllib3.exceptions.HTTPError)


@contextmanager
def mapped(path: str, bucket: str, create: bool = False) -> Iterator[None]:
    """The adapter's one mapping site: every exception from inside becomes a storied error,
    chained (``raise ... from exc``). ``path`` is checked first (:func:`check_key`), so a key
    S3 cannot carry is refused before anything is sent.

    botocore ``ClientError`` / ``BotoCoreError`` are translated by :func:`error_for` and
    :func:`_translate`; ``UnicodeEncodeError`` becomes InvalidPathError; connection errors
    raised while reading a body (urllib3, sockets) become TransientStorageError. storied's own
    errors pass through unchanged.
    """
    check_key(path)
    try:
        yield
    except StorageError:
        raise
    except (ClientError, BotoCoreError, UnicodeEncodeError, *_CONNECTION) as exc:
        raise _translate(exc, path, bucket, create) from exc


# --------------------------------------------------------------------------- records
def unquote(etag: str | None) -> str | None:
    """The ETag without its double quotes."""
    return etag.strip('"') if etag else None


def md5_of(etag: str | None) -> str | None:
    """The ETag when it is a plain 32-hex MD5; None for multipart (``md5-N``) ETags."""
    return etag.lower() if etag and _MD5.fullmatch(etag.lower()) else None


def content_type(path: str) -> str:
    """The MIME type guessed from the name, ``application/octet-stream`` otherwise."""
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def timestamp(value: Any) -> float | None:
    """A Unix timestamp from a botocore datetime or an HTTP date header."""
    if value is None:
        return None
    if isinstance(value, str):
        value = email.utils.parsedate_to_datetime(value)
    return float(value.timestamp())


def usable(key: str) -> bool:
    """False for keys no normalised path can name (directory markers, empty segments...)."""
    return bool(key) and all(seg not in ("", ".", "..") for seg in key.split("/"))


def is_marker(key: str, prefix: str) -> bool:
    """Whether ``key`` is the directory marker object (``dir/``) of ``prefix`` itself or of an
    addressable directory below it (``a//`` or ``a/./`` are not: no path names them)."""
    if not key.endswith("/") or not key.startswith(prefix):
        return False
    return key == prefix or usable(key[:-1])


def listed_info(obj: dict[str, Any]) -> Info:
    """The :class:`Info` of one ``Contents`` entry of a listing (no HEAD needed)."""
    etag = unquote(obj.get("ETag"))
    mtime = timestamp(obj.get("LastModified"))
    return Info(obj["Key"], False, int(obj.get("Size", 0)), mtime, etag, md5_of(etag),
                storage_class=obj.get("StorageClass") or None)  # fmt: skip


def byte_range(start: int, end: int | None) -> dict[str, str]:
    """The ``Range`` argument of a GET of bytes ``[start, end)`` ({} for the whole object)."""
    if not start and end is None:
        return {}
    return {"Range": f"bytes={start}-{'' if end is None else end - 1}"}


# --------------------------------------------------------------------------- version listings
#: Key added to parsed ListObjectVersions responses: per entry, in XML order, True for a marker.
_ORDER = "StoriedMarkerOrder"
_ENTRY_TAGS = {"Version": False, "DeleteMarker": True}


def record_entry_order(client: Any) -> None:
    """Make ``client``'s ListObjectVersions responses keep the order of their entries.

    S3 lists a key's versions and delete markers newest first in one interleaved XML list;
    botocore parses them into two lists (``Versions``, ``DeleteMarkers``) and loses how they
    interleave. This hook reads the raw body once more and stores the sequence under
    :data:`_ORDER` (see :func:`page_versions`).
    """
    client.meta.events.register("after-call.s3.ListObjectVersions", _note_order)


def _note_order(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
    if getattr(http_response, "status_code", 0) != 200:
        return
    try:
        root = ElementTree.fromstring(http_response.content)
    except (ElementTree.ParseError, TypeError, ValueError):
        return  # page_versions falls back to versions-then-markers
    tags = (child.tag.rsplit("}", 1)[-1] for child in root)
    parsed[_ORDER] = [_ENTRY_TAGS[tag] for tag in tags if tag in _ENTRY_TAGS]


def _object_version(entry: dict[str, Any], marker: bool) -> ObjectVersion:
    etag = "" if marker else unquote(entry.get("ETag")) or ""
    return ObjectVersion(
        path=entry["Key"],
        version_id=entry.get("VersionId") or "null",
        mtime=timestamp(entry.get("LastModified")) or 0.0,
        size=0 if marker else int(entry.get("Size") or 0),
        etag=etag,
        md5=md5_of(etag),
        is_latest=bool(entry.get("IsLatest")),
        is_delete_marker=marker,
    )


def page_versions(page: dict[str, Any]) -> list[ObjectVersion]:
    """The entries of one ListObjectVersions page, markers included, in the server's XML order.

    Without the order recorded by :func:`record_entry_order` (or if it does not match the
    parsed lists) the order is all versions, then all markers, as moto itself sends them.
    """
    versions = iter(page.get("Versions") or ())
    markers = iter(page.get("DeleteMarkers") or ())
    counts = (len(page.get("Versions") or ()), len(page.get("DeleteMarkers") or ()))
    order = page.get(_ORDER)
    if order is None or (order.count(False), order.count(True)) != counts:
        order = [False] * counts[0] + [True] * counts[1]
    return [_object_version(next(markers if m else versions), m) for m in order]


def oldest_first(entries: list[ObjectVersion]) -> list[ObjectVersion]:
    """One key's entries (in listing order, over all its pages) from oldest to newest.

    The versions keep their listed order among themselves, and so do the markers: the server
    orders each exactly. Only how the two interleave is decided here, newest first, by: S3's
    ``IsLatest`` flag, then the timestamp, then the position in the XML. On servers that send
    one interleaved list (AWS) that is exactly their order; moto sends versions before markers
    with second-resolution timestamps, so there a marker written in the same second as a
    version that is not the latest entry may be placed before it instead of after.
    """
    position = {id(entry): n for n, entry in enumerate(entries)}

    def rank(entry: ObjectVersion) -> tuple[bool, float, int]:
        return (not entry.is_latest, -entry.mtime, position[id(entry)])

    versions = [e for e in entries if not e.is_delete_marker]
    markers = [e for e in entries if e.is_delete_marker]
    newest_first = list(heapq.merge(versions, markers, key=rank))
    return newest_first[::-1]


def version_pages(client: Any, bucket: str, path: str, prefix: str) -> Iterator[dict[str, Any]]:
    """ListObjectVersions pages below ``prefix`` (one request each, 1000 entries), mapped.

    ``path`` names the request in errors; a missing bucket raises StorageNotFoundError naming it.
    """
    params: dict[str, Any] = {"Prefix": prefix, "MaxKeys": _BATCH}  # moto's default is 100
    while True:
        with mapped(path, bucket):
            page: dict[str, Any] = client.list_object_versions(Bucket=bucket, **params)
        yield page
        if not page.get("IsTruncated"):
            return
        params["KeyMarker"] = page["NextKeyMarker"]
        params["VersionIdMarker"] = page.get("NextVersionIdMarker") or ""


def exact_key(pages: Iterator[dict[str, Any]], key: str) -> list[ObjectVersion]:
    """The entries of exactly ``key``, oldest first, from pages listed with ``Prefix=key``.

    ``key`` sorts before every other key it prefixes, so the first page that shows another key
    is the last one needed (no further request).
    """
    entries: list[ObjectVersion] = []
    for page in pages:
        listed = page_versions(page)
        entries.extend(e for e in listed if e.path == key)
        if any(e.path != key for e in listed):
            break
    return oldest_first(entries)


def by_key(pages: Iterator[dict[str, Any]]) -> Iterator[ObjectVersion]:
    """Every entry of usable keys, key after key in key order, each key's oldest first.

    A key is yielded once the listing has passed it (keys before a page's ``NextKeyMarker`` are
    complete), so memory holds about one page.
    """
    pending: dict[str, list[ObjectVersion]] = {}
    for page in pages:
        for entry in page_versions(page):
            if usable(entry.path):
                pending.setdefault(entry.path, []).append(entry)
        last = page.get("NextKeyMarker") if page.get("IsTruncated") else None
        for key in sorted(k for k in pending if last is None or k < last):
            yield from oldest_first(pending.pop(key))


# --------------------------------------------------------------------------- streams


def parts(head: bytes, stream: BinaryIO, part_size: int) -> Iterator[bytes]:
    """Cut ``head`` + the rest of ``stream`` into upload parts.

    Every part but the last has the full size, which doubles every 1000 parts (capped at 5 GiB)
    so that an unknown-length stream fits S3's 10000-part limit. Holds one part in memory
    (plus what is left of ``head``), copying each byte at most once more.
    """
    pending, number = head, 0
    while True:
        size = min(part_size << (number // 1000), MAX_PART)
        if len(pending) >= size:
            part, pending = pending[:size], pending[size:]
        else:
            rest = read_full(stream, size - len(pending))
            part, pending = (pending + rest if pending else rest), b""
        if not part:
            return
        yield part
        if len(part) < size:
            return  # a short part: the stream is exhausted
        del part
        number += 1


# --------------------------------------------------------------------------- writes
@dataclass(frozen=True)
class Refusal:
    """One key (or version) a DeleteObjects request refused: the server's per-key error."""

    key: str
    version_id: str | None
    code: str
    message: str


def refusals_of(exc: BaseException) -> list[Refusal]:
    """Every refusal a :func:`delete_keys` error carries (``[]`` for any other error)."""
    found = getattr(exc, "refused", None)
    return list(found) if isinstance(found, list) else []


def delete_keys(
    client: Any, bucket: str, path: str, keys: Iterable[str | tuple[str, str | None]]
) -> None:
    """DeleteObjects per 1000 keys (or ``(key, version_id)`` pairs), every batch sent.

    When the server refused some of them (per-key errors: an Object Lock, a policy...), the
    first refusal is raised, mapped, after the last batch, carrying every refusal of the call
    as its ``refused`` (a list of :class:`Refusal`, read with :func:`refusals_of`); every
    item not in it is gone. (Before, only the first refusal was reported and the batches
    after it were not sent.) A whole request failing raises at once, as before.
    """
    iterator = iter(keys)
    refused: list[Refusal] = []
    while batch := list(itertools.islice(iterator, _BATCH)):
        objects = [_object_ref(item) for item in batch]
        with mapped(path, bucket):
            response = client.delete_objects(
                Bucket=bucket, Delete={"Objects": objects, "Quiet": True}
            )
        refused += [Refusal(str(error.get("Key", path)), error.get("VersionId") or None,
                            str(error.get("Code")), str(error.get("Message") or ""))
                    for error in response.get("Errors") or ()]
    if refused:
        exc = error_for(refused[0].code, 0, refused[0].key, bucket, False)
        exc.refused = refused  # type: ignore[attr-defined]
        raise exc


def _object_ref(item: str | tuple[str, str | None]) -> dict[str, str]:
    if isinstance(item, str):
        return {"Key": check_key(item)}
    key, version = check_key(item[0]), item[1]
    return {"Key": key, "VersionId": version} if version else {"Key": key}
