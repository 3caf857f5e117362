"""The engine's transactions: writers take the lock up front, readers never wait for it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, func, insert, select

from gateway.store.engine import reading
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
