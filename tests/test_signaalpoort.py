"""The demo end to end, and the custody table of DESIGN.md ("Parties").

After the demo's self-check the gateway's home and database must hold none of the
input's names, BSNs, phone numbers, e-mail addresses or customer numbers, no linkage
secret and no private key of any other party.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

import signaalpoort
from adapters.creditor import notice_jti
from signaalpoort import DEMO_PARTIES, init_demo, self_check

# An hour ago: the command-line tests below run on the real clock.
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
PERSONAL_COLUMNS = ("achternaam", "straat", "telefoon", "email", "bsn", "klantnummer")
# Shorter values ("Bos") turn up by chance in megabytes of ciphertext; six bytes do not.
MIN_SEARCHED = 6


@pytest.fixture
def demo(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    if not store_url.startswith("sqlite"):
        monkeypatch.setenv("SIGNAALPOORT_DATABASE_URL", store_url)
    directory = tmp_path / "demo"
    init_demo(directory, now=NOW)
    return directory


def test_self_check_delivers_every_matched_demo_notice_intact_to_its_team(demo: Path) -> None:
    result = self_check(demo, now=NOW)
    rows = sum(len(_rows(demo / p.home / "notices.csv")) for p in DEMO_PARTIES if p.category)
    assert (result.accepted, result.refused, result.duplicate) == (rows, 0, 0)
    # adapters/demo/README.md: one person not in the register, one deceased, one moved out.
    assert result.closed == 3
    assert result.delivered == result.matching == rows - 3
    assert result.teams == {"noord": 13, "zuid": 4, "backoffice": 0}


def _expected_outcomes() -> dict[str, str]:
    """ref -> "noord", "zuid", or a closing outcome, from the demo's README table."""
    readme = Path(signaalpoort.__file__).parent / "adapters" / "demo" / "README.md"
    expected = {}
    for line in readme.read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 4 and cells[0][:3] in ("DRI", "EIN", "ENE", "HUU", "ZOR"):
            outcome = cells[3].split()[0]
            expected[cells[0]] = cells[3].split()[2] if outcome == "matched" else outcome
    expected = {ref: "noord" if team == "default" else team for ref, team in expected.items()}
    return expected


def test_every_demo_notice_is_matched_routed_or_closed_as_the_demo_readme_says(
    demo: Path, store_url: str
) -> None:
    self_check(demo, now=NOW)
    oins = {p.oin: p.home for p in DEMO_PARTIES}
    jtis = {
        notice_jti(p.oin, row["ref"]): row["ref"]
        for p in DEMO_PARTIES
        if p.category
        for row in _rows(demo / p.home / "notices.csv")
    }
    url = (
        store_url
        if not store_url.startswith("sqlite")
        else f"sqlite:///{demo / 'gateway' / 'gateway.db'}"
    )
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT n.jti, n.status, n.outcome, d.recipient_oin FROM notices n "
                    "LEFT JOIN deliveries d ON d.notice_id = n.id"
                )
            ).all()
    finally:
        engine.dispose()
    seen = {}
    for jti, status, outcome, recipient in rows:
        if status == "closed":
            assert recipient is None
            seen[jtis[jti]] = outcome
        else:
            assert (status, outcome) == ("routed", "matched")
            seen[jtis[jti]] = oins[recipient]
    assert seen == _expected_outcomes()
    assert len(seen) == 20


def test_running_the_self_check_again_gives_only_duplicates(demo: Path) -> None:
    self_check(demo, now=NOW)
    again = self_check(demo, now=NOW)
    assert again.accepted == 0 and again.refused == 0
    assert again.duplicate > 0
    assert again.delivered == 0


def test_gateway_holds_no_personal_data_linkage_secret_or_foreign_private_key(
    demo: Path, store_url: str
) -> None:
    self_check(demo, now=NOW)
    held = _gateway_bytes(demo, store_url)
    forbidden = _personal_values(demo) + _secrets_of_others(demo)
    assert len(forbidden) > 50
    leaked = [label for label, value in forbidden if value in held]
    assert leaked == []


def test_every_party_home_is_private_to_its_owner(demo: Path) -> None:
    for party in DEMO_PARTIES:
        home = demo / party.home
        assert home.stat().st_mode & 0o077 == 0
        assert (home / "keys" / "keyring.json").stat().st_mode & 0o777 == 0o600


def test_command_line_runs_init_and_selfcheck(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SIGNAALPOORT_DATABASE_URL", raising=False)
    with pytest.raises(SystemExit) as init:
        signaalpoort.main(["init", "--demo", str(tmp_path / "d")])
    assert init.value.code == 0
    with pytest.raises(SystemExit) as check:
        signaalpoort.main(["selfcheck", "--demo", str(tmp_path / "d")])
    assert check.value.code == 0
    with pytest.raises(SystemExit) as again:
        signaalpoort.main(["init", "--demo", str(tmp_path / "d")])
    assert again.value.code == signaalpoort.EXIT_USAGE


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _personal_values(demo: Path) -> list[tuple[str, bytes]]:
    values: list[tuple[str, bytes]] = []
    for party in DEMO_PARTIES:
        if not party.category:
            continue
        for row in _rows(demo / party.home / "notices.csv"):
            for column in PERSONAL_COLUMNS:
                value = row[column].strip()
                if len(value.encode()) >= MIN_SEARCHED:
                    values.append((f"{party.home}:{column}", value.encode()))
                    values.append((f"{party.home}:{column}:lower", value.lower().encode()))
    return values


def _secrets_of_others(demo: Path) -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    linkage = json.loads((demo / "amsterdam" / "secrets" / "linkage.json").read_text())
    secret = linkage["secret"]
    found.append(("linkage secret", secret.encode()))
    found.append(
        ("linkage secret raw", base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4)))
    )
    for party in DEMO_PARTIES:
        if party.role == "gateway":
            continue
        ring = json.loads((demo / party.home / "keys" / "keyring.json").read_text())
        for entry in ring["keys"]:
            d = entry["jwk"]["d"]
            found.append((f"{party.home} private key", d.encode()))
            found.append((f"{party.home} private key raw", base64.urlsafe_b64decode(d + "==")))
    return found


def _gateway_bytes(demo: Path, store_url: str) -> bytes:
    held = b"".join(p.read_bytes() for p in sorted((demo / "gateway").rglob("*")) if p.is_file())
    if store_url.startswith("sqlite"):
        return held
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            for table in inspect(conn).get_table_names():
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608 (table names from the catalogue)
                    held += repr(tuple(row)).encode()
    finally:
        engine.dispose()
    return held


def _run(*args: str) -> int:
    with pytest.raises(SystemExit) as done:
        signaalpoort.main(list(args))
    return int(done.value.code or 0)


def test_rotated_creditor_key_is_refused_until_the_gateway_imports_it(
    demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    creditor, gateway = str(demo / "zorg"), str(demo / "gateway")
    assert _run("keys", "rotate", "--use", "sig", "--home", creditor) == 0
    ring = json.loads((demo / "zorg" / "keys" / "keyring.json").read_text())
    old, new = ring["keys"][0], ring["keys"][-1]
    assert old["retires"] is not None and new["jwk"]["use"] == "sig"
    before = self_check(demo, now=datetime.now(UTC))
    assert before.refused == 4  # the new key signs; the gateway does not know it yet

    capsys.readouterr()
    assert _run("keys", "export", "--home", creditor) == 0
    published = tmp_path / "zorg.jwks.json"
    published.write_text(capsys.readouterr().out)
    assert _run("keys", "import", str(published), "--partner", ZORG_OIN, "--home", gateway) == 0
    for ledger in (demo / "zorg" / "outbox").glob("*.json"):
        ledger.unlink()  # the refused notices are signed again, now with a known key
    after = self_check(demo, now=datetime.now(UTC))
    assert after.refused == 0


def test_a_partner_key_revoked_at_the_gateway_is_refused_at_once(demo: Path) -> None:
    gateway = str(demo / "gateway")
    ring = json.loads((demo / "zorg" / "keys" / "keyring.json").read_text())
    kid = next(e["jwk"]["kid"] for e in ring["keys"] if e["jwk"]["use"] == "sig")
    # "--" ends the options: a kid is base64url and may start with "-".
    assert _run("keys", "revoke", "--partner", "--home", gateway, "--", kid) == 0
    result = self_check(demo, now=datetime.now(UTC))
    assert result.refused == 4
    again = _run("keys", "revoke", "--partner", "--home", gateway, "--", kid)
    assert again == signaalpoort.EXIT_CONFIG


def test_audit_log_verifies_after_a_signed_checkpoint(demo: Path) -> None:
    self_check(demo, now=NOW)
    gateway = str(demo / "gateway")
    assert _run("audit", "checkpoint", "--home", gateway) == 0
    assert _run("audit", "verify", "--home", gateway) == 0


ZORG_OIN = next(p.oin for p in DEMO_PARTIES if p.home == "zorg")


def test_the_home_on_the_command_line_wins_over_the_environment(
    demo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SIGNAALPOORT_HOME", str(tmp_path / "elsewhere"))
    settings = signaalpoort.Settings.load(demo / "gateway")
    assert settings.home == demo / "gateway"


def test_the_gateway_reloads_the_municipalitys_register_with_its_labels(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    amsterdam = demo / "amsterdam"
    args = ["--home", str(demo / "gateway"), "--gemeente", "0363"]
    args += ["--by", signaalpoort.AMSTERDAM_OIN, "--labels", str(amsterdam / "labels.jsonl")]
    assert _run("register", "load", str(amsterdam / "register.jsonl"), *args) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "register 0363 version 2 loaded: 19 persons" in out
    assert "2 with labels (0 labels for persons not in it dropped)" in out


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue  # the process ended meanwhile
    return found


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie that nobody reaped has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _gone(pids: set[int]) -> bool:
    deadline = time.time() + 10
    while any(_alive(pid) for pid in pids) and time.time() < deadline:
        time.sleep(0.1)
    return not any(_alive(pid) for pid in pids)


def _serve(demo: Path) -> tuple[subprocess.Popen[str], int]:
    """``signaalpoort serve`` with two intake processes, once it accepts connections."""
    server = subprocess.Popen(  # noqa: S603 (our own command)
        [sys.executable, "-m", "signaalpoort", "serve", "--home", str(demo / "gateway"),
         "--port", "0", "--workers", "2"],
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "SIGNAALPOORT_SFTP_PORT": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        listening = re.search(r"https://[^:]+:(\d+)", server.stdout.readline())
        assert listening is not None
        port = int(listening.group(1))
        deadline = time.time() + 60
        while not _accepts(port):  # the port is bound before the server starts serving
            assert time.time() < deadline, "the gateway did not start"
            time.sleep(0.1)
    except BaseException:
        server.kill()
        server.wait()
        raise
    return server, port


on_linux = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process tree")


@on_linux
def test_serve_with_several_workers_takes_batches_and_leaves_no_process_behind(
    demo: Path,
) -> None:
    server, port = _serve(demo)
    try:
        pool = _children(server.pid)
        assert len(pool) >= 2  # the intake processes (and multiprocessing's tracker)
        export = demo / "zorg" / "notices.csv"
        url = f"https://localhost:{port}"
        assert _run("send", "--home", str(demo / "zorg"), str(export), "--gateway", url) == 0
        receipt = json.loads(export.with_name("notices.csv.receipt.json").read_text())
        assert receipt["counts"] == {"accepted": len(_rows(export)), "duplicate": 0, "refused": 0}
    finally:
        server.terminate()
        code = server.wait(timeout=60)
    # Shut down cleanly; uvicorn then ends by the signal it caught.
    assert code in (0, -signal.SIGTERM)
    assert _gone(pool)


@on_linux
def test_the_intake_processes_end_with_a_serve_that_was_killed(demo: Path) -> None:
    server, _ = _serve(demo)
    pool = _children(server.pid)
    assert len(pool) >= 2
    server.kill()
    server.wait(timeout=60)
    assert _gone(pool)
