"""Safety limits, in one place. Anything larger is refused before it is parsed."""

from __future__ import annotations

from datetime import timedelta

MAX_ENVELOPE_BYTES = 64 * 1024
"""One compact JWE envelope (a notice with a contact block for a dozen recipients)."""

MAX_CONTACT_RECIPIENTS = 64
"""Recipients in one contact block (a municipality's teams and back office)."""

MAX_ENVELOPES_PER_REQUEST = 1_000
"""Envelopes in one REST request body."""

MAX_REQUEST_BYTES = MAX_ENVELOPES_PER_REQUEST * (MAX_ENVELOPE_BYTES // 4)
"""One REST request body: 1,000 envelopes of 16 KiB each."""

CLOCK_SKEW = timedelta(minutes=5)
"""How far a sender's clock may run ahead of the gateway's."""

MAX_NOTICE_LIFETIME = timedelta(days=31)
"""The longest ``exp - iat`` a notice may claim."""
