"""Many rows into one table with one driver call: the intake's inserts.

``conn.execute(insert(table), rows)`` builds a parameter set and runs every column's
bind processor for each row in Python, which on the intake costs about as much as
SQLite's own insert. ``insert_rows`` compiles the statement once per table, dialect and
column list, converts each row to the driver's types with the same processors, and
hands the whole list to the driver's ``executemany``.

``load_values`` is for bulk loads of values the driver takes as they are (integers,
strings, bytes, None): on PostgreSQL it streams them with ``COPY``, on SQLite one
``executemany``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Dialect, LargeBinary, Table, insert
from sqlalchemy.types import TypeEngine

Processor = Callable[[Any], Any] | None


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows``, which all name the same columns, in one ``executemany``."""
    if not rows:
        return
    sql, names, processors, positional = _statement(conn.dialect, table, tuple(rows[0]))
    pick = itemgetter(*names)
    if len(names) == 1:
        values = [(pick(row),) for row in rows]
    else:
        values = [pick(row) for row in rows]
    for i, process in enumerate(processors):
        if process is not None:
            values = _converted(values, i, process)
    conn.exec_driver_sql(
        sql, values if positional else [dict(zip(names, row, strict=True)) for row in values]
    )


def _converted(rows: list[tuple[Any, ...]], i: int, process: Callable[[Any], Any]) -> list[Any]:
    """``rows`` with the values of column ``i`` converted by ``process``; the same value
    object (a batch's one timestamp) is converted once."""
    out = []
    seen: Any = _UNSEEN
    done: Any = None
    for row in rows:
        value = row[i]
        if value is not None:
            if value is not seen:
                seen, done = value, process(value)
            row = (*row[:i], done, *row[i + 1 :])
        out.append(row)
    return out


_UNSEEN = object()


def load_values(
    conn: Connection, table: Table, columns: tuple[str, ...], rows: Iterable[tuple[Any, ...]]
) -> None:
    """Insert ``rows``, tuples of driver-ready values in the order of ``columns``."""
    if conn.dialect.name == "postgresql":
        prepare = conn.dialect.identifier_preparer
        listed = ", ".join(prepare.quote(name) for name in columns)
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with (
            cursor,
            cursor.copy(f"COPY {prepare.format_table(table)} ({listed}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    sql, order, _, positional = _statement(conn.dialect, table, columns)
    if not positional or order != columns:
        raise NotImplementedError(f"load_values on {conn.dialect.name}")
    conn.exec_driver_sql(sql, rows if isinstance(rows, list) else list(rows))


@lru_cache(maxsize=64)
def _statement(
    dialect: Dialect, table: Table, columns: tuple[str, ...]
) -> tuple[str, tuple[str, ...], tuple[Processor, ...], bool]:
    """The compiled INSERT, its bind names in the driver's order, and their processors."""
    compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
    names = tuple(compiled.positiontup or ()) if compiled.positional else columns
    processors = tuple(_processor(table.c[name].type, dialect) for name in names)
    return str(compiled), names, processors, compiled.positional


def _processor(type_: TypeEngine[Any], dialect: Dialect) -> Processor:
    # Both drivers take bytes as they are; SQLAlchemy's binary processor only wraps
    # them for drivers that need it.
    if isinstance(type_, LargeBinary):
        return None
    return type_.dialect_impl(dialect).bind_processor(dialect)
