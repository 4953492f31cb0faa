"""Targets: spread over months, overlaps refused, CSV imports all or nothing,
the targets and settings pages and who may open them."""

from __future__ import annotations

import codecs
import csv
import functools
import io
from collections import defaultdict
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from werkzeug.security import generate_password_hash

from portal.extensions import db
from portal.models import Role, User
from portal.performance import figures
from portal.performance.models import PerformanceSettings, TerritoryTarget
from portal.performance.periods import Period
from portal.performance.targets import (
    TargetRejected,
    import_targets,
    set_target,
    spread_by_days,
)
from territory_rules.models import Region, Territory
from tests.conftest import DEMO_DATA_DIR, AuthActions
from tests.factories import make_org, make_region, make_territory, make_user
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

    with pytest.raises(TargetRejected) as refused:
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

    with pytest.raises(TargetRejected) as refused:
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
    with pytest.raises(TargetRejected) as refused:
        set_target(
            california, date(2018, 7, 1), date(2018, 9, 30), D(amount), None, None
        )

    assert refused.value.errors["amount"] == message


def test_an_end_before_the_start_is_refused(california: Territory) -> None:
    with pytest.raises(TargetRejected) as refused:
        set_target(california, date(2018, 9, 30), date(2018, 7, 1), D(5), None, None)

    assert refused.value.errors["ends_on"] == (
        "The end date comes before the start date; swap them."
    )


def test_a_territory_with_territories_below_it_takes_no_target(
    west: Region, california: Territory
) -> None:
    make_territory(west, "Bay Area", parent=california)

    with pytest.raises(TargetRejected) as refused:
        set_target(california, date(2018, 7, 1), date(2018, 9, 30), D(5), None, None)

    assert "has territories below it" in refused.value.errors["territory"]


# --- Overlaps -----------------------------------------------------------------------


def test_an_overlapping_target_is_refused(california: Territory) -> None:
    set_target(california, date(2018, 7, 1), date(2018, 9, 30), D(900), None, None)

    with pytest.raises(TargetRejected) as refused:
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
    assert "The target was saved." in page
    assert "$9,200.00" in page


def test_a_bad_target_form_shows_the_messages_beside_the_fields(
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
    client: FlaskClient, auth: AuthActions, people: dict[str, User], west: Region
) -> None:
    auth.sign_in(people["manager"].email)

    response = client.get(
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
        data={"file": (io.BytesIO(data.encode()), "targets.csv"), "encoding": ""},
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
