"""A corpus of awkward and broken claim exports, built by hand under a test's tmp_path.

Each builder writes one file the way a real system writes it (Excel's "Unicode text", a European
semicolon export, a workbook with cached formula values) and returns its path.
"""

import codecs
import random
import re
import zipfile
from datetime import datetime
from pathlib import Path

from openpyxl import Workbook

HEADER = ["Claim ID", "Line", "Member ID", "DOS", "CPT Code", "Mod 1", "Units", "Rendering NPI", "POS",
          "Dx 1", "Payer", "Service ZIP"]


def row(claim: str, patient: str = "PT-AWK", **changes) -> list:
    """One clean claim line in HEADER order: a global 76120 in the office, national pricing."""
    values = {"Claim ID": claim, "Line": "1", "Member ID": patient, "DOS": "2024-07-08", "CPT Code": "76120",
              "Mod 1": "", "Units": "1", "Rendering NPI": "1234567893", "POS": "11", "Dx 1": "R13.10",
              "Payer": "Medicare Part B", "Service ZIP": ""}
    values.update(changes)
    return [values[h] for h in HEADER]


def text_export(path: Path, rows: list[list], delimiter: str = ",", newline: str = "\n",
                encoding: str = "utf-8", header: list[str] = HEADER, before: str = "", after: str = "") -> Path:
    """A delimited text export; cells holding the delimiter, a quote or a newline are quoted as Excel does."""
    def cell(value) -> str:
        text = str(value)
        if any(ch in text for ch in (delimiter, '"', "\n", "\r")):
            return '"' + text.replace('"', '""') + '"'
        return text

    lines = [delimiter.join(cell(v) for v in r) for r in [header, *rows]]
    path.write_bytes((before + newline.join(lines) + newline + after).encode(encoding))
    return path


def unicode_text_export(path: Path, rows: list[list]) -> Path:
    """Excel's "Save as Unicode text": UTF-16 little-endian with a byte-order mark, tabs, CRLF."""
    text_export(path, rows, delimiter="\t", newline="\r\n", encoding="utf-16-le")
    path.write_bytes(codecs.BOM_UTF16_LE + path.read_bytes())
    return path


def workbook_export(path: Path, rows: list[list], header: list[str] = HEADER, second_sheet: list[list] = (),
                    blank_rows_above: int = 0) -> Path:
    book = Workbook()
    sheet = book.active
    sheet.title = "Claims"
    for _ in range(blank_rows_above):
        sheet.append([])
    sheet.append(header)
    for r in rows:
        sheet.append(r)
    if second_sheet:
        other = book.create_sheet("Notes")
        other.append(header)
        for r in second_sheet:
            other.append(r)
    book.save(path)
    return path


def with_cached_values(path: Path, cached: dict[str, object]) -> Path:
    """Give formula cells the values Excel would have cached for them (openpyxl writes none)."""
    with zipfile.ZipFile(path) as src:
        parts = {name: src.read(name) for name in src.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"].decode()
    for ref, value in cached.items():
        kind = ' t="str"' if isinstance(value, str) else ""
        sheet, found = re.subn(rf'<c r="{ref}"([^>]*)><f>(.*?)</f><v\s*/>',
                               rf'<c r="{ref}"\1{kind}><f>\2</f><v>{value}</v>', sheet)
        assert found == 1, ref
    parts["xl/worksheets/sheet1.xml"] = sheet.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for name, data in parts.items():
            dst.writestr(name, data)
    return path


def random_bytes(path: Path, size: int, seed: int, allow_nul: bool = True) -> Path:
    rng = random.Random(seed)
    data = bytes(rng.randrange(0 if allow_nul else 1, 256) for _ in range(size))
    path.write_bytes(data)
    return path


def real_date(day: int) -> datetime:
    return datetime(2024, 7, day)
