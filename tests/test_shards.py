"""Patient shards (assets/shards.py): the same outputs whatever the shard count, the layout and the executor,
history included; `claimscrub db init | info | reshard`."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from benchmarks.generate import generate
from pipelines.cli import main

from .corpus import row, text_export
from .helpers import command, module_site, outputs_of, scrub

# The run in processes starts a dozen step processes one after another: the module goes to a worker first.
pytestmark = pytest.mark.long

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
    """An earlier quarter and tonight's batch of the same patients: surgeries, visits, add-ons, duplicates.
    Forty patients fill each of four shards and meet their earlier lines tonight (history findings)."""
    folder = tmp_path_factory.mktemp("exports")
    earlier = generate(folder / "earlier.csv", 800, seed=71, first_day="2026-01-05", patients=40,
                       first_claim=900_000)
    tonight = generate(folder / "tonight.csv", 800, seed=72, first_day="2026-03-02", patients=40)
    return earlier, tonight


@dataclass(frozen=True)
class Site:
    folder: Path
    db: Path
    runs: tuple[str, ...]  # the output folders of the runs the site made itself


def _scrubbed(folder: Path, db: Path, export: Path, run: str, *extra: str) -> None:
    done = scrub([export], folder / run, db, *extra)
    assert done.exit_code == 0, done.stderr


def _copy_files(db: Path, to: Path) -> None:
    """A site's main file and its shard files (and any write-ahead log beside them) into folder `to`."""
    to.mkdir()
    for path in db.parent.glob(f"{db.stem}*.duckdb*"):
        shutil.copyfile(path, to / path.name)


def _site_runs(tmp_path_factory, reference_db, exports, name: str, init: list[str],
               keep_earlier: bool = False) -> Site:
    earlier, tonight = exports
    with module_site(tmp_path_factory, reference_db, name, **SECRET) as (folder, db):
        if init:
            made = db_command("init", "--db", str(db), *init)
            assert made.exit_code == 0, made.stderr
        _scrubbed(folder, db, earlier, "earlier")
        if keep_earlier:
            _copy_files(db, folder / "after-earlier")
        _scrubbed(folder, db, tonight, "tonight", "--history")
    return Site(folder, db, ("earlier", "tonight"))


@pytest.fixture(scope="module")
def one_shard(tmp_path_factory, reference_db, exports):
    return _site_runs(tmp_path_factory, reference_db, exports, "one", [])


@pytest.fixture(scope="module")
def four_in_one_file(tmp_path_factory, reference_db, exports):
    # Judged in parts, one per shard (a batch that fits one part is judged whole, as on one shard).
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("assets.scrub.LINES_PER_PART", 300)
        return _site_runs(tmp_path_factory, reference_db, exports, "four", ["--shards", "4"])


@pytest.fixture(scope="module")
def four_files(tmp_path_factory, reference_db, exports):
    return _site_runs(tmp_path_factory, reference_db, exports, "files",
                      ["--shards", "4", "--layout", "per-shard"], keep_earlier=True)


@pytest.fixture(scope="module")
def four_files_two_processes(tmp_path_factory, reference_db, exports, four_files):
    """Tonight's batch through the multiprocess executor, on a copy of the per-shard site's files as its
    earlier batch left them (scrubbed in process, as on that site): this site's own run is tonight's."""
    with module_site(tmp_path_factory, reference_db, "processes", **SECRET) as (folder, db):
        for path in (four_files.folder / "after-earlier").iterdir():
            shutil.copyfile(path, folder / path.name)
        _scrubbed(folder, db, exports[1], "tonight", "--history", "--workers", "2")
    return Site(folder, db, ("tonight",))


# The run in processes starts a dozen step processes, and each layout's whole outputs compared take seconds:
# the slow tier (make test-slow, in CI with the rest); `make test` keeps the shard files' history and storage.
@pytest.mark.parametrize("site", [pytest.param("four_in_one_file", marks=pytest.mark.slow),
                                  pytest.param("four_files", marks=pytest.mark.slow),
                                  pytest.param("four_files_two_processes", marks=pytest.mark.slow)])
def test_every_layout_and_executor_gives_the_one_file_site_s_outputs(site, one_shard, request):
    compared = request.getfixturevalue(site)
    assert "tonight" in compared.runs
    for run in compared.runs:
        assert outputs_of(compared.folder / run) == outputs_of(one_shard.folder / run)
        for title in ["Findings", "Worklist"]:
            assert (sheet_cells(compared.folder / run / "denial-risk-report.xlsx", title)
                    == sheet_cells(one_shard.folder / run / "denial-risk-report.xlsx", title))


@pytest.mark.slow
def test_a_second_workers_run_in_one_process_takes_its_own_site_s_settings(tmp_path_factory, reference_db):
    # The step processes are forked from a server that the process's first run started, with that run's
    # environment: a later run's steps must still use their own site's secret, database and folders.
    runs = {}
    for name, secret in [("first", "one"), ("second", "another")]:
        with module_site(tmp_path_factory, reference_db, name, CLAIMSCRUB_SECRET=secret) as (folder, db):
            export = text_export(folder / "two.csv", [row("CLM-A", patient="PT-SECOND"),
                                                      row("CLM-B", patient="PT-SECOND", HCPCS="76000")])
            made = db_command("init", "--db", str(db), "--shards", "2", "--layout", "per-shard")
            assert made.exit_code == 0, made.stderr
            runs[name] = scrub([export], folder / "out", db, "--workers", "2")
            assert runs[name].exit_code == 0, runs[name].stderr
    for name, secret in [("first", "one"), ("second", "another")]:
        masked = "P-" + hashlib.sha256(f"{secret}|PT-SECOND".encode()).hexdigest()[:12]
        assert [line["patient"] for line in runs[name].lines] == [masked, masked], name
        assert runs[name].summary["lines_scrubbed"] == 2


@pytest.mark.slow  # a command in a process of its own, with its step processes
def test_a_workers_run_leaves_no_folder_of_its_processes_behind(tmp_path, reference_db):
    """Each `--workers` run left a /tmp/pymp-* folder (its step processes' server socket): the command ends at
    once, and multiprocessing's own clean-up at exit never ran."""
    db = tmp_path / "claimscrub.duckdb"
    shutil.copyfile(reference_db, db)
    assert db_command("init", "--db", str(db), "--shards", "2", "--layout", "per-shard").exit_code == 0
    export = text_export(tmp_path / "two.csv", [row("CLM-A", patient="PT-A"), row("CLM-B", patient="PT-B")])
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    # The run's Dagster instance of a run killed outright (SIGKILL: no clean-up of its own) is removed by the next.
    gone = subprocess.Popen(["true"])
    gone.wait()
    (temporary / f"claimscrub-run-{gone.pid}-k1lled_x" / "history").mkdir(parents=True)
    env = {**os.environ, "TMPDIR": str(temporary), "CLAIMSCRUB_HOME": str(tmp_path / "home"),
           "CLAIMSCRUB_SECRET": "workers"}
    done = subprocess.run(command([export], tmp_path / "out", db, "--workers", "2"), env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "summary.json").is_file()
    assert sorted(path.name for path in temporary.iterdir()) == []


def test_a_workers_runs_instance_tails_no_step_output(tmp_path):
    """Dagster's compute log capture tails each step's output through two helper processes; Ctrl-C reaches them
    with the command's process group, and each printed a traceback on the command's standard error."""
    from dagster._core.storage.noop_compute_log_manager import NoOpComputeLogManager

    from pipelines.parallel import run_instance

    with run_instance(str(tmp_path)) as instance:
        assert isinstance(instance.compute_log_manager, NoOpComputeLogManager)


def test_history_reaches_the_earlier_batch_on_every_layout(one_shard, four_files):
    for site in [one_shard, four_files]:
        flags = outputs_of(site.folder / "tonight")["flags"]
        assert any(row["partner_batch"] for row in flags)


# Three nights on a per-shard site: the slow tier (CI runs it).
@pytest.mark.slow
def test_history_reads_the_whole_batch_s_dates_and_each_claim_s_latest_version_on_a_per_shard_site(tmp_path,
                                                                                                    reference_db):
    # P1 and P2 are in shards 1 and 0 of two. Claim A went out for P1 on 2026-03-10, then was corrected to
    # 2025-11-20; tonight's first date (P2's, 2026-02-01) puts that correction inside history's dates, and so
    # the first version stays replaced, whichever shard judges P1. Claims B and C, of two earlier nights, both
    # repeat tonight's T3: the first night's is the partner named.
    # Surgery claims SA and SB went out for P1; SA was sent for P2 the next night, SB tonight: claim ids used
    # again for another patient, other claims, so P1's stay in P1's shard file. P1's visit V1 is in the first
    # night's SA's period, P2's V2 in the second night's SA's (the earliest surgery of that day by claim).
    # Claim A's correction, of the same patient, replaced its first version. Before tonight the main file loses
    # what it kept of the sends, as one made before them: they are found again in the shard files.
    db = tmp_path / "claimscrub.duckdb"
    shutil.copyfile(reference_db, db)
    assert db_command("init", "--db", str(db), "--shards", "2", "--layout", "per-shard").exit_code == 0
    surgery = {"DOS": "2026-03-02", "CPT Code": "10060", "Dx 1": "L02.411"}
    visit = {"DOS": "2026-03-05", "CPT Code": "99213"}
    nights = [[row("A", "P1", DOS="2026-03-10"), row("B", "P1", DOS="2026-03-20", **{"CPT Code": "99213"}),
               row("SA", "P1", **surgery), row("SB", "P1", **surgery)],
              [row("A", "P1", DOS="2025-11-20"), row("C", "P1", DOS="2026-03-20", **{"CPT Code": "99213"}),
               row("SA", "P2", **surgery)],
              [row("T1", "P1", DOS="2026-03-10"), row("T2", "P2", DOS="2026-02-01", **{"CPT Code": "99213"}),
               row("T3", "P1", DOS="2026-03-20", **{"CPT Code": "99213"}), row("SB", "P2", **surgery),
               row("V1", "P1", **visit), row("V2", "P2", **visit)]]
    for number, rows in enumerate(nights, start=1):
        run = scrub([text_export(tmp_path / f"night{number}.csv", rows)], tmp_path / f"out{number}", db, "--history")
        assert run.exit_code == 0, run.stderr
        if number == 2:
            with duckdb.connect(str(db)) as con:
                con.execute("drop table claim_sends")
    found = {(f["claim_id"], f["rule_id"]): f for f in run.flags}
    assert not [key for key in found if key[0] == "T1"]
    assert [key for key in found if key[0] == "V1"] == [("V1", "GLOBAL_EM_IN_PERIOD")]
    repeat = found[("T3", "DUP_EXACT")]
    assert (repeat["partner_claim_id"], repeat["partner_batch"]) == ("B", nights_batch(tmp_path / "out1"))
    period = found[("V1", "GLOBAL_EM_IN_PERIOD")]
    assert (period["partner_claim_id"], period["partner_batch"]) == ("SA", nights_batch(tmp_path / "out1"))
    period = found[("V2", "GLOBAL_EM_IN_PERIOD")]
    assert (period["partner_claim_id"], period["partner_batch"]) == ("SA", nights_batch(tmp_path / "out2"))


def nights_batch(out: Path) -> str:
    return outputs_of(out)["summary"]["batch_id"]


def test_a_per_shard_site_keeps_each_patient_s_lines_in_one_shard_file(four_files):
    db = four_files.db
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


def test_a_shard_file_gone_from_a_site_with_batches_stops_every_writer_instead_of_coming_back_empty(
        four_files, exports, tmp_path, monkeypatch):
    """Made again empty, a lost shard file would drop its patients from history and from a reshard for good:
    tonight's findings would halve, and nothing would say why."""
    monkeypatch.setenv("CLAIMSCRUB_SECRET", SECRET["CLAIMSCRUB_SECRET"])
    site = tmp_path / "site"
    site.mkdir()
    for path in four_files.folder.glob("claimscrub*.duckdb"):
        shutil.copyfile(path, site / path.name)
    db, lost = site / four_files.db.name, site / f"{four_files.db.stem}.shard-2-of-4.duckdb"
    lost.unlink()
    said = (f"claimscrub: {lost}: this shard file of the site is missing, and the site holds 2 batches: restore "
            "it from a backup; claimscrub does not make it again empty\n")
    run = scrub([exports[1]], site / "tonight", db, "--history")
    assert (run.exit_code, run.stderr) == (1, said)
    assert not (site / "tonight").exists() and not lost.exists()
    reshard = db_command("reshard", "--db", str(db), "--shards", "1")
    assert (reshard.exit_code, reshard.stderr) == (1, said)
    info = db_command("info", "--db", str(db))
    assert f"file: {lost} (shard 2 of 4: claim lines, prices, findings) (MISSING: restore it)" in info.stdout


def test_a_patient_s_shard_is_the_remainder_of_the_md5_number_of_the_patient_id():
    # The shard stored with a line must not move between versions: sites made before keep their patients'
    # lines in the files they are in. Worked out from the number's halves, it is the same remainder.
    from assets.shards import shard_sql

    with duckdb.connect() as con:
        con.execute("create table ids as select 'PT-' || i::varchar as patient_id from range(20000) r(i) "
                    "union all select null union all select '' union all select 'é-ü 9'")
        for shards in [2, 3, 4, 5, 7, 16, 100, 256]:
            moved = con.execute(f"""select count(*) from ids where {shard_sql(shards)}
                                    <> coalesce(md5_number(patient_id) % {shards}, 0)::smallint""").fetchall()
            assert moved == [(0,)], shards


def test_init_refuses_a_database_that_holds_claims_and_a_layout_it_does_not_know(one_shard, tmp_path):
    db = one_shard.db
    refused = db_command("init", "--db", str(db), "--shards", "4")
    assert refused.exit_code == 2 and "db reshard" in refused.stderr
    unknown = db_command("init", "--db", str(tmp_path / "new.duckdb"), "--shards", "4", "--layout", "striped")
    assert unknown.exit_code == 2 and "striped" in unknown.stderr
    # A per-shard site made a moment ago, no claims yet: made again alike, it stays; made otherwise, it would
    # leave its shard files behind, so it is refused, and the files are where they were.
    site = tmp_path / "site.duckdb"
    assert db_command("init", "--db", str(site), "--shards", "4", "--layout", "per-shard").exit_code == 0
    files = sorted(p.name for p in tmp_path.glob("site.shard-*"))
    assert files == [f"site.shard-{k}-of-4.duckdb" for k in range(4)]
    assert db_command("init", "--db", str(site), "--shards", "4", "--layout", "per-shard").exit_code == 0
    other = db_command("init", "--db", str(site), "--shards", "2")
    assert other.exit_code == 2
    assert other.stderr == (f"claimscrub: {site} is set up already (4 shards, per-shard layout, its shard files "
                            "made): `claimscrub db reshard` changes it\n")
    assert sorted(p.name for p in tmp_path.glob("site.shard-*")) == files
    assert "shards: 4\nlayout: per-shard" in db_command("info", "--db", str(site)).stdout


@pytest.mark.slow  # two scrubs of four shards, two reshards and a scrub
def test_reshard_moves_every_row_and_the_next_run_judges_alike(four_in_one_file, one_shard, exports, tmp_path,
                                                              monkeypatch):
    monkeypatch.setenv("CLAIMSCRUB_SECRET", SECRET["CLAIMSCRUB_SECRET"])
    db = four_in_one_file.db
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
    # From shard files to shard files: the new files are written, the old ones left whole until they go.
    regrouped = db_command("reshard", "--db", str(copy), "--shards", "2", "--layout", "per-shard")
    assert regrouped.exit_code == 0, regrouped.stderr
    assert sorted(p.name for p in site.glob("*.shard-*")) == [f"claimscrub.shard-{k}-of-2.duckdb" for k in range(2)]
    rows = 0
    for file in site.glob("*.shard-*"):
        with duckdb.connect(str(file), read_only=True) as con:
            rows += con.execute("select count(*) from raw_claim_rows").fetchall()[0][0]
    assert rows == stored
    again = scrub([exports[1]], tmp_path / "again", copy, "--history")
    assert again.exit_code == 0, again.stderr
    assert outputs_of(tmp_path / "again") == outputs_of(one_shard.folder / "tonight")
    back = db_command("reshard", "--db", str(copy), "--shards", "1", "--layout", "single")
    assert back.exit_code == 0, back.stderr
    assert not list(site.glob("*.shard-*"))
    with duckdb.connect(str(copy), read_only=True) as con:
        assert con.execute("select count(*) from raw_claim_rows").fetchall()[0][0] == stored


def test_a_reshard_that_cannot_write_its_files_moves_nothing_and_says_so_in_one_line(tmp_path, one_shard):
    db = tmp_path / "claimscrub.duckdb"
    shutil.copyfile(one_shard.db, db)
    with duckdb.connect(str(db), read_only=True) as con:
        stored = con.execute("select count(*) from raw_claim_rows").fetchall()[0][0]
    (tmp_path / "claimscrub.shard-1-of-2.duckdb").mkdir()  # where the second new file would go
    failed = db_command("reshard", "--db", str(db), "--shards", "2", "--layout", "per-shard")
    assert failed.exit_code == 1
    [line] = failed.stderr.strip().splitlines()
    assert line.startswith(f"claimscrub: {db}: reshard to 2 shards") and "failed, nothing moved" in line
    assert not (tmp_path / "claimscrub.shard-0-of-2.duckdb").exists()
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from raw_claim_rows").fetchall()[0][0] == stored
    assert "shards: 1\nlayout: single\n" in db_command("info", "--db", str(db)).stdout


def test_the_steps_that_write_the_main_file_share_one_pool_that_a_workers_run_limits_to_one(tmp_path):
    """Dagster's concurrency pools: every step that opens the main file through the resource is in
    MAIN_FILE_POOL; the shards' judge steps, each writing its own file, are in none; the instance of a
    `--workers` run gives the pool a limit of one step at a time, and its executor launches one of them at a
    time by their tag (so that none waits on the pool's backoff)."""
    from pipelines.database import MAIN_FILE_POOL, MAIN_FILE_TAG
    from pipelines.definitions import defs
    from pipelines.parallel import parallel_scrub_job, run_instance

    jobs = [parallel_scrub_job(), defs.resolve_job_def("payer_feedback_job"), defs.resolve_job_def("rejudge_job")]
    ops = {op.name: op for job in jobs for op in job.graph.iterate_op_defs()}
    writers = {name for name, op in ops.items() if "duckdb" in op.required_resource_keys}
    assert {"reference_tables", "raw_claim_rows", "validated_claims", "priced_lines", "plan_shards", "scrub_report",
            "remittances", "payer_feedback", "rejudge_impact"} <= writers
    assert {name: ops[name].pool for name in writers} == dict.fromkeys(writers, MAIN_FILE_POOL)
    assert ops["judge_shard"].pool is None and ops["collect_findings"].pool is None
    assert {name: ops[name].tags.items() >= MAIN_FILE_TAG.items() for name in writers} == dict.fromkeys(writers, True)
    assert not MAIN_FILE_TAG.items() & ops["judge_shard"].tags.items()
    with run_instance(str(tmp_path)) as instance:
        assert instance.event_log_storage.supports_global_concurrency_limits
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1


# The command in a process of its own that stops itself with SIGTERM (a service manager stopping it) once the
# first new shard file holds its rows.
TERMINATED_RESHARD = """
import os, signal, sys
import assets.shards
from pipelines.cli import main
copy = assets.shards._copy_shard
def copy_then_stop(*args):
    copy(*args)
    os.kill(os.getpid(), signal.SIGTERM)
assets.shards._copy_shard = copy_then_stop
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow  # a reshard in a process of its own
def test_a_reshard_stopped_by_sigterm_leaves_no_new_shard_file(four_in_one_file, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    copy = site / "claimscrub.duckdb"
    shutil.copyfile(four_in_one_file.db, copy)
    stopped = subprocess.run([sys.executable, "-c", TERMINATED_RESHARD, "db", "reshard", "--db", str(copy),
                              "--shards", "3", "--layout", "per-shard"], capture_output=True, text=True,
                             check=False, cwd=Path(__file__).resolve().parent.parent)
    assert stopped.returncode == 130, stopped.stderr
    assert stopped.stderr == "claimscrub: interrupted: stopped before it finished\n"
    assert list(site.glob("*.shard-*")) == []
    info = db_command("info", "--db", str(copy))
    assert info.stdout.splitlines()[1:3] == ["shards: 4", "layout: single"]


def test_reshard_help_gives_one_default_for_the_layout():
    """It said both "single ... (default)" and "Default: the current layout"."""
    text = " ".join(CliRunner().invoke(main, ["db", "reshard", "--help"]).output.split())
    assert "Default: the current layout." in text and "(default)" not in text


@pytest.mark.slow  # a process holding a shard file for a few seconds
def test_a_shard_file_another_process_lets_go_of_a_moment_later_is_waited_for(tmp_path, reference_db):
    """In a --workers run at 2M lines, the price step started while the process of the step before was still
    letting go of shard 0: `priced_lines failed: ... Could not set lock on file ...shard-0-of-4.duckdb`."""
    from assets.shards import Layout, attach_shard, shard_file

    db = tmp_path / "claimscrub.duckdb"
    shutil.copyfile(reference_db, db)
    assert db_command("init", "--db", str(db), "--shards", "2", "--layout", "per-shard").exit_code == 0
    con = duckdb.connect(str(db))
    attach_shard(con, db, 0, Layout(2, "per-shard"))  # the shard file made, as a first scrub makes it
    con.close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('held', "
         "flush=True); time.sleep(3); con.close()", str(shard_file(db, 0, 2))], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        con = duckdb.connect(str(db))
        assert attach_shard(con, db, 0, Layout(2, "per-shard")) in {row[0] for row in con.execute(
            "select database_name from duckdb_databases()").fetchall()}
        con.close()
    finally:
        holder.wait(timeout=30)
