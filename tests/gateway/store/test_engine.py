"""The engine's transactions (writers take the lock up front, readers never wait for it)
and the shape of a new SQLite store."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, func, insert, select

from gateway.store.engine import (
    SQLITE_CACHE_KIB,
    SQLITE_PAGE_BYTES,
    make_engine,
    migrate,
    reading,
)
from gateway.store.schema import partners


def test_a_reader_is_not_held_up_by_a_writer_holding_the_lock(engine: Engine) -> None:
    with engine.begin() as writer:
        writer.execute(
            insert(partners).values(
                oin="0" * 19 + "1", name="x", role="creditor", created_at=datetime.now(UTC)
            )
        )
        with reading(engine) as reader:
            # The writer has not committed: the reader sees the snapshot before it.
            count = reader.execute(select(func.count()).select_from(partners)).scalar_one()
    assert count == 0
    with reading(engine) as reader:
        assert reader.execute(select(func.count()).select_from(partners)).scalar_one() == 1


def test_a_new_sqlite_store_has_large_pages_and_a_write_ahead_log(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        migrate(engine)
        with engine.connect() as conn:
            page = conn.exec_driver_sql("PRAGMA page_size").scalar_one()
            journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar_one()
    finally:
        engine.dispose()
    assert (page, journal) == (SQLITE_PAGE_BYTES, "wal")


def test_every_sqlite_connection_has_a_cache_for_a_whole_batch(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'cache.db'}")
    try:
        with reading(engine) as first, reading(engine) as second:
            sizes = [c.exec_driver_sql("PRAGMA cache_size").scalar_one() for c in (first, second)]
    finally:
        engine.dispose()
    # Negative: a size in kibibytes, not in pages.
    assert sizes == [-SQLITE_CACHE_KIB, -SQLITE_CACHE_KIB]


def test_an_existing_sqlite_store_keeps_its_page_size(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as old:
        old.execute("PRAGMA page_size=4096")
        old.execute("CREATE TABLE t (x)")
        old.commit()
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA page_size").scalar_one() == 4096
    finally:
        engine.dispose()
