"""Sales claims: locating postal codes, submitting, reviewing, and their pages."""

from __future__ import annotations

import functools
import io
import itertools
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from geoalchemy2.shape import from_shape
from shapely.geometry import Point
from sqlalchemy import func, select, update
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.security import generate_password_hash

from portal import uploads
from portal.extensions import db
from portal.models import Role, User, utc_now
from rewards import claims
from rewards.claims import ClaimRejected, ReviewRefused
from rewards.models import Claim
from territory_rules.locate import territory_for_postal_code
from territory_rules.models import PostalCode
from tests.conftest import AuthActions
from tests.factories import (
    make_account,
    make_org,
    make_region,
    make_territory,
    make_user,
    square,
)
from tests.program_factories import assign

HTMX = {"HX-Request": "true"}
_invoices = itertools.count(1)
SALE_DAY = date(2019, 3, 3)
LIMIT = 5 * 1024 * 1024


@pytest.fixture(autouse=True)
def quick_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Full-strength hashing costs a fifth of a second per user; keep tests quick."""
    quick = functools.partial(generate_password_hash, method="pbkdf2:sha256:1000")
    monkeypatch.setattr("portal.models.generate_password_hash", quick)


@pytest.fixture(autouse=True)
def rewards_runs(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record the recomputes asked for instead of running them."""
    requested: list[Any] = []
    monkeypatch.setattr(
        "rewards.jobs.request_rewards_run",
        lambda started_by=None, full=False: requested.append(started_by),
    )
    monkeypatch.setattr(
        "rewards.jobs.after_new_sales",
        lambda started_by=None: requested.append(started_by),
    )
    return requested


@pytest.fixture
def files_dir(
    clean_app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setattr(clean_app, "instance_path", str(tmp_path))
    return tmp_path / "claim_files"


def add_postal_code(code: str, x: float, y: float, country: str = "US") -> None:
    db.session.add(
        PostalCode(
            country=country, code=code, location=from_shape(Point(x, y), srid=4326)
        )
    )
    db.session.flush()


@pytest.fixture
def world(clean_app: Flask, files_dir: Path) -> SimpleNamespace:
    """New England (Harbor & Pine) at x 0..1 and New York Metro (Empire) at
    x 2..3, both under Northeast, whose shape covers them both; postal code
    centroids inside each, and one outside every shape.
    """
    harbor = make_org("Harbor & Pine Office")
    empire = make_org("Empire Desk Partners")
    region = make_region("East")
    northeast = make_territory(region, "Northeast", shape=square(-1, -1, 5))
    new_england = make_territory(
        region, "New England", harbor, square(0, 0), parent=northeast
    )
    new_york = make_territory(
        region, "New York Metro", empire, square(2, 0), parent=northeast
    )
    add_postal_code("02139", 0.5, 0.5)
    add_postal_code("10001", 2.5, 0.5)
    add_postal_code("06001", 0.2, 0.2)
    add_postal_code("99999", 10, 10)
    db.session.commit()
    return SimpleNamespace(
        harbor=harbor,
        empire=empire,
        region=region,
        northeast=northeast,
        new_england=new_england,
        new_york=new_york,
        alice=make_user(Role.PARTNER, harbor, email="alice@harbor.test"),
        erin=make_user(Role.PARTNER, empire, email="erin@empire.test"),
        admin=make_user(Role.ADMIN, email="admin@example.test"),
        other_admin=make_user(Role.ADMIN, email="admin2@example.test"),
        manager=make_user(Role.MANAGER, email="manager@example.test"),
        files_dir=files_dir,
    )


def form(**changes: str) -> dict[str, str]:
    fields = {
        "customer_name": "Kendall Diner",
        "postal_code": "02139",
        "amount": "1250.50",
        "sale_date": SALE_DAY.isoformat(),
        "invoice_number": "INV-1",
        "category": "Technology",
    }
    fields.update(changes)
    return fields


def upload(name: str, data: bytes) -> FileStorage:
    return FileStorage(stream=io.BytesIO(data), filename=name)


def stored_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def claim_count() -> int:
    return db.session.scalar(select(func.count(Claim.id))) or 0


def stored(claim_id: int) -> Claim:
    """The claim as the database holds it after a request changed it."""
    db.session.expire_all()
    return db.session.get_one(Claim, claim_id)


def long_date(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


# Locating postal codes ----------------------------------------------------------------


def test_a_code_is_placed_in_the_leaf_territory_holding_its_centroid(
    world: SimpleNamespace,
) -> None:
    territory, note = territory_for_postal_code("02139")

    assert territory == world.new_england
    assert note == "The centre of postal code 02139 lies inside New England's shape."


def test_where_accounts_were_assigned_comes_before_the_shape(
    world: SimpleNamespace,
) -> None:
    # 06001's centroid lies in New England, but its accounts were placed in New York.
    for _ in range(2):
        assign(make_account(postal_code="06001"), world.new_york)
    assign(make_account(postal_code="06001"), world.new_england)

    territory, note = territory_for_postal_code("06001")

    assert territory == world.new_york
    assert note == (
        "2 of the 3 accounts with postal code 06001 are assigned to New York Metro."
    )


def test_accounts_split_equally_are_settled_by_the_centroid_only(
    world: SimpleNamespace,
) -> None:
    assign(make_account(postal_code="06001"), world.new_york)
    assign(make_account(postal_code="06001"), world.new_england)
    assign(make_account(postal_code="77777"), world.new_york)
    assign(make_account(postal_code="77777"), world.new_england)

    settled, settled_note = territory_for_postal_code("06001")
    unsettled, unsettled_note = territory_for_postal_code("77777")

    assert settled == world.new_england
    assert settled_note.endswith("lies inside New England's shape.")
    assert unsettled is None
    assert unsettled_note == (
        "Accounts with postal code 77777 are assigned to New England and New York "
        "Metro in equal numbers, so no single territory can be named."
    )


def test_a_centroid_outside_every_shape_is_in_no_territory(
    world: SimpleNamespace,
) -> None:
    territory, note = territory_for_postal_code("99999")

    assert territory is None
    assert "lies inside no territory's shape" in note


def test_a_code_that_lost_its_zero_is_not_padded(world: SimpleNamespace) -> None:
    territory, note = territory_for_postal_code("2139")

    assert territory is None
    assert note == (
        "No account with postal code 2139 is assigned to a territory, and 2139 is "
        "not among the postal codes on file. If it lost its leading zero, write "
        "02139: codes are never padded automatically."
    )


def test_an_unknown_code_says_so_without_a_guess(world: SimpleNamespace) -> None:
    territory, note = territory_for_postal_code("SW1A 1AA")

    assert territory is None
    assert note.endswith("SW1A 1AA is not among the postal codes on file.")


def test_a_country_narrows_the_centroids(world: SimpleNamespace) -> None:
    add_postal_code("02139", 2.5, 0.5, country="DE")

    assert territory_for_postal_code("02139", "DE")[0] == world.new_york
    assert territory_for_postal_code("02139", "US")[0] == world.new_england
    assert territory_for_postal_code("02139", "FR")[0] is None


# Submitting: validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("customer_name", "  ", "Enter the customer's name."),
        ("customer_name", "x" * 201, "at most 200 characters"),
        ("customer_name", "Bad\x00name", "Remove the control characters"),
        ("postal_code", "", "Enter the postal code the sale was delivered to."),
        ("postal_code", "021#39", "letters, digits, spaces and hyphens only"),
        ("amount", "", "Enter the sale's amount, e.g. 1250.50."),
        ("amount", "1,250.50", "without thousands separators or decimal commas"),
        ("amount", "1250,50", "with a point before the cents, e.g. 1250.50."),
        ("amount", "1 250", "without thousands separators"),
        ("amount", "$1250", "is not a plain number"),
        ("amount", "1e5", "is not a plain number"),
        ("amount", "NaN", "is not a plain number"),
        ("amount", "12.345", "at most 2 decimals (cents), not 3"),
        ("amount", "0", "The amount must be greater than zero."),
        ("amount", "0.00", "The amount must be greater than zero."),
        ("amount", "-5", "The amount must be greater than zero."),
        ("amount", "1000000000000", "too large"),
        ("sale_date", "", "Enter the sale date, e.g. 2019-03-03."),
        ("sale_date", "03/03/2019", "as year-month-day"),
        ("sale_date", "1999-12-31", "Sales before 1 January 2000 cannot be claimed"),
        ("invoice_number", "", "Enter the invoice number."),
        ("invoice_number", "I" * 121, "at most 120 characters"),
        ("category", "c" * 121, "at most 120 characters"),
    ],
)
def test_each_bad_field_is_refused_with_what_to_write(
    world: SimpleNamespace, field: str, value: str, message: str
) -> None:
    with pytest.raises(ClaimRejected) as raised:
        claims.submit_claim(world.alice, form(**{field: value}), None)

    assert list(raised.value.errors) == [field]
    assert message in raised.value.errors[field]
    assert claim_count() == 0


def test_a_sale_date_in_the_future_is_refused(world: SimpleNamespace) -> None:
    future = utc_now().date() + timedelta(days=2)

    with pytest.raises(ClaimRejected) as raised:
        claims.submit_claim(world.alice, form(sale_date=future.isoformat()), None)

    assert raised.value.errors == {
        "sale_date": f"{long_date(future)} is in the future; enter the day the "
        "sale was made."
    }


def test_every_bad_field_is_reported_at_once(world: SimpleNamespace) -> None:
    data = form(customer_name="", amount="abc", sale_date="")

    with pytest.raises(ClaimRejected) as raised:
        claims.submit_claim(world.alice, data, upload("x.exe", b"MZ"))

    assert set(raised.value.errors) == {"customer_name", "amount", "sale_date", "file"}


def test_a_duplicate_invoice_is_reported_with_the_other_errors(
    world: SimpleNamespace,
) -> None:
    claims.submit_claim(world.alice, form(), None)

    with pytest.raises(ClaimRejected) as raised:
        claims.submit_claim(world.alice, form(amount="1.250,50"), None)

    assert set(raised.value.errors) == {"amount", "invoice_number"}
    assert "already claimed" in raised.value.errors["invoice_number"]


def test_the_earliest_day_and_the_smallest_amounts_are_accepted(
    world: SimpleNamespace,
) -> None:
    claim = claims.submit_claim(
        world.alice, form(sale_date="2000-01-01", amount="0.01", category=""), None
    )

    assert claim.sale_date == date(2000, 1, 1)
    assert claim.amount == Decimal("0.01")
    assert claim.category is None


def test_fields_are_kept_trimmed_and_codes_as_text(world: SimpleNamespace) -> None:
    data = MultiDict(form(customer_name="  Kendall Diner ", postal_code=" 02139 "))

    claim = claims.submit_claim(world.alice, data, None)

    assert claim.customer_name == "Kendall Diner"
    assert claim.postal_code == "02139"
    assert claim.amount == Decimal("1250.50")
    assert claim.submitted_by_id == world.alice.id
    assert claim.organisation_id == world.harbor.id


def test_only_people_of_a_partner_can_claim(world: SimpleNamespace) -> None:
    with pytest.raises(ClaimRejected) as raised:
        claims.submit_claim(world.admin, form(), None)

    assert raised.value.errors == {"form": "Only people of a partner can claim sales."}


# Submitting: where the sale lies ------------------------------------------------------


def test_a_sale_in_the_claimants_territory_is_submitted(
    world: SimpleNamespace,
) -> None:
    claim = claims.submit_claim(world.alice, form(), None)

    assert claim.status == "submitted"
    assert claim.territory_id == world.new_england.id
    assert claim.location_note == (
        "02139 lies in New England, owned by Harbor & Pine Office on 3 March 2019. "
        "The centre of postal code 02139 lies inside New England's shape."
    )


def test_a_sale_in_another_partners_territory_is_flagged(
    world: SimpleNamespace,
) -> None:
    claim = claims.submit_claim(world.erin, form(), None)

    assert claim.status == "flagged"
    assert claim.territory_id == world.new_england.id
    assert (claim.location_note or "").startswith(
        "02139 lies in New England, owned by Harbor & Pine Office on 3 March 2019."
    )


def test_a_sale_in_no_territory_is_flagged(world: SimpleNamespace) -> None:
    claim = claims.submit_claim(world.alice, form(postal_code="99999"), None)

    assert claim.status == "flagged"
    assert claim.territory_id is None
    assert (claim.location_note or "").startswith("99999 lies in no territory.")


def test_a_code_that_lost_its_zero_is_flagged_with_the_likely_code(
    world: SimpleNamespace,
) -> None:
    claim = claims.submit_claim(world.alice, form(postal_code="2139"), None)

    assert claim.status == "flagged"
    assert claim.postal_code == "2139"
    assert "If it lost its leading zero, write 02139" in (claim.location_note or "")


def test_a_sale_is_judged_by_the_owner_on_its_date(world: SimpleNamespace) -> None:
    world.new_england.partner_id = world.empire.id
    db.session.commit()
    today = utc_now().date()

    harbor_before = claims.submit_claim(world.alice, form(invoice_number="A"), None)
    empire_before = claims.submit_claim(world.erin, form(invoice_number="B"), None)
    harbor_now = claims.submit_claim(
        world.alice, form(invoice_number="C", sale_date=today.isoformat()), None
    )
    empire_now = claims.submit_claim(
        world.erin, form(invoice_number="D", sale_date=today.isoformat()), None
    )

    assert harbor_before.status == "submitted"
    assert empire_before.status == "flagged"
    assert (empire_before.location_note or "").startswith(
        "02139 lies in New England, owned by Harbor & Pine Office on 3 March 2019."
    )
    assert empire_now.status == "submitted"
    assert harbor_now.status == "flagged"
    assert (harbor_now.location_note or "").startswith(
        f"02139 lies in New England, owned by Empire Desk Partners on "
        f"{long_date(today)}."
    )


def test_a_territory_without_an_owner_flags_the_claim(world: SimpleNamespace) -> None:
    world.new_england.partner_id = None
    db.session.commit()
    today = utc_now().date()

    claim = claims.submit_claim(world.alice, form(sale_date=today.isoformat()), None)

    assert claim.status == "flagged"
    assert (claim.location_note or "").startswith(
        f"02139 lies in New England, which had no owner on {long_date(today)}."
    )


# Submitting: duplicates ---------------------------------------------------------------


def test_an_invoice_is_claimed_once_per_organisation(world: SimpleNamespace) -> None:
    first = claims.submit_claim(world.alice, form(), None)

    with pytest.raises(ClaimRejected) as raised:
        claims.submit_claim(world.alice, form(amount="10"), None)
    other_partner = claims.submit_claim(world.erin, form(), None)

    assert raised.value.errors == {
        "invoice_number": f"Invoice INV-1 was already claimed on "
        f"{long_date(first.created_at_utc.date())} (claim {first.id}, a sale of "
        "3 March 2019); each invoice can be claimed once."
    }
    assert other_partner.invoice_number == "INV-1"
    assert claim_count() == 2


def miss_once(find: Callable[..., Any]) -> Callable[..., Any]:
    """A lookup that finds nothing the first time, as if the row came just after."""
    calls = {"count": 0}

    def lookup(*args: Any) -> Any:
        calls["count"] += 1
        return None if calls["count"] == 1 else find(*args)

    return lookup


def test_a_duplicate_arriving_meanwhile_is_refused_and_keeps_no_file(
    world: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims.submit_claim(world.alice, form(), None)
    monkeypatch.setattr(claims, "duplicate_note", miss_once(claims.duplicate_note))

    with pytest.raises(ClaimRejected) as raised:
        claims.submit_claim(world.alice, form(), upload("inv.pdf", b"%PDF-1.4"))

    assert "Invoice INV-1 was already claimed" in raised.value.errors["invoice_number"]
    assert stored_files(world.files_dir) == []
    assert claim_count() == 1


# Submitting: files --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("Invoice.PDF", b"%PDF-1.7\nrest"),
        ("scan.png", b"\x89PNG\r\n\x1a\n....."),
        ("photo.jpeg", b"\xff\xd8\xff\xe0JFIF"),
        ("photo.jpg", b"\xff\xd8\xff\xe1Exif"),
    ],
)
def test_an_invoice_file_is_kept_under_a_random_name(
    world: SimpleNamespace, name: str, data: bytes
) -> None:
    claim = claims.submit_claim(world.alice, form(), upload(name, data))

    assert claim.file_name == name
    assert claim.file_stored_as is not None
    assert name.rsplit(".", 1)[0] not in claim.file_stored_as
    assert stored_files(world.files_dir) == [claim.file_stored_as]
    assert (world.files_dir / claim.file_stored_as).read_bytes() == data
    assert claims.claim_file_path(claim) == world.files_dir / claim.file_stored_as


def test_an_upload_without_a_file_name_is_no_file(world: SimpleNamespace) -> None:
    claim = claims.submit_claim(world.alice, form(), upload("", b""))

    assert claim.file_name is None
    assert claims.claim_file_path(claim) is None


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        (
            "invoice.docx",
            b"PK\x03\x04",
            "“invoice.docx” cannot be attached: attach a PDF, PNG or JPEG image "
            "of the invoice.",
        ),
        ("invoice", b"%PDF-1.4", "“invoice” cannot be attached"),
        ("empty.pdf", b"", "“empty.pdf” is empty; attach a file with content."),
        (
            "invoice.pdf",
            b"\x89PNG\r\n\x1a\n",
            "“invoice.pdf” is not a PDF, as its name says; attach the file in the "
            "format its name ends with.",
        ),
        ("photo.jpg", b"MZ\x90\x00program", "“photo.jpg” is not a JPEG image"),
        ("scan.png", b"%PDF-1.7", "“scan.png” is not a PNG image"),
    ],
)
def test_a_refused_file_refuses_the_claim_and_keeps_nothing(
    world: SimpleNamespace, name: str, data: bytes, message: str
) -> None:
    with pytest.raises(ClaimRejected) as raised:
        claims.submit_claim(world.alice, form(), upload(name, data))

    assert list(raised.value.errors) == ["file"]
    assert raised.value.errors["file"].startswith(message)
    assert stored_files(world.files_dir) == []
    assert claim_count() == 0


def test_a_file_over_five_megabytes_is_refused_after_reading_just_past_it(
    world: SimpleNamespace,
) -> None:
    stream = io.BytesIO(b"%PDF-" + b"0" * LIMIT)
    reads: list[int] = []
    original_read = stream.read

    def read(size: int = -1) -> bytes:
        reads.append(size)
        return original_read(size)

    stream.read = read  # type: ignore[method-assign]

    with pytest.raises(ClaimRejected) as raised:
        claims.submit_claim(
            world.alice, form(), FileStorage(stream=stream, filename="big.pdf")
        )

    assert raised.value.errors == {
        "file": "“big.pdf” is larger than 5 MB; attach a smaller file."
    }
    assert reads == [LIMIT + 1]
    assert stored_files(world.files_dir) == []
    assert claim_count() == 0


def test_a_file_of_exactly_five_megabytes_is_kept(world: SimpleNamespace) -> None:
    data = b"%PDF-" + b"0" * (LIMIT - 5)

    claim = claims.submit_claim(world.alice, form(), upload("big.pdf", data))

    assert claim.file_stored_as is not None
    assert (world.files_dir / claim.file_stored_as).stat().st_size == LIMIT


def test_a_failed_write_keeps_neither_file_nor_claim(
    world: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_replace(*args: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(uploads.os, "replace", broken_replace)

    with pytest.raises(OSError, match="disk full"):
        claims.submit_claim(world.alice, form(), upload("inv.pdf", b"%PDF-1.4"))

    assert stored_files(world.files_dir) == []
    assert claim_count() == 0


# Reviewing ----------------------------------------------------------------------------


def test_approving_a_submitted_claim_asks_for_a_rewards_run(
    world: SimpleNamespace, rewards_runs: list[Any]
) -> None:
    claim = claims.submit_claim(world.alice, form(), None)

    claims.approve_claim(claim, world.admin)

    assert claim.status == "approved"
    assert claim.reviewed_by_id == world.admin.id
    assert claim.reviewed_at_utc is not None
    assert rewards_runs == [world.admin]


def test_a_flagged_claim_cannot_be_approved(
    world: SimpleNamespace, rewards_runs: list[Any]
) -> None:
    claim = claims.submit_claim(world.erin, form(), None)

    with pytest.raises(ReviewRefused) as raised:
        claims.approve_claim(claim, world.admin)

    assert str(raised.value).startswith(
        f"Claim {claim.id} is flagged, so it cannot be approved: 02139 lies in New "
        "England, owned by Harbor & Pine Office on 3 March 2019."
    )
    assert "Flagged claims are never credited" in str(raised.value)
    assert claim.status == "flagged"
    assert rewards_runs == []


def test_rejecting_needs_a_reason(
    world: SimpleNamespace, rewards_runs: list[Any]
) -> None:
    claim = claims.submit_claim(world.alice, form(), None)

    with pytest.raises(ReviewRefused) as raised:
        claims.reject_claim(claim, world.admin, "   ")

    assert raised.value.field == "reason"
    assert str(raised.value) == "Write why the claim is rejected; the partner reads it."
    assert claim.status == "submitted"
    assert rewards_runs == []


@pytest.mark.parametrize("claimant", ["alice", "erin"])
def test_submitted_and_flagged_claims_can_be_rejected(
    world: SimpleNamespace, rewards_runs: list[Any], claimant: str
) -> None:
    claim = claims.submit_claim(getattr(world, claimant), form(), None)

    claims.reject_claim(claim, world.admin, " No such invoice in our books. ")

    assert claim.status == "rejected"
    assert claim.review_reason == "No such invoice in our books."
    assert claim.reviewed_by_id == world.admin.id
    assert rewards_runs == [world.admin]


def test_a_decided_claim_cannot_be_decided_again(world: SimpleNamespace) -> None:
    approved = claims.submit_claim(world.alice, form(invoice_number="A"), None)
    rejected = claims.submit_claim(world.alice, form(invoice_number="B"), None)
    claims.approve_claim(approved, world.admin)
    claims.reject_claim(rejected, world.admin, "Duplicate of A.")
    today = long_date(utc_now().date())

    with pytest.raises(ReviewRefused) as reject_approved:
        claims.reject_claim(approved, world.other_admin, "Changed my mind.")
    with pytest.raises(ReviewRefused) as approve_rejected:
        claims.approve_claim(rejected, world.other_admin)
    with pytest.raises(ReviewRefused) as recheck_approved:
        claims.recheck_claim(approved, world.other_admin)

    assert str(reject_approved.value) == (
        f"Claim {approved.id} was already approved by Test User on {today}, so it "
        "cannot be rejected now."
    )
    assert str(approve_rejected.value).startswith(
        f"Claim {rejected.id} was already rejected by Test User"
    )
    assert "cannot be checked again now" in str(recheck_approved.value)
    assert approved.status == "approved"
    assert rejected.review_reason == "Duplicate of A."


def test_rechecking_follows_a_change_of_territories(world: SimpleNamespace) -> None:
    add_postal_code("12345", 2.5, 2.5)
    claim = claims.submit_claim(world.erin, form(postal_code="12345"), None)
    assert claim.status == "flagged"
    world.new_york.shape = from_shape(square(2, 0, 3), srid=4326)
    db.session.commit()

    claims.recheck_claim(claim, world.admin)

    assert claim.status == "submitted"
    assert claim.territory_id == world.new_york.id
    assert (claim.location_note or "").startswith(
        "12345 lies in New York Metro, owned by Empire Desk Partners on 3 March 2019."
    )


def test_rechecking_can_flag_a_submitted_claim(world: SimpleNamespace) -> None:
    claim = claims.submit_claim(world.alice, form(), None)
    world.new_england.shape = from_shape(square(5, 5), srid=4326)
    db.session.commit()

    claims.recheck_claim(claim, world.admin)

    assert claim.status == "flagged"
    assert claim.territory_id is None


def approve_elsewhere(claim: Claim, admin: User) -> None:
    """Another admin's request approving the claim in its own transaction."""
    with db.engine.begin() as connection:
        connection.execute(
            update(Claim)
            .where(Claim.id == claim.id)
            .values(
                status="approved", reviewed_by_id=admin.id, reviewed_at_utc=utc_now()
            )
        )


@pytest.mark.parametrize("second", ["approve", "reject"])
def test_of_two_admins_deciding_at_once_one_wins(
    world: SimpleNamespace, rewards_runs: list[Any], second: str
) -> None:
    claim = claims.submit_claim(world.alice, form(), None)
    assert claim.status == "submitted"  # as both admins' pages showed it
    approve_elsewhere(claim, world.admin)

    with pytest.raises(ReviewRefused) as raised:
        if second == "approve":
            claims.approve_claim(claim, world.other_admin)
        else:
            claims.reject_claim(claim, world.other_admin, "Not ours.")

    verb = "approved" if second == "approve" else "rejected"
    assert str(raised.value).startswith(
        f"Claim {claim.id} was already approved by Test User"
    )
    assert str(raised.value).endswith(f"so it cannot be {verb} now.")
    assert claim.status == "approved"
    assert claim.reviewed_by_id == world.admin.id
    assert claim.review_reason is None
    assert rewards_runs == []


# Partner pages ------------------------------------------------------------------------


def make_claims(organisation: Any, count: int, **fields: Any) -> list[Claim]:
    """Claims written directly, the first the oldest."""
    made = []
    for number in range(count):
        claim = Claim(
            organisation_id=organisation.id,
            customer_name=fields.get("customer_name", f"Customer {number}"),
            postal_code="02139",
            amount=Decimal("100"),
            sale_date=SALE_DAY,
            invoice_number=f"M-{next(_invoices)}",
            status=fields.get("status", "submitted"),
            location_note=fields.get("location_note"),
            created_at_utc=utc_now() - timedelta(minutes=count - number),
        )
        db.session.add(claim)
        made.append(claim)
    db.session.commit()
    return made


def test_my_claims_lists_the_organisations_claims_newest_first(
    client: FlaskClient, auth: AuthActions, world: SimpleNamespace
) -> None:
    make_claims(world.harbor, 2)
    flagged = claims.submit_claim(world.alice, form(postal_code="99999"), None)
    claims.reject_claim(flagged, world.admin, "Outside your territory.")
    make_claims(world.empire, 1, customer_name="Empire secret customer")
    auth.sign_in("alice@harbor.test")

    page = client.get("/my/claims").get_data(as_text=True)

    assert "3 claims" in page
    assert (
        page.index("Kendall Diner")
        < page.index("Customer 1")
        < page.index("Customer 0")
    )
    assert "Outside your territory." in page
    assert "99999 lies in no territory." in page
    assert "Rejected" in page
    assert "Empire secret customer" not in page


def test_my_claims_is_paged_and_htmx_gets_the_list_only(
    client: FlaskClient, auth: AuthActions, world: SimpleNamespace
) -> None:
    make_claims(world.harbor, 26)
    auth.sign_in("alice@harbor.test")

    first = client.get("/my/claims").get_data(as_text=True)
    second = client.get("/my/claims?page=2", headers=HTMX).get_data(as_text=True)

    assert "26 claims · page 1 of 2" in first
    assert "Customer 25" in first and "Customer 0<" not in first
    assert "<html" not in second
    assert 'id="my-claims"' in second
    assert "Customer 0<" in second
    assert client.get("/my/claims?page=3").status_code == 404


def test_the_claim_form_shows_errors_beside_the_fields(
    client: FlaskClient, auth: AuthActions, world: SimpleNamespace
) -> None:
    auth.sign_in("alice@harbor.test")

    assert client.get("/my/claims/new").status_code == 200
    response = client.post("/my/claims/new", data=form(amount="1.250,50"))

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'id="amount-error"' in page
    assert "without thousands separators or decimal commas" in page
    assert 'value="Kendall Diner"' in page
    assert claim_count() == 0


def test_a_claim_with_its_file_is_submitted_from_the_form(
    client: FlaskClient, auth: AuthActions, world: SimpleNamespace
) -> None:
    auth.sign_in("alice@harbor.test")
    data: dict[str, Any] = form()
    data["file"] = (io.BytesIO(b"%PDF-1.4 invoice"), "INV-1.pdf")

    response = client.post(
        "/my/claims/new", data=data, content_type="multipart/form-data"
    )

    claim = db.session.scalars(select(Claim)).one()
    assert response.status_code == 302
    assert response.headers["Location"] == f"/my/claims/{claim.id}"
    detail = client.get(f"/my/claims/{claim.id}").get_data(as_text=True)
    assert f"Claim {claim.id} for invoice INV-1 was submitted" in detail
    assert "$1,250.50" in detail
    assert "02139 lies in New England, owned by Harbor &amp; Pine Office" in detail
    with client.get(f"/my/claims/{claim.id}/file") as file:
        kept = file.data
    assert file.status_code == 200
    assert kept == b"%PDF-1.4 invoice"
    assert file.headers["Content-Disposition"] == "attachment; filename=INV-1.pdf"


def test_a_flagged_claim_is_explained_after_submitting(
    client: FlaskClient, auth: AuthActions, world: SimpleNamespace
) -> None:
    auth.sign_in("erin@empire.test")

    page = client.post("/my/claims/new", data=form(), follow_redirects=True).get_data(
        as_text=True
    )

    assert "was recorded but flagged: 02139 lies in New England" in page
    assert "Flagged" in page


def test_a_partner_cannot_read_another_organisations_claim_or_file(
    client: FlaskClient, auth: AuthActions, world: SimpleNamespace
) -> None:
    theirs = claims.submit_claim(
        world.erin, form(), upload("inv.pdf", b"%PDF-1.4 secret")
    )
    auth.sign_in("alice@harbor.test")

    assert client.get(f"/my/claims/{theirs.id}").status_code == 404
    assert client.get(f"/my/claims/{theirs.id}/file").status_code == 404
    assert client.get("/my/claims/999999").status_code == 404


def test_a_claim_without_a_file_has_no_download(
    client: FlaskClient, auth: AuthActions, world: SimpleNamespace
) -> None:
    mine = claims.submit_claim(world.alice, form(), None)
    auth.sign_in("alice@harbor.test")

    assert client.get(f"/my/claims/{mine.id}/file").status_code == 404


# Admin pages --------------------------------------------------------------------------


def test_the_review_list_shows_claims_waiting_oldest_first(
    client: FlaskClient, auth: AuthActions, world: SimpleNamespace
) -> None:
    make_claims(world.harbor, 1, customer_name="Early submitted")
    make_claims(world.empire, 1, customer_name="Later flagged", status="flagged")
    make_claims(world.empire, 1, customer_name="Long approved", status="approved")
    auth.sign_in("admin@example.test")

    page = client.get("/admin/rewards/claims").get_data(as_text=True)
    approved = client.get(
        "/admin/rewards/claims?status=approved", headers=HTMX
    ).get_data(as_text=True)

    assert "2 claims" in page
    assert page.index("Early submitted") < page.index("Later flagged")
    assert "Long approved" not in page
    assert "<html" not in approved
    assert "Long approved" in approved and "Early submitted" not in approved


def test_the_review_list_accepts_only_known_filters(
    client: FlaskClient, auth: AuthActions, world: SimpleNamespace
) -> None:
    make_claims(world.harbor, 1, customer_name="Waiting", status="submitted")
    make_claims(world.empire, 1, customer_name="Done", status="rejected")
    auth.sign_in("admin@example.test")

    everything = client.get("/admin/rewards/claims?status=all").get_data(as_text=True)
    unknown = client.get("/admin/rewards/claims?status=nope").get_data(as_text=True)

    assert "Waiting" in everything and "Done" in everything
    assert "Waiting" in unknown and "Done" not in unknown


def test_an_admin_reviews_a_claim_from_its_page(
    client: FlaskClient,
    auth: AuthActions,
    world: SimpleNamespace,
    rewards_runs: list[Any],
) -> None:
    claim = claims.submit_claim(
        world.alice, form(), upload("i.png", b"\x89PNG\r\n\x1a\n")
    )
    auth.sign_in("admin@example.test")

    detail = client.get(f"/admin/rewards/claims/{claim.id}").get_data(as_text=True)
    with client.get(f"/admin/rewards/claims/{claim.id}/file") as file:
        data = file.data
    approved = client.post(
        f"/admin/rewards/claims/{claim.id}/approve", follow_redirects=True
    ).get_data(as_text=True)

    assert "02139 lies in New England, owned by Harbor &amp; Pine Office" in detail
    assert f"/admin/rewards/claims/{claim.id}/file" in detail
    assert "Approve" in detail
    assert data == b"\x89PNG\r\n\x1a\n"
    assert f"Claim {claim.id} of Harbor &amp; Pine Office was approved" in approved
    assert stored(claim.id).status == "approved"
    assert len(rewards_runs) == 1


def test_rejecting_without_a_reason_shows_the_error_beside_it(
    client: FlaskClient, auth: AuthActions, world: SimpleNamespace
) -> None:
    claim = claims.submit_claim(world.erin, form(), None)
    auth.sign_in("admin@example.test")

    response = client.post(
        f"/admin/rewards/claims/{claim.id}/reject", data={"reason": " "}
    )
    rejected = client.post(
        f"/admin/rewards/claims/{claim.id}/reject",
        data={"reason": "Sold in New England."},
        follow_redirects=True,
    )

    assert response.status_code == 400
    assert 'id="reason-error"' in response.get_data(as_text=True)
    assert f"Claim {claim.id} of Empire Desk Partners was rejected." in (
        rejected.get_data(as_text=True)
    )
    assert stored(claim.id).review_reason == "Sold in New England."


def test_a_refused_review_is_explained_on_the_claims_page(
    client: FlaskClient, auth: AuthActions, world: SimpleNamespace
) -> None:
    claim = claims.submit_claim(world.erin, form(), None)
    auth.sign_in("admin@example.test")

    page = client.post(
        f"/admin/rewards/claims/{claim.id}/approve", follow_redirects=True
    ).get_data(as_text=True)

    assert f"Claim {claim.id} is flagged, so it cannot be approved" in page
    assert "Check the location again" in page


def test_rechecking_from_the_page_reports_the_new_status(
    client: FlaskClient, auth: AuthActions, world: SimpleNamespace
) -> None:
    claim_id = claims.submit_claim(world.erin, form(), None).id
    world.new_england.shape = from_shape(square(5, 5), srid=4326)
    world.new_york.shape = from_shape(square(0, 0, 3), srid=4326)
    db.session.commit()
    auth.sign_in("admin@example.test")

    page = client.post(
        f"/admin/rewards/claims/{claim_id}/recheck", follow_redirects=True
    ).get_data(as_text=True)

    assert f"Claim {claim_id} was checked again and is submitted" in page
    assert "02139 lies in New York Metro, owned by Empire Desk Partners" in page


@pytest.mark.parametrize("email", ["manager@example.test", "alice@harbor.test"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/admin/rewards/claims"),
        ("get", "/admin/rewards/claims/{id}"),
        ("get", "/admin/rewards/claims/{id}/file"),
        ("post", "/admin/rewards/claims/{id}/approve"),
        ("post", "/admin/rewards/claims/{id}/reject"),
        ("post", "/admin/rewards/claims/{id}/recheck"),
    ],
)
def test_only_admins_open_the_review_pages(
    client: FlaskClient,
    auth: AuthActions,
    world: SimpleNamespace,
    email: str,
    method: str,
    path: str,
) -> None:
    claim = claims.submit_claim(world.alice, form(), upload("i.pdf", b"%PDF-1.4"))
    auth.sign_in(email)

    response = getattr(client, method)(path.format(id=claim.id))

    assert response.status_code == 403
    assert stored(claim.id).status == "submitted"


@pytest.mark.parametrize("email", ["manager@example.test", "admin@example.test"])
@pytest.mark.parametrize("path", ["/my/claims", "/my/claims/new", "/my/claims/1"])
def test_only_partners_open_my_claims(
    client: FlaskClient,
    auth: AuthActions,
    world: SimpleNamespace,
    email: str,
    path: str,
) -> None:
    auth.sign_in(email)

    assert client.get(path).status_code == 403


def test_signed_out_visitors_are_sent_to_sign_in(
    client: FlaskClient, world: SimpleNamespace
) -> None:
    response = client.get("/admin/rewards/claims")

    assert response.status_code == 302
    assert "/auth/sign-in" in response.headers["Location"]
