"""What the record must show: a diagnosis on the claim, and for 76120 billed beside plain fluoroscopy, a
permanent cine or video recording."""

from .base import NCCI_CH9, Rule, Step, sql_list

RULES = [
    Rule("DX_MISSING", "documentation", "review", "16",
         "The claim has no diagnosis code, or one that is not shaped like an ICD-10-CM code.",
         "Add the ICD-10-CM diagnosis that supports the service (letter, digit, then up to five characters).",
         "CMS-1500 / 837P item 21 instructions"),
    Rule("RECORDING_EVIDENCE", "documentation", "review", "",
         "76120 (cine/video recording) is billed with plain fluoroscopy on the same day: the note must show "
         "a permanent cine or video recording was made, not fluoroscopy alone.",
         "Confirm the report documents the recording; otherwise bill the fluoroscopy only.", NCCI_CH9),
]
LINE_RULES = {}
PAIR_RULES = {}

PLAIN_FLUOROSCOPY = ["76000", "77001", "77002", "77003"]

RECORDING = f"""
insert into found by name
select recording.line_id, 'RECORDING_EVIDENCE' as rule_id,
       arg_min(printf('76120 billed with fluoroscopy %s (claim %s line %d) on the same day: the note must show a '
                      || 'permanent cine/video recording.', fluoroscopy.hcpcs, fluoroscopy.claim_id,
                      fluoroscopy.line_number), fluoroscopy.line_id) as message,
       min(fluoroscopy.line_id) as partner_line_id,
       arg_min(fluoroscopy.claim_id, fluoroscopy.line_id) as partner_claim_id,
       arg_min(fluoroscopy.line_number, fluoroscopy.line_id) as partner_line_number,
       any_value(recording.expected_allowed) as expected_allowed
from sl recording
join sl fluoroscopy on recording.patient_id = fluoroscopy.patient_id
                   and recording.date_of_service = fluoroscopy.date_of_service
                   and recording.line_id <> fluoroscopy.line_id
where recording.line_id >= 0 and recording.hcpcs = '76120' and fluoroscopy.hcpcs in {sql_list(PLAIN_FLUOROSCOPY)}
group by recording.line_id
"""

# Diagnoses belong to the claim (the 837P carries them once per claim): a claim with none, or with one
# that is not shaped like ICD-10-CM, puts every one of its lines at risk. A claim is one patient's: a claim id
# an export gives lines of two patients is two claims (and so every layout, whose shards hold a patient's
# lines each, judges it alike). Only the claims with a line lacking a diagnosis or holding a misshapen one can
# be at risk, so only theirs are gathered, once for the whole batch (a claim's lines may fall in several parts).
ICD10_SHAPE = "[A-Z][0-9][0-9A-Z][0-9A-Z]{0,4}"
DX_CLAIMS = f"""
create or replace temp table dx_claims as
with dx_lines as (
    select line_id, claim_id, patient_id, diagnoses from claim_lines where batch_id = $batch
    union all
    select history.sl_id, earlier.claim_id, earlier.patient_id, earlier.diagnoses
    from history_lines history
    join claim_lines earlier on earlier.batch_id = history.batch_id and earlier.line_id = history.line_id
    where history.shares_day
),
suspect as (
    select distinct claim_id, patient_id from dx_lines
    where len(diagnoses) = 0
       or len(list_filter(diagnoses, lambda d: not regexp_full_match(d, '{ICD10_SHAPE}'))) > 0
),
claim_diagnoses as (
    select claim_id, patient_id, list_distinct(flatten(list(diagnoses))) as dx
    from dx_lines semi join suspect using (claim_id, patient_id) group by claim_id, patient_id
),
claims as (
    select claim_id, patient_id, dx,
           list_filter(dx, lambda d: not regexp_full_match(d, '{ICD10_SHAPE}')) as bad
    from claim_diagnoses
)
select * from claims where len(dx) = 0 or len(bad) > 0
"""

# The lines of the claims DX_CLAIMS found, in the part being judged.
DX = """
insert into found by name
select line.line_id, 'DX_MISSING' as rule_id,
       case when len(claim.dx) = 0 then 'No diagnosis code on the claim.'
            else printf('Diagnosis %s on the claim is not shaped like an ICD-10-CM code.',
                        array_to_string(claim.bad, ', '))
       end as message,
       line.expected_allowed
from dx_claims claim
join sl line on line.claim_id = claim.claim_id and line.patient_id = claim.patient_id
where line.line_id >= 0
"""

STEPS = [
    Step("dx_claims", DX_CLAIMS, reads=frozenset({"history_lines"}), makes=frozenset({"dx_claims"}),
         per_part=False),
    Step("dx_missing", DX, reads=frozenset({"dx_claims", "sl"}), emits=("DX_MISSING",)),
    Step("recording_evidence", RECORDING, reads=frozenset({"sl"}), emits=("RECORDING_EVIDENCE",)),
]
