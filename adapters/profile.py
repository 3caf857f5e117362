"""Reading a creditor's CSV export with a profile (docs/profiles.md).

A profile names an export's encoding, delimiter, number and date notation, and its
column names. The reader turns every row into OUR canonical form, that of the default
profile (DESIGN.md's ``notices.csv``: UTF-8, comma-separated, a header row, ``bedrag``
in euros with a decimal point, dates ``YYYY-MM-DD``), so nothing after it depends on the
profile. A row that does not fit is refused with its physical line number and OUR
column name, never with its value.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from adapters.errors import ProfileInvalid, RowInvalid

REQUIRED = (
    "ref",
    "category",
    "achternaam",
    "voorvoegsel",
    "voorletters",
    "geboortedatum",
    "straat",
    "huisnummer",
    "huisletter",
    "huisnummertoevoeging",
    "postcode",
    "woonplaats",
    "telefoon",
    "email",
    "bedrag",
    "ontstaansdatum",
    "signaaldatum",
    "bsn",
)
OPTIONAL = ("stage", "stage_date", "klantnummer", "signaalpartner", "voornamen")
ATTESTATIONS = (
    "persoonlijkContact",
    "schriftelijkeHerinnering",
    "gewezenOpSchuldhulp",
    "geenBezwaarDoorgifte",
    "eersteHerinnering",
    "tweedeHerinnering",
    "derdeHerinnering",
    "einddatumContract",
    "herinnering",
    "geenBezwaar",
    "premieachterstandSinds",
    "aanmaning",
    "geenUitstel",
)
"""The attestations the gateway's default policy asks for (docs/policy.md): the shipped
profiles map a column to each, ``attest_<name>``."""
ATTESTATION_PREFIX = "attest_"
AMOUNT_COLUMN = "bedrag"
DATE_COLUMNS = ("geboortedatum", "ontstaansdatum", "signaaldatum", "stage_date")
DEFAULT_PROFILE = "default"
MAX_PROFILE_BYTES = 65_536

_REF = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_AMOUNT = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,2})?$")
# An attestation name as the envelope admits it (docs/envelope.md, ``attestations``).
_ATTESTATION_TARGET = re.compile(r"^attest_[a-zA-Z]{1,40}$")
_PROFILE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_BOM = codecs.BOM_UTF8

Encoding = Literal["utf-8", "utf-8-sig", "cp1252"]
DateFormat = Literal["YYYY-MM-DD", "DD-MM-YYYY", "DD/MM/YYYY", "YYYYMMDD"]

# Each date format: its pattern, and where year, month and day are in the match.
_DATES: dict[str, tuple[re.Pattern[str], tuple[int, int, int]]] = {
    "YYYY-MM-DD": (re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})"), (1, 2, 3)),
    "DD-MM-YYYY": (re.compile(r"([0-9]{2})-([0-9]{2})-([0-9]{4})"), (3, 2, 1)),
    "DD/MM/YYYY": (re.compile(r"([0-9]{2})/([0-9]{2})/([0-9]{4})"), (3, 2, 1)),
    "YYYYMMDD": (re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})"), (1, 2, 3)),
}


class Profile(BaseModel):
    """How one creditor system writes its export; load with ``from_file`` or ``shipped``."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str
    encoding: Encoding
    delimiter: str
    decimal: Literal[".", ","]
    thousands: Literal["", ".", " "]
    date_format: DateFormat
    columns: dict[str, str]
    """OUR column name -> the export's header name."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _PROFILE_NAME.match(value):
            raise ValueError("1-64 lower-case letters, digits, '.', '_' or '-'")
        return value

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        if len(value) != 1 or value in '"\r\n' or value.isalnum():
            raise ValueError("one character, not a letter, a digit, a quote or a line break")
        return value

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: dict[str, str]) -> dict[str, str]:
        problems = []
        unknown = [
            c
            for c in value
            if c not in REQUIRED and c not in OPTIONAL and not _ATTESTATION_TARGET.match(c)
        ]
        if unknown:
            problems.append("unknown column(s) " + ", ".join(unknown))
        missing = [c for c in REQUIRED if c not in value]
        if missing:
            problems.append("required column(s) not mapped: " + ", ".join(missing))
        if any(not source for source in value.values()):
            problems.append("an empty header name")
        sources: dict[str, list[str]] = {}
        for target, source in value.items():
            sources.setdefault(source, []).append(target)
        for source, targets in sources.items():
            if len(targets) > 1:
                problems.append(f"header {source!r} mapped to more than one column: {targets}")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _separators(self) -> Profile:
        if self.decimal == self.thousands:
            raise ValueError("decimal and thousands separators must differ")
        return self

    @classmethod
    def from_json(cls, text: bytes | str, *, source: str = "profile") -> Profile:
        """A profile from its JSON text; anything off raises ``ProfileInvalid``."""
        try:
            data = json.loads(text, object_pairs_hook=_unique_keys)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProfileInvalid(f"{source}: not a JSON object ({exc})") from None
        if not isinstance(data, dict):
            raise ProfileInvalid(f"{source}: not a JSON object")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ProfileInvalid(f"{source}: {_problems(exc)}") from None

    @classmethod
    def from_file(cls, path: Path) -> Profile:
        """A profile file (docs/profiles.md)."""
        try:
            with path.open("rb") as fh:
                text = fh.read(MAX_PROFILE_BYTES + 1)
        except OSError as exc:
            raise ProfileInvalid(f"{path}: cannot be read ({exc.strerror})") from None
        if len(text) > MAX_PROFILE_BYTES:
            raise ProfileInvalid(f"{path}: larger than {MAX_PROFILE_BYTES} bytes")
        return cls.from_json(text, source=str(path))

    @classmethod
    def shipped(cls, name: str) -> Profile:
        """One of the profiles that come with the adapter, by name (``nl-cp1252``)."""
        if name not in shipped_profiles():
            raise ProfileInvalid(
                f"no shipped profile {name!r} (shipped: {', '.join(shipped_profiles())}; "
                "a profile file's name ends in .json)"
            )
        return _shipped(name)

    @property
    def canonical_amounts(self) -> bool:
        """Amounts are already in OUR notation, so the reader leaves them as they are."""
        return self.decimal == "." and self.thousands == ""

    @property
    def canonical_dates(self) -> bool:
        """Dates are already ``YYYY-MM-DD``, so the reader leaves them as they are."""
        return self.date_format == "YYYY-MM-DD"


def shipped_profiles() -> tuple[str, ...]:
    """The names of the profiles that come with the adapter."""
    folder = resources.files("adapters").joinpath("profiles")
    return tuple(
        sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json"))
    )


@cache
def _shipped(name: str) -> Profile:
    text = resources.files("adapters").joinpath("profiles", f"{name}.json").read_bytes()
    return Profile.from_json(text, source=f"shipped profile {name}")


def default_profile() -> Profile:
    """DESIGN.md's ``notices.csv``: what ``send`` reads without ``--profile``."""
    return _shipped(DEFAULT_PROFILE)


def load_profile(spec: str) -> Profile:
    """A profile file (a name ending in ``.json`` or holding a path separator), else a
    shipped profile by name."""
    if spec.endswith(".json") or "/" in spec or "\\" in spec:
        return Profile.from_file(Path(spec))
    return Profile.shipped(spec)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ValueError(f"member(s) named twice: {', '.join(twice)}")
    return dict(pairs)


def _problems(exc: ValidationError) -> str:
    out = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"]) or "profile"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown member"
        out.append(f"{where}: {message}")
    return "; ".join(out)


@dataclass(frozen=True)
class Row:
    """One row of an export, by column name, with its line number in the file."""

    line: int
    values: dict[str, str]
    attestations: dict[str, str]

    def get(self, column: str) -> str:
        return self.values.get(column, "").strip()


def read_rows(path: Path, profile: Profile | None = None) -> Iterator[Row]:
    """Rows of an export in OUR canonical form; the header must name every required
    column (under the profile's header names). Without a profile, the default one."""
    if profile is None:
        profile = default_profile()
    lines = _lines(path.read_bytes(), profile.encoding)
    reader = csv.reader(lines, delimiter=profile.delimiter)
    try:
        header = next(reader, [])
        position = {name: i for i, name in enumerate(header)}
        missing = [c for c in REQUIRED if profile.columns[c] not in position]
        if missing:
            raise RowInvalid(1, ",".join(missing), "required column missing from header")
        values_at, attest_at = _field_indexes(position, profile)
        for fields in reader:
            if not fields:
                continue
            line = reader.line_num
            if len(fields) != len(header):
                raise RowInvalid(line, "*", "row has a different number of fields than the header")
            values = {column: fields[i] for column, i in values_at.items()}
            attest = {name: fields[i].strip() for name, i in attest_at.items() if fields[i].strip()}
            yield _canonical(line, values, attest, profile)
    except csv.Error as exc:
        raise RowInvalid(reader.line_num, "*", f"not a CSV row ({exc})") from None


def _lines(data: bytes, encoding: str) -> Iterator[str]:
    """Physical lines (ending in CR, LF or CRLF), decoded one by one so that a byte the
    encoding does not allow is refused with its line number."""
    if data.startswith(_BOM) and encoding != "utf-8-sig":
        raise RowInvalid(1, "*", f"starts with a UTF-8 byte order mark, not {encoding} text")
    decoder = codecs.getincrementaldecoder(encoding)()
    number = 0
    for number, raw in enumerate(data.splitlines(keepends=True), start=1):
        try:
            yield decoder.decode(raw)
        except UnicodeDecodeError:
            raise RowInvalid(number, "*", f"not {encoding} text") from None
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise RowInvalid(max(number, 1), "*", f"not {encoding} text") from None


def _field_indexes(
    position: dict[str, int], profile: Profile
) -> tuple[dict[str, int], dict[str, int]]:
    """OUR column -> field index, and attestation name -> field index, in header order.

    Attestations are those the profile maps, and any header column already named
    ``attest_<name>`` that no mapping reads from.
    """
    target_of = {theirs: ours for ours, theirs in profile.columns.items()}
    values_at: dict[str, int] = {}
    attest_at: dict[str, int] = {}
    for name, i in position.items():
        ours = target_of.get(name)
        if ours is None and name.startswith(ATTESTATION_PREFIX):
            if name in profile.columns:
                raise RowInvalid(1, name, "in the header and also mapped from another column")
            ours = name
        if ours is None:
            continue
        if ours.startswith(ATTESTATION_PREFIX):
            attest_at[ours[len(ATTESTATION_PREFIX) :]] = i
        else:
            values_at[ours] = i
    return values_at, attest_at


def _canonical(line: int, values: dict[str, str], attest: dict[str, str], p: Profile) -> Row:
    """The row in OUR notation; a value not in the profile's notation raises RowInvalid."""
    if not p.canonical_amounts and AMOUNT_COLUMN in values:
        values[AMOUNT_COLUMN] = _amount(line, values[AMOUNT_COLUMN], p)
    if not p.canonical_dates:
        for column in DATE_COLUMNS:
            if column in values and values[column].strip():
                values[column] = _date(line, column, values[column], p.date_format)
        for name, value in attest.items():
            attest[name] = _iso(value, p.date_format) or value
    return Row(line, values, attest)


def _amount(line: int, value: str, p: Profile) -> str:
    digits = r"[0-9]{1,9}"
    if p.thousands:
        digits = rf"(?:[0-9]{{1,3}}(?:{re.escape(p.thousands)}[0-9]{{3}}){{1,2}}|{digits})"
    m = re.fullmatch(rf"({digits})(?:{re.escape(p.decimal)}([0-9]{{1,2}}))?", value.strip())
    if m is None:
        thousands = f"thousands {p.thousands!r}" if p.thousands else "no thousands separator"
        raise RowInvalid(
            line, AMOUNT_COLUMN, f"not an amount with decimal {p.decimal!r}, {thousands}"
        )
    whole = m[1].replace(p.thousands, "") if p.thousands else m[1]
    return whole if m[2] is None else f"{whole}.{m[2]}"


def _date(line: int, column: str, value: str, date_format: str) -> str:
    iso = _iso(value.strip(), date_format)
    if iso is not None:
        try:
            return date.fromisoformat(iso).isoformat()
        except ValueError:
            pass
    raise RowInvalid(line, column, f"not a date {date_format}")


def _iso(text: str, date_format: str) -> str | None:
    """``text`` in the date format, rewritten as ``YYYY-MM-DD``; None if it is not."""
    pattern, (y, m, d) = _DATES[date_format]
    match = pattern.fullmatch(text)
    return None if match is None else f"{match[y]}-{match[m]}-{match[d]}"


def amount(row: Row) -> str:
    """``bedrag`` as a string with exactly two decimals."""
    value = row.get("bedrag")
    if not _AMOUNT.match(value):
        raise RowInvalid(row.line, "bedrag", "not an amount in euros with a decimal point")
    try:
        return f"{Decimal(value):.2f}"
    except InvalidOperation:
        raise RowInvalid(row.line, "bedrag", "not an amount") from None


def iso_date(row: Row, column: str, *, required: bool = True) -> str | None:
    value = row.get(column)
    if not value and not required:
        return None
    try:
        return date.fromisoformat(value).isoformat() if len(value) == 10 else _bad(row, column)
    except ValueError:
        return _bad(row, column)


def ref(row: Row) -> str:
    value = row.get("ref")
    if not _REF.match(value):
        raise RowInvalid(row.line, "ref", "a reference is 1-64 letters, digits, '.', '_' or '-'")
    return value


def _bad(row: Row, column: str) -> str:
    raise RowInvalid(row.line, column, "not a date YYYY-MM-DD")
