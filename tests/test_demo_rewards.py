"""The demo's points and tiers, checked against an independent computation from the
Superstore file, the demo plan and the engine-independent territory computation."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import cache

from flask import Flask
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import PartnerOrganisation
from portal.runs import Run
from programs.models import Program
from rewards.models import LedgerEntry
from territory_rules.models import SalesLine
from tests.test_demo import DATA_DIR, expected_assignments
from tests.test_demo_programs import PLAN, expected_members, partners

CENT = Decimal("0.01")


@cache
def demo_lines() -> list[dict]:
    """Every demo sales line in a territory: its territory, date, amount, and so on."""
    where = expected_assignments()
    lines = []
    with (DATA_DIR / "sample_superstore.csv").open(
        encoding="utf-8-sig", newline=""
    ) as f:
        for row in csv.DictReader(f):
            code = row["Postal Code"].zfill(5) if row["Postal Code"] else ""
            key = (row["Customer ID"], code or f"{row['City']}|{row['State']}")
            if where[key].status != "assigned":
                continue
            lines.append(
                {
                    "line": row["Row ID"],
                    "territory": where[key].territory,
                    "date": datetime.strptime(row["Order Date"], "%m/%d/%Y").date(),
                    "amount": Decimal(row["Sales"]),
                    "category": row["Category"],
                    "segment": row["Segment"],
                }
            )
    return lines


def tier_reached(spec: dict, sales: Decimal) -> dict | None:
    reached = [t for t in spec["tiers"] if sales >= Decimal(t["threshold"])]
    return reached[-1] if reached else None


def expected_points(recorded_order: dict[str, int]) -> dict[tuple[str, str], Decimal]:
    """(program, partner) -> points, priced the way the demo plan says."""
    starts = date.fromisoformat(PLAN["program_period"]["starts_on"])
    ends = date.fromisoformat(PLAN["program_period"]["ends_on"])
    territory_of = {name: p["territory"] for name, p in partners().items()}
    lines = [line for line in demo_lines() if starts <= line["date"] <= ends]
    expected: dict[tuple[str, str], Decimal] = {}

    for spec in PLAN["programs"]:
        if "reward_plan" not in spec:
            continue
        plan = spec["reward_plan"]
        rate = Decimal(plan["points_per_unit"])
        multipliers = {
            (rule["dimension"], rule["match"].upper()): Decimal(rule["multiplier"])
            for rule in spec.get("reward_rules", [])
        }
        for partner in expected_members(spec):
            own = [line for line in lines if line["territory"] == territory_of[partner]]
            tier = tier_reached(spec, sum((line["amount"] for line in own), Decimal(0)))
            tier_multiplier = Decimal((tier or {}).get("multiplier") or 1)
            points = [
                (
                    line,
                    (
                        line["amount"]
                        * rate
                        * multipliers.get(("category", line["category"].upper()), 1)
                        * multipliers.get(("segment", line["segment"].upper()), 1)
                        * tier_multiplier
                    ).quantize(CENT, ROUND_HALF_UP),
                )
                for line in own
            ]
            total = capped_total(points, plan, recorded_order)
            bonuses = [
                Decimal(t["bonus"])
                for t in spec["tiers"][: spec["tiers"].index(tier) + 1]
                if tier and t.get("bonus")
            ]
            expected[(spec["name"], partner)] = total + sum(bonuses, Decimal(0))
    return expected


def capped_total(
    points: list[tuple[dict, Decimal]], plan: dict, recorded_order: dict[str, int]
) -> Decimal:
    """Sum of points, each month stopping at the plan's cap (in recorded order)."""
    if not plan.get("cap_points"):
        return sum((value for _line, value in points), Decimal(0))
    cap = Decimal(plan["cap_points"])
    assert plan["cap_period"] == "month", "this test knows monthly caps only"
    used: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    total = Decimal(0)
    ordered = sorted(
        points, key=lambda item: (item[0]["date"], recorded_order[item[0]["line"]])
    )
    for line, value in ordered:
        month = (line["date"].year, line["date"].month)
        earned = max(min(value, cap - used[month]), Decimal(0))
        used[month] += value
        total += earned
    return total


def test_the_rewards_run_after_the_demo_succeeded(demo_app: Flask):
    with demo_app.app_context():
        run = db.session.scalars(
            select(Run).where(Run.kind == "rewards").order_by(Run.id)
        ).first()
        assert run is not None
        assert run.status == "succeeded", run.error
        assert run.counts["entries_written"] > 1000


def test_demo_points_agree_with_an_independent_computation(demo_app: Flask):
    with demo_app.app_context():
        recorded_order = dict(
            db.session.execute(select(SalesLine.external_line_id, SalesLine.id)).all()
        )
        rows = db.session.execute(
            select(Program.name, PartnerOrganisation.name, func.sum(LedgerEntry.points))
            .join(Program, Program.id == LedgerEntry.program_id)
            .join(
                PartnerOrganisation,
                PartnerOrganisation.id == LedgerEntry.organisation_id,
            )
            .group_by(Program.name, PartnerOrganisation.name)
        ).all()
    stored = {
        (program, partner): Decimal(str(total)).quantize(CENT)
        for program, partner, total in rows
    }

    expected = expected_points(recorded_order)

    assert stored == expected
    # Partners earn different amounts; the cap and the tiers both show.
    assert len(set(expected.values())) == len(expected)
