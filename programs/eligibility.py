"""Which partner organisation is in which program, by which rule; stored per run.

Programs that have ended, and archived ones, keep the rows they had: they are the
history of who took part. Every other program's rows are rewritten by each run,
in one transaction, so a reader never sees a half-written set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, delete, func, insert, literal, or_, select
from sqlalchemy.orm import selectinload

from portal.extensions import db
from portal.models import utc_now
from programs.models import (
    Eligibility,
    Program,
    ProgramRule,
    ProgramStatus,
)
from programs.targeting import (
    TargetField,
    matches,
    partner_facts,
    reason_text,
    uses_territory,
)
from territory_rules.models import table_of

logger = logging.getLogger(__name__)

ELIGIBILITY = table_of(Eligibility)

ProgressCallback = Callable[[int, str], None]


def today_utc() -> Any:
    return datetime.now(UTC).date()


def programs_to_recompute() -> Sequence[Program]:
    """Draft and active programs that have not ended: the others keep history."""
    return db.session.scalars(
        select(Program)
        .where(
            Program.status != ProgramStatus.ARCHIVED.value,
            Program.ends_on >= today_utc(),
        )
        .options(selectinload(Program.rules).selectinload(ProgramRule.conditions))
        .order_by(Program.id)
    ).all()


def write_eligibility(run_id: int | None, progress: ProgressCallback | None) -> int:
    """Rewrite the eligibility of every program still open; return the rows."""
    programs = programs_to_recompute()
    facts = partner_facts()
    now = utc_now()
    written = 0

    for number, program in enumerate(programs, start=1):
        stale = delete(Eligibility).where(Eligibility.program_id == program.id)
        db.session.execute(stale)
        for rule in program.rules:
            if not rule.conditions:
                continue
            pairs = matches(rule.conditions, facts).subquery()
            result = db.session.execute(
                insert(ELIGIBILITY)
                .from_select(
                    [
                        "program_id",
                        "organisation_id",
                        "rule_id",
                        "territory_id",
                        "run_id",
                        "computed_at_utc",
                    ],
                    select(
                        literal(program.id),
                        pairs.c.organisation_id,
                        literal(rule.id),
                        pairs.c.territory_id,
                        literal(run_id, Integer),
                        literal(now),
                    ),
                )
                .execution_options(preserve_rowcount=True)
            )
            written += max(getattr(result, "rowcount", 0), 0)
        if progress is not None:
            progress(
                int(60 * number / max(len(programs), 1)),
                f"Eligibility of {number} of {len(programs)} programs",
            )
    db.session.commit()
    logger.info("Run %s wrote %s eligibility rows", run_id, written)
    return written


def rules_test(*fields: TargetField) -> bool:
    """Whether any open program's rule tests one of ``fields``."""
    from programs.models import ProgramCondition

    found = db.session.scalar(
        select(func.count())
        .select_from(ProgramCondition)
        .where(or_(*[ProgramCondition.field == field.value for field in fields]))
    )
    return bool(found)


def eligible_program_ids(organisation_id: int) -> set[int]:
    return set(
        db.session.scalars(
            select(Eligibility.program_id)
            .where(Eligibility.organisation_id == organisation_id)
            .distinct()
        )
    )


def eligible_counts() -> dict[int, int]:
    """Program id -> number of partner organisations in it."""
    rows = db.session.execute(
        select(
            Eligibility.program_id,
            func.count(Eligibility.organisation_id.distinct()),
        ).group_by(Eligibility.program_id)
    ).all()
    return {program_id: count for program_id, count in rows}


def eligible_organisations(program_id: int) -> dict[int, list[str]]:
    """Organisation id -> reasons, for one program."""
    return _reasons(Eligibility.program_id == program_id, key="organisation")


def reasons_for(organisation_id: int) -> dict[int, list[str]]:
    """Program id -> the "why" lines of an organisation's programs."""
    return _reasons(Eligibility.organisation_id == organisation_id, key="program")


def _reasons(where: Any, key: str) -> dict[int, list[str]]:
    rows = db.session.scalars(
        select(Eligibility)
        .where(where)
        .options(
            selectinload(Eligibility.rule).selectinload(ProgramRule.conditions),
        )
        .order_by(Eligibility.program_id, Eligibility.rule_id, Eligibility.id)
    ).all()
    potentials = _potentials({row.territory_id for row in rows if row.territory_id})
    territory_names = _territory_names({row.territory_id for row in rows})

    reasons: dict[int, list[str]] = {}
    for row in rows:
        conditions = row.rule.conditions
        territory = territory_names.get(row.territory_id) if row.territory_id else None
        if uses_territory(conditions) and territory is None:
            territory = "a territory since deleted"
        line = reason_text(
            f"Rule “{row.rule.name}”",
            conditions,
            territory,
            potentials.get(row.territory_id),
        )
        group = row.program_id if key == "program" else row.organisation_id
        lines = reasons.setdefault(group, [])
        if line not in lines:
            lines.append(line)
    return reasons


def _potentials(territory_ids: set[int | None]) -> dict[int | None, Any]:
    if not territory_ids:
        return {}
    facts = partner_facts()
    rows = db.session.execute(
        select(facts.c.territory_id, facts.c.potential).where(
            facts.c.territory_id.in_(territory_ids)
        )
    ).all()
    return {territory_id: potential for territory_id, potential in rows}


def _territory_names(territory_ids: set[int | None]) -> dict[int | None, str]:
    from territory_rules.models import Territory

    ids = {i for i in territory_ids if i is not None}
    if not ids:
        return {}
    rows = db.session.execute(
        select(Territory.id, Territory.name).where(Territory.id.in_(ids))
    ).all()
    return {territory_id: name for territory_id, name in rows}
