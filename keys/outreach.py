"""The municipality's outreach key set: its teams' encryption keys, signed by it.

Creditors pin the municipality's signing key at enrolment and seal contact blocks only
to a key set that verifies against the pin, so the gateway, which serves the set,
cannot slip in a key of its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from keys.errors import KeyringError, KeySetInvalid
from keys.jwk import OIN, PrivateKey, PublicKey
from keys.limits import MAX_CONTACT_RECIPIENTS
from keys.signed import sign_document, verify_document

KEYSET_TYP = "outreach-keys+jwt"
_OIN = re.compile(r"^[0-9]{20}$")


@dataclass(frozen=True)
class OutreachRecipient:
    """One team or back office and the key its contact blocks are sealed to."""

    oin: OIN
    name: str
    key: PublicKey


@dataclass(frozen=True)
class OutreachKeySet:
    """A verified outreach key set of one municipality."""

    gemeente: str
    issuer: OIN
    issued_at: int
    recipients: tuple[OutreachRecipient, ...]
    signed: str

    @property
    def keys(self) -> list[PublicKey]:
        return [r.key for r in self.recipients]

    def recipient(self, oin: str) -> OutreachRecipient:
        """The recipient entry for a team's OIN."""
        for r in self.recipients:
            if r.oin == oin:
                return r
        raise KeySetInvalid("no such recipient in the key set", cause="recipient_unknown")


def sign_outreach_keyset(
    *,
    gemeente: str,
    issuer: OIN,
    recipients: Sequence[OutreachRecipient],
    signer: PrivateKey,
    now: datetime,
) -> str:
    """The municipality signs the set of its outreach encryption keys."""
    payload = {
        "iss": issuer,
        "gemeente": gemeente,
        "iat": int(now.timestamp()),
        "recipients": [{"oin": r.oin, "name": r.name, "jwk": r.key.jwk} for r in recipients],
    }
    return sign_document(payload, typ=KEYSET_TYP, signer=signer)


def verify_outreach_keyset(
    signed: str, *, pinned: Sequence[PublicKey], gemeente: str
) -> OutreachKeySet:
    """Verify a key set against the pinned municipality keys; refuse anything else."""
    doc = verify_document(signed, typ=KEYSET_TYP, keys=pinned, error=KeySetInvalid)
    if doc.get("gemeente") != gemeente:
        raise KeySetInvalid("key set is for another municipality", cause="wrong_gemeente")
    items = doc.get("recipients")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_CONTACT_RECIPIENTS:
        raise KeySetInvalid("key set lists 1 to 64 recipients", cause="malformed")
    try:
        recipients = tuple(_recipient(item) for item in items)
    except (KeyError, TypeError, KeyringError) as exc:
        raise KeySetInvalid("key set entry is malformed", cause="malformed") from exc
    if len({r.key.kid for r in recipients}) != len(recipients):
        raise KeySetInvalid("key set lists a key twice", cause="malformed")
    issued, issuer = doc.get("iat"), doc.get("iss")
    if type(issued) is not int or not isinstance(issuer, str) or not _OIN.match(issuer):
        raise KeySetInvalid("key set lacks iss or iat", cause="malformed")
    return OutreachKeySet(gemeente, OIN(issuer), issued, recipients, signed)


def _recipient(item: Any) -> OutreachRecipient:
    if not isinstance(item, dict) or set(item) != {"oin", "name", "jwk"}:
        raise KeyringError("a key set entry has exactly oin, name and jwk")
    key = PublicKey.from_jwk(item["jwk"])
    oin, name = item["oin"], item["name"]
    if (
        key.use != "enc"
        or not isinstance(oin, str)
        or not _OIN.match(oin)
        or not isinstance(name, str)
    ):
        raise KeyringError("outreach keys are encryption keys with an oin and a name")
    return OutreachRecipient(OIN(item["oin"]), item["name"], key)
