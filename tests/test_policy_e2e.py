"""The policy end to end, through REST and SFTP alike: the same export gives the same
receipt codes over both intakes; a refusal names only what the creditor sent; the
person's own decisions (objection, moved out) leave the receipt at ``accepted``.

The municipality records an objection with ``signaalpoort objection add`` from its BRP
extract and the gateway registers it with ``objection load``; partnerships are ended
and registered again with ``signaalpoort partner``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import signaalpoort
from adapters.sftp import ADDRESS_PIN
from gateway.cli import BatchWatcher
from gateway.partnerships import list_partnerships
from gateway.service import Gateway
from gateway.settings import Settings
from gateway.sftp import start_in_thread
from signaalpoort import DEMO_PARTIES, GEMEENTE, init_demo
from tests.test_rest_e2e import _cli, _serving

BRP = Path(__file__).resolve().parents[1] / "adapters" / "demo" / "brp.csv"
PERSON_WORDS = ("objection", "moved_out", "not_resident", "deceased", "review", "matched")


@pytest.fixture
def demo(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    if not store_url.startswith("sqlite"):
        monkeypatch.setenv("SIGNAALPOORT_DATABASE_URL", store_url)
    monkeypatch.setenv("SIGNAALPOORT_BATCH_WORKERS", "1")
    monkeypatch.setenv("SIGNAALPOORT_BATCH_INTERVAL_SECONDS", "0.2")
    init_demo(tmp_path / "demo", now=datetime.now(UTC) - timedelta(minutes=5))
    return tmp_path / "demo"


@pytest.fixture
def served(demo: Path) -> Iterator[str]:
    settings = Settings.load(demo / "gateway")
    gw = Gateway.open(settings)
    sftp = start_in_thread(gw, host="127.0.0.1", port=0)
    watcher = BatchWatcher(settings)
    for party in DEMO_PARTIES:
        if party.category:
            (demo / party.home / "pins" / ADDRESS_PIN).write_text(f"127.0.0.1:{sftp.port}\n")
    try:
        with _serving(demo) as url:
            yield url
    finally:
        watcher.stop()
        sftp.stop()
        gw.close()


def _export(demo: Path, path: Path, suffix: str) -> dict[str, str]:
    """The huur demo export, changed: one row without a reminder, one whose tenant
    refused the hand-over; returns ref -> the reason expected in the receipt."""
    with (demo / "huur" / "notices.csv").open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    # 100 Öztürk: valid; 101 van den Berg: objected; 102 de Jong: moved out.
    rows[3]["attest_schriftelijkeHerinnering"] = ""  # 103 El Amrani: no written reminder
    refused = {**rows[0], "ref": "HUU-2026-104", "attest_geenBezwaarDoorgifte": "nee"}
    rows.append(refused)
    for row in rows:
        row["ref"] += suffix
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return {
        f"HUU-2026-100{suffix}": "accepted",
        f"HUU-2026-101{suffix}": "accepted",
        f"HUU-2026-102{suffix}": "accepted",
        f"HUU-2026-103{suffix}": "precondition_missing:huur.schriftelijkeHerinnering",
        f"HUU-2026-104{suffix}": "precondition_missing:huur.geenBezwaarDoorgifte",
    }


def _receipt_items(export: Path) -> tuple[dict[str, int], dict[str, int], list[str]]:
    doc = json.loads(export.with_name(export.name + ".receipt.json").read_text())
    return doc["counts"], doc["reasons"], doc["receipts"]


def _send(demo: Path, export: Path, url: str, via: str) -> int:
    return _cli("send", "--home", str(demo / "huur"), str(export), "--gateway", url, "--via", via)


def test_the_same_decisions_over_rest_and_sftp_and_no_person_in_a_receipt(
    demo: Path, served: str, tmp_path: Path
) -> None:
    objection = tmp_path / "bezwaar.json"
    bsn = next(line.split(",")[0] for line in BRP.read_text().splitlines() if ",Berg," in line)
    assert (
        _cli(
            "objection", "add", "--home", str(demo / "amsterdam"), "--ref", "BZW-1",
            "--bsn", bsn, "--brp", str(BRP), "--out", str(objection),
        )
        == 0
    )  # fmt: skip
    written = objection.read_text()
    assert bsn not in written and "Berg" not in written and json.loads(written)["person"]
    assert _cli("objection", "load", str(objection), "--home", str(demo / "gateway")) == 0

    answers = {}
    for via, suffix in (("rest", "-R"), ("sftp", "-S")):
        export = tmp_path / f"huur{suffix}.csv"
        expected = _export(demo, export, suffix)
        assert _send(demo, export, served, via) == signaalpoort.EXIT_REFUSED
        counts, reasons, receipts = _receipt_items(export)
        assert counts == {"accepted": 3, "duplicate": 0, "refused": 2}
        assert reasons == {
            "precondition_missing:huur.schriftelijkeHerinnering": 1,
            "precondition_missing:huur.geenBezwaarDoorgifte": 1,
        }
        answers[via] = sorted(expected.values())
        for signed in receipts:
            payload = _payload(signed)
            assert not any(word in payload for word in PERSON_WORDS)

    assert answers["rest"] == answers["sftp"]
    out = tmp_path / "noord.jsonl"
    pull = ("inbox", "pull", "--gateway", served, "--out", str(out))
    assert _cli(*pull, "--home", str(demo / "noord")) == 0
    refs = sorted(json.loads(line)["ref"] for line in out.read_text().splitlines())
    # Öztürk only: van den Berg objected, de Jong moved out, the others were refused.
    assert refs == ["HUU-2026-100-R", "HUU-2026-100-S"]


def test_an_ended_partnership_refuses_over_both_intakes_until_registered_again(
    demo: Path, served: str, tmp_path: Path
) -> None:
    gateway = ("--home", str(demo / "gateway"))
    huur = next(p for p in DEMO_PARTIES if p.home == "huur")
    gw = Gateway.open(Settings.load(demo / "gateway"))
    try:
        with gw.engine.connect() as conn:
            (number,) = [
                r.partnership.id
                for r in list_partnerships(conn, gemeente=GEMEENTE)
                if r.partnership.creditor == huur.oin
            ]
    finally:
        gw.close()
    assert _cli("partner", "end", str(number), *gateway, "--gemeente", GEMEENTE) == 0
    for via, suffix in (("rest", "-R"), ("sftp", "-S")):
        export = tmp_path / f"huur{suffix}.csv"
        _export(demo, export, suffix)
        assert _send(demo, export, served, via) == signaalpoort.EXIT_REFUSED
        counts, reasons, _ = _receipt_items(export)
        assert reasons == {"partnership_missing": 5}
    today = datetime.now(UTC).date().isoformat()
    assert (
        _cli(
            "partner", "add", *gateway, "--gemeente", GEMEENTE, "--creditor", huur.oin,
            "--categories", "HUUR", "--from", today,
        )
        == 0
    )  # fmt: skip
    export = tmp_path / "huur-again.csv"
    _export(demo, export, "-A")
    assert _send(demo, export, served, "rest") == signaalpoort.EXIT_REFUSED
    counts, reasons, _ = _receipt_items(export)
    assert counts["accepted"] == 3 and "partnership_missing" not in reasons


def _payload(signed: str) -> str:
    import base64

    part = signed.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()
