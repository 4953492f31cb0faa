"""Training modules and onboarding journeys.

A module is Markdown, perhaps a link, an attached file and a quiz. People finish
modules; organisations finish steps. A module step is done for an organisation
as soon as one of its people finished the module, a task step when someone of
the organisation ticked it off, a first-sale step once a sale counts for it.

An organisation's onboarding status (read by targeting rules) is worked out
over the onboarding programs it is eligible for that are running today.
"""

from __future__ import annotations

import logging
import os  # noqa: F401 - tests/test_training.py breaks os.replace through it
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.datastructures import FileStorage

from portal import uploads
from portal.extensions import db
from portal.models import PartnerOrganisation, Role, User, utc_now
from programs.models import (
    Eligibility,
    ModuleCompletion,
    OnboardingStatus,
    Program,
    ProgramKind,
    ProgramStatus,
    ProgramStep,
    QuizAttempt,
    StepCompletion,
    StepKind,
    TrainingModule,
)
from territory_rules.credit import credited_sales

logger = logging.getLogger(__name__)


# Markdown --------------------------------------------------------------------

# Raw HTML typed into a module is shown as text, and whatever Markdown makes is
# cleaned again: the allow-list below is the only HTML a module page can carry.
_markdown = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])

ALLOWED_TAGS = {
    "a",
    "blockquote",
    "br",
    "code",
    "del",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "img",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "td": {"style"},
    "th": {"style"},
}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}


def render_markdown(text: str) -> Markup:
    """A module's Markdown as HTML that is safe to put on a page."""
    html = _markdown.render(text or "")
    cleaned = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer",
        # Table cells keep their alignment and nothing else of a style.
        filter_style_properties={"text-align"},
    )
    return Markup(cleaned)  # noqa: S704 - nh3 has just cleaned it


def is_web_link(url: str | None) -> bool:
    """True for an http or https address, the only links a module page offers."""
    return bool(url) and re.match(r"(?i)https?://[^\s]+$", url or "") is not None


# Quizzes ---------------------------------------------------------------------

QUESTION_MARK = "?"
CHOICE_MARK = "-"
CORRECT_MARK = "*"
MAX_QUESTIONS = 20
MIN_CHOICES = 2
MAX_CHOICES = 8
QUIZ_TEXT_MAX = 500
# A quiz saved without a pass mark needs every answer right.
DEFAULT_PASS_MARK_PERCENT = 100


class QuizError(ValueError):
    """A quiz text or a set of answers that cannot be used; says what to fix.

    ``by_question`` maps a question's index to the problem with its answer.
    """

    def __init__(
        self,
        problems: str | Sequence[str],
        by_question: Mapping[int, str] | None = None,
    ) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.by_question = dict(by_question or {})
        super().__init__(" ".join(self.problems))


@dataclass
class _Question:
    text: str
    choices: list[tuple[str, bool]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        answer = next(i for i, (_, correct) in enumerate(self.choices) if correct)
        return {
            "question": self.text,
            "choices": [text for text, _ in self.choices],
            "answer": answer,
        }


def parse_quiz(text: str) -> list[dict[str, Any]]:
    """The questions of a quiz typed as ``? question``, ``- choice``, ``* correct``.

    An empty text is no quiz. :raise QuizError: naming each question to fix.
    """
    questions, problems = _read_questions(text or "")
    for number, question in enumerate(questions, start=1):
        problems.extend(_question_problems(number, question))
    if len(questions) > MAX_QUESTIONS:
        problems.append(
            f"The quiz has {len(questions)} questions; keep it to at most "
            f"{MAX_QUESTIONS}."
        )
    if problems:
        raise QuizError(problems)

    return [question.as_dict() for question in questions]


def _read_questions(text: str) -> tuple[list[_Question], list[str]]:
    questions: list[_Question] = []
    problems: list[str] = []
    for line_number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        mark, rest = line[0], line[1:].strip()
        if mark == QUESTION_MARK:
            questions.append(_Question(rest))
        elif mark in (CHOICE_MARK, CORRECT_MARK) and questions:
            questions[-1].choices.append((rest, mark == CORRECT_MARK))
        elif mark in (CHOICE_MARK, CORRECT_MARK):
            problems.append(
                f"Line {line_number} is a choice before any question; start the "
                f'quiz with a question line beginning with "{QUESTION_MARK}".'
            )
        else:
            problems.append(
                f'Line {line_number} does not start with "{QUESTION_MARK}" '
                f'(a question), "{CHOICE_MARK}" (a choice) or "{CORRECT_MARK}" '
                "(the correct choice)."
            )
    return questions, problems


def _question_problems(number: int, question: _Question) -> list[str]:
    problems = []
    if not question.text:
        problems.append(f'Question {number} has no text after the "{QUESTION_MARK}".')
    if len(question.text) > QUIZ_TEXT_MAX:
        problems.append(
            f"Question {number} is longer than {QUIZ_TEXT_MAX} characters; shorten it."
        )
    count = len(question.choices)
    if not MIN_CHOICES <= count <= MAX_CHOICES:
        problems.append(
            f"Question {number} has {count} choice{'' if count == 1 else 's'}; "
            f"give it between {MIN_CHOICES} and {MAX_CHOICES}."
        )
    texts = [text for text, _ in question.choices]
    if any(not text for text in texts):
        problems.append(
            f"Question {number} has an empty choice; write its text after the mark."
        )
    if any(len(text) > QUIZ_TEXT_MAX for text in texts):
        problems.append(
            f"Question {number} has a choice longer than {QUIZ_TEXT_MAX} "
            "characters; shorten it."
        )
    problems.extend(_answer_key_problems(number, question))
    return problems


def _answer_key_problems(number: int, question: _Question) -> list[str]:
    correct = sum(1 for _, is_correct in question.choices if is_correct)
    if correct == 0 and question.choices:
        return [
            f"Question {number} has no correct choice; mark the right one with "
            f'"{CORRECT_MARK}" instead of "{CHOICE_MARK}".'
        ]
    if correct > 1:
        return [
            f"Question {number} marks {correct} choices as correct; mark exactly "
            f'one with "{CORRECT_MARK}".'
        ]
    return []


def quiz_text(quiz: Sequence[Mapping[str, Any]] | None) -> str:
    """A stored quiz back in the form it is typed in."""
    blocks = []
    for question in quiz or []:
        lines = [f"{QUESTION_MARK} {question['question']}"]
        for index, choice in enumerate(question["choices"]):
            mark = CORRECT_MARK if index == question["answer"] else CHOICE_MARK
            lines.append(f"{mark} {choice}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


@dataclass(frozen=True)
class QuizResult:
    correct: int
    total: int
    score_percent: int
    pass_mark_percent: int
    passed: bool


def pass_mark(module: TrainingModule) -> int:
    if module.pass_mark_percent is None:
        return DEFAULT_PASS_MARK_PERCENT
    return module.pass_mark_percent


def answers_from_form(
    quiz: Sequence[Mapping[str, Any]], form: Mapping[str, str]
) -> dict[int, int]:
    """The chosen answers from form fields ``q0``, ``q1``, ...

    :raise QuizError: naming each question left unanswered or answered with a
        value the form never offered.
    """
    answers: dict[int, int] = {}
    for index in range(len(quiz)):
        raw = (form.get(f"q{index}") or "").strip()
        if raw:
            # A value no radio button sends is kept as an impossible choice.
            answers[index] = int(raw) if raw.isdecimal() and len(raw) < 4 else -1
    check_answers(quiz, answers)
    return answers


def check_answers(
    quiz: Sequence[Mapping[str, Any]], answers: Mapping[int, int]
) -> None:
    """:raise QuizError: naming each question unanswered or answered out of range."""
    if not quiz:
        raise QuizError("This module has no quiz.")
    by_question: dict[int, str] = {}
    for index, question in enumerate(quiz):
        choice = answers.get(index)
        if choice is None:
            by_question[index] = f"Answer question {index + 1}."
        elif not 0 <= choice < len(question["choices"]):
            by_question[index] = (
                f"Choose one of the answers offered for question {index + 1}."
            )
    if by_question:
        raise QuizError(list(by_question.values()), by_question)


def grade_quiz(module: TrainingModule, answers: Mapping[int, int]) -> QuizResult:
    """Score rounded down to a whole percent; passed at or above the pass mark.

    :raise QuizError: when the module has no quiz or an answer is missing.
    """
    quiz = module.quiz or []
    check_answers(quiz, answers)

    correct = sum(
        1 for index, question in enumerate(quiz) if answers[index] == question["answer"]
    )
    score = correct * 100 // len(quiz)
    mark = pass_mark(module)
    return QuizResult(correct, len(quiz), score, mark, score >= mark)


def submit_quiz(
    user: User, module: TrainingModule, answers: Mapping[int, int]
) -> QuizResult:
    """Record an attempt; a pass completes the module for the user.

    :raise QuizError: when the module has no quiz or an answer is missing.
    """
    result = grade_quiz(module, answers)

    db.session.add(
        QuizAttempt(
            user_id=user.id,
            module_id=module.id,
            score_percent=result.score_percent,
            passed=result.passed,
        )
    )
    db.session.commit()
    logger.info(
        "%s scored %s%% on the quiz of module %s",
        user.email,
        result.score_percent,
        module.id,
    )

    if result.passed:
        complete_module(user, module, result.score_percent)
    return result


def latest_attempt(user: User, module: TrainingModule) -> QuizAttempt | None:
    return db.session.scalar(
        select(QuizAttempt)
        .where(QuizAttempt.user_id == user.id, QuizAttempt.module_id == module.id)
        .order_by(QuizAttempt.attempted_at_utc.desc(), QuizAttempt.id.desc())
        .limit(1)
    )


# Module files ----------------------------------------------------------------

MODULE_FILE_LIMIT_BYTES = 10 * 1024 * 1024
MODULE_FILES = uploads.UploadPolicy(
    folder="module_files",
    limit_bytes=MODULE_FILE_LIMIT_BYTES,
    extensions=frozenset(
        {"pdf", "png", "jpg", "jpeg", "txt", "md", "csv", "docx", "pptx", "xlsx"}
    ),
    allowed=(
        "a PDF, PNG or JPEG image, text, Markdown or CSV file, or a Word, "
        "PowerPoint or Excel (docx, pptx, xlsx) file"
    ),
)


class ModuleFileError(uploads.UploadError):
    """An attachment that cannot be kept; the message says why."""


def store_module_file(upload: FileStorage) -> tuple[str, str]:
    """Keep an uploaded attachment under a random name; (original, stored) names.

    :raise ModuleFileError: for a missing, empty, too large or unsupported file,
        or one whose content is not what its name says. Nothing is kept then.
    """
    try:
        return uploads.store_upload(upload, MODULE_FILES)
    except uploads.UploadError as error:
        raise ModuleFileError(str(error)) from None


def module_file_path(stored_as: str) -> Path:
    """Where an attachment is kept. :raise ModuleFileError: for a foreign name."""
    try:
        return uploads.stored_path(MODULE_FILES, stored_as)
    except uploads.UploadError:
        raise ModuleFileError("That is not the name of a stored module file.") from None


def remove_module_file(stored_as: str | None) -> None:
    """Delete a replaced or removed attachment; a missing one is fine."""
    if stored_as:
        module_file_path(stored_as).unlink(missing_ok=True)


# Completions -----------------------------------------------------------------


def complete_module(
    user: User, module: TrainingModule, score_percent: int | None = None
) -> ModuleCompletion:
    """Record that ``user`` finished ``module``; again is a no-op."""
    existing = _find_completion(user.id, module.id)
    if existing is not None:
        return existing

    completion = ModuleCompletion(
        user_id=user.id,
        module_id=module.id,
        organisation_id=user.organisation_id,
        score_percent=score_percent,
    )
    db.session.add(completion)
    try:
        db.session.commit()
    except IntegrityError:
        # The same person finished it a moment ago in another request.
        db.session.rollback()
        found = _find_completion(user.id, module.id)
        if found is None:
            raise
        return found

    logger.info("%s completed module %s", user.email, module.id)
    return completion


def _find_completion(user_id: int, module_id: int) -> ModuleCompletion | None:
    return db.session.scalar(
        select(ModuleCompletion).where(
            ModuleCompletion.user_id == user_id,
            ModuleCompletion.module_id == module_id,
        )
    )


def complete_task_step(user: User, step: ProgramStep) -> StepCompletion:
    """Tick a task step off for the user's organisation; again is a no-op."""
    if step.kind != StepKind.TASK or user.organisation_id is None:
        raise ValueError("Only a partner can tick off a task step.")
    existing = _find_step_completion(user.organisation_id, step.id)
    if existing is not None:
        return existing

    completion = StepCompletion(
        organisation_id=user.organisation_id, step_id=step.id, completed_by_id=user.id
    )
    db.session.add(completion)
    try:
        db.session.commit()
    except IntegrityError:
        # Someone else of the organisation ticked it off at the same moment.
        db.session.rollback()
        found = _find_step_completion(user.organisation_id, step.id)
        if found is None:
            raise
        return found

    logger.info("%s ticked off step %s", user.email, step.id)
    return completion


def _find_step_completion(organisation_id: int, step_id: int) -> StepCompletion | None:
    return db.session.scalar(
        select(StepCompletion).where(
            StepCompletion.organisation_id == organisation_id,
            StepCompletion.step_id == step_id,
        )
    )


# Step states -----------------------------------------------------------------


@dataclass(frozen=True)
class StepState:
    """Whether a step is done for an organisation, since when and by whom."""

    done: bool
    when: datetime | date | None = None
    by: str | None = None


def step_states(program: Program, organisation_id: int) -> dict[int, StepState]:
    """Each step of ``program`` (by id) as it stands for the organisation."""
    steps = list(program.steps)
    modules = _first_module_completions(
        organisation_id, [s.module_id for s in steps if s.module_id is not None]
    )
    tasks = _task_completions(organisation_id, [s.id for s in steps])
    first_sale = None
    if any(step.kind == StepKind.FIRST_SALE for step in steps):
        first_sale = _first_sale_on(organisation_id)

    states = {}
    for step in steps:
        if step.kind == StepKind.MODULE and step.module_id in modules:
            states[step.id] = modules[step.module_id]
        elif step.kind == StepKind.TASK and step.id in tasks:
            states[step.id] = tasks[step.id]
        elif step.kind == StepKind.FIRST_SALE and first_sale is not None:
            states[step.id] = StepState(True, first_sale)
        else:
            states[step.id] = StepState(False)
    return states


def _first_module_completions(
    organisation_id: int, module_ids: Sequence[int]
) -> dict[int, StepState]:
    if not module_ids:
        return {}
    rows = db.session.execute(
        select(
            ModuleCompletion.module_id,
            ModuleCompletion.completed_at_utc,
            User.display_name,
        )
        .join(User, User.id == ModuleCompletion.user_id)
        .where(
            ModuleCompletion.organisation_id == organisation_id,
            ModuleCompletion.module_id.in_(module_ids),
        )
        .order_by(ModuleCompletion.completed_at_utc.desc(), ModuleCompletion.id.desc())
    )
    # Rows come latest first, so the earliest completion of each module stays.
    return {module_id: StepState(True, at, name) for module_id, at, name in rows}


def _task_completions(
    organisation_id: int, step_ids: Sequence[int]
) -> dict[int, StepState]:
    if not step_ids:
        return {}
    rows = db.session.execute(
        select(
            StepCompletion.step_id,
            StepCompletion.completed_at_utc,
            User.display_name,
        )
        .outerjoin(User, User.id == StepCompletion.completed_by_id)
        .where(
            StepCompletion.organisation_id == organisation_id,
            StepCompletion.step_id.in_(step_ids),
        )
    )
    return {step_id: StepState(True, at, name) for step_id, at, name in rows}


def _first_sale_on(organisation_id: int) -> date | None:
    sales = credited_sales()
    return db.session.scalar(
        select(func.min(sales.c.order_date)).where(
            sales.c.organisation_id == organisation_id
        )
    )


# Roll-up ---------------------------------------------------------------------


@dataclass(frozen=True)
class Completer:
    user_id: int
    name: str
    completed_at_utc: datetime


@dataclass(frozen=True)
class OrganisationRollup:
    """Who at an organisation finished which module, among its partner users."""

    people: int
    completed_by: dict[int, list[Completer]]

    def count(self, module_id: int) -> int:
        return len(self.completed_by.get(module_id, []))


def organisation_rollup(
    organisation_id: int, module_ids: Iterable[int] | None = None
) -> OrganisationRollup:
    """Per module, the organisation's current people who finished it.

    People who left the organisation are not counted, so the count never
    exceeds the number of people.
    """
    people = db.session.scalar(
        select(func.count(User.id)).where(
            User.organisation_id == organisation_id, User.role == Role.PARTNER.value
        )
    )
    query = (
        select(
            ModuleCompletion.module_id,
            User.id,
            User.display_name,
            ModuleCompletion.completed_at_utc,
        )
        .join(User, User.id == ModuleCompletion.user_id)
        .where(
            ModuleCompletion.organisation_id == organisation_id,
            User.organisation_id == organisation_id,
            User.role == Role.PARTNER.value,
        )
        .order_by(ModuleCompletion.completed_at_utc, ModuleCompletion.id)
    )
    if module_ids is not None:
        query = query.where(ModuleCompletion.module_id.in_(list(module_ids)))

    completed_by: dict[int, list[Completer]] = defaultdict(list)
    for module_id, user_id, name, at in db.session.execute(query):
        completed_by[module_id].append(Completer(user_id, name, at))
    return OrganisationRollup(people or 0, dict(completed_by))


def modules_completed_by(user: User, module_ids: Iterable[int]) -> set[int]:
    ids = list(module_ids)
    if not ids:
        return set()
    return set(
        db.session.scalars(
            select(ModuleCompletion.module_id).where(
                ModuleCompletion.user_id == user.id,
                ModuleCompletion.module_id.in_(ids),
            )
        )
    )


@dataclass(frozen=True)
class StepProgress:
    """A step as a partner user sees it."""

    step: ProgramStep
    state: StepState
    # Module steps only: whether the viewing user finished the module.
    mine: bool
    people_done: int
    people: int


@dataclass(frozen=True)
class ProgramProgress:
    steps: list[StepProgress]
    done: int
    total: int
    # False when the program has no required step and every step counts.
    required_only: bool

    @property
    def percent(self) -> int:
        return self.done * 100 // self.total if self.total else 0


def program_progress(program: Program, user: User) -> ProgramProgress:
    """The program's steps with their states for the user and the organisation.

    The progress counts required steps; a program whose steps are all optional
    counts them all.
    """
    organisation_id = user.organisation_id or 0
    steps = list(program.steps)
    module_ids = [s.module_id for s in steps if s.module_id is not None]
    states = step_states(program, organisation_id)
    rollup = organisation_rollup(organisation_id, module_ids)
    mine = modules_completed_by(user, module_ids)

    rows = [
        StepProgress(
            step=step,
            state=states[step.id],
            mine=step.module_id in mine,
            people_done=rollup.count(step.module_id) if step.module_id else 0,
            people=rollup.people,
        )
        for step in steps
    ]
    required = [row for row in rows if row.step.required]
    counted = required or rows
    done = sum(1 for row in counted if row.state.done)
    return ProgramProgress(rows, done, len(counted), bool(required))


# Onboarding ------------------------------------------------------------------


def today_utc() -> date:
    return utc_now().date()


def running_onboarding_programs(organisation_id: int) -> list[Program]:
    """Onboarding programs running today that the organisation is eligible for."""
    today = today_utc()
    program_ids = select(Eligibility.program_id).where(
        Eligibility.organisation_id == organisation_id
    )
    return list(
        db.session.scalars(
            _running_onboarding(today)
            .where(Program.id.in_(program_ids))
            .order_by(Program.starts_on, Program.id)
        )
    )


def _running_onboarding(today: date) -> Any:
    return select(Program).where(
        Program.kind == ProgramKind.ONBOARDING.value,
        Program.status == ProgramStatus.ACTIVE.value,
        Program.starts_on <= today,
        Program.ends_on >= today,
    )


@dataclass(frozen=True)
class OnboardingProgress:
    """Required steps done across the running onboarding programs."""

    programs: list[Program]
    done: int
    total: int

    @property
    def percent(self) -> int:
        return self.done * 100 // self.total if self.total else 0


def onboarding_progress(organisation_id: int) -> OnboardingProgress:
    programs = running_onboarding_programs(organisation_id)
    done = total = 0
    for program in programs:
        states = step_states(program, organisation_id)
        required = [step for step in program.steps if step.required]
        total += len(required)
        done += sum(1 for step in required if states[step.id].done)
    return OnboardingProgress(programs, done, total)


@dataclass(frozen=True)
class _StepRow:
    id: int
    program_id: int
    kind: str
    module_id: int | None
    required: bool


def onboarding_statuses(
    organisation_ids: Collection[int] | None = None,
) -> dict[int, str]:
    """The onboarding status each organisation should have, in a fixed number of
    queries: not started until a step is done, complete once every required
    step of every running onboarding program it is eligible for is done.

    Only organisations in ``organisation_ids`` (all when None) that are in such a
    program are listed; any other one keeps its stored status.
    """
    pairs = _eligible_running_onboarding(organisation_ids)
    if not pairs:
        return {}
    program_ids = {program_id for _, program_id in pairs}
    steps = _onboarding_steps(program_ids)
    done = _done_steps(steps, organisation_ids)

    programs_of: dict[int, set[int]] = defaultdict(set)
    for organisation_id, program_id in pairs:
        programs_of[organisation_id].add(program_id)
    return {
        organisation_id: _status(
            [step for step in steps if step.program_id in programs],
            done.get(organisation_id, set()),
        )
        for organisation_id, programs in programs_of.items()
    }


def _status(steps: Sequence[_StepRow], done: set[int]) -> str:
    if not any(step.id in done for step in steps):
        return OnboardingStatus.NOT_STARTED.value
    if all(step.id in done for step in steps if step.required):
        return OnboardingStatus.COMPLETE.value
    return OnboardingStatus.IN_PROGRESS.value


def _eligible_running_onboarding(
    organisation_ids: Collection[int] | None,
) -> set[tuple[int, int]]:
    running = _running_onboarding(today_utc()).with_only_columns(Program.id)
    query = select(Eligibility.organisation_id, Eligibility.program_id).where(
        Eligibility.program_id.in_(running)
    )
    if organisation_ids is not None:
        query = query.where(Eligibility.organisation_id.in_(list(organisation_ids)))
    return {(row[0], row[1]) for row in db.session.execute(query.distinct())}


def _onboarding_steps(program_ids: Collection[int]) -> list[_StepRow]:
    rows = db.session.execute(
        select(
            ProgramStep.id,
            ProgramStep.program_id,
            ProgramStep.kind,
            ProgramStep.module_id,
            ProgramStep.required,
        ).where(ProgramStep.program_id.in_(list(program_ids)))
    )
    return [_StepRow(*row) for row in rows]


def _done_steps(
    steps: Sequence[_StepRow], organisation_ids: Collection[int] | None
) -> dict[int, set[int]]:
    """Organisation id -> ids of the ``steps`` done for it (all organisations
    when ``organisation_ids`` is None)."""
    done: dict[int, set[int]] = defaultdict(set)
    orgs = None if organisation_ids is None else list(organisation_ids)
    for organisation_id, step_id in (
        *_module_steps_done(steps, orgs),
        *_task_steps_done(steps, orgs),
        *_sale_steps_done(steps, orgs),
    ):
        done[organisation_id].add(step_id)
    return done


def _module_steps_done(
    steps: Sequence[_StepRow], orgs: list[int] | None
) -> list[tuple[int, int]]:
    by_module: dict[int, list[int]] = defaultdict(list)
    for step in steps:
        if step.kind == StepKind.MODULE and step.module_id is not None:
            by_module[step.module_id].append(step.id)
    if not by_module:
        return []
    query = select(ModuleCompletion.organisation_id, ModuleCompletion.module_id).where(
        ModuleCompletion.module_id.in_(list(by_module)),
        ModuleCompletion.organisation_id.is_not(None),
    )
    if orgs is not None:
        query = query.where(ModuleCompletion.organisation_id.in_(orgs))
    return [
        (organisation_id, step_id)
        for organisation_id, module_id in db.session.execute(query.distinct())
        if organisation_id is not None
        for step_id in by_module[module_id]
    ]


def _task_steps_done(
    steps: Sequence[_StepRow], orgs: list[int] | None
) -> list[tuple[int, int]]:
    task_ids = [step.id for step in steps if step.kind == StepKind.TASK]
    if not task_ids:
        return []
    query = select(StepCompletion.organisation_id, StepCompletion.step_id).where(
        StepCompletion.step_id.in_(task_ids)
    )
    if orgs is not None:
        query = query.where(StepCompletion.organisation_id.in_(orgs))
    return [(row[0], row[1]) for row in db.session.execute(query)]


def _sale_steps_done(
    steps: Sequence[_StepRow], orgs: list[int] | None
) -> list[tuple[int, int]]:
    sale_steps = [step.id for step in steps if step.kind == StepKind.FIRST_SALE]
    if not sale_steps:
        return []
    sales = credited_sales()
    query = select(sales.c.organisation_id).distinct()
    if orgs is not None:
        query = query.where(sales.c.organisation_id.in_(orgs))
    return [
        (organisation_id, step_id)
        for organisation_id in db.session.scalars(query)
        for step_id in sale_steps
    ]


def refresh_onboarding_status(organisation_id: int) -> bool:
    """Store the organisation's onboarding status; True when it changed.

    An organisation in no running onboarding program keeps the status it reached,
    so that an onboarding journey ending does not undo it.
    """
    organisation = db.session.get(PartnerOrganisation, organisation_id)
    if organisation is None:
        return False
    status = onboarding_statuses([organisation_id]).get(organisation_id)
    if status is None or organisation.onboarding_status == status:
        # In no running onboarding program: the status it reached stays.
        return False

    previous = organisation.onboarding_status
    organisation.onboarding_status = status
    db.session.commit()
    logger.info(
        "Onboarding of organisation %s went from %s to %s",
        organisation_id,
        previous,
        status,
    )
    return True


def refresh_all_onboarding_statuses() -> int:
    """Store every organisation's onboarding status; the number that changed."""
    statuses = onboarding_statuses()
    current = db.session.execute(
        select(PartnerOrganisation.id, PartnerOrganisation.onboarding_status)
    )
    changes: dict[str, list[int]] = defaultdict(list)
    for organisation_id, stored in current:
        # An organisation in no running onboarding program keeps what it reached.
        status = statuses.get(organisation_id, stored)
        if status != stored:
            changes[status].append(organisation_id)

    for status, ids in changes.items():
        db.session.execute(
            update(PartnerOrganisation)
            .where(PartnerOrganisation.id.in_(ids))
            .values(onboarding_status=status)
        )
    db.session.commit()
    changed = sum(len(ids) for ids in changes.values())
    logger.info("Onboarding status changed for %s organisations", changed)
    return changed
