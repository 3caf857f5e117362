"""Loading the pseudonymised register: strict checks, atomic replacement, an audit event."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Engine, insert, inspect, select
from sqlalchemy.schema import CreateTable

from gateway.clock import FixedClock
from gateway.errors import RegisterInvalid
from gateway.register import (
    TYPE_BITS,
    TYPE_NUMBERS,
    load_register,
    register_stats,
    surname_key,
    token_keys,
)
from gateway.service import Gateway
from gateway.store.auditlog import AuditLog
from gateway.store.engine import reading
from gateway.store.schema import (
    REGISTER_TABLE,
    RegisterTables,
    audit_events,
    register_tables,
    registers,
)

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


def _tables(engine: Engine) -> dict[int, RegisterTables]:
    """The register tables in the store, by version; each version has all three."""
    with reading(engine) as conn:
        found = [REGISTER_TABLE.fullmatch(name) for name in inspect(conn).get_table_names()]
    kinds: dict[int, set[str]] = {}
    for match in filter(None, found):
        assert match[1] == GEMEENTE
        kinds.setdefault(int(match[2]), set()).add(match[3])
    assert all(found == {"persons", "tokens", "surnames"} for found in kinds.values())
    return {version: register_tables(GEMEENTE, version) for version in kinds}


def _in_use(engine: Engine) -> RegisterTables:
    """The tables of the register in use."""
    with reading(engine) as conn:
        version = conn.execute(select(registers.c.version)).scalar_one()
    return register_tables(GEMEENTE, version)


def _pseudonyms(engine: Engine) -> tuple[set[str], set[str]]:
    """The pseudonyms of all versions' persons, and of the persons their tokens name."""
    persons: set[str] = set()
    tokens: set[str] = set()
    with reading(engine) as conn:
        for tables in _tables(engine).values():
            people, owned = tables.persons.c, tables.tokens.c
            persons |= set(conn.execute(select(people.pseudonym)).scalars())
            tokens |= set(
                conn.execute(
                    select(people.pseudonym).join(tables.tokens, owned.person == people.id)
                ).scalars()
            )
    return persons, tokens


def test_a_valid_register_loads_with_its_counts(gw: Gateway, tmp_path: Path) -> None:
    records = [header(), person(), person(), person("deceased"), person("moved_out")]
    records.append(person(household=None, district=None, tokens={}))
    result = load_register(
        gw, write(tmp_path / "r.jsonl", records), gemeente=GEMEENTE, by=AMSTERDAM
    )
    assert (result.persons, result.tokens, result.version) == (5, 12, 1)
    assert register_stats(gw.engine, GEMEENTE) == {
        "persons": {"deceased": 1, "moved_out": 1, "resident": 3},
        "tokens": 12,
        "version": 1,
    }
    tables = _in_use(gw.engine)
    persons = tables.persons
    with reading(gw.engine) as conn:
        row = conn.execute(
            select(persons).where(persons.c.pseudonym == records[-1]["pseudonym"])
        ).one()
        first = conn.execute(
            select(persons).where(persons.c.pseudonym == records[1]["pseudonym"])
        ).one()
        deceased = conn.execute(
            select(persons.c.status_date).where(persons.c.pseudonym == records[3]["pseudonym"])
        ).scalar_one()
        kept = conn.execute(select(registers)).one()
        first_tokens = set(
            conn.execute(
                select(tables.tokens.c.token, tables.tokens.c.type).where(
                    tables.tokens.c.person == first.id
                )
            ).all()
        )
    assert (row.id, row.household, row.district, row.status, row.types) == (
        5,
        "",
        "",
        "resident",
        0,
    )
    assert first.id == 1 and first.types == TYPE_BITS["bsn"] | TYPE_BITS["naam_init_geb"]
    assert first_tokens == {
        (key, TYPE_NUMBERS[kind])
        for kind, values in records[1]["tokens"].items()
        for key in token_keys(values)
    }
    assert deceased == date(2026, 3, 1)
    assert (kept.gemeente, kept.kid, kept.version, kept.persons, kept.tokens) == (
        GEMEENTE,
        KID,
        1,
        5,
        12,
    )
    assert kept.created == NOW and kept.loaded_by == AMSTERDAM


def test_a_second_load_takes_over_and_a_third_removes_the_first(
    gw: Gateway, tmp_path: Path
) -> None:
    first = [header(), person(), person()]
    load_register(gw, write(tmp_path / "1.jsonl", first), gemeente=GEMEENTE, by=AMSTERDAM)
    second = [header(), person(), person(), person()]
    result = load_register(gw, write(tmp_path / "2.jsonl", second), gemeente=GEMEENTE, by=AMSTERDAM)
    assert (result.persons, result.tokens, result.version) == (3, 9, 2)
    assert register_stats(gw.engine, GEMEENTE)["version"] == 2
    assert register_stats(gw.engine, GEMEENTE)["persons"]["resident"] == 3
    # The first stays for matches that began before the switch, until the next load.
    assert _versions(gw.engine) == {1, 2}
    third = [header(), person()]
    load_register(gw, write(tmp_path / "3.jsonl", third), gemeente=GEMEENTE, by=AMSTERDAM)
    assert _versions(gw.engine) == {2, 3}
    expected = {r["pseudonym"] for r in second[1:] + third[1:]}
    assert _pseudonyms(gw.engine) == (expected, expected)


def _versions(engine: Engine) -> set[int]:
    return set(_tables(engine))


def test_a_load_is_written_in_chunks_and_a_late_refusal_removes_them(
    gw: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = [header(), person()]
    load_register(gw, write(tmp_path / "good.jsonl", good), gemeente=GEMEENTE, by=AMSTERDAM)
    before = _pseudonyms(gw.engine), register_stats(gw.engine, GEMEENTE)
    monkeypatch.setattr("gateway.register.CHUNK", 4)
    records = [header(), *[person() for _ in range(10)], BAD_LINES["bad_token"]]
    with pytest.raises(RegisterInvalid) as caught:
        load_register(gw, write(tmp_path / "bad.jsonl", records), gemeente=GEMEENTE, by=AMSTERDAM)
    assert caught.value.line == 12
    assert (_pseudonyms(gw.engine), register_stats(gw.engine, GEMEENTE)) == before
    assert _versions(gw.engine) == {1}


def test_rows_left_by_a_crashed_load_are_removed_by_the_next(gw: Gateway, tmp_path: Path) -> None:
    load_register(
        gw, write(tmp_path / "1.jsonl", [header(), person()]), gemeente=GEMEENTE, by=AMSTERDAM
    )
    left = "p-" + _b64()
    tables = register_tables(GEMEENTE, 2)
    with gw.engine.begin() as conn:  # what a load killed after its first chunk leaves
        for table in tables.tables:
            conn.execute(CreateTable(table))
        conn.execute(
            insert(tables.persons).values(
                id=1,
                pseudonym=left,
                household="",
                district="",
                status="resident",
                labels="[]",
                types=0,
            )
        )
        conn.execute(insert(tables.tokens).values(token=token_keys([_b64()])[0], type=0, person=1))
    assert _versions(gw.engine) == {1, 2}
    assert register_stats(gw.engine, GEMEENTE)["persons"]["resident"] == 1
    result = load_register(
        gw, write(tmp_path / "2.jsonl", [header(), person()]), gemeente=GEMEENTE, by=AMSTERDAM
    )
    assert result.version == 2 and _versions(gw.engine) == {1, 2}
    assert register_stats(gw.engine, GEMEENTE)["persons"]["resident"] == 1
    assert left not in _pseudonyms(gw.engine)[0]


BAD_LINES: dict[str, Any] = {
    "bad_json": '{"pseudonym": ',
    "not_an_object": "[1, 2]",
    "unknown_member": person(extra="x"),
    "missing_member": {k: v for k, v in person().items() if k != "statusDate"},
    "bad_pseudonym": person(pseudonym="p-short"),
    "bad_household": person(household="x-" + "A" * 22),
    "unknown_token_type": person(tokens={"naam": ["A" * 22]}),
    "bad_token": person(tokens={"bsn": ["A" * 21]}),
    "bad_fuzzy": person(fuzzy={"naam": ["A" * 85]}),
    "unknown_fuzzy_field": person(fuzzy={"initialen": ["A" * 42 + "Q"]}),
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
    before = _pseudonyms(gw.engine), register_stats(gw.engine, GEMEENTE)

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
    assert (_pseudonyms(gw.engine), register_stats(gw.engine, GEMEENTE)) == before


@pytest.mark.parametrize(
    "bad_header",
    [
        header(gemeente="0599"),
        header(register=2),
        header(extra=1),
        "not json",
        header(created="2026-11-22T09:00:00"),
        header(created="yesterday"),
    ],
    ids=[
        "wrong_gemeente",
        "wrong_version",
        "unknown_member",
        "bad_json",
        "naive_created",
        "bad_created",
    ],
)
def test_a_bad_header_is_refused_as_line_1(gw: Gateway, tmp_path: Path, bad_header: Any) -> None:
    path = write(tmp_path / "bad.jsonl", [bad_header, person()])
    with pytest.raises(RegisterInvalid) as caught:
        load_register(gw, path, gemeente=GEMEENTE, by=AMSTERDAM)
    assert caught.value.line == 1
    assert register_stats(gw.engine, GEMEENTE)["version"] == 0


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
    assert [e["object"] for e in loaded] == ["0363 version 1", "0363 version 2"]
    assert {(e["organisation"], e["role"], e["result"]) for e in loaded} == {
        (AMSTERDAM, "municipality", "loaded")
    }


def test_each_gemeente_keeps_its_own_register(gw: Gateway, tmp_path: Path) -> None:
    ours = [header(), person(), person()]
    load_register(gw, write(tmp_path / "a.jsonl", ours), gemeente=GEMEENTE, by=AMSTERDAM)
    theirs = [header(gemeente="0599")] + [person(gemeente="0599") for _ in range(3)]
    load_register(gw, write(tmp_path / "b.jsonl", theirs), gemeente="0599", by="0" * 20)
    again = [header(), person()]
    load_register(gw, write(tmp_path / "c.jsonl", again), gemeente=GEMEENTE, by=AMSTERDAM)
    assert register_stats(gw.engine, GEMEENTE)["version"] == 2
    assert register_stats(gw.engine, GEMEENTE)["persons"]["resident"] == 1
    assert register_stats(gw.engine, "0599")["persons"]["resident"] == 3
    assert register_stats(gw.engine, "0599")["version"] == 1


def labels_header(**changes: Any) -> dict[str, Any]:
    return {"labels": 1, "gemeente": GEMEENTE, "created": NOW.isoformat()} | changes


def test_labels_load_with_their_register_and_unknown_persons_are_dropped(
    gw: Gateway, tmp_path: Path
) -> None:
    records = [header(), person(), person()]
    team = "00000001002564440002"
    labels = [
        labels_header(),
        {"pseudonym": records[1]["pseudonym"], "labels": [{"label": "schuldhulp", "team": team}]},
        {"pseudonym": "p-" + _b64(), "labels": [{"label": "geregelde_betaling", "team": None}]},
    ]
    result = load_register(
        gw,
        write(tmp_path / "r.jsonl", records),
        gemeente=GEMEENTE,
        by=AMSTERDAM,
        labels=write(tmp_path / "l.jsonl", labels),
    )
    assert (result.labelled, result.labels_dropped) == (1, 1)
    with reading(gw.engine) as conn:
        persons = _in_use(gw.engine).persons
        rows = conn.execute(select(persons.c.pseudonym, persons.c.labels))
        stored = {pseudonym: labels for pseudonym, labels in rows}
    assert json.loads(stored[records[1]["pseudonym"]]) == [{"label": "schuldhulp", "team": team}]
    assert json.loads(stored[records[2]["pseudonym"]]) == []


@pytest.mark.parametrize(
    ("line", "bad"),
    [
        (1, labels_header(gemeente="0599")),
        (1, labels_header(labels=2)),
        (2, {"pseudonym": "p-" + "A" * 22, "labels": [{"label": "vip", "team": None}]}),
        (2, {"pseudonym": "p-" + "A" * 22, "labels": [{"label": "schuldhulp", "team": None}]}),
        (2, {"pseudonym": "p-" + "A" * 22, "labels": [{"label": "schuldhulp", "team": "12"}]}),
        (2, {"pseudonym": "p-" + "A" * 22, "labels": []}),
    ],
    ids=[
        "other_gemeente",
        "version",
        "unknown_label",
        "schuldhulp_without_team",
        "bad_team",
        "none",
    ],
)
def test_bad_labels_refuse_the_whole_load(
    gw: Gateway, tmp_path: Path, line: int, bad: dict[str, Any]
) -> None:
    records = [header(), person()]
    labels = [bad] if line == 1 else [labels_header(), bad]
    with pytest.raises(RegisterInvalid) as caught:
        load_register(
            gw,
            write(tmp_path / "r.jsonl", records),
            gemeente=GEMEENTE,
            by=AMSTERDAM,
            labels=write(tmp_path / "l.jsonl", labels),
        )
    assert caught.value.line == line
    assert register_stats(gw.engine, GEMEENTE)["version"] == 0


def test_a_refused_load_is_audited_with_its_line_and_no_value(gw: Gateway, tmp_path: Path) -> None:
    secret = "p-" + "S" * 21
    path = write(tmp_path / "bad.jsonl", [header(), person(), person(pseudonym=secret)])
    with pytest.raises(RegisterInvalid):
        load_register(gw, path, gemeente=GEMEENTE, by=AMSTERDAM)
    with reading(gw.engine) as conn:
        events = [json.loads(d) for d in conn.execute(select(audit_events.c.data)).scalars()]
    [refused] = [e for e in events if e["action"] == "register.refused"]
    assert (refused["object"], refused["reason"], refused["line"]) == (
        GEMEENTE,
        "register_invalid",
        "3",
    )
    assert refused["organisation"] == AMSTERDAM
    assert secret not in json.dumps(events)


def test_the_load_counts_the_persons_carrying_each_surname_encoding(
    gw: Gateway, tmp_path: Path
) -> None:
    jansen, vries = (secrets.token_bytes(64) for _ in range(2))
    encoded = [base64.urlsafe_b64encode(e).rstrip(b"=").decode() for e in (jansen, vries)]
    records = [
        header(),
        person(fuzzy={"naam": encoded}),  # a double name: each part once
        person(fuzzy={"naam": encoded[:1]}),
        person(fuzzy={"naam": encoded[:1]}),
        person(),  # no encodings
    ]
    load_register(gw, write(tmp_path / "r.jsonl", records), gemeente=GEMEENTE, by=AMSTERDAM)
    with reading(gw.engine) as conn:
        rows = conn.execute(select(*_in_use(gw.engine).surnames.c)).all()
    counts = {key: persons for key, persons in rows}
    assert counts == {surname_key(jansen): 3, surname_key(vries): 1}


def test_a_surname_key_is_a_hash_not_the_encodings_own_bytes() -> None:
    one = secrets.token_bytes(64)
    other = one[:8] + secrets.token_bytes(56)
    assert surname_key(one) == surname_key(bytes(one))
    assert surname_key(one) != surname_key(other)
    assert -(2**63) <= surname_key(one) < 2**63


def test_a_token_is_stored_as_its_first_eight_bytes() -> None:
    raws = [secrets.token_bytes(16) for _ in range(200)]
    tokens = [base64.urlsafe_b64encode(raw).rstrip(b"=").decode() for raw in raws]
    assert token_keys(tokens) == [int.from_bytes(raw[:8], "big", signed=True) for raw in raws]
    assert token_keys(["A" * 22, "_" * 11 + "A" * 11]) == [0, -1]
    assert token_keys([]) == []


@pytest.mark.parametrize("bad", ["A" * 21, "A" * 23, "A" * 10 + "+" + "A" * 11, "A/" + "A" * 20])
def test_a_token_that_is_not_22_characters_of_base64url_has_no_key(bad: str) -> None:
    with pytest.raises(ValueError, match="token"):
        token_keys([_b64(), bad, _b64()])
