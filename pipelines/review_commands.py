"""`claimscrub review import`: auditors' decisions back from the workbook. Exit status as for scrub: 0 done
(rows refused one by one are named on standard error), 2 for a file that cannot be imported at all (nothing
is stored then, from any file), 1 else. It writes the database, so it holds the database as a scrub does."""

from pathlib import Path

import click

from .runs import fail

DB_HELP = "DuckDB file (default: $CLAIMSCRUB_DB or .claimscrub/claimscrub.duckdb)."


def _plural(count: int, one: str, many: str) -> str:
    return f"{count:,} {one if count == 1 else many}"


@click.group()
def review() -> None:
    """Auditors' decisions on findings: import them from the denial-risk workbook."""


@review.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--db", default=None, help=DB_HELP)
def import_command(files: tuple[Path, ...], db: str | None) -> None:
    """Read the Decision, Reason, Reviewer and Scope columns of reports' Findings sheets into the decisions
    trail: the latest decision of a finding counts; every earlier one stays."""
    import os

    from assets.review import ReviewFileError, check_files, import_reviews, read_review
    from assets.tables import ensure_schema

    from .database import DatabaseBusyError, database_for, hold_database
    from .settings import database_path, lock_timeout

    database = db or database_path()
    if not os.path.exists(database):
        fail(f"{database}: no such database; scrub claims first")
    try:
        reviews = [read_review(path) for path in files]
        timeout = lock_timeout()
    except (ReviewFileError, ValueError) as exc:
        fail(str(exc))
    waiting = f"database {database} is in use by another process; waiting up to {timeout:g} s"
    try:
        with hold_database(database_for(database), timeout,
                           on_wait=lambda: click.echo(f"claimscrub: {waiting}", err=True)) as con:
            ensure_schema(con)
            try:
                check_files(con, reviews)
            except ReviewFileError as exc:
                fail(str(exc))
            result = import_reviews(con, reviews)
    except DatabaseBusyError as exc:
        fail(str(exc), 1)
    for refusal in result.refused:
        click.echo(f"claimscrub: {refusal}", err=True)
    click.echo(f"{_plural(result.imported, 'decision', 'decisions')} imported, {result.unchanged:,} unchanged, "
               f"{_plural(len(result.refused), 'row', 'rows')} refused")
