"""`claimscrub db init | info | reshard`: a site database's patient shards and where they are stored
(assets/shards.py).

Exit status as for scrub: 0 done, 2 for a usage error (nothing written), 1 else. `init` and `reshard` hold the
database as every writer does."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from pathlib import Path

import click

from .runs import existing_database, fail, holding_database

DB_HELP = ("DuckDB file, the site's main file (default: $CLAIMSCRUB_DB, else claimscrub.duckdb in $CLAIMSCRUB_HOME, "
           ".claimscrub).")
LAYOUT_HELP = ("single: everything in one file; per-shard: each shard's claim data in a file of its own beside "
               "the main file, so that shards can be judged in parallel processes.")


@click.group()
def db() -> None:
    """The site database: its patient shards and its files."""


def _layout(shards: int, layout: str):
    from assets.shards import LayoutError, checked

    try:
        return checked(shards, layout)
    except LayoutError as exc:
        fail(str(exc))


@contextmanager
def _existing_site(database: str | None):
    """The site database named (or the default), which must exist, held as every writer holds it, with its
    schema brought up to date; yields its path and the holding connection."""
    from assets.tables import ensure_schema

    path = Path(existing_database(database, label="--db "))
    with holding_database(str(path)) as con:
        ensure_schema(con)
        yield path, con


@db.command("init")
@click.option("--db", "database", default=None, help=DB_HELP)
@click.option("--shards", type=int, required=True, help="How many patient shards (1 to 256).")
@click.option("--layout", default="single", show_default=True, help=LAYOUT_HELP)
def init_command(database: str | None, shards: int, layout: str) -> None:
    """Create a site database with its shard count and layout (a first scrub without it makes 1 shard, single)."""
    from assets.shards import attach_shard, batches_held, read_layout, write_layout
    from assets.tables import ensure_schema

    wanted = _layout(shards, layout)
    with holding_database(database) as con:
        ensure_schema(con)
        if batches_held(con):
            fail(f"{_path(con)} already holds claims ({read_layout(con).describe()}): "
                 "`claimscrub db reshard` changes it")
        made = read_layout(con)
        if made.per_shard and made != wanted:
            # Its shard files are made already: init would leave them beside a site that no longer names them.
            fail(f"{_path(con)} is set up already ({made.describe()}, its shard files made): "
                 "`claimscrub db reshard` changes it")
        con.execute("begin transaction")
        write_layout(con, wanted)
        con.execute("commit")
        for shard in range(wanted.shards) if wanted.per_shard else []:
            attach_shard(con, _path(con), shard, wanted)
        click.echo(f"{_path(con)}: {wanted.describe()}")


@db.command("info")
@click.option("--db", "database", default=None, help=DB_HELP)
def info_command(database: str | None) -> None:
    """Print the database's shard count, layout and files."""
    from assets.shards import batches_held, read_layout, shard_files

    with _existing_site(database) as (path, con):
        layout = read_layout(con)
        batches = batches_held(con)
        click.echo(f"database: {path}")
        click.echo(f"shards: {layout.shards}")
        click.echo(f"layout: {layout.layout}")
        click.echo(f"batches: {batches}")
        click.echo(f"file: {path} (main: reference releases, batches, run history, decisions"
                   f"{'' if layout.per_shard else ', claim lines, findings'})")
        for shard, file in enumerate(shard_files(path, layout)):
            state = "" if file.exists() else " (MISSING: restore it)" if batches else " (not created yet)"
            click.echo(f"file: {file} (shard {shard} of {layout.shards}: claim lines, prices, findings){state}")


@db.command("reshard")
@click.option("--db", "database", default=None, help=DB_HELP)
@click.option("--shards", type=int, required=True, help="The new number of patient shards (1 to 256).")
@click.option("--layout", default=None, help=LAYOUT_HELP + " Default: the current layout.")
def reshard_command(database: str | None, shards: int, layout: str | None) -> None:
    """Move every stored line, price and finding to a new shard count or layout, all or nothing."""
    import duckdb

    from assets.shards import read_layout, reshard

    with _existing_site(database) as (path, con):
        before = read_layout(con)
        wanted = _layout(shards, layout or before.layout)
        if wanted == before:
            click.echo(f"{path}: already {before.describe()}; nothing to move")
            return
        # Stopped by a service manager (SIGTERM) as by Ctrl-C: the new shard files, a copy of every patient's
        # rows, are removed on the way out, not left beside the site.
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            lines = reshard(con, path, before, wanted)
        except (duckdb.Error, OSError) as exc:
            # All or nothing: the new files are gone again and the main file is as it was.
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            click.echo(f"claimscrub: {path}: reshard to {wanted.describe()} failed, nothing moved: {message}",
                       err=True)
            raise SystemExit(1) from None
        finally:
            signal.signal(signal.SIGTERM, previous)
        click.echo(f"{path}: {before.describe()} -> {wanted.describe()}; {lines:,} stored rows moved")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _path(con) -> Path:
    return Path(con.execute("select path from duckdb_databases() where database_name = current_database()")
                .fetchall()[0][0])
