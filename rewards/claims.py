"""Sales claims: a partner reports a sale itself, an admin reviews it.

A claim is located by its postal code (:mod:`territory_rules.locate`) and
judged by who owned that territory on the sale date (the ownership history of
:mod:`territory_rules.credit`): the claimant's own territory makes it a
submitted claim, waiting for review; anything else flags it, with a note that
says where the code lies and who owned it then. Flagged claims are never
credited: an admin rechecks them (after territories change) or rejects them.

Reviews are race-safe: each decision is one conditional UPDATE on the claim's
status, so of two admins deciding at once, one wins and the other is told.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.datastructures import FileStorage

from portal import uploads
from portal.extensions import db
from portal.models import PartnerOrganisation, User, utc_now
from rewards import jobs
from rewards.models import Claim, ClaimStatus
from territory_rules.credit import owner_on
from territory_rules.imports import EARLIEST_SALE, latest_sale_day
from territory_rules.locate import territory_for_postal_code
from territory_rules.models import Territory

logger = logging.getLogger(__name__)

CLAIM_FILES = uploads.UploadPolicy(
    folder="claim_files",
    limit_bytes=5 * 1024 * 1024,
    extensions=frozenset({"pdf", "png", "jpg", "jpeg"}),
    allowed="a PDF, PNG or JPEG image of the invoice",
)
# Claim.amount is NUMERIC(16, 4): twelve digits before the point.
AMOUNT_LIMIT = Decimal(10) ** 12
NOTE_MAX = 300
REASON_MAX = 2000
CUSTOMER_MAX, POSTAL_CODE_MAX, INVOICE_MAX, CATEGORY_MAX = 200, 20, 120, 120
# Claims an admin still has to decide, in the order the review list shows them.
TO_REVIEW = (ClaimStatus.SUBMITTED.value, ClaimStatus.FLAGGED.value)

_AMOUNT = re.compile(r"\d+(\.\d+)?")
_POSTAL_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 -]*")


class ClaimRejected(ValueError):
    """A claim that cannot be taken; ``errors`` maps each field to what to fix."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__(" ".join(self.errors.values()))


class ReviewRefused(ValueError):
    """A review that cannot be made; the message says why.

    ``field`` names the form field at fault, when there is one.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class _FieldError(ValueError):
    pass


def long_date(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


# Submitting ----------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimFields:
    customer_name: str
    postal_code: str
    amount: Decimal
    sale_date: date
    invoice_number: str
    category: str | None


def submit_claim(
    user: User, data: Mapping[str, Any], upload: FileStorage | None
) -> Claim:
    """Check and record a claim for the user's organisation, located and judged.

    ``data`` holds the form's texts: customer_name, postal_code, amount,
    sale_date (YYYY-MM-DD), invoice_number and, optionally, category. An upload
    without a file name counts as no file.

    :raise ClaimRejected: naming every field to fix. Nothing is kept then.
    """
    if user.organisation_id is None:
        raise ClaimRejected({"form": "Only people of a partner can claim sales."})

    errors: dict[str, str] = {}
    values = read_claim_fields(data, errors)
    if "invoice_number" in values:
        duplicate = duplicate_note(user.organisation_id, values["invoice_number"])
        if duplicate:
            errors["invoice_number"] = duplicate
    accepted = _accepted_file(upload, errors)
    if errors:
        raise ClaimRejected(errors)

    claim = _new_claim(user, ClaimFields(**values), accepted)
    judge(claim)
    _save_new(claim, accepted)

    logger.info(
        "%s claimed invoice %r as claim %s (%s)",
        user.email,
        claim.invoice_number,
        claim.id,
        claim.status,
    )
    return claim


def read_claim_fields(
    data: Mapping[str, Any], errors: dict[str, str]
) -> dict[str, Any]:
    """The fields that are right, typed, by name; a message per bad field goes
    into ``errors``."""
    readers = {
        "customer_name": _customer_name,
        "postal_code": _postal_code,
        "amount": _amount,
        "sale_date": _sale_date,
        "invoice_number": _invoice_number,
        "category": _category,
    }
    values: dict[str, Any] = {}
    for name, read in readers.items():
        raw = data.get(name)
        try:
            values[name] = read(raw.strip() if isinstance(raw, str) else "")
        except _FieldError as error:
            errors[name] = str(error)
    return values


def _plain_text(raw: str, label: str, limit: int) -> str:
    if len(raw) > limit:
        raise _FieldError(f"Shorten the {label} to at most {limit} characters.")
    if any(unicodedata.category(c) == "Cc" for c in raw):
        raise _FieldError(f"Remove the control characters from the {label}.")
    return raw


def _customer_name(raw: str) -> str:
    if not raw:
        raise _FieldError("Enter the customer's name.")
    return _plain_text(raw, "customer's name", CUSTOMER_MAX)


def _postal_code(raw: str) -> str:
    if not raw:
        raise _FieldError("Enter the postal code the sale was delivered to.")
    code = _plain_text(raw, "postal code", POSTAL_CODE_MAX)
    if not _POSTAL_CODE.fullmatch(code):
        raise _FieldError(
            "Write the postal code with letters, digits, spaces and hyphens only, "
            "e.g. 02139."
        )
    # Written as typed otherwise: 02139 keeps its zero, 2139 is not padded.
    return code.upper()


def _amount(raw: str) -> Decimal:
    if not raw:
        raise _FieldError("Enter the sale's amount, e.g. 1250.50.")
    if "," in raw or " " in raw or "'" in raw or "_" in raw:
        raise _FieldError(
            f"Write the amount {raw} without thousands separators or decimal "
            "commas, with a point before the cents, e.g. 1250.50."
        )
    if raw.startswith("-"):
        raise _FieldError("The amount must be greater than zero.")
    if not _AMOUNT.fullmatch(raw):
        raise _FieldError(
            f"“{raw}” is not a plain number; write the amount with digits and at "
            "most one point, without a currency sign, e.g. 1250.50."
        )
    return _checked_amount(raw)


def _checked_amount(raw: str) -> Decimal:
    decimals = raw.partition(".")[2]
    if len(decimals) > 2:
        raise _FieldError(
            f"Give the amount with at most 2 decimals (cents), not {len(decimals)}, "
            "e.g. 1250.50."
        )
    amount = Decimal(raw)
    if amount <= 0:
        raise _FieldError("The amount must be greater than zero.")
    if amount >= AMOUNT_LIMIT:
        raise _FieldError(
            "The amount is too large to be a sale; check the number of digits."
        )
    return amount


def _sale_date(raw: str) -> date:
    if not raw:
        raise _FieldError("Enter the sale date, e.g. 2019-03-03.")
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise _FieldError(
            f"“{raw}” is not a date; enter the sale date as year-month-day, "
            "e.g. 2019-03-03."
        ) from None
    if day > latest_sale_day():
        raise _FieldError(
            f"{long_date(day)} is in the future; enter the day the sale was made."
        )
    if day < EARLIEST_SALE:
        raise _FieldError(
            f"Sales before {long_date(EARLIEST_SALE)} cannot be claimed; check "
            "the year."
        )
    return day


def _invoice_number(raw: str) -> str:
    if not raw:
        raise _FieldError("Enter the invoice number.")
    return _plain_text(raw, "invoice number", INVOICE_MAX)


def _category(raw: str) -> str | None:
    return _plain_text(raw, "category", CATEGORY_MAX) or None


def duplicate_note(organisation_id: int, invoice_number: str) -> str | None:
    """Why the invoice cannot be claimed again, if the organisation claimed it."""
    earlier = db.session.scalar(
        select(Claim).where(
            Claim.organisation_id == organisation_id,
            Claim.invoice_number == invoice_number,
        )
    )
    if earlier is None:
        return None
    return (
        f"Invoice {invoice_number} was already claimed on "
        f"{long_date(earlier.created_at_utc.date())} (claim {earlier.id}, a sale "
        f"of {long_date(earlier.sale_date)}); each invoice can be claimed once."
    )


def _accepted_file(
    upload: FileStorage | None, errors: dict[str, str]
) -> uploads.AcceptedFile | None:
    if upload is None or not upload.filename:
        return None
    try:
        return uploads.accept_upload(upload, CLAIM_FILES)
    except uploads.UploadError as error:
        errors["file"] = str(error)
        return None


def _new_claim(
    user: User, fields: ClaimFields, accepted: uploads.AcceptedFile | None
) -> Claim:
    return Claim(
        organisation_id=user.organisation_id,
        submitted_by_id=user.id,
        customer_name=fields.customer_name,
        postal_code=fields.postal_code,
        amount=fields.amount,
        sale_date=fields.sale_date,
        invoice_number=fields.invoice_number,
        category=fields.category,
        file_name=accepted.original_name if accepted else None,
    )


def _save_new(claim: Claim, accepted: uploads.AcceptedFile | None) -> None:
    """Keep the file, then the claim; a claim that cannot be saved keeps no file."""
    if accepted is not None:
        claim.file_stored_as = uploads.keep_file(accepted, CLAIM_FILES)
    db.session.add(claim)
    try:
        db.session.commit()
    except IntegrityError:
        # The same invoice was claimed a moment ago in another request.
        db.session.rollback()
        uploads.remove_stored(CLAIM_FILES, claim.file_stored_as)
        duplicate = duplicate_note(claim.organisation_id, claim.invoice_number)
        if duplicate is None:
            raise
        raise ClaimRejected({"invoice_number": duplicate}) from None
    except BaseException:
        db.session.rollback()
        uploads.remove_stored(CLAIM_FILES, claim.file_stored_as)
        raise


# Locating ------------------------------------------------------------------------


@dataclass(frozen=True)
class Judgement:
    status: str
    territory_id: int | None
    location_note: str


def judge(claim: Claim) -> None:
    """Set the claim's territory, status and location note from where its
    postal code lies and who owned that territory on the sale date."""
    judgement = judgement_for(claim)
    claim.status = judgement.status
    claim.territory_id = judgement.territory_id
    claim.location_note = judgement.location_note


def judgement_for(claim: Claim) -> Judgement:
    territory, evidence = territory_for_postal_code(claim.postal_code)
    if territory is None:
        note = f"{claim.postal_code} lies in no territory. {evidence}"
        return Judgement(ClaimStatus.FLAGGED.value, None, _clip(note))

    owner = _owner_on(territory, claim.sale_date)
    owned = owner is not None and owner.id == claim.organisation_id
    status = ClaimStatus.SUBMITTED if owned else ClaimStatus.FLAGGED
    when = long_date(claim.sale_date)
    whose = f"owned by {owner.name}" if owner else "which had no owner"
    note = f"{claim.postal_code} lies in {territory.name}, {whose} on {when}."
    return Judgement(status.value, territory.id, _clip(f"{note} {evidence}"))


def _owner_on(territory: Territory, day: date) -> PartnerOrganisation | None:
    owner_id = db.session.scalar(owner_on(territory.id, day).limit(1))
    return db.session.get(PartnerOrganisation, owner_id) if owner_id else None


def _clip(note: str) -> str:
    return note if len(note) <= NOTE_MAX else note[: NOTE_MAX - 1].rstrip() + "…"


# Reviewing -----------------------------------------------------------------------


def approve_claim(claim: Claim, admin: User) -> Claim:
    """Approve a submitted claim, so that it earns points; a rewards run follows.

    :raise ReviewRefused: for a flagged claim or one already decided.
    """
    _move(
        claim,
        (ClaimStatus.SUBMITTED.value,),
        "approved",
        status=ClaimStatus.APPROVED.value,
        reviewed_by_id=admin.id,
        reviewed_at_utc=utc_now(),
    )
    logger.info("%s approved claim %s", admin.email, claim.id)

    jobs.after_new_sales(admin)
    return claim


def approved_claim_sales() -> Select[Any, Any, Any]:
    """Approved claims as sales of their organisation, for the sales KPIs of
    tiers: ``organisation_id``, ``order_date``, ``amount``."""
    return select(
        Claim.organisation_id,
        Claim.sale_date.label("order_date"),
        Claim.amount,
    ).where(Claim.status == ClaimStatus.APPROVED.value)


def reject_claim(claim: Claim, admin: User, reason: str) -> Claim:
    """Reject a submitted or flagged claim with a reason the partner reads.

    :raise ReviewRefused: without a reason, or for a claim already decided.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ReviewRefused(
            "Write why the claim is rejected; the partner reads it.", "reason"
        )
    if len(reason) > REASON_MAX:
        raise ReviewRefused(
            f"Shorten the reason to at most {REASON_MAX} characters.", "reason"
        )

    _move(
        claim,
        TO_REVIEW,
        "rejected",
        status=ClaimStatus.REJECTED.value,
        review_reason=reason,
        reviewed_by_id=admin.id,
        reviewed_at_utc=utc_now(),
    )
    logger.info("%s rejected claim %s", admin.email, claim.id)

    jobs.request_rewards_run(admin)
    return claim


def recheck_claim(claim: Claim, admin: User) -> Claim:
    """Locate and judge a claim waiting for review again, e.g. after the
    territories changed; it may move between submitted and flagged.

    :raise ReviewRefused: for a claim already decided.
    """
    if claim.status not in TO_REVIEW:
        raise ReviewRefused(_decided(claim, "checked again"))

    judgement = judgement_for(claim)
    _move(
        claim,
        TO_REVIEW,
        "checked again",
        status=judgement.status,
        territory_id=judgement.territory_id,
        location_note=judgement.location_note,
    )

    logger.info("%s rechecked claim %s: %s", admin.email, claim.id, judgement.status)
    return claim


def _move(claim: Claim, allowed: Collection[str], action: str, **values: Any) -> None:
    """Write ``values`` if the claim's status in the database is still one of
    ``allowed``; otherwise say what happened to it meanwhile.

    :raise ReviewRefused: when the claim cannot be ``action`` (another review
        came first, or it is flagged and cannot be approved).
    """
    result = db.session.execute(
        update(Claim)
        .where(Claim.id == claim.id, Claim.status.in_(list(allowed)))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    moved = getattr(result, "rowcount", 0) == 1
    db.session.commit()

    # The update went past the session: read the claim as it now stands.
    db.session.refresh(claim)
    if not moved:
        raise ReviewRefused(_refusal(claim, action))


def _refusal(claim: Claim, action: str) -> str:
    if claim.status == ClaimStatus.FLAGGED:
        where = claim.location_note or "Its postal code lies outside its territory."
        return (
            f"Claim {claim.id} is flagged, so it cannot be {action}: {where} "
            "Flagged claims are never credited; check it again once the "
            "territories are right, or reject it."
        )
    return _decided(claim, action)


def _decided(claim: Claim, action: str) -> str:
    """Why a claim someone already decided cannot be ``action`` now."""
    by = claim.reviewed_by.display_name if claim.reviewed_by else "an admin"
    when = (
        f" on {long_date(claim.reviewed_at_utc.date())}"
        if claim.reviewed_at_utc
        else ""
    )
    return (
        f"Claim {claim.id} was already {claim.status} by {by}{when}, so it "
        f"cannot be {action} now."
    )


# Reading ---------------------------------------------------------------------------


def organisation_claims(organisation_id: int) -> Select[Any]:
    """The organisation's claims, newest first."""
    return (
        select(Claim)
        .where(Claim.organisation_id == organisation_id)
        .order_by(Claim.created_at_utc.desc(), Claim.id.desc())
    )


def organisation_claim(organisation_id: int | None, claim_id: int) -> Claim | None:
    """The claim if it belongs to the organisation; None for anyone else's."""
    claim = db.session.get(Claim, claim_id)
    if claim is None or organisation_id is None:
        return None
    if claim.organisation_id != organisation_id:
        return None
    return claim


def claims_for_review(status: str | None) -> Select[Any]:
    """Claims with ``status``; without one, those waiting for review, oldest
    first, so that the longest waiting is decided first."""
    query = select(Claim)
    if status:
        return query.where(Claim.status == status).order_by(
            Claim.created_at_utc.desc(), Claim.id.desc()
        )
    return query.where(Claim.status.in_(TO_REVIEW)).order_by(
        Claim.created_at_utc, Claim.id
    )


def all_claims() -> Select[Any]:
    return select(Claim).order_by(Claim.created_at_utc.desc(), Claim.id.desc())


def claim_file_path(claim: Claim) -> Path | None:
    """Where the claim's invoice file is kept, if it has one on disk."""
    if not claim.file_stored_as:
        return None
    try:
        path = uploads.stored_path(CLAIM_FILES, claim.file_stored_as)
    except uploads.UploadError:
        return None
    if not path.is_file():
        logger.warning("File %s of claim %s is missing", path.name, claim.id)
        return None
    return path
