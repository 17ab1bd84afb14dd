"""What the volume work promises a user: progress they can follow, a benchmark export with a realistic mix,
and a validation that stays exact when DuckDB picks the rows for Pandera to judge."""

import io
import logging

import duckdb
import pytest

from assets.progress import LOGGER, stage
from assets.schemas import SUSPECT_SQL, ScrubbableRow
from benchmarks.generate import generate
from pipelines.progress import ProgressHandler

from .engine import engine_scrub
from .helpers import scrub


@pytest.fixture
def plain_log():
    stream = io.StringIO()
    handler = ProgressHandler(stream, bars=False)
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    yield stream
    LOGGER.removeHandler(handler)


def test_a_stage_writes_plain_lines_into_a_log(plain_log):
    with stage("validate", total=500_000) as progress:
        progress.advance(250_000)
        progress.rows = 499_000
    lines = plain_log.getvalue().splitlines()
    assert lines[0].endswith("claimscrub validate: started")
    assert "claimscrub validate: 250,000 of 500,000 rows after" in lines[1]
    assert "claimscrub validate: done, 499,000 rows in" in lines[2]
    assert all("\r" not in line for line in lines)


def test_a_stage_draws_a_bar_on_a_terminal():
    stream = io.StringIO()
    handler = ProgressHandler(stream, bars=True)
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    try:
        with stage("judge", total=4, unit="rules") as progress:
            progress.advance(4)
            progress.rows = 12
    finally:
        LOGGER.removeHandler(handler)
    drawn = stream.getvalue()
    assert "judge" in drawn and "4/4" in drawn and "12 rows" in drawn


def test_the_scrub_logs_every_stage_and_keeps_stderr_for_errors(tmp_path, db_path):
    export = generate(tmp_path / "claims.csv", 300)
    log = tmp_path / "scrub.log"
    run = scrub([export], tmp_path / "out", db_path, "--log", str(log))
    assert run.exit_code == 0, run.stderr
    done = [line.split("claimscrub ")[1].split(":")[0] for line in log.read_text().splitlines() if ": done," in line]
    assert done == ["read", "validate", "price", "judge", "write"]
    # Standard error holds no progress: only what the run says of its reference data (the generated export's
    # 2024 lines are priced at 2025 rates, the bundled files holding none of 2024).
    assert [line for line in run.stderr.splitlines() if not line.startswith("warning: ")] == []


def test_the_generated_export_has_the_mix_of_a_night(tmp_path):
    path = generate(tmp_path / "claims.csv", 20_000)
    con = duckdb.connect()
    rows = con.execute(f"select * from read_csv('{path}', all_varchar = true)").df()
    assert len(rows) == 20_000
    per_claim = len(rows) / rows["Claim ID"].nunique()
    assert 2.3 < per_claim < 2.8
    codes = rows["CPT Code"].value_counts(normalize=True)
    assert codes["76120"] > 0.02 and {"76000", "77002", "92611"} <= set(codes.index)
    assert 0.1 < rows[["Mod 1", "Mod 2"]].notna().any(axis=1).mean() < 0.5
    assert (rows["Units"] == "0").mean() < 0.01 and (rows["DOS"].str.startswith("2024-13")).any()
    # Surgeries with the modifiers that change their payment, visits that say how they relate to one, add-ons.
    assert {"50", "62", "66", "80", "81", "82", "AS", "24", "57", "FT"} <= set(rows["Mod 1"].dropna())
    assert {"66984", "27447", "10060", "17000", "11042", "11045", "17003", "11105"} <= set(codes.index)


def test_the_generated_export_is_the_same_every_time(tmp_path):
    first = generate(tmp_path / "a.csv", 3_000).read_bytes()
    assert generate(tmp_path / "b.csv", 3_000).read_bytes() == first


def test_a_generated_night_has_a_few_percent_of_problems(tmp_path, db_path):
    export = generate(tmp_path / "claims.csv", 5_000)
    run = engine_scrub([export], tmp_path / "out", db_path)
    assert run.exit_code == 0, run.stderr
    summary = run.summary
    assert 0.003 < summary["rows_quarantined"] / summary["rows_read"] < 0.03
    assert 0.02 < summary["findings"]["total"] / summary["lines_scrubbed"] < 0.15
    assert {"PTP_NO_BYPASS", "MUE_DOS", "MOD_GLOBAL_IN_HOSPITAL", "DUP_COMPONENT", "AOC_NO_PRIMARY",
            "GLOBAL_EM_IN_PERIOD", "MOD_ASSISTANT_NOT_PAYABLE"} <= set(summary["findings"]["by_rule"])


def test_every_column_of_the_loose_model_has_its_sql_mirror():
    assert set(SUSPECT_SQL) == set(ScrubbableRow.to_schema().columns)


def test_a_row_the_sql_mirror_would_let_through_stops_the_run(tmp_path, db_path, monkeypatch):
    from assets import validate

    monkeypatch.setitem(validate.SUSPECT_SQL, "hcpcs", "hcpcs is null")
    export = tmp_path / "claims.csv"
    export.write_text("claim_id,line_number,patient_id,date_of_service,hcpcs,units\n"
                      "CLM-SHORT-CODE,1,P1,2024-07-01,7612,1\n")
    run = scrub([export], tmp_path / "out", db_path)
    assert run.exit_code == 1
    assert "validated_claims failed" in run.stderr


def test_the_steps_and_runs_of_one_database_take_turns():
    from pipelines.definitions import defs
    from pipelines.resources import DATABASE_TAG

    job = defs.resolve_job_def("scrub_job")
    assert job.executor_def.name == "in_process"
    assert job.tags[DATABASE_TAG].endswith(".duckdb")


def test_the_benchmark_reads_stage_times_from_the_plain_progress_lines(plain_log):
    from benchmarks.bench import stage_seconds

    for name in ["read", "write"]:
        with stage(name, total=5, unit="files") as progress:
            for what in ["flags.csv", "lines.csv", "quarantine.csv", "summary.json", "workbook"]:
                progress.advance(what=what)
    assert "claimscrub write: 4 of 5 files after" in plain_log.getvalue()
    assert "(summary.json)" in plain_log.getvalue()
    times = stage_seconds(plain_log.getvalue())
    assert set(times) == {"read", "write", "workbook"}


@pytest.mark.slow  # a benchmark tool's test: the slow tier (CI runs it)
def test_the_statement_timings_replay_a_scrubbed_database_and_leave_it_as_it_was(tmp_path, db_path, capsys):
    from benchmarks import statements

    export = generate(tmp_path / "claims.csv", 300)
    assert scrub([export], tmp_path / "out", db_path).exit_code == 0
    before = db_path.stat().st_mtime_ns, db_path.read_bytes()
    for stage_name in ["judge", "write"]:
        statements.main([str(db_path), "--stage", stage_name, "--profile", "create or replace temp table"])
    shown = capsys.readouterr().out
    assert "judge: " in shown and "write: " in shown
    assert "create or replace temp table sl as" in shown
    assert "create or replace temp table worklist_rows as" in shown
    assert "CREATE_TABLE_AS" in shown  # the operator timings of the profiled statement
    assert (db_path.stat().st_mtime_ns, db_path.read_bytes()) == before
    assert not list(db_path.parent.glob(f"{db_path.name}.statements*"))
