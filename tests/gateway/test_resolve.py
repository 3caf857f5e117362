"""The back office resolves a review signal: closes it, or assigns it to a resident.

The review case is the demo's Jansen household (adapters/demo/README.md): father and son
are both "J. Jansen" at one address, so a notice without a birth date ties them and goes
to the back office as ``ambiguous``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from adapters import profile
from adapters.creditor import Creditor, read_export
from adapters.register import PseudonymKey
from adapters.team import Team
from gateway import inbox, ingest, withdraw
from gateway.clock import FixedClock
from gateway.errors import NotResolvable, NotRoutable, PersonUnknown
from gateway.partnerships import ObjectionIn, add_objection
from gateway.service import Gateway
from gateway.settings import Settings
from gateway.store.schema import deliveries, notices, objections
from keys.errors import ContactBlockInvalid
from keys.home import PartyHome
from keys.jwk import OIN
from signaalpoort import AMSTERDAM_OIN, GEMEENTE, LocalTransport, _party, init_demo
from tests.conftest import BACKENDS, PostgresServer

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
BACKOFFICE = OIN(_party("backoffice").oin)
NOORD = OIN(_party("noord").oin)
ZUID = OIN(_party("zuid").oin)
JANSEN_FATHER = "983690066"  # E04: the default team, noord
SMIT = "415956018"  # deceased
DE_JONG = "191716443"  # moved out
UNKNOWN = "p-" + "A" * 22


@dataclass(frozen=True)
class Demo:
    path: Path
    gw: Gateway


@pytest.fixture(scope="module", params=BACKENDS)
def demo(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Demo]:
    """One demo per backend for the module; each test sends review notices of its own."""
    root = tmp_path_factory.mktemp("resolve")
    database: tuple[PostgresServer, str] | None = None
    with pytest.MonkeyPatch.context() as env:
        if request.param == "postgresql":
            server: PostgresServer = request.getfixturevalue("postgres_server")
            name = server.create(
                "sp_resolve_", template=request.getfixturevalue("postgres_template")
            )
            database = (server, name)
            env.setenv("SIGNAALPOORT_DATABASE_URL", server.url_for(name))
        init_demo(root / "demo", now=NOW)
        gw = Gateway.open(Settings.load(root / "demo" / "gateway"), clock=FixedClock(NOW))
    try:
        yield Demo(root / "demo", gw)
    finally:
        gw.close()
        if database is not None:
            database[0].drop(database[1])


@pytest.fixture
def gw(demo: Demo) -> Iterator[Gateway]:
    settings = demo.gw.settings
    yield demo.gw
    demo.gw.settings = settings


def pseudonym(demo: Demo, bsn: str) -> str:
    """What the municipality's ``register pseudonym --bsn`` gives the back office."""
    return PseudonymKey.load(PartyHome(demo.path / "amsterdam").secrets_dir).person(bsn)


def send_review(demo: Demo) -> tuple[str, int]:
    """Send an ambiguous Jansen notice (a fresh ref each time); its jti and the back
    office's delivery id."""
    gw, ref = demo.gw, f"DRI-REVIEW-{uuid.uuid4().hex[:12]}"
    creditor = Creditor(PartyHome(demo.path / "drinkwater"), now=NOW)
    jansen = read_export(demo.path / "drinkwater" / "notices.csv")[3]
    row = profile.Row(
        jansen.line,
        {**jansen.values, "ref": ref, "voorletters": "J.", "geboortedatum": ""},
        jansen.attestations,
    )
    sealed = creditor.seal_row(row, LocalTransport(gw, creditor.identity.oin), now=NOW)
    receipt = ingest.submit(
        gw, sender=creditor.identity.oin, envelopes=[sealed.envelope], intake="local"
    )
    assert receipt.items[0].outcome == "accepted"
    [item] = [
        i for i in inbox.pull(gw, recipient=BACKOFFICE, limit=500) if i.signal["jti"] == sealed.jti
    ]
    assert item.signal["routing"]["review"] == "ambiguous"
    return sealed.jti, item.id


def notice_row(gw: Gateway, jti: str) -> Any:
    with gw.engine.connect() as conn:
        return conn.execute(select(notices).where(notices.c.jti == jti)).one()


def deliveries_of(gw: Gateway, jti: str) -> list[Any]:
    with gw.engine.connect() as conn:
        return list(
            conn.execute(
                select(deliveries)
                .join(notices, notices.c.id == deliveries.c.notice_id)
                .where(notices.c.jti == jti)
                .order_by(deliveries.c.id)
            )
        )


def events(gw: Gateway, jti: str, action: str) -> list[dict[str, Any]]:
    with gw.engine.connect() as conn:
        return [e for e in gw.audit.query(conn) if e["action"] == action and e["object"] == jti]


def audit_size(gw: Gateway) -> int:
    with gw.engine.connect() as conn:
        return len(gw.audit.query(conn))


def delivery_count(gw: Gateway) -> int:
    with gw.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(deliveries)).scalar_one())


# -- closing ---------------------------------------------------------------------------


def test_closing_a_review_signal_closes_the_notice_and_acknowledges_the_delivery(
    demo: Demo, gw: Gateway
) -> None:
    jti, delivery = send_review(demo)
    done = inbox.resolve(gw, recipient=BACKOFFICE, delivery_id=delivery, close="wrong_signal")
    assert (done.id, done.jti, done.status, done.outcome, done.team) == (
        delivery,
        jti,
        "closed",
        "wrong_signal",
        None,
    )
    stored = notice_row(gw, jti)
    assert (stored.status, stored.outcome, stored.person) == ("closed", "wrong_signal", None)
    [backoffice] = deliveries_of(gw, jti)
    assert backoffice.acked_at == NOW
    [event] = events(gw, jti, "notice.resolved")
    assert {k: event[k] for k in ("organisation", "role", "result", "reason", "trace_id")} == {
        "organisation": BACKOFFICE,
        "role": "backoffice",
        "result": "closed",
        "reason": "wrong_signal",
        "trace_id": stored.trace_id,
    }
    assert jti not in {i.signal["jti"] for i in inbox.pull(gw, recipient=BACKOFFICE, limit=500)}


def test_assigning_a_deceased_or_moved_out_person_closes_with_that_status(
    demo: Demo, gw: Gateway
) -> None:
    for bsn, outcome in [(SMIT, "deceased"), (DE_JONG, "moved_out")]:
        jti, delivery = send_review(demo)
        person = pseudonym(demo, bsn)
        done = inbox.resolve(gw, recipient=BACKOFFICE, delivery_id=delivery, pseudonym=person)
        assert (done.status, done.outcome, done.team, done.delivery) == (
            "closed",
            outcome,
            None,
            None,
        )
        stored = notice_row(gw, jti)
        assert (stored.status, stored.outcome, stored.person) == ("closed", outcome, person)
        assert [(d.recipient_oin, d.acked_at) for d in deliveries_of(gw, jti)] == [
            (BACKOFFICE, NOW)
        ]
        [event] = events(gw, jti, "notice.resolved")
        assert (event["result"], event["reason"], event["subject"]) == ("closed", outcome, person)
        # The one notice.routed is the intake's, to the back office.
        assert [e["organisation"] for e in events(gw, jti, "notice.routed")] == [
            _party("drinkwater").oin
        ]


# -- assigning to a resident -------------------------------------------------------------


def test_assigning_a_resident_routes_the_signal_to_their_team_who_can_open_it(
    demo: Demo, gw: Gateway
) -> None:
    jti, delivery = send_review(demo)
    person = pseudonym(demo, JANSEN_FATHER)
    done = inbox.resolve(gw, recipient=BACKOFFICE, delivery_id=delivery, pseudonym=person)
    assert (done.status, done.outcome, done.team) == ("routed", "matched", NOORD)

    stored = notice_row(gw, jti)
    assert (stored.status, stored.outcome, stored.person) == ("routed", "matched", person)
    backoffice, team = deliveries_of(gw, jti)
    assert (backoffice.recipient_oin, backoffice.acked_at) == (BACKOFFICE, NOW)
    assert (team.id, team.recipient_oin, team.acked_at) == (done.delivery, NOORD, None)

    [item] = [i for i in inbox.pull(gw, recipient=NOORD, limit=500) if i.signal["jti"] == jti]
    assert item.signal["routing"] == {
        "team": NOORD,
        "reason": "default_team",
        "person": person,
        "household": item.signal["routing"]["household"],
        "district": "E04",
    }
    assert item.signal["ref"].startswith("DRI-REVIEW-") and item.signal["category"] == "DRINKWATER"
    noord = Team(PartyHome(demo.path / "noord"), now=NOW)
    [kid] = [r["header"]["kid"] for r in item.signal["contact"]["recipients"]]
    assert kid == PartyHome(demo.path / "noord").keyring().current("enc", now=NOW).kid
    record = noord.open(item.signal)
    assert (record["achternaam"], record["voorletters"], record["straat"]) == (
        "Jansen",
        "J.",
        "Kinkerstraat",
    )
    with pytest.raises(ContactBlockInvalid):
        Team(PartyHome(demo.path / "zuid"), now=NOW).open(item.signal)

    [resolved] = events(gw, jti, "notice.resolved")
    assert (resolved["result"], resolved["subject"], resolved["organisation"]) == (
        "routed",
        person,
        BACKOFFICE,
    )
    routed = [e for e in events(gw, jti, "notice.routed") if e["organisation"] == BACKOFFICE]
    assert [(e["recipient"], e["subject"], e["trace_id"]) for e in routed] == [
        (NOORD, person, stored.trace_id)
    ]
    assert jti not in {i.signal["jti"] for i in inbox.pull(gw, recipient=BACKOFFICE, limit=500)}


def test_a_label_routes_the_resolved_signal_as_it_would_at_intake(demo: Demo, gw: Gateway) -> None:
    # Visser lives in N03 (noord), but carries schuldhulp with team zuid.
    jti, delivery = send_review(demo)
    visser = pseudonym(demo, "135535499")
    done = inbox.resolve(gw, recipient=BACKOFFICE, delivery_id=delivery, pseudonym=visser)
    assert (done.status, done.team) == ("routed", ZUID)
    [item] = [i for i in inbox.pull(gw, recipient=ZUID, limit=500) if i.signal["jti"] == jti]
    assert item.signal["routing"]["reason"] == "label:schuldhulp"
    assert Team(PartyHome(demo.path / "zuid"), now=NOW).open(item.signal)["achternaam"] == "Jansen"


# -- refusals that change nothing -------------------------------------------------------


def _unchanged(gw: Gateway, jti: str, before: tuple[Any, int, int]) -> None:
    stored, count, size = before
    assert notice_row(gw, jti) == stored
    assert delivery_count(gw) == count
    assert audit_size(gw) == size
    assert all(d.acked_at is None for d in deliveries_of(gw, jti))


def _state(gw: Gateway, jti: str) -> tuple[Any, int, int]:
    return notice_row(gw, jti), delivery_count(gw), audit_size(gw)


def test_an_unknown_pseudonym_is_refused_and_changes_nothing(demo: Demo, gw: Gateway) -> None:
    jti, delivery = send_review(demo)
    before = _state(gw, jti)
    with pytest.raises(PersonUnknown) as refused:
        inbox.resolve(gw, recipient=BACKOFFICE, delivery_id=delivery, pseudonym=UNKNOWN)
    assert refused.value.code == "person_unknown"
    _unchanged(gw, jti, before)
    assert notice_row(gw, jti).status == "review"


def test_a_team_outside_the_key_set_is_refused_and_changes_nothing(demo: Demo, gw: Gateway) -> None:
    jti, delivery = send_review(demo)
    routing = gw.settings.routing[GEMEENTE]
    stray = routing.model_copy(update={"districts": {"E": "00000001002564440099"}})
    gw.settings = gw.settings.model_copy(update={"routing": {GEMEENTE: stray}})
    before = _state(gw, jti)
    with pytest.raises(NotRoutable) as refused:
        inbox.resolve(
            gw,
            recipient=BACKOFFICE,
            delivery_id=delivery,
            pseudonym=pseudonym(demo, JANSEN_FATHER),
        )
    assert refused.value.code == "not_routable"
    _unchanged(gw, jti, before)


def test_resolving_twice_is_refused_and_delivers_nothing_more(demo: Demo, gw: Gateway) -> None:
    jti, delivery = send_review(demo)
    person = pseudonym(demo, JANSEN_FATHER)
    inbox.resolve(gw, recipient=BACKOFFICE, delivery_id=delivery, pseudonym=person)
    before = _state(gw, jti)
    for again in ({"pseudonym": person}, {"close": "wrong_signal"}):
        with pytest.raises(NotResolvable) as refused:
            inbox.resolve(gw, recipient=BACKOFFICE, delivery_id=delivery, **again)
        assert refused.value.code == "not_resolvable"
    assert _state(gw, jti) == before
    assert len(deliveries_of(gw, jti)) == 2


def test_only_a_review_signal_held_by_this_back_office_is_resolvable(
    demo: Demo, gw: Gateway
) -> None:
    jti, delivery = send_review(demo)
    before = _state(gw, jti)
    for recipient, delivery_id in (
        (ZUID, delivery),
        (BACKOFFICE, delivery + 1000),
        (BACKOFFICE, 2**62),
    ):
        with pytest.raises(NotResolvable):
            inbox.resolve(gw, recipient=recipient, delivery_id=delivery_id, close="deceased")
    _unchanged(gw, jti, before)

    # Routed at intake: the team holds it, and it was never in review.
    creditor = Creditor(PartyHome(demo.path / "drinkwater"), now=NOW)
    rows = read_export(demo.path / "drinkwater" / "notices.csv")
    sealed = creditor.seal_row(rows[0], LocalTransport(gw, creditor.identity.oin), now=NOW)
    ingest.submit(gw, sender=creditor.identity.oin, envelopes=[sealed.envelope], intake="local")
    [routed] = deliveries_of(gw, sealed.jti)
    with pytest.raises(NotResolvable):
        inbox.resolve(gw, recipient=routed.recipient_oin, delivery_id=routed.id, close="deceased")
    assert notice_row(gw, sealed.jti).status == "routed"

    # Withdrawn by the creditor while in review.
    assert withdraw.withdraw(gw, creditor=creditor.identity.oin, jti=jti, reason="paid")
    with pytest.raises(NotResolvable):
        inbox.resolve(gw, recipient=BACKOFFICE, delivery_id=delivery, close="wrong_signal")
    assert notice_row(gw, jti).status == "withdrawn"


def test_exactly_one_of_pseudonym_and_a_known_close_reason_is_taken(
    demo: Demo, gw: Gateway
) -> None:
    jti, delivery = send_review(demo)
    arguments: list[dict[str, str]] = [
        {},
        {"pseudonym": UNKNOWN, "close": "deceased"},
        {"close": "paid"},
    ]
    for wrong in arguments:
        with pytest.raises(ValueError):
            inbox.resolve(gw, recipient=BACKOFFICE, delivery_id=delivery, **wrong)
    assert notice_row(gw, jti).status == "review"


def test_assigning_a_person_who_objected_closes_the_signal_and_delivers_nothing(
    demo: Demo, gw: Gateway
) -> None:
    jti, delivery = send_review(demo)
    person = pseudonym(demo, JANSEN_FATHER)
    objected = ObjectionIn(
        v=1, gemeente=GEMEENTE, ref="BEZWAAR-RESOLVE", person=person, starts=NOW.date()
    )
    with gw.engine.begin() as conn:
        objection_id = add_objection(conn, objected, by=AMSTERDAM_OIN, now=NOW, audit=gw.audit)
    try:
        done = inbox.resolve(gw, recipient=BACKOFFICE, delivery_id=delivery, pseudonym=person)
    finally:
        with gw.engine.begin() as conn:  # the module's other tests resolve to him too
            conn.execute(delete(objections).where(objections.c.id == objection_id))
    assert (done.status, done.outcome, done.team) == ("closed", "objection", None)
    stored = notice_row(gw, jti)
    assert (stored.status, stored.outcome, stored.person) == ("closed", "objection", person)
    [backoffice] = deliveries_of(gw, jti)
    assert (backoffice.recipient_oin, backoffice.acked_at) == (BACKOFFICE, NOW)
    assert jti not in {i.signal["jti"] for i in inbox.pull(gw, recipient=NOORD, limit=500)}
    [resolved] = events(gw, jti, "notice.resolved")
    assert (resolved["result"], resolved["reason"], resolved["objection"]) == (
        "closed",
        "objection",
        str(objection_id),
    )
