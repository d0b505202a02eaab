"""Deliver the outbox: claim due rows under a lease, send, record, retry with backoff.

A row moves through these states::

    pending ──claim──► sending ──ok──────────────► sent
       ▲                  │ ├──refused (4xx)─────► dead
       │                  │ └──failed──► failed ──(attempts or age used up)──► dead
       │                  │                │
       │                  │                └──due again──claim──► sending ...
       │                  └──abandoned (its dispatcher died)──recover──► failed (due now)
       └──── tower notify outbox retry ◄── dead

Claiming is one statement: ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP
LOCKED)`` on PostgreSQL, the same conditional UPDATE without the lock clause on
SQLite (which runs one writer at a time), so two dispatchers never hold the same
row. The claim counts the attempt and commits before the request goes out; the
outcome is written as soon as each send returns, so a dispatcher that dies leaves
at most the sends it had in flight in ``sending``, outcome unknown.

Such a row is *abandoned* when its lease expires, or at once when a dispatcher of
the same name starts again (``name``: stable across restarts, e.g. the worker
name; the lease owner is ``<name>#<incarnation>``). Recovering it makes it due
again: nothing is lost. Whether that can reach people twice depends on the
channel: one that deduplicates (Resend's ``Idempotency-Key``, a webhook or SMTP
receiver declared ``deduplicates = true``) gets it again silently; for any other
(Slack, Apprise, a webhook that does not say it deduplicates) the same
transaction counts it in ``unconfirmed`` and writes "may have been delivered
twice" in the incident's timeline, before the second send. A send that went out
and got no answer (a read timeout, a dropped connection) is reported the same
way when it is retried.
"""

from __future__ import annotations

import asyncio
import math
import random
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from controltower.clock import system_clock
from controltower.notify.channels import Channel, Delivery, DeliveryFailed, build_channels
from controltower.notify.message import Notification
from controltower.notify.scrub import scrub
from controltower.spec.alerts import AlertsSpec, DeliverySpec
from controltower.store import Store, default_owner
from controltower.store.models.monitor import Incident, IncidentEvent
from controltower.store.models.notify import OutboxMessage
from controltower.typing import Clock

log = structlog.get_logger("controltower.notify")

DUE_STATUSES = ("pending", "failed")
PAUSE_RELEASE = 1.0


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by attempts and by age."""

    max_attempts: int = 20
    max_age: float = 86400.0
    base: float = 2.0
    cap: float = 600.0
    jitter: float = 0.5

    @classmethod
    def from_spec(cls, spec: DeliverySpec) -> RetryPolicy:
        return cls(
            max_attempts=spec.max_attempts,
            max_age=spec.max_age,
            base=spec.backoff,
            cap=spec.backoff_max,
        )

    def delay(self, attempts: int, rand: float) -> float:
        """Seconds before attempt ``attempts + 1``: ``base * 2^(attempts-1)``, capped, jittered.

        ``rand`` in [0, 1) spreads the wait over its upper ``jitter`` fraction, so
        dispatchers that failed together do not retry together.
        """
        raw = min(self.cap, self.base * 2.0 ** max(0, attempts - 1))
        return raw * (1.0 - self.jitter) + raw * self.jitter * rand

    def gives_up(self, attempts: int, age: float) -> bool:
        return attempts >= self.max_attempts or age >= self.max_age


@dataclass(frozen=True)
class Outcome:
    """What happened to one claimed row in one pass."""

    id: int
    key: str
    channel: str
    status: str
    attempt: int
    detail: str


@dataclass
class DispatchReport:
    claimed: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    released: int = 0
    expired: int = 0
    recovered: int = 0

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def sent(self) -> int:
        return self.count("sent")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def dead(self) -> int:
        return self.count("dead")


@dataclass(frozen=True)
class _Claimed:
    id: int
    key: str
    channel: str
    payload: dict[str, Any]
    created_at: datetime
    attempts: int

    def delivery(self) -> Delivery:
        return Delivery(
            key=self.key,
            channel=self.channel,
            notification=Notification.from_payload(self.payload),
            created_at=self.created_at,
            attempt=self.attempts,
        )


class RateLimiter:
    """At most ``rate`` sends a second, and a pause when a receiver says 429."""

    def __init__(self, rate: float | None, clock: Clock) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.clock = clock
        self.next_at = -math.inf

    def ready_in(self) -> float:
        return max(0.0, self.next_at - self.clock.monotonic())

    async def wait(self) -> None:
        delay = self.ready_in()
        if delay > 0:
            await self.clock.asleep(delay)

    def done(self) -> None:
        """Count the interval from when a send finished, as the receiver sees it."""
        self.next_at = max(self.next_at, self.clock.monotonic() + self.interval)

    def pause(self, seconds: float) -> None:
        self.next_at = max(self.next_at, self.clock.monotonic() + seconds)


class Dispatcher:
    """Delivers due outbox rows to their channels; several may run against one store.

    >>> dispatcher = Dispatcher.from_spec(spec.alerts, store)
    >>> await dispatcher.dispatch_once()        # one pass: claim, send, record
    >>> await dispatcher.run(stop_event)        # until stop_event is set
    """

    def __init__(
        self,
        store: Store,
        channels: Mapping[str, Channel[Any]],
        *,
        policy: RetryPolicy | None = None,
        lease: float = 60.0,
        batch: int = 50,
        name: str | None = None,
        owner: str | None = None,
        clock: Clock = system_clock,
        rand: Callable[[], float] = random.random,
        problems: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.channels = dict(channels)
        self.policy = policy or RetryPolicy()
        self.lease = lease
        self.batch = batch
        self.name = name or default_owner()
        self.owner = owner or f"{self.name}#{uuid.uuid4().hex[:8]}"
        self._recovered_own = False
        self.clock = clock
        self.rand = rand
        self.problems = dict(problems or {})
        self._limiters = {
            name: RateLimiter(channel.rate, clock) for name, channel in self.channels.items()
        }

    @classmethod
    def from_spec(
        cls, alerts: AlertsSpec, store: Store, *, clock: Clock = system_clock, **options: Any
    ) -> Dispatcher:
        """A dispatcher for every channel in ``[alerts.channels]`` that is fully configured."""
        channels, problems = build_channels(alerts, clock=clock)
        for name, problem in problems.items():
            log.warning("notify.channel_unusable", channel=name, problem=problem)
        options.setdefault("policy", RetryPolicy.from_spec(alerts.delivery))
        options.setdefault("lease", alerts.delivery.lease)
        return cls(store, channels, clock=clock, problems=problems, **options)

    async def run(
        self, stop: asyncio.Event, *, poll: float = 1.0, wake: asyncio.Event | None = None
    ) -> None:
        """Dispatch until ``stop`` is set; sends in flight finish, claimed rows are released.

        Between passes it waits ``poll`` seconds, or less when ``wake`` is set (a
        producer in the same process that just enqueued something sets it).
        """
        failures = 0
        while not stop.is_set():
            if wake is not None:
                wake.clear()
            try:
                report = await self.dispatch_once(stop=stop)
                failures = 0
            except Exception as exc:  # the store may be briefly unreachable
                failures += 1
                log.error("notify.dispatch_error", error=scrub(f"{type(exc).__name__}: {exc}"))
                report = DispatchReport()
            if report.claimed and not stop.is_set():
                continue
            wait = poll if not failures else min(30.0, poll * 2.0**failures)
            await wait_either(stop, wake, wait)

    async def dispatch_once(
        self, *, keys: Collection[str] | None = None, stop: asyncio.Event | None = None
    ) -> DispatchReport:
        """One pass: give up on rows past their limits, claim what is due, send it."""
        report = DispatchReport()
        report.expired, report.recovered = await asyncio.to_thread(self._housekeep)
        claims = {
            name: await asyncio.to_thread(self._claim, name, self._budget(channel), keys)
            for name, channel in self.channels.items()
        }
        report.claimed = sum(len(rows) for rows in claims.values())
        if not report.claimed:
            return report
        async with httpx.AsyncClient(follow_redirects=False) as http:
            await asyncio.gather(
                *(
                    self._send_all(self.channels[name], rows, http, report, stop)
                    for name, rows in claims.items()
                    if rows
                )
            )
        return report

    def _budget(self, channel: Channel[Any]) -> int:
        if channel.rate:
            return max(1, min(self.batch, int(channel.rate * self.lease / 2)))
        return self.batch

    async def _send_all(
        self,
        channel: Channel[Any],
        rows: list[_Claimed],
        http: httpx.AsyncClient,
        report: DispatchReport,
        stop: asyncio.Event | None,
    ) -> None:
        limiter = self._limiters[channel.name]
        lease_end = self.clock.monotonic() + self.lease
        for index, row in enumerate(rows):
            rest = rows[index:]
            if stop is not None and stop.is_set():
                report.released += await asyncio.to_thread(self._release, rest, None)
                return
            if limiter.ready_in() > PAUSE_RELEASE:
                later = self.clock.now() + timedelta(seconds=limiter.ready_in())
                report.released += await asyncio.to_thread(self._release, rest, later)
                return
            if lease_end - self.clock.monotonic() < 2 * channel.spec.timeout + 1:
                await asyncio.to_thread(self._renew, rest)
                lease_end = self.clock.monotonic() + self.lease
            await limiter.wait()
            outcome, next_at = await self._send_one(channel, row, http)
            limiter.done()
            report.outcomes.append(outcome)
            if outcome.status == "failed" and next_at is not None:
                # The receiver is failing: leave the rest for when this one is due again.
                report.released += await asyncio.to_thread(
                    self._release, rows[index + 1 :], next_at
                )
                return

    async def _send_one(
        self, channel: Channel[Any], row: _Claimed, http: httpx.AsyncClient
    ) -> tuple[Outcome, datetime | None]:
        if not await asyncio.to_thread(self._mark_in_flight, row):
            # Taken over by another dispatcher while it waited its turn.
            return Outcome(row.id, row.key, row.channel, "released", row.attempts, ""), None
        try:
            receipt = await channel.deliver(row.delivery(), http)
        except DeliveryFailed as exc:
            error, retryable, wait = channel.scrub(exc.message), exc.retryable, exc.retry_after
            uncertain = exc.uncertain
        except Exception as exc:
            error, retryable, wait = channel.scrub(f"{type(exc).__name__}: {exc}"), True, None
            uncertain = False
        else:
            recorded = await asyncio.to_thread(self._mark_sent, row)
            log.info("notify.sent", key=row.key, channel=row.channel, attempt=row.attempts)
            detail = receipt if recorded else receipt + " (the row had been taken over)"
            return Outcome(row.id, row.key, row.channel, "sent", row.attempts, detail), None
        if wait is not None:
            self._limiters[channel.name].pause(wait)
        status, next_at, error = self._failure(row, error, retryable=retryable, wait=wait)
        unconfirmed = uncertain and status == "failed" and not channel.deduplicates
        await asyncio.to_thread(self._mark_failed, row, status, next_at, error, unconfirmed)
        event = "notify.dead" if status == "dead" else "notify.retry"
        log.warning(event, key=row.key, channel=row.channel, attempt=row.attempts, error=error)
        return Outcome(row.id, row.key, row.channel, status, row.attempts, error), next_at

    def _failure(
        self, row: _Claimed, error: str, *, retryable: bool, wait: float | None
    ) -> tuple[str, datetime | None, str]:
        now = self.clock.now()
        if not retryable:
            return "dead", None, f"{error} (not retried: the receiver refused it)"
        age = (now - row.created_at).total_seconds()
        if self.policy.gives_up(row.attempts, age):
            return "dead", None, f"{error} (gave up after {row.attempts} attempts)"
        delay = max(self.policy.delay(row.attempts, self.rand()), wait or 0.0)
        return "failed", now + timedelta(seconds=delay), error

    # -- the store: one short transaction each ------------------------------------------

    def _due(self, now: datetime) -> ColumnElement[bool]:
        return and_(OutboxMessage.status.in_(DUE_STATUSES), OutboxMessage.next_attempt_at <= now)

    def _housekeep(self) -> tuple[int, int]:
        """Expire, then recover: one trip to a thread per pass for both."""
        return self._expire(), self._recover()

    def _recover(self) -> int:
        """Make abandoned ``sending`` rows due again, reporting possible duplicates.

        Abandoned: the lease expired, or (on this dispatcher's first pass) the row
        is held by an earlier run of the same ``name``, which is dead. Only rows of
        channels this dispatcher has are taken; their attempt stays counted.
        """
        now = self.clock.now()
        abandoned = OutboxMessage.lease_expires_at <= now
        if not self._recovered_own:
            earlier = and_(
                OutboxMessage.lease_owner.startswith(f"{self.name}#", autoescape=True),
                OutboxMessage.lease_owner != self.owner,
            )
            abandoned = or_(abandoned, earlier)
        query = (
            select(OutboxMessage)
            .where(
                OutboxMessage.status == "sending",
                OutboxMessage.channel.in_(list(self.channels)),
                abandoned,
            )
            .order_by(OutboxMessage.id)
            .limit(500)
        )
        if self.store.is_postgres:
            query = query.with_for_update(skip_locked=True)
        with self.store.session() as session:
            rows = session.scalars(query).all()
            for row in rows:
                sender = row.lease_owner or "its sender"
                if row.in_flight_at is None:
                    # Claimed, never sent: giving it back repeats nothing.
                    row.status = "failed" if row.attempts > 1 else "pending"
                    row.attempts -= 1
                    error = row.last_error
                else:
                    error = f"attempt {row.attempts} did not finish: {sender} stopped mid-send"
                    if not self.channels[row.channel].deduplicates:
                        self._report_unconfirmed(session, row, now)
                    row.status = "failed"
                    log.warning(
                        "notify.recovered",
                        key=row.key,
                        channel=row.channel,
                        attempt=row.attempts,
                        deduplicates=self.channels[row.channel].deduplicates,
                    )
                row.next_attempt_at = now
                row.last_error = error
                row.lease_owner = ""
                row.lease_expires_at = None
                row.in_flight_at = None
        self._recovered_own = True
        return len(rows)

    def _report_unconfirmed(self, session: Session, row: OutboxMessage, now: datetime) -> None:
        """Count ``row``'s unknown attempt and say so where people look: its incident."""
        row.unconfirmed += 1
        incident_id = _incident_of(row.payload)
        message = (
            f"{row.kind} notification to {row.channel} may have been delivered twice: "
            f"attempt {row.attempts} got no answer, so it is sent again "
            f"({row.channel} cannot deduplicate)"
        )
        detail = {"key": row.key, "channel": row.channel, "attempt": row.attempts}
        if incident_id is not None and session.get(Incident, incident_id) is not None:
            session.add(
                IncidentEvent(
                    incident_id=incident_id,
                    at=now,
                    kind="notify_unconfirmed",
                    actor="tower",
                    message=message,
                    detail=detail,
                )
            )
        log.warning("notify.may_be_duplicate", message=message, **detail)

    def _claim(self, channel: str, limit: int, keys: Collection[str] | None) -> list[_Claimed]:
        now = self.clock.now()
        due = self._due(now)
        chosen = (
            select(OutboxMessage.id)
            .where(due, OutboxMessage.channel == channel)
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
        )
        if keys is not None:
            chosen = chosen.where(OutboxMessage.key.in_(list(keys)))
        if self.store.is_postgres:
            # Materialized, so the planner cannot re-run the subquery per row and
            # claim past the limit, skipping its own locks each time.
            claimable = (
                chosen.with_for_update(skip_locked=True)
                .cte("claimable")
                .prefix_with("MATERIALIZED")
            )
            ids = select(claimable.c.id).scalar_subquery()
        else:
            ids = chosen.scalar_subquery()
        statement = (
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), due)
            .values(
                status="sending",
                lease_owner=self.owner,
                lease_expires_at=now + timedelta(seconds=self.lease),
                attempts=OutboxMessage.attempts + 1,
            )
            .returning(
                OutboxMessage.id,
                OutboxMessage.key,
                OutboxMessage.channel,
                OutboxMessage.payload,
                OutboxMessage.created_at,
                OutboxMessage.attempts,
            )
            .execution_options(synchronize_session=False)
        )
        with self.store.session() as session:
            rows = session.execute(statement).all()
        claimed = [_Claimed(*row) for row in rows]
        return sorted(claimed, key=lambda row: row.id)

    def _mine(self, ids: list[int]) -> ColumnElement[bool]:
        return and_(
            OutboxMessage.id.in_(ids),
            OutboxMessage.lease_owner == self.owner,
            OutboxMessage.status == "sending",
        )

    def _mark_in_flight(self, row: _Claimed) -> bool:
        """Note that this attempt's request is going out; False if the row is not ours."""
        with self.store.session() as session:
            result = session.execute(
                update(OutboxMessage)
                .where(self._mine([row.id]))
                .values(in_flight_at=self.clock.now())
                .execution_options(synchronize_session=False)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def _mark_sent(self, row: _Claimed) -> bool:
        now = self.clock.now()
        with self.store.session() as session:
            result = session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row.id, OutboxMessage.status != "sent")
                .values(
                    status="sent",
                    sent_at=now,
                    last_error="",
                    lease_owner="",
                    lease_expires_at=None,
                    in_flight_at=None,
                )
                .execution_options(synchronize_session=False)
            )
            owned = bool(result.rowcount)  # type: ignore[attr-defined]
        return owned

    def _mark_failed(
        self,
        row: _Claimed,
        status: str,
        next_at: datetime | None,
        error: str,
        unconfirmed: bool = False,
    ) -> None:
        with self.store.session() as session:
            query = select(OutboxMessage).where(self._mine([row.id]))
            if self.store.is_postgres:
                query = query.with_for_update()
            held = session.scalars(query).first()
            if held is None:  # taken over meanwhile: its new holder records the outcome
                return
            if unconfirmed:
                self._report_unconfirmed(session, held, self.clock.now())
            held.status = status
            held.last_error = error
            held.lease_owner = ""
            held.lease_expires_at = None
            held.in_flight_at = None
            if next_at is not None:
                held.next_attempt_at = next_at

    def _release(self, rows: list[_Claimed], at: datetime | None) -> int:
        """Give claimed rows back unsent, without counting the attempt."""
        if not rows:
            return 0
        with self.store.session() as session:
            result = session.execute(
                update(OutboxMessage)
                .where(self._mine([row.id for row in rows]))
                .values(
                    status=case((OutboxMessage.attempts > 1, "failed"), else_="pending"),
                    attempts=OutboxMessage.attempts - 1,
                    next_attempt_at=at or self.clock.now(),
                    lease_owner="",
                    lease_expires_at=None,
                    in_flight_at=None,
                )
                .execution_options(synchronize_session=False)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def _renew(self, rows: list[_Claimed]) -> None:
        expires = self.clock.now() + timedelta(seconds=self.lease)
        with self.store.session() as session:
            session.execute(
                update(OutboxMessage)
                .where(self._mine([row.id for row in rows]))
                .values(lease_expires_at=expires)
                .execution_options(synchronize_session=False)
            )

    def _expire(self) -> int:
        """Dead-letter rows past their age, and rows whose last attempt never finished."""
        now = self.clock.now()
        cutoff = now - timedelta(seconds=self.policy.max_age)
        stale = or_(
            and_(OutboxMessage.status.in_(DUE_STATUSES), OutboxMessage.created_at <= cutoff),
            and_(
                OutboxMessage.status == "sending",
                OutboxMessage.lease_expires_at <= now,
                OutboxMessage.attempts >= self.policy.max_attempts,
            ),
        )
        with self.store.session() as session:
            rows = session.scalars(select(OutboxMessage).where(stale).limit(500)).all()
            for row in rows:
                row.status = "dead"
                row.last_error = self._expired_error(row)
                row.lease_owner = ""
                row.lease_expires_at = None
            return len(rows)

    def _expired_error(self, row: OutboxMessage) -> str:
        if row.status == "sending":
            reason = f"gave up after {row.attempts} attempts; the last one did not finish"
        else:
            reason = f"not delivered within {self.policy.max_age:g}s"
        if row.channel not in self.channels:
            problem = self.problems.get(row.channel)
            reason += (
                f"; channel {row.channel!r} cannot be used: {problem}"
                if problem
                else f"; no channel {row.channel!r} in [alerts.channels]"
            )
        if row.last_error:
            reason += f" (last error: {row.last_error})"
        return reason[:1000]


def _incident_of(payload: dict[str, Any]) -> int | None:
    """The incident a notification is about (``fields.incident``), if any."""
    fields = payload.get("fields") or {}
    value = fields.get("incident") if isinstance(fields, dict) else None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


async def wait_either(stop: asyncio.Event, wake: asyncio.Event | None, timeout: float) -> None:
    """Return when ``stop`` or ``wake`` is set, or after ``timeout`` seconds."""
    waiters = [asyncio.ensure_future(event.wait()) for event in (stop, wake) if event is not None]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
