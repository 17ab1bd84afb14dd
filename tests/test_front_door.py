"""The front door: every row is read right or quarantined with its reason, and a user's mistake that can be
seen before the run stops it with exit 2, one plain line, and nothing written.

The rows of each behaviour share one scrub of one file: the run is the slow part, the rows are not.
"""

import os
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from openpyxl import Workbook

from assets.readers import InputFileError, land_rows, map_headers, stage_csv, stage_excel
from assets.tables import ensure_schema
from assets.validate import NOT_A_LINE, TOTAL_LINE
from pipelines.cli import main

from .corpus import HEADER, row, text_export, workbook_export
from .helpers import scrub
from .test_broken_input import assert_refused

# Dates of service are judged against the run's day: pinned, so that no row drifts into the past.
RUN_DAY = "2026-01-15"


@pytest.fixture(autouse=True)
def pinned_day(monkeypatch):
    monkeypatch.setenv("CLAIMSCRUB_TODAY", RUN_DAY)


@pytest.fixture
def con():
    connection = duckdb.connect()
    ensure_schema(connection)
    yield connection
    connection.close()


# Each written date with the day it is read as.
DATE_FORMS = [
    ("2024-07-08", "2024-07-08"),
    ("2024-7-8", "2024-07-08"),
    ("2024-07-08 10:30:00", "2024-07-08"),
    ("2024-07-08T10:30:00.5", "2024-07-08"),
    ("07/08/2024", "2024-07-08"),
    ("7/8/2024", "2024-07-08"),
    ("07/08/24", "2024-07-08"),
    ("11/3/25", "2025-11-03"),
    ("20240708", "2024-07-08"),
    ("45481", "2024-07-08"),
    ("45481.75", "2024-07-08"),
    # A date column exported by a spreadsheet or a database carries a time; the date is the day of service.
    ("07/08/2024 12:00:00 AM", "2024-07-08"),
    ("7/8/2024 0:00", "2024-07-08"),
    ("7/8/24 13:45", "2024-07-08"),
    ("2024-07-08 10:30:00 PM", "2024-07-08"),
    ("2024-07-08T00:00:00.000Z", "2024-07-08"),
    ("2024-07-08T00:00:00-05:00", "2024-07-08"),
    ("2024/07/08", "2024-07-08"),
    ("07-08-2024", "2024-07-08"),
    ("8-Jul-2024", "2024-07-08"),
    ("8-Jul-24", "2024-07-08"),
    ("08-JUL-24", "2024-07-08"),
    ("Jul 8, 2024", "2024-07-08"),
    ("July 8, 2024", "2024-07-08"),
    ("Sept 8, 2024", None),
    ("08-JUL-2024 00:00:00", "2024-07-08"),
    ("24-07-08", None),
    ("13-01-2024", None),
    ("08.07.2024", None),
    ("2024-02-30", None),
    ("13/01/2024", None),
    ("8 July 2024", None),
    ("2024", None),
    ("202407081", None),
]


def test_dates_of_service_in_every_written_form_are_read_as_the_day_they_name(con, tmp_path):
    path = text_export(tmp_path / "dates.csv",
                       [row(f"D{n}", DOS=text) for n, (text, _) in enumerate(DATE_FORMS)])
    land_rows(con, stage_csv(con, path, 0, {}), "raw_claim_rows", "b", 0, path.name)
    read = con.execute("select date_of_service, strftime(dos, '%Y-%m-%d') from raw_claim_rows "
                       "order by source_row")
    assert read.fetchall() == [(text, day) for text, day in DATE_FORMS]


def test_modifier_and_diagnosis_columns_under_one_repeated_header_are_all_read(con, tmp_path):
    header = ["Claim ID", "Line", "Member ID", "DOS", "CPT Code", "Units", "Modifier", "Modifier", "Dx", "Dx"]
    path = text_export(tmp_path / "repeated.csv", [["R1", "1", "P", "2024-07-08", "76120", "1", "26", "59",
                                                    "R13.10", "I1.0"]], header=header)
    land_rows(con, stage_csv(con, path, 0, {}), "raw_claim_rows", "b", 0, path.name)
    # The second "Modifier" holds the bypass modifier that decides PTP_BYPASSED over PTP_NO_BYPASS; the
    # second "Dx" a misshapen code that DX_MISSING must see.
    assert con.execute("select modifiers, diagnoses from raw_claim_rows").fetchall() == [
        (["26", "59"], ["R1310", "I1.0"])]


def test_modifier_and_diagnosis_columns_under_a_merged_header_are_all_read(con, tmp_path):
    # A workbook's "Modifiers" header merged over two cells, and "Diagnosis" over three, head their first cells
    # only: the blank ones after them are more modifiers and diagnoses. A blank header elsewhere is not read.
    book = Workbook()
    sheet = book.active
    sheet.append(["Claim ID", "Line", "Member ID", "DOS", "CPT Code", "Units", "Modifiers", None, "Diagnosis",
                  None, None, None, "Payer"])
    sheet.merge_cells("G1:H1")
    sheet.merge_cells("I1:K1")
    sheet.append(["M1", 1, "P", "2024-07-15", "73560", 1, "26", "59", "M25.561", "M25.562", "R13.10", "note",
                  "Acme"])
    path = tmp_path / "merged.xlsx"
    book.save(path)
    land_rows(con, stage_excel(con, path, 0, {}), "raw_claim_rows", "b", 0, path.name)
    assert con.execute("select modifiers, list_sort(diagnoses), payer from raw_claim_rows").fetchall() == [
        (["26", "59"], ["M25561", "M25562", "R1310"], "Acme")]


def test_a_locality_written_otherwise_is_read_as_mac_dash_locality(con, tmp_path):
    written = ["01112-05", "01112 05", "0111205", "1112-5", "111205", "ca-05", "12345-678"]
    path = text_export(tmp_path / "localities.csv",
                       [["L", str(n), "P", "2024-07-08", "76120", "1", text] for n, text in enumerate(written, 1)],
                       header=["Claim ID", "Line", "Member ID", "DOS", "CPT Code", "Units", "Locality"])
    land_rows(con, stage_csv(con, path, 0, {}), "raw_claim_rows", "b", 0, path.name)
    read = [r[0] for r in con.execute("select locality from raw_claim_rows order by source_row").fetchall()]
    # Not a locality at all: kept as written (upper case), and the line is priced at the national amount
    # with a price note saying so.
    assert read == ["01112-05"] * 5 + ["CA-05", "12345-678"]


# (changes to a clean row, what a user reads: the line's date, code, modifiers and units, or the reason)
ROWS = [
    ({"DOS": "11/3/25"}, ("2025-11-03", "76120", "", "1")),
    ({"DOS": "45481"}, ("2024-07-08", "76120", "", "1")),
    ({"DOS": RUN_DAY}, (RUN_DAY, "76120", "", "1")),
    ({"DOS": "2026-01-16"},
     "date_of_service '2026-01-16' is a date of service in the future (after the run's day, 2026-01-15)"),
    ({"DOS": "1/2/99"}, "date_of_service '1/2/99' (read as 2099-01-02) is a date of service in the future"),
    ({"DOS": "1899-07-08"}, "date_of_service '1899-07-08' is an implausible date of service (before 2000)"),
    ({"DOS": "02/03/1961"}, "date_of_service is an implausible date of service (before 2000): a date of the 1900s, "
                            "most often a date of birth in the wrong column; not quoted"),
    ({"DOS": "0024-07-08"}, "date_of_service '0024-07-08' is an implausible date of service (before 2000)"),
    ({"DOS": "24-07-08"}, "date_of_service '24-07-08' is not a date (YYYY-MM-DD, MM/DD/YYYY, YYYYMMDD, Jul 8, "
                          "2024, 08-Jul-2024 and the other forms docs/INTERFACE.md lists)"),
    ({"Units": "1.0"}, ("2024-07-08", "76120", "", "1")),
    ({"Units": " 2 "}, ("2024-07-08", "76120", "", "2")),
    ({"Units": "1,000"}, ("2024-07-08", "76120", "", "1000")),
    ({"Units": "1.5"}, "units '1.5' is not a whole number"),
    ({"Units": "0"}, "units '0' is not a positive number"),
    ({"Units": "-1"}, "units '-1' is not a positive number"),
    ({"Units": "1e3"}, "units '1e3' is not a whole number written in digits"),
    ({"Units": "1,5"}, "units '1,5' is not a whole number written in digits"),
    ({"CPT Code": "76120-26"}, ("2024-07-08", "76120", "26", "1")),
    ({"CPT Code": "76120 26"}, ("2024-07-08", "76120", "26", "1")),
    ({"CPT Code": "76120-26-59"}, ("2024-07-08", "76120", "26,59", "1")),
    ({"CPT Code": "76120-26", "Mod 1": "26"}, ("2024-07-08", "76120", "26", "1")),
    # The code cell's modifiers and the modifier columns' are the line's: each one written is read.
    ({"CPT Code": "76120-26", "Mod 1": "59"}, ("2024-07-08", "76120", "26,59", "1")),
    ({"CPT Code": "76120-26", "Mod 1": "26 59"}, ("2024-07-08", "76120", "26,59", "1")),
    ({"CPT Code": "76120-26-59", "Mod 1": "XU"}, ("2024-07-08", "76120", "26,59,XU", "1")),
    ({"CPT Code": "76120-2"}, "hcpcs '76120-2' is not five letters and digits"),
    # A modifier cell holding several is read as the modifiers column is; one that holds no modifier is not
    # dropped or kept as it is: the row says why it was not scrubbed.
    ({"Mod 1": "26,TC"}, ("2024-07-08", "76120", "26,TC", "1")),
    ({"Mod 1": "26 tc"}, ("2024-07-08", "76120", "26,TC", "1")),
    ({"Mod 1": "tc-26"}, ("2024-07-08", "76120", "26,TC", "1")),
    ({"Mod 1": "26|59"}, ("2024-07-08", "76120", "26,59", "1")),
    ({"Mod 1": "N/A"}, ("2024-07-08", "76120", "", "1")),
    ({"Mod 1": "ABC"}, "modifier 'ABC' is not a modifier (two letters or digits, such as 26, TC or 59)"),
    ({"Mod 1": "2"}, "modifier '2' is not a modifier"),
    # A place of service decides the hospital rules and the rate: its code with its name after it is the code,
    # and a cell that holds no code is not taken for the office.
    ({"POS": "22 - On Campus-Outpatient Hospital"}, ("2024-07-08", "76120", "", "1")),
    ({"POS": "21 Inpatient Hospital"}, ("2024-07-08", "76120", "", "1")),
    ({"POS": "N/A"}, ("2024-07-08", "76120", "", "1")),
    ({"POS": "O2"}, "place_of_service 'O2' is not a place-of-service code (two digits, such as 11 or 22)"),
    ({"POS": "Office"}, "place_of_service 'Office' is not a place-of-service code"),
    # A code with its description after it is the code; a description's first word is no modifier.
    ({"CPT Code": "76120 - CINE/VIDEO X-RAYS"}, ("2024-07-08", "76120", "", "1")),
    ({"CPT Code": "92611 Motion fluoroscopic eval swallowing"}, ("2024-07-08", "92611", "", "1")),
    ({"CPT Code": "76120 26 PROF"}, "hcpcs '76120 26 PROF' is not five letters and digits"),
    # A lookup that failed in the workbook the export came from: no patient's identifier.
    ({"Member ID": "#N/A"}, "patient_id '#N/A' is an Excel error value, not a patient's identifier"),
    # A tab at a cell's end is not trimmed as a space is: the code is not read, and the reason shows it.
    ({"CPT Code": "92611\t"}, "hcpcs '92611\\t' is not five letters and digits"),
]


def test_each_row_is_read_right_or_quarantined_with_its_reason(tmp_path, db_path):
    # A patient each: lines of one patient on one day would meet in the rules and the pricing.
    export = text_export(tmp_path / "front.csv", [*(row(f"F{n}", patient=f"PT-F{n}", **changes)
                                                    for n, (changes, _) in enumerate(ROWS)),
                                                  row("#REF!", patient="PT-REF"),
                                                  # A charge of $1,234.50 unquoted: every cell after it moved.
                                                  row("SHIFT", patient="PT-SHIFT")[:6] + ["1", "$1", "234.50"]
                                                  + row("SHIFT")[7:],
                                                  # A printed report's lines between its claim lines.
                                                  ["Patient: DOE", " JOHN  Acct 123456"], HEADER,
                                                  ["Total", "", "", "", "", "", "", "$2,850.00"],
                                                  # A total line summing the units above it.
                                                  ["Grand Total", "", "", "", "", "", "17"]])
    # The patient's name first, "Last, First" unquoted on one row: the patient's id moves under claim_id.
    zip_code = {"Service ZIP": "94103"}
    names_first = text_export(tmp_path / "names_first.csv",
                              [["DOE", " JANE", *row("NAMES1", patient="PT-NAME-7", **zip_code)],
                               ["DOE, JOHN", *row("NAMES2", patient="PT-NAME-8", **zip_code)]],
                              header=["Patient Name", *HEADER])
    # A real workbook named .xls, with a date cell and a serial day number where a date belongs.
    book = workbook_export(tmp_path / "renamed.xls", rows=[row("XLS1", DOS=datetime(2024, 7, 8)),
                                                          row("XLS2", DOS=45481, **{"CPT Code": "76120-TC"})])
    run = scrub([export, names_first, book], tmp_path / "out", db_path)
    assert run.exit_code == 0, run.stderr
    notes = [line for line in run.stderr.splitlines() if not line.startswith("warning: ")]
    assert notes == [f"claimscrub: {book}: an .xlsx workbook named .xls; read as .xlsx"]
    reasons = {q["claim_id"]: q["reasons"] for q in run.quarantine}
    assert reasons["#REF!"] == "claim_id '#REF!' is an Excel error value, not a claim's identifier"
    # A report's furniture and a row whose cells moved: said so, nothing of them quoted, no claim id or line.
    unquoted = {(q["source_file"], q["source_row"]): (q["claim_id"], q["line_number"], q["reasons"])
                for q in run.quarantine if q["claim_id"] == ""}
    shifted = ("", "", "the row has text in more cells than the header names: a value holding the file's "
                       "delimiter without quotes (such as $1,234.50) moves every cell after it")
    front_rows = len(ROWS) + 2
    assert unquoted == {("front.csv", str(front_rows)): shifted,
                        **{("front.csv", str(front_rows + n)): ("", "", NOT_A_LINE) for n in (1, 2)},
                        **{("front.csv", str(front_rows + n)): ("", "", TOTAL_LINE) for n in (3, 4)},
                        ("names_first.csv", "1"): shifted}
    assert "NAMES2" in {line["claim_id"] for line in run.lines}
    quarantined = (tmp_path / "out" / "quarantine.csv").read_text()
    assert not any(text in quarantined for text in ("DOE", "JANE", "PT-NAME-7", "PT-SHIFT", "NAMES1", "1961"))
    for n, (changes, expected) in enumerate(ROWS):
        claim = f"F{n}"
        if isinstance(expected, str):
            assert expected in reasons.get(claim, ""), (changes, reasons.get(claim))
        else:
            line = run.line(claim, 1)
            seen = (line["date_of_service"], line["hcpcs"], line["modifiers"], line["units"])
            assert seen == expected, changes
    assert (run.line("XLS1", 1)["date_of_service"], run.line("XLS2", 1)["date_of_service"]) == (
        "2024-07-08", "2024-07-08")
    assert (run.line("XLS2", 1)["hcpcs"], run.line("XLS2", 1)["component"]) == ("76120", "TC")
    whole_units = [run.line(f"F{n}", 1) for n, (changes, _) in enumerate(ROWS) if changes == {"Units": " 2 "}]
    assert whole_units[0]["expected_allowed"] == "212.84", "two units priced at twice the fee"
    named = {changes["POS"]: f"F{n}" for n, (changes, _) in enumerate(ROWS) if " " in changes.get("POS", "")}
    assert [(run.line(claim, 1)["place_of_service"], run.line(claim, 1)["facility"]) for claim in named.values()] \
        == [("22", "true"), ("21", "true")]
    assert {(f["claim_id"], f["rule_id"]) for f in run.flags if f["claim_id"] in named.values()} == {
        (claim, "MOD_GLOBAL_IN_HOSPITAL") for claim in named.values()}


def test_a_file_given_twice_or_a_copy_of_it_is_read_once_and_said(tmp_path, db_path):
    export = text_export(tmp_path / "tonight.csv", [row("C1"), row("C2")])
    copy = tmp_path / "tonight (1).csv"
    copy.write_bytes(export.read_bytes())
    run = scrub([export, export, copy], tmp_path / "out", db_path)
    assert run.exit_code == 0, run.stderr
    assert (run.summary["rows_read"], len(run.lines), run.quarantine) == (2, 2, [])
    notes = [line for line in run.stderr.splitlines() if not line.startswith("warning: ")]
    assert notes == [f"claimscrub: {export}: the same file as {export} (same content); read once",
                     f"claimscrub: {copy}: the same file as {export} (same content); read once"]


def test_a_column_that_looks_like_one_claimscrub_reads_but_is_not_read_is_named(tmp_path, db_path):
    # "CPT Modifier X" holds the 26 of the line: unread, the line would be judged as a global 76120.
    header = ["Claim ID", "Line", "Member ID", "DOS", "CPT Code", "CPT Modifier X", "Units", "Patient Name"]
    export = text_export(tmp_path / "unread.csv", [["C1", "1", "PT-1", "2024-07-08", "76120", "26", "1", "Bob"]],
                         header=header)
    run = scrub([export], tmp_path / "out", db_path)
    assert run.exit_code == 0, run.stderr
    notes = [line for line in run.stderr.splitlines() if not line.startswith("warning: ")]
    assert notes == [f'claimscrub: {export}: column not read: "CPT Modifier X" (is it modifiers?); a mapping '
                     "file (--mapping) can name it"]


def test_a_range_of_dates_is_said_to_be_judged_on_its_first_day():
    from assets.readers import unread_headers

    header = ["Claim ID", "Line", "Member ID", "From Date", "To Date", "CPT Code", "CPT Modifier X", "Units"]
    assert unread_headers(header, {}, Path("e.csv")) == (
        'e.csv: column not read: "CPT Modifier X" (is it modifiers?); a mapping file (--mapping) can name it; '
        '"To Date" not read: a line is judged on the first day of its range, and all its units count toward '
        "that day (bill one line per day where a code's MUE is per day)")


@pytest.mark.parametrize("header",
                         ["Patient Acct", "Acct #", "Account", "MRN", "Account No", "Patient Account #"])
def test_account_number_headers_are_read_as_patient_id(header):
    headers = ["Claim", "Line", header, "DOS", "CPT", "Units"]
    assert map_headers(headers, {}, Path("e.csv"))[2] == "patient_id"


def test_a_payer_s_name_is_read_before_its_id_wherever_it_stands():
    headers = ["Claim", "Line", "Patient", "DOS", "CPT", "Units", "Payor ID", "Payer Name"]
    assert map_headers(headers, {}, Path("e.csv"))[7] == "payer"
    assert map_headers(headers[:7], {}, Path("e.csv"))[6] == "payer"


@pytest.mark.parametrize(("header", "column"), [
    ("Encounter #", "claim_id"), ("Visit ID", "claim_id"), ("Ticket Number", "claim_id"),
    ("Service Line", "line_number"), ("Pt ID", "patient_id"), ("MBI", "patient_id"),
    ("Date of Svc", "date_of_service"), ("Service From Date", "date_of_service"), ("HCPCS/CPT", "hcpcs"),
    ("Service Code", "hcpcs"), ("Units Billed", "units"), ("Servicing Provider NPI", "rendering_npi"),
    ("Pay-to NPI", "billing_npi"), ("Place of Svc", "place_of_service"), ("Service Line Number", "line_number"),
    ("Member_Number", "patient_id"), ("Svc From", "date_of_service"), ("Proc", "hcpcs"), ("M1", "modifier_1"),
    ("Insurance Name", "payer"), ("Pat Acct", "patient_id"), ("Pt Acct #", "patient_id"), ("Mbr ID", "patient_id"),
    ("Chart #", "patient_id"), ("Clm No", "claim_id"), ("Clm #", "claim_id"), ("Ins Name", "payer"),
    ("Primary Ins", "payer"), ("Rendering Prov NPI", "rendering_npi"), ("Rend NPI", "rendering_npi"),
    ("Bill NPI", "billing_npi"), ("Billing Prov NPI", "billing_npi"), ("Service Location ZIP", "service_zip"),
    ("Service Facility ZIP", "service_zip"), ("Location ZIP", "service_zip")])
def test_headers_of_other_exports_are_read(header, column):
    headers = {"claim_id": "Claim", "line_number": "Line", "patient_id": "Patient", "date_of_service": "DOS",
               "hcpcs": "CPT", "units": "Units"}
    headers[column] = header
    names = list(headers.values())
    assert map_headers(names, {}, Path("e.csv"))[names.index(header)] == column


def test_a_column_under_its_own_name_wins_over_an_alias_before_it():
    # "Visit" and "Code" would be the claim and the code by alias; the columns named as claimscrub names them
    # are read wherever they stand.
    headers = ["Visit", "Code", "Claim ID", "Line", "Patient", "DOS", "HCPCS", "Units", "Mod", "Mod", "Modifier 1"]
    assert map_headers(headers, {}, Path("e.csv")) == {
        2: "claim_id", 3: "line_number", 4: "patient_id", 5: "date_of_service", 6: "hcpcs", 7: "units",
        8: "modifiers", 9: "modifier_2", 10: "modifier_1"}


def test_a_header_the_sites_mapping_names_wins_over_a_column_under_the_fields_own_name():
    # The site says its dates of service are under "Svc Dt"; "Date of Service" (the date entered) comes first.
    headers = ["Claim ID", "Line", "Patient ID", "Date of Service", "Svc Dt", "CPT", "Units"]
    mapped = map_headers(headers, {"svcdt": "date_of_service"}, Path("e.csv"))
    assert (mapped.get(3), mapped.get(4)) == (None, "date_of_service")


@pytest.mark.parametrize(("headers", "expected"), [
    # Siblings share the subscriber's id: the patient is the account, wherever the insured's id stands.
    (["Claim", "Line", "Insured ID", "Patient Acct #", "DOS", "CPT", "Units"], {2: None, 3: "patient_id"}),
    # A provider's name under "Rendering Provider" or "Billing Provider": the NPI columns give the NPIs.
    (["Claim", "Line", "Patient", "DOS", "CPT", "Units", "Rendering Provider", "NPI"],
     {6: None, 7: "rendering_npi"}),
    (["Claim", "Line", "Patient", "DOS", "CPT", "Units", "Billing Provider", "Group NPI"],
     {6: None, 7: "billing_npi"}),
    # A facility's name under "Service Location" beside the POS column; days in receivables under "Days"
    # beside the quantity (a false MUE denial of 45 units otherwise).
    (["Claim", "Line", "Patient", "DOS", "CPT", "Units", "Service Location", "POS"], {6: None, 7: "place_of_service"}),
    (["Claim", "Line", "Patient", "DOS", "CPT", "Days", "Qty"], {5: None, 6: "units"}),
    # A description under "Procedure" beside the code's own column.
    (["Claim", "Line", "Patient", "DOS", "Procedure", "CPT Code", "Units"], {4: None, 5: "hcpcs"}),
    # Alone, each still names its field.
    (["Claim", "Line", "Insured ID", "DOS", "Procedure", "Units", "Rendering Provider"],
     {2: "patient_id", 4: "hcpcs", 6: "rendering_npi"}),
])
def test_a_header_that_may_name_something_else_gives_way_to_one_that_names_the_field(headers, expected):
    mapped = map_headers(headers, {}, Path("e.csv"))
    assert {position: mapped.get(position) for position in expected} == expected


@pytest.mark.parametrize(("header", "column"), [
    ("CPT Modifier 1", "modifier_1"), ("CPT Mod 2", "modifier_2"), ("Proc Mod 1", "modifier_1"),
    ("HCPCS Modifier 3", "modifier_3"), ("Procedure Modifiers", "modifiers"),
    ("Place of Service Code", "place_of_service"), ("Place Of Service (POS)", "place_of_service")])
def test_modifier_and_place_of_service_headers_of_practice_management_exports(header, column):
    headers = ["Claim", "Line", "Patient", "DOS", "CPT", "Units", header]
    assert map_headers(headers, {}, Path("e.csv")).get(6) == column


# Diagnosis columns as exports head them: unread, every line of the file would be DX_MISSING.
@pytest.mark.parametrize(("header", "column"), [
    ("ICD10 1", "diagnosis_1"), ("ICD-10 Code 2", "diagnosis_2"), ("Dx Code 3", "diagnosis_3"),
    ("ICD-10-CM 4", "diagnosis_4"), ("Primary Dx", "diagnosis_1"), ("Secondary Diagnosis", "diagnosis_2"),
    ("Diagnosis Code", "diagnoses"), ("ICD-10 Codes", "diagnoses"), ("Dx Pointer", None)])
def test_diagnosis_headers_are_read_and_a_pointer_is_not(header, column):
    headers = ["Claim", "Line", "Patient", "DOS", "CPT", "Units", header]
    assert map_headers(headers, {}, Path("e.csv")).get(6) == column


def test_missing_columns_name_the_unrecognised_headers_and_print_a_mapping_that_fixes_them(
        tmp_path, db_path, monkeypatch):
    header = ["Claim Ref", "Line", "Pt Account Nbr", "Svc Day", "CPT", "Qty Billed", "Notes"]
    export = text_export(tmp_path / "pm_export.csv", [["E1", "1", "PT-9", "07/08/2024", "76120", "2", "ok"]],
                         header=header)
    refused = scrub([export], tmp_path / "out", db_path)
    assert refused.exit_code == 2 and not (tmp_path / "out").exists()
    first, *snippet = refused.stderr.strip().splitlines()
    assert first == (f"claimscrub: {export}: required columns missing: claim_id, patient_id, "
                     'date_of_service, units; headers not recognised: "Claim Ref", "Pt Account Nbr", '
                     '"Svc Day", "Qty Billed", "Notes"')
    assert snippet[1:] == ['[columns]', '"Claim Ref" = "claim_id"', '"Pt Account Nbr" = "patient_id"',
                           '"Svc Day" = "date_of_service"', '"Qty Billed" = "units"']
    # Pasted as printed, the mapping fixes the export; the command finds it through CLAIMSCRUB_MAPPING.
    mapping = tmp_path / "site-mapping.toml"
    mapping.write_text("\n".join(snippet) + "\n")
    monkeypatch.setenv("CLAIMSCRUB_MAPPING", str(mapping))
    fixed = scrub([export], tmp_path / "out", db_path)
    assert fixed.exit_code == 0, fixed.stderr
    assert [(line["claim_id"], line["date_of_service"], line["units"]) for line in fixed.lines] == [
        ("E1", "2024-07-08", "2")]


def test_a_header_like_no_missing_column_gets_no_mapping_to_paste():
    with pytest.raises(InputFileError) as refused:
        map_headers(["Claim", "Line", "Patient", "DOS", "CPT", "Favourite colour"], {}, Path("e.csv"))
    assert str(refused.value) == (
        'e.csv: required column missing: units; headers not recognised: "Favourite colour"')
    assert refused.value.advice == ""


def _mapping(content: bytes):
    def build(tmp_path: Path) -> list[str]:
        path = tmp_path / "site-mapping.toml"
        path.write_bytes(content)
        return ["--mapping", str(path)]

    return build


def _out_is_a_file(tmp_path: Path) -> list[str]:
    (tmp_path / "out").write_text("an earlier report")
    return ["--out", str(tmp_path / "out")]


def _out_under_a_file(tmp_path: Path) -> list[str]:
    (tmp_path / "reports").write_text("an earlier report")
    return ["--out", str(tmp_path / "reports" / "today")]


def _export_as_report(tmp_path: Path) -> list[str]:
    (tmp_path / "reports").mkdir()
    export = text_export(tmp_path / "reports" / "lines.csv", [row("L1")])
    return [str(export), "--out", str(tmp_path / "reports")]


def _pipe(option: str):
    def build(tmp_path: Path) -> list[str]:
        os.mkfifo(tmp_path / "pipe")
        return [option, str(tmp_path / "pipe")]

    return build


def _out_in_a_loop(tmp_path: Path) -> list[str]:
    (tmp_path / "loop-a").symlink_to(tmp_path / "loop-b")
    (tmp_path / "loop-b").symlink_to(tmp_path / "loop-a")
    return ["--out", str(tmp_path / "loop-a" / "reports")]


def _name_not_utf8(tmp_path: Path) -> list[str]:
    name = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.csv"))
    name.write_bytes((tmp_path / "good.csv").read_bytes())
    return [str(name)]


def _empty_secret(tmp_path: Path) -> list[str]:
    (tmp_path / "home").mkdir(exist_ok=True)
    (tmp_path / "home" / "site-secret").write_text("")
    return []


def _page(name: str, content: str):
    def build(tmp_path: Path) -> list[str]:
        (tmp_path / name).write_text(content)
        return [str(tmp_path / name)]

    return build


HTML = "<!DOCTYPE html>\n<html><body><table><tr><td>Claim ID</td></tr></table></body></html>\n"
EXCEL_2003_XML = ('<?xml version="1.0"?>\n<?mso-application progid="Excel.Sheet"?>\n'
                  '<Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet"></Workbook>\n')

# (what goes wrong, the arguments it adds to a scrub of a good export, the name and problem its line states)
BEFORE_THE_RUN = [
    ("unknown locality", lambda tmp_path: ["--locality", "99999-99"], "'99999-99'",
     "is not a Medicare pricing locality of the loaded GPCI releases "
     "(`claimscrub reference localities` lists"),
    ("out is a file", _out_is_a_file, "out", "is a file, not a folder"),
    ("out under a file", _out_under_a_file, "reports", "is a file, not a folder"),
    # Writing the reports would replace an export; the log would be appended to one.
    ("export named like a report in --out", _export_as_report, "reports/lines.csv",
     "an export in the --out folder named like the report written there (lines.csv)"),
    ("log that is the export", lambda tmp_path: ["--log", str(tmp_path / "good.csv")], "--log",
     "is an export of this run"),
    # A pipe would hold the command in open() for good.
    ("log that is a pipe", _pipe("--log"), "--log", "not a regular file"),
    ("mapping that is a pipe", _pipe("--mapping"), "pipe", "not a regular file"),
    ("database that is a pipe", _pipe("--db"), "pipe", "it is not a regular file"),
    ("out in a symlink loop", _out_in_a_loop, "loop-a/reports", "cannot be used (Symlink loop"),
    ("export whose name is not UTF-8", _name_not_utf8, "caf?.csv", "the file's name is not UTF-8 text"),
    # A key emptied by accident would mask ids with a hash anyone can reverse.
    ("site secret emptied", _empty_secret, "site-secret", "the site secret is empty or cut short (0 characters)"),
    # A folder no process may make one in (the kernel's /proc): a share mounted read-only, another user's.
    ("out where no folder can be made", lambda tmp_path: ["--out", "/proc/claimscrub-reports/tonight"],
     "/proc/claimscrub-reports/tonight", "cannot be written (No such file or directory)"),
    ("mapping does not parse", _mapping(b'[columns]\n"Acct" = patient_id\n'), "site-mapping.toml",
     "cannot read the header mapping file"),
    ("mapping to an unknown column", _mapping(b'[columns]\n"Acct" = "patientid"\n'), "site-mapping.toml",
     "'patientid' is not a claimscrub column (did you mean 'patient_id'?)"),
    # Another name of a column is taken for it, not its nearest spelling ('line_number').
    ("mapping to another name of a column", _mapping(b'[columns]\n"Enc" = "claim_number"\n'), "site-mapping.toml",
     "'claim_number' is not a claimscrub column (did you mean 'claim_id'?)"),
    ("mapping that is no table", _mapping(b'columns = "Acct"\n'), "site-mapping.toml",
     "[columns] is not a table"),
    ("mapping that is not text", _mapping(b"\xff\xfe[\x00c\x00"), "site-mapping.toml",
     "cannot read the header mapping file"),
    ("html saved as xls", _page("portal.xls", HTML), "portal.xls",
     "an HTML page named .xls, not an Excel workbook: open it in Excel and save it as .xlsx or CSV"),
    ("excel 2003 xml saved as xls", _page("report.xls", EXCEL_2003_XML), "report.xls",
     "an Excel 2003 XML spreadsheet named .xls, not an Excel workbook"),
    ("xml saved as xlsx", _page("claims.xlsx", '<?xml version="1.0"?>\n<claims><claim/></claims>'),
     "claims.xlsx", "an XML document named .xlsx, not an Excel workbook"),
]


@pytest.mark.parametrize("case", BEFORE_THE_RUN, ids=[case[0] for case in BEFORE_THE_RUN])
def test_a_mistake_seen_before_the_run_exits_2_in_one_line_with_nothing_written(tmp_path, db_path, case):
    _, build, name, problem = case
    good = text_export(tmp_path / "good.csv", [row("G1")])
    arguments = build(tmp_path)
    if "--out" not in arguments:
        arguments += ["--out", str(tmp_path / "out")]
    before = sorted(p.name for p in tmp_path.iterdir())
    result = CliRunner().invoke(main, ["scrub", str(good), "--db", str(db_path), *arguments])
    assert result.exit_code == 2, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("claimscrub: ") and name in line and problem in line, line
    assert "Traceback" not in result.stderr and not result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "nothing may be written for a refused run"
    assert not (tmp_path / "out").is_dir()


def test_a_run_day_that_is_not_a_date_is_a_usage_error(tmp_path, db_path, monkeypatch):
    monkeypatch.setenv("CLAIMSCRUB_TODAY", "15/01/2026")
    run = scrub([text_export(tmp_path / "good.csv", [row("G1")])], tmp_path / "out", db_path)
    assert_refused(run, "CLAIMSCRUB_TODAY", "is not a date YYYY-MM-DD", tmp_path / "out")


def test_version_is_the_installed_package_version():
    from importlib.metadata import version

    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"claimscrub {version('claimscrub')}\n"


def test_provider_names_and_none_in_npi_columns_are_not_npis_that_fail(tmp_path, db_path):
    # An export with the providers' names where the NPIs would be: no NPI_INVALID denial on every line, and
    # the names still tell providers apart (one doctor's 99213 twice is a duplicate, another's is not). "N/A"
    # is no provider: the line is the billing NPI's.
    header = ["Claim ID", "Line", "Member ID", "DOS", "CPT Code", "Units", "Rendering Provider", "Billing NPI",
              "Dx 1"]
    rows = [["N1", "1", "P1", "2025-03-04", "99213", "1", "SMITH, JOHN MD", "1234567893", "I10"],
            ["N2", "1", "P1", "2025-03-04", "99213", "1", "SMITH, JOHN MD", "1234567893", "I10"],
            ["N3", "1", "P2", "2025-03-04", "99213", "1", "JONES, ANN DO", "1234567893", "I10"],
            ["N3", "2", "P2", "2025-03-04", "99213", "1", "N/A", "1245319599", "I10"]]
    run = scrub([text_export(tmp_path / "names.csv", rows, header=header)], tmp_path / "out", db_path)
    assert run.exit_code == 0, run.stderr
    assert sorted((f["claim_id"], f["line_number"], f["rule_id"]) for f in run.flags) == [
        ("N1", "1", "DUP_EXACT"), ("N2", "1", "DUP_EXACT")]
    assert {(r["claim_id"], r["line_number"]): r["provider_npi"] for r in run.lines}[("N3", "2")] == "1245319599"


def test_a_stray_nul_byte_in_a_cell_near_the_top_does_not_refuse_the_file(tmp_path, db_path):
    # One payer cell pasted with a NUL in it: the same byte further down was read, here it refused every row as
    # binary content.
    rows = [row(f"N{n}", f"PT-{n}", Payer="Aetna\x00" if n == 3 else "Aetna") for n in range(200)]
    run = scrub([text_export(tmp_path / "nul.csv", rows)], tmp_path / "out", db_path)
    assert run.exit_code == 0, run.stderr
    assert run.summary["rows_read"] == 200 and run.summary["lines_scrubbed"] == 200
