"""Partnerships, consents and objections in the store, and their decisions through the
intake: the receipt's codes, the stored status, the deliveries and the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from adapters.municipality import Municipality
from adapters.objection import objection_from_brp
from adapters.register import PseudonymKey, read_brp
from gateway import inbox
from gateway.clock import FixedClock
from gateway.errors import PartnerUnknown, PolicyConflict
from gateway.partnerships import (
    ConsentIn,
    ObjectionIn,
    add_objection,
    add_partnership,
    end_partnership,
    list_partnerships,
    policy_state,
    register_consent,
    withdraw_consent,
)
from gateway.retention import RetentionJob
from gateway.schema import Category
from gateway.service import Gateway
from gateway.settings import Settings
from gateway.store.schema import deliveries, notices, partnerships
from keys.home import PartyHome
from keys.tokens import Tokeniser
from signaalpoort import AMSTERDAM_OIN, GEMEENTE, _party, init_demo
from tests.gateway.test_ingest import NOW, Sender, audit_reasons, submit

HUUR = _party("huur").oin
ZORG = _party("zorg").oin
TODAY = NOW.date()


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


def _huur_partnership(gw: Gateway, **values: Any) -> None:
    with gw.engine.begin() as conn:
        conn.execute(
            update(partnerships).where(partnerships.c.creditor_oin == HUUR).values(**values)
        )


def _delete_partnerships(gw: Gateway) -> None:
    with gw.engine.begin() as conn:
        conn.execute(partnerships.delete().where(partnerships.c.creditor_oin == HUUR))


@pytest.fixture
def huur(demo: Path, gw: Gateway) -> Sender:
    return Sender(demo, gw, "huur")


def _reason(gw: Gateway, sender: Sender, notice: dict[str, Any]) -> tuple[str, str | None]:
    item = submit(gw, sender.creditor.identity.oin, [sender.seal(notice)]).items[0]
    return item.outcome, item.reason


@pytest.mark.parametrize(
    ("state", "outcome", "reason"),
    [
        ("none", "refused", "partnership_missing"),
        ("not_yet_valid", "refused", "partnership_missing"),
        ("valid", "accepted", None),
        ("ended", "refused", "partnership_missing"),
    ],
)
def test_partnership_states_through_the_intake(
    gw: Gateway, huur: Sender, state: str, outcome: str, reason: str | None
) -> None:
    if state == "none":
        _delete_partnerships(gw)
    elif state == "not_yet_valid":
        _huur_partnership(gw, starts=TODAY + timedelta(days=1))
    elif state == "ended":
        _huur_partnership(gw, ends=TODAY)
    assert _reason(gw, huur, huur.notice()) == (outcome, reason)
    if reason:
        assert audit_reasons(gw, "notice.refused") == [f"partnership_missing:{state}"]


@pytest.mark.parametrize(
    ("name", "value", "cause"),
    [
        ("schriftelijkeHerinnering", None, "missing"),
        ("schriftelijkeHerinnering", "2026-11-05", "contradicting"),
        ("geenBezwaarDoorgifte", False, "contradicting"),
        ("gewezenOpSchuldhulp", "2026-10-01", "contradicting"),
    ],
)
def test_a_precondition_missing_or_contradicted_is_refused_with_its_rule(
    gw: Gateway, huur: Sender, name: str, value: Any, cause: str
) -> None:
    notice = huur.notice()
    attested = {k: v for k, v in notice["attestations"].items() if k != name}
    if value is not None:
        attested[name] = value
    rule = f"huur.{name}"
    assert _reason(gw, huur, {**notice, "attestations": attested}) == (
        "refused",
        f"precondition_missing:{rule}",
    )
    assert audit_reasons(gw, "notice.refused") == [f"precondition_missing:{rule}:{cause}"]


def test_a_refused_notice_can_be_corrected_and_sent_again(gw: Gateway, huur: Sender) -> None:
    notice = huur.notice()
    attested = {k: v for k, v in notice["attestations"].items() if k != "gewezenOpSchuldhulp"}
    assert _reason(gw, huur, {**notice, "attestations": attested})[0] == "refused"
    assert _reason(gw, huur, notice) == ("accepted", None)


def test_an_accepted_notice_records_the_decision_on_its_accepted_event(
    gw: Gateway, huur: Sender
) -> None:
    submit(gw, HUUR, [huur.seal(huur.notice())])
    with gw.engine.connect() as conn:
        accepted = [e for e in gw.audit.query(conn) if e["action"] == "notice.accepted"]
    assert len(accepted) == 1 and accepted[0]["policy"] == "allowed"
    rules = accepted[0]["rules"].split(",")
    assert rules[0].startswith("partnership:") and "huur.geenBezwaarDoorgifte" in rules


# -- objections ----------------------------------------------------------------------------


def _objection(demo: Path, surname: str, **scope: Any) -> ObjectionIn:
    """The municipality's ``objection add`` for the demo person with ``surname``."""
    home = PartyHome(demo / "amsterdam")
    brp = Path(__file__).resolve().parents[2] / "adapters" / "demo" / "brp.csv"
    bsn = next(
        line.split(",")[0] for line in brp.read_text().splitlines() if f",{surname}," in line
    )
    record = objection_from_brp(
        read_brp(brp),
        bsn,
        pseudonyms=PseudonymKey.load(home.secrets_dir),
        ref=f"B-{surname}",
        gemeente=GEMEENTE,
        tokeniser=Tokeniser(Municipality(home).linkage_secret()),
        starts=TODAY - timedelta(days=1),
        **scope,
    )
    assert record is not None
    return ObjectionIn.model_validate(record)


def _register(gw: Gateway, objection: ObjectionIn) -> None:
    with gw.engine.begin() as conn:
        add_objection(conn, objection, by=AMSTERDAM_OIN, now=NOW, audit=gw.audit)


@pytest.mark.parametrize(
    ("surname", "scope", "stopped"),
    [
        pytest.param(None, {}, False, id="none"),
        pytest.param("Berg", {}, True, id="matching"),
        pytest.param("Berg", {"categories": ["HUUR"]}, True, id="matching-in-scope"),
        pytest.param("Berg", {"categories": ["ZORG"]}, False, id="other-category"),
        pytest.param("Berg", {"creditors": [ZORG]}, False, id="other-creditor"),
        pytest.param("Bos", {}, False, id="other-person"),
    ],
)
def test_an_objection_stops_the_signal_and_the_receipt_says_accepted(
    demo: Path, gw: Gateway, huur: Sender, surname: str | None, scope: dict[str, Any], stopped: bool
) -> None:
    if surname is not None:
        _register(gw, _objection(demo, surname, **scope))
    berg = huur.notice(1)  # HUU-2026-101, van den Berg
    assert _reason(gw, huur, berg) == ("accepted", None)
    with gw.engine.connect() as conn:
        row = conn.execute(select(notices.c.status, notices.c.outcome)).one()
        delivered = conn.execute(select(deliveries.c.id)).all()
        events = gw.audit.query(conn)
    closed = [e for e in events if e["action"] == "notice.closed"]
    accepted = [e for e in events if e["action"] == "notice.accepted"]
    if stopped:
        assert (row.status, row.outcome) == ("closed", "objection")
        assert delivered == []
        assert [e["reason"] for e in closed] == ["objection"]
        assert accepted[0]["objection"] and accepted[0]["policy"] == "allowed"
    else:
        assert (row.status, row.outcome) == ("routed", "matched")
        assert len(delivered) == 1


def test_an_objection_by_tokens_only_stops_a_person_the_register_does_not_hold(
    demo: Path, gw: Gateway, huur: Sender
) -> None:
    berg = _objection(demo, "Berg")
    _register(gw, berg.model_copy(update={"person": None}))
    assert _reason(gw, huur, huur.notice(1)) == ("accepted", None)
    with gw.engine.connect() as conn:
        assert conn.execute(select(notices.c.outcome)).scalar_one() == "objection"


def test_an_objection_needs_a_pseudonym_or_strong_tokens() -> None:
    with pytest.raises(ValueError):
        ObjectionIn.model_validate(
            {"v": 1, "gemeente": GEMEENTE, "ref": "B-1", "starts": "2026-01-01"}
        )


def test_an_objection_ref_is_registered_once(demo: Path, gw: Gateway) -> None:
    _register(gw, _objection(demo, "Berg"))
    with pytest.raises(PolicyConflict):
        _register(gw, _objection(demo, "Berg"))


# -- consents ------------------------------------------------------------------------------


@pytest.fixture
def consent_gw(gw: Gateway) -> Iterator[Gateway]:
    """The demo gateway, with HUUR signals needing consent (a covenant)."""
    policy = gw.settings.policy
    rule = policy.categories[Category.HUUR].model_copy(update={"consent": True})
    categories = {**policy.categories, Category.HUUR: rule}
    gw.settings = gw.settings.model_copy(
        update={"policy": policy.model_copy(update={"categories": categories})}
    )
    yield gw


def _consent(notice: dict[str, Any], **values: Any) -> ConsentIn:
    return ConsentIn.model_validate(
        {
            "v": 1,
            "ref": "TOESTEMMING-1",
            "creditor": HUUR,
            "gemeente": GEMEENTE,
            "categories": ["HUUR"],
            "tokens": notice["tokens"],
            "given": "2026-01-01",
            "expires": "2027-01-01",
            **values,
        }
    )


@pytest.mark.parametrize(
    ("state", "outcome", "reason", "cause"),
    [
        ("none", "refused", "consent_missing", "none"),
        ("valid", "accepted", None, None),
        ("expired", "refused", "consent_missing", "expired"),
        ("withdrawn", "refused", "consent_missing", "withdrawn"),
        ("other_person", "refused", "consent_missing", "none"),
    ],
)
def test_consent_states_through_the_intake(
    consent_gw: Gateway, huur: Sender, state: str, outcome: str, reason: str | None, cause: str
) -> None:
    gw = consent_gw
    notice = huur.notice(1)
    if state != "none":
        of = huur.notice(0) if state == "other_person" else notice
        values = {"expires": TODAY.isoformat()} if state == "expired" else {}
        register_consent(gw, _consent(of, **values), by=HUUR)
    if state == "withdrawn":
        with gw.engine.begin() as conn:
            withdraw_consent(
                conn, creditor=HUUR, ref="TOESTEMMING-1", by=HUUR, now=NOW, audit=gw.audit
            )
    assert _reason(gw, huur, notice) == (outcome, reason)
    if reason:
        assert audit_reasons(gw, "notice.refused") == [f"consent_missing:{cause}"]


def test_withdrawing_consent_stops_the_signals_still_queued(
    consent_gw: Gateway, huur: Sender
) -> None:
    gw = consent_gw
    notice = huur.notice(1)
    register_consent(gw, _consent(notice), by=HUUR)
    assert _reason(gw, huur, notice) == ("accepted", None)
    noord = _party("noord").oin
    with gw.engine.begin() as conn:
        stopped = withdraw_consent(
            conn, creditor=HUUR, ref="TOESTEMMING-1", by=HUUR, now=NOW, audit=gw.audit
        )
    assert stopped == 1
    assert inbox.pull(gw, recipient=noord) == []
    with gw.engine.connect() as conn:
        row = conn.execute(select(notices.c.status, notices.c.outcome)).one()
    assert (row.status, row.outcome) == ("closed", "no_consent")
    with gw.engine.connect() as conn:
        roles = {e["action"]: e["role"] for e in gw.audit.query(conn) if "consent" in e["action"]}
    assert roles == {
        "consent.registered": "creditor",
        "consent.withdrawn": "creditor",
        "consent.signals_stopped": "creditor",
    }


def test_the_scheduled_job_stops_the_queued_signals_of_an_expired_consent(
    consent_gw: Gateway, huur: Sender
) -> None:
    gw = consent_gw
    notice = huur.notice(1)
    register_consent(gw, _consent(notice, expires=(TODAY + timedelta(days=1)).isoformat()), by=HUUR)
    assert _reason(gw, huur, notice) == ("accepted", None)
    assert isinstance(gw.clock, FixedClock)
    gw.clock.advance(timedelta(days=2))
    job = RetentionJob(gw, interval=3600)
    try:
        assert job.ran.wait(timeout=60)
    finally:
        job.stop()
    assert job.stopped == 1
    assert inbox.pull(gw, recipient=_party("noord").oin) == []


# -- the store -------------------------------------------------------------------------------


def test_partnerships_are_added_listed_and_ended(gw: Gateway) -> None:
    with gw.engine.begin() as conn:
        new = add_partnership(
            conn,
            gemeente=GEMEENTE,
            creditor=ZORG,
            categories=[Category.HYPOTHEEK],
            starts=date(2026, 12, 1),
            ends=None,
            by=AMSTERDAM_OIN,
            now=NOW,
            audit=gw.audit,
        )
        assert end_partnership(
            conn, new, gemeente=GEMEENTE, ends=date(2027, 1, 1), by=AMSTERDAM_OIN, now=NOW,
            audit=gw.audit,
        )  # fmt: skip
        assert not end_partnership(
            conn, new, gemeente="0599", ends=TODAY, by=AMSTERDAM_OIN, now=NOW, audit=gw.audit
        )
        rows = {r.partnership.id: r.partnership for r in list_partnerships(conn, gemeente=GEMEENTE)}
    assert rows[new].period.state(TODAY) == "not_yet_valid"
    assert rows[new].period.ends == date(2027, 1, 1)
    state = policy_state(gw.engine, gemeenten=[GEMEENTE])
    assert len(state.partnerships[GEMEENTE, ZORG]) == 2


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"creditor": AMSTERDAM_OIN}, PartnerUnknown),
        ({"categories": []}, PolicyConflict),
        ({"ends": date(2026, 1, 1)}, PolicyConflict),
    ],
)
def test_a_partnership_that_does_not_fit_is_not_registered(
    gw: Gateway, values: dict[str, Any], error: type[Exception]
) -> None:
    arguments: dict[str, Any] = {
        "gemeente": GEMEENTE,
        "creditor": ZORG,
        "categories": [Category.ZORG],
        "starts": date(2026, 6, 1),
        "ends": None,
        **values,
    }
    with pytest.raises(error), gw.engine.begin() as conn:
        add_partnership(conn, **arguments, by=AMSTERDAM_OIN, now=NOW, audit=gw.audit)


def test_the_batch_state_is_read_for_the_batchs_municipalities_only(gw: Gateway) -> None:
    assert policy_state(gw.engine, gemeenten=["0599"]).partnerships == {}
    assert policy_state(gw.engine, gemeenten=[]).partnerships == {}
