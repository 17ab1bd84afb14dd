"""The command end to end: the bundled sample, the outputs INTERFACE.md names, and exit status 2."""

import json
import tempfile
from pathlib import Path

import pytest

from assets.rules import RULES

from .helpers import module_site, read_csv, scrub, write_csv

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "claims_sample.csv"

FLAGS_COLUMNS = ["claim_id", "line_number", "hcpcs", "rule_id", "category", "severity", "carc",
                 "dollars_at_risk", "message", "rvu_release", "ptp_release", "mue_release"]
LINES_COLUMNS = ["source_file", "source_row", "claim_id", "line_number", "date_of_service", "hcpcs", "modifiers",
                 "units", "component", "place_of_service", "facility", "locality", "expected_allowed",
                 "reference_match", "rvu_release", "ptp_release", "mue_release", "finding_count",
                 "worst_severity"]
QUARANTINE_COLUMNS = ["source_file", "source_row", "claim_id", "line_number", "reasons"]


@pytest.fixture(scope="module")
def sample_site(tmp_path_factory, reference_db):
    """One scrub of the sample, shared by the tests that read its outputs, and its database."""
    with module_site(tmp_path_factory, reference_db, "sample") as (folder, db):
        return scrub([SAMPLE], folder / "out", db), db


@pytest.fixture(scope="module")
def sample_run(sample_site):
    return sample_site[0]


@pytest.fixture(scope="module")
def sample_db(sample_site) -> Path:
    return sample_site[1]


def test_sample_outputs_have_the_interface_columns_in_order(sample_run):
    assert sample_run.exit_code == 0, sample_run.stderr
    out = sample_run.out_dir
    assert list(read_csv(out / "flags.csv")[0])[: len(FLAGS_COLUMNS)] == FLAGS_COLUMNS
    assert list(read_csv(out / "lines.csv")[0])[: len(LINES_COLUMNS)] == LINES_COLUMNS
    assert list(read_csv(out / "quarantine.csv")[0])[: len(QUARANTINE_COLUMNS)] == QUARANTINE_COLUMNS
    assert (out / "denial-risk-report.xlsx").stat().st_size > 0
    assert "denial-risk-report.xlsx" in sample_run.stdout


def test_sample_accounts_for_every_row(sample_run):
    summary = sample_run.summary
    assert summary["rows_read"] == 290
    assert summary["rows_read"] == summary["lines_scrubbed"] + summary["rows_quarantined"]
    assert summary["rows_quarantined"] == 4
    assert summary["files"][0]["sha256"] and summary["started"] and summary["finished"]


def test_sample_quarantine_names_every_reason(sample_run):
    reasons = {(q["claim_id"], q["source_row"]): q["reasons"] for q in sample_run.quarantine}
    assert "is not a date" in reasons[("CLM09001", "287")]
    assert reasons[("", "288")] == "claim_id is missing"
    assert "hcpcs '7612' is not five letters and digits" in reasons[("CLM09003", "289")]
    assert "units '0' is not a positive number" in reasons[("CLM09003", "289")]
    assert "appears more than once" in reasons[("CLM00001", "290")]


# The sample's planted problems, line by line, as RULES.md defines them.
SAMPLE_FINDINGS = {
    ("CLM00141", 1): {"MUE_DOS"},
    ("CLM00142", 1): {"MOD_26_AND_TC"},
    ("CLM00143", 1): {"MOD_PCTC_INVALID"},
    ("CLM00144", 1): {"MOD_GLOBAL_IN_HOSPITAL"},
    ("CLM00145", 1): {"MOD_TC_IN_HOSPITAL"},
    ("CLM00146", 1): set(),
    ("CLM00146", 2): {"PTP_NO_BYPASS"},
    ("CLM00147", 1): {"RECORDING_EVIDENCE"},
    ("CLM00147", 2): {"PTP_NO_BYPASS"},
    ("CLM00148", 1): {"RECORDING_EVIDENCE"},
    ("CLM00148", 2): {"PTP_BYPASSED"},
    ("CLM00149", 1): {"MOD_BYPASS_UNNEEDED"},
    ("CLM00150", 1): {"DUP_COMPONENT"},
    ("CLM00151", 1): {"DUP_COMPONENT"},
    ("CLM00152", 1): {"DUP_EXACT"},
    ("CLM00152", 2): {"DUP_EXACT"},
    ("CLM00153", 1): {"MOD_SPLIT_SAME_BILLER", "MUE_DOS"},
    ("CLM00153", 2): {"MOD_SPLIT_SAME_BILLER", "MUE_DOS"},
    ("CLM00154", 1): {"DX_MISSING"},
    ("CLM00155", 1): {"NPI_INVALID"},
    ("CLM00156", 1): {"MUE_DOS"},
    ("CLM00156", 2): {"MUE_DOS"},
}


def test_sample_findings_line_by_line(sample_run):
    for (claim, line), expected in SAMPLE_FINDINGS.items():
        assert sample_run.findings(claim, line) == expected, (claim, line)
    flagged = {(f["claim_id"], int(f["line_number"])) for f in sample_run.flags}
    assert flagged <= set(SAMPLE_FINDINGS), "the clean part of the sample must stay clean"


def test_sample_prices_76120_at_the_cms_national_amounts(sample_run):
    office_global = [l for l in sample_run.lines if l["hcpcs"] == "76120" and l["component"] == "global"
                     and l["place_of_service"] == "11" and l["units"] == "1"]
    hospital_26 = [l for l in sample_run.lines if l["hcpcs"] == "76120" and l["component"] == "26"
                   and l["place_of_service"] == "22"]
    assert office_global and {l["expected_allowed"] for l in office_global} == {"106.42"}
    assert hospital_26 and {l["expected_allowed"] for l in hospital_26} == {"18.11"}
    assert sample_run.line("CLM00145", 1)["expected_allowed"] == "88.31"


def test_sample_reports_no_patient_id_in_clear(sample_run):
    text = "".join(p.read_text() for p in sample_run.out_dir.glob("*.csv"))
    text += (sample_run.out_dir / "summary.json").read_text()
    assert "PT0001" not in text and "PT3001" not in text
    assert sample_run.lines[0]["patient"].startswith("P-")


def test_rerun_of_the_same_files_gives_the_same_outputs_and_leaves_no_temporary_folder(tmp_path, sample_db,
                                                                                       sample_run, monkeypatch):
    # A nightly job runs the command every night: a folder left behind by each run would pile up.
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    monkeypatch.setenv("CLAIMSCRUB_HOME", str(sample_db.parent / "home"))  # the site secret of the first run
    again = scrub([SAMPLE], tmp_path / "again", sample_db)
    assert again.exit_code == 0, again.stderr
    assert "site secret" not in again.stderr
    assert again.flags == sample_run.flags
    assert again.lines == sample_run.lines
    assert again.quarantine == sample_run.quarantine
    assert list(temporary.iterdir()) == []


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.csv", None, "file not found"),
        ("empty.csv", "", "file is empty"),
        ("no_codes.csv", "claim_id,line_number,patient_id,date_of_service,units\nC1,1,P1,2024-07-01,1\n",
         "required column missing: hcpcs"),
    ],
)
def test_a_file_that_is_not_a_claim_export_exits_2_with_one_line(tmp_path, db_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    run = scrub([path], tmp_path / "out", db_path)
    assert run.exit_code == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and message in lines[0]
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()


def test_summary_json_counts_findings_by_category_and_severity(sample_run):
    summary = json.loads((sample_run.out_dir / "summary.json").read_text())
    by_rule = summary["findings"]["by_rule"]
    assert sum(summary["findings"]["by_category"].values()) == summary["findings"]["total"] == len(sample_run.flags)
    assert by_rule["MUE_DOS"] == 5
    assert summary["dollars_at_risk"]["by_severity"]["deny"] > 0
    # Every rule, category and severity is named, 0 where the batch has none: a script need not ask first.
    assert set(by_rule) == {rule.id for rule in RULES} and by_rule["AOC_NO_PRIMARY"] == 0
    assert set(summary["findings"]["by_category"]) == {rule.category for rule in RULES}
    assert set(summary["findings"]["by_severity"]) == set(summary["dollars_at_risk"]["by_severity"]) == {
        "deny", "review", "info"}
    assert {r["release"] for r in summary["reference_releases"]} >= {"RVU25D", "PTP 2024Q3", "MUE 2024Q3"}


def test_two_files_of_one_run_are_one_batch_whatever_their_paths_hold(tmp_path, db_path):
    # Quotes, spaces and letters outside ASCII in every path the command takes: inputs, --db and --out.
    awkward = tmp_path / "o'brien é" / "d'été 2024"
    database = awkward / "claims db's.duckdb"
    database.parent.mkdir(parents=True)
    database.write_bytes(db_path.read_bytes())
    radiology = write_csv(awkward / "radiology l'été.csv", [
        dict(claim_id="R1", line_number=1, patient_id="PX", date_of_service="2024-07-08", hcpcs="76120",
             modifiers="26", units=1, rendering_npi="1234567893", diagnosis_1="R13.10"),
    ])
    procedure = write_csv(awkward / "procedure.csv", [
        dict(claim_id="P1", line_number=1, patient_id="PX", date_of_service="07/08/2024", hcpcs="76120",
             units=1, rendering_npi="5550001114", diagnosis_1="R13.10"),
    ])
    run = scrub([radiology, procedure], awkward / "out l'été", database)
    assert run.exit_code == 0, run.stderr
    assert run.findings("R1", 1) >= {"DUP_COMPONENT"}
    assert run.findings("P1", 1) >= {"DUP_COMPONENT"}
    assert {l["source_file"] for l in run.lines} == {"radiology l'été.csv", "procedure.csv"}
    assert (awkward / "out l'été" / "denial-risk-report.xlsx").exists()


# Three scrubs through the command: the slow tier (CI runs it).
@pytest.mark.slow
def test_the_runs_locality_prices_lines_that_name_none(tmp_path, db_path, monkeypatch):
    export = write_csv(tmp_path / "e.csv", [
        dict(claim_id="C1", line_number=1, patient_id="P1", date_of_service="2024-07-08", hcpcs="76120", units=1,
             rendering_npi="1234567893", diagnosis_1="R13.10"),
        dict(claim_id="C2", line_number=1, patient_id="P2", date_of_service="2024-07-08", hcpcs="76120", units=1,
             rendering_npi="1234567893", diagnosis_1="R13.10", service_zip="35203"),
    ])
    # The site's locality, as the nightly run takes it: the command takes it too.
    monkeypatch.setenv("CLAIMSCRUB_LOCALITY", "01112-05")
    site = scrub([export], tmp_path / "site", db_path)
    assert site.exit_code == 0, site.stderr
    assert (site.line("C1", 1)["locality"], site.line("C1", 1)["expected_allowed"]) == ("01112-05", "146.00")
    # --locality comes before it (the site's value then is not even read).
    monkeypatch.setenv("CLAIMSCRUB_LOCALITY", "San Francisco")
    run = scrub([export], tmp_path / "out", db_path, "--locality", "01112-05")
    assert run.exit_code == 0, run.stderr
    assert (run.line("C1", 1)["locality"], run.line("C1", 1)["expected_allowed"]) == ("01112-05", "146.00")
    assert run.line("C2", 1)["locality"] == "10112-00"  # a line's own ZIP comes before the run's default


def test_a_malformed_locality_is_a_usage_error(tmp_path, db_path, monkeypatch):
    run = scrub([SAMPLE], tmp_path / "out", db_path, "--locality", "San Francisco")
    assert run.exit_code == 2 and "is not a MAC-LL locality" in run.stderr
    monkeypatch.setenv("CLAIMSCRUB_LOCALITY", "San Francisco")
    site = scrub([SAMPLE], tmp_path / "out", db_path)
    assert site.exit_code == 2
    assert site.stderr == "claimscrub: CLAIMSCRUB_LOCALITY='San Francisco' is not a MAC-LL locality such as 01112-05\n"


def test_each_finding_names_the_releases_that_priced_and_judged_its_line(sample_run):
    lines = {(r["claim_id"], r["line_number"]): r for r in sample_run.lines}
    flags = sample_run.flags
    assert flags and list(flags[0])[-1] == "gpci_release"
    for flag in flags:
        line = lines[(flag["claim_id"], flag["line_number"])]
        assert [flag[t] for t in ("rvu_release", "gpci_release", "ptp_release", "mue_release", "aoc_release")] == \
            [line[t] for t in ("rvu_release", "gpci_release", "ptp_release", "mue_release", "aoc_release")]
    assert {flag["gpci_release"] for flag in flags} == {"GPCI 2025"}


def test_a_writer_waits_for_another_process_hold_as_long_as_the_lock_timeout_says(tmp_path, monkeypatch):
    """CLAIMSCRUB_LOCK_TIMEOUT: 60 s unless set; a writer waits that long for another process's hold on the site
    (a second descriptor's flock is another holder, as another process's is), then gives up in one sentence."""
    import fcntl
    import time

    from pipelines.database import DatabaseBusyError, holding, site_lock_path
    from pipelines.settings import lock_timeout

    monkeypatch.delenv("CLAIMSCRUB_LOCK_TIMEOUT", raising=False)
    assert lock_timeout() == 60.0
    monkeypatch.setenv("CLAIMSCRUB_LOCK_TIMEOUT", "1.5")
    assert lock_timeout() == 1.5
    monkeypatch.setenv("CLAIMSCRUB_LOCK_TIMEOUT", "a minute")
    with pytest.raises(ValueError, match=r"^CLAIMSCRUB_LOCK_TIMEOUT='a minute' is not a number of seconds$"):
        lock_timeout()
    db = tmp_path / "site.duckdb"
    with open(site_lock_path(db), "w") as other:
        fcntl.flock(other, fcntl.LOCK_EX)
        said, started = [], time.monotonic()
        with pytest.raises(DatabaseBusyError, match="gave up after 1.5 s"):
            with holding(str(db), 1.5, on_wait=lambda: said.append(time.monotonic() - started)):
                pass
        waited = time.monotonic() - started
    assert 1.5 <= waited < 4, waited
    assert len(said) == 1 and said[0] < 1, "the wait is said once, when it starts"
    with holding(str(db), 1.5) as con:  # the other hold gone, the writer gets the database at once
        assert con.execute("select 1").fetchall() == [(1,)]


def test_a_lock_timeout_that_is_not_a_number_is_one_line_before_the_run(tmp_path, db_path, monkeypatch):
    monkeypatch.setenv("CLAIMSCRUB_LOCK_TIMEOUT", "a minute")
    run = scrub([write_csv(tmp_path / "claims.csv", [dict(claim_id="C1", line_number=1, patient_id="P1",
                                                            date_of_service="2024-07-15", hcpcs="76120", units=1)])],
                tmp_path / "out", db_path)
    assert run.exit_code == 2
    assert run.stderr == "claimscrub: CLAIMSCRUB_LOCK_TIMEOUT='a minute' is not a number of seconds\n"
    assert not (tmp_path / "out").exists()


def test_a_site_variable_set_empty_is_unset(tmp_path, db_path, monkeypatch, isolated_home):
    """`CLAIMSCRUB_DB=` in a unit file: DuckDB would open "" as a database in memory, and a remit or reference
    load would say it loaded and keep nothing. `CLAIMSCRUB_HOME=` would make a site in the working folder."""
    from click.testing import CliRunner

    from pipelines.cli import main

    isolated_home.mkdir(parents=True, exist_ok=True)
    site = isolated_home / "claimscrub.duckdb"
    site.write_bytes(db_path.read_bytes())
    monkeypatch.setenv("CLAIMSCRUB_DB", "")
    info = CliRunner().invoke(main, ["db", "info"])
    assert info.exit_code == 0, info.output
    assert info.stdout.splitlines()[0] == f"database: {site}"
    monkeypatch.setenv("CLAIMSCRUB_HOME", "")
    monkeypatch.chdir(tmp_path)
    default = CliRunner().invoke(main, ["db", "info"])
    assert default.exit_code == 2
    assert default.stderr == f"claimscrub: --db {tmp_path / '.claimscrub' / 'claimscrub.duckdb'}: no such database\n"


def test_a_site_secret_gone_from_a_database_with_batches_is_said_before_the_masks_change(tmp_path, sample_db,
                                                                                       sample_run, isolated_home):
    db = tmp_path / "claimscrub.duckdb"
    db.write_bytes(sample_db.read_bytes())
    run = scrub([SAMPLE], tmp_path / "out", db)  # this test's own home: no site secret in it yet
    assert run.exit_code == 0, run.stderr
    assert (f"claimscrub: {isolated_home / 'site-secret'} is missing, and this database holds earlier batches: a "
            "new site secret is made, so patients' masks (P-...) differ from those of earlier reports; restore the "
            "file from a backup to keep them") in run.stderr.splitlines()
    assert {line["patient"] for line in run.lines}.isdisjoint({line["patient"] for line in sample_run.lines})


@pytest.mark.parametrize("argv, said", [
    (["db", "info", "extra"], "claimscrub db info: Got unexpected extra argument (extra)"),
    (["rejudge", "--out", "x"], "claimscrub rejudge: Missing option '--since'."),
    (["remit"], "claimscrub remit: Missing argument 'FILES...'."),
    (["nosuch"], "claimscrub: No such command 'nosuch'."),
])
def test_a_usage_error_is_one_line_naming_the_command(argv, said):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "pipelines.cli", *argv], capture_output=True, text=True,
                          check=False, cwd=Path(__file__).resolve().parent.parent)
    assert (done.returncode, done.stderr.splitlines(), done.stdout) == (2, [said], "")


def test_a_database_in_a_folder_the_user_may_not_write_is_one_line(db_path, monkeypatch):
    import os

    from click.testing import CliRunner

    from pipelines.cli import main

    db = db_path
    real_open = os.open

    def refused(path, *args, **kwargs):  # what the kernel says to a user without write access to the folder
        if str(path).endswith(".lock"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refused)
    result = CliRunner().invoke(main, ["db", "info", "--db", str(db)])
    assert (result.exit_code, result.stderr) == (2, f"claimscrub: {db}.lock: Permission denied\n")


def test_reference_download_into_a_file_is_refused_before_any_connection(tmp_path):
    from click.testing import CliRunner

    from pipelines.cli import main

    (tmp_path / "saved").write_text("")
    result = CliRunner().invoke(main, ["reference", "download", "--release", "MUE 2026Q3",
                                       "--dir", str(tmp_path / "saved")])
    assert (result.exit_code, result.stderr) == (2, f"claimscrub: --dir {tmp_path / 'saved'}: a file stands there, "
                                                    "not a folder\n")


def test_rejudge_says_a_missing_site_secret_and_refuses_a_damaged_one_before_judging(tmp_path, sample_db,
                                                                                    isolated_home):
    from click.testing import CliRunner

    from pipelines.cli import main

    db = tmp_path / "claimscrub.duckdb"
    db.write_bytes(sample_db.read_bytes())  # batches scrubbed under another home's secret
    argv = ["rejudge", "--since", "2024-01-01", "--db", str(db)]
    missing = CliRunner().invoke(main, [*argv, "--out", str(tmp_path / "missing")])
    assert missing.exit_code == 0, missing.output
    assert (f"claimscrub: {isolated_home / 'site-secret'} is missing, and this database holds earlier batches: a "
            "new site secret is made, so patients' masks (P-...) differ from those of earlier reports; restore the "
            "file from a backup to keep them") in missing.stderr.splitlines()
    (isolated_home / "site-secret").write_text("short")
    damaged = CliRunner().invoke(main, [*argv, "--out", str(tmp_path / "damaged")])
    assert damaged.exit_code == 2
    assert damaged.stderr.startswith(f"claimscrub: {isolated_home / 'site-secret'}: the site secret is empty or cut "
                                     "short (5 characters)")
    assert not (tmp_path / "damaged").exists()
