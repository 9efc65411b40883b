"""The cassette codec: values to JSON and back, bodies by content hash, and the redaction
that keeps credentials out of a cassette (see docs/CASSETTE.md)."""

from __future__ import annotations

import base64
import builtins
import datetime
import hashlib
import importlib
import io
import os
import pkgutil
import re
import threading
import time
import types
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from storied.capabilities import Capabilities
from storied.errors import StorageIOError
from storied.info import Info, ObjectVersion

__all__ = ["INLINE_LIMIT", "REDACTED", "VOLATILE_PACKAGES", "BodyStore", "Redactor",
           "VolatileInputs", "arg", "describe", "error_of", "secrets_of"]

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
    """Removes the given secrets (and signed-URL parameters, URL passwords) from what a
    cassette records."""

    secrets: list[str]

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

    folder: Path
    redact: Redactor

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


# ------------------------------------------------------------------------------- volatile inputs
#: Packages whose clock, random ids and uuids a cassette session records and replays: the
#: code above the cassette layer (history engines, locks, tags, journal, retention, dedup).
VOLATILE_PACKAGES = ("storied.core", "storied.versioning", "storied.events", "storied.policies",
                     "storied.optimize")
_REAL_DATETIME = datetime.datetime


class _Shim:
    """A stand-in for a module in one storied module's globals: every attribute is the real
    module's, except the volatile functions, which go through ``inputs``."""

    def __init__(self, real: Any, overrides: dict[str, Any]) -> None:
        self._real, self._overrides = real, overrides

    def __getattr__(self, name: str) -> Any:
        found = self._overrides.get(name)
        return found if found is not None else getattr(self._real, name)


class _DatetimeMeta(type):
    """``datetime`` in a patched module: instances, construction and class methods are the
    real class's; only ``now`` is recorded/replayed."""

    inputs: VolatileInputs

    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, _REAL_DATETIME)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, _REAL_DATETIME)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return _REAL_DATETIME(*args, **kwargs)

    def __getattr__(cls, name: str) -> Any:
        return getattr(_REAL_DATETIME, name)


_PLAN: list[tuple[Any, str, Any]] = []  # (module, global name, real value) to stand in for
_PLAN_SIZE = [-1]  # len(sys.modules) when _PLAN was made
_IMPORTED: list[bool] = []


def _import_volatile_packages() -> None:
    """Import every module of :data:`VOLATILE_PACKAGES` once (an engine a session builds
    later must find its stand-ins in place)."""
    if _IMPORTED:
        return
    for package in VOLATILE_PACKAGES:
        found = importlib.import_module(package)
        for info in pkgutil.walk_packages(found.__path__, package + "."):
            try:
                importlib.import_module(info.name)
            except ImportError:  # an optional dependency: that module is not in use
                continue
    _IMPORTED.append(True)


class VolatileInputs:
    """The non-deterministic inputs of storied's engines (``time.time``/``time_ns``,
    ``os.urandom``, ``uuid.uuid4``, ``datetime.now``), recorded while recording and given
    back, in the same order per function, while replaying: version ids, record names, lease
    and lock nonces and journal ids come out as they were recorded, so the storage calls that
    name them match (see docs/CASSETTE.md, "Volatile inputs").

    While installed, the modules of :data:`VOLATILE_PACKAGES` (every manager of the process)
    see these functions through the session; a replay that runs out of recorded values gets
    live ones again.
    """

    used: bool

    def __init__(self, recorded: Mapping[str, Any] | None, replaying: bool) -> None:
        self.replaying = replaying
        self.values: dict[str, list[Any]] = {
            k: list(v) for k, v in (recorded or {}).items() if isinstance(v, list)}
        self._next: dict[str, int] = {}
        self._lock = threading.Lock()
        self._undo: list[tuple[Any, str, Any]] = []
        self.used = False

    def take(self, source: str, live: Any, check: Any = None) -> Any:
        """The next recorded value of ``source`` (replay), or ``live()`` recorded."""
        with self._lock:
            if self.replaying:
                queue, index = self.values.get(source, []), self._next.get(source, 0)
                if index < len(queue) and (check is None or check(queue[index])):
                    self._next[source] = index + 1
                    return queue[index]
                return live()
            value = live()
            self.values.setdefault(source, []).append(value)
            self.used = True
            return value

    def dump(self) -> dict[str, list[Any]]:
        return self.values

    # ---------------------------------------------------------------- the stand-ins
    def _time(self) -> float:
        return float(self.take("time", time.time))

    def _time_ns(self) -> int:
        return int(self.take("time_ns", time.time_ns))

    def _urandom(self, size: int) -> bytes:
        hexed = self.take("urandom", lambda: os.urandom(size).hex(),
                          check=lambda v: isinstance(v, str) and len(v) == 2 * size)
        return bytes.fromhex(hexed)

    def _uuid4(self) -> uuid.UUID:
        return uuid.UUID(hex=self.take("uuid4", lambda: uuid.uuid4().hex))

    def _now(self, tz: Any = None) -> datetime.datetime:
        stamp = self.take("now", lambda: _REAL_DATETIME.now(datetime.UTC).timestamp())
        return _REAL_DATETIME.fromtimestamp(float(stamp), tz)

    def install(self) -> None:
        """Put the stand-ins into every module of :data:`VOLATILE_PACKAGES` (scanned once per
        process, then again only for modules loaded since)."""
        import sys

        _import_volatile_packages()
        shims: dict[Any, Any] = {
            time: _Shim(time, {"time": self._time, "time_ns": self._time_ns}),
            os: _Shim(os, {"urandom": self._urandom}),
            uuid: _Shim(uuid, {"uuid4": self._uuid4}),
            _REAL_DATETIME: _DatetimeMeta("datetime", (), {"now": staticmethod(self._now)}),
        }
        if _PLAN_SIZE[0] != len(sys.modules):  # modules were loaded since the last scan
            _PLAN[:] = [
                (module, attr, value)
                for name, module in list(sys.modules.items())
                if module is not None and name.startswith(VOLATILE_PACKAGES)
                for attr, value in list(vars(module).items())
                if value is _REAL_DATETIME or (isinstance(value, types.ModuleType)
                                               and value in (time, os, uuid))]
            _PLAN_SIZE[0] = len(sys.modules)
        for module, attr, value in _PLAN:
            if vars(module).get(attr) is value:
                self._undo.append((module, attr, value))
                setattr(module, attr, shims[value])
        records = sys.modules.get("storied.versioning.records")
        if records is not None and hasattr(records, "_last_ts"):
            # ids are max(clock, last + 1): the sequence restarts where the recording's did
            self._undo.append((records, "_last_ts", getattr(records, "_last_ts")))  # noqa: B009
            setattr(records, "_last_ts", 0)  # noqa: B010

    def uninstall(self) -> None:
        """Put the real functions back (and the id clock past every id given out)."""
        for module, attr, value in reversed(self._undo):
            if attr == "_last_ts":
                value = max(value, getattr(module, attr, 0))
            setattr(module, attr, value)
        self._undo = []
