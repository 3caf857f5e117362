"""Key objects: P-256 keys with RFC 7638 thumbprints as key ids.

Every other package handles keys through ``PrivateKey`` and ``PublicKey`` only, so
that ``joserfc`` and ``cryptography`` stay inside ``keys``.
"""

from __future__ import annotations

import json
from typing import Any, Literal, NewType

from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from keys.errors import KeyringError

KeyID = NewType("KeyID", str)
OIN = NewType("OIN", str)

Use = Literal["sig", "enc"]
USES: tuple[Use, ...] = ("sig", "enc")
ALG_FOR_USE: dict[str, str] = {"sig": "ES256", "enc": "ECDH-ES+A256KW"}

_PUBLIC_MEMBERS = ("kty", "crv", "x", "y", "kid", "use", "alg")


class PublicKey:
    """A P-256 public key with its ``kid`` and intended ``use``."""

    __slots__ = ("_key", "kid", "use")

    def __init__(self, key: ECKey, use: Use) -> None:
        self._key = key
        self.kid = KeyID(key.kid or key.thumbprint())
        self.use: Use = use

    @classmethod
    def from_jwk(cls, jwk: dict[str, Any]) -> PublicKey:
        """Import a public JWK; refuses private members, other curves and a wrong kid."""
        if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
            raise KeyringError("only EC P-256 keys are accepted")
        if "d" in jwk:
            raise KeyringError("a public key set must not carry private members")
        use = jwk.get("use")
        if use not in USES:
            raise KeyringError("a key must say its use: sig or enc")
        members = {k: jwk[k] for k in _PUBLIC_MEMBERS if k in jwk}
        try:
            key = ECKey.import_key(members)
        except (JoseError, ValueError, TypeError) as exc:
            raise KeyringError("not a valid P-256 public key") from exc
        thumb = key.thumbprint()
        if members.get("kid", thumb) != thumb:
            raise KeyringError("a kid must be the key's RFC 7638 thumbprint")
        key = ECKey.import_key({**members, "kid": thumb})
        return cls(key, use)

    @property
    def jwk(self) -> dict[str, Any]:
        """The public JWK, with ``kid``, ``use`` and ``alg``."""
        d = self._key.as_dict(private=False)
        d["use"] = self.use
        d["alg"] = ALG_FOR_USE[self.use]
        d["kid"] = self.kid
        return {k: d[k] for k in _PUBLIC_MEMBERS if k in d}

    @property
    def jose(self) -> ECKey:
        """The underlying joserfc key (for use inside ``keys`` only)."""
        return self._key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.kid == self.kid and other.use == self.use

    def __hash__(self) -> int:
        return hash((self.kid, self.use))

    def __repr__(self) -> str:
        return f"PublicKey(kid={self.kid!r}, use={self.use!r})"


class PrivateKey:
    """A P-256 private key; ``repr`` and ``str`` never show key material."""

    __slots__ = ("_key", "kid", "use")

    def __init__(self, key: ECKey, use: Use) -> None:
        if not key.is_private:
            raise KeyringError("a private key is needed")
        self._key = key
        self.kid = KeyID(key.kid or key.thumbprint())
        self.use: Use = use

    @classmethod
    def generate(cls, use: Use) -> PrivateKey:
        """A fresh P-256 key whose kid is its RFC 7638 thumbprint."""
        key = ECKey.generate_key("P-256", private=True, auto_kid=False)
        key = ECKey.import_key({**key.as_dict(private=True), "kid": key.thumbprint()})
        return cls(key, use)

    @classmethod
    def from_jwk(cls, jwk: dict[str, Any]) -> PrivateKey:
        """Import a private JWK written by ``to_jwk``."""
        if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
            raise KeyringError("only EC P-256 keys are accepted")
        use = jwk.get("use")
        if use not in USES or "d" not in jwk:
            raise KeyringError("a private key with its use is needed")
        try:
            key = ECKey.import_key({k: jwk[k] for k in (*_PUBLIC_MEMBERS, "d") if k in jwk})
        except (JoseError, ValueError, TypeError) as exc:
            raise KeyringError("not a valid P-256 private key") from exc
        if jwk.get("kid") != key.thumbprint():
            raise KeyringError("a kid must be the key's RFC 7638 thumbprint")
        return cls(key, use)

    def to_jwk(self) -> dict[str, Any]:
        """The private JWK (for the party's own keyring file only)."""
        d = dict(self.public().jwk)
        d["d"] = self._key.as_dict(private=True)["d"]
        return d

    def public(self) -> PublicKey:
        """The matching public key."""
        members = {k: v for k, v in self._key.as_dict(private=False).items() if k != "d"}
        return PublicKey(ECKey.import_key(members), self.use)

    @property
    def jose(self) -> ECKey:
        """The underlying joserfc key (for use inside ``keys`` only)."""
        return self._key

    def __repr__(self) -> str:
        return f"PrivateKey(kid={self.kid!r}, use={self.use!r})"


def jwks(keys: list[PublicKey]) -> dict[str, Any]:
    """A JWK Set document of public keys."""
    return {"keys": [k.jwk for k in keys]}


def public_keys_from_jwks(doc: dict[str, Any] | str | bytes) -> list[PublicKey]:
    """Parse a JWK Set of public keys; every member must be a valid public key."""
    if isinstance(doc, str | bytes):
        try:
            doc = json.loads(doc)
        except ValueError as exc:
            raise KeyringError("a JWK Set must be JSON") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise KeyringError("a JWK Set needs a keys array")
    return [PublicKey.from_jwk(k) for k in doc["keys"]]
