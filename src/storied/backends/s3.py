"""Amazon S3 (and S3-compatible servers) through boto3, counting every request.

Request economy, the reason this adapter talks to boto3 directly:

- ``open_read`` / ``read_bytes``: one GET (a ``Range`` header for byte ranges), no HEAD first.
- ``info`` / ``exists``: one HEAD; only when it says 404, one LIST (``max-keys=1``) to tell an
  implied directory (a key prefix) from nothing.
- ``write``: one PUT below ``multipart_threshold`` (8 MiB); above it, a multipart upload.
- ``list``: ListObjectsV2 with ``Delimiter='/'``; ``walk``: the same without delimiter (one
  request per 1000 entries). Listed entries carry size, mtime, etag and, for single-part ETags,
  the MD5.
- ``set_metadata``: one CopyObject of the object onto itself.

Directories are implied by key prefixes: ``mkdir`` writes nothing, and keys ending in ``/``
(directory markers written by other tools) are never shown as files. Conditional writes use
``If-None-Match: *`` and ``If-Match``; whether the server honours them is probed once per backend
(lazily, on first use), as is bucket versioning. Every botocore error is translated in
:func:`_error_for`, the one mapping site of this adapter.
"""

from __future__ import annotations

import email.utils
import io
import itertools
import mimetypes
import re
import threading
import uuid
from collections.abc import Iterable, Iterator
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

from storied import paths
from storied.backends.base import Backend, as_stream
from storied.capabilities import Capabilities
from storied.errors import (
    DirectoryNotEmptyError,
    InvalidPathError,
    IsADirectoryStorageError,
    NotADirectoryStorageError,
    PreconditionFailedError,
    StorageAlreadyExistsError,
    StorageConfigError,
    StorageError,
    StorageNotFoundError,
    StoragePermissionError,
    TransientStorageError,
    UnsupportedOperation,
)
from storied.info import Data, Info, WriteMode

__all__ = ["DEFAULT_MULTIPART_THRESHOLD", "S3Backend", "from_config"]

#: Objects at least this large are sent as multipart uploads.
DEFAULT_MULTIPART_THRESHOLD = 8 * 1024 * 1024
_MIN_PART = 5 * 1024 * 1024
_MAX_PART = 5 * 1024 * 1024 * 1024
_MAX_COPY = 5 * 1024 * 1024 * 1024  # CopyObject limit; larger objects are copied by streaming
_DELETE_BATCH = 1000
_MD5 = re.compile(r"[0-9a-f]{32}")

_CAPS = Capabilities(
    metadata=True,
    presigned_urls=True,
    public_urls=True,
    copy_optimization=True,
    hash_on_metadata=True,
    range_reads=True,
    atomic_operations=True,
    empty_dirs=False,
    atomic_rename=False,
    append_mode=False,
)

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


class _RangeNotSatisfiable(StorageError):
    """HTTP 416: the range starts at or after the end of the object."""


# --------------------------------------------------------------------------- error mapping
def _error_for(code: str, status: int, path: str, bucket: str, create: bool) -> StorageError:
    """The storied error for an S3 error ``code`` / HTTP ``status`` (the one mapping site)."""
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
        return _RangeNotSatisfiable(f"Range not satisfiable on {where}")
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
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return _error_for(str(error.get("Code", status)), status, path, bucket, create)
    if isinstance(exc, (HTTPClientError, BotoConnectionError, IncompleteReadError)):
        return TransientStorageError(f"S3 connection problem on {path!r}: {exc}")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return StorageConfigError(f"S3 credentials missing for bucket {bucket!r}: {exc}")
    return StorageError(f"S3 client error on {path!r}: {exc}")


@contextmanager
def _mapped(path: str, bucket: str, create: bool = False) -> Iterator[None]:
    """Translate botocore exceptions raised inside into the storied tree, chained."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise _translate(exc, path, bucket, create) from exc


# --------------------------------------------------------------------------- small helpers
def _unquote(etag: str | None) -> str | None:
    return etag.strip('"') if etag else None


def _md5_of(etag: str | None) -> str | None:
    """The ETag when it is a plain MD5 (never a multipart ``md5-N`` ETag)."""
    return etag.lower() if etag and _MD5.fullmatch(etag.lower()) else None


def _content_type(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def _timestamp(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = email.utils.parsedate_to_datetime(value)
    return float(value.timestamp())


def _usable(key: str) -> bool:
    """False for keys no normalised path can name (directory markers, empty segments...)."""
    return bool(key) and all(seg not in ("", ".", "..") for seg in key.split("/"))


def _listed(obj: dict[str, Any]) -> Info:
    etag = _unquote(obj.get("ETag"))
    mtime = _timestamp(obj.get("LastModified"))
    return Info(obj["Key"], False, int(obj.get("Size", 0)), mtime, etag, _md5_of(etag))


def _read_full(stream: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes, or fewer only at end of stream (raw streams may return short)."""
    chunks: list[bytes] = []
    left = size
    while left > 0:
        chunk = stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _parts(head: bytes, stream: BinaryIO, part_size: int) -> Iterator[bytes]:
    """Cut ``head`` + the rest of ``stream`` into parts; sizes double every 1000 parts."""
    buffer, number = head, 0
    while True:
        size = min(part_size << (number // 1000), _MAX_PART)
        if len(buffer) < size:
            buffer += _read_full(stream, size - len(buffer))
        if not buffer:
            return
        yield buffer[:size]
        if len(buffer) < size:
            return  # a short part: the stream is exhausted
        buffer, number = buffer[size:], number + 1


class _Body(io.RawIOBase):
    """A GET response body as a raw binary file; read errors go through the mapping."""

    def __init__(self, body: Any, path: str, bucket: str) -> None:
        self._body, self._path, self._bucket = body, path, bucket

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with _mapped(self._path, self._bucket):
            data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        with _mapped(self._path, self._bucket):
            return bytes(self._body.read())

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def _make_client(
    region: str | None,
    key: str | None,
    secret: str | None,
    token: str | None,
    endpoint_url: str | None,
    anon: bool,
    client_kwargs: dict[str, Any] | None,
) -> Any:
    """One boto3 client (thread-safe) with few retries: storied's Retrying wrapper retries."""
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
    kwargs.setdefault("region_name", region or "us-east-1")
    kwargs.setdefault("endpoint_url", endpoint_url)
    if not anon:
        kwargs.setdefault("aws_access_key_id", key)
        kwargs.setdefault("aws_secret_access_key", secret)
        kwargs.setdefault("aws_session_token", token)
    return boto3.session.Session().client("s3", config=config, **kwargs)


# --------------------------------------------------------------------------- the adapter
class S3Backend(Backend):
    """One S3 bucket; paths are object keys (``a/b.txt``), directories are key prefixes.

    Constructing the backend sends no request. :attr:`capabilities` probes the server on first
    access (conditional writes: two PUTs and a DELETE under ``.storied/probe/``; versioning: one
    GetBucketVersioning) and caches the answers.

    Args:
        bucket: The bucket name.
        region: AWS region (default ``us-east-1``).
        key: Access key id (None: boto3's usual credential chain).
        secret: Secret access key.
        token: Session token.
        endpoint_url: An S3-compatible server's URL.
        anon: Send unsigned requests (public buckets).
        client_kwargs: Extra ``boto3 client()`` arguments; a ``config`` (botocore ``Config`` or
            dict) is merged over storied's defaults.
        multipart_threshold: Objects of this size or more are sent as multipart uploads, in
            parts of ``max(threshold, 5 MiB)``.
        probe_prefix: Key prefix under which the conditional-write probe writes (the mount's
            base path, so that credentials limited to that prefix can probe).
    """

    protocol = "s3"

    def __init__(
        self,
        bucket: str,
        *,
        region: str | None = None,
        key: str | None = None,
        secret: str | None = None,
        token: str | None = None,
        endpoint_url: str | None = None,
        anon: bool = False,
        client_kwargs: dict[str, Any] | None = None,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        probe_prefix: str = "",
    ) -> None:
        self.bucket = bucket
        self.multipart_threshold = max(1, int(multipart_threshold))
        self.anon = anon
        self._client = _make_client(region, key, secret, token, endpoint_url, anon, client_kwargs)
        self._probe_prefix = paths.normalize(probe_prefix)
        self._probe_lock = threading.Lock()
        self._conditional: bool | None = None
        self._versioned: bool | None = None

    # ---------------------------------------------------------------- capabilities
    @property  # type: ignore[override]
    def capabilities(self) -> Capabilities:
        """The static flags plus the probed ``conditional_write`` and ``native_versions``."""
        return _CAPS.replace(
            conditional_write=self.conditional_write_supported(),
            native_versions=self.versioning_enabled(),
        )

    def conditional_write_supported(self) -> bool:
        """Whether the server refuses a second ``If-None-Match: *`` PUT (probed once)."""
        with self._probe_lock:
            if self._conditional is None and not self.anon:
                try:
                    self._conditional = self._probe_conditional()
                except TransientStorageError:
                    return False  # not cached: ask again next time
                except StorageError:
                    self._conditional = False
            return bool(self._conditional)

    def versioning_enabled(self) -> bool:
        """Whether GetBucketVersioning says ``Enabled`` (asked once)."""
        with self._probe_lock:
            if self._versioned is None:
                try:
                    with self._mapped(""):
                        status = self._client.get_bucket_versioning(Bucket=self.bucket)
                except TransientStorageError:
                    return False
                except StorageError:
                    status = {}
                self._versioned = status.get("Status") == "Enabled"
            return self._versioned

    def _probe_conditional(self) -> bool:
        key = paths.join(self._probe_prefix, paths.RESERVED, "probe", uuid.uuid4().hex)
        written: list[dict[str, Any]] = []
        try:
            with self._mapped(key):
                written.append(self._put(key, b"", IfNoneMatch="*"))
            try:
                with self._mapped(key, create=True):
                    written.append(self._put(key, b"", IfNoneMatch="*"))
            except StorageAlreadyExistsError:
                return True
            return False
        finally:
            self._discard(key, [w.get("VersionId") for w in written])

    def _discard(self, key: str, versions: list[str | None]) -> None:
        """Best-effort removal of the probe object (each version, on a versioned bucket)."""
        for version in [v for v in versions if v and v != "null"] or [None]:
            extra = {"VersionId": version} if version else {}
            try:
                self._client.delete_object(Bucket=self.bucket, Key=key, **extra)
            except (ClientError, BotoCoreError):
                pass

    # ---------------------------------------------------------------- helpers
    def _mapped(self, path: str, create: bool = False) -> Any:
        return _mapped(path, self.bucket, create)

    def _put(self, key: str, body: bytes, **extra: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._client.put_object(
            Bucket=self.bucket, Key=key, Body=body, **extra
        )
        return result

    def _pages(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """ListObjectsV2 pages (one request each), mapped, following continuation tokens."""
        while True:
            with self._mapped(path):
                page: dict[str, Any] = self._client.list_objects_v2(Bucket=self.bucket, **params)
            yield page
            if not page.get("IsTruncated"):
                return
            params["ContinuationToken"] = page["NextContinuationToken"]

    def _is_prefix(self, path: str) -> bool:
        """One LIST: is anything stored under ``path/``? (NoSuchBucket raises, naming it.)"""
        prefix = path + "/" if path else ""
        page = next(self._pages(path, Prefix=prefix, MaxKeys=1))
        return bool(page.get("KeyCount") or page.get("Contents"))

    def _missing_dir(self, path: str) -> None:
        """Raise the right error for a directory operation on a path with nothing under it."""
        if self.info(path).is_dir:
            return
        raise NotADirectoryStorageError(f"Not a directory: {path!r} in bucket {self.bucket!r}")

    def _head(self, path: str) -> dict[str, Any]:
        with self._mapped(path):
            head: dict[str, Any] = self._client.head_object(Bucket=self.bucket, Key=path)
        return head

    # ---------------------------------------------------------------- contract
    def info(self, path: str) -> Info:
        """One HEAD; on 404 one LIST to recognise an implied directory."""
        if not path:
            self._is_prefix("")  # the bucket must exist
            return Info("", is_dir=True)
        try:
            head = self._head(path)
        except StorageNotFoundError:
            if self._is_prefix(path):
                return Info(path, is_dir=True)
            raise
        etag = _unquote(head.get("ETag"))
        md5 = None if head.get("ServerSideEncryption") == "aws:kms" else _md5_of(etag)
        return Info(
            path,
            size=int(head.get("ContentLength", 0)),
            mtime=_timestamp(head.get("LastModified")),
            etag=etag,
            md5=md5,
            metadata=dict(head.get("Metadata") or {}),
            version_id=head.get("VersionId"),
        )

    def list(self, path: str) -> Iterator[Info]:
        """ListObjectsV2 with ``Delimiter='/'``: one request per 1000 children."""
        prefix = path + "/" if path else ""
        found = False
        for page in self._pages(path, Prefix=prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes") or ():
                found = True
                name = common["Prefix"][:-1]
                if _usable(name):
                    yield Info(name, is_dir=True)
            for obj in page.get("Contents") or ():
                found = True
                if _usable(obj["Key"]):
                    yield _listed(obj)
        if not found and path:
            self._missing_dir(path)

    def walk(self, path: str) -> Iterator[Info]:
        """One flat ListObjectsV2 (no delimiter) per 1000 keys below ``path``."""
        prefix = path + "/" if path else ""
        found = False
        for page in self._pages(path, Prefix=prefix):
            for obj in page.get("Contents") or ():
                found = True
                if _usable(obj["Key"]):
                    yield _listed(obj)
        if not found and path:
            self._missing_dir(path)

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """One GET (with ``Range`` for a slice); on 404 one LIST to tell a directory."""
        if not path:
            raise IsADirectoryStorageError(f"Is a directory: the root of bucket {self.bucket!r}")
        if end is not None and end <= start:
            if self.info(path).is_dir:
                raise IsADirectoryStorageError(f"Is a directory: {path!r}")
            return io.BytesIO(b"")
        extra = {}
        if start or end is not None:
            extra["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            with self._mapped(path):
                response = self._client.get_object(Bucket=self.bucket, Key=path, **extra)
        except _RangeNotSatisfiable:
            return io.BytesIO(b"")
        except StorageNotFoundError:
            if self._is_prefix(path):
                raise IsADirectoryStorageError(f"Is a directory: {path!r}") from None
            raise
        raw = _Body(response["Body"], path, self.bucket)
        return io.BufferedReader(raw, 1024 * 1024)  # type: ignore[return-value]

    def write(
        self,
        path: str,
        data: Data,
        *,
        mode: WriteMode = WriteMode.OVERWRITE,
        etag: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Info:
        """One PUT below the multipart threshold, else a multipart upload.

        A key that is also a prefix is not refused (that would cost a LIST per write).
        """
        if not path:
            raise IsADirectoryStorageError(f"Cannot write to the root of bucket {self.bucket!r}")
        conditions = self._conditions(path, mode, etag)
        extra: dict[str, Any] = {"ContentType": _content_type(path), **conditions}
        if metadata:
            extra["Metadata"] = dict(metadata)
        create = mode is WriteMode.CREATE
        if (
            isinstance(data, (bytes, bytearray, memoryview))
            and len(data) < self.multipart_threshold
        ):
            head = bytes(data)
        else:
            stream = as_stream(data)
            head = _read_full(stream, self.multipart_threshold)
            if len(head) >= self.multipart_threshold:
                return self._multipart(path, head, stream, extra, create)
        with self._mapped(path, create):
            response = self._put(path, head, **extra)
        return self._written(path, len(head), response)

    def _conditions(self, path: str, mode: WriteMode, etag: str | None) -> dict[str, str]:
        if mode is WriteMode.OVERWRITE:
            return {}
        if not self.conditional_write_supported():
            raise UnsupportedOperation(
                f"The S3 server of bucket {self.bucket!r} ignores conditional writes"
            )
        if mode is WriteMode.CREATE:
            return {"IfNoneMatch": "*"}
        if not etag:
            raise PreconditionFailedError(f"IF_MATCH write of {path!r} without an etag")
        return {"IfMatch": f'"{etag.strip(chr(34))}"'}

    def _written(self, path: str, size: int, response: dict[str, Any]) -> Info:
        etag = _unquote(response.get("ETag"))
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return Info(
            path,
            size=size,
            mtime=_timestamp(headers.get("last-modified")),
            etag=etag,
            md5=_md5_of(etag),
            version_id=response.get("VersionId"),
        )

    def _multipart(
        self, path: str, head: bytes, stream: BinaryIO, extra: dict[str, Any], create: bool
    ) -> Info:
        """Create, upload parts, complete (conditions on the complete); abort on any failure."""
        conditions = {k: extra.pop(k) for k in ("IfNoneMatch", "IfMatch") if k in extra}
        with self._mapped(path):
            upload = self._client.create_multipart_upload(Bucket=self.bucket, Key=path, **extra)
        upload_id = upload["UploadId"]
        try:
            done, size = [], 0
            part_size = max(self.multipart_threshold, _MIN_PART)
            for number, body in enumerate(_parts(head, stream, part_size), 1):
                with self._mapped(path):
                    part = self._client.upload_part(
                        Bucket=self.bucket,
                        Key=path,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=body,
                    )
                done.append({"ETag": part["ETag"], "PartNumber": number})
                size += len(body)
            with self._mapped(path, create):
                response = self._client.complete_multipart_upload(
                    Bucket=self.bucket, Key=path, UploadId=upload_id,
                    MultipartUpload={"Parts": done}, **conditions,
                )  # fmt: skip
        except BaseException:
            try:
                self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=path, UploadId=upload_id
                )
            except (ClientError, BotoCoreError):
                pass
            raise
        return self._written(path, size, response)

    def delete(self, path: str, *, recursive: bool = False) -> None:
        """A file: HEAD + DELETE. A prefix: LIST, then DeleteObjects per 1000 keys."""
        if path:
            try:
                self._head(path)
            except StorageNotFoundError:
                pass
            else:
                with self._mapped(path):
                    self._client.delete_object(Bucket=self.bucket, Key=path)
                return
        prefix = path + "/" if path else ""
        pages = self._pages(path, Prefix=prefix, **({} if recursive else {"MaxKeys": 2}))
        first = [obj["Key"] for obj in next(pages).get("Contents") or ()]
        if not first:
            if path:
                raise StorageNotFoundError(f"No such file or directory: {path!r}")
            return
        if not recursive and first != [prefix]:
            raise DirectoryNotEmptyError(f"Directory not empty: {path!r}")
        rest = (obj["Key"] for page in pages for obj in page.get("Contents") or ())
        self._delete_keys(path, itertools.chain(first, rest))

    def _delete_keys(self, path: str, keys: Iterable[str]) -> None:
        iterator = iter(keys)
        while batch := list(itertools.islice(iterator, _DELETE_BATCH)):
            with self._mapped(path):
                response = self._client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
            for error in response.get("Errors") or ():
                raise _error_for(
                    str(error.get("Code")), 0, error.get("Key", path), self.bucket, False
                )

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: directories are implied by the keys below them (no request)."""

    # ---------------------------------------------------------------- faster derived ops
    def copy(self, src: str, dst: str) -> Info:
        """HEAD (for the size and the 5 GiB limit) + one server-side CopyObject."""
        info = self.info(src)
        if info.is_dir:
            raise IsADirectoryStorageError(f"Is a directory: {src!r}")
        return self._copy_key(src, dst, info.size)

    def _copy_key(self, src: str, dst: str, size: int) -> Info:
        if size > _MAX_COPY:  # multipart copy (UploadPartCopy) not implemented: stream instead
            with self.open_read(src) as stream:
                return self.write(dst, stream, metadata=self.get_metadata(src))
        source = {"Bucket": self.bucket, "Key": src}
        with self._mapped(src):
            response = self._client.copy_object(Bucket=self.bucket, Key=dst, CopySource=source)
        result = response.get("CopyObjectResult", {})
        etag = _unquote(result.get("ETag"))
        mtime = _timestamp(result.get("LastModified"))
        return Info(dst, False, size, mtime, etag, _md5_of(etag), None, response.get("VersionId"))

    def move(self, src: str, dst: str) -> None:
        """Copy + delete (S3 has no rename): a file costs HEAD + COPY + DELETE."""
        info = self.info(src)
        if not info.is_dir:
            self._copy_key(src, dst, info.size)
            with self._mapped(src):
                self._client.delete_object(Bucket=self.bucket, Key=src)
            return
        for entry in list(self.walk(src)):
            self._copy_key(entry.path, dst + entry.path[len(src) :], entry.size)
        self.delete(src, recursive=True)

    def set_metadata(self, path: str, metadata: dict[str, str]) -> None:
        """One CopyObject onto itself with ``MetadataDirective='REPLACE'``.

        The content type is re-derived from the name; other system headers (Cache-Control,
        Content-Encoding) are reset, and objects above 5 GiB are refused by S3.
        """
        with self._mapped(path):
            self._client.copy_object(
                Bucket=self.bucket,
                Key=path,
                CopySource={"Bucket": self.bucket, "Key": path},
                Metadata=dict(metadata),
                MetadataDirective="REPLACE",
                ContentType=_content_type(path),
            )

    def url(self, path: str, expires_in: int = 3600) -> str | None:
        """A presigned GET URL (no request; unsigned for ``anon`` backends)."""
        with self._mapped(path):
            url: str = self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": path}, ExpiresIn=expires_in
            )
        return url

    def close(self) -> None:
        self._client.close()


def from_config(config: dict[str, Any]) -> Backend:
    """Build an S3 mount from its checked config (see the ``s3`` entry of the registry)."""
    from storied.backends.wrappers import Prefixed

    prefix = paths.normalize(config.get("base_path") or "")
    backend: Backend = S3Backend(
        config["bucket"],
        region=config.get("region"),
        key=config.get("key"),
        secret=config.get("secret"),
        token=config.get("token"),
        endpoint_url=config.get("endpoint_url"),
        anon=bool(config.get("anon")),
        client_kwargs=config.get("client_kwargs"),
        multipart_threshold=int(config.get("multipart_threshold") or DEFAULT_MULTIPART_THRESHOLD),
        probe_prefix=prefix,
    )
    return Prefixed(backend, prefix) if prefix else backend
