"""Admins define programs, targeting rules, steps, tiers and training modules."""

from __future__ import annotations

import functools
import io
import logging
import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError
from werkzeug.security import generate_password_hash

from portal.extensions import db
from portal.models import Role, User
from portal.runs import Run
from programs import editing
from programs.editing import EditRejected, ProgramInput
from programs.jobs import ELIGIBILITY_KIND
from programs.models import (
    Program,
    ProgramCondition,
    ProgramRule,
    ProgramStep,
    Tier,
    TrainingModule,
)
from tests.conftest import AuthActions
from tests.factories import make_org, make_region, make_territory, make_user
from tests.program_factories import (
    add_program_rule,
    add_step,
    add_tier,
    make_module,
    make_program,
)

ADMIN = "admin@example.test"


@pytest.fixture(autouse=True)
def quick_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Full-strength hashing costs a fifth of a second per user; keep tests quick."""
    quick = functools.partial(generate_password_hash, method="pbkdf2:sha256:1000")
    monkeypatch.setattr("portal.models.generate_password_hash", quick)


@pytest.fixture
def world(clean_app: Flask) -> SimpleNamespace:
    """Three partners owning territories in two regions, a program, and people."""
    west, east = make_region("West"), make_region("East")
    acme = make_org("Acme Resellers", "reseller")
    bolt = make_org("Bolt Distribution", "distributor")
    cirrus = make_org("Cirrus Office", "reseller")
    pacific = make_territory(west, "Pacific", partner=acme)
    mountain = make_territory(west, "Mountain", partner=bolt)
    atlantic = make_territory(east, "Atlantic", partner=cirrus)
    program = make_program("Spring training", status="draft")
    rule = add_program_rule(program, ("partner_type", "in", ["reseller"]), name="All")
    module = make_module("Welcome")
    step = add_step(program, module)
    make_user(Role.ADMIN, email=ADMIN)
    manager = make_user(Role.MANAGER, email="manager@example.test")
    west.managers.append(manager)
    make_user(Role.PARTNER, acme, email="partner@example.test")
    db.session.commit()
    return SimpleNamespace(
        west=west.id,
        east=east.id,
        acme=acme.id,
        pacific=pacific.id,
        mountain=mountain.id,
        atlantic=atlantic.id,
        program=program.id,
        rule=rule.id,
        module=module.id,
        step=step.id,
    )


@pytest.fixture
def admin(world: SimpleNamespace, auth: AuthActions) -> AuthActions:
    auth.sign_in(ADMIN)
    return auth


@pytest.fixture
def module_files(
    clean_app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Uploaded module files go to a temporary instance folder."""
    monkeypatch.setattr(clean_app, "instance_path", str(tmp_path))
    return tmp_path / "module_files"


def program_form(**changes: Any) -> dict[str, Any]:
    form = {
        "name": "Summer incentive",
        "kind": "incentive",
        "description": "Sell more, earn more.",
        "starts_on": "2026-06-01",
        "ends_on": "2026-08-31",
        "kpi": "sales_sum",
        "kpi_direction": "higher",
    }
    form.update(changes)
    return form


def rule_form(
    name: str = "Resellers out west", rows: Any = None, version: str = "1"
) -> dict[str, Any]:
    """A rule form as opened on a program nobody changed since it was created."""
    rows = rows if rows is not None else [("region", "in", "West")]
    return {
        "name": name,
        "field": [row[0] for row in rows],
        "operator": [row[1] for row in rows],
        "value": [row[2] for row in rows],
        "version": version,
    }


def tier_form(
    separator: str, rows: list[tuple[str, ...]], version: str = "1"
) -> dict[str, Any]:
    padded = [(*row, "", "", "", "")[:5] for row in rows]
    columns = ("tier_name", "threshold", "benefits", "multiplier", "bonus_points")
    form: dict[str, Any] = {"decimal_separator": separator, "version": version}
    for index, column in enumerate(columns):
        form[column] = [row[index] for row in padded]
    return form


def programs_table() -> list[tuple[Any, ...]]:
    rows = db.session.execute(
        select(
            Program.id,
            Program.name,
            Program.kind,
            Program.status,
            Program.starts_on,
            Program.ends_on,
            Program.kpi,
            Program.version,
        ).order_by(Program.id)
    ).all()
    return [tuple(row) for row in rows]


def rules_table() -> list[tuple[Any, ...]]:
    rows = db.session.execute(
        select(ProgramRule.id, ProgramRule.name).order_by(ProgramRule.id)
    ).all()
    values = db.session.execute(
        select(
            ProgramCondition.rule_id, ProgramCondition.field, ProgramCondition.value
        ).order_by(ProgramCondition.id)
    ).all()
    return [*map(tuple, rows), *map(tuple, values)]


def tiers_of(program_id: int) -> list[tuple[Any, ...]]:
    rows = db.session.execute(
        select(Tier.name, Tier.threshold, Tier.points_multiplier, Tier.bonus_points)
        .where(Tier.program_id == program_id)
        .order_by(Tier.position)
    ).all()
    return [tuple(row) for row in rows]


def runs_of_eligibility() -> int:
    return (
        db.session.scalar(
            select(func.count()).select_from(Run).where(Run.kind == ELIGIBILITY_KIND)
        )
        or 0
    )


def unescaped(html: str) -> str:
    return html.replace("&#39;", "'").replace("&#34;", '"').replace("&quot;", '"')


def version_of(program_id: int) -> str:
    """The program's version now, as a page opened now would carry it."""
    return str(
        db.session.scalar(select(Program.version).where(Program.id == program_id))
    )


def fingerprint_of(module_id: int) -> str:
    """The module as a page opened now would carry it."""
    db.session.expire_all()
    module = db.session.get(TrainingModule, module_id)
    assert module is not None
    return editing.module_fingerprint(module)


# Programs --------------------------------------------------------------------


def test_new_program_is_created_as_a_draft(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="programs")

    response = client.post("/admin/programs/new", data=program_form())

    assert response.status_code == 302
    program = db.session.scalar(
        select(Program).where(Program.name == "Summer incentive")
    )
    assert program is not None
    assert response.location.endswith(f"/admin/programs/{program.id}")
    assert (program.kind, program.status, program.kpi) == (
        "incentive",
        "draft",
        "sales_sum",
    )
    assert (program.starts_on, program.ends_on) == (date(2026, 6, 1), date(2026, 8, 31))
    assert program.description == "Sell more, earn more."
    assert f"{ADMIN} created program {program.id} (Summer incentive)" in caplog.text


def test_only_incentive_programs_keep_a_kpi(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    client.post("/admin/programs/new", data=program_form(kind="campaign"))

    program = db.session.scalar(
        select(Program).where(Program.name == "Summer incentive")
    )
    assert program is not None
    assert (program.kind, program.kpi) == ("campaign", None)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": " "}, "Enter a name for the program."),
        (
            {"name": "spring TRAINING"},
            "A program named 'spring TRAINING' already exists",
        ),
        ({"ends_on": "2026-05-31"}, "The program would end before it starts"),
        ({"starts_on": ""}, "Enter the start date."),
        ({"ends_on": "31/08/2026"}, "Enter the end date as year-month-day"),
        ({"kind": "lottery"}, "Choose the kind of program from the list."),
        ({"kpi": "happiness"}, "Choose what the tiers measure from the list."),
        ({"description": "bad\x00byte"}, "Remove the control characters"),
    ],
)
def test_bad_program_input_is_shown_beside_the_field_and_nothing_is_written(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    changes: dict[str, str],
    message: str,
) -> None:
    before = programs_table()

    response = client.post("/admin/programs/new", data=program_form(**changes))

    assert response.status_code == 400
    assert message in unescaped(response.text)
    assert 'class="field-error"' in response.text
    assert programs_table() == before


def test_program_edit_saves_and_moves_the_version_on(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    page = client.get(f"/admin/programs/{world.program}/edit")

    response = client.post(
        f"/admin/programs/{world.program}/edit",
        data=program_form(name="Autumn training", kind="training", version="1"),
    )

    assert page.status_code == 200
    assert 'name="version" type="hidden" value="1"' in page.text
    assert 'type="date"' in page.text
    assert response.status_code == 302
    db.session.expire_all()
    program = db.session.get(Program, world.program)
    assert program is not None
    assert (program.name, program.version) == ("Autumn training", 2)


def test_second_edit_from_the_same_version_is_refused(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    first = client.post(
        f"/admin/programs/{world.program}/edit",
        data=program_form(name="First edit", kind="training", version="1"),
    )
    after_first = programs_table()

    second = client.post(
        f"/admin/programs/{world.program}/edit",
        data=program_form(name="Second edit", kind="training", version="1"),
    )

    assert first.status_code == 302
    assert second.status_code == 400
    assert "Someone else changed this program since you opened it." in second.text
    assert "Reload to see their changes, then make yours again." in second.text
    assert programs_table() == after_first
    assert after_first[0][1] == "First edit"


def test_a_change_that_lands_during_the_save_is_refused(
    world: SimpleNamespace, clean_app: Flask
) -> None:
    program = db.session.get(Program, world.program)
    user = db.session.scalar(select(User).where(User.email == ADMIN))
    assert program is not None and user is not None
    seen = str(program.version)
    # Another admin's save commits, on its own connection, after we loaded ours.
    with db.engine.begin() as theirs:
        theirs.execute(
            update(Program.__table__)
            .where(Program.__table__.c.id == program.id)
            .values(name="Theirs", version=program.version + 1)
        )

    with pytest.raises(EditRejected) as refused:
        editing.update_program(
            program,
            ProgramInput("Mine", "training", "", "2026-01-01", "2026-12-31"),
            seen,
            user,
        )

    assert refused.value.errors == {"version": editing.STALE}
    db.session.expire_all()
    assert db.session.get(Program, world.program).name == "Theirs"  # type: ignore[union-attr]


def test_changing_dates_asks_for_an_eligibility_run(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    before = runs_of_eligibility()

    response = client.post(
        f"/admin/programs/{world.program}/edit",
        data=program_form(name="Spring training", kind="training", version="1"),
        follow_redirects=True,
    )

    assert response.status_code == 200
    assert "Partner eligibility was recomputed" in response.text
    assert runs_of_eligibility() == before + 1


def test_kpi_fields_show_for_incentive_programs_only(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    incentive = client.get("/admin/programs/kpi-fields?kind=incentive&kpi=sales_count")
    training = client.get("/admin/programs/kpi-fields?kind=training")

    assert '<div id="kpi-fields">' in incentive.text
    assert '<option selected value="sales_count">' in incentive.text
    assert '<div id="kpi-fields" hidden>' in training.text


def test_index_lists_programs_with_period_ended_label_and_partner_count(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    make_program(
        "Last year's push",
        starts_on=date(2020, 1, 1),
        ends_on=date.today() - timedelta(days=2),
    )
    db.session.commit()
    client.post(f"/admin/programs/{world.program}/activate", data={"version": "1"})

    page = client.get("/admin/programs/").text

    spring = re.search(r"Spring training</a></th>(.*?)</tr>", page, re.S)
    old = re.search(r"Last year&#39;s push</a></th>(.*?)</tr>", page, re.S)
    assert spring and old
    assert "Active" in spring.group(1) and "Ended" not in spring.group(1)
    assert "Ended" in old.group(1)
    assert "1 January 2020 \u2013 31 December 2099" in spring.group(1)
    # Acme and Cirrus are resellers: the rule "All" targets both.
    assert '<td class="num">2</td>' in spring.group(1)
    assert "New program" in page and "Training modules" in page


def test_recompute_button_starts_an_eligibility_run(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    response = client.post("/admin/programs/recompute", follow_redirects=True)

    run = db.session.scalar(select(Run).where(Run.kind == ELIGIBILITY_KIND))
    assert run is not None
    # Without Redis the run has finished before the page is shown.
    assert f"Eligibility run {run.id} finished." in response.text
    assert "its progress shows on the runs page" not in response.text
    assert run.started_by is not None and run.started_by.email == ADMIN
    assert "program eligibility" in client.get("/territories/runs").text


# Targeting rules -------------------------------------------------------------


def test_rule_with_conditions_is_stored_and_shown_in_words(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    rows = [("region", "in", "west"), ("partner_type", "in", "Reseller")]

    response = client.post(
        f"/admin/programs/{world.program}/rules/new", data=rule_form(rows=rows)
    )

    assert response.status_code == 302
    rule = db.session.scalar(
        select(ProgramRule).where(ProgramRule.name == "Resellers out west")
    )
    assert rule is not None
    assert [(c.field, c.operator, c.value) for c in rule.conditions] == [
        ("region", "in", [world.west]),
        ("partner_type", "in", ["Reseller"]),
    ]
    page = client.get(f"/admin/programs/{world.program}").text
    assert "region is West and partner type is Reseller" in page
    assert "Partner eligibility was recomputed" in page


def test_saved_rule_brings_its_partners_onto_the_program_page(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    client.post(
        f"/admin/programs/{world.program}/rules/new",
        data=rule_form(rows=[("territory", "in", "Mountain")]),
    )

    page = client.get(f"/admin/programs/{world.program}").text

    partners = page.split('id="partners"')[1]
    assert "Bolt Distribution" in partners
    assert "territory Mountain" in partners
    # "All" targets the resellers; Acme and Cirrus stay.
    assert "Acme Resellers" in partners and "Cirrus Office" in partners


def test_preview_lists_the_partners_the_rule_would_target(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    before = rules_table()

    west = client.post(
        "/admin/programs/rules/preview",
        data=rule_form(rows=[("region", "in", "West")]),
    )
    west_resellers = client.post(
        "/admin/programs/rules/preview",
        data=rule_form(
            rows=[("region", "in", "West"), ("partner_type", "in", "reseller")]
        ),
    )

    assert west.status_code == 200
    assert "Targets 2 partners</strong>:" in west.text
    assert "Acme Resellers, Bolt Distribution" in west.text
    assert "Cirrus Office" not in west.text
    assert "for territory Pacific: region is West" in west.text
    assert "Targets 1 partner</strong>:" in west_resellers.text
    assert "Bolt Distribution" not in west_resellers.text
    assert rules_table() == before


def test_preview_shows_row_errors_instead_of_partners(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    response = client.post(
        "/admin/programs/rules/preview",
        data=rule_form(
            rows=[("region", "in", "West"), ("territory", "in", "Atlantis")]
        ),
    )

    assert response.status_code == 200
    assert "Condition 2: No territory is named 'Atlantis'" in unescaped(response.text)
    assert "Targets" not in response.text


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("territory", "in", "Atlantis")], "No territory is named 'Atlantis'"),
        ([("territory_accounts", "between", "lots")], "Write a range as low..high"),
        ([("onboarding_status", "in", "sleeping")], "'sleeping' is not an onboarding"),
        ([("weather", "in", "sunny")], "Unknown field 'weather'."),
        ([("region", "between", "1..2")], "A region condition can use: in."),
        ([], "Add at least one condition to the rule."),
    ],
)
def test_bad_condition_rows_are_shown_beside_the_row_and_nothing_is_saved(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    rows: list[tuple[str, str, str]],
    message: str,
) -> None:
    before = rules_table()

    response = client.post(
        f"/admin/programs/{world.program}/rules/new", data=rule_form(rows=rows)
    )

    assert response.status_code == 400
    assert message in unescaped(response.text)
    assert 'class="field-error"' in response.text
    assert rules_table() == before


def test_a_bad_row_keeps_the_other_rows_as_typed(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    rows = [("region", "in", "West"), ("territory_accounts", "between", "9..1")]

    response = client.post(
        f"/admin/programs/{world.program}/rules/new", data=rule_form(rows=rows)
    )

    assert response.status_code == 400
    assert 'value="West"' in response.text
    assert 'value="9..1"' in response.text
    assert response.text.count('class="condition-row field-invalid"') == 1
    assert "The lower bound is above the upper bound." in response.text


def test_edit_rule_shows_names_as_typed_and_replaces_the_conditions(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    program = db.session.get(Program, world.program)
    assert program is not None
    rule = add_program_rule(
        program,
        ("territory", "in", [world.pacific, world.atlantic]),
        ("territory_accounts", "between", {"low": None, "high": "5"}),
        name="Coasts",
    )
    db.session.commit()
    url = f"/admin/programs/{world.program}/rules/{rule.id}/edit"

    page = client.get(url).text
    response = client.post(
        url, data=rule_form("Mountains", [("territory", "in", "Mountain")])
    )

    assert 'value="Pacific, Atlantic"' in page
    assert 'value="..5"' in page
    assert "Targets 2 partners" in page
    assert response.status_code == 302
    db.session.expire_all()
    assert rule.name == "Mountains"
    assert [(c.field, c.value) for c in rule.conditions] == [
        ("territory", [world.mountain])
    ]


def test_rule_is_deleted_after_confirmation(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    url = f"/admin/programs/{world.program}/rules/{world.rule}/delete"

    confirm = client.get(url)
    response = client.post(url, data={"version": "1"}, follow_redirects=True)

    assert "Delete the rule All?" in confirm.text
    assert "partner type is reseller" in confirm.text
    assert response.status_code == 200
    assert "Rule All was deleted from Spring training." in response.text
    assert "Partner eligibility was recomputed" in response.text
    assert db.session.get(ProgramRule, world.rule) is None


def test_rule_naming_a_deleted_territory_is_shown_with_a_warning(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    program = db.session.get(Program, world.program)
    assert program is not None
    add_program_rule(program, ("territory", "in", [world.atlantic, 9999]), name="Old")
    db.session.commit()

    page = client.get(f"/admin/programs/{world.program}").text

    assert "territory is one of Atlantic, a deleted territory (#9999)" in page
    assert "Warning: this rule names a deleted territory (#9999)" in page


def test_condition_row_follows_the_chosen_field(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    response = client.get(
        "/admin/programs/rules/condition-row?field=territory_potential&operator=in"
    )

    assert response.status_code == 200
    assert response.headers["HX-Trigger-After-Settle"] == "conditions-changed"
    assert '<option value="territory_potential" selected>' in response.text
    assert '<option value="between" selected>' in response.text
    assert "e.g. 100000.." in response.text


# Steps -----------------------------------------------------------------------


def step_rows(program_id: int) -> list[tuple[Any, ...]]:
    rows = db.session.execute(
        select(
            ProgramStep.position,
            ProgramStep.kind,
            ProgramStep.module_id,
            ProgramStep.title,
            ProgramStep.required,
        )
        .where(ProgramStep.program_id == program_id)
        .order_by(ProgramStep.position)
    ).all()
    return [tuple(row) for row in rows]


def test_steps_are_added_moved_made_optional_and_removed(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    base = f"/admin/programs/{world.program}/steps"

    def post(url: str, **data: str) -> Any:
        return client.post(url, data={**data, "version": version_of(world.program)})

    post(base, kind="task", title="Sign the agreement", required="y")
    post(base, kind="first_sale", title="")
    steps = db.session.scalars(
        select(ProgramStep.id)
        .where(ProgramStep.program_id == world.program)
        .order_by(ProgramStep.position)
    ).all()
    post(f"{base}/{steps[2]}/up")
    post(f"{base}/{steps[0]}/required", required="0")

    assert step_rows(world.program) == [
        (0, "module", world.module, None, False),
        (1, "first_sale", None, "First sale registered", False),
        (2, "task", None, "Sign the agreement", True),
    ]

    post(f"{base}/{steps[2]}/remove")

    assert step_rows(world.program) == [
        (0, "module", world.module, None, False),
        (1, "task", None, "Sign the agreement", True),
    ]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"kind": "task", "title": ""}, "Enter what the partner has to do"),
        ({"kind": "module", "module": ""}, "Choose the training module from the list."),
        (
            {"kind": "module", "module": "x"},
            "Choose the training module from the list.",
        ),
        ({"kind": "module", "module": "{module}"}, "'Welcome' is already a step"),
        ({"kind": "dance"}, "Choose the kind of step from the list."),
    ],
)
def test_bad_step_is_refused_beside_the_field(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    form: dict[str, str],
    message: str,
) -> None:
    data = {key: value.format(module=world.module) for key, value in form.items()}
    data["version"] = "1"
    before = step_rows(world.program)

    response = client.post(f"/admin/programs/{world.program}/steps", data=data)

    assert response.status_code == 400
    assert message in unescaped(response.text)
    assert step_rows(world.program) == before


# Tiers -----------------------------------------------------------------------


@pytest.fixture
def incentive(world: SimpleNamespace) -> int:
    program = make_program(
        "Sales ladder", kind="incentive", status="draft", kpi="sales_sum"
    )
    db.session.commit()
    return program.id


def test_tiers_with_a_decimal_comma_are_stored_as_numbers(
    incentive: int, client: FlaskClient, admin: AuthActions
) -> None:
    rows = [
        ("Silver", "1.234,50", "Priority support", "1,5", "100"),
        ("Gold", "10.000", "", "2", ""),
        ("", "", "", "", ""),
    ]

    response = client.post(
        f"/admin/programs/{incentive}/tiers", data=tier_form("comma", rows)
    )

    assert response.status_code == 302
    assert tiers_of(incentive) == [
        ("Silver", Decimal("1234.50"), Decimal("1.5"), 100),
        ("Gold", Decimal("10000"), Decimal("2"), None),
    ]


def test_a_decimal_comma_under_the_point_setting_is_refused(
    incentive: int, client: FlaskClient, admin: AuthActions
) -> None:
    response = client.post(
        f"/admin/programs/{incentive}/tiers",
        data=tier_form("point", [("Silver", "1.234,50"), ("Gold", "5000")]),
    )

    assert response.status_code == 400
    assert "looks like it uses a decimal comma" in response.text
    assert 'value="1.234,50"' in response.text
    assert tiers_of(incentive) == []


def test_tiers_out_of_order_are_refused_and_nothing_changes(
    incentive: int, client: FlaskClient, admin: AuthActions
) -> None:
    program = db.session.get(Program, incentive)
    assert program is not None
    add_tier(program, "Bronze", 100)
    db.session.commit()

    response = client.post(
        f"/admin/programs/{incentive}/tiers",
        data=tier_form("point", [("Gold", "5000"), ("Silver", "1000")]),
    )

    assert response.status_code == 400
    assert "each tier&#39;s threshold is above the one before it" in response.text
    assert tiers_of(incentive) == [("Bronze", Decimal("100"), None, None)]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (("", "100"), "Enter a name for the tier, e.g. Gold."),
        (("Gold", ""), "Enter the KPI value that reaches this tier."),
        (("Gold", "-1"), "is negative; thresholds are zero or more"),
        (("Gold", "100", "", "0"), "A points multiplier is a number above 0"),
        (("Gold", "100", "", "", "lots"), "Enter the bonus points as a whole number"),
    ],
)
def test_bad_tier_fields_are_shown_beside_the_field(
    incentive: int,
    client: FlaskClient,
    admin: AuthActions,
    row: tuple[str, ...],
    message: str,
) -> None:
    response = client.post(
        f"/admin/programs/{incentive}/tiers", data=tier_form("point", [row])
    )

    assert response.status_code == 400
    assert message in response.text
    assert '<td class="field-invalid">' in response.text
    assert tiers_of(incentive) == []


def test_a_tier_keeping_its_name_keeps_its_row(
    incentive: int, client: FlaskClient, admin: AuthActions
) -> None:
    program = db.session.get(Program, incentive)
    assert program is not None
    gold = add_tier(program, "Gold", 100).id
    add_tier(program, "Platinum", 500)
    db.session.commit()

    client.post(
        f"/admin/programs/{incentive}/tiers",
        data=tier_form("point", [("Silver", "50"), ("Gold", "150")]),
    )

    assert tiers_of(incentive) == [
        ("Silver", Decimal("50"), None, None),
        ("Gold", Decimal("150"), None, None),
    ]
    assert db.session.scalar(select(Tier.id).where(Tier.name == "Gold")) == gold


def test_tiers_page_shows_the_ladder_and_is_only_for_incentive_programs(
    world: SimpleNamespace, incentive: int, client: FlaskClient, admin: AuthActions
) -> None:
    program = db.session.get(Program, incentive)
    assert program is not None
    add_tier(program, "Gold", "1234.5")
    db.session.commit()

    page = client.get(f"/admin/programs/{incentive}/tiers")

    assert page.status_code == 200
    assert 'value="1234.5"' in page.text
    assert client.get(f"/admin/programs/{world.program}/tiers").status_code == 404


# Status ----------------------------------------------------------------------


def test_activation_refuses_an_incentive_program_without_kpi_tiers_or_rules(
    incentive: int, client: FlaskClient, admin: AuthActions
) -> None:
    db.session.execute(
        update(Program.__table__)
        .where(Program.__table__.c.id == incentive)
        .values(kpi=None)
    )
    db.session.commit()

    response = client.post(f"/admin/programs/{incentive}/activate")

    assert response.status_code == 400
    assert (
        "An incentive program needs a KPI before it can be activated" in response.text
    )
    assert "needs at least one tier before it can be activated" in response.text
    assert (
        "needs at least one targeting rule before it can be activated" in response.text
    )
    db.session.expire_all()
    assert db.session.get(Program, incentive).status == "draft"  # type: ignore[union-attr]


def test_program_with_what_it_needs_is_activated_archived_and_reopened(
    incentive: int, client: FlaskClient, admin: AuthActions
) -> None:
    program = db.session.get(Program, incentive)
    assert program is not None
    add_tier(program, "Gold", 100)
    add_program_rule(program, ("region", "in", [1]))
    db.session.commit()
    before = runs_of_eligibility()

    def post(action: str, **options: Any) -> Any:
        url = f"/admin/programs/{incentive}/{action}"
        return client.post(url, data={"version": version_of(incentive)}, **options)

    activated = post("activate", follow_redirects=True)
    status_after_activate = db.session.scalar(
        select(Program.status).where(Program.id == incentive)
    )
    post("archive")
    status_after_archive = db.session.scalar(
        select(Program.status).where(Program.id == incentive)
    )
    post("draft")

    assert "Program Sales ladder is active." in activated.text
    assert "Partner eligibility was recomputed" in activated.text
    assert (status_after_activate, status_after_archive) == ("active", "archived")
    assert db.session.scalar(select(Program.status).where(Program.id == incentive)) == (
        "draft"
    )
    assert runs_of_eligibility() == before + 3


# Training modules ------------------------------------------------------------


def module_form(**changes: Any) -> dict[str, Any]:
    form = {
        "title": "Selling the new range",
        "body": "# Why it matters\n\nIt **sells**.",
        "link_url": "https://example.com/guide",
        "estimated_minutes": "25",
        "quiz": "",
        "pass_mark": "",
    }
    form.update(changes)
    return form


QUIZ = "? Which colour is the logo?\n- Red\n* Teal\n- Grey"


def test_module_is_created_with_a_quiz_and_shown_back_as_typed(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    response = client.post(
        "/admin/programs/modules/new", data=module_form(quiz=QUIZ, pass_mark="80")
    )

    assert response.status_code == 302
    module = db.session.scalar(
        select(TrainingModule).where(TrainingModule.title == "Selling the new range")
    )
    assert module is not None
    assert module.quiz == [
        {
            "question": "Which colour is the logo?",
            "choices": ["Red", "Teal", "Grey"],
            "answer": 1,
        }
    ]
    assert (module.pass_mark_percent, module.estimated_minutes) == (80, 25)
    edit = client.get(f"/admin/programs/modules/{module.id}/edit").text
    assert "? Which colour is the logo?\n- Red\n* Teal\n- Grey" in edit
    assert "<h1>Why it matters</h1>" in edit
    assert "Selling the new range" in client.get("/admin/programs/modules").text


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"title": "welcome"}, "title", "A module titled 'welcome' already exists"),
        ({"title": ""}, "title", "Enter a title for the module."),
        ({"link_url": "javascript:alert(1)"}, "link_url", "starting with http://"),
        ({"link_url": "ftp://example.com/x"}, "link_url", "starting with http://"),
        ({"estimated_minutes": "0"}, "estimated_minutes", "from 1 to 600"),
        ({"estimated_minutes": "601"}, "estimated_minutes", "from 1 to 600"),
        ({"quiz": QUIZ}, "pass_mark", "needs a pass mark"),
        (
            {"quiz": QUIZ, "pass_mark": "101"},
            "pass_mark",
            "Write the pass mark as a whole number from 1 to 100",
        ),
        ({"quiz": "? Alone\n- only"}, "quiz", "Question 1 has 1 choice"),
        ({"body": "", "link_url": ""}, "body", "Give the module some content"),
    ],
)
def test_bad_module_input_is_shown_beside_the_field(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    changes: dict[str, str],
    field: str,
    message: str,
) -> None:
    before = db.session.scalar(select(func.count()).select_from(TrainingModule))

    response = client.post("/admin/programs/modules/new", data=module_form(**changes))

    assert response.status_code == 400
    assert f'id="{field}-error"' in response.text
    assert message in unescaped(response.text)
    assert db.session.scalar(select(func.count()).select_from(TrainingModule)) == before


def test_module_preview_renders_markdown_without_scripts(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    response = client.post(
        "/admin/programs/modules/preview",
        data={
            "body": "**Hello** <script>alert('x')</script> <img src=x onerror=alert(1)>"
        },
    )

    assert response.status_code == 200
    assert "<strong>Hello</strong>" in response.text
    assert "<script" not in response.text
    assert "<img" not in response.text


def test_module_file_is_stored_replaced_and_refused_beside_the_field(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    module_files: Path,
) -> None:
    url = f"/admin/programs/modules/{world.module}/edit"

    def upload(name: str, content: bytes) -> Any:
        data = module_form(
            title="Welcome",
            file=(io.BytesIO(content), name),
            fingerprint=fingerprint_of(world.module),
        )
        return client.post(url, data=data, content_type="multipart/form-data")

    first = upload("guide.txt", b"Read me first.")
    first_stored = db.session.scalar(
        select(TrainingModule.file_stored_as).where(TrainingModule.id == world.module)
    )
    second = upload("guide-v2.txt", b"Read me instead.")
    db.session.expire_all()
    module = db.session.get(TrainingModule, world.module)
    assert module is not None
    refused = upload("tool.exe", b"MZ\x90\x00")

    assert (first.status_code, second.status_code) == (302, 302)
    assert module.file_name == "guide-v2.txt"
    assert (
        module_files / str(module.file_stored_as)
    ).read_bytes() == b"Read me instead."
    assert not (module_files / str(first_stored)).exists()
    assert refused.status_code == 400
    assert 'id="file-error"' in refused.text
    assert "cannot be attached" in refused.text
    assert sorted(p.name for p in module_files.iterdir()) == [module.file_stored_as]


# Access and bad requests -----------------------------------------------------


PAGES = [
    "/admin/programs/",
    "/admin/programs/new",
    "/admin/programs/{program}",
    "/admin/programs/{program}/edit",
    "/admin/programs/kpi-fields",
    "/admin/programs/{program}/rules/new",
    "/admin/programs/{program}/rules/{rule}/edit",
    "/admin/programs/{program}/rules/{rule}/delete",
    "/admin/programs/rules/condition-row",
    "/admin/programs/{program}/tiers",
    "/admin/programs/tiers/row",
    "/admin/programs/modules",
    "/admin/programs/modules/new",
    "/admin/programs/modules/{module}/edit",
    "/admin/programs/modules/{module}/file",
]
ACTIONS = [
    "/admin/programs/recompute",
    "/admin/programs/new",
    "/admin/programs/{program}/edit",
    "/admin/programs/{program}/activate",
    "/admin/programs/{program}/archive",
    "/admin/programs/{program}/draft",
    "/admin/programs/{program}/rules/new",
    "/admin/programs/{program}/rules/{rule}/edit",
    "/admin/programs/{program}/rules/{rule}/delete",
    "/admin/programs/rules/preview",
    "/admin/programs/{program}/steps",
    "/admin/programs/{program}/steps/{step}/up",
    "/admin/programs/{program}/steps/{step}/remove",
    "/admin/programs/{program}/steps/{step}/required",
    "/admin/programs/{program}/tiers",
    "/admin/programs/tiers/rows",
    "/admin/programs/modules/new",
    "/admin/programs/modules/{module}/edit",
    "/admin/programs/modules/preview",
]


@pytest.mark.parametrize("email", ["partner@example.test", "manager@example.test"])
def test_partners_and_managers_get_403_on_every_admin_page(
    world: SimpleNamespace, client: FlaskClient, auth: AuthActions, email: str
) -> None:
    auth.sign_in(email)
    before = (programs_table(), rules_table(), step_rows(world.program))

    gets = {url: client.get(url.format(**vars(world))).status_code for url in PAGES}
    posts = {url: client.post(url.format(**vars(world))).status_code for url in ACTIONS}

    assert set(gets.values()) == {403}, gets
    assert set(posts.values()) == {403}, posts
    assert (programs_table(), rules_table(), step_rows(world.program)) == before


@pytest.mark.parametrize(
    "url",
    [
        "/admin/programs/999",
        "/admin/programs/999/edit",
        "/admin/programs/{program}/rules/999/edit",
        "/admin/programs/999/rules/{rule}/edit",
        "/admin/programs/modules/999/edit",
        "/admin/programs/99999999999999999999999",
    ],
)
def test_wrong_ids_are_not_found(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions, url: str
) -> None:
    assert client.get(url.format(**vars(world))).status_code == 404


def test_a_step_of_another_program_is_not_found(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    other = make_program("Other", status="draft")
    db.session.commit()

    response = client.post(f"/admin/programs/{other.id}/steps/{world.step}/remove")

    assert response.status_code == 404
    assert db.session.get(ProgramStep, world.step) is not None


def test_forged_post_without_csrf_token_is_refused(
    world: SimpleNamespace,
    clean_app: Flask,
    client: FlaskClient,
    admin: AuthActions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(clean_app.config, "WTF_CSRF_ENABLED", True)
    before = rules_table()

    response = client.post(f"/admin/programs/{world.program}/rules/{world.rule}/delete")

    assert response.status_code == 400
    assert "Traceback" not in response.text
    assert rules_table() == before


@pytest.mark.parametrize(
    ("method", "url", "data"),
    [
        ("post", "/admin/programs/new", {}),
        ("post", "/admin/programs/{program}/edit", {"version": "x", "name": "\x00"}),
        ("post", "/admin/programs/new", program_form(starts_on="0000-00-00")),
        ("post", "/admin/programs/new", program_form(ends_on="9999-99-99")),
        ("get", "/admin/programs/kpi-fields?kind=%00&kpi=x", {}),
        ("get", "/admin/programs/rules/condition-row?field=x&operator=y", {}),
        ("post", "/admin/programs/rules/preview", {"field": ["region"]}),
        ("post", "/admin/programs/{program}/rules/new", {"value": ["a\x00b"]}),
        (
            "post",
            "/admin/programs/{program}/steps",
            {"kind": "module", "module": "9" * 30},
        ),
        ("post", "/admin/programs/{program}/steps/{step}/down", {}),
        ("post", "/admin/programs/{program}/steps/{step}/sideways", {}),
        (
            "post",
            "/admin/programs/modules/new",
            module_form(estimated_minutes="9" * 40),
        ),
        ("post", "/admin/programs/modules/new", module_form(body="x\x00")),
        ("post", "/admin/programs/modules/preview", {"body": "x" * 100_001}),
    ],
)
def test_odd_input_never_gives_a_server_error(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    method: str,
    url: str,
    data: dict[str, Any],
) -> None:
    response = getattr(client, method)(url.format(**vars(world)), data=data)

    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text


def test_tier_rows_of_uneven_length_are_refused_without_error(
    incentive: int, client: FlaskClient, admin: AuthActions
) -> None:
    response = client.post(
        f"/admin/programs/{incentive}/tiers",
        data={
            "decimal_separator": "semicolon",
            "tier_name": ["Gold", "Platinum"],
            "threshold": ["100"],
            "version": "1",
        },
    )

    assert response.status_code == 400
    assert "Choose point or comma as the decimal separator." in response.text
    assert tiers_of(incentive) == []


# What targeting can see changes: a programs run follows ------------------------


def test_every_step_change_asks_for_a_programs_run(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    base = f"/admin/programs/{world.program}/steps"
    runs = [runs_of_eligibility()]

    def post(url: str, **data: str) -> None:
        client.post(url, data={**data, "version": version_of(world.program)})
        runs.append(runs_of_eligibility())

    post(base, kind="task", title="Upload your logo")
    task = db.session.scalar(select(ProgramStep.id).where(ProgramStep.kind == "task"))
    post(f"{base}/{task}/up")
    post(f"{base}/{task}/required", required="0")
    post(f"{base}/{task}/remove")

    # Added, moved, made optional, removed: one run each.
    assert runs == [0, 1, 2, 3, 4]


def test_changing_only_the_kind_asks_for_a_programs_run(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    same_dates = {"starts_on": "2020-01-01", "ends_on": "2099-12-31"}

    response = client.post(
        f"/admin/programs/{world.program}/edit",
        data=program_form(
            name="Spring training", kind="onboarding", version="1", **same_dates
        ),
        follow_redirects=True,
    )

    assert response.status_code == 200
    assert runs_of_eligibility() == 1
    assert "Partner eligibility was recomputed" in response.text


# Two tabs: a save from a stale page is refused ---------------------------------


STALE_TEXT = (
    "Someone else changed this program since you opened it. Reload to see their "
    "changes, then make yours again."
)


def test_every_change_to_rules_steps_and_tiers_moves_the_version_on(
    world: SimpleNamespace, incentive: int, client: FlaskClient, admin: AuthActions
) -> None:
    program = f"/admin/programs/{world.program}"

    client.post(f"{program}/rules/new", data=rule_form("West", version="1"))
    client.post(f"{program}/rules/{world.rule}/edit", data=rule_form(version="2"))
    client.post(f"{program}/steps", data={"kind": "task", "title": "T", "version": "3"})
    client.post(f"{program}/rules/{world.rule}/delete", data={"version": "4"})
    client.post(
        f"/admin/programs/{incentive}/tiers", data=tier_form("point", [("Gold", "1")])
    )

    assert (version_of(world.program), version_of(incentive)) == ("5", "2")


def test_pages_carry_the_version_they_were_opened_with(
    world: SimpleNamespace, incentive: int, client: FlaskClient, admin: AuthActions
) -> None:
    program = f"/admin/programs/{world.program}"
    hidden = 'name="version" type="hidden" value="1"'

    pages = {
        "new rule": client.get(f"{program}/rules/new").text,
        "edit rule": client.get(f"{program}/rules/{world.rule}/edit").text,
        "delete rule": client.get(f"{program}/rules/{world.rule}/delete").text,
        "tiers": client.get(f"/admin/programs/{incentive}/tiers").text,
    }
    program_page = client.get(program).text

    assert {name: hidden in page for name, page in pages.items()} == dict.fromkeys(
        pages, True
    )
    # The step form; the one step's "Make optional" and "Remove"; "Activate"
    # and "Archive" of the draft.
    assert program_page.count('name="version" type="hidden" value="1"') == 1
    assert program_page.count('name="version" value="1"') == 4


def test_tiers_saved_from_a_stale_tab_are_refused(
    incentive: int, client: FlaskClient, admin: AuthActions
) -> None:
    url = f"/admin/programs/{incentive}/tiers"
    client.get(url)
    client.get(url)

    first = client.post(url, data=tier_form("point", [("Gold", "100")], "1"))
    second = client.post(url, data=tier_form("point", [("Silver", "50")], "1"))

    assert first.status_code == 302
    assert second.status_code == 400
    assert STALE_TEXT in unescaped(second.text)
    assert 'value="Silver"' in second.text
    assert tiers_of(incentive) == [("Gold", Decimal("100"), None, None)]


@pytest.mark.parametrize(
    ("action", "data"),
    [
        ("rules/new", rule_form("Newcomers", version="1")),
        ("rules/{rule}/edit", rule_form("Renamed", version="1")),
        ("rules/{rule}/delete", {"version": "1"}),
    ],
)
def test_rule_saves_from_a_stale_tab_are_refused(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    action: str,
    data: dict[str, Any],
) -> None:
    # The other tab adds a step: the program is at version 2 now.
    client.post(
        f"/admin/programs/{world.program}/steps",
        data={"kind": "task", "title": "Theirs", "version": "1"},
    )
    before = rules_table()

    response = client.post(
        f"/admin/programs/{world.program}/" + action.format(rule=world.rule), data=data
    )

    assert response.status_code == 400
    assert STALE_TEXT in unescaped(response.text)
    assert rules_table() == before
    assert version_of(world.program) == "2"


@pytest.mark.parametrize(
    ("action", "data"),
    [
        ("steps", {"kind": "task", "title": "Mine"}),
        ("steps/{step}/remove", {}),
        ("steps/{step}/down", {}),
        ("steps/{step}/required", {"required": "0"}),
    ],
)
def test_step_changes_from_a_stale_tab_are_refused(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    action: str,
    data: dict[str, str],
) -> None:
    client.post(
        f"/admin/programs/{world.program}/steps",
        data={"kind": "task", "title": "Theirs", "version": "1"},
    )
    before = step_rows(world.program)
    runs = runs_of_eligibility()

    response = client.post(
        f"/admin/programs/{world.program}/" + action.format(step=world.step),
        data={**data, "version": "1"},
    )

    assert response.status_code == 400
    assert STALE_TEXT in unescaped(response.text)
    assert step_rows(world.program) == before
    assert runs_of_eligibility() == runs


def test_a_status_change_from_a_stale_tab_is_refused(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    client.post(
        f"/admin/programs/{world.program}/rules/{world.rule}/edit",
        data=rule_form("Changed meanwhile", version="1"),
    )

    response = client.post(
        f"/admin/programs/{world.program}/activate", data={"version": "1"}
    )

    assert response.status_code == 400
    assert STALE_TEXT in unescaped(response.text)
    assert db.session.scalar(
        select(Program.status).where(Program.id == world.program)
    ) == ("draft")


def test_a_module_saved_from_a_stale_tab_is_refused(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    url = f"/admin/programs/modules/{world.module}/edit"
    page = client.get(url).text
    seen = re.search(r'name="fingerprint" type="hidden" value="([0-9a-f]+)"', page)
    assert seen is not None

    first = client.post(
        url, data=module_form(title="Welcome", body="Theirs", fingerprint=seen[1])
    )
    second = client.post(
        url, data=module_form(title="Welcome", body="Mine", fingerprint=seen[1])
    )

    assert first.status_code == 302
    assert second.status_code == 400
    assert (
        "Someone else changed this module since you opened it. Reload to see their "
        "changes, then make yours again."
    ) in unescaped(second.text)
    db.session.expire_all()
    assert db.session.get(TrainingModule, world.module).body == "Theirs"  # type: ignore[union-attr]


# Duplicate steps -------------------------------------------------------------


def test_a_second_first_sale_step_is_refused(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    url = f"/admin/programs/{world.program}/steps"
    first = client.post(url, data={"kind": "first_sale", "version": "1"})
    after_first = step_rows(world.program)

    second = client.post(url, data={"kind": "first_sale", "version": "2"})

    assert first.status_code == 302
    assert second.status_code == 400
    assert "This program already has a first-sale step" in second.text
    assert step_rows(world.program) == after_first


@pytest.mark.parametrize("kind", ["first_sale", "module"])
def test_a_step_a_racing_save_just_added_is_not_added_again(
    world: SimpleNamespace, clean_app: Flask, kind: str
) -> None:
    pricing = make_module("Pricing")
    db.session.commit()
    program = db.session.get(Program, world.program)
    user = db.session.scalar(select(User).where(User.email == ADMIN))
    assert program is not None and user is not None
    seen = str(program.version)
    # Our request has read the program's steps...
    assert [step.kind for step in program.steps] == ["module"]
    module_id = pricing.id if kind == "module" else None
    # ...when a racing save, from a page showing the same version, commits the
    # same step on its own connection: only a read made inside our transaction
    # (after locking the program) can see it.
    with db.engine.begin() as theirs:
        theirs.execute(
            insert(ProgramStep.__table__).values(
                program_id=program.id,
                position=1,
                kind=kind,
                module_id=module_id,
                required=True,
            )
        )

    with pytest.raises(EditRejected) as refused:
        editing.add_step(
            program, editing.StepInput(kind=kind, module_id=module_id), seen, user
        )

    assert list(refused.value.errors) == ["kind" if kind == "first_sale" else "module"]
    assert len(step_rows(world.program)) == 2


def test_adding_a_step_holds_the_program_row_until_it_commits(
    world: SimpleNamespace, clean_app: Flask
) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no row locks: it lets one writer in at a time.")
    program = db.session.get(Program, world.program)
    user = db.session.scalar(select(User).where(User.email == ADMIN))
    assert program is not None and user is not None
    probes: list[str] = []

    def probe(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # While our save writes its step, another transaction tries the row.
        if not statement.startswith("INSERT INTO program_steps"):
            return
        with db.engine.connect() as other:
            try:
                other.execute(
                    text("SELECT id FROM programs WHERE id = :id FOR UPDATE NOWAIT"),
                    {"id": program.id},
                )
                probes.append("free")
            except DBAPIError:
                probes.append("locked")
            other.rollback()

    event.listen(db.engine, "before_cursor_execute", probe)
    try:
        editing.add_step(program, editing.StepInput(kind="first_sale"), "1", user)
    finally:
        event.remove(db.engine, "before_cursor_execute", probe)

    assert probes == ["locked"]


# KPI direction ---------------------------------------------------------------


@pytest.mark.parametrize(
    "kpi", ["sales_sum", "sales_count", "modules_completed", "new_accounts"]
)
def test_lower_is_better_is_refused_for_kpis_that_only_grow(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions, kpi: str
) -> None:
    before = programs_table()

    response = client.post(
        "/admin/programs/new", data=program_form(kpi=kpi, kpi_direction="lower")
    )

    assert response.status_code == 400
    assert 'id="kpi_direction-error"' in response.text
    assert "Lower is better only suits the average sale" in response.text
    assert "only grow during the program" in response.text
    assert programs_table() == before


def test_lower_is_better_is_kept_for_the_average_sale(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    response = client.post(
        "/admin/programs/new",
        data=program_form(kpi="sales_average", kpi_direction="lower"),
    )

    assert response.status_code == 302
    assert db.session.scalar(
        select(Program.kpi_direction).where(Program.name == "Summer incentive")
    ) == ("lower")


def test_direction_hint_names_only_kpis_that_exist(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    hint = client.get("/admin/programs/kpi-fields?kind=incentive").text

    assert "days to first sale" not in hint
    assert "Lower is better only suits the average sale" in hint


# Targeting rules: limits and checks -------------------------------------------


def test_a_rule_of_more_than_20_conditions_is_refused(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    url = f"/admin/programs/{world.program}/rules/new"
    before = rules_table()

    refused = client.post(url, data=rule_form(rows=[("region", "in", "West")] * 21))
    accepted = client.post(url, data=rule_form(rows=[("region", "in", "West")] * 20))

    assert refused.status_code == 400
    assert "A rule can have at most 20 conditions; this one has 21." in refused.text
    assert accepted.status_code == 302
    assert len(rules_table()) == len(before) + 1 + 20


def test_a_rule_name_already_used_in_the_program_is_refused(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    before = rules_table()

    response = client.post(
        f"/admin/programs/{world.program}/rules/new", data=rule_form(name=" ALL ")
    )

    assert response.status_code == 400
    assert 'id="name-error"' in response.text
    assert "Spring training already has a rule named 'ALL'" in unescaped(response.text)
    assert rules_table() == before


def test_a_rule_keeps_its_own_name_and_another_program_may_reuse_it(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    other = make_program("Other", status="draft")
    db.session.commit()

    kept = client.post(
        f"/admin/programs/{world.program}/rules/{world.rule}/edit",
        data=rule_form("All", [("partner_type", "in", "distributor")]),
    )
    reused = client.post(f"/admin/programs/{other.id}/rules/new", data=rule_form("All"))

    assert (kept.status_code, reused.status_code) == (302, 302)


def test_a_partner_type_no_organisation_has_is_refused_with_the_known_types(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    before = rules_table()
    rows = [("partner_type", "in", "Reseller, wholesaler")]

    response = client.post(
        f"/admin/programs/{world.program}/rules/new", data=rule_form(rows=rows)
    )
    preview = client.post("/admin/programs/rules/preview", data=rule_form(rows=rows))

    message = (
        "No partner organisation has the type 'wholesaler'; the partner types in "
        "use are: distributor, reseller."
    )
    assert response.status_code == 400
    assert message in unescaped(response.text)
    assert message in unescaped(preview.text)
    assert rules_table() == before


# Messages --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "example"),
    [
        ("territory_potential", "70000", "e.g. 50000.. or ..20000 or 10000..90000"),
        ("territory_potential", "", "e.g. 50000.. or ..20000 or 10000..90000"),
        ("territory_accounts", "12", "e.g. 50.. or ..20 or 10..90"),
    ],
)
def test_a_number_typed_as_a_range_gets_an_example_of_its_own_kind(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    field: str,
    value: str,
    example: str,
) -> None:
    response = client.post(
        f"/admin/programs/{world.program}/rules/new",
        data=rule_form(rows=[(field, "between", value)]),
    )

    assert response.status_code == 400
    assert f"Write a range as low..high, {example}." in response.text
    assert "02000" not in response.text


def test_a_pass_mark_with_a_percent_sign_is_taken_as_the_number(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    response = client.post(
        "/admin/programs/modules/new", data=module_form(quiz=QUIZ, pass_mark=" 50 %")
    )

    assert response.status_code == 302
    assert db.session.scalar(
        select(TrainingModule.pass_mark_percent).where(
            TrainingModule.title == "Selling the new range"
        )
    ) == (50)


@pytest.mark.parametrize("mark", ["fifty", "50%%", "0", "-5", "12.5"])
def test_a_wrong_pass_mark_says_how_to_write_it(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions, mark: str
) -> None:
    response = client.post(
        "/admin/programs/modules/new", data=module_form(quiz=QUIZ, pass_mark=mark)
    )

    assert response.status_code == 400
    assert (
        "Write the pass mark as a whole number from 1 to 100, e.g. 80." in response.text
    )


@pytest.mark.parametrize(
    ("separator", "multiplier", "message"),
    [
        ("point", "-1", "A points multiplier is a number above 0, such as 1.5"),
        ("point", "NaN", "A points multiplier is a number above 0, such as 1.5"),
        ("point", "1e3", "A points multiplier is a number above 0, such as 1.5"),
        ("comma", "0", "A points multiplier is a number above 0, such as 1,5"),
        ("point", "99999999", "A points multiplier is at most 100"),
        ("point", "1,5", "looks like it uses a decimal comma"),
        ("point", "1.23456", "A points multiplier has at most 4 decimal places"),
    ],
)
def test_multiplier_messages_speak_of_multipliers(
    incentive: int,
    client: FlaskClient,
    admin: AuthActions,
    separator: str,
    multiplier: str,
    message: str,
) -> None:
    response = client.post(
        f"/admin/programs/{incentive}/tiers",
        data=tier_form(separator, [("Gold", "100", "", multiplier)]),
    )

    assert response.status_code == 400
    cell = re.search(r'aria-label="Points multiplier".*?</td>', response.text, re.S)
    assert cell is not None
    assert message in unescaped(cell.group(0))
    assert "threshold" not in cell.group(0)
    assert tiers_of(incentive) == []


@pytest.mark.parametrize(
    ("separator", "typed", "stored"),
    [("comma", "1.000", 1000), ("point", "1,000", 1000), ("point", "2500", 2500)],
)
def test_bonus_points_may_group_thousands_as_the_separator_implies(
    incentive: int,
    client: FlaskClient,
    admin: AuthActions,
    separator: str,
    typed: str,
    stored: int,
) -> None:
    response = client.post(
        f"/admin/programs/{incentive}/tiers",
        data=tier_form(separator, [("Gold", "100", "", "", typed)]),
    )

    assert response.status_code == 302
    assert tiers_of(incentive) == [("Gold", Decimal("100"), None, stored)]


@pytest.mark.parametrize(
    ("separator", "typed", "message"),
    [
        ("comma", "1,5", "Enter the bonus points as a whole number"),
        ("point", "1.000", "Enter the bonus points as a whole number"),
        ("point", "2000000000", "Bonus points are at most 1,000,000,000."),
    ],
)
def test_bonus_points_that_are_not_whole_points_are_refused(
    incentive: int,
    client: FlaskClient,
    admin: AuthActions,
    separator: str,
    typed: str,
    message: str,
) -> None:
    response = client.post(
        f"/admin/programs/{incentive}/tiers",
        data=tier_form(separator, [("Gold", "100", "", "", typed)]),
    )

    assert response.status_code == 400
    assert message in response.text
    assert tiers_of(incentive) == []


def test_the_preview_names_the_rule_being_typed(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    rows = [("territory", "in", "Pacific")]

    named = client.post(
        "/admin/programs/rules/preview", data=rule_form("Coast push", rows)
    )
    unnamed = client.post("/admin/programs/rules/preview", data=rule_form("", rows))
    edit_page = client.get(
        f"/admin/programs/{world.program}/rules/{world.rule}/edit"
    ).text

    assert "Rule “Coast push” for territory Pacific: territory is Pacific" in named.text
    assert "This rule for territory Pacific: territory is Pacific" in unnamed.text
    assert "Rule “All”: partner type is reseller" in edit_page
    assert "rule 1" not in named.text + unnamed.text + edit_page


# Hints that say what happens -------------------------------------------------


def test_program_and_module_hints_match_what_happens(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    new = client.get("/admin/programs/new").text
    edit = client.get(f"/admin/programs/{world.program}/edit").text
    module = client.get(f"/admin/programs/modules/{world.module}/edit").text

    assert "its period has begun" not in new
    assert "before its start date it shows as starting on that date" in new
    assert "A new program starts as a draft" not in edit
    assert "recompute which partners are in the program" in edit
    assert "Scripts and styles are removed" not in module
    assert "HTML is shown as text; use Markdown." in module


# Module files ----------------------------------------------------------------


def upload_file(
    client: FlaskClient, module_id: int, name: str, content: bytes, **changes: Any
) -> Any:
    data = module_form(
        title="Welcome",
        file=(io.BytesIO(content), name),
        fingerprint=fingerprint_of(module_id),
        **changes,
    )
    return client.post(
        f"/admin/programs/modules/{module_id}/edit",
        data=data,
        content_type="multipart/form-data",
    )


def test_admins_download_the_attached_file_from_the_module_page(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    module_files: Path,
) -> None:
    upload_file(client, world.module, "Price list.pdf", b"%PDF-1.7 prices")
    url = f"/admin/programs/modules/{world.module}/file"

    page = client.get(f"/admin/programs/modules/{world.module}/edit").text
    listing = client.get("/admin/programs/modules").text
    with client.get(url) as response:
        data = response.data

    assert f'href="{url}" download>Price list.pdf</a>' in page
    assert f'href="{url}" download>Price list.pdf</a>' in listing
    assert response.status_code == 200
    assert data == b"%PDF-1.7 prices"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="Price list.pdf"'
    )


def test_a_module_without_a_file_has_nothing_to_download(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    assert client.get(f"/admin/programs/modules/{world.module}/file").status_code == (
        404
    )
    assert client.get("/admin/programs/modules/999/file").status_code == 404


def test_the_attached_file_can_be_removed(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    module_files: Path,
) -> None:
    upload_file(client, world.module, "guide.txt", b"Read me.")
    assert len(list(module_files.iterdir())) == 1
    url = f"/admin/programs/modules/{world.module}/edit"
    page = client.get(url).text

    response = client.post(
        url,
        data=module_form(
            title="Welcome", remove_file="y", fingerprint=fingerprint_of(world.module)
        ),
    )

    assert "Remove the attached file" in page
    assert response.status_code == 302
    db.session.expire_all()
    module = db.session.get(TrainingModule, world.module)
    assert module is not None
    assert (module.file_name, module.file_stored_as) == (None, None)
    assert list(module_files.iterdir()) == []


def test_removing_the_only_content_is_refused(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    module_files: Path,
) -> None:
    upload_file(client, world.module, "guide.txt", b"Read me.", body="", link_url="")

    response = client.post(
        f"/admin/programs/modules/{world.module}/edit",
        data=module_form(
            title="Welcome",
            body="",
            link_url="",
            remove_file="y",
            fingerprint=fingerprint_of(world.module),
        ),
    )

    assert response.status_code == 400
    assert "Give the module some content" in response.text
    assert len(list(module_files.iterdir())) == 1


def test_a_file_named_only_by_its_extension_gets_a_download_name(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    module_files: Path,
) -> None:
    response = upload_file(client, world.module, ".pdf", b"%PDF-1.7 x")

    assert response.status_code == 302
    assert db.session.scalar(
        select(TrainingModule.file_name).where(TrainingModule.id == world.module)
    ) == ("attachment.pdf")
    with client.get(f"/admin/programs/modules/{world.module}/file") as download:
        assert download.headers["Content-Disposition"] == (
            "attachment; filename=attachment.pdf"
        )


# Activation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "noun"),
    [
        ("onboarding", "An onboarding program"),
        ("training", "A training program"),
        ("campaign", "A campaign"),
    ],
)
def test_a_program_of_steps_without_steps_cannot_be_activated(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    kind: str,
    noun: str,
) -> None:
    program = make_program("Empty", kind=kind, status="draft")
    add_program_rule(program, ("partner_type", "in", ["reseller"]))
    db.session.commit()

    response = client.post(
        f"/admin/programs/{program.id}/activate", data={"version": "1"}
    )

    assert response.status_code == 400
    assert f"{noun} needs at least one step before it can be activated" in (
        response.text
    )
    assert runs_of_eligibility() == 0
    assert db.session.scalar(
        select(Program.status).where(Program.id == program.id)
    ) == ("draft")


@pytest.mark.parametrize(
    ("status", "action", "message"),
    [
        ("archived", "archive", "Program Spring training is already archived"),
        ("active", "activate", "Program Spring training is already active"),
        ("draft", "draft", "Program Spring training is already a draft"),
    ],
)
def test_repeating_a_status_change_does_nothing(
    world: SimpleNamespace,
    client: FlaskClient,
    admin: AuthActions,
    status: str,
    action: str,
    message: str,
) -> None:
    db.session.execute(
        update(Program.__table__)
        .where(Program.__table__.c.id == world.program)
        .values(status=status)
    )
    db.session.commit()

    # Sent from a page opened before: the other click already did it.
    response = client.post(
        f"/admin/programs/{world.program}/{action}",
        data={"version": "0"},
        follow_redirects=True,
    )

    assert response.status_code == 200
    assert f"{message}; nothing changed." in response.text
    assert runs_of_eligibility() == 0
    assert version_of(world.program) == "1"


# Small wording ---------------------------------------------------------------


def test_modules_list_counts_one_question_in_the_singular(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions
) -> None:
    make_module(
        "One question", quiz=[{"question": "Q?", "choices": ["a", "b"], "answer": 0}]
    )
    make_module(
        "Two questions",
        quiz=[{"question": "Q?", "choices": ["a", "b"], "answer": 0}] * 2,
        pass_mark_percent=50,
    )
    db.session.commit()

    page = client.get("/admin/programs/modules").text

    assert "1 question, pass mark" in page
    assert "2 questions, pass mark 50%" in page
    assert "1 questions" not in page


@pytest.mark.parametrize("method", ["get", "post"])
def test_deleting_a_rule_already_deleted_says_so(
    world: SimpleNamespace, client: FlaskClient, admin: AuthActions, method: str
) -> None:
    url = f"/admin/programs/{world.program}/rules/{world.rule}/delete"
    client.post(url, data={"version": "1"})

    again = getattr(client, method)(url, data={"version": "2"})

    assert again.status_code == 404
    assert "That rule no longer exists; it may have been deleted already." in again.text
    assert "This program has no targeting rules" in again.text


# The tiers page --------------------------------------------------------------


def test_the_ladder_scrolls_inside_its_panel(
    incentive: int, client: FlaskClient, admin: AuthActions
) -> None:
    page = client.get(f"/admin/programs/{incentive}/tiers").text

    fieldset = re.search(r'<fieldset class="conditions"[^>]*>', page)
    assert fieldset is not None
    # A fieldset is as wide as its content unless its min-width is lowered.
    assert "min-width: 0" in fieldset.group(0)
    assert '<div class="table-wrap">' in page.split(fieldset.group(0))[1]


def test_the_separator_last_used_is_kept_for_the_next_visit(
    incentive: int, client: FlaskClient, admin: AuthActions
) -> None:
    url = f"/admin/programs/{incentive}/tiers"
    client.post(url, data=tier_form("comma", [("Gold", "1.234,5", "", "1,5")]))

    page = client.get(url).text
    asked = client.get(f"{url}?separator=point").text

    assert '<option selected value="comma">' in page
    assert 'value="1234,5"' in page and 'value="1,5"' in page
    assert '<option selected value="point">' in asked
    assert 'value="1234.5"' in asked


def test_switching_the_separator_rewrites_the_numbers_on_the_page(
    incentive: int, client: FlaskClient, admin: AuthActions
) -> None:
    form = tier_form("comma", [("Gold", "1,234.5", "", "1.5", "1,000"), ("", "x")])
    form["rows_separator"] = "point"

    response = client.post("/admin/programs/tiers/rows", data=form)
    page = client.get(f"/admin/programs/{incentive}/tiers").text

    assert response.status_code == 200
    assert 'name="threshold" value="1234,5"' in response.text
    assert 'name="multiplier" value="1,5"' in response.text
    assert 'name="bonus_points" value="1000"' in response.text
    # What cannot be read is left as typed, for the save to name.
    assert 'name="threshold" value="x"' in response.text
    assert (
        '<input type="hidden" id="rows-separator" name="rows_separator" '
        'value="comma" hx-swap-oob="true">'
    ) in response.text
    assert '<option selected value="comma">' in page
    assert tiers_of(incentive) == []
