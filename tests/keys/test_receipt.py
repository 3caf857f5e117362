"""Receipts: the gateway's signed account of each envelope, verified by the creditor."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.envelope import envelope_sha256
from keys.errors import ReceiptInvalid
from keys.jwk import PrivateKey
from keys.receipt import RECEIPT_TYP, sign_receipt, verify_receipt
from keys.signed import sign_document

GATEWAY = "signaalpoort-test"
CREDITOR = "00000003123456780000"
JTI = "5f0c3b0e-3c1e-5a47-9d0e-4a8e2f7f6c11"


@pytest.fixture(scope="module")
def gateway_key() -> PrivateKey:
    return PrivateKey.generate("sig")


def item(position: int, outcome: str = "accepted", reason: str | None = None) -> dict[str, Any]:
    return {
        "position": position,
        "envelopeSha256": envelope_sha256(f"envelope {position}"),
        "jti": None if reason == "envelope_invalid" else JTI,
        "outcome": outcome,
        "reason": reason,
    }


def receipt(items: list[dict[str, Any]] | None = None, **changes: Any) -> dict[str, Any]:
    body = {
        "iss": GATEWAY,
        "aud": CREDITOR,
        "id": "2f6f0d3c-8d3e-4d1f-9b7a-0c6e4f1d2a3b",
        "iat": 1_772_443_800,
        "intake": "sftp",
        "source": "notices-2026-03.jsonl",
        "items": [item(0), item(1, "duplicate"), item(2, "refused", "envelope_invalid")]
        if items is None
        else items,
    }
    return {**body, **changes}


def cause_of(token: str, keys: list[PrivateKey]) -> str:
    with pytest.raises(ReceiptInvalid) as info:
        verify_receipt(token, keys=[k.public() for k in keys])
    assert info.value.code == "receipt_invalid"
    return info.value.cause


def test_signed_receipt_verifies_to_the_same_document(gateway_key: PrivateKey) -> None:
    body = receipt()
    token = sign_receipt(body, signer=gateway_key)
    assert verify_receipt(token, keys=[gateway_key.public()]) == body


def test_receipt_of_a_rest_request_has_no_source(gateway_key: PrivateKey) -> None:
    body = receipt(intake="rest", source=None)
    token = sign_receipt(body, signer=gateway_key)
    assert verify_receipt(token, keys=[gateway_key.public()])["source"] is None


def test_a_batch_file_refused_as_a_whole_says_why(gateway_key: PrivateKey) -> None:
    body = receipt([], refused="file_too_large")
    assert verify_receipt(sign_receipt(body, signer=gateway_key), keys=[gateway_key]) == body


def test_receipt_for_a_large_batch_verifies(gateway_key: PrivateKey) -> None:
    body = receipt([item(i) for i in range(5_000)])  # far above joserfc's 128 kB default
    token = sign_receipt(body, signer=gateway_key)
    assert len(verify_receipt(token, keys=[gateway_key.public()])["items"]) == 5_000


def test_receipt_signed_by_another_key_is_refused(gateway_key: PrivateKey) -> None:
    impostor = PrivateKey.generate("sig")
    assert cause_of(sign_receipt(receipt(), signer=impostor), [gateway_key]) == "key_unknown"


def test_receipt_verifies_against_any_published_gateway_key(gateway_key: PrivateKey) -> None:
    next_key = PrivateKey.generate("sig")
    token = sign_receipt(receipt(), signer=next_key)
    keys = [gateway_key.public(), next_key.public()]
    assert verify_receipt(token, keys=keys)["aud"] == CREDITOR


def test_another_signed_document_is_not_a_receipt(gateway_key: PrivateKey) -> None:
    token = sign_document(receipt(), typ="notice+jwt", signer=gateway_key)
    assert cause_of(token, [gateway_key]) == "header_invalid"


@pytest.mark.parametrize(
    "body",
    [
        receipt([item(0, "refused")]),
        receipt([item(0, "accepted", "schema_invalid")]),
        receipt([item(1)]),
        receipt([item(0, "rejected")]),
        {k: v for k, v in receipt().items() if k != "source"},
        receipt(extra="x"),
        receipt(items="none"),
        receipt([item(0)], refused="file_unreadable"),
        receipt([], refused="file_lost"),
    ],
    ids=[
        "refused-without-reason",
        "reason-without-refusal",
        "position-not-its-index",
        "unknown-outcome",
        "member-missing",
        "member-extra",
        "items-not-a-list",
        "refused-file-with-items",
        "refused-file-unknown-reason",
    ],
)
def test_gateway_refuses_to_sign_a_malformed_receipt(
    gateway_key: PrivateKey, body: dict[str, Any]
) -> None:
    with pytest.raises(ReceiptInvalid) as info:
        sign_receipt(body, signer=gateway_key)
    assert info.value.cause == "malformed"
    token = sign_document(body, typ=RECEIPT_TYP, signer=gateway_key)
    assert cause_of(token, [gateway_key]) == "malformed"


@pytest.fixture(scope="module")
def token(gateway_key: PrivateKey) -> str:
    return sign_receipt(receipt(), signer=gateway_key)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_single_flipped_bit_in_a_receipt_is_refused(
    gateway_key: PrivateKey, token: str, data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(token) - 1), label="index")
    bit = data.draw(st.integers(0, 7), label="bit")
    tampered = token[:index] + chr(ord(token[index]) ^ (1 << bit)) + token[index + 1 :]
    cause_of(tampered, [gateway_key])


def test_every_bit_of_the_receipt_signature_is_protected(
    gateway_key: PrivateKey, token: str
) -> None:
    start = token.rindex(".") + 1
    for index in range(start, len(token)):
        for bit in range(8):
            tampered = token[:index] + chr(ord(token[index]) ^ (1 << bit)) + token[index + 1 :]
            cause_of(tampered, [gateway_key])
