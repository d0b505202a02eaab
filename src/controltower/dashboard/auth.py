"""Dashboard logins: scrypt password hashes, server-side sessions, CSRF tokens.

The session cookie holds a random 256-bit token; the store keeps only its
SHA-256, so a leaked database does not yield live sessions. Each session has its
own CSRF token, which every form carries and every POST must echo.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select

from controltower.clock import system_clock
from controltower.exceptions import UsageError
from controltower.store import Store
from controltower.store.models.dashboard import LoginSession, User
from controltower.typing import Clock

SESSION_TTL = timedelta(hours=12)
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    encode = base64.b64encode
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${encode(salt).decode()}${encode(digest).decode()}"


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
            stored = user.password_hash if user else hash_password("not a real password")
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
