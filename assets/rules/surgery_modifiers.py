"""The fee schedule's payment-policy indicators for surgery modifiers: bilateral (50), assistant at surgery
(80, 81, 82, AS), co-surgeons (62) and team surgery (66), each read from the RVU row of the line's code and
component."""

from .base import LineRule, Rule

MCPM_12_20 = ("CMS Medicare Claims Processing Manual, Chapter 12 sections 20.4.3 to 20.4.5 and 40 (assistant at "
              "surgery, co-surgeons and team surgery, bilateral surgery); RVU26B readme (payment-policy indicators)")

RULES = [
    Rule("MOD_BILATERAL_INVALID", "modifier", "deny", "4",
         "Modifier 50 (bilateral) on a code whose bilateral surgery indicator does not allow the bilateral "
         "adjustment: 9, the concept does not apply (denied); 0, no bilateral adjustment, or 2, the code is "
         "already bilateral (paid once at 100%: a review).",
         "Remove modifier 50; bill the code once (for indicator 0, bill each side on its own line with RT/LT "
         "only where the payer allows it).", MCPM_12_20, judged_by="rvu",
         also_severity=("review",)),
    Rule("MOD_ASSISTANT_NOT_PAYABLE", "modifier", "deny", "54",
         "An assistant-at-surgery modifier (80, 81, 82, AS) on a code whose assistant indicator says Medicare "
         "does not pay an assistant: 1, never (statute), or 9, the concept does not apply (denied); 0, only "
         "with documentation of medical necessity (a review).",
         "Remove the assistant line, or, for indicator 0, attach the documentation of medical necessity.",
         MCPM_12_20, judged_by="rvu",
         also_severity=("review",)),
    Rule("MOD_COSURGEON_NOT_PAYABLE", "modifier", "deny", "54",
         "Modifier 62 (co-surgeons) on a code whose co-surgeon indicator does not permit it: 0 or 9 (denied); "
         "1, permitted with documentation (a review).",
         "Bill the procedure by one surgeon without 62 (the other as assistant where that is payable), or, for "
         "indicator 1, send the documentation that two surgeons were needed.", MCPM_12_20, judged_by="rvu",
         also_severity=("review",)),
    Rule("MOD_TEAM_NOT_PAYABLE", "modifier", "deny", "54",
         "Modifier 66 (team surgery) on a code whose team-surgery indicator does not permit it: 0 or 9 (denied); "
         "1, permitted with documentation (a review).",
         "Bill without 66, or, for indicator 1, send the documentation of the team's medical necessity.",
         MCPM_12_20, judged_by="rvu",
         also_severity=("review",)),
]

HAS_50 = "list_contains(claim_line.modifiers, '50')"
HAS_ASSISTANT = "list_has_any(claim_line.modifiers, ['80', '81', '82', 'AS'])"
HAS_62 = "list_contains(claim_line.modifiers, '62')"
HAS_66 = "list_contains(claim_line.modifiers, '66')"
ASSISTANT_MODIFIERS = ("array_to_string(list_filter(claim_line.modifiers, "
                       "lambda m: m in ('80', '81', '82', 'AS')), ', ')")

LINE_RULES = {
    "MOD_BILATERAL_INVALID": LineRule(
        f"{HAS_50} and priced.bilat_surg in ('0', '2', '9')",
        "printf('%s-50: its bilateral surgery indicator is %s (%s): %s', claim_line.hcpcs, priced.bilat_surg, "
        "priced.rvu_release, case priced.bilat_surg "
        "when '9' then 'the bilateral concept does not apply to this code.' "
        "when '0' then 'no bilateral adjustment; paid once at 100%.' "
        "else 'the code already describes both sides; paid once at 100%.' end)",
        severity="case when priced.bilat_surg = '9' then 'deny' else 'review' end",
    ),
    "MOD_ASSISTANT_NOT_PAYABLE": LineRule(
        f"{HAS_ASSISTANT} and priced.asst_surg in ('0', '1', '9')",
        f"printf('%s-%s: its assistant-at-surgery indicator is %s (%s): %s', claim_line.hcpcs, {ASSISTANT_MODIFIERS}, "
        "priced.asst_surg, priced.rvu_release, case priced.asst_surg "
        "when '1' then 'Medicare never pays an assistant for this procedure.' "
        "when '9' then 'the assistant concept does not apply to this code.' "
        "else 'an assistant is paid only with documentation of medical necessity.' end)",
        severity="case when priced.asst_surg = '0' then 'review' else 'deny' end",
    ),
    "MOD_COSURGEON_NOT_PAYABLE": LineRule(
        f"{HAS_62} and priced.co_surg in ('0', '1', '9')",
        "printf('%s-62: its co-surgeon indicator is %s (%s): %s', claim_line.hcpcs, priced.co_surg, "
        "priced.rvu_release, case priced.co_surg "
        "when '0' then 'co-surgeons are not permitted for this procedure.' "
        "when '9' then 'the co-surgeon concept does not apply to this code.' "
        "else 'co-surgeons are paid only with documentation.' end)",
        severity="case when priced.co_surg = '1' then 'review' else 'deny' end",
    ),
    "MOD_TEAM_NOT_PAYABLE": LineRule(
        f"{HAS_66} and priced.team_surg in ('0', '1', '9')",
        "printf('%s-66: its team-surgery indicator is %s (%s): %s', claim_line.hcpcs, priced.team_surg, "
        "priced.rvu_release, case priced.team_surg "
        "when '0' then 'team surgery is not permitted for this procedure.' "
        "when '9' then 'the team-surgery concept does not apply to this code.' "
        "else 'team surgery is paid only with documentation.' end)",
        severity="case when priced.team_surg = '1' then 'review' else 'deny' end",
    ),
}
PAIR_RULES = {}
STEPS = []
