"""The register office's tokeniser: BRP extract in, pseudonymised register out."""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import signaalpoort
from adapters import register
from adapters.errors import RowInvalid
from adapters.municipality import Municipality
from adapters.register import (
    BRP_COLUMNS,
    PSEUDONYM_KEY_FILE,
    PseudonymKey,
    read_brp,
    tokenise,
    tokenise_extract,
    write_register,
)
from keys.bloom import BloomEncoder
from keys.home import Identity, PartyHome
from keys.jwk import OIN
from keys.tokens import Tokeniser

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def _valid_bsns(count: int, start: int = 111_222_000) -> list[str]:
    """BSNs that pass the elfproef, made here rather than copied from anywhere."""
    found: list[str] = []
    n = start
    while len(found) < count:
        digits = f"{n:09d}"
        total = sum(w * int(d) for w, d in zip((9, 8, 7, 6, 5, 4, 3, 2, -1), digits, strict=True))
        if total % 11 == 0:
            found.append(digits)
        n += 1
    return found


BSN = _valid_bsns(6)
# One digit off a valid BSN: the last digit weighs -1, so the sum is off by 1 mod 11.
BAD_BSN = BSN[5][:8] + str((int(BSN[5][8]) + 1) % 10)
PEOPLE: list[dict[str, str]] = [
    {
        "bsn": BSN[0],
        "geslachtsnaam": "Vermeulenhuis",
        "voorvoegsel": "van der",
        "voornamen": "Johanna Maria",
        "naamgebruik": "E",
        "geboortedatum": "1971-03-14",
        "postcode": "1012AB",
        "huisnummer": "17",
        "woonplaats": "Amsterdam",
        "wijkcode": "WK036301",
        "huishouden_id": "HH-0001",
    },
    {
        "bsn": BSN[1],
        "geslachtsnaam": "Oosterbroek",
        "voornamen": "Pieter",
        "naamgebruik": "P",
        "partner_geslachtsnaam": "Vermeulenhuis",
        "partner_voorvoegsel": "van der",
        "geboortedatum": "1969-11-02",
        "postcode": "1012AB",
        "huisnummer": "17",
        "woonplaats": "Amsterdam",
        "wijkcode": "WK036301",
        "huishouden_id": "HH-0001",
    },
    {
        "bsn": BSN[2],
        "geslachtsnaam": "Kalkhoven",
        "voornamen": "Hendrik",
        "geboortedatum": "1960-00-00",
        "postcode": "1093KL",
        "huisnummer": "5",
        "woonplaats": "Amsterdam",
        "wijkcode": "WK036305",
        "huishouden_id": "HH-0002",
        "datum_overlijden": "2026-10-01",
    },
    {
        "bsn": BSN[3],
        "geslachtsnaam": "Brouwersgracht",
        "voornamen": "Anneke",
        "geboortedatum": "1988-07-30",
        "postcode": "1051XY",
        "huisnummer": "210",
        "woonplaats": "Amsterdam",
        "wijkcode": "WK036307",
        "huishouden_id": "HH-0003",
        "datum_vertrek": "2026-09-15",
    },
]


def _write_brp(path: Path, people: list[dict[str, str]], *, bom: bool = False) -> Path:
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(BRP_COLUMNS)
        for person in people:
            row = {"gemeentecode": "0363", **person}
            writer.writerow([row.get(c, "") for c in BRP_COLUMNS])
    return path


@pytest.fixture
def home(tmp_path: Path) -> PartyHome:
    party = PartyHome(tmp_path / "amsterdam")
    party.create(
        Identity("Gemeente Amsterdam", "municipality", OIN("00000001002564440000"), "0363")
    )
    Municipality(party).create_linkage_secret(now=NOW)
    return party


def _tokenise(home: PartyHome, brp: Path, out: Path) -> list[dict[str, Any]]:
    municipality = Municipality(home)
    write_register(
        out,
        tokenise(
            read_brp(brp),
            tokeniser=Tokeniser(municipality.linkage_secret()),
            pseudonyms=PseudonymKey.load_or_create(home.secrets_dir),
            gemeente=municipality.gemeente,
            now=NOW,
        ),
    )
    return [json.loads(line) for line in out.read_text().splitlines()]


def _by_bsn(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return dict(zip(BSN[: len(PEOPLE)], records[1:], strict=True))


def test_register_holds_no_name_bsn_birth_date_or_address(home: PartyHome, tmp_path: Path) -> None:
    out = tmp_path / "register.jsonl"
    _tokenise(home, _write_brp(tmp_path / "brp.csv", PEOPLE), out)
    held = out.read_bytes()
    fields = ("bsn", "geslachtsnaam", "voornamen", "geboortedatum", "postcode")
    forbidden = {p[f] for p in PEOPLE for f in fields if p.get(f)}
    forbidden |= {"Johanna", "1012 AB", "1960-00-00"}
    assert [v for v in forbidden if v.encode() in held] == []


def test_register_starts_with_a_header_and_has_one_record_per_person(
    home: PartyHome, tmp_path: Path
) -> None:
    records = _tokenise(home, _write_brp(tmp_path / "brp.csv", PEOPLE), tmp_path / "r.jsonl")
    kid = Municipality(home).linkage_secret().kid
    assert records[0] == {"register": 1, "kid": kid, "gemeente": "0363", "created": NOW.isoformat()}
    assert len(records) == 1 + len(PEOPLE)
    first = records[1]
    assert set(first) == {
        "pseudonym", "household", "district", "gemeente", "status", "statusDate", "tokens", "kid"
    }  # fmt: skip
    assert first["district"] == "WK036301" and first["gemeente"] == "0363"
    assert first["kid"] == kid and "bsn" in first["tokens"] and "naam_init_geb" in first["tokens"]


def test_reads_an_extract_with_a_byte_order_mark(home: PartyHome, tmp_path: Path) -> None:
    brp = _write_brp(tmp_path / "brp.csv", PEOPLE, bom=True)
    assert [r.bsn for r in read_brp(brp)] == BSN[: len(PEOPLE)]


def test_pseudonym_survives_a_reload_and_a_new_linkage_secret(
    home: PartyHome, tmp_path: Path
) -> None:
    brp = _write_brp(tmp_path / "brp.csv", PEOPLE)
    before = _by_bsn(_tokenise(home, brp, tmp_path / "one.jsonl"))
    again = _by_bsn(_tokenise(home, brp, tmp_path / "two.jsonl"))
    Municipality(home).create_linkage_secret(now=NOW)
    rotated = _by_bsn(_tokenise(home, brp, tmp_path / "three.jsonl"))
    for bsn in before:
        assert before[bsn]["pseudonym"] == again[bsn]["pseudonym"] == rotated[bsn]["pseudonym"]
        assert before[bsn]["household"] == rotated[bsn]["household"]
        assert before[bsn]["tokens"] != rotated[bsn]["tokens"]
    assert before[BSN[0]]["pseudonym"].startswith("p-") and len(before[BSN[0]]["pseudonym"]) == 24


def test_pseudonym_key_is_private_and_separate_from_the_linkage_secret(
    home: PartyHome, tmp_path: Path
) -> None:
    _tokenise(home, _write_brp(tmp_path / "brp.csv", PEOPLE), tmp_path / "r.jsonl")
    path = home.secrets_dir / PSEUDONYM_KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    secret = Municipality(home).linkage_secret().to_dict()["secret"]
    assert json.loads(path.read_text())["key"] != secret


def _documented_pseudonym(key: bytes, kind: str, value: str) -> str:
    mac = hmac.new(key, f"{kind}\x1f{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode("ascii")[:22]


@given(st.text(max_size=40).filter(str.strip))
def test_pseudonyms_are_the_documented_hmac(huishouden_id: str) -> None:
    key = bytes(range(100, 132))
    pseudonyms = PseudonymKey(key)
    assert pseudonyms.person(BSN[0]) == "p-" + _documented_pseudonym(key, "person", BSN[0])
    assert pseudonyms.household(huishouden_id) == "h-" + _documented_pseudonym(
        key, "household", huishouden_id.strip()
    )


def test_household_members_share_a_household_pseudonym(home: PartyHome, tmp_path: Path) -> None:
    records = _by_bsn(_tokenise(home, _write_brp(tmp_path / "b.csv", PEOPLE), tmp_path / "r"))
    assert records[BSN[0]]["household"] == records[BSN[1]]["household"]
    assert records[BSN[0]]["household"].startswith("h-")
    assert records[BSN[0]]["household"] != records[BSN[2]]["household"]
    assert records[BSN[0]]["pseudonym"] != records[BSN[1]]["pseudonym"]


def test_status_is_deceased_or_moved_out_with_its_date(home: PartyHome, tmp_path: Path) -> None:
    records = _by_bsn(_tokenise(home, _write_brp(tmp_path / "b.csv", PEOPLE), tmp_path / "r"))
    assert (records[BSN[0]]["status"], records[BSN[0]]["statusDate"]) == ("resident", None)
    assert (records[BSN[2]]["status"], records[BSN[2]]["statusDate"]) == ("deceased", "2026-10-01")
    assert (records[BSN[3]]["status"], records[BSN[3]]["statusDate"]) == ("moved_out", "2026-09-15")


def test_partly_unknown_birth_date_is_accepted_as_unknown(tmp_path: Path) -> None:
    rows = list(read_brp(_write_brp(tmp_path / "brp.csv", PEOPLE)))
    assert rows[2].person.birth_date is None


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | st.sampled_from(["\x7f", "\x00\x1f\t", "é", "\u2028", "\ud800", "😀", '"\\/']),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)


keys = st.text(max_size=6).filter(lambda k: k != "status")  # write_register counts those


# Each example writes and fsyncs a file, which a busy machine can make slow.
@settings(deadline=None)
@given(st.lists(st.dictionaries(keys, json_values, max_size=4), max_size=4))
def test_register_lines_are_the_sorted_compact_ascii_json_of_the_records(
    tmp_path_factory: pytest.TempPathFactory, records: list[dict[str, Any]]
) -> None:
    out = tmp_path_factory.getbasetemp() / "lines.jsonl"
    write_register(out, records)
    expected = "".join(
        json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n" for record in records
    )
    assert out.read_bytes() == expected.encode("ascii")


def test_register_lines_keep_json_for_what_orjson_writes_otherwise(tmp_path: Path) -> None:
    # A key that is not a string, an integer beyond 64 bits, DEL and a lone surrogate.
    records: list[dict[Any, Any]] = [{1: 2}, {"n": 2**70}, {"s": "\x7f"}, {"s": "\udc00"}]
    write_register(tmp_path / "r.jsonl", records)
    assert (tmp_path / "r.jsonl").read_bytes() == (
        b'{"1":2}\n{"n":1180591620717411303424}\n{"s":"\\u007f"}\n{"s":"\\udc00"}\n'
    )


def _refusal(tmp_path: Path, people: list[dict[str, str]]) -> RowInvalid:
    brp = _write_brp(tmp_path / "brp.csv", people)
    with pytest.raises(RowInvalid) as caught:
        list(read_brp(brp))
    return caught.value


@pytest.mark.parametrize(
    ("change", "column"),
    [
        ({"bsn": BAD_BSN}, "bsn"),
        ({"bsn": "12ab"}, "bsn"),
        ({"geboortedatum": "1971-02-30"}, "geboortedatum"),
        ({"geboortedatum": "14-03-1971"}, "geboortedatum"),
        ({"datum_overlijden": "2026-00-00"}, "datum_overlijden"),
        ({"datum_overlijden": "2026-13-01"}, "datum_overlijden"),
        ({"datum_vertrek": "gisteren"}, "datum_vertrek"),
        ({"naamgebruik": "X"}, "naamgebruik"),
        ({"postcode": "0123AB"}, "postcode"),
    ],
)
def test_refuses_an_invalid_field_naming_line_and_column(
    tmp_path: Path, change: dict[str, str], column: str
) -> None:
    people = [PEOPLE[0], {**PEOPLE[1], **change}]
    refused = _refusal(tmp_path, people)
    assert (refused.line, refused.column) == (3, column)
    for value in change.values():
        assert value not in str(refused)


def test_refuses_a_duplicate_bsn_naming_the_first_line(tmp_path: Path) -> None:
    refused = _refusal(tmp_path, [PEOPLE[0], PEOPLE[2], {**PEOPLE[1], "bsn": BSN[0]}])
    assert (refused.line, refused.column) == (4, "bsn")
    assert "line 2" in refused.reason and BSN[0] not in str(refused)


def test_refuses_a_bsn_that_is_a_duplicate_only_after_zero_padding(tmp_path: Path) -> None:
    short = next(b for b in _valid_bsns(50, start=10_000_000) if b.startswith("0"))
    refused = _refusal(tmp_path, [{**PEOPLE[0], "bsn": short}, {**PEOPLE[1], "bsn": short[1:]}])
    assert (refused.line, refused.column) == (3, "bsn")


def test_refuses_a_header_that_lacks_a_column(tmp_path: Path) -> None:
    brp = tmp_path / "brp.csv"
    brp.write_text(",".join(c for c in BRP_COLUMNS if c != "wijkcode") + "\n")
    with pytest.raises(RowInvalid) as caught:
        list(read_brp(brp))
    assert (caught.value.line, caught.value.column) == (1, "wijkcode")


def test_refuses_a_row_with_the_wrong_number_of_fields(tmp_path: Path) -> None:
    brp = _write_brp(tmp_path / "brp.csv", PEOPLE[:2])
    brp.write_text(brp.read_text() + "123,too,few\n")
    refused = _refusal_of(brp)
    assert (refused.line, refused.column) == (4, "row")


def _refusal_of(brp: Path) -> RowInvalid:
    with pytest.raises(RowInvalid) as caught:
        list(read_brp(brp))
    return caught.value


def test_a_refused_extract_leaves_the_previous_register_in_place(
    home: PartyHome, tmp_path: Path
) -> None:
    out = tmp_path / "register.jsonl"
    _tokenise(home, _write_brp(tmp_path / "good.csv", PEOPLE), out)
    before = out.read_bytes()
    bad = _write_brp(tmp_path / "bad.csv", [PEOPLE[0], {**PEOPLE[1], "naamgebruik": "Q"}])
    with pytest.raises(RowInvalid):
        _tokenise(home, bad, out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")) == []


# -- the rows shared out among workers ---------------------------------------------------


def _people(count: int) -> list[dict[str, str]]:
    bsns = _valid_bsns(count, start=200_000_000)
    return [
        {**PEOPLE[i % len(PEOPLE)], "bsn": bsn, "huishouden_id": f"HH-{i}"}
        for i, bsn in enumerate(bsns)
    ]


def _extract(home: PartyHome, brp: Path, out: Path, *, workers: int) -> dict[str, int]:
    secret = Municipality(home).linkage_secret()
    return tokenise_extract(
        brp,
        out,
        tokeniser=Tokeniser(secret),
        encoder=BloomEncoder(secret),
        pseudonyms=PseudonymKey.load_or_create(home.secrets_dir),
        gemeente="0363",
        now=NOW,
        workers=workers,
    )


@pytest.fixture
def short_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    # Runs of three rows, so that a few people are shared out among the workers.
    monkeypatch.setattr(register, "SHARE_ROWS", 3)


@pytest.mark.usefixtures("short_runs")
@pytest.mark.parametrize("workers", [2, 3])
def test_workers_write_the_very_bytes_one_process_writes(
    home: PartyHome, tmp_path: Path, workers: int
) -> None:
    brp = _write_brp(tmp_path / "brp.csv", _people(20))
    one = _extract(home, brp, tmp_path / "one.jsonl", workers=1)
    shared = _extract(home, brp, tmp_path / "shared.jsonl", workers=workers)
    assert shared == one and sum(one.values()) == 20
    assert (tmp_path / "shared.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


@pytest.mark.usefixtures("short_runs")
@pytest.mark.parametrize(
    ("changes", "refused"),
    [
        # A bad field in a later run, and a duplicate after it: the bad field.
        ({13: {"naamgebruik": "Q"}, 16: {"bsn": 4}}, (15, "naamgebruik")),
        # A duplicate of a BSN another worker read, before a bad field: the duplicate.
        ({8: {"bsn": 1}, 13: {"naamgebruik": "Q"}}, (10, "bsn")),
        # Bad fields in two workers' runs: the first in the file.
        ({7: {"postcode": "0123AB"}, 4: {"geboortedatum": "1971-02-30"}}, (6, "geboortedatum")),
    ],
)
def test_workers_refuse_the_first_row_in_the_file_that_does_not_fit(
    home: PartyHome,
    tmp_path: Path,
    changes: dict[int, dict[str, Any]],
    refused: tuple[int, str],
) -> None:
    people = _people(20)
    for index, change in changes.items():
        if "bsn" in change:
            change = {"bsn": people[change["bsn"]]["bsn"]}
        people[index] = {**people[index], **change}
    brp = _write_brp(tmp_path / "brp.csv", people)
    with pytest.raises(RowInvalid) as alone:
        list(read_brp(brp))
    out = tmp_path / "register.jsonl"
    out.write_text("the register before\n")
    with pytest.raises(RowInvalid) as shared:
        _extract(home, brp, out, workers=3)
    assert (shared.value.line, shared.value.column) == refused
    assert str(shared.value) == str(alone.value)
    assert out.read_text() == "the register before\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


@pytest.mark.usefixtures("short_runs")
def test_a_worker_failing_otherwise_fails_the_run_and_writes_nothing(
    home: PartyHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> dict[str, Any]:
        raise MemoryError

    monkeypatch.setattr(register, "_record", broken)
    out = tmp_path / "register.jsonl"
    with pytest.raises(RuntimeError, match="worker failed"):
        _extract(home, _write_brp(tmp_path / "brp.csv", _people(8)), out, workers=2)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


# -- the command line ------------------------------------------------------------------


def _run(args: list[str]) -> int:
    with pytest.raises(SystemExit) as done:
        signaalpoort.main(args)
    code = done.value.code
    return code if isinstance(code, int) else 0


def test_cli_tokenises_and_prints_the_pseudonym_the_register_holds(
    home: PartyHome, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    brp, out = _write_brp(tmp_path / "brp.csv", PEOPLE), tmp_path / "register.jsonl"
    assert (
        _run(["register", "tokenise", "--home", str(home.path), str(brp), "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "4 person(s)" in printed and "2 resident, 1 deceased, 1 moved out" in printed
    held = [json.loads(line) for line in out.read_text().splitlines()][2]["pseudonym"]
    assert _run(["register", "pseudonym", "--home", str(home.path), "--bsn", BSN[1]]) == 0
    assert capsys.readouterr().out.strip() == held


def test_cli_pseudonym_refuses_a_bsn_failing_the_elfproef(
    home: PartyHome, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _tokenise(home, _write_brp(tmp_path / "brp.csv", PEOPLE), tmp_path / "r.jsonl")
    code = _run(["register", "pseudonym", "--home", str(home.path), "--bsn", BAD_BSN])
    assert code == signaalpoort.EXIT_REFUSED
    assert "field_invalid" in capsys.readouterr().err


def test_cli_tokenise_reports_the_refused_row_and_exits_1(
    home: PartyHome, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    brp = _write_brp(tmp_path / "brp.csv", [PEOPLE[0], {**PEOPLE[1], "bsn": BAD_BSN}])
    code = _run(
        [
            "register",
            "tokenise",
            "--home",
            str(home.path),
            str(brp),
            "--out",
            str(tmp_path / "r.jsonl"),
        ]
    )
    assert code == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "row_invalid: line 3, column bsn" in err and BAD_BSN not in err


def test_cli_tokenise_works_in_the_demo_municipality_home(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signaalpoort.init_demo(tmp_path / "demo", now=NOW)
    amsterdam = tmp_path / "demo" / "amsterdam"
    brp, out = _write_brp(tmp_path / "brp.csv", PEOPLE), tmp_path / "register.jsonl"
    assert (
        _run(["register", "tokenise", "--home", str(amsterdam), str(brp), "--out", str(out)]) == 0
    )
    assert (amsterdam / "secrets" / PSEUDONYM_KEY_FILE).exists()
