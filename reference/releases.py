"""Releases a user loads: tell each file's CMS layout from its content, its effective date from its name
(else from --effective), group the files into releases and load them beside the bundled ones.

A release's period is the quarter (RVU, ZIP5, PTP, MUE, AOC) or the year (GPCI, county file) that starts at
its effective date; CARC/RARC lists stay in force until a newer list is loaded. The CSV form of the AOC edits
holds no effective date, in its content or its name (`ncci_aoc_2024-06.csv` is named for the month it was
captured, and is the release of 2024Q3): it always needs --effective.
"""

import calendar
import csv
import io
import re
import tempfile
import zipfile
import zlib
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

from .loaders import (
    AOC_CSV_HEADER,
    AOC_HEADER,
    ReferenceFileError,
    Release,
    bundled_releases,
    ensure_schema,
    is_aoc_workbook,
    load_release,
    open_text,
    rvu_txt_record_shape,
    sha256_of,
)

# layout -> the table its rows go to
TABLE_OF_LAYOUT = {
    "pprrvu": "rvu",
    "pprrvu_txt": "rvu",
    "gpci": "gpci",
    "locco": "locality_counties",
    "zip5": "zip",
    "ptp_txt": "ptp",
    "ptp_csv": "ptp",
    "mue_official_csv": "mue",
    "mue_csv": "mue",
    "mue_all_services_csv": "mue",
    "aoc_xlsx": "aoc",
    "aoc_csv": "aoc",
    "adjustment_codes": "adjustment_codes",
}
# Layouts whose release is one file (NCCI PTP comes in parts, MUE per service type, CARC/RARC per list).
SINGLE_FILE_LAYOUTS = {"pprrvu", "pprrvu_txt", "gpci", "locco", "zip5", "aoc_xlsx", "aoc_csv"}
# Layouts whose effective date is never in the file name: it must come from --effective.
UNDATED_LAYOUTS = {"aoc_csv"}
YEARLY_TABLES = {"gpci", "locality_counties"}
OPEN_ENDED_TABLES = {"adjustment_codes"}
OPEN_END = date(2099, 12, 31)

MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_abbr) if name}
MONTH = "|".join(MONTHS)


class AmbiguousFileError(ReferenceFileError):
    """A file whose layout or effective date cannot be told: the user must say (message names the file)."""


# --- Layout, from the first lines of the file ---------------------------------------------------------

def _head_rows(path: Path, limit: int = 60) -> tuple[list[str], list[list[str]]]:
    """The first lines of a file as text, and the same parsed as CSV (quoted line breaks kept inside)."""
    with open_text(path, encoding="latin-1") as fh:
        text = fh.read(64 * 1024)
    lines = text.splitlines()[:limit]
    rows = []
    try:
        for number, row in enumerate(csv.reader(io.StringIO(text, newline=""))):
            rows.append(row)
            if number >= limit:
                break
    except csv.Error:
        pass
    return lines, rows


# What a file cut short or damaged in a download raises from the gzip, zip and zlib readers underneath (EOFError
# for a gzip stream that ends early; OSError for one that is no gzip at all).
DAMAGED = (OSError, EOFError, zlib.error, zipfile.BadZipFile)


def damaged(exc: BaseException) -> str:
    said = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"cannot be read: the file is damaged or cut short ({said}); download it again"


def is_workbook(path: Path) -> bool:
    """An Excel workbook (.xlsx) is a zip archive holding xl/workbook.xml."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return "xl/workbook.xml" in archive.namelist()


def detect_layout(path: Path) -> str:
    """The CMS layout of one file, told from its content (never from its name)."""
    if path.stat().st_size == 0:
        raise AmbiguousFileError(f"{path.name}: the file is empty; download it again")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == b"PK\x03\x04" and not zipfile.is_zipfile(path):
        # A zip archive (a CMS download, an Excel workbook) whose end, where its directory is, never came.
        raise ReferenceFileError(f"{path.name}: cannot be read: a zip archive or workbook without its end, cut "
                                 "short or damaged; download it again")
    if is_workbook(path):
        if is_aoc_workbook(path):
            return "aoc_xlsx"
        said = table_from_name(path.name)
        if said and said != "aoc":
            # A CMS CSV opened and saved as a workbook: its codes and MACs may have lost their leading zeros.
            raise AmbiguousFileError(
                f"{path.name}: an Excel workbook, but claimscrub reads {TABLE_WORDS[said]} from the CSV or text "
                "file CMS publishes: load that file as downloaded")
        raise AmbiguousFileError(
            f"{path.name}: an Excel workbook without the AOC header row ({', '.join(AOC_HEADER)}) in its first "
            "sheet: not a CMS reference layout claimscrub knows (the add-on code edits are the one table read "
            "from a workbook)"
        )
    lines, rows = _head_rows(path)
    if any(re.match(r"^[A-Z0-9]{5}\t[A-Z0-9]{5}\t", line) for line in lines):
        return "ptp_txt"
    # The fixed-width RVU file: HDR (copyright) lines, then 200-character records, trailing blanks trimmed.
    if sum(rvu_txt_record_shape(line) for line in lines) >= 3:
        return "pprrvu_txt"
    if sum(bool(re.match(r"^[A-Z]{2}\d{5}[0-9A-Z]{5}\d{2}", line)) for line in lines) >= 3:
        return "zip5"
    for row in rows:
        head = [" ".join(cell.split()).lower() for cell in row]  # CMS headers break lines inside a cell
        if not head:
            continue
        if head[:3] == ["hcpcs", "mod", "description"] and len(head) >= 25:
            return "pprrvu"
        if head[:2] == ["column_1", "column_2"]:
            return "ptp_csv"
        if head[0].startswith("hcpcs/") and len(head) > 1 and "mue values" in head[1]:
            return "mue_official_csv"
        if head[0] == "hcpcs_cpt_code" and len(head) > 1 and "mue_values" in head[1]:
            return "mue_csv"
        if head[0] == "hcpcs" and "mue_service_type" in head:
            return "mue_all_services_csv"
        if head[:2] == ["code", "description"]:
            return "adjustment_codes"
        if set(AOC_CSV_HEADER) <= set(head):
            return "aoc_csv"
        if head[0].startswith("medicare adm") and len(head) > 4 and "counties" in head[4]:
            return "locco"
        if head[0].startswith("medicare administrative contractor") and any("gpci" in h for h in head):
            return "gpci"
    raise AmbiguousFileError(
        f"{path.name}: not a CMS reference layout claimscrub knows (PPRRVU CSV or fixed-width text, GPCI, "
        "county/locality, ZIP5, NCCI PTP text or CSV, MUE CSV, AOC workbook or CSV, CARC/RARC list)"
    )


# --- Effective date, from the file name ---------------------------------------------------------------

def _year(digits: str) -> int:
    return int(digits) if len(digits) == 4 else 2000 + int(digits)


def _quarter_start(year: int, quarter: int) -> date:
    return date(year, 3 * quarter - 2, 1)


def date_from_name(name: str, table: str) -> date | None:
    """The effective date a CMS file name holds, if it holds one.

    Understood: `Eff_07-01-2026` (MUE), `2024-07-01`, `2024Q3` / `2026-q3`, NCCI versions `ccipra-v322r0`
    (version 32.2: 1994 + 32 = 2026, quarter 2 + 1), `RVU25D`, a month with its year (`PPRRVU2025_Oct`,
    `ZIP5_OCT2025`, `PPRRVU25_JAN`) and, for the yearly tables only, a bare year (`GPCI2025`, `25LOCCO`).
    """
    lowered = name.lower()
    if match := re.search(r"(?<!\d)(\d{2})-(\d{2})-(\d{4})(?!\d)", lowered):
        return date(int(match[3]), int(match[1]), int(match[2]))
    if match := re.search(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)", lowered):
        return date(int(match[1]), int(match[2]), int(match[3]))
    if match := re.search(r"(?<!\d)(20\d{2})[-_ ]?q([1-4])(?![0-9])", lowered):
        return _quarter_start(int(match[1]), int(match[2]))
    if match := re.search(r"cci[a-z]*-v(\d{2})(\d)r\d", lowered):
        return _quarter_start(1994 + int(match[1]), int(match[2]) + 1)
    if match := re.search(r"rvu(\d{2})([a-d])(?![a-z])", lowered):
        return _quarter_start(_year(match[1]), "abcd".index(match[2]) + 1)
    if match := re.search(rf"(?<!\d)(\d{{4}}|\d{{2}})[-_ ]?({MONTH})(?![a-z])", lowered) or re.search(
        rf"(?<![a-z])({MONTH})[a-z]*[-_ ]?(\d{{4}}|\d{{2}})(?!\d)", lowered
    ):
        year, month = (match[1], match[2]) if match[1].isdigit() else (match[2], match[1])
        return date(_year(year), MONTHS[month], 1)
    if table in YEARLY_TABLES and (
        match := re.search(r"(?<!\d)(20\d{2})(?!\d)", lowered) or re.match(r"(\d{2})[a-z]", lowered)
    ):
        return date(_year(match[1]), 1, 1)
    return None


# What a CMS file's name says it holds, where it says: the word, and the table.
NAME_TABLES = [(r"rvu", "rvu"), (r"gpci", "gpci"), (r"locco", "locality_counties"),
               (r"(?<![a-z])zip5?(?![a-z])", "zip"), (r"(?<![a-z])(ptp|cci[a-z]*-v)", "ptp"), (r"(?<![a-z])mue", "mue"),
               (r"(?<![a-z])aoc", "aoc")]
TABLE_WORDS = {"rvu": "fee schedule RVUs", "gpci": "GPCIs", "locality_counties": "localities and counties",
               "zip": "ZIP codes and localities", "ptp": "NCCI PTP edits", "mue": "MUE values",
               "aoc": "add-on code edits", "adjustment_codes": "adjustment reason codes"}


def table_from_name(name: str) -> str:
    """The table a CMS file's name names (`MCR_MUE_...`, `GPCI2026`, `ccipra-v322r0`), or "" where it names none
    or several."""
    lowered = re.sub(r"(\.(zip|gz|csv|txt|xlsx|xls))+$", "", name.lower())  # `.zip` is no ZIP code file
    named = {table for pattern, table in NAME_TABLES if re.search(pattern, lowered)}
    return named.pop() if len(named) == 1 else ""


def variant_from_name(name: str, table: str) -> str:
    """'QPP' for the RVU file of qualifying APM participants (`PPRRVU2026_Apr_QPP.txt`, paid at their own
    conversion factor), '' for every other file (`PPRRVU2026_Apr_nonQPP.txt`)."""
    if table == "rvu" and re.search(r"(?<![a-z])qpp(?![a-z])", name.lower()):
        return "QPP"
    return ""


def period_end(table: str, start: date) -> date:
    """The last day of the calendar quarter (or year) that holds `start`: a file effective inside its quarter (a
    correction posted mid-quarter) judges the rest of that quarter, and a date after it is past its end (stale)
    until the next quarter's file is loaded, as after any other release."""
    if table in OPEN_ENDED_TABLES:
        return OPEN_END
    if table in YEARLY_TABLES:
        return date(start.year, 12, 31)
    last_month = (start.month - 1) // 3 * 3 + 3
    return date(start.year, last_month, calendar.monthrange(start.year, last_month)[1])


def release_id_for(table: str, start: date) -> str:
    """The usual name of a release starting at `start`. A quarterly table's file effective after its quarter's
    first day (a correction CMS posts mid-quarter) is named by its date: under the quarter's name it would
    replace that quarter's release and leave the days before it to an older one."""
    quarter = f"{start.year}Q{(start.month - 1) // 3 + 1}"
    if table in ("ptp", "mue", "aoc", "zip") and (start.day, (start.month - 1) % 3) != (1, 0):
        quarter = f"{start:%Y-%m-%d}"
    return {
        "rvu": f"RVU{start.year % 100:02d}{'ABCD'[(start.month - 1) // 3]}",
        "gpci": f"GPCI {start.year}",
        "locality_counties": f"LOCCO {start.year}",
        "zip": f"ZIP5 {quarter}",
        "ptp": f"PTP {quarter}",
        "mue": f"MUE {quarter}",
        "aoc": f"AOC {quarter}",
        "adjustment_codes": f"CARC-RARC {start:%Y-%m}",
    }[table]


# --- Planning and loading ----------------------------------------------------------------------------

@dataclass
class PlannedFile:
    path: Path
    shown_as: str
    layout: str
    table: str
    effective: date
    variant: str = ""


MEMBER_SUFFIXES = (".csv", ".txt", ".xlsx")


def _expand(paths: list[Path], stack: ExitStack) -> list[tuple[Path, str, str | None]]:
    """Each input as (readable path, name shown to the user, archive name); a CMS .zip gives its .csv, .txt
    and .xlsx members. An Excel workbook is a zip too, but a file of its own."""
    files = []
    for path in paths:
        if path.is_dir():
            raise ReferenceFileError(f"{path}: is a folder, not a CMS reference file (name the files in it)")
        if not path.is_file():
            raise ReferenceFileError(f"{path}: file not found")
        if not zipfile.is_zipfile(path) or is_workbook(path):
            files.append((path, path.name, None))
            continue
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="claimscrub-ref-")))
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist()
                       if m.lower().endswith(MEMBER_SUFFIXES) and not m.startswith("__MACOSX")]
            # The RVU archives publish each table as .csv, .txt and Excel: read the .csv.
            stems = {Path(m.lower()).stem for m in members if m.lower().endswith(".csv")}
            members = [m for m in members if m.lower().endswith(".csv") or Path(m.lower()).stem not in stems]
            for member in members:
                target = folder / Path(member).name
                try:
                    target.write_bytes(archive.read(member))
                except DAMAGED as exc:
                    raise ReferenceFileError(f"{path.name}:{Path(member).name}: {damaged(exc)}") from None
                files.append((target, f"{path.name}:{Path(member).name}", path.name))
    return files


def plan(paths: list[Path], effective: date | None, stack: ExitStack) -> list[PlannedFile]:
    planned = []
    for path, shown, archive in _expand(paths, stack):
        try:
            layout = detect_layout(path)
        except AmbiguousFileError:
            if archive:  # CMS archives also hold readmes and other layouts: take what is known
                continue
            raise
        except DAMAGED as exc:
            raise ReferenceFileError(f"{shown}: {damaged(exc)}") from None
        table = TABLE_OF_LAYOUT[layout]
        # A file whose name names another table (a download saved under the wrong name, or a CMS archive's file
        # renamed) would be dated, and its release named, by that other table's date.
        said = table_from_name(path.name)
        if said and said != table:
            raise ReferenceFileError(f"{shown}: its name says {TABLE_WORDS[said]}, but it holds "
                                     f"{TABLE_WORDS.get(table, table)}: load the file meant, or rename this one")
        if layout in UNDATED_LAYOUTS:
            if effective is None:
                raise AmbiguousFileError(
                    f"{shown}: the CSV form of the AOC edits holds no effective date (a date in its name is when "
                    "it was captured); give --effective YYYY-MM-DD, the first day of the quarter it judges "
                    "(2024-07-01 for ncci_aoc_2024-06.csv)"
                )
            planned.append(PlannedFile(path, shown, layout, table, effective))
            continue
        named = date_from_name(path.name, table) or (archive and date_from_name(archive, table)) or None
        if named and effective and named != effective:
            raise AmbiguousFileError(
                f"{shown}: the file name says effective {named}, --effective says {effective}; "
                "rename the file or drop --effective"
            )
        when = named or effective
        if when is None:
            raise AmbiguousFileError(
                f"{shown}: cannot tell the effective date from the file name; give --effective YYYY-MM-DD"
            )
        variant = variant_from_name(path.name, table)  # the file names it; an archive holds both files
        planned.append(PlannedFile(path, shown, layout, table, when, variant))
    if not planned:
        raise AmbiguousFileError(f"{', '.join(p.name for p in paths)}: no CMS reference file inside")
    return planned


def group_releases(planned: list[PlannedFile], release_id: str | None) -> list[Release]:
    """Files of one table, effective date and variant make one release (PTP parts f1..f4, MUE service
    types); the QPP RVU file is a release of its own beside the other one of its quarter."""
    groups: dict[tuple[str, date, str], list[PlannedFile]] = {}
    # A file given twice (a CMS zip beside the CSV taken out of it) is read once: its rows twice over made every
    # line priced by them a line of lines.csv twice over. Contents are compared only between files of one size
    # (load_release hashes the release's files again for its own record).
    sizes = Counter(item.path.stat().st_size for item in planned)
    contents: set[str] = set()
    for item in planned:
        if sizes[item.path.stat().st_size] > 1:
            digest = sha256_of([item.path])
            if digest in contents:
                continue
            contents.add(digest)
        groups.setdefault((item.table, item.effective, item.variant), []).append(item)
    if release_id and len(groups) > 1:
        raise AmbiguousFileError(
            f"--release-id names one release, but the files make {len(groups)}: "
            + "; ".join(f"{t}{' ' + v if v else ''} from {d}" for t, d, v in groups)
        )
    releases = []
    for (table, start, variant), items in groups.items():
        layouts = {i.layout for i in items}
        if len(layouts) > 1:
            raise AmbiguousFileError(
                f"{', '.join(i.shown_as for i in items)}: one {table} release in several layouts "
                f"({', '.join(sorted(layouts))}); load them separately"
            )
        if layouts <= SINGLE_FILE_LAYOUTS and len(items) > 1:
            raise AmbiguousFileError(
                f"{', '.join(i.shown_as for i in items)}: {len(items)} {table} files for {start}; load one"
            )
        releases.append(Release(
            id=release_id or " ".join(filter(None, [release_id_for(table, start), variant])),
            table=table,
            layout=layouts.pop(),
            effective_start=start,
            effective_end=period_end(table, start),
            files=[i.path for i in items],
            origin="user",
            names=[i.shown_as for i in items],
            variant=variant,
        ))
    return releases


def load_files(con: duckdb.DuckDBPyConnection, paths: list[Path], effective: date | None = None,
               release_id: str | None = None) -> list[tuple[Release, bool]]:
    """Load user files as releases; returns each release and whether it was (re)loaded now."""
    with ExitStack() as stack:
        releases = group_releases(plan(paths, effective, stack), release_id)
        done = []
        # All the command's releases or none: a file refused after others were read leaves those unloaded too.
        ensure_schema(con)
        if release_id:
            # A release id names one table's release: taken by another table's, the two would be confused in
            # every list and finding that names it.
            others = [row[0] for row in con.execute(
                "select distinct table_name from ref_releases where release_id = ? and table_name not like ? || '%'",
                [release_id, releases[0].table]).fetchall()] if releases else []
            if others:
                raise ReferenceFileError(f"--release-id {release_id!r} is the name of a loaded {others[0]} release: "
                                         "choose another")
            # Nor one named as another table's releases are ('RVU26D' for MUE rows), loaded or not yet.
            said = table_from_name(release_id)
            if releases and said and said != releases[0].table:
                raise ReferenceFileError(f"--release-id {release_id!r} names {TABLE_WORDS[said]}, but the file holds "
                                         f"{TABLE_WORDS.get(releases[0].table, releases[0].table)}: choose another")
        con.execute("begin transaction")
        try:
            for release in releases:
                try:
                    done.append((release, load_release(con, release, schema_ready=True, transaction=False)))
                except ReferenceFileError:
                    raise
                except DAMAGED as exc:
                    raise ReferenceFileError(f"{', '.join(release.names)}: {damaged(exc)}") from None
                except (duckdb.Error, ValueError, KeyError, IndexError) as exc:
                    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise ReferenceFileError(
                        f"{', '.join(release.names)}: cannot be read as {release.layout}: {first_line}"
                    ) from exc
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        return done


def list_releases(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Every loaded release, then the bundled ones not loaded yet (they load on the first scrub)."""
    ensure_schema(con)
    rows = con.execute(
        """select release_id, table_name, effective_start, effective_end, row_count, source_files, origin,
                  left(sha256, 12)
           from ref_releases order by table_name, effective_start, release_id"""
    ).fetchall()
    listed = [
        {"release": r[0], "table": r[1], "start": r[2], "end": r[3], "rows": r[4], "sources": r[5],
         "origin": r[6], "sha256": r[7]}
        for r in rows
    ]
    loaded = {r[0] for r in rows}
    for release in bundled_releases():
        if release.id in loaded:
            continue
        for table_name, count in release.rows.items():
            listed.append({"release": release.id, "table": table_name, "start": release.effective_start,
                           "end": release.effective_end, "rows": count,
                           "sources": "; ".join(p.name for p in release.files),
                           "origin": "bundled (loads on first scrub)", "sha256": ""})
    return listed
