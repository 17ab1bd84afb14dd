"""One writer at a time on a site's database, whoever writes: a run the Dagster daemon launches holds the file
from its first step to its last, as `claimscrub scrub` does, and every command that writes (reference, remit,
feedback, review import) takes the same hold: it waits for another's, says so once on standard error, and past
CLAIMSCRUB_LOCK_TIMEOUT exits 1 with one line, having changed nothing. `claimscrub scrub --workers N` keeps the
site lock from its first step to its last, though no process holds the database between two steps. Runs the real
command and the nightly job as processes."""

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.flow import ALL_ASSETS
from pipelines.nightly import nightly_scrub
from pipelines.resources import run_resources
from reference.assets import PER_RUN_CHECKS

from .helpers import command, finish, scrub, write_csv
from .test_nightly import NIGHT, Sensor, _register, drop, snapshot
from .test_nightly import line as nightly_line
from .test_review import REPORT, decide
from .test_review import line as review_line
from .x12_files import write_835

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
NIGHTLY_RUN = ROOT / "tests" / "nightly_run.py"
MUE_2026 = ROOT / "tests" / "fixtures" / "reference" / "MCR_MUE_PractitionerServices_Eff_07-01-2026_excerpt.csv"
WAIT_AT_MOST = 120  # seconds a test waits for a process to reach the point it looks for


def _env(site: dict[str, str], timeout: str) -> dict[str, str]:
    """The environment of a process of the site: this checkout's code first (the interpreter's own
    installation may point at another), the site's folders, and how long a writer waits."""
    env = {key: value for key, value in os.environ.items() if key not in ("CLAIMSCRUB_DB", "CLAIMSCRUB_SECRET")}
    return {**env, **site, "PYTHONPATH": str(ROOT), "CLAIMSCRUB_LOCK_TIMEOUT": timeout}


def _waiting(db: Path, seconds: int) -> str:
    return f"claimscrub: database {db} is in use by another process; waiting up to {seconds} s"


def _gave_up(db: Path, seconds: int) -> str:
    return (f"claimscrub: database {db} is in use by another process; gave up after {seconds} s "
            "(CLAIMSCRUB_LOCK_TIMEOUT sets how long to wait)")


def fingerprint(db: Path) -> dict[str, tuple]:
    """Every table of the database: its rows counted and hashed, whatever it holds."""
    with duckdb.connect(str(db), read_only=True) as con:
        tables = [name for (name,) in con.execute(
            "select table_name from duckdb_tables() where database_name = current_database() order by 1"
        ).fetchall()]
        return {name: con.execute(f'select count(*), sum(hash(t)) from "{name}" t').fetchone() for name in tables}


def _copy(db: Path, folder: Path) -> Path:
    copy = folder / "db" / "claimscrub.duckdb"
    copy.parent.mkdir(parents=True)
    shutil.copyfile(db, copy)
    return copy


def _until(found, what: str) -> None:
    deadline = time.monotonic() + WAIT_AT_MOST
    while not found():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


# --- The nightly run, launched as the daemon launches it, and a scrub from the command line at the same time.

# Tonight's export in the inbox, and the walk-in export a biller scrubs by hand during the nightly run: the
# same patient, so that the scrub (with history) judges its line against the nightly batch's.
NIGHTLY_ROWS = [nightly_line("N1", "76120", patient="PX"), nightly_line("N2", "76000", patient="PY")]
WALK_IN_ROWS = [nightly_line("W1", "76120", modifiers="26", npi="5550001114", patient="PX")]


@dataclass
class Night:
    site: dict[str, str]
    reference_db: Path
    request: Path  # the nightly schedule's run request, as the daemon's run worker gets it
    walk_in: Path
    expected: dict  # the claim tables after the nightly run and then the scrub, one after the other
    db: Path
    nightly: subprocess.CompletedProcess
    by_hand: subprocess.CompletedProcess
    waited: str  # the scrub's first line on standard error, read while the nightly run was paused


def _request_file(request: dg.RunRequest, path: Path) -> Path:
    path.write_text(json.dumps({"run_config": request.run_config, "tags": dict(request.tags)}))
    return path


def _start_nightly(request: Path, env: dict, folder: Path) -> subprocess.Popen:
    # Its log goes to files: Dagster's debug lines would fill a pipe nobody reads while the run goes on.
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "stdout", "w") as out, open(folder / "stderr", "w") as err:
        return subprocess.Popen([sys.executable, str(NIGHTLY_RUN), str(request)], cwd=folder, env=env,
                                stdout=out, stderr=err)


def _finished(process: subprocess.Popen, folder: Path) -> subprocess.CompletedProcess:
    process.wait(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, (folder / "stdout").read_text(),
                                       (folder / "stderr").read_text())


@pytest.fixture(scope="module")
def night(tmp_path_factory, reference_db) -> Night:
    """Register tonight's export and let the schedule ask for the nightly run; give the claim tables of that
    run followed by the walk-in scrub on a copy of the database; then start both at once on the site's database:
    the nightly run in a process of its own, paused between two steps, and the scrub while it is paused."""
    work = tmp_path_factory.mktemp("night")
    site = {"CLAIMSCRUB_HOME": str(work / "home"), "CLAIMSCRUB_INBOX": str(work / "inbox"),
            "CLAIMSCRUB_REPORTS": str(work / "reports")}
    (work / "inbox").mkdir()
    walk_in = write_csv(work / "walk-in.csv", WALK_IN_ROWS)
    with pytest.MonkeyPatch.context() as env:
        for key, value in site.items():
            env.setenv(key, value)
        env.delenv("CLAIMSCRUB_SECRET", raising=False)
        with dg.instance_for_test() as instance:
            sensor = Sensor(instance)
            drop(work / "inbox", "tonight.csv", NIGHTLY_ROWS)
            _register(instance, sensor.tick())
            request = nightly_scrub(dg.build_schedule_context(instance=instance, scheduled_execution_time=NIGHT))
        assert isinstance(request, dg.RunRequest)

        one_after_the_other = _copy(reference_db, work / "one-after-the-other")
        nightly = dg.materialize([*ALL_ASSETS, *PER_RUN_CHECKS], run_config=request.run_config, tags=request.tags,
                                 resources=run_resources(str(one_after_the_other)))
        assert nightly.success
        by_hand = scrub([walk_in], work / "by-hand-one-after", one_after_the_other, "--history")
        assert by_hand.exit_code == 0, by_hand.stderr
        expected = snapshot(one_after_the_other)

    db = _copy(reference_db, work / "site")
    request_file = _request_file(request, work / "request.json")
    paused = work / "nightly" / "paused"
    # Someone holds the database when the nightly run starts: the run waits for it first, and says so.
    holder = duckdb.connect(str(db))
    try:
        running = _start_nightly(request_file, {**_env({**site, "CLAIMSCRUB_DB": str(db)}, "120"),
                                                "PAUSE_BETWEEN_STEPS": str(paused)}, work / "nightly")
        _until(lambda: "waiting up to" in (work / "nightly" / "stderr").read_text() or running.poll() is not None,
               "the nightly run to say it waits")
        nightly_waited = running.poll() is None
    finally:
        holder.close()
    try:
        _until(lambda: paused.exists() or running.poll() is not None, "the nightly run to pause between steps")
        assert running.poll() is None, (work / "nightly" / "stderr").read_text()
        scrubbing = subprocess.Popen(command([walk_in], work / "by-hand", db, "--history"), cwd=work,
                                     env=_env(site, "120"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        waited = scrubbing.stderr.readline()
        still_waiting = scrubbing.poll() is None
    finally:
        paused.with_name("paused.go").touch()
    stdout, stderr = finish(scrubbing)
    nightly_done = _finished(running, work / "nightly")
    assert nightly_waited, "the nightly run waits for the database; it does not fail"
    assert still_waiting, "the scrub waits for the nightly run; it does not fail"
    return Night(site, reference_db, request_file, walk_in, expected, db, nightly_done,
                 subprocess.CompletedProcess(scrubbing.args, scrubbing.returncode, stdout, waited + stderr), waited)


def test_a_scrub_started_during_the_nightly_run_waits_for_it_and_says_so_once(night):
    assert night.waited == _waiting(night.db, 120) + "\n"
    assert night.by_hand.stderr.count("waiting up to") == 1, night.by_hand.stderr


def test_the_nightly_run_and_the_scrub_both_complete_with_the_tables_of_one_after_the_other(night):
    assert night.nightly.returncode == 0, night.nightly.stderr
    assert json.loads(night.nightly.stdout.splitlines()[-1])["success"] is True
    assert night.by_hand.returncode == 0, night.by_hand.stderr
    assert "Scrubbed 1 line from 1 row" in night.by_hand.stdout
    assert snapshot(night.db) == night.expected
    # The walk-in line was judged against the nightly batch: the scrub ran after the whole nightly run.
    assert any("DUP_COMPONENT" in row for row in night.expected["line_flags"])


def _request_writing_to(night: Night, out_dir: Path, path: Path) -> Path:
    request = json.loads(night.request.read_text())
    for op in request["run_config"]["ops"].values():
        op["config"]["out_dir"] = str(out_dir)
    path.write_text(json.dumps(request))
    return path


def test_a_nightly_run_waits_for_a_held_database_saying_so_on_standard_error_and_in_its_run_log(night):
    done = night.nightly
    said = [line for line in done.stderr.splitlines() if line.startswith("claimscrub: ")]
    assert len(said) == 1 and said[0].startswith(_waiting(night.db, 120) + " before run ")
    assert said[0].endswith(" of scrub_job starts")
    (logged,) = json.loads(done.stdout.splitlines()[-1])["warnings"]
    assert logged == said[0].removeprefix("claimscrub: ")
    batch = json.loads(night.request.read_text())["tags"]["claimscrub/batch"]
    assert (Path(night.site["CLAIMSCRUB_REPORTS"]) / batch / "summary.json").exists()


def test_a_nightly_run_that_cannot_get_the_database_fails_before_its_first_step_and_writes_nothing(night,
                                                                                                   tmp_path):
    db = _copy(night.reference_db, tmp_path)
    before = fingerprint(db)
    request = _request_writing_to(night, tmp_path / "reports", tmp_path / "request.json")
    with duckdb.connect(str(db)):
        done = _finished(_start_nightly(request, _env({**night.site, "CLAIMSCRUB_DB": str(db)}, "1"),
                                        tmp_path / "run"), tmp_path / "run")
    assert done.returncode == 1
    assert json.loads(done.stdout.splitlines()[-1])["success"] is False
    assert f"DatabaseBusyError: {_gave_up(db, 1).removeprefix('claimscrub: ')}" in done.stderr
    assert "STEP_START" not in done.stderr
    assert fingerprint(db) == before
    assert not (tmp_path / "reports").exists()


# --- Every other writer: the reference commands, remit, feedback and review import.

SCRUBBED = [review_line("PTP-A", 1, "PAT-A", "92611"), review_line("PTP-A", 2, "PAT-A", "76120"),
            review_line("MUE-1", 1, "PAT-M", "76120", units=2)]


@dataclass
class Site:
    env: dict[str, str]
    db: Path  # claims scrubbed, their first 835 loaded
    decided: Path  # the run's workbook with one decision typed in
    second_835: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory, reference_db) -> Site:
    from click.testing import CliRunner

    from pipelines.cli import main

    work = tmp_path_factory.mktemp("writers")
    env = {"CLAIMSCRUB_HOME": str(work / "home")}
    db = _copy(reference_db, work)
    first_835 = write_835(work / "first.835", SCRUBBED, {("MUE-1", 1): [("CO", "151")]})
    second_835 = write_835(work / "second.835", SCRUBBED, {("PTP-A", 2): [("CO", "97")]})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLAIMSCRUB_HOME", env["CLAIMSCRUB_HOME"])
        patch.delenv("CLAIMSCRUB_SECRET", raising=False)
        run = scrub([write_csv(work / "claims.csv", SCRUBBED)], work / "out", db)
        assert run.exit_code == 0, run.stderr
        remitted = CliRunner().invoke(main, ["remit", str(first_835), "--db", str(db)])
        assert remitted.exit_code == 0, remitted.stderr
    decided = decide(run.out_dir / REPORT, work / "decided.xlsx",
                     {("PTP-A", 2, "PTP_NO_BYPASS"): ("dismiss", "separate sessions", "ann", "this finding")})
    return Site(env, db, decided, second_835)


# Each writer's arguments (but --db), and what it says on standard output when it has done its work.
WRITERS = {
    "reference load": (lambda site, out: ["reference", "load", str(MUE_2026)], "MUE 2026Q3: loaded"),
    "remit": (lambda site, out: ["remit", str(site.second_835)], "second.835: loaded"),
    "review import": (lambda site, out: ["review", "import", str(site.decided)], "1 decision imported"),
    "feedback": (lambda site, out: ["feedback", "--out", str(out)], "Feedback: "),
    # Shows the tables, and may load bundled releases a database lacks: it holds the file as a writer does.
    "reference status": (lambda site, out: ["reference", "status"], "Reference tables as of"),
}


def _writer(site: Site, writer: str, db: Path, out: Path) -> list[str]:
    arguments, _ = WRITERS[writer]
    return [sys.executable, "-m", "pipelines.cli", *arguments(site, out), "--db", str(db)]


@dataclass
class Attempt:
    """What a writer did against a database another process held: its first line on standard error, read
    while the database was still held, whether it was still waiting then, and how it ended."""

    db: Path
    notice: str
    waited: bool
    done: subprocess.CompletedProcess
    before: dict | None = None


def _attempts(site: Site, folder: Path, timeout: str) -> dict[str, Attempt]:
    """Every writer at once, each against a copy of the site's database that this process holds; with a
    timeout of 120 s the copies are let go once every writer has said it waits."""
    holders, running, attempts = [], {}, {}
    try:
        for writer in WRITERS:
            db = _copy(site.db, folder / writer.replace(" ", "-"))
            before = fingerprint(db) if timeout == "1" else None
            holders.append(duckdb.connect(str(db)))
            process = subprocess.Popen(_writer(site, writer, db, db.parent / "out"), cwd=db.parent,
                                       env=_env(site.env, timeout), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)
            running[writer] = (db, before, process)
        if timeout == "1":
            ended = {writer: process.communicate(timeout=WAIT_AT_MOST)
                     for writer, (_, _, process) in running.items()}
            notices = {writer: err.splitlines(keepends=True)[0] if err else "" for writer, (_, err) in ended.items()}
            waiting = dict.fromkeys(running, False)
        else:
            notices = {writer: process.stderr.readline() for writer, (_, _, process) in running.items()}
            waiting = {writer: process.poll() is None for writer, (_, _, process) in running.items()}
    finally:
        for holder in holders:
            holder.close()
    for writer, (db, before, process) in running.items():
        if timeout == "1":
            stdout, stderr = ended[writer]
        else:
            stdout, stderr = finish(process, WAIT_AT_MOST)
            stderr = notices[writer] + stderr
        attempts[writer] = Attempt(db, notices[writer], waiting[writer],
                                   subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr),
                                   before)
    return attempts


@pytest.fixture(scope="module")
def waited(site, tmp_path_factory) -> dict[str, Attempt]:
    return _attempts(site, tmp_path_factory.mktemp("waited"), "120")


@pytest.fixture(scope="module")
def gave_up(site, tmp_path_factory) -> dict[str, Attempt]:
    return _attempts(site, tmp_path_factory.mktemp("gave-up"), "1")


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_writer_waits_for_a_held_database_says_so_once_and_then_does_its_work(waited, writer):
    attempt = waited[writer]
    assert attempt.waited, "the writer waits; it does not fail"
    assert attempt.notice == _waiting(attempt.db, 120) + "\n"
    assert attempt.done.returncode == 0, attempt.done.stderr
    assert attempt.done.stderr.count("waiting up to") == 1, attempt.done.stderr
    assert WRITERS[writer][1] in attempt.done.stdout


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_writer_that_cannot_get_the_database_exits_1_with_one_line_and_changes_nothing(gave_up, writer):
    attempt = gave_up[writer]
    assert attempt.done.returncode == 1
    assert attempt.done.stderr.splitlines() == [_waiting(attempt.db, 1), _gave_up(attempt.db, 1)]
    assert attempt.done.stdout == ""
    assert fingerprint(attempt.db) == attempt.before
    assert not (attempt.db.parent / "out").exists()


# --- `claimscrub scrub --workers N`: its steps' processes open the files one after another, each for its own
# length; the command holds the site lock from the first step to the last, so that no writer comes in between.

STEPS_PAUSED = ROOT / "tests" / "steps_paused.py"
# One line in each of the two shards' files (patients PA and PB hash to shards 0 and 1 of 2).
PARALLEL_ROWS = [nightly_line("P1", "76120", patient="PA"), nightly_line("P2", "76000", patient="PB")]


@dataclass
class BetweenSteps:
    db: Path
    out: Path
    scrub: subprocess.CompletedProcess  # the `--workers 2` run
    load: Attempt  # `reference load`, started while the run was paused between two steps
    nightly: Attempt  # the nightly run as the daemon launches it, started then too
    second: subprocess.CompletedProcess  # another scrub of the database, started then, with a 1 s timeout
    before: dict  # the main file while the run was paused, before the second scrub
    after: dict  # and after the second scrub gave up


@pytest.fixture(scope="module")
def between_steps(night, tmp_path_factory) -> BetweenSteps:
    """A per-shard site scrubbed with `--workers 2`, its first shard's judge paused before it opens any file (no
    process then holds the main file); while it is paused, three writers start: `reference load` and the nightly
    run, which may wait, and a second scrub, which may not. Then the run goes on and every writer finishes."""
    from click.testing import CliRunner

    from pipelines.cli import main

    work = tmp_path_factory.mktemp("between-steps")
    db = _copy(night.reference_db, work)
    made = CliRunner().invoke(main, ["db", "init", "--db", str(db), "--shards", "2", "--layout", "per-shard"])
    assert made.exit_code == 0, made.stderr
    export = write_csv(work / "claims.csv", PARALLEL_ROWS)
    paused = work / "paused"
    (work / "run").mkdir()
    with open(work / "run" / "stdout", "w") as out, open(work / "run" / "stderr", "w") as err:
        # 30 s: were its steps to wait for the lock their command holds, the run would fail after it.
        running = subprocess.Popen([sys.executable, str(STEPS_PAUSED), "scrub", str(export), "--out",
                                    str(work / "out"), "--db", str(db), "--workers", "2", "--log",
                                    str(work / "run" / "progress.log")], cwd=work,
                                   env={**_env(night.site, "30"), "PAUSE_JUDGE": str(paused)}, stdout=out, stderr=err)
    request = _request_writing_to(night, work / "nightly-reports", work / "request.json")
    try:
        _until(lambda: paused.exists() or running.poll() is not None, "the run to pause between two steps")
        assert running.poll() is None, (work / "run" / "stderr").read_text()
        before = fingerprint(db)
        loading = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "reference", "load", str(MUE_2026),
                                    "--db", str(db)], cwd=work, env=_env(night.site, "120"),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        nightly = _start_nightly(request, _env({**night.site, "CLAIMSCRUB_DB": str(db)}, "120"), work / "nightly")
        second = subprocess.run(command([export], work / "second", db), cwd=work, env=_env(night.site, "1"),
                                capture_output=True, text=True, timeout=WAIT_AT_MOST)
        after = fingerprint(db)
        load_notice = loading.stderr.readline()
        load_waited = loading.poll() is None
        _until(lambda: "waiting up to" in (work / "nightly" / "stderr").read_text() or nightly.poll() is not None,
               "the nightly run to say it waits")
        nightly_waited = nightly.poll() is None
    finally:
        paused.with_name("paused.go").touch()
    scrubbed = _finished(running, work / "run")
    stdout, stderr = finish(loading, WAIT_AT_MOST)
    load = Attempt(db, load_notice, load_waited,
                   subprocess.CompletedProcess(loading.args, loading.returncode, stdout, load_notice + stderr))
    night_done = _finished(nightly, work / "nightly")
    nightly_notice = next((line for line in night_done.stderr.splitlines() if line.startswith("claimscrub: ")), "")
    return BetweenSteps(db, work / "out", scrubbed, load, Attempt(db, nightly_notice, nightly_waited, night_done),
                        second, before, after)


def test_a_writer_started_between_two_steps_of_a_workers_run_waits_for_the_whole_run_and_says_so(between_steps):
    load = between_steps.load
    assert load.waited, "the writer waits for the run; it does not come in between two of its steps"
    assert load.notice == _waiting(between_steps.db, 120) + "\n"
    assert load.done.returncode == 0, load.done.stderr
    assert load.done.stderr.count("waiting up to") == 1, load.done.stderr
    assert "MUE 2026Q3: loaded" in load.done.stdout
    # The run wrote its report before the release was loaded; the database has the release now.
    summary = json.loads((between_steps.out / "summary.json").read_text())
    newest = {row["table"]: row["newest_release"] for row in summary["reference_coverage"]}
    assert newest["MUE"] == "MUE 2026Q2"
    with duckdb.connect(str(between_steps.db), read_only=True) as con:
        assert con.execute("select count(*) from ref_releases where release_id = 'MUE 2026Q3'").fetchone()[0] > 0


def test_a_nightly_run_launched_during_a_workers_run_waits_for_it_and_both_complete(between_steps):
    nightly = between_steps.nightly
    assert nightly.waited, "the nightly run waits for the scrub's run; it does not fail"
    said = [line for line in nightly.done.stderr.splitlines() if line.startswith("claimscrub: ")]
    assert said == [nightly.notice], nightly.done.stderr
    assert nightly.notice.startswith(_waiting(between_steps.db, 120) + " before run ")
    assert nightly.done.returncode == 0, nightly.done.stderr
    assert json.loads(nightly.done.stdout.splitlines()[-1])["success"] is True
    with duckdb.connect(str(between_steps.db), read_only=True) as con:
        batches = [row[0] for row in con.execute("select batch_id from run_history order by batch_id").fetchall()]
    assert len(batches) == 2 and any(batch.startswith("nightly-") for batch in batches), batches


def test_a_writer_that_cannot_get_the_lock_of_a_workers_run_exits_1_with_one_line_and_changes_nothing(
        between_steps):
    second = between_steps.second
    assert second.returncode == 1
    assert second.stderr.splitlines() == [_waiting(between_steps.db, 1), _gave_up(between_steps.db, 1)]
    assert second.stdout == ""
    assert between_steps.after == between_steps.before
    assert not (between_steps.out.parent / "second").exists()


def test_the_steps_of_a_workers_run_do_not_wait_for_the_lock_their_command_holds(between_steps):
    scrubbed = between_steps.scrub
    assert scrubbed.returncode == 0, scrubbed.stderr
    assert "Scrubbed 2 lines from 2 rows" in scrubbed.stdout
    assert "waiting up to" not in scrubbed.stderr
    # Both shards were judged, each in its own step and file.
    summary = json.loads((between_steps.out / "summary.json").read_text())
    assert summary["lines_scrubbed"] == 2


def test_a_workers_run_keeps_dagster_off_standard_error_and_logs_each_step_s_progress(between_steps):
    scrubbed = between_steps.scrub
    assert scrubbed.returncode == 0, scrubbed.stderr
    assert "dagster" not in scrubbed.stderr and "DEBUG" not in scrubbed.stderr, scrubbed.stderr
    log = (between_steps.out.parent / "run" / "progress.log").read_text()
    for stage in ["read", "validate", "price", "judge shard 1 of 2", "judge shard 2 of 2", "write"]:
        assert f"claimscrub {stage}: done" in log, log
