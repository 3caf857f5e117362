"""Reaching the gateway over HTTPS with mutual TLS (the partner API, docs/reason-codes.md).

The client presents the party's own certificate and trusts only the CA in its home;
identity is the certificate, never a header.
"""

from __future__ import annotations

import ssl
from collections.abc import Collection, Sequence
from typing import Any

import httpx
import orjson

from adapters.errors import TransportFailed
from keys.home import PartyHome

DEFAULT_TIMEOUT = 120.0
GATEWAY_URL_FILE = "gateway-url"
RESOLVE_REFUSALS = frozenset({404, 409})
"""The statuses with which the gateway refuses a resolution (docs/reason-codes.md)."""


def gateway_url(home: PartyHome, override: str | None = None) -> str:
    """The gateway's base URL: ``--gateway``, else what enrolment wrote into the home."""
    if override:
        return override.rstrip("/")
    path = home.pins_dir / GATEWAY_URL_FILE
    if not path.exists():
        raise TransportFailed("no gateway URL in this home; pass --gateway")
    return path.read_text().strip().rstrip("/")


def tls_context(home: PartyHome) -> ssl.SSLContext:
    """A client context: the home's CA only, the home's own certificate, TLS 1.2 or later."""
    context = ssl.create_default_context(cafile=str(home.tls_dir / "ca.pem"))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(home.tls_dir / "cert.pem", home.tls_dir / "cert-key.pem")
    return context


class RestClient:
    """One party's connection to the gateway's partner API."""

    def __init__(self, home: PartyHome, base_url: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._client = httpx.Client(
            base_url=base_url, verify=tls_context(home), timeout=timeout, http2=False
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RestClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
        self, method: str, path: str, body: Any = None, *, refusals: Collection[int] = ()
    ) -> dict[str, Any]:
        """The JSON object answered; an error status in ``refusals`` gives its error body
        (``{"error", "detail"}``) instead of raising ``TransportFailed``."""
        try:
            response = self._client.request(
                method,
                path,
                # A batch body is megabytes: orjson writes it about six times faster.
                content=None if body is None else orjson.dumps(body),
                headers={"content-type": "application/json"} if body is not None else None,
            )
        except httpx.HTTPError as exc:
            raise TransportFailed(f"{method} {path}: {type(exc).__name__}") from None
        if response.status_code in refusals:
            try:
                refusal = response.json()
            except ValueError:
                refusal = None
            if isinstance(refusal, dict) and isinstance(refusal.get("error"), str):
                return {"error": refusal["error"], "detail": str(refusal.get("detail", ""))}
        if response.status_code != 200:
            try:
                code = response.json().get("error", "")
            except ValueError:
                code = ""
            raise TransportFailed(f"{method} {path}: HTTP {response.status_code} {code}".strip())
        try:
            doc = response.json()
        except ValueError:
            raise TransportFailed(f"{method} {path}: the answer is not JSON") from None
        if not isinstance(doc, dict):
            raise TransportFailed(f"{method} {path}: the answer is not a JSON object")
        return doc

    # -- as a creditor (adapters.creditor.Transport) --

    def outreach_keys(self, gemeente: str) -> str:
        return str(self._call("GET", f"/v1/outreach-keys/{gemeente}")["keyset"])

    def submit(self, envelopes: Sequence[str]) -> str:
        return str(self._call("POST", "/v1/notices", {"envelopes": list(envelopes)})["receipt"])

    def receipt(self, receipt_id: str) -> str:
        return str(self._call("GET", f"/v1/receipts/{receipt_id}")["receipt"])

    def withdraw(self, jti: str, reason: str) -> dict[str, Any]:
        return self._call("POST", f"/v1/notices/{jti}/withdraw", {"reason": reason})

    def gateway_keys(self) -> dict[str, Any]:
        return self._call("GET", "/.well-known/jwks.json")

    # -- as a team --

    def inbox(self, *, after: int = 0, limit: int = 100) -> dict[str, Any]:
        return self._call("GET", f"/v1/inbox?after={int(after)}&limit={int(limit)}")

    def ack(self, ids: Sequence[int]) -> int:
        return int(self._call("POST", "/v1/inbox/ack", {"ids": list(ids)})["acknowledged"])

    # -- as the back office --

    def resolve(
        self, delivery_id: int, *, pseudonym: str | None = None, close: str | None = None
    ) -> dict[str, Any]:
        """Resolve a review signal to a person's pseudonym or close it with a reason.

        Returns ``{"id", "status", "team"}``, or the gateway's refusal
        ``{"error", "detail"}`` (no such review signal, unknown person, team not routable).
        """
        body: dict[str, Any] = {"id": delivery_id}
        if pseudonym is not None:
            body["pseudonym"] = pseudonym
        if close is not None:
            body["close"] = close
        return self._call("POST", "/v1/inbox/resolve", body, refusals=RESOLVE_REFUSALS)
