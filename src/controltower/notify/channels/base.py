"""What every channel is: a small abstract class, like httpx's ``BaseTransport``.

A channel turns a ``Delivery`` into one send. HTTP channels split that in two:
``build_request`` is pure (a ``Delivery`` and a time in, an ``HttpRequest`` out,
tested by equality) and ``HttpChannel.deliver`` alone does I/O and reads the
answer. A failed send raises ``DeliveryFailed``, which says whether trying again
can help and how long the receiver asked us to wait.
"""

from __future__ import annotations

import abc
import email.utils
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Generic, TypeVar

import httpx
from pydantic import SecretStr

from controltower.clock import system_clock
from controltower.exceptions import NotifyError
from controltower.notify.message import Notification
from controltower.notify.scrub import scrub
from controltower.spec.alerts import ChannelBase
from controltower.typing import Clock

S = TypeVar("S", bound=ChannelBase)

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_IDEMPOTENCY_KEY = 256
USER_AGENT = "controltower-notify"


@dataclass(frozen=True)
class Delivery:
    """One outbox row on its way: the notification, for one channel, at one attempt."""

    key: str
    channel: str
    notification: Notification
    created_at: datetime
    attempt: int = 1

    @property
    def idempotency_key(self) -> str:
        """The outbox key, hashed when longer than receivers accept (Resend: 256)."""
        if len(self.key) <= MAX_IDEMPOTENCY_KEY:
            return self.key
        return "sha256:" + hashlib.sha256(self.key.encode()).hexdigest()


@dataclass(frozen=True)
class HttpRequest:
    """A request to make. The URL and headers may hold secrets, so repr leaves them out."""

    method: str
    url: str = field(repr=False)
    headers: tuple[tuple[str, str], ...] = field(repr=False)
    content: bytes = b""


class DeliveryFailed(NotifyError):
    """A send did not go through. ``retryable`` says whether trying again can help.

    ``uncertain`` says the receiver may have acted on it all the same: the request
    went out and no answer came back (a read timeout, a dropped connection).
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        uncertain: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.uncertain = uncertain


class Channel(abc.ABC, Generic[S]):
    """Delivers notifications to one configured destination.

    ``S`` is the channel's own spec model: the spec loader has already refused a
    table missing a key the type needs, so a channel only checks that a required
    value is not empty (``"${VAR:-}"`` with VAR unset).
    """

    type: ClassVar[str]
    default_rate: ClassVar[float | None] = None
    #: Whether the receiver acts once per key by default (Resend does); ``None``:
    #: the channel has no key a receiver could deduplicate by (Slack, Apprise).
    dedup_default: ClassVar[bool | None] = False

    def __init__(self, name: str, spec: S, *, clock: Clock = system_clock) -> None:
        if spec.type.value != self.type:
            raise NotifyError(f"channel {name!r} is a {spec.type.value} channel, not {self.type}")
        self.name = name
        self.spec = spec
        self.clock = clock
        missing = [
            field.alias or key
            for key, field in type(spec).model_fields.items()
            if field.is_required() and _empty(getattr(spec, key))
        ]
        if missing:  # present in the file but empty, as "${VAR:-}" with VAR unset
            keys = ", ".join(f"`{key}`" for key in missing)
            raise NotifyError(
                f"channel {name!r} ({self.type}) has an empty {keys} in [alerts.channels.{name}]",
                hint="set the environment variable it is read from, e.g. SLACK_WEBHOOK_URL",
            )
        if spec.deduplicates and self.dedup_default is None:
            raise NotifyError(
                f"channel {name!r} ({self.type}) cannot deduplicate: it sends no key a "
                "receiver could act once on",
                hint=f"remove `deduplicates` from [alerts.channels.{name}]",
            )

    @property
    def deduplicates(self) -> bool:
        """Whether sending a notification again reaches people once.

        When it does not, a send whose outcome was never known is sent again and
        the incident's timeline says it may have been delivered twice.
        """
        if self.spec.deduplicates is not None:
            return self.spec.deduplicates
        return bool(self.dedup_default)

    @property
    def rate(self) -> float | None:
        """At most this many messages a second from one dispatcher (None: no limit)."""
        return self.spec.rate or self.default_rate

    def secrets(self) -> list[str]:
        """Every secret value this channel holds, to scrub from errors."""
        values = (getattr(self.spec, key, None) for key in type(self.spec).model_fields)
        return [value.get_secret_value() for value in values if isinstance(value, SecretStr)]

    def scrub(self, text: str) -> str:
        return scrub(text, self.secrets())

    @abc.abstractmethod
    async def deliver(self, delivery: Delivery, http: httpx.AsyncClient) -> str:
        """Send ``delivery``; return a short receipt. Raise ``DeliveryFailed`` on failure."""


class HttpChannel(Channel[S]):
    """A channel that is one HTTP request: a pure builder and one I/O method."""

    @abc.abstractmethod
    def build_request(self, delivery: Delivery, *, now: float) -> HttpRequest:
        """The request that delivers ``delivery``, signed or dated at ``now``."""

    def check_response(self, response: httpx.Response) -> str:
        """Accept a 2xx; otherwise raise ``DeliveryFailed`` saying whether to retry."""
        if response.is_success:
            return f"HTTP {response.status_code}"
        raise failure_from_response(response, self.describe_error(response), now=self.clock.time())

    def describe_error(self, response: httpx.Response) -> str:
        return response.text[:200].strip()

    async def deliver(self, delivery: Delivery, http: httpx.AsyncClient) -> str:
        request = self.build_request(delivery, now=self.clock.time())
        try:
            response = await http.request(
                request.method,
                request.url,
                headers=list(request.headers),
                content=request.content,
                timeout=self.spec.timeout,
            )
        except httpx.TimeoutException as exc:
            raise DeliveryFailed(
                self.scrub(
                    f"{request.url}: no answer within {self.spec.timeout:g}s ({type(exc).__name__})"
                ),
                retryable=True,
                uncertain=not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout),
            ) from None
        except httpx.HTTPError as exc:
            raise DeliveryFailed(
                self.scrub(f"{request.url}: {type(exc).__name__}: {exc}"),
                retryable=True,
                uncertain=isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError),
            ) from None
        return self.check_response(response)


def failure_from_response(
    response: httpx.Response, detail: str, *, now: float, retryable: bool | None = None
) -> DeliveryFailed:
    """A 429, 5xx, 408, 409 or 425 can pass if tried again; any other 4xx will not."""
    status = response.status_code
    message = f"HTTP {status}" + (f": {detail}" if detail else "")
    if retryable is None:
        retryable = status in RETRYABLE_STATUS or status >= 500
    wait = retry_after(response.headers.get("retry-after"), now=now)
    return DeliveryFailed(message, retryable=retryable, retry_after=wait)


def retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def _empty(value: object) -> bool:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return value is None or value == "" or value == []
