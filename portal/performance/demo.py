"""The demo's targets: every territory, every quarter of the years with sales.

A quarter's target is the territory's revenue in the same quarter a year before
times the plan's ``target_growth``; in the first year of sales, that quarter's
own revenue. Amounts are rounded to whole currency units and spread over the
months by days. The demo plans from the accounts' states (each territory of the
plan is a list of states), so the targets are there as soon as the demo is
loaded, before the first assignment run has placed an account.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import extract, func, select

from portal.extensions import db
from portal.performance.models import TargetMonth, TerritoryTarget
from portal.performance.periods import Period, quarter_of
from portal.performance.targets import spread_by_days
from territory_rules.models import Account, SalesLine, Territory

logger = logging.getLogger(__name__)

QUARTERS = (1, 2, 3, 4)

# (territory name, year, quarter) -> revenue
Revenue = dict[tuple[str, int, int], Decimal]


def load_demo_targets(plan: dict[str, Any]) -> int:
    """Set the demo's quarterly targets; the number set."""
    growth = Decimal(str(plan.get("target_growth", 1)))
    revenue, years = _quarterly_revenue(_territory_of_state(plan))
    territories = db.session.scalars(select(Territory)).all()

    targets = [
        _target(
            territory,
            year,
            quarter,
            _planned(revenue, territory.name, year, quarter, growth, years),
        )
        for territory in territories
        if not territory.children
        for year in years
        for quarter in QUARTERS
    ]
    db.session.add_all(targets)
    db.session.flush()
    logger.info("Demo targets: %s quarters set, growth %s", len(targets), growth)
    return len(targets)


def _territory_of_state(plan: dict[str, Any]) -> dict[str, str]:
    return {
        state: spec["territory"]
        for specs in plan["regions"].values()
        for spec in specs
        for state in spec["states"]
    }


def _quarterly_revenue(territory_of: dict[str, str]) -> tuple[Revenue, list[int]]:
    """Sales per territory and quarter, summed in SQL per state and month."""
    year = extract("year", SalesLine.order_date)
    month = extract("month", SalesLine.order_date)
    rows = db.session.execute(
        select(Account.state, year, month, func.sum(SalesLine.amount))
        .join(Account, Account.id == SalesLine.account_id)
        .group_by(Account.state, year, month)
    ).all()

    revenue: Revenue = defaultdict(Decimal)
    years = set()
    for state, row_year, row_month, amount in rows:
        years.add(int(row_year))
        territory = territory_of.get(state or "")
        if territory is not None:
            quarter = (int(row_month) - 1) // 3 + 1
            revenue[(territory, int(row_year), quarter)] += Decimal(amount)
    return revenue, sorted(years)


def _planned(
    revenue: Revenue,
    name: str,
    year: int,
    quarter: int,
    growth: Decimal,
    years: list[int],
) -> Decimal:
    if year - 1 in years:
        base = revenue.get((name, year - 1, quarter), Decimal(0)) * growth
    else:
        base = revenue.get((name, year, quarter), Decimal(0))
    return base.quantize(Decimal(1), ROUND_HALF_UP)


def _target(
    territory: Territory, year: int, quarter: int, amount: Decimal
) -> TerritoryTarget:
    period: Period = quarter_of(date(year, (quarter - 1) * 3 + 1, 1))
    months = spread_by_days(period.starts_on, period.ends_on, amount)
    return TerritoryTarget(
        territory_id=territory.id,
        starts_on=period.starts_on,
        ends_on=period.ends_on,
        amount=amount,
        months=[
            TargetMonth(month=month, amount=value) for month, value in months.items()
        ],
    )
