"""Compressed rewrites from several OS processes at once (ADR 0030's parallel members): two
processes rewrite one multi-member file over and over (each on a pool of 3 threads) while the
test reads it, whole and by ranges. Every read is exactly one writer's content (never members
of two writes spliced) or the layer's "changed while read" error, and the file ends as one
complete write, on local disk and on a versioned local mount."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storied import StorageManager
from storied.errors import StorageError

MIB = 1024 * 1024
SIZE = 9 * MIB + 123  # three members of 4 MiB of input

WRITER = r"""
import json, sys
from storied import StorageManager
from storied.backends import _compress_pool
_compress_pool.set_threads(3)
config, seed, stop = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
piece = b"".join(b"%02d writer line %08d of a compressible log\n" % (seed, n)
                 for n in range(60_000))
data = (piece * (9 * 1024 * 1024 // len(piece) + 2))[:9 * 1024 * 1024 + 123]
sm = StorageManager()
sm.configure([config])
node = sm.node("c:big.log")
import os
print("ready", flush=True)
rounds = 0
while not os.path.exists(stop) or rounds < 3:
    node.write_bytes(data)
    rounds += 1
print(rounds, flush=True)
"""


def _content(seed: int) -> bytes:
    piece = b"".join(b"%02d writer line %08d of a compressible log\n" % (seed, n)
                     for n in range(60_000))
    return (piece * (SIZE // len(piece) + 2))[:SIZE]


@pytest.mark.parametrize("versioning", [False, True])
def test_two_processes_rewriting_while_one_reads_never_splice(tmp_path: Path,
                                                              versioning: bool) -> None:
    root = tmp_path / "m"
    root.mkdir()
    config = {"name": "c", "type": "local", "base_path": str(root), "compress": ["*.log"],
              "versioning": versioning}
    contents = {hashlib.sha256(_content(s)).hexdigest(): s for s in (1, 2)}
    sm = StorageManager()
    sm.configure([config])
    node = sm.node("c:big.log")
    node.write_bytes(_content(1))  # the file exists before the writers start
    stop = tmp_path / "stop"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, json.dumps(config), str(s),
                               str(stop)], stdout=subprocess.PIPE, text=True)
             for s in (1, 2)]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        whole = ranged = refused = 0
        end = time.monotonic() + 4
        while time.monotonic() < end or whole < 3:
            try:
                data = node.read_bytes()
            except StorageError as exc:  # the file replaced between the index and a member
                assert "chang" in str(exc), exc
                refused += 1
                continue
            assert hashlib.sha256(data).hexdigest() in contents  # one write, whole
            whole += 1
            try:
                with node.open("rb") as fh:
                    fh.seek(4 * MIB - 50)
                    part = fh.read(100)  # across the first member boundary
            except StorageError as exc:
                assert "chang" in str(exc), exc
                refused += 1
                continue
            assert part in (_content(1)[4 * MIB - 50:4 * MIB + 50],
                            _content(2)[4 * MIB - 50:4 * MIB + 50])
            ranged += 1
    finally:
        stop.touch()
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        assert int(out.split()[-1]) >= 3
    final = sm.node("c:big.log").read_bytes()
    assert hashlib.sha256(final).hexdigest() in contents
    assert whole >= 3 and ranged >= 1
    stored = (root / "big.log").read_bytes()
    assert len(stored) * 4 < SIZE  # really stored compressed
    if versioning:
        for version in sm.node("c:big.log").versions:
            with sm.node("c:big.log").open("rb", version=version["version_id"]) as fh:
                body = fh.read()
            assert hashlib.sha256(body).hexdigest() in contents
