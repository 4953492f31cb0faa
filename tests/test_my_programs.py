"""My programs, as a signed-in partner: programs, modules, quizzes, files, tasks."""

from __future__ import annotations

import functools
import io
import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from werkzeug.datastructures import FileStorage
from werkzeug.security import generate_password_hash

from portal.extensions import db
from portal.models import PartnerOrganisation, Role
from programs import training
from programs.models import (
    Eligibility,
    ModuleCompletion,
    Program,
    QuizAttempt,
    StepCompletion,
    TrainingModule,
)
from tests.conftest import AuthActions
from tests.factories import (
    make_account,
    make_org,
    make_region,
    make_territory,
    make_user,
)
from tests.program_factories import (
    add_program_rule,
    add_sale,
    add_step,
    add_tier,
    assign,
    make_module,
    make_program,
)

HTMX = {"HX-Request": "true"}
QUIZ = (
    "? Who owns an account?\n- The biggest partner\n* The territory's partner\n\n"
    + ("? Who ticks off a task?\n* Anyone at the partner\n- Only admins\n- Nobody")
)


@pytest.fixture(autouse=True)
def quick_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Full-strength hashing costs a fifth of a second per user; keep tests quick."""
    quick = functools.partial(generate_password_hash, method="pbkdf2:sha256:1000")
    monkeypatch.setattr("portal.models.generate_password_hash", quick)


@pytest.fixture(autouse=True)
def eligibility_requests(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record eligibility runs asked for instead of running them: the rows these
    tests insert by hand would be recomputed from the rules."""
    requested: list[Any] = []
    monkeypatch.setattr(
        "programs.jobs.request_eligibility_run",
        lambda user=None: requested.append(user),
    )
    return requested


def make_eligible(
    program: Program, organisation: PartnerOrganisation, rule_name: str
) -> None:
    rule = add_program_rule(
        program, ("partner_type", "in", ["reseller"]), name=rule_name
    )
    db.session.add(
        Eligibility(
            program_id=program.id, organisation_id=organisation.id, rule_id=rule.id
        )
    )
    db.session.flush()


@pytest.fixture
def world(clean_app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Acme (two people) and Globex, each eligible for some programs.

    Acme: a running onboarding journey (module with a file, task, first sale),
    a running training program with a quiz, an incentive program, one that
    starts later, one that ended, a draft and an archived one. Globex: a
    program of its own.
    """
    monkeypatch.setattr(clean_app, "instance_path", str(tmp_path))
    acme, globex = make_org("Acme Resellers"), make_org("Globex Partners")
    alice = make_user(Role.PARTNER, acme, email="alice@example.test")
    make_user(Role.PARTNER, acme, email="bob@example.test")
    make_user(Role.PARTNER, globex, email="globex@example.test")
    make_user(Role.MANAGER, email="manager@example.test")
    make_user(Role.ADMIN, email="admin@example.test")
    territory = make_territory(make_region("West"), "Pacific", partner=acme)
    account = make_account("Pacific Diner")
    assign(account, territory)

    _, stored_as = training.store_module_file(
        _upload("Territory guide.pdf", b"%PDF-1.7 guide")
    )
    basics = make_module(
        "Territory basics",
        body="Read **carefully**.\n\n<script>alert(1)</script>",
        link_url="https://example.com/course",
        file_name="Territory guide.pdf",
        file_stored_as=stored_as,
        estimated_minutes=15,
    )
    welcome = make_program("Welcome aboard", kind="onboarding")
    add_step(welcome, basics)
    logo = add_step(welcome, title="Upload your logo")
    add_step(welcome, kind="first_sale", title="Make your first sale")
    add_step(welcome, title="Join the forum", required=False)

    quiz_module = make_module(
        "Rules quiz", quiz=training.parse_quiz(QUIZ), pass_mark_percent=100
    )
    skills = make_program("Skills track", kind="training", ends_on=date(2098, 6, 30))
    add_step(skills, quiz_module)

    push = make_program(
        "Spring push", kind="incentive", kpi="sales_sum", ends_on=date(2099, 3, 31)
    )
    add_tier(push, "Bronze", 100, benefits="5% rebate")
    add_tier(
        push,
        "Gold",
        1000,
        benefits="10% rebate",
        points_multiplier=Decimal("1.5"),
        bonus_points=2500,
    )
    add_sale(account, date(2024, 5, 1), 250)

    later = make_program("Next year", starts_on=date(2098, 1, 1))
    old = make_program(
        "Last year", starts_on=date(2020, 1, 1), ends_on=date(2021, 1, 1)
    )
    old_module = make_module("Old module")
    add_step(old, old_module)
    old_task = add_step(old, title="Old task")
    draft = make_program("Hidden draft", status="draft")
    archived = make_program("Shelved", status="archived")
    for program in (welcome, skills, push, later, old, draft, archived):
        make_eligible(program, acme, f"Resellers for {program.name}")

    secret_module = make_module(
        "Globex secrets", file_name="g.pdf", file_stored_as=stored_as
    )
    theirs = make_program("Globex only")
    add_step(theirs, secret_module)
    their_task = add_step(theirs, title="Their task")
    make_eligible(theirs, globex, "Globex rule")
    db.session.commit()
    return SimpleNamespace(
        acme=acme.id,
        alice=alice.id,
        welcome=welcome.id,
        basics=basics.id,
        logo=logo.id,
        skills=skills.id,
        quiz=quiz_module.id,
        push=push.id,
        later=later.id,
        old=old.id,
        old_module=old_module.id,
        old_task=old_task.id,
        draft=draft.id,
        archived=archived.id,
        theirs=theirs.id,
        secret=secret_module.id,
        their_task=their_task.id,
    )


def _upload(name: str, data: bytes) -> FileStorage:
    return FileStorage(stream=io.BytesIO(data), filename=name)


def progress_value(html: str, program_id: int) -> int:
    found = re.search(rf'id="program-{program_id}-bar" max="100" value="(\d+)"', html)
    assert found, f"no progress bar for program {program_id}"
    return int(found.group(1))


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


# The programs page -------------------------------------------------------------


def test_programs_page_lists_running_then_upcoming_then_past(
    world: Any, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("alice@example.test")

    page = client.get("/my/programs").text

    # Running ones by their end, the soonest first; then the one to come.
    names = ["Skills track", "Spring push", "Welcome aboard", "Next year"]
    positions = [page.index(name) for name in names]
    past = page.index("Past programs")
    assert positions == sorted(positions)
    assert positions[-1] < past < page.index("Last year")
    assert "Starts 1 January 2098" in page
    assert "Ended 1 January 2021" in page
    for hidden in ("Hidden draft", "Shelved", "Globex only"):
        assert hidden not in page


def test_programs_page_says_why_and_shows_steps_and_tiers(
    world: Any, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("alice@example.test")

    page = text_of(client.get("/my/programs").text)

    assert "Why am I in this program?" in page
    assert "Rule “Resellers for Welcome aboard”: partner type is reseller" in page
    assert "Territory basics" in page
    assert "You: not yet · 0 of 2 people at Acme Resellers" in page
    assert "Upload your logo Required" in page
    assert "Join the forum Optional" in page
    assert "Make your first sale Required Done on 1 May 2024." in page
    assert "1 of 3 required steps done" in page
    assert "$250.00" in page
    assert "Bronze Your tier" in page
    assert "$750.00 more in sales by 31 March 2099 reaches Gold." in page
    assert "10% rebate Points \u00d71.5 2,500 bonus points on reaching it" in page


def test_incentive_progress_bar_shows_the_way_to_the_next_tier(
    world: Any, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("alice@example.test")

    page = client.get(f"/my/programs/{world.push}").text

    assert re.search(
        rf'id="program-{world.push}-tier-bar" max="100" value="25"'
        r' aria-label="Progress toward Gold"',
        page,
    )


def test_a_partner_without_programs_is_told_so(
    world: Any, client: FlaskClient, auth: AuthActions
) -> None:
    make_user(Role.PARTNER, make_org("Lonely Ltd"), email="lonely@example.test")
    db.session.commit()
    auth.sign_in("lonely@example.test")

    page = client.get("/my/programs").text

    assert "Your organisation is not in any program at the moment." in page
    assert "Past programs" not in page


def test_program_page_shows_the_program_in_full(
    world: Any, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("alice@example.test")

    page = client.get(f"/my/programs/{world.welcome}")

    assert page.status_code == 200
    assert "<h1>Welcome aboard</h1>" in page.text
    assert f"/my/programs/{world.welcome}/modules/{world.basics}" in page.text
    assert progress_value(page.text, world.welcome) == 33
    assert 'name="csrf_token"' in page.text


def test_past_and_upcoming_programs_offer_no_actions(
    world: Any, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("alice@example.test")

    past = client.get(f"/my/programs/{world.old}").text
    tick = client.post(f"/my/programs/{world.old}/steps/{world.old_task}/done")
    done = client.post(f"/my/programs/{world.old}/modules/{world.old_module}/done")
    module = client.get(f"/my/programs/{world.old}/modules/{world.old_module}").text

    assert "This program ended on 1 January 2021" in past
    assert "Old task" in past
    assert "Mark as done" not in past
    assert "Mark as done" not in module
    assert tick.status_code == 400
    assert "ended on 1 January 2021" in tick.text
    assert done.status_code == 400
    assert db.session.scalar(select(func.count(StepCompletion.id))) == 0
    assert db.session.scalar(select(func.count(ModuleCompletion.id))) == 0


# Modules ---------------------------------------------------------------------


def test_module_page_shows_safe_body_link_and_file(
    world: Any, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("alice@example.test")

    page = client.get(f"/my/programs/{world.welcome}/modules/{world.basics}").text

    assert "<strong>carefully</strong>" in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'href="https://example.com/course" rel="noopener noreferrer"' in page
    assert "Download Territory guide.pdf" in page
    assert "About 15 minutes" in page
    assert "Mark as done" in page


def test_mark_as_done_moves_completion_and_progress(
    world: Any, client: FlaskClient, auth: AuthActions, eligibility_requests: list[Any]
) -> None:
    auth.sign_in("alice@example.test")
    url = f"/my/programs/{world.welcome}/modules/{world.basics}/done"

    fragment = client.post(url, headers=HTMX)
    again = client.post(url, headers=HTMX)
    page = text_of(client.get(f"/my/programs/{world.welcome}").text)

    assert fragment.status_code == 200
    assert 'id="module-completion"' in fragment.text
    assert "You completed this module on" in fragment.text
    assert "1 of 2 people at Acme Resellers completed this module." in text_of(
        fragment.text
    )
    assert 'hx-swap-oob="true"' in fragment.text
    assert progress_value(fragment.text, world.welcome) == 66
    assert again.status_code == 200
    assert db.session.scalar(select(func.count(ModuleCompletion.id))) == 1
    assert "You: done · 1 of 2 people at Acme Resellers" in page
    assert "2 of 3 required steps done" in page
    # Not started -> in progress, once: targeting may test onboarding status.
    assert [user.id for user in eligibility_requests] == [world.alice]


def test_mark_as_done_without_htmx_redirects_with_a_message(
    world: Any, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("alice@example.test")
    module_url = f"/my/programs/{world.welcome}/modules/{world.basics}"

    response = client.post(f"{module_url}/done")
    page = client.get(module_url).text

    assert response.status_code == 302
    assert response.headers["Location"].endswith(module_url)
    assert "You completed Territory basics." in page


def test_a_quiz_module_is_not_marked_as_done_by_hand(
    world: Any, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("alice@example.test")

    response = client.post(f"/my/programs/{world.skills}/modules/{world.quiz}/done")

    assert response.status_code == 400
    assert "completed by passing its quiz" in response.text
    assert db.session.scalar(select(func.count(ModuleCompletion.id))) == 0


def test_quiz_fail_then_pass(
    world: Any, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("alice@example.test")
    module_url = f"/my/programs/{world.skills}/modules/{world.quiz}"

    form = client.get(module_url).text
    failed = client.post(f"{module_url}/quiz", data={"q0": "0", "q1": "0"})
    after_fail = client.get(module_url).text
    passed = client.post(f"{module_url}/quiz", data={"q0": "1", "q1": "0"})
    after_pass = client.get(module_url).text

    assert 'name="q1" value="2"' in form
    assert "The territory&#39;s partner" in form
    assert failed.status_code == 302
    assert "You scored 50%; the pass mark is 100%." in after_fail
    assert "Your last attempt scored 50%: not passed yet." in after_fail
    assert passed.status_code == 302
    assert "You scored 100% and passed: Rules quiz is complete." in after_pass
    assert "with a quiz score of 100%" in after_pass
    scores = db.session.scalars(
        select(QuizAttempt.score_percent).order_by(QuizAttempt.id)
    )
    assert list(scores) == [50, 100]
    assert db.session.scalar(select(func.count(ModuleCompletion.id))) == 1


def test_a_failed_retake_after_a_pass_keeps_the_module_complete(
    world: Any, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("alice@example.test")
    module_url = f"/my/programs/{world.skills}/modules/{world.quiz}"
    client.post(f"{module_url}/quiz", data={"q0": "1", "q1": "0"})

    retake = client.post(
        f"{module_url}/quiz", data={"q0": "0", "q1": "0"}, follow_redirects=True
    )

    page = text_of(retake.text)
    assert "You completed this module on" in page
    assert "with a quiz score of 100%" in page
    assert "Your last attempt scored 50%." in page
    assert "You scored 50% this time. You completed Rules quiz earlier" in page
    assert "not passed yet" not in page
    assert "Read the module again and retake the quiz" not in page
    assert db.session.scalar(select(func.count(ModuleCompletion.id))) == 1


def test_a_file_stored_under_a_bare_extension_downloads_with_a_name(
    world: Any, client: FlaskClient, auth: AuthActions
) -> None:
    db.session.execute(
        update(TrainingModule.__table__)
        .where(TrainingModule.__table__.c.id == world.basics)
        .values(file_name=".pdf")
    )
    db.session.commit()
    auth.sign_in("alice@example.test")

    url = f"/my/programs/{world.welcome}/modules/{world.basics}/file"
    with client.get(url) as response:
        assert response.headers["Content-Disposition"] == (
            "attachment; filename=attachment.pdf"
        )


@pytest.mark.parametrize(
    ("data", "messages"),
    [
        ({"q0": "1"}, ["Answer question 2."]),
        ({}, ["Answer question 1.", "Answer question 2."]),
        ({"q0": "7", "q1": "0"}, ["Choose one of the answers offered for question 1."]),
        ({"q0": "one", "q1": "-1"}, ["question 1.", "question 2."]),
        (
            {"q0": "1" * 40, "q1": "0"},
            ["Choose one of the answers offered for question 1."],
        ),
    ],
)
def test_wrong_quiz_answers_get_a_message(
    world: Any,
    client: FlaskClient,
    auth: AuthActions,
    data: dict[str, str],
    messages: list[str],
) -> None:
    auth.sign_in("alice@example.test")

    response = client.post(
        f"/my/programs/{world.skills}/modules/{world.quiz}/quiz", data=data
    )

    assert response.status_code == 400
    assert "The quiz was not graded" in response.text
    for message in messages:
        assert message in response.text
    assert db.session.scalar(select(func.count(QuizAttempt.id))) == 0


def test_chosen_answers_stay_chosen_after_a_mistake(
    world: Any, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("alice@example.test")

    response = client.post(
        f"/my/programs/{world.skills}/modules/{world.quiz}/quiz", data={"q1": "2"}
    )

    assert 'name="q1" value="2" checked' in response.text
    assert 'name="q0" value="0" checked' not in response.text


def test_module_file_downloads_under_its_original_name(
    world: Any, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("alice@example.test")

    url = f"/my/programs/{world.welcome}/modules/{world.basics}/file"
    with client.get(url) as response:
        data = response.data

    assert response.status_code == 200
    assert data == b"%PDF-1.7 guide"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="Territory guide.pdf"'
    )
    assert response.mimetype == "application/pdf"


def test_a_missing_file_is_not_found(
    world: Any, client: FlaskClient, auth: AuthActions, clean_app: Flask
) -> None:
    auth.sign_in("alice@example.test")
    module_url = f"/my/programs/{world.welcome}/modules/{world.basics}"
    for stored in (Path(clean_app.instance_path) / "module_files").iterdir():
        stored.unlink()

    without_any = client.get(f"/my/programs/{world.skills}/modules/{world.quiz}/file")
    gone_from_disk = client.get(f"{module_url}/file")

    assert without_any.status_code == 404
    assert gone_from_disk.status_code == 404


# Task steps --------------------------------------------------------------------


def test_ticking_a_task_updates_the_step_and_progress(
    world: Any, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("alice@example.test")
    url = f"/my/programs/{world.welcome}/steps/{world.logo}/done"

    fragment = client.post(url, headers=HTMX)
    again = client.post(url)

    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith(f'<li id="step-{world.logo}"')
    assert "Done on" in fragment.text and "by Test User" in fragment.text
    assert "Mark as done" not in fragment.text.split("</li>")[0]
    assert progress_value(fragment.text, world.welcome) == 66
    assert again.status_code == 302
    assert db.session.scalar(select(func.count(StepCompletion.id))) == 1


def test_onboarding_completes_with_module_task_and_first_sale(
    world: Any, client: FlaskClient, auth: AuthActions, eligibility_requests: list[Any]
) -> None:
    auth.sign_in("bob@example.test")

    client.post(f"/my/programs/{world.welcome}/steps/{world.logo}/done")
    client.post(f"/my/programs/{world.welcome}/modules/{world.basics}/done")
    organisation = db.session.get(PartnerOrganisation, world.acme)
    assert organisation is not None
    db.session.refresh(organisation)

    page = client.get(f"/my/programs/{world.welcome}").text

    # The sale credited to Acme in the fixture already counts.
    assert organisation.onboarding_status == "complete"
    assert progress_value(page, world.welcome) == 100
    assert "this program is complete for Acme Resellers" in page
    assert len(eligibility_requests) == 2  # started, then complete


# The onboarding bar --------------------------------------------------------------


def test_onboarding_bar_sits_on_my_territory(
    world: Any, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("alice@example.test")

    territory = client.get("/my/territory").text
    before = client.get("/my/programs/onboarding-bar", headers=HTMX).text
    client.post(f"/my/programs/{world.welcome}/steps/{world.logo}/done")
    after = client.get("/my/programs/onboarding-bar", headers=HTMX).text

    assert 'hx-get="/my/programs/onboarding-bar"' in territory
    assert 'id="onboarding-progress" max="100" value="33"' in before
    assert "1 of 3 required steps done" in text_of(before)
    assert f'href="/my/programs/{world.welcome}"' in before
    assert 'value="66"' in after


def test_onboarding_bar_is_empty_without_onboarding(
    world: Any, client: FlaskClient, auth: AuthActions
) -> None:
    auth.sign_in("globex@example.test")

    response = client.get("/my/programs/onboarding-bar", headers=HTMX)

    assert response.status_code == 200
    assert response.text == ""


# Who may see what ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/my/programs/{theirs}"),
        ("get", "/my/programs/{theirs}/modules/{secret}"),
        ("get", "/my/programs/{theirs}/modules/{secret}/file"),
        ("post", "/my/programs/{theirs}/modules/{secret}/done"),
        ("post", "/my/programs/{theirs}/steps/{their_task}/done"),
        # Acme's own program, with something of another program in the address.
        ("get", "/my/programs/{welcome}/modules/{secret}"),
        ("get", "/my/programs/{welcome}/modules/{secret}/file"),
        ("get", "/my/programs/{welcome}/modules/{quiz}"),
        ("post", "/my/programs/{welcome}/steps/{their_task}/done"),
        ("post", "/my/programs/{welcome}/steps/{old_task}/done"),
        ("post", "/my/programs/{welcome}/modules/{quiz}/quiz"),
        ("get", "/my/programs/{draft}"),
        ("get", "/my/programs/{archived}"),
        ("get", "/my/programs/999999"),
        ("get", "/my/programs/99999999999999999999999"),
        ("get", "/my/programs/{welcome}/modules/999999"),
    ],
)
def test_foreign_or_missing_things_are_not_found(
    world: Any, client: FlaskClient, auth: AuthActions, method: str, url: str
) -> None:
    auth.sign_in("alice@example.test")

    response = getattr(client, method)(url.format(**vars(world)))

    assert response.status_code == 404
    assert db.session.scalar(select(func.count(StepCompletion.id))) == 0
    assert db.session.scalar(select(func.count(ModuleCompletion.id))) == 0


@pytest.mark.parametrize("email", ["manager@example.test", "admin@example.test"])
@pytest.mark.parametrize(
    "url", ["/my/programs", "/my/programs/{welcome}", "/my/programs/onboarding-bar"]
)
def test_other_roles_get_403(
    world: Any, client: FlaskClient, auth: AuthActions, email: str, url: str
) -> None:
    auth.sign_in(email)

    assert client.get(url.format(**vars(world))).status_code == 403


def test_signed_out_visitors_are_sent_to_sign_in(
    world: Any, client: FlaskClient
) -> None:
    page = client.get(f"/my/programs/{world.welcome}")
    fragment = client.get("/my/programs/onboarding-bar", headers=HTMX)

    assert page.status_code == 302
    assert "/auth/sign-in" in page.headers["Location"]
    assert fragment.status_code == 401
    assert "/auth/sign-in" in fragment.headers["HX-Redirect"]


def test_posts_need_the_csrf_token(
    world: Any,
    client: FlaskClient,
    auth: AuthActions,
    clean_app: Flask,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    auth.sign_in("alice@example.test")
    monkeypatch.setitem(clean_app.config, "WTF_CSRF_ENABLED", True)

    response = client.post(f"/my/programs/{world.welcome}/steps/{world.logo}/done")

    assert response.status_code == 400
    assert db.session.scalar(select(func.count(StepCompletion.id))) == 0
