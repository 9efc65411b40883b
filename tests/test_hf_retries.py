"""storied's retry layer (backends/wrappers.py Retrying) seen through MockBackend faults: which
operations survive one transient fault, and what a retry does after a lost response.

Every operation survives one transient fault, and a retried call whose first attempt was
applied (its answer lost) reports success, not "already done" (docs/adr/0016).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from storied.backends.base import Backend
from storied.backends.wrappers import Retrying
from storied.info import WriteMode
from storied.testing.mock import MockBackend


def _once(faults: list[str]) -> tuple[MockBackend, Retrying]:
    """A mock whose first call fails (the sleep after the draw turns failures off)."""
    mock = MockBackend(latency_ms=1, failure_rate=1.0, faults=faults, seed=1)
    mock._sleep = lambda _s: setattr(mock, "failure_rate", 0.0)
    mock.inner.write("a.txt", b"content")
    mock.inner.write("b.txt", b"other")
    return mock, Retrying(mock, attempts=3, sleep=lambda _s: None)


def _etag(backend: Backend) -> str:
    etag = backend.info("a.txt").etag
    assert etag is not None
    return etag


RETRIED: dict[str, Callable[[Backend], Any]] = {
    "info": lambda b: b.info("a.txt"),
    "exists": lambda b: b.exists("a.txt"),
    "list": lambda b: list(b.list("")),
    "list_names": lambda b: list(b.list_names("")),
    "walk": lambda b: list(b.walk("")),
    "open_read": lambda b: b.open_read("a.txt").read(),
    "read_bytes": lambda b: b.read_bytes("a.txt"),
    "write": lambda b: b.write("c.txt", b"new"),
    "write CREATE": lambda b: b.write("c.txt", b"new", mode=WriteMode.CREATE),
    "delete": lambda b: b.delete("b.txt"),
    "delete_if_match": lambda b: b.delete_if_match("a.txt", _etag(b.unwrap())),
}
NOT_RETRIED: dict[str, Callable[[Backend], Any]] = {
    "mkdir": lambda b: b.mkdir("d", exist_ok=True),
    "copy": lambda b: b.copy("a.txt", "copy.txt"),
    "move": lambda b: b.move("b.txt", "moved.txt"),
    "set_metadata": lambda b: b.set_metadata("a.txt", {"k": "v"}),
    "get_metadata": lambda b: b.get_metadata("a.txt"),
    "walk_split": lambda b: b.walk_split(""),
    "delete_many": lambda b: b.delete_many([("b.txt", None)]),
}


@pytest.mark.parametrize("op", sorted(RETRIED))
def test_one_transient_fault_is_retried(op: str) -> None:
    mock, retrying = _once(["transient"])
    RETRIED[op](retrying)
    assert mock.trace[0].fault == "transient"
    assert mock.calls[mock.trace[0].operation] >= 2


@pytest.mark.parametrize("op", sorted(NOT_RETRIED))
def test_one_transient_fault_of_an_unwrapped_operation(op: str) -> None:
    _mock, retrying = _once(["transient"])
    NOT_RETRIED[op](retrying)


@pytest.mark.parametrize("op", ["write", "delete_many", "set_metadata"])
def test_a_lost_response_of_an_idempotent_call_is_harmless_once_retried(op: str) -> None:
    mock, retrying = _once(["lost_response"])
    calls = {"write": lambda b: b.write("a.txt", b"v2"),
             "delete_many": lambda b: b.delete_many([("b.txt", None)]),
             "set_metadata": lambda b: b.set_metadata("a.txt", {"k": "v"})}  # fmt: skip
    try:
        calls[op](retrying)
    except Exception as exc:  # set_metadata / delete_many are not retried (see above)
        assert op != "write", exc
    assert mock.trace[0].fault == "lost_response"
    assert mock.inner.exists("a.txt")


@pytest.mark.parametrize("op", ["write CREATE", "delete", "delete_if_match"])
def test_a_lost_response_then_retry_reports_success(op: str) -> None:
    """The first attempt was applied, its answer lost; the retry then sees its own result
    (the file exists / is gone) and must not report that as a failure."""
    _mock, retrying = _once(["lost_response"])
    RETRIED[op](retrying)
