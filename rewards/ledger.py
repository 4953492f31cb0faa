"""The points ledger: what credited sales, claims and tiers earn, written set-based.

A run states, per incentive program with a reward plan, what every source
should have earned (the *desired* points: a sale or approved claim priced by
the plan, its multipliers and the partner's tier, then capped per period; a
bonus for each tier reached). It then compares that with what the ledger
already holds for each source and appends one entry per difference: a new
sale gets its points, a repriced one the change, a sale that no longer counts
for the partner the reversal. Points are never updated in place. A source
whose points were approved or paid is final: later runs leave it as it is,
whatever changed since (an admin corrects it with an adjustment).

This makes every run idempotent and any interruption harmless: a rerun
compares against whatever the interrupted run committed and writes only what
is still missing. Each source's entries are numbered in their unique key
(``<source key>#<n>``), so two writers that computed the same difference
collide on the key instead of counting it twice.

Amounts on SQLite are stored as binary floating point; points are rounded
half up to the cent on both databases (see :func:`_cents`), and differences
under half a cent are not differences.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Integer,
    Numeric,
    String,
    and_,
    case,
    cast,
    exists,
    extract,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.orm import aliased
from sqlalchemy.schema import DropTable, Table
from sqlalchemy.sql import Select, Subquery

from portal.database import round_cents
from portal.extensions import db
from portal.models import utc_now
from portal.runs import Run, RunStatus
from programs.models import (
    Eligibility,
    Program,
    ProgramKind,
    ProgramStatus,
    Standing,
    Tier,
)
from rewards.models import (
    Claim,
    ClaimStatus,
    EntryStatus,
    LedgerEntry,
    LedgerSource,
    MultiplierDimension,
    RewardPlan,
    RewardRule,
)
from territory_rules.conditions import comparable_text
from territory_rules.credit import credited_sales
from territory_rules.models import Account, SalesLine, table_of

logger = logging.getLogger(__name__)

LEDGER = table_of(LedgerEntry)
# The temporary table holding one program's desired points during a run.
STAGE = "reward_desired"
ACCOUNTS = table_of(Account)
CLAIMS = table_of(Claim)
DERIVED_SOURCES = (
    LedgerSource.SALE.value,
    LedgerSource.CLAIM.value,
    LedgerSource.TIER_BONUS.value,
)
# Once a source's points were approved or paid they are final: runs neither
# reprice nor reverse them (an admin corrects them with an adjustment).
FINAL_STATUSES = (EntryStatus.APPROVED.value, EntryStatus.PAID.value)
# Differences smaller than this are rounding noise, not points.
HALF_CENT = Decimal("0.005")

ProgressCallback = Callable[[int, str], None]
Rows = Select[*tuple[Any, ...]]

__all__ = ["Scope", "desired_points", "recompute"]


@dataclass(frozen=True)
class Scope:
    """What a run prices: everything, or what arrived after a previous run.

    ``after_line_id``: only sales lines with a higher id; ``reviewed_since``:
    only claims reviewed at or after that time. Tier bonuses are always priced.
    """

    full: bool
    after_line_id: int = 0
    reviewed_since: datetime | None = None


def recompute(run_id: int, progress: ProgressCallback, full: bool) -> dict[str, Any]:
    """Bring the ledger up to date; return what the run did."""
    now = utc_now()
    scope = _scope(full)
    last_line_id = db.session.scalar(select(func.max(SalesLine.id))) or 0
    programs = rewarded_programs()
    written = 0

    for number, (program, plan) in enumerate(programs, start=1):
        written += write_differences(program, plan, scope, run_id, now)
        db.session.commit()
        progress(
            5 + int(80 * number / max(len(programs), 1)),
            f"Priced {number} of {len(programs)} programs",
        )

    approved = approve_due(now)
    expired = expire_due(now, run_id)
    db.session.commit()
    counts = {
        "mode": "full" if scope.full else "incremental",
        "programs": len(programs),
        "entries_written": written,
        "approved": approved,
        "expired": expired,
        "last_sales_line_id": last_line_id,
        "started_at_utc": now.isoformat(),
    }
    logger.info("Rewards run %s: %s", run_id, counts)
    return counts


def _scope(full: bool) -> Scope:
    """Incremental from the last successful run; full when there is none."""
    if full:
        return Scope(full=True)
    last = db.session.scalars(
        select(Run)
        .where(Run.kind == "rewards", Run.status == RunStatus.SUCCEEDED.value)
        .order_by(Run.id.desc())
        .limit(1)
    ).first()
    counts = last.counts if last is not None else None
    if not counts or "last_sales_line_id" not in counts:
        return Scope(full=True)
    return Scope(
        full=False,
        after_line_id=int(counts["last_sales_line_id"]),
        reviewed_since=datetime.fromisoformat(counts["started_at_utc"]),
    )


def rewarded_programs() -> list[tuple[Program, RewardPlan]]:
    """Incentive programs with a reward plan; archived ones keep their ledger."""
    rows = db.session.execute(
        select(Program, RewardPlan)
        .join(RewardPlan, RewardPlan.program_id == Program.id)
        .where(
            Program.kind == ProgramKind.INCENTIVE.value,
            Program.status != ProgramStatus.ARCHIVED.value,
        )
        .order_by(Program.id)
    ).all()
    return [(program, plan) for program, plan in rows]


# --- What each source should have earned ---------------------------------------------


def desired_points(program: Program, plan: RewardPlan, scope: Scope) -> Any:
    """Every source of the program with the points it should have, capped.

    Columns: source_key, source, organisation_id, points, earned_on,
    sales_line_id, claim_id, tier_id, amount, rate, multiplier, priced_points,
    category_rule_id, segment_rule_id, territory_rule_id.
    """
    earnings = union_all(
        _sale_earnings(program, plan, scope), _claim_earnings(program, plan, scope)
    ).subquery("earnings")
    capped = _capped(earnings, plan)
    return union_all(capped, _tier_bonuses(program))


def _earns(program: Program, key: Any, organisation_id: Any) -> ColumnElement[bool]:
    """Whether a source earns for the organisation: it is in the program now, or
    the source already earned it points there.

    A partner leaving a program keeps what it earned while in it (and sees it
    repriced if the rules change); what it sells afterwards earns nothing.
    """
    eligible = select(Eligibility.organisation_id).where(
        Eligibility.program_id == program.id
    )
    held = exists().where(LedgerEntry.source_key == key)
    return or_(organisation_id.in_(eligible), held)


def _multipliers(program: Program, dimension: MultiplierDimension) -> Subquery:
    rules = table_of(RewardRule)
    return (
        select(
            rules.c.id,
            comparable_text(rules.c.match_value).label("match"),
            rules.c.multiplier,
        )
        .where(rules.c.program_id == program.id, rules.c.dimension == dimension.value)
        .subquery(f"{dimension.value}_rules")
    )


def _tier_multiplier(program: Program) -> Subquery:
    return (
        select(
            Standing.organisation_id,
            Tier.id.label("tier_id"),
            Tier.points_multiplier,
        )
        .join(Tier, Tier.id == Standing.tier_id)
        .where(Standing.program_id == program.id)
        .subquery("tier_multiplier")
    )


def _sale_earnings(program: Program, plan: RewardPlan, scope: Scope) -> Rows:
    sales = credited_sales()
    key = _key("sale", sales.c.sales_line_id, program, sales.c.organisation_id)
    category = _multipliers(program, MultiplierDimension.CATEGORY)
    segment = _multipliers(program, MultiplierDimension.SEGMENT)
    territory = _multipliers(program, MultiplierDimension.TERRITORY)
    tier = _tier_multiplier(program)
    query = (
        select(
            key.label("source_key"),
            literal(LedgerSource.SALE.value).label("source"),
            sales.c.organisation_id,
            sales.c.order_date.label("earned_on"),
            sales.c.sales_line_id,
            cast(null(), Integer).label("claim_id"),
            tier.c.tier_id,
            sales.c.amount,
            *_factors(plan, category, segment, territory, tier),
        )
        .join(Account, Account.id == sales.c.account_id)
        .outerjoin(category, category.c.match == comparable_text(sales.c.category))
        .outerjoin(
            segment, segment.c.match == comparable_text(table_of(Account).c.segment)
        )
        .outerjoin(
            territory,
            territory.c.match == cast(sales.c.territory_id, String),
        )
        .outerjoin(tier, tier.c.organisation_id == sales.c.organisation_id)
        .where(
            sales.c.order_date.between(program.starts_on, program.ends_on),
            _earns(program, key, sales.c.organisation_id),
        )
    )
    if not scope.full:
        query = query.where(sales.c.sales_line_id > scope.after_line_id)
    return query


def _claim_earnings(program: Program, plan: RewardPlan, scope: Scope) -> Rows:
    key = _key("claim", Claim.id, program, Claim.organisation_id)
    category = _multipliers(program, MultiplierDimension.CATEGORY)
    segment = _multipliers(program, MultiplierDimension.SEGMENT)
    territory = _multipliers(program, MultiplierDimension.TERRITORY)
    tier = _tier_multiplier(program)
    query = (
        select(
            key.label("source_key"),
            literal(LedgerSource.CLAIM.value).label("source"),
            Claim.organisation_id,
            Claim.sale_date.label("earned_on"),
            cast(null(), Integer).label("sales_line_id"),
            Claim.id.label("claim_id"),
            tier.c.tier_id,
            Claim.amount,
            *_factors(plan, category, segment, territory, tier),
        )
        .outerjoin(
            category, category.c.match == comparable_text(table_of(Claim).c.category)
        )
        # A claim names no customer segment: that multiplier never applies.
        .outerjoin(segment, literal(False))
        .outerjoin(territory, territory.c.match == cast(Claim.territory_id, String))
        .outerjoin(tier, tier.c.organisation_id == Claim.organisation_id)
        .where(
            Claim.status == ClaimStatus.APPROVED.value,
            Claim.sale_date.between(program.starts_on, program.ends_on),
            _earns(program, key, Claim.organisation_id),
        )
    )
    if not scope.full and scope.reviewed_since is not None:
        query = query.where(Claim.reviewed_at_utc >= scope.reviewed_since)
    return query


def _key(
    source: str, source_id: Any, program: Program, organisation_id: Any
) -> ColumnElement[str]:
    """``sale:<line>:p<program>:o<organisation>``: one source, for one earner."""
    return (
        literal(f"{source}:")
        + cast(source_id, String)
        + literal(f":p{program.id}:o")
        + cast(organisation_id, String)
    )


def _factors(
    plan: RewardPlan,
    category: Subquery,
    segment: Subquery,
    territory: Subquery,
    tier: Subquery,
) -> list[ColumnElement[Any]]:
    multiplier = (
        func.coalesce(category.c.multiplier, 1)
        * func.coalesce(segment.c.multiplier, 1)
        * func.coalesce(territory.c.multiplier, 1)
        * func.coalesce(tier.c.points_multiplier, 1)
    )
    rate = literal(plan.points_per_unit, Numeric(12, 4))
    return [
        rate.label("rate"),
        multiplier.label("multiplier"),
        category.c.id.label("category_rule_id"),
        segment.c.id.label("segment_rule_id"),
        territory.c.id.label("territory_rule_id"),
    ]


def _cents(value: ColumnElement[Any]) -> ColumnElement[Any]:
    return round_cents(value, db.engine.dialect.name)


def _capped(earnings: Subquery, plan: RewardPlan) -> Rows:
    """The earnings with their points, after the plan's cap per partner and period.

    Within a period, sources earn in date order (claims before sales on the
    same day, then in the order they were recorded) until the cap is reached;
    the one crossing it earns the remainder, later ones nothing.
    """
    priced = _cents(earnings.c.amount * earnings.c.rate * earnings.c.multiplier)
    base = select(earnings, priced.label("priced_points")).subquery("priced")
    if plan.cap_points is None:
        return select(*_desired_columns(base, base.c.priced_points))

    running = (
        func.sum(base.c.priced_points)
        .over(
            partition_by=[base.c.organisation_id, _period(base.c.earned_on, plan)],
            order_by=[
                base.c.earned_on,
                base.c.source,
                func.coalesce(base.c.sales_line_id, base.c.claim_id),
            ],
        )
        .label("running")
    )
    windowed = select(base, running).subquery("windowed")
    cap = literal(plan.cap_points, Numeric(16, 2))
    before = windowed.c.running - windowed.c.priced_points
    points = case(
        (before >= cap, literal(0, Numeric(16, 2))),
        (windowed.c.running <= cap, windowed.c.priced_points),
        else_=cap - before,
    )
    return select(*_desired_columns(windowed, points))


def _period(day: ColumnElement[date], plan: RewardPlan) -> ColumnElement[int]:
    """A number per cap period: year and month, year and quarter, or one."""
    if plan.cap_period == "program":
        return literal(0)
    year = cast(extract("year", day), Integer)
    month = cast(extract("month", day), Integer)
    if plan.cap_period == "quarter":
        return year * 10 + (month - 1) // 3
    return year * 100 + month


def _desired_columns(rows: Subquery, points: ColumnElement[Any]) -> list[Any]:
    return [
        rows.c.source_key,
        rows.c.source,
        rows.c.organisation_id,
        points.label("points"),
        rows.c.earned_on,
        rows.c.sales_line_id,
        rows.c.claim_id,
        rows.c.tier_id,
        rows.c.amount,
        rows.c.rate,
        rows.c.multiplier,
        rows.c.priced_points,
        rows.c.category_rule_id,
        rows.c.segment_rule_id,
        rows.c.territory_rule_id,
    ]


def _bonus_day(program: Program) -> date:
    """A tier bonus is earned the day a run finds the tier reached, within the
    program's period."""
    return min(max(utc_now().date(), program.starts_on), program.ends_on)


def _tier_bonuses(program: Program) -> Rows:
    """A bonus for each tier at or below the partner's current one that has one."""
    reached = aliased(Tier)
    return (
        select(
            (
                literal("tier_bonus:")
                + cast(Tier.id, String)
                + literal(":o")
                + cast(Standing.organisation_id, String)
            ).label("source_key"),
            literal(LedgerSource.TIER_BONUS.value).label("source"),
            Standing.organisation_id,
            cast(Tier.bonus_points, Numeric(16, 2)).label("points"),
            literal(_bonus_day(program), Date).label("earned_on"),
            cast(null(), Integer).label("sales_line_id"),
            cast(null(), Integer).label("claim_id"),
            Tier.id.label("tier_id"),
            cast(null(), Numeric(16, 4)).label("amount"),
            cast(null(), Numeric(12, 4)).label("rate"),
            cast(null(), Numeric(16, 8)).label("multiplier"),
            cast(Tier.bonus_points, Numeric(16, 2)).label("priced_points"),
            cast(null(), Integer).label("category_rule_id"),
            cast(null(), Integer).label("segment_rule_id"),
            cast(null(), Integer).label("territory_rule_id"),
        )
        .join(reached, reached.id == Standing.tier_id)
        .join(
            Tier,
            and_(Tier.program_id == program.id, Tier.position <= reached.position),
        )
        .where(Standing.program_id == program.id, Tier.bonus_points.is_not(None))
    )


# --- Writing the differences -----------------------------------------------------


def write_differences(
    program: Program, plan: RewardPlan, scope: Scope, run_id: int | None, now: datetime
) -> int:
    """Append an entry for every source whose ledger total differs from its due.

    The desired points are written to a temporary table first and the two
    comparisons read that: as a subquery joined to the ledger, PostgreSQL's
    planner (with no statistics on rows a run has just written) could evaluate
    the whole pricing once per ledger row.
    """
    desired = _stage(desired_points(program, plan, scope))
    held = _held(program, scope)
    written = _write_changes(program, desired, held, run_id, now)
    written += _write_reversals(program, desired, held, run_id, now)
    db.session.execute(DropTable(desired))
    return written


def _stage(query: Any) -> Table:
    """The query's rows in a temporary table, indexed by source key."""
    db.session.execute(text(f"DROP TABLE IF EXISTS {STAGE}"))
    create = query.into(STAGE, temporary=True)
    db.session.execute(create)
    db.session.execute(text(f"CREATE INDEX ix_{STAGE}_key ON {STAGE} (source_key)"))
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text(f"ANALYZE {STAGE}"))
    staged: Table = create.table
    return staged


def _held(program: Program, scope: Scope) -> Subquery:
    """What the ledger holds per source of the program: total, entries, details."""
    entries = LedgerEntry
    query = (
        select(
            entries.source_key,
            entries.source,
            entries.organisation_id,
            func.sum(entries.points).label("total"),
            func.count().label("entries"),
            func.max(entries.earned_on).label("earned_on"),
            func.max(entries.sales_line_id).label("sales_line_id"),
            func.max(entries.claim_id).label("claim_id"),
            func.max(entries.tier_id).label("tier_id"),
            func.max(case((entries.status.in_(FINAL_STATUSES), 1), else_=0)).label(
                "final"
            ),
        )
        .where(
            entries.program_id == program.id,
            entries.source.in_(DERIVED_SOURCES),
        )
        .group_by(entries.source_key, entries.source, entries.organisation_id)
    )
    if not scope.full:
        query = query.where(_in_scope(scope))
    return query.subquery("held")


def _in_scope(scope: Scope) -> ColumnElement[bool]:
    """Ledger entries an incremental run may reverse: its own new sources only."""
    reviewed = exists().where(
        Claim.id == LedgerEntry.claim_id,
        Claim.reviewed_at_utc >= scope.reviewed_since,
    )
    return or_(
        LedgerEntry.sales_line_id > scope.after_line_id,
        reviewed if scope.reviewed_since is not None else literal(False),
        LedgerEntry.source == LedgerSource.TIER_BONUS.value,
    )


def _entry_key(source_key: Any, number: Any) -> ColumnElement[str]:
    return source_key + literal("#") + cast(number, String)


def _write_changes(
    program: Program, desired: Table, held: Subquery, run_id: int | None, now: Any
) -> int:
    difference = desired.c.points - func.coalesce(held.c.total, 0)
    rows = (
        select(
            _entry_key(desired.c.source_key, func.coalesce(held.c.entries, 0) + 1),
            desired.c.source_key,
            desired.c.organisation_id,
            literal(program.id),
            desired.c.source,
            desired.c.sales_line_id,
            desired.c.claim_id,
            desired.c.tier_id,
            _cents(difference),
            desired.c.amount,
            desired.c.rate,
            desired.c.multiplier,
            desired.c.priced_points,
            desired.c.category_rule_id,
            desired.c.segment_rule_id,
            desired.c.territory_rule_id,
            desired.c.earned_on,
            literal(EntryStatus.PENDING.value),
            literal(run_id, Integer),
            literal(now),
        )
        .select_from(desired.outerjoin(held, held.c.source_key == desired.c.source_key))
        .where(func.abs(difference) >= HALF_CENT, _not_final(held))
    )
    return _insert(
        rows,
        [
            "key",
            "source_key",
            "organisation_id",
            "program_id",
            "source",
            "sales_line_id",
            "claim_id",
            "tier_id",
            "points",
            "amount",
            "rate",
            "multiplier",
            "priced_points",
            "category_rule_id",
            "segment_rule_id",
            "territory_rule_id",
            "earned_on",
            "status",
            "run_id",
            "created_at_utc",
        ],
    )


def _write_reversals(
    program: Program, desired: Table, held: Subquery, run_id: int | None, now: Any
) -> int:
    """Sources the ledger holds points for that are no longer due: take them back."""
    rows = (
        select(
            _entry_key(held.c.source_key, held.c.entries + 1),
            held.c.source_key,
            held.c.organisation_id,
            literal(program.id),
            held.c.source,
            held.c.sales_line_id,
            held.c.claim_id,
            held.c.tier_id,
            _cents(-held.c.total),
            held.c.earned_on,
            literal(
                "No longer earned: the source no longer counts for this partner "
                "in this program."
            ),
            literal(EntryStatus.PENDING.value),
            literal(run_id, Integer),
            literal(now),
        )
        .select_from(held.outerjoin(desired, desired.c.source_key == held.c.source_key))
        .where(
            desired.c.source_key.is_(None),
            func.abs(held.c.total) >= HALF_CENT,
            _not_final(held),
        )
    )
    return _insert(
        rows,
        [
            "key",
            "source_key",
            "organisation_id",
            "program_id",
            "source",
            "sales_line_id",
            "claim_id",
            "tier_id",
            "points",
            "earned_on",
            "reason",
            "status",
            "run_id",
            "created_at_utc",
        ],
    )


def _not_final(held: Subquery) -> ColumnElement[bool]:
    """A source none of whose points were approved or paid yet (or new)."""
    return func.coalesce(held.c.final, 0) == 0


def _insert(rows: Rows, columns: list[str]) -> int:
    statement = insert(LEDGER).from_select(columns, rows)
    result = db.session.execute(statement.execution_options(preserve_rowcount=True))
    return max(getattr(result, "rowcount", 0) or 0, 0)


# --- Approval and expiry ---------------------------------------------------------


def approve_due(now: datetime) -> int:
    """Approve pending entries whose program's approval window has passed."""
    approved = 0
    windows = db.session.scalars(select(RewardPlan.approval_days).distinct()).all()
    for days in windows:
        plans = select(RewardPlan.program_id).where(RewardPlan.approval_days == days)
        result = db.session.execute(
            update(LedgerEntry)
            .where(
                LedgerEntry.status == EntryStatus.PENDING.value,
                LedgerEntry.program_id.in_(plans),
                LedgerEntry.created_at_utc <= now - timedelta(days=days),
            )
            .values(status=EntryStatus.APPROVED.value, approved_at_utc=now)
            .execution_options(synchronize_session=False)
        )
        approved += max(getattr(result, "rowcount", 0) or 0, 0)
    return approved


def expire_due(now: datetime, run_id: int | None) -> int:
    """Expire each approved, unpaid entry older than its program's expiry."""
    expired = 0
    spans = db.session.scalars(
        select(RewardPlan.expiry_days)
        .where(RewardPlan.expiry_days.is_not(None))
        .distinct()
    ).all()
    for days in spans:
        if days is not None:
            expired += _expire(days, now, run_id)
    return expired


def _expire(days: int, now: datetime, run_id: int | None) -> int:
    entry = aliased(LedgerEntry)
    expiry = aliased(LedgerEntry)
    plans = select(RewardPlan.program_id).where(RewardPlan.expiry_days == days)
    source_key = literal("expiry:") + cast(entry.id, String)
    rows = select(
        source_key + literal("#1"),
        source_key,
        entry.organisation_id,
        entry.program_id,
        literal(LedgerSource.EXPIRY.value),
        entry.id,
        -entry.points,
        literal(now.date(), Date),
        literal(f"Not paid within {days} days of being earned."),
        literal(EntryStatus.APPROVED.value),
        literal(now),
        literal(run_id, Integer),
        literal(now),
    ).where(
        entry.program_id.in_(plans),
        entry.status == EntryStatus.APPROVED.value,
        entry.payout_id.is_(None),
        entry.source != LedgerSource.EXPIRY.value,
        func.abs(entry.points) >= HALF_CENT,
        entry.created_at_utc <= now - timedelta(days=days),
        ~exists().where(expiry.expires_entry_id == entry.id),
    )
    return _insert(
        rows,
        [
            "key",
            "source_key",
            "organisation_id",
            "program_id",
            "source",
            "expires_entry_id",
            "points",
            "earned_on",
            "reason",
            "status",
            "approved_at_utc",
            "run_id",
            "created_at_utc",
        ],
    )
