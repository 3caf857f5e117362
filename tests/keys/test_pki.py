"""The development CA, the OIN in a certificate, and a real mutual TLS handshake."""

from __future__ import annotations

import hashlib
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keys.errors import CertificateInvalid, KeyringError
from keys.pki import (
    OIN,
    CertificateIdentity,
    DevCA,
    IssuedCertificate,
    certificate_identity,
    fingerprint,
    is_oin,
    verify_issued_by,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CREDITOR_OIN = OIN("00000001234567890000")
GATEWAY_OIN = OIN("00000009876543210000")
TIMEOUT = 10.0


@pytest.fixture(scope="module")
def ca() -> DevCA:
    return DevCA.create(name="Signaalpoort Dev CA", now=NOW)


def _load(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _self_signed(subject: x509.Name) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


# --- OINs -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["00000001234567890000", "12345678901234567890"])
def test_twenty_digits_are_an_oin(value: str) -> None:
    assert is_oin(value)


@pytest.mark.parametrize(
    "value",
    ["", "0000000123456789000", "000000012345678900000", "0000000123456789000a", "١" * 20],
)
def test_anything_but_twenty_ascii_digits_is_not_an_oin(value: str) -> None:
    assert not is_oin(value)


# --- issuing ----------------------------------------------------------------------------


def test_client_certificate_carries_the_oin_and_name(ca: DevCA) -> None:
    issued = ca.issue(oin=CREDITOR_OIN, name="Woonstichting Voorbeeld", kind="client", now=NOW)

    identity = certificate_identity(issued.certificate_pem)

    assert identity.oin == CREDITOR_OIN
    assert identity.name == "Woonstichting Voorbeeld"
    cert = _load(issued.certificate_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == CREDITOR_OIN
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_server_certificate_names_its_hosts_as_ip_and_dns(ca: DevCA) -> None:
    issued = ca.issue(
        oin=GATEWAY_OIN,
        name="Signaalpoort",
        kind="server",
        hosts=["127.0.0.1", "localhost", "::1"],
        now=NOW,
    )

    cert = _load(issued.certificate_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_issued_certificate_is_linked_to_the_ca_by_key_identifiers(ca: DevCA) -> None:
    issued = ca.issue(oin=CREDITOR_OIN, name="Voorbeeld", kind="client", now=NOW)

    cert, ca_cert = _load(issued.certificate_pem), _load(ca.certificate_pem)
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    constraints = ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    usage = ca_cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign


@pytest.mark.parametrize("oin", ["1234", "0000000123456789000X", "", "000000012345678900000"])
def test_issue_refuses_a_value_that_is_not_an_oin(ca: DevCA, oin: str) -> None:
    with pytest.raises(CertificateInvalid):
        ca.issue(oin=OIN(oin), name="Voorbeeld", kind="client", now=NOW)


def test_issue_refuses_a_server_certificate_without_hosts(ca: DevCA) -> None:
    with pytest.raises(CertificateInvalid):
        ca.issue(oin=GATEWAY_OIN, name="Signaalpoort", kind="server", now=NOW)


def test_certificate_does_not_outlive_its_ca(ca: DevCA) -> None:
    ca_cert = _load(ca.certificate_pem)
    issued = ca.issue(
        oin=CREDITOR_OIN,
        name="Voorbeeld",
        kind="client",
        now=NOW,
        valid_for=timedelta(days=365 * 30),
    )

    assert certificate_identity(issued.certificate_pem).not_after == ca_cert.not_valid_after_utc


def test_issued_certificate_repr_never_shows_the_private_key(ca: DevCA) -> None:
    issued = ca.issue(oin=CREDITOR_OIN, name="Voorbeeld", kind="client", now=NOW)

    shown = repr(issued) + str(issued) + repr(ca)

    assert b"PRIVATE KEY" in issued.private_key_pem
    assert "PRIVATE" not in shown
    body = b"".join(issued.private_key_pem.splitlines()[1:-1]).decode()
    assert body[:16] not in shown


def test_issued_certificate_writes_a_public_certificate_and_a_private_key(
    ca: DevCA, tmp_path: Path
) -> None:
    issued = ca.issue(oin=CREDITOR_OIN, name="Voorbeeld", kind="client", now=NOW)

    issued.write(tmp_path / "tls", "client")

    assert (tmp_path / "tls" / "client.pem").read_bytes() == issued.certificate_pem
    assert (tmp_path / "tls" / "client-key.pem").read_bytes() == issued.private_key_pem
    assert stat.S_IMODE((tmp_path / "tls" / "client.pem").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "tls" / "client-key.pem").stat().st_mode) == 0o600


# --- saving and loading the CA ----------------------------------------------------------


def test_ca_saves_and_loads_with_a_private_key_file(tmp_path: Path) -> None:
    ca = DevCA.create(name="Dev CA", now=NOW)

    ca.save(tmp_path)
    loaded = DevCA.load(tmp_path)

    assert loaded.certificate_pem == ca.certificate_pem
    assert stat.S_IMODE((tmp_path / "ca-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca.pem").stat().st_mode) == 0o644
    issued = loaded.issue(oin=CREDITOR_OIN, name="Voorbeeld", kind="client", now=NOW)
    assert verify_issued_by(issued.certificate_pem, ca.certificate_pem, now=NOW).oin == (
        CREDITOR_OIN
    )


def test_ca_load_refuses_a_key_of_another_ca(tmp_path: Path) -> None:
    DevCA.create(name="Dev CA", now=NOW).save(tmp_path / "one")
    DevCA.create(name="Dev CA", now=NOW).save(tmp_path / "two")
    (tmp_path / "one" / "ca-key.pem").write_bytes((tmp_path / "two" / "ca-key.pem").read_bytes())

    with pytest.raises(KeyringError, match="does not belong") as caught:
        DevCA.load(tmp_path / "one")
    assert "PRIVATE" not in str(caught.value)


# --- reading and verifying --------------------------------------------------------------


def test_identity_and_fingerprint_are_the_same_for_der_and_pem(ca: DevCA) -> None:
    issued = ca.issue(oin=CREDITOR_OIN, name="Voorbeeld", kind="client", now=NOW)
    der = _load(issued.certificate_pem).public_bytes(serialization.Encoding.DER)

    from_pem, from_der = certificate_identity(issued.certificate_pem), certificate_identity(der)

    assert from_pem == from_der
    assert fingerprint(issued.certificate_pem) == fingerprint(der)
    assert from_der.fingerprint == hashlib.sha256(der).hexdigest()
    assert from_der.not_before.tzinfo is not None and from_der.not_after.utcoffset() == (
        timedelta(0)
    )


def test_verify_issued_by_returns_the_identity(ca: DevCA) -> None:
    issued = ca.issue(oin=CREDITOR_OIN, name="Voorbeeld", kind="client", now=NOW)

    identity = verify_issued_by(issued.certificate_pem, ca.certificate_pem, now=NOW)

    assert identity == certificate_identity(issued.certificate_pem)


def test_certificate_from_another_ca_is_refused(ca: DevCA) -> None:
    other = DevCA.create(name="Signaalpoort Dev CA", now=NOW)
    issued = other.issue(oin=CREDITOR_OIN, name="Voorbeeld", kind="client", now=NOW)

    with pytest.raises(CertificateInvalid):
        verify_issued_by(issued.certificate_pem, ca.certificate_pem, now=NOW)


def test_expired_certificate_is_refused() -> None:
    ca = DevCA.create(name="Dev CA", now=NOW - timedelta(days=5 * 365))
    issued = ca.issue(
        oin=CREDITOR_OIN,
        name="Voorbeeld",
        kind="client",
        now=NOW - timedelta(days=3 * 365),
        valid_for=timedelta(days=1),
    )

    with pytest.raises(CertificateInvalid, match="expired"):
        verify_issued_by(issued.certificate_pem, ca.certificate_pem, now=NOW)


def test_certificate_not_yet_valid_is_refused(ca: DevCA) -> None:
    issued = ca.issue(
        oin=CREDITOR_OIN, name="Voorbeeld", kind="client", now=NOW + timedelta(days=1)
    )

    with pytest.raises(CertificateInvalid, match="not yet valid"):
        verify_issued_by(issued.certificate_pem, ca.certificate_pem, now=NOW)


def test_issuer_that_is_not_a_ca_is_refused(ca: DevCA) -> None:
    issued = ca.issue(oin=CREDITOR_OIN, name="Voorbeeld", kind="client", now=NOW)

    with pytest.raises(CertificateInvalid, match="not a CA"):
        verify_issued_by(issued.certificate_pem, issued.certificate_pem, now=NOW)


@pytest.mark.parametrize(
    "attributes",
    [
        [x509.NameAttribute(NameOID.COMMON_NAME, "Voorbeeld")],
        [
            x509.NameAttribute(NameOID.SERIAL_NUMBER, "KVK-12345678"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Voorbeeld"),
        ],
        [
            x509.NameAttribute(NameOID.SERIAL_NUMBER, CREDITOR_OIN),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, GATEWAY_OIN),
            x509.NameAttribute(NameOID.COMMON_NAME, "Voorbeeld"),
        ],
    ],
    ids=["no-serial-number", "serial-number-not-an-oin", "two-serial-numbers"],
)
def test_certificate_without_exactly_one_oin_serial_number_is_refused(
    attributes: list[x509.NameAttribute[str]],
) -> None:
    with pytest.raises(CertificateInvalid, match="serialNumber"):
        certificate_identity(_self_signed(x509.Name(attributes)))


@pytest.mark.parametrize(
    "data",
    [b"", b"not a certificate", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
)
def test_malformed_certificate_is_refused(data: bytes) -> None:
    with pytest.raises(CertificateInvalid):
        certificate_identity(data)
    with pytest.raises(CertificateInvalid):
        fingerprint(data)


def test_oversized_certificate_is_refused_before_parsing() -> None:
    with pytest.raises(CertificateInvalid, match="too large"):
        certificate_identity(b"0" * (1024 * 1024))


# --- mutual TLS on loopback -------------------------------------------------------------


@dataclass
class _Outcome:
    peer: bytes | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class _TLSServer:
    port: int
    outcome: _Outcome


@pytest.fixture
def live_ca() -> DevCA:
    return DevCA.create(name="Signaalpoort Dev CA", now=datetime.now(UTC))


@pytest.fixture
def tls_server(live_ca: DevCA, tmp_path: Path) -> Iterator[_TLSServer]:
    """A TLS server on loopback that requires a client certificate from ``live_ca``."""
    issued = live_ca.issue(
        oin=GATEWAY_OIN,
        name="Signaalpoort",
        kind="server",
        hosts=["127.0.0.1", "localhost"],
        now=datetime.now(UTC),
    )
    issued.write(tmp_path, "server")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=live_ca.certificate_pem.decode())
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server-key.pem")

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    outcome = _Outcome()

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            conn.settimeout(TIMEOUT)
            with context.wrap_socket(conn, server_side=True) as tls:
                outcome.peer = tls.getpeercert(binary_form=True)
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            outcome.error = exc
        finally:
            outcome.done.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield _TLSServer(port=listener.getsockname()[1], outcome=outcome)
    finally:
        thread.join(TIMEOUT)
        listener.close()


def _client_context(trust: DevCA, client: IssuedCertificate | None, where: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cadata=trust.certificate_pem.decode())
    if client is not None:
        client.write(where, "client")
        context.load_cert_chain(where / "client.pem", where / "client-key.pem")
    return context


def _exchange(context: ssl.SSLContext, port: int) -> bytes:
    """Connect, handshake and read the server's greeting; b"" when the server refused."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                return tls.recv(2)
    except (ssl.SSLError, OSError):
        return b""


def test_mutual_tls_handshake_tells_the_server_the_client_oin(
    live_ca: DevCA, tls_server: _TLSServer, tmp_path: Path
) -> None:
    client = live_ca.issue(
        oin=CREDITOR_OIN, name="Woonstichting Voorbeeld", kind="client", now=datetime.now(UTC)
    )

    greeting = _exchange(_client_context(live_ca, client, tmp_path), tls_server.port)

    assert tls_server.outcome.done.wait(TIMEOUT)
    assert greeting == b"ok"
    assert tls_server.outcome.error is None
    assert tls_server.outcome.peer is not None
    identity = certificate_identity(tls_server.outcome.peer)
    assert identity == CertificateIdentity(
        oin=CREDITOR_OIN,
        name="Woonstichting Voorbeeld",
        fingerprint=fingerprint(client.certificate_pem),
        not_before=identity.not_before,
        not_after=identity.not_after,
    )


def test_mutual_tls_handshake_rejects_a_client_certificate_from_another_ca(
    live_ca: DevCA, tls_server: _TLSServer, tmp_path: Path
) -> None:
    stranger = DevCA.create(name="Signaalpoort Dev CA", now=datetime.now(UTC))
    client = stranger.issue(
        oin=CREDITOR_OIN, name="Woonstichting Voorbeeld", kind="client", now=datetime.now(UTC)
    )

    greeting = _exchange(_client_context(live_ca, client, tmp_path), tls_server.port)

    assert tls_server.outcome.done.wait(TIMEOUT)
    assert greeting == b""
    assert tls_server.outcome.peer is None
    assert isinstance(tls_server.outcome.error, ssl.SSLError)


def test_mutual_tls_handshake_rejects_a_client_without_a_certificate(
    live_ca: DevCA, tls_server: _TLSServer, tmp_path: Path
) -> None:
    greeting = _exchange(_client_context(live_ca, None, tmp_path), tls_server.port)

    assert tls_server.outcome.done.wait(TIMEOUT)
    assert greeting == b""
    assert tls_server.outcome.peer is None
    assert isinstance(tls_server.outcome.error, ssl.SSLError)
