"""Postal-code conditions: text, not numbers."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.extensions import db
from territory_rules.conditions import ConditionError, parse_condition
from territory_rules.jobs import start_assignment_run
from territory_rules.models import Account, Assignment
from tests.factories import add_rule, make_account, make_region, make_territory


def matched(*condition: tuple) -> set[str]:
    region = make_region()
    territory = make_territory(region, "Target")
    add_rule(territory, 1, condition)
    for code in ["02139", "2139", "02999", "03000", "021", "10001", "0213A", None]:
        make_account(f"pc {code}", postal_code=code)
    db.session.commit()
    run, _ = start_assignment_run()
    assert run.status == "succeeded", run.error
    rows = db.session.execute(
        select(Account.postal_code)
        .join(Assignment, Assignment.account_id == Account.id)
        .where(Assignment.status == "assigned")
    ).scalars()
    return set(rows)


def test_equals_keeps_leading_zeros(clean_app):
    assert matched("postal_code", "equals", ["02139"]) == {"02139"}


def test_prefix_matches_text_prefixes(clean_app):
    assert matched("postal_code", "starts_with", ["021"]) == {"02139", "021", "0213A"}


def test_range_compares_codes_of_the_same_length_only(clean_app):
    spec = parse_condition("postal_code", "between", "02000..02999")
    assert matched("postal_code", "between", spec.value) == {"02139", "02999", "0213A"}


def test_prefix_with_like_wildcards_is_literal(clean_app):
    assert matched("postal_code", "starts_with", ["0_1"]) == set()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("02000-02999", "low..high"),
        ("0200..02999", "same length"),
        ("02999..02000", "starts after it ends"),
        ("..02999", "both ends"),
    ],
)
def test_bad_ranges_are_refused_with_a_reason(raw, message):
    with pytest.raises(ConditionError, match=message):
        parse_condition("postal_code", "between", raw)


def test_revenue_bounds_refuse_decimal_commas():
    with pytest.raises(ConditionError, match="thousands separators"):
        parse_condition("annual_revenue", "between", "1.234,50..")
    assert parse_condition("annual_revenue", "between", "1000..").value == {
        "low": "1000",
        "high": None,
    }


@pytest.mark.parametrize("raw", ["nan..inf", "NaN..", "..Infinity", "-5..1e400"])
def test_revenue_bounds_must_be_plain_amounts(raw):
    with pytest.raises(ConditionError, match=r"not an amount|not a number"):
        parse_condition("annual_revenue", "between", raw)


def test_list_values_refuse_control_characters():
    with pytest.raises(ConditionError, match="control characters"):
        parse_condition("postal_code", "equals", "\x00abc")
