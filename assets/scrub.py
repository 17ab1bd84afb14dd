"""The rule engine: each rule of RULES.md is a set-based query over a batch's priced lines.

Every query inserts into a temporary `found` table: (line, rule id, optional severity/CARC override,
message, partner line, PTP edit, the line's expected allowed). The registry in rules.py supplies the rest
of each finding.

Rules that compare lines of an encounter read `sl`, a narrow copy of the lines (and, with history, of
earlier batches' lines of the same encounters) holding only what those rules compare: writing a temporary
table costs about as much per column as the rules that read it, and a wide copy of two million lines cost
more than all the rules together. The same pass marks the few lines that break a rule by themselves, and
those rules are then worked out over those lines alone (`line_hits`).

Every rule that compares lines compares lines of one patient, so a big batch is judged in parts, by its
patients' hash: each part's `sl` and the pairs found in it fit in memory where the whole batch's would
spill to disk (a batch of ten million lines judged whole took twice as long per line as one of two million).
"""

import re

from .pricing import CATEGORY_II, UNPRICED_STATUSES
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
# Fee schedule statuses (RVU readme) by what they mean for the line: denied as billed, payable but restricted,
# and paid under another schedule or not at all (information, not priced here: see assets/pricing.py).
DENIED_STATUSES = ("B", "N", "P", "I", "D", "F", "G", "H")
REVIEW_STATUSES = ("R",)
OTHER_SCHEDULE_STATUSES = UNPRICED_STATUSES


def sql_list(values) -> str:
    """A list of SQL string literals, for values that come from constants in code."""
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"


# Every scrubbed batch gets a place in line once, kept across rescrubs: history is only the batches before it,
# so rescrubbing an earlier batch never starts judging it against later ones.
BATCH_ORDER = """
insert or ignore into batch_order select $batch, coalesce(max(seq), 0) + 1 from batch_order
"""

# Lines of earlier batches that share a patient and date of service with the batch. A file of this batch
# scrubbed before (same content) is not history: a line is never judged against itself. History lines get
# negative ids (`sl_id`) so that ids stay unique next to the batch's own; only these few are numbered, so
# the batch is never sorted.
HISTORY_LINES = """
create or replace temp table history_lines as
select h.batch_id, h.line_id, -row_number() over (order by h.batch_id, h.line_id) as sl_id
from claim_lines h
join batch_order o on o.batch_id = h.batch_id
join batch_files f on f.batch_id = h.batch_id and f.file_index = h.file_index
where $with_history
  and o.seq < (select seq from batch_order where batch_id = $batch)
  and f.sha256 not in (select sha256 from batch_files where batch_id = $batch)
  and exists (select 1 from claim_lines c where c.batch_id = $batch and c.patient_id = h.patient_id
                                             and c.date_of_service = h.date_of_service)
"""

FOUND = """
create or replace temp table found (
    line_id bigint, rule_id varchar, severity varchar, carc varchar, message varchar, partner_line_id bigint,
    ptp_column_1 varchar, ptp_column_2 varchar, ptp_modifier_indicator varchar, ptp_rationale varchar,
    expected_allowed decimal(14,2), partner_batch varchar, partner_claim_id varchar, partner_line_number integer)
"""

# The PTP edits that can apply at all: in a release the lines use, between two codes the lines bill, with a
# modifier indicator that applies. About a hundred out of millions, so lines are paired against a small table.
PTP_EDITS = """
create or replace temp table ptp_edits as
with codes as (select distinct hcpcs from sl)
select release_id, column_1, column_2, effective_date, deletion_date, modifier_indicator, rationale
from ref_ptp
where modifier_indicator in ('0', '1')
  and release_id in (select distinct ptp_release from sl)
  and column_1 in (select hcpcs from codes)
  and column_2 in (select hcpcs from codes)
"""

# Active PTP edits between two lines of one encounter and provider (modifier indicator 9: not applied).
PTP_PAIRS = """
create or replace temp table ptp_pairs as
select b.line_id as col2_line, a.line_id as col1_line, p.column_1, p.column_2, p.modifier_indicator,
       p.rationale, (a.has_bypass or b.has_bypass) as bypassed
from (select line_id, patient_id, date_of_service, provider_key, hcpcs, has_bypass from sl
      where hcpcs in (select column_1 from ptp_edits)) a
join (select line_id, patient_id, date_of_service, provider_key, hcpcs, has_bypass, ptp_release from sl
      where hcpcs in (select column_2 from ptp_edits)) b
  on a.patient_id = b.patient_id and a.date_of_service = b.date_of_service
 and a.provider_key = b.provider_key and a.line_id <> b.line_id
join ptp_edits p on p.release_id = b.ptp_release and p.column_1 = a.hcpcs and p.column_2 = b.hcpcs
where p.effective_date <= b.date_of_service
  and (p.deletion_date is null or b.date_of_service <= p.deletion_date)
"""

PTP_FINDING = """
insert into found by name
select e.col2_line as line_id,
       case when e.modifier_indicator = '1' and e.bypassed then 'PTP_BYPASSED' else 'PTP_NO_BYPASS' end
           as rule_id,
       printf('NCCI edit %s/%s (%s, modifier indicator %s): %s is bundled into %s on claim %s line %d, '
              || 'same patient, day and provider%s.',
              e.column_1, e.column_2, c2.ptp_release, e.modifier_indicator, c2.hcpcs, e.column_1,
              c1.claim_id, c1.line_number,
              case when e.modifier_indicator = '0' then '; no modifier can unbundle this pair'
                   when e.bypassed then '; a bypass modifier separates them'
                   else '; no bypass modifier on either line' end
              || case when e.others > 0 then printf(' (and %d more edit(s) against this line)', e.others)
                      else '' end) as message,
       e.col1_line as partner_line_id, c1.claim_id as partner_claim_id, c1.line_number as partner_line_number,
       e.column_1 as ptp_column_1, e.column_2 as ptp_column_2,
       e.modifier_indicator as ptp_modifier_indicator, e.rationale as ptp_rationale,
       c2.expected_allowed
from (
    -- A line is PTP_NO_BYPASS or PTP_BYPASSED per its edits; each finding names its first partner.
    select col2_line, modifier_indicator = '1' and bypassed as is_bypassed, count(*) - 1 as others,
           arg_min(col1_line, col1_line) as col1_line,
           arg_min(column_1, col1_line) as column_1, arg_min(column_2, col1_line) as column_2,
           arg_min(modifier_indicator, col1_line) as modifier_indicator,
           arg_min(rationale, col1_line) as rationale, arg_min(bypassed, col1_line) as bypassed
    from ptp_pairs where col2_line >= 0 and (modifier_indicator = '1' and bypassed) is not null
    group by col2_line, modifier_indicator = '1' and bypassed
) e
join sl c2 on c2.line_id = e.col2_line
join sl c1 on c1.line_id = e.col1_line
"""

# Rules that judge a line by itself: (condition, message) over the batch's claim line `l` and priced line
# `p`, with `has_26`, `has_tc` and the NPI checks `r` and `b` (`line_hits` holds the columns they name).
LINE_RULES = {
    "MUE_LINE": (
        "p.mai = 1 and l.units > p.mue_value",
        "printf('%s billed %s units on one line; its MUE is %d per line (adjudication indicator 1, %s).', "
        "l.hcpcs, case when l.units = trunc(l.units) then cast(cast(l.units as bigint) as varchar) "
        "else cast(cast(l.units as double) as varchar) end, p.mue_value, p.mue_release)",
    ),
    "MOD_26_AND_TC": (
        "has_26 and has_tc",
        "printf('%s carries both 26 and TC on one line.', l.hcpcs)",
    ),
    "MOD_PCTC_INVALID": (
        "p.in_fee_schedule and ((has_26 and p.pctc not in ('1', '6')) or (has_tc and p.pctc <> '1'))",
        "printf('%s has PC/TC indicator %s (%s): modifier %s is not valid for it.', l.hcpcs, p.pctc, "
        "p.rvu_release, case when has_26 and p.pctc not in ('1', '6') and has_tc and p.pctc <> '1' "
        "then '26 or TC' when has_26 and p.pctc not in ('1', '6') then '26' else 'TC' end)",
    ),
    "MOD_GLOBAL_IN_HOSPITAL": (
        f"l.claim_type = 'professional' and l.place_of_service in {tuple(HOSPITAL_POS)} and p.pctc = '1' "
        "and l.component = 'global'",
        "printf('%s billed global (no 26) on a professional claim in hospital place of service %s; "
        "the hospital is paid the technical component.', l.hcpcs, l.place_of_service)",
    ),
    "MOD_TC_IN_HOSPITAL": (
        f"l.claim_type = 'professional' and l.place_of_service in {tuple(HOSPITAL_POS)} "
        "and l.component = 'TC'",
        "printf('%s-TC billed on a professional claim in hospital place of service %s; the facility bills "
        "the technical component.', l.hcpcs, l.place_of_service)",
    ),
    "CODE_NOT_IN_FEE_SCHEDULE": (
        "not p.in_fee_schedule",
        "printf('%s is not in the fee schedule (%s); the line is not priced.', l.hcpcs, p.rvu_release)",
    ),
    "MUE_NOT_PUBLISHED": (
        "p.mue_value is null",
        "printf('No MUE published for %s in %s.', l.hcpcs, coalesce(p.mue_release, 'any loaded MUE release'))",
    ),
    "STATUS_NOT_PAYABLE": (
        f"p.status in {sql_list(DENIED_STATUSES + REVIEW_STATUSES + OTHER_SCHEDULE_STATUSES)} "
        f"or regexp_full_match(l.hcpcs, '{CATEGORY_II}')",
        "printf('%s has fee schedule status %s (%s): %s', l.hcpcs, p.status, p.rvu_release, "
        f"case when regexp_full_match(l.hcpcs, '{CATEGORY_II}') then 'a CPT Category II quality code: reported "
        "for quality measures, no payment expected; not priced.' "
        "else case p.status "
        "when 'B' then 'bundled, never paid separately.' "
        "when 'P' then 'bundled or excluded, not paid under the fee schedule.' "
        "when 'I' then 'not valid for Medicare; a HCPCS alternative is required.' "
        "when 'N' then 'non-covered by Medicare.' "
        "when 'D' then 'deleted: not payable for this date.' "
        "when 'F' then 'deleted: not payable for this date.' "
        "when 'G' then 'not valid for Medicare: a replacement code must be billed.' "
        "when 'H' then 'deleted modifier combination: the code is billed without it.' "
        "when 'R' then 'restricted coverage: paid only in limited circumstances.' "
        "when 'C' then 'carrier-priced: the contractor sets the amount; not priced here.' "
        "when 'X' then 'paid, when covered, under another fee schedule (clinical laboratory, ambulance, "
        "vaccine administration ...), not this one; not priced here.' "
        "when 'E' then 'excluded from the physician fee schedule by regulation (drugs paid at ASP and others): "
        "paid under its own schedule; not priced here.' "
        "when 'J' then 'paid under the anesthesia fee schedule; not priced here.' "
        "when 'M' then 'a measurement code: reported, not paid; not priced here.' "
        "when 'T' then 'paid only when no other fee-schedule service is billed that day by the provider.' "
        "end end)",
    ),
    "NPI_INVALID": (
        "r.valid = false or b.valid = false",
        "printf('%s fails the NPI check digit.', "
        "array_to_string(list_filter([case when r.valid = false then 'Rendering NPI ' || l.rendering_npi end, "
        "case when b.valid = false then 'billing NPI ' || l.billing_npi end], lambda x: x is not null), '; '))",
    ),
}

# Findings that need the line's own columns and a look across lines: what the finding awaits, (rule, the
# line's own condition, message). STATUS_NOT_PAYABLE for status T: another fee-schedule service by the same
# provider on the day; MOD_BYPASS_UNNEEDED: no active PTP edit pairing the line with another.
PENDING_RULES = {
    "shared_day": ("STATUS_NOT_PAYABLE", "p.status = 'T'", LINE_RULES["STATUS_NOT_PAYABLE"][1]),
    "no_ptp_pair": (
        "MOD_BYPASS_UNNEEDED",
        f"len(list_filter(l.modifiers, lambda m: m in {tuple(X_MODIFIERS)})) > 0",
        "printf('%s carries %s, but no active NCCI edit pairs it with another line of this patient, day and '"
        " || 'provider.', l.hcpcs, array_to_string(list_filter(l.modifiers, "
        f"lambda m: m in {tuple(X_MODIFIERS)}), ', '))",
    ),
}

# Severity and CARC that differ from the registry's, by rule.
LINE_RULE_OVERRIDES = {
    "STATUS_NOT_PAYABLE": (
        f"case when regexp_full_match(l.hcpcs, '{CATEGORY_II}') or p.status in {sql_list(OTHER_SCHEDULE_STATUSES)} "
        f"then 'info' when p.status in {sql_list(REVIEW_STATUSES)} then 'review' else 'deny' end",
        f"case when regexp_full_match(l.hcpcs, '{CATEGORY_II}') or p.status in {sql_list(OTHER_SCHEDULE_STATUSES)} "
        "then '' else case p.status when 'B' then '97' when 'P' then '97' when 'T' then '97' when 'N' then '96' "
        "when 'R' then '50' else '181' end end",
    ),
}

NPI_CHECKED = """
create or replace temp table npi_checked as
select npi, regexp_full_match(npi, '[0-9]{10}') and list_sum(list_transform(range(1, 16), lambda i:
           case when (16 - i) % 2 = 0
                then (coalesce(try_cast(substr('80840' || npi, i, 1) as integer), 0) * 2) % 10
                     + (coalesce(try_cast(substr('80840' || npi, i, 1) as integer), 0) * 2) // 10
                else coalesce(try_cast(substr('80840' || npi, i, 1) as integer), 0) end)) % 10 = 0 as valid
from (select rendering_npi as npi from claim_lines where batch_id = $batch
      union select billing_npi from claim_lines where batch_id = $batch)
where npi is not null
"""


# What the rules across lines compare, for the batch's lines (line id >= 0) and their history (< 0).
SL_COLUMNS = f"""
       l.claim_id, l.line_number, l.patient_id, l.date_of_service, l.hcpcs, l.modifier_text, l.units,
       coalesce(l.provider, '') as provider_key,
       coalesce(l.billing_npi, l.rendering_npi, '') as biller_key,
       l.component, p.ptp_release, p.mue_release, p.status, p.pctc, p.mult_proc, p.expected_allowed,
       p.mue_value, p.mai,
       list_contains(l.modifiers, '76') or list_contains(l.modifiers, '77') as has_repeat,
       len(list_filter(l.modifiers, lambda m: m in {tuple(BYPASS_MODIFIERS)})) > 0 as has_bypass"""


def _scrub_lines_sql() -> str:
    """`sl`, built in one pass over the batch's claim and priced lines: `judged_alone` marks the few lines that
    break a rule of LINE_RULES or await one of PENDING_RULES (null for the others), for LINE_HITS."""
    conditions = [condition for condition, _ in LINE_RULES.values()]
    conditions += [condition for _, condition, _ in PENDING_RULES.values()]
    any_rule = " or ".join(f"({condition})" for condition in conditions)
    return f"""
create or replace temp table sl as
select l.line_id, {SL_COLUMNS}, case when {any_rule} then true end as judged_alone
{LINE_SOURCES.replace("{lines}", "select * from claim_lines where batch_id = $batch {part}")}
union all
select h.sl_id, {SL_COLUMNS}, null
from history_lines h
join (select * from claim_lines where true {{part}}) l on l.batch_id = h.batch_id and l.line_id = h.line_id
join priced_lines p on p.batch_id = h.batch_id and p.line_id = h.line_id
"""


# A batch's claim lines `l` ({lines} selects them) with their prices `p`, what LINE_RULES read of them
# (`has_26`, `has_tc`) and the NPI checks `r` and `b`.
LINE_SOURCES = """
from (select *, list_contains(modifiers, '26') as has_26, list_contains(modifiers, 'TC') as has_tc
      from ({lines})) l
join (select * from priced_lines where batch_id = $batch) p on p.line_id = l.line_id
left join npi_checked r on r.npi = l.rendering_npi
left join npi_checked b on b.npi = l.billing_npi"""


def _line_hits_sql() -> str:
    """`line_hits`: the lines of `sl` that `judged_alone` marks, with the columns the line rules read of their
    claim line `l`, priced line `p` and NPI checks `r` and `b` (found by name in the rules), each source a
    struct column under its own name, so that the rules read them as they spell them.

    About 3 lines in 100 break a rule alone. Their findings used to be worked out in the working table's pass,
    as a list of structs per line (one `case` per rule): 0.8 of that pass's 2.7 CPU-seconds at two million
    lines, and as much over these lines alone. Looking the lines up again here costs 0.45, and the findings,
    rule by rule over them, 0.02 (the judge took 0.5 CPU-seconds and 0.2 s less)."""
    used = " ".join(f"{condition} {message}" for condition, message in LINE_RULES.values())
    used += " ".join(f" {condition} {message}" for _, condition, message in PENDING_RULES.values())
    used += " ".join(f" {severity} {carc}" for severity, carc in LINE_RULE_OVERRIDES.values())
    sources = []
    for source in ("l", "p", "r", "b"):
        fields = sorted(set(re.findall(rf"\b{source}\.(\w+)", used)))
        sources.append("{" + ", ".join(f"'{field}': {source}.{field}" for field in fields) + f"}} as {source}")
    lines = ("select c.* from claim_lines c semi join (select line_id from sl where judged_alone) s "
             "on s.line_id = c.line_id where c.batch_id = $batch")
    return f"""
create or replace temp table line_hits as
select s.*, {', '.join(sources)}, l.has_26, l.has_tc
{LINE_SOURCES.replace("{lines}", lines)}
join sl s on s.line_id = l.line_id
"""


def _finding_columns(rule: str, message: str) -> str:
    """A line rule's finding as `found` takes it (line id and expected allowed aside)."""
    severity, carc = LINE_RULE_OVERRIDES.get(rule, ("null::varchar", "null::varchar"))
    return f"'{rule}' as rule_id, {severity} as severity, {carc} as carc, {message} as message"


def _line_findings_sql() -> str:
    """The findings of LINE_RULES among `line_hits`, rule by rule."""
    return "insert into found by name\n" + "\nunion all\n".join(
        f"select line_id, {_finding_columns(rule, message)}, expected_allowed from line_hits where {condition}"
        for rule, (condition, message) in LINE_RULES.items())


# What a line of `line_hits` (`s`) that awaits a PENDING_RULES finding needs of the lines around it to have it.
# The lines around are looked for only among the patients of the lines that await the same finding
# ({awaiting}: the rule's own condition on a line).
PENDING_CHECKS = {
    "shared_day": """exists (
        select 1 from sl o where o.patient_id = s.patient_id and o.date_of_service = s.date_of_service
                              and o.provider_key = s.provider_key and o.line_id <> s.line_id
                              and o.status in ('A', 'R', 'T')
                              and o.patient_id in (select patient_id from line_hits where {awaiting}))""",
    "no_ptp_pair": "s.line_id not in (select col1_line from ptp_pairs union all select col2_line from ptp_pairs)",
}


def _pending_findings_sql() -> str:
    """The findings of PENDING_RULES among `line_hits`: those whose lines around them bear them out."""
    return "insert into found by name\n" + "\nunion all\n".join(
        f"select s.line_id, {_finding_columns(rule, message)}, s.expected_allowed from line_hits s "
        f"where ({condition}) and {PENDING_CHECKS[awaits].replace('{awaiting}', condition)}"
        for awaits, (rule, condition, message) in PENDING_RULES.items())


# The lines of one part of a batch judged in parts: its patients.
PART = "and hash(patient_id) % $parts = $part"
# A batch is judged in parts of about this many lines (one part up to it).
LINES_PER_PART = 2_000_000


# Units per patient, DOS, provider and code, over the lines whose MUE counts per day (indicator 2 or 3).
# A group of two or more lines is made of same-code pairs of one provider, and a line alone breaks its MUE
# only with more units than it: those lines are all a group can hold. A finding whose group holds lines
# of an earlier batch names the first such batch.
MUE_DOS = """
insert into found by name
with candidates as (
    select s.* from sl s
    semi join (select line_id from sl where mai in (2, 3) and units > mue_value
               union select a_line from same_code where same_provider
               union select b_line from same_code where same_provider) c on c.line_id = s.line_id
),
groups as (
    select patient_id, date_of_service, provider_key, hcpcs, day_units, day_lines, partner_batch,
           case when day_units = trunc(day_units) then cast(cast(day_units as bigint) as varchar)
                else cast(cast(day_units as double) as varchar) end as day_units_text
    from (
        select c.patient_id, c.date_of_service, c.provider_key, c.hcpcs,
               sum(c.units) filter (where c.mai in (2, 3)) as day_units,
               count(*) filter (where c.mai in (2, 3)) as day_lines,
               min(h.batch_id) as partner_batch,
               min(c.mue_value) filter (where c.mai in (2, 3)) as least_mue
        from candidates c left join history_lines h on h.sl_id = c.line_id
        group by c.patient_id, c.date_of_service, c.provider_key, c.hcpcs
    )
    where day_units > least_mue
)
select s.line_id, 'MUE_DOS' as rule_id,
       printf('%s: %s units for this patient on %s by this provider across %d line(s); its MUE is %d per day '
              || '(adjudication indicator %d, %s).',
              s.hcpcs, g.day_units_text, strftime(s.date_of_service, '%Y-%m-%d'), g.day_lines, s.mue_value,
              s.mai, s.mue_release) as message,
       s.expected_allowed, g.partner_batch
from groups g
join candidates s on s.patient_id = g.patient_id and s.date_of_service = g.date_of_service
                 and s.provider_key = g.provider_key and s.hcpcs = g.hcpcs
where s.line_id >= 0 and s.mai in (2, 3) and g.day_units > s.mue_value
"""

# Rules between two lines of one encounter that bill the same code: one join serves all three.
SAME_CODE_RULES = {
    # rule id: (condition between line a and another line b of its encounter with the same code, message)
    "DUP_COMPONENT": (
        "a.pctc = '1' and not a.has_repeat and not b.has_repeat "
        "and (a.component = 'global' or b.component = 'global' or a.component = b.component)",
        "printf('%s (%s) overlaps claim %s line %d (%s) for the same patient and day; the same component '"
        "|| 'cannot be paid twice.', a.hcpcs, a.component, b.claim_id, b.line_number, b.component)",
    ),
    "DUP_EXACT": (
        "coalesce(a.pctc, '') <> '1' and a.modifier_text = b.modifier_text "
        "and a.provider_key = b.provider_key and not a.has_repeat and not b.has_repeat",
        "printf('%s%s is billed again on claim %s line %d by the same provider for the same patient and day.', "
        "a.hcpcs, case when a.modifier_text <> '' then '-' || a.modifier_text else '' end, "
        "b.claim_id, b.line_number)",
    ),
    "MOD_SPLIT_SAME_BILLER": (
        "a.biller_key = b.biller_key and a.biller_key <> '' "
        "and ((a.component = '26' and b.component = 'TC') or (a.component = 'TC' and b.component = '26'))",
        "printf('%s-%s and %s-%s (claim %s line %d) are billed by the same billing NPI for one patient and day; '"
        "|| 'bill the global service instead.', a.hcpcs, a.component, b.hcpcs, b.component, b.claim_id, "
        "b.line_number)",
    ),
}


# Pairs of lines of one encounter that bill the same code (a, a line of the batch; b, any other line):
# few, since a claim bills a code once. Found by their keys alone, then read with their columns. Only lines
# whose patient, day and code hash like another line's can pair: counting the hashes and joining those few
# lines costs 0.41 CPU-seconds at two million lines, against 0.52 for joining every line with every line
# (a shared hash with different keys only lets a line through to the join, which compares the keys).
SAME_CODE_PAIRS = """
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


def _same_code_sql() -> str:
    rules = []
    for rule, (condition, message) in SAME_CODE_RULES.items():
        rules.append(
            f"""select a_line as line_id, '{rule}' as rule_id,
                       arg_min(message_{rule}, b_line) as message, min(b_line) as partner_line_id,
                       arg_min(b_claim, b_line) as partner_claim_id, arg_min(b_number, b_line) as partner_line_number,
                       any_value(expected_allowed) as expected_allowed
                from pairs where hit_{rule} group by a_line"""
        )
    columns = ", ".join(
        f"({condition}) as hit_{rule}, case when {condition} then {message} end as message_{rule}"
        for rule, (condition, message) in SAME_CODE_RULES.items()
    )
    return f"""
insert into found by name
with pairs as materialized (
    select a.line_id as a_line, b.line_id as b_line, b.claim_id as b_claim, b.line_number as b_number,
           a.expected_allowed, {columns}
    from same_code p join sl a on a.line_id = p.a_line join sl b on b.line_id = p.b_line
)
{' union all '.join(rules)}
"""


RECORDING = f"""
insert into found by name
select a.line_id, 'RECORDING_EVIDENCE' as rule_id,
       arg_min(printf('76120 billed with fluoroscopy %s (claim %s line %d) on the same day: the note must show a '
                      || 'permanent cine/video recording.', b.hcpcs, b.claim_id, b.line_number), b.line_id)
           as message,
       min(b.line_id) as partner_line_id, arg_min(b.claim_id, b.line_id) as partner_claim_id,
       arg_min(b.line_number, b.line_id) as partner_line_number, any_value(a.expected_allowed) as expected_allowed
from sl a join sl b on a.patient_id = b.patient_id and a.date_of_service = b.date_of_service
                    and a.line_id <> b.line_id
where a.line_id >= 0 and a.hcpcs = '76120' and b.hcpcs in {tuple(PLAIN_FLUOROSCOPY)}
group by a.line_id
"""

# Diagnoses belong to the claim (the 837P carries them once per claim): a claim with none, or with one
# that is not shaped like ICD-10-CM, puts every one of its lines at risk. Only the claims with a line
# lacking a diagnosis or holding a misshapen one can be at risk, so only theirs are gathered.
ICD10_SHAPE = "[A-Z][0-9][0-9A-Z][0-9A-Z]{0,4}"
DX_CLAIMS = f"""
create or replace temp table dx_claims as
with dx_lines as (
    select line_id, claim_id, diagnoses from claim_lines where batch_id = $batch
    union all
    select h.sl_id, l.claim_id, l.diagnoses
    from history_lines h join claim_lines l on l.batch_id = h.batch_id and l.line_id = h.line_id
),
suspect as (
    select distinct claim_id from dx_lines
    where len(diagnoses) = 0
       or len(list_filter(diagnoses, lambda d: not regexp_full_match(d, '{ICD10_SHAPE}'))) > 0
),
claims as (
    select claim_id, dx, list_filter(dx, lambda d: not regexp_full_match(d, '{ICD10_SHAPE}')) as bad
    from (select claim_id, list_distinct(flatten(list(diagnoses))) as dx
          from dx_lines where claim_id in (select claim_id from suspect) group by claim_id)
)
select * from claims where len(dx) = 0 or len(bad) > 0
"""

# The lines of the claims DX_CLAIMS found, in the part being judged (a claim's diagnoses are gathered from
# all its lines, whichever part they are in).
DX = """
insert into found by name
select s.line_id, 'DX_MISSING' as rule_id,
       case when len(c.dx) = 0 then 'No diagnosis code on the claim.'
            else printf('Diagnosis %s on the claim is not shaped like an ICD-10-CM code.', array_to_string(c.bad, ', '))
       end as message,
       s.expected_allowed
from dx_claims c
join sl s on s.claim_id = c.claim_id
where s.line_id >= 0
"""

# Equal prices are ranked by claim and line, not by position in the batch: which line is reduced must not
# depend on the order of the rows or files. A line of an earlier batch with the same claim and line number
# (ids below zero, numbered by batch and line) ranks first: the last key makes every run choose alike.
MPPR = """
insert into found by name
select line_id, 'MPPR_IMAGING' as rule_id,
       printf('%s is one of %d imaging services under the multiple-procedure reduction in this session; '
              || 'as a lower-priced one it is paid 50%% less on the technical and 5%% less on the professional '
              || 'component.', hcpcs, session_count) as message,
       top_line as partner_line_id, top_claim as partner_claim_id, top_number as partner_line_number, expected_allowed
from (
    select line_id, hcpcs, expected_allowed, count(*) over w as session_count,
           row_number() over ranked as rank_in_session, first_value(line_id) over ranked as top_line,
           first_value(claim_id) over ranked as top_claim, first_value(line_number) over ranked as top_number
    from sl where mult_proc = '4' and expected_allowed is not null
    window w as (partition by patient_id, date_of_service, provider_key),
           ranked as (w order by expected_allowed desc, claim_id, line_number, line_id)
)
where session_count >= 2 and rank_in_session > 1 and line_id >= 0
"""

# Findings are kept for the batch's own lines only (every rule above skips history lines); one that rests
# on a line of an earlier batch names it.
FLAGS = """
insert into line_flags by name
select $batch as batch_id, f.line_id, f.rule_id, r.category, coalesce(f.severity, r.severity) as severity,
       coalesce(f.carc, r.carc) as carc, coalesce(f.expected_allowed, 0) as dollars_at_risk,
       f.message || case when f.partner_batch is null then ''
                         else printf(' Earlier batch: %s.', f.partner_batch) end as message,
       f.partner_line_id, f.ptp_column_1, f.ptp_column_2, f.ptp_modifier_indicator, f.ptp_rationale,
       f.partner_batch, f.partner_claim_id, f.partner_line_number
from (
    select f.* replace (coalesce(h.line_id, f.partner_line_id) as partner_line_id,
                        coalesce(h.batch_id, f.partner_batch) as partner_batch)
    from found f
    left join history_lines h on h.sl_id = f.partner_line_id
) f
join rule_registry r on r.id = f.rule_id
"""


def scrub_batch(con, batch_id: str, with_history: bool = False,
                lines_per_part: int | None = None) -> dict[str, int]:
    """Judge one priced batch against every rule; rewrites the batch's rows of `line_flags`. With history,
    lines of earlier batches count as part of the batch's encounters, but only the batch's lines are flagged.
    A batch of more than `lines_per_part` lines (LINES_PER_PART unless given) is judged in parts, by patient."""
    con.register("registry_frame", registry_frame())
    con.execute("create or replace temp table rule_registry as select * from registry_frame")
    con.unregister("registry_frame")
    batch = {"batch": batch_id}
    con.execute(BATCH_ORDER, batch)
    con.execute(HISTORY_LINES, {**batch, "with_history": with_history})
    con.execute(NPI_CHECKED, batch)
    con.execute(FOUND)
    con.execute(DX_CLAIMS, batch)
    lines = con.execute("select count(*) from claim_lines where batch_id = ?", [batch_id]).fetchall()[0][0]
    parts = max(1, -(-lines // (lines_per_part or LINES_PER_PART)))
    lines_sql = _scrub_lines_sql().replace("{part}", PART if parts > 1 else "")
    line_hits_sql = _line_hits_sql()
    rules = [_line_findings_sql(), PTP_EDITS, PTP_PAIRS, PTP_FINDING, _pending_findings_sql(), SAME_CODE_PAIRS,
             _same_code_sql(), MUE_DOS, RECORDING, DX, MPPR]
    for part in range(parts):
        con.execute(lines_sql, {**batch, "parts": parts, "part": part} if parts > 1 else batch)
        con.execute(line_hits_sql, batch)
        for rule_sql in rules:
            con.execute(rule_sql)
    clear_batch(con, "line_flags", batch_id)
    con.execute(FLAGS, batch)
    rows = con.execute(
        "select severity, count(*) from line_flags where batch_id = ? group by severity", [batch_id]
    ).fetchall()
    return {severity: count for severity, count in rows}
