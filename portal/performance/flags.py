"""Flags that point a manager at partners and territories needing attention.

Three kinds, each with its reason as a sentence holding the numbers:

- ``underperforming``: in each of the last N consecutive periods of the chosen
  period's length (ending with it; calendar months for a period of whole
  months), attainment below a share of target, or (when enabled) in the
  region's bottom quartile of attainment, which needs at least four rows with a
  target to say anything;
- ``stalled``: no sale or approved claim for a number of days up to the period's
  end (or today, when the period ends later), or revenue down by more than a share
  against the period just before;
- ``imbalanced``: a partner's accounts or revenue potential above the region's
  median per partner times a factor, or below the median divided by it (the
  region's Gini coefficient of potential is :func:`figures.gini`).

The tests are pure functions of numbers; :func:`flag_rows` gathers the numbers
from :mod:`portal.performance.figures` (one call per earlier period, so the
number of queries depends on the settings, never on the data) and attaches the
flags to the rows.
"""

from __future__ import annotations

import functools
import logging
import statistics
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

from portal.performance import figures
from portal.performance.models import PerformanceSettings
from portal.performance.periods import Period
from rewards.statements import format_money
from territory_rules.models import Region

logger = logging.getLogger(__name__)

UNDERPERFORMING = "underperforming"
STALLED = "stalled"
IMBALANCED = "imbalanced"
KIND_LABELS = {
    UNDERPERFORMING: "Underperforming",
    STALLED: "Stalled",
    IMBALANCED: "Imbalanced",
}
# A quartile of fewer rows than this says nothing: with three partners, the
# "bottom quarter" would simply be the last of them.
MIN_ROWS_FOR_QUARTILE = 4

Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True)
class Flag:
    kind: str
    reason: str

    @property
    def label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind)


@dataclass(frozen=True)
class Thresholds:
    """The settings the flags read, as plain values."""

    underperform_share: Decimal = Decimal("0.80")
    underperform_periods: int = 2
    use_bottom_quartile: bool = True
    stalled_days: int = 60
    revenue_drop_share: Decimal = Decimal("0.30")
    imbalance_factor: Decimal = Decimal("1.5")

    @classmethod
    def of(cls, settings: PerformanceSettings) -> Thresholds:
        return cls(
            underperform_share=Decimal(settings.underperform_share),
            underperform_periods=settings.underperform_periods,
            use_bottom_quartile=settings.use_bottom_quartile,
            stalled_days=settings.stalled_days,
            revenue_drop_share=Decimal(settings.revenue_drop_share),
            imbalance_factor=Decimal(settings.imbalance_factor),
        )


@dataclass(frozen=True)
class Standing:
    """A row's attainment in one period, and whether it was in the bottom quartile."""

    label: str
    attainment: Decimal | None
    bottom_quartile: bool = False


@dataclass(frozen=True)
class Attention:
    """A flag in the "needs attention" list, with the row it belongs to."""

    subject: str  # "partner" or "territory"
    id: int
    name: str
    region_id: int | None
    flag: Flag


# --- Numbers in words ---------------------------------------------------------------


def percent(ratio: Decimal) -> str:
    """A whole percentage; a ratio that rounds to nought has no sign."""
    text = f"{ratio * 100:.0f}"
    return ("0" if text == "-0" else text) + "%"


def number(value: Decimal) -> str:
    """A count or a median of counts: 12, or 12.5 when halfway."""
    return f"{value:,.1f}".removesuffix(".0")


def and_list(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def period_noun(period: Period, count: int) -> str:
    """``quarters``, ``months``, ``years``, ``periods of 2 months`` or ``periods
    of 45 days``, as ``count`` needs."""
    plural = count != 1
    months = period.whole_months
    if period.is_quarter:
        return "quarters" if plural else "quarter"
    if months == 1:
        return "months" if plural else "month"
    if months == 12 and period.starts_on.month == 1:
        return "years" if plural else "year"
    if months is not None:
        return f"periods of {months} months" if plural else f"period of {months} months"
    days = period.days
    return f"periods of {days} days" if plural else f"period of {days} days"


# --- Underperformance ---------------------------------------------------------------


def bottom_quartile(attainments: Mapping[Key, Decimal | None]) -> set[Key]:
    """The keys in the lowest quarter of attainment, with any tied to the last one.

    The quarter is ``n // 4`` rows of the ``n`` with an attainment (rows without a
    target have none and are left out); below four rows there is no quartile.
    """
    known = {key: value for key, value in attainments.items() if value is not None}
    size = len(known) // 4
    if len(known) < MIN_ROWS_FOR_QUARTILE or size == 0:
        return set()
    cut = sorted(known.values())[size - 1]
    return {key for key, value in known.items() if value <= cut}


def underperformance(
    history: Sequence[Standing],
    thresholds: Thresholds,
    noun: str,
) -> Flag | None:
    """The flag when every one of the last N standings (oldest first) falls short.

    ``noun`` names the periods in plural ("quarters"). Fewer standings than N
    periods, or a period without target and outside the bottom quartile, means
    no flag.
    """
    wanted = thresholds.underperform_periods
    recent = list(history)[-wanted:] if wanted > 0 else []
    if wanted <= 0 or len(recent) < wanted:
        return None
    if not all(_short_of(standing, thresholds) for standing in recent):
        return None
    return Flag(UNDERPERFORMING, _underperformance_reason(recent, thresholds, noun))


def _below_share(standing: Standing, thresholds: Thresholds) -> bool:
    attainment = standing.attainment
    return attainment is not None and attainment < thresholds.underperform_share


def _short_of(standing: Standing, thresholds: Thresholds) -> bool:
    in_quartile = thresholds.use_bottom_quartile and standing.bottom_quartile
    return _below_share(standing, thresholds) or in_quartile


def _underperformance_reason(
    recent: Sequence[Standing], thresholds: Thresholds, noun: str
) -> str:
    share = percent(thresholds.underperform_share)
    last = f"the last {len(recent)} {noun}" if len(recent) > 1 else f"this {noun}"
    parts = [_standing_words(standing, thresholds) for standing in recent]
    if all(_below_share(standing, thresholds) for standing in recent):
        return f"Attainment {and_list(parts)}: below {share} of target in {last}."
    return (
        f"Attainment {and_list(parts)}: below {share} of target or in the region's "
        f"bottom quartile in {last}."
    )


def _standing_words(standing: Standing, thresholds: Thresholds) -> str:
    value = "no target" if standing.attainment is None else percent(standing.attainment)
    words = f"{value} in {standing.label}"
    if not _below_share(standing, thresholds):
        words += " (bottom quartile)"
    return words


# --- Stalled ------------------------------------------------------------------------


def days_label(days: int) -> str:
    return "1 day" if days == 1 else f"{days:,} days"


def stalled_activity(
    last_activity: date | None,
    as_of: date,
    stalled_days: int,
    today: date | None = None,
) -> Flag | None:
    """The flag when no sale or claim came in the ``stalled_days`` up to ``as_of``.

    A last sale ``stalled_days`` days before ``as_of`` leaves that many days
    without one, so it is flagged; a day later is not. When ``as_of`` is
    ``today`` the reason says so.
    """
    when = f"today, {_day(as_of)}" if as_of == today else _day(as_of)
    if last_activity is None:
        return Flag(STALLED, f"No sale or approved claim on record up to {when}.")
    if last_activity > as_of:
        return None
    quiet = (as_of - last_activity).days
    if quiet < stalled_days:
        return None
    return Flag(
        STALLED,
        f"No sale or approved claim for {days_label(quiet)} up to {when} (the last "
        f"on {_day(last_activity)}); the limit is {days_label(stalled_days)}.",
    )


def revenue_drop(
    current: Decimal,
    previous: Decimal,
    drop_share: Decimal,
    labels: tuple[str, str],
    currency: str = "$",
) -> Flag | None:
    """The flag when revenue fell by more than ``drop_share`` of the period before.

    ``labels`` name the previous and the current period. A drop of exactly the
    share is not flagged; nothing is flagged when the period before had no revenue.
    """
    if previous <= 0:
        return None
    drop = (previous - current) / previous
    if drop <= drop_share:
        return None
    before, now = labels
    return Flag(
        STALLED,
        f"Revenue {format_money(current, currency)} in {now}, down {percent(drop)} "
        f"from {format_money(previous, currency)} in {before}: more than "
        f"{percent(drop_share)}.",
    )


def _day(day: date) -> str:
    return f"{day.day} {day:%b %Y}"


# --- Imbalance ----------------------------------------------------------------------


def median(values: Sequence[Decimal]) -> Decimal | None:
    return Decimal(statistics.median(values)) if values else None


def imbalance(
    values: Mapping[Key, Decimal],
    factor: Decimal,
    describe: Callable[[Decimal], str],
    what: str,
) -> dict[Key, Flag]:
    """Flags for the keys whose value is above median x factor or below median / factor.

    ``what`` names the measure ("accounts", "revenue potential"); ``describe``
    writes a value of it. A value exactly at either bound is not flagged, and a
    median of zero flags nothing (every partner would be "above" it).
    """
    middle = median(list(values.values()))
    if middle is None or middle <= 0 or factor <= 0:
        return {}
    high, low = middle * factor, middle / factor
    median_words = f"the region's median of {describe(middle)} per partner"
    flags = {}
    for key, value in values.items():
        if value > high:
            words = f"more than {_factor(factor)} times {median_words}"
        elif value < low:
            words = f"less than {median_words} divided by {_factor(factor)}"
        else:
            continue
        flags[key] = Flag(
            IMBALANCED, f"{what.capitalize()} {describe(value)}: {words}."
        )
    return flags


def _factor(factor: Decimal) -> str:
    return format(factor.normalize(), "f")


# --- Attaching the flags to rows ----------------------------------------------------


@dataclass
class _Rows:
    """The rows of one period, by id."""

    period: Period
    territories: dict[int, figures.TerritoryRow]
    partners: dict[int, figures.PartnerRow]

    @functools.cached_property
    def quartiles(self) -> dict[str, set[int]]:
        """Bottom quartile of attainment: per region for territories, in the scope
        for partners (a partner may work in several regions)."""
        by_region: dict[int, dict[int, Decimal | None]] = defaultdict(dict)
        for key, row in self.territories.items():
            by_region[row.region_id][key] = row.figures.attainment
        territories: set[int] = set()
        for group in by_region.values():
            territories |= bottom_quartile(group)
        partners = {key: row.figures.attainment for key, row in self.partners.items()}
        return {"territories": territories, "partners": bottom_quartile(partners)}


def flag_rows(
    regions: list[Region],
    period: Period,
    territories: list[figures.TerritoryRow],
    partners: list[figures.PartnerRow],
    today: date,
    currency: str = "$",
) -> list[Attention]:
    """Attach flags to ``territories`` and ``partners`` (the chosen period's rows).

    Earlier periods come from one call of the figures per period needed, so the
    number of queries grows with ``underperform_periods``, not with the data.
    The flags, territories first, are returned for the "needs attention" list.
    """
    thresholds = Thresholds.of(PerformanceSettings.current())
    history = [_Rows(period, _by_id(territories), _by_id(partners))]
    history += [_rows_of(regions, earlier) for earlier in _earlier(period, thresholds)]
    history.reverse()  # oldest first

    noun = period_noun(period, thresholds.underperform_periods)
    when = _Measured(as_of=min(period.ends_on, today), today=today)
    for territory in territories:
        territory.flags = _row_flags(
            territory, "territories", history, thresholds, noun, when, currency
        )
    for partner in partners:
        partner.flags = _row_flags(
            partner, "partners", history, thresholds, noun, when, currency
        )
    _attach_imbalance(partners, thresholds, currency)

    return _attention(territories, partners)


@dataclass(frozen=True)
class _Measured:
    """The day days without a sale are counted up to: the period's end, or
    today when the period ends later."""

    as_of: date
    today: date


def _by_id(rows: Sequence[Any]) -> dict[int, Any]:
    return {row.id: row for row in rows}


def _earlier(period: Period, thresholds: Thresholds) -> list[Period]:
    """The periods before ``period`` that the flags look at, latest first."""
    periods = []
    current = period
    for _ in range(max(thresholds.underperform_periods - 1, 1)):
        current = current.previous()
        periods.append(current)
    return periods


def _rows_of(regions: list[Region], period: Period) -> _Rows:
    _, territories, partners = figures.scope_figures(regions, period)
    return _Rows(period, _by_id(territories), _by_id(partners))


def _row_flags(
    row: Any,
    kind: str,
    history: list[_Rows],
    thresholds: Thresholds,
    noun: str,
    when: _Measured,
    currency: str,
) -> list[Flag]:
    standings = _standings(row.id, kind, history)
    found = [
        underperformance(standings, thresholds, noun),
        stalled_activity(
            row.last_activity, when.as_of, thresholds.stalled_days, when.today
        ),
        _drop_of(row, kind, history, thresholds, currency),
    ]
    return [flag for flag in found if flag is not None]


def _standings(row_id: int, kind: str, history: list[_Rows]) -> list[Standing]:
    """The row's standing in each period, oldest first, since it last was absent."""
    standings: list[Standing] = []
    for rows in history:
        row = getattr(rows, kind).get(row_id)
        if row is None:
            standings = []
            continue
        in_quartile = row_id in rows.quartiles[kind]
        standings.append(
            Standing(rows.period.label, row.figures.attainment, in_quartile)
        )
    return standings


def _drop_of(
    row: Any, kind: str, history: list[_Rows], thresholds: Thresholds, currency: str
) -> Flag | None:
    before = getattr(history[-2], kind).get(row.id) if len(history) > 1 else None
    previous = before.figures.revenue if before is not None else Decimal(0)
    labels = (history[-2].period.label, history[-1].period.label)
    return revenue_drop(
        row.figures.revenue, previous, thresholds.revenue_drop_share, labels, currency
    )


def _attach_imbalance(
    partners: list[figures.PartnerRow], thresholds: Thresholds, currency: str
) -> None:
    factor = thresholds.imbalance_factor
    # Partners credited in the scope without owning a territory of it now hold
    # no accounts or potential here; they would only drag the median down.
    owners = [row for row in partners if row.owns_territory]
    accounts = imbalance(
        {row.id: Decimal(row.accounts) for row in owners},
        factor,
        number,
        "accounts",
    )
    potential = imbalance(
        {row.id: row.potential for row in owners},
        factor,
        lambda value: format_money(value, currency),
        "revenue potential",
    )
    for row in owners:
        row.flags += [
            flags[row.id] for flags in (accounts, potential) if row.id in flags
        ]


def _attention(
    territories: list[figures.TerritoryRow], partners: list[figures.PartnerRow]
) -> list[Attention]:
    listed = [
        Attention("territory", row.id, row.name, row.region_id, flag)
        for row in territories
        for flag in row.flags
    ]
    listed += [
        Attention("partner", row.id, row.name, None, flag)
        for row in partners
        for flag in row.flags
    ]
    return listed


# --- When the bottom quartile cannot apply ------------------------------------------


def quartile_note(
    region: str,
    period: Period,
    territories: Sequence[figures.TerritoryRow],
    partners: Sequence[figures.PartnerRow],
) -> str | None:
    """Why flagging the bottom quartile flags nothing in the period, when it is
    on and too few territories or partners have a target to make a quartile."""
    if not Thresholds.of(PerformanceSettings.current()).use_bottom_quartile:
        return None
    counts = {
        "territories": _with_target(territories),
        "partners": _with_target(partners),
    }
    short = {kind: n for kind, n in counts.items() if n < MIN_ROWS_FOR_QUARTILE}
    needs = f"it needs at least {MIN_ROWS_FOR_QUARTILE}"
    if len(short) == 2:
        return (
            f"Flagging the bottom quartile does not apply in {period.label}: {needs} "
            f"territories (or partners) with a target, and {region} has "
            f"{_count(counts['territories'], 'territory', 'territories')} and "
            f"{_count(counts['partners'], 'partner', 'partners')} with one."
        )
    if len(short) == 1:
        [(kind, count)] = short.items()
        return (
            f"Flagging the bottom quartile does not apply to {kind} in "
            f"{period.label}: {needs} {kind} with a target, and {region} has {count}."
        )
    return None


def _with_target(rows: Sequence[Any]) -> int:
    return sum(1 for row in rows if row.figures.attainment is not None)


def _count(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count == 1 else plural}"
