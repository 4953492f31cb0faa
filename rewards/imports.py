"""Sales imports: files of sales lines read through a saved source.

A source names the columns of one kind of file (a territory importer
:class:`~territory_rules.imports.AccountMapping`, kept as a dict of its fields)
and how it writes dates, decimals and text. The file itself is read, checked
and written by the territory importer: all or nothing, every bad row listed,
sales lines matched by their external line id so that importing a file again
adds nothing twice. This layer records each attempt as a :class:`SalesImport`,
in the same transaction as the lines it added, or on its own when the file was
refused, and asks for the runs that new or changed lines call for.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.models import User
from rewards import jobs
from rewards.models import SalesImport, SalesSource
from territory_rules.imports import AccountMapping, ImportReport, import_accounts

logger = logging.getLogger(__name__)

ENCODINGS = ("auto", "utf-8", "cp1252")
DECIMAL_SEPARATORS = (".", ",")
# Kept on the source's own columns, never in its mapping.
SETTINGS = ("date_format", "decimal_separator", "encoding")
# A source reads sales lines, so these are never optional.
REQUIRED_FIELDS = ("external_id", "name", "line_id", "amount", "order_date")
MAPPING_FIELDS = tuple(
    f.name for f in dataclasses.fields(AccountMapping) if f.name not in SETTINGS
)

SUPERSTORE = "Superstore"
GENERIC = "Generic"

# The layout of demo_data/sample_superstore.csv; the demo loader reads it with this.
SUPERSTORE_DATE_FORMAT = "%m/%d/%Y"
SUPERSTORE_MAPPING = AccountMapping(
    external_id="Customer ID",
    name="Customer Name",
    postal_code="Postal Code",
    city="City",
    state="State",
    segment="Segment",
    country="US",
    line_id="Row ID",
    amount="Sales",
    order_date="Order Date",
    order_ref="Order ID",
    category="Category",
    product="Product Name",
    pad_postal_to=5,
)

# A layout to write files in by hand or from any system: the five columns that
# identify a sale are required, the rest may be left out of the file or empty.
GENERIC_OPTIONAL = [
    "postal_code",
    "city",
    "state",
    "country_column",
    "segment",
    "industry",
    "category",
    "product",
    "order_ref",
]
GENERIC_MAPPING = AccountMapping(
    external_id="customer_id",
    name="customer_name",
    postal_code="postal_code",
    city="city",
    state="state",
    country_column="country",
    segment="segment",
    industry="industry",
    line_id="line_id",
    amount="amount",
    order_date="order_date",
    order_ref="order_ref",
    category="category",
    product="product",
    optional_columns=GENERIC_OPTIONAL,
)


@dataclasses.dataclass(frozen=True)
class BuiltInSource:
    name: str
    mapping: AccountMapping
    date_format: str


BUILT_IN_SOURCES = (
    BuiltInSource(SUPERSTORE, SUPERSTORE_MAPPING, SUPERSTORE_DATE_FORMAT),
    BuiltInSource(GENERIC, GENERIC_MAPPING, "%Y-%m-%d"),
)


def mapping_dict(mapping: AccountMapping) -> dict[str, Any]:
    """What a source keeps of a mapping: its fields, less the settings the source
    holds in columns of its own."""
    return {name: getattr(mapping, name) for name in MAPPING_FIELDS}


def ensure_built_in_sources() -> list[SalesSource]:
    """Create the built-in sources that are missing (by name); return those created.

    A source of the same name saved by an admin is left as it is.
    """
    existing = set(db.session.scalars(select(SalesSource.name)))
    created = [
        SalesSource(
            name=source.name,
            mapping=mapping_dict(source.mapping),
            date_format=source.date_format,
            decimal_separator=".",
            encoding="auto",
            built_in=True,
        )
        for source in BUILT_IN_SOURCES
        if source.name not in existing
    ]
    if not created:
        return []

    db.session.add_all(created)
    try:
        db.session.commit()
    except IntegrityError:
        # Another request created one in between; a later call adds any other.
        db.session.rollback()
        return []
    logger.info("Created the built-in sales sources %s", [s.name for s in created])
    return created


def sources() -> list[SalesSource]:
    """Every source, built-in ones first, then by name."""
    return list(
        db.session.scalars(
            select(SalesSource).order_by(SalesSource.built_in.desc(), SalesSource.name)
        )
    )


def source_named(name: str) -> SalesSource | None:
    """The source of that name, case and surrounding spaces ignored."""
    return db.session.scalar(
        select(SalesSource).where(func.lower(SalesSource.name) == name.strip().lower())
    )


def save_source(
    name: str,
    mapping: AccountMapping,
    date_format: str,
    decimal_separator: str,
    encoding: str,
) -> SalesSource:
    """Add a source; the caller has checked that the name is free.

    :raise ValueError: a column a sales line needs is not named.
    """
    missing = [field for field in REQUIRED_FIELDS if not getattr(mapping, field)]
    if missing:
        raise ValueError(f"A sales source needs the columns {', '.join(missing)}.")
    source = SalesSource(
        name=name.strip(),
        mapping=mapping_dict(mapping),
        date_format=date_format,
        decimal_separator=decimal_separator,
        encoding=encoding,
        built_in=False,
    )
    db.session.add(source)
    db.session.commit()
    return source


def source_mapping(
    source: SalesSource,
    date_format: str | None = None,
    decimal_separator: str | None = None,
    encoding: str | None = None,
) -> AccountMapping:
    """The territory importer's mapping for this source, with any overrides."""
    fields = {k: v for k, v in source.mapping.items() if k in MAPPING_FIELDS}
    chosen_encoding = encoding or source.encoding
    return AccountMapping(
        **fields,
        date_format=date_format or source.date_format,
        decimal_separator=decimal_separator or source.decimal_separator,
        encoding=None if chosen_encoding == "auto" else chosen_encoding,
    )


def import_sales(
    data: bytes,
    source: SalesSource,
    file_name: str,
    user: User | None,
    *,
    date_format: str | None = None,
    decimal_separator: str | None = None,
    encoding: str | None = None,
) -> SalesImport:
    """Import a sales file the way ``source`` reads it (the keyword arguments
    override the source's settings for this file) and record the attempt.

    The record of a refused file is committed, the data is not. When the file
    added sales lines or changed stored ones, the programs run and the rewards
    run after it are requested.
    """
    mapping = source_mapping(source, date_format, decimal_separator, encoding)
    notes = _override_notes(source, date_format, decimal_separator, encoding)

    def record_of(report: ImportReport) -> SalesImport:
        record = SalesImport(
            source_id=source.id,
            file_name=file_name[:255],
            imported_by_id=user.id if user else None,
            succeeded=report.ok,
            counts=report.counts or None,
            errors=report.errors or None,
            notes=[*notes, *report.notes] or None,
        )
        db.session.add(record)
        return record

    landed: list[SalesImport] = []
    report = import_accounts(
        data, mapping, before_commit=lambda ok: landed.append(record_of(ok))
    )
    # A file the database refused while it was written was rolled back with
    # its record; the refusal gets a record of its own.
    record = landed[0] if report.ok else record_of(report)
    db.session.commit()

    _log(record, source, user)
    counts = report.counts if report.ok else {}
    if counts.get("sales_lines_added") or counts.get("sales_lines_updated"):
        jobs.after_new_sales(user)
    return record


def _override_notes(
    source: SalesSource,
    date_format: str | None,
    decimal_separator: str | None,
    encoding: str | None,
) -> list[str]:
    """Say which of the source's settings this file was read without."""
    chosen = {
        "date format": (date_format, source.date_format),
        "decimal separator": (decimal_separator, source.decimal_separator),
        "encoding": (encoding, source.encoding),
    }
    return [
        f"Read with the {label} '{value}' instead of the source's '{usual}'."
        for label, (value, usual) in chosen.items()
        if value and value != usual
    ]


def _log(record: SalesImport, source: SalesSource, user: User | None) -> None:
    who = user.email if user else "the command line"
    if record.succeeded:
        logger.info(
            "%s imported %s with source %s (import %s): %s",
            who,
            record.file_name,
            source.name,
            record.id,
            record.counts,
        )
    else:
        logger.info(
            "%s had %s refused with source %s (import %s)",
            who,
            record.file_name,
            source.name,
            record.id,
        )


def imports_page(page: int, per_page: int) -> Any:
    """Past imports, newest first."""
    return db.paginate(
        select(SalesImport).order_by(SalesImport.id.desc()),
        page=page,
        per_page=per_page,
        error_out=False,
    )
