"""Export profiles: a creditor's own CSV dialect read into OUR canonical rows."""

from __future__ import annotations

import csv
import io
import json
import tempfile
import threading
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st

import signaalpoort
from adapters import profile
from adapters.creditor import person_fields, read_export
from adapters.errors import ProfileInvalid, RowInvalid
from adapters.profile import (
    OPTIONAL,
    REQUIRED,
    Profile,
    default_profile,
    load_profile,
    read_rows,
    shipped_profiles,
)
from gateway.api import create_app
from gateway.service import Gateway
from gateway.settings import Settings
from gateway.tls import server_config

ROOT = Path(__file__).resolve().parents[2]
NL = Profile.shipped("nl-cp1252")
COLUMNS = [*REQUIRED, "stage", "stage_date", "klantnummer", "attest_herinnering"]
ROWS: list[dict[str, str]] = [
    {
        "ref": "HUU-2026-001",
        "category": "HUUR",
        "achternaam": "Daniëls",
        "voorvoegsel": "",
        "voorletters": "H.É.",
        "geboortedatum": "1980-02-29",
        "straat": "Coöperatiehof",
        "huisnummer": "12",
        "huisletter": "a",
        "huisnummertoevoeging": "",
        "postcode": "1073AB",
        "woonplaats": "Amsterdam",
        "telefoon": "0612345678",
        "email": "daniels@voorbeeld.nl",
        "bedrag": "1234.56",
        "ontstaansdatum": "2026-08-01",
        "signaaldatum": "2026-11-01",
        "bsn": "",
        "stage": "aanmaning",
        "stage_date": "",
        "klantnummer": "K0001",
        "attest_herinnering": "2026-09-15",
    },
    {
        "ref": "HUU-2026-002",
        "category": "HUUR",
        "achternaam": "Müller",
        "voorvoegsel": "",
        "voorletters": "J.",
        "geboortedatum": "1955-12-01",
        "straat": "Brugstraat",
        "huisnummer": "3",
        "huisletter": "",
        "huisnummertoevoeging": "hs",
        "postcode": "1012 AB",
        "woonplaats": "Amsterdam",
        "telefoon": "",
        "email": "",
        "bedrag": "1234567.8",
        "ontstaansdatum": "2026-07-31",
        "signaaldatum": "2026-11-01",
        "bsn": "",
        "stage": "ontruiming",
        "stage_date": "2026-12-15",
        "klantnummer": "K0002",
        "attest_herinnering": "ja",
    },
    {
        "ref": "HUU-2026-003",
        "category": "HUUR",
        "achternaam": "Béranger",
        "voorvoegsel": "de",
        "voorletters": "A.",
        "geboortedatum": "2001-01-09",
        "straat": "Rue de Zuid",
        "huisnummer": "100",
        "huisletter": "",
        "huisnummertoevoeging": "",
        "postcode": "1098XY",
        "woonplaats": "Amsterdam",
        "telefoon": "020-1234567",
        "email": "b@voorbeeld.nl",
        "bedrag": "99",
        "ontstaansdatum": "2026-10-01",
        "signaaldatum": "2026-11-02",
        "bsn": "",
        "stage": "vroeg",
        "stage_date": "",
        "klantnummer": "",
        "attest_herinnering": "",
    },
]


def _nl_amount(value: str, *, grouped: bool = True) -> str:
    whole, _, cents = value.partition(".")
    if grouped:
        whole = f"{int(whole):,}".replace(",", ".")
    return whole + ("," + cents if cents else "")


def _nl_date(value: str) -> str:
    return "-".join(reversed(value.split("-"))) if value else ""


def _nl_row(row: dict[str, str]) -> dict[str, str]:
    """The row as the Dutch export writes it, under its own header names."""
    out = {}
    for column, value in row.items():
        if column == "bedrag":
            value = _nl_amount(value)
        elif column in profile.DATE_COLUMNS or column.startswith("attest_"):
            value = _nl_date(value) if value[:4].isdigit() else value
        out[NL.columns.get(column, column)] = value
    return out


def _write_default(path: Path, rows: list[dict[str, str]], *, bom: bool = False) -> Path:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.getvalue().encode())
    return path


def _nl_text(rows: list[dict[str, str]], **changes: str) -> str:
    """The Dutch export of ``rows``; ``changes`` set OUR columns of the second row to a
    value as the export writes it."""
    nl_rows = [_nl_row(r) for r in rows]
    for column, value in changes.items():
        nl_rows[1][NL.columns.get(column, column)] = value
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=[NL.columns.get(c, c) for c in COLUMNS], delimiter=";")
    writer.writeheader()
    writer.writerows(nl_rows)
    return text.getvalue()


def _write_nl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_bytes(_nl_text(rows).encode("cp1252"))
    return path


def _profile_json(**changes: Any) -> dict[str, Any]:
    data = json.loads(NL.model_dump_json())
    data.update(changes)
    return data


# --- shipped profiles ------------------------------------------------------------------


def test_the_shipped_profiles_load_under_their_own_names() -> None:
    assert {"default", "nl-cp1252"} <= set(shipped_profiles())
    for name in shipped_profiles():
        assert Profile.shipped(name).name == name
        assert load_profile(name) == Profile.shipped(name)


def test_the_default_profile_is_designs_notices_csv() -> None:
    default = default_profile()
    assert (default.encoding, default.delimiter, default.decimal, default.thousands) == (
        "utf-8-sig",
        ",",
        ".",
        "",
    )
    assert default.date_format == "YYYY-MM-DD"
    attestations = [f"attest_{name}" for name in profile.ATTESTATIONS]
    assert default.columns == {c: c for c in (*REQUIRED, *OPTIONAL, *attestations)}


def test_the_shipped_profiles_are_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "profiles/*.json" in config["tool"]["setuptools"]["package-data"]["adapters"]


def test_a_profile_file_loads_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(_profile_json(name="mine", delimiter="\t")))
    assert load_profile(str(path)) == NL.model_copy(update={"name": "mine", "delimiter": "\t"})


# --- reading ---------------------------------------------------------------------------


def test_a_cp1252_semicolon_export_reads_into_the_rows_of_the_default_export(
    tmp_path: Path,
) -> None:
    nl = _write_nl(tmp_path / "nl.csv", ROWS)
    raw = nl.read_bytes()
    assert b"Dani\xebls" in raw and b"M\xfcller" in raw and b"B\xe9ranger" in raw
    assert b";1.234,56;" in raw and b";01-08-2026;" in raw and b"Openstaand bedrag" in raw

    ours = list(read_rows(_write_default(tmp_path / "default.csv", ROWS)))
    theirs = list(read_rows(nl, NL))
    assert theirs == ours
    assert [r.line for r in theirs] == [2, 3, 4]
    assert [profile.amount(r) for r in theirs] == ["1234.56", "1234567.80", "99.00"]
    assert theirs[0].get("achternaam") == "Daniëls"
    assert theirs[0].attestations == {"herinnering": "2026-09-15"}
    assert theirs[1].attestations == {"herinnering": "ja"}
    assert theirs[1].get("stage_date") == "2026-12-15"


def test_the_default_profile_reads_utf8_with_and_without_a_byte_order_mark(
    tmp_path: Path,
) -> None:
    plain = list(read_rows(_write_default(tmp_path / "plain.csv", ROWS)))
    bom = list(read_rows(_write_default(tmp_path / "bom.csv", ROWS, bom=True)))
    assert bom == plain and plain[0].get("ref") == "HUU-2026-001"


def test_given_names_are_read_where_the_export_has_the_optional_column() -> None:
    rows = read_export(ROOT / "adapters" / "demo" / "zorg.csv")
    assert rows[0].get("voornamen") == "Jan Pieter"
    assert person_fields(rows[0], "ZORG").given == ("jan", "pieter")
    without = read_export(ROOT / "adapters" / "demo" / "huur.csv")
    assert all(person_fields(row, "HUUR").given == () for row in without)


def test_a_utf8_sig_semicolon_profile_reads_the_same_rows(tmp_path: Path) -> None:
    utf8 = NL.model_copy(update={"encoding": "utf-8-sig"})
    path = tmp_path / "utf8.csv"
    path.write_bytes(b"\xef\xbb\xbf" + _nl_text(ROWS).encode())
    assert list(read_rows(path, utf8)) == list(read_rows(_write_nl(tmp_path / "nl.csv", ROWS), NL))


def test_a_byte_order_mark_is_refused_when_the_profile_says_plain_utf8(tmp_path: Path) -> None:
    path = _write_default(tmp_path / "bom.csv", ROWS, bom=True)
    with pytest.raises(RowInvalid) as refused:
        list(read_rows(path, default_profile().model_copy(update={"encoding": "utf-8"})))
    assert (refused.value.line, refused.value.column) == (1, "*")


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_numbers_are_physical_lines_whatever_the_line_ending(
    tmp_path: Path, newline: str
) -> None:
    text = _nl_text(ROWS).replace("\r\n", newline)
    lines = text.split(newline)
    text = newline.join([lines[0], "", lines[1], lines[2], "", lines[3], ""])
    path = tmp_path / "nl.csv"
    path.write_bytes(text.encode("cp1252"))
    assert [r.line for r in read_rows(path, NL)] == [3, 4, 6]


@pytest.mark.parametrize(
    ("date_format", "separator", "day_first"),
    [("DD/MM/YYYY", "/", True), ("YYYYMMDD", "", False)],
)
def test_other_date_formats_and_a_mapped_attestation(
    tmp_path: Path, date_format: str, separator: str, day_first: bool
) -> None:
    mine = NL.model_copy(
        update={
            "date_format": date_format,
            "thousands": "",
            "columns": {**NL.columns, "attest_herinnering": "Datum herinnering"},
        }
    )

    def written(column: str, value: str) -> str:
        if column == "bedrag":
            return value.replace(".", ",")
        if value[:4].isdigit() and (column in profile.DATE_COLUMNS or column == COLUMNS[-1]):
            parts = value.split("-")
            return separator.join(reversed(parts) if day_first else parts)
        return value

    lines = [[mine.columns.get(c, c) for c in COLUMNS]]
    lines += [[written(c, r[c]) for c in COLUMNS] for r in ROWS]
    path = tmp_path / "export.csv"
    path.write_text("".join(";".join(fields) + "\r\n" for fields in lines), encoding="cp1252")
    expected = list(read_rows(_write_default(tmp_path / "default.csv", ROWS)))
    assert list(read_rows(path, mine)) == expected


@settings(max_examples=60, deadline=None)
@given(
    whole=st.integers(min_value=0, max_value=999_999_999),
    cents=st.sampled_from(["", "5", "05", "50", "99"]),
    grouped=st.booleans(),
)
def test_amounts_in_decimal_comma_notation_read_as_ours(
    whole: int, cents: str, grouped: bool
) -> None:
    canonical = f"{whole}" + (f".{cents}" if cents else "")
    text = _nl_text(ROWS, bedrag=_nl_amount(canonical, grouped=grouped))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "nl.csv"
        path.write_bytes(text.encode("cp1252"))
        read = list(read_rows(path, NL))
    assert read[1].get("bedrag") == canonical


# --- refused rows ----------------------------------------------------------------------

BAD_ROWS = [
    ("bedrag", "1.23,4,5", "bedrag"),
    ("bedrag", "1234.56", "bedrag"),
    ("bedrag", "12,345", "bedrag"),
    ("bedrag", "-12,00", "bedrag"),
    ("bedrag", "12.34.567,00", "bedrag"),
    ("bedrag", "1.234.567.890,00", "bedrag"),
    ("bedrag", "", "bedrag"),
    ("ontstaansdatum", "2026-08-01", "ontstaansdatum"),
    ("signaaldatum", "1-11-2026", "signaaldatum"),
    ("geboortedatum", "31-02-1980", "geboortedatum"),
    ("stage_date", "15/12/2026", "stage_date"),
]


@pytest.mark.parametrize(("column", "value", "named"), BAD_ROWS)
def test_a_value_outside_the_profiles_notation_is_refused_by_line_and_our_column(
    tmp_path: Path, column: str, value: str, named: str
) -> None:
    path = tmp_path / "nl.csv"
    path.write_bytes(_nl_text(ROWS, **{column: value}).encode("cp1252"))
    with pytest.raises(RowInvalid) as refused:
        read_export(path, using=NL)
    assert (refused.value.line, refused.value.column) == (3, named)
    if value:
        assert value not in str(refused.value) and value not in refused.value.diagnostics()


def test_a_row_with_another_number_of_fields_is_refused(tmp_path: Path) -> None:
    lines = _nl_text(ROWS).split("\r\n")
    lines[2] += ";Geheim"
    path = tmp_path / "nl.csv"
    path.write_bytes("\r\n".join(lines).encode("cp1252"))
    with pytest.raises(RowInvalid) as refused:
        read_export(path, using=NL)
    assert (refused.value.line, refused.value.column) == (3, "*")
    assert "Geheim" not in refused.value.diagnostics()


@pytest.mark.parametrize(
    ("encoding", "bad", "using"),
    [
        ("cp1252", b"Sch\x81tte", NL),  # 0x81 is not a cp1252 character
        ("utf-8", "Daniëls".encode("cp1252"), default_profile()),  # cp1252 read as UTF-8
    ],
    ids=["cp1252", "utf-8"],
)
def test_bytes_the_encoding_does_not_allow_are_refused_by_line(
    tmp_path: Path, encoding: str, bad: bytes, using: Profile
) -> None:
    good = (_nl_text(ROWS) if using is NL else _default_text(ROWS)).encode(encoding)
    lines = good.split(b"\r\n")
    surname = "Müller".encode(encoding)
    lines[2] = lines[2].replace(surname, bad)
    path = tmp_path / "export.csv"
    path.write_bytes(b"\r\n".join(lines))
    with pytest.raises(RowInvalid) as refused:
        read_export(path, using=using)
    assert (refused.value.line, refused.value.column) == (3, "*")
    assert "tte" not in refused.value.reason and "Dani" not in refused.value.diagnostics()


def test_a_truncated_utf8_character_at_the_end_of_the_file_names_the_last_line(
    tmp_path: Path,
) -> None:
    path = _write_default(tmp_path / "export.csv", ROWS)
    path.write_bytes(path.read_bytes().rstrip(b"\r\n") + b"\xc3")
    with pytest.raises(RowInvalid) as refused:
        read_export(path)
    assert refused.value.line == 4


def test_a_header_without_a_required_column_names_our_column(tmp_path: Path) -> None:
    path = tmp_path / "nl.csv"
    path.write_bytes(_nl_text(ROWS).replace("Openstaand bedrag", "Bedrag").encode("cp1252"))
    with pytest.raises(RowInvalid) as refused:
        read_export(path, using=NL)
    assert (refused.value.line, refused.value.column) == (1, "bedrag")


def test_an_attestation_both_mapped_and_in_the_header_is_refused(tmp_path: Path) -> None:
    mine = NL.model_copy(update={"columns": {**NL.columns, "attest_herinnering": "Herinnering"}})
    lines = _nl_text(ROWS).split("\r\n")[:-1]
    # "Herinnering" is mapped to the attestation, and the header names it as well.
    lines = [lines[0] + ";Herinnering;attest_herinnering", *(line + ";;" for line in lines[1:])]
    path = tmp_path / "nl.csv"
    path.write_bytes("\r\n".join(lines).encode("cp1252"))
    with pytest.raises(RowInvalid) as refused:
        read_export(path, using=mine)
    assert (refused.value.line, refused.value.column) == (1, "attest_herinnering")


def _default_text(rows: list[dict[str, str]]) -> str:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


# --- refused profiles ------------------------------------------------------------------

BAD_PROFILES: list[tuple[str, Any, str]] = [
    ("unknown member", _profile_json(quote='"'), "quote: unknown member"),
    ("encoding", _profile_json(encoding="latin-1"), "encoding"),
    ("encoding spelled otherwise", _profile_json(encoding="UTF-8"), "encoding"),
    ("empty delimiter", _profile_json(delimiter=""), "delimiter"),
    ("two-character delimiter", _profile_json(delimiter=";;"), "delimiter"),
    ("quote as delimiter", _profile_json(delimiter='"'), "delimiter"),
    ("letter as delimiter", _profile_json(delimiter="x"), "delimiter"),
    ("decimal", _profile_json(decimal=";"), "decimal"),
    ("thousands", _profile_json(thousands=","), "thousands"),
    ("same separators", _profile_json(decimal=".", thousands="."), "must differ"),
    ("strftime", _profile_json(date_format="%d-%m-%Y"), "date_format"),
    ("no name", {k: v for k, v in _profile_json().items() if k != "name"}, "name: Field"),
    ("bad name", _profile_json(name="../etc"), "name"),
    ("number as delimiter", _profile_json(delimiter=59), "delimiter"),
    (
        "unknown target",
        _profile_json(columns={**NL.columns, "iban": "IBAN"}),
        "unknown column(s) iban",
    ),
    (
        "bad attestation name",
        _profile_json(columns={**NL.columns, "attest_2x": "X"}),
        "unknown column(s) attest_2x",
    ),
    (
        "required column missing",
        _profile_json(columns={k: v for k, v in NL.columns.items() if k != "bedrag"}),
        "required column(s) not mapped: bedrag",
    ),
    (
        "one source, two targets",
        _profile_json(columns={**NL.columns, "klantnummer": "Klantreferentie"}),
        "header 'Klantreferentie' mapped to more than one column",
    ),
    ("empty header name", _profile_json(columns={**NL.columns, "stage": ""}), "empty header"),
    ("columns not an object", _profile_json(columns=["ref"]), "columns"),
]


@pytest.mark.parametrize(
    ("data", "says"), [(d, s) for _, d, s in BAD_PROFILES], ids=[i for i, _, _ in BAD_PROFILES]
)
def test_a_profile_that_does_not_fit_is_refused_with_what_is_wrong(
    tmp_path: Path, data: Any, says: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ProfileInvalid) as refused:
        load_profile(str(path))
    assert refused.value.code == "profile_invalid"
    assert says in refused.value.diagnostics()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{", "not a JSON object"),
        ("[]", "not a JSON object"),
        ('{"name": "a", "name": "b"}', "named twice: name"),
        (b"\xff\xfe", "not a JSON object"),
    ],
    ids=["truncated", "array", "member twice", "not text"],
)
def test_a_profile_file_that_is_not_one_json_object_is_refused(
    tmp_path: Path, text: str | bytes, says: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    with pytest.raises(ProfileInvalid) as refused:
        Profile.from_file(path)
    assert says in str(refused.value)


def test_an_unknown_shipped_name_or_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProfileInvalid, match="no shipped profile 'nl-latin1'"):
        load_profile("nl-latin1")
    with pytest.raises(ProfileInvalid, match="cannot be read"):
        load_profile(str(tmp_path / "absent.json"))


# --- the command line ------------------------------------------------------------------


def _cli(*args: str) -> int:
    with pytest.raises(SystemExit) as done:
        signaalpoort.main(list(args))
    return int(done.value.code or 0)


@contextmanager
def _serving(demo: Path) -> Iterator[str]:
    gw = Gateway.open(Settings.load(demo / "gateway"))
    config = server_config(create_app(gw), gw.settings, host="127.0.0.1", port=0)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        assert time.time() < deadline, "the gateway did not start"
        time.sleep(0.05)
    try:
        yield f"https://localhost:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        gw.close()


def _to_nl(default_csv: Path, out: Path) -> Path:
    """The same export as the Dutch system writes it: same columns, its own notation."""
    with default_csv.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header, rows = list(reader.fieldnames or []), list(reader)
    text = io.StringIO(newline="")
    writer = csv.writer(text, delimiter=";")
    writer.writerow([NL.columns[c] for c in header])
    writer.writerows([_nl_row(r)[NL.columns[c]] for c in header] for r in rows)
    out.write_bytes(text.getvalue().encode("cp1252"))
    return out


def test_send_with_the_nl_profile_sends_the_very_notices_of_the_default_export(
    tmp_path: Path,
) -> None:
    signaalpoort.init_demo(tmp_path / "demo", now=datetime.now(UTC) - timedelta(minutes=5))
    home = tmp_path / "demo" / "huur"
    default_csv = home / "notices.csv"
    nl_csv = _to_nl(default_csv, home / "export-nl.csv")
    assert "Öztürk".encode("cp1252") in nl_csv.read_bytes()
    count = len(read_export(default_csv))
    assert read_export(nl_csv, using=NL) == read_export(default_csv)

    with _serving(tmp_path / "demo") as url:
        args = ("send", "--home", str(home), "--gateway", url)
        assert _cli(*args, str(nl_csv), "--profile", "nl-cp1252") == 0
        nl = json.loads((home / "export-nl.csv.receipt.json").read_text())
        assert nl["counts"] == {"accepted": count, "duplicate": 0, "refused": 0}
        # The default export of the same rows makes the same notices: all duplicates.
        assert _cli(*args, str(default_csv)) == 0
        again = json.loads((home / "notices.csv.receipt.json").read_text())
        assert again["counts"] == {"accepted": 0, "duplicate": count, "refused": 0}


def test_send_refuses_the_whole_file_on_a_bad_row_without_its_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nl.csv"
    path.write_bytes(_nl_text(ROWS).replace("1.234.567,8", "1.23,4,5").encode("cp1252"))
    code = _cli("send", "--home", str(tmp_path / "home"), str(path), "--profile", "nl-cp1252")
    assert code == signaalpoort.EXIT_REFUSED
    err = " ".join(capsys.readouterr().err.split())
    assert "row_invalid: line 3, column bedrag" in err and "1.23,4,5" not in err
    assert not (tmp_path / "nl.csv.receipt.json").exists()


def test_send_refuses_a_profile_that_does_not_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_default(tmp_path / "export.csv", ROWS)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_profile_json(encoding="latin-1")))
    for given_profile in (str(bad), "no-such-profile"):
        code = _cli("send", "--home", str(tmp_path / "home"), str(path), "--profile", given_profile)
        assert code == signaalpoort.EXIT_CONFIG
        assert "profile_invalid" in capsys.readouterr().err
