"""Sealing and opening envelopes: what opens, what is refused, and in which order.

The known-answer cases live in tests/vectors (test_vectors.py); these tests cover the
behaviour around them: round trips of arbitrary notices, tampering anywhere in the bytes,
key rotation at the intake, and that nothing about a notice is trusted before its
signature verified against the sender's own key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jwe

from keys.envelope import (
    NOTICE_TYP,
    OpenedNotice,
    SignerKey,
    encrypt_jwt,
    envelope_sha256,
    open_envelope,
    seal_envelope,
)
from keys.errors import ENVELOPE_CAUSES, EnvelopeInvalid, Error
from keys.jose import ENC_ALG, JWE_REGISTRY, KEY_ALG, canonical
from keys.jwk import OIN, KeyID, PrivateKey
from keys.limits import MAX_ENVELOPE_BYTES
from keys.signed import sign_document

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
T = int(NOW.timestamp())
DAY = 86_400
CREDITOR = OIN("00000003123456780000")
OTHER_CREDITOR = OIN("00000003876543210000")
GATEWAY = "signaalpoort-test"


@dataclass(frozen=True)
class Parties:
    creditor: PrivateKey
    other_creditor: PrivateKey
    intake: PrivateKey

    def signer_key(self, *, revoked: frozenset[str] = frozenset()) -> Callable[[KeyID], Any]:
        registry = {
            self.creditor.kid: SignerKey(self.creditor.public(), CREDITOR),
            self.other_creditor.kid: SignerKey(self.other_creditor.public(), OTHER_CREDITOR),
        }

        def lookup(kid: KeyID) -> SignerKey | None:
            record = registry.get(kid)
            if record is not None and kid in revoked:
                return SignerKey(record.key, record.owner, revoked=True)
            return record

        return lookup


@pytest.fixture(scope="module")
def parties() -> Parties:
    return Parties(
        creditor=PrivateKey.generate("sig"),
        other_creditor=PrivateKey.generate("sig"),
        intake=PrivateKey.generate("enc"),
    )


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"iss": CREDITOR, "aud": GATEWAY, "iat": T - 60, "exp": T + DAY}
    return {**base, **changes}


def seal(parties: Parties, notice: dict[str, Any], *, signer: PrivateKey | None = None) -> str:
    return seal_envelope(
        notice, signer=signer or parties.creditor, gateway_key=parties.intake.public()
    )


def open_(
    parties: Parties,
    envelope: str | bytes,
    *,
    sender: OIN = CREDITOR,
    now: datetime = NOW,
    intake_keys: list[PrivateKey] | None = None,
    signer_key: Callable[[KeyID], Any] | None = None,
) -> OpenedNotice:
    return open_envelope(
        envelope,
        intake_keys=intake_keys or [parties.intake],
        signer_key=signer_key or parties.signer_key(),
        sender=sender,
        audience=GATEWAY,
        now=now,
    )


def cause_of(call: Callable[[], object]) -> str:
    with pytest.raises(EnvelopeInvalid) as info:
        call()
    assert info.value.code == "envelope_invalid"
    return info.value.cause


# --- what opens -----------------------------------------------------------------------------


def test_sealed_notice_opens_to_its_claims_signer_and_payload_hash(parties: Parties) -> None:
    notice = claims(ref="HUUR-1", bedrag="12.00")
    opened = open_(parties, seal(parties, notice))
    assert opened.claims == notice
    assert opened.signer_kid == parties.creditor.kid
    assert opened.payload_sha256 == hashlib.sha256(canonical(notice)).hexdigest()
    assert opened.jws.count(".") == 2


def test_envelope_opens_from_bytes_as_from_text(parties: Parties) -> None:
    envelope = seal(parties, claims())
    assert open_(parties, envelope.encode("ascii")).claims == open_(parties, envelope).claims
    assert envelope_sha256(envelope) == envelope_sha256(envelope.encode("ascii"))
    assert envelope_sha256(envelope) == hashlib.sha256(envelope.encode()).hexdigest()


def test_resealing_the_same_notice_gives_the_same_payload_hash(parties: Parties) -> None:
    notice = claims(ref="HUUR-2")
    first, second = seal(parties, notice), seal(parties, notice)
    assert first != second  # fresh ephemeral key, content key and IV every time
    assert open_(parties, first).payload_sha256 == open_(parties, second).payload_sha256


def test_changed_content_under_the_same_jti_gives_another_payload_hash(parties: Parties) -> None:
    one = open_(parties, seal(parties, claims(jti="j", bedrag="10.00")))
    other = open_(parties, seal(parties, claims(jti="j", bedrag="10.01")))
    assert one.claims["jti"] == other.claims["jti"]
    assert one.payload_sha256 != other.payload_sha256


JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(max_size=24)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=16,
)
NOTICES = st.dictionaries(
    st.text(max_size=16).filter(lambda name: name not in {"iss", "aud", "iat", "exp"}),
    JSON_VALUES,
    max_size=8,
).map(lambda extra: {**extra, **claims()})


@settings(max_examples=150, deadline=None)
@given(notice=NOTICES)
def test_open_seal_round_trips_any_notice_shaped_object(
    parties: Parties, notice: dict[str, Any]
) -> None:
    opened = open_(parties, seal(parties, notice))
    assert opened.claims == notice
    assert opened.payload_sha256 == hashlib.sha256(canonical(notice)).hexdigest()


def test_notice_sealed_to_the_next_intake_key_opens_during_rotation(parties: Parties) -> None:
    next_key = PrivateKey.generate("enc")
    envelope = seal_envelope(claims(), signer=parties.creditor, gateway_key=next_key.public())
    assert open_(parties, envelope, intake_keys=[parties.intake, next_key]).claims == claims()
    assert cause_of(lambda: open_(parties, envelope)) == "wrong_recipient"


# --- tampering ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sealed(parties: Parties) -> str:
    return seal(parties, claims(ref="HUUR-3", bedrag="99.99"))


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_single_flipped_bit_in_an_envelope_is_refused(
    parties: Parties, sealed: str, data: st.DataObject
) -> None:
    raw = bytearray(sealed.encode("ascii"))
    index = data.draw(st.integers(0, len(raw) - 1), label="byte")
    raw[index] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    # Any cause will do (a flip may break the base64url, the header, the tag, ...);
    # what must never happen is success, or an exception that is not EnvelopeInvalid.
    cause = cause_of(lambda: open_(parties, bytes(raw)))
    assert cause in ENVELOPE_CAUSES


def test_every_bit_of_the_header_iv_tag_and_encrypted_key_is_protected(
    parties: Parties, sealed: str
) -> None:
    header, key, iv, _, tag = sealed.split(".")
    starts = {
        "header": 0,
        "key": len(header) + 1,
        "iv": len(header) + len(key) + 2,
        "tag": len(sealed) - len(tag),
    }
    lengths = {"header": len(header), "key": len(key), "iv": len(iv), "tag": len(tag)}
    for part, start in starts.items():
        for index in range(start, start + lengths[part]):
            for bit in range(8):
                raw = bytearray(sealed.encode("ascii"))
                raw[index] ^= 1 << bit
                with pytest.raises(EnvelopeInvalid):
                    open_(parties, bytes(raw))


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_flipped_bit_in_the_signed_notice_is_refused_even_when_re_encrypted(
    parties: Parties, data: st.DataObject
) -> None:
    signed = bytearray(sign_document(claims(), typ=NOTICE_TYP, signer=parties.creditor).encode())
    index = data.draw(st.integers(0, len(signed) - 1), label="byte")
    signed[index] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    header = {"alg": KEY_ALG, "enc": ENC_ALG, "kid": parties.intake.kid, "cty": "JWT"}
    envelope = jwe.encrypt_compact(
        header, bytes(signed), parties.intake.public().jose, registry=JWE_REGISTRY
    )
    assert cause_of(lambda: open_(parties, envelope)) in ENVELOPE_CAUSES


def test_size_limit_counts_the_envelope_as_received(parties: Parties) -> None:
    at_limit = "A" * MAX_ENVELOPE_BYTES
    assert cause_of(lambda: open_(parties, at_limit)) == "malformed"
    assert cause_of(lambda: open_(parties, at_limit + "A")) == "oversized"
    assert cause_of(lambda: open_(parties, (at_limit + "A").encode())) == "oversized"


def test_non_ascii_bytes_are_malformed_not_a_decoding_error(parties: Parties) -> None:
    envelope = seal(parties, claims()).encode("ascii")
    assert cause_of(lambda: open_(parties, b"\xff" + envelope[1:])) == "malformed"
    assert cause_of(lambda: open_(parties, "\u00e9" + seal(parties, claims())[1:])) == "malformed"


# --- who signed -----------------------------------------------------------------------------


def test_signer_is_looked_up_only_after_the_envelope_decrypted(parties: Parties) -> None:
    asked: list[str] = []

    def lookup(kid: KeyID) -> SignerKey | None:
        asked.append(kid)
        return parties.signer_key()(kid)

    stranger = PrivateKey.generate("enc")
    not_ours = seal_envelope(claims(), signer=parties.creditor, gateway_key=stranger.public())
    assert cause_of(lambda: open_(parties, not_ours, signer_key=lookup)) == "wrong_recipient"
    assert asked == []
    open_(parties, seal(parties, claims()), signer_key=lookup)
    assert asked == [parties.creditor.kid]


def test_notice_signed_by_another_creditor_is_refused_even_with_matching_iss(
    parties: Parties,
) -> None:
    envelope = seal(parties, claims(iss=OTHER_CREDITOR), signer=parties.other_creditor)
    assert cause_of(lambda: open_(parties, envelope)) == "signer_mismatch"
    assert open_(parties, envelope, sender=OTHER_CREDITOR).claims["iss"] == OTHER_CREDITOR


def test_revoked_signing_key_is_refused_at_once(parties: Parties) -> None:
    envelope = seal(parties, claims())
    revoked = parties.signer_key(revoked=frozenset({parties.creditor.kid}))
    assert cause_of(lambda: open_(parties, envelope, signer_key=revoked)) == "key_revoked"


def test_unregistered_key_is_refused_before_its_signature_is_checked(parties: Parties) -> None:
    stranger = PrivateKey.generate("sig")
    envelope = seal(parties, claims(), signer=stranger)
    assert cause_of(lambda: open_(parties, envelope)) == "key_unknown"


def test_notice_signed_with_an_encryption_key_cannot_be_sealed(parties: Parties) -> None:
    with pytest.raises(Error):
        seal_envelope(claims(), signer=parties.intake, gateway_key=parties.intake.public())


def test_plain_signed_notice_without_encryption_is_refused(parties: Parties) -> None:
    signed = sign_document(claims(), typ=NOTICE_TYP, signer=parties.creditor)
    assert cause_of(lambda: open_(parties, signed)) == "malformed"


def test_signed_document_of_another_type_is_refused(parties: Parties) -> None:
    receipt_like = sign_document(claims(), typ="receipt+jwt", signer=parties.creditor)
    envelope = encrypt_jwt(receipt_like, parties.intake.public())
    assert cause_of(lambda: open_(parties, envelope)) == "header_invalid"


# --- time -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("iat", "exp", "cause"),
    [
        (T - 20 * DAY, T - 301, "expired"),
        (T - 20 * DAY, T - 300, "expired"),
        (T + 301, T + DAY, "not_yet_valid"),
        (T, T + 31 * DAY + 1, "lifetime_too_long"),
        (T + 200, T + 100, "lifetime_too_long"),
    ],
    ids=["expired", "expired-at-skew", "future", "too-long", "exp-before-iat"],
)
def test_notice_outside_its_time_window_is_refused(
    parties: Parties, iat: int, exp: int, cause: str
) -> None:
    envelope = seal(parties, claims(iat=iat, exp=exp))
    assert cause_of(lambda: open_(parties, envelope)) == cause


@pytest.mark.parametrize(
    ("iat", "exp"),
    [(T - 20 * DAY, T - 299), (T + 300, T + DAY), (T, T + 31 * DAY), (T, T)],
    ids=["expiring-within-skew", "iat-at-skew", "lifetime-31-days", "zero-lifetime"],
)
def test_notice_at_the_edges_of_its_time_window_opens(parties: Parties, iat: int, exp: int) -> None:
    assert open_(parties, seal(parties, claims(iat=iat, exp=exp))).claims["exp"] == exp


def test_the_gateway_clock_decides_not_the_senders(parties: Parties) -> None:
    envelope = seal(parties, claims(iat=T, exp=T + DAY))
    assert open_(parties, envelope, now=NOW + timedelta(hours=23)).claims["iat"] == T
    later = NOW + timedelta(days=1, minutes=5)
    assert cause_of(lambda: open_(parties, envelope, now=later)) == "expired"
