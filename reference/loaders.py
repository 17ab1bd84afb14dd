"""One loader per official CMS file layout, each writing one release into its DuckDB table.

Every loader is idempotent: loading a release replaces that release's rows (delete, then insert), and
records it in `ref_releases` with its effective period, source files, sha256 and row count.
"""

from __future__ import annotations

import calendar
import csv
import functools
import gzip
import hashlib
import io
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple

import duckdb
import pandas as pd

DATA_DIR = Path(__file__).resolve().parent / "data"
MANIFEST = Path(__file__).resolve().parent / "manifest.toml"

MUE_SERVICE_TYPES = {
    "practitioner": "practitioner",
    "outpatient hospital": "outpatient_hospital",
    "dme supplier": "dme",
    "dme": "dme",
}

SCHEMA = """
create table if not exists ref_releases (
    release_id varchar, table_name varchar, layout varchar, effective_start date, effective_end date,
    source_files varchar, sha256 varchar, row_count bigint, origin varchar, loaded_at timestamp,
    variant varchar default '', table_version integer,
    primary key (release_id, table_name));
create table if not exists ref_rvu (
    release_id varchar, hcpcs varchar, modifier varchar, status varchar,
    work_rvu decimal(9,2), pe_nonfacility decimal(9,2), pe_nonfacility_na boolean,
    pe_facility decimal(9,2), pe_facility_na boolean, mp_rvu decimal(9,2),
    pctc varchar, global_days varchar, mult_proc varchar, conversion_factor decimal(9,4),
    bilat_surg varchar, asst_surg varchar, co_surg varchar, team_surg varchar);
create table if not exists ref_gpci (
    release_id varchar, mac varchar, locality varchar, locality_key varchar, state varchar,
    locality_name varchar, work_gpci decimal(6,3), pe_gpci decimal(6,3), mp_gpci decimal(6,3),
    work_gpci_floor decimal(6,3), work_floor_through date);
create table if not exists ref_zip (
    release_id varchar, zip varchar, state varchar, mac varchar, locality varchar);
create table if not exists ref_ptp (
    release_id varchar, column_1 varchar, column_2 varchar, effective_date date, deletion_date date,
    modifier_indicator varchar, rationale varchar);
create table if not exists ref_mue (
    release_id varchar, service_type varchar, hcpcs varchar, mue_value integer, mai integer,
    rationale varchar);
create table if not exists ref_aoc (
    release_id varchar, add_on_code varchar, primary_code varchar, edit_type integer,
    aoc_deletion_date date, primary_deletion_date date, edit_effective_date date, edit_deletion_date date,
    special_instructions varchar);
create table if not exists ref_locality_counties (
    release_id varchar, mac varchar, locality varchar, locality_key varchar, state varchar,
    fee_schedule_area varchar, counties varchar);
create table if not exists ref_adjustment_codes (
    release_id varchar, code_type varchar, code varchar, description varchar);
-- Columns added since the first databases were made: those gain them here (the tables above have them).
alter table ref_releases add column if not exists variant varchar default '';
alter table ref_releases add column if not exists table_version integer;
alter table ref_rvu add column if not exists bilat_surg varchar;
alter table ref_rvu add column if not exists asst_surg varchar;
alter table ref_rvu add column if not exists co_surg varchar;
alter table ref_rvu add column if not exists team_surg varchar;
alter table ref_gpci add column if not exists work_gpci_floor decimal(6,3);
alter table ref_gpci add column if not exists work_floor_through date;
"""

# The version of each table's columns. A release recorded under an older version (a database made before
# the columns were added holds null in them: the RVU policy indicators, the GPCI work floor) counts as not
# loaded, so the bundled releases load again on the next run and a user's file loads again when given again.
# Tables not named here are at version 1.
TABLE_VERSIONS = {"rvu": 2, "gpci": 2}

TABLE_OF = {
    "rvu": "ref_rvu",
    "gpci": "ref_gpci",
    "zip": "ref_zip",
    "ptp": "ref_ptp",
    "mue": "ref_mue",
    "adjustment_codes": "ref_adjustment_codes",
    "locality_counties": "ref_locality_counties",
    "aoc": "ref_aoc",
}


class ReferenceFileError(ValueError):
    """A reference file that cannot be read in the layout it claims (message names the file)."""


@dataclass
class Release:
    id: str
    table: str
    layout: str
    effective_start: date
    effective_end: date
    files: list[Path]
    origin: str = "bundled"
    # the names recorded as its sources (a file inside a CMS .zip is named "archive.zip:member")
    names: list[str] = field(default_factory=list)
    # rows per table the manifest expects (bundled releases only)
    rows: dict[str, int] = field(default_factory=dict)
    # '' for the file every practitioner is paid by; 'QPP' for the RVU file of qualifying APM participants
    variant: str = ""

    def shown(self) -> list[str]:
        """The names its files are known by: those recorded, else the files' own."""
        return self.names or [p.name for p in self.files]


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(SCHEMA)


def bundled_releases() -> list[Release]:
    manifest = tomllib.loads(MANIFEST.read_text())
    return [
        Release(
            id=r["id"],
            table=r["table"],
            layout=r["layout"],
            effective_start=date.fromisoformat(r["effective_start"]),
            effective_end=date.fromisoformat(r["effective_end"]),
            files=[DATA_DIR / f for f in r["files"]],
            rows=r["rows"],
            variant=r.get("variant", ""),
        )
        for r in manifest["release"]
    ]


def _bundled_sha256(paths: tuple[Path, ...]) -> str:
    """The files shipped with the package are hashed once per process and version of each file, not on every
    run's check that they are loaded."""
    return _sha256_of_versions(tuple((path, path.stat().st_size, path.stat().st_mtime_ns) for path in paths))


@functools.lru_cache(maxsize=64)
def _sha256_of_versions(versions: tuple[tuple[Path, int, int], ...]) -> str:
    return sha256_of([path for path, _, _ in versions])


def sha256_of(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def open_text(path: Path, encoding: str = "utf-8-sig") -> io.TextIOBase:
    raw = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    return io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")


def table_version(table: str) -> int:
    return TABLE_VERSIONS.get(table, 1)


def is_loaded(con: duckdb.DuckDBPyConnection, release: Release, digest: str) -> bool:
    rows = con.execute(
        """select count(*) from ref_releases
           where release_id = ? and sha256 = ? and coalesce(table_version, 1) >= ?""",
        [release.id, digest, table_version(release.table)],
    ).fetchall()
    return rows[0][0] > 0


# Tables whose loader replaces only the service types its files hold (load_mue), not the whole release.
BY_SERVICE_TYPE = {"mue"}


def load_release(con: duckdb.DuckDBPyConnection, release: Release, force: bool = False,
                 schema_ready: bool = False, transaction: bool = True) -> bool:
    """Load one release unless the same files are already loaded. Returns True when it (re)loaded.

    `schema_ready`: the caller has applied the schema on this connection already. `transaction`: the release
    is loaded in a transaction of its own (else in the caller's, which loads several as one)."""
    if not schema_ready:
        ensure_schema(con)
    for path in release.files:
        if not path.exists():
            raise ReferenceFileError(f"{path}: reference file not found")
    digest = (_bundled_sha256(tuple(release.files)) if release.origin == "bundled"
              else sha256_of(release.files))
    if not force and is_loaded(con, release, digest):
        return False
    loader = LOADERS[release.layout]
    table = TABLE_OF[release.table]
    # In UTC, as the auditors' decisions are stamped: a standing dismissal lapses when a release is loaded after
    # it, and DuckDB's current_timestamp would be the machine's local time.
    loaded_at = datetime.now(timezone.utc).replace(tzinfo=None)
    if transaction:
        con.execute("begin transaction")
    try:
        if release.table in BY_SERVICE_TYPE:
            # CMS publishes each MUE service type in a file of its own: a quarter's outpatient hospital file
            # loaded after its practitioner file adds to the release, and replaces only its own service type.
            tables = loader(con, release)
            names = ", ".join("?" * len(tables))
            con.execute(f"delete from ref_releases where release_id = ? and table_name in ({names})",
                        [release.id, *tables])
        else:
            con.execute(f"delete from {table} where release_id = ?", [release.id])
            con.execute("delete from ref_releases where release_id = ? and (table_name = ? or table_name like ?)",
                        [release.id, release.table, release.table + "_%"])
            tables = loader(con, release)
        if release.origin != "bundled":
            for path, shown in zip(release.files, release.shown()):
                _refuse_cut_short(path, shown, release.layout)
        for table_name, count in tables.items():
            con.execute(
                """insert into ref_releases (release_id, table_name, layout, effective_start, effective_end,
                                             source_files, sha256, row_count, origin, loaded_at, variant,
                                             table_version)
                   values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [release.id, table_name, release.layout, release.effective_start, release.effective_end,
                 "; ".join(release.shown()), digest, count,
                 release.origin, loaded_at, release.variant, table_version(release.table)],
            )
        if transaction:
            con.execute("commit")
    except Exception:
        if transaction:
            con.execute("rollback")
        raise
    return True


def _refuse_cut_short(path: Path, shown: str, layout: str) -> None:
    """Every CMS text file ends its last record with a line break: one that ends inside a record stopped in the
    download (a record cut inside its last field fits the layout still, and the edits after it are lost). Asked
    after the loader, whose refusals name the record; a gzip stream cut short is its reader's to find."""
    if layout == "aoc_xlsx" or path.suffix.lower() == ".gz":
        return
    with open(path, "rb") as fh:
        fh.seek(-1, 2)
        if fh.read(1) not in (b"\n", b"\r"):
            raise ReferenceFileError(f"{shown}: the last record ends without a line break: the file is cut short; "
                                     "download it again")


def _insert_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    con.register("incoming_frame", frame)
    try:
        con.execute(f"insert into {table} by name select * from incoming_frame")
    finally:
        con.unregister("incoming_frame")


# --- Physician Fee Schedule RVU file (PPRRVU): the CSV form (preamble, then 31 columns) ------------------

RVU_COLUMNS = ["release_id", "hcpcs", "modifier", "status", "work_rvu", "pe_nonfacility", "pe_nonfacility_na",
               "pe_facility", "pe_facility_na", "mp_rvu", "pctc", "global_days", "mult_proc", "conversion_factor",
               "bilat_surg", "asst_surg", "co_surg", "team_surg"]


def _insert_rvu(con: duckdb.DuckDBPyConnection, records: list[tuple]) -> None:
    con.register("incoming_frame", pd.DataFrame.from_records(records, columns=RVU_COLUMNS))
    try:
        con.execute(
            """
            insert into ref_rvu by name
            select * replace (work_rvu::decimal(9,2) as work_rvu, pe_nonfacility::decimal(9,2) as pe_nonfacility,
                              pe_facility::decimal(9,2) as pe_facility, mp_rvu::decimal(9,2) as mp_rvu,
                              conversion_factor::decimal(9,4) as conversion_factor)
            from incoming_frame
            """
        )
    finally:
        con.unregister("incoming_frame")


# The conversion factors the rule book gives (RULES.md, Money): a fee schedule file carrying one is of that year
# and variant, whatever its name says.
KNOWN_CONVERSION_FACTORS = {"32.3465": (2025, ""), "33.4009": (2026, ""), "33.5675": (2026, "QPP")}
RVU_TITLE = re.compile(r"\b(20\d\d) National Physician Fee Schedule Relative Value File (January|April|July|October)",
                       re.IGNORECASE)
QUARTER_OF_MONTH = {"january": 1, "april": 2, "july": 3, "october": 4}


def _refuse_another_period(release: Release, shown: str, conversion_factor: str, title: str = "") -> None:
    """A site's fee schedule file whose own conversion factor, or title, says another year, quarter or variant
    than its name (or --effective) gives: loaded, its rates would price the name's dates."""
    if release.origin != "user":
        return
    start = release.effective_start
    if match := RVU_TITLE.search(title):
        year, quarter = int(match[1]), QUARTER_OF_MONTH[match[2].lower()]
        if (year, quarter) != (start.year, (start.month - 1) // 3 + 1):
            raise ReferenceFileError(
                f"{shown}: its title says the {year} {match[2].capitalize()} release, but it would load as "
                f"{release.id} from {start}: rename the file (or give --effective) to match what it holds")
    known = KNOWN_CONVERSION_FACTORS.get(conversion_factor.strip())
    if known and known[0] != start.year:
        raise ReferenceFileError(
            f"{shown}: its conversion factor {conversion_factor.strip()} is that of {known[0]}, but it would load "
            f"as {release.id} from {start}: rename the file (or give --effective) to match what it holds")
    if known and known[1] != release.variant:
        said = "QPP" if release.variant else "not QPP"
        holds = "the QPP file's" if known[1] else "the non-QPP file's"
        raise ReferenceFileError(
            f"{shown}: its name says {said}, but its conversion factor {conversion_factor.strip()} is {holds}: "
            "rename the file to match what it holds")


def _rvu_title(path: Path) -> str:
    """The title lines above a PPRRVU CSV's header ('2025 National Physician Fee Schedule ... October Release')."""
    with open_text(path, encoding="latin-1") as fh:
        return " ".join(line for _, line in zip(range(12), fh))


def _rvu_rows(path: Path) -> list[list[str]]:
    """The data rows of a PPRRVU CSV. A file cut short (a download that stopped) is refused rather than
    loaded without the codes after the cut: its last row is shorter than the header, or it has no row at
    all."""
    with open_text(path, encoding="latin-1") as fh:
        rows = list(csv.reader(fh))
    for number, row in enumerate(rows):
        if row and row[0].strip().upper() == "HCPCS" and len(row) > 1 and row[1].strip().upper() == "MOD":
            data = [(line, r) for line, r in enumerate(rows[number + 1:], start=number + 2) if r and r[0].strip()]
            if not data:
                raise ReferenceFileError(f"{path.name}: no rows below its 'HCPCS,MOD,...' header: the file is "
                                         "cut short; download it again")
            width = max(i for i, cell in enumerate(row) if cell.strip()) + 1
            for line, r in data:
                if len(r) < width:
                    raise ReferenceFileError(
                        f"{path.name}: row {line} ({r[0].strip()}) has {len(r)} of the header's {width} "
                        "fields: the file is cut short or damaged; download it again")
            return [r for _, r in data]
    raise ReferenceFileError(f"{path.name}: no 'HCPCS,MOD,...' header row: not a PFS relative value file")


def load_pprrvu(con: duckdb.DuckDBPyConnection, release: Release) -> dict[str, int]:
    rows = _rvu_rows(release.files[0])
    for r in rows:
        if problem := code_problem(r[0].strip()):
            raise ReferenceFileError(f"{release.shown()[0]}: {problem}")
    _refuse_another_period(release, release.shown()[0], rows[0][24], _rvu_title(release.files[0]))

    def num(value: str) -> str:
        value = value.strip()
        return value if value else "0"

    # Columns 19 to 22 (from 0): BILAT SURG, ASST SURG, CO-SURG, TEAM SURG.
    records = [
        (release.id, r[0].strip().upper(), r[1].strip().upper(), r[3].strip().upper(), num(r[5]), num(r[6]),
         r[7].strip().upper() == "NA", num(r[8]), r[9].strip().upper() == "NA", num(r[10]), r[13].strip(),
         r[14].strip(), r[18].strip(), num(r[24]), r[19].strip(), r[20].strip(), r[21].strip(), r[22].strip())
        for r in rows
    ]
    _insert_rvu(con, records)
    return {"rvu": len(records)}


# --- Physician Fee Schedule RVU file, fixed-width text (record layout in the RVUyyX readme) ---------------

class Field(NamedTuple):
    """One field of a fixed-width record: first and last position (from 1, as the layout gives them), the
    pattern its text must match, and that pattern in words."""

    name: str
    first: int
    last: int
    pattern: str
    shape: str


def _number(name: str, first: int, last: int, decimals: int = 2) -> Field:
    """A right-aligned decimal filling its field: '  0.37', ' 33.4009'."""
    whole = last - first + 1 - decimals - 1
    pattern = "(?:" + "|".join(f" {{{whole - k}}}\\d{{{k}}}" for k in range(1, whole + 1)) + f")\\.\\d{{{decimals}}}"
    return Field(name, first, last, pattern, f"a number {'9' * whole}.{'9' * decimals}")


def _blank(first: int, last: int) -> Field:
    return Field("filler", first, last, f" {{{last - first + 1}}}", "blank")


def _digit(name: str, position: int) -> Field:
    return Field(name, position, position, "[0-9]", "one digit")


# Every field of a data record of the fixed-width RVU file (RVU26B.pdf, "Length of Record: 200"). The blanks
# between fields are checked too: a character missing or added shifts every field after it, and breaks one.
RVU_TXT_FIELDS = [
    Field("HCPCS code", 1, 5, "[A-Z0-9]{5}", "five letters and digits"),
    Field("modifier", 6, 7, "[A-Z0-9]{2}| {2}", "two letters or digits, or blank"),
    Field("description", 8, 57, ".{50}", "50 characters"),
    Field("status code", 58, 58, "[A-Z]", "one letter"),
    # '+' where the CSV form's NOT USED FOR MEDICARE PAYMENT column is marked
    Field("not-used-for-payment mark", 59, 59, "[ +]", "'+' or blank"),
    _number("work RVU", 60, 65),
    _blank(66, 66),
    _number("non-facility PE RVU", 67, 72),
    Field("non-facility NA indicator", 73, 74, "NA| {2}", "NA or blank"),
    _blank(75, 75),
    _number("facility PE RVU", 76, 81),
    Field("facility NA indicator", 82, 83, "NA| {2}", "NA or blank"),
    _blank(84, 84),
    _number("malpractice RVU", 85, 89),
    _blank(90, 90),
    _number("total non-facility RVUs", 91, 96),
    _number("total facility RVUs", 97, 102),
    _digit("PC/TC indicator", 103),
    Field("global surgery days", 104, 106, "[0-9A-Z]{3}", "three letters or digits"),
    Field("preoperative percentage", 107, 109, r"\.\d{2}", "a fraction .99"),
    Field("intraoperative percentage", 110, 112, r"\.\d{2}", "a fraction .99"),
    Field("postoperative percentage", 113, 115, r"\.\d{2}", "a fraction .99"),
    _digit("multiple procedure indicator", 116),
    _digit("bilateral surgery indicator", 117),
    _digit("assistant at surgery indicator", 118),
    _digit("co-surgeons indicator", 119),
    _digit("team surgery indicator", 120),
    _digit("pricing indicator", 121),
    _blank(122, 127),
    Field("endoscopic base code", 128, 132, "[A-Z0-9]{5}| {5}", "five letters and digits, or blank"),
    _number("conversion factor", 133, 140, decimals=4),
    _blank(141, 141),
    Field("physician supervision", 142, 143, "[0-9A-Z]{2}", "two letters or digits"),
    _digit("calculation flag", 144),
    _blank(145, 145),
    Field("diagnostic imaging family", 146, 147, "[0-9]{2}", "two digits"),
    _blank(148, 151),
    _number("non-facility PE used for OPPS", 152, 157),
    _blank(158, 158),
    _number("facility PE used for OPPS", 159, 164),
    _blank(165, 165),
    _number("malpractice used for OPPS", 166, 171),
]
# CMS trims the trailing blanks of the 200-character record, but the last field is a number: every whole
# record reaches it.
RVU_TXT_LAST = RVU_TXT_FIELDS[-1]
RVU_TXT_RECORD_LENGTH = 200
RVU_TXT_RECORD = re.compile("".join(f"(?:{f.pattern})" for f in RVU_TXT_FIELDS)
                            + f" {{0,{RVU_TXT_RECORD_LENGTH - RVU_TXT_LAST.last}}}")
RVU_TXT_HEADER = "HDR"


def rvu_txt_record_shape(line: str) -> bool:
    """Whether a line is shaped like a data record of the fixed-width RVU file (layout detection)."""
    return RVU_TXT_RECORD.fullmatch(line.rstrip("\r\n")) is not None


def _rvu_txt_problem(line: str) -> str:
    """What is wrong with a record that does not match the layout: its first field out of shape."""
    if len(line) < RVU_TXT_LAST.last:
        return (f"{len(line)} characters, cut short before its last field ({RVU_TXT_LAST.name}, positions "
                f"{RVU_TXT_LAST.first}-{RVU_TXT_LAST.last})")
    if len(line) > RVU_TXT_RECORD_LENGTH:
        return f"{len(line)} characters, longer than the layout's {RVU_TXT_RECORD_LENGTH}"
    for field_ in RVU_TXT_FIELDS:
        text = line[field_.first - 1:field_.last]
        if not re.fullmatch(field_.pattern, text):
            where = (f"position {field_.first}" if field_.first == field_.last
                     else f"positions {field_.first}-{field_.last}")
            return f"{field_.name} {text!r} at {where} is not {field_.shape}"
    return f"the characters after position {RVU_TXT_LAST.last} are not blank"


def _rvu_txt_records(path: Path) -> list[tuple[int, str]]:
    """The data records (with their line numbers) after the HDR lines, each checked against the layout."""
    with open_text(path, encoding="latin-1") as fh:
        lines = fh.read().splitlines()
    records = [(number, line) for number, line in enumerate(lines, start=1)
               if line.strip() and not line.startswith(RVU_TXT_HEADER)]
    if not records:
        raise ReferenceFileError(f"{path.name}: no data records after the HDR lines: not a PFS relative value file")
    for index, (number, line) in enumerate(records, start=1):
        if RVU_TXT_RECORD.fullmatch(line):
            continue
        code = line[:5].strip()
        if re.fullmatch(r"[A-Z0-9]{5}", code):
            modifier = line[5:7].strip()
            code = f", {code}-{modifier}" if modifier else f", {code}"
        else:
            code = ""
        raise ReferenceFileError(
            f"{path.name}: record {index} (line {number}{code}) does not fit the fixed-width RVU layout: "
            f"{_rvu_txt_problem(line)}"
        )
    return records


def load_pprrvu_txt(con: duckdb.DuckDBPyConnection, release: Release) -> dict[str, int]:
    records = [
        (release.id, line[0:5], line[5:7].strip(), line[57], line[59:65].strip(), line[66:72].strip(),
         line[72:74] == "NA", line[75:81].strip(), line[81:83] == "NA", line[84:89].strip(), line[102],
         line[103:106], line[115], line[132:140].strip(), line[116], line[117], line[118], line[119])
        for _, line in _rvu_txt_records(release.files[0])
    ]
    if records:
        _refuse_another_period(release, release.shown()[0], records[0][13])
    _insert_rvu(con, records)
    return {"rvu": len(records)}


# --- GPCI (Addendum E): title lines, a header, one row per locality, footnotes -----------------------------

# The note that says until when the 1.0 work floor applies ("... the work GPCI floor of 1.0 ... was extended
# through January 31, 2026 by Section 6207 ...").
FLOOR_NOTE = re.compile(r"work gpci floor.{0,200}?\bthrough\s+([a-z]+\s+\d{1,2},\s*\d{4})", re.IGNORECASE)
# The last day of the floor the law set for a year's dates, as the rule book gives it (RULES.md, Money): used
# for a file of that year whose note cannot be read.
LAW_FLOOR_THROUGH = {2026: date(2026, 1, 31)}


@dataclass
class GpciColumns:
    """Where each column of a GPCI file is, found by its header text."""

    at: dict[str, int]
    # the work GPCI comes twice, without and with the 1.0 floor (GPCI2026)
    both_work_columns: bool
    # the only work GPCI says "(with 1.0 Floor)" (GPCI2025)
    floor_in_header: bool


def _gpci_columns(path: Path, header: list[str]) -> GpciColumns:
    head = [" ".join(cell.split()).lower() for cell in header]

    def find(test, what: str) -> int:
        found = [i for i, h in enumerate(head) if test(h)]
        if not found:
            raise ReferenceFileError(f"{path.name}: no {what} column in the header row of the GPCI file")
        return found[0]

    work = [i for i, h in enumerate(head) if "gpci" in h and ({"pw", "work"} & set(h.split()))]
    if not work:
        raise ReferenceFileError(f"{path.name}: no PW (work) GPCI column in the header row of the GPCI file")
    without = [i for i in work if "without" in head[i]]
    floored = [i for i in work if "floor" in head[i] and "without" not in head[i]]
    at = {
        "mac": find(lambda h: h.startswith("medicare administrative contractor"), "MAC"),
        "state": find(lambda h: h == "state", "state"),
        "locality": find(lambda h: h.startswith("locality number"), "locality number"),
        "name": find(lambda h: h.startswith("locality name"), "locality name"),
        "work": (without or work)[0],
        "work_floor": (floored or work)[0],
        "pe": find(lambda h: "gpci" in h and "pe" in h.split(), "PE GPCI"),
        "mp": find(lambda h: "gpci" in h and "mp" in h.split(), "MP GPCI"),
    }
    return GpciColumns(at, bool(without and floored), bool(floored))


def _floor_through(text: str, columns: GpciColumns, release: Release) -> date:
    """The last date of service on which the floored work GPCI applies.

    A file with the work GPCI both without and with the floor says in a note until when the floor was
    extended; without a note that can be read, the law's last day for the file's year (LAW_FLOOR_THROUGH), else
    the floor never applies (the day before the period). A file
    whose one work GPCI is "with 1.0 Floor" applies it all its period; one that does not say so holds no
    floor (its two columns are then the same value, so the date changes no price)."""
    if columns.both_work_columns:
        if match := FLOOR_NOTE.search(" ".join(text.split())):
            try:
                return datetime.strptime(" ".join(match[1].replace(",", ", ").split()), "%B %d, %Y").date()
            except ValueError:
                pass
        # A copy saved without its footnotes still follows the law where the rule book states it.
        return LAW_FLOOR_THROUGH.get(release.effective_start.year, release.effective_start - timedelta(days=1))
    if columns.floor_in_header:
        return release.effective_end
    return release.effective_start - timedelta(days=1)


def load_gpci(con: duckdb.DuckDBPyConnection, release: Release) -> dict[str, int]:
    path = release.files[0]
    with open_text(path, encoding="latin-1") as fh:
        text = fh.read()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header = next((r for r in rows if r and r[0].strip().lower().startswith("medicare administrative contractor")),
                  None)
    if header is None:
        raise ReferenceFileError(f"{path.name}: no 'Medicare Administrative Contractor (MAC),...' header row: "
                                 "not a GPCI (Addendum E) file")
    columns = _gpci_columns(path, header)
    # Its columns name their year ("2026 PW GPCI ..."): a file of another year than its name's would price the
    # name's dates at that year's GPCIs.
    year = re.match(r"\s*(20\d\d)\b", header[columns.at["work"]])
    if release.origin == "user" and year and int(year[1]) != release.effective_start.year:
        raise ReferenceFileError(
            f"{release.shown()[0]}: its columns are the {year[1]} GPCIs, but it would load as {release.id} from "
            f"{release.effective_start}: rename the file (or give --effective) to match what it holds")
    through = _floor_through(text, columns, release)
    at = columns.at
    width = max(at.values()) + 1
    records = []
    for number, r in enumerate(rows, start=1):
        if len(r) > max(at["mac"], at["locality"]) and re.fullmatch(r"\d{1,4}", r[at["mac"]].strip()) \
                and r[at["locality"]].strip().isdigit():
            raise ReferenceFileError(f"{path.name}: row {number}: MAC {r[at['mac']].strip()!r} is not five digits: "
                                     f"{ZEROS_DROPPED}")
        if len(r) < width and len(r) > max(at["mac"], at["locality"]) and re.fullmatch(
                r"\d{5}", r[at["mac"]].strip()) and r[at["locality"]].strip().isdigit():
            raise ReferenceFileError(f"{path.name}: row {number} (locality {r[at['mac']].strip()}-"
                                     f"{r[at['locality']].strip()}) has {len(r)} of the header's {width} fields: the "
                                     "file is cut short or damaged; download it again")
        if len(r) >= width and re.fullmatch(r"\d{5}", r[at["mac"]].strip()) and r[at["locality"]].strip().isdigit():
            mac, locality = r[at["mac"]].strip(), r[at["locality"]].strip().zfill(2)
            records.append(
                {
                    "release_id": release.id, "mac": mac, "locality": locality, "locality_key": f"{mac}-{locality}",
                    "state": r[at["state"]].strip(), "locality_name": r[at["name"]].strip().rstrip("*"),
                    "work_gpci": r[at["work"]].strip(), "work_gpci_floor": r[at["work_floor"]].strip(),
                    "pe_gpci": r[at["pe"]].strip(), "mp_gpci": r[at["mp"]].strip(), "work_floor_through": through,
                }
            )
    if not records:
        raise ReferenceFileError(f"{path.name}: no MAC/locality rows: not a GPCI (Addendum E) file")
    con.register("incoming_frame", pd.DataFrame.from_records(records))
    try:
        con.execute(
            """
            insert into ref_gpci by name
            select * replace (work_gpci::decimal(6,3) as work_gpci, pe_gpci::decimal(6,3) as pe_gpci,
                              mp_gpci::decimal(6,3) as mp_gpci, work_gpci_floor::decimal(6,3) as work_gpci_floor,
                              work_floor_through::date as work_floor_through)
            from incoming_frame
            """
        )
    finally:
        con.unregister("incoming_frame")
    return {"gpci": len(records)}


# --- Counties included in each locality (25LOCCO): state written once per group, MAC without zero ---

def load_locco(con: duckdb.DuckDBPyConnection, release: Release) -> dict[str, int]:
    path = release.files[0]
    with open_text(path, encoding="latin-1") as fh:
        rows = list(csv.reader(fh))
    records: dict[str, dict] = {}
    state = ""
    for r in rows:
        if len(r) < 5 or not r[0].strip().isdigit() or not r[1].strip().isdigit():
            continue
        state = r[2].strip() or state
        mac, locality = r[0].strip().zfill(5), r[1].strip().zfill(2)
        # The CMS file lists some localities twice (Missouri's rest of state): one row per locality.
        records.setdefault(f"{mac}-{locality}", {
            "release_id": release.id, "mac": mac, "locality": locality, "locality_key": f"{mac}-{locality}",
            "state": state, "fee_schedule_area": r[3].strip().rstrip("*").strip(), "counties": r[4].strip(),
        })
    if not records:
        raise ReferenceFileError(f"{path.name}: no MAC/locality rows: not a county/locality file")
    _insert_frame(con, "ref_locality_counties", pd.DataFrame.from_records(list(records.values())))
    return {"locality_counties": len(records)}


# --- ZIP5 to carrier/locality (fixed width, see ZIP5lyout.txt) -----------------------------------------

def load_zip5(con: duckdb.DuckDBPyConnection, release: Release) -> dict[str, int]:
    path = release.files[0]
    records = []
    with open_text(path, encoding="latin-1") as fh:
        for line in fh:
            if len(line) >= 14 and line[2:7].isdigit():
                records.append((release.id, line[2:7], line[0:2], line[7:12], line[12:14]))
    if not records:
        raise ReferenceFileError(f"{path.name}: no ZIP5 records: not a ZIP-to-locality file")
    frame = pd.DataFrame.from_records(records, columns=["release_id", "zip", "state", "mac", "locality"])
    _insert_frame(con, "ref_zip", frame)
    return {"zip": len(records)}


# --- NCCI PTP edits: CSV form (no effective date) and the official tab-delimited text -------------------

# A PTP record that does not fit its layout: codes of five letters and digits, dates of eight digits (or none,
# or `*`), a modifier indicator of 0, 1 or 9. A damaged date read as no date would keep a deleted edit alive;
# a record shifted by a missing tab would turn its rationale into its indicator.
PTP_MISFIT = """
select column_1, column_2,
       case when not (regexp_full_match(trim(column_1), '[A-Za-z0-9]{5}')
                      and regexp_full_match(trim(column_2), '[A-Za-z0-9]{5}'))
                then 'codes' || case when regexp_full_match(trim(column_1), '[0-9]{1,4}')
                                          or regexp_full_match(trim(column_2), '[0-9]{1,4}')
                                     then ': ' || $zeros else '' end
            when coalesce(trim(modifier_indicator), '') not in ('0', '1', '9')
                then printf('modifier indicator %s', coalesce(trim(modifier_indicator), 'missing'))
            when not regexp_full_match(coalesce(trim(effective_date), ''), '|[*]|[0-9]{8}')
                 or (regexp_full_match(trim(effective_date), '[0-9]{8}')
                     and try_strptime(trim(effective_date), '%Y%m%d') is null)
                then printf('effective date %s', trim(effective_date))
            when not regexp_full_match(coalesce(trim(deletion_date), ''), '|[*]|[0-9]{8}')
                 or (regexp_full_match(trim(deletion_date), '[0-9]{8}')
                     and try_strptime(trim(deletion_date), '%Y%m%d') is null)
                then printf('deletion date %s', trim(deletion_date))
       end as misfit
from ptp_incoming
where column_1 is not null and column_2 is not null
"""


def _ptp_insert(con: duckdb.DuckDBPyConnection, release: Release, shown: str, select_sql: str,
                params: list) -> int:
    before = con.execute("select count(*) from ref_ptp where release_id = ?", [release.id]).fetchall()[0][0]
    insert = """
        insert into ref_ptp
        select ?, upper(trim(column_1)), upper(trim(column_2)),
               coalesce(try_strptime(nullif(trim(effective_date), '*'), '%Y%m%d')::date, ?::date),
               try_strptime(nullif(nullif(trim(deletion_date), '*'), ''), '%Y%m%d')::date,
               trim(modifier_indicator), trim(rationale)
        from ({records})
        where column_1 is not null and column_2 is not null"""
    if release.origin == "bundled":
        # The bundled files are the ones the tests load: read straight into the table.
        con.execute(insert.format(records=select_sql), [release.id, release.effective_start, *params])
    else:
        # A site's own files are checked record by record first (PTP_MISFIT).
        con.execute(f"create or replace temp table ptp_incoming as {select_sql}", params)
        try:
            misfit = con.execute(f"select * from ({PTP_MISFIT}) where misfit is not null limit 1",
                                 {"zeros": ZEROS_DROPPED}).fetchall()
            if misfit:
                column_1, column_2, what = misfit[0]
                raise ReferenceFileError(
                    f"{shown}: record "
                    f"{(column_1 or '').strip()}/{(column_2 or '').strip()} does not fit the PTP layout ({what})")
            con.execute(insert.format(records="select * from ptp_incoming"), [release.id, release.effective_start])
        finally:
            try:
                con.execute("drop table if exists ptp_incoming")
            except duckdb.Error:
                pass  # a failed statement's own error says more; the transaction's end drops the table
    after = con.execute("select count(*) from ref_ptp where release_id = ?", [release.id]).fetchall()[0][0]
    return after - before


def load_ptp_csv(con: duckdb.DuckDBPyConnection, release: Release) -> dict[str, int]:
    total = 0
    for path, shown in zip(release.files, release.shown()):
        total += _ptp_insert(
            con,
            release,
            shown,
            """
            select column_1, column_2, null::varchar as effective_date, deletion_date,
                   modifier_indicator, ptp_edit_rationale as rationale
            from read_csv(?, header = true, all_varchar = true)
            """,
            [str(path)],
        )
    return {"ptp": total}


def _ptp_txt_skip(path: Path) -> int:
    with open_text(path, encoding="latin-1") as fh:
        for number, line in enumerate(fh):
            if re.match(r"^[A-Z0-9]{5}\t[A-Z0-9]{5}\t", line):
                return number
            if number > 50:
                break
    raise ReferenceFileError(f"{path.name}: no edit rows found: not an NCCI PTP text file")


def load_ptp_txt(con: duckdb.DuckDBPyConnection, release: Release) -> dict[str, int]:
    total = 0
    for path, shown in zip(release.files, release.shown()):
        total += _ptp_insert(
            con,
            release,
            shown,
            """
            select column0 as column_1, column1 as column_2, column3 as effective_date,
                   column4 as deletion_date, column5 as modifier_indicator, column6 as rationale
            from read_csv(?, delim = '\t', header = false, skip = ?, all_varchar = true, quote = '',
                          columns = {'column0': 'varchar', 'column1': 'varchar', 'column2': 'varchar',
                                     'column3': 'varchar', 'column4': 'varchar', 'column5': 'varchar',
                                     'column6': 'varchar'},
                          null_padding = true, encoding = 'latin-1', auto_detect = false)
            """,
            [str(path), _ptp_txt_skip(path)],
        )
    return {"ptp": total}


# --- MUE tables: the CSV forms and the official CSV (AMA notice, header with a line break) -------------

# The adjudication indicators as the MUE tables write them (the all-services form splits number and text).
MUE_MAI_TEXTS = {"1 Line Edit": 1, "2 Date of Service Edit: Policy": 2, "3 Date of Service Edit: Clinical": 3}
_MAI_OF_TEXT = {text.lower(): mai for text, mai in MUE_MAI_TEXTS.items()}


def _mue_problem(path: Path, record: int, code: str, what: str) -> ReferenceFileError:
    return ReferenceFileError(f"{path.name}: record {record} ({code.strip() or 'no code'}): {what}")


def _mue_records(release: Release, path: Path) -> list[dict]:
    with open_text(path, encoding="latin-1") as fh:
        rows = list(csv.reader(fh))
    for number, row in enumerate(rows):
        head = [c.replace("\n", " ").strip().lower() for c in row]
        if not head or not head[0]:
            continue
        if head[0] in ("hcpcs", "hcpcs_cpt_code") or head[0].startswith("hcpcs/"):
            break
    else:
        raise ReferenceFileError(f"{path.name}: no HCPCS header row: not an MUE table")
    data = [r for r in rows[number + 1:] if r and r[0].strip()]
    records = []
    if head[0] == "hcpcs" and "mue_service_type" in head:
        idx = {name: i for i, name in enumerate(head)}
        for record, r in enumerate(data, start=1):
            if len(r) < len(head):
                raise _mue_problem(path, record, r[0], f"{len(r)} columns, the header has {len(head)}")
            service = MUE_SERVICE_TYPES.get(r[idx["mue_service_type"]].strip().lower())
            mai = r[idx["mue_mai"]].strip()
            if mai not in ("1", "2", "3"):
                raise _mue_problem(path, record, r[0], f"MUE adjudication indicator {mai!r} is not 1, 2 or 3")
            records.append((record, r[0], r[idx["mue_uos"]], int(mai), service, r[idx["mue_rationale"]]))
    else:
        value_header = head[1]
        service = next(
            (v for k, v in MUE_SERVICE_TYPES.items() if k in value_header.replace("_", " ")),
            None,
        )
        if service is None:
            raise ReferenceFileError(f"{path.name}: cannot tell the MUE service type from '{row[1]}'")
        for record, r in enumerate(data, start=1):
            if len(r) < 4:
                raise _mue_problem(path, record, r[0], f"{len(r)} columns, the header has 4")
            mai = _MAI_OF_TEXT.get(" ".join(r[2].split()).lower())
            if mai is None:
                raise _mue_problem(path, record, r[0], f"MUE adjudication indicator {r[2]!r} is not one of "
                                                       + ", ".join(map(repr, MUE_MAI_TEXTS)))
            records.append((record, r[0], r[1], mai, service, r[3]))
    result = []
    for record, code, value, mai, service, rationale in records:
        if service is None:
            continue
        if problem := code_problem(code.strip()):
            raise _mue_problem(path, record, code, problem)
        if not re.fullmatch(r"\s*\d+\s*", value):
            raise _mue_problem(path, record, code, f"MUE value {value!r} is not a whole number of units")
        result.append({"release_id": release.id, "service_type": service, "hcpcs": code.strip().upper(),
                       "mue_value": int(value), "mai": mai, "rationale": rationale.strip()})
    return result


def load_mue(con: duckdb.DuckDBPyConnection, release: Release) -> dict[str, int]:
    records = [rec for path in release.files for rec in _mue_records(release, path)]
    if not records:
        raise ReferenceFileError(f"{', '.join(release.shown())}: no MUE rows below the header: the file is "
                                 "cut short or empty; download it again")
    # A code's row given twice (a file loaded beside a copy of it, line ends changed) is one row: twice over, each
    # line of that code met its MUE twice and was a line of lines.csv twice. Two different rows of one code and
    # service type are refused.
    frame = pd.DataFrame.from_records(records).drop_duplicates()
    clash = frame[frame.duplicated(["service_type", "hcpcs"], keep=False)]
    if len(clash):
        first = clash.iloc[0]
        raise ReferenceFileError(f"{', '.join(release.shown())}: code "
                                 f"{first['hcpcs']} has two different {first['service_type']} MUE rows")
    services = sorted(frame["service_type"].unique())
    con.execute(f"delete from ref_mue where release_id = ? and service_type in ({', '.join('?' * len(services))})",
                [release.id, *services])
    _insert_frame(con, "ref_mue", frame)
    counts = frame.groupby("service_type").size().to_dict()
    return {f"mue_{service}": int(count) for service, count in counts.items()}


# --- NCCI add-on code edits (AOC): the official workbook and the CSV form ----------------------------------

# The header of the official workbook, after its AMA notice row.
AOC_HEADER = ["AOC_Edit_Type", "Add-On_Code", "AOC_DelDT", "Primary_Code", "Primary_Code_DelDT",
              "AOC_Edit_EffDT", "AOC_Edit_DelDT", "Special_Instruction_Notes"]
AOC_HEADER_ROWS = 10  # the header must come within the first rows of the first sheet
AOC_CSV_HEADER = ["primary_code", "add_on_code", "aoc_edit_type"]
AOC_COLUMNS = ["release_id", "add_on_code", "primary_code", "edit_type", "aoc_deletion_date",
               "primary_deletion_date", "edit_effective_date", "edit_deletion_date", "special_instructions"]
CODE = re.compile(r"[A-Z0-9]{5}")
# Said of a code or MAC of digits only, shorter than CMS writes it.
ZEROS_DROPPED = ("its leading zeros were dropped, as a spreadsheet program does when it saves the file: load the "
                 "file as CMS publishes it")


def code_problem(code: str) -> str:
    """Why `code` (as read, trimmed) is not a HCPCS code, or '' where it is one."""
    if CODE.fullmatch(code.upper()):
        return ""
    return f"code {code!r} is not five letters and digits" + (f": {ZEROS_DROPPED}" if code.isdigit() else "")


def _cell_text(value) -> str:
    """A cell as text: Excel may hold a Julian date or an edit type as a number."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _aoc_header_at(rows: list[tuple]) -> tuple[int, dict[str, int]] | None:
    """The index of the header row among the first rows, and where each of its columns is."""
    wanted = {name.lower() for name in AOC_HEADER}
    for index, row in enumerate(rows):
        cells = [_cell_text(c).lower() for c in row]
        if wanted <= set(cells):
            return index, {name: cells.index(name.lower()) for name in AOC_HEADER}
    return None


def _open_workbook(path: Path):
    import openpyxl  # only the AOC workbook needs it

    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises what zipfile and its XML parser raise
        raise ReferenceFileError(f"{path.name}: not an Excel workbook that can be read ({exc})") from exc


def is_aoc_workbook(path: Path) -> bool:
    """Whether the first sheet of a workbook holds the AOC header within its first rows (layout detection)."""
    workbook = _open_workbook(path)
    try:
        sheet = workbook.worksheets[0]
        head = [row for _, row in zip(range(AOC_HEADER_ROWS), sheet.iter_rows(values_only=True))]
    finally:
        workbook.close()
    return _aoc_header_at(head) is not None


def _julian(text: str) -> str | None:
    """'2013091' (year, then day of the year) as '2013-04-01'; a blank cell is no date."""
    if not text:
        return None
    if not re.fullmatch(r"\d{7}", text):
        raise ValueError(text)
    year, day = int(text[:4]), int(text[4:])
    if not 1 <= day <= (366 if calendar.isleap(year) else 365):
        raise ValueError(text)
    return (date(year, 1, 1) + timedelta(days=day - 1)).isoformat()


def _aoc_record(path: Path, release: Release, record: int, where: str, cells: dict[str, str]) -> tuple:
    """One AOC row, checked: codes of five letters and digits, edit type 1 to 3, Julian dates."""
    add_on, primary = cells["Add-On_Code"].upper(), cells["Primary_Code"].upper()

    def problem(what: str) -> ReferenceFileError:
        shown = f", add-on {add_on}" if CODE.fullmatch(add_on) else ""
        return ReferenceFileError(f"{path.name}: record {record} ({where}{shown}): {what}")

    if wrong := code_problem(cells["Add-On_Code"]):
        raise problem(f"add-on {wrong}")
    if wrong := code_problem(cells["Primary_Code"]):
        raise problem(f"primary {wrong}")
    if cells["AOC_Edit_Type"] not in ("1", "2", "3"):
        raise problem(f"edit type {cells['AOC_Edit_Type']!r} is not 1, 2 or 3")
    dates = {}
    for column in ("AOC_DelDT", "Primary_Code_DelDT", "AOC_Edit_EffDT", "AOC_Edit_DelDT"):
        try:
            dates[column] = _julian(cells.get(column, ""))
        except ValueError:
            raise problem(f"{column} {cells[column]!r} is not a Julian date YYYYDDD") from None
    return (release.id, add_on, primary, int(cells["AOC_Edit_Type"]), dates["AOC_DelDT"],
            dates["Primary_Code_DelDT"], dates["AOC_Edit_EffDT"], dates["AOC_Edit_DelDT"],
            cells.get("Special_Instruction_Notes") or None)


def _insert_aoc(con: duckdb.DuckDBPyConnection, records: list[tuple]) -> None:
    con.register("incoming_frame", pd.DataFrame.from_records(records, columns=AOC_COLUMNS))
    try:
        con.execute(
            """
            insert into ref_aoc by name
            select release_id, add_on_code, primary_code, edit_type::integer as edit_type,
                   aoc_deletion_date::date as aoc_deletion_date, primary_deletion_date::date as primary_deletion_date,
                   edit_effective_date::date as edit_effective_date, edit_deletion_date::date as edit_deletion_date,
                   special_instructions::varchar as special_instructions
            from incoming_frame
            """
        )
    finally:
        con.unregister("incoming_frame")


def load_aoc_xlsx(con: duckdb.DuckDBPyConnection, release: Release) -> dict[str, int]:
    path = release.files[0]
    workbook = _open_workbook(path)
    try:
        rows = list(workbook.worksheets[0].iter_rows(values_only=True))
    finally:
        workbook.close()
    found = _aoc_header_at(rows[:AOC_HEADER_ROWS])
    if found is None:
        raise ReferenceFileError(f"{path.name}: no header row ({', '.join(AOC_HEADER)}) in the first "
                                 f"{AOC_HEADER_ROWS} rows of its first sheet: not an NCCI add-on code edit workbook")
    header_index, at = found
    records = []
    for index, row in enumerate(rows[header_index + 1:], start=header_index + 2):
        cells = {name: _cell_text(row[i]) if i < len(row) else "" for name, i in at.items()}
        if not any(cells.values()):
            continue
        records.append(_aoc_record(path, release, len(records) + 1, f"row {index}", cells))
    _insert_aoc(con, records)
    return {"aoc": len(records)}


def load_aoc_csv(con: duckdb.DuckDBPyConnection, release: Release) -> dict[str, int]:
    """The CSV form (primary_code, add_on_code, aoc_edit_type) has no dates: its edits hold all the release."""
    path = release.files[0]
    records = []
    with open_text(path) as fh:
        reader = csv.DictReader(fh)
        missing = [name for name in AOC_CSV_HEADER if name not in (reader.fieldnames or [])]
        if missing:
            raise ReferenceFileError(f"{path.name}: no {', '.join(missing)} column: not an AOC edit CSV")
        for record, row in enumerate(reader, start=1):
            cells = {"Add-On_Code": (row["add_on_code"] or "").strip(),
                     "Primary_Code": (row["primary_code"] or "").strip(),
                     "AOC_Edit_Type": (row["aoc_edit_type"] or "").strip()}
            records.append(_aoc_record(path, release, record, f"line {reader.line_num}", cells))
    _insert_aoc(con, records)
    return {"aoc": len(records)}


# --- CARC / RARC / group codes ------------------------------------------------------------------------

def load_adjustment_codes(con: duckdb.DuckDBPyConnection, release: Release) -> dict[str, int]:
    records = []
    for path in release.files:
        name = path.name.lower()
        code_type = "RARC" if "rarc" in name else "GROUP" if "group" in name else "CARC"
        with open_text(path) as fh:
            for row in csv.DictReader(fh):
                records.append(
                    {"release_id": release.id, "code_type": code_type, "code": row["code"].strip(),
                     "description": (row.get("description") or "").strip()}
                )
    _insert_frame(con, "ref_adjustment_codes", pd.DataFrame.from_records(records))
    return {"adjustment_codes": len(records)}


LOADERS = {
    "pprrvu": load_pprrvu,
    "pprrvu_txt": load_pprrvu_txt,
    "gpci": load_gpci,
    "zip5": load_zip5,
    "locco": load_locco,
    "ptp_csv": load_ptp_csv,
    "ptp_txt": load_ptp_txt,
    "mue_csv": load_mue,
    "mue_all_services_csv": load_mue,
    "mue_official_csv": load_mue,
    "aoc_xlsx": load_aoc_xlsx,
    "aoc_csv": load_aoc_csv,
    "adjustment_codes": load_adjustment_codes,
}


def ensure_bundled(con: duckdb.DuckDBPyConnection, table: str, schema_ready: bool = False) -> list[str]:
    """Load every bundled release of one table that is not loaded yet; returns the ids loaded now.

    A release the user loaded under a bundled id (say the official PTP 2024Q3 text files) replaces the
    bundled one and is kept: user releases are never overwritten here."""
    if not schema_ready:
        ensure_schema(con)
    loaded = []
    for release in bundled_releases():
        if release.table != table or _loaded_by_user(con, release.id):
            continue
        if load_release(con, release, schema_ready=True):
            loaded.append(release.id)
    return loaded


def _loaded_by_user(con: duckdb.DuckDBPyConnection, release_id: str) -> bool:
    rows = con.execute(
        "select count(*) from ref_releases where release_id = ? and origin <> 'bundled'", [release_id]
    ).fetchall()
    return rows[0][0] > 0
