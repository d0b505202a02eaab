"""Dashboard logins: scrypt password hashes, server-side sessions, CSRF tokens.

The session cookie holds a random 256-bit token; the store keeps only its
SHA-256, so a leaked database does not yield live sessions. Each session has its
own CSRF token, which every form carries and every POST must echo.

Logins are throttled in the store (so every worker sees the same counts) per
account and per client: after ``FREE_FAILURES`` failures a key is locked for
1 s, doubling with each further failure up to ``LOCK_MAX``; a locked attempt is
refused before any password is hashed. The login form's CSRF token is a
single-use nonce the server issued and remembers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from controltower.clock import system_clock
from controltower.exceptions import UsageError
from controltower.store import Store
from controltower.store.models.dashboard import LoginFailure, LoginNonce, LoginSession, User
from controltower.typing import Clock

SESSION_TTL = timedelta(hours=12)
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    encode = base64.b64encode
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${encode(salt).decode()}${encode(digest).decode()}"


_DUMMY: list[str] = []


def dummy_hash() -> str:
    """A hash to check unknown names against, so they cost what a real name costs."""
    if not _DUMMY:
        _DUMMY.append(hash_password(secrets.token_urlsafe(16)))
    return _DUMMY[0]


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), dklen=32, n=int(n), r=int(r), p=int(p)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, base64.b64decode(digest))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SessionInfo:
    user: str
    csrf_token: str


MIN_PASSWORD = 10


def validate_password(password: str) -> None:
    """Refuse a dashboard password that is too short to keep."""
    if len(password) < MIN_PASSWORD:
        raise UsageError(f"a dashboard password needs at least {MIN_PASSWORD} characters")


class Accounts:
    """Users and sessions in the store."""

    def __init__(self, store: Store, *, clock: Clock = system_clock) -> None:
        self.store = store
        self.clock = clock

    def add_user(self, name: str, password: str) -> None:
        validate_password(password)
        with self.store.session() as session:
            existing = session.scalar(select(User).where(User.name == name))
            if existing is not None:
                existing.password_hash = hash_password(password)
                return
            session.add(
                User(name=name, password_hash=hash_password(password), created_at=self.clock.now())
            )

    def remove_user(self, name: str) -> bool:
        with self.store.session() as session:
            result = session.execute(delete(User).where(User.name == name))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def users(self) -> list[str]:
        with self.store.session() as session:
            return list(session.scalars(select(User.name).order_by(User.name)))

    def login(self, name: str, password: str) -> str | None:
        """A new session token for valid credentials, else None (same time either way)."""
        with self.store.session() as session:
            user = session.scalar(select(User).where(User.name == name))
            stored = user.password_hash if user else dummy_hash()
            if not check_password(password, stored) or user is None:
                return None
            token = secrets.token_urlsafe(32)
            now = self.clock.now()
            user.last_login_at = now
            session.add(
                LoginSession(
                    token_hash=_digest(token),
                    user_id=user.id,
                    csrf_token=secrets.token_urlsafe(24),
                    created_at=now,
                    expires_at=now + SESSION_TTL,
                )
            )
            session.execute(delete(LoginSession).where(LoginSession.expires_at < now))
            return token

    def session(self, token: str | None) -> SessionInfo | None:
        if not token:
            return None
        with self.store.session() as session:
            row = session.execute(
                select(LoginSession.csrf_token, LoginSession.expires_at, User.name)
                .join(User, User.id == LoginSession.user_id)
                .where(LoginSession.token_hash == _digest(token))
            ).first()
        if row is None or row.expires_at <= self.clock.now():
            return None
        return SessionInfo(user=row.name, csrf_token=row.csrf_token)

    def logout(self, token: str) -> None:
        with self.store.session() as session:
            session.execute(delete(LoginSession).where(LoginSession.token_hash == _digest(token)))


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected, given or "")


FREE_FAILURES = 5
LOCK_BASE = 1.0
LOCK_MAX = 900.0
FORGET_AFTER = timedelta(minutes=15)
NONCE_TTL = timedelta(hours=1)


def lock_seconds(failures: int) -> float:
    """How long a key is locked after its ``failures``-th failure in a row."""
    if failures < FREE_FAILURES:
        return 0.0
    return min(LOCK_BASE * 2.0 ** min(failures - FREE_FAILURES, 30), LOCK_MAX)


def throttle_keys(name: str, client: str) -> list[str]:
    return [f"account:{name.strip().lower()[:150]}", f"client:{client[:150]}"]


class LoginThrottle:
    """Failed logins per key in the store; a key in lockout is refused before hashing."""

    def __init__(self, store: Store, *, clock: Clock = system_clock) -> None:
        self.store = store
        self.clock = clock

    def wait(self, keys: Iterable[str]) -> float:
        """Seconds until these keys may try again (0: now)."""
        now = self.clock.now()
        with self.store.session() as session:
            rows = session.scalars(select(LoginFailure).where(LoginFailure.key.in_(list(keys))))
            return max((_left(row.locked_until, now) for row in rows), default=0.0)

    def failed(self, keys: Iterable[str]) -> float:
        """Count one failure for each key; the lockout now in force, in seconds."""
        chosen = list(keys)
        for attempt in range(3):
            try:
                return self._failed(chosen)
            except IntegrityError:  # another worker counted the first failure at once
                if attempt == 2:
                    raise
        return 0.0

    def _failed(self, keys: list[str]) -> float:
        now = self.clock.now()
        longest = 0.0
        with self.store.session() as session:
            for key in keys:
                row = session.get(LoginFailure, key)
                if row is None:
                    row = LoginFailure(key=key, failures=0, last_failure_at=now)
                    session.add(row)
                elif now - row.last_failure_at > FORGET_AFTER:
                    row.failures = 0
                row.failures += 1
                row.last_failure_at = now
                seconds = lock_seconds(row.failures)
                row.locked_until = now + timedelta(seconds=seconds) if seconds else None
                longest = max(longest, seconds)
            session.execute(
                delete(LoginFailure).where(LoginFailure.last_failure_at < now - FORGET_AFTER)
            )
        return longest

    def succeeded(self, keys: Iterable[str]) -> None:
        with self.store.session() as session:
            session.execute(delete(LoginFailure).where(LoginFailure.key.in_(list(keys))))

    def issue_nonce(self) -> str:
        """A new login form nonce, remembered (hashed) until used or expired."""
        nonce = secrets.token_urlsafe(24)
        now = self.clock.now()
        with self.store.session() as session:
            session.execute(delete(LoginNonce).where(LoginNonce.expires_at < now))
            session.add(LoginNonce(nonce_hash=_digest(nonce), expires_at=now + NONCE_TTL))
        return nonce

    def spend_nonce(self, nonce: str) -> bool:
        """Whether ``nonce`` was issued here and not used or expired; it is spent either way."""
        if not nonce:
            return False
        with self.store.session() as session:
            spent = session.execute(
                delete(LoginNonce).where(
                    LoginNonce.nonce_hash == _digest(nonce),
                    LoginNonce.expires_at > self.clock.now(),
                )
            )
            return bool(spent.rowcount)  # type: ignore[attr-defined]


def _left(until: datetime | None, now: datetime) -> float:
    if until is None:
        return 0.0
    return max(0.0, (until - now).total_seconds())


T = TypeVar("T")
HASH_WORKERS = 1
MAX_PENDING = 16


class HashingBusy(Exception):
    """More logins are waiting for the hashing pool than it queues."""


class HashingPool:
    """Password hashing on its own small pool, so a login flood cannot take the threads
    (and cores) the API and ingestion run on; beyond ``max_pending`` waiting, refuse."""

    def __init__(self, workers: int = HASH_WORKERS, max_pending: int = MAX_PENDING) -> None:
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="tower-hash")
        self.max_pending = max_pending
        self.pending = 0

    async def run(self, function: Callable[..., T], *args: object) -> T:
        if self.pending >= self.max_pending:
            raise HashingBusy
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)
        finally:
            self.pending -= 1
