"""The same service billed twice for one patient and day: the same component of a PC/TC code by anyone, or
the same code, modifiers and provider otherwise."""

from .base import NCCI_CH1, NCCI_CH9, PairRule, Rule

RULES = [
    Rule("DUP_COMPONENT", "duplicate", "deny", "18",
         "The same component of this service (global overlaps 26 and TC) is billed more than once for the "
         "patient and day, by this or another provider, without a repeat-procedure modifier.",
         "Remove the duplicate line; if the service was repeated, append 76 (same physician) or 77 (another "
         "physician) with documentation; if two parties split it, bill 26 and TC, not global.", NCCI_CH9,
         judged_by="rvu"),
    Rule("DUP_EXACT", "duplicate", "deny", "18",
         "The same code, modifiers and provider appear more than once for the patient and day with no "
         "repeat-procedure modifier: the payer denies the copies as exact duplicates.",
         "Remove the duplicate lines, or combine them into one line with the total units.", NCCI_CH1,
         judged_by="rvu"),
]
LINE_RULES = {}

PAIR_RULES = {
    "DUP_COMPONENT": PairRule(
        "a.pctc = '1' and not a.has_repeat and not b.has_repeat "
        "and (a.component = 'global' or b.component = 'global' or a.component = b.component)",
        "printf('%s (%s) overlaps claim %s line %d (%s) for the same patient and day; the same component '"
        "|| 'cannot be paid twice.', a.hcpcs, a.component, b.claim_id, b.line_number, b.component)",
    ),
    "DUP_EXACT": PairRule(
        "coalesce(a.pctc, '') <> '1' and a.modifier_text = b.modifier_text "
        "and a.provider_key = b.provider_key and not a.has_repeat and not b.has_repeat",
        "printf('%s%s is billed again on claim %s line %d by the same provider for the same patient and day.', "
        "a.hcpcs, case when a.modifier_text <> '' then '-' || a.modifier_text else '' end, "
        "b.claim_id, b.line_number)",
    ),
}
STEPS = []
