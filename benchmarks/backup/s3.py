"""A 6 GiB backup object to moto's S3 server and back, in multipart, through a network that
cuts connections in the middle of an upload.

    python -m benchmarks.backup.s3 [--gib 6] [--cuts 2] [--record]

- The object is a file written in 64 MiB blocks of random bytes (hashed with SHA-256 as
  it is written), never held in memory whole.
- The upload is tower's own ``S3Client.put_file`` (obstore: 8 MiB parts, four at a time,
  retries with backoff) to moto's S3 server (``moto.server``, signature checks on, as the
  tests start it) through ``tests.backup_support.CuttingProxy``: the first ``--cuts``
  connections are cut after 1 GiB and 3 MiB, in the middle of a part.
- The download is ``S3Client.get_file`` (streamed to a file), hashed and compared.
- Upload and download run in a child process so that its peak RSS (``ru_maxrss``) is the
  client's alone; moto's peak RSS (``VmHWM``) is read too. moto holds a completed
  multipart object in memory several times over while it joins the parts (and again to
  answer a GET), about 4.5 times the object in all, so the run refuses to start without
  that much available memory, and moto runs under an address-space limit: on a shared
  machine it fails alone rather than starve others. A 6 GiB object needs about 29 GiB
  for moto, more than the 24 GiB of this project's machines: record a smaller one.
- Everything (the file, the download, moto's spooled parts) is removed at the end.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.record import record

LOCK = Path("/tmp/tower-bench.lock")
BLOCK = 64 * 1024 * 1024
# moto's peak RSS per byte of a multipart object (measured: 4.3 GiB for 1 GiB): it joins
# the parts into one bytes object on completion, copies it, and reads it whole for a GET.
MOTO_FACTOR = 4.5


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f}/{five:.1f}/{fifteen:.1f}"


def available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_object(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        left = size
        while left:
            block = os.urandom(min(BLOCK, left))
            digest.update(block)
            out.write(block)
            left -= len(block)
    return digest.hexdigest()


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def child(args: argparse.Namespace) -> int:
    """Upload or download with tower's S3 client; print seconds and this process's peak RSS."""
    from controltower.backup.s3 import S3Client

    client = S3Client(
        endpoint=args.endpoint,
        bucket=args.bucket,
        access_key=os.environ["AWS_ACCESS_KEY_ID"],
        secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
    )
    begun = time.monotonic()
    if args.child == "put":
        client.put_file(args.key, Path(args.path))
    else:
        client.get_file(args.key, Path(args.path))
    seconds = time.monotonic() - begun
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mib": rss}))
    return 0


def run_child(
    verb: str, endpoint: str, key: str, path: Path, environ: dict[str, str]
) -> dict[str, float]:
    done = subprocess.run(
        [
            sys.executable,
            *("-m", "benchmarks.backup.s3", "--child", verb, "--endpoint", endpoint),
            *("--bucket", "backups", "--key", key, "--path", str(path)),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **environ},
        timeout=3600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{verb} failed: {done.stderr.strip()[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=6.0)
    parser.add_argument("--cuts", type=int, default=2)
    parser.add_argument("--cut-after", type=int, default=1024 * 1024 * 1024 + 3 * 1024 * 1024)
    parser.add_argument("--record", action="store_true", help="write benchmarks/RESULTS.md")
    parser.add_argument(
        "--no-lock",
        action="store_true",
        help=f"run beside other benchmarks instead of waiting for {LOCK}",
    )
    parser.add_argument("--child", choices=["put", "get"], help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    size = int(args.gib * 1024**3)
    need = MOTO_FACTOR * args.gib + 2
    if available_gib() < need:
        print(
            f"only {available_gib():.1f} GiB of memory available; moto needs about "
            f"{need:.0f} GiB for a {args.gib:g} GiB object ({MOTO_FACTOR:g} times the object, "
            "measured): try a smaller --gib"
        )
        return 2
    LOCK.touch(exist_ok=True)
    with LOCK.open() as lock:
        if not args.no_lock:
            print(f"waiting for {LOCK} (another benchmark may be running)", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        with tempfile.TemporaryDirectory(prefix="tower-s3-bench-") as tmp:
            return run(Path(tmp), size, args)


def run(folder: Path, size: int, args: argparse.Namespace) -> int:
    from tests.backup_support import CuttingProxy, moto_s3
    from tests.conftest import free_port

    loads = [load()]
    source = folder / "object.bin"
    begun = time.monotonic()
    sha = write_object(source, size)
    print(f"wrote {size / 1024**3:.1f} GiB in {time.monotonic() - begun:.0f}s, sha256 {sha[:16]}…")
    limit = int((need_gib := MOTO_FACTOR * size / 1024**3 + 2) * 1024**3)
    previous = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (limit, previous[1]))  # inherited by moto only
    try:
        server = moto_s3(free_port())
        s3 = server.__enter__()
    finally:
        resource.setrlimit(resource.RLIMIT_AS, previous)
    moto_pid = s3.pid
    try:
        proxy = CuttingProxy(
            int(s3.endpoint.rsplit(":", 1)[1]), cuts=args.cuts, after=args.cut_after
        )
        put = run_child("put", proxy.endpoint, "shop/big.dump", source, s3.environ())
        print(f"put: {put}, connections {proxy.connections}, cut {proxy.cut}", flush=True)
        proxy.close()
        stored = s3.objects().get("shop/big.dump", -1)
        loads.append(load())
        back = folder / "back.bin"
        get = run_child("get", s3.endpoint, "shop/big.dump", back, s3.environ())
        print(f"get: {get}", flush=True)
        same = hash_file(back) == sha
        back.unlink()
        moto_rss = peak_rss_mib(moto_pid) if moto_pid else float("nan")
        loads.append(load())
    finally:
        server.__exit__(None, None, None)
    gib = size / 1024**3
    ok = same and stored == size and proxy.cut == args.cuts
    lines = [
        f"`python -m benchmarks.backup.s3 --gib {args.gib:g} --cuts {args.cuts}"
        f"{' --no-lock' if args.no_lock else ''} --record`: "
        f"a {gib:g} GiB object (random bytes) through tower's `S3Client` (obstore) to moto "
        f"{__import__('moto').__version__}'s S3 server on this machine; the upload goes "
        f"through a proxy that cut its first {args.cuts} connections after "
        f"{args.cut_after / 1024**2:.0f} MiB, mid-part. Load average (1/5/15 min) "
        f"{' → '.join(loads)}; moto address-space limit {need_gib:.0f} GiB.",
        "",
        "| step | time | throughput | client peak RSS | result |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| upload (multipart, 8 MiB parts, 4 at a time) | {put['seconds']:.0f} s | "
        f"{size / 1024**2 / put['seconds']:.0f} MiB/s | {put['peak_rss_mib']:.0f} MiB | "
        f"{proxy.cut} connections cut and retried ({proxy.connections} opened); stored "
        f"{stored:,} bytes |",
        f"| download (streamed to a file) | {get['seconds']:.0f} s | "
        f"{size / 1024**2 / get['seconds']:.0f} MiB/s | {get['peak_rss_mib']:.0f} MiB | "
        f"SHA-256 {'identical' if same else 'DIFFERENT'} |",
        "",
        f"moto's own peak RSS: {moto_rss / 1024:.1f} GiB (it joins the parts in memory on "
        "completion and reads the whole object to answer a GET; a real S3 does neither). "
        f"The client stays at {max(put['peak_rss_mib'], get['peak_rss_mib']):.0f} MiB: it "
        "streams from and to files, whatever the object's size. Goal (multipart round trip "
        "of this object checksum-verified, cut connections retried): "
        + ("**met**." if ok else "**not met**."),
    ]
    text = "\n".join(lines)
    print(text)
    if args.record:
        record("backup-s3", text)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
