"""Two scrubs against one database: the second waits for the first and then proceeds, or gives up with
one plain line; nothing is corrupted and nothing is counted twice. Runs the real command as processes."""

import os
import subprocess
from pathlib import Path

import duckdb
import pytest

from .helpers import command, finish, outputs_of

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "claims_sample.csv"


def _start(tmp_path: Path, out: str, db: Path, timeout: str = "120") -> subprocess.Popen:
    env = {**os.environ, "CLAIMSCRUB_LOCK_TIMEOUT": timeout}
    return subprocess.Popen(command([SAMPLE], tmp_path / out, db), cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _batch_counts(db: Path) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(
            """select (select count(*) from raw_claim_rows), (select count(*) from claim_lines),
                      (select count(*) from claim_quarantine), (select count(*) from batches)""").fetchall()


def test_a_scrub_waits_for_a_database_in_use_and_then_completes(tmp_path, db_path):
    holder = duckdb.connect(str(db_path))
    scrub = _start(tmp_path, "out", db_path)
    try:
        notice = scrub.stderr.readline()
        assert "is in use by another process; waiting up to 120 s" in notice
        assert scrub.poll() is None, "the scrub waits; it does not fail"
    finally:
        holder.close()
    stdout, stderr = finish(scrub)
    assert scrub.returncode == 0, stderr
    assert "Scrubbed 286 lines from 290 rows" in stdout
    assert _batch_counts(db_path) == [(290, 286, 4, 1)]


def test_a_scrub_that_cannot_get_the_database_exits_1_with_one_plain_line(tmp_path, db_path):
    with duckdb.connect(str(db_path)):
        scrub = _start(tmp_path, "out", db_path, timeout="1")
        stdout, stderr = scrub.communicate(timeout=300)
    assert scrub.returncode == 1
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("claimscrub: database ") and str(db_path) in last
    assert "gave up after 1 s" in last and "Traceback" not in stderr
    assert not (tmp_path / "out").exists()


def test_two_scrubs_at_once_both_complete_and_nothing_is_counted_twice(tmp_path, db_path):
    first, second = _start(tmp_path, "first", db_path), _start(tmp_path, "second", db_path)
    for scrub in (first, second):
        _, stderr = scrub.communicate(timeout=300)
        assert scrub.returncode == 0, stderr
    assert outputs_of(tmp_path / "first") == outputs_of(tmp_path / "second")
    assert outputs_of(tmp_path / "first")["summary"]["rows_read"] == 290
    # The same files are the same batch: the second run replaced the first, it did not add to it.
    assert _batch_counts(db_path) == [(290, 286, 4, 1)]
