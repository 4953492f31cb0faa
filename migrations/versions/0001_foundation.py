"""Foundation: users, partner organisations, runs, territories, accounts.

Revision ID: 0001_foundation
Revises:
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
from spatial import add_geometry, drop_spatial_table, enable_spatial

revision = "0001_foundation"
down_revision = None
branch_labels = None
depends_on = None

ACTIVE_RUN = sa.text("status IN ('queued', 'running')")


def _created_at() -> sa.Column:
    return sa.Column("created_at_utc", sa.DateTime(), nullable=False)


def upgrade():
    enable_spatial()

    op.create_table(
        "partner_organisations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("partner_type", sa.String(40), nullable=False),
        _created_at(),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(254), nullable=False, unique=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column(
            "organisation_id",
            sa.Integer(),
            sa.ForeignKey("partner_organisations.id", ondelete="SET NULL"),
        ),
        sa.Column("session_version", sa.Integer(), nullable=False, server_default="0"),
        _created_at(),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(60), nullable=False, index=True),
        sa.Column("task", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("message", sa.String(300)),
        sa.Column("counts", sa.JSON()),
        sa.Column("error", sa.Text()),
        sa.Column("backend", sa.String(20), nullable=False),
        sa.Column("job_id", sa.String(100)),
        sa.Column(
            "started_by_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="SET NULL"),
        ),
        _created_at(),
        sa.Column("started_at_utc", sa.DateTime()),
        sa.Column("finished_at_utc", sa.DateTime()),
        sa.Column("heartbeat_at_utc", sa.DateTime()),
    )
    op.create_index(
        "uq_runs_one_active_per_kind",
        "runs",
        ["kind"],
        unique=True,
        postgresql_where=ACTIVE_RUN,
        sqlite_where=ACTIVE_RUN,
    )

    op.create_table(
        "regions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(120), nullable=False, unique=True),
        _created_at(),
    )
    op.create_table(
        "region_managers",
        sa.Column(
            "region_id",
            sa.Integer(),
            sa.ForeignKey("regions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
    )
    op.create_table(
        "boundaries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("layer", sa.String(120), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("code", sa.String(60)),
        sa.Column("repair_note", sa.String(300)),
        sa.Column("imported_at_utc", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("layer", "name", name="uq_boundaries_layer"),
    )
    add_geometry("boundaries", "shape", "MULTIPOLYGON", nullable=False)

    op.create_table(
        "territories",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column(
            "region_id", sa.Integer(), sa.ForeignKey("regions.id"), nullable=False
        ),
        sa.Column(
            "parent_id",
            sa.Integer(),
            sa.ForeignKey("territories.id", ondelete="SET NULL"),
        ),
        sa.Column(
            "partner_id",
            sa.Integer(),
            sa.ForeignKey("partner_organisations.id", ondelete="SET NULL"),
        ),
        sa.Column("description", sa.String(500)),
        _created_at(),
    )
    for column in ("region_id", "parent_id", "partner_id"):
        op.create_index(f"ix_territories_{column}", "territories", [column])
    add_geometry("territories", "shape", "MULTIPOLYGON", nullable=True)

    op.create_table(
        "territory_boundaries",
        sa.Column(
            "territory_id",
            sa.Integer(),
            sa.ForeignKey("territories.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "boundary_id",
            sa.Integer(),
            sa.ForeignKey("boundaries.id", ondelete="CASCADE"),
            primary_key=True,
        ),
    )
    op.create_table(
        "rules",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "territory_id",
            sa.Integer(),
            sa.ForeignKey("territories.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("precedence", sa.Integer(), nullable=False),
        _created_at(),
    )
    op.create_table(
        "conditions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "rule_id",
            sa.Integer(),
            sa.ForeignKey("rules.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("field", sa.String(40), nullable=False),
        sa.Column("operator", sa.String(40), nullable=False),
        sa.Column("value", sa.JSON()),
    )

    op.create_table(
        "postal_codes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("country", sa.String(3), nullable=False),
        sa.Column("code", sa.String(20), nullable=False),
        sa.Column("city", sa.String(120)),
        sa.Column("state", sa.String(120)),
        sa.UniqueConstraint("country", "code", name="uq_postal_codes_country"),
    )
    op.create_index("ix_postal_codes_city_state", "postal_codes", ["city", "state"])
    add_geometry("postal_codes", "location", "POINT", nullable=False)

    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(300), nullable=False, unique=True),
        sa.Column("external_id", sa.String(120), nullable=False, index=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("postal_code", sa.String(20), index=True),
        sa.Column("city", sa.String(120)),
        sa.Column("state", sa.String(120), index=True),
        sa.Column("country", sa.String(3)),
        sa.Column("segment", sa.String(120)),
        sa.Column("industry", sa.String(120)),
        sa.Column("annual_revenue", sa.Numeric(16, 2)),
        sa.Column("location_source", sa.String(20), nullable=False),
        _created_at(),
    )
    add_geometry("accounts", "location", "POINT", nullable=True)

    op.create_table(
        "sales_lines",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("external_line_id", sa.String(120), nullable=False, unique=True),
        sa.Column(
            "account_id",
            sa.Integer(),
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("order_ref", sa.String(120)),
        sa.Column("order_date", sa.Date(), nullable=False, index=True),
        sa.Column("amount", sa.Numeric(16, 4), nullable=False),
        sa.Column("category", sa.String(120)),
        sa.Column("product", sa.String(300)),
    )
    # Both tables below are derived, rewritten whole by each assignment run:
    # no foreign keys, whose checks would cost one lookup per written row.
    op.create_table(
        "assignments",
        sa.Column("account_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("territory_id", sa.Integer(), index=True),
        sa.Column("rule_id", sa.Integer()),
        sa.Column("top_precedence", sa.Integer()),
        sa.Column("claimants", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer()),
    )
    op.create_table(
        "rule_matches",
        sa.Column("run_id", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.Integer(), primary_key=True),
        sa.Column("rule_id", sa.Integer(), primary_key=True),
        sa.Column("territory_id", sa.Integer(), nullable=False),
        sa.Column("precedence", sa.Integer(), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Staging rows that the next run rebuilds are not worth the WAL: a crash
        # empties the table, which only leaves the conflict report without claims.
        op.execute("ALTER TABLE rule_matches SET UNLOGGED")


def downgrade():
    for table in ("rule_matches", "assignments", "sales_lines"):
        op.drop_table(table)
    drop_spatial_table("accounts", "location")
    drop_spatial_table("postal_codes", "location")
    for table in ("conditions", "rules", "territory_boundaries"):
        op.drop_table(table)
    drop_spatial_table("territories", "shape")
    drop_spatial_table("boundaries", "shape")
    for table in ("region_managers", "regions", "runs", "users"):
        op.drop_table(table)
    op.drop_table("partner_organisations")
