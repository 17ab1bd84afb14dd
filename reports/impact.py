"""The rejudge workbook: what a newer reference release changes for claims already judged. A pure function
of the impact tables (assets/rejudge.py): a Summary of the dollars newly at risk by release and rule, the
claims to review for recoupment, and every finding that changed, as impact.csv holds them."""

from __future__ import annotations

from pathlib import Path

from openpyxl import Workbook

from assets.coverage import counted

from .workbook import EXCEL_MAX_ROWS, Column, Table, table_sheet

IMPACT_WORKBOOK = "rejudge-impact.xlsx"

BY_RELEASE = [
    Column("release", "Release that caused it", 22),
    Column("rule_id", "Rule", 26),
    Column("appear", "Findings appearing", 18, "number"),
    Column("disappear", "Findings disappearing", 20, "number"),
    Column("change_severity", "Severity changed", 16, "number"),
    Column("change_dollars", "Dollars changed", 15, "number"),
    Column("dollars_newly_at_risk", "Dollars newly at risk of denial", 28, "money"),
    Column("dollars_no_longer_at_risk", "Dollars no longer at risk", 24, "money"),
]
CLAIMS = [
    Column("claim_id", "Claim", 14),
    Column("patient", "Patient", 16),
    Column("payer", "Payer", 20),
    Column("providers", "Provider NPI", 13),
    Column("date_of_service", "Date of service", 15, "date"),
    Column("dollars_newly_at_risk", "Dollars newly at risk", 20, "money"),
    Column("dollars_no_longer_at_risk", "Dollars no longer at risk", 23, "money"),
    Column("appear", "Findings appearing", 18, "number"),
    Column("disappear", "Findings disappearing", 20, "number"),
    Column("changed", "Findings changed", 16, "number"),
    Column("rules_appearing", "Rules appearing", 30, wrap=True),
    Column("releases", "Releases that caused them", 30, wrap=True),
    Column("batch_id", "Batch", 24),
]
CHANGES = [
    Column("claim_id", "Claim", 14),
    Column("line_number", "Line", 6, "number"),
    Column("date_of_service", "Date of service", 15, "date"),
    Column("hcpcs", "Code", 8),
    Column("rule_id", "Rule", 26),
    Column("change", "Change", 11),
    Column("severity_then", "Severity then", 13, "severity"),
    Column("severity_now", "Severity now", 13, "severity"),
    Column("dollars_then", "Dollars then", 13, "money"),
    Column("dollars_now", "Dollars now", 13, "money"),
    Column("dollars_newly_at_risk", "Newly at risk", 14, "money"),
    Column("caused_by", "Caused by", 16),
    Column("ptp_release_then", "PTP then", 12),
    Column("ptp_release_now", "PTP now", 12),
    Column("mue_release_then", "MUE then", 12),
    Column("mue_release_now", "MUE now", 12),
    Column("rvu_release_then", "RVU then", 10),
    Column("rvu_release_now", "RVU now", 10),
    Column("aoc_release_then", "AOC then", 12),
    Column("aoc_release_now", "AOC now", 12),
    Column("message", "Explanation", 90),
    Column("finding_id", "Finding id", 18),
    Column("batch_id", "Batch", 24),
]


def write_impact_workbook(path: Path, counts: dict, by_release: tuple[list[str], list[tuple]],
                          claims: tuple[list[str], list[tuple]], changes: tuple[list[str], list[tuple]]) -> None:
    """Summary, Claims and Changes sheets of one rejudgement; `counts` says what it covered and found."""
    book = Workbook(write_only=True)
    releases = ", ".join(counts["releases"]) or "no release"
    table_sheet(
        book, "Summary", BY_RELEASE, Table(*by_release),
        caption=(f"Stored lines dated on or after {counts['since']} ({counted(counts['lines'], 'line')}, "
                 f"{counts['batches']:,} batch{'es' if counts['batches'] != 1 else ''}), judged again under "
                 f"{releases}. Findings: {counts['appears']:,} "
                 f"appear, {counts['disappears']:,} disappear, {counts['severity']:,} change severity, "
                 f"{counts['dollars']:,} change dollars; ${counts['dollars_newly_at_risk']:,.2f} newly at risk "
                 f"of denial, ${counts['dollars_no_longer_at_risk']:,.2f} no longer. By release and rule "
                 "(a line whose findings of two rules move counts under each):"),
        overflow="{shown:,} of {total:,} releases and rules", max_rows=EXCEL_MAX_ROWS)
    table_sheet(
        book, "Claims", CLAIMS, Table(*claims),
        caption="{total:,} claims to review for recoupment: those whose findings change, most dollars newly at "
                "risk of denial first.",
        overflow="This sheet holds the first {shown:,} of {total:,} claims (Excel's row limit): impact.csv has "
                 "every change.", max_rows=EXCEL_MAX_ROWS)
    table_sheet(
        book, "Changes", CHANGES, Table(*changes),
        caption="{total:,} findings that appear, disappear or change, as impact.csv holds them.",
        overflow="This sheet holds the first {shown:,} of {total:,} changes (Excel's row limit): impact.csv has "
                 "every change.", max_rows=EXCEL_MAX_ROWS, fit_width=False)
    book.save(path)
