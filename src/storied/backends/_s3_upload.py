"""Multipart uploads with parts in parallel (private to :mod:`storied.backends.s3`).

The source is read by the calling thread only, part after part, in order; up to ``workers``
parts are being sent at once by a thread pool and one more waits for a free worker (so no
worker idles while the next part is read), so memory holds about ``workers + 2`` parts.
A part that fails transiently is sent again (its bytes are in memory) a few times. Any other
failure, or an interruption (``KeyboardInterrupt``, a source that raises), cancels the parts
not yet started, waits for those being sent, then aborts the upload: no part is left on the
server (``ListMultipartUploads`` shows nothing).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from typing import Any, BinaryIO

from botocore.exceptions import BotoCoreError, ClientError

from storied.backends._s3_support import mapped, parts
from storied.errors import TransientStorageError

__all__ = ["PART_ATTEMPTS", "upload_multipart"]

#: Tries of one part on transient failures (each try is botocore's request + its one retry).
PART_ATTEMPTS = 3
_log = logging.getLogger("storied.s3")


def _send_part(client: Any, target: dict[str, Any], path: str, number: int, body: bytes) -> str:
    """UploadPart ``number``; its ETag. Transient failures are tried again, with backoff."""
    for attempt in range(PART_ATTEMPTS):
        try:
            with mapped(path, target["Bucket"]):
                part = client.upload_part(**target, PartNumber=number, Body=body)
            return str(part["ETag"])
        except TransientStorageError as exc:
            if attempt == PART_ATTEMPTS - 1:
                raise
            _log.info("S3 UploadPart %d of %r failed (%s): sending it again", number, path, exc)
            time.sleep(min(2.0, 0.1 * 2**attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def upload_multipart(
    client: Any, bucket: str, path: str, head: bytes, stream: BinaryIO, extra: dict[str, Any],
    *, create: bool, part_size: int, workers: int = 1,
) -> dict[str, Any]:  # fmt: skip
    """Create, upload ``head`` + ``stream`` in parts (``workers`` at once), complete; abort on
    any failure.

    ``extra`` holds the CreateMultipartUpload arguments (content type, metadata, encryption,
    storage class); its conditions (``IfNoneMatch`` / ``IfMatch``) go on the complete request.

    Returns:
        ``{"response": <CompleteMultipartUpload response>, "size": <bytes sent>}``.
    """
    extra = dict(extra)
    conditions = {k: extra.pop(k) for k in ("IfNoneMatch", "IfMatch") if k in extra}
    with mapped(path, bucket):
        upload = client.create_multipart_upload(Bucket=bucket, Key=path, **extra)
    target = {"Bucket": bucket, "Key": path, "UploadId": upload["UploadId"]}
    pool = cf.ThreadPoolExecutor(max(1, workers), thread_name_prefix="storied-s3-part")
    pending: set[cf.Future[str]] = set()
    numbers: dict[cf.Future[str], int] = {}
    etags: dict[int, str] = {}

    def collect(until: int) -> None:
        """Wait until at most ``until`` parts are in flight; a failed part raises."""
        nonlocal pending
        while len(pending) > until:
            finished, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for future in finished:
                etags[numbers.pop(future)] = future.result()

    try:
        size = 0
        for number, body in enumerate(parts(head, stream, part_size), 1):
            collect(max(1, workers))  # one part waits in the pool: no worker idles on a read
            future = pool.submit(_send_part, client, target, path, number, body)
            pending.add(future)
            numbers[future] = number
            size += len(body)
            del body
        collect(0)
        done = [{"ETag": etags[n], "PartNumber": n} for n in sorted(etags)]
        with mapped(path, bucket, create):
            response = client.complete_multipart_upload(
                **target, MultipartUpload={"Parts": done}, **conditions
            )
    except BaseException:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)  # nothing may land after the abort
        try:
            client.abort_multipart_upload(**target)
        except (ClientError, BotoCoreError) as exc:
            _log.warning("S3 could not abort the multipart upload of %r: %s", path, exc)
        raise
    pool.shutdown(wait=True)
    return {"response": response, "size": size}
