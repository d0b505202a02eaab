"""Client-side encryption of backups with age (``pyrage``), streamed and hashed on the way.

Backups are encrypted on this machine to the public recipients listed in
``[backup.encryption] recipients`` before they leave it, so the destination
only ever holds ciphertext. The identity that decrypts them is read, when a
restore needs it, from the environment variable named by ``identity_env`` or
from ``identity_file`` (or ``--identity-file``); tower never writes it
anywhere and never puts it in a message.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from controltower.exceptions import BackupError
from controltower.spec.backup import EncryptionSpec

ENCRYPTION = "age"
SUFFIX = ".age"
_SSH_PREFIXES = ("ssh-ed25519 ", "ssh-rsa ")


def parse_recipient(text: str) -> Any:
    """An age recipient (``age1…``) or an SSH public key; ValueError says why not."""
    import pyrage

    value = text.strip()
    try:
        if value.startswith(_SSH_PREFIXES):
            return pyrage.ssh.Recipient.from_str(value)
        if value.startswith("age1"):
            return pyrage.x25519.Recipient.from_str(value)
    except pyrage.RecipientError as exc:
        raise ValueError(f"{_short(value)} is not a valid age recipient: {exc}") from None
    if value.startswith("AGE-SECRET-KEY-"):
        raise ValueError(
            "an age identity (AGE-SECRET-KEY-…) is a private key: list its public recipient "
            "(age1…) here and keep the identity in the variable named by identity_env"
        )
    raise ValueError(
        f"{_short(value)} is not an age recipient: expected age1… or an ssh-ed25519/ssh-rsa key"
    )


def _short(value: str) -> str:
    return f'"{value[:16]}…"' if len(value) > 16 else f'"{value}"'


def recipients(spec: EncryptionSpec) -> list[Any]:
    return [parse_recipient(text) for text in spec.recipients]


def parse_identities(text: str, *, source: str) -> list[Any]:
    """Identities from the text of an age identity file (or an SSH private key)."""
    import pyrage

    if "PRIVATE KEY-----" in text:
        try:
            return [pyrage.ssh.Identity.from_buffer(text.encode())]
        except pyrage.IdentityError:
            raise BackupError(
                f"{source} holds an SSH private key that age cannot use",
                hint="use an unencrypted ssh-ed25519 or ssh-rsa key, or an age identity",
            ) from None
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        try:
            found.append(pyrage.x25519.Identity.from_str(entry))
        except pyrage.IdentityError:
            raise BackupError(
                f"line {number} of {source} is not an age identity (AGE-SECRET-KEY-1…)",
                hint="age-keygen writes such a file; comments start with #",
            ) from None
    if not found:
        raise BackupError(
            f"{source} holds no age identity", hint="it should hold AGE-SECRET-KEY-1…"
        )
    return found


def load_identities(
    spec: EncryptionSpec,
    *,
    root: Path,
    environ: Mapping[str, str] | None = None,
    identity_file: Path | None = None,
) -> list[Any]:
    """The identities that decrypt this spec's backups, or a BackupError saying where to put one."""
    env = os.environ if environ is None else environ
    if identity_file is not None:
        return parse_identities(_read(identity_file), source=str(identity_file))
    if spec.identity_env and env.get(spec.identity_env):
        return parse_identities(env[spec.identity_env], source=f"${spec.identity_env}")
    if spec.identity_file:
        path = Path(spec.identity_file).expanduser()
        if not path.is_absolute():
            path = root / path
        return parse_identities(_read(path), source=str(path))
    where = [f"${spec.identity_env}" if spec.identity_env else "", spec.identity_file]
    named = " or ".join(w for w in where if w) or "--identity-file"
    raise BackupError(
        "this backup is encrypted and no identity to decrypt it was given",
        hint=f"set {named} to the age identity (AGE-SECRET-KEY-1…) that matches "
        "[backup.encryption] recipients",
    )


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise BackupError(f"cannot read the identity file {path}: {exc.strerror}") from None


class _Hashing:
    """A binary reader or writer that hashes and counts what passes through it."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        block = self.stream.read(n)
        self.digest.update(block)
        self.size += len(block)
        return block

    def readinto(self, buffer: Any) -> int:
        block = self.read(len(buffer))
        buffer[: len(block)] = block
        return len(block)

    def write(self, block: bytes) -> int:
        self.digest.update(block)
        self.size += len(block)
        return self.stream.write(block)

    def flush(self) -> None:
        self.stream.flush()


def encrypt_file(source: Path, target: Path, recipients: Sequence[Any]) -> tuple[str, int]:
    """Encrypt ``source`` into ``target``; the SHA-256 and size of the ciphertext."""
    import pyrage

    with source.open("rb") as reader, target.open("wb") as raw:
        writer = _Hashing(raw)
        try:
            pyrage.encrypt_io(reader, writer, list(recipients))
        except pyrage.EncryptError as exc:
            raise BackupError(f"encrypting the backup failed: {exc}") from None
        raw.flush()
        os.fsync(raw.fileno())
    return writer.digest.hexdigest(), writer.size


def decrypt_file(
    source: Path, target: Path, identities: Sequence[Any], *, name: str
) -> tuple[str, int]:
    """Decrypt ``source`` into ``target``; the SHA-256 and size of the plaintext."""
    import pyrage

    with source.open("rb") as reader, target.open("wb") as raw:
        writer = _Hashing(raw)
        try:
            pyrage.decrypt_io(reader, writer, list(identities))
        except pyrage.DecryptError:
            raise BackupError(
                f"backup {name} cannot be decrypted with the identity given",
                hint="use the age identity whose public key is in [backup.encryption] recipients",
            ) from None
    return writer.digest.hexdigest(), writer.size


def encrypt_bytes(data: bytes, recipients: Sequence[Any]) -> bytes:
    import pyrage

    return bytes(pyrage.encrypt(data, list(recipients)))


def decrypt_bytes(data: bytes, identities: Sequence[Any], *, name: str) -> bytes:
    import pyrage

    try:
        return bytes(pyrage.decrypt(data, list(identities)))
    except pyrage.DecryptError:
        raise BackupError(
            f"backup {name} cannot be decrypted with the identity given",
            hint="use the age identity whose public key is in [backup.encryption] recipients",
        ) from None
