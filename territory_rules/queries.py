"""What each person may see, and the queries behind the territory pages.

Visibility is decided here once: partner users see their organisation's
territories, managers the regions they manage, admins everything. A lookup
returns ``None`` for an object the user may not see, so that the page answers
404 whether the object is foreign or missing.

Every count is one ``GROUP BY`` and every list one paginated query; no query
runs per account.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from flask_sqlalchemy.pagination import Pagination
from geoalchemy2.shape import to_shape
from shapely.geometry import mapping
from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import contains_eager, defer, joinedload, selectinload

from portal.extensions import db
from portal.models import User
from portal.runs import Run
from territory_rules.conditions import describe
from territory_rules.models import (
    Account,
    Assignment,
    AssignmentStatus,
    Region,
    Rule,
    RuleMatch,
    Territory,
    region_managers,
)

# Map outlines are drawn a few hundred pixels wide; finer detail only adds bytes.
SIMPLIFY_FRACTION = 1 / 1000
COORDINATE_DECIMALS = 5


# Visibility ------------------------------------------------------------------


def partner_territories(user: User) -> Sequence[Territory]:
    """The territories owned by the user's partner organisation, by name."""
    if user.organisation_id is None:
        return []
    return db.session.scalars(
        select(Territory)
        .where(Territory.partner_id == user.organisation_id)
        .options(defer(Territory.shape), joinedload(Territory.region))
        .order_by(Territory.name)
    ).all()


def partner_territory(user: User, territory_id: int) -> Territory | None:
    """The territory if the user's organisation owns it."""
    territory = db.session.get(Territory, territory_id)
    if territory is None or user.organisation_id is None:
        return None
    if territory.partner_id != user.organisation_id:
        return None
    return territory


def visible_regions(user: User) -> Sequence[Region]:
    """Every region for an admin, the managed ones for a manager, by name."""
    query = select(Region).order_by(Region.name)
    if not user.is_admin:
        query = query.join(
            region_managers, region_managers.c.region_id == Region.id
        ).where(region_managers.c.user_id == user.id)
    return db.session.scalars(query).all()


def visible_region(user: User, region_id: int) -> Region | None:
    """The region if the user is an admin or one of its managers."""
    if user.is_admin:
        return db.session.get(Region, region_id)
    return db.session.scalar(
        select(Region)
        .join(region_managers, region_managers.c.region_id == Region.id)
        .where(Region.id == region_id, region_managers.c.user_id == user.id)
    )


def region_territory(region: Region, territory_id: int) -> Territory | None:
    """The territory if it belongs to ``region``."""
    territory = db.session.get(Territory, territory_id)
    if territory is None or territory.region_id != region.id:
        return None
    return territory


# Territory trees and counts ---------------------------------------------------


@dataclass
class TerritoryRow:
    """One line of a territory table: the territory, its depth and its counts."""

    territory: Territory
    depth: int
    assigned: int
    in_conflict: int
    total_below: int = 0


def territories_of_regions(region_ids: Iterable[int]) -> Sequence[Territory]:
    """Territories of the regions with their owners, shapes left unloaded."""
    return db.session.scalars(
        select(Territory)
        .where(Territory.region_id.in_(list(region_ids)))
        .options(defer(Territory.shape), joinedload(Territory.partner))
        .order_by(Territory.name)
    ).all()


def assigned_counts(territory_ids: Iterable[int]) -> dict[int, int]:
    """Accounts assigned to each territory."""
    rows = db.session.execute(
        select(Assignment.territory_id, func.count())
        .where(
            Assignment.status == AssignmentStatus.ASSIGNED.value,
            Assignment.territory_id.in_(list(territory_ids)),
        )
        .group_by(Assignment.territory_id)
    ).all()
    return {territory_id: count for territory_id, count in rows if territory_id}


def _top_claims() -> Any:
    """Join condition: the run's matches at an account's top precedence."""
    return and_(
        RuleMatch.account_id == Assignment.account_id,
        RuleMatch.run_id == Assignment.run_id,
        RuleMatch.precedence == Assignment.top_precedence,
    )


def conflict_counts(territory_ids: Iterable[int]) -> dict[int, int]:
    """Conflict accounts that each territory claims at their top precedence."""
    rows = db.session.execute(
        select(RuleMatch.territory_id, func.count(func.distinct(RuleMatch.account_id)))
        .join(Assignment, _top_claims())
        .where(
            Assignment.status == AssignmentStatus.CONFLICT.value,
            RuleMatch.territory_id.in_(list(territory_ids)),
        )
        .group_by(RuleMatch.territory_id)
    ).all()
    return {territory_id: count for territory_id, count in rows}


def territory_tree(territories: Sequence[Territory]) -> list[TerritoryRow]:
    """The territories depth first, children under their parent, with counts.

    ``total_below`` adds the accounts of every descendant, since accounts are
    assigned to leaf territories only.
    """
    ids = [territory.id for territory in territories]
    assigned = assigned_counts(ids)
    conflicts = conflict_counts(ids)
    children: dict[int | None, list[Territory]] = defaultdict(list)
    for territory in territories:
        parent = territory.parent_id if territory.parent_id in ids else None
        children[parent].append(territory)

    rows: list[TerritoryRow] = []

    def walk(parent: int | None, depth: int) -> int:
        """Append the subtree's rows and return the accounts assigned in it."""
        subtree = 0
        for territory in children.get(parent, []):
            row = TerritoryRow(
                territory=territory,
                depth=depth,
                assigned=assigned.get(territory.id, 0),
                in_conflict=conflicts.get(territory.id, 0),
            )
            rows.append(row)
            row.total_below = row.assigned + walk(territory.id, depth + 1)
            subtree += row.total_below
        return subtree

    walk(None, 0)
    return rows


def regions_with_trees(
    regions: Sequence[Region],
) -> list[tuple[Region, list[TerritoryRow]]]:
    """Each region with its territory tree; three queries for all of them."""
    territories = territories_of_regions(region.id for region in regions)
    rows = territory_tree(territories)
    by_region: dict[int, list[TerritoryRow]] = defaultdict(list)
    for row in rows:
        by_region[row.territory.region_id].append(row)
    return [(region, by_region.get(region.id, [])) for region in regions]


def status_totals() -> dict[str, int]:
    """Accounts by assignment status; ``pending`` for those no run has seen."""
    rows = db.session.execute(
        select(Assignment.status, func.count()).group_by(Assignment.status)
    ).all()
    totals = {status.value: 0 for status in AssignmentStatus}
    totals.update({status: count for status, count in rows})
    accounts = db.session.scalar(select(func.count()).select_from(Account)) or 0
    totals["pending"] = accounts - sum(count for _, count in rows)
    totals["accounts"] = accounts
    return totals


def rules_in_words(rule: Rule) -> str:
    """A rule's conditions as one sentence fragment, e.g. for the "why" column."""
    if not rule.conditions:
        return "no conditions"
    return " and ".join(
        describe(condition.field, condition.operator, condition.value)
        for condition in rule.conditions
    )


def territory_rules(territory: Territory) -> Sequence[Rule]:
    """The territory's rules, highest precedence first, with their conditions."""
    return db.session.scalars(
        select(Rule)
        .where(Rule.territory_id == territory.id)
        .options(selectinload(Rule.conditions))
        .order_by(Rule.precedence.desc(), Rule.id)
    ).all()


# Account lists ---------------------------------------------------------------


def _page_of(query: Select[Any], page: int, per_page: int) -> Pagination:
    return db.paginate(query, page=page, per_page=per_page, max_per_page=None)


def territory_accounts(territory: Territory, page: int, per_page: int) -> Pagination:
    """A page of the accounts assigned to the territory, each with its rule.

    Items are :class:`Assignment` rows with ``account`` and ``rule`` loaded.
    """
    query = (
        select(Assignment)
        .join(Assignment.account)
        .where(
            Assignment.territory_id == territory.id,
            Assignment.status == AssignmentStatus.ASSIGNED.value,
        )
        .options(
            contains_eager(Assignment.account).defer(Account.location),
            joinedload(Assignment.rule).selectinload(Rule.conditions),
        )
        .order_by(Account.name, Account.id)
    )
    return _page_of(query, page, per_page)


def gap_accounts(page: int, per_page: int) -> Pagination:
    """A page of the accounts no rule matched; items are :class:`Account` rows."""
    query = (
        select(Account)
        .join(Assignment, Assignment.account_id == Account.id)
        .where(Assignment.status == AssignmentStatus.GAP.value)
        .options(defer(Account.location))
        .order_by(Account.name, Account.id)
    )
    return _page_of(query, page, per_page)


@dataclass(frozen=True)
class ConflictRow:
    account: Account
    top_precedence: int | None
    claims: list[Rule]


def conflict_accounts(page: int, per_page: int) -> tuple[Pagination, list[ConflictRow]]:
    """A page of conflict accounts, each with the rules that claim it at the top.

    The claims come from the rule matches of the run that made the assignment,
    loaded for the whole page at once.
    """
    query = (
        select(Assignment)
        .join(Assignment.account)
        .where(Assignment.status == AssignmentStatus.CONFLICT.value)
        .options(contains_eager(Assignment.account).defer(Account.location))
        .order_by(Account.name, Account.id)
    )
    pager = _page_of(query, page, per_page)
    claims = _top_claims_of([row.account_id for row in pager.items])
    rows = [
        ConflictRow(
            account=row.account,
            top_precedence=row.top_precedence,
            claims=claims.get(row.account_id, []),
        )
        for row in pager.items
    ]
    return pager, rows


def _top_claims_of(account_ids: list[int]) -> dict[int, list[Rule]]:
    if not account_ids:
        return {}
    pairs = db.session.execute(
        select(RuleMatch.account_id, RuleMatch.rule_id)
        .join(Assignment, _top_claims())
        .where(RuleMatch.account_id.in_(account_ids))
        .order_by(RuleMatch.account_id, RuleMatch.territory_id, RuleMatch.rule_id)
    ).all()
    rules = {
        rule.id: rule
        for rule in db.session.scalars(
            select(Rule)
            .where(Rule.id.in_({rule_id for _, rule_id in pairs}))
            .options(
                selectinload(Rule.conditions),
                joinedload(Rule.territory)
                .defer(Territory.shape)
                .joinedload(Territory.partner),
            )
        )
    }
    claims: dict[int, list[Rule]] = defaultdict(list)
    for account_id, rule_id in pairs:
        # A rule deleted since the run no longer has a name to show.
        if rule_id in rules:
            claims[account_id].append(rules[rule_id])
    return claims


# Runs ------------------------------------------------------------------------


def runs_page(page: int, per_page: int) -> Pagination:
    """A page of runs of every kind, newest first, with who started them."""
    query = select(Run).options(joinedload(Run.started_by)).order_by(Run.id.desc())
    return _page_of(query, page, per_page)


def latest_run(kind: str) -> Run | None:
    return db.session.scalars(
        select(Run).where(Run.kind == kind).order_by(Run.id.desc()).limit(1)
    ).first()


# Maps ------------------------------------------------------------------------


def _display_geometry(shape: Any) -> dict[str, Any]:
    geometry = to_shape(shape)
    min_x, min_y, max_x, max_y = geometry.bounds
    tolerance = max(max_x - min_x, max_y - min_y) * SIMPLIFY_FRACTION
    simplified = geometry.simplify(tolerance, preserve_topology=True)
    rounded = shapely.transform(
        simplified, lambda coords: np.round(coords, COORDINATE_DECIMALS)
    )
    return dict(mapping(rounded))


MAP_ACCOUNT_LIMIT = 5000


def account_points(territory: Territory, limit: int = MAP_ACCOUNT_LIMIT) -> list[dict]:
    """The located accounts assigned to the territory, as GeoJSON points."""
    rows = db.session.execute(
        select(
            Account.name,
            func.ST_X(Account.location),
            func.ST_Y(Account.location),
        )
        .join(Assignment, Assignment.account_id == Account.id)
        .where(
            Assignment.territory_id == territory.id,
            Assignment.status == AssignmentStatus.ASSIGNED.value,
            Account.location.is_not(None),
        )
        .order_by(Account.id)
        .limit(limit)
    ).all()
    return [
        {
            "type": "Feature",
            "properties": {"kind": "account", "name": name},
            "geometry": {"type": "Point", "coordinates": [x, y]},
        }
        for name, x, y in rows
    ]


def territory_map(territory: Territory) -> dict[str, Any]:
    """One territory's shape with its accounts' locations on top."""
    collection = territories_geojson([territory])
    collection["features"].extend(account_points(territory))
    return collection


def territories_geojson(territories: Iterable[Territory]) -> dict[str, Any]:
    """A FeatureCollection of the territories that have a shape, simplified."""
    features = [
        {
            "type": "Feature",
            "id": territory.id,
            "properties": {
                "name": territory.name,
                "partner": territory.partner.name if territory.partner else None,
            },
            "geometry": _display_geometry(territory.shape),
        }
        for territory in territories
        if territory.shape is not None
    ]
    return {"type": "FeatureCollection", "features": features}


def region_shapes(region: Region) -> Sequence[Territory]:
    """The region's territories with their shapes and owners, for its map."""
    return db.session.scalars(
        select(Territory)
        .where(Territory.region_id == region.id, Territory.shape.is_not(None))
        .options(joinedload(Territory.partner))
        .order_by(Territory.name)
    ).all()
