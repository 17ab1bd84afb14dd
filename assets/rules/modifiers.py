"""Modifiers that do not fit the code, the place of service or the other lines: PC/TC (26 and TC), and the
NCCI bypass modifiers billed where no edit calls for them."""

from .base import HOSPITAL_POS, MCPM_13, MLN_59, PFS_LAYOUT, X_MODIFIERS, LineRule, PairRule, Rule, Step, sql_list

RULES = [
    Rule("MOD_26_AND_TC", "modifier", "deny", "4",
         "The line carries both 26 (professional) and TC (technical): a line is one component or the "
         "global service, never both.",
         "Bill the global code with neither modifier, or split into a 26 line and a TC line for the "
         "parties that performed each.", MCPM_13),
    Rule("MOD_PCTC_INVALID", "modifier", "deny", "4",
         "The modifier does not fit the code: 26 is valid only for PC/TC indicator 1 or 6 codes, TC only "
         "for indicator 1 codes.",
         "Remove the 26 or TC modifier; the code has no separate professional or technical component.",
         PFS_LAYOUT, judged_by="rvu"),
    Rule("MOD_GLOBAL_IN_HOSPITAL", "modifier", "deny", "4",
         "A global (no 26/TC) imaging service on a professional claim in a hospital place of service: the "
         "hospital is paid the technical part, so the physician may bill only the professional component.",
         "Append modifier 26 and bill the professional component only.", MCPM_13, judged_by="rvu"),
    Rule("MOD_TC_IN_HOSPITAL", "modifier", "deny", "4",
         "A technical component billed on a professional claim in a hospital place of service: the "
         "hospital, not the physician, bills the technical part.",
         "Remove the line from the professional claim; the facility bills the technical component.",
         MCPM_13),
    Rule("MOD_SPLIT_SAME_BILLER", "modifier", "review", "",
         "One billing provider billed both the 26 and the TC line of the same code for the same patient "
         "and day; it should bill the global service on one line.",
         "Combine the two lines into one global line without modifiers.", MCPM_13),
    Rule("MOD_BYPASS_UNNEEDED", "modifier", "review", "",
         "The line carries 59 or an X modifier, but no NCCI edit pairs it with another line of the same "
         "day and provider: the modifier is unnecessary and draws audits.",
         "Remove the 59/X modifier unless another claim not in this batch explains it.", MLN_59, judged_by="ptp"),
]

LINE_RULES = {
    "MOD_26_AND_TC": LineRule(
        "claim_line.has_26 and claim_line.has_tc",
        "printf('%s carries both 26 and TC on one line.', claim_line.hcpcs)",
    ),
    "MOD_PCTC_INVALID": LineRule(
        "priced.in_fee_schedule and ((claim_line.has_26 and priced.pctc not in ('1', '6')) "
        "or (claim_line.has_tc and priced.pctc <> '1'))",
        "printf('%s has PC/TC indicator %s (%s): modifier %s is not valid for it.', claim_line.hcpcs, "
        "priced.pctc, priced.rvu_release, "
        "case when claim_line.has_26 and priced.pctc not in ('1', '6') and claim_line.has_tc "
        "and priced.pctc <> '1' then '26 or TC' "
        "when claim_line.has_26 and priced.pctc not in ('1', '6') then '26' else 'TC' end)",
    ),
    "MOD_GLOBAL_IN_HOSPITAL": LineRule(
        f"claim_line.claim_type = 'professional' and claim_line.place_of_service in {sql_list(HOSPITAL_POS)} "
        "and priced.pctc = '1' and claim_line.component = 'global'",
        "printf('%s billed global (no 26) on a professional claim in hospital place of service %s; "
        "the hospital is paid the technical component.', claim_line.hcpcs, claim_line.place_of_service)",
    ),
    "MOD_TC_IN_HOSPITAL": LineRule(
        f"claim_line.claim_type = 'professional' and claim_line.place_of_service in {sql_list(HOSPITAL_POS)} "
        "and claim_line.component = 'TC'",
        "printf('%s-TC billed on a professional claim in hospital place of service %s; the facility bills "
        "the technical component.', claim_line.hcpcs, claim_line.place_of_service)",
    ),
}

PAIR_RULES = {
    "MOD_SPLIT_SAME_BILLER": PairRule(
        "a.biller_key = b.biller_key and a.biller_key <> '' "
        "and ((a.component = '26' and b.component = 'TC') or (a.component = 'TC' and b.component = '26'))",
        "printf('%s-%s and %s-%s (claim %s line %d) are billed by the same billing NPI for one patient and day; '"
        "|| 'bill the global service instead.', a.hcpcs, a.component, b.hcpcs, b.component, b.claim_id, "
        "b.line_number)",
    ),
}

X_MODIFIER_ON_LINE = f"len(list_filter(claim_line.modifiers, lambda m: m in {sql_list(X_MODIFIERS)})) > 0"

# A line with 59 or an X modifier that no active PTP edit pairs with another line of its encounter.
BYPASS_UNNEEDED = f"""
insert into found by name
select hit.line_id, 'MOD_BYPASS_UNNEEDED' as rule_id,
       printf('%s carries %s, but no active NCCI edit pairs it with another line of this patient, day and '
              || 'provider.', claim_line.hcpcs,
              array_to_string(list_filter(claim_line.modifiers, lambda m: m in {sql_list(X_MODIFIERS)}), ', '))
           as message,
       hit.expected_allowed
from line_hits hit
where {X_MODIFIER_ON_LINE}
  and hit.line_id not in (select col1_line from ptp_pairs union all select col2_line from ptp_pairs)
"""

STEPS = [
    Step("bypass_unneeded", BYPASS_UNNEEDED, reads=frozenset({"line_hits", "ptp_pairs"}),
         emits=("MOD_BYPASS_UNNEEDED",), candidates=(X_MODIFIER_ON_LINE,)),
]
