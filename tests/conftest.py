"""Shared fixtures: a fresh store per test, on SQLite and on PostgreSQL.

- ``store_url``: the URL of a fresh, migrated database; parametrised ``sqlite`` /
  ``postgresql`` (the latter marked ``postgres``). Cloned from a template migrated once
  per run, so tests pay for no migrations.
- ``empty_store_url``: the same, but an empty database (for migration tests).
- ``engine``: ``make_engine(store_url)``, disposed after the test.
- ``copy_store``: ``copy_store(url) -> url`` copies a database (a "backup"); on
  PostgreSQL, dispose every engine on the source first.

PostgreSQL is ``$SIGNAALPOORT_TEST_POSTGRES_URL`` (default
``postgresql+psycopg://root@127.0.0.1:5432/test``, used only to create and drop
databases ``sp_*``). When it is unreachable the PostgreSQL cases are skipped, unless
``$CI`` is set: then they fail, because CI must run them.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError

from gateway.store.engine import make_engine, migrate

POSTGRES_URL_ENV = "SIGNAALPOORT_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


class PostgresServer:
    """Creates and drops the test databases on the PostgreSQL test server."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self.admin = make_engine(url).execution_options(isolation_level="AUTOCOMMIT")

    def url_for(self, database: str) -> str:
        """The URL of ``database`` on this server."""
        return self.url.set(database=database).render_as_string(hide_password=False)

    def create(self, prefix: str, *, template: str | None = None) -> str:
        """Create a database named ``prefix`` + random hex; return its name."""
        name = prefix + secrets.token_hex(6)
        quote = self.admin.dialect.identifier_preparer.quote
        statement = f"CREATE DATABASE {quote(name)}"
        if template is not None:
            statement += f" TEMPLATE {quote(template)}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(statement)
        return name

    def drop(self, name: str) -> None:
        """Drop ``name``, disconnecting whoever is still connected."""
        quote = self.admin.dialect.identifier_preparer.quote
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quote(name)} WITH (FORCE)")


def _copy_sqlite(source: Path, target: Path) -> None:
    # The backup API copies a consistent snapshot, WAL contents included.
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The PostgreSQL test server; skips (or fails under ``$CI``) when unreachable."""
    url = make_url(os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL)
    server = PostgresServer(url.update_query_dict({"connect_timeout": "5"}))
    try:
        with server.admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except OperationalError as exc:
        server.admin.dispose()
        reason = (
            f"PostgreSQL unreachable at {url.render_as_string(hide_password=True)} "
            f"(set {POSTGRES_URL_ENV}): {str(exc.orig).strip()}"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI is set, so the PostgreSQL tests must run", pytrace=False)
        pytest.skip(reason)
    yield server
    server.admin.dispose()


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> Iterator[str]:
    """A migrated PostgreSQL database to clone; dropped at the end of the run."""
    name = postgres_server.create("sp_tmpl_")
    try:
        engine = make_engine(postgres_server.url_for(name))
        try:
            migrate(engine)
        finally:
            engine.dispose()
        yield name
    finally:
        postgres_server.drop(name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database file to copy."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = make_engine(_sqlite_url(path))
    try:
        migrate(engine)
    finally:
        engine.dispose()
    return path


def _fresh_store(
    request: pytest.FixtureRequest, tmp_path: Path, *, migrated: bool
) -> Iterator[str]:
    backend = request.param
    if backend == "sqlite":
        path = tmp_path / "store" / "store.db"
        if migrated:
            path.parent.mkdir(parents=True, exist_ok=True)
            _copy_sqlite(request.getfixturevalue("sqlite_template"), path)
        yield _sqlite_url(path)
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    template = request.getfixturevalue("postgres_template") if migrated else None
    name = server.create("sp_", template=template)
    try:
        yield server.url_for(name)
    finally:
        server.drop(name)


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, migrated database, on each backend."""
    yield from _fresh_store(request, tmp_path, migrated=True)


@pytest.fixture(params=BACKENDS)
def empty_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, empty database, on each backend."""
    yield from _fresh_store(request, tmp_path, migrated=False)


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """An engine on the fresh, migrated ``store_url``; disposed after the test."""
    engine = make_engine(store_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def copy_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """``copy_store(url)`` copies the database at ``url`` and returns the copy's URL.

    On PostgreSQL the source may have no open connections: dispose its engines first.
    """
    dropped: list[tuple[PostgresServer, str]] = []

    def copy(url: str) -> str:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            assert parsed.database
            target = tmp_path / f"copy-{secrets.token_hex(4)}.db"
            _copy_sqlite(Path(parsed.database), target)
            return _sqlite_url(target)
        server: PostgresServer = request.getfixturevalue("postgres_server")
        assert parsed.database
        name = server.create("sp_copy_", template=parsed.database)
        dropped.append((server, name))
        return server.url_for(name)

    yield copy
    for server, name in dropped:
        server.drop(name)
