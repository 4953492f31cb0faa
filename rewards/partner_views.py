"""Partner pages: My rewards (balances, standings, the ledger), one sale, the export.

Everything is kept to the signed-in user's organisation: a sale that earned
another organisation points answers 404, the same as one that does not exist.
"""

from __future__ import annotations

import logging
import re
from datetime import date
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from portal.auth import roles_required
from portal.models import Role, utc_now
from rewards import statements
from rewards.csv_safe import csv_text
from rewards.models import LedgerEntry
from rewards.statements import (
    SOURCE_LABELS,
    STATUS_LABELS,
    LedgerFilter,
    LedgerRow,
)
from territory_rules.views import page_number, wants_fragment

logger = logging.getLogger(__name__)

bp = Blueprint("my_rewards", __name__, url_prefix="/my/rewards")

# Ids are looked up as BIGINT at most, like the ids in page addresses.
MAX_ID_DIGITS = 18
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
FILTER_ARGS = ("program", "source", "status", "from", "to")

EXPORT_COLUMNS = [
    "entry id",
    "earned on",
    "program",
    "source",
    "reference",
    "points",
    "status",
    "paid in payout",
    "pricing text",
    "reason",
]


@bp.context_processor
def page_helpers() -> dict[str, Any]:
    return {
        "points": statements.format_points,
        "money": money,
        "long_date": long_date,
        "pricing": pricing,
        "source_label": source_label,
        "status_label": status_label,
        "claim_url": claim_url,
    }


def long_date(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


def currency() -> str:
    return str(current_app.config.get("CURRENCY_SYMBOL", "$"))


def money(amount: Any) -> str:
    return statements.format_money(amount, currency())


def pricing(entry: LedgerEntry) -> str:
    return statements.pricing_text(entry, currency())


def source_label(source: str) -> str:
    return SOURCE_LABELS.get(source, source)


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status)


def claim_url(claim_id: int) -> str:
    """The partner's page of one of its claims."""
    return url_for("my_claims.claim", claim_id=claim_id)


def organisation_id() -> int:
    """The signed-in partner's organisation; a partner without one sees nothing."""
    if current_user.organisation_id is None:
        abort(404)
    return int(current_user.organisation_id)


# Reading the filter ----------------------------------------------------------


def read_filter(args: MultiDict[str, str]) -> tuple[LedgerFilter, list[str]]:
    """The ledger filter from the query string, and what was wrong in it.

    A value that cannot be used is left out of the filter and explained, so the
    partner sees the ledger and the sentence saying what to correct.
    """
    problems: list[str] = []
    earned_from = _date_arg(args, "from", "From", problems)
    earned_to = _date_arg(args, "to", "To", problems)
    if earned_from and earned_to and earned_from > earned_to:
        problems.append(
            f"The “From” date ({long_date(earned_from)}) is after the “To” date "
            f"({long_date(earned_to)}), so no entry can match; swap the two dates."
        )

    chosen = LedgerFilter(
        program_id=_program_arg(args, problems),
        source=_choice_arg(args, "source", SOURCE_LABELS, problems),
        status=_choice_arg(args, "status", STATUS_LABELS, problems),
        earned_from=earned_from,
        earned_to=earned_to,
    )
    return chosen, problems


def _program_arg(args: MultiDict[str, str], problems: list[str]) -> int | None:
    text = (args.get("program") or "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_ID_DIGITS:
        problems.append("Choose a program from the list to filter by program.")
        return None
    return int(text)


def _choice_arg(
    args: MultiDict[str, str],
    name: str,
    choices: dict[str, str],
    problems: list[str],
) -> str | None:
    value = (args.get(name) or "").strip()
    if not value:
        return None
    if value not in choices:
        listed = ", ".join(label.lower() for label in choices.values())
        problems.append(f"Choose a {name} from the list: {listed}.")
        return None
    return value


def _date_arg(
    args: MultiDict[str, str], name: str, label: str, problems: list[str]
) -> date | None:
    text = (args.get(name) or "").strip()
    if not text:
        return None
    try:
        if not ISO_DATE.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        problems.append(
            f"“{text[:40]}” is not a date: write the “{label}” date as "
            "year-month-day, for example 2026-03-31."
        )
        return None


def filter_args(args: MultiDict[str, str]) -> dict[str, Any]:
    """The filter as given, for links that keep it (pages, the export)."""
    return {name: args[name] for name in FILTER_ARGS if args.get(name)}


# Pages -----------------------------------------------------------------------


@bp.route("")
@roles_required(Role.PARTNER)
def index() -> str:
    """Balances, the standing in each incentive program, and the ledger.

    htmx gets the ledger only: filters and pages swap it in place.
    """
    organisation = organisation_id()
    chosen, problems = read_filter(request.args)

    ledger = statements.ledger_page(organisation, chosen, page_number())

    kept = filter_args(request.args)
    context = {
        "ledger": ledger,
        "problems": problems,
        "page_link": {"endpoint": "my_rewards.index", **kept},
        "export_url": url_for("my_rewards.export_csv", **kept),
    }
    if wants_fragment():
        return render_template("rewards/partner/_ledger.html", **context)
    now = utc_now()
    return render_template(
        "rewards/partner/index.html",
        balances=statements.balances(organisation, now),
        standings=statements.program_standings(organisation, now.date()),
        programs=statements.ledger_programs(organisation),
        chosen=chosen,
        **context,
    )


@bp.route("/sales/<int:sales_line_id>")
@roles_required(Role.PARTNER)
def sale(sales_line_id: int) -> str:
    """A sale that earned the organisation points: what it was and what it earned."""
    statement = statements.sale_statement(organisation_id(), sales_line_id)
    if statement is None:
        abort(404)

    return render_template("rewards/partner/sale.html", statement=statement)


@bp.route("/export.csv")
@roles_required(Role.PARTNER)
def export_csv() -> Response:
    """The filtered ledger, every page, as CSV that spreadsheets open safely."""
    organisation = organisation_id()
    chosen, problems = read_filter(request.args)
    if problems:
        abort(400, " ".join(problems))

    rows = statements.ledger_rows(organisation, chosen)
    logger.info(
        "%s exported %d ledger entries of organisation %s",
        current_user.email,
        len(rows),
        organisation,
    )

    body = csv_text(EXPORT_COLUMNS, (export_row(row) for row in rows))
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=my-rewards.csv"},
    )


def export_row(row: LedgerRow) -> list[Any]:
    """One CSV line: numbers stay numbers, texts are made safe by csv_text."""
    entry = row.entry
    return [
        entry.id,
        entry.earned_on,
        entry.program.name if entry.program else "",
        source_label(entry.source),
        row.reference,
        entry.points,
        row.status,
        entry.payout_id,
        pricing(entry),
        entry.reason or "",
    ]
