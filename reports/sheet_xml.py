"""The rows of a big sheet written by DuckDB: each row's worksheet XML built in SQL, then streamed into the
workbook that openpyxl saved.

openpyxl builds a cell object per value, too slow for the hundreds of thousands of findings of a big night.
Here DuckDB turns each row of the sheet's query into its `<row>` element (in parallel, column by column),
and the file is written once: openpyxl saves the workbook with the sheet's caption and header, and the rows
go in before its `</sheetData>`.

Every value keeps the meaning it has in the openpyxl path of reports/workbook.py: text is an inline string
(never a formula, a link or an error value, whatever it starts with), with the control characters Excel
refuses made U+FFFD and text past Excel's 32,767-character limit cut with an ellipsis; numbers are numbers,
dates are Excel dates, and styles (money and date formats, severity fills, alignment) are the workbook's
own, by the ids openpyxl gave them.
"""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

try:  # Intel's ISA-L deflate: the same stream as zlib's, for a fraction of the CPU at the fastest levels
    from isal import isal_zlib as deflate_library
except ImportError:  # a platform without its wheels: the standard library's zlib
    import zlib as deflate_library

EXCEL_MAX_TEXT = 32_767
# A wrapped row's height: points per line of 11-point text, and characters of prose per unit of column width.
LINE_HEIGHT = 15
CHARS_PER_WIDTH = 1.2
FETCH_ROWS = 20_000
# Entries past this many rows are written with zip64 headers: a sheet of a million long rows can pass the
# 2 GiB that plain zip headers can describe.
ZIP64_ROWS = 500_000
# A row's cells carry no reference (`r="B12"`): the format places a cell without one in the column after the
# cell before it, so each row lists every column, an empty cell where the value is null. References are a
# large share of the rows' XML and, since each one differs, deflate badly.
EMPTY_CELL = "<c/>"
# Deflate level of the spliced sheets: the fastest level costs a little size and saves most of the time.
COMPRESS_LEVEL = 1
DEFLATE_BLOCK = 4 << 20
DEFLATE_THREADS = 2
COPY_BLOCK = 16 << 20

NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
           "UBIGINT", "FLOAT", "DOUBLE", "REAL")


@dataclass
class QueryRows:
    """A big table's rows as a DuckDB query, for the sheet to have DuckDB write them.

    `sql` returns the table's columns and `_row`, the rows' order (1, 2, ...); `params` are its parameters.
    `in_order` says that it returns them in that order already (a table stored so, read while DuckDB keeps
    insertion order): they are not sorted again.
    """

    con: object
    sql: str
    params: dict = field(default_factory=dict)
    in_order: bool = False

    def columns(self) -> tuple[list[str], list[str]]:
        relation = self.con.sql(self.sql, params=self.params)
        return relation.columns, [str(t) for t in relation.types]


@dataclass
class ColumnPlan:
    """How one column of the sheet becomes cells: its value's name and type, its kind and styles. A cell carries
    no reference (see EMPTY_CELL): its place in the row is its column.

    `style` is the style id of its cells; a severity column has one per severity in `by_value`; `empty_styled`
    gives an empty cell the column's style too (else it has none).
    """

    key: str
    duck_type: str
    kind: str
    style: int = 0
    by_value: dict[str, int] = field(default_factory=dict)
    wrap_width: float | None = None
    empty_styled: bool = False
    # A column of the workbook's shared strings (SharedStrings): its values as an ENUM type, whose code plus
    # `shared_base` is a value's number there.
    shared_enum: str = ""
    shared_base: int = 0


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _style_attr(plan: ColumnPlan, value: str) -> str:
    """SQL for the ` s="N"` attribute of a cell (empty for the default style)."""
    if plan.by_value:
        cases = " ".join(f"when {_literal(v)} then ' s=\"{sid}\"'" for v, sid in plan.by_value.items() if sid)
        default = f"' s=\"{plan.style}\"'" if plan.style else "''"
        return f"(case {value} {cases} else {default} end)" if cases else default
    return f"' s=\"{plan.style}\"'" if plan.style else "''"


def _concat(*parts: str) -> str:
    """SQL concatenating `parts` (SQL expressions), adjacent quoted literals joined into one: a cell's markup
    around its value is one literal on each side, and DuckDB copies fewer pieces per cell."""
    merged: list[str] = []
    for part in parts:
        if merged and _is_literal(part) and _is_literal(merged[-1]):
            merged[-1] = merged[-1][:-1] + part[1:]
        elif part != "''":
            merged.append(part)
    return f"concat({', '.join(merged)})"


def _is_literal(sql: str) -> bool:
    return len(sql) >= 2 and sql[0] == sql[-1] == "'" and "'" not in sql[1:-1].replace("''", "")


# The characters a cell cannot hold, which become U+FFFD: the control characters Excel refuses, and the two
# that XML forbids (U+FFFE, U+FFFF), which would leave a workbook Excel can only repair. One list, for the
# rows DuckDB writes (CONTROL, a class of its regular expressions) and the cells openpyxl writes (REFUSED, which
# also takes lone surrogates: no UTF-8 text holds one, but a cell read from a workbook may).
REFUSED_RANGES = [(0x00, 0x08), (0x0B, 0x0C), (0x0E, 0x1F), (0xFFFE, 0xFFFF)]
CONTROL = "".join(f"\\x{{{first:X}}}-\\x{{{last:X}}}" for first, last in REFUSED_RANGES)
REFUSED = re.compile("[" + "".join(f"{chr(first)}-{chr(last)}" for first, last in REFUSED_RANGES) + "\ud800-\udfff]")
# Joins a row's texts for one check: DEL is no control character Excel refuses, nor whitespace.
SEPARATOR = "\x7f"
# A row takes the careful path when one of its texts holds a control character (those Excel refuses, and tab,
# line feed and carriage return, which it keeps but which are rare), markup, or a space at either end, or
# (all texts together) could pass Excel's length limit; other rows, nearly all, are written as they are.
# Each mark is looked for as a plain substring, far cheaper than one regular expression over the same text.
CAREFUL_MARKS = [*(chr(code) for code in range(32)), "\ufffe", "\uffff", "&", "<", ">", f" {SEPARATOR}",
                 f"{SEPARATOR} "]


def clean_text_sql(value: str) -> str:
    """SQL for a text as a cell can hold it (as workbook.clean_text): control characters Excel refuses become
    U+FFFD and text past Excel's 32,767-character limit is cut with an ellipsis."""
    cleaned = f"regexp_replace({value}, '[{CONTROL}]', '\ufffd', 'g')"
    return (f"(case when length({value}) <= {EXCEL_MAX_TEXT} then {cleaned} "
            f"else left({cleaned}, {EXCEL_MAX_TEXT - 1}) || '\u2026' end)")


# A carriage return written as itself is read back as a line feed (XML parsers normalise line ends); as a
# character reference it stays what the input held.
CARRIAGE_RETURN = "&#13;"


def _careful_text(value: str) -> tuple[str, str]:
    """A text that may need it as SQL for its `<t>` attribute (edge whitespace kept) and its content (cleaned,
    cut, escaped)."""
    cleaned = clean_text_sql(value)
    escaped = (f"replace(replace(replace(replace({cleaned}, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), "
               f"chr(13), '{CARRIAGE_RETURN}')")
    space = (f"(case when regexp_matches({value}, '^\\s|\\s$') then ' xml:space=\"preserve\"' else '' end)")
    return space, escaped


def _text_cell(plan: ColumnPlan, value: str) -> str:
    """An inline-string cell: the text as it is on a plain row, else cleaned and escaped (see CAREFUL_MARKS)."""
    style = _style_attr(plan, value)
    space, escaped = _careful_text(value)
    careful = _concat("'<c'", style, "' t=\"inlineStr\"><is><t'", space, "'>'", escaped, "'</t></is></c>'")
    plain = _concat("'<c'", style, "' t=\"inlineStr\"><is><t>'", value, "'</t></is></c>'")
    return f"case when {value} <> '' then (case when q._careful then {careful} else {plain} end) end"


def _value_cell(plan: ColumnPlan, number: str, type_attr: str = "") -> str:
    """A number, date or boolean cell (`type_attr` its ` t="..."` attribute); null where the value is null."""
    cell = _concat("'<c'", _style_attr(plan, "null"), _literal(type_attr), "'><v>'", number, "'</v></c>'")
    return f"case when {number} is not null then {cell} end"


def _cell_type(plan: ColumnPlan) -> str:
    """How a column's values become cells: date, boolean, float, number or text."""
    duck_type = plan.duck_type.upper()
    if duck_type == "DATE" or (plan.kind == "date" and duck_type.startswith("TIMESTAMP")):
        return "date"
    if duck_type == "BOOLEAN":
        return "boolean"
    if duck_type in ("FLOAT", "DOUBLE", "REAL"):
        return "float"
    if duck_type in NUMERIC or duck_type.startswith("DECIMAL"):
        return "number"
    return "text"


def _text_of(plan: ColumnPlan, alias: str = "q.") -> str:
    """A text column's value as text."""
    value = _column(plan, alias)
    return value if plan.duck_type.upper() == "VARCHAR" else f"cast({value} as varchar)"


def _excel_days(value: str) -> str:
    return f"cast(datediff('day', DATE '1899-12-30', {value}) as varchar)"


def cell_sql(plan: ColumnPlan) -> str:
    """SQL for one column's cell of a row, null where the value is null (rows_sql writes an empty cell)."""
    value = _column(plan)
    cell_type = _cell_type(plan)
    if cell_type == "date":
        return _value_cell(plan, _excel_days(f"cast({value} as date)"))
    if cell_type == "boolean":
        return _value_cell(plan, f"(case when {value} then '1' when not {value} then '0' end)", ' t="b"')
    if cell_type == "float":
        # Excel has no infinity or NaN: such a value is left out rather than breaking the file.
        return _value_cell(plan, f"(case when isfinite({value}) then cast({value} as varchar) end)")
    if cell_type == "number":
        return _value_cell(plan, f"cast({value} as varchar)")
    text = _text_of(plan)
    if plan.shared_enum:
        code = f"cast(enum_code(cast({text} as {plan.shared_enum})) as bigint)"
        number = f"cast({code} + {plan.shared_base} as varchar)"
        cell = _concat("'<c'", _style_attr(plan, text), "' t=\"s\"><v>'", number, "'</v></c>'")
        return f"case when {text} <> '' then {cell} end"
    if plan.kind == "date" and plan.duck_type.upper() == "VARCHAR":
        # A date column that arrives as text: a date where it parses, else the text as it is.
        return f"coalesce({_value_cell(plan, _excel_days(f'try_cast({value} as date)'))}, {_text_cell(plan, text)})"
    return _text_cell(plan, text)


def _column(plan: ColumnPlan, alias: str = "q.") -> str:
    return alias + '"' + plan.key.replace('"', '""') + '"'


def texts_sql(plans: list[ColumnPlan]) -> str:
    """A row's texts joined for the careful check (null for a sheet without text)."""
    texts = [_text_of(p, "") for p in plans if _cell_type(p) == "text" and not p.shared_enum]
    return f"concat_ws('{SEPARATOR}', {', '.join(texts)})" if texts else "null::varchar"


def careful_sql(joined: str) -> str:
    """Whether a row takes the careful path, from its texts joined (texts_sql), each mark looked for once."""
    marks = " or ".join(f"contains({joined}, {_mark_literal(mark)})" for mark in CAREFUL_MARKS)
    return (f"coalesce(strlen({joined}) > {EXCEL_MAX_TEXT} or starts_with({joined}, ' ') "
            f"or ends_with({joined}, ' ') or {marks}, false)")


def _mark_literal(mark: str) -> str:
    """A mark of CAREFUL_MARKS as SQL: a control character by its code, the others quoted."""
    return f"chr({ord(mark)})" if len(mark) == 1 and ord(mark) < 32 else _literal(mark)


def row_height_sql(plans: list[ColumnPlan]) -> str:
    """The row's height attributes where its wrapped text needs more than one line (see workbook._fit_height)."""
    wrapped = [p for p in plans if p.wrap_width is not None]
    if not wrapped:
        return "''"
    counts = []
    for plan in wrapped:
        per_line = plan.wrap_width * CHARS_PER_WIDTH
        counts.append(
            f"coalesce(list_sum(list_transform(string_split({_text_of(plan)}, chr(10)), "
            f"lambda part: greatest(1, ceil(length(part) / {per_line})))), 1)")
    lines = f"greatest(1, {', '.join(counts)})"
    return (f"(case when {lines} > 1 then ' ht=\"' || cast({LINE_HEIGHT} * {lines} as bigint) "
            "|| '\" customHeight=\"1\"' else '' end)")


def empty_cell(plan: ColumnPlan) -> str:
    """The markup of the column's cell where its value is null."""
    return f'<c s="{plan.style}"/>' if plan.empty_styled and plan.style else EMPTY_CELL


def rows_sql(source: str, plans: list[ColumnPlan], first_row: int, limit: int, in_order: bool = False) -> str:
    """One row of the sheet per result row, in order: its `<row>` element from `first_row` on (UTF-8 bytes, as
    the file holds them), at most `limit`, each with its `_row`; sorted unless the source is `in_order`."""
    cells = ", ".join(f"coalesce({cell_sql(p)}, '{empty_cell(p)}')" for p in plans)
    return f"""
select encode(concat('<row r="', _r, '"', {row_height_sql(plans)}, '>', {cells}, '</row>')) as xml, q._row
from (select *, cast(_row + {first_row - 1} as varchar) as _r, {careful_sql("_texts")} as _careful
      from (select *, {texts_sql(plans)} as _texts from ({source}) where _row <= {limit})) q
{"" if in_order else "order by q._row"}
"""


# A text column whose values repeat from row to row (a rule's fix, the releases, a payer) is written once into
# the workbook's shared strings, and each of its cells holds only its number there: a third of a Findings row's
# markup, which DuckDB builds and Python then moves and deflates one chunk at a time. A column with more
# values than this keeps them inline.
SHARED_MAX = 5_000
SHARED_CHARACTERS = 1 << 20
SHARED_PART = "xl/sharedStrings.xml"
SHARED_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
SHARED_RELATIONSHIP = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"
MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


@dataclass
class SharedStrings:
    """The workbook's shared strings: the values of the shared columns of its big sheets, in order, and how many
    cells refer to them."""

    values: list[str] = field(default_factory=list)
    uses: int = 0

    def share(self, con, source: str, params: dict, limit: int, plans: list[ColumnPlan],
              clean: Callable[[str], str]) -> None:
        """Give each plan its column's values (from the first `limit` rows of `source`), unless they are too
        many; `clean` makes a value what a cell holds."""
        if not plans:
            return
        parts = [f"select {n} as k, v, count(*) as uses from (select {_text_of(p, '')} as v from ({source}) "
                 f"where _row <= {limit}) where v <> '' group by v" for n, p in enumerate(plans)]
        found: dict[int, list[tuple[str, int]]] = {n: [] for n in range(len(plans))}
        for k, value, uses in con.execute(" union all ".join(parts), params).fetchall():
            found[k].append((value, uses))
        for n, plan in enumerate(plans):
            values = sorted(found[n])
            if not values or len(values) > SHARED_MAX or sum(len(v) for v, _ in values) > SHARED_CHARACTERS:
                continue
            plan.shared_enum = "ENUM(" + ", ".join(_literal(v) for v, _ in values) + ")"
            plan.shared_base = len(self.values)
            self.values.extend(clean(v) for v, _ in values)
            self.uses += sum(uses for _, uses in values)

    def xml(self) -> bytes:
        preserve = ' xml:space="preserve"'  # a space at either end is kept, as on the careful path
        items = "".join(f"<si><t{preserve if v != v.strip() else ''}>{escape(v, {chr(13): CARRIAGE_RETURN})}</t></si>" for v in self.values)
        return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns="{MAIN_NS}" '
                f'count="{self.uses}" uniqueCount="{len(self.values)}">{items}</sst>').encode()


def _with_shared_strings(name: str, data: bytes) -> bytes:
    """The package's content types, or the workbook's relationships, with the shared strings part added."""
    if name == "[Content_Types].xml":
        entry = f'<Override PartName="/{SHARED_PART}" ContentType="{SHARED_TYPE}"/>'
        head, end, tail = data.rpartition(b"</Types>")
    else:
        entry = f'<Relationship Type="{SHARED_RELATIONSHIP}" Target="sharedStrings.xml" Id="rIdShared"/>'
        head, end, tail = data.rpartition(b"</Relationships>")
    if not end:
        raise RuntimeError(f"the saved workbook's {name} has no closing tag")
    return head + entry.encode() + end + tail


@dataclass
class PendingRows:
    """Rows to write into a saved sheet: its position in the workbook, and the query that makes them.
    `closing` lines follow the rows, one text cell each, after an empty row; the rows start at `first_row`.
    `prepared`, where set, is the future of the rows written ahead (PreparedRows), on another connection
    while the rest of the workbook was made."""

    sheet_index: int
    rows: QueryRows
    sql: str
    count: int
    closing: list[str] = field(default_factory=list)
    first_row: int = 3
    prepared: Future | None = None

    def prepare(self, workbook, con=None) -> PreparedRows:
        """Write the rows ahead into their file beside `workbook` (rows_file), from `con` (by default, the
        connection the sheet was planned on)."""
        return PreparedRows.write(rows_file(workbook, self.sheet_index), self, con)

    def write(self, out: Callable[[bytes], object], con=None) -> int:
        """Write the rows (and the closing note) to `out`, from `con` (by default, the connection the sheet
        was planned on)."""
        result = (con or self.rows.con).execute(self.sql, self.rows.params)
        written = 0
        while chunk := result.fetchmany(FETCH_ROWS):
            # Excel refuses a sheet whose rows are out of order or numbered twice: check, never assume.
            if chunk[0][1] != written + 1 or chunk[-1][1] != written + len(chunk):
                raise RuntimeError(f"sheet {self.sheet_index}: rows are not numbered 1, 2, ... in order")
            out(b"".join(row[0] for row in chunk))
            written += len(chunk)
        if self.closing:
            out(closing_xml(self.closing, self.first_row + written + 1))
        return written


def closing_xml(lines: list[str], first_row: int) -> bytes:
    """Rows of one text cell each from `first_row` on: a note below a sheet's rows (text from code, not
    input)."""
    cells = (f'<row r="{first_row + n}"><c t="inlineStr"><is><t>{escape(line)}</t></is></c></row>'
             for n, line in enumerate(lines))
    return "".join(cells).encode()


def _deflate(data: bytes, final: bool) -> bytes:
    compressor = deflate_library.compressobj(COMPRESS_LEVEL, deflate_library.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(
        deflate_library.Z_FINISH if final else deflate_library.Z_SYNC_FLUSH)


class ParallelDeflate:
    """A zip entry's compressor that deflates blocks of a few MB on threads (the deflate lets go of the GIL
    while it works). Each block but the last ends on a byte boundary without closing the stream, so the
    blocks, in order, make one deflate stream (as pigz does); the main thread meanwhile fetches the next
    rows."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(DEFLATE_THREADS, thread_name_prefix="deflate")
        self._pending: deque = deque()
        # What is not deflated yet, as the pieces written; a block is at least DEFLATE_BLOCK bytes of them.
        self._pieces: list[bytes] = []
        self._size = 0

    def compress(self, data) -> bytes:
        self._pieces.append(bytes(data))
        self._size += len(data)
        if self._size >= DEFLATE_BLOCK:
            self._pending.append(self._pool.submit(_deflate, b"".join(self._pieces), False))
            self._pieces.clear()
            self._size = 0
        done = []
        while self._pending and (self._pending[0].done() or len(self._pending) > 2 * DEFLATE_THREADS):
            done.append(self._pending.popleft().result())
        return b"".join(done)

    def flush(self, final: bool = True) -> bytes:
        """The rest of the stream; it ends the stream unless `final` is false (more blocks follow it)."""
        try:
            self._pending.append(self._pool.submit(_deflate, b"".join(self._pieces), final))
            self._pieces.clear()
            return b"".join(future.result() for future in self._pending)
        finally:
            self._pending.clear()
            self._pool.shutdown(wait=True, cancel_futures=True)


def splice_rows(path, pending: list[PendingRows], shared: SharedStrings | None = None) -> None:
    """Put each pending sheet's rows into the saved workbook at `path`, before the sheet's `</sheetData>`, and
    the shared strings they refer to into a part of their own.

    Each sheet's rows are deflated into a file of their own beside `path` first (PreparedRows): those written
    ahead on another connection (PendingRows.prepared) are waited for, the others are written here, in turn,
    meanwhile. The workbook is then copied with the rows in place."""
    if not pending:
        return
    shared = shared if shared is not None and shared.values else None
    by_name = {f"xl/worksheets/sheet{p.sheet_index}.xml": p for p in pending}
    staged = f"{path}.rows"
    files = [rows_file(path, p.sheet_index) for p in pending]
    try:
        with zipfile.ZipFile(path) as src:
            missing = set(by_name) - set(src.namelist())
            if missing:
                raise RuntimeError(f"the saved workbook has no {', '.join(sorted(missing))}")
            if shared is not None and SHARED_PART in src.namelist():
                # openpyxl (3.1) writes every string inline: a part of its own would number its strings first.
                raise RuntimeError(f"the saved workbook has a {SHARED_PART} already")
            written = {rows.sheet_index: rows.prepare(path) for rows in pending if rows.prepared is None}
            for rows in pending:
                if rows.prepared is not None:
                    written[rows.sheet_index] = rows.prepared.result()
            with zipfile.ZipFile(staged, "w", zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL) as dst:
                for info in src.infolist():
                    data = src.read(info)
                    rows = by_name.get(info.filename)
                    if rows is None:
                        if shared is not None and info.filename in ("[Content_Types].xml",
                                                                    "xl/_rels/workbook.xml.rels"):
                            data = _with_shared_strings(info.filename, data)
                        dst.writestr(info, data)
                        continue
                    head, end, tail = data.rpartition(b"</sheetData>")
                    if not end:
                        raise RuntimeError(f"{info.filename} has no sheetData")
                    entry = zipfile.ZipInfo(info.filename, date_time=info.date_time)
                    entry.compress_type = zipfile.ZIP_DEFLATED
                    with dst.open(entry, "w", force_zip64=rows.count > ZIP64_ROWS) as out:
                        written[rows.sheet_index].copy_into(out, head, end + tail)
                if shared is not None:
                    entry = zipfile.ZipInfo(SHARED_PART, date_time=src.infolist()[0].date_time)
                    entry.compress_type = zipfile.ZIP_DEFLATED
                    dst.writestr(entry, shared.xml())
        os.replace(staged, path)
    finally:
        # Rows still being written ahead (this failed first) would leave their file behind: they are let end.
        wait([rows.prepared for rows in pending if rows.prepared is not None and not rows.prepared.cancel()])
        for file in [staged, *files]:
            if os.path.exists(file):
                os.unlink(file)


def rows_file(workbook, sheet_index: int) -> str:
    """Where a sheet's rows are deflated ahead: beside the workbook, named by the sheet's number."""
    return f"{workbook}.sheet{sheet_index}"


@dataclass
class PreparedRows:
    """A sheet's rows, deflated ahead into a file of their own (`path`, owner-only): a run of deflate blocks
    that neither starts nor ends the stream, so that the sheet's XML before and after them is deflated on
    either side. `crc` and `size` are the checksum and length of the XML they hold."""

    path: str
    crc: int
    size: int

    @classmethod
    def write(cls, path, rows: PendingRows, con=None) -> PreparedRows:
        """Write `rows` (from `con`, by default the connection they were planned on) into `path`."""
        compressor = ParallelDeflate()
        crc, size = 0, 0
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:

            def out(data: bytes) -> None:
                nonlocal crc, size
                crc, size = zlib.crc32(data, crc), size + len(data)
                file.write(compressor.compress(data))

            rows.write(out, con)
            file.write(compressor.flush(final=False))
        return cls(str(path), crc, size)

    def copy_into(self, out, head: bytes, tail: bytes) -> None:
        """Write the sheet's entry into `out`, a zip entry open for writing (the standard library's writer,
        whose checksum and sizes are set here, as its own write would have): `head`, the rows, then `tail`."""
        for name in ("_compressor", "_crc", "_file_size", "_compress_size", "_fileobj"):
            if not hasattr(out, name):
                raise RuntimeError(f"this Python's zip writer has no {name}: the sheets cannot be copied in")
        out._compressor = _Written()

        def put(block: bytes) -> None:
            out._fileobj.write(block)
            out._compress_size += len(block)

        put(_deflate(head, False))
        with open(self.path, "rb") as file:
            while block := file.read(COPY_BLOCK):
                put(block)
        put(_deflate(tail, True))
        crc = crc32_combine(zlib.crc32(head), self.crc, self.size)
        out._crc = crc32_combine(crc, zlib.crc32(tail), len(tail))
        out._file_size = len(head) + self.size + len(tail)


class _Written:
    """The compressor of a zip entry whose deflated bytes were written already: nothing more to add."""

    def compress(self, data) -> bytes:
        raise RuntimeError("a prepared entry takes no more data")

    def flush(self) -> bytes:
        return b""


def _gf2_times(matrix: list[int], vector: int) -> int:
    total, row = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, matrix[n]) for n in range(32)]


def crc32_combine(first: int, second: int, second_length: int) -> int:
    """The CRC-32 of two pieces of data one after the other, from each one's CRC-32 and the second's length
    (zlib's crc32_combine, which Python's zlib does not offer): the sheet's XML around its rows is
    checksummed apart from them."""
    if second_length <= 0:
        return first
    # The operator that runs the CRC over one zero bit (the polynomial's row, then a shift), squared three
    # times: over one zero byte. `first` goes through it once per zero byte of the second piece's length,
    # one power of two at a time.
    operator = [0xEDB88320] + [1 << n for n in range(31)]
    for _ in range(3):
        operator = _gf2_square(operator)
    length = second_length
    while length:
        if length & 1:
            first = _gf2_times(operator, first)
        length >>= 1
        if length:
            operator = _gf2_square(operator)
    return first ^ second
