"""Copy 200 small files S3 (moto) -> local: storied parallel vs the usual tools, side by side.

moto runs in its own process (so the clients measured here do not share its interpreter lock),
on 127.0.0.1. Each contender copies the same 200 objects into a fresh local directory; the
rounds are interleaved (every contender once per round, so a busy machine slows all alike)
and each one's best of ``ROUNDS`` counts. Every contender is set up first (clients made,
storied's manager configured and its one-time S3 probes done) and only the copy is timed.
Requests per file are counted for storied through a CountingProxy (a separate run: the proxy
adds latency).
Run: ``.venv/bin/python bench/copy_many.py``.

Contenders: storied (default pool: 8 workers, S3 being remote), storied ``workers=1``
(its sequential path), a boto3 loop, boto3 with an 8-thread pool, s3fs ``get(recursive=True)``,
and obstore (if importable) with its async ``get`` gathered.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

N_FILES = 200
SIZE = 4 * 1024
ROUNDS = 5
PREFIX = "many"


def start_moto_process() -> tuple[subprocess.Popen[str], str]:
    code = ("from storied.testing.s3server import start_moto; import sys, time; "
            "h = start_moto(); print(h.endpoint_url, flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def fill(endpoint: str, bucket: str) -> dict[str, bytes]:
    from storied.testing.s3server import make_bucket, s3_client

    make_bucket(endpoint, bucket)
    client = s3_client(endpoint)
    files = {f"{PREFIX}/d{i % 4}/f{i:03d}.bin": os.urandom(SIZE) for i in range(N_FILES)}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: client.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]),
                      files.items()))
    return files


def storied_copy(endpoint: str, bucket: str, workers: int | None) -> Callable[[str], Any]:
    """A configured manager (its one-time S3 probes done here, as an application does at
    start), then ``copy_to`` per run."""
    from storied import StorageManager

    root = tempfile.mkdtemp(prefix="copy-many-storied-")
    sm = StorageManager()
    sm.configure([{"name": "s3", "type": "s3", "bucket": bucket, "endpoint_url": endpoint,
                   "key": "testing", "secret": "testing"},
                  {"name": "out", "type": "local", "base_path": root}])
    sm.node(f"s3:{PREFIX}").exists()

    def run(dest: str) -> None:
        target = sm.node("out:" + os.path.relpath(dest, root) + "/copy")
        sm.node(f"s3:{PREFIX}").copy_to(target, workers=workers)
    run.root = root  # type: ignore[attr-defined]
    return run


def _keys(client: Any, bucket: str) -> list[str]:
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def _save(dest: str, key: str, data: bytes) -> None:
    path = os.path.join(dest, "copy", key[len(PREFIX) + 1:])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as out:
        out.write(data)


def boto3_loop(endpoint: str, bucket: str) -> Callable[[str], Any]:
    from storied.testing.s3server import s3_client

    client = s3_client(endpoint)

    def run(dest: str) -> None:
        for key in _keys(client, bucket):
            _save(dest, key, client.get_object(Bucket=bucket, Key=key)["Body"].read())
    return run


def boto3_pool(endpoint: str, bucket: str) -> Callable[[str], Any]:
    from storied.testing.s3server import s3_client

    client = s3_client(endpoint)

    def run(dest: str) -> None:
        def one(key: str) -> None:
            _save(dest, key, client.get_object(Bucket=bucket, Key=key)["Body"].read())
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, _keys(client, bucket)))
    return run


def s3fs_get(endpoint: str, bucket: str) -> Callable[[str], Any] | None:
    try:
        import s3fs
    except ImportError:
        return None
    fs = s3fs.S3FileSystem(key="testing", secret="testing",
                           client_kwargs={"endpoint_url": endpoint, "region_name": "us-east-1"},
                           skip_instance_cache=True)

    def run(dest: str) -> None:
        fs.invalidate_cache()
        fs.get(f"{bucket}/{PREFIX}/", os.path.join(dest, "copy") + "/", recursive=True)
    return run


def obstore_get(endpoint: str, bucket: str) -> Callable[[str], Any] | None:
    try:
        import obstore
        from obstore.store import S3Store
    except ImportError:
        return None
    store = S3Store(bucket, endpoint=endpoint, access_key_id="testing",
                    secret_access_key="testing", region="us-east-1",
                    client_options={"allow_http": True})

    def run(dest: str) -> None:
        keys = [m["path"] for batch in obstore.list(store, prefix=PREFIX) for m in batch]

        async def fetch() -> list[bytes]:
            async def one(key: str) -> bytes:
                result = await obstore.get_async(store, key)
                return bytes(await result.bytes_async())
            return await asyncio.gather(*(one(k) for k in keys))
        for key, data in zip(keys, asyncio.run(fetch()), strict=True):
            _save(dest, key, data)
    return run


def timed_once(run: Callable[[str], Any], files: dict[str, bytes]) -> float:
    dest = tempfile.mkdtemp(prefix="round-", dir=getattr(run, "root", None))
    try:
        started = time.perf_counter()
        run(dest)
        took = time.perf_counter() - started
        check(dest, files)
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    return took


def check(dest: str, files: dict[str, bytes]) -> None:
    for key, data in files.items():
        with open(os.path.join(dest, "copy", key[len(PREFIX) + 1:]), "rb") as got:
            assert got.read() == data, key


def storied_requests(endpoint: str, bucket: str) -> dict[str, int]:
    """The requests of one ``copy_to`` on a configured (probed) manager."""
    from storied.testing.s3server import CountingProxy

    with CountingProxy(endpoint) as proxy:
        run = storied_copy(proxy.endpoint_url, bucket, None)
        dest = tempfile.mkdtemp(prefix="round-", dir=run.root)  # type: ignore[attr-defined]
        proxy.reset()
        run(dest)
        counts = dict(proxy.counts)
    shutil.rmtree(run.root, ignore_errors=True)  # type: ignore[attr-defined]
    return counts


def main() -> None:
    proc, endpoint = start_moto_process()
    try:
        bucket = f"many-{uuid.uuid4().hex[:10]}"
        files = fill(endpoint, bucket)
        contenders: list[tuple[str, Callable[[str], Any] | None]] = [
            ("storied (parallel, default 8 workers)", storied_copy(endpoint, bucket, None)),
            ("storied workers=1 (sequential)", storied_copy(endpoint, bucket, 1)),
            ("boto3 loop", boto3_loop(endpoint, bucket)),
            ("boto3 8-thread pool", boto3_pool(endpoint, bucket)),
            ("s3fs get(recursive=True)", s3fs_get(endpoint, bucket)),
            ("obstore async gather", obstore_get(endpoint, bucket)),
        ]
        for name, run in contenders:
            if run is None:
                print(f"{name:<40} not installed")
        ready = [(name, run) for name, run in contenders if run is not None]
        samples: dict[str, list[float]] = {name: [] for name, _ in ready}
        for _ in range(ROUNDS):  # interleaved: a busy machine slows every contender alike
            for name, run in ready:
                samples[name].append(timed_once(run, files))
        for _, run in ready:
            if getattr(run, "root", None):
                shutil.rmtree(run.root, ignore_errors=True)  # type: ignore[attr-defined]
        times = {name: min(found) for name, found in samples.items()}
        pool = times["boto3 8-thread pool"]
        print(f"Copy {N_FILES} files of {SIZE // 1024} KiB, S3 (moto, own process) -> local; "
              f"best of {ROUNDS}")
        print(f"{'contender':<40} {'seconds':>8} {'files/s':>8} {'vs boto3 pool':>14}")
        for name, took in times.items():
            print(f"{name:<40} {took:>8.3f} {N_FILES / took:>8.0f} {pool / took:>13.2f}x")
        counts = storied_requests(endpoint, bucket)
        total = sum(counts.values())
        detail = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
        print(f"storied requests: {total} ({detail}) = {total / N_FILES:.3f} per file")
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
