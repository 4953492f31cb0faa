"""Which territory a postal code lies in, for a sale that names no known account.

Two kinds of evidence, in this order: where the accounts with that postal code
were assigned (the engine's own answer, with every rule applied), then the leaf
territory whose shape holds the code's centroid. Evidence that points at two
territories equally is reported, never settled by picking one.

Postal codes are text: ``02139`` keeps its zero, and ``2139`` is a different
code. A code that looks like it lost a leading zero is not padded here; the
note says which code was probably meant.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, exists, func, select, text
from sqlalchemy.orm import aliased, defer

from portal.extensions import db
from territory_rules.models import (
    Account,
    Assignment,
    AssignmentStatus,
    PostalCode,
    Territory,
)

# How many territories a note names when the evidence is split.
NAMED_AT_MOST = 3
# Codes that lost leading zeros are looked for up to this length, exclusive.
PADDED_AT_MOST = 11


def territory_for_postal_code(
    postal_code: str, country: str | None = None
) -> tuple[Territory | None, str]:
    """The territory the postal code lies in, and how that was found, in words.

    ``country`` narrows the centroids (and the accounts that have a country) to
    one country; without it, codes of every country count.
    """
    code = (postal_code or "").strip().upper()
    if not code:
        return None, "No postal code was given."

    counts = _assigned_counts(code, country)
    leading = _leaders(counts)
    if len(leading) == 1:
        return leading[0], _by_accounts_note(code, leading[0], counts)

    centroid = _centroid(code, country)
    holding = _leaf_territories_holding(centroid) if centroid else []
    if leading:
        return _settle_tie(code, leading, holding)
    if centroid is None:
        return None, _not_on_file_note(code, country)
    return _by_shape(code, holding)


def _settle_tie(
    code: str, leading: Sequence[Territory], holding: Sequence[Territory]
) -> tuple[Territory | None, str]:
    """Accounts split equally: the centroid decides if it lies in one of them."""
    split = (
        f"Accounts with postal code {code} are assigned to {_names(leading)} in "
        "equal numbers"
    )
    among = [territory for territory in holding if territory in leading]
    if len(among) != 1:
        return None, f"{split}, so no single territory can be named."
    return among[0], (
        f"{split}; the centre of the postal code lies inside {among[0].name}'s shape."
    )


# By the accounts' assignments --------------------------------------------------


def _assigned_counts(code: str, country: str | None) -> list[tuple[Territory, int]]:
    """Territories holding accounts with the code, most accounts first."""
    accounts = func.count(Assignment.account_id)
    query = (
        select(Territory, accounts)
        .join(Assignment, Assignment.territory_id == Territory.id)
        .join(Account, Account.id == Assignment.account_id)
        .where(
            Account.postal_code == code,
            Assignment.status == AssignmentStatus.ASSIGNED.value,
        )
        .group_by(Territory.id)
        .order_by(accounts.desc(), Territory.name)
        .options(defer(Territory.shape))
    )
    if country:
        # Accounts filed without a country may be in any.
        query = query.where((Account.country == country) | Account.country.is_(None))
    return [(territory, count) for territory, count in db.session.execute(query)]


def _leaders(counts: Sequence[tuple[Territory, int]]) -> list[Territory]:
    if not counts:
        return []
    top = counts[0][1]
    return [territory for territory, count in counts if count == top]


def _by_accounts_note(
    code: str, territory: Territory, counts: Sequence[tuple[Territory, int]]
) -> str:
    total = sum(count for _, count in counts)
    mine = counts[0][1]
    if total == 1:
        accounts = f"The one account with postal code {code} is"
    elif mine == total:
        accounts = f"All {total} accounts with postal code {code} are"
    else:
        accounts = f"{mine} of the {total} accounts with postal code {code} are"
    return f"{accounts} assigned to {territory.name}."


# By the centroid ----------------------------------------------------------------


def _by_shape(code: str, holding: Sequence[Territory]) -> tuple[Territory | None, str]:
    if len(holding) == 1:
        return holding[0], (
            f"The centre of postal code {code} lies inside {holding[0].name}'s shape."
        )
    if not holding:
        return None, (
            f"No account with postal code {code} is assigned to a territory, and "
            "the centre of the code lies inside no territory's shape."
        )
    return None, (
        f"The centre of postal code {code} lies inside the shapes of "
        f"{_names(holding)}, so no single territory can be named."
    )


def _centroid(code: str, country: str | None) -> PostalCode | None:
    # The same code in several countries: the alphabetically first one, as the
    # account importer does.
    query = select(PostalCode).where(PostalCode.code == code)
    if country:
        query = query.where(PostalCode.country == country)
    return db.session.scalars(query.order_by(PostalCode.country).limit(1)).first()


def _leaf_territories_holding(centroid: PostalCode) -> list[Territory]:
    child = aliased(Territory)
    query = (
        select(Territory)
        .join(PostalCode, PostalCode.id == centroid.id)
        .where(
            Territory.shape.is_not(None),
            ~exists().where(child.parent_id == Territory.id),
            _holds(),
        )
        .order_by(Territory.name)
        .options(defer(Territory.shape))
    )
    return list(db.session.scalars(query))


def _holds() -> Any:
    """The territory's shape holds the centroid, using each database's index.

    SpatiaLite only uses its R*Tree when asked through ``SpatialIndex``, so the
    candidates come from there and the exact test follows; PostGIS uses its
    GiST index by itself.
    """
    exact = func.ST_Intersects(Territory.shape, PostalCode.location)
    if db.engine.dialect.name != "sqlite":
        return exact
    candidates = text(
        "territories.id IN (SELECT ROWID FROM SpatialIndex "
        "WHERE f_table_name = 'territories' AND f_geometry_column = 'shape' "
        "AND search_frame = postal_codes.location)"
    )
    return and_(candidates, exact == 1)


# Notes --------------------------------------------------------------------------


def _names(territories: Sequence[Territory]) -> str:
    names = [territory.name for territory in territories[:NAMED_AT_MOST]]
    more = len(territories) - len(names)
    if more:
        names.append(f"{more} more")
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def _not_on_file_note(code: str, country: str | None) -> str:
    """The code is unknown; say which code was probably meant if it lost zeros."""
    note = (
        f"No account with postal code {code} is assigned to a territory, and "
        f"{code} is not among the postal codes on file."
    )
    meant = _with_zeros_restored(code, country) if code.isdigit() else None
    if meant is None:
        return note
    zeros = "zero" if len(meant) - len(code) == 1 else "zeros"
    return (
        f"{note} If it lost its leading {zeros}, write {meant}: codes are never "
        "padded automatically."
    )


def _with_zeros_restored(code: str, country: str | None) -> str | None:
    """The shortest code on file that is ``code`` with leading zeros, if any."""
    candidates = [code.zfill(width) for width in range(len(code) + 1, PADDED_AT_MOST)]
    centroids = select(PostalCode.code).where(PostalCode.code.in_(candidates))
    if country:
        centroids = centroids.where(PostalCode.country == country)
    accounts = select(Account.postal_code).where(Account.postal_code.in_(candidates))
    known = set(db.session.scalars(centroids.union(accounts)))
    return next((candidate for candidate in candidates if candidate in known), None)
