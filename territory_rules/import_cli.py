"""``flask territories import-...``: the importers, from files on disk."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask.cli import with_appcontext

from territory_rules.imports import (
    AccountMapping,
    ImportReport,
    PostalCodeMapping,
    import_accounts,
    import_boundaries,
    import_postal_codes,
)

INPUT_FILE = click.Path(exists=True, dir_okay=False, readable=True, path_type=Path)


def print_report(report: ImportReport) -> None:
    """Print counts and notes; when the import was refused, the errors go to
    standard error and the command exits with status 1."""
    if not report.ok:
        click.echo("Nothing was imported:", err=True)
        for error in report.errors:
            click.echo(f"  {error}", err=True)
        for note in report.notes:
            click.echo(f"  note: {note}", err=True)
        sys.exit(1)

    counts = ", ".join(
        f"{name.replace('_', ' ')} {n}" for name, n in report.counts.items()
    )
    click.echo(f"Imported: {counts}.")
    for note in report.notes:
        click.echo(f"  note: {note}")


@click.command("import-boundaries")
@click.argument("file", type=INPUT_FILE)
@click.option(
    "--layer", required=True, help="Layer the shapes belong to, e.g. 'US states'."
)
@click.option(
    "--name-property", required=True, help="Feature property that names each shape."
)
@click.option(
    "--code-property", help="Feature property holding a code ('id' for the feature id)."
)
@with_appcontext
def import_boundaries_command(
    file: Path, layer: str, name_property: str, code_property: str | None
) -> None:
    """Import the polygons of a GeoJSON FILE as boundaries of a layer."""
    print_report(
        import_boundaries(file.read_bytes(), layer, name_property, code_property)
    )


@click.command("import-postal-codes")
@click.argument("file", type=INPUT_FILE)
@click.option("--code", required=True, help="Column holding the postal code.")
@click.option("--lat", "latitude", required=True, help="Column holding the latitude.")
@click.option("--lon", "longitude", required=True, help="Column holding the longitude.")
@click.option("--city", help="Column holding the city.")
@click.option("--state", help="Column holding the state or province.")
@click.option("--country", default="", help="Country code of every row, e.g. US.")
@click.option("--country-column", help="Column holding each row's country code.")
@click.option("--pad-to", type=click.IntRange(1, 20), help="Restore leading zeros.")
@click.option("--encoding", help="File encoding; detected when left out.")
@with_appcontext
def import_postal_codes_command(file: Path, **options: str | int | None) -> None:
    """Import postal-code centroids from a CSV FILE."""
    mapping = PostalCodeMapping(**options)  # type: ignore[arg-type]
    print_report(import_postal_codes(file.read_bytes(), mapping))


@click.command("import-accounts")
@click.argument("file", type=INPUT_FILE)
@click.option("--external-id", required=True, help="Column holding the customer id.")
@click.option("--name", required=True, help="Column holding the customer name.")
@click.option("--postal-code", help="Column holding the postal code.")
@click.option("--city", help="Column holding the city.")
@click.option("--state", help="Column holding the state or province.")
@click.option("--segment", help="Column holding the customer segment.")
@click.option("--industry", help="Column holding the industry.")
@click.option("--annual-revenue", help="Column holding the annual revenue.")
@click.option("--country", default="", help="Country code of every row, e.g. US.")
@click.option("--country-column", help="Column holding each row's country code.")
@click.option("--line-id", help="Column holding the sales line id.")
@click.option("--amount", help="Column holding the sales line amount.")
@click.option("--order-date", help="Column holding the order date.")
@click.option(
    "--date-format", default="%Y-%m-%d", show_default=True, help="strptime format."
)
@click.option("--order-ref", help="Column holding the order reference.")
@click.option("--category", help="Column holding the product category.")
@click.option("--product", help="Column holding the product name.")
@click.option(
    "--pad-postal-to", type=click.IntRange(1, 20), help="Restore leading zeros."
)
@click.option("--encoding", help="File encoding; detected when left out.")
@with_appcontext
def import_accounts_command(file: Path, **options: str | int | None) -> None:
    """Import accounts and sales lines from a CSV FILE."""
    mapping = AccountMapping(**options)  # type: ignore[arg-type]
    print_report(import_accounts(file.read_bytes(), mapping))


IMPORT_COMMANDS: list[click.Command] = [
    import_boundaries_command,
    import_postal_codes_command,
    import_accounts_command,
]
