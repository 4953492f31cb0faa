"""The demo's reward plans and multipliers, from the demo plan."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select

from portal.extensions import db
from programs.models import Program
from rewards.models import RewardPlan, RewardRule


def load_demo_rewards(plan: dict[str, Any]) -> int:
    """Give the plan's incentive programs their reward plans; the number given."""
    given = 0
    for spec in plan.get("programs", []):
        if "reward_plan" not in spec:
            continue
        program = db.session.scalars(
            select(Program).where(Program.name == spec["name"])
        ).one()
        db.session.add(_reward_plan(program, spec["reward_plan"]))
        for rule in spec.get("reward_rules", []):
            db.session.add(
                RewardRule(
                    program=program,
                    name=rule["name"],
                    dimension=rule["dimension"],
                    match_value=rule["match"],
                    multiplier=Decimal(rule["multiplier"]),
                )
            )
        given += 1
    db.session.flush()
    return given


def _reward_plan(program: Program, spec: dict[str, Any]) -> RewardPlan:
    cap = spec.get("cap_points")
    return RewardPlan(
        program=program,
        points_per_unit=Decimal(spec["points_per_unit"]),
        approval_days=spec["approval_days"],
        expiry_days=spec.get("expiry_days"),
        cap_points=Decimal(cap) if cap else None,
        cap_period=spec.get("cap_period", "month"),
    )
