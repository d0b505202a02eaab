"""Errors for the demo, sent by the real Sentry SDK to tower serve's DSN.

Run as a separate process (``python -m controltower.demo.errors DSN``) so the
SDK's global hooks stay out of the demo's own process.
"""

from __future__ import annotations

import sys
from typing import Any

ERRORS = 5


def _price(cart: dict[str, Any]) -> float:
    return float(cart["total"]) / int(cart["items"])


def _webhook(event: dict[str, Any]) -> str:
    return str(event["data"]["object"]["customer"])


def send(dsn: str, release: str = "1.1.0") -> int:
    """Capture ``ERRORS`` exceptions of three kinds and flush; return how many were sent."""
    import sentry_sdk

    sentry_sdk.init(
        dsn=dsn,
        release=release,
        environment="demo",
        default_integrations=False,
        traces_sample_rate=0.0,
    )
    sent = 0
    for attempt in range(ERRORS):
        try:
            if attempt % 3 == 0:
                _price({"total": 1200, "items": 0})
            elif attempt % 3 == 1:
                _webhook({"data": {"object": {}}})
            else:
                raise TimeoutError("payment provider did not answer within 10s")
        except Exception as exc:
            with sentry_sdk.new_scope() as scope:
                scope.set_tag(
                    "route", ["/api/checkout", "/api/webhooks/stripe", "/api/pay"][attempt % 3]
                )
                scope.set_user({"id": f"user-{attempt}"})
                sentry_sdk.capture_exception(exc)
            sent += 1
    sentry_sdk.flush(10)
    return sent


if __name__ == "__main__":
    print(send(sys.argv[1], *(sys.argv[2:3])))
