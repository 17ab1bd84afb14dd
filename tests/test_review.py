"""Auditors' decisions, tested as an auditor works: scrub, open the workbook, decide findings (dismiss some,
accept some, one standing dismissal), save, `review import`, rerun the batch; then scrub a later batch where the
standing dismissal applies and one where it does not. Workbooks edited, sorted, saved by LibreOffice, from
another database or not reports at all; and what the payer said about a dismissal."""

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from openpyxl import Workbook, load_workbook

from assets.decisions import decision_split
from pipelines.cli import main

from .engine import engine_scrub
from .helpers import Run, module_site, read_csv, scrub, write_csv
from .test_reference import PTP_2026
from .x12_files import write_835

A, B, GROUP = "1234567893", "9876543213", "5550001114"
REPORT = "denial-risk-report.xlsx"
FLAGS_COLUMNS = ["claim_id", "line_number", "hcpcs", "rule_id", "category", "severity", "carc", "dollars_at_risk",
                 "message", "rvu_release", "ptp_release", "mue_release"]
DECISION_COLUMNS = ["finding_id", "decision", "decision_reason", "reviewer", "decided_at"]
STANDING = "this rule for this code and provider"


def line(claim, number, patient, code, npi=A, dos="2024-08-12", modifiers="", units=1, pos="11"):
    return {"claim_id": claim, "line_number": number, "patient_id": patient, "date_of_service": dos,
            "hcpcs": code, "modifiers": modifiers, "units": units, "charge": "150.00", "rendering_npi": npi,
            "billing_npi": GROUP, "place_of_service": pos, "claim_type": "professional", "diagnosis_1": "R13.10",
            "payer": "ACME HEALTH"}


BATCH_1 = [
    line("PTP-A", 1, "PAT-A", "92611"), line("PTP-A", 2, "PAT-A", "76120"),  # PTP_NO_BYPASS, provider A
    line("PTP-B", 1, "PAT-B", "92611", npi=B), line("PTP-B", 2, "PAT-B", "76120", npi=B),  # the same, B
    line("MUE-1", 1, "PAT-M", "76120", units=2),  # MUE_DOS
    line("BOTH-1", 1, "PAT-T", "76120", modifiers="26,TC"),  # MOD_26_AND_TC
    line("DUP-1", 1, "PAT-D", "99213"), line("DUP-1", 2, "PAT-D", "99213"),  # DUP_EXACT on both lines
    line("GLOBAL-1", 1, "PAT-G", "76120", npi=B, pos="22"),  # MOD_GLOBAL_IN_HOSPITAL
]
# What the auditors decide on the first report: (decision, reason, reviewer, scope) by claim, line and rule.
DECISIONS = {
    ("PTP-A", 2, "PTP_NO_BYPASS"): ("dismiss", "separate sessions, both documented", "ann", STANDING),
    ("MUE-1", 1, "MUE_DOS"): ("dismiss", "two sessions documented", "ann", "this finding"),
    ("BOTH-1", 1, "MOD_26_AND_TC"): ("accept", None, "bob", "this finding"),
    ("DUP-1", 1, "DUP_EXACT"): ("fixed", "line 2 removed before sending", "bob", "this finding"),
    ("DUP-1", 2, "DUP_EXACT"): ("dismiss", "the copy that was removed", "bob", "this finding"),
}
# A later batch: provider A bills the dismissed pair again (the standing dismissal applies), B too (it does not).
BATCH_2 = [line("PTP-A2", 1, "PAT-A2", "92611", dos="2024-08-20"),
           line("PTP-A2", 2, "PAT-A2", "76120", dos="2024-08-20"),
           line("PTP-B2", 1, "PAT-B2", "92611", npi=B, dos="2024-08-20"),
           line("PTP-B2", 2, "PAT-B2", "76120", npi=B, dos="2024-08-20")]
# Another: provider A bundles another code into 76120 (the same rule, not the same code).
BATCH_3 = [line("FLUORO-A3", 1, "PAT-A3", "76120", dos="2024-08-21"),
           line("FLUORO-A3", 2, "PAT-A3", "76000", dos="2024-08-21")]


@dataclass
class Audit:
    folder: Path
    db: Path
    first: Run
    imported: str
    rerun: Run
    later: Run
    other: Run


def cli(*args: str):
    return CliRunner().invoke(main, [*map(str, args)])


def decide(source: Path, target: Path, decisions: dict, change=None) -> Path:
    """Open a report as an auditor would, fill in decisions, save it as `target`. `change(sheet, columns)`
    does anything else to the Findings sheet first."""
    book = load_workbook(source)
    sheet = book["Findings"]
    columns = {cell.value: cell.column for cell in sheet[2]}
    if change is not None:
        change(sheet, columns)
    for row in range(3, sheet.max_row + 1):
        key = tuple(sheet.cell(row, columns[name]).value for name in ("Claim", "Line", "Rule"))
        if key in decisions:
            for name, value in zip(("Decision", "Reason", "Reviewer", "Scope"), decisions[key]):
                sheet.cell(row, columns[name]).value = value
    book.save(target)
    return target


def flag(run: Run, claim: str, number: int, rule: str) -> dict:
    return next(f for f in run.flags
                if (f["claim_id"], f["line_number"], f["rule_id"]) == (claim, str(number), rule))


def sheet_table(path: Path, name: str) -> list[dict]:
    """The sheet's table: its rows below the header, up to the first blank row (a note may follow)."""
    rows = list(load_workbook(path, read_only=True)[name].iter_rows(values_only=True))
    table = []
    for row in rows[2:]:
        if not row or all(cell is None for cell in row):
            break
        table.append(dict(zip(rows[1], row)))
    return table


def worklist_claims(run: Run) -> set[str]:
    return {row["Claim"] for row in sheet_table(run.out_dir / REPORT, "Worklist")}


def trail(db: Path) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("select decision_id, claim_id, line_number, rule_id, decision from finding_decisions "
                           "order by decision_id").fetchall()


def reviewed_and_rerun(folder: Path, db: Path, scrubbed) -> tuple:
    """Batch 1 scrubbed (by `scrubbed`, a scrub function of tests/), DECISIONS filled in on its report and
    imported, and the batch scrubbed again: the first run, the import's result and the rerun."""
    export = write_csv(folder / "batch1.csv", BATCH_1)
    first = scrubbed([export], folder / "first", db)
    assert first.exit_code == 0, first.stderr
    reviewed = decide(first.out_dir / REPORT, folder / "reviewed.xlsx", DECISIONS)
    imported = cli("review", "import", reviewed, "--db", db)
    assert imported.exit_code == 0, imported.output
    return first, imported, scrubbed([export], folder / "rerun", db)


@pytest.fixture(scope="module")
def audit(tmp_path_factory, reference_db) -> Audit:
    with module_site(tmp_path_factory, reference_db, "audit") as (folder, db):
        first, imported, rerun = reviewed_and_rerun(folder, db, engine_scrub)
        later = engine_scrub([write_csv(folder / "batch2.csv", BATCH_2)], folder / "later", db)
        other = engine_scrub([write_csv(folder / "batch3.csv", BATCH_3)], folder / "other", db)
    for run in (rerun, later, other):
        assert run.exit_code == 0, run.stderr
    return Audit(folder, db, first, imported.stdout, rerun, later, other)


@pytest.fixture
def copy_db(audit, tmp_path) -> Path:
    """The audit's database, to change in one test only."""
    db = tmp_path / "claimscrub.duckdb"
    shutil.copyfile(audit.db, db)
    return db


def test_review_import_says_what_it_did(audit):
    assert audit.imported.strip() == "5 decisions imported, 0 unchanged, 0 rows refused"


def test_a_finding_id_is_short_and_the_same_on_every_rerun_of_the_batch(audit):
    first = [(f["claim_id"], f["line_number"], f["rule_id"], f["finding_id"]) for f in audit.first.flags]
    assert first == [(f["claim_id"], f["line_number"], f["rule_id"], f["finding_id"]) for f in audit.rerun.flags]
    assert all(re.fullmatch("[0-9a-f]{16}", f[3]) for f in first)
    assert len({f[3] for f in first}) == len(first)
    shown = {row["Finding id"] for row in sheet_table(audit.first.out_dir / REPORT, "Findings")}
    assert shown == {f[3] for f in first}


def test_flags_csv_keeps_its_columns_then_the_decision_then_the_gpci_release(audit):
    columns = list(audit.rerun.flags[0])
    assert columns[:len(FLAGS_COLUMNS)] == FLAGS_COLUMNS
    assert columns[-7:] == ["partner_batch", *DECISION_COLUMNS, "gpci_release"]


def test_a_rerun_of_the_batch_keeps_the_decisions(audit):
    for (claim, number, rule), (decision, reason, reviewer, _) in DECISIONS.items():
        found = flag(audit.rerun, claim, number, rule)
        assert (found["decision"], found["decision_reason"], found["reviewer"]) == (decision, reason or "", reviewer)
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", found["decided_at"])
    assert flag(audit.rerun, "PTP-B", 2, "PTP_NO_BYPASS")["decision"] == "pending"
    assert flag(audit.rerun, "GLOBAL-1", 1, "MOD_GLOBAL_IN_HOSPITAL")["decided_at"] == ""
    findings = {(r["Claim"], r["Line"], r["Rule"]): r for r in sheet_table(audit.rerun.out_dir / REPORT, "Findings")}
    assert findings[("PTP-A", 2, "PTP_NO_BYPASS")]["Decision"] == "dismiss"
    assert findings[("PTP-A", 2, "PTP_NO_BYPASS")]["Scope"] == STANDING
    assert findings[("BOTH-1", 1, "MOD_26_AND_TC")]["Reviewer"] == "bob"
    assert findings[("PTP-B", 2, "PTP_NO_BYPASS")]["Decision"] == "pending"


def test_the_commands_closing_line_says_how_much_of_the_risk_auditors_dismissed_or_fixed(audit, copy_db, tmp_path):
    rerun = scrub([audit.folder / "batch1.csv"], tmp_path / "rerun", copy_db)
    assert rerun.exit_code == 0, rerun.stderr
    split = rerun.summary["dollars_at_risk"]["deny_by_decision"]
    deny = rerun.summary["dollars_at_risk"]["by_severity"]["deny"]
    decided = split["dismissed"]["dollars"] + split["fixed"]["dollars"]
    assert decided > 0
    assert rerun.stdout.splitlines()[0].endswith(
        f"${deny:,.2f} at risk of denial (${decided:,.2f} of it dismissed or fixed by auditors).")


def test_the_worklist_leaves_out_claims_whose_deny_findings_are_all_dismissed_or_fixed(audit):
    assert worklist_claims(audit.first) == {"PTP-A", "PTP-B", "MUE-1", "BOTH-1", "DUP-1", "GLOBAL-1"}
    assert worklist_claims(audit.rerun) == {"PTP-B", "BOTH-1", "GLOBAL-1"}
    caption = load_workbook(audit.rerun.out_dir / REPORT, read_only=True)["Worklist"]["A1"].value
    assert caption.startswith("3 lines on the 3 claims with a deny finding not dismissed or fixed: 3 to fix, "
                              "the rest to review")


def test_the_summary_splits_dollars_at_risk_by_decision(audit):
    def dollars(*keys):
        return round(sum(float(flag(audit.rerun, *key)["dollars_at_risk"]) for key in keys), 2)

    split = audit.rerun.summary["dollars_at_risk"]["deny_by_decision"]
    assert {group: round(split[group]["dollars"], 2) for group in split} == {
        "pending": dollars(("PTP-B", 2, "PTP_NO_BYPASS"), ("GLOBAL-1", 1, "MOD_GLOBAL_IN_HOSPITAL")),
        "accepted": dollars(("BOTH-1", 1, "MOD_26_AND_TC")),
        "dismissed": dollars(("PTP-A", 2, "PTP_NO_BYPASS"), ("MUE-1", 1, "MUE_DOS"), ("DUP-1", 2, "DUP_EXACT")),
        "fixed": dollars(("DUP-1", 1, "DUP_EXACT")),
    }
    assert sum(g["dollars"] for g in split.values()) == pytest.approx(
        audit.rerun.summary["dollars_at_risk"]["by_severity"]["deny"])
    # Each deny finding counts under its own decision, as flags.csv says it.
    groups = {"pending": "pending", "accept": "accepted", "dismiss": "dismissed", "fixed": "fixed"}
    by_decision = Counter(groups.get(f["decision"], "dismissed") for f in audit.rerun.flags if f["severity"] == "deny")
    assert {group: split[group]["deny_findings"] for group in split if split[group]["deny_findings"]} == by_decision
    before = audit.first.summary["dollars_at_risk"]["deny_by_decision"]
    assert before["pending"]["dollars"] == pytest.approx(
        audit.first.summary["dollars_at_risk"]["by_severity"]["deny"])
    rows = list(load_workbook(audit.rerun.out_dir / REPORT, read_only=True)["Summary"].iter_rows(values_only=True))
    start = next(i for i, r in enumerate(rows)
                 if r and str(r[0]).startswith("Dollars at risk of denial by review decision (each line once"))
    assert rows[start + 1][:4] == ("Decision", "Lines", "Deny findings", "Dollars at risk")
    shown = {r[0]: (r[1], r[2], r[3]) for r in rows[start + 2:start + 6]}
    assert shown["dismissed"] == (3, 3, pytest.approx(split["dismissed"]["dollars"]))
    assert shown["fixed"][:2] == (1, 1) and shown["accepted"][:2] == (1, 1) and shown["pending"][:2] == (2, 2)


def test_the_summary_counts_its_lines_and_claims_on_the_dollars_base_whatever_was_decided(audit):
    deny = [f for f in audit.rerun.flags if f["severity"] == "deny"]
    rows = list(load_workbook(audit.rerun.out_dir / REPORT, read_only=True)["Summary"].iter_rows(values_only=True))
    facts = {r[0]: r[1] for r in rows if r and len(r) > 1 and isinstance(r[0], str)}
    assert facts["Lines with a deny finding"] == len({(f["claim_id"], f["line_number"]) for f in deny})
    assert facts["Claims with a deny finding"] == len({f["claim_id"] for f in deny})
    note = next(r[2] for r in rows if r and r[0] == "Dollars at risk of denial" and len(r) > 2 and r[2])
    assert note.endswith("the Worklist's Dollars at risk add up to it too, less the lines an auditor dismissed "
                         "or marked fixed")


def test_the_decisions_sheet_lists_the_trail(audit):
    rows = sheet_table(audit.rerun.out_dir / REPORT, "Decisions")
    assert [(r["Claim"], r["Line"], r["Rule"], r["Decision"]) for r in rows] == [
        (claim, number, rule, decision) for (claim, number, rule), (decision, *_) in DECISIONS.items()]
    assert [r["Decision #"] for r in rows] == [1, 2, 3, 4, 5]
    standing = rows[0]
    assert standing["Scope"] == STANDING and standing["Reviewer"] == "ann"
    assert standing["Source file"] == "reviewed.xlsx" and isinstance(standing["Source row"], int)
    until = (datetime.now(timezone.utc).date() + timedelta(days=180)).isoformat()
    assert standing["Status"] == f"counts; stands for this rule, code and provider through {until}"
    assert {r["Status"] for r in rows[1:]} == {"counts"}
    assert "0 decisions" in load_workbook(audit.first.out_dir / REPORT, read_only=True)["Decisions"]["A1"].value


def test_only_the_decision_columns_take_typing_and_sort_and_filter_stay_free(audit):
    book = load_workbook(audit.first.out_dir / REPORT)
    sheet = book["Findings"]
    header = [c.value for c in sheet[2]]
    assert header[0] == "Finding id"
    assert header[header.index("Dollars at risk") + 1:header.index("Dollars at risk") + 5] == [
        "Decision", "Reason", "Reviewer", "Scope"]
    assert sheet.protection.sheet and not sheet.protection.sort and not sheet.protection.autoFilter
    assert sheet["A2"].protection.locked and not sheet["A3"].protection.locked  # the header, a row
    validations = {v.type: v for v in sheet.data_validations.dataValidation}
    letter = {name: sheet.cell(2, header.index(name) + 1).column_letter for name in header}
    assert validations["list"].formula1 in ('"pending,accept,dismiss,fixed"', f'"this finding,{STANDING}"')
    lists = {str(v.sqref): v.formula1 for v in sheet.data_validations.dataValidation if v.type == "list"}
    last = len(audit.first.flags) + 2
    assert lists[f"{letter['Decision']}3:{letter['Decision']}{last}"] == '"pending,accept,dismiss,fixed"'
    refused = str(validations["custom"].sqref).split()
    assert f"{letter['Claim']}3:{letter['Claim']}{last}" in refused
    assert not any(r.startswith(letter["Reason"]) for r in refused)
    properties = {p.name: p.value for p in book.custom_doc_props}
    assert properties["claimscrub.batch"] == audit.first.summary["batch_id"]
    assert properties["claimscrub.decisions_through"] == "0"


def test_a_standing_dismissal_applies_to_a_later_batch_for_the_same_rule_code_and_provider(audit):
    found = flag(audit.later, "PTP-A2", 2, "PTP_NO_BYPASS")
    assert found["decision"] == "dismissed (standing, #1)"
    assert (found["decision_reason"], found["reviewer"]) == ("separate sessions, both documented", "ann")
    assert flag(audit.later, "PTP-B2", 2, "PTP_NO_BYPASS")["decision"] == "pending"
    findings = {r["Claim"]: r for r in sheet_table(audit.later.out_dir / REPORT, "Findings")}
    assert findings["PTP-A2"]["Decision"] == "dismissed (standing, #1)"
    assert worklist_claims(audit.later) == {"PTP-B2"}
    decisions = sheet_table(audit.later.out_dir / REPORT, "Decisions")
    assert [(r["Decision #"], r["Claim"], r["Batch"]) for r in decisions] == [
        (1, "PTP-A", audit.first.summary["batch_id"])]
    split = audit.later.summary["dollars_at_risk"]["deny_by_decision"]
    assert split["dismissed"]["dollars"] == float(found["dollars_at_risk"])


def test_a_standing_dismissal_does_not_apply_to_another_code(audit):
    found = flag(audit.other, "FLUORO-A3", 2, "PTP_NO_BYPASS")
    assert found["hcpcs"] == "76000" and found["decision"] == "pending"
    assert worklist_claims(audit.other) == {"FLUORO-A3"}


def test_a_standing_dismissal_lapses_after_its_days(audit, copy_db, tmp_path, monkeypatch):
    today = datetime.now(timezone.utc).date()
    monkeypatch.setenv("CLAIMSCRUB_TODAY", (today + timedelta(days=31)).isoformat())
    export = write_csv(tmp_path / "batch2.csv", BATCH_2)
    lapsed = engine_scrub([export], tmp_path / "lapsed", copy_db, standing_days=30)
    assert lapsed.exit_code == 0, lapsed.stderr
    assert flag(lapsed, "PTP-A2", 2, "PTP_NO_BYPASS")["decision"] == "pending"
    assert worklist_claims(lapsed) == {"PTP-A2", "PTP-B2"}
    # The Decisions sheet says why the finding dismissed the night before is pending tonight: it listed nothing.
    decisions = sheet_table(lapsed.out_dir / REPORT, "Decisions")
    assert [(r["Decision #"], r["Claim"], r["Status"]) for r in decisions] == [
        (1, "PTP-A", f"lapsed: 30 days after {today.isoformat()}")]


def test_a_standing_dismissal_lapses_when_a_newer_release_of_its_table_is_loaded(audit, copy_db, tmp_path):
    loaded = cli("reference", "load", PTP_2026, "--db", copy_db)
    assert loaded.exit_code == 0, loaded.output
    rerun = engine_scrub([write_csv(tmp_path / "batch1.csv", BATCH_1)], tmp_path / "rerun", copy_db)
    later = engine_scrub([write_csv(tmp_path / "batch2.csv", BATCH_2)], tmp_path / "later", copy_db)
    assert flag(later, "PTP-A2", 2, "PTP_NO_BYPASS")["decision"] == "pending"
    assert flag(rerun, "PTP-A", 2, "PTP_NO_BYPASS")["decision"] == "dismiss"  # its own decision still counts
    standing = sheet_table(rerun.out_dir / REPORT, "Decisions")[0]
    assert standing["Status"] == "lapsed: PTP 2026Q3 loaded"


def test_a_release_is_stamped_loaded_in_utc_as_decisions_are_whatever_the_machines_time_zone(tmp_path):
    # West of UTC a release loaded after a dismissal was stamped hours before it, and never lapsed it.
    db = tmp_path / "west.duckdb"
    before = datetime.now(timezone.utc).replace(tzinfo=None)
    loaded = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "reference", "load", str(PTP_2026), "--db", str(db)],
        env={**os.environ, "TZ": "America/Los_Angeles"}, capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    con = duckdb.connect(str(db), read_only=True)
    stamped = con.execute("select max(loaded_at) from ref_releases where release_id = 'PTP 2026Q3'").fetchall()[0][0]
    con.close()
    assert before - timedelta(seconds=1) <= stamped <= datetime.now(timezone.utc).replace(tzinfo=None)


def test_a_later_decision_counts_and_the_earlier_stays_in_the_trail(audit, copy_db):
    changed = decide(audit.rerun.out_dir / REPORT, audit.folder / "second-look.xlsx",
                     {("MUE-1", 1, "MUE_DOS"): ("accept", "on second look", "cara", "this finding")})
    result = cli("review", "import", changed, "--db", copy_db)
    assert result.exit_code == 0, result.output
    # Every other row shows the decision it had: nobody's new decision, not counted.
    assert result.stdout.strip() == "1 decision imported, 0 unchanged, 0 rows refused"
    assert [t[1:] for t in trail(copy_db) if t[1] == "MUE-1"] == [("MUE-1", 1, "MUE_DOS", "dismiss"),
                                                                  ("MUE-1", 1, "MUE_DOS", "accept")]
    again = cli("review", "import", changed, "--db", copy_db)
    assert again.stdout.strip() == "0 decisions imported, 1 unchanged, 0 rows refused"
    assert len(trail(copy_db)) == 6


def test_a_duplicate_whose_other_side_an_auditor_decided_is_told_to_decide_to_match(audit, copy_db, tmp_path):
    # DUP-1 line 2 stays dismissed; line 1 goes back to pending: its copy is gone from the Worklist.
    reopened = decide(audit.rerun.out_dir / REPORT, tmp_path / "reopened.xlsx",
                      {("DUP-1", 1, "DUP_EXACT"): ("pending", None, "bob", "this finding")})
    assert cli("review", "import", reopened, "--db", copy_db).exit_code == 0
    rerun = engine_scrub([write_csv(tmp_path / "batch1.csv", BATCH_1)], tmp_path / "rerun", copy_db)
    row = next(w for w in sheet_table(rerun.out_dir / REPORT, "Worklist") if w["Claim"] == "DUP-1")
    assert row["Line"] == 1 and row["Action"] == "decide to match"
    assert row["Instruction"].startswith("DUP-1 line 1: 99213 repeats DUP-1 line 2 (99213, NPI ")
    assert row["Instruction"].endswith("whose finding of the same repeat an auditor decided: decide this one to "
                                       "match")
    # Set back to pending, the finding has no decision time (INTERFACE.md: empty while pending).
    reopened_flag = flag(rerun, "DUP-1", 1, "DUP_EXACT")
    assert (reopened_flag["decision"], reopened_flag["reviewer"], reopened_flag["decided_at"]) == ("pending", "bob", "")


def test_a_global_whose_other_providers_26_an_auditor_dismissed_is_still_told_to_bill_tc(tmp_path, reference_db):
    """The radiologist's 26 is theirs (its overlap dismissed) and the global's overlap accepted: the global
    still overlaps a 26 that stays, and goes out as TC. It was told to "decide to match", with no fix."""
    db = tmp_path / "claimscrub.duckdb"
    shutil.copyfile(reference_db, db)
    rows = [line("G-1", 1, "PAT-G1", "76120"), line("R-1", 1, "PAT-G1", "76120", npi=B, modifiers="26")]
    export = write_csv(tmp_path / "batch.csv", rows)
    first = engine_scrub([export], tmp_path / "first", db)
    assert [(f["claim_id"], f["rule_id"]) for f in first.flags] == [("G-1", "DUP_COMPONENT"),
                                                                     ("R-1", "DUP_COMPONENT")]
    reviewed = decide(first.out_dir / REPORT, tmp_path / "reviewed.xlsx",
                      {("R-1", 1, "DUP_COMPONENT"): ("dismiss", "the 26 is ours", "ann", "this finding"),
                       ("G-1", 1, "DUP_COMPONENT"): ("accept", None, "ann", "this finding")})
    assert cli("review", "import", reviewed, "--db", db).exit_code == 0
    rerun = engine_scrub([export], tmp_path / "rerun", db)
    worklist = sheet_table(rerun.out_dir / REPORT, "Worklist")
    assert [(w["Claim"], w["Action"]) for w in worklist] == [("G-1", "bill as TC")]
    assert worklist[0]["Instruction"].startswith("G-1 line 1: 76120 global overlaps R-1 line 1 (76120-26, NPI ")
    assert "bill G-1 as 76120-TC" in worklist[0]["Instruction"]


def test_the_same_file_imported_twice_changes_nothing(audit, copy_db):
    before = trail(copy_db)
    again = cli("review", "import", audit.folder / "reviewed.xlsx", "--db", copy_db)
    assert again.exit_code == 0, again.output
    assert again.stdout.strip() == "0 decisions imported, 5 unchanged, 0 rows refused"
    assert trail(copy_db) == before


def _two_copies(audit, copy_db, tmp_path, *decisions: tuple):
    """Each (claim, line, rule, decision, reason, reviewer) filled into a copy of the later batch's report of
    its own, named after its reviewer, and the copies imported by one command."""
    copies = [decide(audit.later.out_dir / REPORT, tmp_path / f"{reviewer}.xlsx",
                     {(claim, line, rule): (decision, reason, reviewer, "this finding")})
              for claim, line, rule, decision, reason, reviewer in decisions]
    return cli("review", "import", *copies, "--db", copy_db)


def test_two_copies_of_one_report_do_not_undo_each_other(audit, copy_db, tmp_path):
    result = _two_copies(audit, copy_db, tmp_path, ("PTP-B2", 2, "PTP_NO_BYPASS", "accept", None, "ann"),
                         ("PTP-A2", 2, "PTP_NO_BYPASS", "fixed", "modifier added", "bob"))
    assert result.stdout.strip() == "2 decisions imported, 0 unchanged, 0 rows refused"
    assert [t[1:] for t in trail(copy_db)[5:]] == [("PTP-B2", 2, "PTP_NO_BYPASS", "accept"),
                                                    ("PTP-A2", 2, "PTP_NO_BYPASS", "fixed")]


def test_two_copies_deciding_one_finding_otherwise_in_one_import_keep_the_first(audit, copy_db, tmp_path):
    # The second copy was written before the first's decision, as when imported one after the other, and is
    # refused on its row.
    both = _two_copies(audit, copy_db, tmp_path, ("PTP-B2", 2, "PTP_NO_BYPASS", "accept", None, "cy"),
                       ("PTP-B2", 2, "PTP_NO_BYPASS", "dismiss", "n/a", "di"))
    assert both.stdout.strip() == "1 decision imported, 0 unchanged, 1 row refused"
    assert "di.xlsx row " in both.stderr and "is already decided by cy.xlsx row " in both.stderr
    assert [t[1:] for t in trail(copy_db)][-1] == ("PTP-B2", 2, "PTP_NO_BYPASS", "accept")


def test_a_standing_dismissal_made_by_one_file_of_an_import_is_not_overruled_by_a_later_file(audit, copy_db,
                                                                                            tmp_path):
    """Ann dismisses B's pair for good on batch 1's report; Bob accepts B's pair of batch 2 on its report, written
    before. Imported one after the other, Bob's row was refused; given to one command, it was stored, and the
    finding read accept instead of dismissed (standing): the outcome hung on how the files were given."""
    ann = decide(audit.rerun.out_dir / REPORT, tmp_path / "ann.xlsx", {
        ("PTP-B", 2, "PTP_NO_BYPASS"): ("dismiss", "separate sessions", "ann", STANDING)})
    bob = decide(audit.later.out_dir / REPORT, tmp_path / "bob.xlsx", {
        ("PTP-B2", 2, "PTP_NO_BYPASS"): ("accept", None, "bob", "this finding")})
    both = cli("review", "import", ann, bob, "--db", copy_db)
    assert both.stdout.strip() == "1 decision imported, 0 unchanged, 1 row refused"
    assert ("bob.xlsx row ") in both.stderr and ("a standing dismissal of its rule, code and provider (ann.xlsx row "
                                                 ) in both.stderr
    assert [t[1:] for t in trail(copy_db)][-1] == ("PTP-B", 2, "PTP_NO_BYPASS", "dismiss")
    # Given the other way round, Bob's decision counts and Ann's standing dismissal then covers the rest.
    fresh = tmp_path / "fresh.duckdb"
    shutil.copyfile(audit.db, fresh)
    other = cli("review", "import", bob, ann, "--db", fresh)
    assert other.stdout.strip() == "2 decisions imported, 0 unchanged, 0 rows refused"


def test_an_old_report_imported_again_does_not_undo_a_decision_made_since(audit, copy_db, tmp_path):
    """reviewed.xlsx (the first report) dismissed MUE-1; on the rerun's report cara accepts it. The first file
    imported again changes nothing; a copy of the first report deciding MUE-1 otherwise is refused on its row,
    not taken over cara's decision unseen."""
    changed = decide(audit.rerun.out_dir / REPORT, tmp_path / "second-look.xlsx",
                     {("MUE-1", 1, "MUE_DOS"): ("accept", "on second look", "cara", "this finding")})
    assert cli("review", "import", changed, "--db", copy_db).exit_code == 0
    again = cli("review", "import", audit.folder / "reviewed.xlsx", "--db", copy_db)
    assert again.stdout.strip() == "0 decisions imported, 5 unchanged, 0 rows refused"
    stale = decide(audit.first.out_dir / REPORT, tmp_path / "old-copy.xlsx",
                   {("MUE-1", 1, "MUE_DOS"): ("fixed", "units corrected", "dan", "this finding")})
    refused = cli("review", "import", stale, "--db", copy_db)
    assert refused.stdout.strip() == "0 decisions imported, 0 unchanged, 1 row refused"
    assert "was decided again (decision #6) after this report was written: decide it on a report written since" \
        in refused.stderr
    assert [t[1:] for t in trail(copy_db) if t[1] == "MUE-1"][-1] == ("MUE-1", 1, "MUE_DOS", "accept")


def test_a_decision_is_stored_as_its_reviewers_only_once_and_only_in_the_scopes_the_sheet_offers(audit, copy_db,
                                                                                                  tmp_path):
    """The report fills Reason and Reviewer with the decision it shows. A Decision changed under them would be
    stored as that reviewer's; a row copied and decided otherwise would be decided by whichever sorts first; the
    stored word `standing` typed past the drop-down would stand; a row still showing a standing dismissal
    decides nothing, whatever was typed beside it. Each is refused on its row, and nothing of it is stored."""
    def import_(book):
        return cli("review", "import", book, "--db", copy_db)

    def copy_row(claim):
        def change(sheet, columns):
            source = next(r for r in range(3, sheet.max_row + 1) if sheet.cell(r, columns["Claim"]).value == claim)
            target = sheet.max_row + 1
            for column in range(1, sheet.max_column + 1):
                sheet.cell(target, column).value = sheet.cell(source, column).value
            for row, decision, reason, reviewer in ((source, "accept", None, "gil"),
                                                    (target, "dismiss", "billed elsewhere", "hal")):
                for name, value in (("Decision", decision), ("Reason", reason), ("Reviewer", reviewer)):
                    sheet.cell(row, columns[name]).value = value
        return change

    before = trail(copy_db)
    # bob accepted BOTH-1; a new Decision left under bob's name and his (empty) reason.
    book = decide(audit.rerun.out_dir / REPORT, tmp_path / "rerun.xlsx", {
        ("BOTH-1", 1, "MOD_26_AND_TC"): ("fixed", None, "bob", "this finding"),
        ("PTP-B", 2, "PTP_NO_BYPASS"): ("dismiss", "documented", "gil", "standing")}, change=copy_row("GLOBAL-1"))
    result = import_(book)
    assert result.stdout.strip() == "0 decisions imported, 0 unchanged, 4 rows refused"
    said = result.stderr
    assert ("its Decision is 'fixed' now, but its Reason and Reviewer are still those of the 'accept' by bob the "
            "report showed: type who decides it, and why") in said
    assert re.search(r"rerun\.xlsx row \d+: finding [0-9a-f]{16} is decided differently on rows \d+, \d+: keep "
                     r"one of them", said) and said.count("is decided differently on rows") == 2
    assert "scope 'standing' is not one of: this finding; this rule for this code and provider" in said
    assert trail(copy_db) == before
    # ann's dismissal of MUE-1 for this finding alone, its Scope changed to stand for the code and provider under
    # her name and reason: a standing dismissal she never made. And her standing one (PTP-A) ended the same way.
    rescoped = decide(audit.rerun.out_dir / REPORT, tmp_path / "rescoped.xlsx", {
        ("MUE-1", 1, "MUE_DOS"): ("dismiss", "two sessions documented", "ann", STANDING),
        ("PTP-A", 2, "PTP_NO_BYPASS"): ("dismiss", "separate sessions, both documented", "ann", "this finding")})
    result = import_(rescoped)
    assert result.stdout.strip() == "0 decisions imported, 0 unchanged, 2 rows refused", result.output
    assert (f"its Scope is '{STANDING}' now, but its Reason and Reviewer are still those of the 'dismiss' by ann "
            "the report showed: type who decides it, and why") in result.stderr
    assert ("its Scope is 'this finding' now, but its Reason and Reviewer are still those of the 'dismiss' by ann"
            in result.stderr)
    assert trail(copy_db) == before
    # The same reviewer changing a decision says why: taken.
    book = decide(audit.rerun.out_dir / REPORT, tmp_path / "rerun-why.xlsx", {
        ("BOTH-1", 1, "MOD_26_AND_TC"): ("fixed", "26 and TC billed apart now", "bob", "this finding")})
    assert import_(book).stdout.strip() == "1 decision imported, 0 unchanged, 0 rows refused"
    # PTP-A2 shows ann's standing dismissal (#1): its Reason edited beside it; its Decision changed under her name.
    later = decide(audit.later.out_dir / REPORT, tmp_path / "later.xlsx", {
        ("PTP-A2", 2, "PTP_NO_BYPASS"): ("dismissed (standing, #1)", "not for this one", "ann", STANDING)})
    edited = import_(later)
    assert edited.stdout.strip() == "0 decisions imported, 0 unchanged, 1 row refused"
    assert ("its Decision still reads 'dismissed (standing, #1)', so its other cells decide nothing: to decide "
            "this finding alone, type accept, dismiss or fixed and set its Scope to 'this finding'") in edited.stderr
    overruled = decide(audit.later.out_dir / REPORT, tmp_path / "later-accept.xlsx", {
        ("PTP-A2", 2, "PTP_NO_BYPASS"): ("accept", DECISIONS[("PTP-A", 2, "PTP_NO_BYPASS")][1], "ann",
                                         "this finding")})
    assert "still those of the 'dismiss' by ann the report showed" in import_(overruled).stderr
    # dan dismisses B's pair for good on the rerun's report (batch 1); the later batch's report, written before,
    # cannot overrule that for B's pair there unseen.
    standing = decide(audit.rerun.out_dir / REPORT, tmp_path / "standing.xlsx", {
        ("PTP-B", 2, "PTP_NO_BYPASS"): ("dismiss", "separate sessions", "dan", STANDING)})
    assert import_(standing).stdout.strip() == "1 decision imported, 0 unchanged, 0 rows refused"
    newest = trail(copy_db)[-1][0]
    old = decide(audit.later.out_dir / REPORT, tmp_path / "old.xlsx", {
        ("PTP-B2", 2, "PTP_NO_BYPASS"): ("accept", None, "eve", "this finding")})
    refused = import_(old)
    assert refused.stdout.strip() == "0 decisions imported, 0 unchanged, 1 row refused"
    assert (f"a standing dismissal of its rule, code and provider (decision #{newest}) was made after this report "
            "was written: decide it on a report written since") in refused.stderr
    assert trail(copy_db)[-1][0] == newest


def test_a_standing_dismissal_of_a_later_batch_leaves_an_earlier_batchs_report_free(audit, copy_db, tmp_path):
    """A standing dismissal covers its own batch and the later ones: made on batch 2's report, it covers none of
    batch 1's findings, so batch 1's report, written before it, overrules nothing by deciding one (it was
    refused as if it did)."""
    standing = decide(audit.later.out_dir / REPORT, tmp_path / "standing.xlsx", {
        ("PTP-B2", 2, "PTP_NO_BYPASS"): ("dismiss", "separate sessions", "dan", STANDING)})
    assert cli("review", "import", standing, "--db", copy_db).exit_code == 0
    old = decide(audit.rerun.out_dir / REPORT, tmp_path / "old.xlsx", {
        ("PTP-B", 2, "PTP_NO_BYPASS"): ("accept", None, "eve", "this finding")})
    result = cli("review", "import", old, "--db", copy_db)
    assert result.stdout.strip() == "1 decision imported, 0 unchanged, 0 rows refused", result.output
    assert trail(copy_db)[-1][1:] == ("PTP-B", 2, "PTP_NO_BYPASS", "accept")


def test_a_sorted_and_filtered_workbook_imports_fine(audit, copy_db, tmp_path):
    def resort_and_filter(sheet, columns):
        rows = [[c.value for c in row] for row in sheet.iter_rows(min_row=3)]
        for at, values in enumerate(sorted(rows, key=lambda r: r[columns["Claim"] - 1], reverse=True), 3):
            for column, value in enumerate(values, 1):
                sheet.cell(at, column).value = value
        sheet.auto_filter.add_filter_column(columns["Rule"] - 1, ["PTP_NO_BYPASS"])
        for at in range(3, sheet.max_row + 1):
            sheet.row_dimensions[at].hidden = sheet.cell(at, columns["Rule"]).value != "PTP_NO_BYPASS"

    sorted_book = decide(audit.later.out_dir / REPORT, tmp_path / "sorted.xlsx",
                         {("PTP-B2", 2, "PTP_NO_BYPASS"): ("dismiss", "distinct session", "dee", "this finding")},
                         change=resort_and_filter)
    result = cli("review", "import", sorted_book, "--db", copy_db)
    assert result.stdout.strip() == "1 decision imported, 0 unchanged, 0 rows refused"
    assert trail(copy_db)[-1][1:] == ("PTP-B2", 2, "PTP_NO_BYPASS", "dismiss")


def test_a_report_renamed_xls_or_with_rows_put_above_its_header_imports(audit, copy_db, tmp_path):
    def rows_above(sheet, columns):
        sheet.insert_rows(1, 4)

    renamed = decide(audit.later.out_dir / REPORT, tmp_path / "report.xlsx",
                     {("PTP-B2", 2, "PTP_NO_BYPASS"): ("dismiss", "distinct session", "dee", "this finding")},
                     change=rows_above)
    renamed = renamed.rename(tmp_path / "report.xls")
    result = cli("review", "import", renamed, "--db", copy_db)
    assert result.stdout.strip() == "1 decision imported, 0 unchanged, 0 rows refused", result.output
    assert trail(copy_db)[-1][1:] == ("PTP-B2", 2, "PTP_NO_BYPASS", "dismiss")


def test_an_edited_finding_id_is_refused_row_by_row_with_its_row_number(audit, copy_db, tmp_path):
    rows = {}

    def edit_ids(sheet, columns):
        ids = {sheet.cell(r, columns["Claim"]).value: (r, sheet.cell(r, columns["Finding id"]).value)
               for r in range(3, sheet.max_row + 1)}
        rows.update(ids)
        sheet.cell(ids["PTP-B2"][0], columns["Finding id"]).value = "0123456789abcdef"
        sheet.cell(ids["PTP-A2"][0], columns["Finding id"]).value = ids["PTP-B2"][1]  # another row's id

    edited = decide(audit.later.out_dir / REPORT, tmp_path / "edited.xlsx",
                    {("PTP-B2", 2, "PTP_NO_BYPASS"): ("accept", None, "eve", "this finding"),
                     ("PTP-A2", 2, "PTP_NO_BYPASS"): ("accept", None, "eve", "this finding")}, change=edit_ids)
    before = trail(copy_db)
    result = cli("review", "import", edited, "--db", copy_db)
    assert result.exit_code == 0
    assert result.stdout.strip() == "0 decisions imported, 0 unchanged, 2 rows refused"
    refused = result.stderr.strip().splitlines()
    b2_row, a2_row = rows["PTP-B2"][0], rows["PTP-A2"][0]
    assert f"claimscrub: edited.xlsx row {b2_row}: finding id 0123456789abcdef is not a finding of this " \
           "report's batch" in refused
    assert any(r.startswith(f"claimscrub: edited.xlsx row {a2_row}: finding id {rows['PTP-B2'][1]} is claim "
                            "PTP-B2 line 2 PTP_NO_BYPASS, not the row's claim PTP-A2") for r in refused)
    assert trail(copy_db) == before


def test_a_decision_short_of_what_it_needs_is_refused(audit, copy_db, tmp_path):
    wanting = decide(audit.later.out_dir / REPORT, tmp_path / "wanting.xlsx", {
        ("PTP-B2", 2, "PTP_NO_BYPASS"): ("dismiss", None, "fay", "this finding"),
        ("PTP-A2", 2, "PTP_NO_BYPASS"): ("accept", None, "fay", STANDING)})
    result = cli("review", "import", wanting, "--db", copy_db)
    assert result.stdout.strip() == "0 decisions imported, 0 unchanged, 2 rows refused"
    assert "a dismissal needs a reason" in result.stderr
    assert "only a dismissal can stand for the rule, code and provider" in result.stderr
    # A formula typed into a cell (=bob) is saved as the error Excel gives it: no reviewer, and no reason.
    errors = decide(audit.later.out_dir / REPORT, tmp_path / "errors.xlsx", {
        ("PTP-B2", 2, "PTP_NO_BYPASS"): ("accept", None, "#NAME?", "this finding"),
        ("PTP-A2", 2, "PTP_NO_BYPASS"): ("dismiss", "#NAME?", "fay", "this finding")})
    refused = cli("review", "import", errors, "--db", copy_db)
    assert refused.stdout.strip() == "0 decisions imported, 0 unchanged, 2 rows refused"
    assert "its Reviewer cell holds the error #NAME? (a formula, such as =name): type the value itself" \
        in refused.stderr
    assert "its Reason cell holds the error #NAME?" in refused.stderr
    # A decision typed one cell off, into Reason, was stored as a pending one and counted as imported.
    shifted = decide(audit.later.out_dir / REPORT, tmp_path / "shifted.xlsx", {
        ("PTP-B2", 2, "PTP_NO_BYPASS"): (None, "Dismiss", "fay", "this finding")})
    off = cli("review", "import", shifted, "--db", copy_db)
    assert off.stdout.strip() == "0 decisions imported, 0 unchanged, 1 row refused"
    assert "its Reason is 'Dismiss' and its Decision is empty: type the decision in the Decision column" in off.stderr


def test_a_report_from_another_database_is_refused_and_nothing_is_stored(audit, copy_db, db_path, tmp_path):
    elsewhere = engine_scrub([write_csv(tmp_path / "batch1.csv", BATCH_1)], tmp_path / "elsewhere", db_path)
    foreign = decide(elsewhere.out_dir / REPORT, tmp_path / "foreign.xlsx", DECISIONS)
    good = decide(audit.later.out_dir / REPORT, tmp_path / "good.xlsx",
                  {("PTP-B2", 2, "PTP_NO_BYPASS"): ("accept", None, "gil", "this finding")})
    before = trail(copy_db)
    result = cli("review", "import", good, foreign, "--db", copy_db)
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"claimscrub: {foreign}: a report written from another claimscrub database; "
                                     "import it into the database that scrubbed it (--db)")
    assert trail(copy_db) == before


@pytest.mark.parametrize("kind", ["csv", "plain workbook", "text named xlsx", "missing", "folder"])
def test_a_file_that_is_not_a_report_is_refused_with_one_line_and_exit_2(audit, copy_db, tmp_path, kind):
    path = tmp_path / ("flags.csv" if kind == "csv" else "book.xlsx")
    if kind == "folder":
        path.mkdir()
    elif kind == "csv":
        shutil.copyfile(audit.rerun.out_dir / "flags.csv", path)
    elif kind == "plain workbook":
        book = Workbook()
        book.active.title = "Findings"
        book.active.append(["Finding id", "Decision"])
        book.save(path)
    elif kind == "text named xlsx":
        path.write_text("Finding id,Decision\n")
    good = decide(audit.later.out_dir / REPORT, tmp_path / "good.xlsx",
                  {("PTP-B2", 2, "PTP_NO_BYPASS"): ("accept", None, "hal", "this finding")})
    before = trail(copy_db)
    result = cli("review", "import", good, path, "--db", copy_db)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and str(path) in result.stderr
    assert {"missing": "file not found", "folder": "is a folder, not a claimscrub denial-risk report"}.get(
        kind, "not a claimscrub denial-risk report") in result.stderr
    assert trail(copy_db) == before and result.stdout == ""


def test_a_workbook_saved_by_libreoffice_imports(audit, copy_db, tmp_path):
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None:
        pytest.skip("LibreOffice (soffice) is not installed: apt-get install libreoffice-calc")
    decided = decide(audit.later.out_dir / REPORT, tmp_path / "decided.xlsx",
                     {("PTP-B2", 2, "PTP_NO_BYPASS"): ("dismiss", "distinct session", "ivy", STANDING)})
    converted = tmp_path / "libreoffice"
    # A profile of its own: LibreOffice refuses to start while another process uses the default one.
    subprocess.run([soffice, f"-env:UserInstallation={(tmp_path / 'profile').as_uri()}", "--headless",
                    "--convert-to", "xlsx", "--outdir", str(converted), str(decided)],
                   check=True, capture_output=True, timeout=180)
    result = cli("review", "import", converted / "decided.xlsx", "--db", copy_db)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "1 decision imported, 0 unchanged, 0 rows refused"
    assert trail(copy_db)[-1][1:] == ("PTP-B2", 2, "PTP_NO_BYPASS", "dismiss")


def test_review_import_takes_the_database_lock_every_writer_takes(audit, copy_db):
    holder = duckdb.connect(str(copy_db))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "review", "import", str(audit.folder / "reviewed.xlsx"),
             "--db", str(copy_db)], capture_output=True, text=True, timeout=120,
            env={**os.environ, "CLAIMSCRUB_LOCK_TIMEOUT": "0.5"})
    finally:
        holder.close()
    assert result.returncode == 1
    assert "is in use by another process; gave up after 0.5 s" in result.stderr


def test_a_dismissed_finding_the_payer_denied_is_a_dismissal_it_did_not_agree_with(audit, copy_db, tmp_path):
    remittance = write_835(tmp_path / "remit.835", BATCH_1, {("MUE-1", 1): [("CO", "151")],
                                                            ("DUP-1", 2): [("OA", "18")],
                                                            ("PTP-B", 2): [("CO", "97")]})
    assert cli("remit", remittance, "--db", copy_db).exit_code == 0
    result = cli("feedback", "--out", tmp_path / "feedback", "--db", copy_db)
    assert result.exit_code == 0, result.output
    assert "2 dismissals the payer did not agree with" in result.stdout
    overruled = read_csv(tmp_path / "feedback" / "overruled_dismissals.csv")
    assert [(r["claim_id"], r["line_number"], r["rule_id"], r["decision"], r["reviewer"], r["carc"])
            for r in overruled] == [("DUP-1", "2", "DUP_EXACT", "dismiss", "bob", "18"),
                                    ("MUE-1", "1", "MUE_DOS", "dismiss", "ann", "151")]
    outcomes = {r["rule_id"]: r for r in read_csv(tmp_path / "feedback" / "rule_outcomes.csv")}
    assert (outcomes["MUE_DOS"]["dismissed_lines"], outcomes["MUE_DOS"]["dismissed_denied"]) == ("1", "1")
    ptp = outcomes["PTP_NO_BYPASS"]
    assert (ptp["dismissed_lines"], ptp["dismissed_denied"]) == ("1", "0")
    # DUP-1 line 1 was marked fixed and the payer paid the corrected line: it is counted apart, not as a false
    # alarm of the rule (whose other line, DUP-1 line 2, the payer denied).
    dup = outcomes["DUP_EXACT"]
    assert (dup["flagged_lines"], dup["denied_lines"], dup["fixed_lines"], dup["observed_precision"]) == \
        ("2", "1", "1", "1.0")
    rows = list(load_workbook(tmp_path / "feedback" / "payer-feedback.xlsx", read_only=True)["Payer feedback"]
                .iter_rows(values_only=True))
    assert rows[0][0].startswith("Dismissals the payer did not agree with")
    assert {(r[0], r[3]) for r in rows[2:4]} == {("DUP-1", "DUP_EXACT"), ("MUE-1", "MUE_DOS")}


def test_feedback_counts_standing_dismissals_as_of_the_runs_day(audit, copy_db, tmp_path, monkeypatch):
    """`feedback` read today's date where a scrub reads CLAIMSCRUB_TODAY: pinned past a standing dismissal's
    lapse, the scrub's Payer feedback sheet and the command's files disagreed on the same database."""
    # PTP-A2 (the later batch) is covered by ann's standing dismissal of PTP-A's pair.
    remittance = write_835(tmp_path / "remit.835", BATCH_2, {("PTP-A2", 2): [("CO", "97")]})
    assert cli("remit", remittance, "--db", copy_db).exit_code == 0

    def overruled(day: date, name: str) -> list[tuple]:
        monkeypatch.setenv("CLAIMSCRUB_TODAY", day.isoformat())
        assert cli("feedback", "--out", tmp_path / name, "--db", copy_db).exit_code == 0
        return [(r["claim_id"], r["rule_id"], r["decision"])
                for r in read_csv(tmp_path / name / "overruled_dismissals.csv")]

    today = datetime.now(timezone.utc).date()
    assert overruled(today, "now") == [("PTP-A2", "PTP_NO_BYPASS", "dismissed (standing, #1)")]
    # 181 days on, ann's standing dismissal (made today, 180 days by default) has lapsed.
    assert overruled(today + timedelta(days=181), "later") == []


@pytest.mark.slow  # a per-shard site of its own: the slow tier (CI runs it)
def test_a_per_shard_site_imports_the_same_decisions_and_shows_them_on_the_rerun(audit, tmp_path_factory,
                                                                                  reference_db):
    with module_site(tmp_path_factory, reference_db, "audit-shards") as (folder, db):
        assert cli("db", "init", "--db", db, "--shards", 3, "--layout", "per-shard").exit_code == 0
        _, imported, rerun = reviewed_and_rerun(folder, db, scrub)
        assert imported.stdout == audit.imported, imported.stderr
        assert rerun.exit_code == 0, rerun.stderr
    decided = lambda run: sorted((f["claim_id"], f["line_number"], f["rule_id"], f["decision"],  # noqa: E731
                                  f["decision_reason"], f["reviewer"]) for f in run.flags)
    assert decided(rerun) == decided(audit.rerun)
    assert worklist_claims(rerun) == worklist_claims(audit.rerun)


def test_a_line_counts_once_under_its_most_telling_decision_and_each_finding_under_its_own():
    """A line with a pending deny finding and a dismissed one (a standing dismissal of one rule) is a pending
    line, its dollars once; its findings are one pending and one dismissed, as flags.csv shows them."""
    con = duckdb.connect()
    con.execute("create table finding_rows (line_id bigint, severity varchar, dollars_at_risk decimal(14,2), "
                "decision_group varchar)")
    con.executemany("insert into finding_rows values (?, ?, ?, ?)", [
        (1, "deny", 88.31, "pending"), (1, "deny", 88.31, "dismissed"),
        (2, "deny", 18.11, "dismissed"), (3, "review", 50.00, "pending"),
        (4, "deny", 10.00, "fixed"), (4, "deny", 10.00, "accepted")])
    split = decision_split(con)
    assert {group: (c["lines"], c["deny_findings"], round(c["dollars"], 2)) for group, c in split.items()} == {
        "pending": (1, 1, 88.31), "accepted": (1, 1, 10.00), "fixed": (0, 1, 0), "dismissed": (1, 2, 18.11)}


# A scrub and an import or remittance of its own: the slow tier (CI runs it).
@pytest.mark.slow
def test_a_finding_on_a_claim_id_ending_in_a_tab_or_holding_a_control_character_can_be_decided(copy_db, tmp_path):
    """The report shows `TAB-1<tab>` as it was read, and a control character as U+FFFD; reading the cell back
    strips the tab. Compared as the report shows them, both findings are decided (they were refused as another
    claim's, and could never be decided)."""
    rows = [line(claim, number, patient, code, dos="2024-08-21")
            for claim, patient in (("TAB-1\t", "PAT-T"), ("CTL\x0b1", "PAT-C"))
            for number, code in ((1, "92611"), (2, "76120"))]
    run = engine_scrub([write_csv(tmp_path / "odd.csv", rows)], tmp_path / "odd", copy_db)
    assert run.exit_code == 0, run.stderr
    book = decide(run.out_dir / REPORT, tmp_path / "odd.xlsx", {
        ("TAB-1\t", 2, "PTP_NO_BYPASS"): ("accept", None, "ann", "this finding"),
        ("CTL\ufffd1", 2, "PTP_NO_BYPASS"): ("accept", None, "ann", "this finding")})
    result = cli("review", "import", book, "--db", copy_db)
    assert result.stdout.strip() == "2 decisions imported, 0 unchanged, 0 rows refused", result.output
    assert [t[1:] for t in trail(copy_db)[-2:]] == [("TAB-1\t", 2, "PTP_NO_BYPASS", "accept"),
                                                   ("CTL\x0b1", 2, "PTP_NO_BYPASS", "accept")]


def test_a_report_showing_decisions_the_database_never_made_is_refused(audit, copy_db, tmp_path):
    """A report's decisions_through set past the database's newest decision (edited, or written from a copy of the
    database that went on) would let its rows overrule decisions it never showed."""
    def tampered(sheet, columns):
        for prop in sheet.parent.custom_doc_props:
            if prop.name == "claimscrub.decisions_through":
                prop.value = "999"

    edited = decide(audit.later.out_dir / REPORT, tmp_path / "edited.xlsx", {
        ("PTP-B2", 2, "PTP_NO_BYPASS"): ("dismiss", "documented", "fay", "this finding")}, change=tampered)
    result = cli("review", "import", edited, "--db", copy_db)
    assert result.exit_code == 2
    assert "its report shows decisions up to #999, but this database's newest is #" in result.stderr


def test_the_findings_sheet_filtered_by_decision_gives_the_summarys_split(tmp_path_factory, reference_db):
    """Two copies of 76120: each line has DUP_COMPONENT and MUE_DOS. Line 1's duplicate is dismissed for this
    finding only, so the line counts as pending (its MUE_DOS is). The "Line counted once" mark sat on the line's
    first deny finding, the dismissed one: the Findings sheet filtered by Decision gave dismissed $106.42 where
    the Summary said $0.00."""
    with module_site(tmp_path_factory, reference_db, "split") as (folder, db):
        export = write_csv(folder / "copies.csv", [line("COPY-1", 1, "PAT-C", "76120"),
                                                   line("COPY-1", 2, "PAT-C", "76120")])
        first = engine_scrub([export], folder / "first", db)
        reviewed = decide(first.out_dir / REPORT, folder / "reviewed.xlsx",
                          {("COPY-1", 1, "DUP_COMPONENT"): ("dismiss", "checked", "ann", "this finding")})
        assert cli("review", "import", reviewed, "--db", db).exit_code == 0
        rerun = engine_scrub([export], folder / "rerun", db)
    split = rerun.summary["dollars_at_risk"]["deny_by_decision"]
    assert (split["pending"]["lines"], split["dismissed"]["lines"], split["dismissed"]["dollars"]) == (2, 0, 0.0)
    findings = sheet_table(rerun.out_dir / REPORT, "Findings")
    rows = list(load_workbook(rerun.out_dir / REPORT, read_only=True)["Summary"].iter_rows(values_only=True))
    note = {r[0]: (r[1], r[2]) for r in rows if r and isinstance(r[0], str) and r[0].startswith("Review decision ")}
    assert set(note) == {f"Review decision {group}" for group in split}
    words = {"pending": {"pending"}, "accepted": {"accept"}, "fixed": {"fixed"}, "dismissed": {"dismiss"}}
    for group, counts in split.items():
        dollars, described = note[f"Review decision {group}"]
        assert dollars == pytest.approx(counts["dollars"])
        assert described.startswith("Severity = deny, Line counted once = yes, Decision = ")
        shown = sum(f["Dollars at risk"] for f in findings if f["Severity"] == "deny"
                    and f["Line counted once"] == "yes" and f["Decision"] in words[group])
        assert shown == pytest.approx(counts["dollars"]), group
