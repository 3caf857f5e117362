"""SFTP intake: a batch file of 100,000 notices against a register of 100,000. Prints JSON.

    .venv/bin/python -m bench.sftp [--notices 100000] [--persons 100000] [--workers 2]

Builds a demo whose outreach key set has 10 recipients (SQLite, the embedded default);
the municipality tokenises a synthetic register (``bench/dutch.py``) and the gateway
loads it; the zorg creditor seals that many notices of the synthetic export into one
batch file (in worker processes: sealing is the creditor's cost, not measured). Then:

- ``upload_seconds``: the file through the embedded SFTP server (``signaalpoort serve``,
  paramiko, the temporary-name convention), and ``plain_copy_seconds``: the same bytes
  copied as a plain file, so the transfer's own cost is visible;
- ``processing_seconds``: from the upload being complete to its receipt written, by
  ``signaalpoort batch run`` in a child process; ``notices_per_second`` over that;
  ``peak_memory_mb``: that child's largest resident set (its workers' included).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paramiko

from adapters import profile
from adapters.creditor import Creditor, read_export
from adapters.errors import RowInvalid
from adapters.municipality import Municipality
from adapters.register import PseudonymKey, read_brp, tokenise, write_register
from bench import dutch
from gateway import dropbox
from gateway.register import load_register
from gateway.service import Gateway
from gateway.settings import Settings
from keys.home import PartyHome
from keys.tokens import Tokeniser
from signaalpoort import AMSTERDAM_OIN, GEMEENTE, LocalTransport, init_demo

EXTRA_TEAMS = 7  # noord, zuid, the back office and seven more: 10 outreach recipients
CREDITOR = "zorg"
ATTESTED = {"premieachterstandSinds": "2025-01-01"}
"""What a ZORG notice attests (the default policy): arrears since before any 2026 signal."""
TARGETS = {"processing_seconds": 60, "peak_memory_mb": 500}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def register(demo: Path, persons: Path) -> dict[str, float]:
    """The municipality tokenises the extract; the gateway loads it."""
    started = time.perf_counter()
    home = PartyHome(demo / "amsterdam")
    tokeniser = Tokeniser(Municipality(home).linkage_secret())
    out = demo / "amsterdam" / "register.jsonl"
    write_register(
        out,
        tokenise(
            read_brp(persons),
            tokeniser=tokeniser,
            pseudonyms=PseudonymKey.load_or_create(home.secrets_dir),
            gemeente=GEMEENTE,
            now=datetime.now(UTC),
        ),
    )
    gw = Gateway.open(Settings.load(demo / "gateway"))
    try:
        result = load_register(gw, out, gemeente=GEMEENTE, by=AMSTERDAM_OIN)
    finally:
        gw.close()
    return {"persons": result.persons, "seconds": round(time.perf_counter() - started, 1)}


def seal_part(args: tuple[str, list[dict[str, str]]]) -> list[str]:
    """Batch-file lines for some rows of the export, in a worker process."""
    demo, rows = args
    now = datetime.now(UTC)
    gw = Gateway.open(Settings.load(Path(demo) / "gateway"))
    creditor = Creditor(PartyHome(Path(demo) / CREDITOR), now=now)
    transport = LocalTransport(gw, creditor.identity.oin)
    lines = []
    try:
        for i, values in enumerate(rows):
            try:
                sealed = creditor.seal_row(profile.Row(i + 2, values, ATTESTED), transport, now=now)
            except RowInvalid:
                continue  # a postcode outside the municipality: not this gateway's
            lines.append(json.dumps({"envelope": sealed.envelope}, separators=(",", ":")))
    finally:
        gw.close()
    return lines


def seal(demo: Path, export: Path, count: int, workers: int) -> Path:
    rows = [
        {**row.values, "category": "ZORG", "ref": f"BENCH-{n:06d}"}
        for n, row in enumerate(read_export(export))
    ]
    parts = [rows[i::workers] for i in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        lines = [
            line for part in pool.map(seal_part, [(str(demo), p) for p in parts]) for line in part
        ]
    path = demo / "batch.jsonl"
    path.write_text("\n".join(lines[:count]) + "\n")
    if len(lines) < count:
        raise SystemExit(f"only {len(lines)} notices could be sealed")
    return path


def upload(demo: Path, port: int, path: Path) -> float:
    """The file through the embedded SFTP server, under its temporary name, then renamed."""
    home = PartyHome(demo / CREDITOR)
    oin = home.identity().oin
    key = paramiko.Ed25519Key.from_private_key_file(str(home.path / "ssh" / "id_ed25519"))
    transport = paramiko.Transport(("127.0.0.1", port))
    deadline = time.time() + 30
    started = time.perf_counter()
    try:
        transport.connect(username=oin, pkey=key)
        client = paramiko.SFTPClient.from_transport(transport)
        assert client is not None
        temporary = dropbox.temporary_name("2026-11.jsonl")
        client.put(str(path), f"inbox/{temporary}")
        client.rename(f"inbox/{temporary}", "inbox/2026-11.jsonl")
        client.close()
    finally:
        transport.close()
    if time.time() > deadline:
        raise SystemExit("the upload took too long")
    return time.perf_counter() - started


def process(demo: Path, workers: int) -> tuple[float, float]:
    """Seconds of ``signaalpoort batch run`` in a child process, and the largest memory
    (MB) that child and its worker processes held at once, sampled from /proc."""
    env = {**os.environ}
    env.pop("SIGNAALPOORT_DATABASE_URL", None)
    started = time.perf_counter()
    child = subprocess.Popen(  # noqa: S603 (our own command)
        [sys.executable, "-m", "signaalpoort", "batch", "run", "--home", str(demo / "gateway"),
         "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    peak = 0
    while child.poll() is None:
        peak = max(peak, tree_rss(child.pid))
        time.sleep(0.1)
    seconds = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"batch run failed ({child.returncode})")
    return seconds, peak / 2**20


def tree_rss(pid: int) -> int:
    """The resident bytes of a process and all its descendants now (0 once gone)."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        proc = Path("/proc") / str(current)
        try:
            status = (proc / "status").read_text()
            for task in (proc / "task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notices", type=int, default=100_000)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    report: dict[str, Any] = {"notices": args.notices, "persons": args.persons}
    with tempfile.TemporaryDirectory(prefix="signaalpoort-bench-sftp-") as tmp:
        root = Path(tmp)
        demo = root / "demo"
        init_demo(demo, now=datetime.now(UTC), teams=EXTRA_TEAMS)
        # A fifth more rows than notices: some live outside the municipality.
        data = dutch.generate(args.persons, args.notices + args.notices // 5, seed=1)
        dutch.write(data, root / "data")
        report["register"] = register(demo, root / "data" / "brp.csv")
        started = time.perf_counter()
        batch = seal(demo, root / "data" / "notices.csv", args.notices, args.workers)
        report["sealing_seconds_creditor_side"] = round(time.perf_counter() - started, 1)
        report["file_mb"] = round(batch.stat().st_size / 2**20, 1)

        started = time.perf_counter()
        shutil.copyfile(batch, root / "plain-copy.jsonl")
        report["plain_copy_seconds"] = round(time.perf_counter() - started, 2)

        port = free_port()
        env = {**os.environ, "SIGNAALPOORT_SFTP_PORT": str(port)}
        env.pop("SIGNAALPOORT_DATABASE_URL", None)
        server = subprocess.Popen(  # noqa: S603 (our own command)
            [sys.executable, "-m", "signaalpoort", "serve", "--home", str(demo / "gateway"),
             "--port", str(free_port()), "--workers", "1", "--no-batches"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            time.sleep(3)
            report["upload_seconds"] = round(upload(demo, port, batch), 2)
        finally:
            server.terminate()
            server.wait(30)
        seconds, memory = process(demo, args.workers)
        receipt = dropbox.receipt_path(
            demo / "gateway", PartyHome(demo / CREDITOR).identity().oin, "2026-11.jsonl"
        )
        if not receipt.exists():
            raise SystemExit("no receipt was written")
        report["processing_seconds"] = round(seconds, 1)
        report["notices_per_second"] = round(args.notices / seconds)
        report["peak_memory_mb"] = round(memory)
        report["workers"] = args.workers
        report["targets"] = TARGETS
    print(json.dumps(report))


if __name__ == "__main__":
    main()
