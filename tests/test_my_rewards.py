"""My rewards, as a signed-in partner: balances, standings, the ledger, a sale, CSV."""

from __future__ import annotations

import csv
import functools
import html
import io
import itertools
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from portal.extensions import db
from portal.models import PartnerOrganisation, Role, utc_now
from programs.models import Eligibility, Program, Tier
from rewards import statements
from rewards.models import Claim, LedgerEntry, Payout, RewardPlan, RewardRule
from territory_rules.models import SalesLine
from tests.conftest import AuthActions
from tests.factories import (
    make_account,
    make_org,
    make_region,
    make_territory,
    make_user,
)
from tests.program_factories import (
    add_program_rule,
    add_sale,
    add_tier,
    assign,
    make_program,
)

HTMX = {"HX-Request": "true"}
HYPERLINK = '=HYPERLINK("http://evil.test","click")'
TIMES = "\u00d7"
SALE_PRICING = (
    f"$1,200.00 {TIMES} 1 {TIMES} 1.8 = 2,160 points; multiplier from category rule "
    f"“{HYPERLINK}”, tier Silver ({TIMES}1.2)."
)
_numbers = itertools.count(1)


@pytest.fixture(autouse=True)
def quick_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Full-strength hashing costs a fifth of a second per user; keep tests quick."""
    quick = functools.partial(generate_password_hash, method="pbkdf2:sha256:1000")
    monkeypatch.setattr("portal.models.generate_password_hash", quick)


# Building ledgers ------------------------------------------------------------


def make_eligible(program: Program, organisation: PartnerOrganisation) -> None:
    rule = add_program_rule(program, ("partner_type", "in", ["reseller"]))
    db.session.add(
        Eligibility(
            program_id=program.id, organisation_id=organisation.id, rule_id=rule.id
        )
    )
    db.session.flush()


def add_entry(
    organisation: PartnerOrganisation,
    program: Program | None,
    points: str,
    source: str = "adjustment",
    status: str = "approved",
    earned_on: date = date(2026, 1, 5),
    source_key: str | None = None,
    **fields: Any,
) -> LedgerEntry:
    """An entry written as the ledger would, keyed ``<source key>#<n>``."""
    source_key = source_key or f"{source}:{next(_numbers)}:o{organisation.id}"
    written = db.session.scalar(
        select(func.count()).where(LedgerEntry.source_key == source_key)
    )
    entry = LedgerEntry(
        key=f"{source_key}#{written + 1}",
        source_key=source_key,
        organisation_id=organisation.id,
        program_id=program.id if program else None,
        source=source,
        points=Decimal(points),
        status=status,
        earned_on=earned_on,
        **fields,
    )
    db.session.add(entry)
    db.session.flush()
    return entry


def sale_key(line: SalesLine, program: Program, org: PartnerOrganisation) -> str:
    return f"sale:{line.id}:p{program.id}:o{org.id}"


@dataclass
class World:
    acme: PartnerOrganisation
    globex: PartnerOrganisation
    growth: Program
    silver: Tier
    line: SalesLine
    capped_line: SalesLine
    unpriced_line: SalesLine
    globex_line: SalesLine
    claim: Claim
    entries: dict[str, LedgerEntry]


@pytest.fixture
def world(clean_app: Flask) -> World:
    """Acme and Globex, each with a territory, sales and ledger entries.

    Acme's ledger (newest first): an adjustment of -12.50 (approved), a claim
    of 300 (approved), a capped sale of 50 (paid), a sale repriced from 2,160
    down by 360 (approved, then pending), a tier bonus of 500 (pending).
    """
    acme, globex = make_org("Acme Resellers"), make_org("Globex Partners")
    make_user(Role.PARTNER, acme, email="alice@example.test")
    make_user(Role.PARTNER, globex, email="globex@example.test")
    make_user(Role.MANAGER, email="manager@example.test")
    make_user(Role.ADMIN, email="admin@example.test")
    region = make_region("West")
    pacific = make_territory(region, "Pacific", partner=acme)
    atlantic = make_territory(region, "Atlantic", partner=globex)
    diner = make_account("Pacific Diner", postal_code="98101", segment="Corporate")
    harbor = make_account("Harbor Cafe", postal_code="02139")
    assign(diner, pacific)
    assign(harbor, atlantic)

    growth = make_program("Growth", kind="incentive", kpi="sales_sum")
    silver = add_tier(
        growth, "Silver", 1000, points_multiplier=Decimal("1.2"), bonus_points=500
    )
    add_tier(growth, "Gold", 5000)
    make_eligible(growth, acme)
    make_eligible(growth, globex)
    db.session.add(RewardPlan(program_id=growth.id, approval_days=30, expiry_days=365))
    category_rule = RewardRule(
        program_id=growth.id,
        name=HYPERLINK,
        dimension="category",
        match_value="technology",
        multiplier=Decimal("1.5"),
    )
    db.session.add(category_rule)

    line = add_sale(diner, date(2026, 1, 10), 1200, category="Technology")
    line.product = "Standing desk"
    capped_line = add_sale(diner, date(2026, 2, 1), 80)
    capped_line.external_line_id = "@L-capped"
    unpriced_line = add_sale(diner, date(2026, 2, 2), 40)
    globex_line = add_sale(harbor, date(2026, 1, 20), 500)
    claim = Claim(
        organisation_id=acme.id,
        customer_name="Walk-in buyer",
        postal_code="98101",
        amount=Decimal(300),
        sale_date=date(2026, 2, 15),
        invoice_number="+44 INV-7",
        status="approved",
    )
    payout = Payout(note="January")
    db.session.add_all([claim, payout])
    db.session.flush()

    now = utc_now()
    entries = {
        "sale": add_entry(
            acme,
            growth,
            "2160.00",
            source="sale",
            earned_on=line.order_date,
            source_key=sale_key(line, growth, acme),
            sales_line_id=line.id,
            amount=Decimal(1200),
            rate=Decimal(1),
            multiplier=Decimal("1.8"),
            priced_points=Decimal(2160),
            category_rule_id=category_rule.id,
            tier_id=silver.id,
            created_at_utc=now - timedelta(days=40),
        ),
        "repriced": add_entry(
            acme,
            growth,
            "-360.00",
            source="sale",
            status="pending",
            earned_on=line.order_date,
            source_key=sale_key(line, growth, acme),
            sales_line_id=line.id,
            amount=Decimal(1200),
            rate=Decimal(1),
            multiplier=Decimal("1.5"),
            priced_points=Decimal(1800),
            category_rule_id=category_rule.id,
            created_at_utc=now,
        ),
        "capped": add_entry(
            acme,
            growth,
            "50.00",
            source="sale",
            status="paid",
            earned_on=capped_line.order_date,
            source_key=sale_key(capped_line, growth, acme),
            sales_line_id=capped_line.id,
            amount=Decimal(80),
            rate=Decimal(1),
            multiplier=Decimal(1),
            priced_points=Decimal(80),
            payout_id=payout.id,
        ),
        "claim": add_entry(
            acme,
            growth,
            "300.00",
            source="claim",
            earned_on=claim.sale_date,
            claim_id=claim.id,
            amount=Decimal(300),
            rate=Decimal(1),
            multiplier=Decimal(1),
            priced_points=Decimal(300),
        ),
        "bonus": add_entry(
            acme,
            growth,
            "500.00",
            source="tier_bonus",
            status="pending",
            earned_on=growth.starts_on,
            tier_id=silver.id,
            priced_points=Decimal(500),
        ),
        "adjustment": add_entry(
            acme, growth, "-12.50", earned_on=date(2026, 3, 1), reason=HYPERLINK
        ),
        "globex": add_entry(
            globex,
            growth,
            "999.00",
            source="sale",
            earned_on=globex_line.order_date,
            source_key=sale_key(globex_line, growth, globex),
            sales_line_id=globex_line.id,
            reason="Globex's own entry",
        ),
    }
    db.session.commit()
    return World(
        acme=acme,
        globex=globex,
        growth=growth,
        silver=silver,
        line=line,
        capped_line=capped_line,
        unpriced_line=unpriced_line,
        globex_line=globex_line,
        claim=claim,
        entries=entries,
    )


@pytest.fixture
def alice(client: FlaskClient, auth: AuthActions, world: World) -> FlaskClient:
    auth.sign_in("alice@example.test")
    return client


def page_text(response: Any) -> str:
    """The response as text with entities decoded and whitespace collapsed."""
    return re.sub(r"\s+", " ", html.unescape(response.get_data(as_text=True)))


def stat(response: Any, name: str) -> str:
    found = re.search(rf'id="{name}">([^<]*)<', response.get_data(as_text=True))
    assert found, f"no {name} on the page"
    return html.unescape(found.group(1)).strip()


def entry_ids(response: Any) -> list[int]:
    return [int(i) for i in re.findall(r'id="entry-(\d+)"', response.get_data(True))]


def csv_rows(response: Any) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


# Summary --------------------------------------------------------------------


def test_summary_cards_sum_the_organisations_points_by_status(
    alice: FlaskClient, world: World
) -> None:
    response = alice.get("/my/rewards")

    assert response.status_code == 200
    # Pending: -360 + 500. Available: 2,160 + 300 - 12.50. Paid: 50.
    assert stat(response, "points-pending") == "140"
    assert stat(response, "points-available") == "2,447.50"
    assert stat(response, "points-paid") == "50"
    assert stat(response, "points-expiring") == "0"
    assert "Nothing expires in the next 30 days" in page_text(response)


def test_standings_show_tier_progress_and_points_per_program(
    alice: FlaskClient, world: World
) -> None:
    response = alice.get("/my/rewards")
    text = page_text(response)

    row = re.search(
        rf'<tr id="standing-{world.growth.id}">(.*?)</tr>', text, flags=re.S
    )
    assert row is not None
    cells = row.group(1)
    assert f'href="/my/programs/{world.growth.id}"' in cells
    assert "Silver" in cells
    # Credited sales 1,200 + 80 + 40 and the approved claim of 300: Gold at
    # 5,000 is 32% of the way.
    assert "$1,620.00" in cells
    assert 'value="32"' in cells
    assert "$3,380.00 more in sales by 31 December 2099 reaches Gold" in cells
    # 2,160 - 360 + 50 + 300 + 500 - 12.50 earned in the program.
    assert "2,637.50" in cells


def test_expiring_soon_counts_approved_unpaid_points_due_within_30_days(
    clean_app: Flask,
) -> None:
    org, other = make_org(), make_org()
    expiring = make_program(kind="incentive")
    lasting = make_program(kind="incentive")
    no_plan = make_program(kind="incentive")
    never = RewardPlan(program_id=lasting.id)
    db.session.add_all([RewardPlan(program_id=expiring.id, expiry_days=365), never])
    db.session.flush()
    # Set after the insert: an INSERT leaves a None out, so the 365 default applies.
    never.expiry_days = None
    now = datetime(2026, 6, 1, 12, 0)
    edge = now + timedelta(days=30) - timedelta(days=365)

    def written(created: datetime, points: str, **fields: Any) -> LedgerEntry:
        return add_entry(org, expiring, points, created_at_utc=created, **fields)

    written(edge, "7.00")  # expires exactly 30 days from now: counted
    written(edge + timedelta(seconds=1), "1000.00")  # a second later: not yet
    first = written(now - timedelta(days=360), "10.00")  # due in 5 days
    written(now - timedelta(days=360), "5.00")  # the same day
    written(now - timedelta(days=360), "20.00", status="pending")
    written(now - timedelta(days=360), "30.00", payout_id=None, status="paid")
    gone = written(now - timedelta(days=364), "40.00")
    add_entry(org, expiring, "-40.00", source="expiry", expires_entry_id=gone.id)
    for program in (lasting, no_plan):
        add_entry(org, program, "50.00", created_at_utc=now - timedelta(days=400))
    add_entry(other, expiring, "60.00", created_at_utc=now - timedelta(days=360))

    balances = statements.balances(org.id, now)

    assert balances.expiring == Decimal("22.00")
    assert balances.first_expiry_on == first.created_at_utc.date() + timedelta(365)
    assert balances.first_expiry_on == date(2026, 6, 6)
    assert balances.first_expiry_points == Decimal("15.00")
    # The expiry entry takes its 40 points out of what is available.
    assert balances.available == Decimal("1122.00")
    assert balances.pending == Decimal("20.00")
    assert balances.paid == Decimal("30.00")


def test_points_past_their_expiry_but_not_yet_expired_are_expiring_soon(
    clean_app: Flask,
) -> None:
    org = make_org()
    program = make_program(kind="incentive")
    db.session.add(RewardPlan(program_id=program.id, expiry_days=30))
    now = datetime(2026, 6, 1, 12, 0)
    add_entry(org, program, "8.00", created_at_utc=now - timedelta(days=45))

    balances = statements.balances(org.id, now)

    assert balances.expiring == Decimal("8.00")
    assert balances.first_expiry_on == date(2026, 5, 17)


def test_summary_page_shows_the_first_expiry_day_and_its_points(
    alice: FlaskClient, world: World
) -> None:
    now = utc_now()
    # An hour inside the 30-day notice, and an hour outside it.
    inside = now - timedelta(days=335) - timedelta(hours=1)
    add_entry(world.acme, world.growth, "12.25", created_at_utc=inside)
    outside = now - timedelta(days=335) + timedelta(hours=1)
    add_entry(world.acme, world.growth, "30.00", created_at_utc=outside)
    db.session.commit()

    response = alice.get("/my/rewards")

    day = (inside + timedelta(days=365)).date()
    assert stat(response, "points-expiring") == "12.25"
    assert f"12.25 on {day.day} {day:%B %Y}" in page_text(response)


# The ledger -----------------------------------------------------------------


def test_ledger_lists_newest_first_with_what_priced_each_entry(
    alice: FlaskClient, world: World
) -> None:
    response = alice.get("/my/rewards")
    text = page_text(response)
    e = world.entries

    assert entry_ids(response) == [
        e[name].id
        for name in ("adjustment", "claim", "capped", "repriced", "sale", "bonus")
    ]
    assert f'href="/my/rewards/sales/{world.line.id}"' in text
    assert SALE_PRICING in text
    assert f"$1,200.00 {TIMES} 1 {TIMES} 1.5 = 1,800 points" in text
    assert "Bonus for reaching Silver." in text
    assert "+44 INV-7" in text
    assert "6 entries" in text


def test_corrections_say_repriced_and_short_entries_say_capped(
    alice: FlaskClient, world: World
) -> None:
    text = page_text(alice.get("/my/rewards"))

    def row(name: str) -> str:
        found = re.search(
            rf'<tr id="entry-{world.entries[name].id}">(.*?)</tr>', text, re.S
        )
        assert found is not None
        return found.group(1)

    assert "Repriced" in row("repriced")
    assert "Repriced" not in row("sale")
    assert "Capped" in row("capped")
    assert "The plan's cap allowed 50 of these points." in row("capped")
    # The correction brings the sale to its priced 1,800: not capped.
    assert "Capped" not in row("repriced")
    assert "Capped" not in row("sale")
    assert "payout" in row("capped")


def test_a_repriced_entry_says_it_is_the_difference_from_before(
    alice: FlaskClient, world: World
) -> None:
    text = page_text(alice.get("/my/rewards"))

    def row(name: str) -> str:
        found = re.search(
            rf'<tr id="entry-{world.entries[name].id}">(.*?)</tr>', text, re.S
        )
        assert found is not None
        return found.group(1)

    repriced, first = row("repriced"), row("sale")
    # The sale earned 2,160; repriced at 1,800, the correction is -360.
    assert (
        "This sale is now worth 1,800 points in all; this entry is the difference "
        "from the points it had earned before." in repriced
    )
    assert f"Priced now as $1,200.00 {TIMES} 1 {TIMES} 1.5 = 1,800 points" in repriced
    assert "-360" in repriced
    assert "now worth" not in first
    assert SALE_PRICING in first


def test_claim_entries_link_to_the_claim_page(alice: FlaskClient, world: World) -> None:
    text = page_text(alice.get("/my/rewards"))

    assert f'href="/my/claims/{world.claim.id}"' in text
    assert "Invoice +44 INV-7" in text


def test_the_claim_page_lists_the_points_the_claim_earned(
    alice: FlaskClient, world: World
) -> None:
    response = alice.get(f"/my/claims/{world.claim.id}")
    text = page_text(response)

    assert response.status_code == 200
    assert entry_ids(response) == [world.entries["claim"].id]
    assert "Points from this claim" in text
    assert f"$300.00 {TIMES} 1 {TIMES} 1 = 300 points" in text
    assert "the points it earned are listed below" in text
    assert "next rewards run" not in text


def test_an_approved_claim_without_points_says_when_they_come(
    alice: FlaskClient, world: World
) -> None:
    db.session.delete(world.entries["claim"])
    db.session.commit()

    response = alice.get(f"/my/claims/{world.claim.id}")
    text = page_text(response)

    assert entry_ids(response) == []
    assert "Points from this claim" not in text
    assert "no points from it yet" in text


def test_the_formula_shows_the_amount_to_the_place_it_was_priced(
    alice: FlaskClient, world: World
) -> None:
    entry = world.entries["capped"]
    entry.amount, entry.priced_points = Decimal("3.856"), Decimal("3.86")
    db.session.commit()

    text = page_text(alice.get("/my/rewards"))

    assert f"$3.856 {TIMES} 1 {TIMES} 1 = 3.86 points" in text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("source=sale", ["capped", "repriced", "sale"]),
        ("source=claim", ["claim"]),
        ("source=tier_bonus", ["bonus"]),
        ("source=adjustment", ["adjustment"]),
        ("source=expiry", []),
        ("status=pending", ["repriced", "bonus"]),
        ("status=approved", ["adjustment", "claim", "sale"]),
        ("status=paid", ["capped"]),
        ("from=2026-02-01", ["adjustment", "claim", "capped"]),
        ("to=2026-02-01", ["capped", "repriced", "sale", "bonus"]),
        ("from=2026-01-10&to=2026-01-10", ["repriced", "sale"]),
        ("source=sale&status=approved", ["sale"]),
        ("source=sale&from=2026-01-11&status=paid", ["capped"]),
    ],
)
def test_filters_narrow_the_ledger(
    alice: FlaskClient, world: World, query: str, expected: list[str]
) -> None:
    response = alice.get(f"/my/rewards?{query}", headers=HTMX)

    assert response.status_code == 200
    assert entry_ids(response) == [world.entries[name].id for name in expected]


def test_program_filter_keeps_one_programs_entries(
    alice: FlaskClient, world: World
) -> None:
    other = make_program("Spring push", kind="incentive")
    spring = add_entry(world.acme, other, "5.00", earned_on=date(2026, 4, 1))
    db.session.commit()

    everything = entry_ids(alice.get("/my/rewards"))
    only_spring = entry_ids(alice.get(f"/my/rewards?program={other.id}"))
    only_growth = entry_ids(alice.get(f"/my/rewards?program={world.growth.id}"))

    assert only_spring == [spring.id]
    assert spring.id in everything
    assert len(only_growth) == 6
    assert spring.id not in only_growth


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=2026-02-30", "“2026-02-30” is not a date"),
        ("to=yesterday", "“yesterday” is not a date"),
        ("from=%F0%9F%92%A5", "is not a date"),
        ("from=%2B2026-01-01", "“+2026-01-01” is not a date"),
        ("source=bribe", "Choose a source from the list"),
        ("status=lost", "Choose a status from the list"),
        ("program=abc", "Choose a program from the list"),
        ("program=99999999999999999999999", "Choose a program from the list"),
    ],
)
def test_bad_filter_values_give_a_message_and_are_left_out(
    alice: FlaskClient, world: World, query: str, message: str
) -> None:
    for headers in ({}, HTMX):
        response = alice.get(f"/my/rewards?{query}", headers=headers)

        assert response.status_code == 200
        assert message in page_text(response)
        assert len(entry_ids(response)) == 6


def test_dates_the_wrong_way_round_say_so(alice: FlaskClient, world: World) -> None:
    response = alice.get("/my/rewards?from=2026-03-01&to=2026-01-01", headers=HTMX)

    assert response.status_code == 200
    assert "The “From” date (1 March 2026) is after the “To” date" in page_text(
        response
    )
    assert entry_ids(response) == []


def test_htmx_gets_the_ledger_fragment_and_the_form_targets_it(
    alice: FlaskClient, world: World
) -> None:
    full = alice.get("/my/rewards").get_data(as_text=True)
    fragment = alice.get("/my/rewards?source=claim", headers=HTMX).get_data(True)

    assert "<html" in full
    assert 'hx-target="#ledger"' in full
    assert fragment.lstrip().startswith('<section id="ledger"')
    assert "<html" not in fragment
    assert "points-available" not in fragment
    assert 'href="/my/rewards/export.csv?source=claim"' in fragment


def test_ledger_pages_by_fifty_and_keeps_the_filter(
    alice: FlaskClient, world: World
) -> None:
    for number in range(120):
        add_entry(
            world.acme,
            world.growth,
            "1.00",
            earned_on=date(2025, 1, 1) - timedelta(days=number),
        )
    db.session.commit()

    first = alice.get("/my/rewards?source=adjustment")
    third = alice.get("/my/rewards?source=adjustment&page=3", headers=HTMX)
    past_the_end = alice.get("/my/rewards?source=adjustment&page=4")
    not_a_number = alice.get("/my/rewards?source=adjustment&page=lots")
    huge = alice.get("/my/rewards?source=adjustment&page=99999999999999999999")

    assert len(entry_ids(first)) == 50
    assert entry_ids(first)[0] == world.entries["adjustment"].id
    assert "121 entries · page 1 of 3" in page_text(first)
    links = re.findall(r'href="(/my/rewards\?[^"]*)"', first.get_data(as_text=True))
    assert any("page=2" in link and "source=adjustment" in link for link in links), (
        links
    )
    assert len(entry_ids(third)) == 21
    assert past_the_end.status_code == 404
    assert entry_ids(not_a_number) == entry_ids(first)
    assert huge.status_code == 404


# Another organisation, other roles -------------------------------------------


def test_another_organisations_entries_are_never_shown(
    alice: FlaskClient, world: World
) -> None:
    globex_id = world.entries["globex"].id
    pages = [
        alice.get("/my/rewards"),
        alice.get(f"/my/rewards?program={world.growth.id}&source=sale"),
        alice.get("/my/rewards?from=2026-01-20&to=2026-01-20", headers=HTMX),
        alice.get("/my/rewards/export.csv"),
    ]

    for response in pages:
        assert globex_id not in entry_ids(response)
        assert "Globex's own entry" not in page_text(response)


def test_globex_sees_only_its_own_points(
    client: FlaskClient, auth: AuthActions, world: World
) -> None:
    auth.sign_in("globex@example.test")

    response = client.get("/my/rewards")

    assert entry_ids(response) == [world.entries["globex"].id]
    assert stat(response, "points-pending") == "0"
    assert stat(response, "points-available") == "999"


@pytest.mark.parametrize("email", ["manager@example.test", "admin@example.test"])
def test_managers_and_admins_are_refused(
    client: FlaskClient, auth: AuthActions, world: World, email: str
) -> None:
    auth.sign_in(email)

    for url in [
        "/my/rewards",
        f"/my/rewards/sales/{world.line.id}",
        "/my/rewards/export.csv",
    ]:
        assert client.get(url).status_code == 403


def test_signed_out_visitors_are_sent_to_sign_in(
    client: FlaskClient, world: World
) -> None:
    response = client.get("/my/rewards")

    assert response.status_code == 302
    assert "/auth/sign-in" in response.headers["Location"]


# One sale ----------------------------------------------------------------------


def test_sale_page_shows_the_sale_and_the_points_it_earned(
    alice: FlaskClient, world: World
) -> None:
    response = alice.get(f"/my/rewards/sales/{world.line.id}")
    text = page_text(response)

    assert response.status_code == 200
    for fact in [
        "10 January 2026",
        "Pacific Diner",
        "98101",
        "$1,200.00",
        "Technology",
        "Standing desk",
        "Counted in territory</dt><dd>Pacific</dd>",
        world.line.external_line_id,
    ]:
        assert fact in text
    assert entry_ids(response) == [
        world.entries["sale"].id,
        world.entries["repriced"].id,
    ]


@pytest.mark.parametrize("which", ["globex_line", "unpriced_line", "missing"])
def test_sale_page_is_404_without_an_entry_of_the_organisation(
    alice: FlaskClient, world: World, which: str
) -> None:
    line_id = 987654 if which == "missing" else getattr(world, which).id

    response = alice.get(f"/my/rewards/sales/{line_id}")

    assert response.status_code == 404
    assert "Harbor Cafe" not in page_text(response)


# The export -------------------------------------------------------------------


def test_export_lists_every_entry_with_safe_cells(
    alice: FlaskClient, world: World
) -> None:
    response = alice.get("/my/rewards/export.csv")
    rows = csv_rows(response)
    e = world.entries
    by_id = {row[0]: row for row in rows[1:]}

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert rows[0] == [
        "entry id",
        "earned on",
        "program",
        "source",
        "reference",
        "points",
        "status",
        "paid in payout",
        "pricing text",
        "reason",
    ]
    assert [int(row[0]) for row in rows[1:]] == [
        e[name].id
        for name in ("adjustment", "claim", "capped", "repriced", "sale", "bonus")
    ]
    assert by_id[str(e["adjustment"].id)][5] == "-12.50"
    assert by_id[str(e["adjustment"].id)][9] == "'" + HYPERLINK
    assert by_id[str(e["repriced"].id)][5] == "-360.00"
    assert by_id[str(e["claim"].id)][4] == "'+44 INV-7"
    assert by_id[str(e["capped"].id)][4] == "'@L-capped"
    assert by_id[str(e["capped"].id)][6:8] == ["paid", str(e["capped"].payout_id)]
    assert by_id[str(e["bonus"].id)][4] == "Silver"
    assert by_id[str(e["sale"].id)][1:4] == ["2026-01-10", "Growth", "Sale"]
    assert by_id[str(e["sale"].id)][8] == SALE_PRICING


def test_export_keeps_the_filter_and_every_page(
    alice: FlaskClient, world: World
) -> None:
    for _ in range(60):
        add_entry(world.acme, world.growth, "-2.00", earned_on=date(2024, 1, 1))
    db.session.commit()

    adjustments = csv_rows(alice.get("/my/rewards/export.csv?source=adjustment"))
    paid = csv_rows(alice.get("/my/rewards/export.csv?status=paid"))

    assert len(adjustments) == 1 + 61
    assert {row[3] for row in adjustments[1:]} == {"Adjustment"}
    assert [row[0] for row in paid[1:]] == [str(world.entries["capped"].id)]


def test_export_with_a_bad_date_explains_instead_of_failing(
    alice: FlaskClient, world: World
) -> None:
    response = alice.get("/my/rewards/export.csv?from=2026-13-01")

    assert response.status_code == 400
    assert "“2026-13-01” is not a date" in page_text(response)
