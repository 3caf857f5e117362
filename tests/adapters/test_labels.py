"""Routing labels: attached by BSN, written with the register's person pseudonyms only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import signaalpoort
from adapters.errors import NotEnrolled, RowInvalid
from adapters.municipality import Municipality
from adapters.register import PseudonymKey, label_records, read_labels, write_labels
from keys.home import Identity, PartyHome
from keys.jwk import OIN
from tests.adapters.test_register import (
    BAD_BSN,
    BSN,
    NOW,
    PEOPLE,
    _run,
    _tokenise,
    _valid_bsns,
    _write_brp,
)

TEAM = "00000001002564440001"
OTHER_TEAM = "00000001002564440002"
HEADER = "bsn,label,team"


@pytest.fixture
def home(tmp_path: Path) -> PartyHome:
    """A municipality's home with a linkage secret but, as yet, no pseudonym key."""
    party = PartyHome(tmp_path / "amsterdam")
    party.create(
        Identity("Gemeente Amsterdam", "municipality", OIN("00000001002564440000"), "0363")
    )
    Municipality(party).create_linkage_secret(now=NOW)
    return party


def _write_labels(path: Path, rows: list[str], *, header: str = HEADER, bom: bool = False) -> Path:
    text = "\n".join([header, *rows]) + "\n"
    path.write_text(text, encoding="utf-8-sig" if bom else "utf-8")
    return path


def _pseudonymise(home: PartyHome, labels: Path, out: Path) -> list[dict[str, Any]]:
    write_labels(
        out,
        label_records(
            read_labels(labels),
            pseudonyms=PseudonymKey.load(home.secrets_dir),
            gemeente=Municipality(home).gemeente,
            now=NOW,
        ),
    )
    return [json.loads(line) for line in out.read_text().splitlines()]


def _register_pseudonyms(home: PartyHome, tmp_path: Path) -> dict[str, str]:
    """The pseudonym ``register tokenise`` wrote for each BSN of PEOPLE."""
    records = _tokenise(home, _write_brp(tmp_path / "brp.csv", PEOPLE), tmp_path / "reg.jsonl")
    return dict(zip(BSN[: len(PEOPLE)], (r["pseudonym"] for r in records[1:]), strict=True))


def test_labels_hold_no_bsn_only_the_register_pseudonyms(home: PartyHome, tmp_path: Path) -> None:
    register = _register_pseudonyms(home, tmp_path)
    labels = _write_labels(
        tmp_path / "labels.csv",
        [f"{BSN[0]},geregelde_betaling,", f"{BSN[2]},schuldhulp,{TEAM}"],
        bom=True,
    )
    out = tmp_path / "labels.jsonl"
    records = _pseudonymise(home, labels, out)
    held = out.read_text()
    assert [b for b in BSN if b in held] == []
    assert records[0] == {"labels": 1, "gemeente": "0363", "created": NOW.isoformat()}
    assert records[1:] == [
        {"pseudonym": register[BSN[0]], "labels": [{"label": "geregelde_betaling", "team": None}]},
        {"pseudonym": register[BSN[2]], "labels": [{"label": "schuldhulp", "team": TEAM}]},
    ]


def test_a_bsn_of_eight_digits_gets_the_same_pseudonym_as_its_padded_form(
    home: PartyHome, tmp_path: Path
) -> None:
    key = PseudonymKey.load_or_create(home.secrets_dir)
    short = next(b for b in _valid_bsns(50, start=10_000_000) if b.startswith("0"))
    labels = _write_labels(tmp_path / "labels.csv", [f"{short[1:]},geregelde_betaling,"])
    assert _pseudonymise(home, labels, tmp_path / "l.jsonl")[1]["pseudonym"] == key.person(short)


def test_two_labels_of_one_person_are_merged_in_input_order(
    home: PartyHome, tmp_path: Path
) -> None:
    register = _register_pseudonyms(home, tmp_path)
    labels = _write_labels(
        tmp_path / "labels.csv",
        [
            f"{BSN[1]},schuldhulp,{TEAM}",
            f"{BSN[0]},geregelde_betaling,",
            f"{BSN[1]},geregelde_betaling,{OTHER_TEAM}",
        ],
    )
    records = _pseudonymise(home, labels, tmp_path / "labels.jsonl")
    assert records[1:] == [
        {
            "pseudonym": register[BSN[1]],
            "labels": [
                {"label": "schuldhulp", "team": TEAM},
                {"label": "geregelde_betaling", "team": OTHER_TEAM},
            ],
        },
        {"pseudonym": register[BSN[0]], "labels": [{"label": "geregelde_betaling", "team": None}]},
    ]


def _refusal(labels: Path) -> RowInvalid:
    with pytest.raises(RowInvalid) as caught:
        list(read_labels(labels))
    return caught.value


@pytest.mark.parametrize(
    ("row", "column", "value"),
    [
        (f"{BAD_BSN},geregelde_betaling,", "bsn", BAD_BSN),
        ("12ab,geregelde_betaling,", "bsn", "12ab"),
        (f"{BSN[1]},armoede,", "label", "armoede"),
        (f"{BSN[1]},schuldhulp,", "team", None),
        (f"{BSN[1]},schuldhulp,  ", "team", None),
        (f"{BSN[1]},schuldhulp,1234567890", "team", "1234567890"),
        (f"{BSN[1]},geregelde_betaling,0000000100256444000X", "team", "0000000100256444000X"),
        (f"{BSN[1]},schuldhulp,{TEAM},extra", "row", None),
        (f"{BSN[1]},schuldhulp", "row", None),
    ],
)
def test_refuses_an_invalid_row_naming_line_and_column_but_not_the_value(
    tmp_path: Path, row: str, column: str, value: str | None
) -> None:
    labels = _write_labels(tmp_path / "labels.csv", [f"{BSN[0]},geregelde_betaling,", row])
    refused = _refusal(labels)
    assert (refused.line, refused.column) == (3, column)
    if value is not None:
        assert value not in str(refused)


def test_refuses_the_same_bsn_and_label_twice_naming_the_first_line(tmp_path: Path) -> None:
    labels = _write_labels(
        tmp_path / "labels.csv",
        [
            f"{BSN[0]},geregelde_betaling,",
            f"{BSN[1]},schuldhulp,{TEAM}",
            f"{BSN[0]},geregelde_betaling,{TEAM}",
        ],
    )
    refused = _refusal(labels)
    assert (refused.line, refused.column) == (4, "label")
    assert "line 2" in refused.reason and BSN[0] not in str(refused)


@pytest.mark.parametrize("missing", ["bsn", "label", "team"])
def test_refuses_a_header_that_lacks_a_column(tmp_path: Path, missing: str) -> None:
    header = ",".join(c for c in HEADER.split(",") if c != missing)
    refused = _refusal(_write_labels(tmp_path / "labels.csv", [], header=header))
    assert (refused.line, refused.column) == (1, missing)


def test_refused_labels_leave_the_previous_file_in_place(home: PartyHome, tmp_path: Path) -> None:
    PseudonymKey.load_or_create(home.secrets_dir)
    out = tmp_path / "labels.jsonl"
    _pseudonymise(home, _write_labels(tmp_path / "good.csv", [f"{BSN[0]},schuldhulp,{TEAM}"]), out)
    before = out.read_bytes()
    with pytest.raises(RowInvalid):
        _pseudonymise(home, _write_labels(tmp_path / "bad.csv", [f"{BSN[0]},schuldhulp,"]), out)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


def test_labels_without_a_pseudonym_key_are_not_enrolled(home: PartyHome, tmp_path: Path) -> None:
    labels = _write_labels(tmp_path / "labels.csv", [f"{BSN[0]},geregelde_betaling,"])
    with pytest.raises(NotEnrolled):
        _pseudonymise(home, labels, tmp_path / "labels.jsonl")


# -- the command line ------------------------------------------------------------------


def _cli_labels(home: PartyHome, labels: Path, out: Path) -> int:
    return _run(["register", "labels", "--home", str(home.path), str(labels), "--out", str(out)])


def test_cli_writes_the_pseudonyms_register_tokenise_wrote(
    home: PartyHome, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    brp, register = _write_brp(tmp_path / "brp.csv", PEOPLE), tmp_path / "register.jsonl"
    assert (
        _run(["register", "tokenise", "--home", str(home.path), str(brp), "--out", str(register)])
        == 0
    )
    pseudonyms = [json.loads(line)["pseudonym"] for line in register.read_text().splitlines()[1:]]
    labels = _write_labels(
        tmp_path / "labels.csv", [f"{BSN[3]},schuldhulp,{TEAM}", f"{BSN[3]},geregelde_betaling,"]
    )
    out = tmp_path / "labels.jsonl"
    capsys.readouterr()
    assert _cli_labels(home, labels, out) == 0
    assert "1 person(s)" in capsys.readouterr().out
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["pseudonym"] for r in records[1:]] == [pseudonyms[3]]
    assert [entry["label"] for entry in records[1]["labels"]] == [
        "schuldhulp",
        "geregelde_betaling",
    ]
    assert BSN[3] not in out.read_text()


def test_cli_reports_the_refused_row_and_exits_1(
    home: PartyHome, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    PseudonymKey.load_or_create(home.secrets_dir)
    labels = _write_labels(
        tmp_path / "labels.csv", [f"{BSN[0]},schuldhulp,", f"{BAD_BSN},schuldhulp,{TEAM}"]
    )
    assert _cli_labels(home, labels, tmp_path / "labels.jsonl") == signaalpoort.EXIT_REFUSED
    err = " ".join(capsys.readouterr().err.split())
    assert "row_invalid: line 2, column team" in err
    assert not (tmp_path / "labels.jsonl").exists()


def test_cli_without_a_pseudonym_key_exits_3(
    home: PartyHome, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = _write_labels(tmp_path / "labels.csv", [f"{BSN[0]},geregelde_betaling,"])
    out = tmp_path / "labels.jsonl"
    assert _cli_labels(home, labels, out) == signaalpoort.EXIT_CONFIG == 3
    assert "not_enrolled" in capsys.readouterr().err
    assert not out.exists()
