"""Retrying (backends/wrappers.py) with MockBackend faults: every idempotent operation is
retried, a move only while its source is there, and a retried call whose first attempt was
applied (its answer lost) reports success, never "already exists"/"not found" for its own
result, while a real conflict still fails."""

from __future__ import annotations

import pytest

from storied.backends.wrappers import Retrying
from storied.errors import (
    PreconditionFailedError,
    StorageAlreadyExistsError,
    TransientStorageError,
)
from storied.info import WriteMode
from storied.testing.mock import MockBackend


def _once(fault: str) -> tuple[MockBackend, Retrying]:
    """A mock whose first call fails with ``fault`` (then none)."""
    mock = MockBackend(latency_ms=1, failure_rate=1.0, faults=[fault], seed=1)
    mock._sleep = lambda _s: setattr(mock, "failure_rate", 0.0)
    mock.inner.write("a.txt", b"content")
    mock.inner.write("b.txt", b"other")
    return mock, Retrying(mock, attempts=3, sleep=lambda _s: None)


def test_a_move_whose_answer_was_lost_is_done() -> None:
    mock, retrying = _once("lost_response")
    retrying.move("b.txt", "c.txt")
    assert mock.trace[0].fault == "lost_response"
    assert not mock.inner.exists("b.txt") and mock.inner.read_bytes("c.txt") == b"other"


def test_a_move_that_did_not_happen_is_retried_onto_an_existing_target() -> None:
    mock, retrying = _once("transient")
    retrying.move("b.txt", "a.txt")  # replaces a.txt
    assert mock.calls["move"] >= 2
    assert mock.inner.read_bytes("a.txt") == b"other" and not mock.inner.exists("b.txt")


def test_a_move_of_nothing_is_not_reported_done() -> None:
    mock = MockBackend(latency_ms=1, failure_rate=1.0, faults=["transient"], seed=1)
    retrying = Retrying(mock, attempts=2, sleep=lambda _s: None)
    with pytest.raises(TransientStorageError):  # src and dst both missing: the error stands
        retrying.move("none.txt", "other.txt")


def test_a_conditional_write_whose_answer_was_lost_returns_its_info() -> None:
    mock, retrying = _once("lost_response")
    etag = mock.inner.info("a.txt").etag
    assert etag is not None
    info = retrying.write("a.txt", b"v2", mode=WriteMode.IF_MATCH, etag=etag)
    assert mock.inner.read_bytes("a.txt") == b"v2" and info.etag == mock.inner.info("a.txt").etag


def test_a_create_retried_onto_other_content_still_conflicts() -> None:
    """Not our bytes at the path: a real conflict, never masked as our success."""
    mock, retrying = _once("transient")
    with pytest.raises(StorageAlreadyExistsError):
        retrying.write("a.txt", b"mine", mode=WriteMode.CREATE)
    assert mock.inner.read_bytes("a.txt") == b"content"
    mock2, retrying2 = _once("transient")
    with pytest.raises(PreconditionFailedError):
        retrying2.write("a.txt", b"mine", mode=WriteMode.IF_MATCH, etag="stale")
    assert mock2.inner.read_bytes("a.txt") == b"content"


def test_a_mkdir_whose_answer_was_lost_is_done() -> None:
    mock, retrying = _once("lost_response")
    retrying.mkdir("d")
    assert mock.inner.info("d").is_dir
    _mock2, retrying2 = _once("transient")
    with pytest.raises(StorageAlreadyExistsError):  # a file is there: not a directory made
        retrying2.mkdir("a.txt")


def test_delete_many_is_retried() -> None:
    mock, retrying = _once("transient")
    retrying.delete_many([("b.txt", None)])
    assert not retrying.exists("b.txt") and mock.trace[0].fault == "transient"
