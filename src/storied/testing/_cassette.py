"""The cassette codec: values to JSON and back, bodies by content hash, and the redaction
that keeps credentials out of a cassette (see docs/CASSETTE.md)."""

from __future__ import annotations

import base64
import builtins
import hashlib
import importlib
import io
import os
import re
import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from storied.capabilities import Capabilities
from storied.errors import StorageIOError
from storied.info import Info, ObjectVersion

__all__ = ["INLINE_LIMIT", "REDACTED", "BodyStore", "Redactor", "arg", "describe", "error_of",
           "secrets_of"]

#: Bodies up to this many bytes are stored inline (base64); larger ones in the bodies folder.
INLINE_LIMIT = 1024
_SECRET_KEY = re.compile(
    r"(key|secret|token|password|passwd|passphrase|credential|connection_string|sas|auth)", re.I
)
_SIGNED_PARAM = re.compile(
    r"((?:X-Amz-(?:Credential|Signature|Security-Token)|X-Goog-(?:Credential|Signature)|"
    r"Signature|AWSAccessKeyId|GoogleAccessId|sig|skoid|sktid|token|access_token)=)[^&#\s\"']*",
    re.I,
)
_USERINFO = re.compile(r"(://[^/:@\s\"']+:)[^@/\s\"']+@")
REDACTED = "<redacted>"


# ------------------------------------------------------------------------------- redaction
def secrets_of(config: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> set[str]:
    """The credential values in a mount ``config`` (nested mappings and lists included: a
    mock's ``wraps``, S3 ``client_kwargs``), URL passwords, and the values of credential-named
    variables of ``environ`` (default ``os.environ``). Values shorter than 4 characters are
    left out (they would redact ordinary text)."""
    found: set[str] = set()

    def visit(key: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                visit(str(k), v)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(key, item)
        elif isinstance(value, str):
            if _SECRET_KEY.search(key) and not key.endswith(("_path", "_file", "filename")):
                found.add(value)
            password = urllib.parse.urlsplit(value).password if "@" in value else None
            if password:
                found.add(password)

    visit("", config)
    env = os.environ if environ is None else environ
    for name, value in env.items():
        if _SECRET_KEY.search(name) and "PATH" not in name.upper():
            found.add(value)
    return {s for s in found if len(s) >= 4}


class Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted(set(secrets), key=len, reverse=True)
        self._raw = [s.encode() for s in self.secrets]

    def text(self, value: str, urls: bool = True) -> str:
        """``value`` without the secrets (and, with ``urls``, without signed-URL parameters
        and URL passwords; arguments, which are paths, skip that)."""
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        if not urls or ("=" not in value and "@" not in value):
            return value
        return _USERINFO.sub(r"\1" + REDACTED + "@", _SIGNED_PARAM.sub(r"\1" + REDACTED, value))

    def data(self, value: bytes) -> bytes:
        for secret in self._raw:
            if secret in value:
                value = value.replace(secret, REDACTED.encode())
        return value


# ------------------------------------------------------------------------------- the codec
def _digest(data: bytes) -> dict[str, Any]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def arg(value: Any, redact: Redactor) -> Any:
    """An argument as it goes into the match key (bodies by digest)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _digest(redact.data(bytes(value)))  # no hash of a secret (dictionary attacks)
    if isinstance(value, str):
        return redact.text(str(value), urls=False)
    if isinstance(value, (list, tuple)):
        return [arg(v, redact) for v in value]
    if isinstance(value, Mapping):
        return {str(k): arg(v, redact) for k, v in sorted(value.items())}
    return value


class BodyStore:
    """Bodies of one cassette: inline when small, else files named by hash beside it."""

    def __init__(self, folder: Path, redact: Redactor) -> None:
        self.folder, self.redact = folder, redact

    def put(self, data: bytes) -> dict[str, Any]:
        data = self.redact.data(data)
        ref = _digest(data)
        if len(data) <= INLINE_LIMIT:
            ref["b64"] = base64.b64encode(data).decode("ascii")
            return ref
        target = self.folder / ref["sha256"]
        if not target.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        ref["file"] = ref["sha256"]
        return ref

    def get(self, ref: Mapping[str, Any]) -> bytes:
        if "b64" in ref:
            return base64.b64decode(ref["b64"])
        name = str(ref["file"])
        if not re.fullmatch(r"[0-9a-f]{64}", name):
            raise StorageIOError(f"Cassette body name {name!r} is not a SHA-256")
        try:
            return (self.folder / name).read_bytes()
        except FileNotFoundError:
            raise StorageIOError(f"Cassette body {name} is missing from {self.folder}") from None

    def encode(self, value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, str):
            return self.redact.text(value)
        if isinstance(value, (bytes, bytearray, memoryview)):
            return {"t": "bytes", "v": self.put(bytes(value))}
        if isinstance(value, Info):
            return {"t": "info", "v": {k: self.encode(v) for k, v in asdict(value).items()}}
        if isinstance(value, ObjectVersion):
            return {"t": "version", "v": {k: self.encode(v) for k, v in asdict(value).items()}}
        if isinstance(value, Capabilities):
            return {"t": "caps", "v": asdict(value)}
        if isinstance(value, tuple):
            return {"t": "tuple", "v": [self.encode(v) for v in value]}
        if isinstance(value, list):
            return [self.encode(v) for v in value]
        if isinstance(value, Mapping):
            return {"t": "dict", "v": {str(k): self.encode(v) for k, v in value.items()}}
        return {"t": "repr", "v": self.redact.text(repr(value))}

    def decode(self, value: Any) -> Any:
        """The Python value of an encoded one (``KeyError``/``TypeError`` when malformed)."""
        if isinstance(value, list):
            return [self.decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        tag, inner = value.get("t"), value["v"]  # a tagged value always has "v"
        if tag == "bytes":
            return self.get(inner)
        if tag == "stream":
            return io.BytesIO(self.get(inner))
        if tag == "info":
            return Info(**{k: self.decode(v) for k, v in inner.items()})
        if tag == "version":
            return ObjectVersion(**{k: self.decode(v) for k, v in inner.items()})
        if tag == "caps":
            known = {f.name for f in fields(Capabilities)}
            return Capabilities(**{k: v for k, v in inner.items() if k in known})
        if tag == "tuple":
            return tuple(self.decode(v) for v in inner)
        if tag == "dict":
            return {k: self.decode(v) for k, v in inner.items()}
        if tag == "repr":
            return str(inner)
        raise StorageIOError(f"Unknown value tag {tag!r} in cassette")


def error_of(record: Mapping[str, Any]) -> BaseException:
    """The exception a recorded error stands for: storied's classes (and builtin exceptions)
    by name; anything else is a :class:`StorageIOError` carrying the message."""
    module, _, name = str(record.get("class", "")).rpartition(".")
    message = str(record.get("message", ""))
    cls: Any = None
    if module == "builtins":
        cls = getattr(builtins, name, None)
    elif module == "storied" or module.startswith("storied."):
        try:
            cls = getattr(importlib.import_module(module), name, None)
        except ImportError:
            cls = None
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(message)
        except TypeError:
            pass
    return StorageIOError(f"{record.get('class')}: {message}")


def describe(mount: str, op: str, args: Mapping[str, Any]) -> str:
    shown = ", ".join(f"{k}={v!r}" for k, v in args.items())
    return f"{mount}: {op}({shown})"
