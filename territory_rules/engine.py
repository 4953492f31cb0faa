"""The assignment engine: every account ends in exactly one territory, or is listed.

Rules are evaluated by precedence level, highest first. Within a level each rule
becomes one ``INSERT .. SELECT`` of the accounts it matches into
``rule_matches``; rules that test only the territory's shape share one statement,
a spatial join, and rules made of one text-list test share one scan per field.
A lower level skips the accounts a higher one matched, so ``rule_matches`` ends
with each account's top-precedence matches only. Resolution is then one
grouping: one territory there is an assignment, several are a conflict, none is
a gap. No account row is ever loaded into Python, so memory does not grow with
the data.

Rules spread over many distinct precedences cost one statement per level and
batch: batches only share a statement within a level.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

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
from sqlalchemy.sql.selectable import Exists

from portal.extensions import db
from territory_rules.conditions import (
    TEXT_LIST_FIELDS,
    comparable_text,
    comparable_value,
    condition_sql,
)
from territory_rules.history import record_placements
from territory_rules.models import (
    Account,
    Assignment,
    AssignmentStatus,
    ConditionField,
    Rule,
    RuleMatch,
    Territory,
    table_of,
)

logger = logging.getLogger(__name__)


# The models' tables as tables: ``__table__`` is declared a mere FromClause.
ACCOUNTS = table_of(Account)
TERRITORIES = table_of(Territory)
RULES = table_of(Rule)
RULE_MATCHES = table_of(RuleMatch)
ASSIGNMENTS = table_of(Assignment)

ProgressCallback = Callable[[int, str], None]

# Memory for each hash or sort of a run's statements on PostgreSQL (see below).
RUN_WORK_MEM = "64MB"


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

    Values are normalised as :func:`territory_rules.conditions.comparable_text`
    normalises the account's side, so both compare alike.
    """
    pairs = sorted(
        {
            (rule.id, comparable_value(item))
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
        ACCOUNTS, comparable_text(column) == listed.c.value
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


def precedence_levels(rules: Sequence[Rule]) -> list[tuple[int, list[list[Rule]]]]:
    """The rule batches of each precedence, highest precedence first."""
    by_precedence: dict[int, list[Rule]] = defaultdict(list)
    for rule in rules:
        by_precedence[rule.precedence].append(rule)
    return [
        (precedence, rule_batches(by_precedence[precedence]))
        for precedence in sorted(by_precedence, reverse=True)
    ]


def _matched_above(run_id: int, precedence: int) -> Exists:
    """This run already matched the account at a higher precedence."""
    matches = RULE_MATCHES
    return (
        select(matches.c.account_id)
        .where(
            matches.c.run_id == run_id,
            matches.c.account_id == ACCOUNTS.c.id,
            matches.c.precedence > precedence,
        )
        .exists()
    )


def _match_statement(
    batch: list[Rule], run_id: int, dialect: str, pruned: bool
) -> Insert:
    """The batch's matches; with ``pruned``, only of accounts no higher level took.

    Pruning is what keeps a low catch-all rule (a state list under the shapes)
    from writing a match for nearly every account only to lose it.
    """
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
    query = query.where(RULES.c.id.in_([rule.id for rule in batch]))
    if pruned:
        query = query.where(~_matched_above(run_id, batch[0].precedence))
    # Written in account order, the primary key (run, account, rule) grows at
    # its end instead of everywhere at once.
    query = query.order_by(ACCOUNTS.c.id)
    columns = ["run_id", "account_id", "rule_id", "territory_id", "precedence"]
    return insert(RULE_MATCHES).from_select(columns, query)


def match_statements(run_id: int, dialect: str) -> tuple[list[list[Insert]], int]:
    """Per precedence level, highest first, one ``INSERT .. SELECT`` per rule batch.

    Returns the levels' statements and the number of active rules. Every level
    below the first skips the accounts that a level above it matched.
    """
    rules = active_rules()
    levels = [
        [
            _match_statement(batch, run_id, dialect, pruned=index > 0)
            for batch in batches
        ]
        for index, (_, batches) in enumerate(precedence_levels(rules))
    ]
    # The statements carry all they need. Left in the session, thousands of
    # rules would be expired again by every commit below, for nothing.
    for rule in rules:
        db.session.expunge(rule)
    return levels, len(rules)


def _allow_memory_for_hashes(dialect: str) -> None:
    """Let this transaction hash a million matches in memory on PostgreSQL.

    With the default ``work_mem`` (4 MB) the anti-join of a lower level and the
    grouping of the resolution spill to temporary files in many batches.
    ``SET LOCAL`` ends with the transaction, so the pages keep the default.
    """
    if dialect == "postgresql":
        db.session.execute(text(f"SET LOCAL work_mem = '{RUN_WORK_MEM}'"))


def _analyze_matches() -> None:
    # The matches were written moments ago; without fresh statistics the
    # planner takes millions of rows for a handful and picks nested loops.
    db.session.execute(text(f"ANALYZE {RuleMatch.__tablename__}"))


def collect_matches(run_id: int, progress: ProgressCallback) -> int:
    """Write each account's top-precedence matches in this run; return the rules."""
    dialect = db.session.get_bind().dialect.name
    levels, rule_count = match_statements(run_id, dialect)
    total = sum(len(statements) for statements in levels) or 1
    done = 0
    for index, statements in enumerate(levels):
        if index > 0:
            _analyze_matches()
        for statement in statements:
            _allow_memory_for_hashes(dialect)
            db.session.execute(statement)
            db.session.commit()
            done += 1
            progress(
                5 + int(80 * done / total), f"{done} of {total} rule groups matched"
            )
    return rule_count


def _winners(run_id: int) -> Subquery:
    """Per account: how many territories claim it, the lowest of them and its rule.

    Every match left by :func:`collect_matches` is at its account's top
    precedence, so one grouping decides: one territory is an assignment (by
    its lowest rule id), several are a conflict.
    """
    matches = RULE_MATCHES
    return (
        select(
            matches.c.account_id,
            func.count(func.distinct(matches.c.territory_id)).label("claimants"),
            func.min(matches.c.territory_id).label("territory_id"),
            func.min(matches.c.rule_id).label("rule_id"),
            func.max(matches.c.precedence).label("top"),
        )
        .where(matches.c.run_id == run_id)
        .group_by(matches.c.account_id)
        .subquery("winners")
    )


def _clear_assignments(dialect: str) -> None:
    """Empty the assignments inside the run's transaction.

    PostgreSQL truncates transactionally, without writing a million dead rows;
    its lock makes readers of the pages wait for the commit, a few seconds,
    instead of seeing the previous run. SQLite's plain DELETE of a whole table
    is its own truncate.
    """
    if dialect == "postgresql":
        db.session.execute(text(f"TRUNCATE {Assignment.__tablename__}"))
    else:
        db.session.execute(delete(Assignment))


@contextmanager
def _indexes_rebuilt_after(table: Table) -> Iterator[None]:
    """Drop the table's secondary indexes for a bulk write, then build them again.

    Building an index over a million rows once is cheaper than updating it a
    million times. Both databases do this inside the run's transaction, so a
    failed run leaves the indexes as they were.
    """
    connection = db.session.connection()
    for index in table.indexes:
        index.drop(connection)
    yield
    for index in table.indexes:
        index.create(connection)


def resolve(run_id: int) -> None:
    """Replace every account's assignment with this run's outcome, in one insert."""
    accounts = ACCOUNTS
    _analyze_matches()
    winners = _winners(run_id)
    single = winners.c.claimants == 1
    status = case(
        (winners.c.claimants.is_(None), AssignmentStatus.GAP.value),
        (single, AssignmentStatus.ASSIGNED.value),
        else_=AssignmentStatus.CONFLICT.value,
    )
    query = (
        select(
            accounts.c.id,
            status,
            case((single, winners.c.territory_id)),
            case((single, winners.c.rule_id)),
            winners.c.top,
            func.coalesce(winners.c.claimants, 0),
            literal(run_id, Integer),
        )
        .select_from(accounts.outerjoin(winners, winners.c.account_id == accounts.c.id))
        .order_by(accounts.c.id)
    )
    columns = [
        "account_id",
        "status",
        "territory_id",
        "rule_id",
        "top_precedence",
        "claimants",
        "run_id",
    ]
    dialect = db.session.get_bind().dialect.name
    _allow_memory_for_hashes(dialect)
    _clear_assignments(dialect)
    with _indexes_rebuilt_after(ASSIGNMENTS):
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
    record_placements(run_id)
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
