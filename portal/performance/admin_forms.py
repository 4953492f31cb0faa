"""Forms of the targets and settings pages.

They render the fields and check the CSRF token; what the values must be is
checked by :mod:`portal.performance.targets` and
:mod:`portal.performance.thresholds`, whose messages the views put beside the
fields.
"""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, SelectChoice, SelectField, StringField
from wtforms.widgets import DateInput

from programs.forms import SEPARATOR_CHOICES
from territory_rules.rule_forms import strip

ENCODING_CHOICES = [
    SelectChoice("", "Detect (UTF-8, with or without BOM, or Windows-1252)"),
    SelectChoice("utf-8", "UTF-8"),
    SelectChoice("cp1252", "Windows-1252"),
]


class TargetForm(FlaskForm):
    territory = SelectField("Territory", validate_choice=False)
    starts_on = StringField("From", widget=DateInput(), filters=[strip])
    ends_on = StringField("To (included)", widget=DateInput(), filters=[strip])
    amount = StringField("Target revenue", filters=[strip])
    decimal_separator = SelectField(
        "Decimal separator",
        choices=SEPARATOR_CHOICES,
        default="point",
        validate_choice=False,
    )


class TargetImportForm(FlaskForm):
    """Shown on the page of :class:`TargetForm`: its fields are named and
    identified with the prefix ``import-`` so that the two forms' labels, ids and
    values never mix."""

    file = FileField("CSV file")
    decimal_separator = SelectField(
        "Decimal separator of the amounts",
        choices=SEPARATOR_CHOICES,
        default="point",
        validate_choice=False,
    )
    encoding = SelectField(
        "Encoding", choices=ENCODING_CHOICES, default="", validate_choice=False
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("prefix", "import")
        super().__init__(*args, **kwargs)


class SettingsForm(FlaskForm):
    underperform_share = StringField("Share of target", filters=[strip])
    underperform_periods = StringField("Consecutive periods", filters=[strip])
    use_bottom_quartile = BooleanField("Also flag the region's bottom quartile")
    stalled_days = StringField("Days without a sale or approved claim", filters=[strip])
    revenue_drop_share = StringField("Revenue drop", filters=[strip])
    imbalance_factor = StringField("Factor from the median", filters=[strip])
    leaderboard_for_partners = BooleanField("Show partners their rank")
