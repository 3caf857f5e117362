"""REST intake end to end: notices/s through HTTPS with mutual TLS, against the ceiling.

    .venv/bin/python bench/intake.py [--notices 18000] [--rounds 3] [--batch 500] [--workers N]

Builds a demo whose outreach key set has 10 recipients (SQLite, the embedded default),
seals the notices beforehand (sealing is the creditor's cost, not the gateway's), starts
``signaalpoort serve`` with its pool of intake processes (by default as many as ``serve``
itself starts), and sends batches from a few client threads at once. The ceiling is
open+verify alone on every core, measured in the same run; the ratio says how much of it
the whole pipeline keeps. The machine's speed drifts, so it runs several rounds and
reports the median. A round is long (36 batches): at its end the last batches finish on
fewer workers than there are cores, a large share of a short round's time. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from adapters import profile
from adapters.creditor import Creditor, read_export
from adapters.rest import RestClient
from gateway.cli import default_workers
from keys.envelope import SignerKey, open_envelope
from keys.home import PartyHome
from keys.receipt import verify_receipt
from signaalpoort import DEMO_PARTIES, init_demo

EXTRA_TEAMS = 7  # noord, zuid, the back office and seven more: 10 outreach recipients
CREDITOR = "zorg"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seal_part(args: tuple[str, str, int, int]) -> list[str]:
    """Seal rows ``start..stop`` of the synthetic export, in a worker process."""
    demo, url, start, stop = args
    now = datetime.now(UTC)
    home = PartyHome(Path(demo) / CREDITOR)
    creditor = Creditor(home, now=now)
    rows = read_export(Path(demo) / CREDITOR / "notices.csv")
    with RestClient(home, url) as client:
        return [
            creditor.seal_row(
                profile.Row(
                    i,
                    {**rows[i % len(rows)].values, "ref": f"BENCH-{i}"},
                    rows[i % len(rows)].attestations,
                ),
                client,
                now=now,
            ).envelope
            for i in range(start, stop)
        ]


def ceiling_part(args: tuple[str, list[str], float]) -> float:
    """open+verify per second on one core, over the pre-sealed envelopes."""
    demo, envelopes, seconds = args
    now = datetime.now(UTC)
    gateway = PartyHome(Path(demo) / "gateway").keyring()
    creditor = PartyHome(Path(demo) / CREDITOR)
    oin = creditor.identity().oin
    record = SignerKey(creditor.keyring().current("sig", now=now).public(), oin)
    intake = gateway.accepted("enc", now=now)
    audience = DEMO_PARTIES[0].oin
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        open_envelope(
            envelopes[count % len(envelopes)],
            intake_keys=intake,
            signer_key=lambda kid: record,
            sender=oin,
            audience=audience,
            now=now,
        )
        count += 1
    return count / elapsed


def ceiling(demo: Path, sample: list[str], cores: int) -> float:
    """open+verify per second with every core busy, one process per core."""
    with ProcessPoolExecutor(cores) as pool:
        return sum(pool.map(ceiling_part, [(str(demo), sample, 4.0)] * cores))


def wait_ready(url: str, home: PartyHome, deadline: float) -> None:
    while time.time() < deadline:
        try:
            with RestClient(home, url, timeout=2) as client:
                client.gateway_keys()
                return
        except Exception:  # noqa: BLE001 (the server is still starting)
            time.sleep(0.2)
    raise SystemExit("the gateway did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--notices", type=int, default=18_000, help="notices per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the median is reported")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    cores = os.cpu_count() or 2

    with tempfile.TemporaryDirectory(prefix="signaalpoort-bench-") as tmp:
        demo = Path(tmp) / "demo"
        init_demo(demo, now=datetime.now(UTC), teams=EXTRA_TEAMS)
        port = free_port()
        url = f"https://localhost:{port}"
        env = {**os.environ, "SIGNAALPOORT_HOME": str(demo / "gateway")}
        env.pop("SIGNAALPOORT_DATABASE_URL", None)
        server = subprocess.Popen(  # noqa: S603 (our own command)
            [
                sys.executable,
                "-m",
                "signaalpoort",
                "serve",
                "--home",
                str(demo / "gateway"),
                "--port",
                str(port),
                "--workers",
                str(args.workers),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        connections: list[RestClient] = []
        try:
            home = PartyHome(demo / CREDITOR)
            wait_ready(url, home, time.time() + 60)
            total = args.notices * args.rounds
            step = -(-total // cores)
            parts = [(str(demo), url, i, min(i + step, total)) for i in range(0, total, step)]
            started = time.perf_counter()
            with ProcessPoolExecutor(cores) as pool:
                envelopes = [e for part in pool.map(seal_part, parts) for e in part]
            sealing = time.perf_counter() - started
            keys = home.pinned("gateway")
            outcomes = {"accepted": 0, "duplicate": 0, "refused": 0}
            # Each client thread keeps its connection, as `signaalpoort send` does for
            # the batches of one file.
            local = threading.local()

            def send(batch: list[str]) -> dict[str, int]:
                client = getattr(local, "client", None)
                if client is None:
                    client = local.client = RestClient(home, url)
                    connections.append(client)
                receipt = verify_receipt(client.submit(batch), keys=keys)
                counts = dict.fromkeys(outcomes, 0)
                for item in receipt["items"]:
                    counts[item["outcome"]] += 1
                return counts

            rounds = []
            for r in range(args.rounds):
                part = envelopes[r * args.notices : (r + 1) * args.notices]
                batches = [part[i : i + args.batch] for i in range(0, len(part), args.batch)]
                # The ceiling is measured before and after each round and averaged, since
                # the machine's speed drifts; the server idles meanwhile.
                before = ceiling(demo, part[:200], cores)
                started = time.perf_counter()
                accepted = 0
                with ThreadPoolExecutor(args.clients) as clients:
                    for counts in clients.map(send, batches):
                        accepted += counts["accepted"]
                        for k, v in counts.items():
                            outcomes[k] += v
                elapsed = time.perf_counter() - started
                after = ceiling(demo, part[:200], cores)
                rate = accepted / elapsed
                rounds.append((rate, (before + after) / 2))
        finally:
            for client in connections:
                client.close()
            server.terminate()
            server.wait(timeout=30)

    rates = sorted(rate for rate, _ in rounds)
    ratios = sorted(rate / ceil for rate, ceil in rounds)
    print(
        json.dumps(
            {
                "benchmark": "intake",
                "store": "sqlite",
                "outreach_recipients": 3 + EXTRA_TEAMS,
                "notices_per_round": args.notices,
                "rounds": args.rounds,
                "batch": args.batch,
                "server_workers": args.workers,
                "client_threads": args.clients,
                "outcomes": outcomes,
                "notices_per_second": round(statistics.median(rates), 1),
                "notices_per_second_rounds": [round(r, 1) for r, _ in rounds],
                "open_verify_ceiling_per_second_rounds": [round(c, 1) for _, c in rounds],
                "ratio": round(statistics.median(ratios), 3),
                "ratio_rounds": [round(r / c, 3) for r, c in rounds],
                "sealing_seconds_client_side": round(sealing, 1),
                "machine_cores": cores,
            }
        )
    )


if __name__ == "__main__":
    main()
