"""Errors of the gateway, drawn as one tree.

    GatewayError          base (a ``keys.errors.Error``): a stable ``code``, ``cause``
                          and ``diagnostics()``
    ├── AuditBroken       the audit log fails verification (chain, positions, head,
    │                     or a checkpoint's root or signature)
    ├── StoreError        the database is unreachable, unsupported or misconfigured
    ├── PartnerUnknown    no partner is registered under that OIN
    ├── RegisterInvalid   a register file does not fit (the line is named, never a value)
    ├── NotResolvable     no review signal of this back office under that delivery id
    ├── PersonUnknown     no person under that pseudonym in the municipality's register
    ├── NotRoutable       the person's team cannot be sent the signal (not in the key set)
    ├── SSHKeyInUse       an SSH key is already registered (to this or another partner,
    │                     or revoked: a revoked key is never registered again)
    └── PolicyConflict    a partnership, consent or objection that cannot be registered
                          (its ref is taken, its dates or categories do not fit)

Edges (HTTP, SFTP, CLI) map each ``code`` to their own status; messages carry no personal
data and no key material.
"""

from __future__ import annotations

from keys.errors import Error


class GatewayError(Error):
    """Base of every error raised by ``gateway``; ``code`` is stable and documented."""

    code = "gateway_error"


class AuditBroken(GatewayError):
    """The audit log does not verify; ``position`` is the first bad event, if known."""

    code = "audit_broken"

    def __init__(
        self, message: str = "", *, cause: str | None = None, position: int | None = None
    ) -> None:
        super().__init__(message, cause=cause)
        self.position = position

    def diagnostics(self) -> str:
        """An operator-facing explanation, safe to print."""
        where = f" at position {self.position}" if self.position is not None else ""
        return f"{self.code} ({self.cause}){where}: {self.args[0]}"


class StoreError(GatewayError):
    """The store cannot be used: unreachable, unsupported URL, or failed migration."""

    code = "store_unavailable"


class PartnerUnknown(GatewayError):
    """No partner is registered under the given OIN."""

    code = "partner_unknown"


class RegisterInvalid(GatewayError):
    """A register file does not fit; ``line`` is the first bad line (1 is the header)."""

    code = "register_invalid"

    def __init__(self, line: int, message: str = "") -> None:
        super().__init__(f"line {line}: {message}" if message else f"line {line}")
        self.line = line


class NotResolvable(GatewayError):
    """No delivery of that id for this back office, or its notice is not (or no longer)
    in review: resolved, withdrawn, or never the back office's to resolve."""

    code = "not_resolvable"


class PersonUnknown(GatewayError):
    """No person under that pseudonym in the register of the notice's municipality."""

    code = "person_unknown"


class NotRoutable(GatewayError):
    """The resolved person's team has no key in the outreach key set (or the notice's
    contact block has no recipient for it), so the signal cannot go to that team."""

    code = "not_routable"


class SSHKeyInUse(GatewayError):
    """The SSH public key is registered already, or was and is revoked; ``cause`` says
    which (``registered``, ``other_partner``, ``revoked``)."""

    code = "ssh_key_in_use"


class PolicyConflict(GatewayError):
    """A partnership, consent record or objection cannot be registered as given;
    ``cause`` says why (``ref_exists``, ``dates``, ``no_category``)."""

    code = "policy_conflict"
