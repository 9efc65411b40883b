"""URL-style node addresses without a configured mount, as fsspec, upath and cloudpathlib
users expect: ``storage.node('s3://bucket/key')``.

=================  ==========================================================================
``s3://B/key``     an S3 mount of bucket ``B`` named ``s3.B``; credentials, region and
                   endpoint come from boto3's usual chain (environment, ``~/.aws``,
                   ``AWS_ENDPOINT_URL``, instance roles)
``gs://B/key``     a GCS mount of bucket ``B`` named ``gs.B`` (gcsfs's credential chain)
``az://C/key``     an Azure Blob mount of container ``C`` named ``az.C`` (adlfs: account from
                   ``AZURE_STORAGE_ACCOUNT_NAME`` / ``AZURE_STORAGE_CONNECTION_STRING``)
``file:///abs``    a local mount of ``/`` named ``file`` (every local path, same confinement)
``memory://x/y``   the memory store ``memory`` (mount ``memory``), path ``x/y``
=================  ==========================================================================

Implicit mounts are made once per manager and reused; they keep no history (no
``versioning``) and follow the same permissions as a configured mount of that type. A
configured mount of the same name is never replaced: the URL then raises
:class:`~storied.errors.StorageConfigError`. Configured mounts stay the primary way.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from storied.errors import InvalidPathError, StorageConfigError

if TYPE_CHECKING:
    from storied.core.manager import StorageManager

__all__ = ["is_url", "mount_for_url"]

_URL = re.compile(r"^(s3|gs|gcs|az|abfs|file|memory)://(.*)$", re.DOTALL)
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,254}$")


def is_url(text: str) -> bool:
    """True for the URL forms above (``scheme://...``)."""
    return bool(_URL.match(text))


def _implicit(manager: StorageManager, name: str, config: dict[str, Any]) -> None:
    made = manager._implicit_mounts
    if manager.has_mount(name):
        if name not in made:
            raise StorageConfigError(
                f"Mount {name!r} is configured: use '{name}:path' (a URL would make an implicit "
                "mount of the same name)")
        return
    manager.add_mount({"name": name, **config})
    made.add(name)


def _azure_account() -> dict[str, str]:
    """adlfs's account settings from the environment (the Azure CLI/SDK variables)."""
    env = os.environ
    if env.get("AZURE_STORAGE_CONNECTION_STRING"):
        return {"connection_string": env["AZURE_STORAGE_CONNECTION_STRING"]}
    found = {"account_name": env.get("AZURE_STORAGE_ACCOUNT_NAME", ""),
             "account_key": env.get("AZURE_STORAGE_ACCOUNT_KEY", ""),
             "sas_token": env.get("AZURE_STORAGE_SAS_TOKEN", "")}
    return {k: v for k, v in found.items() if v}


def mount_for_url(manager: StorageManager, url: str) -> str:
    """``'mount:path'`` for ``url``, making its implicit mount on first use.

    Raises:
        InvalidPathError: Not a supported URL, or a bucket/container name that cannot be one.
        StorageConfigError: A configured mount already has the implicit mount's name.
    """
    match = _URL.match(url)
    if match is None:
        raise InvalidPathError(f"Not a storage URL: {url!r}")
    scheme, rest = match.group(1), match.group(2)
    if scheme == "file":
        if not rest.startswith("/"):
            raise InvalidPathError(f"file:// URLs are absolute (file:///path): {url!r}")
        _implicit(manager, "file", {"type": "local", "base_path": "/"})
        parent, leaf = os.path.split(os.path.abspath(rest))
        real = os.path.join(os.path.realpath(parent), leaf) if leaf else os.path.realpath(parent)
        return f"file:{real.lstrip('/')}"
    if scheme == "memory":
        _implicit(manager, "memory", {"type": "memory", "store": "memory"})
        return f"memory:{rest.lstrip('/')}"
    bucket, _, key = rest.partition("/")
    if not _BUCKET.match(bucket):
        raise InvalidPathError(f"{url!r}: {bucket!r} is not a bucket or container name")
    kind, prefix = {"s3": ("s3", "s3"), "gs": ("gcs", "gs"), "gcs": ("gcs", "gs"),
                    "az": ("azure", "az"), "abfs": ("azure", "az")}[scheme]
    config: dict[str, Any] = {"type": kind, "bucket": bucket}
    if kind == "azure":
        config = {"type": kind, "container": bucket, **_azure_account()}
    name = f"{prefix}.{bucket}"
    _implicit(manager, name, config)
    return f"{name}:{key}"
