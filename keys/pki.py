"""The development certificate authority and the organisation identity in a certificate.

Parties talk over mutual TLS. Each organisation (and each outreach team, with its own
sub-OIN) is identified by its 20-digit OIN in the ``serialNumber`` attribute of the
certificate subject, as Digikoppeling (PKIoverheid) does. ``DevCA`` issues such
certificates for a demo or a test; production uses PKIoverheid certificates, which
``certificate_identity`` reads the same way.

TLS libraries check the chain on a connection; ``verify_issued_by`` is for registering
a partner's certificate and for tests.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keys import jwk
from keys.errors import CertificateInvalid, KeyringError
from keys.keyring import write_atomic, write_private
from keys.limits import CLOCK_SKEW

OIN = jwk.OIN

Kind = Literal["client", "server"]

CA_CERTIFICATE_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"

DEFAULT_CA_LIFETIME = timedelta(days=3653)
"""Ten years: a development CA outlives every certificate it issues."""

DEFAULT_CERTIFICATE_LIFETIME = timedelta(days=730)
"""Two years for a client or server certificate."""

MAX_CERTIFICATE_BYTES = 64 * 1024
"""A certificate (DER or PEM) larger than this is refused before it is parsed."""

_MAX_NAME_LENGTH = 64  # the X.520 upper bound for CN and O
_OIN_LENGTH = 20
_PEM_MARKER = b"-----BEGIN"


def is_oin(value: str) -> bool:
    """Whether ``value`` is an OIN: exactly 20 ASCII digits."""
    return (
        isinstance(value, str) and len(value) == _OIN_LENGTH and value.isascii() and value.isdigit()
    )


@dataclass(frozen=True)
class CertificateIdentity:
    """The organisation a certificate speaks for, and when it is valid (aware UTC)."""

    oin: OIN
    name: str
    fingerprint: str
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True, repr=False)
class IssuedCertificate:
    """A certificate with its fresh private key, both PEM; ``repr`` hides the key."""

    certificate_pem: bytes
    private_key_pem: bytes

    def write(self, directory: Path, stem: str) -> None:
        """Write ``<stem>.pem`` (0644) and ``<stem>-key.pem`` (0600), each atomically."""
        write_private(directory / f"{stem}-key.pem", self.private_key_pem)
        _write_public(directory / f"{stem}.pem", self.certificate_pem)

    def __repr__(self) -> str:
        return f"IssuedCertificate(fingerprint={fingerprint(self.certificate_pem)!r})"


class DevCA:
    """A development certificate authority: EC P-256 with SHA-256, path length 0.

    Build one with ``create`` or ``load``; ``repr`` never shows the key.
    """

    __slots__ = ("_certificate", "_key")

    def __init__(self, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        if certificate.public_key() != key.public_key():
            raise KeyringError("the CA key does not belong to the CA certificate")
        self._certificate = certificate
        self._key = key

    @classmethod
    def create(
        cls, *, name: str, now: datetime, valid_for: timedelta = DEFAULT_CA_LIFETIME
    ) -> DevCA:
        """A fresh CA with a self-signed certificate valid from ``now``."""
        _check_name(name)
        now = _aware(now)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + valid_for)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                critical=False,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(certificate, key)

    @classmethod
    def load(cls, directory: Path) -> DevCA:
        """Read ``ca.pem`` and ``ca-key.pem`` from ``directory``."""
        cert_path = directory / CA_CERTIFICATE_FILE
        key_path = directory / CA_KEY_FILE
        try:
            cert_data = cert_path.read_bytes()
        except FileNotFoundError as exc:
            raise CertificateInvalid(f"no CA certificate at {cert_path}") from exc
        try:
            key_data = key_path.read_bytes()
        except FileNotFoundError as exc:
            raise KeyringError(f"no CA key at {key_path}") from exc
        certificate = _parse(cert_data)
        if not _is_ca(certificate):
            raise CertificateInvalid(f"the certificate at {cert_path} is not a CA")
        try:
            key = serialization.load_pem_private_key(key_data, password=None)
        except (ValueError, TypeError) as exc:
            raise KeyringError(f"the CA key at {key_path} is malformed") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise KeyringError(f"the CA key at {key_path} is not an EC P-256 key")
        return cls(certificate, key)

    def save(self, directory: Path) -> None:
        """Write ``ca-key.pem`` (0600) and ``ca.pem`` (0644), each atomically."""
        key_pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(directory / CA_KEY_FILE, key_pem)
        _write_public(directory / CA_CERTIFICATE_FILE, self.certificate_pem)

    @property
    def certificate_pem(self) -> bytes:
        """The CA certificate, PEM: the trust anchor every party configures."""
        return self._certificate.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        *,
        oin: OIN,
        name: str,
        kind: Kind,
        hosts: Sequence[str] = (),
        now: datetime,
        valid_for: timedelta = DEFAULT_CERTIFICATE_LIFETIME,
    ) -> IssuedCertificate:
        """A client or server certificate for organisation ``oin``, with a fresh P-256 key.

        A server certificate names its ``hosts`` (DNS names or IP addresses); a client
        certificate names none. Validity ends no later than the CA's own.
        """
        if not is_oin(oin):
            raise CertificateInvalid("an OIN is exactly 20 digits")
        _check_name(name)
        if kind not in ("client", "server"):
            raise CertificateInvalid("a certificate is for a client or a server")
        if kind == "server" and not hosts:
            raise CertificateInvalid("a server certificate needs at least one host")
        if kind == "client" and hosts:
            raise CertificateInvalid("a client certificate names no hosts")
        now = _aware(now)
        ca_not_after = self._certificate.not_valid_after_utc
        if not self._certificate.not_valid_before_utc <= now < ca_not_after:
            raise CertificateInvalid("the CA is not valid at the time of issue")

        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.SERIAL_NUMBER, oin),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        usage = (
            ExtendedKeyUsageOID.CLIENT_AUTH
            if kind == "client"
            else (ExtendedKeyUsageOID.SERVER_AUTH)
        )
        ca_ski = self._certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(min(now + valid_for, ca_not_after))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
        )
        if hosts:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(_general_names(hosts)), critical=False
            )
        certificate = builder.sign(self._key, hashes.SHA256())
        return IssuedCertificate(
            certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
            private_key_pem=key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )

    def __repr__(self) -> str:
        return f"DevCA(fingerprint={fingerprint(self.certificate_pem)!r})"


def certificate_identity(cert: bytes) -> CertificateIdentity:
    """The OIN, name, fingerprint and validity of a certificate (DER or PEM).

    The subject must hold exactly one ``serialNumber``, and it must be an OIN.
    """
    return _identity(_parse(cert))


def verify_issued_by(cert: bytes, ca_pem: bytes, *, now: datetime) -> CertificateIdentity:
    """Check that ``ca_pem`` signed ``cert`` and that both are valid at ``now``.

    Returns the certificate's identity; raises ``CertificateInvalid`` otherwise.
    """
    now = _aware(now)
    certificate = _parse(cert)
    ca = _parse(ca_pem)
    if not _is_ca(ca):
        raise CertificateInvalid("the issuer certificate is not a CA")
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise CertificateInvalid("the certificate was not issued by this CA") from exc
    for checked, what in ((ca, "the CA certificate"), (certificate, "the certificate")):
        if now < checked.not_valid_before_utc:
            raise CertificateInvalid(f"{what} is not yet valid")
        if now >= checked.not_valid_after_utc:
            raise CertificateInvalid(f"{what} has expired")
    return _identity(certificate)


def fingerprint(cert: bytes) -> str:
    """The lowercase hex SHA-256 of the certificate's DER encoding (DER or PEM input)."""
    return _parse(cert).fingerprint(hashes.SHA256()).hex()


def _parse(data: bytes) -> x509.Certificate:
    if not isinstance(data, bytes | bytearray):
        raise CertificateInvalid("a certificate must be bytes")
    if len(data) > MAX_CERTIFICATE_BYTES:
        raise CertificateInvalid(f"a certificate of {len(data)} bytes is too large")
    try:
        if data.lstrip().startswith(_PEM_MARKER):
            return x509.load_pem_x509_certificate(bytes(data))
        return x509.load_der_x509_certificate(bytes(data))
    except ValueError as exc:
        raise CertificateInvalid("not a valid X.509 certificate") from exc


def _identity(certificate: x509.Certificate) -> CertificateIdentity:
    try:
        subject = certificate.subject
        serials = subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
        organisations = subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        common_names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        not_before = certificate.not_valid_before_utc
        not_after = certificate.not_valid_after_utc
    except ValueError as exc:
        raise CertificateInvalid("the certificate subject is malformed") from exc
    if len(serials) != 1:
        raise CertificateInvalid(f"the subject needs exactly one serialNumber, has {len(serials)}")
    value = serials[0].value
    if not isinstance(value, str) or not is_oin(value):
        raise CertificateInvalid("the subject serialNumber is not an OIN")
    names = [a.value for a in (*organisations, *common_names) if isinstance(a.value, str)]
    return CertificateIdentity(
        oin=OIN(value),
        name=names[0] if names else "",
        fingerprint=certificate.fingerprint(hashes.SHA256()).hex(),
        not_before=not_before,
        not_after=not_after,
    )


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    except ValueError as exc:
        raise CertificateInvalid("the certificate extensions are malformed") from exc
    return constraints.value.ca


def _general_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
            continue
        except ValueError:
            pass
        if not host or not host.isascii():
            raise CertificateInvalid("a host is an IP address or an ASCII (A-label) DNS name")
        names.append(x509.DNSName(host))
    return names


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME_LENGTH:
        raise CertificateInvalid(f"a name is 1 to {_MAX_NAME_LENGTH} characters")


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)


def _write_public(path: Path, data: bytes) -> None:
    """Write a file atomically with mode 0644 (certificates)."""
    write_atomic(path, data, mode=0o644)
