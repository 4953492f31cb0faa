"""Admins define territories and rules through the admin pages."""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry import Point
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from portal.extensions import db
from portal.models import Role
from territory_rules.imports import import_boundaries
from territory_rules.models import (
    Account,
    Assignment,
    Boundary,
    Condition,
    Rule,
    Territory,
)
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

STATES_FILE = Path(__file__).resolve().parent.parent / "demo_data" / "us-states.json"
LAYER = "US states"
DENVER = (-104.99, 39.74)
CHEYENNE = (-104.82, 41.14)
DALLAS = (-96.80, 32.78)


@pytest.fixture(autouse=True)
def quick_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Full-strength hashing costs a fifth of a second per user; keep tests quick."""
    quick = functools.partial(generate_password_hash, method="pbkdf2:sha256:1000")
    monkeypatch.setattr("portal.models.generate_password_hash", quick)


@pytest.fixture
def world(clean_app: Flask) -> SimpleNamespace:
    """Two regions, three real state boundaries, a territory, an admin and others."""
    states = json.loads(STATES_FILE.read_text())
    wanted = {"Colorado", "Wyoming", "Texas"}
    features = [f for f in states["features"] if f["properties"]["name"] in wanted]
    payload = {"type": "FeatureCollection", "features": features}
    report = import_boundaries(json.dumps(payload).encode(), LAYER, "name")
    assert report.ok, report.errors

    west, south = make_region("West"), make_region("South")
    org = make_org("Rockies Partners")
    plains = make_territory(south, "Plains", shape=square(0, 0, 10))
    shapeless = make_territory(west, "Postal only")
    manager = make_user(Role.MANAGER, email="manager@example.test")
    west.managers.append(manager)
    make_user(Role.ADMIN, email="admin@example.test")
    make_user(Role.PARTNER, org, email="partner@example.test")
    db.session.commit()
    boundaries = {b.name: b.id for b in db.session.scalars(select(Boundary))}
    return SimpleNamespace(
        west=west.id,
        south=south.id,
        org=org.id,
        plains=plains.id,
        shapeless=shapeless.id,
        boundaries=boundaries,
    )


@pytest.fixture
def admin(auth: AuthActions) -> AuthActions:
    auth.sign_in("admin@example.test")
    return auth


def territory_form(world: SimpleNamespace, **changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "name": "Rockies",
        "region": str(world.west),
        "parent": "",
        "partner": str(world.org),
        "boundaries": [
            str(world.boundaries["Colorado"]),
            str(world.boundaries["Wyoming"]),
        ],
    }
    form.update(changes)
    return form


def rule_form(
    name: str = "Front range",
    precedence: str = "50",
    rows: list[tuple[str, str, str]] | None = None,
) -> dict[str, Any]:
    rows = rows if rows is not None else [("state", "in", "CO, WY")]
    return {
        "name": name,
        "precedence": precedence,
        "field": [row[0] for row in rows],
        "operator": [row[1] for row in rows],
        "value": [row[2] for row in rows],
    }


def contains(territory: Territory, at: tuple[float, float]) -> bool:
    """Asked of the database, the way the engine asks it."""
    point = from_shape(Point(*at), srid=4326)
    hit = db.session.scalar(
        select(func.ST_Intersects(Territory.shape, point)).where(
            Territory.id == territory.id
        )
    )
    return bool(hit)


def snapshot() -> list[tuple[Any, ...]]:
    rules = db.session.execute(
        select(Rule.id, Rule.territory_id, Rule.name, Rule.precedence).order_by(Rule.id)
    ).all()
    conditions = db.session.execute(
        select(
            Condition.id, Condition.rule_id, Condition.field, Condition.operator
        ).order_by(Condition.id)
    ).all()
    values = db.session.scalars(select(Condition.value).order_by(Condition.id)).all()
    return [*map(tuple, rules), *map(tuple, conditions), *values]


def territory_rows() -> list[tuple[Any, ...]]:
    rows = db.session.execute(
        select(
            Territory.id,
            Territory.name,
            Territory.region_id,
            Territory.parent_id,
            Territory.partner_id,
            func.ST_AsText(Territory.shape),
        ).order_by(Territory.id)
    ).all()
    return [tuple(row) for row in rows]


# Territories -----------------------------------------------------------------


def test_new_territory_is_built_from_the_chosen_boundaries(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="territory_rules")

    response = client.post("/territories/new", data=territory_form(world))

    assert response.status_code == 302
    territory = db.session.scalar(select(Territory).where(Territory.name == "Rockies"))
    assert territory is not None
    assert response.location.endswith(f"/territories/{territory.id}?changed=1")
    assert territory.region_id == world.west
    assert territory.partner_id == world.org
    assert sorted(b.name for b in territory.boundaries) == ["Colorado", "Wyoming"]
    assert contains(territory, DENVER)
    assert contains(territory, CHEYENNE)
    assert not contains(territory, DALLAS)
    assert territory.shape is not None
    assert to_shape(territory.shape).contains(Point(*DENVER))
    assert f"admin@example.test created territory {territory.id} (Rockies)" in (
        caplog.text
    )


def test_page_after_a_change_offers_to_recompute_assignments(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    response = client.post(
        "/territories/new", data=territory_form(world), follow_redirects=True
    )

    assert response.status_code == 200
    assert "Territory Rockies was created." in response.text
    assert "until assignments are recomputed" in response.text
    assert 'action="/territories/recompute"' in response.text


def test_territory_can_be_edited_and_its_shape_follows_the_boundaries(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    client.post("/territories/new", data=territory_form(world))
    territory = db.session.scalar(select(Territory).where(Territory.name == "Rockies"))
    assert territory is not None

    edit = client.get(f"/territories/{territory.id}/edit")
    response = client.post(
        f"/territories/{territory.id}/edit",
        data=territory_form(
            world,
            name="Lone Star",
            region=str(world.south),
            parent=str(world.plains),
            partner="",
            boundaries=[str(world.boundaries["Texas"])],
        ),
    )

    assert edit.status_code == 200
    assert 'value="Rockies"' in edit.text
    assert response.status_code == 302
    db.session.expire_all()
    assert territory.name == "Lone Star"
    assert territory.region_id == world.south
    assert territory.parent_id == world.plains
    assert territory.partner_id is None
    assert contains(territory, DALLAS)
    assert not contains(territory, DENVER)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "  "}, "Enter a name for the territory."),
        ({"name": "plains"}, "A territory named &#39;plains&#39; already exists"),
        ({"region": ""}, "Choose the region of the territory from the list."),
        ({"region": "9999"}, "Choose the region of the territory from the list."),
        ({"region": "west"}, "Choose the region of the territory from the list."),
        ({"partner": "9999"}, "Choose the owner from the list, or no owner."),
        ({"parent": "9999"}, "Choose the parent territory from the list, or none."),
        ({"boundaries": ["9999"]}, "Some of the chosen boundaries no longer exist"),
        ({"boundaries": ["x"]}, "Some of the chosen boundaries no longer exist"),
    ],
)
def test_bad_territory_input_is_shown_beside_the_field_and_nothing_is_written(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    changes: dict[str, Any],
    message: str,
) -> None:
    before = territory_rows()

    response = client.post("/territories/new", data=territory_form(world, **changes))

    assert response.status_code == 400
    assert message in response.text
    assert 'class="field-error"' in response.text
    assert territory_rows() == before


def test_parent_must_be_in_the_same_region(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    before = territory_rows()

    response = client.post(
        "/territories/new", data=territory_form(world, parent=str(world.plains))
    )

    assert response.status_code == 400
    assert "The parent territory Plains is in the South region" in response.text
    assert territory_rows() == before


def test_a_territory_cannot_become_its_own_parent(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    before = territory_rows()

    response = client.post(
        f"/territories/{world.plains}/edit",
        data=territory_form(
            world, name="Plains", region=str(world.south), parent=str(world.plains)
        ),
    )

    assert response.status_code == 400
    assert "cannot be placed inside itself" in response.text
    assert territory_rows() == before


def test_boundaries_cannot_be_removed_while_a_shape_rule_needs_them(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    client.post("/territories/new", data=territory_form(world))
    territory = db.session.scalar(select(Territory).where(Territory.name == "Rockies"))
    assert territory is not None
    add_rule(territory, 100, ("shape", "inside", None))
    db.session.commit()
    before = territory_rows()

    response = client.post(
        f"/territories/{territory.id}/edit", data=territory_form(world, boundaries=[])
    )

    assert response.status_code == 400
    assert "keep at least one boundary, or remove that rule first" in response.text
    assert territory_rows() == before


# Rules -----------------------------------------------------------------------


def test_rule_with_conditions_is_stored_as_typed(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="territory_rules")
    rows = [
        ("shape", "inside", ""),
        ("postal_code", "between", "02000..02999"),
        ("state", "in", "TX, OK"),
        ("annual_revenue", "between", "1000000.."),
    ]

    response = client.post(
        f"/territories/{world.plains}/rules/new", data=rule_form(rows=rows)
    )

    assert response.status_code == 302
    rule = db.session.scalar(select(Rule).where(Rule.territory_id == world.plains))
    assert rule is not None
    assert (rule.name, rule.precedence) == ("Front range", 50)
    stored = [(c.field, c.operator, c.value) for c in rule.conditions]
    assert stored == [
        ("shape", "inside", None),
        ("postal_code", "between", {"low": "02000", "high": "02999"}),
        ("state", "in", ["TX", "OK"]),
        ("annual_revenue", "between", {"low": "1000000", "high": None}),
    ]
    assert f"admin@example.test added rule {rule.id} (Front range)" in caplog.text


def test_edit_form_shows_values_in_the_syntax_they_are_typed_in(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    territory = db.session.get(Territory, world.plains)
    assert territory is not None
    rule = add_rule(
        territory,
        20,
        ("postal_code", "between", {"low": "02000", "high": "02999"}),
        ("state", "in", ["TX", "OK"]),
        ("annual_revenue", "between", {"low": None, "high": "500000"}),
        name="Mixed",
    )
    db.session.commit()

    page = client.get(f"/territories/{world.plains}/rules/{rule.id}/edit").text

    assert 'value="Mixed"' in page
    assert 'value="20"' in page
    assert 'value="02000..02999"' in page
    assert 'value="TX, OK"' in page
    assert 'value="..500000"' in page


def test_rule_update_replaces_its_conditions(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    territory = db.session.get(Territory, world.plains)
    assert territory is not None
    rule = add_rule(territory, 20, ("state", "in", ["TX"]), name="Old")
    db.session.commit()

    response = client.post(
        f"/territories/{world.plains}/rules/{rule.id}/edit",
        data=rule_form("New", "-5", [("postal_code", "starts_with", "750, 751")]),
    )

    assert response.status_code == 302
    db.session.expire_all()
    assert (rule.name, rule.precedence) == ("New", -5)
    assert [(c.field, c.operator, c.value) for c in rule.conditions] == [
        ("postal_code", "starts_with", ["750", "751"])
    ]
    assert db.session.scalar(select(func.count()).select_from(Condition)) == 1


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (rule_form(precedence="high"), "Enter the precedence as a whole number"),
        (rule_form(precedence="1.5"), "Enter the precedence as a whole number"),
        (rule_form(precedence=""), "Enter the precedence as a whole number"),
        (rule_form(precedence="99999999999"), "Enter a precedence between"),
        (rule_form(name=" "), "Enter a name for the rule."),
        (rule_form(rows=[]), "Add at least one condition to the rule."),
        (rule_form(rows=[("colour", "in", "red")]), "Unknown field &#39;colour&#39;."),
        (
            rule_form(rows=[("state", "starts_with", "T")]),
            "A state or province condition can use: in.",
        ),
        (
            rule_form(rows=[("postal_code", "between", "02000..2999")]),
            "Both ends of a postal-code range must have the same length",
        ),
        (
            rule_form(rows=[("annual_revenue", "between", "1,000..")]),
            "without thousands separators",
        ),
        (
            rule_form(rows=[("state", "in", "TX"), ("city", "in", " , ")]),
            "Enter at least one value, separated by commas.",
        ),
        (
            {"name": "Forged", "precedence": "1", "field": ["state", "city"]},
            "A state or province condition can use: in.",
        ),
    ],
)
def test_bad_rule_input_is_shown_and_leaves_the_rules_unchanged(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    form: dict[str, Any],
    message: str,
) -> None:
    territory = db.session.get(Territory, world.plains)
    assert territory is not None
    rule = add_rule(territory, 20, ("state", "in", ["TX"]), name="Kept")
    db.session.commit()
    before = snapshot()

    added = client.post(f"/territories/{world.plains}/rules/new", data=form)
    edited = client.post(f"/territories/{world.plains}/rules/{rule.id}/edit", data=form)

    for response in (added, edited):
        assert response.status_code == 400
        assert message in response.text
        assert 'class="field-error"' in response.text
    assert snapshot() == before


def test_shape_condition_is_refused_on_a_territory_without_a_shape(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    before = snapshot()

    response = client.post(
        f"/territories/{world.shapeless}/rules/new",
        data=rule_form(rows=[("state", "in", "CO"), ("shape", "inside", "")]),
    )

    assert response.status_code == 400
    assert "This territory has no shape yet" in response.text
    # The valid row is shown back as typed.
    assert 'value="CO"' in response.text
    assert snapshot() == before


def test_rule_is_deleted_after_confirmation(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="territory_rules")
    territory = db.session.get(Territory, world.plains)
    assert territory is not None
    rule = add_rule(territory, 20, ("state", "in", ["TX"]), name="Gone soon")
    account = make_account("Alamo Ale", state="TX")
    db.session.add(
        Assignment(
            account_id=account.id,
            status="assigned",
            territory_id=territory.id,
            rule_id=rule.id,
        )
    )
    db.session.commit()
    rule_id = rule.id
    url = f"/territories/{world.plains}/rules/{rule_id}/delete"

    confirm = client.get(url)
    response = client.post(url)

    assert confirm.status_code == 200
    assert "Delete the rule Gone soon?" in confirm.text
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Rule, rule_id) is None
    assert db.session.scalar(select(func.count()).select_from(Condition)) == 0
    assignment = db.session.get(Assignment, account.id)
    assert assignment is not None
    assert (assignment.territory_id, assignment.rule_id) == (territory.id, None)
    assert f"admin@example.test deleted rule {rule_id} (Gone soon)" in caplog.text


def test_operator_select_follows_the_field(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    revenue = client.get(
        "/territories/rules/condition-row",
        query_string={"field": "annual_revenue", "operator": "in", "value": "5.."},
    )
    unknown = client.get(
        "/territories/rules/condition-row", query_string={"field": "colour"}
    )

    assert revenue.status_code == 200
    assert '<option value="between" selected>' in revenue.text
    assert '<option value="in"' not in revenue.text
    assert 'value="5.."' in revenue.text
    assert '<option value="postal_code" selected>' in unknown.text


# Access ----------------------------------------------------------------------


def admin_urls(world: SimpleNamespace, rule_id: int) -> list[str]:
    base = f"/territories/{world.plains}"
    return [
        "/territories/new",
        f"{base}/edit",
        f"{base}/rules/new",
        f"{base}/rules/{rule_id}/edit",
        f"{base}/rules/{rule_id}/delete",
    ]


@pytest.mark.parametrize("email", ["partner@example.test", "manager@example.test"])
def test_partners_and_managers_are_refused(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions, email: str
) -> None:
    territory = db.session.get(Territory, world.plains)
    assert territory is not None
    rule = add_rule(territory, 20, ("state", "in", ["TX"]))
    db.session.commit()
    before = snapshot(), territory_rows()
    auth.sign_in(email)

    for url in admin_urls(world, rule.id):
        assert client.get(url).status_code == 403, url
        assert client.post(url, data=rule_form()).status_code == 403, url
    row = client.get("/territories/rules/condition-row")

    assert row.status_code == 403
    assert (snapshot(), territory_rows()) == before


def test_missing_or_foreign_objects_are_404(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    territory = db.session.get(Territory, world.plains)
    assert territory is not None
    rule = add_rule(territory, 20, ("state", "in", ["TX"]))
    db.session.commit()
    before = snapshot()
    other = f"/territories/{world.shapeless}/rules/{rule.id}"
    missing_rule = f"/territories/{world.plains}/rules/9999"

    urls = [
        "/territories/9999/edit",
        "/territories/9999/rules/new",
        f"{other}/edit",
        f"{other}/delete",
        f"{missing_rule}/edit",
        f"{missing_rule}/delete",
    ]
    for url in urls:
        assert client.get(url).status_code == 404, url
        assert client.post(url, data=rule_form()).status_code == 404, url
    assert snapshot() == before


# Assignment ------------------------------------------------------------------


def test_new_rule_moves_an_account_after_a_run(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    client.post("/territories/new", data=territory_form(world))
    rockies = db.session.scalar(select(Territory).where(Territory.name == "Rockies"))
    assert rockies is not None
    account = make_account("Mile High Mugs", at=DENVER, state="CO")
    db.session.commit()
    client.post("/territories/recompute")
    first = db.session.get(Assignment, account.id)
    assert first is not None and first.status == "gap"

    client.post(
        f"/territories/{rockies.id}/rules/new",
        data=rule_form("Rockies shape", "100", [("shape", "inside", "")]),
    )
    db.session.expire_all()
    unchanged = db.session.get(Assignment, account.id)
    assert unchanged is not None and unchanged.status == "gap"
    client.post("/territories/recompute")

    db.session.expire_all()
    rule = db.session.scalar(select(Rule).where(Rule.territory_id == rockies.id))
    moved = db.session.get(Assignment, account.id)
    assert rule is not None and moved is not None
    assert (moved.status, moved.territory_id, moved.rule_id) == (
        "assigned",
        rockies.id,
        rule.id,
    )
    assert db.session.scalar(select(func.count()).select_from(Account)) == 1


def test_a_parent_cannot_leave_its_region_while_its_children_stay(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    plains = db.session.get(Territory, world.plains)
    assert plains is not None
    make_territory(plains.region, "Plains North", parent=plains)
    db.session.commit()
    before = territory_rows()

    response = client.post(
        f"/territories/{world.plains}/edit",
        data=territory_form(world, name="Plains", region=str(world.west)),
    )

    assert response.status_code == 400
    assert "Plains has sub-territories in the South region (Plains North)" in (
        response.text
    )
    assert territory_rows() == before


def test_a_parent_id_too_large_for_the_database_is_refused_as_not_listed(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    before = territory_rows()

    response = client.post(
        "/territories/new",
        data=territory_form(world, name="Huge", parent="99999999999999999999"),
    )

    assert response.status_code == 400
    assert "Choose the parent territory from the list" in response.text
    assert territory_rows() == before
