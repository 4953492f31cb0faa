"""Which partner organisation a sale counts for.

A sale counts for the organisation that owns the territory its account is
assigned to. Programs measure their KPIs on this, and rewards price it.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.sql import Subquery

from territory_rules.models import (
    Assignment,
    AssignmentStatus,
    SalesLine,
    Territory,
)


def credited_sales() -> Subquery:
    """Sales lines with the organisation and territory they count for.

    Columns: ``sales_line_id``, ``account_id``, ``order_date``, ``amount``,
    ``category``, ``territory_id``, ``organisation_id``. Lines of accounts in
    no territory, or in a territory without an owner, are left out.
    """
    return (
        select(
            SalesLine.id.label("sales_line_id"),
            SalesLine.account_id,
            SalesLine.order_date,
            SalesLine.amount,
            SalesLine.category,
            Territory.id.label("territory_id"),
            Territory.partner_id.label("organisation_id"),
        )
        .join(Assignment, Assignment.account_id == SalesLine.account_id)
        .join(Territory, Territory.id == Assignment.territory_id)
        .where(
            Assignment.status == AssignmentStatus.ASSIGNED.value,
            Territory.partner_id.is_not(None),
        )
        .subquery("credited_sales")
    )
