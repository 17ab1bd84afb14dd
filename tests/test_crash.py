"""A run killed at any point (SIGKILL) and started again gives the same outputs as a run never killed:
each database stage commits whole or not at all, reports appear whole, and a killed run's leftovers are
harmless. The killed run is the real command in a process of its own."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from assets.readers import file_sha256
from pipelines.cli import batch_id_for, main

from .corpus import row, text_export
from .helpers import command, module_site, outputs_of, read_csv, scrub

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "claims_sample.csv"
KILL_AT = Path(__file__).resolve().parent / "kill_at.py"
SECRET = "crash-test-site-secret"


@pytest.fixture(scope="module")
def uninterrupted(reference_db, tmp_path_factory) -> dict:
    with module_site(tmp_path_factory, reference_db, "uninterrupted", CLAIMSCRUB_SECRET=SECRET) as (folder, db):
        run = scrub([SAMPLE], folder / "out", db)
    assert run.exit_code == 0, run.stderr
    return outputs_of(folder / "out")


# The sample batch's rows per stage: raw rows, lines, quarantined rows, priced lines, findings.
STAGES_COMMITTED = [(0, 0, 0, 0, 0), (290, 0, 0, 0, 0), (290, 286, 4, 0, 0), (290, 286, 4, 286, 0),
                    (290, 286, 4, 286, 23)]


def _committed_whole(db: Path, point: str) -> bool:
    """The database after the kill holds each stage of the batch whole or not at all."""
    with duckdb.connect(str(db), read_only=True) as con:
        if point == "reference_loading":
            loaded, recorded = con.execute(
                """select (select count(*) from ref_rvu where release_id = 'RVU25D'),
                          (select coalesce(sum(row_count), 0) from ref_releases where release_id = 'RVU25D')"""
            ).fetchall()[0]
            return loaded == recorded == 0
        counts = con.execute(
            """select (select count(*) from raw_claim_rows r where r.batch_id = b.batch_id),
                      (select count(*) from claim_lines l where l.batch_id = b.batch_id),
                      (select count(*) from claim_quarantine q where q.batch_id = b.batch_id),
                      (select count(*) from priced_lines p where p.batch_id = b.batch_id),
                      (select count(*) from line_flags f where f.batch_id = b.batch_id)
               from (select ? as batch_id) b""", [batch_id_for([SAMPLE], [file_sha256(SAMPLE)])]).fetchall()[0]
    return counts in STAGES_COMMITTED


def _consistent(out: Path) -> bool:
    """What a reader of the folder may rely on: a summary.json describes the files beside it."""
    if not (out / "summary.json").exists():
        return True
    summary = outputs_of(out)["summary"]
    return (summary["rows_read"] == len(read_csv(out / "lines.csv")) + len(read_csv(out / "quarantine.csv"))
            and summary["findings"]["total"] == len(read_csv(out / "flags.csv")))


@pytest.mark.parametrize("point", ["reference_loading", "rows_staged", "rows_validated", "lines_priced",
                                   "lines_flagged", "reports_staged", "reports_half_moved"])
def test_a_run_killed_and_started_again_gives_the_uninterrupted_outputs(tmp_path, db_path, monkeypatch,
                                                                         uninterrupted, point):
    monkeypatch.setenv("CLAIMSCRUB_SECRET", SECRET)
    # A killed run cannot remove Dagster's temporary folder: it goes with the test's folder.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    out = tmp_path / "out"
    if point == "reference_loading":
        # The run dies loading the one bundled release missing from the database (the other loads would only
        # make the test slower).
        with duckdb.connect(str(db_path)) as con:
            con.execute("delete from ref_rvu where release_id = 'RVU25D'")
            con.execute("delete from ref_releases where release_id = 'RVU25D'")
    elif point.startswith("reports"):
        # Yesterday's reports of another export are in the folder when tonight's run is killed.
        yesterday = scrub([text_export(tmp_path / "yesterday.csv", [row("Y1"), row("Y2")])], out, db_path)
        assert yesterday.exit_code == 0, yesterday.stderr

    killed = subprocess.run([sys.executable, str(KILL_AT), point, *command([SAMPLE], out, db_path)[3:]],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _committed_whole(db_path, point)
    assert _consistent(out)
    if point == "reports_half_moved":
        assert not (out / "summary.json").exists(), "a half-replaced folder must not look complete"
    if point.startswith("reports"):
        assert list(tmp_path.glob(".out.partial-*")), "the killed run's staging folder is left behind"

    again = scrub([SAMPLE], out, db_path)
    assert again.exit_code == 0, again.stderr
    assert outputs_of(out) == uninterrupted
    assert not list(tmp_path.glob(".out.partial-*")), "the next run clears a killed run's staging folder"
    assert {p.name for p in out.iterdir()} == {"flags.csv", "lines.csv", "quarantine.csv", "summary.json",
                                              "denial-risk-report.xlsx"}
    assert all(os.stat(p).st_mode & 0o777 == 0o600 for p in out.iterdir())


def test_a_run_killed_before_its_reports_is_not_history_for_the_next_night(tmp_path, db_path, monkeypatch):
    """A night killed after judging never produced a report: its claims were not scrubbed and may never go out,
    so the next night's history must not deny tonight's lines against them (nor let its versions replace the
    ones last scrubbed)."""
    monkeypatch.setenv("CLAIMSCRUB_SECRET", SECRET)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    first = text_export(tmp_path / "monday.csv", [row("M1", patient="PT-9", DOS="2024-07-08")])
    killed = subprocess.run([sys.executable, str(KILL_AT), "lines_flagged",
                             *command([first], tmp_path / "monday", db_path)[3:]],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # Tuesday's export bills the same line on another claim: had Monday's run finished, a duplicate.
    second = text_export(tmp_path / "tuesday.csv", [row("T1", patient="PT-9", DOS="2024-07-08")])
    tuesday = scrub([second], tmp_path / "tuesday", db_path, "--history")
    assert tuesday.exit_code == 0, tuesday.stderr
    assert [(f["claim_id"], f["rule_id"], f["partner_batch"]) for f in tuesday.flags
            if f["partner_batch"]] == []
    # Nor is it judged again after a newer release: only Tuesday's line was ever scrubbed.
    rejudged = CliRunner().invoke(main, ["rejudge", "--since", "2024-07-01", "--out", str(tmp_path / "impact"),
                                         "--db", str(db_path)])
    assert rejudged.exit_code == 0, rejudged.stderr
    assert "Judged again 1 stored line dated on or after 2024-07-01 (1 batch)" in rejudged.stdout
    # Monday's export scrubbed to the end: now it is history, and the same line is a duplicate of it.
    monday = scrub([first], tmp_path / "monday", db_path)
    assert monday.exit_code == 0, monday.stderr
    again = scrub([second], tmp_path / "tuesday", db_path, "--history")
    assert again.exit_code == 0, again.stderr
    assert {(f["claim_id"], f["rule_id"]) for f in again.flags if f["partner_batch"]} == {("T1", "DUP_COMPONENT"),
                                                                                  ("T1", "MUE_DOS")}


def test_a_remittance_is_not_matched_to_a_night_killed_before_its_reports(tmp_path, db_path, monkeypatch):
    """Feedback weighs the payer's answers against the findings people saw: a killed night showed none."""
    from .helpers import write_csv
    from .x12_files import write_835

    monkeypatch.setenv("CLAIMSCRUB_SECRET", SECRET)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    line = {"claim_id": "K1", "line_number": 1, "patient_id": "PT-7", "date_of_service": "2024-08-12",
            "hcpcs": "76120", "units": 2, "charge": "120.00", "rendering_npi": "1234567893", "place_of_service": "11",
            "diagnosis_1": "R13.10", "payer": "ACME HEALTH"}
    export = write_csv(tmp_path / "night.csv", [line])
    killed = subprocess.run([sys.executable, str(KILL_AT), "lines_flagged",
                             *command([export], tmp_path / "night", db_path)[3:]],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    remittance = write_835(tmp_path / "answer.835", [line], {("K1", 1): [("CO", "151")]})
    remitted = CliRunner().invoke(main, ["remit", str(remittance), "--db", str(db_path)])
    assert remitted.exit_code == 0, remitted.output
    assert remitted.stdout.strip() == ("answer.835: loaded: 1 claim payment, 1 service line; 0 match scrubbed lines, "
                                       "1 denied.")
