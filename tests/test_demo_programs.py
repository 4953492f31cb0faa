"""The demo's programs: who is in each and at which tier, checked against an
independent computation from the demo files and the demo plan."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cache

from flask import Flask
from sqlalchemy import select

from portal.extensions import db
from portal.models import PartnerOrganisation
from portal.runs import Run
from programs.models import Eligibility, Program, Standing
from tests.test_demo import DATA_DIR, expected_assignments

CENT = Decimal("0.01")
PLAN = json.loads((DATA_DIR / "demo_plan.json").read_text())


@cache
def territory_sales() -> list[tuple[str, date, Decimal]]:
    """(territory, order date, amount) of every demo sales line in a territory."""
    where = expected_assignments()
    lines = []
    with (DATA_DIR / "sample_superstore.csv").open(
        encoding="utf-8-sig", newline=""
    ) as f:
        for row in csv.DictReader(f):
            code = row["Postal Code"].zfill(5) if row["Postal Code"] else ""
            key = (row["Customer ID"], code or f"{row['City']}|{row['State']}")
            expected = where[key]
            if expected.status == "assigned":
                ordered = datetime.strptime(row["Order Date"], "%m/%d/%Y").date()
                lines.append((expected.territory, ordered, Decimal(row["Sales"])))
    return lines


def potentials() -> dict[str, Decimal]:
    """Each territory's sales in the year up to the latest sale in the file."""
    latest = max(ordered for _t, ordered, _a in territory_sales())
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for territory, ordered, amount in territory_sales():
        if ordered > latest - timedelta(days=365):
            totals[territory] += amount
    return totals


def partners() -> dict[str, dict]:
    """Partner name -> its territory, region and type, from the plan."""
    return {
        spec["partner"]: {**spec, "region": region}
        for region, specs in PLAN["regions"].items()
        for spec in specs
    }


def in_range(value: Decimal, raw: str) -> bool:
    low, _, high = raw.partition("..")
    return (not low or value >= Decimal(low)) and (not high or value <= Decimal(high))


def condition_holds(partner: dict, field: str, _operator: str, raw: str) -> bool:
    listed = {item.strip().lower() for item in raw.split(",")}
    if field == "partner_type":
        return partner["partner_type"] in listed
    if field == "region":
        return partner["region"].lower() in listed
    if field == "territory_potential":
        return in_range(potentials()[partner["territory"]], raw)
    raise AssertionError(f"the demo plan uses a field this test cannot check: {field}")


def expected_members(spec: dict) -> set[str]:
    return {
        name
        for name, partner in partners().items()
        if any(
            all(
                condition_holds(partner, *condition) for condition in rule["conditions"]
            )
            for rule in spec["rules"]
        )
    }


def test_the_programs_run_after_the_demo_succeeded(demo_app: Flask):
    with demo_app.app_context():
        run = db.session.scalars(
            select(Run).where(Run.kind == "program_eligibility").order_by(Run.id)
        ).first()
        assert run is not None
        assert run.status == "succeeded", run.error


def test_each_demo_program_targets_whom_its_rules_say(demo_app: Flask):
    with demo_app.app_context():
        stored = defaultdict(set)
        rows = db.session.execute(
            select(Program.name, PartnerOrganisation.name)
            .join(Eligibility, Eligibility.program_id == Program.id)
            .join(
                PartnerOrganisation,
                PartnerOrganisation.id == Eligibility.organisation_id,
            )
        ).all()
        for program, partner in rows:
            stored[program].add(partner)

    for spec in PLAN["programs"]:
        assert stored[spec["name"]] == expected_members(spec), spec["name"]
    # The point of the demo: different territories get different programs.
    assert stored["Growth"] and stored["Foundation"]
    assert not stored["Growth"] & stored["Foundation"]
    assert stored["Partner onboarding"] == set(partners())


def test_demo_tiers_follow_the_sales_in_the_program_period(demo_app: Flask):
    starts = date.fromisoformat(PLAN["program_period"]["starts_on"])
    ends = date.fromisoformat(PLAN["program_period"]["ends_on"])
    sales: dict[str, Decimal] = defaultdict(Decimal)
    for territory, ordered, amount in territory_sales():
        if starts <= ordered <= ends:
            sales[territory] += amount

    with demo_app.app_context():
        rows = db.session.execute(
            select(Program.name, PartnerOrganisation.name, Standing)
            .join(Standing, Standing.program_id == Program.id)
            .join(
                PartnerOrganisation,
                PartnerOrganisation.id == Standing.organisation_id,
            )
        ).all()
        stored = {
            (program, partner): (
                standing.kpi_value,
                standing.tier.name if standing.tier else None,
            )
            for program, partner, standing in rows
        }

    expected = {}
    for spec in PLAN["programs"]:
        if spec["kind"] != "incentive":
            continue
        for partner in expected_members(spec):
            value = sales[partners()[partner]["territory"]]
            reached = [
                t["name"] for t in spec["tiers"] if value >= Decimal(t["threshold"])
            ]
            expected[(spec["name"], partner)] = (
                value.quantize(CENT, ROUND_HALF_UP),
                reached[-1] if reached else None,
            )
    assert {
        key: (Decimal(value).quantize(CENT, ROUND_HALF_UP), tier)
        for key, (value, tier) in stored.items()
    } == expected
    tiers_reached = {tier for _value, tier in expected.values()}
    assert len(tiers_reached) >= 3, "the demo should show partners on different tiers"
