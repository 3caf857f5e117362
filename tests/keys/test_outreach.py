"""The municipality's outreach key set: creditors trust it only when it verifies against
the municipality key they pinned, so the gateway that serves it cannot add a key."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from keys.contact import open_contact, seal_contact
from keys.errors import KeySetInvalid
from keys.jwk import OIN, PrivateKey
from keys.outreach import (
    KEYSET_TYP,
    OutreachKeySet,
    OutreachRecipient,
    sign_outreach_keyset,
    verify_outreach_keyset,
)
from keys.signed import sign_document

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
GEMEENTE = "0363"
MUNICIPALITY = OIN("00000001000000036300")
NOORD, ZUID = OIN("00000001000000036301"), OIN("00000001000000036302")


@pytest.fixture(scope="module")
def municipality() -> PrivateKey:
    return PrivateKey.generate("sig")


@pytest.fixture(scope="module")
def teams() -> dict[str, PrivateKey]:
    return {NOORD: PrivateKey.generate("enc"), ZUID: PrivateKey.generate("enc")}


def recipients(teams: dict[str, PrivateKey]) -> list[OutreachRecipient]:
    names = {NOORD: "Vroeg Eropaf! Noord", ZUID: "Vroeg Eropaf! Zuid"}
    return [
        OutreachRecipient(OIN(oin), names.get(oin, "extra"), key.public())
        for oin, key in teams.items()
    ]


def signed_set(signer: PrivateKey, teams: dict[str, PrivateKey], gemeente: str = GEMEENTE) -> str:
    return sign_outreach_keyset(
        gemeente=gemeente, issuer=MUNICIPALITY, recipients=recipients(teams), signer=signer, now=NOW
    )


def verify(token: str, pin: PrivateKey) -> OutreachKeySet:
    return verify_outreach_keyset(token, pinned=[pin.public()], gemeente=GEMEENTE)


def cause_of(token: str, pin: PrivateKey) -> str:
    with pytest.raises(KeySetInvalid) as info:
        verify(token, pin)
    assert info.value.code == "keyset_invalid"
    return info.value.cause


def test_set_signed_by_the_pinned_key_lists_every_team(
    municipality: PrivateKey, teams: dict[str, PrivateKey]
) -> None:
    keyset = verify(signed_set(municipality, teams), municipality)
    assert keyset.gemeente == GEMEENTE
    assert keyset.issuer == MUNICIPALITY
    assert keyset.issued_at == int(NOW.timestamp())
    assert [r.oin for r in keyset.recipients] == [NOORD, ZUID]
    assert keyset.keys == [teams[NOORD].public(), teams[ZUID].public()]
    assert keyset.recipient(ZUID).name == "Vroeg Eropaf! Zuid"


def test_unknown_team_is_not_in_the_set(
    municipality: PrivateKey, teams: dict[str, PrivateKey]
) -> None:
    keyset = verify(signed_set(municipality, teams), municipality)
    with pytest.raises(KeySetInvalid) as info:
        keyset.recipient("00000001000000036399")
    assert info.value.cause == "recipient_unknown"


def test_set_signed_by_another_key_than_the_pin_is_refused(
    municipality: PrivateKey, teams: dict[str, PrivateKey]
) -> None:
    gateway = PrivateKey.generate("sig")
    assert cause_of(signed_set(gateway, teams), municipality) == "key_unknown"


def test_set_signed_by_another_key_under_the_pinned_kid_is_refused(
    municipality: PrivateKey, teams: dict[str, PrivateKey]
) -> None:
    token = signed_set(PrivateKey.generate("sig"), teams)
    header, payload, signature = token.split(".")
    genuine = signed_set(municipality, teams).split(".")
    forged = ".".join((genuine[0], payload, signature))
    assert cause_of(forged, municipality) == "signature_invalid"


def test_gateway_cannot_slip_in_a_key_of_its_own(
    municipality: PrivateKey, teams: dict[str, PrivateKey]
) -> None:
    token = signed_set(municipality, teams)
    with_gateway = {**teams, "00000009876543210000": PrivateKey.generate("enc")}
    header, _, signature = token.split(".")
    _, payload, _ = signed_set(PrivateKey.generate("sig"), with_gateway).split(".")
    assert cause_of(".".join((header, payload, signature)), municipality) == "signature_invalid"


def test_set_for_another_municipality_is_refused(
    municipality: PrivateKey, teams: dict[str, PrivateKey]
) -> None:
    assert cause_of(signed_set(municipality, teams, gemeente="0599"), municipality) == (
        "wrong_gemeente"
    )


def test_set_with_a_signing_key_inside_is_refused(
    municipality: PrivateKey, teams: dict[str, PrivateKey]
) -> None:
    mixed = {NOORD: teams[NOORD], ZUID: PrivateKey.generate("sig")}
    assert cause_of(signed_set(municipality, mixed), municipality) == "malformed"


def test_set_listing_a_key_twice_is_refused(
    municipality: PrivateKey, teams: dict[str, PrivateKey]
) -> None:
    twice = [*recipients(teams), recipients(teams)[0]]
    token = sign_outreach_keyset(
        gemeente=GEMEENTE, issuer=MUNICIPALITY, recipients=twice, signer=municipality, now=NOW
    )
    assert cause_of(token, municipality) == "malformed"


def test_set_with_a_private_key_member_is_refused(
    municipality: PrivateKey, teams: dict[str, PrivateKey]
) -> None:
    payload = {
        "iss": MUNICIPALITY,
        "gemeente": GEMEENTE,
        "iat": int(NOW.timestamp()),
        "recipients": [{"oin": NOORD, "name": "Noord", "jwk": teams[NOORD].to_jwk()}],
    }
    token = sign_document(payload, typ=KEYSET_TYP, signer=municipality)
    assert cause_of(token, municipality) == "malformed"


def test_empty_set_is_refused(municipality: PrivateKey) -> None:
    payload = {"iss": MUNICIPALITY, "gemeente": GEMEENTE, "iat": 0, "recipients": []}
    token = sign_document(payload, typ=KEYSET_TYP, signer=municipality)
    assert cause_of(token, municipality) == "malformed"


def test_another_signed_document_is_not_a_key_set(
    municipality: PrivateKey, teams: dict[str, PrivateKey]
) -> None:
    payload = {"iss": MUNICIPALITY, "gemeente": GEMEENTE, "iat": 0, "recipients": []}
    token = sign_document(payload, typ="receipt+jwt", signer=municipality)
    assert cause_of(token, municipality) == "header_invalid"


def test_contact_block_sealed_to_a_verified_set_opens_for_each_team(
    municipality: PrivateKey, teams: dict[str, PrivateKey]
) -> None:
    keyset = verify(signed_set(municipality, teams), municipality)
    block = seal_contact({"achternaam": "Berg"}, jti="j", recipients=keyset.keys)
    for key in teams.values():
        assert open_contact(copy.deepcopy(block), keys=[key], jti="j") == {"achternaam": "Berg"}
