"""The notice schema (docs/envelope.md, "Notice") as the gateway applies it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.schema import Notice, notice_jti
from keys.bloom import decode

ISS = "00000003900000010000"
TOKEN = "A" * 21 + "Q"
ENCODING = "A" * 85 + "Q"  # 64 bytes: a fuzzy encoding's size


def _notice(**changes: Any) -> dict[str, Any]:
    notice: dict[str, Any] = {
        "v": 1,
        "iss": ISS,
        "aud": "gw",
        "gemeente": "0363",
        "jti": notice_jti(ISS, "REF-1"),
        "iat": 1,
        "exp": 2,
        "ref": "REF-1",
        "category": "HUUR",
        "stage": "vroeg",
        "bedrag": "12.50",
        "ontstaansdatum": "2026-08-01",
        "signaaldatum": "2026-11-01",
        "tokens": {"kid": "lk-1", "values": {"naam_init_geb": [TOKEN]}},
        "contact": {},
    }
    notice.update(changes)
    return notice


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=64))
def test_notice_jti_is_the_rfc_uuid5_of_creditor_and_reference(creditor: str, ref: str) -> None:
    name = f"urn:signaalpoort:notice:{creditor}:{ref}"
    assert notice_jti(creditor, ref) == str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def test_a_well_formed_notice_is_accepted() -> None:
    notice = Notice.model_validate(_notice())
    assert notice.category == "HUUR" and not notice.crisis


@pytest.mark.parametrize(
    "changes",
    [
        {"extra": 1},
        {"bedrag": "12,50"},
        {"bedrag": 12.5},
        {"jti": notice_jti(ISS, "OTHER")},
        {"stage": "ontruiming"},
        {"stageDate": "2026-12-01"},
        {"ontstaansdatum": "2026-12-01"},
        {"signaaldatum": "2026-11-1"},
        {"tokens": {"kid": "lk-1", "values": {"bsn": [TOKEN]}}},
        {"tokens": {"kid": "lk-1", "values": {}}},
        {"tokens": {"kid": "lk-1", "values": {"naam_init_geb": ["A" * 21 + "B"]}}},
        {"tokens": {"kid": "lk-1", "values": {"naam_init_geb": [TOKEN]}, "fuzzy": []}},
        {"tokens": {"kid": "lk-1", "values": {"naam_init_geb": [TOKEN]}, "fuzzy": {"naam": []}}},
        {
            "tokens": {
                "kid": "lk-1",
                "values": {"naam_init_geb": [TOKEN]},
                "fuzzy": {"initialen": [ENCODING]},
            }
        },
        {
            "tokens": {
                "kid": "lk-1",
                "values": {"naam_init_geb": [TOKEN]},
                "fuzzy": {"geb": [ENCODING[:-1]]},
            }
        },
        {
            "tokens": {
                "kid": "lk-1",
                "values": {"naam_init_geb": [TOKEN]},
                "fuzzy": {"geb": ["A" * 85 + "B"]},
            }
        },
        {"category": "ONBEKEND"},
        {"v": 2},
    ],
    ids=lambda c: ",".join(c),
)
def test_a_notice_outside_the_schema_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Notice.model_validate(_notice(**changes))


def test_fuzzy_encodings_of_the_carried_fields_are_accepted() -> None:
    fuzzy = {"naam": [ENCODING, ENCODING], "adres": [ENCODING], "geb": [ENCODING]}
    tokens = {"kid": "lk-1", "values": {"naam_init_geb": [TOKEN]}, "fuzzy": fuzzy}
    checked = Notice.model_validate(_notice(tokens=tokens)).tokens
    assert checked.fuzzy == fuzzy
    assert checked.encodings == decode(fuzzy)


def test_a_notice_without_fuzzy_encodings_has_none_to_compare() -> None:
    tokens = {"kid": "lk-1", "values": {"naam_init_geb": [TOKEN]}}
    assert Notice.model_validate(_notice(tokens=tokens)).tokens.encodings == {}


def test_a_bsn_token_is_allowed_for_health_insurers() -> None:
    tokens = {"kid": "lk-1", "values": {"bsn": [TOKEN]}}
    assert Notice.model_validate(_notice(category="ZORG", tokens=tokens)).tokens.values["bsn"]


def test_later_stages_are_crisis_signals() -> None:
    notice = Notice.model_validate(_notice(stage="ontruiming", stageDate="2026-12-01"))
    assert notice.crisis
