"""The ``signaalpoort`` command: the one module that assembles both sides' commands.

The gateway's commands live in ``gateway.cli``, the partners' in ``adapters``; this
module wires them into one command line, and holds what needs both sides at once: the
demo (``init --demo``) and its self-check.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from adapters import profile
from adapters.cli import inbox_app, objection_app, register_app, send
from adapters.creditor import BSN_CATEGORIES, GATEWAY_PIN, Creditor, person_fields, read_export
from adapters.errors import AdapterError
from adapters.municipality import Municipality
from adapters.register import (
    PseudonymKey,
    label_records,
    read_brp,
    read_labels,
    tokenise,
    tokenise_extract,
    write_labels,
    write_register,
)
from adapters.rest import GATEWAY_URL_FILE
from adapters.sftp import ADDRESS_PIN
from adapters.team import Team
from gateway import inbox, ingest
from gateway.cli import (
    audit_app,
    batch_run,
    config_app,
    consent_app,
    forget,
    import_partner_keys,
    objection_load,
    partner_app,
    partner_keys_table,
    register_load,
    retention_app,
    revoke_partner_key,
)
from gateway.clock import FixedClock
from gateway.dropbox import ensure_dropbox
from gateway.errors import GatewayError
from gateway.matching import Matcher
from gateway.partnerships import add_partnership
from gateway.register import load_register
from gateway.schema import Category
from gateway.service import Gateway, settle
from gateway.settings import Settings
from gateway.store.auditlog import AuditLog
from gateway.store.engine import make_engine, migrate, reading
from gateway.store.schema import notices
from keys.bloom import BloomEncoder, decode
from keys.errors import Error as KeysError
from keys.home import Identity, PartyHome, Role
from keys.jwk import OIN, Use, jwks
from keys.keyring import Keyring
from keys.outreach import OutreachRecipient
from keys.pki import DevCA, certificate_identity
from keys.ssh import (
    SSHPublicKey,
    create_identity,
    load_or_create_host_key,
    pin_host_key,
    read_public,
)
from keys.tokens import LinkageSecret, Tokeniser

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
batch_app = typer.Typer(help="SFTP batch files at the gateway.", no_args_is_help=True)
batch_app.command("run")(batch_run)
app.add_typer(batch_app, name="batch")
app.add_typer(partner_app, name="partner")
app.add_typer(consent_app, name="consent")
objection_app.command("load")(objection_load)
app.add_typer(objection_app, name="objection")
app.add_typer(retention_app, name="retention")
app.command("forget")(forget)

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
DEMO_PARTNERSHIP_AGE = timedelta(days=365)
"""The demo's creditors have had their partnerships with Amsterdam for a year."""
DEMO_GATEWAY_URL = "https://localhost:8443"
DEMO_SFTP_ADDRESS = "localhost:2222"


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
        "routing": {
            GEMEENTE: {
                "default_team": _party(DEFAULT_TEAM).oin,
                "backoffice": _party("backoffice").oin,
                "districts": {"N": _party("noord").oin, "K": _party("zuid").oin},
            }
        },
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
    _, sftp_host_key = load_or_create_host_key(gateway_home.path)
    ssh_keys: dict[str, SSHPublicKey] = {}

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
        pin_host_key(home.path, sftp_host_key)
        (home.pins_dir / ADDRESS_PIN).write_text(DEMO_SFTP_ADDRESS + "\n")
        ssh_keys[party.home] = create_identity(home.path, comment=party.home)
        ensure_dropbox(gateway_home.path, party.oin)
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
                if party.home in ssh_keys:
                    gw.directory.add_ssh_key(conn, oin=party.oin, key=ssh_keys[party.home], now=now)
            gw.directory.store_outreach_keyset(
                conn, gemeente=GEMEENTE, signed=signed_keyset, now=now
            )
            for party in parties:
                if party.category is not None:
                    add_partnership(
                        conn,
                        gemeente=GEMEENTE,
                        creditor=party.oin,
                        categories=[Category(party.category)],
                        starts=(now - DEMO_PARTNERSHIP_AGE).date(),
                        ends=None,
                        by=AMSTERDAM_OIN,
                        now=now,
                        audit=gw.audit,
                    )
        register, labels = _demo_register(homes["amsterdam"], now=now)
        load_register(gw, register, gemeente=GEMEENTE, by=AMSTERDAM_OIN, labels=labels)
    finally:
        gw.close()


def _demo_register(municipality: PartyHome, *, now: datetime) -> tuple[Path, Path]:
    """The municipality tokenises the demo's BRP extract and labels, in its own home."""
    office = Municipality(municipality)
    pseudonyms = PseudonymKey.load_or_create(municipality.secrets_dir)
    demo = resources.files("adapters").joinpath("demo")
    register, labels = municipality.path / "register.jsonl", municipality.path / "labels.jsonl"
    with resources.as_file(demo.joinpath("brp.csv")) as brp:
        rows = list(read_brp(brp))
    secret = office.linkage_secret()
    write_register(
        register,
        tokenise(
            rows,
            tokeniser=Tokeniser(secret),
            encoder=BloomEncoder(secret),
            pseudonyms=pseudonyms,
            gemeente=GEMEENTE,
            now=now,
        ),
    )
    with resources.as_file(demo.joinpath("labels.csv")) as csv_file:
        label_rows = list(read_labels(csv_file))
    write_labels(
        labels, label_records(label_rows, pseudonyms=pseudonyms, gemeente=GEMEENTE, now=now)
    )
    return register, labels


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
    closed: int = 0
    delivered: int = 0
    matching: int = 0
    teams: dict[str, int] = field(default_factory=dict)


INBOXES = tuple(p.home for p in DEMO_PARTIES if p.role in ("team", "backoffice"))


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
        for name in INBOXES:
            team = Team(PartyHome(directory / name), now=now)
            items = inbox.pull(gw, recipient=team.identity.oin, limit=500)
            for item in items:
                record = team.open(item.signal)
                want = expected.get(record["jti"], {})
                fields = ("achternaam", "voorletters", "straat", "postcode", "telefoon", "email")
                result.delivered += 1
                result.matching += all(record.get(f, "") == want.get(f, "") for f in fields)
            inbox.ack(gw, recipient=team.identity.oin, ids=[i.id for i in items])
            result.teams[name] = len(items)
        with reading(gw.engine) as conn:
            result.closed = conn.execute(
                select(func.count())
                .select_from(notices)
                .where(notices.c.jti.in_(list(expected)), notices.c.status == "closed")
            ).scalar_one()
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
    table = Table("accepted", "duplicate", "refused", "closed", "delivered", "opened intact")
    table.add_row(
        *(
            str(v)
            for v in (
                result.accepted,
                result.duplicate,
                result.refused,
                result.closed,
                result.delivered,
                result.matching,
            )
        )
    )
    console.print(table)
    console.print("delivered per inbox: " + ", ".join(f"{k} {v}" for k, v in result.teams.items()))
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


@keys_app.command("import-ssh")
def keys_import_ssh(
    pubkey_file: Annotated[Path, typer.Argument(help="the creditor's SSH public key (one line)")],
    partner: Annotated[str, typer.Option(help="the creditor's OIN")],
    home: HomeOption = None,
) -> None:
    """At the gateway: register a creditor's SSH public key for the SFTP intake."""
    key = read_public(pubkey_file)
    gw = _gateway(PartyHome.resolve(home))
    try:
        with gw.engine.begin() as conn:
            added = gw.directory.add_ssh_key(conn, oin=partner, key=key, now=gw.clock.now())
    finally:
        gw.close()
    if added:
        console.print(f"registered SSH key {key.fingerprint} for {partner}")
    else:
        console.print(f"SSH key {key.fingerprint} was registered for {partner} already")


@keys_app.command("revoke-ssh")
def keys_revoke_ssh(
    fingerprint: Annotated[str, typer.Argument(help="the key's SHA256:... fingerprint")],
    home: HomeOption = None,
) -> None:
    """At the gateway: refuse a creditor's SSH key at the SFTP intake from now on."""
    gw = _gateway(PartyHome.resolve(home))
    try:
        with gw.engine.begin() as conn:
            revoked = gw.directory.revoke_ssh_key(conn, fingerprint, now=gw.clock.now())
    finally:
        gw.close()
    if not revoked:
        err.print(f"no unrevoked SSH key {fingerprint}")
        raise typer.Exit(EXIT_CONFIG)
    console.print(f"revoked SSH key {fingerprint}")


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
        int | None,
        typer.Option(
            min=1,
            help="intake processes for REST batches "
            "(default: one per core and one more; 1: in the server)",
        ),
    ] = None,
    batches: Annotated[
        bool, typer.Option(help="process complete SFTP batch files as they arrive")
    ] = True,
) -> None:
    """Run the gateway: partner API (HTTPS, mutual TLS), SFTP intake, batch processing."""
    from gateway.cli import serve as serve_api

    party = PartyHome.resolve(home)
    if party.identity().role != "gateway":
        err.print("this command runs at the gateway (--home of the gateway)")
        raise typer.Exit(EXIT_USAGE)
    serve_api(party.path, host=host, port=port, workers=workers, batches=batches)


def _gateway(party: PartyHome) -> Gateway:
    if party.identity().role != "gateway":
        err.print("this command runs at the gateway (--home of the gateway)")
        raise typer.Exit(EXIT_USAGE)
    return Gateway.open(Settings.load(party.path))


# -- linkage evaluation ----------------------------------------------------------------

linkage_app = typer.Typer(help="How well notices find their residents.", no_args_is_help=True)
app.add_typer(linkage_app, name="linkage")

EVALUATE_BATCH = 500
"""Notices per matcher call, as one intake batch would hold."""


@dataclass
class Evaluation:
    """Per-notice outcomes of a linkage run against the ground truth."""

    notices: int = 0
    in_register: int = 0
    accepted: int = 0
    correct: int = 0
    false_accepts_outside: int = 0
    unreadable: int = 0
    outcomes: dict[str, int] | None = None
    bsn_notices: int = 0
    bsn_accepted: int = 0
    bsn_correct: int = 0

    def report(self) -> dict[str, Any]:
        outside = self.notices - self.in_register
        precision = self.correct / self.accepted if self.accepted else 1.0
        recall = self.correct / self.in_register if self.in_register else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        outcomes = self.outcomes or {}
        return {
            "notices": self.notices,
            "in_register": self.in_register,
            "precision": round(precision, 6),
            "recall": round(recall, 6),
            "f1": round(f1, 6),
            "false_accept_rate": round(self.false_accepts_outside / outside, 6) if outside else 0.0,
            "review_rate": round(outcomes.get("review", 0) / self.notices, 6)
            if self.notices
            else 0.0,
            "outcomes": dict(sorted(outcomes.items())),
            "unreadable": self.unreadable,
            "with_bsn": {
                "notices": self.bsn_notices,
                "precision": round(self.bsn_correct / self.bsn_accepted, 6)
                if self.bsn_accepted
                else 1.0,
                "recall": round(self.bsn_correct / self.bsn_notices, 6)
                if self.bsn_notices
                else 1.0,
            },
        }


def evaluate_linkage(
    register: Path, notices: Path, truth: Path, *, workdir: Path, now: datetime
) -> dict[str, Any]:
    """Run the real path on a BRP extract and a creditor export, scored against truth.

    The municipality's tokeniser makes the register with a fresh linkage secret and
    pseudonym key; the creditor adapter's code makes each notice's tokens; the
    gateway loads the register into a scratch SQLite store and its matcher decides.
    """
    secret = LinkageSecret.generate(now=now)
    tokeniser = Tokeniser(secret)
    encoder = BloomEncoder(secret)
    pseudonyms = PseudonymKey.generate()
    started = time.perf_counter()
    first = next(read_brp(register), None)
    gemeente = first.gemeentecode if first is not None else "0000"
    jsonl = workdir / "register.jsonl"
    statuses = tokenise_extract(
        register,
        jsonl,
        tokeniser=tokeniser,
        encoder=encoder,
        pseudonyms=pseudonyms,
        gemeente=gemeente,
        now=now,
    )
    tokenised = time.perf_counter()
    engine = make_engine(f"sqlite:///{workdir / 'gateway.db'}")
    try:
        migrate(engine)
        gw = Gateway(
            settings=cast(Any, None),
            engine=engine,
            keyring=cast(Any, None),
            cipher=cast(Any, None),
            audit=AuditLog(),
            clock=FixedClock(now),
        )
        load_register(gw, jsonl, gemeente=gemeente, by="0" * 20)
        loaded = time.perf_counter()

        expected = {ref: bsn for ref, bsn in _truth(truth)}
        refs: list[str] = []
        values: list[dict[str, list[str]]] = []
        fuzzy: list[dict[str, list[bytes]]] = []
        result = Evaluation(outcomes={})
        tokens_started = time.perf_counter()
        for row in profile.read_rows(notices):
            category = row.get("category").upper()
            try:
                person = person_fields(row, category)
            except AdapterError:
                result.unreadable += 1
                refs.append(row.get("ref"))
                values.append({})
                fuzzy.append({})
                continue
            refs.append(row.get("ref"))
            values.append(tokeniser.tokens(person, include_bsn=category in BSN_CATEGORIES))
            fuzzy.append(decode(encoder.person(person)))
        tokens_seconds = time.perf_counter() - tokens_started

        # The gateway matches a batch at a time; this holds every notice's tokens at
        # once, which the collector would otherwise scan again at each full collection.
        settle()
        matcher = Matcher(engine)
        match_started = time.perf_counter()
        matches = []
        for start in range(0, len(values), EVALUATE_BATCH):
            end = start + EVALUATE_BATCH
            matches.extend(matcher.match(gemeente, secret.kid, values[start:end], fuzzy[start:end]))
        match_seconds = time.perf_counter() - match_started
    finally:
        engine.dispose()

    outcomes = Counter[str]()
    for ref, tokens, found in zip(refs, values, matches, strict=True):
        if ref not in expected:
            raise AdapterError(f"truth has no line for the notice {ref!r}")
        bsn = expected[ref]
        wanted = pseudonyms.person(bsn) if bsn else None
        accepted = found.outcome in ("matched", "deceased", "moved_out")
        correct = accepted and found.person == wanted
        result.notices += 1
        result.in_register += wanted is not None
        result.accepted += accepted
        result.correct += correct
        result.false_accepts_outside += accepted and wanted is None
        outcomes[found.outcome] += 1
        if "bsn" in tokens and wanted is not None:
            result.bsn_notices += 1
            result.bsn_accepted += accepted
            result.bsn_correct += correct
    result.outcomes = dict(outcomes)
    report = result.report()
    persons = sum(statuses.values())
    report["register_persons"] = persons
    report["register_seconds"] = {
        "tokenise": round(tokenised - started, 1),
        "load": round(loaded - tokenised, 1),
        "total": round(loaded - started, 1),
    }
    report["register_persons_per_second"] = round(persons / (loaded - started))
    report["creditor_tokens_per_second"] = (
        round(len(values) / tokens_seconds) if tokens_seconds else 0
    )
    report["notices_per_second"] = round(len(values) / match_seconds) if match_seconds else 0
    return report


def _truth(path: Path) -> Iterator[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or set(reader.fieldnames) != {"ref", "bsn"}:
            raise AdapterError("truth.csv: the header must be ref,bsn")
        for row in reader:
            yield row["ref"].strip(), row["bsn"].strip()


@linkage_app.command("evaluate")
def linkage_evaluate(
    register: Annotated[Path, typer.Option("--register", help="the BRP extract (brp.csv)")],
    notices: Annotated[Path, typer.Option("--notices", help="the creditor export (notices.csv)")],
    truth: Annotated[Path, typer.Option("--truth", help="ref,bsn; empty bsn: not in the register")],
) -> None:
    """Match a creditor export against a BRP extract through pseudonyms; print metrics."""
    with tempfile.TemporaryDirectory(prefix="signaalpoort-linkage-") as workdir:
        report = evaluate_linkage(
            register, notices, truth, workdir=Path(workdir), now=datetime.now(UTC)
        )
    typer.echo(json.dumps(report))


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
    "not_resolvable": EXIT_REFUSED,
    "person_unknown": EXIT_REFUSED,
    "not_routable": EXIT_REFUSED,
    "ssh_key_in_use": EXIT_CONFIG,
    "policy_conflict": EXIT_REFUSED,
    # adapters
    "adapter_error": EXIT_CONFIG,
    "row_invalid": EXIT_REFUSED,
    "profile_invalid": EXIT_CONFIG,
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
