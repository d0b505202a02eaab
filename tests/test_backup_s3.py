from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controltower.backup import BackupCorrupt, run_backup, verify_backup
from controltower.backup.destinations import S3Destination, open_destination
from controltower.backup.retention import prune
from controltower.backup.s3 import EMPTY_SHA256, Credentials, S3Client, sign
from controltower.exceptions import BackupError
from controltower.spec.backup import DestinationSpec
from controltower.store import Store
from controltower.testing import FakeClock
from tests.backup_support import EXPECTED, fill, fresh_database, write_spec
from tests.fakes.s3 import FakeS3

AWS_EXAMPLE = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
WHEN = datetime(2013, 5, 24, tzinfo=UTC)


def _signature(headers: dict[str, str]) -> str:
    return headers["authorization"].rsplit("Signature=", 1)[1]


class TestSigV4:
    """The signatures of the worked examples in the Amazon S3 SigV4 documentation."""

    def test_get_object_example(self) -> None:
        """GET /test.txt with a Range header signs as the documentation shows."""
        headers = sign(
            method="GET",
            path="/test.txt",
            query={},
            headers={"host": "examplebucket.s3.amazonaws.com", "range": "bytes=0-9"},
            payload_sha256=EMPTY_SHA256,
            credentials=AWS_EXAMPLE,
            region="us-east-1",
            when=WHEN,
        )
        assert _signature(headers) == (
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        )
        assert (
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date" in headers["authorization"]
        )

    def test_put_object_example(self) -> None:
        """PUT /test$file.text encodes the $ in the path and signs the payload hash."""
        headers = sign(
            method="PUT",
            path="/test$file.text",
            query={},
            headers={
                "host": "examplebucket.s3.amazonaws.com",
                "date": "Fri, 24 May 2013 00:00:00 GMT",
                "x-amz-storage-class": "REDUCED_REDUNDANCY",
            },
            payload_sha256=hashlib.sha256(b"Welcome to Amazon S3.").hexdigest(),
            credentials=AWS_EXAMPLE,
            region="us-east-1",
            when=WHEN,
        )
        assert _signature(headers) == (
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        )

    def test_list_objects_example(self) -> None:
        """GET /?max-keys=2&prefix=J sorts and encodes the query."""
        headers = sign(
            method="GET",
            path="/",
            query={"prefix": "J", "max-keys": "2"},
            headers={"host": "examplebucket.s3.amazonaws.com"},
            payload_sha256=EMPTY_SHA256,
            credentials=AWS_EXAMPLE,
            region="us-east-1",
            when=WHEN,
        )
        assert _signature(headers) == (
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        )


@pytest.fixture
def s3() -> Iterator[FakeS3]:
    with FakeS3(buckets=["backups"], page_size=3) as server:
        yield server


def _client(s3: FakeS3, secret: str | None = None) -> S3Client:
    return S3Client(
        endpoint=s3.endpoint,
        bucket="backups",
        region="us-east-1",
        credentials=Credentials(s3.access_key, secret or s3.secret_key),
    )


class TestClient:
    def test_put_get_list_delete(self, s3: FakeS3, tmp_path: Path) -> None:
        """Objects go up streamed, come back intact, list across pages, and go away."""
        source = tmp_path / "blob.bin"
        data = bytes(range(256)) * 5000
        source.write_bytes(data)
        client = _client(s3)
        client.put_file("shop/a b+c.dump", source, sha256=hashlib.sha256(data).hexdigest())
        for index in range(5):
            client.put_bytes(f"shop/meta-{index}.json", b"{}")
        client.get_file("shop/a b+c.dump", tmp_path / "back.bin")
        assert (tmp_path / "back.bin").read_bytes() == data
        assert s3.objects["backups"]["shop/a b+c.dump"] == data
        listed = client.list("shop/")
        assert [o.key for o in listed] == sorted(s3.objects["backups"])
        assert len(listed) == 6
        assert listed[0].size == len(data)
        client.delete("shop/a b+c.dump")
        assert "shop/a b+c.dump" not in s3.objects["backups"]
        client.close()

    def test_wrong_secret_is_refused(self, s3: FakeS3) -> None:
        """A request signed with another secret is refused with S3's error code."""
        client = _client(s3, secret="not-the-secret")
        with pytest.raises(BackupError, match="403: SignatureDoesNotMatch"):
            client.put_bytes("x", b"1")
        assert s3.objects["backups"] == {}

    def test_missing_key(self, s3: FakeS3) -> None:
        with pytest.raises(BackupError, match="404: NoSuchKey"):
            _client(s3).get_bytes("nope")

    def test_credentials_from_named_variables(self, s3: FakeS3) -> None:
        """Credentials come from the variables the spec names, and their absence is explained."""
        spec = DestinationSpec(
            type="s3",
            endpoint=s3.endpoint,
            bucket="backups",
            access_key_env="MY_KEY",
            secret_key_env="MY_SECRET",
        )
        with pytest.raises(BackupError, match="MY_KEY, MY_SECRET not set"):
            open_destination(spec, environ={})
        dest = open_destination(spec, environ={"MY_KEY": s3.access_key, "MY_SECRET": s3.secret_key})
        assert isinstance(dest, S3Destination)
        dest.put_bytes("k", b"v")
        assert s3.objects["backups"]["k"] == b"v"


@pytest.mark.postgres
@pytest.mark.xdist_group("backup-heavy")
class TestBackupToS3:
    def test_backup_verify_prune_through_s3(
        self, s3: FakeS3, postgres_admin_url: str, store: Store, tmp_path: Path
    ) -> None:
        """Backups land in the bucket under the prefix, verify from there, and prune there."""
        clock = FakeClock(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
        with fresh_database(postgres_admin_url) as url:
            fill(url)
            destination = (
                f'type = "s3"\nendpoint = "{s3.endpoint}"\nbucket = "backups"\nprefix = "prod"\n'
            )
            spec = write_spec(tmp_path, url, destination=destination)
            spec.backup.retention.last = 0
            spec.backup.retention.hourly = 2
            spec.backup.retention.daily = 0
            spec.backup.retention.weekly = 0
            names = []
            for _ in range(3):
                names.append(run_backup(spec, store, clock=clock, environ=s3.environ()).name)
                clock.advance(3600)
            keys = set(s3.objects["backups"])
            assert {f"prod/shop/{n}.dump" for n in names} <= keys
            assert {f"prod/shop/{n}.json" for n in names} <= keys
            result = verify_backup(spec, store, names[0], environ=s3.environ())
            assert result.ok and result.tables == EXPECTED

            pruned = prune(spec, store, clock=clock, environ=s3.environ())
            assert pruned.deleted == [names[0]]
            assert f"prod/shop/{names[0]}.dump" not in s3.objects["backups"]
            assert f"prod/shop/{names[2]}.dump" in s3.objects["backups"]

            key = f"prod/shop/{names[2]}.dump"
            s3.objects["backups"][key] = s3.objects["backups"][key][:-10]
            with pytest.raises(BackupCorrupt):
                verify_backup(spec, store, "latest", environ=s3.environ())
