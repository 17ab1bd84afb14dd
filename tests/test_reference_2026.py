"""2026 claims judged by 2026 tables: RVU26B prices 2026 lines (by year first), each component by its own RVU
row, in exact decimal money; MUE 2026Q2 and 2024Q3 each judge their own dates; the work GPCI floor ends
2026-01-31; codes paid outside the fee schedule are not denials; and a run on tables older than its claims says
so on the command line, in the workbook and in summary.json."""

import shutil
from datetime import date
from pathlib import Path

import duckdb
import openpyxl
import pytest
from click.testing import CliRunner

from pipelines.cli import main
from reference.loaders import DATA_DIR, Release, load_release

from .engine import engine_scrub
from .helpers import module_site, scrub, write_csv

FIXTURES = Path(__file__).parent / "fixtures" / "reference"
PTP_SAMPLE = FIXTURES / "ccipra-v322r0-f1_layout_sample.txt"
MUE_SAMPLE = FIXTURES / "MCR_MUE_PractitionerServices_Eff_07-01-2026_excerpt.csv"

NPI = "1234567893"
ROWS: list[dict] = []


def line(claim: str, code: str, dos: str, *, mods: str = "", patient: str = "P-2026", units: str = "1",
         pos: str = "11", **extra) -> None:
    ROWS.append(dict(claim_id=claim, line_number=1, patient_id=patient, date_of_service=dos, hcpcs=code,
                     modifiers=mods, units=units, rendering_npi=NPI, billing_npi=NPI, place_of_service=pos,
                     claim_type="professional", diagnosis_1="R13.10", **extra))


# 76120 in RVU26B, national, non-facility: 3.40, 0.56 and 2.84 RVUs at CF 33.4009.
line("G26", "76120", "2026-05-12", patient="P-G")
line("PC26", "76120", "2026-05-12", mods="26", patient="P-PC")
line("TC26", "76120", "2026-05-12", mods="TC", patient="P-TC")
# 76125-26 has a row of its own (status A, 0.40 RVUs in RVU25D) while 76125 global is status C.
line("ADD25", "76125", "2025-10-15", mods="26", patient="P-ADD")
# No January 2026 release: a February line is priced by RVU26B (April), not by RVU25D (October 2025).
line("FEB26", "76120", "2026-02-10", patient="P-FEB")
# Alabama (10112-00): work GPCI 0.988, 1.000 with the floor, which ends 2026-01-31.
line("FLOOR", "99213", "2026-01-31", patient="P-AL1", locality="10112-00")
line("NOFLOOR", "99213", "2026-02-01", patient="P-AL2", locality="10112-00")
# One patient's day of services paid outside the fee schedule (X, E, J, Category II) and two that are not
# paid at all (A4550 status B, 0469T status N), and a measurement code (G8427, status M).
for number, code in enumerate(["80053", "36415", "85025", "J1100", "G0008", "00100", "0001F", "A4550",
                               "0469T", "G8427"], start=1):
    ROWS.append(dict(claim_id="LAB", line_number=number, patient_id="P-LAB", date_of_service="2026-05-12",
                     hcpcs=code, modifiers="", units="1", rendering_npi=NPI, billing_npi=NPI,
                     place_of_service="11", claim_type="professional", diagnosis_1="R13.10"))
# An institutional line is judged by the outpatient hospital MUEs, whose newest bundled release is 2024Q2.
ROWS.append(dict(claim_id="INST26", line_number=1, patient_id="P-INST", date_of_service="2026-05-12",
                 hcpcs="76120", modifiers="", units="1", rendering_npi=NPI, billing_npi=NPI, place_of_service="22",
                 claim_type="institutional", diagnosis_1="R13.10"))
# The MUE of 21085 (indicator 3) is 1 in MUE 2024Q3 and 2 in MUE 2026Q2; that of 0211U is 2, then 1.
line("MUE24", "21085", "2024-07-15", units="2", patient="P-M1")
line("MUE26", "21085", "2026-05-12", units="2", patient="P-M2")
line("MUE26X", "21085", "2026-05-12", units="3", patient="P-M3")
line("LOW24", "0211U", "2024-07-15", units="2", patient="P-M4")
line("LOW26", "0211U", "2026-05-12", units="2", patient="P-M5")
# Fees whose exact amount ends in half a cent (RVU25D, national): 52282 is 10.00 RVUs x 32.3465 = 323.465,
# and 33050 30.00 RVUs = 970.395. Binary floating point rounds both down.
line("HALF1", "52282", "2025-10-15", patient="P-H1")
line("HALF2", "33050", "2025-10-15", patient="P-H2")
# Placed by its ZIP (San Francisco) after the end of the newest ZIP file, ZIP5 2025Q4.
line("ZIP26", "76120", "2026-03-10", patient="P-ZIP", service_zip="94103")
# A locality that is no pricing locality: the ZIP places the line, so the ZIP file's age counts for it too.
line("ZIPLOC", "76120", "2026-03-12", patient="P-ZIP2", locality="99999-99", service_zip="94103")
# A pricing locality beside a ZIP: the locality places the line, and the ZIP file's age is not its concern.
line("ZIPOK", "76120", "2026-03-11", patient="P-ZIP3", locality="10112-00", service_zip="94103")


@pytest.fixture(scope="module")
def run(reference_db, tmp_path_factory):
    with module_site(tmp_path_factory, reference_db, "claims2026") as (folder, db):
        result = scrub([write_csv(folder / "claims_2026.csv", ROWS)], folder / "out", db)
    assert result.exit_code == 0, result.stderr
    return result


def lab_line(run, number: int) -> dict:
    return run.line("LAB", number)


def test_76120_in_2026_is_priced_by_rvu26b_and_judged_by_mue_2026q2(run):
    for claim, allowed in [("G26", "113.56"), ("PC26", "18.70"), ("TC26", "94.86")]:
        priced = run.line(claim, 1)
        assert (priced["expected_allowed"], priced["rvu_release"], priced["mue_release"]) == (
            allowed, "RVU26B", "MUE 2026Q2")


def test_a_component_is_priced_and_judged_by_its_own_rvu_row(run):
    priced = run.line("ADD25", 1)
    assert (priced["expected_allowed"], priced["rvu_release"]) == ("12.94", "RVU25D")
    assert "STATUS_NOT_PAYABLE" not in run.findings("ADD25", 1)


def test_a_line_of_2026_before_any_2026_release_is_priced_by_that_years_release(run):
    priced = run.line("FEB26", 1)
    assert (priced["rvu_release"], priced["reference_match"], priced["expected_allowed"]) == (
        "RVU26B", "approximate", "113.56")


def test_the_work_gpci_floor_applies_through_2026_01_31_only(run):
    # (1.30 x 1.000 + 1.46 x 0.875 + 0.09 x 0.566) x 33.4009 = 87.79; with the work GPCI 0.988, 87.27.
    assert run.line("FLOOR", 1)["expected_allowed"] == "87.79"
    assert run.line("NOFLOOR", 1)["expected_allowed"] == "87.27"
    assert run.line("NOFLOOR", 1)["locality"] == "10112-00"


def test_codes_paid_outside_the_fee_schedule_are_not_denied_for_their_status(run):
    status = {f["line_number"]: f for f in run.flags if f["claim_id"] == "LAB" and f["rule_id"] == "STATUS_NOT_PAYABLE"}
    for number in range(1, 8):  # 80053 ... 0001F
        assert status.get(str(number), {}).get("severity") != "deny", lab_line(run, number)
        assert lab_line(run, number)["expected_allowed"] == ""
    assert status["8"]["severity"] == "deny"  # A4550, status B
    assert status["9"]["severity"] == "deny"  # 0469T, status N
    assert status["1"]["severity"] == "info" and "another fee schedule" in status["1"]["message"]
    assert status["7"]["severity"] == "info" and "Category II" in status["7"]["message"]
    # A measurement code (G8427, status M) is reported, not paid: not a code of another schedule.
    assert status["10"]["severity"] == "info" and "measurement code" in status["10"]["message"]
    assert lab_line(run, 10)["price_note"] == "measurement code (status M): reported, not paid: not priced"
    assert "without payment (measurement codes, CPT Category II codes)" in status["10"]["fix"]


def test_a_run_on_tables_older_than_its_claims_says_so(run):
    warnings = [line for line in run.stderr.splitlines() if line.startswith("warning: ")]
    ptp = next(w for w in warnings if "PTP 2024Q3" in w)
    lines_2026 = sum(1 for r in ROWS if r["date_of_service"] > "2024-09-30")
    assert ptp.startswith(f"warning: PTP 2024Q3 ends 2024-09-30; {lines_2026:,} lines dated up to 2026-05-12")
    assert ptp.endswith("Load the current quarter: claimscrub reference download --release 'PTP 2026Q2' "
                        "(or reference load its ccipra files)")
    coverage = {entry["table"]: entry for entry in run.summary["reference_coverage"]}
    assert coverage["PTP"]["stale"] and coverage["PTP"]["lines_beyond"] == lines_2026
    assert coverage["PTP"]["days_beyond"] == 589  # 2024-09-30 to 2026-05-12
    assert not coverage["RVU"]["stale"] and coverage["RVU"]["newest_release"] == "RVU26B"
    assert not coverage["MUE"]["stale"]
    outpatient = coverage["MUE outpatient hospital"]
    assert (outpatient["newest_release"], outpatient["lines_beyond"], outpatient["stale"]) == ("MUE 2024Q2", 1, True)
    assert run.line("INST26", 1)["mue_release"] == "MUE 2024Q2"
    # Of MUE 2024Q2, the run used the outpatient hospital MUEs only: its practitioner MUEs judged no line.
    used = {(r["table"], r["release"]) for r in run.summary["reference_releases"]}
    assert ("mue_outpatient_hospital", "MUE 2024Q2") in used and ("mue_practitioner", "MUE 2024Q2") not in used
    assert any(w.startswith("warning: MUE 2024Q2 ends 2024-06-30; 1 line dated up to 2026-05-12 (681 days past its "
                            "end) was judged by it (approximate).") for w in warnings)

    book = openpyxl.load_workbook(run.out_dir / "denial-risk-report.xlsx", read_only=True)
    summary = [row[0] if row else None for row in book["Summary"].iter_rows(max_row=30, values_only=True)]
    banner = next(text for text in summary if text and text.startswith("Stale or partial reference data"))
    assert summary.index(banner) < 4
    assert any(text and text.startswith("PTP: PTP 2024Q3 ends 2024-09-30") for text in summary)
    reference = list(book["Reference"].iter_rows(values_only=True))
    header = reference[1]
    ptp_row = next(r for r in reference[2:] if r[0] == "PTP 2024Q3")
    assert ptp_row[header.index("Coverage of this batch")].startswith("STALE: PTP 2024Q3 ends 2024-09-30")
    # The localities file judges no line: lines dated after it are not its to count. The ZIP file judges the
    # lines it places, and says so without calling them approximate: reference_match does not go by it.
    counties = next(r for r in reference[2:] if r[0] and r[0].startswith("LOCCO"))
    assert counties[header.index("Coverage of this batch")] == (
        f"Newest {coverage['localities']['table']} release: no line that it judges is dated after its period.")
    zip_row = next(r for r in reference[2:] if r[0] and r[0].startswith("ZIP5"))
    assert zip_row[header.index("Coverage of this batch")].startswith(
        "STALE: ZIP5 2025Q4 ends 2025-12-31; 2 lines dated up to 2026-03-12 (71 days past its end) were judged by "
        "it. ")
    assert run.line("ZIP26", 1)["locality"] == run.line("ZIPLOC", 1)["locality"] == "01112-05"
    assert (coverage["ZIP"]["lines_beyond"], coverage["ZIP"]["latest_date_of_service"]) == (2, "2026-03-12")


def test_lines_between_two_loaded_releases_are_said_to_be_judged_by_the_older_one(run):
    """MUE 2024Q3 and MUE 2026Q2 are loaded, nothing between: the lines of 2024Q4 to 2026Q1 are judged by MUE
    2024Q3, which ended before them. MUE is not stale (its newest release reaches the batch's dates), and was
    not said at all; it is now, on the command line, in summary.json and on the workbook's banner."""
    between = sorted(r["date_of_service"] for r in ROWS if "2024-09-30" < r["date_of_service"] < "2026-04-01"
                     and r["claim_type"] != "institutional")
    mue = {entry["table"]: entry for entry in run.summary["reference_coverage"]}["MUE"]
    assert not mue["stale"] and mue["lines_between_releases"] == len(between)
    assert mue["between_releases"] == [{
        "release": "MUE 2024Q3", "effective_end": "2024-09-30", "lines": len(between),
        "first_date_of_service": between[0], "last_date_of_service": between[-1],
        "days_past_end": (date.fromisoformat(between[-1]) - date(2024, 9, 30)).days}]
    said = f"MUE 2024Q3 ends 2024-09-30; {len(between)} lines dated {between[0]} to {between[-1]}, in no later MUE " \
           "release's period, were judged by it (approximate)."
    assert f"warning: {said} Load the quarters between, from the first: claimscrub reference download --release " \
           f"'MUE {between[0][:4]}Q{(int(between[0][5:7]) - 1) // 3 + 1}'" in run.stderr
    book = openpyxl.load_workbook(run.out_dir / "denial-risk-report.xlsx", read_only=True)
    assert f"MUE: {said}" in [row[0] for row in book["Summary"].iter_rows(max_row=16, values_only=True) if row]


def test_lines_of_a_year_before_any_rvu_release_are_said_to_be_priced_at_another_years_rates(run):
    """2024 lines are priced by RVU25D and GPCI 2025 (the bundled files hold no 2024 release): marked
    approximate, and said nowhere else. Now said as stale tables are."""
    lines_2024 = sorted(r["date_of_service"] for r in ROWS if r["date_of_service"] < "2025-01-01")
    coverage = {entry["table"]: entry for entry in run.summary["reference_coverage"]}
    assert coverage["RVU"]["lines_before_releases"] == len(lines_2024) == 2
    assert coverage["RVU"]["before_releases"] == {
        "release": "RVU25D", "effective_start": "2025-10-01", "lines": 2, "first_date_of_service": "2024-07-15",
        "last_date_of_service": "2024-07-15", "days_before_start": 443}
    # A 2025 line (2025-10-15) is of RVU25D's own year, and of its period: not before it. PTP and MUE releases of
    # 2024Q3 hold the 2024 lines.
    assert (coverage["PTP"]["lines_before_releases"], coverage["MUE"]["lines_before_releases"]) == (0, 0)
    said = ("RVU25D starts 2025-10-01; 2 lines dated 2024-07-15 to 2024-07-15, in a year with no RVU release, "
            "were judged by it (approximate).")
    assert f"warning: {said} Load the quarter of their dates, from the first: claimscrub reference download " \
           "--release RVU24C (or reference load its PPRRVU file)" in run.stderr.splitlines()
    assert "warning: GPCI 2025 starts 2025-01-01; 2 lines dated 2024-07-15 to 2024-07-15, in a year with no GPCI " \
           "release, were judged by it (approximate)." in run.stderr
    book = openpyxl.load_workbook(run.out_dir / "denial-risk-report.xlsx", read_only=True)
    assert f"RVU: {said}" in [row[0] for row in book["Summary"].iter_rows(max_row=30, values_only=True) if row]
    reference = list(book["Reference"].iter_rows(values_only=True))
    # On the row of the table's newest release, which says what the table covers of the batch.
    rvu_row = next(r for r in reference[2:] if r[0] == "RVU26B")
    assert f"BEFORE RELEASES: {said}" in rvu_row[reference[1].index("Coverage of this batch")]


def test_reference_status_says_which_tables_are_stale_and_strict_fails_on_them(run, reference_db, tmp_path):
    db = tmp_path / "status.duckdb"
    shutil.copyfile(reference_db, db)
    runner = CliRunner()
    stale = runner.invoke(main, ["reference", "status", "--as-of", "2026-05-12", "--strict", "--db", str(db)])
    assert stale.exit_code == 1
    ptp = next(line for line in stale.stdout.splitlines() if line.strip().startswith("PTP "))
    assert "PTP 2024Q3" in ptp and "STALE: ended 589 days ago" in ptp
    rvu = next(line for line in stale.stdout.splitlines() if line.strip().startswith("RVU "))
    assert "RVU26B" in rvu and rvu.endswith("current")
    lenient = runner.invoke(main, ["reference", "status", "--as-of", "2026-05-12", "--db", str(db)])
    assert lenient.exit_code == 0
    current = runner.invoke(main, ["reference", "status", "--as-of", "2024-06-15", "--strict", "--db", str(db)])
    assert current.exit_code == 0, current.output


@pytest.mark.parametrize("command", [["status"], ["list"], ["localities", "--state", "CA"]])
def test_reference_status_list_and_localities_refuse_a_database_name_typed_wrong(tmp_path, monkeypatch, command):
    """A mistyped --db or CLAIMSCRUB_DB was made a new database, and its bundled releases shown as the site's."""
    typo = tmp_path / "sit.duckdb"
    runner = CliRunner()
    named = runner.invoke(main, ["reference", *command, "--db", str(typo)])
    assert named.exit_code == 2
    assert named.output.strip().endswith(f"{typo}: no such database (--db or CLAIMSCRUB_DB names it); a scrub or "
                                         "`claimscrub db init` makes one")
    monkeypatch.setenv("CLAIMSCRUB_DB", str(typo))
    assert runner.invoke(main, ["reference", *command]).exit_code == 2
    assert not typo.exists() and not list(tmp_path.glob("sit.duckdb*"))


def test_a_later_qpp_file_does_not_make_a_non_qpp_sites_prices_current(reference_db, tmp_path, monkeypatch):
    """Only the QPP file of 2026Q4 loaded: a non-QPP site's lines are still priced by RVU26B, which ended
    2026-06-30, so its RVU table is stale; for a QPP site the new file is current."""
    db = tmp_path / "qpp.duckdb"
    shutil.copyfile(reference_db, db)
    with duckdb.connect(str(db)) as con:
        load_release(con, Release(id="RVU26D QPP", table="rvu", layout="pprrvu_txt", effective_start=date(2026, 10, 1),
                                  effective_end=date(2026, 12, 31), files=[DATA_DIR / "PPRRVU2026_Apr_nonQPP.txt.gz"],
                                  origin="test", variant="QPP"))
    runner = CliRunner()

    def rvu_line() -> str:
        status = runner.invoke(main, ["reference", "status", "--as-of", "2026-11-10", "--db", str(db)])
        assert status.exit_code == 0, status.output
        return next(line for line in status.stdout.splitlines() if line.strip().startswith("RVU "))

    assert "RVU26B" in rvu_line() and "STALE" in rvu_line()
    monkeypatch.setenv("CLAIMSCRUB_RVU_VARIANT", "qpp")
    assert "RVU26D QPP" in rvu_line() and rvu_line().endswith("current")


def test_each_mue_release_judges_its_own_dates(run):
    assert run.line("MUE24", 1)["mue_release"] == "MUE 2024Q3"
    assert "MUE_DOS" in run.findings("MUE24", 1)
    assert run.line("MUE26", 1)["mue_release"] == "MUE 2026Q2"
    assert not run.findings("MUE26", 1) & {"MUE_DOS", "MUE_LINE"}
    assert "MUE_DOS" in run.findings("MUE26X", 1)
    assert not run.findings("LOW24", 1) & {"MUE_DOS", "MUE_LINE"}
    assert "MUE_DOS" in run.findings("LOW26", 1)


def test_money_is_rounded_half_up_in_exact_decimal(run):
    assert run.line("HALF1", 1)["expected_allowed"] == "323.47"
    assert run.line("HALF2", 1)["expected_allowed"] == "970.40"


# Four scrubs and a load: the slow tier (CI runs it).
@pytest.mark.slow
def test_the_sites_rvu_variant_picks_the_qpp_release_of_the_same_quarter(reference_db, tmp_path, monkeypatch):
    excerpt = Path(__file__).parent / "fixtures" / "reference" / "PPRRVU2026_Apr_nonQPP_excerpt.txt"
    qpp = tmp_path / "PPRRVU2026_Apr_QPP.txt"
    qpp.write_text("".join((x if x.startswith("HDR") else x[:132] + " 33.5675" + x[140:]) + "\n"
                           for x in excerpt.read_text(encoding="latin-1").splitlines()), encoding="latin-1")
    db = tmp_path / "qpp.duckdb"
    shutil.copyfile(reference_db, db)
    g26 = next(r for r in ROWS if r["claim_id"] == "G26")
    # A 2024 line: no release is of its year, and the oldest, RVU25D, prices it whatever the site's variant.
    export = write_csv(tmp_path / "claims.csv", [g26, {**g26, "claim_id": "G24", "date_of_service": "2024-07-10"}])
    # A QPP site without its QPP file: priced by the non-QPP one, and told so.
    monkeypatch.setenv("CLAIMSCRUB_RVU_VARIANT", "qpp")
    unloaded = scrub([export], tmp_path / "unloaded", db)
    assert (unloaded.line("G26", 1)["rvu_release"], unloaded.line("G26", 1)["expected_allowed"]) == (
        "RVU26B", "113.56")
    assert ("claimscrub: CLAIMSCRUB_RVU_VARIANT is qpp, but no QPP fee schedule release is loaded: lines are "
            "priced by the non-QPP file of their year; load the PPRRVU QPP file with `claimscrub reference load`"
            ) in unloaded.stderr.splitlines()
    loaded = CliRunner().invoke(main, ["reference", "load", str(qpp), "--db", str(db)])
    assert loaded.exit_code == 0, loaded.output
    monkeypatch.delenv("CLAIMSCRUB_RVU_VARIANT")
    default = engine_scrub([export], tmp_path / "default", db)
    assert (default.line("G26", 1)["rvu_release"], default.line("G26", 1)["expected_allowed"]) == ("RVU26B", "113.56")
    monkeypatch.setenv("CLAIMSCRUB_RVU_VARIANT", "qpp")
    chosen = scrub([export], tmp_path / "qpp", db)
    # 3.40 RVUs x 33.5675 = 114.1295
    assert (chosen.line("G26", 1)["rvu_release"], chosen.line("G26", 1)["expected_allowed"]) == (
        "RVU26B QPP", "114.13")
    assert (chosen.line("G24", 1)["rvu_release"], chosen.line("G24", 1)["expected_allowed"]) == ("RVU25D", "106.42")
    assert "CLAIMSCRUB_RVU_VARIANT" not in chosen.stderr
    monkeypatch.setenv("CLAIMSCRUB_RVU_VARIANT", "qpq")
    refused = scrub([export], tmp_path / "refused", db)
    assert refused.exit_code == 2 and "CLAIMSCRUB_RVU_VARIANT" in refused.stderr


def test_a_site_extends_the_work_gpci_floor_when_the_law_does(reference_db, tmp_path, monkeypatch):
    db = tmp_path / "floor.duckdb"
    shutil.copyfile(reference_db, db)
    export = write_csv(tmp_path / "claims.csv", [r for r in ROWS if r["claim_id"] == "NOFLOOR"])
    monkeypatch.setenv("CLAIMSCRUB_WORK_GPCI_FLOOR_THROUGH", "2026-03-31")
    run = engine_scrub([export], tmp_path / "out", db)
    assert run.line("NOFLOOR", 1)["expected_allowed"] == "87.79"  # 2026-02-01, with the floor again


def _load_as(db: Path, release_id: str, table: str, layout: str, start: str, end: str, path: Path) -> None:
    """Load a fixture (or a bundled file) as a release of another period, as a site loading an older or newer
    quarter would."""
    with duckdb.connect(str(db)) as con:
        load_release(con, Release(id=release_id, table=table, layout=layout, effective_start=date.fromisoformat(start),
                                  effective_end=date.fromisoformat(end), files=[path], origin="test"))


def test_a_date_of_a_year_without_an_rvu_release_takes_the_newest_release_before_it(reference_db, tmp_path):
    """RULES.md, "Which reference release judges a line": a release of the DOS's own year comes first; where the
    year has none, the newest release that starts before the DOS, not the one nearest to it."""
    excerpt = FIXTURES / "PPRRVU2025_Oct_excerpt.csv"
    older = tmp_path / "PPRRVU2023_Oct_excerpt.csv"
    older.write_text(excerpt.read_text(encoding="latin-1").replace("32.3465", "30.0000"), encoding="latin-1")
    db = tmp_path / "older.duckdb"
    shutil.copyfile(reference_db, db)
    _load_as(db, "RVU23D TEST", "rvu", "pprrvu", "2023-10-01", "2023-12-31", older)
    rows = [dict(claim_id=claim, line_number=1, patient_id=f"P-{claim}", date_of_service=dos, hcpcs="76120",
                 modifiers="", units="1", rendering_npi=NPI, billing_npi=NPI, place_of_service="11",
                 claim_type="professional", diagnosis_1="R13.10")
               for claim, dos in [("DEC24", "2024-12-15"), ("MAR24", "2024-03-15"), ("NOV23", "2023-11-15")]]
    run = engine_scrub([write_csv(tmp_path / "claims.csv", rows)], tmp_path / "out", db)

    def priced(claim):
        line = run.line(claim, 1)
        return line["rvu_release"], line["expected_allowed"]

    # 2024 has no RVU release: RVU23D (ended 2023-12-31) starts before the DOS, RVU25D (from 2025-10-01) is
    # nearer to 2024-12-15 but starts after it. 3.29 RVUs x 30.0000 = 98.70.
    assert priced("DEC24") == ("RVU23D TEST", "98.70")
    assert priced("MAR24") == ("RVU23D TEST", "98.70")
    assert priced("NOV23") == ("RVU23D TEST", "98.70")


@pytest.mark.slow  # a release loaded and two scrubs
def test_a_line_is_approximate_when_the_aoc_release_that_judges_it_does_not_hold_its_date(reference_db, tmp_path):
    """Every table that judges a line (RVU, GPCI, PTP, MUE, AOC) must hold its DOS for the line to be `exact`."""
    db = tmp_path / "q4.duckdb"
    shutil.copyfile(reference_db, db)
    _load_as(db, "PTP TEST 2025Q4", "ptp", "ptp_txt", "2025-10-01", "2025-12-31", PTP_SAMPLE)
    _load_as(db, "MUE TEST 2025Q4", "mue", "mue_official_csv", "2025-10-01", "2025-12-31", MUE_SAMPLE)
    rows = [dict(claim_id="NOV25", line_number=1, patient_id="P-NOV25", date_of_service="2025-11-14",
                 hcpcs="76120", modifiers="", units="1", rendering_npi=NPI, billing_npi=NPI, place_of_service="11",
                 claim_type="professional", diagnosis_1="R13.10")]
    export = write_csv(tmp_path / "claims.csv", rows)
    # RVU25D, GPCI 2025, PTP and MUE 2025Q4 hold 2025-11-14; the AOC release that judges it (2024Q3) does not.
    before = engine_scrub([export], tmp_path / "before", db).line("NOV25", 1)
    assert (before["rvu_release"], before["gpci_release"], before["ptp_release"], before["mue_release"]) == (
        "RVU25D", "GPCI 2025", "PTP TEST 2025Q4", "MUE TEST 2025Q4")
    assert before["reference_match"] == "approximate"
    _load_as(db, "AOC TEST 2025Q4", "aoc", "aoc_xlsx", "2025-10-01", "2025-12-31", DATA_DIR / "AOC_V2026Q2-MCR.xlsx")
    after = engine_scrub([export], tmp_path / "after", db).line("NOV25", 1)
    assert after["reference_match"] == "exact"



def test_lines_judged_by_an_excerpt_of_a_table_are_said_at_each_run(reference_db, tmp_path):
    """The official MUE excerpt of 2026Q3 (44 codes) loaded: July's lines were judged by it, every code it
    leaves out unlisted (no MUE denial), and only the load had said it was small."""
    db = tmp_path / "excerpt.duckdb"
    shutil.copyfile(reference_db, db)
    loaded = CliRunner().invoke(main, ["reference", "load", str(MUE_SAMPLE), "--db", str(db)])
    assert loaded.exit_code == 0, loaded.output
    rows = [dict(claim_id=f"JUL{n}", line_number=1, patient_id=f"P-JUL{n}", date_of_service="2026-07-14",
                 hcpcs="76120", modifiers="", units="2", rendering_npi=NPI, billing_npi=NPI, place_of_service="11",
                 claim_type="professional", diagnosis_1="R13.10") for n in (1, 2)]
    run = scrub([write_csv(tmp_path / "claims.csv", rows)], tmp_path / "out", db)
    assert run.exit_code == 0, run.stderr
    mue = {entry["table"]: entry for entry in run.summary["reference_coverage"]}["MUE"]
    assert mue["partial_releases"] == [{"release": "MUE 2026Q3", "rows": 44, "largest_release": "MUE 2026Q2",
                                        "largest_rows": 15_095, "lines": 2}]
    said = ("MUE 2026Q3 holds 44 rows against 15,095 in MUE 2026Q2; 2 lines were judged by it, and a code it leaves "
            "out is judged as if unlisted. An excerpt, or a file cut short? Load the whole file as CMS publishes it.")
    assert f"warning: {said}" in run.stderr.splitlines()
    book = openpyxl.load_workbook(run.out_dir / "denial-risk-report.xlsx", read_only=True)
    summary = [row[0] for row in book["Summary"].iter_rows(max_row=30, values_only=True) if row]
    assert "MUE: MUE 2026Q3 holds 44 rows against 15,095 in MUE 2026Q2; 2 lines were judged by it, and a code it " \
           "leaves out is judged as if unlisted." in summary
    # The bundled releases judge no line of the batch as partial ones.
    assert all(not entry["partial_releases"] for entry in run.summary["reference_coverage"] if entry is not mue)


def test_a_line_placed_by_a_zip_file_newer_than_its_date_is_said(reference_db, tmp_path):
    """Its locality came from ZIP5 2025Q4, which starts after it: said as the other tables' are."""
    db = tmp_path / "zip.duckdb"
    shutil.copyfile(reference_db, db)
    row = dict(claim_id="Z24", line_number=1, patient_id="P-Z24", date_of_service="2024-08-20", hcpcs="76120",
               units="1", service_zip="94103", rendering_npi=NPI, diagnosis_1="R13.10")
    run = scrub([write_csv(tmp_path / "claims.csv", [row])], tmp_path / "out", db)
    assert run.exit_code == 0, run.stderr
    assert run.line("Z24", 1)["locality"] == "01112-05"
    zip_coverage = {entry["table"]: entry for entry in run.summary["reference_coverage"]}["ZIP"]
    assert zip_coverage["lines_before_releases"] == 1
    assert ("warning: ZIP5 2025Q4 starts 2025-10-01; 1 line dated 2024-08-20 to 2024-08-20, before any ZIP "
            "release's period, was judged by it.") in run.stderr
