"""Append-only triggers on the audit tables, for SQLite and PostgreSQL.

No SQL may UPDATE or DELETE a row of ``audit_events`` or ``audit_checkpoints`` (nor, on
PostgreSQL, TRUNCATE them). SQLite batch migrations recreate a table and lose its
triggers, so every migration that touches these tables calls :func:`ensure_append_only`
again, and a test checks :func:`append_only_triggers_present` after every revision.

The triggers stop mistakes and application bugs, not a database owner: the owner can
drop them (or, on PostgreSQL, set ``session_replication_role``). Against that, the hash
chain and the signed checkpoints make tampering detectable; in production the gateway's
database role should not own the tables.
"""

from __future__ import annotations

from sqlalchemy import BindParameter, Connection, bindparam, text

from gateway.store.schema import APPEND_ONLY_TABLES

PG_FUNCTION = "signaalpoort_append_only"
"""The PostgreSQL trigger function that refuses the change."""

MESSAGE = "append-only"


def expected_triggers(dialect: str) -> set[str]:
    """The names of the append-only triggers a database of ``dialect`` must have."""
    if dialect == "sqlite":
        suffixes = ("append_only_update", "append_only_delete")
    elif dialect == "postgresql":
        suffixes = ("append_only_row", "append_only_truncate")
    else:
        raise ValueError(f"no append-only triggers for dialect {dialect}")
    return {f"{table}_{suffix}" for table in APPEND_ONLY_TABLES for suffix in suffixes}


def _sqlite_ddl() -> list[str]:
    statements = []
    for table in APPEND_ONLY_TABLES:
        for event in ("update", "delete"):
            name = f"{table}_append_only_{event}"
            statements.append(f"DROP TRIGGER IF EXISTS {name}")
            statements.append(
                f"CREATE TRIGGER {name} BEFORE {event.upper()} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
            )
    return statements


def _postgresql_ddl() -> list[str]:
    # No '%' and no ':' in this DDL: it passes through the driver without parameters.
    statements = [
        f"CREATE OR REPLACE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege', "
        "DETAIL = TG_OP || ' on ' || TG_TABLE_NAME || ' is not allowed'; END $$"
    ]
    for table in APPEND_ONLY_TABLES:
        row, truncate = f"{table}_append_only_row", f"{table}_append_only_truncate"
        statements += [
            f"DROP TRIGGER IF EXISTS {row} ON {table}",
            f"CREATE TRIGGER {row} BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {PG_FUNCTION}()",
            f"DROP TRIGGER IF EXISTS {truncate} ON {table}",
            f"CREATE TRIGGER {truncate} BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {PG_FUNCTION}()",
        ]
    return statements


def ensure_append_only(connection: Connection) -> None:
    """(Re)create the append-only triggers; idempotent, in the caller's transaction."""
    dialect = connection.dialect.name
    if dialect == "sqlite":
        statements = _sqlite_ddl()
    elif dialect == "postgresql":
        statements = _postgresql_ddl()
    else:
        raise ValueError(f"no append-only triggers for dialect {dialect}")
    for statement in statements:
        connection.exec_driver_sql(statement)


def append_only_triggers_present(connection: Connection) -> set[str]:
    """The names of the enabled append-only triggers on the audit tables.

    Compare with :func:`expected_triggers`. On SQLite a trigger counts when its body
    raises; on PostgreSQL when it is enabled and calls the append-only function.
    """
    dialect = connection.dialect.name
    tables: BindParameter[list[str]] = bindparam("tables", list(APPEND_ONLY_TABLES), expanding=True)
    if dialect == "sqlite":
        query = text(
            "SELECT name, tbl_name FROM sqlite_master "
            "WHERE type = 'trigger' AND tbl_name IN :tables AND sql LIKE :body"
        ).bindparams(tables, bindparam("body", f"%RAISE(ABORT, '{MESSAGE}')%"))
    elif dialect == "postgresql":
        query = text(
            "SELECT t.tgname, c.relname FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_proc p ON p.oid = t.tgfoid "
            "WHERE c.relname IN :tables AND pg_table_is_visible(c.oid) "
            "AND NOT t.tgisinternal AND t.tgenabled IN ('O', 'A') AND p.proname = :function"
        ).bindparams(tables, bindparam("function", PG_FUNCTION))
    else:
        raise ValueError(f"no append-only triggers for dialect {dialect}")
    expected = expected_triggers(dialect)
    return {
        name
        for name, table in connection.execute(query)
        if name in expected and name.startswith(f"{table}_")
    }
