"""The notice as the gateway accepts it (docs/envelope.md, "Notice").

Checked only after the envelope's signature verified; a notice that does not fit is
refused as ``schema_invalid``. Unknown members are refused.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    model_validator,
)

from keys import bloom, tokens

OINStr = Annotated[str, StringConstraints(pattern=r"^[0-9]{20}$")]
GemeenteCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]
Amount = Annotated[str, StringConstraints(pattern=r"^(0|[1-9][0-9]{0,8})\.[0-9]{2}$")]
Ref = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
# 16 bytes in canonical base64url: the last of 22 characters carries 4 zero bits.
Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{21}[AQgw]$")]
AttestationName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z]{1,40}$")]

_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class Category(StrEnum):
    HUUR = "HUUR"
    ENERGIE = "ENERGIE"
    EINDELEVERING = "EINDELEVERING"
    DRINKWATER = "DRINKWATER"
    ZORG = "ZORG"
    HYPOTHEEK = "HYPOTHEEK"
    BELASTINGDIENST = "BELASTINGDIENST"
    TOESLAGEN = "TOESLAGEN"
    GEMEENTEBELASTING = "GEMEENTEBELASTING"


class Stage(StrEnum):
    VROEG = "vroeg"
    AANMANING = "aanmaning"
    DAGVAARDING = "dagvaarding"
    VONNIS = "vonnis"
    ONTRUIMING = "ontruiming"
    AFSLUITING = "afsluiting"


DATED_STAGES = frozenset({Stage.ONTRUIMING, Stage.AFSLUITING})
TOKEN_TYPES = frozenset(tokens.TOKEN_TYPES)
BSN_CATEGORIES = frozenset({Category.ZORG})

NOTICE_NAMESPACE = uuid.NAMESPACE_URL


def notice_jti(creditor: str, ref: str) -> str:
    """The deterministic notice id: UUIDv5 over the creditor's OIN and its reference.

    The same value as ``uuid.uuid5`` (RFC 9562 section 5.5), without building UUID
    objects: the intake derives it for every notice.
    """
    name = f"urn:signaalpoort:notice:{creditor}:{ref}".encode()
    digest = bytearray(
        hashlib.sha1(NOTICE_NAMESPACE.bytes + name, usedforsecurity=False).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class MatchTokens(_Strict):
    kid: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    values: Annotated[
        dict[str, Annotated[list[Token], Field(min_length=1, max_length=16)]], Field(min_length=1)
    ]
    fuzzy: dict[str, list[str]] | None = None
    """The fuzzy encodings (``keys.bloom.decode``), made with the same secret."""
    _encodings: dict[str, list[bytes]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _known_types(self) -> MatchTokens:
        unknown = set(self.values) - TOKEN_TYPES
        if unknown:
            raise ValueError("unknown token type")
        if self.fuzzy is not None:
            self._encodings = bloom.decode(self.fuzzy)
        return self

    @property
    def encodings(self) -> dict[str, list[bytes]]:
        """``fuzzy`` decoded, as the matcher compares it (empty without)."""
        return self._encodings


class Notice(_Strict):
    """A verified notice's claims, schema-checked."""

    v: Literal[1]
    iss: OINStr
    aud: str
    gemeente: GemeenteCode
    jti: str
    iat: int
    exp: int
    ref: Ref
    category: Annotated[Category, Field(strict=False)]
    stage: Annotated[Stage, Field(strict=False)]
    stageDate: date | None = None  # noqa: N815 (wire name)
    bedrag: Amount
    ontstaansdatum: date
    signaaldatum: date
    crisissignaal: bool | None = None
    warmeOverdracht: bool | None = None  # noqa: N815 (wire name)
    signaalpartner: Annotated[str, StringConstraints(max_length=200)] | None = None
    attestations: dict[AttestationName, bool | date] | None = None
    tokens: MatchTokens
    contact: dict[str, Any]

    @model_validator(mode="before")
    @classmethod
    def _dates_from_strings(cls, data: Any) -> Any:
        # Strict mode takes dates only as ISO strings of exactly YYYY-MM-DD.
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name in ("stageDate", "ontstaansdatum", "signaaldatum"):
            if name in out and out[name] is not None:
                out[name] = _iso_date(out[name])
        if isinstance(out.get("attestations"), dict):
            out["attestations"] = {
                k: v if isinstance(v, bool) else _iso_date(v)
                for k, v in out["attestations"].items()
            }
        return out

    @model_validator(mode="after")
    def _consistent(self) -> Notice:
        if self.jti != notice_jti(self.iss, self.ref):
            raise ValueError("jti is not derived from iss and ref")
        if (self.stage in DATED_STAGES) != (self.stageDate is not None):
            raise ValueError("stageDate belongs with ontruiming and afsluiting only")
        if self.ontstaansdatum > self.signaaldatum:
            raise ValueError("ontstaansdatum after signaaldatum")
        if "bsn" in self.tokens.values and self.category not in BSN_CATEGORIES:
            raise ValueError("a bsn token is not allowed for this category")
        return self

    @property
    def crisis(self) -> bool:
        """Later stages are crisis signals and go to the front of the queue."""
        return bool(self.crisissignaal) or self.stage in (
            Stage.DAGVAARDING,
            Stage.VONNIS,
            Stage.ONTRUIMING,
            Stage.AFSLUITING,
        )


def _iso_date(value: Any) -> date:
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("dates are YYYY-MM-DD strings")
    return date.fromisoformat(value)
