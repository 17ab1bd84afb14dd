"""NCCI procedure-to-procedure edits: a column 2 code billed with its column 1 code in one encounter by one
provider is bundled into it, unless the edit lets a bypass modifier separate them."""

from .base import NCCI_CH1, MLN_59, Rule, Step

RULES = [
    Rule("PTP_NO_BYPASS", "bundling", "deny", "97",
         "An NCCI procedure-to-procedure edit bundles this code (column 2) into another code billed for "
         "the same patient, day and provider, and no modifier may or does separate them.",
         "Remove the column 2 line, or, only if the services were distinct (separate site, session or "
         "encounter) and the edit allows a modifier, append the right one (XS, XE, XP, XU or 59) with "
         "documentation.", NCCI_CH1, judged_by="ptp"),
    Rule("PTP_BYPASSED", "bundling", "review", "97",
         "An NCCI edit bundles this code into another billed the same day, and a bypass modifier unbundles "
         "it: payable, but auditors check that the services were truly distinct.",
         "Confirm the note documents a separate site, session or encounter; otherwise remove the modifier "
         "and the line.", MLN_59, judged_by="ptp"),
]
LINE_RULES = {}
PAIR_RULES = {}

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
select column_2_line.line_id as col2_line, column_1_line.line_id as col1_line, edit.column_1, edit.column_2,
       edit.modifier_indicator, edit.rationale,
       (column_1_line.has_bypass or column_2_line.has_bypass) as bypassed
from (select line_id, patient_id, date_of_service, provider_key, hcpcs, has_bypass from sl
      where hcpcs in (select column_1 from ptp_edits)) column_1_line
join (select line_id, patient_id, date_of_service, provider_key, hcpcs, has_bypass, ptp_release from sl
      where hcpcs in (select column_2 from ptp_edits)) column_2_line
  on column_1_line.patient_id = column_2_line.patient_id
 and column_1_line.date_of_service = column_2_line.date_of_service
 and column_1_line.provider_key = column_2_line.provider_key
 and column_1_line.line_id <> column_2_line.line_id
join ptp_edits edit on edit.release_id = column_2_line.ptp_release and edit.column_1 = column_1_line.hcpcs
                   and edit.column_2 = column_2_line.hcpcs
where edit.effective_date <= column_2_line.date_of_service
  and (edit.deletion_date is null or column_2_line.date_of_service <= edit.deletion_date)
"""

# A line is PTP_NO_BYPASS or PTP_BYPASSED per its edits; each finding names its first partner.
PTP_FINDING = """
insert into found by name
with per_line as (
    select col2_line, modifier_indicator = '1' and bypassed as is_bypassed, count(*) - 1 as others,
           arg_min(col1_line, col1_line) as col1_line,
           arg_min(column_1, col1_line) as column_1, arg_min(column_2, col1_line) as column_2,
           arg_min(modifier_indicator, col1_line) as modifier_indicator,
           arg_min(rationale, col1_line) as rationale, arg_min(bypassed, col1_line) as bypassed
    from ptp_pairs where col2_line >= 0 and (modifier_indicator = '1' and bypassed) is not null
    group by col2_line, modifier_indicator = '1' and bypassed
)
select edit.col2_line as line_id,
       case when edit.modifier_indicator = '1' and edit.bypassed then 'PTP_BYPASSED' else 'PTP_NO_BYPASS' end
           as rule_id,
       printf('NCCI edit %s/%s (%s, modifier indicator %s): %s is bundled into %s on claim %s line %d, '
              || 'same patient, day and provider%s.',
              edit.column_1, edit.column_2, denied.ptp_release, edit.modifier_indicator, denied.hcpcs,
              edit.column_1, partner.claim_id, partner.line_number,
              case when edit.modifier_indicator = '0' then '; no modifier can unbundle this pair'
                   when edit.bypassed then '; a bypass modifier separates them'
                   else '; no bypass modifier on either line' end
              || case when edit.others > 0 then printf(' (and %d more edit(s) against this line)', edit.others)
                      else '' end) as message,
       edit.col1_line as partner_line_id, partner.claim_id as partner_claim_id,
       partner.line_number as partner_line_number,
       edit.column_1 as ptp_column_1, edit.column_2 as ptp_column_2,
       edit.modifier_indicator as ptp_modifier_indicator, edit.rationale as ptp_rationale,
       denied.expected_allowed
from per_line edit
join sl denied on denied.line_id = edit.col2_line
join sl partner on partner.line_id = edit.col1_line
"""

STEPS = [
    Step("ptp_edits", PTP_EDITS, reads=frozenset({"sl"}), makes=frozenset({"ptp_edits"})),
    Step("ptp_pairs", PTP_PAIRS, reads=frozenset({"sl", "ptp_edits"}), makes=frozenset({"ptp_pairs"})),
    Step("ptp_findings", PTP_FINDING, reads=frozenset({"sl", "ptp_pairs"}),
         emits=("PTP_NO_BYPASS", "PTP_BYPASSED")),
]
