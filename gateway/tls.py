"""Mutual TLS for the partner API: the one place the client certificate leaves TLS.

uvicorn verifies the client's certificate chain (against the CA in the gateway's home)
but does not hand the certificate to the application. ``PeerCertificateProtocol`` is
uvicorn's httptools protocol (a C parser: a batch of 500 notices is a 4 MB body) with
one addition: every HTTP request's scope carries the DER
bytes of the certificate the client presented on this connection, or None::

    scope["extensions"]["tls"]["client_cert_der"]

It is read from the TLS connection at each request, never from a header. An app served
without this protocol sees no certificate, so every authenticated route answers 401.

Certificates are *optional* at the TLS layer (``CERT_OPTIONAL``): a client without one
completes the handshake and gets a clean 401 from the app, while a certificate that
does not chain to the CA, or has expired, fails the handshake.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any, cast

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.settings import Settings

TLS_EXTENSION = "tls"
CLIENT_CERT_DER = "client_cert_der"
MIN_TLS_VERSION = ssl.TLSVersion.TLSv1_2


def client_certificate(scope: Scope) -> bytes | None:
    """The DER certificate the client presented, as ``PeerCertificateProtocol`` put it."""
    tls = scope.get("extensions", {}).get(TLS_EXTENSION) or {}
    der = tls.get(CLIENT_CERT_DER)
    return der if isinstance(der, bytes) and der else None


def peer_certificate(transport: asyncio.BaseTransport) -> bytes | None:
    """The verified client certificate (DER) of a TLS transport; None without one."""
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    return ssl_object.getpeercert(binary_form=True)


class _WithPeerCertificate:
    """Puts the connection's client certificate into each HTTP request's scope."""

    def __init__(self, app: ASGIApp, transport: asyncio.BaseTransport) -> None:
        self._app = app
        self._transport = transport

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            extensions = dict(scope.get("extensions") or {})
            extensions[TLS_EXTENSION] = {CLIENT_CERT_DER: peer_certificate(self._transport)}
            scope = {**scope, "extensions": extensions}
        await self._app(scope, receive, send)


class PeerCertificateProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, passing the client certificate on to the app."""

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        """Wrap the app for this connection, then let uvicorn set the connection up."""
        # One protocol object per connection, so wrapping self.app is per connection;
        # the certificate itself is read at every request.
        self.app = cast(Any, _WithPeerCertificate(cast(ASGIApp, self.app), transport))
        super().connection_made(transport)


def tls_context(config: uvicorn.Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's server context, hardened: TLS 1.2 at least, no renegotiation."""
    context = default()
    context.minimum_version = MIN_TLS_VERSION
    # Renegotiation could change the peer certificate in the middle of a connection.
    context.options |= ssl.OP_NO_RENEGOTIATION
    return context


def server_config(app: ASGIApp, settings: Settings, *, host: str, port: int) -> uvicorn.Config:
    """The uvicorn configuration of the partner API: HTTPS with optional client certs.

    The server's certificate and key and the CA that client certificates must chain to
    are the gateway home's ``tls/cert.pem``, ``tls/cert-key.pem`` and ``tls/ca.pem``.
    """
    tls_dir = settings.home / "tls"
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=PeerCertificateProtocol,
        ws="none",
        # Identity comes from the TLS connection only; no forwarded header is trusted.
        proxy_headers=False,
        server_header=False,
        ssl_certfile=str(tls_dir / "cert.pem"),
        ssl_keyfile=str(tls_dir / "cert-key.pem"),
        ssl_ca_certs=str(tls_dir / "ca.pem"),
        ssl_cert_reqs=ssl.CERT_OPTIONAL,
        ssl_context_factory=tls_context,
    )
