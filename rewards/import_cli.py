"""``flask rewards import-sales``: a sales file from disk, read through a source."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from rewards.imports import (
    DECIMAL_SEPARATORS,
    ENCODINGS,
    ensure_built_in_sources,
    import_sales,
    source_named,
    sources,
)
from territory_rules.import_cli import INPUT_FILE, print_report
from territory_rules.imports import ImportReport, date_format_reads_dates


def _date_format(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> str | None:
    if value is not None and not date_format_reads_dates(value):
        raise click.BadParameter(
            f"'{value}' cannot read dates; use codes such as %Y-%m-%d or %m/%d/%Y."
        )
    return value


@click.command("import-sales")
@click.argument("file", type=INPUT_FILE)
@click.option(
    "--source",
    "source_name",
    required=True,
    help="Name of the sales source whose layout the file has, e.g. Superstore.",
)
@click.option(
    "--date-format",
    callback=_date_format,
    help="strptime format of the order dates, instead of the source's.",
)
@click.option(
    "--decimal-separator",
    type=click.Choice(DECIMAL_SEPARATORS),
    help="Decimal separator of the amounts, instead of the source's.",
)
@click.option(
    "--encoding",
    type=click.Choice(ENCODINGS),
    help="Text encoding of the file ('auto' detects it), instead of the source's.",
)
@with_appcontext
def import_sales_command(
    file: Path,
    source_name: str,
    date_format: str | None,
    decimal_separator: str | None,
    encoding: str | None,
) -> None:
    """Import the sales lines of a CSV FILE; nothing is imported if a row is bad."""
    ensure_built_in_sources()
    source = source_named(source_name)
    if source is None:
        known = ", ".join(source.name for source in sources())
        raise click.BadParameter(
            f"No sales source is named '{source_name}'; the sources are {known}.",
            param_hint="--source",
        )

    record = import_sales(
        file.read_bytes(),
        source,
        file.name,
        None,
        date_format=date_format,
        decimal_separator=decimal_separator,
        encoding=encoding,
    )

    click.echo(
        f"Sales import {record.id}: {file.name} read as {source.name}.",
        err=not record.succeeded,
    )
    print_report(
        ImportReport(
            ok=record.succeeded,
            errors=record.errors or [],
            notes=record.notes or [],
            counts=record.counts or {},
        )
    )
    counts = record.counts or {}
    if counts.get("sales_lines_added") or counts.get("sales_lines_updated"):
        click.echo(
            "Sales lines were added or changed: programs and points are being "
            "recomputed."
        )
