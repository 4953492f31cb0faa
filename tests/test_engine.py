"""The assignment engine on small constructed cases, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.extensions import db
from territory_rules.jobs import start_assignment_run
from territory_rules.models import Assignment, Rule, RuleMatch
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
        "matches": 2,  # the state list is not tried where the shape matched
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


def matches_by_account() -> dict[str, list[tuple[str, int]]]:
    """Account name -> (rule name, precedence) of every match the last run kept."""
    rows = db.session.execute(
        select(RuleMatch, Assignment)
        .join(Assignment, Assignment.account_id == RuleMatch.account_id)
        .order_by(RuleMatch.rule_id)
    ).all()
    kept: dict[str, list[tuple[str, int]]] = {}
    for match, assignment in rows:
        rule = db.session.get(Rule, match.rule_id)
        assert rule is not None
        kept.setdefault(assignment.account.name, []).append(
            (rule.name, match.precedence)
        )
    return kept


def test_lower_levels_leave_no_matches_where_a_higher_level_matched(region):
    top = make_territory(region, "Top", shape=square(0, 0, 10))
    middle = make_territory(region, "Middle")
    bottom = make_territory(region, "Bottom")
    add_rule(top, 100, ("shape", "inside", None), name="shape")
    add_rule(middle, 50, ("segment", "in", ["Consumer"]), name="segment")
    add_rule(bottom, 10, ("state", "in", ["NS"]), name="state")
    make_account("all three", at=(5, 5), segment="Consumer", state="NS")
    make_account("middle and bottom", at=(50, 50), segment="Consumer", state="NS")
    make_account("bottom only", at=(50, 50), state="NS")
    db.session.commit()

    counts = run_engine()

    assert matches_by_account() == {
        "all three": [("shape", 100)],
        "middle and bottom": [("segment", 50)],
        "bottom only": [("state", 10)],
    }
    assert counts["matches"] == 3
    assert assignments() == {
        "all three": ("assigned", "Top", "shape"),
        "middle and bottom": ("assigned", "Middle", "segment"),
        "bottom only": ("assigned", "Bottom", "state"),
    }


def test_batches_of_one_level_do_not_hide_each_other(region):
    shaped = make_territory(region, "Shaped", shape=square(0, 0, 10))
    listed = make_territory(region, "Listed")
    lower = make_territory(region, "Lower")
    add_rule(shaped, 50, ("shape", "inside", None), name="shape")
    add_rule(listed, 50, ("state", "in", ["NS"]), name="state list")
    add_rule(listed, 50, ("postal_code", "starts_with", ["02"]), name="prefix")
    add_rule(lower, 10, ("state", "in", ["NS"]), name="lower state list")
    make_account("both at 50", at=(5, 5), state="NS", postal_code="02139")
    make_account("list only", at=(50, 50), state="NS")
    db.session.commit()

    counts = run_engine()

    assert matches_by_account() == {
        "both at 50": [("shape", 50), ("state list", 50), ("prefix", 50)],
        "list only": [("state list", 50)],
    }
    assert assignments() == {
        "both at 50": ("conflict", None, None),
        "list only": ("assigned", "Listed", "state list"),
    }
    assert (counts["conflict"], counts["assigned"], counts["matches"]) == (1, 1, 4)


def test_a_rerun_keeps_only_its_own_matches(region):
    north = make_territory(region, "North", shape=square(0, 0, 10))
    add_rule(north, 100, ("shape", "inside", None))
    make_account("inside", at=(1, 1))
    db.session.commit()

    first, _ = start_assignment_run()
    second, _ = start_assignment_run()

    run_ids = db.session.scalars(select(RuleMatch.run_id)).all()
    assert first.id != second.id
    assert run_ids == [second.id]
    assigned_by = db.session.scalars(select(Assignment.run_id)).all()
    assert assigned_by == [second.id]
