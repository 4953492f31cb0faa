"""The leaderboard ranks partners by attainment, then revenue; partners see only
their own rank, and only when the admins allow it."""

from __future__ import annotations

import functools
import itertools
import re
from datetime import date
from decimal import Decimal

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from portal.extensions import db
from portal.models import PartnerOrganisation, Role, User
from portal.performance.figures import Figures, PartnerRow
from portal.performance.leaderboard import leaderboard, ordinal, ranked
from portal.performance.models import PerformanceSettings
from portal.performance.periods import quarter_of
from portal.performance.targets import set_target
from territory_rules.models import Region
from tests.conftest import AuthActions
from tests.factories import (
    make_account,
    make_org,
    make_region,
    make_territory,
    make_user,
)
from tests.program_factories import add_sale, assign

D = Decimal
Q3_2018 = quarter_of(date(2018, 8, 1))
_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def quick_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    quick = functools.partial(generate_password_hash, method="pbkdf2:sha256:1000")
    monkeypatch.setattr("portal.models.generate_password_hash", quick)


def row(name: str, revenue: str, target: str | None, owns: bool = True) -> PartnerRow:
    return PartnerRow(
        id=next(_ids),
        name=name,
        territories=[],
        figures=Figures(revenue=D(revenue), target=D(target) if target else None),
        owns_territory=owns,
    )


# --- Ranking ------------------------------------------------------------------------


def test_partners_rank_by_attainment_then_revenue() -> None:
    rows = [
        row("Ahead", "1200", "1000"),  # 120%
        row("Behind", "900", "1000"),  # 90%
        row("Behind but bigger", "1800", "2000"),  # 90%, more revenue
        row("No target", "9000", None),
    ]

    places = ranked(rows)

    assert [(p.rank, p.name) for p in places] == [
        (1, "Ahead"),
        (2, "Behind but bigger"),
        (3, "Behind"),
        (4, "No target"),
    ]


def test_equal_attainment_and_revenue_share_a_rank() -> None:
    rows = [
        row("B", "500", "1000"),
        row("A", "500", "1000"),
        row("C", "100", "1000"),
    ]

    places = ranked(rows)

    assert [(p.rank, p.name) for p in places] == [(1, "A"), (1, "B"), (3, "C")]


def test_partners_without_a_territory_in_the_region_are_not_ranked() -> None:
    places = ranked([row("Owner", "1", "10"), row("Visitor", "99", None, owns=False)])

    assert [p.name for p in places] == ["Owner"]


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (1, "1st"),
        (2, "2nd"),
        (3, "3rd"),
        (4, "4th"),
        (11, "11th"),
        (12, "12th"),
        (13, "13th"),
        (21, "21st"),
        (22, "22nd"),
        (101, "101st"),
        (111, "111th"),
    ],
)
def test_ordinal(number: int, text: str) -> None:
    assert ordinal(number) == text


# --- On the database ----------------------------------------------------------------


@pytest.fixture
def west(clean_app: Flask) -> Region:
    """Three partners in West with Q3 2018 sales; two of them with targets."""
    region = make_region("West")
    for name, revenue, target in (
        ("Cascade", "900", "1000"),
        ("Golden State", "1200", "1000"),
        ("Mesa", "5000", None),
    ):
        partner = make_org(name)
        territory = make_territory(region, f"{name} land", partner=partner)
        account = make_account()
        assign(account, territory)
        add_sale(account, date(2018, 8, 15), revenue)
        if target:
            set_target(
                territory, Q3_2018.starts_on, Q3_2018.ends_on, D(target), None, None
            )
    db.session.commit()
    return region


def test_leaderboard_of_a_region(west: Region) -> None:
    places = leaderboard(west, Q3_2018)

    assert [(p.rank, p.name, p.revenue, p.attainment) for p in places] == [
        (1, "Golden State", D("1200"), D("1.2")),
        (2, "Cascade", D("900"), D("0.9")),
        (3, "Mesa", D("5000"), None),
    ]


def test_revenue_outside_a_partners_targeted_territories_does_not_lift_its_rank(
    west: Region,
) -> None:
    """Cascade also owns Mesa land now, which has no target: its 5,000 stays out."""
    cascade = db.session.query(PartnerOrganisation).filter_by(name="Cascade").one()
    mesa = make_territory(west, "Second Cascade land", partner=cascade)
    account = make_account()
    assign(account, mesa)
    add_sale(account, date(2018, 8, 16), "5000")
    db.session.commit()

    places = {p.name: p for p in leaderboard(west, Q3_2018)}

    assert places["Cascade"].revenue == D("5900")
    assert places["Cascade"].attainment == D("900") / D("1000")
    assert [places[n].rank for n in ("Golden State", "Cascade", "Mesa")] == [1, 2, 3]


def partner_user(name: str) -> User:
    organisation = db.session.query(PartnerOrganisation).filter_by(name=name).one()
    user = make_user(Role.PARTNER, organisation=organisation, email="me@example.test")
    db.session.commit()
    return user


def allow_partners(allowed: bool) -> None:
    PerformanceSettings.current().leaderboard_for_partners = allowed
    db.session.commit()


def test_a_partner_sees_its_rank_when_allowed(
    client: FlaskClient, auth: AuthActions, west: Region
) -> None:
    allow_partners(True)
    auth.sign_in(partner_user("Cascade").email)

    line = client.get(f"/my/rank/{west.id}").get_data(as_text=True)

    assert (
        "You rank 2nd of 3 partners in West in Q3 2018, the latest quarter with sales."
        in line
    )
    assert "Golden State" not in line


def test_the_rank_speaks_of_this_quarter_when_it_has_sales(
    client: FlaskClient,
    auth: AuthActions,
    west: Region,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        "portal.performance.admin_views.today_utc", lambda: date(2018, 9, 1)
    )
    allow_partners(True)
    auth.sign_in(partner_user("Golden State").email)

    line = client.get(f"/my/rank/{west.id}").get_data(as_text=True)

    assert "You rank 1st of 3 partners in West this quarter." in line


def test_no_rank_when_the_setting_hides_it(
    client: FlaskClient, auth: AuthActions, west: Region
) -> None:
    allow_partners(False)
    auth.sign_in(partner_user("Cascade").email)

    response = client.get(f"/my/rank/{west.id}")

    assert response.status_code == 200
    assert response.get_data(as_text=True) == ""


def test_no_rank_in_a_region_where_the_partner_owns_nothing(
    client: FlaskClient, auth: AuthActions, west: Region
) -> None:
    east = make_region("East")
    db.session.commit()
    allow_partners(True)
    auth.sign_in(partner_user("Cascade").email)

    assert client.get(f"/my/rank/{east.id}").get_data(as_text=True) == ""


def test_the_partner_home_asks_for_the_rank(
    client: FlaskClient, auth: AuthActions, west: Region
) -> None:
    auth.sign_in(partner_user("Cascade").email)

    page = client.get("/my/territory").get_data(as_text=True)

    assert f'hx-get="/my/rank/{west.id}"' in page


def test_managers_do_not_get_the_partner_rank(
    client: FlaskClient, auth: AuthActions, west: Region
) -> None:
    manager = make_user(Role.MANAGER, email="m@example.test")
    west.managers.append(manager)
    db.session.commit()
    auth.sign_in(manager.email)

    assert client.get(f"/my/rank/{west.id}").status_code == 403


def test_the_region_page_writes_the_leaderboard_figures_as_its_other_tables(
    client: FlaskClient, auth: AuthActions, west: Region
) -> None:
    make_user(Role.ADMIN, email="admin@example.test")
    db.session.commit()
    auth.sign_in("admin@example.test")

    page = client.get(f"/regions/{west.id}?from=2018-07-01&to=2018-09-30").text
    board = page[page.index('id="leaderboard"') :].split("</table>")[0]
    cells = [
        re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", line)
        for line in board.split("<tr>")[2:]
    ]

    assert cells == [
        ["1", "Golden State", "120%", "$1,200", "$1,000"],
        ["2", "Cascade", "90%", "$900", "$1,000"],
        ["3", "Mesa", "No target", "$5,000", "\u2013"],
    ]
