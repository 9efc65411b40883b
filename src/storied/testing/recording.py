"""Record/replay at storied's backend API: one cassette format for every backend.

``storage.record_mode(path)`` puts a :class:`CassetteBackend` between each mount's raw backend
(below permissions, above retries) and everything above it, and writes every call (operation,
path, arguments, result or error) to one JSON cassette; ``storage.replay_mode(path)`` answers
the same calls from the cassette with no storage at all. The format is in docs/CASSETTE.md.

Matching: a call is its mount, operation and arguments (a write's data by SHA-256 and size);
each recorded answer is played once, in recorded order, so ``info('a')`` before and after a
write gets both answers. A call with no unplayed answer raises :class:`ReplayMismatchError`
(``mode='none'``) or is passed on and recorded (``mode='new_episodes'``).

Credentials never reach a cassette: mount configs are not written, and every string and body
is scrubbed of the secret values of the mounts' configs (keys, secrets, tokens, passwords,
connection strings, URL passwords), of credential-looking environment variables, and of
signed-URL query parameters (``X-Amz-Credential``, ``X-Amz-Signature``, SAS ``sig``...).
"""

from __future__ import annotations

import builtins
import difflib
import io
import json
import os
import threading
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from storied import paths
from storied.backends.base import Backend, WrappedBackend
from storied.capabilities import Capabilities
from storied.errors import InvalidArgumentError, StorageError, StorageIOError
from storied.info import Data, Info, ObjectVersion, WriteMode
from storied.testing._cassette import (
    INLINE_LIMIT,
    BodyStore,
    Redactor,
    VolatileInputs,
    arg,
    describe,
    error_of,
    secrets_of,
)

__all__ = [
    "CASSETTE_FORMAT",
    "INLINE_LIMIT",
    "STORIED_RECORD",
    "CassetteBackend",
    "CassetteSession",
    "ReplayMismatchError",
    "secrets_of",
]

#: The ``storied_cassette`` value of the format this module writes (2: with the recorded
#: volatile inputs); it reads format 1 too.
CASSETTE_FORMAT = 2
_READABLE = (1, 2)
_installed: list[VolatileInputs] = []  # the one session whose volatile inputs are in place
_installing = threading.RLock()  # re-entrant: a collected session releases from a finalizer


def _release(volatile: VolatileInputs) -> None:
    """Put the real clock and ids back if ``volatile`` is in place (a session stopped, or
    collected without being stopped: its manager was dropped)."""
    with _installing:
        if volatile in _installed:
            volatile.uninstall()
            _installed.remove(volatile)
_MODES = ("record", "none", "new_episodes")
#: What a write's ``data`` argument is in a cassette when the write is one of storied's own
#: records (below the reserved area): matched by path, not by content.
STORIED_RECORD = "<storied record: matched by path>"


class ReplayMismatchError(StorageError, LookupError):
    """A replayed call has no unplayed answer in the cassette.

    Attributes:
        call: The call, as ``mount: operation(arguments)``.
        closest: The most similar recorded call, or None when the cassette is empty.
    """

    call: str
    closest: str | None

    def __init__(self, message: str, call: str, closest: str | None) -> None:
        super().__init__(message)
        self.call, self.closest = call, closest


# ------------------------------------------------------------------------------- session
class CassetteSession:
    """One cassette in use by one manager: recording, replaying, or both (``new_episodes``).

    Made by ``storage.record_mode`` / ``storage.replay_mode``; a context manager whose exit
    (or :meth:`stop`) puts the mounts back and, when anything was recorded, writes the
    cassette (atomically: a crash leaves the previous file).
    """

    path: Path
    redact: Redactor
    store: BodyStore
    volatile: VolatileInputs

    def __init__(self, path: str | os.PathLike[str], mode: str, secrets: Iterable[str]) -> None:
        if mode not in _MODES:
            raise InvalidArgumentError(
                f"Cassette mode must be one of {', '.join(_MODES)}, not {mode!r}"
            )
        self.path = Path(path)
        self.mode = mode
        self.redact = Redactor(secrets)
        self.store = BodyStore(self.path.with_name(self.path.stem + ".bodies"), self.redact)
        self.mounts: dict[str, dict[str, Any]] = {}
        self.interactions: list[dict[str, Any]] = []
        self._lock = threading.RLock()
        self._queues: dict[str, list[int]] = {}  # match key -> unplayed interaction indexes
        self._decoded: dict[tuple[str, str], Any] = {}
        self._changed = False
        self._undo: list[Callable[[], None]] = []
        self._recorded_volatile: Mapping[str, Any] | None = None
        if mode != "record":
            self._load()
        self.volatile = VolatileInputs(self._recorded_volatile, replaying=mode != "record")
        with _installing:
            if not _installed:  # a second session at once runs without them (documented)
                self.volatile.install()
                _installed.append(self.volatile)
        weakref.finalize(self, _release, self.volatile)  # never left in place by a lost session

    def _load(self) -> None:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            if self.mode == "none":
                raise StorageIOError(f"No cassette at {self.path} to replay") from None
            return
        except (ValueError, UnicodeDecodeError) as exc:
            raise StorageIOError(f"Cassette {self.path} is not valid JSON: {exc}") from exc
        if not isinstance(document, dict) or document.get("storied_cassette") not in _READABLE:
            raise StorageIOError(
                f"{self.path} is not a storied cassette of format "
                f"{' or '.join(map(str, _READABLE))}"
            )
        volatile = document.get("volatile")
        self._recorded_volatile = volatile if isinstance(volatile, dict) else None
        mounts, items = document.get("mounts") or {}, document.get("interactions") or []
        if not isinstance(mounts, dict) or not isinstance(items, list):
            raise StorageIOError(f"Cassette {self.path}: 'mounts' or 'interactions' malformed")
        self.mounts = {str(k): v for k, v in mounts.items() if isinstance(v, dict)}
        for number, item in enumerate(items):
            ok = isinstance(item, dict) and isinstance(item.get("args"), dict)
            ok = ok and all(isinstance(item.get(k), str) for k in ("mount", "op"))
            ok = ok and (isinstance(item.get("error"), dict) or "result" in item)
            if not ok:
                raise StorageIOError(f"Cassette {self.path}: interaction {number} is malformed")
            self._index(item)
            self.interactions.append(item)

    def _index(self, item: Mapping[str, Any]) -> None:
        key = json.dumps([item["mount"], item["op"], item["args"]], sort_keys=True)
        self._queues.setdefault(key, []).append(len(self.interactions))

    # ---------------------------------------------------------------- calls
    def call(
        self, backend: CassetteBackend, op: str, args: dict[str, Any], thunk: Callable[[], Any]
    ) -> Any:
        """Answer one call: from the cassette when it has an unplayed answer, else by
        running ``thunk`` against the storage and recording it (record, new_episodes)."""
        mount = backend.mount
        args = {k: arg(v, self.redact) for k, v in args.items()}
        key = json.dumps([mount, op, args], sort_keys=True)
        if self.mode != "record":
            with self._lock:
                queue = self._queues.get(key)
                index = queue.pop(0) if queue else None
            if index is not None:
                return self._answer(self.interactions[index])
            if self.mode == "none":
                raise self._mismatch(mount, op, args)
        item: dict[str, Any] = {"mount": mount, "op": op, "args": args}
        try:
            result = thunk()
        except Exception as exc:
            cls = type(exc)
            item["error"] = {
                "class": f"{cls.__module__}.{cls.__qualname__}",
                "message": self.redact.text(str(exc)),
            }
            self._append(item)
            raise
        if isinstance(result, io.IOBase) or hasattr(result, "read"):
            with result:
                data = result.read()
            item["result"] = {"t": "stream", "v": self.store.put(data)}
            self._append(item)
            return io.BytesIO(data)
        item["result"] = self.store.encode(result)
        self._append(item)
        return result

    def _append(self, item: dict[str, Any]) -> None:
        with self._lock:
            self.interactions.append(item)  # not indexed: never replayed in this session
            self._changed = True

    def _answer(self, item: Mapping[str, Any]) -> Any:
        if "error" in item:
            raise error_of(item["error"])
        try:
            return self.store.decode(item.get("result"))
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise StorageIOError(
                f"Cassette {self.path.name}: the answer to {item['op']} is malformed: {exc}"
            ) from exc

    def _mismatch(self, mount: str, op: str, args: Mapping[str, Any]) -> ReplayMismatchError:
        call = describe(mount, op, args)
        recorded = [
            describe(i["mount"], i["op"], i["args"]) for i in self.interactions
        ]
        same = [r for r in recorded if r.startswith(f"{mount}: {op}(")] or recorded
        closest = difflib.get_close_matches(call, same, n=1, cutoff=0.0)
        nearest = closest[0] if closest else None
        played = self._queues.get(json.dumps([mount, op, dict(args)], sort_keys=True)) == []
        why = "every recorded answer to it was already played" if played else "not recorded"
        hint = f"; closest recorded call: {nearest}" if nearest else "; the cassette is empty"
        return ReplayMismatchError(
            f"Replay of {self.path.name}: {call} {why}{hint}", call, nearest
        )

    def header(self, mount: str, field: str, value: Capabilities | str | None = None) -> Any:
        """Read (``value`` None) or record a per-mount header field."""
        cached = self._decoded.get((mount, field))
        if (value is None and cached is not None) or (value is not None and cached == value):
            return cached  # read at every node operation: decoded once
        with self._lock:
            entry = self.mounts.setdefault(mount, {})
            if value is None:
                stored = entry.get(field)
                try:
                    value = self.store.decode(stored) if stored is not None else None
                except (TypeError, KeyError, ValueError, AttributeError) as exc:
                    raise StorageIOError(
                        f"Cassette {self.path.name}: mount {mount!r} {field} is malformed"
                    ) from exc
            else:
                encoded = self.store.encode(value)
                if entry.get(field) != encoded:
                    entry[field] = encoded
                    self._changed = True
            self._decoded[(mount, field)] = value
            return value

    # ---------------------------------------------------------------- lifecycle
    def on_stop(self, undo: Callable[[], None]) -> None:
        """Register how to put one mount back."""
        self._undo.append(undo)

    def save(self) -> None:
        """Write the cassette when something was recorded (atomically)."""
        with self._lock:
            if not self._changed:
                return
            document = {
                "storied_cassette": CASSETTE_FORMAT,
                "mounts": self.mounts,
                "volatile": self.volatile.dump(),
                "interactions": self.interactions,
            }
            text = json.dumps(document, indent=1, sort_keys=False)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(text + "\n", encoding="utf-8")
            os.replace(tmp, self.path)
            self._changed = False

    def stop(self) -> None:
        """Put the mounts back and save what was recorded. Idempotent."""
        undo, self._undo = self._undo, []
        for step in reversed(undo):
            step()
        _release(self.volatile)
        self.save()

    def __enter__(self) -> CassetteSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"CassetteSession({str(self.path)!r}, mode={self.mode!r})"


# ------------------------------------------------------------------------------- the backend
class CassetteBackend(WrappedBackend):
    """A mount's raw backend seen through a cassette: every storage call is recorded or
    replayed by ``session`` (see :class:`CassetteSession`). ``local_path`` is None and
    ``unwrap()`` is this backend, in recording as in replay, so the code under test takes the
    same (storage API) paths both times."""

    protocol: str

    mount: str
    session: CassetteSession

    def __init__(self, inner: Backend, mount: str, session: CassetteSession) -> None:
        super().__init__(inner)
        self.mount, self.session = mount, session
        if session.mode != "none":
            session.header(mount, "protocol", inner.protocol)
            session.header(mount, "static_capabilities", inner.static_capabilities)
        self.protocol = session.header(mount, "protocol") or inner.protocol

    def _caps(self, field: str, live: Callable[[], Capabilities]) -> Capabilities:
        found: Capabilities | None
        if self.session.mode == "none":
            found = self.session.header(self.mount, field)
            found = found or self.session.header(self.mount, "static_capabilities")
            return found or Capabilities()
        if self.session.mode == "new_episodes":
            found = self.session.header(self.mount, field)
            if found is not None:
                return found
        recorded: Capabilities = self.session.header(self.mount, field, live())
        return recorded

    @property
    def capabilities(self) -> Capabilities:  # type: ignore[override]
        return self._caps("capabilities", lambda: self.inner.capabilities)

    @property
    def static_capabilities(self) -> Capabilities:
        return self._caps("static_capabilities", lambda: self.inner.static_capabilities)

    def _do(self, op: str, thunk: Callable[[], Any], **args: Any) -> Any:
        return self.session.call(self, op, args, thunk)

    def info(self, path: str) -> Info:
        return self._do("info", lambda: self.inner.info(path), path=path)  # type: ignore[no-any-return]

    def exists(self, path: str) -> bool:
        return bool(self._do("exists", lambda: self.inner.exists(path), path=path))

    def list(self, path: str) -> Iterator[Info]:
        return iter(self._do("list", lambda: list(self.inner.list(path)), path=path))

    def walk(self, path: str) -> Iterator[Info]:
        return iter(self._do("walk", lambda: list(self.inner.walk(path)), path=path))

    def walk_split(self, path: str) -> tuple[builtins.list[Info], builtins.list[Info]]:
        shown, hidden = self._do("walk_split", lambda: self.inner.walk_split(path), path=path)
        return list(shown), list(hidden)

    def list_names(self, path: str, start_after: str | None = None) -> Iterator[tuple[str, bool]]:
        def thunk() -> builtins.list[tuple[str, bool]]:
            return list(self.inner.list_names(path, start_after))

        names = self._do("list_names", thunk, path=path, start_after=start_after)
        return iter([(str(n), bool(d)) for n, d in names])

    def open_read(self, path: str, start: int = 0, end: int | None = None) -> BinaryIO:
        thunk = lambda: self.inner.open_read(path, start, end)  # noqa: E731
        return self._do("open_read", thunk, path=path, start=start, end=end)  # type: ignore[no-any-return]

    def read_bytes(self, path: str) -> bytes:
        return bytes(self._do("read_bytes", lambda: self.inner.read_bytes(path), path=path))

    def write(
        self,
        path: str,
        data: Data,
        *,
        mode: WriteMode = WriteMode.OVERWRITE,
        etag: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Info:
        body = bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else data.read()

        def thunk() -> Info:
            return self.inner.write(path, body, mode=mode, etag=etag, metadata=metadata)

        # storied's own records (journal entries, history records) hold times: matched by path
        shown: bytes | str = STORIED_RECORD if paths.is_hidden(path) else body
        return self._do(  # type: ignore[no-any-return]
            "write", thunk, path=path, data=shown, mode=str(mode), etag=etag, metadata=metadata
        )

    def delete(self, path: str, *, recursive: bool = False) -> None:
        thunk = lambda: self.inner.delete(path, recursive=recursive)  # noqa: E731
        self._do("delete", thunk, path=path, recursive=recursive)

    def delete_if_match(self, path: str, etag: str) -> None:
        self._do("delete_if_match", lambda: self.inner.delete_if_match(path, etag),
                 path=path, etag=etag)  # fmt: skip

    def mkdir(self, path: str, *, parents: bool = False, exist_ok: bool = False) -> None:
        thunk = lambda: self.inner.mkdir(path, parents=parents, exist_ok=exist_ok)  # noqa: E731
        self._do("mkdir", thunk, path=path, parents=parents, exist_ok=exist_ok)

    def copy(self, src: str, dst: str) -> Info:
        return self._do("copy", lambda: self.inner.copy(src, dst), src=src, dst=dst)  # type: ignore[no-any-return]

    def move(self, src: str, dst: str) -> None:
        self._do("move", lambda: self.inner.move(src, dst), src=src, dst=dst)

    def set_metadata(self, path: str, metadata: dict[str, str]) -> None:
        self._do("set_metadata", lambda: self.inner.set_metadata(path, metadata),
                 path=path, metadata=metadata)  # fmt: skip

    def get_metadata(self, path: str) -> dict[str, str]:
        return dict(self._do("get_metadata", lambda: self.inner.get_metadata(path), path=path))

    def url(self, path: str, expires_in: int = 3600) -> str | None:
        thunk = lambda: self.inner.url(path, expires_in)  # noqa: E731
        return self._do("url", thunk, path=path, expires_in=expires_in)  # type: ignore[no-any-return]

    def list_versions(self, path: str) -> builtins.list[ObjectVersion]:
        return list(self._do("list_versions", lambda: self.inner.list_versions(path), path=path))

    def open_version(
        self, path: str, version_id: str, start: int = 0, end: int | None = None
    ) -> BinaryIO:
        thunk = lambda: self.inner.open_version(path, version_id, start, end)  # noqa: E731
        return self._do("open_version", thunk, path=path, version_id=version_id,  # type: ignore[no-any-return]
                        start=start, end=end)  # fmt: skip

    def delete_version(self, path: str, version_id: str) -> None:
        self._do("delete_version", lambda: self.inner.delete_version(path, version_id),
                 path=path, version_id=version_id)  # fmt: skip

    def walk_versions(self, path: str) -> Iterator[ObjectVersion]:
        thunk = lambda: list(self.inner.walk_versions(path))  # noqa: E731
        return iter(self._do("walk_versions", thunk, path=path))

    def has_native_versions(self) -> bool:
        return bool(self._do("has_native_versions", self.inner.has_native_versions))

    def versioning_status(self) -> str | None:
        """The S3 bucket's versioning status where the storage has one, else None."""

        def thunk() -> str | None:
            status = getattr(self.inner.unwrap(), "versioning_status", None)
            return status() if callable(status) else None

        return self._do("versioning_status", thunk)  # type: ignore[no-any-return]

    def delete_many(self, items: builtins.list[tuple[str, str | None]]) -> None:
        self._do("delete_many", lambda: self.inner.delete_many(items), items=items)

    def link(self, src: str, dst: str) -> None:
        self._do("link", lambda: self.inner.link(src, dst), src=src, dst=dst)

    def unlink_links(self, path: str) -> int:
        return int(self._do("unlink_links", lambda: self.inner.unlink_links(path), path=path))

    def storage_key(self) -> Hashable:
        return self._hashable(self._do("storage_key", self.inner.storage_key))

    def location(self, path: str) -> tuple[Hashable, str]:
        key, where = self._do("location", lambda: self.inner.location(path), path=path)
        return self._hashable(key), str(where)

    @staticmethod
    def _hashable(value: Any) -> Hashable:
        if isinstance(value, list):
            return tuple(CassetteBackend._hashable(v) for v in value)
        return value  # type: ignore[no-any-return]

    def local_path(self, path: str) -> str | None:
        return None

    def unwrap(self) -> Backend:
        return self

    def close(self) -> None:
        if self.session.mode != "none":
            self.inner.close()
