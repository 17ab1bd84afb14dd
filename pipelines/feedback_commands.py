"""`claimscrub remit` and `claimscrub feedback`: front doors on the feedback assets, as `scrub` is on the
claim assets. Exit status as for scrub: 0 done, 2 for a usage error or a file that is not an 835, 1 else
(the database held by another process past CLAIMSCRUB_LOCK_TIMEOUT among them). Both hold the database for
their whole run, as a scrub does: a payer's 835 is never loaded between two stages of another run."""

from pathlib import Path

import click

from .runs import existing_database, fail, holding_database, materialize_one, out_dir_problem


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--db", default=None, help="DuckDB file (default: $CLAIMSCRUB_DB, else claimscrub.duckdb in "
                                          "$CLAIMSCRUB_HOME, .claimscrub).")
def remit(files: tuple[Path, ...], db: str | None) -> None:
    """Load 835 remittances (each file once, by content) and match them to scrubbed claim lines."""
    from assets.feedback import remittances
    from assets.readers import InputFileError, detect_kind
    from assets.x12 import inspect_835

    # Remittances are matched to the lines a database scrubbed: a --db typed wrong would make a new, empty one
    # and load them there, matching nothing, with exit 0.
    existing_database(db, "; scrub claims first (an 835 is matched to the lines they scrubbed)")
    # Every file is checked before any is loaded: a usage error leaves the database as it was.
    try:
        for path in files:
            if path.is_dir():
                raise InputFileError(f"{path}: is a folder, not an 835 file (name the files in it)")
            if detect_kind(path) != "x12":
                raise InputFileError(f"{path}: not an X12 file (an 835 starts with an ISA segment)")
            inspect_835(path)
    except InputFileError as exc:
        fail(str(exc))
    with holding_database(db):
        meta = materialize_one(remittances, {"files": [str(p.resolve()) for p in files],
                                             "file_names": [p.name for p in files]}, db)
    from assets.coverage import counted

    for outcome in meta["files"]:
        state = "loaded" if outcome["loaded"] else "already loaded, skipped"
        matched = outcome["matched_lines"]
        click.echo(
            f"{outcome['file']}: {state}: {counted(outcome['claim_payments'], 'claim payment')}, "
            f"{counted(outcome['service_lines'], 'service line')}; "
            f"{matched:,} {'matches a scrubbed line' if matched == 1 else 'match scrubbed lines'}, "
            f"{outcome['denied_lines']:,} denied."
        )


@click.command()
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Folder for the feedback.")
@click.option("--db", default=None, help="DuckDB file (default: $CLAIMSCRUB_DB, else claimscrub.duckdb in "
                                          "$CLAIMSCRUB_HOME, .claimscrub).")
@click.option("--min-count", default=5, show_default=True, type=click.IntRange(min=1),
              help="Smallest number of denied lines a denial pattern is shown with on its own.")
def feedback(out_dir: Path, db: str | None, min_count: int) -> None:
    """Write overruled_dismissals.csv, rule_outcomes.csv, missed_denials.csv, denial_patterns.csv and a workbook
    from the loaded 835s."""
    from assets.coverage import counted
    from assets.feedback import has_remittances, payer_feedback

    from .settings import standing_days

    database = existing_database(db, "; scrub claims and load 835s with claimscrub remit first")
    try:
        days = standing_days()
    except ValueError as exc:
        fail(str(exc))
    problem = out_dir_problem(out_dir)
    if problem:
        fail(problem)
    # Held from the first look to the last write: the feedback views are rebuilt from one state of the database.
    with holding_database(database) as con:
        if not has_remittances(con):
            fail(f"{database}: no 835 remittance loaded yet; load them with claimscrub remit FILE...")
        meta = materialize_one(payer_feedback, {"out_dir": str(out_dir.resolve()), "min_count": min_count,
                                                "standing_days": days}, database)
    click.echo(
        f"{counted(meta['rule_outcomes'], 'rule')} with remitted deny findings, "
        f"{counted(meta['missed_denials'], 'missed denial')}, "
        f"{counted(meta['denial_patterns'], 'denial pattern row')} (min count {min_count}), "
        f"{counted(meta['overruled_dismissals'], 'dismissal')} the payer did not agree with."
    )
    click.echo(f"Feedback: {out_dir.resolve()}")
