"""What a partner organisation sees of its points: balances, standings, the ledger.

Read-side only: every figure is summed in the database (one ``GROUP BY`` per
question) and every list is one filtered query, always kept to one
organisation. An entry's place among the entries of its source (a second
entry for the same source is a correction) is worked out by the database too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import ColumnElement, Date, and_, exists, func, or_, select
from sqlalchemy.orm import aliased, defer, joinedload

from portal.extensions import db
from programs.eligibility import eligible_program_ids
from programs.models import KpiDirection, Program, ProgramKind, ProgramStatus, Tier
from programs.tiers import format_kpi, kpi_values, next_step, tier_for
from rewards.models import (
    EntryStatus,
    LedgerEntry,
    LedgerSource,
    RewardPlan,
)
from territory_rules.credit import credited_sales
from territory_rules.imports import AMOUNT_STEP
from territory_rules.models import Account, SalesLine, Territory

ENTRIES_PER_PAGE = 50
# Approved points whose expiry falls this close are shown as expiring soon.
EXPIRY_NOTICE = timedelta(days=30)
CENT = Decimal("0.01")
TIMES = "\u00d7"  # the multiplication sign between amount, rate and multiplier
ZERO = Decimal("0.00")

SOURCE_LABELS = {
    LedgerSource.SALE.value: "Sale",
    LedgerSource.CLAIM.value: "Claim",
    LedgerSource.TIER_BONUS.value: "Tier bonus",
    LedgerSource.EXPIRY.value: "Expiry",
    LedgerSource.ADJUSTMENT.value: "Adjustment",
}
STATUS_LABELS = {
    EntryStatus.PENDING.value: "Pending",
    EntryStatus.APPROVED.value: "Approved",
    EntryStatus.PAID.value: "Paid",
}


# --- Which entries ------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerFilter:
    """What the partner narrowed the ledger to; None means no narrowing."""

    program_id: int | None = None
    source: str | None = None
    status: str | None = None
    earned_from: date | None = None
    earned_to: date | None = None


def in_payout() -> ColumnElement[bool]:
    """Paid: in a payout batch (a deleted payout leaves the status behind)."""
    return or_(
        LedgerEntry.payout_id.is_not(None),
        LedgerEntry.status == EntryStatus.PAID.value,
    )


def status_condition(status: str) -> ColumnElement[bool]:
    """Entries that are ``status`` as the partner sees it: paid wins over the rest."""
    if status == EntryStatus.PAID:
        return in_payout()
    return and_(LedgerEntry.status == status, ~in_payout())


def entry_conditions(
    organisation_id: int, chosen: LedgerFilter
) -> list[ColumnElement[bool]]:
    conditions = [LedgerEntry.organisation_id == organisation_id]
    if chosen.program_id is not None:
        conditions.append(LedgerEntry.program_id == chosen.program_id)
    if chosen.source is not None:
        conditions.append(LedgerEntry.source == chosen.source)
    if chosen.status is not None:
        conditions.append(status_condition(chosen.status))
    if chosen.earned_from is not None:
        conditions.append(LedgerEntry.earned_on >= chosen.earned_from)
    if chosen.earned_to is not None:
        conditions.append(LedgerEntry.earned_on <= chosen.earned_to)
    return conditions


# --- Balances -----------------------------------------------------------------------


@dataclass(frozen=True)
class Balances:
    """The organisation's points by where they stand, and what expires soon."""

    pending: Decimal = ZERO
    available: Decimal = ZERO
    paid: Decimal = ZERO
    expiring: Decimal = ZERO
    # The first day on which some of the expiring points go, and how many.
    first_expiry_on: date | None = None
    first_expiry_points: Decimal = ZERO


def balances(organisation_id: int, now: datetime) -> Balances:
    """Pending, available (approved, unpaid), paid and expiring-soon points."""
    totals = status_totals(organisation_id)
    expiring = expiring_by_day(organisation_id, now)
    first_day = min(expiring, default=None)

    return Balances(
        pending=totals.get(EntryStatus.PENDING.value, ZERO),
        available=totals.get(EntryStatus.APPROVED.value, ZERO),
        paid=totals.get(EntryStatus.PAID.value, ZERO),
        expiring=_cents(sum(expiring.values(), ZERO)),
        first_expiry_on=first_day,
        first_expiry_points=expiring[first_day] if first_day else ZERO,
    )


def status_totals(organisation_id: int) -> dict[str, Decimal]:
    """Points per status as the partner sees it, summed in one query."""
    paid = in_payout()
    rows = db.session.execute(
        select(LedgerEntry.status, paid, func.sum(LedgerEntry.points))
        .where(LedgerEntry.organisation_id == organisation_id)
        .group_by(LedgerEntry.status, paid)
    ).all()

    totals: dict[str, Decimal] = {}
    for status, is_paid, points in rows:
        bucket = EntryStatus.PAID.value if is_paid else status
        totals[bucket] = _cents(totals.get(bucket, ZERO) + _decimal(points))
    return totals


def expiring_by_day(organisation_id: int, now: datetime) -> dict[date, Decimal]:
    """Approved, unpaid points that expire within the notice period, by expiry day.

    An entry expires ``expiry_days`` after it was written. Entries already past
    that moment but not yet expired by a run are counted too: the next run
    expires them, so they are the most urgent of all.
    """
    horizon = now + EXPIRY_NOTICE
    spans = _expiry_spans()
    if not spans:
        return {}

    expired = aliased(LedgerEntry)
    written_on = func.date(LedgerEntry.created_at_utc, type_=Date)
    rows = db.session.execute(
        select(RewardPlan.expiry_days, written_on, func.sum(LedgerEntry.points))
        .join(RewardPlan, RewardPlan.program_id == LedgerEntry.program_id)
        .where(
            LedgerEntry.organisation_id == organisation_id,
            LedgerEntry.status == EntryStatus.APPROVED.value,
            LedgerEntry.payout_id.is_(None),
            LedgerEntry.source != LedgerSource.EXPIRY.value,
            or_(*(_due_by(horizon, days) for days in spans)),
            ~exists().where(expired.expires_entry_id == LedgerEntry.id),
        )
        .group_by(RewardPlan.expiry_days, written_on)
    ).all()

    by_day: dict[date, Decimal] = {}
    for days, written, points in rows:
        day = _as_date(written) + timedelta(days=int(days or 0))
        by_day[day] = by_day.get(day, ZERO) + _decimal(points)
    return {day: _cents(points) for day, points in by_day.items() if points}


def _expiry_spans() -> list[int]:
    spans = db.session.scalars(
        select(RewardPlan.expiry_days)
        .where(RewardPlan.expiry_days.is_not(None))
        .distinct()
    )
    return [days for days in spans if days is not None]


def _due_by(horizon: datetime, days: int) -> ColumnElement[bool]:
    """Entries of plans expiring after ``days`` that expire by ``horizon``."""
    plans = select(RewardPlan.program_id).where(RewardPlan.expiry_days == days)
    return and_(
        LedgerEntry.program_id.in_(plans),
        LedgerEntry.created_at_utc <= horizon - timedelta(days=days),
    )


# --- Standing per program -----------------------------------------------------------


@dataclass(frozen=True)
class ProgramStanding:
    """An incentive program the organisation is in: its tier and its points."""

    program: Program
    points: Decimal
    value_text: str | None = None
    tier: Tier | None = None
    next_tier: Tier | None = None
    next_step: str | None = None
    # Toward the next tier, for higher-is-better KPIs only.
    percent: int | None = None


def program_standings(organisation_id: int, today: date) -> list[ProgramStanding]:
    """Each running incentive program the organisation is eligible for, by name."""
    ids = eligible_program_ids(organisation_id)
    if not ids:
        return []
    programs = db.session.scalars(
        select(Program)
        .where(
            Program.id.in_(ids),
            Program.kind == ProgramKind.INCENTIVE.value,
            Program.status == ProgramStatus.ACTIVE.value,
        )
        .options(joinedload(Program.tiers))
        .order_by(Program.name)
    ).unique()
    earned = points_by_program(organisation_id)

    return [
        _standing(program, organisation_id, earned.get(program.id, ZERO), today)
        for program in programs
    ]


def points_by_program(organisation_id: int) -> dict[int, Decimal]:
    """Points earned per program, every status; expiry is not earning."""
    rows = db.session.execute(
        select(LedgerEntry.program_id, func.sum(LedgerEntry.points))
        .where(
            LedgerEntry.organisation_id == organisation_id,
            LedgerEntry.program_id.is_not(None),
            LedgerEntry.source != LedgerSource.EXPIRY.value,
        )
        .group_by(LedgerEntry.program_id)
    ).all()
    return {
        program_id: _cents(_decimal(points))
        for program_id, points in rows
        if program_id is not None
    }


def _standing(
    program: Program, organisation_id: int, points: Decimal, today: date
) -> ProgramStanding:
    if not program.kpi:
        return ProgramStanding(program=program, points=points)

    value = kpi_values(program, [organisation_id]).get(organisation_id)
    tiers = list(program.tiers)
    tier = tier_for(value, tiers, program.kpi_direction)
    following = 0 if tier is None else tiers.index(tier) + 1
    next_tier = tiers[following] if following < len(tiers) else None

    return ProgramStanding(
        program=program,
        points=points,
        value_text=format_kpi(program.kpi, value, program.kpi_direction),
        tier=tier,
        next_tier=next_tier,
        next_step=next_step(program, value, today),
        percent=_percent_toward(value, next_tier, program.kpi_direction),
    )


def _percent_toward(
    value: Decimal | None, target: Tier | None, direction: str
) -> int | None:
    if target is None or direction != KpiDirection.HIGHER_IS_BETTER:
        return None
    if target.threshold <= 0:
        return 100
    share = (value or Decimal(0)) * 100 / target.threshold
    return int(max(Decimal(0), min(Decimal(100), share)))


# --- The ledger ---------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerRow:
    """An entry with what the ledger table says beside it."""

    entry: LedgerEntry
    # The sale line's external id, for sales.
    sales_line_ref: str | None = None
    # A later entry for a source already in the ledger: a correction.
    repriced: bool = False
    # The source's points so far fell short of what its pricing gave: the cap.
    capped: bool = False

    @property
    def status(self) -> str:
        entry = self.entry
        if entry.payout_id is not None or entry.status == EntryStatus.PAID:
            return EntryStatus.PAID.value
        return entry.status

    @property
    def reference(self) -> str:
        """The sale line, claim invoice or tier the entry is for, as text."""
        entry = self.entry
        if entry.source == LedgerSource.SALE:
            return self.sales_line_ref or ""
        if entry.source == LedgerSource.CLAIM and entry.claim is not None:
            return entry.claim.invoice_number
        if entry.tier is not None:
            return entry.tier.name
        return ""


@dataclass(frozen=True)
class LedgerPage:
    pager: Pagination
    rows: list[LedgerRow] = field(default_factory=list)


def _listing(organisation_id: int, chosen: LedgerFilter) -> Any:
    """The organisation's entries, newest first, with what the table names."""
    return (
        select(LedgerEntry)
        .where(*entry_conditions(organisation_id, chosen))
        .options(
            joinedload(LedgerEntry.program),
            joinedload(LedgerEntry.claim),
            joinedload(LedgerEntry.tier),
            joinedload(LedgerEntry.category_rule),
            joinedload(LedgerEntry.segment_rule),
            joinedload(LedgerEntry.territory_rule),
        )
        .order_by(LedgerEntry.earned_on.desc(), LedgerEntry.id.desc())
    )


def ledger_page(
    organisation_id: int,
    chosen: LedgerFilter,
    page: int,
    per_page: int = ENTRIES_PER_PAGE,
) -> LedgerPage:
    """One page of the ledger; a page past the last one is a 404."""
    pager = db.paginate(_listing(organisation_id, chosen), page=page, per_page=per_page)
    entries: list[LedgerEntry] = list(pager.items)
    ids = [entry.id for entry in entries]
    facts = _entry_facts(LedgerEntry.id.in_(ids)) if ids else {}
    return LedgerPage(pager=pager, rows=_rows(entries, facts))


def ledger_rows(organisation_id: int, chosen: LedgerFilter) -> list[LedgerRow]:
    """Every entry the filter keeps, for the export; one organisation fits."""
    entries = list(db.session.scalars(_listing(organisation_id, chosen)).unique().all())
    facts = _entry_facts(and_(*entry_conditions(organisation_id, chosen)))
    return _rows(entries, facts)


def _rows(
    entries: Sequence[LedgerEntry], facts: dict[int, tuple[Any, ...]]
) -> list[LedgerRow]:
    rows = []
    for entry in entries:
        reference, position, running = facts.get(entry.id, (None, 1, entry.points))
        priced = entry.priced_points
        rows.append(
            LedgerRow(
                entry=entry,
                sales_line_ref=reference,
                repriced=position > 1,
                capped=priced is not None and _decimal(running) < priced,
            )
        )
    return rows


def _entry_facts(which: ColumnElement[bool]) -> dict[int, tuple[Any, ...]]:
    """Entry id -> (sale line external id, place in its source, points so far).

    Entries of a source count in the order they were written; only the same
    organisation's entries count, whatever another organisation holds.
    """
    earlier = aliased(LedgerEntry)
    same_source = and_(
        earlier.organisation_id == LedgerEntry.organisation_id,
        earlier.source_key == LedgerEntry.source_key,
        earlier.id <= LedgerEntry.id,
    )
    position = select(func.count()).where(same_source).scalar_subquery()
    running = select(func.sum(earlier.points)).where(same_source).scalar_subquery()
    rows = db.session.execute(
        select(LedgerEntry.id, SalesLine.external_line_id, position, running)
        .outerjoin(SalesLine, SalesLine.id == LedgerEntry.sales_line_id)
        .where(which)
    ).all()
    return {entry_id: (ref, count, total) for entry_id, ref, count, total in rows}


def ledger_programs(organisation_id: int) -> list[Program]:
    """The programs the organisation's ledger names, for the program filter."""
    return list(
        db.session.scalars(
            select(Program)
            .where(
                Program.id.in_(
                    select(LedgerEntry.program_id).where(
                        LedgerEntry.organisation_id == organisation_id
                    )
                )
            )
            .order_by(Program.name)
        )
    )


# --- One sale -----------------------------------------------------------------------


@dataclass(frozen=True)
class SaleStatement:
    """A sale that earned the organisation points, and the entries it earned."""

    line: SalesLine
    account: Account
    territory_name: str | None
    rows: list[LedgerRow]


def sale_statement(organisation_id: int, sales_line_id: int) -> SaleStatement | None:
    """The sale, if the organisation's ledger has an entry for it; else None."""
    mine = exists().where(
        LedgerEntry.sales_line_id == SalesLine.id,
        LedgerEntry.organisation_id == organisation_id,
    )
    found = db.session.execute(
        select(SalesLine, Account)
        .join(Account, Account.id == SalesLine.account_id)
        .where(SalesLine.id == sales_line_id, mine)
        .options(defer(Account.location))
    ).first()
    if found is None:
        return None

    line, account = found
    return SaleStatement(
        line=line,
        account=account,
        territory_name=credited_territory(line.id, organisation_id),
        rows=source_rows(organisation_id, LedgerEntry.sales_line_id == line.id),
    )


def claim_rows(organisation_id: int, claim_id: int) -> list[LedgerRow]:
    """The organisation's ledger entries earned by one of its claims, oldest first."""
    return source_rows(organisation_id, LedgerEntry.claim_id == claim_id)


def source_rows(organisation_id: int, source: ColumnElement[bool]) -> list[LedgerRow]:
    """The organisation's ledger entries matching ``source``, in the order written."""
    entries = list(
        db.session.scalars(
            _listing(organisation_id, LedgerFilter())
            .where(source)
            .order_by(None)
            .order_by(LedgerEntry.id)
        ).unique()
    )
    facts = _entry_facts(LedgerEntry.id.in_([entry.id for entry in entries]))
    return _rows(entries, facts)


def credited_territory(sales_line_id: int, organisation_id: int) -> str | None:
    """The territory the sale counted in for the organisation, on its date."""
    credited = credited_sales()
    return db.session.scalar(
        select(Territory.name)
        .join(credited, credited.c.territory_id == Territory.id)
        .where(
            credited.c.sales_line_id == sales_line_id,
            credited.c.organisation_id == organisation_id,
        )
        .limit(1)
    )


# --- Words and numbers --------------------------------------------------------------


def format_points(points: Decimal | None) -> str:
    """1234.5 as "1,234.50", 1200 as "1,200": two decimals at most, none if whole."""
    value = _cents(_decimal(points))
    if value == value.to_integral_value():
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def format_money(amount: Decimal | None, symbol: str) -> str:
    value = _decimal(amount)
    sign = "-" if value < 0 else ""
    return f"{sign}{symbol}{abs(value):,.2f}"


def _exact_money(amount: Decimal | None, symbol: str) -> str:
    """An amount as priced: to the cent, or to the sales line's four places when
    it has them ("$3.856"), so that the formula shown is the one computed."""
    value = _decimal(amount).quantize(AMOUNT_STEP)
    if value == value.quantize(CENT):
        return format_money(value, symbol)
    sign = "-" if value < 0 else ""
    return f"{sign}{symbol}{abs(value).normalize():,f}"


def pricing_text(entry: LedgerEntry, symbol: str) -> str:
    """The rule that priced the entry, in words; empty for entries not priced.

    A sale or claim: amount times rate times multiplier, and what the multiplier is
    made of. A tier bonus: the tier. Adjustments, expiry and reversals carry
    a reason instead.
    """
    if entry.amount is not None and entry.rate is not None:
        return _priced(entry, symbol)
    if entry.source == LedgerSource.TIER_BONUS and entry.tier is not None:
        return f"Bonus for reaching {entry.tier.name}."
    return ""


def _priced(entry: LedgerEntry, symbol: str) -> str:
    multiplier = entry.multiplier if entry.multiplier is not None else Decimal(1)
    text = (
        f"{_exact_money(entry.amount, symbol)} {TIMES} {_plain(entry.rate)} {TIMES} "
        f"{_plain(multiplier)} = {format_points(entry.priced_points)} points"
    )
    sources = _multiplier_sources(entry)
    if sources:
        text += f"; multiplier from {', '.join(sources)}"
    return text + "."


def _multiplier_sources(entry: LedgerEntry) -> list[str]:
    rules = (
        ("category rule", entry.category_rule),
        ("segment rule", entry.segment_rule),
        ("territory rule", entry.territory_rule),
    )
    # Rules by name only: their multipliers may have been edited since.
    sources = [f"{kind} “{rule.name}”" for kind, rule in rules if rule is not None]
    tier = entry.tier
    if tier is not None and tier.points_multiplier is not None:
        sources.append(f"tier {tier.name} ({TIMES}{_plain(tier.points_multiplier)})")
    return sources


def _plain(number: Decimal | None) -> str:
    """1.5000 as "1.5", 2.0000 as "2"."""
    value = _decimal(number)
    if value == value.to_integral_value():
        return f"{value.quantize(Decimal(1)):,}"
    return f"{value.normalize():,f}"


def _decimal(value: Any) -> Decimal:
    """A database number as a Decimal; SQLite may hand back floats, read via str."""
    if value is None:
        return ZERO
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT)


def _as_date(value: Any) -> date:
    """SQLite's date() is text; PostgreSQL's a date."""
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
