"""End to end over real HTTPS with mutual TLS: CSV exports in, teams' inboxes out.

The municipality tokenises a BRP extract holding most of the exports' persons, in
districts of Noord and Zuid, and the gateway loads it. Creditors of several categories
then send a few hundred notices with ``signaalpoort send``; the gateway (uvicorn on a
loopback port) verifies, stores, matches and routes them. Each team pulls exactly the
signals of its district's residents, with contact details identical to the CSV; the
persons missing from the register reach no one; sending the same files again gives
only duplicates.
"""

from __future__ import annotations

import csv
import json
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn

import signaalpoort
from adapters.register import BRP_COLUMNS
from gateway.api import create_app
from gateway.service import Gateway, WorkerPool
from gateway.settings import Settings
from gateway.tls import server_config
from signaalpoort import DEMO_PARTIES, init_demo

ROWS_PER_CREDITOR = 60
NOT_IN_REGISTER = 10  # every tenth person of an export is not in the register
SURNAMES = [
    ("Jansen", ""), ("Vries", "de"), ("Bakker", ""), ("Berg", "van den"), ("Visser", ""),
    ("Smit", ""), ("Meijer", ""), ("Dijk", "van"), ("Mulder", ""), ("Boer", "de"),
    ("Yılmaz", ""), ("Çelik", ""), ("Hoek", "van der"), ("Brouwer", ""), ("Koç", ""),
]  # fmt: skip
STREETS = ["Kinkerstraat", "Javastraat", "Osdorpplein", "Meeuwenlaan", "Bijlmerdreef"]
CONTACT_COLUMNS = (
    "achternaam", "voorvoegsel", "voorletters", "geboortedatum", "straat", "huisnummer",
    "huisletter", "huisnummertoevoeging", "postcode", "woonplaats", "telefoon", "email",
    "klantnummer",
)  # fmt: skip


def _write_export(path: Path, category: str, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    with (path.parent / "notices.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        # What the demo's creditor attests for its category (the default policy).
        attested = {k: v for k, v in next(reader).items() if k.startswith("attest_")}
    rows = []
    for i in range(ROWS_PER_CREDITOR):
        # One address per person: postcode by creditor and person, house number by person.
        name, prefix = rng.choice(SURNAMES)
        rows.append(
            {
                **dict.fromkeys(header, ""),
                **attested,
                "ref": f"{category}-E2E-{i:04d}",
                "category": category,
                "achternaam": name,
                "voorvoegsel": prefix,
                "voorletters": rng.choice(["J.", "A.B.", "M.", "K.L."]),
                "geboortedatum": _birth_date(rng),
                "straat": rng.choice(STREETS),
                "huisnummer": str(i + 1),
                "huisletter": rng.choice(["", "", "A"]),
                "postcode": f"10{11 + seed}{rng.choice(['AB', 'KL', 'XZ'])}",
                "woonplaats": "Amsterdam",
                "telefoon": f"06{rng.randint(10000000, 99999999)}",
                "email": f"bewoner{seed}{i}@voorbeeld.nl",
                "bedrag": f"{rng.randint(100, 5000)}.{rng.randint(0, 99):02d}",
                "ontstaansdatum": "2026-08-01",
                "signaaldatum": "2026-11-01",
                "stage": rng.choice(["vroeg", "aanmaning", "dagvaarding"]),
                "klantnummer": f"K{seed}{i:05d}",
            }
        )
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def _write_brp(path: Path, rows: list[dict[str, str]]) -> dict[str, str]:
    """A BRP extract of the exports' persons, but every tenth; returns ref -> district."""
    districts: dict[str, str] = {}
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=BRP_COLUMNS)
        writer.writeheader()
        for n, row in enumerate(rows):
            if n % NOT_IN_REGISTER == 0:
                continue
            districts[row["ref"]] = ("N0", "K0")[n % 2] + str(n % 9 + 1)
            writer.writerow(
                {
                    **dict.fromkeys(BRP_COLUMNS, ""),
                    "bsn": _bsn(n),
                    "geslachtsnaam": row["achternaam"],
                    "voorvoegsel": row["voorvoegsel"],
                    "voornamen": {"J.": "Jan", "A.B.": "Anna Beatrix", "M.": "Mila"}.get(
                        row["voorletters"], "Karel Lodewijk"
                    ),
                    "geboortedatum": row["geboortedatum"],
                    "postcode": row["postcode"],
                    "huisnummer": row["huisnummer"],
                    "huisletter": row["huisletter"],
                    "woonplaats": "Amsterdam",
                    "gemeentecode": "0363",
                    "wijkcode": districts[row["ref"]],
                    "huishouden_id": f"H{n}",
                }
            )
    return districts


def _bsn(n: int) -> str:
    """A BSN passing the elfproef: eight digits from n, then the check digit."""
    while True:
        digits = f"{100_000_00 + n:08d}"
        total = sum(int(d) * w for d, w in zip(digits, range(9, 1, -1), strict=True))
        if total % 11 < 10:
            return digits + str(total % 11)
        n += 1_000_000


def _birth_date(rng: random.Random) -> str:
    return f"19{rng.randint(40, 99)}-0{rng.randint(1, 9)}-{rng.randint(10, 28)}"


@contextmanager
def _serving(demo: Path, *, workers: int = 1) -> Iterator[str]:
    """The gateway on a loopback port; with more than one worker, batches of notices are
    submitted in a pool of that many processes, as ``signaalpoort serve`` does."""
    gw = Gateway.open(Settings.load(demo / "gateway"))
    pool = WorkerPool(demo / "gateway", workers) if workers > 1 else None
    config = server_config(create_app(gw, pool=pool), gw.settings, host="127.0.0.1", port=0)
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
        if pool is not None:
            pool.close()
        gw.close()


@pytest.fixture
def demo(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    if not store_url.startswith("sqlite"):
        monkeypatch.setenv("SIGNAALPOORT_DATABASE_URL", store_url)
    init_demo(tmp_path / "demo", now=datetime.now(UTC) - timedelta(minutes=5))
    return tmp_path / "demo"


@pytest.fixture(params=[1, 2], ids=["one-process", "intake-pool"])
def served_demo(demo: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, str]]:
    with _serving(demo, workers=request.param) as url:
        yield demo, url


def _cli(*args: str) -> int:
    with pytest.raises(SystemExit) as done:
        signaalpoort.main(list(args))
    return int(done.value.code or 0)


def test_csv_exports_reach_exactly_the_routed_team_intact(
    served_demo: tuple[Path, str], tmp_path: Path
) -> None:
    demo, url = served_demo
    sent: dict[str, dict[str, str]] = {}
    files = []
    for seed, party in enumerate(p for p in DEMO_PARTIES if p.category):
        export = demo / party.home / "export.csv"
        for row in _write_export(export, party.category or "", seed):
            sent[row["ref"]] = row
        files.append((party.home, export))
    assert len(sent) >= 300

    districts = _write_brp(tmp_path / "brp.csv", list(sent.values()))
    register = tmp_path / "register.jsonl"
    municipality = ("--home", str(demo / "amsterdam"))
    assert (
        _cli(
            "register", "tokenise", str(tmp_path / "brp.csv"), "--out", str(register), *municipality
        )
        == 0
    )
    assert (
        _cli(
            "register", "load", str(register), "--home", str(demo / "gateway"),
            "--gemeente", "0363", "--by", signaalpoort.AMSTERDAM_OIN,
        )
        == 0
    )  # fmt: skip

    for home, export in files:
        assert _cli("send", "--home", str(demo / home), str(export), "--gateway", url) == 0
        receipt = json.loads(export.with_name("export.csv.receipt.json").read_text())
        # Whether the person was found is not the creditor's business: all accepted.
        assert receipt["counts"] == {"accepted": ROWS_PER_CREDITOR, "duplicate": 0, "refused": 0}

    args = ("inbox", "pull", "--gateway", url, "--out")
    pulled: dict[str, list[dict[str, Any]]] = {}
    for team in ("noord", "zuid", "backoffice"):
        out = tmp_path / f"{team}.jsonl"
        assert _cli(*args, str(out), "--home", str(demo / team)) == 0
        pulled[team] = [json.loads(line) for line in out.read_text().splitlines()]
    expected = {
        team: sorted(ref for ref, district in districts.items() if district.startswith(prefix))
        for team, prefix in (("noord", "N"), ("zuid", "K"))
    }
    assert {team: sorted(r["ref"] for r in pulled[team]) for team in expected} == expected
    assert pulled["backoffice"] == []
    oins = {p.home: p.oin for p in DEMO_PARTIES}
    for team in expected:
        for record in pulled[team]:
            row = sent[record["ref"]]
            assert {c: record.get(c, "") for c in CONTACT_COLUMNS} == {
                c: row[c] for c in CONTACT_COLUMNS
            }
            assert (record["category"], record["stage"], record["bedrag"]) == (
                row["category"],
                row["stage"],
                row["bedrag"],
            )
            assert record["routing"]["team"] == oins[team]
            assert record["routing"]["reason"] == "district"
            assert record["routing"]["district"] == districts[record["ref"]]
            assert record["routing"]["person"].startswith("p-")

    # A second pull finds nothing: every signal was acknowledged.
    again = tmp_path / "again.jsonl"
    for team in expected:
        assert _cli(*args, str(again), "--home", str(demo / team)) == 0
        assert again.read_text() == ""

    for home, export in files:
        assert _cli("send", "--home", str(demo / home), str(export), "--gateway", url) == 0
        receipt = json.loads(export.with_name("export.csv.receipt.json").read_text())
        assert receipt["counts"] == {"accepted": 0, "duplicate": ROWS_PER_CREDITOR, "refused": 0}


def test_send_exits_non_zero_and_names_the_reason_when_notices_are_refused(
    served_demo: tuple[Path, str],
) -> None:
    demo, url = served_demo
    export = demo / "huur" / "export.csv"
    _write_export(export, "HUUR", 7)
    assert _cli("send", "--home", str(demo / "huur"), str(export), "--gateway", url) == 0
    # Same references, other amounts: a changed notice under an id already used.
    text = export.read_text().replace("2026-11-01", "2026-11-02")
    export.write_text(text)
    assert (
        _cli("send", "--home", str(demo / "huur"), str(export), "--gateway", url)
        == signaalpoort.EXIT_REFUSED
    )
    receipt = json.loads(export.with_name("export.csv.receipt.json").read_text())
    assert receipt["reasons"] == {"jti_reused": ROWS_PER_CREDITOR}


def test_send_follows_the_gateway_when_it_has_rotated_its_keys(demo: Path) -> None:
    gateway, creditor = str(demo / "gateway"), str(demo / "drinkwater")
    assert _cli("keys", "rotate", "--use", "sig", "--home", gateway) == 0
    assert _cli("keys", "rotate", "--use", "enc", "--home", gateway) == 0
    export = demo / "drinkwater" / "notices.csv"
    with _serving(demo) as url:
        assert _cli("send", "--home", creditor, str(export), "--gateway", url) == 0
    pinned = json.loads((demo / "drinkwater" / "pins" / "gateway.jwks.json").read_text())
    published = json.loads((demo / "gateway" / "keys" / "keyring.json").read_text())
    assert {k["kid"] for k in pinned["keys"]} == {e["jwk"]["kid"] for e in published["keys"]}
