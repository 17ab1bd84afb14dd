"""The big sheets' rows as DuckDB writes them: what a reader sees in each cell is the value, exactly."""

import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime

import duckdb
import pytest
from openpyxl import Workbook, load_workbook

from reports.sheet_xml import QueryRows, SharedStrings, crc32_combine, splice_rows
from reports.workbook import Column, Table, table_sheet

COLUMNS = [
    Column("text", "Text", 30, wrap=True),
    Column("number", "Number", 10, "number"),
    Column("money", "Money", 12, "money"),
    Column("day", "Day", 12, "date"),
    Column("severity", "Severity", 9, "severity"),
    Column("flag", "Flag", 6),
]
ROWS = [
    ("  leading and trailing  ", 1.5, "12.30", "2024-07-16", "deny", True),
    ("two\nlines & <markup> \"quoted\"", float("nan"), None, "not a date", "review", False),
    ("=SUM(A1:A2)", float("inf"), "0.00", None, "other", None),
    ("tab\there\x01bell", None, "-5.25", "2024-02-29", None, True),
]


# Each test runs twice: the text columns inline in their cells, and in the workbook's shared strings.
@pytest.fixture(params=["inline", "shared"])
def shared(request) -> bool:
    return request.param == "shared"


def build(tmp_path, rows=ROWS, shared=False):
    con = duckdb.connect()
    con.execute("create table t (text varchar, number double, money decimal(14,2), day varchar, "
                "severity varchar, flag boolean, _row bigint)")
    con.executemany("insert into t values (?, ?, ?, ?, ?, ?, ?)", [(*r, i) for i, r in enumerate(rows, 1)])
    book = Workbook(write_only=True)
    query = QueryRows(con, "select * from t")
    columns = [replace(c, shared=shared and c.kind in ("text", "severity")) for c in COLUMNS]
    strings = SharedStrings() if shared else None
    pending = table_sheet(book, "Rows", columns, Table([c.key for c in COLUMNS], query, len(rows)),
                          caption="{total} rows", overflow="{shown} of {total}", max_rows=1_048_576,
                          shared=strings)
    path = tmp_path / "rows.xlsx"
    book.save(path)
    splice_rows(path, [pending], strings)
    with zipfile.ZipFile(path) as saved:
        assert ("xl/sharedStrings.xml" in saved.namelist()) == shared
    return load_workbook(path)["Rows"]


def test_every_value_reads_back_as_it_was(tmp_path, shared):
    sheet = build(tmp_path, shared=shared)
    values = [[c.value for c in row] for row in sheet.iter_rows(min_row=3)]
    assert values == [
        ["  leading and trailing  ", 1.5, 12.3, datetime(2024, 7, 16), "deny", True],
        ["two\nlines & <markup> \"quoted\"", None, None, "not a date", "review", False],
        ["=SUM(A1:A2)", None, 0, None, "other", None],
        ["tab\there\ufffdbell", None, -5.25, datetime(2024, 2, 29), None, True],
    ]
    assert sheet["A5"].data_type == "s", "text that looks like a formula stays text"


def test_cells_carry_the_workbook_styles(tmp_path, shared):
    sheet = build(tmp_path, shared=shared)
    assert sheet["C3"].number_format == '"$"#,##0.00' and sheet["D3"].number_format == "yyyy-mm-dd"
    assert sheet["E3"].fill.fgColor.rgb.endswith("F8CBAD") and sheet["E4"].fill.fgColor.rgb.endswith("FFE699")
    assert sheet["A3"].alignment.wrap_text and sheet["B3"].alignment.vertical == "top"
    assert sheet.row_dimensions[4].height == 30, "two lines of wrapped text make a row twice as tall"
    assert sheet.auto_filter.ref == "A2:F6"


@pytest.mark.parametrize("text", ["de&ny", "de<ny", "de>ny", "de\x00ny", "de\x1fny", "de\tny", " deny",
                                  "deny ", "de\rny", "\r=1+1", "de\r\nny"])
def test_a_mark_in_any_text_of_a_row_is_written_safely(tmp_path, text, shared):
    """Markup, a control character or an edge space in the row's middle text column, the rest plain."""
    sheet = build(tmp_path, [("plain", 1.0, "1.00", "2024-07-16", text, True)], shared=shared)
    refused = {"\x00", "\x1f"}
    assert sheet["E3"].value == "".join("\ufffd" if c in refused else c for c in text)
    if text != text.strip() and "\r" not in text:
        with zipfile.ZipFile(tmp_path / "rows.xlsx") as book:
            xml = book.read("xl/sharedStrings.xml" if shared else "xl/worksheets/sheet1.xml").decode()
        assert f'xml:space="preserve">{text}</t>' in xml, "Excel would trim an edge space not marked preserved"


def test_a_column_with_too_many_values_to_share_stays_in_its_cells(tmp_path, monkeypatch):
    monkeypatch.setattr("reports.sheet_xml.SHARED_MAX", 3)  # the text column has 4 values, severity 3
    sheet = build(tmp_path, shared=True)
    assert [sheet.cell(row, 1).value for row in range(3, 7)] == [r[0].replace("\x01", "\ufffd") for r in ROWS]
    assert [sheet.cell(row, 5).value for row in range(3, 7)] == [r[4] for r in ROWS]
    with zipfile.ZipFile(tmp_path / "rows.xlsx") as book:
        strings = book.read("xl/sharedStrings.xml").decode()
    assert "<t>review</t>" in strings and "SUM" not in strings


def build_three(tmp_path, con, ahead: bool, sqls=("select * from t",) * 3) -> Workbook:
    """Three sheets of the same rows; with `ahead`, the first one's rows are written ahead on another
    connection, on a thread, while the other two are written."""
    book = Workbook(write_only=True)
    pending = []
    for n, sql in enumerate(sqls):
        pending.append(table_sheet(book, f"Rows {n}", COLUMNS,
                                   Table([c.key for c in COLUMNS], QueryRows(con, sql), len(ROWS)),
                                   caption="{total} rows", overflow="{shown} of {total}", max_rows=1_048_576,
                                   closing=["A note below the rows."] if n == 2 else ()))
    path = tmp_path / f"three-{ahead}.xlsx"
    with ThreadPoolExecutor(1) as pool:
        if ahead:
            first = pending[0]
            first.prepared = pool.submit(first.prepare, path, con.cursor())
        book.save(path)
        splice_rows(path, pending)
    return path


def table_connection():
    con = duckdb.connect()
    con.execute("create table t (text varchar, number double, money decimal(14,2), day varchar, "
                "severity varchar, flag boolean, _row bigint)")
    con.executemany("insert into t values (?, ?, ?, ?, ?, ?, ?)", [(*r, i) for i, r in enumerate(ROWS, 1)])
    return con


def test_rows_written_ahead_on_another_connection_read_as_rows_written_in_turn(tmp_path):
    con = table_connection()
    in_turn, ahead = build_three(tmp_path, con, False), build_three(tmp_path, con, True)
    with zipfile.ZipFile(ahead) as book:
        assert book.testzip() is None, "every entry's checksum and sizes match what it holds"
        names = book.namelist()
    with zipfile.ZipFile(in_turn) as one, zipfile.ZipFile(ahead) as other:
        for name in names:
            if name.startswith("xl/worksheets/"):
                assert one.read(name) == other.read(name), name
    sheets = load_workbook(ahead)
    assert [s.title for s in sheets] == ["Rows 0", "Rows 1", "Rows 2"]
    assert sheets["Rows 2"]["A8"].value == "A note below the rows."
    assert [c.value for c in sheets["Rows 0"][6]] == ["tab\there\ufffdbell", None, -5.25, datetime(2024, 2, 29),
                                                      None, True]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ahead.name, in_turn.name]), "no rows file is left"


FAILING = "select * from t where error('no rows: ' || _row) is null"


@pytest.mark.parametrize("failing", [0, 1], ids=["written ahead", "written in turn"])
def test_a_sheet_whose_rows_fail_leaves_the_saved_workbook_alone(tmp_path, failing):
    con = table_connection()
    sqls = ["select * from t"] * 3
    sqls[failing] = FAILING
    with pytest.raises(duckdb.Error, match="no rows"):
        build_three(tmp_path, con, True, sqls)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["three-True.xlsx"], "nothing half-written is left"
    assert load_workbook(tmp_path / "three-True.xlsx")["Rows 1"].max_row == 2, "the caption and header only"


def test_crc32_combine_gives_the_checksum_of_the_pieces_together():
    pieces = [b"", b"<row>", bytes(range(256)) * 300, "é\u2026".encode() * 7]
    for first in pieces:
        for second in pieces:
            assert crc32_combine(zlib.crc32(first), zlib.crc32(second), len(second)) == zlib.crc32(first + second)
