"""The managers' tables as CSV files, every cell safe to open in a spreadsheet."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask import Response

from portal.performance import figures
from portal.performance.periods import Period
from rewards.csv_safe import csv_lines

# The most lines one export of sales or claims holds.
MAX_LINES = 100_000

CENT = Decimal("0.01")
RATIO = Decimal("0.0001")

# Attainment and variance set the target against ``revenue_with_target``: the
# revenue of the territories that have a target in the period.
FIGURE_COLUMNS = [
    "revenue",
    "revenue_last_year",
    "growth",
    "target",
    "revenue_with_target",
    "attainment",
    "variance",
]


def _cents(amount: Decimal | None) -> Decimal | None:
    return None if amount is None else amount.quantize(CENT, ROUND_HALF_UP)


def _ratio(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(RATIO, ROUND_HALF_UP)


def _amount(value: Decimal) -> Decimal:
    """An amount as stored, without zeros past the cents: 3.024, 12.50."""
    cents = value.quantize(CENT, ROUND_HALF_UP)
    return cents if cents == value else value.normalize()


def _figures(result: figures.Figures) -> list[Any]:
    return [
        _cents(result.revenue),
        _cents(result.previous_revenue),
        _ratio(result.growth),
        _cents(result.target),
        _cents(result.revenue_against_target) if result.target is not None else None,
        _ratio(result.attainment),
        _cents(result.variance),
    ]


def _flags(flags: Sequence[Any]) -> str:
    return " | ".join(flag.reason for flag in flags)


def territory_csv(rows: Iterable[figures.TerritoryRow]) -> Iterator[str]:
    header = [
        "territory",
        "region",
        "partner",
        *FIGURE_COLUMNS,
        "accounts",
        "potential",
        "last_activity",
        "flags",
    ]
    return csv_lines(
        header,
        (
            [
                row.name,
                row.region_name,
                row.partner_name,
                *_figures(row.figures),
                row.accounts,
                _cents(row.potential),
                row.last_activity,
                _flags(row.flags),
            ]
            for row in rows
        ),
    )


def partner_csv(rows: Iterable[figures.PartnerRow]) -> Iterator[str]:
    header = [
        "partner",
        "territories",
        *FIGURE_COLUMNS,
        "accounts",
        "potential",
        "training_completion",
        "tier",
        "last_activity",
        "flags",
    ]
    return csv_lines(
        header,
        (
            [
                row.name,
                ", ".join(row.territories),
                *_figures(row.figures),
                row.accounts,
                _cents(row.potential),
                _ratio(row.training_completion),
                row.tier,
                row.last_activity,
                _flags(row.flags),
            ]
            for row in rows
        ),
    )


def sales_csv(lines: Iterable[figures.SaleLine]) -> Iterator[str]:
    header = ["date", "account", "order", "category", "amount", "territory", "partner"]
    return csv_lines(
        header,
        (
            [
                line.day,
                line.account_name,
                line.order_ref,
                line.category,
                _amount(line.amount),
                line.territory_name,
                line.partner_name,
            ]
            for line in lines
        ),
    )


def claims_csv(lines: Iterable[figures.ClaimLine]) -> Iterator[str]:
    header = [
        "date",
        "customer",
        "invoice",
        "category",
        "amount",
        "territory",
        "partner",
    ]
    return csv_lines(
        header,
        (
            [
                line.day,
                line.customer_name,
                line.invoice_number,
                line.category,
                _amount(line.amount),
                line.territory_name,
                line.partner_name,
            ]
            for line in lines
        ),
    )


def file_name(region: str, table: str, period: Period) -> str:
    """``west-territories-2018-07-01-to-2018-09-30.csv``: plain letters only."""
    slug = re.sub(r"[^a-z0-9]+", "-", region.casefold()).strip("-") or "region"
    return f"{slug}-{table}-{period.starts_on}-to-{period.ends_on}.csv"


def csv_response(lines: Iterator[str], name: str) -> Response:
    return Response(
        "".join(lines),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
