"""Alembic environment: migrates over the connection that ``engine.migrate`` hands in.

Run through ``gateway.store.engine.migrate`` (or ``alembic_config`` in tests). Without
a connection in ``config.attributes``, the ``sqlalchemy.url`` main option is used.
Offline (``--sql``) mode is not supported: the trigger DDL depends on the live dialect.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from gateway.errors import StoreError
from gateway.store.engine import make_engine
from gateway.store.schema import metadata

MIGRATION_LOCK = 0x5349474E414C
"""PostgreSQL advisory lock key held while migrating."""


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode recreates the table instead (and
        # drops its triggers, which the migration then re-asserts).
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Gateway processes starting together must not migrate side by side; the
            # lock ends with the transaction. (SQLite's BEGIN IMMEDIATE already serialises.)
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate over the given connection, or over a fresh engine for the URL option."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise StoreError("no connection and no sqlalchemy.url to migrate", cause="migration")
    engine = make_engine(url)
    try:
        with engine.connect() as fresh:
            _run(fresh)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise StoreError("offline migrations are not supported", cause="migration")
run_migrations_online()
