"""The Worklist's rows: one per line to fix, under its claim, each with one instruction per cause.

Built in DuckDB from the batch's findings table (`finding_rows`, assets/outputs.py), set-based throughout:
the instruction templates and precedence rules of assets/rules/worklist.py become SQL expressions evaluated
over every finding at once. The steps, each a temporary table:

1. `worklist_findings`: the deny and review findings of the claims with a deny finding, with the facts their
   instructions name (the partner line's code, modifiers, provider and day), and whether the line behind a
   bundle goes (`partner_gone`, along chains of bundles);
2. `worklist_dups`: for each duplicate finding, the other lines of its duplicate group and what the line is to
   become (its role: billed as the other component, kept, removed ...), and what becomes of the line it
   overlaps;
3. `worklist_facts`: each finding with the instruction that fits it (`variant`, the first that matches);
   `worklist_gone`: the findings whose only cause another fix removes (a surgery, a column 1 line, every other
   service of an injection's day); `worklist_removals`: the lines an instruction takes off their claim; and
   `worklist_orphans`: the add-on lines that go with them;
4. `worklist_days`: for each MUE_DOS finding, its day's lines and units, and whether the day fits its MUE once
   the lines to remove are gone;
5. `worklist_judged`: which findings a precedence rule settles, and each finding's instruction and action;
6. `worklist_links`, `worklist_clusters` and `worklist_order`: the claims a conflict links, and the sheet's
   order: by billing provider, claims linked by a conflict together, biggest dollars at risk first;
7. `worklist_rows`: one row per line, stored in that order.
"""

from __future__ import annotations

from .rules.addons import AOC_EDITS
from .rules.worklist import (
    DUPLICATE_RULES,
    EARLIER_ACTION,
    EARLIER_GLOBAL_ACTIONS,
    INSTRUCTIONS,
    PAID_BILATERAL,
    PARTNER_ACTIONS,
    PRECEDENCE,
    SIDE_RULES,
    template_sql,
)


def _sql_list(values) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _npi_valid(npi: str) -> str:
    """SQL: the NPI passes its check digit (Luhn over 80840 and the first nine digits), as the judge checks
    it; a cell without a digit (a provider's name) is not checked."""
    digit = f"coalesce(try_cast(substr('80840' || {npi}, i, 1) as integer), 0)"
    return (f"(not regexp_matches({npi}, '[0-9]') or regexp_full_match({npi}, '[0-9]{{10}}') "
            "and list_sum(list_transform(range(1, 16), lambda i: "
            f"case when (16 - i) % 2 = 0 then ({digit} * 2) % 10 + ({digit} * 2) // 10 else {digit} end)) "
            "% 10 = 0)")


def _billed(alias: str) -> str:
    return (f"{alias}.hcpcs || case when coalesce({alias}.modifiers, '') <> '' "
            f"then '-' || replace({alias}.modifiers, ',', '-') else '' end")


# What the Worklist reads of a finding: each step copies its rows, so it carries only these.
FINDING_COLUMNS = """_row, line_id, claim_id, line_number, patient, payer, date_of_service, hcpcs, modifiers,
    units, provider, billing_npi, rendering_npi, component, place_of_service, rule_id, severity,
    dollars_at_risk, message, partner_line_id, partner_batch, partner_claim_id, partner_line_number,
    ptp_column_1, ptp_modifier_indicator, status, pctc, rvu_release, mue_value, bilat_surg, asst_surg,
    co_surg, team_surg"""

# The findings of the claims a biller has to change (a deny finding on some line of the claim), deny and
# review, with the facts of their partner line: the judge stored its claim and line number, its code,
# modifiers, provider and day are looked up among the few partner lines (of this batch or, with history, an
# earlier one). `found` is not materialized: a copy of its wide rows spilled to disk at ten million lines, where
# the partners' ids read only two of its columns.
FINDINGS = f"""
create or replace temp table worklist_findings as
with found as not materialized (
    select {FINDING_COLUMNS} from finding_rows
    where severity in ('deny', 'review') and decision_group in ('pending', 'accepted')
      and claim_id in (select claim_id from finding_rows
                       where severity = 'deny' and decision_group in ('pending', 'accepted'))
),
partner_ids as (
    select distinct coalesce(partner_batch, $batch) as batch_id, partner_line_id as line_id
    from found where partner_line_id is not null
),
partners as (
    select batch_id, line_id, hcpcs, modifier_text as modifiers, provider, component, date_of_service
    from claim_lines
    where batch_id in (select batch_id from partner_ids) and line_id in (select line_id from partner_ids)
),
-- A line whose 26 or TC goes (MOD_PCTC_INVALID) repeats, once it is gone, any line of its patient, day, code and
-- provider with the same other modifiers: of those, the one kept is a line without 26 or TC, else the first
-- by claim and line.
corrected as (
    select l.line_id, l.patient_id, l.date_of_service, l.hcpcs, l.provider,
           list_sort(list_filter(l.modifiers, lambda m: m not in ('26', 'TC'))) as others
    from claim_lines l
    where l.batch_id = $batch
      and l.line_id in (select line_id from found where rule_id = 'MOD_PCTC_INVALID')
),
repeats as (
    select c.line_id,
           arg_min({{'id': o.line_id, 'ref': o.claim_id || ' line ' || o.line_number}},
                   {{'part': list_has_any(o.modifiers, ['26', 'TC']), 'claim': o.claim_id, 'line': o.line_number}})
               as kept
    from corrected c
    join claim_lines o on o.batch_id = $batch and o.patient_id = c.patient_id
                      and o.date_of_service = c.date_of_service and o.hcpcs = c.hcpcs
                      and o.provider is not distinct from c.provider
                      and list_sort(list_filter(o.modifiers, lambda m: m not in ('26', 'TC'))) = c.others
    group by c.line_id
),
-- Co-surgeons on a code that permits none: the lines with 62 of one patient, day and code, whoever billed them.
-- The first by claim and line is the one billed by one surgeon; the others go.
cosurgeons as (
    select line_id,
           first_value(claim_id || ' line ' || line_number) over (
               partition by patient, date_of_service, hcpcs order by claim_id, line_number) as first_ref,
           count(*) over (partition by patient, date_of_service, hcpcs) as surgeons
    from found where rule_id = 'MOD_COSURGEON_NOT_PAYABLE' and severity = 'deny'
),
-- An add-on without its primary where the patient has one of its primaries billed within a week by the same
-- provider, or the same day by another: most often the add-on's date or rendering NPI is the mistake, not a
-- missing primary. The nearest such line, and which of the two differs.
aoc_near as (
    select a.line_id,
           arg_min(o.claim_id || ' line ' || o.line_number || ' (' || o.hcpcs || ', NPI ' || coalesce(o.provider, '')
                   || ', ' || strftime(o.date_of_service, '%Y-%m-%d') || ')',
                   {{'days': abs(datediff('day', o.date_of_service, a.date_of_service)), 'claim': o.claim_id,
                     'line': o.line_number}}) as near_primary,
           arg_min(case when o.date_of_service = a.date_of_service then 'rendering NPI' else 'date of service' end,
                   {{'days': abs(datediff('day', o.date_of_service, a.date_of_service)), 'claim': o.claim_id,
                     'line': o.line_number}}) as near_what
    from (select f.line_id, l.patient_id, l.date_of_service, l.provider,
                 regexp_extract_all(regexp_extract(f.message, 'primary codes [(]([^)]*)[)]', 1), '[A-Z0-9]{{5}}')
                     as primaries
          from (select line_id, message from found where rule_id = 'AOC_NO_PRIMARY' and severity = 'deny') f
          join claim_lines l on l.batch_id = $batch and l.line_id = f.line_id) a
    -- Only lines of a code that some add-on edit lists as a primary can be one.
    join (select line_id, claim_id, line_number, patient_id, date_of_service, provider, hcpcs from claim_lines
          where batch_id = $batch
            and hcpcs in (select distinct primary_code from ref_aoc
                          where release_id in (select distinct aoc_release from price_contexts
                                               where batch_id = $batch))) o
      on o.patient_id = a.patient_id and o.line_id <> a.line_id
     and o.date_of_service between a.date_of_service - 7 and a.date_of_service + 7
     and ((o.date_of_service = a.date_of_service) <> (o.provider is not distinct from a.provider))
    where list_contains(a.primaries, o.hcpcs)
    group by a.line_id
)
select f.*, f.claim_id || ' line ' || f.line_number as line_ref, {_billed("f")} as billed,
       an.near_primary as aoc_near, an.near_what as aoc_near_what,
       cs.first_ref as cosurgeon_first, cs.surgeons as cosurgeons,
       -- Whether the line behind this finding goes: worked out below, for chains of bundles (CHAIN) and then
       -- for the lines removed for other causes, once each finding's instruction is known (GONE).
       false as partner_gone,
       case when r.kept.id <> f.line_id then r.kept.ref end as pctc_repeats,
       p.hcpcs as partner_hcpcs, {_billed("p")} as partner_billed, p.provider as partner_provider,
       p.component as partner_component, p.date_of_service as partner_dos,
       f.partner_claim_id || ' line ' || f.partner_line_number as partner_line,
       f.partner_claim_id || ' line ' || f.partner_line_number || ' ('
           || concat_ws(', ', {_billed("p")}, 'NPI ' || p.provider,
                        case when p.date_of_service = f.date_of_service then 'same day'
                             else strftime(p.date_of_service, '%Y-%m-%d') end,
                        'earlier batch ' || f.partner_batch) || ')' as partner_ref,
       -- Which NPI fails, by its role: the biller corrects one field of the claim, not "an NPI".
       case when f.rule_id = 'NPI_INVALID' then
           case when not {_npi_valid("f.rendering_npi")} and not {_npi_valid("f.billing_npi")}
                     and f.rendering_npi = f.billing_npi then 'rendering and billing NPI ' || f.rendering_npi
                else concat_ws(' and ',
                    case when not {_npi_valid("f.rendering_npi")} then 'rendering NPI ' || f.rendering_npi end,
                    case when not {_npi_valid("f.billing_npi")} then 'billing NPI ' || f.billing_npi end) end
       end as failing_npi
from found f
left join partners p on p.batch_id = coalesce(f.partner_batch, $batch) and p.line_id = f.partner_line_id
left join repeats r on f.rule_id = 'MOD_PCTC_INVALID' and r.line_id = f.line_id
left join aoc_near an on f.rule_id = 'AOC_NO_PRIMARY' and an.line_id = f.line_id
left join cosurgeons cs on f.rule_id = 'MOD_COSURGEON_NOT_PAYABLE' and cs.line_id = f.line_id
"""

# A chain of bundles (92611 bundles 76120, which bundles 76000, which bundles a fourth line ...): each line goes
# only if the line it is bundled into stays. A line that another edit bundles too is left out (the judge names the
# first column 1 line and counts the others in its message): it goes either way. Run until nothing changes: the
# first pass marks the lines whose column 1 line is bundled at all, the next finds a line bundled into a line that
# itself stays (its own column 1 line gone) removed after all, and so on down the chain.
CHAIN = """
update worklist_findings f set partner_gone = n.gone
from (
    select c._row,
           exists (select 1 from worklist_findings b
                   where b.rule_id = 'PTP_NO_BYPASS' and b.severity = 'deny' and b.partner_batch is null
                     and b.line_id = c.partner_line_id and b.partner_line_id <> c.line_id and not b.partner_gone)
               as gone
    from worklist_findings c
    where c.rule_id = 'PTP_NO_BYPASS' and c.partner_batch is null
      and not contains(c.message, 'more edit(s) against this line)')
) n
where n._row = f._row and n.gone <> f.partner_gone
"""
MAX_CHAIN = 20

# Duplicate groups: the lines of one patient, day and code with DUP_COMPONENT (and, for DUP_EXACT, the same
# modifiers and provider), and a partner from an earlier batch, already billed. A line removed for a PTP
# bundle leaves its group: it goes whatever its duplicates do. Of lines of the same component, the one kept is
# the earlier batch's, else the first by claim and line.
DUPLICATE_ROLES = """
case
    when a.bundled then 'bundled'
    when a.others = 0 then 'resolved'
    when a.rule_id = 'DUP_EXACT' then case when a.is_keeper then 'keep_copy' else 'remove_copy' end
    -- Copies of a global line go first; the one kept then gives way to the parts billed beside it.
    when a.component = 'global' and a.globals > 0 and not a.is_keeper then 'remove_copy'
    -- Both parts billed beside it: by its own provider alone, it stays and they go; else it goes.
    when a.component = 'global' and a.both_parts and not (a.other_26 or a.other_tc) then 'keep_global'
    when a.component = 'global' and a.both_parts then 'remove_global'
    -- Another provider's part: the global becomes the other part; in a hospital, whose own claim bills the
    -- technical part, a global beside another provider's 26 has nothing left to bill.
    when a.component = 'global' and a.other_26 and a.hospital_global then 'remove_hospital_global'
    when a.component = 'global' and a.other_26 then 'bill_tc'
    when a.component = 'global' and a.other_tc then 'bill_26'
    when a.component = 'global' and (a.parts_26 > 0 or a.parts_tc > 0) then 'keep_global'
    when a.component = 'global' then 'keep_copy'
    -- A part beside a global: it stays where the global goes (both parts billed) or gives way to another
    -- provider's part; a part of the global's own provider goes.
    when a.globals > 0 and a.own_global and not a.other_parts then 'remove_part'
    -- A copy of a part of a provider who bills no global: the first such stays, whatever becomes of the global.
    when a.globals > 0 and not a.own_global and a.part_copy then 'remove_copy'
    when a.globals > 0 and ((a.component = '26' and a.parts_tc > 0) or (a.component = 'TC' and a.parts_26 > 0))
        then 'keep_part'
    when a.globals > 0 and a.own_global then 'remove_part'
    when a.globals > 0 then 'keep_part'
    when a.is_keeper then 'keep_copy'
    else 'remove_copy'
end"""

# A Worklist cell lists at most this many other lines (a duplicate's copies, an MUE day's lines), then says how
# many more: an export that repeats a line thousands of times still gives a row a biller can read.
LISTED = 20


def _other(firsts: str) -> str:
    """SQL: of a group's first two lines by rank (`firsts`, entries with `id` and `batch`), the first that is not
    the line `l` itself."""
    return f"list_filter({firsts}, lambda x: not (x.batch = '' and x.id = l.line_id))[1]"


def _more_list(count: str) -> str:
    """SQL: a list ending a Worklist cell's list of lines, ['and N more'] where `count` exceed LISTED."""
    return f"(case when {count} > {LISTED} then ['and ' || ({count} - {LISTED}) || ' more'] else [] end)"


def _in_line_order(refs: str) -> str:
    """SQL: the list of line references `refs` by claim, then line number as a number (line 2 before line
    10), with an 'and N more' entry last."""
    return (f"list_transform(list_sort(list_transform({refs}, lambda x: "
            "{'more': regexp_full_match(x, 'and [0-9]+ more'), 'claim': regexp_extract(x, '^(.*?) line [0-9]+', 1), "
            "'line': try_cast(regexp_extract(x, '^.*? line ([0-9]+)', 1) as bigint), 'ref': x})), lambda y: y.ref)")


def _listed(lines: str, count: str) -> str:
    """SQL: the first LISTED of the list of line references `lines` (`count` of them), comma-joined, then
    ' and N more' for the rest."""
    return (f"(array_to_string(({lines})[1:{LISTED}], ', ') "
            f"|| case when {count} > {LISTED} then ' and ' || ({count} - {LISTED}) || ' more' else '' end)")


DUPLICATES = f"""
create or replace temp table worklist_dups as
with members as (
    select distinct f.rule_id, f.line_id, '' as batch, false as earlier, f.claim_id, f.line_number,
           f.line_ref, f.component, f.provider,
           f.line_ref || ' (' || f.billed || ', NPI ' || coalesce(f.provider, '') || ', same day)' as ref,
           hash(f.patient, f.date_of_service, f.hcpcs,
                case when f.rule_id = 'DUP_EXACT' then coalesce(f.modifiers, '') || '|' || f.provider end)
               as group_key,
           f.line_id in (select line_id from worklist_findings
                         where rule_id = 'PTP_NO_BYPASS' and not partner_gone) as bundled,
           f.line_id in (select line_id from worklist_findings where rule_id = 'MOD_GLOBAL_IN_HOSPITAL')
               as hospital_global
    from worklist_findings f where f.rule_id in {_sql_list(DUPLICATE_RULES)}
    union
    select f.rule_id, f.partner_line_id, f.partner_batch, true, f.partner_claim_id, f.partner_line_number,
           f.partner_line, f.partner_component, f.partner_provider, f.partner_ref,
           hash(f.patient, f.date_of_service, f.hcpcs,
                case when f.rule_id = 'DUP_EXACT' then coalesce(f.modifiers, '') || '|' || f.provider end),
           false, false
    from worklist_findings f
    where f.rule_id in {_sql_list(DUPLICATE_RULES)} and f.partner_batch is not null
),
ranked as (
    select *, {{'first': not earlier, 'claim': claim_id, 'line': line_number}} as rank,
           case when rule_id = 'DUP_EXACT' then '' else component end as part,
           {{'ref': ref, 'line': line_ref, 'id': line_id, 'batch': batch, 'component': component,
             'provider': provider}} as entry
    from members
),
-- The lines a line may be a copy of: its group's, less those removed for a bundle. They are counted, and their
-- first two by rank kept (the first that is not the line itself is the one it defers to), once per group,
-- component, provider and part: a pair of lines at a time would be a day's lines squared, and a day billed a
-- thousand times over would not fit in memory.
pool as (select * from ranked where not bundled),
by_group as (
    select rule_id, group_key, count(*) as n,
           count(*) filter (where component = 'global') as n_global,
           count(*) filter (where component = '26') as n_26,
           count(*) filter (where component = 'TC') as n_tc
    from pool group by all
),
by_component as (
    select rule_id, group_key, component, arg_min(entry, rank, 2) as firsts from pool group by all
),
by_provider as (
    select rule_id, group_key, component, provider, count(*) as n, arg_min(entry, rank, 2) as firsts,
           min(rank) as first_rank
    from pool group by all
),
-- Per component, the first line of each of its first two providers: one of them is another provider's.
by_component_providers as (
    select rule_id, group_key, component, arg_min(firsts[1], first_rank, 2) as firsts
    from by_provider group by all
),
by_part as (
    select rule_id, group_key, part, arg_min({{'entry': entry, 'rank': rank}}, rank, 2) as firsts
    from pool group by all
),
-- Beside a global, the part line that stays of each component: the first of a provider who bills no global
-- line in the group (a part of the global's own provider goes with it).
part_keepers as (
    select p.rule_id, p.group_key, p.component, min(p.rank) as rank, arg_min(p.entry, p.rank) as entry
    from pool p
    where p.component in ('26', 'TC')
      and not exists (select 1 from pool g where g.rule_id = p.rule_id and g.group_key = p.group_key
                                            and g.component = 'global' and g.provider is not distinct from p.provider)
    group by all
),
-- A part's lines in order, for its keeper's instruction (the keeper comes first: its copies follow).
part_lists as (
    select rule_id, group_key, part, count(*) as n,
           list(line_ref order by rank)[2:{LISTED + 1}] as copy_lines,
           list(ref order by rank)[2:{LISTED + 1}] as copy_refs
    from pool group by all
),
grouped as (
    select l.rule_id, l.line_id, l.component, l.provider, l.bundled, l.group_key, l.part, l.rank,
           coalesce(g.n, 0) - own.in_pool::int as others,
           coalesce(g.n_global, 0) - (own.in_pool and l.component = 'global')::int as globals,
           coalesce(g.n_26, 0) - (own.in_pool and l.component = '26')::int as parts_26,
           coalesce(g.n_tc, 0) - (own.in_pool and l.component = 'TC')::int as parts_tc,
           coalesce(g.n_26, 0) - (own.in_pool and l.component = '26')::int > 0
               and coalesce(g.n_tc, 0) - (own.in_pool and l.component = 'TC')::int > 0 as both_parts,
           coalesce(pg.n, 0) - (own.in_pool and l.component = 'global')::int > 0 as own_global,
           coalesce(p26.n, 0) - (own.in_pool and l.component = '26')::int > 0 as own_26,
           coalesce(ptc.n, 0) - (own.in_pool and l.component = 'TC')::int > 0 as own_tc,
           -- Parts billed by a provider other than the line's own.
           coalesce(g.n_26, 0) + coalesce(g.n_tc, 0) > coalesce(p26.n, 0) + coalesce(ptc.n, 0) as other_parts,
           l.component = 'global' and coalesce(g.n_26, 0) > coalesce(p26.n, 0) as other_26,
           l.component = 'global' and coalesce(g.n_tc, 0) > coalesce(ptc.n, 0) as other_tc,
           list_filter(o26.firsts, lambda x: x.provider is distinct from l.provider)[1] as first_other_26,
           list_filter(otc.firsts, lambda x: x.provider is distinct from l.provider)[1] as first_other_tc,
           l.hospital_global,
           {_other("cg.firsts")} as first_global,
           coalesce({_other("p26.firsts")}, {_other("c26.firsts")}) as first_26,
           coalesce({_other("ptc.firsts")}, {_other("ctc.firsts")}) as first_tc,
           list_filter(k.firsts, lambda x: not (x.entry.batch = '' and x.entry.id = l.line_id))[1] as keeper_rank,
           pk.rank < l.rank as part_copy, pk.entry as part_keeper
    from (select *, {{'in_pool': not bundled}} as own from ranked where not earlier) l
    left join by_group g on g.rule_id = l.rule_id and g.group_key = l.group_key
    left join by_component cg on cg.rule_id = l.rule_id and cg.group_key = l.group_key and cg.component = 'global'
    left join by_component c26 on c26.rule_id = l.rule_id and c26.group_key = l.group_key and c26.component = '26'
    left join by_component ctc on ctc.rule_id = l.rule_id and ctc.group_key = l.group_key and ctc.component = 'TC'
    left join by_provider pg on pg.rule_id = l.rule_id and pg.group_key = l.group_key and pg.component = 'global'
                            and pg.provider is not distinct from l.provider
    left join by_provider p26 on p26.rule_id = l.rule_id and p26.group_key = l.group_key and p26.component = '26'
                             and p26.provider is not distinct from l.provider
    left join by_provider ptc on ptc.rule_id = l.rule_id and ptc.group_key = l.group_key and ptc.component = 'TC'
                             and ptc.provider is not distinct from l.provider
    left join by_part k on k.rule_id = l.rule_id and k.group_key = l.group_key and k.part = l.part
    left join part_keepers pk on pk.rule_id = l.rule_id and pk.group_key = l.group_key and pk.component = l.component
    left join by_component_providers o26 on o26.rule_id = l.rule_id and o26.group_key = l.group_key
                                        and o26.component = '26'
    left join by_component_providers otc on otc.rule_id = l.rule_id and otc.group_key = l.group_key
                                        and otc.component = 'TC'
),
keepers as (
    select *, case when globals > 0 and part_copy then part_keeper else keeper_rank.entry end as keeper,
           coalesce(rank < keeper_rank.rank, true) as is_keeper from grouped
),
roles as (
    select a.*, {DUPLICATE_ROLES} as dup_role from keepers a
),
copies as (
    -- Only the line kept takes its part's list.
    select r.*, t.n - 1 as copy_count, {_listed("t.copy_lines", "t.n - 1")} as copies_text, t.copy_refs
    from roles r
    left join part_lists t on r.dup_role = 'keep_copy' and t.rule_id = r.rule_id and t.group_key = r.group_key
                          and t.part = r.part
),
-- A global line whose only overlap tonight is another provider's part, whose own finding an auditor dismissed
-- (the part was that provider's to bill): the global still overlaps it, and gives way to it as to a part not
-- decided. Any other overlap whose other side was decided is left to the auditor (decide to match).
dismissed_parts as (
    select f.line_id, f.rule_id,
           {{'ref': f.partner_ref, 'line': f.partner_line, 'id': f.partner_line_id, 'batch': '',
             'component': f.partner_component, 'provider': f.partner_provider}} as part
    from worklist_findings f
    where f.rule_id = 'DUP_COMPONENT' and f.component = 'global' and f.partner_batch is null
      and f.partner_component in ('26', 'TC') and f.partner_provider is distinct from f.provider
      and f.partner_line_id in (select line_id from finding_rows
                                where rule_id = 'DUP_COMPONENT' and decision_group = 'dismissed')
),
settled as (
    select c.* replace (
               case when c.dup_role <> 'resolved' or d.part is null then c.dup_role
                    when d.part.component = '26' and c.hospital_global then 'remove_hospital_global'
                    when d.part.component = '26' then 'bill_tc' else 'bill_26' end as dup_role,
               coalesce(c.first_other_26, case when d.part.component = '26' then d.part end) as first_other_26,
               coalesce(c.first_other_tc, case when d.part.component = 'TC' then d.part end) as first_other_tc)
    from copies c
    left join dismissed_parts d on d.line_id = c.line_id and d.rule_id = c.rule_id
)
select rule_id, line_id, group_key, dup_role, keeper.line as dup_keeper, others as dup_others,
       copies_text as dup_copies,
       -- A global line beside another provider's part (not in a hospital, whose global goes): the part it
       -- becomes, and that provider's line.
       case when component = 'global' and not hospital_global and (other_26 or other_tc)
            then coalesce(first_other_26, first_other_tc).ref end as other_part_ref,
       case when component = 'global' and not hospital_global and other_26 then 'TC'
            when component = 'global' and not hospital_global and other_tc then '26' end as global_becomes,
       case dup_role when 'bill_tc' then first_other_26 when 'bill_26' then first_other_tc
                     when 'remove_hospital_global' then first_other_26
                     when 'keep_global' then case when own_26 then first_26 else first_tc end
                     when 'remove_part' then first_global when 'keep_part' then first_global
                     when 'remove_copy' then keeper end as partner,
       case when dup_role = 'keep_global' and both_parts then first_26.line || ' and ' || first_tc.line end
           as partner_lines,
       case when dup_role = 'remove_global' or (dup_role = 'keep_global' and both_parts)
                 then first_26.ref || ' and ' || first_tc.ref
            when dup_role = 'keep_copy' then copies_text
       end as partner_text,
       case dup_role when 'remove_global' then [first_26.ref, first_tc.ref]
                     when 'keep_copy' then copy_refs || {_more_list("copy_count")} end as partner_refs
from settled
"""

# What becomes of the line a duplicate overlaps, from that line's own role; a line of an earlier batch has
# gone out already: a global one is corrected to the part the other line does not bill.
PARTNER_ACTION_SQL = "case p.dup_role " + " ".join(
    f"when '{role}' then {template_sql(text, 'f')}" for role, text in PARTNER_ACTIONS.items()
) + " else 'stay as billed' end"
EARLIER_PARTNER_SQL = "case " + " ".join(
    f"when d.partner.component = 'global' and f.component = '{part}' then {template_sql(text, 'f')}"
    for part, text in EARLIER_GLOBAL_ACTIONS.items()) + f" else {template_sql(EARLIER_ACTION, 'f')} end"

# The instruction that fits each finding: the first of its rule's whose condition holds.
VARIANT_SQL = "case " + " ".join(
    f"when w.rule_id = '{i.rule_id}'{f' and ({i.when})' if i.when else ''} then {n}"
    for n, i in enumerate(INSTRUCTIONS) if not i.after_days) + " end"
# Once the MUE days are known: an MUE_DOS finding given its rule's unconditional instruction takes the first
# of the instructions that wait for the days (`after_days`) whose condition holds, if one does.
DAY_VARIANT_SQL = "case " + " ".join(
    f"when w.variant = {n} and w.rule_id = '{i.rule_id}' and w.units_before is not null then case "
    + " ".join(f"when {j.when} then {m}" for m, j in enumerate(INSTRUCTIONS)
               if j.after_days and j.rule_id == i.rule_id)
    + f" else {n} end"
    for n, i in enumerate(INSTRUCTIONS)
    if not i.when and any(j.after_days and j.rule_id == i.rule_id for j in INSTRUCTIONS)) + " else w.variant end"
REMOVING = _sql_list(n for n, i in enumerate(INSTRUCTIONS) if i.removes)
# Rules whose fix a precedence rule lets settle other findings: a review finding among them removes its line
# when the precedence applies (a 26 and TC split by one biller, where the day's units fit once combined).
GOVERNING = sorted({rule for p in PRECEDENCE for rule in p.governs})

# Kept narrow (the finding's key, rule, severity, duplicate role and instruction); later steps join it to the
# findings' other facts.
FACTS = f"""
create or replace temp table worklist_facts as
-- The sides (RT, LT) that the lines of a bilateral code's MUE_DOS day carry: each side on a line of its own is
-- one bilateral service; one side twice, or a side beside an assistant's line, is not. Those days are few:
-- grouped apart, rather than a window over every finding.
with sides as (
    select patient, date_of_service, provider, hcpcs,
           list_distinct(flatten(list(list_filter(string_split(coalesce(modifiers, ''), ','),
                                                  lambda m: m in ('RT', 'LT'))))) as day_sides,
           -- The side billed first (by claim and line) is the one billed as bilateral; the other goes.
           arg_min(line_id, {{'claim': claim_id, 'line': line_number}})
               filter (where list_has_any(string_split(coalesce(modifiers, ''), ','), ['RT', 'LT']))
               as first_side_line,
           count(*) as side_lines
    from worklist_findings where rule_id = 'MUE_DOS' and bilat_surg in {PAID_BILATERAL}
    group by all
)
select w._row, w.line_id, w.rule_id, w.severity, w.dup_role, w.dup_keeper, w.dup_copies, w.dup_group,
       w.dup_partner_ref, w.dup_partner_line, w.dup_partner_refs, w.dup_partner_action, w.partner_gone,
       w.other_part_ref, w.global_becomes, {VARIANT_SQL} as variant
from (
    select f.*, d.dup_role, d.dup_keeper, d.dup_copies, d.group_key as dup_group, d.dup_others,
           d.other_part_ref, d.global_becomes,
           case when f.rule_id = 'MUE_DOS' then s.day_sides end as day_sides,
           case when f.rule_id = 'MUE_DOS' then s.first_side_line end as first_side_line,
           case when f.rule_id = 'MUE_DOS' then s.side_lines end as side_lines,
           coalesce(d.partner_text, d.partner.ref) as dup_partner_ref,
           coalesce(d.partner_lines, d.partner.line) as dup_partner_line,
           coalesce(d.partner_refs, case when d.partner.ref is not null then [d.partner.ref] else [] end)
               as dup_partner_refs,
           case when d.partner.batch <> '' then {EARLIER_PARTNER_SQL} else {PARTNER_ACTION_SQL} end
               as dup_partner_action
    from worklist_findings f
    left join worklist_dups d on d.rule_id = f.rule_id and d.line_id = f.line_id
    left join worklist_dups p on p.rule_id = f.rule_id and p.line_id = d.partner.id and d.partner.batch = ''
    left join sides s on f.rule_id = 'MUE_DOS' and f.bilat_surg in {PAID_BILATERAL} and s.patient = f.patient
                     and s.date_of_service = f.date_of_service and s.provider is not distinct from f.provider
                     and s.hcpcs = f.hcpcs
) w
"""

# The findings whose only cause is a line that another cause removes, beyond the chains of CHAIN: a column 2
# line whose column 1 line goes (a technical part in a hospital, an assistant Medicare never pays, a global line
# beside another provider's parts ...), a visit whose only surgery in the period goes, a status-T injection whose
# every other service of the day goes. Such a line is no longer billed beside its cause: it stays as billed.
# Only removals that do not rest on this kind of finding count (a removed status-T line is no cause gone: it went
# because of another line), and only lines of this batch: an earlier batch's went out already.
GONE = f"""
create or replace temp table worklist_gone as
with removed as (
    select line_id, arg_min(rule_id, variant) as removed_by
    from worklist_facts
    where severity = 'deny' and variant in {REMOVING} and not partner_gone
      and not (rule_id = 'STATUS_NOT_PAYABLE' and _row in (select _row from worklist_findings
                                                           where rule_id = 'STATUS_NOT_PAYABLE' and status = 'T'))
    group by line_id
),
injections as (
    select w._row, l.patient_id, l.date_of_service, l.provider, l.hcpcs, l.line_id
    from worklist_findings w join claim_lines l on l.batch_id = $batch and l.line_id = w.line_id
    where w.rule_id = 'STATUS_NOT_PAYABLE' and w.status = 'T' and w.severity = 'deny' and w.partner_batch is null
      and not w.partner_gone
),
-- The other services of an injection's day that stay (the judge's: status A, R, T or C, another code).
staying as (
    select distinct i._row
    from injections i
    join claim_lines o on o.batch_id = $batch and o.patient_id = i.patient_id
                      and o.date_of_service = i.date_of_service and o.provider is not distinct from i.provider
                      and o.line_id <> i.line_id and o.hcpcs <> i.hcpcs
    join priced_lines p on p.batch_id = o.batch_id and p.line_id = o.line_id
    where p.status in ('A', 'R', 'T', 'C') and o.line_id not in (select line_id from removed)
)
select w._row
from worklist_findings w join removed r on r.line_id = w.partner_line_id
where w.partner_batch is null and not w.partner_gone
  and ((w.rule_id = 'PTP_NO_BYPASS' and r.removed_by <> 'PTP_NO_BYPASS'
        and not contains(w.message, 'more edit(s) against this line)'))
       or (w.rule_id = 'GLOBAL_EM_IN_PERIOD' and not contains(w.message, 'more surgery line(s)')))
union
select _row from injections where _row not in (select _row from staying)
"""
MARK_GONE = [
    "update worklist_findings set partner_gone = true where _row in (select _row from worklist_gone)",
    "update worklist_facts set partner_gone = true where _row in (select _row from worklist_gone)",
]
# Whether a finding gone that way sits on a line that is also a duplicate: the duplicates' roles took the line
# as removed, and are worked out again.
GONE_DUPLICATES = f"""
select count(*) from worklist_gone g join worklist_findings w on w._row = g._row
where w.line_id in (select line_id from worklist_findings where rule_id in {_sql_list(DUPLICATE_RULES)})
"""

# Per line: whether a deny finding's instruction removes it, or a review finding's may (see GOVERNING), and by
# which rule (the first in priority).
LINE_REMOVALS = f"""
create or replace temp table worklist_removals as
select line_id, bool_or(rule_id = 'PTP_NO_BYPASS' and not partner_gone) as bundled,
       arg_min(rule_id, variant) filter (where variant in {REMOVING} and severity = 'deny'
                                          and not partner_gone) as deny_removed_by,
       arg_min(rule_id, variant) filter (where variant in {REMOVING} and severity = 'review'
                                          and rule_id in {_sql_list(GOVERNING) if GOVERNING else "(null)"})
           as review_removed_by
from worklist_facts group by line_id
"""

# The add-on lines that a line to remove leaves without a primary (the edits that decide for them, as the rule
# reads them: assets/rules/addons.py, AOC_EDITS): of its encounter, no line that stays is one of its primaries.
# The line to remove names them, and each has a row of its own that says it goes too: removed alone, the primary
# would leave an add-on the payer denies next. Only edits of type 1 deny: an add-on of type 2 or 3 alone is a
# review, still payable. Read among the encounters where a line goes, which are few. One row per add-on line and
# primary line that goes.
ADDONS = f"""
create or replace temp table worklist_orphans as
-- The lines that go (worklist_goes: removed by an instruction, or add-ons gone with their primaries so far).
with removed as (select line_id from worklist_goes),
-- The encounters that hold both a line to remove and a code some add-on code edit of the batch lists.
addon_codes as (
    select distinct add_on_code from ref_aoc
    where release_id in (select distinct aoc_release from price_contexts where batch_id = $batch)
),
addon_keys as (
    select distinct patient_id, date_of_service, provider from claim_lines
    where batch_id = $batch and hcpcs in (select add_on_code from addon_codes)
),
encounters as (
    select distinct l.patient_id, l.date_of_service, l.provider from claim_lines l
    semi join addon_keys k on k.patient_id = l.patient_id and k.date_of_service = l.date_of_service
                          and k.provider is not distinct from l.provider
    where l.batch_id = $batch and l.line_id in (select line_id from removed)
),
lines as (
    select l.line_id, l.claim_id, l.line_number, l.patient_id, l.date_of_service, l.provider, l.hcpcs,
           l.hcpcs || coalesce('-' || nullif(replace(l.modifier_text, ',', '-'), ''), '') as billed,
           coalesce(l.billing_npi, l.provider) as biller, p.aoc_release,
           l.line_id in (select line_id from removed) as goes,
           l.line_id in (select line_id from worklist_removals where deny_removed_by is not null) as removed_itself
    from claim_lines l
    semi join encounters k on k.patient_id = l.patient_id and k.date_of_service = l.date_of_service
                          and k.provider is not distinct from l.provider
    join priced_lines p on p.batch_id = l.batch_id and p.line_id = l.line_id
    where l.batch_id = $batch
),
keys as (select distinct aoc_release, hcpcs, date_of_service from lines where not removed_itself),
{AOC_EDITS},
-- Each add-on line of edit type 1 with the other lines of its encounter that count as its primary.
counted as (
    select a.line_id as addon_id, o.line_id as other_id, o.goes
    from lines a
    join edits e on e.aoc_release = a.aoc_release and e.hcpcs = a.hcpcs and e.date_of_service = a.date_of_service
    join lines o on o.patient_id = a.patient_id and o.date_of_service = a.date_of_service
                and o.provider is not distinct from a.provider and o.line_id <> a.line_id
    where not a.removed_itself and e.edit_type = 1 and list_contains(e.primary_codes, o.hcpcs)
),
orphans as (
    select addon_id, other_id from counted
    where goes and addon_id not in (select addon_id from counted where not goes)
)
select o.other_id as line_id, o.addon_id, a.hcpcs as addon_hcpcs, a.claim_id as addon_claim,
       a.line_number as addon_line,
       a.biller as addon_biller, p.claim_id as primary_claim,
       a.claim_id || ' line ' || a.line_number || ' (' || a.billed || ')' as addon_ref,
       p.claim_id || ' line ' || p.line_number || ' (' || p.billed || ')' as primary_ref
from orphans o join lines a on a.line_id = o.addon_id join lines p on p.line_id = o.other_id
"""

# The lines that go: those an instruction removes, then the add-on lines that go with their primaries, and the
# add-ons of those in turn (64495 beside 64494, whose primary 64493 goes), until no more go.
GOES = ("create or replace temp table worklist_goes as "
        "select line_id from worklist_removals where deny_removed_by is not null")
MORE_GOES = """
insert into worklist_goes
select distinct addon_id from worklist_orphans where addon_id not in (select line_id from worklist_goes)
"""
# Whether an add-on that goes could be the primary of another add-on: only then is there a level below.
DEEPER = """
select count(*) from worklist_orphans
where addon_id not in (select line_id from worklist_goes)
  and addon_hcpcs in (select primary_code from ref_aoc
                      where release_id in (select distinct aoc_release from price_contexts where batch_id = $batch))
"""
MAX_ADDON_LEVELS = 10

# The days that break an MUE (MUE_DOS: one patient, day, provider and code): their lines and units, the units
# left once the lines to remove are gone, and the rule whose fix removes them. A day holding lines of an
# earlier batch never fits here: those units are not all in sight.
DAYS = f"""
create or replace temp table worklist_days as
with members as (
    select w.line_id, w.claim_id, w.line_number, w.line_ref, w.units, w.mue_value, w.partner_batch,
           -- The day's units as the judge added them, earlier batches' lines included (MUE_DOS's message).
           try_cast(regexp_extract(w.message, '^[A-Z0-9]{{5}}: ([0-9.]+) units? for this patient', 1) as double)
               as judged_units,
           w.line_ref || ' (' || w.billed || ', NPI ' || coalesce(w.provider, '') || ', same day)' as ref,
           hash(w.patient, w.date_of_service, w.provider, w.hcpcs) as day_key,
           coalesce(r.deny_removed_by, r.review_removed_by) as removed_by
    from worklist_findings w join worklist_removals r on r.line_id = w.line_id
    where w.rule_id = 'MUE_DOS'
),
days as (
    select day_key,
           coalesce(max(judged_units), sum(units)) as day_units,
           min(mue_value) as day_mue,
           -- The day's units as judged (a line of an earlier batch, or of another MUE table, adds to them
           -- unflagged), less those of the lines to remove.
           coalesce(max(judged_units), sum(units)) - coalesce(sum(units) filter (where removed_by is not null), 0)
               as remaining_units,
           bool_or(partner_batch is not null) as with_earlier,
           sum(units) as seen_units,
           not bool_or(partner_batch is not null) and coalesce(max(judged_units), sum(units)) = sum(units)
               as in_sight,
           count(*) as day_count,
           {_listed("list(line_ref order by claim_id, line_number)", "count(*)")} as day_lines,
           list({{'id': line_id, 'ref': ref}} order by claim_id, line_number)[1:{LISTED + 1}] as day_members,
           {_listed("list(line_ref order by claim_id, line_number) filter (where removed_by is not null)",
                    "count(*) filter (where removed_by is not null)")} as fixing_lines,
           case {" ".join(f"when bool_or(removed_by = '{rule}') then '{rule}'"
                          for rule in dict.fromkeys(i.rule_id for i in INSTRUCTIONS if i.removes))} end
               as day_fixed_by
    from members group by day_key
)
select m.line_id, m.day_key, d.day_units, d.day_mue, d.remaining_units, d.day_lines, d.fixing_lines,
       d.day_fixed_by, d.remaining_units <= d.day_mue and not d.with_earlier as day_fits,
       -- Where every unit of the day is in sight (no earlier batch's, none of another table's), or the rest
       -- are an earlier batch's (which went out first): the units of the lines before this one (the earlier
       -- batches', then tonight's by claim and line) that no other fix removes. The first lines keep the MUE's
       -- units; the line that crosses it is cut, the ones after it go.
       case when (d.in_sight or d.with_earlier) and m.removed_by is null then
           d.day_units - d.seen_units + coalesce(sum(m.units) filter (where m.removed_by is null) over (
               partition by m.day_key order by m.claim_id, m.line_number
               rows between unbounded preceding and 1 preceding), 0) end as units_before,
       list_transform(list_filter(d.day_members, lambda x: x.id <> m.line_id), lambda x: x.ref)[1:{LISTED}]
           || {_more_list("d.day_count - 1")} as day_partners
from members m join days d on d.day_key = m.day_key
"""

RESOLVED_SQL = "case " + " ".join(
    f"when {'w.rule_id in ' + _sql_list(p.resolves) + ' and ' if p.resolves else ''}({p.when}) then '{p.id}'"
    for p in PRECEDENCE) + " end"
PROMOTED_SQL = " or ".join(
    f"(w.rule_id in {_sql_list(p.governs)} and list_contains(coalesce(r.line_resolved, []), '{p.id}'))"
    for p in PRECEDENCE if p.governs) or "false"
TITLES_SQL = "case w.resolved_by " + " ".join(
    f"when '{p.id}' then '{p.title.replace(chr(39), chr(39) * 2)}'" for p in PRECEDENCE) + " end"
INSTRUCTION_SQL = "case w.variant " + " ".join(
    f"when {n} then {template_sql(i.text)}" for n, i in enumerate(INSTRUCTIONS)) + " end"
ACTION_SQL = "case w.variant " + " ".join(
    f"when {n} then {template_sql(i.action)}" for n, i in enumerate(INSTRUCTIONS)) + " end"

# Each finding: the precedence rule that settles it (none: it needs its own fix), then whether it is the
# line's instruction, a review beside it, or settled; with its instruction's text and action. A line removed
# by a review finding's fix counts as removed only where that fix settles the day's units (`day_fits`). What
# settles what is worked out on the findings' keys alone (`_row`, from finding_rows), then joined to their
# text: a window over the wide rows would cost more than the rest. `facts` is not materialized: its narrow
# reader (`resolved`) then reads only the keys, where a materialized copy of the wide rows spilled to disk at
# ten million lines.
JUDGED = f"""
create or replace temp table worklist_judged as
with joined as not materialized (
    select w.*, x.* exclude (_row, line_id, rule_id, severity, partner_gone), d.day_units, d.day_mue,
           d.remaining_units,
           d.day_lines, d.fixing_lines, d.day_fixed_by, d.day_fits, d.day_key, d.day_partners, d.units_before
    from worklist_findings w
    join worklist_facts x on x._row = w._row
    left join worklist_days d on d.line_id = w.line_id
),
facts as not materialized (select w.* replace ({DAY_VARIANT_SQL} as variant) from joined w),
lines as (
    select r.line_id, r.bundled,
           coalesce(r.deny_removed_by, case when f.day_fits then r.review_removed_by end) as removed_by
    from worklist_removals r
    left join (select line_id, bool_or(day_fits) as day_fits from worklist_days group by line_id) f
           on f.line_id = r.line_id
),
resolved as (
    select w._row, w.line_id, w.rule_id, w.severity, {RESOLVED_SQL} as resolved_by
    from (select _row, line_id, rule_id, severity, partner_batch, day_fixed_by, day_fits, partner_gone,
                 patient, date_of_service, hcpcs, component, partner_component, mue_value, pctc, claim_id,
                 line_number, partner_claim_id, partner_line_number
          from facts) w
    join (select *, removed_by is not null as removed from lines) l on l.line_id = w.line_id
),
promoted as (
    select w._row, w.resolved_by, {PROMOTED_SQL} as promoted
    from resolved w
    left join (select line_id, list(distinct resolved_by) as line_resolved from resolved
               where resolved_by is not null group by line_id) r on r.line_id = w.line_id
)
select w.line_id, w.claim_id, w.line_number, w.patient, w.payer, w.date_of_service, w.hcpcs, w.modifiers,
       w.units, w.provider, w.billing_npi, w.line_ref,
       -- A finding whose one cause goes names that line (a status-T day may have several: not named).
       coalesce(w.fixing_lines, case when w.partner_gone and w.rule_id <> 'STATUS_NOT_PAYABLE' then w.partner_line end)
           as fixing_lines, w.severity, w.dollars_at_risk,
       w.rule_id, w.message, w.variant, w.dup_group, w.day_key, w.instructs, w.reviews, w.resolved_by,
       {TITLES_SQL} as resolved_title,
       case when w.instructs or w.reviews then {INSTRUCTION_SQL} end as instruction,
       case when w.instructs then {ACTION_SQL} end as action,
       case when w.rule_id in {_sql_list(DUPLICATE_RULES)} and w.dup_role not in ('bundled', 'resolved')
                 then w.dup_partner_refs
            when w.rule_id = 'MUE_DOS' then w.day_partners
            when w.partner_ref is not null then [w.partner_ref] else [] end as partner_refs
from (
    select f.*, p.resolved_by, p.promoted,
           p.resolved_by is null and (f.severity = 'deny' or p.promoted) as instructs,
           p.resolved_by is null and f.severity = 'review' and not p.promoted as reviews
    from facts f join promoted p on p._row = f._row
) w
"""

SEVERITY_RANK = "case severity when 'deny' then 1 else 2 end"
# What each finding gives its line's row (null where it gives nothing).
CONTRIBUTIONS = f"""
select *, {SEVERITY_RANK} as rank,
       case when instructs then action end as gives_action,
       case when instructs then instruction end as gives_instruction,
       case when instructs then rule_id end as gives_rule,
       case when resolved_by is not null then rule_id end as settled_rule,
       case when resolved_by is not null then rule_id || ' (' || resolved_title || ')' end as settled_text,
       rule_id || case when severity = 'review' then ' (review)' else '' end || ': ' || message
           as gives_explanation,
       case when reviews then '[review] ' || rule_id || ': ' || instruction end as gives_review,
       coalesce(partner_refs, []) as partner_list
from worklist_judged
"""
LINE_COLUMNS = ("claim_id", "line_number", "patient", "payer", "date_of_service", "hcpcs", "modifiers",
                "units", "provider", "billing_npi", "line_ref", "fixing_lines")

# One row per line, stored in the sheet's order (`worklist_order`). Four lines in five have one finding: they
# take its contribution as it is, and only the others are gathered (in the order deny first, then the rules'
# priority). A line whose own findings are all settled by the fix of other lines is kept as billed. `found` is
# not materialized, for the same reason as `facts` above: each reader filters the findings first.
FINDING_ROWS = f"""
with found as not materialized ({CONTRIBUTIONS}),
several as (select line_id from worklist_judged group by line_id having count(*) > 1),
per_line as (
    select line_id, {", ".join(LINE_COLUMNS)},
           case when severity = 'deny' then dollars_at_risk end as dollars_at_risk, rank,
           gives_action as actions, gives_instruction as instructions, gives_rule as rules,
           settled_rule as settled_rules, settled_text as settled, gives_explanation as explanation,
           gives_review as reviews, array_to_string({_in_line_order("partner_list")}, chr(10)) as partners
    from found where line_id not in (select line_id from several)
    union all
    select line_id, {", ".join(f"any_value({c})" for c in LINE_COLUMNS)},
           max(dollars_at_risk) filter (where severity = 'deny'), min(rank),
           string_agg(gives_action, ' + ' order by rank, variant),
           string_agg(gives_instruction, chr(10) order by rank, variant),
           string_agg(gives_rule, ', ' order by rank, variant),
           string_agg(settled_rule, ', ' order by rank, variant),
           string_agg(settled_text, ', ' order by rank, variant),
           string_agg(gives_explanation, chr(10) order by rank, variant),
           string_agg(gives_review, chr(10) order by rank, variant),
           array_to_string({_in_line_order("list_distinct(flatten(list(partner_list)))")}, chr(10))
    from found where line_id in (select line_id from several)
    group by line_id
)
select p.line_id, claim_id, line_number, patient, payer, date_of_service, hcpcs, modifiers,
       cast(units as double) as units, provider, coalesce(billing_npi, provider) as biller, dollars_at_risk,
       case rank when 1 then 'deny' else 'review' end as severity,
       coalesce(actions, case when settled is not null then 'keep as billed' else 'review' end) as action,
       coalesce(instructions, line_ref || ': keep as billed; ' || settled_rules || ' clear once '
                              || coalesce(fixing_lines, 'the other lines')
                              || case when contains(coalesce(fixing_lines, 's'), ',') or fixing_lines is null
                                      then ' are fixed' else ' is fixed' end)
           || coalesce(chr(10) || 'With this line goes the primary service of add-on '
                       || array_to_string(a.addons, ', ') || ', which is denied without one: remove '
                       || case when len(a.addons) = 1 then 'that line' else 'those lines' end
                       || ' too, unless another of its primaries by the same provider that day stays', '')
           as instruction,
       concat_ws('; also ', rules, settled) as resolves, nullif(partners, '') as partners, explanation,
       reviews as also_to_review, o.claim_dollars, o._row
from per_line p
join worklist_order o on o.line_id = p.line_id
left join (select line_id, list(addon_ref order by addon_claim, addon_line) as addons from worklist_orphans
           group by line_id) a on a.line_id = p.line_id
"""

# The instruction of an add-on line whose primaries go (`{line}`, `{code}`: SQL of its claim and line, its code).
ORPHAN_TEXT = ("{line} || ': add-on ' || {code} || ' loses its primary service: ' || g.primaries || "
               "case when g.primary_count = 1 then ' goes (see its row)' else ' go (see their rows)' end || "
               "', and an add-on without its primary is denied: remove this line too, unless another of its "
               "primaries by the same provider that day stays'")

ROWS = f"""
create or replace temp table worklist_rows as
with
-- An add-on line left without its primary: its own row says it goes with the primary (a line of its own findings
-- has its row told so; a line without any gets one).
orphaned as (
    select addon_id as line_id, any_value(line_id) as primary_id,
           string_agg(primary_ref, ', ' order by primary_ref) as primaries, count(*) as primary_count
    from worklist_orphans group by addon_id
),
findings_rows as ({FINDING_ROWS})
select r.* replace (
           case when g.line_id is not null then 'deny' else r.severity end as severity,
           case when g.line_id is not null then 'remove line' else r.action end as action,
           case when g.line_id is null then r.also_to_review end as also_to_review,
           case when g.line_id is not null then {ORPHAN_TEXT.format(line="r.claim_id || ' line ' || r.line_number",
                                                                    code="r.hcpcs")}
                else r.instruction end as instruction)
from findings_rows r left join orphaned g on g.line_id = r.line_id
union all
select l.line_id, l.claim_id, l.line_number, f.patient, l.payer, l.date_of_service, l.hcpcs, l.modifier_text,
       cast(l.units as double), l.provider, coalesce(l.billing_npi, l.provider), null, 'deny', 'remove line',
       {ORPHAN_TEXT.format(line="l.claim_id || ' line ' || l.line_number", code="l.hcpcs")},
       null, null, null, null, o.claim_dollars, o._row
from orphaned g
join claim_lines l on l.batch_id = $batch and l.line_id = g.line_id
join worklist_order o on o.line_id = g.line_id
-- The patient as the Worklist shows it (masked unless asked): the primary's, the same patient.
join (select line_id, any_value(patient) as patient from worklist_findings group by line_id) f
  on f.line_id = g.primary_id
where g.line_id not in (select line_id from worklist_judged)
order by _row
"""


# Claims that a conflict links (a partner line on another claim of the batch, or lines of one duplicate group
# or MUE day) sort together; each such cluster is named by its first claim, found by spreading the least claim
# id along the links until nothing changes.
CLAIM_LINKS = """
create or replace temp table worklist_links as
with pairs as (
    select claim_id as a, partner_claim_id as b from worklist_findings
    where partner_batch is null and partner_claim_id is not null
    union
    -- Claims whose findings name lines of one claim that has none to fix itself (visits in one surgery's
    -- period): together, through the first of them.
    select claim_id, first_value(claim_id) over (partition by partner_claim_id order by claim_id)
    from worklist_findings where partner_batch is null and partner_claim_id is not null
    union
    select j.claim_id, first_value(j.claim_id) over (partition by j.rule_id, j.dup_group order by j.claim_id)
    from worklist_judged j where j.dup_group is not null
    union
    select j.claim_id, first_value(j.claim_id) over (partition by j.day_key order by j.claim_id)
    from worklist_judged j where j.day_key is not null and j.rule_id = 'MUE_DOS'
    union
    select addon_claim, primary_claim from worklist_orphans
),
claims as (select distinct claim_id from worklist_judged union select addon_claim from worklist_orphans)
select a, b from pairs
where a <> b and a in (select claim_id from claims) and b in (select claim_id from claims)
union
select b, a from pairs
where a <> b and a in (select claim_id from claims) and b in (select claim_id from claims)
"""
CLUSTERS = """
create or replace temp table worklist_clusters as
select claim_id, claim_id as cluster from (select distinct a as claim_id from worklist_links)
"""
SPREAD = """
update worklist_clusters c set cluster = m.cluster
from (select l.b as claim_id, min(n.cluster) as cluster
      from worklist_links l join worklist_clusters n on n.claim_id = l.a group by l.b) m
where m.claim_id = c.claim_id and m.cluster < c.cluster
"""

# The sheet's order: blocks of billing providers, biggest dollars at risk first; within a block, the claims of
# a conflict together, then the claims by dollars, then the lines. A cluster spanning billing providers sits
# in the block of its biggest claim's. Worked out on the lines' keys alone.
ORDER = """
create or replace temp table worklist_order as
with lines as (
    select line_id, any_value(claim_id) as claim_id, any_value(line_number) as line_number,
           max(dollars_at_risk) filter (where severity = 'deny') as dollars,
           coalesce(any_value(billing_npi), any_value(provider)) as biller
    from worklist_judged group by line_id
    union all
    select addon_id, any_value(addon_claim), any_value(addon_line), null, any_value(addon_biller)
    from worklist_orphans where addon_id not in (select line_id from worklist_judged) group by addon_id
),
claims as (
    select l.claim_id, coalesce(sum(l.dollars), 0) as claim_dollars, min(l.biller) as biller,
           coalesce(any_value(c.cluster), l.claim_id) as cluster
    from lines l left join worklist_clusters c on c.claim_id = l.claim_id
    group by l.claim_id
),
clusters as (
    select cluster, sum(claim_dollars) as cluster_dollars,
           arg_min(biller, {'dollars': -claim_dollars, 'claim': claim_id}) as block
    from claims group by cluster
),
blocks as (
    select block, sum(cluster_dollars) as block_dollars from clusters group by block
)
select l.line_id, c.claim_dollars,
       row_number() over (order by b.block_dollars desc, k.block, k.cluster_dollars desc, k.cluster,
                                   c.claim_dollars desc, l.claim_id, l.line_number) as _row
from lines l
join claims c on c.claim_id = l.claim_id
join clusters k on k.cluster = c.cluster
join blocks b on b.block = k.block
"""

MAX_SPREADS = 100


def build_worklist(con, batch_id: str) -> int:
    """Make `worklist_rows` for the batch from `finding_rows`; returns its row count."""
    def run(sql: str) -> list:
        return con.execute(sql, {"batch": batch_id} if "$batch" in sql else {}).fetchall()

    def until_settled(sql: str, most: int) -> None:
        # A statement that changes rows, again until it changes none.
        for _ in range(most):
            if not run(sql)[0][0]:
                break

    run(FINDINGS)
    until_settled(CHAIN, MAX_CHAIN)
    run(DUPLICATES)
    run(FACTS)
    run(GONE)
    for mark in MARK_GONE:
        run(mark)
    if run(GONE_DUPLICATES)[0][0]:
        run(DUPLICATES)
        run(FACTS)
    run(LINE_REMOVALS)
    run(GOES)
    run(ADDONS)
    for _ in range(MAX_ADDON_LEVELS):
        if not run(DEEPER)[0][0]:
            break
        run(MORE_GOES)
        run(ADDONS)
    for statement in (DAYS, JUDGED, CLAIM_LINKS, CLUSTERS):
        run(statement)
    until_settled(SPREAD, MAX_SPREADS)
    run(ORDER)
    run(ROWS)
    return run("select count(*) from worklist_rows")[0][0]


def closing_note() -> list[str]:
    """The Worklist's closing note: how one instruction is chosen where findings share a cause, and why."""
    return [
        "How the Worklist chooses one instruction where findings share a cause (the Findings sheet and "
        "flags.csv "
        "keep every finding):",
        *(f"{p.title}: {p.why}." for p in PRECEDENCE),
        *(f"{title}: {why}." for title, why in SIDE_RULES),
    ]
