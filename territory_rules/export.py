"""Every account's assignment as CSV, streamed without holding all rows."""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from typing import TextIO

from sqlalchemy import select

from portal.extensions import db
from portal.models import PartnerOrganisation
from territory_rules.models import Account, Assignment, Rule, Territory

EXPORT_COLUMNS = ["account_id", "postal_code", "territory", "partner", "rule", "status"]
NOT_YET_COMPUTED = "pending"


def assignment_rows(batch_size: int = 2000) -> Iterator[list[str]]:
    """One row per account, in account order; ``pending`` before the first run."""
    query = (
        select(
            Account.id,
            Account.postal_code,
            Territory.name,
            PartnerOrganisation.name,
            Rule.name,
            Assignment.status,
        )
        .select_from(Account)
        .outerjoin(Assignment, Assignment.account_id == Account.id)
        .outerjoin(Territory, Territory.id == Assignment.territory_id)
        .outerjoin(PartnerOrganisation, PartnerOrganisation.id == Territory.partner_id)
        .outerjoin(Rule, Rule.id == Assignment.rule_id)
        .order_by(Account.id)
        .execution_options(yield_per=batch_size)
    )
    for row in db.session.execute(query):
        account_id, postal_code, territory, partner, rule, status = row
        yield [
            str(account_id),
            postal_code or "",
            territory or "",
            partner or "",
            rule or "",
            status or NOT_YET_COMPUTED,
        ]


def spreadsheet_safe(value: str) -> str:
    """Keep a spreadsheet from reading a cell as a formula."""
    if value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def write_assignments_csv(stream: TextIO) -> int:
    writer = csv.writer(stream, lineterminator="\n")
    rows = assignment_rows()
    first = next(rows, None)  # runs the query before anything is written
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for row in itertools.chain([first] if first is not None else [], rows):
        writer.writerow([spreadsheet_safe(cell) for cell in row])
        count += 1
    return count


def iter_assignments_csv() -> Iterator[str]:
    """The same file, chunk by chunk, for a streamed HTTP response."""
    yield ",".join(EXPORT_COLUMNS) + "\n"
    buffer: list[str] = []
    for row in assignment_rows():
        buffer.append(",".join(_csv_cell(spreadsheet_safe(cell)) for cell in row))
        if len(buffer) >= 1000:
            yield "\n".join(buffer) + "\n"
            buffer = []
    if buffer:
        yield "\n".join(buffer) + "\n"


def _csv_cell(value: str) -> str:
    if any(ch in value for ch in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value
