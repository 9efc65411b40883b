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
- Native versions (bucket versioning): ``list_versions`` one ListObjectVersions per 1000
  entries (exact key only, delete markers included, S3's own order kept); ``open_version`` one
  GET; ``delete_version`` one DELETE; ``walk_versions`` one ListObjectVersions per 1000 entries.

Directories are implied by key prefixes: ``mkdir`` writes nothing, and keys ending in ``/``
(directory markers written by other tools) are never shown as files. Conditional writes use
``If-None-Match: *`` and ``If-Match``; whether the server honours them is probed once per backend
(lazily, on first use), as is bucket versioning. Every botocore error is translated by
:func:`storied.backends._s3_support.error_for`, the one mapping site of this adapter.

Not done (yet): UploadPartCopy, so objects above 5 GiB are copied by streaming them through this
process, and ``set_metadata`` on them is refused by S3.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
from collections.abc import Hashable, Iterator
from typing import Any, BinaryIO

from storied import paths
from storied.backends._location import url_key
from storied.backends._s3_config import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_THRESHOLD,
    backend_options,
    is_reserved,
    make_client,
    write_options,
)
from storied.backends._s3_objectlock import S3ObjectLockMixin
from storied.backends._s3_probe import Probes, delete_if_match, read_tagged
from storied.backends._s3_stream import check_range, open_stream
from storied.backends._s3_support import (
    MIN_PART,
    check_key,
    content_type,
    delete_keys,
    is_marker,
    listed_info,
    mapped,
    md5_of,
    read_full,
    record_entry_order,
    timestamp,
    unquote,
    usable,
)
from storied.backends._s3_upload import upload_multipart
from storied.backends._s3_versions import S3VersionsMixin
from storied.backends.base import Backend, as_stream
from storied.capabilities import Capabilities
from storied.errors import (
    DirectoryNotEmptyError,
    IsADirectoryStorageError,
    NotADirectoryStorageError,
    PreconditionFailedError,
    StorageNotFoundError,
    UnsupportedOperation,
)
from storied.info import Data, Info, WriteMode

__all__ = ["DEFAULT_MULTIPART_THRESHOLD", "S3Backend", "from_config"]

#: Objects at least this large are sent as multipart uploads.
DEFAULT_MULTIPART_THRESHOLD = DEFAULT_THRESHOLD
_MAX_COPY = 5 * 1024 * 1024 * 1024  # CopyObject limit; larger objects are copied by streaming
_CAPS = Capabilities(
    metadata=True, presigned_urls=True, public_urls=True, copy_optimization=True,
    hash_on_metadata=True, range_reads=True, atomic_operations=True,
    empty_dirs=False, atomic_rename=False, append_mode=False,
    seek_support=True,  # seeks turn into bounded ranged GETs pinned to the version read
    storage_classes=True,
)  # fmt: skip


# --------------------------------------------------------------------------- the adapter
class S3Backend(S3VersionsMixin, S3ObjectLockMixin, Backend):
    """One S3 bucket; paths are object keys (``a/b.txt``), directories are key prefixes.

    Constructing the backend sends no request. :attr:`capabilities` probes the server on first
    access (conditional writes: two PUTs and a DELETE under ``.storied/probe/``; versioning: one
    GetBucketVersioning) and caches the answers; a probe that fails transiently is retried,
    then raises :class:`~storied.errors.TransientStorageError` and is asked again next time
    (a failure is never cached as "no").

    Args:
        bucket: The bucket name.
        region: AWS region (default: the profile's or environment's, else ``us-east-1``).
        key: Access key id (None: boto3's usual credential chain).
        secret: Secret access key.
        token: Session token.
        endpoint_url: An S3-compatible server's URL.
        anon: Send unsigned requests (public buckets).
        client_kwargs: Extra ``boto3 client()`` arguments; a ``config`` (botocore ``Config`` or
            dict) is merged over storied's defaults.
        multipart_threshold: Objects of this size or more are sent as multipart uploads.
        multipart_chunksize: Bytes per part (at least 5 MiB); None: ``max(threshold, 5 MiB)``
            (8 MiB by default, as boto3's).
        max_concurrency: Parts sent at once, and GETs of ``stream_download`` in flight.
        profile: A profile of the shared AWS config files (boto3 ``Session(profile_name=)``).
        sse: ``'AES256'`` or ``'aws:kms'``: server-side encryption asked for every new object
            (PUT, CreateMultipartUpload, CopyObject); ``sse_kms_key_id`` names the KMS key.
        storage_class: The storage class of new objects (storied's own, under ``.storied/``,
            stay STANDARD so that the history stays readable).
        connect_timeout / read_timeout: Seconds (botocore ``Config``): a hung endpoint fails
            with StorageTimeoutError in seconds.
        probe_prefix: Key prefix under which the conditional-write probe writes (the mount's
            base path, so that credentials limited to that prefix can probe).
        probe_attempts: Tries of each probe on transient failures (the mount's ``retries``);
            a probe that still fails raises TransientStorageError and caches nothing.
        probe_delay: Seconds before the first probe retry, doubled each time (at most 2 s).
    """

    endpoint_url: str | None
    multipart_threshold: int
    multipart_chunksize: int | None
    max_concurrency: int

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
        multipart_chunksize: int | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        profile: str | None = None,
        sse: str | None = None,
        sse_kms_key_id: str | None = None,
        storage_class: str | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        probe_prefix: str = "",
        probe_attempts: int = 4,
        probe_delay: float = 0.1,
    ) -> None:
        self.bucket = bucket
        self.endpoint_url = endpoint_url or None
        self.multipart_threshold = max(1, int(multipart_threshold))
        self.multipart_chunksize = None if multipart_chunksize is None else max(
            MIN_PART, int(multipart_chunksize))  # fmt: skip
        self.max_concurrency = max(1, int(max_concurrency))
        self._sse, self._class = write_options(sse, sse_kms_key_id, storage_class)
        self._trust_md5 = sse != "aws:kms"  # SSE-KMS ETags are not MD5s
        self.anon = anon
        creds = dict(region=region, key=key, secret=secret, token=token, endpoint_url=endpoint_url)
        self._client = make_client(
            creds, anon, client_kwargs, profile=profile, connect_timeout=connect_timeout,
            read_timeout=read_timeout, max_concurrency=self.max_concurrency,
        )  # fmt: skip
        record_entry_order(self._client)
        probe_key = paths.join(paths.normalize(probe_prefix), paths.RESERVED, "probe")
        self._probes = Probes(self._client, bucket, probe_key, probe_attempts, probe_delay)

    # ---------------------------------------------------------------- capabilities
    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        """The static flags plus the probed ``conditional_write`` and ``native_versions``."""
        return _CAPS.replace(
            conditional_write=self.conditional_write_supported(),
            native_versions=self.versioning_enabled(),
        )

    @property
    def static_capabilities(self) -> Capabilities:
        """The flags that need no probe (conditional writes and versioning read as False)."""
        return _CAPS

    def conditional_write_supported(self) -> bool:
        """Whether the server refuses a second ``If-None-Match: *`` PUT (probed once; a
        transient failure is retried, then raised and not cached: see :class:`Probes`)."""
        return False if self.anon else self._probes.conditional_write()

    def has_native_versions(self) -> bool:
        return self.versioning_enabled()

    def versioning_enabled(self) -> bool:
        """Whether GetBucketVersioning says ``Enabled`` (see :meth:`versioning_status`)."""
        return self.versioning_status() == "Enabled"

    def versioning_status(self) -> str:
        """The bucket's versioning ``Status``, asked once: ``"Enabled"``, ``"Suspended"``
        (versioning was on once: native versions may exist) or ``""`` (see
        :meth:`Probes.versioning_status`, which raises TransientStorageError, never cached)."""
        return self._probes.versioning_status()

    def storage_key(self) -> Hashable:
        """``("s3", normalised endpoint or None for AWS, bucket)``: two adapters on one bucket
        (two mounts, other credentials, the endpoint spelt two ways) reach the same objects at
        the same keys (see :mod:`storied.backends._location`)."""
        return ("s3", url_key(self.endpoint_url, aws_is_global=True), self.bucket)

    # ---------------------------------------------------------------- helpers
    def _mapped(self, path: str, create: bool = False) -> Any:
        return mapped(path, self.bucket, create)

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
        etag = unquote(head.get("ETag"))
        md5 = None if head.get("ServerSideEncryption") == "aws:kms" else md5_of(etag)
        size, mtime = int(head.get("ContentLength", 0)), timestamp(head.get("LastModified"))
        metadata = dict(head.get("Metadata") or {})
        return Info(path, False, size, mtime, etag, md5, metadata, head.get("VersionId"),
                    storage_class=head.get("StorageClass") or "STANDARD")  # fmt: skip

    def list(self, path: str) -> Iterator[Info]:
        """ListObjectsV2 with ``Delimiter='/'``: one request per 1000 children."""
        prefix = path + "/" if path else ""
        found = False
        for page in self._pages(path, Prefix=prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes") or ():
                found = True
                name = common["Prefix"][:-1]
                if usable(name):
                    yield Info(name, is_dir=True)
            for obj in page.get("Contents") or ():
                found = True
                if usable(obj["Key"]):
                    yield self._listed(obj)
        if not found and path:
            self._missing_dir(path)

    def walk(self, path: str) -> Iterator[Info]:
        """One flat ListObjectsV2 (no delimiter) per 1000 keys below ``path``; nothing below
        ``path`` (missing, or a file) yields nothing, with no further request."""
        prefix = path + "/" if path else ""
        for page in self._pages(path, Prefix=prefix):
            for obj in page.get("Contents") or ():
                if usable(obj["Key"]):
                    yield self._listed(obj)

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """One GET (with ``Range`` for a slice). A missing key is StorageNotFoundError with no
        further request (a "directory" prefix is not a readable object either)."""
        check_range(start, end)
        if not path:
            raise IsADirectoryStorageError(f"Is a directory: the root of bucket {self.bucket!r}")
        if end is not None and end <= start:
            if self.info(path).is_dir:
                raise IsADirectoryStorageError(f"Is a directory: {path!r}")
            return io.BytesIO(b"")
        return self._get(path, start, end)

    def list_names(self, path: str, start_after: str | None = None) -> Iterator[tuple[str, bool]]:
        """ListObjectsV2 with ``Delimiter='/'`` (and ``StartAfter``): names only."""
        prefix = path + "/" if path else ""
        params: dict[str, Any] = {"Prefix": prefix, "Delimiter": "/"}
        if start_after:
            params["StartAfter"] = prefix + start_after
        found = False
        for page in self._pages(path, **params):
            for common in page.get("CommonPrefixes") or ():
                found = True
                yield common["Prefix"][len(prefix) : -1], True
            for obj in page.get("Contents") or ():
                found = True
                if obj["Key"] != prefix:
                    yield obj["Key"][len(prefix) :], False
        if not found and path and not start_after:
            self._missing_dir(path)

    def _get(
        self, path: str, start: int, end: int | None, version_id: str | None = None
    ) -> BinaryIO:
        """One GET of bytes ``[start, end)`` as a seekable stream (b"" past the end); later
        reads after a seek are bounded ranged GETs pinned to that version (see ``_s3_stream``)."""
        return open_stream(
            self._client, self.bucket, path, start, end, version_id, self.max_concurrency
        )

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
        check_key(path)  # before any data is read or sent
        conditions = self._conditions(path, mode, etag)
        extra: dict[str, Any] = {"ContentType": content_type(path), **conditions,
                                 **self._new_object(path)}  # fmt: skip
        if metadata:
            extra["Metadata"] = dict(metadata)
        create = mode is WriteMode.CREATE
        limit = self.multipart_threshold
        if isinstance(data, (bytes, bytearray, memoryview)) and len(data) < limit:
            head = bytes(data)
        else:
            stream = as_stream(data)
            head = read_full(stream, limit)
            if len(head) >= limit:
                return self._multipart(path, head, stream, extra, create)
        with self._mapped(path, create):
            response = self._client.put_object(Bucket=self.bucket, Key=path, Body=head, **extra)
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

    def _listed(self, obj: dict[str, Any]) -> Info:
        """A listing entry; without the MD5 on an SSE-KMS mount (its ETags are not MD5s)."""
        info = listed_info(obj)
        return info if self._trust_md5 else dataclasses.replace(info, md5=None)

    def _new_object(self, key: str) -> dict[str, str]:
        """The SSE and storage-class arguments of a new object at ``key``."""
        return {**self._sse, **({} if is_reserved(key) else self._class)}

    def _written(self, path: str, size: int, response: dict[str, Any]) -> Info:
        etag = unquote(response.get("ETag"))
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        mtime = timestamp(headers.get("last-modified"))  # moto sends it; AWS may not
        md5 = md5_of(etag) if self._trust_md5 else None
        return Info(path, False, size, mtime, etag, md5, None, response.get("VersionId"))

    def _multipart(
        self, path: str, head: bytes, stream: BinaryIO, extra: dict[str, Any], create: bool
    ) -> Info:
        """A multipart upload, ``max_concurrency`` parts at once (conditions on the complete
        request); aborted on any failure."""
        done = upload_multipart(
            self._client, self.bucket, path, head, stream, extra, create=create,
            part_size=self.multipart_chunksize or max(self.multipart_threshold, MIN_PART),
            workers=self.max_concurrency,
        )  # fmt: skip
        return self._written(path, done["size"], done["response"])

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
        self._delete_prefix(path, recursive)

    def delete_if_match(self, path: str, etag: str) -> None:
        """One DELETE with ``If-Match``; refused when the server was probed to ignore it."""
        if self.anon or not self._probes.conditional_delete():
            raise UnsupportedOperation(
                f"The S3 server of bucket {self.bucket!r} ignores conditional deletes"
            )
        delete_if_match(self._client, self.bucket, path, etag)

    def read_tagged(self, path: str) -> tuple[bytes, str | None]:
        """The content of ``path`` and its ETag from one GET (locks use it)."""
        return read_tagged(self._client, self.bucket, path)

    def _delete_prefix(self, path: str, recursive: bool) -> None:
        """One LIST per 1000 keys under ``path/``, then DeleteObjects per 1000 keys.

        A recursive delete removes exactly the keys :meth:`walk` yields plus the directory
        marker objects (``path/``, ``path/sub/``) of addressable directories; keys no path can
        name (``a//b``, ``a/./b``, ``a/x/../y``) are never deleted, since nothing listed them.
        """
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
        keys = (k for k in itertools.chain(first, rest) if usable(k) or is_marker(k, prefix))
        delete_keys(self._client, self.bucket, path, keys)

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: directories are implied by the keys below them (no request)."""

    # ---------------------------------------------------------------- faster derived ops
    def copy(self, src: str, dst: str) -> Info:
        """HEAD (for the size and the 5 GiB limit) + one server-side CopyObject."""
        check_key(dst)
        info = self.info(src)
        if info.is_dir:
            raise IsADirectoryStorageError(f"Is a directory: {src!r}")
        return self._copy_key(src, dst, info.size)

    def _copy_key(self, src: str, dst: str, size: int) -> Info:
        check_key(dst)
        if size > _MAX_COPY:  # multipart copy (UploadPartCopy) not implemented: stream instead
            with self.open_read(src) as stream:
                return self.write(dst, stream, metadata=self.get_metadata(src))
        source = {"Bucket": self.bucket, "Key": src}
        with self._mapped(src):
            response = self._client.copy_object(
                Bucket=self.bucket, Key=dst, CopySource=source, **self._new_object(dst)
            )
        result = response.get("CopyObjectResult", {})
        etag = unquote(result.get("ETag"))
        mtime = timestamp(result.get("LastModified"))
        md5 = md5_of(etag) if self._trust_md5 else None
        return Info(dst, False, size, mtime, etag, md5, None, response.get("VersionId"))

    def move(self, src: str, dst: str) -> None:
        """Copy + delete (S3 has no rename).

        A file costs HEAD + COPY + DELETE; a directory HEAD + LIST (info), one LIST per 1000
        keys, one COPY per file and one DeleteObjects per 1000 keys.
        """
        info = self.info(src)
        if not info.is_dir:
            self._copy_key(src, dst, info.size)
            with self._mapped(src):
                self._client.delete_object(Bucket=self.bucket, Key=src)
            return
        prefix = src + "/" if src else ""
        entries, markers = [], []
        for page in self._pages(src, Prefix=prefix):
            for obj in page.get("Contents") or ():
                if usable(obj["Key"]):
                    entries.append(listed_info(obj))
                elif is_marker(obj["Key"], prefix):
                    markers.append(obj["Key"])
        for entry in entries:
            self._copy_key(entry.path, dst + entry.path[len(src) :], entry.size)
        # Only what was copied (and directory markers): keys added meanwhile, and keys no path
        # can name (``a//b``, never listed, never copied), are not lost.
        keys = [*(e.path for e in entries), *markers]
        delete_keys(self._client, self.bucket, src, keys)

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
                ContentType=content_type(path),
                **self._sse,
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
    """Build an S3 mount from its checked config (see the ``s3`` entry of the registry): every
    S3 key is used (see :func:`~._s3_config.backend_options`)."""
    from storied.backends.wrappers import Prefixed

    options = backend_options(config)
    backend: Backend = S3Backend(config["bucket"], **options)
    prefix = options["probe_prefix"]
    return Prefixed(backend, prefix) if prefix else backend
