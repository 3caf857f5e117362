"""The municipality's objection records, and the creditor's attestations as a notice
carries them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from adapters import profile
from adapters.creditor import attestations
from adapters.errors import RowInvalid
from adapters.objection import objection, objection_from_brp
from adapters.register import PseudonymKey, read_brp
from keys.tokens import LinkageSecret, PersonFields, Tokeniser

BRP = Path(__file__).resolve().parents[2] / "adapters" / "demo" / "brp.csv"
NOW = datetime(2026, 11, 22, tzinfo=UTC)


def test_an_objection_from_the_brp_names_the_pseudonym_and_strong_tokens_only() -> None:
    rows = list(read_brp(BRP))
    pseudonyms = PseudonymKey.generate()
    tokeniser = Tokeniser(LinkageSecret.generate(now=NOW))
    record = objection_from_brp(
        rows, rows[0].bsn, pseudonyms=pseudonyms, ref="B-1", gemeente="0363",
        tokeniser=tokeniser, starts=date(2026, 11, 1),
    )  # fmt: skip
    assert record is not None
    assert record["person"] == pseudonyms.person(rows[0].bsn)
    assert set(record["tokens"]["values"]) <= {"bsn", "naam_init_geb", "pc_hnr_geb"}
    assert rows[0].bsn not in str(record)
    assert objection_from_brp(rows, "000000000", pseudonyms=pseudonyms, ref="B-2",
                              gemeente="0363", tokeniser=tokeniser,
                              starts=date(2026, 11, 1)) is None  # fmt: skip


def test_an_objection_without_birth_date_or_bsn_cannot_single_out_a_person() -> None:
    person = PersonFields.from_creditor(
        achternaam="Jansen", voorvoegsel="", voorletters="J.", geboortedatum="",
        postcode="1053DX", huisnummer="112", bsn="",
    )  # fmt: skip
    with pytest.raises(RowInvalid):
        objection(
            ref="B-3", gemeente="0363", tokeniser=Tokeniser(LinkageSecret.generate(now=NOW)),
            person=person, pseudonym=None, starts=date(2026, 11, 1),
        )  # fmt: skip


def test_attestations_become_dates_and_booleans() -> None:
    row = profile.Row(2, {}, {"a": "2026-10-01", "b": "ja", "c": "Nee", "d": "true"})
    assert attestations(row) == {"a": "2026-10-01", "b": True, "c": False, "d": True}


@pytest.mark.parametrize("value", ["misschien", "2026-13-01", "01-10-2026"])
def test_an_attestation_neither_date_nor_yes_no_refuses_the_row(value: str) -> None:
    with pytest.raises(RowInvalid) as refused:
        attestations(profile.Row(3, {}, {"herinnering": value}))
    assert (refused.value.line, refused.value.column) == (3, "attest_herinnering")
