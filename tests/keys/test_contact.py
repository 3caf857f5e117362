"""Contact blocks: sealed once to every outreach key, bound to one notice, opened by one team.

The gateway checks a block's shape and strips it to the one recipient a signal goes to,
without any key that opens it; only that recipient can then read it.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.contact import (
    CONTACT_FIELDS,
    check_contact_block,
    open_contact,
    seal_contact,
    strip_contact,
)
from keys.errors import ContactBlockInvalid
from keys.jose import b64d, b64e
from keys.jwk import PrivateKey
from keys.limits import MAX_CONTACT_RECIPIENTS

JTI = "5f0c3b0e-3c1e-5a47-9d0e-4a8e2f7f6c11"
CONTACT = {
    "voorletters": "J.P.",
    "voorvoegsel": "van der",
    "achternaam": "Berg",
    "postcode": "1011AB",
    "huisnummer": "12",
    "telefoon": "+31200000000",
}


@pytest.fixture(scope="module")
def team_a() -> PrivateKey:
    return PrivateKey.generate("enc")


@pytest.fixture(scope="module")
def team_b() -> PrivateKey:
    return PrivateKey.generate("enc")


@pytest.fixture(scope="module")
def block(team_a: PrivateKey, team_b: PrivateKey) -> dict[str, Any]:
    return seal_contact(CONTACT, jti=JTI, recipients=[team_a.public(), team_b.public()])


def cause_of(block: Any, keys: list[PrivateKey], jti: str = JTI) -> str:
    with pytest.raises(ContactBlockInvalid) as info:
        open_contact(block, keys=keys, jti=jti)
    assert info.value.code == "contact_block_invalid"
    return info.value.cause


def test_every_recipient_opens_the_same_contact_details(
    block: dict[str, Any], team_a: PrivateKey, team_b: PrivateKey
) -> None:
    assert open_contact(block, keys=[team_a], jti=JTI) == CONTACT
    assert open_contact(block, keys=[team_b], jti=JTI) == CONTACT


def test_gateway_reads_the_recipients_without_any_key(
    block: dict[str, Any], team_a: PrivateKey, team_b: PrivateKey
) -> None:
    assert check_contact_block(block, jti=JTI) == [team_a.kid, team_b.kid]


def test_block_has_exactly_the_profile_members(block: dict[str, Any]) -> None:
    assert set(block) == {"protected", "recipients", "iv", "ciphertext", "tag"}
    assert {"enc", "cty", "jti"} == set(json.loads(b64d(block["protected"])))
    for recipient in block["recipients"]:
        assert set(recipient) == {"header", "encrypted_key"}
        assert set(recipient["header"]) == {"alg", "kid", "epk"}


def test_stripped_block_opens_only_for_the_recipient_it_was_stripped_to(
    block: dict[str, Any], team_a: PrivateKey, team_b: PrivateKey
) -> None:
    stripped = strip_contact(block, kid=team_a.kid)
    assert [r["header"]["kid"] for r in stripped["recipients"]] == [team_a.kid]
    assert open_contact(stripped, keys=[team_a], jti=JTI) == CONTACT
    assert cause_of(stripped, [team_b]) == "not_a_recipient"
    assert len(block["recipients"]) == 2  # the original is left alone


def test_stripping_to_a_key_that_is_not_a_recipient_is_refused(
    block: dict[str, Any],
) -> None:
    with pytest.raises(ContactBlockInvalid) as info:
        strip_contact(block, kid=PrivateKey.generate("enc").kid)
    assert info.value.cause == "not_a_recipient"


def test_block_moved_to_another_notice_does_not_open(
    block: dict[str, Any], team_a: PrivateKey
) -> None:
    assert cause_of(block, [team_a], jti="another-notice") == "wrong_notice"
    with pytest.raises(ContactBlockInvalid):
        check_contact_block(block, jti="another-notice")


def test_a_team_key_of_the_wrong_use_does_not_open(block: dict[str, Any]) -> None:
    assert cause_of(block, [PrivateKey.generate("sig")]) == "not_a_recipient"


def test_sealing_refuses_fields_outside_the_contact_profile(team_a: PrivateKey) -> None:
    with pytest.raises(ContactBlockInvalid):
        seal_contact({"bsn": "999999990"}, jti=JTI, recipients=[team_a.public()])


def test_sealing_needs_one_to_sixty_four_encryption_keys(team_a: PrivateKey) -> None:
    with pytest.raises(ContactBlockInvalid):
        seal_contact(CONTACT, jti=JTI, recipients=[])
    with pytest.raises(ContactBlockInvalid):
        seal_contact(CONTACT, jti=JTI, recipients=[team_a.public()] * (MAX_CONTACT_RECIPIENTS + 1))
    with pytest.raises(ContactBlockInvalid):
        seal_contact(CONTACT, jti=JTI, recipients=[PrivateKey.generate("sig").public()])


def test_block_with_more_than_sixty_four_recipients_is_refused(block: dict[str, Any]) -> None:
    crowded = copy.deepcopy(block)
    crowded["recipients"] = [crowded["recipients"][0]] * (MAX_CONTACT_RECIPIENTS + 1)
    with pytest.raises(ContactBlockInvalid) as info:
        check_contact_block(crowded, jti=JTI)
    assert info.value.cause == "malformed"


@pytest.mark.parametrize("value", [None, "text", [], 7])
def test_anything_but_a_block_object_is_malformed(value: Any, team_a: PrivateKey) -> None:
    assert cause_of(value, [team_a]) == "malformed"


@settings(max_examples=60, deadline=None)
@given(
    contact=st.dictionaries(
        st.sampled_from(CONTACT_FIELDS), st.text(max_size=40), min_size=0, max_size=13
    )
)
def test_any_contact_details_round_trip(
    contact: dict[str, str], team_a: PrivateKey, team_b: PrivateKey
) -> None:
    sealed = seal_contact(contact, jti=JTI, recipients=[team_a.public(), team_b.public()])
    assert open_contact(sealed, keys=[team_b], jti=JTI) == contact


@pytest.mark.parametrize(
    "header",
    [
        '{"enc": "A256GCM", "cty": "contact+json", "jti": "%s"}',  # spaces
        '{"enc":"A256GCM","cty":"contact+json","jti":"\\u0035%s"}',  # an escape not needed
    ],
)
def test_the_gateway_refuses_a_protected_header_that_is_not_compact(
    block: dict[str, Any], header: str
) -> None:
    # The AAD is the member as received; a JOSE library that rebuilds it from the
    # parsed header would fail to open anything not written compactly.
    jti = JTI if "\\u0035" not in header else JTI[1:]
    loose = {**block, "protected": b64e((header % jti).encode("ascii"))}
    with pytest.raises(ContactBlockInvalid) as info:
        check_contact_block(loose, jti=JTI)
    assert info.value.cause == "header_invalid"


def test_the_gateway_takes_a_compact_header_in_any_member_order(
    block: dict[str, Any], team_a: PrivateKey
) -> None:
    reordered = json.dumps({"jti": JTI, "cty": "contact+json", "enc": "A256GCM"})
    compact = reordered.replace(" ", "").encode("ascii")
    assert check_contact_block({**block, "protected": b64e(compact)}, jti=JTI) == [
        r["header"]["kid"] for r in block["recipients"]
    ]


# --- tampering ------------------------------------------------------------------------------

SHARED = ("protected", "iv", "ciphertext", "tag")
OWN = ("encrypted_key", "epk.x", "epk.y")


def _get(block: dict[str, Any], member: str) -> str:
    recipient = block["recipients"][0]
    if member in SHARED:
        return str(block[member])
    if member == "encrypted_key":
        return str(recipient["encrypted_key"])
    return str(recipient["header"]["epk"][member.split(".")[1]])


def _set(block: dict[str, Any], member: str, value: str) -> None:
    recipient = block["recipients"][0]
    if member in SHARED:
        block[member] = value
    elif member == "encrypted_key":
        recipient["encrypted_key"] = value
    else:
        recipient["header"]["epk"][member.split(".")[1]] = value


def _flip(text: str, index: int, bit: int) -> str:
    return text[:index] + chr(ord(text[index]) ^ (1 << bit)) + text[index + 1 :]


@settings(max_examples=200, deadline=None)
@given(member=st.sampled_from(SHARED + OWN), data=st.data())
def test_any_flipped_bit_in_the_shared_parts_or_the_openers_own_entry_is_refused(
    block: dict[str, Any], team_a: PrivateKey, member: str, data: st.DataObject
) -> None:
    tampered = copy.deepcopy(block)
    text = _get(tampered, member)
    index = data.draw(st.integers(0, len(text) - 1), label="index")
    _set(tampered, member, _flip(text, index, data.draw(st.integers(0, 7), label="bit")))
    cause_of(tampered, [team_a])


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_flip_in_another_recipients_key_breaks_only_that_recipient(
    block: dict[str, Any], team_a: PrivateKey, team_b: PrivateKey, data: st.DataObject
) -> None:
    # Per-recipient data is not covered by the tag (RFC 7516): team A cannot notice a
    # change to team B's encrypted key, but team B can never open the changed block.
    tampered = copy.deepcopy(block)
    text = tampered["recipients"][1]["encrypted_key"]
    index = data.draw(st.integers(0, len(text) - 1), label="index")
    flipped = _flip(text, index, data.draw(st.integers(0, 7), label="bit"))
    tampered["recipients"][1]["encrypted_key"] = flipped
    cause_of(tampered, [team_b])
    try:
        assert open_contact(tampered, keys=[team_a], jti=JTI) == CONTACT
    except ContactBlockInvalid as exc:
        assert exc.cause == "malformed"  # the flip broke the base64url itself
