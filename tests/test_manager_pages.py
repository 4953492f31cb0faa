"""The managers' pages: who may open them, sorting and filtering by htmx, CSV
exports, the drilldown from a figure to its lines, and a fixed number of queries."""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from decimal import Decimal
from html import unescape
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portal.extensions import db
from portal.models import PartnerOrganisation, Role
from portal.performance import figures, views
from portal.performance.models import (
    PerformanceSettings,
    TargetMonth,
    TerritoryTarget,
)
from portal.performance.periods import Period, quarter_of
from programs.models import Standing
from rewards.models import Claim
from territory_rules.models import Region, Territory
from tests.conftest import AuthActions
from tests.factories import (
    make_account,
    make_org,
    make_region,
    make_territory,
    make_user,
    square,
)
from tests.program_factories import add_sale, add_tier, assign, make_program
from tests.statements import count_statements

HTMX = {"HX-Request": "true"}
Q3 = "from=2018-07-01&to=2018-09-30"
Q3_2018 = Period(date(2018, 7, 1), date(2018, 9, 30))
FORMULA_PARTNER = '=HYPERLINK("https://example.test","Initech")'


def add_target(territory: Territory, amount: str) -> None:
    third = Decimal(amount) / 3
    db.session.add(
        TerritoryTarget(
            territory=territory,
            starts_on=Q3_2018.starts_on,
            ends_on=Q3_2018.ends_on,
            amount=Decimal(amount),
            months=[TargetMonth(month=m, amount=third) for m in Q3_2018.months()],
        )
    )


def add_claim(
    org: Any, territory: Territory, on: date, amount: str, status: str
) -> None:
    db.session.add(
        Claim(
            organisation_id=org.id,
            territory_id=territory.id,
            customer_name="@Counter sale",
            postal_code="00000",
            amount=Decimal(amount),
            sale_date=on,
            invoice_number=f"INV-{amount}-{status}",
            status=status,
        )
    )


@pytest.fixture
def world(clean_app: Flask) -> SimpleNamespace:
    """West (Pacific, Mountain) and East (Atlantic), each with its manager."""
    acme, initech = make_org("Acme Resellers"), make_org(FORMULA_PARTNER)
    globex = make_org("Globex Partners")
    west = make_region("West", managers=[make_user(Role.MANAGER, email="west@x.test")])
    east = make_region("East", managers=[make_user(Role.MANAGER, email="east@x.test")])
    pacific = make_territory(west, "Pacific", partner=acme)
    mountain = make_territory(west, "Mountain", partner=initech)
    atlantic = make_territory(east, "Atlantic", partner=globex)
    make_user(Role.PARTNER, acme, email="acme@x.test")
    make_user(Role.ADMIN, email="admin@x.test")
    grow_sales(pacific, atlantic, mountain, accounts=2)
    add_claim(acme, pacific, date(2018, 8, 20), "50", "approved")
    add_claim(acme, pacific, date(2018, 8, 21), "5000", "submitted")
    add_target(pacific, "3000")
    db.session.commit()
    return SimpleNamespace(
        west=west.id,
        east=east.id,
        pacific=pacific.id,
        mountain=mountain.id,
        atlantic=atlantic.id,
        acme=acme.id,
        initech=initech.id,
        globex=globex.id,
    )


def grow_sales(
    pacific: Territory, atlantic: Territory, mountain: Territory, accounts: int
) -> None:
    """Sales in Q3 2018 and 2017 for Pacific and Atlantic; Mountain's stop in May."""
    for number in range(accounts):
        customer = make_account(f"Pacific customer {number}")
        assign(customer, pacific)
        add_sale(customer, date(2018, 7, 5), 1000 + number)
        add_sale(customer, date(2018, 9, 25), 200)
        add_sale(customer, date(2017, 8, 1), 800)
        eastern = make_account(f"Atlantic customer {number}")
        assign(eastern, atlantic)
        add_sale(eastern, date(2018, 8, 8), 700)
        quiet = make_account(f"Mountain customer {number}")
        assign(quiet, mountain)
        # Enough potential that neither partner is far from the median.
        add_sale(quiet, date(2018, 5, 2), 2000)
        add_sale(quiet, date(2017, 8, 2), 400)


def url(template: str, world: SimpleNamespace) -> str:
    return template.format(**vars(world))


# Who may open what ---------------------------------------------------------------

EAST_PAGES = [
    "/regions/{east}",
    "/regions/{east}/territories",
    "/regions/{east}/partners",
    "/regions/{east}/territories.csv",
    "/regions/{east}/partners.csv",
    "/regions/{east}/sales.csv",
    "/regions/{east}/claims.csv",
    "/regions/{east}/shapes.geojson",
    "/regions/{east}/territories/{atlantic}",
    "/regions/{east}/partners/{globex}",
    # East's territory and partner reached through the manager's own region.
    "/regions/{west}/territories/{atlantic}",
    "/regions/{west}/partners/{globex}",
    "/regions/{west}/sales.csv?territory={atlantic}",
    "/regions/{west}/claims.csv?territory={atlantic}",
    "/regions/{west}/sales.csv?partner={globex}",
    "/regions/{west}/claims.csv?partner={globex}",
]

WEST_PAGES = [
    "/regions/",
    "/regions/{west}",
    "/regions/{west}/territories",
    "/regions/{west}/partners",
    "/regions/{west}/territories.csv",
    "/regions/{west}/partners.csv",
    "/regions/{west}/sales.csv",
    "/regions/{west}/claims.csv",
    "/regions/{west}/shapes.geojson",
    "/regions/{west}/territories/{pacific}",
    "/regions/{west}/partners/{acme}",
]


@pytest.mark.parametrize("page", EAST_PAGES)
def test_a_manager_of_west_gets_404_for_east(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions, page: str
) -> None:
    auth.sign_in("west@x.test")

    response = client.get(url(page, world) + ("&" if "?" in page else "?") + Q3)

    assert response.status_code == 404
    assert "Atlantic" not in response.text
    assert "Globex" not in response.text


@pytest.mark.parametrize("page", WEST_PAGES)
def test_a_manager_opens_every_page_of_their_region(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions, page: str
) -> None:
    auth.sign_in("west@x.test")

    response = client.get(url(page, world) + "?" + Q3)

    assert response.status_code == 200
    assert "Atlantic" not in response.text


@pytest.mark.parametrize("page", WEST_PAGES)
def test_partners_cannot_open_manager_pages(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions, page: str
) -> None:
    auth.sign_in("acme@x.test")

    response = client.get(url(page, world))

    assert response.status_code == 403
    assert "not part of your role" in response.text


def test_an_admin_sees_every_region(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("admin@x.test")

    index = client.get("/regions/?" + Q3).text
    east = client.get(url("/regions/{east}/territories/{atlantic}?", world) + Q3)

    assert "West" in index and "East" in index
    assert east.status_code == 200
    assert "Globex Partners" in east.text


# The overview --------------------------------------------------------------------


def stat(page: str, name: str) -> str:
    found = re.search(rf'data-figure="{name}">([^<]*)<', page)
    assert found, f"no {name} figure on the page"
    return found.group(1)


def test_the_overview_shows_the_regions_figures(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("west@x.test")

    page = client.get(url("/regions/{west}?", world) + Q3).text

    # Pacific: 1000 + 1001 + 2 x 200 in sales and a 50 approved claim; Mountain: none.
    assert stat(page, "revenue") == "$2,451"
    assert stat(page, "previous") == "$2,400"
    assert stat(page, "growth") == "+2%"
    assert stat(page, "target") == "$3,000"
    assert stat(page, "attainment") == "82%"
    assert stat(page, "variance") == "-$549"
    assert "Q3 2018" in page


def test_an_empty_period_links_to_the_latest_quarter_with_sales(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("west@x.test")

    page = client.get(url("/regions/{west}?from=2020-01-01&to=2020-03-31", world))

    assert "There are no sales or approved claims in West in Q1 2020." in page.text
    assert "from=2018-07-01&amp;to=2018-09-30" in page.text
    assert "Show Q3 2018, the latest quarter with sales" in page.text


def test_a_bad_period_says_what_to_write_and_shows_this_quarter(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("west@x.test")

    page = client.get(url("/regions/{west}?from=2018-31-01", world)).text

    assert "Dates must be written as YYYY-MM-DD" in page
    assert f"Region · {quarter_of(figures.today_utc()).label}" in page


def test_the_map_carries_attainment_colour_and_detail_address(
    clean_app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    manager = make_user(Role.MANAGER, email="mapper@x.test")
    region = make_region("Mapped", managers=[manager])
    shaped = make_territory(region, "Shaped", partner=make_org(), shape=square(0, 0))
    customer = make_account()
    assign(customer, shaped)
    add_sale(customer, date(2018, 8, 1), 2850)
    add_target(shaped, "3000")
    db.session.commit()
    auth.sign_in("mapper@x.test")

    collection = client.get(f"/regions/{region.id}/shapes.geojson?{Q3}").json

    [feature] = collection["features"]
    assert feature["properties"]["attainment"] == pytest.approx(0.95)
    assert feature["properties"]["attainment_text"] == "95%"
    assert feature["properties"]["colour"] == "#84cc16"
    assert feature["properties"]["url"] == (
        f"/regions/{region.id}/territories/{shaped.id}?{Q3}"
    )
    page = client.get(f"/regions/{region.id}?{Q3}").text
    legend = page.split('class="map-legend"', 1)[1].split("</ul>", 1)[0]
    assert re.findall(r'background: (#[0-9a-f]{6})".*?</span>([^<]+)</li>', legend) == [
        ("#b42318", "Below 80%"),
        ("#f59e0b", "80% to 95%"),
        ("#84cc16", "95% to 105%"),
        ("#15803d", "105% or more"),
        ("#9aa5b1", "No target"),
    ]


# Sorting and filtering -------------------------------------------------------------


def row_names(fragment: str, table: str) -> list[str]:
    body = fragment.split(f'id="{table}"', 1)[1].split("<tbody>", 1)[1]
    return re.findall(r'<th scope="row"><a href="[^"]+">([^<]+)</a></th>', body)


def test_the_territory_table_sorts_by_revenue_as_a_fragment(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("west@x.test")
    base = url("/regions/{west}/territories?", world) + Q3

    descending = client.get(base + "&sort=revenue&dir=desc", headers=HTMX).text
    ascending = client.get(base + "&sort=revenue&dir=asc", headers=HTMX).text
    full = client.get(base + "&sort=revenue&dir=desc").text

    assert "<html" not in descending
    assert row_names(descending, "territory-table") == ["Pacific", "Mountain"]
    assert row_names(ascending, "territory-table") == ["Mountain", "Pacific"]
    assert "<html" in full
    assert row_names(full, "territory-table") == ["Pacific", "Mountain"]


def test_attainment_sorts_rows_without_a_target_last(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("west@x.test")
    base = url("/regions/{west}/territories?", world) + Q3

    for direction in ("asc", "desc"):
        page = client.get(f"{base}&sort=attainment&dir={direction}", headers=HTMX)
        assert row_names(page.text, "territory-table") == ["Pacific", "Mountain"]


def test_the_partner_table_filters_by_text_territory_and_flags(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("west@x.test")
    base = url("/regions/{west}/partners?", world) + Q3

    by_text = client.get(base + "&q=acme", headers=HTMX).text
    by_territory = client.get(base + f"&link={world.mountain}", headers=HTMX).text
    flagged = client.get(base + "&flagged=1", headers=HTMX).text
    nothing = client.get(base + "&q=nobody", headers=HTMX).text

    assert row_names(by_text, "partner-table") == ["Acme Resellers"]
    assert row_names(by_territory, "partner-table") == [
        FORMULA_PARTNER.replace('"', "&#34;")
    ]
    # Mountain's partner sold nothing since May: stalled for over 60 days.
    assert row_names(flagged, "partner-table") == [
        FORMULA_PARTNER.replace('"', "&#34;")
    ]
    assert "No sale or approved claim for" in flagged
    assert "No partner matches these filters." in nothing


def test_the_territory_table_filters_by_partner(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("west@x.test")
    base = url("/regions/{west}/territories?", world) + Q3

    page = client.get(base + f"&link={world.acme}", headers=HTMX).text

    assert row_names(page, "territory-table") == ["Pacific"]


# Exports ---------------------------------------------------------------------------


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_exports_keep_the_filters_and_show_formulas_as_text(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("west@x.test")
    base = url("/regions/{west}/partners.csv?", world) + Q3

    everyone = client.get(base + "&sort=revenue&dir=desc")
    filtered = read_csv(client.get(base + "&q=acme").text)

    assert everyone.mimetype == "text/csv"
    assert "attachment" in everyone.headers["Content-Disposition"]
    rows = read_csv(everyone.text)
    assert [row["partner"] for row in rows] == ["Acme Resellers", "'" + FORMULA_PARTNER]
    assert rows[0]["revenue"] == "2451.00"
    assert rows[0]["target"] == "3000.00"
    assert rows[0]["attainment"] == "0.8170"
    assert rows[0]["variance"] == "-549.00"
    assert rows[1]["flags"].startswith("No sale or approved claim for")
    assert [row["partner"] for row in filtered] == ["Acme Resellers"]


def test_territory_and_claim_exports_quote_formula_cells(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("west@x.test")

    territories = read_csv(
        client.get(url("/regions/{west}/territories.csv?q=mountain&", world) + Q3).text
    )
    claims = read_csv(client.get(url("/regions/{west}/claims.csv?", world) + Q3).text)

    assert [(r["territory"], r["partner"]) for r in territories] == [
        ("Mountain", "'" + FORMULA_PARTNER)
    ]
    assert [(c["customer"], c["amount"]) for c in claims] == [
        ("'@Counter sale", "50.00")
    ]


# Drilldown -------------------------------------------------------------------------


def amounts(text: str) -> Decimal:
    return sum((Decimal(row["amount"]) for row in read_csv(text)), Decimal(0))


@pytest.mark.parametrize(
    ("table", "key", "detail"),
    [("territories", "territory", "territory"), ("partners", "partner", "partner")],
)
def test_the_lines_behind_a_row_add_up_to_its_revenue(
    world: SimpleNamespace,
    client: FlaskClient,
    auth: AuthActions,
    table: str,
    key: str,
    detail: str,
) -> None:
    auth.sign_in("west@x.test")
    rows = read_csv(client.get(url(f"/regions/{{west}}/{table}.csv?", world) + Q3).text)
    row = next(r for r in rows if r[key] in ("Pacific", "Acme Resellers"))
    ident = world.pacific if key == "territory" else world.acme

    sales = client.get(
        url(f"/regions/{{west}}/sales.csv?{detail}={ident}&", world) + Q3
    )
    claims = client.get(
        url(f"/regions/{{west}}/claims.csv?{detail}={ident}&", world) + Q3
    )
    page = client.get(url(f"/regions/{{west}}/{table}/{ident}?", world) + Q3).text

    assert amounts(sales.text) + amounts(claims.text) == Decimal(row["revenue"])
    assert Decimal(row["revenue"]) == Decimal("2451.00")
    assert stat(page, "revenue") == "$2,451"
    assert "4 sales lines credited in Q3 2018." in page
    assert "1 approved claim." in page


def test_sales_lines_page_by_htmx_fragment(
    world: SimpleNamespace,
    client: FlaskClient,
    auth: AuthActions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(views, "LINES_PER_PAGE", 3)
    auth.sign_in("west@x.test")
    page_url = url("/regions/{west}/territories/{pacific}?sales_page=2&", world) + Q3

    fragment = client.get(page_url, headers={**HTMX, "HX-Target": "sales-lines"}).text

    assert '<div id="sales-lines">' in fragment
    assert "<html" not in fragment
    assert "Approved claims" not in fragment
    assert "4 sales lines credited in Q3 2018." in fragment
    assert "Page 2 of 2" in fragment
    assert fragment.count('<td class="nowrap">') == 1


# A fixed number of queries -----------------------------------------------------------


PAGES = [
    "/regions/",
    "/regions/{region}",
    "/regions/{region}/territories?sort=revenue&dir=desc",
    "/regions/{region}/partners?flagged=1",
    "/regions/{region}/territories.csv",
    "/regions/{region}/partners.csv",
    "/regions/{region}/shapes.geojson",
    "/regions/{region}/territories/{territory}",
    "/regions/{region}/partners/{partner}",
    "/regions/{region}/sales.csv",
    "/regions/{region}/claims.csv?partner={partner}",
]


def sized_region(name: str, size: int) -> SimpleNamespace:
    region = make_region(
        name, managers=[make_user(Role.MANAGER, email=f"{name}@x.test")]
    )
    territories = []
    for number in range(size):
        org = make_org(f"{name} partner {number}")
        territory = make_territory(region, f"{name} {number}", partner=org)
        territories.append(territory)
        add_target(territory, "900")
        for _ in range(size):
            customer = make_account()
            assign(customer, territory)
            add_sale(customer, date(2018, 8, 3), 100)
            add_sale(customer, date(2017, 8, 3), 90)
        add_claim(org, territory, date(2018, 8, 9), f"{number + 1}0", "approved")
    db.session.commit()
    first = territories[0]
    return SimpleNamespace(
        region=region.id, territory=first.id, partner=first.partner_id, name=name
    )


def check(response: Any) -> None:
    assert response.status_code == 200, response.request.url


def test_pages_take_the_same_number_of_queries_at_any_size(
    clean_app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    small, large = sized_region("small", 1), sized_region("large", 5)
    PerformanceSettings.current()
    db.session.commit()

    def counts(scope: SimpleNamespace) -> dict[str, int]:
        auth.sign_out()
        auth.sign_in(f"{scope.name}@x.test")
        found = {}
        for page in PAGES:
            address = page.format(**vars(scope))
            address += ("&" if "?" in address else "?") + Q3
            found[page] = count_statements(lambda a=address: check(client.get(a)))
        return found

    small_counts, large_counts = counts(small), counts(large)

    assert small_counts == large_counts
    assert all(count > 0 for count in large_counts.values())
    assert db.session.get(Region, large.region) is not None


# Periods that cannot be shown ------------------------------------------------------

FAR_FUTURE = "from=2019-01-01&to=8999-12-31"
BAD_PERIODS = [
    (FAR_FUTURE, "Choose dates from 1900 to 2200"),
    ("from=1899-12-01&to=1900-01-31", "Choose dates from 1900 to 2200"),
    ("from=1900-01-01&to=2000-01-01", "A period can be at most 100 years long"),
    ("from=2018-31-01&to=2018-12-31", "Dates must be written as YYYY-MM-DD"),
    ("from=2018-09-30&to=2018-07-01", "The end of the period comes before its start"),
]
FULL_PAGES = [
    "/regions/",
    "/regions/{west}",
    "/regions/{west}/territories",
    "/regions/{west}/partners",
    "/regions/{west}/territories/{pacific}",
    "/regions/{west}/partners/{acme}",
]


@pytest.mark.parametrize("page", FULL_PAGES)
@pytest.mark.parametrize(("period", "problem"), BAD_PERIODS)
def test_a_page_with_a_bad_period_says_what_to_fix_and_shows_this_quarter(
    world: SimpleNamespace,
    client: FlaskClient,
    auth: AuthActions,
    page: str,
    period: str,
    problem: str,
) -> None:
    auth.sign_in("west@x.test")
    quarter = quarter_of(figures.today_utc())

    response = client.get(url(page, world) + "?" + period)

    assert response.status_code == 200
    assert problem in response.text
    assert f"showing {quarter.label} instead." in response.text
    assert f'value="{quarter.starts_on.isoformat()}"' in response.text


@pytest.mark.parametrize("page", FULL_PAGES)
@pytest.mark.parametrize(
    "period", ["from=1900-01-01&to=1999-12-31", "from=2101-01-01&to=2200-12-31"]
)
def test_the_widest_periods_open_with_the_longest_look_back(
    world: SimpleNamespace,
    client: FlaskClient,
    auth: AuthActions,
    page: str,
    period: str,
) -> None:
    PerformanceSettings.current().underperform_periods = 12
    db.session.commit()
    auth.sign_in("west@x.test")

    response = client.get(url(page, world) + "?" + period)

    assert response.status_code == 200
    assert 'role="alert"' not in response.text
    assert f'value="{period[5:15]}"' in response.text


EXPORTS = [
    "/regions/{west}/territories.csv",
    "/regions/{west}/partners.csv",
    "/regions/{west}/sales.csv",
    "/regions/{west}/claims.csv",
    "/regions/{west}/sales.csv?territory={pacific}",
    "/regions/{west}/claims.csv?partner={acme}",
]


@pytest.mark.parametrize("page", EXPORTS)
@pytest.mark.parametrize(("period", "problem"), BAD_PERIODS)
def test_an_export_with_a_bad_period_is_refused_with_what_to_fix(
    world: SimpleNamespace,
    client: FlaskClient,
    auth: AuthActions,
    page: str,
    period: str,
    problem: str,
) -> None:
    auth.sign_in("west@x.test")
    address = url(page, world)

    response = client.get(address + ("&" if "?" in address else "?") + period)

    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "attachment" not in response.headers.get("Content-Disposition", "")
    assert problem in response.text
    assert "; nothing was exported." in response.text


def test_the_map_with_a_bad_period_is_refused(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("west@x.test")

    response = client.get(url("/regions/{west}/shapes.geojson?", world) + FAR_FUTURE)

    assert response.status_code == 400
    assert "Choose dates from 1900 to 2200; the map was not drawn." in response.text


FRAGMENTS = [
    ("/regions/{west}/territories", {}, "territory-table"),
    ("/regions/{west}/partners", {}, "partner-table"),
    ("/regions/{west}/territories/{pacific}", {"HX-Target": "sales-lines"}, "sales"),
    ("/regions/{west}/territories/{pacific}", {"HX-Target": "accounts"}, "accounts"),
    ("/regions/{west}/partners/{acme}", {"HX-Target": "claim-lines"}, "claim-lines"),
]


@pytest.mark.parametrize(("page", "headers", "part"), FRAGMENTS)
@pytest.mark.parametrize(("period", "problem"), BAD_PERIODS)
def test_an_htmx_request_with_a_bad_period_changes_nothing_and_says_why(
    world: SimpleNamespace,
    client: FlaskClient,
    auth: AuthActions,
    page: str,
    headers: dict[str, str],
    part: str,
    period: str,
    problem: str,
) -> None:
    auth.sign_in("west@x.test")

    response = client.get(
        url(page, world) + "?sort=revenue&" + period, headers={**HTMX, **headers}
    )

    assert response.status_code == 200
    assert response.headers["HX-Reswap"] == "none"
    assert '<div id="messages" class="messages"' in response.text
    assert 'hx-swap-oob="true"' in response.text
    assert problem in response.text
    assert "; nothing on the page was changed." in response.text
    assert f'id="{part}' not in response.text
    assert "<table" not in response.text


# Pages of lines and accounts ---------------------------------------------------------


def pager_links(html: str, section: str) -> dict[str, dict[str, str]]:
    """The pager links of a section, by rel, as their query arguments."""
    part = html.split(f'id="{section}"', 1)[1]
    part = part.split('class="pagination"', 1)[1].split("</nav>", 1)[0]
    links = {}
    for tag in re.findall(r"<a\b[^>]*>", part):
        attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', tag))
        if attributes.get("rel") not in ("next", "prev"):
            continue
        assert attributes["hx-get"] == attributes["href"]
        query = parse_qs(urlsplit(unescape(attributes["href"])).query)
        links[attributes["rel"]] = {name: values[0] for name, values in query.items()}
    return links


def test_every_pager_link_keeps_the_period_and_the_other_pages(
    world: SimpleNamespace,
    client: FlaskClient,
    auth: AuthActions,
    monkeypatch: pytest.MonkeyPatch,
    clean_app: Flask,
) -> None:
    monkeypatch.setattr(views, "LINES_PER_PAGE", 1)
    monkeypatch.setitem(clean_app.config, "ACCOUNTS_PER_PAGE", 1)
    add_claim(
        db.session.get(PartnerOrganisation, world.acme),
        db.session.get(Territory, world.pacific),
        date(2018, 9, 1),
        "75",
        "approved",
    )
    db.session.commit()
    auth.sign_in("west@x.test")
    period = {"from": "2018-07-01", "to": "2018-09-30"}

    page = client.get(
        url("/regions/{west}/territories/{pacific}?", world)
        + Q3
        + "&sales_page=2&page=2&claims_page=2"
    ).text
    partner_page = client.get(
        url("/regions/{west}/partners/{acme}?", world) + Q3 + "&sales_page=3"
    ).text

    accounts = pager_links(page, "accounts")
    sales = pager_links(page, "sales-lines")
    claims = pager_links(page, "claim-lines")
    assert accounts == {
        "prev": {**period, "page": "1", "sales_page": "2", "claims_page": "2"}
    }
    assert sales == {
        "prev": {**period, "sales_page": "1", "page": "2", "claims_page": "2"},
        "next": {**period, "sales_page": "3", "page": "2", "claims_page": "2"},
    }
    assert claims == {
        "prev": {**period, "claims_page": "1", "page": "2", "sales_page": "2"}
    }
    assert pager_links(partner_page, "sales-lines") == {
        "prev": {**period, "sales_page": "2"},
        "next": {**period, "sales_page": "4"},
    }
    assert "Page 3 of 4" in partner_page


@pytest.mark.parametrize(
    "page",
    [
        "/regions/{west}/territories/{pacific}?sales_page=999",
        "/regions/{west}/territories/{pacific}?claims_page=2",
        "/regions/{west}/territories/{pacific}?page=2",
        "/regions/{west}/partners/{acme}?sales_page=2",
        "/regions/{west}/partners/{acme}?claims_page=999",
    ],
)
def test_a_page_past_the_last_is_not_found(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions, page: str
) -> None:
    auth.sign_in("west@x.test")

    response = client.get(url(page, world) + "&" + Q3)
    fragment = client.get(
        url(page, world) + "&" + Q3, headers={**HTMX, "HX-Target": "sales-lines"}
    )

    assert response.status_code == 404
    assert fragment.status_code == 404


# Attainment against the territories with a target ----------------------------------


def test_the_overview_sets_the_target_against_the_territories_with_one(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    quiet = make_account("Mountain newcomer")
    assign(quiet, db.session.get(Territory, world.mountain))
    add_sale(quiet, date(2018, 8, 15), "12000")
    add_sale(quiet, date(2018, 9, 1), "228")
    db.session.commit()
    auth.sign_in("west@x.test")
    # Pacific: 1000 + 1001 + 2 x 200 in sales and a 50 claim, against 3,000.
    pacific, target = Decimal(2451), Decimal(3000)

    page = client.get(url("/regions/{west}?", world) + Q3).text
    index = client.get("/regions/?" + Q3).text
    listing = client.get(url("/regions/{west}/territories?", world) + Q3).text
    rows = read_csv(
        client.get(url("/regions/{west}/territories.csv?", world) + Q3).text
    )

    assert stat(page, "revenue") == "$14,679"
    assert stat(page, "target") == "$3,000"
    assert stat(page, "attainment") == f"{pacific / target:.0%}" == "82%"
    assert stat(page, "variance") == "-$549"
    note = (
        "1 of 2 territories has no target for this period; its revenue of $12,228 "
        "is not in attainment."
    )
    assert note in page
    assert f"<li>West: {note}</li>" in index
    assert note in listing
    assert "82%" in index
    by_name = {row["territory"]: row for row in rows}
    assert by_name["Pacific"]["revenue_with_target"] == "2451.00"
    assert by_name["Mountain"]["revenue_with_target"] == ""
    assert by_name["Mountain"]["revenue"] == "12228.00"


def test_every_territory_with_a_target_means_no_note(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    add_target(db.session.get(Territory, world.mountain), "900")
    db.session.commit()
    auth.sign_in("west@x.test")

    page = client.get(url("/regions/{west}?", world) + Q3).text

    assert 'id="without-target"' not in page
    assert stat(page, "target") == "$3,900"


# Tiers, quartiles, amounts and signs --------------------------------------------------


def test_tiers_sort_by_their_place_in_the_ladder_and_name_their_program(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    loyalty = make_program("Loyalty", kind="incentive", kpi="sales_amount")
    growth = make_program("Growth", kind="incentive", kpi="sales_amount")
    bronze, silver, gold = (
        add_tier(growth, name, threshold)
        for name, threshold in (("Bronze", 100), ("Silver", 200), ("Gold", 300))
    )
    member = add_tier(loyalty, "Member", 10)
    umbrella = make_org("Umbrella Partners")
    make_territory(db.session.get(Region, world.west), "Desert", partner=umbrella)
    for org, program, tier in [
        (world.acme, growth, gold),
        (world.acme, loyalty, member),
        (world.initech, growth, bronze),
        (umbrella.id, growth, silver),
    ]:
        db.session.add(
            Standing(
                program_id=program.id,
                organisation_id=org,
                kpi_value=Decimal(1),
                tier_id=tier.id,
            )
        )
    db.session.commit()
    auth.sign_in("west@x.test")
    base = url("/regions/{west}/partners?", world) + Q3

    ascending = client.get(base + "&sort=tier&dir=asc", headers=HTMX).text
    descending = client.get(base + "&sort=tier&dir=desc", headers=HTMX).text
    region = client.get(url("/regions/{west}?", world) + Q3).text

    initech = FORMULA_PARTNER.replace('"', "&#34;")
    assert row_names(ascending, "partner-table") == [
        initech,
        "Umbrella Partners",
        "Acme Resellers",
    ]
    assert row_names(descending, "partner-table") == [
        "Acme Resellers",
        "Umbrella Partners",
        initech,
    ]
    assert "<td>Growth: Gold, Loyalty: Member</td>" in ascending
    assert "<td>Silver</td>" in ascending
    times = "\N{MULTIPLICATION SIGN}"
    assert (
        f"Growth: Bronze {times} 1, Silver {times} 1, Gold {times} 1; "
        f"Loyalty: Member {times} 1"
    ) in region


def test_the_region_page_says_when_the_bottom_quartile_cannot_apply(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("west@x.test")

    page = client.get(url("/regions/{west}?", world) + Q3).text
    PerformanceSettings.current().use_bottom_quartile = False
    db.session.commit()
    without = client.get(url("/regions/{west}?", world) + Q3).text

    assert (
        "Flagging the bottom quartile does not apply in Q3 2018: it needs at least 4 "
        "territories (or partners) with a target, and West has 1 territory and 1 "
        "partner with one."
    ) in page
    assert 'id="quartile-note"' not in without


def test_the_settings_say_the_bottom_quartile_needs_four_rows(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("admin@x.test")

    page = client.get("/admin/performance/settings").text

    assert "needs at least four territories (or partners) with a target" in page
    assert "up to today when the period ends later" in page


def test_days_without_a_sale_on_this_quarter_are_counted_to_today(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("west@x.test")
    today = figures.today_utc()

    page = client.get(url("/regions/{west}", world)).text

    quiet = (today - date(2018, 9, 25)).days
    assert (
        f"No sale or approved claim for {quiet:,} days up to today, "
        f"{today.day} {today:%b %Y} (the last on 25 Sep 2018)"
    ) in page


def test_sales_export_writes_amounts_as_stored_without_extra_zeros(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    customer = make_account("Small orders")
    assign(customer, db.session.get(Territory, world.pacific))
    add_sale(customer, date(2018, 8, 2), "3.024")
    add_sale(customer, date(2018, 8, 3), "12.5")
    db.session.commit()
    auth.sign_in("west@x.test")

    lines = read_csv(
        client.get(
            url("/regions/{west}/sales.csv?territory={pacific}&", world) + Q3
        ).text
    )

    assert sorted(line["amount"] for line in lines) == [
        "1000.00",
        "1001.00",
        "12.50",
        "200.00",
        "200.00",
        "3.024",
    ]


@pytest.mark.parametrize(
    ("ratio", "signed", "words"),
    [
        ("-0.004", True, "0%"),
        ("-0.004", False, "0%"),
        ("0.004", True, "0%"),
        ("0.005", True, "+1%"),
        ("-0.005", True, "-1%"),
        ("-0.12", True, "-12%"),
    ],
)
def test_a_share_that_rounds_to_nought_has_no_sign(
    ratio: str, signed: bool, words: str
) -> None:
    assert views.share(Decimal(ratio), signed) == words


@pytest.mark.parametrize(
    ("amount", "words"),
    [
        ("0.4", "$0"),
        ("-0.4", "$0"),
        ("0", "$0"),
        ("0.5", "+$1"),
        ("-0.5", "-$1"),
        ("1234", "+$1,234"),
        ("-549", "-$549"),
    ],
)
def test_a_variance_that_rounds_to_nought_has_no_sign(
    clean_app: Flask, amount: str, words: str
) -> None:
    assert views.signed_money(Decimal(amount)) == words


def overview_of(territories: int, without: int, revenue: str) -> figures.Overview:
    return figures.Overview(
        period=Q3_2018,
        comparison=Q3_2018,
        totals=figures.Figures(
            revenue=Decimal(revenue) + 100, revenue_with_target=Decimal(100)
        ),
        territories=territories,
        territories_without_target=without,
    )


@pytest.mark.parametrize(
    ("territories", "without", "revenue", "words"),
    [
        (3, 1, "0", "1 of 3 territories has no target and no revenue in this period."),
        (3, 2, "0", "2 of 3 territories have no target and no revenue in this period."),
        (
            3,
            2,
            "0.3",
            "2 of 3 territories have no target and no revenue in this period.",
        ),
        (
            3,
            2,
            "40",
            "2 of 3 territories have no target for this period; their revenue of $40 "
            "is not in attainment.",
        ),
        (3, 0, "0", None),
    ],
)
def test_the_note_on_territories_without_a_target_reads_plainly(
    clean_app: Flask, territories: int, without: int, revenue: str, words: str | None
) -> None:
    note = views.without_target_note(overview_of(territories, without, revenue))

    assert note == words


def test_a_territory_without_target_or_sales_is_noted_in_plain_words(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("west@x.test")

    page = unescape(client.get(url("/regions/{west}?", world) + Q3).text)
    listing = unescape(client.get(url("/regions/{west}/territories?", world) + Q3).text)

    # Mountain has no target and its sales stop in May.
    note = "1 of 2 territories has no target and no revenue in this period."
    assert note in page
    assert note in listing
    assert "revenue of $0" not in page
    assert "+$0" not in listing


def test_the_overview_of_an_empty_period_links_to_the_latest_quarter_with_sales(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("admin@x.test")

    page = unescape(client.get("/regions/?from=2020-01-01&to=2020-03-31").text)
    with_sales = unescape(client.get("/regions/?" + Q3).text)

    assert (
        "There are no sales or approved claims in any of these regions in Q1 2020."
        in page
    )
    assert (
        '<a href="/regions/?from=2018-07-01&to=2018-09-30">'
        "Show Q3 2018, the latest quarter with sales</a>" in page
    )
    assert "the latest quarter with sales" not in with_sales


def test_the_overview_of_one_region_names_it_when_the_period_is_empty(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("east@x.test")

    page = unescape(client.get("/regions/?from=2019-01-01&to=2019-03-31").text)

    # Atlantic's only sales are in August 2018.
    assert "There are no sales or approved claims in East in Q1 2019." in page
    assert "Show Q3 2018, the latest quarter with sales" in page
