"""Performance: territory targets with their months, flag thresholds.

Revision ID: 0004_performance
Revises: 0003_rewards
Create Date: 2026-12-10
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_performance"
down_revision = "0003_rewards"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "territory_targets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "territory_id",
            sa.Integer(),
            sa.ForeignKey("territories.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("amount", sa.Numeric(16, 2), nullable=False),
        sa.Column(
            "set_by_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="SET NULL"),
        ),
        sa.Column("updated_at_utc", sa.DateTime(), nullable=False),
    )
    op.create_index(
        "ix_territory_targets_territory",
        "territory_targets",
        ["territory_id", "starts_on"],
    )
    op.create_table(
        "target_months",
        sa.Column(
            "target_id",
            sa.Integer(),
            sa.ForeignKey("territory_targets.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("month", sa.Date(), primary_key=True),
        sa.Column("amount", sa.Numeric(16, 2), nullable=False),
    )
    op.create_table(
        "performance_settings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("underperform_share", sa.Numeric(6, 4), nullable=False),
        sa.Column("underperform_periods", sa.Integer(), nullable=False),
        sa.Column("use_bottom_quartile", sa.Boolean(), nullable=False),
        sa.Column("stalled_days", sa.Integer(), nullable=False),
        sa.Column("revenue_drop_share", sa.Numeric(6, 4), nullable=False),
        sa.Column("imbalance_factor", sa.Numeric(6, 2), nullable=False),
        sa.Column("leaderboard_for_partners", sa.Boolean(), nullable=False),
        sa.Column("updated_at_utc", sa.DateTime(), nullable=False),
    )


def downgrade():
    for table in ("performance_settings", "target_months", "territory_targets"):
        op.drop_table(table)
