"""The store side of the policy: partnerships, consent records and objections.

Written by the municipality (partnerships, objections) and by the creditor or the
municipality (consents), through the admin API or the gateway's commands; read once per
batch into a ``gateway.policy.PolicyState`` (``policy_state``), so the intake makes no
query per notice.

Consents and objections hold match tokens and pseudonyms only. An objection names the
person's pseudonym when the municipality found the person in its BRP extract (it
computes it from the BSN with its own pseudonym key); its tokens stand in for a person
the register does not hold.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway.audit import step
from gateway.errors import PartnerUnknown, PolicyConflict
from gateway.matching import Matcher
from gateway.policy import (
    STRONG_TOKENS,
    Consent,
    Objection,
    Partnership,
    Period,
    PolicyState,
    strong_tokens,
    token_key,
)
from gateway.schema import Category, MatchTokens
from gateway.store.auditlog import AuditLog
from gateway.store.engine import reading
from gateway.store.schema import consents, deliveries, notices, objections, partners, partnerships

if TYPE_CHECKING:
    from gateway.service import Gateway

POLICY_ACTIVITY = "vroegsignalering: grondslag en bezwaar"

Ref = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
OINStr = Annotated[str, StringConstraints(pattern=r"^[0-9]{20}$")]
GemeenteCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]
Pseudonym = Annotated[str, StringConstraints(pattern=r"^p-[A-Za-z0-9_-]{22}$")]

CONSENT_WITHDRAWN = "no_consent"
"""The outcome of a signal closed because its consent was withdrawn or expired."""


# -- partnerships ------------------------------------------------------------------------


@dataclass(frozen=True)
class PartnershipRow:
    """A partnership as listed: its values and who registered it."""

    partnership: Partnership
    created_by: str
    created_at: datetime


def add_partnership(
    conn: Connection,
    *,
    gemeente: str,
    creditor: str,
    categories: Sequence[Category],
    starts: date,
    ends: date | None,
    by: str,
    now: datetime,
    audit: AuditLog,
) -> int:
    """Register that ``gemeente`` receives ``creditor``'s signals of ``categories``.

    Raises ``PartnerUnknown`` when no creditor is registered under ``creditor``, and
    ``PolicyConflict`` for an empty category list or ``ends`` not after ``starts``.
    """
    _check_creditor(conn, creditor)
    if not categories:
        raise PolicyConflict("a partnership names at least one category", cause="no_category")
    if ends is not None and ends <= starts:
        raise PolicyConflict("a partnership ends after it starts", cause="dates")
    new_id = conn.execute(
        insert(partnerships)
        .values(
            gemeente=gemeente,
            creditor_oin=creditor,
            categories=",".join(sorted({c.value for c in categories})),
            starts=starts,
            ends=ends,
            created_at=now,
            created_by=by,
        )
        .returning(partnerships.c.id)
    ).scalar_one()
    _audit(
        audit, conn, "partnership.added", str(new_id), by, now, creditor=creditor, gemeente=gemeente
    )
    return int(new_id)


def end_partnership(
    conn: Connection,
    partnership_id: int,
    *,
    gemeente: str,
    ends: date,
    by: str,
    now: datetime,
    audit: AuditLog,
) -> bool:
    """Let the partnership end on ``ends`` (no signal taken from that day); false when
    ``gemeente`` has no such partnership. An earlier end date is kept."""
    row = conn.execute(
        select(partnerships.c.starts, partnerships.c.ends).where(
            partnerships.c.id == partnership_id, partnerships.c.gemeente == gemeente
        )
    ).first()
    if row is None:
        return False
    final = max(ends, row.starts) if row.ends is None else min(row.ends, max(ends, row.starts))
    conn.execute(update(partnerships).where(partnerships.c.id == partnership_id).values(ends=final))
    _audit(audit, conn, "partnership.ended", str(partnership_id), by, now, ends=final.isoformat())
    return True


def list_partnerships(conn: Connection, *, gemeente: str | None = None) -> list[PartnershipRow]:
    """The partnerships of ``gemeente`` (of every municipality when None), oldest first."""
    query = select(partnerships).order_by(partnerships.c.id)
    if gemeente is not None:
        query = query.where(partnerships.c.gemeente == gemeente)
    return [
        PartnershipRow(_partnership(row), row.created_by, row.created_at)
        for row in conn.execute(query)
    ]


def _check_creditor(conn: Connection, oin: str) -> None:
    row = conn.execute(select(partners.c.role).where(partners.c.oin == oin)).first()
    if row is None or row.role != "creditor":
        raise PartnerUnknown(f"no creditor {oin}", cause="not_a_creditor")


def _partnership(row: Any) -> Partnership:
    return Partnership(
        id=row.id,
        gemeente=row.gemeente,
        creditor=row.creditor_oin,
        categories=frozenset(row.categories.split(",")),
        period=Period(row.starts, row.ends),
    )


# -- objections --------------------------------------------------------------------------


class ObjectionIn(BaseModel):
    """An objection as the municipality's ``objection add`` writes it (docs/policy.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: int = Field(ge=1, le=1)
    gemeente: GemeenteCode
    ref: Ref
    person: Pseudonym | None = None
    tokens: MatchTokens | None = None
    creditors: tuple[OINStr, ...] = ()
    categories: tuple[Category, ...] = ()
    starts: date
    ends: date | None = None

    @model_validator(mode="after")
    def _identifies(self) -> Self:
        if self.person is None and (self.tokens is None or not self._strong()):
            raise ValueError("an objection names a pseudonym or tokens with a birth date or BSN")
        if self.ends is not None and self.ends <= self.starts:
            raise ValueError("ends must be after starts")
        return self

    def _strong(self) -> frozenset[str]:
        if self.tokens is None:
            return frozenset()
        return strong_tokens(self.tokens.kid, self.tokens.values)


def add_objection(
    conn: Connection, objection: ObjectionIn, *, by: str, now: datetime, audit: AuditLog
) -> int:
    """Register an objection; raises ``PolicyConflict`` when its ``ref`` is known."""
    values = (
        {t: v for t, v in objection.tokens.values.items() if t in STRONG_TOKENS}
        if objection.tokens is not None
        else {}
    )
    try:
        with conn.begin_nested():
            new_id = conn.execute(
                insert(objections)
                .values(
                    gemeente=objection.gemeente,
                    ref=objection.ref,
                    person=objection.person,
                    kid=objection.tokens.kid if objection.tokens is not None else None,
                    tokens=json.dumps(values, sort_keys=True),
                    creditors=",".join(objection.creditors),
                    categories=",".join(c.value for c in objection.categories),
                    starts=objection.starts,
                    ends=objection.ends,
                    created_at=now,
                    created_by=by,
                )
                .returning(objections.c.id)
            ).scalar_one()
    except IntegrityError:
        raise PolicyConflict("an objection with this ref exists", cause="ref_exists") from None
    _audit(
        audit,
        conn,
        "objection.registered",
        objection.ref,
        by,
        now,
        subject=objection.person,
        gemeente=objection.gemeente,
    )
    return int(new_id)


def _objection(row: Any) -> Objection:
    values: dict[str, list[str]] = json.loads(row.tokens)
    return Objection(
        id=row.id,
        gemeente=row.gemeente,
        person=row.person,
        tokens=strong_tokens(row.kid, values) if row.kid else frozenset(),
        creditors=frozenset(filter(None, row.creditors.split(","))),
        categories=frozenset(filter(None, row.categories.split(","))),
        period=Period(row.starts, row.ends),
    )


# -- consents ----------------------------------------------------------------------------


class ConsentIn(BaseModel):
    """A consent record (docs/policy.md): the person by tokens, never by identity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: int = Field(ge=1, le=1)
    ref: Ref
    creditor: OINStr
    gemeente: GemeenteCode
    categories: tuple[Category, ...] = Field(min_length=1)
    tokens: MatchTokens
    given: date
    expires: date

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not strong_tokens(self.tokens.kid, self.tokens.values):
            raise ValueError("consent tokens include one with a birth date or the BSN")
        if self.expires <= self.given:
            raise ValueError("expires must be after given")
        return self


def add_consent(
    conn: Connection,
    consent: ConsentIn,
    *,
    by: str,
    now: datetime,
    audit: AuditLog,
    person: str | None = None,
) -> int:
    """Register a consent record; ``PolicyConflict`` when the creditor used its ``ref``."""
    _check_creditor(conn, consent.creditor)
    values = {t: v for t, v in consent.tokens.values.items() if t in STRONG_TOKENS}
    try:
        with conn.begin_nested():
            new_id = conn.execute(
                insert(consents)
                .values(
                    ref=consent.ref,
                    creditor_oin=consent.creditor,
                    gemeente=consent.gemeente,
                    categories=",".join(sorted({c.value for c in consent.categories})),
                    kid=consent.tokens.kid,
                    tokens=json.dumps(values, sort_keys=True),
                    person=person,
                    given=consent.given,
                    expires=consent.expires,
                    created_at=now,
                )
                .returning(consents.c.id)
            ).scalar_one()
    except IntegrityError:
        raise PolicyConflict("a consent with this ref exists", cause="ref_exists") from None
    _audit(
        audit,
        conn,
        "consent.registered",
        consent.ref,
        by,
        now,
        role="creditor",
        subject=person,
        creditor=consent.creditor,
    )
    return int(new_id)


def withdraw_consent(
    conn: Connection, *, creditor: str, ref: str, by: str, now: datetime, audit: AuditLog
) -> int | None:
    """Withdraw a consent: new notices under it are refused, and queued signals it
    covers stop (``stop_without_consent``). None when there is no such consent;
    otherwise how many signals were stopped."""
    row = conn.execute(
        select(consents.c.id, consents.c.withdrawn_at).where(
            consents.c.creditor_oin == creditor, consents.c.ref == ref
        )
    ).first()
    if row is None:
        return None
    if row.withdrawn_at is None:
        conn.execute(update(consents).where(consents.c.id == row.id).values(withdrawn_at=now))
        _audit(audit, conn, "consent.withdrawn", ref, by, now, role="creditor", creditor=creditor)
    return stop_without_consent(conn, now=now, audit=audit)


def stop_without_consent(conn: Connection, *, now: datetime, audit: AuditLog) -> int:
    """Close the open signals whose only consent was withdrawn or has expired, and
    remove their deliveries not yet pulled; returns how many signals were closed.

    A signal is covered by a consent of its creditor, municipality and category on the
    person the register matched; one still covered by another valid consent goes on.
    """
    today = now.date()
    rows = conn.execute(select(consents).where(consents.c.person.is_not(None))).all()
    valid = {
        (r.creditor_oin, r.gemeente, r.person, c)
        for r in rows
        if r.withdrawn_at is None and Period(r.given, r.expires).state(today) == "valid"
        for c in r.categories.split(",")
    }
    ended = {
        (r.creditor_oin, r.gemeente, r.person, c)
        for r in rows
        if r.withdrawn_at is not None or Period(r.given, r.expires).state(today) == "ended"
        for c in r.categories.split(",")
    } - valid
    closed = 0
    for creditor, gemeente, person, category in sorted(ended):
        ids = (
            conn.execute(
                select(notices.c.id).where(
                    notices.c.creditor_oin == creditor,
                    notices.c.gemeente == gemeente,
                    notices.c.person == person,
                    notices.c.category == category,
                    notices.c.status.in_(("routed", "review")),
                )
            )
            .scalars()
            .all()
        )
        if not ids:
            continue
        conn.execute(
            delete(deliveries).where(
                deliveries.c.notice_id.in_(ids), deliveries.c.acked_at.is_(None)
            )
        )
        conn.execute(
            update(notices)
            .where(notices.c.id.in_(ids))
            .values(status="closed", outcome=CONSENT_WITHDRAWN)
        )
        closed += len(ids)
        _audit(
            audit,
            conn,
            "consent.signals_stopped",
            creditor,
            creditor,
            now,
            role="creditor",
            subject=person,
            signals=str(len(ids)),
        )
    return closed


def _consent(row: Any) -> Consent:
    values: dict[str, list[str]] = json.loads(row.tokens)
    return Consent(
        ref=row.ref,
        creditor=row.creditor_oin,
        gemeente=row.gemeente,
        categories=frozenset(row.categories.split(",")),
        tokens=frozenset(token_key(row.kid, t, v) for t, vs in values.items() for v in vs),
        period=Period(row.given, row.expires),
        withdrawn=row.withdrawn_at is not None,
        person=row.person,
    )


# -- one batch's state -------------------------------------------------------------------


def policy_state(engine: Engine, *, gemeenten: Iterable[str]) -> PolicyState:
    """Everything the policy needs for notices of ``gemeenten``, in three queries."""
    wanted = sorted(set(gemeenten))
    if not wanted:
        return PolicyState()
    with reading(engine) as conn:
        found_partnerships = [
            _partnership(r)
            for r in conn.execute(select(partnerships).where(partnerships.c.gemeente.in_(wanted)))
        ]
        found_consents = [
            _consent(r)
            for r in conn.execute(select(consents).where(consents.c.gemeente.in_(wanted)))
        ]
        found_objections = [
            _objection(r)
            for r in conn.execute(select(objections).where(objections.c.gemeente.in_(wanted)))
        ]
    return PolicyState.of(found_partnerships, found_consents, found_objections)


def _audit(
    audit: AuditLog,
    conn: Connection,
    action: str,
    obj: str,
    by: str,
    now: datetime,
    *,
    role: str = "municipality",
    subject: str | None = None,
    **extra: str,
) -> None:
    """Record a change made by ``by``: the municipality, or for consents the creditor."""
    audit.append(
        conn,
        [
            step(
                action=action,
                obj=obj,
                result="done",
                organisation=by,
                role=role,
                activity=POLICY_ACTIVITY,
                now=now,
                subject=subject,
                **extra,
            )
        ],
    )


def register_consent(gw: Gateway, consent: ConsentIn, *, by: str) -> int:
    """Register ``consent``, with the person the register matches its tokens to, if any
    (so that withdrawing it can find the signals it covers)."""
    match = Matcher(gw.engine).match(
        consent.gemeente, consent.tokens.kid, [consent.tokens.values], [consent.tokens.encodings]
    )
    person = match[0].person if match and match[0].outcome != "review" else None
    with gw.engine.begin() as conn:
        return add_consent(conn, consent, by=by, now=gw.clock.now(), audit=gw.audit, person=person)
