"""An application that reports its errors with the real ``sentry-sdk``, as users' apps do.

    python sentry_app.py <dsn> <compression: default | gzip | none>

It captures three ZeroDivisionErrors raised from one line, a KeyError, two
"payment declined" messages that differ only in an order number (with a card
number and a secret in their context), then dies of an unhandled RuntimeError,
which the SDK's excepthook reports before the process exits.
"""

from __future__ import annotations

import sys
from typing import Any

import sentry_sdk


def checkout(cart_total: float, count: int) -> float:
    password = "hunter2-very-secret"  # a local the SDK sends with the frame
    assert password
    return cart_total / count


def lookup(sku: str) -> dict[str, Any]:
    catalogue: dict[str, dict[str, Any]] = {}
    return catalogue[sku]


def main() -> None:
    dsn, compression = sys.argv[1], sys.argv[2]
    options: dict[str, Any] = {}
    if compression == "gzip":
        options["_experiments"] = {"transport_compression_algo": "gzip"}
    elif compression == "none":
        options["_experiments"] = {"transport_compression_level": 0}
    sentry_sdk.init(
        dsn=dsn,
        release="shop@1.5.0",
        environment="production",
        include_local_variables=True,
        **options,
    )
    for cart in (100.0, 250.0, 80.0):
        try:
            checkout(cart, 0)
        except ZeroDivisionError:
            sentry_sdk.capture_exception()
    try:
        lookup("sku-1")
    except KeyError:
        sentry_sdk.capture_exception()
    for order in (1234, 5678):
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("code", "PAYMENT_DECLINED")
            scope.set_extra("card", "4242 4242 4242 4242")
            scope.set_extra("api_token", "sk_live_abcdefghijklmnop")
            sentry_sdk.capture_message(f"payment declined for order {order}", level="error")
    sentry_sdk.flush(timeout=10)
    raise RuntimeError("the worker crashed")


if __name__ == "__main__":
    main()
