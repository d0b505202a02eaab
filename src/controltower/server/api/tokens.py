"""``/api/v1/tokens``: list, create (write scope, no wider than the caller's) and revoke."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from controltower.exceptions import UsageError
from controltower.server import tokens
from controltower.server.api.common import (
    ApiError,
    context,
    forget_tokens,
    in_thread,
    json_body,
    requires,
)
from controltower.server.tokens import TokenInfo


@requires("write")
async def list_tokens(request: Request, token: TokenInfo) -> Response:
    found = await in_thread(tokens.list_tokens, context(request).store)
    return JSONResponse({"items": [info.to_json() for info in found]})


@requires("write")
async def create_token(request: Request, token: TokenInfo) -> Response:
    body = await json_body(request)
    name = body.get("name")
    scopes = body.get("scopes")
    if not isinstance(name, str) or not isinstance(scopes, list):
        raise ApiError(400, "invalid_body", 'send {"name": "...", "scopes": ["read", ...]}')
    if not all(isinstance(scope, str) for scope in scopes):
        raise ApiError(400, "invalid_body", "scopes must be strings")
    wider = [scope for scope in scopes if not token.allows(scope)]
    if wider:
        raise ApiError(403, "forbidden", f"cannot grant scopes this token lacks: {wider}")
    try:
        value, info = await in_thread(
            lambda: tokens.create_token(
                context(request).store, name, scopes, actor=f"token:{token.name}"
            )
        )
    except UsageError as exc:
        raise ApiError(400, "invalid_body", exc.message) from None
    return JSONResponse({**info.to_json(), "token": value}, status_code=201)


@requires("write")
async def revoke_token(request: Request, token: TokenInfo) -> Response:
    token_id: int = request.path_params["token_id"]
    done = token_id < 2**31 and await in_thread(
        lambda: tokens.revoke_token(context(request).store, token_id, actor=f"token:{token.name}")
    )
    if not done:
        raise ApiError(404, "not_found", f"there is no active token {token_id}")
    forget_tokens()
    return Response(status_code=204)


routes = [
    Route("/api/v1/tokens", list_tokens, methods=["GET"]),
    Route("/api/v1/tokens", create_token, methods=["POST"]),
    Route("/api/v1/tokens/{token_id:int}", revoke_token, methods=["DELETE"]),
]
