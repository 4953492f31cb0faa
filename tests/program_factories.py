"""Builders for programs, modules, steps, tiers and sales; each flushes."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal
from typing import Any

from portal.extensions import db
from programs.models import (
    Program,
    ProgramCondition,
    ProgramRule,
    ProgramStep,
    Tier,
    TrainingModule,
)
from territory_rules.models import (
    Account,
    AccountPlacement,
    Assignment,
    SalesLine,
    Territory,
)

_sequence = itertools.count(1)


def make_program(
    name: str | None = None,
    kind: str = "training",
    status: str = "active",
    starts_on: date = date(2020, 1, 1),
    ends_on: date = date(2099, 12, 31),
    **fields: Any,
) -> Program:
    program = Program(
        name=name or f"Program {next(_sequence)}",
        kind=kind,
        status=status,
        starts_on=starts_on,
        ends_on=ends_on,
        **fields,
    )
    db.session.add(program)
    db.session.flush()
    return program


def add_program_rule(
    program: Program, *conditions: tuple[str, str, Any], name: str | None = None
) -> ProgramRule:
    rule = ProgramRule(
        program=program,
        name=name or f"Targeting {next(_sequence)}",
        conditions=[
            ProgramCondition(field=field, operator=operator, value=value)
            for field, operator, value in conditions
        ],
    )
    db.session.add(rule)
    db.session.flush()
    return rule


def make_module(title: str | None = None, **fields: Any) -> TrainingModule:
    module = TrainingModule(
        title=title or f"Module {next(_sequence)}",
        body=fields.pop("body", "Read this."),
        **fields,
    )
    db.session.add(module)
    db.session.flush()
    return module


def add_step(
    program: Program,
    module: TrainingModule | None = None,
    kind: str | None = None,
    title: str | None = None,
    required: bool = True,
) -> ProgramStep:
    step = ProgramStep(
        program=program,
        position=len(program.steps),
        kind=kind or ("module" if module else "task"),
        module=module,
        title=title,
        required=required,
    )
    db.session.add(step)
    db.session.flush()
    return step


def add_tier(program: Program, name: str, threshold: str | int, **fields: Any) -> Tier:
    tier = Tier(
        program=program,
        position=len(program.tiers),
        name=name,
        threshold=Decimal(str(threshold)),
        **fields,
    )
    db.session.add(tier)
    db.session.flush()
    return tier


def assign(account: Account, territory: Territory) -> None:
    """Record the account in the territory since always, as a first run would."""
    db.session.merge(
        Assignment(
            account_id=account.id,
            status="assigned",
            territory_id=territory.id,
            claimants=1,
        )
    )
    db.session.add(AccountPlacement(account_id=account.id, territory_id=territory.id))
    db.session.flush()


def add_sale(
    account: Account, on: date, amount: str | int, category: str = "Office Supplies"
) -> SalesLine:
    line = SalesLine(
        external_line_id=f"L-{next(_sequence)}",
        account_id=account.id,
        order_date=on,
        amount=Decimal(str(amount)),
        category=category,
    )
    db.session.add(line)
    db.session.flush()
    return line
