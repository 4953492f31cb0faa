"""The demo data set: real public files, loaded through the generic importers."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import PartnerOrganisation, Role, User
from portal.performance.demo import load_demo_targets
from programs.demo import load_demo_programs
from rewards.demo import load_demo_rewards
from rewards.imports import (
    SUPERSTORE_DATE_FORMAT,
    SUPERSTORE_MAPPING,
    ensure_built_in_sources,
)
from territory_rules.imports import (
    ImportReport,
    PostalCodeMapping,
    build_territory_shape,
    import_accounts,
    import_boundaries,
    import_postal_codes,
)
from territory_rules.jobs import start_assignment_run
from territory_rules.models import Account, Boundary, Condition, Region, Rule, Territory

logger = logging.getLogger(__name__)

BOUNDARY_LAYER = "US states"
ADMIN_EMAIL = "admin@demo.test"

POSTAL_CODES = PostalCodeMapping(
    code="zip_code",
    latitude="lat",
    longitude="long",
    city="city",
    state="state",
    country="US",
    pad_to=5,
)
SUPERSTORE = dataclasses.replace(SUPERSTORE_MAPPING, date_format=SUPERSTORE_DATE_FORMAT)


class DemoLoadError(RuntimeError):
    """The demo could not be loaded; the message says why."""


@dataclass
class DemoSignIn:
    email: str
    role: str
    organisation: str | None = None
    regions: list[str] = field(default_factory=list)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def manager_email(region: str) -> str:
    return f"manager.{slug(region)}@demo.test"


def partner_email(partner: str) -> str:
    return f"{slug(partner)}@demo.test"


def database_is_empty() -> bool:
    has_accounts = db.session.scalar(select(func.count()).select_from(Account))
    has_territories = db.session.scalar(select(func.count()).select_from(Territory))
    return not has_accounts and not has_territories


def load_plan(data_dir: Path) -> dict[str, Any]:
    return json.loads((data_dir / "demo_plan.json").read_text(encoding="utf-8"))


def load_demo(data_dir: Path, password: str) -> list[DemoSignIn]:
    """Import the demo files, build territories, users and programs, assign accounts.

    The assignment run is followed by a programs run, which works out who is in
    which program, onboarding statuses and tiers, and that by a rewards run,
    which prices the credited sales into points.
    """
    if not database_is_empty():
        raise DemoLoadError(
            "The database already holds territories or accounts; the demo loads only "
            "into an empty database."
        )
    plan = load_plan(data_dir)

    _check(
        import_boundaries(
            (data_dir / "us-states.json").read_bytes(), BOUNDARY_LAYER, "name"
        )
    )
    _check(
        import_postal_codes((data_dir / "us_zipcodes.csv").read_bytes(), POSTAL_CODES)
    )
    _check(
        import_accounts((data_dir / "sample_superstore.csv").read_bytes(), SUPERSTORE)
    )

    sign_ins = _create_people_and_territories(plan, password)
    db.session.flush()
    load_demo_programs(plan)
    load_demo_rewards(plan)
    load_demo_targets(plan)
    db.session.commit()
    ensure_built_in_sources()

    run, _created = start_assignment_run()
    if run.status == "failed":
        raise DemoLoadError(f"The demo's assignment run failed: {run.error}")
    logger.info(
        "Demo loaded: %s sign-ins, run %s %s", len(sign_ins), run.id, run.status
    )
    return sign_ins


def _check(report: ImportReport) -> None:
    if not report.ok:
        raise DemoLoadError("A demo file was refused: " + " ".join(report.errors[:5]))
    for note in report.notes:
        logger.info("Demo import: %s", note)


def _create_people_and_territories(
    plan: dict[str, Any], password: str
) -> list[DemoSignIn]:
    admin = _user(ADMIN_EMAIL, "Program Admin", Role.ADMIN, password)
    sign_ins = [DemoSignIn(admin.email, Role.ADMIN.value)]
    boundaries = {
        b.name: b
        for b in db.session.scalars(
            select(Boundary).where(Boundary.layer == BOUNDARY_LAYER)
        )
    }

    for region_name, territories in plan["regions"].items():
        manager = _user(
            manager_email(region_name), f"{region_name} Manager", Role.MANAGER, password
        )
        region = Region(name=region_name, managers=[manager])
        db.session.add(region)
        sign_ins.append(
            DemoSignIn(manager.email, Role.MANAGER.value, regions=[region_name])
        )
        for spec in territories:
            partner = _territory(region, spec, boundaries, plan)
            user = _user(
                partner_email(partner.name),
                f"{partner.name} team",
                Role.PARTNER,
                password,
            )
            user.organisation = partner
            sign_ins.append(DemoSignIn(user.email, Role.PARTNER.value, partner.name))
    return sign_ins


def _territory(
    region: Region,
    spec: dict[str, Any],
    boundaries: dict[str, Boundary],
    plan: dict[str, Any],
) -> PartnerOrganisation:
    partner = PartnerOrganisation(
        name=spec["partner"], partner_type=spec["partner_type"]
    )
    missing = [state for state in spec["states"] if state not in boundaries]
    if missing:
        raise DemoLoadError(
            f"No boundary named {', '.join(missing)} in the demo shapes."
        )
    territory = Territory(
        name=spec["territory"],
        region=region,
        partner=partner,
        boundaries=[boundaries[state] for state in spec["states"]],
        description=", ".join(spec["states"]),
    )
    territory.rules = [
        Rule(
            name=f"Inside {spec['territory']}",
            precedence=plan["shape_rule_precedence"],
            conditions=[Condition(field="shape", operator="inside", value=None)],
        ),
        Rule(
            name=f"{spec['territory']} states (outside every state shape)",
            precedence=plan["state_rule_precedence"],
            conditions=[Condition(field="state", operator="in", value=spec["states"])],
        ),
    ]
    db.session.add(territory)
    db.session.flush()
    build_territory_shape(territory)
    return partner


def _user(email: str, name: str, role: Role, password: str) -> User:
    user = User(email=email, display_name=name, role=role.value)
    user.set_password(password)
    db.session.add(user)
    return user
