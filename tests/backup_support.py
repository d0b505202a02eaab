"""Helpers for the backup tests: a PostgreSQL database with data, and a spec that backs it up."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from controltower.spec import Spec, load_spec

SCHEMA = """
CREATE TABLE customers (id serial PRIMARY KEY, email text UNIQUE NOT NULL, created timestamptz DEFAULT now());
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers(id), total numeric(10, 2), note text);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE SCHEMA billing;
CREATE TABLE billing.invoices (id int PRIMARY KEY, paid boolean NOT NULL DEFAULT false);
CREATE TABLE empty_table (id int);
CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
INSERT INTO customers (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, 300) g;
INSERT INTO orders (customer_id, total, note)
  SELECT 1 + g % 300, (g % 250)::numeric + 0.5, repeat('x', g % 40) FROM generate_series(1, 2500) g;
INSERT INTO billing.invoices SELECT g, g % 2 = 0 FROM generate_series(1, 120) g;
"""

EXPECTED = {
    "public.customers": 300,
    "public.orders": 2500,
    "billing.invoices": 120,
    "public.empty_table": 0,
}


def fill(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(SCHEMA)  # type: ignore[arg-type]


def counts(url: str) -> dict[str, int]:
    out = {}
    with psycopg.connect(url) as connection:
        for table in EXPECTED:
            schema, name = table.split(".")
            row = connection.execute(f'SELECT count(*) FROM "{schema}"."{name}"').fetchone()  # type: ignore[arg-type]
            out[table] = int(row[0]) if row else -1
    return out


def fingerprint(url: str) -> str:
    """A digest of the orders table's content, to compare a restore with its source."""
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT md5(string_agg(id || ':' || customer_id || ':' || total || ':' || note, ',' ORDER BY id)) FROM orders"
        ).fetchone()
    return str(row[0]) if row else ""


def write_spec(
    folder: Path, database_url: str, *, extra: str = "", destination: str = "", tail: str = ""
) -> Spec:
    backups = folder / "backups"
    text = f"""
[service]
name = "shop"

[backup]
database_url = "{database_url}"
rpo = "15m"
rto = "1h"
{extra}

[backup.destination]
{destination or f'type = "local"{chr(10)}path = "{backups}"'}
{tail}"""
    path = folder / "tower.toml"
    path.write_text(text)
    return load_spec(path, environ={})


@contextmanager
def role_with_password(admin_url: str, database_url: str) -> Iterator[tuple[str, str]]:
    """A login role with a distinctive password that owns the database; yields (url, password)."""
    suffix = uuid.uuid4().hex[:10]
    role, password = f"bk_{suffix}", f"Pw-{suffix}-Zq"
    dbname = database_url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN CREATEDB PASSWORD '{password}'")  # type: ignore[arg-type]
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public, billing TO {role}")  # type: ignore[arg-type]
        connection.execute(f"GRANT USAGE ON SCHEMA billing TO {role}")  # type: ignore[arg-type]
        connection.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}")  # type: ignore[arg-type]
    host = database_url.split("@", 1)[1].rsplit("/", 1)[0]
    try:
        yield f"postgresql://{role}:{password}@{host}/{dbname}", password
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            rows = admin.execute(
                "SELECT datname FROM pg_database WHERE datdba = (SELECT oid FROM pg_roles WHERE rolname = %s)",
                (role,),
            ).fetchall()
            for (name,) in rows:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute(f"DROP OWNED BY {role} CASCADE")  # type: ignore[arg-type]
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP OWNED BY {role} CASCADE")  # type: ignore[arg-type]
            admin.execute(f"DROP ROLE IF EXISTS {role}")  # type: ignore[arg-type]


@contextmanager
def fresh_database(admin_url: str, prefix: str = "tower_bk") -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        import pytest

        pytest.skip(f"PostgreSQL is not reachable: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
