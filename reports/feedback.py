"""The `Payer feedback` sheet: dismissals the payer overruled, rule outcomes, missed denials and denial patterns,
one view under another.

A pure function of the views, usable on any openpyxl workbook (streaming or not); input values are written
as plain string cells, never as formulas.
"""

from decimal import Decimal
from pathlib import Path

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

SHEET = "Payer feedback"
FEEDBACK_WORKBOOK = "payer-feedback.xlsx"
MONEY = '"$"#,##0.00'
MONEY_COLUMNS = {"amount", "denied_amount"}
TITLES = {
    "overruled_dismissals.csv": "Dismissals the payer did not agree with: dismissed findings on lines it denied",
    "rule_outcomes.csv": "Rule outcomes: deny findings the payer answered, and how many it denied",
    "missed_denials.csv": "Missed denials: lines the payer denied that carry no deny finding",
    "denial_patterns.csv": "Denial patterns (smaller groups summed into one suppressed row)",
}


def _cell(sheet, value, column: str = "", bold: bool = False):
    if isinstance(value, Decimal):
        value = float(value)
    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, str):
        cell.data_type = "s"  # a value starting with '=' stays text
    if column in MONEY_COLUMNS and isinstance(value, float):
        cell.number_format = MONEY
    if bold:
        cell.font = Font(bold=True)
    return cell


def add_feedback_sheet(book: Workbook, views: dict[str, tuple[list[str], list[tuple]]]) -> None:
    """Append the `Payer feedback` sheet to book: each view as a title, a header row and its rows."""
    sheet = book.create_sheet(SHEET)
    # Printed across the page, as every other sheet of the workbook is.
    sheet.page_setup.orientation = "landscape"
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    for name, (columns, rows) in views.items():
        sheet.append([_cell(sheet, TITLES.get(name, name), bold=True)])
        sheet.append([_cell(sheet, column, bold=True) for column in columns])
        for row in rows:
            sheet.append([_cell(sheet, value, column) for column, value in zip(columns, row)])
        if not rows:
            sheet.append([_cell(sheet, "none")])
        sheet.append([])


def write_feedback_workbook(path: Path, views: dict[str, tuple[list[str], list[tuple]]]) -> None:
    book = Workbook(write_only=True)
    add_feedback_sheet(book, views)
    book.save(path)
