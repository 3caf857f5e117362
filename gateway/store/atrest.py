"""At-rest encryption of stored facts, one data key per retention bucket.

A bucket groups data that expires together (:func:`bucket_for`: category and month
of expiry, ``zorg-2027-05``). Its data key is stored in ``data_keys`` only wrapped by a
master key that lives outside the database (``keys.atrest.MasterKeys``), and a sealed
blob is ``keys.atrest.encrypt``'s ``0x01 || nonce || ciphertext`` with nothing else: the
database alone, or any backup of it, cannot open it. Destroying the bucket destroys its
master key, so every copy of its rows is gone for good (crypto-shredding).

Unwrapped data keys are cached in memory (for at most ``cache_seconds``), but a cached
key is used in a transaction only after one look at its ``data_keys`` row in that
transaction (or savepoint) shows the same wrapped key and no ``destroyed_at``. So
neither a key whose creating transaction rolled back nor a bucket that another process
created or destroyed meanwhile leads to data sealed under a key the database does not
hold.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime

from sqlalchemy import Connection, Transaction, select, update
from sqlalchemy.dialects import postgresql, sqlite

from gateway.store.schema import data_keys
from keys.atrest import (
    MasterKeys,
    check_bucket,
    decrypt,
    encrypt,
    new_data_key,
    unwrap,
    wrap,
)
from keys.errors import AtRestInvalid, MasterKeyDestroyed

CACHE_SECONDS = 60.0
"""How long an unwrapped data key stays in memory."""

AAD_PREFIX = b"signaalpoort/at-rest/v1\x00"

_CHECKED = "signaalpoort.atrest.checked"
"""Key in ``Connection.info``: bucket -> the transaction its cached key was checked in."""


def bucket_for(category: str, expires: date) -> str:
    """The retention bucket of a ``category`` expiring on ``expires``: ``zorg-2027-05``."""
    return check_bucket(f"{category}-{expires.year:04d}-{expires.month:02d}")


def add_months(day: date, months: int) -> date:
    """The first day of the month ``months`` after ``day``'s (a bucket's month)."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _innermost(conn: Connection) -> Transaction | None:
    # A savepoint that rolls back may take a new data_keys row with it, so a check
    # holds only for the innermost transaction it was made in, while that is active.
    current = conn.get_nested_transaction() or conn.get_transaction()
    return current if current is not None and current.is_active else None


def _aad(bucket: str, aad: bytes) -> bytes:
    # Bucket names hold no NUL, so the caller's AAD cannot pass for another bucket's.
    return AAD_PREFIX + bucket.encode("ascii") + b"\x00" + aad


class BucketCipher:
    """Seals and opens data per retention bucket over ``MasterKeys`` and ``data_keys``.

    Thread-safe; share one per process. Every method works in the caller's transaction.
    """

    def __init__(
        self,
        master_keys: MasterKeys,
        *,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._master_keys = master_keys
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._cache: dict[str, tuple[bytes, bytes, float]] = {}
        self._lock = threading.Lock()

    def _cached(self, bucket: str) -> tuple[bytes, bytes] | None:
        with self._lock:
            entry = self._cache.get(bucket)
            if entry is None:
                return None
            wrapped, key, expires = entry
            if self._monotonic() >= expires:
                del self._cache[bucket]
                return None
            return wrapped, key

    def _remember(self, bucket: str, wrapped: bytes, key: bytes) -> None:
        with self._lock:
            self._cache[bucket] = (wrapped, key, self._monotonic() + self._cache_seconds)

    def _forget(self, conn: Connection, bucket: str) -> None:
        with self._lock:
            self._cache.pop(bucket, None)
        conn.info.get(_CHECKED, {}).pop(bucket, None)

    def _key(self, conn: Connection, bucket: str, *, create: bool) -> bytes | None:
        """The bucket's data key, checked against ``data_keys`` once per transaction."""
        check_bucket(bucket)
        checked: dict[str, object] = conn.info.setdefault(_CHECKED, {})
        cached = self._cached(bucket)
        current = _innermost(conn)
        if cached is not None and current is not None and checked.get(bucket) is current:
            return cached[1]
        row = self._row(conn, bucket)
        if row is None:
            if not create:
                return None
            row = self._create(conn, bucket)
        wrapped, destroyed_at = row
        if destroyed_at is not None:
            self._forget(conn, bucket)
            raise MasterKeyDestroyed(f"bucket {bucket} was destroyed", cause="bucket_destroyed")
        if cached is not None and cached[0] == wrapped:
            key = cached[1]
        else:
            key = unwrap(self._master_keys.load(bucket), wrapped, bucket=bucket)
            self._remember(bucket, wrapped, key)
        checked[bucket] = _innermost(conn)
        return key

    @staticmethod
    def _row(conn: Connection, bucket: str) -> tuple[bytes, datetime | None] | None:
        row = conn.execute(
            select(data_keys.c.wrapped, data_keys.c.destroyed_at).where(
                data_keys.c.bucket == bucket
            )
        ).one_or_none()
        return None if row is None else (row.wrapped, row.destroyed_at)

    def _create(self, conn: Connection, bucket: str) -> tuple[bytes, datetime | None]:
        """Create the bucket's master key and wrapped data key; a concurrent creator wins."""
        self._master_keys.create(bucket)
        wrapped = wrap(self._master_keys.load(bucket), new_data_key(), bucket=bucket)
        values = {"bucket": bucket, "wrapped": wrapped, "created_at": self._clock()}
        dialect = conn.dialect.name
        # ON CONFLICT DO NOTHING: on PostgreSQL a concurrent creator's row makes this
        # wait for its commit, after which the select below sees the winner's key.
        if dialect == "postgresql":
            conn.execute(postgresql.insert(data_keys).values(values).on_conflict_do_nothing())
        elif dialect == "sqlite":
            conn.execute(sqlite.insert(data_keys).values(values).on_conflict_do_nothing())
        else:
            raise ValueError(f"unsupported dialect {dialect}")
        row = self._row(conn, bucket)
        if row is None:  # pragma: no cover - just inserted, or a concurrent creator's
            raise AtRestInvalid(f"bucket {bucket} has no data key", cause="bucket_unknown")
        return row

    def seal(self, conn: Connection, bucket: str, plaintext: bytes, *, aad: bytes) -> bytes:
        """Encrypt ``plaintext`` in ``bucket``, creating the bucket on first use.

        A destroyed bucket is never recreated: sealing into it raises
        ``MasterKeyDestroyed``.
        """
        key = self._key(conn, bucket, create=True)
        assert key is not None  # create=True always yields a key or raises
        return encrypt(key, plaintext, aad=_aad(bucket, aad))

    def open(self, conn: Connection, bucket: str, blob: bytes, *, aad: bytes) -> bytes:
        """Decrypt a blob sealed in ``bucket`` with the same ``aad``.

        Raises ``MasterKeyDestroyed`` once the bucket is destroyed, and
        ``AtRestInvalid`` for an unknown bucket, a wrong ``aad`` or a tampered blob.
        """
        key = self._key(conn, bucket, create=False)
        if key is None:
            raise AtRestInvalid(f"bucket {bucket} has no data key", cause="bucket_unknown")
        return decrypt(key, blob, aad=_aad(bucket, aad))

    def destroy(self, conn: Connection, bucket: str) -> None:
        """Crypto-shred ``bucket``: mark it destroyed and destroy its master key.

        The row is marked first, so if destroying the key fails the caller's
        transaction rolls back and nothing claims a destruction that did not happen.
        """
        check_bucket(bucket)
        conn.execute(
            update(data_keys)
            .where(data_keys.c.bucket == bucket, data_keys.c.destroyed_at.is_(None))
            .values(destroyed_at=self._clock())
        )
        self._forget(conn, bucket)
        self._master_keys.destroy(bucket)

    def retire(self, conn: Connection, bucket: str, *, at: datetime | None = None) -> bool:
        """Mark ``bucket`` destroyed in the caller's transaction, keeping its master key
        until :meth:`shred`; True when this call marked it.

        For callers that commit other changes with the mark (retention moves open cases
        out of the bucket): the key is destroyed only after the commit, so a rollback
        never leaves rows under a key that is gone.
        """
        check_bucket(bucket)
        marked = conn.execute(
            update(data_keys)
            .where(data_keys.c.bucket == bucket, data_keys.c.destroyed_at.is_(None))
            .values(destroyed_at=at or self._clock())
        ).rowcount
        self._forget(conn, bucket)
        return bool(marked)

    def shred(self, bucket: str) -> None:
        """Destroy the master key of a bucket that :meth:`retire` marked, once committed."""
        self._master_keys.destroy(check_bucket(bucket))

    def unshredded(self, conn: Connection) -> list[str]:
        """Buckets marked destroyed whose master key still exists (the process stopped
        between the commit of :meth:`retire` and :meth:`shred`)."""
        marked = conn.execute(
            select(data_keys.c.bucket)
            .where(data_keys.c.destroyed_at.is_not(None))
            .order_by(data_keys.c.bucket)
        ).scalars()
        return [bucket for bucket in marked if self._master_keys.exists(bucket)]
