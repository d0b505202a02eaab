"""Files and folders that hold tower's state are this user's alone: 0700 folders, 0600 files."""

from __future__ import annotations

import os

__all__ = ["private_file", "private_folder"]


def private_folder(path: os.PathLike[str] | str) -> None:
    """Create folder ``path`` (and its parents) readable by this user only (0700)."""
    folder = os.fspath(path)
    if os.path.isdir(folder):
        return
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)


def private_file(path: os.PathLike[str] | str) -> None:
    """Create the empty file ``path`` readable by this user only (0600) if it is missing."""
    try:
        fd = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)
