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

import pytest
from flask import Flask

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
