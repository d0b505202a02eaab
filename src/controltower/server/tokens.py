"""API tokens: ``tower_<random>``, shown once, kept only as a SHA-256 hash.

A token carries 32 random bytes, so a fast hash is enough: nobody can guess
their way to a preimage, and a slow hash (bcrypt, argon2) would only cost every
request its latency. Scopes: ``read``, ``write`` (implies read) and ``ingest``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from controltower.clock import system_clock, utcnow
from controltower.exceptions import UsageError
from controltower.store import Store, record_audit
from controltower.store.models.server import ApiToken, Epoch

PREFIX = "tower_"
SCOPES = ("read", "write", "ingest")


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or (scope == "read" and "write" in self.scopes)

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "scopes": list(self.scopes),
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked": self.revoked,
        }


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _info(row: ApiToken) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        scopes=tuple(row.scopes),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked=row.revoked_at is not None,
    )


def check_scopes(scopes: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if unknown or not scopes:
        raise UsageError(
            f"scopes must be some of {', '.join(SCOPES)} (got {', '.join(scopes) or 'none'})"
        )
    return tuple(dict.fromkeys(scopes))


def create_token(
    store: Store, name: str, scopes: list[str] | tuple[str, ...], *, actor: str = "cli"
) -> tuple[str, TokenInfo]:
    """A new token (the only time its value exists) and what is stored about it."""
    chosen = check_scopes(scopes)
    if not name or len(name) > 100:
        raise UsageError("a token needs a name of 1 to 100 characters")
    token = PREFIX + secrets.token_urlsafe(32)
    with store.session() as session:
        row = ApiToken(
            name=name,
            prefix=token[: len(PREFIX) + 6],
            token_hash=hash_token(token),
            scopes=list(chosen),
        )
        session.add(row)
        session.flush()
        record_audit(
            session,
            actor=actor,
            action="token.created",
            subject=name,
            detail={"token_id": row.id, "scopes": list(chosen)},
        )
        return token, _info(row)


def verify_token(store: Store, token: str) -> TokenInfo | None:
    """The token's info if it exists and is not revoked; records its last use."""
    if not token.startswith(PREFIX):
        return None
    digest = hash_token(token)
    with store.session() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
        if row is None or row.revoked_at is not None:
            return None
        now = utcnow()
        if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
            row.last_used_at = now
        return _info(row)


def list_tokens(store: Store) -> list[TokenInfo]:
    with store.session() as session:
        return [_info(row) for row in session.scalars(select(ApiToken).order_by(ApiToken.id))]


def revoke_token(store: Store, token_id: int, *, actor: str = "cli") -> bool:
    with store.session() as session:
        done = session.execute(
            update(ApiToken)
            .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
            .returning(ApiToken.name)
        ).scalar()
        if done is not None:
            _bump_epoch(session)
            record_audit(
                session,
                actor=actor,
                action="token.revoked",
                subject=done,
                detail={"token_id": token_id},
            )
        return done is not None


EPOCH = "tokens"


def _bump_epoch(session: Session) -> None:
    done = session.execute(update(Epoch).where(Epoch.name == EPOCH).values(value=Epoch.value + 1))
    if not done.rowcount:  # type: ignore[attr-defined]
        try:
            with session.begin_nested():
                session.add(Epoch(name=EPOCH, value=1))
        except IntegrityError:
            session.execute(update(Epoch).where(Epoch.name == EPOCH).values(value=Epoch.value + 1))


def token_epoch(store: Store) -> int:
    """The revocation epoch: it moves each time any worker or the CLI revokes a token."""
    with store.session() as session:
        return int(session.scalar(select(Epoch.value).where(Epoch.name == EPOCH)) or 0)


class TokenCache:
    """Recent token lookups, bounded (least recently used goes first).

    A valid token is trusted for ``ttl`` seconds *and* only while the store's
    revocation epoch is the one it was checked under, so a revocation from any
    process takes effect on the next request. An unknown token is remembered for
    ``negative_ttl`` seconds only, so a flood of bogus tokens neither grows memory
    nor reaches the store more than once each.
    """

    def __init__(
        self, max_entries: int = 10_000, ttl: float = 10.0, negative_ttl: float = 2.0
    ) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self._entries: OrderedDict[str, tuple[float, int, TokenInfo | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: str, epoch: int | None) -> tuple[bool, TokenInfo | None]:
        """(found, info); ``epoch`` None skips the epoch test (negative entries)."""
        entry = self._entries.get(digest)
        if entry is None:
            return False, None
        at, checked_under, info = entry
        age = system_clock.monotonic() - at
        if age >= (self.ttl if info is not None else self.negative_ttl) or (
            info is not None and epoch is not None and epoch != checked_under
        ):
            del self._entries[digest]
            return False, None
        self._entries.move_to_end(digest)
        return True, info

    def peek(self, digest: str) -> TokenInfo | bool | None:
        """The cached info, or False when nothing is cached (no epoch test)."""
        entry = self._entries.get(digest)
        return False if entry is None else entry[2]

    def put(self, digest: str, epoch: int, info: TokenInfo | None) -> None:
        self._entries[digest] = (system_clock.monotonic(), epoch, info)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
