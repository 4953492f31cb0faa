"""Rewards: territory history, sales sources and imports, claims, reward rules,
the points ledger and payouts.

Revision ID: 0003_rewards
Revises: 0002_programs
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_rewards"
down_revision = "0002_programs"
branch_labels = None
depends_on = None


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), primary_key=True)


def _fk(name: str, target: str, ondelete: str, nullable: bool = True) -> sa.Column:
    return sa.Column(
        name, sa.Integer(), sa.ForeignKey(target, ondelete=ondelete), nullable=nullable
    )


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(), nullable=nullable)


def upgrade():
    _territory_history()
    _sales()
    _claims()
    _rules()
    _ledger()


def _territory_history() -> None:
    op.create_table(
        "territory_ownerships",
        _id(),
        _fk("territory_id", "territories.id", "CASCADE", nullable=False),
        _fk("partner_id", "partner_organisations.id", "SET NULL"),
        sa.Column("valid_from", sa.Date()),
        sa.Column("valid_to", sa.Date()),
    )
    op.create_index(
        "ix_territory_ownerships_territory", "territory_ownerships", ["territory_id"]
    )
    op.create_table(
        "account_placements",
        _id(),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("territory_id", sa.Integer()),
        sa.Column("valid_from", sa.Date()),
        sa.Column("valid_to", sa.Date()),
        sa.Column("run_id", sa.Integer()),
    )
    op.create_index(
        "ix_account_placements_account", "account_placements", ["account_id"]
    )
    # What is on file now has held since always, as far as history can tell.
    op.execute(
        "INSERT INTO territory_ownerships (territory_id, partner_id) "
        "SELECT id, partner_id FROM territories"
    )
    op.execute(
        "INSERT INTO account_placements (account_id, territory_id, run_id) "
        "SELECT account_id, territory_id, run_id FROM assignments "
        "WHERE status = 'assigned'"
    )


def _sales() -> None:
    op.create_table(
        "sales_sources",
        _id(),
        sa.Column("name", sa.String(120), nullable=False, unique=True),
        sa.Column("mapping", sa.JSON(), nullable=False),
        sa.Column("date_format", sa.String(40), nullable=False),
        sa.Column("decimal_separator", sa.String(1), nullable=False),
        sa.Column("encoding", sa.String(20), nullable=False),
        sa.Column("built_in", sa.Boolean(), nullable=False),
        _at("created_at_utc"),
    )
    op.create_table(
        "sales_imports",
        _id(),
        _fk("source_id", "sales_sources.id", "SET NULL"),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("counts", sa.JSON()),
        sa.Column("errors", sa.JSON()),
        sa.Column("notes", sa.JSON()),
        _fk("imported_by_id", "users.id", "SET NULL"),
        _at("created_at_utc"),
    )


def _claims() -> None:
    op.create_table(
        "claims",
        _id(),
        _fk("organisation_id", "partner_organisations.id", "CASCADE", nullable=False),
        _fk("submitted_by_id", "users.id", "SET NULL"),
        sa.Column("customer_name", sa.String(200), nullable=False),
        sa.Column("postal_code", sa.String(20), nullable=False),
        sa.Column("amount", sa.Numeric(16, 4), nullable=False),
        sa.Column("sale_date", sa.Date(), nullable=False),
        sa.Column("invoice_number", sa.String(120), nullable=False),
        sa.Column("category", sa.String(120)),
        sa.Column("file_name", sa.String(255)),
        sa.Column("file_stored_as", sa.String(100)),
        sa.Column("status", sa.String(20), nullable=False),
        _fk("territory_id", "territories.id", "SET NULL"),
        sa.Column("location_note", sa.String(300)),
        sa.Column("review_reason", sa.Text()),
        _fk("reviewed_by_id", "users.id", "SET NULL"),
        _at("reviewed_at_utc", nullable=True),
        _at("created_at_utc"),
    )
    op.create_index("ix_claims_organisation_id", "claims", ["organisation_id"])
    op.create_index("ix_claims_status", "claims", ["status"])
    op.create_index(
        "uq_claims_org_invoice",
        "claims",
        ["organisation_id", "invoice_number"],
        unique=True,
    )


def _rules() -> None:
    op.create_table(
        "reward_plans",
        sa.Column(
            "program_id",
            sa.Integer(),
            sa.ForeignKey("programs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("points_per_unit", sa.Numeric(12, 4), nullable=False),
        sa.Column("approval_days", sa.Integer(), nullable=False),
        sa.Column("expiry_days", sa.Integer()),
        sa.Column("cap_points", sa.Numeric(16, 2)),
        sa.Column("cap_period", sa.String(10), nullable=False),
    )
    op.create_table(
        "reward_rules",
        _id(),
        _fk("program_id", "programs.id", "CASCADE", nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("dimension", sa.String(20), nullable=False),
        sa.Column("match_value", sa.String(200), nullable=False),
        sa.Column("multiplier", sa.Numeric(8, 4), nullable=False),
    )
    op.create_index("ix_reward_rules_program_id", "reward_rules", ["program_id"])
    op.create_index(
        "uq_reward_rules_match",
        "reward_rules",
        ["program_id", "dimension", "match_value"],
        unique=True,
    )


def _ledger() -> None:
    op.create_table(
        "payouts",
        _id(),
        sa.Column("note", sa.String(300)),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("points", sa.Numeric(16, 2), nullable=False),
        _fk("created_by_id", "users.id", "SET NULL"),
        _at("created_at_utc"),
    )
    op.create_table(
        "ledger_entries",
        _id(),
        sa.Column("key", sa.String(200), nullable=False, unique=True),
        sa.Column("source_key", sa.String(180), nullable=False),
        _fk("organisation_id", "partner_organisations.id", "CASCADE", nullable=False),
        _fk("program_id", "programs.id", "SET NULL"),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("sales_line_id", sa.Integer()),
        _fk("claim_id", "claims.id", "SET NULL"),
        _fk("tier_id", "tiers.id", "SET NULL"),
        _fk("expires_entry_id", "ledger_entries.id", "SET NULL"),
        sa.Column("points", sa.Numeric(16, 2), nullable=False),
        sa.Column("amount", sa.Numeric(16, 4)),
        sa.Column("rate", sa.Numeric(12, 4)),
        sa.Column("multiplier", sa.Numeric(16, 8)),
        sa.Column("priced_points", sa.Numeric(16, 2)),
        _fk("category_rule_id", "reward_rules.id", "SET NULL"),
        _fk("segment_rule_id", "reward_rules.id", "SET NULL"),
        _fk("territory_rule_id", "reward_rules.id", "SET NULL"),
        sa.Column("reason", sa.Text()),
        sa.Column("earned_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        _at("approved_at_utc", nullable=True),
        _fk("payout_id", "payouts.id", "SET NULL"),
        _fk("created_by_id", "users.id", "SET NULL"),
        sa.Column("run_id", sa.Integer()),
        _at("created_at_utc"),
    )
    op.create_index(
        "ix_ledger_entries_org_program",
        "ledger_entries",
        ["organisation_id", "program_id"],
    )
    op.create_index("ix_ledger_entries_source_key", "ledger_entries", ["source_key"])
    op.create_index("ix_ledger_entries_status", "ledger_entries", ["status"])
    op.create_index("ix_ledger_entries_payout_id", "ledger_entries", ["payout_id"])
    op.create_index(
        "ix_ledger_entries_sales_line_id", "ledger_entries", ["sales_line_id"]
    )
    # Expiry looks entries up by the entry they expire, and deleting an entry
    # looks for the expiry pointing at it.
    op.create_index(
        "ix_ledger_entries_expires_entry_id", "ledger_entries", ["expires_entry_id"]
    )
    op.create_index("ix_ledger_entries_claim_id", "ledger_entries", ["claim_id"])


def downgrade():
    for table in (
        "ledger_entries",
        "payouts",
        "reward_rules",
        "reward_plans",
        "claims",
        "sales_imports",
        "sales_sources",
        "account_placements",
        "territory_ownerships",
    ):
        op.drop_table(table)
