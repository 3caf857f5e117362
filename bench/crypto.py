"""Seal and open+verify throughput on one core, and envelope sizes. Prints one JSON object.

    .venv/bin/python bench/crypto.py [--seconds 3]

A realistic notice: match tokens of every type, a contact block sealed to the outreach
key set (2 and 10 recipients), signed by a creditor and encrypted to the gateway.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from keys.contact import seal_contact
from keys.envelope import SignerKey, open_envelope, seal_envelope
from keys.jwk import OIN, PrivateKey
from keys.tokens import LinkageSecret, PersonFields, Tokeniser, notice_tokens

CREDITOR = OIN("00000003900000010000")
GATEWAY_ID = "00000001002564440010"
CONTACT = {
    "voorletters": "J.P.",
    "achternaam": "Jansen",
    "geboortedatum": "1978-03-14",
    "straatnaam": "Kinkerstraat",
    "huisnummer": "112",
    "huisnummertoevoeging": "2",
    "postcode": "1053DX",
    "plaatsnaam": "Amsterdam",
    "telefoon": "0612345678",
    "email": "j.jansen@voorbeeld.nl",
    "klantnummer": "K325911",
}


def notice(
    recipients: list[PrivateKey], tokeniser: Tokeniser, now: datetime, n: int
) -> dict[str, Any]:
    jti = f"00000000-0000-5000-8000-{n:012d}"
    person = PersonFields.from_creditor(
        achternaam="Jansen",
        voorvoegsel="",
        voorletters="J.P.",
        geboortedatum="1978-03-14",
        postcode="1053DX",
        huisnummer="112",
        bsn="111222333",
    )
    return {
        "v": 1,
        "iss": CREDITOR,
        "aud": GATEWAY_ID,
        "gemeente": "0363",
        "jti": jti,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(days=30)).timestamp()),
        "ref": f"ZOR-{n}",
        "category": "ZORG",
        "stage": "aanmaning",
        "bedrag": "1743.31",
        "ontstaansdatum": "2026-08-01",
        "signaaldatum": "2026-11-01",
        "attestations": {"premieachterstandMaanden": True},
        "tokens": notice_tokens(tokeniser, person, include_bsn=True),
        "contact": seal_contact(CONTACT, jti=jti, recipients=[k.public() for k in recipients]),
    }


def rate(fn: Any, seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        count += 1
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    now = datetime.now(UTC)
    creditor = PrivateKey.generate("sig")
    gateway = PrivateKey.generate("enc")
    teams = [PrivateKey.generate("enc") for _ in range(10)]
    tokeniser = Tokeniser(LinkageSecret.generate(now=now))
    record = SignerKey(creditor.public(), CREDITOR)

    sizes = {}
    for count in (2, 10):
        envelope = seal_envelope(
            notice(teams[:count], tokeniser, now, count),
            signer=creditor,
            gateway_key=gateway.public(),
        )
        sizes[f"envelope_bytes_{count}_recipients"] = len(envelope)

    prepared = notice(teams, tokeniser, now, 0)
    envelope = seal_envelope(prepared, signer=creditor, gateway_key=gateway.public())

    def seal() -> None:
        seal_envelope(prepared, signer=creditor, gateway_key=gateway.public())

    def open_verify() -> None:
        open_envelope(
            envelope,
            intake_keys=[gateway],
            signer_key=lambda kid: record,
            sender=CREDITOR,
            audience=GATEWAY_ID,
            now=now,
        )

    n = [0]

    def build_and_seal() -> None:
        n[0] += 1
        seal_envelope(
            notice(teams, tokeniser, now, n[0]), signer=creditor, gateway_key=gateway.public()
        )

    result = {
        "benchmark": "crypto",
        "cores_used": 1,
        "machine_cores": os.cpu_count(),
        "python": platform.python_version(),
        "seal_per_second": round(rate(seal, args.seconds), 1),
        "open_verify_per_second": round(rate(open_verify, args.seconds), 1),
        "tokens_contact_seal_per_second_10_recipients": round(
            rate(build_and_seal, args.seconds), 1
        ),
        **sizes,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
