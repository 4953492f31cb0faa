"""Changing the thresholds of the performance flags (the settings row)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from decimal import Decimal

from portal.extensions import db
from portal.models import User
from portal.performance.models import PerformanceSettings
from territory_rules.editing import EditRejected

logger = logging.getLogger(__name__)

DECIMAL = re.compile(r"[0-9]+(?:[.,][0-9]+)?|[.,][0-9]+")
WHOLE = re.compile(r"[0-9]{1,6}")
SHARE_PLACES = 4
FACTOR_PLACES = 2
MAX_PERIODS = 12
MAX_DAYS = 3650
MAX_FACTOR = Decimal(100)


@dataclass(frozen=True)
class SettingsInput:
    """The settings as typed: numbers as text, switches as booleans."""

    underperform_share: str
    underperform_periods: str
    use_bottom_quartile: bool
    stalled_days: str
    revenue_drop_share: str
    imbalance_factor: str
    leaderboard_for_partners: bool


def _decimal(text: str) -> Decimal | None:
    text = (text or "").strip()
    if not DECIMAL.fullmatch(text):
        return None
    return Decimal(text.replace(",", "."))


def _share(text: str, what: str, errors: dict[str, str], key: str) -> Decimal:
    value = _decimal(text)
    if value is None or value > 1:
        errors[key] = f"Enter {what} as a share between 0 and 1, e.g. 0.8 for 80%."
    elif value != value.quantize(Decimal(1).scaleb(-SHARE_PLACES)):
        errors[key] = f"Use at most {SHARE_PLACES} decimals, e.g. 0.8 or 0.825."
    return value if value is not None else Decimal(0)


def _whole(text: str, what: str, limit: int, errors: dict[str, str], key: str) -> int:
    raw = (text or "").strip()
    value = int(raw) if WHOLE.fullmatch(raw) else None
    if value is None or not 1 <= value <= limit:
        errors[key] = f"Enter {what} as a whole number from 1 to {limit:,}."
        return 1
    return value


def _factor(text: str, errors: dict[str, str]) -> Decimal:
    value = _decimal(text)
    if value is None or not 1 < value <= MAX_FACTOR:
        errors["imbalance_factor"] = (
            f"Enter the factor as a number above 1 and at most {MAX_FACTOR}, e.g. 1.5."
        )
    elif value != value.quantize(Decimal(1).scaleb(-FACTOR_PLACES)):
        errors["imbalance_factor"] = "Use at most 2 decimals, e.g. 1.5 or 1.75."
    return value if value is not None else Decimal(0)


def save_settings(data: SettingsInput, user: User) -> PerformanceSettings:
    """Check and save the thresholds, and commit.

    :raise EditRejected: with a message per field; nothing is saved then.
    """
    errors: dict[str, str] = {}
    share = _share(
        data.underperform_share, "the share of target", errors, "underperform_share"
    )
    periods = _whole(
        data.underperform_periods,
        "the periods",
        MAX_PERIODS,
        errors,
        "underperform_periods",
    )
    days = _whole(data.stalled_days, "the days", MAX_DAYS, errors, "stalled_days")
    drop = _share(data.revenue_drop_share, "the drop", errors, "revenue_drop_share")
    factor = _factor(data.imbalance_factor, errors)
    if errors:
        raise EditRejected(errors)

    settings = PerformanceSettings.current()
    settings.underperform_share = share
    settings.underperform_periods = periods
    settings.use_bottom_quartile = data.use_bottom_quartile
    settings.stalled_days = days
    settings.revenue_drop_share = drop
    settings.imbalance_factor = factor
    settings.leaderboard_for_partners = data.leaderboard_for_partners
    db.session.commit()
    logger.info("%s changed the performance settings", user.email)
    return settings


def settings_text(settings: PerformanceSettings) -> SettingsInput:
    """The stored settings as the form shows them."""
    return SettingsInput(
        underperform_share=_plain(settings.underperform_share),
        underperform_periods=str(settings.underperform_periods),
        use_bottom_quartile=settings.use_bottom_quartile,
        stalled_days=str(settings.stalled_days),
        revenue_drop_share=_plain(settings.revenue_drop_share),
        imbalance_factor=_plain(settings.imbalance_factor),
        leaderboard_for_partners=settings.leaderboard_for_partners,
    )


def _plain(value: Decimal) -> str:
    return format(Decimal(value).normalize(), "f")
