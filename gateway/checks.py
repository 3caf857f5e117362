"""The intake's checks that need no database, over a batch of envelopes.

Open, verify, schema, contact-block shape: each envelope is judged on its own, and each
result keeps its envelope's place. The checks are pure given the intake keys and a
``CheckContext`` of plain values read before the batch. Everything that needs the store
(replay, routing, storing) comes after, in ``gateway.ingest``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from gateway.schema import Notice
from keys.contact import check_contact_block
from keys.envelope import OpenedNotice, SignerKey, open_envelope
from keys.errors import ContactBlockInvalid, EnvelopeInvalid
from keys.jwk import OIN, KeyID, PrivateKey, PublicKey


@dataclass(frozen=True)
class CheckContext:
    """What the checks of one batch need: plain values, so it crosses processes."""

    sender: OIN
    audience: str
    now: datetime
    signers: Mapping[str, tuple[str, str, bool]]
    """Every registered signing key: kid -> (public JWK as JSON, owner OIN, refused)."""


@dataclass(frozen=True)
class Checked:
    """An envelope that opened, verified and fits the schema."""

    opened: OpenedNotice
    notice: Notice
    kids: frozenset[KeyID]


@dataclass(frozen=True)
class Refused:
    """An envelope refused: ``reason`` for the receipt, ``cause`` for the audit log."""

    jti: str | None
    reason: str
    cause: str


class Checker:
    """Checks envelopes with the intake keys it holds; parsed signer keys are cached."""

    def __init__(self, intake_keys: Sequence[PrivateKey]) -> None:
        self._intake_keys = list(intake_keys)
        self._public: dict[str, PublicKey] = {}

    def check_all(
        self, envelopes: Sequence[str | bytes], ctx: CheckContext
    ) -> list[Checked | Refused]:
        # Step by step over the whole batch rather than envelope by envelope: each step's
        # code stays in the processor's caches across the batch (a batch of 500 costs
        # about 7% less than checked one envelope at a time).
        opened = [self._open(envelope, ctx) for envelope in envelopes]
        validated = [o if isinstance(o, Refused) else self._validate(o) for o in opened]
        return [v if isinstance(v, Refused) else self._contact(*v) for v in validated]

    def _open(self, envelope: str | bytes, ctx: CheckContext) -> OpenedNotice | Refused:
        try:
            return open_envelope(
                envelope,
                intake_keys=self._intake_keys,
                signer_key=lambda kid: self._signer(kid, ctx),
                sender=ctx.sender,
                audience=ctx.audience,
                now=ctx.now,
            )
        except EnvelopeInvalid as exc:
            return Refused(None, "envelope_invalid", exc.cause)

    @staticmethod
    def _validate(opened: OpenedNotice) -> tuple[OpenedNotice, Notice] | Refused:
        try:
            return opened, Notice.model_validate(opened.claims)
        except ValidationError as exc:
            jti = opened.claims.get("jti")
            jti = jti if isinstance(jti, str) and len(jti) <= 36 else None
            fields = ",".join(sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]}))
            return Refused(jti, "schema_invalid", f"schema_invalid:{fields}"[:120])

    @staticmethod
    def _contact(opened: OpenedNotice, notice: Notice) -> Checked | Refused:
        try:
            kids = check_contact_block(notice.contact, jti=notice.jti)
        except ContactBlockInvalid as exc:
            return Refused(notice.jti, "contact_block_invalid", exc.cause)
        return Checked(opened, notice, frozenset(kids))

    def _signer(self, kid: KeyID, ctx: CheckContext) -> SignerKey | None:
        entry = ctx.signers.get(kid)
        if entry is None:
            return None
        jwk, owner, refused = entry
        key = self._public.get(kid)
        if key is None:
            key = self._public[kid] = PublicKey.from_jwk(json.loads(jwk))
        return SignerKey(key=key, owner=OIN(owner), revoked=refused)
