"""Diff benchmarks: time and peak memory of storied's diffs against a stdlib / naive baseline.

(a) text: two 20,000-line files with 1% of the lines changed (both sides start from two
    strings); unified diff vs
    ``difflib.unified_diff``, side-by-side HTML vs ``difflib.HtmlDiff.make_file(context=True)``;
    also ``node.diff_versions_text`` end to end on a versioned memory mount (no baseline);
(b) JSON: two ~20 MB documents (120,000 records, 300 edits); storied's semantic diff (parse +
    walk) vs a naive "flatten both to {path: value} and compare the dicts" diff (``difflib`` over
    the pretty-printed documents is not run: it did not finish in 300 s on 15 MB);
(c) CSV: 200,000 rows with a key column, 2,000 edited, 500 removed, 500 added; storied's
    streamed keyed diff vs a naive one (both files read whole, ``csv.DictReader`` lists, dicts
    by key);
(d) HTML work bound: 100 KB texts whose every line changes in many places (50 lines of 2,000
    characters, then 1,000 lines of 100), HTML side by side vs storied's own unified diff of the
    same texts; the ratio html/unified is the figure to watch (target <= 3; the long-line case
    took 12-20 s before the intraline budget, against ~1 ms for the unified diff).

Time is the best of a few runs without tracing; peak memory is ``tracemalloc``'s peak during a
separate traced run (inputs are built beforehand and not counted). Prints figures and ratios, no
assertions on speed; result sizes are checked to agree with the baseline.

Run: ``.venv/bin/python bench/diffs.py`` (about a minute); ``bench/diffs.py html`` runs (d) only.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import random
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from storied import StorageManager
from storied.diff.structured import diff_csv, diff_json_bytes
from storied.diff.text import diff_text

RND = random.Random(20240601)
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota"]


def measure(fn: Callable[[], Any], runs: int = 1) -> tuple[float, float, Any]:
    """``(best seconds, peak MiB, result)``: timed untraced, then once under tracemalloc."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    try:
        traced = fn()
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    return best, peak, traced


def report(name: str, ours: tuple[float, float, Any], base: tuple[float, float, Any]) -> None:
    t_ratio = base[0] / ours[0] if ours[0] else float("inf")
    m_ratio = base[1] / ours[1] if ours[1] else float("inf")
    print(
        f"  {name:<34} storied {ours[0]:7.3f} s {ours[1]:8.1f} MiB | "
        f"baseline {base[0]:7.3f} s {base[1]:8.1f} MiB | "
        f"baseline/storied: time x{t_ratio:.2f}, memory x{m_ratio:.2f}",
        flush=True,
    )


# ---------------------------------------------------------------- (a) text
def text_inputs() -> tuple[str, str]:
    lines = [f"{i:05d} " + " ".join(RND.choices(WORDS, k=8)) + "\n" for i in range(20_000)]
    changed = list(lines)
    for i in RND.sample(range(20_000), 200):
        changed[i] = changed[i].replace("a", "A", 2).replace("\n", " # edited\n")
    return "".join(lines), "".join(changed)


def bench_text() -> None:
    old, new = text_inputs()

    def lines(text: str) -> list[str]:
        return text.splitlines(True)

    print("(a) text: 20,000 lines, 200 changed", flush=True)
    ours = measure(lambda: diff_text(old, new, "unified"), runs=3)
    base = measure(
        lambda: "".join(difflib.unified_diff(lines(old), lines(new), "old", "new")), runs=3
    )
    assert ours[2].count("\n+") == base[2].count("\n+"), "unified diffs disagree"
    report("unified", ours, base)
    ours = measure(lambda: diff_text(old, new, "html"), runs=3)
    base = measure(
        lambda: difflib.HtmlDiff().make_file(lines(old), lines(new), context=True), runs=3
    )
    report("html (side by side)", ours, base)
    print(f"  html size: storied {len(ours[2]) / 1e3:.0f} kB, HtmlDiff {len(base[2]) / 1e3:.0f} kB")
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "memory", "versioning": True}])
    node = sm.node("v:big.txt")
    node.write_text(old)
    node.write_text(new)
    seconds, peak, _ = measure(lambda: node.diff_versions_text(), runs=3)
    print(f"  node.diff_versions_text (memory)   {seconds:7.3f} s {peak:8.1f} MiB", flush=True)


# ---------------------------------------------------------------- (b) JSON
def json_inputs() -> tuple[bytes, bytes]:
    records = [
        {
            "id": i,
            "name": f"server-{i:06d}",
            "port": 8000 + i % 1000,
            "enabled": i % 3 == 0,
            "tags": [f"t{j}" for j in range(i % 5)],
            "meta": {"zone": f"z{i % 7}", "weight": i / 7, "owner": "ops team"},
        }
        for i in range(120_000)
    ]
    old = json.dumps({"version": 3, "servers": records}).encode()
    doc = json.loads(old)
    for i in RND.sample(range(120_000), 200):
        doc["servers"][i]["port"] += 1
    for i in RND.sample(range(120_000), 50):
        doc["servers"][i]["meta"]["extra"] = True
    for i in RND.sample(range(120_000), 50):
        del doc["servers"][i]["meta"]["owner"]
    doc["servers"].append({"id": -1})
    return old, json.dumps(doc).encode()


def _flatten(value: Any, path: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{path}.{key}", out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _flatten(item, f"{path}[{index}]", out)
    else:
        out[path] = value
    return out


def naive_json(old: bytes, new: bytes) -> int:
    a, b = _flatten(json.loads(old), "$", {}), _flatten(json.loads(new), "$", {})
    added = [p for p in b if p not in a]
    removed = [p for p in a if p not in b]
    changed = [p for p, v in a.items() if p in b and b[p] != v]
    return len(added) + len(removed) + len(changed)


def bench_json() -> None:
    old, new = json_inputs()
    print(f"(b) JSON: {len(old) / 1e6:.1f} MB vs {len(new) / 1e6:.1f} MB, 301 edits", flush=True)
    ours = measure(lambda: diff_json_bytes(old, new))
    base = measure(lambda: naive_json(old, new))
    print(f"  changes: storied {len(ours[2])} (subtrees), naive {base[2]} (leaves)")
    report("semantic diff (parse + compare)", ours, base)


# ---------------------------------------------------------------- (c) CSV
def csv_inputs() -> tuple[bytes, bytes]:
    header = ["id", "name", "score", "city", "group", "updated"]
    rows = [
        [str(i), f"name-{i}", f"{RND.random():.6f}", f"city{i % 97}", str(i % 13), "2024-06-01"]
        for i in range(200_000)
    ]

    def encode(table: list[list[str]]) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(table)
        return out.getvalue().encode()

    edited = [list(r) for r in rows]
    for i in RND.sample(range(200_000), 2000):
        edited[i][2] = "0.500000"
    dropped = set(RND.sample(range(200_000), 500))
    edited = [r for i, r in enumerate(edited) if i not in dropped]
    edited += [[str(200_000 + i), "new", "1", "x", "0", "2024-06-02"] for i in range(500)]
    return encode(rows), encode(edited)


def naive_csv(old: bytes, new: bytes) -> int:
    a = list(csv.DictReader(io.StringIO(old.decode())))
    b = list(csv.DictReader(io.StringIO(new.decode())))
    by_a, by_b = {r["id"]: r for r in a}, {r["id"]: r for r in b}
    added = [r for k, r in by_b.items() if k not in by_a]
    removed = [r for k, r in by_a.items() if k not in by_b]
    changed = [k for k, r in by_a.items() if k in by_b and by_b[k] != r]
    return len(added) + len(removed) + len(changed)


def bench_csv() -> None:
    old, new = csv_inputs()
    print(f"(c) CSV: 200,000 rows ({len(old) / 1e6:.1f} MB), key 'id'", flush=True)
    ours = measure(lambda: diff_csv(io.BytesIO(old), io.BytesIO(new), key="id"))
    base = measure(lambda: naive_csv(old, new))
    found = ours[2]
    total = len(found.added) + len(found.removed) + len(found.changed)
    assert total == base[2], f"CSV diffs disagree: {total} vs {base[2]}"
    print(
        f"  rows: {len(found.changed)} changed, {len(found.added)} added, "
        f"{len(found.removed)} removed"
    )
    report("keyed row diff", ours, base)


# ---------------------------------------------------------------- (d) HTML work bound
def scattered_edits(lines: int, width: int, edits: int) -> tuple[str, str]:
    """Two texts of ``lines`` random lines of ``width`` characters, each line edited in
    ``edits`` random places (a small alphabet: the worst case for character matching)."""
    old, new = [], []
    for _ in range(lines):
        chars = RND.choices("abcdefghij ", k=width)
        old.append("".join(chars) + "\n")
        for k in RND.sample(range(width), edits):
            chars[k] = RND.choice("ABCDEFGHIJ")
        new.append("".join(chars) + "\n")
    return "".join(old), "".join(new)


def best_of(fn: Callable[[], Any], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_html_bound() -> None:
    print("(d) HTML diff work bound (every line changed in many places)", flush=True)
    cases = (("50 lines x 2,000 chars", 50, 1990, 200), ("1,000 lines x 100 chars", 1000, 99, 10))
    for name, lines, width, edits in cases:
        old, new = scattered_edits(lines, width, edits)
        unified = best_of(lambda: diff_text(old, new, "unified"), 30)  # noqa: B023
        page = best_of(lambda: diff_text(old, new, "html"), 30)  # noqa: B023
        print(
            f"  {name:<26} {len(old) / 1e3:.0f} KB: unified {unified * 1e3:7.2f} ms, "
            f"html {page * 1e3:7.2f} ms, html/unified x{page / unified:.2f}",
            flush=True,
        )
    sm = StorageManager()
    sm.configure([{"name": "v", "type": "memory", "versioning": True}])
    node = sm.node("v:long-lines.txt")
    old, new = scattered_edits(50, 1990, 200)
    node.write_text(old)
    node.write_text(new)
    unified = best_of(lambda: node.diff_versions_text(format="unified"), 30)
    page = best_of(lambda: node.diff_versions_text(format="html"), 30)
    print(
        f"  node.diff_versions_text (memory)  unified {unified * 1e3:7.2f} ms, "
        f"html {page * 1e3:7.2f} ms, html/unified x{page / unified:.2f}",
        flush=True,
    )


if __name__ == "__main__":
    import sys

    started = time.perf_counter()
    if sys.argv[1:] == ["html"]:
        bench_html_bound()
        raise SystemExit(0)
    bench_text()
    bench_json()
    bench_csv()
    bench_html_bound()
    print(f"total {time.perf_counter() - started:.0f} s")
