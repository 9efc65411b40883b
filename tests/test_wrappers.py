"""The wrapper backends: retries with backoff, permissions, mount prefixes."""

from __future__ import annotations

import io

import pytest

from storied import StoragePermissionError, TransientStorageError
from storied.backends.memory import MemoryBackend
from storied.backends.wrappers import HideReserved, Permission, Permissions, Prefixed, Retrying
from storied.testing.doubles import FaultyBackend


def test_retry_recovers_and_backs_off_exponentially() -> None:
    faulty = FaultyBackend(MemoryBackend("r1"), fail_times=3)
    waits: list[float] = []
    backend = Retrying(faulty, attempts=4, base_delay=0.1, max_delay=0.3, sleep=waits.append)
    backend.write("a.txt", b"data")
    assert backend.read_bytes("a.txt") == b"data"
    assert faulty.calls["write"] == 4 and faulty.calls["open_read"] == 4
    first = waits[:3]
    assert 0.05 <= first[0] <= 0.1 and 0.1 <= first[1] <= 0.2 and 0.15 <= first[2] <= 0.3


def test_retry_gives_up_after_attempts() -> None:
    faulty = FaultyBackend(MemoryBackend("r2"), fail_times=10, operations=frozenset({"info"}))
    backend = Retrying(faulty, attempts=3, sleep=lambda s: None)
    with pytest.raises(TransientStorageError) as caught:
        backend.info("x")
    assert isinstance(caught.value, ConnectionError)
    assert faulty.calls["info"] == 3


def test_retry_rewinds_seekable_streams_and_not_others() -> None:
    faulty = FaultyBackend(MemoryBackend("r3"), fail_times=1, operations=frozenset({"write"}))
    backend = Retrying(faulty, attempts=3, sleep=lambda s: None)
    backend.write("seekable", io.BytesIO(b"0123456789"))
    assert backend.read_bytes("seekable") == b"0123456789"

    class OneShot(io.RawIOBase):
        def __init__(self) -> None:
            self._data = io.BytesIO(b"stream")

        def readable(self) -> bool:
            return True

        def readinto(self, b: bytearray) -> int:  # type: ignore[override]
            return self._data.readinto(b)

    faulty.calls.clear()
    with pytest.raises(TransientStorageError):
        backend.write("oneshot", OneShot())
    assert faulty.calls["write"] == 1  # not retried: the data cannot be sent again


def test_permission_levels() -> None:
    inner = MemoryBackend("p")
    inner.write("f.txt", b"1")
    ro = Permissions(inner, Permission.READONLY)
    rw = Permissions(inner, Permission.READWRITE)
    assert ro.read_bytes("f.txt") == b"1" and [e.path for e in ro.list("")] == ["f.txt"]
    for call in (lambda: ro.write("g", b""), lambda: ro.mkdir("d"), lambda: ro.delete("f.txt"),
                 lambda: ro.copy("f.txt", "g"), lambda: ro.move("f.txt", "g"),
                 lambda: ro.set_metadata("f.txt", {})):
        with pytest.raises(StoragePermissionError, match="read-only"):
            call()
    rw.write("g.txt", b"2")
    with pytest.raises(StoragePermissionError, match="delete permission"):
        rw.delete("g.txt")
    with pytest.raises(StoragePermissionError, match="delete permission"):
        rw.move("g.txt", "h.txt")
    assert not ro.capabilities.write and ro.capabilities.readonly
    assert rw.capabilities.write and not rw.capabilities.delete


def test_prefix_confines_and_reserved_area_is_hidden() -> None:
    inner = MemoryBackend("pre")
    inner.write(".storied/history/x", b"internal")
    inner.write("outside.txt", b"o")
    root = HideReserved(inner)
    assert {e.path for e in root.list("")} == {"outside.txt"}
    assert {e.path for e in root.walk("")} == {"outside.txt"}
    sub = Prefixed(inner, "inside")
    sub.write("a/b.txt", b"x")
    assert inner.read_bytes("inside/a/b.txt") == b"x"
    assert [e.path for e in sub.walk("")] == ["a/b.txt"]
    assert sub.info("a/b.txt").path == "a/b.txt"
    with pytest.raises(ValueError):
        sub.read_bytes("../outside.txt")
