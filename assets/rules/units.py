"""Medically Unlikely Edits: the units of a code per line (adjudication indicator 1) or per patient, day,
provider and code (indicators 2 and 3)."""

from .base import MUE_PAGE, LineRule, Rule, Step

RULES = [
    Rule("MUE_LINE", "units", "deny", "151",
         "The line bills more units than the code's Medically Unlikely Edit allows on one line.",
         "Check the units against the record; bill the MUE value, and report any medically necessary "
         "excess on an appeal with documentation.", MUE_PAGE, judged_by="mue"),
    Rule("MUE_DOS", "units", "deny", "151",
         "The units of this code for this patient, day and provider add up to more than its MUE allows "
         "per day; the whole day's units are denied.",
         "Correct the units across the day's lines (duplicate entries are the usual cause); if the service "
         "really was repeated, expect to appeal with records.", MUE_PAGE, judged_by="mue"),
    Rule("MUE_NOT_PUBLISHED", "data", "info", "",
         "No Medically Unlikely Edit is published for this code in the release for this date: units are "
         "not limited by an MUE.",
         "Nothing to fix; check the units against the record.", MUE_PAGE, judged_by="mue"),
]

LINE_RULES = {
    "MUE_LINE": LineRule(
        "priced.mai = 1 and claim_line.units > priced.mue_value",
        "printf('%s billed %s units on one line; its MUE is %d per line (adjudication indicator 1, %s).', "
        "claim_line.hcpcs, case when claim_line.units = trunc(claim_line.units) "
        "then cast(cast(claim_line.units as bigint) as varchar) "
        "else cast(cast(claim_line.units as double) as varchar) end, priced.mue_value, priced.mue_release)",
    ),
    "MUE_NOT_PUBLISHED": LineRule(
        "priced.mue_value is null",
        "printf('No MUE published for %s in %s.', claim_line.hcpcs, "
        "coalesce(priced.mue_release, 'any loaded MUE release'))",
    ),
}
PAIR_RULES = {}

# Units per patient, DOS, provider and code, over every line of the group; a line whose MUE counts per day
# (indicator 2 or 3) is flagged when they pass it. A line judged by another MUE table (an institutional
# claim's outpatient hospital MUE, per line) still adds its units to the day, as the book groups lines by
# patient, day, provider and code alone. A group of two or more lines is made of same-code pairs of one
# provider, and a line alone breaks its MUE only with more units than it: those lines are all a group can
# hold. A finding whose group holds lines of an earlier batch names the first such batch scrubbed.
MUE_DOS = """
insert into found by name
with candidates as (
    select line.* from sl line
    semi join (select line_id from sl where mai in (2, 3) and units > mue_value
               union select a_line from same_code where same_provider
               union select b_line from same_code where same_provider) candidate
      on candidate.line_id = line.line_id
),
day_totals as (
    select candidate.patient_id, candidate.date_of_service, candidate.provider_key, candidate.hcpcs,
           sum(candidate.units) as day_units, count(*) as day_lines,
           arg_min(history.batch_id, history.sl_id) as partner_batch,
           min(candidate.mue_value) filter (where candidate.mai in (2, 3)) as least_mue
    from candidates candidate left join history_lines history on history.sl_id = candidate.line_id
    group by candidate.patient_id, candidate.date_of_service, candidate.provider_key, candidate.hcpcs
),
groups as (
    select patient_id, date_of_service, provider_key, hcpcs, day_units, day_lines, partner_batch,
           case when day_units = trunc(day_units) then cast(cast(day_units as bigint) as varchar)
                else cast(cast(day_units as double) as varchar) end as day_units_text
    from day_totals
    where day_units > least_mue
)
select line.line_id, 'MUE_DOS' as rule_id,
       printf('%s: %s units for this patient on %s by this provider across %d line(s); its MUE is %d per day '
              || '(adjudication indicator %d, %s).',
              line.hcpcs, day.day_units_text, strftime(line.date_of_service, '%Y-%m-%d'), day.day_lines,
              line.mue_value, line.mai, line.mue_release) as message,
       line.expected_allowed, day.partner_batch
from groups day
join candidates line on line.patient_id = day.patient_id and line.date_of_service = day.date_of_service
                    and line.provider_key = day.provider_key and line.hcpcs = day.hcpcs
where line.line_id >= 0 and line.mai in (2, 3) and day.day_units > line.mue_value
"""

STEPS = [
    Step("mue_dos", MUE_DOS, reads=frozenset({"sl", "same_code", "history_lines"}), emits=("MUE_DOS",)),
]
