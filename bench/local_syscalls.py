"""System calls per local operation (Linux, needs ``strace``): storied vs raw temp+rename.

Runs itself under ``strace -f`` as a child; the child brackets each operation between two
marker calls (``access()`` of a path that does not exist) and the parent counts the calls in
between. Each figure is the smallest count over several repetitions (an allocation may add a
``brk``/``mmap`` now and then). Run: ``python3 bench/local_syscalls.py`` (``-v`` lists the calls
of each operation). To compare with another checkout, put its ``src`` first on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable

REPEAT = 7
DATA = os.urandom(4096)
BEGIN, END = "/storied-syscalls-begin", "/storied-syscalls-end"


def _operations(root: str) -> dict[str, Callable[[int], object]]:
    from storied import StorageManager
    from storied.backends.local import LocalBackend

    os.makedirs(os.path.join(root, "plain"))
    os.makedirs(os.path.join(root, "versioned"))
    os.makedirs(os.path.join(root, "raw"))
    sm = StorageManager()
    sm.configure([
        {"name": "p", "type": "local", "base_path": os.path.join(root, "plain")},
        {"name": "v", "type": "local", "base_path": os.path.join(root, "versioned"),
         "versioning": True},
    ])
    backend = LocalBackend(os.path.join(root, "plain"))
    raw = os.path.join(root, "raw")

    def raw_atomic(i: int) -> None:
        tmp = os.path.join(raw, f".f.bin.tmp{i}")
        with open(tmp, "wb", buffering=0) as f:
            f.write(DATA)
        os.replace(tmp, os.path.join(raw, "f.bin"))

    def raw_read(i: int) -> bytes:
        with open(os.path.join(raw, "f.bin"), "rb", buffering=0) as f:
            return f.readall()

    for k in range(256):  # steady state: every blob fan-out directory exists already
        os.makedirs(os.path.join(root, "versioned", ".storied", "blobs", f"{k:02x}"))
    sm.node("v:d/f.bin").write_bytes(DATA)
    sm.node("p:a/b/f.bin").write_bytes(DATA)
    return {
        "raw temp+rename 4 KiB": raw_atomic,
        "raw read 4 KiB": raw_read,
        "backend.write f.bin": lambda i: backend.write("f.bin", DATA),
        "backend.write a/b/f.bin": lambda i: backend.write("a/b/f.bin", DATA),
        "backend.read_bytes f.bin": lambda i: backend.read_bytes("f.bin"),
        "backend.info a/b/f.bin": lambda i: backend.info("a/b/f.bin"),
        "backend.list_names a/b": lambda i: list(backend.list_names("a/b")),
        "node.write_bytes p:f.bin": lambda i: sm.node("p:f.bin").write_bytes(DATA),
        "node.read_bytes p:f.bin": lambda i: sm.node("p:f.bin").read_bytes(),
        "node.write_bytes v:d/f.bin (versioned)": lambda i: sm.node("v:d/f.bin").write_bytes(
            DATA + i.to_bytes(4, "big")
        ),
        "node.read_bytes v:d/f.bin (versioned)": lambda i: sm.node("v:d/f.bin").read_bytes(),
    }


def child() -> None:
    """Run every operation REPEAT times, each between the two markers."""
    root = tempfile.mkdtemp(prefix="storied-syscalls-")
    try:
        ops = _operations(root)
        for name, op in ops.items():
            op(0)  # warm: imports, caches
            for i in range(1, REPEAT + 1):
                os.access(BEGIN + "/" + name.replace(" ", "~"), os.F_OK)
                op(i)
                os.access(END, os.F_OK)
    finally:
        shutil.rmtree(root)


def parse(trace: str) -> dict[str, list[list[str]]]:
    """Per operation, the list of syscall names of each repetition."""
    runs: dict[str, list[list[str]]] = {}
    current: list[str] | None = None
    for line in trace.splitlines():
        body = line.split(None, 1)[1] if line[:1].isdigit() else line
        call = body.split("(", 1)[0].strip()
        if BEGIN in body:
            name = body.split(BEGIN + "/", 1)[1].split('"', 1)[0].replace("~", " ")
            current = []
            runs.setdefault(name, []).append(current)
            continue
        if END in body:
            current = None
            continue
        if current is not None and call and not call.startswith(("+++", "---", "<...")):
            current.append(call)
    return runs


def main() -> None:
    verbose = "-v" in sys.argv
    if shutil.which("strace") is None:
        sys.exit("strace is not installed (apt-get install strace)")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "trace")
        subprocess.run(
            ["strace", "-f", "-qq", "-o", out, sys.executable, __file__, "--child"],
            check=True,
        )
        with open(out) as f:
            runs = parse(f.read())
    print(f"{'operation':44} syscalls  (fewest of {REPEAT})")
    for name, reps in runs.items():
        best = min(reps, key=len)
        print(f"{name:44} {len(best):5d}")
        if verbose:
            counts = Counter(best)
            print("    " + ", ".join(f"{c}x{n}" if n > 1 else c for c, n in counts.items()))


if __name__ == "__main__":
    if "--child" in sys.argv:
        child()
    else:
        main()
