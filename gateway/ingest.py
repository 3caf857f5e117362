"""The one ingest pipeline behind every intake (REST, SFTP, the demo's self-check).

    limits → identity → open → verify → schema → policy → match → objection → route
        → replay → store → receipt

The transport authenticates the sender before any of this runs. Opening, verifying,
the policy and matching happen first and touch no table that changes (a notice the
policy refuses is never compared with the register); then one transaction stores every
accepted notice, its delivery, the audit events of every step and the signed receipt,
so a failure leaves nothing half-written and a retry gives ``duplicate`` for whatever
an earlier attempt did store.

The sender learns only what DESIGN.md allows: every failure before the signature
verifies is ``envelope_invalid``; the precise cause goes to the audit log.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, Literal

import orjson
from sqlalchemy import Connection, insert, select

from gateway.audit import new_trace_id, step
from gateway.checks import CheckContext, Checked, Refused
from gateway.partnerships import policy_state
from gateway.policy import Decision, PolicyState, decide, objection
from gateway.routing import Route, Router, Unroutable
from gateway.schema import Notice
from gateway.service import Gateway
from gateway.store.atrest import add_months, bucket_for
from gateway.store.bulk import insert_rows
from gateway.store.schema import deliveries, notices, receipts
from keys.contact import strip_contact
from keys.envelope import OpenedNotice, envelope_sha256
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
    events: list[dict[str, str]]
    """The audit events of its acceptance, made before any lock is taken."""
    signal: bytes | None
    """What its recipient receives (``signal_for``), as JSON; None when closed."""


def submit(
    gw: Gateway,
    *,
    sender: OIN,
    envelopes: Sequence[str | bytes],
    intake: Intake,
    source: str | None = None,
) -> Receipt:
    """Run every envelope of one delivery through the pipeline; return the receipt."""
    prepared = prepare(gw, sender=sender, envelopes=envelopes)
    receipt_id = str(uuid.uuid4())
    with gw.engine.begin() as conn:
        items, events = store(gw, conn, sender, prepared, receipt_id=receipt_id)
        receipt = issue(gw, conn, sender, receipt_id, items, events, intake, source)
    return receipt


@dataclass(frozen=True)
class Prepared:
    """Envelopes checked and routed, nothing written yet: what ``store`` writes."""

    results: list[_Checked | Refused]
    hashes: list[str]
    positions: list[int]
    now: datetime


def prepare(
    gw: Gateway,
    *,
    sender: OIN,
    envelopes: Sequence[str | bytes],
    positions: Sequence[int] | None = None,
) -> Prepared:
    """Every check that needs no write, and the route of each notice that passed.

    ``positions`` are the envelopes' places in the delivery (default 0, 1, ...).
    """
    now = gw.clock.now()
    # The checks hold no connection: on SQLite an open transaction would hold the write
    # lock, and every other worker would wait for this one's cryptography.
    ctx = CheckContext(
        sender=sender,
        audience=gw.settings.gateway_id,
        now=now,
        signers=gw.directory.signing_keys(gw.engine, now=now),
    )
    checked = gw.check(envelopes, ctx)
    # The policy's partnerships, consents and objections are read once for the batch;
    # each notice then costs a few dictionary lookups.
    state = policy_state(
        gw.engine, gemeenten={r.notice.gemeente for r in checked if isinstance(r, Checked)}
    )
    router = Router(gw)
    judged = [_judge(gw, router, state, r, now) if isinstance(r, Checked) else r for r in checked]
    routes = iter(router.route_all([r[0].notice for r in judged if isinstance(r, tuple)]))
    results = [
        result if isinstance(result, Refused) else _route(sender, state, result, next(routes), now)
        for result in judged
    ]
    return Prepared(
        results=results,
        hashes=[envelope_sha256(env) for env in envelopes],
        positions=list(positions) if positions is not None else list(range(len(envelopes))),
        now=now,
    )


def _judge(
    gw: Gateway, router: Router, state: PolicyState, result: Checked, now: datetime
) -> tuple[Checked, Decision] | Refused:
    """The municipality and key set (steps 4 and 5), then the policy's decision on what
    the creditor sent (step 6), before anything is matched: a notice without a legal
    basis is not compared with the register at all."""
    place = router.place(result.notice.gemeente)
    if isinstance(place, Unroutable):
        return Refused(result.notice.jti, "gemeente_unknown", place.cause)
    if not place.kids <= result.kids:
        return Refused(result.notice.jti, "contact_block_invalid", "recipients_incomplete")
    decision = decide(gw.settings.policy, state, result.notice, today=now.date())
    if not decision.allowed:
        return Refused(result.notice.jti, decision.code, decision.cause)
    return result, decision


def _route(
    sender: OIN,
    state: PolicyState,
    judged: tuple[Checked, Decision],
    decided: Route | Unroutable,
    now: datetime,
) -> _Checked | Refused:
    """The notice's route, closed when the person objected; its audit events and signal
    are made here, outside the store's transaction, which holds SQLite's write lock."""
    result, decision = judged
    notice = result.notice
    if isinstance(decided, Unroutable):
        return Refused(notice.jti, "gemeente_unknown", decided.cause)
    fields = decision.audit_fields()
    objected = objection(state, notice, decided.match.person, today=now.date())
    if objected is not None:
        # The person objected: accepted (the receipt must not tell), closed, delivered
        # to nobody; the audit log records the objection that decided it.
        fields["objection"] = str(objected.id)
        decided = Route("closed", "objection", decided.match, closed_as="objection")
    decided = replace(decided, policy=tuple(fields.items()))
    trace = new_trace_id()
    signal = None
    if decided.recipient is not None and decided.kid is not None:
        content = signal_for(
            notice, decided, decided.recipient, decided.kid, result.opened.claims["contact"]
        )
        signal = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    events = _accepted_events(sender, now, notice.jti, decided, trace)
    return _Checked(result.opened, notice, decided, trace, events, signal)


def store(
    gw: Gateway,
    conn: Connection,
    sender: OIN,
    prepared: Prepared,
    *,
    receipt_id: str,
) -> tuple[list[Item], list[dict[str, str]]]:
    """Judge replays and store every accepted notice with its delivery, in ``conn``.

    Returns the receipt items and the audit events of the envelopes; the caller appends
    the events (with any of its own) in the same transaction.
    """
    now = prepared.now
    jtis = [r.notice.jti for r in prepared.results if isinstance(r, _Checked)]
    stored = _stored_hashes(conn, jtis)
    items: list[Item] = []
    events: list[dict[str, str]] = []
    seen: dict[str, str] = {}
    accepted: list[tuple[_Checked, str]] = []
    for position, result, sha in zip(
        prepared.positions, prepared.results, prepared.hashes, strict=True
    ):
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
        events.extend(result.events)
    _store(gw, conn, accepted, receipt_id, now)
    return items, events


def issue(
    gw: Gateway,
    conn: Connection,
    sender: OIN,
    receipt_id: str,
    items: Sequence[Item],
    events: list[dict[str, str]],
    intake: Intake,
    source: str | None,
    *,
    refused: str | None = None,
) -> Receipt:
    """Sign the receipt over ``items``, keep it, and append ``events`` and its own."""
    now = gw.clock.now()
    receipt = _sign(gw, sender, receipt_id, list(items), intake, source, now, refused=refused)
    conn.execute(
        insert(receipts).values(id=receipt_id, creditor_oin=sender, created_at=now, jws=receipt.jws)
    )
    events.append(_event(sender, now, "receipt.issued", receipt_id, "issued", refused))
    gw.audit.append(conn, events)
    return receipt


def _accepted_events(
    sender: OIN, now: datetime, jti: str, decided: Route, trace: str
) -> list[dict[str, str]]:
    """Accepted, matched (the score goes to the log, never the receipt), then routed
    to its recipient or closed with its outcome."""
    match = decided.match
    scored = {} if match.score is None else {"score": str(match.score)}
    if match.margin is not None:
        scored["margin"] = str(match.margin)
    events = [
        _event(
            sender, now, "notice.accepted", jti, "accepted", None, trace, **dict(decided.policy)
        ),
        _event(
            sender,
            now,
            "notice.matched",
            jti,
            match.outcome,
            match.reason,
            trace,
            subject=match.person,
            candidates=str(match.candidates),
            **scored,
        ),
    ]
    if decided.recipient is None:
        events.append(_event(sender, now, "notice.closed", jti, "closed", decided.reason, trace))
    else:
        events.append(
            _event(
                sender,
                now,
                "notice.routed",
                jti,
                decided.status,
                decided.reason,
                trace,
                subject=match.person,
                recipient=decided.recipient,
            )
        )
    return events


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
    """Insert every accepted notice and the deliveries of those routed, in two statements."""
    if not accepted:
        return
    rows: list[dict[str, Any]] = []
    signals: list[tuple[int, dict[str, Any]]] = []
    for checked, sha in accepted:
        notice, decided = checked.notice, checked.route
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
                "status": decided.status,
                "trace_id": checked.trace_id,
                "receipt_id": receipt_id,
                "outcome": decided.outcome,
                "person": decided.match.person,
            }
        )
        recipient = decided.recipient
        if recipient is None or checked.signal is None:
            continue
        signals.append(
            (
                len(rows) - 1,
                {
                    "recipient_oin": recipient,
                    "bucket": bucket,
                    "contact": gw.cipher.seal(
                        conn,
                        bucket,
                        checked.signal,
                        aad=f"delivery:{notice.jti}:{recipient}".encode(),
                    ),
                    "created_at": now,
                },
            )
        )
    insert_rows(conn, notices, rows)
    if signals:
        # One query for the new ids: an ordered RETURNING over many rows makes SQLite
        # run the insert a row at a time.
        found = conn.execute(
            select(notices.c.jti, notices.c.id).where(
                notices.c.jti.in_([rows[row]["jti"] for row, _ in signals])
            )
        )
        ids = {jti: notice_id for jti, notice_id in found}
        for row, delivery in signals:
            delivery["notice_id"] = ids[rows[row]["jti"]]
        insert_rows(conn, deliveries, [delivery for _, delivery in signals])


def signal_for(
    notice: Notice, decided: Route, recipient: str, kid: str, contact: dict[str, Any]
) -> dict[str, Any]:
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
        "routing": routing_of(decided, recipient),
        "contact": strip_contact(contact, kid=kid),
    }


def routing_of(decided: Route, recipient: str) -> dict[str, Any]:
    """The routing a recipient sees: its team, why, and who the register says it is."""
    match = decided.match
    routing: dict[str, Any] = {"team": recipient, "reason": decided.reason}
    if decided.status == "review":
        routing["review"] = match.reason
    if match.person is not None:
        routing["person"] = match.person
        routing["household"] = match.household
        routing["district"] = match.district
    return routing


def _expiry(gw: Gateway, notice: Notice, now: datetime) -> date:
    return add_months(now.date(), gw.settings.retention_months[notice.category])


def _sign(
    gw: Gateway,
    sender: OIN,
    receipt_id: str,
    items: list[Item],
    intake: Intake,
    source: str | None,
    now: datetime,
    *,
    refused: str | None = None,
) -> Receipt:
    body: dict[str, Any] = {
        "iss": gw.settings.gateway_id,
        "aud": sender,
        "id": receipt_id,
        "iat": int(now.timestamp()),
        "intake": "sftp" if intake == "sftp" else "rest",
        "source": source,
        "items": [i.to_receipt() for i in items],
    }
    if refused is not None:
        body["refused"] = refused
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
    *,
    subject: str | None = None,
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
        subject=subject,
        **extra,
    )


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None
