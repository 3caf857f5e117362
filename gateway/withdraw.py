"""A creditor withdraws a signal it sent (the debt is paid, an arrangement was made, ...).

In one transaction the notice's status becomes ``withdrawn``, every recipient the
signal was delivered to gets a withdrawal in its inbox (sealed like the signal, in the
notice's bucket and under the same ``delivery:{jti}:{recipient}`` binding that
``gateway.inbox`` opens with), and the audit log records the step. Withdrawing again
changes nothing and gives the same answer; a notice of another creditor is, to the
caller, no notice at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import Connection, insert, select, update

from gateway.audit import format_time, step
from gateway.service import Gateway
from gateway.store.schema import deliveries, notices
from keys.jwk import OIN

Reason = Literal["paid", "arrangement", "error", "other"]
REASONS: tuple[str, ...] = get_args(Reason)
"""Why a creditor withdraws a signal."""

WITHDRAWN = "withdrawn"
WITHDRAW_ACTIVITY = "vroegsignalering: intrekken signaal"


@dataclass(frozen=True)
class Withdrawal:
    """The outcome of a withdrawal: the notice and how many recipients were told."""

    jti: str
    status: str
    told: int


def withdraw(gw: Gateway, *, creditor: OIN, jti: str, reason: Reason) -> Withdrawal | None:
    """Withdraw ``creditor``'s notice ``jti``; None when it has no such notice."""
    now = gw.clock.now()
    with gw.engine.begin() as conn:
        notice = conn.execute(
            select(notices.c.id, notices.c.bucket, notices.c.trace_id).where(
                notices.c.jti == jti, notices.c.creditor_oin == creditor
            )
        ).first()
        if notice is None:
            return None
        # The conditional update is the guard against two withdrawals at once: the
        # second waits for the first's row lock and then matches no row.
        changed = conn.execute(
            update(notices)
            .where(notices.c.id == notice.id, notices.c.status != WITHDRAWN)
            .values(status=WITHDRAWN)
        ).rowcount
        if not changed:
            return Withdrawal(jti, WITHDRAWN, 0)
        told = _tell_recipients(gw, conn, notice.id, notice.bucket, jti, reason, now)
        gw.audit.append(conn, [_event(creditor, jti, reason, notice.trace_id, now, told)])
    return Withdrawal(jti, WITHDRAWN, told)


def _tell_recipients(
    gw: Gateway,
    conn: Connection,
    notice_id: int,
    bucket: str,
    jti: str,
    reason: Reason,
    now: datetime,
) -> int:
    rows = conn.execute(
        select(deliveries.c.recipient_oin, deliveries.c.bucket, deliveries.c.contact)
        .where(deliveries.c.notice_id == notice_id)
        .order_by(deliveries.c.id)
    ).all()
    refs: dict[str, Any] = {}
    for row in rows:
        if row.recipient_oin in refs:
            continue
        aad = f"delivery:{jti}:{row.recipient_oin}".encode()
        signal = json.loads(gw.cipher.open(conn, row.bucket, row.contact, aad=aad))
        refs[row.recipient_oin] = signal.get("ref")
    for recipient, ref in refs.items():
        payload = {
            "type": "withdrawal",
            "jti": jti,
            "ref": ref,
            "reason": reason,
            "withdrawnAt": format_time(now),
        }
        conn.execute(
            insert(deliveries).values(
                notice_id=notice_id,
                recipient_oin=recipient,
                bucket=bucket,
                contact=gw.cipher.seal(
                    conn,
                    bucket,
                    json.dumps(payload, sort_keys=True).encode(),
                    aad=f"delivery:{jti}:{recipient}".encode(),
                ),
                created_at=now,
            )
        )
    return len(refs)


def _event(
    creditor: OIN, jti: str, reason: Reason, trace_id: str | None, now: datetime, told: int
) -> dict[str, str]:
    return step(
        action="notice.withdrawn",
        obj=jti,
        result=WITHDRAWN,
        reason=reason,
        organisation=creditor,
        role="creditor",
        activity=WITHDRAW_ACTIVITY,
        now=now,
        trace_id=trace_id,
        recipients=str(told),
    )
