"""The backend conformance suite, shipped for users and run by storied on every backend.

Subclass :class:`BackendConformance` in a pytest module and provide a ``backend`` fixture that
yields a fresh, empty, writable :class:`~storied.backends.base.Backend`. Tests that need a
capability read it from ``backend.capabilities`` and skip otherwise; none looks at the class::

    class TestMyBackend(BackendConformance):
        @pytest.fixture
        def backend(self):
            yield MyBackend(...)
"""

from __future__ import annotations

import io
import threading
from typing import Any

import pytest

from storied.backends.base import Backend
from storied.errors import (
    DirectoryNotEmptyError,
    NotADirectoryStorageError,
    PreconditionFailedError,
    StorageAlreadyExistsError,
    StorageError,
    StorageNotFoundError,
)
from storied.info import WriteMode

__all__ = ["BackendConformance"]


def _need(backend: Backend, flag: str) -> None:
    if not getattr(backend.capabilities, flag):
        pytest.skip(f"backend lacks capability {flag!r}")


def _names(entries: Any) -> set[str]:
    return {e.path for e in entries}


class BackendConformance:
    """Contract tests every writable backend must pass."""

    # ------------------------------------------------------------------ read / write
    def test_write_then_read(self, backend: Backend) -> None:
        info = backend.write("a.txt", b"hello")
        assert info.path == "a.txt"
        assert info.size == 5
        assert backend.read_bytes("a.txt") == b"hello"

    def test_write_from_stream(self, backend: Backend) -> None:
        backend.write("s.bin", io.BytesIO(b"x" * 100_000))
        assert backend.read_bytes("s.bin") == b"x" * 100_000

    def test_empty_file(self, backend: Backend) -> None:
        backend.write("empty", b"")
        assert backend.read_bytes("empty") == b""
        assert backend.info("empty").size == 0
        assert not backend.info("empty").is_dir

    def test_overwrite_replaces(self, backend: Backend) -> None:
        backend.write("f", b"first version, long")
        backend.write("f", b"second")
        assert backend.read_bytes("f") == b"second"
        assert backend.info("f").size == 6

    def test_large_file_roundtrip(self, backend: Backend) -> None:
        payload = bytes(range(256)) * (6 * 1024 * 4 + 3)  # ~6 MiB, odd length
        backend.write("big/blob.bin", io.BytesIO(payload))
        assert backend.info("big/blob.bin").size == len(payload)
        with backend.open_read("big/blob.bin") as stream:
            assert stream.read() == payload

    def test_unicode_and_space_names(self, backend: Backend) -> None:
        for name in ("spaced name.txt", "ünïcödé/文件.txt", "a+b=c&d.txt", "percent%20.txt"):
            backend.write(name, name.encode())
            assert backend.read_bytes(name) == name.encode()
        assert "spaced name.txt" in _names(backend.list(""))

    def test_range_read(self, backend: Backend) -> None:
        _need(backend, "range_reads")
        backend.write("r.bin", b"0123456789")
        with backend.open_read("r.bin", 2, 5) as stream:
            assert stream.read() == b"234"
        with backend.open_read("r.bin", 7) as stream:
            assert stream.read() == b"789"

    # ------------------------------------------------------------------ info / missing
    def test_info_of_file(self, backend: Backend) -> None:
        backend.write("dir/file.txt", b"abc")
        info = backend.info("dir/file.txt")
        assert (info.path, info.is_dir, info.size) == ("dir/file.txt", False, 3)
        assert backend.info("dir").is_dir

    def test_md5_when_known_is_true_md5(self, backend: Backend) -> None:
        import hashlib

        backend.write("h.txt", b"hash me")
        md5 = backend.info("h.txt").md5
        assert md5 is None or md5 == hashlib.md5(b"hash me").hexdigest()

    def test_missing_paths_raise_not_found(self, backend: Backend) -> None:
        for call in (
            lambda: backend.info("nope"),
            lambda: backend.open_read("nope").read(),
            lambda: backend.read_bytes("no/such/file"),
            lambda: list(backend.list("no-dir")),
            lambda: backend.delete("nope"),
        ):
            with pytest.raises(StorageNotFoundError) as caught:
                call()
            assert isinstance(caught.value, FileNotFoundError)
        assert not backend.exists("nope")

    # ------------------------------------------------------------------ listing
    def test_list_direct_children_only(self, backend: Backend) -> None:
        backend.write("top.txt", b"1")
        backend.write("d/one.txt", b"1")
        backend.write("d/sub/two.txt", b"2")
        assert _names(backend.list("")) == {"top.txt", "d"}
        entries = {e.path: e for e in backend.list("d")}
        assert set(entries) == {"d/one.txt", "d/sub"}
        assert entries["d/sub"].is_dir and not entries["d/one.txt"].is_dir
        assert entries["d/one.txt"].size == 1

    def test_list_of_file_is_refused(self, backend: Backend) -> None:
        backend.write("plain.txt", b"1")
        with pytest.raises(NotADirectoryStorageError):
            list(backend.list("plain.txt"))

    def test_walk_yields_every_file(self, backend: Backend) -> None:
        for p in ("w/a", "w/b/c", "w/b/d/e", "other"):
            backend.write(p, p.encode())
        assert _names(backend.walk("w")) == {"w/a", "w/b/c", "w/b/d/e"}
        assert _names(backend.walk("")) == {"w/a", "w/b/c", "w/b/d/e", "other"}

    def test_prefix_sibling_is_not_a_child(self, backend: Backend) -> None:
        backend.write("abc/x", b"1")
        backend.write("abcd", b"2")
        assert _names(backend.walk("abc")) == {"abc/x"}
        assert _names(backend.list("abc")) == {"abc/x"}

    # ------------------------------------------------------------------ directories
    def test_mkdir_and_exist_ok(self, backend: Backend) -> None:
        backend.mkdir("made", parents=True)
        backend.mkdir("made", parents=True, exist_ok=True)
        if backend.capabilities.empty_dirs:
            assert backend.info("made").is_dir
            assert _names(backend.list("")) >= {"made"}
            with pytest.raises(StorageAlreadyExistsError):
                backend.mkdir("made")

    def test_delete_file(self, backend: Backend) -> None:
        backend.write("gone.txt", b"1")
        backend.delete("gone.txt")
        assert not backend.exists("gone.txt")

    def test_delete_non_empty_dir_needs_recursive(self, backend: Backend) -> None:
        backend.write("tree/a/b.txt", b"1")
        backend.write("tree/c.txt", b"1")
        with pytest.raises(DirectoryNotEmptyError) as caught:
            backend.delete("tree")
        assert isinstance(caught.value, OSError)
        assert backend.exists("tree/c.txt")
        backend.delete("tree", recursive=True)
        assert not backend.exists("tree/a/b.txt")
        assert not backend.exists("tree")

    # ------------------------------------------------------------------ copy / move
    def test_copy_file(self, backend: Backend) -> None:
        backend.write("src.txt", b"payload")
        backend.copy("src.txt", "copies/dst.txt")
        assert backend.read_bytes("copies/dst.txt") == b"payload"
        assert backend.read_bytes("src.txt") == b"payload"

    def test_move_file_and_dir(self, backend: Backend) -> None:
        backend.write("m/a.txt", b"a")
        backend.write("m/sub/b.txt", b"b")
        backend.move("m/a.txt", "moved/a.txt")
        assert backend.read_bytes("moved/a.txt") == b"a"
        assert not backend.exists("m/a.txt")
        backend.move("m", "n")
        assert backend.read_bytes("n/sub/b.txt") == b"b"
        assert not backend.exists("m/sub/b.txt")

    # ------------------------------------------------------------------ conditional writes
    def test_create_only(self, backend: Backend) -> None:
        _need(backend, "conditional_write")
        backend.write("once", b"1", mode=WriteMode.CREATE)
        with pytest.raises(StorageAlreadyExistsError) as caught:
            backend.write("once", b"2", mode=WriteMode.CREATE)
        assert isinstance(caught.value, FileExistsError)
        assert backend.read_bytes("once") == b"1"

    def test_replace_if_etag_matches(self, backend: Backend) -> None:
        _need(backend, "conditional_write")
        first = backend.write("cas", b"1")
        assert first.etag
        second = backend.write("cas", b"2", mode=WriteMode.IF_MATCH, etag=first.etag)
        with pytest.raises(PreconditionFailedError):
            backend.write("cas", b"3", mode=WriteMode.IF_MATCH, etag=first.etag)
        assert backend.read_bytes("cas") == b"2"
        assert backend.info("cas").etag == second.etag
        with pytest.raises(StorageNotFoundError):
            backend.write("missing", b"x", mode=WriteMode.IF_MATCH, etag=first.etag)

    def test_same_content_rewrite_changes_etag_or_keeps_cas_safe(self, backend: Backend) -> None:
        _need(backend, "conditional_write")
        first = backend.write("same", b"identical")
        backend.write("same", b"identical", mode=WriteMode.IF_MATCH, etag=first.etag)
        assert backend.read_bytes("same") == b"identical"

    def test_create_race_has_one_winner(self, backend: Backend) -> None:
        _need(backend, "conditional_write")
        outcomes: list[str] = []
        barrier = threading.Barrier(8)

        def attempt(i: int) -> None:
            barrier.wait()
            try:
                backend.write("race", str(i).encode(), mode=WriteMode.CREATE)
                outcomes.append("won")
            except StorageAlreadyExistsError:
                outcomes.append("lost")

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["lost"] * 7 + ["won"]

    # ------------------------------------------------------------------ metadata
    def test_metadata_roundtrip(self, backend: Backend) -> None:
        _need(backend, "metadata")
        backend.write("meta.txt", b"1", metadata={"owner": "ana", "kind": "report"})
        assert backend.get_metadata("meta.txt") == {"owner": "ana", "kind": "report"}
        backend.set_metadata("meta.txt", {"owner": "bo"})
        assert backend.get_metadata("meta.txt") == {"owner": "bo"}
        assert backend.read_bytes("meta.txt") == b"1"

    def test_errors_are_storage_errors(self, backend: Backend) -> None:
        with pytest.raises(StorageError):
            backend.info("does/not/exist")
