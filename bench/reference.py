"""The hand-written spatial join the product is measured against, and the check.

The join answers one question directly: which territories' shapes contain each
account. Where the shape rules decide (they carry the highest precedence), the
product's assignment must say the same: that territory when there is one, a
conflict when several shapes claim the account.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from bench.database import SHAPE_PRECEDENCE
from portal.extensions import db

REFERENCE_TABLE = "bench_spatial_join"

POSTGRES_JOIN = f"""
CREATE TABLE {REFERENCE_TABLE} AS
SELECT a.id AS account_id, min(t.id) AS territory_id, count(*) AS claimants
FROM accounts AS a
JOIN territories AS t ON ST_Intersects(t.shape, a.location)
GROUP BY a.id
"""

# SpatiaLite answers a bounding-box search only through its SpatialIndex
# virtual table; the exact test then runs on the few candidates. CROSS JOIN
# keeps SQLite from scanning the virtual table first, where it has no search
# frame and returns nothing.
SQLITE_JOIN = f"""
CREATE TABLE {REFERENCE_TABLE} AS
SELECT a.id AS account_id, min(t.id) AS territory_id, count(*) AS claimants
FROM territories AS t
CROSS JOIN SpatialIndex AS s
CROSS JOIN accounts AS a
WHERE s.f_table_name = 'accounts'
  AND s.f_geometry_column = 'location'
  AND s.search_frame = t.shape
  AND a.id = s.rowid
  AND ST_Intersects(t.shape, a.location) = 1
GROUP BY a.id
"""

# (account, territory or 0 for a conflict, number of claiming territories)
PRODUCT_SIDE = f"""
SELECT account_id, COALESCE(territory_id, 0) AS territory_id, claimants
FROM assignments WHERE top_precedence = {SHAPE_PRECEDENCE}
"""
REFERENCE_SIDE = f"""
SELECT account_id,
       CASE WHEN claimants = 1 THEN territory_id ELSE 0 END AS territory_id,
       claimants
FROM {REFERENCE_TABLE}
"""

PER_TERRITORY = """
SELECT territory_id, count(*) FROM ({side}) AS decided
WHERE claimants = 1 GROUP BY territory_id
"""


@dataclass(frozen=True)
class Agreement:
    decided_by_shape: int
    only_in_reference: int
    only_in_product: int
    territories_with_other_counts: int

    @property
    def agrees(self) -> bool:
        return not (
            self.only_in_reference
            or self.only_in_product
            or self.territories_with_other_counts
        )


def run_reference_join() -> None:
    """Write every account's containing territories into the reference table."""
    sql = SQLITE_JOIN if db.engine.dialect.name == "sqlite" else POSTGRES_JOIN
    with db.engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {REFERENCE_TABLE}"))
        conn.execute(text(sql))


def _count(conn: Connection, sql: str) -> int:
    return int(conn.execute(text(f"SELECT count(*) FROM ({sql}) AS rows")).scalar_one())


def _per_territory(conn: Connection, side: str) -> dict[int, int]:
    rows = conn.execute(text(PER_TERRITORY.format(side=side))).tuples().all()
    return {int(territory_id): int(count) for territory_id, count in rows}


def compare_with_product() -> Agreement:
    """Both directions of EXCEPT, and the number of accounts per territory."""
    with db.engine.connect() as conn:
        product = _per_territory(conn, PRODUCT_SIDE)
        reference = _per_territory(conn, REFERENCE_SIDE)
        differing = {
            territory
            for territory in product.keys() | reference.keys()
            if product.get(territory) != reference.get(territory)
        }
        return Agreement(
            decided_by_shape=_count(conn, REFERENCE_SIDE),
            only_in_reference=_count(conn, f"{REFERENCE_SIDE} EXCEPT {PRODUCT_SIDE}"),
            only_in_product=_count(conn, f"{PRODUCT_SIDE} EXCEPT {REFERENCE_SIDE}"),
            territories_with_other_counts=len(differing),
        )
