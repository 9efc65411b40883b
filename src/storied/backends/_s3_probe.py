"""The S3 adapter's probes (conditional writes, conditional deletes, bucket versioning) and its
conditional requests that depend on them (private).

Each is asked once per adapter and its answer cached. A transient failure (503, throttling, a
timeout) is retried with exponential backoff, then raised as TransientStorageError and *not*
cached: a versioned bucket must never be taken for an unversioned one because GetBucketVersioning
once answered 503 (the portable engine would then write its history into it).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from storied.backends._s3_support import mapped, unquote
from storied.errors import (
    PreconditionFailedError,
    StorageAlreadyExistsError,
    StorageError,
    StoragePermissionError,
    TransientStorageError,
    UnsupportedOperation,
)

__all__ = [
    "Probes", "delete_if_match", "discard", "probe_conditional", "probe_delete", "read_tagged",
]

_T = TypeVar("_T")
_MAX_DELAY = 2.0


class Probes:
    """The cached probe answers of one bucket.

    Args:
        client: The adapter's boto3 client.
        bucket: The bucket.
        probe_key: Key prefix under which the conditional-write probe writes and removes one
            object (``<mount base>/.storied/probe``).
        attempts: Tries per probe on transient failures (at least 1).
        delay: Seconds before the first retry, doubled each time (at most 2 s).
    """

    def __init__(
        self, client: Any, bucket: str, probe_key: str, attempts: int = 4, delay: float = 0.1
    ) -> None:
        self._client, self._bucket, self._probe_key = client, bucket, probe_key
        self.attempts, self.delay = max(1, int(attempts)), delay
        self._lock = threading.Lock()
        self._conditional: bool | None = None
        self._conditional_delete: bool | None = None
        self._versioning: str | None = None

    def conditional_write(self) -> bool:
        """Whether the server refuses a second ``If-None-Match: *`` PUT.

        Another refusal than a transient one (access denied...) is cached as False.

        Raises:
            TransientStorageError: Every attempt failed transiently (nothing cached).
        """
        with self._lock:
            if self._conditional is None:
                key = f"{self._probe_key}/{uuid.uuid4().hex}"
                try:
                    self._conditional = self._retried(
                        lambda: probe_conditional(self._client, self._bucket, key)
                    )
                except TransientStorageError:
                    raise
                except StorageError:
                    self._conditional = False
            return self._conditional

    def conditional_delete(self) -> bool:
        """Whether the server refuses a ``DELETE`` with a wrong ``If-Match`` (some
        S3-compatible servers ignore the header and delete). Cached like
        :meth:`conditional_write`.

        Raises:
            TransientStorageError: Every attempt failed transiently (nothing cached).
        """
        with self._lock:
            if self._conditional_delete is None:
                key = f"{self._probe_key}/{uuid.uuid4().hex}"
                try:
                    self._conditional_delete = self._retried(
                        lambda: probe_delete(self._client, self._bucket, key)
                    )
                except TransientStorageError:
                    raise
                except StorageError:
                    self._conditional_delete = False
            return self._conditional_delete

    def versioning_status(self) -> str:
        """GetBucketVersioning's ``Status``: ``"Enabled"``, ``"Suspended"`` or ``""`` (never
        enabled; also a server that does not implement it, or credentials that may not ask:
        such a refusal is cached as ``""``).

        Raises:
            TransientStorageError: Every attempt failed transiently (nothing cached).
            StorageNotFoundError: The bucket does not exist (nothing cached).
        """
        with self._lock:
            if self._versioning is None:
                try:
                    answer = self._retried(self._get_versioning)
                except (StoragePermissionError, UnsupportedOperation):
                    answer = {}
                self._versioning = str(answer.get("Status") or "")
            return self._versioning

    def _get_versioning(self) -> dict[str, Any]:
        with mapped("", self._bucket):
            answer: dict[str, Any] = self._client.get_bucket_versioning(Bucket=self._bucket)
        return answer

    def _retried(self, call: Callable[[], _T]) -> _T:
        """``call()``, retried on TransientStorageError with exponential backoff."""
        for attempt in range(self.attempts):
            try:
                return call()
            except TransientStorageError:
                if attempt == self.attempts - 1:
                    raise
                time.sleep(min(_MAX_DELAY, self.delay * 2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover


def probe_conditional(client: Any, bucket: str, key: str) -> bool:
    """Whether the server refuses a second ``If-None-Match: *`` PUT of ``key``.

    Two PUTs at most, then the probe object is removed (each version, on a versioned bucket).
    """
    written: list[dict[str, Any]] = []
    try:
        with mapped(key, bucket):
            written.append(client.put_object(Bucket=bucket, Key=key, Body=b"", IfNoneMatch="*"))
        try:
            with mapped(key, bucket, create=True):
                written.append(client.put_object(Bucket=bucket, Key=key, Body=b"", IfNoneMatch="*"))
        except StorageAlreadyExistsError:
            return True
        return False
    finally:
        if written:  # (a DELETE of nothing would leave a delete marker when versioned)
            discard(client, bucket, key, [w.get("VersionId") for w in written])


def discard(client: Any, bucket: str, key: str, versions: list[str | None]) -> None:
    """Best-effort removal of ``key`` (each version given, on a versioned bucket)."""
    targets: list[str | None] = [v for v in versions if v and v != "null"] or [None]
    for version in targets:
        extra = {"VersionId": version} if version else {}
        try:
            client.delete_object(Bucket=bucket, Key=key, **extra)
        except (ClientError, BotoCoreError):
            pass


def probe_delete(client: Any, bucket: str, key: str) -> bool:
    """Whether the server refuses a ``DELETE`` of ``key`` whose ``If-Match`` differs: one PUT,
    one conditional DELETE, then the probe object is removed."""
    with mapped(key, bucket):
        written = client.put_object(Bucket=bucket, Key=key, Body=b"")
    versions = [written.get("VersionId")]
    try:
        with mapped(key, bucket):
            deleted = client.delete_object(Bucket=bucket, Key=key, IfMatch='"0000-not-the-etag"')
        versions.append(deleted.get("VersionId"))  # a delete marker, on a versioned bucket
    except PreconditionFailedError:
        return True
    finally:
        discard(client, bucket, key, versions)
    return False


def delete_if_match(client: Any, bucket: str, key: str, etag: str) -> None:
    """One ``DELETE`` of ``key`` with ``If-Match: "<etag>"`` (the caller probed that the
    server honours it).

    Raises:
        StorageNotFoundError: No such key.
        PreconditionFailedError: Its etag differs.
    """
    with mapped(key, bucket):
        client.delete_object(Bucket=bucket, Key=key, IfMatch=f'"{etag.strip(chr(34))}"')


def read_tagged(client: Any, bucket: str, key: str) -> tuple[bytes, str | None]:
    """One GET of ``key``: its whole content and its ETag (from the same response)."""
    with mapped(key, bucket):
        response = client.get_object(Bucket=bucket, Key=key)
        with response["Body"] as body:
            data: bytes = body.read()
    return data, unquote(response.get("ETag"))
