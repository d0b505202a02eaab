"""One application process reporting errors through the real ``sentry-sdk`` transport.

    python -m benchmarks.ingest.sdk_sender DSN SECONDS

Raises and captures the five kinds of error of ``benchmarks.ingest.run`` for
``SECONDS`` with ``sentry_sdk.capture_exception`` (a real stack, the SDK's own
event, envelope and HTTP transport: one background thread, keep-alive urllib3),
keeping at most 64 events queued in the transport so none is dropped for a
full queue, then flushes. Prints ``ready`` once initialised and starts when a line
arrives on standard input (so that several senders start together), then one JSON line: events captured, the HTTP status
of each envelope the transport sent, and each request's time to its answer
(measured around the transport's own ``_request``).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import sentry_sdk
from sentry_sdk.transport import HttpTransport

IN_FLIGHT = 64
LOCK = threading.Lock()
TIMES: list[float] = []
STATUSES: dict[int, int] = {}
SENT = 0


class TimedTransport(HttpTransport):
    """The SDK's HTTP transport, timing each request and noting its status."""

    def _request(self, *args: Any, **kwargs: Any) -> Any:
        global SENT
        started = time.perf_counter()
        try:
            response = super()._request(*args, **kwargs)
        except Exception:
            with LOCK:
                STATUSES[0] = STATUSES.get(0, 0) + 1
                SENT += 1
            raise
        elapsed = time.perf_counter() - started
        with LOCK:
            TIMES.append(elapsed)
            STATUSES[response.status] = STATUSES.get(response.status, 0) + 1
            SENT += 1
        return response


def checkout(cart: dict[str, int]) -> float:
    return cart["total"] / cart["items"]


def add_to_cart(cart: dict[str, int]) -> int:
    return cart["sku"]


def parse_quantity(text: str) -> int:
    return int(text)


def charge(amount: float) -> None:
    raise TimeoutError("upstream payment API timed out")


def send_receipt(user: Any) -> str:
    return str(user.email)


FAILURES = [
    lambda: checkout({"total": 10, "items": 0}),
    lambda: add_to_cart({}),
    lambda: parse_quantity("x"),
    lambda: charge(12.5),
    lambda: send_receipt(None),
]


def main() -> None:
    dsn, seconds = sys.argv[1], float(sys.argv[2])
    sentry_sdk.init(
        dsn=dsn,
        transport=TimedTransport,
        release="shop@1.5.0",
        environment="production",
        send_client_reports=False,
        default_integrations=False,
        transport_queue_size=IN_FLIGHT * 4,
    )
    # Start together: say ready once imported and initialised, wait for the word.
    print("ready", flush=True)
    sys.stdin.readline()
    captured = 0
    wall = time.time()
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline:
        with LOCK:
            waiting = captured - SENT
        if waiting >= IN_FLIGHT:
            time.sleep(0.001)
            continue
        try:
            FAILURES[captured % len(FAILURES)]()
        except Exception:
            sentry_sdk.capture_exception()
            captured += 1
    sentry_sdk.flush(timeout=600)
    print(
        json.dumps(
            {
                "captured": captured,
                "statuses": STATUSES,
                "times": TIMES,
                "seconds": time.monotonic() - started,
                "started": wall,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
