"""The denial-risk workbook, built in openpyxl's streaming (write-only) mode.

No value from an input ever becomes a formula: every text cell is written as a string cell, whatever it
starts with.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font, PatternFill

from .feedback import add_feedback_sheet

EXCEL_MAX_ROWS = 1_048_576
MONEY = '"$"#,##0.00'
SEVERITY_FILL = {
    "deny": PatternFill("solid", fgColor="F8CBAD"),
    "review": PatternFill("solid", fgColor="FFE699"),
    "info": PatternFill("solid", fgColor="DDEBF7"),
}
MONEY_COLUMNS = {"dollars_at_risk", "expected_allowed", "unit_fee", "amount"}


def text_cell(sheet, value):
    """A cell that shows exactly the value; a string is never parsed as a formula."""
    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, str) and cell.data_type != "s":
        cell.data_type = "s"
    return cell


def typed_cell(sheet, column: str, value):
    if isinstance(value, Decimal):
        value = float(value)
    cell = text_cell(sheet, value)
    if column in MONEY_COLUMNS and isinstance(value, (int, float)):
        cell.number_format = MONEY
    elif isinstance(value, date):
        cell.number_format = "yyyy-mm-dd"
    return cell


def header_row(sheet, names):
    row = []
    for name in names:
        cell = text_cell(sheet, name)
        cell.font = Font(bold=True)
        row.append(cell)
    return row


def _summary_sheet(book: Workbook, summary: dict) -> None:
    sheet = book.create_sheet("Summary")
    sheet.column_dimensions["A"].width = 34
    sheet.column_dimensions["B"].width = 22
    title = text_cell(sheet, "claimscrub denial-risk report")
    title.font = Font(bold=True, size=14)
    sheet.append([title])
    rows = [
        ("Rows read", summary["rows_read"]),
        ("Lines scrubbed", summary["lines_scrubbed"]),
        ("Rows quarantined", summary["rows_quarantined"]),
        ("Findings", summary["findings"]["total"]),
    ]
    for severity in ("deny", "review", "info"):
        rows.append((f"Findings: {severity}", summary["findings"]["by_severity"].get(severity, 0)))
    for severity in ("deny", "review", "info"):
        rows.append((f"Dollars at risk: {severity}", summary["dollars_at_risk"]["by_severity"].get(severity, 0.0)))
    for label, value in rows:
        cell = typed_cell(sheet, "amount" if label.startswith("Dollars") else "", value)
        sheet.append([text_cell(sheet, label), cell])
    sheet.append([])
    sheet.append(header_row(sheet, ["Input file", "Rows read", "sha256"]))
    for f in summary["files"]:
        sheet.append([text_cell(sheet, f["file"]), f["rows_read"], text_cell(sheet, f["sha256"])])
    sheet.append([])
    sheet.append(header_row(sheet, ["Reference release", "Table", "Effective"]))
    for r in summary["reference_releases"]:
        sheet.append([text_cell(sheet, r["release"]), text_cell(sheet, r["table"]),
                      text_cell(sheet, f'{r["effective_start"]} to {r["effective_end"]}')])


def _findings_sheet(book: Workbook, columns: list[str], rows) -> None:
    sheet = book.create_sheet("Findings")
    sheet.freeze_panes = "A2"
    severity_at = columns.index("severity")
    limit = EXCEL_MAX_ROWS - 2
    sheet.append(header_row(sheet, columns))
    written = 0
    for row in rows:
        if written >= limit:
            sheet.append([text_cell(sheet, f"More findings than a sheet holds: see flags.csv for all {len(rows):,}.")])
            break
        cells = [typed_cell(sheet, name, value) for name, value in zip(columns, row)]
        fill = SEVERITY_FILL.get(row[severity_at])
        if fill is not None:
            cells[severity_at].fill = fill
        sheet.append(cells)
        written += 1
    sheet.auto_filter.ref = f"A1:{_column_letter(len(columns))}{written + 1}"


def _column_letter(n: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(n)


def build_workbook(path: Path, summary: dict, columns: list[str], findings: list, feedback=None) -> None:
    book = Workbook(write_only=True)
    _summary_sheet(book, summary)
    _findings_sheet(book, columns, findings)
    if feedback:
        add_feedback_sheet(book, feedback)
    book.save(path)
