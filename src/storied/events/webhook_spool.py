"""The persisted outbox of one webhook endpoint: a spool directory of message files.

Layout (under the outbox root, by default ``$XDG_STATE_HOME/storied/outbox``, else
``~/.local/state/storied/outbox``; ``%LOCALAPPDATA%\\storied\\outbox`` on Windows)::

    <endpoint key>/                 one directory per endpoint (url + mount filter, hashed)
        endpoint.json               the redacted URL and mount, for humans (no secret)
        lock                        flock'ed by the one process delivering this endpoint
        disabled                    present after a 410 Gone (until Webhook re-enabling)
        <ns:020d>-<id hash>.msg     one pending message: JSON {id, created, attempts, body}

A message is written to a temporary name and renamed into place, so a reader sees a whole file
or none; a process killed at any point leaves at worst a temporary file (removed later) and
never a message half-written. Files are not fsync'ed: a message survives the death of its
process (the page cache is the kernel's), not necessarily a power cut (an unreadable message
is logged and dropped). Any number of processes add messages; only the holder of ``lock``
(an OS lock, released when its process dies) updates or removes them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = ["FileLock", "Message", "Spool", "default_root"]

log: logging.Logger = logging.getLogger("storied.webhooks")

_SUFFIX = ".msg"
_TMP = ".tmp-"
#: Temporary files older than this (seconds) are leftovers of a killed writer.
_STALE_TMP = 3600.0
#: Most messages one endpoint's spool keeps (an endpoint down for days must not fill the
#: disk): beyond it the oldest are dropped, logged.
MAX_PENDING = 100_000


def default_root() -> Path:
    """The default outbox root (see the module doc)."""
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "storied" / "outbox"
    state = os.environ.get("XDG_STATE_HOME")
    base = Path(state) if state and os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "storied" / "outbox"


class FileLock:
    """An OS lock on a file (``flock``), taken without waiting and released when its
    process dies. Without ``fcntl`` (Windows) it is always granted: then every process
    delivers, and duplicates keep their ``webhook-id``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[bytes] | None = None

    def try_lock(self) -> bool:
        """Take the lock if free; True when this object holds it."""
        if self._handle is not None:
            return True
        try:
            handle = open(self.path, "ab")  # noqa: SIM115 - kept open while held
        except OSError:
            return False
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            self._handle = handle
            return True
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._handle = handle
        return True

    def unlock(self) -> None:
        """Release it (closing the file releases the OS lock)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()

    @property
    def locked(self) -> bool:
        """True while held."""
        return self._handle is not None


@dataclass
class Message:
    """One pending delivery, as its spool file holds it."""

    name: str
    id: str
    created: float
    attempts: int
    body: bytes

    def to_json(self) -> bytes:
        """The file content."""
        return json.dumps({"id": self.id, "created": self.created, "attempts": self.attempts,
                           "body": self.body.decode("utf-8")}).encode("utf-8")


class Spool:
    """The spool directory of one endpoint (see the module doc)."""

    dir: Path
    lock: FileLock

    def __init__(self, root: Path, key: str, label: dict[str, Any]) -> None:
        self.dir = Path(root) / key
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        meta = self.dir / "endpoint.json"
        if not meta.exists():
            self._write_atomic(meta, json.dumps(label).encode("utf-8"))
        self.lock = FileLock(self.dir / "lock")

    # ------------------------------------------------------------------ writing
    def _write_atomic(self, target: Path, data: bytes) -> None:
        tmp = self.dir / f"{_TMP}{uuid.uuid4().hex}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def put(self, msg_id: str, body: bytes) -> Message:
        """Add a message (any process may); its name sorts after every earlier one's."""
        digest = hashlib.sha256(msg_id.encode()).hexdigest()[:16]
        message = Message(f"{time.time_ns():020d}-{digest}{_SUFFIX}", msg_id, time.time(), 0,
                          body)
        try:
            self._write_atomic(self.dir / message.name, message.to_json())
        except FileNotFoundError:  # the directory was removed (a cleanup): make it again
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._write_atomic(self.dir / message.name, message.to_json())
        return message

    def update(self, message: Message) -> None:
        """Rewrite ``message`` (its attempt count changed); lock holder only."""
        self._write_atomic(self.dir / message.name, message.to_json())

    def remove(self, message: Message) -> None:
        """Drop ``message`` (delivered or failed for good); lock holder only."""
        with contextlib.suppress(FileNotFoundError):
            (self.dir / message.name).unlink()

    # ------------------------------------------------------------------ reading
    def names(self) -> list[str]:
        """Pending message names, oldest first."""
        try:
            return sorted(n for n in os.listdir(self.dir) if n.endswith(_SUFFIX)
                          and not n.startswith(_TMP))
        except FileNotFoundError:
            return []

    def count(self) -> int:
        """How many messages are pending."""
        return len(self.names())

    def load(self, name: str) -> Message | None:
        """The message ``name``; None when it is gone, or unreadable (then dropped, logged)."""
        path = self.dir / name
        try:
            raw = json.loads(path.read_bytes())
            return Message(name, str(raw["id"]), float(raw["created"]), int(raw["attempts"]),
                           str(raw["body"]).encode("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("webhook outbox %s: unreadable message %s dropped (%s)", self.dir, name,
                      type(exc).__name__)
            if self.lock.locked:
                with contextlib.suppress(OSError):
                    path.unlink()
            return None

    def trim(self) -> int:
        """Drop the oldest messages beyond :data:`MAX_PENDING` (lock holder only); how many."""
        names = self.names()
        extra = names[: max(0, len(names) - MAX_PENDING)]
        for name in extra:
            with contextlib.suppress(FileNotFoundError):
                (self.dir / name).unlink()
        if extra:
            log.error("webhook outbox %s: more than %d messages pending; the %d oldest dropped",
                      self.dir, MAX_PENDING, len(extra))
        return len(extra)

    def sweep(self) -> None:
        """Remove temporary files left by killed writers (lock holder only)."""
        now = time.time()
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.dir):
                if entry.name.startswith(_TMP):
                    with contextlib.suppress(OSError):
                        if now - entry.stat().st_mtime > _STALE_TMP:
                            os.unlink(entry.path)

    # ------------------------------------------------------------------ lock and state
    def try_lock(self) -> bool:
        """Become the one deliverer of this spool (non-blocking); True when held."""
        return self.lock.try_lock()

    def unlock(self) -> None:
        """Let another process deliver."""
        self.lock.unlock()

    @property
    def locked(self) -> bool:
        """True while this process delivers this spool."""
        return self.lock.locked

    def is_disabled(self) -> bool:
        """True when the endpoint answered 410 Gone."""
        return (self.dir / "disabled").exists()

    def set_disabled(self, disabled: bool) -> None:
        """Persist (or clear) the 410 Gone state."""
        marker = self.dir / "disabled"
        if disabled:
            self._write_atomic(marker, str(time.time()).encode())
        else:
            with contextlib.suppress(FileNotFoundError):
                marker.unlink()

    def clear(self) -> int:
        """Drop every pending message (lock holder only); how many."""
        names = self.names()
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                (self.dir / name).unlink()
        return len(names)
