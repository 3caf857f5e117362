"""Loading the municipality's pseudonymised register (DESIGN.md, "Pseudonymised matching").

The tokeniser (``adapters.register``) writes ``register.jsonl``: a header record, then
one record per person holding tokens and pseudonyms only. ``load_register`` checks every
line before anything becomes visible, then replaces that gemeente's register in one
transaction, so the matcher uses the previous register until the commit. Each gemeente
has one register in place; every row of its previous one goes.

The routing labels (``register labels``: a header, then ``{"pseudonym", "labels"}`` per
person) are loaded with the register they belong to. A label for a pseudonym the
register does not hold (someone who left the extract) is counted and dropped.

A refusal (``RegisterInvalid``) names the line, never a value from it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select

from gateway.audit import step
from gateway.errors import RegisterInvalid
from gateway.service import Gateway
from gateway.store.engine import reading
from gateway.store.schema import register_persons, register_tokens, registers
from keys.tokens import TOKEN_TYPES

__all__ = [
    "CHUNK",
    "LABELS",
    "REGISTER_VERSION",
    "STATUSES",
    "TYPE_BITS",
    "LoadResult",
    "load_register",
    "register_stats",
]

REGISTER_VERSION = 1
STATUSES = frozenset({"resident", "deceased", "moved_out"})
CHUNK = 10_000
"""Rows per ``executemany``."""

HEADER_MEMBERS = frozenset({"register", "kid", "gemeente", "created"})
PERSON_MEMBERS = frozenset(
    {"pseudonym", "household", "district", "gemeente", "status", "statusDate", "tokens", "kid"}
)
LABELS_VERSION = 1
LABELS = frozenset({"geregelde_betaling", "schuldhulp"})
LABELS_HEADER = frozenset({"labels", "gemeente", "created"})
TYPE_BITS = {kind: 1 << bit for bit, kind in enumerate(TOKEN_TYPES)}
"""The bit of each token type in ``register_persons.types``."""
DISTRICT_MAX = 16  # register_persons.district
KID_MAX = 64

_B64URL22 = r"[A-Za-z0-9_-]{22}"
_PSEUDONYM = re.compile(f"p-{_B64URL22}")
_HOUSEHOLD = re.compile(f"h-{_B64URL22}")
_TOKEN = re.compile(_B64URL22)
_GEMEENTE = re.compile(r"[0-9]{4}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_OIN = re.compile(r"[0-9]{20}")


@dataclass(frozen=True)
class LoadResult:
    """What a load put in place: persons, tokens, and the register's version."""

    persons: int
    tokens: int
    version: int
    labelled: int = 0
    labels_dropped: int = 0


@dataclass
class _Parsed:
    kid: str
    created: datetime
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


def _check_header(record: dict[str, Any], gemeente: str) -> tuple[str, datetime]:
    if set(record) != HEADER_MEMBERS:
        raise RegisterInvalid(1, "the header's members are not register, kid, gemeente, created")
    if type(record["register"]) is not int or record["register"] != REGISTER_VERSION:
        raise RegisterInvalid(1, f"not a register of version {REGISTER_VERSION}")
    if record["gemeente"] != gemeente:
        raise RegisterInvalid(1, "the register is of another gemeente")
    kid = record["kid"]
    if not isinstance(kid, str) or not 0 < len(kid) <= KID_MAX:
        raise RegisterInvalid(1, "bad kid")
    return kid, _created(record["created"])


def _created(value: Any) -> datetime:
    try:
        created = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        created = None
    if created is None or created.tzinfo is None:
        raise RegisterInvalid(1, "bad created: not an ISO time with a time zone")
    return created


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
    types = 0
    for kind, values in tokens.items():
        if kind not in TOKEN_TYPES:
            raise RegisterInvalid(line, "unknown token type")
        if not isinstance(values, list):
            raise RegisterInvalid(line, "tokens of a type are not a list")
        for value in values:
            if not _fullmatch(_TOKEN, value):
                raise RegisterInvalid(line, "bad token")
            rows.append(
                {"gemeente": gemeente, "token": value, "type": kind, "pseudonym": pseudonym}
            )
        if values:
            types |= TYPE_BITS[kind]
    person = {
        "gemeente": gemeente,
        "pseudonym": pseudonym,
        "household": household or "",
        "district": district or "",
        "status": status,
        "status_date": date.fromisoformat(status_date) if status_date else None,
        "labels": "[]",
        "types": types,
    }
    return person, rows


def _parse(path: Path, *, gemeente: str) -> _Parsed:
    records = _lines(path)
    first = next(records, None)
    if first is None:
        raise RegisterInvalid(1, "no header")
    kid, created = _check_header(first[1], gemeente)
    parsed = _Parsed(kid=kid, created=created, persons=[], tokens=[])
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


def _current_version(conn: Connection, gemeente: str) -> int:
    version = conn.execute(
        select(registers.c.version).where(registers.c.gemeente == gemeente)
    ).scalar_one_or_none()
    return int(version or 0)


def _check_labels(path: Path, *, gemeente: str) -> dict[str, list[dict[str, str | None]]]:
    """The labels file's persons: pseudonym -> labels, every line checked."""
    records = _lines(path)
    first = next(records, None)
    if first is None:
        raise RegisterInvalid(1, "no header")
    header = first[1]
    if set(header) != LABELS_HEADER or header["labels"] != LABELS_VERSION:
        raise RegisterInvalid(1, f"not a labels file of version {LABELS_VERSION}")
    if header["gemeente"] != gemeente:
        raise RegisterInvalid(1, "the labels are of another gemeente")
    persons: dict[str, list[dict[str, str | None]]] = {}
    for line, record in records:
        if set(record) != {"pseudonym", "labels"}:
            raise RegisterInvalid(line, "unknown or missing members")
        pseudonym, labels = record["pseudonym"], record["labels"]
        if not _fullmatch(_PSEUDONYM, pseudonym) or pseudonym in persons:
            raise RegisterInvalid(line, "bad or duplicate pseudonym")
        if not isinstance(labels, list) or not labels:
            raise RegisterInvalid(line, "labels is not a non-empty list")
        for label in labels:
            if (
                not isinstance(label, dict)
                or set(label) != {"label", "team"}
                or label["label"] not in LABELS
                or not (label["team"] is None or _fullmatch(_OIN, label["team"]))
                or (label["label"] == "schuldhulp" and label["team"] is None)
            ):
                raise RegisterInvalid(line, "bad label")
        persons[pseudonym] = labels
    return persons


def load_register(
    gw: Gateway, path: Path, *, gemeente: str, by: str, labels: Path | None = None
) -> LoadResult:
    """Check ``path`` (and ``labels``) line by line, then replace the gemeente's register.

    ``by`` is the OIN of the municipality that delivered the file (the audit event's
    organisation). Raises ``RegisterInvalid`` (naming the line) before touching the
    store if any line does not fit.
    """
    if not _fullmatch(_GEMEENTE, gemeente):
        raise ValueError("a gemeente code is four digits")
    parsed = _parse(path, gemeente=gemeente)
    labelled = _check_labels(labels, gemeente=gemeente) if labels is not None else {}
    matched = 0
    for person in parsed.persons:
        found = labelled.get(person["pseudonym"])
        if found is not None:
            person["labels"] = json.dumps(found, sort_keys=True, separators=(",", ":"))
            matched += 1
    now = gw.clock.now()
    with gw.engine.begin() as conn:
        version = _current_version(conn, gemeente) + 1
        conn.execute(delete(register_tokens).where(register_tokens.c.gemeente == gemeente))
        conn.execute(delete(register_persons).where(register_persons.c.gemeente == gemeente))
        conn.execute(delete(registers).where(registers.c.gemeente == gemeente))
        _insert_chunked(conn, register_persons, parsed.persons)
        _insert_chunked(conn, register_tokens, parsed.tokens)
        conn.execute(
            insert(registers).values(
                gemeente=gemeente,
                version=version,
                kid=parsed.kid,
                created=parsed.created,
                loaded_at=now,
                loaded_by=by,
                persons=len(parsed.persons),
                tokens=len(parsed.tokens),
            )
        )
        gw.audit.append(
            conn,
            [
                step(
                    action="register.loaded",
                    obj=f"{gemeente} version {version}",
                    result="loaded",
                    organisation=by,
                    role="municipality",
                    activity="vroegsignalering: laden register",
                    now=now,
                    persons=str(len(parsed.persons)),
                    labelled=str(matched),
                )
            ],
        )
    return LoadResult(
        persons=len(parsed.persons),
        tokens=len(parsed.tokens),
        version=version,
        labelled=matched,
        labels_dropped=len(labelled) - matched,
    )


def register_stats(engine: Engine, gemeente: str) -> dict[str, Any]:
    """Persons by status, the number of tokens and the version of a gemeente's register."""
    with reading(engine) as conn:
        by_status = Counter(
            {
                str(status): int(count)
                for status, count in conn.execute(
                    select(register_persons.c.status, func.count())
                    .where(register_persons.c.gemeente == gemeente)
                    .group_by(register_persons.c.status)
                )
            }
        )
        tokens = conn.execute(
            select(func.count())
            .select_from(register_tokens)
            .where(register_tokens.c.gemeente == gemeente)
        ).scalar_one()
        version = _current_version(conn, gemeente)
    return {
        "persons": {status: by_status.get(status, 0) for status in sorted(STATUSES)},
        "tokens": int(tokens),
        "version": version,
    }
