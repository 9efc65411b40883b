"""The S3 client and a mount's S3 options (private to :mod:`storied.backends.s3`).

- :func:`make_client`: one boto3 client on its own session (``profile`` names a profile of
  the shared AWS config files), with timeouts that make a hung endpoint fail in seconds
  (:data:`DEFAULT_CONNECT_TIMEOUT`, :data:`DEFAULT_READ_TIMEOUT`), a connection pool large
  enough for ``max_concurrency`` parallel parts, and every request logged at DEBUG on the
  ``storied.s3`` logger (method, bucket and key, the names of the query parameters, status
  and time; never headers, credentials or query values such as signatures).
- :func:`write_options`: the arguments every new object gets (SSE, storage class).
- :func:`backend_options`: the :class:`~storied.backends.s3.S3Backend` arguments of a mount's
  checked config (``from_config``).
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from typing import Any

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError

from storied import paths
from storied.errors import InvalidArgumentError, StorageConfigError

__all__ = [
    "DEFAULT_CHUNKSIZE",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_THRESHOLD",
    "backend_options",
    "is_reserved",
    "make_client",
    "write_options",
]

#: Objects at least this large are sent as multipart uploads (boto3's default too).
DEFAULT_THRESHOLD = 8 * 1024 * 1024
#: Bytes per part of a multipart upload (at least S3's 5 MiB) when the mount does not say:
#: the threshold (at least 5 MiB), so 8 MiB by default.
DEFAULT_CHUNKSIZE: int | None = None
#: Parts (uploads) or ranged GETs (``stream_download``) in flight at once.
DEFAULT_MAX_CONCURRENCY = 4
#: Seconds to wait for a TCP connection.
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Seconds to wait for a byte of an answer.
DEFAULT_READ_TIMEOUT = 60.0

_log = logging.getLogger("storied.s3")
_SSE = ("AES256", "aws:kms")


def make_client(
    credentials: dict[str, str | None], anon: bool, client_kwargs: dict[str, Any] | None,
    *, profile: str | None = None, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    read_timeout: float = DEFAULT_READ_TIMEOUT, max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
) -> Any:  # fmt: skip
    """One boto3 S3 client (thread-safe), on its own session, with few retries.

    Args:
        credentials: ``region``, ``key``, ``secret``, ``token``, ``endpoint_url`` (each may be
            None: boto3's usual chain and AWS endpoints apply; the region defaults to us-east-1).
        anon: Send unsigned requests.
        client_kwargs: Extra ``client()`` arguments, winning over the above; a ``config``
            (botocore ``Config`` or dict) is merged over storied's (SigV4; 2 attempts in all,
            as botocore's ``total_max_attempts``: storied's ``Retrying`` wrapper does the
            retrying; the timeouts; a pool of ``max_concurrency + 4`` connections, 10 at least).
        profile: A profile of the shared AWS config/credentials files (its keys and region
            are used unless given here).

    Raises:
        StorageConfigError: No such profile.
    """
    kwargs = dict(client_kwargs or {})
    config = Config(
        retries={"total_max_attempts": 2, "mode": "standard"},  # the request + 1 retry
        signature_version=UNSIGNED if anon else "s3v4",
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=max(10, max_concurrency + 4),
    )
    user_config = kwargs.pop("config", None)
    if isinstance(user_config, dict):
        user_config = Config(**user_config)
    if user_config is not None:
        config = config.merge(user_config)
    try:
        session = boto3.session.Session(profile_name=profile or None)
    except BotoCoreError as exc:  # ProfileNotFound
        raise StorageConfigError(f"S3 profile {profile!r}: {exc}") from exc
    kwargs.setdefault("region_name", credentials.get("region") or session.region_name
                      or "us-east-1")  # fmt: skip
    kwargs.setdefault("endpoint_url", credentials.get("endpoint_url"))
    if not anon:
        kwargs.setdefault("aws_access_key_id", credentials.get("key"))
        kwargs.setdefault("aws_secret_access_key", credentials.get("secret"))
        kwargs.setdefault("aws_session_token", credentials.get("token"))
    client = session.client("s3", config=config, **kwargs)
    log_requests(client)
    return client


# --------------------------------------------------------------------------- request log
def log_requests(client: Any) -> None:
    """Log each request of ``client`` at DEBUG on ``storied.s3`` (see the module docstring)."""
    client.meta.events.register("before-send.s3", _before_send)
    client.meta.events.register("after-call.s3", _after_call)


def _before_send(request: Any, **_: Any) -> None:
    if not _log.isEnabledFor(logging.DEBUG):
        return
    request.context["storied_started"] = time.monotonic()
    _log.debug("S3 %s %s", request.method, _described(request.url))


def _after_call(http_response: Any, model: Any, context: Any = None, **_: Any) -> None:
    if not _log.isEnabledFor(logging.DEBUG):
        return
    started = (context or {}).get("storied_started")
    took = "" if started is None else f" in {time.monotonic() - started:.3f}s"
    status = getattr(http_response, "status_code", "?")
    _log.debug("S3 %s -> HTTP %s%s", getattr(model, "name", "request"), status, took)


def _described(url: str) -> str:
    """``host/path`` plus the names (never the values) of the query parameters."""
    split = urllib.parse.urlsplit(url)
    names = sorted({k for k, _ in urllib.parse.parse_qsl(split.query, keep_blank_values=True)})
    where = f"{split.netloc}{split.path}"
    return f"{where}?{'&'.join(names)}" if names else where


# --------------------------------------------------------------------------- options
def write_options(
    sse: str | None, kms_key_id: str | None, storage_class: str | None
) -> tuple[dict[str, str], dict[str, str]]:
    """``(encryption, storage)``: the PUT / CreateMultipartUpload / CopyObject arguments of a
    mount's ``sse`` / ``sse_kms_key_id`` and of its ``storage_class``.

    Raises:
        InvalidArgumentError: ``sse`` not ``'AES256'`` / ``'aws:kms'``, or a KMS key id
            without ``sse='aws:kms'``.
    """
    encryption: dict[str, str] = {}
    if sse:
        if sse not in _SSE:
            raise InvalidArgumentError(f"sse must be 'AES256' or 'aws:kms', not {sse!r}")
        encryption["ServerSideEncryption"] = sse
    if kms_key_id:
        if sse != "aws:kms":
            raise InvalidArgumentError("sse_kms_key_id needs sse='aws:kms'")
        encryption["SSEKMSKeyId"] = kms_key_id
    storage = {"StorageClass": str(storage_class)} if storage_class else {}
    return encryption, storage


def is_reserved(key: str) -> bool:
    """Whether ``key`` is one of storied's own objects (history, locks, probes): those never
    take the mount's ``storage_class`` (an archived record could not be read)."""
    return paths.RESERVED in key.split("/")


def backend_options(config: dict[str, Any]) -> dict[str, Any]:
    """The S3Backend keyword arguments of a mount's checked config (bucket excluded)."""
    keys = ("region", "key", "secret", "token", "endpoint_url", "client_kwargs", "profile",
            "sse", "sse_kms_key_id", "storage_class")  # fmt: skip
    options: dict[str, Any] = {k: config.get(k) for k in keys}
    numbers = {"multipart_threshold": DEFAULT_THRESHOLD, "max_concurrency": DEFAULT_MAX_CONCURRENCY}
    for name, default in numbers.items():
        options[name] = int(config.get(name) or default)
    chunksize = config.get("multipart_chunksize")
    options["multipart_chunksize"] = int(chunksize) if chunksize else DEFAULT_CHUNKSIZE
    for name, seconds in (("connect_timeout", DEFAULT_CONNECT_TIMEOUT),
                          ("read_timeout", DEFAULT_READ_TIMEOUT)):  # fmt: skip
        options[name] = float(config.get(name) or seconds)
    options["anon"] = bool(config.get("anon"))
    options["probe_prefix"] = paths.normalize(config.get("base_path") or "")
    options["probe_attempts"] = int(config.get("retries") or 4)
    return options
