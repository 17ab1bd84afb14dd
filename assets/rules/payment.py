"""What changes the payment without denying it: the multiple-procedure reduction of imaging."""

from .base import PFS_LAYOUT, Rule, Step

RULES = [
    Rule("MPPR_IMAGING", "pricing", "info", "59",
         "Two or more imaging codes subject to the multiple-procedure reduction (indicator 4) in one "
         "session: the lower-priced ones are paid 50% less on the technical and 5% less on the professional "
         "component.",
         "Nothing to fix; expect the reduced payment.", PFS_LAYOUT, judged_by="rvu"),
]
LINE_RULES = {}
PAIR_RULES = {}

# A session's procedures are its codes: the 26 and TC halves of one code, or its repeated lines, are one
# procedure, not two. Codes are ranked by their highest per-unit amount (a line's units do not make a code the
# dearer one); equal amounts by the code's first claim and line, never by position in the batch, so which code
# is reduced does not depend on the order of the rows or files. A line of an earlier batch with the same claim
# and line number (ids below zero) ranks first: the last key makes every run choose alike.
MPPR = """
insert into found by name
with imaging as (
    select line_id, hcpcs, claim_id, line_number, expected_allowed, patient_id, date_of_service, provider_key,
           first_value(line_id) over code_lines as code_line, first_value(claim_id) over code_lines as code_claim,
           first_value(line_number) over code_lines as code_number,
           max(expected_allowed / units) over (partition by patient_id, date_of_service, provider_key, hcpcs)
               as code_price
    from sl where mult_proc = '4' and expected_allowed is not null and units > 0
    window code_lines as (partition by patient_id, date_of_service, provider_key, hcpcs
                          order by claim_id, line_number, line_id)
),
codes as (
    select patient_id, date_of_service, provider_key, hcpcs, code_line, code_claim, code_number,
           count(*) over session as session_codes, row_number() over ranked as code_rank,
           first_value(code_line) over ranked as top_line, first_value(code_claim) over ranked as top_claim,
           first_value(code_number) over ranked as top_number
    from (select distinct patient_id, date_of_service, provider_key, hcpcs, code_price, code_line, code_claim,
                          code_number from imaging)
    window session as (partition by patient_id, date_of_service, provider_key),
           ranked as (session order by code_price desc, code_claim, code_number, code_line)
)
select imaging.line_id, 'MPPR_IMAGING' as rule_id,
       printf('%s is one of %d imaging codes under the multiple-procedure reduction in this session; '
              || 'as a lower-priced one it is paid 50%% less on the technical and 5%% less on the professional '
              || 'component.', imaging.hcpcs, codes.session_codes) as message,
       codes.top_line as partner_line_id, codes.top_claim as partner_claim_id,
       codes.top_number as partner_line_number, imaging.expected_allowed
from imaging
join codes using (patient_id, date_of_service, provider_key, hcpcs)
where codes.session_codes >= 2 and codes.code_rank > 1 and imaging.line_id >= 0
"""

STEPS = [Step("mppr_imaging", MPPR, reads=frozenset({"sl"}), emits=("MPPR_IMAGING",))]
