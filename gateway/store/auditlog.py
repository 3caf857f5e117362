"""The audit log in the database: appended under one lock, verified from stored bytes.

Each event is stored as ``canonical_event({**event, "position": n})``; its leaf hash and
chain hash are computed over exactly those stored bytes. ``append`` locks the single
``audit_head`` row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite transactions are
serialised by ``BEGIN IMMEDIATE``), so positions are consecutive and commit in order even
with many writers. Triggers make ``audit_events`` and ``audit_checkpoints`` append-only;
``verify`` catches what gets past them, and signed checkpoints catch a rewritten chain.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from gateway.audit import (
    GENESIS,
    CompactRange,
    canonical_event,
    chain,
    checkpoint_message,
    leaf_hash,
)
from gateway.errors import AuditBroken
from gateway.store.bulk import insert_rows
from gateway.store.schema import audit_checkpoints, audit_events, audit_head
from keys.errors import Error as KeysError

STREAM_ROWS = 1_000
"""Rows fetched at a time while scanning the log."""

Signer = Callable[[bytes], str]
"""Signs a checkpoint message; returns the signature as text (e.g. a compact JWS)."""

SignatureVerifier = Callable[[bytes, str], None]
"""Verifies a checkpoint signature over a message; raises ``keys.errors.Error`` or
``ValueError`` when it does not verify."""


def _parse(data: bytes, position: int) -> dict[str, Any]:
    try:
        event = json.loads(data.decode("utf-8"))
    except ValueError:
        raise AuditBroken(
            "stored event is not UTF-8 JSON", cause="event_malformed", position=position
        ) from None
    if not isinstance(event, dict):
        raise AuditBroken(
            "stored event is not a JSON object", cause="event_malformed", position=position
        )
    return event


class AuditLog:
    """Appends, verifies, checkpoints and queries the audit log in the caller's transaction."""

    def __init__(self, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock

    def append(self, conn: Connection, events: Sequence[Mapping[str, Any]]) -> list[int]:
        """Append ``events`` at the next positions, which are returned.

        Events are plain mappings (``AuditEvent.to_dict()``) and must not carry a
        ``position`` of their own; ``canonical_event`` refuses floats and non-str keys.
        """
        if not events:
            return []
        for event in events:
            if "position" in event:
                raise ValueError("the audit log assigns positions; drop 'position'")
        head = conn.execute(
            select(audit_head.c.position, audit_head.c.chain_hash)
            .where(audit_head.c.id == 1)
            .with_for_update()
        ).one_or_none()
        if head is None:
            raise AuditBroken("the audit head row is missing", cause="head_missing")
        position, chained = head.position, bytes(head.chain_hash)
        now = self._clock()
        rows = []
        for event in events:
            position += 1
            data = canonical_event({**event, "position": position})
            leaf = leaf_hash(data)
            chained = chain(chained, leaf)
            rows.append(
                {
                    "position": position,
                    "data": data,
                    "leaf_hash": leaf,
                    "chain_hash": chained,
                    "created_at": now,
                }
            )
        insert_rows(conn, audit_events, rows)
        conn.execute(
            update(audit_head)
            .where(audit_head.c.id == 1)
            .values(position=position, chain_hash=chained)
        )
        return [row["position"] for row in rows]

    def _head(self, conn: Connection) -> tuple[int, bytes]:
        head = conn.execute(
            select(audit_head.c.position, audit_head.c.chain_hash).where(audit_head.c.id == 1)
        ).one_or_none()
        if head is None:
            raise AuditBroken("the audit head row is missing", cause="head_missing")
        return head.position, bytes(head.chain_hash)

    def _scan(
        self, conn: Connection, *, upto: int | None = None
    ) -> Iterator[tuple[int, bytes, bytes]]:
        """Yield ``(position, leaf hash, chain hash)`` of each event, checking as it goes.

        Leaf and chain hashes are recomputed from the stored bytes; positions must run
        1, 2, 3, ... and match the ``position`` inside the data; the data must be
        canonical.
        """
        query = select(
            audit_events.c.position,
            audit_events.c.data,
            audit_events.c.leaf_hash,
            audit_events.c.chain_hash,
        ).order_by(audit_events.c.position)
        if upto is not None:
            query = query.where(audit_events.c.position <= upto)
        expected, chained = 1, GENESIS
        result = conn.execute(query.execution_options(yield_per=STREAM_ROWS))
        for row in result:
            if row.position != expected:
                raise AuditBroken(
                    f"expected position {expected}, found {row.position}",
                    cause="position_gap",
                    position=expected,
                )
            data = bytes(row.data)
            event = _parse(data, row.position)
            if event.get("position") != row.position:
                raise AuditBroken(
                    "the position inside the event differs from its row",
                    cause="position_mismatch",
                    position=row.position,
                )
            try:
                canonical = canonical_event(event)
            except TypeError:
                canonical = b""
            if canonical != data:
                raise AuditBroken(
                    "stored event is not canonical", cause="event_malformed", position=row.position
                )
            leaf = leaf_hash(data)
            if leaf != bytes(row.leaf_hash):
                raise AuditBroken(
                    "leaf hash does not match the stored event",
                    cause="leaf_mismatch",
                    position=row.position,
                )
            chained = chain(chained, leaf)
            if chained != bytes(row.chain_hash):
                raise AuditBroken(
                    "chain hash does not match", cause="chain_mismatch", position=row.position
                )
            yield row.position, leaf, chained
            expected += 1

    def verify(self, conn: Connection, *, verify_signature: SignatureVerifier) -> int:
        """Check the whole log and every checkpoint; return the number of events.

        Raises ``AuditBroken`` at the first problem: a gap or reordering, an event whose
        bytes do not hash to its leaf or chain hash, a head that disagrees with the
        events, a checkpoint whose root differs or whose signature does not verify
        (``verify_signature`` raises ``keys.errors.Error`` or ``ValueError``), or a
        checkpoint beyond the end of the log.

        Safe next to concurrent appends: rows committed after the head was read are
        checked too, since appends commit in position order.
        """
        head_position, head_chain = self._head(conn)
        checkpoints = list(
            conn.execute(
                select(
                    audit_checkpoints.c.size,
                    audit_checkpoints.c.root,
                    audit_checkpoints.c.signature,
                ).order_by(audit_checkpoints.c.size)
            )
        )
        tree = CompactRange()
        pending = iter(checkpoints)
        checkpoint = next(pending, None)

        def check_checkpoints() -> None:
            nonlocal checkpoint
            while checkpoint is not None and checkpoint.size == tree.size:
                self._check_checkpoint(
                    checkpoint.size,
                    bytes(checkpoint.root),
                    checkpoint.signature,
                    tree.root(),
                    verify_signature,
                )
                checkpoint = next(pending, None)

        check_checkpoints()
        count = 0
        for position, leaf, chained in self._scan(conn):
            count = position
            tree.append(leaf)
            if position == head_position and chained != head_chain:
                raise AuditBroken(
                    "head chain hash differs from the log", cause="head_mismatch", position=position
                )
            check_checkpoints()
        if checkpoint is not None:
            raise AuditBroken(
                f"checkpoint of {checkpoint.size} events, but the log holds {count}",
                cause="checkpoint_beyond_log",
                position=count + 1,
            )
        if count < head_position:
            raise AuditBroken(
                f"head is at {head_position}, but the log holds {count} events",
                cause="head_mismatch",
                position=count + 1,
            )
        if head_position == 0 and head_chain != GENESIS:
            raise AuditBroken("empty log with a non-genesis head", cause="head_mismatch")
        # Rows beyond the head we read must have been sealed since: re-read the head.
        if self._head(conn)[0] < count:
            raise AuditBroken(
                "events beyond the head that the sealer never recorded",
                cause="head_mismatch",
                position=count,
            )
        return count

    @staticmethod
    def _check_checkpoint(
        size: int, root: bytes, signature: str, computed: bytes, verify: SignatureVerifier
    ) -> None:
        if root != computed:
            raise AuditBroken(
                f"checkpoint root of {size} events differs from the log",
                cause="checkpoint_root_mismatch",
                position=size,
            )
        try:
            verify(checkpoint_message(size, root), signature)
        except (KeysError, ValueError) as exc:
            raise AuditBroken(
                f"checkpoint signature of {size} events does not verify",
                cause="checkpoint_signature_invalid",
                position=size,
            ) from exc

    def checkpoint(self, conn: Connection, sign: Signer) -> int:
        """Record a signed Merkle root over every current event; return its size.

        The chain is checked while the root is computed, so a broken log is never
        signed. A checkpoint of the same size that exists already is kept.
        """
        size, _ = self._head(conn)
        exists = conn.execute(
            select(audit_checkpoints.c.size).where(audit_checkpoints.c.size == size)
        ).one_or_none()
        if exists is not None:
            return size
        tree = CompactRange()
        for _, leaf, _ in self._scan(conn, upto=size):
            tree.append(leaf)
        if tree.size != size:
            raise AuditBroken(
                f"head is at {size}, but the log holds {tree.size} events",
                cause="head_mismatch",
                position=tree.size + 1,
            )
        root = tree.root()
        conn.execute(
            insert(audit_checkpoints).values(
                size=size,
                root=root,
                signature=sign(checkpoint_message(size, root)),
                created_at=self._clock(),
            )
        )
        return size

    def query(
        self,
        conn: Connection,
        *,
        subject: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        activity: str | None = None,
    ) -> list[dict[str, Any]]:
        """Stored events matching every given filter, oldest first.

        ``since`` (inclusive) and ``until`` (exclusive) bound the time the event was
        sealed; ``subject``, ``actor`` and ``activity`` match the event's fields exactly.
        """
        query = select(audit_events.c.position, audit_events.c.data).order_by(
            audit_events.c.position
        )
        if since is not None:
            query = query.where(audit_events.c.created_at >= since)
        if until is not None:
            query = query.where(audit_events.c.created_at < until)
        wanted = {
            key: value
            for key, value in (("subject", subject), ("actor", actor), ("activity", activity))
            if value is not None
        }
        found = []
        for row in conn.execute(query.execution_options(yield_per=STREAM_ROWS)):
            event = _parse(bytes(row.data), row.position)
            if all(event.get(key) == value for key, value in wanted.items()):
                found.append(event)
        return found
