"""Training modules and onboarding: Markdown, quizzes, files, completions, statuses."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select
from werkzeug.datastructures import FileStorage

from portal.extensions import db
from portal.models import PartnerOrganisation, Role
from programs import training
from programs.models import (
    Eligibility,
    ModuleCompletion,
    Program,
    QuizAttempt,
    StepCompletion,
)
from programs.training import ModuleFileError, QuizError
from tests.factories import make_account, make_org, make_region, make_territory
from tests.factories import make_user as _make_user
from tests.program_factories import (
    add_program_rule,
    add_sale,
    add_step,
    assign,
    make_module,
    make_program,
)


def make_user(*args: Any, **kwargs: Any) -> Any:
    return _make_user(Role.PARTNER, *args, **kwargs)


def make_eligible(program: Program, *organisations: PartnerOrganisation) -> None:
    rule = add_program_rule(program, ("partner_type", "in", ["reseller"]))
    for organisation in organisations:
        db.session.add(
            Eligibility(
                program_id=program.id, organisation_id=organisation.id, rule_id=rule.id
            )
        )
    db.session.flush()


# Markdown --------------------------------------------------------------------


class TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(html: str) -> list[tuple[str, dict[str, str | None]]]:
    collector = TagCollector()
    collector.feed(html)
    return collector.tags


def urls_of(html: str) -> list[str]:
    return [
        (attrs.get(name) or "")
        for _, attrs in tags_of(html)
        for name in ("href", "src")
        if name in attrs
    ]


def test_markdown_keeps_formatting_tables_and_safe_links() -> None:
    html = training.render_markdown(
        "# Welcome\n\n**Bold** and ~~old~~ [our site](https://example.com/a)\n\n"
        "| Tier | Bonus |\n| --- | ---: |\n| Gold | 5% |\n"
    )

    tags = dict(tags_of(html))
    assert "<h1>Welcome</h1>" in html
    assert "<strong>Bold</strong>" in html
    assert "<s>old</s>" in html or "<del>old</del>" in html
    assert tags["a"] == {"href": "https://example.com/a", "rel": "noopener noreferrer"}
    assert "<td>Gold</td>" in html
    assert 'style="text-align:right"' in html.replace(": ", ":")


def test_markdown_shows_a_script_as_text() -> None:
    html = training.render_markdown("Hello <script>alert(1)</script> there")

    assert "script" not in [tag for tag, _ in tags_of(html)]
    assert "&lt;script&gt;" in html


@pytest.mark.parametrize(
    "text",
    [
        '<img src="x" onerror="alert(1)">',
        "<a href=\"https://x.test\" onclick='alert(1)'>x</a>",
        '[a](https://x.test "t" onmouseover="alert(1)")',
        '<p onmouseover="alert(1)">hi</p>',
    ],
)
def test_markdown_keeps_no_event_attribute(text: str) -> None:
    html = training.render_markdown(text)

    attributes = [name for _, attrs in tags_of(html) for name in attrs]
    assert not [name for name in attributes if name.lower().startswith("on")]
    assert "img" not in [tag for tag, _ in tags_of(html)]


@pytest.mark.parametrize(
    "text",
    [
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "<javascript:alert(1)>",
        "[click](  javascript:alert(1) )",
        "![pic](javascript:alert(1))",
        "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "[ref][1]\n\n[1]: javascript:alert(1)",
        "[vb](vbscript:msgbox(1))",
    ],
)
def test_markdown_drops_dangerous_urls(text: str) -> None:
    html = training.render_markdown(text)

    for url in urls_of(html):
        assert not url.strip().lower().startswith(("javascript:", "data:", "vbscript:"))
    assert 'href="javascript' not in html.lower()


def test_sanitiser_removes_what_markdown_would_not_make(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The second line of defence on its own: HTML that reached the cleaner.
    dirty = (
        '<p onclick="x()">a</p><script>alert(1)</script><iframe src="https://x">'
        '</iframe><a href="javascript:alert(1)">j</a><a href="ftp://x.test/f">f</a>'
        '<a href="mailto:team@example.test">m</a>'
    )
    monkeypatch.setattr(training._markdown, "render", lambda text: dirty)

    html = training.render_markdown("anything")

    assert [tag for tag, _ in tags_of(html)] == ["p", "a", "a", "a"]
    assert urls_of(html) == ["mailto:team@example.test"]
    assert "alert" not in html
    assert html.count('rel="noopener noreferrer"') == 3


def test_only_web_addresses_count_as_links() -> None:
    assert training.is_web_link("https://example.com/course")
    assert training.is_web_link("HTTP://example.com")
    assert not training.is_web_link("javascript:alert(1)")
    assert not training.is_web_link("//example.com")
    assert not training.is_web_link(None)


# Quizzes ---------------------------------------------------------------------

QUIZ = """
? What decides which partner owns an account?
- The partner's size
* The territory rules
- The account's name

? Who can tick off a task?
* Anyone at the partner
- Only the admin
"""


def test_quiz_text_is_parsed_and_written_back() -> None:
    quiz = training.parse_quiz(QUIZ)

    assert quiz == [
        {
            "question": "What decides which partner owns an account?",
            "choices": [
                "The partner's size",
                "The territory rules",
                "The account's name",
            ],
            "answer": 1,
        },
        {
            "question": "Who can tick off a task?",
            "choices": ["Anyone at the partner", "Only the admin"],
            "answer": 0,
        },
    ]
    assert training.parse_quiz(training.quiz_text(quiz)) == quiz
    assert training.quiz_text(quiz).startswith("? What decides")
    assert training.parse_quiz("  \n\n") == []
    assert training.quiz_text(None) == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("? Q1\n- a\n* b\n? Q2\n- a\n- b", "Question 2 has no correct choice; mark"),
        ("? Q1\n* a\n* b", "Question 1 marks 2 choices as correct; mark exactly one"),
        ("? Q1\n* a", "Question 1 has 1 choice; give it between 2 and 8."),
        ("? Q1\n" + "- x\n" * 8 + "* y", "Question 1 has 9 choices; give it between"),
        ("? \n- a\n* b", 'Question 1 has no text after the "?".'),
        ("- a\n? Q1\n- a\n* b", "Line 1 is a choice before any question"),
        ("? Q1\n- a\n* b\nWhy?", 'Line 4 does not start with "?"'),
        ("? Q1\n- a\n* \n", "Question 1 has an empty choice"),
        ("? Q1\n", "Question 1 has 0 choices"),
    ],
)
def test_quiz_mistakes_name_the_question_and_the_fix(text: str, expected: str) -> None:
    with pytest.raises(QuizError) as raised:
        training.parse_quiz(text)

    assert expected in str(raised.value)


def test_quiz_of_more_than_twenty_questions_is_refused() -> None:
    one = "? Q\n- a\n* b\n"

    assert len(training.parse_quiz(one * 20)) == 20
    with pytest.raises(
        QuizError, match="The quiz has 21 questions; keep it to at most 20"
    ):
        training.parse_quiz(one * 21)


def five_question_module(pass_mark: int | None) -> Any:
    quiz = [{"question": f"Q{i}", "choices": ["a", "b"], "answer": 1} for i in range(5)]
    return SimpleNamespace(quiz=quiz, pass_mark_percent=pass_mark)


@pytest.mark.parametrize(
    ("right", "pass_mark", "score", "passed"),
    [
        (4, 80, 80, True),  # exactly at the pass mark
        (3, 80, 60, False),
        (5, None, 100, True),  # no pass mark: every answer right
        (4, None, 80, False),
        (0, 0, 0, True),
    ],
)
def test_grading_passes_at_the_pass_mark(
    right: int, pass_mark: int | None, score: int, passed: bool
) -> None:
    module = five_question_module(pass_mark)
    answers = {i: 1 if i < right else 0 for i in range(5)}

    result = training.grade_quiz(module, answers)

    assert (result.correct, result.total) == (right, 5)
    assert (result.score_percent, result.passed) == (score, passed)


def test_score_is_rounded_down() -> None:
    quiz = [{"question": f"Q{i}", "choices": ["a", "b"], "answer": 0} for i in range(3)]
    module = SimpleNamespace(quiz=quiz, pass_mark_percent=67)

    result = training.grade_quiz(module, {0: 0, 1: 0, 2: 1})

    assert result.score_percent == 66
    assert result.passed is False


@pytest.mark.parametrize(
    ("form", "problems"),
    [
        ({"q0": "1"}, {1: "Answer question 2."}),
        (
            {"q0": "2", "q1": "0"},
            {0: "Choose one of the answers offered for question 1."},
        ),
        ({"q0": "x", "q1": "-1"}, {0: "Choose one", 1: "Choose one"}),
        ({"q0": "99999999999999999999", "q1": ""}, {0: "Choose one", 1: "Answer"}),
    ],
)
def test_form_answers_are_checked(
    form: dict[str, str], problems: dict[int, str]
) -> None:
    quiz = [{"question": f"Q{i}", "choices": ["a", "b"], "answer": 0} for i in range(2)]

    with pytest.raises(QuizError) as raised:
        training.answers_from_form(quiz, form)

    assert set(raised.value.by_question) == set(problems)
    for index, start in problems.items():
        assert raised.value.by_question[index].startswith(start)


def test_form_answers_are_read() -> None:
    quiz = [{"question": f"Q{i}", "choices": ["a", "b"], "answer": 0} for i in range(2)]

    assert training.answers_from_form(quiz, {"q0": "1", "q1": " 0 "}) == {0: 1, 1: 0}


def test_quiz_attempts_are_recorded_and_a_pass_completes(clean_app: Flask) -> None:
    org = make_org()
    user = make_user(org)
    module = make_module(quiz=training.parse_quiz(QUIZ), pass_mark_percent=100)

    failed = training.submit_quiz(user, module, {0: 0, 1: 0})
    after_fail = db.session.scalar(select(func.count(ModuleCompletion.id)))
    passed = training.submit_quiz(user, module, {0: 1, 1: 0})

    attempts = db.session.scalars(
        select(QuizAttempt.score_percent).order_by(QuizAttempt.id)
    ).all()
    completion = db.session.scalars(select(ModuleCompletion)).one()
    assert (failed.score_percent, failed.passed) == (50, False)
    assert after_fail == 0
    assert (passed.score_percent, passed.passed) == (100, True)
    assert attempts == [50, 100]
    assert (completion.user_id, completion.score_percent) == (user.id, 100)
    assert completion.organisation_id == org.id
    assert training.latest_attempt(user, module).score_percent == 100  # type: ignore[union-attr]


def test_a_module_without_quiz_cannot_be_graded(clean_app: Flask) -> None:
    module = make_module()

    with pytest.raises(QuizError, match=r"This module has no quiz\."):
        training.submit_quiz(make_user(make_org()), module, {})


# Module files ----------------------------------------------------------------


@pytest.fixture
def files_dir(
    clean_app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setattr(clean_app, "instance_path", str(tmp_path))
    return tmp_path / "module_files"


def upload(name: str, data: bytes) -> FileStorage:
    return FileStorage(stream=io.BytesIO(data), filename=name)


def office_file(folder: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr(f"{folder}/document.xml", "<doc/>")
    return buffer.getvalue()


def stored_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("Guide.PDF", b"%PDF-1.7\nrest"),
        ("logo.png", b"\x89PNG\r\n\x1a\n....."),
        ("photo.jpeg", b"\xff\xd8\xff\xe0JFIF"),
        ("notes.md", "# Café notes\n".encode()),
        ("prices.csv", b"sku,price\nA,1\n"),
        ("deck.pptx", office_file("ppt")),
        ("plan.docx", office_file("word")),
        ("sheet.xlsx", office_file("xl")),
    ],
)
def test_allowed_files_are_kept_under_a_random_name(
    files_dir: Path, name: str, data: bytes
) -> None:
    original, stored_as = training.store_module_file(upload(name, data))

    assert original == name
    assert stored_as.endswith("." + name.rsplit(".", 1)[1].lower())
    assert name.rsplit(".", 1)[0] not in stored_as
    assert training.module_file_path(stored_as) == files_dir / stored_as
    assert (files_dir / stored_as).read_bytes() == data
    assert stored_files(files_dir) == [stored_as]


def test_a_path_in_the_file_name_is_dropped(files_dir: Path) -> None:
    original, _ = training.store_module_file(
        upload("C:\\Users\\me\\guide.pdf", b"%PDF-1.4")
    )

    assert original == "guide.pdf"


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("tool.exe", b"MZ\x90\x00", "“tool.exe” cannot be attached: attach a PDF"),
        ("README", b"hello", "“README” cannot be attached"),
        ("", b"%PDF-", "Choose a file to attach."),
        ("empty.pdf", b"", "“empty.pdf” is empty"),
        ("photo.png", b"%PDF-1.7", "“photo.png” is not a PNG image, as its name says"),
        ("report.pdf", b"\x89PNG\r\n\x1a\n", "“report.pdf” is not a PDF"),
        ("pic.jpg", b"GIF89a", "“pic.jpg” is not a JPEG image"),
        ("notes.txt", b"\xff\xfe\x00b\x00i\x00n", "“notes.txt” is not UTF-8 text"),
        ("data.csv", b"a,b\x00c", "“data.csv” is not UTF-8 text"),
        ("plan.docx", b"PK\x03\x04 not really a zip", "“plan.docx” is not a Word"),
        ("plan.docx", office_file("xl"), "“plan.docx” is not a Word document"),
        ("deck.pptx", b"%PDF-1.7", "“deck.pptx” is not a PowerPoint presentation"),
        ("a" * 201 + ".pdf", b"%PDF-", "longer than 200 characters"),
    ],
)
def test_refused_files_leave_nothing_behind(
    files_dir: Path, name: str, data: bytes, message: str
) -> None:
    with pytest.raises(ModuleFileError) as raised:
        training.store_module_file(upload(name, data))

    assert message in str(raised.value)
    assert stored_files(files_dir) == []


def test_a_file_over_ten_megabytes_is_refused(files_dir: Path) -> None:
    limit = 10 * 1024 * 1024
    stream = io.BytesIO(b"%PDF-" + b"0" * (limit - 4))
    reads: list[int] = []
    original_read = stream.read

    def read(size: int = -1) -> bytes:
        reads.append(size)
        return original_read(size)

    stream.read = read  # type: ignore[method-assign]

    with pytest.raises(ModuleFileError, match=r"“big\.pdf” is larger than 10 MB"):
        training.store_module_file(FileStorage(stream=stream, filename="big.pdf"))

    assert reads == [limit + 1]
    assert stored_files(files_dir) == []


def test_a_file_of_exactly_ten_megabytes_is_kept(files_dir: Path) -> None:
    data = b"%PDF-" + b"0" * (10 * 1024 * 1024 - 5)

    _, stored_as = training.store_module_file(upload("big.pdf", data))

    assert (files_dir / stored_as).stat().st_size == 10 * 1024 * 1024


def test_a_failed_write_leaves_no_partial_file(
    files_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_replace(*args: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(training.os, "replace", broken_replace)

    with pytest.raises(OSError, match="disk full"):
        training.store_module_file(upload("guide.pdf", b"%PDF-1.4"))

    assert stored_files(files_dir) == []


@pytest.mark.parametrize(
    "name", ["../secret.pdf", "abc.pdf", "", "0" * 32 + ".pdf/../x", "/etc/passwd"]
)
def test_only_stored_names_map_to_a_path(files_dir: Path, name: str) -> None:
    with pytest.raises(ModuleFileError):
        training.module_file_path(name)


def test_removing_a_file_is_safe_when_it_is_gone(files_dir: Path) -> None:
    _, stored_as = training.store_module_file(upload("guide.pdf", b"%PDF-1.4"))

    training.remove_module_file(stored_as)
    training.remove_module_file(stored_as)
    training.remove_module_file(None)

    assert stored_files(files_dir) == []


# Completions -----------------------------------------------------------------


def miss_once(find: Callable[..., Any]) -> Callable[..., Any]:
    """A lookup that finds nothing the first time, as if the row came just after."""
    calls: list[int] = []

    def finder(*args: Any) -> Any:
        calls.append(1)
        return None if len(calls) == 1 else find(*args)

    return finder


def test_completing_a_module_twice_keeps_one_record(clean_app: Flask) -> None:
    org = make_org()
    user = make_user(org)
    module = make_module()

    first = training.complete_module(user, module)
    second = training.complete_module(user, module)

    assert first.id == second.id
    assert first.organisation_id == org.id
    assert db.session.scalar(select(func.count(ModuleCompletion.id))) == 1


def test_a_completion_recorded_meanwhile_is_returned(
    clean_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = make_user(make_org())
    module = make_module()
    earlier = training.complete_module(user, module)
    earlier_id = earlier.id
    # The first look happens "before" another request committed its row.
    monkeypatch.setattr(
        training, "_find_completion", miss_once(training._find_completion)
    )

    again = training.complete_module(user, module)

    assert again.id == earlier_id
    assert db.session.scalar(select(func.count(ModuleCompletion.id))) == 1


def test_a_task_is_ticked_once_for_the_organisation(
    clean_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = make_org()
    alice, bob = make_user(org), make_user(org)
    step = add_step(make_program(kind="onboarding"), title="Upload your logo")

    first = training.complete_task_step(alice, step)
    first_id = first.id
    monkeypatch.setattr(
        training, "_find_step_completion", miss_once(training._find_step_completion)
    )
    by_bob = training.complete_task_step(bob, step)

    assert by_bob.id == first_id
    assert by_bob.completed_by_id == alice.id
    assert db.session.scalar(select(func.count(StepCompletion.id))) == 1


def test_only_task_steps_are_ticked(clean_app: Flask) -> None:
    program = make_program()
    step = add_step(program, make_module())

    with pytest.raises(ValueError, match="Only a partner can tick off a task step"):
        training.complete_task_step(make_user(make_org()), step)


# Onboarding ------------------------------------------------------------------


@pytest.fixture
def journey(clean_app: Flask) -> SimpleNamespace:
    """A running onboarding program: a module, a task, a first sale, an optional
    task; Acme is in it, Globex is not."""
    org, other = make_org("Acme"), make_org("Globex")
    alice, bob = make_user(org), make_user(org)
    program = make_program("Welcome", kind="onboarding")
    module = make_module("Territory basics")
    steps = SimpleNamespace(
        module=add_step(program, module),
        task=add_step(program, title="Upload your logo"),
        sale=add_step(program, kind="first_sale", title="First sale"),
        optional=add_step(program, title="Join the forum", required=False),
    )
    make_eligible(program, org)
    region = make_region()
    territory = make_territory(region, partner=org)
    account = make_account()
    assign(account, territory)
    db.session.commit()
    return SimpleNamespace(
        org=org,
        other=other,
        alice=alice,
        bob=bob,
        program=program,
        module=module,
        steps=steps,
        account=account,
    )


def status_of(org: PartnerOrganisation) -> str:
    db.session.refresh(org)
    return org.onboarding_status


def test_onboarding_moves_from_not_started_to_complete(
    journey: SimpleNamespace,
) -> None:
    j = journey

    unchanged = training.refresh_onboarding_status(j.org.id)
    training.complete_module(j.bob, j.module)
    started = training.refresh_onboarding_status(j.org.id)
    status_started = status_of(j.org)
    training.complete_task_step(j.alice, j.steps.task)
    still = training.refresh_onboarding_status(j.org.id)
    add_sale(j.account, date(2024, 5, 1), 120)
    db.session.commit()
    finished = training.refresh_onboarding_status(j.org.id)

    assert unchanged is False
    assert (started, status_started) == (True, "in_progress")
    assert still is False
    assert (finished, status_of(j.org)) == (True, "complete")
    assert status_of(j.other) == "not_started"


def test_an_optional_step_alone_starts_but_does_not_finish(
    journey: SimpleNamespace,
) -> None:
    training.complete_task_step(journey.alice, journey.steps.optional)

    assert training.refresh_onboarding_status(journey.org.id) is True
    assert status_of(journey.org) == "in_progress"


def test_a_sale_of_another_partner_does_not_count(journey: SimpleNamespace) -> None:
    territory = make_territory(make_region(), partner=journey.other)
    account = make_account()
    assign(account, territory)
    add_sale(account, date(2024, 5, 1), 50)
    db.session.commit()

    training.refresh_onboarding_status(journey.org.id)

    states = training.step_states(journey.program, journey.org.id)
    assert states[journey.steps.sale.id].done is False
    assert status_of(journey.org) == "not_started"


def test_step_states_say_when_and_by_whom(journey: SimpleNamespace) -> None:
    j = journey
    j.bob.display_name = "Bob Baker"
    j.alice.display_name = "Alice Archer"
    training.complete_module(j.bob, j.module)
    training.complete_module(j.alice, j.module)
    training.complete_task_step(j.alice, j.steps.task)
    add_sale(j.account, date(2024, 5, 1), 120)
    add_sale(j.account, date(2024, 3, 9), 80)

    states = training.step_states(j.program, j.org.id)

    assert states[j.steps.module.id].by == "Bob Baker"
    assert states[j.steps.task.id].by == "Alice Archer"
    assert states[j.steps.sale.id] == training.StepState(True, date(2024, 3, 9))
    assert states[j.steps.optional.id] == training.StepState(False)
    assert training.step_states(j.program, j.other.id)[j.steps.module.id].done is False


def test_only_running_eligible_onboarding_programs_count(
    journey: SimpleNamespace,
) -> None:
    j = journey
    ended = make_program("Old welcome", kind="onboarding", ends_on=date(2021, 1, 1))
    add_step(ended, title="Old task")
    draft = make_program("Draft welcome", kind="onboarding", status="draft")
    add_step(draft, title="Draft task")
    training_program = make_program("Skills", kind="training")
    add_step(training_program, title="Skills task")
    make_eligible(ended, j.org)
    make_eligible(draft, j.org)
    make_eligible(training_program, j.org)
    for program in (ended, draft, training_program):
        training.complete_task_step(j.alice, program.steps[0])
    not_eligible = make_program("Globex welcome", kind="onboarding")
    add_step(not_eligible, title="Their task")
    make_eligible(not_eligible, j.other)

    changed = training.refresh_onboarding_status(j.org.id)
    progress = training.onboarding_progress(j.org.id)

    assert changed is False
    assert status_of(j.org) == "not_started"
    assert [p.name for p in progress.programs] == ["Welcome"]
    assert (progress.done, progress.total, progress.percent) == (0, 3, 0)


def test_onboarding_progress_counts_required_steps(journey: SimpleNamespace) -> None:
    training.complete_task_step(journey.alice, journey.steps.task)
    training.complete_task_step(journey.alice, journey.steps.optional)

    progress = training.onboarding_progress(journey.org.id)

    assert (progress.done, progress.total, progress.percent) == (1, 3, 33)


def test_an_organisation_in_no_onboarding_keeps_what_it_reached(
    clean_app: Flask,
) -> None:
    org = make_org()
    new = make_org()
    org.onboarding_status = "complete"
    db.session.commit()

    assert training.refresh_onboarding_status(org.id) is False
    assert status_of(org) == "complete"
    assert status_of(new) == "not_started"
    assert training.refresh_onboarding_status(10**9) is False


def count_queries() -> Any:
    counter = SimpleNamespace(count=0)

    def count(*args: Any) -> None:
        counter.count += 1

    return counter, count


@pytest.fixture
def query_counter(clean_app: Flask) -> Iterator[SimpleNamespace]:
    counter, listener = count_queries()
    engine = db.engine
    event.listen(engine, "before_cursor_execute", listener)
    yield counter
    event.remove(engine, "before_cursor_execute", listener)


def build_partners(program: Program, module: Any, task: Any, count: int) -> list[Any]:
    """``count`` eligible organisations: every third finished, every third started."""
    organisations = []
    for index in range(count):
        org = make_org()
        user = make_user(org)
        if index % 3 in (1, 2):
            training.complete_module(user, module)
        if index % 3 == 2:
            training.complete_task_step(user, task)
        organisations.append(org)
    make_eligible(program, *organisations)
    db.session.commit()
    return organisations


def test_refresh_all_counts_changes_in_a_fixed_number_of_queries(
    clean_app: Flask, query_counter: SimpleNamespace
) -> None:
    program = make_program("Welcome", kind="onboarding")
    module = make_module()
    add_step(program, module)
    task = add_step(program, title="Upload your logo")
    sale = add_step(program, kind="first_sale", required=False)
    small = build_partners(program, module, task, 3)
    db.session.commit()

    query_counter.count = 0
    changed_small = training.refresh_all_onboarding_statuses()
    queries_small = query_counter.count
    build_partners(program, module, task, 9)
    again = training.refresh_all_onboarding_statuses()
    query_counter.count = 0
    unchanged = training.refresh_all_onboarding_statuses()
    queries_large = query_counter.count

    statuses = [status_of(org) for org in small]
    assert changed_small == 2
    assert statuses == ["not_started", "in_progress", "complete"]
    assert again == 6
    assert unchanged == 0
    assert queries_small == queries_large + 2  # two UPDATEs when something changed
    assert queries_large <= 8
    assert sale.id is not None


def test_refresh_all_leaves_organisations_outside_onboarding_alone(
    clean_app: Flask,
) -> None:
    loose = make_org()
    loose.onboarding_status = "in_progress"
    make_org()
    db.session.commit()

    assert training.refresh_all_onboarding_statuses() == 0
    assert status_of(loose) == "in_progress"


def test_refresh_all_agrees_with_refresh_one(journey: SimpleNamespace) -> None:
    training.complete_module(journey.alice, journey.module)
    training.complete_task_step(journey.alice, journey.steps.task)
    add_sale(journey.account, date(2024, 5, 1), 10)
    db.session.commit()

    assert training.refresh_all_onboarding_statuses() == 1
    assert status_of(journey.org) == "complete"
    assert training.refresh_onboarding_status(journey.org.id) is False


# Roll-up ---------------------------------------------------------------------


def test_rollup_counts_the_organisations_current_people(
    journey: SimpleNamespace,
) -> None:
    j = journey
    carol = make_user(j.org)
    leaver = make_user(j.org)
    training.complete_module(j.alice, j.module)
    training.complete_module(carol, j.module)
    training.complete_module(leaver, j.module)
    leaver.organisation = j.other
    db.session.commit()

    rollup = training.organisation_rollup(j.org.id, [j.module.id])
    progress = training.program_progress(j.program, j.alice)
    module_row = progress.steps[0]

    assert rollup.people == 3
    assert [c.user_id for c in rollup.completed_by[j.module.id]] == [
        j.alice.id,
        carol.id,
    ]
    assert rollup.count(j.module.id) == 2
    assert (module_row.mine, module_row.people_done, module_row.people) == (True, 2, 3)
    assert (progress.done, progress.total, progress.percent) == (1, 3, 33)
    assert progress.required_only is True
