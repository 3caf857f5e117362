"""The ``signaalpoort`` command: the one module that assembles both sides' commands.

The gateway's commands live in ``gateway.cli``, the partners' in ``adapters``; this
module wires them into one command line, and holds what needs both sides at once: the
demo (``init --demo``) and its self-check.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from adapters.cli import inbox_app, register_app, send
from adapters.creditor import GATEWAY_PIN, Creditor, read_export
from adapters.errors import AdapterError
from adapters.municipality import Municipality
from adapters.rest import GATEWAY_URL_FILE
from adapters.team import Team
from gateway import inbox, ingest
from gateway.cli import (
    audit_app,
    config_app,
    import_partner_keys,
    partner_keys_table,
    register_load,
    revoke_partner_key,
)
from gateway.clock import FixedClock
from gateway.errors import GatewayError
from gateway.service import Gateway
from gateway.settings import Settings
from keys.errors import Error as KeysError
from keys.home import Identity, PartyHome, Role
from keys.jwk import OIN, Use, jwks
from keys.keyring import Keyring
from keys.outreach import OutreachRecipient
from keys.pki import DevCA, certificate_identity

console = Console()
err = Console(stderr=True)

app = typer.Typer(
    help="Signaalpoort: a pseudonymising gateway for early signalling of payment arrears.",
    no_args_is_help=True,
)
keys_app = typer.Typer(
    help="A party's own keys: list, rotate, revoke, export.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")
app.add_typer(config_app, name="config")
app.add_typer(audit_app, name="audit")
app.add_typer(inbox_app, name="inbox")
app.add_typer(register_app, name="register")
register_app.command("load")(register_load)
app.command("send")(send)

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="the party's home (default $SIGNAALPOORT_HOME or ./.signaalpoort)"),
]

# Exit codes (docs/reason-codes.md): every error class maps to one.
EXIT_REFUSED, EXIT_USAGE, EXIT_CONFIG, EXIT_STORE = 1, 2, 3, 4


# -- the demo ------------------------------------------------------------------------

GEMEENTE = "0363"
AMSTERDAM_OIN = "00000001002564440000"


@dataclass(frozen=True)
class DemoParty:
    """One party of the demo: its home name, identity and (for creditors) category."""

    home: str
    name: str
    role: Role
    oin: str
    category: str | None = None


DEMO_PARTIES = (
    DemoParty("gateway", "Signaalpoort Amsterdam", "gateway", "00000001002564440010"),
    DemoParty("amsterdam", "Gemeente Amsterdam", "municipality", AMSTERDAM_OIN),
    DemoParty("noord", "Vroeg Eropaf! Noord", "team", "00000001002564440001"),
    DemoParty("zuid", "Vroeg Eropaf! Zuid", "team", "00000001002564440002"),
    DemoParty("backoffice", "Backoffice Vroegsignalering", "backoffice", "00000001002564440003"),
    DemoParty("zorg", "Zorgverzekeraar Demo", "creditor", "00000003900000010000", "ZORG"),
    DemoParty("huur", "Woningcorporatie Demo", "creditor", "00000003900000020000", "HUUR"),
    DemoParty("energie", "Energieleverancier Demo", "creditor", "00000003900000030000", "ENERGIE"),
    DemoParty(
        "drinkwater", "Drinkwaterbedrijf Demo", "creditor", "00000003900000040000", "DRINKWATER"
    ),
    DemoParty(
        "eindelevering",
        "Energieleverancier Eindelevering Demo",
        "creditor",
        "00000003900000050000",
        "EINDELEVERING",
    ),
)
DEFAULT_TEAM = "noord"
DEMO_GATEWAY_URL = "https://localhost:8443"


def extra_teams(count: int) -> tuple[DemoParty, ...]:
    """More outreach teams (``team1``…), for measuring with a larger outreach key set."""
    return tuple(
        DemoParty(f"team{i}", f"Demo team {i}", "team", f"000000010025644400{19 + i:02d}")
        for i in range(1, count + 1)
    )


def init_demo(directory: Path, *, now: datetime, teams: int = 0) -> None:
    """Create one home per party, each with its own keys, and enrol them with each other.

    ``teams`` adds that many outreach teams beyond ``noord`` and ``zuid``.
    """
    parties = DEMO_PARTIES + extra_teams(teams)
    ca_home = PartyHome(directory / "ca")
    ca_home.create(Identity("Demo CA", "ca", OIN("0" * 20)))
    ca = DevCA.create(name="Signaalpoort Demo CA", now=now)
    ca.save(ca_home.path)

    homes: dict[str, PartyHome] = {}
    for party in parties:
        home = PartyHome(directory / party.home)
        home.create(
            Identity(
                party.name,
                party.role,
                OIN(party.oin),
                gemeente=GEMEENTE if party.role != "creditor" else None,
                category=party.category,
            )
        )
        home.save_keyring(Keyring.generate(now=now))
        kind: Literal["client", "server"] = "server" if party.role == "gateway" else "client"
        hosts = ("localhost", "127.0.0.1") if kind == "server" else ()
        ca.issue(oin=OIN(party.oin), name=party.name, kind=kind, hosts=hosts, now=now).write(
            home.tls_dir, "cert"
        )
        home.tls_dir.joinpath("ca.pem").write_bytes(ca.certificate_pem)
        homes[party.home] = home

    gateway_home = homes["gateway"]
    settings = {
        "gateway_id": DEMO_PARTIES[0].oin,
        "default_teams": {GEMEENTE: _party("noord").oin},
    }
    (gateway_home.path / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")

    municipality = Municipality(homes["amsterdam"])
    municipality.create_linkage_secret(now=now)
    outreach = [
        OutreachRecipient(
            OIN(p.oin), p.name, homes[p.home].keyring().current("enc", now=now).public()
        )
        for p in parties
        if p.role in ("team", "backoffice")
    ]
    signed_keyset = municipality.sign_keyset(outreach, now=now)
    municipality_keys = homes["amsterdam"].published_keys(now=now)
    gateway_keys = gateway_home.published_keys(now=now)

    for party in parties[1:]:
        homes[party.home].pins_dir.mkdir(parents=True, exist_ok=True)
        (homes[party.home].pins_dir / GATEWAY_URL_FILE).write_text(DEMO_GATEWAY_URL + "\n")
        if party.role != "creditor":
            continue
        home = homes[party.home]
        home.pin(f"gemeente-{GEMEENTE}", [k for k in municipality_keys if k.use == "sig"])
        home.pin(GATEWAY_PIN, gateway_keys)
        (home.pins_dir / "gateway-id").write_text(DEMO_PARTIES[0].oin + "\n")
        creditor_enc = home.keyring().current("enc", now=now).public()
        sealed = municipality.issue_linkage_secret(creditor_enc, now=now)
        home.secrets_dir.mkdir(parents=True, exist_ok=True)
        (home.secrets_dir / f"linkage-{GEMEENTE}.jwe").write_text(sealed + "\n")
        demo_csv = resources.files("adapters").joinpath("demo", f"{party.home}.csv")
        (home.path / "notices.csv").write_bytes(demo_csv.read_bytes())

    gw = Gateway.open(Settings.load(gateway_home.path), clock=FixedClock(now))
    try:
        with gw.engine.begin() as conn:
            for party in parties[1:]:
                parent = AMSTERDAM_OIN if party.role in ("team", "backoffice") else None
                gw.directory.add_partner(
                    conn,
                    oin=OIN(party.oin),
                    name=party.name,
                    role=party.role,
                    gemeente=GEMEENTE if party.role != "creditor" else None,
                    parent_oin=OIN(parent) if parent else None,
                    now=now,
                )
                for key in homes[party.home].published_keys(now=now):
                    gw.directory.add_key(conn, oin=OIN(party.oin), key=key, now=now)
                certificate = (homes[party.home].tls_dir / "cert.pem").read_bytes()
                gw.directory.add_certificate(conn, certificate_identity(certificate), now=now)
            gw.directory.store_outreach_keyset(
                conn, gemeente=GEMEENTE, signed=signed_keyset, now=now
            )
    finally:
        gw.close()


def _party(home: str) -> DemoParty:
    return next(p for p in DEMO_PARTIES if p.home == home)


class LocalTransport:
    """Delivers a creditor's envelopes straight into a gateway in this process."""

    def __init__(self, gw: Gateway, sender: OIN) -> None:
        self.gw, self.sender = gw, sender

    def outreach_keys(self, gemeente: str) -> str:
        with self.gw.engine.connect() as conn:
            keyset = self.gw.directory.outreach_keyset(conn, gemeente)
        if keyset is None:
            raise AdapterError(f"the gateway has no key set for {gemeente}")
        return keyset.signed

    def submit(self, envelopes: Sequence[str]) -> str:
        receipt = ingest.submit(self.gw, sender=self.sender, envelopes=envelopes, intake="local")
        return receipt.jws


@dataclass
class SelfCheck:
    """What the demo self-check saw."""

    accepted: int = 0
    duplicate: int = 0
    refused: int = 0
    delivered: int = 0
    matching: int = 0


def self_check(directory: Path, *, now: datetime) -> SelfCheck:
    """Seal, send, store, deliver and open every demo notice, each party with its own home."""
    result = SelfCheck()
    expected: dict[str, dict[str, str]] = {}
    gw = Gateway.open(Settings.load(directory / "gateway"), clock=FixedClock(now))
    try:
        for party in DEMO_PARTIES:
            if party.role != "creditor":
                continue
            creditor = Creditor(PartyHome(directory / party.home), now=now)
            transport = LocalTransport(gw, OIN(party.oin))
            rows = read_export(directory / party.home / "notices.csv")
            sealed = creditor.seal_rows(rows, transport, now=now)
            receipt = creditor.verify_receipt(transport.submit([s.envelope for s in sealed]))
            for item in receipt["items"]:
                setattr(result, item["outcome"], getattr(result, item["outcome"]) + 1)
            for row, s in zip(rows, sealed, strict=True):
                expected[s.jti] = dict(row.values)
        team = Team(PartyHome(directory / DEFAULT_TEAM), now=now)
        items = inbox.pull(gw, recipient=team.identity.oin, limit=500)
        for item in items:
            record = team.open(item.signal)
            want = expected.get(record["jti"], {})
            fields = ("achternaam", "voorletters", "straat", "postcode", "telefoon", "email")
            result.delivered += 1
            result.matching += all(record.get(f, "") == want.get(f, "") for f in fields)
        inbox.ack(gw, recipient=team.identity.oin, ids=[i.id for i in items])
    finally:
        gw.close()
    return result


# -- commands --------------------------------------------------------------------------


@app.command()
def init(
    demo: Annotated[Path, typer.Option("--demo", help="directory for the demo's party homes")],
    force: Annotated[bool, typer.Option("--force", help="replace an existing demo")] = False,
) -> None:
    """Create the demo: one home per party, keys, certificates, enrolment."""
    if demo.exists() and any(demo.iterdir()):
        if not force:
            err.print(f"{demo} exists; use --force to replace it")
            raise typer.Exit(EXIT_USAGE)
        shutil.rmtree(demo)
    init_demo(demo, now=datetime.now(UTC))
    console.print(f"demo created in {demo}: " + ", ".join(p.home for p in DEMO_PARTIES))


@app.command()
def selfcheck(
    demo: Annotated[Path, typer.Option("--demo", help="the demo directory made by init")],
) -> None:
    """Seal, send, store and open the demo's notices; exit non-zero on any mismatch."""
    result = self_check(demo, now=datetime.now(UTC))
    table = Table("accepted", "duplicate", "refused", "delivered to noord", "opened intact")
    table.add_row(*(str(v) for v in vars(result).values()))
    console.print(table)
    if (
        result.refused
        or result.matching != result.delivered
        or not (result.accepted + result.duplicate)
    ):
        raise typer.Exit(EXIT_REFUSED)


@keys_app.command("list")
def keys_list(
    home: HomeOption = None,
    partner: Annotated[str | None, typer.Option(help="at the gateway: a partner's OIN")] = None,
) -> None:
    """This party's keys and their state (or, at the gateway, a partner's keys)."""
    party = PartyHome.resolve(home)
    if partner:
        gw = _gateway(party)
        try:
            console.print(partner_keys_table(gw, partner))
        finally:
            gw.close()
        return
    now = datetime.now(UTC)
    table = Table("kid", "use", "state", "created", "activates", "retires")
    for e in party.keyring():
        table.add_row(
            e.kid,
            e.use,
            e.state(now),
            e.created.isoformat(timespec="seconds"),
            e.activates.isoformat(timespec="seconds"),
            e.retires.isoformat(timespec="seconds") if e.retires else "",
        )
    console.print(table)


@keys_app.command("rotate")
def keys_rotate(
    use: Annotated[str, typer.Option(help="sig or enc")],
    home: HomeOption = None,
    overlap_hours: Annotated[
        float, typer.Option(help="publish now, start using after this many hours")
    ] = 0.0,
    retire_after_days: Annotated[
        float, typer.Option(help="keep accepting the old key this many days")
    ] = 30.0,
) -> None:
    """Add a new key; it is published at once and used after the overlap."""
    if use not in ("sig", "enc"):
        err.print("--use is sig or enc")
        raise typer.Exit(EXIT_USAGE)
    party = PartyHome.resolve(home)
    keyring = party.keyring()
    checked_use: Use = "sig" if use == "sig" else "enc"
    entry = keyring.rotate(
        checked_use,
        now=datetime.now(UTC),
        overlap=timedelta(hours=overlap_hours),
        retire_after=timedelta(days=retire_after_days),
    )
    party.save_keyring(keyring)
    console.print(f"new {use} key {entry.kid}, in use from {entry.activates.isoformat()}")


@keys_app.command("revoke")
def keys_revoke(
    kid: str,
    home: HomeOption = None,
    partner: Annotated[bool, typer.Option(help="at the gateway: revoke a partner's key")] = False,
) -> None:
    """Refuse a key from now on (put ``--`` before a kid that starts with ``-``)."""
    party = PartyHome.resolve(home)
    if partner:
        gw = _gateway(party)
        try:
            if not revoke_partner_key(gw, kid):
                err.print(f"no unrevoked partner key {kid}")
                raise typer.Exit(EXIT_CONFIG)
        finally:
            gw.close()
    else:
        keyring = party.keyring()
        keyring.revoke(kid, now=datetime.now(UTC))
        party.save_keyring(keyring)
    console.print(f"revoked {kid}")


@keys_app.command("export")
def keys_export(home: HomeOption = None) -> None:
    """Print this party's published public keys as a JWK Set."""
    party = PartyHome.resolve(home)
    print(json.dumps(jwks(party.published_keys(now=datetime.now(UTC))), indent=2))


@keys_app.command("import")
def keys_import(
    jwks_file: Path,
    partner: Annotated[str, typer.Option(help="the partner's OIN")],
    home: HomeOption = None,
) -> None:
    """At the gateway: register a partner's newly published keys."""
    gw = _gateway(PartyHome.resolve(home))
    try:
        added = import_partner_keys(gw, partner, jwks_file)
    finally:
        gw.close()
    console.print(f"registered {added} new key(s) for {partner}")


@app.command()
def serve(
    home: HomeOption = None,
    host: Annotated[
        str | None, typer.Option(help="address to listen on (default: the settings')")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="port to listen on (default: the settings'; 0 picks one)")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="worker processes (default: two per core)")
    ] = None,
) -> None:
    """Run the gateway's partner API over HTTPS with mutual TLS."""
    from gateway.cli import serve as serve_api

    party = PartyHome.resolve(home)
    if party.identity().role != "gateway":
        err.print("this command runs at the gateway (--home of the gateway)")
        raise typer.Exit(EXIT_USAGE)
    serve_api(party.path, host=host, port=port, workers=workers)


def _gateway(party: PartyHome) -> Gateway:
    if party.identity().role != "gateway":
        err.print("this command runs at the gateway (--home of the gateway)")
        raise typer.Exit(EXIT_USAGE)
    return Gateway.open(Settings.load(party.path))


EXIT_CODES: dict[str, int] = {
    # keys: a key, pin, secret or format this party holds is missing or wrong
    "error": EXIT_CONFIG,
    "envelope_invalid": EXIT_REFUSED,
    "contact_block_invalid": EXIT_REFUSED,
    "receipt_invalid": EXIT_REFUSED,
    "keyset_invalid": EXIT_CONFIG,
    "keyring_invalid": EXIT_CONFIG,
    "certificate_invalid": EXIT_CONFIG,
    "master_key_destroyed": EXIT_CONFIG,
    "at_rest_invalid": EXIT_CONFIG,
    "secret_invalid": EXIT_CONFIG,
    "field_invalid": EXIT_REFUSED,
    # gateway
    "gateway_error": EXIT_CONFIG,
    "audit_broken": EXIT_REFUSED,
    "store_unavailable": EXIT_STORE,
    "partner_unknown": EXIT_CONFIG,
    "register_invalid": EXIT_REFUSED,
    # adapters
    "adapter_error": EXIT_CONFIG,
    "row_invalid": EXIT_REFUSED,
    "not_enrolled": EXIT_CONFIG,
    "transport_failed": EXIT_STORE,
}
"""Every error code's exit status; a test fails when an error class is missing here."""


def exit_code(exc: GatewayError | KeysError | AdapterError) -> int:
    """The exit code for an error that reached the command line."""
    return EXIT_CODES.get(exc.code, EXIT_CONFIG)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line; known errors print their diagnostics, never a traceback."""
    try:
        code = app(args=list(argv) if argv is not None else None, standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        code = EXIT_USAGE
    except typer.TyperException as exc:  # a usage error: unknown option, bad value
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        code = EXIT_USAGE
    except (GatewayError, KeysError, AdapterError) as exc:
        err.print(f"error: {exc.diagnostics()}")
        code = exit_code(exc)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
