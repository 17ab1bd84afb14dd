"""Add-on codes (NCCI AOC edits): an add-on code is paid only with a primary service by the same provider for
the same patient and day (RULES.md, "Add-on code edits")."""

from .base import Rule, Step

AOC_PAGE = "CMS NCCI Add-on Code Edits (quarterly AOC files; edit types 1, 2 and 3)"

RULES = [
    Rule("AOC_NO_PRIMARY", "bundling", "deny", "B15",
         "The line bills an add-on code, which is paid only together with one of its primary services by the "
         "same provider for the same patient and day, and no such primary service is billed (edit type 1: "
         "denied; types 2 and 3: the contractor may accept other primaries, so a review).",
         "Bill the primary service on the same claim or day (or correct the code); if the primary was billed "
         "by this provider on another claim, keep the two together when they go out.", AOC_PAGE, judged_by="aoc",
         also_severity=("review",)),
]
LINE_RULES = {}
PAIR_RULES = {}

# The batch's lines that bill a code some loaded AOC release lists as an add-on: few.
ADDON_LINES = """
create or replace temp table addon_lines as
select line_id, patient_id, date_of_service, provider_key, hcpcs, aoc_release, expected_allowed
from sl
where line_id >= 0 and aoc_release is not null
  and hcpcs in (select add_on_code from ref_aoc where release_id in (select distinct aoc_release from sl))
"""

# The add-on code edits that decide for each (aoc_release, hcpcs, date_of_service) of `keys` (a CTE the statement
# names first): the edits active on the day, the lowest edit type among them, and that type's primary codes still
# in force (`edits`). Read by this rule and by the Worklist (assets/worklist.py, ADDONS), which must agree on
# what an add-on needs.
AOC_EDITS = """active as (
    select key.aoc_release, key.hcpcs, key.date_of_service, edit.edit_type, edit.primary_code,
           edit.primary_deletion_date
    from keys key
    join ref_aoc edit on edit.release_id = key.aoc_release and edit.add_on_code = key.hcpcs
    where (edit.edit_effective_date is null or edit.edit_effective_date <= key.date_of_service)
      and (edit.edit_deletion_date is null or key.date_of_service <= edit.edit_deletion_date)
      and (edit.aoc_deletion_date is null or key.date_of_service <= edit.aoc_deletion_date)
),
deciding as (
    select aoc_release, hcpcs, date_of_service, min(edit_type) as edit_type from active group by all
),
primaries as (
    select active.aoc_release, active.hcpcs, active.date_of_service, active.primary_code
    from active
    join deciding on deciding.aoc_release = active.aoc_release and deciding.hcpcs = active.hcpcs
                 and deciding.date_of_service is not distinct from active.date_of_service
                 and deciding.edit_type = active.edit_type
    where active.primary_code <> 'CCCCC'
      and (active.primary_deletion_date is null or active.date_of_service <= active.primary_deletion_date)
),
primary_lists as (
    select aoc_release, hcpcs, date_of_service, list_sort(list(distinct primary_code)) as codes
    from primaries group by all
),
edits as (
    select deciding.*, coalesce(primary_lists.codes, []) as primary_codes
    from deciding
    left join primary_lists on primary_lists.aoc_release = deciding.aoc_release
                           and primary_lists.hcpcs = deciding.hcpcs
                           and primary_lists.date_of_service is not distinct from deciding.date_of_service
)"""

# For each add-on line: the edits that decide for it (AOC_EDITS), and whether the encounter holds the primary it
# needs. The edits depend on the release, code and day alone, which many add-on lines share: they are worked out
# once per those (`keys`), not once per line.
AOC_NO_PRIMARY = f"""
insert into found by name
with keys as (
    select distinct aoc_release, hcpcs, date_of_service from addon_lines
),
{AOC_EDITS},
judged as (
    select addon.*, edits.edit_type, edits.primary_codes
    from addon_lines addon
    join edits on edits.aoc_release = addon.aoc_release and edits.hcpcs = addon.hcpcs
              and edits.date_of_service is not distinct from addon.date_of_service
),
-- What else the add-on line's patient, day and provider hold: any other line (edit type 2), or one of its
-- primaries (the other types).
encounters as (
    select addon.line_id, true as any_other, bool_or(list_contains(addon.primary_codes, other.hcpcs)) as any_primary
    from judged addon
    join sl other on other.patient_id = addon.patient_id and other.date_of_service = addon.date_of_service
                 and other.provider_key = addon.provider_key and other.line_id <> addon.line_id
    group by addon.line_id
),
judged_lines as (
    select judged.*,
           coalesce(case when judged.edit_type = 2 then encounters.any_other else encounters.any_primary end,
                    false) as has_primary
    from judged left join encounters on encounters.line_id = judged.line_id
)
select line_id, 'AOC_NO_PRIMARY' as rule_id,
       case when edit_type = 1 then 'deny' else 'review' end as severity,
       case when edit_type = 2
            then printf('%s is an add-on code (%s, edit type 2: the contractor defines its primaries), and no other '
                        || 'service is billed for this patient on %s by this provider.', hcpcs, aoc_release,
                        strftime(date_of_service, '%Y-%m-%d'))
            else printf('%s is an add-on code (%s, edit type %d), and none of its primary codes (%s) is billed for '
                        || 'this patient on %s by this provider.', hcpcs, aoc_release, edit_type,
                        case when len(primary_codes) = 0 then 'none in force on this date'
                             when len(primary_codes) <= 6 then array_to_string(primary_codes, ', ')
                             else array_to_string(primary_codes[1:6], ', ')
                                  || printf(' and %d more', len(primary_codes) - 6) end,
                        strftime(date_of_service, '%Y-%m-%d'))
       end as message,
       expected_allowed
from judged_lines
where not has_primary
"""

STEPS = [
    Step("addon_lines", ADDON_LINES, reads=frozenset({"sl"}), makes=frozenset({"addon_lines"})),
    Step("aoc_no_primary", AOC_NO_PRIMARY, reads=frozenset({"sl", "addon_lines"}), emits=("AOC_NO_PRIMARY",)),
]
