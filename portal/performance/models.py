"""Targets per territory and period, and the thresholds of the performance flags."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Numeric
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import Model, db
from portal.models import User, utc_now
from territory_rules.models import Territory


class TerritoryTarget(Model):
    """The revenue a territory should reach from one day to another (both included).

    Targets of one territory never overlap; their month rows say how the amount
    spreads over the months it covers.
    """

    __tablename__ = "territory_targets"
    __table_args__ = (
        Index("ix_territory_targets_territory", "territory_id", "starts_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    territory_id: Mapped[int] = mapped_column(
        ForeignKey("territories.id", ondelete="CASCADE")
    )
    starts_on: Mapped[date]
    ends_on: Mapped[date]
    amount: Mapped[Decimal] = mapped_column(Numeric(16, 2))
    set_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    updated_at_utc: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)

    territory: Mapped[Territory] = relationship()
    set_by: Mapped[User | None] = relationship()
    months: Mapped[list[TargetMonth]] = relationship(
        back_populates="target",
        cascade="all, delete-orphan",
        order_by="TargetMonth.month",
    )


class TargetMonth(Model):
    """The part of a target falling in one month (``month`` is its first day)."""

    __tablename__ = "target_months"

    target_id: Mapped[int] = mapped_column(
        ForeignKey("territory_targets.id", ondelete="CASCADE"), primary_key=True
    )
    month: Mapped[date] = mapped_column(primary_key=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(16, 2))

    target: Mapped[TerritoryTarget] = relationship(back_populates="months")


class PerformanceSettings(Model):
    """The thresholds of the performance flags; one row, id 1."""

    __tablename__ = "performance_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    underperform_share: Mapped[Decimal] = mapped_column(
        Numeric(6, 4), default=Decimal("0.80")
    )
    underperform_periods: Mapped[int] = mapped_column(default=2)
    use_bottom_quartile: Mapped[bool] = mapped_column(default=True)
    stalled_days: Mapped[int] = mapped_column(default=60)
    revenue_drop_share: Mapped[Decimal] = mapped_column(
        Numeric(6, 4), default=Decimal("0.30")
    )
    imbalance_factor: Mapped[Decimal] = mapped_column(
        Numeric(6, 2), default=Decimal("1.5")
    )
    leaderboard_for_partners: Mapped[bool] = mapped_column(default=False)
    updated_at_utc: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)

    @classmethod
    def current(cls) -> PerformanceSettings:
        """The settings row, created with the defaults when there is none yet."""
        settings = db.session.get(cls, 1)
        if settings is None:
            settings = cls(id=1)
            db.session.add(settings)
            db.session.flush()
        return settings
