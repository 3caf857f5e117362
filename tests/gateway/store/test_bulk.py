"""Bulk inserts straight to the driver read back exactly as SQLAlchemy's own would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import Column, Engine, Integer, LargeBinary, MetaData, String, Table, insert, select

from gateway.store.bulk import insert_rows
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
