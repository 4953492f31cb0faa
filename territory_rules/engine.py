"""The assignment engine: every account ends in exactly one territory, or is listed.

Each rule becomes one ``INSERT .. SELECT`` of the accounts it matches into
``rule_matches``; rules that test only the territory's shape share one statement, a
spatial join, and rules made of one text-list test share one scan per field.
Resolution is then one set-based statement: the highest precedence
wins, two territories at that precedence are a conflict, no match is a gap. No
account row is ever loaded into Python, so memory does not grow with the data.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    Integer,
    String,
    Table,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    union_all,
)
from sqlalchemy.orm import selectinload
from sqlalchemy.sql import Select, Subquery
from sqlalchemy.sql.dml import Insert

from portal.extensions import db
from territory_rules.conditions import TEXT_LIST_FIELDS, condition_sql
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


def table_of(model: type[Any]) -> Table:
    """A model's table, typed as one for the Core statements below."""
    return cast(Table, model.__table__)


# The models' tables as tables: ``__table__`` is declared a mere FromClause.
ACCOUNTS = cast(Table, table_of(Account))
TERRITORIES = cast(Table, table_of(Territory))
RULES = cast(Table, table_of(Rule))
RULE_MATCHES = cast(Table, table_of(RuleMatch))
ASSIGNMENTS = cast(Table, table_of(Assignment))

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


def _list_field(rule: Rule) -> str | None:
    """The field of a rule made of one text-list test (``state in [...]``), or None."""
    if len(rule.conditions) != 1:
        return None
    condition = rule.conditions[0]
    listed = condition.operator == "in" and condition.field in TEXT_LIST_FIELDS
    return condition.field if listed and condition.value else None


def rule_batches(rules: Sequence[Rule]) -> list[list[Rule]]:
    """Rules that can share one statement, batched; every other rule alone.

    Shape-only rules share one spatial join. Rules made of one text-list test
    on the same field share one scan of the accounts, joined to their values:
    one statement per rule would read every account once per rule.
    """
    shape_only = [rule for rule in rules if _is_shape_only(rule)]
    by_field: dict[str, list[Rule]] = defaultdict(list)
    alone = []
    for rule in rules:
        field = _list_field(rule)
        if field is not None:
            by_field[field].append(rule)
        elif rule.conditions and not _is_shape_only(rule):
            alone.append([rule])
    return ([shape_only] if shape_only else []) + list(by_field.values()) + alone


def _listed_values(batch: list[Rule]) -> Subquery:
    """(rule id, value) rows of a batch of text-list rules, each pair once.

    Values compare as :func:`territory_rules.conditions.condition_sql` compares
    them: upper case here, trimmed and upper case on the account's side.
    """
    pairs = sorted(
        {
            (rule.id, item.upper())
            for rule in batch
            for item in rule.conditions[0].value or []
        }
    )
    rows = [
        select(
            literal(rule_id, Integer).label("rule_id"),
            literal(value, String).label("value"),
        )
        for rule_id, value in pairs
    ]
    return union_all(*rows).subquery("listed")


def _join_listed(query: Select[Any], batch: list[Rule]) -> Select[Any]:
    """Accounts whose field equals one of the values a rule of the batch lists."""
    field = ConditionField(batch[0].conditions[0].field)
    column = ACCOUNTS.c[TEXT_LIST_FIELDS[field]]
    listed = _listed_values(batch)
    return query.join(listed, listed.c.rule_id == RULES.c.id).join(
        ACCOUNTS, func.upper(func.trim(column)) == listed.c.value
    )


def _join_matching(query: Select[Any], rule: Rule, dialect: str) -> Select[Any]:
    """Accounts meeting every condition of ``rule``.

    A batch of shape-only rules passes its first rule: all hold the same test.
    """
    predicates = [
        condition_sql(c.field, c.operator, c.value, ACCOUNTS, TERRITORIES, dialect)
        for c in rule.conditions
    ]
    return query.join(TERRITORIES, TERRITORIES.c.id == RULES.c.territory_id).join(
        ACCOUNTS, and_(*predicates)
    )


def _match_statement(batch: list[Rule], run_id: int, dialect: str) -> Insert:
    query = select(
        literal(run_id, Integer),
        ACCOUNTS.c.id,
        RULES.c.id,
        RULES.c.territory_id,
        RULES.c.precedence,
    ).select_from(RULES)

    if _list_field(batch[0]) is not None:
        query = _join_listed(query, batch)
    else:
        query = _join_matching(query, batch[0], dialect)
    # Written in account order, the index on (run, account) grows at its end
    # instead of everywhere at once, and resolving reads the rows in order.
    query = query.where(RULES.c.id.in_([rule.id for rule in batch])).order_by(
        ACCOUNTS.c.id
    )
    columns = ["run_id", "account_id", "rule_id", "territory_id", "precedence"]
    return insert(RULE_MATCHES).from_select(columns, query)


def match_statements(run_id: int, dialect: str) -> tuple[list[Insert], int]:
    """One ``INSERT .. SELECT`` per rule batch, and the number of active rules."""
    rules = active_rules()
    statements = [
        _match_statement(batch, run_id, dialect) for batch in rule_batches(rules)
    ]
    # The statements carry all they need. Left in the session, thousands of
    # rules would be expired again by every commit below, for nothing.
    for rule in rules:
        db.session.expunge(rule)
    return statements, len(rules)


def collect_matches(run_id: int, progress: ProgressCallback) -> int:
    """Write every (account, rule) match of this run; return the number of rules."""
    dialect = db.session.get_bind().dialect.name
    statements, rule_count = match_statements(run_id, dialect)
    for done, statement in enumerate(statements, start=1):
        db.session.execute(statement)
        db.session.commit()
        progress(
            5 + int(80 * done / max(len(statements), 1)),
            f"{done} of {len(statements)} rule groups matched",
        )
    return rule_count


def _winners(run_id: int) -> Subquery:
    """Per account: the territories that match at its top precedence, counted.

    A window gives every match its account's top precedence, so the matches
    are read once instead of being joined with their own aggregate. Matches
    at the top are then grouped per territory, and those per account.
    """
    matches = RULE_MATCHES
    ranked = (
        select(
            matches.c.account_id,
            matches.c.territory_id,
            matches.c.rule_id,
            matches.c.precedence,
            func.max(matches.c.precedence)
            .over(partition_by=matches.c.account_id)
            .label("top"),
        )
        .where(matches.c.run_id == run_id)
        .subquery("ranked")
    )
    at_top = (
        select(
            ranked.c.account_id,
            ranked.c.territory_id,
            ranked.c.precedence,
            func.min(ranked.c.rule_id).label("rule_id"),
        )
        .where(ranked.c.precedence == ranked.c.top)
        .group_by(ranked.c.account_id, ranked.c.precedence, ranked.c.territory_id)
        .subquery("at_top")
    )
    return (
        select(
            at_top.c.account_id,
            func.count().label("claimants"),
            func.min(at_top.c.territory_id).label("territory_id"),
            func.min(at_top.c.rule_id).label("rule_id"),
            at_top.c.precedence.label("top"),
        )
        .group_by(at_top.c.account_id, at_top.c.precedence)
        .subquery("winners")
    )


def resolve(run_id: int) -> None:
    """Replace every account's assignment with this run's outcome, in one statement."""
    accounts = ACCOUNTS
    # The matches were written moments ago; without fresh statistics the
    # planner takes millions of rows for a handful and picks nested loops.
    db.session.execute(text(f"ANALYZE {RuleMatch.__tablename__}"))
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
    db.session.execute(insert(ASSIGNMENTS).from_select(columns, query))
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
