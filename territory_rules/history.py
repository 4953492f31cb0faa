"""Where each account was placed over time, kept by the assignment runs.

Sales credit reads this history (with territory ownership's), so an account
moving to another territory moves only the sales made from that day on.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    exists,
    insert,
    literal,
    select,
    update,
)

from portal.extensions import db
from territory_rules.models import (
    AccountPlacement,
    Assignment,
    AssignmentStatus,
    table_of,
)

PLACEMENTS = table_of(AccountPlacement)


def placed_territory() -> ColumnElement[int | None]:
    """An assignment's territory, or nothing when the account is not assigned."""
    return case(
        (Assignment.status == AssignmentStatus.ASSIGNED.value, Assignment.territory_id),
        else_=None,
    )


def record_placements(run_id: int, day: date | None = None) -> None:
    """Close the placements the run changed and open the new ones, from ``day``.

    An account's first placement on record holds since always. Accounts that
    were never assigned get no row until they are.
    """
    day = day or datetime.now(UTC).date()
    moved = exists().where(
        Assignment.account_id == AccountPlacement.account_id,
        placed_territory().is_distinct_from(AccountPlacement.territory_id),
    )
    db.session.execute(
        update(AccountPlacement)
        .where(AccountPlacement.valid_to.is_(None), moved)
        .values(valid_to=day)
        .execution_options(synchronize_session=False)
    )

    history = select(AccountPlacement.id).where(
        AccountPlacement.account_id == Assignment.account_id
    )
    still_open = history.where(AccountPlacement.valid_to.is_(None))
    has_history = exists(history)
    db.session.execute(
        insert(PLACEMENTS).from_select(
            ["account_id", "territory_id", "valid_from", "run_id"],
            select(
                Assignment.account_id,
                placed_territory(),
                case((has_history, literal(day)), else_=None),
                literal(run_id),
            ).where(
                ~exists(still_open),
                and_(placed_territory().is_not(None)) | has_history,
            ),
        )
    )
