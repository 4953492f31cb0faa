"""Benchmark of the assignment engine against a hand-written spatial join.

For each database and account count it builds a fresh database, loads about
2,000 territories cut from the real state shapes and accounts jittered around
the real ZIP centroids, times the product's assignment run and a hand-written
set-based spatial join, checks that they agree, and prints a table. It exits
with status 1 when they disagree or the run fails.

Usage: ``python -m bench.assignment [--sizes 100000,1000000]
[--databases postgres,sqlite] [--seed 2026]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from bench import data
from bench.database import (
    analyze,
    load_accounts_postgres,
    load_accounts_sqlite,
    load_territories,
    migrated_app,
    postgres_database,
    rule_count,
    settle,
    sqlite_database,
)
from bench.reference import compare_with_product, run_reference_join
from bench.report import CaseResult, ProductRun, print_report
from portal.extensions import db

logger = logging.getLogger("bench.assignment")

DATABASES = ("postgres", "sqlite")
SQLITE_MAX_ACCOUNTS = 100_000
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Scenario:
    """What every case shares: the territories and the ZIP centroids."""

    pieces: list[data.Piece]
    zips: data.ZipCentroids
    cell_degrees: float
    seed: int

    @property
    def heading(self) -> str:
        return (
            f"Assignment benchmark: {len(self.pieces):,} territories cut from the "
            f"state shapes by a {self.cell_degrees} degree grid, "
            f"{rule_count(self.pieces):,} rules, seed {self.seed}"
        )


def _sizes(raw: str) -> list[int]:
    try:
        sizes = sorted({int(item.replace("_", "")) for item in raw.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"Write sizes as account counts separated by commas, not {raw!r}."
        ) from None
    if sizes[0] < 1:
        raise argparse.ArgumentTypeError("Every size must be at least 1 account.")
    return sizes


def _databases(raw: str) -> list[str]:
    chosen = [item.strip() for item in raw.split(",") if item.strip()]
    if not chosen or set(chosen) - set(DATABASES):
        raise argparse.ArgumentTypeError(
            f"Choose databases among {', '.join(DATABASES)}, not {raw!r}."
        )
    return chosen


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.assignment", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--sizes", default="100000,1000000", type=_sizes)
    parser.add_argument("--databases", default="postgres,sqlite", type=_databases)
    parser.add_argument("--seed", default=2026, type=int)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="any database on the server where the benchmark creates its own",
    )
    return parser.parse_args(argv)


def cases(args: argparse.Namespace) -> list[tuple[str, int]]:
    """Every (database, size) to measure; SQLite stops at 100,000 accounts."""
    chosen = []
    for database in args.databases:
        for size in args.sizes:
            if database == "sqlite" and size > SQLITE_MAX_ACCOUNTS:
                logger.info(
                    "SQLite is measured up to %s accounts only; skipping %s",
                    f"{SQLITE_MAX_ACCOUNTS:,}",
                    f"{size:,}",
                )
            else:
                chosen.append((database, size))
    return chosen


def build_scenario(seed: int) -> Scenario:
    states = data.load_states()
    zips = data.load_zip_centroids()
    cell = data.grid_cell(states)
    pieces = data.cut_by_grid(states, data.state_codes(states, zips), cell)
    logger.info("%s territories from a %s degree grid", len(pieces), cell)
    return Scenario(pieces, zips, cell, seed)


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def fresh_database(
    database: str, size: int, args: argparse.Namespace
) -> AbstractContextManager[str]:
    if database == "postgres":
        return postgres_database(args.postgres_url, f"{database}_{size}")
    return sqlite_database(f"{database}_{size}")


def load(scenario: Scenario, size: int) -> None:
    accounts = data.generate_accounts(scenario.zips, size, scenario.seed)
    load_territories(scenario.pieces)
    if db.engine.dialect.name == "postgresql":
        load_accounts_postgres(accounts, scenario.zips)
    else:
        load_accounts_sqlite(accounts, scenario.zips)
    analyze()


def run_product(url: str) -> ProductRun:
    """The product's run in a child process, so that its memory is its own."""
    command = [sys.executable, "-m", "bench.product_run", url]
    # S603: the command is this interpreter and a URL the benchmark built itself.
    completed = subprocess.run(  # noqa: S603
        command, check=True, stdout=subprocess.PIPE, text=True
    )
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    return ProductRun(
        seconds=report["seconds"],
        status=report["status"],
        error=report["error"],
        counts=report["counts"] or {},
        rss_before_kib=report["rss_before_kib"],
        peak_rss_kib=report["peak_rss_kib"],
    )


def run_case(
    database: str, size: int, scenario: Scenario, args: argparse.Namespace
) -> CaseResult:
    """Load a fresh database, then time the product's run and the reference join."""
    case = f"{database} at {size:,} accounts"
    with fresh_database(database, size, args) as url:
        app = migrated_app(url)
        with app.app_context():
            logger.info("%s: loading", case)
            load_seconds = timed(lambda: load(scenario, size))
            db.engine.dispose()

        logger.info("%s: product run", case)
        product = run_product(url)

        with app.app_context():
            settle()
            logger.info("%s: hand-written join", case)
            join_seconds = timed(run_reference_join)
            agreement = compare_with_product()
            db.engine.dispose()
    return CaseResult(database, size, load_seconds, product, join_seconds, agreement)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s: %(message)s",
    )
    args = parse_args(argv)
    chosen = cases(args)
    scenario = build_scenario(args.seed)

    results = [run_case(database, size, scenario, args) for database, size in chosen]

    print_report(results, scenario.heading)
    return 0 if all(result.ok for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
