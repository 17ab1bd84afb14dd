"""`claimscrub reference ...`: list the loaded CMS releases, load newer ones, download them from CMS.

Loading writes to the same DuckDB file the scrub reads; DuckDB allows one writer per file, so a load while a
scrub runs on that file waits for the scrub (CLAIMSCRUB_LOCK_TIMEOUT seconds, saying so on standard error),
then loads, or exits 1 with one plain line having changed nothing.
"""

import os
import sys
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path

import click

from .runs import existing_database, fail, holding_database

DB_HELP = "DuckDB file (default: $CLAIMSCRUB_DB, else claimscrub.duckdb in $CLAIMSCRUB_HOME, .claimscrub)."


@contextmanager
def _connection(db: str | None, shows: bool = False):
    """The database held for the whole command, as every writer holds it (opened without Dagster: these commands
    stay quick to start).

    Every subcommand holds it for writing, even those that only show something: `list` makes the reference
    tables of a new database, `status` and `localities` load the bundled releases a database lacks. A read-only
    open would not spare the user the wait either: DuckDB refuses it while another process holds the file for
    writing. So each one waits its turn like any writer and says so (a scrub of millions of lines takes minutes;
    `reference status` then answers once it is done).

    A command that only shows something (`shows`) refuses a database named by --db or CLAIMSCRUB_DB that does
    not exist: a name typed wrong would be made a new database, and its answers (the bundled releases only)
    taken for the site's."""
    named = db or os.environ.get("CLAIMSCRUB_DB")
    if shows and named:
        existing_database(named, " (--db or CLAIMSCRUB_DB names it); a scrub or `claimscrub db init` makes one")
    with holding_database(db) as con:
        con.execute("set enable_progress_bar = false")
        yield con


@click.group()
def reference() -> None:
    """The CMS reference releases that judge each line: list, load, download."""


@reference.command("list")
@click.option("--db", default=None, help=DB_HELP)
def list_command(db: str | None) -> None:
    """Show every release: table, effective period, rows, source files and where it came from."""
    from reference.releases import list_releases

    with _connection(db, shows=True) as con:
        rows = list_releases(con)
    header = ("release", "table", "effective", "rows", "origin", "sources")
    table = [
        (r["release"], r["table"], f"{r['start']} to {r['end']}", f"{r['rows']:,}", r["origin"], r["sources"])
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in [header, *table]) for i in range(len(header) - 1)]
    for row in [header, *table]:
        click.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])


@reference.command("status")
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Judge staleness as of this date YYYY-MM-DD (default: today).")
@click.option("--strict", is_flag=True, help="Exit 1 when any table is stale (for a site's monitoring).")
@click.option("--db", default=None, help=DB_HELP)
def status_command(as_of: datetime | None, strict: bool, db: str | None) -> None:
    """Each reference table's newest release, its period, and how many days it has been stale."""
    from assets.coverage import FAMILIES, status_as_of
    from reference.loaders import ensure_bundled

    from .settings import rvu_variant

    try:
        variant = rvu_variant()
    except ValueError as exc:
        fail(str(exc))
    day = as_of.date() if as_of else date.today()
    with _connection(db, shows=True) as con:
        for table in sorted({t.split("_")[0] if t.startswith("mue") else t for f in FAMILIES for t in f.tables}):
            ensure_bundled(con, table)
        rows = status_as_of(con, day, variant)
    click.echo(f"Reference tables as of {day}:")
    for row in rows:
        if row["newest_release"] is None:
            state = "STALE: no release loaded"
        elif row["stale"]:
            state = f"STALE: ended {row['days_stale']:,} days ago"
        else:
            state = "current"
        period = f"{row['effective_start']} to {row['effective_end']}" if row["newest_release"] else "-"
        click.echo(f"  {row['table']:<24} {row['newest_release'] or '-':<14} {period:<26} {state}")
    stale = [row["table"] for row in rows if row["stale"]]
    if stale:
        click.echo(f"{len(stale)} stale: {', '.join(stale)}. Load newer CMS files with `claimscrub reference "
                   "load`.", err=True)
    if strict and stale:
        sys.exit(1)


@reference.command("load")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--effective", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Effective date YYYY-MM-DD, for files whose name holds none (always for the AOC CSV form).")
@click.option("--release-id", default=None, help="Name the release (default: e.g. 'PTP 2026Q3', 'RVU26A').")
@click.option("--db", default=None, help=DB_HELP)
def load_command(files: tuple[Path, ...], effective: datetime | None, release_id: str | None,
                 db: str | None) -> None:
    """Load CMS files (PPRRVU CSV or fixed-width text, GPCI, county, ZIP5, NCCI PTP, MUE, AOC workbook or CSV,
    CARC/RARC; plain, .gz or CMS .zip).

    The layout is told from each file's content, the effective date from its name (e.g.
    MCR_MUE_PractitionerServices_Eff_07-01-2026.csv, ccipra-v322r0-f1.txt, AOC_V2026Q2-MCR.xlsx) or from
    --effective. Files of one table and date make one release: give all PTP parts f1..f4 together. The QPP
    RVU file (PPRRVU2026_Apr_QPP.txt) is a release of its own, e.g. 'RVU26B QPP'."""
    from assets.coverage import FULL_SHARE, GPCI_SHARE
    from reference.loaders import ReferenceFileError
    from reference.releases import load_files

    when: date | None = effective.date() if effective else None
    # A release id is printed on every line and finding it judges, and in the workbook: one printable line.
    if release_id is not None and (not release_id.strip() or not release_id.isprintable()):
        fail(f"--release-id {release_id!r}: a release id is one line of printable text, e.g. 'PTP 2026Q3'")
    try:
        with _connection(db) as con:
            results = load_files(con, list(files), when, release_id)
            counts = {
                release.id: con.execute(
                    "select table_name, row_count from ref_releases where release_id = ? order by table_name",
                    [release.id],
                ).fetchall()
                for release, _ in results
            }
            # The most rows another release of each table holds: a release far below it is likely a part of
            # the official file (one PTP part of four, an excerpt), which would judge lines as if whole.
            largest_other = {
                (release.id, table): _largest_other(con, table, release.id)
                for release, _ in results for table, _ in counts[release.id]
            }
            # The period stored, which a release already loaded keeps whatever --effective asked this time.
            periods = {release.id: con.execute(
                "select min(effective_start), max(effective_end) from ref_releases where release_id = ?",
                [release.id]).fetchall()[0] for release, _ in results}
    except ReferenceFileError as exc:
        fail(str(exc))
    for release, loaded in results:
        rows = ", ".join(f"{count:,} {table}" for table, count in counts[release.id])
        state = "loaded" if loaded else "already loaded (same files)"
        start, end = periods[release.id]
        click.echo(f"{release.id}: {state}, {start} to {end}, {rows} "
                   f"from {'; '.join(release.names)}")
        for table, count in counts[release.id]:
            most, other = largest_other.get((release.id, table), (None, None))
            if most and table == "gpci" and count < most * GPCI_SHARE:
                click.echo(f"warning: {release.id} holds {count:,} localities against {most:,} in {other}: "
                           "lines in the others are priced nationally; if the file was cut short, download it "
                           "again", err=True)
            elif most and count < most * FULL_SHARE.get(table, 0.5):
                advice = ("if the official file comes in parts, load them all together; if it was cut short, "
                          "download it again" if table == "ptp" else
                          "an excerpt, or a file cut short? load the whole file as CMS publishes it")
                click.echo(f"warning: {release.id} holds {count:,} {table} rows against {most:,} in {other}: "
                           f"{advice}", err=True)


def _largest_other(con, table: str, release_id: str) -> tuple[int | None, str | None]:
    """The most rows of `table` another release holds, and its id: among the loaded releases and the bundled
    ones a site has not scrubbed with yet (they load on its first scrub)."""
    from reference.loaders import bundled_releases

    candidates = [tuple(row) for row in con.execute(
        "select row_count, release_id from ref_releases where table_name = ? and release_id <> ?",
        [table, release_id]).fetchall()]
    loaded = {row[0] for row in con.execute("select release_id from ref_releases").fetchall()}
    candidates += [(bundled.rows[table], bundled.id) for bundled in bundled_releases()
                   if table in bundled.rows and bundled.id != release_id and bundled.id not in loaded]
    return max(candidates, default=(None, None))


@reference.command("localities")
@click.option("--state", default="", help="Only this state (name or two letters, e.g. CA).")
@click.option("--db", default=None, help=DB_HELP)
def localities_command(state: str, db: str | None) -> None:
    """The Medicare pricing localities (MAC-LL, for --locality or a locality column) with their counties."""
    from reference.loaders import ensure_bundled

    with _connection(db, shows=True) as con:
        ensure_bundled(con, "locality_counties")
        ensure_bundled(con, "gpci")
        rows = con.execute(
            """
            with newest as (
                select * from ref_locality_counties
                where release_id = (select release_id from ref_releases where table_name = 'locality_counties'
                                    order by effective_start desc, loaded_at desc limit 1)
            ),
            gpci as (
                select * from ref_gpci
                where release_id = (select release_id from ref_releases where table_name = 'gpci'
                                    order by effective_start desc, loaded_at desc limit 1)
            )
            select n.locality_key, coalesce(g.state, ''), n.state, n.fee_schedule_area, n.counties,
                   n.release_id
            from newest n left join gpci g on g.locality_key = n.locality_key
            where $state = '' or upper(n.state) = upper($state) or upper(g.state) = upper($state)
            order by n.state, n.locality_key
            """,
            {"state": state.strip()},
        ).fetchall()
    if not rows:
        fail(f"--state {state!r}: no locality found")
    for key, abbreviation, name, area, counties, release in rows:
        click.echo(f"{key}  {abbreviation or name:<3} {area}: {counties}")
    click.echo(f"({len(rows)} localities, {rows[0][5]})")


@reference.command("download")
@click.option("--release", "release", required=True, help="'PTP 2026Q3', 'MUE 2026Q3' or 'RVU26A'.")
@click.option("--dir", "folder", type=click.Path(path_type=Path), default=None,
              help="Where to save the CMS archives (default: .claimscrub/downloads).")
@click.option("--no-load", is_flag=True, help="Only save the archives, do not load them.")
@click.option("--db", default=None, help=DB_HELP)
def download_command(release: str, folder: Path | None, no_load: bool, db: str | None) -> None:
    """Fetch a release from the CMS download pages (needs internet), then load it."""
    from reference.download import DownloadError, download_release, parse_release
    from reference.loaders import ReferenceFileError
    from reference.releases import load_files

    from .settings import home

    target = folder or home() / "downloads"
    try:
        parse_release(release)
    except DownloadError as exc:
        fail(str(exc))  # a release named wrongly is a usage error, said before any connection
    if target.exists() and not target.is_dir():
        fail(f"--dir {target}: a file stands there, not a folder")
    try:
        saved = download_release(release, target)
    except DownloadError as exc:
        fail(str(exc), 1)
    for path in saved:
        click.echo(f"saved {path}")
    if no_load:
        return
    try:
        with _connection(db) as con:
            results = load_files(con, saved)
    except ReferenceFileError as exc:
        fail(str(exc))
    for loaded, _ in results:
        click.echo(f"{loaded.id}: loaded, {loaded.effective_start} to {loaded.effective_end}")
