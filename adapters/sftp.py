"""Sending a batch file over SFTP, the way most creditors deliver.

``SftpTransport`` is a ``Transport`` (``adapters.creditor``): the outreach key set still
comes over REST, but ``submit`` writes the envelopes as one batch file (docs/envelope.md,
section 10.1), uploads it under its temporary name and renames it when complete (the
gateway takes only complete files), then waits for the receipt the gateway writes back
and returns it. A dropped connection during the upload is retried from the start; the
same file twice is harmless (every line a ``duplicate``).

The creditor's SSH key is ``ssh/id_ed25519`` in its home; the gateway's SSH host key is
pinned in ``pins/sftp-host-key.pub``, and any other host key is refused. The server's
address is ``pins/sftp-address`` (``host:port``), and the user name the creditor's OIN,
or ``pins/sftp-user`` where an OpenSSH server knows it by another name.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import paramiko

from adapters.errors import NotEnrolled, TransportFailed
from keys.home import PartyHome

__all__ = ["HOST_KEY_PIN", "SSH_KEY", "SftpClient", "SftpTransport", "batch_file"]

SSH_KEY = Path("ssh") / "id_ed25519"
HOST_KEY_PIN = "sftp-host-key.pub"
ADDRESS_PIN = "sftp-address"
USER_PIN = "sftp-user"
DEFAULT_ADDRESS = ("localhost", 2222)
RECEIPT_SUFFIX = ".receipt.jws"
ATTEMPTS = 3
RETRY_PAUSE = 2.0
"""Seconds before the second attempt; twice that before the third."""
CLOCK_SKEW = 300
"""Seconds a receipt's ``iat`` may lie before the upload began (the clocks differ)."""
Progress = Callable[[int, int], None]


def batch_file(envelopes: Sequence[str]) -> bytes:
    """A batch file: one ``{"envelope": ...}`` per line, LF after each."""
    lines = (json.dumps({"envelope": e}, separators=(",", ":")) + "\n" for e in envelopes)
    return "".join(lines).encode("ascii")


class SftpClient:
    """A creditor's SFTP connection to its drop folder at the gateway."""

    def __init__(
        self,
        home: PartyHome,
        address: tuple[str, int] | None = None,
        *,
        user: str | None = None,
        timeout: float = 30,
    ) -> None:
        # The embedded server knows a creditor by its OIN; an OpenSSH server by the OS
        # user the municipality made for it (pins/sftp-user).
        self._user = user or _pinned(home, USER_PIN) or home.identity().oin
        self._address = address or _address(home)
        self._timeout = timeout
        key_file = home.path / SSH_KEY
        pin = home.pins_dir / HOST_KEY_PIN
        if not key_file.exists() or not pin.exists():
            raise NotEnrolled("this home has no SSH key or no pinned SFTP host key")
        self._key = paramiko.Ed25519Key.from_private_key_file(str(key_file))
        kind, blob = pin.read_text().split()[:2]
        self._host_key = (kind, blob)
        self._transport: paramiko.Transport | None = None
        self._sftp: paramiko.SFTPClient | None = None

    def __enter__(self) -> SftpClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _connect(self) -> paramiko.SFTPClient:
        if self._sftp is not None:
            return self._sftp
        transport = paramiko.Transport(self._address)
        transport.banner_timeout = transport.auth_timeout = self._timeout
        try:
            transport.start_client(timeout=self._timeout)
            offered = transport.get_remote_server_key()
            if (offered.get_name(), offered.get_base64()) != self._host_key:
                raise TransportFailed("the SFTP server's host key is not the pinned one")
            transport.auth_publickey(self._user, self._key)
            sftp = paramiko.SFTPClient.from_transport(transport)
        except (OSError, paramiko.SSHException) as exc:
            transport.close()
            raise TransportFailed(f"SFTP connection failed: {type(exc).__name__}") from None
        except BaseException:
            transport.close()
            raise
        if sftp is None:
            transport.close()
            raise TransportFailed("SFTP session refused")
        self._transport, self._sftp = transport, sftp
        return sftp

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
        if self._transport is not None:
            self._transport.close()
        self._sftp = self._transport = None

    def upload(self, data: bytes, name: str, *, progress: Progress | None = None) -> None:
        """Upload ``data`` as ``inbox/NAME`` under its temporary name, then rename it.

        A dropped connection is retried from the start, ``ATTEMPTS`` times in all.
        """
        temporary = f"inbox/.{name}.part"
        for attempt in range(1, ATTEMPTS + 1):
            try:
                sftp = self._connect()
                with sftp.open(temporary, "wb") as handle:
                    handle.set_pipelined(True)
                    view = memoryview(data)
                    step = 256 * 1024
                    for start in range(0, len(data), step):
                        handle.write(bytes(view[start : start + step]))
                        if progress is not None:
                            progress(min(start + step, len(data)), len(data))
                sftp.posix_rename(temporary, f"inbox/{name}")
                return
            except (OSError, EOFError, paramiko.SSHException, TransportFailed) as exc:
                self.close()
                if attempt == ATTEMPTS:
                    raise TransportFailed(
                        f"upload failed after {ATTEMPTS} attempts: {type(exc).__name__}"
                    ) from None
                time.sleep(RETRY_PAUSE * attempt)

    def receipt(self, name: str) -> str | None:
        """The receipt now in ``receipts/`` for the batch file ``name``, if any."""
        sftp = self._connect()
        try:
            with sftp.open(f"receipts/{name}{RECEIPT_SUFFIX}", "rb") as handle:
                return bytes(handle.read()).decode("ascii").strip()
        except FileNotFoundError:
            return None


class SftpTransport:
    """Outreach keys over REST, envelopes as one batch file over SFTP."""

    def __init__(
        self,
        keys: Any,
        client: SftpClient,
        *,
        name: str,
        verify: Callable[[str], dict[str, Any]],
        wait: float = 600,
        progress: Progress | None = None,
    ) -> None:
        self._keys = keys
        self._client = client
        self._name = name
        self._verify = verify
        self._wait = wait
        self._progress = progress

    def outreach_keys(self, gemeente: str) -> str:
        return str(self._keys.outreach_keys(gemeente))

    def submit(self, envelopes: Sequence[str]) -> str:
        """Upload the envelopes as one batch file; return its verified receipt."""
        hashes = [hashlib.sha256(e.encode("ascii")).hexdigest() for e in envelopes]
        sent = int(time.time()) - CLOCK_SKEW
        self._client.upload(batch_file(envelopes), self._name, progress=self._progress)
        deadline = time.monotonic() + self._wait
        while time.monotonic() < deadline:
            signed = self._client.receipt(self._name)
            if signed is not None:
                receipt = self._verify(signed)
                # An older receipt of a file of the same name lists other envelopes, or
                # was signed before this upload.
                if receipt.get("refused") and receipt["iat"] >= sent:
                    raise TransportFailed(f"the gateway refused the file: {receipt['refused']}")
                if [i["envelopeSha256"] for i in receipt["items"]] == hashes:
                    return signed
            time.sleep(1.0)
        raise TransportFailed("no receipt for the batch file in time")


def _address(home: PartyHome) -> tuple[str, int]:
    pinned = _pinned(home, ADDRESS_PIN)
    if pinned is None:
        return DEFAULT_ADDRESS
    host, _, port = pinned.rpartition(":")
    return host, int(port)


def _pinned(home: PartyHome, name: str) -> str | None:
    pin = home.pins_dir / name
    return pin.read_text().strip() or None if pin.exists() else None
