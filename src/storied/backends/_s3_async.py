"""The async twin of one :class:`~storied.backends.s3.S3Backend`, through aiobotocore.

Used by :mod:`storied.aio` for the calls it runs natively on the event loop (see
:mod:`storied._aio_native`). It talks to the same bucket with the same endpoint, region,
credentials (those the sync client resolved, frozen when the async client is made) and
botocore configuration (timeouts, botocore retries, signature version, addressing style) as the
sync adapter, sends the same requests for the same operation (``info``: one HEAD, plus one
LIST on 404; ``read``: one GET; ``write``: one PUT; ``list``: ListObjectsV2 with a delimiter)
and maps every error through the sync adapter's one mapping site
(:func:`~storied.backends._s3_support.mapped`), so callers get the same storied errors.

One aiobotocore client per event loop (an aiohttp session belongs to its loop). It is closed
when its loop shuts its async generators down (``asyncio.run`` does), or by :func:`aclose`.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from storied.backends._logging import backend_logger
from storied.backends._s3_support import (
    content_type,
    listed_info,
    mapped,
    md5_of,
    timestamp,
    unquote,
    usable,
)
from storied.backends.s3 import S3Backend
from storied.errors import (
    DirectoryNotEmptyError,
    IsADirectoryStorageError,
    NotADirectoryStorageError,
    StorageError,
    StorageNotFoundError,
    TransientStorageError,
)
from storied.info import Info

__all__ = ["AsyncS3", "AsyncS3Reader", "aclose_all", "async_s3"]

_LOG = backend_logger("s3")
_TWINS: weakref.WeakKeyDictionary[S3Backend, AsyncS3] = weakref.WeakKeyDictionary()
_SESSION: Any = None
_LOCK = threading.Lock()


def _session() -> Any:
    global _SESSION
    if _SESSION is None:
        # imported by name: aiobotocore ships no type information
        _SESSION = importlib.import_module("aiobotocore.session").get_session()
    return _SESSION


def _made(make: Any) -> tuple[Any, Any]:
    """Enter a client context on a throwaway loop of the calling (worker) thread: making a
    client loads botocore's JSON models (0.3 s, seconds on a loaded machine), which must not
    run on the event loop. The client holds nothing of that loop: aiobotocore opens its
    aiohttp session at the first request, on the loop that sends it."""
    with _LOCK:  # one botocore session: clients are made one at a time
        factory = make()

        async def enter() -> Any:
            return await factory.__aenter__()

        return factory, asyncio.run(enter())


def async_s3(backend: S3Backend, pool: int = 64) -> AsyncS3:
    """The async twin of ``backend`` (one per sync adapter)."""
    found = _TWINS.get(backend)
    if found is None:
        found = _TWINS[backend] = AsyncS3(backend, pool)
    found._pool = max(found._pool, pool)  # for clients made from now on
    return found


async def aclose_all() -> None:
    """Close every async client made on the running loop."""
    for twin in list(_TWINS.values()):
        await twin.aclose()


@contextmanager
def _mapped(path: str, bucket: str, create: bool = False) -> Iterator[None]:
    """The sync adapter's mapping, plus aiohttp's own connection errors (transient)."""
    import aiohttp

    try:
        with mapped(path, bucket, create):
            yield
    except StorageError:
        raise
    except aiohttp.ClientError as exc:
        raise TransientStorageError(f"S3 connection problem on {path!r}: {exc}") from exc


async def _holder(make: Any) -> AsyncIterator[Any]:
    """An async generator owning one client (made in a worker thread by ``make``): its
    ``finally`` (run by the loop's ``shutdown_asyncgens``, or :meth:`AsyncS3.aclose`) closes
    it."""
    factory, client = await asyncio.to_thread(_made, make)
    try:
        yield client  # the generator waits here until it is closed
    finally:
        await factory.__aexit__(None, None, None)


class AsyncS3:
    """Async requests on one bucket, mirroring :class:`S3Backend` (same requests, errors)."""

    def __init__(self, sync: S3Backend, pool: int = 64) -> None:
        self.sync, self.bucket, self._pool = sync, sync.bucket, pool
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[asyncio.Future[Any], Any]
        ] = weakref.WeakKeyDictionary()

    # ---------------------------------------------------------------- the client
    def _factory(self) -> Any:
        aio_config = importlib.import_module("aiobotocore.config").AioConfig
        client = self.sync._client
        options = dict(client.meta.config._user_provided_options)
        options.pop("user_agent", None)
        options["max_pool_connections"] = max(self._pool, options.get("max_pool_connections") or 0)
        kwargs: dict[str, Any] = {"region_name": client.meta.region_name,
                                  "config": aio_config(**options)}
        if self.sync.endpoint_url:
            kwargs["endpoint_url"] = client.meta.endpoint_url
        credentials = client._request_signer._credentials
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            kwargs.update(aws_access_key_id=frozen.access_key,
                          aws_secret_access_key=frozen.secret_key,
                          aws_session_token=frozen.token)
        return _session().create_client("s3", **kwargs)

    async def client(self) -> Any:
        """This loop's client (made on first use; concurrent first calls share one)."""
        loop = asyncio.get_running_loop()
        found = self._clients.get(loop)
        if found is None:
            holder = _holder(self._factory)
            future: asyncio.Future[Any] = asyncio.ensure_future(holder.__anext__())
            self._clients[loop] = found = (future, holder)
        try:
            return await asyncio.shield(found[0])
        except BaseException:
            if found[0].done() and self._clients.get(loop) is found:
                del self._clients[loop]  # a failed creation is asked again next time
            raise

    async def aclose(self) -> None:
        """Close the running loop's client, if one was made."""
        found = self._clients.pop(asyncio.get_running_loop(), None)
        if found is not None:
            if not found[0].done():
                await asyncio.gather(found[0], return_exceptions=True)
            await found[1].aclose()

    async def _call(self, op: str, path: str, create: bool = False, **params: Any) -> Any:
        client = await self.client()
        _LOG.debug("async %s %r", op, path)
        with _mapped(path, self.bucket, create):
            return await getattr(client, op)(Bucket=self.bucket, **params)

    # ---------------------------------------------------------------- reads
    async def _pages(self, path: str, **params: Any) -> AsyncIterator[dict[str, Any]]:
        while True:
            page = await self._call("list_objects_v2", path, **params)
            yield page
            if not page.get("IsTruncated"):
                return
            params["ContinuationToken"] = page["NextContinuationToken"]

    async def _is_prefix(self, path: str) -> bool:
        prefix = path + "/" if path else ""
        page = await self._call("list_objects_v2", path, Prefix=prefix, MaxKeys=1)
        return bool(page.get("KeyCount") or page.get("Contents"))

    async def info(self, path: str) -> Info:
        """One HEAD; on 404 one LIST to recognise an implied directory."""
        if not path:
            await self._is_prefix("")
            return Info("", is_dir=True)
        try:
            head = await self._call("head_object", path, Key=path)
        except StorageNotFoundError:
            if await self._is_prefix(path):
                return Info(path, is_dir=True)
            raise
        etag = unquote(head.get("ETag"))
        md5 = None if head.get("ServerSideEncryption") == "aws:kms" else md5_of(etag)
        size, mtime = int(head.get("ContentLength", 0)), timestamp(head.get("LastModified"))
        metadata = dict(head.get("Metadata") or {})
        return Info(path, False, size, mtime, etag, md5, metadata, head.get("VersionId"),
                    storage_class=head.get("StorageClass") or "STANDARD")

    async def exists(self, path: str) -> bool:
        try:
            await self.info(path)
        except StorageNotFoundError:
            return False
        return True

    async def list(self, path: str) -> list[Info]:
        """ListObjectsV2 with ``Delimiter='/'``: one request per 1000 children."""
        prefix = path + "/" if path else ""
        found, entries = False, []
        async for page in self._pages(path, Prefix=prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes") or ():
                found = True
                name = common["Prefix"][:-1]
                if usable(name):
                    entries.append(Info(name, is_dir=True))
            for obj in page.get("Contents") or ():
                found = True
                if usable(obj["Key"]):
                    entries.append(self._listed(obj))
        if not found and path and not (await self.info(path)).is_dir:
            raise NotADirectoryStorageError(f"Not a directory: {path!r} in bucket {self.bucket!r}")
        return entries

    def _listed(self, obj: dict[str, Any]) -> Info:
        """A listing entry, as the sync adapter makes it (no MD5 where ETags are not MD5s)."""
        listed = getattr(self.sync, "_listed", None)
        return listed(obj) if callable(listed) else listed_info(obj)

    async def open_read(self, path: str) -> AsyncS3Reader:
        """One GET, its body streamed (see :class:`AsyncS3Reader`)."""
        if not path:
            raise IsADirectoryStorageError(f"Is a directory: the root of bucket {self.bucket!r}")
        reader = AsyncS3Reader(self, path)
        await reader._get(0)
        return reader

    async def read_bytes(self, path: str) -> bytes:
        reader = await self.open_read(path)
        try:
            return await reader.read()
        finally:
            await reader.close()

    # ---------------------------------------------------------------- writes
    async def write(self, path: str, data: bytes, extra: dict[str, Any]) -> Info:
        """One PUT of ``data`` (the caller keeps it below the multipart threshold) with the
        sync adapter's arguments ``extra`` (content type, metadata, SSE, storage class)."""
        if not path:
            raise IsADirectoryStorageError(f"Cannot write to the root of bucket {self.bucket!r}")
        response = await self._call("put_object", path, Key=path, Body=data, **extra)
        written = getattr(self.sync, "_written", None)
        if callable(written):  # the sync adapter's own reading of the answer
            found: Info = written(path, len(data), response)
            return found
        etag = unquote(response.get("ETag"))
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        mtime = timestamp(headers.get("last-modified"))
        return Info(path, False, len(data), mtime, etag, md5_of(etag), None,
                    response.get("VersionId"))

    def put_extra(self, path: str, metadata: dict[str, str] | None) -> dict[str, Any]:
        """What the sync adapter's ``write`` sends besides the body and conditions: the
        content type, and its SSE and storage-class arguments for a new object."""
        extra: dict[str, Any] = {"ContentType": content_type(path)}
        new_object = getattr(self.sync, "_new_object", None)
        if callable(new_object):
            extra.update(new_object(path))
        if metadata:
            extra["Metadata"] = dict(metadata)
        return extra

    @property
    def keeps_write_options(self) -> bool:
        """Whether :meth:`put_extra` sends what the sync adapter does for SSE and classes."""
        return callable(getattr(self.sync, "_new_object", None))

    async def delete(self, path: str) -> None:
        """A file: HEAD + DELETE; an empty directory (only its marker): LIST + DELETE."""
        if path:
            try:
                await self._call("head_object", path, Key=path)
            except StorageNotFoundError:
                pass
            else:
                await self._call("delete_object", path, Key=path)
                return
        prefix = path + "/" if path else ""
        page = await self._call("list_objects_v2", path, Prefix=prefix, MaxKeys=2)
        first = [obj["Key"] for obj in page.get("Contents") or ()]
        if not first:
            if path:
                raise StorageNotFoundError(f"No such file or directory: {path!r}")
            return
        if first != [prefix]:
            raise DirectoryNotEmptyError(f"Directory not empty: {path!r}")
        await self._call("delete_object", path, Key=prefix)


class AsyncS3Reader:
    """An async, seekable read stream of one object, pinned to the version first read: a
    seek sends a ranged GET with ``If-Match`` on that ETag (and its ``VersionId``), so a
    changed object is an error (PreconditionFailedError), never two versions spliced."""

    def __init__(self, s3: AsyncS3, path: str) -> None:
        self._s3, self.path = s3, path
        self._body: Any = None
        self._pos, self._size = 0, 0
        self._etag: str | None = None
        self._version: str | None = None
        self._buffer = b""
        self.closed = False

    async def _get(self, start: int) -> None:
        params: dict[str, Any] = {"Key": self.path}
        if start:
            params["Range"] = f"bytes={start}-"
        if self._etag:
            params["IfMatch"] = f'"{self._etag}"'
        if self._version:
            params["VersionId"] = self._version
        response = await self._s3._call("get_object", self.path, **params)
        if self._etag is None:
            self._etag = unquote(response.get("ETag"))
            self._version = response.get("VersionId")
            self._size = int(response.get("ContentLength", 0))
        self._body, self._pos, self._buffer = response["Body"], start, b""

    def rewind(self, head: bytes) -> None:
        """Give back ``head``, just read from the start: the next reads start with it."""
        self._buffer, self._pos = head + self._buffer, self._pos - len(head)

    async def _chunk(self, size: int) -> bytes:
        if self._buffer:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
            return data
        if self._body is None:
            return b""
        with _mapped(self.path, self._s3.bucket):
            return bytes(await self._body.read(size))

    async def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all the rest when negative); b"" at the end."""
        self._check()
        if size is None or size < 0:
            parts = [self._buffer]
            self._buffer = b""
            if self._body is not None:
                with _mapped(self.path, self._s3.bucket):
                    parts.append(bytes(await self._body.read()))
            data = b"".join(parts)
        else:
            parts, wanted = [], size
            while wanted > 0:
                chunk = await self._chunk(wanted)
                if not chunk:
                    break
                parts.append(chunk)
                wanted -= len(chunk)
            data = b"".join(parts)
        self._pos += len(data)
        return data

    async def readline(self) -> bytes:
        """Up to and including the next ``\\n`` (or the rest)."""
        self._check()
        parts: list[bytes] = []
        while True:
            chunk = await self._chunk(64 * 1024)
            if not chunk:
                break
            cut = chunk.find(b"\n")
            if cut >= 0:
                parts.append(chunk[: cut + 1])
                self._buffer = chunk[cut + 1:] + self._buffer
                break
            parts.append(chunk)
        data = b"".join(parts)
        self._pos += len(data)
        return data

    async def seek(self, offset: int, whence: int = 0) -> int:
        self._check()
        target = {0: offset, 1: self._pos + offset, 2: self._size + offset}.get(whence)
        if target is None or target < 0:
            raise ValueError(f"Invalid seek ({offset}, {whence})")
        if target != self._pos:
            self._release()
            if target < self._size:
                await self._get(target)
            else:
                self._pos = target
        return self._pos

    async def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def _check(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def _release(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None
        self._buffer = b""

    async def close(self) -> None:
        self._release()
        self.closed = True

    async def __aenter__(self) -> AsyncS3Reader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> AsyncS3Reader:
        return self

    async def __anext__(self) -> bytes:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line
