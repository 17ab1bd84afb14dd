"""Auditors' decisions on findings: the append-only trail, the decision that counts for each finding, and the
standing dismissals that carry a dismissal over to later batches.

A finding is known by its finding id: a hash of its batch, claim, line and rule, the same on every rerun of the
batch. Each decision imported from a workbook is a new row of `finding_decisions`, never changed or removed: the
latest one of a finding counts, the earlier ones are its trail. A dismissal whose scope is the rule, the code
and the provider (a standing dismissal) also applies to the same rule, code and provider in the same and later
batches, until it lapses: `standing_days` after it was made, or as soon as a newer release of the reference table
behind the rule is loaded.
"""

from __future__ import annotations

# What an auditor can decide, and how each counts in the dollars of the Summary.
DECISIONS = ("pending", "accept", "dismiss", "fixed")
GROUPS = {"pending": "pending", "accept": "accepted", "dismiss": "dismissed", "fixed": "fixed"}
# The Scope column's words, and the scope stored for each.
SCOPES = {"this finding": "finding", "this rule for this code and provider": "standing"}
SCOPE_WORDS = {stored: words for words, stored in SCOPES.items()}
DEFAULT_STANDING_DAYS = 180
# How a finding that a standing dismissal of another finding covers shows its decision.
STANDING_LABEL = "dismissed (standing, #{id})"
STANDING_PREFIX = "dismissed (standing"

# Decisions are numbered 1, 2, ... in the order they were stored (the writer holds the database).
SCHEMA = """
create table if not exists finding_decisions (
    decision_id bigint primary key,
    batch_id varchar not null, finding_id varchar not null,
    claim_id varchar, line_number integer, rule_id varchar, hcpcs varchar, provider varchar,
    decision varchar not null, scope varchar not null, reason varchar, reviewer varchar,
    decided_at timestamp not null, source_file varchar, source_sha256 varchar, source_row integer,
    rule_table varchar, table_release varchar, release_start date);
create table if not exists database_identity (database_id varchar primary key, created_at timestamp);
insert into database_identity
select uuid()::varchar, current_timestamp where not exists (select 1 from database_identity);
"""


def ensure_schema(con) -> None:
    con.execute(SCHEMA)


def database_id(con) -> str:
    """This database's own id, made once: a workbook carries it, so that its decisions come back to it."""
    return con.execute("select database_id from database_identity").fetchall()[0][0]


def finding_id_sql(batch: str, claim: str, line: str, rule: str) -> str:
    """SQL for the finding id of the finding of `rule` on `line` of `claim` in `batch` (SQL expressions): 16
    hex digits of a hash of the four, which a claim line (unique in its batch) and a rule make unique."""
    return f"left(sha256(concat_ws(chr(31), {batch}, {claim}, cast({line} as varchar), {rule})), 16)"


# The decision that counts for each finding: its latest. `{where}` narrows the trail read.
LATEST = """
select * exclude (recency) from (
    select *, row_number() over (partition by batch_id, finding_id order by decision_id desc) as recency
    from finding_decisions {where}
) where recency = 1
"""

# Why a standing dismissal no longer applies, as of $as_of with $standing_days, or null while it does: it lapses
# the day after its last day, or when a release of the table behind its rule that starts after the release
# that judged the dismissed finding is loaded after the dismissal.
LAPSED = """
case when $as_of > cast(d.decided_at as date) + cast($standing_days as integer)
          then printf('lapsed: %d days after %s', cast($standing_days as integer),
                      strftime(d.decided_at, '%Y-%m-%d'))
     else (select printf('lapsed: %s loaded', arg_min(r.release_id, r.loaded_at)) from ref_releases r
           where d.rule_table <> '' and starts_with(r.table_name, d.rule_table)
             and r.effective_start > d.release_start and r.loaded_at > d.decided_at
           having count(*) > 0) end"""

# The standing dismissals in force: each the latest decision of its finding, a dismissal for the rule, code and
# provider, not lapsed; with the place of its batch in line (it applies to that batch and the later ones).
STANDING = f"""
create or replace temp table standing_dismissals as
select d.decision_id, d.rule_id, d.hcpcs, d.provider, d.reason, d.reviewer, d.decided_at, o.seq as origin_seq
from ({LATEST.replace("{where}", "")}) d
join batch_order o on o.batch_id = d.batch_id
where d.scope = 'standing' and d.decision = 'dismiss' and ({LAPSED}) is null
"""

# For one batch: the decision that counts for each of its findings (`own_decisions`), and the standing
# dismissal that covers a rule, code and provider in it (`standing_in_force`: the latest of those in force whose
# batch is this one or an earlier one).
OWN_DECISIONS = f"""
create or replace temp table own_decisions as {LATEST.replace("{where}", "where batch_id = $batch")}
"""
STANDING_IN_FORCE = """
create or replace temp table standing_in_force as
select * exclude (newest) from (
    select *, row_number() over (partition by rule_id, hcpcs, provider order by decision_id desc) as newest
    from standing_dismissals
    where origin_seq <= (select seq from batch_order where batch_id = $batch)
) where newest = 1
"""


def prepare_batch_decisions(con, batch_id: str, as_of, standing_days: int) -> None:
    """Build own_decisions and standing_in_force for one batch, as of the day `as_of`."""
    ensure_schema(con)
    con.execute(STANDING, {"as_of": as_of, "standing_days": standing_days})
    con.execute(OWN_DECISIONS, {"batch": batch_id})
    con.execute(STANDING_IN_FORCE, {"batch": batch_id})


# A finding's decision columns, from its own decision `d` (own_decisions) and the standing dismissal `s`
# (standing_in_force) that covers its rule, code and provider: its own decision first, then the standing one.
DECISION_COLUMNS = f"""
       coalesce(d.decision, case when s.decision_id is not null
                                 then replace('{STANDING_LABEL}', '{{id}}', cast(s.decision_id as varchar)) end,
                'pending') as decision,
       case when d.decision_id is not null then d.reason else s.reason end as decision_reason,
       case when d.decision_id is not null then d.reviewer else s.reviewer end as reviewer,
       -- Empty while pending, as INTERFACE.md says, also where an auditor set a decision back to pending.
       case when d.decision_id is null then s.decided_at when d.decision <> 'pending' then d.decided_at end
           as decided_at,
       case when coalesce(d.scope, case when s.decision_id is not null then 'standing' end) = 'standing'
            then '{SCOPE_WORDS["standing"]}' else '{SCOPE_WORDS["finding"]}' end as decision_scope,
       case coalesce(d.decision, case when s.decision_id is not null then 'dismiss' end, 'pending')
            {" ".join(f"when '{decision}' then '{group}'" for decision, group in GROUPS.items())}
       end as decision_group"""

# `x`, a finding with finding_id, rule_id, hcpcs and provider, joined to what decides it.
DECISION_JOINS = """
left join own_decisions d on d.finding_id = x.finding_id
left join standing_in_force s on s.rule_id = x.rule_id and s.hcpcs = x.hcpcs
                             and s.provider is not distinct from x.provider"""

# The Summary's split of the dollars at risk of denial: a line and its dollars count once, under the decision
# that says most about its denial: accepted, else pending (not reviewed yet), else fixed, else dismissed. Each
# deny finding counts under its own decision, as flags.csv shows it: a line with a dismissed finding and a
# pending one is a pending line with one deny finding of each.
# A deny finding's decision group by how much it says about its line's denial (1: most).
DECISION_RANK = ("case decision_group when 'accepted' then 1 when 'pending' then 2 when 'fixed' then 3 "
                 "else 4 end")
DECISION_SPLIT = f"""
with per_line as (
    select max(dollars_at_risk) as amount, arg_min(decision_group, {DECISION_RANK}) as decision_group
    from finding_rows where severity = 'deny' group by line_id
),
by_line as (select decision_group, count(*) as lines, sum(amount) as dollars from per_line group by 1),
by_finding as (select decision_group, count(*) as deny_findings from finding_rows where severity = 'deny' group by 1)
select decision_group, coalesce(l.lines, 0), coalesce(f.deny_findings, 0), coalesce(l.dollars, 0)
from by_line l full join by_finding f using (decision_group)
"""


def decision_split(con) -> dict:
    """Dollars at risk of denial, deny findings and lines, by decision, from the batch's findings table."""
    found = {group: (lines, findings, dollars)
             for group, lines, findings, dollars in con.execute(DECISION_SPLIT).fetchall()}
    return {
        group: {"lines": found.get(group, (0, 0, 0))[0], "deny_findings": found.get(group, (0, 0, 0))[1],
                "dollars": float(found.get(group, (0, 0, 0))[2])}
        for group in GROUPS.values()
    }


# The Decisions sheet: the trail of the batch's findings, and every standing dismissal that covers one of them,
# oldest first, each saying whether it counts.
TRAIL_SQL = f"""
with trail as (
    select * from finding_decisions where batch_id = $batch
    union
    select * from finding_decisions
    where decision_id in (select cast(regexp_extract(decision, '#([0-9]+)', 1) as bigint) from finding_rows
                          where starts_with(decision, '{STANDING_PREFIX}'))
      and batch_id <> $batch
    union
    -- A standing dismissal of an earlier batch that would cover a finding of this one but no longer does (it
    -- lapsed, or its finding was decided again): listed with why, so that findings dismissed yesterday and
    -- pending tonight are explained.
    select d.* from finding_decisions d
    join batch_order o on o.batch_id = d.batch_id
    where d.scope = 'standing' and d.decision = 'dismiss' and d.batch_id <> $batch
      and o.seq <= (select seq from batch_order where batch_id = $batch)
      and exists (select 1 from finding_rows f where f.rule_id = d.rule_id and f.hcpcs = d.hcpcs
                                                 and f.provider is not distinct from d.provider)
),
latest as (
    select batch_id, finding_id, max(decision_id) as decision_id from finding_decisions
    semi join (select distinct batch_id, finding_id from trail) shown using (batch_id, finding_id)
    group by all
)
select d.decision_id, d.finding_id, d.batch_id, d.claim_id, d.line_number, d.rule_id, d.hcpcs, d.provider,
       d.decision,
       case d.scope {" ".join(f"when '{stored}' then '{words}'" for stored, words in SCOPE_WORDS.items())} end
           as scope,
       d.reason, d.reviewer, d.decided_at, d.source_file, d.source_row,
       case when d.decision_id <> l.decision_id then printf('superseded by #%d', l.decision_id)
            when d.scope = 'standing' and d.decision = 'dismiss'
                then coalesce({LAPSED}, printf('counts; stands for this rule, code and provider through %s',
                                               strftime(cast(d.decided_at as date)
                                                        + cast($standing_days as integer), '%Y-%m-%d')))
            else 'counts' end as status,
       row_number() over (order by d.decision_id) as _row
from trail d
join latest l on l.batch_id = d.batch_id and l.finding_id = d.finding_id
"""


def trail_count(con, params: dict) -> int:
    """How many rows TRAIL_SQL gives with `params` (batch, as_of, standing_days)."""
    return con.execute(f"select count(*) from ({TRAIL_SQL})", params).fetchall()[0][0]


def decisions_through(con) -> int:
    """The newest decision's number (0 before any): a workbook records what its decision columns show."""
    return con.execute("select coalesce(max(decision_id), 0) from finding_decisions").fetchall()[0][0]


# The custom document properties that make a workbook a claimscrub report `review import` can read back.
REPORT_KIND = "denial-risk-report"
PROPERTY_KIND = "claimscrub.report"
PROPERTY_BATCH = "claimscrub.batch"
PROPERTY_DATABASE = "claimscrub.database"
PROPERTY_THROUGH = "claimscrub.decisions_through"


def report_properties(con, batch_id: str) -> dict[str, str]:
    """What a report says of itself: its kind, batch and database, and the newest decision its Findings sheet
    shows (a row left as the sheet showed it is no decision of the reader's)."""
    return {PROPERTY_KIND: REPORT_KIND, PROPERTY_BATCH: batch_id, PROPERTY_DATABASE: database_id(con),
            PROPERTY_THROUGH: str(decisions_through(con))}
