"""The gateway's directory of partners: who they are, their keys and certificates.

Keys are parsed once and cached by ``kid`` (a kid is the key's thumbprint, so a cached
key can never be another key); whether a key or certificate is revoked is read from
the store on every batch and every request, so revocation takes effect at once.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Connection, Engine, insert, select, update

from gateway.errors import PartnerUnknown, SSHKeyInUse
from gateway.store.engine import reading
from gateway.store.schema import (
    outreach_keysets,
    partner_certificates,
    partner_keys,
    partner_ssh_keys,
    partners,
)
from keys.jwk import OIN, PublicKey
from keys.outreach import OutreachKeySet, verify_outreach_keyset
from keys.pki import CertificateIdentity
from keys.ssh import SSHPublicKey


class Partner(NamedTuple):
    """An authenticated partner: its OIN (or sub-OIN) and its role."""

    oin: OIN
    role: str


class SSHLogin(NamedTuple):
    """Who an SSH login speaks for: the partner, or why it is refused.

    ``refusal`` is ``user_unknown`` (no creditor under that user name), ``key_unknown``
    (the key is not one of that creditor's), ``key_revoked`` or ``partner_ended``.
    """

    partner: Partner | None
    refusal: str | None


class Directory:
    """Reads and writes the partner tables; keeps parsed public keys in memory."""

    def __init__(self) -> None:
        self._keysets: dict[str, tuple[str, OutreachKeySet]] = {}

    def add_partner(
        self,
        conn: Connection,
        *,
        oin: OIN,
        name: str,
        role: str,
        now: datetime,
        gemeente: str | None = None,
        parent_oin: OIN | None = None,
    ) -> None:
        """Register an organisation (a creditor, team, back office or municipality)."""
        conn.execute(
            insert(partners).values(
                oin=oin,
                name=name,
                role=role,
                gemeente=gemeente,
                parent_oin=parent_oin,
                created_at=now,
            )
        )

    def partner(self, conn: Connection, oin: str) -> dict[str, object]:
        row = conn.execute(select(partners).where(partners.c.oin == oin)).mappings().first()
        if row is None:
            raise PartnerUnknown(f"no partner {oin}")
        return dict(row)

    def add_key(self, conn: Connection, *, oin: OIN, key: PublicKey, now: datetime) -> None:
        """Register one of a partner's public keys."""
        conn.execute(
            insert(partner_keys).values(
                kid=key.kid,
                partner_oin=oin,
                use=key.use,
                jwk=json.dumps(key.jwk, sort_keys=True),
                registered_at=now,
            )
        )

    def revoke_key(self, conn: Connection, kid: str, *, now: datetime) -> bool:
        """Refuse a partner key from now on; false when there is no such key."""
        result = conn.execute(
            update(partner_keys)
            .where(partner_keys.c.kid == kid, partner_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return result.rowcount > 0

    def keys_of(self, conn: Connection, oin: str) -> list[dict[str, object]]:
        rows = conn.execute(
            select(partner_keys)
            .where(partner_keys.c.partner_oin == oin)
            .order_by(partner_keys.c.registered_at)
        ).mappings()
        return [dict(r) for r in rows]

    def signing_keys(self, engine: Engine, *, now: datetime) -> dict[str, tuple[str, str, bool]]:
        """Every registered signing key: kid -> (public JWK as JSON, owner, refused).

        Read afresh for every batch, so a revocation takes effect at once; a key is
        refused once revoked or past its ``not_after``.
        """
        with reading(engine) as conn:
            rows = conn.execute(select(partner_keys).where(partner_keys.c.use == "sig")).all()
        return {
            row.kid: (
                row.jwk,
                row.partner_oin,
                (row.revoked_at is not None and row.revoked_at <= now)
                or (row.not_after is not None and row.not_after <= now),
            )
            for row in rows
        }

    def add_certificate(
        self, conn: Connection, identity: CertificateIdentity, *, now: datetime
    ) -> None:
        """Register a partner's TLS client certificate."""
        conn.execute(
            insert(partner_certificates).values(
                fingerprint=identity.fingerprint,
                partner_oin=identity.oin,
                not_after=identity.not_after,
                registered_at=now,
            )
        )

    def identify(self, conn: Connection, fingerprint: str, *, now: datetime) -> Partner | None:
        """The partner a TLS client certificate speaks for, read from the store each time.

        None unless the certificate is registered, not revoked, not past its
        ``not_after``, and its partner exists and has not ended.
        """
        row = conn.execute(
            select(
                partners.c.oin,
                partners.c.role,
                partners.c.ended_at,
                partner_certificates.c.not_after,
                partner_certificates.c.revoked_at,
            )
            .join(partners, partners.c.oin == partner_certificates.c.partner_oin)
            .where(partner_certificates.c.fingerprint == fingerprint)
        ).first()
        if row is None:
            return None
        if row.revoked_at is not None and row.revoked_at <= now:
            return None
        if row.not_after <= now or (row.ended_at is not None and row.ended_at <= now):
            return None
        return Partner(OIN(row.oin), row.role)

    def revoke_certificate(self, conn: Connection, fingerprint: str, *, now: datetime) -> bool:
        """Refuse a TLS client certificate from now on; false when there is no such one."""
        result = conn.execute(
            update(partner_certificates)
            .where(
                partner_certificates.c.fingerprint == fingerprint,
                partner_certificates.c.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        return result.rowcount > 0

    def add_ssh_key(self, conn: Connection, *, oin: str, key: SSHPublicKey, now: datetime) -> bool:
        """Register one of a creditor's SSH public keys; false when it already is.

        Raises ``SSHKeyInUse`` when the key is registered to another partner, or was
        revoked (a revoked key stays revoked), and ``PartnerUnknown`` when no creditor
        is registered under ``oin``.
        """
        if self.partner(conn, oin)["role"] != "creditor":
            raise PartnerUnknown(f"no creditor {oin}", cause="not_a_creditor")
        row = conn.execute(
            select(partner_ssh_keys.c.partner_oin, partner_ssh_keys.c.revoked_at).where(
                partner_ssh_keys.c.fingerprint == key.fingerprint
            )
        ).first()
        if row is not None:
            if row.partner_oin != oin:
                raise SSHKeyInUse(
                    f"SSH key {key.fingerprint} belongs to another partner", cause="other_partner"
                )
            if row.revoked_at is not None:
                raise SSHKeyInUse(f"SSH key {key.fingerprint} was revoked", cause="revoked")
            return False
        conn.execute(
            insert(partner_ssh_keys).values(
                fingerprint=key.fingerprint,
                partner_oin=oin,
                public_key=key.openssh,
                registered_at=now,
            )
        )
        return True

    def ssh_keys_of(self, conn: Connection, oin: str) -> list[dict[str, object]]:
        """A partner's SSH keys, oldest first, revoked ones included."""
        rows = conn.execute(
            select(partner_ssh_keys)
            .where(partner_ssh_keys.c.partner_oin == oin)
            .order_by(partner_ssh_keys.c.registered_at, partner_ssh_keys.c.fingerprint)
        ).mappings()
        return [dict(r) for r in rows]

    def revoke_ssh_key(self, conn: Connection, fingerprint: str, *, now: datetime) -> bool:
        """Refuse an SSH key from now on; false when there is no unrevoked such key."""
        result = conn.execute(
            update(partner_ssh_keys)
            .where(
                partner_ssh_keys.c.fingerprint == fingerprint,
                partner_ssh_keys.c.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        return result.rowcount > 0

    def identify_ssh(
        self, conn: Connection, *, username: str, key: SSHPublicKey, now: datetime
    ) -> SSHLogin:
        """Whether ``key`` may log in as the creditor ``username``, read afresh each time.

        Only a creditor's registered, unrevoked key, whose blob is the one presented,
        logs in as that creditor, and only while its registration has not ended.
        """
        partner = (
            conn.execute(
                select(partners.c.oin, partners.c.role, partners.c.ended_at).where(
                    partners.c.oin == username
                )
            ).first()
            if len(username) == 20
            else None
        )
        if partner is None or partner.role != "creditor":
            return SSHLogin(None, "user_unknown")
        row = conn.execute(
            select(partner_ssh_keys.c.public_key, partner_ssh_keys.c.revoked_at).where(
                partner_ssh_keys.c.fingerprint == key.fingerprint,
                partner_ssh_keys.c.partner_oin == partner.oin,
            )
        ).first()
        if row is None or row.public_key != key.openssh:
            return SSHLogin(None, "key_unknown")
        if row.revoked_at is not None and row.revoked_at <= now:
            return SSHLogin(None, "key_revoked")
        if partner.ended_at is not None and partner.ended_at <= now:
            return SSHLogin(None, "partner_ended")
        return SSHLogin(Partner(OIN(partner.oin), partner.role), None)

    def store_outreach_keyset(
        self, conn: Connection, *, gemeente: str, signed: str, now: datetime
    ) -> OutreachKeySet:
        """Replace a municipality's key set, after checking it against its signing keys."""
        keyset = self._verify_keyset(conn, gemeente, signed)
        exists = conn.execute(
            select(outreach_keysets.c.gemeente).where(outreach_keysets.c.gemeente == gemeente)
        ).first()
        if exists:
            conn.execute(
                update(outreach_keysets)
                .where(outreach_keysets.c.gemeente == gemeente)
                .values(signed=signed, updated_at=now)
            )
        else:
            conn.execute(
                insert(outreach_keysets).values(gemeente=gemeente, signed=signed, updated_at=now)
            )
        return keyset

    def outreach_keyset(self, conn: Connection, gemeente: str) -> OutreachKeySet | None:
        """The current, verified key set of a municipality (None when it has none)."""
        signed = conn.execute(
            select(outreach_keysets.c.signed).where(outreach_keysets.c.gemeente == gemeente)
        ).scalar()
        if signed is None:
            return None
        cached = self._keysets.get(gemeente)
        if cached is not None and cached[0] == signed:
            return cached[1]
        keyset = self._verify_keyset(conn, gemeente, signed)
        self._keysets[gemeente] = (signed, keyset)
        return keyset

    def _verify_keyset(self, conn: Connection, gemeente: str, signed: str) -> OutreachKeySet:
        rows = conn.execute(
            select(partner_keys)
            .join(partners, partners.c.oin == partner_keys.c.partner_oin)
            .where(
                partners.c.role == "municipality",
                partners.c.gemeente == gemeente,
                partner_keys.c.use == "sig",
                partner_keys.c.revoked_at.is_(None),
            )
        ).mappings()
        pinned = [PublicKey.from_jwk(json.loads(r["jwk"])) for r in rows]
        return verify_outreach_keyset(signed, pinned=pinned, gemeente=gemeente)
