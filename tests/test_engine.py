"""The assignment engine on small constructed cases, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.extensions import db
from territory_rules.jobs import start_assignment_run
from territory_rules.models import Assignment
from tests.factories import add_rule, make_account, make_region, make_territory, square


def assignments() -> dict[str, tuple[str, str | None, str | None]]:
    """Account name -> (status, territory name, rule name)."""
    rows = db.session.scalars(select(Assignment)).all()
    return {
        row.account.name: (
            row.status,
            row.territory.name if row.territory else None,
            row.rule.name if row.rule else None,
        )
        for row in rows
    }


def run_engine() -> dict[str, int]:
    run, created = start_assignment_run()
    assert created
    assert run.status == "succeeded", run.error
    return run.counts


@pytest.fixture
def region(clean_app):
    return make_region("North")


def test_highest_precedence_wins_and_lower_rules_catch_the_rest(region):
    north = make_territory(region, "North", shape=square(0, 0, 10))
    rest = make_territory(region, "Rest")
    add_rule(north, 100, ("shape", "inside", None), name="inside North")
    add_rule(rest, 10, ("state", "in", ["NS", "Ontario"]), name="state list")
    make_account("in shape and state", at=(5, 5), state="NS")
    make_account("outside shape", at=(50, 50), state="ontario")
    make_account("nowhere", at=(50, 50), state="Quebec")
    db.session.commit()

    counts = run_engine()

    assert assignments() == {
        "in shape and state": ("assigned", "North", "inside North"),
        "outside shape": ("assigned", "Rest", "state list"),
        "nowhere": ("gap", None, None),
    }
    assert counts == {
        "accounts": 3,
        "assigned": 2,
        "conflict": 0,
        "gap": 1,
        "rules": 2,
        "matches": 3,
    }


def test_equal_top_precedence_in_two_territories_is_a_conflict(region):
    west = make_territory(region, "West", shape=square(0, 0, 10))
    east = make_territory(region, "East", shape=square(5, 0, 10))
    add_rule(west, 50, ("shape", "inside", None))
    add_rule(east, 50, ("shape", "inside", None))
    add_rule(east, 10, ("segment", "in", ["Consumer"]))
    make_account("overlap", at=(7, 5), segment="Consumer")
    make_account("west only", at=(2, 5))
    db.session.commit()

    counts = run_engine()

    result = assignments()
    assert result["overlap"] == ("conflict", None, None)
    assert result["west only"][:2] == ("assigned", "West")
    assert counts["conflict"] == 1


def test_two_rules_of_one_territory_at_the_same_precedence_are_not_a_conflict(region):
    only = make_territory(region, "Only", shape=square(0, 0, 10))
    add_rule(only, 50, ("shape", "inside", None), name="first")
    add_rule(only, 50, ("city", "in", ["Springfield"]), name="second")
    make_account("both", at=(1, 1), city="springfield ")
    db.session.commit()

    run_engine()

    assert assignments()["both"] == ("assigned", "Only", "first")


def test_rerun_gives_the_same_assignments(region):
    north = make_territory(region, "North", shape=square(0, 0, 10))
    add_rule(north, 100, ("shape", "inside", None))
    for x in range(12):
        make_account(f"a{x}", at=(x, 1))
    db.session.commit()

    first_counts = run_engine()
    first = assignments()
    second_counts = run_engine()

    assert assignments() == first
    assert first_counts == second_counts
    assert first_counts["assigned"] == 11  # x = 0..10 lie in the closed square


def test_rules_of_parent_territories_are_ignored(region):
    parent = make_territory(region, "Parent", shape=square(0, 0, 10))
    child = make_territory(region, "Child", shape=square(0, 0, 5), parent=parent)
    add_rule(parent, 100, ("shape", "inside", None))
    add_rule(child, 10, ("shape", "inside", None))
    make_account("inner", at=(1, 1))
    make_account("outer", at=(8, 8))
    db.session.commit()

    run_engine()

    assert assignments()["inner"][:2] == ("assigned", "Child")
    assert assignments()["outer"][:2] == ("gap", None)


def test_revenue_and_industry_conditions_join_with_and(region):
    big = make_territory(region, "Enterprise")
    add_rule(
        big,
        20,
        ("annual_revenue", "between", {"low": "1000000", "high": None}),
        ("industry", "in", ["Retail"]),
    )
    make_account("big retail", industry="Retail", annual_revenue=5_000_000)
    make_account("small retail", industry="Retail", annual_revenue=10_000)
    make_account("big no industry", annual_revenue=5_000_000)
    make_account("retail no revenue", industry="retail")
    db.session.commit()

    run_engine()

    statuses = {name: value[0] for name, value in assignments().items()}
    assert statuses == {
        "big retail": "assigned",
        "small retail": "gap",
        "big no industry": "gap",
        "retail no revenue": "gap",
    }
