"""Large S3 transfers: storied's stream_upload / stream_download vs boto3's upload_file /
download_file (s3transfer, default TransferConfig), on moto.

moto runs in this process (a thread on 127.0.0.1); every transfer runs in a fresh subprocess
that measures its own wall time and its peak RSS over a baseline taken after imports and the
client's first request (``VmHWM`` of ``/proc/self/status``, reset to the baseline through
``/proc/self/clear_refs``: ``ru_maxrss`` would keep the parent's peak across fork + exec).
Both sides read from / write to a file on local disk. Targets (issue 10): throughput >= 1.0x
boto3, RSS <= 100 MiB over baseline. Run::

    .venv/bin/python bench/s3_large.py            # 1 GiB
    .venv/bin/python bench/s3_large.py --mib 128  # a quick run

moto answers each ranged GET by copying the whole object under a lock, so downloads of a
large object are slow for both sides alike; the ratio is what counts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import uuid
from typing import Any

from storied.testing.s3server import make_bucket, s3_client, start_moto

MiB = 1024 * 1024

_CHILD = textwrap.dedent("""
    import json, sys, time
    args = json.loads(sys.argv[1])
    if args["tool"] == "boto3":
        import boto3
        client = boto3.client("s3", endpoint_url=args["endpoint"], region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        client.put_object(Bucket=args["bucket"], Key="warm-up.txt", Body=b"x")
        def upload():
            client.upload_file(args["path"], args["bucket"], args["key"])
        def download():
            client.download_file(args["bucket"], args["key"], args["path"])
    else:
        from storied import StorageManager
        sm = StorageManager()
        sm.configure([{"name": "s3", "type": "s3", "bucket": args["bucket"],
                       "endpoint_url": args["endpoint"], "key": "testing",
                       "secret": "testing", **args["mount"]}])
        node = sm.node("s3:" + args["key"])
        sm.node("s3:warm-up.txt").write_bytes(b"x")  # probes, imports: before the baseline
        node.versions
        def upload():
            with open(args["path"], "rb") as source:
                node.stream_upload(source)
        def download():
            with open(args["path"], "wb") as out, node.stream_download() as stream:
                for chunk in stream:
                    out.write(chunk)
    def status(field):  # KiB; VmHWM is this process's own peak (ru_maxrss keeps the
        with open("/proc/self/status") as f:  # parent's across fork + exec)
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))
    base = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak restarts from the current RSS
    started = time.perf_counter()
    (upload if args["op"] == "upload" else download)()
    took = time.perf_counter() - started
    peak = max(status("VmHWM"), base)
    print(json.dumps({"seconds": took, "rss_mib": (peak - base) / 1024}))
""")


def _run(**args: Any) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)], check=True,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _md5(path: str) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(8 * MiB):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="object size in MiB (1024)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds (best of; 1)")
    parser.add_argument("--concurrency", type=int, default=0,
                        help="storied's max_concurrency (0: the mount default)")
    options = parser.parse_args()
    size = options.mib * MiB
    moto = start_moto()
    bucket = make_bucket(moto.endpoint_url, f"bench-large-{uuid.uuid4().hex[:8]}")
    with tempfile.TemporaryDirectory(prefix="storied-bench-") as tmp:
        source = os.path.join(tmp, "source.bin")
        with open(source, "wb") as f:
            for _ in range(size // MiB):
                f.write(os.urandom(MiB))
        expected = _md5(source)
        rows: dict[str, dict[str, float]] = {}
        mount = {"max_concurrency": options.concurrency} if options.concurrency else {}
        common = {"endpoint": moto.endpoint_url, "bucket": bucket, "mount": mount}
        client = s3_client(moto.endpoint_url)
        for round_ in range(options.repeat):  # the order alternates: the server's state too
            for tool in ("storied", "boto3") if round_ % 2 == 0 else ("boto3", "storied"):
                key = f"{tool}.bin"
                measured = {"upload": _run(tool=tool, op="upload", path=source, key=key,
                                           **common)}  # fmt: skip
                out = os.path.join(tmp, f"{tool}.out")
                measured["download"] = _run(tool=tool, op="download", path=out, key=key,
                                            **common)  # fmt: skip
                if _md5(out) != expected:
                    raise SystemExit(f"{tool}: the downloaded file differs from the source")
                os.remove(out)
                client.delete_object(Bucket=bucket, Key=key)  # moto holds the same each time
                for op, row in measured.items():
                    best = rows.get(f"{tool} {op}")
                    if best is None or row["seconds"] < best["seconds"]:
                        rows[f"{tool} {op}"] = row
        client.close()
    moto.stop()
    print(f"S3 (moto) transfer of {size // MiB} MiB, each in a fresh subprocess, best of "
          f"{options.repeat}")
    print(f"{'':18}{'seconds':>9}{'MiB/s':>9}{'RSS +MiB':>10}")
    for name, row in sorted(rows.items()):
        rate = size / MiB / row["seconds"]
        print(f"{name:18}{row['seconds']:9.2f}{rate:9.1f}{row['rss_mib']:10.1f}")
    for op in ("upload", "download"):
        ratio = rows[f"boto3 {op}"]["seconds"] / rows[f"storied {op}"]["seconds"]
        print(f"storied {op} throughput vs boto3: {ratio:.2f}x (target >= 1.0x); "
              f"RSS over baseline {rows[f'storied {op}']['rss_mib']:.0f} MiB (target <= 100)")


if __name__ == "__main__":
    main()
