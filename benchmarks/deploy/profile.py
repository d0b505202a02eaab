"""Where tower's proxy spends its CPU per request: user and system time, then a profile by layer.

    python -m benchmarks.deploy.profile [--seconds 6] [--connections 32] [--record]

The proxy (``controltower.deploy.local.proxy.Proxy``) runs in this process on
uvloop, split 50/50 over two upstreams that answer every request with the same
fixed 340-byte response from a bare asyncio protocol (in their own processes),
so what is measured is the proxy, not an app. The load is the closed loop of
``benchmarks.deploy.proxy`` (its own process). Two runs:

1. unprofiled: the proxy process's user and system CPU per request (getrusage);
2. under ``cProfile`` with a CPU-time clock: the CPU share of each layer
   (asyncio streams, tower's HTTP/1 parser, the proxy's own code, the rest).

It prints one JSON line; ``--record`` writes the figures under the proxy section
of benchmarks/RESULTS.md, as the measured reason behind the proxy's throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import resource
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import free_port, wait_for_port

from controltower.deploy.local.proxy import Proxy, Target

UPSTREAM = """
import asyncio, sys, uvloop
BODY = b'{"ok": true, "items": [1, 2, 3]}' * 10
ANSWER = (b"HTTP/1.1 200 OK\\r\\ncontent-type: application/json\\r\\ncontent-length: %d\\r\\n\\r\\n%s"
          % (len(BODY), BODY))
class Fixed(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""
    def data_received(self, data):
        self.buffer += data
        while b"\\r\\n\\r\\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\\r\\n\\r\\n", 1)
            self.transport.write(ANSWER)
async def main():
    await asyncio.get_running_loop().create_server(Fixed, "127.0.0.1", int(sys.argv[1]))
    await asyncio.Event().wait()
uvloop.run(main())
"""

LAYERS = (
    ("asyncio streams", "asyncio/streams.py"),
    ("HTTP/1 parser (controltower/http1.py)", "controltower/http1.py"),
    ("proxy (deploy/local/proxy.py)", "deploy/local/proxy.py"),
)


async def _run(seconds: float, connections: int, profile: bool) -> dict[str, float]:
    ports = [free_port(), free_port()]
    upstreams = [subprocess.Popen([sys.executable, "-c", UPSTREAM, str(p)]) for p in ports]
    proxy = Proxy("127.0.0.1", 0)
    try:
        for port in ports:
            wait_for_port(port, deadline=30)
        await proxy.start()
        proxy.update(
            {"a": 0.5, "b": 0.5},
            [Target("a1", "a", "127.0.0.1", ports[0]), Target("b1", "b", "127.0.0.1", ports[1])],
        )
        driver = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "benchmarks.deploy.proxy", "drive"),
            *("--connections", str(connections), "--seconds", str(seconds)),
            f"http://127.0.0.1:{proxy.port}/",
            stdout=subprocess.PIPE,
            cwd=Path(__file__).parents[2],
        )
        profiler = cProfile.Profile(time.process_time) if profile else None
        before = resource.getrusage(resource.RUSAGE_SELF)
        if profiler:
            profiler.enable()
        output, _ = await driver.communicate()
        if profiler:
            profiler.disable()
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        for upstream in upstreams:
            upstream.kill()
            upstream.wait()
        await proxy.stop()
    load = json.loads(output.decode().strip().splitlines()[-1])
    requests = float(load["requests"]) or 1.0
    found = {
        "requests": requests,
        "rps": float(load["rps"]),
        "errors": float(load["errors"]),
        "user_us": (after.ru_utime - before.ru_utime) / requests * 1e6,
        "system_us": (after.ru_stime - before.ru_stime) / requests * 1e6,
    }
    if profiler:
        stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
        total = sum(entry[2] for entry in stats.values()) or 1.0
        shares = dict.fromkeys([name for name, _ in LAYERS] + ["other"], 0.0)
        for (filename, _line, _name), entry in stats.items():
            layer = next((name for name, part in LAYERS if part in filename), "other")
            shares[layer] += entry[2]
        found.update({f"share {name}": value / total for name, value in shares.items()})
    return found


def report(
    plain: dict[str, float], profiled: dict[str, float], seconds: float, connections: int
) -> str:
    total = plain["user_us"] + plain["system_us"]
    lines = [
        f"Where the proxy's CPU goes: tower's proxy alone (in-process, uvloop) in front of two "
        f"upstreams answering a fixed 340-byte response, {connections} keep-alive connections "
        f"in a closed loop for {seconds:g} s, unprofiled for the CPU per request, then under "
        f"cProfile (CPU-time clock) for the shares. Command: "
        f"`python -m benchmarks.deploy.profile --record`. Load average while it ran: "
        f"{os.getloadavg()[0]:.1f} on 2 cores (the machine is shared; the shares are "
        f"steadier than the rates).",
        "",
        "| | value |",
        "| --- | ---: |",
        f"| requests/s (unprofiled) | {plain['rps']:,.0f} |",
        f"| proxy CPU per request: user | {plain['user_us']:.0f} µs |",
        f"| proxy CPU per request: system (socket calls) | {plain['system_us']:.0f} µs |",
        f"| proxy CPU per request: total | {total:.0f} µs |",
    ]
    for name, _ in (*LAYERS, ("other", "")):
        share = profiled.get(f"share {name}", 0.0)
        lines.append(f"| share of profiled CPU: {name} | {share:.0%} |")
    lines += [
        "",
        "The Python-level work is spread over the layers, none dominant: asyncio's "
        "StreamReader/StreamWriter (a buffer copy and a future wake-up per read), the "
        "httptools callbacks that build each head, and the proxy's routing, header rewriting "
        "and metrics. Removing the stream layer (protocol callbacks feeding httptools "
        "directly) would save at most its share; reaching HAProxy's CPU per request would "
        "need the proxy out of Python.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import uvloop

    parser = argparse.ArgumentParser(prog="python -m benchmarks.deploy.profile")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--record", action="store_true", help="write benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    plain = uvloop.run(_run(args.seconds, args.connections, profile=False))
    profiled = uvloop.run(_run(args.seconds, args.connections, profile=True))
    shares = {k: round(v, 3) for k, v in profiled.items() if k.startswith("share ")}
    if args.record:
        from benchmarks.record import record

        record("proxy-profile", report(plain, profiled, args.seconds, args.connections))
    print(
        json.dumps(
            {
                "rps": round(plain["rps"]),
                "errors": plain["errors"],
                "user_us_per_request": round(plain["user_us"], 1),
                "system_us_per_request": round(plain["system_us"], 1),
                **shares,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
