"""Web browser benchmarks: how fast ``storied web`` answers, through the app (Starlette's test
client, in process: routing, the token check, the API calls, template rendering).

(a) the history page of a file with 10,000 versions on a local portable mount (target:
    < 200 ms), next to ``node.versions`` alone (the history read the page costs);
(b) the page of a folder of 10,000 files (one listing; target: no per-file request, so close to
    the listing's own time, printed next to it), and the
    ``/counts`` request the page's script makes for the 200 visible files;
(c) the side-by-side diff page of two 1 MB text versions (~1% of the lines changed; target:
    < 1 s), next to ``node.diff_versions_text(format='html')`` alone.

Figures are the best and the median of a few runs; no assertion on speed. Building the
10,000 versions takes ~10 s. Run: ``.venv/bin/python bench/web.py``.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from storied import StorageManager
from storied.web import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TOKEN = "bench"
RND = random.Random(13)


def timed(fn: Callable[[], Any], runs: int = 7) -> tuple[float, float]:
    """``(best, median)`` seconds of ``runs`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def report(label: str, best: float, median: float, target: float | None = None) -> None:
    goal = f"   (target < {target * 1000:.0f} ms: {'ok' if median < target else 'MISSED'})" \
        if target else ""
    print(f"{label:<58} best {best * 1000:8.1f} ms   median {median * 1000:8.1f} ms{goal}")


def get(client: TestClient, url: str, **params: str) -> Callable[[], None]:
    def run() -> None:
        response = client.get(url, params=params)
        assert response.status_code == 200, response.text[:300]

    return run


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        storage = StorageManager()
        storage.configure([{"name": "docs", "type": "local", "base_path": str(base),
                            "versioning": True}])
        client = TestClient(create_app(storage, token=TOKEN))
        client.get(f"/?token={TOKEN}")

        start = time.perf_counter()
        node = storage.node("docs:big/history.txt")
        for i in range(10_000):
            node.write_bytes(f"version {i}\n".encode() * (1 + i % 50))
        node.tag_version(5000, "middle")
        node.tag_version(-1, "latest-release")
        print(f"setup: 10,000 versions written in {time.perf_counter() - start:.1f} s")
        report("(a) node.versions (10,000 versions)", *timed(lambda: node.versions))
        report("(a) GET /file: history page of 10,000 versions",
               *timed(get(client, "/file", path="docs:big/history.txt")), target=0.2)
        report("(a) GET /file page 50 (the oldest versions)",
               *timed(get(client, "/file", path="docs:big/history.txt", page="50")),
               target=0.2)

        folder = base / "many"
        folder.mkdir()
        for i in range(10_000):
            (folder / f"file{i:05d}.txt").write_bytes(b"x" * (i % 100))
        for i in range(0, 200, 4):  # a quarter of the visible files have history
            storage.node(f"docs:many/file{i:05d}.txt").write_text(f"v{i}")
        backend = storage.get_backend("docs")
        listing = timed(lambda: list(backend.list("many")))
        report("(b) the listing alone (backend.list of 10,000 files)", *listing)
        page = timed(get(client, "/browse", path="docs:many"))
        report("(b) GET /browse: folder of 10,000 files (one listing)", *page)
        print(f"{'(b) page / listing (median)':<58} {page[1] / listing[1]:.2f}x "
              "(target: one listing, i.e. close to 1x)")
        report("(b) GET /counts: versions + tags of the 200 visible files",
               *timed(get(client, "/counts", path="docs:many"), runs=3))

        lines = [f"{i:06d} " + " ".join(RND.choice("abcdefgh") * 4 for _ in range(12)) + "\n"
                 for i in range(17_000)]
        old = "".join(lines)
        for i in RND.sample(range(len(lines)), len(lines) // 100):
            lines[i] = lines[i].replace("a", "z", 2)
        new = "".join(lines)
        text = storage.node("docs:big/text.txt")
        text.write_text(old)
        text.write_text(new)
        print(f"setup: two text versions of {len(old) / 2**20:.2f} MiB, "
              f"{len(lines) // 100} lines changed")
        report("(c) node.diff_versions_text(format='html')",
               *timed(lambda: text.diff_versions_text(format="html"), runs=3))
        report("(c) GET /diff: side-by-side diff of two 1 MB versions",
               *timed(get(client, "/diff", path="docs:big/text.txt", a="0", b="1"), runs=3),
               target=1.0)


if __name__ == "__main__":
    main()
