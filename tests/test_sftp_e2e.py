"""End to end over SFTP: a creditor's CSV export as one batch file, a team's inbox out.

The gateway serves its partner API (for the outreach key set) and its SFTP intake on
loopback ports and processes complete uploads as they arrive; the creditor runs
``signaalpoort send --via sftp``, which seals the export, uploads it under its temporary
name, waits for the receipt and verifies it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paramiko
import pytest

import adapters.sftp
import signaalpoort
from adapters.sftp import ADDRESS_PIN
from gateway.cli import BatchWatcher
from gateway.service import Gateway
from gateway.settings import Settings
from gateway.sftp import start_in_thread
from signaalpoort import DEMO_PARTIES, init_demo
from tests.test_rest_e2e import _cli, _serving


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


def test_an_export_sent_over_sftp_reaches_its_team_and_again_gives_duplicates(
    demo: Path, served: str, tmp_path: Path
) -> None:
    export = demo / "zorg" / "notices.csv"
    send = ("send", "--home", str(demo / "zorg"), str(export), "--via", "sftp")
    assert _cli(*send, "--gateway", served) == 0
    receipt = json.loads(export.with_name("notices.csv.receipt.json").read_text())
    assert receipt["counts"] == {"accepted": 4, "duplicate": 0, "refused": 0}
    assert len(receipt["receipts"]) == 1  # one batch file, one receipt

    out = tmp_path / "noord.jsonl"
    pull = ("inbox", "pull", "--gateway", served, "--out", str(out), "--home", str(demo / "noord"))
    assert _cli(*pull) == 0
    refs = sorted(json.loads(line)["ref"] for line in out.read_text().splitlines())
    assert refs == ["ZOR-2026-100", "ZOR-2026-101", "ZOR-2026-102", "ZOR-2026-103"]

    assert _cli(*send, "--gateway", served) == 0
    again = json.loads(export.with_name("notices.csv.receipt.json").read_text())
    assert again["counts"] == {"accepted": 0, "duplicate": 4, "refused": 0}


def test_send_over_sftp_exits_non_zero_when_lines_are_refused(demo: Path, served: str) -> None:
    export = demo / "huur" / "notices.csv"
    send = ("send", "--home", str(demo / "huur"), str(export), "--via", "sftp")
    assert _cli(*send, "--gateway", served) == 0
    # The same references with other amounts: notices under ids already used.
    export.write_text(export.read_text().replace("2026-11-01", "2026-11-02"))
    assert _cli(*send, "--gateway", served) == signaalpoort.EXIT_REFUSED
    receipt = json.loads(export.with_name("notices.csv.receipt.json").read_text())
    assert receipt["counts"]["refused"] == 4
    assert receipt["reasons"] == {"jti_reused": 4}


def test_a_connection_dropped_mid_upload_is_retried_and_delivered_once(
    demo: Path, served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = paramiko.SFTPFile.write
    calls = {"n": 0}

    def drop_once(self: paramiko.SFTPFile, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            self.sftp.sock.get_transport().close()  # the line goes dead mid-upload
            raise EOFError("connection lost")
        real(self, data)

    monkeypatch.setattr(adapters.sftp, "RETRY_PAUSE", 0.1)
    monkeypatch.setattr(paramiko.SFTPFile, "write", drop_once)
    export = demo / "energie" / "notices.csv"
    send = ("send", "--home", str(demo / "energie"), str(export), "--via", "sftp")
    assert _cli(*send, "--gateway", served) == 0
    receipt = json.loads(export.with_name("notices.csv.receipt.json").read_text())
    assert receipt["counts"] == {"accepted": 4, "duplicate": 0, "refused": 0}
    assert calls["n"] > 1
