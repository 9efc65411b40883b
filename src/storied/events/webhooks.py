"""Webhook endpoints and the Standard Webhooks message format.

A :class:`Webhook` is one registered endpoint (``storage.add_webhook(...)``). Each event it
wants becomes one *message*: a JSON body with the CloudEvents 1.0 attributes (``specversion``,
``id``, ``source`` = ``storied://<mount>``, ``type`` such as ``storied.version.created``,
``subject`` = the path, ``time``, ``datacontenttype``, ``data`` = the callback's ``info``), sent
as an HTTP POST with the Standard Webhooks headers:

- ``webhook-id``: the message id, stable across retries (receivers deduplicate on it);
- ``webhook-timestamp``: the attempt's Unix time (receivers reject one > 5 minutes off, so it
  is taken again at each attempt and the signature recomputed);
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``; with a
  list of secrets (a rotation) one such signature per secret, space-separated.

Secrets: ``whsec_`` + base64 (the Standard Webhooks form: the key is the decoded bytes), or any
other string, whose UTF-8 bytes are the key (a receiver verifies with
``standardwebhooks.Webhook(secret.encode())``), or ``bytes`` (the key itself). A secret never
appears in a repr, a log line or an error message, and is never written to disk.

Bodies are thin: a body over :data:`MAX_BODY` bytes has its ``data`` cut down to its short
scalar fields, with ``"truncated": true``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from storied.errors import InvalidArgumentError
from storied.events.bus import check_event

__all__ = [
    "MAX_BODY",
    "RetryPolicy",
    "Webhook",
    "check_url",
    "cloudevent_type",
    "endpoint_key",
    "message_body",
    "new_message_id",
    "redact_url",
    "secret_key",
    "secret_keys",
    "sign",
]

#: Largest body sent (bytes); larger ``info`` is cut (Standard Webhooks: keep payloads thin).
MAX_BODY = 20_000
#: Longest scalar kept in a cut-down ``data`` (characters).
_KEEP_SCALAR = 256
#: Largest ``timeout`` accepted (seconds).
_MAX_TIMEOUT = 300.0


@dataclass(frozen=True)
class RetryPolicy:
    """When a failed delivery is tried again.

    Attributes:
        delays: Seconds to wait after the 1st, 2nd, ... consecutive failure of an endpoint
            (the Standard Webhooks schedule by default: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
            10 h); after the last one the last delay repeats.
        jitter: Each delay is multiplied by a random factor in ``[1 - jitter, 1 + jitter]``.
        max_attempts: Attempts of one message before it is a final failure (logged, dropped).
        max_age: Seconds after which an undelivered message is a final failure.
        max_retry_after: Cap on a server's ``Retry-After`` (seconds).
    """

    delays: tuple[float, ...] = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
    jitter: float = 0.2
    max_attempts: int = 8
    max_age: float = 3 * 86400.0
    max_retry_after: float = 86400.0

    def __post_init__(self) -> None:
        if not self.delays or any(not _finite_nonneg(d) for d in self.delays):
            raise InvalidArgumentError("RetryPolicy.delays: a non-empty list of seconds >= 0")
        if not (0.0 <= self.jitter < 1.0):
            raise InvalidArgumentError("RetryPolicy.jitter: a fraction in [0, 1)")
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise InvalidArgumentError("RetryPolicy.max_attempts: an int >= 1")
        for name in ("max_age", "max_retry_after"):
            if not _finite_nonneg(getattr(self, name)):
                raise InvalidArgumentError(f"RetryPolicy.{name}: seconds >= 0")

    @classmethod
    def of(cls, value: RetryPolicy | Sequence[float] | None) -> RetryPolicy:
        """``value`` as a policy: a policy, a list of delays (other fields default), or None."""
        if value is None:
            return cls()
        if isinstance(value, RetryPolicy):
            return value
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise InvalidArgumentError(
                f"retry: a RetryPolicy or a list of delays in seconds, not {type(value).__name__}"
            )
        return cls(delays=tuple(value))

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after ``failures`` (>= 1) consecutive failures; a server's
        ``retry_after`` (capped at :attr:`max_retry_after`) wins when given."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        base = self.delays[min(failures, len(self.delays)) - 1]
        return base * random.uniform(1.0 - self.jitter, 1.0 + self.jitter)


def _finite_nonneg(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e12


def check_url(url: object) -> str:
    """``url`` if it is an absolute ``http``/``https`` URL with a host, else an
    :class:`InvalidArgumentError` (the message shows the URL without credentials)."""
    if not isinstance(url, str):
        raise InvalidArgumentError(f"Webhook url must be a str, not {type(url).__name__}")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise InvalidArgumentError("Webhook url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidArgumentError(f"Invalid webhook url {redact_url(url)!r}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidArgumentError(
            f"Webhook url {redact_url(url)!r}: only http:// and https:// URLs are delivered to"
        )
    if not parts.hostname:
        raise InvalidArgumentError(f"Webhook url {redact_url(url)!r} has no host")
    return url


def redact_url(url: str) -> str:
    """``url`` without user info and query (where tokens hide), for logs and reprs."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    query = "..." if parts.query else ""
    return urlunsplit((parts.scheme, host + port, parts.path, query, ""))


def secret_key(secret: str | bytes | None) -> bytes | None:
    """The HMAC key of ``secret``: ``whsec_`` + base64 decoded, bytes as they are, another
    string as its UTF-8 bytes; None for no signing.

    Raises:
        InvalidArgumentError: An empty secret, or ``whsec_`` followed by invalid base64 (the
            message never shows the secret).
    """
    if secret is None:
        return None
    if isinstance(secret, bytes):
        key = secret
    elif isinstance(secret, str):
        if secret.startswith("whsec_"):
            body = secret[len("whsec_"):]
            try:
                key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
            except (binascii.Error, ValueError):
                raise InvalidArgumentError(
                    "Webhook secret starts with 'whsec_' but the rest is not base64"
                ) from None
        else:
            key = secret.encode("utf-8")
    else:
        raise InvalidArgumentError(f"Webhook secret must be a str, not {type(secret).__name__}")
    if not key:
        raise InvalidArgumentError("Webhook secret must not be empty")
    return key


#: One secret: ``whsec_`` + base64, another string, or the key bytes.
Secret = str | bytes


def secret_keys(secret: Secret | Sequence[Secret] | None) -> tuple[bytes, ...]:
    """The HMAC keys of ``secret``: one per secret of a list (a rotation: the new one and the
    old one, each signature sent), none for None.

    Raises:
        InvalidArgumentError: As :func:`secret_key`, or an empty list.
    """
    if secret is None:
        return ()
    if isinstance(secret, (str, bytes)):
        secrets: Sequence[Secret] = [secret]
    elif isinstance(secret, Sequence) and secret:
        secrets = cast(Sequence[Secret], secret)
    else:
        raise InvalidArgumentError("Webhook secret: a string, bytes or a non-empty list of them")
    keys = tuple(secret_key(one) for one in secrets)
    return tuple(k for k in keys if k is not None)


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256("{id}.{ts}.{body}")>``."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def new_message_id() -> str:
    """A fresh message id (``msg_`` + 32 hex digits)."""
    return "msg_" + uuid.uuid4().hex


def cloudevent_type(event: str) -> str:
    """``'version_created'`` -> ``'storied.version.created'``."""
    noun, _, verb = event.partition("_")
    return f"storied.{noun}.{verb}" if verb else f"storied.{noun}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _plain(value: object) -> object:
    """JSON for what ``json`` does not know: datetimes as ISO 8601, the rest as ``str``."""
    if isinstance(value, datetime):
        return _iso(value) if value.tzinfo else value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_plain)


def message_body(msg_id: str, event: str, mount: str | None, path: str,
                 info: dict[str, Any], time: datetime | None = None) -> bytes:
    """The JSON body (CloudEvents 1.0 attributes) of one event, at most :data:`MAX_BODY` bytes:
    an ``info`` too large is cut to its short scalar fields plus ``"truncated": true``."""
    envelope: dict[str, Any] = {
        "specversion": "1.0",
        "id": msg_id,
        "source": f"storied://{mount or ''}",
        "type": cloudevent_type(event),
        "subject": path,
        "time": _iso(time or datetime.now(UTC)),
        "datacontenttype": "application/json",
        "data": {**info, "event": event},
    }
    body = _json(envelope).encode("utf-8")
    if len(body) <= MAX_BODY:
        return body
    envelope["data"] = {
        k: v for k, v in envelope["data"].items()
        if isinstance(v, (bool, int, float, type(None)))
        or (isinstance(v, str) and len(v) <= _KEEP_SCALAR)
    } | {"truncated": True}
    body = _json(envelope).encode("utf-8")
    if len(body) > MAX_BODY:  # a path of thousands of characters: keep the envelope only
        envelope["subject"] = path[:_KEEP_SCALAR]
        envelope["data"] = {"event": event, "truncated": True}
        body = _json(envelope).encode("utf-8")
    return body


def endpoint_key(url: str, mount: str | None) -> str:
    """The persisted identity of an endpoint: a hash of its URL and mount filter (not of its
    secret: a rotated secret signs the messages still pending)."""
    return hashlib.sha256(f"{mount or '*'}\n{url}".encode()).hexdigest()[:32]


class Webhook:
    """One endpoint registered by ``storage.add_webhook``; its repr hides the secret and the
    URL's credentials and query.

    Attributes:
        url: Where messages are POSTed.
        events: The event names it receives (``('*',)``: all).
        mount: Only events of this mount (None: every mount).
        timeout: Seconds one delivery attempt may take.
        retry: The :class:`RetryPolicy`.
        key: The endpoint's persisted identity (:func:`endpoint_key`).
    """

    url: str
    timeout: float
    retry: RetryPolicy
    key: str
    removed: bool

    def __init__(self, url: str, events: Iterable[str] | None = None,
                 secret: Secret | Sequence[Secret] | None = None, mount: str | None = None,
                 timeout: float = 15.0,
                 retry: RetryPolicy | Sequence[float] | None = None) -> None:
        self.url = check_url(url)
        if events is None:
            names: tuple[str, ...] = ("*",)
        elif isinstance(events, str):
            names = (check_event(events),)
        else:
            names = tuple(dict.fromkeys(check_event(e) for e in events))
            if not names:
                raise InvalidArgumentError("Webhook events: give at least one event (or '*')")
        self.events = ("*",) if "*" in names else names
        if mount is not None and not isinstance(mount, str):
            raise InvalidArgumentError(f"Webhook mount must be a str, not {type(mount).__name__}")
        self.mount = mount
        if not _finite_nonneg(timeout) or not (0 < timeout <= _MAX_TIMEOUT):
            raise InvalidArgumentError(
                f"Webhook timeout: seconds in (0, {_MAX_TIMEOUT:g}], got {timeout!r}"
            )
        self.timeout = float(timeout)
        self.retry = RetryPolicy.of(retry)
        self._keys = secret_keys(secret)
        self.key = endpoint_key(url, mount)
        self.disabled = False  #: True after the endpoint answered 410 Gone
        self.removed = False

    @property
    def signed(self) -> bool:
        """True when deliveries carry a ``webhook-signature``."""
        return bool(self._keys)

    def wants(self, event: str, mount: str | None) -> bool:
        """True when this endpoint receives ``event`` on ``mount``."""
        if self.disabled or self.removed:
            return False
        if self.mount is not None and self.mount != mount:
            return False
        return self.events == ("*",) or event in self.events

    def headers(self, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        """The Standard Webhooks headers of one attempt."""
        out = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
        if self._keys:  # several while a secret is rotated: receivers accept any of them
            out["webhook-signature"] = " ".join(sign(k, msg_id, timestamp, body)
                                                for k in self._keys)
        return out

    def _update(self, other: Webhook) -> None:
        """Take ``other``'s settings (the same endpoint registered again)."""
        self.events, self.timeout, self.retry = other.events, other.timeout, other.retry
        self._keys = other._keys
        self.removed = False

    def __repr__(self) -> str:
        where = f", mount={self.mount!r}" if self.mount else ""
        state = ", disabled" if self.disabled else ""
        return (f"Webhook({redact_url(self.url)!r}, events={list(self.events)!r}{where}, "
                f"signed={self.signed}{state})")
