"""The reference layer: `claimscrub reference load` reads each official CMS layout from real excerpts, names
its release and period, refuses what it cannot tell, and a newer release judges exactly its own dates."""

import gzip
import hashlib
import shutil
import zipfile
from pathlib import Path

import dagster as dg
import duckdb
import openpyxl
import pytest
from click.testing import CliRunner

from pipelines.cli import main
from pipelines.resources import duckdb_resource
from reference.assets import PER_RUN_CHECKS, REFERENCE_ASSETS
from reference.loaders import DATA_DIR

from .helpers import scrub, write_csv

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "reference"
PTP_2026 = FIXTURES / "ccipra-v322r0-f1_layout_sample.txt"
MUE_2026 = FIXTURES / "MCR_MUE_PractitionerServices_Eff_07-01-2026_excerpt.csv"
# HDR lines and 11 records of the fixed-width RVU26B file (27447, 33945, 76000, 76120, 76125), descriptions blank
RVU_TXT = FIXTURES / "PPRRVU2026_Apr_nonQPP_excerpt.txt"
# The bundled 2026 files, as CMS publishes them (the RVU descriptions blanked)
RVU_26B = DATA_DIR / "PPRRVU2026_Apr_nonQPP.txt.gz"
MUE_26Q2 = DATA_DIR / "MCR_MUE_PractitionerServices_Eff_04-01-2026.csv.gz"
AOC_26Q2 = DATA_DIR / "AOC_V2026Q2-MCR.xlsx"
AOC_CSV = DATA_DIR / "ncci_aoc_2024-06.csv.gz"
GPCI_2026 = DATA_DIR / "GPCI2026.csv"
DATED_FILES = [
    "PPRRVU2025_Oct_excerpt.csv", "GPCI2025.csv", "25LOCCO.csv", "ZIP5_OCT2025_excerpt.txt",
    "ncci_ptp_practitioner_2024Q3_76120_pairs.csv", PTP_2026.name,
    "ncci_mue_practitioner_2024-07-01_excerpt.csv", "ncci_mue_all_services_2024Q2_excerpt.csv", MUE_2026.name,
]
ADJUSTMENT_FILES = ["carc_codes.csv", "rarc_codes.csv", "claim_adjustment_group_codes.csv"]


def reference(*args: str):
    return CliRunner().invoke(main, ["reference", *map(str, args)])


def query(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def snapshot(db: Path, table: str) -> tuple[list, list]:
    """What a refused load must leave as it was: the releases and the rows of their table."""
    return query(db, "select * from ref_releases order by all"), query(db, f"select * from {table} order by all")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listed_line(db: Path, release: str, table: str) -> str:
    listed = reference("list", "--db", db).stdout
    return next((x for x in listed.splitlines() if x.split("  ")[0].strip() == release and f" {table} " in x), "")


@pytest.fixture
def fresh_db(tmp_path) -> Path:
    return tmp_path / "fresh.duckdb"


@pytest.fixture
def loaded_db(fresh_db) -> Path:
    result = reference("load", *(FIXTURES / f for f in DATED_FILES), "--db", fresh_db)
    assert result.exit_code == 0, result.output
    return fresh_db


def test_load_names_each_release_and_period_from_the_file_names(loaded_db):
    listed = reference("list", "--db", loaded_db).output
    for release, table, period, rows in [
        ("RVU25D", "rvu", "2025-10-01 to 2025-12-31", "14"),
        ("GPCI 2025", "gpci", "2025-01-01 to 2025-12-31", "109"),
        ("LOCCO 2025", "locality_counties", "2025-01-01 to 2025-12-31", "109"),
        ("ZIP5 2025Q4", "zip", "2025-10-01 to 2025-12-31", "25"),
        ("PTP 2024Q3", "ptp", "2024-07-01 to 2024-09-30", "112"),
        ("PTP 2026Q3", "ptp", "2026-07-01 to 2026-09-30", "15"),
        ("MUE 2024Q3", "mue_practitioner", "2024-07-01 to 2024-09-30", "30"),
        ("MUE 2024Q2", "mue_dme", "2024-04-01 to 2024-06-30", "1"),
        ("MUE 2024Q2", "mue_outpatient_hospital", "2024-04-01 to 2024-06-30", "3"),
        ("MUE 2026Q3", "mue_practitioner", "2026-07-01 to 2026-09-30", "44"),
    ]:
        line = next((x for x in listed.splitlines() if x.split("  ")[0].strip() == release and f" {table} " in x), "")
        assert period in line and f" {rows} " in line and " user " in line, (release, table, listed)
    assert "MCR_MUE_PractitionerServices_Eff_07-01-2026_excerpt.csv" in listed


def test_pprrvu_loader_keeps_the_rvus_status_and_pctc_of_each_component(loaded_db):
    rows = query(loaded_db, """select modifier, work_rvu + pe_nonfacility + mp_rvu, pctc, status, conversion_factor
                               from ref_rvu where hcpcs = '76120' order by modifier""")
    assert [(m, str(total), pctc, status) for m, total, pctc, status, _ in rows] == [
        ("", "3.29", "1", "A"), ("26", "0.56", "1", "A"), ("TC", "2.73", "1", "A")]
    assert str(rows[0][4]) == "32.3465"
    assert query(loaded_db, "select pe_facility_na from ref_rvu where hcpcs = '76120' and modifier = ''") == [(True,)]


def test_gpci_county_and_zip_loaders_agree_on_the_san_francisco_locality(loaded_db):
    assert query(loaded_db, """select work_gpci::varchar, pe_gpci::varchar, mp_gpci::varchar, locality_name
                               from ref_gpci where locality_key = '02102-01'""") == [("1.500", "1.081", "0.592", "ALASKA")]
    assert query(loaded_db, "select mac, locality from ref_zip where zip = '94103'") == [("01112", "05")]
    assert query(loaded_db, """select state, fee_schedule_area, counties from ref_locality_counties
                               where locality_key = '01112-05'""") == [
        ("CALIFORNIA", "SAN FRANCISCO-OAKLAND-BERKELEY (SAN FRANCISCO CNTY/ALAMEDA/CONTR COSTA CNTY/SAN MATEO)",
         "SAN FRANCISCO/ALAMEDA/CONTRA COSTA/SAN MATEO")]
    # Every county-file locality is a GPCI locality (the file's MACs lose their leading zero; we restore it).
    assert query(loaded_db, "select locality_key from ref_locality_counties except select locality_key from ref_gpci") == []


def test_official_ptp_text_keeps_effective_and_deletion_dates_and_indicator(loaded_db):
    rows = query(loaded_db, """select column_2, effective_date::varchar, deletion_date::varchar, modifier_indicator
                               from ref_ptp where release_id = 'PTP 2026Q3' and column_1 = '0001U' order by 1""")
    assert rows == [("0028U", "2018-07-01", "2018-09-30", "1"), ("0029U", "2018-07-01", "2026-06-30", "1"),
                    ("0030U", "2018-07-01", None, "1"), ("0417U", "2025-01-01", None, "1"),
                    ("0428U", "2024-10-01", "2024-12-31", "1")]
    # The CSV form has no effective date: its edits count from the start of their release.
    assert query(loaded_db, """select count(*), min(effective_date)::varchar from ref_ptp
                               where release_id = 'PTP 2024Q3' and '76120' in (column_1, column_2)""") == [
        (112, "2024-07-01")]


def test_mue_loaders_read_the_official_header_and_every_service_type(loaded_db):
    assert query(loaded_db, """select mue_value, mai, rationale from ref_mue
                               where release_id = 'MUE 2026Q3' and hcpcs = '0020M'""") == [
        (1, 2, "Code Descriptor / CPT Instruction")]
    assert query(loaded_db, """select service_type, mue_value, mai from ref_mue where release_id = 'MUE 2024Q3'
                               and hcpcs = '76120'""") == [("practitioner", 1, 3)]
    assert query(loaded_db, """select service_type, mue_value from ref_mue where release_id = 'MUE 2024Q2'
                               and hcpcs = 'E0100' order by 1""") == [
        ("dme", 1), ("outpatient_hospital", 0), ("practitioner", 0)]


def test_carc_rarc_lists_need_an_effective_date_then_load_as_one_release(fresh_db):
    files = [FIXTURES / f for f in ADJUSTMENT_FILES]
    refused = reference("load", *files, "--db", fresh_db)
    assert refused.exit_code == 2
    assert refused.stderr.strip() == ("claimscrub: carc_codes.csv: cannot tell the effective date from the file "
                                      "name; give --effective YYYY-MM-DD")
    loaded = reference("load", *files, "--effective", "2024-06-01", "--db", fresh_db)
    assert loaded.exit_code == 0, loaded.output
    assert loaded.stdout.startswith("CARC-RARC 2024-06: loaded, 2024-06-01 to 2099-12-31, 25 adjustment_codes")
    assert query(fresh_db, "select code_type, count(*) from ref_adjustment_codes group by 1 order by 1") == [
        ("CARC", 10), ("GROUP", 5), ("RARC", 10)]


def test_load_refuses_what_it_cannot_tell_with_one_line(fresh_db, tmp_path):
    export = write_csv(tmp_path / "claims.csv", [{"claim_id": "C1", "hcpcs": "76120"}])
    unknown = reference("load", export, "--db", fresh_db)
    assert unknown.exit_code == 2
    assert unknown.stderr.startswith("claimscrub: claims.csv: not a CMS reference layout claimscrub knows")
    conflict = reference("load", MUE_2026, "--effective", "2026-04-01", "--db", fresh_db)
    assert conflict.exit_code == 2
    assert "file name says effective 2026-07-01, --effective says 2026-04-01" in conflict.stderr
    missing = reference("load", tmp_path / "nowhere.txt", "--db", fresh_db)
    assert missing.exit_code == 2 and "nowhere.txt: file not found" in missing.stderr
    folder = reference("load", tmp_path, "--db", fresh_db)
    assert folder.exit_code == 2
    assert f"{tmp_path}: is a folder, not a CMS reference file (name the files in it)" in folder.stderr
    for result in (unknown, conflict, missing, folder):
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert " user " not in reference("list", "--db", fresh_db).stdout


def test_ptp_part_files_and_cms_archives_make_one_release(fresh_db, tmp_path):
    lines = PTP_2026.read_text().splitlines(keepends=True)
    header, edits = lines[:6], lines[6:]
    part1 = tmp_path / "ccipra-v322r0-f1.txt"
    part2 = tmp_path / "ccipra-v322r0-f2.txt"
    # CMS publishes with CRLF line endings, also inside the MUE header cell.
    part1.write_bytes("".join(header + edits[:8]).replace("\n", "\r\n").encode())
    part2.write_bytes("".join(header + edits[8:]).replace("\n", "\r\n").encode())
    archive = tmp_path / "medicare-ncci-2026-q3-practitioner-services-mue-table.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("MCR_MUE_PractitionerServices_Eff_07-01-2026.csv",
                    MUE_2026.read_bytes().replace(b"\n", b"\r\n"))
        zf.writestr("readme.txt", "Medically Unlikely Edits, read me first.\n")
    result = reference("load", part1, part2, archive, "--db", fresh_db)
    assert result.exit_code == 0, result.output
    assert ("PTP 2026Q3: loaded, 2026-07-01 to 2026-09-30, 15 ptp from ccipra-v322r0-f1.txt; ccipra-v322r0-f2.txt"
            in result.stdout)
    assert ("MUE 2026Q3: loaded, 2026-07-01 to 2026-09-30, 44 mue_practitioner from "
            f"{archive.name}:MCR_MUE_PractitionerServices_Eff_07-01-2026.csv") in result.stdout
    assert query(fresh_db, """select rationale, deletion_date::varchar from ref_ptp
                              where column_1 = '0001U' and column_2 = '0029U'""") == [
        ("Misuse of Column Two code with Column One code", "2026-06-30")]
    assert query(fresh_db, "select mue_value, mai from ref_mue where hcpcs = '0020M'") == [(1, 2)]
    again = reference("load", part1, part2, "--db", fresh_db)
    assert "PTP 2026Q3: already loaded (same files)" in again.stdout


def test_a_file_given_twice_in_one_load_is_read_once(fresh_db, tmp_path):
    """`reference load downloads/*` over a CMS zip and the CSV taken out of it, or the CSV again with other line
    ends: each MUE row is stored once (twice over, every line of its code was a line of lines.csv twice)."""
    archive = tmp_path / "medicare-ncci-2026q3-practitioner-mue-table.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(MUE_2026.name.replace("_excerpt", ""), MUE_2026.read_bytes())
    crlf = tmp_path / "copy" / MUE_2026.name.replace("_excerpt", "")
    crlf.parent.mkdir()
    crlf.write_bytes(MUE_2026.read_bytes().replace(b"\n", b"\r\n"))
    result = reference("load", archive, MUE_2026, crlf, "--db", fresh_db)
    assert result.exit_code == 0, result.output
    assert "MUE 2026Q3: loaded, 2026-07-01 to 2026-09-30, 44 mue_practitioner" in result.stdout
    assert query(fresh_db, "select count(*), count(distinct hcpcs) from ref_mue where release_id = 'MUE 2026Q3'") == [
        (44, 44)]


def test_a_load_refused_at_its_last_file_loads_none_of_its_releases(fresh_db, tmp_path):
    broken = tmp_path / MUE_2026.name.replace("_excerpt", "")
    broken.write_bytes(MUE_2026.read_bytes().replace(b",1,", b",one,", 1))
    assert reference("load", GPCI_2026, "--db", fresh_db).exit_code == 0
    before = snapshot(fresh_db, "ref_ptp")
    refused = reference("load", PTP_2026, broken, "--db", fresh_db)
    assert refused.exit_code == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.output
    assert broken.name in refused.stderr
    assert snapshot(fresh_db, "ref_ptp") == before, "the PTP release read before the refused file is not kept"


@pytest.mark.parametrize(("damage", "what"), [
    (("\t20260630\t1\t", "\t2026O630\t1\t"), "deletion date 2026O630"),
    (("\t20260630\t1\t", "\t2026063\t1\t"), "deletion date 2026063"),
    (("\t20260630\t1\t", "\t20260630\tX\t"), "modifier indicator X"),
    (("\t20260630\t1\t", "\t20260630\t"), "modifier indicator Misuse of Column Two code with Column One code"),
])
def test_a_damaged_ptp_record_refuses_its_file_naming_it(fresh_db, tmp_path, damage, what):
    """Read as no date, a damaged deletion date kept a deleted edit alive; a record missing a tab made its
    rationale its modifier indicator, and the edit was never applied."""
    damaged = tmp_path / "ccipra-v322r0-f1.txt"
    damaged.write_text(PTP_2026.read_text().replace(*damage, 1))
    refused = reference("load", damaged, "--db", fresh_db)
    assert refused.exit_code == 2, refused.output
    assert refused.stderr.strip() == (f"claimscrub: {damaged.name}: record 0001U/0029U does not fit the PTP layout "
                                      f"({what})")
    assert " user " not in reference("list", "--db", fresh_db).stdout


def test_a_damaged_record_in_one_part_of_a_ptp_release_names_that_part_alone(fresh_db, tmp_path):
    parts = []
    for number in (1, 2):
        part = tmp_path / f"ccipra-v322r0-f{number}.txt"
        text = PTP_2026.read_text()
        part.write_text(text.replace("\t20260630\t1\t", "\t2026O630\t1\t", 1) if number == 2 else text)
        parts.append(part)
    refused = reference("load", *parts, "--db", fresh_db)
    assert refused.exit_code == 2, refused.output
    assert refused.stderr.startswith("claimscrub: ccipra-v322r0-f2.txt: record 0001U/0029U"), refused.stderr


def test_a_file_effective_inside_a_quarter_is_a_release_of_its_own_beside_the_quarters(fresh_db, tmp_path):
    """Named as the quarter's, an August file replaced the July one and left July to an older quarter."""
    august = tmp_path / "MCR_MUE_PractitionerServices_Eff_08-01-2026.csv"
    august.write_bytes(MUE_2026.read_bytes().replace(b"0041U,1,", b"0041U,2,"))
    loaded = reference("load", MUE_2026, august, "--db", fresh_db)
    assert loaded.exit_code == 0, loaded.output
    assert "MUE 2026Q3: loaded, 2026-07-01 to 2026-09-30" in loaded.stdout
    # It judges the rest of its quarter: a date after that is past the newest release, as after any quarter's.
    assert "MUE 2026-08-01: loaded, 2026-08-01 to 2026-09-30" in loaded.stdout
    assert query(fresh_db, "select distinct release_id from ref_mue where release_id like 'MUE 2026%' "
                           "order by 1") == [("MUE 2026-08-01",), ("MUE 2026Q3",)]


def test_a_quarters_mue_files_loaded_one_by_one_make_one_release_of_each_service_type(fresh_db, tmp_path):
    """CMS publishes the practitioner and the outpatient hospital MUEs in files of their own: the second loaded
    adds to the quarter's release (it erased the first, and professional lines fell back a quarter)."""
    hospital = tmp_path / "MCR_MUE_OutpatientHospitalServices_Eff_07-01-2026.csv"
    hospital.write_bytes(MUE_2026.read_bytes().replace(b"Practitioner Services MUE Values",
                                                        b"Outpatient Hospital Services MUE Values"))
    assert reference("load", MUE_2026, "--db", fresh_db).exit_code == 0
    loaded = reference("load", hospital, "--db", fresh_db)
    assert loaded.exit_code == 0, loaded.output
    assert query(fresh_db, """select service_type, count(*) from ref_mue where release_id = 'MUE 2026Q3'
                              group by 1 order by 1""") == [("outpatient_hospital", 44), ("practitioner", 44)]
    assert query(fresh_db, """select table_name from ref_releases where release_id = 'MUE 2026Q3'
                              order by 1""") == [("mue_outpatient_hospital",), ("mue_practitioner",)]
    again = reference("load", MUE_2026, "--db", fresh_db)
    assert "MUE 2026Q3: already loaded (same files)" in again.stdout


def test_release_id_option_names_the_release(fresh_db):
    result = reference("load", PTP_2026, "--release-id", "PTP 2026Q3 sample", "--db", fresh_db)
    assert result.exit_code == 0, result.output
    assert query(fresh_db, "select release_id, effective_start::varchar from ref_releases") == [
        ("PTP 2026Q3 sample", "2026-07-01")]


@pytest.mark.parametrize("name", ["PTP 2026Q3\nsample", "  ", "PTP\t2026Q3"])
def test_a_release_id_that_is_not_one_printable_line_is_refused(fresh_db, name):
    """A line break in a release id broke every report line that names the release."""
    result = reference("load", PTP_2026, "--release-id", name, "--db", fresh_db)
    assert result.exit_code == 2
    assert "a release id is one line of printable text" in result.output
    assert not fresh_db.exists()


def test_list_on_a_fresh_database_shows_the_bundled_releases():
    # A new site's default database (the one named by --db must exist: a name typed wrong is refused).
    listed = reference("list")
    assert listed.exit_code == 0
    for release in ["RVU25D", "RVU26B", "GPCI 2025", "GPCI 2026", "LOCCO 2025", "ZIP5 2025Q4", "PTP 2024Q2",
                    "PTP 2024Q3", "MUE 2024Q2", "MUE 2024Q3", "MUE 2026Q2", "AOC 2024Q3", "AOC 2026Q2",
                    "CARC-RARC 2024-06"]:
        assert any(x.startswith(release + " ") and "bundled" in x for x in listed.stdout.splitlines()), release
    assert "2,546,017" in listed.stdout


def test_localities_lists_the_locality_codes_with_their_counties(db_path):
    result = reference("localities", "--state", "MO", "--db", db_path)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "05302-01  MO  METROPOLITAN ST. LOUIS: JEFFERSON, ST. CHARLES, ST. LOUIS AND ST. LOUIS CITY",
        "05302-02  MO  METROPOLITAN KANSAS CITY: CLAY, JACKSON AND PLATTE",
        "05302-99  MO  REST OF STATE: ALL OTHER COUNTIES",
        "(3 localities, LOCCO 2025)",
    ]


def test_reference_checks_pass_on_the_bundled_releases_and_catch_a_short_table(db_path):
    def run():
        with dg.DagsterInstance.ephemeral() as instance:
            return dg.materialize([*REFERENCE_ASSETS, *PER_RUN_CHECKS],
                                  resources={"duckdb": duckdb_resource(str(db_path))},
                                  instance=instance, raise_on_error=False)

    checks = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in run().get_asset_check_evaluations()}
    assert len(checks) == sum(len(c.check_keys) for c in PER_RUN_CHECKS) == 19 and all(checks.values()), checks
    with duckdb.connect(str(db_path)) as con:
        con.execute("delete from ref_mue where release_id = 'MUE 2024Q3' and hcpcs = '76120'")
    failed = {(e.asset_key.to_user_string(), e.check_name) for e in run().get_asset_check_evaluations()
              if not e.passed}
    assert failed == {("mue_limits", "row_counts_match_files"), ("mue_limits", "mue_76120_value")}


def test_a_table_s_keys_are_counted_again_when_its_releases_change(db_path):
    # The count of repeated keys is kept by the releases a table holds (counting the PTP table's takes
    # seconds at every scrub); a release loaded again, here with a repeated row, is counted again.
    def failed():
        with dg.DagsterInstance.ephemeral() as instance:
            run = dg.materialize([*REFERENCE_ASSETS, *PER_RUN_CHECKS],
                                 resources={"duckdb": duckdb_resource(str(db_path))},
                                 instance=instance, raise_on_error=False)
        return {(e.asset_key.to_user_string(), e.check_name, e.metadata.get("duplicate_keys", None) and
                 e.metadata["duplicate_keys"].value) for e in run.get_asset_check_evaluations() if not e.passed}

    assert failed() == set()
    with duckdb.connect(str(db_path)) as con:
        con.execute("""insert into ref_mue select * from ref_mue
                       where release_id = 'MUE 2024Q3' and hcpcs = '76120' and service_type = 'practitioner'""")
        con.execute("""update ref_releases set row_count = row_count + 1, loaded_at = now()
                       where release_id = 'MUE 2024Q3' and table_name = 'mue_practitioner'""")
    # (the known values of 76120 and the bundled row count see the repeated row too)
    assert failed() == {("mue_limits", "keys_unique", 1), ("mue_limits", "mue_76120_value", None),
                        ("mue_limits", "row_counts_match_files", None)}


def test_a_scrub_against_a_broken_reference_table_stops_and_names_the_check(db_path, tmp_path):
    with duckdb.connect(str(db_path)) as con:
        con.execute("delete from ref_mue where release_id = 'MUE 2024Q3' and hcpcs = '76120'")
    export = write_csv(tmp_path / "claims.csv", [dict(claim_id="C1", line_number=1, patient_id="P1",
                                                       date_of_service="2024-07-08", hcpcs="76120", units=1)])
    run = scrub([export], tmp_path / "out", db_path)
    assert run.exit_code == 1
    assert run.stderr.strip() == ("claimscrub: check mue_76120_value failed on mue_limits: "
                                  "nothing was scrubbed")
    assert not (tmp_path / "out").exists()


def test_newer_official_releases_judge_exactly_the_dates_they_cover(db_path, tmp_path):
    loaded = reference("load", PTP_2026, MUE_2026, "--db", db_path)
    assert loaded.exit_code == 0, loaded.output
    # Samples of the official files: far fewer rows than a whole quarter, which the load says.
    warnings = [line for line in loaded.stderr.splitlines() if line.startswith("warning: ")]
    assert any(w.startswith("warning: PTP 2026Q3 holds ") and " ptp rows against 2,546,017 in PTP 2024Q3: if "
               "the official file comes in parts, load them all together" in w for w in warnings), warnings

    def encounter(claim: str, dos: str) -> list[dict]:
        base = {"patient_id": "PAT-REF", "date_of_service": dos, "units": "1", "rendering_npi": "1234567893",
                "billing_npi": "1234567893", "place_of_service": "11", "diagnosis_1": "R10.9"}
        codes = ["0001U", "0029U", "0030U", "0417U", "0001A", "90473", "0020M"]
        return [{**base, "claim_id": claim, "line_number": n, "hcpcs": code,
                 "units": "2" if code == "0020M" else "1"} for n, code in enumerate(codes, start=1)]

    export = write_csv(tmp_path / "claims.csv", [*encounter("Q3-2026", "2026-07-15"),
                                                 *encounter("Q2-2026", "2026-06-30"),
                                                 *encounter("Q3-2024", "2024-08-15")])
    run = scrub([export], tmp_path / "out", db_path)
    assert run.exit_code == 0, run.stderr

    def judged(claim):
        line = run.line(claim, 1)
        return line["ptp_release"], line["mue_release"], line["reference_match"]

    assert judged("Q3-2026") == ("PTP 2026Q3", "MUE 2026Q3", "approximate")  # no RVU release covers 2026Q3
    assert judged("Q2-2026") == ("PTP 2024Q3", "MUE 2026Q2", "approximate")  # the bundled 2026Q2 MUE table
    assert judged("Q3-2024") == ("PTP 2024Q3", "MUE 2024Q3", "approximate")

    # 2026Q3: 0001U/0029U was deleted 2026-06-30, 0001U/0417U is new, 0001A/90473 has indicator 9.
    assert "PTP_NO_BYPASS" not in run.findings("Q3-2026", 2)
    assert "PTP_NO_BYPASS" in run.findings("Q3-2026", 3)
    assert "PTP_NO_BYPASS" in run.findings("Q3-2026", 4)
    assert "PTP_NO_BYPASS" not in run.findings("Q3-2026", 6)
    assert "MUE_DOS" in run.findings("Q3-2026", 7)
    # Older dates keep their own release: 0029U still bundled, 0417U unknown; 0020M has an MUE from 2026Q2 on.
    for claim in ("Q2-2026", "Q3-2024"):
        assert "PTP_NO_BYPASS" in run.findings(claim, 2)
        assert "PTP_NO_BYPASS" not in run.findings(claim, 4)
    assert run.findings("Q3-2024", 7) >= {"MUE_NOT_PUBLISHED"} and "MUE_DOS" not in run.findings("Q3-2024", 7)
    assert "MUE_DOS" in run.findings("Q2-2026", 7)

    flags = {(f["claim_id"], f["line_number"], f["rule_id"]): f for f in run.flags}
    new_edit = flags[("Q3-2026", "4", "PTP_NO_BYPASS")]
    assert (new_edit["ptp_column_1"], new_edit["ptp_release"], new_edit["mue_release"]) == (
        "0001U", "PTP 2026Q3", "MUE 2026Q3")
    assert "(PTP 2026Q3, modifier indicator 1)" in new_edit["message"]
    assert "(adjudication indicator 2, MUE 2026Q3)" in flags[("Q3-2026", "7", "MUE_DOS")]["message"]
    assert "(adjudication indicator 2, MUE 2026Q2)" in flags[("Q2-2026", "7", "MUE_DOS")]["message"]
    assert flags[("Q3-2024", "2", "PTP_NO_BYPASS")]["ptp_release"] == "PTP 2024Q3"
    rvu_release = {"Q3-2026": "RVU26B", "Q2-2026": "RVU26B", "Q3-2024": "RVU25D"}
    assert all(f["rvu_release"] == rvu_release[f["claim_id"]] and f["ptp_release"] and f["mue_release"]
               for f in run.flags)

    # The scrub ensured the bundled releases and kept the user's.
    listed = reference("list", "--db", db_path).stdout
    assert any(x.startswith("PTP 2026Q3 ") and " user " in x for x in listed.splitlines())
    assert any(x.startswith("PTP 2024Q3 ") and " bundled " in x for x in listed.splitlines())


def test_a_user_release_under_a_bundled_id_is_kept_by_the_reference_assets(db_path, tmp_path):
    own = tmp_path / "ncci_ptp_practitioner_2024Q3.csv"
    shutil.copyfile(FIXTURES / "ncci_ptp_practitioner_2024Q3_76120_pairs.csv", own)
    assert reference("load", own, "--db", db_path).exit_code == 0
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([*REFERENCE_ASSETS, *PER_RUN_CHECKS],
                                resources={"duckdb": duckdb_resource(str(db_path))},
                                instance=instance, raise_on_error=False)
    assert result.success
    assert query(db_path, "select origin, row_count from ref_releases where release_id = 'PTP 2024Q3'") == [
        ("user", 112)]


def test_download_saves_the_archives_of_the_asked_quarter_from_the_cms_page(tmp_path, monkeypatch):
    from reference import download

    page = """<a href="/files/zip/medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f1.zip">f1</a>
              <a href="/files/zip/medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f2.zip">f2</a>
              <a href="/files/zip/medicare-ncci-2026q3-hospital-outpatient-ptp-edits-ccihcfa-v322r0-f1.zip">h</a>
              <a href="/files/zip/medicare-ncci-2026q2-practitioner-ptp-edits-ccipra-v321r0-f1.zip">q2</a>"""
    fetched = []

    def fake_get(url: str) -> bytes:  # the test never touches the network
        fetched.append(url)
        return page.encode() if url == download.PAGES["ptp"] else b"PK archive"

    monkeypatch.setattr(download, "_get", fake_get)
    saved = download.download_release("PTP 2026Q3", tmp_path)
    assert [p.name for p in saved] == ["medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f1.zip",
                                       "medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f2.zip"]
    assert fetched[1] == "https://www.cms.gov/files/zip/medicare-ncci-2026q3-practitioner-ptp-edits-ccipra-v322r0-f1.zip"
    with pytest.raises(download.DownloadError, match="no download for PTP 2027Q1"):
        download.download_release("PTP 2027Q1", tmp_path)
    with pytest.raises(download.DownloadError, match="give one of"):
        download.parse_release("PTP last quarter")
    # From the command, a release named wrongly is a usage error: one line, exit 2, nothing fetched.
    fetched.clear()
    wrong = reference("download", "--release", "PTP last quarter", "--dir", tmp_path / "downloads")
    assert (wrong.exit_code, fetched) == (2, [])
    assert wrong.stderr == ("claimscrub: --release 'PTP last quarter': give one of 'PTP 2026Q3', 'MUE 2026Q3' or "
                            "'RVU26A'\n")


# --- 2026 releases in their official layouts -------------------------------------------------------------

def test_fixed_width_rvu_file_loads_every_record_from_its_field_positions(fresh_db):
    result = reference("load", RVU_26B, "--db", fresh_db)
    assert result.exit_code == 0, result.output
    assert result.stdout == ("RVU26B: loaded, 2026-04-01 to 2026-06-30, 19,277 rvu from "
                             "PPRRVU2026_Apr_nonQPP.txt.gz\n")
    assert query(fresh_db, "select layout, variant, sha256, origin from ref_releases") == [
        ("pprrvu_txt", "", sha256(RVU_26B), "user")]
    assert query(fresh_db, """select count(*), count(distinct conversion_factor), any_value(conversion_factor)::varchar
                              from ref_rvu where release_id = 'RVU26B'""") == [(19277, 1, "33.4009")]
    assert query(fresh_db, """select hcpcs, modifier, status, work_rvu::varchar, pe_nonfacility::varchar,
                                     mp_rvu::varchar, (work_rvu + pe_nonfacility + mp_rvu)::varchar, pe_facility_na
                              from ref_rvu where hcpcs in ('76120', '76125') order by 1, 2""") == [
        ("76120", "", "A", "0.37", "3.01", "0.02", "3.40", True),
        ("76120", "26", "A", "0.37", "0.18", "0.01", "0.56", False),
        ("76120", "TC", "A", "0.00", "2.83", "0.01", "2.84", True),
        ("76125", "", "C", "0.00", "0.00", "0.00", "0.00", True),
        ("76125", "26", "A", "0.26", "0.13", "0.03", "0.42", False),
        ("76125", "TC", "C", "0.00", "0.00", "0.00", "0.00", True)]
    # The policy indicators the surgery rules read: global days, multiple procedure, bilateral, assistant,
    # co-surgeons, team surgery.
    assert query(fresh_db, """select hcpcs, global_days, mult_proc, bilat_surg, asst_surg, co_surg, team_surg
                              from ref_rvu where hcpcs in ('27447', '33945', '76120') and modifier = ''
                              order by 1""") == [
        ("27447", "090", "2", "1", "2", "1", "0"), ("33945", "090", "2", "0", "2", "1", "2"),
        ("76120", "XXX", "0", "0", "0", "0", "0")]
    line = listed_line(fresh_db, "RVU26B", "rvu")
    assert "2026-04-01 to 2026-06-30" in line and " 19,277 " in line and "PPRRVU2026_Apr_nonQPP.txt.gz" in line


def test_the_qpp_rvu_file_is_a_release_of_its_own_beside_the_other_file_of_its_quarter(fresh_db, tmp_path):
    qpp = tmp_path / "PPRRVU2026_Apr_QPP.txt"
    lines = RVU_TXT.read_text(encoding="latin-1").splitlines()
    # The QPP file's conversion factor, and CRLF line endings as some CMS downloads have them.
    qpp.write_bytes("".join((x if x.startswith("HDR") else x[:132] + " 33.5675" + x[140:]) + "\r\n"
                            for x in lines).encode("latin-1"))
    result = reference("load", RVU_TXT, qpp, "--db", fresh_db)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "RVU26B: loaded, 2026-04-01 to 2026-06-30, 11 rvu from PPRRVU2026_Apr_nonQPP_excerpt.txt",
        "RVU26B QPP: loaded, 2026-04-01 to 2026-06-30, 11 rvu from PPRRVU2026_Apr_QPP.txt"]
    assert query(fresh_db, """select r.release_id, r.variant, v.conversion_factor::varchar
                              from ref_releases r join ref_rvu v using (release_id)
                              where v.hcpcs = '76120' and v.modifier = '' order by 1""") == [
        ("RVU26B", "", "33.4009"), ("RVU26B QPP", "QPP", "33.5675")]
    for release in ("RVU26B", "RVU26B QPP"):
        assert "2026-04-01 to 2026-06-30" in listed_line(fresh_db, release, "rvu"), release


def _cut(lines: list[str], number: int, length: int) -> list[str]:
    return [x[:length] if n == number else x for n, x in enumerate(lines, start=1)]


def _replace(lines: list[str], number: int, first: int, text: str) -> list[str]:
    return [x[:first - 1] + text + x[first - 1 + len(text):] if n == number else x
            for n, x in enumerate(lines, start=1)]


# The excerpt's lines 8-18 are its records 1-11: line 13 is 76120, 14 is 76120-26, 18 is 76125-TC.
BAD_RVU_FILES = {
    "truncated": (lambda lines: _cut(lines, 18, 120),
                  "record 11 (line 18, 76125-TC) does not fit the fixed-width RVU layout: 120 characters, "
                  "cut short before its last field (malpractice used for OPPS, positions 166-171)"),
    "short_record": (lambda lines: _cut(lines, 13, 150),
                     "record 6 (line 13, 76120) does not fit the fixed-width RVU layout: 150 characters, cut "
                     "short before its last field (malpractice used for OPPS, positions 166-171)"),
    "shifted_record": (lambda lines: [x[:10] + " " + x[10:] if n == 14 else x for n, x in enumerate(lines, 1)],
                       "record 7 (line 14, 76120-26) does not fit the fixed-width RVU layout: status code ' ' at "
                       "position 58 is not one letter"),
    "number_that_does_not_parse": (lambda lines: _replace(lines, 13, 60, "  0,37"),
                                   "record 6 (line 13, 76120) does not fit the fixed-width RVU layout: work RVU "
                                   "'  0,37' at positions 60-65 is not a number 999.99"),
    "status_not_a_letter": (lambda lines: _replace(lines, 13, 58, "1"),
                            "record 6 (line 13, 76120) does not fit the fixed-width RVU layout: status code '1' "
                            "at position 58 is not one letter"),
    "conversion_factor_not_a_number": (lambda lines: _replace(lines, 18, 133, " 33.40O9"),
                                       "record 11 (line 18, 76125-TC) does not fit the fixed-width RVU layout: "
                                       "conversion factor ' 33.40O9' at positions 133-140 is not a number "
                                       "999.9999"),
    "unknown_layout": (lambda lines: lines[:7],
                       "not a CMS reference layout claimscrub knows (PPRRVU CSV or fixed-width text, GPCI, "
                       "county/locality, ZIP5, NCCI PTP text or CSV, MUE CSV, AOC workbook or CSV, CARC/RARC list)"),
}


@pytest.mark.parametrize("damage", sorted(BAD_RVU_FILES))
def test_a_damaged_fixed_width_rvu_file_is_refused_with_one_line_and_nothing_loaded(fresh_db, tmp_path, damage):
    good = tmp_path / "good" / "PPRRVU2026_Apr_nonQPP.txt"
    good.parent.mkdir()
    shutil.copyfile(RVU_TXT, good)
    assert reference("load", good, "--db", fresh_db).exit_code == 0
    before = snapshot(fresh_db, "ref_rvu")
    damaged, message = BAD_RVU_FILES[damage]
    bad = tmp_path / "PPRRVU2026_Apr_nonQPP.txt"
    bad.write_text("\n".join(damaged(RVU_TXT.read_text(encoding="latin-1").splitlines())), encoding="latin-1")
    result = reference("load", bad, "--db", fresh_db)
    assert result.exit_code == 2
    assert result.stderr == f"claimscrub: PPRRVU2026_Apr_nonQPP.txt: {message}\n"
    assert snapshot(fresh_db, "ref_rvu") == before


def test_official_mue_table_of_2026q2_loads_alone(fresh_db):
    result = reference("load", MUE_26Q2, "--db", fresh_db)
    assert result.exit_code == 0, result.output
    assert result.stdout == ("MUE 2026Q2: loaded, 2026-04-01 to 2026-06-30, 15,095 mue_practitioner from "
                             "MCR_MUE_PractitionerServices_Eff_04-01-2026.csv.gz\n")
    assert query(fresh_db, "select layout, sha256 from ref_releases") == [("mue_official_csv", sha256(MUE_26Q2))]
    assert query(fresh_db, "select mai, count(*) from ref_mue group by 1 order by 1") == [(1, 41), (2, 5417), (3, 9637)]
    assert query(fresh_db, "select mue_value, mai from ref_mue where hcpcs = '76120'") == [(1, 3)]
    assert " 15,095 " in listed_line(fresh_db, "MUE 2026Q2", "mue_practitioner")


def test_an_mue_table_with_an_unknown_adjudication_indicator_is_refused(fresh_db, tmp_path):
    assert reference("load", MUE_2026, "--db", fresh_db).exit_code == 0
    before = snapshot(fresh_db, "ref_mue")
    bad = tmp_path / MUE_2026.name
    text = MUE_2026.read_text()
    bad.write_text(text.replace("0004M,1,2 Date of Service Edit: Policy", "0004M,1,2 Date of Service Edit: Payer"))
    result = reference("load", bad, "--db", fresh_db)
    assert result.exit_code == 2
    assert result.stderr == (
        f"claimscrub: {MUE_2026.name}: record 6 (0004M): MUE adjudication indicator "
        "'2 Date of Service Edit: Payer' is not one of '1 Line Edit', '2 Date of Service Edit: Policy', "
        "'3 Date of Service Edit: Clinical'\n")
    assert snapshot(fresh_db, "ref_mue") == before


def test_aoc_workbook_loads_alone_with_its_julian_dates(fresh_db):
    result = reference("load", AOC_26Q2, "--db", fresh_db)
    assert result.exit_code == 0, result.output
    assert result.stdout == "AOC 2026Q2: loaded, 2026-04-01 to 2026-06-30, 9,000 aoc from AOC_V2026Q2-MCR.xlsx\n"
    assert query(fresh_db, "select layout, sha256 from ref_releases") == [("aoc_xlsx", sha256(AOC_26Q2))]
    assert query(fresh_db, """select primary_code, edit_type, edit_effective_date::varchar, edit_deletion_date,
                                     special_instructions
                              from ref_aoc where add_on_code = '76125'""") == [
        ("CCCCC", 2, "2013-04-01", None, "Contractor Defined Primary Codes")]
    # Julian YYYYDDD: 2023181 is 2023-06-30, 2023365 is 2023-12-31; a blank cell is no deletion.
    assert query(fresh_db, """select aoc_deletion_date::varchar, primary_deletion_date::varchar,
                                     edit_effective_date::varchar, edit_deletion_date::varchar
                              from ref_aoc where add_on_code = 'U0005' and primary_code = 'U0004'""") == [
        ("2023-06-30", "2023-12-31", "2021-10-01", "2023-06-30")]
    assert query(fresh_db, "select edit_type, count(*) from ref_aoc group by 1 order by 1") == [
        (1, 8293), (2, 47), (3, 660)]
    assert " 9,000 " in listed_line(fresh_db, "AOC 2026Q2", "aoc")


def _workbook(path: Path, rows: list[tuple]) -> Path:
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("AOC_V2026Q2-MCR_xlsx")
    for row in rows:
        sheet.append(row)
    workbook.save(path)
    return path


def test_an_aoc_workbook_without_its_header_row_is_refused(fresh_db, tmp_path):
    source = openpyxl.load_workbook(AOC_26Q2, read_only=True)
    notice, header, *edits = [row for _, row in zip(range(40), source.worksheets[0].iter_rows(values_only=True))]
    source.close()
    # The CMS download is a .zip holding the workbook; a workbook is a zip too, and is read as one file.
    good = _workbook(tmp_path / "AOC_V2026Q2-MCR.xlsx", [notice, header, *edits])
    archive = tmp_path / "medicare-ncci-2026q2-add-on-code-edits.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(good, good.name)
        zf.writestr("readme.txt", "Add-on code edits, read me first.\n")
    loaded = reference("load", archive, "--db", fresh_db)
    assert loaded.stdout == f"AOC 2026Q2: loaded, 2026-04-01 to 2026-06-30, 38 aoc from {archive.name}:{good.name}\n"
    before = snapshot(fresh_db, "ref_aoc")
    (tmp_path / "bad").mkdir()
    bad = _workbook(tmp_path / "bad" / "AOC_V2026Q2-MCR.xlsx", [notice, *edits])
    result = reference("load", bad, "--db", fresh_db)
    assert result.exit_code == 2
    assert result.stderr == (
        "claimscrub: AOC_V2026Q2-MCR.xlsx: an Excel workbook without the AOC header row (AOC_Edit_Type, "
        "Add-On_Code, AOC_DelDT, Primary_Code, Primary_Code_DelDT, AOC_Edit_EffDT, AOC_Edit_DelDT, "
        "Special_Instruction_Notes) in its first sheet: not a CMS reference layout claimscrub knows (the add-on "
        "code edits are the one table read from a workbook)\n")
    assert snapshot(fresh_db, "ref_aoc") == before


def test_the_undated_aoc_csv_needs_its_effective_date_and_holds_its_edits_all_the_quarter(fresh_db):
    refused = reference("load", AOC_CSV, "--db", fresh_db)
    assert refused.exit_code == 2
    assert refused.stderr == (
        "claimscrub: ncci_aoc_2024-06.csv.gz: the CSV form of the AOC edits holds no effective date (a date in "
        "its name is when it was captured); give --effective YYYY-MM-DD, the first day of the quarter it judges "
        "(2024-07-01 for ncci_aoc_2024-06.csv)\n")
    loaded = reference("load", AOC_CSV, "--effective", "2024-07-01", "--db", fresh_db)
    assert loaded.stdout == "AOC 2024Q3: loaded, 2024-07-01 to 2024-09-30, 7,465 aoc from ncci_aoc_2024-06.csv.gz\n"
    assert query(fresh_db, """select primary_code, edit_type, edit_effective_date, edit_deletion_date,
                                     aoc_deletion_date, primary_deletion_date
                              from ref_aoc where add_on_code = '76125'""") == [("CCCCC", 2, None, None, None, None)]


def test_gpci_2026_keeps_the_work_gpci_without_and_with_the_floor_and_the_floors_last_day(loaded_db, tmp_path):
    result = reference("load", GPCI_2026, "--db", loaded_db)
    assert result.exit_code == 0, result.output
    assert "GPCI 2026: loaded, 2026-01-01 to 2026-12-31, 109 gpci from GPCI2026.csv" in result.stdout
    gpci = """select work_gpci::varchar, work_gpci_floor::varchar, work_floor_through::varchar, pe_gpci::varchar,
                     mp_gpci::varchar, locality_name
              from ref_gpci where release_id = ? and locality_key = ?"""
    # "extended through January 31, 2026", says the file's note
    assert query(loaded_db, gpci, ["GPCI 2026", "10112-00"]) == [("0.988", "1.000", "2026-01-31", "0.875", "0.566",
                                                                 "ALABAMA")]
    assert query(loaded_db, gpci, ["GPCI 2026", "02102-01"]) == [("1.500", "1.500", "2026-01-31", "1.065", "0.551",
                                                                 "ALASKA")]
    # GPCI2025 has one work GPCI, "(with 1.0 Floor)": it is both, the floor applying all the year.
    assert query(loaded_db, gpci, ["GPCI 2025", "10112-00"]) == [("1.000", "1.000", "2025-12-31", "0.869", "0.575",
                                                                 "ALABAMA")]
    assert query(loaded_db, "select count(*) from ref_gpci group by release_id") == [(109,), (109,)]
    # Both columns and no note saying until when the floor holds (a copy saved without its footnotes): the
    # law's last day for 2026, as the rule book gives it; a year the rule book says nothing of, never.
    no_note = tmp_path / "GPCI2026.csv"
    no_note.write_text("".join(x for x in GPCI_2026.read_text(encoding="latin-1").splitlines(keepends=True)
                               if "extended through" not in x), encoding="latin-1")
    assert reference("load", no_note, "--db", loaded_db).exit_code == 0
    assert query(loaded_db, gpci, ["GPCI 2026", "10112-00"])[0][:3] == ("0.988", "1.000", "2026-01-31")
    later = tmp_path / "GPCI2027.csv"
    later.write_text(no_note.read_text(encoding="latin-1").replace("2026 PW GPCI", "2027 PW GPCI"), encoding="latin-1")
    assert reference("load", later, "--db", loaded_db).exit_code == 0
    assert query(loaded_db, gpci, ["GPCI 2027", "10112-00"])[0][:3] == ("0.988", "1.000", "2026-12-31")


OLD_SCHEMA = """
create table ref_releases (
    release_id varchar, table_name varchar, layout varchar, effective_start date, effective_end date,
    source_files varchar, sha256 varchar, row_count bigint, origin varchar, loaded_at timestamp,
    primary key (release_id, table_name));
create table ref_rvu (
    release_id varchar, hcpcs varchar, modifier varchar, status varchar,
    work_rvu decimal(9,2), pe_nonfacility decimal(9,2), pe_nonfacility_na boolean,
    pe_facility decimal(9,2), pe_facility_na boolean, mp_rvu decimal(9,2),
    pctc varchar, global_days varchar, mult_proc varchar, conversion_factor decimal(9,4));
create table ref_gpci (
    release_id varchar, mac varchar, locality varchar, locality_key varchar, state varchar,
    locality_name varchar, work_gpci decimal(6,3), pe_gpci decimal(6,3), mp_gpci decimal(6,3));
"""


def test_a_database_from_before_the_new_columns_gains_them_and_loads_rvu_and_gpci_again(fresh_db):
    rvu, gpci, mue = (FIXTURES / f for f in ("PPRRVU2025_Oct_excerpt.csv", "GPCI2025.csv",
                                             "ncci_mue_practitioner_2024-07-01_excerpt.csv"))
    with duckdb.connect(str(fresh_db)) as con:
        con.execute(OLD_SCHEMA)
        for release, table, path in (("RVU25D", "rvu", rvu), ("GPCI 2025", "gpci", gpci)):
            con.execute("insert into ref_releases values (?, ?, ?, '2025-10-01', '2025-12-31', ?, ?, 1, 'user', now())",
                        [release, table, table, path.name, sha256(path)])
        con.execute("""insert into ref_rvu values ('RVU25D', '76120', '', 'A', 0.38, 2.88, false, 2.88, true, 0.03,
                                                   '1', 'XXX', '0', 32.3465)""")
        con.execute("insert into ref_gpci values ('GPCI 2025', '10112', '00', '10112-00', 'AL', 'ALABAMA', 1, 0.869, 0.575)")
    assert reference("load", mue, "--db", fresh_db).exit_code == 0
    again = reference("load", rvu, gpci, mue, "--db", fresh_db)
    assert again.exit_code == 0, again.output
    assert [x.split(",")[0] for x in again.stdout.splitlines()] == [
        "RVU25D: loaded", "GPCI 2025: loaded", "MUE 2024Q3: already loaded (same files)"]
    assert query(fresh_db, """select count(*), count(bilat_surg), count(asst_surg), count(co_surg), count(team_surg)
                              from ref_rvu""") == [(14, 14, 14, 14, 14)]
    assert query(fresh_db, """select count(*), count(work_gpci_floor), min(work_floor_through)::varchar
                              from ref_gpci""") == [(109, 109, "2025-12-31")]
    assert query(fresh_db, "select distinct variant from ref_releases") == [("",)]


def test_both_rvu_layouts_carry_the_surgery_indicators_of_the_bundled_releases(db_path):
    # CSV columns BILAT SURG, ASST SURG, CO-SURG, TEAM SURG; fixed-width positions 117-120.
    assert query(db_path, """select release_id, hcpcs, bilat_surg, asst_surg, co_surg, team_surg from ref_rvu
                             where hcpcs in ('27447', '33945', 'G0008') and modifier = '' order by 1, 2""") == [
        ("RVU25D", "27447", "1", "2", "1", "0"), ("RVU25D", "33945", "0", "2", "1", "2"),
        ("RVU25D", "G0008", "9", "9", "9", "9"),
        ("RVU26B", "27447", "1", "2", "1", "0"), ("RVU26B", "33945", "0", "2", "1", "2"),
        ("RVU26B", "G0008", "9", "9", "9", "9")]
    assert query(db_path, """select release_id, count(*) from ref_rvu where bilat_surg is null or team_surg is null
                             group by 1""") == []


def _cut_after(source: Path, target: Path, at: str) -> Path:
    """`source` as a download that stopped just after the first `at`."""
    data = source.read_bytes()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data[:data.index(at.encode()) + len(at)])
    return target


CUT_FILES = {
    # Inside the conversion factor of a row: 32.3 loaded would have priced its code at it, and the codes after
    # the cut would have gone missing from the fee schedule.
    "rvu_row": (lambda d: _cut_after(FIXTURES / "PPRRVU2025_Oct_excerpt.csv", d / "PPRRVU2025_Oct.csv", ",32.3"),
                "PPRRVU2025_Oct.csv: row 11 (76000) has 25 of the header's 31 fields: the file is cut short or "
                "damaged; download it again"),
    "rvu_header_only": (lambda d: _cut_after(FIXTURES / "PPRRVU2025_Oct_excerpt.csv", d / "PPRRVU2025_Oct.csv",
                                       "AMOUNT,AMOUNT,AMOUNT\r\n"),
                        "PPRRVU2025_Oct.csv: no rows below its 'HCPCS,MOD,...' header: the file is cut short; "
                        "download it again"),
    "gpci_row": (lambda d: _cut_after(FIXTURES / "GPCI2025.csv", d / "GPCI2025.csv", "BALTIMORE/SURR. CNTYS"),
                 "GPCI2025.csv: row"),
    "not_gzip": (lambda d: (d / "GPCI2026.csv.gz").write_bytes(b"not gzip at all") and d / "GPCI2026.csv.gz",
                 "GPCI2026.csv.gz: cannot be read: the file is damaged or cut short (Not a gzipped file"),
    "gzip_cut": (lambda d: (d / MUE_26Q2.name).write_bytes(MUE_26Q2.read_bytes()[:30_000]) and d / MUE_26Q2.name,
                 f"{MUE_26Q2.name}: cannot be read: the file is damaged or cut short (Compressed file ended"),
    # Inside the last field of a record, which still fits the layout: the edits after it were loaded as missing.
    "ptp_last_field": (lambda d: _cut_after(PTP_2026, d / "ccipra-v322r0-f1.txt", "20241231\t1\tMisuse of Col"),
                       "ccipra-v322r0-f1.txt: the last record ends without a line break: the file is cut short; "
                       "download it again"),
    "mue_last_field": (lambda d: _cut_after(MUE_2026, d / "MCR_MUE_PractitionerServices_Eff_07-01-2026.csv",
                                            "0041U,1,2 Date of Service Edit: Policy,Code Desc"),
                       "MCR_MUE_PractitionerServices_Eff_07-01-2026.csv: the last record ends without a line break"),
    # Inside a row's locality number: the row was passed over, and its locality priced nationally.
    "gpci_locality": (lambda d: _cut_after(GPCI_2026, d / "GPCI2026.csv", "BALTIMORE/SURR. CNTYS,1.016,1.016,1.073,"
                                           "1.237\n1230"),
                      "GPCI2026.csv: the last record ends without a line break"),
    "mue_header_only": (lambda d: _cut_after(MUE_2026, d / "MCR_MUE_PractitionerServices_Eff_07-01-2026.csv",
                                             "Rationale\n"),
                        "MCR_MUE_PractitionerServices_Eff_07-01-2026.csv: no MUE rows below the header: the file "
                        "is cut short or empty; download it again"),
    "empty": (lambda d: (d / "GPCI2026.csv").write_bytes(b"") or d / "GPCI2026.csv",
              "GPCI2026.csv: the file is empty; download it again"),
    "zip_without_its_end": (lambda d: _zip_cut(d / "ccipra-v322r0-f1.zip"),
                            "ccipra-v322r0-f1.zip: cannot be read: a zip archive or workbook without its end"),
}


def _zip_cut(archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.write(PTP_2026, PTP_2026.name)
    archive.write_bytes(archive.read_bytes()[:-40])
    return archive


@pytest.mark.parametrize("cut", sorted(CUT_FILES))
def test_a_reference_file_cut_short_is_refused_with_one_line_and_nothing_loaded(fresh_db, tmp_path, cut):
    assert reference("load", FIXTURES / "PPRRVU2025_Oct_excerpt.csv", "--db", fresh_db).exit_code == 0
    before = snapshot(fresh_db, "ref_rvu")
    build, message = CUT_FILES[cut]
    (tmp_path / "download").mkdir()
    result = reference("load", build(tmp_path / "download"), "--db", fresh_db)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"claimscrub: {message}") and result.stderr.count("\n") == 1, result.stderr
    assert snapshot(fresh_db, "ref_rvu") == before


def test_a_damaged_member_of_a_cms_zip_is_refused_naming_it(fresh_db, tmp_path):
    archive = tmp_path / "ccipra-v322r0-f1.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.write(PTP_2026, PTP_2026.name)
    data = bytearray(archive.read_bytes())
    start = data.index(b"PK\x03\x04") + 30 + len(PTP_2026.name) + 40  # inside the member's deflated bytes
    data[start:start + 16] = bytes(16)
    archive.write_bytes(bytes(data))
    result = reference("load", archive, "--db", fresh_db)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"claimscrub: ccipra-v322r0-f1.zip:{PTP_2026.name}: cannot be read: the file is "
                                    "damaged or cut short (")
    assert "Traceback" not in result.output


def test_a_part_of_a_release_is_warned_about_before_the_first_scrub_too(fresh_db, tmp_path):
    loaded = reference("load", PTP_2026, "--db", fresh_db)  # a new site: PTP 2024Q3 is bundled, not yet written
    assert loaded.exit_code == 0, loaded.output
    assert "warning: PTP 2026Q3 holds 15 ptp rows against 2,546,017 in PTP 2024Q3" in loaded.stderr
    cut = _cut_after(GPCI_2026, tmp_path / "GPCI2026.csv", "BALTIMORE/SURR. CNTYS,1.016,1.016,1.073,1.237\n")
    loaded = reference("load", cut, "--db", fresh_db)
    assert loaded.exit_code == 0, loaded.output
    assert "warning: GPCI 2026 holds 57 localities against 109 in GPCI 2025: lines in the others are priced " \
           "nationally" in loaded.stderr


def test_a_file_whose_name_names_another_table_is_refused(fresh_db, tmp_path):
    """GPCIs saved under an MUE file's name were loaded as GPCIs dated by the MUE name, replacing the year's."""
    misnamed = tmp_path / "MCR_MUE_PractitionerServices_Eff_07-01-2026.csv"
    misnamed.write_bytes(GPCI_2026.read_bytes())
    refused = reference("load", misnamed, "--db", fresh_db)
    assert refused.exit_code == 2, refused.output
    assert refused.stderr == ("claimscrub: MCR_MUE_PractitionerServices_Eff_07-01-2026.csv: its name says MUE values, "
                              "but it holds GPCIs: load the file meant, or rename this one\n")


def test_a_release_id_of_another_tables_release_is_refused(fresh_db):
    assert reference("load", MUE_2026, "--db", fresh_db).exit_code == 0
    refused = reference("load", GPCI_2026, "--release-id", "MUE 2026Q3", "--db", fresh_db)
    assert refused.exit_code == 2, refused.output
    assert "--release-id 'MUE 2026Q3' is the name of a loaded mue_practitioner release" in refused.stderr
    assert query(fresh_db, "select count(*) from ref_gpci where release_id = 'MUE 2026Q3'") == [(0,)]


def test_a_release_id_shaped_as_another_tables_is_refused_though_none_such_is_loaded(fresh_db):
    """'RVU26D' for MUE rows loaded as a third MUE release of 2026Q3, and every line it judged named RVU26D as
    its MUE release."""
    for name, words in [("RVU26D", "fee schedule RVUs"), ("GPCI_2027", "GPCIs")]:
        refused = reference("load", MUE_2026, "--release-id", name, "--db", fresh_db)
        assert refused.exit_code == 2, refused.output
        assert refused.stderr == (f"claimscrub: --release-id '{name}' names {words}, but the file holds MUE values: "
                                  "choose another\n")
    assert query(fresh_db, "select count(*) from ref_releases where table_name like 'mue%'") == [(0,)]


ZEROS = ("its leading zeros were dropped, as a spreadsheet program does when it saves the file: load the file as "
         "CMS publishes it")


def test_a_reference_file_saved_by_a_spreadsheet_is_refused_naming_what_it_lost(fresh_db, tmp_path):
    """Opened and saved in a spreadsheet, a GPCI file loses its MACs' leading zeros (03102 became 3102, and 70%
    of the localities were left out, their lines priced nationally) and an MUE file its codes' (01996 became
    1996, matching no line); a GPCI file saved as a workbook was refused as a workbook without the AOC header."""
    assert reference("load", MUE_2026, "--db", fresh_db).exit_code == 0
    before = snapshot(fresh_db, "ref_mue")
    gpci = tmp_path / "GPCI2026.csv"
    gpci.write_text(GPCI_2026.read_text(encoding="latin-1").replace("\n03102,", "\n3102,"), encoding="latin-1")
    mue_lines = MUE_2026.read_text(encoding="latin-1").splitlines(keepends=True)
    header_end = next(n for n, x in enumerate(mue_lines) if x.startswith("CPT Code")) + 1
    mue = tmp_path / "MCR_MUE_PractitionerServices_Eff_10-01-2026.csv"
    mue.write_text("".join([*mue_lines[:header_end], "1996,1,3 Date of Service Edit: Clinical,Anatomic\n",
                            *mue_lines[header_end:]]), encoding="latin-1")
    book = openpyxl.Workbook()
    book.active.append(["Medicare Administrative Contractor (MAC)", "State", "Locality Number"])
    book.save(tmp_path / "GPCI2026.xlsx")
    for path, message in [
        (gpci, f"GPCI2026.csv: row 6: MAC '3102' is not five digits: {ZEROS}"),
        (mue, f"MCR_MUE_PractitionerServices_Eff_10-01-2026.csv: record 1 (1996): code '1996' is not five letters "
              f"and digits: {ZEROS}"),
        (tmp_path / "GPCI2026.xlsx", "GPCI2026.xlsx: an Excel workbook, but claimscrub reads GPCIs from the CSV or "
                                     "text file CMS publishes: load that file as downloaded"),
    ]:
        refused = reference("load", path, "--db", fresh_db)
        assert (refused.exit_code, refused.stderr) == (2, f"claimscrub: {message}\n")
    assert snapshot(fresh_db, "ref_mue") == before
    assert query(fresh_db, "select count(*) from ref_releases where table_name = 'gpci'") == [(0,)]


def test_a_fee_schedule_file_of_another_period_than_its_name_is_refused(fresh_db, tmp_path):
    """The 2025 October RVU file saved as PPRRVU2026_Jul.csv priced July 2026 lines at 2025 rates (106.42 for
    76120, not 113.56); the 2025 GPCIs saved as GPCI2027.csv loaded as 2027's; the non-QPP file named _QPP
    became the QPP site's release."""
    rvu_2025 = tmp_path / "PPRRVU2026_Jul.csv"
    rvu_2025.write_bytes((FIXTURES / "PPRRVU2025_Oct_excerpt.csv").read_bytes())
    gpci_2025 = tmp_path / "GPCI2027.csv"
    gpci_2025.write_bytes((FIXTURES / "GPCI2025.csv").read_bytes())
    not_qpp = tmp_path / "PPRRVU2026_Apr_QPP.txt"
    not_qpp.write_bytes(RVU_TXT.read_bytes())
    for path, message in [
        (rvu_2025, "PPRRVU2026_Jul.csv: its title says the 2025 October release, but it would load as RVU26C from "
                   "2026-07-01"),
        (gpci_2025, "GPCI2027.csv: its columns are the 2025 GPCIs, but it would load as GPCI 2027 from 2027-01-01"),
    ]:
        refused = reference("load", path, "--db", fresh_db)
        assert (refused.exit_code, refused.stderr) == (
            2, f"claimscrub: {message}: rename the file (or give --effective) to match what it holds\n")
    refused = reference("load", not_qpp, "--db", fresh_db)
    assert (refused.exit_code, refused.stderr) == (
        2, "claimscrub: PPRRVU2026_Apr_QPP.txt: its name says QPP, but its conversion factor 33.4009 is the "
           "non-QPP file's: rename the file to match what it holds\n")
    # Its conversion factor says 2026 where the title is gone (the fixed-width file has none).
    dated_wrong = tmp_path / "PPRRVU2025_Apr.txt"
    dated_wrong.write_bytes(RVU_TXT.read_bytes())
    refused = reference("load", dated_wrong, "--db", fresh_db)
    assert (refused.exit_code, refused.stderr) == (
        2, "claimscrub: PPRRVU2025_Apr.txt: its conversion factor 33.4009 is that of 2026, but it would load as "
           "RVU25B from 2025-04-01: rename the file (or give --effective) to match what it holds\n")
    assert query(fresh_db, "select count(*) from ref_releases where table_name in ('rvu', 'gpci')") == [(0,)]


def test_a_fee_schedule_cut_at_a_line_break_is_warned_about(fresh_db, tmp_path):
    """Cut at a line break, no record is damaged: three quarters of RVU26B loaded as July's without a word, and
    every code after the cut became "not in the fee schedule" (info, unpriced) on July's lines."""
    cut = tmp_path / "PPRRVU2026_Jul_nonQPP.txt"
    with gzip.open(RVU_26B, "rt", encoding="latin-1") as whole:
        cut.write_text("".join(line for _, line in zip(range(15_000), whole)), encoding="latin-1")
    loaded = reference("load", cut, "--db", fresh_db)
    assert loaded.exit_code == 0, loaded.output
    assert "warning: RVU26C holds 14,993 rvu rows against 19,277 in RVU26B: an excerpt, or a file cut short? load " \
           "the whole file as CMS publishes it" in loaded.stderr


def test_a_release_loaded_again_under_another_effective_date_says_the_period_it_keeps(fresh_db, tmp_path):
    assert reference("load", GPCI_2026, "--db", fresh_db).exit_code == 0
    again = tmp_path / "gpci.csv"
    again.write_bytes(GPCI_2026.read_bytes())
    loaded = reference("load", again, "--effective", "2026-03-01", "--db", fresh_db)
    assert loaded.exit_code == 0, loaded.output
    assert loaded.stdout == "GPCI 2026: already loaded (same files), 2026-01-01 to 2026-12-31, 109 gpci from gpci.csv\n"
    assert query(fresh_db, "select effective_start::varchar from ref_releases where release_id = 'GPCI 2026'") == [
        ("2026-01-01",)]
