"""Program targeting and stored eligibility on constructed cases, on both databases."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import delete, select

from portal.extensions import db
from programs import eligibility
from programs.models import Eligibility, Standing
from programs.targeting import parse_target, preview
from territory_rules.conditions import ConditionError
from territory_rules.models import Territory
from tests.factories import make_account, make_org, make_region, make_territory
from tests.program_factories import (
    add_program_rule,
    add_sale,
    add_tier,
    assign,
    make_program,
)


def members(program) -> set[str]:
    """Names of the organisations stored as eligible for ``program``."""
    rows = db.session.scalars(
        select(Eligibility).where(Eligibility.program_id == program.id)
    ).all()
    return {row.organisation.name for row in rows}


@pytest.fixture
def world(clean_app):
    """Two regions; Acme owns two territories, Bolt one, Crate none."""
    west, east = make_region("West"), make_region("East")
    acme = make_org("Acme", partner_type="reseller")
    bolt = make_org("Bolt", partner_type="distributor")
    crate = make_org("Crate", partner_type="referral")
    coast = make_territory(west, "Coast", partner=acme)
    hills = make_territory(west, "Hills", partner=acme)
    harbour = make_territory(east, "Harbour", partner=bolt)
    big, small = make_account("Big"), make_account("Small")
    assign(big, coast)
    assign(small, harbour)
    add_sale(big, date(2024, 5, 1), "90000")
    add_sale(big, date(2024, 6, 1), "20000")
    add_sale(small, date(2024, 6, 1), "5000")
    # Older than a year before the latest sale: not part of the potential.
    add_sale(small, date(2023, 1, 1), "999999")
    db.session.commit()
    return {
        "orgs": (acme, bolt, crate),
        "territories": (coast, hills, harbour),
        "regions": (west, east),
    }


def test_rules_join_with_and_inside_and_or_across(world):
    program = make_program("Mixed")
    add_program_rule(
        program,
        ("region", "in", [world["regions"][0].id]),
        ("partner_type", "in", ["distributor"]),
        name="West distributors",
    )
    add_program_rule(program, ("partner_type", "in", ["Referral"]), name="Referrals")
    db.session.commit()

    eligibility.write_eligibility(None, None)

    # Nobody is both in West and a distributor; Crate is a referral partner.
    assert members(program) == {"Crate"}


def test_territory_and_region_conditions_name_the_matching_territory(world):
    coast, hills, harbour = world["territories"]
    program = make_program("By place")
    add_program_rule(program, ("territory", "in", [harbour.id]), name="Harbour")
    add_program_rule(
        program, ("region", "in", [world["regions"][0].id]), name="All of West"
    )
    db.session.commit()

    eligibility.write_eligibility(None, None)

    rows = db.session.execute(
        select(Eligibility.organisation_id, Eligibility.territory_id).where(
            Eligibility.program_id == program.id
        )
    ).all()
    acme, bolt, _crate = world["orgs"]
    assert sorted(rows) == sorted(
        [(acme.id, coast.id), (acme.id, hills.id), (bolt.id, harbour.id)]
    )
    reasons = eligibility.reasons_for(acme.id)[program.id]
    assert reasons == [
        "Rule “All of West” for territory Coast: region is West",
        "Rule “All of West” for territory Hills: region is West",
    ]


def test_a_parent_territory_stands_for_its_children(world):
    coast = world["territories"][0]
    parent = make_territory(world["regions"][0], "Pacific")
    coast.parent = parent
    program = make_program("Pacific programme")
    add_program_rule(program, ("territory", "in", [parent.id]))
    db.session.commit()

    eligibility.write_eligibility(None, None)

    assert members(program) == {"Acme"}


def test_revenue_potential_counts_the_last_year_of_sales(world):
    high = make_program("High potential")
    add_program_rule(
        high,
        ("territory_potential", "between", {"low": "100000", "high": None}),
        name="Big territories",
    )
    low = make_program("Low potential")
    add_program_rule(
        low, ("territory_potential", "between", {"low": None, "high": "99999.99"})
    )
    db.session.commit()

    eligibility.write_eligibility(None, None)

    # Coast sold 110,000 in the year; Harbour 5,000 (its 999,999 is too old);
    # Hills sold nothing, and an organisation without territory has no potential.
    assert members(high) == {"Acme"}
    assert members(low) == {"Acme", "Bolt"}
    acme = world["orgs"][0]
    assert eligibility.reasons_for(acme.id)[high.id] == [
        "Rule “Big territories” for territory Coast: territory revenue potential "
        "at least $100,000; its potential is $110,000"
    ]


def test_exactly_at_the_bound_is_inside(world):
    program = make_program("Boundary")
    add_program_rule(
        program, ("territory_potential", "between", {"low": "110000", "high": None})
    )
    above = make_program("Above")
    add_program_rule(
        above, ("territory_potential", "between", {"low": "110000.01", "high": None})
    )
    db.session.commit()

    eligibility.write_eligibility(None, None)

    assert members(program) == {"Acme"}
    assert members(above) == set()


def test_onboarding_status_and_tier_conditions(world):
    acme, bolt, _crate = world["orgs"]
    bolt.onboarding_status = "complete"
    incentive = make_program("Ladder", kind="incentive", kpi="sales_sum")
    gold = add_tier(incentive, "Gold", 1000)
    db.session.add(
        Standing(program_id=incentive.id, organisation_id=acme.id, kpi_value=5000)
    )
    db.session.flush()
    db.session.execute(
        Standing.__table__.update()
        .where(Standing.organisation_id == acme.id)
        .values(tier_id=gold.id)
    )
    onboarded = make_program("Onboarded")
    add_program_rule(onboarded, ("onboarding_status", "in", ["complete"]))
    golden = make_program("Golden")
    add_program_rule(golden, ("tier", "in", ["gold"]))
    db.session.commit()

    eligibility.write_eligibility(None, None)

    assert members(onboarded) == {"Bolt"}
    assert members(golden) == {"Acme"}


def test_ended_and_archived_programs_keep_their_history(world):
    today = eligibility.today_utc()
    ended = make_program("Last year", ends_on=today - timedelta(days=1))
    archived = make_program("Archived", status="archived")
    for program in (ended, archived):
        add_program_rule(program, ("partner_type", "in", ["reseller"]))
    db.session.commit()
    eligibility.write_eligibility(None, None)
    assert members(ended) == members(archived) == set()

    # Rows written while they were open stay as they were.
    acme = world["orgs"][0]
    for program in (ended, archived):
        db.session.add(
            Eligibility(
                program_id=program.id,
                organisation_id=acme.id,
                rule_id=program.rules[0].id,
            )
        )
    world["orgs"][0].partner_type = "distributor"
    db.session.commit()

    eligibility.write_eligibility(None, None)

    assert members(ended) == members(archived) == {"Acme"}


def test_a_deleted_territory_matches_nothing_and_says_so(world):
    harbour = world["territories"][2]
    program = make_program("Harbour only")
    add_program_rule(program, ("territory", "in", [harbour.id]), name="Harbour")
    db.session.commit()
    eligibility.write_eligibility(None, None)
    assert members(program) == {"Bolt"}
    bolt = world["orgs"][1]
    assert eligibility.reasons_for(bolt.id)[program.id] == [
        "Rule “Harbour” for territory Harbour: territory is Harbour"
    ]

    db.session.execute(delete(Territory).where(Territory.id == harbour.id))
    db.session.commit()
    eligibility.write_eligibility(None, None)

    assert members(program) == set()
    from programs.targeting import describe_target

    assert describe_target("territory", "in", [harbour.id]) == (
        f"territory is a deleted territory (#{harbour.id})"
    )


def test_preview_agrees_with_the_stored_result(world):
    specs = [
        [parse_target("region", "in", "west")],
        [parse_target("partner_type", "in", "distributor, referral")],
    ]
    program = make_program("Preview")
    add_program_rule(program, (specs[0][0].field, "in", specs[0][0].value))
    add_program_rule(program, (specs[1][0].field, "in", specs[1][0].value))
    db.session.commit()

    targets = preview(specs)
    eligibility.write_eligibility(None, None)

    assert [t.organisation_name for t in targets] == ["Acme", "Bolt", "Crate"]
    assert {t.organisation_name for t in targets} == members(program)
    assert targets[0].reasons == [
        "rule 1 for territory Coast: region is West",
        "rule 1 for territory Hills: region is West",
    ]


@pytest.mark.parametrize(
    ("field", "raw", "message"),
    [
        ("territory", "Atlantis", "No territory is named 'Atlantis'"),
        ("region", "", "Enter at least one value"),
        ("onboarding_status", "finished", "'finished' is not an onboarding status"),
        ("tier", "Platinum", "No incentive program has a tier named 'Platinum'"),
        ("territory_potential", "1.234,50..", "without thousands separators"),
    ],
)
def test_bad_conditions_say_what_to_fix(world, field, raw, message):
    operator = "between" if field == "territory_potential" else "in"
    with pytest.raises(ConditionError, match=message):
        parse_target(field, operator, raw)


def test_names_are_matched_without_regard_to_case(world):
    spec = parse_target("territory", "in", " coast , HILLS")
    coast, hills, _ = world["territories"]
    assert spec.value == sorted([coast.id, hills.id])
    assert parse_target("onboarding_status", "in", "In progress").value == [
        "in_progress"
    ]


def test_a_new_territory_owner_takes_the_program_over_at_once(world):
    from portal.models import Role
    from territory_rules.editing import TerritoryInput, update_territory
    from tests.factories import make_user

    harbour = world["territories"][2]
    acme = world["orgs"][0]
    program = make_program("Harbour campaign")
    add_program_rule(program, ("territory", "in", [harbour.id]))
    admin = make_user(Role.ADMIN)
    db.session.commit()
    eligibility.write_eligibility(None, None)
    assert members(program) == {"Bolt"}

    update_territory(
        harbour,
        TerritoryInput(harbour.name, harbour.region_id, partner_id=acme.id),
        admin,
    )

    # No REDIS_URL in tests: the run the change requested ran in-process.
    assert members(program) == {"Acme"}


def test_an_admin_rule_change_moves_the_program_between_partners(world, client):
    from portal.models import Role
    from tests.factories import PASSWORD, make_user

    acme, bolt, _crate = world["orgs"]
    make_user(Role.ADMIN, email="admin@example.test")
    make_user(Role.PARTNER, organisation=acme, email="acme@example.test")
    make_user(Role.PARTNER, organisation=bolt, email="bolt@example.test")
    program = make_program("Regional push")
    rule = add_program_rule(program, ("region", "in", [world["regions"][0].id]))
    db.session.commit()
    eligibility.write_eligibility(None, None)

    def programs_seen_by(email: str) -> bool:
        client.post("/auth/sign-in", data={"email": email, "password": PASSWORD})
        page = client.get("/my/programs").text
        client.post("/auth/sign-out")
        return "Regional push" in page

    assert programs_seen_by("acme@example.test")
    assert not programs_seen_by("bolt@example.test")

    client.post(
        "/auth/sign-in", data={"email": "admin@example.test", "password": PASSWORD}
    )
    response = client.post(
        f"/admin/programs/{program.id}/rules/{rule.id}/edit",
        data={
            "name": "East only",
            "field": "region",
            "operator": "in",
            "value": "East",
            "version": str(program.version),
        },
    )
    client.post("/auth/sign-out")

    assert response.status_code == 302
    # The save requested a programs run; without Redis it ran in-process.
    assert not programs_seen_by("acme@example.test")
    assert programs_seen_by("bolt@example.test")
