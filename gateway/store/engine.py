"""Engines for SQLite and PostgreSQL, and migrations to the latest schema.

SQLite runs in WAL mode with foreign keys on, and every transaction starts with
``BEGIN IMMEDIATE``: a writer takes the write lock up front, so two transactions that
read and then write never deadlock on a lock upgrade (they queue behind
``busy_timeout`` instead). Connections from ``reading`` start a deferred transaction
instead, so readers never queue behind a writer. This follows SQLAlchemy's recipe for taking over
transaction control from the ``sqlite3`` driver.

PostgreSQL goes through psycopg 3; ``postgresql://`` URLs are rewritten to
``postgresql+psycopg://``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from gateway.errors import StoreError

MIGRATIONS = Path(__file__).with_name("migrations")
"""The Alembic script directory."""

SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for the write lock before giving up."""

SQLITE_PAGE_BYTES = 16_384
"""The page size of a new SQLite store (SQLite's default is 4 kB).

The intake's rows are mostly blobs: a sealed signed notice is about 7 kB, a sealed
signal 1.3 kB, an audit event 0.5 kB. On 4 kB pages every notice row spills into an
overflow page, and a batch of 500 writes some 1,600 pages to the WAL and again to the
database file at the checkpoint, two system calls each. 16 kB pages hold a notice row
whole and take a quarter of the calls: the kernel time of storing a batch fell from
about 50 to 25-35 µs a notice. A store created earlier keeps its page size."""

SQLITE_CACHE_KIB = 32_768
"""The page cache of each SQLite connection (SQLite's default is 2,000 kB).

A batch's transaction touches several hundred pages of 16 kB: the new rows, and a leaf
of the jti index for nearly every notice, since jtis are random. The default cache holds
125 such pages, so a batch evicted pages it went on to use, wrote modified ones to the
WAL before its commit and read them back. In three rounds of 18,000 notices through
the REST intake, the workers read 47, 60 and 70 kB per notice and wrote 29, 36 and
41 kB; with this cache they read 26, 29 and 32 kB (9 kB of it the request's body, most
of the rest what the checkpoint copies) and wrote 28, 31 and 34 kB. A connection's
cache fills only as far as it is used."""

_SQLITE_PRAGMAS = (
    # Only takes effect before the file's first table; so it comes before WAL mode.
    f"PRAGMA page_size={SQLITE_PAGE_BYTES}",
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
    "PRAGMA synchronous=NORMAL",
    f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}",
)


def _normalise(url: str | URL) -> URL:
    parsed = make_url(url)
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return parsed.set(drivername="sqlite+pysqlite")
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    raise StoreError(
        f"unsupported database URL scheme {parsed.drivername}; use sqlite:// or postgresql://",
        cause="url_unsupported",
    )


def _on_sqlite_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # Stop the sqlite3 driver from issuing BEGIN (and COMMIT before DDL) itself; the
    # "begin" listener below issues BEGIN IMMEDIATE instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


READ_ONLY = "signaalpoort_read_only"
"""Execution option of connections made by ``reading``."""


def _on_sqlite_begin(connection: Connection) -> None:
    options = connection.get_execution_options()
    if options.get("isolation_level") == "AUTOCOMMIT":
        return
    # A reader in WAL mode neither waits for the writer nor blocks it; only writers
    # need the lock up front.
    connection.exec_driver_sql("BEGIN" if options.get(READ_ONLY) else "BEGIN IMMEDIATE")


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for reads only (on SQLite a deferred transaction: no write lock)."""
    with engine.connect() as conn:
        conn.execution_options(**{READ_ONLY: True})
        yield conn


def make_engine(url: str | URL) -> Engine:
    """An engine for a ``sqlite://`` or ``postgresql://`` URL; nothing is connected yet.

    For a SQLite file the parent directory is created. ``sqlite://`` alone (in memory)
    shares one connection, for quick experiments only.
    """
    parsed = _normalise(url)
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True)
    database = parsed.database or ""
    connect_args: dict[str, Any] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    if database in ("", ":memory:"):
        engine = create_engine(
            parsed,
            connect_args={**connect_args, "check_same_thread": False},
            poolclass=StaticPool,
        )
    else:
        if not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args=connect_args)
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def alembic_config(connection: Connection) -> Config:
    """An Alembic configuration that migrates over ``connection`` (no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine) -> None:
    """Upgrade the database to the latest revision, in one transaction.

    On SQLite, foreign-key enforcement is off while migrating (batch migrations
    recreate tables, which must not cascade) and ``foreign_key_check`` must come back
    clean before the transaction commits.
    """
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # PRAGMA foreign_keys is ignored inside a transaction, so it precedes BEGIN.
            _driver_execute(connection, "PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                command.upgrade(alembic_config(connection), "head")
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise StoreError(
                            f"migration leaves {len(broken)} rows with broken foreign keys",
                            cause="migration_failed",
                        )
        finally:
            if sqlite:
                _driver_execute(connection, "PRAGMA foreign_keys=ON")


def _driver_execute(connection: Connection, statement: str) -> None:
    # Straight to the sqlite3 connection, outside SQLAlchemy's transaction handling.
    dbapi_connection: Any = connection.connection.driver_connection
    dbapi_connection.execute(statement)
