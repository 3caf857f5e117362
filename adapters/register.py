"""The register office's tokeniser: a BRP extract in, a pseudonymised register out.

``read_brp`` reads the extract (DESIGN.md, "File formats at the edges") and refuses a
row that does not fit with ``RowInvalid`` (line and column, never the value).
``tokenise`` turns the rows into register records: match tokens, fuzzy encodings
(``keys.bloom``), a person pseudonym, a household pseudonym, district and status, and
nothing else of the person: no name, BSN, birth date or address. ``write_register``
writes them as JSON Lines, atomically. ``tokenise_extract`` does all three for a file,
with the rows shared out among worker processes, and writes the same bytes.

The routing labels go the same way: ``read_labels`` reads ``labels.csv`` (``bsn,label,
team``), ``label_records`` replaces each BSN by the person pseudonym the register holds
and merges one person's labels, and ``write_labels`` writes them, atomically too.

The pseudonyms are keyed with a ``PseudonymKey`` of their own, not with the linkage
secret, so a person keeps their pseudonym across register reloads and linkage-key
rotation::

    person    = "p-" + base64url(HMAC-SHA256(key, "person" ‖ 0x1F ‖ bsn))[:22]
    household = "h-" + base64url(HMAC-SHA256(key, "household" ‖ 0x1F ‖ huishouden_id))[:22]
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
import os
import re
import secrets
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson

from adapters.errors import NotEnrolled, RowInvalid
from keys import normalise
from keys.bloom import BloomEncoder
from keys.errors import FieldInvalid
from keys.keyring import write_private
from keys.tokens import HMACKey, PersonFields, Tokeniser

__all__ = [
    "BRP_COLUMNS",
    "LABELS",
    "LABELS_COLUMNS",
    "LABELS_VERSION",
    "PSEUDONYM_KEY_FILE",
    "REGISTER_VERSION",
    "BRPRow",
    "LabelRow",
    "PseudonymKey",
    "label_records",
    "read_brp",
    "read_labels",
    "tokenise",
    "tokenise_extract",
    "write_labels",
    "write_register",
]

BRP_COLUMNS: tuple[str, ...] = (
    "bsn",
    "geslachtsnaam",
    "voorvoegsel",
    "voornamen",
    "naamgebruik",
    "partner_geslachtsnaam",
    "partner_voorvoegsel",
    "geboortedatum",
    "postcode",
    "huisnummer",
    "huisletter",
    "huisnummertoevoeging",
    "woonplaats",
    "gemeentecode",
    "wijkcode",
    "huishouden_id",
    "datum_overlijden",
    "datum_vertrek",
)
NAAMGEBRUIK = frozenset({"", "E", "P", "V", "N"})
PSEUDONYM_KEY_FILE = "pseudonym-key.json"
PSEUDONYM_KEY_BYTES = 32
PSEUDONYM_CHARS = 22
REGISTER_VERSION = 1
ROW = "row"  # the column named when a refusal concerns the whole row

_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")

LABELS_COLUMNS: tuple[str, ...] = ("bsn", "label", "team")
GEREGELDE_BETALING = "geregelde_betaling"  # welfare with managed payments: that team
SCHULDHULP = "schuldhulp"  # already a debt-help client: their current team (its OIN)
LABELS = frozenset({GEREGELDE_BETALING, SCHULDHULP})
LABELS_VERSION = 1
_OIN = re.compile(r"[0-9]{20}")


class PseudonymKey:
    """The municipality's key for person and household pseudonyms (not the linkage secret)."""

    __slots__ = ("_key", "_mac_key")

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != PSEUDONYM_KEY_BYTES:
            raise ValueError(f"a pseudonym key is {PSEUDONYM_KEY_BYTES} bytes")
        self._key = key
        self._mac_key = HMACKey(key)

    @classmethod
    def generate(cls) -> PseudonymKey:
        """A fresh random key."""
        return cls(secrets.token_bytes(PSEUDONYM_KEY_BYTES))

    @classmethod
    def load(cls, secrets_dir: Path) -> PseudonymKey:
        """The key in ``secrets_dir/pseudonym-key.json``; ``NotEnrolled`` if there is none."""
        path = secrets_dir / PSEUDONYM_KEY_FILE
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotEnrolled("this home holds no pseudonym key (tokenise first)") from None
        except ValueError:
            raise NotEnrolled(f"{path} is not JSON") from None
        try:
            encoded = doc["key"]
            return cls(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        except (KeyError, TypeError, ValueError):
            raise NotEnrolled(f"{path} does not hold a pseudonym key") from None

    @classmethod
    def load_or_create(cls, secrets_dir: Path) -> PseudonymKey:
        """Like ``load``, but makes the key (mode 0600) on first use."""
        path = secrets_dir / PSEUDONYM_KEY_FILE
        if path.exists():
            return cls.load(secrets_dir)
        key = cls.generate()
        write_private(path, json.dumps({"key": _b64e(key._key)}).encode())
        return key

    def person(self, bsn: str) -> str:
        """The person pseudonym of a BSN (normalised here, so "12345672" is "012345672")."""
        return "p-" + self._mac("person", normalise.bsn(bsn))

    def household(self, huishouden_id: str) -> str:
        """The household pseudonym of a BRP huishouden_id."""
        return "h-" + self._mac("household", huishouden_id.strip())

    def _mac(self, kind: str, value: str) -> str:
        return _b64e(self._mac_key.digest(f"{kind}\x1f{value}".encode()))[:PSEUDONYM_CHARS]

    def __repr__(self) -> str:
        return "PseudonymKey(<redacted>)"


_URLSAFE = bytes.maketrans(b"+/", b"-_")  # standard base64 to base64url, for translate


def _b64e(data: bytes) -> str:
    # base64url without padding; binascii and a translate cost less than base64's.
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE, b"=").decode("ascii")


@dataclass(frozen=True, repr=False)
class BRPRow:
    """One person of the extract, checked and normalised; ``line`` is where it ends."""

    line: int
    bsn: str
    person: PersonFields
    gemeentecode: str
    wijkcode: str
    huishouden_id: str
    datum_overlijden: date | None
    datum_vertrek: date | None

    def __repr__(self) -> str:
        return f"BRPRow(line={self.line}, <personal data redacted>)"


def read_brp(path: Path) -> Iterator[BRPRow]:
    """The rows of a BRP extract (UTF-8, optional BOM, header row), checked one by one.

    Raises ``RowInvalid`` on the first row that does not fit; line 1 is the header.
    """
    seen: dict[str, int] = {}
    for line, raw in _csv_rows(path, BRP_COLUMNS):
        row = _row(line, raw)
        if row.bsn in seen:
            raise RowInvalid(line, "bsn", f"duplicate of the BSN on line {seen[row.bsn]}")
        seen[row.bsn] = line
        yield row


def _csv_rows(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Each non-blank row's line and its ``columns`` (UTF-8, optional BOM, header row).

    Raises ``RowInvalid`` for a header lacking a column, a row with the wrong number of
    fields, or bytes that are not UTF-8; line 1 is the header.
    """
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = [name.strip() for name in next(reader, [])]
            for column in columns:
                if column not in header:
                    raise RowInvalid(1, column, "the header lacks this column")
            index = {column: header.index(column) for column in columns}
            for fields in reader:
                line = reader.line_num
                if not fields:
                    continue  # a blank line
                if len(fields) != len(header):
                    raise RowInvalid(
                        line, ROW, f"expected {len(header)} fields, found {len(fields)}"
                    )
                yield line, {c: fields[i] for c, i in index.items()}
        except UnicodeDecodeError:
            raise RowInvalid(reader.line_num + 1, ROW, "not UTF-8") from None


def _row(line: int, raw: dict[str, str]) -> BRPRow:
    if raw["naamgebruik"].strip().upper() not in NAAMGEBRUIK:
        raise RowInvalid(line, "naamgebruik", "not one of E, P, V, N or empty")
    try:
        bsn = normalise.bsn(raw["bsn"])
        person = PersonFields.from_register(
            geslachtsnaam=raw["geslachtsnaam"],
            voorvoegsel=raw["voorvoegsel"],
            voornamen=raw["voornamen"],
            naamgebruik=raw["naamgebruik"],
            partner_geslachtsnaam=raw["partner_geslachtsnaam"],
            partner_voorvoegsel=raw["partner_voorvoegsel"],
            geboortedatum=raw["geboortedatum"],
            postcode=raw["postcode"],
            huisnummer=raw["huisnummer"],
            bsn=bsn,
        )
    except FieldInvalid as exc:
        # The message names the field, never its value (keys.normalise).
        raise RowInvalid(line, exc.cause, str(exc.args[0])) from None
    return BRPRow(
        line=line,
        bsn=bsn,
        person=person,
        gemeentecode=raw["gemeentecode"].strip(),
        wijkcode=raw["wijkcode"].strip(),
        huishouden_id=raw["huishouden_id"].strip(),
        datum_overlijden=_optional_date(line, "datum_overlijden", raw["datum_overlijden"]),
        datum_vertrek=_optional_date(line, "datum_vertrek", raw["datum_vertrek"]),
    )


def _optional_date(line: int, column: str, value: str) -> date | None:
    text = value.strip()
    if not text:
        return None
    m = _ISO_DATE.fullmatch(text)
    if m is None:
        raise RowInvalid(line, column, "not of the form YYYY-MM-DD")
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        raise RowInvalid(line, column, "not a real date") from None


def tokenise(
    rows: Iterable[BRPRow],
    *,
    tokeniser: Tokeniser,
    pseudonyms: PseudonymKey,
    gemeente: str,
    now: datetime,
    encoder: BloomEncoder | None = None,
) -> Iterator[dict[str, Any]]:
    """A header record, then one register record per person, holding no personal data;
    with ``encoder`` (of the tokeniser's secret), each person's fuzzy encodings too."""
    yield _header(tokeniser, gemeente, now)
    for row in rows:
        yield _record(row, tokeniser, pseudonyms, encoder)


def _header(tokeniser: Tokeniser, gemeente: str, now: datetime) -> dict[str, Any]:
    return {
        "register": REGISTER_VERSION,
        "kid": tokeniser.kid,
        "gemeente": gemeente,
        "created": now.astimezone(UTC).isoformat(),
    }


def _record(
    row: BRPRow, tokeniser: Tokeniser, pseudonyms: PseudonymKey, encoder: BloomEncoder | None
) -> dict[str, Any]:
    status, when = _status(row)
    record = {
        "pseudonym": pseudonyms.person(row.bsn),
        "household": pseudonyms.household(row.huishouden_id) if row.huishouden_id else None,
        "district": row.wijkcode or None,
        "gemeente": row.gemeentecode,
        "status": status,
        "statusDate": when.isoformat() if when is not None else None,
        "tokens": tokeniser.tokens(row.person, include_bsn=True),
        "kid": tokeniser.kid,
    }
    fuzzy = encoder.person(row.person) if encoder is not None else None
    if fuzzy:
        record["fuzzy"] = fuzzy
    return record


def _status(row: BRPRow) -> tuple[str, date | None]:
    if row.datum_overlijden is not None:
        return "deceased", row.datum_overlijden
    if row.datum_vertrek is not None:
        return "moved_out", row.datum_vertrek
    return "resident", None


def write_register(path: Path, records: Iterable[dict[str, Any]]) -> Counter[str]:
    """Write the records as JSON Lines: a reader sees the old file or the whole new one.

    Returns the number of persons per status. If ``records`` raises (a row of the
    extract is refused), the previous file stays as it was.
    """
    counts: Counter[str] = Counter()

    def counted() -> Iterator[dict[str, Any]]:
        for record in records:
            if "status" in record:
                counts[record["status"]] += 1
            yield record

    _write_jsonl(path, counted(), prefix=".tmp-register-")
    return counts


SHARE_ROWS = 20_000
"""Rows a worker of ``tokenise_extract`` takes at a time."""
MAX_WORKERS = 8
"""At most this many workers by default: each reads the whole extract and holds its
own caches (about 110 MB for a register of a million persons)."""


def tokenise_extract(
    path: Path,
    out: Path,
    *,
    tokeniser: Tokeniser,
    pseudonyms: PseudonymKey,
    gemeente: str,
    now: datetime,
    encoder: BloomEncoder | None = None,
    workers: int | None = None,
) -> Counter[str]:
    """``write_register(out, tokenise(read_brp(path), ...))``: the same bytes, the same
    refusal (the first row in the file that does not fit), with the rows shared out in
    runs of ``SHARE_ROWS`` among ``workers`` forked processes (by default one per
    processor this process may use, at most ``MAX_WORKERS``).

    Each worker reads the whole extract and tokenises its own runs into files of a
    temporary folder beside ``out``; then this process checks the BSNs across runs
    (through the person pseudonyms, which are equal exactly when the BSNs are) and
    writes the runs in order. The workers get the keys by the fork and hand back only
    files: register lines, and per row its line, status and pseudonym.
    """
    workers = workers or min(MAX_WORKERS, len(os.sched_getaffinity(0)))
    if workers == 1:
        rows = read_brp(path)
        records = tokenise(
            rows,
            tokeniser=tokeniser,
            pseudonyms=pseudonyms,
            gemeente=gemeente,
            now=now,
            encoder=encoder,
        )
        return write_register(out, records)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".tmp-tokenise-") as tmp:
        shares = Path(tmp)
        pids = []
        try:
            for worker in range(workers):
                pid = os.fork()
                if pid == 0:  # the child leaves by os._exit
                    _worker(path, shares, worker, workers, tokeniser, pseudonyms, encoder)
                pids.append(pid)
        finally:
            codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
        if any(code not in (0, 1) for code in codes):
            raise RuntimeError("a tokenising worker failed")
        refused = [_refusal(file) for file in sorted(shares.glob("refused-*.json"))]
        first = min(refused, key=lambda e: e.line, default=None)
        counts = _check_runs(shares, before=first.line if first else None)
        if first is not None:
            raise first

        def lines() -> Iterator[bytes]:
            yield _json_line(_header(tokeniser, gemeente, now))
            for run in sorted(shares.glob("run-*.jsonl")):
                yield run.read_bytes()

        _write_lines(out, lines(), prefix=".tmp-register-")
    return counts


def _worker(
    path: Path,
    shares: Path,
    worker: int,
    workers: int,
    tokeniser: Tokeniser,
    pseudonyms: PseudonymKey,
    encoder: BloomEncoder | None,
) -> None:
    """One worker of ``tokenise_extract``: its runs into ``run-N.jsonl`` and
    ``run-N.rows`` (line, status, pseudonym), then ``os._exit``: 0 when done, 1 with
    ``refused-W.json`` for a row that does not fit, 2 for anything else (nothing of
    it is written: it may hold personal data)."""
    code = 2
    try:
        current = -1
        lines = rows = None
        for number, (line, raw) in enumerate(_csv_rows(path, BRP_COLUMNS)):
            run = number // SHARE_ROWS
            if run % workers != worker:
                continue
            if run != current:
                for done in (lines, rows):
                    if done is not None:
                        done.close()
                lines = (shares / f"run-{run:08d}.jsonl").open("wb")
                rows = (shares / f"run-{run:08d}.rows").open("w", encoding="ascii")
                current = run
            assert lines is not None and rows is not None
            record = _record(_row(line, raw), tokeniser, pseudonyms, encoder)
            lines.write(_json_line(record))
            rows.write(f"{line} {record['status']} {record['pseudonym']}\n")
        for done in (lines, rows):
            if done is not None:
                done.close()
        code = 0
    except RowInvalid as exc:
        refusal = {"line": exc.line, "column": exc.column, "reason": exc.reason}
        (shares / f"refused-{worker}.json").write_text(json.dumps(refusal))
        code = 1
    finally:
        os._exit(code)


def _refusal(file: Path) -> RowInvalid:
    found = json.loads(file.read_text())
    return RowInvalid(found["line"], found["column"], found["reason"])


def _check_runs(shares: Path, *, before: int | None) -> Counter[str]:
    """Statuses counted over the runs' rows; a BSN seen twice (before line ``before``,
    where a worker's refusal stopped it) raises ``RowInvalid`` as ``read_brp`` does."""
    counts: Counter[str] = Counter()
    seen: dict[str, int] = {}
    for run in sorted(shares.glob("run-*.rows")):
        for entry in run.read_text(encoding="ascii").splitlines():
            number, status, pseudonym = entry.split(" ")
            line = int(number)
            if before is not None and line >= before:
                return counts
            if pseudonym in seen:
                raise RowInvalid(line, "bsn", f"duplicate of the BSN on line {seen[pseudonym]}")
            seen[pseudonym] = line
            counts[status] += 1
    return counts


def _write_jsonl(path: Path, records: Iterable[dict[str, Any]], *, prefix: str) -> None:
    """Write the records as JSON Lines (mode 0600) through a temp file and a rename.

    Each line is ``json.dumps(record, separators=(",", ":"), sort_keys=True)``: ASCII,
    keys sorted, no spaces. A reader sees the old file or the whole new one; if
    ``records`` raises, the previous file stays as it was and the temp file is removed.
    """
    _write_lines(path, map(_json_line, records), prefix=prefix)


def _write_lines(path: Path, chunks: Iterable[bytes], *, prefix: str) -> None:
    """Write ``chunks`` to ``path`` (mode 0600) through a temp file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# The passthrough options make orjson refuse a date or a dataclass, as json.dumps does.
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_APPEND_NEWLINE
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)


def _json_line(record: dict[str, Any]) -> bytes:
    # orjson writes the bytes json.dumps writes for the str, int, bool, None, list and
    # dict values records hold (no floats), except that json.dumps escapes DEL and every
    # non-ASCII character as \uXXXX where orjson writes them as they are. So a line
    # holding such a byte, or one orjson refuses, is written by json.dumps after all.
    try:
        line = orjson.dumps(record, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        return _json_dumps_line(record)
    if line.isascii() and b"\x7f" not in line:
        return line
    return _json_dumps_line(record)


def _json_dumps_line(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n").encode()


# -- routing labels ----------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class LabelRow:
    """One label of ``labels.csv``, checked; ``team`` is an OIN or None."""

    line: int
    bsn: str
    label: str
    team: str | None

    def __repr__(self) -> str:
        return f"LabelRow(line={self.line}, label={self.label!r}, <BSN redacted>)"


def read_labels(path: Path) -> Iterator[LabelRow]:
    """The rows of ``labels.csv`` (UTF-8, optional BOM, header ``bsn,label,team``).

    Raises ``RowInvalid`` (line and column, never the value) on the first row that does
    not fit: a BSN failing the elfproef, an unknown label, ``schuldhulp`` without a team,
    a team that is not a 20-digit OIN, or a BSN with the same label twice.
    """
    seen: dict[tuple[str, str], int] = {}
    for line, raw in _csv_rows(path, LABELS_COLUMNS):
        try:
            bsn = normalise.bsn(raw["bsn"])
        except FieldInvalid as exc:
            raise RowInvalid(line, "bsn", str(exc.args[0])) from None
        label = raw["label"].strip()
        if label not in LABELS:
            raise RowInvalid(line, "label", f"not one of {', '.join(sorted(LABELS))}")
        team = raw["team"].strip() or None
        if team is None and label == SCHULDHULP:
            raise RowInvalid(line, "team", f"{SCHULDHULP} needs the current team's OIN")
        if team is not None and not _OIN.fullmatch(team):
            raise RowInvalid(line, "team", "not an OIN of 20 digits")
        if (bsn, label) in seen:
            raise RowInvalid(
                line, "label", f"duplicate of the same BSN and label on line {seen[bsn, label]}"
            )
        seen[bsn, label] = line
        yield LabelRow(line=line, bsn=bsn, label=label, team=team)


def label_records(
    rows: Iterable[LabelRow], *, pseudonyms: PseudonymKey, gemeente: str, now: datetime
) -> Iterator[dict[str, Any]]:
    """A header record, then one record per person: their pseudonym and labels, no BSN.

    A person's labels are merged into one record, persons and labels in input order.
    All rows are read before the first person is given, so a refused row stops it all.
    """
    yield {
        "labels": LABELS_VERSION,
        "gemeente": gemeente,
        "created": now.astimezone(UTC).isoformat(),
    }
    persons: dict[str, list[dict[str, str | None]]] = {}
    for row in rows:
        persons.setdefault(pseudonyms.person(row.bsn), []).append(
            {"label": row.label, "team": row.team}
        )
    for pseudonym, labels in persons.items():
        yield {"pseudonym": pseudonym, "labels": labels}


def write_labels(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """Write the label records as JSON Lines, atomically; returns the number of persons."""
    count = 0

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal count
        for record in records:
            count += "pseudonym" in record
            yield record

    _write_jsonl(path, counted(), prefix=".tmp-labels-")
    return count
