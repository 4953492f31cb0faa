"""Which partner organisation a sale counts for.

A sale counts for the organisation that owned, on the sale date, the territory
the sale's account was placed in on that date. Both histories are kept
(:class:`AccountPlacement`, written by assignment runs, and
:class:`TerritoryOwnership`, written whenever a territory's owner is saved), so
a realignment moves only the sales made from its day on. Programs measure their
KPIs on this, and rewards price it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.sql import Subquery

from territory_rules.models import (
    AccountPlacement,
    SalesLine,
    TerritoryOwnership,
)


def held_on(valid_from: Any, valid_to: Any, day: Any) -> ColumnElement[bool]:
    """``day`` lies in [valid_from, valid_to); an empty end is open."""
    return and_(
        or_(valid_from.is_(None), valid_from <= day),
        or_(valid_to.is_(None), day < valid_to),
    )


def credited_sales() -> Subquery:
    """Sales lines with the organisation and territory they count for.

    Columns: ``sales_line_id``, ``account_id``, ``order_date``, ``amount``,
    ``category``, ``territory_id``, ``organisation_id``. Lines of accounts in
    no territory on their date, or in a territory without an owner then, are
    left out.
    """
    placement, ownership = AccountPlacement, TerritoryOwnership
    return (
        select(
            SalesLine.id.label("sales_line_id"),
            SalesLine.account_id,
            SalesLine.order_date,
            SalesLine.amount,
            SalesLine.category,
            placement.territory_id,
            ownership.partner_id.label("organisation_id"),
        )
        .join(
            placement,
            and_(
                placement.account_id == SalesLine.account_id,
                held_on(placement.valid_from, placement.valid_to, SalesLine.order_date),
            ),
        )
        .join(
            ownership,
            and_(
                ownership.territory_id == placement.territory_id,
                held_on(ownership.valid_from, ownership.valid_to, SalesLine.order_date),
            ),
        )
        .where(ownership.partner_id.is_not(None))
        .subquery("credited_sales")
    )


def owner_on(territory_id: int, day: date) -> Any:
    """The query for the organisation owning ``territory_id`` on ``day``."""
    ownership = TerritoryOwnership
    return select(ownership.partner_id).where(
        ownership.territory_id == territory_id,
        held_on(ownership.valid_from, ownership.valid_to, day),
    )
