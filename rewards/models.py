"""Sales sources and imports, claims, reward rules, the points ledger and payouts."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import Model
from portal.models import PartnerOrganisation, User, utc_now
from programs.models import Program, Tier


class SalesSource(Model):
    """A kind of sales file and how to read it: columns, dates, decimals, encoding."""

    __tablename__ = "sales_sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    # The territory importer's AccountMapping fields, by name.
    mapping: Mapped[dict[str, Any]] = mapped_column(JSON)
    date_format: Mapped[str] = mapped_column(String(40), default="%Y-%m-%d")
    decimal_separator: Mapped[str] = mapped_column(String(1), default=".")
    # "auto" detects UTF-8 (with or without BOM) or Windows-1252.
    encoding: Mapped[str] = mapped_column(String(20), default="auto")
    built_in: Mapped[bool] = mapped_column(default=False)
    created_at_utc: Mapped[datetime] = mapped_column(default=utc_now)


class SalesImport(Model):
    """One import of a sales file, kept with its report whether it landed or not."""

    __tablename__ = "sales_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int | None] = mapped_column(
        ForeignKey("sales_sources.id", ondelete="SET NULL")
    )
    file_name: Mapped[str] = mapped_column(String(255))
    succeeded: Mapped[bool]
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    errors: Mapped[list[str] | None] = mapped_column(JSON)
    notes: Mapped[list[str] | None] = mapped_column(JSON)
    imported_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at_utc: Mapped[datetime] = mapped_column(default=utc_now)

    source: Mapped[SalesSource | None] = relationship()
    imported_by: Mapped[User | None] = relationship()


class ClaimStatus(enum.StrEnum):
    SUBMITTED = "submitted"
    # Outside the claimant's territory on the sale date: never credited.
    FLAGGED = "flagged"
    APPROVED = "approved"
    REJECTED = "rejected"


class Claim(Model):
    """A sale a partner reports itself; it counts once an admin approves it."""

    __tablename__ = "claims"
    __table_args__ = (
        Index(
            "uq_claims_org_invoice", "organisation_id", "invoice_number", unique=True
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("partner_organisations.id", ondelete="CASCADE"), index=True
    )
    submitted_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    customer_name: Mapped[str] = mapped_column(String(200))
    postal_code: Mapped[str] = mapped_column(String(20))
    amount: Mapped[Decimal] = mapped_column(Numeric(16, 4))
    sale_date: Mapped[date]
    invoice_number: Mapped[str] = mapped_column(String(120))
    category: Mapped[str | None] = mapped_column(String(120))
    file_name: Mapped[str | None] = mapped_column(String(255))
    file_stored_as: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(
        String(20), default=ClaimStatus.SUBMITTED.value, index=True
    )
    # Where the postal code lies, found when the claim was submitted.
    territory_id: Mapped[int | None] = mapped_column(
        ForeignKey("territories.id", ondelete="SET NULL")
    )
    location_note: Mapped[str | None] = mapped_column(String(300))
    review_reason: Mapped[str | None] = mapped_column(Text)
    reviewed_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    reviewed_at_utc: Mapped[datetime | None]
    created_at_utc: Mapped[datetime] = mapped_column(default=utc_now)

    organisation: Mapped[PartnerOrganisation] = relationship()
    submitted_by: Mapped[User | None] = relationship(foreign_keys=[submitted_by_id])
    reviewed_by: Mapped[User | None] = relationship(foreign_keys=[reviewed_by_id])


class RewardPlan(Model):
    """How an incentive program turns credited sales into points."""

    __tablename__ = "reward_plans"

    program_id: Mapped[int] = mapped_column(
        ForeignKey("programs.id", ondelete="CASCADE"), primary_key=True
    )
    points_per_unit: Mapped[Decimal] = mapped_column(Numeric(12, 4), default=1)
    # Points stay pending this many days after they are earned, unless approved.
    approval_days: Mapped[int] = mapped_column(default=30)
    # Approved points not paid this many days after they were recorded expire;
    # empty: they never do.
    expiry_days: Mapped[int | None]
    # At most this many sale points per partner and period ("month", "quarter",
    # "program"); none when empty.
    cap_points: Mapped[Decimal | None] = mapped_column(Numeric(16, 2))
    cap_period: Mapped[str] = mapped_column(String(10), default="month")

    program: Mapped[Program] = relationship()


class MultiplierDimension(enum.StrEnum):
    CATEGORY = "category"
    SEGMENT = "segment"
    TERRITORY = "territory"


class RewardRule(Model):
    """A multiplier on sale points, e.g. 1.5 for the Technology category."""

    __tablename__ = "reward_rules"
    __table_args__ = (
        Index(
            "uq_reward_rules_match",
            "program_id",
            "dimension",
            "match_value",
            unique=True,
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(
        ForeignKey("programs.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    dimension: Mapped[str] = mapped_column(String(20))
    # A category or segment name (compared trimmed, case ignored), or a
    # territory id written as text. One rule per program, dimension and value.
    match_value: Mapped[str] = mapped_column(String(200))
    multiplier: Mapped[Decimal] = mapped_column(Numeric(8, 4))

    program: Mapped[Program] = relationship()


class LedgerSource(enum.StrEnum):
    SALE = "sale"
    CLAIM = "claim"
    TIER_BONUS = "tier_bonus"
    EXPIRY = "expiry"
    ADJUSTMENT = "adjustment"


class EntryStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    PAID = "paid"


class LedgerEntry(Model):
    """One line of the append-only points ledger.

    Points are never changed once written: a sale priced again differently gets
    a further entry for the difference, and expiry is an entry of its own.
    ``key`` is unique: ``<source key>#<n>`` for the n-th entry of one source,
    so two runs writing the same correction collide instead of counting twice.
    Only ``status``, ``approved_at_utc`` and ``payout_id`` change, as the entry
    moves from pending to approved to paid.
    """

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_entries_org_program", "organisation_id", "program_id"),
        Index("ix_ledger_entries_source_key", "source_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    source_key: Mapped[str] = mapped_column(String(180))
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("partner_organisations.id", ondelete="CASCADE")
    )
    program_id: Mapped[int | None] = mapped_column(
        ForeignKey("programs.id", ondelete="SET NULL")
    )
    source: Mapped[str] = mapped_column(String(20))
    sales_line_id: Mapped[int | None] = mapped_column(index=True)
    claim_id: Mapped[int | None] = mapped_column(
        ForeignKey("claims.id", ondelete="SET NULL"), index=True
    )
    tier_id: Mapped[int | None] = mapped_column(
        ForeignKey("tiers.id", ondelete="SET NULL")
    )
    expires_entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_entries.id", ondelete="SET NULL"), index=True
    )
    points: Mapped[Decimal] = mapped_column(Numeric(16, 2))
    # How a sale or claim was priced: amount x rate x multiplier, then the cap.
    # An entry correcting an earlier one carries the new pricing; its points
    # are the difference.
    amount: Mapped[Decimal | None] = mapped_column(Numeric(16, 4))
    rate: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))
    multiplier: Mapped[Decimal | None] = mapped_column(Numeric(16, 8))
    priced_points: Mapped[Decimal | None] = mapped_column(Numeric(16, 2))
    category_rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("reward_rules.id", ondelete="SET NULL")
    )
    segment_rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("reward_rules.id", ondelete="SET NULL")
    )
    territory_rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("reward_rules.id", ondelete="SET NULL")
    )
    reason: Mapped[str | None] = mapped_column(Text)
    earned_on: Mapped[date]
    status: Mapped[str] = mapped_column(
        String(20), default=EntryStatus.PENDING.value, index=True
    )
    approved_at_utc: Mapped[datetime | None]
    payout_id: Mapped[int | None] = mapped_column(
        ForeignKey("payouts.id", ondelete="SET NULL"), index=True
    )
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    run_id: Mapped[int | None]
    created_at_utc: Mapped[datetime] = mapped_column(default=utc_now)

    organisation: Mapped[PartnerOrganisation] = relationship()
    program: Mapped[Program | None] = relationship()
    claim: Mapped[Claim | None] = relationship()
    tier: Mapped[Tier | None] = relationship()
    category_rule: Mapped[RewardRule | None] = relationship(
        foreign_keys=[category_rule_id]
    )
    segment_rule: Mapped[RewardRule | None] = relationship(
        foreign_keys=[segment_rule_id]
    )
    territory_rule: Mapped[RewardRule | None] = relationship(
        foreign_keys=[territory_rule_id]
    )


class Payout(Model):
    """A batch of approved entries marked paid together."""

    __tablename__ = "payouts"

    id: Mapped[int] = mapped_column(primary_key=True)
    note: Mapped[str | None] = mapped_column(String(300))
    entries: Mapped[int] = mapped_column(default=0)
    points: Mapped[Decimal] = mapped_column(Numeric(16, 2), default=0)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at_utc: Mapped[datetime] = mapped_column(default=utc_now)

    created_by: Mapped[User | None] = relationship()
