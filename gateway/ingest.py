"""The one ingest pipeline behind every intake (REST, SFTP, the demo's self-check).

    limits → identity → open → verify → schema → replay → store → route → receipt

The transport authenticates the sender before any of this runs. Opening and verifying
happen first and touch no table that changes; then one transaction stores every
accepted notice, its delivery, the audit events of every step and the signed receipt,
so a failure leaves nothing half-written and a retry gives ``duplicate`` for whatever
an earlier attempt did store.

The sender learns only what DESIGN.md allows: every failure before the signature
verifies is ``envelope_invalid``; the precise cause goes to the audit log.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import Connection, insert, select

from gateway.audit import new_trace_id, step
from gateway.checks import CheckContext, Checked, Refused
from gateway.routing import Route, Router
from gateway.schema import Notice
from gateway.service import Gateway
from gateway.store.atrest import bucket_for
from gateway.store.schema import deliveries, notices, receipts
from keys.contact import strip_contact
from keys.envelope import OpenedNotice, envelope_sha256
from keys.errors import KeySetInvalid
from keys.jwk import OIN
from keys.receipt import sign_receipt

Intake = Literal["rest", "sftp", "local"]
Outcome = Literal["accepted", "duplicate", "refused"]

INTAKE_ACTIVITY = "vroegsignalering: ontvangst signaal"


@dataclass(frozen=True)
class Item:
    """What became of one envelope, as the receipt lists it."""

    position: int
    envelope_sha256: str
    jti: str | None
    outcome: Outcome
    reason: str | None = None

    def to_receipt(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "envelopeSha256": self.envelope_sha256,
            "jti": self.jti,
            "outcome": self.outcome,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Receipt:
    """A signed receipt and its items."""

    id: str
    jws: str
    items: tuple[Item, ...]

    def count(self, outcome: Outcome) -> int:
        return sum(1 for i in self.items if i.outcome == outcome)


@dataclass(frozen=True)
class _Checked:
    """An envelope that passed every check that needs no write, and its route."""

    opened: OpenedNotice
    notice: Notice
    route: Route
    trace_id: str


def submit(
    gw: Gateway,
    *,
    sender: OIN,
    envelopes: Sequence[str | bytes],
    intake: Intake,
    source: str | None = None,
) -> Receipt:
    """Run every envelope of one delivery through the pipeline; return the receipt."""
    now = gw.clock.now()
    # The checks hold no connection: on SQLite an open transaction would hold the write
    # lock, and every other worker would wait for this one's cryptography.
    ctx = CheckContext(
        sender=sender,
        audience=gw.settings.gateway_id,
        now=now,
        signers=gw.directory.signing_keys(gw.engine, now=now),
    )
    router = Router(gw)
    results = [_route(router, result) for result in gw.check(envelopes, ctx)]
    hashes = [envelope_sha256(env) for env in envelopes]
    with gw.engine.begin() as conn:
        return _commit(gw, conn, sender, results, hashes, intake, source, now)


def _route(router: Router, result: Checked | Refused) -> _Checked | Refused:
    if isinstance(result, Refused):
        return result
    notice = result.notice
    try:
        decided = router.route(notice)
    except KeySetInvalid as exc:
        return Refused(notice.jti, "gemeente_unknown", exc.cause)
    if decided is None:
        return Refused(notice.jti, "gemeente_unknown", "no team for this gemeente")
    if not decided.keyset_kids <= result.kids:
        # Judged against the whole key set, never the routed team: which team a signal
        # goes to depends on the person, and the receipt must not tell.
        return Refused(notice.jti, "contact_block_invalid", "recipients_incomplete")
    return _Checked(result.opened, notice, decided, new_trace_id())


def _commit(
    gw: Gateway,
    conn: Connection,
    sender: OIN,
    results: list[_Checked | Refused],
    hashes: list[str],
    intake: Intake,
    source: str | None,
    now: datetime,
) -> Receipt:
    receipt_id = str(uuid.uuid4())
    jtis = [r.notice.jti for r in results if isinstance(r, _Checked)]
    stored = _stored_hashes(conn, jtis)
    items: list[Item] = []
    events: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    accepted: list[tuple[_Checked, str]] = []
    for position, (result, sha) in enumerate(zip(results, hashes, strict=True)):
        if isinstance(result, Refused):
            items.append(Item(position, sha, result.jti, "refused", result.reason))
            events.append(
                _event(sender, now, "notice.refused", result.jti, "refused", result.cause)
            )
            continue
        jti, payload_hash = result.notice.jti, result.opened.payload_sha256
        earlier = stored.get(jti) or seen.get(jti)
        if earlier is not None:
            if earlier == payload_hash:
                items.append(Item(position, sha, jti, "duplicate"))
                events.append(_event(sender, now, "notice.duplicate", jti, "duplicate", None))
            else:
                items.append(Item(position, sha, jti, "refused", "jti_reused"))
                events.append(_event(sender, now, "notice.refused", jti, "refused", "jti_reused"))
            continue
        seen[jti] = payload_hash
        accepted.append((result, sha))
        items.append(Item(position, sha, jti, "accepted"))
        trace = result.trace_id
        events.append(_event(sender, now, "notice.accepted", jti, "accepted", None, trace))
        events.append(
            _event(
                sender,
                now,
                "notice.routed",
                jti,
                "routed",
                result.route.reason,
                trace,
                recipient=result.route.recipient,
            )
        )
    _store(gw, conn, accepted, receipt_id, now)
    receipt = _sign(gw, sender, receipt_id, items, intake, source, now)
    conn.execute(
        insert(receipts).values(id=receipt_id, creditor_oin=sender, created_at=now, jws=receipt.jws)
    )
    events.append(_event(sender, now, "receipt.issued", receipt_id, "issued", None))
    gw.audit.append(conn, events)
    return receipt


def _stored_hashes(conn: Connection, jtis: list[str]) -> dict[str, str]:
    if not jtis:
        return {}
    rows = conn.execute(
        select(notices.c.jti, notices.c.payload_sha256).where(notices.c.jti.in_(jtis))
    )
    return {jti: sha for jti, sha in rows}


def _store(
    gw: Gateway,
    conn: Connection,
    accepted: list[tuple[_Checked, str]],
    receipt_id: str,
    now: datetime,
) -> None:
    """Insert every accepted notice and its delivery, in two statements."""
    if not accepted:
        return
    rows, signals = [], []
    for checked, sha in accepted:
        notice = checked.notice
        bucket = bucket_for(notice.category.value, _expiry(gw, notice, now))
        rows.append(
            {
                "jti": notice.jti,
                "creditor_oin": notice.iss,
                "gemeente": notice.gemeente,
                "category": notice.category.value,
                "stage": notice.stage.value,
                "payload_sha256": checked.opened.payload_sha256,
                "envelope_sha256": sha,
                "received_at": now,
                "bucket": bucket,
                "sealed": gw.cipher.seal(
                    conn, bucket, checked.opened.jws.encode(), aad=f"notice:{notice.jti}".encode()
                ),
                "status": "routed",
                "trace_id": checked.trace_id,
                "receipt_id": receipt_id,
            }
        )
        recipient = checked.route.recipient
        signal = _signal(notice, checked.route, checked.opened.claims["contact"])
        signals.append(
            {
                "recipient_oin": recipient,
                "bucket": bucket,
                "contact": gw.cipher.seal(
                    conn,
                    bucket,
                    json.dumps(signal, sort_keys=True).encode(),
                    aad=f"delivery:{notice.jti}:{recipient}".encode(),
                ),
                "created_at": now,
            }
        )
    ids = conn.execute(
        insert(notices).returning(notices.c.id, sort_by_parameter_order=True), rows
    ).scalars()
    for delivery, notice_id in zip(signals, ids, strict=True):
        delivery["notice_id"] = notice_id
    conn.execute(insert(deliveries), signals)


def _signal(notice: Notice, decided: Route, contact: dict[str, Any]) -> dict[str, Any]:
    """What the team receives: the facts, the routing, and the block only it can open."""
    return {
        "type": "signal",
        "jti": notice.jti,
        "ref": notice.ref,
        "creditor": notice.iss,
        "signaalpartner": notice.signaalpartner,
        "category": notice.category.value,
        "stage": notice.stage.value,
        "stageDate": _iso(notice.stageDate),
        "bedrag": notice.bedrag,
        "ontstaansdatum": _iso(notice.ontstaansdatum),
        "signaaldatum": _iso(notice.signaaldatum),
        "crisissignaal": notice.crisis,
        "routing": {"team": decided.recipient, "reason": decided.reason},
        "contact": strip_contact(contact, kid=decided.kid),
    }


def _expiry(gw: Gateway, notice: Notice, now: datetime) -> date:
    months = gw.settings.retention_months[notice.category]
    start = now.date()
    month = start.month - 1 + months
    return date(start.year + month // 12, month % 12 + 1, 1)


def _sign(
    gw: Gateway,
    sender: OIN,
    receipt_id: str,
    items: list[Item],
    intake: Intake,
    source: str | None,
    now: datetime,
) -> Receipt:
    body = {
        "iss": gw.settings.gateway_id,
        "aud": sender,
        "id": receipt_id,
        "iat": int(now.timestamp()),
        "intake": "sftp" if intake == "sftp" else "rest",
        "source": source,
        "items": [i.to_receipt() for i in items],
    }
    jws = sign_receipt(body, signer=gw.keyring.current("sig", now=now))
    return Receipt(receipt_id, jws, tuple(items))


def _event(
    sender: OIN,
    now: datetime,
    action: str,
    obj: str | None,
    result: str,
    reason: str | None,
    trace_id: str | None = None,
    **extra: str,
) -> dict[str, str]:
    return step(
        action=action,
        obj=obj,
        result=result,
        reason=reason,
        organisation=sender,
        role="creditor",
        activity=INTAKE_ACTIVITY,
        now=now,
        trace_id=trace_id,
        **extra,
    )


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None
