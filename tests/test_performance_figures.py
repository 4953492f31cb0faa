"""Regional figures: the demo's revenue and growth against an independent computation
from the Superstore file, targets and claims on constructed cases, and a fixed number
of queries whatever the data size."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from portal.extensions import db
from portal.performance import figures
from portal.performance.models import PerformanceSettings, TargetMonth, TerritoryTarget
from portal.performance.periods import (
    Period,
    PeriodRejected,
    period_from_args,
    quarter_of,
    read_period,
)
from programs.models import Eligibility, ModuleCompletion, ProgramRule, Standing
from rewards.models import Claim
from territory_rules.models import Region, TerritoryOwnership
from tests.factories import (
    make_account,
    make_org,
    make_region,
    make_territory,
    make_user,
)
from tests.program_factories import (
    add_sale,
    add_step,
    add_tier,
    assign,
    make_module,
    make_program,
)
from tests.statements import count_statements
from tests.test_demo_programs import PLAN, partners
from tests.test_demo_rewards import demo_lines

CENT = Decimal("0.01")
Q1_2018 = quarter_of(date(2018, 2, 1))
Q3_2018 = quarter_of(date(2018, 8, 1))


def cents(amount: Decimal | None) -> Decimal | None:
    return None if amount is None else amount.quantize(CENT, ROUND_HALF_UP)


def ratio(amount: Decimal | None) -> Decimal | None:
    return None if amount is None else amount.quantize(Decimal("0.000001"))


# The demo, against the Superstore file -----------------------------------------


def region_of_territory() -> dict[str, str]:
    return {
        spec["territory"]: region
        for region, specs in PLAN["regions"].items()
        for spec in specs
    }


def expected_revenue(period: Period) -> dict[str, Decimal]:
    """Territory -> revenue of its sales lines in the period, from the file."""
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    for line in demo_lines():
        if period.starts_on <= line["date"] <= period.ends_on:
            revenue[line["territory"]] += line["amount"]
    return revenue


def expected_targets(period: Period) -> dict[str, Decimal]:
    """Territory -> target for the period, from the stored month rows, in Python."""
    targets: dict[str, Decimal] = defaultdict(Decimal)
    for target in db.session.scalars(select(TerritoryTarget)):
        for month in target.months:
            month_end = (month.month + timedelta(days=32)).replace(day=1)
            part = Period(
                max(month.month, target.starts_on),
                min(month_end - timedelta(days=1), target.ends_on),
            )
            starts = max(part.starts_on, period.starts_on)
            ends = min(part.ends_on, period.ends_on)
            if ends >= starts:
                share = Decimal((ends - starts).days + 1) / Decimal(part.days)
                targets[target.territory.name] += month.amount * share
    return {name: cents(amount) for name, amount in targets.items()}


def expected_figures(names: list[str], period: Period) -> tuple[Any, ...]:
    now = expected_revenue(period)
    before = expected_revenue(period.previous_year())
    targets = expected_targets(period)
    revenue = sum((now[name] for name in names), Decimal(0))
    previous = sum((before[name] for name in names), Decimal(0))
    known = [targets[name] for name in names if name in targets]
    target = sum(known, Decimal(0)) if known else None
    return (
        cents(revenue),
        cents(previous),
        ratio((revenue - previous) / previous) if previous else None,
        target,
        ratio(revenue / target) if target else None,
        cents(revenue - target) if target is not None else None,
    )


def actual(result: figures.Figures) -> tuple[Any, ...]:
    return (
        cents(result.revenue),
        cents(result.previous_revenue),
        ratio(result.growth),
        result.target,
        ratio(result.attainment),
        cents(result.variance),
    )


def all_regions() -> list[Region]:
    return list(db.session.scalars(select(Region).order_by(Region.name)))


def test_demo_territories_match_the_superstore_file(demo_app: Flask) -> None:
    with demo_app.app_context():
        rows = figures.territory_rows(all_regions(), Q3_2018)

        assert len(rows) == len(region_of_territory())
        for row in rows:
            assert row.region_name == region_of_territory()[row.name]
            assert actual(row.figures) == expected_figures([row.name], Q3_2018)
        assert sum(row.figures.revenue for row in rows) > 0


def test_demo_partners_match_the_superstore_file(demo_app: Flask) -> None:
    with demo_app.app_context():
        rows = figures.partner_rows(all_regions(), Q3_2018)

        assert sorted(row.name for row in rows) == sorted(partners())
        for row in rows:
            territory = partners()[row.name]["territory"]
            assert row.territories == [territory]
            assert actual(row.figures) == expected_figures([territory], Q3_2018)


@pytest.mark.parametrize("region_name", ["West", "East", "Central", "South"])
def test_demo_region_totals_match_the_superstore_file(
    demo_app: Flask, region_name: str
) -> None:
    with demo_app.app_context():
        region = db.session.scalars(select(Region).filter_by(name=region_name)).one()
        names = [spec["territory"] for spec in PLAN["regions"][region_name]]

        result = figures.overview([region], Q3_2018)

        assert actual(result.totals) == expected_figures(names, Q3_2018)
        assert result.partners == len(names)
        assert result.territories == len(names)
        assert result.comparison == Period(date(2017, 7, 1), date(2017, 9, 30))


def test_demo_monthly_revenue_adds_up_to_the_quarter(demo_app: Flask) -> None:
    with demo_app.app_context():
        west = db.session.scalars(select(Region).filter_by(name="West")).one()
        names = [spec["territory"] for spec in PLAN["regions"]["West"]]
        by_month: dict[date, Decimal] = defaultdict(Decimal)
        for line in demo_lines():
            if line["territory"] in names and Q3_2018.contains(line["date"]):
                by_month[line["date"].replace(day=1)] += line["amount"]

        points = figures.monthly([west], Q3_2018)

        assert [p.month for p in points] == Q3_2018.months()
        assert [cents(p.revenue) for p in points] == [
            cents(by_month[month]) for month in Q3_2018.months()
        ]


def test_demo_sales_lines_add_up_to_the_territory_figure(demo_app: Flask) -> None:
    with demo_app.app_context():
        row = next(
            r
            for r in figures.territory_rows(all_regions(), Q3_2018)
            if r.name == "California"
        )

        page = figures.sales_behind(
            all_regions(), Q3_2018, territory_id=row.id, per_page=100_000
        )

        assert page.total == len(page.items) > 0
        assert sum(line.amount for line in page.items) == row.figures.revenue
        assert {line.territory_name for line in page.items} == {"California"}


# Constructed cases --------------------------------------------------------------


def add_target(territory: Any, starts_on: date, ends_on: date, **months: str) -> None:
    """A target with explicit month rows, given as ``m2018_01="1700"``."""
    rows = [
        TargetMonth(month=date(int(key[1:5]), int(key[6:8]), 1), amount=Decimal(value))
        for key, value in months.items()
    ]
    db.session.add(
        TerritoryTarget(
            territory=territory,
            starts_on=starts_on,
            ends_on=ends_on,
            amount=sum((row.amount for row in rows), Decimal(0)),
            months=rows,
        )
    )
    db.session.flush()


def add_claim(org: Any, territory: Any, on: date, amount: str, status: str) -> Claim:
    claim = Claim(
        organisation_id=org.id,
        territory_id=territory.id if territory else None,
        customer_name="Walk-in customer",
        postal_code="00000",
        amount=Decimal(amount),
        sale_date=on,
        invoice_number=f"INV-{on.isoformat()}-{amount}-{status}",
        status=status,
    )
    db.session.add(claim)
    db.session.flush()
    return claim


@pytest.fixture
def world(clean_app: Flask) -> SimpleNamespace:
    region, other_region = make_region("North"), make_region("Far away")
    north, south = make_org("North Supply"), make_org("South Supply")
    alpha = make_territory(region, "Alpha", partner=north)
    beta = make_territory(region, "Beta", partner=south)
    gamma = make_territory(other_region, "Gamma", partner=north)
    account, other = make_account("Acme"), make_account("Elsewhere")
    assign(account, alpha)
    assign(other, gamma)
    return SimpleNamespace(
        region=region,
        other_region=other_region,
        north=north,
        south=south,
        alpha=alpha,
        beta=beta,
        gamma=gamma,
        account=account,
        other=other,
    )


def alpha_row(world: SimpleNamespace, period: Period) -> figures.TerritoryRow:
    rows = figures.territory_rows([world.region], period)
    return next(row for row in rows if row.id == world.alpha.id)


@pytest.mark.parametrize(
    ("starts_on", "ends_on", "target"),
    [
        (date(2018, 1, 1), date(2018, 3, 31), Decimal("7700.00")),
        # 12 of the 17 days of January's part, 14 of the 28 days of February.
        (date(2018, 1, 20), date(2018, 2, 14), Decimal("2600.00")),
        (date(2018, 2, 1), date(2018, 2, 28), Decimal("2800.00")),
        # Before the target starts.
        (date(2018, 1, 1), date(2018, 1, 14), None),
        # 16 of March's 31 days, then 15 of April's 30 in the next target.
        (date(2018, 3, 16), date(2018, 4, 15), Decimal("2151.61")),
        (date(2018, 1, 15), date(2018, 1, 15), Decimal("100.00")),
    ],
)
def test_a_periods_target_takes_the_days_of_each_month_inside_it(
    world: SimpleNamespace, starts_on: date, ends_on: date, target: Decimal | None
) -> None:
    add_target(
        world.alpha,
        date(2018, 1, 15),
        date(2018, 3, 31),
        m2018_01="1700",
        m2018_02="2800",
        m2018_03="3200",
    )
    add_target(
        world.alpha,
        date(2018, 4, 1),
        date(2018, 6, 30),
        m2018_04="1000",
        m2018_05="1000",
        m2018_06="1000",
    )

    row = alpha_row(world, Period(starts_on, ends_on))

    assert row.figures.target == target


def test_attainment_and_variance_say_how_far_revenue_is_from_target(
    world: SimpleNamespace,
) -> None:
    add_target(world.alpha, date(2018, 2, 1), date(2018, 2, 28), m2018_02="2000")
    add_sale(world.account, date(2018, 2, 10), "1300")
    add_sale(world.account, date(2017, 2, 10), "1000")
    add_sale(world.account, date(2018, 3, 1), "999")

    result = alpha_row(world, Period(date(2018, 2, 1), date(2018, 2, 28))).figures

    assert result.revenue == Decimal("1300")
    assert result.previous_revenue == Decimal("1000")
    assert result.growth == Decimal("0.3")
    assert result.attainment == Decimal("0.65")
    assert result.variance == Decimal("-700")


def test_without_a_target_or_last_year_the_ratios_are_empty(
    world: SimpleNamespace,
) -> None:
    add_sale(world.account, date(2018, 2, 10), "1300")

    result = alpha_row(world, Period(date(2018, 2, 1), date(2018, 2, 28))).figures

    assert result.revenue == Decimal("1300")
    assert (result.growth, result.target, result.attainment, result.variance) == (
        None,
        None,
        None,
        None,
    )


def test_only_approved_claims_in_the_scope_and_period_count(
    world: SimpleNamespace,
) -> None:
    february = Period(date(2018, 2, 1), date(2018, 2, 28))
    add_sale(world.account, date(2018, 2, 3), "100")
    add_claim(world.north, world.alpha, date(2018, 2, 5), "40", "approved")
    add_claim(world.south, world.beta, date(2018, 2, 6), "7", "approved")
    for status in ("submitted", "flagged", "rejected"):
        add_claim(world.north, world.alpha, date(2018, 2, 5), "1000", status)
    add_claim(world.north, world.alpha, date(2018, 3, 1), "500", "approved")
    add_claim(world.north, world.gamma, date(2018, 2, 5), "800", "approved")
    add_claim(world.north, None, date(2018, 2, 5), "900", "approved")

    territories = {r.name: r for r in figures.territory_rows([world.region], february)}
    partner = {r.name: r for r in figures.partner_rows([world.region], february)}
    claims = figures.claims_behind([world.region], february)

    assert territories["Alpha"].figures.revenue == Decimal("140")
    assert territories["Beta"].figures.revenue == Decimal("7")
    assert partner["North Supply"].figures.revenue == Decimal("140")
    assert partner["South Supply"].figures.revenue == Decimal("7")
    assert sorted(line.amount for line in claims.items) == [Decimal("7"), Decimal("40")]
    assert figures.overview([world.region], february).totals.revenue == Decimal("147")


def test_a_former_owner_keeps_its_revenue_and_the_owner_now_the_target(
    world: SimpleNamespace,
) -> None:
    """Sales count for the owner on their date; targets for the owner now."""
    first = db.session.scalars(
        select(TerritoryOwnership).filter_by(territory_id=world.beta.id)
    ).one()
    first.valid_to = date(2018, 2, 15)
    first.partner_id = world.north.id
    db.session.add(
        TerritoryOwnership(
            territory_id=world.beta.id,
            partner_id=world.south.id,
            valid_from=date(2018, 2, 15),
        )
    )
    customer = make_account("Beta customer")
    assign(customer, world.beta)
    add_sale(customer, date(2018, 2, 14), "60")
    add_sale(customer, date(2018, 2, 15), "25")
    add_target(world.beta, date(2018, 2, 1), date(2018, 2, 28), m2018_02="100")
    february = Period(date(2018, 2, 1), date(2018, 2, 28))

    rows = {r.name: r for r in figures.partner_rows([world.region], february)}

    assert rows["North Supply"].figures.revenue == Decimal("60")
    assert rows["North Supply"].figures.target is None
    assert rows["South Supply"].figures.revenue == Decimal("25")
    assert rows["South Supply"].figures.attainment == Decimal("0.25")
    assert rows["South Supply"].territories == ["Beta"]
    assert alpha_row(world, february).partner_name == "North Supply"


def test_partner_rows_carry_accounts_tiers_training_and_last_activity(
    world: SimpleNamespace,
) -> None:
    program = make_program("Growth", kind="incentive", kpi="sales_amount")
    gold = add_tier(program, "Gold", 100)
    db.session.add(
        Standing(
            program_id=program.id,
            organisation_id=world.north.id,
            kpi_value=Decimal(150),
            tier_id=gold.id,
        )
    )
    course = make_program("Course")
    first, second = make_module(), make_module()
    add_step(course, first)
    add_step(course, second)
    add_step(course, make_module(), required=False)
    rule = ProgramRule(program=course, name="Everyone")
    db.session.add(rule)
    db.session.flush()
    db.session.add(
        Eligibility(
            program_id=course.id, organisation_id=world.north.id, rule_id=rule.id
        )
    )
    db.session.add(
        ModuleCompletion(
            user_id=make_user(organisation=world.north).id,
            module_id=first.id,
            organisation_id=world.north.id,
        )
    )
    add_sale(world.account, date(2018, 1, 20), "10")
    add_sale(world.account, date(2018, 3, 2), "10")
    db.session.flush()

    rows = {r.name: r for r in figures.partner_rows([world.region], Q1_2018)}
    north = rows["North Supply"]

    assert north.accounts == 1
    assert north.tier == "Gold"
    assert north.training_completion == Decimal("0.5")
    assert north.last_activity == date(2018, 3, 2)
    assert rows["South Supply"].training_completion is None
    result = figures.overview([world.region], Q1_2018)
    assert result.tier_distribution == [("Growth", "Gold", 1)]
    assert result.training_completion == Decimal("0.5")
    assert result.accounts == 1


def test_gini_is_zero_for_equal_shares_and_grows_with_concentration() -> None:
    assert figures.gini([Decimal(5), Decimal(5), Decimal(5)]) == 0
    assert figures.gini([Decimal(0), Decimal(0), Decimal(9)]) == Decimal(2) / 3
    assert figures.gini([]) is None
    assert figures.gini([Decimal(0), Decimal(0)]) is None


def test_settings_are_created_with_their_defaults(clean_app: Flask) -> None:
    settings = PerformanceSettings.current()

    assert settings.id == 1
    assert settings.underperform_share == Decimal("0.80")
    assert settings.underperform_periods == 2
    assert settings.use_bottom_quartile is True
    assert settings.stalled_days == 60
    assert settings.revenue_drop_share == Decimal("0.30")
    assert settings.imbalance_factor == Decimal("1.5")
    assert settings.leaderboard_for_partners is False
    assert PerformanceSettings.current() is settings


# A fixed number of queries -------------------------------------------------------


@pytest.fixture
def count_queries(clean_app: Flask) -> Iterator[Callable[[Callable[[], Any]], int]]:
    yield count_statements


def grow(region: Region, size: int) -> None:
    """Add ``size`` partners with a territory, accounts, sales, a claim, a target."""
    for number in range(size):
        org = make_org()
        territory = make_territory(region, partner=org)
        add_target(
            territory,
            date(2018, 1, 1),
            date(2018, 3, 31),
            m2018_01="10",
            m2018_02="10",
            m2018_03="10",
        )
        for _ in range(size):
            account = make_account()
            assign(account, territory)
            for day in (3, 17):
                add_sale(account, date(2018, 2, day), 10 + number)
                add_sale(account, date(2017, 2, day), 5)
        add_claim(org, territory, date(2018, 2, 9), "20", "approved")


def calls(region: Region) -> dict[str, Callable[[], Any]]:
    return {
        "overview": lambda: figures.overview([region], Q1_2018),
        "territory rows": lambda: figures.territory_rows([region], Q1_2018),
        "partner rows": lambda: figures.partner_rows([region], Q1_2018),
        "monthly": lambda: figures.monthly([region], Q1_2018),
        "sales": lambda: figures.sales_behind([region], Q1_2018, per_page=5),
        "claims": lambda: figures.claims_behind([region], Q1_2018, per_page=5),
    }


def test_figures_take_the_same_number_of_queries_at_any_size(
    count_queries: Callable[[Callable[[], Any]], int],
) -> None:
    small, large = make_region("Small"), make_region("Large")
    grow(small, 1)
    grow(large, 6)

    small_counts = {name: count_queries(c) for name, c in calls(small).items()}
    large_counts = {name: count_queries(c) for name, c in calls(large).items()}

    assert small_counts == large_counts
    assert len(figures.territory_rows([large], Q1_2018)) == 6


# Periods: the one before, and the bounds of what a URL may ask for ---------------


@pytest.mark.parametrize(
    ("starts_on", "ends_on", "before"),
    [
        # Whole calendar months: the same number of months just before.
        (date(2019, 2, 1), date(2019, 2, 28), (date(2019, 1, 1), date(2019, 1, 31))),
        (
            date(2018, 12, 1),
            date(2018, 12, 31),
            (date(2018, 11, 1), date(2018, 11, 30)),
        ),
        (date(2019, 3, 1), date(2019, 3, 31), (date(2019, 2, 1), date(2019, 2, 28))),
        (date(2020, 3, 1), date(2020, 3, 31), (date(2020, 2, 1), date(2020, 2, 29))),
        (date(2019, 1, 1), date(2019, 2, 28), (date(2018, 11, 1), date(2018, 12, 31))),
        (
            date(2018, 10, 1),
            date(2018, 12, 31),
            (date(2018, 7, 1), date(2018, 9, 30)),
        ),
        (date(2018, 1, 1), date(2018, 12, 31), (date(2017, 1, 1), date(2017, 12, 31))),
        (date(2018, 8, 1), date(2018, 10, 31), (date(2018, 5, 1), date(2018, 7, 31))),
        # Anything else: the same number of days just before.
        (date(2019, 1, 4), date(2019, 1, 31), (date(2018, 12, 7), date(2019, 1, 3))),
        (date(2019, 2, 2), date(2019, 2, 28), (date(2019, 1, 6), date(2019, 2, 1))),
        (date(2018, 7, 15), date(2018, 7, 15), (date(2018, 7, 14), date(2018, 7, 14))),
    ],
)
def test_the_period_before(
    starts_on: date, ends_on: date, before: tuple[date, date]
) -> None:
    assert Period(starts_on, ends_on).previous() == Period(*before)


def test_whole_months_counts_calendar_months() -> None:
    assert Period(date(2019, 2, 1), date(2019, 2, 28)).whole_months == 1
    assert Period(date(2018, 11, 1), date(2019, 2, 28)).whole_months == 4
    assert Period(date(2019, 2, 1), date(2019, 2, 27)).whole_months is None
    assert Period(date(2019, 2, 2), date(2019, 2, 28)).whole_months is None


@pytest.mark.parametrize(
    ("raw_from", "raw_to", "problem"),
    [
        ("2019-01-01", "8999-12-31", "Choose dates from 1900 to 2200"),
        ("1899-12-31", "1900-03-31", "Choose dates from 1900 to 2200"),
        ("2200-10-01", "2201-01-01", "Choose dates from 1900 to 2200"),
        ("1900-01-01", "2000-01-01", "A period can be at most 100 years long"),
        ("2018-31-01", "2018-12-31", "Dates must be written as YYYY-MM-DD"),
        ("2018-09-30", "2018-07-01", "The end of the period comes before its start"),
    ],
)
def test_periods_that_cannot_be_shown_say_what_to_fix(
    raw_from: str, raw_to: str, problem: str
) -> None:
    today = date(2026, 5, 12)

    with pytest.raises(PeriodRejected, match=problem):
        read_period({"from": raw_from, "to": raw_to}, today)
    period, error = period_from_args({"from": raw_from, "to": raw_to}, today)

    assert period == Period(date(2026, 4, 1), date(2026, 6, 30))
    assert error is not None
    assert error.startswith(problem)
    assert error.endswith("; showing Q2 2026 instead.")


@pytest.mark.parametrize(
    ("raw_from", "raw_to"),
    [
        ("1900-01-01", "1999-12-31"),
        ("2101-01-01", "2200-12-31"),
        ("1900-01-01", "1900-01-01"),
        ("1900-02-01", "1999-12-31"),
    ],
)
def test_every_period_derived_from_the_widest_ones_can_be_held(
    raw_from: str, raw_to: str
) -> None:
    period = read_period({"from": raw_from, "to": raw_to}, date(2026, 5, 12))

    # Up to eleven periods looked back for the flags, each with its year before.
    for _ in range(11):
        period = period.previous()
        period.previous_year()
    assert period.starts_on.year >= 800


# Attainment against the territories that have a target ---------------------------

AUGUST = Period(date(2018, 8, 1), date(2018, 8, 31))


@pytest.fixture
def three(clean_app: Flask) -> SimpleNamespace:
    """A region of three territories; Cedar has no target in August 2018."""
    region = make_region("Woods")
    names = ("Ash", "Birch", "Cedar")
    orgs = {name: make_org(f"{name} Partners") for name in names}
    territories = {
        name: make_territory(region, name, partner=orgs[name]) for name in names
    }
    accounts = {name: make_account(f"{name} customer") for name in names}
    for name in names:
        assign(accounts[name], territories[name])
    return SimpleNamespace(
        region=region, orgs=orgs, territories=territories, accounts=accounts
    )


SALES = {
    "Ash": [(date(2018, 8, 3), "600"), (date(2018, 8, 20), "390")],
    "Birch": [(date(2018, 8, 9), "1980")],
    "Cedar": [(date(2018, 8, 14), "12000"), (date(2018, 8, 30), "228")],
}
TARGETS = {"Ash": "1000", "Birch": "2000"}


def test_region_attainment_leaves_out_territories_without_a_target(
    three: SimpleNamespace,
) -> None:
    for name, sales in SALES.items():
        for day, amount in sales:
            add_sale(three.accounts[name], day, amount)
    for name, amount in TARGETS.items():
        add_target(
            three.territories[name], AUGUST.starts_on, AUGUST.ends_on, m2018_08=amount
        )

    result = figures.overview([three.region], AUGUST)

    everything = sum(
        (Decimal(a) for sales in SALES.values() for _, a in sales), Decimal(0)
    )
    targeted = sum((Decimal(a) for name in TARGETS for _, a in SALES[name]), Decimal(0))
    target = sum((Decimal(a) for a in TARGETS.values()), Decimal(0))
    assert result.totals.revenue == everything == Decimal("15198")
    assert result.totals.target == target
    assert result.totals.revenue_with_target == targeted == Decimal("2970")
    assert result.totals.attainment == targeted / target == Decimal("0.99")
    assert result.totals.variance == targeted - target == Decimal("-30")
    assert result.territories_without_target == 1
    assert result.totals.revenue_without_target == Decimal("12228")


def test_partner_attainment_counts_its_revenue_in_its_targeted_territories(
    clean_app: Flask,
) -> None:
    """Ash Partners owns Ash (target) and Cedar (none) and has a claim in Birch."""
    region = make_region("Woods")
    ash_partners = make_org("Ash Partners")
    ash = make_territory(region, "Ash", partner=ash_partners)
    cedar = make_territory(region, "Cedar", partner=ash_partners)
    birch = make_territory(region, "Birch", partner=make_org("Birch Partners"))
    for territory, amount in ((ash, "700"), (cedar, "5000"), (birch, "80")):
        customer = make_account()
        assign(customer, territory)
        add_sale(customer, date(2018, 8, 3), amount)
    add_claim(ash_partners, birch, date(2018, 8, 5), "300", "approved")
    add_target(ash, AUGUST.starts_on, AUGUST.ends_on, m2018_08="1000")
    add_target(birch, AUGUST.starts_on, AUGUST.ends_on, m2018_08="100")

    rows = {row.name: row for row in figures.partner_rows([region], AUGUST)}
    result = rows["Ash Partners"].figures

    assert rows["Ash Partners"].territories == ["Ash", "Cedar"]
    assert result.revenue == Decimal("700") + Decimal("5000") + Decimal("300")
    assert result.target == Decimal("1000.00")
    assert result.revenue_with_target == Decimal("700")
    assert result.attainment == Decimal("0.7")
    assert result.variance == Decimal("-300")
    assert result.revenue_without_target == Decimal("5300")
    assert rows["Birch Partners"].figures.attainment == Decimal("0.8")


def test_months_set_their_target_against_the_territories_with_one(
    three: SimpleNamespace,
) -> None:
    """Ash has a target in July and August, Birch in August only."""
    add_target(
        three.territories["Ash"],
        date(2018, 7, 1),
        date(2018, 8, 31),
        m2018_07="500",
        m2018_08="500",
    )
    add_target(
        three.territories["Birch"], AUGUST.starts_on, AUGUST.ends_on, m2018_08="1000"
    )
    sales = [
        ("Ash", date(2018, 7, 2), "400"),
        ("Birch", date(2018, 7, 3), "900"),
        ("Cedar", date(2018, 7, 4), "50"),
        ("Ash", date(2018, 8, 2), "450"),
        ("Birch", date(2018, 8, 3), "800"),
        ("Cedar", date(2018, 8, 4), "7000"),
    ]
    for name, day, amount in sales:
        add_sale(three.accounts[name], day, amount)

    july, august = figures.monthly(
        [three.region], Period(date(2018, 7, 1), AUGUST.ends_on)
    )

    assert (july.revenue, july.target, july.revenue_with_target) == (
        Decimal("1350"),
        Decimal("500.00"),
        Decimal("400"),
    )
    assert july.attainment == Decimal("0.8")
    assert (august.revenue, august.target, august.revenue_with_target) == (
        Decimal("8250"),
        Decimal("1500.00"),
        Decimal("1250"),
    )
    assert cents(august.attainment) == Decimal("0.83")


# Tiers in ladder order -----------------------------------------------------------


def add_standing(org: Any, program: Any, tier: Any) -> None:
    db.session.add(
        Standing(
            program_id=program.id,
            organisation_id=org.id,
            kpi_value=Decimal(1),
            tier_id=tier.id if tier else None,
        )
    )


def test_tiers_are_grouped_by_program_name_in_ladder_order(
    three: SimpleNamespace,
) -> None:
    loyalty = make_program("Loyalty", kind="incentive", kpi="sales_amount")
    growth = make_program("Growth", kind="incentive", kpi="sales_amount")
    ladder = {
        name: add_tier(growth, name, n * 100)
        for n, name in enumerate(("Bronze", "Silver", "Gold"), start=1)
    }
    member = add_tier(loyalty, "Member", 10)
    add_standing(three.orgs["Ash"], growth, ladder["Gold"])
    add_standing(three.orgs["Ash"], loyalty, member)
    add_standing(three.orgs["Birch"], growth, ladder["Silver"])
    add_standing(three.orgs["Cedar"], growth, ladder["Bronze"])
    add_standing(three.orgs["Cedar"], loyalty, None)
    db.session.flush()

    result, _, partners = figures.scope_figures([three.region], AUGUST)
    rows = {row.name: row for row in partners}

    assert result.tier_distribution == [
        ("Growth", "Bronze", 1),
        ("Growth", "Silver", 1),
        ("Growth", "Gold", 1),
        ("Loyalty", figures.NO_TIER, 1),
        ("Loyalty", "Member", 1),
    ]
    assert result.tiers_by_program == [
        ("Growth", [("Bronze", 1), ("Silver", 1), ("Gold", 1)]),
        ("Loyalty", [(figures.NO_TIER, 1), ("Member", 1)]),
    ]
    assert rows["Ash Partners"].tier == "Growth: Gold, Loyalty: Member"
    assert rows["Birch Partners"].tier == "Silver"
    assert rows["Ash Partners"].tier_rank == (2, 0)
    assert rows["Birch Partners"].tier_rank == (1,)
    assert rows["Cedar Partners"].tier_rank == (0, -1)
