"""Reading exports as practice-management systems write them: aliases, a site mapping, Excel, encodings."""

from datetime import date

import duckdb
from openpyxl import Workbook

from assets.readers import CANONICAL

from .corpus import row, text_export
from .engine import engine_scrub
from .helpers import scrub


def test_exports_in_other_shapes_are_read_into_the_same_lines(tmp_path, db_path):
    # Excel with the usual aliases and real dates.
    book = Workbook()
    sheet = book.active
    sheet.append(["Claim #", "Line", "Member ID", "Service Date", "CPT Code", "Mod 1", "Units", "POS",
                  "Rendering NPI", "Dx 1"])
    sheet.append(["XL1", 1, "M1", date(2024, 7, 9), "76120", "26", 1, 22, 1234567893, "R13.10"])
    book.create_sheet("Notes").append(["ignored"])
    xlsx = tmp_path / "export.xlsx"
    book.save(xlsx)
    # latin-1, semicolons, CRLF, MM/DD/YYYY, a modifiers column.
    latin = tmp_path / "latin.csv"
    latin.write_bytes(
        "Claim ID;Line No;Patient;DOS;Procedure Code;Modifiers;Qty;Payer;Dx\r\n"
        "LT1;1;Jos\xe9;07/09/2024;76120;26 TC;1;Se\xf1or Health;R13.10\r\n".encode("latin-1"))
    # UTF-8 with BOM, tabs, YYYYMMDD, the site's own header names through a mapping file.
    site = tmp_path / "site.tsv"
    site.write_text("\ufeffVisit\tSeq\tMRN\tWhen\tProc\tHowMany\tDiag\n"
                    "ST1\t1\tM3\t20240709\t99213\t1\tI10\n", encoding="utf-8")
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('[columns]\nVisit = "claim_id"\nSeq = "line_number"\nWhen = "date_of_service"\n'
                       'Proc = "hcpcs"\nHowMany = "units"\nDiag = "diagnosis_1"\n')

    # A CSV export named as X12 files are (.edi): read as the CSV it is.
    edi = text_export(tmp_path / "claims.edi", [row("ED1")])

    run = scrub([xlsx, latin, site, edi], tmp_path / "out", db_path, "--mapping", str(mapping))

    assert run.exit_code == 0, run.stderr
    assert run.summary["rows_read"] == 4 and run.summary["rows_quarantined"] == 0
    xl = run.line("XL1", 1)
    assert (xl["date_of_service"], xl["modifiers"], xl["place_of_service"], xl["component"]) == (
        "2024-07-09", "26", "22", "26")
    lt = run.line("LT1", 1)
    assert (lt["date_of_service"], lt["modifiers"], lt["source_file"]) == ("2024-07-09", "26,TC", "latin.csv")
    assert run.findings("LT1", 1) == {"MOD_26_AND_TC"}
    assert run.line("ST1", 1)["date_of_service"] == "2024-07-09"
    assert run.line("ED1", 1)["source_file"] == "claims.edi"


def test_a_mapping_to_an_unknown_column_is_refused_in_one_line(tmp_path, db_path):
    export = tmp_path / "e.csv"
    export.write_text("claim_id,line_number,patient_id,date_of_service,hcpcs,units\nC,1,P,2024-07-01,99213,1\n")
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('[columns]\nVisit = "claim_number"\n')
    run = scrub([export], tmp_path / "out", db_path, "--mapping", str(mapping))
    assert run.exit_code == 2
    assert run.stderr.strip().count("\n") == 0 and "'claim_number' is not a claimscrub column" in run.stderr


def test_a_database_whose_raw_rows_are_all_text_still_scrubs(tmp_path, db_path):
    # Databases written before the readers parsed values hold every raw cell as text: their rows are parsed
    # once, and the next scrub runs as in a new database.
    canonical = ", ".join(f"{name} varchar" for name in CANONICAL)
    with duckdb.connect(str(db_path)) as con:
        con.execute("create table raw_claim_rows (batch_id varchar, file_index integer, source_file varchar, "
                    f"source_row bigint, {canonical})")
        con.execute("insert into raw_claim_rows (batch_id, file_index, source_file, source_row, claim_id, "
                    "line_number, date_of_service, units, modifier_1) "
                    "values ('earlier', 0, 'old.csv', 1, 'OLD1', '1', '07/09/2024', '2', 'tc')")
    path = text_export(tmp_path / "new.csv", [row("NEW1")])
    run = engine_scrub([path], tmp_path / "out", db_path)
    assert run.exit_code == 0, run.stderr
    assert [(line["claim_id"], line["source_row"]) for line in run.lines] == [("NEW1", "1")]
    with duckdb.connect(str(db_path)) as con:
        kept = con.execute("select claim_id, dos, units_num, modifiers from raw_claim_rows "
                           "where batch_id = 'earlier'").fetchall()
    assert kept == [("OLD1", date(2024, 7, 9), 2.0, ["TC"])]


def test_a_billing_reports_abbreviated_headers_are_read_without_a_mapping(tmp_path, db_path):
    """"Enc #", "Svc Dt" and "Px" made the file refused for two missing columns, the advice suggesting no header
    for the code; "Billed Amt" was left unread."""
    export = tmp_path / "report.csv"
    export.write_text("Enc #,Seq,Pt Acct No,Svc Dt,Px,Qty,Billed Amt\nE1,1,A1,2024-07-09,99213,1,$95.00\n")
    run = scrub([export], tmp_path / "out", db_path)
    assert run.exit_code == 0, run.stderr
    line = run.line("E1", 1)
    assert (line["date_of_service"], line["hcpcs"], line["units"]) == ("2024-07-09", "99213", "1")
    assert "Billed Amt" not in run.stderr
