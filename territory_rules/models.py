"""Regions, territories, rules and conditions; accounts and where they are assigned."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, cast

from geoalchemy2 import Geometry
from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Index,
    Numeric,
    String,
    Table,
    UniqueConstraint,
    event,
    inspect,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from portal.extensions import Model, db
from portal.models import PartnerOrganisation, User, utc_now

SRID = 4326


def table_of(model: type[Any]) -> Table:
    """A model's table, typed as a Table for Core statements.

    ``__table__`` is declared a mere FromClause, which Core's insert() refuses.
    """
    return cast(Table, model.__table__)


def multipolygon() -> Geometry:
    # Spatial indexes are created by the migration, the same way on both databases.
    return Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False)


def point() -> Geometry:
    return Geometry("POINT", srid=SRID, spatial_index=False)


region_managers = Table(
    "region_managers",
    db.metadata,
    Column("region_id", ForeignKey("regions.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)

territory_boundaries = Table(
    "territory_boundaries",
    db.metadata,
    Column(
        "territory_id",
        ForeignKey("territories.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "boundary_id", ForeignKey("boundaries.id", ondelete="CASCADE"), primary_key=True
    ),
)


class Region(Model):
    __tablename__ = "regions"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    created_at_utc: Mapped[datetime] = mapped_column(default=utc_now)

    territories: Mapped[list[Territory]] = relationship(
        back_populates="region", order_by="Territory.name"
    )
    managers: Mapped[list[User]] = relationship(secondary=region_managers)


class Boundary(Model):
    """A named shape imported from a GeoJSON file, e.g. one state of a country."""

    __tablename__ = "boundaries"
    __table_args__ = (UniqueConstraint("layer", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    layer: Mapped[str] = mapped_column(String(120))
    name: Mapped[str] = mapped_column(String(200))
    code: Mapped[str | None] = mapped_column(String(60))
    shape: Mapped[Any] = mapped_column(multipolygon())
    repair_note: Mapped[str | None] = mapped_column(String(300))
    imported_at_utc: Mapped[datetime] = mapped_column(default=utc_now)


class Territory(Model):
    __tablename__ = "territories"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("territories.id", ondelete="SET NULL"), index=True
    )
    partner_id: Mapped[int | None] = mapped_column(
        ForeignKey("partner_organisations.id", ondelete="SET NULL"), index=True
    )
    description: Mapped[str | None] = mapped_column(String(500))
    shape: Mapped[Any | None] = mapped_column(multipolygon(), nullable=True)
    created_at_utc: Mapped[datetime] = mapped_column(default=utc_now)

    region: Mapped[Region] = relationship(back_populates="territories")
    parent: Mapped[Territory | None] = relationship(
        remote_side="Territory.id", back_populates="children"
    )
    children: Mapped[list[Territory]] = relationship(back_populates="parent")
    partner: Mapped[PartnerOrganisation | None] = relationship()
    rules: Mapped[list[Rule]] = relationship(
        back_populates="territory",
        cascade="all, delete-orphan",
        order_by="(Rule.precedence.desc(), Rule.id)",
    )
    boundaries: Mapped[list[Boundary]] = relationship(
        secondary=territory_boundaries, order_by="Boundary.name"
    )

    @property
    def is_leaf(self) -> bool:
        return not self.children


class Rule(Model):
    """Conditions joined by AND; a territory matches when any of its rules does."""

    __tablename__ = "rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    territory_id: Mapped[int] = mapped_column(
        ForeignKey("territories.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    precedence: Mapped[int] = mapped_column(default=0)
    created_at_utc: Mapped[datetime] = mapped_column(default=utc_now)

    territory: Mapped[Territory] = relationship(back_populates="rules")
    conditions: Mapped[list[Condition]] = relationship(
        back_populates="rule", cascade="all, delete-orphan", order_by="Condition.id"
    )


class ConditionField(enum.StrEnum):
    SHAPE = "shape"
    POSTAL_CODE = "postal_code"
    STATE = "state"
    CITY = "city"
    SEGMENT = "segment"
    INDUSTRY = "industry"
    ANNUAL_REVENUE = "annual_revenue"


class Condition(Model):
    """One test on an account, e.g. ``postal_code starts_with ["021"]``.

    ``value`` holds a list of texts for equality, prefix and list tests, and
    ``{"low": ..., "high": ...}`` for ranges; the shape test needs no value.
    """

    __tablename__ = "conditions"

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(
        ForeignKey("rules.id", ondelete="CASCADE"), index=True
    )
    field: Mapped[str] = mapped_column(String(40))
    operator: Mapped[str] = mapped_column(String(40))
    value: Mapped[Any | None] = mapped_column(JSON)

    rule: Mapped[Rule] = relationship(back_populates="conditions")


class PostalCode(Model):
    """A postal code's centroid, from any country's centroid file."""

    __tablename__ = "postal_codes"
    __table_args__ = (
        UniqueConstraint("country", "code"),
        Index("ix_postal_codes_city_state", "city", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    country: Mapped[str] = mapped_column(String(3))
    code: Mapped[str] = mapped_column(String(20))
    city: Mapped[str | None] = mapped_column(String(120))
    state: Mapped[str | None] = mapped_column(String(120))
    location: Mapped[Any] = mapped_column(point())


class LocationSource(enum.StrEnum):
    POSTAL_CODE = "postal_code"
    CITY_STATE = "city_state"
    NONE = "none"


class Account(Model):
    """A customer at one ship-to location."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    external_id: Mapped[str] = mapped_column(String(120), index=True)
    name: Mapped[str] = mapped_column(String(200))
    postal_code: Mapped[str | None] = mapped_column(String(20), index=True)
    city: Mapped[str | None] = mapped_column(String(120))
    state: Mapped[str | None] = mapped_column(String(120), index=True)
    country: Mapped[str | None] = mapped_column(String(3))
    segment: Mapped[str | None] = mapped_column(String(120))
    industry: Mapped[str | None] = mapped_column(String(120))
    annual_revenue: Mapped[Decimal | None] = mapped_column(Numeric(16, 2))
    location: Mapped[Any | None] = mapped_column(point(), nullable=True)
    location_source: Mapped[str] = mapped_column(
        String(20), default=LocationSource.NONE.value
    )
    created_at_utc: Mapped[datetime] = mapped_column(default=utc_now)

    assignment: Mapped[Assignment | None] = relationship(
        primaryjoin="Account.id == foreign(Assignment.account_id)",
        back_populates="account",
        uselist=False,
    )


class SalesLine(Model):
    __tablename__ = "sales_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_line_id: Mapped[str] = mapped_column(String(120), unique=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    order_ref: Mapped[str | None] = mapped_column(String(120))
    order_date: Mapped[date] = mapped_column(index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(16, 4))
    category: Mapped[str | None] = mapped_column(String(120))
    product: Mapped[str | None] = mapped_column(String(300))


class AssignmentStatus(enum.StrEnum):
    ASSIGNED = "assigned"
    CONFLICT = "conflict"
    GAP = "gap"


class Assignment(Model):
    """Where the latest assignment run put an account, and by which rule.

    A derived table, rewritten whole by each run, so it carries no foreign keys:
    checking four of them costs PostgreSQL one lookup per row and key, which was
    half of a run at a million accounts. Code that deletes an account, territory
    or rule must clear or null its assignments itself (nothing deletes them yet).
    """

    __tablename__ = "assignments"

    account_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(20), index=True)
    territory_id: Mapped[int | None] = mapped_column(index=True)
    rule_id: Mapped[int | None]
    top_precedence: Mapped[int | None]
    claimants: Mapped[int] = mapped_column(default=0)
    run_id: Mapped[int | None]

    account: Mapped[Account] = relationship(
        primaryjoin="foreign(Assignment.account_id) == Account.id",
        back_populates="assignment",
    )
    territory: Mapped[Territory | None] = relationship(
        primaryjoin="foreign(Assignment.territory_id) == Territory.id"
    )
    rule: Mapped[Rule | None] = relationship(
        primaryjoin="foreign(Assignment.rule_id) == Rule.id"
    )


class RuleMatch(Model):
    """The rules that claim each account at its top precedence, in the latest run.

    The evidence behind the conflict report and the "why" of an assignment. The
    engine evaluates precedence levels from the highest down and stops looking
    at an account once a level matched it, so lower rules leave no rows here.
    Rebuilt by each run, it carries no foreign keys and no surrogate id, so that
    writing a million rows stays a plain bulk insert. On PostgreSQL the table is
    UNLOGGED (see the migration): a crash of the database server empties it,
    and the conflict report then lists no claims until the next run.
    """

    __tablename__ = "rule_matches"

    run_id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(primary_key=True)
    territory_id: Mapped[int]
    precedence: Mapped[int]


class TerritoryOwnership(Model):
    """Which partner owned a territory from one day to another.

    ``valid_from`` is empty for the first owner on record (it owned the territory
    for every earlier sale); ``valid_to`` is empty while the owner holds it and is
    the first day it no longer does. Sales credit reads this, so a realignment
    never moves what was earned before it.
    """

    __tablename__ = "territory_ownerships"
    __table_args__ = (Index("ix_territory_ownerships_territory", "territory_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    territory_id: Mapped[int] = mapped_column(
        ForeignKey("territories.id", ondelete="CASCADE")
    )
    partner_id: Mapped[int | None] = mapped_column(
        ForeignKey("partner_organisations.id", ondelete="SET NULL")
    )
    valid_from: Mapped[date | None]
    valid_to: Mapped[date | None]

    territory: Mapped[Territory] = relationship()
    partner: Mapped[PartnerOrganisation | None] = relationship()


class AccountPlacement(Model):
    """Which territory an account was assigned to from one day to another.

    Written by each assignment run for the accounts whose territory changed;
    ``valid_from`` is empty for an account's first placement on record. Like
    :class:`Assignment` it carries no foreign keys: runs write it in bulk.
    """

    __tablename__ = "account_placements"
    __table_args__ = (Index("ix_account_placements_account", "account_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int]
    territory_id: Mapped[int | None]
    valid_from: Mapped[date | None]
    valid_to: Mapped[date | None]
    run_id: Mapped[int | None]


@event.listens_for(Session, "before_flush")
def _record_ownership_changes(session: Session, _context: Any, _instances: Any) -> None:
    """Keep territory ownership history whenever a territory's owner is saved.

    A new territory's first owner holds it since always; a change of owner ends
    the current holding today (UTC) and starts the new owner's today.
    """
    today = datetime.now(UTC).date()
    for territory in list(session.new):
        if isinstance(territory, Territory):
            session.add(_holding(territory, valid_from=None))
    for territory in list(session.dirty):
        if isinstance(territory, Territory) and territory.id is not None:
            attributes = inspect(territory).attrs
            by_id = attributes.partner_id.history.has_changes()
            if by_id or attributes.partner.history.has_changes():
                _change_owner(session, territory, today)


def _holding(territory: Territory, valid_from: date | None) -> TerritoryOwnership:
    """The territory's owner as now set, whether through the id or the object."""
    if inspect(territory).attrs.partner_id.history.has_changes():
        return TerritoryOwnership(
            territory=territory,
            partner_id=territory.partner_id,
            valid_from=valid_from,
        )
    return TerritoryOwnership(
        territory=territory, partner=territory.partner, valid_from=valid_from
    )


def _change_owner(session: Session, territory: Territory, today: date) -> None:
    holding = _holding(territory, valid_from=today)
    new_owner = holding.partner.id if holding.partner else holding.partner_id
    open_rows = (
        TerritoryOwnership.territory_id == territory.id,
        (TerritoryOwnership.valid_to.is_(None)),
    )
    current = session.scalars(select(TerritoryOwnership).where(*open_rows)).first()
    if current is not None and current.partner_id == new_owner:
        return

    session.execute(update(TerritoryOwnership).where(*open_rows).values(valid_to=today))
    session.add(holding)
