"""Property-based requests from the OpenAPI document (schemathesis) against a running server.

For every documented operation, requests generated from its schema (valid ones,
then invalid ones) go over HTTP to a real server on a seeded store with a token
of every scope, once on SQLite and once on PostgreSQL. No answer may be a 5xx; valid requests must get a documented
status code, content type and a body that matches the documented schema. The
examples per operation are few and fixed, so the run stays well under a minute.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from controltower.server import RunningServer, create_token, start_server
from controltower.server.app import OPENAPI
from controltower.spec import parse_spec
from controltower.store import Store
from tests.serve_support import SEED_SPEC, Seeded, seed

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("openapi")]

schemathesis.serializer.alias("application/x-sentry-envelope", "application/octet-stream")
schemathesis.serializer.alias("application/csp-report", "application/json")
schemathesis.serializer.alias("application/reports+json", "application/json")

SCHEMA = schemathesis.openapi.from_path(str(OPENAPI))
OPERATIONS = {result.ok().label: result.ok() for result in SCHEMA.get_all_operations()}
SPEC_TEXT = SEED_SPEC + '\n[[monitors]]\nname = "nightly"\ntype = "heartbeat"\ninterval = "1d"\n'
POSITIVE_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
NEGATIVE_CHECKS = [not_a_server_error, status_code_conformance]


@contextlib.contextmanager
def _database(request: pytest.FixtureRequest, root: Path) -> Iterator[str]:
    """A fresh store of the fixture's kind: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{root / 'tower.db'}"
        return
    import psycopg

    server: str = request.getfixturevalue("postgres_server")
    admin_url = request.getfixturevalue("postgres_admin_url")
    name = f"tower_oas_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, Seeded, str]]:
    """A running server on a seeded store, once on SQLite and once on PostgreSQL."""
    root = tmp_path_factory.mktemp("openapi")
    with _database(request, root) as url, Store.open(url) as store:
        facts = seed(store)
        token, _ = create_token(store, "schemathesis", ["read", "write", "ingest"])
        spec = parse_spec(SPEC_TEXT, source=str(root / "tower.toml"), environ={})
        with start_server(spec, store, monitors=False, notify=False) as server:
            yield server, facts, token


def _run(
    operation: Any,
    mode: GenerationMode,
    examples: int,
    checks: list[Any],
    served: tuple[RunningServer, Seeded, str],
) -> None:
    server, facts, token = served
    fixed: dict[str, Any] = {}
    if "{project_id}" in operation.path:
        # A valid DSN key, so generated bodies reach the parsers instead of stopping at auth.
        fixed = {
            "path_parameters": {"project_id": facts.project.id},
            "query": {"sentry_key": facts.project.public_key},
        }
    if operation.path == "/api/v1/vitals/{project}":
        fixed = {
            "path_parameters": {"project": str(facts.project.id)},
            "query": {"sentry_key": facts.project.public_key},
        }

    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def requests(case: Any) -> None:
        case.call_and_validate(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, checks=checks
        )

    requests()


@pytest.mark.parametrize("label", list(OPERATIONS))
def test_operation_conforms(label: str, served: tuple[RunningServer, Seeded, str]) -> None:
    """Valid requests get documented answers matching their schemas; invalid ones get no 5xx."""
    operation = OPERATIONS[label]
    _run(operation, GenerationMode.POSITIVE, 10, POSITIVE_CHECKS, served)
    with contextlib.suppress(Unsatisfiable):  # nothing here can be made invalid: no input
        _run(operation, GenerationMode.NEGATIVE, 8, NEGATIVE_CHECKS, served)


def test_every_route_is_exercised() -> None:
    """The run covers every documented operation, and the document has them all."""
    assert len(OPERATIONS) >= 40
    assert {"POST /api/{project_id}/envelope/", "POST /api/v1/incidents/{incident_id}/ack"} <= set(
        OPERATIONS
    )
