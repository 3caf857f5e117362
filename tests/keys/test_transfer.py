"""Handing the linkage secret from the municipality to one creditor, through the gateway,
which carries the sealed secret but can never open it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from keys.envelope import encrypt_jwt
from keys.errors import SecretInvalid
from keys.jose import b64d, b64e
from keys.jwk import PrivateKey
from keys.signed import sign_document
from keys.tokens import LinkageSecret
from keys.transfer import SECRET_TYP, open_secret, seal_secret

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def municipality() -> PrivateKey:
    return PrivateKey.generate("sig")


@pytest.fixture(scope="module")
def creditor() -> PrivateKey:
    return PrivateKey.generate("enc")


@pytest.fixture(scope="module")
def secret() -> LinkageSecret:
    return LinkageSecret.generate(now=NOW)


@pytest.fixture(scope="module")
def sealed(secret: LinkageSecret, municipality: PrivateKey, creditor: PrivateKey) -> str:
    return seal_secret(secret, signer=municipality, recipient=creditor.public())


def cause_of(token: str, keys: list[PrivateKey], issuer: PrivateKey) -> str:
    with pytest.raises(SecretInvalid) as info:
        open_secret(token, keys=keys, issuer_keys=[issuer.public()])
    assert info.value.code == "secret_invalid"
    return info.value.cause


def test_creditor_opens_the_secret_the_municipality_sealed(
    sealed: str, secret: LinkageSecret, municipality: PrivateKey, creditor: PrivateKey
) -> None:
    opened = open_secret(sealed, keys=[creditor], issuer_keys=[municipality.public()])
    assert opened == secret


def test_sealed_secret_does_not_show_the_secret(sealed: str, secret: LinkageSecret) -> None:
    assert b64e(secret.secret) not in sealed


def test_gateway_cannot_open_a_secret_sealed_to_a_creditor(
    sealed: str, municipality: PrivateKey
) -> None:
    gateway = PrivateKey.generate("enc")
    assert cause_of(sealed, [gateway], municipality) == "wrong_recipient"


def test_secret_signed_by_anyone_but_the_municipality_is_refused(
    secret: LinkageSecret, municipality: PrivateKey, creditor: PrivateKey
) -> None:
    forged = seal_secret(secret, signer=PrivateKey.generate("sig"), recipient=creditor.public())
    assert cause_of(forged, [creditor], municipality) == "key_unknown"


def test_tampered_sealed_secret_does_not_decrypt(
    sealed: str, municipality: PrivateKey, creditor: PrivateKey
) -> None:
    parts = sealed.split(".")
    ciphertext = bytearray(b64d(parts[3]))
    ciphertext[0] ^= 1
    parts[3] = b64e(bytes(ciphertext))
    assert cause_of(".".join(parts), [creditor], municipality) == "decrypt_failed"


def test_another_signed_document_is_not_a_secret(
    municipality: PrivateKey, creditor: PrivateKey
) -> None:
    notice = sign_document({"kid": "x", "secret": "y"}, typ="notice+jwt", signer=municipality)
    token = encrypt_jwt(notice, creditor.public())
    assert cause_of(token, [creditor], municipality) == "header_invalid"


def test_secret_of_the_wrong_shape_is_refused(
    municipality: PrivateKey, creditor: PrivateKey
) -> None:
    payload = {"kid": "lk-20260302-00000000", "secret": b64e(b"too short")}
    token = encrypt_jwt(
        sign_document(payload, typ=SECRET_TYP, signer=municipality), creditor.public()
    )
    with pytest.raises(SecretInvalid):
        open_secret(token, keys=[creditor], issuer_keys=[municipality.public()])


def test_sealed_secret_that_is_not_canonical_base64url_is_malformed(
    sealed: str, municipality: PrivateKey, creditor: PrivateKey
) -> None:
    assert cause_of("=" + sealed, [creditor], municipality) == "malformed"
