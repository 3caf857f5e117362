"""Loading the pseudonymised register: strict checks, atomic replacement, an audit event."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine, select

from gateway.clock import FixedClock
from gateway.errors import RegisterInvalid
from gateway.register import load_register, register_stats
from gateway.service import Gateway
from gateway.store.auditlog import AuditLog
from gateway.store.engine import reading
from gateway.store.schema import audit_events, register_persons, register_tokens

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
GEMEENTE = "0363"
AMSTERDAM = "00000001002564440000"
KID = "lk-2026-1"


def _b64(n: int = 16) -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(n)).rstrip(b"=").decode()


def header(**changes: Any) -> dict[str, Any]:
    return {"register": 1, "kid": KID, "gemeente": GEMEENTE, "created": NOW.isoformat()} | changes


def person(status: str = "resident", **changes: Any) -> dict[str, Any]:
    return {
        "pseudonym": "p-" + _b64(),
        "household": "h-" + _b64(),
        "district": "N01",
        "gemeente": GEMEENTE,
        "status": status,
        "statusDate": None if status == "resident" else "2026-03-01",
        "tokens": {"bsn": [_b64()], "naam_init_geb": [_b64(), _b64()]},
        "kid": KID,
    } | changes


def write(path: Path, records: list[Any]) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def gw(engine: Engine) -> Iterator[Gateway]:
    # Loading the register needs only the store, the audit log and the clock.
    yield Gateway(
        settings=cast(Any, None),
        engine=engine,
        keyring=cast(Any, None),
        cipher=cast(Any, None),
        audit=AuditLog(),
        clock=FixedClock(NOW),
    )


def _pseudonyms(engine: Engine) -> tuple[set[str], set[str]]:
    with reading(engine) as conn:
        persons = set(conn.execute(select(register_persons.c.pseudonym)).scalars())
        tokens = set(conn.execute(select(register_tokens.c.pseudonym)).scalars())
    return persons, tokens


def test_a_valid_register_loads_with_its_counts(gw: Gateway, tmp_path: Path) -> None:
    records = [header(), person(), person(), person("deceased"), person("moved_out")]
    records.append(person(household=None, district=None, tokens={}))
    result = load_register(
        gw, write(tmp_path / "r.jsonl", records), gemeente=GEMEENTE, by=AMSTERDAM
    )
    assert (result.persons, result.tokens, result.version) == (5, 12, 1)
    assert register_stats(gw.engine) == {
        "persons": {"deceased": 1, "moved_out": 1, "resident": 3},
        "tokens": 12,
        "version": 1,
    }
    with reading(gw.engine) as conn:
        row = conn.execute(
            select(register_persons).where(register_persons.c.pseudonym == records[-1]["pseudonym"])
        ).one()
    assert (row.household, row.district, row.status, row.version) == ("", "", "resident", 1)


def test_a_second_load_replaces_the_first_completely(gw: Gateway, tmp_path: Path) -> None:
    first = [header(), person(), person()]
    load_register(gw, write(tmp_path / "1.jsonl", first), gemeente=GEMEENTE, by=AMSTERDAM)
    second = [header(), person(), person(), person()]
    result = load_register(gw, write(tmp_path / "2.jsonl", second), gemeente=GEMEENTE, by=AMSTERDAM)
    assert (result.persons, result.tokens, result.version) == (3, 9, 2)
    expected = {r["pseudonym"] for r in second[1:]}
    assert _pseudonyms(gw.engine) == (expected, expected)
    with reading(gw.engine) as conn:
        assert set(conn.execute(select(register_persons.c.version)).scalars()) == {2}
    assert register_stats(gw.engine)["version"] == 2


BAD_LINES: dict[str, Any] = {
    "bad_json": '{"pseudonym": ',
    "not_an_object": "[1, 2]",
    "unknown_member": person(extra="x"),
    "missing_member": {k: v for k, v in person().items() if k != "statusDate"},
    "bad_pseudonym": person(pseudonym="p-short"),
    "bad_household": person(household="x-" + "A" * 22),
    "unknown_token_type": person(tokens={"naam": ["A" * 22]}),
    "bad_token": person(tokens={"bsn": ["A" * 21]}),
    "bad_status": person(status="emigrated"),
    "bad_status_date": person("deceased", statusDate="2026-02-30"),
    "wrong_gemeente": person(gemeente="0599"),
    "other_kid": person(kid="lk-other"),
}


@pytest.mark.parametrize("bad", [*BAD_LINES, "duplicate_pseudonym"])
def test_a_bad_line_is_refused_by_number_and_the_register_stays(
    gw: Gateway, tmp_path: Path, bad: str
) -> None:
    good = [header(), person(), person("deceased")]
    load_register(gw, write(tmp_path / "good.jsonl", good), gemeente=GEMEENTE, by=AMSTERDAM)
    before = _pseudonyms(gw.engine), register_stats(gw.engine)

    records: list[Any] = [header(), person(), person(), person()]
    if bad == "duplicate_pseudonym":
        records.insert(3, person(pseudonym=records[1]["pseudonym"]))
    else:
        records.insert(3, BAD_LINES[bad])
    with pytest.raises(RegisterInvalid) as caught:
        load_register(gw, write(tmp_path / "bad.jsonl", records), gemeente=GEMEENTE, by=AMSTERDAM)
    assert caught.value.line == 4
    assert caught.value.code == "register_invalid"
    assert str(caught.value).startswith("line 4")
    assert (_pseudonyms(gw.engine), register_stats(gw.engine)) == before


@pytest.mark.parametrize(
    "bad_header",
    [header(gemeente="0599"), header(register=2), header(extra=1), "not json"],
    ids=["wrong_gemeente", "wrong_version", "unknown_member", "bad_json"],
)
def test_a_bad_header_is_refused_as_line_1(gw: Gateway, tmp_path: Path, bad_header: Any) -> None:
    path = write(tmp_path / "bad.jsonl", [bad_header, person()])
    with pytest.raises(RegisterInvalid) as caught:
        load_register(gw, path, gemeente=GEMEENTE, by=AMSTERDAM)
    assert caught.value.line == 1
    assert register_stats(gw.engine)["version"] == 0


def test_the_refusal_names_no_value(gw: Gateway, tmp_path: Path) -> None:
    secret = "p-" + "S" * 21
    path = write(tmp_path / "bad.jsonl", [header(), person(pseudonym=secret)])
    with pytest.raises(RegisterInvalid) as caught:
        load_register(gw, path, gemeente=GEMEENTE, by=AMSTERDAM)
    assert secret not in caught.value.diagnostics()


def test_loading_appends_a_register_loaded_event(gw: Gateway, tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", [header(), person()])
    load_register(gw, path, gemeente=GEMEENTE, by=AMSTERDAM)
    load_register(gw, path, gemeente=GEMEENTE, by=AMSTERDAM)
    with reading(gw.engine) as conn:
        events = [json.loads(d) for d in conn.execute(select(audit_events.c.data)).scalars()]
    loaded = [e for e in events if e["action"] == "register.loaded"]
    assert [e["object"] for e in loaded] == ["version 1", "version 2"]
    assert {(e["organisation"], e["role"], e["result"]) for e in loaded} == {
        (AMSTERDAM, "municipality", "loaded")
    }
