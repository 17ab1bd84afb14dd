"""Whether the fee schedule pays the code at all: its status for the line's component and date, and codes
the fee schedule does not list."""

from ..pricing import CATEGORY_II, UNPRICED_STATUSES
from .base import PFS_LAYOUT, LineRule, Rule, Step, sql_list

RULES = [
    Rule("STATUS_NOT_PAYABLE", "coverage", "deny", "96",
         "The fee schedule status of the code for this component and date decides: bundled, non-covered, "
         "invalid or deleted codes are denied; restricted ones are paid only in limited circumstances; "
         "carrier-priced codes, codes paid under another schedule (clinical lab, drugs at ASP, anesthesia, "
         "vaccine administration) and CPT Category II quality codes are not denials, only not priced here.",
         "Deny: check the code for the date of service and bill the payable code, or obtain an ABN where the "
         "service is non-covered. Review: confirm the coverage conditions are documented. Info: nothing to "
         "fix; the payer prices it under its own schedule, or takes it as a report without payment (measurement "
         "codes, CPT Category II codes).", PFS_LAYOUT, judged_by="rvu",
         also_carc=("97", "181", "50"), also_severity=("review", "info")),
    Rule("CODE_NOT_IN_FEE_SCHEDULE", "data", "info", "",
         "The code is not in the physician fee schedule release for this date: it cannot be priced and may "
         "be invalid or carrier-priced.",
         "Check the code and the date of service; load a newer fee schedule release if the code is new.",
         PFS_LAYOUT, judged_by="rvu"),
]

# Fee schedule statuses (RVU readme) by what they mean for the line: denied as billed, payable but restricted,
# and paid under another schedule or not at all (information, not priced: see assets/pricing.py).
DENIED_STATUSES = ("B", "N", "P", "I", "D", "F", "G", "H")
REVIEW_STATUSES = ("R",)
OTHER_SCHEDULE_STATUSES = UNPRICED_STATUSES
CATEGORY_II_CODE = f"regexp_full_match(claim_line.hcpcs, '{CATEGORY_II}')"

STATUS_MESSAGE = (
    # A Category II code missing from the RVU file has no status to name.
    "case when priced.status is null then printf('%s is not in the fee schedule (%s): ', claim_line.hcpcs, "
    "priced.rvu_release) else printf('%s has fee schedule status %s (%s): ', claim_line.hcpcs, priced.status, "
    "priced.rvu_release) end || "
    f"(case when {CATEGORY_II_CODE} then 'a CPT Category II quality code: reported "
    "for quality measures, no payment expected; not priced.' "
    "else case priced.status "
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
    "end end)"
)
PAID_ELSEWHERE = f"({CATEGORY_II_CODE} or priced.status in {sql_list(OTHER_SCHEDULE_STATUSES)})"
STATUS_SEVERITY = (f"case when {PAID_ELSEWHERE} then 'info' "
                   f"when priced.status in {sql_list(REVIEW_STATUSES)} then 'review' else 'deny' end")
STATUS_CARC = (f"case when {PAID_ELSEWHERE} then '' else case priced.status when 'B' then '97' when 'P' then '97' "
               "when 'T' then '97' when 'N' then '96' when 'R' then '50' else '181' end end")

LINE_RULES = {
    "STATUS_NOT_PAYABLE": LineRule(
        f"priced.status in {sql_list(DENIED_STATUSES + REVIEW_STATUSES + OTHER_SCHEDULE_STATUSES)} "
        f"or {CATEGORY_II_CODE}",
        STATUS_MESSAGE, STATUS_SEVERITY, STATUS_CARC,
    ),
    "CODE_NOT_IN_FEE_SCHEDULE": LineRule(
        "not priced.in_fee_schedule",
        "printf('%s is not in the fee schedule (%s); the line is not priced.', claim_line.hcpcs, "
        "priced.rvu_release)",
    ),
}
PAIR_RULES = {}

# Status T (injections) is paid only when no other fee-schedule service by the same provider shares the day.
# A carrier-priced service (C) is such a service: paid under the fee schedule, only priced by the contractor.
# A line of the same code is not another service but the same one billed again (DUP_EXACT's to judge).
# The other lines are looked for only among the patients of the status-T lines.
STATUS_T = "priced.status = 'T'"
# The finding names the other service (the lowest id: an earlier batch's first, then the batch's first line),
# as a partner line: the biller looks for it, and where it went out on an earlier night, its batch is named.
STATUS_T_SHARED_DAY = f"""
insert into found by name
with shared as (
    select hit.line_id,
           arg_min({{'id': other.line_id, 'claim': other.claim_id, 'line': other.line_number,
                    'code': other.hcpcs}}, other.line_id) as other
    from (select * from line_hits where {STATUS_T}) hit
    join sl other
      on other.patient_id = hit.patient_id and other.date_of_service = hit.date_of_service
     and other.provider_key = hit.provider_key and other.line_id <> hit.line_id
     and other.status in ('A', 'R', 'T', 'C') and other.hcpcs <> hit.hcpcs
    group by hit.line_id
)
select hit.line_id, 'STATUS_NOT_PAYABLE' as rule_id, {STATUS_SEVERITY} as severity, {STATUS_CARC} as carc,
       {STATUS_MESSAGE} || printf(' Other service that day: %s (claim %s line %d).', shared.other.code,
                                  shared.other.claim, shared.other.line) as message,
       hit.expected_allowed, shared.other.id as partner_line_id, shared.other.claim as partner_claim_id,
       shared.other.line as partner_line_number
from line_hits hit join shared on shared.line_id = hit.line_id
"""

STEPS = [
    Step("status_t_shared_day", STATUS_T_SHARED_DAY, reads=frozenset({"line_hits", "sl"}),
         emits=("STATUS_NOT_PAYABLE",), candidates=(STATUS_T,)),
]
