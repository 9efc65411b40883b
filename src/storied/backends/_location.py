"""Normalised names of remote storages, for deciding that two mounts reach the same place.

A move between two mounts is copy-then-delete unless both reach the same storage location, in
which case it must be a no-op (or a refusal): copying an object onto itself and then deleting
the "source" loses it. So a storage key errs towards "same": spellings of one endpoint that
differ only in case, a default port, a trailing slash or dot, or a loopback alias
(``localhost``, ``127.0.0.1``, ``::1``) give one key, and every AWS S3 endpoint is one (bucket
names are global there). Credentials never take part: two users may reach the same files.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["host_key", "url_key"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_AWS = "amazonaws.com"


def host_key(host: str | None) -> str | None:
    """``host`` lowercased, without a trailing dot; any loopback name becomes ``'loopback'``."""
    if host is None:
        return None
    name = host.strip().strip("[]").rstrip(".").lower()
    if name in ("localhost", "::1", "0:0:0:0:0:0:0:1") or name.startswith("127."):
        return "loopback"
    return name


def url_key(url: str | None, *, aws_is_global: bool = False) -> str | None:
    """A canonical ``scheme://host[:port]/path`` for an endpoint URL (None stays None).

    With ``aws_is_global`` any ``*.amazonaws.com`` endpoint (and None, the default endpoint)
    gives None: every AWS S3 endpoint reaches the one global bucket namespace.
    """
    if url is None:
        return None
    parts = urlsplit(url.strip())
    host = host_key(parts.hostname or "") or ""
    if aws_is_global and (host == _AWS or host.endswith("." + _AWS)):
        return None
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"
