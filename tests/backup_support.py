"""Helpers for the backup tests: a PostgreSQL database with data, and a spec that backs it up."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass
class MotoS3:
    """A moto S3 server in its own process, with signature checks on, and a user's keys."""

    endpoint: str
    access_key: str
    secret_key: str
    bucket: str = "backups"
    pid: int = 0

    def environ(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def objects(self) -> dict[str, int]:
        listed = self.client().list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return {item["Key"]: int(item["Size"]) for item in listed}


@contextmanager
def moto_s3(port: int, *, bucket: str = "backups") -> Iterator[MotoS3]:
    """Start ``moto.server``; the first four requests (bucket, user, policy, key) skip auth.

    After those, every request must be signed with the created user's keys, as
    on S3 itself: a wrong secret answers 403 ``SignatureDoesNotMatch``.
    """
    import boto3

    from tests.conftest import wait_for_port

    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "4"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, deadline=60)
        endpoint = f"http://127.0.0.1:{port}"
        anonymous = {
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "setup",
            "aws_secret_access_key": "setup",
        }
        boto3.client("s3", **anonymous).create_bucket(Bucket=bucket)
        iam = boto3.client("iam", **anonymous)
        iam.create_user(UserName="tower")
        iam.put_user_policy(
            UserName="tower",
            PolicyName="backups",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName="tower")["AccessKey"]
        yield MotoS3(endpoint, key["AccessKeyId"], key["SecretAccessKey"], bucket, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


class CuttingProxy:
    """A TCP proxy that cuts its first ``cuts`` connections after ``after`` bytes upstream.

    It stands for a network that drops a connection in the middle of an upload.
    """

    def __init__(self, target_port: int, *, cuts: int, after: int) -> None:
        self.target_port = target_port
        self.cuts = cuts
        self.after = after
        self.cut = 0
        self.connections = 0
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                cut = self.cut < self.cuts
                if cut:
                    self.cut += 1
            threading.Thread(target=self._serve, args=(client, cut), daemon=True).start()

    def _serve(self, client: socket.socket, cut: bool) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        threading.Thread(target=self._pipe, args=(upstream, client, None), daemon=True).start()
        self._pipe(client, upstream, self.after if cut else None)

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while block := source.recv(65536):
                if limit is not None and sent + len(block) > limit:
                    sink.sendall(block[: max(0, limit - sent)])
                    break
                sink.sendall(block)
                sent += len(block)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
