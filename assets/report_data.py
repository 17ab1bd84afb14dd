"""The tables of the denial-risk workbook, gathered from DuckDB for one batch, and the run history its
trend reads. reports/workbook.py turns them into the file; nothing here formats a cell."""

from __future__ import annotations

from datetime import datetime

from reports.sheet_xml import QueryRows
from reports.workbook import Report, Table

from .decisions import DEFAULT_STANDING_DAYS, TRAIL_SQL, report_properties, trail_count
from .rules import registry_frame

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
       concat_ws('; ', rvu_release, ptp_release, mue_release) as releases,
       reference_match, source_file, source_row, _row
from finding_rows
"""

# One row per claim with a deny finding, from the batch's findings table (a line is its claim and line
# number: a repeated one is quarantined), leaving out the findings auditors dismissed or marked fixed. A line's
# dollars count once however many deny findings it has; the fixes name each rule once, with the lines it
# applies to. Lists are gathered and sorted rather than
# aggregated in order, and a claim's own columns are grouped by claim alone before the joins: both cheaper.
WORKLIST_SQL = """
with found as (
    select claim_id, line_number, rule_id, severity, dollars_at_risk, fix, patient, payer, provider,
           date_of_service
    from finding_rows
    where decision_group in ('pending', 'accepted')
),
money as (
    select claim_id, sum(amount) as dollars_at_risk, count(*) as lines_to_fix
    from (select claim_id, line_number, max(dollars_at_risk) as amount
          from found where severity = 'deny' group by claim_id, line_number)
    group by claim_id
),
per_rule as (
    select claim_id, rule_id, fix, min(line_number) as first_line,
           case when count(distinct line_number) = 1 then 'line ' else 'lines ' end
               || array_to_string(list_sort(list(distinct line_number)), ', ') as lines
    from found
    where severity = 'deny'
    group by claim_id, rule_id, fix
),
fixes as (
    select claim_id, array_to_string(list_sort(list(rule_id)), ', ') as rules,
           array_to_string(list_transform(list_sort(list({'line': first_line, 'rule': rule_id,
                                                            'text': rule_id || ' (' || lines || '): ' || fix})),
                                          lambda f: f.text), ' | ') as to_fix
    from per_rule group by claim_id
),
claims as (
    select claim_id, min(patient) as patient, min(payer) as payer,
           array_to_string(list_sort(list(distinct provider) filter (where provider is not null)), ', ')
               as providers,
           min(date_of_service) as date_of_service,
           count(*) filter (where severity = 'deny') as deny_findings,
           count(*) filter (where severity = 'review') as review_findings
    from found group by claim_id
)
select c.claim_id, c.patient, c.payer, c.providers, c.date_of_service, m.dollars_at_risk, c.deny_findings,
       m.lines_to_fix, x.rules, x.to_fix, c.review_findings,
       row_number() over (order by m.dollars_at_risk desc, c.claim_id) as _row
from claims c
join money m on m.claim_id = c.claim_id
join fixes x on x.claim_id = c.claim_id
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

TOP_RULES_SQL = """
select rule_id, category, severity, sum(n) as findings, sum(amount) as dollars_at_risk
from (select rule_id, category, severity, line_id, count(*) as n, max(dollars_at_risk) as amount
      from line_flags where batch_id = $batch group by all)
group by all
order by dollars_at_risk desc, findings desc, rule_id
limit 10
"""

# Providers or payers by the dollars of their lines with a deny finding; `{key}` is a column constant. From
# the batch's findings table, which holds each finding's line (its claim and line number) with its provider
# and payer.
TOP_DENIED_SQL = """
select {key} as name, count(distinct claim_id) as claims, sum(n) as findings, sum(amount) as dollars_at_risk
from (select coalesce({key}, '(none)') as {key}, claim_id, line_number, count(*) as n,
             max(dollars_at_risk) as amount
      from finding_rows
      where severity = 'deny' group by all)
group by {key}
order by dollars_at_risk desc, name
limit 10
"""

QUARANTINE_SQL = """
select source_file, source_row, claim_id, line_number, reasons,
       row_number() over (order by file_index, source_row) as _row
from claim_quarantine where batch_id = $batch
"""

# The last twelve runs, oldest first, each named by its file (or how many files it had).
HISTORY_SQL = """
select started_at,
       case when file_count = 1 then '(' || files || ')' else '(' || file_count || ' files)' end as files,
       lines_scrubbed, findings, deny_findings, dollars_at_risk from (
    select * from run_history order by started_at desc, batch_id desc limit 12)
order by started_at, batch_id
"""


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
    """Keep the run's totals in run_history (one row per batch; a rerun replaces its row): the trend."""
    con.execute("delete from run_history where batch_id = ?", [summary["batch_id"]])
    con.execute(
        "insert into run_history values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [summary["batch_id"], datetime.fromisoformat(summary["started"]).replace(tzinfo=None),
         datetime.fromisoformat(summary["finished"]).replace(tzinfo=None),
         "; ".join(f["file"] for f in summary["files"]), len(summary["files"]), summary["rows_read"],
         summary["lines_scrubbed"],
         summary["rows_quarantined"], summary["findings"]["total"],
         summary["findings"]["by_severity"].get("deny", 0),
         summary["dollars_at_risk"]["by_severity"].get("deny", 0.0)],
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
    if entry["stale"]:
        return f"STALE: {entry['warning']}"
    return f"Newest {entry['table']} release: no line of the batch is dated after its period."


def gather_report(con, summary: dict, carc: tuple[str, dict[str, str]], feedback: dict | None,
                  as_of=None, standing_days: int = DEFAULT_STANDING_DAYS) -> Report:
    """The workbook's tables for one batch. The big ones (findings, worklist, decisions, quarantine) stay
    queries, read as the sheet is written; the findings and the worklist read the batch's findings table
    (`finding_rows`, assets/outputs.py), whose patients are already masked unless asked for. `as_of` and
    `standing_days` say which standing dismissals are in force (assets/decisions.py)."""
    params = {"batch": summary["batch_id"]}
    worklist_count = con.execute(
        """select count(distinct claim_id) from finding_rows
           where severity = 'deny' and decision_group in ('pending', 'accepted')""").fetchall()[0][0]
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
        findings=_query_table(con, FINDINGS_SQL, {}, summary["findings"]["total"], in_order=True),
        worklist=_query_table(con, WORKLIST_SQL, {}, worklist_count),
        quarantine=_query_table(con, QUARANTINE_SQL, params, summary["rows_quarantined"]),
        rules=Table([*rules.columns, "findings"],
                    [(*row, by_rule.get(row[0], 0)) for row in rules.itertuples(index=False)]),
        reference=Table(["release", "table", "effective_start", "effective_end", "source_files", "sha256",
                         "rows", "coverage"], reference),
        categories=_query_table(con, CATEGORIES_SQL, params),
        top_rules=_query_table(con, TOP_RULES_SQL, params),
        top_providers=_query_table(con, TOP_DENIED_SQL.replace("{key}", "provider"), {}),
        top_payers=_query_table(con, TOP_DENIED_SQL.replace("{key}", "payer"), {}),
        history=_query_table(con, HISTORY_SQL, {}),
        feedback=feedback,
        decisions=_query_table(con, TRAIL_SQL, trail, trail_count(con, trail)),
        properties=report_properties(con, summary["batch_id"]),
    )
