"""Errors of the keys package, the one tree every party shares.

    Error                     base: every error has a stable ``code``
    ├── EnvelopeInvalid       an envelope fails before its notice is verified;
    │                         ``cause`` says why (for the audit log only)
    ├── ContactBlockInvalid   a contact block cannot be opened for this notice
    ├── ReceiptInvalid        a receipt does not verify against the gateway's keys
    ├── KeySetInvalid         an outreach key set does not verify against the pin
    ├── KeyringError          a keyring is missing, malformed or has no usable key
    ├── CertificateInvalid    a certificate carries no usable organisation identity
    ├── MasterKeyDestroyed    an at-rest master key is gone (crypto-shredded)
    ├── SecretInvalid         a linkage secret cannot be opened or is malformed
    ├── FieldInvalid          a field cannot be normalised for a match token
    └── AtRestInvalid         at-rest data or a wrapped key does not open (tampered,
                              wrong key or AAD, malformed), or a bucket name is invalid

Verification raises; it never returns a bool. Messages carry no personal data and no
key material: only codes, key ids and sizes.
"""

from __future__ import annotations


class Error(Exception):
    """Base of every error raised by ``keys``; ``code`` is stable and documented."""

    code = "error"

    def __init__(self, message: str = "", *, cause: str | None = None) -> None:
        super().__init__(message or self.code)
        self.cause = cause or self.code

    def diagnostics(self) -> str:
        """An operator-facing explanation, safe to print."""
        return f"{self.code} ({self.cause}): {self.args[0]}"


class EnvelopeInvalid(Error):
    """The envelope fails a check; ``cause`` is one of ``ENVELOPE_CAUSES``."""

    code = "envelope_invalid"


# The precise causes behind ``envelope_invalid`` (docs/reason-codes.md).
ENVELOPE_CAUSES = (
    "oversized",
    "malformed",
    "header_invalid",
    "alg_forbidden",
    "zip_forbidden",
    "crit_unsupported",
    "wrong_recipient",
    "decrypt_failed",
    "content_type_invalid",
    "signature_missing",
    "signature_invalid",
    "key_unknown",
    "key_revoked",
    "signer_mismatch",
    "payload_malformed",
    "audience_mismatch",
    "expired",
    "not_yet_valid",
    "lifetime_too_long",
)


class ContactBlockInvalid(Error):
    """A contact block is malformed, bound to another notice, or not for this key."""

    code = "contact_block_invalid"


class ReceiptInvalid(Error):
    """A receipt's signature or shape does not verify."""

    code = "receipt_invalid"


class KeySetInvalid(Error):
    """An outreach key set does not verify against the pinned municipality key."""

    code = "keyset_invalid"


class KeyringError(Error):
    """A keyring file is missing or malformed, or holds no key for the asked use."""

    code = "keyring_invalid"


class CertificateInvalid(Error):
    """A certificate is malformed or carries no OIN in its subject serialNumber."""

    code = "certificate_invalid"


class MasterKeyDestroyed(Error):
    """The master key of a retention bucket was destroyed; its data is gone for good."""

    code = "master_key_destroyed"


class SecretInvalid(Error):
    """A linkage secret is malformed or cannot be opened with this party's keys."""

    code = "secret_invalid"


class FieldInvalid(Error):
    """A value cannot be normalised (e.g. a postcode that is not ``1234AB``)."""

    code = "field_invalid"


class AtRestInvalid(Error):
    """At-rest data or a wrapped data key does not open, or a bucket name is invalid.

    ``cause`` is one of ``bucket_invalid``, ``key_invalid``, ``malformed``,
    ``version_unknown``, ``unwrap_failed`` or ``decrypt_failed``.
    """

    code = "at_rest_invalid"
