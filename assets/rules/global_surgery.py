"""Global surgery: a visit (E/M) by the surgeon inside a surgery's global period is part of the surgery's
payment unless a modifier says it is not (RULES.md, "Global surgery")."""

from .base import Rule, Step

MCPM_12_40 = ("CMS Medicare Claims Processing Manual, Chapter 12 section 40 (the global surgical package; "
              "modifiers 24, 25, 57 and FT)")

RULES = [
    Rule("GLOBAL_EM_IN_PERIOD", "bundling", "deny", "97",
         "The visit (E/M) falls in the global period of a surgery by the same provider for the same patient: "
         "the surgery's payment covers it, and no modifier on the visit says it is separate.",
         "If the visit was unrelated to the surgery, append 24 (after the day of surgery), 25 (a separately "
         "identifiable visit on the day of a minor procedure), 57 (the decision for a major surgery, the day "
         "before or of it) or FT, with documentation; otherwise remove the visit.", MCPM_12_40, judged_by="rvu"),
]
LINE_RULES = {}
PAIR_RULES = {}

# The period a surgery's global days give, from its date of service `d`: 090 from d - 1 to d + 90, 010 from
# d to d + 10, 000 the day d only. The message names the release that gave the surgery its global days: the
# surgery's own, which is not the visit's when a year's end lies between them.
GLOBAL_EM = """
insert into found by name
with visits as (
    select line_id, patient_id, provider_key, date_of_service, hcpcs, expected_allowed,
           string_split(modifier_text, ',') as modifiers
    from sl
    where line_id >= 0 and status = 'A' and regexp_full_match(hcpcs, '99[0-9]{3}')
      and hcpcs between '99202' and '99499'
),
surgeries as (
    select line_id, patient_id, provider_key, date_of_service, hcpcs, claim_id, line_number, global_days,
           rvu_release,
           date_of_service - case global_days when '090' then 1 else 0 end as period_start,
           date_of_service + case global_days when '090' then 90 when '010' then 10 else 0 end as period_end
    from sl
    where status = 'A' and global_days in ('000', '010', '090')
),
unexcused as (
    select visit.line_id, visit.hcpcs, visit.date_of_service, visit.expected_allowed,
           surgery.line_id as surgery_line, surgery.hcpcs as surgery_code, surgery.claim_id as surgery_claim,
           surgery.line_number as surgery_number, surgery.date_of_service as surgery_date, surgery.global_days,
           surgery.rvu_release as surgery_release
    from visits visit
    join surgeries surgery
      on surgery.patient_id = visit.patient_id and surgery.provider_key = visit.provider_key
     and visit.date_of_service between surgery.period_start and surgery.period_end
     and surgery.line_id <> visit.line_id
    where not (list_contains(visit.modifiers, 'FT')
               or (list_contains(visit.modifiers, '24') and visit.date_of_service > surgery.date_of_service)
               or (list_contains(visit.modifiers, '25') and visit.date_of_service = surgery.date_of_service)
               or (list_contains(visit.modifiers, '57') and surgery.global_days = '090'
                   and visit.date_of_service in (surgery.date_of_service - 1, surgery.date_of_service)))
),
first_surgery as (
    select line_id, any_value(hcpcs) as hcpcs, any_value(date_of_service) as date_of_service,
           any_value(expected_allowed) as expected_allowed, count(*) as surgeries,
           arg_min({'line': surgery_line, 'code': surgery_code, 'claim': surgery_claim, 'number': surgery_number,
                    'date': surgery_date, 'days': global_days, 'release': surgery_release},
                   (surgery_date, surgery_claim, surgery_number, surgery_line)) as surgery,
           -- The others, named too: each needs its own excuse, and a biller looks for them.
           list(printf('%s, claim %s line %d, %s', surgery_code, surgery_claim, surgery_number,
                       strftime(surgery_date, '%Y-%m-%d'))
                order by surgery_date, surgery_claim, surgery_number, surgery_line) as named
    -- A surgery claim sent twice unchanged is one surgery: named once, by its first send.
    from (select * from unexcused
          qualify row_number() over (partition by line_id, surgery_code, surgery_claim, surgery_number, surgery_date
                                     order by surgery_line) = 1)
    group by line_id
)
select line_id, 'GLOBAL_EM_IN_PERIOD' as rule_id,
       printf('%s on %s lies in the %s global period of %s (claim %s line %d, %s; global days %s in %s), same '
              || 'patient and provider%s; no modifier on the visit excuses it.',
              hcpcs, strftime(date_of_service, '%Y-%m-%d'),
              case surgery.days when '090' then '90-day' when '010' then '10-day' else 'same-day (000)' end,
              surgery.code, surgery.claim, surgery.number, strftime(surgery.date, '%Y-%m-%d'), surgery.days,
              surgery.release,
              case when surgeries > 1
                   then printf(' (and %d more surgery line(s): %s%s)', surgeries - 1,
                               array_to_string(named[2:4], '; '), case when surgeries > 4 then '; ...' else '' end)
                   else '' end)
           as message,
       surgery.line as partner_line_id, surgery.claim as partner_claim_id, surgery.number as partner_line_number,
       expected_allowed
from first_surgery
"""

STEPS = [Step("global_em_in_period", GLOBAL_EM, reads=frozenset({"sl"}), emits=("GLOBAL_EM_IN_PERIOD",))]
