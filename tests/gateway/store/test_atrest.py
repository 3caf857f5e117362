"""At-rest encryption per retention bucket, and crypto-shredding that survives backups."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.engine import make_url

from gateway.store.atrest import BucketCipher, bucket_for
from gateway.store.engine import make_engine
from gateway.store.schema import data_keys, notices, partners
from keys.atrest import FileMasterKeys, unwrap
from keys.errors import AtRestInvalid, MasterKeyDestroyed

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
CREDITOR = "00000001800866472000"
BUCKET_A = "zorg-2027-05"
BUCKET_B = "huur-2027-05"


def contact(n: int) -> bytes:
    """A made-up contact block, recognisable in raw bytes."""
    return json.dumps(
        {"achternaam": f"Testpersoon{n:04d}", "straatnaam": "Proefstraat", "huisnummer": n}
    ).encode()


def add_creditor(conn: Connection) -> None:
    conn.execute(
        insert(partners).values(
            oin=CREDITOR, name="Woningcorporatie Test", role="creditor", created_at=NOW
        )
    )


def add_notice(conn: Connection, cipher: BucketCipher, n: int, bucket: str) -> None:
    jti = f"00000000-0000-5000-8000-{n:012d}"
    conn.execute(
        insert(notices).values(
            jti=jti,
            creditor_oin=CREDITOR,
            gemeente="0363",
            category=bucket.split("-")[0],
            stage="reminder",
            payload_sha256="0" * 64,
            envelope_sha256="0" * 64,
            received_at=NOW,
            bucket=bucket,
            sealed=cipher.seal(conn, bucket, contact(n), aad=f"notice:{jti}".encode()),
            status="routed",
            trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        )
    )


def open_all(conn: Connection, cipher: BucketCipher) -> dict[int, bytes | type[Exception]]:
    """Each notice's plaintext, or the class of the error opening it raised."""
    opened: dict[int, bytes | type[Exception]] = {}
    for row in conn.execute(select(notices.c.jti, notices.c.bucket, notices.c.sealed)):
        n = int(row.jti.rsplit("-", 1)[1])
        try:
            opened[n] = cipher.open(conn, row.bucket, row.sealed, aad=f"notice:{row.jti}".encode())
        except (MasterKeyDestroyed, AtRestInvalid) as exc:
            opened[n] = type(exc)
    return opened


@pytest.fixture
def master_keys(tmp_path: Path) -> FileMasterKeys:
    return FileMasterKeys(tmp_path / "gateway-home" / "master-keys")


def test_bucket_for_names_category_and_month_of_expiry() -> None:
    assert bucket_for("zorg", date(2027, 5, 31)) == "zorg-2027-05"
    assert bucket_for("drinkwater", date(2030, 12, 1)) == "drinkwater-2030-12"
    with pytest.raises(AtRestInvalid):
        bucket_for("../zorg", date(2027, 5, 1))


def test_seal_and_open_round_trip(engine: Engine, master_keys: FileMasterKeys) -> None:
    cipher = BucketCipher(master_keys)
    with engine.begin() as conn:
        blob = cipher.seal(conn, BUCKET_A, b"facts", aad=b"notice:1")
    with engine.connect() as conn:
        assert cipher.open(conn, BUCKET_A, blob, aad=b"notice:1") == b"facts"
        # a fresh process (empty cache) opens it too
        assert BucketCipher(master_keys).open(conn, BUCKET_A, blob, aad=b"notice:1") == b"facts"
        with pytest.raises(AtRestInvalid):
            cipher.open(conn, BUCKET_A, blob, aad=b"notice:2")


def test_first_seal_creates_master_key_and_wrapped_data_key(
    engine: Engine, master_keys: FileMasterKeys
) -> None:
    cipher = BucketCipher(master_keys, clock=lambda: NOW)
    with engine.begin() as conn:
        cipher.seal(conn, BUCKET_A, b"a", aad=b"")
        cipher.seal(conn, BUCKET_A, b"b", aad=b"")
    assert master_keys.exists(BUCKET_A)
    with engine.connect() as conn:
        rows = conn.execute(select(data_keys)).all()
    assert [(r.bucket, len(r.wrapped), r.created_at, r.destroyed_at) for r in rows] == [
        (BUCKET_A, 60, NOW, None)
    ]


def test_blob_holds_nothing_that_opens_it_without_the_master_key(
    engine: Engine, store_url: str, master_keys: FileMasterKeys
) -> None:
    cipher = BucketCipher(master_keys)
    with engine.begin() as conn:
        add_creditor(conn)
        for n in range(3):
            add_notice(conn, cipher, n, BUCKET_A)
    with engine.connect() as conn:
        sealed = conn.execute(select(notices.c.sealed)).scalars().all()
        wrapped = conn.execute(select(data_keys.c.wrapped)).scalar_one()
    data_key = unwrap(master_keys.load(BUCKET_A), wrapped, bucket=BUCKET_A)
    for n, blob in enumerate(sealed):
        assert contact(n) not in blob
        assert b"Testpersoon" not in blob
        assert data_key not in blob
        assert len(blob) == 1 + 12 + len(contact(n)) + 16  # version, nonce, ct, tag: no key
    assert data_key not in wrapped
    engine.dispose()
    if make_url(store_url).get_backend_name() == "sqlite":
        database = Path(str(make_url(store_url).database))
        raw = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
        assert b"Testpersoon" not in raw
        assert data_key not in raw


def test_destroyed_bucket_stays_unreadable_in_a_backup(
    engine: Engine,
    store_url: str,
    master_keys: FileMasterKeys,
    copy_store: Callable[[str], str],
) -> None:
    cipher = BucketCipher(master_keys)
    with engine.begin() as conn:
        add_creditor(conn)
        for n in range(4):
            add_notice(conn, cipher, n, BUCKET_A if n % 2 == 0 else BUCKET_B)
    engine.dispose()  # PostgreSQL clones only a database nobody is connected to
    backup_url = copy_store(store_url)

    with engine.begin() as conn:
        cipher.destroy(conn, BUCKET_A)
    assert not master_keys.exists(BUCKET_A)
    assert master_keys.exists(BUCKET_B)

    with engine.connect() as conn:
        assert open_all(conn, cipher) == {
            0: MasterKeyDestroyed,
            1: contact(1),
            2: MasterKeyDestroyed,
            3: contact(3),
        }
        destroyed = conn.execute(
            select(data_keys.c.destroyed_at).where(data_keys.c.bucket == BUCKET_A)
        ).scalar_one()
        assert destroyed is not None

    # Restoring the backup: its data_keys row still looks alive, but the master key is gone.
    backup = make_engine(backup_url)
    try:
        with backup.connect() as conn:
            assert (
                conn.execute(
                    select(data_keys.c.destroyed_at).where(data_keys.c.bucket == BUCKET_A)
                ).scalar_one()
                is None
            )
            assert open_all(conn, BucketCipher(master_keys)) == {
                0: MasterKeyDestroyed,
                1: contact(1),
                2: MasterKeyDestroyed,
                3: contact(3),
            }
    finally:
        backup.dispose()


def test_destroyed_bucket_is_never_recreated(engine: Engine, master_keys: FileMasterKeys) -> None:
    cipher = BucketCipher(master_keys)
    with engine.begin() as conn:
        cipher.seal(conn, BUCKET_A, b"old", aad=b"")
    with engine.begin() as conn:
        cipher.destroy(conn, BUCKET_A)
    for fresh in (cipher, BucketCipher(master_keys)):
        with engine.begin() as conn, pytest.raises(MasterKeyDestroyed):
            fresh.seal(conn, BUCKET_A, b"new", aad=b"")
    assert not master_keys.exists(BUCKET_A)


def test_cached_key_of_a_rolled_back_bucket_is_not_used(
    engine: Engine, master_keys: FileMasterKeys
) -> None:
    cipher = BucketCipher(master_keys)
    with engine.connect() as conn:
        transaction = conn.begin()
        cipher.seal(conn, BUCKET_A, b"lost", aad=b"")
        transaction.rollback()
    with engine.begin() as conn:
        blob = cipher.seal(conn, BUCKET_A, b"kept", aad=b"")
    with engine.connect() as conn:
        assert BucketCipher(master_keys).open(conn, BUCKET_A, blob, aad=b"") == b"kept"


def test_cached_key_of_a_rolled_back_savepoint_is_not_used(
    engine: Engine, master_keys: FileMasterKeys
) -> None:
    cipher = BucketCipher(master_keys)
    with engine.begin() as conn:
        savepoint = conn.begin_nested()
        cipher.seal(conn, BUCKET_A, b"lost", aad=b"")
        savepoint.rollback()
        blob = cipher.seal(conn, BUCKET_A, b"kept", aad=b"")
    with engine.connect() as conn:
        assert BucketCipher(master_keys).open(conn, BUCKET_A, blob, aad=b"") == b"kept"


def test_bucket_destroyed_by_another_process_is_noticed(
    engine: Engine, master_keys: FileMasterKeys
) -> None:
    here, there = BucketCipher(master_keys), BucketCipher(master_keys)
    with engine.begin() as conn:
        blob = here.seal(conn, BUCKET_A, b"x", aad=b"")
    with engine.begin() as conn:
        there.destroy(conn, BUCKET_A)
    with engine.connect() as conn, pytest.raises(MasterKeyDestroyed):
        here.open(conn, BUCKET_A, blob, aad=b"")


def test_unknown_bucket_does_not_open(engine: Engine, master_keys: FileMasterKeys) -> None:
    with engine.connect() as conn, pytest.raises(AtRestInvalid) as caught:
        BucketCipher(master_keys).open(conn, BUCKET_A, b"\x01" + bytes(40), aad=b"")
    assert caught.value.cause == "bucket_unknown"


def test_a_retired_bucket_keeps_its_master_key_until_shredded(
    engine: Engine, master_keys: FileMasterKeys
) -> None:
    cipher = BucketCipher(master_keys)
    with engine.begin() as conn:
        blob = cipher.seal(conn, BUCKET_A, b"x", aad=b"")
    with engine.begin() as conn:
        assert cipher.retire(conn, BUCKET_A, at=NOW)
        assert not cipher.retire(conn, BUCKET_A, at=NOW)
    with engine.connect() as conn:
        assert master_keys.exists(BUCKET_A) and cipher.unshredded(conn) == [BUCKET_A]
        with pytest.raises(MasterKeyDestroyed):
            cipher.open(conn, BUCKET_A, blob, aad=b"")
    cipher.shred(BUCKET_A)
    with engine.connect() as conn:
        assert not master_keys.exists(BUCKET_A) and cipher.unshredded(conn) == []


def test_a_retirement_rolled_back_leaves_the_bucket_usable(
    engine: Engine, master_keys: FileMasterKeys
) -> None:
    cipher = BucketCipher(master_keys)
    with engine.begin() as conn:
        blob = cipher.seal(conn, BUCKET_A, b"x", aad=b"")
    with engine.connect() as conn:
        transaction = conn.begin()
        cipher.retire(conn, BUCKET_A, at=NOW)
        transaction.rollback()
    with engine.connect() as conn:
        assert cipher.open(conn, BUCKET_A, blob, aad=b"") == b"x"
        assert cipher.unshredded(conn) == []
