"""Reading the claims of a notice verified earlier, as the gateway keeps it at rest."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from keys.envelope import SignerKey, notice_claims, open_envelope, seal_envelope
from keys.errors import EnvelopeInvalid
from keys.jwk import OIN, KeyID, PrivateKey
from keys.signed import sign_document

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
T = int(NOW.timestamp())
CREDITOR = OIN("00000003123456780000")
GATEWAY = "signaalpoort-test"


def test_gives_the_claims_that_open_envelope_verified() -> None:
    signer, intake = PrivateKey.generate("sig"), PrivateKey.generate("enc")
    claims = {"iss": CREDITOR, "aud": GATEWAY, "iat": T, "exp": T + 60, "naam": "Çelik"}
    envelope = seal_envelope(claims, signer=signer, gateway_key=intake.public())

    def signer_key(kid: KeyID) -> SignerKey | None:
        return SignerKey(signer.public(), CREDITOR) if kid == signer.kid else None

    opened = open_envelope(
        envelope,
        intake_keys=[intake],
        signer_key=signer_key,
        sender=CREDITOR,
        audience=GATEWAY,
        now=NOW,
    )
    assert notice_claims(opened.jws) == opened.claims == claims


@pytest.mark.parametrize(
    "signed",
    [
        "not a jws",
        "a.b.c",
        sign_document({"iss": CREDITOR}, typ="receipt+jwt", signer=PrivateKey.generate("sig")),
        sign_document(["a list"], typ="notice+jwt", signer=PrivateKey.generate("sig")),
    ],
    ids=["text", "not-base64-json", "another-typ", "not-an-object"],
)
def test_refuses_what_is_not_a_signed_notice(signed: str) -> None:
    with pytest.raises(EnvelopeInvalid) as refused:
        notice_claims(signed)
    assert refused.value.cause == "malformed"
