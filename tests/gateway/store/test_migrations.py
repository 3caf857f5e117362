"""Migrations: every revision keeps the audit tables append-only; schema matches code."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, delete, func, insert, inspect, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateTable

from gateway.store.engine import alembic_config, make_engine, migrate
from gateway.store.schema import (
    REGISTER_TABLE,
    audit_checkpoints,
    audit_events,
    audit_head,
    metadata,
    register_tables,
    registers,
)
from gateway.store.triggers import (
    append_only_triggers_present,
    ensure_append_only,
    expected_triggers,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def revisions_in_order() -> list[str]:
    """Every revision id, oldest first."""
    with make_engine("sqlite://").connect() as conn:
        script = ScriptDirectory.from_config(alembic_config(conn))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def assert_append_only(engine: Engine) -> None:
    """UPDATE and DELETE (and TRUNCATE on PostgreSQL) of audit rows all fail."""
    rows = {
        audit_events: {
            "position": 1,
            "data": b'{"position":1}',
            "leaf_hash": bytes(32),
            "chain_hash": bytes(32),
            "created_at": NOW,
        },
        audit_checkpoints: {"size": 1, "root": bytes(32), "signature": "sig", "created_at": NOW},
    }
    for table, row in rows.items():
        key = table.primary_key.columns.values()[0]
        attempts = [
            update(table).where(key == row[key.name]).values(created_at=NOW),
            delete(table).where(key == row[key.name]),
            delete(table),
        ]
        for attempt in attempts:
            with engine.connect() as conn:
                transaction = conn.begin()
                conn.execute(insert(table).values(row))
                with pytest.raises(DBAPIError, match="append-only"):
                    conn.execute(attempt)
                transaction.rollback()
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                transaction = conn.begin()
                conn.execute(insert(table).values(row))
                with pytest.raises(DBAPIError, match="append-only"):
                    conn.exec_driver_sql(f"TRUNCATE {table.name}")
                transaction.rollback()
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(table)).scalar_one() == 0


def test_every_revision_leaves_the_audit_tables_append_only(empty_store_url: str) -> None:
    engine = make_engine(empty_store_url)
    try:
        revisions = revisions_in_order()
        assert revisions[0] == "0001"
        for revision in revisions:
            with engine.begin() as conn:
                command.upgrade(alembic_config(conn), revision)
            with engine.connect() as conn:
                present = append_only_triggers_present(conn)
            assert present == expected_triggers(engine.dialect.name), revision
            assert_append_only(engine)
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_code(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_migrate_twice_is_harmless_and_keeps_foreign_keys_on(engine: Engine) -> None:
    migrate(engine)
    migrate(engine)
    with engine.connect() as conn:
        head = conn.execute(select(audit_head)).all()
        assert [(row.id, row.position, bytes(row.chain_hash)) for row in head] == [
            (1, 0, bytes(32))
        ]
        assert append_only_triggers_present(conn) == expected_triggers(engine.dialect.name)
        if engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"


def test_ensure_append_only_restores_dropped_triggers(engine: Engine) -> None:
    with engine.begin() as conn:
        for name in expected_triggers(engine.dialect.name):
            table = name.split("_append_only_")[0]
            on = f" ON {table}" if engine.dialect.name == "postgresql" else ""
            conn.exec_driver_sql(f"DROP TRIGGER {name}{on}")
        assert append_only_triggers_present(conn) == set()
        ensure_append_only(conn)
        ensure_append_only(conn)
        assert append_only_triggers_present(conn) == expected_triggers(engine.dialect.name)
    assert_append_only(engine)


@pytest.mark.postgres
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("name", ["audit_events", "audit_checkpoints"])
def test_disabled_postgres_trigger_does_not_count(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(f"ALTER TABLE {name} DISABLE TRIGGER {name}_append_only_row")
        missing = expected_triggers("postgresql") - append_only_triggers_present(conn)
        assert missing == {f"{name}_append_only_row"}


def test_registers_loaded_before_the_surname_counts_are_dropped_for_a_reload(
    empty_store_url: str,
) -> None:
    engine = make_engine(empty_store_url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0007")
            # A version as revision 0007's loads left it: persons and tokens only.
            tables = register_tables("0363", 1)
            conn.execute(CreateTable(tables.persons))
            conn.execute(CreateTable(tables.tokens))
            conn.execute(
                insert(registers).values(
                    gemeente="0363", version=1, kid="lk-1", created=NOW, loaded_at=NOW,
                    loaded_by="0" * 20, persons=0, tokens=0,
                )
            )  # fmt: skip
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0008")
        with engine.connect() as conn:
            assert not any(
                REGISTER_TABLE.fullmatch(name) for name in inspect(conn).get_table_names()
            )
            assert conn.execute(select(func.count()).select_from(registers)).scalar_one() == 0
    finally:
        engine.dispose()
