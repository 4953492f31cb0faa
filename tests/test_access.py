"""Who may open which page: foreign objects are 404, other roles' pages 403."""

from __future__ import annotations

import functools
import re
from types import SimpleNamespace

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from portal.extensions import db
from portal.models import Role
from portal.runs import Run
from territory_rules.jobs import start_assignment_run
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
    """Full-strength hashing costs a fifth of a second per user; these tests make many.

    Checking still goes through werkzeug, which reads the method from the hash.
    """
    quick = functools.partial(generate_password_hash, method="pbkdf2:sha256:1000")
    monkeypatch.setattr("portal.models.generate_password_hash", quick)


@pytest.fixture
def world(clean_app: Flask) -> SimpleNamespace:
    """Two organisations in two regions, each with a territory, a manager, a user."""
    acme, globex = make_org("Acme Resellers"), make_org("Globex Partners")
    west_manager = make_user(Role.MANAGER, email="west@example.test")
    east_manager = make_user(Role.MANAGER, email="east@example.test")
    west = make_region("West", managers=[west_manager])
    east = make_region("East", managers=[east_manager])
    pacific = make_territory(west, "Pacific", partner=acme, shape=square(0, 0, 10))
    atlantic = make_territory(east, "Atlantic", partner=globex, shape=square(20, 0, 10))
    add_rule(pacific, 10, ("shape", "inside", None), name="Pacific shape")
    add_rule(atlantic, 10, ("shape", "inside", None), name="Atlantic shape")
    make_account("Pacific Diner", at=(5, 5))
    make_account("Atlantic Bakery", at=(25, 5))
    make_user(Role.PARTNER, acme, email="acme@example.test")
    make_user(Role.PARTNER, globex, email="globex@example.test")
    make_user(Role.ADMIN, email="admin@example.test")
    db.session.commit()
    start_assignment_run()
    return SimpleNamespace(
        west=west.id, east=east.id, pacific=pacific.id, atlantic=atlantic.id
    )


def test_partner_opens_own_territory_its_shape_and_accounts(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("acme@example.test")

    page = client.get(f"/my/territory/{world.pacific}")
    shape = client.get(f"/my/territory/{world.pacific}/shape.geojson")
    fragment = client.get(f"/my/territory/{world.pacific}?page=1", headers=HTMX)

    assert page.status_code == 200
    assert "Pacific Diner" in page.text
    assert shape.status_code == 200
    shapes = [f for f in shape.json["features"] if "kind" not in f["properties"]]
    assert [f["properties"]["name"] for f in shapes] == ["Pacific"]
    assert fragment.status_code == 200
    assert "Pacific Diner" in fragment.text


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("/my/territory/{atlantic}", {}),
        ("/my/territory/{atlantic}/shape.geojson", {}),
        ("/my/territory/{atlantic}?page=1", HTMX),
        ("/my/territory/999999", {}),
    ],
)
def test_partner_gets_404_for_another_organisations_territory(
    world: SimpleNamespace,
    client: FlaskClient,
    auth: AuthActions,
    url: str,
    headers: dict[str, str],
) -> None:
    auth.sign_in("acme@example.test")

    response = client.get(url.format(**vars(world)), headers=headers)

    assert response.status_code == 404
    assert "Atlantic" not in response.text


def test_partner_page_never_shows_another_organisations_accounts(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("globex@example.test")

    response = client.get("/my/territory")

    assert response.status_code == 200
    assert "Atlantic Bakery" in response.text
    assert "Pacific" not in response.text


@pytest.mark.parametrize(
    "url",
    [
        "/regions/{east}",
        "/regions/{east}/shapes.geojson",
        "/regions/{east}/territories/{atlantic}",
        "/regions/{east}/territories/{atlantic}/shape.geojson",
        # A territory of another region reached through the manager's own region.
        "/regions/{west}/territories/{atlantic}",
    ],
)
def test_manager_gets_404_for_a_region_they_do_not_manage(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions, url: str
) -> None:
    auth.sign_in("west@example.test")

    response = client.get(url.format(**vars(world)))

    assert response.status_code == 404


def test_manager_sees_only_their_regions(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("west@example.test")

    index = client.get("/regions/")
    region = client.get(f"/regions/{world.west}")
    territory = client.get(f"/regions/{world.west}/territories/{world.pacific}")

    assert "Pacific" in index.text
    assert "Atlantic" not in index.text
    assert region.status_code == 200
    assert "Pacific Diner" in territory.text


def test_admin_opens_every_region(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("admin@example.test")

    index = client.get("/regions/")
    east = client.get(f"/regions/{world.east}/territories/{world.atlantic}")

    assert "Pacific" in index.text
    assert "Atlantic" in index.text
    assert "Atlantic Bakery" in east.text


ADMIN_PAGES = [
    "/territories/",
    "/territories/{pacific}",
    "/territories/{pacific}/shape.geojson",
    "/territories/runs",
    "/territories/gaps",
    "/territories/conflicts",
    "/territories/export.csv",
]


@pytest.mark.parametrize("url", [*ADMIN_PAGES, "/regions/", "/regions/{west}"])
def test_partner_gets_403_on_admin_and_manager_pages(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions, url: str
) -> None:
    auth.sign_in("acme@example.test")

    response = client.get(url.format(**vars(world)))

    assert response.status_code == 403
    assert "not part of your role" in response.text


@pytest.mark.parametrize("url", [*ADMIN_PAGES, "/my/territory"])
def test_manager_gets_403_on_admin_and_partner_pages(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions, url: str
) -> None:
    auth.sign_in("west@example.test")

    assert client.get(url.format(**vars(world))).status_code == 403


def test_admin_gets_403_on_the_partner_page(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("admin@example.test")

    assert client.get("/my/territory").status_code == 403


def test_partner_cannot_start_a_recompute(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("acme@example.test")
    runs_before = db.session.scalar(select(func.count()).select_from(Run))

    response = client.post("/territories/recompute", headers=HTMX)

    assert response.status_code == 403
    assert db.session.scalar(select(func.count()).select_from(Run)) == runs_before


@pytest.mark.parametrize(
    "url", ["/my/territory", "/regions/", "/territories/", "/territories/gaps"]
)
def test_anonymous_user_is_sent_to_sign_in(client: FlaskClient, url: str) -> None:
    response = client.get(url)

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/sign-in?next=")


def test_anonymous_htmx_request_gets_hx_redirect(client: FlaskClient) -> None:
    response = client.get("/territories/runs?page=2", headers=HTMX)

    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/auth/sign-in?next=")
    assert "runs" in response.headers["HX-Redirect"]


def test_sign_in_page_renders_with_labelled_fields(client: FlaskClient) -> None:
    response = client.get("/auth/sign-in")

    assert response.status_code == 200
    assert '<label for="email">Email</label>' in response.text
    assert '<label for="password">Password</label>' in response.text


def test_wrong_password_is_refused_with_a_sentence(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions
) -> None:
    response = auth.sign_in("acme@example.test", "not-the-password")

    assert response.status_code == 200
    assert "do not match an account" in response.text
    assert client.get("/my/territory").status_code == 302


def _csrf_token(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert match, "the layout carries the CSRF token in a meta tag"
    return match.group(1)


def test_post_without_csrf_token_is_refused_with_a_clear_message(
    world: SimpleNamespace,
    clean_app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    auth.sign_in("admin@example.test")
    monkeypatch.setitem(clean_app.config, "WTF_CSRF_ENABLED", True)
    runs_before = db.session.scalar(select(func.count()).select_from(Run))

    response = client.post("/territories/recompute")

    assert response.status_code == 400
    assert "reload the page and try again" in response.text
    assert "Traceback" not in response.text
    assert db.session.scalar(select(func.count()).select_from(Run)) == runs_before


def test_htmx_post_with_the_meta_tag_token_is_accepted(
    world: SimpleNamespace,
    clean_app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    auth.sign_in("admin@example.test")
    monkeypatch.setitem(clean_app.config, "WTF_CSRF_ENABLED", True)
    token = _csrf_token(client.get("/territories/").text)

    response = client.post(
        "/territories/recompute", headers={**HTMX, "X-CSRFToken": token}
    )

    assert response.status_code == 200
    assert 'id="run-status"' in response.text


def test_sign_in_follows_next_only_to_a_page_of_the_users_role(client, auth):
    from portal.models import Role
    from tests.factories import make_user

    make_user(Role.MANAGER, email="m@example.test")
    make_user(Role.PARTNER, email="p@example.test")

    manager = client.post(
        "/auth/sign-in?next=/my/territory",
        data={"email": "m@example.test", "password": "pass-1234"},
    )
    assert manager.headers["Location"] == "/"
    auth.sign_out()
    partner = client.post(
        "/auth/sign-in?next=/my/territory?page=2",
        data={"email": "p@example.test", "password": "pass-1234"},
    )
    assert partner.headers["Location"] == "/my/territory?page=2"
    auth.sign_out()
    foreign = client.post(
        "/auth/sign-in?next=https://elsewhere.example/",
        data={"email": "p@example.test", "password": "pass-1234"},
    )
    assert foreign.headers["Location"] == "/"


def test_a_copy_of_a_session_cookie_is_worthless_after_sign_out(client, auth):
    from portal.models import Role
    from tests.factories import make_user

    make_user(Role.ADMIN, email="a@example.test")
    auth.sign_in("a@example.test")
    saved = client.get_cookie("session").value
    assert client.get("/territories/").status_code == 200

    auth.sign_out()
    client.set_cookie("session", saved)

    response = client.get("/territories/")
    assert response.status_code == 302
    assert "/auth/sign-in" in response.headers["Location"]


def test_absurd_page_numbers_are_a_plain_not_found(client, auth):
    from portal.models import Role
    from tests.factories import make_user

    make_user(Role.ADMIN, email="a@example.test")
    auth.sign_in("a@example.test")

    statuses = {
        page: client.get(f"/territories/gaps?page={page}").status_code
        for page in ("200000000000000000", "999999999999", "-5", "abc")
    }

    # Past the last page is not found; what is not a page number means page 1.
    assert statuses == {
        "200000000000000000": 404,
        "999999999999": 404,
        "-5": 200,
        "abc": 200,
    }


def test_pages_refuse_to_be_framed(client):
    response = client.get("/auth/sign-in")

    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert client.application.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_ids_too_large_for_any_database_are_not_found(client, auth):
    from portal.models import Role
    from tests.factories import make_user

    make_user(Role.ADMIN, email="a@example.test")
    auth.sign_in("a@example.test")

    for url in (
        "/territories/99999999999999999999999",
        "/territories/runs/99999999999999999999",
        "/regions/99999999999999999999999",
    ):
        assert client.get(url).status_code == 404, url
