"""The demo data set, loaded through the real importers and assigned by the engine,
checked against an independent computation with Shapely over the same files."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from shapely import prepared
from shapely.geometry import Point, shape
from shapely.validation import make_valid
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import User
from territory_rules.models import Account, Region, SalesLine, Territory

DATA_DIR = Path(__file__).resolve().parent.parent / "demo_data"


@dataclass(frozen=True)
class Expected:
    status: str
    territory: str
    rule: str


def expected_assignments() -> dict[tuple[str, str], Expected]:
    """(customer id, postal code or city|state) -> where the demo rules put it.

    Computed from the files alone: state polygons made valid, ZIP centroids, the demo
    plan's state groups and precedences (shape 100, state list 10).
    """
    plan = json.loads((DATA_DIR / "demo_plan.json").read_text())
    territory_of_state = {
        state: spec["territory"]
        for specs in plan["regions"].values()
        for spec in specs
        for state in spec["states"]
    }
    features = json.loads((DATA_DIR / "us-states.json").read_text())["features"]
    state_shapes = {
        f["properties"]["name"]: prepared.prep(make_valid(shape(f["geometry"])))
        for f in features
    }
    centroids, by_city = read_centroids()

    expected: dict[tuple[str, str], Expected] = {}
    with (DATA_DIR / "sample_superstore.csv").open(
        encoding="utf-8-sig", newline=""
    ) as f:
        for row in csv.DictReader(f):
            code = row["Postal Code"].zfill(5) if row["Postal Code"] else ""
            key = (row["Customer ID"], code or f"{row['City']}|{row['State']}")
            if key in expected:
                continue
            if code:
                point = centroids[code]
            else:
                point = locate_by_city(row["City"], state_shapes[row["State"]], by_city)
            expected[key] = decide(
                point, row["State"], state_shapes, territory_of_state
            )
    return expected


def read_centroids() -> tuple[dict[str, Point], dict[str, list[Point]]]:
    centroids: dict[str, Point] = {}
    by_city: dict[str, list[Point]] = {}
    with (DATA_DIR / "us_zipcodes.csv").open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            point = Point(float(row["long"]), float(row["lat"]))
            centroids[row["zip_code"]] = point
            by_city.setdefault(row["city"].upper(), []).append(point)
    return centroids, by_city


def locate_by_city(city: str, state_shape, by_city: dict[str, list[Point]]) -> Point:
    """A centroid of a ZIP code of that city lying inside that state's shape."""
    inside = [p for p in by_city[city.upper()] if state_shape.intersects(p)]
    assert inside, f"no centroid for {city}"
    return inside[0]


def decide(point: Point, state: str, state_shapes, territory_of_state) -> Expected:
    by_shape = {
        territory_of_state[name]
        for name, polygon in state_shapes.items()
        if name in territory_of_state and polygon.intersects(point)
    }
    if len(by_shape) == 1:
        territory = by_shape.pop()
        return Expected("assigned", territory, f"Inside {territory}")
    if len(by_shape) > 1:
        return Expected("conflict", "", "")
    if state in territory_of_state:
        territory = territory_of_state[state]
        return Expected(
            "assigned", territory, f"{territory} states (outside every state shape)"
        )
    return Expected("gap", "", "")


def exported_rows(app: Flask) -> list[dict[str, str]]:
    result = app.test_cli_runner().invoke(args=["territories", "export"])
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.output)))


def test_demo_counts(demo_app: Flask):
    with demo_app.app_context():
        count = lambda model: db.session.scalar(select(func.count()).select_from(model))  # noqa: E731
        assert count(Account) == 4910
        assert count(SalesLine) == 9994
        assert count(Region) == 4
        assert count(Territory) == 12
        assert count(User) == 1 + 4 + 12
        total = db.session.scalar(select(func.sum(SalesLine.amount)))
        assert float(total) == pytest.approx(2_297_200.8603, abs=0.0001)


def test_every_demo_account_is_where_the_rules_say(demo_app: Flask):
    expected = expected_assignments()
    with demo_app.app_context():
        keys = dict(db.session.execute(select(Account.id, Account.key)).all())
    rows = exported_rows(demo_app)

    actual = {}
    for row in rows:
        customer, _, place = keys[int(row["account_id"])].partition("|")
        actual[(customer, place)] = Expected(
            row["status"], row["territory"], row["rule"]
        )

    assert len(rows) == 4910
    assert actual.keys() == expected.keys()
    wrong = {
        key: (actual[key], expected[key])
        for key in expected
        if actual[key] != expected[key]
    }
    assert wrong == {}


def test_demo_status_counts_and_partners(demo_app: Flask):
    expected = expected_assignments()
    rows = exported_rows(demo_app)

    statuses = Counter(row["status"] for row in rows)
    assert statuses == Counter(e.status for e in expected.values())
    assert statuses["assigned"] + statuses["conflict"] + statuses["gap"] == 4910
    by_state_rule = sum(
        1 for row in rows if row["rule"].endswith("(outside every state shape)")
    )
    assert by_state_rule > 0  # coastal centroids fall outside the low-resolution shapes
    partners = {row["partner"] for row in rows if row["status"] == "assigned"}
    assert len(partners) == 12
