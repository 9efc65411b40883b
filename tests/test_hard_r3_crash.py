"""Review R3: a writer killed before each storage operation of a write or delete (issue 8).

FORMAT.md §5: whatever step a writer dies at, every acknowledged version stays readable,
``verify`` finds no problem (at worst orphans or a *stale* working copy), a working copy that
verify does not call stale is the newest record's content (never ok-but-wrong), and the next
write brings everything back in line. The child process dies with ``os._exit`` (no cleanup,
no ``finally``: what SIGKILL leaves) just before its n-th mutating storage call. Children are
spawned (not forked: the test process may run server threads).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from storied.backends.base import Backend, WrappedBackend
from storied.backends.local import LocalBackend
from storied.backends.s3 import S3Backend
from storied.testing.s3server import MotoHandle, make_bucket
from storied.versioning.portable import PortableEngine

_STEPS = 8  # more than a write or a delete takes: the last runs complete


class _DieBefore(WrappedBackend):
    """Exits the process right before the ``at``-th mutating call (data and meta share it)."""

    def __init__(self, inner: Backend, at: int) -> None:
        super().__init__(inner)
        self.at, self.calls = at, 0

    def _step(self) -> None:
        self.calls += 1
        if self.calls == self.at:
            os._exit(9)

    def write(self, *args: Any, **kwargs: Any) -> Any:
        self._step()
        return self.inner.write(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        self._step()
        return self.inner.delete(*args, **kwargs)

    def move(self, *args: Any, **kwargs: Any) -> Any:
        self._step()
        return self.inner.move(*args, **kwargs)

    def link(self, *args: Any, **kwargs: Any) -> Any:
        self._step()
        return self.inner.link(*args, **kwargs)

    def copy(self, *args: Any, **kwargs: Any) -> Any:
        self._step()
        return self.inner.copy(*args, **kwargs)

    def delete_many(self, *args: Any, **kwargs: Any) -> Any:
        self._step()
        return self.inner.delete_many(*args, **kwargs)


def _open(where: tuple[str, str]) -> Backend:
    kind, arg = where
    if kind == "local":
        return LocalBackend(arg)
    endpoint, bucket = arg.split("|")
    return S3Backend(bucket, key="testing", secret="testing", endpoint_url=endpoint)


def _child(where: tuple[str, str], at: int, operation: str) -> None:
    backend = _DieBefore(_open(where), at)
    engine = PortableEngine(backend, backend)
    if operation == "write":
        engine.write("d/f.txt", b"new content")
    else:
        engine.delete("d/f.txt")
    os._exit(0)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture(params=["local", "s3"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """Where the history lives: a local directory, or an unversioned bucket (whose engine
    converges by listing and records without hard links)."""
    if request.param == "local":
        return "local", str(tmp_path)
    moto: MotoHandle = request.getfixturevalue("moto")
    bucket = make_bucket(moto.endpoint_url, f"r3crash-{uuid.uuid4().hex[:12]}")
    return "s3", f"{moto.endpoint_url}|{bucket}"


@pytest.mark.parametrize("operation", ["write", "delete"])
@pytest.mark.parametrize("at", range(1, _STEPS + 1))
def test_killed_before_any_step_leaves_a_consistent_history(
    where: tuple[str, str], operation: str, at: int
) -> None:
    store = _open(where)
    engine = PortableEngine(store, store)
    engine.write("d/f.txt", b"one")
    engine.write("d/f.txt", b"two")  # acknowledged: must survive anything
    child = multiprocessing.get_context("spawn").Process(target=_child, args=(where, at, operation))
    child.start()
    child.join(30)
    finished = child.exitcode == 0
    assert child.exitcode in (0, 9)
    assert not (at == 1 and finished)

    report = engine.verify()
    assert report.problems == []
    versions = engine.versions("d/f.txt")
    assert [v.etag for v in versions[:2]] == [_md5(b"one"), _md5(b"two")]
    shown = store.read_bytes("d/f.txt") if store.exists("d/f.txt") else None
    newest_live = versions[-1].is_latest if versions else False
    if not any("d/f.txt" in s for s in report.stale):  # verify says in line: it must be
        if newest_live:
            assert shown is not None and _md5(shown) == versions[-1].etag
        else:
            assert shown is None
    if finished:
        assert report.stale == []
        assert shown == (b"new content" if operation == "write" else None)

    engine.write("d/f.txt", b"after")  # the next write brings the path back in line
    again = engine.verify()
    assert again.problems == [] and again.stale == []
    assert store.read_bytes("d/f.txt") == b"after"
    assert engine.versions("d/f.txt")[-1].etag == _md5(b"after")
