"""Retention: expired buckets purged and crypto-shredded, open cases kept, one person's
signals erased on request; the audit log keeps verifying throughout.

The demo's drinking-water notices (adapters/demo/README.md) go to zuid (DRI-2026-100
and -102), to noord (DRI-2026-103), or are closed (DRI-2026-101, not resident); an
ambiguous Jansen notice goes to the back office for review. Received in November 2026
with the default six months, they are sealed in ``DRINKWATER-2027-05``, which expires
at the start of June 2027.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from adapters import profile
from adapters.creditor import Creditor, read_export
from gateway import inbox, ingest
from gateway.cli import CHECKPOINT_TYP, _check_checkpoint
from gateway.clock import FixedClock
from gateway.retention import (
    RetentionJob,
    expires_at,
    forget_person,
    purge_expired,
)
from gateway.service import Gateway
from gateway.settings import Settings
from gateway.store.atrest import BucketCipher
from gateway.store.engine import make_engine, reading
from gateway.store.schema import data_keys, deliveries, notices, retention_statistics
from keys.atrest import FileMasterKeys
from keys.errors import MasterKeyDestroyed
from keys.home import PartyHome
from keys.jwk import OIN
from keys.signed import sign_bytes
from signaalpoort import LocalTransport, _party, app, init_demo, self_check

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
EXPIRY = datetime(2027, 6, 1, tzinfo=UTC)
"""When the buckets of notices received in November 2026 expire (six months)."""
DRINKWATER_BUCKET = "DRINKWATER-2027-05"
ZORG_BUCKET = "ZORG-2027-05"
NOORD = OIN(_party("noord").oin)
ZUID = OIN(_party("zuid").oin)
BACKOFFICE = OIN(_party("backoffice").oin)


@pytest.fixture
def demo(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    if not store_url.startswith("sqlite"):
        monkeypatch.setenv("SIGNAALPOORT_DATABASE_URL", store_url)
    init_demo(tmp_path / "demo", now=NOW)
    return tmp_path / "demo"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def gw(demo: Path, clock: FixedClock) -> Iterator[Gateway]:
    gateway = Gateway.open(Settings.load(demo / "gateway"), clock=clock)
    yield gateway
    gateway.close()


@dataclass(frozen=True)
class Sent:
    """The jtis of what was sent, by where it went."""

    zuid: list[str]
    noord: list[str]
    closed: list[str]
    review: str


def send(demo: Path, gw: Gateway, name: str) -> list[str]:
    """Send the demo creditor ``name``'s export; the jtis, in row order."""
    creditor = Creditor(PartyHome(demo / name), now=NOW)
    transport = LocalTransport(gw, creditor.identity.oin)
    sealed = creditor.seal_rows(read_export(demo / name / "notices.csv"), transport, now=NOW)
    receipt = ingest.submit(
        gw, sender=creditor.identity.oin, envelopes=[s.envelope for s in sealed], intake="local"
    )
    assert [i.outcome for i in receipt.items] == ["accepted"] * len(sealed)
    return [s.jti for s in sealed]


def send_review(demo: Path, gw: Gateway) -> str:
    """An ambiguous Jansen notice (no birth date), which goes to the back office."""
    creditor = Creditor(PartyHome(demo / "drinkwater"), now=NOW)
    jansen = read_export(demo / "drinkwater" / "notices.csv")[3]
    row = profile.Row(
        jansen.line,
        {
            **jansen.values,
            "ref": f"DRI-REVIEW-{uuid.uuid4().hex[:12]}",
            "voorletters": "J.",
            "geboortedatum": "",
        },
        jansen.attestations,
    )
    sealed = creditor.seal_row(row, LocalTransport(gw, creditor.identity.oin), now=NOW)
    ingest.submit(gw, sender=creditor.identity.oin, envelopes=[sealed.envelope], intake="local")
    return sealed.jti


def jtis_of(items: list[inbox.InboxItem]) -> list[str]:
    return sorted(str(i.signal["jti"]) for i in items)


def send_drinkwater(demo: Path, gw: Gateway) -> Sent:
    """Send the drinking-water notices and the review notice; noord and the back office
    acknowledge theirs, zuid does not."""
    jtis = send(demo, gw, "drinkwater")
    review = send_review(demo, gw)
    noord = inbox.pull(gw, recipient=NOORD)
    backoffice = inbox.pull(gw, recipient=BACKOFFICE)
    inbox.ack(gw, recipient=NOORD, ids=[i.id for i in noord])
    inbox.ack(gw, recipient=BACKOFFICE, ids=[i.id for i in backoffice])
    sent = Sent(zuid=sorted([jtis[0], jtis[2]]), noord=[jtis[3]], closed=[jtis[1]], review=review)
    assert jtis_of(inbox.pull(gw, recipient=ZUID)) == sent.zuid
    assert jtis_of(noord) == sent.noord and jtis_of(backoffice) == [review]
    return sent


def stored(gw: Gateway) -> dict[str, str]:
    """jti -> bucket of every stored notice."""
    with reading(gw.engine) as conn:
        return dict(conn.execute(select(notices.c.jti, notices.c.bucket)).all())


def stored_people(gw: Gateway) -> dict[str, str | None]:
    with reading(gw.engine) as conn:
        return dict(conn.execute(select(notices.c.jti, notices.c.person)).all())


def count_events(gw: Gateway) -> int:
    with reading(gw.engine) as conn:
        return len(gw.audit.query(conn))


def count(engine: Engine, table: Any) -> int:
    with reading(engine) as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def destroyed(gw: Gateway) -> dict[str, bool]:
    """bucket -> whether it is marked destroyed."""
    with reading(gw.engine) as conn:
        rows = conn.execute(select(data_keys.c.bucket, data_keys.c.destroyed_at)).all()
    return {row.bucket: row.destroyed_at is not None for row in rows}


def master_keys(gw: Gateway) -> FileMasterKeys:
    return FileMasterKeys(gw.settings.master_keys_dir)


def events(gw: Gateway, action: str) -> list[dict[str, Any]]:
    with reading(gw.engine) as conn:
        return [e for e in gw.audit.query(conn) if e["action"] == action]


def checkpoint(gw: Gateway) -> int:
    signer = gw.keyring.current("sig", now=gw.clock.now())
    with gw.engine.begin() as conn:
        return gw.audit.checkpoint(
            conn, sign=lambda message: sign_bytes(message, typ=CHECKPOINT_TYP, signer=signer)
        )


def verify_audit(gw: Gateway) -> int:
    keys = gw.keyring.published(now=gw.clock.now())
    with reading(gw.engine) as conn:
        return gw.audit.verify(
            conn, verify_signature=lambda message, sig: _check_checkpoint(message, sig, keys)
        )


def backup(gw: Gateway, copy_store: Callable[[str], str]) -> str:
    """A copy of the whole database, as a backup would hold it."""
    gw.engine.dispose()  # PostgreSQL copies a database only without connections to it
    return copy_store(gw.settings.store_url)


# -- when buckets expire -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("bucket", "expiry"),
    [
        ("ZORG-2027-05", datetime(2027, 6, 1, tzinfo=UTC)),
        ("HUUR-2027-12", datetime(2028, 1, 1, tzinfo=UTC)),
        ("EINDELEVERING-2030-01", datetime(2030, 2, 1, tzinfo=UTC)),
    ],
)
def test_a_category_bucket_expires_at_the_end_of_its_month(bucket: str, expiry: datetime) -> None:
    assert expires_at(bucket) == expiry


@pytest.mark.parametrize(
    "bucket", ["zorg-2027-05", "ONBEKEND-2027-05", "ZORG-2027-13", "ZORG-2027-00", "objections"]
)
def test_a_bucket_of_no_category_and_month_never_expires(bucket: str) -> None:
    assert expires_at(bucket) is None


# -- the purge ---------------------------------------------------------------------------


def test_past_the_period_rows_are_gone_keys_destroyed_backups_unreadable_and_the_log_verifies(
    demo: Path, gw: Gateway, clock: FixedClock, copy_store: Callable[[str], str]
) -> None:
    sent = send_drinkwater(demo, gw)
    zorg = send(demo, gw, "zorg")
    inbox.ack(gw, recipient=NOORD, ids=[i.id for i in inbox.pull(gw, recipient=NOORD)])
    assert set(stored(gw).values()) == {DRINKWATER_BUCKET, ZORG_BUCKET}
    checkpoint(gw)
    copy = backup(gw, copy_store)

    clock.advance(EXPIRY - NOW)
    result = purge_expired(gw)

    by_bucket = {p.bucket: p for p in result.purged}
    assert set(by_bucket) == {DRINKWATER_BUCKET, ZORG_BUCKET}
    assert set(result.shredded) == {DRINKWATER_BUCKET, ZORG_BUCKET}
    # Closed and acknowledged signals are gone; zuid's unacknowledged ones and the
    # unresolved review stay, re-sealed into the bucket of the month after next.
    left = stored(gw)
    assert sorted(left) == sorted([*sent.zuid, sent.review])
    assert set(left.values()) == {"DRINKWATER-2027-07"}
    assert not set(left) & {*sent.noord, *sent.closed, *zorg}
    drinkwater = by_bucket[DRINKWATER_BUCKET]
    assert (drinkwater.notices, drinkwater.kept, drinkwater.moved_to) == (
        2,
        3,
        "DRINKWATER-2027-07",
    )
    assert (by_bucket[ZORG_BUCKET].notices, by_bucket[ZORG_BUCKET].kept) == (len(zorg), 0)
    assert by_bucket[ZORG_BUCKET].moved_to is None
    # Master keys destroyed: the keys are gone and the rows say so.
    marks = destroyed(gw)
    assert marks[DRINKWATER_BUCKET] and marks[ZORG_BUCKET]
    assert not marks["DRINKWATER-2027-07"]
    assert not master_keys(gw).exists(DRINKWATER_BUCKET)
    assert not master_keys(gw).exists(ZORG_BUCKET)
    # The copy taken before the purge holds every row, and none of them opens: its
    # data_keys rows are not marked, but the master keys that unwrap them are gone.
    copy_engine = make_engine(copy)
    try:
        cipher = BucketCipher(master_keys(gw))
        with reading(copy_engine) as conn:
            sealed = [
                (row.bucket, row.sealed, f"notice:{row.jti}")
                for row in conn.execute(select(notices.c.jti, notices.c.bucket, notices.c.sealed))
            ] + [
                (row.bucket, row.contact, f"delivery:{row.jti}:{row.recipient_oin}")
                for row in conn.execute(
                    select(
                        notices.c.jti,
                        deliveries.c.bucket,
                        deliveries.c.recipient_oin,
                        deliveries.c.contact,
                    ).join(notices, notices.c.id == deliveries.c.notice_id)
                )
            ]
            assert len(sealed) == count(copy_engine, notices) + count(copy_engine, deliveries)
            assert count(copy_engine, notices) == len(zorg) + 5
            for bucket, blob, aad in sealed:
                with pytest.raises(MasterKeyDestroyed) as caught:
                    cipher.open(conn, bucket, blob, aad=aad.encode())
                assert caught.value.cause == "master_key_missing"
    finally:
        copy_engine.dispose()
    # The audit log, and the checkpoint signed before the purge, still verify.
    [purge_zorg] = [e for e in events(gw, "retention.purged") if e["object"] == ZORG_BUCKET]
    assert (purge_zorg["notices"], purge_zorg["deliveries"]) == (str(len(zorg)), str(len(zorg)))
    assert verify_audit(gw) == count_events(gw)


def test_nothing_is_purged_before_the_month_of_expiry_has_ended(
    demo: Path, gw: Gateway, clock: FixedClock
) -> None:
    send(demo, gw, "zorg")
    before = stored(gw)
    clock.advance(EXPIRY - NOW - timedelta(microseconds=1))
    result = purge_expired(gw)
    assert result.purged == () and result.shredded == ()
    assert stored(gw) == before and master_keys(gw).exists(ZORG_BUCKET)
    assert events(gw, "retention.purged") == []


def test_open_cases_stay_readable_for_their_recipients_after_their_bucket_is_gone(
    demo: Path, gw: Gateway, clock: FixedClock
) -> None:
    sent = send_drinkwater(demo, gw)
    signals = {i.signal["jti"]: i.signal for i in inbox.pull(gw, recipient=ZUID)}
    clock.advance(EXPIRY - NOW)
    purge_expired(gw)

    after = inbox.pull(gw, recipient=ZUID)
    assert {i.signal["jti"]: i.signal for i in after} == signals
    # The back office acknowledged the review signal; it resolves it by its delivery id.
    with reading(gw.engine) as conn:
        delivery = conn.execute(
            select(deliveries.c.id)
            .join(notices, notices.c.id == deliveries.c.notice_id)
            .where(notices.c.jti == sent.review, deliveries.c.recipient_oin == BACKOFFICE)
        ).scalar_one()
    resolved = inbox.resolve(gw, recipient=BACKOFFICE, delivery_id=delivery, close="wrong_signal")
    assert (resolved.jti, resolved.status) == (sent.review, "closed")


def test_an_open_case_goes_with_the_later_bucket_once_it_is_closed(
    demo: Path, gw: Gateway, clock: FixedClock
) -> None:
    sent = send_drinkwater(demo, gw)
    clock.advance(EXPIRY - NOW)
    purge_expired(gw)
    inbox.ack(gw, recipient=ZUID, ids=[i.id for i in inbox.pull(gw, recipient=ZUID)])

    clock.advance(timedelta(days=61))  # into August 2027: DRINKWATER-2027-07 has expired
    result = purge_expired(gw)

    [purged] = result.purged
    assert (purged.bucket, purged.notices, purged.kept) == ("DRINKWATER-2027-07", 2, 1)
    assert sorted(stored(gw)) == [sent.review]
    assert set(stored(gw).values()) == {"DRINKWATER-2027-09"}
    assert not master_keys(gw).exists("DRINKWATER-2027-07")


def test_a_second_run_finds_nothing_more_to_do(demo: Path, gw: Gateway, clock: FixedClock) -> None:
    send(demo, gw, "zorg")
    clock.advance(EXPIRY - NOW)
    purge_expired(gw)
    logged = count_events(gw)
    again = purge_expired(gw)
    assert again.purged == () and again.shredded == ()
    assert count_events(gw) == logged


def test_a_run_destroys_the_master_key_of_a_bucket_marked_destroyed_before_a_crash(
    demo: Path, gw: Gateway
) -> None:
    send(demo, gw, "zorg")
    with gw.engine.begin() as conn:  # marked and committed, then the process stopped
        assert gw.cipher.retire(conn, ZORG_BUCKET, at=NOW)
    assert master_keys(gw).exists(ZORG_BUCKET)
    result = purge_expired(gw)
    assert result.shredded == (ZORG_BUCKET,) and result.purged == ()
    assert not master_keys(gw).exists(ZORG_BUCKET)


def test_purged_signals_leave_only_counts_without_anything_about_the_person(
    demo: Path, gw: Gateway, clock: FixedClock
) -> None:
    send_drinkwater(demo, gw)
    zorg = send(demo, gw, "zorg")
    inbox.ack(gw, recipient=NOORD, ids=[i.id for i in inbox.pull(gw, recipient=NOORD)])
    clock.advance(EXPIRY - NOW)
    purge_expired(gw)

    assert set(retention_statistics.c.keys()) == {
        "gemeente",
        "category",
        "month",
        "status",
        "outcome",
        "notices",
        "deliveries",
    }
    with reading(gw.engine) as conn:
        rows = conn.execute(select(retention_statistics)).all()
    counts = {(r.category, r.status, r.outcome): (r.notices, r.deliveries) for r in rows}
    assert {r.month for r in rows} == {"2026-11"} and {r.gemeente for r in rows} == {"0363"}
    assert counts == {
        ("DRINKWATER", "closed", "not_resident"): (1, 0),
        ("DRINKWATER", "routed", "matched"): (1, 1),
        ("ZORG", "routed", "matched"): (len(zorg), len(zorg)),
    }


def test_the_scheduled_job_purges_with_the_injected_clock(
    demo: Path, gw: Gateway, clock: FixedClock
) -> None:
    send(demo, gw, "zorg")
    inbox.ack(gw, recipient=NOORD, ids=[i.id for i in inbox.pull(gw, recipient=NOORD)])
    clock.advance(EXPIRY - NOW)
    job = RetentionJob(gw, interval=3600)
    try:
        assert job.ran.wait(timeout=60)
    finally:
        job.stop()
    assert job.last is not None and [p.bucket for p in job.last.purged] == [ZORG_BUCKET]
    assert stored(gw) == {} and not master_keys(gw).exists(ZORG_BUCKET)


# -- erasure on request ------------------------------------------------------------------


def test_forgetting_a_person_erases_their_signals_only_and_audits_it(
    demo: Path, gw: Gateway
) -> None:
    send_drinkwater(demo, gw)
    zorg = send(demo, gw, "zorg")
    people = stored_people(gw)
    person = people[zorg[0]]  # Jansen, who has a drinking-water signal too
    assert person is not None
    theirs = {jti for jti, p in people.items() if p == person}
    assert len(theirs) == 2
    before = stored(gw)

    result = forget_person(gw, pseudonym=person)

    assert (result.notices, result.deliveries) == (len(theirs), len(theirs))
    assert sorted(stored(gw)) == sorted(set(before) - theirs)
    assert person not in stored_people(gw).values()
    [event] = events(gw, "person.forgotten")
    assert event["subject"] == person and event["notices"] == str(len(theirs))
    assert verify_audit(gw) == count_events(gw)


def test_forgetting_an_unknown_person_erases_nothing_but_is_audited(
    demo: Path, gw: Gateway
) -> None:
    send(demo, gw, "zorg")
    before = stored(gw)
    result = forget_person(gw, pseudonym="p-" + "A" * 22)
    assert (result.notices, result.deliveries) == (0, 0)
    assert stored(gw) == before
    assert len(events(gw, "person.forgotten")) == 1


@pytest.mark.parametrize("pseudonym", ["", "a b", "x" * 65, "p-'; DROP"])
def test_forgetting_refuses_what_is_not_a_pseudonym(gw: Gateway, pseudonym: str) -> None:
    with pytest.raises(ValueError, match="pseudonym"):
        forget_person(gw, pseudonym=pseudonym)
    assert events(gw, "person.forgotten") == []


# -- the commands ------------------------------------------------------------------------


def test_retention_run_and_forget_commands_purge_erase_and_keep_the_log_verifying(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The commands run on the real clock: a demo eight months old has expired buckets.
    if not store_url.startswith("sqlite"):
        monkeypatch.setenv("SIGNAALPOORT_DATABASE_URL", store_url)
    then = datetime.now(UTC).replace(microsecond=0) - timedelta(days=250)
    init_demo(tmp_path / "demo", now=then)
    self_check(tmp_path / "demo", now=then)
    home = str(tmp_path / "demo" / "gateway")
    runner = CliRunner()

    purged = runner.invoke(app, ["retention", "run", "--home", home])
    assert purged.exit_code == 0, purged.output
    assert "master keys destroyed" in purged.output and "0 buckets purged" not in purged.output

    forgotten = runner.invoke(app, ["forget", "--home", home, "--pseudonym", "p-" + "B" * 22])
    assert forgotten.exit_code == 0, forgotten.output
    assert "erased 0 notices and 0 deliveries" in forgotten.output

    refused = runner.invoke(app, ["forget", "--home", home, "--pseudonym", "not one"])
    assert refused.exit_code == 2

    verified = runner.invoke(app, ["audit", "verify", "--home", home])
    assert verified.exit_code == 0, verified.output
    gw = Gateway.open(Settings.load(Path(home)))
    try:
        marks = destroyed(gw)
        assert stored(gw) == {} and marks and all(marks.values())
        assert {e["object"] for e in events(gw, "retention.purged")} == set(marks)
    finally:
        gw.close()
