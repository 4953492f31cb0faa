"""Spatial columns and indexes written the same way for SpatiaLite and PostGIS."""

from alembic import op


def dialect() -> str:
    return op.get_bind().dialect.name


def enable_spatial() -> None:
    if dialect() == "sqlite":
        has_metadata = (
            op.get_bind()
            .exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE name = 'spatial_ref_sys'"
            )
            .first()
        )
        if not has_metadata:
            op.execute("SELECT InitSpatialMetadata(1)")
    else:
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")


def add_geometry(table: str, column: str, geometry_type: str, nullable: bool) -> None:
    """Add a geometry column in SRID 4326 with a spatial index."""
    if dialect() == "sqlite":
        not_null = 0 if nullable else 1
        op.execute(
            f"SELECT AddGeometryColumn('{table}', '{column}', 4326, "
            f"'{geometry_type}', 'XY', {not_null})"
        )
        op.execute(f"SELECT CreateSpatialIndex('{table}', '{column}')")
    else:
        null_clause = "" if nullable else " NOT NULL"
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN {column} "
            f"geometry({geometry_type}, 4326){null_clause}"
        )
        op.execute(f"CREATE INDEX ix_{table}_{column} ON {table} USING GIST ({column})")


def drop_spatial_table(table: str, column: str) -> None:
    if dialect() == "sqlite":
        op.execute(f"SELECT DisableSpatialIndex('{table}', '{column}')")
        op.execute(f"DROP TABLE IF EXISTS idx_{table}_{column}")
        op.execute(f"SELECT DiscardGeometryColumn('{table}', '{column}')")
    op.drop_table(table)
