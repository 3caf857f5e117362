"""Retention: expired buckets are purged and crypto-shredded; one person's signals are
erased on request (docs/retention.md).

A notice and its deliveries are sealed in the bucket ``CATEGORY-YYYY-MM`` of the month
they expire (``gateway.ingest``: the month received plus the category's
``retention_months``). A bucket expires at the end of that month, so every signal is
kept at least its category's period and at most a month longer. ``purge_expired``
purges each expired bucket in one transaction:

- open cases stay: a notice still in ``review`` (the back office has not resolved it)
  or with a delivery its recipient has not acknowledged is re-sealed, with all its
  deliveries, into the bucket of the month ``retention_open_case_months`` after now,
  and judged again when that bucket expires;
- every other notice of the bucket is deleted with its deliveries, after its counts
  were added to ``retention_statistics`` (gemeente, category, month received, status,
  outcome: nothing about the person);
- the bucket is marked destroyed and a ``retention.purged`` event records the counts.

After the commit the bucket's master key is destroyed, so every copy of its rows, old
backups included, stays unreadable. A run first destroys the master keys of buckets
marked destroyed before whose key still exists (the process stopped between the
commit and the destruction).

Receipts, batch files and their lines, and the audit log are kept: they hold no contact
data and no person pseudonym beyond what the audit log holds anyway.

``forget_person`` deletes every notice matched to one person pseudonym, with its
deliveries, open or not, and audits the erasure with the pseudonym as its subject.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from gateway.audit import step
from gateway.errors import GatewayError
from gateway.partnerships import stop_without_consent
from gateway.schema import Category
from gateway.service import Gateway
from gateway.store.atrest import add_months, bucket_for
from gateway.store.schema import data_keys, deliveries, notices, retention_statistics
from keys.errors import Error as KeysError

log = logging.getLogger(__name__)

RETENTION_ACTIVITY = "vroegsignalering: bewaartermijn"
ERASURE_ACTIVITY = "vroegsignalering: verwijderen op verzoek"

REVIEW = "review"
NO_OUTCOME = "-"
"""The outcome counted for a notice that has none."""

CHUNK = 500
"""Rows per ``IN (...)`` list and per batch of re-sealed blobs."""

MAX_PSEUDONYM = 64
_PSEUDONYM = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BUCKET = re.compile(r"(?P<category>[A-Z]+)-(?P<year>[0-9]{4})-(?P<month>[0-9]{2})")


def expires_at(bucket: str) -> datetime | None:
    """The moment a retention bucket expires (the first day after its month, 00:00 UTC);
    None for a bucket that is not a category's ``CATEGORY-YYYY-MM``."""
    found = _BUCKET.fullmatch(bucket)
    if found is None or found["category"] not in Category.__members__:
        return None
    month = int(found["month"])
    if not 1 <= month <= 12:
        return None
    end = add_months(date(int(found["year"]), month, 1), 1)
    return datetime(end.year, end.month, end.day, tzinfo=UTC)


@dataclass(frozen=True)
class Purged:
    """One expired bucket purged: rows deleted, open cases moved to ``moved_to``."""

    bucket: str
    notices: int
    deliveries: int
    kept: int
    moved_to: str | None


@dataclass(frozen=True)
class RetentionRun:
    """What one ``purge_expired`` did: the buckets purged and every master key destroyed."""

    purged: tuple[Purged, ...]
    shredded: tuple[str, ...]

    @property
    def notices(self) -> int:
        return sum(p.notices for p in self.purged)

    @property
    def deliveries(self) -> int:
        return sum(p.deliveries for p in self.purged)

    @property
    def kept(self) -> int:
        return sum(p.kept for p in self.purged)


@dataclass(frozen=True)
class Forgotten:
    """What ``forget_person`` erased."""

    notices: int
    deliveries: int


def purge_expired(gw: Gateway) -> RetentionRun:
    """Purge every bucket expired at ``gw.clock.now()`` and destroy its master key."""
    now = gw.clock.now()
    with gw.engine.begin() as conn:
        shredded = gw.cipher.unshredded(conn)
    for bucket in shredded:
        gw.cipher.shred(bucket)
    purged: list[Purged] = []
    for bucket in expired(gw, now):
        result = _purge(gw, bucket, now)
        if result is None:
            continue  # another process purges it, or did meanwhile
        gw.cipher.shred(bucket)
        purged.append(result)
        shredded.append(bucket)
    return RetentionRun(tuple(purged), tuple(shredded))


def expired(gw: Gateway, now: datetime) -> list[str]:
    """The retention buckets not yet destroyed that expired at ``now``, oldest first."""
    with gw.engine.begin() as conn:
        live = conn.execute(
            select(data_keys.c.bucket).where(data_keys.c.destroyed_at.is_(None))
        ).scalars()
        ends = {bucket: expires_at(bucket) for bucket in live}
    due = [(end, bucket) for bucket, end in ends.items() if end is not None and end <= now]
    return [bucket for _, bucket in sorted(due)]


def _purge(gw: Gateway, bucket: str, now: datetime) -> Purged | None:
    found = _BUCKET.fullmatch(bucket)
    assert found is not None  # only buckets ``expired`` named come here
    target = bucket_for(
        found["category"], add_months(now.date(), gw.settings.retention_open_case_months)
    )
    with gw.engine.begin() as conn:
        # The data_keys row is the bucket's lock: a second purger skips it, and a
        # purger that comes after the commit finds it destroyed.
        locked = conn.execute(
            select(data_keys.c.bucket)
            .where(data_keys.c.bucket == bucket, data_keys.c.destroyed_at.is_(None))
            .with_for_update(skip_locked=True)
        ).scalar()
        if locked is None:
            return None
        rows = _counted(conn, notices.c.bucket == bucket)
        open_ids = _open(conn, bucket)
        deleted = _delete(conn, [row for row in rows if row[0] not in open_ids])
        moved = _move_notices(gw, conn, bucket, target, sorted(open_ids))
        moved_deliveries = _move_deliveries(gw, conn, bucket, target)
        left = (
            conn.execute(
                select(func.count()).select_from(notices).where(notices.c.bucket == bucket)
            ).scalar_one()
            + conn.execute(
                select(func.count()).select_from(deliveries).where(deliveries.c.bucket == bucket)
            ).scalar_one()
        )
        if left:  # pragma: no cover - every row was moved or deleted above
            raise RuntimeError(f"bucket {bucket} still holds {left} rows")
        result = Purged(
            bucket,
            len(rows) - moved,
            deleted,
            moved,
            target if moved or moved_deliveries else None,
        )
        gw.audit.append(conn, [_purged_event(gw, result, now)])
        gw.cipher.retire(conn, bucket, at=now)
    return result


def _open(conn: Connection, bucket: str) -> set[int]:
    """The notices of ``bucket`` that are open cases: in review, or with a delivery not
    yet acknowledged by its recipient."""
    review = conn.execute(
        select(notices.c.id).where(notices.c.bucket == bucket, notices.c.status == REVIEW)
    ).scalars()
    unacknowledged = conn.execute(
        select(deliveries.c.notice_id)
        .join(notices, notices.c.id == deliveries.c.notice_id)
        .where(notices.c.bucket == bucket, deliveries.c.acked_at.is_(None))
        .distinct()
    ).scalars()
    return set(review) | set(unacknowledged)


def _chunks(items: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(items), CHUNK):
        yield list(items[start : start + CHUNK])


def _move_notices(
    gw: Gateway, conn: Connection, bucket: str, target: str, ids: Sequence[int]
) -> int:
    """Re-seal the open notices ``ids`` from ``bucket`` into ``target``; how many."""
    statement = (
        update(notices)
        .where(notices.c.id == bindparam("_id"))
        .values(bucket=bindparam("_bucket"), sealed=bindparam("_sealed"))
    )
    for chunk in _chunks(ids):
        rows = conn.execute(
            select(notices.c.id, notices.c.jti, notices.c.sealed).where(notices.c.id.in_(chunk))
        ).all()
        resealed = []
        for row in rows:
            aad = f"notice:{row.jti}".encode()
            plain = gw.cipher.open(conn, bucket, row.sealed, aad=aad)
            sealed = gw.cipher.seal(conn, target, plain, aad=aad)
            resealed.append({"_id": row.id, "_bucket": target, "_sealed": sealed})
        if resealed:
            conn.execute(statement, resealed)
    return len(ids)


def _move_deliveries(gw: Gateway, conn: Connection, bucket: str, target: str) -> int:
    """Re-seal every delivery still in ``bucket`` into ``target``.

    Runs after the closed notices were deleted with their deliveries, so what is left
    belongs to open notices (a delivery is sealed in its notice's bucket; should one
    ever be sealed elsewhere, it is moved too rather than lost).
    """
    statement = (
        update(deliveries)
        .where(deliveries.c.id == bindparam("_id"))
        .values(bucket=bindparam("_bucket"), contact=bindparam("_contact"))
    )
    moved = 0
    after = 0
    while True:
        rows = conn.execute(
            select(
                deliveries.c.id,
                deliveries.c.recipient_oin,
                deliveries.c.contact,
                notices.c.jti,
            )
            .join(notices, notices.c.id == deliveries.c.notice_id)
            .where(deliveries.c.bucket == bucket, deliveries.c.id > after)
            .order_by(deliveries.c.id)
            .limit(CHUNK)
        ).all()
        if not rows:
            return moved
        resealed = []
        for row in rows:
            aad = f"delivery:{row.jti}:{row.recipient_oin}".encode()
            plain = gw.cipher.open(conn, bucket, row.contact, aad=aad)
            resealed.append(
                {
                    "_id": row.id,
                    "_bucket": target,
                    "_contact": gw.cipher.seal(conn, target, plain, aad=aad),
                }
            )
        conn.execute(statement, resealed)
        moved += len(rows)
        after = rows[-1].id


_Key = tuple[str, str, str, str, str]
"""gemeente, category, month received, status, outcome: a ``retention_statistics`` row."""


def _counted(conn: Connection, where: ColumnElement[bool]) -> list[tuple[int, _Key]]:
    """The notices ``where`` selects, locked, each with its statistics key."""
    rows = conn.execute(
        select(
            notices.c.id,
            notices.c.gemeente,
            notices.c.category,
            notices.c.received_at,
            notices.c.status,
            notices.c.outcome,
        )
        .where(where)
        .order_by(notices.c.id)
        .with_for_update()
    ).all()
    return [
        (
            row.id,
            (
                row.gemeente,
                row.category,
                f"{row.received_at.year:04d}-{row.received_at.month:02d}",
                row.status,
                row.outcome or NO_OUTCOME,
            ),
        )
        for row in rows
    ]


def _delete(conn: Connection, rows: Sequence[tuple[int, _Key]]) -> int:
    """Count, then delete the notices ``rows`` with all their deliveries (wherever
    sealed); returns the number of deliveries deleted."""
    keys = dict(rows)
    counts: Counter[_Key] = Counter()
    delivered: Counter[_Key] = Counter()
    total = 0
    for chunk in _chunks(list(keys)):
        per_notice: dict[int, int] = {
            notice_id: number
            for notice_id, number in conn.execute(
                select(deliveries.c.notice_id, func.count())
                .where(deliveries.c.notice_id.in_(chunk))
                .group_by(deliveries.c.notice_id)
            )
        }
        for notice_id in chunk:
            counts[keys[notice_id]] += 1
            delivered[keys[notice_id]] += per_notice.get(notice_id, 0)
        total += conn.execute(delete(deliveries).where(deliveries.c.notice_id.in_(chunk))).rowcount
        conn.execute(delete(notices).where(notices.c.id.in_(chunk)))
    _count(conn, counts, delivered)
    return total


def _count(conn: Connection, counts: Counter[_Key], delivered: Counter[_Key]) -> None:
    """Add the counts to ``retention_statistics``, one row per key."""
    if not counts:
        return
    values = [
        {
            "gemeente": key[0],
            "category": key[1],
            "month": key[2],
            "status": key[3],
            "outcome": key[4],
            "notices": number,
            "deliveries": delivered[key],
        }
        for key, number in sorted(counts.items())
    ]
    dialect = conn.dialect.name
    insert: Any
    if dialect == "postgresql":
        insert = postgresql.insert(retention_statistics)
    elif dialect == "sqlite":
        insert = sqlite.insert(retention_statistics)
    else:
        raise ValueError(f"unsupported dialect {dialect}")
    columns = retention_statistics.c
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=[c.name for c in retention_statistics.primary_key.columns],
            set_={
                "notices": columns.notices + insert.excluded.notices,
                "deliveries": columns.deliveries + insert.excluded.deliveries,
            },
        ),
        values,
    )


def _purged_event(gw: Gateway, purged: Purged, now: datetime) -> dict[str, str]:
    extra = {} if purged.moved_to is None else {"moved_to": purged.moved_to}
    return step(
        action="retention.purged",
        obj=purged.bucket,
        result="purged",
        organisation=gw.settings.gateway_id,
        role="gateway",
        activity=RETENTION_ACTIVITY,
        now=now,
        notices=str(purged.notices),
        deliveries=str(purged.deliveries),
        kept=str(purged.kept),
        **extra,
    )


def check_pseudonym(pseudonym: str) -> str:
    """Return ``pseudonym`` if it has the form of a register pseudonym, else ValueError."""
    if _PSEUDONYM.fullmatch(pseudonym) is None:
        raise ValueError(f"a pseudonym is 1 to {MAX_PSEUDONYM} characters [A-Za-z0-9_-]")
    return pseudonym


def forget_person(gw: Gateway, *, pseudonym: str) -> Forgotten:
    """Erase every signal matched to the person ``pseudonym``: each notice and its
    deliveries, open or not, in one transaction with the audit event of the erasure.

    The counts go to ``retention_statistics`` like a purge's. The bucket keys stay
    (they hold other people's signals): copies in backups remain until the bucket
    expires and its master key is destroyed.
    """
    check_pseudonym(pseudonym)
    now = gw.clock.now()
    with gw.engine.begin() as conn:
        rows = _counted(conn, notices.c.person == pseudonym)
        deleted = _delete(conn, rows)
        forgotten = Forgotten(len(rows), deleted)
        gw.audit.append(
            conn,
            [
                step(
                    action="person.forgotten",
                    obj=None,
                    result="erased",
                    organisation=gw.settings.gateway_id,
                    role="gateway",
                    activity=ERASURE_ACTIVITY,
                    now=now,
                    subject=pseudonym,
                    notices=str(forgotten.notices),
                    deliveries=str(forgotten.deliveries),
                )
            ],
        )
    return forgotten


class RetentionJob:
    """A thread of ``serve`` that runs :func:`purge_expired` every ``interval`` seconds,
    the first time at once, and then stops the queued signals whose consent has expired
    or was withdrawn (``stop_without_consent``). ``ran`` is set after every run, failed
    or not; with ``owns_gateway`` the job closes ``gw`` when stopped."""

    def __init__(self, gw: Gateway, *, interval: float, owns_gateway: bool = False) -> None:
        self.gw = gw
        self.ran = threading.Event()
        self.last: RetentionRun | None = None
        self.stopped = 0
        """Signals the last run stopped for want of consent."""
        self._interval = interval
        self._owns_gateway = owns_gateway
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.last = purge_expired(self.gw)
                with self.gw.engine.begin() as conn:
                    self.stopped = stop_without_consent(
                        conn, now=self.gw.clock.now(), audit=self.gw.audit
                    )
            except (SQLAlchemyError, GatewayError, KeysError, OSError) as exc:
                # The thread's edge: the next run tries again (a master key left behind
                # included). Only the error's class and code are logged: a driver
                # message may quote parameters.
                code = getattr(exc, "code", None)
                log.warning("retention run failed: %s %s", type(exc).__name__, code or "")
            else:
                if self.last.purged or self.last.shredded:
                    log.info(
                        "retention: %d buckets purged, %d notices and %d deliveries "
                        "deleted, %d open cases kept",
                        len(self.last.purged),
                        self.last.notices,
                        self.last.deliveries,
                        self.last.kept,
                    )
            self.ran.set()
            self._stopping.wait(self._interval)

    def stop(self) -> None:
        """Stop after the run in progress (closing the gateway it owns)."""
        self._stopping.set()
        self._thread.join(timeout=60)
        if self._owns_gateway:
            self.gw.close()
