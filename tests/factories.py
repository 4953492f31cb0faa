"""Small builders for the objects tests need; each flushes so ids are set."""

from __future__ import annotations

import itertools
from typing import Any

from geoalchemy2.shape import from_shape
from shapely.geometry import MultiPolygon, Point, box

from portal.extensions import db
from portal.models import PartnerOrganisation, Role, User
from territory_rules.models import Account, Condition, Region, Rule, Territory

_sequence = itertools.count(1)
PASSWORD = "pass-1234"


def make_org(
    name: str | None = None, partner_type: str = "reseller"
) -> PartnerOrganisation:
    org = PartnerOrganisation(
        name=name or f"Partner {next(_sequence)}", partner_type=partner_type
    )
    db.session.add(org)
    db.session.flush()
    return org


def make_user(
    role: Role = Role.PARTNER,
    organisation: PartnerOrganisation | None = None,
    email: str | None = None,
    password: str = PASSWORD,
) -> User:
    user = User(
        email=email or f"user{next(_sequence)}@example.test",
        display_name="Test User",
        role=role.value,
        organisation=organisation,
    )
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    return user


def make_region(name: str | None = None, managers: list[User] | None = None) -> Region:
    region = Region(name=name or f"Region {next(_sequence)}", managers=managers or [])
    db.session.add(region)
    db.session.flush()
    return region


def square(x: float, y: float, size: float = 1.0) -> MultiPolygon:
    return MultiPolygon([box(x, y, x + size, y + size)])


def make_territory(
    region: Region,
    name: str | None = None,
    partner: PartnerOrganisation | None = None,
    shape: MultiPolygon | None = None,
    parent: Territory | None = None,
) -> Territory:
    territory = Territory(
        name=name or f"Territory {next(_sequence)}",
        region=region,
        partner=partner,
        parent=parent,
        shape=from_shape(shape, srid=4326) if shape is not None else None,
    )
    db.session.add(territory)
    db.session.flush()
    return territory


def add_rule(
    territory: Territory,
    precedence: int,
    *conditions: tuple[str, str, Any],
    name: str | None = None,
) -> Rule:
    rule = Rule(
        territory=territory,
        name=name or f"Rule {next(_sequence)}",
        precedence=precedence,
        conditions=[
            Condition(field=field, operator=operator, value=value)
            for field, operator, value in conditions
        ],
    )
    db.session.add(rule)
    db.session.flush()
    return rule


def make_account(
    name: str | None = None,
    at: tuple[float, float] | None = None,
    **fields: Any,
) -> Account:
    number = next(_sequence)
    account = Account(
        key=fields.pop("key", f"acct-{number}"),
        external_id=fields.pop("external_id", f"C-{number}"),
        name=name or f"Account {number}",
        location=from_shape(Point(*at), srid=4326) if at else None,
        location_source="postal_code" if at else "none",
        **fields,
    )
    db.session.add(account)
    db.session.flush()
    return account
