"""What changes the payment without denying it: the multiple-procedure reduction of imaging."""

from .base import PFS_LAYOUT, Rule, Step

RULES = [
    Rule("MPPR_IMAGING", "pricing", "info", "59",
         "Two or more imaging services subject to the multiple-procedure reduction (indicator 4) in one "
         "session: the lower-priced ones are paid 50% less on the technical and 5% less on the professional "
         "component.",
         "Nothing to fix; expect the reduced payment.", PFS_LAYOUT, judged_by="rvu"),
]
LINE_RULES = {}
PAIR_RULES = {}

# Equal prices are ranked by claim and line, not by position in the batch: which line is reduced must not
# depend on the order of the rows or files. A line of an earlier batch with the same claim and line number
# (ids below zero, numbered by batch and line) ranks first: the last key makes every run choose alike.
MPPR = """
insert into found by name
with sessions as (
    select line_id, hcpcs, expected_allowed, count(*) over session as session_count,
           row_number() over ranked as rank_in_session, first_value(line_id) over ranked as top_line,
           first_value(claim_id) over ranked as top_claim, first_value(line_number) over ranked as top_number
    from sl where mult_proc = '4' and expected_allowed is not null
    window session as (partition by patient_id, date_of_service, provider_key),
           ranked as (session order by expected_allowed desc, claim_id, line_number, line_id)
)
select line_id, 'MPPR_IMAGING' as rule_id,
       printf('%s is one of %d imaging services under the multiple-procedure reduction in this session; '
              || 'as a lower-priced one it is paid 50%% less on the technical and 5%% less on the professional '
              || 'component.', hcpcs, session_count) as message,
       top_line as partner_line_id, top_claim as partner_claim_id, top_number as partner_line_number,
       expected_allowed
from sessions
where session_count >= 2 and rank_in_session > 1 and line_id >= 0
"""

STEPS = [Step("mppr_imaging", MPPR, reads=frozenset({"sl"}), emits=("MPPR_IMAGING",))]
