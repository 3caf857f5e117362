"""The back office resolves review signals over the partner API, and with its command.

Runs against the same kind of server as test_api.py (its ``api`` fixture: real HTTPS
with mutual TLS on loopback, on both backends). The review case is the demo's Jansen
household without a birth date: father and son tie, so the notice goes to review.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import signaalpoort
from adapters import profile
from adapters.creditor import Creditor, read_export
from adapters.register import PseudonymKey
from adapters.team import Team
from gateway.store.schema import deliveries, notices
from keys.home import PartyHome
from tests.gateway import test_api
from tests.gateway.test_api import NOW, Api, RestTransport, _error

api = test_api.api
"""test_api.py's server fixture: one server per backend for this module too."""

JANSEN_FATHER = "983690066"  # E04: the default team, noord
UNKNOWN = "p-" + "A" * 22


def _pseudonym(api: Api, bsn: str) -> str:
    return PseudonymKey.load(PartyHome(api.demo / "amsterdam").secrets_dir).person(bsn)


def _review(api: Api) -> tuple[str, int]:
    """Send an ambiguous Jansen notice over the API; its jti and the back office's
    delivery id."""
    client = api.client("drinkwater")
    creditor = Creditor(PartyHome(api.demo / "drinkwater"), now=NOW)
    jansen = read_export(api.demo / "drinkwater" / "notices.csv")[3]
    ref = f"DRI-API-{uuid.uuid4().hex[:12]}"
    row = profile.Row(
        jansen.line,
        {**jansen.values, "ref": ref, "voorletters": "J.", "geboortedatum": ""},
        jansen.attestations,
    )
    sealed = creditor.seal_row(row, RestTransport(client), now=NOW)
    answer = client.post("/v1/notices", json={"envelopes": [sealed.envelope]})
    assert answer.json()["counts"]["accepted"] == 1
    with api.gw.engine.connect() as conn:
        delivery = conn.execute(
            select(deliveries.c.id)
            .join(notices, notices.c.id == deliveries.c.notice_id)
            .where(notices.c.jti == sealed.jti, notices.c.status == "review")
            .where(deliveries.c.recipient_oin == api.oin("backoffice"))
        ).scalar_one()
    return sealed.jti, delivery


def _status(api: Api, jti: str) -> tuple[str, str | None]:
    with api.gw.engine.connect() as conn:
        row = conn.execute(
            select(notices.c.status, notices.c.outcome).where(notices.c.jti == jti)
        ).one()
    return row.status, row.outcome


def _inbox(api: Api, party: str) -> list[dict[str, Any]]:
    answer = api.client(party).get("/v1/inbox", params={"limit": 500})
    assert answer.status_code == 200
    return list(answer.json()["items"])


# -- the route -----------------------------------------------------------------------


def test_the_openapi_schema_documents_the_resolve_route(api: Api) -> None:
    operation = api.client().get("/openapi.json").json()["paths"]["/v1/inbox/resolve"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"id", "pseudonym", "close"}
    assert schema["additionalProperties"] is False
    assert {"200", "400", "401", "403", "404", "409", "413"} <= set(operation["responses"])


def test_assigning_a_review_signal_routes_it_to_the_residents_team(api: Api) -> None:
    jti, delivery = _review(api)
    person = _pseudonym(api, JANSEN_FATHER)
    answer = api.client("backoffice").post(
        "/v1/inbox/resolve", json={"id": delivery, "pseudonym": person}
    )
    assert (answer.status_code, answer.json()) == (
        200,
        {"id": delivery, "status": "routed", "team": api.oin("noord")},
    )
    assert _status(api, jti) == ("routed", "matched")
    [item] = [i for i in _inbox(api, "noord") if i["signal"]["jti"] == jti]
    record = Team(PartyHome(api.demo / "noord"), now=NOW).open(item["signal"])
    assert (record["achternaam"], record["straat"]) == ("Jansen", "Kinkerstraat")
    assert record["routing"]["person"] == person
    assert not [i for i in _inbox(api, "backoffice") if i["id"] == delivery]

    again = api.client("backoffice").post(
        "/v1/inbox/resolve", json={"id": delivery, "pseudonym": person}
    )
    assert (again.status_code, _error(again)) == (404, "not_found")
    assert len([i for i in _inbox(api, "noord") if i["signal"]["jti"] == jti]) == 1


def test_closing_a_review_signal_answers_closed_without_a_team(api: Api) -> None:
    jti, delivery = _review(api)
    answer = api.client("backoffice").post(
        "/v1/inbox/resolve", json={"id": delivery, "close": "wrong_signal"}
    )
    assert (answer.status_code, answer.json()) == (
        200,
        {"id": delivery, "status": "closed", "team": None},
    )
    assert _status(api, jti) == ("closed", "wrong_signal")


def test_an_unknown_pseudonym_gets_404_person_unknown_and_changes_nothing(api: Api) -> None:
    jti, delivery = _review(api)
    answer = api.client("backoffice").post(
        "/v1/inbox/resolve", json={"id": delivery, "pseudonym": UNKNOWN}
    )
    assert (answer.status_code, _error(answer)) == (404, "person_unknown")
    assert _status(api, jti) == ("review", "review")


def test_a_delivery_that_is_not_a_review_signal_gets_404(api: Api) -> None:
    answer = api.client("backoffice").post(
        "/v1/inbox/resolve", json={"id": 2**31 - 1, "close": "deceased"}
    )
    assert (answer.status_code, _error(answer)) == (404, "not_found")


@pytest.mark.parametrize("party", ["noord", "zorg", "amsterdam"])
def test_only_the_back_office_may_resolve(api: Api, party: str) -> None:
    _, delivery = _review(api)
    answer = api.client(party).post(
        "/v1/inbox/resolve", json={"id": delivery, "close": "wrong_signal"}
    )
    assert (answer.status_code, _error(answer)) == (403, "forbidden")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"id": 1}',
        b'{"id": 1, "close": "deceased", "pseudonym": "p-AAAAAAAAAAAAAAAAAAAAAA"}',
        b'{"id": 1, "close": "paid"}',
        b'{"id": 1, "pseudonym": "983690066"}',
        b'{"id": "1", "close": "deceased"}',
        b'{"id": true, "close": "deceased"}',
        b'{"id": 0, "close": "deceased"}',
        b'{"id": 1, "close": "deceased", "team": "x"}',
        b'{"close": "deceased"}',
    ],
    ids=[
        "not-json",
        "array",
        "neither",
        "both",
        "unknown-reason",
        "bsn-for-pseudonym",
        "string-id",
        "bool-id",
        "zero-id",
        "extra-member",
        "no-id",
    ],
)
def test_a_resolution_outside_the_documented_shape_gets_400(api: Api, body: bytes) -> None:
    answer = api.client("backoffice").post(
        "/v1/inbox/resolve", content=body, headers={"content-type": "application/json"}
    )
    assert (answer.status_code, _error(answer)) == (400, "body_invalid")


# -- the command line ------------------------------------------------------------------


def _cli(*args: str) -> int:
    with pytest.raises(SystemExit) as done:
        signaalpoort.main(list(args))
    return int(done.value.code or 0)


def test_the_back_office_resolves_with_its_command(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jti, delivery = _review(api)
    backoffice = ("--home", str(api.demo / "backoffice"), "--gateway", api.url)

    # The municipality looks the person up; the back office pulls its tray.
    assert (
        _cli("register", "pseudonym", "--bsn", JANSEN_FATHER, "--home", str(api.demo / "amsterdam"))
        == 0
    )
    person = capsys.readouterr().out.strip()
    assert person == _pseudonym(api, JANSEN_FATHER)
    tray = tmp_path / "tray.jsonl"
    assert _cli("inbox", "pull", *backoffice, "--out", str(tray)) == 0
    [record] = [r for r in map(json.loads, tray.read_text().splitlines()) if r["jti"] == jti]
    assert record["id"] == delivery and record["routing"]["review"] == "ambiguous"
    capsys.readouterr()

    assert _cli("inbox", "resolve", *backoffice, str(delivery), "--pseudonym", person) == 0
    assert capsys.readouterr().out.strip() == (
        f"signal {delivery} routed to team {api.oin('noord')}"
    )
    assert _status(api, jti) == ("routed", "matched")

    assert _cli("inbox", "resolve", *backoffice, str(delivery), "--close", "deceased") == 1
    assert "refused: not_found" in capsys.readouterr().err
    assert _status(api, jti) == ("routed", "matched")


def test_the_command_closes_a_signal_and_refuses_an_unknown_person(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    jti, delivery = _review(api)
    backoffice = ("--home", str(api.demo / "backoffice"), "--gateway", api.url)
    assert _cli("inbox", "resolve", *backoffice, str(delivery), "--pseudonym", UNKNOWN) == 1
    assert "refused: person_unknown" in capsys.readouterr().err
    assert _cli("inbox", "resolve", *backoffice, str(delivery), "--close", "wrong_signal") == 0
    assert capsys.readouterr().out.strip() == f"signal {delivery} closed"
    assert _status(api, jti) == ("closed", "wrong_signal")


@pytest.mark.parametrize(
    "options",
    [(), ("--pseudonym", UNKNOWN, "--close", "deceased"), ("--close", "paid")],
    ids=["neither", "both", "unknown-reason"],
)
def test_the_command_wants_exactly_one_of_pseudonym_and_close(
    api: Api, options: tuple[str, ...]
) -> None:
    jti, delivery = _review(api)
    backoffice = ("--home", str(api.demo / "backoffice"), "--gateway", api.url)
    assert _cli("inbox", "resolve", *backoffice, str(delivery), *options) == 2
    assert _status(api, jti) == ("review", "review")
