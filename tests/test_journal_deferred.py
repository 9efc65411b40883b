"""Journal entries whose bytes are made when first read (memory stores, EVENTS.md §2): what
is recorded is what the event was at the write, whatever a subscriber or the caller does to
``info`` afterwards; the stored object answers size, etag and MD5 like any other; the entries
of a memory mount and of a local mount read back alike."""

from __future__ import annotations

import collections
import enum
import functools
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from storied import StorageManager
from storied.backends.memory import MemoryBackend, clear_memory_stores
from storied.core.eventing import notify


def _manager(kind: str, tmp_path: Path) -> StorageManager:
    clear_memory_stores()
    sm = StorageManager()
    if kind == "memory":
        sm.configure([{"name": "v", "type": "memory", "versioning": True}])
    else:
        sm.configure([{"name": "v", "type": "local", "base_path": str(tmp_path),
                       "versioning": True}])
    return sm


@pytest.fixture(params=["memory", "local"])
def sm(request: pytest.FixtureRequest, tmp_path: Path) -> StorageManager:
    return _manager(request.param, tmp_path)


def test_a_subscriber_changing_info_does_not_change_the_recorded_event(
        sm: StorageManager) -> None:
    def vandal(node: Any, info: dict[str, Any]) -> None:
        info["metadata"]["author"] = "mallory"
        info["tags"].append("forged")
        info["size"] = -1

    sm.on("version_created", vandal)
    node = sm.node("v:a.txt")
    node.write_bytes(b"hello", metadata={"author": "alice"})
    events = list(sm.events("v:"))
    created = [e for e in events if e.type == "version_created"]
    assert len(created) == 1
    assert created[0].info["metadata"] == {"author": "alice"}
    assert created[0].info["tags"] == []
    assert created[0].info["size"] == 5
    assert created[0].version_id == node.versions[-1]["version_id"]


class Flag(enum.StrEnum):
    ON = "on"


def test_values_json_lacks_are_recorded_the_same_way_on_memory_and_local(
        tmp_path: Path) -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd-value"

    infos: list[dict[str, Any]] = []
    for kind in ("memory", "local"):
        (tmp_path / kind).mkdir()
        sm = _manager(kind, tmp_path / kind)
        node = sm.node("v:n.txt")
        node.write_bytes(b"x")
        shared = {"labels": {"b", "a"}, "odd": Odd(), "pair": (1, [2, 3]), "n": None,
                  "empty": ((), set(), [], {}), "e_tuple": (), "e_set": frozenset(),
                  "ordered": collections.OrderedDict(z=1, a=[1]), "flag": Flag.ON}
        notify(node, "tag_created", functools.partial(dict.copy, shared))
        shared["pair"][1].append(4)  # changed after the append: not recorded
        shared["labels"].add("c")
        last = [e for e in sm.events("v:") if e.type == "tag_created"][-1]
        infos.append(last.info)
        sm.close()
    assert infos[0] == infos[1]
    assert infos[0] == {"labels": ["a", "b"], "odd": "odd-value", "pair": [1, [2, 3]],
                        "n": None, "empty": [[], [], [], {}], "e_tuple": [], "e_set": [],
                        "ordered": {"z": 1, "a": [1]}, "flag": "on", "event": "tag_created"}


def test_a_deferred_object_answers_like_a_written_one() -> None:
    clear_memory_stores()
    backend = MemoryBackend("deferred-test")
    calls: list[int] = []
    body = json.dumps({"k": "v"}).encode()

    def make() -> bytes:
        calls.append(1)
        return body

    backend.create_deferred("j/1.json", make)
    assert calls == []  # nothing encoded at the write
    etag_before = backend.info("j/1.json").etag
    info = backend.info("j/1.json")
    assert info.size == len(body)
    assert info.md5 == hashlib.md5(body).hexdigest()
    assert backend.read_bytes("j/1.json") == body
    assert backend.info("j/1.json").etag == etag_before
    assert len(calls) == 1  # made once, kept
    with pytest.raises(FileExistsError):
        backend.create_deferred("j/1.json", make)
    with pytest.raises(FileExistsError):
        backend.create_new("j/1.json", b"other")
    assert backend.read_bytes("j/1.json") == body
    backend.copy("j/1.json", "j/2.json")
    assert backend.read_bytes("j/2.json") == body


def test_threads_reading_a_fresh_deferred_object_all_see_the_same_bytes() -> None:
    clear_memory_stores()
    backend = MemoryBackend("deferred-race")
    for i in range(200):
        backend.create_deferred(f"j/{i}.json", lambda i=i: json.dumps({"i": i}).encode())
    seen: list[list[bytes]] = [[], [], [], []]
    start = threading.Barrier(4)

    def reader(out: list[bytes]) -> None:
        start.wait()
        out.extend(backend.read_bytes(f"j/{i}.json") for i in range(200))

    threads = [threading.Thread(target=reader, args=(out,)) for out in seen]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    want = [json.dumps({"i": i}).encode() for i in range(200)]
    assert all(out == want for out in seen)
    assert [backend.info(f"j/{i}.json").md5 for i in range(3)] == [
        hashlib.md5(w).hexdigest() for w in want[:3]]
