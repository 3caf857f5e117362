"""The OpenSSH mode of the SFTP intake: a real ``sshd`` writes the drop folders.

The test builds what docs/deploy-sftp.md describes, in a root-owned folder of its own
under ``/srv``: an OS user per creditor chrooted to its folder by ``internal-sftp -P
symlink,hardlink``, and an OS user for the gateway, which runs ``batch run`` as that
user. The creditor's own paramiko client (``adapters.sftp``) uploads demo envelopes and
reads back the receipt the gateway wrote. Creating OS users and starting ``sshd`` needs
root: the tests are skipped otherwise, unless ``$CI`` is set, where they must run.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paramiko
import pytest
from pydantic import ValidationError

from adapters.creditor import Creditor, read_export
from adapters.sftp import HOST_KEY_PIN, SSH_KEY, SftpClient, SftpTransport
from gateway import dropbox
from gateway.batch import KEPT_DIR, process_waiting
from gateway.service import Gateway
from gateway.settings import Settings
from keys.home import PartyHome
from keys.jwk import OIN
from signaalpoort import LocalTransport, init_demo

SSHD = Path("/usr/sbin/sshd")
ZORG = "00000003900000010000"
HUUR = "00000003900000020000"
BATCH = "2026-11.jsonl"


@dataclass(frozen=True)
class Account:
    """An OS user made for the test."""

    user: str
    uid: int
    gid: int


@dataclass(frozen=True)
class Rig:
    """A running sshd, the creditors' OS users and chroot folders, and the demo."""

    root: Path
    port: int
    known_hosts: Path
    gateway: Account
    accounts: dict[str, Account]
    chroots: dict[str, Path]
    demo: Path

    @property
    def home(self) -> Path:
        return self.demo / "gateway"

    def party(self, oin: str) -> Path:
        return self.demo / {ZORG: "zorg", HUUR: "huur"}[oin]

    def client(self, oin: str) -> SftpClient:
        return SftpClient(
            PartyHome(self.party(oin)),
            ("127.0.0.1", self.port),
            user=self.accounts[oin].user,
            timeout=10,
        )

    def sftp(self, oin: str) -> paramiko.SFTPClient:
        """A raw SFTP session of the creditor, for requests its client never makes."""
        client = self.client(oin)
        return client._connect()  # noqa: SLF001 (the client's own pinned, keyed session)

    def env(self) -> dict[str, str]:
        return {
            "SIGNAALPOORT_SFTP_MODE": "openssh",
            "SIGNAALPOORT_OPENSSH_DROPBOXES": json.dumps(
                {k: str(v) for k, v in self.chroots.items()}
            ),
            "SIGNAALPOORT_BATCH_WORKERS": "1",
        }

    def batch_run(self) -> None:
        """What ``batch run`` does, as the gateway's OS user: a forked child drops root
        (the interpreter may live where that user cannot exec it) and processes every
        waiting upload."""
        pid = os.fork()
        if pid == 0:  # pragma: no cover (the child)
            code = 1
            try:
                os.setgroups([])
                os.setgid(self.gateway.gid)
                os.setuid(self.gateway.uid)
                os.environ.update(self.env())
                gw = Gateway.open(Settings.load(self.home))
                try:
                    process_waiting(gw, workers=1)
                finally:
                    gw.close()
                code = 0
            except BaseException:  # noqa: BLE001 (reported through the exit code)
                traceback.print_exc()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0

    def run_as(self, oin: str, *command: str) -> subprocess.CompletedProcess[str]:
        account = self.accounts[oin]
        return subprocess.run(
            list(command),
            user=account.uid,
            group=account.gid,
            extra_groups=[],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )


def _require_root() -> None:
    reason = None
    if os.geteuid() != 0:
        reason = "needs root: it creates OS users and starts sshd"
    elif not SSHD.exists():
        reason = f"{SSHD} is missing (./dev test installs openssh-server)"
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so the OpenSSH tests must run", pytrace=False)
    pytest.skip(reason)


def _useradd(name: str) -> Account:
    # '*': no password, but not locked, so sshd (without PAM) lets the key log in.
    subprocess.run(
        ["useradd", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", "--user-group", "--password", "*", name],
        check=True,
        capture_output=True,
    )  # fmt: skip
    import pwd

    entry = pwd.getpwnam(name)
    return Account(name, entry.pw_uid, entry.pw_gid)


def _userdel(name: str) -> None:
    subprocess.run(["userdel", name], check=False, capture_output=True)
    subprocess.run(["groupdel", name], check=False, capture_output=True)


def _folder(path: Path, *, uid: int, gid: int, mode: int) -> Path:
    path.mkdir(exist_ok=True)
    os.chown(path, uid, gid)
    os.chmod(path, mode)  # after chown, which may clear the setgid bit
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(root: Path, port: int, users: list[str]) -> str:
    return f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {root}/host_key
PidFile {root}/sshd.pid
AuthorizedKeysFile {root}/authorized_keys/%u
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin no
AllowUsers {" ".join(users)}
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTunnel no
Subsystem sftp internal-sftp
LogLevel VERBOSE

Match User {",".join(users)}
    ChrootDirectory {root}/sftp/%u
    ForceCommand internal-sftp -u 0027 -P symlink,hardlink
"""


def _wait_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sshd exited: {log.read_text()}", pytrace=False)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"sshd did not listen: {log.read_text()}", pytrace=False)


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    """sshd on a free loopback port, two creditors' chroot folders, and the demo."""
    _require_root()
    token = secrets.token_hex(4)
    root = Path(f"/srv/signaalpoort-test-{token}")
    names = {
        "gateway": f"sp-test-{token}-gw",
        ZORG: f"sp-test-{token}-a",
        HUUR: f"sp-test-{token}-b",
    }
    made: list[str] = []
    process: subprocess.Popen[bytes] | None = None
    try:
        _folder(root, uid=0, gid=0, mode=0o755)
        accounts: dict[str, Account] = {}
        for key, name in names.items():
            accounts[key] = _useradd(name)
            made.append(name)
        gateway = accounts.pop("gateway")

        demo = _folder(root / "demo", uid=0, gid=0, mode=0o755)
        init_demo(demo, now=datetime.now(UTC) - timedelta(minutes=5))
        (demo / "gateway").chmod(0o700)

        # Every component of a chroot path root-owned and writable by root alone.
        _folder(root / "sftp", uid=0, gid=0, mode=0o755)
        keys = _folder(root / "authorized_keys", uid=0, gid=0, mode=0o755)
        chroots = {}
        for oin, account in accounts.items():
            chroot = _folder(root / "sftp" / account.user, uid=0, gid=0, mode=0o755)
            _folder(chroot / dropbox.INBOX, uid=account.uid, gid=gateway.gid, mode=0o2770)
            _folder(chroot / dropbox.RECEIPTS, uid=gateway.uid, gid=account.gid, mode=0o2750)
            chroots[oin] = chroot
            public = (demo / {ZORG: "zorg", HUUR: "huur"}[oin] / SSH_KEY).with_suffix(".pub")
            (keys / account.user).write_bytes(public.read_bytes())
            (keys / account.user).chmod(0o644)

        with pytest.MonkeyPatch.context() as env:
            env.setenv("SIGNAALPOORT_SFTP_MODE", "openssh")
            env.setenv(
                "SIGNAALPOORT_OPENSSH_DROPBOXES",
                json.dumps({k: str(v) for k, v in chroots.items()}),
            )
            gw = Gateway.open(Settings.load(demo / "gateway"))
            try:  # once as root, so that the child of batch_run imports nothing new
                process_waiting(gw, workers=1)
            finally:
                gw.close()

        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / "host_key")],
            check=True,
            capture_output=True,
        )
        host_key = " ".join((root / "host_key.pub").read_text().split()[:2])
        port = _free_port()
        for party in ("zorg", "huur"):
            (demo / party / "pins" / HOST_KEY_PIN).write_text(host_key + "\n")
        known_hosts = root / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {host_key}\n")
        config = root / "sshd_config"
        config.write_text(_config(root, port, [a.user for a in accounts.values()]))
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege separation folder
        subprocess.run([str(SSHD), "-t", "-f", str(config)], check=True, capture_output=True)
        log = root / "sshd.log"
        with log.open("wb") as out:
            process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stderr=out)
        _wait_listening(process, port, log)
        yield Rig(root, port, known_hosts, gateway, accounts, chroots, demo)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
        for name in made:
            _userdel(name)
        shutil.rmtree(root, ignore_errors=True)


def _give_home_to_gateway(rig: Rig) -> None:
    for folder, _, files in os.walk(rig.home):
        os.chown(folder, rig.gateway.uid, rig.gateway.gid)
        for name in files:
            os.chown(Path(folder) / name, rig.gateway.uid, rig.gateway.gid)


def test_a_batch_uploaded_through_openssh_is_judged_and_its_receipt_read_back(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNAALPOORT_SFTP_MODE", "openssh")
    monkeypatch.setenv(
        "SIGNAALPOORT_OPENSSH_DROPBOXES", rig.env()["SIGNAALPOORT_OPENSSH_DROPBOXES"]
    )
    settings = Settings.load(rig.home)
    assert dropbox.dropboxes(settings)[ZORG].inbox == rig.chroots[ZORG] / "inbox"
    assert dropbox.check_openssh(settings) == []

    now = datetime.now(UTC)
    creditor = Creditor(PartyHome(rig.party(ZORG)), now=now)
    gw = Gateway.open(settings)
    try:  # the outreach key set, before the home is handed to the gateway's user
        sealed = creditor.seal_rows(
            read_export(rig.party(ZORG) / "notices.csv"), LocalTransport(gw, OIN(ZORG)), now=now
        )
    finally:
        gw.close()
    _give_home_to_gateway(rig)

    transport = SftpTransport(
        None, rig.client(ZORG), name=BATCH, verify=creditor.verify_receipt, wait=25
    )
    outcome: dict[str, Any] = {}

    def submit() -> None:
        try:
            outcome["receipt"] = transport.submit([s.envelope for s in sealed])
        except BaseException as exc:  # noqa: BLE001 (reported by the test's thread)
            outcome["error"] = exc

    sender = threading.Thread(target=submit)
    sender.start()
    deadline = time.monotonic() + 25
    while sender.is_alive() and time.monotonic() < deadline:
        rig.batch_run()
        sender.join(0.2)
    sender.join(5)
    assert "error" not in outcome, outcome.get("error")
    receipt = creditor.verify_receipt(outcome["receipt"])
    assert [i["outcome"] for i in receipt["items"]] == ["accepted"] * len(sealed)

    # The upload left the chroot for the gateway's home; the receipt is the creditor's
    # to read: the gateway's file, in the creditor's group, 0640.
    assert dropbox.uploads_in(rig.chroots[ZORG] / "inbox") == []
    [kept] = (rig.home / KEPT_DIR / ZORG / "done").iterdir()
    assert kept.name.endswith(BATCH)
    written = os.stat(rig.chroots[ZORG] / "receipts" / f"{BATCH}.receipt.jws")
    assert (written.st_uid, written.st_gid) == (rig.gateway.uid, rig.accounts[ZORG].gid)
    assert written.st_mode & 0o777 == 0o640


def test_links_are_refused_by_sshd(rig: Rig, tmp_path: Path) -> None:
    sftp = rig.sftp(HUUR)
    try:
        with sftp.open("inbox/real.jsonl", "wb") as handle:
            handle.write(b"{}\n")
        with pytest.raises(OSError):
            sftp.symlink("/etc/passwd", "inbox/passwd.jsonl")
    finally:
        sftp.close()
    # The stock client for the hard link (paramiko has no hardlink@openssh.com).
    for command in ("ln inbox/real.jsonl inbox/hard.jsonl", "ln -s real.jsonl inbox/s.jsonl"):
        script = tmp_path / "batch"
        script.write_text(command + "\n")
        done = subprocess.run(
            ["sftp", "-b", str(script), "-P", str(rig.port), "-i", str(rig.party(HUUR) / SSH_KEY),
             "-o", f"UserKnownHostsFile={rig.known_hosts}", "-o", "StrictHostKeyChecking=yes",
             "-o", "BatchMode=yes", f"{rig.accounts[HUUR].user}@127.0.0.1"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )  # fmt: skip
        assert done.returncode != 0, done.stdout
        # Refused by the server, or not even offered (-P hardlink hides the extension).
        said = done.stderr.lower()
        assert any(w in said for w in ("denied", "failure", "not support")), done.stderr
    inbox = rig.chroots[HUUR] / "inbox"
    assert sorted(p.name for p in inbox.iterdir()) == ["real.jsonl"]
    assert os.lstat(inbox / "real.jsonl").st_nlink == 1
    (inbox / "real.jsonl").unlink()


def test_a_receipt_is_read_by_its_creditor_alone(rig: Rig) -> None:
    with rig.client(ZORG) as client:
        client.upload(b'{"envelope": "not-an-envelope"}\n', "junk.jsonl")
    _give_home_to_gateway(rig)
    rig.batch_run()
    receipt = rig.chroots[ZORG] / "receipts" / "junk.jsonl.receipt.jws"
    with rig.client(ZORG) as client:
        assert client.receipt("junk.jsonl") is not None
    with rig.client(HUUR) as client:
        assert client.receipt("junk.jsonl") is None
    sftp = rig.sftp(HUUR)
    try:
        for path in (str(receipt), f"/../{rig.accounts[ZORG].user}/receipts/{receipt.name}"):
            with pytest.raises(OSError):
                sftp.open(path, "rb")
    finally:
        sftp.close()
    # Outside sshd too: the other creditor's OS user may not read it.
    assert rig.run_as(ZORG, "cat", str(receipt)).returncode == 0
    refused = rig.run_as(HUUR, "cat", str(receipt))
    assert refused.returncode != 0 and "Permission denied" in refused.stderr


def test_a_creditor_cannot_write_in_its_receipts_folder(rig: Rig) -> None:
    sftp = rig.sftp(ZORG)
    try:
        with pytest.raises(OSError):
            sftp.open("receipts/planted.jsonl.receipt.jws", "wb")
        with pytest.raises(OSError):
            sftp.symlink("/etc/shadow", "receipts/planted.jsonl.receipt.jws")
        with pytest.raises(OSError):
            sftp.mkdir("/planted")  # the chroot folder itself is root's
    finally:
        sftp.close()
    assert (
        sorted(p.name for p in (rig.chroots[ZORG] / "receipts").iterdir() if "planted" in p.name)
        == []
    )


def test_openssh_settings_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNAALPOORT_SFTP_MODE", "openssh")
    monkeypatch.setenv("SIGNAALPOORT_OPENSSH_DROPBOXES", json.dumps({ZORG: "/srv/sftp/zorg"}))
    settings = Settings(home=tmp_path, gateway_id=ZORG)
    assert settings.openssh_dropboxes == {ZORG: Path("/srv/sftp/zorg")}
    assert dropbox.dropboxes(settings) == {
        ZORG: dropbox.DropBox(Path("/srv/sftp/zorg/inbox"), Path("/srv/sftp/zorg/receipts"))
    }


@pytest.mark.parametrize(
    ("mode", "boxes"),
    [
        ("openssh", {}),
        ("openssh", {"123": "/srv/sftp/zorg"}),
        ("openssh", {ZORG: "srv/sftp/zorg"}),
        ("openssh", {ZORG: "/srv/sftp/../../etc"}),
        ("openssh", {ZORG: "/srv/sftp/x", HUUR: "/srv/sftp/x"}),
        ("sshd", {ZORG: "/srv/sftp/zorg"}),
    ],
)
def test_openssh_settings_are_refused_at_start_up(
    tmp_path: Path, mode: str, boxes: dict[str, str]
) -> None:
    with pytest.raises(ValidationError):
        Settings(home=tmp_path, gateway_id=ZORG, sftp_mode=mode, openssh_dropboxes=boxes)  # type: ignore[arg-type]


def test_the_embedded_layout_stays_the_default(tmp_path: Path) -> None:
    dropbox.ensure_dropbox(tmp_path, ZORG)
    settings = Settings(home=tmp_path, gateway_id=ZORG)
    assert settings.sftp_mode == "embedded"
    assert dropbox.dropboxes(settings) == {
        ZORG: dropbox.DropBox(
            dropbox.inbox_dir(tmp_path, ZORG), dropbox.receipts_dir(tmp_path, ZORG)
        )
    }
