"""The embedded SFTP intake: a real server on loopback, real paramiko and OpenSSH clients."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import paramiko
import pytest
from sqlalchemy import Engine, select

from gateway import dropbox
from gateway.clock import SystemClock
from gateway.errors import PartnerUnknown, SSHKeyInUse
from gateway.service import Gateway
from gateway.settings import Settings
from gateway.sftp import MAX_REFUSALS, SFTPIntake, SFTPServerThread, _parse, start_in_thread
from gateway.store.auditlog import AuditLog
from gateway.store.engine import make_engine
from gateway.store.schema import audit_events
from keys.home import PartyHome
from keys.jwk import OIN
from keys.ssh import (
    HOST_KEY_FILE,
    HOST_KEY_PIN,
    IDENTITY_FILE,
    SSHPublicKey,
    create_identity,
    known_hosts_line,
    load_or_create_host_key,
    read_public,
)

GATEWAY = "00000001002564440010"
CREDITOR = "00000003900000010000"
OTHER = "00000003900000020000"
TEAM = "00000001002564440001"
LIMIT = 256 * 1024
NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
SECRET_LINE = b'{"envelope": "not-a-real-envelope-but-file-content-all-the-same"}\n'


@dataclass
class Rig:
    """A running SFTP intake with two creditors, and where their keys are."""

    gw: Gateway
    home: Path
    port: int
    host_key: SSHPublicKey
    keys: dict[str, Path]
    tmp: Path

    def connect(self, user: str = CREDITOR, key: str = CREDITOR) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        blob = self.host_key.blob
        client.get_host_keys().add(
            f"[127.0.0.1]:{self.port}", "ssh-ed25519", paramiko.Ed25519Key(data=blob)
        )
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                "127.0.0.1",
                port=self.port,
                username=user,
                pkey=paramiko.Ed25519Key.from_private_key_file(str(self.keys[key])),
                look_for_keys=False,
                allow_agent=False,
                timeout=10,
                banner_timeout=10,
                auth_timeout=10,
            )
        except BaseException:
            client.close()
            raise
        return client

    def inbox(self, oin: str = CREDITOR) -> list[str]:
        return sorted(p.name for p in dropbox.inbox_dir(self.home, oin).iterdir())

    def events(self, action: str | None = None) -> list[dict[str, Any]]:
        with self.gw.engine.connect() as conn:
            rows = conn.execute(select(audit_events.c.data).order_by(audit_events.c.position))
            found = [json.loads(bytes(r.data)) for r in rows]
        return [e for e in found if action is None or e["action"] == action]

    def wait_for(self, action: str, result: str, count: int = 1) -> list[dict[str, Any]]:
        """The events of ``action`` with ``result``, once ``count`` of them are written."""
        deadline = time.monotonic() + 10
        while True:
            found = [e for e in self.events(action) if e["result"] == result]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)


@contextmanager
def running(engine: Engine, tmp_path: Path) -> Iterator[Rig]:
    """Two creditors and a team with their SSH keys, and the intake on a free port."""
    home = tmp_path / "gateway"
    home.mkdir()
    settings = Settings(home=home, gateway_id=GATEWAY, sftp_max_file_bytes=LIMIT)
    gw = Gateway(
        settings=settings,
        engine=engine,
        keyring=cast(Any, None),
        cipher=cast(Any, None),
        audit=AuditLog(),
        clock=SystemClock(),
    )
    keys: dict[str, Path] = {}
    with engine.begin() as conn:
        for oin, role in ((CREDITOR, "creditor"), (OTHER, "creditor"), (TEAM, "team")):
            gw.directory.add_partner(conn, oin=OIN(oin), name=oin, role=role, now=NOW)
        for name, owner in ((CREDITOR, CREDITOR), (OTHER, OTHER), ("revoked", CREDITOR)):
            public = create_identity(tmp_path / name)
            keys[name] = tmp_path / name / IDENTITY_FILE
            gw.directory.add_ssh_key(conn, oin=owner, key=public, now=NOW)
        keys["stranger"] = tmp_path / "stranger" / IDENTITY_FILE
        create_identity(tmp_path / "stranger")
    for oin in (CREDITOR, OTHER):
        dropbox.ensure_dropbox(home, oin)
    private, host_public = load_or_create_host_key(home)
    server = SFTPServerThread(SFTPIntake(gw, host_key=private), "127.0.0.1", 0)
    port = server.start()
    try:
        yield Rig(gw, home, port, host_public, keys, tmp_path)
    finally:
        server.stop()


@pytest.fixture
def rig(engine: Engine, tmp_path: Path) -> Iterator[Rig]:
    """The intake on each store backend (for what the store decides or records)."""
    with running(engine, tmp_path) as started:
        yield started


@pytest.fixture
def local_rig(sqlite_template: Path, tmp_path: Path) -> Iterator[Rig]:
    """The intake on SQLite only, for the file-system rules (they do not depend on the store)."""
    copy = tmp_path / "store.db"
    source, target = sqlite3.connect(sqlite_template), sqlite3.connect(copy)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    engine = make_engine(f"sqlite:///{copy}")
    try:
        with running(engine, tmp_path) as started:
            yield started
    finally:
        engine.dispose()


def open_sftp(rig: Rig) -> Iterator[paramiko.SFTPClient]:
    client = rig.connect()
    try:
        yield client.open_sftp()
    finally:
        client.close()


@pytest.fixture
def sftp(rig: Rig) -> Iterator[paramiko.SFTPClient]:
    yield from open_sftp(rig)


@pytest.fixture
def local_sftp(local_rig: Rig) -> Iterator[paramiko.SFTPClient]:
    yield from open_sftp(local_rig)


def upload(sftp: paramiko.SFTPClient, name: str, data: bytes) -> None:
    """Upload as the convention says: under ``.NAME.part``, then rename."""
    part = f"/inbox/{dropbox.temporary_name(name)}"
    sftp.putfo(io.BytesIO(data), part)
    sftp.rename(part, f"/inbox/{name}")


# -- uploads and receipts ------------------------------------------------------------


def test_an_upload_under_the_temporary_name_lands_complete_in_the_inbox(
    rig: Rig, sftp: paramiko.SFTPClient
) -> None:
    upload(sftp, "2026-11.jsonl", SECRET_LINE * 3)
    assert rig.inbox() == ["2026-11.jsonl"]
    complete = dropbox.complete_uploads(rig.home, CREDITOR)
    assert [p.name for p in complete] == ["2026-11.jsonl"]
    assert complete[0].read_bytes() == SECRET_LINE * 3
    assert sorted(sftp.listdir("/")) == ["inbox", "receipts"]
    assert sftp.listdir("/inbox") == ["2026-11.jsonl"]
    [event] = rig.wait_for("sftp.upload", "completed")
    assert event["organisation"] == CREDITOR
    assert event["object"] == "2026-11.jsonl"
    assert event["size"] == str(len(SECRET_LINE) * 3)


def test_the_creditor_downloads_its_receipt(
    local_rig: Rig, local_sftp: paramiko.SFTPClient
) -> None:
    receipt = dropbox.receipt_path(local_rig.home, CREDITOR, "2026-11.jsonl")
    receipt.write_bytes(b"eyJhbGciOiJFUzI1NiJ9.e30.c2ln")
    assert local_sftp.listdir("receipts") == ["2026-11.jsonl.receipt.jws"]
    with local_sftp.open("/receipts/2026-11.jsonl.receipt.jws") as fh:
        assert fh.read() == b"eyJhbGciOiJFUzI1NiJ9.e30.c2ln"


@pytest.mark.skipif(shutil.which("sftp") is None, reason="needs the OpenSSH sftp client")
def test_the_openssh_sftp_client_uploads_in_batch_mode_with_the_pinned_host_key(
    rig: Rig,
) -> None:
    local = rig.tmp / "batch.jsonl"
    local.write_bytes(SECRET_LINE)
    receipt = dropbox.receipt_path(rig.home, CREDITOR, "old.jsonl")
    receipt.write_bytes(b"receipt")
    result = openssh(
        rig,
        f"cd inbox\nput {local} .b.jsonl.part\nrename .b.jsonl.part b.jsonl\nls -l\n"
        f"get /receipts/old.jsonl.receipt.jws {rig.tmp / 'fetched.jws'}\n",
    )
    assert result.returncode == 0, result.stderr
    assert rig.inbox() == ["b.jsonl"]
    assert (rig.tmp / "fetched.jws").read_bytes() == b"receipt"


@pytest.mark.skipif(shutil.which("sftp") is None, reason="needs the OpenSSH sftp client")
def test_the_openssh_client_refuses_a_gateway_whose_host_key_is_not_the_pinned_one(
    local_rig: Rig,
) -> None:
    other = create_identity(local_rig.tmp / "impostor")
    result = openssh(local_rig, "ls\n", host_key=other)
    assert result.returncode != 0
    assert "verification failed" in result.stderr or "REMOTE HOST" in result.stderr


def openssh(
    rig: Rig, commands: str, *, host_key: SSHPublicKey | None = None
) -> subprocess.CompletedProcess[str]:
    return run_sftp(
        commands,
        port=rig.port,
        user=CREDITOR,
        key=rig.keys[CREDITOR],
        host_key=host_key or rig.host_key,
        workdir=rig.tmp,
    )


def run_sftp(
    commands: str, *, port: int, user: str, key: Path, host_key: SSHPublicKey, workdir: Path
) -> subprocess.CompletedProcess[str]:
    """Run the stock OpenSSH ``sftp -b`` with only this key and this pinned host key."""
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text(known_hosts_line(host_key, host="127.0.0.1", port=port))
    batch = workdir / "batch.txt"
    batch.write_text(commands)
    options = {
        "StrictHostKeyChecking": "yes",
        "UserKnownHostsFile": str(known_hosts),
        "GlobalKnownHostsFile": "/dev/null",
        "IdentitiesOnly": "yes",
        "IdentityAgent": "none",
        "BatchMode": "yes",
        "ConnectTimeout": "10",
    }
    command = ["sftp", "-F", "/dev/null", "-b", str(batch), "-P", str(port), "-i", str(key)]
    for name, value in options.items():
        command += ["-o", f"{name}={value}"]
    return subprocess.run(
        [*command, f"{user}@127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# -- logins ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "key", "reason"),
    [
        (CREDITOR, "stranger", "key_unknown"),
        (CREDITOR, OTHER, "key_unknown"),
        ("00000003900000099999", CREDITOR, "user_unknown"),
        ("root", CREDITOR, "user_unknown"),
        (TEAM, CREDITOR, "user_unknown"),
    ],
    ids=["unregistered-key", "another-creditors-key", "unknown-oin", "not-an-oin", "a-team"],
)
def test_refuses_a_login_at_the_ssh_layer(rig: Rig, user: str, key: str, reason: str) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        rig.connect(user=user, key=key)
    [event] = rig.wait_for("sftp.login", "refused")
    assert event["reason"] == reason
    assert event["organisation"] == (user if dropbox.is_oin(user) else GATEWAY)
    assert "root" not in json.dumps(event)


def test_a_revoked_key_is_refused_at_once(rig: Rig) -> None:
    rig.connect(key="revoked").close()
    with rig.gw.engine.begin() as conn:
        [row] = [
            r for r in rig.gw.directory.ssh_keys_of(conn, CREDITOR) if r["fingerprint"] == _fp(rig)
        ]
        now = rig.gw.clock.now()
        assert rig.gw.directory.revoke_ssh_key(conn, str(row["fingerprint"]), now=now)
    with pytest.raises(paramiko.AuthenticationException):
        rig.connect(key="revoked")
    [event] = rig.wait_for("sftp.login", "refused")
    assert event["reason"] == "key_revoked"
    accepted = rig.wait_for("sftp.login", "accepted")
    assert accepted[0]["organisation"] == CREDITOR
    assert accepted[0]["object"] == _fp(rig)


def _fp(rig: Rig) -> str:
    return SSHPublicKey.from_openssh(
        rig.keys["revoked"].with_name("id_ed25519.pub").read_text()
    ).fingerprint


def test_a_password_is_never_accepted(rig: Rig) -> None:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 (test only)
    with pytest.raises(paramiko.AuthenticationException):
        client.connect(
            "127.0.0.1",
            port=rig.port,
            username=CREDITOR,
            password="secret",  # noqa: S106
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )
    client.close()


def test_refuses_shell_exec_and_port_forwarding(rig: Rig) -> None:
    client = rig.connect()
    try:
        with pytest.raises(paramiko.SSHException):
            client.exec_command("id")
        with pytest.raises(paramiko.SSHException):
            client.invoke_shell()
        transport = client.get_transport()
        assert transport is not None
        with pytest.raises(paramiko.ChannelException):
            transport.open_channel("direct-tcpip", ("127.0.0.1", rig.port), ("127.0.0.1", 0))
        with pytest.raises(paramiko.SSHException):
            transport.request_port_forward("127.0.0.1", 0)
    finally:
        client.close()


# -- confinement ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        f"../{OTHER}/inbox/.x.jsonl.part",
        f"/inbox/../../{OTHER}/inbox/.x.jsonl.part",
        "/etc/.x.jsonl.part",
        "/tmp/.x.jsonl.part",
        "/inbox/sub/.x.jsonl.part",
    ],
)
def test_refuses_writing_outside_the_inbox(
    local_rig: Rig, local_sftp: paramiko.SFTPClient, path: str
) -> None:
    with pytest.raises(PermissionError):
        local_sftp.putfo(io.BytesIO(SECRET_LINE), path)
    assert local_rig.inbox(OTHER) == []
    assert [e["reason"] for e in local_rig.wait_for("sftp.refused", "refused")] == ["path_outside"]


@pytest.mark.parametrize("path", ["/etc/passwd", "../../../../etc/passwd", "/..", ".."])
def test_refuses_reading_or_listing_outside_the_drop_folder(
    local_sftp: paramiko.SFTPClient, path: str
) -> None:
    with pytest.raises(PermissionError):
        local_sftp.open(path).read()
    with pytest.raises(PermissionError):
        local_sftp.listdir(path)
    with pytest.raises(PermissionError):
        local_sftp.stat(path)


def test_the_receipts_of_another_creditor_cannot_be_read(
    local_rig: Rig, local_sftp: paramiko.SFTPClient
) -> None:
    dropbox.ensure_dropbox(local_rig.home, OTHER)
    dropbox.receipt_path(local_rig.home, OTHER, "theirs.jsonl").write_bytes(b"their receipt")
    with pytest.raises(FileNotFoundError):
        local_sftp.open("/receipts/theirs.jsonl.receipt.jws").read()
    with pytest.raises(PermissionError):
        local_sftp.open(f"/../{OTHER}/receipts/theirs.jsonl.receipt.jws").read()
    with pytest.raises(PermissionError):
        local_sftp.listdir(f"/receipts/../../{OTHER}/receipts")
    assert local_sftp.listdir("/receipts") == []


def test_refuses_writing_into_receipts(local_rig: Rig, local_sftp: paramiko.SFTPClient) -> None:
    for name in (".x.jsonl.part", "x.jsonl", "x.jsonl.receipt.jws"):
        with pytest.raises(PermissionError):
            local_sftp.putfo(io.BytesIO(b"forged"), f"/receipts/{name}")
    dropbox.receipt_path(local_rig.home, CREDITOR, "a.jsonl").write_bytes(b"real")
    with pytest.raises(PermissionError):
        local_sftp.open("/receipts/a.jsonl.receipt.jws", "r+")
    with pytest.raises(PermissionError):
        local_sftp.remove("/receipts/a.jsonl.receipt.jws")
    with pytest.raises(PermissionError):
        local_sftp.rename("/receipts/a.jsonl.receipt.jws", "/inbox/a.jsonl")
    assert local_sftp.listdir("/receipts") == ["a.jsonl.receipt.jws"]
    assert dropbox.receipt_path(local_rig.home, CREDITOR, "a.jsonl").read_bytes() == b"real"


def test_refuses_symbolic_links(local_rig: Rig, local_sftp: paramiko.SFTPClient) -> None:
    with pytest.raises(PermissionError):
        local_sftp.symlink("/receipts", "/inbox/.x.jsonl.part")
    with pytest.raises(PermissionError):
        local_sftp.symlink("/etc/passwd", "/inbox/x.jsonl")
    assert local_rig.inbox() == []
    reasons = {
        e["operation"]: e["reason"] for e in local_rig.wait_for("sftp.refused", "refused", 2)
    }
    assert reasons == {"symlink": "no_links"}


@pytest.mark.skipif(shutil.which("sftp") is None, reason="needs the OpenSSH sftp client")
def test_refuses_hard_links(local_rig: Rig) -> None:
    dropbox.receipt_path(local_rig.home, CREDITOR, "a.jsonl").write_bytes(b"real")
    result = openssh(local_rig, "ln /receipts/a.jsonl.receipt.jws /inbox/a.jsonl\n")
    assert result.returncode != 0
    assert local_rig.inbox() == []
    [event] = local_rig.wait_for("sftp.refused", "refused")
    assert (event["operation"], event["reason"]) == ("link", "no_links")


def test_never_follows_a_link_planted_in_the_folder(
    local_rig: Rig, local_sftp: paramiko.SFTPClient
) -> None:
    secret = local_rig.tmp / "secret.txt"
    secret.write_bytes(b"not for creditors")
    receipts = dropbox.receipts_dir(local_rig.home, CREDITOR)
    (receipts / "planted.jws").symlink_to(secret)
    (dropbox.inbox_dir(local_rig.home, CREDITOR) / ".p.jsonl.part").symlink_to(secret)
    with pytest.raises(PermissionError):
        local_sftp.open("/receipts/planted.jws").read()
    with pytest.raises(PermissionError):
        local_sftp.open("/inbox/.p.jsonl.part", "w").write(b"overwrite")
    with pytest.raises(FileNotFoundError):
        local_sftp.stat("/receipts/planted.jws")
    assert "planted.jws" not in local_sftp.listdir("/receipts")
    assert secret.read_bytes() == b"not for creditors"


def test_the_inbox_takes_only_temporary_names_and_never_replaces_a_complete_upload(
    local_rig: Rig, local_sftp: paramiko.SFTPClient
) -> None:
    with pytest.raises(PermissionError):
        local_sftp.putfo(io.BytesIO(SECRET_LINE), "/inbox/direct.jsonl")
    with pytest.raises(PermissionError):
        local_sftp.mkdir("/inbox/sub")
    upload(local_sftp, "a.jsonl", b"first\n")
    local_sftp.putfo(io.BytesIO(b"second\n"), "/inbox/.a.jsonl.part")
    with pytest.raises(OSError):
        local_sftp.rename("/inbox/.a.jsonl.part", "/inbox/a.jsonl")
    with pytest.raises(OSError):
        local_sftp.posix_rename("/inbox/.a.jsonl.part", "/inbox/a.jsonl")
    with pytest.raises(PermissionError):
        local_sftp.remove("/inbox/a.jsonl")
    with pytest.raises(PermissionError):
        local_sftp.open("/inbox/a.jsonl").read()
    local_sftp.remove("/inbox/.a.jsonl.part")
    assert local_rig.inbox() == ["a.jsonl"]
    assert (dropbox.inbox_dir(local_rig.home, CREDITOR) / "a.jsonl").read_bytes() == b"first\n"


def test_an_upload_still_open_for_writing_cannot_be_completed(
    local_rig: Rig, local_sftp: paramiko.SFTPClient
) -> None:
    with local_sftp.open("/inbox/.w.jsonl.part", "w") as fh:
        fh.write(b"half")
        fh.flush()
        with pytest.raises(OSError):
            local_sftp.rename("/inbox/.w.jsonl.part", "/inbox/w.jsonl")
    local_sftp.rename("/inbox/.w.jsonl.part", "/inbox/w.jsonl")
    assert local_rig.inbox() == ["w.jsonl"]


def test_a_file_over_the_limit_is_refused_and_leaves_nothing(
    rig: Rig, sftp: paramiko.SFTPClient
) -> None:
    with pytest.raises(OSError):
        sftp.putfo(io.BytesIO(b"x" * (LIMIT + 1)), "/inbox/.big.jsonl.part")
    with pytest.raises(OSError):
        sftp.rename("/inbox/.big.jsonl.part", "/inbox/big.jsonl")
    assert rig.inbox() == []
    assert dropbox.complete_uploads(rig.home, CREDITOR) == []
    [event] = rig.wait_for("sftp.upload", "refused")
    assert (event["reason"], event["object"], event["organisation"]) == (
        "too_large",
        ".big.jsonl.part",
        CREDITOR,
    )
    upload(sftp, "fits.jsonl", b"x" * LIMIT)
    assert rig.inbox() == ["fits.jsonl"]


def test_a_session_that_keeps_being_refused_is_closed(local_rig: Rig) -> None:
    client = local_rig.connect()
    try:
        local_sftp = client.open_sftp()
        for _ in range(MAX_REFUSALS - 1):
            with pytest.raises(PermissionError):
                local_sftp.stat("/etc")
        with pytest.raises((OSError, paramiko.SSHException)):
            for _ in range(5):
                local_sftp.stat("/etc")
        with pytest.raises((OSError, paramiko.SSHException)):
            local_sftp.listdir("/")
    finally:
        client.close()
    assert local_rig.wait_for("sftp.session", "closed")[0]["reason"] == "too_many_refusals"


def test_audit_events_name_the_creditor_and_hold_no_file_contents(
    rig: Rig, sftp: paramiko.SFTPClient
) -> None:
    upload(sftp, "2026-11.jsonl", SECRET_LINE)
    with pytest.raises(PermissionError):
        sftp.symlink("/receipts", "/inbox/x")
    rig.wait_for("sftp.login", "accepted")
    rig.wait_for("sftp.upload", "completed")
    events = rig.events()
    assert {e["action"] for e in events} == {"sftp.login", "sftp.upload", "sftp.refused"}
    assert {e["organisation"] for e in events} == {CREDITOR}
    assert len({e["trace_id"] for e in events}) == 1
    assert all(e["intake"] == "sftp" for e in events)
    text = json.dumps(events)
    assert "not-a-real-envelope" not in text
    assert str(rig.home) not in text


# -- the directory and the path rules ------------------------------------------------------


def test_an_ssh_key_is_registered_once_to_one_creditor(rig: Rig) -> None:
    public = create_identity(rig.tmp / "again")
    with rig.gw.engine.begin() as conn:
        assert rig.gw.directory.add_ssh_key(conn, oin=CREDITOR, key=public, now=NOW)
        assert not rig.gw.directory.add_ssh_key(conn, oin=CREDITOR, key=public, now=NOW)
        with pytest.raises(SSHKeyInUse):
            rig.gw.directory.add_ssh_key(conn, oin=OTHER, key=public, now=NOW)
        with pytest.raises(PartnerUnknown):
            rig.gw.directory.add_ssh_key(conn, oin=TEAM, key=public, now=NOW)
        assert rig.gw.directory.revoke_ssh_key(conn, public.fingerprint, now=NOW)
        assert not rig.gw.directory.revoke_ssh_key(conn, public.fingerprint, now=NOW)
        with pytest.raises(SSHKeyInUse):
            rig.gw.directory.add_ssh_key(conn, oin=CREDITOR, key=public, now=NOW)
        rows = rig.gw.directory.ssh_keys_of(conn, CREDITOR)
    assert [r["public_key"] for r in rows if r["fingerprint"] == public.fingerprint] == [
        public.openssh
    ]


@pytest.mark.parametrize(
    ("path", "virtual"),
    [
        (b"", b"/"),
        (b".", b"/"),
        (b"/", b"/"),
        (b"inbox", b"/inbox"),
        (b"/inbox/./", b"/inbox"),
        (b"/receipts/../inbox/.a.jsonl.part", b"/inbox/.a.jsonl.part"),
        (b"..", None),
        (b"/../inbox", None),
        (b"/inbox/../..", None),
        (b"/etc/passwd", None),
        (b"/inbox/a/b", None),
        (b"/inbox/a\\b", None),
        (b"/inbox/caf\xc3\xa9.jsonl", None),
        (b"/inbox/a\x00.jsonl", None),
        (b"/inbox/-", b"/inbox/-"),
        (b"/inbox/" + b"a" * 201, None),
    ],
)
def test_paths_resolve_inside_the_two_folders_or_not_at_all(
    path: bytes, virtual: bytes | None
) -> None:
    target = _parse(path)
    assert (target.virtual if target else None) == virtual


@pytest.mark.parametrize(
    ("name", "complete", "temporary"),
    [
        ("2026-11.jsonl", True, False),
        (".2026-11.jsonl.part", False, True),
        (".2026-11.jsonl", False, False),
        ("2026-11.jsonl.part", False, False),
        ("2026-11.json", False, False),
        (".jsonl", False, False),
        ("a/b.jsonl", False, False),
        ("../b.jsonl", False, False),
        ("b c.jsonl", False, False),
    ],
)
def test_the_upload_name_rules(name: str, complete: bool, temporary: bool) -> None:
    assert dropbox.is_complete_upload(name) is complete
    assert dropbox.is_temporary_upload(name) is temporary


# -- the demo and the command line ---------------------------------------------------------


@pytest.mark.skipif(shutil.which("sftp") is None, reason="needs the OpenSSH sftp client")
def test_demo_creditors_log_in_with_the_keys_in_their_homes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signaalpoort

    monkeypatch.delenv("SIGNAALPOORT_DATABASE_URL", raising=False)
    demo = tmp_path / "demo"
    signaalpoort.init_demo(demo, now=datetime.now(UTC) - timedelta(hours=1))
    gateway = demo / "gateway"
    assert (gateway / HOST_KEY_FILE).stat().st_mode & 0o777 == 0o600
    zorg = demo / "zorg"
    assert (zorg / IDENTITY_FILE).stat().st_mode & 0o777 == 0o600
    pinned = read_public(zorg / HOST_KEY_PIN)
    oin = PartyHome(zorg).identity().oin
    local = tmp_path / "2026-11.jsonl"
    local.write_bytes(SECRET_LINE)
    gw = Gateway.open(Settings.load(gateway))
    server = start_in_thread(gw, host="127.0.0.1", port=0)
    try:
        assert server.intake.host_key_fingerprint == pinned.fingerprint
        done = run_sftp(
            f"put {local} inbox/.2026-11.jsonl.part\n"
            "rename inbox/.2026-11.jsonl.part inbox/2026-11.jsonl\n",
            port=server.port,
            user=oin,
            key=zorg / IDENTITY_FILE,
            host_key=pinned,
            workdir=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        assert [p.name for p in dropbox.complete_uploads(gateway, oin)] == ["2026-11.jsonl"]

        # A rotated key is refused until the gateway imports it.
        new = create_identity(tmp_path / "rotated")
        fresh = run_sftp(
            "ls\n",
            port=server.port,
            user=oin,
            key=tmp_path / "rotated" / IDENTITY_FILE,
            host_key=pinned,
            workdir=tmp_path,
        )
        assert fresh.returncode != 0
        pub = str(tmp_path / "rotated" / (IDENTITY_FILE + ".pub"))
        assert cli("keys", "import-ssh", pub, "--partner", oin, "--home", str(gateway)) == 0
        assert cli("keys", "import-ssh", pub, "--partner", oin, "--home", str(gateway)) == 0
        huur = PartyHome(demo / "huur").identity().oin
        in_use = cli("keys", "import-ssh", pub, "--partner", huur, "--home", str(gateway))
        assert in_use == signaalpoort.EXIT_CONFIG
        with gw.engine.connect() as conn:
            keys = gw.directory.ssh_keys_of(conn, oin)
        assert [k["public_key"] for k in keys][-1] == new.openssh
        fresh = run_sftp(
            "ls\n",
            port=server.port,
            user=oin,
            key=tmp_path / "rotated" / IDENTITY_FILE,
            host_key=pinned,
            workdir=tmp_path,
        )
        assert fresh.returncode == 0, fresh.stderr

        # Revoked, it is refused at once; revoking it again is an error.
        revoke = ("keys", "revoke-ssh", new.fingerprint, "--home", str(gateway))
        assert cli(*revoke) == 0
        assert cli(*revoke) == signaalpoort.EXIT_CONFIG
        refused = run_sftp(
            "ls\n",
            port=server.port,
            user=oin,
            key=tmp_path / "rotated" / IDENTITY_FILE,
            host_key=pinned,
            workdir=tmp_path,
        )
        assert refused.returncode != 0
    finally:
        server.stop()
        gw.close()


def cli(*args: str) -> int:
    import signaalpoort

    with pytest.raises(SystemExit) as done:
        signaalpoort.main(list(args))
    return int(done.value.code or 0)
