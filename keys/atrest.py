"""Encryption at rest: master keys outside the database, data keys inside it, wrapped.

Each retention bucket (say ``zorg-2027-05``: health-insurance signals that expire in
May 2027) has a 32-byte *master key* kept outside the database and a 32-byte *data key*
stored in the database wrapped by that master key. Rows are encrypted with the data key.
Destroying the master key (crypto-shredding) makes every copy of the bucket's rows
unreadable, including those in old database backups, because the backups hold only the
wrapped data key.

Byte layouts (all AES-256-GCM, 12-byte random nonce, 16-byte tag):

- wrapped data key: ``nonce || ciphertext+tag`` (60 bytes), with AAD
  ``b"signaalpoort/data-key/" + bucket``, so a wrapped key cannot be moved to another
  bucket;
- sealed data: ``0x01 || nonce || ciphertext+tag``, with the caller's AAD; ``0x01`` is
  the format version and anything else is refused.

Errors raise :class:`keys.errors.AtRestInvalid` or :class:`keys.errors.MasterKeyDestroyed`
and never carry key material.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keys.errors import AtRestInvalid, MasterKeyDestroyed

KEY_BYTES = 32
"""Length of master and data keys (AES-256)."""

NONCE_BYTES = 12
TAG_BYTES = 16
VERSION = b"\x01"
"""Format version of sealed data."""

WRAP_AAD_PREFIX = b"signaalpoort/data-key/"

# A leading dot is refused so that ".", ".." and our temporary files can never be keys.
_BUCKET = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")


def check_bucket(bucket: str) -> str:
    """Return ``bucket`` if it is a valid bucket name, else raise ``AtRestInvalid``.

    Valid names are 1 to 64 characters from ``[A-Za-z0-9_.-]`` not starting with a dot,
    so a name is always one plain file name in the master-key directory.
    """
    if not isinstance(bucket, str) or _BUCKET.fullmatch(bucket) is None:
        raise AtRestInvalid("bucket name is not [A-Za-z0-9_.-]{1,64}", cause="bucket_invalid")
    return bucket


class MasterKeys(Protocol):
    """Where master keys live: a directory of key files, later a KMS or HSM."""

    def create(self, bucket: str) -> None:
        """Create the bucket's master key; keep an existing one."""
        ...

    def load(self, bucket: str) -> bytes:
        """The bucket's master key; ``MasterKeyDestroyed`` when it is gone."""
        ...

    def destroy(self, bucket: str) -> None:
        """Destroy the bucket's master key for good (a no-op when already gone)."""
        ...

    def exists(self, bucket: str) -> bool:
        """Whether the bucket's master key exists."""
        ...


class FileMasterKeys:
    """Master keys as files ``<directory>/<bucket>.key`` (mode 0600, directory 0700).

    Overwriting before unlinking is a best effort: journaling and copy-on-write file
    systems and SSDs may keep old blocks, so the directory belongs on storage that is not
    backed up with the database. A KMS or HSM is the production answer.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, bucket: str) -> Path:
        return self.directory / f"{check_bucket(bucket)}.key"

    def _ensure_directory(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True)
        except FileExistsError:
            return
        # mkdir's mode is filtered by the umask; make it exactly 0700.
        os.chmod(self.directory, 0o700)

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def create(self, bucket: str) -> None:
        """Create the bucket's master key, or keep the one that exists.

        The key is written to a temporary file and hard-linked into place, so a
        concurrent ``load`` never sees a half-written key and two concurrent creators
        agree on one key.
        """
        path = self._path(bucket)
        self._ensure_directory()
        if path.exists():
            return
        tmp = self.directory / f".{bucket}.{secrets.token_hex(8)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race; its key stands
        finally:
            os.unlink(tmp)
        self._sync_directory()

    def load(self, bucket: str) -> bytes:
        """The bucket's master key; ``MasterKeyDestroyed`` when the file is gone."""
        path = self._path(bucket)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise MasterKeyDestroyed(
                f"master key of bucket {bucket} is gone", cause="master_key_missing"
            ) from None
        try:
            key = os.read(fd, KEY_BYTES + 1)
        finally:
            os.close(fd)
        if len(key) != KEY_BYTES:
            raise AtRestInvalid(
                f"master key of bucket {bucket} has {len(key)} bytes, not {KEY_BYTES}",
                cause="key_invalid",
            )
        return key

    def destroy(self, bucket: str) -> None:
        """Overwrite the key file with random bytes, fsync it, and unlink it."""
        path = self._path(bucket)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return
        try:
            size = max(os.fstat(fd).st_size, KEY_BYTES)
            os.write(fd, secrets.token_bytes(size))
            os.fsync(fd)
        finally:
            os.close(fd)
        path.unlink()
        self._sync_directory()

    def exists(self, bucket: str) -> bool:
        """Whether the bucket's master key file exists."""
        return self._path(bucket).is_file()


def _check_key(key: bytes, what: str) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise AtRestInvalid(f"{what} must be {KEY_BYTES} bytes", cause="key_invalid")


def new_data_key() -> bytes:
    """A fresh random 32-byte data key."""
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def wrap(master: bytes, data_key: bytes, *, bucket: str) -> bytes:
    """Wrap ``data_key`` under the bucket's ``master`` key (nonce || ciphertext+tag)."""
    _check_key(master, "master key")
    _check_key(data_key, "data key")
    nonce = secrets.token_bytes(NONCE_BYTES)
    aad = WRAP_AAD_PREFIX + check_bucket(bucket).encode("ascii")
    return nonce + AESGCM(master).encrypt(nonce, data_key, aad)


def unwrap(master: bytes, wrapped: bytes, *, bucket: str) -> bytes:
    """Unwrap a data key wrapped by :func:`wrap` for the same bucket."""
    _check_key(master, "master key")
    aad = WRAP_AAD_PREFIX + check_bucket(bucket).encode("ascii")
    if len(wrapped) != NONCE_BYTES + KEY_BYTES + TAG_BYTES:
        raise AtRestInvalid(f"wrapped data key has {len(wrapped)} bytes", cause="malformed")
    try:
        data_key = AESGCM(master).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad)
    except InvalidTag:
        raise AtRestInvalid(
            f"data key of bucket {bucket} does not unwrap", cause="unwrap_failed"
        ) from None
    return data_key


def encrypt(data_key: bytes, plaintext: bytes, *, aad: bytes) -> bytes:
    """Seal ``plaintext`` as ``0x01 || nonce || ciphertext+tag``, bound to ``aad``."""
    _check_key(data_key, "data key")
    nonce = secrets.token_bytes(NONCE_BYTES)
    return VERSION + nonce + AESGCM(data_key).encrypt(nonce, plaintext, aad)


def decrypt(data_key: bytes, blob: bytes, *, aad: bytes) -> bytes:
    """Open a blob sealed by :func:`encrypt` with the same key and ``aad``."""
    _check_key(data_key, "data key")
    if len(blob) < 1 + NONCE_BYTES + TAG_BYTES:
        raise AtRestInvalid(f"sealed data has {len(blob)} bytes", cause="malformed")
    if blob[:1] != VERSION:
        raise AtRestInvalid(f"sealed data has version {blob[0]}", cause="version_unknown")
    nonce, ciphertext = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
    try:
        return AESGCM(data_key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise AtRestInvalid("sealed data does not open", cause="decrypt_failed") from None
