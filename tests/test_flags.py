"""Flags at and around each threshold, with their reasons in words."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask

from portal.extensions import db
from portal.performance import figures
from portal.performance.figures import gini
from portal.performance.flags import (
    IMBALANCED,
    STALLED,
    UNDERPERFORMING,
    Standing,
    Thresholds,
    bottom_quartile,
    flag_rows,
    imbalance,
    number,
    percent,
    period_noun,
    quartile_note,
    revenue_drop,
    stalled_activity,
    underperformance,
)
from portal.performance.models import PerformanceSettings
from portal.performance.periods import Period
from portal.performance.targets import set_target
from territory_rules.models import Region
from tests.factories import make_account, make_org, make_region, make_territory
from tests.program_factories import add_sale, assign
from tests.statements import count_statements

D = Decimal
DEFAULTS = Thresholds()


def standings(*attainments: str | None, quartile: bool = False) -> list[Standing]:
    labels = ["Q1 2018", "Q2 2018", "Q3 2018", "Q4 2018"][-len(attainments) :]
    return [
        Standing(label, None if value is None else D(value), quartile)
        for label, value in zip(labels, attainments, strict=True)
    ]


# --- Underperformance ---------------------------------------------------------------


def test_below_the_share_in_both_periods_is_flagged_with_the_numbers() -> None:
    flag = underperformance(standings("0.62", "0.71"), DEFAULTS, "quarters")

    assert flag is not None
    assert flag.kind == UNDERPERFORMING
    assert flag.reason == (
        "Attainment 62% in Q3 2018 and 71% in Q4 2018: below 80% of target in the "
        "last 2 quarters."
    )


def test_exactly_at_the_share_is_not_underperforming() -> None:
    assert underperformance(standings("0.70", "0.80"), DEFAULTS, "quarters") is None


def test_just_below_the_share_is_underperforming() -> None:
    flag = underperformance(standings("0.70", "0.7999"), DEFAULTS, "quarters")

    assert flag is not None


def test_one_period_short_of_the_consecutive_count_is_not_flagged() -> None:
    three = Thresholds(underperform_periods=3)

    assert underperformance(standings("0.9", "0.5", "0.5"), three, "quarters") is None
    assert underperformance(standings("0.5", "0.5"), three, "quarters") is None
    flag = underperformance(standings("0.5", "0.5", "0.5"), three, "quarters")
    assert flag is not None
    assert "in the last 3 quarters" in flag.reason


def test_only_the_last_n_periods_count() -> None:
    flag = underperformance(standings("1.2", "0.5", "0.6"), DEFAULTS, "quarters")

    assert flag is not None
    assert "50% in Q3 2018 and 60% in Q4 2018" in flag.reason
    assert "Q2 2018" not in flag.reason


def test_a_period_without_target_breaks_the_run() -> None:
    assert underperformance(standings(None, "0.5"), DEFAULTS, "quarters") is None


def test_bottom_quartile_counts_when_enabled() -> None:
    history = standings("0.95", "0.90", quartile=True)

    flag = underperformance(history, DEFAULTS, "quarters")

    assert flag is not None
    assert flag.reason == (
        "Attainment 95% in Q3 2018 (bottom quartile) and 90% in Q4 2018 (bottom "
        "quartile): below 80% of target or in the region's bottom quartile in the "
        "last 2 quarters."
    )


def test_bottom_quartile_is_ignored_when_disabled() -> None:
    history = standings("0.95", "0.90", quartile=True)
    without = Thresholds(use_bottom_quartile=False)

    assert underperformance(history, without, "quarters") is None


def test_one_period_setting_speaks_of_this_period() -> None:
    one = Thresholds(underperform_periods=1)

    flag = underperformance(standings("0.5"), one, "quarter")

    assert flag is not None
    assert (
        flag.reason == "Attainment 50% in Q4 2018: below 80% of target in this quarter."
    )


def test_bottom_quartile_is_the_lowest_quarter() -> None:
    attainments = {n: D(n) / 10 for n in range(1, 9)}  # 0.1 .. 0.8

    assert bottom_quartile(attainments) == {1, 2}


def test_bottom_quartile_includes_ties_with_its_last_member() -> None:
    attainments = {
        "a": D("0.5"),
        "b": D("0.6"),
        "c": D("0.6"),
        "d": D("0.9"),
        "e": D("1.0"),
        "f": D("1.1"),
        "g": D("1.2"),
        "h": D("1.3"),
    }

    assert bottom_quartile(attainments) == {"a", "b", "c"}


def test_bottom_quartile_leaves_out_rows_without_target_and_small_regions() -> None:
    assert bottom_quartile({"a": D("0.1"), "b": D(1), "c": D(2)}) == set()
    four = {"a": D("0.1"), "b": D(1), "c": D(2), "d": D(3), "e": None}
    assert bottom_quartile(four) == {"a"}


# --- Stalled ------------------------------------------------------------------------

END = date(2018, 9, 30)


def test_stalled_exactly_at_the_limit() -> None:
    flag = stalled_activity(END - timedelta(days=60), END, 60)

    assert flag is not None
    assert flag.kind == STALLED
    assert flag.reason == (
        "No sale or approved claim for 60 days up to 30 Sep 2018 (the last on "
        "1 Aug 2018); the limit is 60 days."
    )


def test_one_day_short_of_the_limit_is_not_stalled() -> None:
    assert stalled_activity(END - timedelta(days=59), END, 60) is None


def test_activity_after_the_day_looked_at_is_not_stalled() -> None:
    assert stalled_activity(END + timedelta(days=3), END, 60) is None


def test_no_activity_ever_is_stalled() -> None:
    flag = stalled_activity(None, END, 60)

    assert flag is not None
    assert flag.reason == "No sale or approved claim on record up to 30 Sep 2018."


LABELS = ("Q2 2018", "Q3 2018")


def test_revenue_drop_exactly_at_the_share_is_not_flagged() -> None:
    assert revenue_drop(D(700), D(1000), D("0.30"), LABELS) is None


def test_revenue_drop_beyond_the_share_is_flagged() -> None:
    flag = revenue_drop(D("699.99"), D(1000), D("0.30"), LABELS)

    assert flag is not None
    assert flag.kind == STALLED
    assert flag.reason == (
        "Revenue $699.99 in Q3 2018, down 30% from $1,000.00 in Q2 2018: more than 30%."
    )


def test_revenue_drop_from_nothing_or_a_rise_is_not_flagged() -> None:
    assert revenue_drop(D(0), D(0), D("0.30"), LABELS) is None
    assert revenue_drop(D(1500), D(1000), D("0.30"), LABELS) is None


def test_revenue_to_zero_is_a_full_drop() -> None:
    flag = revenue_drop(D(0), D(250), D("0.30"), LABELS, currency="€")

    assert flag is not None
    assert "Revenue €0.00 in Q3 2018, down 100% from €250.00" in flag.reason


# --- Imbalance ----------------------------------------------------------------------


def test_imbalance_at_exactly_factor_times_median_is_not_flagged() -> None:
    accounts = {1: D(14), 2: D(20), 3: D(30)}  # median 20, bounds 13.33 and 30

    assert imbalance(accounts, D("1.5"), number, "accounts") == {}


def test_imbalance_just_above_and_below_the_bounds() -> None:
    accounts = {1: D(13), 2: D(20), 3: D(31)}  # median 20: 13 < 13.33, 31 > 30

    flags = imbalance(accounts, D("1.5"), number, "accounts")

    assert set(flags) == {1, 3}
    assert flags[3].kind == IMBALANCED
    assert flags[3].reason == (
        "Accounts 31: more than 1.5 times the region's median of 20 per partner."
    )
    assert flags[1].reason == (
        "Accounts 13: less than the region's median of 20 per partner divided by 1.5."
    )


def test_imbalance_exactly_at_median_divided_by_factor_is_not_flagged() -> None:
    potential = {1: D(20), 2: D(40), 3: D(80)}  # median 40, factor 2: 20 and 80

    assert imbalance(potential, D(2), number, "revenue potential") == {}


def test_imbalance_with_a_median_of_zero_flags_nothing() -> None:
    assert imbalance({1: D(0), 2: D(0), 3: D(5)}, D("1.5"), number, "accounts") == {}


def test_imbalance_median_of_an_even_count_is_halfway() -> None:
    flags = imbalance({1: D(10), 2: D(20), 3: D(30), 4: D(90)}, D(3), number, "x")

    assert set(flags) == {4}  # median 25, bound 75
    assert "median of 25 per partner" in flags[4].reason


# --- Gini ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1, 1, 1, 1], "0"),
        ([0, 0, 0, 1], "0.75"),
        ([1, 2, 3, 4], "0.25"),
        ([4, 3, 2, 1], "0.25"),
        ([5], "0"),
        ([0, 10], "0.5"),
    ],
)
def test_gini_of_known_vectors(values: list[int], expected: str) -> None:
    assert gini([D(v) for v in values]) == D(expected)


def test_gini_of_nothing_is_none() -> None:
    assert gini([]) is None
    assert gini([D(0), D(0)]) is None


# --- Period names -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "count", "noun"),
    [
        (Period(date(2018, 7, 1), date(2018, 9, 30)), 2, "quarters"),
        (Period(date(2018, 7, 1), date(2018, 9, 30)), 1, "quarter"),
        (Period(date(2018, 2, 1), date(2018, 2, 28)), 3, "months"),
        (Period(date(2018, 2, 1), date(2018, 2, 27)), 3, "periods of 27 days"),
        (Period(date(2018, 1, 1), date(2018, 12, 31)), 1, "year"),
        (Period(date(2018, 1, 1), date(2018, 12, 31)), 2, "years"),
        (Period(date(2018, 7, 1), date(2019, 6, 30)), 2, "periods of 12 months"),
        (Period(date(2018, 1, 1), date(2018, 2, 28)), 2, "periods of 2 months"),
        (Period(date(2018, 8, 1), date(2018, 10, 31)), 1, "period of 3 months"),
        (Period(date(2018, 1, 2), date(2018, 12, 31)), 1, "period of 364 days"),
    ],
)
def test_period_noun(period: Period, count: int, noun: str) -> None:
    assert period_noun(period, count) == noun


# --- Attached to the rows, on the database ------------------------------------------

Q2_2018 = Period(date(2018, 4, 1), date(2018, 6, 30))
Q3_2018 = Period(date(2018, 7, 1), date(2018, 9, 30))
LATER = date(2026, 1, 1)


def add_partner(
    region: Region,
    name: str,
    sales: list[tuple[date, str]],
    targets: list[Period] | None = None,
    accounts: int = 1,
) -> None:
    territory = make_territory(region, f"{name} land", partner=make_org(name))
    placed = [make_account() for _ in range(accounts)]
    for account in placed:
        assign(account, territory)
    for day, amount in sales:
        add_sale(placed[0], day, amount)
    for period in targets or []:
        set_target(territory, period.starts_on, period.ends_on, D(1000), None, None)


@pytest.fixture
def west(clean_app: Flask) -> Region:
    """Ahead and Behind with targets of 1,000 a quarter; Dropping without one."""
    region = make_region("West")
    both = [Q2_2018, Q3_2018]
    add_partner(
        region, "Behind", [(date(2018, 5, 1), "600"), (date(2018, 9, 1), "700")], both
    )
    add_partner(
        region, "Quiet", [(date(2018, 5, 15), "1000"), (date(2018, 8, 1), "1200")], both
    )
    add_partner(
        region,
        "Dropping",
        [(date(2018, 5, 20), "1000"), (date(2018, 9, 25), "500")],
        accounts=4,
    )
    db.session.commit()
    return region


def flags_of(rows: list[Any]) -> dict[str, list[tuple[str, str]]]:
    return {row.name: [(f.kind, f.reason) for f in row.flags] for row in rows}


def test_flags_are_attached_to_territories_and_partners(west: Region) -> None:
    _, territories, partners = figures.scope_figures([west], Q3_2018)

    attention = flag_rows([west], Q3_2018, territories, partners, LATER)

    by_partner = flags_of(partners)
    assert by_partner["Behind"] == [
        (
            UNDERPERFORMING,
            "Attainment 60% in Q2 2018 and 70% in Q3 2018: below 80% of target in "
            "the last 2 quarters.",
        )
    ]
    assert by_partner["Quiet"] == [
        (
            STALLED,
            "No sale or approved claim for 60 days up to 30 Sep 2018 (the last on "
            "1 Aug 2018); the limit is 60 days.",
        )
    ]
    assert by_partner["Dropping"] == [
        (
            STALLED,
            "Revenue $500.00 in Q3 2018, down 50% from $1,000.00 in Q2 2018: more "
            "than 30%.",
        ),
        (
            IMBALANCED,
            "Accounts 4: more than 1.5 times the region's median of 1 per partner.",
        ),
    ]
    by_territory = flags_of(territories)
    assert [kind for kind, _ in by_territory["Behind land"]] == [UNDERPERFORMING]
    assert [kind for kind, _ in by_territory["Quiet land"]] == [STALLED]
    assert [kind for kind, _ in by_territory["Dropping land"]] == [STALLED]
    assert [(a.subject, a.name, a.flag.kind) for a in attention] == [
        ("territory", "Behind land", UNDERPERFORMING),
        ("territory", "Dropping land", STALLED),
        ("territory", "Quiet land", STALLED),
        ("partner", "Behind", UNDERPERFORMING),
        ("partner", "Dropping", STALLED),
        ("partner", "Dropping", IMBALANCED),
        ("partner", "Quiet", STALLED),
    ]


def test_the_settings_move_the_thresholds(west: Region) -> None:
    settings = PerformanceSettings.current()
    settings.underperform_share = D("0.60")
    settings.stalled_days = 61
    settings.revenue_drop_share = D("0.50")
    settings.imbalance_factor = D(4)
    db.session.commit()
    _, territories, partners = figures.scope_figures([west], Q3_2018)

    attention = flag_rows([west], Q3_2018, territories, partners, LATER)

    assert attention == []


def test_flags_look_back_as_many_periods_as_set(west: Region) -> None:
    PerformanceSettings.current().underperform_periods = 3
    db.session.commit()
    _, territories, partners = figures.scope_figures([west], Q3_2018)

    flag_rows([west], Q3_2018, territories, partners, LATER)

    # Behind had no target in Q1 2018, so three periods short are not there.
    assert flags_of(partners)["Behind"] == []


def flag_queries(region: Region) -> int:
    _, territories, partners = figures.scope_figures([region], Q3_2018)
    db.session.commit()
    return count_statements(
        lambda: flag_rows([region], Q3_2018, territories, partners, LATER)
    )


def test_the_number_of_queries_does_not_grow_with_the_data(west: Region) -> None:
    PerformanceSettings.current()  # stored, so that no measurement creates it
    small = flag_queries(west)
    for n in range(6):
        add_partner(
            west,
            f"More {n}",
            [(date(2018, 5, n + 1), "100"), (date(2018, 8, n + 1), "90")],
            [Q2_2018, Q3_2018],
            accounts=2,
        )
    db.session.commit()

    large = flag_queries(west)

    assert small == large
    PerformanceSettings.current().underperform_periods = 4
    db.session.commit()
    assert flag_queries(west) > large  # more periods looked back at


# --- Periods of whole months look back by calendar months ---------------------------

JANUARY = Period(date(2019, 1, 1), date(2019, 1, 31))
FEBRUARY = Period(date(2019, 2, 1), date(2019, 2, 28))


@pytest.fixture
def monthly_region(clean_app: Flask) -> Region:
    """Slow Co has a target of 1,000 a month from December 2018 to February 2019."""
    region = make_region("Months")
    territory = make_territory(region, "Slow land", partner=make_org("Slow Co"))
    customer = make_account()
    assign(customer, territory)
    # 2 January is outside the 28 days before February: only January as a
    # calendar month holds it.
    for day, amount in [
        (date(2018, 12, 10), "700"),
        (date(2019, 1, 2), "600"),
        (date(2019, 2, 10), "300"),
    ]:
        add_sale(customer, day, amount)
    months = {
        date(2018, 12, 1): D(1000),
        date(2019, 1, 1): D(1000),
        date(2019, 2, 1): D(1000),
    }
    set_target(territory, date(2018, 12, 1), FEBRUARY.ends_on, D(3000), months, None)
    db.session.commit()
    return region


def test_a_month_is_compared_with_the_calendar_month_before(
    monthly_region: Region,
) -> None:
    _, territories, partners = figures.scope_figures([monthly_region], FEBRUARY)

    flag_rows([monthly_region], FEBRUARY, territories, partners, LATER)

    assert flags_of(partners)["Slow Co"] == [
        (
            UNDERPERFORMING,
            "Attainment 60% in 1 Jan 2019 - 31 Jan 2019 and 30% in 1 Feb 2019 - "
            "28 Feb 2019: below 80% of target in the last 2 months.",
        ),
        (
            STALLED,
            "Revenue $300.00 in 1 Feb 2019 - 28 Feb 2019, down 50% from $600.00 in "
            "1 Jan 2019 - 31 Jan 2019: more than 30%.",
        ),
    ]


def test_months_look_back_as_many_calendar_months_as_set(
    monthly_region: Region,
) -> None:
    PerformanceSettings.current().underperform_periods = 3
    db.session.commit()
    _, territories, partners = figures.scope_figures([monthly_region], FEBRUARY)

    flag_rows([monthly_region], FEBRUARY, territories, partners, LATER)

    [underperforming, _] = flags_of(partners)["Slow Co"]
    assert underperforming[1] == (
        "Attainment 70% in 1 Dec 2018 - 31 Dec 2018, 60% in 1 Jan 2019 - 31 Jan "
        "2019 and 30% in 1 Feb 2019 - 28 Feb 2019: below 80% of target in the last "
        "3 months."
    )


# --- Numbers in words and the day days without a sale are counted to ---------------


@pytest.mark.parametrize(
    ("ratio", "words"),
    [("-0.004", "0%"), ("0.004", "0%"), ("-0.006", "-1%"), ("0.62", "62%")],
)
def test_percent_never_writes_minus_nought(ratio: str, words: str) -> None:
    assert percent(D(ratio)) == words


def test_stalled_up_to_today_says_it_is_today() -> None:
    today = date(2026, 5, 12)

    flag = stalled_activity(date(2019, 12, 30), today, 60, today=today)

    assert flag is not None
    assert flag.reason == (
        "No sale or approved claim for 2,325 days up to today, 12 May 2026 (the "
        "last on 30 Dec 2019); the limit is 60 days."
    )


def test_a_running_period_counts_days_without_a_sale_up_to_today(
    clean_app: Flask,
) -> None:
    today = figures.today_utc()
    region = make_region("Now")
    last_sale = today - timedelta(days=70)
    add_partner(region, "Lately quiet", [(last_sale, "100")])
    running = Period(today - timedelta(days=100), today + timedelta(days=30))
    ended = Period(today - timedelta(days=100), today - timedelta(days=5))
    db.session.commit()

    found = {}
    for period in (running, ended):
        _, territories, partners = figures.scope_figures([region], period)
        flag_rows([region], period, territories, partners, today)
        found[period] = flags_of(partners)["Lately quiet"]

    def day(value: date) -> str:
        return f"{value.day} {value:%b %Y}"

    assert found[running] == [
        (
            STALLED,
            f"No sale or approved claim for 70 days up to today, {day(today)} (the "
            f"last on {day(last_sale)}); the limit is 60 days.",
        )
    ]
    assert found[ended] == [
        (
            STALLED,
            f"No sale or approved claim for 65 days up to {day(ended.ends_on)} (the "
            f"last on {day(last_sale)}); the limit is 60 days.",
        )
    ]


# --- When the bottom quartile cannot apply ------------------------------------------


def territory_row(number: int, target: str | None) -> figures.TerritoryRow:
    return figures.TerritoryRow(
        id=number,
        name=f"T{number}",
        region_id=1,
        region_name="West",
        partner_id=number,
        partner_name=f"P{number}",
        figures=figures.Figures(
            revenue=D(0), target=D(target) if target is not None else None
        ),
    )


def partner_row(number: int, target: str | None) -> figures.PartnerRow:
    return figures.PartnerRow(
        id=number,
        name=f"P{number}",
        territories=[f"T{number}"],
        figures=figures.Figures(
            revenue=D(0), target=D(target) if target is not None else None
        ),
    )


def test_the_quartile_note_names_what_is_missing(clean_app: Flask) -> None:
    three = [territory_row(n, "100") for n in range(3)] + [territory_row(9, None)]
    four = [territory_row(n, "100") for n in range(4)]
    partners = [partner_row(n, "100") for n in range(3)]
    many = [partner_row(n, "100") for n in range(5)]

    both = quartile_note("West", Q3_2018, three, partners)
    territories_only = quartile_note("West", Q3_2018, three, many)
    partners_only = quartile_note("West", Q3_2018, four, [partner_row(1, "100")])

    assert both == (
        "Flagging the bottom quartile does not apply in Q3 2018: it needs at least 4 "
        "territories (or partners) with a target, and West has 3 territories and 3 "
        "partners with one."
    )
    assert territories_only == (
        "Flagging the bottom quartile does not apply to territories in Q3 2018: it "
        "needs at least 4 territories with a target, and West has 3."
    )
    assert partners_only == (
        "Flagging the bottom quartile does not apply to partners in Q3 2018: it "
        "needs at least 4 partners with a target, and West has 1."
    )
    assert quartile_note("West", Q3_2018, four, many) is None


def test_no_quartile_note_when_the_quartile_is_off(clean_app: Flask) -> None:
    PerformanceSettings.current().use_bottom_quartile = False

    assert quartile_note("West", Q3_2018, [territory_row(1, "100")], []) is None
