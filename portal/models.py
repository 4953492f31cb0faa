"""Records every domain shares: partner organisations and the people who sign in."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from portal.extensions import Model


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Role(enum.StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    PARTNER = "partner"


class PartnerOrganisation(Model):
    __tablename__ = "partner_organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    partner_type: Mapped[str] = mapped_column(String(40), default="reseller")
    # Set by the programs domain from the organisation's onboarding journey, and
    # read by targeting rules: "not_started", "in_progress" or "complete".
    onboarding_status: Mapped[str] = mapped_column(String(20), default="not_started")
    created_at_utc: Mapped[datetime] = mapped_column(default=utc_now)

    users: Mapped[list[User]] = relationship(back_populates="organisation")

    def __repr__(self) -> str:
        return f"<PartnerOrganisation {self.name!r}>"


class User(UserMixin, Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), default=Role.PARTNER.value)
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("partner_organisations.id", ondelete="SET NULL")
    )
    # Part of the id kept in the session cookie: signing out bumps it, so a copy of
    # an old cookie no longer signs anyone in.
    session_version: Mapped[int] = mapped_column(default=0)
    created_at_utc: Mapped[datetime] = mapped_column(default=utc_now)

    organisation: Mapped[PartnerOrganisation | None] = relationship(
        back_populates="users"
    )

    def get_id(self) -> str:
        return f"{self.id}.{self.session_version}"

    def end_sessions(self) -> None:
        """Make every session cookie issued so far for this user worthless."""
        self.session_version += 1

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def is_manager(self) -> bool:
        return self.role == Role.MANAGER

    @property
    def is_partner(self) -> bool:
        return self.role == Role.PARTNER

    def __repr__(self) -> str:
        return f"<User {self.email!r}>"
