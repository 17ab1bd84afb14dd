"""Awkward but valid exports are read right: encodings, delimiters, quoting, ragged rows, workbooks.

The readers are tested straight against a DuckDB connection (fast); one run of the real command puts the
whole corpus through as one batch and checks what a user sees in lines.csv and summary.json.
"""

import os
import re
import subprocess
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from openpyxl import Workbook, load_workbook

from assets.readers import detect_kind, land_rows, rows_above_header, stage_csv, stage_excel
from assets.tables import ensure_schema

from .corpus import HEADER, row, text_export, unicode_text_export, with_cached_values, workbook_export
from .helpers import scrub


@pytest.fixture
def con():
    connection = duckdb.connect()
    ensure_schema(connection)
    yield connection
    connection.close()


def staged(con, path: Path) -> list[dict]:
    """The rows one file lands in raw_claim_rows, in source order."""
    stage = stage_excel if detect_kind(path) == "xlsx" else stage_csv
    land_rows(con, stage(con, path, 0, {}), "raw_claim_rows", "b", 0, path.name)
    result = con.execute("select * from raw_claim_rows order by source_row")
    names = [d[0] for d in result.description]
    return [dict(zip(names, r)) for r in result.fetchall()]


def test_utf8_with_a_byte_order_mark_keeps_the_first_header(con, tmp_path):
    path = text_export(tmp_path / "bom.csv", [row("C1", patient="Zoë")], encoding="utf-8-sig")
    [r] = staged(con, path)
    assert (r["claim_id"], r["patient_id"]) == ("C1", "Zoë")


def test_latin1_export_reads_accented_names(con, tmp_path):
    path = text_export(tmp_path / "latin1.csv", [row("C1", patient="Zoë Müller")], encoding="latin-1")
    assert staged(con, path)[0]["patient_id"] == "Zoë Müller"


def test_windows_1252_export_reads_curly_quotes_and_dashes(con, tmp_path):
    # US Windows writes ’ “ ” – € as bytes 0x80 to 0x9F, which latin-1 reads as control characters (and
    # DuckDB's latin-1 reader refuses); 0x81 is undefined in Windows-1252 and is read as latin-1 reads it.
    path = text_export(tmp_path / "cp1252.csv", [row("C1", patient="Zoë O’Brien", Payer="Acme – “North” €")],
                       encoding="cp1252")
    assert b"\x92" in path.read_bytes()
    [r] = staged(con, path)
    assert (r["patient_id"], r["payer"]) == ("Zoë O’Brien", "Acme – “North” €")
    path.write_bytes(path.read_bytes().replace(b"\x92", b"\x81"))
    assert staged(con, path)[-1]["patient_id"] == "Zoë O\x81Brien"


def test_a_utf8_copy_a_killed_run_left_beside_the_database_is_removed_by_the_next_read(tmp_path):
    # A Windows-1252 export is read from a UTF-8 copy beside the database: a run killed while reading leaves
    # the copy, the whole export in clear. The next read removes those of processes that are gone.
    gone = subprocess.Popen(["true"])
    gone.wait()
    left = tmp_path / f".claimscrub-utf8-{gone.pid}-k1ll3d.csv"
    older = tmp_path / ".claimscrub-utf8-tjifud6s.csv"
    running = tmp_path / f".claimscrub-utf8-{os.getpid()}-r3ad1ng.csv"
    for copy in (left, older, running):
        copy.write_text("Claim ID,Member ID\nC1,PT-LEFT-BEHIND\n")
    site = duckdb.connect(str(tmp_path / "site.duckdb"))
    ensure_schema(site)
    path = text_export(tmp_path / "cp1252.csv", [row("C1", patient="Zoë O’Brien")], encoding="cp1252")
    assert staged(site, path)[0]["patient_id"] == "Zoë O’Brien"
    site.close()
    assert sorted(p.name for p in tmp_path.glob(".claimscrub-utf8-*")) == [running.name]


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_an_accent_past_the_first_megabyte_decides_the_encoding(con, tmp_path, encoding):
    # A megabyte of plain ASCII rows, then one accented name: in UTF-8 its two bytes straddle the end of the
    # first megabyte; in latin-1 its one byte is the first that is not ASCII.
    filler = [row(f"F{n:06d}") for n in range(13_000)]
    path = text_export(tmp_path / "long.csv", [*filler, row("ZOE", patient="Zoë")], encoding=encoding)
    short_by = (1 << 20) - 1 - path.read_bytes().index("ë".encode(encoding))
    assert short_by >= 0, "the filler must stay inside the first megabyte"
    filler[-1] = row("F999999", Payer="P" * (len("Medicare Part B") + short_by))
    path = text_export(tmp_path / "long.csv", [*filler, row("ZOE", patient="Zoë")], encoding=encoding)
    rows = staged(con, path)
    assert path.read_bytes().index("ë".encode(encoding)) == (1 << 20) - 1
    assert (rows[-1]["claim_id"], rows[-1]["patient_id"]) == ("ZOE", "Zoë")


def test_a_title_above_the_header_row_is_skipped(con, tmp_path):
    # A practice-management report: its name and date range, a blank line, then the header row.
    path = text_export(tmp_path / "titled.csv", [row("C1"), row("C2")],
                       before="Charges by date of service,,\nJuly 2024 - 2024-07-31,,\n\n")
    assert [(r["source_row"], r["claim_id"]) for r in staged(con, path)] == [(1, "C1"), (2, "C2")]
    assert rows_above_header(path, {}) == f"{path}: the header row comes after 2 rows of title; skipped"
    ten = text_export(tmp_path / "ten.csv", [row("C9")], before="".join(f"Report line {n}\n" for n in range(10)))
    assert rows_above_header(ten, {}) == f"{ten}: the header row comes after 10 rows of title; skipped"
    # Excel's "sep=;" line names the delimiter and is no title.
    path = text_export(tmp_path / "sep.csv", [row("C3")], delimiter=";", before="sep=;\n")
    assert sorted(r["claim_id"] for r in staged(con, path)) == ["C1", "C2", "C3"]
    assert rows_above_header(path, {}) == ""


def test_a_title_above_a_workbooks_header_row_is_skipped(con, tmp_path):
    path = workbook_export(tmp_path / "titled.xlsx", [["Claims export July 2024"], [], HEADER, row("C1"), row("C2")],
                           header=["Practice: Acme Radiology"])
    assert [(r["source_row"], r["claim_id"]) for r in staged(con, path)] == [(1, "C1"), (2, "C2")]
    assert rows_above_header(path, {}) == f"{path}: the header row comes after 2 rows of title; skipped"


def test_excel_unicode_text_utf16_tab_separated_is_read(con, tmp_path):
    path = unicode_text_export(tmp_path / "unicode.txt", [row("C1", patient="Zoë"), row("C2")])
    rows = staged(con, path)
    assert [(r["claim_id"], r["patient_id"], r["hcpcs"]) for r in rows] == [
        ("C1", "Zoë", "76120"), ("C2", "PT-AWK", "76120")]


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_semicolon_tab_and_pipe_delimiters(con, tmp_path, delimiter):
    path = text_export(tmp_path / "delimited.csv", [row("C1", Payer="Blue; Cross | Tab\tName")],
                       delimiter=delimiter)
    [r] = staged(con, path)
    assert (r["claim_id"], r["units"], r["payer"]) == ("C1", "1", "Blue; Cross | Tab\tName")


def test_crlf_line_endings_leave_no_carriage_return_in_the_last_column(con, tmp_path):
    path = text_export(tmp_path / "crlf.csv", [row("C1", **{"Service ZIP": "02134"}), row("C2")],
                       newline="\r\n")
    rows = staged(con, path)
    assert [r["service_zip"] for r in rows] == ["02134", None]


def test_old_mac_line_endings_are_lines_too(con, tmp_path):
    path = text_export(tmp_path / "cr.csv", [row("C1", **{"Service ZIP": "02134"}), row("C2")], newline="\r")
    rows = staged(con, path)
    assert [(r["source_row"], r["claim_id"], r["service_zip"]) for r in rows] == [(1, "C1", "02134"), (2, "C2", None)]


def test_quoted_fields_with_newlines_quotes_and_delimiters(con, tmp_path):
    payer = 'Acme "Gold", plan\r\nsecond line\nthird'
    path = text_export(tmp_path / "quoted.csv", [row("C1", Payer=payer), row("C2")], newline="\r\n")
    rows = staged(con, path)
    assert [(r["source_row"], r["claim_id"], r["payer"]) for r in rows] == [
        (1, "C1", payer), (2, "C2", "Medicare Part B")]


def test_a_very_long_field_is_read_whole(con, tmp_path):
    payer = "P" * 2_000_000
    path = text_export(tmp_path / "long.csv", [row("C1", Payer=payer), row("C2")])
    rows = staged(con, path)
    assert len(rows[0]["payer"]) == 2_000_000 and rows[1]["claim_id"] == "C2"


def test_extra_cells_are_marked_empty_ones_ignored_and_short_rows_padded(con, tmp_path):
    # Text in more cells than the header names marks the row (to be quarantined: its cells may have moved); a
    # row whose only text stands there (a note beside the table) is still a row. Empty cells past the header
    # (a delimiter at the end of each row) are nothing.
    path = tmp_path / "ragged.csv"
    text_export(path, [row("C1") + ["extra", "cells"], row("C2")[:5], [""] * len(HEADER) + ["late charge"],
                       row("C4") + ["", ""]])
    rows = staged(con, path)
    assert [(r["claim_id"], r["payer"], r["extra_cells"]) for r in rows] == [
        ("C1", "Medicare Part B", True), ("C2", None, False), (None, None, True), ("C4", "Medicare Part B", False)]
    assert rows[1]["units"] is None and rows[2]["source_row"] == 3


def test_zips_read_as_their_first_five_digits(con, tmp_path):
    # From a number column (12345.0), a ZIP+4 (07030-1234), or one whose leading zeros a number cell lost
    # (2134; 70301234, a ZIP+4).
    written = ["12345.0", "07030.0", "07030-1234", "070301234", "2134", "70301234", "60601", "abcde"]
    path = text_export(tmp_path / "zips.csv", [row(f"C{n}", **{"Service ZIP": z}) for n, z in enumerate(written)])
    # A cell without a digit stays as written, for the price note to quote (it said ZIP 00000).
    assert [r["service_zip"] for r in staged(con, path)] == [
        "12345", "07030", "07030", "07030", "02134", "07030", "60601", "ABCDE"]


def test_npis_in_groups_and_places_of_service_with_their_names_are_read_as_their_codes(con, tmp_path):
    # An NPI in groups is one provider with its plain form (a false NPI_INVALID, and a missed bundling edit
    # between the two lines, otherwise); a place of service followed by its name, however it is set off; "N/A"
    # is no NPI (a false NPI_INVALID otherwise, and the line's provider named "N/A").
    written = [("1234-567-893", "11 (Office)"), ("1234 567 893", "11 – Office"), ("1234567893.0", "22. Outpatient"),
               ("1234567893", "21/Inpatient"), ("123-456-789", "1A"), ("12345678901", "11.5"), ("N/A", "011")]
    path = text_export(tmp_path / "written.csv", [row(f"C{n}", **{"Rendering NPI": npi, "POS": pos})
                                                  for n, (npi, pos) in enumerate(written)])
    assert [(r["rendering_npi"], r["place_of_service"]) for r in staged(con, path)] == [
        ("1234567893", "11"), ("1234567893", "11"), ("1234567893", "22"), ("1234567893", "21"),
        ("123-456-789", "1A"), ("12345678901", "11.5"), (None, "11")]


def test_a_header_cell_holding_a_line_break_heads_its_column(con, tmp_path):
    # "Claim<br>ID" wrapped in its cell, as a report writes a narrow column's header: the file is a claim export,
    # read from its first data row on, with no title above the header said to be skipped.
    header = ["Claim\nID", *HEADER[1:]]
    path = text_export(tmp_path / "wrapped.csv", [row("C1"), row("C2")], header=header)
    assert [(r["source_row"], r["claim_id"]) for r in staged(con, path)] == [(1, "C1"), (2, "C2")]
    assert rows_above_header(path, {}) == ""


def test_a_lone_carriage_return_in_a_file_of_crlf_lines_ends_a_line(con, tmp_path):
    # One row ending with CR alone, among CR LF rows: the next row keeps the first character of its claim id
    # (it was dropped). A CR alone inside a quoted cell stays text of that cell.
    path = text_export(tmp_path / "mixed.csv", [row("12345"), row("12346"), row("M3", Payer="A\rB")],
                       newline="\r\n")
    path.write_bytes(path.read_bytes().replace(b"\r\n12346", b"\r12346", 1))
    rows = staged(con, path)
    assert [r["claim_id"] for r in rows] == ["12345", "12346", "M3"]
    assert rows[2]["payer"] in ("A\r\nB", "A\rB")


def test_blank_lines_and_empty_rows_are_not_rows(con, tmp_path):
    path = text_export(tmp_path / "blank.csv", [row("C1"), row("C2")], before="\n\n",
                       after="\n" + "," * (len(HEADER) - 1) + "\n\n\n")
    rows = staged(con, path)
    assert [(r["source_row"], r["claim_id"]) for r in rows] == [(1, "C1"), (2, "C2")]


def test_a_header_without_rows_reads_nothing(con, tmp_path):
    assert staged(con, text_export(tmp_path / "header_only.csv", [])) == []


def test_workbook_dates_numbers_and_leading_blank_rows_read_as_an_export_would(con, tmp_path):
    path = workbook_export(tmp_path / "numbers.xlsx", blank_rows_above=2, rows=[
        [1001, 1.0, 42, datetime(2024, 7, 8), 76120, None, 2.0, 1234567893, 2, "R13.10", "Medicare", 2134],
        ["C2", 2, "PT-2", datetime(2024, 7, 8, 10, 30), "76120", "26", 1.5, "1234567893", "22", "R13.10",
         "Medicare", "02134"],
        # An anesthesia code typed as a number: Excel shows 00100 as 100. Typed as text, "0100" stays as it is.
        ["C3", 1, "PT-3", datetime(2024, 7, 8), 100, None, 1, "1234567893", "11", "R13.10", "Medicare", None],
        ["C4", 1, "PT-4", datetime(2024, 7, 8), "0100", None, 1, "1234567893", "11", "R13.10", "Medicare", None],
        # A number outside the anesthesia range is a code cut short (76120 as 7612), not one to pad into 07612.
        ["C5", 1, "PT-5", datetime(2024, 7, 8), 7612, None, 1, "1234567893", "11", "R13.10", "Medicare", None],
    ])
    rows = staged(con, path)
    first, second, anesthesia, text, cut_short = rows
    assert (anesthesia["hcpcs"], text["hcpcs"], cut_short["hcpcs"]) == ("00100", "0100", "7612")
    assert (first["claim_id"], first["line_number"], first["patient_id"]) == ("1001", "1", "42")
    assert (first["date_of_service"], first["hcpcs"], first["units"]) == ("2024-07-08", "76120", "2")
    # A number cell reads as the text a CSV export would hold, then parses as that text would.
    assert (first["rendering_npi"], first["place_of_service"], first["service_zip"]) == ("1234567893", "02", "02134")
    assert (second["date_of_service"], second["units"]) == ("2024-07-08 10:30:00", "1.5")
    assert [r["source_row"] for r in rows] == [1, 2, 3, 4, 5]


def test_workbook_formulas_are_read_as_their_cached_values_never_evaluated(con, tmp_path):
    path = workbook_export(tmp_path / "formulas.xlsx", rows=[
        row("C1", Units="=1+1", Payer='=HYPERLINK("http://payer.invalid/x","Linked payer")',
            **{"Dx 1": "=[1]Sheet1!A1"}),
        row("C2", Units="=2+2"),
    ])
    # Units in G, Dx 1 in J, Payer in K; C2's formula has no cached value, as when a tool wrote it.
    with_cached_values(path, {"G2": 2, "K2": "Linked payer", "J2": "R13.10"})
    rows = staged(con, path)
    assert (rows[0]["units"], rows[0]["payer"], rows[0]["diagnoses"]) == ("2", "Linked payer", ["R1310"])
    assert rows[1]["units"] is None


def test_workbook_text_that_looks_like_a_formula_stays_text(con, tmp_path):
    path = workbook_export(tmp_path / "text.xlsx", rows=[row("C1")])
    book = load_workbook(path)
    book.active["K2"].value = "=cmd|' /C calc'!A0"
    book.active["K2"].data_type = "s"  # a text cell, as Excel stores text typed after an apostrophe
    book.save(path)
    assert staged(con, path)[0]["payer"] == "=cmd|' /C calc'!A0"


def test_only_the_first_sheet_of_a_workbook_is_read_and_another_sheet_of_claims_is_said(con, tmp_path):
    path = workbook_export(tmp_path / "two_sheets.xlsx", rows=[row("C1")], second_sheet=[row("NOTE1")])
    assert [r["claim_id"] for r in staged(con, path)] == ["C1"]
    assert rows_above_header(path, {}) == (
        f"{path}: the claims are read from sheet 'Claims'; sheet 'Notes' also has a header row naming the required "
        "columns and is not read: save each sheet of claims as a file of its own")
    alone = workbook_export(tmp_path / "one_sheet.xlsx", rows=[row("C1")])
    assert rows_above_header(alone, {}) == ""


def test_a_workbook_declaring_too_small_a_range_is_read_whole(con, tmp_path):
    # Some programs write a sheet's <dimension> wrong (A1:A1); the rows and columns past it are still there.
    path = workbook_export(tmp_path / "dimension.xlsx", rows=[row("C1"), row("C2"), row("C3")])
    with zipfile.ZipFile(path) as src:
        parts = {name: src.read(name) for name in src.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"].decode()
    parts["xl/worksheets/sheet1.xml"] = re.sub(r'<dimension ref="[^"]*"', '<dimension ref="A1:C2"', sheet).encode()
    with zipfile.ZipFile(path, "w") as out:
        for name, data in parts.items():
            out.writestr(name, data)
    rows = staged(con, path)
    assert [(r["claim_id"], r["payer"]) for r in rows] == [(c, "Medicare Part B") for c in ("C1", "C2", "C3")]


def test_workbook_numbers_read_as_excel_shows_them(con, tmp_path):
    # A ZIP+4 typed as a number with the "Zip Code + 4" format (07030-1234 stored as 70301234); units worked out
    # by a formula whose binary value is a hair over 3 (Excel shows and saves 3); a code copied with its tab
    # keeps it, as in a CSV export (the quarantine shows it), while spaces go; "26:59" typed into a modifier
    # cell, which Excel keeps as a duration.
    path = workbook_export(tmp_path / "shown.xlsx", rows=[
        row("C1", Units=0.1 * 3 * 10, **{"Service ZIP": 70301234, "CPT Code": "99213\t",
                                         "Mod 1": timedelta(hours=26, minutes=59)}),
        row("C2", Units=1.5, **{"Service ZIP": 21341234, "CPT Code": "\u00a099213 "})])
    first, second = staged(con, path)
    assert (first["service_zip"], first["units"], first["hcpcs"]) == ("07030", "3", "99213\t")
    assert first["modifiers"] == ["26", "59"]
    assert (second["service_zip"], second["units"], second["hcpcs"]) == ("02134", "1.5", "99213")


def test_claims_on_a_sheet_after_a_cover_sheet_are_read_and_said(con, tmp_path):
    # The first sheet is a cover with no claim header: the first sheet that has one holds the claims.
    book = Workbook()
    book.active.title = "Cover"
    book.active.append(["Claims export, December 2026"])
    book.active.append(["Prepared by the billing office"])
    claims = book.create_sheet("Claims")
    for cells in (["Practice: Acme"], HEADER, row("C1"), row("C2")):
        claims.append(cells)
    path = tmp_path / "cover.xlsx"
    book.save(path)
    assert [(r["source_row"], r["claim_id"]) for r in staged(con, path)] == [(1, "C1"), (2, "C2")]
    assert rows_above_header(path, {}) == (
        f"{path}: the claims are read from sheet 'Claims' (sheet 2: no sheet before it has a header row naming "
        "the required columns); 1 row of title above its header skipped")


def test_the_whole_awkward_corpus_scrubs_as_one_batch(tmp_path, db_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    files = [
        text_export(corpus / "bom.csv", [row("BOM1")], encoding="utf-8-sig"),
        text_export(corpus / "latin1.csv", [row("LAT1", patient="Zoë")], encoding="latin-1"),
        unicode_text_export(corpus / "unicode.txt", [row("U16-1"), row("U16-2")]),
        text_export(corpus / "semicolon.csv", [row("SEMI1", POS="2")], delimiter=";", newline="\r\n"),
        text_export(corpus / "tab.tsv", [row("TAB1", **{"Service ZIP": "2134"})], delimiter="\t"),
        text_export(corpus / "quoted.csv", [row("Q1", Payer='A "B"\nC'), row("Q2")[:4]],
                    after="\n\n"),
        workbook_export(corpus / "book.xlsx", second_sheet=[row("NOTE1")], rows=[
            [7001, 1, "PT-X", datetime(2024, 7, 8), 76120, "26", 1, 1234567893, 22, "R13.10", "Medicare", None]]),
    ]
    run = scrub(files, tmp_path / "out", db_path)
    assert run.exit_code == 0, run.stderr
    summary = run.summary
    assert summary["rows_read"] == 9 == summary["lines_scrubbed"] + summary["rows_quarantined"]
    assert {f["file"]: f["rows_read"] for f in summary["files"]} == {
        "bom.csv": 1, "latin1.csv": 1, "unicode.txt": 2, "semicolon.csv": 1, "tab.tsv": 1, "quoted.csv": 2,
        "book.xlsx": 1}
    assert [(q["claim_id"], q["source_file"]) for q in run.quarantine] == [("Q2", "quoted.csv")]
    assert run.line("SEMI1", 1)["place_of_service"] == "02"
    assert run.line("TAB1", 1)["locality"] != run.line("BOM1", 1)["locality"], "ZIP 02134 priced by locality"
    book = run.line("7001", 1)
    assert (book["date_of_service"], book["component"], book["place_of_service"]) == ("2024-07-08", "26", "22")
    assert not any("NOTE1" in line["claim_id"] for line in run.lines)



def test_quoted_line_breaks_with_short_rows_keep_their_source_rows(tmp_path, db_path):
    # A quoted line break and a short row in one file: DuckDB reads such a file with one thread only.
    path = text_export(tmp_path / "notes.csv", [
        row("NL1", Payer="Acme\nsecond line"),
        row("NL2")[:6],
        [""] * len(HEADER),
        row("NL3", Payer='Quoted "name"\r\nagain'),
        row("NL4"),
    ], newline="\r\n")
    run = scrub([path], tmp_path / "out", db_path)
    assert run.exit_code == 0, run.stderr
    assert [(q["claim_id"], q["source_row"]) for q in run.quarantine] == [("NL2", "2")]
    assert [(line["claim_id"], line["source_row"]) for line in run.lines] == [
        ("NL1", "1"), ("NL3", "4"), ("NL4", "5")]
    assert run.line("NL3", 1)["payer"] == 'Quoted "name"\r\nagain'


def test_a_long_file_keeps_every_row_in_file_order(tmp_path, db_path):
    # Rows far into a file keep their numbers: a row of empty cells is no row but keeps its place.
    rows = [row(f"L{n:05d}", patient=f"PT-{n}") for n in range(1, 6001)]
    rows[2999] = row("L03000")[:4]
    rows[4000] = [""] * len(HEADER)
    run = scrub([text_export(tmp_path / "long.csv", rows)], tmp_path / "out", db_path)
    assert run.exit_code == 0, run.stderr
    assert run.summary["rows_read"] == 5999
    assert [(q["claim_id"], q["source_row"]) for q in run.quarantine] == [("L03000", "3000")]
    assert all(line["claim_id"] == f"L{int(line['source_row']):05d}" for line in run.lines)
    assert len(run.lines) == 5998


def test_a_row_with_only_an_unmapped_cell_filled_is_still_a_row(con, tmp_path):
    header = [*HEADER, "Notes"]
    path = text_export(tmp_path / "notes_column.csv", [
        [*row("C1"), ""], [""] * len(HEADER) + ["call the payer"], [*row("C3"), "ok"]], header=header)
    rows = staged(con, path)
    assert [(r["source_row"], r["claim_id"]) for r in rows] == [(1, "C1"), (2, None), (3, "C3")]


def test_diagnosis_cells_in_any_mix_read_as_one_list_of_distinct_codes(con, tmp_path):
    header = ["Claim ID", "Line", "Member ID", "DOS", "CPT Code", "Units", "Dx 1", "Dx 2", "Dx 3", "Diagnoses"]
    cases = [
        ("R13.10", "", "", "", {"R1310"}),
        ("", " i25.10 ", "", "", {"I2510"}),
        ("R13.10", "r1310", "", "", {"R1310"}),
        ("R13.10", "I25.10", "", "", {"R1310", "I2510"}),
        ("", "", "", "", set()),
        (" . ", "", "", "", set()),
        ("R13.10", "", "Z00.00", "", {"R1310", "Z0000"}),
        ("R13.10", "I25.10", "", "I25.10; E11.9", {"R1310", "I2510", "E119"}),
        # A dot anywhere but after the category, or a second one, is kept: the shape check then fails it.
        ("R13.1.0", "I1.0", "", "", {"R13.1.0", "I1.0"}),
        ("R13.10", "", "R13..10", "E11.9.", {"R1310", "R13..10", "E11.9."}),
    ]
    rows = [[f"C{i}", "1", "P1", "2024-07-08", "76120", "1", *dx] for i, (*dx, _) in enumerate(cases)]
    lines = staged(con, text_export(tmp_path / "dx.csv", rows, header=header))
    assert [set(r["diagnoses"]) for r in lines] == [expected for *_, expected in cases]
    assert all(len(r["diagnoses"]) == len(set(r["diagnoses"])) for r in lines)


def test_place_of_service_reads_as_two_digits_where_it_is_a_number(con, tmp_path):
    given = ["11", "2", "02", "11.0", "9.00", "99", "00", "AB", "1A", "A1", " 22 ", "", "123", "1.5"]
    path = text_export(tmp_path / "pos.csv", [row(f"P{n}", POS=pos) for n, pos in enumerate(given)])
    assert [r["place_of_service"] for r in staged(con, path)] == [
        "11", "02", "02", "11", "09", "99", "00", "AB", "1A", "A1", "22", "11", "123", "1.5"]


BILL_TYPES = [
    ("0131", "institutional"), ("131", "institutional"), ("0851", "institutional"), ("Institutional", "institutional"),
    ("UB-04", "institutional"), ("Hospital", "institutional"), ("Facility", "institutional"), ("", "professional"),
    ("Professional", "professional"), ("837P", "professional"), ("CMS-1500", "professional")]


def test_a_bill_type_or_a_facility_claim_is_institutional(con, tmp_path):
    """A UB-04 type of bill under "Bill Type" (facility, care type, frequency) is only on a facility's claim:
    read as professional, its hospital lines were denied as a physician's."""
    header = [*HEADER, "Bill Type"]
    rows = [[*row(f"B{n}"), written] for n, (written, _) in enumerate(BILL_TYPES)]
    read = staged(con, text_export(tmp_path / "bill_type.csv", rows, header=header))
    assert [(r["claim_id"], r["claim_type"]) for r in read] == [
        (f"B{n}", claim_type) for n, (_, claim_type) in enumerate(BILL_TYPES)]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_empty_lines_between_rows_keep_their_place_in_the_numbering(con, tmp_path, newline):
    # DuckDB's reader passes over an empty line: the rows after it were numbered one short, and a quarantined
    # row's source_row opened on a good line. A row of empty cells and a quoted line break keep their place too.
    path = text_export(tmp_path / "gaps.csv", [row("E1"), row("E2", Payer="two\n\nlines"), row("E3"), row("E4")],
                       newline=newline)
    data = path.read_bytes()
    nl = newline.encode()
    data = data.replace(nl + b"E2,", nl + nl + b"E2,").replace(nl + b"E3,", nl + b",,,," + nl + b"E3,")
    path.write_bytes(data.replace(nl + b"E4,", nl + nl + nl + b"E4,") + nl + nl)
    assert [(r["source_row"], r["claim_id"]) for r in staged(con, path)] == [
        (1, "E1"), (3, "E2"), (5, "E3"), (8, "E4")]


def test_empty_lines_of_a_unicode_text_export_keep_their_place_in_source_row(tmp_path, db_path):
    path = unicode_text_export(tmp_path / "unicode.txt", [row("U1"), [], row("U2")])
    run = scrub([path], tmp_path / "out", db_path)
    assert run.exit_code == 0, run.stderr
    assert [(line["claim_id"], line["source_row"]) for line in run.lines] == [("U1", "1"), ("U2", "3")]


@pytest.mark.slow  # the command in a process of its own
def test_a_cell_longer_than_128_kb_in_a_file_with_an_empty_line_is_read(tmp_path, db_path):
    """Python's csv module stops at 128 KB a cell unless told; DuckDB reads it, and so must the row count."""
    import csv

    from .helpers import command

    path = text_export(tmp_path / "long_note.csv", [row("N1", Payer="x" * 200_000), [], row("N2")])
    # In a process of its own: the test helpers raise the csv module's limit for this one.
    done = subprocess.run(command([path], tmp_path / "out", db_path), capture_output=True, text=True, check=False,
                          env={**os.environ, "CLAIMSCRUB_SECRET": "long-cell-test-site-secret"})
    assert done.returncode == 0, done.stderr
    with open(tmp_path / "out" / "lines.csv", newline="") as fh:
        lines = list(csv.DictReader(fh))
    assert [(line["claim_id"], line["source_row"]) for line in lines] == [("N1", "1"), ("N2", "3")]
