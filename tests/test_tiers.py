"""Incentive tiers: typed thresholds, ladders, KPI values, next steps, standings."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import event, select

from portal.extensions import db
from portal.models import PartnerOrganisation
from programs.models import Eligibility, ModuleCompletion, Program, Standing, Tier
from programs.tiers import (
    TierError,
    check_ladder,
    format_kpi,
    kpi_values,
    next_step,
    parse_amount,
    refresh_standings,
    tier_for,
)
from rewards.models import Claim
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
    make_module,
    make_program,
)

D = Decimal
Q1_START, Q1_END = date(2027, 1, 1), date(2027, 3, 31)


def make_eligible(program: Program, *organisations: PartnerOrganisation) -> None:
    """Eligibility rows as a run would write them, one per organisation."""
    rule = add_program_rule(program)
    for organisation in organisations:
        db.session.add(
            Eligibility(
                program_id=program.id, organisation_id=organisation.id, rule_id=rule.id
            )
        )
    db.session.flush()


def complete(organisation: PartnerOrganisation, module, at: datetime) -> None:
    """Someone of the organisation completed the module at ``at`` (UTC)."""
    user = make_user(organisation=organisation)
    db.session.add(
        ModuleCompletion(
            user_id=user.id,
            module_id=module.id,
            organisation_id=organisation.id,
            completed_at_utc=at,
        )
    )
    db.session.flush()


def quarter_program(kpi: str, direction: str = "higher", **fields) -> Program:
    return make_program(
        kind="incentive",
        kpi=kpi,
        kpi_direction=direction,
        starts_on=fields.pop("starts_on", Q1_START),
        ends_on=fields.pop("ends_on", Q1_END),
        **fields,
    )


@pytest.fixture
def world(clean_app):
    """Three eligible partners (Beta sells, Gamma does nothing) and one that is not.

    Alpha: 100.00 on the first day, 250.50 on the last, 49.50 from an account
    first seen in 2026, and 5.01 from an account new in the quarter; sales the
    day before and after the quarter. Beta: 1,000 and 500 from one new account.
    """
    region = make_region()
    alpha, beta, gamma, outsider = (
        make_org(name) for name in ("Alpha", "Beta", "Gamma", "Outsider")
    )
    territories = {
        org.name: make_territory(region, partner=org) for org in (alpha, beta, outsider)
    }
    ownerless = make_territory(region)

    def account(owner: str | None, *sales: tuple[date, str]) -> None:
        acct = make_account()
        if owner is not None:
            assign(acct, territories[owner] if owner else ownerless)
        for on, amount in sales:
            add_sale(acct, on, amount)

    account(
        "Alpha",
        (date(2026, 12, 31), "999"),
        (Q1_START, "100.00"),
        (Q1_END, "250.50"),
        (date(2027, 4, 1), "999"),
    )
    account("Alpha", (date(2026, 6, 1), "10"), (date(2027, 2, 10), "49.50"))
    account("Alpha", (date(2027, 3, 15), "5.01"))
    account("Beta", (date(2027, 2, 1), "1000"), (date(2027, 2, 2), "500"))
    account("Outsider", (date(2027, 2, 1), "70"))
    account(None, (date(2027, 2, 1), "300"))  # in no territory
    account("", (date(2027, 2, 1), "400"))  # in a territory nobody owns

    modules = [make_module() for _ in range(3)]
    complete(alpha, modules[0], datetime(2027, 1, 1, 0, 0))
    complete(alpha, modules[0], datetime(2027, 2, 1, 9, 30))  # a colleague, again
    complete(alpha, modules[1], datetime(2027, 3, 31, 23, 59, 59))
    complete(alpha, modules[2], datetime(2027, 4, 1, 0, 0))
    complete(beta, modules[0], datetime(2026, 12, 31, 23, 59, 59))
    complete(outsider, modules[0], datetime(2027, 2, 1))

    db.session.commit()
    return SimpleNamespace(alpha=alpha, beta=beta, gamma=gamma, outsider=outsider)


def values_by_name(values: dict[int, Decimal | None]) -> dict[str, Decimal | None]:
    names = dict(
        db.session.execute(
            select(PartnerOrganisation.id, PartnerOrganisation.name)
        ).all()
    )
    return {names[org_id]: value for org_id, value in values.items()}


# --- KPI values ----------------------------------------------------------------

EXPECTED_KPIS = {
    "sales_sum": {"Alpha": D("405.01"), "Beta": D("1500.00"), "Gamma": D(0)},
    "sales_count": {"Alpha": D(4), "Beta": D(2), "Gamma": D(0)},
    "sales_average": {"Alpha": D("101.2525"), "Beta": D("750.00"), "Gamma": None},
    "modules_completed": {"Alpha": D(2), "Beta": D(0), "Gamma": D(0)},
    "new_accounts": {"Alpha": D(1), "Beta": D(1), "Gamma": D(0)},
}


@pytest.mark.parametrize("kpi", EXPECTED_KPIS)
def test_kpi_values_count_the_period_for_every_eligible_partner(world, kpi):
    program = quarter_program(kpi)
    make_eligible(program, world.alpha, world.beta, world.gamma)
    make_eligible(program, world.alpha)  # a second rule matching Alpha again

    values = kpi_values(program)

    assert values_by_name(values) == EXPECTED_KPIS[kpi]


def claim(organisation: PartnerOrganisation, on: date, amount: str, status: str):
    db.session.add(
        Claim(
            organisation_id=organisation.id,
            customer_name="Walk-in",
            postal_code="02139",
            amount=D(amount),
            sale_date=on,
            invoice_number=f"INV-{on}-{amount}-{status}",
            status=status,
        )
    )


@pytest.mark.parametrize(
    ("kpi", "expected"),
    [
        ("sales_sum", {"Alpha": D("505.01"), "Beta": D("1500.00"), "Gamma": D(0)}),
        ("sales_count", {"Alpha": D(5), "Beta": D(2), "Gamma": D(0)}),
        ("sales_average", {"Alpha": D("101.002"), "Beta": D("750.00"), "Gamma": None}),
        ("new_accounts", {"Alpha": D(1), "Beta": D(1), "Gamma": D(0)}),
    ],
)
def test_approved_claims_in_the_period_count_as_sales(world, kpi, expected):
    claim(world.alpha, Q1_END, "100.00", "approved")
    claim(world.alpha, date(2027, 4, 1), "70.00", "approved")  # after the period
    for status in ("submitted", "flagged", "rejected"):
        claim(world.alpha, Q1_START, "5000.00", status)
    claim(world.gamma, Q1_START, "1.00", "submitted")
    program = quarter_program(kpi)
    make_eligible(program, world.alpha, world.beta, world.gamma)

    assert values_by_name(kpi_values(program)) == expected


def test_a_sales_total_is_to_the_cent_and_its_distance_adds_up(clean_app):
    organisation = make_org("Precise")
    territory = make_territory(make_region(), partner=organisation)
    account = make_account()
    assign(account, territory)
    for amount in ("75000.3100", "4.0050"):
        add_sale(account, date(2027, 2, 1), amount)
    program = quarter_program("sales_sum")
    add_tier(program, "Gold", 100000)
    make_eligible(program, organisation)

    value = kpi_values(program)[organisation.id]

    assert value == D("75004.32")  # 75,004.315 to the cent, half up
    assert format_kpi("sales_sum", value) == "$75,004.32"
    assert next_step(program, value, FEBRUARY) == (
        "$24,995.68 more in sales by 31 March 2027 reaches Gold"
    )


def test_kpi_values_keep_the_amounts_precision_and_whole_counts(world):
    program = quarter_program("sales_average")
    make_eligible(program, world.alpha)

    average = kpi_values(program)[world.alpha.id]
    count = kpi_values(quarter_program("sales_count"), [world.alpha.id])[world.alpha.id]

    # 101.2525 is not rounded to 101.25 before tiers compare it.
    assert isinstance(average, Decimal)
    assert average == D("101.2525")
    assert isinstance(count, Decimal)
    assert count == count.to_integral_value()


def test_kpi_values_for_chosen_partners_ignore_eligibility(world):
    program = quarter_program("sales_sum")
    make_eligible(program, world.alpha)

    values = kpi_values(program, [world.beta.id, world.outsider.id])

    assert values_by_name(values) == {"Beta": D("1500.00"), "Outsider": D("70.00")}
    assert kpi_values(program, []) == {}


@pytest.mark.parametrize(
    ("kpi", "nothing"),
    [
        ("sales_sum", D(0)),
        ("sales_count", D(0)),
        ("sales_average", None),
        ("modules_completed", D(0)),
        ("new_accounts", D(0)),
    ],
)
def test_a_period_without_activity_gives_zero_or_no_average(world, kpi, nothing):
    program = quarter_program(
        kpi, starts_on=date(2030, 1, 1), ends_on=date(2030, 12, 31)
    )
    make_eligible(program, world.alpha, world.beta)

    values = kpi_values(program)

    assert values == {world.alpha.id: nothing, world.beta.id: nothing}


def test_an_account_is_new_only_in_the_period_of_its_first_sale(world):
    before = quarter_program(
        "new_accounts", starts_on=date(2026, 1, 1), ends_on=date(2026, 12, 31)
    )
    make_eligible(before, world.alpha)

    # Alpha's first two accounts first bought in 2026, the third in 2027.
    assert kpi_values(before) == {world.alpha.id: D(2)}


def test_a_program_without_a_kpi_has_no_values(clean_app):
    program = make_program(kind="training")

    with pytest.raises(TierError, match="does not measure a KPI"):
        kpi_values(program)


# --- Typed thresholds --------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "separator", "amount"),
    [
        ("1234.5", ".", D("1234.5")),
        ("1,234.50", ".", D("1234.50")),
        ("1 234.50", ".", D("1234.50")),
        ("1\u00a0234.50", ".", D("1234.50")),
        ("1,234,567", ".", D("1234567")),
        ("  5000 ", ".", D("5000")),
        ("0", ".", D("0")),
        ("0.0001", ".", D("0.0001")),
        (".5", ".", D("0.5")),
        ("5.", ".", D("5")),
        ("999999999999.9999", ".", D("999999999999.9999")),
        ("1.234,50", ",", D("1234.50")),
        ("1234,5", ",", D("1234.5")),
        ("1 234 567,5", ",", D("1234567.5")),
        ("1.234", ",", D("1234")),
    ],
)
def test_amounts_are_read_with_the_chosen_separator(raw, separator, amount):
    assert parse_amount(raw, separator) == amount


def test_a_decimal_comma_is_never_read_as_a_point():
    with pytest.raises(TierError) as refused:
        parse_amount("1.234,50")

    assert str(refused.value) == (
        "'1.234,50' looks like it uses a decimal comma: choose the comma as "
        "decimal separator, or write 1234.50."
    )


def test_a_decimal_point_is_never_read_as_a_comma():
    with pytest.raises(TierError) as refused:
        parse_amount("1,234.50", ",")

    assert str(refused.value) == (
        "'1,234.50' looks like it uses a decimal point: choose the point as "
        "decimal separator, or write 1234,50."
    )


@pytest.mark.parametrize(
    ("raw", "separator", "message"),
    [
        ("1,5", ".", "'1,5' looks like it uses a decimal comma"),
        ("1,5", ".", "choose the comma as decimal separator, or write 1.5."),
        ("12,34", ".", "decimal comma: choose the comma as decimal separator"),
        ("1.5", ",", "'1.5' looks like it uses a decimal point"),
        ("1.5", ",", "choose the point as decimal separator, or write 1,5."),
        ("", ".", "Enter an amount, e.g. 5000."),
        ("   ", ".", "Enter an amount, e.g. 5000."),
        ("NaN", ".", "'NaN' is not an amount; enter a number such as 5000."),
        ("inf", ".", "'inf' is not an amount; enter a number such as 5000."),
        ("Infinity", ",", "'Infinity' is not an amount; enter a number such as 5000."),
        ("-5", ".", "'-5' is negative; thresholds are zero or more."),
        ("-1,000.00", ".", "'-1,000.00' is negative; thresholds are zero or more."),
        ("1.23456", ".", "'1.23456' has 5 decimal places; thresholds keep at most 4."),
        (
            "1000000000000",
            ".",
            "'1000000000000' is too large; amounts stay below 1,000,000,000,000.",
        ),
        (
            "1,23,456",
            ".",
            "'1,23,456' is not an amount: group digits in threes, as in 1,234.50, "
            "or leave the grouping out.",
        ),
        ("1,234 567", ".", "group digits in threes"),
        ("1.234.5", ",", "group digits in threes, as in 1.234,50, or leave"),
        (".", ".", "'.' is not a number"),
        ("5.", ",", "'5.' looks like it uses a decimal point"),
        ("abc", ".", "'abc' is not a number; enter an amount such as 1234.50."),
        ("1e6", ".", "'1e6' is not a number"),
        ("$5,000", ".", "'$5,000' is not a number"),
    ],
)
def test_unusable_amounts_are_refused_with_a_sentence(raw, separator, message):
    with pytest.raises(TierError) as refused:
        parse_amount(raw, separator)

    assert message in str(refused.value)


def test_trailing_zeros_do_not_count_as_decimal_places():
    assert parse_amount("1.50000") == D("1.5")


# --- Ladders -----------------------------------------------------------------------


def ladder(*steps: tuple[str, str]) -> list[tuple[str, Decimal]]:
    return [(name, D(threshold)) for name, threshold in steps]


def test_rising_and_falling_ladders_are_fine():
    assert check_ladder(ladder(("Silver", "1000"), ("Gold", "5000")), "higher") == []
    assert check_ladder(ladder(("Silver", "500"), ("Gold", "200.5")), "lower") == []
    assert check_ladder(ladder(("Only", "0")), "lower") == []


def test_equal_thresholds_overlap_in_either_direction():
    tiers = ladder(("Silver", "5000"), ("Gold", "5000.00"))

    assert check_ladder(tiers, "higher") == [
        "Gold (5,000) must be above Silver (5,000): two tiers cannot share a threshold."
    ]
    assert check_ladder(tiers, "lower") == [
        "Gold (5,000) must be below Silver (5,000): two tiers cannot share a threshold."
    ]


def test_thresholds_out_of_order_name_both_tiers():
    rising = ladder(("Bronze", "1000"), ("Silver", "5000.5"), ("Gold", "3000"))
    falling = ladder(("Bronze", "300"), ("Gold", "400"))

    assert check_ladder(rising, "higher") == [
        "Gold (3,000) must be above Silver (5,000.5): each tier's threshold is above "
        "the one before it."
    ]
    assert check_ladder(falling, "lower") == [
        "Gold (400) must be below Bronze (300): each tier's threshold is below "
        "the one before it."
    ]
    assert check_ladder(falling, "higher") == []


def test_names_must_be_given_and_differ_ignoring_case():
    tiers = ladder(("Gold", "1"), (" gold ", "2"), ("GOLD", "3"), ("  ", "4"))

    assert check_ladder(tiers, "higher") == [
        "Two tiers are named 'gold'; give each tier its own name.",
        "Tier 4 needs a name.",
    ]


def test_a_ladder_needs_a_tier_and_a_direction():
    assert check_ladder([], "higher") == ["Add at least one tier."]
    assert check_ladder(ladder(("Gold", "1")), "sideways") == [
        "Choose whether a higher or a lower value is better."
    ]


# --- Tier reached --------------------------------------------------------------------

RISING = [
    Tier(name="Bronze", threshold=D(1000)),
    Tier(name="Silver", threshold=D(5000)),
    Tier(name="Gold", threshold=D(10000)),
]
FALLING = [
    Tier(name="Bronze", threshold=D(500)),
    Tier(name="Silver", threshold=D(300)),
    Tier(name="Gold", threshold=D(100)),
]


@pytest.mark.parametrize(
    ("value", "reached"),
    [
        (None, None),
        (D(0), None),
        (D("999.99"), None),
        (D(1000), "Bronze"),
        (D("1000.01"), "Bronze"),
        (D("4999.99"), "Bronze"),
        (D("5000.0000"), "Silver"),
        (D("9999.99"), "Silver"),
        (D(10000), "Gold"),
        (D(250000), "Gold"),
    ],
)
def test_higher_is_better_reaches_a_tier_at_its_threshold(value, reached):
    tier = tier_for(value, RISING, "higher")

    assert (tier.name if tier else None) == reached


@pytest.mark.parametrize(
    ("value", "reached"),
    [
        (None, None),
        (D("500.01"), None),
        (D(500), "Bronze"),
        (D("300.01"), "Bronze"),
        (D(300), "Silver"),
        (D("100.01"), "Silver"),
        (D(100), "Gold"),
        (D("99.99"), "Gold"),
        (D(0), "Gold"),
    ],
)
def test_lower_is_better_reaches_a_tier_at_its_threshold(value, reached):
    tier = tier_for(value, FALLING, "lower")

    assert (tier.name if tier else None) == reached


# --- Next step ---------------------------------------------------------------

FEBRUARY = date(2027, 2, 1)


def program_with(kpi: str, direction: str, *tiers: tuple[str, str]) -> Program:
    program = quarter_program(kpi, direction)
    for name, threshold in tiers:
        add_tier(program, name, threshold)
    return program


@pytest.mark.parametrize(
    ("kpi", "direction", "tiers", "value", "text"),
    [
        (
            "sales_sum",
            "higher",
            [("Silver", "5000"), ("Gold", "10000")],
            D("8760"),
            "$1,240.00 more in sales by 31 March 2027 reaches Gold",
        ),
        (
            "sales_sum",
            "higher",
            [("Silver", "5000"), ("Gold", "10000")],
            D(0),
            "$5,000.00 more in sales by 31 March 2027 reaches Silver",
        ),
        (
            "sales_sum",
            "higher",
            [("Gold", "100.0001")],
            D(100),
            "$0.01 more in sales by 31 March 2027 reaches Gold",
        ),
        (
            "sales_count",
            "higher",
            [("Silver", "10"), ("Gold", "20")],
            D(17),
            "3 more sales by 31 March 2027 reaches Gold",
        ),
        (
            "sales_count",
            "higher",
            [("Silver", "10"), ("Gold", "20")],
            D(19),
            "1 more sale by 31 March 2027 reaches Gold",
        ),
        (
            "sales_count",
            "higher",
            [("Gold", "2.5")],
            D(2),
            "1 more sale by 31 March 2027 reaches Gold",
        ),
        (
            "modules_completed",
            "higher",
            [("Bronze", "2"), ("Gold", "5")],
            D(3),
            "2 more completed modules by 31 March 2027 reaches Gold",
        ),
        (
            "modules_completed",
            "higher",
            [("Bronze", "2"), ("Gold", "5")],
            D(1),
            "1 more completed module by 31 March 2027 reaches Bronze",
        ),
        (
            "new_accounts",
            "higher",
            [("Gold", "1")],
            D(0),
            "1 more new account by 31 March 2027 reaches Gold",
        ),
        (
            "new_accounts",
            "higher",
            [("Gold", "3")],
            None,
            "3 more new accounts by 31 March 2027 reaches Gold",
        ),
        (
            "sales_average",
            "lower",
            [("Bronze", "500"), ("Gold", "200")],
            D(350),
            "Bring your average sale down by $150.00 by 31 March 2027 to reach Gold",
        ),
        (
            "sales_average",
            "lower",
            [("Bronze", "500"), ("Gold", "200")],
            D("600.50"),
            "Bring your average sale down by $100.50 by 31 March 2027 to reach Bronze",
        ),
        (
            "sales_average",
            "lower",
            [("Bronze", "500"), ("Gold", "200")],
            None,
            "An average sale of $500.00 or less by 31 March 2027 reaches Bronze",
        ),
        (
            "sales_average",
            "higher",
            [("Gold", "150")],
            D(120),
            "Raise your average sale by $30.00 by 31 March 2027 to reach Gold",
        ),
        (
            "sales_average",
            "higher",
            [("Gold", "150")],
            None,
            "An average sale of $150.00 or more by 31 March 2027 reaches Gold",
        ),
        (
            "sales_count",
            "lower",
            [("Bronze", "10"), ("Gold", "5")],
            D(12),
            "Bring your number of sales down by 2 by 31 March 2027 to reach Bronze",
        ),
    ],
)
def test_next_step_says_how_far_the_next_tier_is(
    clean_app, kpi, direction, tiers, value, text
):
    program = program_with(kpi, direction, *tiers)

    assert next_step(program, value, FEBRUARY) == text


@pytest.mark.parametrize(
    ("direction", "tiers", "value"),
    [
        ("higher", [("Silver", "5000"), ("Gold", "10000")], D(10000)),
        ("higher", [("Silver", "5000"), ("Gold", "10000")], D(12000)),
        ("lower", [("Bronze", "500"), ("Gold", "200")], D(200)),
        ("higher", [], D(0)),
    ],
)
def test_there_is_no_next_step_at_the_top_or_without_tiers(
    clean_app, direction, tiers, value
):
    program = program_with("sales_sum", direction, *tiers)

    assert next_step(program, value, FEBRUARY) is None


def test_there_is_no_next_step_once_the_program_has_ended(clean_app):
    program = program_with("sales_sum", "higher", ("Gold", "1000"))

    assert next_step(program, D(0), date(2027, 4, 1)) is None
    assert next_step(program, D(0), Q1_END) == (
        "$1,000.00 more in sales by 31 March 2027 reaches Gold"
    )


def test_next_step_uses_the_configured_currency(clean_app, monkeypatch):
    monkeypatch.setitem(clean_app.config, "CURRENCY_SYMBOL", "€")
    program = program_with("sales_sum", "higher", ("Gold", "1000"))

    assert next_step(program, D("1.5"), FEBRUARY) == (
        "€998.50 more in sales by 31 March 2027 reaches Gold"
    )
    assert format_kpi("sales_sum", D("1234.5")) == "€1,234.50"


# --- Display -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kpi", "value", "text"),
    [
        ("sales_sum", D("12345.67"), "$12,345.67"),
        ("sales_sum", D("0.5"), "$0.50"),
        ("sales_sum", None, "$0.00"),
        ("sales_sum", D("-20"), "-$20.00"),
        ("sales_average", D("101.25"), "$101.25"),
        ("sales_average", None, "No sales yet"),
        ("sales_count", D(12), "12 sales"),
        ("sales_count", D("12.0000"), "12 sales"),
        ("sales_count", D(1), "1 sale"),
        ("sales_count", D(0), "0 sales"),
        ("sales_count", D(1234), "1,234 sales"),
        ("modules_completed", D(3), "3 completed modules"),
        ("modules_completed", D(1), "1 completed module"),
        ("new_accounts", D(1), "1 new account"),
        ("new_accounts", None, "0 new accounts"),
    ],
)
def test_kpi_values_read_as_amounts_or_counts(kpi, value, text):
    assert format_kpi(kpi, value) == text


@pytest.mark.parametrize(
    ("direction", "tiers", "value", "shown", "step"),
    [
        (
            "higher",
            [("Gold", "100000")],
            D("75004.3150"),
            "$75,004.31",
            "$24,995.69 more in sales",
        ),
        (
            "higher",
            [("Gold", "100000")],
            D("75004.3199"),
            "$75,004.31",
            "$24,995.69 more in sales",
        ),
        (
            "lower",
            [("Bronze", "500"), ("Gold", "200")],
            D("300.0001"),
            "$300.01",
            "down by $100.01",
        ),
    ],
)
def test_the_value_shown_plus_the_distance_shown_is_the_threshold(
    clean_app, direction, tiers, value, shown, step
):
    program = program_with("sales_sum", direction, *tiers)

    assert format_kpi("sales_sum", value, direction) == shown
    assert step in next_step(program, value, FEBRUARY)


# --- Standings -----------------------------------------------------------------------


def standings() -> dict[tuple[str, str], tuple[Decimal, str | None, int | None]]:
    """(program, partner) -> (KPI value, tier name, run id)."""
    rows = db.session.scalars(select(Standing)).all()
    names = dict(
        db.session.execute(
            select(PartnerOrganisation.id, PartnerOrganisation.name)
        ).all()
    )
    return {
        (db.session.get(Program, row.program_id).name, names[row.organisation_id]): (
            row.kpi_value,
            row.tier.name if row.tier else None,
            row.run_id,
        )
        for row in rows
    }


@pytest.fixture
def standings_world(clean_app):
    """Alpha sells exactly 5,000 in one sale, Beta 4,999.99, Gamma nothing."""
    region = make_region()
    alpha, beta, gamma, gone = (make_org(n) for n in ("Alpha", "Beta", "Gamma", "Gone"))
    for org, amount in ((alpha, "5000"), (beta, "4999.99")):
        acct = make_account()
        assign(acct, make_territory(region, partner=org))
        add_sale(acct, date(2025, 6, 1), amount)

    total = make_program("Total", kind="incentive", kpi="sales_sum")
    add_tier(total, "Silver", "1000")
    add_tier(total, "Gold", "5000")
    average = make_program(
        "Average", kind="incentive", kpi="sales_average", kpi_direction="lower"
    )
    add_tier(average, "Bronze", "5000")
    add_tier(average, "Gold", "2000")
    for program in (total, average):
        make_eligible(program, alpha, beta, gamma)
    # Gone was eligible to Total once; its old row goes with the rewrite.
    db.session.add(
        Standing(program_id=total.id, organisation_id=gone.id, kpi_value=D(1))
    )
    db.session.commit()
    return SimpleNamespace(alpha=alpha, beta=beta, gamma=gamma, total=total)


def test_refresh_writes_each_eligible_partners_kpi_and_tier(standings_world):
    written = refresh_standings(7)

    assert written == 6
    assert standings() == {
        ("Total", "Alpha"): (D("5000.0000"), "Gold", 7),
        ("Total", "Beta"): (D("4999.9900"), "Silver", 7),
        ("Total", "Gamma"): (D("0.0000"), None, 7),
        ("Average", "Alpha"): (D("5000.0000"), "Bronze", 7),
        ("Average", "Beta"): (D("4999.9900"), "Bronze", 7),
        # No sales is no average: stored as 0, yet it reaches no tier.
        ("Average", "Gamma"): (D("0.0000"), None, 7),
    }


def test_refresh_twice_gives_the_same_standings(standings_world):
    refresh_standings(1)
    first = {key: value[:2] for key, value in standings().items()}

    assert refresh_standings(2) == 6
    assert {key: value[:2] for key, value in standings().items()} == first


def test_ended_archived_and_other_programs_keep_their_rows(standings_world):
    world = standings_world
    ended = make_program(
        "Ended", kind="incentive", kpi="sales_sum", ends_on=date(2025, 12, 31)
    )
    old_gold = add_tier(ended, "Gold", "10")
    archived = make_program(
        "Archived", kind="incentive", kpi="sales_sum", status="archived"
    )
    training = make_program("Training", kind="training")
    for program in (ended, archived, training):
        make_eligible(program, world.alpha, world.beta)
    for program in (ended, archived):
        db.session.add(
            Standing(
                program_id=program.id,
                organisation_id=world.alpha.id,
                kpi_value=D(42),
                tier_id=old_gold.id if program is ended else None,
                run_id=3,
            )
        )
    db.session.commit()

    assert refresh_standings(8) == 6

    rows = standings()
    assert rows[("Ended", "Alpha")] == (D("42.0000"), "Gold", 3)
    assert rows[("Archived", "Alpha")] == (D("42.0000"), None, 3)
    assert {program for program, _ in rows} == {"Total", "Average", "Ended", "Archived"}
    assert ("Total", "Gone") not in rows


@pytest.mark.parametrize("kpi", EXPECTED_KPIS)
def test_kpi_values_take_one_query(world, kpi):
    program = quarter_program(kpi)
    make_eligible(program, world.alpha, world.beta, world.gamma)
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        kpi_values(program)
        kpi_values(program, [world.alpha.id])
    finally:
        event.remove(db.engine, "before_cursor_execute", record)

    assert len(statements) == 2
