"""What every claimscrub command shares about a run: how a failure is said (one plain line on standard error and
an exit status), how a command holds the database, how a batch is named, and the Dagster run configuration of a
scrub (the command and the nightly schedule build it alike)."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path

import click


def fail(message: str, code: int = 2, advice: str = "") -> None:
    """One plain line on standard error, then what to do about it if there is more to say, then exit."""
    click.echo(f"claimscrub: {message}", err=True)
    if advice:
        click.echo(advice, err=True)
    sys.exit(code)


def existing_database(db: str | None, after: str = "", label: str = "") -> str:
    """The database a command reads or adds to (--db, else CLAIMSCRUB_DB, else the site's), which must exist:
    a name typed wrong would otherwise be made a new, empty database, and the command answer from nothing with
    exit 0. Refused in one line, `label` before the name and `after` (what to do) after it."""
    from .settings import database_path

    database = db or database_path()
    if not os.path.exists(database):
        fail(f"{label}{database}: no such database{after}")
    return database


def out_dir_problem(out_dir: Path) -> str | None:
    """What stops a command's reports from being written where --out says, in one line, if anything does: a
    file where the folder or one above it would be, or a place where no folder can be made (a share mounted
    read-only, another user's folder). Seen before the run, not after a night's work."""
    try:
        return _out_dir_problem(out_dir)
    except (OSError, RuntimeError, UnicodeError) as exc:  # a symlink loop, a name too long, one not UTF-8
        return f"--out {out_dir}: cannot be used ({getattr(exc, 'strerror', None) or exc})"


def _out_dir_problem(out_dir: Path) -> str | None:
    out_dir.resolve()  # a symlink loop raises here; `exists` would call it missing
    for path in [out_dir, *out_dir.parents]:
        if path.exists():
            if not path.is_dir():
                return f"--out {out_dir}:{'' if path == out_dir else f' {path}'} is a file, not a folder"
            break
    # A scrub stages its reports in a folder beside DIR and then moves it in place; the others write into DIR.
    parent = out_dir.absolute().parent
    places = [out_dir] if out_dir.is_dir() else []
    places += [next((path for path in [parent, *parent.parents] if path.exists()), None)]
    for place in filter(None, places):
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".claimscrub-check-", dir=place))
        except OSError as exc:
            return f"--out {out_dir}: cannot be written ({exc.strerror or exc})"
    return None


@contextmanager
def holding_database(db: str | None):
    """Hold the site lock and the database (--db, else CLAIMSCRUB_DB, else the working folder's) for the whole
    of a command that writes it, and yield the holding connection. Another process's hold is waited for up to
    CLAIMSCRUB_LOCK_TIMEOUT seconds, saying so once on standard error; past it, one plain line and exit 1, with
    nothing written. The Dagster runs the command makes in process take both at once: the site lock is held by
    this process already, and connections of one process share one DuckDB instance and its lock."""
    from .database import DatabaseBusyError, database_for, holding, waiting_notice
    from .settings import lock_timeout

    try:
        timeout = lock_timeout()
    except ValueError as exc:
        fail(str(exc))
    database = database_for(db)
    with ExitStack() as held:
        try:
            con = held.enter_context(holding(
                database, timeout,
                on_wait=lambda: click.echo(f"claimscrub: {waiting_notice(database, timeout)}", err=True)))
        except DatabaseBusyError as exc:
            fail(str(exc), 1)
        yield con


def materialize_one(asset, config: dict, db: str | None) -> dict:
    """Materialize one asset of the feedback or rejudge jobs in process (the command holds the database), its
    config given; a failure is said in one plain line with its exit status. Returns the asset's metadata as
    plain values."""
    import dagster as dg

    from .resources import duckdb_resource

    # The instance keeps a temporary folder until it is disposed of: leaving the block removes it.
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [asset],
            resources={"duckdb": duckdb_resource(db)},
            run_config={"ops": {asset.op.name: {"config": config}},
                        "loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
            instance=instance,
            raise_on_error=False,
        )
    if not result.success:
        code, message = error_message(result)
        fail(message, code)
    (materialization,) = result.asset_materializations_for_node(asset.op.name)
    return {key: value.value for key, value in materialization.metadata.items()}


def batch_id_for(files: list[Path], hashes: list[str]) -> str:
    """A batch is its set of input files: the same files give the same batch, so a rerun replaces it."""
    digest = hashlib.sha256()
    for path, sha in sorted(zip((p.name for p in files), hashes)):
        digest.update(f"{path}\0{sha}\n".encode())
    return "cli-" + digest.hexdigest()[:16]


def run_config(batch_id: str, files: list[Path], out_dir: Path | None, mapping: str, locality: str,
               show_ids: bool, with_history: bool = False, hashes: list[str] | None = None,
               source: str = "", standing_days: int | None = None, workers: int = 1,
               set_aside_unreadable: bool = False, set_aside: dict[Path, tuple[str, Path]] | None = None,
               refused: dict[Path, str] | None = None) -> dict:
    """The run's configuration; `source` names where its files come from (the trend's key), else their names
    without dates stand for it."""
    from .settings import rvu_variant, work_floor_through
    from .settings import standing_days as site_standing_days

    config = {
        "batch_id": batch_id,
        "files": [str(p.resolve()) for p in files],
        "file_names": [p.name for p in files],
        "file_hashes": hashes or [],
        "mapping_file": mapping,
        "default_locality": locality,
        "rvu_variant": rvu_variant(),
        "work_floor_through": work_floor_through(),
        "out_dir": str(out_dir.resolve()) if out_dir else "",
        "show_ids": show_ids,
        "with_history": with_history,
        "source": source,
        "standing_days": site_standing_days() if standing_days is None else standing_days,
        "workers": workers,
        "set_aside_unreadable": set_aside_unreadable,
        "set_aside_files": [str(p.resolve()) for p in (set_aside or {})],
        "set_aside_reasons": [reason for reason, _ in (set_aside or {}).values()],
        "set_aside_for": [str(by.resolve()) for _, by in (set_aside or {}).values()],
        "refused_files": [str(p.resolve()) for p in (refused or {})],
        "refused_reasons": list((refused or {}).values()),
    }
    ops = {name: {"config": config} for name in
           ["raw_claim_rows", "validated_claims", "priced_lines", "line_flags", "scrub_report"]}
    return {"ops": ops}


def error_message(result) -> tuple[int, str]:
    """The first failure of a run, as (exit code, one plain sentence)."""
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            if error.cls_name == "DagsterAssetCheckFailedError":
                break  # a blocking check failed: name it, below
            while error is not None:
                if error.cls_name in ("InputFileError", "ReferenceFileError"):
                    return 2, error.message.strip().splitlines()[-1].split(": ", 1)[-1]
                if error.cls_name in ("DatabaseBusyError", "ShardFileMissingError"):
                    return 1, error.message.strip().splitlines()[-1].split(": ", 1)[-1]
                if error.cause is None:
                    break
                error = error.cause
            return 1, f"{event.step_key} failed: {error.message.strip().splitlines()[0]}"
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            data = event.event_specific_data
            if not data.passed:
                return 1, (f"check {data.check_name} failed on {data.asset_key.to_user_string()}: "
                           "nothing was scrubbed")
    return 1, "the run failed"


def new_secret_note(con) -> str:
    """A note when a run (a scrub, a rejudge) is about to make a site secret for a database that holds earlier
    batches (the file deleted, or the working folder moved): patients get other masks than in its earlier reports."""
    from assets.shards import batches_held

    from .settings import home

    if os.environ.get("CLAIMSCRUB_SECRET") or (home() / "site-secret").exists() or not batches_held(con):
        return ""
    return (f"{home() / 'site-secret'} is missing, and this database holds earlier batches: a new site secret is "
            "made, so patients' masks (P-...) differ from those of earlier reports; restore the file from a backup "
            "to keep them")
