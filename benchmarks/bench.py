"""Time the whole scrub on synthetic exports of several sizes, next to the floor of the same run.

For each size: generate the export once (kept in the data folder), read it with DuckDB alone into a table
(the floor), then run `claimscrub scrub` on it as a child process with a database that already holds the
reference releases, as a nightly run finds it. Stage times come from the command's progress log (`--log`);
peak memory is the child's maximum resident set, and with `--workers` the larger of that and the sampled PSS
of its whole process tree (the step processes are children of the executor's fork server).

    python -m benchmarks.bench --lines 100000 1000000 2000000 10000000
    python -m benchmarks.bench --lines 10000000 --shards 4 --layout per-shard --workers 2

With --shards, the run's database is resharded (`claimscrub db reshard`) before the scrub, outside the
measured time; the table's "site" column says what was measured.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from .generate import generate

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "claims_sample.csv"
STAGES = ["read", "validate", "price", "judge", "write"]
DONE = re.compile(r"claimscrub (\w+): done, [\d,]+ rows in ([\d.]+) s")
# The workbook is written after summary.json (lines.csv is written beside it): its time is the time from
# one to the other.
# A site of several shards judges them one by one (or in step processes side by side): the judge column is
# the sum of the shards' times.
SHARD_DONE = re.compile(r"claimscrub judge shard \d+ of \d+: done, [\d,]+ rows in ([\d.]+) s")
FILE_DONE = re.compile(r"claimscrub write: \d+ of \d+ files after ([\d.]+) s \((summary\.json|workbook)\)")
# The site a run measures unless told otherwise: one shard in one file, judged in process.
ONE_FILE = {"shards": 1, "layout": "single", "workers": 1}
COLUMNS = ["lines", "site", "file MB", "floor s", *(f"{s} s" for s in STAGES), "of which workbook s", "total s",
           "x floor", "peak RSS MiB", "findings"]


def run_measured(command: list[str], log: Path, processes: bool = False) -> tuple[float, int, int]:
    """Run a child process; return its wall seconds, exit status and peak memory in bytes: the child's own peak
    resident set (the kernel's high-water mark), and, for a command that runs step processes (`processes`:
    `--workers`, whose steps are children of the executor's fork server, which the child's own figure leaves
    out), the larger of that and the peak of its whole process tree, sampled. A sample reads the page tables of
    every process of the tree (about 30 ms of CPU for a 1 GB process): taken five times a second beside a
    command that keeps both cores busy, it slows the command it measures, so a single process is not sampled
    (its proportional set is never above its resident set)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        started = time.monotonic()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        tree = TreeMemory(child.pid)
        if processes:
            tree.start()
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.monotonic() - started
        if processes:
            tree.stop()
    child.returncode = os.waitstatus_to_exitcode(status)
    return seconds, child.returncode, max(usage.ru_maxrss * 1024, tree.peak)


class TreeMemory(threading.Thread):
    """The peak, over samples every SAMPLE_SECONDS, of the proportional set size (PSS: a page that forked
    processes share counts once in all) summed over a process and its descendants. Linux only; elsewhere 0."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(SAMPLE_SECONDS):
            self.peak = max(self.peak, sum(_pss(pid) for pid in _tree(self.pid)))

    def stop(self) -> None:
        self.done.set()
        self.join()


SAMPLE_SECONDS = 0.2


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, waiting = [], [root]
    while waiting:
        pid = waiting.pop()
        found.append(pid)
        waiting.extend(children.get(pid, []))
    return found


def _pss(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    found = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) * 1024 if found else 0


def stage_seconds(log_text: str) -> dict[str, float]:
    """The seconds of each stage, and of the workbook, from the command's plain progress lines."""
    stages = {name: float(seconds) for name, seconds in DONE.findall(log_text)}
    shards = [float(seconds) for seconds in SHARD_DONE.findall(log_text)]
    if shards and "judge" not in stages:
        stages["judge"] = round(sum(shards), 2)
    files = {name: float(seconds) for seconds, name in FILE_DONE.findall(log_text)}
    if len(files) == 2:
        stages["workbook"] = round(files["workbook"] - files["summary.json"], 2)
    return stages


def reference_database(data: Path) -> Path:
    """A database holding the bundled reference releases, made once by scrubbing the bundled sample."""
    template = data / "reference.duckdb"
    if not template.exists():
        seconds, code, _ = run_measured(
            [sys.executable, "-m", "pipelines.cli", "scrub", str(SAMPLE), "--out", str(data / "warm-up"),
             "--db", str(template)], data / "warm-up.log")
        if code != 0:
            raise SystemExit(f"loading the reference releases failed: see {data / 'warm-up.log'}")
    return template


def measure(lines: int, data: Path, template: Path, site: dict = ONE_FILE, keep: bool = False) -> dict:
    export = data / f"claims-{lines}.csv"
    if not export.exists():
        generate(export, lines)
    work = data / f"run-{lines}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    floor_log = work / "floor.log"
    _, code, _ = run_measured([sys.executable, "-m", "benchmarks.floor", str(export), str(work / "floor.duckdb")],
                              floor_log)
    if code != 0:
        raise SystemExit(f"the floor run failed: see {floor_log}")
    floor = float(floor_log.read_text().split()[-1])
    (work / "floor.duckdb").unlink()
    database = work / "claimscrub.duckdb"
    shutil.copyfile(template, database)
    if (site["shards"], site["layout"]) != (ONE_FILE["shards"], ONE_FILE["layout"]):
        _, code, _ = run_measured(
            [sys.executable, "-m", "pipelines.cli", "db", "reshard", "--db", str(database),
             "--shards", str(site["shards"]), "--layout", site["layout"]], work / "reshard.out")
        if code != 0:
            raise SystemExit(f"resharding the run's database failed: see {work / 'reshard.out'}")
    workers = ["--workers", str(site["workers"])] if site["workers"] > 1 else []
    scrub_log = work / "scrub.log"
    total, code, peak = run_measured(
        [sys.executable, "-m", "pipelines.cli", "scrub", str(export), "--out", str(work / "out"),
         "--db", str(database), "--log", str(scrub_log), *workers], work / "scrub.out", processes=bool(workers))
    if code != 0:
        raise SystemExit(f"the scrub of {lines:,} lines failed (exit {code}): see {work / 'scrub.out'}")
    summary = json.loads((work / "out" / "summary.json").read_text())
    if not keep:
        for file in work.glob("claimscrub*.duckdb*"):
            file.unlink()
    return {"lines": lines, "site": site, "bytes": export.stat().st_size, "floor": floor,
            "stages": stage_seconds(scrub_log.read_text()), "total": total, "peak_rss": peak,
            "rows_quarantined": summary["rows_quarantined"], "findings": summary["findings"]["total"]}


def table_row(result: dict) -> list[str]:
    site = result.get("site") or ONE_FILE
    described = f"S={site['shards']} {site['layout']}" + (f", {site['workers']} workers" if site["workers"] > 1 else "")
    return [f"{result['lines']:,}", described, f"{result['bytes'] / 1e6:,.0f}", f"{result['floor']:.2f}",
            *(f"{result['stages'].get(s, float('nan')):.2f}" for s in [*STAGES, "workbook"]),
            f"{result['total']:.2f}", f"{result['total'] / result['floor']:.1f}",
            f"{result['peak_rss'] / 2**20:,.0f}", f"{result['findings']:,}"]


def markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[100_000, 1_000_000, 2_000_000, 10_000_000])
    parser.add_argument("--data", type=Path, default=ROOT / ".bench",
                        help="folder for the generated exports and the runs (default .bench, git-ignored)")
    parser.add_argument("--repeat", type=int, default=1, help="measure each size this many times")
    parser.add_argument("--shards", type=int, default=1, help="patient shards of the run's database")
    parser.add_argument("--layout", choices=["single", "per-shard"], default="single")
    parser.add_argument("--workers", type=int, default=1, help="processes for the shard steps (scrub --workers)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the run's database (RUN/claimscrub.duckdb) for benchmarks.statements")
    args = parser.parse_args()
    site = {"shards": args.shards, "layout": args.layout, "workers": args.workers}
    args.data.mkdir(parents=True, exist_ok=True)
    template = reference_database(args.data)
    print(markdown_row(COLUMNS))
    print("|" + "---:|" * len(COLUMNS), flush=True)
    with open(args.data / "results.jsonl", "a") as results:
        for lines in args.lines:
            for _ in range(args.repeat):
                result = measure(lines, args.data, template, site, args.keep)
                results.write(json.dumps({**result, "at": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
                print(markdown_row(table_row(result)), flush=True)


if __name__ == "__main__":
    main()
