"""The main flows in a real browser: Debian's chromium driven by Playwright."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from sqlalchemy import select

from portal.extensions import db
from programs.models import Program
from territory_rules.models import Region, Territory
from tests.conftest import DEMO_PASSWORD

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_serving(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("the portal's server exited before serving")
        try:
            urllib.request.urlopen(url + "/auth/sign-in", timeout=2)  # noqa: S310
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"the portal did not answer at {url}")


@pytest.fixture(scope="session")
def live_server(
    demo_app: Flask, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The portal served by ``flask run`` on the demo database."""
    port = free_port()
    env = dict(os.environ)
    env.update(
        DATABASE_URL=demo_app.config["SQLALCHEMY_DATABASE_URI"],
        SECRET_KEY="tests-only-secret",
        DEMO_PASSWORD=DEMO_PASSWORD,
    )
    env.pop("REDIS_URL", None)
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flask",
                "--app",
                "wsgi",
                "run",
                "--port",
                str(port),
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_serving(url, process)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}; `make test` installs it."
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server):  # type: ignore[no-untyped-def]
    context = browser.new_context(base_url=live_server)
    page = context.new_page()
    yield page
    context.close()


def sign_in(page, email: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("/auth/sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_a_partner_sees_its_territory_map_and_accounts(page):  # type: ignore[no-untyped-def]
    sign_in(page, "cascade-office-supply@demo.test")

    page.wait_for_url("**/my/territory**")
    assert page.locator("h1").inner_text() == "Pacific Northwest"
    assert "West region" in page.locator(".lede").inner_text()
    rows = page.locator("table tbody tr")
    assert rows.count() > 10
    assert "Inside Pacific Northwest" in rows.first.inner_text()
    page.locator(".leaflet-interactive").first.wait_for(timeout=10_000)
    assert page.locator(".leaflet-interactive").count() >= 1


def test_a_partner_pages_through_accounts_without_reloading(page):  # type: ignore[no-untyped-def]
    sign_in(page, "cascade-office-supply@demo.test")
    page.wait_for_url("**/my/territory**")
    first_name = page.locator("table tbody tr").first.inner_text()
    page.evaluate("window.__marker = 'still here'")

    page.get_by_role("link", name="Next").first.click()

    page.wait_for_function(
        "first => document.querySelector('table tbody tr').innerText !== first",
        arg=first_name,
    )
    assert page.evaluate("window.__marker") == "still here"


def test_an_admin_starts_a_recompute_and_sees_it_finish(page):  # type: ignore[no-untyped-def]
    sign_in(page, "admin@demo.test")
    page.wait_for_url("**/territories/**")

    page.get_by_role("button", name="Recompute assignments").click()

    status = page.locator("#run-status", has_text="started by Program Admin")
    status.get_by_text("Finished: every account has its status.").wait_for(
        timeout=60_000
    )
    assert "Succeeded" in status.inner_text()
    assert "4,910" in status.locator(".count-accounts").inner_text()


def test_a_partner_completes_a_module_and_sees_progress_move(page):  # type: ignore[no-untyped-def]
    sign_in(page, "mesa-business-solutions@demo.test")
    page.wait_for_url("**/my/territory**")
    page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="My programs"
    ).click()

    onboarding = (
        page.locator("article, section")
        .filter(has=page.get_by_role("heading", name="Partner onboarding"))
        .first
    )
    assert "Rule “Every partner”" in onboarding.inner_text()
    before = onboarding.get_by_text("required steps done").first.inner_text()
    foundation = (
        page.locator("article, section")
        .filter(has=page.get_by_role("heading", name="Foundation"))
        .first
    )
    assert "territory Mountain Southwest" in foundation.inner_text()
    assert "reaches Gold" in foundation.inner_text()

    onboarding.get_by_role("link", name="Welcome to the partner portal").click()
    page.get_by_role("button", name="Mark as done").click()
    page.get_by_text("You completed this module on").wait_for(timeout=10_000)

    page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="My programs"
    ).click()
    onboarding = (
        page.locator("article, section")
        .filter(has=page.get_by_role("heading", name="Partner onboarding"))
        .first
    )
    after = onboarding.get_by_text("required steps done").first.inner_text()
    assert (before, after) == (
        "1 of 4 required steps done.",
        "2 of 4 required steps done.",
    )


def test_a_manager_filters_partners_and_opens_a_territory_from_the_map(page):  # type: ignore[no-untyped-def]
    sign_in(page, "manager.west@demo.test")
    page.wait_for_url("**/regions/**")
    page.get_by_role("link", name="West", exact=True).click()
    # This quarter has no demo sales: the page offers the latest quarter with some.
    page.get_by_role("link", name=re.compile("the latest quarter with sales")).click()
    page.wait_for_url("**/regions/*?from=*")

    page.get_by_label("Search partners").fill("golden")
    partner_rows = page.locator("#partner-table tbody tr")
    page.wait_for_function(
        "() => document.querySelectorAll('#partner-table tbody tr').length === 1"
    )
    assert partner_rows.first.locator("th").inner_text() == "Golden State Workplace"
    assert page.locator("#territory-table tbody tr").count() == 3

    # Shapes are drawn in name order: California first, its middle inside it.
    shapes = page.locator(".map .leaflet-interactive")
    shapes.first.wait_for(timeout=10_000)
    assert shapes.count() == 3
    shapes.first.click()

    page.wait_for_url("**/territories/**")
    assert page.locator("h1").inner_text() == "California"
    assert "Golden State Workplace" in page.locator(".lede").inner_text()
    assert page.locator("#sales-lines tbody tr").count() > 0


# --- Scripts only from our files, and pages that fit their screen -------------------

HOSTILE_NAME = "<img src=x onerror=\"document.title='XSS'\">"
QUARTER_WITH_SALES = "from=2019-10-01&to=2019-12-31"


def region_id(demo_app: Flask, name: str) -> int:
    with demo_app.app_context():
        return db.session.scalars(select(Region.id).filter_by(name=name)).one()


def region_path(demo_app: Flask, name: str) -> str:
    return f"/regions/{region_id(demo_app, name)}?{QUARTER_WITH_SALES}"


def program_id(demo_app: Flask, name: str) -> int:
    with demo_app.app_context():
        return db.session.scalars(select(Program.id).filter_by(name=name)).one()


@pytest.fixture
def hostile_territory(demo_app: Flask) -> Iterator[str]:
    """Mountain Southwest renamed to markup, as a careless import could name it."""
    with demo_app.app_context():
        territory = db.session.scalars(
            select(Territory).filter_by(name="Mountain Southwest")
        ).one()
        territory.name = HOSTILE_NAME
        db.session.commit()
        try:
            yield HOSTILE_NAME
        finally:
            territory.name = "Mountain Southwest"
            db.session.commit()


@pytest.fixture
def phone_page(browser, live_server):  # type: ignore[no-untyped-def]
    context = browser.new_context(
        base_url=live_server, viewport={"width": 390, "height": 844}
    )
    page = context.new_page()
    yield page
    context.close()


def test_a_name_made_of_markup_stays_text_in_the_map_tooltip(  # type: ignore[no-untyped-def]
    page, demo_app, hostile_territory
):
    sign_in(page, "manager.west@demo.test")
    page.wait_for_url("**/regions/**")
    page.goto(region_path(demo_app, "West"))
    shapes = page.locator(".map .leaflet-interactive")
    shapes.first.wait_for(timeout=10_000)

    tooltips = []
    for index in range(shapes.count()):
        shapes.nth(index).hover(force=True)
        tooltip = page.locator(".leaflet-tooltip").last
        tooltip.wait_for()
        tooltips.append(tooltip.inner_text())

    [shown] = [text for text in tooltips if text.startswith("<img")]
    assert shown.startswith(hostile_territory + " · Mesa Business Solutions")
    assert page.locator(".leaflet-tooltip img, img[src='x']").count() == 0
    assert page.title() == "West · Partner Portal"

    # Markup slipped into the page some other way still runs nothing: the
    # policy refuses its handler attribute, and an inline script.
    refused = page.evaluate(
        """markup => new Promise(resolve => {
             document.addEventListener("securitypolicyviolation",
               event => resolve(event.effectiveDirective), { once: true });
             setTimeout(() => resolve("nothing refused"), 5000);
             document.getElementById("messages").innerHTML = markup;
           })""",
        hostile_territory,
    )
    page.evaluate(
        """() => { const script = document.createElement("script");
                   script.textContent = "document.title = 'inline'";
                   document.body.append(script); }"""
    )
    assert refused == "script-src-attr"
    assert page.title() == "West · Partner Portal"
    assert page.evaluate("htmx.config.allowEval") is False


def test_reward_rule_rows_switch_suggestions_and_are_removed(page, demo_app):  # type: ignore[no-untyped-def]
    sign_in(page, "admin@demo.test")
    page.wait_for_url("**/territories/**")
    page.goto(f"/admin/rewards/programs/{program_id(demo_app, 'Growth')}")
    rows = page.locator("#rule-rows tr")
    names = rows.locator("[name=rule_name]")
    # The plan's two rules, then an empty row to write a new one in.
    assert [names.nth(i).input_value() for i in range(3)] == [
        "Technology",
        "Corporate customers",
        "",
    ]

    page.get_by_role("button", name="Add a rule").click()
    page.wait_for_function(
        "() => document.querySelectorAll('#rule-rows tr').length === 4"
    )
    added = rows.last
    match_value = added.locator("[name=match_value]")
    assert match_value.get_attribute("list") is None
    added.locator("[name=dimension]").select_option("territory")
    assert match_value.get_attribute("list") == "territory-names"
    added.locator("[name=dimension]").select_option("segment")
    assert match_value.get_attribute("list") is None

    added.get_by_role("button", name="Remove").click()
    rows.first.get_by_role("button", name="Remove").click()

    assert [names.nth(i).input_value() for i in range(rows.count())] == [
        "Corporate customers",
        "",
    ]


def test_tier_and_condition_rows_are_removed_and_the_preview_follows(  # type: ignore[no-untyped-def]
    page, demo_app
):
    sign_in(page, "admin@demo.test")
    page.wait_for_url("**/territories/**")
    growth = program_id(demo_app, "Growth")
    page.goto(f"/admin/programs/{growth}/tiers")
    tiers = page.locator("#tier-rows tr")
    before = tiers.count()
    first_name = tiers.first.locator("[name=tier_name]").input_value()

    tiers.first.get_by_role("button", name="Remove").click()

    assert tiers.count() == before - 1
    assert tiers.first.locator("[name=tier_name]").input_value() != first_name

    page.goto(f"/admin/programs/{growth}/rules/new")
    conditions = page.locator("#condition-rows .condition-row")
    before = conditions.count()
    with page.expect_response("**/rules/preview"):
        page.get_by_role("button", name="Add a condition").click()
    assert conditions.count() == before + 1

    with page.expect_response("**/rules/preview") as preview:
        conditions.last.get_by_role("button", name="Remove").click()

    assert conditions.count() == before
    assert preview.value.ok


def test_a_region_page_fits_a_phone_screen(phone_page, demo_app):  # type: ignore[no-untyped-def]
    page = phone_page
    sign_in(page, "manager.west@demo.test")
    page.wait_for_url("**/regions/**")

    # Its targets page, too, holds a wide table with a hidden heading in it.
    page.goto(f"/regions/{region_id(demo_app, 'West')}/targets")
    assert page.locator("table tbody tr").count() > 0
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    page.goto(region_path(demo_app, "West"))
    page.locator(".map .leaflet-interactive").first.wait_for(timeout=10_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # The charts keep 12-unit labels at 10 pixels or more, scrolling in their box.
    widths = page.eval_on_selector_all(
        "svg.chart",
        "charts => charts.map(chart => chart.getBoundingClientRect().width)",
    )
    assert len(widths) == 3
    assert all(width * 12 / 720 >= 10 for width in widths)


def test_a_reward_plan_fits_a_phone_screen(phone_page, demo_app):  # type: ignore[no-untyped-def]
    page = phone_page
    sign_in(page, "admin@demo.test")
    page.wait_for_url("**/territories/**")

    page.goto(f"/admin/rewards/programs/{program_id(demo_app, 'Growth')}")

    # The multipliers' table is wider than the screen: it scrolls in its box,
    # and the fieldset around it, with its hint, stays within the screen.
    box = page.locator("fieldset.conditions .table-wrap")
    assert page.locator("#rule-rows tr").count() == 3
    assert box.evaluate("wrap => wrap.scrollWidth > wrap.clientWidth")
    fieldset = page.locator("fieldset.conditions").bounding_box()
    hint = page.locator("fieldset.conditions .hint").bounding_box()
    assert fieldset is not None and hint is not None
    assert fieldset["x"] + fieldset["width"] <= 390
    assert hint["x"] + hint["width"] <= 390
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_sorting_and_filtering_a_table_keep_focus_on_the_control(page, demo_app):  # type: ignore[no-untyped-def]
    sign_in(page, "manager.west@demo.test")
    page.wait_for_url("**/regions/**")
    page.goto(region_path(demo_app, "West"))

    def redrawn(action) -> str:  # type: ignore[no-untyped-def]
        page.evaluate(
            """() => { window.settled = false;
                 document.addEventListener("htmx:afterSettle",
                   () => { window.settled = true; }, { once: true }); }"""
        )
        action()
        page.wait_for_function("() => window.settled")
        return str(page.evaluate("document.activeElement.id"))

    revenue = page.locator("#territory-table-sort-revenue")
    assert redrawn(revenue.click) == "territory-table-sort-revenue"
    assert redrawn(lambda: page.keyboard.press("Enter")) == (
        "territory-table-sort-revenue"
    )
    assert revenue.locator("xpath=..").get_attribute("aria-sort") == "ascending"

    page.locator("#partner-flagged").focus()
    assert redrawn(lambda: page.keyboard.press("Space")) == "partner-flagged"
    assert page.locator("#partner-flagged").is_checked()

    search = page.get_by_label("Search partners")
    search.focus()
    assert redrawn(lambda: page.keyboard.type("zz")) == "partner-search"
    assert "No partner matches" in page.locator("#partner-table tbody").inner_text()


# The managers' pages: pagers that keep the period, and a table request with a
# bad period that changes nothing and says why.

Q4_2019 = "from=2019-10-01&to=2019-12-31"


def open_region(page, name: str) -> str:  # type: ignore[no-untyped-def]
    """Open the region's page for Q4 2019; its address without arguments."""
    page.wait_for_url("**/regions/**")
    link = page.get_by_role("link", name=name, exact=True).get_attribute("href")
    address = urlsplit(str(link)).path
    page.goto(f"{address}?{Q4_2019}")
    return address


def query(address: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(address).query).items()}


def test_the_accounts_pager_keeps_the_period_and_the_sales_page(page):  # type: ignore[no-untyped-def]
    sign_in(page, "manager.west@demo.test")
    open_region(page, "West")
    page.locator("#territory-table").get_by_role("link", name="California").click()
    page.wait_for_url("**/territories/**")
    page.goto(page.url + "&sales_page=2")

    page.locator("#accounts").get_by_role("link", name="Next").click()
    page.wait_for_function(
        "() => new URLSearchParams(location.search).get('page') === '2'"
    )

    assert query(page.url) == {
        "from": "2019-10-01",
        "to": "2019-12-31",
        "sales_page": "2",
        "page": "2",
    }
    assert "Page 2 of" in page.locator("#sales-lines .pagination").inner_text()
    assert page.locator("#period-from").input_value() == "2019-10-01"


def test_a_table_request_with_a_bad_period_leaves_the_table_and_says_why(page):  # type: ignore[no-untyped-def]
    sign_in(page, "manager.west@demo.test")
    region = open_region(page, "West")
    rows = page.locator("#territory-table tbody tr")
    before = rows.all_inner_texts()

    page.evaluate(
        """address => htmx.ajax("GET", address,
             {target: "#territory-table", swap: "outerHTML"})""",
        f"{region}/territories?from=2019-01-01&to=8999-12-31&sort=revenue",
    )

    alert = page.locator("#messages .message-error")
    alert.wait_for(timeout=10_000)
    assert alert.inner_text() == (
        "Choose dates from 1900 to 2200; nothing on the page was changed."
    )
    assert rows.all_inner_texts() == before
