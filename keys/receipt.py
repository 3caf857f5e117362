"""Receipts: the gateway's signed account of what became of each envelope.

One shape for every intake (docs/envelope.md, "Receipt"). Receipts are built by the
gateway, signed here, and verified by the creditor against the gateway's published keys.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from keys.errors import ReceiptInvalid
from keys.jose import RECEIPT_REGISTRY
from keys.jwk import PrivateKey, PublicKey
from keys.signed import sign_document, verify_document

RECEIPT_TYP = "receipt+jwt"
OUTCOMES = ("accepted", "duplicate", "refused")
INTAKES = ("rest", "sftp")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ITEM_MEMBERS = frozenset({"position", "envelopeSha256", "jti", "outcome", "reason"})
_RECEIPT_MEMBERS = frozenset({"iss", "aud", "id", "iat", "intake", "source", "items"})
_FILE_REASONS = ("file_unreadable", "file_too_large")
"""Why a batch file was refused as a whole (the optional member ``refused``)."""


def sign_receipt(receipt: dict[str, Any], *, signer: PrivateKey) -> str:
    """Check the receipt's shape and sign it with the gateway's signing key."""
    _check(receipt)
    return sign_document(receipt, typ=RECEIPT_TYP, signer=signer, registry=RECEIPT_REGISTRY)


def verify_receipt(token: str, *, keys: Sequence[PublicKey]) -> dict[str, Any]:
    """Verify a receipt's signature by one of the gateway's keys, and its shape."""
    receipt = verify_document(
        token, typ=RECEIPT_TYP, keys=keys, error=ReceiptInvalid, registry=RECEIPT_REGISTRY
    )
    _check(receipt)
    return receipt


def _check(receipt: dict[str, Any]) -> None:
    members = set(receipt)
    if "refused" in members:
        # A batch file refused as a whole: why, and no items.
        if receipt["refused"] not in _FILE_REASONS or receipt.get("items") != []:
            raise ReceiptInvalid("a refused file has a file reason and no items", cause="malformed")
        members.discard("refused")
    if members != _RECEIPT_MEMBERS or not isinstance(receipt["items"], list):
        raise ReceiptInvalid("receipt members are wrong", cause="malformed")
    if receipt["intake"] not in INTAKES:
        raise ReceiptInvalid("receipt names an unknown intake", cause="malformed")
    for position, item in enumerate(receipt["items"]):
        if not isinstance(item, dict) or set(item) != _ITEM_MEMBERS:
            raise ReceiptInvalid("receipt item members are wrong", cause="malformed")
        if type(item["position"]) is not int or item["position"] != position:
            raise ReceiptInvalid("receipt item is out of place", cause="malformed")
        sha = item["envelopeSha256"]
        if item["outcome"] not in OUTCOMES or not isinstance(sha, str) or not _SHA256.match(sha):
            raise ReceiptInvalid("receipt item is inconsistent", cause="malformed")
        if (item["outcome"] == "refused") != (item["reason"] is not None):
            raise ReceiptInvalid("a refusal needs a reason, and only a refusal", cause="malformed")
