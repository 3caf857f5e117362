"""The partner API over real HTTPS with mutual TLS, on loopback, on both backends.

One server per backend for the whole module (``api``), on a demo made by ``init_demo``;
each party talks to it with its own client certificate. Tests use distinct creditors or
relative counts, so they do not depend on their order.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import orjson
import pytest
import uvicorn
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.creditor import Creditor, Sealed, read_export
from gateway.api import PUBLIC_PATHS, create_app
from gateway.clock import FixedClock
from gateway.partners import Directory
from gateway.service import Gateway, WorkerPool
from gateway.settings import Settings
from gateway.store.auditlog import AuditLog
from gateway.store.engine import make_engine
from gateway.store.schema import deliveries, notices, partners
from gateway.tls import CLIENT_CERT_DER, TLS_EXTENSION, PeerCertificateProtocol, server_config
from keys.home import PartyHome
from keys.jwk import OIN
from keys.limits import MAX_ENVELOPES_PER_REQUEST, MAX_REQUEST_BYTES
from keys.outreach import verify_outreach_keyset
from keys.pki import DevCA, certificate_identity
from keys.receipt import verify_receipt
from signaalpoort import GEMEENTE, _party, init_demo
from tests.conftest import BACKENDS, PostgresServer

NOW = datetime.now(UTC).replace(microsecond=0)
ROUTES = {
    "/v1/notices": {"post"},
    "/v1/receipts/{receipt_id}": {"get"},
    "/v1/notices/{jti}/withdraw": {"post"},
    "/v1/outreach-keys/{gemeente}": {"get"},
    "/.well-known/jwks.json": {"get"},
    "/v1/inbox": {"get"},
    "/v1/inbox/ack": {"post"},
    "/v1/inbox/resolve": {"post"},
    "/v1/partnerships": {"get", "post"},
    "/v1/partnerships/{partnership_id}/end": {"post"},
    "/v1/objections": {"post"},
    "/v1/consents": {"post"},
    "/v1/consents/{ref}/withdraw": {"post"},
    "/healthz": {"get"},
}


class BodyReads:
    """A test-only ASGI wrapper: counts the body messages each request's app received.

    Requests are told apart by their query string (``?probe=<uuid>``).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.reads: Counter[bytes] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.reads[scope.get("query_string", b"")] += 1
            return message

        await self.app(scope, counted, send)


@dataclass
class Api:
    """The running server and the demo behind it."""

    demo: Path
    gw: Gateway
    port: int
    body_reads: BodyReads
    clients: dict[str, httpx.Client] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def tls(self, party: str | None = None, *, cert: Path | None = None) -> ssl.SSLContext:
        """A client context trusting the demo CA, with ``party``'s certificate if named."""
        context = ssl.create_default_context(cafile=self.demo / "gateway" / "tls" / "ca.pem")
        if party is not None:
            tls_dir = self.demo / party / "tls"
            context.load_cert_chain(tls_dir / "cert.pem", tls_dir / "cert-key.pem")
        elif cert is not None:
            context.load_cert_chain(cert / "cert.pem", cert / "cert-key.pem")
        return context

    def client(self, party: str | None = None) -> httpx.Client:
        """A keep-alive client speaking as ``party`` (None: without a certificate)."""
        key = party or "-"
        if key not in self.clients:
            self.clients[key] = httpx.Client(base_url=self.url, verify=self.tls(party), timeout=30)
        return self.clients[key]

    def oin(self, party: str) -> OIN:
        return OIN(_party(party).oin)


def _start(app: ASGIApp, settings: Settings) -> tuple[uvicorn.Server, threading.Thread]:
    config = server_config(app, settings, host="127.0.0.1", port=0)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    return server, thread


@pytest.fixture(scope="module", params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("api")
    database: tuple[PostgresServer, str] | None = None
    with pytest.MonkeyPatch.context() as env:
        if request.param == "postgresql":
            pg: PostgresServer = request.getfixturevalue("postgres_server")
            name = pg.create("sp_api_", template=request.getfixturevalue("postgres_template"))
            database = (pg, name)
            env.setenv("SIGNAALPOORT_DATABASE_URL", pg.url_for(name))
        init_demo(root / "demo", now=NOW)
        gw = Gateway.open(Settings.load(root / "demo" / "gateway"), clock=FixedClock(NOW))
    body_reads = BodyReads(create_app(gw))
    server, thread = _start(body_reads, gw.settings)
    port = server.servers[0].sockets[0].getsockname()[1]
    api = Api(root / "demo", gw, port, body_reads)
    try:
        yield api
    finally:
        for client in api.clients.values():
            client.close()
        server.should_exit = True
        thread.join(timeout=10)
        gw.close()
        if database is not None:
            database[0].drop(database[1])


class RestTransport:
    """The creditor's transport for these tests: the outreach key set over the API."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def outreach_keys(self, gemeente: str) -> str:
        answer = self.client.get(f"/v1/outreach-keys/{gemeente}")
        answer.raise_for_status()
        return str(answer.json()["keyset"])

    def submit(self, envelopes: Sequence[str]) -> str:
        answer = self.client.post("/v1/notices", json={"envelopes": list(envelopes)})
        answer.raise_for_status()
        return str(answer.json()["receipt"])


@dataclass(frozen=True)
class Batch:
    """A creditor's demo export, sealed and submitted once over the API."""

    creditor: Creditor
    sealed: list[Sealed]
    answer: dict[str, Any]


def _seal(api: Api, party: str) -> tuple[Creditor, list[Sealed]]:
    creditor = Creditor(PartyHome(api.demo / party), now=NOW)
    rows = read_export(api.demo / party / "notices.csv")
    return creditor, creditor.seal_rows(rows, RestTransport(api.client(party)), now=NOW)


def _submit(api: Api, party: str) -> Batch:
    creditor, sealed = _seal(api, party)
    answer = api.client(party).post("/v1/notices", json={"envelopes": [s.envelope for s in sealed]})
    assert answer.status_code == 200, answer.text
    return Batch(creditor, sealed, answer.json())


@pytest.fixture(scope="module")
def zorg(api: Api) -> Batch:
    """The zorg creditor's batch: for receipts and the inbox."""
    return _submit(api, "zorg")


@pytest.fixture(scope="module")
def huur(api: Api) -> Batch:
    """The huur creditor's batch: for withdrawals."""
    return _submit(api, "huur")


def _error(answer: httpx.Response) -> str:
    body = answer.json()
    assert set(body) == {"error", "detail"}
    return str(body["error"])


# -- raw HTTP/1.1 over TLS, for what a well-behaved client never sends -----------------


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


def _raw(
    api: Api,
    context: ssl.SSLContext,
    head: str,
    *,
    body: Iterable[bytes] = (),
) -> RawAnswer:
    """Send ``head`` and ``body`` (as far as the server takes it); read one response."""
    with (
        socket.create_connection(("127.0.0.1", api.port), timeout=30) as plain,
        context.wrap_socket(plain, server_hostname="localhost") as tls,
    ):
        tls.sendall(head.encode("ascii"))
        tls.settimeout(5)
        try:
            for part in body:
                tls.sendall(part)
        except OSError:
            pass  # the server answered and closed the connection (or stopped reading)
        tls.settimeout(30)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(65536)
            if not chunk:
                break
            data += chunk
        head_bytes, _, rest = data.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = tls.recv(65536)
            if not chunk:
                break
            rest += chunk
        return RawAnswer(int(lines[0].split()[1]), headers, json.loads(rest[:length]))


def _post_head(path: str, *, length: int | None, probe: str) -> str:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"POST {path}?probe={probe} HTTP/1.1\r\nHost: localhost\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    )


def _issue(directory: Path, ca: DevCA, oin: str) -> Path:
    ca.issue(oin=OIN(oin), name="Not Registered", kind="client", now=NOW).write(directory, "cert")
    return directory


# -- public routes ---------------------------------------------------------------------


def test_health_is_public_and_checks_the_store(api: Api) -> None:
    answer = api.client().get("/healthz")
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})


def test_the_gateway_keys_are_public(api: Api) -> None:
    answer = api.client().get("/.well-known/jwks.json")
    assert answer.status_code == 200
    published = PartyHome(api.demo / "gateway").published_keys(now=NOW)
    assert answer.json() == {"keys": [k.jwk for k in published]}


def test_the_openapi_schema_documents_every_route(api: Api) -> None:
    schema = api.client().get("/openapi.json").json()
    assert {p: set(ops) for p, ops in schema["paths"].items()} == ROUTES
    assert schema["components"]["securitySchemes"] == {"mutualTLS": {"type": "mutualTLS"}}
    notices_op = schema["paths"]["/v1/notices"]["post"]
    assert (
        "envelopes"
        in notices_op["requestBody"]["content"]["application/json"]["schema"]["properties"]
    )
    assert {"200", "401", "403", "413", "400"} <= set(notices_op["responses"])
    responses = [set(op["responses"]) for ops in schema["paths"].values() for op in ops.values()]
    assert not any("422" in r for r in responses)
    assert schema["paths"]["/healthz"]["get"]["security"] == []


# -- authentication ----------------------------------------------------------------------


def test_without_a_client_certificate_the_answer_is_401_before_the_body_is_read(
    api: Api,
) -> None:
    probe = uuid.uuid4().hex
    # The body is never sent: an answer proves the server did not wait for it, and a
    # length over the limit still gets 401, not 413.
    answer = _raw(
        api, api.tls(), _post_head("/v1/notices", length=MAX_REQUEST_BYTES + 1, probe=probe)
    )
    assert (answer.status, answer.body["error"]) == (401, "unauthenticated")
    assert answer.headers.get("connection") == "close"
    assert api.body_reads.reads[f"probe={probe}".encode()] == 0


def test_every_authenticated_route_refuses_a_request_without_a_certificate(api: Api) -> None:
    client = api.client()
    for path, methods in ROUTES.items():
        if path in PUBLIC_PATHS:
            continue
        concrete = path.replace("{receipt_id}", "x").replace("{jti}", "x")
        concrete = concrete.replace("{partnership_id}", "1").replace("{ref}", "x")
        concrete = concrete.replace("{gemeente}", GEMEENTE)
        for method in methods:
            answer = client.request(method.upper(), concrete)
            assert (answer.status_code, _error(answer)) == (401, "unauthenticated"), path


def test_a_header_never_stands_in_for_a_certificate(api: Api) -> None:
    pem = (api.demo / "zorg" / "tls" / "cert.pem").read_text().replace("\n", "")
    headers = {
        "X-SSL-Client-Cert": pem,
        "X-Client-Cert-Der": pem,
        "X-Forwarded-Client-Cert": pem,
        CLIENT_CERT_DER: pem,
    }
    answer = api.client().get(f"/v1/outreach-keys/{GEMEENTE}", headers=headers)
    assert answer.status_code == 401


def test_an_unregistered_certificate_of_the_same_ca_gets_401(api: Api, tmp_path: Path) -> None:
    # Even with the OIN of a registered creditor: the fingerprint is what is registered.
    ca = DevCA.load(api.demo / "ca")
    cert = _issue(tmp_path, ca, _party("zorg").oin)
    with httpx.Client(base_url=api.url, verify=api.tls(cert=cert)) as client:
        answer = client.get(f"/v1/outreach-keys/{GEMEENTE}")
    assert (answer.status_code, _error(answer)) == (401, "unauthenticated")


def test_a_certificate_of_another_ca_fails_the_handshake(api: Api, tmp_path: Path) -> None:
    other = DevCA.create(name="Another CA", now=NOW)
    cert = _issue(tmp_path, other, _party("zorg").oin)
    with (
        httpx.Client(base_url=api.url, verify=api.tls(cert=cert)) as client,
        pytest.raises(httpx.TransportError),
    ):
        client.get(f"/v1/outreach-keys/{GEMEENTE}")


def test_a_revoked_certificate_gets_401_on_the_next_request(api: Api) -> None:
    client = api.client("eindelevering")
    assert client.get(f"/v1/outreach-keys/{GEMEENTE}").status_code == 200
    pem = (api.demo / "eindelevering" / "tls" / "cert.pem").read_bytes()
    with api.gw.engine.begin() as conn:
        assert api.gw.directory.revoke_certificate(
            conn, certificate_identity(pem).fingerprint, now=NOW
        )
    # The same keep-alive connection: the check is per request, not per handshake.
    answer = client.get(f"/v1/outreach-keys/{GEMEENTE}")
    assert (answer.status_code, _error(answer)) == (401, "unauthenticated")


def test_a_partner_whose_registration_ended_gets_401(api: Api) -> None:
    client = api.client("drinkwater")
    assert client.get(f"/v1/outreach-keys/{GEMEENTE}").status_code == 200
    with api.gw.engine.begin() as conn:
        conn.execute(
            update(partners)
            .where(partners.c.oin == _party("drinkwater").oin)
            .values(ended_at=NOW - timedelta(seconds=1))
        )
    assert client.get(f"/v1/outreach-keys/{GEMEENTE}").status_code == 401


def test_identify_refuses_unknown_expired_and_revoked_certificates(api: Api) -> None:
    pem = (api.demo / "zuid" / "tls" / "cert.pem").read_bytes()
    identity = certificate_identity(pem)
    directory = api.gw.directory
    with api.gw.engine.connect() as conn:
        assert directory.identify(conn, identity.fingerprint, now=NOW) == (
            api.oin("zuid"),
            "team",
        )
        assert directory.identify(conn, "0" * 64, now=NOW) is None
        after_expiry = identity.not_after + timedelta(seconds=1)
        assert directory.identify(conn, identity.fingerprint, now=after_expiry) is None
        assert not directory.revoke_certificate(conn, "0" * 64, now=NOW)
        assert directory.revoke_certificate(conn, identity.fingerprint, now=NOW + timedelta(1))
        assert directory.identify(conn, identity.fingerprint, now=NOW) is not None
        assert directory.identify(conn, identity.fingerprint, now=NOW + timedelta(2)) is None
        conn.rollback()


# -- roles -------------------------------------------------------------------------------


def test_a_team_may_not_submit_notices(api: Api) -> None:
    answer = api.client("noord").post("/v1/notices", json={"envelopes": ["x"]})
    assert (answer.status_code, _error(answer)) == (403, "forbidden")


@pytest.mark.parametrize(
    ("party", "method", "path"),
    [
        ("zorg", "GET", "/v1/inbox"),
        ("zorg", "POST", "/v1/inbox/ack"),
        ("noord", "GET", "/v1/receipts/x"),
        ("noord", "POST", "/v1/notices/x/withdraw"),
        ("amsterdam", "GET", "/v1/inbox"),
    ],
)
def test_each_route_is_for_its_roles_only(api: Api, party: str, method: str, path: str) -> None:
    answer = api.client(party).request(method, path)
    assert (answer.status_code, _error(answer)) == (403, "forbidden")


# -- limits and shapes -----------------------------------------------------------------


def test_a_content_length_over_the_limit_gets_413_before_the_body_is_read(api: Api) -> None:
    probe = uuid.uuid4().hex
    head = _post_head("/v1/notices", length=MAX_REQUEST_BYTES + 1, probe=probe)
    answer = _raw(api, api.tls("energie"), head)
    assert (answer.status, answer.body["error"]) == (413, "too_large")
    assert answer.headers.get("connection") == "close"
    assert api.body_reads.reads[f"probe={probe}".encode()] == 0


def test_a_chunked_body_over_the_limit_gets_413_while_streaming(api: Api) -> None:
    probe = uuid.uuid4().hex
    chunk = b"x" * 65536
    endless = itertools.repeat(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    head = _post_head("/v1/notices", length=None, probe=probe)
    # The body never ends: only a limit counted while streaming can answer it.
    answer = _raw(api, api.tls("energie"), head, body=endless)
    assert (answer.status, answer.body["error"]) == (413, "too_large")
    assert answer.headers.get("connection") == "close"
    assert api.body_reads.reads[f"probe={probe}".encode()] > 0


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"envelope": ["x"]}',
        b'{"envelopes": "x"}',
        b'{"envelopes": []}',
        b'{"envelopes": [1]}',
        b'{"envelopes": ["x"], "more": 1}',
        json.dumps({"envelopes": ["x"] * (MAX_ENVELOPES_PER_REQUEST + 1)}).encode(),
        b"[" * 100_000,
    ],
    ids=[
        "not-json",
        "not-utf8",
        "array",
        "misspelt",
        "string",
        "empty",
        "number",
        "extra-member",
        "1001-envelopes",
        "deep",
    ],
)
def test_a_body_outside_the_documented_shape_gets_400(api: Api, body: bytes) -> None:
    answer = api.client("energie").post(
        "/v1/notices", content=body, headers={"content-type": "application/json"}
    )
    assert (answer.status_code, _error(answer)) == (400, "body_invalid")


def test_envelope_failures_are_envelope_invalid_in_the_receipt(api: Api) -> None:
    answer = api.client("energie").post("/v1/notices", json={"envelopes": ["not a jwe"]})
    assert answer.status_code == 200
    assert answer.json()["counts"] == {"accepted": 0, "duplicate": 0, "refused": 1}
    receipt = verify_receipt(
        answer.json()["receipt"], keys=PartyHome(api.demo / "energie").pinned("gateway")
    )
    assert [(i["outcome"], i["reason"]) for i in receipt["items"]] == [
        ("refused", "envelope_invalid")
    ]


# -- notices and receipts ----------------------------------------------------------------


def test_a_valid_batch_gets_a_signed_receipt_that_verifies(api: Api, zorg: Batch) -> None:
    n = len(zorg.sealed)
    assert zorg.answer["counts"] == {"accepted": n, "duplicate": 0, "refused": 0}
    receipt = zorg.creditor.verify_receipt(zorg.answer["receipt"])
    assert receipt["id"] == zorg.answer["id"]
    assert (receipt["aud"], receipt["intake"]) == (api.oin("zorg"), "rest")
    assert [i["jti"] for i in receipt["items"]] == [s.jti for s in zorg.sealed]


def test_sending_the_batch_again_gives_duplicates(api: Api, zorg: Batch) -> None:
    envelopes = [s.envelope for s in zorg.sealed]
    answer = api.client("zorg").post("/v1/notices", json={"envelopes": envelopes})
    assert answer.json()["counts"] == {"accepted": 0, "duplicate": len(envelopes), "refused": 0}


def test_a_notice_signed_by_another_creditor_is_refused(api: Api, zorg: Batch) -> None:
    answer = api.client("huur").post("/v1/notices", json={"envelopes": [zorg.sealed[0].envelope]})
    assert answer.json()["counts"]["refused"] == 1


def test_a_receipt_can_be_fetched_again_by_its_creditor_only(api: Api, zorg: Batch) -> None:
    receipt_id = zorg.answer["id"]
    mine = api.client("zorg").get(f"/v1/receipts/{receipt_id}")
    assert mine.status_code == 200
    assert mine.json() == {"id": receipt_id, "receipt": zorg.answer["receipt"]}
    theirs = api.client("huur").get(f"/v1/receipts/{receipt_id}")
    assert (theirs.status_code, _error(theirs)) == (404, "not_found")
    unknown = api.client("zorg").get(f"/v1/receipts/{uuid.uuid4()}")
    assert unknown.status_code == 404


class FailingAudit(AuditLog):
    """An audit log whose database goes away in the middle of a batch."""

    def append(self, conn: Any, events: Any) -> list[int]:
        raise OperationalError("INSERT INTO audit_events", {}, Exception("connection lost"))


def test_a_store_failure_mid_batch_gives_503_leaves_nothing_and_can_be_retried(
    api: Api,
) -> None:
    creditor, sealed = _seal(api, "energie")
    envelopes = [s.envelope for s in sealed]
    working, api.gw.audit = api.gw.audit, FailingAudit()
    try:
        failed = api.client("energie").post("/v1/notices", json={"envelopes": envelopes})
    finally:
        api.gw.audit = working
    assert (failed.status_code, _error(failed)) == (503, "store_unavailable")
    assert "connection lost" not in failed.text
    with api.gw.engine.connect() as conn:
        stored = conn.execute(
            select(notices.c.jti).where(notices.c.creditor_oin == api.oin("energie"))
        ).all()
    assert stored == []
    retry = api.client("energie").post("/v1/notices", json={"envelopes": envelopes})
    assert retry.json()["counts"]["accepted"] == len(envelopes)


# -- outreach keys -----------------------------------------------------------------------


def test_the_outreach_key_set_verifies_against_the_creditors_pin(api: Api) -> None:
    answer = api.client("zorg").get(f"/v1/outreach-keys/{GEMEENTE}")
    assert answer.status_code == 200 and answer.json()["gemeente"] == GEMEENTE
    pinned = PartyHome(api.demo / "zorg").pinned(f"gemeente-{GEMEENTE}")
    keyset = verify_outreach_keyset(answer.json()["keyset"], pinned=pinned, gemeente=GEMEENTE)
    assert api.oin("noord") in {r.oin for r in keyset.recipients}


def test_any_partner_may_fetch_an_outreach_key_set_but_not_an_unknown_one(api: Api) -> None:
    assert api.client("backoffice").get(f"/v1/outreach-keys/{GEMEENTE}").status_code == 200
    for gemeente in ("0599", "abcd", "03630"):
        answer = api.client("zorg").get(f"/v1/outreach-keys/{gemeente}")
        assert (answer.status_code, _error(answer)) == (404, "not_found")


# -- the inbox ---------------------------------------------------------------------------


def _pull_all(client: httpx.Client, *, page: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after = 0
    while True:
        answer = client.get("/v1/inbox", params={"after": after, "limit": page})
        assert answer.status_code == 200
        body = answer.json()
        if not body["items"]:
            assert body["next"] is None
            return items
        assert body["next"] == body["items"][-1]["id"]
        items += body["items"]
        after = body["next"]


def test_the_inbox_pages_with_the_after_cursor(api: Api, zorg: Batch) -> None:
    client = api.client("noord")
    everything = client.get("/v1/inbox", params={"limit": 500}).json()["items"]
    assert len(everything) >= len(zorg.sealed)
    paged = _pull_all(client, page=2)
    assert [i["id"] for i in paged] == [i["id"] for i in everything]
    ids = [i["id"] for i in everything]
    assert ids == sorted(ids)
    jtis = {i["signal"]["jti"] for i in everything if i["signal"]["type"] == "signal"}
    assert {s.jti for s in zorg.sealed} <= jtis
    assert all(
        len(i["signal"]["contact"]["recipients"]) == 1
        for i in everything
        if "contact" in i["signal"]
    )


def test_a_team_sees_only_its_own_signals(api: Api, zorg: Batch) -> None:
    # Every zorg notice is about a resident of a district of noord or the default team.
    theirs = {s.jti for s in zorg.sealed}
    seen = {i["signal"]["jti"] for i in _pull_all(api.client("zuid"), page=100)}
    assert len(theirs) == 4 and not seen & theirs


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 501}, {"after": -1}, {"after": "x"}])
def test_inbox_parameters_out_of_range_get_400(api: Api, params: dict[str, Any]) -> None:
    answer = api.client("noord").get("/v1/inbox", params=params)
    assert (answer.status_code, _error(answer)) == (400, "body_invalid")


def test_acknowledged_signals_leave_the_inbox(api: Api, zorg: Batch) -> None:
    noord = api.client("noord")
    mine = {s.jti for s in zorg.sealed[-2:]}
    items = [i for i in _pull_all(noord, page=100) if i["signal"]["jti"] in mine]
    ids = [i["id"] for i in items]
    assert len(ids) == 2
    assert api.client("zuid").post("/v1/inbox/ack", json={"ids": ids}).json() == {"acknowledged": 0}
    assert noord.post("/v1/inbox/ack", json={"ids": ids}).json() == {"acknowledged": 2}
    assert noord.post("/v1/inbox/ack", json={"ids": ids}).json() == {"acknowledged": 0}
    assert not {i["id"] for i in _pull_all(noord, page=100)} & set(ids)


@pytest.mark.parametrize(
    "body",
    [
        {"ids": ["1"]},
        {"ids": [True]},
        {"ids": [0]},
        {"ids": [2**31]},
        {"ids": 1},
        {"id": [1]},
        {"ids": list(range(1, 1002))},
    ],
    ids=["string", "bool", "zero", "huge", "not-a-list", "misspelt", "too-many"],
)
def test_an_ack_outside_the_documented_shape_gets_400(api: Api, body: dict[str, Any]) -> None:
    answer = api.client("noord").post("/v1/inbox/ack", json=body)
    assert (answer.status_code, _error(answer)) == (400, "body_invalid")


# -- withdrawals -------------------------------------------------------------------------


def _withdrawals(api: Api, jti: str) -> list[dict[str, Any]]:
    return [
        i["signal"]
        for i in _pull_all(api.client("noord"), page=100)
        if i["signal"]["jti"] == jti and i["signal"]["type"] == "withdrawal"
    ]


def test_a_withdrawal_reaches_the_team_that_has_the_signal(api: Api, huur: Batch) -> None:
    notice = huur.sealed[0]
    answer = api.client("huur").post(f"/v1/notices/{notice.jti}/withdraw", json={"reason": "paid"})
    assert (answer.status_code, answer.json()) == (200, {"jti": notice.jti, "status": "withdrawn"})
    [withdrawal] = _withdrawals(api, notice.jti)
    assert withdrawal == {
        "type": "withdrawal",
        "jti": notice.jti,
        "ref": notice.ref,
        "reason": "paid",
        "withdrawnAt": withdrawal["withdrawnAt"],
    }
    with api.gw.engine.connect() as conn:
        status = conn.execute(select(notices.c.status).where(notices.c.jti == notice.jti))
        assert status.scalar_one() == "withdrawn"
        events = [e for e in api.gw.audit.query(conn) if e["action"] == "notice.withdrawn"]
    assert any(e["object"] == notice.jti and e["reason"] == "paid" for e in events)


def test_withdrawing_twice_gives_the_same_answer_and_tells_the_team_once(
    api: Api, huur: Batch
) -> None:
    notice = huur.sealed[1]
    path = f"/v1/notices/{notice.jti}/withdraw"
    first = api.client("huur").post(path)
    second = api.client("huur").post(path, json={"reason": "error"})
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json() == {"jti": notice.jti, "status": "withdrawn"}
    [withdrawal] = _withdrawals(api, notice.jti)
    assert withdrawal["reason"] == "other"


def test_a_creditor_cannot_withdraw_another_creditors_notice(
    api: Api, huur: Batch, zorg: Batch
) -> None:
    jti = zorg.sealed[0].jti
    answer = api.client("huur").post(f"/v1/notices/{jti}/withdraw")
    assert (answer.status_code, _error(answer)) == (404, "not_found")
    for unknown in (str(uuid.uuid4()), "x" * 37):
        assert api.client("huur").post(f"/v1/notices/{unknown}/withdraw").status_code == 404
    with api.gw.engine.connect() as conn:
        status = conn.execute(select(notices.c.status).where(notices.c.jti == jti)).scalar_one()
        told = conn.execute(
            select(deliveries.c.id)
            .join(notices, notices.c.id == deliveries.c.notice_id)
            .where(notices.c.jti == jti)
        ).all()
    assert status != "withdrawn" and len(told) == 1


@pytest.mark.parametrize(
    "body", [b'{"reason": "bored"}', b'{"reason": 1}', b"[]", b"nope", b'{"why": "paid"}']
)
def test_a_withdrawal_with_an_unknown_reason_gets_400(api: Api, huur: Batch, body: bytes) -> None:
    answer = api.client("huur").post(f"/v1/notices/{huur.sealed[2].jti}/withdraw", content=body)
    assert (answer.status_code, _error(answer)) == (400, "body_invalid")


# -- the edge, without TLS: errors map to codes and leak nothing ---------------------------


def _with_certificate(app: ASGIApp, der: bytes | None) -> ASGIApp:
    """Stands in for ``PeerCertificateProtocol`` when the app is called in-process."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "extensions": {TLS_EXTENSION: {CLIENT_CERT_DER: der}}}
        await app(scope, receive, send)

    return wrapped


class ExplodingKeyring:
    def published(self, *, now: datetime) -> list[Any]:
        raise RuntimeError("secret detail 1234567890")


def _call(app: ASGIApp, path: str, *, der: bytes | None = None) -> httpx.Response:
    """One request to ``app`` in-process, with ``der`` as the TLS client certificate."""

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=_with_certificate(app, der))
        async with httpx.AsyncClient(transport=transport, base_url="https://api") as client:
            return await client.get(path)

    return asyncio.run(run())


def test_an_unreachable_store_gives_503_and_a_crash_gives_500_without_details(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    fake = SimpleNamespace(
        engine=engine, keyring=ExplodingKeyring(), clock=FixedClock(NOW), directory=Directory()
    )
    try:
        app = create_app(cast(Gateway, fake))
        health = _call(app, "/healthz")
        assert (health.status_code, health.json()["error"]) == (503, "store_unavailable")
        crash = _call(app, "/.well-known/jwks.json")
        assert crash.status_code == 500
        assert crash.json() == {"error": "internal", "detail": "internal error"}
        assert _call(app, "/v1/inbox", der=b"not a certificate").status_code == 401
        stored = _call(app, "/v1/inbox", der=_der_of_any_certificate())
        assert (stored.status_code, stored.json()["error"]) == (503, "store_unavailable")
    finally:
        engine.dispose()
    assert "RuntimeError" in caplog.text
    assert "secret detail" not in caplog.text and "nobody" not in caplog.text


def _der_of_any_certificate() -> bytes:
    ca = DevCA.create(name="Unit CA", now=NOW)
    pem = ca.issue(oin=OIN("1" * 20), name="Unit", kind="client", now=NOW).certificate_pem
    return _pem_to_der(pem)


def _pem_to_der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode("ascii"))


def test_unknown_routes_answer_in_the_error_shape(api: Api) -> None:
    answer = api.client("zorg").get("/v1/nothing-here")
    assert (answer.status_code, _error(answer)) == (404, "not_found")


# -- the server configuration ------------------------------------------------------------


def test_server_config_asks_for_optional_client_certificates_over_tls_12_or_later(
    tmp_path: Path,
) -> None:
    init_demo(tmp_path / "demo", now=NOW)
    settings = Settings.load(tmp_path / "demo" / "gateway")
    gw = Gateway.open(settings)
    config = server_config(create_app(gw), settings, host="127.0.0.1", port=0)
    gw.close()
    tls_dir = settings.home / "tls"
    assert config.http is PeerCertificateProtocol
    assert config.ssl_cert_reqs == ssl.CERT_OPTIONAL
    assert config.ssl_ca_certs == str(tls_dir / "ca.pem")
    assert (config.ssl_certfile, config.ssl_keyfile) == (
        str(tls_dir / "cert.pem"),
        str(tls_dir / "cert-key.pem"),
    )
    assert config.proxy_headers is False
    assert config.ssl_context_factory is not None
    context = config.ssl_context_factory(config, lambda: ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.options & ssl.OP_NO_RENEGOTIATION


# -- the intake pool -----------------------------------------------------------------------


class InlinePool:
    """A pool that runs each job at once in this process, and keeps what it was given."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.jobs: list[tuple[Any, ...]] = []

    def submit(self, fn: Any, /, *args: Any) -> Future[Any]:
        self.jobs.append(args)
        future: Future[Any] = Future()
        future.set_result(fn(*args))
        return future


def test_batches_of_notices_go_to_the_pool_as_the_body_received(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    init_demo(tmp_path / "demo", now=datetime.now(UTC))
    gw = Gateway.open(Settings.load(tmp_path / "demo" / "gateway"))
    pool = InlinePool(gw)
    monkeypatch.setattr("gateway.api.worker_gateway", lambda: gw)
    zorg = PartyHome(tmp_path / "demo" / "zorg")
    der = _pem_to_der((zorg.tls_dir / "cert.pem").read_bytes())
    app = _with_certificate(create_app(gw, pool=cast(WorkerPool, pool)), der)
    body = orjson.dumps({"envelopes": ["not-an-envelope"]})

    async def post(content: bytes) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://api") as client:
            return await client.post("/v1/notices", content=content)

    try:
        answer = asyncio.run(post(body))
        assert answer.status_code == 200
        assert answer.json()["counts"] == {"accepted": 0, "duplicate": 0, "refused": 1}
        # The body crosses as a file in memory, closed once the job is done.
        [(sender, handed)] = pool.jobs
        assert (sender, handed.size) == (zorg.identity().oin, len(body))
        with pytest.raises(OSError):
            handed.read()
        # Where files cannot cross, the body itself does.
        monkeypatch.setattr("gateway.api.HANDS_FILES", False)
        assert asyncio.run(post(body)).json()["counts"]["refused"] == 1
        assert pool.jobs[1:] == [(zorg.identity().oin, body)]
        # The body is parsed in the pool too.
        malformed = asyncio.run(post(b"{not json"))
        assert (malformed.status_code, malformed.json()["error"]) == (400, "body_invalid")
        # A failure in the pool comes back as its status and code; the log names its class.
        gw.engine.dispose()
        Path(str(gw.engine.url.database)).unlink()
        failed = asyncio.run(post(body))
    finally:
        gw.close()
    assert (failed.status_code, failed.json()["error"]) == (503, "store_unavailable")
    assert "OperationalError" in caplog.text


# -- partnerships, objections, consents (the admin API) ------------------------------------


def test_a_municipality_manages_its_own_partnerships(api: Api) -> None:
    client = api.client("amsterdam")
    body = {"creditor": api.oin("drinkwater"), "categories": ["HYPOTHEEK"], "starts": "2030-01-01"}
    added = client.post("/v1/partnerships", json=body)
    assert added.status_code == 200
    number = added.json()["id"]
    listed = {p["id"]: p for p in client.get("/v1/partnerships").json()["items"]}
    assert listed[number]["state"] == "not_yet_valid" and listed[number]["gemeente"] == GEMEENTE
    ended = client.post(f"/v1/partnerships/{number}/end", json={"ends": "2030-06-01"})
    assert ended.status_code == 200
    listed = {p["id"]: p for p in client.get("/v1/partnerships").json()["items"]}
    assert listed[number]["ends"] == "2030-06-01"
    assert client.post("/v1/partnerships/999999/end").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"creditor": "1" * 20, "categories": ["HUUR"], "starts": "2030-01-01"}, 404,
         "partner_unknown"),
        ({"creditor": "x", "categories": ["HUUR"], "starts": "2030-01-01"}, 400, "body_invalid"),
        (
            {"creditor": _party("zorg").oin, "categories": ["HUUR"], "starts": "2030-01-01",
             "ends": "2029-01-01"},
            409,
            "policy_conflict",
        ),
    ],
)  # fmt: skip
def test_a_partnership_that_does_not_fit_is_answered_with_its_code(
    api: Api, body: dict[str, Any], status: int, code: str
) -> None:
    answer = api.client("amsterdam").post("/v1/partnerships", json=body)
    assert (answer.status_code, _error(answer)) == (status, code)


@pytest.mark.parametrize("party", ["zorg", "noord", "backoffice"])
def test_only_a_municipality_manages_partnerships_and_objections(api: Api, party: str) -> None:
    client = api.client(party)
    assert client.get("/v1/partnerships").status_code == 403
    assert client.post("/v1/objections", json={}).status_code == 403


def test_an_objection_for_another_gemeente_is_refused(api: Api) -> None:
    body = {"v": 1, "gemeente": "0599", "ref": "B-X", "person": "p-" + "a" * 22,
            "starts": "2026-01-01"}  # fmt: skip
    answer = api.client("amsterdam").post("/v1/objections", json=body)
    assert (answer.status_code, _error(answer)) == (403, "forbidden")
    body["gemeente"] = GEMEENTE
    assert api.client("amsterdam").post("/v1/objections", json=body).status_code == 200
    again = api.client("amsterdam").post("/v1/objections", json=body)
    assert (again.status_code, _error(again)) == (409, "policy_conflict")


def test_a_creditor_registers_and_withdraws_its_own_consents_only(api: Api) -> None:
    tokens = {"kid": "k", "values": {"naam_init_geb": ["Q" * 21 + "A"]}}
    body = {"v": 1, "ref": f"T-{uuid.uuid4().hex[:8]}", "creditor": api.oin("energie"),
            "gemeente": GEMEENTE, "categories": ["ENERGIE"], "tokens": tokens,
            "given": "2026-01-01", "expires": "2027-01-01"}  # fmt: skip
    other = api.client("zorg").post("/v1/consents", json=body)
    assert (other.status_code, _error(other)) == (403, "forbidden")
    assert api.client("energie").post("/v1/consents", json=body).status_code == 200
    withdrawn = api.client("energie").post(f"/v1/consents/{body['ref']}/withdraw")
    assert withdrawn.status_code == 200 and withdrawn.json()["ref"] == body["ref"]
    assert api.client("zorg").post(f"/v1/consents/{body['ref']}/withdraw").status_code == 404
