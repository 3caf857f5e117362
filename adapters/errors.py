"""Errors of the partner side.

AdapterError            base: a stable ``code`` and ``diagnostics()``
├── RowInvalid          a CSV row does not fit the profile (line and column given)
├── ProfileInvalid      an export profile does not load (docs/profiles.md)
├── NotEnrolled         the home lacks a key, pin or secret the command needs
└── TransportFailed     the gateway could not be reached or answered out of protocol
"""

from __future__ import annotations


class AdapterError(Exception):
    """Base of the partner side's errors."""

    code = "adapter_error"

    def diagnostics(self) -> str:
        return f"{self.code}: {self.args[0] if self.args else ''}"


class RowInvalid(AdapterError):
    """A row of a creditor export does not fit; never carries the value itself."""

    code = "row_invalid"

    def __init__(self, line: int, column: str, reason: str) -> None:
        super().__init__(f"line {line}, column {column}: {reason}")
        self.line, self.column, self.reason = line, column, reason


class ProfileInvalid(AdapterError):
    """An export profile is not valid JSON, names unknown members or columns, or maps
    ambiguously (docs/profiles.md)."""

    code = "profile_invalid"


class NotEnrolled(AdapterError):
    """This home has not been given what the command needs (a pin, a secret, a key)."""

    code = "not_enrolled"


class TransportFailed(AdapterError):
    """The gateway could not be reached, or its answer does not verify."""

    code = "transport_failed"
