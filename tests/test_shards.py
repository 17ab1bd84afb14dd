"""Patient shards (assets/shards.py): the same outputs whatever the shard count, the layout and the executor,
history included; `claimscrub db init | info | reshard`."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from benchmarks.generate import generate
from pipelines.cli import main

from .helpers import module_site, outputs_of, scrub

SECRET = {"CLAIMSCRUB_SECRET": "shards"}


def db_command(*args: str):
    return CliRunner().invoke(main, ["db", *args])


def sheet_cells(path: Path, title: str) -> list[tuple]:
    book = load_workbook(path, read_only=True)
    try:
        return [tuple(row) for row in book[title].iter_rows(values_only=True)]
    finally:
        book.close()


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> tuple[Path, Path]:
    """An earlier quarter and tonight's batch of the same patients: surgeries, visits, add-ons, duplicates."""
    folder = tmp_path_factory.mktemp("exports")
    earlier = generate(folder / "earlier.csv", 1500, seed=71, first_day="2026-01-05", patients=150,
                       first_claim=900_000)
    tonight = generate(folder / "tonight.csv", 1500, seed=72, first_day="2026-03-02", patients=150)
    return earlier, tonight


def _site_runs(tmp_path_factory, reference_db, exports, name: str, init: list[str], workers: int = 1):
    earlier, tonight = exports
    with module_site(tmp_path_factory, reference_db, name, **SECRET) as (folder, db):
        if init:
            made = db_command("init", "--db", str(db), *init)
            assert made.exit_code == 0, made.stderr
        first = scrub([earlier], folder / "earlier", db)
        assert first.exit_code == 0, first.stderr
        extra = ["--workers", str(workers)] if workers > 1 else []
        second = scrub([tonight], folder / "tonight", db, "--history", *extra)
        assert second.exit_code == 0, second.stderr
        return folder, db


@pytest.fixture(scope="module")
def one_shard(tmp_path_factory, reference_db, exports):
    return _site_runs(tmp_path_factory, reference_db, exports, "one", [])


@pytest.fixture(scope="module")
def four_in_one_file(tmp_path_factory, reference_db, exports):
    return _site_runs(tmp_path_factory, reference_db, exports, "four", ["--shards", "4"])


@pytest.fixture(scope="module")
def four_files(tmp_path_factory, reference_db, exports):
    return _site_runs(tmp_path_factory, reference_db, exports, "files", ["--shards", "4", "--layout", "per-shard"])


@pytest.fixture(scope="module")
def four_files_two_processes(tmp_path_factory, reference_db, exports):
    return _site_runs(tmp_path_factory, reference_db, exports, "processes",
                      ["--shards", "4", "--layout", "per-shard"], workers=2)


@pytest.mark.parametrize("site", ["four_in_one_file", "four_files", "four_files_two_processes"])
def test_every_layout_and_executor_gives_the_one_file_site_s_outputs(site, one_shard, request):
    folder, _ = request.getfixturevalue(site)
    baseline, _ = one_shard
    for run in ["earlier", "tonight"]:
        assert outputs_of(folder / run) == outputs_of(baseline / run)
        for title in ["Findings", "Worklist"]:
            assert (sheet_cells(folder / run / "denial-risk-report.xlsx", title)
                    == sheet_cells(baseline / run / "denial-risk-report.xlsx", title))


def test_history_reaches_the_earlier_batch_on_every_layout(one_shard, four_files):
    for folder, _ in [one_shard, four_files]:
        flags = outputs_of(folder / "tonight")["flags"]
        assert any(row["partner_batch"] for row in flags)


def test_a_per_shard_site_keeps_each_patient_s_lines_in_one_shard_file(four_files):
    folder, db = four_files
    info = db_command("info", "--db", str(db))
    assert info.exit_code == 0, info.stderr
    files = [line.split()[1] for line in info.stdout.splitlines() if line.startswith("file:")]
    assert files[0] == str(db) and len(files) == 5
    patients = []
    for shard, file in enumerate(files[1:]):
        assert file.endswith(f".shard-{shard}-of-4.duckdb")
        with duckdb.connect(file, read_only=True) as con:
            patients.append({row[0] for row in con.execute("select distinct patient_id from raw_claim_rows")
                             .fetchall()})
            assert con.execute("select count(*) from line_flags").fetchall()[0][0] > 0
    assert all(patients) and sum(map(len, patients)) == len(set().union(*patients))
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from raw_claim_rows").fetchall()[0][0] == 0


def test_init_refuses_a_database_that_holds_claims_and_a_layout_it_does_not_know(one_shard, tmp_path):
    _, db = one_shard
    refused = db_command("init", "--db", str(db), "--shards", "4")
    assert refused.exit_code == 2 and "db reshard" in refused.stderr
    unknown = db_command("init", "--db", str(tmp_path / "new.duckdb"), "--shards", "4", "--layout", "striped")
    assert unknown.exit_code == 2 and "striped" in unknown.stderr


def test_reshard_moves_every_row_and_the_next_run_judges_alike(four_in_one_file, one_shard, exports, tmp_path,
                                                              monkeypatch):
    monkeypatch.setenv("CLAIMSCRUB_SECRET", SECRET["CLAIMSCRUB_SECRET"])
    folder, db = four_in_one_file
    site = tmp_path / "site"
    site.mkdir()
    copy = site / "claimscrub.duckdb"
    shutil.copyfile(db, copy)
    with duckdb.connect(str(copy), read_only=True) as con:
        stored = con.execute("select count(*) from raw_claim_rows").fetchall()[0][0]
    moved = db_command("reshard", "--db", str(copy), "--shards", "3", "--layout", "per-shard")
    assert moved.exit_code == 0, moved.stderr
    assert f"{stored:,} stored rows moved" in moved.stdout
    assert sorted(p.name for p in site.glob("*.shard-*")) == [f"claimscrub.shard-{k}-of-3.duckdb" for k in range(3)]
    again = scrub([exports[1]], tmp_path / "again", copy, "--history")
    assert again.exit_code == 0, again.stderr
    assert outputs_of(tmp_path / "again") == outputs_of(one_shard[0] / "tonight")
    back = db_command("reshard", "--db", str(copy), "--shards", "1", "--layout", "single")
    assert back.exit_code == 0, back.stderr
    assert not list(site.glob("*.shard-*"))
    with duckdb.connect(str(copy), read_only=True) as con:
        assert con.execute("select count(*) from raw_claim_rows").fetchall()[0][0] == stored


def test_the_steps_that_write_the_main_file_share_one_pool_that_a_workers_run_limits_to_one(tmp_path):
    """Dagster's concurrency pools: every step that opens the main file through the resource is in
    MAIN_FILE_POOL; the shards' judge steps, each writing its own file, are in none; the instance of a
    `--workers` run gives the pool a limit of one step at a time."""
    from pipelines.database import MAIN_FILE_POOL
    from pipelines.definitions import defs
    from pipelines.parallel import parallel_scrub_job, run_instance

    jobs = [parallel_scrub_job(), defs.resolve_job_def("payer_feedback_job"), defs.resolve_job_def("rejudge_job")]
    ops = {op.name: op for job in jobs for op in job.graph.iterate_op_defs()}
    writers = {name for name, op in ops.items() if "duckdb" in op.required_resource_keys}
    assert {"reference_tables", "raw_claim_rows", "validated_claims", "priced_lines", "plan_shards", "scrub_report",
            "remittances", "payer_feedback", "rejudge_impact"} <= writers
    assert {name: ops[name].pool for name in writers} == dict.fromkeys(writers, MAIN_FILE_POOL)
    assert ops["judge_shard"].pool is None and ops["collect_findings"].pool is None
    with run_instance(str(tmp_path)) as instance:
        assert instance.event_log_storage.supports_global_concurrency_limits
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
