"""Programs, their targeting rules, training modules, steps, tiers and standings."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.extensions import Model
from portal.models import PartnerOrganisation, User, utc_now


class ProgramKind(enum.StrEnum):
    ONBOARDING = "onboarding"
    TRAINING = "training"
    INCENTIVE = "incentive"
    CAMPAIGN = "campaign"


class ProgramStatus(enum.StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    ARCHIVED = "archived"


class Kpi(enum.StrEnum):
    """What an incentive program's tiers measure, over the program's period."""

    SALES_SUM = "sales_sum"
    SALES_COUNT = "sales_count"
    SALES_AVERAGE = "sales_average"
    MODULES_COMPLETED = "modules_completed"
    NEW_ACCOUNTS = "new_accounts"


class KpiDirection(enum.StrEnum):
    HIGHER_IS_BETTER = "higher"
    LOWER_IS_BETTER = "lower"


class StepKind(enum.StrEnum):
    """A module to complete, a task the partner ticks off, or a first sale."""

    MODULE = "module"
    TASK = "task"
    FIRST_SALE = "first_sale"


class OnboardingStatus(enum.StrEnum):
    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    COMPLETE = "complete"


class Program(Model):
    __tablename__ = "programs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=ProgramStatus.DRAFT.value)
    description: Mapped[str | None] = mapped_column(Text)
    starts_on: Mapped[date]
    ends_on: Mapped[date]
    # Incentive programs only: the measure their tiers are set on.
    kpi: Mapped[str | None] = mapped_column(String(30))
    kpi_direction: Mapped[str] = mapped_column(
        String(10), default=KpiDirection.HIGHER_IS_BETTER.value
    )
    # Bumped on every save: an edit made from a stale page is refused instead of
    # silently overwriting what another admin saved in between.
    version: Mapped[int] = mapped_column(default=1)
    created_at_utc: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at_utc: Mapped[datetime] = mapped_column(default=utc_now)

    rules: Mapped[list[ProgramRule]] = relationship(
        back_populates="program",
        cascade="all, delete-orphan",
        order_by="ProgramRule.id",
    )
    steps: Mapped[list[ProgramStep]] = relationship(
        back_populates="program",
        cascade="all, delete-orphan",
        order_by="ProgramStep.position",
    )
    tiers: Mapped[list[Tier]] = relationship(
        back_populates="program",
        cascade="all, delete-orphan",
        order_by="Tier.position",
    )

    __mapper_args__ = {"version_id_col": version}

    def is_running_on(self, day: date) -> bool:
        """Active and within its period on ``day``."""
        return (
            self.status == ProgramStatus.ACTIVE
            and self.starts_on <= day <= self.ends_on
        )

    def has_ended_by(self, day: date) -> bool:
        return self.ends_on < day


class ProgramRule(Model):
    """Targeting conditions joined by AND; a program targets a partner when any
    of its rules matches one of the partner's territories (or the partner itself)."""

    __tablename__ = "program_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(
        ForeignKey("programs.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    created_at_utc: Mapped[datetime] = mapped_column(default=utc_now)

    program: Mapped[Program] = relationship(back_populates="rules")
    conditions: Mapped[list[ProgramCondition]] = relationship(
        back_populates="rule",
        cascade="all, delete-orphan",
        order_by="ProgramCondition.id",
    )


class ProgramCondition(Model):
    """One targeting test, stored as territory conditions are."""

    __tablename__ = "program_conditions"

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(
        ForeignKey("program_rules.id", ondelete="CASCADE"), index=True
    )
    field: Mapped[str] = mapped_column(String(40))
    operator: Mapped[str] = mapped_column(String(40))
    value: Mapped[Any | None] = mapped_column(JSON)

    rule: Mapped[ProgramRule] = relationship(back_populates="conditions")


class TrainingModule(Model):
    __tablename__ = "training_modules"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200), unique=True)
    # Markdown as typed; rendered and sanitised on display, never stored as HTML.
    body: Mapped[str] = mapped_column(Text, default="")
    link_url: Mapped[str | None] = mapped_column(String(500))
    # An uploaded file, kept under the instance folder by its stored name.
    file_name: Mapped[str | None] = mapped_column(String(200))
    file_stored_as: Mapped[str | None] = mapped_column(String(100))
    estimated_minutes: Mapped[int] = mapped_column(default=10)
    # [{"question": str, "choices": [str, ...], "answer": index}, ...]
    quiz: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    pass_mark_percent: Mapped[int | None]
    created_at_utc: Mapped[datetime] = mapped_column(default=utc_now)

    @property
    def has_quiz(self) -> bool:
        return bool(self.quiz)


class ProgramStep(Model):
    """One ordered item of a program: a module, a task, or the first sale."""

    __tablename__ = "program_steps"

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(
        ForeignKey("programs.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(default=0)
    kind: Mapped[str] = mapped_column(String(20), default=StepKind.MODULE.value)
    module_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_modules.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str | None] = mapped_column(String(200))
    required: Mapped[bool] = mapped_column(default=True)

    program: Mapped[Program] = relationship(back_populates="steps")
    module: Mapped[TrainingModule | None] = relationship()

    @property
    def label(self) -> str:
        if self.module is not None:
            return self.module.title
        return self.title or self.kind


class ModuleCompletion(Model):
    """A user finished a module (and passed its quiz, when it has one)."""

    __tablename__ = "module_completions"
    __table_args__ = (UniqueConstraint("user_id", "module_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    module_id: Mapped[int] = mapped_column(
        ForeignKey("training_modules.id", ondelete="CASCADE"), index=True
    )
    # Copied from the user when recorded, so the organisation's roll-up needs no
    # join through users and survives a user leaving.
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("partner_organisations.id", ondelete="CASCADE"), index=True
    )
    score_percent: Mapped[int | None]
    completed_at_utc: Mapped[datetime] = mapped_column(default=utc_now)

    user: Mapped[User] = relationship()
    module: Mapped[TrainingModule] = relationship()


class QuizAttempt(Model):
    __tablename__ = "quiz_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    module_id: Mapped[int] = mapped_column(
        ForeignKey("training_modules.id", ondelete="CASCADE"), index=True
    )
    score_percent: Mapped[int]
    passed: Mapped[bool]
    attempted_at_utc: Mapped[datetime] = mapped_column(default=utc_now)


class StepCompletion(Model):
    """A task step ticked off for a whole organisation."""

    __tablename__ = "step_completions"
    __table_args__ = (UniqueConstraint("organisation_id", "step_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("partner_organisations.id", ondelete="CASCADE"), index=True
    )
    step_id: Mapped[int] = mapped_column(
        ForeignKey("program_steps.id", ondelete="CASCADE"), index=True
    )
    completed_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    completed_at_utc: Mapped[datetime] = mapped_column(default=utc_now)


class Tier(Model):
    """A level of an incentive program, reached when the KPI passes its threshold.

    With higher-is-better KPIs thresholds rise from tier to tier; with
    lower-is-better they fall. A KPI exactly at a threshold reaches the tier.
    """

    __tablename__ = "tiers"
    __table_args__ = (UniqueConstraint("program_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(
        ForeignKey("programs.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(default=0)
    name: Mapped[str] = mapped_column(String(80))
    threshold: Mapped[Decimal] = mapped_column(Numeric(16, 4))
    benefits: Mapped[str | None] = mapped_column(Text)
    points_multiplier: Mapped[Decimal | None] = mapped_column(Numeric(8, 4))
    bonus_points: Mapped[int | None]

    program: Mapped[Program] = relationship(back_populates="tiers")


class Standing(Model):
    """A partner's KPI and tier in an incentive program, as of the latest run."""

    __tablename__ = "program_standings"

    program_id: Mapped[int] = mapped_column(
        ForeignKey("programs.id", ondelete="CASCADE"), primary_key=True
    )
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("partner_organisations.id", ondelete="CASCADE"), primary_key=True
    )
    kpi_value: Mapped[Decimal] = mapped_column(Numeric(18, 4))
    tier_id: Mapped[int | None] = mapped_column(
        ForeignKey("tiers.id", ondelete="SET NULL")
    )
    run_id: Mapped[int | None]
    computed_at_utc: Mapped[datetime] = mapped_column(default=utc_now)

    tier: Mapped[Tier | None] = relationship()


class Eligibility(Model):
    """A partner organisation is in a program because a rule matched.

    One row per matching (rule, territory); ``territory_id`` is empty when the
    rule tests the partner alone (its type, tier or onboarding status). Rows of
    programs that have ended are kept as they were: they are the history.
    """

    __tablename__ = "program_eligibility"
    __table_args__ = (
        Index("ix_program_eligibility_org_program", "organisation_id", "program_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(
        ForeignKey("programs.id", ondelete="CASCADE"), index=True
    )
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("partner_organisations.id", ondelete="CASCADE")
    )
    rule_id: Mapped[int] = mapped_column(
        ForeignKey("program_rules.id", ondelete="CASCADE")
    )
    territory_id: Mapped[int | None] = mapped_column(
        ForeignKey("territories.id", ondelete="SET NULL")
    )
    run_id: Mapped[int | None]
    computed_at_utc: Mapped[datetime] = mapped_column(default=utc_now)

    program: Mapped[Program] = relationship()
    organisation: Mapped[PartnerOrganisation] = relationship()
    rule: Mapped[ProgramRule] = relationship()
