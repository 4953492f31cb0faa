"""The importers, their commands and their pages, on both databases.

Every refused file is checked for its message and for leaving the database exactly
as it was; the real demo files are loaded in two tests only, to keep the suite fast.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from geoalchemy2.shape import to_shape
from shapely.geometry import box, mapping
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from portal.demo import POSTAL_CODES, SUPERSTORE
from portal.extensions import db
from portal.models import Role
from territory_rules import imports
from territory_rules.imports import (
    AccountMapping,
    ImportReport,
    PostalCodeMapping,
    build_territory_shape,
    import_accounts,
    import_boundaries,
    import_postal_codes,
)
from territory_rules.models import Account, Boundary, PostalCode, SalesLine, Territory
from tests.conftest import AuthActions
from tests.factories import make_region, make_user

FIXTURES = Path(__file__).resolve().parent / "data"
DEMO_DATA = Path(__file__).resolve().parent.parent / "demo_data"

SMALL_CENTROIDS = PostalCodeMapping(
    code="zip",
    latitude="latitude",
    longitude="longitude",
    city="city",
    state="state",
    country="US",
    pad_to=5,
)
# The Superstore layout the demo ships, less the columns the small files lack.
SMALL_ACCOUNTS = replace(SUPERSTORE, order_ref=None, category=None, product=None)
CODES_ONLY = replace(SMALL_CENTROIDS, city=None, state=None)
DEMO_CENTROIDS = POSTAL_CODES
DEMO_ACCOUNTS = SUPERSTORE


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def feature(name: Any, geometry: Any, **properties: Any) -> dict[str, Any]:
    props = {"name": name, **properties} if name is not None else properties
    return {"type": "Feature", "properties": props, "geometry": geometry}


def square_geometry(x: float, y: float, size: float = 1) -> dict[str, Any]:
    return rectangle_geometry(x, y, x + size, y + size)


def rectangle_geometry(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    return json.loads(json.dumps(mapping(box(x0, y0, x1, y1))))


def collection(*features: dict[str, Any]) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": features}).encode()


def csv_bytes(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def point(geometry: Any) -> tuple[float, float]:
    shape = to_shape(geometry)
    return (round(shape.x, 4), round(shape.y, 4))


def database_state() -> dict[str, list[tuple[Any, ...]]]:
    """Everything the importers write, in a form two states can be compared in."""
    queries = {
        "boundaries": select(Boundary.layer, Boundary.name, Boundary.code),
        "postal_codes": select(PostalCode.country, PostalCode.code, PostalCode.city),
        "accounts": select(
            Account.key, Account.name, Account.postal_code, Account.location_source
        ),
        "sales_lines": select(SalesLine.external_line_id, SalesLine.amount),
        "territories": select(Territory.name),
    }
    return {
        table: sorted(tuple(row) for row in db.session.execute(query))
        for table, query in queries.items()
    }


def assert_refused_unchanged(
    run: Callable[[], ImportReport], *expected_errors: str
) -> ImportReport:
    """Run an import that must be refused: its errors start with the expected
    messages, and the database holds exactly what it held before."""
    before = database_state()

    report = run()

    db.session.rollback()
    assert not report.ok
    assert report.counts == {}
    for expected, error in zip(expected_errors, report.errors, strict=False):
        assert error.startswith(expected), error
    assert len(report.errors) == len(expected_errors), report.errors
    assert database_state() == before
    return report


@pytest.fixture
def seeded(clean_app: Flask) -> Flask:
    """A database already holding one import of each kind, so that 'unchanged'
    means something."""
    boundaries = collection(
        feature("North", square_geometry(0, 10, 10)),
        feature("South", square_geometry(0, 0, 10)),
    )
    assert import_boundaries(boundaries, "Test layer", "name").ok
    assert import_postal_codes(fixture("postal_codes_small.csv"), SMALL_CENTROIDS).ok
    assert import_accounts(fixture("accounts_bom_crlf.csv"), SMALL_ACCOUNTS).ok
    return clean_app


# ------------------------------------------------------------------- boundaries


def test_real_state_shapes_import_with_three_repairs(clean_app):
    report = import_boundaries(
        (DEMO_DATA / "us-states.json").read_bytes(), "US states", "name"
    )

    assert report.ok, report.errors
    assert report.counts == {
        "boundaries": 52,
        "added": 52,
        "updated": 0,
        "repaired": 3,
        "territories_rebuilt": 0,
    }
    repaired = db.session.scalars(
        select(Boundary.name)
        .where(Boundary.repair_note.is_not(None))
        .order_by(Boundary.name)
    ).all()
    assert repaired == ["Alaska", "Maryland", "Virginia"]
    assert [note.split(":")[0] for note in report.notes[:3]] == repaired
    assert "the area changed by 0.00017%" in report.notes[0]
    assert (
        db.session.scalar(
            select(func.count()).where(func.ST_SRID(Boundary.shape) == 4326)
        )
        == 52
    )
    maryland = db.session.scalar(select(Boundary).where(Boundary.name == "Maryland"))
    assert to_shape(maryland.shape).geom_type == "MultiPolygon"
    assert to_shape(maryland.shape).is_valid


def test_small_self_intersection_is_repaired_with_a_note(clean_app):
    report = import_boundaries(
        fixture("self_intersecting_small.geojson"), "Corners", "name"
    )

    assert report.ok, report.errors
    assert report.counts["repaired"] == 1
    assert report.notes == [
        "Crossed corner: repaired an invalid shape (self-intersection at 0.015 0); "
        "the area changed by 0.00015%."
    ]
    boundary = db.session.scalar(select(Boundary))
    shape = to_shape(boundary.shape)
    assert shape.geom_type == "MultiPolygon"
    assert shape.is_valid
    assert shape.area == pytest.approx(99.9)
    assert boundary.repair_note.startswith("repaired an invalid shape")


def test_polygon_becomes_multipolygon_and_code_can_be_the_feature_id(clean_app):
    document = {
        "type": "Feature",
        "id": "07",
        "properties": {"label": "Seven"},
        "geometry": square_geometry(1, 1),
    }

    report = import_boundaries(json.dumps(document).encode(), "Codes", "label", "id")

    assert report.ok, report.errors
    boundary = db.session.scalar(select(Boundary))
    assert (boundary.name, boundary.code) == ("Seven", "07")
    assert to_shape(boundary.shape).geom_type == "MultiPolygon"


BAD_GEOJSON = [
    pytest.param(
        fixture("truncated.geojson"),
        "The file is not valid JSON: Expecting property name enclosed in double "
        "quotes at line 3, column 1.",
        id="not-json",
    ),
    pytest.param(
        b"[1, 2]",
        "The file is a JSON array, not a GeoJSON FeatureCollection or Feature.",
        id="json-array",
    ),
    pytest.param(
        b'{"features": []}',
        "The file is a JSON object, not a GeoJSON FeatureCollection or Feature.",
        id="json-object-without-type",
    ),
    pytest.param(
        b'{"type": "FeatureCollection", "features": [{"type": "Feature", "pr',
        "The file is not valid JSON: Unterminated string starting at line 1, "
        "column 64.",
        id="unterminated-string",
    ),
    pytest.param(
        b"",
        "The file is empty. Choose a GeoJSON file holding a FeatureCollection.",
        id="empty",
    ),
    pytest.param(b" \n", "The file is empty.", id="blank"),
    pytest.param(
        b'{"type": "Point", "coordinates": [0, 0]}',
        "The file is of type 'Point', not a GeoJSON FeatureCollection or Feature.",
        id="bare-geometry",
    ),
    pytest.param(
        collection(),
        "The FeatureCollection holds no features.",
        id="no-features",
    ),
    pytest.param(
        collection(feature("North", None)),
        "Feature 1 (North) has no geometry.",
        id="no-geometry",
    ),
    pytest.param(
        collection(feature("North", {"type": "Polygon", "coordinates": []})),
        "Feature 1 (North) has an empty geometry.",
        id="empty-geometry",
    ),
    pytest.param(
        collection(
            feature("North", {"type": "LineString", "coordinates": [[0, 0], [1, 1]]})
        ),
        "Feature 1 (North) is a LineString; only Polygon and MultiPolygon shapes "
        "can be boundaries.",
        id="line",
    ),
    pytest.param(
        collection(feature(None, square_geometry(0, 0), NAME="North")),
        "Feature 1 has no 'name' property; its properties are 'NAME'.",
        id="missing-name",
    ),
    pytest.param(
        collection(feature("  ", square_geometry(0, 0))),
        "Feature 1: its 'name' property is empty.",
        id="empty-name",
    ),
    pytest.param(
        collection(
            feature("North", square_geometry(0, 0)),
            feature("North", square_geometry(5, 5)),
        ),
        "Feature 2: the name 'North' is already used by feature 1; names must be "
        "unique in a file.",
        id="duplicate-name",
    ),
    pytest.param(
        collection(feature("North", square_geometry(500000, 4000000, 1000))),
        "Feature 1 (North) has coordinates outside latitude -90 to 90 or longitude "
        "-360 to 360; the file must use WGS84 longitude/latitude (EPSG:4326), not "
        "projected coordinates.",
        id="projected-coordinates",
    ),
    pytest.param(
        fixture("bowtie.geojson"),
        "Feature 1 (Bow tie): the shape is not valid (self-intersection at 1 1) and "
        "the repair would change its area by over 100% (more than the 0.1% "
        "allowed); fix the shape in a GIS tool and import it again.",
        id="self-intersecting-beyond-repair",
    ),
]


@pytest.mark.parametrize(("data", "message"), BAD_GEOJSON)
def test_bad_geojson_is_refused_and_nothing_changes(seeded, data, message):
    assert_refused_unchanged(
        lambda: import_boundaries(data, "Test layer", "name"), message
    )


def test_every_bad_feature_is_listed(seeded):
    data = collection(
        feature("A", None),
        feature("B", square_geometry(0, 0)),
        feature("", square_geometry(0, 0)),
        feature("B", square_geometry(0, 0)),
    )

    assert_refused_unchanged(
        lambda: import_boundaries(data, "Test layer", "name"),
        "Feature 1 (A) has no geometry.",
        "Feature 3: its 'name' property is empty.",
        "Feature 4: the name 'B' is already used by feature 2",
    )


def test_a_layer_and_a_name_property_are_required(seeded):
    data = collection(feature("North", square_geometry(0, 0)))

    assert_refused_unchanged(
        lambda: import_boundaries(data, " ", ""),
        "Give the layer a name, e.g. 'US states'.",
        "Choose the property that holds each feature's name.",
    )


def test_reimport_replaces_shapes_by_name_and_rebuilds_territories(seeded):
    north, south = db.session.scalars(select(Boundary).order_by(Boundary.name)).all()
    territory = Territory(
        name="Both halves", region=make_region(), boundaries=[north, south]
    )
    db.session.add(territory)
    build_territory_shape(territory)
    db.session.commit()
    assert to_shape(territory.shape).area == pytest.approx(200)

    wider_north = collection(feature("North", rectangle_geometry(0, 10, 20, 20)))
    report = import_boundaries(wider_north, "Test layer", "name")

    assert report.ok, report.errors
    assert report.counts == {
        "boundaries": 1,
        "added": 0,
        "updated": 1,
        "repaired": 0,
        "territories_rebuilt": 1,
    }
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Boundary)) == 2
    rebuilt = db.session.get(Territory, territory.id)
    assert to_shape(rebuilt.shape).area == pytest.approx(300)
    assert to_shape(rebuilt.shape).geom_type == "MultiPolygon"


def test_the_same_name_in_another_layer_is_another_boundary(seeded):
    report = import_boundaries(
        collection(feature("North", square_geometry(50, 50))), "Other layer", "name"
    )

    assert report.counts["added"] == 1
    assert db.session.scalar(select(func.count()).select_from(Boundary)) == 3


# ----------------------------------------------------------------- postal codes


def test_postal_codes_import_then_update_by_country_and_code(clean_app):
    first = import_postal_codes(fixture("postal_codes_small.csv"), SMALL_CENTROIDS)
    renamed = fixture("postal_codes_small.csv").replace(b"Westfield", b"Westfield Town")
    second = import_postal_codes(renamed, SMALL_CENTROIDS)

    assert first.counts == {"postal_codes": 5, "added": 5, "updated": 0, "padded": 0}
    assert second.counts == {"postal_codes": 5, "added": 0, "updated": 5, "padded": 0}
    westfield = db.session.scalar(select(PostalCode).where(PostalCode.code == "07090"))
    assert (westfield.country, westfield.city, westfield.state) == (
        "US",
        "Westfield Town",
        "NJ",
    )
    assert point(westfield.location) == (-74.3461, 40.6532)
    assert db.session.scalar(select(func.count()).select_from(PostalCode)) == 5


def test_postal_codes_that_lost_leading_zeros_are_padded(clean_app):
    data = csv_bytes(
        "zip,latitude,longitude",
        "7090,40.6532,-74.3461",
        "501,40.8179,-73.0453",
        "A1B,47.5,-52.7",
        "123456,1,1",
    )

    report = import_postal_codes(data, CODES_ONLY)

    assert report.counts["padded"] == 2
    codes = db.session.scalars(select(PostalCode.code).order_by(PostalCode.code)).all()
    assert codes == ["00501", "07090", "123456", "A1B"]
    assert report.notes == [
        "Postal codes that had lost their leading zeros, padded to 5 digits: 2 "
        "(e.g. row 2: 7090 became 07090)."
    ]


def test_bad_postal_code_rows_are_all_listed(seeded):
    assert_refused_unchanged(
        lambda: import_postal_codes(fixture("postal_codes_bad.csv"), SMALL_CENTROIDS),
        "Row 3: the latitude '142.3644' in column 'latitude' is outside -90 to 90.",
        "Row 4: postal code '07090' already appears on row 2.",
        "Row 5: the latitude '40,7508' in column 'latitude' contains a comma; write "
        "numbers with a dot as the decimal separator and no thousands separators, "
        "e.g. 1234.50.",
        "Row 6: the postal code (column 'zip') is empty.",
    )


def test_a_missing_mapped_column_names_the_columns_found(seeded):
    mapping = PostalCodeMapping(
        code="Zip", latitude="latitude", longitude="Lon", country="US"
    )

    assert_refused_unchanged(
        lambda: import_postal_codes(fixture("postal_codes_small.csv"), mapping),
        "The column 'Zip' chosen for the postal code is not in the file; its "
        "columns are 'zip', 'latitude', 'longitude', 'city', 'state'.",
        "The column 'Lon' chosen for the longitude is not in the file",
    )


def test_postal_codes_need_a_country(seeded):
    mapping = PostalCodeMapping(code="zip", latitude="latitude", longitude="longitude")

    assert_refused_unchanged(
        lambda: import_postal_codes(fixture("postal_codes_small.csv"), mapping),
        "Choose the country of these postal codes, or the column that holds it.",
    )


def test_a_country_column_must_hold_codes(seeded):
    data = csv_bytes(
        "zip,lat,lon,country", "1000,50.8,4.35,BE", "02139,42.3,-71.1,USA!"
    )
    mapping = PostalCodeMapping(
        code="zip", latitude="lat", longitude="lon", country_column="country"
    )

    assert_refused_unchanged(
        lambda: import_postal_codes(data, mapping),
        "Row 3: the country 'USA!' in column 'country' is not a code of up to 3 "
        "letters such as US; choose a fixed country instead.",
    )


def test_fifty_problems_are_listed_and_the_rest_counted(seeded):
    data = csv_bytes(
        "zip,latitude,longitude", *(f"{10000 + n},north,-70" for n in range(60))
    )

    report = assert_refused_unchanged(
        lambda: import_postal_codes(data, CODES_ONLY),
        *(
            f"Row {row}: the latitude 'north' in column 'latitude' is not a number."
            for row in range(2, 52)
        ),
        "... and 10 more problems.",
    )
    assert len(report.errors) == 51


@pytest.mark.parametrize(
    ("data", "encoding", "message"),
    [
        pytest.param(b"", None, "The file is empty; it needs a header", id="empty"),
        pytest.param(
            b"zip,latitude,longitude\n\x81\xff,1,1\n",
            None,
            "The file is neither UTF-8 nor Windows-1252 text (byte 0x81 at position "
            "23); save it as UTF-8 and import it again.",
            id="undecodable",
        ),
        pytest.param(
            "zip,latitude,longitude,city\n07090,40.6,-74.3,Montr\u00e9al\n".encode(
                "cp1252"
            ),
            "utf-8",
            "The file is not valid utf-8 text (byte 0xe9 at position 50)",
            id="declared-encoding-wrong",
        ),
        pytest.param(
            b"zip,latitude,longitude\n", "klingon", "'klingon' is not an encoding"
        ),
        pytest.param(
            b"zip,latitude,longitude\r\n\r\n",
            None,
            "The file has a header but no rows.",
            id="header-only",
        ),
        pytest.param(
            b"zip,latitude,longitude\n07090,40.6\n",
            None,
            "Row 2 has 2 values but the header has 3 columns; check for a missing or "
            "extra separator or quote.",
            id="ragged-row",
        ),
    ],
)
def test_unreadable_csv_files_are_refused(seeded, data, encoding, message):
    mapping = PostalCodeMapping(
        code="zip",
        latitude="latitude",
        longitude="longitude",
        country="US",
        encoding=encoding,
    )

    assert_refused_unchanged(lambda: import_postal_codes(data, mapping), message)


def test_a_semicolon_separated_file_gets_a_hint(seeded):
    data = b"zip;latitude;longitude\n07090;40.6532;-74.3461\n"

    assert_refused_unchanged(
        lambda: import_postal_codes(data, CODES_ONLY),
        "The column 'zip' chosen for the postal code is not in the file; its "
        "columns are 'zip;latitude;longitude'.",
        "The column 'latitude' chosen for the latitude",
        "The column 'longitude' chosen for the longitude",
        "The header looks separated by semicolons; save the file as CSV with commas "
        "between the columns.",
    )


def test_a_database_refusal_while_writing_rolls_everything_back(seeded, monkeypatch):
    write_rows = imports._upsert

    def write_then_fail(table: Any, rows: Any, keys: Any) -> None:
        write_rows(table, rows, keys)
        raise IntegrityError("INSERT ...", {}, Exception("duplicate key"))

    monkeypatch.setattr(imports, "_upsert", write_then_fail)
    renamed = fixture("postal_codes_small.csv").replace(b"Westfield", b"Elsewhere")

    assert_refused_unchanged(
        lambda: import_postal_codes(renamed + b"99999,1,1,Far,XX\n", SMALL_CENTROIDS),
        "The database refused the postal codes (duplicate key); nothing was imported.",
    )


def test_trailing_empty_cells_and_blank_lines_are_harmless(clean_app):
    data = b"zip,latitude,longitude\r\n\r\n07090,40.6532,-74.3461,,\r\n"

    report = import_postal_codes(data, CODES_ONLY)

    assert report.ok, report.errors
    assert report.counts["postal_codes"] == 1


# --------------------------------------------------------------------- accounts


def test_accounts_from_a_bom_crlf_file_are_padded_and_located(clean_app):
    import_postal_codes(fixture("postal_codes_small.csv"), SMALL_CENTROIDS)

    report = import_accounts(fixture("accounts_bom_crlf.csv"), SMALL_ACCOUNTS)

    assert report.ok, report.errors
    assert report.counts == {
        "rows": 7,
        "accounts": 6,
        "accounts_added": 6,
        "sales_lines": 7,
        "sales_lines_added": 7,
        "sales_lines_updated": 0,
        "padded": 2,
        "located_by_postal_code": 4,
        "located_by_city_state": 1,
        "not_located": 1,
    }
    accounts = {account.key: account for account in db.session.scalars(select(Account))}
    assert set(accounts) == {
        "C-1|07090",
        "C-2|02139",
        "C-3|10001",
        "C-4|Burlington|Vermont",
        "C-5|99999",
        "C-6|05408",
    }
    ada = accounts["C-1|07090"]
    assert (ada.name, ada.postal_code, ada.segment, ada.country) == (
        "Ada Ltd",
        "07090",
        "Consumer",
        "US",
    )
    assert (ada.location_source, point(ada.location)) == (
        "postal_code",
        (-74.3461, 40.6532),
    )
    dee = accounts["C-4|Burlington|Vermont"]
    # Vermont -> VT is learned from C-6, located by its postal code; the lowest
    # Burlington code, 05401, gives the centroid.
    assert (dee.postal_code, dee.location_source) == (None, "city_state")
    assert point(dee.location) == (-73.2479, 44.4841)
    eve = accounts["C-5|99999"]
    assert (eve.location_source, eve.location) == ("none", None)
    assert report.notes == [
        "Postal codes that had lost their leading zeros, padded to 5 digits: 2 "
        "(e.g. row 2: 7090 became 07090).",
        "Accounts located by city and state, for lack of a known postal code: 1 "
        "(state names matched to centroid states as seen on accounts located by "
        "postal code: Vermont = VT).",
        "Accounts kept without a location, as neither their postal code nor their "
        "city and state has a centroid: 1 (account keys: C-5|99999).",
    ]
    lines = db.session.scalars(
        select(SalesLine).order_by(SalesLine.external_line_id)
    ).all()
    assert sum(line.amount for line in lines) == Decimal("150.00")
    assert (lines[0].order_date, lines[0].amount, lines[0].account_id) == (
        date(2019, 11, 8),
        Decimal("100.50"),
        ada.id,
    )


def test_reimporting_accounts_updates_instead_of_adding(seeded):
    changed = (
        fixture("accounts_bom_crlf.csv")
        .replace(b"Bea Inc", b"Bea Incorporated")
        .replace(b"5.25", b"6.25")
    )

    same = import_accounts(fixture("accounts_bom_crlf.csv"), SMALL_ACCOUNTS)
    updated = import_accounts(changed, SMALL_ACCOUNTS)

    for report in (same, updated):
        assert report.ok, report.errors
        assert (
            report.counts["accounts_added"],
            report.counts["sales_lines_added"],
        ) == (
            0,
            0,
        )
    assert same.counts["sales_lines_updated"] == 0
    assert updated.counts["sales_lines_updated"] == 1  # the amount 5.25 -> 6.25
    assert db.session.scalar(select(func.count()).select_from(Account)) == 6
    assert db.session.scalar(select(func.count()).select_from(SalesLine)) == 7
    bea = db.session.scalar(select(Account).where(Account.external_id == "C-2"))
    assert bea.name == "Bea Incorporated"
    line = db.session.scalar(select(SalesLine).where(SalesLine.external_line_id == "3"))
    assert line.amount == Decimal("6.25")


def test_bad_account_rows_are_all_listed(seeded):
    mapping = replace(SMALL_ACCOUNTS, segment=None)

    assert_refused_unchanged(
        lambda: import_accounts(fixture("accounts_bad_rows.csv"), mapping),
        "Row 2: the amount '12,5' in column 'Sales' contains a comma; write numbers "
        "with a dot as the decimal separator and no thousands separators, e.g. "
        "1234.50.",
        "Row 3: the amount '1.234,50' in column 'Sales' contains a comma",
        "Row 4: the amount 'twelve' in column 'Sales' is not a number.",
        "Row 5: the order date '2019-01-03' in column 'Order Date' does not match "
        "the date format %m/%d/%Y (for example 11/28/2019).",
        "Row 6: line id '2' already appears on row 3.",
        "Row 7: the external id (column 'Customer ID') is empty.",
    )


def test_a_comma_decimal_is_never_stored_as_a_smaller_number(seeded):
    data = csv_bytes(
        "Row ID,Customer ID,Customer Name,Sales,Order Date",
        '99,C-9,Zed,"1.234,50",1/1/2019',
    )
    mapping = AccountMapping(
        external_id="Customer ID",
        name="Customer Name",
        line_id="Row ID",
        amount="Sales",
        order_date="Order Date",
        date_format="%m/%d/%Y",
    )

    assert_refused_unchanged(
        lambda: import_accounts(data, mapping),
        "Row 2: the amount '1.234,50' in column 'Sales' contains a comma",
    )


def test_windows_1252_files_are_detected(clean_app):
    import_postal_codes(fixture("postal_codes_small.csv"), SMALL_CENTROIDS)
    mapping = AccountMapping(
        external_id="Customer ID",
        name="Customer Name",
        postal_code="Postal Code",
        country="US",
    )

    report = import_accounts(fixture("accounts_cp1252.csv"), mapping)

    assert report.ok, report.errors
    assert report.notes == [
        "The file is not UTF-8; it was read as Windows-1252 (cp1252)."
    ]
    account = db.session.scalar(select(Account))
    assert (account.name, account.key, account.location_source) == (
        "Caf\u00e9 M\u00fcller",
        "C-9|02139",
        "postal_code",
    )


def test_a_refused_report_keeps_what_was_learned_about_the_file(seeded):
    data = "id,name\r\nK-1,Caf\u00e9\r\n,Nameless\r\n".encode("cp1252")

    report = assert_refused_unchanged(
        lambda: import_accounts(data, AccountMapping(external_id="id", name="name")),
        "Row 3: the external id (column 'id') is empty.",
    )
    assert report.notes == [
        "The file is not UTF-8; it was read as Windows-1252 (cp1252)."
    ]


def test_accounts_without_a_country_use_any_country_centroid(clean_app):
    import_postal_codes(fixture("postal_codes_small.csv"), SMALL_CENTROIDS)
    data = csv_bytes("id,name,zip", "K-1,Kay,02139")

    report = import_accounts(
        data, AccountMapping(external_id="id", name="name", postal_code="zip")
    )

    assert report.counts["located_by_postal_code"] == 1
    account = db.session.scalar(select(Account))
    assert (account.country, point(account.location)) == (None, (-71.1012, 42.3644))


def test_state_names_are_matched_by_elimination_when_never_seen_with_a_code(
    clean_app,
):
    centroids = (
        fixture("postal_codes_small.csv") + b"08016,40.0747,-74.8342,Burlington,NJ\n"
    )
    import_postal_codes(centroids, SMALL_CENTROIDS)
    data = csv_bytes(
        "id,name,city,state,zip",
        "A-1,Ann,Westfield,New Jersey,07090",
        "B-1,Ben,Burlington,Vermont,",
    )
    mapping = AccountMapping(
        external_id="id",
        name="name",
        city="city",
        state="state",
        postal_code="zip",
        country="US",
    )

    report = import_accounts(data, mapping)

    ben = db.session.scalar(select(Account).where(Account.external_id == "B-1"))
    assert (ben.location_source, point(ben.location)) == (
        "city_state",
        (-73.2479, 44.4841),
    )
    assert report.notes == [
        "Accounts located by city and state, for lack of a known postal code: 1 "
        "(matched by elimination, as the only state holding those cities that no "
        "other state name had claimed: Vermont = VT)."
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param(
            {"amount": None},
            "To import sales lines choose the line id, amount and order date columns",
            id="incomplete-sales-line-mapping",
        ),
        pytest.param(
            {"date_format": "%Y"},
            "The date format '%Y' cannot read dates; use codes such as %Y-%m-%d",
            id="date-format-without-day",
        ),
        pytest.param(
            {"name": "Customer ID"},
            "The column 'Customer ID' is chosen for both the external id and the "
            "name; each of these needs its own column.",
            id="id-and-name-in-one-column",
        ),
        pytest.param(
            {"name": "Postal Code", "external_id": "Postal Code"},
            "The column 'Postal Code' is chosen for the external id, the name and "
            "the postal code; each of these needs its own column.",
            id="three-roles-in-one-column",
        ),
        pytest.param(
            {"country": "United States"},
            "The country 'United States' is not a code of up to 3 letters such as US.",
            id="country-name",
        ),
    ],
)
def test_impossible_account_mappings_are_refused(seeded, changes, message):
    mapping = AccountMapping(**(SMALL_ACCOUNTS.__dict__ | changes))

    assert_refused_unchanged(
        lambda: import_accounts(fixture("accounts_bom_crlf.csv"), mapping), message
    )


def test_a_sales_line_never_moves_to_another_account(seeded):
    data = csv_bytes(
        "Row ID,Customer ID,Customer Name,Sales,Order Date",
        "8,C-9,Zed,2.00,1/1/2019",
        "1,C-9,Zed,1.00,1/1/2019",
        "3,C-1,Ada Ltd,4.00,1/1/2019",
    )
    mapping = AccountMapping(
        external_id="Customer ID",
        name="Customer Name",
        line_id="Row ID",
        amount="Sales",
        order_date="Order Date",
        date_format="%m/%d/%Y",
    )

    assert_refused_unchanged(
        lambda: import_accounts(data, mapping),
        "Row 3: sales line id '1' already belongs to account C-1|07090; a sales line "
        "cannot move to another account. Check the line id column.",
        "Row 4: sales line id '3' already belongs to account C-2|02139; a sales line "
        "cannot move to another account. Check the line id column.",
    )
    line = db.session.scalar(select(SalesLine).where(SalesLine.external_line_id == "1"))
    assert line.amount == Decimal("100.50")


def test_a_sales_line_of_the_same_account_is_updated(seeded):
    data = fixture("accounts_bom_crlf.csv").replace(b",100.50,", b",99.00,")

    report = import_accounts(data, SMALL_ACCOUNTS)

    assert report.ok, report.errors
    line = db.session.scalar(select(SalesLine).where(SalesLine.external_line_id == "1"))
    ada = db.session.scalar(select(Account).where(Account.key == "C-1|07090"))
    assert (line.amount, line.account_id) == (Decimal("99.00"), ada.id)
    assert db.session.scalar(select(func.count()).select_from(SalesLine)) == 7


def test_a_postal_code_column_of_unknown_codes_is_refused(seeded):
    mapping = replace(SMALL_ACCOUNTS, postal_code="Segment")

    assert_refused_unchanged(
        lambda: import_accounts(fixture("accounts_bom_crlf.csv"), mapping),
        "None of the 3 postal codes in column 'Segment' is a known postal code (e.g. "
        "'Consumer'). Check the column mapping, or import the postal-code centroids "
        "first.",
    )
    assert db.session.scalar(select(func.count()).select_from(Account)) == 6


def test_one_known_postal_code_is_enough(seeded):
    data = csv_bytes("id,name,zip", "K-1,Kay,02139", "K-2,Kim,99998", "K-3,Kit,99997")

    report = import_accounts(
        data, AccountMapping(external_id="id", name="name", postal_code="zip")
    )

    assert report.ok, report.errors
    assert (report.counts["located_by_postal_code"], report.counts["not_located"]) == (
        1,
        2,
    )


def test_unknown_postal_codes_are_accepted_before_any_centroid(clean_app):
    data = csv_bytes("id,name,zip", "K-1,Kay,02139")

    report = import_accounts(
        data, AccountMapping(external_id="id", name="name", postal_code="zip")
    )

    assert report.ok, report.errors
    assert report.counts["not_located"] == 1


def test_a_header_without_rows_is_refused(seeded):
    data = fixture("accounts_bom_crlf.csv").split(b"\r\n")[0] + b"\r\n"

    assert_refused_unchanged(
        lambda: import_accounts(data, SMALL_ACCOUNTS),
        "The file has a header but no rows.",
    )


# ------------------------------------------------------------- real demo files


def expected_superstore() -> tuple[set[str], Decimal]:
    """Account keys and the total of the amounts as written in the file, computed here
    independently of the importer."""
    keys, total = set(), Decimal(0)
    with (DEMO_DATA / "sample_superstore.csv").open(encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle):
            code = row["Postal Code"]
            code = code.zfill(5) if code else ""
            keys.add(
                f"{row['Customer ID']}|{code}"
                if code
                else f"{row['Customer ID']}|{row['City']}|{row['State']}"
            )
            total += Decimal(row["Sales"])
    return keys, total


def first_centroid(city: str, state: str) -> tuple[float, float]:
    """The centroid of the lowest postal code of a city, read from the file."""
    with (DEMO_DATA / "us_zipcodes.csv").open(encoding="utf-8") as handle:
        rows = [
            r
            for r in csv.DictReader(handle)
            if (r["city"], r["state"]) == (city, state)
        ]
    first = min(rows, key=lambda row: row["zip_code"])
    return (float(first["long"]), float(first["lat"]))


def test_real_centroids_and_superstore_accounts(clean_app):
    centroids = (DEMO_DATA / "us_zipcodes.csv").read_bytes()
    orders = (DEMO_DATA / "sample_superstore.csv").read_bytes()
    keys, total = expected_superstore()

    postal = import_postal_codes(centroids, DEMO_CENTROIDS)
    accounts = import_accounts(orders, DEMO_ACCOUNTS)

    assert postal.counts == {
        "postal_codes": 42735,
        "added": 42735,
        "updated": 0,
        "padded": 0,
    }
    assert accounts.ok, accounts.errors
    assert accounts.counts == {
        "rows": 9994,
        "accounts": 4910,
        "accounts_added": 4910,
        "sales_lines": 9994,
        "sales_lines_added": 9994,
        "sales_lines_updated": 0,
        "padded": 438,
        "located_by_postal_code": 4905,
        "located_by_city_state": 5,
        "not_located": 0,
    }
    assert set(db.session.scalars(select(Account.key))) == keys
    stored_total = db.session.scalar(select(func.sum(SalesLine.amount)))
    assert total == Decimal("2297200.8603")
    assert float(stored_total) == pytest.approx(float(total), abs=0.00005)
    westfield = db.session.scalars(
        select(Account).where(Account.postal_code == "07090")
    ).all()
    assert len(westfield) == 4
    assert {a.location_source for a in westfield} == {"postal_code"}
    burlington = db.session.scalars(
        select(Account).where(Account.state == "Vermont")
    ).all()
    assert len(burlington) == 5
    assert {(a.postal_code, a.location_source) for a in burlington} == {
        (None, "city_state")
    }
    assert {point(a.location) for a in burlington} == {
        first_centroid("Burlington", "VT")
    }
    assert "Vermont = VT" in accounts.notes[1]

    again_postal = import_postal_codes(centroids, DEMO_CENTROIDS)
    again = import_accounts(orders, DEMO_ACCOUNTS)

    assert (again_postal.counts["added"], again_postal.counts["updated"]) == (0, 42735)
    assert (again.counts["accounts_added"], again.counts["sales_lines_added"]) == (0, 0)
    assert again.counts["sales_lines_updated"] == 0
    assert db.session.scalar(select(func.count()).select_from(PostalCode)) == 42735
    assert db.session.scalar(select(func.count()).select_from(Account)) == 4910
    assert db.session.scalar(select(func.count()).select_from(SalesLine)) == 9994


# ------------------------------------------------------------------ commands


def run_command(app: Flask, *args: str) -> Any:
    db.session.commit()  # the command has its own session; let it see our rows
    result = app.test_cli_runner().invoke(args=["territories", *map(str, args)])
    db.session.rollback()
    return result


def test_import_commands_print_the_report(clean_app):
    postal = run_command(
        clean_app,
        "import-postal-codes",
        FIXTURES / "postal_codes_small.csv",
        "--code",
        "zip",
        "--lat",
        "latitude",
        "--lon",
        "longitude",
        "--city",
        "city",
        "--state",
        "state",
        "--country",
        "US",
    )
    accounts = run_command(
        clean_app,
        "import-accounts",
        FIXTURES / "accounts_bom_crlf.csv",
        "--external-id",
        "Customer ID",
        "--name",
        "Customer Name",
        "--postal-code",
        "Postal Code",
        "--city",
        "City",
        "--state",
        "State",
        "--country",
        "US",
        "--line-id",
        "Row ID",
        "--amount",
        "Sales",
        "--order-date",
        "Order Date",
        "--date-format",
        "%m/%d/%Y",
        "--pad-postal-to",
        "5",
    )
    boundaries = run_command(
        clean_app,
        "import-boundaries",
        FIXTURES / "self_intersecting_small.geojson",
        "--layer",
        "Corners",
        "--name-property",
        "name",
    )

    assert postal.exit_code == 0, postal.output
    assert postal.stdout == "Imported: postal codes 5, added 5, updated 0, padded 0.\n"
    assert accounts.exit_code == 0, accounts.output
    assert accounts.stdout.startswith(
        "Imported: rows 7, accounts 6, accounts added 6, sales lines 7, "
        "sales lines added 7, sales lines updated 0, padded 2, located by postal "
        "code 4, "
        "located by city state 1, not located 1.\n"
        "  note: Postal codes that had lost their leading zeros"
    )
    assert boundaries.exit_code == 0, boundaries.output
    assert "note: Crossed corner: repaired an invalid shape" in boundaries.stdout
    assert db.session.scalar(select(func.count()).select_from(SalesLine)) == 7


def test_a_refused_command_exits_1_with_the_errors_on_stderr(seeded):
    before = database_state()

    result = run_command(
        seeded,
        "import-accounts",
        FIXTURES / "accounts_bad_rows.csv",
        "--external-id",
        "Customer ID",
        "--name",
        "Customer Name",
        "--line-id",
        "Row ID",
        "--amount",
        "Sales",
        "--order-date",
        "Order Date",
        "--date-format",
        "%m/%d/%Y",
    )

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(
        "Nothing was imported:\n  Row 2: the amount '12,5' in column 'Sales'"
    )
    assert "Row 7: the external id (column 'Customer ID') is empty." in result.stderr
    assert database_state() == before


# --------------------------------------------------------------------- pages


@pytest.fixture
def admin_client(client: FlaskClient, auth: AuthActions) -> FlaskClient:
    make_user(Role.ADMIN, email="admin@example.test")
    db.session.commit()
    auth.sign_in("admin@example.test")
    return client


def upload(
    client: FlaskClient, url: str, filename: str, data: bytes, /, **fields: Any
) -> Any:
    prefix = url.rsplit("/", 1)[-1].replace("-", "_")
    form = {f"{prefix}-{key}": value for key, value in fields.items()}
    form[f"{prefix}-file"] = (io.BytesIO(data), filename)
    return client.post(url, data=form, content_type="multipart/form-data")


def test_the_imports_page_shows_three_forms_to_admins(admin_client):
    page = admin_client.get("/territories/imports/")

    html = page.get_data(as_text=True)
    assert page.status_code == 200
    for action in ("boundaries", "postal-codes", "accounts"):
        assert f'action="/territories/imports/{action}"' in html
    assert 'enctype="multipart/form-data"' in html
    assert "Files may be up to 64 MB." in html


@pytest.mark.parametrize("role", [Role.PARTNER, Role.MANAGER])
def test_the_imports_page_is_for_admins_only(client, auth, role):
    make_user(role, email="someone@example.test")
    db.session.commit()
    auth.sign_in("someone@example.test")

    assert client.get("/territories/imports/").status_code == 403
    assert (
        upload(
            client, "/territories/imports/boundaries", "x.json", b"{}", layer="L"
        ).status_code
        == 403
    )


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get("/territories/imports/")

    assert response.status_code == 302
    assert "/auth/sign-in" in response.headers["Location"]


def test_uploads_show_counts_notes_and_errors(admin_client):
    postal = upload(
        admin_client,
        "/territories/imports/postal-codes",
        "centroids.csv",
        fixture("postal_codes_small.csv"),
        code="zip",
        latitude="latitude",
        longitude="longitude",
        city="city",
        state="state",
        country="us",
        pad_to="5",
    )
    accounts = upload(
        admin_client,
        "/territories/imports/accounts",
        "orders.csv",
        fixture("accounts_bom_crlf.csv"),
        external_id="Customer ID",
        name="Customer Name",
        postal_code="Postal Code",
        city="City",
        state="State",
        country="US",
        line_id="Row ID",
        amount="Sales",
        order_date="Order Date",
        date_format="%m/%d/%Y",
        pad_postal_to="5",
    )
    refused = upload(
        admin_client,
        "/territories/imports/boundaries",
        "shapes.json",
        fixture("bowtie.geojson"),
        layer="Shapes",
        name_property="name",
    )

    assert postal.status_code == 200
    assert "Postal-code centroids: imported" in postal.get_data(as_text=True)
    html = accounts.get_data(as_text=True)
    assert accounts.status_code == 200
    assert "<dt>Sales lines</dt><dd>7</dd>" in html
    assert "Vermont = VT" in html
    assert db.session.scalar(select(func.count()).select_from(Account)) == 6
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "Boundaries: nothing imported" in html
    assert "Feature 1 (Bow tie): the shape is not valid" in html
    assert db.session.scalar(select(func.count()).select_from(Boundary)) == 0


def test_an_incomplete_form_is_shown_again_with_its_errors(admin_client):
    response = upload(
        admin_client,
        "/territories/imports/accounts",
        "orders.csv",
        fixture("accounts_bom_crlf.csv"),
        external_id="Customer ID",
        name="",
        line_id="Row ID",
    )

    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Enter the name column." in html
    assert "To import sales lines enter the line id, amount and order date" in html
    assert db.session.scalar(select(func.count()).select_from(Account)) == 0


def test_the_postal_code_form_asks_for_a_country(admin_client):
    response = upload(
        admin_client,
        "/territories/imports/postal-codes",
        "centroids.csv",
        fixture("postal_codes_small.csv"),
        code="zip",
        latitude="latitude",
        longitude="longitude",
    )

    assert response.status_code == 400
    assert (
        "Enter the country of these postal codes, or the column that holds it."
        in response.get_data(as_text=True)
    )


def test_an_oversized_upload_from_a_stranger_shows_no_import_page(
    client, clean_app, monkeypatch
):
    # With CSRF on, the size check fires before the view's role check.
    monkeypatch.setitem(clean_app.config, "MAX_CONTENT_LENGTH", 2048)
    monkeypatch.setitem(clean_app.config, "WTF_CSRF_ENABLED", True)

    response = upload(
        client, "/territories/imports/boundaries", "big.json", b" " * 4096
    )

    html = response.get_data(as_text=True)
    assert response.status_code == 413
    assert "The file is larger than the portal accepts." in html
    assert "Import boundaries" not in html


def test_an_upload_over_the_size_limit_gets_a_friendly_page(
    admin_client, clean_app, monkeypatch
):
    monkeypatch.setitem(clean_app.config, "MAX_CONTENT_LENGTH", 2048)

    response = upload(
        admin_client,
        "/territories/imports/postal-codes",
        "big.csv",
        b"zip,latitude,longitude\n" + b"07090,40.6532,-74.3461\n" * 200,
        code="zip",
        latitude="latitude",
        longitude="longitude",
        country="US",
    )

    assert response.status_code == 413
    assert "The file is larger than the 2 KB an upload may be" in response.get_data(
        as_text=True
    )
    assert db.session.scalar(select(func.count()).select_from(PostalCode)) == 0


def test_a_boundary_upload_speaks_of_features(admin_client):
    response = upload(
        admin_client,
        "/territories/imports/boundaries",
        "shapes.json",
        collection(feature("North", square_geometry(0, 0))),
        layer="Shapes",
        name_property="name",
    )

    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Every feature of" in html
    assert "Every row of" not in html


def input_value(html: str, name: str) -> str | None:
    """The value of the page's input field with this name (None when absent)."""
    for tag in re.findall(r"<input [^>]*>", html):
        if f'name="{name}"' in tag:
            found = re.search(r'value="([^"]*)"', tag)
            return found.group(1) if found else ""
    return None


def test_import_another_file_keeps_the_mapping(admin_client):
    refused = upload(
        admin_client,
        "/territories/imports/accounts",
        "orders.csv",
        b"Customer ID,Customer Name,Zip\n",
        external_id="Customer ID",
        name="Customer Name",
        postal_code="Zip",
        pad_postal_to="5",
    )

    html = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "The file has a header but no rows." in html
    assert 'action="/territories/imports/#accounts"' in html
    kept = {
        name: input_value(html, f"accounts-{name}")
        for name in ("postal_code", "pad_postal_to", "file", "csrf_token")
    }
    assert kept == {
        "postal_code": "Zip",
        "pad_postal_to": "5",
        "file": None,
        "csrf_token": None,
    }

    again = admin_client.get(
        "/territories/imports/",
        query_string={"accounts-postal_code": "Zip", "accounts-pad_postal_to": "5"},
    )

    html = again.get_data(as_text=True)
    assert again.status_code == 200
    assert input_value(html, "accounts-postal_code") == "Zip"
    assert input_value(html, "accounts-pad_postal_to") == "5"
    assert input_value(html, "accounts-name") == ""
    assert input_value(html, "postal_codes-code") == ""
    assert "some fields below need fixing" not in html


def test_a_form_with_errors_is_announced_at_the_top(admin_client):
    response = upload(
        admin_client,
        "/territories/imports/postal-codes",
        "centroids.csv",
        fixture("postal_codes_small.csv"),
        code="zip",
    )

    html = response.get_data(as_text=True)
    assert response.status_code == 400
    summary = html.index("some fields below need fixing")
    assert summary < html.index('id="boundaries-title"')
    assert '<a href="#postal-codes">Postal-code centroids</a>' in html
    assert html.index("Enter the latitude column.") > summary
    assert input_value(html, "postal_codes-code") == "zip"


def test_deeply_nested_json_is_refused_with_a_message(clean_app):
    report = import_boundaries(b"[" * 100_000, "Layer", "name")

    assert not report.ok
    assert report.errors == [
        "The file nests JSON arrays or objects too deeply to be GeoJSON."
    ]


def test_a_codec_that_is_not_a_text_encoding_is_refused(clean_app):
    mapping = replace(SMALL_CENTROIDS, encoding="base64")

    report = import_postal_codes(b"zip,latitude,longitude\n02139,42.3,-71.1\n", mapping)

    assert not report.ok
    assert report.errors == ["'base64' is not a text encoding; try utf-8 or cp1252."]
