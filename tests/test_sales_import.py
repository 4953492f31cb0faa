"""Sales imports through saved sources: files, reports, records, command, pages.

Every refused file is checked for its report and for leaving the accounts and
sales lines exactly as they were, while its record is kept. Rewards runs are
recorded instead of run: the ledger is not what these tests are about.
"""

from __future__ import annotations

import csv
import functools
import html
import io
from dataclasses import asdict
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import generate_password_hash

from portal.demo import SUPERSTORE as DEMO_SUPERSTORE
from portal.extensions import db
from portal.models import Role
from rewards.imports import (
    GENERIC,
    SUPERSTORE,
    ensure_built_in_sources,
    import_sales,
    source_mapping,
    source_named,
)
from rewards.models import SalesImport, SalesSource
from territory_rules import imports as territory_imports
from territory_rules.models import Account, SalesLine
from tests.conftest import AuthActions
from tests.factories import make_user

DEMO_DATA = Path(__file__).resolve().parent.parent / "demo_data"
HEADER = [
    "line_id",
    "order_date",
    "amount",
    "customer_id",
    "customer_name",
    "postal_code",
    "city",
    "state",
    "country",
    "segment",
    "industry",
    "category",
    "product",
    "order_ref",
]
URL = "/admin/rewards/imports/"


@pytest.fixture(autouse=True)
def quick_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Full-strength hashing costs a fifth of a second per user; keep tests quick."""
    quick = functools.partial(generate_password_hash, method="pbkdf2:sha256:1000")
    monkeypatch.setattr("portal.models.generate_password_hash", quick)


@pytest.fixture(autouse=True)
def rewards_runs(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The recomputes asked for after new sales, by whom; none is run."""
    requested: list[Any] = []
    monkeypatch.setattr(
        "rewards.jobs.after_new_sales",
        lambda started_by=None: requested.append(started_by),
    )
    return requested


def sale(line_id: str, **values: str) -> dict[str, str]:
    """One row of a Generic file; anything not given has a plain value."""
    row = {
        "line_id": line_id,
        "order_date": "2024-03-01",
        "amount": "10.00",
        "customer_id": "C-1",
        "customer_name": "Ada Ltd",
        "postal_code": "02139",
        "city": "Cambridge",
        "state": "MA",
        "country": "US",
        "segment": "Corporate",
        "industry": "Retail",
        "category": "Paper",
        "product": "Copy paper",
        "order_ref": f"O-{line_id}",
    }
    return row | values


def generic_file(
    rows: list[dict[str, str]], header: list[str] | None = None, encoding="utf-8"
) -> bytes:
    columns = header or HEADER
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows([row.get(column, "") for column in columns] for row in rows)
    return out.getvalue().encode(encoding)


def source(name: str = GENERIC) -> SalesSource:
    ensure_built_in_sources()
    found = source_named(name)
    assert found is not None
    return found


def table_counts() -> dict[str, int]:
    models = {"accounts": Account, "sales_lines": SalesLine, "imports": SalesImport}
    return {
        name: db.session.scalar(select(func.count()).select_from(model)) or 0
        for name, model in models.items()
    }


def amounts() -> dict[str, Decimal]:
    rows = db.session.execute(select(SalesLine.external_line_id, SalesLine.amount))
    return {line_id: amount for line_id, amount in rows}


def assert_refused(data: bytes, *errors: str, **overrides: Any) -> SalesImport:
    """Import a file that must be refused: its errors start with ``errors``, in
    order and no more; no account or line is added; the refusal is on record."""
    before = table_counts()

    record = import_sales(data, source(), "bad.csv", None, **overrides)

    db.session.rollback()  # what is kept was committed
    assert record.succeeded is False
    assert record.counts is None
    assert len(record.errors) == len(errors), record.errors
    for expected, error in zip(errors, record.errors, strict=True):
        assert error.startswith(expected), error
    assert table_counts() == before | {"imports": before["imports"] + 1}
    assert db.session.get(SalesImport, record.id).errors == record.errors
    return record


@pytest.fixture
def centroid(clean_app: Flask) -> None:
    """The one postal code of the test files, so that accounts are located and the
    reports say nothing about it."""
    data = b"zip,lat,lon\n02139,42.3647,-71.1042\n"
    mapping = territory_imports.PostalCodeMapping("zip", "lat", "lon", country="US")
    assert territory_imports.import_postal_codes(data, mapping).ok


@pytest.fixture
def seeded(clean_app: Flask, centroid: None) -> Flask:
    """Three lines already imported, so that 'nothing committed' means something."""
    data = generic_file([sale("S-1"), sale("S-2"), sale("S-3", customer_id="C-2")])
    assert import_sales(data, source(), "seed.csv", None).succeeded
    return clean_app


# -------------------------------------------------------------- built-in sources


def test_built_in_sources_are_created_once(clean_app):
    created = ensure_built_in_sources()
    again = ensure_built_in_sources()

    assert [s.name for s in created] == [SUPERSTORE, GENERIC]
    assert again == []
    stored = db.session.scalars(select(SalesSource).order_by(SalesSource.id)).all()
    assert [(s.name, s.built_in, s.date_format) for s in stored] == [
        (SUPERSTORE, True, "%m/%d/%Y"),
        (GENERIC, True, "%Y-%m-%d"),
    ]
    assert {(s.decimal_separator, s.encoding) for s in stored} == {(".", "auto")}


def test_the_superstore_source_reads_the_file_as_the_demo_does(clean_app):
    mapping = source_mapping(source(SUPERSTORE))

    assert asdict(mapping) == asdict(DEMO_SUPERSTORE) | {"decimal_separator": "."}


def test_overrides_replace_the_source_settings_for_one_file(clean_app):
    mapping = source_mapping(source(), "%d.%m.%Y", ",", "cp1252")
    detected = source_mapping(source())

    assert (mapping.date_format, mapping.decimal_separator, mapping.encoding) == (
        "%d.%m.%Y",
        ",",
        "cp1252",
    )
    assert (detected.date_format, detected.decimal_separator, detected.encoding) == (
        "%Y-%m-%d",
        ".",
        None,
    )


# ---------------------------------------------------------------- good files


def test_a_generic_file_is_imported_and_recorded(clean_app, rewards_runs):
    admin = make_user(Role.ADMIN, email="admin@example.test")
    data = generic_file([sale("L-1", amount="19.99"), sale("L-2", amount="5")])

    record = import_sales(data, source(), "march.csv", admin)

    db.session.rollback()
    assert record.succeeded, record.errors
    assert record.counts["sales_lines_added"] == 2
    assert record.counts["accounts_added"] == 1
    assert (record.errors, record.file_name) == (None, "march.csv")
    assert (record.source.name, record.imported_by.email) == (
        GENERIC,
        "admin@example.test",
    )
    assert amounts() == {"L-1": Decimal("19.99"), "L-2": Decimal("5")}
    account = db.session.scalar(select(Account))
    assert (account.key, account.country, account.segment, account.industry) == (
        "C-1|02139",
        "US",
        "Corporate",
        "Retail",
    )
    line = db.session.scalar(
        select(SalesLine).where(SalesLine.external_line_id == "L-1")
    )
    assert (str(line.order_date), line.category, line.product, line.order_ref) == (
        "2024-03-01",
        "Paper",
        "Copy paper",
        "O-L-1",
    )
    assert [user.email for user in rewards_runs] == ["admin@example.test"]


def test_a_utf8_file_with_a_byte_order_mark_is_read(clean_app, centroid):
    data = b"\xef\xbb\xbf" + generic_file([sale("L-1", customer_name="Zoë AG")])

    detected = import_sales(data, source(), "bom.csv", None)
    declared = import_sales(data, source(), "bom.csv", None, encoding="utf-8")

    assert detected.succeeded, detected.errors
    assert declared.succeeded, declared.errors
    assert detected.notes is None
    assert declared.notes == [
        "Read with the encoding 'utf-8' instead of the source's 'auto'."
    ]
    assert db.session.scalar(select(Account.name)) == "Zoë AG"


def test_a_windows_1252_file_is_detected_and_stored_right(clean_app, centroid):
    data = generic_file([sale("L-1", customer_name="Café Müller")], encoding="cp1252")

    record = import_sales(data, source(), "legacy.csv", None)

    assert record.succeeded, record.errors
    assert record.notes == [
        "The file is not UTF-8; it was read as Windows-1252 (cp1252)."
    ]
    assert db.session.scalar(select(Account.name)) == "Café Müller"


def test_windows_1252_can_be_declared(clean_app):
    data = generic_file([sale("L-1", customer_name="Šárka Ørsted")], encoding="cp1252")

    record = import_sales(data, source(), "legacy.csv", None, encoding="cp1252")

    assert record.succeeded, record.errors
    assert db.session.scalar(select(Account.name)) == "Šárka Ørsted"


def test_declared_comma_decimals_are_stored_exactly(clean_app):
    data = generic_file(
        [
            sale("L-1", amount="1.234,50"),
            sale("L-2", amount="12,5"),
            sale("L-3", amount="3,25"),
            sale("L-4", amount="1.000.000"),
            sale("L-5", amount="0,1234"),
        ]
    )

    record = import_sales(data, source(), "eu.csv", None, decimal_separator=",")

    assert record.succeeded, record.errors
    assert amounts() == {
        "L-1": Decimal("1234.5"),
        "L-2": Decimal("12.5"),
        "L-3": Decimal("3.25"),
        "L-4": Decimal("1000000"),
        "L-5": Decimal("0.1234"),
    }
    assert record.notes[0] == (
        "Read with the decimal separator ',' instead of the source's '.'."
    )


def test_optional_columns_may_be_left_out(seeded):
    header = ["line_id", "order_date", "amount", "customer_id", "customer_name"]
    header += ["postal_code", "country"]
    data = generic_file([sale("S-1", customer_name="Ada Limited")], header=header)

    record = import_sales(data, source(), "short.csv", None)

    assert record.succeeded, record.errors
    assert record.notes == [
        "Optional columns not in the file, so not read (values stored by earlier "
        "imports stay): 'city', 'state', 'segment', 'industry', 'category', "
        "'product', 'order_ref'."
    ]
    account = db.session.scalar(select(Account).where(Account.external_id == "C-1"))
    assert (account.name, account.segment, account.city) == (
        "Ada Limited",
        "Corporate",
        "Cambridge",
    )
    line = db.session.scalar(
        select(SalesLine).where(SalesLine.external_line_id == "S-1")
    )
    assert (line.category, line.product, line.order_ref) == (
        "Paper",
        "Copy paper",
        "O-S-1",
    )


# ----------------------------------------------------------------- bad files


def test_a_wrong_date_format_names_the_row_and_column(seeded):
    data = generic_file([sale("L-1"), sale("L-2", order_date="03/01/2024")])

    assert_refused(
        data,
        "Row 3: the order date '03/01/2024' in column 'order_date' does not match "
        "the date format %Y-%m-%d (for example 2019-11-28).",
    )


def test_order_dates_before_2000_or_in_the_future_are_refused(seeded):
    tomorrow_anywhere = territory_imports.latest_sale_day() + timedelta(days=1)
    data = generic_file(
        [
            sale("L-1", order_date="2000-01-01"),
            sale("L-2", order_date="1999-12-31"),
            sale("L-3", order_date=tomorrow_anywhere.isoformat()),
            sale("L-4", order_date=territory_imports.latest_sale_day().isoformat()),
        ]
    )

    assert_refused(
        data,
        "Row 3: the order date 1999-12-31 in column 'order_date' is before "
        "2000-01-01; check the year and the date format (%Y-%m-%d).",
        f"Row 4: the order date {tomorrow_anywhere.isoformat()} in column "
        "'order_date' is in the future;",
    )


def test_negative_amounts_are_refused_and_a_return_is_a_corrected_line(seeded):
    refused = generic_file([sale("L-1"), sale("S-2", amount="-10.00")])
    corrected = generic_file([sale("S-2", amount="0")])

    assert_refused(
        refused,
        "Row 3: the amount '-10.00' in column 'amount' is negative; for a return, "
        "import the line again with its corrected amount (0 if all was returned) "
        "under the same line id.",
    )
    assert import_sales(corrected, source(), "return.csv", None).succeeded
    assert amounts() == {
        "S-1": Decimal("10.00"),
        "S-2": Decimal("0"),
        "S-3": Decimal("10.00"),
    }


def test_comma_decimals_are_refused_unless_declared(seeded):
    data = generic_file([sale("L-1", amount="1.234,50")])

    assert_refused(
        data,
        "Row 2: the amount '1.234,50' in column 'amount' contains a comma, but the "
        "decimal separator declared for this file is the dot; if the file writes "
        "decimals with a comma (1.234,50), declare the comma as its decimal "
        "separator, otherwise write numbers without thousands separators, e.g. "
        "1234.50.",
    )
    assert "L-1" not in amounts()


def test_dot_decimals_are_refused_when_the_comma_is_declared(seeded):
    data = generic_file([sale("L-1", amount="12.50"), sale("L-2", amount="1.23,4")])

    assert_refused(
        data,
        "Row 2: the amount '12.50' in column 'amount' is not a number written with "
        "the declared decimal comma, e.g. 1234,50 or 1.234,50.",
        "Row 3: the amount '1.23,4' in column 'amount' is not a number",
        decimal_separator=",",
    )


def test_a_missing_column_is_named_with_the_columns_found(seeded):
    header = [column for column in HEADER if column != "amount"]

    assert_refused(
        generic_file([sale("L-1")], header=header),
        "The column 'amount' chosen for the amount is not in the file; its columns "
        "are 'line_id', 'order_date', 'customer_id',",
    )


def test_duplicate_line_ids_in_one_file_are_refused(seeded):
    data = generic_file([sale("L-1"), sale("L-2"), sale("L-1"), sale("L-2")])

    assert_refused(
        data,
        "Row 4: line id 'L-1' already appears on row 2.",
        "Row 5: line id 'L-2' already appears on row 3.",
    )


def test_one_bad_row_in_ten_thousand_is_the_only_one_reported(seeded):
    rows = [
        sale(f"B-{n}", customer_id=f"C-{n % 300}", amount=f"{n}.25")
        for n in range(10_000)
    ]
    rows[6_543]["amount"] = "12..5"

    assert_refused(
        generic_file(rows),
        "Row 6545: the amount '12..5' in column 'amount' is not a number.",
    )


def test_errors_past_fifty_are_counted_with_their_rows(seeded):
    rows = [sale(f"L-{n}") for n in range(40)]
    for row in rows[:30]:
        row.update(amount="ten", order_date="yesterday")

    record = assert_refused(
        generic_file(rows),
        "Row 2: the amount 'ten' in column 'amount' is not a number.",
        "Row 2: the order date 'yesterday' in column 'order_date' does not match",
        *["Row "] * 48,
        "... and 10 more problems. 30 rows have problems; 5 of them are not listed "
        "above.",
    )
    assert record.errors[49].startswith("Row 26: the order date 'yesterday'")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "The file is empty; it needs a header row", id="empty"),
        pytest.param(
            b"PK\x03\x04\x14\x00\x06\x00line_id\x00\x00",
            "The file holds NUL characters, so it is not CSV text",
            id="binary",
        ),
        pytest.param(
            generic_file([]), "The file has a header but no rows.", id="header-only"
        ),
    ],
)
def test_files_that_are_not_sales_files_are_refused(seeded, data, message):
    assert_refused(data, message)


def test_a_wrongly_declared_encoding_is_refused(seeded):
    data = generic_file([sale("L-1", customer_name="Café")], encoding="cp1252")

    record = assert_refused(data, "The file is not valid utf-8 text", encoding="utf-8")
    assert record.notes == [
        "Read with the encoding 'utf-8' instead of the source's 'auto'."
    ]


def test_a_refusal_asks_for_no_rewards_run(seeded, rewards_runs):
    assert_refused(generic_file([sale("L-1", amount="")]), "Row 2: the amount")

    assert len(rewards_runs) == 1  # the seed's


def test_a_database_refusal_while_writing_keeps_only_the_record(seeded, monkeypatch):
    write_rows = territory_imports._upsert

    def write_then_fail(table: Any, rows: Any, keys: Any) -> None:
        write_rows(table, rows, keys)
        raise IntegrityError("INSERT ...", {}, Exception("duplicate key"))

    monkeypatch.setattr(territory_imports, "_upsert", write_then_fail)

    assert_refused(
        generic_file([sale("L-1"), sale("L-2", customer_id="C-9")]),
        "The database refused the accounts (duplicate key); nothing was imported.",
    )
    assert db.session.scalar(select(func.count()).select_from(SalesImport)) == 2


# ------------------------------------------------------------------ re-imports


def test_importing_again_or_overlapping_adds_nothing_twice(clean_app, rewards_runs):
    first = generic_file([sale(f"L-{n}") for n in range(1, 6)])
    overlapping = generic_file([sale(f"L-{n}", amount="20.00") for n in range(4, 9)])

    once = import_sales(first, source(), "a.csv", None)
    again = import_sales(first, source(), "a.csv", None)
    overlap = import_sales(overlapping, source(), "b.csv", None)

    assert [r.counts["sales_lines_added"] for r in (once, again, overlap)] == [5, 0, 3]
    assert [r.counts["sales_lines_updated"] for r in (once, again, overlap)] == [
        0,
        0,
        2,
    ]
    assert [r.counts["sales_lines"] for r in (once, again, overlap)] == [5, 5, 5]
    assert table_counts() == {"accounts": 1, "sales_lines": 8, "imports": 3}
    assert amounts()["L-3"] == Decimal("10.00")
    assert amounts()["L-4"] == Decimal("20.00")  # updated in place, by line id
    assert len(rewards_runs) == 2  # not for the import that changed nothing


def test_a_changed_line_counts_as_updated_and_asks_for_a_recompute(
    clean_app, rewards_runs
):
    first = generic_file([sale("L-1", amount="10.1250"), sale("L-2")])
    same_again = generic_file([sale("L-1", amount="10.125"), sale("L-2")])
    new_product = generic_file(
        [sale("L-1", amount="10.125"), sale("L-2", product="Ink")]
    )

    records = [
        import_sales(data, source(), "f.csv", None)
        for data in (first, same_again, new_product)
    ]

    assert [r.counts["sales_lines_updated"] for r in records] == [0, 0, 1]
    assert len(rewards_runs) == 2


def test_the_real_superstore_file_imports_into_an_empty_database(clean_app):
    data = (DEMO_DATA / "sample_superstore.csv").read_bytes()
    with (DEMO_DATA / "sample_superstore.csv").open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    total = sum(Decimal(row["Sales"]) for row in rows)

    record = import_sales(data, source(SUPERSTORE), "sample_superstore.csv", None)

    assert record.succeeded, record.errors
    assert (len(rows), total) == (9994, Decimal("2297200.8603"))
    assert record.counts["rows"] == 9994
    assert record.counts["sales_lines_added"] == 9994
    assert record.counts["accounts_added"] == 4910
    assert table_counts() == {"accounts": 4910, "sales_lines": 9994, "imports": 1}
    stored = db.session.scalar(select(func.sum(SalesLine.amount)))
    assert Decimal(str(stored)).quantize(Decimal("0.0001")) == total
    first = db.session.scalar(
        select(SalesLine).where(SalesLine.external_line_id == "1")
    )
    assert (str(first.order_date), first.amount, first.order_ref) == (
        "2018-11-08",
        Decimal("261.96"),
        "CA-2018-152156",
    )


# ------------------------------------------------------------------- command


def run_command(app: Flask, *args: Any) -> Any:
    db.session.commit()  # the command has its own session; let it see our rows
    runner = app.test_cli_runner()
    result = runner.invoke(args=["rewards", "import-sales", *map(str, args)])
    db.session.rollback()
    return result


def test_the_command_imports_and_prints_the_report(clean_app, tmp_path, rewards_runs):
    path = tmp_path / "sales.csv"
    path.write_bytes(
        generic_file([sale("L-1", amount="10"), sale("L-2", amount="2,5")])
    )

    result = run_command(
        clean_app, path, "--source", "generic", "--decimal-separator", ","
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "Sales import 1: sales.csv read as Generic.\n"
        "Imported: rows 2, accounts 1, accounts added 1, sales lines 2, "
        "sales lines added 2,"
    )
    assert "  note: Read with the decimal separator ','" in result.stdout
    assert result.stdout.endswith(
        "Sales lines were added or changed: programs and points are being recomputed.\n"
    )
    assert amounts() == {"L-1": Decimal("10"), "L-2": Decimal("2.5")}
    assert rewards_runs == [None]


def test_a_refused_file_exits_1_with_the_report_on_stderr(seeded, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(generic_file([sale("L-1", order_date="1.3.2024")]))
    before = table_counts()

    result = run_command(seeded, path, "--source", GENERIC)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(
        "Sales import 2: bad.csv read as Generic.\nNothing was imported:\n"
        "  Row 2: the order date '1.3.2024' in column 'order_date' does not match"
    )
    assert table_counts() == before | {"imports": 2}


def test_a_date_format_override_reads_the_file(clean_app, tmp_path):
    path = tmp_path / "eu.csv"
    path.write_bytes(generic_file([sale("L-1", order_date="1.3.2024")]))

    result = run_command(
        clean_app, path, "--source", GENERIC, "--date-format", "%d.%m.%Y"
    )

    assert result.exit_code == 0, result.output
    assert str(db.session.scalar(select(SalesLine.order_date))) == "2024-03-01"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--source", "Nope"],
            "No sales source is named 'Nope'; the sources are Generic, Superstore.",
        ),
        (["--source", GENERIC, "--date-format", "%Q"], "'%Q' cannot read dates"),
        (["--source", GENERIC, "--encoding", "latin-9"], "'latin-9' is not one of"),
    ],
)
def test_bad_options_exit_2_and_import_nothing(clean_app, tmp_path, args, message):
    path = tmp_path / "sales.csv"
    path.write_bytes(generic_file([sale("L-1")]))

    result = run_command(clean_app, path, *args)

    assert result.exit_code == 2
    assert message in result.stderr
    assert table_counts() == {"accounts": 0, "sales_lines": 0, "imports": 0}


# --------------------------------------------------------------------- pages


@pytest.fixture
def admin_client(client: FlaskClient, auth: AuthActions) -> FlaskClient:
    make_user(Role.ADMIN, email="admin@example.test")
    db.session.commit()
    auth.sign_in("admin@example.test")
    return client


def text_of(response: Any) -> str:
    """The page with entities decoded and runs of white space made one space."""
    return " ".join(html.unescape(response.get_data(as_text=True)).split())


def upload(
    client: FlaskClient, data: bytes, filename: str = "sales.csv", **fields: Any
) -> Any:
    ensure_built_in_sources()
    form = {f"upload-{key}": value for key, value in fields.items()}
    form.setdefault("upload-source", str(source().id))
    form["upload-file"] = (io.BytesIO(data), filename)
    return client.post(URL, data=form, content_type="multipart/form-data")


def test_the_page_offers_the_sources_and_both_forms(admin_client):
    page = admin_client.get(URL)

    body = text_of(page)
    assert page.status_code == 200
    assert 'action="/admin/rewards/imports/"' in body
    assert 'action="/admin/rewards/imports/sources"' in body
    assert ">Superstore</option>" in body and ">Generic</option>" in body
    assert "Files may be up to 64 MB." in body
    assert "No sales file has been imported yet." in body


def test_an_upload_shows_its_report_and_is_listed(admin_client, rewards_runs):
    response = upload(admin_client, generic_file([sale("L-1"), sale("L-2")]))

    body = text_of(response)
    assert response.status_code == 200
    assert "Sales import 1" in body
    assert (
        "2 new sales lines, 0 lines already imported with other values, now "
        "updated; programs and points are being recomputed (see Runs)."
    ) in body
    assert "<dt>Sales lines added</dt><dd>2</dd>" in body
    assert '<a href="/admin/rewards/imports/1">1</a>' in body
    assert table_counts() == {"accounts": 1, "sales_lines": 2, "imports": 1}
    assert [user.email for user in rewards_runs] == ["admin@example.test"]

    detail = admin_client.get(f"{URL}1")
    assert detail.status_code == 200
    assert "Sales import 1: imported" in text_of(detail)
    assert "Test User" in text_of(detail)


def test_a_refused_upload_lists_its_problems(admin_client):
    response = upload(
        admin_client,
        generic_file([sale("L-1", amount="1.234,50")]),
        decimal_separator="",
    )

    body = text_of(response)
    assert response.status_code == 422
    assert "was not imported, and nothing in the portal changed" in body
    assert "Row 2: the amount '1.234,50' in column 'amount' contains a comma" in body
    assert table_counts() == {"accounts": 0, "sales_lines": 0, "imports": 1}
    detail = text_of(admin_client.get(f"{URL}1"))
    assert "Sales import 1: nothing imported" in detail
    assert "Row 2: the amount '1.234,50'" in detail


def test_the_upload_overrides_are_used(admin_client):
    response = upload(
        admin_client,
        generic_file([sale("L-1", amount="1.234,50", order_date="08.11.2019")]),
        decimal_separator=",",
        date_format="%d.%m.%Y",
        encoding="cp1252",
    )

    assert response.status_code == 200, text_of(response)
    line = db.session.scalar(select(SalesLine))
    assert (line.amount, str(line.order_date)) == (Decimal("1234.5"), "2019-11-08")


def test_an_empty_file_gets_a_report_not_an_error(admin_client):
    response = upload(admin_client, b"")

    assert response.status_code == 422
    assert "The file is empty; it needs a header row and data rows." in text_of(
        response
    )


@pytest.mark.parametrize(
    ("filename", "fields", "message"),
    [
        ("sales.xlsx", {}, "Choose a CSV file (ending in .csv or .txt)."),
        ("", {}, "Choose a CSV file."),
        ("sales.csv", {"source": "999"}, "Choose the source whose layout the file"),
        ("sales.csv", {"source": "x"}, "Choose the source whose layout the file"),
        ("sales.csv", {"date_format": "%Q"}, "The date format '%Q' cannot read"),
        ("sales.csv", {"encoding": "utf-16"}, "Not a valid choice"),
    ],
)
def test_a_bad_upload_form_is_shown_again_beside_its_fields(
    admin_client, filename, fields, message
):
    response = upload(admin_client, generic_file([sale("L-1")]), filename, **fields)

    body = text_of(response)
    assert response.status_code == 400
    assert message in body
    assert 'class="field-error"' in body
    assert table_counts() == {"accounts": 0, "sales_lines": 0, "imports": 0}


def test_an_upload_over_the_size_limit_gets_the_page_back(
    admin_client, clean_app, monkeypatch
):
    monkeypatch.setitem(clean_app.config, "MAX_CONTENT_LENGTH", 2048)

    response = upload(admin_client, generic_file([sale(f"L-{n}") for n in range(60)]))

    assert response.status_code == 413
    assert "The file is larger than the 2 KB an upload may be" in text_of(response)
    assert table_counts() == {"accounts": 0, "sales_lines": 0, "imports": 0}


SOURCE_FIELDS = {
    "source_name": "Acme ERP",
    "line_id": "Invoice line",
    "amount": "Net",
    "order_date": "Booked",
    "external_id": "Debtor",
    "name": "Debtor name",
    "postal_code": "PLZ",
    "country": "de",
    "date_format": "%d.%m.%Y",
    "decimal_separator": ",",
    "encoding": "cp1252",
    "optional_may_be_missing": "y",
}


def save(client: FlaskClient, **changes: str) -> Any:
    fields = SOURCE_FIELDS | changes
    data = {f"source-{key}": value for key, value in fields.items()}
    return client.post(f"{URL}sources", data=data)


def test_a_new_source_is_saved_and_reads_its_files(admin_client):
    ensure_built_in_sources()

    response = save(admin_client)

    acme = source_named("acme erp")
    assert acme is not None
    assert response.status_code == 302
    assert response.headers["Location"] == f"{URL}?source={acme.id}"
    assert (acme.date_format, acme.decimal_separator, acme.encoding) == (
        "%d.%m.%Y",
        ",",
        "cp1252",
    )
    assert acme.mapping["line_id"] == "Invoice line"
    assert acme.mapping["country"] == "DE"
    assert acme.mapping["optional_columns"] == ["postal_code"]
    assert "date_format" not in acme.mapping
    page = text_of(admin_client.get(response.headers["Location"]))
    assert f'<option selected value="{acme.id}">Acme ERP</option>' in page
    assert "The source “Acme ERP” was saved" in page

    data = (
        "Invoice line,Booked,Net,Debtor,Debtor name\n"
        '7,31.12.2023,"1.234,56",D-1,Bäckerei Groß\n'
    ).encode("cp1252")
    record = import_sales(data, acme, "acme.csv", None)
    assert record.succeeded, record.errors
    assert amounts() == {"7": Decimal("1234.56")}
    assert db.session.scalar(select(Account.name)) == "Bäckerei Groß"
    assert db.session.scalar(select(Account.country)) == "DE"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"source_name": "generic"}, "A source is already named 'generic'"),
        ({"source_name": ""}, "Name the source"),
        ({"amount": ""}, "Enter the amount column."),
        ({"line_id": " "}, "Enter the sales line id column."),
        ({"external_id": ""}, "Enter the customer id column."),
        ({"date_format": "%Q"}, "The date format '%Q' cannot read dates"),
        ({"decimal_separator": ";"}, "Not a valid choice"),
    ],
)
def test_a_bad_source_is_not_saved(admin_client, changes, message):
    ensure_built_in_sources()

    response = save(admin_client, **changes)

    assert response.status_code == 400
    assert message in text_of(response)
    assert db.session.scalar(select(func.count()).select_from(SalesSource)) == 2


def test_an_unknown_import_is_a_404(admin_client):
    assert admin_client.get(f"{URL}999").status_code == 404


@pytest.mark.parametrize("role", [Role.PARTNER, Role.MANAGER])
def test_the_pages_are_for_admins_only(client, auth, role):
    make_user(role, email="someone@example.test")
    db.session.commit()
    auth.sign_in("someone@example.test")
    record = import_sales(generic_file([sale("L-1")]), source(), "a.csv", None)

    assert client.get(URL).status_code == 403
    assert upload(client, generic_file([sale("L-2")])).status_code == 403
    assert client.get(f"{URL}{record.id}").status_code == 403
    assert save(client).status_code == 403
    assert table_counts() == {"accounts": 1, "sales_lines": 1, "imports": 1}
    assert db.session.scalar(select(func.count()).select_from(SalesSource)) == 2


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get(URL)

    assert response.status_code == 302
    assert "/auth/sign-in" in response.headers["Location"]


def test_past_imports_are_paged_for_htmx(admin_client):
    for _ in range(21):
        import_sales(b"", source(), "empty.csv", None)

    first = text_of(admin_client.get(URL))
    second = admin_client.get(f"{URL}?page=2", headers={"HX-Request": "true"})

    assert "21 imports · page 1 of 2" in first
    assert '<a href="/admin/rewards/imports/21">21</a>' in first
    assert '<a href="/admin/rewards/imports/1">1</a>' not in first
    body = text_of(second)
    assert body.startswith('<section id="imports"')
    assert '<a href="/admin/rewards/imports/1">1</a>' in body
    assert "Import a sales file" not in body
