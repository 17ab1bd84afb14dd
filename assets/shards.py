"""Patient shards: the unit of a site's claim data, of a run's work and of its storage.

Every rule compares lines of one patient, so each line gets a shard when it is read: a stable hash of its
patient id modulo the site's shard count S (md5, which no DuckDB version changes; 0 for a row without a
patient id, which validation quarantines). S and the layout are the site's, fixed when its database is made
(`claimscrub db init`) and kept in its `site_layout` table; a database without one is S=1 in one file.

- `single`: everything in one DuckDB file. The judge works shard by shard on it.
- `per-shard`: the claim tables of shard k (raw rows, prices, findings) live in a file of their own beside
  the site's main file, `<name>.shard-k-of-S.duckdb`; the main file keeps the reference releases, the
  batches, the run history and the auditors' decisions. A shard's step opens its own file for writing and the
  main file read-only, so the shards of a batch can be priced and judged in separate processes, each file
  with one writer.

The same SQL runs on either layout: a shard's step names its shard's catalog first in DuckDB's search path,
and the write stage reads views that put the shards' tables end to end.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

LAYOUTS = ("single", "per-shard")
MAX_SHARDS = 256

SITE_LAYOUT = """
create table if not exists site_layout (shards integer not null, layout varchar not null, created_at timestamp)
"""

# The tables of a shard's file; claim_quarantine stays in the main file (validation is batch-wide: a claim line
# repeated across patients is judged on all of its rows).
SHARD_TABLES = ["raw_claim_rows", "price_contexts", "priced_keys", "line_flags"]
SHARD_VIEWS = ["claim_lines", "priced_lines"]
# The catalog holding the views over every shard's tables, for the stages that read the whole batch.


class LayoutError(ValueError):
    """A layout or shard count a site cannot have; the message is one sentence."""


@dataclass(frozen=True)
class Layout:
    shards: int = 1
    layout: str = "single"

    @property
    def per_shard(self) -> bool:
        return self.layout == "per-shard"

    def describe(self) -> str:
        return f"{self.shards} shard{'s' if self.shards != 1 else ''}, {self.layout} layout"


def checked(shards: int, layout: str) -> Layout:
    if layout not in LAYOUTS:
        raise LayoutError(f"--layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    if not 1 <= shards <= MAX_SHARDS:
        raise LayoutError(f"--shards {shards} is not between 1 and {MAX_SHARDS}")
    return Layout(shards, layout)


def read_layout(con) -> Layout:
    """The site's layout from its main file (S=1 in one file for a database made before layouts existed)."""
    from .tables import table_kind

    if table_kind(con, "site_layout") is None:
        return Layout()
    rows = con.execute("select shards, layout from site_layout limit 1").fetchall()
    return Layout(*rows[0]) if rows else Layout()


def write_layout(con, layout: Layout) -> None:
    con.execute(SITE_LAYOUT)
    con.execute("delete from site_layout")
    con.execute("insert into site_layout values (?, ?, current_timestamp)", [layout.shards, layout.layout])


def shard_sql(shards: int, column: str = "patient_id") -> str:
    """The shard of a row from its patient id, as SQL: md5_number(patient id) % shards, worked out from the
    number's two 64-bit halves (the remainder of a 128-bit number took DuckDB a second per million rows; the
    halves' remainders, the same value, a tenth of that)."""
    if shards == 1:
        return "0::smallint"
    number = f"md5_number({column})"
    high = f"(({number} >> 64)::ubigint % {shards})"
    low = f"(({number} & 18446744073709551615::uhugeint)::ubigint % {shards})"
    return f"coalesce(({high} * {2**64 % shards} + {low}) % {shards}, 0)::smallint"


def shard_file(database: str | Path, shard: int, shards: int) -> Path:
    """Shard k's file beside the site's main file: its name says which shard of how many it holds."""
    path = Path(database)
    return path.with_name(f"{path.stem}.shard-{shard}-of-{shards}{path.suffix or '.duckdb'}")


def shard_files(database: str | Path, layout: Layout) -> list[Path]:
    return [shard_file(database, k, layout.shards) for k in range(layout.shards)] if layout.per_shard else []


def catalog(shard: int) -> str:
    return f"shard_{shard}"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _attached(con) -> set[str]:
    return {row[0] for row in con.execute("select database_name from duckdb_databases()").fetchall()}


class ShardFileMissingError(RuntimeError):
    """A shard file of a site that holds batches is gone. The message is one sentence naming it."""


def attach_shard(con, database: str | Path, shard: int, layout: Layout, new: bool = False) -> str:
    """Attach shard k's file (made, with its tables, if new) to the connection's database; returns its
    catalog. Only a site without batches, or a reshard writing its new files (`new`), makes a file."""
    name = catalog(shard)
    if name not in _attached(con):
        path = shard_file(database, shard, layout.shards)
        if not path.exists() and not new:
            held = batches_held(con)
            if held:
                # Made again empty, it would hide its patients' lines from history and from a reshard for good.
                raise ShardFileMissingError(
                    f"{path}: this shard file of the site is missing, and the site holds {held} batch"
                    f"{'es' if held != 1 else ''}: restore it from a backup; claimscrub does not make it again empty")
        # The process of the step before (a --workers run) may still be letting go of the file as this one
        # starts: its lock is waited for, as the main file's is.
        from pipelines.database import waiting_for_lock
        from pipelines.settings import lock_timeout

        waiting_for_lock(lambda: con.execute(f"attach $path as {name}", {"path": str(path)}), path, lock_timeout())
    ensure_shard_schema(con, name)
    return name


def batches_held(con) -> int:
    """How many batches the site's main file holds (0 for a database with no batches table yet)."""
    from .tables import table_kind

    if table_kind(con, "batches") is None:
        return 0
    return con.execute("select count(*) from batches").fetchall()[0][0]


def ensure_shard_schema(con, name: str) -> None:
    """A shard file's tables: the claim tables of the main schema, as the main file has them."""
    from .tables import shard_schema_sql

    site = con.execute("select current_database()").fetchall()[0][0]
    con.execute(f"use {name}")
    try:
        con.execute(shard_schema_sql())
        # Named in full: a connection reading every shard has temporary views of these tables' names.
        con.execute(f"alter table {name}.main.raw_claim_rows add column if not exists extra_cells boolean")
        con.execute(f"alter table {name}.main.raw_claim_rows add column if not exists void_claim boolean")
    finally:
        con.execute(f"use {_quoted(site)}")


def search_shard_first(con, name: str, site: str) -> None:
    """Unqualified names of this connection find shard `name`'s tables first, then the main file's; what it
    creates (other than temporary tables) goes to the shard."""
    con.execute(f"use {name}")
    con.execute(f"set search_path = '{_quoted(name)}.main,{_quoted(site)}.main'")


def attach_all(con, database: str | Path, layout: Layout) -> None:
    """For the stages that read a whole batch: every shard attached, and temporary views over them all, which
    this connection (and its cursors, through `follow`) finds before the main file's empty tables of those
    names. Temporary, not first in the search path: a table created with an unqualified name (`create table if
    not exists`) must still go to the main file."""
    if not layout.per_shard:
        return
    sources = [_sources(attach_shard(con, database, k, layout)) for k in range(layout.shards)]
    for name in (*SHARD_TABLES, *SHARD_VIEWS):
        union = " union all ".join(f"select * from {shard[name]}" for shard in sources)
        con.execute(f"create or replace temp view {name} as {union}")


def _sources(name: str) -> dict[str, str]:
    """Shard catalog `name`'s tables, and its views as subqueries. A shard file's own views would find the
    temporary views of attach_all when DuckDB binds them, so they are the main file's definitions with each
    shard's tables named: a shard's price contexts are numbered in its own file, and join its own lines only."""
    return {**{table: f"{name}.main.{table}" for table in SHARD_TABLES},
            **{view: shard_view_sql(view, name) for view in SHARD_VIEWS}}


def shard_view_sql(view: str, name: str) -> str:
    """The select of the main file's view `view` (claim_lines, priced_lines) over shard `name`'s tables."""
    from .tables import CLAIM_LINES_VIEW, PRICED_LINES_VIEW

    definition = {"claim_lines": CLAIM_LINES_VIEW, "priced_lines": PRICED_LINES_VIEW}[view]
    select = definition.split(f"create or replace view {view} as", 1)[1]
    for table in SHARD_TABLES:
        select = re.sub(rf"\b(from|join) {table}\b", rf"\1 {name}.main.{table}", select)
    return f"({select.strip()})"


def spans_shards(con) -> bool:
    """Whether this connection reads a batch through the views over every shard file (attach_all)."""
    return con.execute("select count(*) from duckdb_views() where temporary and view_name = 'claim_lines'"
                       ).fetchall()[0][0] > 0


def shard_sources(con) -> list[dict[str, str]]:
    """What to read for each shard's part of a whole-batch query: one entry per shard file, naming that file's
    tables and (as subqueries) its views, for a connection that reads every shard (attach_all); else one
    entry naming the tables and views as they are. A query that joins a batch's lines to their prices and
    findings joins them shard by shard and puts the results end to end: over the views of every shard at
    once, DuckDB estimates the joins' sizes so far off that it holds whole tables in memory."""
    if not spans_shards(con):
        return [{name: name for name in (*SHARD_TABLES, *SHARD_VIEWS)}]
    attached = _attached(con)
    return [_sources(catalog(shard)) for shard in range(MAX_SHARDS) if catalog(shard) in attached]


def per_shard(con, sql: str) -> list[str]:
    """`sql` once per shard (shard_sources), each `{table}` of it (raw_claim_rows, line_flags, claim_lines,
    ...) that shard's."""
    def one(sources: dict[str, str]) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: sources.get(m.group(1), m.group(0)), sql)
    return [one(sources) for sources in shard_sources(con)]


def follow(con, cursor) -> None:
    """Give a cursor (a connection of its own) the search path of the connection it came from, and its views
    over every shard (attach_all)."""
    path = con.execute("select current_setting('search_path')").fetchall()[0][0]
    if path:
        cursor.execute(f"set search_path = '{path.replace(chr(39), chr(39) * 2)}'")
    for (sql,) in con.execute("select sql from duckdb_views() where temporary and view_name in $names",
                              {"names": [*SHARD_TABLES, *SHARD_VIEWS]}).fetchall():
        cursor.execute(sql)


def distribute(con, database: str | Path, layout: Layout, batch_id: str) -> None:
    """Move a validated batch's rows from the main file into their shards' files (a per-shard site only), one
    shard at a time, each in a transaction of its own; the batch's earlier rows there (a rerun) go first."""
    if not layout.per_shard:
        return
    site = _quoted(con.execute("select current_database()").fetchall()[0][0])
    for shard in range(layout.shards):
        name = attach_shard(con, database, shard, layout)
        con.execute("begin transaction")
        for table in SHARD_TABLES:
            con.execute(f"delete from {name}.main.{table} where batch_id = ?", [batch_id])
        con.execute(f"""insert into {name}.main.raw_claim_rows by name
                        select * from {site}.main.raw_claim_rows where batch_id = ? and shard = ?""",
                    [batch_id, shard])
        con.execute("commit")
    con.execute(f"delete from {site}.main.raw_claim_rows where batch_id = ?", [batch_id])


@contextmanager
def on_shard(con, database: str | Path, shard: int, layout: Layout):
    """A cursor of `con` (the main file's connection) that finds shard `shard`'s tables first."""
    site = con.execute("select current_database()").fetchall()[0][0]
    name = attach_shard(con, database, shard, layout)
    cursor = con.cursor()
    try:
        search_shard_first(cursor, name, site)
        yield cursor
    finally:
        cursor.close()


def each_shard(con, database: str | Path, layout: Layout):
    """For a stage that works shard by shard: (shard, a cursor of `con` that finds its tables first) for each
    shard file of a per-shard site, else (None, `con`) once."""
    if not layout.per_shard:
        yield None, con
        return
    for shard in range(layout.shards):
        with on_shard(con, database, shard, layout) as cursor:
            yield shard, cursor


SITE = "site"


@contextmanager
def shard_connection(work: dict):
    """The connection a judge step works on. The whole batch (`shard` None): the main file. One shard in the
    process that holds the main file (the in-process executor): a cursor of it with the shard's file attached.
    One shard in a process of its own (`workers` above 1): the shard's file, with the main file attached
    read-only, which every shard's process may do at once."""
    from pipelines.database import connect

    database, shard = work["database"], work["shard"]
    layout = Layout(work["shards"], work["layout"])
    config = work["connection_config"]
    if shard is None or work["config"].get("workers", 1) <= 1:
        con = connect(database, work["lock_timeout"], config=config)
        try:
            if shard is None:
                yield con
            else:
                with on_shard(con, database, shard, layout) as cursor:
                    yield cursor
        finally:
            con.close()
        return
    import duckdb

    from pipelines.database import quiet

    con = quiet(duckdb.connect(":memory:", config=config))
    try:
        name = attach_shard(con, database, shard, layout)
        _attach_read_only(con, database, work["lock_timeout"])
        search_shard_first(con, name, SITE)
        yield con
    finally:
        con.close()


def _attach_read_only(con, database: str | Path, timeout: float) -> None:
    """The main file, read-only: a step that writes it (a check of the reference tables) may hold it a moment."""
    from pipelines.database import waiting_for_lock

    waiting_for_lock(lambda: con.execute(f"attach $path as {SITE} (read_only)", {"path": str(database)}),
                     database, timeout)



def reshard(con, database: str | Path, before: Layout, after: Layout) -> int:
    """Move every stored row of the claim tables from `before` to `after`; returns the raw rows moved. All or
    nothing: new shard files are written first (removed again on failure), the main file changes in one
    transaction, and the old shard files go only once it has committed."""
    database = Path(database)
    old_files = shard_files(database, before)
    new_files = [] if not after.per_shard else shard_files(database, after)
    if set(old_files) & set(new_files):
        raise LayoutError("the new shard files would overwrite the old ones")
    site = _quoted(con.execute("select current_database()").fetchall()[0][0])
    attach_all(con, database, before)
    con.execute("reset search_path")
    # Every stored row with its new shard; contexts and keys renumbered where several files become one.
    sources = {}
    if before.per_shard:
        parts = {table: [] for table in SHARD_TABLES}
        for shard in range(before.shards):
            name = catalog(shard)
            parts["raw_claim_rows"].append(f"select * from {name}.main.raw_claim_rows")
            parts["price_contexts"].append(f"select {shard} as from_shard, * from {name}.main.price_contexts")
            parts["priced_keys"].append(f"select {shard} as from_shard, * from {name}.main.priced_keys")
            parts["line_flags"].append(f"select * from {name}.main.line_flags")
        sources = {table: " union all ".join(selects) for table, selects in parts.items()}
        # A batch not yet distributed (its run stopped after validation) is still in the main file.
        sources["raw_claim_rows"] += f" union all select * from {site}.main.raw_claim_rows"
    else:
        sources = {table: f"select * from {site}.main.{table}" for table in SHARD_TABLES}
        for table in ("price_contexts", "priced_keys"):
            sources[table] = f"select 0 as from_shard, * from {site}.main.{table}"
    con.execute(f"""create or replace temp table reshard_rows as
                    select * replace ({shard_sql(after.shards)} as shard) from ({sources['raw_claim_rows']})""")
    con.execute("""create or replace temp table reshard_line_shards as
                   select batch_id, (file_index::bigint << 40) + source_row as line_id, shard from reshard_rows""")
    con.execute(f"create or replace temp table reshard_line_flags as {sources['line_flags']}")
    # A price context is numbered within its batch and file: gathered from several files into one, each is
    # numbered again, densely, within its batch (a number of one file never meets another file's).
    con.execute(f"create or replace temp table reshard_gathered_contexts as {sources['price_contexts']}")
    con.execute(f"create or replace temp table reshard_gathered_keys as {sources['priced_keys']}")
    con.execute("""create or replace temp table reshard_context_ids as
                   select batch_id, from_shard, context_id,
                          row_number() over (partition by batch_id order by from_shard, context_id)::integer as new_id
                   from reshard_gathered_contexts""")
    for table, gathered in (("price_contexts", "reshard_gathered_contexts"), ("priced_keys", "reshard_gathered_keys")):
        con.execute(f"""create or replace temp table reshard_{table} as
                        select g.* exclude (from_shard) replace (i.new_id as context_id) from {gathered} g
                        join reshard_context_ids i using (batch_id, from_shard, context_id)""")
    moved = con.execute("select count(*) from reshard_rows").fetchall()[0][0]
    # Every row is gathered: the old shard files are let go, and the new ones take their catalogs' names
    # (attached to the old files still, the first new shard's rows would be written into the old file).
    for shard in range(before.shards if before.per_shard else 0):
        con.execute(f"detach database if exists {catalog(shard)}")
    for name in (*SHARD_TABLES, *SHARD_VIEWS):
        con.execute(f"drop view if exists temp.main.{name}")
    written: list[Path] = []
    try:
        for shard, file in enumerate(new_files):
            _remove(file)
            written.append(file)
            name = attach_shard(con, database, shard, after, new=True)
            con.execute("begin transaction")
            _copy_shard(con, f"{name}.main", shard)
            con.execute("commit")
            con.execute(f"detach {name}")
        con.execute("begin transaction")
        for table in SHARD_TABLES:
            con.execute(f"delete from {site}.main.{table}")
        if not after.per_shard:
            _copy_shard(con, f"{site}.main", None)
        write_layout(con, after)
        con.execute("commit")
    except BaseException:
        try:
            con.execute("rollback")
        except Exception:
            pass
        for file in written:
            try:
                con.execute(f"detach {catalog(new_files.index(file))}")
            except Exception:
                pass
            _remove(file)
        raise
    for shard, file in enumerate(old_files):
        try:
            con.execute(f"detach {catalog(shard)}")
        except Exception:
            pass
        _remove(file)
    return moved


def _remove(file: Path) -> None:
    """A database file and its write-ahead log, where they exist."""
    for leftover in (file, Path(f"{file}.wal")):
        leftover.unlink(missing_ok=True)


def _copy_shard(con, target: str, shard: int | None) -> None:
    """The gathered rows of one new shard (all of them for a single file) into `target`'s tables."""
    where = "" if shard is None else f"where shard = {shard}"
    of_shard = "" if shard is None else f"semi join (select * from reshard_line_shards {where}) s using (batch_id, line_id)"
    con.execute(f"insert into {target}.raw_claim_rows by name select * from reshard_rows {where}")
    con.execute(f"insert into {target}.priced_keys by name select * from reshard_priced_keys k {of_shard}")
    con.execute(f"""insert into {target}.price_contexts by name
                    select * from reshard_price_contexts c
                    where (batch_id, context_id) in (select (batch_id, context_id) from {target}.priced_keys)""")
    con.execute(f"insert into {target}.line_flags by name select * from reshard_line_flags f {of_shard}")
