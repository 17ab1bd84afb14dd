"""What a newer CMS release changes for claims already judged: the stored lines dated on or after a day, priced
and judged again under the releases that now cover their dates, against the findings stored for them.

Nothing stored changes. Each batch with such lines is priced and judged again, in the order the batches were
first scrubbed and with the settings it was scrubbed with, inside one transaction that is rolled back at the
end; what that judgement found is copied to a scratch folder first, and compared after the rollback with the
stored findings. A finding that appears, disappears, or changes severity or dollars is one row of impact.csv,
naming the releases that judge its line then and now, and the release that caused the change: that of the
table behind the finding's rule, else (and for a change in dollars, first) the price's, else the first table
whose release changed.
"""


import os
import shutil
import tempfile
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from pipelines.database import MAIN_FILE_POOL, MAIN_FILE_TAG
from pipelines.settings import reports_path, site_secret
from reports.impact import IMPACT_WORKBOOK, write_impact_workbook

from .decisions import finding_id_sql
from .outputs import patient_expression, remove_abandoned_staging
from .pricing import price_batch
from .progress import stage
from .rules import RULES
from .scrub import history_span, scrub_batch
from .shards import attach_all, each_shard, read_layout
from .swap import put_in_place
from .tables import FINISHED_BATCHES, ensure_schema

IMPACT_CSV = "impact.csv"
IMPACT_FILES = [IMPACT_CSV, IMPACT_WORKBOOK]
# The tables whose releases judge a line, as lines.csv names their columns; the price comes from the first two.
RELEASE_TABLES = ["rvu", "gpci", "ptp", "mue", "aoc"]
PRICE_TABLES = ["rvu", "gpci"]

# The batches with lines dated on or after $since, in the order they were first scrubbed, with their settings;
# a run killed before its reports (no run_history row) was never scrubbed, and is not judged again.
BATCHES = f"""
select b.batch_id, coalesce(b.with_history, false), coalesce(b.default_locality, ''), coalesce(b.rvu_variant, ''),
       coalesce(b.work_floor_through, '')
from batches b join batch_order o on o.batch_id = b.batch_id
where b.batch_id in (select distinct batch_id from claim_lines where date_of_service >= $since)
  and b.batch_id in ({FINISHED_BATCHES})
order by o.seq
"""

# A judgement of the lines dated on or after $since: their findings, and the releases that judge each line.
FINDINGS = """
select f.batch_id, f.line_id, f.rule_id, f.severity, f.dollars_at_risk, f.message
from line_flags f
semi join claim_lines l on l.batch_id = f.batch_id and l.line_id = f.line_id and l.date_of_service >= $since
where f.batch_id in (select unnest($batches::varchar[]))
"""
RELEASES = f"""
select p.batch_id, p.line_id, {", ".join(f"p.{t}_release" for t in RELEASE_TABLES)}
from priced_lines p
semi join claim_lines l on l.batch_id = p.batch_id and l.line_id = p.line_id and l.date_of_service >= $since
where p.batch_id in (select unnest($batches::varchar[]))
"""


def _caused_by(which: str) -> str:
    """SQL for the table (`which` = 'table') or the release (`which` = 'release') that caused a change `c`: for a
    change in dollars the price's tables first; then the table behind the rule; then the first that changed."""
    def changed(table: str) -> str:
        return f"(c.{table}_release_then is distinct from c.{table}_release_now or c.{table}_reloaded)"

    def named(table: str, when: str) -> str:
        value = f"'{table}'" if which == "table" else f"c.{table}_release_now"
        return f"when {when} then {value}"

    cases = [named(t, f"c.change = 'dollars' and {changed(t)}") for t in PRICE_TABLES]
    cases += [named(t, f"c.rule_table = '{t}' and {changed(t)}") for t in RELEASE_TABLES]
    cases += [named(t, changed(t)) for t in RELEASE_TABLES]
    return f"case {' '.join(cases)} end"


RELOADED = ("coalesce(rn.{t}_release in (select rr.release_id from ref_releases rr "
            "where timezone('UTC', rr.loaded_at) > b.started_at::timestamptz), false) as {t}_reloaded")

# Every finding that appears, disappears or changes severity or dollars, with its line and the releases that
# judge it then and now. {patient} masks the patient.
IMPACT = f"""
with compared as (
    select coalesce(n.batch_id, t.batch_id) as batch_id, coalesce(n.line_id, t.line_id) as line_id,
           coalesce(n.rule_id, t.rule_id) as rule_id, t.severity as severity_then, n.severity as severity_now,
           t.dollars_at_risk as dollars_then, n.dollars_at_risk as dollars_now,
           coalesce(n.message, t.message) as message,
           case when t.rule_id is null then 'appears' when n.rule_id is null then 'disappears'
                when t.severity <> n.severity then 'severity'
                when t.dollars_at_risk is distinct from n.dollars_at_risk then 'dollars' end as change
    from findings_now n full join findings_then t
      on t.batch_id = n.batch_id and t.line_id = n.line_id and t.rule_id = n.rule_id
),
c as (
    select compared.*, r.rule_table,
           {", ".join(f"rt.{t}_release as {t}_release_then, rn.{t}_release as {t}_release_now"
                      for t in RELEASE_TABLES)},
           -- A release loaded again under its name (a revised file) after the batch was scrubbed changed it too.
           -- The batch's start is the machine's local time, a load's time UTC.
           {", ".join(RELOADED.format(t=t) for t in RELEASE_TABLES)}
    from compared
    join batches b on b.batch_id = compared.batch_id
    join rule_tables r on r.rule_id = compared.rule_id
    left join releases_then rt on rt.batch_id = compared.batch_id and rt.line_id = compared.line_id
    left join releases_now rn on rn.batch_id = compared.batch_id and rn.line_id = compared.line_id
    where change is not null
)
select c.batch_id, l.claim_id, l.line_number, l.date_of_service, l.hcpcs, l.modifier_text as modifiers,
       l.provider as provider_npi, l.payer, {{patient}} as patient, c.rule_id,
       {finding_id_sql("c.batch_id", "l.claim_id", "l.line_number", "c.rule_id")} as finding_id, c.change,
       c.severity_then, c.severity_now, c.dollars_then, c.dollars_now,
       case when c.severity_now = 'deny' and c.severity_then is distinct from 'deny' then c.dollars_now
            when c.severity_now = 'deny' then greatest(c.dollars_now - c.dollars_then, 0)
            else 0 end::decimal(14,2) as dollars_newly_at_risk,
       case when c.severity_then = 'deny' and c.severity_now is distinct from 'deny' then c.dollars_then
            when c.severity_then = 'deny' then greatest(c.dollars_then - c.dollars_now, 0)
            else 0 end::decimal(14,2) as dollars_no_longer_at_risk,
       upper({_caused_by("table")}) as caused_by_table, {_caused_by("release")} as caused_by,
       {", ".join(f"c.{t}_release_then, c.{t}_release_now" for t in RELEASE_TABLES)}, c.message
from c
join claim_lines l on l.batch_id = c.batch_id and l.line_id = c.line_id
order by l.claim_id, c.batch_id, l.line_number, c.rule_id
"""

# The workbook's Summary: per release that caused a change and rule, the findings and dollars that moved.
BY_RELEASE = """
select coalesce(caused_by, '(none)') as release, rule_id,
       count(*) filter (where change = 'appears') as appear,
       count(*) filter (where change = 'disappears') as disappear,
       count(*) filter (where change = 'severity') as change_severity,
       count(*) filter (where change = 'dollars') as change_dollars,
       sum(dollars_newly_at_risk) as dollars_newly_at_risk, sum(dollars_no_longer_at_risk) as dollars_no_longer_at_risk
from impact group by all
order by dollars_newly_at_risk desc, release, rule_id
"""

# The dollars that move per line: a line's dollars count once however many of its findings move.
LINE_DOLLARS = """
select batch_id, claim_id, line_number, max(dollars_newly_at_risk) as newly,
       max(dollars_no_longer_at_risk) as no_longer
from impact group by all
"""

# The claim list for recoupment review: one row per claim with a change, most dollars newly at risk first.
CLAIMS = f"""
with money as (
    select batch_id, claim_id, sum(newly) as dollars_newly_at_risk, sum(no_longer) as dollars_no_longer_at_risk
    from ({LINE_DOLLARS}) group by all
)
select i.batch_id, i.claim_id, min(i.patient) as patient, min(i.payer) as payer,
       array_to_string(list_sort(list(distinct i.provider_npi) filter (where i.provider_npi is not null)), ', ')
           as providers,
       min(i.date_of_service) as date_of_service,
       count(*) filter (where i.change = 'appears') as appear,
       count(*) filter (where i.change = 'disappears') as disappear,
       count(*) filter (where i.change in ('severity', 'dollars')) as changed,
       any_value(m.dollars_newly_at_risk) as dollars_newly_at_risk,
       any_value(m.dollars_no_longer_at_risk) as dollars_no_longer_at_risk,
       array_to_string(list_sort(list(distinct i.rule_id) filter (where i.change = 'appears')), ', ')
           as rules_appearing,
       array_to_string(list_sort(list(distinct i.caused_by) filter (where i.caused_by is not null)), ', ')
           as releases
from impact i join money m on m.batch_id = i.batch_id and m.claim_id = i.claim_id
group by i.batch_id, i.claim_id
order by dollars_newly_at_risk desc, i.claim_id, i.batch_id
"""


def rejudge(con, since: date, scratch: Path, database: str | None = None) -> dict:
    """Judge again the stored lines dated on or after `since`, leaving the stored findings as they are; leaves the
    comparison in the temp table `impact` (with {patient} unmasked: see impact_sql) and returns its counts.
    `database` is the site's main file (the connection's, by default): a per-shard site is judged again shard
    file by shard file, each in a transaction of its own, as the scrub judges it (a patient's lines, history
    included, are all in one shard)."""
    ensure_schema(con)
    layout = read_layout(con)
    if layout.per_shard:
        database = database or con.execute(
            "select path from duckdb_databases() where database_name = current_database()").fetchall()[0][0]
        attach_all(con, database, layout)
    params = {"since": since}
    con.register("rule_tables_frame", pd.DataFrame({"rule_id": [r.id for r in RULES],
                                                    "rule_table": [r.judged_by for r in RULES]}))
    con.execute("create or replace temp table rule_tables as select * from rule_tables_frame")
    con.unregister("rule_tables_frame")
    batches = con.execute(BATCHES, params).fetchall()
    judged = {**params, "batches": [b[0] for b in batches]}
    con.execute(f"create or replace temp table findings_then as {FINDINGS}", judged)
    con.execute(f"create or replace temp table releases_then as {RELEASES}", judged)
    # Each batch's history dates are the whole batch's, whichever shard is judged (as the scrub takes them).
    spans = {b[0]: history_span(con, b[0], b[1]) for b in batches} if layout.per_shard else {}
    with stage("rejudge", total=len(batches) * (layout.shards if layout.per_shard else 1),
               unit="batches") as progress:
        for shard, on in each_shard(con, database, layout):
            _judge_again(on, batches, judged, scratch, "" if shard is None else f"_{shard}", progress, spans)
        for name in ("findings_now", "releases_now"):
            con.execute(f"create or replace temp table {name} as select * from read_parquet($paths)",
                        {"paths": [str(path) for path in sorted(scratch.glob(f"{name}*.parquet"))]})
        progress.rows = con.execute("select count(*) from findings_now").fetchall()[0][0]
    lines, batch_count = con.execute(
        "select count(*), count(distinct batch_id) from claim_lines where date_of_service >= $since "
        "and batch_id in (select unnest($batches::varchar[]))", judged).fetchall()[0]
    return {"since": since.isoformat(), "lines": lines, "batches": batch_count}


def _judge_again(con, batches: list[tuple], judged: dict, scratch: Path, suffix: str, progress,
                 spans: dict) -> None:
    """Price and judge `batches` again on `con` (the site, or one shard of it) in a transaction that is rolled
    back; what it found is copied out first, to `scratch`."""
    con.execute("begin transaction")
    try:
        for batch_id, with_history, locality, variant, floor_through in batches:
            price_batch(con, batch_id, locality, variant, floor_through)
            scrub_batch(con, batch_id, with_history=with_history, span=spans.get(batch_id))
            progress.advance(what=batch_id)
        # Copied out of the transaction before it is rolled back: the stored tables stay as they were.
        for name, sql in (("findings_now", FINDINGS), ("releases_now", RELEASES)):
            con.execute(f"copy ({sql}) to $path (format parquet)",
                        {**judged, "path": str(scratch / f"{name}{suffix}.parquet")})
    finally:
        con.execute("rollback")


def impact_sql(show_ids: bool) -> str:
    return IMPACT.replace("{patient}", patient_expression(show_ids))


def write_impact(con, since: date, out_dir: Path, show_ids: bool, database: str | None = None) -> dict:
    """impact.csv and its workbook in `out_dir`, all or nothing (as the scrub's files: staged, then moved)."""
    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_staging(out_dir)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-{os.getpid()}-", dir=out_dir.parent))
    os.chmod(staging, 0o700)
    try:
        counts = rejudge(con, since, staging, database)
        con.execute(f"create or replace temp table impact as {impact_sql(show_ids)}",
                    {} if show_ids else {"secret": site_secret()})
        con.execute("copy impact to $path (header true, delimiter ',')", {"path": str(staging / IMPACT_CSV)})
        by_change = dict(con.execute("select change, count(*) from impact group by 1").fetchall())
        newly, no_longer = con.execute(
            f"select coalesce(sum(newly), 0), coalesce(sum(no_longer), 0) from ({LINE_DOLLARS})").fetchall()[0]
        counts.update({change: by_change.get(change, 0)
                       for change in ("appears", "disappears", "severity", "dollars")},
                      dollars_newly_at_risk=float(newly), dollars_no_longer_at_risk=float(no_longer),
                      releases=_now_releases(con))
        write_impact_workbook(staging / IMPACT_WORKBOOK, counts, _table(con, BY_RELEASE), _table(con, CLAIMS),
                              _table(con, "select * from impact"))
        out_dir.mkdir(parents=True, exist_ok=True)
        put_in_place(staging, out_dir, IMPACT_FILES, first=IMPACT_WORKBOOK)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return counts


def _table(con, sql: str) -> tuple[list[str], list[tuple]]:
    result = con.execute(sql)
    return [d[0] for d in result.description], result.fetchall()


def _now_releases(con) -> list[str]:
    """The releases that judge the rejudged lines now."""
    rows = con.execute(f"""select distinct unnest([{", ".join(f"{t}_release" for t in RELEASE_TABLES)}])
                           from releases_now order by 1""").fetchall()
    return [r[0] for r in rows if r[0]]


def default_since(con) -> date | None:
    """The first day of the period of the release a user loaded last: what a run after `reference load`
    rejudges when it is not told a day. None before any."""
    found = con.execute("""select min(effective_start) from ref_releases
                           where origin = 'user' and loaded_at = (select max(loaded_at) from ref_releases
                                                                  where origin = 'user')""").fetchall()
    return found[0][0]


class RejudgeConfig(dg.Config):
    """The first date of service to judge again (YYYY-MM-DD; empty: the start of the period of the release a
    user loaded last), where the impact goes (empty: the reports folder's rejudge-DATE), and whether patient
    identifiers are shown in clear."""

    since: str = ""
    out_dir: str = ""
    show_ids: bool = False


@dg.asset(group_name="review", kinds={"duckdb", "csv", "excel"},
          deps=["line_flags", "rvu_fee_schedule", "gpci_localities", "zip_localities", "ncci_ptp_edits",
                "mue_limits", "aoc_edits"],
          pool=MAIN_FILE_POOL, op_tags=MAIN_FILE_TAG)
def rejudge_impact(context: dg.AssetExecutionContext, config: RejudgeConfig,
                   duckdb: DuckDBResource) -> dg.MaterializeResult:
    """One row per stored finding that a judgement under the releases now loaded would add, drop, or change in
    severity or dollars, for the stored lines dated on or after `since` (impact.csv and a workbook)."""
    with duckdb.get_connection() as con:
        ensure_schema(con)
        since = date.fromisoformat(config.since) if config.since else default_since(con)
        if since is None:
            context.log.info("no release loaded by a user: nothing to rejudge")
            return dg.MaterializeResult(metadata={"written": "nothing: no release loaded by a user"})
        out_dir = Path(config.out_dir) if config.out_dir else reports_path() / f"rejudge-{since.isoformat()}"
        counts = write_impact(con, since, out_dir, config.show_ids, duckdb.database)
    return dg.MaterializeResult(metadata={**{k: v for k, v in counts.items() if k != "releases"},
                                          "releases_now": ", ".join(counts["releases"]), "out_dir": str(out_dir)})


REJUDGE_ASSETS = [rejudge_impact]
