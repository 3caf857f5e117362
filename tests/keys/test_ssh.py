"""SSH key pairs in OpenSSH formats, public-key parsing and fingerprints."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from keys.errors import KeyringError
from keys.ssh import (
    HOST_KEY_FILE,
    HOST_KEY_PIN,
    IDENTITY_FILE,
    SSHKeyPair,
    SSHPublicKey,
    create_identity,
    known_hosts_line,
    load_or_create_host_key,
    pin_host_key,
)

# A fixed Ed25519 public key and the fingerprint ssh-keygen -l prints for it.
ED25519_LINE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPynNVWAGULvJnc84VV1WefLNYDx+J8vC/NlUq5WvALp"
ED25519_FINGERPRINT = "SHA256:9YJO2nL361zOCpoeU7HaI0hN7wtQii3zmgJdSEs6BmY"


def test_a_generated_key_pair_is_openssh_ed25519_with_a_0600_private_key(tmp_path: Path) -> None:
    public = create_identity(tmp_path, comment="zorg")
    private = tmp_path / IDENTITY_FILE
    assert private.stat().st_mode & 0o777 == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    line = (tmp_path / (IDENTITY_FILE + ".pub")).read_text()
    assert line == f"{public.openssh} zorg\n"
    assert public.algorithm == "ssh-ed25519"


def test_the_fingerprint_is_what_openssh_prints() -> None:
    key = SSHPublicKey.from_openssh(ED25519_LINE + " someone@somewhere")
    assert key.fingerprint == ED25519_FINGERPRINT
    assert key.openssh == ED25519_LINE  # the comment is dropped


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")
def test_ssh_keygen_agrees_on_the_fingerprint(tmp_path: Path) -> None:
    public = create_identity(tmp_path)
    out = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(tmp_path / (IDENTITY_FILE + ".pub"))],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert out.split()[1] == public.fingerprint


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
        'command="/bin/sh" ' + ED25519_LINE,
        ED25519_LINE + "\n" + ED25519_LINE,
        "ssh-ed25519 not-base64!",
        "ssh-rsa " + ED25519_LINE.split()[1],  # the blob says ssh-ed25519
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPynNVWAGULvJnc8",  # truncated
    ],
)
def test_refuses_what_is_not_one_supported_public_key(text: str) -> None:
    with pytest.raises(KeyringError) as refused:
        SSHPublicKey.from_openssh(text)
    assert refused.value.cause == "ssh_key_invalid"


def test_refuses_short_rsa_keys() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    with pytest.raises(KeyringError):
        SSHPublicKey.from_openssh(line)


def test_the_host_key_is_made_once_and_pinned_as_one_line(tmp_path: Path) -> None:
    gateway, creditor = tmp_path / "gateway", tmp_path / "creditor"
    private, public = load_or_create_host_key(gateway)
    assert (gateway / HOST_KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert load_or_create_host_key(gateway) == (private, public)
    pin_host_key(creditor, public)
    assert SSHPublicKey.from_openssh((creditor / HOST_KEY_PIN).read_text()) == public
    assert known_hosts_line(public, host="127.0.0.1", port=2222).startswith("[127.0.0.1]:2222 ")


def test_two_key_pairs_differ() -> None:
    assert SSHKeyPair.generate().public != SSHKeyPair.generate().public
