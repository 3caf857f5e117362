"""SSH keys for the SFTP intake: key pairs in OpenSSH formats, and public-key parsing.

A party's SSH files live in its home:

    HOME/ssh/id_ed25519            a creditor's SSH private key (OpenSSH format, 0600)
    HOME/ssh/id_ed25519.pub        its public key, one line, to register at the gateway
    HOME/ssh/host_key              the gateway's SSH host key (0600)
    HOME/ssh/host_key.pub          its public key, which creditors pin
    HOME/pins/sftp-host-key.pub    at a creditor: the gateway's pinned host public key

Public keys are kept in the one-line OpenSSH form without the comment (``ssh-ed25519
AAAA…``): a comment is often ``user@host`` and says nothing the gateway needs.
Fingerprints are written as OpenSSH prints them: ``SHA256:`` and unpadded base64.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from keys.errors import KeyringError
from keys.keyring import write_atomic, write_private

SSH_DIR = "ssh"
IDENTITY_FILE = "ssh/id_ed25519"
HOST_KEY_FILE = "ssh/host_key"
HOST_KEY_PIN = "pins/sftp-host-key.pub"
MIN_RSA_BITS = 3072
MAX_PUBLIC_KEY_CHARS = 8192
ALGORITHMS = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)
"""The public-key types a creditor may register (RSA from ``MIN_RSA_BITS`` bits)."""


def fingerprint(blob: bytes) -> str:
    """The SHA-256 fingerprint of a public-key blob, as OpenSSH prints it."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii")
    return "SHA256:" + digest.rstrip("=")


@dataclass(frozen=True)
class SSHPublicKey:
    """A parsed SSH public key: its type, its wire blob, and its fingerprint."""

    algorithm: str
    blob: bytes

    @classmethod
    def from_openssh(cls, text: str | bytes) -> SSHPublicKey:
        """Parse a one-line OpenSSH public key (``TYPE BASE64 [COMMENT]``).

        Raises ``KeyringError`` (cause ``ssh_key_invalid``) for anything else: options
        before the type, several lines, an unknown type, a blob that does not parse or
        names another type, or an RSA key under ``MIN_RSA_BITS`` bits.
        """
        if isinstance(text, bytes):
            try:
                text = text.decode("ascii")
            except UnicodeDecodeError:
                raise _invalid("not ASCII") from None
        text = text.strip()
        if not text or len(text) > MAX_PUBLIC_KEY_CHARS or "\n" in text or "\r" in text:
            raise _invalid("expected one line: TYPE BASE64 [COMMENT]")
        parts = text.split(None, 2)
        if len(parts) < 2 or parts[0] not in ALGORITHMS:
            raise _invalid(f"the key type must be one of {', '.join(ALGORITHMS)}")
        algorithm, encoded = parts[0], parts[1]
        try:
            blob = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise _invalid("the key is not base64") from None
        if _wire_type(blob) != algorithm:
            raise _invalid("the key blob names another type")
        try:
            key = serialization.load_ssh_public_key(f"{algorithm} {encoded}".encode())
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise _invalid("the key does not parse") from None
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
            raise _invalid(f"RSA keys need at least {MIN_RSA_BITS} bits")
        if not isinstance(
            key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey
        ):
            raise _invalid("unsupported key type")
        return cls(algorithm, blob)

    @property
    def openssh(self) -> str:
        """The one-line OpenSSH form, without a comment."""
        return f"{self.algorithm} {base64.b64encode(self.blob).decode('ascii')}"

    @property
    def fingerprint(self) -> str:
        """``SHA256:…`` as ``ssh-keygen -l`` prints it."""
        return fingerprint(self.blob)


@dataclass(frozen=True)
class SSHKeyPair:
    """An Ed25519 key pair in OpenSSH formats."""

    private_openssh: bytes
    public: SSHPublicKey

    @classmethod
    def generate(cls) -> SSHKeyPair:
        """A fresh Ed25519 key pair."""
        key = ed25519.Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        return cls(private, SSHPublicKey.from_openssh(public))

    def write(self, path: Path, *, comment: str = "") -> None:
        """Write the private key to ``path`` (0600) and the public key to ``path.pub``."""
        write_private(path, self.private_openssh)
        write_public(path.with_name(path.name + ".pub"), self.public, comment=comment)


def write_public(path: Path, key: SSHPublicKey, *, comment: str = "") -> None:
    """Write a public key as one OpenSSH line (0644)."""
    line = key.openssh + (f" {comment}" if comment else "") + "\n"
    write_atomic(path, line.encode("ascii"), mode=0o644)


def read_public(path: Path) -> SSHPublicKey:
    """Read a one-line OpenSSH public key file."""
    try:
        return SSHPublicKey.from_openssh(path.read_bytes())
    except FileNotFoundError:
        raise KeyringError(f"no SSH public key at {path}", cause="ssh_key_missing") from None


def create_identity(home: Path, *, comment: str = "") -> SSHPublicKey:
    """Give a party an SSH key pair (``ssh/id_ed25519``); return its public key."""
    pair = SSHKeyPair.generate()
    pair.write(home / IDENTITY_FILE, comment=comment)
    return pair.public


def load_or_create_host_key(home: Path) -> tuple[bytes, SSHPublicKey]:
    """The gateway's SSH host key (``ssh/host_key``), made on first use.

    Returns the private key in OpenSSH format and its public key.
    """
    path = home / HOST_KEY_FILE
    if not path.exists():
        SSHKeyPair.generate().write(path)
    private = path.read_bytes()
    try:
        key = serialization.load_ssh_private_key(private, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyringError(
            f"{path} is not an OpenSSH private key", cause="ssh_key_invalid"
        ) from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise KeyringError(f"{path} is not an Ed25519 key", cause="ssh_key_invalid")
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, SSHPublicKey.from_openssh(public)


def pin_host_key(home: Path, key: SSHPublicKey) -> None:
    """At a creditor: pin the gateway's SSH host public key (``pins/sftp-host-key.pub``)."""
    write_public(home / HOST_KEY_PIN, key)


def known_hosts_line(key: SSHPublicKey, *, host: str, port: int) -> str:
    """A ``known_hosts`` line for the pinned host key at ``host:port``."""
    name = host if port == 22 else f"[{host}]:{port}"
    return f"{name} {key.openssh}\n"


def _wire_type(blob: bytes) -> str | None:
    # An SSH public-key blob starts with its type as an SSH string (uint32 length).
    if len(blob) < 4:
        return None
    size = int.from_bytes(blob[:4], "big")
    if size > 64 or len(blob) < 4 + size:
        return None
    try:
        return blob[4 : 4 + size].decode("ascii")
    except UnicodeDecodeError:
        return None


def _invalid(message: str) -> KeyringError:
    return KeyringError(f"SSH public key: {message}", cause="ssh_key_invalid")
