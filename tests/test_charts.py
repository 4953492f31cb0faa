"""The SVG charts: geometry proportional to the numbers, words and tables agreeing."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date
from decimal import Decimal
from itertools import pairwise

import pytest

from portal.performance.charts import (
    MAX_TICKS,
    Chart,
    Tick,
    compact_money,
    month_ticks,
    nice_ceiling,
    partners_chart,
    revenue_chart,
    tier_chart,
)
from portal.performance.figures import MonthPoint as Point
from portal.performance.periods import Period

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - our own output, parsed to check it


def bars(root: ET.Element) -> list[ET.Element]:
    """The data bars: rectangles with a tooltip (legend swatches have none)."""
    return [
        rect for rect in root.iter(f"{SVG}rect") if rect.find(f"{SVG}title") is not None
    ]


def texts(root: ET.Element) -> list[str]:
    return [element.text or "" for element in root.iter(f"{SVG}text")]


def quarter(revenues: list[str], targets: list[str | None]) -> list[Point]:
    return [
        Point(
            date(2018, month, 1),
            Decimal(revenue),
            Decimal(target) if target is not None else None,
        )
        for month, revenue, target in zip((7, 8, 9), revenues, targets, strict=True)
    ]


def test_revenue_bars_are_proportional_to_revenue() -> None:
    chart = revenue_chart(quarter(["1000", "2000", "500"], ["1500", "1500", "1500"]))

    found = bars(parse(chart.svg))

    heights = [float(rect.get("height", "0")) for rect in found]
    assert len(heights) == 3
    assert heights[1] == pytest.approx(2 * heights[0], rel=1e-3)
    assert heights[2] == pytest.approx(heights[0] / 2, rel=1e-3)
    bottoms = {float(r.get("y", "0")) + float(r.get("height", "0")) for r in found}
    assert len({round(b, 1) for b in bottoms}) == 1  # all stand on the same axis


def test_revenue_axis_tops_at_a_round_number_above_the_highest_value() -> None:
    chart = revenue_chart(quarter(["1000", "2000", "500"], ["2300", None, None]))

    root = parse(chart.svg)

    labels = texts(root)
    assert "$2.5k" in labels  # 2,300 rounds up to 2,500 in steps of 500
    assert "$0" in labels
    tallest = max(float(r.get("height", "0")) for r in bars(root))
    assert tallest == pytest.approx(220 * 2000 / 2500, rel=1e-3)


def test_target_is_a_step_line_at_each_months_target() -> None:
    chart = revenue_chart(quarter(["1000", "2000", "500"], ["1000", "2000", None]))

    root = parse(chart.svg)

    [path] = root.iter(f"{SVG}path")
    steps = path.get("d", "")
    revenue_tops = [float(r.get("y", "0")) for r in bars(root)]
    # The step of a month whose target equals its revenue is at the bar's top.
    assert f" {revenue_tops[0]:.2f}".rstrip("0").rstrip(".") in steps
    assert f" {revenue_tops[1]:.2f}".rstrip("0").rstrip(".") in steps
    assert steps.count("H") == 2  # no step for September, which has no target


def test_revenue_chart_names_months_and_colours_months_below_target() -> None:
    chart = revenue_chart(quarter(["1000", "2000", "500"], ["1500", "1500", None]))

    root = parse(chart.svg)

    assert {"Jul", "Aug", "Sep", "2018"} <= set(texts(root))
    fills = [rect.get("fill") for rect in bars(root)]
    assert fills[0] != fills[1]  # July is below its target, August above
    assert fills[1] == fills[2]


def test_revenue_chart_is_accessible_and_has_the_same_numbers_as_a_table() -> None:
    chart = revenue_chart(quarter(["1000", "2000", "500"], ["1500", "1500", "1500"]))

    root = parse(chart.svg)

    assert root.get("role") == "img"
    assert root.findtext(f"{SVG}title") == "Revenue by month against target"
    description = root.findtext(f"{SVG}desc") or ""
    assert "from Jul 2018 to Sep 2018" in description
    assert "highest month is Aug 2018 with $2,000.00" in description
    assert "reached the target in 1 of 3 months" in description
    assert chart.columns == ["Month", "Revenue", "Target", "Attainment"]
    assert chart.rows[0] == ["Jul 2018", "$1,000.00", "$1,500.00", "67%"]
    assert chart.rows[1] == ["Aug 2018", "$2,000.00", "$1,500.00", "133%"]


def test_attainment_counts_only_the_revenue_of_territories_with_a_target() -> None:
    points = [
        Point(date(2018, 7, 1), Decimal(1600), Decimal(1500), Decimal(1200)),
        Point(date(2018, 8, 1), Decimal(1400), Decimal(1000), Decimal(1400)),
    ]

    chart = revenue_chart(points)
    root = parse(chart.svg)

    # July: $1,600 in all, but the targeted territories made $1,200 of $1,500.
    assert chart.rows[0] == ["Jul 2018", "$1,600.00", "$1,500.00", "80%"]
    assert chart.rows[1] == ["Aug 2018", "$1,400.00", "$1,000.00", "140%"]
    fills = [rect.get("fill") for rect in bars(root)]
    assert fills[0] != fills[1]  # July is below its target, August above
    assert "reached the target in 1 of 2 months" in (root.findtext(f"{SVG}desc") or "")


def test_revenue_chart_of_no_months_says_so() -> None:
    chart = revenue_chart([])

    assert chart.is_empty
    assert parse(chart.svg).findtext(f"{SVG}desc") == "No months to show."


def test_currency_symbol_is_used_in_labels_and_table() -> None:
    chart = revenue_chart(quarter(["1000", "2000", "500"], [None] * 3), currency="€")

    assert "€2k" in texts(parse(chart.svg))
    assert chart.rows[0][1] == "€1,000.00"
    assert chart.rows[0][2] == "-"


def test_tier_chart_bars_per_program_and_tier() -> None:
    distribution = [
        ("Growth", "Silver", 4),
        ("Growth", "Gold", 2),
        ("Growth", "Platinum", 1),
        ("Campaign", "Entry", 3),
    ]

    chart = tier_chart(distribution)

    root = parse(chart.svg)
    widths = [float(rect.get("width", "0")) for rect in bars(root)]
    assert widths[0] == pytest.approx(2 * widths[1], rel=1e-3)
    assert widths[0] == pytest.approx(4 * widths[2], rel=1e-3)
    assert widths[3] == pytest.approx(widths[0] * 3 / 4, rel=1e-3)
    labels = texts(root)
    assert {"Growth", "Campaign", "Silver", "Gold", "4 partners", "1 partner"} <= set(
        labels
    )
    assert chart.rows == [
        ["Growth", "Silver", "4"],
        ["Growth", "Gold", "2"],
        ["Growth", "Platinum", "1"],
        ["Campaign", "Entry", "3"],
    ]
    assert "Growth: Silver: 4 partners, Gold: 2 partners" in (
        root.findtext(f"{SVG}desc") or ""
    )


def test_partners_chart_shows_top_and_bottom_with_ranks() -> None:
    partners = [(f"Partner {n:02d}", Decimal(n * 100)) for n in range(1, 13)]

    chart = partners_chart(partners, count=3)

    root = parse(chart.svg)
    assert [row[:2] for row in chart.rows] == [
        ["1", "Partner 12"],
        ["2", "Partner 11"],
        ["3", "Partner 10"],
        ["10", "Partner 03"],
        ["11", "Partner 02"],
        ["12", "Partner 01"],
    ]
    widths = [float(rect.get("width", "0")) for rect in bars(root)]
    assert widths[0] == pytest.approx(12 * widths[-1], rel=1e-3)
    assert {"Top", "Bottom"} <= set(texts(root))
    assert chart.rows[0][2] == "$1,200.00"


def test_partners_chart_with_few_partners_lists_each_once() -> None:
    chart = partners_chart([("A", Decimal(5)), ("B", Decimal(10))], count=5)

    assert [row[1] for row in chart.rows] == ["B", "A"]
    assert "Top" not in texts(parse(chart.svg))


def test_text_is_escaped() -> None:
    hostile = '<script>alert("x")</script> & Co'

    chart = partners_chart([(hostile, Decimal(10))])

    assert "<script>" not in chart.svg
    root = parse(chart.svg)  # still well-formed XML
    [bar] = bars(root)
    assert bar.findtext(f"{SVG}title") == f"1. {hostile}: $10.00"
    assert hostile in (root.findtext(f"{SVG}desc") or "")


def test_long_labels_are_shortened_in_the_picture_but_whole_in_the_table() -> None:
    name = "A partner organisation with a very long name indeed"

    chart = partners_chart([(name, Decimal(10))])

    assert name not in texts(parse(chart.svg))
    assert chart.rows[0][1] == name


@pytest.mark.parametrize(
    ("value", "top", "step"),
    [
        ("1234", "1250", "250"),
        ("1000", "1000", "200"),
        ("7", "8", "2"),
        ("0", "1", "1"),
        ("98000", "100000", "20000"),
    ],
)
def test_nice_ceiling(value: str, top: str, step: str) -> None:
    assert nice_ceiling(Decimal(value)) == (Decimal(top), Decimal(step))


@pytest.mark.parametrize(
    ("amount", "text"),
    [("0", "$0"), ("750", "$750"), ("12500", "$12.5k"), ("1200000", "$1.2M")],
)
def test_compact_money(amount: str, text: str) -> None:
    assert compact_money(Decimal(amount)) == text


def months_between(first: str, last: str) -> list[date]:
    return Period(date.fromisoformat(first), date.fromisoformat(last)).months()


def test_a_quarter_labels_every_month_and_its_year_once() -> None:
    ticks = month_ticks(months_between("2019-10-01", "2019-12-31"))

    assert ticks == [Tick(0, "Oct", "2019"), Tick(1, "Nov"), Tick(2, "Dec")]


def test_two_years_are_labelled_by_quarter_with_each_new_year() -> None:
    months = months_between("2018-01-01", "2019-12-31")

    ticks = month_ticks(months)

    assert [(months[t.index], t.label, t.year) for t in ticks] == [
        (date(2018, 1, 1), "Jan", "2018"),
        (date(2018, 4, 1), "Apr", None),
        (date(2018, 7, 1), "Jul", None),
        (date(2018, 10, 1), "Oct", None),
        (date(2019, 1, 1), "Jan", "2019"),
        (date(2019, 4, 1), "Apr", None),
        (date(2019, 7, 1), "Jul", None),
        (date(2019, 10, 1), "Oct", None),
    ]


def test_a_span_starting_mid_quarter_still_names_the_year_of_its_first_label() -> None:
    months = months_between("2018-11-15", "2020-02-10")

    ticks = month_ticks(months)

    assert [(t.label, t.year) for t in ticks] == [
        ("Jan", "2019"),
        ("Apr", None),
        ("Jul", None),
        ("Oct", None),
        ("Jan", "2020"),
    ]


def test_fifty_years_are_labelled_every_five_years_by_year_alone() -> None:
    months = months_between("1975-01-01", "2024-12-31")

    ticks = month_ticks(months)

    assert [t.label for t in ticks] == [str(year) for year in range(1975, 2025, 5)]
    assert all(months[t.index].month == 1 and t.year is None for t in ticks)


@pytest.mark.parametrize("count", [1, 12, 13, 36, 37, 72, 73, 145, 600, 2400])
def test_no_span_gets_more_than_twelve_labels(count: int) -> None:
    months = [date(2000 + n // 12, n % 12 + 1, 1) for n in range(count)]

    ticks = month_ticks(months)

    assert 1 <= len(ticks) <= MAX_TICKS
    indexes = [tick.index for tick in ticks]
    steps = {b - a for a, b in pairwise(indexes)}
    assert len(steps) <= 1  # evenly spaced


def test_a_long_revenue_chart_names_no_month_years_away_from_its_year() -> None:
    months = months_between("1975-01-01", "2024-12-31")
    points = [Point(month, Decimal(100), None) for month in months]

    labels = texts(parse(revenue_chart(points).svg))

    axis = [label for label in labels if label.isdigit()]
    assert axis == [str(year) for year in range(1975, 2025, 5)]
    assert not {"Jan", "Mar", "May", "Jul"} & set(labels)


def test_chart_tables_set_numbers_right_and_words_left() -> None:
    revenue = revenue_chart(quarter(["1000", "2000", "500"], [None] * 3))
    tiers = tier_chart([("Growth", "Gold", 2)])
    partners = partners_chart([("A", Decimal(5))])

    def numeric(chart: Chart) -> list[bool]:
        return [chart.is_numeric(index) for index in range(len(chart.columns))]

    assert numeric(revenue) == [False, True, True, True]
    assert numeric(tiers) == [False, False, True]  # Program, Tier | Partners
    assert numeric(partners) == [True, False, True]  # Rank | Partner | Revenue
