"""The local driver's release artifacts: content-addressed snapshots of the app folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from controltower.deploy.local.snapshots import SnapshotStore
from controltower.exceptions import DriverError


def app_folder(root: Path) -> Path:
    app = root / "app"
    (app / ".next" / "static").mkdir(parents=True)
    (app / "public").mkdir()
    (app / "node_modules" / "next").mkdir(parents=True)
    (app / ".git").mkdir()
    (app / ".tower").mkdir()
    (app / "__pycache__").mkdir()
    (app / "package.json").write_text('{"name": "shop"}')
    (app / ".next" / "BUILD_ID").write_text("build-a")
    (app / ".next" / "static" / "chunk.js").write_text("console.log('a')")
    (app / "public" / "logo.svg").write_text("<svg/>")
    (app / "node_modules" / "next" / "index.js").write_text("module.exports = {}")
    (app / ".git" / "HEAD").write_text("ref: refs/heads/main")
    (app / ".tower" / "tower.db").write_text("store")
    (app / "__pycache__" / "x.pyc").write_text("bytecode")
    script = app / "start.sh"
    script.write_text("#!/bin/sh\nexec node server.js\n")
    script.chmod(0o755)
    return app


def files(folder: Path) -> set[str]:
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if (p.is_file() or p.is_symlink()) and p.name != ".tower-artifact.json"
    }


class TestSnapshot:
    def test_whole_folder_less_git_tower_and_bytecode(self, tmp_path: Path) -> None:
        """Without `artifact` the snapshot holds the app folder less .git, .tower, __pycache__."""
        app = app_folder(tmp_path)
        snapshot = SnapshotStore(tmp_path / "artifacts").snapshot(app)
        assert files(snapshot.path) == {
            "package.json",
            ".next/BUILD_ID",
            ".next/static/chunk.js",
            "public/logo.svg",
            "node_modules/next/index.js",
            "start.sh",
        }
        assert snapshot.digest.startswith("sha256:") and len(snapshot.digest) == 71
        assert snapshot.files == 6
        assert snapshot.size == sum((app / f).stat().st_size for f in files(snapshot.path))
        assert os.access(snapshot.path / "start.sh", os.X_OK)

    def test_same_tree_same_digest_and_folder(self, tmp_path: Path) -> None:
        """Snapshotting an unchanged tree again gives the same digest and reuses the folder."""
        app = app_folder(tmp_path)
        store = SnapshotStore(tmp_path / "artifacts")
        first, second = store.snapshot(app), store.snapshot(app)
        assert first.digest == second.digest and first.path == second.path
        assert len(list((tmp_path / "artifacts" / "snapshots").iterdir())) == 1

    def test_a_new_build_is_a_new_snapshot_sharing_unchanged_files(self, tmp_path: Path) -> None:
        """A changed file gives a new digest; unchanged files are one hard-linked object."""
        app = app_folder(tmp_path)
        store = SnapshotStore(tmp_path / "artifacts")
        first = store.snapshot(app)
        (app / ".next" / "BUILD_ID").write_text("build-b")
        second = store.snapshot(app)
        assert first.digest != second.digest
        assert (first.path / ".next" / "BUILD_ID").read_text() == "build-a"
        assert (second.path / ".next" / "BUILD_ID").read_text() == "build-b"
        shared = [(s.path / "package.json").stat() for s in (first, second)]
        assert shared[0].st_ino == shared[1].st_ino and shared[0].st_nlink >= 3
        assert second.linked == second.files

    def test_files_are_read_only(self, tmp_path: Path) -> None:
        """A process cannot change its release by writing to a shipped file; new files are fine."""
        app = app_folder(tmp_path)
        snapshot = SnapshotStore(tmp_path / "artifacts").snapshot(app)
        assert not os.access(snapshot.path / "package.json", os.W_OK) or os.geteuid() == 0
        (snapshot.path / ".next" / "cache.json").write_text("{}")

    def test_artifact_paths_narrow_it_and_link_the_rest(self, tmp_path: Path) -> None:
        """`artifact` keeps only the named paths; other entries link to the working folder."""
        app = app_folder(tmp_path)
        snapshot = SnapshotStore(tmp_path / "artifacts").snapshot(
            app, include=[".next/", "public/", "package.json"]
        )
        copied = {f for f in files(snapshot.path) if not (snapshot.path / f).is_symlink()}
        assert copied == {
            "package.json",
            ".next/BUILD_ID",
            ".next/static/chunk.js",
            "public/logo.svg",
        }
        modules = snapshot.path / "node_modules"
        assert modules.is_symlink() and modules.resolve() == (app / "node_modules").resolve()
        assert not (snapshot.path / ".git").exists() and not (snapshot.path / ".tower").exists()

    def test_missing_artifact_path_is_a_clear_error(self, tmp_path: Path) -> None:
        """A path in `artifact` that does not exist names the key and the path."""
        app = app_folder(tmp_path)
        with pytest.raises(DriverError, match=r"\[deploy.local\] artifact path 'dist/'"):
            SnapshotStore(tmp_path / "artifacts").snapshot(app, include=["dist/"])

    def test_excluded_state_folder_is_left_out(self, tmp_path: Path) -> None:
        """The driver's own state folder inside the app folder is not part of the release."""
        app = app_folder(tmp_path)
        (app / "state").mkdir()
        (app / "state" / "agent.json").write_text("{}")
        snapshot = SnapshotStore(app / "state" / "artifacts").snapshot(app, exclude=[app / "state"])
        assert not any(f.startswith("state/") for f in files(snapshot.path))


class TestPrune:
    def test_prune_keeps_named_and_frees_unlinked_objects(self, tmp_path: Path) -> None:
        """Pruning deletes the snapshots not kept and the objects only they used."""
        app = app_folder(tmp_path)
        store = SnapshotStore(tmp_path / "artifacts")
        old = store.snapshot(app)
        (app / ".next" / "BUILD_ID").write_text("build-b")
        new = store.snapshot(app)
        objects_before = len(list((tmp_path / "artifacts" / "objects").glob("*/*")))
        removed = store.prune([str(new.path)])
        assert removed == [str(old.path)]
        assert not old.path.exists() and store.exists(str(new.path))
        assert len(list((tmp_path / "artifacts" / "objects").glob("*/*"))) == objects_before - 1
        assert (new.path / ".next" / "BUILD_ID").read_text() == "build-b"
