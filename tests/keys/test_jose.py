"""The JOSE profile's strict JSON and base64url."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keys.jose import b64d, b64d_many, b64e, canonical, is_b64url, loads_object

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), JSON_VALUES, max_size=6))
def test_canonical_json_parses_back_to_the_same_object(obj: dict[str, Any]) -> None:
    assert loads_object(canonical(obj)) == obj


@given(st.dictionaries(st.text(), JSON_VALUES, max_size=6))
def test_json_in_any_layout_parses_like_the_standard_library(obj: dict[str, Any]) -> None:
    text = json.dumps(obj, indent=1, ensure_ascii=True)
    assert loads_object(text) == loads_object(text.encode()) == json.loads(text)


@given(st.dictionaries(st.text(), JSON_VALUES, max_size=6))
def test_compact_json_with_members_in_any_order_parses_like_the_standard_library(
    obj: dict[str, Any],
) -> None:
    text = json.dumps(dict(reversed(obj.items())), separators=(",", ":"), ensure_ascii=False)
    assert loads_object(text.encode()) == json.loads(text)


@pytest.mark.parametrize(
    "text",
    [
        b'{"a":1,"a":1}',  # canonical apart from the duplicate
        b'{"b":1,"a":2,"b":1}',  # compact, unsorted, with a duplicate
        b'{"a":1,"b":{"c":2,"c":3}}',
        b'{"b": 1, "a": 2, "b": 1}',
    ],
)
def test_refuses_a_duplicate_member_at_any_depth(text: bytes) -> None:
    with pytest.raises(ValueError, match="duplicate"):
        loads_object(text)


@pytest.mark.parametrize(
    "text",
    [
        b'{"a":NaN}',
        b'{"a":Infinity}',
        b'{"a":"\\ud800"}',  # a lone surrogate
        b'\xef\xbb\xbf{"a":1}',  # a byte order mark
        b'{"a":"\xff"}',  # not UTF-8
        b"[1,2]",
        b'"a"',
        b'{"a":1',
    ],
)
def test_refuses_what_is_not_a_strict_json_object(text: bytes) -> None:
    with pytest.raises(ValueError):
        loads_object(text)


def test_integers_beyond_64_bits_parse_exactly() -> None:
    assert loads_object(b'{"a":123456789012345678901234567890}') == {
        "a": 123456789012345678901234567890
    }


@given(st.binary(max_size=200))
def test_base64url_round_trips(data: bytes) -> None:
    assert b64d(b64e(data)) == data


@pytest.mark.parametrize(
    "part",
    [
        "YQ==",  # padded
        "ab+/",  # the standard alphabet
        "YR",  # non-zero trailing bits
        "Y",  # no whole byte
        "YWJj\n",
        "YWJjé",
    ],
)
def test_refuses_base64url_that_is_not_canonical(part: str) -> None:
    assert not is_b64url(part)
    with pytest.raises(ValueError):
        b64d(part)


@given(
    st.integers(1, 80).flatmap(lambda n: st.lists(st.binary(min_size=n, max_size=n), max_size=6))
)
def test_many_parts_of_one_length_decode_as_each_alone(blobs: list[bytes]) -> None:
    length = len(blobs[0]) if blobs else 1
    assert b64d_many([b64e(blob) for blob in blobs], length) == blobs


@pytest.mark.parametrize("bad", ["YR", "Y=", "ab+/", "YWé", 12])
def test_many_parts_refuse_one_that_is_not_canonical_or_not_of_the_length(bad: object) -> None:
    good = b64e(b"ab")
    with pytest.raises(ValueError):
        b64d_many([good, bad], 2)  # type: ignore[list-item]
    with pytest.raises(ValueError):
        b64d_many([good, b64e(b"abc")], 2)
