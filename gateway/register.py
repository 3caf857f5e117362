"""Loading the municipality's pseudonymised register (DESIGN.md, "Pseudonymised matching").

The tokeniser (``adapters.register``) writes ``register.jsonl``: a header record, then
one record per person holding tokens, fuzzy encodings (``keys.bloom``) and
pseudonyms only. ``load_register`` reads it line by line and stores it as a new
version of that gemeente's register, in tables of its own
(``gateway.store.schema.register_tables``), while the matcher goes on using the
version in ``registers``. The rows go in bare, in chunks of short transactions (on
SQLite a long one would hold the write lock and stall the intake); the indexes are
built once they are all in, which for a register of a million persons is several times
faster than keeping them in order row by row. Only when every line has been checked
and stored and the indexes are built does one transaction make the new version the one
in use; a refused line or a crash before that leaves the register in use as it was,
and the tables made so far are dropped (or, after a crash, by the next load). The
previous version stays until the next load, so a match that began before the switch
can finish on it; memory use does not grow with the size of the register beyond a set
of its pseudonyms and a count per surname.

Beside the persons and their tokens, a version holds how many persons carry each
surname encoding (``surname_key``), so that the matcher can tell a rare surname from a
common one. The gateway could count equal encodings anyway (docs/fuzzy-encoding.md,
section 8); it learns no surname from them.

A token is stored as its first 8 bytes read as a signed integer (``token_keys``):
among the fifteen million tokens of a register of a million persons, two of one type
share those bytes with a chance under one in a million, and a notice's token that
collided so would only add a candidate for the score to weigh.

The routing labels (``register labels``: a header, then ``{"pseudonym", "labels"}`` per
person) are loaded with the register they belong to. A label for a pseudonym the
register does not hold (someone who left the extract) is counted and dropped.

A refusal (``RegisterInvalid``) names the line, never a value from it.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import re
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, delete, func, insert, inspect, select
from sqlalchemy.schema import CreateTable, DropTable

from gateway.audit import step
from gateway.errors import RegisterInvalid
from gateway.service import Gateway
from gateway.store.bulk import load_values
from gateway.store.engine import reading
from gateway.store.schema import REGISTER_TABLE, RegisterTables, register_tables, registers
from keys import bloom
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
    "surname_key",
    "token_keys",
]

REGISTER_VERSION = 1
STATUSES = frozenset({"resident", "deceased", "moved_out"})
CHUNK = 100_000
"""Token rows per transaction while a register loads."""

HEADER_MEMBERS = frozenset({"register", "kid", "gemeente", "created"})
PERSON_MEMBERS = frozenset(
    {"pseudonym", "household", "district", "gemeente", "status", "statusDate", "tokens", "kid"}
)
OPTIONAL_MEMBERS = frozenset({"fuzzy"})
"""``fuzzy``: the person's fuzzy encodings (``keys.bloom.decode``)."""
LABELS_VERSION = 1
LABELS = frozenset({"geregelde_betaling", "schuldhulp"})
LABELS_HEADER = frozenset({"labels", "gemeente", "created"})
TYPE_NUMBERS = {kind: number for number, kind in enumerate(TOKEN_TYPES)}
"""How a token type is stored: its place in ``keys.tokens.TOKEN_TYPES``."""
TYPE_BITS = {kind: 1 << bit for bit, kind in enumerate(TOKEN_TYPES)}
"""The bit of each token type in a person's ``types``: its place in
``keys.tokens.TOKEN_TYPES``, to which types are only appended, so a stored mask keeps
its meaning (``pc_geb``, ``naam_geb``, ``init_geb_hnr`` and ``naam_init2_geb`` are bits
8 to 11, ``init_geb`` bit 12)."""
REGISTER_ACTIVITY = "vroegsignalering: laden register"
DISTRICT_MAX = 16  # register_persons.district
KID_MAX = 64

_B64URL22 = r"[A-Za-z0-9_-]{22}"
_PSEUDONYM = re.compile(f"p-{_B64URL22}")
_HOUSEHOLD = re.compile(f"h-{_B64URL22}")
_B64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_GEMEENTE = re.compile(r"[0-9]{4}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_OIN = re.compile(r"[0-9]{20}")
PERSON_COLUMNS = (
    "id",
    "pseudonym",
    "household",
    "district",
    "status",
    "status_date",
    "labels",
    "types",
    "fuzzy",
)
TOKEN_COLUMNS = ("token", "type", "person")
SURNAME_COLUMNS = ("surname", "persons")
_STANDARD = bytes.maketrans(b"-_", b"+/")  # base64url to base64


def token_keys(tokens: list[str]) -> list[int]:
    """How tokens (22 characters of base64url each) are stored and looked up: each one's
    first 8 bytes as a signed 64-bit integer. Raises ``ValueError`` for anything else."""
    if not tokens:
        return []
    # Each token padded with "AA" to 24 characters decodes to 18 bytes of its own, of
    # which the first 8 are its key: one decoding for them all.
    try:
        padded = ("AA".join(tokens) + "AA").encode("ascii")
    except (TypeError, UnicodeEncodeError):
        raise ValueError("a token is a string of base64url") from None
    if set(map(len, tokens)) != {22}:
        raise ValueError("a token is 22 characters")
    if padded.translate(None, _B64URL):
        raise ValueError("a token is base64url")
    return [
        key
        for (key,) in struct.iter_unpack(">q10x", binascii.a2b_base64(padded.translate(_STANDARD)))
    ]


def surname_key(encoding: bytes) -> int:
    """How a surname's fuzzy encoding is counted and looked up: the first 8 bytes of its
    BLAKE2b hash as a signed 64-bit integer (two encodings one letter apart share most
    of their bits, so their own first bytes could coincide)."""
    return int.from_bytes(hashlib.blake2b(encoding, digest_size=8).digest(), "big", signed=True)


@dataclass(frozen=True)
class LoadResult:
    """What a load put in place: persons, tokens, and the register's version."""

    persons: int
    tokens: int
    version: int
    labelled: int = 0
    labels_dropped: int = 0


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
                record = orjson.loads(text)
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
    line: int, record: dict[str, Any], *, gemeente: str, kid: str, number: int
) -> tuple[list[Any], list[tuple[int, int, int]], list[bytes]]:
    """The person's row (``PERSON_COLUMNS``, labels "[]"), token rows and surname
    encodings of a line."""
    if not PERSON_MEMBERS <= set(record) <= PERSON_MEMBERS | OPTIONAL_MEMBERS:
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
    kinds: list[int] = []
    values: list[str] = []
    types = 0
    for kind, found in tokens.items():
        number_of_type = TYPE_NUMBERS.get(kind)
        if number_of_type is None:
            raise RegisterInvalid(line, "unknown token type")
        if not isinstance(found, list):
            raise RegisterInvalid(line, "tokens of a type are not a list")
        if found:
            values.extend(found)
            kinds.extend([number_of_type] * len(found))
            types |= TYPE_BITS[kind]
    try:
        keys = token_keys(values)
    except ValueError:
        raise RegisterInvalid(line, "bad token") from None
    rows = [(key, kind, number) for key, kind in zip(keys, kinds, strict=True)]
    fuzzy = None
    surnames: list[bytes] = []
    if "fuzzy" in record:
        try:
            decoded = bloom.decode(record["fuzzy"])
        except ValueError:
            raise RegisterInvalid(line, "bad fuzzy encodings") from None
        fuzzy = bloom.pack(decoded)
        surnames = decoded.get("naam", [])
    person = [
        number,
        pseudonym,
        household or "",
        district or "",
        status,
        status_date,
        "[]",
        types,
        fuzzy,
    ]
    return person, rows, surnames


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
    """Store ``path`` (and ``labels``) as a new version of the gemeente's register, then
    put it in use in one transaction.

    ``by`` is the OIN of the municipality that delivered the file (the audit event's
    organisation). Raises ``RegisterInvalid`` (naming the line) on the first line that
    does not fit, leaving the register in use as it was; the refusal is audited.
    """
    if not _fullmatch(_GEMEENTE, gemeente):
        raise ValueError("a gemeente code is four digits")
    try:
        return _load(gw, path, gemeente=gemeente, by=by, labels=labels)
    except RegisterInvalid as exc:
        with gw.engine.begin() as conn:
            gw.audit.append(
                conn,
                [
                    step(
                        action="register.refused",
                        obj=gemeente,
                        result="refused",
                        reason=exc.code,
                        organisation=by,
                        role="municipality",
                        activity=REGISTER_ACTIVITY,
                        now=gw.clock.now(),
                        line=str(exc.line),
                    )
                ],
            )
        raise


def _load(gw: Gateway, path: Path, *, gemeente: str, by: str, labels: Path | None) -> LoadResult:
    labelled = _check_labels(labels, gemeente=gemeente) if labels is not None else {}
    records = _lines(path)
    first = next(records, None)
    if first is None:
        raise RegisterInvalid(1, "no header")
    kid, created = _check_header(first[1], gemeente)
    with gw.engine.begin() as conn:
        active = _current_version(conn, gemeente)
        # Leftovers of a load that crashed, and the register before the one in use.
        _drop_versions(conn, gemeente, keeping=active)
        version = active + 1
        tables = register_tables(gemeente, version)
        for table in tables.tables:
            conn.execute(CreateTable(table))
    loaded = _Loading(gw, tables)
    try:
        for line, record in records:
            person, rows, surnames = _check_person(
                line, record, gemeente=gemeente, kid=kid, number=loaded.persons + 1
            )
            found = labelled.get(person[1])
            if found is not None:
                person[6] = json.dumps(found, sort_keys=True, separators=(",", ":"))
            loaded.add(line, person, rows, surnames, labelled=found is not None)
        loaded.flush()
        loaded.count_surnames()
        for index in tables.indexes:
            with gw.engine.begin() as conn:
                index.create(conn)
        now = gw.clock.now()
        with gw.engine.begin() as conn:
            conn.execute(delete(registers).where(registers.c.gemeente == gemeente))
            conn.execute(
                insert(registers).values(
                    gemeente=gemeente,
                    version=version,
                    kid=kid,
                    created=created,
                    loaded_at=now,
                    loaded_by=by,
                    persons=loaded.persons,
                    tokens=loaded.tokens,
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
                        activity=REGISTER_ACTIVITY,
                        now=now,
                        persons=str(loaded.persons),
                        labelled=str(loaded.labelled),
                    )
                ],
            )
    except BaseException:
        with gw.engine.begin() as conn:
            _drop_versions(conn, gemeente, keeping=active)
        raise
    return LoadResult(
        persons=loaded.persons,
        tokens=loaded.tokens,
        version=version,
        labelled=loaded.labelled,
        labels_dropped=len(labelled) - loaded.labelled,
    )


class _Loading:
    """The rows of a version being loaded, written a chunk per transaction."""

    def __init__(self, gw: Gateway, tables: RegisterTables) -> None:
        self._gw = gw
        self._tables = tables
        self._persons: list[tuple[Any, ...]] = []
        self._tokens: list[tuple[int, int, int]] = []
        self._seen: set[str] = set()
        self._surnames: Counter[bytes] = Counter()
        self.persons = self.tokens = self.labelled = 0

    def add(
        self,
        line: int,
        person: list[Any],
        rows: list[tuple[int, int, int]],
        surnames: list[bytes],
        *,
        labelled: bool,
    ) -> None:
        if person[1] in self._seen:
            raise RegisterInvalid(line, "duplicate pseudonym")
        self._seen.add(person[1])
        self._persons.append(tuple(person))
        self._tokens.extend(rows)
        self._surnames.update(set(surnames))
        self.persons += 1
        self.tokens += len(rows)
        self.labelled += labelled
        if len(self._tokens) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        with self._gw.engine.begin() as conn:
            if self._persons:
                load_values(conn, self._tables.persons, PERSON_COLUMNS, self._persons)
            if self._tokens:
                load_values(conn, self._tables.tokens, TOKEN_COLUMNS, self._tokens)
        self._persons, self._tokens = [], []

    def count_surnames(self) -> None:
        """Store how many persons carry each surname encoding."""
        rows = [(surname_key(encoding), n) for encoding, n in self._surnames.items()]
        if rows:
            with self._gw.engine.begin() as conn:
                load_values(conn, self._tables.surnames, SURNAME_COLUMNS, rows)


def _drop_versions(conn: Connection, gemeente: str, *, keeping: int) -> None:
    """Drop the tables of every version of the gemeente's register but ``keeping``."""
    for name in inspect(conn).get_table_names():
        found = REGISTER_TABLE.fullmatch(name)
        if found and found[1] == gemeente and int(found[2]) != keeping:
            tables = register_tables(gemeente, int(found[2]))
            conn.execute(DropTable(getattr(tables, found[3])))


def register_stats(engine: Engine, gemeente: str) -> dict[str, Any]:
    """Persons by status, the number of tokens and the version of a gemeente's register."""
    with reading(engine) as conn:
        current = conn.execute(
            select(registers.c.version, registers.c.tokens).where(registers.c.gemeente == gemeente)
        ).first()
        by_status: Counter[str] = Counter()
        if current is not None:
            persons = register_tables(gemeente, current.version).persons
            by_status.update(
                {
                    str(status): int(count)
                    for status, count in conn.execute(
                        select(persons.c.status, func.count()).group_by(persons.c.status)
                    )
                }
            )
    return {
        "persons": {status: by_status.get(status, 0) for status in sorted(STATUSES)},
        "tokens": int(current.tokens) if current is not None else 0,
        "version": int(current.version) if current is not None else 0,
    }
