"""The audit log: append, verify from stored bytes, tampering, concurrency, checkpoints."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, Executable, delete, select, update
from sqlalchemy.exc import DBAPIError

from gateway.audit import (
    EMPTY_ROOT,
    GENESIS,
    AuditEvent,
    canonical_event,
    chain,
    format_time,
    leaf_hash,
    merkle_root,
)
from gateway.errors import AuditBroken
from gateway.store.auditlog import AuditLog
from gateway.store.schema import audit_checkpoints, audit_events, audit_head
from gateway.store.triggers import (
    append_only_triggers_present,
    ensure_append_only,
    expected_triggers,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
GATEWAY = "00000009999999990000"


def event(n: int = 0, **overrides: Any) -> dict[str, str]:
    fields: dict[str, Any] = {
        "action": "notice.accepted",
        "object": f"00000000-0000-5000-8000-{n:012d}",
        "result": "accepted",
        "actor": "intake",
        "organisation": GATEWAY,
        "role": "gateway",
        "subject": f"p{n:063d}",
        "activity": "vroegsignalering: ontvangst signaal",
        "legal_basis": "Wgs art. 3 lid 3",
        "time": format_time(NOW),
        "trace_id": f"{n + 1:032x}",
    }
    fields.update(overrides)
    return AuditEvent(**fields).to_dict()


class HMACNotary:
    """A fake checkpoint signer and verifier: HMAC-SHA256 under a test key."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    def sign(self, message: bytes) -> str:
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def verify(self, message: bytes, signature: str) -> None:
        if not hmac.compare_digest(self.sign(message), signature):
            raise ValueError("checkpoint signature does not verify")


NOTARY = HMACNotary(b"test checkpoint key")


def mth(entries: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.1, written out recursively over the raw entries."""
    n = len(entries)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + entries[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + mth(entries[:k]) + mth(entries[k:])).digest()


def append(engine: Engine, log: AuditLog, events: Sequence[dict[str, str]]) -> list[int]:
    with engine.begin() as conn:
        return log.append(conn, events)


def verify(engine: Engine, log: AuditLog, notary: HMACNotary = NOTARY) -> int:
    with engine.begin() as conn:
        return log.verify(conn, verify_signature=notary.verify)


def drop_append_only_triggers(conn: Connection) -> None:
    """What an attacker with DDL rights would do first."""
    dialect = conn.dialect.name
    for name in expected_triggers(dialect):
        table = name.split("_append_only_")[0]
        conn.exec_driver_sql(
            f"DROP TRIGGER {name}" + (f" ON {table}" if dialect != "sqlite" else "")
        )


def tamper(engine: Engine, change: Callable[[Connection], None]) -> None:
    with engine.begin() as conn:
        drop_append_only_triggers(conn)
        change(conn)
        ensure_append_only(conn)  # put the triggers back: only the hashes can tell now
        assert append_only_triggers_present(conn) == expected_triggers(conn.dialect.name)


def run(statement: Executable) -> Callable[[Connection], None]:
    """A tampering step that executes one statement."""

    def change(conn: Connection) -> None:
        conn.execute(statement)

    return change


def stored(conn: Connection, position: int) -> bytes:
    return bytes(
        conn.execute(
            select(audit_events.c.data).where(audit_events.c.position == position)
        ).scalar_one()
    )


# --- Merkle tree known answers --------------------------------------------------------

# The leaf inputs of the Certificate Transparency reference tests (RFC 6962 / 9162).
CT_ENTRIES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = {
    0: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
}


@pytest.mark.parametrize("size", [0, 1, 2, 3, 5])
def test_merkle_root_known_answers(size: int) -> None:
    entries = CT_ENTRIES[:size]
    expected = mth(entries)
    assert expected.hex() == CT_ROOTS[size]
    assert merkle_root([leaf_hash(e) for e in entries]) == expected


def test_merkle_root_agrees_with_the_recursive_definition_up_to_70_leaves() -> None:
    entries = [f"event {i}".encode() for i in range(70)]
    for size in range(71):
        assert merkle_root([leaf_hash(e) for e in entries[:size]]) == mth(entries[:size])
    assert merkle_root([]) == EMPTY_ROOT


# --- append and verify ----------------------------------------------------------------


def test_empty_log_verifies_with_zero_events(engine: Engine) -> None:
    assert verify(engine, AuditLog()) == 0


def test_append_assigns_consecutive_positions(engine: Engine) -> None:
    log = AuditLog()
    assert append(engine, log, [event(0), event(1)]) == [1, 2]
    assert append(engine, log, []) == []
    assert append(engine, log, [event(2)]) == [3]
    assert verify(engine, log) == 3
    with engine.connect() as conn:
        head = conn.execute(select(audit_head)).one()
        last = conn.execute(
            select(audit_events.c.chain_hash).where(audit_events.c.position == 3)
        ).scalar_one()
    assert head.position == 3
    assert bytes(head.chain_hash) == bytes(last)


def test_hashes_cover_exactly_the_stored_bytes(engine: Engine) -> None:
    log = AuditLog(clock=lambda: NOW)
    events = [event(0), event(1, subject=None, reason="not_resident")]
    append(engine, log, events)
    with engine.connect() as conn:
        rows = conn.execute(select(audit_events).order_by(audit_events.c.position)).all()
    previous = GENESIS
    for n, row in enumerate(rows):
        data = bytes(row.data)
        assert data == canonical_event({**events[n], "position": n + 1})
        assert bytes(row.leaf_hash) == hashlib.sha256(b"\x00" + data).digest()
        assert bytes(row.chain_hash) == hashlib.sha256(previous + bytes(row.leaf_hash)).digest()
        assert row.created_at == NOW
        previous = bytes(row.chain_hash)


def test_append_refuses_events_with_their_own_position(engine: Engine) -> None:
    with engine.begin() as conn, pytest.raises(ValueError, match="position"):
        AuditLog().append(conn, [{**event(0), "position": 7}])


def test_append_refuses_floats(engine: Engine) -> None:
    with engine.begin() as conn, pytest.raises(TypeError):
        AuditLog().append(conn, [{**event(0), "bedrag": 12.5}])


def test_audit_rows_cannot_be_updated_or_deleted(engine: Engine) -> None:
    append(engine, AuditLog(), [event(0)])
    for statement in (
        update(audit_events).values(data=b"{}"),
        delete(audit_events),
    ):
        with engine.connect() as conn:
            transaction = conn.begin()
            with pytest.raises(DBAPIError, match="append-only"):
                conn.execute(statement)
            transaction.rollback()
    assert verify(engine, AuditLog()) == 1


# --- tampering ------------------------------------------------------------------------


def test_flipped_byte_is_detected(engine: Engine) -> None:
    log = AuditLog()
    append(engine, log, [event(n) for n in range(5)])

    def flip(conn: Connection) -> None:
        data = bytearray(stored(conn, 3))
        data[data.index(b"accepted") + 7] ^= 0x01  # "accepted" -> "acceptee"
        conn.execute(
            update(audit_events).where(audit_events.c.position == 3).values(data=bytes(data))
        )

    tamper(engine, flip)
    with pytest.raises(AuditBroken) as caught:
        verify(engine, log)
    assert caught.value.code == "audit_broken"
    assert caught.value.cause == "leaf_mismatch"
    assert caught.value.position == 3


def test_deleted_event_is_detected(engine: Engine) -> None:
    log = AuditLog()
    append(engine, log, [event(n) for n in range(5)])
    tamper(engine, run(delete(audit_events).where(audit_events.c.position == 2)))
    with pytest.raises(AuditBroken) as caught:
        verify(engine, log)
    assert (caught.value.cause, caught.value.position) == ("position_gap", 2)


def test_deleted_tail_is_detected_by_the_head(engine: Engine) -> None:
    log = AuditLog()
    append(engine, log, [event(n) for n in range(5)])
    tamper(engine, run(delete(audit_events).where(audit_events.c.position > 3)))
    with pytest.raises(AuditBroken) as caught:
        verify(engine, log)
    assert caught.value.cause == "head_mismatch"


def test_event_moved_to_another_position_is_detected(engine: Engine) -> None:
    log = AuditLog()
    append(engine, log, [event(n) for n in range(3)])

    def swap(conn: Connection) -> None:
        second, third = stored(conn, 2), stored(conn, 3)
        for position, data in ((2, third), (3, second)):
            conn.execute(
                update(audit_events).where(audit_events.c.position == position).values(data=data)
            )

    tamper(engine, swap)
    with pytest.raises(AuditBroken) as caught:
        verify(engine, log)
    assert (caught.value.cause, caught.value.position) == ("position_mismatch", 2)


def test_non_canonical_bytes_are_detected_even_with_matching_hashes(engine: Engine) -> None:
    log = AuditLog()
    append(engine, log, [event(0)])

    def respace(conn: Connection) -> None:
        data = json.dumps(json.loads(stored(conn, 1)), indent=1).encode()
        leaf = leaf_hash(data)
        chained = chain(GENESIS, leaf)
        conn.execute(update(audit_events).values(data=data, leaf_hash=leaf, chain_hash=chained))
        conn.execute(update(audit_head).values(chain_hash=chained))

    tamper(engine, respace)
    with pytest.raises(AuditBroken) as caught:
        verify(engine, log)
    assert caught.value.cause == "event_malformed"


def rewrite_history(engine: Engine) -> None:
    """Change event 2's subject and recompute every hash after it, and the head."""

    def rewrite(conn: Connection) -> None:
        rows = conn.execute(select(audit_events).order_by(audit_events.c.position)).all()
        chained = GENESIS
        for row in rows:
            event_ = json.loads(bytes(row.data))
            if row.position == 2:
                event_["subject"] = "p" + "f" * 63
            data = canonical_event(event_)
            leaf = leaf_hash(data)
            chained = chain(chained, leaf)
            conn.execute(
                update(audit_events)
                .where(audit_events.c.position == row.position)
                .values(data=data, leaf_hash=leaf, chain_hash=chained)
            )
        conn.execute(update(audit_head).values(chain_hash=chained))

    tamper(engine, rewrite)


def test_consistently_rewritten_chain_needs_a_checkpoint_to_be_caught(engine: Engine) -> None:
    log = AuditLog()
    append(engine, log, [event(n) for n in range(4)])
    rewrite_history(engine)
    assert verify(engine, log) == 4  # hashes alone cannot tell: that is what checkpoints are for


def test_rewritten_chain_is_caught_by_a_checkpoint(engine: Engine) -> None:
    log = AuditLog()
    append(engine, log, [event(n) for n in range(4)])
    with engine.begin() as conn:
        assert log.checkpoint(conn, NOTARY.sign) == 4
    rewrite_history(engine)
    with pytest.raises(AuditBroken) as caught:
        verify(engine, log)
    assert (caught.value.cause, caught.value.position) == ("checkpoint_root_mismatch", 4)


def test_forged_head_is_detected(engine: Engine) -> None:
    log = AuditLog()
    append(engine, log, [event(n) for n in range(4)])

    def forge(conn: Connection) -> None:
        conn.execute(update(audit_head).values(chain_hash=bytes(32)))

    tamper(engine, forge)
    with pytest.raises(AuditBroken) as caught:
        verify(engine, log)
    assert caught.value.cause == "head_mismatch"


# --- concurrency ----------------------------------------------------------------------


def test_concurrent_appends_get_contiguous_positions(engine: Engine) -> None:
    log = AuditLog()
    threads, transactions, per_transaction = 8, 6, 3
    start = threading.Barrier(threads)
    results: list[list[int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def writer(t: int) -> None:
        try:
            start.wait()
            for i in range(transactions):
                with engine.begin() as conn:
                    positions = log.append(
                        conn, [event(t * 1000 + i * 10 + k) for k in range(per_transaction)]
                    )
                with lock:
                    results.append(positions)
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)

    workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert errors == []
    total = threads * transactions * per_transaction
    assert sorted(p for positions in results for p in positions) == list(range(1, total + 1))
    for positions in results:
        assert positions == list(range(positions[0], positions[0] + per_transaction))
    assert verify(engine, log) == total


# --- checkpoints ----------------------------------------------------------------------


def test_checkpoint_round_trip(engine: Engine) -> None:
    log = AuditLog(clock=lambda: NOW)
    with engine.begin() as conn:
        assert log.checkpoint(conn, NOTARY.sign) == 0
    append(engine, log, [event(n) for n in range(5)])
    with engine.begin() as conn:
        assert log.checkpoint(conn, NOTARY.sign) == 5
        assert log.checkpoint(conn, NOTARY.sign) == 5  # kept, not duplicated
    append(engine, log, [event(n) for n in range(5, 8)])
    with engine.begin() as conn:
        assert log.checkpoint(conn, NOTARY.sign) == 8
    assert verify(engine, log) == 8

    with engine.connect() as conn:
        checkpoints = conn.execute(
            select(audit_checkpoints).order_by(audit_checkpoints.c.size)
        ).all()
        data = (
            conn.execute(select(audit_events.c.data).order_by(audit_events.c.position))
            .scalars()
            .all()
        )
    assert [c.size for c in checkpoints] == [0, 5, 8]
    for checkpoint in checkpoints:
        root = mth([bytes(d) for d in data[: checkpoint.size]])
        assert bytes(checkpoint.root) == root
        message = b"signaalpoort-audit-checkpoint/v1\n%d\n%s" % (
            checkpoint.size,
            root.hex().encode(),
        )
        assert checkpoint.signature == NOTARY.sign(message)
        assert checkpoint.created_at == NOW


def test_checkpoint_signed_by_another_key_fails_verification(engine: Engine) -> None:
    log = AuditLog()
    append(engine, log, [event(n) for n in range(3)])
    with engine.begin() as conn:
        log.checkpoint(conn, HMACNotary(b"someone else").sign)
    with pytest.raises(AuditBroken) as caught:
        verify(engine, log)
    assert (caught.value.cause, caught.value.position) == ("checkpoint_signature_invalid", 3)


def test_checkpoint_beyond_the_log_is_detected(engine: Engine) -> None:
    log = AuditLog()
    append(engine, log, [event(n) for n in range(3)])
    with engine.begin() as conn:
        log.checkpoint(conn, NOTARY.sign)
    tamper(engine, run(delete(audit_events).where(audit_events.c.position == 3)))
    with pytest.raises(AuditBroken) as caught:
        verify(engine, log)
    assert caught.value.cause == "checkpoint_beyond_log"


def test_broken_log_is_never_checkpointed(engine: Engine) -> None:
    log = AuditLog()
    append(engine, log, [event(n) for n in range(3)])
    first = audit_events.c.position == 1
    tamper(engine, run(update(audit_events).where(first).values(leaf_hash=bytes(32))))
    with engine.begin() as conn, pytest.raises(AuditBroken):
        log.checkpoint(conn, NOTARY.sign)
    with engine.connect() as conn:
        assert conn.execute(select(audit_checkpoints)).all() == []


# --- query ----------------------------------------------------------------------------


def test_query_filters_by_subject_actor_activity_and_period(engine: Engine) -> None:
    times = iter([NOW, NOW + timedelta(hours=1), NOW + timedelta(hours=2)])
    log = AuditLog(clock=lambda: next(times))
    append(engine, log, [event(1), event(2, actor="team-noord")])
    append(engine, log, [event(1, action="signal.pulled", activity="doorzetten")])
    append(engine, log, [event(3)])
    with engine.connect() as conn:
        by_subject = log.query(conn, subject=event(1)["subject"])
        assert [(e["position"], e["action"]) for e in by_subject] == [
            (1, "notice.accepted"),
            (3, "signal.pulled"),
        ]
        assert [e["position"] for e in log.query(conn, actor="team-noord")] == [2]
        assert [e["position"] for e in log.query(conn, activity="doorzetten")] == [3]
        assert [e["position"] for e in log.query(conn, since=NOW + timedelta(minutes=30))] == [3, 4]
        assert [e["position"] for e in log.query(conn, until=NOW + timedelta(hours=1))] == [1, 2]
        assert log.query(conn, subject=event(1)["subject"], actor="team-noord") == []
        assert len(log.query(conn)) == 4
