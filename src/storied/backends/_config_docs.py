"""The documentation of every mount key, and the generator of ``docs/CONFIG.md``.

Types, required keys, aliases, value kinds, extras and retry defaults come from
:mod:`storied.backends.registry`; this module adds each key's default and meaning.
``tests/test_cfg_docs.py`` fails when a key of the registry has no entry here or when
``docs/CONFIG.md`` is not what :func:`render` writes. Regenerate with
``python -m storied.backends._config_docs > docs/CONFIG.md``.
"""

from __future__ import annotations

from collections.abc import Mapping

from storied.backends import registry
from storied.backends._config_kinds import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT

__all__ = ["COMMON_DOCS", "TYPE_DOCS", "render"]

_C, _R = f"{DEFAULT_CONNECT_TIMEOUT:g}", f"{DEFAULT_READ_TIMEOUT:g}"
_CONNECT = (_C, "Seconds to open the connection (TCP connect, TLS, the protocol's handshake "
                "and login). A hung endpoint fails within it.")
_READ = (_R, "Seconds of each wait for the server's answer or the next bytes of a body (no "
             "total limit: a large file streams as long as bytes keep coming).")
_LEGACY = ("-", "genro-storage's single timeout: sets `connect_timeout` and `read_timeout` "
                "where they are not given.")
_PREFIX = ("`\"\"`", "Key prefix (folder) inside the bucket/container that is the mount's root.")

#: Keys every mount accepts: key -> (default, meaning).
COMMON_DOCS: Mapping[str, tuple[str, str]] = {
    "name": ("required", "The mount's name (`name:path` addresses its files)."),
    "type": ("required", "The mount type (one of the sections below); `protocol` is a synonym."),
    "protocol": ("-", "genro-storage's spelling of `type` (give one of them)."),
    "permissions": ("`delete`", "`readonly`, `readwrite` (no deletes or moves) or `delete`."),
    "readonly": ("`false`", "`true` is `permissions: readonly`."),
    "retries": ("per type (below)", "Attempts per operation for transient errors (timeouts, "
                "dropped connections, throttling, 5xx), with exponential backoff and jitter; a "
                "timeout is retried at most once. 1 turns retries off. At most 100."),
    "versioning": ("`false`", "Keep every version of every file (history under `.storied/`)."),
    "history": ("-", "`'mount:prefix'`: keep this mount's history on another mount."),
    "backend": ("-", "A ready `storied.backends.base.Backend` instance instead of a `type`."),
    "default_encrypted": ("`false`", "Encrypt new files: `true` (the default key domain) or a "
                          "domain name."),
    "webhooks": ("-", "A list of webhook mappings (`url`, `events`, `secret`, `timeout`)."),
    "compress": ("-", "Glob patterns (`'*.json'`) of files stored compressed."),
    "compression": ("`gzip`", "Codec of `compress`: `gzip` or `zstd` (a `tar` mount's own "
                    "`compression` is its archive's)."),
}

#: Per type: key -> (default, meaning).
TYPE_DOCS: Mapping[str, Mapping[str, tuple[str, str]]] = {
    "local": {
        "base_path": ("required", "Directory of the mount (a path, or a callable returning one)."),
        "base_url": ("-", "Public URL prefix: `url()` answers `base_url + '/' + path`."),
        "fsync": ("`false`", "Flush file contents to disk before the rename (durable across "
                  "power loss; slower)."),
    },
    "memory": {
        "base_path": ("`\"\"`", "Folder inside the store that is the mount's root."),
        "store": ("the mount's name", "Name of the in-process store: mounts naming the same "
                  "store see the same files."),
    },
    "s3": {
        "bucket": ("required", "Bucket name."),
        "base_path": _PREFIX,
        "region": ("the AWS config chain", "Region name."),
        "key": ("the AWS config chain", "Access key id."),
        "secret": ("the AWS config chain", "Secret access key."),
        "token": ("-", "Session token of temporary credentials."),
        "endpoint_url": ("AWS", "Endpoint of an S3-compatible service (MinIO, Ceph, moto)."),
        "anon": ("`false`", "Unsigned requests (public buckets)."),
        "client_kwargs": ("-", "Extra keyword arguments of the boto3 client."),
        "multipart_threshold": ("8 MiB", "Objects at least this large are multipart uploads."),
        "multipart_chunksize": ("the threshold (>= 5 MiB)", "Bytes per multipart part."),
        "max_concurrency": ("4", "Parts or ranged GETs in flight at once."),
        "version_aware": ("probed", "genro-storage's key; storied probes the bucket's "
                          "versioning itself."),
        "profile": ("-", "A profile of the shared AWS config files."),
        "sse": ("-", "Server-side encryption of new objects: `AES256` or `aws:kms`."),
        "sse_kms_key_id": ("-", "KMS key of `sse: aws:kms` (default: the account's key)."),
        "storage_class": ("`STANDARD`", "Storage class of new objects (`STANDARD_IA`, "
                          "`GLACIER`...)."),
        "connect_timeout": ("5", _CONNECT[1]),
        "read_timeout": ("60", _READ[1]),
    },
    "gcs": {
        "bucket": ("required", "Bucket name."),
        "base_path": _PREFIX,
        "token": ("google default credentials", "gcsfs `token`: `anon`, `google_default`, a "
                  "service-account file, or its mapping."),
        "project": ("-", "Project id."),
        "endpoint_url": ("Google", "Endpoint of an emulator (fake-gcs-server)."),
        "connect_timeout": _CONNECT,
        "read_timeout": _READ,
    },
    "azure": {
        "container": ("required", "Container name."),
        "account_name": ("required unless `connection_string`", "Storage account."),
        "base_path": _PREFIX,
        "account_key": ("-", "Account key."),
        "sas_token": ("-", "Shared access signature."),
        "connection_string": ("-", "A full connection string (Azurite...)."),
        "connect_timeout": _CONNECT,
        "read_timeout": _READ,
    },
    "sftp": {
        "host": ("required", "Server name or address."),
        "username": ("required", "Login name."),
        "base_path": ("`/`", "Remote directory: absolute, or relative to the login directory."),
        "password": ("-", "Password (without it and `key_filename`: the SSH agent and "
                     "~/.ssh keys)."),
        "port": ("22", "TCP port."),
        "key_filename": ("-", "Private key file, or a list of them (must exist)."),
        "passphrase": ("-", "Passphrase of the key."),
        "timeout": _LEGACY,
        "known_hosts": ("-", "known_hosts file the server key must be in (without it any key "
                        "is accepted on first sight)."),
        "connect_timeout": _CONNECT,
        "read_timeout": _READ,
    },
    "webdav": {
        "url": ("required", "Server URL (`base_url` is an alias)."),
        "base_path": ("`\"\"`", "Folder on the server that is the mount's root."),
        "username": ("-", "Basic-auth user."),
        "password": ("-", "Basic-auth password."),
        "token": ("-", "Bearer token."),
        "cert": ("-", "Client certificate: a path or a [certificate, key] pair."),
        "verify_ssl": ("`true`", "`false`, or the path of a CA bundle."),
        "connect_timeout": _CONNECT,
        "read_timeout": _READ,
    },
    "http": {
        "base_path": ("required", "Base URL (`url`/`base_url` are aliases). Read-only."),
        "headers": ("-", "Headers sent with every request."),
        "connect_timeout": _CONNECT,
        "read_timeout": _READ,
    },
    "zip": {
        "file": ("required", "The archive's path."),
        "base_path": ("`\"\"`", "Folder inside the archive."),
        "mode": ("`r`", "`r` (read-only), `w` (new archive) or `a` (append)."),
        "autoflush": ("`false`", "Rewrite the archive after every change (writable modes)."),
    },
    "tar": {
        "file": ("required", "The archive's path (read-only)."),
        "base_path": ("`\"\"`", "Folder inside the archive."),
        "compression": ("from the name", "`gz`, `bz2`, `xz` or `none`."),
    },
    "smb": {
        "host": ("required", "Server name or address."),
        "share": ("required", "Share name."),
        "base_path": ("`\"\"`", "Folder inside the share (`path` is an alias)."),
        "username": ("-", "User name."),
        "password": ("-", "Password."),
        "domain": ("-", "Domain (sent as `DOMAIN\\user`)."),
        "port": ("445", "TCP port."),
        "timeout": _LEGACY,
        "connect_timeout": (_C, "Seconds for the TCP connect and the SMB negotiation."),
        "read_timeout": (_R, "Seconds of silence on an open connection after which it is closed "
                         "and the waiting operation fails (a keep-alive echo is sent after "
                         "half of it)."),
    },
    "git": {
        "base_path": ("required", "A local git repository (read-only)."),
        "ref": ("`HEAD`", "Branch, tag, commit or rev-parse expression."),
        "fo": ("-", "genro-storage's name of the repository path."),
    },
    "github": {
        "org": ("required", "Owner (user or organisation)."),
        "repo": ("required", "Repository name (read-only)."),
        "sha": ("the default branch", "Branch, tag or commit."),
        "username": ("-", "With `token`: basic auth."),
        "token": ("-", "Personal access token (alone: a bearer token)."),
        "base_path": ("`\"\"`", "Folder of the repository."),
        "api_url": ("`https://api.github.com`", "REST API root (GitHub Enterprise: "
                    "`https://host/api/v3`)."),
        "timeout": _LEGACY,
        "connect_timeout": _CONNECT,
        "read_timeout": _READ,
    },
    "libarchive": {
        "file": ("required", "Any archive libarchive reads (7z, rar, iso, cpio...; read-only)."),
        "base_path": ("`\"\"`", "Folder inside the archive."),
    },
    "base64": {},
    "mock": {
        "latency_ms": ("0", "Added latency per operation."),
        "jitter_ms": ("0", "Random extra latency up to this."),
        "failure_rate": ("0", "Probability that an operation fails with a transient error."),
        "seed": ("-", "Seed of the random failures."),
        "faults": ("transient", "Fault kinds to inject (a list, or kind -> weight)."),
        "wraps": ("a memory store", "The config of the mount it wraps."),
    },
}

_INTRO = """# Mount configuration

Every key of every mount type: its value type, its default and what it does. This page is
generated from the registry (`storied.backends.registry`) by
`python -m storied.backends._config_docs`; a test fails when a key is missing here.

A mount is a mapping (`storage.configure([...])`, or a YAML list in `storied.yaml`). A key whose
value is empty (`None`) counts as absent. Unknown keys, missing required keys and values of the
wrong type are `StorageConfigError`s naming the mount and the key.

**Timeouts.** Every network type takes `connect_timeout` (default {c} s) and `read_timeout`
(default {r} s; S3: 5 s and 60 s). genro-storage's single `timeout` (sftp, smb, github) sets
both where the specific key is absent. With `retries`, a hung endpoint fails in about two
timeouts: a timeout is retried at most once.

**Missing extras.** A mount whose optional dependency is not installed is still accepted by
`configure()` (its config fully checked); its first operation raises `MissingDependencyError`
(also a `ModuleNotFoundError`) saying `pip install 'storied[<extra>]'`, and the other mounts
keep working.

**Logging.** Requests are logged at DEBUG on `storied.backends.<type>` (S3: `storied.s3`),
retries at INFO and give-ups at WARNING; no record holds a credential. The library installs
no handler (`storied -v` shows retries, `-vv` requests).
"""


def _kind(type_name: str, key: str) -> str:
    spec = registry.TYPES.get(type_name)
    kind = spec.kinds.get(key) if spec is not None else registry.COMMON_SCHEMA.get(key)
    return (kind or registry.STR).label


def _row(key: str, kind: str, default: str, meaning: str, aliases: list[str]) -> str:
    alias = f" (alias: {', '.join(f'`{a}`' for a in aliases)})" if aliases else ""
    return f"| `{key}`{alias} | {kind} | {default} | {meaning} |"


def render() -> str:
    """The text of ``docs/CONFIG.md``."""
    lines = [_INTRO.format(c=_C, r=_R), "## Keys of every mount", "",
             "| key | value | default | meaning |", "|---|---|---|---|"]
    for key in registry.COMMON_SCHEMA:
        default, meaning = COMMON_DOCS[key]
        lines.append(_row(key, registry.COMMON_SCHEMA[key].label, default, meaning, []))
    seen: set[int] = set()
    for name, spec in registry.TYPES.items():
        if id(spec) in seen:
            continue
        seen.add(id(spec))
        others = [n for n, s in registry.TYPES.items() if s is spec and n != name]
        title = f"`{name}`" + "".join(f" / `{o}`" for o in others)
        extra = (f"Install: `pip install 'storied[{spec.extra}]'`. " if spec.extra
                 else "No extra to install. ")
        lines += ["", f"## {title}", "", f"{extra}Default `retries`: {spec.retries}.", ""]
        keys = [*spec.required, *spec.optional]
        if not keys:
            lines.append("No keys of its own.")
            continue
        lines += ["| key | value | default | meaning |", "|---|---|---|---|"]
        docs = TYPE_DOCS[name]
        for key in keys:
            default, meaning = docs[key]
            if key in spec.required:
                default = "required"
            aliases = [a for a, std in spec.aliases.items() if std == key]
            lines.append(_row(key, _kind(name, key), default, meaning, aliases))
    return "\n".join(lines) + "\n"


def undocumented() -> list[str]:
    """``type.key`` of every registry key without an entry here (empty when complete)."""
    missing = [f"common.{k}" for k in registry.COMMON_SCHEMA if k not in COMMON_DOCS]
    for name, spec in registry.TYPES.items():
        docs = TYPE_DOCS.get(name) or TYPE_DOCS.get(spec.name, {})
        missing += [f"{name}.{k}" for k in (*spec.required, *spec.optional) if k not in docs]
    return missing


if __name__ == "__main__":
    print(render(), end="")
