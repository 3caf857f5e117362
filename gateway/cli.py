"""The gateway's commands: configuration, audit, the partner-key registry and ``serve``."""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from gateway import dropbox
from gateway.batch import process_waiting
from gateway.errors import PartnerUnknown
from gateway.partnerships import (
    ConsentIn,
    ObjectionIn,
    add_objection,
    add_partnership,
    end_partnership,
    list_partnerships,
    register_consent,
    stop_without_consent,
    withdraw_consent,
)
from gateway.register import load_register
from gateway.retention import RetentionJob, check_pseudonym, forget_person, purge_expired
from gateway.schema import Category
from gateway.service import Gateway, WorkerPool, settle
from gateway.settings import Settings
from gateway.store.engine import reading
from gateway.store.schema import partners
from keys.errors import Error as KeysError
from keys.jwk import OIN, PublicKey, public_keys_from_jwks
from keys.signed import sign_bytes, verify_bytes

if TYPE_CHECKING:
    from gateway.sftp import SFTPServerThread

console = Console()

HomeOption = Annotated[Path, typer.Option("--home", help="the gateway's home directory")]

config_app = typer.Typer(help="The gateway's configuration.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
retention_app = typer.Typer(
    help="Retention: purge expired signals and destroy their buckets' keys.",
    no_args_is_help=True,
)

CHECKPOINT_TYP = "audit-checkpoint+jwt"


@config_app.command("show")
def config_show(home: HomeOption) -> None:
    """Print the settings in force, secrets masked."""
    console.print_json(json.dumps(Settings.load(home).shown()))


@audit_app.command("verify")
def audit_verify(home: HomeOption) -> None:
    """Check the whole hash chain and every signed checkpoint."""
    gw = Gateway.open(Settings.load(home))
    try:
        keys = gw.keyring.published(now=gw.clock.now())
        with reading(gw.engine) as conn:
            count = gw.audit.verify(
                conn,
                verify_signature=lambda message, signature: _check_checkpoint(
                    message, signature, keys
                ),
            )
    finally:
        gw.close()
    console.print(f"audit log verifies: {count} events")


@audit_app.command("checkpoint")
def audit_checkpoint(home: HomeOption) -> None:
    """Sign the Merkle root of the log as it stands."""
    gw = Gateway.open(Settings.load(home))
    try:
        signer = gw.keyring.current("sig", now=gw.clock.now())
        with gw.engine.begin() as conn:
            size = gw.audit.checkpoint(
                conn, sign=lambda message: sign_bytes(message, typ=CHECKPOINT_TYP, signer=signer)
            )
    finally:
        gw.close()
    console.print(f"checkpoint signed at size {size}")


def _check_checkpoint(message: bytes, signature: str, keys: list[PublicKey]) -> None:
    if verify_bytes(signature, typ=CHECKPOINT_TYP, keys=keys, error=KeysError) != message:
        raise KeysError("checkpoint signature covers another statement")


def partner_keys_table(gw: Gateway, oin: str) -> Table:
    """A table of one partner's registered keys."""
    table = Table("kid", "use", "registered", "revoked")
    with reading(gw.engine) as conn:
        for row in gw.directory.keys_of(conn, oin):
            table.add_row(
                str(row["kid"]),
                str(row["use"]),
                str(row["registered_at"]),
                str(row["revoked_at"] or ""),
            )
    return table


def revoke_partner_key(gw: Gateway, kid: str) -> bool:
    with gw.engine.begin() as conn:
        return gw.directory.revoke_key(conn, kid, now=gw.clock.now())


def import_partner_keys(gw: Gateway, oin: str, jwks_file: Path) -> int:
    """Register a partner's newly published keys (after it rotated)."""
    keys = public_keys_from_jwks(jwks_file.read_bytes())
    now = gw.clock.now()
    added = 0
    with gw.engine.begin() as conn:
        gw.directory.partner(conn, oin)
        known = {r["kid"] for r in gw.directory.keys_of(conn, oin)}
        for key in keys:
            if key.kid not in known:
                gw.directory.add_key(conn, oin=OIN(oin), key=key, now=now)
                added += 1
    return added


def default_workers() -> int:
    """One intake process per core and one more: while one holds the store's write lock,
    the others keep every core busy opening and checking their batches. More processes
    cost more CPU per notice (on 2 cores, 4 processes kept 0.31 of the open+verify
    ceiling in bench/intake.py and 3 kept 0.34)."""
    return (os.cpu_count() or 1) + 1


def serve(
    home: Path,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    *,
    batches: bool = True,
) -> None:
    """Run the partner API over HTTPS with mutual TLS, and the SFTP intake, until interrupted.

    ``host`` and ``port`` default to the settings' ``listen_host`` and ``listen_port``;
    port 0 picks a free port; ``workers`` defaults to ``default_workers()``. With more
    than one worker, batches of notices are submitted in a pool of that many processes
    (``WorkerPool``), each taking the next batch as it comes free; with one, everything
    runs in this process. The SFTP intake (``gateway.sftp``) listens on the settings'
    ``sftp_listen_host`` and ``sftp_port``; with ``sftp_mode`` ``openssh`` there is no
    such server: OpenSSH writes the drop folders of ``openssh_dropboxes``, which are
    checked before anything starts, and the batch watcher reads them
    (docs/deploy-sftp.md).
    """
    workers = default_workers() if workers is None else workers
    # Imported here, so that the other commands do not load the web stack.
    import uvicorn

    from gateway.api import create_app
    from gateway.tls import server_config

    if workers < 1:
        raise typer.BadParameter("workers must be at least 1")
    home = home.resolve()
    settings = Settings.load(home)
    problems = dropbox.check_openssh(settings) if settings.sftp_mode == "openssh" else []
    if problems:
        raise typer.BadParameter("openssh_dropboxes: " + "; ".join(problems), param_hint="settings")
    host = settings.listen_host if host is None else host
    port = settings.listen_port if port is None else port
    # Migrate (and check the keys load) once, before workers could race to migrate.
    gw = Gateway.open(settings)
    pool = None
    if workers > 1:
        pool = WorkerPool(home, workers)
        pool.start()
    config = server_config(
        create_app(gw, close_on_shutdown=True, pool=pool), settings, host=host, port=port
    )
    sock = config.bind_socket()
    print(f"listening on https://{host}:{sock.getsockname()[1]} (mutual TLS)", flush=True)
    sftp = _start_sftp(settings)
    watcher = BatchWatcher(settings) if batches else None
    janitor = RetentionJob(
        Gateway.open(settings), interval=settings.retention_interval_seconds, owns_gateway=True
    )
    settle()
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        janitor.stop()
        if watcher is not None:
            watcher.stop()
        if sftp is not None:
            sftp.stop()


class _EmbeddedSFTP:
    """The embedded SFTP server of ``serve``, with the store connection it uses."""

    def __init__(self, gw: Gateway, server: SFTPServerThread) -> None:
        self.gw, self.server = gw, server

    def stop(self) -> None:
        self.server.stop()
        self.gw.close()


def _start_sftp(settings: Settings) -> _EmbeddedSFTP | None:
    """Start the embedded SFTP intake; in OpenSSH mode say instead which drop folders
    the batch watcher reads."""
    from gateway.sftp import start_in_thread

    if settings.sftp_mode == "openssh":
        for oin, box in dropbox.dropboxes(settings).items():
            print(
                f"watching {box.inbox} for {oin} (OpenSSH drop folder; receipts to {box.receipts})",
                flush=True,
            )
        return None
    # The SFTP intake runs in a thread of this process with a store connection of its own.
    sftp_gw = Gateway.open(settings)
    try:
        sftp = start_in_thread(sftp_gw, host=settings.sftp_listen_host, port=settings.sftp_port)
    except BaseException:
        sftp_gw.close()
        raise
    print(
        f"listening on sftp://{settings.sftp_listen_host}:{sftp.port} "
        f"(creditors' SSH keys; host key {sftp.intake.host_key_fingerprint})",
        flush=True,
    )
    return _EmbeddedSFTP(sftp_gw, sftp)


class BatchWatcher:
    """A thread that processes complete batch uploads every ``batch_interval_seconds``."""

    def __init__(self, settings: Settings) -> None:
        self._gw = Gateway.open(settings)
        self._stopping = threading.Event()
        self._workers = settings.batch_workers or (os.cpu_count() or 1)
        self._interval = settings.batch_interval_seconds
        self._thread = threading.Thread(target=self._run, name="batches", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            process_waiting(self._gw, workers=self._workers)
            self._stopping.wait(self._interval)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=60)
        self._gw.close()


def batch_run(
    home: HomeOption,
    workers: Annotated[
        int, typer.Option(min=0, help="processes judging a file (0: the settings')")
    ] = 0,
) -> None:
    """Process every complete batch upload waiting now, then stop."""
    settings = Settings.load(home)
    gw = Gateway.open(settings)
    settle()
    try:
        results = process_waiting(
            gw, workers=workers or settings.batch_workers or (os.cpu_count() or 1)
        )
    finally:
        gw.close()
    for result in results:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items()))
        console.print(
            f"{result.moved_to.name}: {result.status} ({counts}); receipt {result.receipt}"
        )


def register_load(
    path: Annotated[Path, typer.Argument(help="the register the tokeniser wrote (JSON Lines)")],
    home: HomeOption,
    gemeente: Annotated[str, typer.Option("--gemeente", help="the register's gemeente code")],
    by: Annotated[str, typer.Option("--by", help="the OIN of the delivering municipality")],
    labels: Annotated[
        Path | None, typer.Option("--labels", help="the routing labels (JSON Lines)")
    ] = None,
) -> None:
    """Check a register file and replace the gemeente's register with it, atomically."""
    gw = Gateway.open(Settings.load(home))
    try:
        result = load_register(gw, path, gemeente=gemeente, by=by, labels=labels)
    finally:
        gw.close()
    console.print(
        f"register {gemeente} version {result.version} loaded: "
        f"{result.persons} persons, {result.tokens} tokens, {result.labelled} with labels"
        + (f" ({result.labels_dropped} labels for persons not in it dropped)" if labels else "")
    )


@retention_app.command("run")
def retention_run(home: HomeOption) -> None:
    """Purge every expired bucket now, keeping open cases, and destroy its master key."""
    gw = Gateway.open(Settings.load(home))
    try:
        result = purge_expired(gw)
    finally:
        gw.close()
    table = Table("bucket", "notices deleted", "deliveries deleted", "open cases kept", "moved to")
    for purged in result.purged:
        table.add_row(
            purged.bucket,
            str(purged.notices),
            str(purged.deliveries),
            str(purged.kept),
            purged.moved_to or "",
        )
    console.print(table)
    console.print(
        f"{len(result.purged)} buckets purged: {result.notices} notices and "
        f"{result.deliveries} deliveries deleted, {result.kept} open cases kept; "
        f"{len(result.shredded)} master keys destroyed"
    )


def forget(
    home: HomeOption,
    pseudonym: Annotated[
        str,
        typer.Option("--pseudonym", help="the person's pseudonym (register pseudonym --bsn)"),
    ],
) -> None:
    """Erase one person's signals on request: notices and deliveries, audited."""
    try:
        check_pseudonym(pseudonym)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--pseudonym") from None
    gw = Gateway.open(Settings.load(home))
    try:
        result = forget_person(gw, pseudonym=pseudonym)
    finally:
        gw.close()
    console.print(f"erased {result.notices} notices and {result.deliveries} deliveries")


# -- policy: partnerships, objections, consents -----------------------------------------

partner_app = typer.Typer(
    help="Partnerships: which creditors a municipality receives signals from.",
    no_args_is_help=True,
)
consent_app = typer.Typer(help="Consent records (by match tokens).", no_args_is_help=True)

CategoriesOption = Annotated[
    str, typer.Option("--categories", help="comma-separated categories, e.g. HUUR,ENERGIE")
]


def _categories(text: str) -> list[Category]:
    try:
        return [Category(c.strip().upper()) for c in text.split(",") if c.strip()]
    except ValueError:
        raise typer.BadParameter(
            "one or more of " + ", ".join(c.value for c in Category), param_hint="--categories"
        ) from None


def _municipality(gw: Gateway, gemeente: str) -> str:
    """The OIN of the municipality registered for ``gemeente``."""
    with reading(gw.engine) as conn:
        oin = conn.execute(
            select(partners.c.oin).where(
                partners.c.role == "municipality", partners.c.gemeente == gemeente
            )
        ).scalar()
    if oin is None:
        raise PartnerUnknown(f"no municipality {gemeente}", cause="no_municipality")
    return str(oin)


@partner_app.command("add")
def partner_add(
    home: HomeOption,
    gemeente: Annotated[str, typer.Option("--gemeente", help="the municipality's code")],
    creditor: Annotated[str, typer.Option("--creditor", help="the creditor's OIN")],
    categories: CategoriesOption,
    starts: Annotated[datetime, typer.Option("--from", formats=["%Y-%m-%d"])],
    ends: Annotated[
        datetime | None,
        typer.Option("--until", formats=["%Y-%m-%d"], help="the first day it no longer holds"),
    ] = None,
) -> None:
    """Register a partnership: the municipality receives the creditor's signals."""
    gw = Gateway.open(Settings.load(home))
    try:
        by = _municipality(gw, gemeente)
        with gw.engine.begin() as conn:
            new_id = add_partnership(
                conn,
                gemeente=gemeente,
                creditor=creditor,
                categories=_categories(categories),
                starts=starts.date(),
                ends=ends.date() if ends else None,
                by=by,
                now=gw.clock.now(),
                audit=gw.audit,
            )
    finally:
        gw.close()
    console.print(f"partnership {new_id} registered")


@partner_app.command("list")
def partner_list(
    home: HomeOption,
    gemeente: Annotated[str | None, typer.Option("--gemeente")] = None,
) -> None:
    """The partnerships, with their state today."""
    gw = Gateway.open(Settings.load(home))
    try:
        today = gw.clock.now().date()
        with reading(gw.engine) as conn:
            rows = list_partnerships(conn, gemeente=gemeente)
    finally:
        gw.close()
    table = Table("id", "gemeente", "creditor", "categories", "from", "until", "state")
    for row in rows:
        p = row.partnership
        table.add_row(
            str(p.id),
            p.gemeente,
            p.creditor,
            ",".join(sorted(p.categories)),
            p.period.starts.isoformat(),
            p.period.ends.isoformat() if p.period.ends else "",
            p.period.state(today),
        )
    console.print(table)


@partner_app.command("end")
def partner_end(
    partnership: Annotated[int, typer.Argument(help="the partnership's id")],
    home: HomeOption,
    gemeente: Annotated[str, typer.Option("--gemeente", help="the municipality's code")],
    ends: Annotated[
        datetime | None,
        typer.Option("--on", formats=["%Y-%m-%d"], help="the first day it no longer holds"),
    ] = None,
) -> None:
    """End a partnership (today by default): no signal is taken from that day."""
    gw = Gateway.open(Settings.load(home))
    try:
        by = _municipality(gw, gemeente)
        now = gw.clock.now()
        with gw.engine.begin() as conn:
            done = end_partnership(
                conn,
                partnership,
                gemeente=gemeente,
                ends=ends.date() if ends else now.date(),
                by=by,
                now=now,
                audit=gw.audit,
            )
    finally:
        gw.close()
    if not done:
        console.print(f"no partnership {partnership} of {gemeente}")
        raise typer.Exit(1)
    console.print(f"partnership {partnership} ended")


def objection_load(
    file: Annotated[Path, typer.Argument(help="the objection the municipality wrote (JSON)")],
    home: HomeOption,
) -> None:
    """Register an objection written by the municipality's ``objection add``."""
    objection = ObjectionIn.model_validate_json(file.read_bytes())
    gw = Gateway.open(Settings.load(home))
    try:
        by = _municipality(gw, objection.gemeente)
        with gw.engine.begin() as conn:
            new_id = add_objection(conn, objection, by=by, now=gw.clock.now(), audit=gw.audit)
    finally:
        gw.close()
    console.print(f"objection {new_id} registered")


@consent_app.command("add")
def consent_add(
    file: Annotated[Path, typer.Argument(help="the consent record (JSON, docs/policy.md)")],
    home: HomeOption,
) -> None:
    """Register a consent record; its person is looked up in the register by tokens."""
    consent = ConsentIn.model_validate_json(file.read_bytes())
    gw = Gateway.open(Settings.load(home))
    try:
        new_id = register_consent(gw, consent, by=consent.creditor)
    finally:
        gw.close()
    console.print(f"consent {new_id} registered")


@consent_app.command("withdraw")
def consent_withdraw(
    ref: Annotated[str, typer.Argument(help="the consent's reference")],
    home: HomeOption,
    creditor: Annotated[str, typer.Option("--creditor", help="the creditor's OIN")],
) -> None:
    """Withdraw a consent: its new notices are refused, its queued signals stop."""
    gw = Gateway.open(Settings.load(home))
    try:
        with gw.engine.begin() as conn:
            stopped = withdraw_consent(
                conn, creditor=creditor, ref=ref, by=creditor, now=gw.clock.now(), audit=gw.audit
            )
    finally:
        gw.close()
    if stopped is None:
        console.print(f"no consent {ref} of {creditor}")
        raise typer.Exit(1)
    console.print(f"consent {ref} withdrawn; {stopped} signal(s) stopped")


@consent_app.command("sweep")
def consent_sweep(home: HomeOption) -> None:
    """Stop the queued signals whose consent expired or was withdrawn."""
    gw = Gateway.open(Settings.load(home))
    try:
        with gw.engine.begin() as conn:
            stopped = stop_without_consent(conn, now=gw.clock.now(), audit=gw.audit)
    finally:
        gw.close()
    console.print(f"{stopped} signal(s) stopped")
