"""The denial-risk workbook as its readers open it: sheets, findings, formats, charts, masking and safety.

One export with hostile values (payers and claim ids that look like formulas, a control character) is
scrubbed twice into one database; most tests read the first workbook, the determinism test compares both.
"""

import re
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from openpyxl import load_workbook

import reports.workbook
from assets.rules import RULES

from .engine import engine_scrub
from .helpers import module_site, read_csv, scrub, write_csv

SHEETS = ["Summary", "Findings", "Worklist", "Decisions", "Quarantine", "Rules", "Reference"]
HYPERLINK = '=HYPERLINK("http://x","y")'
PAYERS_TITLE = "Top payers by dollars at risk (a claim with several payers counts under each)"
RADIOLOGY, CARDIO, GROUP = "1234567893", "9876543213", "5550001114"


def line(claim, number, patient, dos, modifiers="", units="1", pos="11", payer="Acme Health", hcpcs="76120",
         diagnosis="R13.10", npi=RADIOLOGY):
    return {"claim_id": claim, "line_number": number, "patient_id": patient, "date_of_service": dos,
            "hcpcs": hcpcs, "modifiers": modifiers, "units": units, "rendering_npi": npi,
            "billing_npi": GROUP, "place_of_service": pos, "claim_type": "professional",
            "diagnosis_1": diagnosis, "payer": payer}


HOSTILE_ROWS = [
    line("CLM-26TC", 1, "PAT-SECRET-001", "2024-07-11", modifiers="26,TC", payer=HYPERLINK),
    line("CLM-DUP", 1, "PAT-SECRET-002", "2024-07-12", payer="+1+1"),
    line("CLM-DUP", 2, "PAT-SECRET-002", "2024-07-12", payer="+1+1"),
    line("=1+2", 1, "PAT-SECRET-003", "2024-07-15", pos="22", payer="@SUM(1,1)", npi=CARDIO),
    line("CLM-NODX", 1, "PAT-SECRET-004", "2024-07-16", modifiers="26", pos="22", diagnosis="",
         payer="Acme\x01Health"),
    line("CLM-ERR", 1, "PAT-SECRET-005", "2024-07-17", modifiers="26", pos="22", diagnosis="", payer="#N/A"),
    line("CLM-OK", 1, "PAT-SECRET-006", "2024-07-18", modifiers="26", pos="22"),
    line("=BAD()", 1, "PAT-SECRET-007", "not a date"),
    # The two characters XML forbids outright, in a claim id and a payer of a deny finding.
    line("CLM\uffffX", 1, "PAT-SECRET-008", "2024-07-19", pos="22", payer="Big\ufffePlan"),
]


def as_shown(text: str) -> str:
    """A text of flags.csv as a cell shows it: the characters XML forbids become U+FFFD."""
    return re.sub("[\ufffe\uffff]", "\ufffd", text)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, reference_db):
    """Two scrubs of the hostile export into one database (the second a plain rerun)."""
    with module_site(tmp_path_factory, reference_db, "workbook") as (work, db):
        export = write_csv(work / "hostile.csv", HOSTILE_ROWS)
        first = scrub([export], work / "first", db)
        second = scrub([export], work / "second", db)
    assert first.exit_code == 0, first.stderr
    assert second.exit_code == 0, second.stderr
    return {"first": first, "second": second, "db": db, "work": work}


@pytest.fixture(scope="module")
def book(runs):
    return load_workbook(runs["first"].out_dir / "denial-risk-report.xlsx")


def rows(sheet, first_row=1):
    return [list(r) for r in sheet.iter_rows(min_row=first_row, values_only=True)]


def table(sheet) -> list[dict]:
    """A table sheet's rows below its caption and header, keyed by header."""
    header, *body = rows(sheet, 2)
    return [dict(zip(header, r)) for r in body]


def worklist_rows(book) -> list[dict]:
    """The Worklist's rows, without the closing note below them (after an empty row)."""
    found = table(book["Worklist"])
    return found[:next((i for i, r in enumerate(found) if all(v is None for v in r.values())), len(found))]


def section(sheet, title: str) -> list[list]:
    """The rows of one Summary section, header first, up to the blank row that ends it."""
    found = rows(sheet)
    start = next(i for i, r in enumerate(found) if r[0] == title) + 1
    end = next((i for i in range(start, len(found)) if all(v is None for v in found[i])), len(found))
    return [r for r in found[start:end]]


def xml_parts(path: Path) -> dict[str, str]:
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name).decode("utf-8") for name in z.namelist()
                if name.endswith((".xml", ".rels"))}


def test_workbook_has_its_seven_sheets_in_order(book):
    assert book.sheetnames == SHEETS


def test_findings_sheet_lists_every_finding_of_flags_csv_with_its_evidence(runs, book):
    findings = table(book["Findings"])
    flags = runs["first"].flags
    assert Counter((f["Claim"], f["Line"], f["Rule"]) for f in findings) == \
        Counter((as_shown(f["claim_id"]), int(f["line_number"]), f["rule_id"]) for f in flags)
    assert set(findings[0]) >= {
        "Claim", "Line", "Date of service", "Code", "Modifiers", "Units", "Provider NPI", "Rule", "Category",
        "Severity", "CARC", "Dollars at risk", "Explanation", "Fix", "Partner line", "PTP edit", "Releases",
        "Source file", "Source row"}
    both = next(f for f in findings if f["Rule"] == "MOD_26_AND_TC")
    assert both["Claim"] == "CLM-26TC" and both["Modifiers"] == "26,TC" and both["CARC"] == "4"
    assert both["Dollars at risk"] == 18.11 and both["Severity"] == "deny"
    assert both["Releases"] == "RVU25D; GPCI 2025; PTP 2024Q3; MUE 2024Q3; AOC 2024Q3"
    assert both["Source file"] == "hostile.csv" and both["Source row"] == 1
    assert book["Findings"]["A1"].value.startswith(f"{len(flags)} findings")


def test_findings_header_is_frozen_and_filtered(book):
    sheet = book["Findings"]
    count = len(table(sheet))
    assert sheet.freeze_panes == "A3"
    assert sheet.auto_filter.ref == f"A2:AC{count + 2}"
    assert book["Worklist"].freeze_panes == "A3" and book["Worklist"].auto_filter.ref.startswith("A2:")


def test_money_is_formatted_as_money_and_dates_as_dates(book):
    sheet = book["Findings"]
    header = [c.value for c in sheet[2]]
    money, dos = header.index("Dollars at risk") + 1, header.index("Date of service") + 1
    third = sheet.cell(row=3, column=money)
    assert isinstance(third.value, float) and third.number_format == '"$"#,##0.00'
    assert sheet.cell(row=3, column=dos).is_date
    assert sheet.cell(row=3, column=dos).number_format == "yyyy-mm-dd"
    worklist = book["Worklist"]
    assert worklist.cell(row=3, column=7).number_format == '"$"#,##0.00'
    headline = next(r for r in book["Summary"].iter_rows(max_col=2)
                    if r[0].value == "Dollars at risk of denial")
    assert headline[1].number_format == '"$"#,##0.00' and headline[1].value > 0


def test_severity_cells_are_coloured(book):
    sheet = book["Findings"]
    header = [c.value for c in sheet[2]]
    at = header.index("Severity") + 1
    colours = {sheet.cell(row=r, column=at).value: sheet.cell(row=r, column=at).fill.fgColor.rgb
               for r in range(3, sheet.max_row + 1)}
    assert colours["deny"].endswith("F8CBAD") and colours["review"].endswith("FFE699")


def test_no_input_value_becomes_a_formula_a_link_or_an_error(runs, book):
    parts = xml_parts(runs["first"].out_dir / "denial-risk-report.xlsx")
    sheets = {name: text for name, text in parts.items() if name.startswith("xl/worksheets/sheet")}
    assert sheets and not any(re.search(r"<(f|hyperlinks?)[ >]", text) for text in sheets.values())
    assert not any('t="e"' in text for text in sheets.values())
    payers = {f["Payer"] for f in table(book["Findings"])}
    assert {HYPERLINK, "+1+1", "@SUM(1,1)", "#N/A"} <= payers
    assert "=1+2" in {f["Claim"] for f in table(book["Findings"])}
    assert "=1+2" in {w["Claim"] for w in worklist_rows(book)}
    assert "=BAD()" in {q["Claim"] for q in table(book["Quarantine"])}
    assert HYPERLINK in [r[0] for r in section(book["Summary"], PAYERS_TITLE)]


def test_a_control_character_in_an_input_is_shown_not_fatal(book):
    assert "Acme\ufffdHealth" in {f["Payer"] for f in table(book["Findings"])}
    # U+FFFE and U+FFFF would leave XML that no reader takes: the workbook opened (the fixture), and shows them
    # as U+FFFD on every sheet that holds them.
    assert {"CLM\ufffdX"} <= {f["Claim"] for f in table(book["Findings"])} & {w["Claim"] for w in worklist_rows(book)}
    assert "Big\ufffdPlan" in {f["Payer"] for f in table(book["Findings"])}
    assert "Big\ufffdPlan" in [r[0] for r in section(book["Summary"], PAYERS_TITLE)]


def test_patient_ids_are_masked_everywhere_in_the_workbook(runs, book):
    text = "".join(xml_parts(runs["first"].out_dir / "denial-risk-report.xlsx").values())
    assert "PAT-SECRET" not in text
    patients = {f["Patient"] for f in table(book["Findings"])}
    assert all(re.fullmatch(r"P-[0-9a-f]{12}", p) for p in patients)


def test_show_ids_shows_patient_ids_in_the_workbook(tmp_path, db_path):
    run = engine_scrub([write_csv(tmp_path / "hostile.csv", HOSTILE_ROWS)], tmp_path / "out", db_path,
                       show_ids=True)
    findings = table(load_workbook(run.out_dir / "denial-risk-report.xlsx")["Findings"])
    assert "PAT-SECRET-001" in {f["Patient"] for f in findings}


def test_summary_shows_the_money_at_risk_and_a_bar_chart_by_category(runs, book):
    summary = book["Summary"]
    facts = {r[0]: r[1] for r in rows(summary) if r[0]}
    deny = runs["first"].summary["dollars_at_risk"]["by_severity"]["deny"]
    assert facts["Dollars at risk of denial"] == pytest.approx(deny)
    assert facts["Claims with a deny finding"] == len({w["Claim"] for w in worklist_rows(book)})
    categories = section(summary, "Findings and dollars at risk of denial by category (a line can fall under "
                                  "several categories)")
    assert categories[0][:4] == ["Category", "Findings", "Deny findings", "Dollars at risk"]
    assert categories[-1][0] == "All findings; dollars with each line counted once"
    assert categories[-1][3] == pytest.approx(deny)
    categories = categories[:-1]
    by_category = runs["first"].summary["findings"]["by_category"]
    assert {r[0] for r in categories[1:]} == {category for category, count in by_category.items() if count}
    rules = section(summary, "Top rules by dollars at risk of denial (a line can fall under several "
                             "rules)")[1:-1]
    assert [r[4] for r in rules] == sorted((r[4] for r in rules), reverse=True)
    assert "hostile.csv" in [r[0] for r in section(summary, "The run")]

    charts = {n: t for n, t in xml_parts(runs["first"].out_dir / "denial-risk-report.xlsx").items()
              if n.startswith("xl/charts/chart")}
    assert len(charts) == 1
    chart = next(iter(charts.values()))
    assert "<barChart>" in chart and "At risk of denial, by category" in chart
    first = next(i for i, r in enumerate(rows(summary), 1) if r[0] == "Category") + 1
    assert f"'Summary'!$D${first}:$D${first + len(categories) - 2}" in chart


def test_worklist_has_a_row_per_line_to_fix_grouped_under_claims_biggest_dollars_first(runs, book):
    worklist = worklist_rows(book)
    deny_claims = {as_shown(f["claim_id"]) for f in runs["first"].flags if f["severity"] == "deny"}
    claims = list(dict.fromkeys(w["Claim"] for w in worklist))
    assert set(claims) == deny_claims
    # Each claim's lines together, under it.
    assert [w["Claim"] for w in worklist] == sorted((w["Claim"] for w in worklist), key=claims.index)
    at_risk = {w["Claim"]: w["Claim at risk"] for w in worklist}
    assert claims == sorted(claims, key=lambda c: (-at_risk[c], c))
    dup = [w for w in worklist if w["Claim"] == "CLM-DUP"]
    assert [w["Line"] for w in dup] == [1, 2] and [w["Dollars at risk"] for w in dup] == [106.42, 106.42]
    assert at_risk["CLM-DUP"] == 212.84  # two lines at $106.42, each counted once for its two findings
    # One copy stays, the other goes; removing it clears the day's units (no "correct the units").
    assert [w["Action"] for w in dup] == ["keep, remove copies", "remove line"]
    assert dup[0]["Instruction"].startswith(
        "CLM-DUP line 1: 76120 is billed again on CLM-DUP line 2: keep this line")
    assert all(w["Resolves"] == "DUP_COMPONENT; also MUE_DOS (Removing the copy clears the units)"
               for w in dup)
    assert "CLM-NODX" not in claims  # review only


def test_quarantine_sheet_lists_each_row_with_its_source_and_reasons(book):
    quarantine = table(book["Quarantine"])
    assert len(quarantine) == 1
    assert quarantine[0]["Source file"] == "hostile.csv" and quarantine[0]["Source row"] == 8
    assert "is not a date" in quarantine[0]["Reasons"]


def test_rules_sheet_prints_the_registry_with_carc_texts(book):
    rules = {r["Rule"]: r for r in table(book["Rules"])}
    assert len(rules) == len(RULES)
    both = rules["MOD_26_AND_TC"]
    assert both["CARC"] == "4"
    assert both["CARC text"] == "The procedure code is inconsistent with the modifier used."
    assert both["Fix"] and both["Source"] and both["Findings this run"] == 1
    # A rule whose CARC follows the line (the code's status) shows every CARC its findings carry.
    status = rules["STATUS_NOT_PAYABLE"]
    assert status["CARC"] == "96, 97, 181, 50"
    assert status["CARC text"].startswith("96: ") and "; 181: " in status["CARC text"]
    # So does a rule whose severity follows the line (status, edit type, indicator value), and a rule of one
    # severity shows it alone.
    assert status["Severity"] == "deny, review or info"
    assert rules["AOC_NO_PRIMARY"]["Severity"] == rules["MOD_ASSISTANT_NOT_PAYABLE"]["Severity"] == "deny or review"
    assert both["Severity"] == "deny"


def test_reference_sheet_names_each_release_with_its_period_files_and_sha256(book):
    releases = {r["Release"]: r for r in table(book["Reference"])}
    assert {"RVU25D", "GPCI 2025", "PTP 2024Q3", "MUE 2024Q3", "CARC-RARC 2024-06"} <= set(releases)
    rvu = releases["RVU25D"]
    assert rvu["Effective from"].date().isoformat() == "2025-10-01"
    assert rvu["Source files"] == "PPRRVU2025_Oct.csv.gz" and re.fullmatch(r"[0-9a-f]{64}", rvu["sha256"])


def _without_run_times(path: Path) -> dict:
    stamp = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})?( UTC)?")
    sheets = {}
    for sheet in load_workbook(path):
        sheets[sheet.title] = [[stamp.sub("<time>", v) if isinstance(v, str) else v for v in r]
                               for r in rows(sheet) if r[0] != "Run time (seconds)"]
    return sheets


def test_same_input_gives_the_same_workbook_apart_from_run_times(runs):
    first = runs["first"].out_dir / "denial-risk-report.xlsx"
    second = runs["second"].out_dir / "denial-risk-report.xlsx"
    assert _without_run_times(first) == _without_run_times(second)
    a, b = xml_parts(first), xml_parts(second)
    unchanged = [n for n in a if n != "docProps/core.xml" and n != "xl/worksheets/sheet1.xml"]
    assert {n: a[n] for n in unchanged} == {n: b[n] for n in unchanged}


# Four scrubs: the slow tier (CI runs it).
@pytest.mark.slow
def test_an_older_export_scrubbed_again_keeps_its_place_in_the_trend(tmp_path, db_path):
    """July 1st's export is scrubbed again after July 8th's: on July 15th the trend runs 1st, 8th, 15th, and the
    change is against the 8th (the rerun came last, and the change was against it)."""
    exports = {day: write_csv(tmp_path / f"claims_2024-07-{day:02d}.csv",
                              [line(f"C{day}-{n}", 1, f"PAT-{day}-{n}", f"2024-07-{day:02d}", units=str(units))
                               for n, units in enumerate([2] * (day // 7 + 1))])
               for day in (1, 8, 15)}
    runs = [scrub([exports[day]], tmp_path / f"out-{n}", db_path)
            for n, day in enumerate((1, 8, 1, 15))]
    assert [run.exit_code for run in runs] == [0, 0, 0, 0], runs[-1].stderr
    summary = load_workbook(runs[-1].out_dir / "denial-risk-report.xlsx")["Summary"]
    trend = section(summary, "Trend: this run against earlier runs of the same source (files claims.csv)")
    assert [r[0].split(" ", 2)[2] for r in trend[1:4]] == [
        "(claims_2024-07-01.csv)", "(claims_2024-07-08.csv)", "(claims_2024-07-15.csv)"]
    facts = {r[0]: r[1] for r in rows(summary) if r[0]}
    assert facts["Change since the last run of this source"] == round(trend[3][4] - trend[2][4], 2)
    assert trend[3][4] > trend[2][4] > trend[1][4] > 0  # two units each, over 76120's MUE of 1: a line at risk


@pytest.mark.slow  # three more scrubs
def test_the_trend_compares_runs_of_the_same_source_and_leaves_a_one_off_out(runs, tmp_path):
    """hostile.csv ran before, in a database from before sources were kept; an unrelated file is scrubbed once,
    then hostile.csv's next export, whose name differs by its date only."""
    with duckdb.connect(str(runs["db"])) as con:
        con.execute("alter table run_history drop column source")
    unrelated = write_csv(tmp_path / "unrelated.csv",
                          [line("CLM-ONEOFF", 1, "PAT-SECRET-008", "2024-07-20", "26,TC")])
    tonight = write_csv(tmp_path / "hostile_2024-07-20.csv",
                        [line("CLM-LATER", 1, "PAT-SECRET-009", "2024-07-20", "26,TC")])
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CLAIMSCRUB_HOME", str(runs["work"] / "home"))
        one_off = scrub([unrelated], tmp_path / "one-off", runs["db"])
        run = scrub([tonight], tmp_path / "out", runs["db"])
    assert one_off.summary["source"] == "files unrelated.csv"
    assert run.summary["source"] == runs["first"].summary["source"] == "files hostile.csv"

    alone = load_workbook(one_off.out_dir / "denial-risk-report.xlsx")["Summary"]
    trend = section(alone, "Trend: this run against earlier runs of the same source (files unrelated.csv)")
    assert trend[0][0].startswith("No earlier run of this source in this database")
    assert trend[1][0].startswith("Left out: 1 run of other sources, the latest ")
    assert trend[1][0].endswith(
        "(files hostile.csv): one-off scrubs of other files are not compared with this one.")
    assert "Change since the last run of this source" not in {r[0] for r in rows(alone)}

    path = run.out_dir / "denial-risk-report.xlsx"
    summary = load_workbook(path)["Summary"]
    trend = section(summary, "Trend: this run against earlier runs of the same source (files hostile.csv)")
    assert trend[0] == ["Run", "Lines scrubbed", "Findings", "Deny findings", "Dollars at risk", "Change"]
    assert [r[0].split(" ", 2)[2] for r in trend[1:3]] == ["(hostile.csv)", "(hostile_2024-07-20.csv)"]
    earlier, now = trend[1][4], trend[2][4]
    # To the cent, as money is everywhere: a binary difference (-86429.44999999995) is not.
    assert trend[2][5] == round(now - earlier, 2) and now == 18.11
    assert trend[3][0].startswith("Left out: 1 run of other sources")
    assert "(files unrelated.csv)" in trend[3][0]
    facts = {r[0]: r[1] for r in rows(summary) if r[0]}
    assert facts["Change since the last run of this source"] == round(now - earlier, 2)
    charts = [t for n, t in xml_parts(path).items() if n.startswith("xl/charts/chart")]
    assert any("<lineChart>" in t for t in charts)
    with duckdb.connect(str(runs["db"]), read_only=True) as con:
        sources = dict(con.execute("select files, source from run_history").fetchall())
    assert sources == {"hostile.csv": "files hostile.csv", "unrelated.csv": "files unrelated.csv",
                       "hostile_2024-07-20.csv": "files hostile.csv"}


def test_a_run_with_more_findings_than_a_sheet_holds_says_so_and_points_to_flags_csv(
        tmp_path, db_path, monkeypatch):
    monkeypatch.setattr(reports.workbook, "EXCEL_MAX_ROWS", 5)  # a caption, a header and three rows
    run = engine_scrub([write_csv(tmp_path / "hostile.csv", HOSTILE_ROWS)], tmp_path / "out", db_path)
    assert run.exit_code == 0, run.stderr
    book = load_workbook(run.out_dir / "denial-risk-report.xlsx")
    findings = book["Findings"]
    total = len(run.flags)
    assert total > 3
    assert findings["A1"].value == (f"This sheet holds the first 3 of {total} findings (Excel's row limit): "
                                    "flags.csv has every finding.")
    assert len(rows(findings)) == 5 and findings.auto_filter.ref == "A2:AC5"
    notes = [r[0] for r in rows(book["Summary"]) if r[0] and "flags.csv" in r[0]]
    assert (f"The Findings sheet shows 3 of {total} findings (Excel's row limit): "
            "flags.csv has every finding.") in notes
    # The sheets after a cut-short one are still complete.
    assert len(table(book["Quarantine"])) == 1 and len(read_csv(run.out_dir / "flags.csv")) == total


def test_markup_characters_and_text_past_excels_limit_read_back_as_written(tmp_path, db_path):
    """Cells of the big sheets are built as worksheet XML: markup characters in an input stay text, and
    a value longer than a cell holds is cut with an ellipsis rather than breaking the file."""
    payer = 'Acme & <Sons> "Health" </t></is></c>'
    long_claim = "L" * 40_000
    export = write_csv(tmp_path / "markup.csv", [
        line("CLM-MARKUP", 1, "PAT-1", "2024-07-16", modifiers="26,TC", payer=payer),
        line(long_claim, 1, "PAT-2", "2024-07-16", modifiers="26,TC"),
        line("CLM-BADDATE", 1, "PAT-3", "2024-13-45", payer=payer),
    ])
    run = engine_scrub([export], tmp_path / "out", db_path)
    assert run.exit_code == 0, run.stderr
    book = load_workbook(run.out_dir / "denial-risk-report.xlsx")
    findings = table(book["Findings"])
    assert payer in {f["Payer"] for f in findings}
    cut = {f["Claim"] for f in findings if f["Claim"].startswith("LLL")}
    assert cut == {"L" * 32_766 + "\u2026"}
    assert {w["Payer"] for w in worklist_rows(book)} == {payer, "Acme Health"}
    assert [q["Claim"] for q in table(book["Quarantine"])] == ["CLM-BADDATE"]
    assert book["Quarantine"]["A1"].value.startswith("1 row could not be scrubbed, with every reason.")
    assert {f["claim_id"] for f in run.flags} == {"CLM-MARKUP", long_claim}


def test_a_worklist_line_with_two_causes_gets_an_instruction_for_each(tmp_path, reference_db):
    db = tmp_path / "claimscrub.duckdb"
    shutil.copyfile(reference_db, db)
    export = write_csv(tmp_path / "mixed.csv", [
        line("CLM-MIX", 1, "PAT-MIX", "2024-07-19", modifiers="26,TC", npi="1234567890"),
        line("CLM-MIX", 2, "PAT-MIX", "2024-07-19", hcpcs="93000", npi=CARDIO),
        line("CLM-MIX", 3, "PAT-MIX", "2024-07-19", hcpcs="93000", npi=CARDIO),
    ])
    run = engine_scrub([export], tmp_path / "out", db)
    assert run.exit_code == 0, run.stderr
    first, *copies = worklist_rows(load_workbook(run.out_dir / "denial-risk-report.xlsx"))
    # Two causes on line 1, each with its own instruction, in the order of the rules' priority.
    assert first["Action"] == "correct modifiers + correct NPI"
    assert first["Instruction"].split("\n") == [
        "CLM-MIX line 1: 76120 carries both 26 and TC: bill 76120 global without either, or keep only the "
        "modifier of the part you performed",
        "CLM-MIX line 1: the check digit fails for rendering NPI 1234567890: correct it from NPPES"]
    assert [c["Action"] for c in copies] == ["keep, remove copies", "remove line"]
    assert copies[0]["Partner lines"] == f"CLM-MIX line 3 (93000, NPI {CARDIO}, same day)"


def test_the_summary_counts_one_row_and_one_line_in_the_singular(tmp_path, db_path):
    run = engine_scrub([write_csv(tmp_path / "one.csv", [line("ONE-1", 1, "PAT-1", "2024-07-08")])],
                       tmp_path / "out", db_path)
    assert run.exit_code == 0, run.stderr
    batch_line = load_workbook(run.out_dir / "denial-risk-report.xlsx", read_only=True)["Summary"]["A2"].value
    assert ": 1 file, 1 row read, 1 line scrubbed, 0 quarantined; scrubbed " in batch_line
