"""The `claimscrub` command: a front door on the same Dagster asset graph the nightly job runs.

Exit status: 0 when the run completed (whatever it flagged or quarantined), 2 for a usage error or an input
that is not a claim export at all (one plain sentence on standard error, nothing left in the output
folder), 1 for anything else.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click

from .db_commands import db
from .feedback_commands import feedback, remit
from .reference_cli import reference
from .review_commands import rejudge, review
from .runs import (
    batch_id_for,
    error_message,
    fail,
    holding_database,
    new_secret_note,
    out_dir_problem,
    run_config,
)

os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")


def materialize(files: list[Path], out_dir: Path | None, db: str | None, mapping: str = "",
                locality: str = "", show_ids: bool = False, batch_id: str | None = None,
                with_history: bool = False, standing_days: int | None = None, staged_exports=None):
    import dagster as dg

    from assets.flow import ALL_ASSETS
    from assets.readers import file_sha256
    from reference.assets import PER_RUN_CHECKS

    from .resources import run_resources

    # Python's collector would otherwise walk the objects of every module just imported (Dagster's, pandas')
    # on each full collection of the run: they outlive it, so they leave its care until the run ends.
    gc.freeze()
    try:
        # The files are hashed (hashlib lets go of the GIL) while Dagster sets up its instance.
        with ThreadPoolExecutor(1) as pool:
            hashing = pool.map(file_sha256, files)
            instance = dg.DagsterInstance.ephemeral()
            hashes = list(hashing)
        batch_id = batch_id or batch_id_for(files, hashes)
        # The instance keeps a temporary folder until it is disposed of: leaving the block removes it.
        with instance:
            return dg.materialize(
                [*ALL_ASSETS, *PER_RUN_CHECKS],
                resources=run_resources(db, staged_exports),
                run_config={**run_config(batch_id, files, out_dir, mapping, locality, show_ids, with_history,
                                         hashes, standing_days=standing_days),
                            "loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
                instance=instance,
                raise_on_error=False,
            )
    finally:
        gc.unfreeze()


def materialize_in_processes(files: list[Path], out_dir: Path, db: str, mapping: str, locality: str,
                             show_ids: bool, with_history: bool, standing_days: int | None, workers: int,
                             log: str | None = None):
    from assets.readers import file_sha256

    from .parallel import execute

    hashes = [file_sha256(path) for path in files]
    config = run_config(batch_id_for(files, hashes), files, out_dir, mapping, locality, show_ids, with_history,
                        hashes, standing_days=standing_days, workers=workers)
    return execute({**config, "loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}, workers, db, log)


INTERRUPTED = "interrupted: stopped before it finished"


class Commands(click.Group):
    """The command group: a database that cannot be opened at all is one plain line and exit 2 from whichever
    command opened it, not a traceback; a site missing one of its shard files, one line and exit 1."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        # A usage error is one line naming the command, as every other refusal is (click's own shows the usage,
        # a hint and the error on four).
        prog_name = prog_name or "claimscrub"  # also when run as `python -m pipelines.cli`
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            context = getattr(exc, "ctx", None)
            click.echo(f"{context.command_path if context is not None else 'claimscrub'}: {exc.format_message()}",
                       err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            fail(INTERRUPTED, 130)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        import duckdb

        from assets.shards import ShardFileMissingError

        from .database import DatabaseOpenError

        try:
            return super().invoke(ctx)
        except DatabaseOpenError as exc:
            fail(str(exc))
        except ShardFileMissingError as exc:
            fail(str(exc), 1)
        except (duckdb.InterruptException, KeyboardInterrupt):
            # Ctrl-C (inside a query or not), or a stop a command turns into one: each command's writes are
            # transactions, rolled back with it. Said here, in one line (click's own would print a blank one).
            fail(INTERRUPTED, 130)
        except PermissionError as exc:
            # A database, its lock or an output in a folder the user may not write.
            fail(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="claimscrub", prog_name="claimscrub", message="%(prog)s %(version)s")
def main() -> None:
    """claimscrub: find the claim lines a payer will deny, before they go out."""
    # Every command may create a file holding patient data (a database, its shard files, a report): owner-only.
    os.umask(0o077)
    warnings.filterwarnings("ignore")
    logging.getLogger("dagster").setLevel(logging.ERROR)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Folder for the reports.")
@click.option("--db", default=None, help="DuckDB file (default: $CLAIMSCRUB_DB, else claimscrub.duckdb in "
                                          "$CLAIMSCRUB_HOME, .claimscrub).")
@click.option("--locality", default="", help="Default pricing locality as MAC-LL, e.g. 01112-05 (default: "
                                             "$CLAIMSCRUB_LOCALITY, the nightly run's too, else national).")
@click.option("--mapping", default="", help="TOML file naming the site's own column headers "
                                            "(default: $CLAIMSCRUB_MAPPING).")
@click.option("--show-ids", is_flag=True, help="Show patient identifiers in clear in the reports.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes for the run's steps (Dagster's multiprocess executor): the shards of a per-shard "
                   "database (`claimscrub db init`) are judged side by side. 1 runs every step in this process.")
@click.option("--history", is_flag=True,
              help="Also judge the lines against lines of earlier batches kept in the database.")
@click.option("--log", "log", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Append plain progress lines (stage, rows, seconds) to this file.")
@click.option("--standing-days", type=click.IntRange(min=0), default=None,
              help="Days a standing dismissal applies after it was made (default: $CLAIMSCRUB_STANDING_DAYS "
                   "or 180).")
def scrub(files: tuple[Path, ...], out_dir: Path, db: str | None, locality: str, mapping: str,
          show_ids: bool, history: bool, log, standing_days: int | None, workers: int) -> None:
    """Scrub claim exports (CSV, Excel or X12 837P) and write flags, lines, quarantine, summary and the workbook."""
    from assets.readers import (InputFileError, detect_kind, export_headers, inspect_export, load_mapping,
                                misnamed, prefetching, rows_above_header, unread_headers)
    from assets.x12 import x12_notes

    from .settings import (check_site_secret, database_path, default_locality, mapping_file, run_day, rvu_variant,
                           work_floor_through)
    from .settings import standing_days as site_standing_days

    # Everything a scrub creates (database, reports, the site secret) holds patient data: owner-only.
    os.umask(0o077)

    # Every mistake that can be seen before the run stops it here, before anything is written.
    try:
        run_day()
        rvu_variant()
        work_floor_through()
        if not show_ids:
            check_site_secret()
        if standing_days is None:
            standing_days = site_standing_days()
    except ValueError as exc:
        fail(str(exc))
    except OSError as exc:  # the working folder or its site secret where a file or a folder stands
        fail(f"{exc.filename}: {exc.strerror}")
    problem = out_dir_problem(out_dir)
    if problem:
        fail(problem)
    mapping = mapping or mapping_file()
    for path in files:
        try:
            str(path).encode("utf-8")
        except UnicodeEncodeError:
            shown = str(path).encode("utf-8", "replace").decode()
            fail(f"{shown}: the file's name is not UTF-8 text (its batch, findings and reports name it): rename it")
    files, notes = _distinct_files(files)
    database = db or database_path()
    clash = _clash(files, out_dir, log, database)
    if clash:
        fail(clash)
    try:
        site_mapping = load_mapping(mapping or None)
        for path in files:
            notes.append(misnamed(path, inspect_export(path, site_mapping)))
            notes.append(rows_above_header(path, site_mapping))
            if detect_kind(path) == "x12":
                notes.extend(x12_notes(path))
            notes.append(unread_headers(export_headers(path, site_mapping), site_mapping, path))
    except InputFileError as exc:
        fail(str(exc), advice=exc.advice)
    # The site's locality is the nightly run's and the command's alike: the same lines get the same prices.
    named = "--locality " if locality else "CLAIMSCRUB_LOCALITY="
    locality = locality or default_locality()
    if locality and not _looks_like_locality(locality):
        fail(f"{named}{locality!r} is not a MAC-LL locality such as 01112-05")
    for note in filter(None, notes):
        click.echo(f"claimscrub: {note}", err=True)

    from .progress import show_progress

    if log is not None:
        try:
            log = open(log, "a")  # checked above: a regular file or none yet, not an input
        except OSError as exc:
            fail(f"--log {log}: {exc.strerror}")
    show_progress(log)
    # Held for the whole run: another writer (a second scrub, the nightly run, `reference load`) waits here
    # instead of interleaving with this one, and this one waits for it.
    with holding_database(database) as con:
        if locality and not _known_locality(con, locality):
            fail(f"{named}{locality!r} is not a Medicare pricing locality of the loaded GPCI releases "
                  "(`claimscrub reference localities` lists them)")
        for note in (_missing_variant(con, rvu_variant()), "" if show_ids else new_secret_note(con)):
            if note:
                click.echo(f"claimscrub: {note}", err=True)
        if workers <= 1:
            with prefetching(con, list(files), site_mapping) as staged:
                result = materialize(list(files), out_dir, database, mapping, locality, show_ids,
                                     with_history=history, standing_days=standing_days, staged_exports=staged)
        else:
            # The steps' processes open the files themselves, one writer per file at a time: this one lets go
            # of the main file but keeps the site lock, which covers them, until the last step is done.
            con.close()
            log_path = log.name if log is not None and os.path.isfile(str(log.name)) else None
            result = materialize_in_processes(list(files), out_dir, database, mapping, locality, show_ids,
                                              history, standing_days, workers, log_path)
    if not result.success:
        code, message = error_message(result)
        fail(message, code)
    summary = json.loads((out_dir / "summary.json").read_text())
    deny = summary["dollars_at_risk"]["by_severity"].get("deny", 0.0)
    from assets.coverage import counted, stale_warnings

    # The auditors' share, where they decided some: the total counts every deny line, as the Summary's does.
    split = summary["dollars_at_risk"].get("deny_by_decision", {})
    decided = sum(split.get(group, {}).get("dollars", 0.0) for group in ("dismissed", "fixed"))
    click.echo(
        f"Scrubbed {counted(summary['lines_scrubbed'], 'line')} from {counted(summary['rows_read'], 'row')} "
        f"({summary['rows_quarantined']:,} quarantined): {counted(summary['findings']['total'], 'finding')}, "
        f"${deny:,.2f} at risk of denial" + (f" (${decided:,.2f} of it dismissed or fixed by auditors)." if decided
                                             else ".")
    )
    click.echo(f"Report: {(out_dir / 'denial-risk-report.xlsx').resolve()}")
    for warning in stale_warnings(summary.get("reference_coverage", [])):
        click.echo(f"warning: {warning}", err=True)


# What a scrub writes into --out.
OUTPUT_NAMES = ("flags.csv", "lines.csv", "quarantine.csv", "summary.json", "denial-risk-report.xlsx")


def _clash(files: list[Path], out_dir: Path, log: Path | None, database: str) -> str:
    """Why the run would write over one of its own inputs, if it would: an export named like a report in the
    --out folder (replaced by the report), or a --log that is an export or the database (appended to)."""
    def resolved(path: Path) -> Path:
        try:
            return path.resolve()
        except (OSError, RuntimeError):  # a symlink loop: the checks of each input and of --out name it
            return path.absolute()

    inputs = {resolved(path): path for path in files}
    target = resolved(out_dir)
    for real, path in inputs.items():
        if real.parent == target and real.name in OUTPUT_NAMES:
            return (f"{path}: an export in the --out folder named like the report written there "
                    f"({real.name}): move it, or write the reports to another folder")
    if log is not None:
        if log.exists() and not log.is_file():
            return f"--log {log}: not a regular file"
        if resolved(log) in inputs or resolved(log) == resolved(Path(database)):
            return f"--log {log}: is {'an export of this run' if resolved(log) in inputs else 'the database'}"
    return ""


def _missing_variant(con, variant: str) -> str:
    """A note when the site prices by the QPP fee schedule and no QPP release is loaded: its lines are priced by
    the non-QPP file (pricing.py), a conversion factor apart, and nothing else would say so."""
    if not variant:
        return ""
    from assets.tables import table_kind

    # A new site has no releases yet: the bundled ones its first run loads are the non-QPP files.
    loaded = table_kind(con, "ref_releases") is not None and con.execute(
        "select count(*) from ref_releases where table_name = 'rvu' and coalesce(variant, '') = ?",
        [variant]).fetchall()[0][0]
    if loaded:
        return ""
    return (f"CLAIMSCRUB_RVU_VARIANT is {variant.lower()}, but no {variant} fee schedule release is loaded: lines "
            f"are priced by the non-{variant} file of their year; load the PPRRVU {variant} file with "
            "`claimscrub reference load`")


def _looks_like_locality(value: str) -> bool:
    import re

    return re.fullmatch(r"\d{5}-\d{2}", value) is not None


def _known_locality(con, value: str) -> bool:
    """Whether a loaded GPCI release prices `value`: the bundled releases are loaded first, as the run would
    load them, so the answer is the run's."""
    from reference.loaders import ensure_bundled

    ensure_bundled(con, "gpci")
    found = con.execute("select count(*) from ref_gpci where locality_key = ?", [value.upper()]).fetchall()
    return found[0][0] > 0


def _distinct_files(files) -> tuple[list[Path], list[str]]:
    """The files of a run, each once: a file named twice, or two files of the same content (a copy of tonight's
    export beside it), would otherwise make every row of the second a repeat of itself in the quarantine.
    Contents are compared only between files of the same size. Returns the files and a note per one left out."""
    kept: list[Path] = []
    notes = []
    for path in files:
        twin = next((k for k in kept if _same_file(k, path)), None)
        if twin is None:
            kept.append(path)
        else:
            notes.append(f"{path}: the same file as {twin} (same content); read once")
    return kept, notes


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.resolve() == b.resolve():
            return True
        if not (a.is_file() and b.is_file()) or a.stat().st_size != b.stat().st_size:
            return False
        from assets.readers import file_sha256

        return file_sha256(a) == file_sha256(b)
    except OSError:
        return False


main.add_command(reference)
main.add_command(db)

main.add_command(remit)
main.add_command(feedback)
main.add_command(review)
main.add_command(rejudge)


def run() -> None:
    """The console command: `main`, then an immediate exit. Everything the command writes is closed by the
    time `main` returns; what is left is the interpreter freeing Dagster's and pandas' modules object by
    object, which takes time and changes nothing on disk."""
    try:
        main()
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    logging.shutdown()
    # A `--workers` run's step processes came from a forkserver whose socket lives in a folder of its own
    # (/tmp/pymp-*), which multiprocessing removes at a normal exit: an immediate one would leave it.
    if (processes := sys.modules.get("multiprocessing.util")) is not None:
        try:
            processes._exit_function()
        except Exception:  # noqa: BLE001 - a folder left in /tmp is no reason to fail a finished run
            pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
