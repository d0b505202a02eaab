"""Which HTTP engine should the load generator use? Requests per CPU second, one process.

    python -m benchmarks.load.engines [--seconds 3]

Runs 32 concurrent keep-alive request loops for a few seconds against the same
fast local target with: httpx.AsyncClient, tower's minimal client on the
standard asyncio loop, and tower's client on uvloop. Prints requests per second
of CPU time (the cost of one request to the generator) and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
import uvloop

from benchmarks.load.run import start_target
from controltower.load.client import Connection, Target, build_request

CONCURRENCY = 32


async def _loop(send: Callable[[int], Awaitable[None]], seconds: float) -> tuple[int, float]:
    count = 0
    end = time.monotonic() + seconds
    cpu = time.process_time()

    async def worker(index: int) -> None:
        nonlocal count
        while time.monotonic() < end:
            await send(index)
            count += 1

    await asyncio.gather(*(worker(index) for index in range(CONCURRENCY)))
    return count, time.process_time() - cpu


async def with_httpx(url: str, seconds: float) -> tuple[int, float]:
    """One client (one keep-alive connection) per loop: a shared pool is slower still."""
    clients = [httpx.AsyncClient(base_url=url, trust_env=False) for _ in range(CONCURRENCY)]

    async def send(index: int) -> None:
        response = await clients[index].get("/")
        response.raise_for_status()

    try:
        return await _loop(send, seconds)
    finally:
        for client in clients:
            await client.aclose()


async def with_tower(url: str, seconds: float) -> tuple[int, float]:
    target = Target.from_url(url)
    payload = build_request(target, "GET", "/", {}, b"")
    pool = [Connection(target, timeout=10, ssl_context=None) for _ in range(CONCURRENCY)]

    async def send(index: int) -> None:
        response = await pool[index].request(payload)
        assert response.status == 200

    try:
        return await _loop(send, seconds)
    finally:
        for connection in pool:
            connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    process, url = start_target()
    results: dict[str, float] = {}
    try:
        for name, factory, runner in (
            ("httpx.AsyncClient (asyncio)", with_httpx, asyncio.run),
            ("tower client (asyncio)", with_tower, asyncio.run),
            ("tower client (uvloop)", with_tower, uvloop.run),
        ):
            count, cpu = runner(factory(url, args.seconds))
            results[name] = count / cpu
            print(f"{name:32} {count / args.seconds:10,.0f} req/s {count / cpu:10,.0f} req/CPU-s")
    finally:
        process.terminate()
        process.wait()
    base = results["httpx.AsyncClient (asyncio)"]
    for name, value in results.items():
        print(f"{name:32} {value / base:6.2f}x httpx")


if __name__ == "__main__":
    main()
