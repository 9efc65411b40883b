"""storied's logger tree for storage requests, and what keeps secrets out of it.

Loggers: ``storied.backends.<type>`` (one per mount type: ``sftp``, ``webdav``, ``smb``...):
requests at DEBUG (operation, path, duration, outcome), retries at INFO and give-ups at WARNING
(from :class:`~storied.backends.retrying.Retrying`). The library never configures handlers: the
``storied`` logger only gets a :class:`logging.NullHandler`, so nothing is printed unless the
application (or ``storied -v``) adds a handler.

Records never carry credentials: they hold the operation and the mount-relative path, and any
error text goes through :func:`redact` first (URL user-info, ``Authorization`` values, secret
query parameters and ``key=value`` pairs named like secrets are masked).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["backend_logger", "logged_request", "redact"]

logging.getLogger("storied").addHandler(logging.NullHandler())

_SECRET_WORDS = (
    r"password|passwd|passphrase|secret|token|api[_-]?key|account[_-]?key|access[_-]?key"
    r"|signature|sig|credential|sas[_-]?token|authorization"
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(authorization|proxy-authorization)(['\"]?\s*[:=]\s*['\"]?)"
                r"(?:(?:basic|bearer|token|digest)\s+)?[^\s'\",;}]+"), r"\1\2***"),
    (re.compile(r"(?i)\b(basic|bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 ***"),
    (re.compile(r"(?i)([a-z][a-z0-9+.-]*://)[^/\s@'\"]+@"), r"\1***@"),
    (re.compile(rf"(?i)\b((?:x-amz-)?(?:{_SECRET_WORDS}))(['\"]?\s*[:=]\s*['\"]?)[^\s&'\",;}}]+"),
     r"\1\2***"),
)


def redact(text: str) -> str:
    """``text`` with anything that looks like a credential replaced by ``***``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def backend_logger(protocol: str) -> logging.Logger:
    """The logger of one mount type: ``storied.backends.<protocol>``."""
    return logging.getLogger(f"storied.backends.{protocol or 'unknown'}")


@contextmanager
def logged_request(log: logging.Logger, op: str, path: str) -> Iterator[None]:
    """Log one storage request at DEBUG when the block ends: the operation, the path, how
    long it took, and the error's type when it failed (its text redacted)."""
    if not log.isEnabledFor(logging.DEBUG):
        yield
        return
    start = time.monotonic()
    try:
        yield
    except BaseException as exc:
        elapsed = (time.monotonic() - start) * 1000
        log.debug("%s %r failed after %.1f ms: %s: %s", op, path, elapsed,
                  type(exc).__name__, redact(str(exc)))
        raise
    log.debug("%s %r %.1f ms", op, path, (time.monotonic() - start) * 1000)
