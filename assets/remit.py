"""835 remittances in DuckDB: loaded once per file (by content hash), then matched to scrubbed claim lines.

A service line of an 835 matches a scrubbed line of the same claim (CLP01 = the claim_id that went out in
CLM01) by its line item control number (REF*6R, which carries the line number), else by its position
among the claim's lines of the same code. A line is denied when the payer paid nothing (SVC03 = 0) and
adjusted it in group CO or OA for a reason other than CARC 45 (the contractual write-down of a paid line).
"""

from pathlib import Path

import pandas as pd

from .readers import file_sha256
from .tables import FINISHED_BATCHES
from .tables import ensure_schema as ensure_claim_schema
from .x12 import read_835

SCHEMA = """
create table if not exists remit_files (
    sha256 varchar primary key, source_file varchar, path varchar, loaded_at timestamp,
    claim_payments integer, service_lines integer);
create table if not exists remit_claims (
    sha256 varchar, claim_seq integer, claim_id varchar, status varchar, charge decimal(14,2),
    paid decimal(14,2), payer varchar, segment bigint, issued date);
-- A database of an earlier version: its remittances' claim payments had no date (null: the oldest answer).
alter table remit_claims add column if not exists issued date;
create table if not exists remit_lines (
    sha256 varchar, line_seq integer, claim_seq integer, claim_id varchar, position integer, hcpcs varchar,
    paid_hcpcs varchar, modifiers varchar, charge decimal(14,2), paid decimal(14,2), units decimal(12,3),
    ref_6r varchar, service_date varchar, payer varchar, segment bigint);
create table if not exists remit_adjustments (
    sha256 varchar, claim_seq integer, line_seq integer, group_code varchar, carc varchar,
    amount decimal(14,2), quantity decimal(12,3), segment bigint);
"""

# Typed columns of each table; the reader hands over text, cast here (an unreadable amount stays null).
COLUMNS = {
    "remit_claims": {"claim_seq": "integer", "claim_id": None, "status": None, "charge": "decimal(14,2)",
                     "paid": "decimal(14,2)", "payer": None, "segment": "bigint", "issued": "date"},
    "remit_lines": {"line_seq": "integer", "claim_seq": "integer", "claim_id": None, "position": "integer",
                    "hcpcs": None, "paid_hcpcs": None, "modifiers": None, "charge": "decimal(14,2)",
                    "paid": "decimal(14,2)", "units": "decimal(12,3)", "ref_6r": None, "service_date": None,
                    "payer": None, "segment": "bigint"},
    "remit_adjustments": {"claim_seq": "integer", "line_seq": "integer", "group_code": None, "carc": None,
                          "amount": "decimal(14,2)", "quantity": "decimal(12,3)", "segment": "bigint"},
}

# Every remittance line with its denial and the scrubbed line it answers (batch_id/line_id, null if none).
REMIT_LINE_STATUS = f"""
create or replace temp table remit_line_status as
with denials as (
    select sha256, line_seq, group_code, carc, sum(amount) over (partition by sha256, line_seq) as amount,
           row_number() over (partition by sha256, line_seq order by amount desc, segment, carc) as rank
    from remit_adjustments
    where line_seq is not null and group_code in ('CO', 'OA') and carc <> '45'
),
lines as (
    select r.*, c.status, c.issued, f.loaded_at,
           row_number() over (partition by r.sha256, r.claim_seq, r.hcpcs order by r.line_seq) as code_position
    from remit_lines r
    join remit_claims c on c.sha256 = r.sha256 and c.claim_seq = r.claim_seq
    join remit_files f on f.sha256 = r.sha256
),
-- The claim's batch a remittance answers: its latest in the order batches were first read (batch_order:
-- rescrubbing an earlier batch rewrites its start time, and must not make its superseded claims the ones
-- remittances match) among those scrubbed before the day the answer was issued; a correction scrubbed since is
-- not what it answers. Where none was scrubbed before it (an answer dated before any scrub), the latest.
claim_batches as (
    select l.claim_id, l.batch_id, {{'seq': coalesce(o.seq, 0), 'started': b.started_at}} as place,
           cast(b.started_at as date) as scrubbed_on
    from (select distinct claim_id, batch_id from claim_lines) l
    join batches b on b.batch_id = l.batch_id
    left join batch_order o on o.batch_id = l.batch_id
    where l.claim_id in (select claim_id from remit_claims)
      -- A run killed before its reports (no run_history row) scrubbed nothing: its findings were never seen, and
      -- the payer's answer is not weighed against them.
      and l.batch_id in ({FINISHED_BATCHES})
),
answered as (
    select c.sha256, c.claim_seq, c.claim_id,
           coalesce(arg_max(b.batch_id, b.place) filter (where b.scrubbed_on < c.issued),
                    arg_max(b.batch_id, b.place)) as batch_id
    from remit_claims c join claim_batches b on b.claim_id = c.claim_id
    group by all
),
answered_batches as (select distinct claim_id, batch_id from answered),
-- The claim's rows as it was sent, quarantined ones too (the payer answers every line billed): a line's
-- position among the claim's rows of its code is counted over them all, as the remittance's is.
sent as (
    select r.batch_id, (r.file_index::bigint << 40) + r.source_row as line_id, r.claim_id,
           try_cast(r.line_number_num as integer) as line_number, r.hcpcs, coalesce(r.scrubbable, false) as scrubbed,
           row_number() over (partition by r.batch_id, r.claim_id, r.hcpcs
                              order by r.line_number_num, r.file_index, r.source_row) as code_position
    from raw_claim_rows r join answered_batches using (claim_id, batch_id)
    where r.hcpcs is not null
),
scrubbed as (
    select batch_id, line_id, claim_id, line_number, hcpcs, code_position from sent where scrubbed
),
-- The line numbers of those claims' quarantined rows: a remittance line whose REF*6R names one answers that
-- row, which was never scrubbed, and no other line by its position.
quarantined as (
    select q.batch_id, q.claim_id, try_cast(q.line_number as integer) as line_number
    from claim_quarantine q join answered_batches using (claim_id, batch_id)
)
select r.sha256, r.line_seq, r.claim_id, r.hcpcs, r.payer, r.status, r.issued, r.loaded_at,
       -- The line a remittance line answers: the scrubbed line it matched, else its REF*6R (`01` is line
       -- 1), else its code and position; answers of one line by different keys are answers of one line.
       coalesce('line ' || coalesce(by_ref.batch_id, by_code.batch_id) || ' '
                    || coalesce(by_ref.line_id, by_code.line_id),
                'ref ' || coalesce(cast(try_cast(r.ref_6r as integer) as varchar), r.ref_6r),
                'code ' || r.hcpcs || ' #' || r.code_position) as line_key,
       coalesce(by_ref.batch_id, by_code.batch_id) as batch_id,
       coalesce(by_ref.line_id, by_code.line_id) as line_id,
       coalesce(by_ref.line_number, by_code.line_number) as line_number,
       r.paid = 0 and d.carc is not null as denied,
       d.group_code, d.carc, d.amount as denied_amount
from lines r
left join answered a on a.sha256 = r.sha256 and a.claim_seq = r.claim_seq
-- REF*6R is the line item control number the claim sent: its line number where the codes agree (a system that
-- numbers its items across a file sends others, and a line of another code is not the one answered).
left join scrubbed by_ref
       on by_ref.batch_id = a.batch_id and by_ref.claim_id = r.claim_id
      and by_ref.line_number = try_cast(r.ref_6r as integer) and by_ref.hcpcs = r.hcpcs
left join scrubbed by_code
       on by_ref.line_id is null and by_code.batch_id = a.batch_id and by_code.claim_id = r.claim_id
      and by_code.hcpcs = r.hcpcs and by_code.code_position = r.code_position
      and not exists (select 1 from quarantined q
                      where q.batch_id = a.batch_id and q.claim_id = r.claim_id
                        and q.line_number = try_cast(r.ref_6r as integer))
left join denials d on d.sha256 = r.sha256 and d.line_seq = r.line_seq and d.rank = 1
"""

# What the payer last said about each service line (a reversal, CLP02 22, never counts), and about each
# scrubbed line that a remittance answers: the answer issued last (its 835's production date, else its payment
# date), whatever order the files were loaded in; of one day, the one loaded last.
LATEST_FIRST = "issued desc nulls last, loaded_at desc, sha256 desc, line_seq desc"
OUTCOMES = f"""
create or replace temp table remit_outcomes as
select * exclude (recency) from (
    select *, row_number() over (partition by claim_id, line_key order by {LATEST_FIRST}) as recency
    from remit_line_status where status <> '22'
) where recency = 1;
create or replace temp table line_outcomes as
select * exclude (recency) from (
    select *, row_number() over (partition by batch_id, line_id order by {LATEST_FIRST}) as recency
    from remit_outcomes where line_id is not null
) where recency = 1;
"""


def ensure_schema(con) -> None:
    ensure_claim_schema(con)
    ensure_remit_schema(con)


def ensure_remit_schema(con) -> None:
    """The remittance tables alone: what a stage that already reads every shard (attach_all) may still make,
    where the claim schema's changes would meet the views over the shards."""
    con.execute(SCHEMA)


def _insert(con, table: str, sha256: str, records: list[dict]) -> None:
    if not records:
        return
    columns = COLUMNS[table]
    frame = pd.DataFrame.from_records(records, columns=list(columns)).astype("object")
    select = ", ".join(f"try_cast({name} as {kind})" if kind else name for name, kind in columns.items())
    con.register("incoming_remit", frame)
    try:
        con.execute(f"insert into {table} select ?, {select} from incoming_remit", [sha256])
    finally:
        con.unregister("incoming_remit")


def load_remittance(con, path: Path, name: str) -> dict:
    """Load one 835 file unless a file with the same content was loaded before. Returns what was done."""
    sha256 = file_sha256(path)
    known = con.execute("select claim_payments, service_lines from remit_files where sha256 = ?",
                        [sha256]).fetchall()
    if known:
        return {"file": name, "sha256": sha256, "loaded": False, "claim_payments": known[0][0],
                "service_lines": known[0][1]}
    remittance = read_835(path)
    con.execute("insert into remit_files values (?, ?, ?, current_timestamp, ?, ?)",
                [sha256, name, str(path), len(remittance.claims), len(remittance.lines)])
    _insert(con, "remit_claims", sha256, remittance.claims)
    _insert(con, "remit_lines", sha256, remittance.lines)
    _insert(con, "remit_adjustments", sha256, remittance.adjustments)
    return {"file": name, "sha256": sha256, "loaded": True, "claim_payments": len(remittance.claims),
            "service_lines": len(remittance.lines)}


def match_remittances(con) -> None:
    """(Re)build the temp tables remit_line_status, remit_outcomes and line_outcomes."""
    con.execute(REMIT_LINE_STATUS)
    con.execute(OUTCOMES)


def file_matches(con, sha256: str) -> dict:
    """How many of one file's service lines answer a scrubbed line, and how many of them were denied (a reversal,
    CLP02 22, takes back a payment: never a denial)."""
    matched, denied = con.execute(
        """select count(line_id), count(*) filter (where denied and status <> '22') from remit_line_status
           where sha256 = ?""",
        [sha256],
    ).fetchall()[0]
    return {"matched_lines": matched, "denied_lines": denied}
