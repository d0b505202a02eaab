from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controltower.backup import BackupCorrupt, run_backup, verify_backup
from controltower.backup.destinations import S3Destination, open_destination
from controltower.backup.retention import prune
from controltower.backup.s3 import MAX_PARTS, MIN_PART, S3Client, part_size
from controltower.exceptions import BackupError
from controltower.spec.backup import DestinationSpec
from controltower.store import Store
from controltower.testing import FakeClock
from tests.backup_support import (
    EXPECTED,
    CuttingProxy,
    MotoS3,
    fill,
    fresh_database,
    moto_s3,
    write_spec,
)
from tests.conftest import free_port

pytestmark = pytest.mark.xdist_group("backup-s3")


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    with moto_s3(free_port()) as server:
        yield server


def _client(s3: MotoS3, *, secret: str | None = None, endpoint: str = "", **kw: int) -> S3Client:
    return S3Client(
        endpoint=endpoint or s3.endpoint,
        bucket=s3.bucket,
        access_key=s3.access_key,
        secret_key=secret or s3.secret_key,
        **kw,  # type: ignore[arg-type]
    )


def _random_file(path: Path, mib: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as out:
        for _ in range(mib):
            block = os.urandom(1024 * 1024)
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


class TestPartSize:
    def test_parts_stay_under_the_limit(self) -> None:
        """Any object up to S3's 5 TiB maximum fits in 10,000 parts of whole MiB."""
        for size in (0, 1, MIN_PART * 3, 6 * 1024**3, 80 * 1024**3, 5 * 1024**4):
            part = part_size(size)
            assert part >= MIN_PART and part % (1024 * 1024) == 0
            assert -(-size // part) < MAX_PARTS


class TestClient:
    def test_put_get_list_delete(self, s3: MotoS3, tmp_path: Path) -> None:
        """Objects go up, come back intact, list with their sizes, and go away."""
        source = tmp_path / "blob.bin"
        data = bytes(range(256)) * 5000
        source.write_bytes(data)
        client = _client(s3)
        client.put_file("shop/a b+c.dump", source)
        for index in range(5):
            client.put_bytes(f"shop/meta-{index}.json", b"{}")
        client.get_file("shop/a b+c.dump", tmp_path / "back.bin")
        assert (tmp_path / "back.bin").read_bytes() == data
        listed = client.list("shop/")
        assert [o.key for o in listed] == sorted(k for k in s3.objects() if k.startswith("shop/"))
        assert len(listed) == 6 and listed[0].size == len(data)
        client.delete("shop/a b+c.dump")
        assert "shop/a b+c.dump" not in s3.objects()
        client.delete("shop/never-there")

    def test_large_object_goes_up_in_parts_and_comes_back_identical(
        self, s3: MotoS3, tmp_path: Path
    ) -> None:
        """An object over one part is a multipart upload; its SHA-256 survives the round trip."""
        source = tmp_path / "large.bin"
        expected = _random_file(source, 40)
        client = _client(s3)
        client.put_file("large/object.bin", source)
        uploads = s3.client().list_multipart_uploads(Bucket=s3.bucket).get("Uploads", [])
        assert uploads == []
        head = s3.client().head_object(Bucket=s3.bucket, Key="large/object.bin")
        assert head["ContentLength"] == 40 * 1024 * 1024
        assert head["ETag"].strip('"').endswith(f"-{-(-40 * 1024 * 1024 // MIN_PART)}")
        back = tmp_path / "back.bin"
        client.get_file("large/object.bin", back)
        assert hashlib.sha256(back.read_bytes()).hexdigest() == expected

    def test_a_connection_cut_mid_upload_is_retried(self, s3: MotoS3, tmp_path: Path) -> None:
        """Two connections dropped in the middle of a part: the upload still completes whole."""
        port = int(s3.endpoint.rsplit(":", 1)[1])
        proxy = CuttingProxy(port, cuts=2, after=3 * 1024 * 1024)
        try:
            source = tmp_path / "cut.bin"
            expected = _random_file(source, 20)
            client = _client(s3, endpoint=proxy.endpoint)
            client.put_file("cut/object.bin", source)
            assert proxy.cut == 2 and proxy.connections > 2
            back = tmp_path / "back.bin"
            client.get_file("cut/object.bin", back)
            assert hashlib.sha256(back.read_bytes()).hexdigest() == expected
        finally:
            proxy.close()

    def test_wrong_secret_is_refused(self, s3: MotoS3) -> None:
        """A request signed with another secret is refused, and the error says so."""
        client = _client(s3, secret="not-the-secret", max_retries=0)
        with pytest.raises(BackupError, match="S3 upload of s3://backups/x failed") as caught:
            client.put_bytes("x", b"1")
        assert "not-the-secret" not in str(caught.value)
        assert "x" not in s3.objects()

    def test_missing_key(self, s3: MotoS3) -> None:
        """A missing object is reported as missing, with the way to see what exists."""
        with pytest.raises(BackupError, match="is missing"):
            _client(s3).get_bytes("nope")

    def test_credentials_from_named_variables(self, s3: MotoS3) -> None:
        """Keys come from the variables the spec names; half a pair is explained."""
        spec = DestinationSpec(
            type="s3",
            endpoint=s3.endpoint,
            bucket=s3.bucket,
            access_key_env="MY_KEY",
            secret_key_env="MY_SECRET",
        )
        with pytest.raises(BackupError, match=r"\$MY_SECRET is not set"):
            open_destination(spec, environ={"MY_KEY": s3.access_key})
        dest = open_destination(spec, environ={"MY_KEY": s3.access_key, "MY_SECRET": s3.secret_key})
        assert isinstance(dest, S3Destination)
        dest.put_bytes("k", b"v")
        assert s3.objects()["k"] == 1


@pytest.mark.postgres
@pytest.mark.xdist_group("backup-heavy")
class TestBackupToS3:
    def test_backup_verify_prune_through_s3(
        self, postgres_admin_url: str, store: Store, tmp_path: Path
    ) -> None:
        """Backups land in the bucket under the prefix, verify from there, and prune there."""
        clock = FakeClock(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
        with moto_s3(free_port()) as s3, fresh_database(postgres_admin_url) as url:
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
            keys = set(s3.objects())
            assert {f"prod/shop/{n}.dump" for n in names} <= keys
            assert {f"prod/shop/{n}.json" for n in names} <= keys
            result = verify_backup(spec, store, names[0], environ=s3.environ())
            assert result.ok and result.tables == EXPECTED

            pruned = prune(spec, store, clock=clock, environ=s3.environ())
            assert pruned.deleted == [names[0]]
            assert f"prod/shop/{names[0]}.dump" not in s3.objects()
            assert f"prod/shop/{names[2]}.dump" in s3.objects()

            key = f"prod/shop/{names[2]}.dump"
            body = s3.client().get_object(Bucket="backups", Key=key)["Body"].read()
            s3.client().put_object(Bucket="backups", Key=key, Body=body[:-10])
            with pytest.raises(BackupCorrupt):
                verify_backup(spec, store, "latest", environ=s3.environ())
