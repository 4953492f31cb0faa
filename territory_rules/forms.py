"""Upload forms for the importers: a file and the mapping of its columns."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import IntegerField, SelectChoice, SelectField, StringField
from wtforms.validators import (
    DataRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
)

from territory_rules.imports import AccountMapping, PostalCodeMapping

# SelectChoice is WTForms 3.3's way to declare options (tuples are deprecated).
ENCODINGS = [
    SelectChoice("", "Detect (UTF-8, else Windows-1252)"),
    SelectChoice("utf-8", "UTF-8"),
    SelectChoice("cp1252", "Windows-1252"),
    SelectChoice("latin-1", "ISO-8859-1 (Latin-1)"),
    SelectChoice("utf-16", "UTF-16"),
]


def strip(value: str | None) -> str | None:
    return value.strip() if value else value


def column(label: str, required: bool = False, **kwargs: Any) -> StringField:
    """A text field naming a column (or property) of the uploaded file."""
    first = DataRequired(f"Enter the {label.lower()}.") if required else Optional()
    return StringField(
        label, validators=[first, Length(max=120)], filters=[strip], **kwargs
    )


def country_code() -> StringField:
    return StringField(
        "Country of every row",
        validators=[
            Optional(),
            Regexp(
                r"^[A-Za-z]{1,3}$", message="Enter a code of up to 3 letters, e.g. US."
            ),
        ],
    )


def pad_width(label: str) -> IntegerField:
    return IntegerField(
        label,
        validators=[
            Optional(),
            NumberRange(
                1, 20, "Enter a width between 1 and 20, e.g. 5 for US ZIP codes."
            ),
        ],
    )


def blank_to_none(value: str | None) -> str | None:
    return value or None


class BoundaryImportForm(FlaskForm):
    file = FileField(
        "GeoJSON file", validators=[FileRequired("Choose a GeoJSON file.")]
    )
    layer = StringField(
        "Layer",
        validators=[DataRequired("Name the layer, e.g. US states."), Length(max=120)],
    )
    name_property = column("Property that names each shape", required=True)
    code_property = column("Property holding a code (optional)")


class PostalCodeImportForm(FlaskForm):
    file = FileField("CSV file", validators=[FileRequired("Choose a CSV file.")])
    code = column("Postal code column", required=True)
    latitude = column("Latitude column", required=True)
    longitude = column("Longitude column", required=True)
    city = column("City column")
    state = column("State column")
    country = country_code()
    country_column = column("Country column")
    pad_to = pad_width("Pad postal codes to (digits)")
    encoding = SelectField("Encoding", choices=ENCODINGS, default="")

    def validate(self, extra_validators: Any = None) -> bool:
        # Checked here, not in a validate_country method: Optional() ends a field's
        # validation when it is empty, which is the case to catch.
        valid = super().validate(extra_validators)
        if not self.country.data and not self.country_column.data:
            self.country.errors = [
                *self.country.errors,
                "Enter the country of these postal codes, or the column that holds it.",
            ]
            return False
        return valid

    def mapping(self) -> PostalCodeMapping:
        return PostalCodeMapping(
            code=self.code.data or "",
            latitude=self.latitude.data or "",
            longitude=self.longitude.data or "",
            city=blank_to_none(self.city.data),
            state=blank_to_none(self.state.data),
            country_column=blank_to_none(self.country_column.data),
            country=(self.country.data or "").strip().upper(),
            pad_to=self.pad_to.data,
            encoding=self.encoding.data or None,
        )


class AccountImportForm(FlaskForm):
    file = FileField("CSV file", validators=[FileRequired("Choose a CSV file.")])
    external_id = column("External id column", required=True)
    name = column("Name column", required=True)
    postal_code = column("Postal code column")
    city = column("City column")
    state = column("State column")
    segment = column("Segment column")
    industry = column("Industry column")
    annual_revenue = column("Annual revenue column")
    country = country_code()
    country_column = column("Country column")
    line_id = column("Sales line id column")
    amount = column("Amount column")
    order_date = column("Order date column")
    date_format = StringField(
        "Date format",
        default="%Y-%m-%d",
        validators=[
            DataRequired("Enter the date format, e.g. %m/%d/%Y."),
            Length(max=40),
        ],
    )
    order_ref = column("Order reference column")
    category = column("Category column")
    product = column("Product column")
    pad_postal_to = pad_width("Pad postal codes to (digits)")
    encoding = SelectField("Encoding", choices=ENCODINGS, default="")

    def validate(self, extra_validators: Any = None) -> bool:
        # Checked here, not in a validate_line_id method: Optional() ends a field's
        # validation when it is empty, which is one of the cases to catch.
        valid = super().validate(extra_validators)
        chosen = [self.line_id.data, self.amount.data, self.order_date.data]
        if any(chosen) and not all(chosen):
            self.line_id.errors = [
                *self.line_id.errors,
                "To import sales lines enter the line id, amount and order date "
                "columns; leave all three empty to import accounts only.",
            ]
            return False
        return valid

    def mapping(self) -> AccountMapping:
        optional: dict[str, Any] = {
            name: blank_to_none(getattr(self, name).data)
            for name in (
                "postal_code",
                "city",
                "state",
                "segment",
                "industry",
                "annual_revenue",
                "country_column",
                "line_id",
                "amount",
                "order_date",
                "order_ref",
                "category",
                "product",
            )
        }
        return AccountMapping(
            external_id=self.external_id.data or "",
            name=self.name.data or "",
            country=(self.country.data or "").strip().upper(),
            date_format=self.date_format.data or "%Y-%m-%d",
            pad_postal_to=self.pad_postal_to.data,
            encoding=self.encoding.data or None,
            **optional,
        )
