"""Charts drawn on the server as SVG, each with a table of the same numbers.

Every chart is a pure function of plain data (months with revenue and target,
tier counts, partners with their revenue) returning a :class:`Chart`: the SVG
(``role="img"`` with a ``<title>`` and a ``<desc>`` that says what it shows in
words) and the rows of its table, which ``manager/_charts.html`` renders after
the chart, so that every number can be read without seeing the picture. All text
is escaped; nothing in a chart runs script.
"""

from __future__ import annotations

import itertools
import logging
import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Protocol

from markupsafe import Markup

logger = logging.getLogger(__name__)

WIDTH = 720
BAR_COLOUR = "#0f766e"
BAR_BELOW_COLOUR = "#a15c07"
TARGET_COLOUR = "#b42318"
AXIS_COLOUR = "#7b8794"
GRID_COLOUR = "#e1e6ec"
INK = "#1c2430"
LABEL_SIZE = 12
MAX_LABEL_CHARS = 24
# More month labels than this would crowd the axis, whatever the span.
MAX_TICKS = 12


class MonthLike(Protocol):
    """A month's revenue and target, as ``figures.monthly`` gives them."""

    @property
    def month(self) -> date: ...

    @property
    def revenue(self) -> Decimal: ...

    @property
    def target(self) -> Decimal | None: ...

    @property
    def revenue_against_target(self) -> Decimal: ...

    @property
    def attainment(self) -> Decimal | None: ...


@dataclass(frozen=True)
class Bar:
    """One horizontal bar: its label, its value and the value in words."""

    label: str
    value: Decimal
    text: str


@dataclass
class Chart:
    """An SVG chart and the table of its numbers."""

    title: str
    description: str
    svg: Markup
    caption: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    numeric_columns: frozenset[str] = frozenset()

    @property
    def is_empty(self) -> bool:
        return not self.rows

    def is_numeric(self, index: int) -> bool:
        """Whether the table's column at ``index`` holds numbers (set to the right)."""
        return self.columns[index] in self.numeric_columns


# --- Numbers in words --------------------------------------------------------------


def money(amount: Decimal | None, currency: str = "$") -> str:
    """``$1,234.50``; a negative amount keeps its sign before the symbol."""
    if amount is None:
        return "-"
    sign = "-" if amount < 0 else ""
    return f"{sign}{currency}{abs(amount):,.2f}"


def compact_money(amount: Decimal, currency: str = "$") -> str:
    """An axis label: ``$0``, ``$750``, ``$12.5k``, ``$1.2M``."""
    sign = "-" if amount < 0 else ""
    value = abs(amount)
    for limit, suffix in ((Decimal(10**9), "bn"), (Decimal(10**6), "M")):
        if value >= limit:
            return f"{sign}{currency}{_trimmed(value / limit)}{suffix}"
    if value >= 1000:
        return f"{sign}{currency}{_trimmed(value / 1000)}k"
    return f"{sign}{currency}{_trimmed(value)}"


def _trimmed(value: Decimal) -> str:
    text = f"{value:.1f}"
    return text.removesuffix(".0")


def percent(ratio: Decimal | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.0f}%"


def month_name(month: date) -> str:
    return f"{month:%b %Y}"


def nice_ceiling(value: Decimal) -> tuple[Decimal, Decimal]:
    """An axis top at or above ``value`` and the step of its (at most 5) ticks.

    Steps are 1, 2, 2.5 or 5 times a power of ten, so ticks read as round numbers.
    """
    if value <= 0:
        return Decimal(1), Decimal(1)
    rough = value / 5
    power = Decimal(10) ** math.floor(math.log10(rough))
    for factor in (1, 2, Decimal("2.5"), 5, 10):
        step = power * factor
        if step * 5 >= value:
            break
    top = step * math.ceil(value / step)
    return top, step


def _short(label: str) -> str:
    if len(label) <= MAX_LABEL_CHARS:
        return label
    return label[: MAX_LABEL_CHARS - 1] + "…"


def _n(value: float) -> str:
    """A coordinate with at most two decimals, as SVG reads it."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


# --- SVG pieces --------------------------------------------------------------------


def _svg(title: str, description: str, height: float, body: list[Markup]) -> Markup:
    # Ids for aria-labelledby, stable for the same chart and distinct between charts.
    chart_id = "chart-" + str(zlib.crc32((title + "|" + description).encode()))
    opening = Markup(
        '<svg class="chart" xmlns="http://www.w3.org/2000/svg" role="img" '
        'viewBox="0 0 {width} {height}" width="100%" '
        'aria-labelledby="{id}-title {id}-desc" '
        'font-family="system-ui, sans-serif" font-size="{size}">'
        '<title id="{id}-title">{title}</title><desc id="{id}-desc">{desc}</desc>'
    ).format(
        width=WIDTH,
        height=_n(height),
        id=chart_id,
        size=LABEL_SIZE,
        title=title,
        desc=description,
    )
    return opening + Markup("").join(body) + Markup("</svg>")


def _text(
    x: float, y: float, content: str, anchor: str = "start", weight: str = "normal"
) -> Markup:
    return Markup(
        '<text x="{}" y="{}" text-anchor="{}" font-weight="{}" fill="{}">{}</text>'
    ).format(_n(x), _n(y), anchor, weight, INK, content)


def _rect(
    x: float, y: float, width: float, height: float, colour: str, tip: str | None
) -> Markup:
    shape = Markup('<rect x="{}" y="{}" width="{}" height="{}" fill="{}"').format(
        _n(x), _n(y), _n(width), _n(height), colour
    )
    if tip is None:
        return shape + Markup("/>")
    return shape + Markup("><title>{}</title></rect>").format(tip)


def _line(
    x1: float, y1: float, x2: float, y2: float, colour: str, width: int = 1
) -> Markup:
    return Markup(
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="{}"/>'
    ).format(_n(x1), _n(y1), _n(x2), _n(y2), colour, width)


# --- Revenue by month against target -----------------------------------------------

_TOP, _BOTTOM, _LEFT, _RIGHT = 36.0, 44.0, 76.0, 16.0
_PLOT_HEIGHT = 220.0


@dataclass(frozen=True)
class _Frame:
    """The plot area of a vertical bar chart and its value scale."""

    top_value: Decimal
    step: Decimal
    slots: int

    @property
    def slot(self) -> float:
        return (WIDTH - _LEFT - _RIGHT) / max(self.slots, 1)

    def y(self, value: Decimal) -> float:
        share = float(max(value, Decimal(0)) / self.top_value)
        return _TOP + _PLOT_HEIGHT * (1 - min(share, 1.0))

    def x(self, index: int) -> float:
        return _LEFT + index * self.slot


def revenue_chart(points: Sequence[MonthLike], currency: str = "$") -> Chart:
    """Revenue per month as bars, the month's target as a step line across them."""
    columns = ["Month", "Revenue", "Target", "Attainment"]
    rows = [_month_row(point, currency) for point in points]
    title = "Revenue by month against target"
    description = _revenue_description(points, currency)
    highest = max(
        [p.revenue for p in points] + [p.target or Decimal(0) for p in points],
        default=Decimal(0),
    )
    frame = _Frame(*nice_ceiling(highest), slots=len(points))

    body = [
        *_value_axis(frame, currency),
        *_month_bars(points, frame, currency),
        *_target_steps(points, frame),
        *_month_labels(points, frame),
        *_legend(),
    ]
    height = _TOP + _PLOT_HEIGHT + _BOTTOM
    return Chart(
        title=title,
        description=description,
        svg=_svg(title, description, height, body),
        caption=f"{title}: the numbers of the chart.",
        columns=columns,
        rows=rows,
        numeric_columns=frozenset(columns[1:]),
    )


def _month_row(point: MonthLike, currency: str) -> list[str]:
    return [
        month_name(point.month),
        money(point.revenue, currency),
        money(point.target, currency),
        percent(point.attainment),
    ]


def _revenue_description(points: Sequence[MonthLike], currency: str) -> str:
    if not points:
        return "No months to show."
    first, last = month_name(points[0].month), month_name(points[-1].month)
    best = max(points, key=lambda p: p.revenue)
    span = f"from {first} to {last}" if first != last else f"in {first}"
    sentence = (
        f"Revenue by month {span}. The highest month is {month_name(best.month)} "
        f"with {money(best.revenue, currency)}."
    )
    with_target = [p for p in points if p.target is not None]
    if with_target:
        reached = sum(
            1 for p in with_target if p.revenue_against_target >= (p.target or 0)
        )
        sentence += (
            f" Revenue reached the target in {reached} of {len(with_target)} "
            f"months with a target."
        )
    else:
        sentence += " No month has a target."
    return sentence


def _value_axis(frame: _Frame, currency: str) -> list[Markup]:
    parts: list[Markup] = []
    tick = Decimal(0)
    while tick <= frame.top_value:
        y = frame.y(tick)
        parts.append(_line(_LEFT, y, WIDTH - _RIGHT, y, GRID_COLOUR))
        parts.append(_text(_LEFT - 6, y + 4, compact_money(tick, currency), "end"))
        tick += frame.step
    baseline = frame.y(Decimal(0))
    parts.append(_line(_LEFT, baseline, WIDTH - _RIGHT, baseline, AXIS_COLOUR))
    parts.append(_line(_LEFT, _TOP, _LEFT, baseline, AXIS_COLOUR))
    return parts


def _month_bars(
    points: Sequence[MonthLike], frame: _Frame, currency: str
) -> list[Markup]:
    parts: list[Markup] = []
    width = frame.slot * 0.6
    for index, point in enumerate(points):
        top = frame.y(point.revenue)
        below = point.target is not None and point.revenue_against_target < point.target
        tip = f"{month_name(point.month)}: revenue {money(point.revenue, currency)}"
        if point.target is not None:
            tip += f", target {money(point.target, currency)}"
        parts.append(
            _rect(
                frame.x(index) + (frame.slot - width) / 2,
                top,
                width,
                frame.y(Decimal(0)) - top,
                BAR_BELOW_COLOUR if below else BAR_COLOUR,
                tip,
            )
        )
    return parts


def _target_steps(points: Sequence[MonthLike], frame: _Frame) -> list[Markup]:
    """One path per run of months with a target: a step across each month."""
    parts: list[Markup] = []
    commands: list[str] = []
    for index, point in enumerate(points):
        if point.target is None:
            parts.extend(_target_path(commands))
            commands = []
            continue
        y = frame.y(point.target)
        left, right = frame.x(index), frame.x(index + 1)
        move = "M" if not commands else "L"
        commands.append(f"{move}{_n(left)} {_n(y)} H{_n(right)}")
    parts.extend(_target_path(commands))
    return parts


def _target_path(commands: list[str]) -> list[Markup]:
    if not commands:
        return []
    return [
        Markup(
            '<path class="target" d="{}" fill="none" stroke="{}" stroke-width="2"/>'
        ).format(" ".join(commands), TARGET_COLOUR)
    ]


@dataclass(frozen=True)
class Tick:
    """A labelled month of the time axis: its place among the months and its words.

    ``year`` is a second line under ``label``, given where the year would
    otherwise be unclear: at the first tick and wherever the year changes.
    """

    index: int
    label: str
    year: str | None = None


def _tick_steps() -> Iterator[int]:
    """Months between ticks, from every month to every 1, 2, 5, 10, 20… years."""
    yield from (1, 3, 6)
    for power in itertools.count():
        for factor in (1, 2, 5):
            yield 12 * factor * 10**power


def _month_number(month: date) -> int:
    return month.year * 12 + month.month - 1


def _tick_indexes(months: Sequence[date]) -> tuple[int, list[int]]:
    """The smallest step giving at most :data:`MAX_TICKS` ticks, and their places."""
    numbers = [_month_number(month) for month in months]
    steps = _tick_steps()
    while True:
        step = next(steps)
        chosen = [index for index, number in enumerate(numbers) if number % step == 0]
        if len(chosen) <= MAX_TICKS:
            return step, chosen


def month_ticks(months: Sequence[date]) -> list[Tick]:
    """At most :data:`MAX_TICKS` ticks on calendar boundaries suited to the span.

    A span of a year shows every month; longer ones show quarters, half-years,
    or years (every 1, 2, 5, 10… of them), each tick on a month that starts such
    a step, so the labels stay evenly spaced and read as the calendar does.
    """
    step, chosen = _tick_indexes(months)
    if step >= 12:
        return [Tick(index, f"{months[index]:%Y}") for index in chosen]

    ticks = []
    shown_year = None
    for index in chosen:
        month = months[index]
        year = None if month.year == shown_year else str(month.year)
        ticks.append(Tick(index, f"{month:%b}", year))
        shown_year = month.year
    return ticks


def _month_labels(points: Sequence[MonthLike], frame: _Frame) -> list[Markup]:
    parts: list[Markup] = []
    baseline = frame.y(Decimal(0))
    for tick in month_ticks([point.month for point in points]):
        centre = frame.x(tick.index) + frame.slot / 2
        parts.append(_line(centre, baseline, centre, baseline + 4, AXIS_COLOUR))
        parts.append(_text(centre, baseline + 16, tick.label, "middle"))
        if tick.year is not None:
            parts.append(_text(centre, baseline + 31, tick.year, "middle"))
    return parts


def _legend() -> list[Markup]:
    # At the left, where a narrow screen that scrolls the chart still shows it.
    x = _LEFT
    return [
        _rect(x, 8, 12, 12, BAR_COLOUR, None),
        _text(x + 17, 18, "Revenue"),
        _rect(x + 80, 8, 12, 12, BAR_BELOW_COLOUR, None),
        _text(x + 97, 18, "Below target"),
        _line(x + 190, 14, x + 210, 14, TARGET_COLOUR, width=2),
        _text(x + 215, 18, "Target"),
    ]


# --- Horizontal bars ----------------------------------------------------------------

_ROW_HEIGHT = 24.0
_BAR_LEFT = 200.0
_BAR_RIGHT = 110.0


@dataclass(frozen=True)
class _Heading:
    text: str


def _horizontal_bars(items: Sequence[Bar | _Heading]) -> tuple[float, list[Markup]]:
    """Labelled bars one under the other, headings between groups; the height."""
    largest = max(
        (item.value for item in items if isinstance(item, Bar)), default=Decimal(0)
    )
    span = WIDTH - _BAR_LEFT - _BAR_RIGHT
    parts: list[Markup] = []
    y = 8.0
    for item in items:
        if isinstance(item, _Heading):
            parts.append(_text(8, y + 16, _short(item.text), weight="600"))
            y += _ROW_HEIGHT
            continue
        share = float(max(item.value, Decimal(0)) / largest) if largest > 0 else 0.0
        length = span * share
        parts.append(_text(_BAR_LEFT - 8, y + 16, _short(item.label), "end"))
        parts.append(
            _rect(
                _BAR_LEFT,
                y + 4,
                length,
                _ROW_HEIGHT - 8,
                BAR_COLOUR,
                f"{item.label}: {item.text}",
            )
        )
        parts.append(_text(_BAR_LEFT + length + 6, y + 16, item.text))
        y += _ROW_HEIGHT
    parts.append(_line(_BAR_LEFT, 8, _BAR_LEFT, y, AXIS_COLOUR))
    return y + 8, parts


# --- Tier distribution --------------------------------------------------------------


def tier_chart(distribution: Sequence[tuple[str, str, int]]) -> Chart:
    """Partners per tier, grouped by incentive program (in the order given)."""
    title = "Tier distribution"
    items: list[Bar | _Heading] = []
    rows = []
    for program, tiers in itertools.groupby(distribution, key=lambda row: row[0]):
        items.append(_Heading(program))
        for _, tier, count in tiers:
            items.append(Bar(tier, Decimal(count), _partners(count)))
            rows.append([program, tier, str(count)])
    description = _tier_description(distribution)
    height, body = _horizontal_bars(items)
    return Chart(
        title=title,
        description=description,
        svg=_svg(title, description, height, body),
        caption=f"{title}: partners in each tier of each incentive program.",
        columns=["Program", "Tier", "Partners"],
        rows=rows,
        numeric_columns=frozenset({"Partners"}),
    )


def _partners(count: int) -> str:
    return f"{count} partner" if count == 1 else f"{count} partners"


def _tier_description(distribution: Sequence[tuple[str, str, int]]) -> str:
    if not distribution:
        return "No partner holds a tier in an incentive program."
    sentences = []
    for program, tiers in itertools.groupby(distribution, key=lambda row: row[0]):
        counts = ", ".join(f"{tier}: {_partners(count)}" for _, tier, count in tiers)
        sentences.append(f"{program}: {counts}.")
    return "Partners per tier. " + " ".join(sentences)


# --- Top and bottom partners --------------------------------------------------------


def partners_chart(
    partners: Sequence[tuple[str, Decimal]], count: int = 5, currency: str = "$"
) -> Chart:
    """The ``count`` partners with the most revenue and the ``count`` with the least.

    ``partners`` are (name, revenue) pairs; when there are no more than twice
    ``count`` of them, all are shown once.
    """
    title = "Top and bottom partners by revenue"
    ranked = sorted(partners, key=lambda pair: (-pair[1], pair[0]))
    numbered = list(enumerate(ranked, start=1))
    if len(numbered) > 2 * count:
        groups = [("Top", numbered[:count]), ("Bottom", numbered[-count:])]
    else:
        groups = [("All partners", numbered)]

    items: list[Bar | _Heading] = []
    rows = []
    for heading, members in groups:
        items.append(_Heading(heading if len(groups) > 1 else "Partners"))
        for rank, (name, revenue) in members:
            items.append(Bar(f"{rank}. {name}", revenue, money(revenue, currency)))
            rows.append([str(rank), name, money(revenue, currency)])
    description = _partners_description(ranked, currency)
    height, body = _horizontal_bars(items if ranked else [])
    return Chart(
        title=title,
        description=description,
        svg=_svg(title, description, height, body),
        caption=f"{title}: rank, partner and revenue.",
        columns=["Rank", "Partner", "Revenue"],
        rows=rows,
        numeric_columns=frozenset({"Rank", "Revenue"}),
    )


def _partners_description(ranked: Sequence[tuple[str, Decimal]], currency: str) -> str:
    if not ranked:
        return "No partner to rank."
    first, last = ranked[0], ranked[-1]
    return (
        f"{len(ranked)} partners ranked by revenue. The highest is {first[0]} with "
        f"{money(first[1], currency)}; the lowest is {last[0]} with "
        f"{money(last[1], currency)}."
    )
