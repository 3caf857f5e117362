"""Reading a creditor's CSV export with a profile (the default one for now).

The default profile is DESIGN.md's ``notices.csv``: UTF-8, comma-separated, a header
row, ``bedrag`` in euros with a decimal point, dates ``YYYY-MM-DD``. A row that does
not fit is refused with its line number and column, never with its value.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

from adapters.errors import RowInvalid

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
OPTIONAL = ("stage", "stage_date", "klantnummer", "signaalpartner")
ATTESTATION_PREFIX = "attest_"

_REF = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_AMOUNT = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,2})?$")


@dataclass(frozen=True)
class Row:
    """One row of an export, by column name, with its line number in the file."""

    line: int
    values: dict[str, str]
    attestations: dict[str, str]

    def get(self, column: str) -> str:
        return self.values.get(column, "").strip()


def read_rows(path: Path) -> Iterator[Row]:
    """Rows of a default-profile export; the header must name every required column."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise RowInvalid(1, ",".join(missing), "required column missing from header")
        for row in reader:
            line = reader.line_num
            if None in row or any(v is None for v in row.values()):
                raise RowInvalid(line, "*", "row has a different number of fields than the header")
            attest = {
                k[len(ATTESTATION_PREFIX) :]: v.strip()
                for k, v in row.items()
                if k.startswith(ATTESTATION_PREFIX) and v.strip()
            }
            yield Row(
                line, {k: v for k, v in row.items() if k in REQUIRED or k in OPTIONAL}, attest
            )


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
