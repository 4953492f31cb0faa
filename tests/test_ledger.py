"""The rewards ledger on constructed cases, on both databases."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from portal.extensions import db
from portal.models import utc_now
from portal.runs import Run
from programs import eligibility, tiers
from programs.models import Standing
from rewards import ledger
from rewards.jobs import after_new_sales, start_rewards_run
from rewards.models import (
    Claim,
    LedgerEntry,
    RewardPlan,
    RewardRule,
)
from tests.factories import make_account, make_org, make_region, make_territory
from tests.program_factories import (
    add_program_rule,
    add_sale,
    add_tier,
    assign,
    make_program,
)


def noop(_percent: int, _message: str) -> None:
    """Progress reports are not under test here."""


def run(full: bool = True) -> dict:
    return ledger.recompute(0, noop, full=full)


def totals() -> dict[str, Decimal]:
    """Organisation name -> sum of its ledger points."""
    rows = db.session.execute(
        select(LedgerEntry.organisation_id, func.sum(LedgerEntry.points)).group_by(
            LedgerEntry.organisation_id
        )
    ).all()
    names = {org.id: org.name for org in (WORLD["acme"], WORLD["bolt"])}
    return {
        names[org]: Decimal(str(total)).quantize(Decimal("0.01")) for org, total in rows
    }


def entries() -> list[tuple[str, Decimal, str]]:
    rows = db.session.scalars(select(LedgerEntry).order_by(LedgerEntry.id)).all()
    return [(row.key, row.points, row.source) for row in rows]


WORLD: dict = {}


@pytest.fixture
def world(clean_app):
    """Acme owns Coast, Bolt owns Harbour; a Growth incentive targets both."""
    region = make_region("West")
    acme, bolt = make_org("Acme"), make_org("Bolt")
    coast = make_territory(region, "Coast", partner=acme)
    harbour = make_territory(region, "Harbour", partner=bolt)
    shop = make_account("Shop", segment="Consumer")
    office = make_account("Office", segment="Corporate")
    assign(shop, coast)
    assign(office, harbour)
    program = make_program(
        "Growth",
        kind="incentive",
        kpi="sales_sum",
        starts_on=date(2024, 1, 1),
        ends_on=date(2099, 12, 31),
    )
    add_program_rule(program, ("region", "in", [region.id]))
    db.session.add(RewardPlan(program=program, points_per_unit=Decimal("2")))
    db.session.commit()
    WORLD.update(
        acme=acme,
        bolt=bolt,
        coast=coast,
        harbour=harbour,
        shop=shop,
        office=office,
        program=program,
    )
    return WORLD


def settle() -> None:
    """Eligibility and standings as a programs run would leave them."""
    eligibility.write_eligibility(None, None)
    tiers.refresh_standings(None)


def test_each_credited_sale_earns_its_points_once(world):
    add_sale(world["shop"], date(2024, 3, 1), "100.00")
    add_sale(world["office"], date(2024, 3, 2), "40.125")
    add_sale(world["office"], date(2023, 12, 31), "999")  # before the program
    db.session.commit()
    settle()

    first = run()
    again = run()

    assert totals() == {"Acme": Decimal("200.00"), "Bolt": Decimal("80.25")}
    assert first["entries_written"] == 2
    assert again["entries_written"] == 0
    assert len(entries()) == 2


def test_half_a_cent_rounds_up_on_both_databases(world):
    # 14.62 x 1.25 = 18.275 exactly; binary floats hold a hair less.
    db.session.execute(update(RewardPlan).values(points_per_unit=Decimal("1.25")))
    add_sale(world["shop"], date(2024, 3, 1), "14.62")
    db.session.commit()
    settle()

    run()

    assert totals() == {"Acme": Decimal("18.28")}


def test_multipliers_and_the_tier_price_a_sale(world):
    program = world["program"]
    add_tier(program, "Silver", 100, points_multiplier=Decimal("1.5"))
    db.session.add_all(
        [
            RewardRule(
                program=program,
                name="Tech",
                dimension="category",
                match_value="technology",
                multiplier=Decimal("2"),
            ),
            RewardRule(
                program=program,
                name="Coast boost",
                dimension="territory",
                match_value=str(world["coast"].id),
                multiplier=Decimal("1.1"),
            ),
        ]
    )
    add_sale(world["shop"], date(2024, 3, 1), "100", category=" Technology ")
    add_sale(world["office"], date(2024, 3, 1), "50", category="Furniture")
    db.session.commit()
    settle()

    run()

    # Acme: 100 x 2 pts x 2 (Technology) x 1.1 (Coast) x 1.5 (Silver) = 660.
    # Bolt: 50 x 2 = 100, under Silver's threshold of 100 sales.
    assert totals() == {"Acme": Decimal("660.00"), "Bolt": Decimal("100.00")}
    entry = db.session.scalars(
        select(LedgerEntry).where(LedgerEntry.organisation_id == world["acme"].id)
    ).one()
    assert entry.category_rule.name == "Tech"
    assert entry.territory_rule.name == "Coast boost"
    assert entry.tier.name == "Silver"
    assert entry.priced_points == Decimal("660.00")


def test_a_changed_rule_appends_the_difference(world):
    add_sale(world["shop"], date(2024, 3, 1), "100")
    db.session.commit()
    settle()
    run()

    db.session.execute(update(RewardPlan).values(points_per_unit=Decimal("3")))
    db.session.commit()
    run()
    run()

    assert [(key.split("#")[1], points) for key, points, _ in entries()] == [
        ("1", Decimal("200.00")),
        ("2", Decimal("100.00")),
    ]
    assert totals() == {"Acme": Decimal("300.00")}


def test_a_cap_per_month_stops_points_at_the_cap(world):
    db.session.execute(
        update(RewardPlan).values(cap_points=Decimal("250"), cap_period="month")
    )
    add_sale(world["shop"], date(2024, 3, 1), "100")  # 200
    add_sale(world["shop"], date(2024, 3, 2), "100")  # 50 of 200
    add_sale(world["shop"], date(2024, 3, 3), "100")  # 0
    add_sale(world["shop"], date(2024, 4, 1), "10")  # a new month: 20
    db.session.commit()
    settle()

    run()

    points = sorted(
        (row.earned_on, row.points, row.priced_points)
        for row in db.session.scalars(select(LedgerEntry))
    )
    assert points == [
        (date(2024, 3, 1), Decimal("200.00"), Decimal("200.00")),
        (date(2024, 3, 2), Decimal("50.00"), Decimal("200.00")),
        (date(2024, 4, 1), Decimal("20.00"), Decimal("20.00")),
    ]


def test_tier_bonuses_are_paid_once_for_each_tier_reached(world):
    program = world["program"]
    add_tier(program, "Silver", 100, bonus_points=500)
    add_tier(program, "Gold", 200, bonus_points=1000)
    add_tier(program, "Platinum", 900, bonus_points=5000)
    add_sale(world["shop"], date(2024, 3, 1), "250")
    db.session.commit()
    settle()

    run()
    run()

    bonuses = sorted(
        (row.tier.name, row.points)
        for row in db.session.scalars(
            select(LedgerEntry).where(LedgerEntry.source == "tier_bonus")
        )
    )
    assert bonuses == [("Gold", Decimal("1000.00")), ("Silver", Decimal("500.00"))]
    # Earned the day a run found them reached, within the program's period.
    days = set(
        db.session.scalars(
            select(LedgerEntry.earned_on).where(LedgerEntry.source == "tier_bonus")
        )
    )
    assert days == {utc_now().date()}


def test_approved_and_paid_points_are_final(world):
    add_tier(
        world["program"],
        "Silver",
        100,
        points_multiplier=Decimal("2"),
        bonus_points=500,
    )
    approved = add_sale(world["shop"], date(2024, 3, 1), "1000")
    paid = add_sale(world["office"], date(2024, 3, 1), "20")
    db.session.commit()
    settle()
    run()
    # Acme: 1,000 x 2 x 2 (Silver) = 4,000 and Silver's bonus of 500; Bolt: 40.
    assert totals() == {"Acme": Decimal("4500.00"), "Bolt": Decimal("40.00")}
    db.session.execute(
        update(LedgerEntry)
        .where(LedgerEntry.sales_line_id == approved.id)
        .values(status="approved")
    )
    db.session.execute(
        update(LedgerEntry)
        .where(LedgerEntry.sales_line_id == paid.id)
        .values(status="paid")
    )
    add_sale(world["shop"], date(2024, 3, 2), "10")
    db.session.commit()
    settle()
    run()
    assert totals() == {"Acme": Decimal("4540.00"), "Bolt": Decimal("40.00")}

    # The plan halves its rate and Acme leaves the program: the pending sale
    # and the pending bonus go back, the approved and paid points stay.
    db.session.execute(update(RewardPlan).values(points_per_unit=Decimal("1")))
    world["program"].rules[0].conditions[0].value = [-1]
    db.session.commit()
    settle()
    written = run()

    assert totals() == {"Acme": Decimal("4010.00"), "Bolt": Decimal("40.00")}
    taken_back = db.session.scalars(
        select(LedgerEntry.points).where(LedgerEntry.points < 0)
    ).all()
    # The pending sale is repriced without Silver (10 x 1 = 10 of its 40).
    assert sorted(taken_back) == [Decimal("-500.00"), Decimal("-30.00")]
    assert written["entries_written"] == 2
    assert run()["entries_written"] == 0


def test_only_approved_claims_earn(world):
    today = date(2024, 5, 1)
    common = {
        "organisation_id": world["acme"].id,
        "customer_name": "Walk-in",
        "postal_code": "00001",
        "sale_date": today,
        "territory_id": world["coast"].id,
    }
    db.session.add_all(
        [
            Claim(
                invoice_number="A-1", amount=Decimal("10"), status="approved", **common
            ),
            Claim(
                invoice_number="A-2", amount=Decimal("20"), status="submitted", **common
            ),
            Claim(
                invoice_number="A-3", amount=Decimal("40"), status="flagged", **common
            ),
        ]
    )
    db.session.commit()
    settle()

    run()
    assert totals() == {"Acme": Decimal("20.00")}

    db.session.execute(
        update(Claim).where(Claim.invoice_number == "A-1").values(status="rejected")
    )
    db.session.commit()
    run()

    # Rejected after approval: the points are taken back by an entry of their own.
    assert totals() == {"Acme": Decimal("0.00")}
    assert [points for _, points, source in entries() if source == "claim"] == [
        Decimal("20.00"),
        Decimal("-20.00"),
    ]


def test_a_realignment_leaves_earlier_sales_with_the_old_owner(world):
    add_sale(world["shop"], date(2024, 3, 1), "100")
    db.session.commit()
    settle()
    run()

    # Coast passes from Acme to Bolt; the history records the change today.
    world["coast"].partner = world["bolt"]
    db.session.commit()
    later = utc_now().date() + timedelta(days=1)
    add_sale(world["shop"], later, "10")
    db.session.commit()
    settle()
    run()

    assert totals() == {"Acme": Decimal("200.00"), "Bolt": Decimal("20.00")}


def test_new_sales_move_the_tier_first_and_then_the_points(world):
    add_tier(world["program"], "Silver", 100, points_multiplier=Decimal("1.5"))
    add_sale(world["shop"], date(2024, 3, 1), "60")
    db.session.commit()

    first = after_new_sales(None)
    assert first.status == "succeeded", first.error
    assert totals() == {"Acme": Decimal("120.00")}  # 60 x 2 points, no tier yet

    add_sale(world["shop"], date(2024, 3, 2), "50")
    db.session.commit()
    after_new_sales(None)

    # 110 in sales reaches Silver: both sales are priced at x1.5 now.
    assert totals() == {"Acme": Decimal("330.00")}
    runs = db.session.scalars(select(Run.kind).order_by(Run.id)).all()
    assert runs == ["program_eligibility", "rewards"] * 2


def test_an_incremental_run_prices_new_lines_like_a_full_one(world):
    add_sale(world["shop"], date(2024, 3, 1), "100")
    db.session.commit()
    settle()
    run_record, _created = start_rewards_run(full=True)
    assert run_record.status == "succeeded", run_record.error

    add_sale(world["office"], date(2024, 3, 5), "30")
    db.session.commit()
    settle()
    incremental, _created = start_rewards_run(full=False)
    assert incremental.status == "succeeded", incremental.error
    assert incremental.counts["mode"] == "incremental"
    assert incremental.counts["entries_written"] == 1
    after_incremental = entries()

    full, _created = start_rewards_run(full=True)

    assert full.counts["entries_written"] == 0
    assert entries() == after_incremental


def test_pending_points_are_approved_after_the_window_and_expire_unpaid(world):
    add_sale(world["shop"], date(2024, 3, 1), "100")
    db.session.execute(update(RewardPlan).values(approval_days=30, expiry_days=90))
    db.session.commit()
    settle()
    run()
    assert [row.status for row in db.session.scalars(select(LedgerEntry))] == [
        "pending"
    ]

    # Forty days later the window has passed; a hundred days later, expiry.
    db.session.execute(
        update(LedgerEntry).values(created_at_utc=utc_now() - timedelta(days=40))
    )
    db.session.commit()
    counts = run()
    assert counts["approved"] == 1
    assert counts["expired"] == 0

    db.session.execute(
        update(LedgerEntry).values(created_at_utc=utc_now() - timedelta(days=100))
    )
    db.session.commit()
    counts = run()
    again = run()

    assert counts["expired"] == 1
    assert again["expired"] == 0
    assert totals() == {"Acme": Decimal("0.00")}
    expiry = db.session.scalars(
        select(LedgerEntry).where(LedgerEntry.source == "expiry")
    ).one()
    assert expiry.points == Decimal("-200.00")
    assert expiry.status == "approved"


def test_a_partner_leaving_the_program_keeps_what_it_earned_there(world):
    add_sale(world["office"], date(2024, 3, 1), "10")
    db.session.commit()
    settle()
    run()
    world["program"].rules[0].conditions[0].value = [-1]
    add_sale(world["office"], date(2024, 3, 2), "1000")
    db.session.commit()
    settle()

    run()

    # Out of the program: the earlier sale keeps its points, the new one earns none.
    assert totals() == {"Bolt": Decimal("20.00")}
    standings = db.session.scalar(select(func.count()).select_from(Standing))
    assert standings == 0


def test_four_runs_one_after_another_write_what_one_writes(world):
    for day in range(1, 20):
        add_sale(world["shop"], date(2024, 2, day), str(day * 3))
    db.session.commit()
    settle()

    run()
    once = entries()
    for _ in range(3):
        run()

    assert entries() == once
    per_source = defaultdict(int)
    for key, _points, _source in once:
        per_source[key.split("#")[0]] += 1
    assert set(per_source.values()) == {1}


def test_an_account_moved_by_a_rule_change_keeps_its_earlier_sales_where_they_were(
    clean_app,
):
    from territory_rules.jobs import start_assignment_run
    from territory_rules.models import AccountPlacement
    from tests.factories import add_rule

    region = make_region("North")
    acme, bolt = make_org("Acme"), make_org("Bolt")
    lakes = make_territory(region, "Lakes", partner=acme)
    hills = make_territory(region, "Hills", partner=bolt)
    add_rule(lakes, 10, ("state", "in", ["MN"]), name="Minnesota")
    shop = make_account("Shop", state="MN")
    program = make_program(
        "Growth",
        kind="incentive",
        kpi="sales_sum",
        starts_on=date(2024, 1, 1),
        ends_on=date(2099, 12, 31),
    )
    add_program_rule(program, ("region", "in", [region.id]))
    db.session.add(RewardPlan(program=program, points_per_unit=Decimal("1")))
    add_sale(shop, date(2024, 3, 1), "100")
    db.session.commit()
    assert start_assignment_run()[0].status == "succeeded"

    # The rule moves to Hills; the next run moves the account from today on.
    lakes.rules[0].territory = hills
    db.session.commit()
    assert start_assignment_run()[0].status == "succeeded"
    add_sale(shop, utc_now().date() + timedelta(days=1), "7")
    db.session.commit()
    settle()
    run()

    placements = sorted(
        (row.territory_id, row.valid_from is None, row.valid_to is None)
        for row in db.session.scalars(select(AccountPlacement))
    )
    assert placements == sorted([(lakes.id, True, False), (hills.id, False, True)])
    points = dict(
        db.session.execute(
            select(LedgerEntry.organisation_id, func.sum(LedgerEntry.points)).group_by(
                LedgerEntry.organisation_id
            )
        ).all()
    )
    assert {k: Decimal(str(v)) for k, v in points.items()} == {
        acme.id: Decimal("100"),
        bolt.id: Decimal("7"),
    }
