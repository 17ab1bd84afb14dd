"""The rule engine: every rule of the families in assets/rules is a set-based statement over a batch's priced
lines, run in the order their working tables ask for.

Every statement inserts into a temporary `found` table: (line, rule id, optional severity/CARC, message,
partner line, PTP edit, the line's expected allowed). The registry supplies the rest of each finding, and a
finding whose rule id it does not know stops the run.

Rules that compare lines of an encounter read `sl`, a narrow copy of the lines (and, with history, of earlier
batches' lines of the same encounters) holding only what those rules compare: writing a temporary table costs
about as much per column as the rules that read it. The same pass marks the few lines that break a rule by
themselves (or that a step wants to look at: its candidates), and those are then judged over `line_hits`.

Every rule that compares lines compares lines of one patient, so a big batch is judged in parts, by its
patients' hash: each part's `sl` and the pairs found in it fit in memory where the whole batch's would spill.
"""

from __future__ import annotations

import re
from datetime import timedelta

from .pricing import price_history
from .rules import LINE_RULES, PAIR_RULES, STEPS, register_rules
from .rules.base import BYPASS_MODIFIERS, Step, sql_list
from .tables import FINISHED_BATCHES, clear_batch, named_parameters

# Every batch gets a place in line once, when it is first read (assets/flow.py), kept across rescrubs: history is
# only the batches before it, so rescrubbing an earlier batch never starts judging it against later ones.
BATCH_ORDER = """
insert or ignore into batch_order select $batch, coalesce(max(seq), 0) + 1 from batch_order
"""

# Lines of earlier batches that may take part in the batch's judgement: those that share a patient and date of
# service with the batch (`shares_day`), and those of the batch's patients, from 91 days before its first date
# to the day after its last, whose code has a global period in some loaded RVU release (a surgery's period can
# reach the batch's dates). A file of this batch scrubbed before (same content) is not history: a line is never
# judged against itself. Nor is a version of a claim that a later one replaced (`replaced`: corrected, voided),
# as the payer's latest claim does. Each keeps what its price reads (assets/pricing.py: price_history).
HISTORY_CANDIDATES = f"""
create or replace temp table history_candidates as
with tonight as (
    select patient_id, date_of_service from claim_lines where batch_id = $batch
),
-- A version of a claim that a later one (before tonight, or tonight) replaced: the later one is of the same
-- patient and bills something else (a correction, a void, rows that could not be scrubbed). The same claim
-- sent again unchanged is a second submission, and a claim id sent for another patient another claim: both
-- stay. Only the few claims sent more than once are compared (`again`), wherever their lines are stored.
-- A batch all of whose files were scrubbed before (a renamed copy of an export) is that export again: its
-- claims are the versions of the batch that first read them, and take that batch's place (`place`), so that a
-- correction sent since still replaces them, and they replace nothing sent since.
-- A batch whose run never finished (killed before its reports: no run_history row) was never scrubbed: its
-- claims are not history, replace nothing and are no export's first reading.
finished as (
    {FINISHED_BATCHES} union select $batch
),
sent_order as (
    select o.batch_id, o.seq,
           case when bool_and(first.seq < o.seq) then max(first.seq) else o.seq end as place
    from batch_order o
    left join batch_files f on f.batch_id = o.batch_id
    left join (select ff.sha256, min(fo.seq) as seq from batch_files ff
               join batch_order fo on fo.batch_id = ff.batch_id
               where ff.batch_id in (select batch_id from finished)
               group by ff.sha256) first on first.sha256 = f.sha256
    group by o.batch_id, o.seq
),
replaced as (
    select earlier.batch_id, earlier.claim_id
    from claim_sends earlier
    join sent_order earlier_order on earlier_order.batch_id = earlier.batch_id
    join claim_sends later on later.claim_id = earlier.claim_id and later.again
    join sent_order later_order on later_order.batch_id = later.batch_id
    where earlier.again
      and later.batch_id in (select batch_id from finished)
      and later_order.place > earlier_order.place
      and later_order.seq <= (select seq from batch_order where batch_id = $batch)
      and later.patient is not distinct from earlier.patient
      and later.content is distinct from earlier.content
),
-- The earlier batches' files that take part: not one of tonight's (a file scrubbed again is judged alone), and
-- a file scrubbed again in a later batch (a renamed copy) once, as that batch's.
history_files as materialized (
    select file.batch_id, file.file_index
    from batch_files file
    join batch_order file_order on file_order.batch_id = file.batch_id
    where file.sha256 not in (select sha256 from batch_files where batch_id = $batch)
      and file.batch_id in (select batch_id from finished)
      and not exists (select 1 from batch_files again
                      join batch_order again_order on again_order.batch_id = again.batch_id
                      where again.sha256 = file.sha256 and again_order.seq > file_order.seq
                        and again.batch_id in (select batch_id from finished)
                        and again_order.seq < (select seq from batch_order where batch_id = $batch))
),
earlier as (
    select earlier.batch_id, earlier.line_id, earlier.patient_id, earlier.date_of_service, earlier.hcpcs,
           earlier.component, earlier.facility, earlier.locality, earlier.service_zip, earlier.claim_type,
           earlier.modifiers, earlier.units
    from claim_lines earlier
    join batch_order earlier_order on earlier_order.batch_id = earlier.batch_id
    join history_files earlier_file on earlier_file.batch_id = earlier.batch_id
                                    and earlier_file.file_index = earlier.file_index
    where $with_history
      and earlier.date_of_service between $history_from and $history_through
      -- Tonight a renamed copy of an earlier export: judged as that export was, by the batches before it.
      and earlier_order.seq < (select place from sent_order where batch_id = $batch)
      and earlier.patient_id in (select distinct patient_id from tonight)
      and not exists (select 1 from replaced
                      where replaced.batch_id = earlier.batch_id and replaced.claim_id = earlier.claim_id)
),
marked as (
    select earlier.*,
           exists (select 1 from tonight where tonight.patient_id = earlier.patient_id
                                           and tonight.date_of_service = earlier.date_of_service) as shares_day
    from earlier
)
select * from marked
where shares_day or hcpcs in (select hcpcs from ref_rvu where global_days in ('000', '010', '090'))
"""

# The lines of earlier batches that take part: those sharing a day with the batch, and the surgeries (global
# days 000, 010 or 090 in the release that judges their date now: history_priced). History lines get negative
# ids (`sl_id`) so that ids stay unique next to the batch's own; only these few are numbered, so the batch is
# never sorted. The rules name the partner with the lowest id: the first batch scrubbed, then its first line.
HISTORY_LINES = """
create or replace temp table history_lines as
select c.batch_id, c.line_id, -row_number() over (order by o.seq desc, c.line_id desc) as sl_id, c.shares_day
from history_candidates c
join batch_order o on o.batch_id = c.batch_id
join history_priced p on p.batch_id = c.batch_id and p.line_id = c.line_id
where c.shares_day or p.global_days in ('000', '010', '090')
"""

FOUND = """
create or replace temp table found (
    line_id bigint, rule_id varchar, severity varchar, carc varchar, message varchar, partner_line_id bigint,
    ptp_column_1 varchar, ptp_column_2 varchar, ptp_modifier_indicator varchar, ptp_rationale varchar,
    expected_allowed decimal(14,2), partner_batch varchar, partner_claim_id varchar, partner_line_number integer)
"""

NPI_CHECKED = """
create or replace temp table npi_checked as
select npi, regexp_full_match(npi, '[0-9]{10}') and list_sum(list_transform(range(1, 16), lambda i:
           case when (16 - i) % 2 = 0
                then (coalesce(try_cast(substr('80840' || npi, i, 1) as integer), 0) * 2) % 10
                     + (coalesce(try_cast(substr('80840' || npi, i, 1) as integer), 0) * 2) // 10
                else coalesce(try_cast(substr('80840' || npi, i, 1) as integer), 0) end)) % 10 = 0 as valid
from (select rendering_npi as npi from claim_lines where batch_id = $batch
      union select billing_npi from claim_lines where batch_id = $batch)
-- A cell without a digit is a provider's name, not an NPI a payer would check (an export with names in its
-- "Rendering Provider" column): it still tells providers apart.
where npi is not null and regexp_matches(npi, '[0-9]')
"""

# The lines of the part being judged: all of them when the batch is judged whole ($parts = 1). A part is a
# patient shard of the site's $shards (assets/shards.py), or a share of one by patient hash when a shard holds
# more than LINES_PER_PART lines. The divisor is cast to hash()'s own type: `hash(...) % (5 // 1)` widens both to
# a 128-bit integer, whose remainder cost more than the rest of the part's working table.
IN_PART = ("($parts = 1 or (($shards = 1 or shard = $part % $shards)"
           " and ($parts = $shards or hash(patient_id) % cast($parts // $shards as ubigint) = $part // $shards)))")

# A batch's claim lines as line rules read them (`claim_line`), with their price context (`priced`) and the
# check digit of each NPI (`rendering_check`, `billing_check`).
BATCH_LINE_SOURCES = f"""
from (select *, list_contains(modifiers, '26') as has_26, list_contains(modifiers, 'TC') as has_tc
      from claim_lines where batch_id = $batch and {IN_PART}) claim_line
join (select * from priced_lines where batch_id = $batch) priced on priced.line_id = claim_line.line_id
left join npi_checked rendering_check on rendering_check.npi = claim_line.rendering_npi
left join npi_checked billing_check on billing_check.npi = claim_line.billing_npi"""

# What the rules across lines compare, for the batch's lines (line id >= 0) and their history (< 0).
SL_COLUMNS = f"""
       claim_line.claim_id, claim_line.line_number, claim_line.patient_id, claim_line.date_of_service,
       claim_line.hcpcs, claim_line.modifier_text, claim_line.units,
       coalesce(claim_line.provider, '') as provider_key,
       coalesce(claim_line.billing_npi, claim_line.rendering_npi, '') as biller_key,
       claim_line.component, priced.ptp_release, priced.mue_release, priced.status, priced.pctc,
       priced.mult_proc, priced.expected_allowed, priced.mue_value, priced.mai, priced.global_days,
       priced.aoc_release, priced.rvu_release,
       list_contains(claim_line.modifiers, '76') or list_contains(claim_line.modifiers, '77') as has_repeat,
       len(list_filter(claim_line.modifiers, lambda m: m in {sql_list(BYPASS_MODIFIERS)})) > 0 as has_bypass"""

# Conditions that put a line in `line_hits`: a line rule's, or a step's candidates.
JUDGED_ALONE = " or ".join(
    f"({condition})"
    for condition in [*(rule.condition for rule in LINE_RULES.values()),
                      *(candidate for step in STEPS for candidate in step.candidates)])

SL = f"""
create or replace temp table sl as
select claim_line.line_id, {SL_COLUMNS}, case when {JUDGED_ALONE} then true end as judged_alone
{BATCH_LINE_SOURCES}
union all
select history.sl_id, {SL_COLUMNS}, null
from history_lines history
join (select * from claim_lines where line_id in (select line_id from history_lines) and {IN_PART}) claim_line
  on claim_line.batch_id = history.batch_id and claim_line.line_id = history.line_id
join history_priced priced on priced.batch_id = history.batch_id and priced.line_id = history.line_id
"""

# The lines `sl` marks, each with its claim line, price context and NPI checks as columns of those names, so that
# line rules read them as they do in SL. About 3 lines in 100.
LINE_HITS = f"""
create or replace temp table line_hits as
with hits as (select * from sl where judged_alone)
select hit.*, claim_line, priced, rendering_check, billing_check
from hits hit
join (select *, list_contains(modifiers, '26') as has_26, list_contains(modifiers, 'TC') as has_tc
      from claim_lines line semi join hits on hits.line_id = line.line_id
      where line.batch_id = $batch) claim_line on claim_line.line_id = hit.line_id
join (select * from priced_lines where batch_id = $batch) priced on priced.line_id = hit.line_id
left join npi_checked rendering_check on rendering_check.npi = claim_line.rendering_npi
left join npi_checked billing_check on billing_check.npi = claim_line.billing_npi
"""


def _finding_columns(rule_id: str, severity: str | None, carc: str | None, message: str) -> str:
    return (f"'{rule_id}' as rule_id, {severity or 'null::varchar'} as severity, "
            f"{carc or 'null::varchar'} as carc, {message} as message")


LINE_FINDINGS = "insert into found by name\n" + "\nunion all\n".join(
    f"select line_id, {_finding_columns(rule_id, rule.severity, rule.carc, rule.message)}, expected_allowed "
    f"from line_hits where {rule.condition}"
    for rule_id, rule in LINE_RULES.items())

# Pairs of lines of one encounter that bill the same code (a, a line of the batch; b, any other line): few,
# since a claim bills a code once. Only lines whose patient, day and code hash like another line's can pair;
# a shared hash with different keys only lets a line through to the join, which compares the keys.
SAME_CODE = """
create or replace temp table same_code as
with candidates as (
    select line_id, patient_id, date_of_service, hcpcs, provider_key from sl
    where hash(patient_id, date_of_service, hcpcs) in (
        select key from (select hash(patient_id, date_of_service, hcpcs) as key from sl)
        group by key having count(*) > 1)
)
select a.line_id as a_line, b.line_id as b_line, a.provider_key = b.provider_key as same_provider
from candidates a
join candidates b
  on a.patient_id = b.patient_id and a.date_of_service = b.date_of_service and a.hcpcs = b.hcpcs
 and a.line_id <> b.line_id
where a.line_id >= 0
"""

# The pair rules over `same_code`, read with both lines' columns: one join serves them all; each finding
# names its first partner, the line's own copy sent before (same claim and line, an earlier batch: a claim sent
# again unchanged) ahead of the others, the one of the batch scrubbed first.
PAIR_FINDINGS = f"""
insert into found by name
with pairs as materialized (
    select a.line_id as a_line, b.line_id as b_line, b.claim_id as b_claim, b.line_number as b_number,
           a.expected_allowed,
           {{'other': not (b.line_id < 0 and b.claim_id = a.claim_id and b.line_number = a.line_number),
             'line': b.line_id}} as b_rank,
           {", ".join(f"({rule.condition}) as hit_{rule_id}, case when {rule.condition} then {rule.message} end "
                      f"as message_{rule_id}" for rule_id, rule in PAIR_RULES.items())}
    from same_code pair join sl a on a.line_id = pair.a_line join sl b on b.line_id = pair.b_line
)
{" union all ".join(f'''
select a_line as line_id, '{rule_id}' as rule_id, arg_min(message_{rule_id}, b_rank) as message,
       arg_min(b_line, b_rank) as partner_line_id, arg_min(b_claim, b_rank) as partner_claim_id,
       arg_min(b_number, b_rank) as partner_line_number, any_value(expected_allowed) as expected_allowed
from pairs where hit_{rule_id} group by a_line''' for rule_id in PAIR_RULES)}
"""

# Tables the engine makes before any family step: per batch, then per part.
BATCH_TABLES = frozenset({"history_lines", "npi_checked", "found"})
ENGINE_STEPS = [
    Step("sl", SL, reads=frozenset({"history_lines", "npi_checked"}), makes=frozenset({"sl"})),
    Step("line_hits", LINE_HITS, reads=frozenset({"sl", "npi_checked"}), makes=frozenset({"line_hits"})),
    Step("line_rules", LINE_FINDINGS, reads=frozenset({"line_hits"}), emits=tuple(LINE_RULES)),
    Step("same_code", SAME_CODE, reads=frozenset({"sl"}), makes=frozenset({"same_code"})),
    Step("pair_rules", PAIR_FINDINGS, reads=frozenset({"sl", "same_code"}), emits=tuple(PAIR_RULES)),
]


class RuleOrderError(RuntimeError):
    """The steps' declared tables cannot be ordered: one reads a table nothing makes, or two wait on each other."""


def ordered(steps: list[Step], made: frozenset[str]) -> list[Step]:
    """The steps in an order where each runs after the steps that make what it reads (declaration order
    otherwise). `made` holds the tables already there."""
    waiting, done, available = list(steps), [], set(made)
    makers = {table for step in steps for table in step.makes}
    for step in steps:
        missing = step.reads - makers - available
        if missing:
            raise RuleOrderError(f"step {step.name} reads {', '.join(sorted(missing))}, which no step makes")
    while waiting:
        ready = next((step for step in waiting if step.reads <= available), None)
        if ready is None:
            raise RuleOrderError("steps wait on each other: " + ", ".join(step.name for step in waiting))
        waiting.remove(ready)
        done.append(ready)
        available |= ready.makes
    return done


BATCH_STEPS = ordered([step for step in STEPS if not step.per_part], BATCH_TABLES)
PART_STEPS = ordered([*ENGINE_STEPS, *(step for step in STEPS if step.per_part)],
                     BATCH_TABLES | {table for step in BATCH_STEPS for table in step.makes})

# Findings are kept for the batch's own lines only (every rule skips history lines); one that rests on a line
# of an earlier batch names it.
FLAGS = """
insert into line_flags by name
with resolved as (
    select finding.* replace (coalesce(history.line_id, finding.partner_line_id) as partner_line_id,
                              coalesce(history.batch_id, finding.partner_batch) as partner_batch)
    from found finding
    left join history_lines history on history.sl_id = finding.partner_line_id
)
select $batch as batch_id, finding.line_id, finding.rule_id, rule.category,
       coalesce(finding.severity, rule.severity) as severity, coalesce(finding.carc, rule.carc) as carc,
       coalesce(finding.expected_allowed, 0) as dollars_at_risk,
       finding.message || case when finding.partner_batch is null then ''
                               else printf(' Earlier batch: %s.', finding.partner_batch) end as message,
       finding.partner_line_id, finding.ptp_column_1, finding.ptp_column_2, finding.ptp_modifier_indicator,
       finding.ptp_rationale, finding.partner_batch, finding.partner_claim_id, finding.partner_line_number
from resolved finding
join rule_registry rule on rule.id = finding.rule_id
"""

UNREGISTERED = "select distinct rule_id from found where rule_id not in (select id from rule_registry) order by 1"

# A batch is judged in parts of about this many lines (one part up to it).
LINES_PER_PART = 2_000_000


class UnregisteredRuleError(RuntimeError):
    """A statement emitted a finding of a rule the registry does not hold."""


def _part_sql(sql: str, parts: int, part: int, shards: int) -> str:
    """A statement with its part's numbers written in (IN_PART): bound as parameters they kept DuckDB from
    folding the part's condition into the scan, which then cost ten times as much, once per part."""
    numbers = {"parts": parts, "part": part, "shards": shards}
    return re.sub(r"\$(parts|part|shards)\b", lambda match: str(numbers[match.group(1)]), sql)


def history_span(con, batch_id: str, with_history: bool) -> dict:
    """The days of earlier lines that can take part: a surgery's period reaches a visit up to 90 days after it
    (and 57 the day before), and an encounter is one day. Bound as constants, they let DuckDB skip the stored
    row groups of earlier quarters instead of reading every earlier line of the batch's patients."""
    first = last = None
    if with_history:  # without history no earlier line takes part: the batch's dates are not looked up
        first, last = con.execute(
            "select min(date_of_service), max(date_of_service) from claim_lines where batch_id = ?", [batch_id]
        ).fetchall()[0]
    if first is None:
        return {"history_from": None, "history_through": None}
    return {"history_from": first - timedelta(days=91), "history_through": last + timedelta(days=1)}


def scrub_batch(con, batch_id: str, with_history: bool = False,
                lines_per_part: int | None = None, shards: int = 1, span: dict | None = None) -> dict[str, int]:
    """Judge one priced batch against every rule; rewrites the batch's rows of `line_flags`. With history,
    lines of earlier batches count as part of the batch's encounters, but only the batch's lines are flagged.
    A batch of more than `lines_per_part` lines (LINES_PER_PART unless given) is judged shard by shard
    (`shards`, the site's patient shards stored with the lines; 1 where the connection sees one shard's file
    only), and a shard of more than that in parts of it, by patient; a smaller batch is judged whole."""
    register_rules(con)
    # `span`: the whole batch's history dates, where this connection sees one shard's lines only.
    values = {"batch": batch_id, "with_history": with_history, **(span or history_span(con, batch_id, with_history))}
    con.execute(HISTORY_CANDIDATES, named_parameters(HISTORY_CANDIDATES, values))
    price_history(con, batch_id)
    con.execute(HISTORY_LINES)
    con.execute(NPI_CHECKED, named_parameters(NPI_CHECKED, values))
    con.execute(FOUND)
    for step in BATCH_STEPS:
        con.execute(step.sql, named_parameters(step.sql, values))
    lines = con.execute("select count(*) from claim_lines where batch_id = ?", [batch_id]).fetchall()[0][0]
    per_part = lines_per_part or LINES_PER_PART
    per_shard = max(1, -(-lines // (shards * per_part)))
    # A batch that fits one part is judged whole whatever the shard count: the parts each read the whole
    # batch's lines to pick theirs, which only pays where a part's tables would otherwise spill.
    parts = 1 if lines <= per_part else shards * per_shard
    for part in range(parts):
        for step in PART_STEPS:
            sql = _part_sql(step.sql, parts, part, shards)
            con.execute(sql, named_parameters(sql, values))
    unregistered = [row[0] for row in con.execute(UNREGISTERED).fetchall()]
    if unregistered:
        raise UnregisteredRuleError(f"findings of rule {', '.join(unregistered)}, which the registry does not "
                                    "hold: a defect in claimscrub")
    clear_batch(con, "line_flags", batch_id)
    con.execute(FLAGS, named_parameters(FLAGS, values))
    rows = con.execute(
        "select severity, count(*) from line_flags where batch_id = ? group by severity", [batch_id]
    ).fetchall()
    return {severity: count for severity, count in rows}
