"""Payer feedback: what the 835s say about the scrubber's findings.

Three views over every remittance loaded and the scrubbed lines they answer: how often each rule's `deny`
findings were denied by the payer, the denials no finding foresaw, and the denial patterns that recur.
A pattern of fewer than `min_count` denied lines is never shown on its own: such groups are summed into one
row marked suppressed. And, first of all for the auditors: the findings they dismissed (themselves, or by a
standing dismissal) on lines the payer denied, the dismissals the payer did not agree with.
"""

import csv
import os
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from pipelines.database import MAIN_FILE_POOL, MAIN_FILE_TAG
from pipelines.settings import run_day
from reports.feedback import FEEDBACK_WORKBOOK, write_feedback_workbook

from .decisions import DEFAULT_STANDING_DAYS, LATEST, STANDING, STANDING_LABEL, finding_id_sql
from .remit import ensure_remit_schema, ensure_schema, file_matches, load_remittance, match_remittances
from .shards import attach_all, read_layout
from .tables import table_kind

DEFAULT_MIN_COUNT = 5
SUPPRESSED = "(suppressed)"
FEEDBACK_FILES = ["overruled_dismissals.csv", "rule_outcomes.csv", "missed_denials.csv", "denial_patterns.csv",
                  FEEDBACK_WORKBOOK]

CARC_TEXT = """
create or replace temp table carc_text as
select code, arg_max(description, release_id) as description
from ref_adjustment_codes where code_type = 'CARC' group by code
"""

# The decision that counts for each finding on a line a remittance answers: its own latest, else the standing
# dismissal in force (standing_dismissals, as of today) of its rule, code and provider from its batch or an
# earlier one, else pending.
REMITTED_DECISIONS = f"""
create or replace temp table remitted_decisions as
with findings as (
    select f.batch_id, f.line_id, f.rule_id, f.severity, l.claim_id, l.line_number, l.hcpcs, l.provider,
           {finding_id_sql("f.batch_id", "l.claim_id", "l.line_number", "f.rule_id")} as finding_id, b.seq
    from line_flags f
    semi join line_outcomes o on o.batch_id = f.batch_id and o.line_id = f.line_id
    join claim_lines l on l.batch_id = f.batch_id and l.line_id = f.line_id
    join batch_order b on b.batch_id = f.batch_id
)
select x.*, coalesce(d.decision, case when s.decision_id is not null then 'dismiss' end, 'pending') as decision,
       coalesce(d.decision, replace('{STANDING_LABEL}', '{{id}}', cast(s.decision_id as varchar)), 'pending')
           as decision_shown,
       case when d.decision_id is not null then d.reason else s.reason end as decision_reason,
       case when d.decision_id is not null then d.reviewer else s.reviewer end as reviewer,
       case when d.decision_id is not null then d.decided_at else s.decided_at end as decided_at
from findings x
left join ({LATEST.replace("{where}", "")}) d on d.batch_id = x.batch_id and d.finding_id = x.finding_id
left join standing_dismissals s on s.rule_id = x.rule_id and s.hcpcs = x.hcpcs
                               and s.provider is not distinct from x.provider and s.origin_seq <= x.seq
qualify row_number() over (partition by x.batch_id, x.line_id, x.rule_id order by s.decision_id desc) = 1
"""

# Dismissed findings on lines the payer denied: the dismissals it did not agree with.
OVERRULED_DISMISSALS = """
select d.claim_id, d.line_number, d.hcpcs, d.rule_id, d.severity, d.finding_id, d.decision_shown as decision,
       d.decision_reason, d.reviewer, strftime(d.decided_at, '%Y-%m-%d %H:%M:%S') as decided_at, o.group_code,
       o.carc, t.description as carc_text, o.denied_amount as amount
from remitted_decisions d
join line_outcomes o on o.batch_id = d.batch_id and o.line_id = d.line_id
left join carc_text t on t.code = o.carc
where o.denied and d.decision = 'dismiss'
order by d.claim_id, d.line_number, d.rule_id
"""

# Per rule with deny findings on remitted lines: how many the payer denied; and of the lines whose finding was
# dismissed, how many the payer denied all the same. A line whose finding was fixed went out corrected: the
# payer judged the correction, not what the rule flagged, so the precision leaves it out (empty where every
# line was fixed).
RULE_OUTCOMES = """
select f.rule_id, count(*) as flagged_lines, count(*) filter (where o.denied) as denied_lines,
       round(count(*) filter (where o.denied and d.decision is distinct from 'fixed')
             / nullif(count(*) filter (where d.decision is distinct from 'fixed'), 0), 3) as observed_precision,
       count(*) filter (where d.decision = 'dismiss') as dismissed_lines,
       count(*) filter (where d.decision = 'dismiss' and o.denied) as dismissed_denied,
       count(*) filter (where d.decision = 'fixed') as fixed_lines
from (select distinct batch_id, line_id, rule_id from line_flags where severity = 'deny') f
join line_outcomes o on o.batch_id = f.batch_id and o.line_id = f.line_id
left join remitted_decisions d on d.batch_id = f.batch_id and d.line_id = f.line_id and d.rule_id = f.rule_id
group by f.rule_id
order by f.rule_id
"""

MISSED_DENIALS = """
select o.claim_id, o.line_number, l.hcpcs, o.group_code, o.carc, t.description as carc_text,
       o.denied_amount as amount
from line_outcomes o
join claim_lines l on l.batch_id = o.batch_id and l.line_id = o.line_id
left join carc_text t on t.code = o.carc
where o.denied and not exists (
    -- Foreseen: a deny finding, or any finding that names the payer's own reason (a review of an add-on
    -- whose primary the contractor defines carries B15, and a B15 denial of it was foreseen).
    select 1 from line_flags f
    where f.batch_id = o.batch_id and f.line_id = o.line_id and (f.severity = 'deny' or f.carc = o.carc))
order by o.claim_id, o.line_number
"""

DENIAL_PATTERNS = """
with groups as (
    select coalesce(o.payer, '') as payer, o.hcpcs, o.group_code || '-' || o.carc as adjustment,
           t.description as carc_text, count(*) as denied_lines, sum(o.denied_amount) as denied_amount
    from remit_outcomes o left join carc_text t on t.code = o.carc
    where o.denied
    group by all
)
select payer, hcpcs, adjustment, carc_text, denied_lines, denied_amount
from (
    select 0 as suppressed, * from groups where denied_lines >= $min_count
    union all
    select 1, $suppressed, null, null,
           printf('%d group(s) of fewer than %d denied lines', count(*), $min_count),
           sum(denied_lines), sum(denied_amount)
    from groups where denied_lines < $min_count
    having count(*) > 0
)
order by suppressed, denied_lines desc, denied_amount desc, payer, hcpcs, adjustment
"""


def feedback_views(con, min_count: int = DEFAULT_MIN_COUNT, as_of: date | None = None,
                   standing_days: int = DEFAULT_STANDING_DAYS) -> dict[str, tuple[list[str], list[tuple]]]:
    """The four views as {file name: (columns, rows)}, the dismissals the payer did not agree with first.
    `as_of` (default the run's day: today, or CLAIMSCRUB_TODAY, as a scrub reads it) and `standing_days` say which
    standing dismissals are in force."""
    ensure_remit_schema(con)
    match_remittances(con)
    con.execute(CARC_TEXT)
    con.execute(STANDING, {"as_of": as_of or run_day(), "standing_days": standing_days})
    con.execute(REMITTED_DECISIONS)
    views = {}
    for name, sql, params in [
        ("overruled_dismissals.csv", OVERRULED_DISMISSALS, {}),
        ("rule_outcomes.csv", RULE_OUTCOMES, {}),
        ("missed_denials.csv", MISSED_DENIALS, {}),
        ("denial_patterns.csv", DENIAL_PATTERNS, {"min_count": min_count, "suppressed": SUPPRESSED}),
    ]:
        result = con.execute(sql, params)
        views[name] = ([d[0] for d in result.description], result.fetchall())
    return views


def has_remittances(con) -> bool:
    # Asked by every report: a database that never loaded an 835 has no remittance tables to create here.
    return (table_kind(con, "remit_files") is not None
            and con.execute("select count(*) from remit_files").fetchall()[0][0] > 0)


def write_feedback(con, out_dir: Path, min_count: int = DEFAULT_MIN_COUNT,
                   standing_days: int = DEFAULT_STANDING_DAYS) -> dict[str, int]:
    """Write the four CSV files and the feedback workbook into out_dir, all or nothing."""
    views = feedback_views(con, min_count, standing_days=standing_days)
    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Imported here, not above: outputs reads the feedback views.
    from .outputs import remove_abandoned_staging
    from .swap import put_in_place

    # Named with this process's id, as a scrub's staging is: a killed run's is swept by the next run beside it.
    remove_abandoned_staging(out_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-{os.getpid()}-", dir=out_dir.parent))
    os.chmod(staging, 0o700)
    try:
        for name, (columns, rows) in views.items():
            with open(staging / name, "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(columns)
                writer.writerows(rows)
        write_feedback_workbook(staging / FEEDBACK_WORKBOOK, views)
        out_dir.mkdir(parents=True, exist_ok=True)
        put_in_place(staging, out_dir, FEEDBACK_FILES, first=FEEDBACK_WORKBOOK)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {name.removesuffix(".csv"): len(rows) for name, (_, rows) in views.items()}


class RemitConfig(dg.Config):
    """The 835 files to load (a file already loaded, by content, is skipped)."""

    files: list[str] = []
    file_names: list[str] = []


class FeedbackConfig(dg.Config):
    """Where the feedback files go (none written when empty), the smallest pattern shown on its own, and how
    many days a standing dismissal applies."""

    out_dir: str = ""
    min_count: int = DEFAULT_MIN_COUNT
    standing_days: int = DEFAULT_STANDING_DAYS


@dg.asset(group_name="feedback", kinds={"duckdb"}, pool=MAIN_FILE_POOL, op_tags=MAIN_FILE_TAG)
def remittances(context: dg.AssetExecutionContext, config: RemitConfig,
                duckdb: DuckDBResource) -> dg.MaterializeResult:
    """One row per claim payment (CLP), service line (SVC) and adjustment (CAS) of each 835 file, loaded
    once per file content."""
    started = time.monotonic()
    names = config.file_names or [Path(f).name for f in config.files]
    results = []
    with duckdb.get_connection() as con:
        ensure_schema(con)
        attach_all(con, duckdb.database, read_layout(con))  # remittances are matched to lines in every shard
        for file, name in zip(config.files, names):
            con.execute("begin transaction")
            results.append(load_remittance(con, Path(file), name))
            con.execute("commit")
        match_remittances(con)
        for result in results:
            result.update(file_matches(con, result["sha256"]))
    loaded = [r for r in results if r["loaded"]]
    context.log.info(f"loaded {len(loaded)} of {len(results)} remittance file(s)")
    return dg.MaterializeResult(metadata={
        "files": dg.MetadataValue.json(results),
        "files_loaded": len(loaded),
        "claim_payments_loaded": sum(r["claim_payments"] for r in loaded),
        "service_lines_loaded": sum(r["service_lines"] for r in loaded),
        "seconds": round(time.monotonic() - started, 2),
    })


@dg.asset(group_name="feedback", kinds={"duckdb", "csv", "excel"}, deps=[remittances, "line_flags"],
          pool=MAIN_FILE_POOL, op_tags=MAIN_FILE_TAG)
def payer_feedback(config: FeedbackConfig, duckdb: DuckDBResource) -> dg.MaterializeResult:
    """One set of payer feedback views over every remittance loaded: rule outcomes, missed denials and
    denial patterns (CSV files and a workbook in out_dir, when one is configured)."""
    started = time.monotonic()
    with duckdb.get_connection() as con:
        ensure_schema(con)
        attach_all(con, duckdb.database, read_layout(con))
        if config.out_dir:
            counts = write_feedback(con, Path(config.out_dir), config.min_count, config.standing_days)
        else:
            counts = {name.removesuffix(".csv"): len(rows) for name, (_, rows) in
                      feedback_views(con, config.min_count, standing_days=config.standing_days).items()}
    return dg.MaterializeResult(metadata={**counts, "out_dir": config.out_dir or "none",
                                          "seconds": round(time.monotonic() - started, 2)})


FEEDBACK_ASSETS = [remittances, payer_feedback]
