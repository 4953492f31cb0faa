"""The assignment engine: every account ends in exactly one territory, or is listed.

Each rule becomes one ``INSERT .. SELECT`` of the accounts it matches into
``rule_matches``; rules that test only the territory's shape share one statement, a
spatial join. Resolution is then one set-based statement: the highest precedence
wins, two territories at that precedence are a conflict, no match is a gap. No
account row is ever loaded into Python, so memory does not grow with the data.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import (
    Integer,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.orm import selectinload

from portal.extensions import db
from territory_rules.conditions import condition_sql
from territory_rules.models import (
    Account,
    Assignment,
    AssignmentStatus,
    ConditionField,
    Rule,
    RuleMatch,
    Territory,
)

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, str], None]


@dataclass(frozen=True)
class AssignmentCounts:
    accounts: int
    assigned: int
    conflict: int
    gap: int
    rules: int
    matches: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def active_rules() -> Sequence[Rule]:
    """Rules of leaf territories: accounts are assigned to leaves only."""
    parent_ids = select(Territory.parent_id).where(Territory.parent_id.is_not(None))
    return db.session.scalars(
        select(Rule)
        .join(Rule.territory)
        .where(Territory.id.not_in(parent_ids))
        .options(selectinload(Rule.conditions))
        .order_by(Rule.id)
    ).all()


def _is_shape_only(rule: Rule) -> bool:
    fields = {condition.field for condition in rule.conditions}
    return fields == {ConditionField.SHAPE.value}


def rule_batches(rules: Sequence[Rule]) -> list[list[Rule]]:
    """Shape-only rules in one batch (one spatial join); every other rule alone."""
    shape_only = [rule for rule in rules if _is_shape_only(rule)]
    others = [[rule] for rule in rules if rule.conditions and not _is_shape_only(rule)]
    return ([shape_only] if shape_only else []) + others


def _match_statement(batch: list[Rule], run_id: int, dialect: str):  # type: ignore[no-untyped-def]
    accounts = Account.__table__
    territories = Territory.__table__
    rules = Rule.__table__
    conditions = batch[0].conditions
    predicates = [
        condition_sql(c.field, c.operator, c.value, accounts, territories, dialect)
        for c in conditions
    ]
    query = (
        select(
            literal(run_id, Integer),
            accounts.c.id,
            rules.c.id,
            rules.c.territory_id,
            rules.c.precedence,
        )
        .select_from(rules)
        .join(territories, territories.c.id == rules.c.territory_id)
        .join(accounts, and_(*predicates))
        .where(rules.c.id.in_([rule.id for rule in batch]))
    )
    columns = ["run_id", "account_id", "rule_id", "territory_id", "precedence"]
    return insert(RuleMatch.__table__).from_select(columns, query)


def collect_matches(run_id: int, progress: ProgressCallback) -> int:
    """Write every (account, rule) match of this run; return the number of rules."""
    dialect = db.session.get_bind().dialect.name
    rules = active_rules()
    batches = rule_batches(rules)
    for done, batch in enumerate(batches, start=1):
        db.session.execute(_match_statement(batch, run_id, dialect))
        db.session.commit()
        progress(5 + int(80 * done / max(len(batches), 1)), f"{done} of {len(batches)} rule groups matched")
    return len(rules)


def _winners(run_id: int):  # type: ignore[no-untyped-def]
    matches = RuleMatch.__table__
    top = (
        select(matches.c.account_id, func.max(matches.c.precedence).label("top"))
        .where(matches.c.run_id == run_id)
        .group_by(matches.c.account_id)
        .subquery("top")
    )
    return (
        select(
            matches.c.account_id,
            func.count(func.distinct(matches.c.territory_id)).label("claimants"),
            func.min(matches.c.territory_id).label("territory_id"),
            func.min(matches.c.rule_id).label("rule_id"),
            top.c.top,
        )
        .join(
            top,
            and_(
                top.c.account_id == matches.c.account_id,
                top.c.top == matches.c.precedence,
            ),
        )
        .where(matches.c.run_id == run_id)
        .group_by(matches.c.account_id, top.c.top)
        .subquery("winners")
    )


def resolve(run_id: int) -> None:
    """Replace every account's assignment with this run's outcome, in one statement."""
    accounts = Account.__table__
    winners = _winners(run_id)
    single = winners.c.claimants == 1
    status = case(
        (winners.c.claimants.is_(None), AssignmentStatus.GAP.value),
        (single, AssignmentStatus.ASSIGNED.value),
        else_=AssignmentStatus.CONFLICT.value,
    )
    query = select(
        accounts.c.id,
        status,
        case((single, winners.c.territory_id)),
        case((single, winners.c.rule_id)),
        winners.c.top,
        func.coalesce(winners.c.claimants, 0),
        literal(run_id, Integer),
    ).select_from(accounts.outerjoin(winners, winners.c.account_id == accounts.c.id))
    columns = [
        "account_id",
        "status",
        "territory_id",
        "rule_id",
        "top_precedence",
        "claimants",
        "run_id",
    ]
    db.session.execute(delete(Assignment))
    db.session.execute(insert(Assignment.__table__).from_select(columns, query))
    db.session.execute(delete(RuleMatch).where(RuleMatch.run_id != run_id))


def count_statuses() -> dict[str, int]:
    rows = db.session.execute(
        select(Assignment.status, func.count()).group_by(Assignment.status)
    ).all()
    counts: dict[str, int] = defaultdict(int)
    for status, count in rows:
        counts[status] = count
    return counts


def assign_accounts(run_id: int, progress: ProgressCallback) -> AssignmentCounts:
    """Recompute every account's territory. Running it twice gives the same result."""
    db.session.execute(delete(RuleMatch).where(RuleMatch.run_id == run_id))
    progress(5, "Matching rules")
    rule_count = collect_matches(run_id, progress)

    progress(90, "Resolving precedence")
    resolve(run_id)
    matches = db.session.scalar(
        select(func.count()).select_from(RuleMatch).where(RuleMatch.run_id == run_id)
    )
    statuses = count_statuses()
    db.session.commit()

    counts = AssignmentCounts(
        accounts=sum(statuses.values()),
        assigned=statuses[AssignmentStatus.ASSIGNED.value],
        conflict=statuses[AssignmentStatus.CONFLICT.value],
        gap=statuses[AssignmentStatus.GAP.value],
        rules=rule_count,
        matches=matches or 0,
    )
    logger.info("Assignment run %s: %s", run_id, counts)
    return counts
