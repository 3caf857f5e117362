"""Loading the municipality's pseudonymised register (DESIGN.md, "Pseudonymised matching").

The tokeniser (``adapters.register``) writes ``register.jsonl``: a header record, then
one record per person holding tokens and pseudonyms only. ``load_register`` checks every
line before anything becomes visible, then replaces the whole register in one
transaction, so readers see the previous register until the commit. The gateway serves
one register at a time: every row of the previous one goes.

A refusal (``RegisterInvalid``) names the line, never a value from it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select

from gateway.audit import step
from gateway.errors import RegisterInvalid
from gateway.service import Gateway
from gateway.store.engine import reading
from gateway.store.schema import register_persons, register_tokens
from keys.tokens import TOKEN_TYPES

__all__ = ["CHUNK", "REGISTER_VERSION", "STATUSES", "LoadResult", "load_register", "register_stats"]

REGISTER_VERSION = 1
STATUSES = frozenset({"resident", "deceased", "moved_out"})
CHUNK = 10_000
"""Rows per ``executemany``."""

HEADER_MEMBERS = frozenset({"register", "kid", "gemeente", "created"})
PERSON_MEMBERS = frozenset(
    {"pseudonym", "household", "district", "gemeente", "status", "statusDate", "tokens", "kid"}
)
DISTRICT_MAX = 16  # register_persons.district
KID_MAX = 64

_B64URL22 = r"[A-Za-z0-9_-]{22}"
_PSEUDONYM = re.compile(f"p-{_B64URL22}")
_HOUSEHOLD = re.compile(f"h-{_B64URL22}")
_TOKEN = re.compile(_B64URL22)
_GEMEENTE = re.compile(r"[0-9]{4}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class LoadResult:
    """What a load put in place: persons, tokens, and the register's version."""

    persons: int
    tokens: int
    version: int


@dataclass
class _Parsed:
    persons: list[dict[str, Any]]
    tokens: list[dict[str, Any]]


def _fullmatch(pattern: re.Pattern[str], value: Any) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise RegisterInvalid(number, "not UTF-8") from None
            if not text.strip():
                raise RegisterInvalid(number, "blank line")
            try:
                record = json.loads(text)
            except ValueError:
                raise RegisterInvalid(number, "not JSON") from None
            if not isinstance(record, dict):
                raise RegisterInvalid(number, "not a JSON object")
            yield number, record


def _check_header(record: dict[str, Any], gemeente: str) -> str:
    if set(record) != HEADER_MEMBERS:
        raise RegisterInvalid(1, "the header's members are not register, kid, gemeente, created")
    if type(record["register"]) is not int or record["register"] != REGISTER_VERSION:
        raise RegisterInvalid(1, f"not a register of version {REGISTER_VERSION}")
    if record["gemeente"] != gemeente:
        raise RegisterInvalid(1, "the register is of another gemeente")
    kid = record["kid"]
    if not isinstance(kid, str) or not 0 < len(kid) <= KID_MAX:
        raise RegisterInvalid(1, "bad kid")
    if not isinstance(record["created"], str):
        raise RegisterInvalid(1, "bad created")
    return kid


def _check_date(value: Any) -> bool:
    if not _fullmatch(_ISO_DATE, value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _check_person(
    line: int, record: dict[str, Any], *, gemeente: str, kid: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if set(record) != PERSON_MEMBERS:
        raise RegisterInvalid(line, "unknown or missing members")
    pseudonym = record["pseudonym"]
    if not _fullmatch(_PSEUDONYM, pseudonym):
        raise RegisterInvalid(line, "bad pseudonym")
    household = record["household"]
    if household is not None and not _fullmatch(_HOUSEHOLD, household):
        raise RegisterInvalid(line, "bad household")
    district = record["district"]
    if district is not None and (
        not isinstance(district, str) or not 0 < len(district) <= DISTRICT_MAX
    ):
        raise RegisterInvalid(line, "bad district")
    if not _fullmatch(_GEMEENTE, record["gemeente"]) or record["gemeente"] != gemeente:
        raise RegisterInvalid(line, "the person is of another gemeente")
    status = record["status"]
    if status not in STATUSES:
        raise RegisterInvalid(line, "bad status")
    status_date = record["statusDate"]
    if status_date is not None and not _check_date(status_date):
        raise RegisterInvalid(line, "bad statusDate")
    if record["kid"] != kid:
        raise RegisterInvalid(line, "kid differs from the header's")
    tokens = record["tokens"]
    if not isinstance(tokens, dict):
        raise RegisterInvalid(line, "tokens is not an object")
    rows: list[dict[str, Any]] = []
    for kind, values in tokens.items():
        if kind not in TOKEN_TYPES:
            raise RegisterInvalid(line, "unknown token type")
        if not isinstance(values, list):
            raise RegisterInvalid(line, "tokens of a type are not a list")
        for value in values:
            if not _fullmatch(_TOKEN, value):
                raise RegisterInvalid(line, "bad token")
            rows.append({"token": value, "type": kind, "pseudonym": pseudonym})
    person = {
        "pseudonym": pseudonym,
        "household": household or "",
        "district": district or "",
        "status": status,
        "labels": "[]",
    }
    return person, rows


def _parse(path: Path, *, gemeente: str) -> _Parsed:
    records = _lines(path)
    first = next(records, None)
    if first is None:
        raise RegisterInvalid(1, "no header")
    kid = _check_header(first[1], gemeente)
    parsed = _Parsed(persons=[], tokens=[])
    seen: set[str] = set()
    for line, record in records:
        person, rows = _check_person(line, record, gemeente=gemeente, kid=kid)
        if person["pseudonym"] in seen:
            raise RegisterInvalid(line, "duplicate pseudonym")
        seen.add(person["pseudonym"])
        parsed.persons.append(person)
        parsed.tokens.extend(rows)
    return parsed


def _insert_chunked(conn: Connection, table: Any, rows: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        conn.execute(insert(table), list(rows[start : start + CHUNK]))


def _current_version(conn: Connection) -> int:
    version = conn.execute(select(func.max(register_persons.c.version))).scalar_one()
    return int(version or 0)


def load_register(gw: Gateway, path: Path, *, gemeente: str, by: str) -> LoadResult:
    """Check ``path`` line by line, then replace the register with it in one transaction.

    ``by`` is the OIN of the municipality that delivered the file (the audit event's
    organisation). Raises ``RegisterInvalid`` (naming the line) before touching the
    store if any line does not fit.
    """
    if not _fullmatch(_GEMEENTE, gemeente):
        raise ValueError("a gemeente code is four digits")
    parsed = _parse(path, gemeente=gemeente)
    with gw.engine.begin() as conn:
        version = _current_version(conn) + 1
        conn.execute(delete(register_tokens))
        conn.execute(delete(register_persons))
        for person in parsed.persons:
            person["version"] = version
        _insert_chunked(conn, register_persons, parsed.persons)
        _insert_chunked(conn, register_tokens, parsed.tokens)
        gw.audit.append(
            conn,
            [
                step(
                    action="register.loaded",
                    obj=f"version {version}",
                    result="loaded",
                    organisation=by,
                    role="municipality",
                    activity="vroegsignalering: laden register",
                    now=gw.clock.now(),
                )
            ],
        )
    return LoadResult(persons=len(parsed.persons), tokens=len(parsed.tokens), version=version)


def register_stats(engine: Engine) -> dict[str, Any]:
    """Persons by status, the number of tokens and the version of the register in place."""
    with reading(engine) as conn:
        by_status = Counter(
            {
                str(status): int(count)
                for status, count in conn.execute(
                    select(register_persons.c.status, func.count()).group_by(
                        register_persons.c.status
                    )
                )
            }
        )
        tokens = conn.execute(select(func.count()).select_from(register_tokens)).scalar_one()
        version = _current_version(conn)
    return {
        "persons": {status: by_status.get(status, 0) for status in sorted(STATUSES)},
        "tokens": int(tokens),
        "version": version,
    }
