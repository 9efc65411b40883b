"""Builders of the fsspec mounts: SFTP, WebDAV, GCS, Azure Blob and HTTP (see
:mod:`storied.backends.fsspec_adapters` for the adapter and the per-storage profiles).

Each ``*_from_config`` takes the registry's checked config and returns the backend without any
network I/O: the filesystem is built by the ``connect`` function it hands to
:class:`~storied.backends.fsspec_adapters.FsspecBackend`, on first use. Each also gives the
backend a ``location_key`` (its :meth:`storage_key`): what identifies the storage, so two mounts
over one server, bucket or container are known to be the same storage.
"""

from __future__ import annotations

import os
from typing import Any

from storied.backends._cloud_tiers import AzureBackend, GcsBackend
from storied.backends._config_kinds import timeouts
from storied.backends._fsspec_support import (
    known_hosts_policy,
    quoting_webdav_client,
    sftp_timeout,
    threaded_sftp,
)
from storied.backends._location import host_key, url_key
from storied.backends.base import CHUNK, Backend
from storied.backends.fsspec_adapters import AZURE, GCS, HTTP, SFTP, WEBDAV, FsspecBackend
from storied.errors import StorageConfigError

__all__ = [
    "azure_from_config",
    "gcs_from_config",
    "http_from_config",
    "sftp_from_config",
    "webdav_from_config",
]


def _prefixed(backend: Backend, config: dict[str, Any]) -> Backend:
    from storied.backends.wrappers import Prefixed

    prefix = str(config.get("base_path") or "").strip("/")
    return Prefixed(backend, prefix) if prefix else backend


def sftp_from_config(config: dict[str, Any]) -> Backend:
    """Build an SFTP mount.

    Keys: ``host``, ``port`` (22), ``username``, ``password``, ``key_filename``, ``passphrase``,
    ``connect_timeout`` (TCP connect, SSH banner, key exchange and login; 10 s),
    ``read_timeout`` (each SFTP request; 60 s), ``timeout`` (genro-storage's: both, where the
    specific key is absent), ``known_hosts`` (a file: the server key must be in it; without it
    any key is accepted on first sight, as fsspec does), ``base_path``: the remote directory,
    absolute or
    (without a leading ``/``) relative to the login directory; default ``/``. It is applied with
    :class:`~storied.backends.wrappers.Prefixed` over the server root (``/`` or the login
    directory), so it goes through storied's path rules like every other prefix.
    Key and known-hosts files must exist (checked now: local I/O only, no connection opened).
    """
    from fsspec.implementations.sftp import SFTPFileSystem

    options: dict[str, Any] = {
        key: config[key]
        for key in ("port", "username", "password", "key_filename", "passphrase")
        if config.get(key) is not None
    }
    connect_s, read_s = timeouts(config)
    options.update(timeout=connect_s, banner_timeout=connect_s, auth_timeout=connect_s,
                   channel_timeout=connect_s)
    explicit = bool(options.get("password") or options.get("key_filename"))
    options.update(look_for_keys=not explicit, allow_agent=not explicit)
    for option in ("key_filename", "known_hosts"):
        files = config.get(option) or []
        for file in [files] if isinstance(files, str) else files:
            if not os.path.isfile(file):
                raise StorageConfigError(
                    f"Mount {config['name']!r}: {option!r} {file!r} is not an existing file"
                )
    if config.get("known_hosts"):
        options["host_key_policy"] = known_hosts_policy(str(config["known_hosts"]))
    base = str(config.get("base_path") or "/")
    host = config["host"]

    def connect() -> Any:
        fs = threaded_sftp(SFTPFileSystem)(host, skip_instance_cache=True, **options)
        fs.storied_read_timeout = read_s
        sftp_timeout(fs)
        return fs

    root = "/" if base.startswith("/") else "."
    key = ("sftp", host_key(host), int(options.get("port", 22)), root)
    return _prefixed(FsspecBackend(None, root, SFTP, connect=connect, location_key=key), config)


def webdav_from_config(config: dict[str, Any]) -> Backend:
    """Build a WebDAV mount: ``url``; ``username``/``password`` (basic auth) or ``token``
    (bearer); ``cert``, ``verify_ssl``; ``base_path`` (a prefix on the server, via Prefixed);
    ``connect_timeout`` (10 s) and ``read_timeout`` (60 s) for httpx. webdav4's own retry
    loop is turned off: the mount's ``retries`` (storied's Retrying) is the only one."""
    from webdav4.fsspec import WebdavFileSystem

    options: dict[str, Any] = {}
    if config.get("username") is not None:
        options["auth"] = (config["username"], config.get("password") or "")
    if config.get("token"):
        options["headers"] = {"Authorization": f"Bearer {config['token']}"}
    if config.get("cert"):
        options["cert"] = config["cert"]
    if config.get("verify_ssl") is not None:
        options["verify"] = bool(config["verify_ssl"])
    url = config["url"]

    connect_s, read_s = timeouts(config)

    def connect() -> Any:
        import httpx

        timeout = httpx.Timeout(read_s, connect=connect_s)
        client = quoting_webdav_client(url, {**options, "timeout": timeout, "retry": False})
        return WebdavFileSystem(url, client=client, skip_instance_cache=True)

    key = ("webdav", url_key(url))
    return _prefixed(FsspecBackend(None, "", WEBDAV, connect=connect, location_key=key), config)


def gcs_from_config(config: dict[str, Any]) -> Backend:
    """Build a GCS mount: ``bucket``, ``token``, ``project``, ``endpoint_url`` (an emulator),
    ``base_path`` (key prefix, via Prefixed), ``connect_timeout`` (10 s) and ``read_timeout``
    (60 s: aiohttp's socket timeouts of every request). With an ``endpoint_url`` the classic
    gcsfs class is used, never the experimental one that probes bucket types over gRPC.
    gcsfs's own retry loop (6 tries, up to 31 s of backoff per request) is turned off: the
    mount's ``retries`` is the only one, so a hung endpoint fails in seconds. The backend is a
    :class:`~storied.backends._cloud_tiers.GcsBackend` (storage classes)."""
    import gcsfs

    cls = gcsfs.core.GCSFileSystem if config.get("endpoint_url") else gcsfs.GCSFileSystem
    options = {k: config[k] for k in ("token", "project", "endpoint_url") if config.get(k)}
    bucket = str(config["bucket"])

    connect_s, read_s = timeouts(config)

    def connect() -> Any:  # finding default credentials may ask a metadata server
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_s, sock_read=read_s)
        # gcsfs passes its requests_timeout to every request (None would mean no limit at all)
        fs = cls(skip_instance_cache=True, use_listings_cache=False, requests_timeout=timeout,
                 session_kwargs={"timeout": timeout}, **options)
        _single_attempt(fs, ("_request", "_get_file_request", "_get_file_concurrent"))
        return fs

    key = ("gcs", url_key(config.get("endpoint_url")), bucket)
    return _prefixed(GcsBackend(None, bucket, GCS, connect=connect, location_key=key), config)


def _single_attempt(fs: Any, methods: tuple[str, ...]) -> None:
    """Replace methods that a library decorated with its own retry loop by the undecorated
    ones, on this instance only (storied's Retrying retries whole operations instead)."""
    import types

    for name in methods:
        inner = getattr(getattr(type(fs), name, None), "__wrapped__", None)
        if inner is not None:
            setattr(fs, name, types.MethodType(inner, fs))


def _azure_limits(client: Any, connect_s: float, read_s: float) -> None:
    """The Azure client's default timeouts and retry policy, as the mount says (the client
    and the container clients made from it share these pipeline objects)."""
    pipeline = getattr(client, "_pipeline", None)
    config = getattr(getattr(pipeline, "_transport", None), "connection_config", None)
    if config is not None:
        config.timeout, config.read_timeout = connect_s, read_s
    for policy in getattr(pipeline, "_impl_policies", ()):
        if hasattr(policy, "total_retries"):
            policy.total_retries = 0


def azure_from_config(config: dict[str, Any]) -> Backend:
    """Build an Azure Blob mount: ``container``, ``account_name``, ``account_key``,
    ``sas_token``, ``connection_string``, ``base_path`` (blob prefix, via Prefixed),
    ``connect_timeout`` (10 s) and ``read_timeout`` (60 s), given to the Azure SDK's
    transport as ``connection_timeout``/``read_timeout`` (adlfs passes them to a few calls
    only, so they are set on the client's transport too). The SDK's own retry policy (3
    retries after 15-45 s) is turned off: the mount's ``retries`` is the only one. The backend
    is a :class:`~storied.backends._cloud_tiers.AzureBackend` (access tiers)."""
    import adlfs

    keys = ("account_name", "account_key", "sas_token", "connection_string")
    options = {k: config[k] for k in keys if config.get(k)}
    container = str(config["container"])

    connect_s, read_s = timeouts(config)

    def connect() -> Any:
        fs = adlfs.AzureBlobFileSystem(
            skip_instance_cache=True, use_listings_cache=False, blocksize=8 * CHUNK,
            connection_timeout=connect_s, read_timeout=read_s, **options
        )
        _azure_limits(fs.service_client, connect_s, read_s)
        return fs

    account = options.get("account_name") or options.get("connection_string")
    key = ("azure", account, container)
    backend = AzureBackend(None, container, AZURE, connect=connect, location_key=key)
    return _prefixed(backend, config)


def http_from_config(config: dict[str, Any]) -> Backend:
    """Build a read-only HTTP mount: ``base_path`` is the base URL; ``headers`` are sent with
    every request; ``connect_timeout`` (10 s) and ``read_timeout`` (60 s) are aiohttp's socket
    timeouts (no total limit: a large file streams as long as bytes keep coming)."""
    from fsspec.implementations.http import HTTPFileSystem

    client_kwargs = {"headers": dict(config["headers"])} if config.get("headers") else {}
    base = str(config["base_path"]).rstrip("/") + "/"

    connect_s, read_s = timeouts(config)

    def connect() -> Any:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_s, sock_read=read_s)
        return HTTPFileSystem(
            skip_instance_cache=True, use_listings_cache=False, encoded=True,
            client_kwargs={**client_kwargs, "timeout": timeout},
        )

    return FsspecBackend(None, base, HTTP, connect=connect, location_key=("http", url_key(base)))
