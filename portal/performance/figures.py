"""Revenue and targets, and the figures derived from them, per region and row.

All aggregation happens in SQL, and each function issues a fixed number of
queries whatever the number of territories, partners, accounts or sales.
"""

from __future__ import annotations

import itertools
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

from sqlalchemy import (
    Date,
    Integer,
    Numeric,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    text,
    type_coerce,
    union_all,
)
from sqlalchemy.sql import Subquery

from portal.extensions import db
from portal.models import PartnerOrganisation
from portal.performance.models import TargetMonth, TerritoryTarget
from portal.performance.periods import Period
from programs.models import (
    Eligibility,
    ModuleCompletion,
    Program,
    ProgramStatus,
    ProgramStep,
    Standing,
    StepKind,
    Tier,
)
from programs.targeting import partner_facts
from rewards.models import Claim, ClaimStatus
from territory_rules.credit import credited_sales
from territory_rules.models import (
    Account,
    Assignment,
    AssignmentStatus,
    Region,
    SalesLine,
    Territory,
)

logger = logging.getLogger(__name__)

CENT = Decimal("0.01")


def against_target(revenue: Decimal, revenue_with_target: Decimal | None) -> Decimal:
    """The revenue set against a target: that of the territories with a target,
    or all of it when that is not given."""
    return revenue if revenue_with_target is None else revenue_with_target


def attainment_of(revenue: Decimal, target: Decimal | None) -> Decimal | None:
    """``revenue`` as a share of ``target``; none without a (non-zero) target."""
    return revenue / target if target else None


@dataclass
class Figures:
    """What was achieved in a period against last year and against the target.

    The target only covers the territories that have one in the period, so
    attainment and variance set it against the revenue of those territories
    (``revenue_with_target``; all of the revenue when that is not given), while
    ``revenue`` stays the whole revenue.
    """

    revenue: Decimal = Decimal(0)
    previous_revenue: Decimal = Decimal(0)
    target: Decimal | None = None
    revenue_with_target: Decimal | None = None

    @property
    def growth(self) -> Decimal | None:
        """Revenue against the same period last year, as a ratio (0.1 = +10%)."""
        if not self.previous_revenue:
            return None
        return (self.revenue - self.previous_revenue) / self.previous_revenue

    @property
    def revenue_against_target(self) -> Decimal:
        """The revenue that attainment and variance set against the target."""
        return against_target(self.revenue, self.revenue_with_target)

    @property
    def revenue_without_target(self) -> Decimal:
        """The revenue that attainment leaves out, earned where no target is set."""
        return self.revenue - self.revenue_against_target

    @property
    def attainment(self) -> Decimal | None:
        """Revenue with a target as a share of the target; none without a
        (non-zero) target."""
        return attainment_of(self.revenue_against_target, self.target)

    @property
    def variance(self) -> Decimal | None:
        """Revenue with a target minus the target: positive when ahead."""
        if self.target is None:
            return None
        return self.revenue_against_target - self.target


@dataclass
class TerritoryRow:
    id: int
    name: str
    region_id: int
    region_name: str
    partner_id: int | None
    partner_name: str | None
    figures: Figures
    accounts: int = 0
    potential: Decimal = Decimal(0)
    last_activity: date | None = None
    flags: list[Any] = field(default_factory=list)


@dataclass
class TrainingCount:
    required: int
    completed: int

    @property
    def share(self) -> Decimal | None:
        if not self.required:
            return None
        return Decimal(self.completed) / Decimal(self.required)


class ProgramTier(NamedTuple):
    """A partner's tier in one incentive program; ``position`` is the tier's
    place in the program's ladder (0 the lowest), none before any tier."""

    program: str
    tier: str
    position: int | None


@dataclass
class PartnerRow:
    id: int
    name: str
    territories: list[str]
    figures: Figures
    accounts: int = 0
    potential: Decimal = Decimal(0)
    training_completion: Decimal | None = None
    tier: str | None = None
    last_activity: date | None = None
    flags: list[Any] = field(default_factory=list)
    # Its tiers by program name, whether it owns a territory of the scope now,
    # and its required and completed modules.
    program_tiers: list[ProgramTier] = field(default_factory=list)
    owns_territory: bool = True
    training: TrainingCount | None = None

    @property
    def tier_rank(self) -> tuple[int, ...] | None:
        """Its places in the ladders, by program name, for sorting by tier;
        no tier yet comes below the lowest tier."""
        if not self.program_tiers:
            return None
        return tuple(
            -1 if tier.position is None else tier.position
            for tier in self.program_tiers
        )


def tier_words(program_tiers: Sequence[ProgramTier]) -> str | None:
    """``Gold``, or ``Growth: Gold, Loyalty: Silver`` with tiers in several programs."""
    if len(program_tiers) == 1:
        return program_tiers[0].tier
    return ", ".join(f"{t.program}: {t.tier}" for t in program_tiers) or None


@dataclass
class MonthPoint:
    """A month's revenue and target; the target is set against the revenue of
    the territories with a target in the month (``revenue_with_target``; all of
    the revenue when that is not given)."""

    month: date
    revenue: Decimal
    target: Decimal | None
    revenue_with_target: Decimal | None = None

    @property
    def revenue_against_target(self) -> Decimal:
        return against_target(self.revenue, self.revenue_with_target)

    @property
    def attainment(self) -> Decimal | None:
        return attainment_of(self.revenue_against_target, self.target)


@dataclass
class Overview:
    period: Period
    comparison: Period
    totals: Figures
    partners: int = 0
    accounts: int = 0
    territories: int = 0
    training_completion: Decimal | None = None
    tier_distribution: list[tuple[str, str, int]] = field(default_factory=list)
    gini: Decimal | None = None
    flags: list[Any] = field(default_factory=list)
    last_activity: date | None = None
    territories_without_target: int = 0

    @property
    def tiers_by_program(self) -> list[tuple[str, list[tuple[str, int]]]]:
        """The tier distribution grouped by program: (program, [(tier, count)])."""
        return [
            (program, [(tier, count) for _, tier, count in rows])
            for program, rows in itertools.groupby(
                self.tier_distribution, key=lambda row: row[0]
            )
        ]


@dataclass
class Page:
    """One page of a longer list, shaped like Flask-SQLAlchemy's pagination."""

    items: list[Any]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def prev_num(self) -> int:
        return self.page - 1

    @property
    def next_num(self) -> int:
        return self.page + 1


# Building blocks -------------------------------------------------------------


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def _day(value: date) -> Any:
    return literal(value, Date())


def _greatest(*values: Any) -> Any:
    if _dialect() == "sqlite":
        return func.max(*values)
    return func.greatest(*values)


def _least(*values: Any) -> Any:
    if _dialect() == "sqlite":
        return func.min(*values)
    return func.least(*values)


def _day_number(value: Any) -> Any:
    """Days since a fixed date, so that differences of dates are day counts."""
    if _dialect() == "sqlite":
        return func.julianday(value)
    return type_coerce(value - _day(date(2000, 1, 1)), Integer())


def _month_end(month: Any) -> Any:
    """The last day of the month starting on ``month``."""
    if _dialect() == "sqlite":
        return func.date(month, "+1 month", "-1 day")
    return cast(month + text("interval '1 month' - interval '1 day'"), Date)


def _month_of(day: Any) -> Any:
    """The month of a date as text, ``2018-07``."""
    if _dialect() == "sqlite":
        return func.strftime("%Y-%m", day)
    return func.to_char(day, "YYYY-MM")


def revenue_events() -> Subquery:
    """Everything that counts as revenue: credited sales lines and approved claims.

    Columns: ``kind`` ("sale" or "claim"), ``ref`` (the line's or claim's id),
    ``territory_id``, ``organisation_id``, ``day``, ``amount``.
    """
    sales = credited_sales()
    lines = select(
        literal("sale").label("kind"),
        sales.c.sales_line_id.label("ref"),
        sales.c.territory_id,
        sales.c.organisation_id,
        sales.c.order_date.label("day"),
        sales.c.amount,
    )
    claims = select(
        literal("claim"),
        Claim.id,
        Claim.territory_id,
        Claim.organisation_id,
        Claim.sale_date,
        Claim.amount,
    ).where(Claim.status == ClaimStatus.APPROVED.value, Claim.territory_id.is_not(None))
    return union_all(lines, claims).subquery("revenue_events")


def _scope_ids(regions: Sequence[Region]) -> Any:
    """The query for the ids of the territories now in the regions."""
    return select(Territory.id).where(Territory.region_id.in_([r.id for r in regions]))


def _sum_between(events: Subquery, period: Period) -> Any:
    inside = events.c.day.between(_day(period.starts_on), _day(period.ends_on))
    return type_coerce(
        func.coalesce(func.sum(case((inside, events.c.amount), else_=0)), 0),
        Numeric(18, 4),
    )


def _target_contribution(period: Period) -> tuple[Any, list[Any]]:
    """Each month row's share of its amount falling inside the period, and the
    conditions picking the rows that have one.

    A month row covers the part of its month inside its target; the period gets
    the amount times the days of that part inside the period over its days.
    """
    target, month = TerritoryTarget, TargetMonth
    part_starts = _greatest(month.month, target.starts_on)
    part_ends = _least(_month_end(month.month), target.ends_on)
    starts = _greatest(part_starts, _day(period.starts_on))
    ends = _least(part_ends, _day(period.ends_on))
    days_inside = _day_number(ends) - _day_number(starts) + 1
    part_days = _day_number(part_ends) - _day_number(part_starts) + 1

    contribution = month.amount * days_inside / part_days
    conditions = [
        target.starts_on <= _day(period.ends_on),
        target.ends_on >= _day(period.starts_on),
        month.month <= _day(period.ends_on),
        month.month >= _day(period.starts_on.replace(day=1)),
        days_inside > 0,
    ]
    return contribution, conditions


def _targets(
    regions: Sequence[Region], period: Period, territory_ids: list[int] | None = None
) -> dict[int, Decimal]:
    """The period's target of every territory in scope that has one."""
    contribution, conditions = _target_contribution(period)
    query = (
        select(TerritoryTarget.territory_id, func.sum(contribution))
        .join(TargetMonth, TargetMonth.target_id == TerritoryTarget.id)
        .where(TerritoryTarget.territory_id.in_(_scope_ids(regions)), *conditions)
        .group_by(TerritoryTarget.territory_id)
    )
    if territory_ids is not None:
        query = query.where(TerritoryTarget.territory_id.in_(territory_ids))
    return {tid: _cents(amount) for tid, amount in db.session.execute(query)}


def _cents(amount: Any) -> Decimal:
    return Decimal(str(amount)).quantize(CENT, ROUND_HALF_UP)


def today_utc() -> date:
    return datetime.now(UTC).date()


# Territory and partner rows --------------------------------------------------


@dataclass
class _Revenue:
    """Revenue of one (territory, partner) pair: this period, last year, last day."""

    territory_id: int
    organisation_id: int
    revenue: Decimal
    previous_revenue: Decimal
    last_activity: date | None


@dataclass
class _Territory:
    id: int
    name: str
    region_id: int
    region_name: str
    partner_id: int | None
    partner_name: str | None


@dataclass
class _Data:
    """What the rows of a scope are built from, read in a fixed number of queries."""

    territories: list[_Territory]
    revenue: list[_Revenue]
    targets: dict[int, Decimal]
    accounts: dict[int, int]
    potential: dict[int, Decimal]


def _scope_territories(regions: Sequence[Region]) -> list[_Territory]:
    query = (
        select(
            Territory.id,
            Territory.name,
            Territory.region_id,
            Region.name,
            Territory.partner_id,
            PartnerOrganisation.name,
        )
        .join(Region, Region.id == Territory.region_id)
        .outerjoin(PartnerOrganisation, PartnerOrganisation.id == Territory.partner_id)
        .where(Territory.region_id.in_([r.id for r in regions]))
        .order_by(Region.name, Territory.name)
    )
    return [_Territory(*row) for row in db.session.execute(query)]


def _revenue(regions: Sequence[Region], period: Period) -> list[_Revenue]:
    """Revenue per territory and credited partner, in one pass over the events."""
    events = revenue_events()
    comparison = period.previous_year()
    up_to = min(period.ends_on, today_utc())
    last = func.max(case((events.c.day <= _day(up_to), events.c.day)))
    query = (
        select(
            events.c.territory_id,
            events.c.organisation_id,
            _sum_between(events, period),
            _sum_between(events, comparison),
            type_coerce(last, Date()),
        )
        .where(
            events.c.territory_id.in_(_scope_ids(regions)),
            events.c.day <= _day(period.ends_on),
        )
        .group_by(events.c.territory_id, events.c.organisation_id)
    )
    return [_Revenue(*row) for row in db.session.execute(query)]


def _accounts(regions: Sequence[Region]) -> dict[int, int]:
    query = (
        select(Assignment.territory_id, func.count())
        .where(
            Assignment.status == AssignmentStatus.ASSIGNED.value,
            Assignment.territory_id.in_(_scope_ids(regions)),
        )
        .group_by(Assignment.territory_id)
    )
    return {tid: count for tid, count in db.session.execute(query) if tid}


def _potential(regions: Sequence[Region]) -> dict[int, Decimal]:
    """Revenue potential of the owned territories, as program targeting has it."""
    facts = partner_facts()
    query = select(facts.c.territory_id, facts.c.potential).where(
        facts.c.territory_id.in_(_scope_ids(regions))
    )
    return {tid: _cents(value) for tid, value in db.session.execute(query)}


def _data(regions: Sequence[Region], period: Period) -> _Data:
    return _Data(
        territories=_scope_territories(regions),
        revenue=_revenue(regions, period),
        targets=_targets(regions, period),
        accounts=_accounts(regions),
        potential=_potential(regions),
    )


def _latest(days: Iterable[date | None]) -> date | None:
    known = [day for day in days if day is not None]
    return max(known) if known else None


def _sum_targets(targets: Iterable[Decimal | None]) -> Decimal | None:
    known = [target for target in targets if target is not None]
    return sum(known, Decimal(0)) if known else None


def _territory_rows(data: _Data) -> list[TerritoryRow]:
    by_territory: dict[int, list[_Revenue]] = defaultdict(list)
    for revenue in data.revenue:
        by_territory[revenue.territory_id].append(revenue)

    rows = []
    for territory in data.territories:
        own = by_territory.get(territory.id, [])
        earned = sum((r.revenue for r in own), Decimal(0))
        target = data.targets.get(territory.id)
        figures = Figures(
            revenue=earned,
            previous_revenue=sum((r.previous_revenue for r in own), Decimal(0)),
            target=target,
            revenue_with_target=earned if target is not None else Decimal(0),
        )
        rows.append(
            TerritoryRow(
                id=territory.id,
                name=territory.name,
                region_id=territory.region_id,
                region_name=territory.region_name,
                partner_id=territory.partner_id,
                partner_name=territory.partner_name,
                figures=figures,
                accounts=data.accounts.get(territory.id, 0),
                potential=data.potential.get(territory.id, Decimal(0)),
                last_activity=_latest(r.last_activity for r in own),
            )
        )
    return rows


def territory_rows(regions: Sequence[Region], period: Period) -> list[TerritoryRow]:
    """Every territory now in the regions with its figures for the period."""
    return _territory_rows(_data(regions, period))


def _partner_ids(data: _Data) -> list[int]:
    """Partners owning a territory of the scope now, or credited revenue in it."""
    owners = {t.partner_id for t in data.territories if t.partner_id is not None}
    credited = {
        r.organisation_id for r in data.revenue if r.revenue or r.previous_revenue
    }
    return sorted(owners | credited)


def _partner_names(ids: list[int]) -> dict[int, str]:
    query = select(PartnerOrganisation.id, PartnerOrganisation.name).where(
        PartnerOrganisation.id.in_(ids)
    )
    return {pid: name for pid, name in db.session.execute(query)}


def _training(ids: list[int]) -> dict[int, TrainingCount]:
    """Required modules of each partner's active programs, and how many are done.

    A module counts as done once anyone at the organisation completed it.
    """
    required = (
        select(Eligibility.organisation_id, ProgramStep.module_id)
        .join(ProgramStep, ProgramStep.program_id == Eligibility.program_id)
        .join(Program, Program.id == Eligibility.program_id)
        .where(
            Eligibility.organisation_id.in_(ids),
            Program.status == ProgramStatus.ACTIVE.value,
            ProgramStep.kind == StepKind.MODULE.value,
            ProgramStep.required.is_(True),
            ProgramStep.module_id.is_not(None),
        )
        .distinct()
        .subquery("required_modules")
    )
    done = (
        select(ModuleCompletion.organisation_id, ModuleCompletion.module_id)
        .distinct()
        .subquery("done_modules")
    )
    query = (
        select(required.c.organisation_id, func.count(), func.count(done.c.module_id))
        .outerjoin(
            done,
            and_(
                done.c.organisation_id == required.c.organisation_id,
                done.c.module_id == required.c.module_id,
            ),
        )
        .group_by(required.c.organisation_id)
    )
    return {
        org: TrainingCount(total, finished)
        for org, total, finished in db.session.execute(query)
    }


def _tiers(ids: list[int]) -> dict[int, list[ProgramTier]]:
    """Each partner's tier in the active incentive programs it stands in, by
    program name."""
    query = (
        select(Standing.organisation_id, Program.name, Tier.name, Tier.position)
        .join(Program, Program.id == Standing.program_id)
        .outerjoin(Tier, Tier.id == Standing.tier_id)
        .where(
            Standing.organisation_id.in_(ids),
            Program.status == ProgramStatus.ACTIVE.value,
        )
        .order_by(Program.id)
    )
    tiers: dict[int, list[ProgramTier]] = defaultdict(list)
    for org, program, tier, position in db.session.execute(query):
        tiers[org].append(ProgramTier(program, tier or NO_TIER, position))
    for standings in tiers.values():
        standings.sort(key=lambda standing: standing.program.casefold())
    return tiers


NO_TIER = "No tier yet"


def _partner_rows(data: _Data) -> list[PartnerRow]:
    ids = _partner_ids(data)
    names, training, tiers = _partner_names(ids), _training(ids), _tiers(ids)
    owned: dict[int, list[_Territory]] = defaultdict(list)
    for territory in data.territories:
        if territory.partner_id is not None:
            owned[territory.partner_id].append(territory)
    credited: dict[int, list[_Revenue]] = defaultdict(list)
    for revenue in data.revenue:
        credited[revenue.organisation_id].append(revenue)

    rows = []
    for partner_id in ids:
        mine, own = owned.get(partner_id, []), credited.get(partner_id, [])
        program_tiers = tiers.get(partner_id, [])
        rows.append(
            PartnerRow(
                id=partner_id,
                name=names.get(partner_id, ""),
                territories=[t.name for t in mine],
                figures=_partner_figures(mine, own, data.targets),
                accounts=sum(data.accounts.get(t.id, 0) for t in mine),
                potential=sum(
                    (data.potential.get(t.id, Decimal(0)) for t in mine), Decimal(0)
                ),
                training_completion=_share(training.get(partner_id)),
                tier=tier_words(program_tiers),
                last_activity=_latest(r.last_activity for r in own),
                program_tiers=program_tiers,
                owns_territory=bool(mine),
                training=training.get(partner_id),
            )
        )
    rows.sort(key=lambda row: row.name.casefold())
    return rows


def _partner_figures(
    mine: list[_Territory], own: list[_Revenue], targets: dict[int, Decimal]
) -> Figures:
    """A partner's revenue, and its target: that of the territories it owns now,
    set against its revenue in those of them that have a target."""
    targeted = {t.id for t in mine if t.id in targets}
    return Figures(
        revenue=sum((r.revenue for r in own), Decimal(0)),
        previous_revenue=sum((r.previous_revenue for r in own), Decimal(0)),
        target=_sum_targets(targets.get(t.id) for t in mine),
        revenue_with_target=sum(
            (r.revenue for r in own if r.territory_id in targeted), Decimal(0)
        ),
    )


def _share(training: TrainingCount | None) -> Decimal | None:
    return training.share if training else None


def partner_rows(regions: Sequence[Region], period: Period) -> list[PartnerRow]:
    """Partners owning a territory of the regions now, or credited revenue in one
    during the period or its comparison, with their figures for the period."""
    return _partner_rows(_data(regions, period))


# The overview ----------------------------------------------------------------


def gini(values: Sequence[Decimal]) -> Decimal | None:
    """The Gini coefficient: 0 when all are equal, near 1 when one holds all."""
    total = sum(values, Decimal(0))
    if not values or total <= 0:
        return None
    ordered = sorted(values)
    count = len(ordered)
    weighted = sum(
        ((2 * rank - count - 1) * value for rank, value in enumerate(ordered, 1)),
        Decimal(0),
    )
    return weighted / (count * total)


def _tier_distribution(partners: Sequence[PartnerRow]) -> list[tuple[str, str, int]]:
    """Partners per (program, tier): programs by name, tiers in ladder order
    (no tier yet first, below the lowest)."""
    counts: dict[ProgramTier, int] = defaultdict(int)
    for partner in partners:
        for standing in partner.program_tiers:
            counts[standing] += 1
    ordered = sorted(
        counts,
        key=lambda t: (
            t.program.casefold(),
            t.program,
            -1 if t.position is None else t.position,
            t.tier,
        ),
    )
    return [(t.program, t.tier, counts[t]) for t in ordered]


def _overall_training(partners: Sequence[PartnerRow]) -> Decimal | None:
    known = [p.training for p in partners if p.training is not None]
    return TrainingCount(
        sum(t.required for t in known), sum(t.completed for t in known)
    ).share


def build_overview(
    period: Period, territories: list[TerritoryRow], partners: list[PartnerRow]
) -> Overview:
    """The scope's totals from its rows (no query of its own).

    Attainment and variance set the target against the revenue of the
    territories that have one; the others are counted apart.
    """
    targeted = [t for t in territories if t.figures.target is not None]
    totals = Figures(
        revenue=sum((t.figures.revenue for t in territories), Decimal(0)),
        previous_revenue=sum(
            (t.figures.previous_revenue for t in territories), Decimal(0)
        ),
        target=_sum_targets(t.figures.target for t in territories),
        revenue_with_target=sum((t.figures.revenue for t in targeted), Decimal(0)),
    )
    owners = [p for p in partners if p.owns_territory]
    return Overview(
        period=period,
        comparison=period.previous_year(),
        totals=totals,
        partners=len(owners),
        accounts=sum(t.accounts for t in territories),
        territories=len(territories),
        training_completion=_overall_training(owners),
        tier_distribution=_tier_distribution(owners),
        gini=gini([p.potential for p in owners]),
        last_activity=_latest(t.last_activity for t in territories),
        territories_without_target=len(territories) - len(targeted),
    )


def overview(regions: Sequence[Region], period: Period) -> Overview:
    """The regions' figures for the period, against the same period last year."""
    return scope_figures(regions, period)[0]


def scope_figures(
    regions: Sequence[Region], period: Period
) -> tuple[Overview, list[TerritoryRow], list[PartnerRow]]:
    """The overview and both tables, from one set of queries."""
    data = _data(regions, period)
    territories, partners = _territory_rows(data), _partner_rows(data)
    return build_overview(period, territories, partners), territories, partners


# Months, and the lines behind a figure ----------------------------------------


def _owned_now(regions: Sequence[Region], partner_id: int) -> Any:
    return _scope_ids(regions).where(Territory.partner_id == partner_id)


def _event_filters(
    events: Subquery,
    regions: Sequence[Region],
    territory_id: int | None,
    partner_id: int | None,
) -> list[Any]:
    filters: list[Any] = [events.c.territory_id.in_(_scope_ids(regions))]
    if territory_id is not None:
        filters.append(events.c.territory_id == territory_id)
    if partner_id is not None:
        filters.append(events.c.organisation_id == partner_id)
    return filters


def _monthly_revenue(
    regions: Sequence[Region],
    period: Period,
    territory_id: int | None,
    partner_id: int | None,
) -> dict[str, dict[int, Decimal]]:
    """Revenue per month (as text, ``2018-07``), then per territory."""
    events = revenue_events()
    month = _month_of(events.c.day)
    query = (
        select(
            month,
            events.c.territory_id,
            type_coerce(func.sum(events.c.amount), Numeric(18, 4)),
        )
        .where(
            *_event_filters(events, regions, territory_id, partner_id),
            events.c.day.between(_day(period.starts_on), _day(period.ends_on)),
        )
        .group_by(month, events.c.territory_id)
    )
    revenue: dict[str, dict[int, Decimal]] = defaultdict(dict)
    for key, tid, amount in db.session.execute(query):
        revenue[key][tid] = amount
    return revenue


def _monthly_targets(
    regions: Sequence[Region],
    period: Period,
    territory_id: int | None,
    partner_id: int | None,
) -> dict[date, dict[int, Decimal]]:
    """Target per month, then per territory, unrounded."""
    contribution, conditions = _target_contribution(period)
    query = (
        select(TargetMonth.month, TerritoryTarget.territory_id, func.sum(contribution))
        .join(TerritoryTarget, TerritoryTarget.id == TargetMonth.target_id)
        .where(TerritoryTarget.territory_id.in_(_scope_ids(regions)), *conditions)
        .group_by(TargetMonth.month, TerritoryTarget.territory_id)
    )
    if territory_id is not None:
        query = query.where(TerritoryTarget.territory_id == territory_id)
    if partner_id is not None:
        query = query.where(
            TerritoryTarget.territory_id.in_(_owned_now(regions, partner_id))
        )
    targets: dict[date, dict[int, Decimal]] = defaultdict(dict)
    for month, tid, amount in db.session.execute(query):
        targets[month][tid] = Decimal(str(amount))
    return targets


def _month_point(
    month: date, revenue: dict[int, Decimal], targets: dict[int, Decimal]
) -> MonthPoint:
    """A month from its revenue and targets per territory."""
    return MonthPoint(
        month=month,
        revenue=sum(revenue.values(), Decimal(0)),
        target=_cents(sum(targets.values(), Decimal(0))) if targets else None,
        revenue_with_target=sum(
            (amount for tid, amount in revenue.items() if tid in targets), Decimal(0)
        ),
    )


def monthly(
    regions: Sequence[Region],
    period: Period,
    territory_id: int | None = None,
    partner_id: int | None = None,
) -> list[MonthPoint]:
    """Revenue and target of every month the period touches (only the days of
    the month inside the period count), for the scope, a territory or a partner.

    A partner's target is that of the territories it owns now. Each month's
    target is set against the revenue of the territories with a target in it.
    """
    revenue = _monthly_revenue(regions, period, territory_id, partner_id)
    targets = _monthly_targets(regions, period, territory_id, partner_id)
    return [
        _month_point(
            month, revenue.get(month.strftime("%Y-%m"), {}), targets.get(month, {})
        )
        for month in period.months()
    ]


@dataclass
class SaleLine:
    id: int
    day: date
    account_id: int
    account_name: str
    order_ref: str | None
    category: str | None
    amount: Decimal
    territory_id: int
    territory_name: str
    partner_id: int
    partner_name: str


@dataclass
class ClaimLine:
    id: int
    day: date
    customer_name: str
    invoice_number: str
    category: str | None
    amount: Decimal
    territory_id: int
    territory_name: str
    partner_id: int
    partner_name: str


def _page(query: Any, page: int, per_page: int) -> tuple[int, list[Any]]:
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.session.execute(query.limit(per_page).offset((page - 1) * per_page))
    return total or 0, list(rows)


def sales_behind(
    regions: Sequence[Region],
    period: Period,
    territory_id: int | None = None,
    partner_id: int | None = None,
    page: int = 1,
    per_page: int = 50,
) -> Page:
    """The credited sales lines behind the period's revenue, latest first."""
    sales = credited_sales()
    filters: list[Any] = [
        sales.c.territory_id.in_(_scope_ids(regions)),
        sales.c.order_date.between(_day(period.starts_on), _day(period.ends_on)),
    ]
    if territory_id is not None:
        filters.append(sales.c.territory_id == territory_id)
    if partner_id is not None:
        filters.append(sales.c.organisation_id == partner_id)
    query = (
        select(
            sales.c.sales_line_id,
            sales.c.order_date,
            Account.id,
            Account.name,
            SalesLine.order_ref,
            sales.c.category,
            sales.c.amount,
            Territory.id,
            Territory.name,
            PartnerOrganisation.id,
            PartnerOrganisation.name,
        )
        .join(SalesLine, SalesLine.id == sales.c.sales_line_id)
        .join(Account, Account.id == sales.c.account_id)
        .join(Territory, Territory.id == sales.c.territory_id)
        .join(PartnerOrganisation, PartnerOrganisation.id == sales.c.organisation_id)
        .where(*filters)
        .order_by(sales.c.order_date.desc(), sales.c.sales_line_id.desc())
    )
    total, rows = _page(query, page, per_page)
    return Page([SaleLine(*row) for row in rows], page, per_page, total)


def claims_behind(
    regions: Sequence[Region],
    period: Period,
    territory_id: int | None = None,
    partner_id: int | None = None,
    page: int = 1,
    per_page: int = 50,
) -> Page:
    """The approved claims behind the period's revenue, latest first."""
    filters: list[Any] = [
        Claim.status == ClaimStatus.APPROVED.value,
        Claim.territory_id.in_(_scope_ids(regions)),
        Claim.sale_date.between(_day(period.starts_on), _day(period.ends_on)),
    ]
    if territory_id is not None:
        filters.append(Claim.territory_id == territory_id)
    if partner_id is not None:
        filters.append(Claim.organisation_id == partner_id)
    query = (
        select(
            Claim.id,
            Claim.sale_date,
            Claim.customer_name,
            Claim.invoice_number,
            Claim.category,
            Claim.amount,
            Territory.id,
            Territory.name,
            PartnerOrganisation.id,
            PartnerOrganisation.name,
        )
        .join(Territory, Territory.id == Claim.territory_id)
        .join(PartnerOrganisation, PartnerOrganisation.id == Claim.organisation_id)
        .where(*filters)
        .order_by(Claim.sale_date.desc(), Claim.id.desc())
    )
    total, rows = _page(query, page, per_page)
    return Page([ClaimLine(*row) for row in rows], page, per_page, total)


def latest_revenue_day(regions: Sequence[Region]) -> date | None:
    """The day of the scope's latest sale or approved claim, if any."""
    events = revenue_events()
    day = db.session.scalar(
        select(type_coerce(func.max(events.c.day), Date())).where(
            events.c.territory_id.in_(_scope_ids(regions))
        )
    )
    return day


def partner_in_scope(regions: Sequence[Region], partner_id: int) -> bool:
    """Whether the partner owns a territory of the regions now, or was ever
    credited revenue in one."""
    events = revenue_events()
    owns = _owned_now(regions, partner_id).exists()
    credited = (
        select(events.c.ref)
        .where(
            events.c.organisation_id == partner_id,
            events.c.territory_id.in_(_scope_ids(regions)),
        )
        .exists()
    )
    return bool(db.session.scalar(select(or_(owns, credited))))
