"""The rule engine: each rule of RULES.md is one set-based query over a batch's priced lines.

Every query inserts into a temporary `found` table: (line, rule id, optional severity/CARC override,
message, partner line, PTP edit). The registry in rules.py supplies the rest of each finding.
"""

from .rules import registry_frame
from .tables import clear_batch

BYPASS_MODIFIERS = [
    "59", "XE", "XP", "XS", "XU", "24", "25", "27", "57", "58", "78", "79", "91",
    "E1", "E2", "E3", "E4", "FA", "F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "F9",
    "TA", "T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9",
    "LT", "RT", "LC", "LD", "LM", "RC", "RI",
]
X_MODIFIERS = ["59", "XE", "XP", "XS", "XU"]
HOSPITAL_POS = ["19", "21", "22", "23"]
PLAIN_FLUOROSCOPY = ["76000", "77001", "77002", "77003"]


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


# Every scrubbed batch gets a place in line once, kept across rescrubs: history is only the batches before it,
# so rescrubbing an earlier batch never starts judging it against later ones.
BATCH_ORDER = """
insert or ignore into batch_order select $batch, coalesce(max(seq), 0) + 1 from batch_order
"""

# Lines of earlier batches that share a patient and date of service with the batch. A file of this batch
# scrubbed before (same content) is not history: a line is never judged against itself.
HISTORY_LINES = """
create or replace temp table history_lines as
select h.batch_id, h.line_id
from claim_lines h
join batch_order o on o.batch_id = h.batch_id
join batch_files f on f.batch_id = h.batch_id and f.file_index = h.file_index
where $with_history
  and o.seq < (select seq from batch_order where batch_id = $batch)
  and f.sha256 not in (select sha256 from batch_files where batch_id = $batch)
  and exists (select 1 from claim_lines c where c.batch_id = $batch and c.patient_id = h.patient_id
                                             and c.date_of_service = h.date_of_service)
"""

# `sl` holds the batch's lines and their history; history lines get negative ids so ids stay unique.
SCRUB_LINES = f"""
create or replace temp table sl as
with chosen as (
    select batch_id, line_id, line_id as sl_id from claim_lines where batch_id = $batch
    union all
    -- Only the (few) history lines are numbered: no sort of the whole batch.
    select batch_id, line_id, -row_number() over (order by batch_id, line_id) from history_lines
)
select c.sl_id as line_id,
       l.line_id as batch_line_id, l.batch_id, l.batch_id <> $batch as is_history,
       l.claim_id, l.line_number, l.patient_id, l.date_of_service, l.hcpcs, l.modifiers,
       l.modifier_text, l.units, l.rendering_npi, l.billing_npi, l.place_of_service, l.claim_type,
       l.diagnoses, l.component, l.facility,
       p.rvu_release, p.ptp_release, p.mue_release, p.in_fee_schedule, p.status, p.pctc, p.mult_proc,
       p.expected_allowed, p.mue_value, p.mai,
       coalesce(l.provider, '') as provider_key,
       coalesce(l.billing_npi, l.rendering_npi, '') as biller_key,
       list_contains(l.modifiers, '26') as has_26,
       list_contains(l.modifiers, 'TC') as has_tc,
       list_has_any(l.modifiers, ['76', '77']) as has_repeat,
       list_has_any(l.modifiers, {_sql_list(BYPASS_MODIFIERS)}) as has_bypass,
       list_has_any(l.modifiers, {_sql_list(X_MODIFIERS)}) as has_59x,
       case when l.units = trunc(l.units) then cast(cast(l.units as bigint) as varchar)
            else cast(cast(l.units as double) as varchar) end as units_text
from chosen c
join claim_lines l on l.batch_id = c.batch_id and l.line_id = c.line_id
join priced_lines p on p.batch_id = c.batch_id and p.line_id = c.line_id
"""

FOUND = """
create or replace temp table found (
    line_id bigint, rule_id varchar, severity varchar, carc varchar, message varchar, partner_line_id bigint,
    ptp_column_1 varchar, ptp_column_2 varchar, ptp_modifier_indicator varchar, ptp_rationale varchar)
"""

# Active PTP edits between two lines of one encounter and provider (modifier indicator 9: not applied).
PTP_PAIRS = """
create or replace temp table ptp_pairs as
select b.line_id as col2_line, a.line_id as col1_line, p.column_1, p.column_2, p.modifier_indicator,
       p.rationale, (a.has_bypass or b.has_bypass) as bypassed
from sl a
join sl b on a.patient_id = b.patient_id and a.date_of_service = b.date_of_service
         and a.provider_key = b.provider_key and a.line_id <> b.line_id
join ref_ptp p on p.release_id = b.ptp_release and p.column_1 = a.hcpcs and p.column_2 = b.hcpcs
where p.effective_date <= b.date_of_service
  and (p.deletion_date is null or b.date_of_service <= p.deletion_date)
  and p.modifier_indicator in ('0', '1')
"""

PTP_FINDING = """
insert into found
select e.col2_line, '{rule}', null, null,
       printf('NCCI edit %s/%s (%s, modifier indicator %s): %s is bundled into %s on claim %s line %d, '
              || 'same patient, day and provider%s.',
              e.column_1, e.column_2, c2.ptp_release, e.modifier_indicator, c2.hcpcs, e.column_1,
              c1.claim_id, c1.line_number,
              case when e.modifier_indicator = '0' then '; no modifier can unbundle this pair'
                   when e.bypassed then '; a bypass modifier separates them'
                   else '; no bypass modifier on either line' end
              || case when e.others > 0 then printf(' (and %d more edit(s) against this line)', e.others)
                      else '' end),
       e.col1_line, e.column_1, e.column_2, e.modifier_indicator, e.rationale
from (
    select col2_line, count(*) - 1 as others,
           arg_min(col1_line, col1_line) as col1_line,
           arg_min(column_1, col1_line) as column_1, arg_min(column_2, col1_line) as column_2,
           arg_min(modifier_indicator, col1_line) as modifier_indicator,
           arg_min(rationale, col1_line) as rationale, arg_min(bypassed, col1_line) as bypassed
    from ptp_pairs where {condition}
    group by col2_line
) e
join sl c2 on c2.line_id = e.col2_line
join sl c1 on c1.line_id = e.col1_line
"""

SIMPLE_RULES = {
    "MUE_LINE": (
        "mai = 1 and units > mue_value",
        "printf('%s billed %s units on one line; its MUE is %d per line (adjudication indicator 1, %s).', "
        "hcpcs, units_text, mue_value, mue_release)",
    ),
    "MOD_26_AND_TC": (
        "has_26 and has_tc",
        "printf('%s carries both 26 and TC on one line.', hcpcs)",
    ),
    "MOD_PCTC_INVALID": (
        "in_fee_schedule and ((has_26 and pctc not in ('1', '6')) or (has_tc and pctc <> '1'))",
        "printf('%s has PC/TC indicator %s (%s): modifier %s is not valid for it.', hcpcs, pctc, rvu_release, "
        "case when has_26 and pctc not in ('1', '6') and has_tc and pctc <> '1' then '26 or TC' "
        "when has_26 and pctc not in ('1', '6') then '26' else 'TC' end)",
    ),
    "MOD_GLOBAL_IN_HOSPITAL": (
        f"claim_type = 'professional' and place_of_service in {tuple(HOSPITAL_POS)} and pctc = '1' "
        "and component = 'global'",
        "printf('%s billed global (no 26) on a professional claim in hospital place of service %s; "
        "the hospital is paid the technical component.', hcpcs, place_of_service)",
    ),
    "MOD_TC_IN_HOSPITAL": (
        f"claim_type = 'professional' and place_of_service in {tuple(HOSPITAL_POS)} and component = 'TC'",
        "printf('%s-TC billed on a professional claim in hospital place of service %s; the facility bills "
        "the technical component.', hcpcs, place_of_service)",
    ),
    "CODE_NOT_IN_FEE_SCHEDULE": (
        "not in_fee_schedule",
        "printf('%s is not in the fee schedule (%s); the line is not priced.', hcpcs, rvu_release)",
    ),
    "MUE_NOT_PUBLISHED": (
        "mue_value is null",
        "printf('No MUE published for %s in %s.', hcpcs, coalesce(mue_release, 'any loaded MUE release'))",
    ),
}

MUE_DOS = """
insert into found
select line_id, 'MUE_DOS', null, null,
       printf('%s: %s units for this patient on %s by this provider across %d line(s); its MUE is %d per day '
              || '(adjudication indicator %d, %s).',
              hcpcs, day_units_text, strftime(date_of_service, '%Y-%m-%d'), day_lines, mue_value, mai,
              mue_release),
       null, null, null, null, null
from (
    select *, sum(units) over w as day_units, count(*) over w as day_lines,
           case when sum(units) over w = trunc(sum(units) over w) then cast(cast(sum(units) over w as bigint) as varchar)
                else cast(cast(sum(units) over w as double) as varchar) end as day_units_text
    from sl where mai in (2, 3)
    window w as (partition by patient_id, date_of_service, provider_key, hcpcs)
)
where day_units > mue_value
"""

PAIRED_RULES = {
    # rule id: (join condition between line a and another line b of its encounter, message)
    "DUP_COMPONENT": (
        "a.hcpcs = b.hcpcs and a.pctc = '1' and not a.has_repeat and not b.has_repeat "
        "and (a.component = 'global' or b.component = 'global' or a.component = b.component)",
        "printf('%s (%s) overlaps claim %s line %d (%s) for the same patient and day; the same component '"
        "|| 'cannot be paid twice.', a.hcpcs, a.component, b.claim_id, b.line_number, b.component)",
    ),
    "DUP_EXACT": (
        "a.hcpcs = b.hcpcs and coalesce(a.pctc, '') <> '1' and a.modifier_text = b.modifier_text "
        "and a.provider_key = b.provider_key and not a.has_repeat and not b.has_repeat",
        "printf('%s%s is billed again on claim %s line %d by the same provider for the same patient and day.', "
        "a.hcpcs, case when a.modifier_text <> '' then '-' || a.modifier_text else '' end, "
        "b.claim_id, b.line_number)",
    ),
    "MOD_SPLIT_SAME_BILLER": (
        "a.hcpcs = b.hcpcs and a.biller_key = b.biller_key and a.biller_key <> '' "
        "and ((a.component = '26' and b.component = 'TC') or (a.component = 'TC' and b.component = '26'))",
        "printf('%s-%s and %s-%s (claim %s line %d) are billed by the same billing NPI for one patient and day; '"
        "|| 'bill the global service instead.', a.hcpcs, a.component, b.hcpcs, b.component, b.claim_id, "
        "b.line_number)",
    ),
    "RECORDING_EVIDENCE": (
        f"a.hcpcs = '76120' and b.hcpcs in {tuple(PLAIN_FLUOROSCOPY)}",
        "printf('76120 billed with fluoroscopy %s (claim %s line %d) on the same day: the note must show a '"
        "|| 'permanent cine/video recording.', b.hcpcs, b.claim_id, b.line_number)",
    ),
}

PAIRED = """
insert into found
select line_id, '{rule}', null, null, message, partner_line_id, null, null, null, null
from (
    select a.line_id, arg_min({message}, b.line_id) as message, min(b.line_id) as partner_line_id
    from sl a join sl b on a.patient_id = b.patient_id and a.date_of_service = b.date_of_service
                        and a.line_id <> b.line_id
    where {condition}
    group by a.line_id
)
"""

BYPASS_UNNEEDED = """
insert into found
select s.line_id, 'MOD_BYPASS_UNNEEDED', null, null,
       printf('%s carries %s, but no active NCCI edit pairs it with another line of this patient, day and '
              || 'provider.', s.hcpcs, array_to_string(list_filter(s.modifiers, lambda m: m in ('59', 'XE', 'XP', 'XS', 'XU')), ', ')),
       null, null, null, null, null
from sl s
where s.has_59x
  and s.line_id not in (select col1_line from ptp_pairs union all select col2_line from ptp_pairs)
"""

STATUS = """
insert into found
select s.line_id, 'STATUS_NOT_PAYABLE',
       case when s.status = 'R' then 'review' when s.status = 'C' then 'info' else 'deny' end,
       case s.status when 'B' then '97' when 'P' then '97' when 'T' then '97' when 'I' then '181'
                     when 'R' then '50' when 'C' then '' else '96' end,
       printf('%s has fee schedule status %s (%s): %s', s.hcpcs, s.status, s.rvu_release,
              case s.status
                  when 'B' then 'bundled, never paid separately.'
                  when 'P' then 'bundled or excluded, not paid under the fee schedule.'
                  when 'I' then 'not valid for Medicare; a HCPCS alternative is required.'
                  when 'N' then 'non-covered by Medicare.'
                  when 'X' then 'excluded from the fee schedule by statute.'
                  when 'E' then 'excluded from the fee schedule by regulation.'
                  when 'R' then 'restricted coverage: paid only in limited circumstances.'
                  when 'C' then 'carrier-priced: the contractor sets the amount; not priced here.'
                  when 'T' then 'paid only when no other fee-schedule service is billed that day by the provider.'
              end),
       null, null, null, null, null
from sl s
where s.status in ('B', 'I', 'N', 'X', 'P', 'E', 'R', 'C')
   or (s.status = 'T' and exists (
        select 1 from sl o where o.patient_id = s.patient_id and o.date_of_service = s.date_of_service
                              and o.provider_key = s.provider_key and o.line_id <> s.line_id
                              and o.status in ('A', 'R', 'T')))
"""

# Diagnoses belong to the claim (the 837P carries them once per claim): a claim with none, or with one
# that is not shaped like ICD-10-CM, puts every one of its lines at risk.
ICD10_SHAPE = "[A-Z][0-9][0-9A-Z][0-9A-Z]{0,4}"
DX = f"""
insert into found
select s.line_id, 'DX_MISSING', null, null,
       case when len(c.dx) = 0 then 'No diagnosis code on the claim.'
            else printf('Diagnosis %s on the claim is not shaped like an ICD-10-CM code.', array_to_string(c.bad, ', '))
       end,
       null, null, null, null, null
from sl s
join (
    select claim_id, dx, list_filter(dx, lambda d: not regexp_full_match(d, '{ICD10_SHAPE}')) as bad
    from (select claim_id, list_distinct(flatten(list(diagnoses))) as dx from sl group by claim_id)
) c on c.claim_id = s.claim_id
where len(c.dx) = 0 or len(c.bad) > 0
"""

NPI = """
create or replace temp table npi_checked as
select npi, regexp_full_match(npi, '[0-9]{10}') and list_sum(list_transform(range(1, 16), lambda i:
           case when (16 - i) % 2 = 0
                then (coalesce(try_cast(substr('80840' || npi, i, 1) as integer), 0) * 2) % 10
                     + (coalesce(try_cast(substr('80840' || npi, i, 1) as integer), 0) * 2) // 10
                else coalesce(try_cast(substr('80840' || npi, i, 1) as integer), 0) end)) % 10 = 0 as valid
from (select rendering_npi as npi from sl union select billing_npi from sl) where npi is not null;
insert into found
select s.line_id, 'NPI_INVALID', null, null,
       printf('%s fails the NPI check digit.',
              array_to_string(list_filter([case when r.valid = false then 'Rendering NPI ' || s.rendering_npi end,
                                           case when b.valid = false then 'billing NPI ' || s.billing_npi end],
                                          lambda x: x is not null), '; ')),
       null, null, null, null, null
from sl s
left join npi_checked r on r.npi = s.rendering_npi
left join npi_checked b on b.npi = s.billing_npi
where r.valid = false or b.valid = false
"""

# Equal prices are ranked by claim and line, not by position in the batch: which line is reduced must not
# depend on the order of the rows or files.
MPPR = """
insert into found
select line_id, 'MPPR_IMAGING', null, null,
       printf('%s is one of %d imaging services under the multiple-procedure reduction in this session; '
              || 'as a lower-priced one it is paid 50%% less on the technical and 5%% less on the professional '
              || 'component.', hcpcs, session_count),
       top_line, null, null, null, null
from (
    select line_id, hcpcs, count(*) over w as session_count,
           row_number() over (w order by expected_allowed desc, claim_id, line_number) as rank_in_session,
           first_value(line_id) over (w order by expected_allowed desc, claim_id, line_number) as top_line
    from sl where mult_proc = '4' and expected_allowed is not null
    window w as (partition by patient_id, date_of_service, provider_key)
)
where session_count >= 2 and rank_in_session > 1
"""

# Findings are kept for the batch's own lines only; one that rests on a line of an earlier batch names it.
FLAGS = """
insert into line_flags by name
select $batch as batch_id, f.line_id, f.rule_id, r.category, coalesce(f.severity, r.severity) as severity,
       coalesce(f.carc, r.carc) as carc, coalesce(f.expected_allowed, 0) as dollars_at_risk,
       f.message || case when f.partner_batch is null then ''
                         else printf(' Earlier batch: %s.', f.partner_batch) end as message,
       f.partner_line_id, f.ptp_column_1, f.ptp_column_2, f.ptp_modifier_indicator, f.ptp_rationale,
       f.partner_batch
from (
    select f.* replace (p.batch_line_id as partner_line_id), s.expected_allowed,
           coalesce(case when p.is_history then p.batch_id end,
                    case when f.rule_id = 'MUE_DOS' then (
                        select min(o.batch_id) from sl o
                        where o.is_history and o.patient_id = s.patient_id and o.date_of_service = s.date_of_service
                          and o.provider_key = s.provider_key and o.hcpcs = s.hcpcs) end) as partner_batch
    from found f
    join sl s on s.line_id = f.line_id and not s.is_history
    left join sl p on p.line_id = f.partner_line_id
) f
join rule_registry r on r.id = f.rule_id
"""


def scrub_batch(con, batch_id: str, with_history: bool = False) -> dict[str, int]:
    """Judge one priced batch against every rule; rewrites the batch's rows of `line_flags`. With history,
    lines of earlier batches count as part of the batch's encounters, but only the batch's lines are flagged."""
    con.register("registry_frame", registry_frame())
    con.execute("create or replace temp table rule_registry as select * from registry_frame")
    con.unregister("registry_frame")
    con.execute(BATCH_ORDER, {"batch": batch_id})
    con.execute(HISTORY_LINES, {"batch": batch_id, "with_history": with_history})
    con.execute(SCRUB_LINES, {"batch": batch_id})
    con.execute(FOUND)
    con.execute(PTP_PAIRS)
    con.execute(PTP_FINDING.format(rule="PTP_NO_BYPASS",
                                   condition="modifier_indicator = '0' or not bypassed"))
    con.execute(PTP_FINDING.format(rule="PTP_BYPASSED", condition="modifier_indicator = '1' and bypassed"))
    for rule, (condition, message) in SIMPLE_RULES.items():
        con.execute(
            f"""insert into found select line_id, '{rule}', null, null, {message},
                       null, null, null, null, null from sl where {condition}"""
        )
    con.execute(MUE_DOS)
    for rule, (condition, message) in PAIRED_RULES.items():
        con.execute(PAIRED.format(rule=rule, condition=condition, message=message))
    con.execute(BYPASS_UNNEEDED)
    con.execute(STATUS)
    con.execute(DX)
    con.execute(NPI)
    con.execute(MPPR)
    clear_batch(con, "line_flags", batch_id)
    con.execute(FLAGS, {"batch": batch_id})
    rows = con.execute(
        "select severity, count(*) from line_flags where batch_id = ? group by severity", [batch_id]
    ).fetchall()
    return {severity: count for severity, count in rows}
