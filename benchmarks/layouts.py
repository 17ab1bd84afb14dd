"""Scrub one synthetic export on each kind of site and say whether every output is the same.

The sites: one shard in one file (the default), four shards in one file, four shard files judged in process,
and four shard files judged by the multiprocess executor in two processes. Each starts from the bench's
database of bundled reference releases (`benchmarks/bench.py`), resharded with `claimscrub db reshard`.
flags.csv, lines.csv and quarantine.csv are compared by md5, the workbook's sheets cell by cell (a sheet
whose XML is byte for byte the one-file site's is equal without reading its cells; the time each run was
made and how long it took, which the Summary states, are left out of the comparison).

    python -m benchmarks.layouts --lines 2000000

Exit status 1 when any output differs from the one-file site's.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from openpyxl import load_workbook

from .bench import ROOT, reference_database
from .generate import generate

SITES = {
    "S=1 single": ["--shards", "1", "--layout", "single"],
    "S=4 single": ["--shards", "4", "--layout", "single"],
    "S=4 per-shard": ["--shards", "4", "--layout", "per-shard"],
    "S=4 per-shard, 2 workers": ["--shards", "4", "--layout", "per-shard"],
}
WORKERS = {"S=4 per-shard, 2 workers": ["--workers", "2"]}
CSVS = ["flags.csv", "lines.csv", "quarantine.csv"]
REPORT = "denial-risk-report.xlsx"


def _run(command: list[str], log: Path, env: dict) -> None:
    with open(log, "w") as out:
        code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if code != 0:
        raise SystemExit(f"{' '.join(command[2:4])} failed (exit {code}): see {log}")


def _folder(work: Path, site: str) -> Path:
    return work / site.replace(" ", "").replace(",", "-").replace("=", "")


def scrub_on(site: str, export: Path, template: Path, work: Path, env: dict) -> Path:
    """The outputs folder of a scrub of `export` on a fresh site of kind `site`."""
    folder = _folder(work, site)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    database = folder / "claimscrub.duckdb"
    shutil.copyfile(template, database)
    cli = [sys.executable, "-m", "pipelines.cli"]
    _run([*cli, "db", "reshard", "--db", str(database), *SITES[site]], folder / "reshard.out", env)
    _run([*cli, "scrub", str(export), "--out", str(folder / "out"), "--db", str(database),
          *WORKERS.get(site, [])], folder / "scrub.out", env)
    return folder / "out"


def md5(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "md5").hexdigest()


def sheet_parts(report: Path) -> dict[str, str]:
    """Each worksheet's part name in the package, by sheet title."""
    book = load_workbook(report, read_only=True)
    try:
        return {sheet.title: f"xl/worksheets/sheet{index}.xml" for index, sheet in enumerate(book.worksheets, 1)}
    finally:
        book.close()


def part_digest(report: Path, part: str) -> str:
    with zipfile.ZipFile(report) as package, package.open(part) as sheet:
        return hashlib.file_digest(sheet, "md5").hexdigest()


# The time a run was made and how long it took, which the Summary states: what two runs of one export differ in.
RUN_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?( UTC)?")


# Rows of the Summary that measure the run itself.
OWN_MEASURES = {"Run time (seconds)"}


def _cells(row: tuple) -> tuple:
    if row and row[0] in OWN_MEASURES:
        return row[:1]
    return tuple(RUN_TIME.sub("<time>", value) if isinstance(value, str) else value for value in row)


def first_difference(one: Path, other: Path, title: str) -> str | None:
    """Where sheet `title` of two workbooks first differs in its cells (a run's time aside), or None when every
    cell is equal."""
    books = [load_workbook(path, read_only=True) for path in (one, other)]
    try:
        rows = [book[title].iter_rows(values_only=True) for book in books]
        for number, (left, right) in enumerate(zip(*rows, strict=False), 1):
            if _cells(left) != _cells(right):
                return f"row {number}: {left!r} against {right!r}"
        leftover = [next(iter(rows[0]), None), next(iter(rows[1]), None)]
        return None if leftover == [None, None] else "a different number of rows"
    finally:
        for book in books:
            book.close()


def compare(reference: Path, other: Path) -> list[str]:
    """What differs between two runs' outputs (nothing: an empty list)."""
    differences = [name for name in CSVS if md5(reference / name) != md5(other / name)]
    parts = sheet_parts(reference / REPORT)
    if parts != sheet_parts(other / REPORT):
        return [*differences, "the workbook's sheets"]
    for title, part in parts.items():
        if part_digest(reference / REPORT, part) == part_digest(other / REPORT, part):
            continue
        where = first_difference(reference / REPORT, other / REPORT, title)
        if where:
            differences.append(f"sheet {title} ({where[:300]})")
    return differences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--data", type=Path, default=ROOT / ".bench")
    parser.add_argument("--compare-only", action="store_true", help="compare the outputs of the last runs again")
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    export = args.data / f"claims-{args.lines}.csv"
    if not export.exists():
        generate(export, args.lines)
    template = reference_database(args.data)
    env = {**os.environ, "CLAIMSCRUB_SECRET": os.environ.get("CLAIMSCRUB_SECRET", "layouts")}
    work = args.data / f"layouts-{args.lines}"
    outputs = {site: (_folder(work, site) / "out" if args.compare_only else scrub_on(site, export, template, work, env))
               for site in SITES}
    first, *others = SITES
    print(f"{first}: " + ", ".join(f"{name} {md5(outputs[first] / name)[:12]}" for name in CSVS))
    failed = False
    for site in others:
        differences = compare(outputs[first], outputs[site])
        failed |= bool(differences)
        print(f"{site}: " + ("identical" if not differences else "differs in " + "; ".join(differences)),
              flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
