"""The partners' commands: ``send`` for creditors, ``inbox pull`` for teams, ``inbox
resolve`` for the back office."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
from rich.table import Table

from adapters.creditor import GATEWAY_PIN, Creditor, SendResult, read_export, send_rows
from adapters.errors import NotEnrolled
from adapters.municipality import Municipality
from adapters.objection import objection, objection_from_brp
from adapters.profile import load_profile
from adapters.register import (
    PseudonymKey,
    label_records,
    read_brp,
    read_labels,
    tokenise_extract,
    write_labels,
)
from adapters.rest import RestClient, gateway_url
from adapters.sftp import SftpClient, SftpTransport
from adapters.team import Team, pull_to_file
from keys.bloom import BloomEncoder
from keys.home import PartyHome
from keys.jwk import public_keys_from_jwks
from keys.tokens import PersonFields, Tokeniser

console = Console()
EXIT_REFUSED = 1  # docs/reason-codes.md: something was refused
CLOSE_REASONS = ("not_resident", "moved_out", "deceased", "wrong_signal")
"""How the back office may close a review signal (the partner API's ``close``)."""

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="the party's home (default $SIGNAALPOORT_HOME or ./.signaalpoort)"),
]
GatewayOption = Annotated[
    str | None, typer.Option("--gateway", help="the gateway's URL (default: from enrolment)")
]

inbox_app = typer.Typer(help="A team's inbox of routed signals.", no_args_is_help=True)
register_app = typer.Typer(
    help="The municipality's pseudonymised register: tokenise the BRP extract, look up a "
    "pseudonym, pseudonymise routing labels.",
    no_args_is_help=True,
)


def send(
    file: Annotated[Path, typer.Argument(help="the creditor's CSV export", exists=True)],
    home: HomeOption = None,
    via: Annotated[str, typer.Option(help="rest, or sftp: one batch file")] = "rest",
    gateway: GatewayOption = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1000)] = 500,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            help="the export's profile (docs/profiles.md): a profile file (*.json) or a "
            "shipped profile by name, e.g. nl-cp1252; default: DESIGN.md's notices.csv",
        ),
    ] = None,
) -> None:
    """Seal a CSV export's notices, send them, and verify the gateway's signed receipts.

    ``--via sftp`` uploads them as one batch file (``<export name>.jsonl``) to the
    gateway's SFTP intake and waits for its receipt; the outreach key set still comes
    over REST.
    """
    if via not in ("rest", "sftp"):
        raise typer.BadParameter("rest or sftp", param_hint="--via")
    export_profile = load_profile(profile) if profile is not None else None
    party = PartyHome.resolve(home)
    now = datetime.now(UTC)
    rows = read_export(file, using=export_profile)
    with RestClient(party, gateway_url(party, gateway)) as client:
        refresh_gateway_keys(party, client)
        creditor = Creditor(party, now=now)
        if via == "rest":
            result = send_rows(creditor, rows, client, now=now, batch_size=batch_size)
        else:
            result = _send_sftp(party, creditor, rows, client, file, now=now)
    receipt_path = file.with_name(file.name + ".receipt.json")
    receipt_path.write_text(
        json.dumps(
            {
                "file": file.name,
                "counts": {
                    "accepted": result.accepted,
                    "duplicate": result.duplicate,
                    "refused": result.refused,
                },
                "reasons": result.reasons or {},
                "receipts": result.receipts or [],
            },
            indent=2,
        )
        + "\n"
    )
    table = Table("accepted", "duplicate", "refused", "reasons")
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted((result.reasons or {}).items()))
    table.add_row(str(result.accepted), str(result.duplicate), str(result.refused), reasons)
    console.print(table)
    console.print(f"receipts written to {receipt_path}")
    if result.refused:
        raise typer.Exit(EXIT_REFUSED)


def _send_sftp(
    party: PartyHome,
    creditor: Creditor,
    rows: list[Any],
    keys: RestClient,
    file: Path,
    *,
    now: datetime,
) -> SendResult:
    name = dropbox_name(file)
    with (
        SftpClient(party) as sftp,
        Progress(TextColumn("upload"), BarColumn(), DownloadColumn(), console=console) as bar,
    ):
        task = bar.add_task("upload", total=None)
        transport = SftpTransport(
            keys,
            sftp,
            name=name,
            verify=creditor.verify_receipt,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
        return send_rows(creditor, rows, transport, now=now, batch_size=max(1, len(rows)))


def dropbox_name(file: Path) -> str:
    """The batch file's name at the gateway: the export's, with ``.jsonl``."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", file.stem).lstrip(".") or "batch"
    return f"{stem[:150]}.jsonl"


def refresh_gateway_keys(party: PartyHome, client: RestClient) -> None:
    """Pin the gateway's keys as it publishes them now (it may have rotated).

    The answer comes over TLS to a server whose certificate chains to the home's CA;
    the municipality's key set stays pinned by its own signature, whatever this says.
    """
    published = public_keys_from_jwks(client.gateway_keys())
    if {k.kid for k in published} != {k.kid for k in party.pinned(GATEWAY_PIN)}:
        party.pin(GATEWAY_PIN, published)


@inbox_app.command("pull")
def inbox_pull(
    home: HomeOption = None,
    out: Annotated[Path | None, typer.Option(help="write JSON lines here (default stdout)")] = None,
    gateway: GatewayOption = None,
) -> None:
    """Pull the signals routed to this team, open them with its own key, acknowledge them."""
    party = PartyHome.resolve(home)
    team = Team(party, now=datetime.now(UTC))
    with RestClient(party, gateway_url(party, gateway)) as client:
        if out is None:
            count = pull_to_file(team, client, sys.stdout)
        else:
            with out.open("a", encoding="utf-8") as fh:
                count = pull_to_file(team, client, fh)
    typer.echo(f"{count} signal(s) pulled", err=True)


@inbox_app.command("resolve")
def inbox_resolve(
    delivery_id: Annotated[
        int, typer.Argument(metavar="ID", min=1, help="the review signal's inbox id")
    ],
    home: HomeOption = None,
    pseudonym: Annotated[
        str | None,
        typer.Option(help="assign to this person (from the municipality's register pseudonym)"),
    ] = None,
    close: Annotated[str | None, typer.Option(help="close it: " + ", ".join(CLOSE_REASONS))] = None,
    gateway: GatewayOption = None,
) -> None:
    """At the back office: resolve a review signal to a person, or close it."""
    if (pseudonym is None) == (close is None):
        raise typer.BadParameter("give exactly one of --pseudonym and --close")
    if close is not None and close not in CLOSE_REASONS:
        raise typer.BadParameter("one of " + ", ".join(CLOSE_REASONS), param_hint="--close")
    party = PartyHome.resolve(home)
    with RestClient(party, gateway_url(party, gateway)) as client:
        answer = client.resolve(delivery_id, pseudonym=pseudonym, close=close)
    if "error" in answer:
        typer.echo(f"refused: {answer['error']}: {answer['detail']}", err=True)
        raise typer.Exit(EXIT_REFUSED)
    if answer["status"] == "routed":
        typer.echo(f"signal {answer['id']} routed to team {answer['team']}")
    else:
        typer.echo(f"signal {answer['id']} closed")


@register_app.command("tokenise")
def register_tokenise(
    file: Annotated[Path, typer.Argument(help="the BRP extract (brp.csv)", exists=True)],
    out: Annotated[Path, typer.Option("--out", help="the register to write (JSON Lines)")],
    home: HomeOption = None,
) -> None:
    """Turn a BRP extract into the pseudonymised register the gateway loads."""
    municipality = Municipality(PartyHome.resolve(home))
    try:
        secret = municipality.linkage_secret()
    except FileNotFoundError:
        raise NotEnrolled("this home holds no linkage secret") from None
    counts = tokenise_extract(
        file,
        out,
        tokeniser=Tokeniser(secret),
        encoder=BloomEncoder(secret),
        pseudonyms=PseudonymKey.load_or_create(municipality.home.secrets_dir),
        gemeente=municipality.gemeente,
        now=datetime.now(UTC),
    )
    total = sum(counts.values())
    typer.echo(
        f"{total} person(s) written to {out}: {counts['resident']} resident, "
        f"{counts['deceased']} deceased, {counts['moved_out']} moved out"
    )


@register_app.command("pseudonym")
def register_pseudonym(
    bsn: Annotated[str, typer.Option("--bsn", help="the BSN of the person asking")],
    home: HomeOption = None,
) -> None:
    """Print a person's pseudonym in the register (for a request under art. 15 AVG)."""
    party = PartyHome.resolve(home)
    Municipality(party)  # refuses a home that is not a municipality's
    typer.echo(PseudonymKey.load(party.secrets_dir).person(bsn))


@register_app.command("labels")
def register_labels(
    file: Annotated[Path, typer.Argument(help="the routing labels (labels.csv)", exists=True)],
    out: Annotated[Path, typer.Option("--out", help="the labels to write (JSON Lines)")],
    home: HomeOption = None,
) -> None:
    """Pseudonymise routing labels by BSN with the register's pseudonym key (no BSN out)."""
    municipality = Municipality(PartyHome.resolve(home))
    pseudonyms = PseudonymKey.load(municipality.home.secrets_dir)  # NotEnrolled if none
    records = label_records(
        read_labels(file),
        pseudonyms=pseudonyms,
        gemeente=municipality.gemeente,
        now=datetime.now(UTC),
    )
    count = write_labels(out, records)
    typer.echo(f"{count} person(s) with labels written to {out}")


objection_app = typer.Typer(
    help="Objections: the municipality records them, the gateway stops matching signals.",
    no_args_is_help=True,
)


@objection_app.command("add")
def objection_add(
    ref: Annotated[str, typer.Option("--ref", help="the municipality's reference")],
    out: Annotated[Path, typer.Option("--out", help="the objection file to write (JSON)")],
    home: HomeOption = None,
    bsn: Annotated[str | None, typer.Option("--bsn", help="look the person up by BSN")] = None,
    brp: Annotated[Path | None, typer.Option("--brp", help="the BRP extract (brp.csv)")] = None,
    achternaam: Annotated[str, typer.Option(help="for a person not in the extract")] = "",
    voorvoegsel: Annotated[str, typer.Option()] = "",
    voorletters: Annotated[str, typer.Option()] = "",
    geboortedatum: Annotated[str, typer.Option(help="YYYY-MM-DD")] = "",
    postcode: Annotated[str, typer.Option()] = "",
    huisnummer: Annotated[str, typer.Option()] = "",
    creditor: Annotated[
        list[str] | None, typer.Option("--creditor", help="only this creditor (repeatable)")
    ] = None,
    category: Annotated[
        list[str] | None, typer.Option("--category", help="only this category (repeatable)")
    ] = None,
    starts: Annotated[
        datetime | None, typer.Option("--from", formats=["%Y-%m-%d"], help="default today")
    ] = None,
    ends: Annotated[datetime | None, typer.Option("--until", formats=["%Y-%m-%d"])] = None,
) -> None:
    """Record a person's objection as tokens and pseudonym, for the gateway to register
    (``signaalpoort objection load``); name, BSN and address stay here."""
    municipality = Municipality(PartyHome.resolve(home))
    try:
        tokeniser = Tokeniser(municipality.linkage_secret())
    except FileNotFoundError:
        raise NotEnrolled("this home holds no linkage secret") from None
    common: dict[str, Any] = {
        "ref": ref,
        "gemeente": municipality.gemeente,
        "tokeniser": tokeniser,
        "starts": (starts or datetime.now(UTC)).date(),
        "ends": ends.date() if ends else None,
        "creditors": creditor or [],
        "categories": category or [],
    }
    record = None
    if bsn is not None:
        if brp is None:
            raise typer.BadParameter("--bsn needs --brp", param_hint="--brp")
        record = objection_from_brp(
            read_brp(brp),
            bsn,
            pseudonyms=PseudonymKey.load(municipality.home.secrets_dir),
            **common,
        )
    if record is None:
        person = PersonFields.from_creditor(
            achternaam=achternaam,
            voorvoegsel=voorvoegsel,
            voorletters=voorletters,
            geboortedatum=geboortedatum,
            postcode=postcode,
            huisnummer=huisnummer,
            bsn=bsn or "",
        )
        record = objection(person=person, pseudonym=None, **common)
    out.write_text(json.dumps(record, indent=2) + "\n")
    found = "in the register" if record["person"] else "by tokens only (not in the extract)"
    typer.echo(f"objection {ref} written to {out}: {found}")
