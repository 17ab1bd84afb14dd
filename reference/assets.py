"""Reference tables as Dagster assets: each loads its bundled releases on first use (no network) and
keeps whatever releases a user loaded with `claimscrub reference load`."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from . import loaders

RVU_76120_KNOWN = "rvu_76120_total_rvus"
MUE_76120_KNOWN = "mue_76120_value"
KEYS_UNIQUE = "keys_unique"


def _materialize(duckdb: DuckDBResource, table: str) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        loaded = loaders.ensure_bundled(con, table)
        rows = con.execute(
            """select release_id, table_name, row_count, effective_start, effective_end, source_files
               from ref_releases where table_name = ? or table_name like ? order by effective_start""",
            [table, table + "_%"],
        ).fetchall()
    return dg.MaterializeResult(
        metadata={
            "releases": dg.MetadataValue.md(
                "\n".join(f"- {r[0]} ({r[1]}): {r[2]:,} rows, {r[3]} to {r[4]}, {r[5]}" for r in rows)
            ),
            "loaded_now": ", ".join(loaded) or "none (already loaded)",
            "row_count": sum(r[2] for r in rows),
        }
    )


@dg.asset(group_name="reference", kinds={"duckdb"})
def rvu_fee_schedule(duckdb: DuckDBResource) -> dg.MaterializeResult:
    """One row per HCPCS code and modifier per PFS release (PPRRVU official layout): RVUs, status, PC/TC."""
    return _materialize(duckdb, "rvu")


@dg.asset(group_name="reference", kinds={"duckdb"})
def gpci_localities(duckdb: DuckDBResource) -> dg.MaterializeResult:
    """One row per Medicare locality (MAC + locality) per GPCI release (Addendum E)."""
    return _materialize(duckdb, "gpci")


@dg.asset(group_name="reference", kinds={"duckdb"})
def zip_localities(duckdb: DuckDBResource) -> dg.MaterializeResult:
    """One row per ZIP code per ZIP5 release: its carrier and pricing locality."""
    return _materialize(duckdb, "zip")


@dg.asset(group_name="reference", kinds={"duckdb"})
def ncci_ptp_edits(duckdb: DuckDBResource) -> dg.MaterializeResult:
    """One row per NCCI practitioner PTP edit (column 1, column 2) per quarterly release."""
    return _materialize(duckdb, "ptp")


@dg.asset(group_name="reference", kinds={"duckdb"})
def mue_limits(duckdb: DuckDBResource) -> dg.MaterializeResult:
    """One row per HCPCS code per MUE service type per quarterly release: units limit and indicator."""
    return _materialize(duckdb, "mue")


@dg.asset(group_name="reference", kinds={"duckdb"})
def adjustment_codes(duckdb: DuckDBResource) -> dg.MaterializeResult:
    """One row per CARC, RARC and group code (X12 code lists)."""
    return _materialize(duckdb, "adjustment_codes")


@dg.asset_check(asset=rvu_fee_schedule, name=RVU_76120_KNOWN, blocking=True)
def rvu_known_values(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    """76120 in RVU25D: total non-facility RVUs 3.29 global, 0.56 with 26, 2.73 with TC."""
    with duckdb.get_connection() as con:
        rows = con.execute(
            """select modifier, (work_rvu + pe_nonfacility + mp_rvu)::varchar from ref_rvu
               where release_id = 'RVU25D' and hcpcs = '76120' order by modifier"""
        ).fetchall()
    found = dict(rows)
    expected = {"": "3.29", "26": "0.56", "TC": "2.73"}
    return dg.AssetCheckResult(passed=found == expected, metadata={"found": str(found), "expected": str(expected)})


@dg.asset_check(asset=mue_limits, name=MUE_76120_KNOWN, blocking=True)
def mue_known_values(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    """76120 in the 2024Q3 practitioner MUE table: 1 unit, adjudication indicator 3."""
    with duckdb.get_connection() as con:
        rows = con.execute(
            """select mue_value, mai from ref_mue where release_id = 'MUE 2024Q3'
               and service_type = 'practitioner' and hcpcs = '76120'"""
        ).fetchall()
    return dg.AssetCheckResult(passed=rows == [(1, 3)], metadata={"found": str(rows)})


def _unique_check(table: str, key: str):
    def check(duckdb: DuckDBResource) -> dg.AssetCheckResult:
        with duckdb.get_connection() as con:
            duplicates = con.execute(
                f"select count(*) from (select {key} from {table} group by {key} having count(*) > 1)"
            ).fetchall()[0][0]
        return dg.AssetCheckResult(passed=duplicates == 0, metadata={"duplicate_keys": duplicates})

    return check


rvu_keys_unique = dg.asset_check(asset=rvu_fee_schedule, name=KEYS_UNIQUE)(
    _unique_check("ref_rvu", "release_id, hcpcs, modifier"))
mue_keys_unique = dg.asset_check(asset=mue_limits, name=KEYS_UNIQUE)(
    _unique_check("ref_mue", "release_id, service_type, hcpcs"))
gpci_keys_unique = dg.asset_check(asset=gpci_localities, name=KEYS_UNIQUE)(
    _unique_check("ref_gpci", "release_id, locality_key"))

REFERENCE_ASSETS = [rvu_fee_schedule, gpci_localities, zip_localities, ncci_ptp_edits, mue_limits,
                    adjustment_codes]
REFERENCE_CHECKS = [rvu_known_values, mue_known_values, rvu_keys_unique, mue_keys_unique, gpci_keys_unique]
