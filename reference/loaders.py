"""One loader per official CMS file layout, each writing one release into its DuckDB table.

Every loader is idempotent: loading a release replaces that release's rows (delete, then insert), and
records it in `ref_releases` with its effective period, source files, sha256 and row count.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

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
    primary key (release_id, table_name));
create table if not exists ref_rvu (
    release_id varchar, hcpcs varchar, modifier varchar, status varchar,
    work_rvu decimal(9,2), pe_nonfacility decimal(9,2), pe_nonfacility_na boolean,
    pe_facility decimal(9,2), pe_facility_na boolean, mp_rvu decimal(9,2),
    pctc varchar, global_days varchar, mult_proc varchar, conversion_factor decimal(9,4));
create table if not exists ref_gpci (
    release_id varchar, mac varchar, locality varchar, locality_key varchar, state varchar,
    locality_name varchar, work_gpci decimal(6,3), pe_gpci decimal(6,3), mp_gpci decimal(6,3));
create table if not exists ref_zip (
    release_id varchar, zip varchar, state varchar, mac varchar, locality varchar);
create table if not exists ref_ptp (
    release_id varchar, column_1 varchar, column_2 varchar, effective_date date, deletion_date date,
    modifier_indicator varchar, rationale varchar);
create table if not exists ref_mue (
    release_id varchar, service_type varchar, hcpcs varchar, mue_value integer, mai integer,
    rationale varchar);
create table if not exists ref_locality_counties (
    release_id varchar, mac varchar, locality varchar, locality_key varchar, state varchar,
    fee_schedule_area varchar, counties varchar);
create table if not exists ref_adjustment_codes (
    release_id varchar, code_type varchar, code varchar, description varchar);
"""

TABLE_OF = {
    "rvu": "ref_rvu",
    "gpci": "ref_gpci",
    "zip": "ref_zip",
    "ptp": "ref_ptp",
    "mue": "ref_mue",
    "adjustment_codes": "ref_adjustment_codes",
    "locality_counties": "ref_locality_counties",
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
        )
        for r in manifest["release"]
    ]


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


def is_loaded(con: duckdb.DuckDBPyConnection, release: Release, digest: str) -> bool:
    rows = con.execute(
        "select count(*) from ref_releases where release_id = ? and sha256 = ?", [release.id, digest]
    ).fetchall()
    return rows[0][0] > 0


def load_release(con: duckdb.DuckDBPyConnection, release: Release, force: bool = False) -> bool:
    """Load one release unless the same files are already loaded. Returns True when it (re)loaded."""
    ensure_schema(con)
    for path in release.files:
        if not path.exists():
            raise ReferenceFileError(f"{path}: reference file not found")
    digest = sha256_of(release.files)
    if not force and is_loaded(con, release, digest):
        return False
    loader = LOADERS[release.layout]
    table = TABLE_OF[release.table]
    con.execute("begin transaction")
    try:
        con.execute(f"delete from {table} where release_id = ?", [release.id])
        con.execute("delete from ref_releases where release_id = ? and (table_name = ? or table_name like ?)",
                    [release.id, release.table, release.table + "_%"])
        tables = loader(con, release)
        for table_name, count in tables.items():
            con.execute(
                "insert into ref_releases values (?, ?, ?, ?, ?, ?, ?, ?, ?, current_timestamp)",
                [release.id, table_name, release.layout, release.effective_start, release.effective_end,
                 "; ".join(release.names or [p.name for p in release.files]), digest, count,
                 release.origin],
            )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return True


def _insert_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    con.register("incoming_frame", frame)
    try:
        con.execute(f"insert into {table} by name select * from incoming_frame")
    finally:
        con.unregister("incoming_frame")


# --- Physician Fee Schedule RVU file (PPRRVU): preamble, then 31 columns -------------------------------

def _rvu_rows(path: Path) -> list[list[str]]:
    with open_text(path, encoding="latin-1") as fh:
        rows = list(csv.reader(fh))
    for number, row in enumerate(rows):
        if row and row[0].strip().upper() == "HCPCS" and len(row) > 1 and row[1].strip().upper() == "MOD":
            return [r for r in rows[number + 1:] if r and r[0].strip()]
    raise ReferenceFileError(f"{path.name}: no 'HCPCS,MOD,...' header row: not a PFS relative value file")


def load_pprrvu(con: duckdb.DuckDBPyConnection, release: Release) -> dict[str, int]:
    rows = _rvu_rows(release.files[0])

    def num(value: str) -> str:
        value = value.strip()
        return value if value else "0"

    records = [
        {
            "release_id": release.id,
            "hcpcs": r[0].strip().upper(),
            "modifier": r[1].strip().upper(),
            "status": r[3].strip().upper(),
            "work_rvu": num(r[5]),
            "pe_nonfacility": num(r[6]),
            "pe_nonfacility_na": r[7].strip().upper() == "NA",
            "pe_facility": num(r[8]),
            "pe_facility_na": r[9].strip().upper() == "NA",
            "mp_rvu": num(r[10]),
            "pctc": r[13].strip(),
            "global_days": r[14].strip(),
            "mult_proc": r[18].strip(),
            "conversion_factor": num(r[24]),
        }
        for r in rows
        if len(r) >= 25
    ]
    frame = pd.DataFrame.from_records(records)
    con.register("incoming_frame", frame)
    try:
        con.execute(
            """
            insert into ref_rvu
            select release_id, hcpcs, modifier, status, work_rvu::decimal(9,2), pe_nonfacility::decimal(9,2),
                   pe_nonfacility_na, pe_facility::decimal(9,2), pe_facility_na, mp_rvu::decimal(9,2),
                   pctc, global_days, mult_proc, conversion_factor::decimal(9,4)
            from incoming_frame
            """
        )
    finally:
        con.unregister("incoming_frame")
    return {"rvu": len(records)}


# --- GPCI (Addendum E) ---------------------------------------------------------------------------------

def load_gpci(con: duckdb.DuckDBPyConnection, release: Release) -> dict[str, int]:
    path = release.files[0]
    with open_text(path, encoding="latin-1") as fh:
        rows = list(csv.reader(fh))
    records = []
    for r in rows:
        if len(r) >= 7 and re.fullmatch(r"\d{5}", r[0].strip()) and r[2].strip().isdigit():
            mac, locality = r[0].strip(), r[2].strip().zfill(2)
            records.append(
                {
                    "release_id": release.id, "mac": mac, "locality": locality,
                    "locality_key": f"{mac}-{locality}", "state": r[1].strip(),
                    "locality_name": r[3].strip().rstrip("*"),
                    "work_gpci": r[4].strip(), "pe_gpci": r[5].strip(), "mp_gpci": r[6].strip(),
                }
            )
    if not records:
        raise ReferenceFileError(f"{path.name}: no MAC/locality rows: not a GPCI (Addendum E) file")
    con.register("incoming_frame", pd.DataFrame.from_records(records))
    try:
        con.execute(
            """
            insert into ref_gpci
            select release_id, mac, locality, locality_key, state, locality_name,
                   work_gpci::decimal(6,3), pe_gpci::decimal(6,3), mp_gpci::decimal(6,3)
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

def _ptp_insert(con: duckdb.DuckDBPyConnection, release: Release, select_sql: str, params: list) -> int:
    before = con.execute("select count(*) from ref_ptp where release_id = ?", [release.id]).fetchall()[0][0]
    con.execute(
        f"""
        insert into ref_ptp
        select ?, upper(trim(column_1)), upper(trim(column_2)),
               coalesce(try_strptime(nullif(trim(effective_date), '*'), '%Y%m%d')::date, ?::date),
               try_strptime(nullif(nullif(trim(deletion_date), '*'), ''), '%Y%m%d')::date,
               trim(modifier_indicator), trim(rationale)
        from ({select_sql})
        where column_1 is not null and column_2 is not null
        """,
        [release.id, release.effective_start, *params],
    )
    after = con.execute("select count(*) from ref_ptp where release_id = ?", [release.id]).fetchall()[0][0]
    return after - before


def load_ptp_csv(con: duckdb.DuckDBPyConnection, release: Release) -> dict[str, int]:
    total = 0
    for path in release.files:
        total += _ptp_insert(
            con,
            release,
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
    for path in release.files:
        total += _ptp_insert(
            con,
            release,
            """
            select column0 as column_1, column1 as column_2, column3 as effective_date,
                   column4 as deletion_date, column5 as modifier_indicator, column6 as rationale
            from read_csv(?, delim = '\t', header = false, skip = ?, all_varchar = true, quote = '',
                          columns = {'column0': 'varchar', 'column1': 'varchar', 'column2': 'varchar',
                                     'column3': 'varchar', 'column4': 'varchar', 'column5': 'varchar',
                                     'column6': 'varchar'},
                          null_padding = true, encoding = 'latin-1')
            """,
            [str(path), _ptp_txt_skip(path)],
        )
    return {"ptp": total}


# --- MUE tables: the CSV forms and the official CSV (AMA notice, header with a line break) -------------

def _mai(value: str) -> int | None:
    match = re.match(r"\s*(\d)", value or "")
    return int(match.group(1)) if match else None


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
    records = []
    if head[0] == "hcpcs" and "mue_service_type" in head:
        idx = {name: i for i, name in enumerate(head)}
        for r in rows[number + 1:]:
            if len(r) < len(head) or not r[0].strip():
                continue
            service = MUE_SERVICE_TYPES.get(r[idx["mue_service_type"]].strip().lower())
            records.append((r[0], r[idx["mue_uos"]], _mai(r[idx["mue_mai"]]), service, r[idx["mue_rationale"]]))
    else:
        value_header = head[1]
        service = next(
            (v for k, v in MUE_SERVICE_TYPES.items() if k in value_header.replace("_", " ")),
            None,
        )
        if service is None:
            raise ReferenceFileError(f"{path.name}: cannot tell the MUE service type from '{row[1]}'")
        for r in rows[number + 1:]:
            if len(r) < 4 or not r[0].strip():
                continue
            records.append((r[0], r[1], _mai(r[2]), service, r[3]))
    return [
        {
            "release_id": release.id, "service_type": service, "hcpcs": code.strip().upper(),
            "mue_value": int(float(value)) if value.strip() else None, "mai": mai, "rationale": rationale.strip(),
        }
        for code, value, mai, service, rationale in records
        if service is not None
    ]


def load_mue(con: duckdb.DuckDBPyConnection, release: Release) -> dict[str, int]:
    records = [rec for path in release.files for rec in _mue_records(release, path)]
    frame = pd.DataFrame.from_records(records)
    _insert_frame(con, "ref_mue", frame)
    counts = frame.groupby("service_type").size().to_dict()
    return {f"mue_{service}": int(count) for service, count in counts.items()}


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
    "gpci": load_gpci,
    "zip5": load_zip5,
    "locco": load_locco,
    "ptp_csv": load_ptp_csv,
    "ptp_txt": load_ptp_txt,
    "mue_csv": load_mue,
    "mue_all_services_csv": load_mue,
    "mue_official_csv": load_mue,
    "adjustment_codes": load_adjustment_codes,
}


def ensure_bundled(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """Load every bundled release of one table that is not loaded yet; returns the ids loaded now.

    A release the user loaded under a bundled id (say the official PTP 2024Q3 text files) replaces the
    bundled one and is kept: user releases are never overwritten here."""
    ensure_schema(con)
    loaded = []
    for release in bundled_releases():
        if release.table != table or _loaded_by_user(con, release.id):
            continue
        if load_release(con, release):
            loaded.append(release.id)
    return loaded


def _loaded_by_user(con: duckdb.DuckDBPyConnection, release_id: str) -> bool:
    rows = con.execute(
        "select count(*) from ref_releases where release_id = ? and origin <> 'bundled'", [release_id]
    ).fetchall()
    return rows[0][0] > 0
