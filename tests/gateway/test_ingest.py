"""The ingest pipeline: what each kind of envelope becomes, and what is left behind."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from adapters import profile
from adapters.creditor import Creditor, notice_jti, read_export
from gateway import inbox, ingest
from gateway.clock import FixedClock
from gateway.service import Gateway
from gateway.settings import Settings
from gateway.store.auditlog import AuditLog
from gateway.store.schema import deliveries, notices, receipts
from keys.envelope import encrypt_jwt, sign_notice
from keys.home import PartyHome
from keys.receipt import verify_receipt
from signaalpoort import LocalTransport, _party, init_demo

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
ZORG = _party("zorg").oin
HUUR = _party("huur").oin
DRINKWATER = _party("drinkwater").oin
ENERGIE = _party("energie").oin


@pytest.fixture
def demo(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    if not store_url.startswith("sqlite"):
        monkeypatch.setenv("SIGNAALPOORT_DATABASE_URL", store_url)
    init_demo(tmp_path / "demo", now=NOW)
    return tmp_path / "demo"


@pytest.fixture
def gw(demo: Path) -> Iterator[Gateway]:
    gateway = Gateway.open(Settings.load(demo / "gateway"), clock=FixedClock(NOW))
    yield gateway
    gateway.close()


class Sender:
    """The zorg creditor of the demo, building notices from its own export."""

    def __init__(self, demo: Path, gw: Gateway, name: str = "zorg") -> None:
        self.home = PartyHome(demo / name)
        self.creditor = Creditor(self.home, now=NOW)
        self.transport = LocalTransport(gw, self.creditor.identity.oin)
        self.rows = read_export(demo / name / "notices.csv")
        self.signer = self.home.keyring().current("sig", now=NOW)
        self.gateway_key = self.creditor._gateway_enc

    def envelopes(self) -> list[str]:
        return [s.envelope for s in self.creditor.seal_rows(self.rows, self.transport, now=NOW)]

    def notice(self, index: int = 0) -> dict[str, Any]:
        return self.creditor.notice(self.rows[index], self.transport, now=NOW)

    def seal(self, notice: dict[str, Any]) -> str:
        return encrypt_jwt(sign_notice(notice, signer=self.signer), self.gateway_key)


def submit(gw: Gateway, sender: str, envelopes: list[str]) -> ingest.Receipt:
    return ingest.submit(gw, sender=sender, envelopes=envelopes, intake="rest")


def count(gw: Gateway, table: Any) -> int:
    with gw.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def audit_reasons(gw: Gateway, action: str) -> list[str | None]:
    with gw.engine.connect() as conn:
        return [e.get("reason") for e in gw.audit.query(conn) if e["action"] == action]


def test_accepts_stores_routes_and_signs_a_verifiable_receipt(demo: Path, gw: Gateway) -> None:
    sender = Sender(demo, gw)
    receipt = submit(gw, ZORG, sender.envelopes())
    assert [i.outcome for i in receipt.items] == ["accepted"] * len(sender.rows)
    body = verify_receipt(receipt.jws, keys=sender.creditor.gateway_keys)
    assert body["aud"] == ZORG and len(body["items"]) == len(sender.rows)
    assert count(gw, notices) == count(gw, deliveries) == len(sender.rows)
    assert count(gw, receipts) == 1


def test_stored_notices_are_encrypted_at_rest(demo: Path, gw: Gateway) -> None:
    sender = Sender(demo, gw)
    submit(gw, ZORG, sender.envelopes())
    with gw.engine.connect() as conn:
        blobs = [row.sealed for row in conn.execute(select(notices.c.sealed))]
    refs = [row.get("ref").encode() for row in sender.rows]
    assert blobs and not any(ref in blob for ref in refs for blob in blobs)


def test_resending_the_same_envelopes_gives_duplicates_and_stores_nothing_new(
    demo: Path, gw: Gateway
) -> None:
    sender = Sender(demo, gw)
    envelopes = sender.envelopes()
    submit(gw, ZORG, envelopes)
    again = submit(gw, ZORG, sender.envelopes())
    assert [i.outcome for i in again.items] == ["duplicate"] * len(envelopes)
    assert count(gw, notices) == len(envelopes)


def test_same_jti_with_another_payload_is_refused_as_reused(demo: Path, gw: Gateway) -> None:
    sender = Sender(demo, gw)
    notice = sender.notice()
    submit(gw, ZORG, [sender.seal(notice)])
    changed = {**notice, "bedrag": "1.00"}
    receipt = submit(gw, ZORG, [sender.seal(changed)])
    assert (receipt.items[0].outcome, receipt.items[0].reason) == ("refused", "jti_reused")


def test_a_duplicate_within_one_batch_is_stored_once(demo: Path, gw: Gateway) -> None:
    sender = Sender(demo, gw)
    envelope = sender.envelopes()[0]
    receipt = submit(gw, ZORG, [envelope, envelope])
    assert [i.outcome for i in receipt.items] == ["accepted", "duplicate"]
    assert count(gw, notices) == 1


def _flip(envelope: str) -> str:
    index = len(envelope) // 2
    return envelope[:index] + ("A" if envelope[index] != "A" else "B") + envelope[index + 1 :]


@pytest.mark.parametrize(
    ("mangle", "cause"),
    [
        (lambda e: e + "." + "A" * 70_000, "oversized"),
        (lambda e: "not a jwe", "malformed"),
        (_flip, "decrypt_failed"),
    ],
)
def test_envelope_failures_tell_the_sender_only_envelope_invalid_and_audit_the_cause(
    demo: Path, gw: Gateway, mangle: Any, cause: str
) -> None:
    sender = Sender(demo, gw)
    receipt = submit(gw, ZORG, [mangle(sender.envelopes()[0])])
    assert (receipt.items[0].outcome, receipt.items[0].reason) == ("refused", "envelope_invalid")
    assert receipt.items[0].jti is None
    assert audit_reasons(gw, "notice.refused") == [cause]
    assert count(gw, notices) == 0


def test_a_notice_signed_by_another_creditor_is_refused(demo: Path, gw: Gateway) -> None:
    sender = Sender(demo, gw)
    receipt = submit(gw, HUUR, sender.envelopes()[:1])
    assert receipt.items[0].reason == "envelope_invalid"
    assert audit_reasons(gw, "notice.refused") == ["signer_mismatch"]


def test_a_revoked_signing_key_is_refused_at_once(demo: Path, gw: Gateway) -> None:
    sender = Sender(demo, gw)
    with gw.engine.begin() as conn:
        assert gw.directory.revoke_key(conn, sender.signer.kid, now=NOW - timedelta(seconds=1))
    receipt = submit(gw, ZORG, sender.envelopes()[:1])
    assert receipt.items[0].reason == "envelope_invalid"
    assert audit_reasons(gw, "notice.refused") == ["key_revoked"]


def test_a_notice_outside_the_schema_is_refused_with_its_jti(demo: Path, gw: Gateway) -> None:
    sender = Sender(demo, gw)
    notice = {**sender.notice(), "bedrag": "12,50"}
    receipt = submit(gw, ZORG, [sender.seal(notice)])
    item = receipt.items[0]
    assert (item.outcome, item.reason, item.jti) == ("refused", "schema_invalid", notice["jti"])


def test_refusals_of_every_step_keep_their_places_among_accepted_notices(
    demo: Path, gw: Gateway
) -> None:
    sender = Sender(demo, gw)
    good = sender.envelopes()
    first, second = sender.notice(0), sender.notice(1)
    outside = {**sender.notice(2), "bedrag": "12,50"}
    moved = {**second, "contact": copy.deepcopy(first["contact"])}
    batch = [
        "not a jwe",
        good[0],
        sender.seal(outside),
        good[1],
        sender.seal(moved),
        good[3],
    ]
    receipt = submit(gw, ZORG, batch)
    assert [(i.position, i.outcome, i.reason, i.jti) for i in receipt.items] == [
        (0, "refused", "envelope_invalid", None),
        (1, "accepted", None, first["jti"]),
        (2, "refused", "schema_invalid", outside["jti"]),
        (3, "accepted", None, second["jti"]),
        (4, "refused", "contact_block_invalid", second["jti"]),
        (5, "accepted", None, sender.notice(3)["jti"]),
    ]
    assert audit_reasons(gw, "notice.refused") == [
        "malformed",
        "schema_invalid:bedrag",
        "wrong_notice",
    ]
    assert count(gw, notices) == 3


def test_a_contact_block_moved_from_another_notice_is_refused(demo: Path, gw: Gateway) -> None:
    sender = Sender(demo, gw)
    first, second = sender.notice(0), sender.notice(1)
    moved = {**second, "contact": copy.deepcopy(first["contact"])}
    receipt = submit(gw, ZORG, [sender.seal(moved)])
    assert receipt.items[0].reason == "contact_block_invalid"
    assert audit_reasons(gw, "notice.refused") == ["wrong_notice"]


def test_a_municipality_without_a_team_is_refused(demo: Path, gw: Gateway) -> None:
    sender = Sender(demo, gw)
    notice = sender.notice()
    receipt = submit(gw, ZORG, [sender.seal({**notice, "gemeente": "0599"})])
    assert receipt.items[0].reason == "gemeente_unknown"


class FailingAudit(AuditLog):
    """An audit log whose store fails mid-transaction, as a lost database would."""

    def append(self, conn: Any, events: Any) -> list[int]:
        raise RuntimeError("database went away")


def test_a_store_failure_mid_batch_leaves_nothing_and_a_retry_succeeds(
    demo: Path, gw: Gateway
) -> None:
    sender = Sender(demo, gw)
    envelopes = sender.envelopes()
    working = gw.audit
    gw.audit = FailingAudit()
    with pytest.raises(RuntimeError):
        submit(gw, ZORG, envelopes)
    assert count(gw, notices) == count(gw, deliveries) == count(gw, receipts) == 0
    gw.audit = working
    retry = submit(gw, ZORG, envelopes)
    assert [i.outcome for i in retry.items] == ["accepted"] * len(envelopes)


def test_team_pulls_only_its_signals_and_acknowledges_them(demo: Path, gw: Gateway) -> None:
    sender = Sender(demo, gw)
    submit(gw, ZORG, sender.envelopes())
    noord, zuid = _party("noord").oin, _party("zuid").oin
    assert inbox.pull(gw, recipient=zuid) == []
    items = inbox.pull(gw, recipient=noord)
    assert len(items) == len(sender.rows)
    assert all(len(i.signal["contact"]["recipients"]) == 1 for i in items)
    assert inbox.ack(gw, recipient=zuid, ids=[i.id for i in items]) == 0
    assert inbox.ack(gw, recipient=noord, ids=[i.id for i in items]) == len(items)
    assert inbox.pull(gw, recipient=noord) == []


def test_every_step_leaves_an_audit_trail_that_verifies(demo: Path, gw: Gateway) -> None:
    sender = Sender(demo, gw)
    submit(gw, ZORG, sender.envelopes())
    with gw.engine.connect() as conn:
        events = gw.audit.query(conn)
        assert gw.audit.verify(conn, verify_signature=_no_checkpoints) == len(events)
    actions = [e["action"] for e in events]
    n = len(sender.rows)
    assert actions.count("notice.accepted") == actions.count("notice.routed") == n
    assert actions.count("receipt.issued") == 1
    assert not any("Jansen" in json.dumps(e) for e in events)


def _no_checkpoints(message: bytes, signature: str) -> None:
    raise AssertionError("no checkpoint was made")


def _deliveries(gw: Gateway) -> dict[str, tuple[str, str | None, str | None]]:
    """jti -> (status, outcome, recipient) of every stored notice."""
    with gw.engine.connect() as conn:
        rows = conn.execute(
            select(notices.c.jti, notices.c.status, notices.c.outcome, deliveries.c.recipient_oin)
            .select_from(notices)
            .outerjoin(deliveries, deliveries.c.notice_id == notices.c.id)
        ).all()
    return {jti: (status, outcome, recipient) for jti, status, outcome, recipient in rows}


def test_whether_the_person_was_found_never_reaches_the_receipt(demo: Path, gw: Gateway) -> None:
    sender = Sender(demo, gw, "drinkwater")
    receipt = submit(gw, DRINKWATER, sender.envelopes())
    body = verify_receipt(receipt.jws, keys=sender.creditor.gateway_keys)
    assert [(i["outcome"], i["reason"]) for i in body["items"]] == [("accepted", None)] * 4
    assert set(body["items"][0]) == {"position", "envelopeSha256", "jti", "outcome", "reason"}
    stored = _deliveries(gw)
    by_ref = {row.get("ref"): stored[notice_jti(DRINKWATER, row.get("ref"))] for row in sender.rows}
    assert by_ref == {
        "DRI-2026-100": ("routed", "matched", _party("zuid").oin),
        "DRI-2026-101": ("closed", "not_resident", None),
        "DRI-2026-102": ("routed", "matched", _party("zuid").oin),
        "DRI-2026-103": ("routed", "matched", _party("noord").oin),
    }


def test_an_ambiguous_notice_goes_to_the_back_office_with_why(demo: Path, gw: Gateway) -> None:
    sender = Sender(demo, gw, "drinkwater")
    # Father and son are both J. Jansen at this address; without a birth date or a
    # second initial, a tie.
    jansen = sender.rows[3]
    values = {**jansen.values, "voorletters": "J.", "geboortedatum": ""}
    row = profile.Row(jansen.line, values, jansen.attestations)
    notice = sender.creditor.notice(row, sender.transport, now=NOW)
    receipt = submit(gw, DRINKWATER, [sender.seal(notice)])
    assert receipt.items[0].outcome == "accepted"
    assert _deliveries(gw)[notice["jti"]] == ("review", "review", _party("backoffice").oin)
    [item] = inbox.pull(gw, recipient=_party("backoffice").oin)
    assert item.signal["routing"] == {
        "team": _party("backoffice").oin,
        "reason": "backoffice",
        "review": "ambiguous",
    }
    assert inbox.pull(gw, recipient=_party("noord").oin) == []


def test_matching_and_closing_are_audited_with_the_person_pseudonym(
    demo: Path, gw: Gateway
) -> None:
    sender = Sender(demo, gw, "energie")
    submit(gw, ENERGIE, sender.envelopes())
    with gw.engine.connect() as conn:
        events = gw.audit.query(conn)
    matched = [e for e in events if e["action"] == "notice.matched"]
    assert sorted(e["result"] for e in matched) == ["deceased", "matched", "matched", "matched"]
    assert all(e["subject"].startswith("p-") and int(e["score"]) > 0 for e in matched)
    smit = notice_jti(ENERGIE, "ENE-2026-102")
    closed = [e for e in events if e["action"] == "notice.closed"]
    assert [(e["object"], e["reason"]) for e in closed] == [(smit, "deceased")]
    routed = {e["object"]: e for e in events if e["action"] == "notice.routed"}
    visser = routed[notice_jti(ENERGIE, "ENE-2026-101")]
    assert (visser["recipient"], visser["reason"]) == (_party("zuid").oin, "label:schuldhulp")
    assert smit not in routed
