"""The creditor's adapter: CSV export in, sealed and signed envelopes out.

Runs at the creditor, with only the creditor's home: its signing key, the linkage
secret the municipality sealed to it, the municipality's pinned signing key (to verify
the outreach key set) and the gateway's pinned keys (to encrypt to, and to verify
receipts). Transport is whatever delivers envelopes: REST, SFTP, or a local call.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from adapters import profile
from adapters.errors import NotEnrolled, RowInvalid, TransportFailed
from adapters.gemeente import PostcodeTable
from keys.bloom import BloomEncoder
from keys.contact import seal_contact
from keys.envelope import encrypt_jwt, sign_notice
from keys.errors import FieldInvalid
from keys.home import Identity, PartyHome
from keys.jwk import PrivateKey, PublicKey
from keys.keyring import write_private
from keys.outreach import OutreachKeySet, verify_outreach_keyset
from keys.receipt import verify_receipt
from keys.tokens import PersonFields, Tokeniser, notice_tokens
from keys.transfer import open_secret

NOTICE_LIFETIME = timedelta(days=30)
BSN_CATEGORIES = frozenset({"ZORG"})
CATEGORIES = frozenset(
    {
        "HUUR",
        "ENERGIE",
        "EINDELEVERING",
        "DRINKWATER",
        "ZORG",
        "HYPOTHEEK",
        "BELASTINGDIENST",
        "TOESLAGEN",
        "GEMEENTEBELASTING",
    }
)
STAGES = frozenset({"vroeg", "aanmaning", "dagvaarding", "vonnis", "ontruiming", "afsluiting"})
GATEWAY_PIN = "gateway"
OUTBOX = "outbox"  # signed notices by jti, so a re-sent row is the same payload

# CSV profile column -> contact block field, where the names differ.
CONTACT_FROM_CSV = {
    "voorletters": "voorletters",
    "voorvoegsel": "voorvoegsel",
    "achternaam": "achternaam",
    "geboortedatum": "geboortedatum",
    "straat": "straatnaam",
    "huisnummer": "huisnummer",
    "huisletter": "huisletter",
    "huisnummertoevoeging": "huisnummertoevoeging",
    "postcode": "postcode",
    "woonplaats": "plaatsnaam",
    "telefoon": "telefoon",
    "email": "email",
    "klantnummer": "klantnummer",
}


class Transport(Protocol):
    """How a creditor reaches the gateway."""

    def outreach_keys(self, gemeente: str) -> str:
        """The municipality-signed outreach key set, as served by the gateway."""
        ...

    def submit(self, envelopes: Sequence[str]) -> str:
        """Deliver envelopes; returns the signed receipt (compact JWS)."""
        ...


@dataclass(frozen=True)
class Sealed:
    """One envelope and the CSV line it came from."""

    line: int
    ref: str
    jti: str
    envelope: str


class Creditor:
    """The creditor's side, built from its home only."""

    def __init__(self, home: PartyHome, *, now: datetime) -> None:
        self.home = home
        self.identity: Identity = home.identity()
        keyring = home.keyring()
        self._signer: PrivateKey = keyring.current("sig", now=now)
        gateway_keys = home.pinned(GATEWAY_PIN)
        enc = [k for k in gateway_keys if k.use == "enc"]
        if not enc:
            raise NotEnrolled("no gateway encryption key pinned")
        self._gateway_enc: PublicKey = enc[-1]
        self.gateway_keys = gateway_keys
        self.gateway_id = (home.pins_dir / "gateway-id").read_text().strip()
        self._postcodes = PostcodeTable.for_home(home.path)
        self._keyring = keyring
        self._tokenisers: dict[str, tuple[Tokeniser, BloomEncoder]] = {}
        self._keysets: dict[str, OutreachKeySet] = {}

    def tokeniser(self, gemeente: str) -> tuple[Tokeniser, BloomEncoder]:
        """The tokeniser and fuzzy encoder of the linkage secret the municipality sealed
        to this creditor."""
        if gemeente not in self._tokenisers:
            path = self.home.secrets_dir / f"linkage-{gemeente}.jwe"
            if not path.exists():
                raise NotEnrolled(f"no linkage secret from municipality {gemeente}")
            secret = open_secret(
                path.read_text().strip(),
                keys=self._keyring.accepted("enc", now=datetime.now().astimezone()),
                issuer_keys=self.home.pinned(f"gemeente-{gemeente}"),
            )
            self._tokenisers[gemeente] = (Tokeniser(secret), BloomEncoder(secret))
        return self._tokenisers[gemeente]

    def keyset(self, gemeente: str, transport: Transport) -> OutreachKeySet:
        """The outreach key set, verified against the pinned municipality key."""
        if gemeente not in self._keysets:
            self._keysets[gemeente] = verify_outreach_keyset(
                transport.outreach_keys(gemeente),
                pinned=self.home.pinned(f"gemeente-{gemeente}"),
                gemeente=gemeente,
            )
        return self._keysets[gemeente]

    def seal_rows(
        self, rows: Iterable[profile.Row], transport: Transport, *, now: datetime
    ) -> list[Sealed]:
        """Turn export rows into envelopes; a row that does not fit raises RowInvalid."""
        return [self.seal_row(row, transport, now=now) for row in rows]

    def seal_row(self, row: profile.Row, transport: Transport, *, now: datetime) -> Sealed:
        """The envelope for one row; an unchanged row re-sent reuses its signed notice."""
        ref = profile.ref(row)
        jti = notice_jti(self.identity.oin, ref)
        digest = hashlib.sha256(
            json.dumps([row.values, row.attestations], sort_keys=True).encode()
        ).hexdigest()
        ledger = self.home.path / OUTBOX / f"{jti}.json"
        signed: str | None = None
        if ledger.exists():
            entry = json.loads(ledger.read_text())
            if entry.get("row") == digest:
                signed = entry["jws"]
        if signed is None:
            signed = sign_notice(self.notice(row, transport, now=now), signer=self._signer)
            write_private(ledger, json.dumps({"row": digest, "jws": signed}).encode())
        return Sealed(row.line, ref, jti, encrypt_jwt(signed, self._gateway_enc))

    def notice(self, row: profile.Row, transport: Transport, *, now: datetime) -> dict[str, Any]:
        """The notice for one row (docs/envelope.md), contact block sealed, unsigned."""
        ref = profile.ref(row)
        category = row.get("category").upper()
        if category not in CATEGORIES:
            raise RowInvalid(row.line, "category", "unknown category")
        stage = row.get("stage") or "vroeg"
        if stage not in STAGES:
            raise RowInvalid(row.line, "stage", "unknown stage")
        person = person_fields(row, category)
        if person.postcode is None:
            raise RowInvalid(row.line, "postcode", "a postcode is needed to find the municipality")
        gemeente = self._postcodes.gemeente(person.postcode)
        if gemeente is None:
            raise RowInvalid(row.line, "postcode", "not in a municipality this creditor serves")
        jti = notice_jti(self.identity.oin, ref)
        contact = {
            field: row.get(column) for column, field in CONTACT_FROM_CSV.items() if row.get(column)
        }
        keyset = self.keyset(gemeente, transport)
        tokeniser, encoder = self.tokeniser(gemeente)
        notice: dict[str, Any] = {
            "v": 1,
            "iss": self.identity.oin,
            "aud": self.gateway_id,
            "gemeente": gemeente,
            "jti": jti,
            "iat": int(now.timestamp()),
            "exp": int((now + NOTICE_LIFETIME).timestamp()),
            "ref": ref,
            "category": category,
            "stage": stage,
            "bedrag": profile.amount(row),
            "ontstaansdatum": profile.iso_date(row, "ontstaansdatum"),
            "signaaldatum": profile.iso_date(row, "signaaldatum"),
            "attestations": attestations(row),
            "tokens": notice_tokens(
                tokeniser,
                person,
                include_bsn=category in BSN_CATEGORIES,
                fuzzy=encoder.person(person),
            ),
            "contact": seal_contact(contact, jti=jti, recipients=keyset.keys),
        }
        stage_date = profile.iso_date(row, "stage_date", required=False)
        if stage_date is not None:
            notice["stageDate"] = stage_date
        if row.get("signaalpartner"):
            notice["signaalpartner"] = row.get("signaalpartner")
        return notice

    def verify_receipt(self, token: str) -> dict[str, Any]:
        """Check the receipt's signature against the pinned gateway keys."""
        return verify_receipt(token, keys=self.gateway_keys)


def notice_jti(creditor: str, ref: str) -> str:
    """The deterministic notice id (docs/envelope.md): UUIDv5 of creditor and reference."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:signaalpoort:notice:{creditor}:{ref}"))


YES = frozenset({"ja", "j", "yes", "true", "1"})
NO = frozenset({"nee", "n", "no", "false", "0"})


def attestations(row: profile.Row) -> dict[str, str | bool]:
    """The row's attestations as the notice carries them: a date stays a ``YYYY-MM-DD``
    string, ``ja``/``nee`` (or ``true``/``false``, ``1``/``0``) become booleans."""
    out: dict[str, str | bool] = {}
    for name, value in row.attestations.items():
        word = value.strip().lower()
        if word in YES or word in NO:
            out[name] = word in YES
            continue
        try:
            out[name] = date.fromisoformat(value).isoformat() if len(value) == 10 else ""
        except ValueError:
            out[name] = ""
        if not out[name]:
            raise RowInvalid(row.line, f"attest_{name}", "not a date YYYY-MM-DD nor ja/nee")
    return out


def person_fields(row: profile.Row, category: str) -> PersonFields:
    """What a row says about its person, normalised; the BSN only where the category
    may hold one. A field that cannot be normalised raises ``RowInvalid``."""
    try:
        return PersonFields.from_creditor(
            achternaam=row.get("achternaam"),
            voorvoegsel=row.get("voorvoegsel"),
            voorletters=row.get("voorletters"),
            geboortedatum=row.get("geboortedatum"),
            postcode=row.get("postcode"),
            huisnummer=row.get("huisnummer"),
            bsn=row.get("bsn") if category in BSN_CATEGORIES else "",
            voornamen=row.get("voornamen"),
        )
    except FieldInvalid as exc:
        raise RowInvalid(row.line, exc.cause, "cannot be normalised") from None


def read_export(path: Path, *, using: profile.Profile | None = None) -> list[profile.Row]:
    """All rows of an export, read with ``using`` (the default profile when None)."""
    return list(profile.read_rows(path, using))


@dataclass
class SendResult:
    """What the gateway made of a file: counts, refusal reasons, the signed receipts."""

    accepted: int = 0
    duplicate: int = 0
    refused: int = 0
    reasons: dict[str, int] | None = None
    receipts: list[str] | None = None

    def add(self, receipt: dict[str, Any], signed: str) -> None:
        reasons = self.reasons if self.reasons is not None else {}
        for item in receipt["items"]:
            outcome = item["outcome"]
            setattr(self, outcome, getattr(self, outcome) + 1)
            if outcome == "refused":
                reasons[item["reason"]] = reasons.get(item["reason"], 0) + 1
        self.reasons = reasons
        self.receipts = [*(self.receipts or []), signed]


def send_rows(
    creditor: Creditor,
    rows: Sequence[profile.Row],
    transport: Transport,
    *,
    now: datetime,
    batch_size: int = 500,
) -> SendResult:
    """Seal every row, send in batches, and verify every receipt before trusting it."""
    sealed = creditor.seal_rows(rows, transport, now=now)
    result = SendResult()
    for start in range(0, len(sealed), batch_size):
        batch = [s.envelope for s in sealed[start : start + batch_size]]
        signed = transport.submit(batch)
        receipt = creditor.verify_receipt(signed)
        if len(receipt["items"]) != len(batch) or receipt["aud"] != creditor.identity.oin:
            raise TransportFailed("the receipt does not answer this batch")
        result.add(receipt, signed)
    return result
