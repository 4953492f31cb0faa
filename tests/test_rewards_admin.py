"""Admins set reward plans and multipliers, approve points early, adjust them
by hand and pay them out in batches."""

from __future__ import annotations

import csv
import functools
import io
import itertools
import re
from datetime import date
from decimal import Decimal
from html import unescape
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from portal.extensions import db
from portal.models import Role, utc_now
from portal.runs import Run
from programs.models import Eligibility, Program
from rewards import payouts
from rewards.csv_safe import csv_text, safe_cell
from rewards.jobs import REWARDS_KIND
from rewards.models import LedgerEntry, Payout, RewardPlan, RewardRule
from tests.conftest import AuthActions
from tests.factories import (
    make_account,
    make_org,
    make_region,
    make_territory,
    make_user,
)
from tests.program_factories import add_program_rule, add_sale, make_program

ADMIN = "admin@example.test"
MANAGER = "manager@example.test"
PARTNER = "partner@example.test"

_keys = itertools.count(1)


@pytest.fixture(autouse=True)
def quick_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Full-strength hashing costs a fifth of a second per user; keep tests quick."""
    quick = functools.partial(generate_password_hash, method="pbkdf2:sha256:1000")
    monkeypatch.setattr("portal.models.generate_password_hash", quick)


@pytest.fixture(autouse=True)
def rewards_requests(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool]]:
    """Record the rewards runs asked for instead of running them: the entries
    these tests insert by hand would be priced again."""
    requested: list[tuple[int, bool]] = []

    def record(started_by: Any = None, full: bool = False) -> None:
        requested.append((started_by.id, full))

    monkeypatch.setattr("rewards.jobs.request_rewards_run", record)
    return requested


@pytest.fixture
def world(clean_app: Flask) -> SimpleNamespace:
    """Three partners, a territory, an incentive and a training program, people."""
    west = make_region("West")
    acme = make_org("Acme Resellers")
    bolt = make_org("Bolt Distribution")
    cirrus = make_org("Cirrus Office")
    pacific = make_territory(west, "Pacific", partner=acme)
    incentive = make_program("Growth", kind="incentive", kpi="sales_sum")
    training = make_program("Basics", kind="training")
    admin = make_user(Role.ADMIN, email=ADMIN)
    make_user(Role.MANAGER, email=MANAGER)
    make_user(Role.PARTNER, acme, email=PARTNER)
    db.session.commit()
    return SimpleNamespace(
        acme=acme.id,
        bolt=bolt.id,
        cirrus=cirrus.id,
        pacific=pacific.id,
        incentive=incentive.id,
        training=training.id,
        admin=admin.id,
    )


@pytest.fixture
def admin(world: SimpleNamespace, auth: AuthActions) -> AuthActions:
    auth.sign_in(ADMIN)
    return auth


def entry(
    organisation_id: int,
    points: str | int,
    status: str = "pending",
    program_id: int | None = None,
    payout_id: int | None = None,
    reason: str | None = None,
) -> int:
    number = next(_keys)
    row = LedgerEntry(
        key=f"sale:{number}#1",
        source_key=f"sale:{number}",
        organisation_id=organisation_id,
        program_id=program_id,
        source="sale",
        points=Decimal(str(points)),
        earned_on=date(2026, 3, 1),
        status=status,
        payout_id=payout_id,
        reason=reason,
    )
    db.session.add(row)
    db.session.commit()
    return row.id


def fresh(entry_id: int) -> LedgerEntry:
    db.session.expire_all()
    found = db.session.get(LedgerEntry, entry_id)
    assert found is not None
    return found


def input_value(html: str, name: str) -> str | None:
    """The value of the first input named ``name`` on the page."""
    tag = re.search(rf'<input[^>]*\bname="{name}"[^>]*>', html)
    value = re.search(r'\bvalue="([^"]*)"', tag.group()) if tag else None
    return value.group(1) if value else None


def count(model: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


# Overview and recompute --------------------------------------------------------


def test_balances_split_points_by_status_per_organisation(
    world: SimpleNamespace,
) -> None:
    earlier = Payout(entries=1, points=Decimal(40))
    db.session.add(earlier)
    db.session.commit()
    entry(world.acme, "100.50")
    entry(world.acme, 20)
    entry(world.acme, 300, "approved")
    entry(world.acme, -25, "approved")
    entry(world.acme, 40, "paid", payout_id=earlier.id)
    entry(world.bolt, 7, "approved")

    rows = {row.name: row for row in payouts.balances()}

    assert rows["Acme Resellers"].pending == Decimal("120.50")
    assert rows["Acme Resellers"].available == Decimal("275.00")
    assert rows["Acme Resellers"].available_entries == 2
    assert rows["Acme Resellers"].paid == Decimal("40.00")
    assert rows["Bolt Distribution"].available == Decimal("7.00")
    assert rows["Cirrus Office"].pending == rows["Cirrus Office"].paid == 0
    payable = [row.name for row in payouts.balances(only_payable=True)]
    assert payable == ["Acme Resellers", "Bolt Distribution"]


def test_overview_shows_totals_and_links_to_each_incentive_plan(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    entry(world.acme, "1234.5")
    entry(world.bolt, 1000, "approved")

    page = client.get("/admin/rewards/")

    assert page.status_code == 200
    assert "1,234.50" in page.text
    assert "1,000" in page.text
    assert f"/admin/rewards/programs/{world.incentive}" in page.text
    assert f"/admin/rewards/programs/{world.training}" not in page.text
    assert "No plan yet" in page.text
    assert "No rewards run has been started yet." in page.text


def test_recompute_starts_a_rewards_run_shown_on_the_overview(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    response = client.post("/admin/rewards/recompute", follow_redirects=True)

    run = db.session.scalars(select(Run).where(Run.kind == REWARDS_KIND)).one()
    assert run.started_by_id == world.admin
    assert run.task == "rewards.jobs.recompute_rewards_full"
    assert f"Rewards run {run.id}" in response.text
    assert f"/territories/runs/{run.id}" in response.text
    runs_page = client.get("/territories/runs")
    assert f"/territories/runs/{run.id}" in runs_page.text


# Reward plans ------------------------------------------------------------------


def plan_form(rules: list[tuple[str, str, str, str]] | None = None, **changes: str):
    form: dict[str, Any] = {
        "points_per_unit": "2",
        "approval_days": "14",
        "expiry_days": "365",
        "cap_points": "",
        "cap_period": "month",
    }
    form.update(changes)
    rows = rules or []
    form["rule_name"] = [row[0] for row in rows]
    form["dimension"] = [row[1] for row in rows]
    form["match_value"] = [row[2] for row in rows]
    form["multiplier"] = [row[3] for row in rows]
    return form


def test_a_new_plan_shows_the_defaults(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    page = client.get(f"/admin/rewards/programs/{world.incentive}")

    assert page.status_code == 200
    assert input_value(page.text, "points_per_unit") == "1"
    assert input_value(page.text, "approval_days") == "30"
    assert input_value(page.text, "expiry_days") == "365"
    assert input_value(page.text, "cap_points") == ""
    assert '<option value="Pacific">' in page.text


def test_saving_a_plan_stores_it_and_requests_a_full_run(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    rewards_requests: list[tuple[int, bool]],
) -> None:
    form = plan_form(
        [
            ("Technology boost", "category", " Technology ", "1.5"),
            ("", "category", "", ""),
            ("Pacific push", "territory", "pacific", "2"),
        ],
        points_per_unit="0.5",
        expiry_days="",
        cap_points="10000",
        cap_period="quarter",
    )

    response = client.post(f"/admin/rewards/programs/{world.incentive}", data=form)

    assert response.status_code == 302
    plan = db.session.get(RewardPlan, world.incentive)
    assert plan is not None
    assert plan.points_per_unit == Decimal("0.5")
    assert plan.approval_days == 14
    assert plan.expiry_days is None
    assert plan.cap_points == Decimal(10000)
    assert plan.cap_period == "quarter"
    rules = {r.dimension: r for r in db.session.scalars(select(RewardRule))}
    assert set(rules) == {"category", "territory"}
    assert rules["category"].match_value == "Technology"
    assert rules["category"].multiplier == Decimal("1.5")
    assert rules["territory"].match_value == str(world.pacific)
    assert rewards_requests == [(world.admin, True)]


def test_a_rule_matching_no_data_is_saved_with_a_warning(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    rewards_requests: list[tuple[int, bool]],
) -> None:
    shop = make_account("Shop", segment="Corporate")
    for category in ("Technology", "Furniture", " Technology "):
        add_sale(shop, date(2026, 3, 1), 10, category=category)
    db.session.commit()
    form = plan_form(
        [
            ("Tech", "category", "tech", "1.5"),
            ("Technology", "category", "TECHNOLOGY", "1.2"),
            ("Consumers", "segment", "Consumer", "2"),
        ]
    )

    response = client.post(
        f"/admin/rewards/programs/{world.incentive}", data=form, follow_redirects=True
    )
    text = unescape(response.text)

    assert count(RewardRule) == 3
    assert (
        "Rule “Tech”: no sale has the category “tech”, so it multiplies nothing yet; "
        "check the spelling. The data has: “Furniture”, “Technology”."
    ) in text
    assert "Rule “Consumers”: no sale has the customer segment “Consumer”" in text
    assert "The data has: “Corporate”." in text
    assert "Rule “Technology”" not in text


def test_saving_again_replaces_the_rules_and_keeps_unchanged_ones(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    rewards_requests: list[tuple[int, bool]],
) -> None:
    url = f"/admin/rewards/programs/{world.incentive}"
    client.post(
        url,
        data=plan_form(
            [
                ("Tech", "category", "Technology", "1.5"),
                ("Consumers", "segment", "Consumer", "1.2"),
            ]
        ),
    )
    tech_id = db.session.scalar(
        select(RewardRule.id).where(RewardRule.dimension == "category")
    )

    client.post(
        url,
        data=plan_form(
            [
                ("Tech, more", "category", "technology", "3"),
                ("West coast", "territory", "Pacific", "1.1"),
            ]
        ),
    )

    db.session.expire_all()
    rules = db.session.scalars(select(RewardRule).order_by(RewardRule.id)).all()
    assert [(r.dimension, r.match_value, r.multiplier) for r in rules] == [
        ("category", "technology", Decimal(3)),
        ("territory", str(world.pacific), Decimal("1.1")),
    ]
    assert rules[0].id == tech_id
    assert rules[0].name == "Tech, more"
    assert len(rewards_requests) == 2
    page = client.get(url)
    assert 'value="Pacific"' in page.text


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("points_per_unit", "0", "Enter a number above zero."),
        ("points_per_unit", "-1", "Enter a number above zero."),
        ("points_per_unit", "", "Enter the points earned per unit of sales"),
        ("points_per_unit", "lots", "is not a number"),
        ("points_per_unit", "1,5", "for example 1.5, not 1,5"),
        ("points_per_unit", "0.00001", "Use at most 4 decimal places."),
        ("points_per_unit", "9" * 40, "Enter a number of at most"),
        ("approval_days", "-1", "from 0 to 365"),
        ("approval_days", "366", "from 0 to 365"),
        ("approval_days", "", "from 0 to 365"),
        ("approval_days", "7.5", "from 0 to 365"),
        ("expiry_days", "0", "from 1 to 3,650"),
        ("expiry_days", "3651", "Leave it empty if points never expire."),
        ("cap_points", "0", "Enter a number above zero."),
        ("cap_points", "-100", "Enter a number above zero."),
        ("cap_points", "10.005", "Use at most 2 decimal places."),
        ("cap_points", "1.000,00", "not 1,5"),
        ("cap_period", "week", "Choose month, quarter or program"),
    ],
)
def test_bad_plan_values_are_refused_beside_their_field(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    rewards_requests: list[tuple[int, bool]],
    field: str,
    value: str,
    message: str,
) -> None:
    form = plan_form([("Tech", "category", "Technology", "1.5")], **{field: value})

    response = client.post(f"/admin/rewards/programs/{world.incentive}", data=form)

    assert response.status_code == 400
    assert message in unescape(response.text)
    assert 'class="field-error"' in response.text
    assert db.session.get(RewardPlan, world.incentive) is None
    assert count(RewardRule) == 0
    assert rewards_requests == []


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (("Tech", "category", "Technology", "0"), "Enter a number above zero."),
        (("Tech", "category", "Technology", "-2"), "Enter a number above zero."),
        (("Tech", "category", "Technology", "100.5"), "at most 100"),
        (("Tech", "category", "Technology", "1,5"), "for example 1.5, not 1,5"),
        (("Tech", "category", "Technology", "1.23456"), "at most 4 decimal places"),
        (("Tech", "category", "Technology", ""), "Enter the multiplier"),
        (("", "category", "Technology", "2"), "Name the rule"),
        (("Tech", "colour", "Blue", "2"), "Choose category, segment or territory."),
        (("Tech", "segment", "", "2"), "Enter the segment this multiplier"),
        (("Tech", "category", "x" * 201, "2"), "at most 200 characters"),
        (("Tech", "category", "Tech\x00", "2"), "control characters"),
        (("Far away", "territory", "Atlantis", "2"), "no territory named 'Atlantis'"),
    ],
)
def test_bad_rule_rows_are_refused_and_nothing_is_saved(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    row: tuple[str, str, str, str],
    message: str,
) -> None:
    good = ("Consumers", "segment", "Consumer", "1.2")

    response = client.post(
        f"/admin/rewards/programs/{world.incentive}", data=plan_form([good, row])
    )

    assert response.status_code == 400
    assert message in unescape(response.text)
    assert db.session.get(RewardPlan, world.incentive) is None
    assert count(RewardRule) == 0
    # The rows come back as typed, so nothing has to be entered again.
    assert 'value="Consumer"' in response.text


def test_two_rules_for_one_value_are_refused(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    rows = [
        ("Tech", "category", "Technology", "1.5"),
        ("Tech again", "category", " technology", "2"),
        ("Pacific", "territory", "Pacific", "2"),
        ("Pacific too", "territory", "pacific", "3"),
    ]

    response = client.post(
        f"/admin/rewards/programs/{world.incentive}", data=plan_form(rows)
    )

    assert response.status_code == 400
    page = unescape(response.text)
    assert "Rule 'Tech' already sets a multiplier for this category" in page
    assert "Rule 'Pacific' already sets a multiplier for this territory" in page
    assert count(RewardRule) == 0


def test_the_same_value_in_two_dimensions_is_allowed(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    rows = [("A", "category", "Corporate", "1.5"), ("B", "segment", "Corporate", "2")]

    response = client.post(
        f"/admin/rewards/programs/{world.incentive}", data=plan_form(rows)
    )

    assert response.status_code == 302
    assert count(RewardRule) == 2


def test_only_incentive_programs_have_a_plan(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    assert client.get(f"/admin/rewards/programs/{world.training}").status_code == 404
    assert client.get("/admin/rewards/programs/999999").status_code == 404
    posted = client.post(f"/admin/rewards/programs/{world.training}", data=plan_form())
    assert posted.status_code == 404
    assert db.session.get(RewardPlan, world.training) is None


def test_an_empty_rule_row_comes_from_its_own_url(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    row = client.get("/admin/rewards/programs/rule-row", headers={"HX-Request": "1"})

    assert row.status_code == 200
    assert row.text.count('name="rule_name"') == 1
    assert "<html" not in row.text


# Early approval ----------------------------------------------------------------


def test_approving_marks_the_pending_entries_of_one_organisation(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    in_program = [entry(world.acme, 10, program_id=world.incentive) for _ in range(2)]
    elsewhere = entry(world.acme, 5)
    already = entry(world.acme, 7, "approved")
    other = entry(world.bolt, 3)

    response = client.post(
        "/admin/rewards/approve",
        data={"organisation_id": world.acme, "program_id": world.incentive},
        follow_redirects=True,
    )

    assert "2 pending entries of Acme Resellers in Growth were approved." in (
        response.text
    )
    assert all(fresh(i).status == "approved" for i in in_program)
    assert all(fresh(i).approved_at_utc is not None for i in in_program)
    assert fresh(elsewhere).status == "pending"
    assert fresh(already).approved_at_utc is None
    assert fresh(other).status == "pending"

    again = client.post(
        "/admin/rewards/approve",
        data={"organisation_id": world.acme, "program_id": ""},
        follow_redirects=True,
    )
    assert "1 pending entry of Acme Resellers was approved." in again.text
    assert fresh(elsewhere).status == "approved"


def test_approving_nothing_says_so(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    response = client.post(
        "/admin/rewards/approve",
        data={"organisation_id": world.cirrus},
        follow_redirects=True,
    )

    assert "Cirrus Office had no pending points to approve." in response.text


@pytest.mark.parametrize(
    "data",
    [
        {"organisation_id": "999999"},
        {"organisation_id": "x"},
        {"organisation_id": "9" * 40},
        {},
        {"organisation_id": "{acme}", "program_id": "999999"},
    ],
)
def test_approving_for_unknown_records_is_not_found(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    data: dict[str, str],
) -> None:
    pending = entry(world.acme, 10)
    posted = {key: value.format(acme=world.acme) for key, value in data.items()}

    response = client.post("/admin/rewards/approve", data=posted)

    assert response.status_code == 404
    assert fresh(pending).status == "pending"


# Manual adjustments ------------------------------------------------------------


def adjustment(**changes: Any) -> dict[str, Any]:
    form = {"organisation_id": "", "program_id": "", "points": "", "reason": ""}
    form.update(changes)
    return form


def take_part(organisation_id: int, program_id: int) -> None:
    """The organisation in the program, as a programs run would leave it."""
    rule = add_program_rule(db.session.get(Program, program_id), ("region", "in", []))
    db.session.add(
        Eligibility(
            program_id=program_id, organisation_id=organisation_id, rule_id=rule.id
        )
    )
    db.session.commit()


@pytest.mark.parametrize("points", ["250", "-75.5", "+12"])
def test_an_adjustment_is_an_approved_entry_with_its_sign(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions, points: str
) -> None:
    take_part(world.acme, world.incentive)
    entry(world.acme, 80, status="approved", program_id=world.incentive)
    form = adjustment(
        organisation_id=world.acme,
        program_id=world.incentive,
        points=points,
        reason="Trade show bonus",
    )

    response = client.post("/admin/rewards/adjustments/new", data=form)

    assert response.status_code == 302
    written = db.session.scalars(
        select(LedgerEntry).where(LedgerEntry.source == "adjustment")
    ).one()
    assert written.points == Decimal(points)
    assert written.source == "adjustment"
    assert written.status == "approved"
    assert written.approved_at_utc is not None
    assert written.created_by_id == world.admin
    assert written.organisation_id == world.acme
    assert written.program_id == world.incentive
    assert written.reason == "Trade show bonus"
    assert written.earned_on == utc_now().date()
    assert written.source_key.startswith("adjustment:")
    assert written.key == f"{written.source_key}#1"
    assert len(written.source_key) == len("adjustment:") + 36


def test_an_adjustment_needs_no_program(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    form = adjustment(organisation_id=world.bolt, points="10", reason="Goodwill")

    client.post("/admin/rewards/adjustments/new", data=form)

    written = db.session.scalars(select(LedgerEntry)).one()
    assert written.program_id is None
    assert payouts.balances()[1].available == Decimal(10)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"points": "0"}, "Enter points other than zero"),
        ({"points": "-0.00"}, "Enter points other than zero"),
        ({"points": ""}, "Enter the points to add"),
        ({"points": "1,5"}, "for example 1.5, not 1,5"),
        ({"points": "12.345"}, "Use at most 2 decimal places."),
        ({"points": "1e9"}, "is not a number"),
        ({"reason": ""}, "Say why the points are adjusted"),
        ({"reason": "   "}, "Say why the points are adjusted"),
        ({"reason": "x" * 501}, "at most 500 characters"),
        ({"organisation_id": ""}, "Choose the partner organisation"),
        ({"organisation_id": "999999"}, "Choose the partner organisation"),
        ({"program_id": "{training}"}, "Choose an incentive program, or none."),
        ({"program_id": "abc"}, "Choose an incentive program, or none."),
    ],
)
def test_bad_adjustments_are_refused(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    changes: dict[str, str],
    message: str,
) -> None:
    form = adjustment(organisation_id=world.acme, points="50", reason="Because")
    form.update({k: v.format(training=world.training) for k, v in changes.items()})

    response = client.post("/admin/rewards/adjustments/new", data=form)

    assert response.status_code == 400
    assert message in unescape(response.text)
    assert count(LedgerEntry) == 0


def test_an_adjustment_goes_only_into_a_program_the_partner_is_in(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    form = adjustment(
        organisation_id=world.bolt,
        program_id=world.incentive,
        points="10",
        reason="Goodwill",
    )

    refused = client.post("/admin/rewards/adjustments/new", data=form)
    take_part(world.bolt, world.incentive)
    accepted = client.post("/admin/rewards/adjustments/new", data=form)

    assert refused.status_code == 400
    assert "Bolt Distribution is not in Growth and has no points there" in unescape(
        refused.text
    )
    assert accepted.status_code == 302
    assert count(LedgerEntry) == 1


@pytest.mark.parametrize(
    ("points", "program", "accepted"),
    [
        ("-560", True, True),
        ("-560.01", True, False),
        ("-600", False, True),
        ("-600.01", False, False),
    ],
)
def test_a_deduction_takes_at_most_the_unpaid_points(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    points: str,
    program: bool,
    accepted: bool,
) -> None:
    take_part(world.acme, world.incentive)
    entry(world.acme, 60, status="approved", program_id=world.incentive)
    entry(world.acme, 40, status="approved")
    entry(world.acme, 500, status="pending", program_id=world.incentive)
    entry(world.acme, 700, status="paid", program_id=world.incentive)
    form = adjustment(
        organisation_id=world.acme,
        program_id=world.incentive if program else "",
        points=points,
        reason="Returned goods",
    )

    response = client.post("/admin/rewards/adjustments/new", data=form)

    adjustments = db.session.scalars(
        select(LedgerEntry.points).where(LedgerEntry.source == "adjustment")
    ).all()
    if accepted:
        assert response.status_code == 302
        assert adjustments == [Decimal(points)]
    else:
        available = (
            "560.00 unpaid points in Growth" if program else "600.00 unpaid points;"
        )
        assert response.status_code == 400
        assert f"Acme Resellers has {available}" in unescape(response.text)
        assert adjustments == []


def test_the_adjustment_form_offers_organisations_and_incentive_programs(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    page = client.get(f"/admin/rewards/adjustments/new?organisation={world.bolt}")

    assert page.status_code == 200
    assert f'<option selected value="{world.bolt}">Bolt Distribution' in page.text
    assert ">Growth</option>" in page.text
    assert ">Basics</option>" not in page.text


# Payouts -----------------------------------------------------------------------


@pytest.fixture
def ledger(world: SimpleNamespace) -> SimpleNamespace:
    """Approved, pending and already-paid entries of three organisations."""
    earlier = Payout(entries=1, points=Decimal(20))
    db.session.add(earlier)
    db.session.commit()
    return SimpleNamespace(
        earlier=earlier.id,
        acme_approved=[
            entry(world.acme, 100, "approved"),
            entry(world.acme, "50.5", "approved"),
        ],
        acme_pending=entry(world.acme, 30),
        acme_paid=entry(world.acme, 20, "paid", payout_id=earlier.id),
        bolt_approved=entry(world.bolt, 70, "approved"),
        cirrus_approved=entry(world.cirrus, 10, "approved"),
    )


def test_a_payout_pays_exactly_the_approved_unpaid_entries_chosen(
    world: SimpleNamespace,
    ledger: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
) -> None:
    response = client.post(
        "/admin/rewards/payouts",
        data={"organisation_id": [world.acme, world.bolt], "note": "March transfer"},
    )

    assert response.status_code == 302
    payout = db.session.scalars(select(Payout).where(Payout.id != ledger.earlier)).one()
    assert response.headers["Location"].endswith(f"/admin/rewards/payouts/{payout.id}")
    assert payout.entries == 3
    assert payout.points == Decimal("220.50")
    assert payout.note == "March transfer"
    assert payout.created_by_id == world.admin
    for paid in [*ledger.acme_approved, ledger.bolt_approved]:
        assert (fresh(paid).status, fresh(paid).payout_id) == ("paid", payout.id)
    assert fresh(ledger.acme_pending).status == "pending"
    assert fresh(ledger.acme_paid).payout_id == ledger.earlier
    assert (
        fresh(ledger.cirrus_approved).status,
        fresh(ledger.cirrus_approved).payout_id,
    ) == ("approved", None)


def test_a_second_payout_right_after_pays_nothing_more(
    world: SimpleNamespace,
    ledger: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
) -> None:
    form = {"organisation_id": [world.acme, world.bolt], "note": ""}
    client.post("/admin/rewards/payouts", data=form)
    payouts_before = count(Payout)

    again = client.post("/admin/rewards/payouts", data=form)

    assert again.status_code == 400
    assert "have no approved points waiting to be paid" in again.text
    assert count(Payout) == payouts_before


def test_two_payouts_at_once_never_pay_an_entry_twice(
    world: SimpleNamespace, ledger: SimpleNamespace, clean_app: Flask
) -> None:
    """Two admins' statements, one after the other as the database orders them:
    the second finds the entries taken, though its admin saw them available."""
    seen_by_second = payouts.balances(only_payable=True)
    other = Session(db.engine)
    first = Payout()
    other.add(first)
    other.flush()
    first_id = first.id
    taken = payouts.pay_entries(other, first_id, [world.acme, world.bolt])
    other.commit()

    second = Payout()
    db.session.add(second)
    db.session.flush()
    taken_again = payouts.pay_entries(db.session, second.id, [world.acme, world.bolt])
    db.session.commit()
    other.close()

    assert [b.name for b in seen_by_second][:2] == [
        "Acme Resellers",
        "Bolt Distribution",
    ]
    assert (taken, taken_again) == (3, 0)
    paid = db.session.scalars(
        select(LedgerEntry.payout_id).where(LedgerEntry.organisation_id != world.cirrus)
    ).all()
    assert sorted(p or 0 for p in paid) == sorted(
        [0, ledger.earlier, first_id, first_id, first_id]
    )


def test_a_payout_made_elsewhere_in_between_leaves_nothing_to_pay(
    world: SimpleNamespace,
    ledger: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
) -> None:
    page = client.get("/admin/rewards/payouts")
    assert f'value="{world.acme}"' in page.text
    other = Session(db.engine)
    elsewhere = Payout()
    other.add(elsewhere)
    other.flush()
    elsewhere_id = elsewhere.id
    payouts.pay_entries(other, elsewhere_id, [world.acme])
    other.commit()
    other.close()

    response = client.post(
        "/admin/rewards/payouts", data={"organisation_id": [world.acme]}
    )

    assert response.status_code == 400
    assert "no approved points waiting to be paid" in response.text
    assert all(fresh(i).payout_id == elsewhere_id for i in ledger.acme_approved)


@pytest.mark.parametrize(
    ("chosen", "message"),
    [
        ([], "Choose at least one organisation to pay."),
        (["999999"], "one of them no longer exists"),
        (["{acme}", "abc"], "one of them no longer exists"),
    ],
)
def test_a_payout_of_unknown_or_no_organisations_is_refused(
    world: SimpleNamespace,
    ledger: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    chosen: list[str],
    message: str,
) -> None:
    data = {"organisation_id": [c.format(acme=world.acme) for c in chosen]}

    response = client.post("/admin/rewards/payouts", data=data)

    assert response.status_code == 400
    assert message in unescape(response.text)
    assert count(Payout) == 1
    assert fresh(ledger.acme_approved[0]).status == "approved"


def test_a_negative_balance_is_not_paid(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    owed = entry(world.acme, 10, "approved")
    entry(world.acme, -40, "approved")

    response = client.post(
        "/admin/rewards/payouts", data={"organisation_id": [world.acme]}
    )

    assert response.status_code == 400
    assert (
        "Leave out Acme Resellers: their available balance is below zero"
        in response.text
    )
    assert count(Payout) == 0
    assert fresh(owed).status == "approved"


def test_a_long_note_is_refused(
    world: SimpleNamespace,
    ledger: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
) -> None:
    response = client.post(
        "/admin/rewards/payouts",
        data={"organisation_id": [world.acme], "note": "n" * 301},
    )

    assert response.status_code == 400
    assert "at most 300 characters" in response.text
    assert count(Payout) == 1


def test_the_payout_page_shows_each_organisation_and_entry(
    world: SimpleNamespace,
    ledger: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
) -> None:
    client.post(
        "/admin/rewards/payouts", data={"organisation_id": [world.acme, world.bolt]}
    )
    payout_id = db.session.scalar(select(func.max(Payout.id)))

    page = client.get(f"/admin/rewards/payouts/{payout_id}")
    listing = client.get("/admin/rewards/payouts")

    assert page.status_code == 200
    assert "220.50 points in 3 entries" in page.text
    assert "150.50" in page.text  # Acme's part
    assert page.text.count("<td>Acme Resellers</td>") == 2
    assert f"/admin/rewards/payouts/{payout_id}/export.csv" in page.text
    assert f'href="/admin/rewards/payouts/{payout_id}"' in listing.text
    # Only Cirrus has points left to pay.
    assert f'value="{world.cirrus}"' in listing.text
    assert f'value="{world.acme}"' not in listing.text


def test_earlier_payouts_page_through_as_a_fragment(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    db.session.add_all([Payout(note=f"Batch {n}") for n in range(30)])
    db.session.commit()

    second = client.get("/admin/rewards/payouts?page=2", headers={"HX-Request": "1"})

    assert second.status_code == 200
    assert "<html" not in second.text
    assert 'id="payout-history"' in second.text
    assert "30 payouts · page 2 of 2" in second.text
    assert second.text.count("Batch ") == 5


def test_the_export_lists_every_entry_with_formulas_defused(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    sneaky = make_org('=HYPERLINK("http://evil.test","x")')
    db.session.commit()
    entry(sneaky.id, 12, "approved", reason="+cmd|' /C calc'!A0")
    entry(sneaky.id, -2, "approved", reason="@SUM(1+1)", program_id=world.incentive)
    entry(world.acme, 5, "approved", reason="-minus, first")
    client.post(
        "/admin/rewards/payouts", data={"organisation_id": [sneaky.id, world.acme]}
    )
    payout_id = db.session.scalar(select(func.max(Payout.id)))

    response = client.get(f"/admin/rewards/payouts/{payout_id}/export.csv")

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert f"payout-{payout_id}.csv" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["organisation"], r["points"], r["reason"]) for r in rows] == [
        ('\'=HYPERLINK("http://evil.test","x")', "12.00", "'+cmd|' /C calc'!A0"),
        ('\'=HYPERLINK("http://evil.test","x")', "-2.00", "'@SUM(1+1)"),
        ("Acme Resellers", "5.00", "'-minus, first"),
    ]
    assert rows[1]["program"] == "Growth"
    assert rows[0]["source"] == "sale"
    assert rows[0]["payout"] == str(payout_id)


def test_safe_cells() -> None:
    assert safe_cell("=1+1") == "'=1+1"
    assert safe_cell("\tx") == "'\tx"
    assert safe_cell("plain") == "plain"
    assert safe_cell(Decimal("-3.50")) == "-3.50"
    assert safe_cell(None) == ""
    assert csv_text(["a", "b"], [["-x", 1]]) == "a,b\r\n'-x,1\r\n"


@pytest.mark.parametrize(
    "url",
    ["/admin/rewards/payouts/999999", "/admin/rewards/payouts/999999/export.csv"],
)
def test_unknown_payouts_are_not_found(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions, url: str
) -> None:
    assert client.get(url).status_code == 404


# Access and forged requests ----------------------------------------------------

PAGES = [
    ("get", "/admin/rewards/"),
    ("post", "/admin/rewards/recompute"),
    ("get", "/admin/rewards/programs/{incentive}"),
    ("post", "/admin/rewards/programs/{incentive}"),
    ("get", "/admin/rewards/programs/rule-row"),
    ("post", "/admin/rewards/approve"),
    ("get", "/admin/rewards/adjustments/new"),
    ("post", "/admin/rewards/adjustments/new"),
    ("get", "/admin/rewards/payouts"),
    ("post", "/admin/rewards/payouts"),
    ("get", "/admin/rewards/payouts/{payout}"),
    ("get", "/admin/rewards/payouts/{payout}/export.csv"),
]


@pytest.mark.parametrize("email", [PARTNER, MANAGER])
@pytest.mark.parametrize(("method", "url"), PAGES)
def test_partners_and_managers_are_forbidden(
    world: SimpleNamespace,
    client: FlaskClient,
    auth: AuthActions,
    email: str,
    method: str,
    url: str,
) -> None:
    payout = Payout()
    db.session.add(payout)
    db.session.commit()
    pending = entry(world.acme, 10)
    auth.sign_in(email)

    response = getattr(client, method)(
        url.format(incentive=world.incentive, payout=payout.id),
        data={"organisation_id": world.acme, "points": "5", "reason": "x"},
    )

    assert response.status_code == 403
    assert fresh(pending).status == "pending"
    assert count(LedgerEntry) == 1


def test_signed_out_visitors_are_sent_to_sign_in(
    world: SimpleNamespace, client: FlaskClient
) -> None:
    response = client.get("/admin/rewards/")

    assert response.status_code == 302
    assert "/auth/sign-in" in response.headers["Location"]


@pytest.mark.parametrize(("method", "url"), [p for p in PAGES if p[0] == "post"])
def test_posts_without_the_csrf_token_are_refused(
    world: SimpleNamespace,
    clean_app: Flask,
    client: FlaskClient,
    admin: AuthActions,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    url: str,
) -> None:
    monkeypatch.setitem(clean_app.config, "WTF_CSRF_ENABLED", True)
    pending = entry(world.acme, 10, "approved")

    response = client.post(
        url.format(incentive=world.incentive),
        data={
            "organisation_id": world.acme,
            "points": "5",
            "reason": "x",
            **plan_form(),
        },
    )

    assert response.status_code == 400
    assert "Traceback" not in response.text
    assert fresh(pending).payout_id is None
    assert count(LedgerEntry) == 1
    assert count(Run) == 0
    assert db.session.get(RewardPlan, world.incentive) is None
