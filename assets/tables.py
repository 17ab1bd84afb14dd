"""DuckDB tables of the claim data flow. Every table carries batch_id; a stage rewrites its batch
(delete, then insert) so that running it twice gives the same rows.

`claim_lines` is a view: the parsed rows that validation found scrubbable, with the columns a claim line
derives from them. The rows are stored once, in `raw_claim_rows`; validation marks each row of its batch
scrubbable or not (until then the mark is null)."""

import hashlib
import re

import duckdb

from reference.loaders import ensure_schema as ensure_reference_schema

from .decisions import ensure_schema as ensure_decision_schema
from .readers import parsed_rows_sql

# The export's text of the columns the quarantine quotes, beside each value parsed leniently (null when it
# does not parse): the readers parse every row once, and validation judges the parsed values. Claim and
# patient ids are stored as they are: nearly every value differs, so compressing them costs CPU on every
# insert and saves little space (a database made before keeps the compression it has).
RAW_COLUMNS = """
    batch_id varchar, file_index integer, source_file varchar, source_row bigint,
    claim_id varchar using compression uncompressed, line_number varchar, line_number_num double,
    patient_id varchar using compression uncompressed,
    date_of_service varchar, dos date, hcpcs varchar, units varchar, units_num double, modifiers varchar[],
    charge decimal(14,2), rendering_npi varchar, billing_npi varchar, place_of_service varchar,
    claim_type varchar, diagnoses varchar[], payer varchar, locality varchar, service_zip varchar,
    scrubbable boolean"""

# Places of service billed at the facility rate.
FACILITY_POS = ("19", "21", "22", "23", "24", "26", "31", "34", "41", "42", "51", "52", "53", "56", "61")
# In file order, like a row number, without sorting the batch: a file has fewer than 2^40 rows.
ROW_ID = "(file_index::bigint << 40) + source_row"


def row_id(file_index: int, source_row: int) -> int:
    """ROW_ID of one row, in Python."""
    return (file_index << 40) + source_row


# The casts cannot fail on a validated line; `try_cast` keeps a filter that DuckDB pushes below the view from
# failing on a quarantined row's out-of-range value.
CLAIM_LINES_VIEW = f"""
create or replace view claim_lines as
select batch_id, {ROW_ID} as line_id, file_index, source_file, source_row, claim_id,
       try_cast(line_number_num as integer) as line_number, patient_id, dos as date_of_service, hcpcs,
       modifiers, array_to_string(modifiers, ',') as modifier_text, try_cast(units_num as decimal(12,3)) as units,
       charge, rendering_npi, billing_npi, coalesce(rendering_npi, billing_npi) as provider, place_of_service,
       claim_type, diagnoses, payer, locality, service_zip,
       case when list_contains(modifiers, '26') then '26'
            when list_contains(modifiers, 'TC') then 'TC' else 'global' end as component,
       place_of_service in {FACILITY_POS} as facility, coalesce(shard, 0) as shard
from raw_claim_rows
where scrubbable
"""

# What prices a claim line and what judges it, the same for every line of a batch with the same date of
# service, code, component, place (facility or not), locality, ZIP and claim type: its releases, how exactly
# they match the date, its locality, its fee schedule row's status, PC/TC and multiple-procedure indicators,
# its fee per unit, and its MUE. A batch has far fewer of these than lines; each line stores its context's
# number and its own expected allowed (`priced_keys`), and `priced_lines` is the view of both: DuckDB's
# insert costs about as much per column as per value, so the context's columns are stored once per context.
CONTEXT_COLUMNS = {
    "rvu_release": "varchar", "gpci_release": "varchar", "ptp_release": "varchar", "mue_release": "varchar",
    "reference_match": "varchar", "locality": "varchar", "in_fee_schedule": "boolean", "status": "varchar",
    "pctc": "varchar", "mult_proc": "varchar", "unit_fee": "decimal(14,2)", "mue_value": "integer",
    "mai": "integer", "global_days": "varchar", "bilat_surg": "varchar", "asst_surg": "varchar",
    "co_surg": "varchar", "team_surg": "varchar", "aoc_release": "varchar", "price_note": "varchar"}
# Columns price contexts gained after they were first stored: a database made before gains them (empty for its
# earlier batches, which keep the judgement they had).
ADDED_CONTEXT_COLUMNS = ["global_days", "bilat_surg", "asst_surg", "co_surg", "team_surg", "aoc_release",
                         "price_note"]

# The columns of priced_lines as the table was before the contexts: the line's expected allowed after its fee.
PRICED_LINES_VIEW = f"""
create or replace view priced_lines as
select k.batch_id, k.line_id,
       {", ".join(f"c.{column}" + (", k.expected_allowed" if column == "unit_fee" else "")
                  for column in CONTEXT_COLUMNS)}
from priced_keys k
join price_contexts c on c.batch_id = k.batch_id and c.context_id = k.context_id
"""

SCHEMA = f"""
create table if not exists batches (
    batch_id varchar primary key, started_at timestamp, files varchar);
create table if not exists batch_files (
    batch_id varchar, file_index integer, source_file varchar, path varchar, sha256 varchar,
    kind varchar, rows_read bigint);
create table if not exists raw_claim_rows ({RAW_COLUMNS});
-- The files a nightly batch set aside, each with why it could not be read as a claim export (the command
-- refuses its run instead): named in summary.json and on the Summary sheet.
create table if not exists refused_files (
    batch_id varchar, file_index integer, source_file varchar, path varchar, sha256 varchar, reason varchar);
create table if not exists claim_quarantine (
    batch_id varchar, file_index integer, source_file varchar, source_row bigint, claim_id varchar,
    line_number varchar, reasons varchar);
create table if not exists price_contexts (
    batch_id varchar, context_id integer, {", ".join(f"{name} {kind}" for name, kind in CONTEXT_COLUMNS.items())});
create table if not exists priced_keys (
    batch_id varchar, line_id bigint, context_id integer, expected_allowed decimal(14,2));
create table if not exists line_flags (
    batch_id varchar, line_id bigint, rule_id varchar, category varchar, severity varchar, carc varchar,
    dollars_at_risk decimal(14,2), message varchar, partner_line_id bigint, ptp_column_1 varchar,
    ptp_column_2 varchar, ptp_modifier_indicator varchar, ptp_rationale varchar, partner_batch varchar);
create table if not exists run_history (
    batch_id varchar primary key, started_at timestamp, finished_at timestamp, files varchar,
    file_count integer, rows_read bigint, lines_scrubbed bigint, rows_quarantined bigint, findings bigint, deny_findings bigint,
    dollars_at_risk decimal(14,2));
alter table line_flags add column if not exists partner_batch varchar;
-- Where a run's files came from (an inbox, or file names without their dates): the trend compares like with
-- like.
alter table run_history add column if not exists source varchar;
-- The partner line's claim and line number, as the judge saw them (null in findings of an older version).
alter table line_flags add column if not exists partner_claim_id varchar;
alter table line_flags add column if not exists partner_line_number integer;
create table if not exists batch_order (batch_id varchar primary key, seq bigint);
-- Which claims each batch sent, quarantined rows included, and whether another batch sent the claim too
-- (`again`): history leaves out a version that a later one replaced, wherever its lines are stored. A version
-- is known by its patient and its content (ROW_CONTENT; null in sends of an older version).
create table if not exists claim_sends (batch_id varchar, claim_id varchar, again boolean);
alter table claim_sends add column if not exists patient varchar;
alter table claim_sends add column if not exists content hugeint;
-- How the contents in claim_sends were worked out (CONTENT_KEY): another way, and they are worked out again.
create table if not exists claim_sends_content (key varchar);
-- The line's patient shard (assets/shards.py), stored when it is read (null in rows of an older version: shard 0).
alter table raw_claim_rows add column if not exists shard smallint;
-- Whether the row had text in more cells than its file's header names (a CSV value holding the delimiter,
-- unquoted, moves every cell after it): such a row is quarantined (null in rows of an older version).
alter table raw_claim_rows add column if not exists extra_cells boolean;
-- Whether the row is a line of a claim that voids one sent before (an 837P's frequency code 8): it bills
-- nothing, and is quarantined saying so (null in rows of an older version).
alter table raw_claim_rows add column if not exists void_claim boolean;
-- What a batch was priced and judged with, besides the reference releases: `rejudge` judges it again alike
-- (null in batches of an older version).
alter table batches add column if not exists with_history boolean;
alter table batches add column if not exists default_locality varchar;
alter table batches add column if not exists rvu_variant varchar;
alter table batches add column if not exists work_floor_through varchar;
""" + "".join(f"alter table price_contexts add column if not exists {name} {CONTEXT_COLUMNS[name]};\n"
              for name in ADDED_CONTEXT_COLUMNS)


LINE_FLAGS_COLUMNS = """
    batch_id varchar, line_id bigint, rule_id varchar, category varchar, severity varchar, carc varchar,
    dollars_at_risk decimal(14,2), message varchar, partner_line_id bigint, ptp_column_1 varchar,
    ptp_column_2 varchar, ptp_modifier_indicator varchar, ptp_rationale varchar, partner_batch varchar,
    partner_claim_id varchar, partner_line_number integer"""


def shard_schema_sql() -> str:
    """The claim tables of a shard's own file (assets/shards.py), with the columns the main file's have."""
    contexts = ", ".join(f"{name} {kind}" for name, kind in CONTEXT_COLUMNS.items())
    return f"""
create table if not exists raw_claim_rows ({RAW_COLUMNS}, shard smallint, extra_cells boolean, void_claim boolean);
create table if not exists price_contexts (batch_id varchar, context_id integer, {contexts});
create table if not exists priced_keys (
    batch_id varchar, line_id bigint, context_id integer, expected_allowed decimal(14,2));
create table if not exists line_flags ({LINE_FLAGS_COLUMNS});
{CLAIM_LINES_VIEW};
{PRICED_LINES_VIEW};
"""


def ensure_schema(con) -> None:
    ensure_reference_schema(con)
    _parse_text_raw_rows(con)
    sends_kept = (table_kind(con, "claim_sends") is not None and table_kind(con, "claim_sends_content") is not None
                  and con.execute("select count(*) from claim_sends_content where key = ?",
                                  [CONTENT_KEY]).fetchall()[0][0] > 0)
    con.execute(SCHEMA)
    if not sends_kept:
        _claim_sends_of_stored_batches(con)
        con.execute("delete from claim_sends_content")
        con.execute("insert into claim_sends_content values (?)", [CONTENT_KEY])
    ensure_decision_schema(con)
    _stored_lines_to_view(con)
    con.execute(CLAIM_LINES_VIEW)
    _stored_prices_to_view(con)
    con.execute(PRICED_LINES_VIEW)


def table_kind(con, name: str) -> str | None:
    """'BASE TABLE' or 'VIEW' for a table of the database's main schema, None where there is none."""
    found = con.execute(
        """select table_type from information_schema.tables
           where table_catalog = current_database() and table_schema = 'main' and table_name = ?""",
        [name],
    ).fetchall()
    return found[0][0] if found else None


def _has_column(con, table: str, column: str) -> bool:
    return con.execute(
        """select count(*) from duckdb_columns()
           where database_name = current_database() and schema_name = 'main'
             and table_name = ? and column_name = ?""",
        [table, column],
    ).fetchall()[0][0] > 0


def _stored_lines_to_view(con) -> None:
    """A database that stored claim_lines as a table gets the rows of its validated batches marked, once:
    scrubbable unless quarantined. The view then derives the same lines from the raw rows."""
    has_mark = _has_column(con, "raw_claim_rows", "scrubbable")
    stored = table_kind(con, "claim_lines") == "BASE TABLE"
    if has_mark and not stored:
        return
    con.execute("begin transaction")
    if not has_mark:
        con.execute("alter table raw_claim_rows add column scrubbable boolean")
    if stored:
        con.execute(
            """update raw_claim_rows r
               set scrubbable = not exists (select 1 from claim_quarantine q where q.batch_id = r.batch_id
                                            and q.file_index = r.file_index and q.source_row = r.source_row)
               where batch_id in (select batch_id from claim_lines union select batch_id from claim_quarantine)""")
        con.execute("drop table claim_lines")
    con.execute("commit")


def _stored_prices_to_view(con) -> None:
    """A database that stored each line's prices in full (`priced_lines` as a table, with the columns of any
    earlier release) gets them split, once, into its batches' price contexts and each line's context."""
    if table_kind(con, "priced_lines") != "BASE TABLE":
        return
    stored = [column for column in CONTEXT_COLUMNS if _has_column(con, "priced_lines", column)]
    same = " and ".join(f"c.{column} is not distinct from s.{column}" for column in stored)
    con.execute("begin transaction")
    con.execute("alter table priced_lines rename to priced_lines_stored")
    con.execute(f"""insert into price_contexts (batch_id, context_id, {", ".join(stored)})
                    select batch_id, row_number() over (partition by batch_id)::integer, * exclude (batch_id)
                    from (select distinct batch_id, {", ".join(stored)} from priced_lines_stored)""")
    con.execute(f"""insert into priced_keys
                    select s.batch_id, s.line_id, c.context_id, s.expected_allowed
                    from priced_lines_stored s join price_contexts c on c.batch_id = s.batch_id and {same}""")
    con.execute("drop table priced_lines_stored")
    con.execute("commit")


def _parse_text_raw_rows(con) -> None:
    """A database whose raw_claim_rows still holds every cell as text gets its rows parsed, once."""
    if not _has_column(con, "raw_claim_rows", "modifier_1"):
        return
    con.execute("begin transaction")
    con.execute("alter table raw_claim_rows rename to raw_claim_rows_text")
    con.execute(f"create table raw_claim_rows ({RAW_COLUMNS}, shard smallint, extra_cells boolean, "
                "void_claim boolean)")
    con.execute(f"""insert into raw_claim_rows
                    {parsed_rows_sql('select *, false as extra_cells, false as void_claim from raw_claim_rows_text',
                                     'batch_id, file_index, source_file')}""")
    con.execute("drop table raw_claim_rows_text")
    con.execute("commit")


# The batches whose runs finished: a run killed before its reports (no run_history row: recorded with them) scrubbed
# nothing, and is not history, not judged again and not answered by a remittance.
FINISHED_BATCHES = "select batch_id from run_history"


def clear_batch(con, table: str, batch_id: str) -> None:
    con.execute(f"delete from {table} where batch_id = ?", [batch_id])


def named_parameters(sql: str, values: dict) -> dict:
    """The named values a statement uses (DuckDB refuses values a statement does not name)."""
    return {name: value for name, value in values.items() if re.search(rf"\${name}\b", sql)}


# A claim's content: what its rows bill, row by row (the rows' order aside), as a sum of the rows' hashes.
# DuckDB's hash() may change with its version: a claim sent again across such an upgrade then reads as
# changed, and replaces its earlier version as a correction does.
# Values as read, not as written: 05/04/2026 and 2026-05-04, or units 1.0 and 1, are the same row (the text only
# where it could not be read: a quarantined row); a rendering NPI left blank is the billing NPI, as an 837P
# without one is read. Read values are hashed as they are: cast to text, they cost more than the rest.
CONTENT_COLUMNS = {"line_number_num": "line_number_num",
                   "line_number": "case when line_number_num is null then line_number end",
                   "patient_id": "patient_id", "dos": "dos",
                   "date_of_service": "case when dos is null then date_of_service end",
                   "hcpcs": "hcpcs", "units_num": "units_num",
                   "units": "case when units_num is null then units end",
                   "modifiers": "modifiers", "charge": "charge",
                   "rendering_npi": "coalesce(rendering_npi, billing_npi)", "billing_npi": "billing_npi",
                   "place_of_service": "place_of_service", "claim_type": "claim_type", "diagnoses": "diagnoses",
                   "payer": "payer", "locality": "locality", "service_zip": "service_zip",
                   "void_claim": "void_claim"}
ROW_CONTENT = f"hash({', '.join(CONTENT_COLUMNS.values())})"
# The contents stored with a site's sends hold only against the same expression, hashed by the same DuckDB: a
# database opened by a version that differs in either works them out again from the stored rows, once (an
# unchanged claim sent again would otherwise read as changed, and its first version leave history).
CONTENT_KEY = hashlib.sha256(f"{ROW_CONTENT}|duckdb {duckdb.__version__}".encode()).hexdigest()[:16]
CLAIM_SEND_COLUMNS = f"""batch_id, claim_id, false as again, min(patient_id) as patient,
       sum({ROW_CONTENT}) as content"""

CLAIM_SENDS = (
    "delete from claim_sends where batch_id = $batch",
    f"""insert into claim_sends by name
       select {CLAIM_SEND_COLUMNS} from raw_claim_rows
       where batch_id = $batch and claim_id is not null group by batch_id, claim_id""",
    """update claim_sends set again = true
       where not again
         and claim_id in (select claim_id from claim_sends where batch_id = $batch
                          intersect select claim_id from claim_sends where batch_id <> $batch)""",
)

# A database made before claim_sends, or before its versions' patient and content: its stored batches' rows
# ({rows}: the main file's raw rows, or a shard file's), then their claims, then which of them more than one
# batch sent. A claim's rows may lie in several shard files (a claim of two patients): its content is summed
# over all of them.
STORED_CLAIM_ROWS = """
insert into stored_claim_rows
select batch_id, claim_id, patient_id, {content} from {rows} where claim_id is not null
"""
STORED_CLAIM_SENDS = """
insert into claim_sends by name
select batch_id, claim_id, false as again, min(patient) as patient, sum(content) as content
from stored_claim_rows group by batch_id, claim_id
"""
SENT_AGAIN = """
update claim_sends set again = true
where claim_id in (select claim_id from claim_sends group by claim_id having count(*) > 1)
"""


def record_claim_sends(con, batch_id: str) -> None:
    """The claims a batch sent, read from its raw rows (while they are all in the main file): a claim sent
    again replaces its earlier versions in history even where its lines are stored in another patient's
    shard file, or all of them were quarantined."""
    for statement in CLAIM_SENDS:
        con.execute(statement, {"batch": batch_id})


def _content_of(con, database: str) -> str:
    """ROW_CONTENT over the raw rows of `database` (the main file's, or an attached shard file's): a column that
    rows of an older version lack (a shard file not opened since) counts as empty, as it would in a new row."""
    name = "current_database()" if database == "main" else "$db"
    held = {row[0] for row in con.execute(
        f"select column_name from duckdb_columns() where database_name = {name} and schema_name = 'main' "
        "and table_name = 'raw_claim_rows'", {} if database == "main" else {"db": database}).fetchall()}
    return f"hash({', '.join(value if name in held else 'null' for name, value in CONTENT_COLUMNS.items())})"


def _claim_sends_of_stored_batches(con) -> None:
    """A database made before claim_sends, or before their patient and content: its stored batches' claims, from
    the main file and, for a site stored in shard files, from each of those."""
    from pathlib import Path

    from .shards import read_layout, shard_file

    con.execute("delete from claim_sends")
    con.execute("create or replace temp table stored_claim_rows (batch_id varchar, claim_id varchar, "
                "patient varchar, content ubigint)")
    con.execute(STORED_CLAIM_ROWS.format(rows="raw_claim_rows", content=_content_of(con, "main")))
    layout = read_layout(con)
    database = con.execute("select path from duckdb_databases() where database_name = current_database()"
                           ).fetchall()[0][0]
    if layout.per_shard and database:
        for shard in range(layout.shards):
            path = shard_file(database, shard, layout.shards)
            if Path(path).exists():
                con.execute("attach $path as claim_sends_shard (read_only)", {"path": str(path)})
                try:
                    con.execute(STORED_CLAIM_ROWS.format(rows="claim_sends_shard.main.raw_claim_rows",
                                                         content=_content_of(con, "claim_sends_shard")))
                finally:
                    con.execute("detach claim_sends_shard")
    con.execute(STORED_CLAIM_SENDS)
    con.execute("drop table stored_claim_rows")
    con.execute(SENT_AGAIN)
