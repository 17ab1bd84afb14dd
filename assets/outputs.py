"""The files of one scrub run: flags.csv, lines.csv, quarantine.csv, summary.json and the workbook.

Everything is written to a sibling temporary folder and moved into place at the end, so a failed run
leaves no half-written report. summary.json is removed first and moved in last: a folder holding it holds
one complete run. Patient identifiers are replaced by a keyed hash unless asked for.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from pipelines.settings import site_secret
from reports.workbook import Report, Table, build_workbook

from .feedback import feedback_views, has_remittances
from .rules import registry_frame

OUTPUT_FILES = ["flags.csv", "lines.csv", "quarantine.csv", "denial-risk-report.xlsx", "summary.json"]
SEVERITY_RANK = "case f.severity when 'deny' then 1 when 'review' then 2 else 3 end"

FLAG_COLUMNS = """
    l.claim_id, l.line_number, l.hcpcs, f.rule_id, f.category, f.severity, f.carc, f.dollars_at_risk,
    f.message, p.rvu_release, p.ptp_release, p.mue_release,
    l.source_file, l.source_row, l.date_of_service, l.modifier_text as modifiers, {units} as units,
    l.provider as provider_npi, l.payer, r.fix, pl.claim_id as partner_claim_id,
    pl.line_number as partner_line_number, f.ptp_column_1, f.ptp_column_2, f.ptp_modifier_indicator,
    f.ptp_rationale, p.reference_match
"""
UNITS = ("case when l.units = trunc(l.units) then cast(cast(l.units as bigint) as varchar) "
         "else cast(cast(l.units as double) as varchar) end")

FLAGS_FROM = """
from line_flags f
join claim_lines l on l.batch_id = f.batch_id and l.line_id = f.line_id
join priced_lines p on p.batch_id = f.batch_id and p.line_id = f.line_id
left join claim_lines pl on pl.batch_id = f.batch_id and pl.line_id = f.partner_line_id
join rule_registry r on r.id = f.rule_id
where f.batch_id = $batch
"""

FLAGS_SQL = f"""
select {FLAG_COLUMNS.format(units=UNITS)}
{FLAGS_FROM}
order by l.file_index, l.source_row, {SEVERITY_RANK}, f.rule_id
"""

# The workbook's Findings sheet: the same findings with the evidence an auditor reads, in the same order
# (ties broken on the partner line and the message so that every run lists them alike).
FINDINGS_SHEET_SQL = f"""
select l.claim_id, l.line_number, {{patient}} as patient, l.date_of_service, l.hcpcs, l.modifier_text as modifiers,
       cast(l.units as double) as units, l.provider, l.payer, f.rule_id, f.category, f.severity, f.carc,
       f.dollars_at_risk, f.message, r.fix,
       pl.claim_id || ' line ' || pl.line_number as partner_line,
       'column 1 ' || f.ptp_column_1 || ', column 2 ' || f.ptp_column_2 || ', modifier indicator '
           || f.ptp_modifier_indicator || coalesce(': ' || f.ptp_rationale, '') as ptp_edit,
       concat_ws('; ', p.rvu_release, p.ptp_release, p.mue_release) as releases,
       p.reference_match, l.source_file, l.source_row
{FLAGS_FROM}
order by l.file_index, l.source_row, {SEVERITY_RANK}, f.rule_id, pl.file_index, pl.source_row, f.message
"""

# One row per claim with a deny finding. A line's dollars count once however many deny findings it has;
# the fixes name each rule once, with the lines it applies to.
WORKLIST_SQL = """
with found as (
    select l.claim_id, l.line_id, l.line_number, f.rule_id, f.severity, f.dollars_at_risk,
           {patient} as patient, l.payer, l.provider, l.date_of_service
    from line_flags f
    join claim_lines l on l.batch_id = f.batch_id and l.line_id = f.line_id
    where f.batch_id = $batch
),
money as (
    select claim_id, sum(amount) as dollars_at_risk, count(*) as lines_to_fix
    from (select claim_id, line_id, max(dollars_at_risk) as amount
          from found where severity = 'deny' group by claim_id, line_id)
    group by claim_id
),
per_rule as (
    select d.claim_id, d.rule_id, r.fix, min(d.line_number) as first_line,
           case when count(distinct d.line_number) = 1 then 'line ' else 'lines ' end
               || array_to_string(list_sort(list(distinct d.line_number)), ', ') as lines
    from found d join rule_registry r on r.id = d.rule_id
    where d.severity = 'deny'
    group by d.claim_id, d.rule_id, r.fix
),
fixes as (
    select claim_id, string_agg(rule_id, ', ' order by rule_id) as rules,
           string_agg(rule_id || ' (' || lines || '): ' || fix, ' | ' order by first_line, rule_id) as to_fix
    from per_rule group by claim_id
)
select c.claim_id, min(c.patient) as patient, min(c.payer) as payer,
       string_agg(distinct c.provider, ', ' order by c.provider) as providers,
       min(c.date_of_service) as date_of_service, m.dollars_at_risk,
       count(*) filter (where c.severity = 'deny') as deny_findings, m.lines_to_fix, x.rules, x.to_fix,
       count(*) filter (where c.severity = 'review') as review_findings
from found c
join money m on m.claim_id = c.claim_id
join fixes x on x.claim_id = c.claim_id
group by c.claim_id, m.dollars_at_risk, m.lines_to_fix, x.rules, x.to_fix
order by m.dollars_at_risk desc, c.claim_id
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

# Providers or payers by the dollars of their lines with a deny finding; `{key}` is a column constant.
TOP_DENIED_SQL = """
select {key} as name, count(distinct claim_id) as claims, sum(n) as findings, sum(amount) as dollars_at_risk
from (select coalesce(l.{key}, '(none)') as {key}, l.claim_id, f.line_id, count(*) as n,
             max(f.dollars_at_risk) as amount
      from line_flags f join claim_lines l on l.batch_id = f.batch_id and l.line_id = f.line_id
      where f.batch_id = $batch and f.severity = 'deny' group by all)
group by {key}
order by dollars_at_risk desc, name
limit 10
"""

HISTORY_SQL = """
select started_at,
       case when files like '%;%' then '(' || (length(files) - length(replace(files, ';', '')) + 1) || ' files)'
            else '(' || files || ')' end as files,
       lines_scrubbed, findings, deny_findings, dollars_at_risk from (
    select * from run_history order by started_at desc, batch_id desc limit 12)
order by started_at, batch_id
"""

LINES_SQL = f"""
select l.source_file, l.source_row, l.claim_id, l.line_number, l.date_of_service, l.hcpcs,
       l.modifier_text as modifiers, {UNITS} as units, l.component, l.place_of_service,
       l.facility, p.locality, p.expected_allowed, p.reference_match, p.rvu_release, p.ptp_release,
       p.mue_release, coalesce(s.finding_count, 0) as finding_count, coalesce(s.worst, '') as worst_severity,
       p.gpci_release, p.unit_fee, l.claim_type, l.payer, l.provider as provider_npi, {{patient}} as patient
from claim_lines l
join priced_lines p on p.batch_id = l.batch_id and p.line_id = l.line_id
left join (
    select line_id, count(*) as finding_count,
           case min({SEVERITY_RANK}) when 1 then 'deny' when 2 then 'review' else 'info' end as worst
    from line_flags f where batch_id = $batch group by line_id
) s on s.line_id = l.line_id
where l.batch_id = $batch
order by l.file_index, l.source_row
"""

QUARANTINE_SQL = """
select source_file, source_row, claim_id, line_number, reasons
from claim_quarantine where batch_id = $batch order by file_index, source_row
"""


def _query_rows(con, sql: str, params: dict):
    """The rows of a query, fetched a chunk at a time so that a big sheet never sits in memory whole."""
    result = con.execute(sql, params)
    finished = False
    try:
        while chunk := result.fetchmany(10_000):
            yield from chunk
        finished = True
    finally:
        # A reader that stops early leaves the result open, and DuckDB then refuses the next query.
        if not finished:
            con.abort()


def _query_table(con, sql: str, params: dict, count: int | None = None) -> Table:
    if count is None:
        return Table([d[0] for d in con.execute(sql, params).description], con.fetchall())
    return Table(con.sql(sql, params=params).columns, _query_rows(con, sql, params), count)


def patient_expression(show_ids: bool, column: str = "l.patient_id") -> str:
    return column if show_ids else f"'P-' || left(sha256($secret || '|' || {column}), 12)"


def _copy_csv(con, sql: str, params: dict, path: Path) -> None:
    con.execute(f"copy ({sql}) to '{path}' (header, delimiter ',')", params)


def summarise(con, batch_id: str) -> dict:
    one = lambda sql: con.execute(sql, {"batch": batch_id}).fetchall()  # noqa: E731
    rows_read = one("select count(*) from raw_claim_rows where batch_id = $batch")[0][0]
    lines = one("select count(*) from claim_lines where batch_id = $batch")[0][0]
    quarantined = one("select count(*) from claim_quarantine where batch_id = $batch")[0][0]
    by_category = dict(one("select category, count(*) from line_flags where batch_id = $batch group by 1 order by 1"))
    by_severity = dict(one("select severity, count(*) from line_flags where batch_id = $batch group by 1 order by 1"))
    by_rule = dict(one("select rule_id, count(*) from line_flags where batch_id = $batch group by 1 order by 1"))
    # Money is counted once per line: a line with two deny findings is one denial.
    dollars_by_severity = {
        k: float(v) for k, v in one(
            """select severity, sum(amount) from (
                   select distinct line_id, severity, dollars_at_risk as amount from line_flags
                   where batch_id = $batch) group by 1 order by 1""")
    }
    dollars_by_category = {
        k: float(v) for k, v in one(
            """select category, sum(amount) from (
                   select distinct line_id, category, dollars_at_risk as amount from line_flags
                   where batch_id = $batch and severity = 'deny') group by 1 order by 1""")
    }
    expected = one("select coalesce(sum(expected_allowed), 0) from priced_lines where batch_id = $batch")[0][0]
    releases = [
        {"table": t, "release": r, "effective_start": str(s), "effective_end": str(e), "source_files": f,
         "sha256": h, "rows": n}
        for t, r, s, e, f, h, n in one(
            """select distinct rr.table_name, rr.release_id, rr.effective_start, rr.effective_end,
                      rr.source_files, rr.sha256, rr.row_count
               from ref_releases rr
               join (select unnest([rvu_release, gpci_release, ptp_release, mue_release]) as release_id
                     from priced_lines where batch_id = $batch) used on used.release_id = rr.release_id
               where rr.table_name in ('rvu', 'gpci', 'ptp', 'mue_practitioner', 'mue_outpatient_hospital')
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
        "files": files,
        "started": started[0][0].replace(tzinfo=timezone.utc).isoformat() if started else None,
        "finished": datetime.now(timezone.utc).isoformat(),
    }


def carc_texts(con) -> tuple[str, dict[str, str]]:
    """The newest loaded CARC list: its release and the text of each code."""
    rows = con.execute(
        """select release_id from ref_releases where table_name = 'adjustment_codes'
           order by effective_start desc, release_id desc limit 1""").fetchall()
    if not rows:
        return "", {}
    release = rows[0][0]
    texts = con.execute("select code, description from ref_adjustment_codes where release_id = ? and code_type = 'CARC'",
                        [release]).fetchall()
    return release, dict(texts)


def record_run(con, summary: dict) -> None:
    """Keep the run's totals in run_history (one row per batch; a rerun replaces its row): the trend."""
    con.execute("delete from run_history where batch_id = ?", [summary["batch_id"]])
    con.execute(
        "insert into run_history values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [summary["batch_id"], datetime.fromisoformat(summary["started"]).replace(tzinfo=None),
         datetime.fromisoformat(summary["finished"]).replace(tzinfo=None),
         "; ".join(f["file"] for f in summary["files"]), summary["rows_read"], summary["lines_scrubbed"],
         summary["rows_quarantined"], summary["findings"]["total"],
         summary["findings"]["by_severity"].get("deny", 0),
         summary["dollars_at_risk"]["by_severity"].get("deny", 0.0)],
    )


def gather_report(con, summary: dict, masked: dict, patient: str, carc: tuple[str, dict[str, str]],
                  feedback: dict | None) -> Report:
    """The workbook's tables. The big ones (findings, worklist, quarantine) stay queries, read as written."""
    params = {"batch": summary["batch_id"]}
    worklist_count = con.execute(
        "select count(distinct l.claim_id) from line_flags f join claim_lines l on l.batch_id = f.batch_id "
        "and l.line_id = f.line_id where f.batch_id = $batch and f.severity = 'deny'", params).fetchall()[0][0]
    carc_release, carc_text = carc
    by_rule = summary["findings"]["by_rule"]
    rules = registry_frame(carc_text)
    reference = [
        (r["release"], r["table"], r["effective_start"], r["effective_end"], r["source_files"], r["sha256"], r["rows"])
        for r in summary["reference_releases"]
    ] + [
        (release, table, start, end, files, sha, rows)
        for release, table, start, end, files, sha, rows in con.execute(
            """select release_id, table_name, effective_start, effective_end, source_files, sha256, row_count
               from ref_releases where table_name = 'adjustment_codes' and release_id = ?""",
            [carc_release]).fetchall()
    ]
    return Report(
        summary=summary,
        findings=_query_table(con, FINDINGS_SHEET_SQL.replace("{patient}", patient), masked,
                              summary["findings"]["total"]),
        worklist=_query_table(con, WORKLIST_SQL.replace("{patient}", patient), masked, worklist_count),
        quarantine=_query_table(con, QUARANTINE_SQL, params, summary["rows_quarantined"]),
        rules=Table([*rules.columns, "findings"],
                    [(*row, by_rule.get(row[0], 0)) for row in rules.itertuples(index=False)]),
        reference=Table(["release", "table", "effective_start", "effective_end", "source_files", "sha256", "rows"],
                        reference),
        categories=_query_table(con, CATEGORIES_SQL, params),
        top_rules=_query_table(con, TOP_RULES_SQL, params),
        top_providers=_query_table(con, TOP_DENIED_SQL.replace("{key}", "provider"), params),
        top_payers=_query_table(con, TOP_DENIED_SQL.replace("{key}", "payer"), params),
        history=_query_table(con, HISTORY_SQL, {}),
        feedback=feedback,
    )


def _remove_abandoned_staging(out_dir: Path) -> None:
    """Staging folders of runs that were killed: their process is gone, and they hold patient data."""
    for folder in out_dir.parent.glob(f".{out_dir.name}.partial-*"):
        pid = folder.name.removeprefix(f".{out_dir.name}.partial-").split("-", 1)[0]
        try:
            os.kill(int(pid), 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            pass  # a live process of another user


def write_outputs(con, batch_id: str, out_dir: Path, show_ids: bool) -> dict:
    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(out_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-{os.getpid()}-", dir=out_dir.parent))
    os.chmod(staging, 0o700)
    try:
        carc = carc_texts(con)
        con.register("registry_frame", registry_frame(carc[1]))
        con.execute("create or replace temp table rule_registry as select * from registry_frame")
        con.unregister("registry_frame")
        params = {"batch": batch_id}
        masked = params if show_ids else {**params, "secret": site_secret()}
        patient = patient_expression(show_ids)
        _copy_csv(con, FLAGS_SQL, params, staging / "flags.csv")
        _copy_csv(con, LINES_SQL.replace("{patient}", patient), masked, staging / "lines.csv")
        _copy_csv(con, QUARANTINE_SQL, params, staging / "quarantine.csv")
        summary = summarise(con, batch_id)
        (staging / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        feedback = feedback_views(con) if has_remittances(con) else None
        record_run(con, summary)
        build_workbook(staging / "denial-risk-report.xlsx",
                       gather_report(con, summary, masked, patient, carc, feedback))
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "summary.json").unlink(missing_ok=True)
        for name in OUTPUT_FILES:
            os.chmod(staging / name, 0o600)
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary
