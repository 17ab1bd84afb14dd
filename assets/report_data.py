"""The tables of the denial-risk workbook, gathered from DuckDB for one batch, and the run history its
trend reads. reports/workbook.py turns them into the file; nothing here formats a cell."""

from __future__ import annotations

import re
from datetime import datetime

from reports.sheet_xml import QueryRows
from reports.workbook import OtherRuns, Report, Table

from .decisions import DECISION_RANK, DEFAULT_STANDING_DAYS, TRAIL_SQL, report_properties, trail_count
from .rules import registry_frame
from .worklist import build_worklist, closing_note

# The big tables number their rows (`_row`) in the sheet's order; DuckDB writes them (reports/sheet_xml.py).
# The Findings sheet: every finding with the evidence an auditor reads, from the findings table that
# flags.csv is written from (assets/outputs.py), in the same order: the order the table is stored in.
FINDINGS_SQL = """
select finding_id, claim_id, line_number, patient, date_of_service, hcpcs, modifiers,
       cast(units as double) as units, provider, payer, rule_id, category, severity, carc, dollars_at_risk,
       decision, decision_reason, reviewer, decision_scope, message, fix,
       partner_claim_id || ' line ' || partner_line_number as partner_line,
       'column 1 ' || ptp_column_1 || ', column 2 ' || ptp_column_2 || ', modifier indicator '
           || ptp_modifier_indicator || coalesce(': ' || ptp_rationale, '') as ptp_edit,
       concat_ws('; ', rvu_release, gpci_release, ptp_release, mue_release, aoc_release) as releases,
       reference_match, source_file, source_row,
       case when m.at_severity[f._row] then 'yes' end as counted_once,
       case when m.in_category[f._row] then 'yes' end as counted_once_in_category, f._row
from finding_rows f
cross join finding_marks m
"""
# The finding that counts its line's dollars once in the Summary's totals: the first of the line's findings of
# its severity (and of its category too), so that a filter on the Findings sheet gives each total. Of a line's
# deny findings, the first under the decision the line counts under in the split by decision (accepted, else
# pending, else fixed, else dismissed: assets/decisions.py), so that a filter by Decision gives that too. Worked out
# on the findings' keys alone, as two lists indexed by `_row` (1, 2, ...): a window over the wide rows of
# finding_rows cost as much as building it, and reading the marks beside the rows by position would build
# the sheet's rows on one thread.
FINDING_MARKS = f"""
select list(first_at_severity order by _row) as at_severity, list(first_in_category order by _row) as in_category
from (select _row,
             row_number() over (partition by line_id, severity order by {DECISION_RANK}, _row) = 1
                 as first_at_severity,
             row_number() over (partition by line_id, severity, category order by _row) = 1 as first_in_category
      from {{findings}})
"""

# One row per line to fix (assets/worklist.py builds them from the findings table, in the sheet's order,
# leaving out the findings auditors dismissed or marked fixed).
WORKLIST_SQL = """
select claim_id, line_number, hcpcs, modifiers, units, provider, dollars_at_risk, severity, action,
       instruction, partners, resolves, explanation, also_to_review, claim_dollars, biller, date_of_service,
       payer, patient, _row
from worklist_rows
"""

CATEGORIES_SQL = """
select f.category, count(*) as findings, count(*) filter (where f.severity = 'deny') as deny_findings,
       coalesce(any_value(d.amount), 0) as dollars_at_risk
from line_flags f
left join (select category, sum(amount) as amount from (
               select distinct line_id, category, dollars_at_risk as amount from line_flags
               where batch_id = $batch and severity = 'deny') group by category) d on d.category = f.category
where f.batch_id = $batch
group by f.category
order by dollars_at_risk desc, f.category
"""

# The rules of the deny findings by the dollars of their lines (a line counts once per rule: on the Findings
# sheet, the rule and severity deny), biggest first; the Summary shows the first TOP_RULES and sums the rest.
TOP_RULES_SQL = """
select rule_id, category, severity, sum(n) as findings, sum(amount) as dollars_at_risk
from (select rule_id, category, severity, line_id, count(*) as n, max(dollars_at_risk) as amount
      from line_flags where batch_id = $batch and severity = 'deny' group by all)
group by all
order by dollars_at_risk desc, findings desc, rule_id
"""

# Providers or payers by the dollars of their lines with a deny finding, biggest first (the Summary shows the
# first TOP_RULES and sums the rest); `{key}` is a column constant. From
# the batch's findings table, which holds each finding's line (its claim and line number) with its provider
# and payer.
TOP_DENIED_SQL = """
select {key} as name, count(distinct (claim_id, patient)) as claims, sum(n) as findings,
       sum(amount) as dollars_at_risk
from (select coalesce({key}, '(none)') as {key}, claim_id, patient, line_id, count(*) as n,
             max(dollars_at_risk) as amount
      from finding_rows
      where severity = 'deny' group by all)
group by {key}
order by dollars_at_risk desc, name
"""

QUARANTINE_SQL = """
select source_file, source_row, claim_id, line_number, reasons,
       row_number() over (order by file_index, source_row) as _row
from claim_quarantine where batch_id = $batch
"""

# The last twelve runs of the batch's source (see source_key) up to the batch itself, oldest first, each named by
# its file (or how many files it had): a trend compares like with like. Runs are in the order their batches were
# first read (batch_order): an older export scrubbed again keeps its place, and the night after it is compared
# with the night before, not with the rerun.
HISTORY_SQL = """
select started_at,
       case when file_count = 1 then '(' || files || ')' else '(' || file_count || ' files)' end as files,
       lines_scrubbed, findings, deny_findings, dollars_at_risk from (
    select h.*, coalesce(o.seq, 0) as place from run_history h left join batch_order o using (batch_id)
    where h.source = $source
      and coalesce(o.seq, 0) <= coalesce((select seq from batch_order where batch_id = $batch), 1 << 62)
    order by place desc, h.started_at desc, h.batch_id desc limit 12)
order by place, started_at, batch_id
"""
# The runs of other sources the trend leaves out: how many, and the latest of them.
OTHER_SOURCES_SQL = """
select count(*), arg_max(source, started_at), max(started_at)
from run_history where source is distinct from $source
"""

# Dates as file names carry them: 2026-05-12, 2026_05_12, 20260512 (year first), 05-12-2026, 05122026 (month
# first), not inside a longer run of digits.
DATE_IN_NAME = re.compile(
    r"(?<!\d)(?:(?:19|20)\d\d[-_.]?(?:0[1-9]|1[0-2])[-_.]?(?:0[1-9]|[12]\d|3[01])"
    r"|(?:0[1-9]|1[0-2])[-_.]?(?:0[1-9]|[12]\d|3[01])[-_.]?(?:19|20)\d\d)(?!\d)")
SEPARATORS = re.compile(r"[-_. ]{2,}")


def name_without_dates(name: str) -> str:
    """A file name with its dates removed, and the separators left around them: claims_2026-05-12.csv and
    claims-20260513.csv are both claims.csv."""
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    stem = SEPARATORS.sub(lambda m: m.group(0)[0], DATE_IN_NAME.sub("", stem)).strip("-_. ") or "dated"
    return f"{stem}.{suffix}".lower() if suffix else stem.lower()


def source_key(file_names: list[str]) -> str:
    """Where a run's files came from, for the trend: their names without dates (the nightly run names its
    inbox instead, pipelines/nightly.py)."""
    return "files " + "; ".join(sorted({name_without_dates(name) for name in file_names}))


def _query_table(con, sql: str, params: dict, count: int | None = None, in_order: bool = False) -> Table:
    """A small table fetched whole, or (given its row count) a big one left as a query for DuckDB to write
    (`in_order`: see QueryRows)."""
    if count is None:
        return Table([d[0] for d in con.execute(sql, params).description], con.fetchall())
    rows = QueryRows(con, sql, params, in_order)
    return Table([name for name in rows.columns()[0] if name != "_row"], rows, count)


def carc_texts(con) -> tuple[str, dict[str, str]]:
    """The newest loaded CARC list: its release and the text of each code."""
    rows = con.execute(
        """select release_id from ref_releases where table_name = 'adjustment_codes'
           order by effective_start desc, release_id desc limit 1""").fetchall()
    if not rows:
        return "", {}
    release = rows[0][0]
    texts = con.execute(
        "select code, description from ref_adjustment_codes where release_id = ? and code_type = 'CARC'",
        [release]).fetchall()
    return release, dict(texts)


def record_run(con, summary: dict) -> None:
    """Keep the run's totals and source in run_history (one row per batch; a rerun replaces its row): the
    trend. Runs recorded before sources were kept get theirs from their file names."""
    for batch_id, files in con.execute(
            "select batch_id, files from run_history where source is null").fetchall():
        con.execute("update run_history set source = ? where batch_id = ?",
                    [source_key((files or "").split("; ")), batch_id])
    con.execute("delete from run_history where batch_id = ?", [summary["batch_id"]])
    con.execute(
        """insert into run_history (batch_id, started_at, finished_at, files, file_count, rows_read,
                                    lines_scrubbed, rows_quarantined, findings, deny_findings, dollars_at_risk,
                                    source)
           values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [summary["batch_id"], datetime.fromisoformat(summary["started"]).replace(tzinfo=None),
         datetime.fromisoformat(summary["finished"]).replace(tzinfo=None),
         "; ".join(f["file"] for f in summary["files"]), len(summary["files"]), summary["rows_read"],
         summary["lines_scrubbed"],
         summary["rows_quarantined"], summary["findings"]["total"],
         summary["findings"]["by_severity"].get("deny", 0),
         summary["dollars_at_risk"]["by_severity"].get("deny", 0.0), summary["source"]],
    )


def _with_coverage(con, reference: list[tuple], coverage: list[dict]) -> list[tuple]:
    """The Reference sheet's rows, each with what it says of the batch's dates: the newest release of each table
    says whether the batch lies within it (a stale one is listed even if no line used it); the older ones are
    those the earlier dates of the batch were judged by."""
    newest = {entry["newest_release"]: entry for entry in coverage if entry["newest_release"]}
    rows = []
    for row in reference:
        entry = newest.pop(row[0], None)
        rows.append((*row, _coverage_text(entry) if entry else ""))
    for release, entry in newest.items():
        for found in con.execute(
                """select release_id, table_name, effective_start, effective_end, source_files, sha256, row_count
                   from ref_releases where release_id = ? order by table_name""", [release]).fetchall():
            rows.append((*found, _coverage_text(entry)))
    rows += [(None, entry["table"], None, None, None, None, None, _coverage_text(entry))
             for entry in coverage if not entry["newest_release"]]
    return rows


def _coverage_text(entry: dict) -> str:
    said = [f"STALE: {entry['warning']}"] if entry["stale"] else []
    if entry.get("lines_between_releases"):
        said.append(f"BETWEEN RELEASES: {entry['between_warning']}")
    if entry.get("lines_before_releases"):
        said.append(f"BEFORE RELEASES: {entry['before_warning']}")
    if entry.get("lines_by_partial_releases"):
        said.append(f"PARTIAL RELEASE: {entry['partial_warning']}")
    if said:
        return " ".join(said)
    # Only the lines a table judges count (assets/coverage.py): the ZIP file judges only lines priced by their
    # ZIP, and the localities file none; the batch may have other lines dated later.
    return f"Newest {entry['table']} release: no line that it judges is dated after its period."


# The tables of the write stage's scratch database (assets/outputs.py) that the Findings sheet reads by name.
FINDINGS_NAMES = ("finding_rows", "finding_marks")


def mark_findings(con, scratch: str) -> None:
    """FINDING_MARKS as a table of `scratch` (a database every connection of the process sees), beside its
    `finding_rows`; then both by name on `con` (findings_from)."""
    con.execute(f"create or replace table {scratch}.finding_marks as "
                f"{FINDING_MARKS.replace('{findings}', f'{scratch}.finding_rows')}")
    findings_from(con, scratch)


def findings_from(con, scratch: str) -> None:
    """The names the Findings sheet and the Worklist read (FINDINGS_NAMES) on `con`, as views of `scratch`'s
    tables: the same tables on either connection of the write stage."""
    for name in FINDINGS_NAMES:
        con.execute(f"create or replace temp view {name} as select * from {scratch}.{name}")


def findings_table(con, count: int) -> Table:
    """The Findings sheet's table: the batch's findings table (`finding_rows`) with its marks."""
    return _query_table(con, FINDINGS_SQL, {}, count, in_order=True)


def gather_report(con, summary: dict, carc: tuple[str, dict[str, str]], feedback: dict | None,
                  as_of=None, standing_days: int = DEFAULT_STANDING_DAYS) -> Report:
    """The workbook's tables for one batch. The big ones (findings, worklist, decisions, quarantine) stay
    queries, read as the sheet is written; the findings and the worklist read the batch's findings table
    (`finding_rows`, assets/outputs.py), whose patients are already masked unless asked for. `as_of` and
    `standing_days` say which standing dismissals are in force (assets/decisions.py). The findings' marks
    (`finding_marks`, mark_findings) are made before."""
    params = {"batch": summary["batch_id"]}
    worklist_count = build_worklist(con, summary["batch_id"])
    # A deny line kept as billed (its findings settled by the fix of other lines) has nothing to fix itself.
    worklist_claims, worklist_to_fix, worklist_kept = con.execute(
        """select count(distinct (claim_id, patient)),
                  count(*) filter (where severity = 'deny' and action <> 'keep as billed'),
                  count(*) filter (where severity = 'deny' and action = 'keep as billed')
           from worklist_rows""").fetchall()[0]
    # On the headline's base, every deny finding whatever an auditor decided: the dollars beside them count so.
    # A claim id an export gives to lines of two patients is two claims (docs/RULES.md).
    deny_claims, deny_lines = con.execute(
        """select count(distinct (claim_id, patient)), count(distinct line_id) from finding_rows
           where severity = 'deny'""").fetchall()[0]
    # Deny lines this tool does not price (carrier-priced, team surgery, no RVU row of their own): their
    # dollars at risk count as 0.00, so the headline understates them.
    unpriced_deny_lines = con.execute(
        """select count(distinct f.line_id) from finding_rows f
           join (select line_id from priced_lines where batch_id = $batch and expected_allowed is null) p
             on p.line_id = f.line_id
           where f.severity = 'deny'""", params).fetchall()[0][0]
    others = con.execute(OTHER_SOURCES_SQL, {"source": summary["source"]}).fetchall()[0]
    trail = {**params, "as_of": as_of, "standing_days": standing_days}
    carc_release, carc_text = carc
    by_rule = summary["findings"]["by_rule"]
    rules = registry_frame(carc_text)
    reference = [
        (r["release"], r["table"], r["effective_start"], r["effective_end"], r["source_files"], r["sha256"],
         r["rows"]) for r in summary["reference_releases"]
    ] + [
        (release, table, start, end, files, sha, rows)
        for release, table, start, end, files, sha, rows in con.execute(
            """select release_id, table_name, effective_start, effective_end, source_files, sha256, row_count
               from ref_releases where table_name = 'adjustment_codes' and release_id = ?""",
            [carc_release]).fetchall()
    ]
    reference = _with_coverage(con, reference, summary.get("reference_coverage", []))
    return Report(
        summary=summary,
        findings=findings_table(con, summary["findings"]["total"]),
        worklist=_query_table(con, WORKLIST_SQL, {}, worklist_count, in_order=True),
        worklist_claims=worklist_claims,
        worklist_to_fix=worklist_to_fix,
        worklist_kept=worklist_kept,
        deny_claims=deny_claims,
        unpriced_deny_lines=unpriced_deny_lines,
        deny_lines=deny_lines,
        worklist_note=closing_note(),
        quarantine=_query_table(con, QUARANTINE_SQL, params, summary["rows_quarantined"]),
        rules=Table([*rules.columns, "findings"],
                    [(*row, by_rule.get(row[0], 0)) for row in rules.itertuples(index=False)]),
        reference=Table(["release", "table", "effective_start", "effective_end", "source_files", "sha256",
                         "rows", "coverage"], reference),
        categories=_query_table(con, CATEGORIES_SQL, params),
        top_rules=_query_table(con, TOP_RULES_SQL, params),
        top_providers=_query_table(con, TOP_DENIED_SQL.replace("{key}", "provider"), {}),
        top_payers=_query_table(con, TOP_DENIED_SQL.replace("{key}", "payer"), {}),
        history=_query_table(con, HISTORY_SQL, {"source": summary["source"], "batch": summary["batch_id"]}),
        other_runs=OtherRuns(others[0], others[1], others[2]),
        feedback=feedback,
        decisions=_query_table(con, TRAIL_SQL, trail, trail_count(con, trail)),
        properties=report_properties(con, summary["batch_id"]),
    )
