"""What each role sees on its pages, on small constructed territories."""

from __future__ import annotations

import csv
import functools
import io
import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from portal.extensions import db
from portal.models import Role, utc_now
from portal.runs import Run
from territory_rules.jobs import ASSIGNMENT_KIND, ASSIGNMENT_TASK, start_assignment_run
from territory_rules.models import Account, Assignment, Region
from tests.conftest import AuthActions
from tests.factories import (
    add_rule,
    make_account,
    make_org,
    make_region,
    make_territory,
    make_user,
    square,
)

HTMX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def quick_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Full-strength hashing costs a fifth of a second per user; keep tests quick."""
    quick = functools.partial(generate_password_hash, method="pbkdf2:sha256:1000")
    monkeypatch.setattr("portal.models.generate_password_hash", quick)


@pytest.fixture
def market(clean_app: Flask) -> SimpleNamespace:
    """One region where two territories overlap, plus a catch-all state rule.

    Accounts: two inside North only, one in the overlap (a conflict), one caught
    by the state rule of South, one outside every rule, one with no location.
    """
    north_org, south_org = make_org("Northwind Partners"), make_org("Southgate Ltd")
    region = make_region("Central")
    north = make_territory(region, "North", partner=north_org, shape=square(0, 0, 10))
    south = make_territory(region, "South", partner=south_org, shape=square(8, 0, 10))
    add_rule(north, 50, ("shape", "inside", None), name="North shape")
    add_rule(south, 50, ("shape", "inside", None), name="South shape")
    add_rule(south, 10, ("state", "in", ["TX", "OK"]), name="South states")
    accounts = [
        make_account(
            "Alder Cafe",
            at=(2, 2),
            postal_code="02139",
            city="Cambridge",
            state="MA",
            segment="Consumer",
        ),
        make_account("Birch Books", at=(3, 3), postal_code="02140"),
        make_account("Cedar Clinic", at=(9, 5), postal_code="10001"),
        make_account("Dogwood Deli", at=(50, 50), state="TX"),
        make_account("Elm Electric", at=(60, 60), postal_code="99999"),
        make_account("Fir Farm", postal_code="00000", state="ZZ"),
    ]
    make_user(Role.PARTNER, north_org, email="north@example.test")
    make_user(Role.ADMIN, email="admin@example.test")
    db.session.commit()
    run, _ = start_assignment_run()
    assert run.status == "succeeded", run.error
    return SimpleNamespace(
        region=region.id,
        north=north.id,
        south=south.id,
        run=run.id,
        accounts={account.name: account.id for account in accounts},
    )


def run_count() -> int:
    """Assignment runs so far (each is followed by a programs run)."""
    query = select(func.count()).select_from(Run).where(Run.kind == ASSIGNMENT_KIND)
    return db.session.scalar(query) or 0


# Partner ---------------------------------------------------------------------


def test_partner_sees_territory_accounts_and_the_rule_that_placed_them(
    market: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("north@example.test")

    page = client.get("/my/territory").text

    assert "<h1>North</h1>" in page
    assert "Central region" in page
    assert "owned by Northwind Partners" in page
    assert re.search(r"<dt>Accounts</dt><dd[^>]*>2</dd>", page)
    assert "Alder Cafe" in page and "Birch Books" in page
    assert "Cedar Clinic" not in page  # in conflict, so not North's
    assert "02139" in page and "Cambridge" in page and "Consumer" in page
    assert "North shape" in page
    assert "location inside the territory&#39;s shape" in page
    assert f"/my/territory/{market.north}/shape.geojson" in page


def test_partner_map_endpoint_returns_the_simplified_shape(
    market: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("north@example.test")

    shape = client.get(f"/my/territory/{market.north}/shape.geojson")

    assert shape.mimetype == "application/geo+json"
    feature, *accounts = shape.json["features"]
    assert feature["properties"] == {"name": "North", "partner": "Northwind Partners"}
    located = db.session.scalar(
        select(func.count())
        .select_from(Assignment)
        .join(Account, Account.id == Assignment.account_id)
        .where(
            Assignment.territory_id == market.north,
            Assignment.status == "assigned",
            Account.location.is_not(None),
        )
    )
    assert located > 0
    assert len(accounts) == located
    assert {a["properties"]["kind"] for a in accounts} == {"account"}
    assert all(a["geometry"]["type"] == "Point" for a in accounts)
    # Simplifying a one-part MultiPolygon leaves a Polygon, which Leaflet draws alike.
    assert feature["geometry"]["type"] == "Polygon"
    ring = feature["geometry"]["coordinates"][0]
    assert sorted({tuple(point) for point in ring}) == [
        (0.0, 0.0),
        (0.0, 10.0),
        (10.0, 0.0),
        (10.0, 10.0),
    ]


def test_partner_with_several_territories_switches_between_them(
    market: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    org = make_org("Many Places Inc")
    region = make_region("Islands")
    first = make_territory(region, "Aruba", partner=org)
    second = make_territory(region, "Bonaire", partner=org)
    make_user(Role.PARTNER, org, email="many@example.test")
    db.session.commit()
    auth.sign_in("many@example.test")

    landing = client.get("/my/territory").text
    other = client.get(f"/my/territory/{second.id}").text

    assert "<h1>Aruba</h1>" in landing
    assert f'href="/my/territory/{second.id}"' in landing
    assert "<h1>Bonaire</h1>" in other
    assert f'href="/my/territory/{first.id}"' in other


def test_partner_without_territory_sees_a_plain_sentence(
    clean_app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    org = make_org("Newcomer Co")
    make_user(Role.PARTNER, org, email="new@example.test")
    make_user(Role.PARTNER, None, email="loose@example.test")
    db.session.commit()

    auth.sign_in("new@example.test")
    with_org = client.get("/my/territory").text
    auth.sign_out()
    auth.sign_in("loose@example.test")
    without_org = client.get("/my/territory").text

    assert "Newcomer Co does not own a territory yet" in with_org
    assert "not linked to a partner organisation" in without_org


def test_accounts_are_paginated_and_htmx_gets_only_the_fragment(
    market: SimpleNamespace,
    clean_app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(clean_app.config, "ACCOUNTS_PER_PAGE", 1)
    auth.sign_in("north@example.test")
    url = f"/my/territory/{market.north}"

    first = client.get(url).text
    second = client.get(f"{url}?page=2", headers=HTMX).text
    restored = client.get(
        f"{url}?page=2", headers={**HTMX, "HX-History-Restore-Request": "true"}
    ).text

    assert "<html" in first
    assert "Alder Cafe" in first and "Birch Books" not in first
    assert "page 1 of 2" in first
    assert f'hx-get="{url}?page=2"' in first
    assert "<html" not in second
    assert second.lstrip().startswith('<section id="accounts"')
    assert "Birch Books" in second and "Alder Cafe" not in second
    assert "<html" in restored
    assert client.get(f"{url}?page=3").status_code == 404


# Admin -----------------------------------------------------------------------


def test_admin_index_shows_regions_territories_owners_and_counts(
    market: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("admin@example.test")

    page = client.get("/territories/").text

    assert "Central" in page
    assert f'<a href="/territories/{market.north}">North</a>' in page
    assert "Northwind Partners" in page and "Southgate Ltd" in page
    stats = dict(
        re.findall(
            r'<span class="stat-label">([^<]+)</span>'
            r'<span class="stat-value">([^<]+)</span>',
            page,
        )
    )
    assert stats == {
        "Accounts": "6",
        "Assigned": "3",
        "In conflict": "1",
        "In the gap report": "2",
    }


def test_navigation_follows_the_role(
    market: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("admin@example.test")
    admin_nav = client.get("/territories/gaps").text
    auth.sign_out()
    auth.sign_in("north@example.test")
    partner_nav = client.get("/my/territory").text

    assert '<a href="/territories/gaps" aria-current="page">Gap report</a>' in admin_nav
    assert '<a href="/territories/imports/">Imports</a>' in admin_nav
    assert '<span class="badge badge-role">Admin</span>' in admin_nav
    assert "Gap report" not in partner_nav and "Imports" not in partner_nav
    assert '<a href="/my/territory" aria-current="page">My territory</a>' in partner_nav
    assert 'action="/auth/sign-out"' in partner_nav


def test_admin_territory_page_lists_rules_by_precedence_in_words(
    market: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("admin@example.test")

    page = client.get(f"/territories/{market.south}").text

    rules = re.findall(r'<th scope="row">(South [a-z]+)</th>\s*<td>([^<]+)</td>', page)
    assert rules == [
        ("South shape", "location inside the territory&#39;s shape"),
        ("South states", "state or province in TX, OK"),
    ]
    assert "Dogwood Deli" in page
    assert "Alder Cafe" not in page


def test_admin_territory_page_shows_sub_territories(
    market: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    parent = make_territory(make_region("Coast"), "Whole coast")
    make_territory(parent.region, "North coast", parent=parent)
    db.session.commit()
    auth.sign_in("admin@example.test")

    page = client.get(f"/territories/{parent.id}").text
    index = client.get("/territories/").text

    assert "Sub-territories" in page
    assert "North coast" in page
    assert re.search(
        r'class="tree depth-1">\s*<span[^>]*>└</span>\s*<a[^>]*>North coast', index
    )


def test_recompute_button_runs_the_assignment_and_shows_its_counts(
    market: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("admin@example.test")
    runs_before = run_count()

    response = client.post("/territories/recompute", headers=HTMX)

    assert response.status_code == 200
    assert run_count() == runs_before + 1
    fragment = response.text
    assert fragment.lstrip().startswith(
        '<div id="run-status" class="run run-succeeded"'
    )
    assert "hx-trigger" not in fragment  # a finished run stops polling
    assert response.headers["HX-Trigger"] == "assignments-changed"
    counts = dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", fragment))
    assert counts == {
        "Accounts": "6",
        "Assigned": "3",
        "In conflict": "1",
        "In the gap report": "2",
        "Rules": "3",
        "Rule matches": "5",
    }


def test_second_click_while_a_run_is_active_shows_that_run(
    market: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    active = Run(
        kind=ASSIGNMENT_KIND,
        task=ASSIGNMENT_TASK,
        status="running",
        progress=40,
        message="3 of 5 rule groups matched",
        started_at_utc=utc_now() - timedelta(seconds=5),
        heartbeat_at_utc=utc_now(),
    )
    db.session.add(active)
    db.session.commit()
    auth.sign_in("admin@example.test")
    runs_before = run_count()

    response = client.post("/territories/recompute", headers=HTMX)
    poll = client.get(f"/territories/runs/{active.id}", headers=HTMX)

    assert run_count() == runs_before
    assert "HX-Trigger" not in response.headers
    assert f"Run {active.id} was already running" in response.text
    assert 'hx-trigger="every 1s"' in response.text
    assert 'value="40"' in response.text
    assert "3 of 5 rule groups matched" in response.text
    assert poll.text.lstrip().startswith('<div id="run-status" class="run run-running"')
    assert f'hx-get="/territories/runs/{active.id}"' in poll.text


def test_recompute_without_htmx_redirects_with_a_message(
    market: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("admin@example.test")

    response = client.post("/territories/recompute", follow_redirects=True)

    assert response.request.path == "/territories/"
    assert re.search(r"Assignment run \d+ started\.", response.text)


def test_run_history_lists_runs_with_who_and_counts(
    market: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("admin@example.test")
    client.post("/territories/recompute", headers=HTMX)
    failed = Run(
        kind=ASSIGNMENT_KIND,
        task=ASSIGNMENT_TASK,
        status="failed",
        error="RuntimeError: the database went away",
    )
    db.session.add(failed)
    db.session.commit()

    page = client.get("/territories/runs").text

    rows = re.findall(
        r'<tr>\s*<td class="num"><a href="/territories/runs/(\d+)">', page
    )
    newest_first = db.session.scalars(select(Run.id).order_by(Run.id.desc())).all()
    assert rows == [str(run_id) for run_id in newest_first]
    assert rows[0] == str(failed.id)
    assert str(market.run) in rows
    # Each assignment run was followed by a programs run, listed with its kind.
    assert page.count("program eligibility") == 2
    assert "Test User" in page  # the admin who clicked the button
    assert "Command line" in page  # the fixture's run
    assert "RuntimeError: the database went away" in page
    assert "assigned 3" in page


def test_export_csv_gives_every_account_its_status(
    market: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("admin@example.test")

    response = client.get("/territories/export.csv")

    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    ids = market.accounts
    assert list(csv.reader(io.StringIO(response.text))) == [
        ["account_id", "postal_code", "territory", "partner", "rule", "status"],
        [
            str(ids["Alder Cafe"]),
            "02139",
            "North",
            "Northwind Partners",
            "North shape",
            "assigned",
        ],
        [
            str(ids["Birch Books"]),
            "02140",
            "North",
            "Northwind Partners",
            "North shape",
            "assigned",
        ],
        [str(ids["Cedar Clinic"]), "10001", "", "", "", "conflict"],
        [
            str(ids["Dogwood Deli"]),
            "",
            "South",
            "Southgate Ltd",
            "South states",
            "assigned",
        ],
        [str(ids["Elm Electric"]), "99999", "", "", "", "gap"],
        [str(ids["Fir Farm"]), "00000", "", "", "", "gap"],
    ]


def test_gap_report_lists_unmatched_accounts_and_says_which_have_no_location(
    market: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("admin@example.test")

    page = client.get("/territories/gaps").text

    listed = re.findall(r'<th scope="row">([^<]+)</th>', page)
    assert listed == ["Elm Electric", "Fir Farm"]
    assert page.count("No rule matched.") == 2
    assert page.count("No location</span>") == 1
    fir_row = page[page.index("Fir Farm") :]
    assert "No location" in fir_row


def test_conflict_report_lists_the_claiming_territories_and_rules(
    market: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("admin@example.test")

    page = client.get("/territories/conflicts").text

    assert re.findall(r'<th scope="row">([^<]+) <span', page) == ["Cedar Clinic"]
    claims = re.findall(r'<a href="/territories/(\d+)">([^<]+)</a>', page)
    assert claims == [(str(market.north), "North"), (str(market.south), "South")]
    assert "North shape" in page and "South shape" in page
    assert "South states" not in page  # a lower precedence does not claim it
    assert '<span class="precedence">50</span>' in page


def test_reports_before_any_run_say_so(
    clean_app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    make_account("Unassigned Inc", at=(1, 1))
    make_user(Role.ADMIN, email="admin@example.test")
    db.session.commit()
    auth.sign_in("admin@example.test")

    gaps = client.get("/territories/gaps").text
    index = client.get("/territories/").text

    assert "No assignment run has been made yet" in gaps
    assert "No assignment run has been started yet." in index
    assert "Not yet assigned" in index


def test_manager_region_page_shows_territories_owners_and_counts(
    market: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    region = db.session.get(Region, market.region)
    assert region is not None
    region.managers.append(make_user(Role.MANAGER, email="central@example.test"))
    db.session.commit()
    auth.sign_in("central@example.test")

    page = client.get(f"/regions/{market.region}").text

    rows = re.findall(
        r'<th scope="row"><a href="/regions/\d+/territories/\d+\?[^"]*">([^<]+)</a>'
        r'</th>\s*<td>\s*<a href="[^"]+">([^<]+)</a>\s*</td>'
        r'(?:\s*<td class="num">[^<]*</td>){5}\s*<td class="num">(\d+)</td>',
        page,
    )
    assert rows == [
        ("North", "Northwind Partners", "2"),
        ("South", "Southgate Ltd", "1"),
    ]
    assert f"/regions/{market.region}/shapes.geojson" in page


def test_missing_page_shows_the_status_and_a_sentence(
    market: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("admin@example.test")

    response = client.get("/territories/987654")

    assert response.status_code == 404
    assert "Error 404" in response.text
    assert "There is nothing at this address" in response.text


def test_a_region_map_shows_shapes_only_even_with_one_shaped_territory(
    clean_app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    manager = make_user(Role.MANAGER, email="lone@example.test")
    region = make_region("Lone", managers=[manager])
    only = make_territory(region, "Only", shape=square(0, 0, 10))
    add_rule(only, 1, ("shape", "inside", None))
    make_account("inside", at=(1, 1))
    db.session.commit()
    start_assignment_run()
    auth.sign_in("lone@example.test")

    region_map = client.get(f"/regions/{region.id}/shapes.geojson").json
    territory_map = client.get(
        f"/regions/{region.id}/territories/{only.id}/shape.geojson"
    ).json

    assert [f["properties"]["name"] for f in region_map["features"]] == ["Only"]
    kinds = [f["properties"].get("kind") for f in territory_map["features"]]
    assert kinds == [None, "account"]
