"""Programs: targeting rules, training modules, steps, tiers, standings, eligibility.

Revision ID: 0002_programs
Revises: 0001_foundation
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_programs"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), primary_key=True)


def _fk(name: str, target: str, ondelete: str, nullable: bool = False) -> sa.Column:
    return sa.Column(
        name,
        sa.Integer(),
        sa.ForeignKey(target, ondelete=ondelete),
        nullable=nullable,
        index=True,
    )


def _at(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(), nullable=False)


def upgrade():
    with op.batch_alter_table("runs") as runs:
        runs.add_column(
            sa.Column(
                "rerun_requested",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )
    with op.batch_alter_table("partner_organisations") as organisations:
        organisations.add_column(
            sa.Column(
                "onboarding_status",
                sa.String(20),
                nullable=False,
                server_default="not_started",
            )
        )

    op.create_table(
        "programs",
        _id(),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("kpi", sa.String(30)),
        sa.Column("kpi_direction", sa.String(10), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _at("created_at_utc"),
        _at("updated_at_utc"),
    )
    op.create_table(
        "program_rules",
        _id(),
        _fk("program_id", "programs.id", "CASCADE"),
        sa.Column("name", sa.String(200), nullable=False),
        _at("created_at_utc"),
    )
    op.create_table(
        "program_conditions",
        _id(),
        _fk("rule_id", "program_rules.id", "CASCADE"),
        sa.Column("field", sa.String(40), nullable=False),
        sa.Column("operator", sa.String(40), nullable=False),
        sa.Column("value", sa.JSON()),
    )
    op.create_table(
        "training_modules",
        _id(),
        sa.Column("title", sa.String(200), nullable=False, unique=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("link_url", sa.String(500)),
        sa.Column("file_name", sa.String(200)),
        sa.Column("file_stored_as", sa.String(100)),
        sa.Column("estimated_minutes", sa.Integer(), nullable=False),
        sa.Column("quiz", sa.JSON()),
        sa.Column("pass_mark_percent", sa.Integer()),
        _at("created_at_utc"),
    )
    op.create_table(
        "program_steps",
        _id(),
        _fk("program_id", "programs.id", "CASCADE"),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        _fk("module_id", "training_modules.id", "CASCADE", nullable=True),
        sa.Column("title", sa.String(200)),
        sa.Column("required", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "module_completions",
        _id(),
        _fk("user_id", "users.id", "CASCADE"),
        _fk("module_id", "training_modules.id", "CASCADE"),
        _fk("organisation_id", "partner_organisations.id", "CASCADE", nullable=True),
        sa.Column("score_percent", sa.Integer()),
        _at("completed_at_utc"),
        sa.UniqueConstraint("user_id", "module_id", name="uq_module_completions_user"),
    )
    op.create_table(
        "quiz_attempts",
        _id(),
        _fk("user_id", "users.id", "CASCADE"),
        _fk("module_id", "training_modules.id", "CASCADE"),
        sa.Column("score_percent", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        _at("attempted_at_utc"),
    )
    op.create_table(
        "step_completions",
        _id(),
        _fk("organisation_id", "partner_organisations.id", "CASCADE"),
        _fk("step_id", "program_steps.id", "CASCADE"),
        sa.Column(
            "completed_by_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="SET NULL"),
        ),
        _at("completed_at_utc"),
        sa.UniqueConstraint(
            "organisation_id", "step_id", name="uq_step_completions_org"
        ),
    )
    op.create_table(
        "tiers",
        _id(),
        _fk("program_id", "programs.id", "CASCADE"),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("threshold", sa.Numeric(16, 4), nullable=False),
        sa.Column("benefits", sa.Text()),
        sa.Column("points_multiplier", sa.Numeric(8, 4)),
        sa.Column("bonus_points", sa.Integer()),
        sa.UniqueConstraint("program_id", "name", name="uq_tiers_program_name"),
    )
    op.create_table(
        "program_standings",
        sa.Column(
            "program_id",
            sa.Integer(),
            sa.ForeignKey("programs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "organisation_id",
            sa.Integer(),
            sa.ForeignKey("partner_organisations.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("kpi_value", sa.Numeric(18, 4), nullable=False),
        sa.Column(
            "tier_id", sa.Integer(), sa.ForeignKey("tiers.id", ondelete="SET NULL")
        ),
        sa.Column("run_id", sa.Integer()),
        _at("computed_at_utc"),
    )
    op.create_table(
        "program_eligibility",
        _id(),
        _fk("program_id", "programs.id", "CASCADE"),
        sa.Column(
            "organisation_id",
            sa.Integer(),
            sa.ForeignKey("partner_organisations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "rule_id",
            sa.Integer(),
            sa.ForeignKey("program_rules.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "territory_id",
            sa.Integer(),
            sa.ForeignKey("territories.id", ondelete="SET NULL"),
        ),
        sa.Column("run_id", sa.Integer()),
        _at("computed_at_utc"),
    )
    op.create_index(
        "ix_program_eligibility_org_program",
        "program_eligibility",
        ["organisation_id", "program_id"],
    )


def downgrade():
    for table in (
        "program_eligibility",
        "program_standings",
        "tiers",
        "step_completions",
        "quiz_attempts",
        "module_completions",
        "program_steps",
        "training_modules",
        "program_conditions",
        "program_rules",
        "programs",
    ):
        op.drop_table(table)
    with op.batch_alter_table("partner_organisations") as organisations:
        organisations.drop_column("onboarding_status")
    with op.batch_alter_table("runs") as runs:
        runs.drop_column("rerun_requested")
