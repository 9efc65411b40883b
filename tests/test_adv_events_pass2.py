"""Adversarial pass 2 over issue 9 (events, journal, watch, locks, conditional writes) on
memory and local mounts: hostile paths, bad cursors, odd subscriptions, callbacks that raise
``BaseException``, lock misuse and create-only races. Real temp dirs, no storage mocks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from storied import (
    InvalidArgumentError,
    LockLostError,
    LockTimeout,
    StorageManager,
    StoragePermissionError,
)
from storied.errors import (
    PathEscapeError,
    PreconditionFailedError,
    StorageAlreadyExistsError,
    StorageError,
    StorageNotFoundError,
)
from storied.events.journal import parse_cursor

KINDS = ["memory", "local"]


pytestmark = pytest.mark.usefixtures("no_lock_left_held")


@pytest.fixture(params=KINDS)
def sm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageManager]:
    """``v``: a versioned mount of the parametrised kind; ``p``: a plain one of that kind."""
    if request.param == "memory":
        configs: list[dict[str, Any]] = [{"name": "v", "type": "memory", "versioning": True},
                                         {"name": "p", "type": "memory"}]
    else:
        (tmp_path / "v").mkdir()
        (tmp_path / "p").mkdir()
        configs = [{"name": "v", "type": "local", "base_path": str(tmp_path / "v"),
                    "versioning": True},
                   {"name": "p", "type": "local", "base_path": str(tmp_path / "p")}]
    storage = StorageManager()
    storage.configure(configs)
    yield storage
    storage.close()


def _journal(sm: StorageManager, prefix: str = "v:", **kw: Any) -> list[tuple[str, str]]:
    return [(e.type, e.path) for e in sm.events(prefix, **kw)]


# ------------------------------------------------------------------ hostile paths
@pytest.mark.parametrize("name", [".storied/x", "d/.storied/x", ".storied", "d/e/.storied",
                                  ".STORIED/x", ".storied./x"])
def test_reserved_paths_are_refused_and_never_journaled(sm: StorageManager, name: str) -> None:
    seen: list[str] = []
    sm.on("*", lambda node, info: seen.append(node.path))
    with pytest.raises(StoragePermissionError):
        sm.node(f"v:{name}").write_bytes(b"evil")
    with pytest.raises(StoragePermissionError):
        sm.node(f"v:{name}").lock(timeout=0.5).acquire()
    with pytest.raises(StoragePermissionError):
        list(sm.events(f"v:{name}"))
    assert seen == []
    assert _journal(sm) == []


@pytest.mark.parametrize("name", ["a\nb.txt", "a\tb.txt", "x\x00y", "../x", "d/../../x"])
def test_control_characters_and_dotdot_are_refused_with_clear_errors(
        sm: StorageManager, name: str) -> None:
    with pytest.raises((InvalidArgumentError, PathEscapeError, StorageError)) as caught:
        sm.node(f"v:{name}").write_bytes(b"1")
    assert isinstance(caught.value, ValueError | StorageError)
    assert _journal(sm) == []


def test_odd_but_valid_names_are_journaled_verbatim(sm: StorageManager) -> None:
    names = ["100%.txt", "caf\u00e9.txt", "cafe\u0301.txt", "000000000001.json", "2",
             "sp ace "]
    for name in names:
        sm.node(f"v:{name}").write_bytes(name.encode())
    assert _journal(sm) == [("version_created", n) for n in names]
    cursors = [e.cursor for e in sm.events("v:")]
    assert cursors == [str(i) for i in range(1, len(names) + 1)]


# ------------------------------------------------------------------ events(): prefixes
def test_prefix_is_a_path_prefix_not_a_string_prefix(sm: StorageManager) -> None:
    for path in ("doc/inner", "docs/x", "docs/y/z", "doc.txt", "docsx"):
        sm.node(f"v:{path}").write_bytes(b"1")
    assert _journal(sm, "v:doc") == [("version_created", "doc/inner")]
    assert _journal(sm, "v:doc/") == [("version_created", "doc/inner")]
    assert [p for _, p in _journal(sm, "v:docs")] == ["docs/x", "docs/y/z"]
    assert _journal(sm, "v:docs/x") == [("version_created", "docs/x")]  # a file prefix
    assert _journal(sm, "v:doc*") == []  # not a glob
    assert _journal(sm, "v:nowhere") == []


# ------------------------------------------------------------------ events(): cursors
@pytest.mark.parametrize("cursor", ["-1", "", " 1", "1.0", "abc", "1e3", "9" * 16])
def test_malformed_cursors_are_invalid_argument_at_the_call(sm: StorageManager,
                                                            cursor: str) -> None:
    with pytest.raises(InvalidArgumentError):
        sm.events("v:", since=cursor)


@pytest.mark.parametrize("cursor", ["\u00b3", "\u2460", "\u0663", "\uff13", "\u0663\u0663"])
def test_non_ascii_digit_cursors_are_refused_as_invalid(sm: StorageManager,
                                                        cursor: str) -> None:
    """Defect: ``str.isdigit`` accepts superscripts and other scripts' digits. '\u00b3'
    raised a raw ``int()`` ValueError; '\u0663' (Arabic-Indic three) was silently cursor 3."""
    for i in range(5):
        sm.node(f"v:f{i}").write_bytes(b"1")
    with pytest.raises(InvalidArgumentError, match="Invalid journal cursor"):
        parse_cursor(cursor)
    with pytest.raises(InvalidArgumentError, match="Invalid journal cursor"):
        sm.events("v:", since=cursor)
    with pytest.raises(InvalidArgumentError, match="Invalid journal cursor"):
        sm.watch("v:", lambda event: None, since=cursor)


@pytest.mark.parametrize("cursor", ["6", "100", "998", "999", "1999", "999999999999999"])
def test_a_cursor_ahead_of_the_journal_fails_instead_of_yielding_nothing(
        sm: StorageManager, cursor: str) -> None:
    """Defect: a cursor at a bucket's last number (999, 1999, ...) ahead of the journal was
    taken as existing: events() yielded nothing and a watch waited for number 1000, skipping
    every event in between (EVENTS.md §5: such a read fails, 'ahead of the journal')."""
    for i in range(5):
        sm.node(f"v:f{i}").write_bytes(b"1")
    with pytest.raises(InvalidArgumentError, match="ahead of the journal"):
        list(sm.events("v:", since=cursor))


def test_a_real_cursor_at_a_bucket_end_is_idle_then_reads_on(sm: StorageManager) -> None:
    """The fix above must not refuse a cursor that exists: 999 of a 999-entry journal, read
    by this process and by another one (a second manager: no tail known)."""
    from storied.events.view import store_of

    history = sm.history("v")
    assert history is not None
    store = store_of(history)
    for i in range(999):
        store.append("file_deleted", f"f{i}", None, {"path": f"f{i}", "version_id": None})
    other = StorageManager()
    other.configure([dict(sm._configs["v"])])
    for reader in (sm, other):
        assert list(reader.events("v:", since="999")) == []
        with pytest.raises(InvalidArgumentError, match="ahead of the journal"):
            list(reader.events("v:", since="1999"))
    sm.node("v:last").write_bytes(b"1")
    for reader in (sm, other):
        assert [(e.cursor, e.path) for e in reader.events("v:", since="999")] == \
            [("1000", "last")]
        assert [e.cursor for e in reader.events("v:", since="998")] == ["999", "1000"]
    other.close()


def test_a_watch_from_a_cursor_ahead_stops_with_the_error(sm: StorageManager) -> None:
    sm.node("v:a").write_bytes(b"1")
    with sm.watch("v:", lambda event: None, poll=0.02, since="999") as watch:
        deadline = time.monotonic() + 5
        while watch.running and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not watch.running
        assert isinstance(watch.error, InvalidArgumentError)


def test_resuming_from_every_cursor_misses_nothing_and_repeats_nothing(
        sm: StorageManager) -> None:
    for i in range(7):
        sm.node(f"v:d/f{i}").write_bytes(b"%d" % i)
    events = list(sm.events("v:"))
    assert _journal(sm, since="0") == [(e.type, e.path) for e in events]
    assert list(sm.events("v:", since=events[-1].cursor)) == []  # the tail itself: idle
    for at, event in enumerate(events):
        assert [e.cursor for e in sm.events("v:", since=event.cursor)] == \
            [e.cursor for e in events[at + 1:]]


def test_limits(sm: StorageManager) -> None:
    for i in range(3):
        sm.node(f"v:f{i}").write_bytes(b"1")
    assert list(sm.events("v:", limit=0)) == []
    assert len(list(sm.events("v:", limit=2))) == 2
    for bad in (-1, 2.5, True, "3"):
        with pytest.raises(InvalidArgumentError):
            sm.events("v:", limit=bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------ on(): subscriptions
@pytest.mark.parametrize("bad", [{"path": 3}, {"path": b"a/*"}, {"mount": 3},
                                 {"mount": ["v"]}])
def test_a_malformed_filter_is_refused_at_on_and_never_breaks_writes(
        sm: StorageManager, bad: dict[str, Any]) -> None:
    """Defect: ``on(..., path=3)`` was accepted, then every later write of the manager raised
    a raw ``TypeError`` from fnmatch (after the write had happened)."""
    with pytest.raises(InvalidArgumentError):
        sm.on("file_written", lambda node, info: None, **bad)
    assert sm.node("p:after.txt").write_bytes(b"ok")
    assert sm.node("p:after.txt").read_bytes() == b"ok"


def test_fnmatch_filters_with_odd_characters(sm: StorageManager) -> None:
    got: dict[str, list[str]] = {}

    def record(pattern: str) -> Callable[[Any, dict[str, Any]], None]:
        return lambda node, info: got.setdefault(pattern, []).append(node.path)

    for pattern in ("[", "a/*", "a/[!x]*", "*%*", "a/?"):
        sm.on("file_written", record(pattern), path=pattern)
    for path in ("a/b", "[", "a/xy", "100%", "a/bc"):
        sm.node(f"p:{path}").write_bytes(b"1")
    assert got == {"[": ["["], "a/*": ["a/b", "a/xy", "a/bc"], "a/[!x]*": ["a/b", "a/bc"],
                   "*%*": ["100%"], "a/?": ["a/b"]}


def test_a_callback_cancelling_itself_and_subscribing_another(sm: StorageManager) -> None:
    order: list[str] = []

    def first(node: Any, info: dict[str, Any]) -> None:
        order.append("first")
        sub.cancel()
        sm.on("file_written", lambda n, i: order.append("late"))

    sub = sm.on("file_written", first)
    sm.on("file_written", lambda n, i: order.append("second"))
    sm.node("p:x").write_bytes(b"1")
    sm.node("p:y").write_bytes(b"1")
    assert order == ["first", "second", "second", "late"]  # the new one from the next event
    assert not sub.active


def test_a_callback_writing_what_it_listens_to_stops_at_the_depth_limit(
        sm: StorageManager) -> None:
    from storied.events.bus import MAX_DEPTH

    calls = [0]

    def again(node: Any, info: dict[str, Any]) -> None:
        calls[0] += 1
        node.write_bytes(b"again %d" % calls[0])

    sm.on("version_created", again)
    sm.node("v:r").write_bytes(b"1")
    assert calls[0] == MAX_DEPTH
    assert len(_journal(sm)) == MAX_DEPTH + 1  # every write that happened is recorded
    assert sm.node("v:r").read_bytes() == b"again %d" % MAX_DEPTH


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_a_callback_raising_base_exception_propagates_after_the_write(
        sm: StorageManager, exc: type[BaseException]) -> None:
    """Documented here: ``Exception`` from a callback is logged and swallowed, a
    ``BaseException`` (Ctrl-C, exit) is not; the write and its journal entry are done."""
    def stop(node: Any, info: dict[str, Any]) -> None:
        raise exc()

    sm.on("version_created", stop)
    with pytest.raises(exc):
        sm.node("v:k").write_bytes(b"1")
    assert sm.node("v:k").read_bytes() == b"1"
    assert _journal(sm) == [("version_created", "k")]


# ------------------------------------------------------------------ watch
@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_a_watch_callback_raising_base_exception_stops_the_watch_and_says_why(
        sm: StorageManager, exc: type[BaseException]) -> None:
    """Defect: the watch thread died (KeyboardInterrupt: a raw thread traceback on stderr)
    and ``watch.error`` stayed None, so nothing told the caller why it stopped."""
    sm.node("v:a").write_bytes(b"1")

    def stop(event: Any) -> None:
        raise exc("from the callback")

    with sm.watch("v:", stop, poll=0.02, since="0") as watch:
        deadline = time.monotonic() + 5
        while watch.running and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not watch.running
        assert isinstance(watch.error, exc)
        assert watch.cursor == "0"  # that event was not handled: resuming retries it


def test_watch_sees_only_its_prefix_and_resumes_from_cursor(sm: StorageManager) -> None:
    seen: list[str] = []
    with sm.watch("v:doc", lambda e: seen.append(e.path), poll=0.02) as watch:
        sm.node("v:docs/x").write_bytes(b"1")
        sm.node("v:doc/y").write_bytes(b"1")
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
    assert seen == ["doc/y"]
    assert watch.cursor == "2"


# ------------------------------------------------------------------ locks
def test_lock_a_missing_file_then_write_it_inside(sm: StorageManager) -> None:
    for mount in ("v", "p"):
        node = sm.node(f"{mount}:new/file.txt")
        with node.lock(timeout=2, ttl=5) as lock:
            node.write_bytes(b"inside")
            assert lock.held and lock.token == 1
        assert node.read_bytes() == b"inside"
        with node.lock(timeout=2, ttl=5) as again:
            node.delete()
        assert again.token == 2 and not node.exists()


def test_nested_lock_of_the_same_node_times_out_clearly(sm: StorageManager) -> None:
    node = sm.node("p:job")
    with node.lock(timeout=1, ttl=5) as outer:
        started = time.monotonic()
        with pytest.raises(LockTimeout, match=r"not acquired within 0\.2 s"):
            node.lock(timeout=0.2, ttl=5).acquire()
        assert time.monotonic() - started < 3
        with pytest.raises(InvalidArgumentError, match="already held"):
            outer.acquire()
        assert outer.held


def test_mount_root_and_directory_locks(sm: StorageManager) -> None:
    sm.node("p:dir/f").write_bytes(b"1")
    with sm.node("p:").lock(timeout=1, ttl=5) as root, \
            sm.node("p:dir").lock(timeout=1, ttl=5) as folder:
        assert root.held and folder.held
    assert [p.name for p in sm.node("p:").iterdir()] == ["dir"]  # lock objects stay hidden


@pytest.mark.parametrize("kwargs", [{"timeout": -1}, {"ttl": 0}, {"ttl": 0.01},
                                    {"ttl": float("nan")}, {"timeout": True},
                                    {"ttl": "5"}])
def test_lock_arguments_out_of_range(sm: StorageManager, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        sm.node("p:x").lock(**kwargs)


def test_release_twice_and_from_another_thread(sm: StorageManager) -> None:
    node = sm.node("p:job")
    lock = node.lock(timeout=1, ttl=5)
    lock.acquire()
    thread = threading.Thread(target=lock.release)
    thread.start()
    thread.join()
    lock.release()  # a no-op
    assert not lock.held
    with node.lock(timeout=0.5, ttl=5) as other:
        assert other.token == 2


def test_a_short_ttl_lease_is_renewed_while_held(sm: StorageManager) -> None:
    node = sm.node("p:short")
    with node.lock(timeout=1, ttl=0.15) as lock:
        time.sleep(0.5)  # three ttls: renewals keep it
        assert lock.held and not lock.lost
        node.write_bytes(b"still mine")
    assert node.read_bytes() == b"still mine"


def test_guarded_writes_refused_once_the_lease_is_lost(sm: StorageManager) -> None:
    node, other = sm.node("v:job.txt"), sm.node("v:other.txt")
    node.write_bytes(b"orig")
    lock = node.lock(timeout=1, ttl=5)
    lock.acquire()
    lock._lost = True  # what a takeover leaves (tested for real in test_hd_locks.py)
    attempts: dict[str, Callable[[], object]] = {
        "write_bytes": lambda: node.write_bytes(b"x"),
        "write_text": lambda: node.write_text("x"),
        "open_wb": lambda: node.open("wb").close(),
        "delete": lambda: node.delete(),
        "copy_into": lambda: other.copy_to(node),
        "move_into": lambda: other.move_to(node),
        "move_away": lambda: node.move_to("v:away.txt"),
        "if_match": lambda: node.write_bytes(b"x", if_match=node.info().etag),
    }
    other.write_bytes(b"other")
    for name, attempt in attempts.items():
        with pytest.raises(LockLostError):
            attempt()
        assert node.read_bytes() == b"orig", name
    with pytest.raises(LockLostError):
        lock.__exit__(None, None, None)


def test_a_lock_acquired_callback_raising_base_exception_does_not_leak_the_lock(
        sm: StorageManager) -> None:
    """Defect: ``lock_acquired`` is emitted inside ``acquire``; a callback raising
    KeyboardInterrupt made ``with`` fail before its body, ``__exit__`` never ran and the
    lease stayed held and renewed in the background until the process exited."""
    def stop(node: Any, info: dict[str, Any]) -> None:
        raise KeyboardInterrupt

    sub = sm.on("lock_acquired", stop)
    lock = sm.node("p:job").lock(timeout=1, ttl=5)
    with pytest.raises(KeyboardInterrupt), lock:
        pytest.fail("the body must not run")
    sub.cancel()
    assert not lock.held
    with sm.node("p:job").lock(timeout=0.3, ttl=5) as again:
        assert again.held


# ------------------------------------------------------------------ conditional writes
def test_if_match_stale_missing_and_fresh(sm: StorageManager) -> None:
    for mount in ("v", "p"):
        node = sm.node(f"{mount}:c/f.txt")
        with pytest.raises(StorageNotFoundError):
            node.write_bytes(b"x", if_match="0123abcd")
        assert not node.exists()
        node.write_bytes(b"one")
        first = node.info().etag
        node.write_bytes(b"two")
        second = node.info().etag
        assert first and second and first != second
        with pytest.raises(PreconditionFailedError):
            node.write_bytes(b"stale", if_match=first)
        assert node.read_bytes() == b"two"
        assert node.write_bytes(b"three", if_match=second)
        assert node.read_bytes() == b"three"
        with pytest.raises(StorageAlreadyExistsError):
            node.write_bytes(b"x", create_only=True)
        with pytest.raises(InvalidArgumentError):
            node.write_bytes(b"x", if_match=second, create_only=True)
    assert _journal(sm) == [("version_created", "c/f.txt")] * 3  # refused ones: nothing


@pytest.mark.parametrize("mount", ["v", "p"])
def test_create_only_race_has_exactly_one_winner(sm: StorageManager, mount: str) -> None:
    def go(i: int, target: Any, barrier: threading.Barrier, wins: list[int],
           losses: list[type[BaseException]]) -> None:
        barrier.wait()
        try:
            target.write_bytes(bytes([i]) * 100_000, create_only=True)
            wins.append(i)
        except Exception as exc:  # what kind: asserted below
            losses.append(type(exc))

    for round_ in range(4):
        target = sm.node(f"{mount}:race/{round_}.bin")
        wins: list[int] = []
        losses: list[type[BaseException]] = []
        barrier = threading.Barrier(4)
        threads = [threading.Thread(target=go, args=(i, target, barrier, wins, losses))
                   for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(wins) == 1 and losses == [StorageAlreadyExistsError] * 3
        assert target.read_bytes() == bytes([wins[0]]) * 100_000
    if mount == "v":
        assert len(_journal(sm, "v:race")) == 4
