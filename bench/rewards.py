"""Benchmark of the full reward recompute against a hand-written SQL statement.

For each database and number of sales lines it builds a fresh database, loads
partners, territories, accounts with their placements, sales lines and three
incentive programs with reward plans, writes eligibility and standings as the
programs run does, then times the product's full recompute on an empty ledger
and one hand-written statement computing every partner's points per program.
The two must agree to the cent; the benchmark exits with status 1 when they do
not or the run fails.

Usage: ``python -m bench.rewards [--sizes 100000,1000000]
[--databases postgres,sqlite] [--seed 2026] [--postgres-url URL]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from itertools import islice, pairwise
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, create_engine, event, insert, text
from sqlalchemy.exc import OperationalError

from bench.assignment import DEFAULT_POSTGRES_URL, _databases, timed
from bench.data import SEGMENTS
from bench.database import (
    analyze,
    app_config,
    migrated_app,
    postgres_database,
    settle,
    sqlite_database,
)
from bench.product_run import peak_rss_kib, reset_peak_rss
from bench.report import ProductRun
from portal.app import create_app
from portal.database import normalise_uri
from portal.extensions import db
from portal.models import PartnerOrganisation
from programs.eligibility import write_eligibility
from programs.models import (
    Kpi,
    Program,
    ProgramCondition,
    ProgramKind,
    ProgramRule,
    ProgramStatus,
    Tier,
)
from programs.tiers import refresh_standings
from rewards.ledger import recompute
from rewards.models import MultiplierDimension, RewardPlan, RewardRule
from territory_rules.models import (
    Account,
    AccountPlacement,
    Region,
    SalesLine,
    Territory,
    table_of,
)

logger = logging.getLogger("bench.rewards")

# The demo: about 10,000 sales lines from 4,910 accounts, 12 partners.
DEMO_SALES_LINES = 10_000
DEMO_ACCOUNTS = 4_910
PARTNERS = 120
# A few territories have no owner: their sales count for nobody.
TERRITORIES = 124
REGIONS = ("West", "East", "Central", "South")
PARTNER_TYPES = ("reseller", "distributor", "referral")
SEGMENT_SHARES = (0.52, 0.30, 0.18)
# Spelled as files spell them: multipliers match trimmed and case ignored.
CATEGORIES = (
    "Office Supplies",
    "Furniture",
    "Technology",
    " technology",
    "OFFICE SUPPLIES ",
)
CATEGORY_SHARES = (0.58, 0.21, 0.18, 0.015, 0.015)
# Sales amounts roughly as the demo's: median about $66, a long tail.
AMOUNT_LOG_MEAN, AMOUNT_LOG_SIGMA = 4.2, 1.2
UNPLACED_SHARE = 0.01
MOVED_SHARE = 0.05
FIRST_SALE_DAY = date(2025, 1, 1)
SALE_DAYS = 700
REGIONAL_START = date(2026, 1, 1)
PROGRAMS_END = date(2030, 12, 31)
CHUNK = 20_000
SQLITE_MAX_LINES = 1_000_000


# --- Command line --------------------------------------------------------------------


def _sizes(raw: str) -> list[int]:
    try:
        sizes = sorted({int(item.replace("_", "")) for item in raw.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"Write sizes as sales line counts separated by commas, not {raw!r}."
        ) from None
    if sizes[0] < 1_000:
        raise argparse.ArgumentTypeError("Every size must be at least 1,000 lines.")
    return sizes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rewards", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--sizes", default="100000,1000000", type=_sizes)
    parser.add_argument("--databases", default="postgres,sqlite", type=_databases)
    parser.add_argument("--seed", default=2026, type=int)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        help="any database on the server where the benchmark creates its own",
    )
    parser.add_argument(
        "--sqlite-max-lines",
        default=SQLITE_MAX_LINES,
        type=int,
        help="larger sizes are measured on PostgreSQL only",
    )
    # The child process that times the product's run: see product_run().
    parser.add_argument("--product-run", metavar="URL", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def postgres_reachable(url: str) -> bool:
    engine = create_engine(normalise_uri(url), connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return True
    except OperationalError as error:
        logger.warning("PostgreSQL is not reachable, measuring SQLite only: %s", error)
        return False
    finally:
        engine.dispose()


def cases(args: argparse.Namespace) -> list[tuple[str, int]]:
    """Every (database, size) to measure."""
    databases = list(args.databases)
    if "postgres" in databases and not postgres_reachable(args.postgres_url):
        databases.remove("postgres")
    chosen = []
    for database in databases:
        for size in args.sizes:
            if database == "sqlite" and size > args.sqlite_max_lines:
                logger.info(
                    "SQLite stops at %s lines; skipping %s", args.sqlite_max_lines, size
                )
            else:
                chosen.append((database, size))
    return chosen


# --- Generated data --------------------------------------------------------------


@dataclass(frozen=True)
class SalesData:
    """Generated partners, accounts and sales as columns; indexes, not ids.

    An account's territory is -1 when it is placed nowhere; ``moved_to`` is -1
    for an account that stays, else the territory it moves to, ``moved_on``
    days after ``FIRST_SALE_DAY``.
    """

    partner_types: list[str]
    account_territory: np.ndarray
    account_segment: np.ndarray
    moved_to: np.ndarray
    moved_on: np.ndarray
    line_account: np.ndarray
    line_day: np.ndarray
    line_cents: np.ndarray
    line_category: np.ndarray

    @property
    def accounts(self) -> int:
        return len(self.account_territory)

    @property
    def lines(self) -> int:
        return len(self.line_account)

    def sales_from(self, day: date) -> Decimal:
        """The amount of every line from ``day`` on, whoever it counts for."""
        first = (day - FIRST_SALE_DAY).days
        cents = int(self.line_cents[self.line_day >= first].sum())
        return Decimal(cents) / 100


def generate(lines: int, seed: int) -> SalesData:
    """Accounts proportional to the demo's, spread unevenly over the territories."""
    rng = np.random.default_rng(seed)
    accounts = max(1, round(lines * DEMO_ACCOUNTS / DEMO_SALES_LINES))
    weights = rng.lognormal(0.0, 0.7, TERRITORIES)
    territory = rng.choice(TERRITORIES, accounts, p=weights / weights.sum())
    territory[rng.random(accounts) < UNPLACED_SHARE] = -1

    moving = (rng.random(accounts) < MOVED_SHARE) & (territory >= 0)
    other = (territory + rng.integers(1, TERRITORIES, accounts)) % TERRITORIES
    cents = np.rint(rng.lognormal(AMOUNT_LOG_MEAN, AMOUNT_LOG_SIGMA, lines) * 100)
    return SalesData(
        partner_types=[str(t) for t in rng.choice(PARTNER_TYPES, PARTNERS)],
        account_territory=territory,
        account_segment=rng.choice(len(SEGMENTS), accounts, p=SEGMENT_SHARES),
        moved_to=np.where(moving, other, -1),
        moved_on=rng.integers(1, SALE_DAYS, accounts),
        line_account=rng.integers(0, accounts, lines),
        line_day=rng.integers(0, SALE_DAYS, lines),
        line_cents=np.maximum(cents, 100).astype(np.int64),
        line_category=rng.choice(len(CATEGORIES), lines, p=CATEGORY_SHARES),
    )


# --- Loading -------------------------------------------------------------------------


@dataclass(frozen=True)
class Organisation:
    """The ids given to the generated regions, territories and partners."""

    region_ids: dict[str, int]
    territory_ids: list[int]


def load_organisation(data: SalesData) -> Organisation:
    """Partners and territories through the models, so ownership history is kept.

    Territory ``i`` is owned by partner ``i``; the last few have no owner.
    """
    regions = [Region(name=name) for name in REGIONS]
    partners = [
        PartnerOrganisation(name=f"Bench partner {i}", partner_type=kind)
        for i, kind in enumerate(data.partner_types)
    ]
    territories = [
        Territory(
            name=f"Bench territory {i}",
            region=regions[i % len(regions)],
            partner=partners[i] if i < PARTNERS else None,
        )
        for i in range(TERRITORIES)
    ]
    db.session.add_all([*regions, *partners, *territories])
    db.session.commit()
    return Organisation(
        region_ids={region.name: region.id for region in regions},
        territory_ids=[territory.id for territory in territories],
    )


def _chunks(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, CHUNK)):
        yield chunk


def bulk_insert(model: type[Any], rows: Iterable[dict[str, Any]]) -> None:
    """Core executemany in chunks, one transaction per table."""
    table = table_of(model)
    with db.engine.begin() as conn:
        for chunk in _chunks(rows):
            conn.execute(insert(table), chunk)


def _account_rows(data: SalesData) -> Iterator[dict[str, Any]]:
    segments = data.account_segment.tolist()
    for i in range(data.accounts):
        yield {
            "id": i + 1,
            "key": f"bench-{i}",
            "external_id": f"B{i}",
            "name": f"Bench account {i}",
            "segment": SEGMENTS[segments[i]],
            "location_source": "none",
        }


def _placement_rows(
    data: SalesData, organisation: Organisation
) -> Iterator[dict[str, Any]]:
    """One placement since always; a moving account's ends and the next begins."""
    ids = organisation.territory_ids
    moves = zip(data.moved_to.tolist(), data.moved_on.tolist(), strict=True)
    placement_id = 0
    for i, (territory, (moved_to, moved_on)) in enumerate(
        zip(data.account_territory.tolist(), moves, strict=True)
    ):
        if territory < 0:
            continue
        moved = FIRST_SALE_DAY + timedelta(days=moved_on) if moved_to >= 0 else None
        placement_id += 1
        yield _placement(placement_id, i + 1, ids[territory], None, moved)
        if moved is not None:
            placement_id += 1
            yield _placement(placement_id, i + 1, ids[moved_to], moved, None)


def _placement(
    placement_id: int, account_id: int, territory_id: int, start: Any, end: Any
) -> dict[str, Any]:
    return {
        "id": placement_id,
        "account_id": account_id,
        "territory_id": territory_id,
        "valid_from": start,
        "valid_to": end,
    }


def _sales_rows(data: SalesData) -> Iterator[dict[str, Any]]:
    days = [FIRST_SALE_DAY + timedelta(days=d) for d in range(SALE_DAYS)]
    columns = zip(
        data.line_account.tolist(),
        data.line_day.tolist(),
        data.line_cents.tolist(),
        data.line_category.tolist(),
        strict=True,
    )
    for i, (account, day, cents, category) in enumerate(columns):
        yield {
            "id": i + 1,
            "external_line_id": f"L{i}",
            "account_id": account + 1,
            "order_date": days[day],
            "amount": Decimal(cents).scaleb(-2),
            "category": CATEGORIES[category],
        }


def continue_sequences() -> None:
    """Rows were inserted with their ids: PostgreSQL's sequences must follow."""
    if db.engine.dialect.name != "postgresql":
        return
    with db.engine.begin() as conn:
        for table in ("accounts", "account_placements", "sales_lines"):
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
            )


def _tiers(names: tuple[str, ...], base: Decimal, spec: list[tuple]) -> list[Tier]:
    """Tiers at fractions of the expected sales per partner, lowest first."""
    return [
        Tier(
            position=position,
            name=name,
            threshold=(base * Decimal(share)).quantize(Decimal(1)),
            points_multiplier=Decimal(multiplier),
            bonus_points=bonus,
        )
        for position, (name, (share, multiplier, bonus)) in enumerate(
            zip(names, spec, strict=True)
        )
    ]


def _program(
    name: str, starts_on: date, rule: ProgramRule, tiers: list[Tier]
) -> Program:
    return Program(
        name=name,
        kind=ProgramKind.INCENTIVE.value,
        status=ProgramStatus.ACTIVE.value,
        starts_on=starts_on,
        ends_on=PROGRAMS_END,
        kpi=Kpi.SALES_SUM.value,
        rules=[rule],
        tiers=tiers,
    )


def _targeting(name: str, field_name: str, value: list[Any]) -> ProgramRule:
    condition = ProgramCondition(field=field_name, operator="in", value=value)
    return ProgramRule(name=name, conditions=[condition])


def _multiplier(
    program: Program, dimension: MultiplierDimension, match: str, by: str
) -> RewardRule:
    return RewardRule(
        program=program,
        name=f"{dimension.value} {match}",
        dimension=dimension.value,
        match_value=match,
        multiplier=Decimal(by),
    )


def load_programs(data: SalesData, organisation: Organisation) -> None:
    """Three incentive programs with reward plans and multipliers."""
    programs = incentive_programs(data, organisation)
    db.session.add_all(
        [
            *programs,
            *reward_plans(data, *programs),
            *multipliers(organisation, *programs),
        ]
    )
    db.session.commit()


def incentive_programs(
    data: SalesData, organisation: Organisation
) -> tuple[Program, Program, Program]:
    """Growth, Foundation and Regional, as the demo's, with thresholds to scale.

    Regional starts mid-way through the sales and targets regions (its
    partners' territories); the other two target partner types.
    """
    per_partner = data.sales_from(FIRST_SALE_DAY) / PARTNERS
    growth = _program(
        "Growth",
        FIRST_SALE_DAY,
        _targeting(
            "Resellers and distributors", "partner_type", ["reseller", "distributor"]
        ),
        _tiers(
            ("Silver", "Gold", "Platinum"),
            per_partner,
            [("0.7", "1.25", None), ("1.0", "1.5", 5000), ("1.4", "2", 15000)],
        ),
    )
    foundation = _program(
        "Foundation",
        FIRST_SALE_DAY,
        _targeting("Resellers and referrers", "partner_type", ["referral", "reseller"]),
        _tiers(
            ("Bronze", "Silver", "Gold"),
            per_partner,
            [("0.6", "1.1", None), ("0.9", "1.25", 1000), ("1.2", "1.5", 2500)],
        ),
    )
    regional = _program(
        "Regional",
        REGIONAL_START,
        _targeting(
            "West and South",
            "region",
            [organisation.region_ids[name] for name in ("West", "South")],
        ),
        _tiers(
            ("Member", "Champion"),
            data.sales_from(REGIONAL_START) / PARTNERS,
            [("0.5", "1", None), ("1.1", "1.3", 2000)],
        ),
    )
    return growth, foundation, regional


def reward_plans(
    data: SalesData, growth: Program, foundation: Program, regional: Program
) -> list[RewardPlan]:
    """Foundation's monthly cap is near a typical partner's monthly points, so it
    binds in about a third of the partners' months."""
    per_partner = data.sales_from(FIRST_SALE_DAY) / PARTNERS
    monthly_points = per_partner * 2 * Decimal("1.15") * 30 / SALE_DAYS
    return [
        RewardPlan(program=growth, points_per_unit=Decimal(1), expiry_days=365),
        RewardPlan(
            program=foundation,
            points_per_unit=Decimal(2),
            expiry_days=365,
            cap_points=monthly_points.quantize(Decimal(100)),
            cap_period="month",
        ),
        RewardPlan(program=regional, points_per_unit=Decimal("0.5")),
    ]


def multipliers(
    organisation: Organisation, growth: Program, foundation: Program, regional: Program
) -> list[RewardRule]:
    """Category and segment multipliers; Regional doubles three territories."""
    category, segment = MultiplierDimension.CATEGORY, MultiplierDimension.SEGMENT
    territories = [
        _multiplier(regional, MultiplierDimension.TERRITORY, str(territory_id), "2")
        for territory_id in organisation.territory_ids[:3]
    ]
    return [
        _multiplier(growth, category, "Technology", "1.5"),
        _multiplier(growth, segment, "Corporate", "1.2"),
        _multiplier(foundation, category, "Office Supplies", "1.5"),
        _multiplier(foundation, segment, "Home Office", "1.1"),
        _multiplier(regional, category, "Furniture", "1.25"),
        *territories,
    ]


def load(data: SalesData) -> None:
    """Everything the recompute reads, then eligibility and standings from it."""
    organisation = load_organisation(data)
    bulk_insert(Account, _account_rows(data))
    bulk_insert(AccountPlacement, _placement_rows(data, organisation))
    bulk_insert(SalesLine, _sales_rows(data))
    continue_sequences()
    load_programs(data, organisation)
    analyze()

    write_eligibility(None, None)
    refresh_standings(None)
    analyze()


# --- The product's run, in a child process ---------------------------------------


@dataclass
class StatementTimes:
    """Per kind of statement the run sends: seconds spent in the database, and
    how much the process's peak resident size grew while it ran (KiB)."""

    reset_worked: bool
    seconds: dict[str, float] = field(default_factory=dict)
    peak_growth_kib: dict[str, int] = field(default_factory=dict)
    peak_kib: int = 0

    def watch(self, engine: Engine) -> None:
        self.peak_kib = peak_rss_kib(self.reset_worked)
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Connection, *_: Any) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        spent = time.perf_counter() - conn.info.pop("bench_started")
        label = statement_label(statement)
        self.seconds[label] = self.seconds.get(label, 0.0) + spent
        peak = peak_rss_kib(self.reset_worked)
        growth = self.peak_growth_kib.get(label, 0) + peak - self.peak_kib
        self.peak_growth_kib[label], self.peak_kib = growth, peak


def statement_label(statement: str) -> str:
    """What a statement of the recompute does, read from its text."""
    sql = " ".join(statement.split()).upper()
    if sql.startswith("CREATE INDEX IX_REWARD_DESIRED"):
        return "index the staged points"
    if "REWARD_DESIRED" in sql and not sql.startswith(("INSERT", "DROP", "ANALYZE")):
        return "price into reward_desired"
    if (
        sql.startswith("INSERT INTO LEDGER_ENTRIES")
        and "FROM REWARD_DESIRED LEFT" in sql
    ):
        return "insert changed sources"
    if sql.startswith("INSERT INTO LEDGER_ENTRIES") and "REWARD_DESIRED" in sql:
        return "insert reversals"
    if sql.startswith("INSERT INTO LEDGER_ENTRIES"):
        return "insert expiries"
    if sql.startswith("UPDATE LEDGER_ENTRIES"):
        return "approve due entries"
    if sql.startswith("ANALYZE"):
        return "analyze the staged points"
    return "other statements"


def product_run(url: str) -> dict[str, Any]:
    """Time a full recompute on the empty ledger; report it for the parent."""
    app = create_app(app_config(url))
    program_done: list[float] = []
    with app.app_context():
        reset_worked = reset_peak_rss()
        # Just after the reset the peak is the current size: the app as started.
        rss_before = peak_rss_kib(reset_worked)
        statements = StatementTimes(reset_worked)
        statements.watch(db.engine)
        started = time.perf_counter()
        status, error, counts = "succeeded", None, {}
        try:
            # No Run row: what is timed is the recompute itself, with run id 0.
            counts = recompute(
                0, lambda *_: program_done.append(time.perf_counter()), full=True
            )
        except Exception as failure:
            logger.exception("The product's recompute failed")
            status, error = "failed", repr(failure)
        return {
            "seconds": time.perf_counter() - started,
            "status": status,
            "error": error,
            "counts": counts,
            "rss_before_kib": rss_before,
            "peak_rss_kib": peak_rss_kib(reset_worked),
            "statement_seconds": statements.seconds,
            "statement_peak_growth_kib": statements.peak_growth_kib,
            "program_seconds": _spans(started, program_done),
        }


def _spans(started: float, marks: list[float]) -> list[float]:
    ends = [started, *marks]
    return [end - start for start, end in pairwise(ends)]


def run_product(url: str) -> tuple[ProductRun, dict[str, Any]]:
    """The product's run in a child process, so that its memory is its own."""
    command = [sys.executable, "-m", "bench.rewards", "--product-run", url]
    # S603: the command is this interpreter and a URL the benchmark built itself.
    completed = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)  # noqa: S603
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    run = ProductRun(
        seconds=report["seconds"],
        status=report["status"],
        error=report["error"],
        counts=report["counts"] or {},
        rss_before_kib=report["rss_before_kib"],
        peak_rss_kib=report["peak_rss_kib"],
    )
    return run, report


# --- The hand-written computation and the check ----------------------------------

# Every partner's points per program, in one statement: credited sales (the
# placement and the ownership held on the sale date), priced with the plan's
# rate and every matching multiplier, rounded half up to the cent, capped per
# partner and month in date order where the plan has a cap, plus the bonus of
# every tier up to the one reached. In whole cents, so the check is exact.
REFERENCE_SQL = """
WITH credited AS (
    SELECT s.id AS sales_line_id, s.order_date, s.amount,
           UPPER(TRIM(s.category)) AS category, UPPER(TRIM(a.segment)) AS segment,
           p.territory_id, o.partner_id AS organisation_id
    FROM sales_lines AS s
    JOIN accounts AS a ON a.id = s.account_id
    JOIN account_placements AS p
      ON p.account_id = s.account_id
     AND (p.valid_from IS NULL OR p.valid_from <= s.order_date)
     AND (p.valid_to IS NULL OR s.order_date < p.valid_to)
    JOIN territory_ownerships AS o
      ON o.territory_id = p.territory_id
     AND (o.valid_from IS NULL OR o.valid_from <= s.order_date)
     AND (o.valid_to IS NULL OR s.order_date < o.valid_to)
    WHERE o.partner_id IS NOT NULL
),
rewarded AS (
    SELECT g.id AS program_id, g.starts_on, g.ends_on, r.points_per_unit, r.cap_points
    FROM programs AS g
    JOIN reward_plans AS r ON r.program_id = g.id
    WHERE g.kind = 'incentive' AND g.status <> 'archived'
),
priced AS (
    SELECT w.program_id, c.organisation_id, c.order_date, c.sales_line_id,
           w.cap_points,
           ROUND(c.amount * w.points_per_unit
                 * COALESCE(cat.multiplier, 1) * COALESCE(seg.multiplier, 1)
                 * COALESCE(ter.multiplier, 1) * COALESCE(t.points_multiplier, 1)
                 {nudge}, 2) AS points
    FROM rewarded AS w
    JOIN credited AS c ON c.order_date BETWEEN w.starts_on AND w.ends_on
    LEFT JOIN reward_rules AS cat
      ON cat.program_id = w.program_id AND cat.dimension = 'category'
     AND UPPER(TRIM(cat.match_value)) = c.category
    LEFT JOIN reward_rules AS seg
      ON seg.program_id = w.program_id AND seg.dimension = 'segment'
     AND UPPER(TRIM(seg.match_value)) = c.segment
    LEFT JOIN reward_rules AS ter
      ON ter.program_id = w.program_id AND ter.dimension = 'territory'
     AND ter.match_value = CAST(c.territory_id AS TEXT)
    LEFT JOIN program_standings AS st
      ON st.program_id = w.program_id AND st.organisation_id = c.organisation_id
    LEFT JOIN tiers AS t ON t.id = st.tier_id
    WHERE EXISTS (
        SELECT 1 FROM program_eligibility AS e
        WHERE e.program_id = w.program_id AND e.organisation_id = c.organisation_id
    )
),
capped AS (
    SELECT program_id, organisation_id, points FROM priced WHERE cap_points IS NULL
    UNION ALL
    SELECT program_id, organisation_id,
           CASE WHEN running - points >= cap_points THEN 0
                WHEN running <= cap_points THEN points
                ELSE ROUND(cap_points - (running - points) {nudge}, 2) END
    FROM (
        SELECT program_id, organisation_id, points, cap_points,
               SUM(points) OVER (
                   PARTITION BY program_id, organisation_id, {month}
                   ORDER BY order_date, sales_line_id
               ) AS running
        FROM priced WHERE cap_points IS NOT NULL
    ) AS windowed
),
bonuses AS (
    SELECT st.program_id, st.organisation_id, t.bonus_points AS points
    FROM program_standings AS st
    JOIN rewarded AS w ON w.program_id = st.program_id
    JOIN tiers AS reached ON reached.id = st.tier_id
    JOIN tiers AS t
      ON t.program_id = st.program_id AND t.position <= reached.position
    WHERE t.bonus_points IS NOT NULL
)
SELECT organisation_id, program_id, SUM(CAST(ROUND(points * 100) AS BIGINT))
FROM (SELECT * FROM capped UNION ALL SELECT * FROM bonuses) AS earned
GROUP BY organisation_id, program_id
"""

# Dialect fragments: SQLite holds floats, nudged as portal.database.round_cents
# explains; the cap's month as a value to partition by.
FRAGMENTS = {
    "postgresql": {"nudge": "", "month": "date_trunc('month', order_date)"},
    "sqlite": {"nudge": "+ 1e-9", "month": "strftime('%Y-%m', order_date)"},
}

PRODUCT_TOTALS_SQL = """
SELECT organisation_id, program_id, SUM(CAST(ROUND(points * 100) AS BIGINT))
FROM ledger_entries
GROUP BY organisation_id, program_id
"""

Totals = dict[tuple[int, int], int]


def _totals(sql: str) -> Totals:
    """(organisation, program) -> cents; pairs that earned nothing are left out."""
    with db.engine.connect() as conn:
        rows = conn.execute(text(sql)).all()
    return {
        (int(org), int(program)): int(cents) for org, program, cents in rows if cents
    }


def reference_totals() -> Totals:
    return _totals(REFERENCE_SQL.format(**FRAGMENTS[db.engine.dialect.name]))


def product_totals() -> Totals:
    return _totals(PRODUCT_TOTALS_SQL)


def differences(product: Totals, reference: Totals) -> list[str]:
    """Each pair whose totals differ, as a sentence."""
    found = []
    for org, program in sorted(product.keys() | reference.keys()):
        ours, theirs = product.get((org, program), 0), reference.get((org, program), 0)
        if ours != theirs:
            found.append(
                f"organisation {org}, program {program}: the run gives "
                f"{ours / 100:,.2f} points, the hand-written SQL {theirs / 100:,.2f}"
            )
    return found


# --- One case, and the report ------------------------------------------------------


@dataclass
class CaseResult:
    database: str
    lines: int
    accounts: int
    load_seconds: float
    product: ProductRun
    details: dict[str, Any]
    reference_seconds: float = 0.0
    pairs: int = 0
    points: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.product.status == "succeeded" and not self.problems

    @property
    def ratio(self) -> float:
        return (
            self.product.seconds / self.reference_seconds
            if self.reference_seconds
            else 0.0
        )


def fresh_database(database: str, size: int, args: argparse.Namespace) -> Any:
    label = f"rewards_{database}_{size}"
    if database == "postgres":
        return postgres_database(args.postgres_url, label)
    return sqlite_database(label)


def run_case(database: str, size: int, args: argparse.Namespace) -> CaseResult:
    """Load a fresh database, then time the product's run and the hand-written SQL."""
    case = f"{database} at {size:,} sales lines"
    data = generate(size, args.seed)
    with fresh_database(database, size, args) as url:
        app = migrated_app(url)
        with app.app_context():
            logger.info("%s: loading", case)
            load_seconds = timed(lambda: load(data))
            db.engine.dispose()

        logger.info("%s: product run", case)
        product, details = run_product(url)
        result = CaseResult(
            database, size, data.accounts, load_seconds, product, details
        )

        with app.app_context():
            settle()
            logger.info("%s: hand-written SQL", case)
            started = time.perf_counter()
            reference = reference_totals()
            result.reference_seconds = time.perf_counter() - started
            check(result, reference)
            db.engine.dispose()
    return result


def check(result: CaseResult, reference: Totals) -> None:
    """The run's ledger against the hand-written totals, to the cent."""
    if result.product.status != "succeeded":
        result.problems.append(f"the run failed: {result.product.error}")
        return
    product = product_totals()
    result.pairs, result.points = len(reference), sum(reference.values())
    result.problems.extend(differences(product, reference))
    if not reference:
        result.problems.append("the hand-written SQL found no points at all")


COLUMNS = (
    ("database", 9),
    ("sales lines", 12),
    ("accounts", 9),
    ("load", 8),
    ("product run", 12),
    ("hand SQL", 9),
    ("ratio", 7),
    ("run peak RSS", 13),
    ("run growth", 11),
    ("entries", 10),
    ("pairs", 6),
    ("agree", 6),
)


def _mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def _cells(result: CaseResult) -> list[str]:
    product = result.product
    return [
        result.database,
        f"{result.lines:,}",
        f"{result.accounts:,}",
        f"{result.load_seconds:.1f} s",
        f"{product.seconds:.1f} s",
        f"{result.reference_seconds:.1f} s",
        f"{result.ratio:.1f}x",
        _mib(product.peak_rss_kib),
        f"+{_mib(product.growth_kib)}",
        f"{product.counts.get('entries_written', 0):,}",
        f"{result.pairs:,}",
        "yes" if result.ok else "NO",
    ]


def _line(cells: list[str]) -> str:
    widths = [width for _, width in COLUMNS]
    return " ".join(
        cell.rjust(width) for cell, width in zip(cells, widths, strict=True)
    )


def print_breakdown(result: CaseResult) -> None:
    """Where the run's time went: per program, and per kind of statement."""
    details = result.details
    programs = ", ".join(f"{s:.1f} s" for s in details.get("program_seconds", []))
    print(f"{result.database} at {result.lines:,} lines: programs {programs}")
    seconds = details.get("statement_seconds", {})
    growth = details.get("statement_peak_growth_kib", {})
    for label, spent in sorted(seconds.items(), key=lambda item: -item[1]):
        print(f"  {label:<28} {spent:7.1f} s  peak +{_mib(growth.get(label, 0))}")
    rest = result.product.seconds - sum(seconds.values())
    print(f"  {'commits and Python':<28} {rest:7.1f} s")


def print_report(results: list[CaseResult], seed: int) -> None:
    print(
        f"\nRewards benchmark: {PARTNERS} partners, {TERRITORIES} territories, "
        f"3 incentive programs, full recompute on an empty ledger, seed {seed}\n"
    )
    print(_line([title for title, _ in COLUMNS]))
    for result in results:
        print(_line(_cells(result)))
    print()
    for result in results:
        print_breakdown(result)
    for result in results:
        for problem in result.problems[:20]:
            print(f"{result.database} at {result.lines:,} lines: {problem}")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s: %(message)s",
    )
    args = parse_args(argv)
    if args.product_run:
        print(json.dumps(product_run(args.product_run)))
        return 0

    results = [run_case(database, size, args) for database, size in cases(args)]

    print_report(results, args.seed)
    return 0 if results and all(result.ok for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
