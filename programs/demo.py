"""The demo's programs, modules and onboarding progress, from the demo plan.

Targeting conditions are written in the plan as an admin types them and go
through the same parsing, so the demo cannot hold a condition the admin pages
would refuse.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from portal.extensions import db
from portal.models import PartnerOrganisation, User
from programs.models import (
    ModuleCompletion,
    Program,
    ProgramCondition,
    ProgramRule,
    ProgramStatus,
    ProgramStep,
    StepCompletion,
    StepKind,
    Tier,
    TrainingModule,
)
from programs.targeting import parse_target


def load_demo_programs(plan: dict[str, Any]) -> list[Program]:
    """Create the plan's modules and active programs; record its onboarding progress.

    Territories and regions named by conditions must exist (and be flushed).
    """
    modules = {spec["title"]: _module(spec) for spec in plan.get("modules", [])}
    period = plan["program_period"]
    programs = [_program(spec, modules, period) for spec in plan.get("programs", [])]
    db.session.flush()
    _record_progress(plan.get("onboarding_progress", {}), programs)
    return programs


def _module(spec: dict[str, Any]) -> TrainingModule:
    module = TrainingModule(
        title=spec["title"],
        body=spec["body"],
        estimated_minutes=spec.get("minutes", 10),
        link_url=spec.get("link"),
    )
    if spec.get("quiz"):
        from programs.training import parse_quiz

        module.quiz = parse_quiz(spec["quiz"])
        module.pass_mark_percent = spec.get("pass_mark", 100)
    db.session.add(module)
    return module


def _program(
    spec: dict[str, Any], modules: dict[str, TrainingModule], period: dict[str, str]
) -> Program:
    program = Program(
        name=spec["name"],
        kind=spec["kind"],
        status=ProgramStatus.ACTIVE.value,
        description=spec.get("description"),
        starts_on=date.fromisoformat(period["starts_on"]),
        ends_on=date.fromisoformat(period["ends_on"]),
        kpi=spec.get("kpi"),
    )
    program.rules = [_rule(rule) for rule in spec["rules"]]
    program.steps = [
        _step(position, step, modules)
        for position, step in enumerate(spec.get("steps", []))
    ]
    program.tiers = [
        Tier(
            position=position,
            name=tier["name"],
            threshold=Decimal(tier["threshold"]),
            benefits=tier.get("benefits"),
            points_multiplier=Decimal(tier["multiplier"])
            if tier.get("multiplier")
            else None,
            bonus_points=tier.get("bonus"),
        )
        for position, tier in enumerate(spec.get("tiers", []))
    ]
    db.session.add(program)
    return program


def _rule(spec: dict[str, Any]) -> ProgramRule:
    conditions = []
    for field, operator, raw in spec["conditions"]:
        parsed = parse_target(field, operator, raw)
        conditions.append(
            ProgramCondition(
                field=parsed.field, operator=parsed.operator, value=parsed.value
            )
        )
    return ProgramRule(name=spec["name"], conditions=conditions)


def _step(
    position: int, spec: dict[str, Any], modules: dict[str, TrainingModule]
) -> ProgramStep:
    required = spec.get("required", True)
    if "module" in spec:
        return ProgramStep(
            position=position,
            kind=StepKind.MODULE.value,
            module=modules[spec["module"]],
            required=required,
        )
    kind = StepKind.TASK if "task" in spec else StepKind.FIRST_SALE
    title = spec.get("task") or spec.get("first_sale")
    return ProgramStep(
        position=position, kind=kind.value, title=title, required=required
    )


def _record_progress(progress: dict[str, list[str]], programs: list[Program]) -> None:
    """Mark done, for each named partner, the listed steps of the demo programs."""
    steps = {step.label: step for program in programs for step in program.steps}
    for partner_name, labels in progress.items():
        organisation = db.session.scalars(
            select(PartnerOrganisation).where(PartnerOrganisation.name == partner_name)
        ).one()
        user = db.session.scalars(
            select(User).where(User.organisation_id == organisation.id)
        ).first()
        for label in labels:
            _mark_done(steps[label], organisation, user)


def _mark_done(
    step: ProgramStep, organisation: PartnerOrganisation, user: User | None
) -> None:
    if step.module is not None and user is not None:
        db.session.add(
            ModuleCompletion(
                user_id=user.id,
                module_id=step.module.id,
                organisation_id=organisation.id,
                score_percent=100 if step.module.has_quiz else None,
            )
        )
    elif step.kind == StepKind.TASK:
        db.session.add(
            StepCompletion(
                organisation_id=organisation.id,
                step_id=step.id,
                completed_by_id=user.id if user else None,
            )
        )
