"""`claimscrub review import` (auditors' decisions back from the workbook) and `claimscrub rejudge` (what a newer
reference release changes for claims already judged).

Exit status as for scrub: 0 done (rows refused one by one are named on standard error), 2 for a usage error or a
file that cannot be imported at all (nothing is stored then, from any file), 1 else. Both hold the database for
their whole run, as a scrub does."""

from pathlib import Path

import click

from .runs import existing_database, fail, holding_database

DB_HELP = "DuckDB file (default: $CLAIMSCRUB_DB, else claimscrub.duckdb in $CLAIMSCRUB_HOME, .claimscrub)."


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
    from assets.review import ReviewFileError, check_files, import_reviews, read_review
    from assets.shards import attach_all, read_layout
    from assets.tables import ensure_schema

    database = existing_database(db, "; scrub claims first")
    try:
        reviews = [read_review(path) for path in files]
    except ReviewFileError as exc:
        fail(str(exc))
    with holding_database(database) as con:
        ensure_schema(con)
        attach_all(con, database, read_layout(con))  # the findings decided on are in the shards' files
        try:
            check_files(con, reviews)
        except ReviewFileError as exc:
            fail(str(exc))
        result = import_reviews(con, reviews)
    for refusal in result.refused:
        click.echo(f"claimscrub: {refusal}", err=True)
    click.echo(f"{_plural(result.imported, 'decision', 'decisions')} imported, {result.unchanged:,} unchanged, "
               f"{_plural(len(result.refused), 'row', 'rows')} refused")


@click.command()
@click.option("--since", required=True, type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Judge again the stored lines dated on or after this day, YYYY-MM-DD.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Folder for impact.csv and its workbook.")
@click.option("--db", default=None, help=DB_HELP)
@click.option("--show-ids", is_flag=True, help="Show patient identifiers in clear in the outputs.")
def rejudge(since, out_dir: Path, db: str | None, show_ids: bool) -> None:
    """After loading a newer reference release: judge the stored lines dated on or after --since under the
    releases that now cover their dates, and write what would change (the stored findings stay as they are)."""
    import os

    from assets.rejudge import rejudge_impact

    from .runs import materialize_one, new_secret_note, out_dir_problem
    from .settings import check_site_secret

    os.umask(0o077)  # the impact names claims and lines of patients: owner-only, as a scrub's outputs
    database = existing_database(db, "; scrub claims first")
    problem = out_dir_problem(out_dir)
    if problem:
        fail(problem)
    if not show_ids:
        # The impact's patient masks are compared with the site's reports: a damaged secret stops it here, as
        # it stops a scrub, not after the judgement.
        try:
            check_site_secret()
        except ValueError as exc:
            fail(str(exc))
    config = {"since": since.date().isoformat(), "out_dir": str(out_dir.resolve()), "show_ids": show_ids}
    # Held for the whole run, as a scrub holds it: the judgement is undone at its end, and nothing may
    # write between.
    with holding_database(database) as con:
        note = "" if show_ids else new_secret_note(con)
        if note:
            click.echo(f"claimscrub: {note}", err=True)
        meta = materialize_one(rejudge_impact, config, database)
    click.echo(
        f"Judged again {_plural(meta['lines'], 'stored line', 'stored lines')} dated on or after {config['since']} "
        f"({_plural(meta['batches'], 'batch', 'batches')}) under {meta['releases_now'] or 'no release'}: "
        f"findings: {meta['appears']:,} appear, {meta['disappears']:,} disappear, {meta['severity']:,} change "
        f"severity, {meta['dollars']:,} change dollars; ${meta['dollars_newly_at_risk']:,.2f} newly at risk of "
        "denial.")
    click.echo(f"Impact: {(out_dir / 'impact.csv').resolve()}")
