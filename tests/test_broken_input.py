"""Broken input gets a clear answer: exit 2, one plain line naming the file and the problem, nothing
written; a file of mixed good and bad rows scrubs the good ones and quarantines every bad one."""

import codecs
import os
import subprocess
import zipfile
from pathlib import Path

import pytest
from openpyxl import Workbook

from .corpus import HEADER, random_bytes, row, text_export, workbook_export
from .helpers import scrub


def _bytes(data: bytes):
    def build(path: Path) -> Path:
        path.write_bytes(data)
        return path

    return build


def _empty_sheet(path: Path) -> Path:
    Workbook().save(path)
    return path


def _not_a_workbook(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "a zip archive, not a workbook")
    return path


def _damaged_below_its_header(path: Path) -> Path:
    """A workbook whose sheet's XML breaks off in its fourth row, as a copy cut short or a damaged save leaves
    it: its header reads, its rows do not."""
    whole = workbook_export(path.with_name("whole.xlsx"), [row(f"W{n}") for n in range(1, 6)])
    with zipfile.ZipFile(whole) as source, zipfile.ZipFile(path, "w") as damaged:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b'<row r="5"', b'<row r="5" <<', 1)
            damaged.writestr(item, data)
    return path


def _damaged_above_its_header(path: Path) -> Path:
    """A workbook whose sheet's XML breaks off before its first row is read (cut just after <sheetData>)."""
    whole = workbook_export(path.with_name("whole.xlsx"), [row(f"W{n}") for n in range(1, 6)])
    with zipfile.ZipFile(whole) as source, zipfile.ZipFile(path, "w") as damaged:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data[:data.index(b"<sheetData>") + len(b"<sheetData>")] + b"<row r="
            damaged.writestr(item, data)
    return path


BROKEN = {
    "missing.csv": (lambda p: p, "file not found"),
    "empty.csv": (_bytes(b""), "file is empty"),
    "bom_only.csv": (_bytes(codecs.BOM_UTF8), "file is empty"),
    "blank_lines.csv": (_bytes(b"\r\n\n  \n"), "file is empty"),
    "random.bin": (lambda p: random_bytes(p, 4096, seed=8), "binary content"),
    "random_text.dat": (lambda p: random_bytes(p, 4096, seed=8, allow_nul=False),
                        "required columns missing: claim_id, line_number, patient_id"),
    "no_codes.csv": (lambda p: text_export(p, [["C1", "1", "P1", "2024-07-08"]], header=HEADER[:4]),
                     "required columns missing: hcpcs, units"),
    "headers_only_wrong.csv": (_bytes("name,address,phone\nA,B,C\n".encode()),
                               "required columns missing"),
    "not_a_workbook.xlsx": (_not_a_workbook, "cannot be read as an Excel workbook"),
    "legacy.xls": (_bytes(bytes.fromhex("d0cf11e0a1b11ae1") + bytes(512)),
                   "old-style .xls workbook"),
    "empty_sheet.xlsx": (_empty_sheet, "the first sheet is empty"),
    "damaged.xlsx": (_damaged_below_its_header, "the workbook is damaged below data row 3"),
    "damaged_head.xlsx": (_damaged_above_its_header, "the workbook's sheet 'Claims' is damaged"),
    "no_codes.xlsx": (lambda p: workbook_export(p, [["C1", 1, "P1"]], header=HEADER[:3]),
                      "required columns missing: date_of_service, hcpcs, units"),
    "big_endian.txt": (_bytes(codecs.BOM_UTF16_BE + "\t".join(HEADER).encode("utf-16-be")),
                       "UTF-16 big-endian"),
    "truncated.x12": (_bytes("ISA*00*          *00*~".encode()), "not a valid X12 file"),
    "claims.837": (_bytes(b"hello world\n"), "named .837, but not an X12 file (it does not start with an ISA"),
    "a_folder": (lambda p: p.mkdir() or p, "is a folder"),
    # A named pipe, as `<(...)` gives one: read once and gone, it would hang or fail the reads after the first.
    "a_pipe": (lambda p: os.mkfifo(p) or p, "is a pipe or device, not a file"),
    # The quote of row 2 is never closed: the rows after it would become one cell of that row.
    "unclosed_quote.csv": (_bytes((",".join(HEADER) + "\n" + "\n".join(
        ",".join(r) for r in [row("Q1"), [*row("Q2")[:-1], '"Acme'], row("Q3"), row("Q4")]) + "\n").encode()),
                           "a quote opened in data row 2 is never closed"),
    # Two stray quotes: the one of row 2 is closed in row 4, so rows 3 and 4 would become part of row 2.
    "stray_quotes.csv": (_bytes((",".join(HEADER) + "\n" + "\n".join(
        ",".join(r) for r in [row("Q1"), [*row("Q2")[:-1], '"Acme'], row("Q3"), [*row("Q4")[:-1], 'Acme"'],
                              row("Q5")]) + "\n").encode()),
                         "a quote opened in data row 2 is closed only rows later"),
    # The same, beside a quote inside an unquoted cell (5" tall): an odd number of quotes in all.
    "stray_quotes_odd.csv": (_bytes((",".join(HEADER) + "\n" + "\n".join(
        ",".join(r) for r in [row("Q1"), [*row("Q2")[:-1], '"Acme'], row("Q3"), [*row("Q4")[:-1], 'Acme"'],
                              [*row("Q5")[:-1], '5" tall']]) + "\n").encode()),
                             "a quote opened in data row 2 is closed only rows later"),
}


def assert_refused(run, name: str, message: str, out: Path) -> None:
    assert run.exit_code == 2, run.stdout + run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert name in lines[0] and message in lines[0], lines[0]
    assert "Traceback" not in run.stderr and not run.stdout
    assert not out.exists(), "nothing may be written for a refused input"
    assert not list(out.parent.glob(f".{out.name}.partial-*"))


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_file_that_is_not_a_claim_export_exits_2_naming_the_file(tmp_path, db_path, name):
    build, message = BROKEN[name]
    path = build(tmp_path / name)
    run = scrub([path], tmp_path / "out", db_path)
    assert_refused(run, name, message, tmp_path / "out")


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_a_file_without_its_header_row_is_refused_without_quoting_its_first_line(tmp_path, db_path, suffix):
    rows = [row("C1", patient="PTSECRET1"), row("C2", patient="PTSECRET2")]
    path = tmp_path / f"no_header{suffix}"
    if suffix == ".csv":
        path.write_text("\n".join(",".join(r) for r in rows) + "\n")
    else:
        workbook_export(path, rows[1:], header=rows[0])
    run = scrub([path], tmp_path / "out", db_path)
    assert_refused(run, path.name, "the first row holds values, not column names", tmp_path / "out")
    assert "PTSECRET" not in run.stderr + run.stdout


@pytest.mark.parametrize("kind", ["a folder", "not a database", "an export named as the database", "damaged"])
def test_a_db_that_is_not_a_database_exits_2_naming_it(tmp_path, kind, reference_db):
    good = text_export(tmp_path / "good.csv", [row("G1")])
    db = tmp_path / "site.duckdb"
    if kind == "a folder":
        db.mkdir()
    elif kind == "damaged":
        # Its first block's checksum no longer matches: DuckDB says "Corrupt database file".
        data = bytearray(reference_db.read_bytes())
        data[100:108] = b"XXXXXXXX"
        db.write_bytes(bytes(data))
    elif kind == "not a database":
        db.write_text("claim_id,line_number\n")
    else:
        # DuckDB opens an existing .csv as a database of its own, in memory: the run would keep nothing.
        db = text_export(tmp_path / "yesterday.csv", [row("Y1")])
    before = db.read_bytes() if db.is_file() else None
    run = scrub([good], tmp_path / "out", db)
    assert run.exit_code == 2, run.stderr
    [line] = run.stderr.strip().splitlines()
    assert line.startswith(f"claimscrub: database {db} cannot be opened: it is ") and "Traceback" not in line
    assert not (tmp_path / "out").exists()
    assert before is None or db.read_bytes() == before
    if kind != "damaged":  # a DuckDB file, damaged inside: its lock is taken before DuckDB reads it
        assert not list(tmp_path.glob(f"{db.name}.lock")), "a refused database leaves no lock file beside it"


def test_one_broken_file_among_good_ones_stops_the_whole_run(tmp_path, db_path):
    good = text_export(tmp_path / "good.csv", [row("G1")])
    broken = random_bytes(tmp_path / "broken.csv", 2048, seed=3)
    run = scrub([good, broken], tmp_path / "out", db_path)
    assert_refused(run, "broken.csv", "binary content", tmp_path / "out")


def test_a_file_that_fails_inside_the_run_leaves_no_output_and_no_patient_data(tmp_path, db_path):
    # Passes the header check, then a field over DuckDB's 10 MB line limit stops the read.
    path = text_export(tmp_path / "huge_field.csv", [row("H1", patient="PT-SECRET", Payer="x" * 11_000_000)])
    run = scrub([path], tmp_path / "out", db_path)
    assert_refused(run, "huge_field.csv", "cannot be read as CSV at line 2", tmp_path / "out")
    assert "PT-SECRET" not in run.stderr


# Each bad row with the reason a user reads in quarantine.csv.
BAD_ROWS = [
    (row("", Line="1"), "claim_id is missing"),
    (row("B2", Line="x"), "line_number 'x' is not a whole number"),
    (row("B3", Line="1.5"), "line_number '1.5' is not a whole number"),
    (row("B4", patient=""), "patient_id is missing"),
    (row("B5", DOS="2024-13-45"), "date_of_service '2024-13-45' is not a date"),
    (row("B6", **{"CPT Code": "7612"}), "hcpcs '7612' is not five letters and digits"),
    (row("B7", Units="0"), "units '0' is not a positive number"),
    (row("B8", Units="-2"), "units '-2' is not a positive number"),
    (row("B9", Units="lots"), "units 'lots' is not a positive number"),
    (row("B10")[:3], "date_of_service"),
    (row("B11", Line="99999999999"), "line_number '99999999999' is too large"),
    (row("B12", Units="1e15"), "units '1e15' is too large"),
    (row("B13", Units="nan"), "units 'nan' is not a positive number"),
    (row("B14", Units="inf"), "units 'inf' is"),
    (row("B15", Line="0"), "line_number '0' is not a whole number above zero"),
    (row("B16", Units=""), "units is missing"),
    # A member id moved into the date's column by a missing cell is said, not quoted.
    (row("B17", DOS="QZX0042017"), "date_of_service holds a value shaped like an identifier, not a date: not "
                                   "quoted"),
    (row("B18", DOS="123456789"), "date_of_service holds a value shaped like an identifier"),
    # Short member numbers too, in every column where one is said rather than quoted.
    (row("B19", Line="MBR1"), "line_number holds a value shaped like an identifier, not a line number"),
    (row("B20", Units="AB12"), "units holds a value shaped like an identifier, not a number of units"),
    (row("B21", **{"CPT Code": "P12345"}), "hcpcs holds a value shaped like an identifier, not a procedure code"),
    (row("GOOD1"), "claim GOOD1, line 1 appears more than once"),
    # Member numbers written in groups, or after a date in one cell, or in a modifier cell: said, not quoted.
    (row("B23", DOS="ZQX-0320-A"), "date_of_service holds a value shaped like an identifier, not a date"),
    (row("B24", DOS="123-45-6789"), "date_of_service holds a value shaped like an identifier, not a date"),
    (row("B25", DOS="Jul 8 2024 QZX0311"), "date_of_service holds a value shaped like an identifier, not a date"),
    (row("B26", Units="W123 456 789"), "units holds a value shaped like an identifier, not a number of units"),
    (row("B27", Line="QZX-0326"), "line_number holds a value shaped like an identifier, not a line number"),
    (row("B28", **{"CPT Code": "QZX-0322"}), "hcpcs holds a value shaped like an identifier, not a procedure code"),
    (row("B29", **{"Mod 1": "QZX0325"}), "a modifier cell holds a value shaped like an identifier, not a modifier"),
    # A code with a modifier written after it, or a wrong modifier, is quoted: it is the mistake to see.
    (row("B30", **{"Mod 1": "ZZZ"}), "modifier 'ZZZ' is not a modifier"),
]
# The member numbers above: in no output.
GROUPED_IDS = ("ZQX-0320-A", "123-45-6789", "QZX0311", "W123 456 789", "QZX-0326", "QZX-0322", "QZX0325")


def test_mixed_good_and_bad_rows_exit_0_with_every_bad_row_quarantined(tmp_path, db_path):
    good = [row("GOOD1"), row("GOOD2", Line="2"), row("GOOD3", Units="2.0")]
    path = text_export(tmp_path / "mixed.csv", good + [bad for bad, _ in BAD_ROWS])
    run = scrub([path], tmp_path / "out", db_path)
    assert run.exit_code == 0, run.stderr
    assert (run.summary["rows_read"], run.summary["lines_scrubbed"], run.summary["rows_quarantined"]) == (
        len(good) + len(BAD_ROWS), len(good), len(BAD_ROWS))
    by_row = {int(q["source_row"]): q["reasons"] for q in run.quarantine}
    for number, (_, reason) in enumerate(BAD_ROWS, start=len(good) + 1):
        assert reason in by_row[number], (number, by_row.get(number))
    assert "hcpcs is missing" in by_row[len(good) + 10] and "units" in by_row[len(good) + 10]
    assert {line["claim_id"] for line in run.lines} == {"GOOD1", "GOOD2", "GOOD3"}
    for value in ("MBR1", "AB12", "P12345", *GROUPED_IDS):
        assert value not in (run.out_dir / "quarantine.csv").read_text()
    # Nor does quarantine.csv's line number column show a member number that moved there; a plain one it shows.
    line_numbers = {q["claim_id"]: q["line_number"] for q in run.quarantine}
    assert (line_numbers["B19"], line_numbers["B27"], line_numbers["B2"], line_numbers["B11"]) == (
        "", "", "x", "99999999999")


def test_a_header_without_rows_is_a_complete_run_of_nothing(tmp_path, db_path):
    run = scrub([text_export(tmp_path / "none_today.csv", [])], tmp_path / "out", db_path)
    assert run.exit_code == 0, run.stderr
    assert (run.summary["rows_read"], run.summary["lines_scrubbed"], run.summary["rows_quarantined"]) == (0, 0, 0)
    assert run.flags == [] and run.lines == [] and run.quarantine == []


def test_a_killed_nights_staging_folder_beside_another_nights_reports_is_removed(tmp_path, db_path):
    """Each night's reports go to a folder of their own: a killed night's staging folder (patient data) is removed
    by the next run writing beside it, whatever its folder; a live run's, and a user's folder, are left."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    reports = tmp_path / "reports"
    killed = reports / f".2026-12-06.partial-{gone.pid}-k1lled_x"
    live = reports / f".2026-12-05.partial-{os.getpid()}-runn1ng_"
    users = reports / ".notes.partial-copy"
    for folder in (killed, live, users):
        folder.mkdir(parents=True)
        (folder / "lines.csv").write_text("claim_id\nC1\n")
    run = scrub([text_export(tmp_path / "tonight.csv", [])], reports / "2026-12-07", db_path)
    assert run.exit_code == 0, run.stderr
    assert sorted(p.name for p in reports.iterdir()) == sorted(["2026-12-07", live.name, users.name])


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_a_header_below_more_than_ten_title_rows_is_named(tmp_path, db_path, suffix):
    # Eleven title rows: the header is beyond the rows looked at, and the message says where it is, instead of
    # taking a title row for the header and listing every column as missing.
    rows = [[f"Report title line {n}"] for n in range(1, 12)] + [HEADER, row("T1")]
    path = tmp_path / f"titled{suffix}"
    if suffix == ".csv":
        path.write_text("\n".join(",".join(r) for r in rows) + "\n")
        where = "line 12"
    else:
        book = Workbook()
        for r in rows:
            book.active.append(r)
        book.active.title = "Report"
        book.save(path)
        where = "row 12 of sheet 'Report'"
    run = scrub([path], tmp_path / "out", db_path)
    assert_refused(run, str(path), f"the header row is {where}, below more than 10 rows of title: claimscrub "
                                   "looks for it in the first 11 rows; remove the rows above it", tmp_path / "out")


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_a_patients_title_row_above_a_header_naming_no_column_is_not_quoted(tmp_path, db_path, suffix):
    """A statement-like export: a title naming the patient above a header whose names claimscrub does not know
    yet. The message names the header's cells, the table's widest row, not the title's."""
    title = ["Patient: PTSMITH", " ANN  Acct PT-778812  DOB 02/03/1961"]
    header = ["Doc Ref", "Entry", "Acct Nbr", "Svc Day", "Item Code", "Qty Billed"]
    data = ["C1", "1", "PT-778812", "07/08/2024", "76120", "2"]
    path = tmp_path / f"statement{suffix}"
    if suffix == ".csv":
        path.write_text("\n".join(",".join(r) for r in [title, header, data]) + "\n")
    else:
        book = Workbook()
        for r in [title, header, data]:
            book.active.append(r)
        book.save(path)
    run = scrub([path], tmp_path / "out", db_path)
    assert run.exit_code == 2 and not (tmp_path / "out").exists()
    first, *advice = run.stderr.strip().splitlines()
    assert first.endswith('headers not recognised: "Doc Ref", "Entry", "Acct Nbr", "Svc Day", "Item Code", '
                          '"Qty Billed"')
    assert "PTSMITH" not in run.stderr and "778812" not in run.stderr and "1961" not in run.stderr


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_title_rows_above_a_header_without_units_name_the_one_missing_column(tmp_path, db_path, suffix):
    """The header row is the one naming most required columns, not the report's title above it: the message
    names the one column missing, and the mapping it prints takes it from the header's own cells."""
    header = [h if h != "Units" else "Qty Billed" for h in HEADER]
    titles = [["Charge Detail Report"], ["Run 2024-07-09, all providers"]]
    path = tmp_path / f"titled{suffix}"
    if suffix == ".csv":
        path.write_text("\n".join(",".join(r) for r in [*titles, header, row("T1")]) + "\n")
    else:
        book = Workbook()
        for r in [*titles, header, row("T1")]:
            book.active.append(r)
        book.save(path)
    run = scrub([path], tmp_path / "out", db_path)
    assert run.exit_code == 2 and not (tmp_path / "out").exists()
    first, *advice = run.stderr.strip().splitlines()
    assert first.endswith(f'{path}: required column missing: units; headers not recognised: "Qty Billed"')
    assert '"Qty Billed" = "units"' in advice


def test_a_claims_sheet_short_of_a_column_behind_a_cover_sheet_is_the_one_named(tmp_path, db_path):
    """The cover sheet's first row (an account statement holding a patient's id) was taken for the header, its
    cells quoted, and every required column called missing."""
    book = Workbook()
    book.active.title = "Cover"
    book.active.append(["Statement for account", "PTSECRET7"])
    claims = book.create_sheet("Claims")
    claims.append([h if h != "Units" else "Qty Billed Count" for h in HEADER])
    claims.append(row("C1"))
    path = tmp_path / "statement.xlsx"
    book.save(path)
    run = scrub([path], tmp_path / "out", db_path)
    assert run.exit_code == 2
    assert "PTSECRET7" not in run.stderr
    assert 'required column missing: units; headers not recognised: "Qty Billed Count"' in run.stderr.splitlines()[0]


def test_a_file_read_as_one_long_header_gets_no_mapping_advice_quoting_it(tmp_path, db_path):
    """An 837P without its ISA, all on one line: its text is no header to paste into a mapping file."""
    text = ("GS*HC*SENDER*RECEIVER*20240901*1200*1*X*005010X222A1~ST*837*0001~NM1*IL*1*DOE*JOHN****MI*"
            "PTSECRET8~CLM*C1*100~LX*1~SV1*HC:99213*100*UN*1~SE*6*0001~GE*1*1~")
    path = tmp_path / "claims.txt"
    path.write_text(text + "\n")
    run = scrub([path], tmp_path / "out", db_path)
    assert run.exit_code == 2
    assert "PTSECRET8" not in run.stderr and "[columns]" not in run.stderr


def test_a_pdf_named_csv_is_refused_as_a_pdf(tmp_path, db_path):
    """A report printed to PDF and named .csv was refused for missing columns, its "header" quoted as
    "%PDF-1.4"."""
    pdf = tmp_path / "claims.csv"
    pdf.write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n")
    run = scrub([pdf], tmp_path / "out", db_path)
    assert_refused(run, "claims.csv", "a PDF document, not a claim export: export the claims as CSV or .xlsx",
                   tmp_path / "out")


def test_a_workbook_named_csv_is_read_as_a_workbook_and_said_so(tmp_path, db_path):
    book = workbook_export(tmp_path / "claims.csv", rows=[row("WB1")])
    run = scrub([book], tmp_path / "out", db_path)
    assert run.exit_code == 0, run.stderr
    assert f"claimscrub: {book}: an .xlsx workbook named .csv; read as .xlsx" in run.stderr.splitlines()
    assert run.summary["lines_scrubbed"] == 1
