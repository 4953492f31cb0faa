"""All-or-nothing importers: boundaries (GeoJSON), postal-code centroids and accounts.

Each importer reads and validates the whole file first. When anything is wrong it
writes nothing and returns a report listing the problems (row, column, reason; the
first fifty, then how many more and in how many rows); otherwise it writes everything
in one transaction and commits. Bad input never raises: it becomes a report. Rows
are written with Core ``INSERT .. ON CONFLICT`` statements in chunks, so re-importing
a file updates rows instead of adding them twice, and tens of thousands of rows load
in seconds on both databases.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from geoalchemy2.shape import from_shape, to_shape
from shapely import force_2d
from shapely.errors import ShapelyError
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union
from shapely.validation import explain_validity, make_valid
from sqlalchemy import Table, and_, case, exists, func, null, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import selectinload
from sqlalchemy.sql.elements import ColumnElement

from portal.extensions import db
from territory_rules.models import (
    SRID,
    Account,
    Boundary,
    LocationSource,
    PostalCode,
    SalesLine,
    Territory,
    table_of,
    territory_boundaries,
)

logger = logging.getLogger(__name__)

MAX_LISTED_PROBLEMS = 50
CHUNK_SIZE = 1000
# Repairing an invalid shape may move its area a little; more than this means the
# repair guessed at what the author meant, so the shape is refused instead.
MAX_REPAIR_AREA_CHANGE = 0.001
MAX_UNLOCATED_LISTED = 10
SAMPLE_DATE = date(2019, 11, 28)
# Sales dated before this are a wrong year or a wrong date format, not history.
EARLIEST_SALE = date(2000, 1, 1)
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
# With a declared decimal comma: 1234,5 or 1.234,50 (dots only between groups of
# three digits), so a dot decimal such as 12.50 is refused, never read as 1250.
COMMA_NUMBER = re.compile(r"[+-]?(?:(?:\d{1,3}(?:\.\d{3})+|\d+)(?:,\d*)?|,\d+)")
DECIMAL_SEPARATORS = (".", ",")
MAX_AMOUNT = Decimal(10) ** 12
MAX_REVENUE = Decimal(10) ** 14
CENT = Decimal("0.01")
# Sales amounts keep the source file's precision (Superstore has 4 decimals):
# rounding each line to the cent would move the totals.
AMOUNT_STEP = Decimal("0.0001")

ACCOUNTS = table_of(Account)
POSTAL_CODES = table_of(PostalCode)
SALES_LINES = table_of(SalesLine)


@dataclass
class ImportReport:
    """What an import did (``ok``) or why it did nothing (``errors``)."""

    ok: bool
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class PostalCodeMapping:
    """Which CSV columns hold what; ``country`` is used when no column holds it."""

    code: str
    latitude: str
    longitude: str
    city: str | None = None
    state: str | None = None
    country_column: str | None = None
    country: str = ""
    pad_to: int | None = None
    encoding: str | None = None


@dataclass
class AccountMapping:
    """Which CSV columns hold what; sales lines are read when ``line_id`` is set."""

    external_id: str
    name: str
    postal_code: str | None = None
    city: str | None = None
    state: str | None = None
    segment: str | None = None
    industry: str | None = None
    annual_revenue: str | None = None
    country_column: str | None = None
    country: str = ""
    line_id: str | None = None
    amount: str | None = None
    order_date: str | None = None
    date_format: str = "%Y-%m-%d"
    order_ref: str | None = None
    category: str | None = None
    product: str | None = None
    pad_postal_to: int | None = None
    encoding: str | None = None
    # "," reads 1.234,50 as 1234.50; "." reads 1234.50 and says how to declare the
    # comma when it meets one; None reads like "." for callers that offer no choice.
    decimal_separator: str | None = None
    # Fields (e.g. "industry") whose column the file may leave out; it is then not
    # read, and what earlier imports stored for it stays.
    optional_columns: list[str] = field(default_factory=list)


class ImportRefused(Exception):
    """The input cannot be imported; ``messages`` say why and what to fix."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__(messages[0])
        self.messages = messages
        self.notes: list[str] = []

    def report(self) -> ImportReport:
        return ImportReport(ok=False, errors=self.messages, notes=self.notes)


class RowProblems:
    """Collects problems; lists the first fifty and counts the rest, and the rows
    they were found in."""

    def __init__(self) -> None:
        self.listed: list[str] = []
        self.total = 0
        self.rows: set[int] = set()
        self.listed_rows: set[int] = set()

    def add(self, message: str, row: int | None = None) -> None:
        self.total += 1
        listed = len(self.listed) < MAX_LISTED_PROBLEMS
        if listed:
            self.listed.append(message)
        if row is not None:
            self.rows.add(row)
            if listed:
                self.listed_rows.add(row)

    def messages(self) -> list[str]:
        hidden = self.total - len(self.listed)
        if not hidden:
            return self.listed
        more = f"... and {hidden:,} more problems."
        if self.rows:
            unlisted = len(self.rows - self.listed_rows)
            more += (
                f" {len(self.rows):,} rows have problems; {unlisted:,} of them are "
                f"not listed above."
            )
        return [*self.listed, more]

    def refuse_if_any(self) -> None:
        if self.total:
            raise ImportRefused(self.messages())


def refused_report(refused: ImportRefused, what: str) -> ImportReport:
    logger.info("Refused %s import: %s", what, refused.messages[0])
    return refused.report()


# --------------------------------------------------------------------------- CSV


def _decode(data: bytes, encoding: str | None, notes: list[str]) -> str:
    if encoding:
        return _decode_declared(data, encoding)
    if data.startswith(codecs.BOM_UTF8):
        return data.decode("utf-8-sig")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _decode_declared(data, "utf-16")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise ImportRefused(
            [
                f"The file is neither UTF-8 nor Windows-1252 text (byte "
                f"0x{data[exc.start]:02x} at position {exc.start}); save it as UTF-8 "
                f"and import it again."
            ]
        ) from None
    notes.append("The file is not UTF-8; it was read as Windows-1252 (cp1252).")
    return text


def _decode_declared(data: bytes, encoding: str) -> str:
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise ImportRefused(
            [f"'{encoding}' is not an encoding we know; try utf-8 or cp1252."]
        ) from None
    if name == "utf-8":
        name = "utf-8-sig"  # a byte-order mark is never part of the first column
    try:
        return data.decode(name)
    except LookupError:
        # Codecs such as base64 or rot13 are known but do not decode to text.
        raise ImportRefused(
            [f"'{encoding}' is not a text encoding; try utf-8 or cp1252."]
        ) from None
    except UnicodeDecodeError as exc:
        raise ImportRefused(
            [
                f"The file is not valid {encoding} text (byte 0x{data[exc.start]:02x} "
                f"at position {exc.start}); choose its real encoding or leave the "
                f"encoding empty to detect it."
            ]
        ) from None


@dataclass
class _Table:
    header: list[str]
    rows: list[tuple[int, list[str]]]  # (row number, values); the header is row 1

    def column_index(self) -> dict[str, int]:
        return {name: index for index, name in enumerate(self.header)}


def read_csv(data: bytes, encoding: str | None, notes: list[str]) -> _Table:
    text = _decode(data, encoding, notes)
    if "\x00" in text:
        raise ImportRefused(
            [
                "The file holds NUL characters, so it is not CSV text; if it is a "
                "spreadsheet or an archive, save it as CSV and import that."
            ]
        )
    records = csv.reader(io.StringIO(text, newline=""))
    try:
        numbered = [
            (number, values)
            for number, values in enumerate(records, start=1)
            if any(value.strip() for value in values)
        ]
    except csv.Error as exc:
        raise ImportRefused(
            [f"The file cannot be read as CSV: {exc} (line {records.line_num})."]
        ) from None
    if not numbered:
        raise ImportRefused(["The file is empty; it needs a header row and data rows."])
    if len(numbered) == 1:
        raise ImportRefused(["The file has a header but no rows."])

    header = [name.strip() for name in numbered[0][1]]
    return _Table(header, _even_rows(numbered[1:], len(header)))


def _even_rows(
    rows: list[tuple[int, list[str]]], width: int
) -> list[tuple[int, list[str]]]:
    """Refuse rows whose number of values differs from the header's."""
    problems = RowProblems()
    for number, values in rows:
        # Spreadsheets often leave empty cells after the last column; they are harmless.
        while len(values) > width and not values[-1].strip():
            values.pop()
        if len(values) != width:
            problems.add(
                f"Row {number} has {len(values)} values but the header has {width} "
                f"columns; check for a missing or extra separator or quote.",
                row=number,
            )
    problems.refuse_if_any()
    return rows


def check_columns(table: _Table, wanted: dict[str, str | None]) -> None:
    """Every mapped column (label -> column name) must exist once in the header."""
    problems = RowProblems()
    counts = Counter(table.header)
    found = ", ".join(f"'{name}'" for name in table.header)
    for label, column in wanted.items():
        if column is None:
            continue
        if counts[column] == 0:
            problems.add(
                f"The column '{column}' chosen for the {label} is not in the file; "
                f"its columns are {found}."
            )
        elif counts[column] > 1:
            problems.add(
                f"The column '{column}' chosen for the {label} appears "
                f"{counts[column]} times in the header; rename the copies."
            )
    if problems.total and len(table.header) == 1 and ";" in table.header[0]:
        problems.add(
            "The header looks separated by semicolons; save the file as CSV with "
            "commas between the columns."
        )
    problems.refuse_if_any()


def _shorten(value: str, limit: int = 40) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


class CsvRow:
    """One CSV record being read; problems are collected, never raised."""

    def __init__(
        self,
        number: int,
        values: list[str],
        columns: dict[str, int],
        problems: RowProblems,
        decimal_separator: str | None = None,
    ) -> None:
        self.number = number
        self.values = values
        self.columns = columns
        self.problems = problems
        self.decimal_separator = decimal_separator
        self.ok = True

    def fail(self, reason: str) -> None:
        self.ok = False
        self.problems.add(f"Row {self.number}: {reason}.", row=self.number)

    def text(self, column: str | None, label: str, max_length: int) -> str | None:
        if column is None:
            return None
        value = self.values[self.columns[column]].strip()
        if len(value) > max_length:
            self.fail(
                f"the {label} '{_shorten(value)}' in column '{column}' is longer "
                f"than {max_length} characters"
            )
        return value or None

    def required(self, column: str, label: str, max_length: int) -> str:
        value = self.text(column, label, max_length)
        if value is None:
            self.fail(f"the {label} (column '{column}') is empty")
        return value or ""

    def decimal(
        self,
        column: str | None,
        label: str,
        limit: Decimal,
        required: bool = False,
        step: Decimal = CENT,
    ) -> Decimal | None:
        value = self.text(column, label, 60)
        if value is None or column is None:
            if required:
                self.fail(f"the {label} (column '{column}') is empty")
            return None
        number = self._number(value, column, label)
        if number is not None and abs(number) >= limit:
            self.fail(f"the {label} '{value}' in column '{column}' is too large")
            return None
        return number.quantize(step, ROUND_HALF_UP) if number is not None else None

    def coordinate(self, column: str, label: str, bound: int) -> float | None:
        value = self.text(column, label, 60)
        if value is None:
            self.fail(f"the {label} (column '{column}') is empty")
            return None
        number = self._number(value, column, label)
        if number is not None and not -bound <= number <= bound:
            self.fail(
                f"the {label} '{value}' in column '{column}' is outside "
                f"-{bound} to {bound}"
            )
            return None
        return float(number) if number is not None else None

    def _number(self, value: str, column: str, label: str) -> Decimal | None:
        if self.decimal_separator == ",":
            return self._comma_number(value, column, label)
        if "," in value and self.decimal_separator == ".":
            self.fail(
                f"the {label} '{value}' in column '{column}' contains a comma, but "
                f"the decimal separator declared for this file is the dot; if the "
                f"file writes decimals with a comma (1.234,50), declare the comma as "
                f"its decimal separator, otherwise write numbers without thousands "
                f"separators, e.g. 1234.50"
            )
            return None
        if "," in value:
            self.fail(
                f"the {label} '{value}' in column '{column}' contains a comma; write "
                f"numbers with a dot as the decimal separator and no thousands "
                f"separators, e.g. 1234.50"
            )
            return None
        # The pattern admits plain decimals only: no "NaN", "1e5" or "0x1F".
        if not NUMBER.fullmatch(value):
            self.fail(f"the {label} '{value}' in column '{column}' is not a number")
            return None
        return Decimal(value)

    def _comma_number(self, value: str, column: str, label: str) -> Decimal | None:
        if not COMMA_NUMBER.fullmatch(value):
            self.fail(
                f"the {label} '{value}' in column '{column}' is not a number written "
                f"with the declared decimal comma, e.g. 1234,50 or 1.234,50"
            )
            return None
        return Decimal(value.replace(".", "").replace(",", "."))

    def date(self, column: str, label: str, date_format: str) -> date | None:
        value = self.text(column, label, 60)
        if value is None:
            self.fail(f"the {label} (column '{column}') is empty")
            return None
        try:
            return datetime.strptime(value, date_format).date()
        except ValueError:
            self.fail(
                f"the {label} '{value}' in column '{column}' does not match the date "
                f"format {date_format} (for example "
                f"{SAMPLE_DATE.strftime(date_format)})"
            )
            return None

    def postal_code(self, column: str | None, padding: _Padding) -> str | None:
        code = self.text(column, "postal code", 20)
        return padding.pad(self.number, code) if code else None

    def country(self, column: str | None, fixed: str) -> str | None:
        if column is None:
            return fixed or None
        value = self.text(column, "country", 60)
        if value is None:
            self.fail(f"the country (column '{column}') is empty")
        elif not _is_country_code(value):
            self.fail(
                f"the country '{_shorten(value)}' in column '{column}' is not a code "
                f"of up to 3 letters such as US; choose a fixed country instead"
            )
        return value.upper() if value else None


def _is_country_code(value: str) -> bool:
    return 1 <= len(value) <= 3 and value.isascii() and value.isalpha()


def _fixed_country(country: str, column: str | None) -> list[str]:
    if column or not country or _is_country_code(country):
        return []
    return [
        f"The country '{_shorten(country)}' is not a code of up to 3 letters "
        f"such as US."
    ]


class _FirstRows:
    """The row where each key was first seen, to refuse repeats within one file."""

    def __init__(self) -> None:
        self.rows: dict[Any, int] = {}

    def repeated(self, key: Any, row_number: int) -> int | None:
        first = self.rows.setdefault(key, row_number)
        return None if first == row_number else first


class _Padding:
    """Restores leading zeros lost by spreadsheets: '7090' -> '07090' at width 5."""

    def __init__(self, width: int | None) -> None:
        self.width = width
        self.count = 0
        self.example = ""

    def pad(self, row_number: int, code: str) -> str:
        if not self.width or len(code) >= self.width:
            return code
        if not (code.isascii() and code.isdigit()):
            return code
        padded = code.zfill(self.width)
        self.count += 1
        self.example = self.example or f"row {row_number}: {code} became {padded}"
        return padded

    def notes(self) -> list[str]:
        if not self.count:
            return []
        return [
            f"Postal codes that had lost their leading zeros, padded to {self.width} "
            f"digits: {self.count} (e.g. {self.example})."
        ]


def _check_pad_width(width: int | None) -> list[str]:
    if width is not None and not 1 <= width <= 20:
        return ["The width to pad postal codes to must be between 1 and 20."]
    return []


# ------------------------------------------------------------------ bulk writes


def _chunks(items: Sequence[Any], size: int = CHUNK_SIZE) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _upsert_statement(table: Table, keys: list[str], updated: Iterable[str]) -> Any:
    """``INSERT .. ON CONFLICT (keys) DO UPDATE``, written for either database."""
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=keys,
        set_={name: statement.excluded[name] for name in updated},
    )


def _upsert(table: Table, rows: Sequence[dict[str, Any]], keys: list[str]) -> None:
    if not rows:
        return
    updated = [name for name in rows[0] if name not in keys]
    statement = _upsert_statement(table, keys, updated)
    for chunk in _chunks(rows):
        db.session.execute(statement, list(chunk))


def _changed_lines(lines: Sequence[dict[str, Any]]) -> int:
    """How many of the file's sales lines are stored with other values (or not
    at all): what a recompute has to look at. Read before they are written."""
    if not lines:
        return 0
    compared = [name for name in lines[0] if name not in ("external_line_id", "key")]
    columns = [SALES_LINES.c[name] for name in compared]
    changed = 0
    for chunk in _chunks(lines):
        by_id = {line["external_line_id"]: line for line in chunk}
        stored = db.session.execute(
            select(SALES_LINES.c.external_line_id, *columns).where(
                SALES_LINES.c.external_line_id.in_(list(by_id))
            )
        )
        same = sum(
            1
            for line_id, *values in stored
            if all(
                _same_value(value, by_id[line_id][name])
                for name, value in zip(compared, values, strict=True)
            )
        )
        changed += len(by_id) - same
    return changed


def _same_value(stored: Any, read: Any) -> bool:
    """A stored value against the file's; SQLite hands amounts back as floats."""
    if isinstance(read, Decimal) and stored is not None:
        return Decimal(str(stored)).quantize(AMOUNT_STEP) == read
    return bool(stored == read)


def _count(table: Table) -> int:
    return db.session.scalar(select(func.count()).select_from(table)) or 0


def in_one_transaction(what: str, write: Callable[[], ImportReport]) -> ImportReport:
    """Write and commit; should the database still refuse a row the checks let
    through (another import running at the same time, say), roll everything back
    and report it instead of leaving half an import."""
    try:
        report = write()
        db.session.commit()
    except (IntegrityError, DataError) as exc:
        db.session.rollback()
        logger.warning("The %s import was rolled back: %s", what, exc.orig)
        return ImportReport(
            ok=False,
            errors=[
                f"The database refused the {what} ({exc.orig}); nothing was imported."
            ],
        )
    logger.info("Imported %s: %s", what, report.counts)
    return report


# ------------------------------------------------------------------ boundaries


@dataclass
class _Feature:
    name: str
    code: str | None
    shape: MultiPolygon
    repair_note: str | None


def import_boundaries(
    data: bytes, layer: str, name_property: str, code_property: str | None = None
) -> ImportReport:
    """Import every polygon of a GeoJSON file as a boundary of ``layer``.

    Boundaries are matched by (layer, name): a re-import replaces their shapes, and
    territories built from them get their shapes rebuilt.
    """
    try:
        layer, name_property = _check_layer(layer, name_property)
        features = _read_features(data, name_property, code_property)
    except ImportRefused as refused:
        return refused_report(refused, "boundary")

    return in_one_transaction(
        "boundaries",
        lambda: ImportReport(
            ok=True,
            notes=_feature_notes(features),
            counts=_write_boundaries(layer, features),
        ),
    )


def _feature_notes(features: list[_Feature]) -> list[str]:
    notes = [f"{f.name}: {f.repair_note}" for f in features if f.repair_note]
    notes += [
        f"{feature.name}: longitudes go past the antimeridian (beyond 180 degrees); "
        f"the shape was kept as published."
        for feature in features
        if _crosses_antimeridian(feature.shape)
    ]
    return notes


def _check_layer(layer: str, name_property: str) -> tuple[str, str]:
    layer, name_property = layer.strip(), name_property.strip()
    problems = RowProblems()
    if not layer:
        problems.add("Give the layer a name, e.g. 'US states'.")
    elif len(layer) > 120:
        problems.add("The layer name is longer than 120 characters.")
    if not name_property:
        problems.add("Choose the property that holds each feature's name.")
    problems.refuse_if_any()
    return layer, name_property


def _load_json(data: bytes) -> Any:
    if not data.strip():
        raise ImportRefused(
            ["The file is empty. Choose a GeoJSON file holding a FeatureCollection."]
        )
    try:
        return json.loads(data)
    except UnicodeDecodeError:
        raise ImportRefused(
            ["The file is not UTF-8 text, so it cannot be GeoJSON."]
        ) from None
    except RecursionError:
        raise ImportRefused(
            ["The file nests JSON arrays or objects too deeply to be GeoJSON."]
        ) from None
    except json.JSONDecodeError as exc:
        raise ImportRefused(
            [
                # Some messages end in "at" already ("Unterminated string
                # starting at"); the position follows them either way.
                f"The file is not valid JSON: {exc.msg.removesuffix(' at')} at line "
                f"{exc.lineno}, column {exc.colno}."
            ]
        ) from None


def _feature_list(document: Any) -> list[Any]:
    kind = document.get("type") if isinstance(document, dict) else None
    if kind == "Feature":
        return [document]
    if kind == "FeatureCollection" and isinstance(document.get("features"), list):
        if not document["features"]:
            raise ImportRefused(["The FeatureCollection holds no features."])
        return document["features"]
    found = f"of type '{kind}'" if kind else f"a JSON {_json_kind(document)}"
    raise ImportRefused(
        [f"The file is {found}, not a GeoJSON FeatureCollection or Feature."]
    )


def _json_kind(document: Any) -> str:
    """JSON's own word for a parsed value: object, array, string..."""
    words = {dict: "object", list: "array", str: "string", bool: "boolean"}
    return words.get(type(document), "number" if document is not None else "null")


def _read_features(
    data: bytes, name_property: str, code_property: str | None
) -> list[_Feature]:
    raw_features = _feature_list(_load_json(data))
    problems = RowProblems()
    features: list[_Feature] = []
    first_seen: dict[str, int] = {}
    for number, raw in enumerate(raw_features, start=1):
        feature = _read_feature(number, raw, name_property, code_property, problems)
        if feature is None:
            continue
        if feature.name in first_seen:
            problems.add(
                f"Feature {number}: the name '{feature.name}' is already used by "
                f"feature {first_seen[feature.name]}; names must be unique in a file."
            )
            continue
        first_seen[feature.name] = number
        features.append(feature)
    problems.refuse_if_any()
    return features


def _property_text(raw: dict[str, Any], key: str) -> str | None:
    properties = raw.get("properties") or {}
    value = properties.get(key) if isinstance(properties, dict) else None
    if value is None and key == "id":
        value = raw.get("id")  # GeoJSON keeps a feature's own id beside its properties
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return str(value).strip() or None


def _read_feature(
    number: int,
    raw: Any,
    name_property: str,
    code_property: str | None,
    problems: RowProblems,
) -> _Feature | None:
    if not isinstance(raw, dict) or raw.get("type") != "Feature":
        problems.add(f"Feature {number} is not a GeoJSON Feature object.")
        return None
    name = _property_text(raw, name_property)
    if name is None:
        problems.add(_missing_name(number, raw, name_property))
        return None
    label = f"Feature {number} ({_shorten(name)})"
    if len(name) > 200:
        problems.add(f"{label}: the name is longer than 200 characters.")
        return None
    code = _property_text(raw, code_property) if code_property else None
    if code is not None and len(code) > 60:
        problems.add(f"{label}: the code is longer than 60 characters.")
        return None

    geometry = _read_geometry(label, raw.get("geometry"), problems)
    if geometry is None:
        return None
    return _repaired(label, name, code, geometry, problems)


def _missing_name(number: int, raw: dict[str, Any], name_property: str) -> str:
    properties = raw.get("properties")
    if isinstance(properties, dict) and properties.get(name_property) is not None:
        return f"Feature {number}: its '{name_property}' property is empty."
    keys = (
        ", ".join(f"'{key}'" for key in properties)
        if isinstance(properties, dict)
        else ""
    )
    found = f"its properties are {keys}" if keys else "it has no properties"
    return f"Feature {number} has no '{name_property}' property; {found}."


def _read_geometry(label: str, raw: Any, problems: RowProblems) -> BaseGeometry | None:
    if not isinstance(raw, dict):
        problems.add(f"{label} has no geometry.")
        return None
    kind = raw.get("type")
    if kind not in ("Polygon", "MultiPolygon"):
        problems.add(
            f"{label} is a {kind or 'geometry without a type'}; only Polygon and "
            f"MultiPolygon shapes can be boundaries."
        )
        return None
    try:
        geometry = force_2d(shape(raw))
    except (ShapelyError, ValueError, TypeError, IndexError, KeyError, AttributeError):
        problems.add(f"{label}: its coordinates do not form a {kind}.")
        return None
    if geometry.is_empty:
        problems.add(f"{label} has an empty geometry.")
        return None
    if not _in_lon_lat_range(geometry):
        problems.add(
            f"{label} has coordinates outside latitude -90 to 90 or longitude -360 "
            f"to 360; the file must use WGS84 longitude/latitude (EPSG:4326), not "
            f"projected coordinates."
        )
        return None
    return geometry


def _in_lon_lat_range(geometry: BaseGeometry) -> bool:
    """Latitudes within -90..90; longitudes within one turn either way.

    Some published files continue a shape past the antimeridian (Alaska's Aleutians
    reach -188.9 in the US states file) instead of splitting it, so longitudes up to
    360 degrees away are kept; anything larger is a projected file, not lon/lat.
    """
    min_x, min_y, max_x, max_y = geometry.bounds
    if not all(math.isfinite(value) for value in geometry.bounds):
        return False
    return -360 <= min_x <= max_x <= 360 and -90 <= min_y <= max_y <= 90


def _crosses_antimeridian(geometry: BaseGeometry) -> bool:
    min_x, _min_y, max_x, _max_y = geometry.bounds
    return min_x < -180 or max_x > 180


def polygonal_parts(geometry: BaseGeometry) -> MultiPolygon:
    """The polygons of any geometry (lines and points dropped) as one MultiPolygon."""
    if isinstance(geometry, Polygon):
        return MultiPolygon([geometry])
    if isinstance(geometry, MultiPolygon):
        return geometry
    polygons: list[Polygon] = []
    for part in getattr(geometry, "geoms", []):
        polygons.extend(polygonal_parts(part).geoms)
    return MultiPolygon(polygons)


def _repaired(
    label: str,
    name: str,
    code: str | None,
    geometry: BaseGeometry,
    problems: RowProblems,
) -> _Feature | None:
    if geometry.is_valid:
        return _Feature(name, code, polygonal_parts(geometry), None)

    reason = _validity_reason(geometry)
    repaired = polygonal_parts(make_valid(geometry))
    change = _relative_area_change(geometry.area, repaired.area)
    if change > MAX_REPAIR_AREA_CHANGE:
        problems.add(
            f"{label}: the shape is not valid ({reason}) and the repair would change "
            f"its area by {_percent(change)} (more than the "
            f"{_percent(MAX_REPAIR_AREA_CHANGE)} allowed); fix the shape in a GIS tool "
            f"and import it again."
        )
        return None
    note = (
        f"repaired an invalid shape ({reason}); the area changed by {_percent(change)}."
    )
    return _Feature(name, code, repaired, note[:300])


def _validity_reason(geometry: BaseGeometry) -> str:
    """GEOS's explanation in words: 'Self-intersection[1 1]' -> 'self-intersection
    at 1 1', with coordinates rounded to a readable precision."""
    explanation = explain_validity(geometry)
    found = re.fullmatch(r"(.+)\[(\S+) (\S+)\]", explanation)
    if not found:
        return explanation.lower()
    reason, x, y = found.groups()
    return f"{reason.lower()} at {float(x):.6g} {float(y):.6g}"


def _relative_area_change(before: float, after: float) -> float:
    if before <= 0:
        return math.inf
    return abs(after - before) / before


def _percent(fraction: float) -> str:
    if math.isinf(fraction):
        return "over 100%"
    if fraction < 1e-9:
        return "less than 0.0000001%"
    if fraction >= 1:
        return f"{fraction * 100:,.0f}%"  # "250%", not "2.5e+02%"
    return f"{fraction * 100:.2g}%"


def _write_boundaries(layer: str, features: list[_Feature]) -> dict[str, int]:
    existing = {
        boundary.name: boundary
        for boundary in db.session.scalars(
            select(Boundary).where(Boundary.layer == layer)
        )
    }
    changed_ids: list[int] = []
    for feature in features:
        boundary = existing.get(feature.name)
        if boundary is None:
            boundary = Boundary(layer=layer, name=feature.name)
            db.session.add(boundary)
        else:
            changed_ids.append(boundary.id)
        boundary.code = feature.code
        boundary.shape = from_shape(feature.shape, srid=SRID)
        boundary.repair_note = feature.repair_note
    db.session.flush()

    rebuilt = _rebuild_territories(changed_ids)
    return {
        "boundaries": len(features),
        "added": len(features) - len(changed_ids),
        "updated": len(changed_ids),
        "repaired": sum(1 for feature in features if feature.repair_note),
        "territories_rebuilt": rebuilt,
    }


def _rebuild_territories(boundary_ids: list[int]) -> int:
    if not boundary_ids:
        return 0
    territory_ids = select(territory_boundaries.c.territory_id).where(
        territory_boundaries.c.boundary_id.in_(boundary_ids)
    )
    territories = db.session.scalars(
        select(Territory)
        .where(Territory.id.in_(territory_ids))
        .options(selectinload(Territory.boundaries))
        # The boundaries were just rewritten: read them again, all in one query.
        .execution_options(populate_existing=True)
    ).all()
    for territory in territories:
        build_territory_shape(territory)
    return len(territories)


def build_territory_shape(territory: Territory) -> None:
    """Set the territory's shape to the union of its boundaries; the caller commits."""
    shapes = [to_shape(boundary.shape) for boundary in territory.boundaries]
    if not shapes:
        territory.shape = None
        return
    territory.shape = from_shape(polygonal_parts(unary_union(shapes)), srid=SRID)


# ---------------------------------------------------------------- postal codes


def import_postal_codes(data: bytes, mapping: PostalCodeMapping) -> ImportReport:
    """Import postal-code centroids; codes already known (country, code) are updated."""
    notes: list[str] = []
    try:
        rows, padded = _read_postal_codes(data, mapping, notes)
    except ImportRefused as refused:
        refused.notes = notes
        return refused_report(refused, "postal code")

    return in_one_transaction(
        "postal codes", lambda: _write_postal_codes(rows, padded, notes)
    )


def _write_postal_codes(
    rows: list[dict[str, Any]], padded: int, notes: list[str]
) -> ImportReport:
    before = _count(POSTAL_CODES)
    _upsert(POSTAL_CODES, rows, ["country", "code"])
    added = _count(POSTAL_CODES) - before
    counts = {
        "postal_codes": len(rows),
        "added": added,
        "updated": len(rows) - added,
        "padded": padded,
    }
    return ImportReport(ok=True, notes=notes, counts=counts)


def _postal_columns(mapping: PostalCodeMapping) -> dict[str, str | None]:
    return {
        "postal code": mapping.code,
        "latitude": mapping.latitude,
        "longitude": mapping.longitude,
        "city": mapping.city,
        "state": mapping.state,
        "country": mapping.country_column,
    }


def _check_postal_mapping(mapping: PostalCodeMapping) -> None:
    problems = _fixed_country(mapping.country, mapping.country_column)
    if not mapping.country_column and not mapping.country.strip():
        problems.append(
            "Choose the country of these postal codes, or the column that holds it."
        )
    problems += _check_pad_width(mapping.pad_to)
    if problems:
        raise ImportRefused(problems)


def _read_postal_codes(
    data: bytes, mapping: PostalCodeMapping, notes: list[str]
) -> tuple[list[dict[str, Any]], int]:
    _check_postal_mapping(mapping)
    table = read_csv(data, mapping.encoding, notes)
    check_columns(table, _postal_columns(mapping))

    columns, problems = table.column_index(), RowProblems()
    padding = _Padding(mapping.pad_to)
    rows: list[dict[str, Any]] = []
    seen = _FirstRows()
    for number, values in table.rows:
        row = CsvRow(number, values, columns, problems)
        record = _postal_record(row, mapping, padding)
        key = (record["country"], record["code"])
        first = seen.repeated(key, number) if record["code"] else None
        if first is not None:
            row.fail(f"postal code '{record['code']}' already appears on row {first}")
        if row.ok:
            rows.append(record)
    problems.refuse_if_any()

    notes.extend(padding.notes())
    return rows, padding.count


def _postal_record(
    row: CsvRow, mapping: PostalCodeMapping, padding: _Padding
) -> dict[str, Any]:
    code = row.postal_code(mapping.code, padding)
    if code is None:
        row.fail(f"the postal code (column '{mapping.code}') is empty")
    latitude = row.coordinate(mapping.latitude, "latitude", 90)
    longitude = row.coordinate(mapping.longitude, "longitude", 180)
    record = {
        "country": row.country(mapping.country_column, mapping.country.strip().upper()),
        "code": code,
        "city": row.text(mapping.city, "city", 120),
        "state": row.text(mapping.state, "state", 120),
        "location": f"SRID={SRID};POINT({longitude} {latitude})",
    }
    return record


# -------------------------------------------------------------------- accounts


@dataclass
class _AccountFile:
    mapping: AccountMapping  # as read: less the optional columns the file left out
    accounts: dict[str, dict[str, Any]]  # key -> the account's values (first row wins)
    lines: list[dict[str, Any]]  # sales lines, each carrying its account's key
    rows: int
    padded: int = 0
    line_rows: dict[str, int] = field(default_factory=dict)  # line id -> row number


# Columns a file may leave out when its mapping says so; the others identify an
# account or a sales line.
OPTIONAL_FIELDS = (
    "postal_code",
    "city",
    "state",
    "segment",
    "industry",
    "annual_revenue",
    "country_column",
    "order_ref",
    "category",
    "product",
)


def import_accounts(
    data: bytes,
    mapping: AccountMapping,
    before_commit: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Import accounts (one per customer and ship-to location) and their sales lines.

    Accounts are matched by key, sales lines by their external line id, so a
    re-import updates rows instead of adding them twice. Accounts are then located
    at a postal-code centroid, in SQL; those that cannot be located are kept.
    ``before_commit`` is called with the report of a file about to be committed,
    so that what it adds (a record of the import, say) lands in the same
    transaction.
    """
    notes: list[str] = []
    try:
        parsed = _read_accounts(data, mapping, notes)
        _check_postal_codes_known(parsed)
        _check_lines_stay_with_their_accounts(parsed)
    except ImportRefused as refused:
        refused.notes = notes
        return refused_report(refused, "account")

    def write() -> ImportReport:
        counts = _write_accounts(parsed, notes)
        report = ImportReport(ok=True, notes=notes, counts=counts)
        if before_commit is not None:
            before_commit(report)
        return report

    return in_one_transaction("accounts", write)


def _account_columns(mapping: AccountMapping) -> dict[str, str | None]:
    return {
        "external id": mapping.external_id,
        "name": mapping.name,
        "postal code": mapping.postal_code,
        "city": mapping.city,
        "state": mapping.state,
        "segment": mapping.segment,
        "industry": mapping.industry,
        "annual revenue": mapping.annual_revenue,
        "country": mapping.country_column,
        "line id": mapping.line_id,
        "amount": mapping.amount,
        "order date": mapping.order_date,
        "order reference": mapping.order_ref,
        "category": mapping.category,
        "product": mapping.product,
    }


def _shared_key_columns(mapping: AccountMapping) -> list[str]:
    """One column cannot be two of the parts an account is known by."""
    roles = {
        "external id": mapping.external_id,
        "name": mapping.name,
        "postal code": mapping.postal_code,
    }
    by_column: dict[str, list[str]] = {}
    for role, column in roles.items():
        if column:
            by_column.setdefault(column, []).append(role)
    return [
        f"The column '{column}' is chosen for {_both(labels)}; each of these needs "
        f"its own column."
        for column, labels in by_column.items()
        if len(labels) > 1
    ]


def _both(labels: list[str]) -> str:
    """['a', 'b'] -> 'both the a and the b'; three -> 'the a, the b and the c'."""
    named = [f"the {label}" for label in labels]
    listed = ", ".join(named[:-1]) + " and " + named[-1]
    return f"both {listed}" if len(named) == 2 else listed


def _check_account_mapping(mapping: AccountMapping) -> None:
    problems = _shared_key_columns(mapping)
    problems += _fixed_country(mapping.country, mapping.country_column)
    problems += _check_pad_width(mapping.pad_postal_to)
    line_fields = [mapping.line_id, mapping.amount, mapping.order_date]
    if any(line_fields) and not all(line_fields):
        problems.append(
            "To import sales lines choose the line id, amount and order date "
            "columns; to import accounts only, choose none of them."
        )
    if mapping.order_date and not date_format_reads_dates(mapping.date_format):
        problems.append(
            f"The date format '{mapping.date_format}' cannot read dates; use codes "
            f"such as %Y-%m-%d or %m/%d/%Y."
        )
    if mapping.decimal_separator not in (None, *DECIMAL_SEPARATORS):
        problems.append(
            f"The decimal separator '{mapping.decimal_separator}' is neither a dot "
            f"nor a comma."
        )
    problems += [
        f"The {name.replace('_', ' ')} cannot be an optional column; only these "
        f"can: {', '.join(OPTIONAL_FIELDS)}."
        for name in mapping.optional_columns
        if name not in OPTIONAL_FIELDS
    ]
    if problems:
        raise ImportRefused(problems)


def date_format_reads_dates(date_format: str) -> bool:
    """Whether a date written with ``date_format`` reads back as the same date."""
    try:
        written = SAMPLE_DATE.strftime(date_format)
        return datetime.strptime(written, date_format).date() == SAMPLE_DATE
    except ValueError:
        return False


def _read_accounts(
    data: bytes, mapping: AccountMapping, notes: list[str]
) -> _AccountFile:
    _check_account_mapping(mapping)
    table = read_csv(data, mapping.encoding, notes)
    mapping = _without_absent_columns(mapping, table.header, notes)
    check_columns(table, _account_columns(mapping))

    columns, problems = table.column_index(), RowProblems()
    padding = _Padding(mapping.pad_postal_to)
    parsed = _AccountFile(mapping, {}, [], len(table.rows))
    seen = _FirstRows()
    for number, values in table.rows:
        row = CsvRow(number, values, columns, problems, mapping.decimal_separator)
        account = _account_record(row, mapping, padding)
        line = _sales_line_record(row, mapping) if mapping.line_id else None
        line_id = line["external_line_id"] if line else None
        first = seen.repeated(line_id, number) if line_id else None
        if first is not None:
            row.fail(f"line id '{line_id}' already appears on row {first}")
        if not row.ok:
            continue
        parsed.accounts.setdefault(account["key"], account)
        if line is not None:
            parsed.lines.append(line | {"key": account["key"]})
            parsed.line_rows[line["external_line_id"]] = number
    problems.refuse_if_any()

    notes.extend(padding.notes())
    parsed.padded = padding.count
    return parsed


def _without_absent_columns(
    mapping: AccountMapping, header: list[str], notes: list[str]
) -> AccountMapping:
    """The mapping less the optional columns this file leaves out."""
    absent = {
        name: column
        for name in mapping.optional_columns
        if (column := getattr(mapping, name, None)) and column not in header
    }
    if not absent:
        return mapping
    listed = ", ".join(f"'{column}'" for column in absent.values())
    notes.append(
        f"Optional columns not in the file, so not read (values stored by earlier "
        f"imports stay): {listed}."
    )
    cleared: dict[str, Any] = dict.fromkeys(absent)
    return replace(mapping, **cleared)


def _check_postal_codes_known(parsed: _AccountFile) -> None:
    """Refuse a file none of whose postal codes is known while centroids are: the
    postal-code column is then almost surely the wrong one, and importing would key
    every account by it, so a corrected re-import would add each account twice."""
    mapping = parsed.mapping
    codes = sorted(
        {a["postal_code"] for a in parsed.accounts.values() if a["postal_code"]}
    )
    if not mapping.postal_code or not codes or not _count(POSTAL_CODES):
        return
    for chunk in _chunks(codes):
        known = select(POSTAL_CODES.c.code).where(POSTAL_CODES.c.code.in_(chunk))
        if db.session.scalar(known.limit(1)) is not None:
            return
    raise ImportRefused(
        [
            f"None of the {len(codes)} postal codes in column '{mapping.postal_code}' "
            f"is a known postal code (e.g. '{_shorten(codes[0])}'). Check the column "
            f"mapping, or import the postal-code centroids first."
        ]
    )


def _check_lines_stay_with_their_accounts(parsed: _AccountFile) -> None:
    """A sales line id already stored for another account is a wrong line id
    column (or a clash between files), never a line that changed hands."""
    keys = {line["external_line_id"]: line["key"] for line in parsed.lines}
    moved: list[tuple[int, str, str]] = []  # (row number, line id, stored key)
    for chunk in _chunks(sorted(keys)):
        stored = db.session.execute(
            select(SALES_LINES.c.external_line_id, ACCOUNTS.c.key)
            .join(ACCOUNTS, ACCOUNTS.c.id == SALES_LINES.c.account_id)
            .where(SALES_LINES.c.external_line_id.in_(chunk))
        )
        moved += [
            (parsed.line_rows[line_id], line_id, key)
            for line_id, key in stored
            if key != keys[line_id]
        ]

    problems = RowProblems()
    for row_number, line_id, key in sorted(moved):
        problems.add(
            f"Row {row_number}: sales line id '{line_id}' already belongs to account "
            f"{key}; a sales line cannot move to another account. Check the line id "
            f"column.",
            row=row_number,
        )
    problems.refuse_if_any()


def _account_record(
    row: CsvRow, mapping: AccountMapping, padding: _Padding
) -> dict[str, Any]:
    external_id = row.required(mapping.external_id, "external id", 120)
    postal_code = row.postal_code(mapping.postal_code, padding)
    city = row.text(mapping.city, "city", 120)
    state = row.text(mapping.state, "state", 120)
    key = _account_key(external_id, postal_code, city, state)
    if len(key) > 300:
        row.fail("the account key (external id, postal code, city, state) is too long")
    return {
        "key": key,
        "external_id": external_id,
        "name": row.required(mapping.name, "name", 200),
        "postal_code": postal_code,
        "city": city,
        "state": state,
        "country": row.country(mapping.country_column, mapping.country.strip().upper()),
        "segment": row.text(mapping.segment, "segment", 120),
        "industry": row.text(mapping.industry, "industry", 120),
        "annual_revenue": row.decimal(
            mapping.annual_revenue, "annual revenue", MAX_REVENUE
        ),
    }


def _account_key(
    external_id: str, postal_code: str | None, city: str | None, state: str | None
) -> str:
    """A customer at one ship-to location: by postal code, else by city and state."""
    if postal_code:
        return f"{external_id}|{postal_code}"
    return f"{external_id}|{city or ''}|{state or ''}"


def latest_sale_day() -> date:
    """Today where the day is latest on Earth (UTC+14): a sale made today
    anywhere is not in the future."""
    return (datetime.now(UTC) + timedelta(hours=14)).date()


def _sales_line_record(row: CsvRow, mapping: AccountMapping) -> dict[str, Any]:
    """A sales line's values; only the optional columns the mapping reads are
    included, so a re-import keeps what earlier imports stored for the others."""
    assert mapping.line_id and mapping.amount and mapping.order_date
    line_id = row.required(mapping.line_id, "line id", 120)
    amount = row.decimal(
        mapping.amount, "amount", MAX_AMOUNT, required=True, step=AMOUNT_STEP
    )
    if amount is not None and amount < 0:
        written = row.text(mapping.amount, "amount", 60)
        row.fail(
            f"the amount '{written}' in column '{mapping.amount}' is negative; for a "
            f"return, import the line again with its corrected amount (0 if all "
            f"was returned) under the same line id"
        )
    order_date = row.date(mapping.order_date, "order date", mapping.date_format)
    if order_date is not None and not EARLIEST_SALE <= order_date <= latest_sale_day():
        when = (
            "in the future"
            if order_date > EARLIEST_SALE
            else f"before {EARLIEST_SALE.isoformat()}"
        )
        row.fail(
            f"the order date {order_date.isoformat()} in column "
            f"'{mapping.order_date}' is {when}; check the year and the date format "
            f"({mapping.date_format})"
        )
    record = {
        "external_line_id": line_id,
        "order_date": order_date,
        "amount": amount,
    }
    optional = {
        "order_ref": (mapping.order_ref, "order reference", 120),
        "category": (mapping.category, "category", 120),
        "product": (mapping.product, "product", 300),
    }
    for name, (column, label, length) in optional.items():
        if column:
            record[name] = row.text(column, label, length)
    return record


def _updated_account_columns(mapping: AccountMapping) -> list[str]:
    """A re-import overwrites only what this mapping reads; other columns stay."""
    optional = {
        "postal_code": mapping.postal_code,
        "city": mapping.city,
        "state": mapping.state,
        "segment": mapping.segment,
        "industry": mapping.industry,
        "annual_revenue": mapping.annual_revenue,
        "country": mapping.country_column or mapping.country.strip(),
    }
    always = ["external_id", "name"]
    return always + [column for column, source in optional.items() if source]


def _write_accounts(parsed: _AccountFile, notes: list[str]) -> dict[str, int]:
    accounts_before, lines_before = _count(ACCOUNTS), _count(SALES_LINES)

    ids = _upsert_accounts(list(parsed.accounts.values()), parsed.mapping)
    for line in parsed.lines:
        line["account_id"] = ids[line.pop("key")]
    lines_changed = _changed_lines(parsed.lines)
    _upsert(SALES_LINES, parsed.lines, ["external_line_id"])
    some_without_country = any(
        account["country"] is None for account in parsed.accounts.values()
    )
    located = _locate_accounts(sorted(ids.values()), notes, some_without_country)

    lines_added = _count(SALES_LINES) - lines_before
    return {
        "rows": parsed.rows,
        "accounts": len(ids),
        "accounts_added": _count(ACCOUNTS) - accounts_before,
        "sales_lines": len(parsed.lines),
        "sales_lines_added": lines_added,
        "sales_lines_updated": lines_changed - lines_added,
        "padded": parsed.padded,
        **located,
    }


def _upsert_accounts(
    rows: list[dict[str, Any]], mapping: AccountMapping
) -> dict[str, int]:
    """Insert or update accounts by key; return key -> account id."""
    table = ACCOUNTS
    statement = _upsert_statement(table, ["key"], _updated_account_columns(mapping))
    statement = statement.returning(table.c.id, table.c.key)
    new_rows = [row | {"location_source": LocationSource.NONE.value} for row in rows]
    ids: dict[str, int] = {}
    for chunk in _chunks(new_rows):
        result = db.session.execute(statement, list(chunk))
        ids.update({key: account_id for account_id, key in result})
    return ids


# ------------------------------------------------------------ locating accounts


def _locate_accounts(
    account_ids: list[int], notes: list[str], some_without_country: bool
) -> dict[str, int]:
    """Place accounts at a centroid, set-based: by postal code, else city and state.

    The account file may name states ("Vermont") where the centroid file has codes
    ("VT"). The correspondence is learned from the data: from accounts located by
    postal code, and, for a state none of whose accounts has a usable postal code,
    by elimination among the states that hold the same cities.
    """
    countries = _centroid_countries() if some_without_country else []
    for chunk in _chunks(account_ids):
        _locate_by_postal_code(list(chunk), countries)
    learned = _learned_state_codes()
    inferred = _inferred_state_codes(account_ids, learned)
    for chunk in _chunks(account_ids):
        _locate_by_city_state(list(chunk), learned | inferred)

    counts = _location_counts(account_ids)
    notes.extend(_location_notes(account_ids, counts, learned, inferred))
    return {
        "located_by_postal_code": counts[LocationSource.POSTAL_CODE],
        "located_by_city_state": counts[LocationSource.CITY_STATE],
        "not_located": counts[LocationSource.NONE],
    }


def _centroid_countries() -> list[str]:
    query = select(POSTAL_CODES.c.country).distinct().order_by(POSTAL_CODES.c.country)
    return list(db.session.scalars(query))


def _same_country(accounts: Table, codes: Table) -> ColumnElement[bool]:
    return or_(accounts.c.country.is_(None), codes.c.country == accounts.c.country)


def _locate_by_postal_code(account_ids: list[int], countries: list[str]) -> None:
    accounts, codes = ACCOUNTS, POSTAL_CODES
    in_chunk = accounts.c.id.in_(account_ids)
    db.session.execute(
        update(accounts)
        .where(in_chunk)
        .values(location=null(), location_source=LocationSource.NONE.value)
    )
    _set_postal_centroid(in_chunk, codes.c.country == accounts.c.country)
    # An account without a country takes the code from the first country (in
    # alphabetical order) that has it; one statement per country keeps the
    # (country, code) index in use.
    without_country = and_(
        in_chunk,
        accounts.c.country.is_(None),
        accounts.c.location_source == LocationSource.NONE.value,
    )
    for country in countries:
        _set_postal_centroid(without_country, codes.c.country == country)


def _set_postal_centroid(
    which: ColumnElement[bool], same_country: ColumnElement[bool]
) -> None:
    # Correlated subqueries, not UPDATE .. FROM: that way both databases walk the
    # chunk's accounts and probe the (country, code) index, instead of a planner
    # choosing to scan every centroid of a country.
    accounts, codes = ACCOUNTS, POSTAL_CODES
    matching = and_(same_country, codes.c.code == accounts.c.postal_code)
    centroid = select(codes.c.location).where(matching).limit(1).scalar_subquery()
    db.session.execute(
        update(accounts)
        .where(which, exists().where(matching))
        .values(location=centroid, location_source=LocationSource.POSTAL_CODE.value)
    )


def _learned_state_codes() -> dict[str, str]:
    """Account state -> centroid state: the pair seen most often among accounts
    located by postal code (e.g. 'Vermont' -> 'VT' when centroids use codes)."""
    accounts, codes = ACCOUNTS, POSTAL_CODES
    pairs = db.session.execute(
        select(accounts.c.state, codes.c.state, func.count())
        .join(
            codes,
            and_(
                codes.c.code == accounts.c.postal_code, _same_country(accounts, codes)
            ),
        )
        .where(
            accounts.c.location_source == LocationSource.POSTAL_CODE.value,
            accounts.c.state.is_not(None),
            codes.c.state.is_not(None),
        )
        .group_by(accounts.c.state, codes.c.state)
    ).all()
    best: dict[str, tuple[int, str]] = {}
    for account_state, centroid_state, seen in pairs:
        current = best.get(account_state)
        # Ties go to the alphabetically first code, so the result never depends on
        # the order rows come back in.
        if current is None or (seen, current[1]) > (current[0], centroid_state):
            best[account_state] = (seen, centroid_state)
    return {name: code for name, (_seen, code) in best.items()}


def _inferred_state_codes(
    account_ids: list[int], learned: dict[str, str]
) -> dict[str, str]:
    """For state names nothing was learned about: the one centroid state that holds
    all their cities and is not already the counterpart of another state name."""
    taken = set(learned.values())
    candidates: dict[str, set[str]] = {}
    for (state, _city), states in _unlocated_city_states(account_ids).items():
        if state in learned:
            continue
        free = states - taken
        candidates[state] = candidates[state] & free if state in candidates else free
    unique = {state: next(iter(c)) for state, c in candidates.items() if len(c) == 1}
    claims = Counter(unique.values())
    return {state: code for state, code in unique.items() if claims[code] == 1}


def _unlocated_city_states(account_ids: list[int]) -> dict[tuple[str, str], set[str]]:
    """(account state, city) of accounts still unlocated -> centroid states with
    that city."""
    accounts, codes = ACCOUNTS, POSTAL_CODES
    found: dict[tuple[str, str], set[str]] = {}
    for chunk in _chunks(account_ids):
        rows = db.session.execute(
            select(accounts.c.state, accounts.c.city, codes.c.state)
            .distinct()
            .join(
                codes,
                and_(codes.c.city == accounts.c.city, _same_country(accounts, codes)),
            )
            .where(
                accounts.c.id.in_(list(chunk)),
                accounts.c.location_source == LocationSource.NONE.value,
                accounts.c.state.is_not(None),
                codes.c.state.is_not(None),
            )
        )
        for state, city, centroid_state in rows:
            found.setdefault((state, city), set()).add(centroid_state)
    return found


def _locate_by_city_state(account_ids: list[int], state_codes: dict[str, str]) -> None:
    accounts, codes = ACCOUNTS, POSTAL_CODES
    changed = {name: code for name, code in state_codes.items() if name != code}
    state: Any = (
        case(changed, value=accounts.c.state, else_=accounts.c.state)
        if changed
        else accounts.c.state
    )
    # Cities compare exactly (case included) so that the (city, state) index serves
    # the lookup; "BURLINGTON" does not find "Burlington".
    matching = and_(
        codes.c.city == accounts.c.city,
        codes.c.state == state,
        _same_country(accounts, codes),
    )
    # Several postal codes share a city; the lowest code is the one chosen, so the
    # result is the same on every run and database.
    centroid = (
        select(codes.c.location)
        .where(matching)
        .order_by(codes.c.code, codes.c.country)
        .limit(1)
        .scalar_subquery()
    )
    db.session.execute(
        update(accounts)
        .where(
            accounts.c.id.in_(account_ids),
            accounts.c.location_source == LocationSource.NONE.value,
            exists().where(matching),
        )
        .values(location=centroid, location_source=LocationSource.CITY_STATE.value)
    )


def _location_counts(account_ids: list[int]) -> Counter[str]:
    accounts = ACCOUNTS
    counts: Counter[str] = Counter()
    for chunk in _chunks(account_ids):
        rows = db.session.execute(
            select(accounts.c.location_source, func.count())
            .where(accounts.c.id.in_(list(chunk)))
            .group_by(accounts.c.location_source)
        )
        counts.update({source: number for source, number in rows})
    return counts


def _location_notes(
    account_ids: list[int],
    counts: Counter[str],
    learned: dict[str, str],
    inferred: dict[str, str],
) -> list[str]:
    notes: list[str] = []
    by_city = counts[LocationSource.CITY_STATE]
    if by_city:
        notes.append(
            f"Accounts located by city and state, for lack of a known postal code: "
            f"{by_city}{_state_pairs_note(account_ids, learned, inferred)}."
        )
    missing = counts[LocationSource.NONE]
    if missing:
        more = ", ..." if missing > MAX_UNLOCATED_LISTED else ""
        notes.append(
            f"Accounts kept without a location, as neither their postal code nor "
            f"their city and state has a centroid: {missing} (account keys: "
            f"{_unlocated_examples(account_ids)}{more})."
        )
    return notes


def _state_pairs_note(
    account_ids: list[int], learned: dict[str, str], inferred: dict[str, str]
) -> str:
    used = _states_located_by_city(account_ids)
    parts = []
    pairs = [f"{s} = {learned[s]}" for s in used if s in learned and learned[s] != s]
    if pairs:
        parts.append(
            "state names matched to centroid states as seen on accounts located by "
            "postal code: " + ", ".join(pairs)
        )
    guessed = [f"{s} = {inferred[s]}" for s in used if s in inferred]
    if guessed:
        parts.append(
            "matched by elimination, as the only state holding those cities that no "
            "other state name had claimed: " + ", ".join(guessed)
        )
    return f" ({'; '.join(parts)})" if parts else ""


def _states_located_by_city(account_ids: list[int]) -> list[str]:
    accounts = ACCOUNTS
    states: set[str] = set()
    for chunk in _chunks(account_ids):
        states.update(
            db.session.scalars(
                select(accounts.c.state)
                .distinct()
                .where(
                    accounts.c.id.in_(list(chunk)),
                    accounts.c.location_source == LocationSource.CITY_STATE.value,
                    accounts.c.state.is_not(None),
                )
            )
        )
    return sorted(states)


def _unlocated_examples(account_ids: list[int]) -> str:
    accounts = ACCOUNTS
    keys: list[str] = []
    for chunk in _chunks(account_ids):
        keys += db.session.scalars(
            select(accounts.c.key)
            .where(
                accounts.c.id.in_(list(chunk)),
                accounts.c.location_source == LocationSource.NONE.value,
            )
            .order_by(accounts.c.key)
            .limit(MAX_UNLOCATED_LISTED - len(keys))
        ).all()
        if len(keys) >= MAX_UNLOCATED_LISTED:
            break
    return ", ".join(keys)
