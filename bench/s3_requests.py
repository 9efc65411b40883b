"""S3 requests per operation: storied vs genro-storage 0.8.4, through one counting endpoint.

Starts moto's S3 server on 127.0.0.1 and a counting proxy in front of it; both libraries talk
to the proxy, run the same operations, and the proxy counts what each one sent. Run:
``python3 dev.py bench`` (or ``.venv/bin/python bench/s3_requests.py``).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable
from typing import Any

from storied import StorageManager
from storied.testing.s3server import (
    CountingProxy,
    format_counts,
    make_bucket,
    measure_requests,
    start_moto,
)

N_FILES = 20
ZIP_MEMBER = b"a small member in the middle of a big archive\n" * 20


def _big_zip() -> bytes:
    """A ~20 MB zip (two 10 MB incompressible members around one small text member)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("a.bin", os.urandom(10 * 1024 * 1024))
        archive.writestr("small.txt", ZIP_MEMBER)
        archive.writestr("z.bin", os.urandom(10 * 1024 * 1024))
    return buffer.getvalue()




def storied_ops(endpoint: str, bucket: str, local: str) -> dict[str, Callable[[], Any]]:
    sm = StorageManager()
    sm.configure([
        {"name": "s3", "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
         "key": "testing", "secret": "testing"},
        {"name": "home", "type": "local", "base_path": local},
    ])
    node = sm.node("s3:docs/file.txt")
    return _ops(sm, node, lambda: sm.node("s3:tree"), lambda: sm.node("home:copy"))


def genro_ops(endpoint: str, bucket: str, local: str) -> dict[str, Callable[[], Any]] | None:
    try:
        import genro_storage
    except ImportError:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm = genro_storage.StorageManager()
        sm.configure([
            {"name": "s3", "protocol": "s3", "bucket": bucket, "endpoint_url": endpoint,
             "key": "testing", "secret": "testing"},
            {"name": "home", "protocol": "local", "base_path": local},
        ])
    node = sm.node("s3:docs/file.txt")
    return _ops(sm, node, lambda: sm.node("s3:tree"), lambda: sm.node("home:copy"))


def _ops(sm: Any, node: Any, tree: Callable[[], Any], dest: Callable[[], Any]) -> dict[str, Any]:
    def listed_md5() -> None:
        for child in node.parent.children():
            child.md5hash()

    def zip_member() -> None:
        with sm.node("s3:big.zip").open("rb") as stream, zipfile.ZipFile(stream) as archive:
            assert archive.read("small.txt") == ZIP_MEMBER

    return {
        "write_bytes (small)": lambda: node.write_bytes(b"hello world"),
        "read_bytes": node.read_bytes,
        "exists": node.exists,
        "md5hash": node.md5hash,
        "children() + md5hash each (1 file)": listed_md5,
        "set_metadata (3 keys)": lambda: node.set_metadata({"a": "1", "b": "2", "c": "3"}),
        "copy one file to local": lambda: node.copy_to(sm.node("home:one.txt")),
        f"copy dir of {N_FILES} files to local": lambda: tree().copy_to(dest()),
        "re-copy, skip='hash', unchanged": lambda: tree().copy_to(dest(), skip="hash"),
        "zipfile: small member of a 20 MB zip": zip_member,
    }


def main() -> None:
    moto = start_moto()
    proxy = CountingProxy(moto.endpoint_url)
    tmp = tempfile.mkdtemp(prefix="storied-s3bench-")
    try:
        results: dict[str, dict[str, Counter[str] | str]] = {}
        relayed: dict[str, int] = {}
        archive = _big_zip()
        for name, factory in (("storied", storied_ops), ("genro-storage 0.8.4", genro_ops)):
            bucket = make_bucket(moto.endpoint_url, f"bench-{name.split()[0]}")
            seed = StorageManager()
            seed.configure([{"name": "s", "type": "s3", "bucket": bucket,
                             "endpoint_url": moto.endpoint_url, "key": "t", "secret": "t"}])
            for i in range(N_FILES):
                seed.node(f"s:tree/f{i:02d}.txt").write_bytes(f"file {i}\n".encode() * 50)
            seed.node("s:big.zip").write_bytes(archive)
            local = f"{tmp}/{name.split()[0]}"
            os.makedirs(local)
            ops = factory(proxy.endpoint_url, bucket, local)
            if ops is None:
                continue
            ops["write_bytes (small)"]()  # warm-up: connection setup and one-time probes
            results[name] = {label: measure_requests(proxy, op) for label, op in ops.items()}
            relayed[name] = proxy.bytes_sent  # of the last operation: the zip member read
        print("S3 requests per operation (moto server behind a counting proxy)")
        header = f"{'operation':<38} " + " ".join(f"{n:<34}" for n in results)
        print(header)
        for label in next(iter(results.values())):
            cells = " ".join(f"{format_counts(r[label]):<34}" for r in results.values())
            print(f"{label:<38} {cells}")
        for name, sent in relayed.items():
            print(f"zip member read, {name}: {sent / 1e6:.1f} MB of {len(archive) / 1e6:.1f} MB "
                  "sent by the server (bounded GETs; a dropped body may add socket buffers)")
    finally:
        proxy.stop()
        moto.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
