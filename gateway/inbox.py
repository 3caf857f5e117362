"""A team's inbox: the signals routed to it, pulled page by page and acknowledged."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from gateway.audit import step
from gateway.service import Gateway
from gateway.store.schema import deliveries, notices
from keys.jwk import OIN

DELIVERY_ACTIVITY = "vroegsignalering: doorzetten signaal"
MAX_PAGE = 500


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
