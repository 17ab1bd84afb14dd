"""Reference tables as Dagster assets: each loads its bundled releases on first use (no network) and
keeps whatever releases a user loaded with `claimscrub reference load`."""

from collections.abc import Callable
from typing import NamedTuple

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource

from pipelines.database import MAIN_FILE_POOL, MAIN_FILE_TAG

from . import loaders

RVU_76120_KNOWN = "rvu_76120_total_rvus"
MUE_76120_KNOWN = "mue_76120_value"
PTP_76120_KNOWN = "ptp_76120_pairs"
AOC_76125_KNOWN = "aoc_76125_add_on"
KEYS_UNIQUE = "keys_unique"
ROW_COUNTS = "row_counts_match_files"
# The reference steps and the checks every scrub runs go first in a run: they are short, and a scrub's own
# steps then follow one another without waiting on them (with a CSV staged ahead, they run while it is
# read; see assets/readers.py), and a blocking check that fails stops the run before a batch is read.
FIRST = {"dagster/priority": "1"}


# The reference tables: asset name, the table it loads, what one row is.
TABLES = {
    "rvu_fee_schedule": ("rvu", ("One row per HCPCS code and modifier per PFS release (PPRRVU official layout): "
                                 "RVUs, status, PC/TC.")),
    "gpci_localities": ("gpci", "One row per Medicare locality (MAC + locality) per GPCI release (Addendum E)."),
    "locality_counties": ("locality_counties", ("One row per Medicare locality (MAC + locality) per county-file "
                                                "release (25LOCCO): its counties.")),
    "zip_localities": ("zip", "One row per ZIP code per ZIP5 release: its carrier and pricing locality."),
    "ncci_ptp_edits": ("ptp", "One row per NCCI practitioner PTP edit (column 1, column 2) per quarterly release."),
    "mue_limits": ("mue", ("One row per HCPCS code per MUE service type per quarterly release: units limit and "
                           "indicator.")),
    "aoc_edits": ("aoc", ("One row per add-on code, primary code and edit effective date per quarterly NCCI "
                          "add-on code edit release (AOC workbook or CSV form): edit type and dates.")),
    "adjustment_codes": ("adjustment_codes", "One row per CARC, RARC and group code (X12 code lists)."),
}


def _materialize(con, name: str) -> dg.MaterializeResult:
    table = TABLES[name][0]
    loaded = loaders.ensure_bundled(con, table, schema_ready=True)
    rows = con.execute(
        """select release_id, table_name, row_count, effective_start, effective_end, source_files
           from ref_releases where table_name = ? or table_name like ? order by effective_start""",
        [table, table + "_%"],
    ).fetchall()
    return dg.MaterializeResult(
        asset_key=name,
        metadata={
            "releases": dg.MetadataValue.md(
                "\n".join(f"- {r[0]} ({r[1]}): {r[2]:,} rows, {r[3]} to {r[4]}, {r[5]}" for r in rows)
            ),
            "loaded_now": ", ".join(loaded) or "none (already loaded)",
            "row_count": sum(r[2] for r in rows),
        },
    )


# The tables are assets of one step: each load is a few queries when the releases are in place, and a step of
# its own would add Dagster's per-step bookkeeping to the start of every scrub, once per table.
@dg.multi_asset(
    name="reference_tables",
    specs=[dg.AssetSpec(name, description=description, group_name="reference", kinds={"duckdb"}, skippable=True)
           for name, (_, description) in TABLES.items()],
    can_subset=True,
    op_tags={**FIRST, **MAIN_FILE_TAG},
    pool=MAIN_FILE_POOL,
)
def reference_tables(context: dg.AssetExecutionContext, duckdb: DuckDBResource):
    """The reference tables a run selects: each loads its bundled releases on first use and keeps those a user
    loaded."""
    selected = context.selected_asset_keys
    with duckdb.get_connection() as con:
        loaders.ensure_schema(con)
        for name in TABLES:
            if dg.AssetKey(name) in selected:
                yield _materialize(con, name)


def _bundled_is_loaded(con, release_id: str) -> bool:
    """A user may load their own files under a bundled release id; the known values are the bundled ones."""
    rows = con.execute("select bool_and(origin = 'bundled') from ref_releases where release_id = ?",
                       [release_id]).fetchall()
    return bool(rows[0][0])


def _replaced(release_id: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True, metadata={"skipped": f"{release_id} is not the bundled release"})


def _known_values(con, expected: dict[str, object], sql: str, shape=lambda rows: rows) -> dg.AssetCheckResult:
    """The values a query finds in each bundled release against those the release is known to hold; a release
    a user replaced is skipped."""
    found, skipped = {}, []
    for release_id in expected:
        if _bundled_is_loaded(con, release_id):
            found[release_id] = shape(con.execute(sql, [release_id]).fetchall())
        else:
            skipped.append(release_id)
    return dg.AssetCheckResult(
        passed=all(found[r] == expected[r] for r in found),
        metadata={"found": str(found), "expected": str({r: expected[r] for r in found}),
                  "skipped": ", ".join(skipped) or "none"},
    )


# Each check is a function of a connection, so that one step can run many of them on one connection.
def rvu_known_values(con) -> dg.AssetCheckResult:
    """76120's total non-facility RVUs: RVU25D 3.29 global, 0.56 with 26, 2.73 with TC; RVU26B 3.40, 0.56,
    2.84."""
    return _known_values(
        con,
        {"RVU25D": {"": "3.29", "26": "0.56", "TC": "2.73"}, "RVU26B": {"": "3.40", "26": "0.56", "TC": "2.84"}},
        """select modifier, (work_rvu + pe_nonfacility + mp_rvu)::varchar from ref_rvu
           where release_id = ? and hcpcs = '76120' order by modifier""",
        dict,
    )


def mue_known_values(con) -> dg.AssetCheckResult:
    """76120 in the practitioner MUE tables of 2024Q3 and 2026Q2: 1 unit, adjudication indicator 3."""
    return _known_values(
        con,
        {"MUE 2024Q3": [(1, 3)], "MUE 2026Q2": [(1, 3)]},
        """select mue_value, mai from ref_mue where release_id = ?
           and service_type = 'practitioner' and hcpcs = '76120'""",
    )


def aoc_known_values(con) -> dg.AssetCheckResult:
    """76125 in the AOC edits of 2024Q3 and 2026Q2: an add-on code of edit type 2, primary CCCCC (the
    contractor names its primaries), in force from 2013-04-01 in the workbook."""
    return _known_values(
        con,
        {"AOC 2024Q3": [("CCCCC", 2, None)], "AOC 2026Q2": [("CCCCC", 2, "2013-04-01")]},
        """select primary_code, edit_type, edit_effective_date::varchar from ref_aoc
           where release_id = ? and add_on_code = '76125' order by all""",
    )


def ptp_known_values(con) -> dg.AssetCheckResult:
    """76120 in the 2024Q3 practitioner PTP edits: 112 pairs, 34 of them not deleted."""
    if not _bundled_is_loaded(con, "PTP 2024Q3"):
        return _replaced("PTP 2024Q3")
    pairs, active = con.execute(
        """select count(*), count(*) filter (where deletion_date is null) from ref_ptp
           where release_id = 'PTP 2024Q3' and '76120' in (column_1, column_2)"""
    ).fetchall()[0]
    return dg.AssetCheckResult(passed=(pairs, active) == (112, 34),
                               metadata={"pairs": pairs, "not_deleted": active})


# What a check of a table's keys found, by the releases the table held then: the count of repeated keys of a
# table changes only when a release is loaded or replaced, and counting them in the PTP table takes seconds,
# at the start of every scrub.
CHECK_MEMO = """
create table if not exists ref_check_memo (
    check_key varchar primary key, releases varchar, duplicate_keys bigint, checked_at timestamp)
"""
RELEASES_OF = """
select coalesce(string_agg(concat_ws('|', release_id, table_name, row_count, sha256, loaded_at), ';'
                           order by release_id, table_name), '')
from ref_releases where table_name = $table or table_name like $table || '\\_%' escape '\\'
"""


def _unique_check(table: str, key: str, releases_table: str):
    def check(con) -> dg.AssetCheckResult:
        memo_key = f"{table}: {key}"
        releases = con.execute(RELEASES_OF, {"table": releases_table}).fetchall()[0][0]
        try:
            con.execute(CHECK_MEMO)
            known = con.execute("select duplicate_keys from ref_check_memo where check_key = ? and releases = ?",
                                [memo_key, releases]).fetchall()
        except duckdb.Error:  # a database opened read-only: counted every time
            known = None
        if known:
            duplicates = known[0][0]
        else:
            duplicates = con.execute(
                f"select count(*) from (select {key} from {table} group by {key} having count(*) > 1)"
            ).fetchall()[0][0]
            if known is not None:
                con.execute("insert or replace into ref_check_memo values (?, ?, ?, now())",
                            [memo_key, releases, duplicates])
        return dg.AssetCheckResult(passed=duplicates == 0, metadata={"duplicate_keys": duplicates})

    return check


def _row_count_check(table: str, count_sql: str):
    """Each release's rows in its table equal the rows its files hold: the count taken while reading the
    file (recorded in ref_releases) and, for the bundled releases, the count the manifest states."""
    expected = {(r.id, t): n for r in loaders.bundled_releases() if r.table == table for t, n in r.rows.items()}

    def check(con) -> dg.AssetCheckResult:
        recorded = con.execute(
            """select release_id, table_name, row_count, origin from ref_releases
               where table_name = ? or table_name like ?""",
            [table, table + "_%"],
        ).fetchall()
        actual = {(r[0], r[1]): r[2] for r in con.execute(count_sql).fetchall()}
        wrong = [
            f"{release} {table_name}: {actual.get((release, table_name), 0)} rows loaded, "
            f"{expected.get((release, table_name), count) if origin == 'bundled' else count} in the files"
            for release, table_name, count, origin in recorded
            if actual.get((release, table_name), 0) != count
            or (origin == "bundled" and expected.get((release, table_name), count) != count)
        ]
        return dg.AssetCheckResult(passed=not wrong, metadata={"releases": len(recorded),
                                                               "mismatches": "; ".join(wrong) or "none"})

    return check


class Check(NamedTuple):
    """One reference check: the known values of 76120 block (a run would judge with a wrong table), the
    others report."""

    asset: dg.AssetKey
    name: str
    description: str
    blocking: bool
    run: Callable


def _table_checks(asset: dg.AssetKey, table: str, key: str, count_sql: str) -> list[Check]:
    return [
        Check(asset, KEYS_UNIQUE, f"one row per {key}", False,
              _unique_check(loaders.TABLE_OF[table], key, table)),
        Check(asset, ROW_COUNTS, "rows loaded = rows in the release's files", False,
              _row_count_check(table, count_sql)),
    ]


# A PTP pair can be listed more than once: deleted, then added again with a new effective date, and the CSV
# forms dropped that date; CMS also lists 88108/88162 twice with two rationales. So no row repeats whole.
PTP_KEY = "release_id, column_1, column_2, effective_date, deletion_date, modifier_indicator, rationale"
_PTP_UNIQUE, _PTP_COUNTS = _table_checks(dg.AssetKey("ncci_ptp_edits"), "ptp", PTP_KEY,
                                         "select release_id, 'ptp', count(*) from ref_ptp group by all")

CHECKS: list[Check] = [
    Check(dg.AssetKey("rvu_fee_schedule"), RVU_76120_KNOWN, rvu_known_values.__doc__, True, rvu_known_values),
    Check(dg.AssetKey("mue_limits"), MUE_76120_KNOWN, mue_known_values.__doc__, True, mue_known_values),
    Check(dg.AssetKey("ncci_ptp_edits"), PTP_76120_KNOWN, ptp_known_values.__doc__, True, ptp_known_values),
    Check(dg.AssetKey("aoc_edits"), AOC_76125_KNOWN, aoc_known_values.__doc__, True, aoc_known_values),
    *_table_checks(dg.AssetKey("rvu_fee_schedule"), "rvu", "release_id, hcpcs, modifier",
                   "select release_id, 'rvu', count(*) from ref_rvu group by all"),
    *_table_checks(dg.AssetKey("gpci_localities"), "gpci", "release_id, locality_key",
                   "select release_id, 'gpci', count(*) from ref_gpci group by all"),
    *_table_checks(dg.AssetKey("locality_counties"), "locality_counties", "release_id, locality_key",
                   "select release_id, 'locality_counties', count(*) from ref_locality_counties group by all"),
    *_table_checks(dg.AssetKey("zip_localities"), "zip", "release_id, zip",
                   "select release_id, 'zip', count(*) from ref_zip group by all"),
    *_table_checks(dg.AssetKey("mue_limits"), "mue", "release_id, service_type, hcpcs",
                   "select release_id, 'mue_' || service_type, count(*) from ref_mue group by all"),
    # An edit deleted and added again (20701 with 11010: type 1 until 2022, type 3 from 2023) is two rows.
    *_table_checks(dg.AssetKey("aoc_edits"), "aoc", "release_id, add_on_code, primary_code, edit_effective_date",
                   "select release_id, 'aoc', count(*) from ref_aoc group by all"),
    *_table_checks(dg.AssetKey("adjustment_codes"), "adjustment_codes", "release_id, code_type, code",
                   "select release_id, 'adjustment_codes', count(*) from ref_adjustment_codes group by all"),
    _PTP_COUNTS,
]


@dg.multi_asset_check(
    specs=[dg.AssetCheckSpec(c.name, asset=c.asset, description=c.description, blocking=c.blocking)
           for c in CHECKS],
    can_subset=True,
    op_tags={**FIRST, **MAIN_FILE_TAG},
    pool=MAIN_FILE_POOL,
)
def reference_checks(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource):
    """The checks every scrub runs, in one step on one connection (a step of its own costs each about as much
    as the check itself)."""
    selected = context.selected_asset_check_keys
    with duckdb.get_connection() as con:
        for check in CHECKS:
            if dg.AssetCheckKey(check.asset, check.name) in selected:
                result = check.run(con)
                yield dg.AssetCheckResult(asset_key=check.asset, check_name=check.name,
                                          passed=result.passed, metadata=result.metadata)


@dg.asset_check(asset="ncci_ptp_edits", name=KEYS_UNIQUE, description=_PTP_UNIQUE.description,
                pool=MAIN_FILE_POOL, op_tags=MAIN_FILE_TAG)
def ptp_rows_unique(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        return _PTP_UNIQUE.run(con)


REFERENCE_ASSETS = [reference_tables]
# The checks every scrub runs; the uniqueness of the millions of PTP rows takes seconds, so it runs with the
# Dagster job and in the UI only.
PER_RUN_CHECKS = [reference_checks]
REFERENCE_CHECKS = [*PER_RUN_CHECKS, ptp_rows_unique]
