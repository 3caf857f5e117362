"""The gateway's store: SQLAlchemy Core tables, Alembic migrations, at-rest encryption
of bucketed data, and the append-only, hash-chained audit log.

SQLite (WAL, one file) is the embedded default; PostgreSQL (psycopg 3) is production.
Nothing here creates an engine at import time: call ``engine.make_engine(url)`` and
``engine.migrate(engine)`` from the composition root.
"""
