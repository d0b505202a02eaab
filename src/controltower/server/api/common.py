"""What every API module shares: token auth by scope, errors, parameters and paging."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from controltower.server.context import ServerContext
from controltower.server.tokens import (
    TokenCache,
    TokenInfo,
    hash_token,
    token_epoch,
    verify_token,
)
from controltower.store import Store

Handler = Callable[[Request, TokenInfo], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]

_cache = TokenCache()


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="tower"'} if status == 401 else None
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def context(request: Request) -> ServerContext:
    value: ServerContext = request.app.state.tower
    return value


async def authenticate(request: Request) -> TokenInfo:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401, "unauthorized", "send Authorization: Bearer <token> (tower token create)"
        )
    token = token.strip()
    digest = hash_token(token)
    info = await _lookup(context(request).store, token, digest)
    if info is None:
        raise ApiError(401, "unauthorized", "the token is not valid or was revoked")
    return info


async def _lookup(store: Store, token: str, digest: str) -> TokenInfo | None:
    """A cached answer where it still holds: a bogus token's for a moment, a valid
    token's while no token has been revoked anywhere since it was checked."""
    cached = _cache.peek(digest)
    if cached is None:
        found, _ = _cache.get(digest, None)
        if found:
            return None
    elif cached is not False:
        epoch = await asyncio.to_thread(token_epoch, store)
        found, info = _cache.get(digest, epoch)
        if found:
            return info
    return await asyncio.to_thread(_verify, store, token, digest)


def _verify(store: Store, token: str, digest: str) -> TokenInfo | None:
    epoch = token_epoch(store)
    info = verify_token(store, token)
    _cache.put(digest, epoch, info)
    return info


def forget_tokens() -> None:
    """Drop cached token lookups (tests; a revocation needs no call: the epoch moves)."""
    _cache.clear()


def requires(scope: str) -> Callable[[Handler], Endpoint]:
    """Wrap a handler: authenticate the bearer token, check ``scope``, map ApiError."""

    def wrap(handler: Handler) -> Endpoint:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            try:
                token = await authenticate(request)
                if not token.allows(scope):
                    raise ApiError(403, "forbidden", f"this token lacks the {scope!r} scope")
                if "\x00" in str(request.query_params) or "%00" in request.url.query:
                    raise ApiError(400, "invalid_parameter", "parameters must not contain NUL")
                return await handler(request, token)
            except ApiError as exc:
                return error_response(exc.status, exc.code, exc.message)

        return endpoint

    return wrap


def int_param(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"{name} must be an integer") from None
    if not low <= value <= high:
        raise ApiError(400, "invalid_parameter", f"{name} must be between {low} and {high}")
    return value


MAX_ID = 2**31 - 1


def path_id(request: Request, name: str, what: str) -> int:
    """An integer path parameter naming a row; 404 when no row could have that id."""
    value: int = request.path_params[name]
    if not 0 < value <= MAX_ID:
        raise ApiError(404, "not_found", f"there is no {what} {value}")
    return value


def optional_id(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    return None if not raw else int_param(request, name, 0, low=1, high=MAX_ID)


def bool_param(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "").lower()
    if raw in ("", "false", "0", "no"):
        return False
    if raw in ("true", "1", "yes"):
        return True
    raise ApiError(400, "invalid_parameter", f"{name} must be true or false")


def choice_param(request: Request, name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        raise ApiError(400, "invalid_parameter", f"{name} must be one of {', '.join(choices)}")
    return raw


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if b"\\u0000" in raw or b"\x00" in raw:
        raise ApiError(400, "invalid_body", "the body must not contain NUL characters")
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "invalid_body", "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    return body


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def page(items: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    """``{"items": [...], "next": <id to pass as ?before=> or null}``."""
    more = len(items) > limit
    shown = items[:limit]
    return {"items": shown, "next": shown[-1]["id"] if more and shown else None}


async def in_thread(function: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(function, *args)
