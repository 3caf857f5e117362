"""A team's inbox: the signals routed to it, pulled page by page and acknowledged; and
the back office's resolution of the signals that went to review.

``resolve`` takes one review signal of the back office and either closes it with a
reason, or assigns it to a resident of the register (by the pseudonym the municipality
looked up): the person's team is found exactly as at intake (``gateway.routing``) and
gets the signal with the contact block stripped to its own key, taken from the signed
notice kept at rest. Everything a resolution changes is written in one transaction,
and only a notice still in review can be resolved, so a retry changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import Connection, insert, select, update

from gateway.audit import step
from gateway.errors import NotResolvable, NotRoutable, PersonUnknown
from gateway.ingest import signal_for
from gateway.matching import Match, labels_of
from gateway.partnerships import policy_state
from gateway.policy import objection
from gateway.routing import Route, Unroutable, outreach, route
from gateway.schema import Notice
from gateway.service import Gateway
from gateway.store.engine import reading
from gateway.store.schema import deliveries, notices, register_tables, registers
from keys.envelope import notice_claims
from keys.errors import ContactBlockInvalid
from keys.jwk import OIN

DELIVERY_ACTIVITY = "vroegsignalering: doorzetten signaal"
RESOLVE_ACTIVITY = "vroegsignalering: beoordelen signaal"
MAX_PAGE = 500

CloseReason = Literal["not_resident", "moved_out", "deceased", "wrong_signal"]
CLOSE_REASONS: tuple[str, ...] = get_args(CloseReason)
"""Why the back office closes a review signal (``wrong_signal``: *onterecht signaal*)."""

REVIEW = "review"
MAX_DELIVERY_ID = 2**31 - 1
"""The largest id ``deliveries.id`` holds (a 32-bit integer on PostgreSQL)."""


@dataclass(frozen=True)
class InboxItem:
    """One delivered signal: facts, routing and the contact block for this team only."""

    id: int
    signal: dict[str, Any]


def pull(gw: Gateway, *, recipient: OIN, after: int = 0, limit: int = 100) -> list[InboxItem]:
    """Unacknowledged signals for ``recipient`` with an id above ``after``."""
    limit = max(1, min(limit, MAX_PAGE))
    now = gw.clock.now()
    with gw.engine.begin() as conn:
        rows = conn.execute(
            select(
                deliveries.c.id,
                deliveries.c.bucket,
                deliveries.c.contact,
                notices.c.jti,
                notices.c.trace_id,
            )
            .join(notices, notices.c.id == deliveries.c.notice_id)
            .where(
                deliveries.c.recipient_oin == recipient,
                deliveries.c.acked_at.is_(None),
                deliveries.c.id > after,
            )
            .order_by(deliveries.c.id)
            .limit(limit)
        ).all()
        items = [
            InboxItem(
                row.id,
                json.loads(
                    gw.cipher.open(
                        conn,
                        row.bucket,
                        row.contact,
                        aad=f"delivery:{row.jti}:{recipient}".encode(),
                    )
                ),
            )
            for row in rows
        ]
        gw.audit.append(
            conn,
            [_event(recipient, "signal.pulled", row.jti, row.trace_id, now) for row in rows],
        )
    return items


def ack(gw: Gateway, *, recipient: OIN, ids: Sequence[int]) -> int:
    """Mark signals as received by their team; returns how many were newly acknowledged."""
    now = gw.clock.now()
    with gw.engine.begin() as conn:
        rows = conn.execute(
            select(deliveries.c.id, notices.c.jti, notices.c.trace_id)
            .join(notices, notices.c.id == deliveries.c.notice_id)
            .where(
                deliveries.c.recipient_oin == recipient,
                deliveries.c.id.in_(list(ids)),
                deliveries.c.acked_at.is_(None),
            )
        ).all()
        if rows:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_([r.id for r in rows]))
                .values(acked_at=now)
            )
            gw.audit.append(
                conn,
                [_event(recipient, "signal.delivered", r.jti, r.trace_id, now) for r in rows],
            )
    return len(rows)


@dataclass(frozen=True)
class Resolution:
    """A review signal resolved: routed to ``team`` (its new delivery ``delivery``), or
    closed with ``outcome``."""

    id: int
    jti: str
    status: Literal["routed", "closed"]
    outcome: str
    team: OIN | None = None
    delivery: int | None = None


@dataclass(frozen=True)
class _Review:
    notice_id: int
    jti: str
    gemeente: str
    trace_id: str


def resolve(
    gw: Gateway,
    *,
    recipient: OIN,
    delivery_id: int,
    pseudonym: str | None = None,
    close: str | None = None,
) -> Resolution:
    """Resolve the review signal delivered to the back office ``recipient`` as
    ``delivery_id``: assign it to the person ``pseudonym`` (routed to their team, or
    closed when the register says deceased or moved out or the person objected), or
    ``close`` it with one of
    ``CLOSE_REASONS``. Exactly one of the two.

    Raises ``NotResolvable`` when the delivery is not this back office's or its notice
    is not in review (a second resolve included), ``PersonUnknown`` for a pseudonym
    not in the register, ``NotRoutable`` when the person's team has no key in the
    outreach key set; each leaves everything as it was.
    """
    if (pseudonym is None) == (close is None):
        raise ValueError("resolve with exactly one of pseudonym and close")
    if close is not None and close not in CLOSE_REASONS:
        raise ValueError("close is one of " + ", ".join(CLOSE_REASONS))
    with reading(gw.engine) as conn:
        review = _review(conn, recipient, delivery_id)
        match = None if pseudonym is None else _person(conn, review.gemeente, pseudonym)
    if match is None or match.outcome != "matched":
        outcome = close if match is None else match.outcome
        assert outcome is not None
        return _close(gw, recipient, delivery_id, review, outcome, pseudonym)
    return _assign(gw, recipient, delivery_id, review, _route(gw, review.gemeente, match))


def _review(conn: Connection, recipient: OIN, delivery_id: int) -> _Review:
    if not 0 < delivery_id <= MAX_DELIVERY_ID:
        raise NotResolvable("no review signal of this back office under that id")
    row = conn.execute(
        select(notices.c.id, notices.c.jti, notices.c.gemeente, notices.c.trace_id)
        .join(deliveries, deliveries.c.notice_id == notices.c.id)
        .where(
            deliveries.c.id == delivery_id,
            deliveries.c.recipient_oin == recipient,
            notices.c.status == REVIEW,
        )
    ).first()
    if row is None:
        raise NotResolvable("no review signal of this back office under that id")
    return _Review(row.id, row.jti, row.gemeente, row.trace_id)


def _person(conn: Connection, gemeente: str, pseudonym: str) -> Match:
    """What the register says about ``pseudonym``, as a match the back office made."""
    version = conn.execute(
        select(registers.c.version).where(registers.c.gemeente == gemeente)
    ).scalar_one_or_none()
    row = None
    if version is not None:
        columns = register_tables(gemeente, version).persons.c
        row = conn.execute(
            select(columns.household, columns.district, columns.status, columns.labels).where(
                columns.pseudonym == pseudonym
            )
        ).first()
    if row is None:
        raise PersonUnknown("no person under that pseudonym in the register")
    if row.status in ("deceased", "moved_out"):
        return Match(row.status, "resolved", person=pseudonym)
    return Match(
        "matched",
        "resolved",
        person=pseudonym,
        household=row.household or None,
        district=row.district or None,
        labels=labels_of(row.labels),
    )


def _route(gw: Gateway, gemeente: str, match: Match) -> Route:
    place = outreach(gw, gemeente)
    if isinstance(place, Unroutable):
        raise NotRoutable(f"the municipality cannot take signals: {place.cause}")
    decided = route(place.routing, place.kid_of, match)
    if decided.status != "routed":
        raise NotRoutable("the person's team has no key in the outreach key set")
    return decided


def _claim(conn: Connection, review: _Review, **values: str | None) -> None:
    # The conditional update is the guard against two resolutions at once: the second
    # waits for the first's row lock and then matches no row.
    claimed = conn.execute(
        update(notices)
        .where(notices.c.id == review.notice_id, notices.c.status == REVIEW)
        .values(**values)
    ).rowcount
    if not claimed:
        raise NotResolvable("the signal was resolved meanwhile")


def _acknowledge(conn: Connection, delivery_id: int, now: datetime) -> None:
    conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id, deliveries.c.acked_at.is_(None))
        .values(acked_at=now)
    )


def _close(
    gw: Gateway,
    recipient: OIN,
    delivery_id: int,
    review: _Review,
    outcome: str,
    pseudonym: str | None,
) -> Resolution:
    now = gw.clock.now()
    values: dict[str, str | None] = {"status": "closed", "outcome": outcome}
    if pseudonym is not None:
        values["person"] = pseudonym
    with gw.engine.begin() as conn:
        _claim(conn, review, **values)
        _acknowledge(conn, delivery_id, now)
        gw.audit.append(
            conn,
            [_resolved(recipient, review, "closed", outcome, pseudonym, now)],
        )
    return Resolution(delivery_id, review.jti, "closed", outcome)


def _assign(
    gw: Gateway, recipient: OIN, delivery_id: int, review: _Review, decided: Route
) -> Resolution:
    team, kid, person = decided.recipient, decided.kid, decided.match.person
    assert team is not None and kid is not None and person is not None
    now = gw.clock.now()
    with gw.engine.begin() as conn:
        _claim(conn, review, status="routed", outcome="matched", person=person)
        stored = conn.execute(
            select(notices.c.bucket, notices.c.sealed).where(notices.c.id == review.notice_id)
        ).one()
        jws = gw.cipher.open(
            conn, stored.bucket, stored.sealed, aad=f"notice:{review.jti}".encode()
        )
        notice = Notice.model_validate(notice_claims(jws.decode("ascii")))
        state = policy_state(gw.engine, gemeenten=[review.gemeente])
        objected = objection(state, notice, person, today=now.date())
        if objected is not None:
            # The person the back office found objected: closed and delivered to
            # nobody, as at intake; the audit log names the objection.
            conn.execute(
                update(notices)
                .where(notices.c.id == review.notice_id)
                .values(status="closed", outcome="objection")
            )
            _acknowledge(conn, delivery_id, now)
            closed = _resolved(recipient, review, "closed", "objection", person, now)
            gw.audit.append(conn, [{**closed, "objection": str(objected.id)}])
            return Resolution(delivery_id, review.jti, "closed", "objection")
        try:
            signal = signal_for(notice, decided, team, kid, notice.contact)
        except ContactBlockInvalid as exc:
            raise NotRoutable("the contact block has no recipient for the team") from exc
        new = conn.execute(
            insert(deliveries)
            .values(
                notice_id=review.notice_id,
                recipient_oin=team,
                bucket=stored.bucket,
                contact=gw.cipher.seal(
                    conn,
                    stored.bucket,
                    json.dumps(signal, sort_keys=True).encode(),
                    aad=f"delivery:{review.jti}:{team}".encode(),
                ),
                created_at=now,
            )
            .returning(deliveries.c.id)
        ).scalar_one()
        _acknowledge(conn, delivery_id, now)
        routed = step(
            action="notice.routed",
            obj=review.jti,
            result="routed",
            reason=decided.reason,
            organisation=recipient,
            role="backoffice",
            activity=DELIVERY_ACTIVITY,
            now=now,
            trace_id=review.trace_id,
            subject=person,
            recipient=team,
        )
        gw.audit.append(
            conn, [_resolved(recipient, review, "routed", "matched", person, now), routed]
        )
    return Resolution(delivery_id, review.jti, "routed", "matched", team, new)


def _resolved(
    recipient: OIN,
    review: _Review,
    result: str,
    reason: str,
    subject: str | None,
    now: datetime,
) -> dict[str, str]:
    return step(
        action="notice.resolved",
        obj=review.jti,
        result=result,
        reason=reason,
        organisation=recipient,
        role="backoffice",
        activity=RESOLVE_ACTIVITY,
        now=now,
        trace_id=review.trace_id,
        subject=subject,
    )


def _event(
    recipient: OIN, action: str, jti: str, trace_id: str | None, now: datetime
) -> dict[str, str]:
    return step(
        action=action,
        obj=jti,
        result="ok",
        organisation=recipient,
        role="team",
        activity=DELIVERY_ACTIVITY,
        now=now,
        trace_id=trace_id,
    )
