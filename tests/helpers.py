"""Helpers for tests: write hand-built exports and run the real command on them."""

import csv
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner

from pipelines.cli import main

BASE_COLUMNS = ["claim_id", "line_number", "patient_id", "date_of_service", "hcpcs", "modifiers", "units",
                "rendering_npi", "billing_npi", "place_of_service", "claim_type", "diagnosis_1", "payer"]


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    columns = columns or list(dict.fromkeys([*BASE_COLUMNS, *(k for r in rows for k in r)]))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    return path


# The outputs hold an export's values whole, and an export's cell may be longer than csv's default limit.
csv.field_size_limit(1 << 30)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str
    out_dir: Path
    flags: list[dict] = field(default_factory=list)
    lines: list[dict] = field(default_factory=list)
    quarantine: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    def findings(self, claim_id: str, line_number: int | str) -> set[str]:
        return {f["rule_id"] for f in self.flags
                if f["claim_id"] == claim_id and f["line_number"] == str(line_number)}

    def line(self, claim_id: str, line_number: int | str) -> dict:
        return next(r for r in self.lines if r["claim_id"] == claim_id and r["line_number"] == str(line_number))


def scrub(files: list[Path], out_dir: Path, db: Path, *extra: str) -> Run:
    result = CliRunner().invoke(
        main, ["scrub", *map(str, files), "--out", str(out_dir), "--db", str(db), *extra]
    )
    run = Run(result.exit_code, result.stdout, result.stderr, out_dir)
    if result.exit_code == 0:
        run.flags = read_csv(out_dir / "flags.csv")
        run.lines = read_csv(out_dir / "lines.csv")
        run.quarantine = read_csv(out_dir / "quarantine.csv")
        run.summary = json.loads((out_dir / "summary.json").read_text())
    return run


def command(files: list[Path], out_dir: Path, db: Path, *extra: str) -> list[str]:
    """The argv of the real command in a process of its own (for tests that kill it or race it)."""
    return [sys.executable, "-m", "pipelines.cli", "scrub", *map(str, files), "--out", str(out_dir),
            "--db", str(db), *extra]


def outputs_of(out_dir: Path) -> dict:
    """What a user compares between two runs: every output but the run's own clock."""
    summary = json.loads((out_dir / "summary.json").read_text())
    summary.pop("started"), summary.pop("finished")
    return {"flags": read_csv(out_dir / "flags.csv"), "lines": read_csv(out_dir / "lines.csv"),
            "quarantine": read_csv(out_dir / "quarantine.csv"), "summary": summary}


@contextmanager
def module_site(tmp_path_factory, reference_db: Path, name: str, **env: str) -> Iterator[tuple[Path, Path]]:
    """A site of a test module's own, for runs its tests share: a folder, a database holding the reference
    releases, and the site's working folder (and any other settings) in the environment while it is open."""
    folder = tmp_path_factory.mktemp(name)
    db = folder / "claimscrub.duckdb"
    shutil.copyfile(reference_db, db)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLAIMSCRUB_HOME", str(folder / "home"))
        patch.delenv("CLAIMSCRUB_SECRET", raising=False)
        for key, value in env.items():
            patch.setenv(key, value)
        yield folder, db


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[str, str]:
    """A process's remaining standard output and error, once it ends. Read through the pipes' own buffers, on
    two threads: after a test read a line of one, `communicate` would lose what its buffer still holds, and
    reading one pipe to its end first could leave the process stuck on the other, full."""
    with ThreadPoolExecutor(2) as pool:
        out, err = pool.submit(process.stdout.read), pool.submit(process.stderr.read)
        process.wait(timeout=timeout)
        return out.result(), err.result()
