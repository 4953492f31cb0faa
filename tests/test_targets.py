"""Targets: spread over months, overlaps refused, CSV imports all or nothing,
the targets and settings pages and who may open them."""

from __future__ import annotations

import codecs
import csv
import functools
import io
import re
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, func, select
from sqlalchemy.orm import selectinload
from werkzeug.security import generate_password_hash

from portal.extensions import db
from portal.models import Role, User
from portal.performance import figures
from portal.performance.models import (
    PerformanceSettings,
    TargetMonth,
    TerritoryTarget,
)
from portal.performance.periods import Period, quarter_of
from portal.performance.targets import (
    TARGET_DATES,
    import_targets,
    set_target,
    spread_by_days,
)
from territory_rules.editing import EditRejected
from territory_rules.imports import ImportReport
from territory_rules.models import Region, Territory
from tests.conftest import DEMO_DATA_DIR, AuthActions
from tests.factories import make_org, make_region, make_territory, make_user
from tests.statements import count_statements
from tests.test_demo_programs import PLAN

D = Decimal


@pytest.fixture(autouse=True)
def quick_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    quick = functools.partial(generate_password_hash, method="pbkdf2:sha256:1000")
    monkeypatch.setattr("portal.models.generate_password_hash", quick)


@pytest.fixture
def west(clean_app: Flask) -> Region:
    return make_region("West")


@pytest.fixture
def california(west: Region) -> Territory:
    return make_territory(west, "California", partner=make_org("Golden State"))


@pytest.fixture
def oregon(west: Region) -> Territory:
    return make_territory(west, "Oregon", partner=make_org("Cascade"))


def stored_months(target: TerritoryTarget) -> dict[str, Decimal]:
    return {f"{row.month:%Y-%m}": row.amount for row in target.months}


def target_count() -> int:
    return db.session.scalar(select(func.count()).select_from(TerritoryTarget)) or 0


# --- Spreading over months ----------------------------------------------------------


def test_a_quarter_is_spread_by_days_with_the_remainder_on_the_last_month() -> None:
    months = spread_by_days(date(2018, 7, 1), date(2018, 9, 30), D("9200.00"))

    assert months == {
        date(2018, 7, 1): D("3100.00"),  # 31 of 92 days
        date(2018, 8, 1): D("3100.00"),
        date(2018, 9, 1): D("3000.00"),
    }


def test_partial_months_get_their_days_share_cut_to_the_cent() -> None:
    # 15 Jan - 15 Mar 2018: 17 + 28 + 15 = 60 days.
    months = spread_by_days(date(2018, 1, 15), date(2018, 3, 15), D("100.00"))

    assert months == {
        date(2018, 1, 1): D("28.33"),
        date(2018, 2, 1): D("46.66"),
        date(2018, 3, 1): D("25.01"),
    }
    assert sum(months.values()) == D("100.00")


def test_set_target_spreads_by_days_when_no_months_are_given(
    california: Territory,
) -> None:
    target = set_target(
        california, date(2018, 1, 15), date(2018, 3, 15), D("600.00"), None, None
    )

    assert stored_months(target) == {
        "2018-01": D("170.00"),
        "2018-02": D("280.00"),
        "2018-03": D("150.00"),
    }


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        (Period(date(2018, 1, 1), date(2018, 3, 31)), D("600.00")),
        (Period(date(2018, 2, 1), date(2018, 2, 28)), D("280.00")),
        # 15-20 Jan: 6 of the 17 days of January inside the target.
        (Period(date(2018, 1, 1), date(2018, 1, 20)), D("60.00")),
        (Period(date(2018, 4, 1), date(2018, 6, 30)), None),
    ],
)
def test_a_periods_target_prorates_the_partial_months(
    west: Region, california: Territory, period: Period, expected: Decimal | None
) -> None:
    set_target(california, date(2018, 1, 15), date(2018, 3, 15), D("600"), None, None)

    [row] = figures.territory_rows([west], period)

    assert row.figures.target == expected


def test_a_monthly_distribution_is_kept_as_given(
    west: Region, california: Territory
) -> None:
    months = {
        date(2018, 7, 1): D("1000"),
        date(2018, 8, 1): D("0"),
        date(2018, 9, 1): D("8200"),
    }

    target = set_target(
        california, date(2018, 7, 1), date(2018, 9, 30), D("9200"), months, None
    )

    assert stored_months(target) == {
        "2018-07": D("1000.00"),
        "2018-08": D("0.00"),
        "2018-09": D("8200.00"),
    }
    [row] = figures.territory_rows([west], Period(date(2018, 9, 1), date(2018, 9, 30)))
    assert row.figures.target == D("8200.00")


def test_months_that_do_not_add_up_are_refused(california: Territory) -> None:
    months = {date(2018, 7, 1): D("1000"), date(2018, 8, 1): D("1000")}

    with pytest.raises(EditRejected) as refused:
        set_target(
            california, date(2018, 7, 1), date(2018, 9, 30), D("9200"), months, None
        )

    assert refused.value.errors["months"] == (
        "The months add up to $2,000.00 but the target is $9,200.00; change them so "
        "that they add up to the target, or leave them all empty to spread the "
        "target by days."
    )
    assert target_count() == 0


def test_a_month_outside_the_target_is_refused(california: Territory) -> None:
    months = {date(2018, 10, 1): D("9200")}

    with pytest.raises(EditRejected) as refused:
        set_target(
            california, date(2018, 7, 1), date(2018, 9, 30), D("9200"), months, None
        )

    assert "Oct 2018 is outside the target's dates" in refused.value.errors["months"]


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("-5", "The target is negative; enter an amount of zero or more."),
        ("10.005", "The target has more than two decimals; round it to the cent."),
    ],
)
def test_bad_amounts_are_refused(
    california: Territory, amount: str, message: str
) -> None:
    with pytest.raises(EditRejected) as refused:
        set_target(
            california, date(2018, 7, 1), date(2018, 9, 30), D(amount), None, None
        )

    assert refused.value.errors["amount"] == message


def test_an_end_before_the_start_is_refused(california: Territory) -> None:
    with pytest.raises(EditRejected) as refused:
        set_target(california, date(2018, 9, 30), date(2018, 7, 1), D(5), None, None)

    assert refused.value.errors["ends_on"] == (
        "The end date comes before the start date; swap them."
    )


def test_a_territory_with_territories_below_it_takes_no_target(
    west: Region, california: Territory
) -> None:
    make_territory(west, "Bay Area", parent=california)

    with pytest.raises(EditRejected) as refused:
        set_target(california, date(2018, 7, 1), date(2018, 9, 30), D(5), None, None)

    assert "has territories below it" in refused.value.errors["territory"]


# --- Overlaps -----------------------------------------------------------------------


def test_an_overlapping_target_is_refused(california: Territory) -> None:
    set_target(california, date(2018, 7, 1), date(2018, 9, 30), D(900), None, None)

    with pytest.raises(EditRejected) as refused:
        set_target(california, date(2018, 9, 30), date(2018, 12, 31), D(5), None, None)

    assert refused.value.errors["starts_on"] == (
        "California already has a target for Q3 2018 ($900.00) that shares days "
        "with this one; change the dates, or delete that target first."
    )
    assert target_count() == 1


def test_a_target_starting_the_day_after_is_not_an_overlap(
    california: Territory,
) -> None:
    set_target(california, date(2018, 7, 1), date(2018, 9, 30), D(900), None, None)

    set_target(california, date(2018, 10, 1), date(2018, 12, 31), D(5), None, None)

    assert target_count() == 2


def test_the_same_dates_replace_the_target(california: Territory) -> None:
    set_target(california, date(2018, 7, 1), date(2018, 9, 30), D(900), None, None)

    target = set_target(
        california, date(2018, 7, 1), date(2018, 9, 30), D(1200), None, None
    )

    assert target_count() == 1
    assert target.amount == D(1200)
    assert sum(stored_months(target).values()) == D(1200)


def test_other_territories_do_not_overlap(
    california: Territory, oregon: Territory
) -> None:
    set_target(california, date(2018, 7, 1), date(2018, 9, 30), D(900), None, None)

    set_target(oregon, date(2018, 7, 1), date(2018, 9, 30), D(300), None, None)

    assert target_count() == 2


# --- The years a target may cover -----------------------------------------------------


@pytest.mark.parametrize(
    ("starts_on", "ends_on", "field", "message"),
    [
        (
            date(9999, 1, 1),
            date(9999, 12, 31),
            "starts_on",
            "The start date 9999-01-01 is outside the years targets cover; choose a "
            "date from 2000 to 2100.",
        ),
        (
            date(2019, 1, 1),
            date(9999, 12, 31),
            "ends_on",
            "The end date 9999-12-31 is outside the years targets cover; choose a "
            "date from 2000 to 2100.",
        ),
        (
            date(1, 1, 1),
            date(1, 3, 31),
            "starts_on",
            "The start date 0001-01-01 is outside the years targets cover; choose a "
            "date from 2000 to 2100.",
        ),
    ],
)
def test_dates_outside_the_years_targets_cover_are_refused(
    california: Territory, starts_on: date, ends_on: date, field: str, message: str
) -> None:
    with pytest.raises(EditRejected) as refused:
        set_target(california, starts_on, ends_on, D(5), None, None)

    assert refused.value.errors[field] == message
    assert target_count() == 0


def test_the_first_and_last_days_of_the_years_are_allowed(
    california: Territory,
) -> None:
    first = set_target(
        california, TARGET_DATES.starts_on, date(2000, 3, 31), D(5), None, None
    )
    last = set_target(
        california, date(2100, 10, 1), TARGET_DATES.ends_on, D(9), None, None
    )

    assert (first.starts_on, last.ends_on) == (date(2000, 1, 1), date(2100, 12, 31))
    assert stored_months(last) == {
        "2100-10": D("3.03"),
        "2100-11": D("2.93"),
        "2100-12": D("3.04"),
    }


def test_an_imported_row_outside_the_years_is_refused_on_its_row(
    california: Territory,
) -> None:
    data = (
        "territory,starts_on,ends_on,amount\n"
        "California,2019-01-01,2019-03-31,5\n"
        "California,9999-12-01,9999-12-31,5\n"
        "California,0001-01-01,0001-03-31,5\n"
    )

    report = import_targets(data.encode(), None, [california])

    assert not report.ok
    assert report.errors == [
        "Row 3: The start date 9999-12-01 is outside the years targets cover; choose "
        "a date from 2000 to 2100.",
        "Row 3: The end date 9999-12-31 is outside the years targets cover; choose a "
        "date from 2000 to 2100.",
        "Row 4: The start date 0001-01-01 is outside the years targets cover; choose "
        "a date from 2000 to 2100.",
        "Row 4: The end date 0001-03-31 is outside the years targets cover; choose a "
        "date from 2000 to 2100.",
    ]
    assert target_count() == 0


def test_a_row_outside_the_years_with_months_is_refused_on_its_row(
    california: Territory,
) -> None:
    data = (
        "territory,starts_on,ends_on,amount,2100-12\n"
        "California,2100-12-01,9999-12-31,5,5\n"
    )

    report = import_targets(data.encode(), None, [california])

    assert report.errors == [
        "Row 2: The end date 9999-12-31 is outside the years targets cover; choose a "
        "date from 2000 to 2100."
    ]


@pytest.mark.parametrize("column", ["9999-12", "0000-01", "1999-12"])
def test_a_month_column_outside_the_years_is_refused(
    california: Territory, column: str
) -> None:
    data = (
        f"territory,starts_on,ends_on,amount,{column}\n"
        "California,2019-01-01,2019-03-31,5,\n"
    )

    report = import_targets(data.encode(), None, [california])

    assert report.errors == [
        f"The column '{column}' is a month outside the years targets cover; give "
        f"months from 2000-01 to 2100-12."
    ]


def test_dates_without_leading_zeros_are_read_as_before(
    california: Territory,
) -> None:
    data = "territory,starts_on,ends_on,amount\nCalifornia,2018-7-1,2018-9-30,9\n"

    report = import_targets(data.encode(), None, [california])

    assert report.ok, report.errors
    [target] = db.session.scalars(select(TerritoryTarget))
    assert (target.starts_on, target.ends_on) == (date(2018, 7, 1), date(2018, 9, 30))


# --- CSV import ---------------------------------------------------------------------

GOOD = (
    "territory,starts_on,ends_on,amount,2018-07,2018-08,2018-09\n"
    "California,2018-07-01,2018-09-30,9200,1000,,8200\n"
    "Oregon,2018-07-01,2018-09-30,920,,,\n"
)


def test_a_good_file_with_a_byte_order_mark_is_imported(
    california: Territory, oregon: Territory
) -> None:
    report = import_targets(codecs.BOM_UTF8 + GOOD.encode(), None, [california, oregon])

    assert report.ok, report.errors
    assert report.counts == {"targets": 2, "replaced": 0}
    by_territory = {
        t.territory.name: stored_months(t)
        for t in db.session.scalars(select(TerritoryTarget))
    }
    assert by_territory["California"] == {
        "2018-07": D("1000.00"),
        "2018-08": D("0.00"),
        "2018-09": D("8200.00"),
    }
    assert by_territory["Oregon"] == {
        "2018-07": D("310.00"),
        "2018-08": D("310.00"),
        "2018-09": D("300.00"),
    }


def test_column_names_are_read_whatever_their_case_and_spaces(
    california: Territory, oregon: Territory
) -> None:
    data = (
        " Territory ,Starts_On,ENDS_ON, Amount,2018-07,2018-08,2018-09\n"
        "California,2018-07-01,2018-09-30,9200,1000,,8200\n"
        "Oregon,2018-07-01,2018-09-30,920,,,\n"
    )

    report = import_targets(data.encode(), None, [california, oregon])

    assert report.ok, report.errors
    assert report.counts == {"targets": 2, "replaced": 0}
    by_territory = {
        t.territory.name: stored_months(t)
        for t in db.session.scalars(select(TerritoryTarget))
    }
    assert by_territory["California"]["2018-09"] == D("8200.00")
    assert by_territory["Oregon"]["2018-07"] == D("310.00")


def test_a_column_named_twice_in_different_cases_is_refused_once(
    california: Territory,
) -> None:
    data = (
        "Territory,starts_on,ends_on,amount,territory\n"
        "California,2018-07-01,2018-09-30,100,California\n"
    )

    report = import_targets(data.encode(), None, [california])

    assert not report.ok
    assert len(report.errors) == 1
    assert "2 times in the header; rename the copies" in report.errors[0]
    assert target_count() == 0


def test_importing_again_replaces_instead_of_adding(
    california: Territory, oregon: Territory
) -> None:
    import_targets(GOOD.encode(), None, [california, oregon])

    report = import_targets(GOOD.encode(), None, [california, oregon])

    assert report.ok
    assert report.counts == {"targets": 0, "replaced": 2}
    assert target_count() == 2


def test_a_windows_1252_file_is_read_and_said_so(west: Region) -> None:
    cote = make_territory(west, "Côte Ouest", partner=make_org())
    data = "territory,starts_on,ends_on,amount\nCôte Ouest,2018-01-01,2018-03-31,90\n"

    report = import_targets(data.encode("cp1252"), None, [cote])

    assert report.ok, report.errors
    assert report.notes == [
        "The file is not UTF-8; it was read as Windows-1252 (cp1252)."
    ]
    assert target_count() == 1


COMMA_FILE = (
    'territory,starts_on,ends_on,amount\nCalifornia,2018-01-01,2018-03-31,"1.234,50"\n'
)


def test_comma_decimals_are_read_with_the_declared_separator(
    california: Territory,
) -> None:
    data = COMMA_FILE

    report = import_targets(data.encode(), None, [california], decimal_separator=",")

    assert report.ok, report.errors
    [target] = db.session.scalars(select(TerritoryTarget))
    assert target.amount == D("1234.50")


def test_comma_decimals_without_declaring_them_are_refused(
    california: Territory,
) -> None:
    data = COMMA_FILE

    report = import_targets(data.encode(), None, [california])

    assert not report.ok
    assert "declare the comma as its decimal separator" in report.errors[0]
    assert target_count() == 0


BAD_FILES = {
    "bad date": (
        "territory,starts_on,ends_on,amount\n"
        "California,2018-07-01,2018-09-30,100\n"
        "Oregon,2018-13-01,2018-12-31,100\n",
        "Row 3: the start date '2018-13-01' in column 'starts_on' does not match the "
        "date format %Y-%m-%d (for example 2019-11-28).",
    ),
    "unknown territory": (
        "territory,starts_on,ends_on,amount\n"
        "California,2018-07-01,2018-09-30,100\n"
        "Texas,2018-07-01,2018-09-30,100\n",
        "Row 3: there is no territory named 'Texas' among California, Oregon.",
    ),
    "missing column": (
        "territory,starts_on,amount\nCalifornia,2018-07-01,100\n",
        "The column 'ends_on' chosen for the ends_on column is not in the file; its "
        "columns are 'territory', 'starts_on', 'amount'.",
    ),
    "months not adding up": (
        "territory,starts_on,ends_on,amount,2018-07\n"
        "California,2018-07-01,2018-09-30,100,60\n",
        "Row 2: The months add up to $60.00 but the target is $100.00; change them so "
        "that they add up to the target, or leave them all empty to spread the target "
        "by days.",
    ),
    "rows overlapping each other": (
        "territory,starts_on,ends_on,amount\n"
        "California,2018-01-01,2018-12-31,100\n"
        "California,2018-03-01,2018-03-31,10\n",
        "Row 3: the target of California for 1 Mar 2018 - 31 Mar 2018 shares days "
        "with row 2; give each day one target.",
    ),
    "unknown column": (
        "territory,starts_on,ends_on,amount,note\n"
        "California,2018-01-01,2018-12-31,100,x\n",
        "The column 'note' is neither one of territory, starts_on, ends_on, amount nor "
        "a month written YYYY-MM (e.g. 2018-01); rename or remove it.",
    ),
    "negative amount": (
        "territory,starts_on,ends_on,amount\nOregon,2018-01-01,2018-12-31,-1\n",
        "Row 2: The target is negative; enter an amount of zero or more.",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_file_imports_nothing_and_says_why(
    california: Territory, oregon: Territory, case: str
) -> None:
    data, message = BAD_FILES[case]

    report = import_targets(data.encode(), None, [california, oregon])

    assert not report.ok
    assert message in report.errors
    assert target_count() == 0


def test_a_row_overlapping_a_stored_target_imports_nothing(
    california: Territory, oregon: Territory
) -> None:
    set_target(california, date(2018, 7, 1), date(2018, 9, 30), D(900), None, None)
    data = (
        "territory,starts_on,ends_on,amount\n"
        "Oregon,2018-07-01,2018-09-30,100\n"
        "California,2018-08-01,2018-08-31,100\n"
    )

    report = import_targets(data.encode(), None, [california, oregon])

    assert not report.ok
    assert report.errors[0].startswith(
        "Row 3: California already has a target for Q3 2018 ($900.00)"
    )
    assert target_count() == 1


def test_territories_outside_the_scope_are_unknown(
    california: Territory, oregon: Territory
) -> None:
    data = "territory,starts_on,ends_on,amount\nOregon,2018-07-01,2018-09-30,100\n"

    report = import_targets(data.encode(), None, [california])

    assert report.errors == [
        "Row 2: there is no territory named 'Oregon' among California."
    ]


def quarters(count: int) -> list[Period]:
    """``count`` calendar quarters, from Q1 2001 on."""
    periods = [quarter_of(date(2001, 1, 1))]
    while len(periods) < count:
        periods.append(quarter_of(periods[-1].ends_on + timedelta(days=1)))
    return periods


def target_file(names: list[str], per_territory: int) -> bytes:
    """Quarterly targets of each territory named, ``per_territory`` each."""
    lines = ["territory,starts_on,ends_on,amount"]
    for name in names:
        for number, quarter in enumerate(quarters(per_territory)):
            lines.append(f"{name},{quarter.starts_on},{quarter.ends_on},{100 + number}")
    return ("\n".join(lines) + "\n").encode()


def month_count() -> int:
    return db.session.scalar(select(func.count()).select_from(TargetMonth)) or 0


def test_a_large_import_checks_and_writes_in_a_few_statements(west: Region) -> None:
    small = [make_territory(west, f"Small {n}", partner=make_org()) for n in range(2)]
    large = [make_territory(west, f"Large {n}", partner=make_org()) for n in range(6)]
    db.session.commit()

    reports: list[ImportReport] = []

    def imported(territories: list[Territory], per_territory: int) -> int:
        data = target_file([t.name for t in territories], per_territory)
        return count_statements(
            lambda: reports.append(import_targets(data, None, territories))
        )

    few, many = imported(small, 5), imported(large, 350)
    again = imported(large, 350)

    assert [report.counts for report in reports] == [
        {"targets": 10, "replaced": 0},
        {"targets": 2100, "replaced": 0},
        {"targets": 0, "replaced": 2100},
    ]
    assert target_count() == 10 + 2100
    assert month_count() == 3 * (10 + 2100)
    assert few <= 8
    # 2,100 rows: three chunks of two inserts each, never a statement per row.
    assert many <= 20
    # Replacing them adds two deletes per chunk.
    assert again <= many + 6


def test_an_import_replaces_same_dates_and_refuses_other_overlaps_in_one_check(
    california: Territory, oregon: Territory
) -> None:
    set_target(california, date(2019, 1, 1), date(2019, 3, 31), D(900), None, None)
    set_target(oregon, date(2019, 1, 1), date(2019, 1, 31), D(50), None, None)
    clashing = (
        "territory,starts_on,ends_on,amount\n"
        "California,2019-01-01,2019-03-31,1200\n"
        "Oregon,2019-01-01,2019-03-31,300\n"
    )
    replacing = (
        "territory,starts_on,ends_on,amount\n"
        "California,2019-01-01,2019-03-31,1200\n"
        "Oregon,2019-02-01,2019-03-31,300\n"
    )

    refused = import_targets(clashing.encode(), None, [california, oregon])
    report = import_targets(replacing.encode(), None, [california, oregon])

    assert refused.errors == [
        "Row 3: Oregon already has a target for 1 Jan 2019 - 31 Jan 2019 ($50.00) "
        "that shares days with this one; change the dates, or delete that target "
        "first."
    ]
    assert report.ok, report.errors
    assert report.counts == {"targets": 1, "replaced": 1}
    stored = {
        (t.territory.name, t.starts_on): (t.amount, sum(stored_months(t).values()))
        for t in db.session.scalars(select(TerritoryTarget))
    }
    assert stored == {
        ("California", date(2019, 1, 1)): (D(1200), D(1200)),
        ("Oregon", date(2019, 1, 1)): (D(50), D(50)),
        ("Oregon", date(2019, 2, 1)): (D(300), D(300)),
    }
    assert month_count() == 3 + 1 + 2


def test_a_file_of_bad_rows_lists_the_first_problems_and_counts_the_rest(
    california: Territory,
) -> None:
    data = "territory,starts_on,ends_on,amount\n" + (
        "California,2019-01-01,2019-03-31,lots\n" * 300
    )

    report = import_targets(data.encode(), None, [california])

    assert len(report.errors) == 51
    assert report.errors[0] == (
        "Row 2: the amount 'lots' in column 'amount' is not a number."
    )
    assert report.errors[49].startswith("Row 51: ")
    assert report.errors[50] == (
        "250 more rows were not checked; fix the problems above and import the file "
        "again to check the rest."
    )
    assert target_count() == 0


def test_rows_overlapping_each_other_are_all_counted(california: Territory) -> None:
    data = "territory,starts_on,ends_on,amount\n" + (
        "California,2019-01-01,2019-03-31,5\n" * 120
    )

    report = import_targets(data.encode(), None, [california])

    assert len(report.errors) == 51
    assert report.errors[0] == (
        "Row 3: the target of California for Q1 2019 shares days with row 2; give "
        "each day one target."
    )
    assert report.errors[50] == (
        "... and 69 more problems. 119 rows have problems; 69 of them are not "
        "listed above."
    )


# --- Pages --------------------------------------------------------------------------


@pytest.fixture
def people(west: Region, california: Territory) -> dict[str, User]:
    east = make_region("East")
    make_territory(east, "New England", partner=make_org())
    manager = make_user(Role.MANAGER, email="west@example.test")
    west.managers.append(manager)
    east_manager = make_user(Role.MANAGER, email="east@example.test")
    east.managers.append(east_manager)
    people = {
        "admin": make_user(Role.ADMIN, email="admin@example.test"),
        "manager": manager,
        "east": east_manager,
        "partner": make_user(
            Role.PARTNER, organisation=california.partner, email="p@example.test"
        ),
    }
    db.session.commit()
    return people


@pytest.fixture
def manager(
    client: FlaskClient, auth: AuthActions, people: dict[str, User]
) -> FlaskClient:
    """The client, signed in as the manager of the West region."""
    auth.sign_in(people["manager"].email)
    return client


def targets_url(region: Region) -> str:
    return f"/regions/{region.id}/targets"


@pytest.mark.parametrize(
    ("who", "status"),
    [("admin", 200), ("manager", 200), ("east", 404), ("partner", 403)],
)
def test_who_may_open_the_targets_page(
    client: FlaskClient,
    auth: AuthActions,
    people: dict[str, User],
    west: Region,
    who: str,
    status: int,
) -> None:
    auth.sign_in(people[who].email)

    response = client.get(targets_url(west))

    assert response.status_code == status


def test_a_manager_sets_a_target_with_a_monthly_split(
    client: FlaskClient,
    auth: AuthActions,
    people: dict[str, User],
    west: Region,
    california: Territory,
) -> None:
    auth.sign_in(people["manager"].email)

    response = client.post(
        targets_url(west),
        data={
            "territory": str(california.id),
            "starts_on": "2018-07-01",
            "ends_on": "2018-09-30",
            "amount": "9.200,00",
            "decimal_separator": "comma",
            "month-2018-07": "1.000",
            "month-2018-08": "",
            "month-2018-09": "8.200,00",
        },
    )

    assert response.status_code == 302
    [target] = db.session.scalars(select(TerritoryTarget))
    assert target.amount == D("9200.00")
    assert target.set_by_id == people["manager"].id
    assert stored_months(target)["2018-09"] == D("8200.00")
    page = client.get(targets_url(west)).get_data(as_text=True)
    assert "The target of California for Q3 2018 was saved: $9,200.00." in page
    assert "$9,200.00" in page


def test_a_bad_target_form_shows_the_messages_beside_the_fields(
    manager: FlaskClient,
    west: Region,
    california: Territory,
) -> None:
    response = manager.post(
        targets_url(west),
        data={
            "territory": str(california.id),
            "starts_on": "2018-07-01",
            "ends_on": "30/09/2018",
            "amount": "lots",
            "decimal_separator": "point",
        },
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Enter the end date as YYYY-MM-DD, e.g. 2018-07-01." in page
    assert "&#39;lots&#39; is not a number" in page
    assert target_count() == 0


def test_a_manager_cannot_set_a_target_in_another_region(
    client: FlaskClient, auth: AuthActions, people: dict[str, User], west: Region
) -> None:
    auth.sign_in(people["east"].email)

    response = client.post(
        targets_url(west),
        data={"territory": "1", "starts_on": "2018-07-01", "ends_on": "2018-09-30"},
    )

    assert response.status_code == 404
    assert target_count() == 0


def test_the_months_fragment_follows_the_dates(
    manager: FlaskClient, west: Region
) -> None:
    response = manager.get(
        targets_url(west) + "?starts_on=2018-01-15&ends_on=2018-03-15",
        headers={"HX-Request": "true"},
    )

    page = response.get_data(as_text=True)
    assert 'name="month-2018-01"' in page
    assert 'name="month-2018-03"' in page
    assert 'name="month-2018-04"' not in page
    assert "<html" not in page


def test_a_file_is_imported_from_the_page(
    client: FlaskClient,
    auth: AuthActions,
    people: dict[str, User],
    west: Region,
    california: Territory,
) -> None:
    auth.sign_in(people["manager"].email)
    data = "territory,starts_on,ends_on,amount\nCalifornia,2018-07-01,2018-09-30,100\n"

    response = client.post(
        targets_url(west) + "/import",
        data={
            "import-file": (io.BytesIO(data.encode()), "targets.csv"),
            "import-encoding": "",
        },
        content_type="multipart/form-data",
    )

    assert response.status_code == 200
    assert "Every row of" in response.get_data(as_text=True)
    assert target_count() == 1


def test_a_target_is_deleted_only_in_its_own_region(
    client: FlaskClient,
    auth: AuthActions,
    people: dict[str, User],
    west: Region,
    california: Territory,
) -> None:
    target = set_target(
        california, date(2018, 7, 1), date(2018, 9, 30), D(9), None, None
    )
    east = db.session.scalars(select(Region).where(Region.name == "East")).one()
    auth.sign_in(people["admin"].email)

    wrong = client.post(f"/regions/{east.id}/targets/{target.id}/delete")
    right = client.post(f"/regions/{west.id}/targets/{target.id}/delete")

    assert wrong.status_code == 404
    assert right.status_code == 302
    assert target_count() == 0


def rows_shown(page: str) -> list[tuple[str, str]]:
    """(territory, period) of each row of the list of targets, in order."""
    return re.findall(
        r'<tr id="target-\d+">\s*<td>([^<]+)</td>\s*<td class="nowrap">([^<]+)</td>',
        page,
    )


@pytest.fixture
def many_targets(
    people: dict[str, User], california: Territory, oregon: Territory
) -> None:
    """60 quarterly targets each for California and Oregon, Q1 2001 to Q4 2015."""
    data = target_file(["California", "Oregon"], 60)
    report = import_targets(data, people["manager"], [california, oregon])
    assert report.ok, report.errors


def test_the_list_shows_fifty_targets_a_page_latest_periods_first(
    manager: FlaskClient,
    west: Region,
    many_targets: None,
) -> None:
    first = manager.get(targets_url(west)).text
    last = manager.get(targets_url(west) + "?page=3").text
    beyond = manager.get(targets_url(west) + "?page=99").text

    assert rows_shown(first)[:3] == [
        ("California", "Q4 2015"),
        ("Oregon", "Q4 2015"),
        ("California", "Q3 2015"),
    ]
    assert len(rows_shown(first)) == 50
    assert "120 targets, latest periods first · page 1 of 3." in first
    assert len(rows_shown(last)) == 20
    assert rows_shown(last)[-1] == ("Oregon", "Q1 2001")
    assert rows_shown(beyond) == rows_shown(last)


def test_the_list_filters_by_territory_and_year_and_its_pager_keeps_them(
    manager: FlaskClient,
    west: Region,
    oregon: Territory,
    many_targets: None,
) -> None:
    one_year = manager.get(
        targets_url(west) + f"?list_territory={oregon.id}&year=2003"
    ).text
    one_territory = manager.get(targets_url(west) + f"?list_territory={oregon.id}").text

    assert rows_shown(one_year) == [
        ("Oregon", "Q4 2003"),
        ("Oregon", "Q3 2003"),
        ("Oregon", "Q2 2003"),
        ("Oregon", "Q1 2003"),
    ]
    assert f'<option value="{oregon.id}" selected>Oregon</option>' in one_year
    assert '<option value="2003" selected>2003</option>' in one_year
    assert {name for name, _ in rows_shown(one_territory)} == {"Oregon"}
    assert "60 targets, latest periods first · page 1 of 2." in one_territory
    next_link = f"/regions/{west.id}/targets?list_territory={oregon.id}&amp;page=2"
    assert f'href="{next_link}#target-list" rel="next"' in one_territory


@pytest.mark.parametrize("year", ["9999", "\u00b2", "9" * 5000])
def test_a_list_choice_that_cannot_be_read_says_what_to_fix(
    manager: FlaskClient,
    west: Region,
    many_targets: None,
    year: str,
) -> None:
    response = manager.get(
        targets_url(west), query_string={"list_territory": "999", "year": year}
    )

    assert response.status_code == 200
    assert (
        "Choose a territory from the list; showing every territory. Choose a year "
        "from 2000 to 2100; showing every year."
    ) in response.text
    assert len(rows_shown(response.text)) == 50


def test_a_bad_target_form_shows_one_page_of_the_list_again(
    manager: FlaskClient,
    west: Region,
    california: Territory,
    many_targets: None,
) -> None:
    response = manager.post(
        targets_url(west) + "?page=2",
        data={
            "territory": str(california.id),
            "starts_on": "2019-01-01",
            "ends_on": "2019-03-31",
            "amount": "lots",
        },
    )

    assert response.status_code == 400
    assert len(rows_shown(response.text)) == 50
    assert rows_shown(response.text)[0] == ("California", "Q3 2009")
    assert f'action="/regions/{west.id}/targets?page=2"' in response.text


def test_the_page_takes_the_same_number_of_queries_with_10_and_200_targets(
    client: FlaskClient,
    auth: AuthActions,
    people: dict[str, User],
    west: Region,
    california: Territory,
    oregon: Territory,
) -> None:
    auth.sign_in(people["manager"].email)

    def page_queries(per_territory: int) -> int:
        db.session.execute(delete(TargetMonth))
        db.session.execute(delete(TerritoryTarget))
        data = target_file(["California", "Oregon"], per_territory)
        assert import_targets(data, people["manager"], [california, oregon]).ok
        return count_statements(
            lambda: [
                client.get(targets_url(west) + query).status_code
                for query in ("", "?page=2", f"?list_territory={oregon.id}&year=2001")
            ]
        )

    few, many = page_queries(5), page_queries(100)

    assert target_count() == 200
    assert few == many


def test_the_page_has_no_duplicate_ids_and_each_label_names_its_own_field(
    manager: FlaskClient,
    west: Region,
    california: Territory,
) -> None:
    target = set_target(
        california, date(2019, 1, 1), date(2019, 3, 31), D(12000), None, None
    )
    pages = {
        "plain": manager.get(targets_url(west)).text,
        "confirming": manager.get(targets_url(west) + f"?delete={target.id}").text,
        "bad form": manager.post(targets_url(west), data={"amount": "x"}).text,
        "bad import": manager.post(targets_url(west) + "/import", data={}).text,
    }

    for name, page in pages.items():
        ids = Counter(re.findall(r'\sid="([^"]+)"', page))
        assert [i for i, n in ids.items() if n > 1] == [], name
        for label in re.findall(r'<label for="([^"]+)"', page):
            assert ids[label] == 1, (name, label)
    page = pages["plain"]
    assert '<label for="decimal_separator">Decimal separator</label>' in page
    assert (
        '<label for="import-decimal_separator">Decimal separator of the amounts</label>'
    ) in page
    assert 'id="import-decimal_separator" name="import-decimal_separator"' in page
    assert "Choose a CSV file to import." in pages["bad import"]


def test_saving_the_same_dates_says_the_target_was_replaced(
    client: FlaskClient,
    auth: AuthActions,
    people: dict[str, User],
    west: Region,
    california: Territory,
) -> None:
    auth.sign_in(people["manager"].email)
    form = {
        "territory": str(california.id),
        "starts_on": "2019-01-01",
        "ends_on": "2019-03-31",
        "decimal_separator": "point",
    }

    first = client.post(targets_url(west), data={**form, "amount": "9000"})
    first_page = client.get(targets_url(west)).text
    second = client.post(targets_url(west), data={**form, "amount": "12000"})
    second_page = client.get(targets_url(west)).text

    assert (first.status_code, second.status_code) == (302, 302)
    assert "The target of California for Q1 2019 was saved: $9,000.00." in first_page
    assert (
        "The target of California for Q1 2019 was replaced: it is now $12,000.00 "
        "instead of $9,000.00."
    ) in second_page
    assert target_count() == 1


# --- Deleting a target --------------------------------------------------------------


@pytest.fixture
def q1_target(california: Territory) -> TerritoryTarget:
    return set_target(
        california, date(2019, 1, 1), date(2019, 3, 31), D(12000), None, None
    )


def test_delete_asks_first_and_deletes_nothing_until_confirmed(
    client: FlaskClient,
    auth: AuthActions,
    people: dict[str, User],
    west: Region,
    q1_target: TerritoryTarget,
) -> None:
    auth.sign_in(people["manager"].email)
    page = client.get(targets_url(west)).text
    ask = re.search(
        r'href="([^"]+)"\s+aria-label="Delete the target of California', page
    )
    assert ask is not None

    confirming = client.get(ask[1].replace("&amp;", "&")).text

    assert (
        ask[1]
        == f"/regions/{west.id}/targets?delete={q1_target.id}#target-{q1_target.id}"
    )
    assert "Delete the target of California for Q1 2019 ($12,000.00)?" in confirming
    assert f'action="/regions/{west.id}/targets/{q1_target.id}/delete"' in confirming
    assert f'href="/regions/{west.id}/targets#target-{q1_target.id}">Keep</a>' in (
        confirming
    )
    assert target_count() == 1


def test_the_delete_address_leads_to_the_question_in_its_own_region_only(
    client: FlaskClient,
    auth: AuthActions,
    people: dict[str, User],
    west: Region,
    q1_target: TerritoryTarget,
) -> None:
    east = db.session.scalars(select(Region).where(Region.name == "East")).one()
    auth.sign_in(people["admin"].email)

    own = client.get(f"/regions/{west.id}/targets/{q1_target.id}/delete?page=2")
    foreign = client.get(f"/regions/{east.id}/targets/{q1_target.id}/delete")
    foreign_question = client.get(f"/regions/{east.id}/targets?delete={q1_target.id}")

    assert own.status_code == 302
    assert own.location == (
        f"/regions/{west.id}/targets?delete={q1_target.id}&page=2#target-{q1_target.id}"
    )
    assert foreign.status_code == 404
    assert foreign_question.status_code == 200
    assert "California" not in foreign_question.text
    assert (
        "That target is not in the list any more; nothing was deleted."
        in foreign_question.text
    )
    huge = client.get(f"/regions/{west.id}/targets?delete={10**30}")
    assert huge.status_code == 200
    assert "nothing was deleted" in huge.text
    assert target_count() == 1


def test_the_confirmed_delete_needs_the_csrf_token(
    clean_app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    people: dict[str, User],
    west: Region,
    q1_target: TerritoryTarget,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    auth.sign_in(people["manager"].email)
    monkeypatch.setitem(clean_app.config, "WTF_CSRF_ENABLED", True)
    page = client.get(targets_url(west) + f"?delete={q1_target.id}").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    address = f"/regions/{west.id}/targets/{q1_target.id}/delete"

    forged = client.post(address)
    assert forged.status_code == 400
    assert target_count() == 1

    confirmed = client.post(address, data={"csrf_token": token[1]})
    assert confirmed.status_code == 302
    assert target_count() == 0
    assert (
        "The target of California for Q1 2019 ($12,000.00) was deleted."
        in client.get(targets_url(west)).text
    )


def test_the_import_form_works_with_its_own_csrf_token(
    clean_app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    people: dict[str, User],
    west: Region,
    california: Territory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    auth.sign_in(people["manager"].email)
    monkeypatch.setitem(clean_app.config, "WTF_CSRF_ENABLED", True)
    page = client.get(targets_url(west)).text
    token = re.search(
        r'id="import-csrf_token" name="import-csrf_token" type="hidden" '
        r'value="([^"]+)"',
        page,
    )
    assert token is not None
    data = "territory,starts_on,ends_on,amount\nCalifornia,2019-01-01,2019-03-31,5\n"

    response = client.post(
        targets_url(west) + "/import",
        data={
            "import-csrf_token": token[1],
            "import-file": (io.BytesIO(data.encode()), "targets.csv"),
        },
        content_type="multipart/form-data",
    )

    assert response.status_code == 200
    assert target_count() == 1


# --- Dates out of range on the page -------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "starts_on=2019-01-01&ends_on=9999-12-31",
            "The end date 9999-12-31 is outside the years targets cover; choose a "
            "date from 2000 to 2100.",
        ),
        (
            "starts_on=0001-01-01&ends_on=0001-03-31",
            "The start date 0001-01-01 is outside the years targets cover; choose a "
            "date from 2000 to 2100.",
        ),
        (
            "starts_on=2019-01-01&ends_on=2100-12-31",
            "Too many months to split by hand.",
        ),
    ],
)
def test_the_months_fragment_says_which_date_is_out_of_range(
    manager: FlaskClient,
    west: Region,
    query: str,
    message: str,
) -> None:
    response = manager.get(
        targets_url(west) + "?" + query, headers={"HX-Request": "true"}
    )

    assert response.status_code == 200
    assert message in response.text
    assert 'name="month-' not in response.text


def test_a_target_form_out_of_range_shows_the_message_beside_the_field(
    manager: FlaskClient,
    west: Region,
    california: Territory,
) -> None:
    response = manager.post(
        targets_url(west),
        data={
            "territory": str(california.id),
            "starts_on": "9999-01-01",
            "ends_on": "9999-12-31",
            "amount": "5",
        },
    )

    assert response.status_code == 400
    assert (
        '<p class="field-error" id="starts_on-error">The start date 9999-01-01 is '
        "outside the years targets cover; choose a date from 2000 to 2100.</p>"
    ) in response.text
    assert (
        '<p class="field-error" id="ends_on-error">The end date 9999-12-31 is '
        "outside the years targets cover; choose a date from 2000 to 2100.</p>"
    ) in response.text
    assert 'min="2000-01-01"' in response.text
    assert 'max="2100-12-31"' in response.text
    assert target_count() == 0


def test_an_import_out_of_range_is_refused_from_the_page(
    client: FlaskClient,
    auth: AuthActions,
    people: dict[str, User],
    west: Region,
    california: Territory,
) -> None:
    auth.sign_in(people["manager"].email)
    data = "territory,starts_on,ends_on,amount\nCalifornia,9999-12-01,9999-12-31,5\n"

    response = client.post(
        targets_url(west) + "/import",
        data={"import-file": (io.BytesIO(data.encode()), "targets.csv")},
        content_type="multipart/form-data",
    )

    assert response.status_code == 400
    assert (
        "Row 2: The start date 9999-12-01 is outside the years targets cover; "
        "choose a date from 2000 to 2100." in response.text
    )
    assert target_count() == 0


# --- Settings -----------------------------------------------------------------------

SETTINGS_URL = "/admin/performance/settings"
GOOD_SETTINGS = {
    "underperform_share": "0.75",
    "underperform_periods": "3",
    "use_bottom_quartile": "",
    "stalled_days": "45",
    "revenue_drop_share": "0,25",
    "imbalance_factor": "2",
    "leaderboard_for_partners": "y",
}


@pytest.mark.parametrize(("who", "status"), [("manager", 403), ("partner", 403)])
def test_only_admins_open_the_settings(
    client: FlaskClient,
    auth: AuthActions,
    people: dict[str, User],
    who: str,
    status: int,
) -> None:
    auth.sign_in(people[who].email)

    assert client.get(SETTINGS_URL).status_code == status
    assert client.post(SETTINGS_URL, data=GOOD_SETTINGS).status_code == status


def test_an_admin_changes_the_settings(
    client: FlaskClient, auth: AuthActions, people: dict[str, User]
) -> None:
    auth.sign_in(people["admin"].email)
    page = client.get(SETTINGS_URL).get_data(as_text=True)
    assert 'value="0.8"' in page  # the defaults

    response = client.post(SETTINGS_URL, data=GOOD_SETTINGS)

    assert response.status_code == 302
    settings = PerformanceSettings.current()
    assert settings.underperform_share == D("0.75")
    assert settings.underperform_periods == 3
    assert settings.use_bottom_quartile is False
    assert settings.stalled_days == 45
    assert settings.revenue_drop_share == D("0.25")
    assert settings.imbalance_factor == D("2")
    assert settings.leaderboard_for_partners is True


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "underperform_share",
            "1.2",
            "Enter the share of target as a share between 0 and 1, e.g. 0.8 for 80%.",
        ),
        (
            "underperform_periods",
            "0",
            "Enter the periods as a whole number from 1 to 12.",
        ),
        ("stalled_days", "2.5", "Enter the days as a whole number from 1 to 3,650."),
        (
            "revenue_drop_share",
            "-0.1",
            "Enter the drop as a share between 0 and 1, e.g. 0.8 for 80%.",
        ),
        (
            "imbalance_factor",
            "1",
            "Enter the factor as a number above 1 and at most 100, e.g. 1.5.",
        ),
    ],
)
def test_bad_settings_are_refused_with_a_message(
    client: FlaskClient,
    auth: AuthActions,
    people: dict[str, User],
    field: str,
    value: str,
    message: str,
) -> None:
    auth.sign_in(people["admin"].email)

    response = client.post(SETTINGS_URL, data={**GOOD_SETTINGS, field: value})

    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert PerformanceSettings.current().underperform_share == D("0.80")


# --- The demo's targets -------------------------------------------------------------


def expected_demo_targets() -> dict[tuple[str, date], Decimal]:
    """(territory, quarter start) -> target, from the Superstore file and the plan."""
    territory_of = {
        state: spec["territory"]
        for specs in PLAN["regions"].values()
        for spec in specs
        for state in spec["states"]
    }
    revenue: dict[tuple[str, int, int], Decimal] = defaultdict(Decimal)
    with (DEMO_DATA_DIR / "sample_superstore.csv").open(
        encoding="utf-8-sig", newline=""
    ) as f:
        for row in csv.DictReader(f):
            day = datetime.strptime(row["Order Date"], "%m/%d/%Y").date()
            quarter = (day.month - 1) // 3 + 1
            revenue[(territory_of[row["State"]], day.year, quarter)] += D(row["Sales"])
    years = sorted({year for _, year, _ in revenue})
    growth = D(str(PLAN["target_growth"]))
    expected = {}
    for territory in set(territory_of.values()):
        for year in years:
            for quarter in (1, 2, 3, 4):
                if year == years[0]:
                    base = revenue[(territory, year, quarter)]
                else:
                    base = revenue[(territory, year - 1, quarter)] * growth
                start = date(year, 3 * quarter - 2, 1)
                expected[(territory, start)] = base.quantize(D(1), ROUND_HALF_UP)
    return expected


def test_the_demo_sets_quarterly_targets_from_last_years_revenue(
    demo_app: Flask,
) -> None:
    with demo_app.app_context():
        stored = db.session.scalars(
            select(TerritoryTarget).options(
                selectinload(TerritoryTarget.territory),
                selectinload(TerritoryTarget.months),
            )
        ).all()

        found = {(t.territory.name, t.starts_on): t.amount for t in stored}
        assert found == expected_demo_targets()
        assert PLAN["target_growth"] == 1.10
        for target in stored:
            assert Period(target.starts_on, target.ends_on).is_quarter
            assert sum(stored_months(target).values()) == target.amount
