"""The SVG charts: geometry proportional to the numbers, words and tables agreeing."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest

from portal.performance.charts import (
    compact_money,
    nice_ceiling,
    partners_chart,
    revenue_chart,
    tier_chart,
)

SVG = "{http://www.w3.org/2000/svg}"


@dataclass
class Point:
    month: date
    revenue: Decimal
    target: Decimal | None


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
