"""Bulk inserts straight to the driver read back exactly as SQLAlchemy's own would, and
bulk loads (COPY on PostgreSQL) as the values given."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
)

from gateway.store.bulk import insert_rows, load_values
from gateway.store.schema import UTCDateTime

probe = Table(
    "bulk_probe",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("at", UTCDateTime(), nullable=True),
    Column("blob", LargeBinary, nullable=False),
    Column("note", String(20), nullable=True),
)


def test_rows_read_back_as_the_same_rows_inserted_through_sqlalchemy(engine: Engine) -> None:
    probe.metadata.create_all(engine)
    shared = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
    amsterdam = timezone(timedelta(hours=1))
    rows = [
        # A shared timestamp object, then others, then the shared one again: each row
        # must keep its own value.
        {"id": 1, "at": shared, "blob": b"\x00\x01", "note": "eerste"},
        {"id": 2, "at": shared, "blob": b"", "note": None},
        {"id": 3, "at": datetime(2026, 12, 3, 12, 0, tzinfo=amsterdam), "blob": b"b", "note": "x"},
        {"id": 4, "at": None, "blob": b"c", "note": "geen tijd"},
        {"id": 5, "at": shared, "blob": b"d", "note": "weer"},
    ]
    with engine.begin() as conn:
        insert_rows(conn, probe, rows[:3])
        insert_rows(conn, probe, rows[3:])
        insert_rows(conn, probe, [])
    with engine.begin() as conn:
        bulk = [r._asdict() for r in conn.execute(select(probe).order_by(probe.c.id))]
        conn.execute(probe.delete())
        conn.execute(insert(probe), rows)
        plain = [r._asdict() for r in conn.execute(select(probe).order_by(probe.c.id))]
    assert bulk == plain
    assert [r["at"] for r in bulk] == [
        shared,
        shared,
        datetime(2026, 12, 3, 11, 0, tzinfo=UTC),
        None,
        shared,
    ]
    assert [bytes(r["blob"]) for r in bulk] == [b"\x00\x01", b"", b"b", b"c", b"d"]


loaded = Table(
    "bulk_loaded",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("key", BigInteger, nullable=False),
    Column("day", Date, nullable=True),
    Column("blob", LargeBinary, nullable=True),
    Column("note", Text, nullable=False),
)


def test_loaded_values_read_back_as_given(engine: Engine) -> None:
    loaded.metadata.create_all(engine)
    rows = [
        (1, -(1 << 63), "2026-03-01", b"\x00\xff\\\n", 'a "quoted"\ttab\nline'),
        (2, (1 << 63) - 1, None, None, "\\N is not null"),
        (3, 0, "1960-12-31", b"", ""),
    ]
    with engine.begin() as conn:
        load_values(conn, loaded, ("id", "key", "day", "blob", "note"), iter(rows[:2]))
        load_values(conn, loaded, ("id", "key", "day", "blob", "note"), rows[2:])
    with engine.connect() as conn:
        back = conn.execute(select(loaded).order_by(loaded.c.id)).all()
    assert [(r.id, r.key, r.note) for r in back] == [(r[0], r[1], r[4]) for r in rows]
    assert [r.day for r in back] == [date(2026, 3, 1), None, date(1960, 12, 31)]
    assert [None if r.blob is None else bytes(r.blob) for r in back] == [r[3] for r in rows]
