"""What admins do with points once they are in the ledger: balances per
partner, early approval, manual adjustments and payout batches.

The ledger is append-only: an adjustment is a new entry, and approving or
paying only moves an entry's status (and sets its payout). Paying is one
conditional UPDATE, so two admins paying at once never pay an entry twice:
whichever statement comes second finds the entries already taken.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, exists, func, or_, select, update
from sqlalchemy.orm import Session, contains_eager, joinedload, scoped_session

from portal.extensions import db
from portal.models import PartnerOrganisation, User, utc_now
from programs.editing import EditRejected
from programs.models import Eligibility, Program, ProgramKind
from rewards.models import EntryStatus, LedgerEntry, LedgerSource, Payout
from rewards.plans import check_text, parse_number

logger = logging.getLogger(__name__)

CENT = Decimal("0.01")
# Well inside NUMERIC(16, 2).
MAX_ADJUSTMENT = Decimal(10) ** 12
REASON_MAX = 500
NOTE_MAX = 300

APPROVED = EntryStatus.APPROVED.value
PENDING = EntryStatus.PENDING.value
PAID = EntryStatus.PAID.value


# Balances --------------------------------------------------------------------


@dataclass(frozen=True)
class Balance:
    """One organisation's points by status."""

    organisation_id: int
    name: str
    pending: Decimal
    available: Decimal
    paid: Decimal
    # Approved, unpaid entries: what a payout of this organisation would take.
    available_entries: int


def balances(only_payable: bool = False) -> list[Balance]:
    """Every partner organisation's pending, available and paid points.

    One grouped query; ``only_payable`` keeps the organisations with approved
    entries not paid yet.
    """
    available = and_(LedgerEntry.status == APPROVED, LedgerEntry.payout_id.is_(None))
    query = (
        select(
            PartnerOrganisation.id,
            PartnerOrganisation.name,
            _sum_where(LedgerEntry.status == PENDING),
            _sum_where(available),
            _sum_where(LedgerEntry.payout_id.is_not(None)),
            func.count(case((available, LedgerEntry.id))),
        )
        .outerjoin(LedgerEntry, LedgerEntry.organisation_id == PartnerOrganisation.id)
        .group_by(PartnerOrganisation.id, PartnerOrganisation.name)
        .order_by(PartnerOrganisation.name)
    )
    if only_payable:
        query = query.having(func.count(case((available, LedgerEntry.id))) > 0)
    return [
        Balance(org_id, name, _cents(pending), _cents(ready), _cents(paid), entries)
        for org_id, name, pending, ready, paid, entries in db.session.execute(query)
    ]


def _sum_where(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, LedgerEntry.points))), 0)


def _cents(value: Any) -> Decimal:
    # SQLite adds NUMERIC as floating point; points are whole cents.
    return Decimal(str(value or 0)).quantize(CENT)


# Early approval --------------------------------------------------------------


def approve_pending(
    organisation: PartnerOrganisation, program: Program | None, user: User
) -> int:
    """Approve the organisation's pending entries now; how many were approved."""
    conditions = [
        LedgerEntry.organisation_id == organisation.id,
        LedgerEntry.status == PENDING,
    ]
    if program is not None:
        conditions.append(LedgerEntry.program_id == program.id)

    result = db.session.execute(
        update(LedgerEntry)
        .where(*conditions)
        .values(status=APPROVED, approved_at_utc=utc_now()),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()

    approved = _rowcount(result)
    logger.info(
        "%s approved %d pending entries of organisation %s%s early",
        user.email,
        approved,
        organisation.id,
        f" in program {program.id}" if program else "",
    )
    return approved


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


# Manual adjustments ----------------------------------------------------------


@dataclass(frozen=True)
class AdjustmentInput:
    """The adjustment form as typed; ids as text."""

    organisation_id: str = ""
    program_id: str = ""
    points: str = ""
    reason: str = ""


def add_adjustment(data: AdjustmentInput, user: User) -> LedgerEntry:
    """Write an approved entry of ``data.points`` (positive or negative).

    :raise EditRejected: with a message per field.
    """
    errors: dict[str, str] = {}
    organisation = _organisation(data.organisation_id, errors)
    program = _incentive_program(data.program_id, errors)
    points = _adjustment_points(data.points, errors)
    reason = check_text(
        data.reason,
        "reason",
        errors,
        missing="Say why the points are adjusted; partners see this reason.",
        limit=REASON_MAX,
        multiline=True,
    )
    if organisation is not None and program is not None:
        _check_takes_part(organisation, program, errors)
    if organisation is not None and points is not None and points < 0:
        _check_available(organisation, program, points, errors)
    if errors or organisation is None or points is None:
        raise EditRejected(errors)

    entry = _adjustment_entry(organisation, program, points, reason, user)
    db.session.add(entry)
    db.session.commit()

    logger.info(
        "%s adjusted organisation %s by %s points (entry %s)",
        user.email,
        organisation.id,
        points,
        entry.id,
    )
    return entry


def _adjustment_entry(
    organisation: PartnerOrganisation,
    program: Program | None,
    points: Decimal,
    reason: str,
    user: User,
) -> LedgerEntry:
    source_key = f"adjustment:{uuid.uuid4()}"
    now = utc_now()
    return LedgerEntry(
        key=f"{source_key}#1",
        source_key=source_key,
        organisation_id=organisation.id,
        program_id=program.id if program else None,
        source=LedgerSource.ADJUSTMENT.value,
        points=points,
        reason=reason,
        earned_on=now.date(),
        status=APPROVED,
        approved_at_utc=now,
        created_by_id=user.id,
        created_at_utc=now,
    )


def _check_takes_part(
    organisation: PartnerOrganisation, program: Program, errors: dict[str, str]
) -> None:
    """Points go into a program the organisation is in, or has points in."""
    takes_part = db.session.scalar(
        select(
            or_(
                exists().where(
                    Eligibility.program_id == program.id,
                    Eligibility.organisation_id == organisation.id,
                ),
                exists().where(
                    LedgerEntry.program_id == program.id,
                    LedgerEntry.organisation_id == organisation.id,
                ),
            )
        )
    )
    if not takes_part:
        errors["program_id"] = (
            f"{organisation.name} is not in {program.name} and has no points there; "
            f"choose a program it is in, or none."
        )


def _check_available(
    organisation: PartnerOrganisation,
    program: Program | None,
    points: Decimal,
    errors: dict[str, str],
) -> None:
    """A deduction takes at most the points not yet paid, pending or approved:
    an organisation's unpaid balance never goes below zero."""
    query = select(func.coalesce(func.sum(LedgerEntry.points), 0)).where(
        LedgerEntry.organisation_id == organisation.id,
        LedgerEntry.status != EntryStatus.PAID.value,
        LedgerEntry.payout_id.is_(None),
    )
    if program is not None:
        query = query.where(LedgerEntry.program_id == program.id)
    available = Decimal(str(db.session.scalar(query))).quantize(CENT)
    if -points > available:
        where = f" in {program.name}" if program is not None else ""
        errors["points"] = (
            f"{organisation.name} has {available:,} unpaid points{where}; a "
            f"deduction can take at most that many."
        )


def _organisation(raw: str, errors: dict[str, str]) -> PartnerOrganisation | None:
    organisation = _get(PartnerOrganisation, raw)
    if organisation is None:
        errors["organisation_id"] = "Choose the partner organisation to adjust."
    return organisation


def _incentive_program(raw: str, errors: dict[str, str]) -> Program | None:
    if not (raw or "").strip():
        return None
    program = _get(Program, raw)
    if program is None or program.kind != ProgramKind.INCENTIVE:
        errors["program_id"] = "Choose an incentive program, or none."
        return None
    return program


def _get(model: Any, raw: str) -> Any:
    record_id = _id(raw)
    return None if record_id is None else db.session.get(model, record_id)


def _id(raw: str | None) -> int | None:
    """A record id typed or posted as text; None unless a plausible one."""
    text = (raw or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    return int(text)


def _adjustment_points(raw: str, errors: dict[str, str]) -> Decimal | None:
    points = parse_number(
        raw,
        "points",
        errors,
        missing="Enter the points to add, or a negative number to take away.",
    )
    if points is None:
        return None
    if points == 0:
        errors["points"] = "Enter points other than zero, e.g. 250 or -250."
    elif abs(points) >= MAX_ADJUSTMENT:
        errors["points"] = f"Enter fewer than {MAX_ADJUSTMENT:,} points."
    elif points != points.quantize(CENT):
        errors["points"] = "Use at most 2 decimal places."
    else:
        return points
    return None


# Payouts ---------------------------------------------------------------------


def create_payout(organisation_ids: Sequence[str], note: str, user: User) -> Payout:
    """Pay every approved, unpaid entry of the organisations, in one transaction.

    The batch's entries and points are those of the rows this call marked paid,
    never those it read before: another payout may have taken some meanwhile.

    :raise EditRejected: nothing chosen, nothing left to pay, or a balance
        below zero (paying it would take points back).
    """
    errors: dict[str, str] = {}
    organisations = _payable_organisations(organisation_ids, errors)
    text = check_text(note, "note", errors, missing=None, limit=NOTE_MAX)
    if errors:
        raise EditRejected(errors)

    payout = Payout(note=text or None, created_by_id=user.id)
    db.session.add(payout)
    db.session.flush()
    pay_entries(db.session, payout.id, [org.id for org in organisations])
    _total_or_refuse(payout)
    db.session.commit()

    logger.info(
        "%s created payout %s: %d entries, %s points, organisations %s",
        user.email,
        payout.id,
        payout.entries,
        payout.points,
        ", ".join(str(org.id) for org in organisations),
    )
    return payout


def pay_entries(
    session: Session | scoped_session[Any], payout_id: int, organisation_ids: list[int]
) -> int:
    """Mark the organisations' approved, unpaid entries paid by ``payout_id``.

    Conditional on each entry still being approved and without a payout, so of
    two payouts racing for one entry only the first takes it; the second's
    statement, waiting on or rechecking the row, finds nothing. Returns how
    many entries this statement marked.
    """
    result = session.execute(
        update(LedgerEntry)
        .where(
            LedgerEntry.organisation_id.in_(organisation_ids),
            LedgerEntry.status == APPROVED,
            LedgerEntry.payout_id.is_(None),
        )
        .values(status=PAID, payout_id=payout_id),
        execution_options={"synchronize_session": False},
    )
    return _rowcount(result)


def _total_or_refuse(payout: Payout) -> None:
    """Set the batch's totals from its entries; refuse an empty or negative one."""
    lines = payout_lines(payout.id)
    negative = [line for line in lines if line.points < 0]
    if not lines:
        db.session.rollback()
        raise EditRejected(
            {
                "organisations": "The chosen organisations have no approved points "
                "waiting to be paid, so no payout was made."
            }
        )
    if negative:
        db.session.rollback()
        names = ", ".join(line.name for line in negative)
        raise EditRejected(
            {
                "organisations": f"Leave out {names}: their available balance is "
                "below zero, so there is nothing to pay them."
            }
        )
    payout.entries = sum(line.entries for line in lines)
    payout.points = sum((line.points for line in lines), Decimal(0))


def _payable_organisations(
    raw_ids: Sequence[str], errors: dict[str, str]
) -> list[PartnerOrganisation]:
    if not raw_ids:
        errors["organisations"] = "Choose at least one organisation to pay."
        return []
    ids = {_id(raw) for raw in raw_ids}
    organisations = list(
        db.session.scalars(
            select(PartnerOrganisation).where(
                PartnerOrganisation.id.in_([i for i in ids if i is not None])
            )
        )
    )
    if None in ids or len(organisations) != len(ids):
        errors["organisations"] = (
            "Choose organisations from the list; one of them no longer exists."
        )
    return organisations


@dataclass(frozen=True)
class PayoutLine:
    """One organisation's part of a payout."""

    organisation_id: int
    name: str
    entries: int
    points: Decimal


def payout_lines(payout_id: int) -> list[PayoutLine]:
    """The payout's entries and points per organisation, by name."""
    rows = db.session.execute(
        select(
            PartnerOrganisation.id,
            PartnerOrganisation.name,
            func.count(LedgerEntry.id),
            func.coalesce(func.sum(LedgerEntry.points), 0),
        )
        .join(LedgerEntry, LedgerEntry.organisation_id == PartnerOrganisation.id)
        .where(LedgerEntry.payout_id == payout_id)
        .group_by(PartnerOrganisation.id, PartnerOrganisation.name)
        .order_by(PartnerOrganisation.name)
    )
    return [
        PayoutLine(org_id, name, entries, _cents(points))
        for org_id, name, entries, points in rows
    ]


def payout_entries_query(payout_id: int) -> Any:
    """The payout's entries, by organisation, date earned and id."""
    return (
        select(LedgerEntry)
        .join(LedgerEntry.organisation)
        .options(
            contains_eager(LedgerEntry.organisation), joinedload(LedgerEntry.program)
        )
        .where(LedgerEntry.payout_id == payout_id)
        .order_by(PartnerOrganisation.name, LedgerEntry.earned_on, LedgerEntry.id)
    )


EXPORT_HEADER = (
    "payout",
    "paid_at_utc",
    "organisation",
    "program",
    "source",
    "entry",
    "earned_on",
    "points",
    "reason",
)


def export_rows(payout: Payout) -> Iterator[tuple[Any, ...]]:
    """Every entry of the payout as a CSV row, in :data:`EXPORT_HEADER` order."""
    query = (
        select(
            PartnerOrganisation.name,
            Program.name,
            LedgerEntry.source,
            LedgerEntry.key,
            LedgerEntry.earned_on,
            LedgerEntry.points,
            LedgerEntry.reason,
        )
        .join(
            PartnerOrganisation, LedgerEntry.organisation_id == PartnerOrganisation.id
        )
        .outerjoin(Program, LedgerEntry.program_id == Program.id)
        .where(LedgerEntry.payout_id == payout.id)
        .order_by(PartnerOrganisation.name, LedgerEntry.earned_on, LedgerEntry.id)
        .execution_options(yield_per=1000)
    )
    paid_at = payout.created_at_utc.strftime("%Y-%m-%d %H:%M:%S")
    for name, program, source, key, earned_on, points, reason in db.session.execute(
        query
    ):
        yield (
            payout.id,
            paid_at,
            name,
            program or "",
            source,
            key,
            earned_on,
            _cents(points),
            reason or "",
        )
