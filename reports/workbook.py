"""The denial-risk workbook: pure functions from one run's tables to an .xlsx file.

Seven sheets for three readers: Summary (the manager: how much is at risk, where, and the trend), Findings
(the auditor: every finding with its evidence, and the columns where the auditor's decision goes), Worklist
(the biller: claims to fix, biggest dollars first), Decisions (the auditors' trail), then Quarantine, Rules
and Reference. Every sheet is written in openpyxl's streaming (write-only) mode, so
memory stays flat however many findings a run has.

No value from an input ever becomes a formula, a link or an error value: every text cell is written as a
string cell, whatever it starts with.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from math import ceil
from pathlib import Path

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.chart.label import DataLabelList
from openpyxl.packaging.custom import StringProperty
from openpyxl.styles import Alignment, Font, PatternFill, Protection
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.pagebreak import Break
from openpyxl.worksheet.worksheet import Worksheet

from assets.coverage import counted
from assets.decisions import DECISIONS, SCOPES

from .feedback import add_feedback_sheet
from .sheet_xml import (
    CHARS_PER_WIDTH,
    EXCEL_MAX_TEXT,
    LINE_HEIGHT,
    REFUSED,
    ColumnPlan,
    PendingRows,
    QueryRows,
    SharedStrings,
    rows_sql,
    splice_rows,
)

EXCEL_MAX_ROWS = 1_048_576

MONEY = '"$"#,##0.00'
MONEY_CHANGE = '+"$"#,##0.00;-"$"#,##0.00;"$"0.00'
PERCENT = "0.0%"
DATE = "yyyy-mm-dd"
SEVERITIES = ("deny", "review", "info")
SEVERITY_FILL = {
    "deny": PatternFill("solid", fgColor="F8CBAD"),
    "review": PatternFill("solid", fgColor="FFE699"),
    "info": PatternFill("solid", fgColor="DDEBF7"),
}
HEADER_FILL = PatternFill("solid", fgColor="D9D9D9")
INPUT_FILL = PatternFill("solid", fgColor="FFF2CC")  # the cells a reader fills in
UNLOCKED = Protection(locked=False)
SECTION_FILL = PatternFill("solid", fgColor="1F4E78")
STALE_FILL = PatternFill("solid", fgColor="C00000")
FONT = "Calibri"
BOLD = Font(name=FONT, bold=True)
WARNING = Font(name=FONT, bold=True, color="C00000")


@dataclass(frozen=True)
class Column:
    """One column of a table sheet: the name of its value in a row, its header, width and kind."""

    key: str
    header: str
    width: float
    kind: str = "text"  # text, number, money, date or severity
    wrap: bool = False  # long text that wraps within the width (the row grows) rather than spilling
    editable: bool = False  # a column the reader fills in (the sheet's other columns refuse typing)
    choices: tuple[str, ...] = ()  # the values an editable column offers in a drop-down
    shared: bool = False  # values that repeat from row to row: a big sheet writes them once (SharedStrings)


@dataclass
class Table:
    """Rows of one sheet or section: value names, the rows (any iterable, read once) and how many."""

    columns: Sequence[str]
    rows: Iterable[Sequence]
    count: int | None = None

    def __post_init__(self) -> None:
        if self.count is None:
            self.rows = list(self.rows)
            self.count = len(self.rows)


@dataclass(frozen=True)
class OtherRuns:
    """The runs of other sources in the database, which the trend leaves out: how many, and the latest."""

    count: int = 0
    latest_source: str | None = None
    latest_started: datetime | None = None


# Rules the Summary lists one by one; the others are summed on one row.
TOP_RULES = 10


@dataclass
class Report:
    """Everything the workbook shows. `summary` is the run's summary.json; the rest are its tables."""

    summary: dict
    findings: Table
    worklist: Table
    quarantine: Table
    rules: Table
    reference: Table
    categories: Table  # category, findings, deny_findings, dollars_at_risk
    top_rules: Table  # rule_id, category, severity, findings, dollars_at_risk
    top_providers: Table  # name, claims, findings, dollars_at_risk
    top_payers: Table  # name, claims, findings, dollars_at_risk
    history: Table  # started, files, lines_scrubbed, findings, deny_findings, dollars_at_risk; oldest first
    feedback: dict | None = None  # the payer feedback views, once remittances are loaded
    worklist_claims: int = 0  # the claims the Worklist's lines belong to
    worklist_to_fix: int = 0  # of the Worklist's lines, those with a deny finding to fix (the others are to review)
    worklist_kept: int = 0  # those with a deny finding settled by the fix of other lines: kept as billed
    deny_lines: int = 0  # the lines with a deny finding, each counted once, whatever was decided of it
    deny_claims: int = 0  # the claims of those lines
    unpriced_deny_lines: int = 0  # of those lines, the ones not priced here (their dollars count as 0.00)
    worklist_note: list[str] = field(default_factory=list)  # the Worklist's closing note
    other_runs: OtherRuns = OtherRuns()  # runs of other sources, left out of the trend
    decisions: Table | None = None  # the trail of the auditors' decisions on the batch's findings
    # Custom document properties: what `review import` knows a report by (its batch, its database, the newest
    # decision its Findings sheet shows).
    properties: dict[str, str] = field(default_factory=dict)


FINDINGS = [
    Column("finding_id", "Finding id", 18),
    Column("claim_id", "Claim", 14),
    Column("line_number", "Line", 6, "number"),
    Column("patient", "Patient", 16),
    Column("date_of_service", "Date of service", 15, "date"),
    Column("hcpcs", "Code", 8, shared=True),
    Column("modifiers", "Modifiers", 10, shared=True),
    Column("units", "Units", 7, "number"),
    Column("provider", "Provider NPI", 13, shared=True),
    Column("payer", "Payer", 20, shared=True),
    Column("rule_id", "Rule", 26, shared=True),
    Column("category", "Category", 14, shared=True),
    Column("severity", "Severity", 9, "severity", shared=True),
    Column("carc", "CARC", 6, shared=True),
    Column("dollars_at_risk", "Dollars at risk", 15, "money"),
    Column("decision", "Decision", 12, editable=True, choices=DECISIONS, shared=True),
    Column("decision_reason", "Reason", 30, editable=True),
    Column("reviewer", "Reviewer", 14, editable=True),
    Column("decision_scope", "Scope", 34, editable=True, choices=tuple(SCOPES), shared=True),
    Column("message", "Explanation", 90),
    Column("fix", "Fix", 90, shared=True),
    Column("partner_line", "Partner line", 16),
    Column("ptp_edit", "PTP edit", 70, shared=True),
    Column("releases", "Releases", 32, shared=True),
    Column("reference_match", "Reference match", 16, shared=True),
    Column("source_file", "Source file", 24, shared=True),
    Column("source_row", "Source row", 11, "number"),
    # The finding that counts its line's dollars once in the Summary's totals (see its closing note).
    Column("counted_once", "Line counted once", 11, shared=True),
    Column("counted_once_in_category", "Line counted once in category", 14, shared=True),
]
WORKLIST = [
    Column("claim_id", "Claim", 13),
    Column("line_number", "Line", 6, "number"),
    Column("hcpcs", "Code", 8, shared=True),
    Column("modifiers", "Modifiers", 9, shared=True),
    Column("units", "Units", 6, "number"),
    Column("provider", "Provider NPI", 12, shared=True),
    Column("dollars_at_risk", "Dollars at risk", 14, "money"),
    Column("severity", "Severity", 8, "severity", shared=True),
    Column("action", "Action", 14, wrap=True, shared=True),
    Column("instruction", "Instruction", 60, wrap=True),
    Column("partners", "Partner lines", 26, wrap=True),
    Column("resolves", "Resolves", 26, wrap=True, shared=True),
    Column("explanation", "Explanation (each finding's own)", 60, wrap=True),
    Column("also_to_review", "Also to review", 40, wrap=True, shared=True),
    Column("claim_dollars", "Claim at risk", 13, "money"),
    Column("biller", "Billing NPI", 12, shared=True),
    Column("date_of_service", "Date of service", 11, "date"),
    Column("payer", "Payer", 16, shared=True),
    Column("patient", "Patient", 15),
]
DECISION_TRAIL = [
    Column("decision_id", "Decision #", 11, "number"),
    Column("finding_id", "Finding id", 18),
    Column("claim_id", "Claim", 14),
    Column("line_number", "Line", 6, "number"),
    Column("rule_id", "Rule", 26),
    Column("hcpcs", "Code", 8),
    Column("provider", "Provider NPI", 13),
    Column("decision", "Decision", 10),
    Column("scope", "Scope", 34),
    Column("reason", "Reason", 40, wrap=True),
    Column("reviewer", "Reviewer", 16),
    Column("decided_at", "Decided at (UTC)", 19),
    Column("source_file", "Source file", 28),
    Column("source_row", "Source row", 11, "number"),
    Column("status", "Status", 48, wrap=True),
    Column("batch_id", "Batch", 24),
]
QUARANTINE = [
    Column("source_file", "Source file", 24),
    Column("source_row", "Source row", 11, "number"),
    Column("claim_id", "Claim", 14),
    Column("line_number", "Line", 8),
    Column("reasons", "Reasons", 80, wrap=True),
]
RULES = [
    Column("id", "Rule", 26),
    Column("category", "Category", 14),
    Column("severities", "Severity", 12, "severity", wrap=True),
    Column("carcs", "CARC", 6),
    Column("carc_text", "CARC text", 40, wrap=True),
    Column("explanation", "Explanation", 50, wrap=True),
    Column("fix", "Fix", 50, wrap=True),
    Column("source", "Source", 36, wrap=True),
    Column("findings", "Findings this run", 17, "number"),
]
REFERENCE = [
    Column("release", "Release", 18),
    Column("table", "Table", 24),
    Column("effective_start", "Effective from", 14, "date"),
    Column("effective_end", "Effective to", 14, "date"),
    Column("source_files", "Source files", 40, wrap=True),
    Column("sha256", "sha256", 68),
    Column("rows", "Rows", 11, "number"),
    Column("coverage", "Coverage of this batch", 70, wrap=True),
]


def clean_text(value: str) -> str:
    """The text as a cell can hold it: control characters Excel refuses become U+FFFD, and text past
    Excel's 32,767-character limit is cut with an ellipsis."""
    value = REFUSED.sub("\ufffd", value)
    return value if len(value) <= EXCEL_MAX_TEXT else value[: EXCEL_MAX_TEXT - 1] + "\u2026"


def text_cell(sheet, value):
    """A cell that shows exactly the value; a string is never parsed as a formula or an error value."""
    if isinstance(value, str):
        value = clean_text(value)
    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, str) and cell.data_type != "s":
        cell.data_type = "s"
    return cell


def _number(value):
    return float(value) if isinstance(value, Decimal) else value


WRAP = Alignment(wrap_text=True, vertical="top")
TOP = Alignment(vertical="top")


def value_cell(sheet, kind: str, value, alignment: Alignment | None = None):
    """A cell for one value of a column of the given kind (see Column).

    A plain value that needs no style and that openpyxl would not read as a formula or an error goes to the
    sheet as it is: building a cell for each costs most of the writing time of a big sheet.
    """
    if value is None:
        return None
    if alignment is None and kind in ("text", "number"):
        if isinstance(value, str):
            value = clean_text(value)
            if value[:1] != "=" and value not in ERROR_CODES:
                return value
        elif not isinstance(value, Decimal):
            return value
    if isinstance(value, str) and kind != "date":
        cell = text_cell(sheet, value)
    else:
        if isinstance(value, str):
            value = date.fromisoformat(value)
        cell = WriteOnlyCell(sheet, value=_number(value))
    if kind == "money":
        cell.number_format = MONEY
    elif kind == "date":
        cell.number_format = DATE
    elif kind == "severity" and value in SEVERITY_FILL:
        cell.fill = SEVERITY_FILL[value]
    if alignment is not None:
        cell.alignment = alignment
    return cell


def _with_style(cell, font=None, fill=None, number_format=None, alignment=None):
    for name, value in (("font", font), ("fill", fill), ("number_format", number_format),
                        ("alignment", alignment)):
        if value is not None:
            setattr(cell, name, value)
    return cell


def _styled(sheet, value, font=None, fill=None, number_format=None, align=None):
    return _with_style(text_cell(sheet, _number(value)), font, fill, number_format,
                       Alignment(horizontal=align) if align is not None else None)


def header_row(sheet, names: Iterable[str]) -> list:
    return [_styled(sheet, name, font=BOLD, fill=HEADER_FILL) for name in names]


def _landscape(sheet, fit_width: bool = True, pages_wide: int = 1) -> None:
    """Print across the page: landscape, `pages_wide` pages wide (one unless said), as many pages down as it
    takes."""
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = Worksheet.PAPERSIZE_LETTER
    if fit_width:
        sheet.sheet_properties.pageSetUpPr.fitToPage = True
        sheet.page_setup.fitToWidth = pages_wide
        sheet.page_setup.fitToHeight = 0
    sheet.print_options.gridLines = False
    sheet.page_margins.left = sheet.page_margins.right = 0.4
    sheet.page_margins.top = sheet.page_margins.bottom = 0.5


def table_sheet(book: Workbook, title: str, columns: list[Column], table: Table, caption: str,
                overflow: str, max_rows: int, fit_width: bool = True,
                closing: Sequence[str] = (), pages_wide: int = 1,
                shared: SharedStrings | None = None) -> PendingRows | None:
    """A sheet of one table: a caption line, a frozen, filtered header, then one row per table row, and the
    `closing` note below them, a line a row, after an empty row.

    When the table has more rows than the sheet holds, the caption says so (`overflow`, with {shown} and
    {total}) and the rows stop at the sheet's limit (a closing note then makes room for itself). The rows of a
    table that is a query are written after the workbook is saved: the returned PendingRows says where and how.
    A sheet fit to the width prints `pages_wide` pages wide; one that is not prints across as many as it takes.
    """
    sheet = book.create_sheet(title)
    _landscape(sheet, fit_width, pages_wide)
    for index, column in enumerate(columns, 1):
        sheet.column_dimensions[get_column_letter(index)].width = column.width
    sheet.freeze_panes = "A3"
    sheet.print_title_rows = "1:2"
    if not fit_width or pages_wide > 1:
        sheet.print_title_cols = "A:B"  # pages printed across still say which claim and line
    if closing and max_rows - 2 <= len(closing) + 1:
        closing = ()  # no room for rows and the note: the rows go first
    room = max_rows - 2 - (len(closing) + 1 if closing else 0)
    truncated = table.count > room
    # {s} in a caption is the plural's ending: "1 row could not be scrubbed", "2 rows ...".
    note = (overflow.format(shown=room, total=table.count) if truncated
            else caption.format(total=table.count, s="" if table.count == 1 else "s"))
    sheet.append([_styled(sheet, note, font=WARNING if truncated else BOLD)])
    sheet.append(header_row(sheet, (c.header for c in columns)))
    # Where some text wraps, every cell of the row sits at the top, level with the wrapped text's first line.
    wrapping = any(c.wrap for c in columns)
    if isinstance(table.rows, QueryRows):
        written = min(table.count, room)
        pending = _query_sheet_rows(book, sheet, columns, table.rows, wrapping, room, written, shared)
        pending.closing = list(closing)
    else:
        written = _append_rows(sheet, columns, table, wrapping, room)
        pending = None
        if closing:
            sheet.append([])
            for line in closing:
                sheet.append([text_cell(sheet, line)])
    sheet.auto_filter.ref = f"A2:{get_column_letter(len(columns))}{written + 2}"
    if any(c.editable for c in columns):
        _guard(sheet, columns, written)
    return pending


def _guard(sheet, columns: list[Column], written: int) -> None:
    """A sheet whose readers fill in some columns: those offer their choices, the rest refuse what is typed
    into them, and the caption, the header and the columns themselves are protected, while sort and filter
    work. Excel will not sort a protected range that holds a locked cell, so the rows' cells are unlocked
    (_query_sheet_rows) and a data validation, not the protection, keeps typing out of the other columns."""
    sheet.protection.sheet = True
    for allowed in ("sort", "autoFilter", "formatColumns", "formatRows"):
        setattr(sheet.protection, allowed, False)
    if not written:
        return
    last = written + 2
    inputs = ", ".join(c.header for c in columns if c.editable)
    refuse = DataValidation(type="custom", formula1="FALSE", allow_blank=True, showErrorMessage=True,
                            errorTitle="Filled in by claimscrub",
                            error=f"This column comes from the scrub. Fill in {inputs}.")
    for index, column in enumerate(columns, 1):
        cells = f"{get_column_letter(index)}3:{get_column_letter(index)}{last}"
        if not column.editable:
            refuse.add(cells)
        elif column.choices:
            choose = DataValidation(type="list", formula1='"' + ",".join(column.choices) + '"',
                                    allow_blank=True, showErrorMessage=True, errorTitle=column.header,
                                    error="Choose one of: " + ", ".join(column.choices) + ".")
            choose.add(cells)
            sheet.data_validations.append(choose)
    sheet.data_validations.append(refuse)


def _append_rows(sheet, columns: list[Column], table: Table, wrapping: bool, room: int) -> int:
    plan = [(list(table.columns).index(c.key), c.kind, WRAP if c.wrap else TOP if wrapping else None)
            for c in columns]
    wrapped = [(list(table.columns).index(c.key), c.width) for c in columns if c.wrap]
    written = 0
    rows = iter(table.rows)
    try:
        for values in rows:
            if written == room:
                break
            if wrapped:
                _fit_height(sheet, written + 3, values, wrapped)
            sheet.append([value_cell(sheet, kind, values[at], align) for at, kind, align in plan])
            sheet.row_dimensions.pop(written + 3, None)  # the row is written: keep memory flat
            written += 1
    finally:
        # A row source that is a live query must be told when the sheet stops reading early.
        close = getattr(rows, "close", None)
        if close is not None:
            close()
    return written


def _style_id(sheet, number_format=None, fill=None, alignment=None, protection=None) -> int:
    """The workbook's id of a cell style (0 for the default), registering it for the saved styles."""
    cell = _with_style(WriteOnlyCell(sheet), fill=fill, number_format=number_format, alignment=alignment)
    if protection is not None:
        cell.protection = protection
    return cell.style_id if cell.has_style else 0


def _query_sheet_rows(book: Workbook, sheet, columns: list[Column], rows: QueryRows, wrapping: bool,
                      room: int, count: int, shared: SharedStrings | None = None) -> PendingRows:
    """The query that writes a sheet's rows from row 3, each cell styled as value_cell would style it."""
    names, types = rows.columns()
    duck_types = dict(zip(names, types))
    # On a sheet with columns to fill in, every cell of the rows is unlocked (see _guard), empty ones too.
    unlock = UNLOCKED if any(c.editable for c in columns) else None
    plans = []
    for c in columns:
        align = WRAP if c.wrap else TOP if wrapping else None
        number_format = MONEY if c.kind == "money" else DATE if c.kind == "date" else None
        by_value = ({severity: _style_id(sheet, fill=fill, alignment=align, protection=unlock)
                     for severity, fill in SEVERITY_FILL.items()} if c.kind == "severity" else None)
        style = _style_id(sheet, number_format=number_format, alignment=align, protection=unlock,
                          fill=INPUT_FILL if c.editable else None)
        plans.append(ColumnPlan(c.key, duck_types[c.key], c.kind, style, by_value or {},
                                c.width if c.wrap else None, empty_styled=unlock is not None))
    if shared is not None:
        shared.share(rows.con, rows.sql, rows.params, room,
                     [p for p, c in zip(plans, columns) if c.shared and c.kind in ("text", "severity")], clean_text)
    sql = rows_sql(rows.sql, plans, 3, room, rows.in_order)
    return PendingRows(book.worksheets.index(sheet) + 1, rows, sql, count)


def _fit_height(sheet, row: int, values, wrapped) -> None:
    """Give a row the height its wrapped text needs: neither Excel nor LibreOffice sizes the rows of a
    generated file when opening it. A line of prose holds about 1.2 characters per unit of column width
    (the unit is one digit's width); the estimate errs towards a taller row."""
    lines = 1
    for at, width in wrapped:
        if values[at] is not None:
            per_line = width * CHARS_PER_WIDTH
            lines = max(lines, sum(max(1, ceil(len(part) / per_line)) for part in str(values[at]).split("\n")))
    if lines > 1:
        sheet.row_dimensions[row].height = LINE_HEIGHT * lines


class _Lines:
    """A write-only sheet that counts its rows, so that charts can point at rows already written."""

    def __init__(self, sheet):
        self.sheet = sheet
        self.row = 0

    def add(self, *cells) -> int:
        self.sheet.append(list(cells))
        self.row += 1
        return self.row

    def blank(self) -> None:
        self.add()

    def section(self, title: str, width: int = 6, fill=SECTION_FILL, bold: bool = True) -> None:
        font = Font(name=FONT, bold=bold, color="FFFFFF")
        self.add(*[_styled(self.sheet, title if i == 0 else None, font=font, fill=fill)
                   for i in range(width)])

    def header(self, *names: str, text_columns: int = 1, text_after: int | None = None) -> int:
        """A bold header; the columns after the text ones (up to `text_after`) hold numbers, so their headers
        sit right."""
        return self.add(*(_styled(self.sheet, name, font=BOLD, fill=HEADER_FILL,
                                  align="right" if text_columns <= i < (text_after or len(names)) else None)
                          for i, name in enumerate(names)))

    def fact(self, label: str, value, number_format=None, font=None) -> int:
        return self.add(_styled(self.sheet, label), _styled(self.sheet, value, font=font,
                                                            number_format=number_format, align="right"))


def _timestamp(iso: str | None) -> str:
    return "" if not iso else datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S UTC")


# Categories and rules overlap: a line with findings in two categories counts under each (RULES.md).
OVERLAP = "a line can fall under several categories"
# The totals row of a table whose findings columns count every finding and whose dollars count each line once.
COUNTED_ONCE = "All findings; dollars with each line counted once"
# How each figure of the Summary is found on the Findings sheet: filters, then the sum of Dollars at risk.
DENY_ONCE = "Severity = deny, Line counted once = yes"
# The Findings sheet's Decision column for each group of the split by decision (assets/decisions.py, GROUPS).
DECISION_WORDS = {"pending": "pending", "accepted": "accept", "fixed": "fixed",
                  "dismissed": "dismiss or dismissed (standing #...)"}


def _summary_sheet(book: Workbook, report: Report, shown_findings: int, shown_lines: int, sheet) -> None:
    """The manager's page first (what is at risk, where, and the trend, with the charts beside), then a
    second printed page with the top providers and payers, the facts of the run, and how each dollar figure
    is found on the Findings sheet."""
    summary = report.summary
    _landscape(sheet)
    # Six columns of tables, a narrow gutter, then the charts from column H.
    for letter, width in zip("ABCDEFG", (44, 15, 15, 15, 18, 15, 3)):
        sheet.column_dimensions[letter].width = width
    out = _Lines(sheet)

    def s(value, **style):
        return _styled(sheet, value, **style)

    deny_dollars = summary["dollars_at_risk"]["by_severity"].get("deny", 0.0)
    expected = summary["expected_allowed_total"]
    files = summary["files"]
    out.add(s("claimscrub denial-risk report", font=Font(name=FONT, bold=True, size=16)))
    out.add(s(f"Batch {summary['batch_id']}: {len(files)} file{'s' if len(files) != 1 else ''}, "
              f"{counted(summary['rows_read'], 'row')} read, {counted(summary['lines_scrubbed'], 'line')} scrubbed, "
              f"{summary['rows_quarantined']:,} quarantined; scrubbed {_timestamp(summary['started'])}",
              font=Font(name=FONT, italic=True, color="595959")))
    stale = [entry for entry in summary.get("reference_coverage", [])
             if entry["stale"] or entry.get("lines_between_releases") or entry.get("lines_before_releases")
             or entry.get("lines_by_partial_releases")]
    if stale:
        out.blank()
        out.section(f"Stale or partial reference data: {len(stale)} table{'s' if len(stale) != 1 else ''} whose "
                    "releases do not fully cover the claims they judged", fill=STALE_FILL)
        for entry in stale:
            said = [("finding", "advice")] if entry["stale"] else []
            said += [("between_finding", "between_advice")] if entry.get("lines_between_releases") else []
            said += [("before_finding", "before_advice")] if entry.get("lines_before_releases") else []
            said += [("partial_finding", "partial_advice")] if entry.get("lines_by_partial_releases") else []
            for finding, advice in said:
                out.section(f"{entry['table']}: {entry[finding]}", fill=STALE_FILL, bold=False)
                out.section(f"    {entry[advice]}", fill=STALE_FILL, bold=False)
    set_aside = summary.get("files_set_aside", [])
    if set_aside:
        out.blank()
        out.section(f"Not scrubbed: {len(set_aside)} file{'s' if len(set_aside) != 1 else ''} set aside",
                    fill=STALE_FILL)
        for entry in set_aside:
            out.section(f"{entry['file']}: {entry['reason']}", fill=STALE_FILL, bold=False)
        out.section("    A file that could not be read: correct it and drop it in the inbox again; the new version is "
                    "scrubbed the next night.", fill=STALE_FILL, bold=False)
    out.blank()

    deny_findings = summary["findings"]["by_severity"].get("deny", 0)
    headline = out.row + 1
    out.section("At risk of denial tonight (each line counted once)")
    out.fact("Dollars at risk of denial", deny_dollars, MONEY,
             Font(name=FONT, bold=True, size=14, color="C00000"))
    out.fact("Lines with a deny finding", report.deny_lines)
    out.fact("Claims with a deny finding", report.deny_claims)
    if report.unpriced_deny_lines:
        out.fact("Of those lines, not priced here (counted at $0.00)", report.unpriced_deny_lines)
    out.fact("Expected allowed, all lines", expected, MONEY)
    out.fact("Share of expected allowed at risk", deny_dollars / expected if expected else 0.0, PERCENT)
    history = list(report.history.rows)
    if len(history) > 1:
        # In decimal, to the cent: in binary a difference of two amounts is not one.
        change = float(Decimal(history[-1][5]) - Decimal(history[-2][5]))
        out.fact("Change since the last run of this source", change, MONEY_CHANGE,
                 Font(name=FONT, bold=True, color="C00000" if change > 0 else "548235"))
    if shown_findings < report.findings.count:
        out.add(s(f"The Findings sheet shows {shown_findings:,} of {report.findings.count:,} findings "
                  "(Excel's row limit): flags.csv has every finding.", font=WARNING))
    if shown_lines < report.worklist.count:
        out.add(s(f"The Worklist sheet shows {shown_lines:,} of {report.worklist.count:,} lines "
                  "(Excel's row limit): flags.csv has every finding.", font=WARNING))
    out.blank()

    _decision_section(out, summary)

    out.section(f"Findings and dollars at risk of denial by category ({OVERLAP})")
    first = out.header("Category", "Findings", "Deny findings", "Dollars at risk") + 1
    categories = list(report.categories.rows)
    for category, findings, deny, dollars in categories:
        out.add(s(category), findings, deny, s(dollars, number_format=MONEY))
    if categories:
        _category_chart(sheet, first, out.row, f"H{headline}")
        out.add(*(s(v, font=BOLD, number_format=MONEY if i == 3 else None) for i, v in enumerate(
            (COUNTED_ONCE, summary["findings"]["total"], deny_findings, deny_dollars))))
    else:
        out.add(s("No findings in this run."))
    out.blank()

    out.section("Findings and dollars by severity (a line counts under each; info dollars: no money at stake)")
    out.header("Severity", "Findings", "Dollars at risk")
    for severity in SEVERITIES:
        out.add(s(severity, fill=SEVERITY_FILL[severity]),
                summary["findings"]["by_severity"].get(severity, 0),
                s(summary["dollars_at_risk"]["by_severity"].get(severity, 0.0), number_format=MONEY))
    out.add(s("All findings", font=BOLD), s(summary["findings"]["total"], font=BOLD))
    out.blank()

    trend = out.row + 1
    source = summary.get("source", "")
    out.section(f"Trend: this run against earlier runs of the same source ({source})")
    if len(history) > 1:
        first = out.header("Run", "Lines scrubbed", "Findings", "Deny findings", "Dollars at risk",
                           "Change") + 1
        previous = None
        for started, run_files, lines, findings, deny, dollars in history:
            change = None if previous is None else float(Decimal(dollars) - previous)
            out.add(s(f"{started:%Y-%m-%d %H:%M} {run_files}"), lines, findings, deny,
                    s(dollars, number_format=MONEY), s(change, number_format=MONEY_CHANGE))
            previous = Decimal(dollars)
        _trend_chart(sheet, first, out.row, f"H{trend}")
    else:
        out.add(s("No earlier run of this source in this database: this run is not compared with runs of "
                  "other files (the trend appears once another export of this source is scrubbed: a file "
                  "scrubbed again replaces its own run)."))
    others = report.other_runs
    if others.count:
        out.add(s(f"Left out: {others.count:,} run{'s' if others.count != 1 else ''} of other sources, the "
                  f"latest {others.latest_started:%Y-%m-%d %H:%M} ({others.latest_source}): one-off scrubs "
                  "of other files are not compared with this one.",
                  font=Font(name=FONT, italic=True, color="595959")))
    out.blank()

    out.section(f"Top rules by dollars at risk of denial ({OVERLAP.replace('categories', 'rules')})")
    out.header("Rule", "Category", "Severity", "Deny findings", "Dollars at risk", text_columns=3)
    every_rule = list(report.top_rules.rows)
    rules, rest = every_rule[:TOP_RULES], every_rule[TOP_RULES:]
    for rule, category, severity, findings, dollars in rules:
        out.add(s(rule), s(category), s(severity, fill=SEVERITY_FILL.get(severity)), findings,
                s(dollars, number_format=MONEY))
    if rest:
        # The rows above then add up to the total below (the rest's dollars, like each rule's, per rule).
        out.add(s(counted(len(rest), "other rule")), None, None,
                sum(r[3] for r in rest), s(sum(r[4] for r in rest), number_format=MONEY))
    if rules:
        out.add(s("All deny findings; dollars with each line counted once", font=BOLD), None, None,
                s(deny_findings, font=BOLD),
                s(deny_dollars, font=BOLD, number_format=MONEY))
    else:
        out.add(s("No deny findings in this run."))
    out.blank()
    sheet.row_breaks.append(Break(id=out.row))

    for title, label, table in (
            ("Top providers by dollars at risk", "Provider NPI", report.top_providers),
            ("Top payers by dollars at risk", "Payer", report.top_payers)):
        # Each line has one provider and one payer; a claim may have lines of several.
        out.section(f"{title} (a claim with several {label.split()[0].lower()}s counts under each)")
        out.header(label, "Claims", "Deny findings", "Dollars at risk")
        every = list(table.rows)
        shown, rest = every[:TOP_RULES], every[TOP_RULES:]
        for name, claims, findings, dollars in shown:
            out.add(s(name), claims, findings, s(dollars, number_format=MONEY))
        if rest:
            # The rows above and this one add up to the total below, but for the claims counted twice.
            out.add(s(counted(len(rest), f"other {label.split()[0].lower()}")), sum(r[1] for r in rest),
                    sum(r[2] for r in rest), s(sum(r[3] for r in rest), number_format=MONEY))
        if table.count:
            out.add(s(f"All {label.split()[0].lower()}s", font=BOLD), s(report.deny_claims, font=BOLD),
                    s(deny_findings, font=BOLD), s(deny_dollars, font=BOLD, number_format=MONEY))
        else:
            out.add(s("No deny findings in this run."))
        out.blank()

    out.section("The run")
    out.header("Input file", "Rows read", "Lines scrubbed", "Quarantined")
    for f in files:
        out.add(s(f["file"]), f["rows_read"], f["lines_scrubbed"], f["rows_quarantined"])
    out.add(*(s(value, font=BOLD) for value in ("All files", summary["rows_read"], summary["lines_scrubbed"],
                                                  summary["rows_quarantined"])))
    releases = ", ".join(dict.fromkeys(r["release"] for r in summary["reference_releases"]))
    out.add(s("Reference releases"), s(releases))
    out.add(s("Started"), s(_timestamp(summary["started"])))
    out.add(s("Finished"), s(_timestamp(summary["finished"])))
    seconds = (datetime.fromisoformat(summary["finished"]) - datetime.fromisoformat(summary["started"])
               ).total_seconds() if summary["started"] and summary["finished"] else None
    out.fact("Run time (seconds)", None if seconds is None else round(seconds, 1), "0.0")
    out.blank()
    _reconciliation(out, report, categories, rules)


def _reconciliation(out: _Lines, report: Report, categories: list, rules: list) -> None:
    """The closing note: each dollar figure above, and the filter of the Findings sheet whose Dollars at risk
    add up to it."""
    summary = report.summary
    sheet = out.sheet

    def s(value, **style):
        return _styled(sheet, value, **style)

    deny = summary["dollars_at_risk"]["by_severity"].get("deny", 0.0)
    out.section("How the numbers add up: each figure is the sum of Dollars at risk on the Findings sheet "
                "under this filter")
    out.header("Figure", "Dollars", "Findings sheet filter", text_after=2)
    out.add(s("Dollars at risk of denial"), s(deny, number_format=MONEY),
            s(f"{DENY_ONCE}; the Worklist's Dollars at risk add up to it too"
              + (", less the lines an auditor dismissed or marked fixed"
                 if summary["dollars_at_risk"].get("deny_by_decision") else "")))
    for category, _, _, dollars in categories:
        out.add(s(f"Category {category}"), s(dollars, number_format=MONEY),
                s(f"Category = {category}, Severity = deny, Line counted once in category = yes"))
    for severity in SEVERITIES:
        out.add(s(f"Severity {severity}"),
                s(summary["dollars_at_risk"]["by_severity"].get(severity, 0.0), number_format=MONEY),
                s(f"Severity = {severity}, Line counted once = yes"))
    for rule, _, _, _, dollars in rules:
        out.add(s(f"Rule {rule}"), s(dollars, number_format=MONEY), s(f"Rule = {rule}, Severity = deny"))
    # The Decision column's words for each group of the split by decision.
    for group, counts in (summary["dollars_at_risk"].get("deny_by_decision") or {}).items():
        out.add(s(f"Review decision {group}"), s(counts["dollars"], number_format=MONEY),
                s(f"{DENY_ONCE}, Decision = {DECISION_WORDS[group]}"))
    out.add(s("A provider's or payer's dollars"), None,
            s(f"Provider NPI (or Payer) = it, {DENY_ONCE}"))
    out.add(s("Each line counted once (all categories, rules, providers or payers)"),
            s(deny, number_format=MONEY), s(DENY_ONCE))
    out.add(s("Expected allowed, all lines"), s(summary["expected_allowed_total"], number_format=MONEY),
            s("not a finding: the sum of expected_allowed in lines.csv"))
    out.add(s("Change since the last run of this source, trend"), None,
            s("the run_history table of this database, runs of the same source only"))


def _decision_section(out: _Lines, summary: dict) -> None:
    """The dollars at risk of denial split by the auditors' decisions (`claimscrub review import`): each line
    and its dollars count once, under its most telling decision, and each deny finding under its own (see
    assets/decisions.py)."""
    split = summary["dollars_at_risk"].get("deny_by_decision")
    if split is None:
        return
    out.section("Dollars at risk of denial by review decision (each line once, under its most telling one)")
    out.header("Decision", "Lines", "Deny findings", "Dollars at risk")
    for group, counts in split.items():
        out.add(_styled(out.sheet, group), counts["lines"], counts["deny_findings"],
                _styled(out.sheet, counts["dollars"], number_format=MONEY))
    out.blank()


def _category_chart(sheet, first: int, last: int, anchor: str) -> None:
    chart = BarChart()
    chart.type = "bar"
    chart.title = "At risk of denial, by category"
    chart.legend = None
    chart.add_data(Reference(sheet, min_col=4, min_row=first - 1, max_row=last), titles_from_data=True)
    chart.set_categories(Reference(sheet, min_col=1, min_row=first, max_row=last))
    chart.x_axis.scaling.orientation = "maxMin"  # biggest category (first row) on top
    chart.x_axis.delete = False
    chart.y_axis.delete = True  # the bars carry their amounts
    chart.y_axis.majorGridlines = None
    chart.dataLabels = DataLabelList(showVal=True, showCatName=False, showSerName=False, showLegendKey=False,
                                     showPercent=False, numFmt=MONEY)
    chart.width, chart.height = 16, 9
    sheet.add_chart(chart, anchor)


def _trend_chart(sheet, first: int, last: int, anchor: str) -> None:
    chart = LineChart()
    chart.title = "At risk of denial, run by run"
    chart.legend = None
    chart.add_data(Reference(sheet, min_col=5, min_row=first - 1, max_row=last), titles_from_data=True)
    chart.set_categories(Reference(sheet, min_col=1, min_row=first, max_row=last))
    chart.y_axis.numFmt = MONEY
    chart.y_axis.delete = False
    chart.x_axis.delete = True  # the runs are named in the table beside; long labels would crush the line
    chart.width, chart.height = 16, 7
    sheet.add_chart(chart, anchor)


@dataclass
class StartedWorkbook:
    """A workbook as far as the findings take it: the Summary sheet, filled in last, and the Findings sheet,
    whose rows (`findings`, None for a table given as rows rather than a query) can be written while the rest
    of the report is gathered."""

    book: Workbook
    summary: object
    findings: PendingRows | None
    shared: SharedStrings


def start_workbook(findings: Table) -> StartedWorkbook:
    """The workbook's first two sheets from the findings alone (see StartedWorkbook)."""
    book = Workbook(write_only=True)
    summary = book.create_sheet("Summary")
    shared = SharedStrings()
    pending = table_sheet(
        book, "Findings", FINDINGS, findings,
        caption="{total:,} finding{s}, one row each, in input order. flags.csv holds the same findings. Fill in "
                "Decision, Reason, Reviewer and Scope, save, and give this file to claimscrub review import.",
        overflow="This sheet holds the first {shown:,} of {total:,} findings (Excel's row limit): "
                 "flags.csv has every finding.",
        max_rows=EXCEL_MAX_ROWS, fit_width=False, shared=shared)
    return StartedWorkbook(book, summary, pending, shared)


def build_workbook(path: Path, report: Report, started: StartedWorkbook | None = None) -> None:
    """Write the sheets of the denial-risk workbook to `path`, from the workbook `started` on the same findings
    where given."""
    max_rows = EXCEL_MAX_ROWS  # read at call time: tests lower it to prove the overflow note
    started = started or start_workbook(report.findings)
    book, shared = started.book, started.shared
    room = max_rows - 2  # the caption and the header
    note = len(report.worklist_note) + 1 if report.worklist_note else 0
    worklist_room = room - note if room > note else room
    _summary_sheet(book, report, min(report.findings.count, room), min(report.worklist.count, worklist_room),
                   started.summary)
    pending = [started.findings]
    pending.append(table_sheet(
        book, "Worklist", WORKLIST, report.worklist,
        caption=f"{{total:,}} line{{s}} on the {counted(report.worklist_claims, 'claim')} with a deny finding not "
                f"dismissed or fixed: {report.worklist_to_fix:,} to fix, "
                + (f"{report.worklist_kept:,} kept as billed once the others are, " if report.worklist_kept else "")
                + "the rest to review; one "
                "instruction per cause; by billing provider, claims linked by a conflict together, biggest "
                "dollars at risk first. How one fix settles several findings: the note below the rows.",
        overflow="This sheet holds the first {shown:,} of {total:,} lines (Excel's row limit): "
                 "flags.csv has every finding (severity deny).",
        # Two pages wide: the first holds a line's facts, its instruction and its partner lines.
        max_rows=max_rows, closing=report.worklist_note, pages_wide=2, shared=shared))
    if report.decisions is not None:
        pending.append(table_sheet(
            book, "Decisions", DECISION_TRAIL, report.decisions,
            caption="{total:,} decision{s} on this batch's findings and the standing dismissals of earlier "
                    "batches for their rules, codes and providers, in force or lapsed, oldest first: every one "
                    "stays; the latest of a finding counts.",
            overflow="This sheet holds the first {shown:,} of {total:,} decisions (Excel's row limit).",
            max_rows=max_rows))
    pending.append(table_sheet(
        book, "Quarantine", QUARANTINE, report.quarantine,
        caption="{total:,} row{s} could not be scrubbed, with every reason. "
                "quarantine.csv holds the same rows.",
        overflow="This sheet holds the first {shown:,} of {total:,} quarantined rows (Excel's row limit): "
                 "quarantine.csv has every row.",
        max_rows=max_rows))
    table_sheet(book, "Rules", RULES, report.rules,
                caption="The {total} rules of the scrub: what each catches, the payer's likely CARC "
                        "and the fix.",
                overflow="{shown} of {total} rules", max_rows=max_rows)
    table_sheet(book, "Reference", REFERENCE, report.reference,
                caption="The reference releases this run was judged against, with their source "
                        "files' sha256.",
                overflow="{shown} of {total} releases", max_rows=max_rows)
    if report.feedback:
        add_feedback_sheet(book, report.feedback)
    for name, value in report.properties.items():
        book.custom_doc_props.append(StringProperty(name=name, value=value))
    book.save(path)
    splice_rows(path, [p for p in pending if p is not None], shared)
