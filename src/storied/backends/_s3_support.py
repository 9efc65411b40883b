"""botocore plumbing for :mod:`storied.backends.s3`: the client, error mapping, bodies, parts.

Private to the S3 adapter. :func:`error_for` is the adapter's one error-mapping site: every
``ClientError`` / ``BotoCoreError`` goes through :func:`mapped`, which chains the original.
"""

from __future__ import annotations

import email.utils
import heapq
import io
import mimetypes
import re
from collections.abc import Iterator
from xml.etree import ElementTree
from contextlib import contextmanager
from typing import Any, BinaryIO

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from storied.errors import (
    InvalidPathError,
    PreconditionFailedError,
    StorageAlreadyExistsError,
    StorageConfigError,
    StorageError,
    StorageNotFoundError,
    StoragePermissionError,
    TransientStorageError,
    UnsupportedOperation,
)
from storied.info import Info, ObjectVersion

__all__ = [
    "MAX_PART",
    "MIN_PART",
    "RangeNotSatisfiable",
    "S3Body",
    "byte_range",
    "content_type",
    "discard",
    "error_for",
    "listed_info",
    "make_client",
    "mapped",
    "md5_of",
    "oldest_first",
    "page_versions",
    "parts",
    "read_full",
    "record_entry_order",
    "timestamp",
    "unquote",
    "upload_multipart",
    "usable",
]

MIN_PART = 5 * 1024 * 1024
MAX_PART = 5 * 1024 * 1024 * 1024
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
    return StorageError(f"S3 error {code} (HTTP {status}) on {where}")


def _translate(exc: Exception, path: str, bucket: str, create: bool) -> StorageError:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        if (meta.get("HTTPHeaders") or {}).get("x-amz-delete-marker") == "true":
            # GET/HEAD of a delete marker's id: AWS answers 405 MethodNotAllowed
            return StorageNotFoundError(f"Deleted (a delete marker): {path!r} in bucket {bucket!r}")
        status = int(meta.get("HTTPStatusCode") or 0)
        return error_for(str(error.get("Code", status)), status, path, bucket, create)
    if isinstance(exc, (HTTPClientError, BotoConnectionError, IncompleteReadError)):
        return TransientStorageError(f"S3 connection problem on {path!r}: {exc}")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return StorageConfigError(f"S3 credentials missing for bucket {bucket!r}: {exc}")
    return StorageError(f"S3 client error on {path!r}: {exc}")


@contextmanager
def mapped(path: str, bucket: str, create: bool = False) -> Iterator[None]:
    """Re-raise botocore exceptions from inside as storied errors (``raise ... from exc``)."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
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


def listed_info(obj: dict[str, Any]) -> Info:
    """The :class:`Info` of one ``Contents`` entry of a listing (no HEAD needed)."""
    etag = unquote(obj.get("ETag"))
    mtime = timestamp(obj.get("LastModified"))
    return Info(obj["Key"], False, int(obj.get("Size", 0)), mtime, etag, md5_of(etag))


# --------------------------------------------------------------------------- streams
def read_full(stream: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes, fewer only at end of stream (raw streams may return short reads)."""
    chunks: list[bytes] = []
    left = size
    while left > 0:
        chunk = stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def parts(head: bytes, stream: BinaryIO, part_size: int) -> Iterator[bytes]:
    """Cut ``head`` + the rest of ``stream`` into upload parts.

    Every part but the last has the full size, which doubles every 1000 parts (capped at 5 GiB)
    so that an unknown-length stream fits S3's 10000-part limit. Holds one part in memory.
    """
    buffer, number = head, 0
    while True:
        size = min(part_size << (number // 1000), MAX_PART)
        if len(buffer) < size:
            buffer += read_full(stream, size - len(buffer))
        if not buffer:
            return
        yield buffer[:size]
        if len(buffer) < size:
            return  # a short part: the stream is exhausted
        buffer, number = buffer[size:], number + 1


class S3Body(io.RawIOBase):
    """A GET response body as a raw binary file whose read errors go through :func:`mapped`."""

    def __init__(self, body: Any, path: str, bucket: str) -> None:
        self._body, self._path, self._bucket = body, path, bucket

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with mapped(self._path, self._bucket):
            data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        with mapped(self._path, self._bucket):
            return bytes(self._body.read())

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


# --------------------------------------------------------------------------- client
def make_client(
    credentials: dict[str, str | None], anon: bool, client_kwargs: dict[str, Any] | None
) -> Any:
    """One boto3 S3 client (thread-safe), on its own session, with few retries.

    Args:
        credentials: ``region``, ``key``, ``secret``, ``token``, ``endpoint_url`` (each may be
            None: boto3's usual chain and AWS endpoints apply; the region defaults to us-east-1).
        anon: Send unsigned requests.
        client_kwargs: Extra ``client()`` arguments, winning over the above; a ``config``
            (botocore ``Config`` or dict) is merged over storied's (SigV4, 2 attempts: storied's
            ``Retrying`` wrapper does the retrying).
    """
    kwargs = dict(client_kwargs or {})
    config = Config(
        retries={"max_attempts": 2, "mode": "standard"},
        signature_version=UNSIGNED if anon else "s3v4",
    )
    user_config = kwargs.pop("config", None)
    if isinstance(user_config, dict):
        user_config = Config(**user_config)
    if user_config is not None:
        config = config.merge(user_config)
    kwargs.setdefault("region_name", credentials.get("region") or "us-east-1")
    kwargs.setdefault("endpoint_url", credentials.get("endpoint_url"))
    if not anon:
        kwargs.setdefault("aws_access_key_id", credentials.get("key"))
        kwargs.setdefault("aws_secret_access_key", credentials.get("secret"))
        kwargs.setdefault("aws_session_token", credentials.get("token"))
    return boto3.session.Session().client("s3", config=config, **kwargs)
