"""Benchmark of the targets' CSV import and of the first page of their list.

For each database it builds a fresh database with one region of territories and
times, through the product's own functions: importing a file of quarterly
targets (new targets), importing it again (every target replaced), refusing a
file of the same size whose every amount is wrong, and reading the first page of
the region's targets. It checks the counts each step reports and exits with
status 1 when one is wrong; it never fails for a time.

Usage: ``python -m bench.targets [--rows 20000] [--territories 50]
[--databases postgres,sqlite] [--postgres-url URL]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bench.assignment import DEFAULT_POSTGRES_URL, _databases, timed
from bench.database import migrated_app, postgres_database, sqlite_database
from portal.extensions import db
from portal.performance import targets
from portal.performance.periods import Period, quarter_of
from territory_rules.models import Region, Territory

logger = logging.getLogger(__name__)


@dataclass
class Timings:
    database: str
    rows: int
    imported: float
    replaced: float
    refused: float
    first_page: float
    ok: bool


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--territories", type=int, default=50)
    parser.add_argument(
        "--databases", type=_databases, default=_databases("postgres,sqlite")
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="any database on the server where the benchmark creates its own",
    )
    args = parser.parse_args(argv)
    years = targets.TARGET_DATES.ends_on.year - targets.TARGET_DATES.starts_on.year
    if args.rows < 1 or args.territories < 1:
        parser.error("Give at least one row and one territory.")
    if -(-args.rows // args.territories) > 4 * (years + 1):
        parser.error(
            f"Each territory has room for {4 * (years + 1)} quarterly targets; "
            f"give more territories for {args.rows:,} rows."
        )
    return args


def quarters(count: int) -> list[Period]:
    """``count`` calendar quarters from Q1 2000 on."""
    periods = [quarter_of(targets.TARGET_DATES.starts_on)]
    while len(periods) < count:
        periods.append(quarter_of(periods[-1].ends_on + timedelta(days=1)))
    return periods


def target_file(names: list[str], rows: int, amount: Callable[[int], str]) -> bytes:
    """``rows`` quarterly targets spread over the territories named."""
    per_territory = -(-rows // len(names))
    periods = quarters(per_territory)
    lines = ["territory,starts_on,ends_on,amount"]
    for number in range(rows):
        name = names[number // per_territory]
        period = periods[number % per_territory]
        lines.append(f"{name},{period.starts_on},{period.ends_on},{amount(number)}")
    return ("\n".join(lines) + "\n").encode()


def run_case(database: str, args: argparse.Namespace) -> Timings:
    place: AbstractContextManager[str] = (
        postgres_database(args.postgres_url, "targets")
        if database == "postgres"
        else sqlite_database("targets")
    )
    with place as url:
        app = migrated_app(url)
        with app.app_context():
            try:
                return measure(database, args)
            finally:
                db.session.remove()
                db.engine.dispose()


def measure(database: str, args: argparse.Namespace) -> Timings:
    region = Region(name="Benchmark")
    territories = [
        Territory(name=f"Territory {number:03d}", region=region)
        for number in range(args.territories)
    ]
    db.session.add_all([region, *territories])
    db.session.commit()
    names = [territory.name for territory in territories]
    good = target_file(names, args.rows, lambda number: str(1000 + number))
    bad = target_file(names, args.rows, lambda number: f"about {number}")
    reports: list[Any] = []

    def imported(data: bytes) -> Callable[[], None]:
        return lambda: reports.append(targets.import_targets(data, None, territories))

    first = timed(imported(good))
    again = timed(imported(good))
    refused = timed(imported(bad))
    page = timed(lambda: targets.region_targets(region, targets.TargetFilter(), 1))

    counts = [report.counts for report in reports[:2]]
    ok = (
        counts
        == [
            {"targets": args.rows, "replaced": 0},
            {"targets": 0, "replaced": args.rows},
        ]
        and not reports[2].ok
    )
    if not ok:
        logger.error("Unexpected reports: %s; %s", counts, reports[2].errors[:2])
    return Timings(database, args.rows, first, again, refused, page, ok)


def print_report(results: list[Timings]) -> None:
    print(
        "| database | rows | import | import again (replaces all) "
        "| refused file | first page | counts right |"
    )
    print("|---|---|---|---|---|---|---|")
    for result in results:
        print(
            f"| {result.database} | {result.rows:,} | {result.imported:.1f} s "
            f"| {result.replaced:.1f} s | {result.refused:.1f} s "
            f"| {result.first_page * 1000:.0f} ms | {'yes' if result.ok else 'NO'} |"
        )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    args = parse_args(argv)
    results = [run_case(database, args) for database in args.databases]
    print_report(results)
    return 0 if all(result.ok for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
