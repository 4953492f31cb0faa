"""The leaderboard of a region: partners ranked by attainment, then revenue."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from portal.performance import figures
from portal.performance.periods import Period
from territory_rules.models import Region

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Place:
    """A partner's place: partners with equal attainment and revenue share a rank."""

    rank: int
    partner_id: int
    name: str
    revenue: Decimal
    target: Decimal | None
    attainment: Decimal | None


def _order(row: figures.PartnerRow) -> tuple[bool, Decimal, Decimal]:
    attainment = row.figures.attainment
    # Partners without a target come after every partner with one.
    return (attainment is None, -(attainment or Decimal(0)), -row.figures.revenue)


def ranked(partners: Sequence[figures.PartnerRow]) -> list[Place]:
    """Partners owning a territory, best first; ties share the better rank."""
    owners = [row for row in partners if row.owns_territory]
    ordered = sorted(owners, key=lambda row: (_order(row), row.name.casefold()))
    places: list[Place] = []
    for position, row in enumerate(ordered, start=1):
        tied = places and _order(ordered[position - 2]) == _order(row)
        rank = places[-1].rank if tied else position
        places.append(
            Place(
                rank=rank,
                partner_id=row.id,
                name=row.name,
                revenue=row.figures.revenue,
                target=row.figures.target,
                attainment=row.figures.attainment,
            )
        )
    return places


def leaderboard(region: Region, period: Period) -> list[Place]:
    """The region's partners ranked for the period."""
    return ranked(figures.partner_rows([region], period))


def ordinal(number: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, 22nd."""
    if 10 <= number % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def rank_sentence(place: Place, of: int, region: str, when: str) -> str:
    """``You rank 3rd of 4 partners in West this quarter.``"""
    partners = "partner" if of == 1 else "partners"
    return f"You rank {ordinal(place.rank)} of {of} {partners} in {region} {when}."
