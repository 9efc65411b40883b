"""Review R3: a failed write's content must not become the working copy (issue 8, FORMAT §4).

Two engines write one file. The newer writer (B) announces its record, then its working-copy
write fails and it undoes the record; the older writer (A) converges in between, sees B's
record (still there) and copies B's content into the working copy. After B's undo the file
shows the content of a write its caller was told failed, and no version has that content.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from storied.backends.base import Backend, WrappedBackend
from storied.backends.local import LocalBackend
from storied.errors import TransientStorageError
from storied.info import Data, Info
from storied.versioning.portable import PortableEngine

A_WROTE, B_ANNOUNCED, A_CONVERGED = threading.Event(), threading.Event(), threading.Event()
ARMED = {"on": False}


class _PauseAfterWrite(WrappedBackend):
    """A's working-copy write of f.txt happens, then waits until B has announced."""

    def write(self, path: str, data: Data, **kw: Any) -> Info:
        info = self.inner.write(path, data, **kw)
        if path == "f.txt" and ARMED["on"]:
            A_WROTE.set()
            assert B_ANNOUNCED.wait(10)
        return info


class _FailWrite(WrappedBackend):
    """B's first working-copy write of f.txt fails (once: transient), after A converged."""

    def write(self, path: str, data: Data, **kw: Any) -> Info:
        if path == "f.txt" and not B_ANNOUNCED.is_set():
            B_ANNOUNCED.set()
            assert A_CONVERGED.wait(10)
            raise TransientStorageError("injected: the working-copy write of B fails")
        return self.inner.write(path, data, **kw)


def test_a_failed_newer_write_never_becomes_the_working_copy(tmp_path: Path) -> None:
    for event in (A_WROTE, B_ANNOUNCED, A_CONVERGED):
        event.clear()
    store: Backend = LocalBackend(str(tmp_path))
    a = PortableEngine(_PauseAfterWrite(store), store)
    b = PortableEngine(_FailWrite(store), store)
    a.write("f.txt", b"seed")
    ARMED["on"] = True
    errors: list[BaseException] = []

    def run_b() -> None:
        assert A_WROTE.wait(10)  # B starts once A's working copy is written
        try:
            b.write("f.txt", b"B: reported as failed")
        except TransientStorageError as exc:
            errors.append(exc)

    thread = threading.Thread(target=run_b)
    thread.start()
    a.write("f.txt", b"A: acknowledged")  # pauses after its working copy until B announced
    A_CONVERGED.set()
    thread.join(10)
    assert len(errors) == 1  # B's caller was told its write failed
    shown = store.read_bytes("f.txt")
    newest = a.versions("f.txt")[-1]
    assert shown != b"B: reported as failed"
    assert newest.size == len(shown)
