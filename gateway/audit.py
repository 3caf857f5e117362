"""Audit events and their hashing: canonical bytes, a hash chain, an RFC 9162 Merkle tree.

Pure: values in, values out, no I/O. The store (``gateway.store.auditlog``) keeps each
event as the canonical bytes made here and hashes exactly those stored bytes.

- ``canonical_event``: JSON with sorted keys, no whitespace, UTF-8 (not ``\\u`` escapes);
  only objects with string keys, arrays, strings, integers, booleans and null. Floats are
  refused: their text form is not canonical across implementations.
- ``leaf_hash(d) = SHA-256(0x00 || d)`` and the node hash ``SHA-256(0x01 || l || r)``
  (RFC 9162 §2.1.1), so a leaf can never pass for an inner node.
- ``chain(prev, leaf) = SHA-256(prev || leaf)``, starting from 32 zero bytes: each
  position commits to everything before it.
- ``merkle_root`` over the leaf hashes, for checkpoints signed by the gateway.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

HASH_BYTES = 32
GENESIS = bytes(HASH_BYTES)
"""The chain hash before the first event (and of the empty log)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The Merkle root of the empty tree (RFC 9162 §2.1.1)."""

CHECKPOINT_PREFIX = b"signaalpoort-audit-checkpoint/v1\n"

LEGAL_BASIS = "AVG art. 6 lid 1 sub e; Wgs art. 3 lid 3 en art. 4a"
"""The legal basis of every processing step of the gateway (DOMAIN.md, "Legal frame")."""

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")


_FLAT = frozenset({str, int, bool, type(None)})
_STR = frozenset({str})


def _check_json(value: object, path: str) -> None:
    # bool is an int subclass and is fine; float is refused before int is considered.
    if value is None or isinstance(value, str | bool):
        return
    if isinstance(value, float):
        raise TypeError(f"audit events hold no floats (at {path})")
    if isinstance(value, int):
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"audit event keys must be strings (at {path})")
            _check_json(item, f"{path}.{key}")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]")
        return
    raise TypeError(f"audit events hold no {type(value).__name__} (at {path})")


def canonical_event(event: Mapping[str, Any]) -> bytes:
    """The canonical bytes of an event; ``TypeError`` for floats, non-str keys, others."""
    if not isinstance(event, Mapping):
        raise TypeError("an audit event is a mapping")
    # Events are flat in practice: orjson writes them byte for byte as the standard
    # library below would, several times faster. Anything else needs the walk that
    # names a path, and whatever orjson refuses (an integer beyond 64 bits, a lone
    # surrogate) is left to the standard library to write or refuse.
    if set(map(type, event)) <= _STR and set(map(type, event.values())) <= _FLAT:
        try:
            return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            pass
    else:
        _check_json(event, "$")
    text = json.dumps(
        event, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def chain(prev: bytes, leaf: bytes) -> bytes:
    """The next chain hash: ``SHA-256(prev || leaf)``."""
    return hashlib.sha256(prev + leaf).digest()


class CompactRange:
    """An RFC 9162 Merkle tree built leaf by leaf in O(log n) memory.

    Holds the roots of the perfect subtrees that make up the leaves so far (one per
    set bit of the size, largest first); the tree's root folds them from the right,
    which is exactly the split at the largest power of two of RFC 9162 §2.1.1.
    """

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash."""
        self.size += 1
        width, node = 1, leaf
        while self._stack and self._stack[-1][0] == width:
            _, left = self._stack.pop()
            width, node = width * 2, node_hash(left, node)
        self._stack.append((width, node))

    def root(self) -> bytes:
        """The Merkle root of the leaves appended so far."""
        if not self._stack:
            return EMPTY_ROOT
        node = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            node = node_hash(left, node)
        return node


def merkle_root(leaves: Iterable[bytes]) -> bytes:
    """RFC 9162 Merkle tree hash over leaf hashes (``leaf_hash`` of each entry).

    ``SHA-256(b"")`` for no leaves; the leaf hash itself for one leaf.
    """
    tree = CompactRange()
    for leaf in leaves:
        tree.append(leaf)
    return tree.root()


def checkpoint_message(size: int, root: bytes) -> bytes:
    """The bytes the gateway signs for a checkpoint of ``size`` events with ``root``."""
    if size < 0 or len(root) != HASH_BYTES:
        raise ValueError("checkpoint needs a size >= 0 and a 32-byte root")
    return CHECKPOINT_PREFIX + str(size).encode("ascii") + b"\n" + root.hex().encode("ascii")


@lru_cache(maxsize=64)  # a batch stamps all its events with one moment
def format_time(moment: datetime) -> str:
    """An aware datetime as ISO 8601 UTC with microseconds: ``2026-05-01T12:00:00.000000Z``."""
    if moment.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_trace_id() -> str:
    """A fresh random W3C trace-context trace id (32 lowercase hex, not all zero)."""
    while True:
        trace_id = secrets.token_hex(16)
        if trace_id != "0" * 32:
            return trace_id


class AuditEvent(BaseModel):
    """One processing step or read of personal data, as the audit log records it.

    What (``action``, ``object``, ``result``, ``reason``), who (``actor``,
    ``organisation``, ``role``, ``on_behalf_of``), whom (``subject``), why
    (``activity``, ``legal_basis``), when (``time``) and ``trace_id``, which follows
    one notice through every step (W3C trace-context, as in the Logboek
    Dataverwerkingen standard).

    No personal data belongs here: ``subject`` is the register's person pseudonym,
    ``actor`` an account or component id (never a name), ``object`` an id such as a
    notice ``jti``, and ``reason`` a reason code, not free text. No name, address,
    phone number, e-mail, BSN or contact-block content ever goes into an event.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    action: str = Field(min_length=1, max_length=100)
    object: str = Field(min_length=1, max_length=200)
    result: str = Field(min_length=1, max_length=100)
    reason: str | None = Field(default=None, max_length=200)
    actor: str = Field(min_length=1, max_length=200)
    organisation: str = Field(min_length=1, max_length=20)
    role: str = Field(min_length=1, max_length=50)
    on_behalf_of: str | None = Field(default=None, max_length=20)
    subject: str | None = Field(default=None, max_length=64)
    activity: str = Field(min_length=1, max_length=100)
    legal_basis: str = Field(min_length=1, max_length=200)
    time: str
    trace_id: str

    @field_validator("time")
    @classmethod
    def _utc_time(cls, value: str) -> str:
        if _TIME.fullmatch(value) is None:
            raise ValueError("time must be ISO 8601 UTC, e.g. 2026-05-01T12:00:00Z")
        datetime.fromisoformat(value)  # rejects a month 13 and the like
        return value

    @field_validator("trace_id")
    @classmethod
    def _trace_id(cls, value: str) -> str:
        if _TRACE_ID.fullmatch(value) is None or value == "0" * 32:
            raise ValueError("trace_id must be 32 lowercase hex digits, not all zero")
        return value

    def to_dict(self) -> dict[str, str]:
        """The event as a plain dict, without the fields that are ``None``."""
        return {k: str(v) for k, v in self.model_dump(exclude_none=True).items()}


def step(
    *,
    action: str,
    obj: str | None,
    result: str,
    organisation: str,
    role: str,
    activity: str,
    now: datetime,
    trace_id: str | None = None,
    reason: str | None = None,
    subject: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """One step taken for an organisation (its system is the actor), as an event dict.

    Every intake writes several of these per notice, so the fields are checked against
    ``AuditEvent``'s limits directly; only an event that fails them goes through the
    model, for its error.
    """
    event = {
        "action": action,
        "object": obj or "-",
        "result": result,
        "actor": organisation,
        "organisation": organisation,
        "role": role,
        "activity": activity,
        "legal_basis": LEGAL_BASIS,
        "time": format_time(now),
        "trace_id": trace_id or new_trace_id(),
    }
    if reason is not None:
        event["reason"] = reason
    if subject is not None:
        event["subject"] = subject
    if not _within_limits(event) or (trace_id is not None and not _is_trace_id(trace_id)):
        AuditEvent(**event)  # raises a ValidationError that names the field
    event.update(extra)
    return event


def _lengths() -> dict[str, tuple[int, int]]:
    """Each ``AuditEvent`` field's (min, max) length, read off the model."""
    lengths = {}
    for name, info in AuditEvent.model_fields.items():
        low, high = 0, 2**31
        for rule in info.metadata:
            low = getattr(rule, "min_length", None) or low
            high = getattr(rule, "max_length", None) or high
        lengths[name] = (low, high)
    return lengths


_LENGTHS = _lengths()


def _within_limits(event: dict[str, str]) -> bool:
    for name, value in event.items():
        low, high = _LENGTHS[name]
        if type(value) is not str or not low <= len(value) <= high:
            return False
    return True


def _is_trace_id(value: str) -> bool:
    return _TRACE_ID.fullmatch(value) is not None and value != "0" * 32
