"""Multipart uploads with parts in parallel (private to :mod:`storied.backends.s3`).

The source is read by the calling thread only, part after part, in order; up to ``workers``
parts are being sent at once by a thread pool and one more waits for a free worker (so no
worker idles while the next part is read), so memory holds about ``workers + 2`` parts.
A part that fails transiently is sent again (its bytes are in memory) a few times. Any other
failure, or an interruption (``KeyboardInterrupt``, a source that raises), cancels the parts
not yet started, waits for those being sent, then aborts the upload: no part is left on the
server (``ListMultipartUploads`` shows nothing).

Checksums, as boto3's ``upload_file`` (s3transfer) does them: when the client computes request
checksums by default (botocore's ``request_checksum_calculation="when_supported"``) the upload
is created with ``ChecksumAlgorithm=CRC32`` (unless the caller chose one), every part carries
its CRC32 (computed by botocore while signing; S3 verifies it) and the complete request lists
each part's checksum, so S3 keeps a composite CRC32 of the parts. Without it S3 (and moto)
compute a full-object CRC64NVME at the complete step, over the whole object at once: on moto
that step copies the object twice more in memory and hashes it in one thread, which made
storied's large uploads up to 2x slower than ``upload_file``. With ``"when_required"``
(servers that refuse checksums) no checksum is asked for anywhere.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from typing import Any, BinaryIO

from botocore.exceptions import BotoCoreError, ClientError

from storied.backends._s3_support import mapped, parts
from storied.errors import TransientStorageError

__all__ = ["PART_ATTEMPTS", "checksum_algorithm", "part_entry", "upload_multipart"]

#: Tries of one part on transient failures (each try is botocore's request + its one retry).
PART_ATTEMPTS = 3
_log = logging.getLogger("storied.s3")


def checksum_algorithm(client: Any, extra: dict[str, Any]) -> str | None:
    """The checksum algorithm of a new multipart upload: the caller's ``ChecksumAlgorithm``,
    else ``"CRC32"`` when ``client`` computes request checksums when supported (botocore's
    default, as s3transfer decides), else None (no checksum asked for)."""
    chosen = extra.get("ChecksumAlgorithm")
    if chosen:
        return str(chosen).upper()
    mode = getattr(client.meta.config, "request_checksum_calculation", None)
    return "CRC32" if mode in (None, "when_supported") else None


def part_entry(number: int, reply: dict[str, Any], algorithm: str | None) -> dict[str, Any]:
    """Part ``number``'s entry of the complete request, from the server's reply to its
    UploadPart (or UploadPartCopy's ``CopyPartResult``): its ETag and, when the upload asked
    for ``algorithm``, the part's checksum the server answered."""
    entry: dict[str, Any] = {"ETag": str(reply["ETag"]), "PartNumber": number}
    member = f"Checksum{algorithm}" if algorithm else ""
    if member and reply.get(member):
        entry[member] = str(reply[member])
    return entry


def _send_part(
    client: Any, target: dict[str, Any], path: str, number: int, body: bytes,
    algorithm: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """UploadPart ``number``; its entry of the complete request (``ETag``, ``PartNumber`` and
    the part's checksum when the server answered one). Transient failures are tried again,
    with backoff."""
    extra = {"ChecksumAlgorithm": algorithm} if algorithm else {}
    for attempt in range(PART_ATTEMPTS):
        try:
            with mapped(path, target["Bucket"]):
                part = client.upload_part(**target, PartNumber=number, Body=body, **extra)
            return part_entry(number, part, algorithm)
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
    algorithm = checksum_algorithm(client, extra)
    if algorithm:
        extra["ChecksumAlgorithm"] = algorithm
    with mapped(path, bucket):
        upload = client.create_multipart_upload(Bucket=bucket, Key=path, **extra)
    target = {"Bucket": bucket, "Key": path, "UploadId": upload["UploadId"]}
    pool = cf.ThreadPoolExecutor(max(1, workers), thread_name_prefix="storied-s3-part")
    pending: set[cf.Future[dict[str, Any]]] = set()
    numbers: dict[cf.Future[dict[str, Any]], int] = {}
    etags: dict[int, dict[str, Any]] = {}

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
            future = pool.submit(_send_part, client, target, path, number, body, algorithm)
            pending.add(future)
            numbers[future] = number
            size += len(body)
            del body
        collect(0)
        done = [etags[n] for n in sorted(etags)]
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
