"""The files of one scrub run: flags.csv, lines.csv, quarantine.csv, summary.json and the workbook.

Everything is written to a sibling temporary folder and moved into place at the end, so a failed run
leaves no half-written report. summary.json is removed first and moved in last: a folder holding it holds
one complete run. Patient identifiers are replaced by a keyed hash unless asked for.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipelines.settings import run_day, site_secret
from reports.sheet_xml import PendingRows, PreparedRows
from reports.workbook import build_workbook, start_workbook

from .coverage import batch_coverage
from .decisions import (
    DECISION_COLUMNS,
    DECISION_JOINS,
    DEFAULT_STANDING_DAYS,
    decision_split,
    finding_id_sql,
    prepare_batch_decisions,
)
from .feedback import feedback_views, has_remittances
from .readers import database_settings, remove_abandoned
from .report_data import (
    FINDINGS_NAMES,
    carc_texts,
    findings_from,
    findings_table,
    gather_report,
    mark_findings,
    record_run,
    source_key,
)
from .rules import RULES, register_rules
from .shards import follow, per_shard, spans_shards
from .swap import put_in_place
from .tables import named_parameters, row_id

OUTPUT_FILES = ["flags.csv", "lines.csv", "quarantine.csv", "denial-risk-report.xlsx", "summary.json"]
SEVERITY_RANK = "case f.severity when 'deny' then 1 when 'review' then 2 else 3 end"

def units_text(column: str) -> str:
    """Units as the CSVs print them: 2, not 2.000; 1.5 as 1.5."""
    return (f"case when {column} = trunc({column}) then cast(cast({column} as bigint) as varchar) "
            f"else cast(cast({column} as double) as varchar) end")

# Every finding of the batch with what flags.csv and the workbook's Findings sheet show of it, numbered
# (`_row`) in file order; one rule's findings on one line by partner line and message, so that every run
# lists them alike. Built once, read by both. A line id sorts as its file and row. line_flags is read once:
# numbering its rows by row id in one read and joining them back in another gave an empty flags.csv after a
# rerun, when the checkpoint that the lines.csv connection makes meanwhile renumbered the rows between the
# two reads. The findings are sorted once, with what they show, and numbered as they come out of the sort
# (a streaming row_number() keeps the order it reads), rather than numbered on line_flags' keys and sorted
# again by that number after the joins. The table is stored in `_row` order, and the write stage keeps
# insertion order: flags.csv and the Findings sheet read it as stored, without sorting it again.
# `{patient}` masks the patient of each finding. Each finding carries its id and the decision that counts for
# it (assets/decisions.py: own_decisions and standing_in_force, a few rows, joined before the sort). Beyond what
# flags.csv shows, a finding keeps the facts the Worklist's instructions name (assets/worklist.py).
FINDING_ROWS = f"""
create or replace {{target}} as
select row_number() over () as _row, * exclude (_rank)
from (
    select x.*, {DECISION_COLUMNS}
    from ({{findings}}) x
    {DECISION_JOINS}
    order by x.line_id, x._rank, x.rule_id, x.partner_line_id, x.message
)
"""
# The findings of one shard (assets/shards.py: per_shard) with their lines and prices: a finding's line and
# its partner lines are its patient's, so in its shard. The lines are narrowed to those with a finding before
# the join: probing the findings' wide hash table with every line of a big batch spilled both to disk.
SHARD_FINDINGS = f"""
select {finding_id_sql("$batch", "l.claim_id", "l.line_number", "f.rule_id")} as finding_id,
       l.claim_id, l.line_number, {{patient}} as patient, l.date_of_service, l.hcpcs,
       l.modifier_text as modifiers, l.units, l.provider, l.payer, f.rule_id, f.category, f.severity,
       f.carc, f.dollars_at_risk, f.message, r.fix, {{partner}} f.ptp_column_1, f.ptp_column_2,
       f.ptp_modifier_indicator, f.ptp_rationale, p.rvu_release, p.ptp_release, p.mue_release,
       p.aoc_release, p.gpci_release, p.reference_match, l.source_file, l.source_row, f.partner_batch, f.line_id,
       f.partner_line_id,
       l.component, l.place_of_service, l.rendering_npi, l.billing_npi, p.status, p.pctc, p.mue_value,
       p.bilat_surg, p.asst_surg, p.co_surg, p.team_surg,
       {SEVERITY_RANK} as _rank
from (select * from {{line_flags}} where batch_id = $batch) f
join (select * from {{claim_lines}} where batch_id = $batch
      and line_id in (select line_id from {{line_flags}} where batch_id = $batch)) l on l.line_id = f.line_id
join (select * from {{priced_lines}} where batch_id = $batch) p on p.line_id = f.line_id
{{partner_lines}}
join rule_registry r on r.id = f.rule_id
"""
# The claim and line number of a finding's partner line, as the judge stored them, which spares a scan of
# the batch's lines; findings judged by an older version lack them, and their partner lines are looked up.
PARTNER_STORED = "f.partner_claim_id, f.partner_line_number,"
PARTNER_LOOKED_UP = "pl.claim_id as partner_claim_id, pl.line_number as partner_line_number,"
PARTNER_LINES = """
left join (select batch_id, line_id, claim_id, line_number from {claim_lines}
           where line_id in (select partner_line_id from {line_flags} where batch_id = $batch)) pl
  on pl.batch_id = coalesce(f.partner_batch, f.batch_id) and pl.line_id = f.partner_line_id"""
PARTNERS_MISSING = """
select count(*) from line_flags
where batch_id = $batch and partner_line_id is not null and partner_claim_id is null
"""


def build_finding_rows(con, batch_id: str, show_ids: bool, scratch: str | None, params: dict) -> None:
    """FINDING_ROWS for the batch, its patients masked unless asked for (`params` holds the batch and, masked,
    the site secret), as a table of `scratch` (a database every connection of the process sees, or the
    connection's own temp). On a site of several shard files each shard's findings are gathered into one
    table first, one shard after the other: joined side by side under one sort, the shards' hash tables were
    all held at once, and ten million lines on eight shard files ran out of memory there."""
    stored = con.execute(PARTNERS_MISSING, {"batch": batch_id}).fetchall()[0][0] == 0
    target = f"table {scratch}.finding_rows" if scratch else "temp table finding_rows"
    findings = (SHARD_FINDINGS.replace("{patient}", patient_expression(show_ids))
                .replace("{partner}", PARTNER_STORED if stored else PARTNER_LOOKED_UP)
                .replace("{partner_lines}", "" if stored else PARTNER_LINES))
    pieces = per_shard(con, findings)
    if len(pieces) == 1:
        sql = FINDING_ROWS.replace("{target}", target).replace("{findings}", pieces[0])
        con.execute(sql, named_parameters(sql, params))
        return
    first = f"create or replace temp table shard_finding_rows as {pieces[0]}"
    con.execute(first, named_parameters(first, params))
    try:
        for piece in pieces[1:]:
            con.execute(f"insert into shard_finding_rows {piece}", named_parameters(piece, params))
        sql = FINDING_ROWS.replace("{target}", target).replace("{findings}", "select * from shard_finding_rows")
        con.execute(sql, named_parameters(sql, params))
    finally:
        try:
            con.execute("drop table if exists shard_finding_rows")
        except duckdb.Error:
            pass  # a failed statement's own error says more; closing the connection drops the table


FLAGS_SQL = f"""
select claim_id, line_number, hcpcs, rule_id, category, severity, carc, dollars_at_risk, message, rvu_release,
       ptp_release, mue_release, source_file, source_row, date_of_service, modifiers, {units_text("units")} as units,
       provider as provider_npi, payer, fix, partner_claim_id, partner_line_number, ptp_column_1,
       ptp_column_2, ptp_modifier_indicator, ptp_rationale, reference_match, aoc_release, partner_batch,
       finding_id, decision, decision_reason, reviewer, strftime(decided_at, '%Y-%m-%d %H:%M:%S') as decided_at,
       gpci_release
from finding_rows
"""

# The columns of lines.csv: `l`, the claim line; `e`, what other tables hold of it (prices, its findings);
# {patient}, its patient, masked unless asked for.
LINE_COLUMNS = f"""
       l.source_file, l.source_row, l.claim_id, l.line_number, l.date_of_service, l.hcpcs,
       l.modifier_text as modifiers, {units_text("l.units")} as units, l.component, l.place_of_service,
       l.facility, e.locality, e.expected_allowed, e.reference_match, e.rvu_release, e.ptp_release,
       e.mue_release, e.finding_count, e.worst_severity, e.gpci_release, e.unit_fee, l.claim_type, l.payer,
       l.provider as provider_npi, {{patient}} as patient,
       case when list_contains(l.modifiers, '66') then 'team surgery (66): priced by report, not here'
            else e.price_note end as price_note, e.aoc_release"""
# Per line of the batch: its prices, and how many findings it has and the worst. {ids} narrows it to a part.
LINE_EXTRAS = f"""
select p.line_id, p.locality, p.expected_allowed, p.reference_match, p.rvu_release, p.ptp_release,
       p.mue_release, coalesce(s.finding_count, 0) as finding_count, coalesce(s.worst, '') as worst_severity,
       p.gpci_release, p.unit_fee, p.price_note, p.aoc_release
from (select * from priced_lines where batch_id = $batch {{ids}}) p
left join (
    select line_id, count(*) as finding_count,
           case min({SEVERITY_RANK}) when 1 then 'deny' when 2 then 'review' else 'info' end as worst
    from line_flags f where batch_id = $batch {{ids}} group by line_id
) s on s.line_id = p.line_id
"""

# lines.csv in file order without sorting the lines. A batch's raw rows are stored in file order (the
# readers insert them so), so its claim lines are read in that order; what else a line shows is a narrow
# query in line id order (which is file order), joined to them by position (DuckDB buffers that side of a
# positional join itself, so it is not stored first). Should a line meet another's prices (rows stored
# otherwise, by an older version, or reordered on the way), the copy stops and the lines are sorted
# instead. The masked patient comes from patient_keys: a batch has several lines per patient, and a hash per
# line costs more than looking up the hash of each patient.
OUT_OF_ORDER = "lines and their prices are not in the same order"
LINES_IN_ORDER = f"""
select {LINE_COLUMNS.replace("{patient}", "l.patient")}
from (select l.*, k.patient from claim_lines l left join patient_keys k on k.patient_id = l.patient_id
      where l.batch_id = $batch) l
positional join ({LINE_EXTRAS.replace("{ids}", "")} order by p.line_id) e
where case when l.line_id is distinct from e.line_id then error('{OUT_OF_ORDER}') else true end
"""

# The same, sorted: {lines} narrows the batch's lines to one part of lines.csv, and {ids} the rest. The
# masked patient comes from patient_keys: one hash per distinct patient of the batch, not one per line.
LINES_SQL = f"""
select {LINE_COLUMNS.replace("{patient}", "k.patient")}
from (select * from claim_lines where batch_id = $batch {{lines}}) l
join ({LINE_EXTRAS}) e on e.line_id = l.line_id
left join patient_keys k on k.patient_id = l.patient_id
order by l.file_index, l.source_row
"""
# A part's lines, from $first_id to $last_id (file and row, as line ids); the file and row bounds let DuckDB
# skip the rest of the batch.
PART_IDS = "and line_id between $first_id and $last_id"
PART_FILES = "and file_index between $first_file and $last_file"
PART_ROWS = "and source_row between $first and $last"
# lines.csv is written in parts of this many rows of a file, each sorted on its own and appended in order:
# one sort of ten million lines spills to disk, five sorts of two million do not. On a per-shard site the
# lines come through the views over every shard file (assets/shards.py: attach_all), where a sort of two
# million of them ran out of DuckDB's memory: parts are smaller there, and none is tried in file order first
# (the shards' lines interleave, so that attempt would sort the whole batch's prices only to fail).
LINES_PER_PART = 2_000_000
LINES_PER_SHARDED_PART = 400_000

PATIENT_KEYS = """
create or replace temp table patient_keys as
select patient_id, {patient} as patient
from (select distinct patient_id from claim_lines where batch_id = $batch and patient_id is not null)
"""

QUARANTINE_SQL = """
select source_file, source_row, claim_id, line_number, reasons
from claim_quarantine where batch_id = $batch order by file_index, source_row
"""


def patient_expression(show_ids: bool, column: str = "l.patient_id") -> str:
    return column if show_ids else f"'P-' || left(sha256($secret || '|' || {column}), 12)"


def _copy_csv(con, sql: str, params: dict, path: Path, header: bool = True) -> None:
    # The path is bound, never pasted: a folder may be named o'brien.
    con.execute(f"copy ({sql}) to $output_path (header {str(header).lower()}, delimiter ',')",
                {**params, "output_path": str(path)})


def _line_parts(con, batch_id: str, per_part: int) -> list[tuple[int, int, int, int]]:
    """(first file, first row, last file, last row) of each part of lines.csv, in file order: a big file is
    cut into parts of `per_part` rows, small files share one."""
    files = con.execute(
        "select file_index, max(source_row) from raw_claim_rows where batch_id = ? group by 1 order by 1",
        [batch_id]).fetchall()
    parts, current, size = [], None, 0
    for file, last in files:
        for first in range(1, last + 1, per_part):
            end = min(first + per_part - 1, last)
            if current and size + end - first + 1 > per_part:
                parts.append(current)
                current, size = None, 0
            current = (current[0], current[1], file, end) if current else (file, first, file, end)
            size += end - first + 1
    return [*parts, current] if current else [(0, 1, 0, 0)]


def _copy_lines(con, params: dict, masked: dict, show_ids: bool, path: Path) -> None:
    """lines.csv in file order: the lines as stored, else sorted."""
    con.execute(PATIENT_KEYS.replace("{patient}", patient_expression(show_ids, "patient_id")), masked)
    if spans_shards(con):
        _copy_sorted_lines(con, params, path, LINES_PER_SHARDED_PART)
        return
    try:
        _copy_csv(con, LINES_IN_ORDER, params, path)
        return
    except duckdb.InvalidInputException as exc:
        if OUT_OF_ORDER not in str(exc):
            raise
    _copy_sorted_lines(con, params, path, LINES_PER_PART)


def _copy_sorted_lines(con, params: dict, path: Path, per_part: int) -> None:
    """lines.csv, sorted part by part: the first part with the header, the others appended to it. A batch of
    one part is sorted whole."""
    parts = _line_parts(con, params["batch"], per_part)
    if len(parts) == 1:
        _copy_csv(con, LINES_SQL.replace("{lines}", "").replace("{ids}", ""), params, path)
        return
    # The patients and the finding counts are looked up in hash tables of their own: DuckDB guesses a part's
    # lines too few after its filters and, left free to, would hash the lines and probe with the patients,
    # the slower way round. The setting holds for the database, so the queries of the write stage's other
    # connection also go without that optimizer meanwhile (only in this fallback).
    con.execute("set disabled_optimizers = 'build_side_probe_side'")
    try:
        _copy_line_parts(con, params, path, parts)
    finally:
        con.execute("reset disabled_optimizers")


def _copy_line_parts(con, params: dict, path: Path, parts: list[tuple[int, int, int, int]]) -> None:
    for number, (first_file, first, last_file, last) in enumerate(parts):
        target = path if number == 0 else path.with_name(f"{path.name}.part")
        one_file = first_file == last_file
        narrow = f"{PART_FILES} {PART_IDS} {PART_ROWS if one_file else ''}"
        sql = LINES_SQL.replace("{lines}", narrow).replace("{ids}", PART_IDS)
        bounds = {"first_file": first_file, "last_file": last_file, "first_id": row_id(first_file, first),
                  "last_id": row_id(last_file, last), **({"first": first, "last": last} if one_file else {})}
        _copy_csv(con, sql, {**params, **bounds}, target, header=number == 0)
        if number:
            with open(target, "rb") as part, open(path, "ab") as whole:
                shutil.copyfileobj(part, whole, 16 << 20)
            target.unlink()


def _checkpoint(con) -> None:
    """The judge stage's findings wait in the write-ahead log for a checkpoint, which closing the database at
    the end of the run would make on one core while nothing else runs: at the start of the write stage it
    overlaps the findings' query (which reads line_flags once, as the checkpoint may renumber its rows).
    Should another connection be writing, it is left for later."""
    try:
        con.execute("checkpoint")
    except duckdb.Error:
        pass


def _write_lines(con, params: dict, masked: dict, show_ids: bool, path: Path,
                 advance: Callable[..., None], threads: int) -> None:
    """lines.csv, on a connection of its own beside the rest of the write stage (which the workbook keeps
    busy in Python for much of its time); then the rest, on the other connection alone, has all of DuckDB's
    `threads` again."""
    _copy_lines(con, params, masked, show_ids, path)
    con.execute(f"set threads = {threads}")
    advance(what="lines.csv")


def _write_findings_files(con, findings, scratch: str, params: dict, staging: Path,
                          advance: Callable[..., None]) -> None:
    """flags.csv from the findings table once the other connection has built it (`findings`, its future), and
    quarantine.csv: after lines.csv, on the same connection, which would otherwise wait for the workbook."""
    findings.result()
    _copy_csv(con, FLAGS_SQL.replace("from finding_rows", f"from {scratch}.finding_rows"), {},
              staging / "flags.csv")
    advance(what="flags.csv")
    _copy_csv(con, QUARANTINE_SQL, params, staging / "quarantine.csv")
    advance(what="quarantine.csv")


def _prepare_findings(side, side_files: Future, scratch: str, sheet: PendingRows, workbook: Path) -> PreparedRows:
    """The Findings sheet's rows, written ahead on the other connection once its files are (this runs after
    them on its thread), while this one gathers the rest of the report."""
    if side_files.exception() is not None:
        raise RuntimeError("the findings files were not written")
    findings_from(side, scratch)
    return sheet.prepare(workbook, side)


def _every(keys, counted, zero=0) -> dict:
    """`counted` (key, value pairs) with every key of `keys` (zero where it has none), in key order."""
    found = dict(counted)
    return {key: found.get(key, zero) for key in sorted({*keys, *found})}


def summarise(con, batch_id: str) -> dict:
    one = lambda sql: con.execute(sql, {"batch": batch_id}).fetchall()
    rows_read = one("select count(*) from raw_claim_rows where batch_id = $batch")[0][0]
    lines = one("select count(*) from claim_lines where batch_id = $batch")[0][0]
    quarantined = one("select count(*) from claim_quarantine where batch_id = $batch")[0][0]
    # Every severity, category and rule is named, 0 where the batch has none: a script reads a count without
    # first asking whether the batch had any.
    severities = ("deny", "info", "review")
    categories = sorted({rule.category for rule in RULES})
    counted = lambda column: one(
        f"select {column}, count(*) from line_flags where batch_id = $batch group by 1")
    by_category = _every(categories, counted("category"))
    by_severity = _every(severities, counted("severity"))
    by_rule = _every([rule.id for rule in RULES], counted("rule_id"))
    # Money is counted once per line: a line with two deny findings is one denial.
    dollars_by_severity = _every(severities, [(k, float(v)) for k, v in one(
            """select severity, sum(amount) from (
                   select distinct line_id, severity, dollars_at_risk as amount from line_flags
                   where batch_id = $batch) group by 1 order by 1""")], 0.0)
    dollars_by_category = _every(categories, [(k, float(v)) for k, v in one(
            """select category, sum(amount) from (
                   select distinct line_id, category, dollars_at_risk as amount from line_flags
                   where batch_id = $batch and severity = 'deny') group by 1 order by 1""")], 0.0)
    expected = one("select coalesce(sum(expected_allowed), 0) from priced_keys where batch_id = $batch")[0][0]
    # An MUE release is a table per service type: professional lines use its practitioner MUEs, institutional
    # ones its outpatient hospital MUEs. Which lines used which is looked up only for a batch with both kinds.
    if one("select count(*) from claim_lines where batch_id = $batch and claim_type = 'institutional'")[0][0]:
        mue_used = """rr.table_name not like 'mue_%' or (rr.release_id, rr.table_name) in (
                          select distinct p.mue_release, case when l.claim_type = 'institutional'
                                 then 'mue_outpatient_hospital' else 'mue_practitioner' end
                          from claim_lines l join priced_lines p on p.batch_id = l.batch_id and p.line_id = l.line_id
                          where l.batch_id = $batch)"""
    else:
        mue_used = "rr.table_name <> 'mue_outpatient_hospital'"
    releases = [
        {"table": t, "release": r, "effective_start": str(s), "effective_end": str(e), "source_files": f,
         "sha256": h, "rows": n}
        for t, r, s, e, f, h, n in one(
            f"""select distinct rr.table_name, rr.release_id, rr.effective_start, rr.effective_end,
                      rr.source_files, rr.sha256, rr.row_count
               from ref_releases rr
               join (select unnest([rvu_release, gpci_release, ptp_release, mue_release, aoc_release])
                            as release_id
                     from (select distinct rvu_release, gpci_release, ptp_release, mue_release, aoc_release
                           from price_contexts where batch_id = $batch)) used on used.release_id = rr.release_id
               where rr.table_name in ('rvu', 'gpci', 'ptp', 'mue_practitioner', 'mue_outpatient_hospital', 'aoc')
                 and ({mue_used})
               order by 1, 2""")
    ]
    files = [
        {"file": name, "path": path, "sha256": sha, "kind": kind, "rows_read": read,
         "lines_scrubbed": lines_n, "rows_quarantined": quarantined_n}
        for name, path, sha, kind, read, lines_n, quarantined_n in one(
            """select b.source_file, b.path, b.sha256, b.kind, b.rows_read,
                      (select count(*) from claim_lines l where l.batch_id = b.batch_id
                          and l.file_index = b.file_index),
                      (select count(*) from claim_quarantine q where q.batch_id = b.batch_id
                          and q.file_index = b.file_index)
               from batch_files b where b.batch_id = $batch order by b.file_index""")
    ]
    refused = [
        {"file": name, "path": path, "sha256": sha, "reason": reason}
        for name, path, sha, reason in one(
            """select source_file, path, sha256, reason from refused_files where batch_id = $batch
               order by file_index""")
    ]
    started = one("select started_at from batches where batch_id = $batch")
    return {
        "batch_id": batch_id,
        "rows_read": rows_read,
        "lines_scrubbed": lines,
        "rows_quarantined": quarantined,
        "findings": {"total": sum(by_severity.values()), "by_severity": by_severity,
                     "by_category": by_category, "by_rule": by_rule},
        "dollars_at_risk": {"by_severity": dollars_by_severity, "deny_by_category": dollars_by_category},
        "expected_allowed_total": float(expected),
        "reference_releases": releases,
        "reference_coverage": batch_coverage(con, batch_id),
        "files": files,
        "files_set_aside": refused,
        "started": started[0][0].replace(tzinfo=UTC).isoformat() if started else None,
        "finished": datetime.now(UTC).isoformat(),
    }


def remove_abandoned_staging(out_dir: Path) -> None:
    """Staging folders of runs that were killed, beside this run's folder, and those of other folders too: a
    nightly run's reports each go to a folder of their own batch, so a killed night's staging would otherwise
    stay for good."""
    remove_abandoned(out_dir.parent, STAGING_NAME)


# A staging folder's name, as write_outputs makes it: `.DIR.partial-`, the process id, mkstemp's suffix.
STAGING_NAME = re.compile(r"\..+\.partial-(\d+)-[A-Za-z0-9_]+")


def write_outputs(con, batch_id: str, out_dir: Path, show_ids: bool,
                  advance: Callable[..., None] = lambda *_, **__: None, source: str = "",
                  standing_days: int = DEFAULT_STANDING_DAYS) -> dict:
    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_staging(out_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-{os.getpid()}-", dir=out_dir.parent))
    os.chmod(staging, 0o700)
    # lines.csv is written on a thread while the rest is: leaving this block waits for it. The stage's
    # settings are the database's rather than one connection's, so they are set on a connection of its own
    # (which no failed transaction holds) for both threads:
    # - queries without ORDER BY write their rows in the order they read them (lines.csv, flags.csv, the
    #   Findings sheet) only while DuckDB keeps insertion order;
    # - each thread's queries get half of DuckDB's threads: two queries at once on all of them cost more in
    #   page faults and switching, and finished later.
    # flags.csv is written beside lines.csv from the findings table that the workbook reads, on the same
    # connection: the workbook's side is the shorter one, and after lines.csv it would lengthen the other.
    pool = ThreadPoolExecutor(max_workers=1)
    setting = con.cursor()
    threads = setting.execute("select current_setting('threads')").fetchall()[0][0]
    try:
        with database_settings(setting, preserve_insertion_order=True, threads=max(1, threads // 2)):
            summary = _write_files(con, batch_id, out_dir, show_ids, advance, pool, staging, threads, source,
                                   standing_days)
    finally:
        pool.shutdown()
        shutil.rmtree(staging, ignore_errors=True)
        setting.close()
    return summary


def _write_files(con, batch_id: str, out_dir: Path, show_ids: bool, advance: Callable[..., None],
                 pool: ThreadPoolExecutor, staging: Path, threads: int, source: str, standing_days: int) -> dict:
    """The stage's files, written to `staging` and moved into `out_dir` once all are there. `source` names where
    the files came from (else their names without dates: report_data.source_key)."""
    carc = carc_texts(con)
    register_rules(con, carc[1])
    params = {"batch": batch_id}
    masked = params if show_ids else {**params, "secret": site_secret()}
    # The findings table lives in an in-memory database of the process, which both connections see: the
    # other one writes flags.csv from it after lines.csv, while this one goes on to the workbook.
    scratch = f"claimscrub_findings_{uuid.uuid4().hex[:12]}"
    con.execute(f"attach ':memory:' as {scratch}")
    try:
        return _write_with_findings(con, batch_id, out_dir, show_ids, advance, pool, staging, threads, source,
                                    standing_days, carc, params, masked, scratch)
    finally:
        try:
            for name in FINDINGS_NAMES:
                con.execute(f"drop view if exists temp.{name}")
            con.execute(f"detach database if exists {scratch}")
        except duckdb.Error:
            pass  # a failed transaction still holds them: closing the connection lets them go


def _write_with_findings(con, batch_id: str, out_dir: Path, show_ids: bool, advance: Callable[..., None],
                         pool: ThreadPoolExecutor, staging: Path, threads: int, source: str,
                         standing_days: int, carc, params: dict, masked: dict, scratch: str) -> dict:
    # The other connection checkpoints, sums up the batch and writes lines.csv, then flags.csv and
    # quarantine.csv, in that order, while this one builds the findings table and the workbook.
    side = con.cursor()
    follow(con, side)
    findings = Future()
    pool.submit(_checkpoint, side)
    summarised = pool.submit(summarise, side, batch_id)
    lines = pool.submit(_write_lines, side, params, masked, show_ids, staging / "lines.csv", advance, threads)
    side_files = pool.submit(_write_findings_files, side, findings, scratch, params, staging, advance)
    findings_sheet = side_files
    try:
        # The day standing dismissals are in force as of: the run's.
        as_of = run_day()
        prepare_batch_decisions(con, batch_id, as_of, standing_days)
        try:
            build_finding_rows(con, batch_id, show_ids, scratch, masked)
            mark_findings(con, scratch)
        except BaseException as exc:
            findings.set_exception(exc)
            raise
        findings.set_result(None)
        summary = summarised.result()
        summary["source"] = source or source_key([f["file"] for f in summary["files"]])
        summary["dollars_at_risk"]["deny_by_decision"] = decision_split(con)
        (staging / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        advance(what="summary.json")
        # The workbook starts from the findings alone: the Findings sheet's rows are written on the other
        # connection, after its files, while this one builds the Worklist.
        workbook = staging / "denial-risk-report.xlsx"
        started = start_workbook(findings_table(con, summary["findings"]["total"]))
        if started.findings is not None:
            findings_sheet = started.findings.prepared = pool.submit(
                _prepare_findings, side, side_files, scratch, started.findings, workbook)
        feedback = feedback_views(con, as_of=as_of, standing_days=standing_days) if has_remittances(con) else None
        # The run joins the history (and the trend the workbook draws) only once its files are in place; a
        # failure leaves the transaction open and closing the connection rolls it back.
        con.execute("begin transaction")
        record_run(con, summary)
        report = gather_report(con, summary, carc, feedback, as_of, standing_days)
        build_workbook(workbook, report, started)
        advance(what="workbook")
        lines.result()
        side_files.result()
    finally:
        # The side connection's tasks end (or fail) before it closes and the findings table goes.
        if not findings.done():
            findings.set_exception(RuntimeError("the findings table was not built"))
        wait([side_files, findings_sheet])
        side.close()
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # The old summary.json goes aside first: a folder caught half-replaced by a kill has none, and does not look
    # complete.
    put_in_place(staging, out_dir, OUTPUT_FILES, first="summary.json")
    con.execute("commit")
    return summary
