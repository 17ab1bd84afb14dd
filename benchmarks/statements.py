"""Time the judge's and the write stage's statements one by one, on a copy of a database that holds a batch
just scrubbed (one file; `python -m benchmarks.bench --lines N --keep` leaves one in `.bench/run-N/`).

    python -m benchmarks.statements .bench/run-2000000/claimscrub.duckdb --stage write --threads 1
    python -m benchmarks.statements .bench/run-10000000/claimscrub.duckdb --stage judge --threads 2

Each line: the statement's wall and process CPU seconds, summed over its runs (the judge runs its part
statements once per part), longest first. The write stage's main connection runs on one of the two threads
while lines.csv takes the other: `--threads 1` times its statements as the run does. `--profile TEXT` prints
DuckDB's operator timings of the first statement that starts with TEXT.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pipelines  # noqa: F401  (the allocator settings of every claimscrub process)
import duckdb

from assets import outputs, scrub, worklist
from assets.decisions import DEFAULT_STANDING_DAYS, prepare_batch_decisions
from assets.report_data import carc_texts, mark_findings
from assets.rules import register_rules
from pipelines.database import CONNECTION_CONFIG, quiet
from pipelines.settings import run_day


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Timed:
    """A connection whose statements are timed, keyed by their first words."""

    def __init__(self, con, profile: str | None) -> None:
        self.con, self.profile = con, profile
        self.totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
        self.profiled = None

    def __getattr__(self, name):
        return getattr(self.con, name)

    def execute(self, sql: str, *args):
        profiling = self.profile and self.profiled is None and sql.lstrip().startswith(self.profile)
        if profiling:
            self.profiled = Path(tempfile.mkstemp(suffix=".json")[1])
            self.con.execute(f"pragma enable_profiling = 'json'; pragma profiling_output = '{self.profiled}'")
        wall, cpu = time.monotonic(), _cpu()
        result = self.con.execute(sql, *args)
        key = " ".join(sql.split())[:70]
        total = self.totals[key]
        total[0] += time.monotonic() - wall
        total[1] += _cpu() - cpu
        total[2] += 1
        if profiling:
            self.con.execute("pragma disable_profiling")
        return result

    def report(self, top: int) -> None:
        for key, (wall, cpu, runs) in sorted(self.totals.items(), key=lambda item: -item[1][0])[:top]:
            print(f"{wall:7.2f} s wall {cpu:7.2f} s CPU  x{runs:<3d} {key}")
        if self.profiled:
            tree = json.loads(self.profiled.read_text())["operator"][0]
            _show(tree)
            self.profiled.unlink()


def _show(node: dict, depth: int = 0) -> None:
    seconds = node.get("timing", 0)
    if seconds >= 0.03 or depth < 2:
        print(f"{'  ' * depth}{node.get('name')} {seconds:.2f} s, {node.get('intermediate_rows')} rows "
              f"{str(node.get('extra_info', ''))[:160]}")
    for child in node.get("children", []):
        _show(child, depth + 1)


def write_stage(con: Timed, batch: str) -> None:
    """The main connection's share of the write stage (assets/outputs.py, assets/worklist.py), the sheets
    aside."""
    register_rules(con.con, carc_texts(con.con)[1])
    con.con.execute("attach ':memory:' as statements_scratch")
    prepare_batch_decisions(con.con, batch, run_day(), DEFAULT_STANDING_DAYS)
    outputs.build_finding_rows(con, batch, False, "statements_scratch", {"batch": batch, "secret": "bench"})
    mark_findings(con, "statements_scratch")
    worklist.build_worklist(con, batch)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database", type=Path)
    parser.add_argument("--stage", choices=["judge", "write"], default="write")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", default=None, help="DuckDB's operator timings of this statement")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--history", action="store_true",
                        help="judge with the earlier batches of the database, as `scrub --history` does")
    args = parser.parse_args(argv)
    copy = args.database.with_name(f"{args.database.name}.statements")
    shutil.copyfile(args.database, copy)
    try:
        raw = quiet(duckdb.connect(str(copy), config=CONNECTION_CONFIG))
        raw.execute(f"set threads = {args.threads}")
        batch = raw.execute("select batch_id from batches order by started_at desc limit 1").fetchall()[0][0]
        con = Timed(raw, args.profile)
        started, cpu = time.monotonic(), _cpu()
        if args.stage == "judge":
            scrub.scrub_batch(con, batch, with_history=args.history)
        else:
            raw.execute("set preserve_insertion_order = true")
            write_stage(con, batch)
        print(f"{args.stage}: {time.monotonic() - started:.2f} s wall, {_cpu() - cpu:.2f} s CPU")
        con.report(args.top)
        raw.close()
    finally:
        for leftover in copy.parent.glob(f"{copy.name}*"):
            os.unlink(leftover)


if __name__ == "__main__":
    main()
