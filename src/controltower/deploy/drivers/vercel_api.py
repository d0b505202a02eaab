"""A client of the Vercel REST API endpoints tower uses; this one layer retries.

Documented behaviour it is written against (the test fake reproduces each):

- Rate limits: a 429 carries ``X-RateLimit-Reset``, the UTC epoch second at which
  the window resets (https://vercel.com/docs/rest-api#rate-limits,
  https://vercel.com/docs/limits#rate-limits); the client waits until then.
- Errors are ``{"error": {"code", "message"}}``
  (https://vercel.com/docs/rest-api#errors).
- Lists are paginated: ``pagination.next`` is passed back as ``until`` for the
  next page, ``null`` on the last one (https://vercel.com/docs/rest-api#pagination).
- A team's resources are addressed with ``?teamId=``; without it (or with
  another team's) they answer 404/403 (https://vercel.com/docs/rest-api#authentication
  "Accessing resources owned by a team").

The token goes only into the ``Authorization`` header: no message of this
module, nor any error it raises, contains it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import httpx

from controltower.clock import system_clock
from controltower.exceptions import DriverError
from controltower.typing import Clock

API_URL = "https://api.vercel.com"
RETRIED = (408, 429, 500, 502, 503, 504)


def reset_delay(response: httpx.Response, now: float) -> float | None:
    """Seconds until ``X-RateLimit-Reset`` (epoch seconds), or from ``Retry-After``."""
    value = response.headers.get("x-ratelimit-reset", "").strip()
    if value:
        with suppress(ValueError):
            return max(0.0, float(value) - now)
    value = response.headers.get("retry-after", "").strip()
    if value:
        with suppress(ValueError):
            return max(0.0, float(value))
    return None


class VercelAPI:
    """Calls, retries (429 until the reset, 5xx with backoff), error messages, pages."""

    def __init__(
        self,
        token: str,
        *,
        team_id: str = "",
        base_url: str = API_URL,
        timeout: float = 30.0,
        clock: Clock = system_clock,
        retry_for: float = 120.0,
    ) -> None:
        if not token:
            raise DriverError("no Vercel token", hint="export VERCEL_TOKEN=<a Vercel access token>")
        self.team_id = team_id
        self.clock = clock
        self.retry_for = retry_for
        self.retries = 0
        self.waited = 0.0
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> Any:
        query = dict(params or {})
        if self.team_id:
            query["teamId"] = self.team_id
        deadline = self.clock.monotonic() + self.retry_for
        attempt = 0
        while True:
            try:
                response = self.http.request(method, path, json=json, params=query)
            except httpx.HTTPError as exc:
                delay = min(8.0, 0.5 * 2**attempt)
                if method == "GET" and self.clock.monotonic() + delay < deadline:
                    attempt += 1
                    self._pause(delay)
                    continue
                raise DriverError(
                    f"Vercel API {method} {path}: {type(exc).__name__}: {exc}"
                ) from None
            status = response.status_code
            if status in RETRIED:
                delay = reset_delay(response, time.time())
                if delay is None:
                    delay = min(8.0, 0.5 * 2**attempt)
                if self.clock.monotonic() + delay < deadline:
                    attempt += 1
                    self._pause(delay)
                    continue
            break
        if status not in ok:
            raise DriverError(
                f"Vercel API {method} {path}: {status} {_error_text(response)}".strip(),
                hint=_hint(status, self.team_id),
            )
        if not response.content:
            return None
        return response.json()

    def _pause(self, delay: float) -> None:
        self.retries += 1
        self.waited += delay
        self.clock.sleep(delay)

    def pages(
        self, path: str, key: str, *, params: dict[str, Any] | None = None, limit: int = 0
    ) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list, following ``pagination.next`` as ``until``."""
        query = dict(params or {})
        seen = 0
        while True:
            data = self.call("GET", path, params=query) or {}
            for item in data.get(key) or []:
                yield item
                seen += 1
                if limit and seen >= limit:
                    return
            following = (data.get("pagination") or {}).get("next")
            if following is None:
                return
            query["until"] = following

    # ---- deployments -------------------------------------------------------------------

    def create_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = self.call("POST", "/v13/deployments", json=body)
        return data

    def deployment(self, id_or_url: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = self.call("GET", f"/v13/deployments/{id_or_url}")
        except DriverError as exc:
            if " 404 " in exc.message:
                return None
            raise
        return data

    def deployments(self, project_id: str, *, limit: int = 0) -> Iterator[dict[str, Any]]:
        return self.pages(
            "/v6/deployments", "deployments", params={"projectId": project_id}, limit=limit
        )

    def cancel(self, deployment_id: str) -> None:
        self.call("PATCH", f"/v12/deployments/{deployment_id}/cancel")

    def upload(self, content: bytes, sha: str) -> None:
        """One file of a deployment, addressed by its SHA1 (``x-vercel-digest``)."""
        query = {"teamId": self.team_id} if self.team_id else {}
        deadline = self.clock.monotonic() + self.retry_for
        while True:
            response = self.http.post(
                "/v2/files",
                content=content,
                params=query,
                headers={"x-vercel-digest": sha, "Content-Type": "application/octet-stream"},
            )
            if response.status_code == 429:
                delay = reset_delay(response, time.time()) or 1.0
                if self.clock.monotonic() + delay < deadline:
                    self._pause(delay)
                    continue
            break
        if response.status_code != 200:
            raise DriverError(
                f"Vercel API POST /v2/files: {response.status_code} {_error_text(response)}",
                hint=_hint(response.status_code, self.team_id),
            )

    # ---- projects ----------------------------------------------------------------------

    def project(self, id_or_name: str) -> dict[str, Any]:
        data: dict[str, Any] = self.call("GET", f"/v9/projects/{id_or_name}")
        return data

    def promote(self, project_id: str, deployment_id: str) -> None:
        self.call("POST", f"/v10/projects/{project_id}/promote/{deployment_id}", ok=(200, 201, 202))

    def rollback(self, project_id: str, deployment_id: str) -> None:
        self.call("POST", f"/v1/projects/{project_id}/rollback/{deployment_id}", ok=(200, 201))

    def env_names(self, project_id: str) -> list[dict[str, Any]]:
        """The project's variables: key, target and type only, never a value."""
        data = self.call("GET", f"/v10/projects/{project_id}/env", params={"decrypt": "false"})
        return [
            {
                "key": str(e.get("key", "")),
                "target": _targets(e.get("target")),
                "type": e.get("type"),
            }
            for e in (data or {}).get("envs") or []
        ]

    def domains(self, project_id: str) -> list[dict[str, Any]]:
        return list(self.pages(f"/v9/projects/{project_id}/domains", "domains"))

    def domain_config(self, domain: str) -> dict[str, Any]:
        data: dict[str, Any] = self.call("GET", f"/v6/domains/{domain}/config")
        return data

    # ---- rolling releases --------------------------------------------------------------

    def rolling_config(self, project_id: str) -> dict[str, Any] | None:
        data = self.call("GET", f"/v1/projects/{project_id}/rolling-release/config") or {}
        config = data.get("rollingRelease")
        return dict(config) if isinstance(config, dict) else None

    def set_rolling_config(self, project_id: str, stages: list[dict[str, Any]]) -> None:
        self.call(
            "PATCH",
            f"/v1/projects/{project_id}/rolling-release/config",
            json={"target": "production", "stages": stages},
        )

    def rolling_release(self, project_id: str) -> dict[str, Any] | None:
        data = self.call("GET", f"/v1/projects/{project_id}/rolling-release") or {}
        release = data.get("rollingRelease")
        return dict(release) if isinstance(release, dict) else None

    def approve_stage(self, project_id: str, deployment_id: str, index: int) -> None:
        self.call(
            "POST",
            f"/v1/projects/{project_id}/rolling-release/approve-stage",
            json={"nextStageIndex": index, "canaryDeploymentId": deployment_id},
        )

    def complete_rolling(self, project_id: str, deployment_id: str) -> None:
        self.call(
            "POST",
            f"/v1/projects/{project_id}/rolling-release/complete",
            json={"canaryDeploymentId": deployment_id},
        )

    def close(self) -> None:
        self.http.close()


def _targets(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code, message = error.get("code", ""), error.get("message", "")
        return f"{code}: {message}" if code else str(message)
    return str(body)[:200]


def _hint(status: int, team_id: str) -> str | None:
    if status in (401, 403) and not team_id:
        return "check $VERCEL_TOKEN; a team's project also needs [deploy.vercel] team_id"
    if status == 401:
        return "check the token in $VERCEL_TOKEN"
    if status == 404 and not team_id:
        return "a project owned by a team is found only with [deploy.vercel] team_id set"
    return None
