"""The known-answer vectors in tests/vectors: every file opens, or fails, as it says.

The vectors are the executable half of docs/envelope.md: one case per file, each with the
outcome the specification demands. A few cases state rules that ``keys`` does not
enforce yet; they are listed in ``KNOWN_DEVIATIONS`` with the proposed fix and run as
strict ``xfail``, so the day the fix lands the suite says so and the entry must go.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from keys.contact import check_contact_block, open_contact
from keys.envelope import SignerKey, open_envelope
from keys.errors import ENVELOPE_CAUSES, ContactBlockInvalid, EnvelopeInvalid, ReceiptInvalid
from keys.jwk import OIN, KeyID, PrivateKey
from keys.receipt import verify_receipt
from tests.vectors import generate

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors"
CATALOGUE = ROOT / "docs" / "reason-codes.md"

KNOWN_DEVIATIONS: dict[str, str] = {}


def _files(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).glob("*.json"))


def _params(kind: str) -> list[Any]:
    params = []
    for path in _files(kind):
        reason = KNOWN_DEVIATIONS.get(f"{kind}/{path.stem}")
        marks = [pytest.mark.xfail(reason=reason, strict=True, raises=AssertionError)]
        params.append(pytest.param(path, id=path.stem, marks=marks if reason else []))
    return params


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


@pytest.fixture(scope="module")
def keys() -> dict[str, PrivateKey]:
    by_name = generate.load_keys(create=False)
    return {key.kid: key for key in by_name.values()}


def _error(exc: EnvelopeInvalid | ContactBlockInvalid | ReceiptInvalid) -> dict[str, Any]:
    return {"outcome": "error", "code": exc.code, "cause": exc.cause}


@pytest.mark.parametrize("path", _params("envelope"))
def test_envelope_vector(path: Path, keys: dict[str, PrivateKey]) -> None:
    vector = _load(path)
    registered = {
        s["kid"]: SignerKey(
            keys[s["kid"]].public(), OIN(s["owner"]), revoked=s["kid"] in vector["revoked_kids"]
        )
        for s in vector["signers"]
    }

    def signer_key(kid: KeyID) -> SignerKey | None:
        return registered.get(kid)

    try:
        opened = open_envelope(
            vector["input"],
            intake_keys=[keys[kid] for kid in vector["intake_kids"]],
            signer_key=signer_key,
            sender=OIN(vector["sender"]),
            audience=vector["audience"],
            now=datetime.fromisoformat(vector["now"]),
        )
    except EnvelopeInvalid as exc:
        outcome = _error(exc)
    else:
        outcome = {
            "outcome": "ok",
            "claims": opened.claims,
            "payloadSha256": opened.payload_sha256,
            "signerKid": opened.signer_kid,
        }
    assert outcome == vector["expected"]


@pytest.mark.parametrize("path", _params("contact"))
def test_contact_vector(path: Path, keys: dict[str, PrivateKey]) -> None:
    vector = _load(path)
    try:
        recipients = check_contact_block(vector["input"], jti=vector["jti"])
        contact = open_contact(
            vector["input"], keys=[keys[kid] for kid in vector["keys"]], jti=vector["jti"]
        )
    except ContactBlockInvalid as exc:
        outcome = _error(exc)
    else:
        outcome = {"outcome": "ok", "recipients": recipients, "contact": contact}
    assert outcome == vector["expected"]


@pytest.mark.parametrize("path", _params("receipt"))
def test_receipt_vector(path: Path, keys: dict[str, PrivateKey]) -> None:
    vector = _load(path)
    try:
        receipt = verify_receipt(
            vector["input"], keys=[keys[kid].public() for kid in vector["gateway_kids"]]
        )
    except ReceiptInvalid as exc:
        outcome = _error(exc)
    else:
        outcome = {"outcome": "ok", "receipt": receipt}
    assert outcome == vector["expected"]


def _expected_causes(kind: str, *, with_deviations: bool = False) -> set[str]:
    return {
        _load(path)["expected"].get("cause", "")
        for path in _files(kind)
        if with_deviations or f"{kind}/{path.stem}" not in KNOWN_DEVIATIONS
    } - {""}


def _catalogued() -> set[str]:
    return set(re.findall(r"`([a-z_]+)`", CATALOGUE.read_text(encoding="utf-8")))


def test_every_envelope_cause_has_a_vector_the_implementation_meets() -> None:
    assert set(ENVELOPE_CAUSES) - _expected_causes("envelope") == set()


def test_every_envelope_cause_is_in_the_reason_code_catalogue() -> None:
    assert set(ENVELOPE_CAUSES) - _catalogued() == set()


def test_vectors_name_only_catalogued_causes() -> None:
    envelope = _expected_causes("envelope", with_deviations=True)
    assert envelope - set(ENVELOPE_CAUSES) == set()
    for kind in ("contact", "receipt"):
        assert _expected_causes(kind, with_deviations=True) - _catalogued() == set(), kind


def test_every_known_deviation_names_an_existing_vector() -> None:
    for name in KNOWN_DEVIATIONS:
        assert (VECTORS / f"{name}.json").is_file(), name


def test_each_kind_has_cases_that_pass_and_cases_that_fail() -> None:
    for kind in generate.KINDS:
        outcomes = {_load(path)["expected"]["outcome"] for path in _files(kind)}
        assert outcomes == {"ok", "error"}, kind


def test_committed_vectors_are_what_the_generator_writes() -> None:
    cases = generate.build(generate.load_keys(create=False))
    assert [p.relative_to(VECTORS).as_posix() for p in generate.stale(cases)] == []


def test_test_keys_are_marked_as_published_test_keys() -> None:
    doc = json.loads(generate.KEYS_FILE.read_text(encoding="utf-8"))
    assert doc["warning"] == "TEST KEYS ONLY - published, never use them for anything real"
    assert set(doc["keys"]) == set(generate.KEY_ROLES)
