"""``flask territories import-...`` commands."""

import click

IMPORT_COMMANDS: list[click.Command] = []
