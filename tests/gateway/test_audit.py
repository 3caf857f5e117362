"""Canonical audit events and the event builder."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.audit import (
    AuditEvent,
    canonical_event,
    chain,
    checkpoint_message,
    format_time,
    leaf_hash,
    new_trace_id,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"

text = st.text(st.characters(codec="utf-8"), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(text, json_values, max_size=8)


def reordered(value: Any, rnd: random.Random) -> Any:
    """The same value with every object's keys inserted in a shuffled order."""
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        return {key: reordered(item, rnd) for key, item in items}
    if isinstance(value, list):
        return [reordered(item, rnd) for item in value]
    return value


def test_canonical_bytes_are_sorted_compact_utf8() -> None:
    event = {"b": 1, "a": "Zoë", "c": {"y": [True, None], "x": "€"}}
    assert canonical_event(event) == '{"a":"Zoë","b":1,"c":{"x":"€","y":[true,null]}}'.encode()


@settings(max_examples=60)
@given(event=json_objects, rnd=st.randoms(use_true_random=False))
def test_canonical_bytes_ignore_insertion_order_and_parse_back(
    event: dict[str, Any], rnd: random.Random
) -> None:
    data = canonical_event(event)
    assert canonical_event(reordered(event, rnd)) == data
    assert json.loads(data) == event


@settings(max_examples=60)
@given(event=st.dictionaries(text, st.none() | st.booleans() | st.integers() | text, max_size=8))
def test_flat_events_are_written_as_the_standard_library_writes_them(
    event: dict[str, Any],
) -> None:
    # Flat events, integers beyond 64 bits included, take a faster writer; the bytes
    # the hashes cover must not depend on which one wrote them.
    expected = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_event(event) == expected.encode()


@pytest.mark.parametrize(
    "event",
    [
        {"bedrag": 12.5},
        {"nested": {"deeper": [1, 2, 0.0]}},
        {"nan": float("nan")},
        {"inf": [float("inf")]},
    ],
)
def test_canonical_event_refuses_floats(event: dict[str, Any]) -> None:
    with pytest.raises(TypeError, match="float"):
        canonical_event(event)


@pytest.mark.parametrize(
    "event",
    [
        {1: "one"},
        {"nested": {("a", "b"): 1}},
        {"nested": [{None: 1}]},
    ],
)
def test_canonical_event_refuses_non_string_keys(event: dict[Any, Any]) -> None:
    with pytest.raises(TypeError, match="keys must be strings"):
        canonical_event(event)


@pytest.mark.parametrize("value", [b"bytes", {"a", "set"}, datetime(2026, 1, 1), object()])
def test_canonical_event_refuses_other_types(value: object) -> None:
    with pytest.raises(TypeError):
        canonical_event({"value": value})


def test_canonical_event_refuses_non_mappings() -> None:
    with pytest.raises(TypeError):
        canonical_event([("a", 1)])  # type: ignore[arg-type]  # the point of the test


def test_leaf_and_chain_hashes_are_domain_separated() -> None:
    data = b'{"a":1}'
    assert leaf_hash(data) != chain(b"", data)
    assert leaf_hash(data) == hashlib.sha256(b"\x00" + data).digest()


def test_checkpoint_message_layout() -> None:
    root = bytes(range(32))
    assert checkpoint_message(42, root) == (
        b"signaalpoort-audit-checkpoint/v1\n42\n" + root.hex().encode()
    )


def event(**overrides: Any) -> AuditEvent:
    fields: dict[str, Any] = {
        "action": "notice.accepted",
        "object": "2b1f4e5c-8d7a-5f3e-9c1b-0a2d4e6f8a1c",
        "result": "accepted",
        "actor": "00000001234567890000",
        "organisation": "00000001234567890000",
        "role": "creditor",
        "activity": "vroegsignalering: ontvangst signaal",
        "legal_basis": "Wgs art. 3 lid 3",
        "time": "2026-05-01T12:00:00.000000Z",
        "trace_id": TRACE_ID,
    }
    fields.update(overrides)
    return AuditEvent(**fields)


def test_to_dict_drops_none_values() -> None:
    as_dict = event().to_dict()
    assert "reason" not in as_dict
    assert "subject" not in as_dict
    assert "on_behalf_of" not in as_dict
    assert as_dict["trace_id"] == TRACE_ID
    assert event(subject="p-7f3a", reason="objection").to_dict()["subject"] == "p-7f3a"


def test_events_are_frozen() -> None:
    with pytest.raises(ValidationError):
        event().action = "other"  # type: ignore[misc]  # the point of the test


def test_events_refuse_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        event(naam="Jansen")


@pytest.mark.parametrize(
    "trace_id",
    ["", "4BF92F3577B34DA6A3CE929D0E0E4736", "0" * 32, "4bf92f3577b34da6a3ce929d0e0e473", "x" * 32],
)
def test_events_refuse_bad_trace_ids(trace_id: str) -> None:
    with pytest.raises(ValidationError):
        event(trace_id=trace_id)


@pytest.mark.parametrize(
    "time",
    ["2026-05-01T12:00:00+02:00", "2026-05-01 12:00:00Z", "2026-13-01T12:00:00Z", "yesterday"],
)
def test_events_refuse_times_that_are_not_iso_utc(time: str) -> None:
    with pytest.raises(ValidationError):
        event(time=time)


def test_format_time_gives_utc_with_z() -> None:
    moment = datetime(2026, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(moment) == "2026-05-01T12:00:00.000000Z"
    assert event(time=format_time(moment)).time == "2026-05-01T12:00:00.000000Z"
    with pytest.raises(ValueError):
        format_time(datetime(2026, 5, 1))


def test_new_trace_ids_are_valid_and_distinct() -> None:
    ids = {new_trace_id() for _ in range(100)}
    assert len(ids) == 100
    for trace_id in ids:
        event(trace_id=trace_id)
