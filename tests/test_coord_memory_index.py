"""The memory store's per-directory index agrees with a brute-force scan after any mix of
writes, deletes, mkdirs and moves (listing cost is the directory's size, not the store's)."""

from __future__ import annotations

import random

import pytest

from storied.backends.memory import MemoryBackend, _parent
from storied.errors import StorageError

NAMES = ["a", "b", "c", "a/x", "a/y", "b/x", "a/x/1", "a/x/2", "c/z/q", "b/x/9"]


def _scan(backend: MemoryBackend, path: str) -> set[str]:
    store = backend._store
    return {d for d in store.dirs if d and _parent(d) == path} | {
        p for p in store.files if _parent(p) == path
    }


@pytest.mark.parametrize("seed", range(40))
def test_listing_index_matches_a_full_scan(seed: int) -> None:
    rng = random.Random(seed)
    backend = MemoryBackend(f"index-{seed}")
    for _ in range(120):
        op, a, b = rng.choice("wwwdmvr"), rng.choice(NAMES), rng.choice(NAMES)
        try:
            if op == "w":
                backend.write(a, a.encode())
            elif op == "d":
                backend.delete(a, recursive=rng.random() < 0.5)
            elif op == "m":
                backend.mkdir(a, parents=True, exist_ok=True)
            elif op == "v" and not b.startswith(a + "/") and not a.startswith(b + "/"):
                backend.move(a, b)
            elif op == "r":
                backend.delete(a)
        except StorageError:
            pass
        for directory in sorted(backend._store.dirs):
            listed = {i.path for i in backend.list(directory)}
            assert listed == _scan(backend, directory), (op, a, b, directory)
        assert set(backend._store.children) <= backend._store.dirs
