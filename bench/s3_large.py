"""Large S3 transfers: storied's stream_upload / stream_download vs boto3's upload_file /
download_file (s3transfer, default TransferConfig), on moto.

moto runs in this process (a thread on 127.0.0.1); every transfer runs in a fresh subprocess
that measures its own wall time and its peak RSS over a baseline taken after imports and the
client's first request (``VmHWM`` of ``/proc/self/status``, reset to the baseline through
``/proc/self/clear_refs``: ``ru_maxrss`` would keep the parent's peak across fork + exec).
Both sides read from / write to a file on local disk. Targets (issue 10): throughput >= 1.0x
boto3, RSS <= 100 MiB over baseline. Run::

    .venv/bin/python bench/s3_large.py                       # 1 GiB, best of 3
    .venv/bin/python bench/s3_large.py --mib 128 --repeat 5  # a quick run

Besides wall time each row shows what a busy machine distorts less: the CPU seconds moto spent
on the transfer (this process's CPU time while the child ran: moto is the only thing running
here meanwhile) and the requests per operation (botocore ``after-call`` events in the child).
The physical limit is measured the same way: one bare ``http.client`` PUT of the file (its
bytes streamed in 1 MiB blocks) and one GET of the whole object (the ``raw`` rows).

What moto does (and what it costs each side alike): every UploadPart is spooled to a temporary
file; CompleteMultipartUpload concatenates the parts in one thread (and, for an upload created
without ``ChecksumAlgorithm``, copies the object twice more to hash it whole: why storied asks
for CRC32 per part as ``upload_file`` does); every ranged GET reads the whole object from its
spool file under the key's lock before slicing it, so a download costs moto O(size x GETs) and
runs far below the single GET's rate for both sides.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import uuid
from typing import Any

from storied.testing.s3server import make_bucket, s3_client, start_moto

MiB = 1024 * 1024

_CHILD = textwrap.dedent("""
    import collections, http.client, json, os, sys, time, urllib.parse
    args = json.loads(sys.argv[1])
    calls = collections.Counter()
    def counted(client):
        client.meta.events.register(
            "after-call.s3", lambda model, **_: calls.update([model.name]))
    if args["tool"] == "raw":  # the physical limit: one bare PUT / GET of the same bytes
        import boto3  # only to presign the two URLs
        signer = boto3.client("s3", endpoint_url=args["endpoint"], region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        where = urllib.parse.urlsplit(args["endpoint"])
        conn = http.client.HTTPConnection(where.hostname, where.port, blocksize=1 << 20)
        def url(method):
            target = {"Bucket": args["bucket"], "Key": args["key"]}
            signed = urllib.parse.urlsplit(signer.generate_presigned_url(method, target))
            return f"{signed.path}?{signed.query}"
        put_url, get_url = url("put_object"), url("get_object")
        conn.request("GET", "/")  # the connection is open before the baseline
        conn.getresponse().read()
        def upload():
            with open(args["path"], "rb") as source:
                size = str(os.fstat(source.fileno()).st_size)
                conn.request("PUT", put_url, body=source, headers={"Content-Length": size})
                answer = conn.getresponse()
                answer.read()
            assert answer.status == 200, answer.status
            calls.update(["PUT"])
        def download():
            conn.request("GET", get_url)
            answer = conn.getresponse()
            with open(args["path"], "wb") as out:
                while block := answer.read(1 << 20):
                    out.write(block)
            assert answer.status == 200, answer.status
            calls.update(["GET"])
    elif args["tool"] == "boto3":
        import boto3
        client = boto3.client("s3", endpoint_url=args["endpoint"], region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        client.put_object(Bucket=args["bucket"], Key="warm-up.txt", Body=b"x")
        counted(client)
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
        backend = sm.get_backend("s3")
        while not hasattr(backend, "_client"):
            backend = backend.inner
        counted(backend._client)
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
    started, cpu = time.perf_counter(), time.process_time()
    (upload if args["op"] == "upload" else download)()
    took = time.perf_counter() - started
    peak = max(status("VmHWM"), base)
    print(json.dumps({"seconds": took, "rss_mib": (peak - base) / 1024, "calls": calls,
                      "cpu": time.process_time() - cpu}))
""")


def _cpu() -> float:
    """CPU seconds of this process (moto's threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run(**args: Any) -> dict[str, Any]:
    """One transfer in a fresh subprocess: its seconds, RSS, requests, and moto's CPU."""
    before = _cpu()
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)],
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    if done.returncode:
        raise SystemExit(f"{args['tool']} {args['op']} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["server_cpu"] = _cpu() - before
    return result


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _md5(path: str) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(8 * MiB):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="object size in MiB (1024)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (best of; 3)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=0,
        help="storied's max_concurrency (0: the mount default)",
    )
    parser.add_argument(
        "--ops",
        default="upload,download",
        help="which transfers to time (upload,download; a download needs its upload first)",
    )
    options = parser.parse_args()
    ops = [op for op in ("upload", "download") if op in options.ops.split(",")]
    size = options.mib * MiB
    moto = start_moto()
    bucket = make_bucket(moto.endpoint_url, f"bench-large-{uuid.uuid4().hex[:8]}")
    with tempfile.TemporaryDirectory(prefix="storied-bench-") as tmp:
        source = os.path.join(tmp, "source.bin")
        with open(source, "wb") as f:
            for _ in range(size // MiB):
                f.write(os.urandom(MiB))
        expected = _md5(source)
        rows: dict[str, dict[str, Any]] = {}
        load_before = _load()
        mount = {"max_concurrency": options.concurrency} if options.concurrency else {}
        common = {"endpoint": moto.endpoint_url, "bucket": bucket, "mount": mount}
        client = s3_client(moto.endpoint_url)
        for round_ in range(options.repeat):  # the order alternates: the server's state too
            tools = ("storied", "boto3", "raw")
            for tool in tools if round_ % 2 == 0 else tools[::-1]:
                key = f"{tool}.bin"
                measured = {"upload": _run(tool=tool, op="upload", path=source, key=key,
                                           **common)}  # fmt: skip
                if "download" in ops:
                    out = os.path.join(tmp, f"{tool}.out")
                    measured["download"] = _run(tool=tool, op="download", path=out, key=key,
                                                **common)  # fmt: skip
                    if _md5(out) != expected:
                        raise SystemExit(f"{tool}: the downloaded file differs from the source")
                    os.remove(out)
                if "upload" not in ops:
                    del measured["upload"]
                client.delete_object(Bucket=bucket, Key=key)  # moto holds the same each time
                for op, row in measured.items():
                    best = rows.get(f"{tool} {op}")
                    if best is None or row["seconds"] < best["seconds"]:
                        rows[f"{tool} {op}"] = row
        client.close()
    moto.stop()
    print(
        f"S3 (moto) transfer of {size // MiB} MiB, each in a fresh subprocess, best of "
        f"{options.repeat}; storied max_concurrency {options.concurrency or 'default'}; "
        f"load average {load_before} before, {_load()} after ({os.cpu_count()} CPUs)"
    )
    print(
        f"{'':18}{'seconds':>9}{'MiB/s':>9}{'RSS +MiB':>10}{'CPU s':>7}{'moto CPU s':>12}  requests"
    )
    for name, row in sorted(rows.items()):
        rate = size / MiB / row["seconds"]
        calls = " ".join(f"{k}={v}" for k, v in sorted(row["calls"].items()))
        print(
            f"{name:18}{row['seconds']:9.2f}{rate:9.1f}{row['rss_mib']:10.1f}"
            f"{row['cpu']:7.2f}{row['server_cpu']:12.2f}  {calls}"
        )
    for op in ops:
        ratio = rows[f"boto3 {op}"]["seconds"] / rows[f"storied {op}"]["seconds"]
        cpu = rows[f"storied {op}"]["server_cpu"] / rows[f"boto3 {op}"]["server_cpu"]
        print(
            f"storied {op} throughput vs boto3: {ratio:.2f}x (target >= 1.0x); "
            f"RSS over baseline {rows[f'storied {op}']['rss_mib']:.0f} MiB (target <= 100); "
            f"moto CPU {cpu:.2f}x boto3's"
        )
        for tool in ("storied", "boto3"):
            share = rows[f"raw {op}"]["seconds"] / rows[f"{tool} {op}"]["seconds"]
            print(
                f"  {tool} {op} at {share:.2f}x of one bare {'PUT' if op == 'upload' else 'GET'}"
                " of the same bytes (the physical limit here)"
            )


if __name__ == "__main__":
    main()
