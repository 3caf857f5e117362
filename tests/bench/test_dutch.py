"""The synthetic Dutch data generator: determinism, formats and the error model."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from bench.dutch import Dataset, elfproef, generate, strip_diacritics, write

PERSONS, NOTICES, SEED = 4_000, 1_500, 7

BRP_HEADER = (
    "bsn,geslachtsnaam,voorvoegsel,voornamen,naamgebruik,partner_geslachtsnaam,"
    "partner_voorvoegsel,geboortedatum,postcode,huisnummer,huisletter,huisnummertoevoeging,"
    "woonplaats,gemeentecode,wijkcode,huishouden_id,datum_overlijden,datum_vertrek"
)
NOTICES_HEADER = (
    "ref,category,achternaam,voorvoegsel,voorletters,geboortedatum,straat,huisnummer,"
    "huisletter,huisnummertoevoeging,postcode,woonplaats,telefoon,email,bedrag,"
    "ontstaansdatum,signaaldatum,bsn,stage,stage_date,klantnummer,voornamen"
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dutch")
    write(generate(PERSONS, NOTICES, SEED), out)
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def brp(files: Path) -> dict[str, dict[str, str]]:
    return {r["bsn"]: r for r in _rows(files / "brp.csv")}


@pytest.fixture(scope="module")
def joined(files: Path, brp: dict[str, dict[str, str]]) -> list[tuple[dict, dict | None]]:
    truth = {r["ref"]: r["bsn"] for r in _rows(files / "truth.csv")}
    return [(n, brp.get(truth[n["ref"]])) for n in _rows(files / "notices.csv")]


def _postcode(text: str) -> str:
    return text.replace(" ", "").upper()


def test_same_seed_gives_identical_files(files: Path, tmp_path: Path) -> None:
    write(generate(PERSONS, NOTICES, SEED), tmp_path)
    for name in ("brp.csv", "notices.csv", "truth.csv"):
        assert (tmp_path / name).read_bytes() == (files / name).read_bytes()


def test_other_seed_differs(files: Path, tmp_path: Path) -> None:
    write(generate(PERSONS, NOTICES, SEED + 1), tmp_path)
    assert (tmp_path / "brp.csv").read_bytes() != (files / "brp.csv").read_bytes()


def test_headers_are_exact(files: Path) -> None:
    def first(name: str) -> str:
        return (files / name).read_text(encoding="utf-8").split("\n", 1)[0]

    assert first("brp.csv") == BRP_HEADER
    assert first("notices.csv") == NOTICES_HEADER
    assert first("truth.csv") == "ref,bsn"


def test_bsns_pass_the_elfproef_and_are_unique(files: Path) -> None:
    bsns = [r["bsn"] for r in _rows(files / "brp.csv")]
    assert len(bsns) == PERSONS
    assert len(set(bsns)) == PERSONS
    assert all(elfproef(b) for b in bsns)
    assert elfproef("111222333") and not elfproef("111222334") and not elfproef("000000000")


def test_register_shape(brp: dict[str, dict[str, str]]) -> None:
    rows = list(brp.values())
    assert {r["gemeentecode"] for r in rows} == {"0363"}
    assert all(1011 <= int(r["postcode"][:4]) <= 1109 and r["postcode"][4:].isalpha()
               for r in rows)  # fmt: skip
    assert all(len(r["wijkcode"]) == 3 and r["wijkcode"][0].isupper() for r in rows)
    sizes: dict[str, int] = {}
    for r in rows:
        sizes[r["huishouden_id"]] = sizes.get(r["huishouden_id"], 0) + 1
    assert set(sizes.values()) <= {1, 2, 3, 4, 5} and max(sizes.values()) >= 4
    assert {"E", "P", "V", "N"} <= {r["naamgebruik"] for r in rows}
    assert any(r["voorvoegsel"] == "van der" for r in rows)
    assert any(not r["geslachtsnaam"].isascii() for r in rows)
    deceased = sum(1 for r in rows if r["datum_overlijden"]) / len(rows)
    departed = sum(1 for r in rows if r["datum_vertrek"]) / len(rows)
    assert 0.002 < deceased < 0.03 and 0.008 < departed < 0.04


def test_about_a_quarter_not_in_register(files: Path, brp: dict[str, dict[str, str]]) -> None:
    truth = _rows(files / "truth.csv")
    assert len(truth) == NOTICES
    assert len({r["ref"] for r in truth}) == NOTICES
    empty = sum(1 for r in truth if not r["bsn"]) / len(truth)
    assert 0.2 < empty < 0.3
    assert all(r["bsn"] in brp for r in truth if r["bsn"])


def test_notice_fields(joined: list[tuple[dict, dict | None]]) -> None:
    notices = [n for n, _ in joined]
    assert notices[0]["ref"] == "N-000001"
    zorg = sum(1 for n in notices if n["category"] == "ZORG") / len(notices)
    assert 0.42 < zorg < 0.62
    assert {n["category"] for n in notices} == {
        "ZORG", "HUUR", "ENERGIE", "DRINKWATER", "EINDELEVERING"
    }  # fmt: skip
    for n in notices:
        assert n["voorletters"] and n["voorletters"].endswith(".")
        assert n["signaaldatum"].startswith("2026-") and n["ontstaansdatum"].startswith("2026-")
        assert n["ontstaansdatum"] <= n["signaaldatum"]
        whole, cents = n["bedrag"].split(".")
        assert whole.isdigit() and len(cents) == 2
        assert n["bsn"] == "" or elfproef(n["bsn"])
    assert any(n["bsn"] for n in notices if n["category"] == "ZORG")
    assert not any(n["bsn"] for n in notices if n["category"] != "ZORG")


def test_some_notices_use_the_partners_surname(joined: list[tuple[dict, dict | None]]) -> None:
    assert any(
        p and p["naamgebruik"] == "P" and n["achternaam"] == p["partner_geslachtsnaam"]
        for n, p in joined
    )
    assert any(p and p["naamgebruik"] in "VN" and "-" in n["achternaam"] for n, p in joined)


def test_some_names_lost_their_diacritics(joined: list[tuple[dict, dict | None]]) -> None:
    assert strip_diacritics("Çelik Öztürk Yılmaz Brontë") == "Celik Ozturk Yilmaz Bronte"
    assert any(
        p and not p["geslachtsnaam"].isascii()
        and n["achternaam"] == strip_diacritics(p["geslachtsnaam"])
        for n, p in joined
    )  # fmt: skip


def test_initials_only_and_some_first_only(joined: list[tuple[dict, dict | None]]) -> None:
    full = only_first = 0
    for n, p in joined:
        if p and len(p["voornamen"].split()) > 1:
            full += len(n["voorletters"]) > 2
            only_first += len(n["voorletters"]) == 2
    assert full and only_first


def test_relatives_at_a_residents_address(
    joined: list[tuple[dict, dict | None]], brp: dict[str, dict[str, str]]
) -> None:
    at = {(r["geslachtsnaam"], r["postcode"], r["huisnummer"]): r for r in brp.values()}
    relatives = [
        n for n, p in joined
        if p is None and (n["achternaam"], _postcode(n["postcode"]), n["huisnummer"]) in at
    ]  # fmt: skip
    assert len(relatives) >= 5
    for n in relatives:
        resident = at[(n["achternaam"], _postcode(n["postcode"]), n["huisnummer"])]
        assert n["geboortedatum"] != resident["geboortedatum"]


def test_error_tags_are_recorded() -> None:
    data: Dataset = generate(PERSONS, NOTICES, SEED)
    tags = {t for ts in data.notice_errors for t in ts}
    assert {"voorvoegsel_glued", "voorvoegsel_dropped", "diacritics_lost", "name_in_use",
            "birth_date_missing", "relative_at_address", "old_address"} <= tags  # fmt: skip


def test_command_line(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[2] / "bench" / "dutch.py"
    done = subprocess.run(
        [sys.executable, str(script), "--persons", "300", "--notices", "50", "--seed", "1",
         "--out", str(tmp_path)],  # fmt: skip
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert '"persons": 300' in done.stdout and '"notices": 50' in done.stdout
    assert {p.name for p in tmp_path.iterdir()} == {"brp.csv", "notices.csv", "truth.csv"}
