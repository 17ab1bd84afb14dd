"""The reference layer: `claimscrub reference load` reads each official CMS layout from real excerpts, names
its release and period, refuses what it cannot tell, and a newer release judges exactly its own dates."""

import shutil
import zipfile
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from click.testing import CliRunner

from pipelines.cli import main
from pipelines.resources import duckdb_resource
from reference.assets import PER_RUN_CHECKS, REFERENCE_ASSETS

from .helpers import scrub, write_csv

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "reference"
PTP_2026 = FIXTURES / "ccipra-v322r0-f1_layout_sample.txt"
MUE_2026 = FIXTURES / "MCR_MUE_PractitionerServices_Eff_07-01-2026_excerpt.csv"
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
    for result in (unknown, conflict, missing):
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


def test_release_id_option_names_the_release(fresh_db):
    result = reference("load", PTP_2026, "--release-id", "PTP 2026Q3 sample", "--db", fresh_db)
    assert result.exit_code == 0, result.output
    assert query(fresh_db, "select release_id, effective_start::varchar from ref_releases") == [
        ("PTP 2026Q3 sample", "2026-07-01")]


def test_list_on_a_fresh_database_shows_the_bundled_releases(fresh_db):
    listed = reference("list", "--db", fresh_db)
    assert listed.exit_code == 0
    for release in ["RVU25D", "GPCI 2025", "LOCCO 2025", "ZIP5 2025Q4", "PTP 2024Q2", "PTP 2024Q3",
                    "MUE 2024Q2", "MUE 2024Q3", "CARC-RARC 2024-06"]:
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
