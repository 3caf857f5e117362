"""The partner API: REST intake, receipts, withdrawals, outreach keys, the team inbox and
the back office's resolution of review signals.

Served over HTTPS with mutual TLS (``gateway.tls``). A request passes, outermost first:

    guard          every error becomes ``{"error": code, "detail": safe text}``
    authenticate   the client certificate from the TLS layer → a registered partner,
                   checked against the store on every request; 401 otherwise, before
                   anything reads the body
    route          role check (403), size limits (413) while reading the body itself,
                   shape checks (400), then the gateway's service functions in a
                   worker thread (they are synchronous); a batch of notices goes to
                   a process of the intake pool instead, when there is one

No header is ever trusted for identity. The public paths are the health check, the
gateway's JWK Set and the API's own documentation.

Status codes and error codes (the contract partners code against):

    401 unauthenticated   no, unknown, revoked or expired client certificate
    403 forbidden         the partner's role may not use the route
    404 not_found         no such resource for this partner
    404 person_unknown    resolve: no such pseudonym in the municipality's register
    409 not_routable      resolve: the person's team has no key in the outreach key set
    409 policy_conflict   a partnership, consent or objection that cannot be registered
    413 too_large         the body exceeds the limit (from Content-Length, then counted)
    400 body_invalid      not JSON, not the documented shape, too many items
    503 store_unavailable the database cannot be reached
    500 internal          anything else; logged by class name only
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from datetime import date
from typing import Annotated, Any, Literal, TypeVar, cast

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import inbox, ingest, withdraw
from gateway.errors import (
    NotResolvable,
    NotRoutable,
    PartnerUnknown,
    PersonUnknown,
    PolicyConflict,
    StoreError,
)
from gateway.partners import Partner
from gateway.partnerships import (
    ConsentIn,
    ObjectionIn,
    add_objection,
    add_partnership,
    end_partnership,
    list_partnerships,
    register_consent,
    withdraw_consent,
)
from gateway.schema import Category
from gateway.service import (
    HANDS_FILES,
    BodyFile,
    Gateway,
    HandedBody,
    WorkerPool,
    uncollected,
    worker_gateway,
)
from gateway.store.engine import reading
from gateway.store.schema import receipts
from gateway.tls import client_certificate
from keys.errors import CertificateInvalid
from keys.jwk import OIN, jwks
from keys.limits import MAX_ENVELOPES_PER_REQUEST, MAX_REQUEST_BYTES
from keys.pki import certificate_identity

logger = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/healthz", "/.well-known/jwks.json", "/openapi.json", "/docs"})
"""Paths served without a client certificate."""

MAX_ACK_IDS = 1_000
"""Deliveries acknowledged in one request."""

MAX_SMALL_BODY_BYTES = 64 * 1024
"""The body of a request other than a notice batch (an acknowledgement, a withdrawal)."""

MAX_ID = inbox.MAX_DELIVERY_ID
"""The largest delivery id a request may name (what ``deliveries.id`` holds)."""

CREDITOR_ROLES = ("creditor",)
INBOX_ROLES = ("team", "backoffice")
BACKOFFICE_ROLES = ("backoffice",)

_JTI = re.compile(r"^[A-Za-z0-9._:-]{1,36}$")
_GEMEENTE = re.compile(r"^[0-9]{4}$")


# -- errors at this edge -------------------------------------------------------------


class _Refusal(Exception):
    """An answer other than success, decided by this edge; ``detail`` is safe to show."""

    def __init__(self, status: int, code: str, detail: str, *, failed: str | None = None) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.detail = detail
        self.failed = failed
        """The class of the exception behind it, when that was raised in another process."""


def _unauthenticated() -> _Refusal:
    return _Refusal(401, "unauthenticated", "a registered, valid client certificate is required")


def _not_found(what: str) -> _Refusal:
    return _Refusal(404, "not_found", f"no such {what}")


def _body_invalid(detail: str) -> _Refusal:
    return _Refusal(400, "body_invalid", detail)


def _too_large() -> _Refusal:
    return _Refusal(413, "too_large", "the request body exceeds the limit")


def _classify(exc: BaseException) -> tuple[int, str, str]:
    """The status, error code and safe detail for an exception that reached the edge."""
    if isinstance(exc, _Refusal):
        return exc.status, exc.code, exc.detail
    if isinstance(exc, ClientDisconnect):
        return 400, "body_invalid", "the body ended early"
    if isinstance(exc, StoreError | DBAPIError | PoolTimeout):
        return 503, "store_unavailable", "the store is unavailable; try again later"
    return 500, "internal", "internal error"


def _error_response(status: int, code: str, detail: str, *, close: bool = False) -> JSONResponse:
    headers = {"connection": "close"} if close else None
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


class _Guard:
    """The outermost layer: maps every exception to a JSON error, logs no message.

    When the request announced a body that was not read to its end, the error response
    closes the connection, so a refused client cannot make the server drain its body.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = {"started": False, "body_done": not _announces_body(scope)}

        async def tracked_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                state["body_done"] = True
            return message

        async def tracked_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, tracked_receive, tracked_send)
        except Exception as exc:  # noqa: BLE001 (the HTTP edge: every failure is answered)
            status, code, detail = _classify(exc)
            if status >= 500:
                failed = exc.failed if isinstance(exc, _Refusal) else None
                logger.error("request failed: %s (%s)", failed or type(exc).__name__, code)
            if state["started"]:
                return  # uvicorn closes a connection whose response did not complete
            response = _error_response(status, code, detail, close=not state["body_done"])
            await response(scope, receive, send)


def _announces_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


# -- authentication ------------------------------------------------------------------


class _Authenticate:
    """Turns the TLS client certificate into a registered partner, or refuses with 401.

    Runs before any route and never touches ``receive``, so an unauthenticated request
    is answered without its body being read. The certificate is checked against the
    store's partner and revocation records on every request.
    """

    def __init__(self, app: ASGIApp, *, gw: Gateway) -> None:
        self.app = app
        self.gw = gw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        der = client_certificate(scope)
        partner = None if der is None else await run_in_threadpool(self._identify, der)
        if partner is None:
            raise _unauthenticated()
        scope.setdefault("state", {})["partner"] = partner
        await self.app(scope, receive, send)

    def _identify(self, der: bytes) -> Partner | None:
        try:
            identity = certificate_identity(der)
        except CertificateInvalid:
            return None
        with reading(self.gw.engine) as conn:
            partner = self.gw.directory.identify(
                conn, identity.fingerprint, now=self.gw.clock.now()
            )
        # The registered partner must be the one the certificate names.
        if partner is None or partner.oin != identity.oin:
            return None
        return partner


def _role(*roles: str) -> Callable[[Request], Awaitable[Partner]]:
    async def check(request: Request) -> Partner:
        partner = request.scope.get("state", {}).get("partner")
        if not isinstance(partner, Partner):
            raise _unauthenticated()
        if partner.role not in roles:
            raise _Refusal(403, "forbidden", "this route is not for the partner's role")
        return partner

    return check


AnyPartner = Annotated[Partner, Depends(_role("creditor", "team", "backoffice", "municipality"))]
Creditor = Annotated[Partner, Depends(_role(*CREDITOR_ROLES))]
InboxHolder = Annotated[Partner, Depends(_role(*INBOX_ROLES))]
BackOffice = Annotated[Partner, Depends(_role(*BACKOFFICE_ROLES))]
MunicipalityRole = Annotated[Partner, Depends(_role("municipality"))]


# -- bodies --------------------------------------------------------------------------


async def _read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 once over ``limit`` (``_stream_body``)."""
    body = bytearray()
    await _stream_body(request, limit, body.extend)
    return bytes(body)


async def _stream_body(request: Request, limit: int, write: Callable[[bytes], object]) -> None:
    """Pass the body to ``write`` as it arrives, refused with 413 once over ``limit``: by
    Content-Length first, then counted while streaming (a chunked body announces no
    length)."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.strip().isdigit():
            raise _body_invalid("Content-Length is not a number")
        if int(length) > limit:
            raise _too_large()
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large()
        write(chunk)


def _json(body: bytes) -> Any:
    try:
        # A batch body of 4.6 MB: 2.6-3.3 ms in an intake process, 3.3-3.5 ms with json.
        return orjson.loads(body)
    except (ValueError, RecursionError) as exc:
        raise _body_invalid("the body is not JSON") from exc


def _envelopes(body: bytes) -> list[str]:
    doc = _json(body)
    if not isinstance(doc, dict) or set(doc) != {"envelopes"}:
        raise _body_invalid('the body is {"envelopes": [...]}')
    envelopes = doc["envelopes"]
    if not isinstance(envelopes, list) or not envelopes:
        raise _body_invalid("envelopes is a non-empty array")
    if len(envelopes) > MAX_ENVELOPES_PER_REQUEST:
        raise _body_invalid(f"at most {MAX_ENVELOPES_PER_REQUEST} envelopes per request")
    if not all(isinstance(e, str) for e in envelopes):
        raise _body_invalid("every envelope is a string")
    return envelopes


def _ack_ids(body: bytes) -> list[int]:
    doc = _json(body)
    if not isinstance(doc, dict) or set(doc) != {"ids"} or not isinstance(doc["ids"], list):
        raise _body_invalid('the body is {"ids": [...]}')
    ids = doc["ids"]
    if len(ids) > MAX_ACK_IDS:
        raise _body_invalid(f"at most {MAX_ACK_IDS} ids per request")
    if not all(type(i) is int and 0 < i <= MAX_ID for i in ids):
        raise _body_invalid("every id is a positive integer")
    return ids


def _withdraw_reason(body: bytes) -> withdraw.Reason:
    if not body.strip():
        return "other"
    doc = _json(body)
    if not isinstance(doc, dict) or not set(doc) <= {"reason"}:
        raise _body_invalid('the body is {"reason": ...} or empty')
    reason = doc.get("reason", "other")
    if not isinstance(reason, str) or reason not in withdraw.REASONS:
        raise _body_invalid("reason is one of " + ", ".join(withdraw.REASONS))
    return cast(withdraw.Reason, reason)


def _resolution(body: bytes) -> ResolveIn:
    doc = _json(body)
    try:
        return ResolveIn.model_validate(doc)
    except ValidationError as exc:
        raise _body_invalid(
            'the body is {"id": <delivery id>, "pseudonym": "p-..."} or '
            '{"id": <delivery id>, "close": "' + '" | "'.join(inbox.CLOSE_REASONS) + '"}'
        ) from exc


# -- models (the OpenAPI schema) -----------------------------------------------------


class ErrorOut(BaseModel):
    """Every error answer."""

    error: str = Field(description="a stable code: unauthenticated, forbidden, not_found, ...")
    detail: str = Field(description="a safe, human-readable explanation")


class NoticesIn(BaseModel):
    """A batch of notices, each a compact JWE envelope (docs/envelope.md)."""

    envelopes: list[str] = Field(min_length=1, max_length=MAX_ENVELOPES_PER_REQUEST)


class Counts(BaseModel):
    """How many envelopes had each outcome."""

    accepted: int
    duplicate: int
    refused: int


class ReceiptOut(BaseModel):
    """The gateway's signed receipt for a batch."""

    id: str
    receipt: str = Field(description="compact JWS signed by the gateway (docs/envelope.md)")
    counts: Counts


class StoredReceiptOut(BaseModel):
    """A receipt fetched again."""

    id: str
    receipt: str


class WithdrawIn(BaseModel):
    """Why the creditor withdraws the signal (the body is optional)."""

    reason: withdraw.Reason = "other"


class WithdrawOut(BaseModel):
    """The notice, now withdrawn."""

    jti: str
    status: Literal["withdrawn"]


class OutreachKeysOut(BaseModel):
    """The municipality-signed outreach key set; verify it against the pinned key."""

    gemeente: str
    keyset: str = Field(description="compact JWS signed by the municipality")


class JWKSOut(BaseModel):
    """The gateway's published public keys."""

    keys: list[dict[str, Any]]


class InboxItemOut(BaseModel):
    """One delivery: a signal or a withdrawal (``signal.type``)."""

    id: int
    signal: dict[str, Any]


class InboxOut(BaseModel):
    """A page of the inbox; pass ``next`` as ``after`` for the next page."""

    items: list[InboxItemOut]
    next: int | None


class AckIn(BaseModel):
    """Deliveries received by the team."""

    ids: list[int] = Field(max_length=MAX_ACK_IDS)


class AckOut(BaseModel):
    """How many deliveries were newly acknowledged."""

    acknowledged: int


class ResolveIn(BaseModel):
    """Resolve a review signal: assign it to a person, or close it (exactly one)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    id: int = Field(gt=0, le=MAX_ID, description="the back office's delivery of the signal")
    pseudonym: str | None = Field(
        default=None,
        pattern=r"^p-[A-Za-z0-9_-]{22}$",
        description="the person, as the municipality's `register pseudonym` gives it",
    )
    close: inbox.CloseReason | None = Field(
        default=None, description="close the signal with this outcome"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ResolveIn:
        if (self.pseudonym is None) == (self.close is None):
            raise ValueError("give exactly one of pseudonym and close")
        return self


class ResolveOut(BaseModel):
    """What became of the signal: routed to a team, or closed."""

    id: int
    status: Literal["routed", "closed"]
    team: str | None = Field(description="the team the signal now goes to, if routed")


class HealthOut(BaseModel):
    """The service and its store are up."""

    status: Literal["ok"]


class PartnershipIn(BaseModel):
    """A partnership the municipality registers: a creditor, its categories, its dates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    creditor: str = Field(pattern=r"^[0-9]{20}$")
    categories: list[Category] = Field(min_length=1, max_length=len(Category))
    starts: date
    ends: date | None = Field(default=None, description="the first day it no longer holds")


class PartnershipEndIn(BaseModel):
    """When the partnership ends (the first day it no longer holds; default today)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ends: date | None = None


class PartnershipOut(BaseModel):
    """A partnership and its state today."""

    id: int
    gemeente: str
    creditor: str
    categories: list[str]
    starts: date
    ends: date | None
    state: Literal["not_yet_valid", "valid", "ended"]


class PartnershipsOut(BaseModel):
    """The municipality's partnerships, oldest first."""

    items: list[PartnershipOut]


class RegisteredOut(BaseModel):
    """The id of what was registered."""

    id: int


class ConsentWithdrawnOut(BaseModel):
    """The consent, withdrawn, and how many queued signals it stopped."""

    ref: str
    stopped: int


_Model = TypeVar("_Model", bound=BaseModel)


def _request_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    # The routes read their bodies themselves (limits first), so FastAPI would not know
    # them; this documents them in the schema.
    schema = model.model_json_schema()
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": required, "content": content}}


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorOut} for status in (*statuses, 503, 500)}


# -- routes --------------------------------------------------------------------------


def _receipt_out(receipt: ingest.Receipt) -> ReceiptOut:
    counts = Counts(
        accepted=receipt.count("accepted"),
        duplicate=receipt.count("duplicate"),
        refused=receipt.count("refused"),
    )
    return ReceiptOut(id=receipt.id, receipt=receipt.jws, counts=counts)


def submit_in_worker(
    sender: OIN, body: bytes | HandedBody
) -> ReceiptOut | tuple[int, str, str, str]:
    """The body of ``POST /v1/notices``, parsed and submitted in a process of the intake
    pool: the receipt, or how the request failed (status, code, safe detail and the
    exception's class), since an exception of the store's driver need not cross back
    between processes."""
    try:
        with uncollected():
            envelopes = _envelopes(body if isinstance(body, bytes) else body.read())
            receipt = ingest.submit(
                worker_gateway(), sender=sender, envelopes=envelopes, intake="rest"
            )
    except Exception as exc:  # noqa: BLE001 (answered by the process that holds the request)
        return (*_classify(exc), type(exc).__name__)
    return _receipt_out(receipt)


async def _to_pool(
    pool: WorkerPool, sender: OIN, request: Request
) -> Future[ReceiptOut | tuple[int, str, str, str]]:
    """Read a batch's body and hand it to the intake pool; the job's future."""
    if not HANDS_FILES:
        return pool.submit(submit_in_worker, sender, await _read_body(request, MAX_REQUEST_BYTES))
    body = BodyFile()
    try:
        await _stream_body(request, MAX_REQUEST_BYTES, body.write)
        job = pool.submit(submit_in_worker, sender, body.handed())
    except BaseException:
        body.close()
        raise
    job.add_done_callback(lambda _: body.close())
    return job


def _routes(gw: Gateway, pool: WorkerPool | None) -> APIRouter:
    router = APIRouter()
    # Without a pool, one delivery at a time: a second one's checks would share the
    # interpreter with the first one's store transaction, which holds SQLite's write
    # lock meanwhile.
    intake = threading.Lock()

    def _submit(sender: OIN, envelopes: list[str]) -> ingest.Receipt:
        with intake:
            return ingest.submit(gw, sender=sender, envelopes=envelopes, intake="rest")

    authenticated = (401, 403)

    @router.post(
        "/v1/notices",
        response_model=ReceiptOut,
        summary="Submit a batch of notices; returns the signed receipt",
        responses=_errors(*authenticated, 400, 413),
        openapi_extra=_request_body(NoticesIn),
        tags=["creditor"],
    )
    async def submit_notices(request: Request, partner: Creditor) -> ReceiptOut:
        if pool is None:
            body = await _read_body(request, MAX_REQUEST_BYTES)
            return _receipt_out(await run_in_threadpool(_submit, partner.oin, _envelopes(body)))
        # Parsed in the pool too: the body crosses as one block of bytes, not as a
        # thousand strings; where it can, as a file the worker reads.
        done = await asyncio.wrap_future(await _to_pool(pool, partner.oin, request))
        if isinstance(done, tuple):
            status, code, detail, failed = done
            raise _Refusal(status, code, detail, failed=failed)
        return done

    @router.get(
        "/v1/receipts/{receipt_id}",
        response_model=StoredReceiptOut,
        summary="Fetch a receipt again (only the creditor it was issued to)",
        responses=_errors(*authenticated, 404),
        tags=["creditor"],
    )
    def get_receipt(receipt_id: str, partner: Creditor) -> StoredReceiptOut:
        if len(receipt_id) > 36:
            raise _not_found("receipt")
        with reading(gw.engine) as conn:
            jws = conn.execute(
                select(receipts.c.jws).where(
                    receipts.c.id == receipt_id, receipts.c.creditor_oin == partner.oin
                )
            ).scalar()
        if jws is None:
            raise _not_found("receipt")
        return StoredReceiptOut(id=receipt_id, receipt=jws)

    @router.post(
        "/v1/notices/{jti}/withdraw",
        response_model=WithdrawOut,
        summary="Withdraw a signal (e.g. the debt is paid); the team is told",
        responses=_errors(*authenticated, 400, 404, 413),
        openapi_extra=_request_body(WithdrawIn, required=False),
        tags=["creditor"],
    )
    async def withdraw_notice(jti: str, request: Request, partner: Creditor) -> WithdrawOut:
        if _JTI.match(jti) is None:
            raise _not_found("notice")
        reason = _withdraw_reason(await _read_body(request, MAX_SMALL_BODY_BYTES))
        done = await run_in_threadpool(
            withdraw.withdraw, gw, creditor=partner.oin, jti=jti, reason=reason
        )
        if done is None:
            raise _not_found("notice")
        return WithdrawOut(jti=done.jti, status="withdrawn")

    @router.get(
        "/v1/outreach-keys/{gemeente}",
        response_model=OutreachKeysOut,
        summary="The municipality-signed outreach key set",
        responses=_errors(401, 404),
        tags=["creditor"],
    )
    def outreach_keys(gemeente: str, partner: AnyPartner) -> OutreachKeysOut:
        if _GEMEENTE.match(gemeente) is None:
            raise _not_found("key set")
        with reading(gw.engine) as conn:
            keyset = gw.directory.outreach_keyset(conn, gemeente)
        if keyset is None:
            raise _not_found("key set")
        return OutreachKeysOut(gemeente=gemeente, keyset=keyset.signed)

    @router.get(
        "/v1/inbox",
        response_model=InboxOut,
        summary="Signals and withdrawals for this team, oldest first",
        responses=_errors(*authenticated, 400),
        tags=["team"],
    )
    def pull_inbox(
        partner: InboxHolder,
        after: Annotated[int, Query(ge=0, le=MAX_ID, description="the last id seen")] = 0,
        limit: Annotated[int, Query(ge=1, le=inbox.MAX_PAGE)] = 100,
    ) -> InboxOut:
        items = inbox.pull(gw, recipient=partner.oin, after=after, limit=limit)
        return InboxOut(
            items=[InboxItemOut(id=i.id, signal=i.signal) for i in items],
            next=items[-1].id if items else None,
        )

    @router.post(
        "/v1/inbox/ack",
        response_model=AckOut,
        summary="Acknowledge received deliveries",
        responses=_errors(*authenticated, 400, 413),
        openapi_extra=_request_body(AckIn),
        tags=["team"],
    )
    async def ack_inbox(request: Request, partner: InboxHolder) -> AckOut:
        ids = _ack_ids(await _read_body(request, MAX_SMALL_BODY_BYTES))
        count = await run_in_threadpool(inbox.ack, gw, recipient=partner.oin, ids=ids)
        return AckOut(acknowledged=count)

    @router.post(
        "/v1/inbox/resolve",
        response_model=ResolveOut,
        summary="Resolve a review signal: route it to a person's team, or close it",
        responses=_errors(*authenticated, 400, 404, 409, 413),
        openapi_extra=_request_body(ResolveIn),
        tags=["backoffice"],
    )
    async def resolve_signal(request: Request, partner: BackOffice) -> ResolveOut:
        wanted = _resolution(await _read_body(request, MAX_SMALL_BODY_BYTES))
        try:
            done = await run_in_threadpool(
                inbox.resolve,
                gw,
                recipient=partner.oin,
                delivery_id=wanted.id,
                pseudonym=wanted.pseudonym,
                close=wanted.close,
            )
        except NotResolvable as exc:
            raise _not_found("review signal") from exc
        except PersonUnknown as exc:
            raise _Refusal(404, exc.code, "no such person in the register") from exc
        except NotRoutable as exc:
            raise _Refusal(409, exc.code, "the person's team cannot receive signals") from exc
        return ResolveOut(id=done.id, status=done.status, team=done.team)

    def own_gemeente(partner: Partner) -> str:
        with reading(gw.engine) as conn:
            gemeente = gw.directory.partner(conn, partner.oin).get("gemeente")
        if not isinstance(gemeente, str):
            raise _Refusal(403, "forbidden", "the municipality has no gemeente registered")
        return gemeente

    def parsed(model: type[_Model], body: bytes) -> _Model:
        try:
            return model.model_validate_json(body or b"{}")
        except ValidationError as exc:
            raise _body_invalid(f"the body is not a {model.__name__}") from exc

    def shown(row: Any, today: date) -> PartnershipOut:
        p = row.partnership
        return PartnershipOut(
            id=p.id,
            gemeente=p.gemeente,
            creditor=p.creditor,
            categories=sorted(p.categories),
            starts=p.period.starts,
            ends=p.period.ends,
            state=p.period.state(today),
        )

    @router.post(
        "/v1/partnerships",
        response_model=RegisteredOut,
        summary="Register a partnership of this municipality with a creditor",
        responses=_errors(*authenticated, 400, 404, 409, 413),
        openapi_extra=_request_body(PartnershipIn),
        tags=["municipality"],
    )
    async def partnership_add(request: Request, partner: MunicipalityRole) -> RegisteredOut:
        wanted = parsed(PartnershipIn, await _read_body(request, MAX_SMALL_BODY_BYTES))
        gemeente = await run_in_threadpool(own_gemeente, partner)

        def add() -> int:
            with gw.engine.begin() as conn:
                return add_partnership(
                    conn,
                    gemeente=gemeente,
                    creditor=wanted.creditor,
                    categories=wanted.categories,
                    starts=wanted.starts,
                    ends=wanted.ends,
                    by=partner.oin,
                    now=gw.clock.now(),
                    audit=gw.audit,
                )

        try:
            return RegisteredOut(id=await run_in_threadpool(add))
        except PartnerUnknown as exc:
            raise _Refusal(404, exc.code, "no such creditor") from exc
        except PolicyConflict as exc:
            raise _Refusal(409, exc.code, str(exc)) from exc

    @router.get(
        "/v1/partnerships",
        response_model=PartnershipsOut,
        summary="This municipality's partnerships, with their state today",
        responses=_errors(*authenticated),
        tags=["municipality"],
    )
    def partnership_list(partner: MunicipalityRole) -> PartnershipsOut:
        gemeente = own_gemeente(partner)
        today = gw.clock.now().date()
        with reading(gw.engine) as conn:
            rows = list_partnerships(conn, gemeente=gemeente)
        return PartnershipsOut(items=[shown(r, today) for r in rows])

    @router.post(
        "/v1/partnerships/{partnership_id}/end",
        response_model=RegisteredOut,
        summary="End one of this municipality's partnerships (today by default)",
        responses=_errors(*authenticated, 400, 404, 413),
        openapi_extra=_request_body(PartnershipEndIn, required=False),
        tags=["municipality"],
    )
    async def partnership_end(
        partnership_id: int, request: Request, partner: MunicipalityRole
    ) -> RegisteredOut:
        wanted = parsed(PartnershipEndIn, await _read_body(request, MAX_SMALL_BODY_BYTES))
        gemeente = await run_in_threadpool(own_gemeente, partner)

        def end() -> bool:
            now = gw.clock.now()
            with gw.engine.begin() as conn:
                return end_partnership(
                    conn,
                    partnership_id,
                    gemeente=gemeente,
                    ends=wanted.ends or now.date(),
                    by=partner.oin,
                    now=now,
                    audit=gw.audit,
                )

        if not 0 < partnership_id <= MAX_ID or not await run_in_threadpool(end):
            raise _not_found("partnership")
        return RegisteredOut(id=partnership_id)

    @router.post(
        "/v1/objections",
        response_model=RegisteredOut,
        summary="Register a resident's objection (pseudonym and match tokens only)",
        responses=_errors(*authenticated, 400, 409, 413),
        openapi_extra=_request_body(ObjectionIn),
        tags=["municipality"],
    )
    async def objection_add(request: Request, partner: MunicipalityRole) -> RegisteredOut:
        wanted = parsed(ObjectionIn, await _read_body(request, MAX_SMALL_BODY_BYTES))
        if wanted.gemeente != await run_in_threadpool(own_gemeente, partner):
            raise _Refusal(403, "forbidden", "only for the municipality's own gemeente")

        def add() -> int:
            with gw.engine.begin() as conn:
                return add_objection(
                    conn, wanted, by=partner.oin, now=gw.clock.now(), audit=gw.audit
                )

        try:
            return RegisteredOut(id=await run_in_threadpool(add))
        except PolicyConflict as exc:
            raise _Refusal(409, exc.code, str(exc)) from exc

    @router.post(
        "/v1/consents",
        response_model=RegisteredOut,
        summary="Register a resident's consent to this creditor's signals (by tokens)",
        responses=_errors(*authenticated, 400, 409, 413),
        openapi_extra=_request_body(ConsentIn),
        tags=["creditor"],
    )
    async def consent_add(request: Request, partner: Creditor) -> RegisteredOut:
        wanted = parsed(ConsentIn, await _read_body(request, MAX_SMALL_BODY_BYTES))
        if wanted.creditor != partner.oin:
            raise _Refusal(403, "forbidden", "a creditor registers its own consents only")
        try:
            new_id = await run_in_threadpool(register_consent, gw, wanted, by=partner.oin)
        except PolicyConflict as exc:
            raise _Refusal(409, exc.code, str(exc)) from exc
        return RegisteredOut(id=new_id)

    @router.post(
        "/v1/consents/{ref}/withdraw",
        response_model=ConsentWithdrawnOut,
        summary="Withdraw a consent: new notices refused, queued signals stopped",
        responses=_errors(*authenticated, 404),
        tags=["creditor"],
    )
    def consent_withdraw(ref: str, partner: Creditor) -> ConsentWithdrawnOut:
        if _JTI.match(ref) is None:
            raise _not_found("consent")
        with gw.engine.begin() as conn:
            stopped = withdraw_consent(
                conn, creditor=partner.oin, ref=ref, by=partner.oin, now=gw.clock.now(),
                audit=gw.audit,
            )  # fmt: skip
        if stopped is None:
            raise _not_found("consent")
        return ConsentWithdrawnOut(ref=ref, stopped=stopped)

    @router.get(
        "/.well-known/jwks.json",
        response_model=JWKSOut,
        summary="The gateway's published keys (receipts, intake encryption)",
        tags=["public"],
    )
    def gateway_keys() -> JWKSOut:
        return JWKSOut(**jwks(gw.keyring.published(now=gw.clock.now())))

    @router.get(
        "/healthz",
        response_model=HealthOut,
        summary="Liveness: the service answers and its store is reachable",
        responses={503: {"model": ErrorOut}},
        tags=["public"],
    )
    def health() -> HealthOut:
        with reading(gw.engine) as conn:
            conn.execute(text("SELECT 1"))
        return HealthOut(status="ok")

    return router


# -- the app -------------------------------------------------------------------------


def create_app(
    gw: Gateway, *, close_on_shutdown: bool = False, pool: WorkerPool | None = None
) -> FastAPI:
    """The partner API over ``gw``; closes ``gw`` (and ``pool``) at shutdown if asked to.

    With a ``pool``, batches of notices are submitted in its processes (``serve`` with
    several workers); everything else runs in this process.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if close_on_shutdown:
                if pool is not None:
                    await run_in_threadpool(pool.close)
                gw.close()

    app = FastAPI(
        title="Signaalpoort partner API",
        version="1",
        description="Mutual TLS: present a client certificate registered with the gateway.",
        docs_url="/docs",
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        lifespan=lifespan,
    )
    app.include_router(_routes(gw, pool))

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        return _error_response(400, "body_invalid", "a parameter is invalid")

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
        if status == 404:
            return _error_response(404, "not_found", "no such route")
        if status == 405:
            return _error_response(405, "method_not_allowed", "the route has no such method")
        return _error_response(status, "internal" if status >= 500 else "refused", "refused")

    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    # Added last is outermost: guard, then authenticate, then the routes.
    app.add_middleware(_Authenticate, gw=gw)
    app.add_middleware(_Guard)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {})
            components["securitySchemes"] = {"mutualTLS": {"type": "mutualTLS"}}
            schema["security"] = [{"mutualTLS": []}]
            for path, operations in schema.get("paths", {}).items():
                for operation in operations.values():
                    # Invalid parameters are answered 400 body_invalid, never 422.
                    operation.get("responses", {}).pop("422", None)
                    if path in PUBLIC_PATHS:
                        operation["security"] = []
            for unused in ("HTTPValidationError", "ValidationError"):
                components.get("schemas", {}).pop(unused, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
