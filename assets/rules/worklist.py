"""What the Worklist tells a biller to do about each finding, and which finding's fix wins where several share
a cause: the instruction templates and the precedence rules, kept beside the registry so that a rule brings
its instruction with it (tests/test_worklist.py fails for a registered rule without one).

An instruction is a template over the facts of one finding (FIELDS): `{line}`, `{code}`, `{partner}`, `{mue}`
... A rule may have several, each with a condition (`when`, SQL over the same facts): the first whose
condition holds is the finding's instruction, and each rule ends with one without a condition. `action` is
the few words the Worklist's Action column shows; `removes` says the instruction takes the line off the
claim, which settles every other finding on it (see PRECEDENCE).

assets/worklist.py turns these into the SQL that writes the Worklist: templates become string expressions,
evaluated for every finding at once, never per row in Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..pricing import CATEGORY_II
from .base import X_MODIFIERS, sql_list

UNITS = ("case when {0} = trunc({0}) then cast(cast({0} as bigint) as varchar) "
         "else cast(cast({0} as double) as varchar) end")

# The primary codes an AOC_NO_PRIMARY finding's message lists (empty where it lists none: the instruction then
# points to the explanation).
AOC_PRIMARIES = "coalesce(regexp_extract(w.message, 'primary codes \\(([A-Z0-9]{5}[^)]*)\\)', 1), '')"

# The facts a template may name, as SQL over one finding of the Worklist (`w`, built in assets/worklist.py).
FIELDS = {
    "line": "w.line_ref",
    "claim": "w.claim_id",
    "code": "w.hcpcs",
    "billed": "w.billed",
    "modifiers": "w.modifiers",
    "units": UNITS.format("w.units"),
    "dos": "strftime(w.date_of_service, '%Y-%m-%d')",
    "provider": "w.provider",
    "biller": "coalesce(w.billing_npi, w.provider)",
    "pos": "w.place_of_service",
    "status": "w.status",
    "pctc": "w.pctc",
    "pctc_repeats": "w.pctc_repeats",
    "rvu_release": "w.rvu_release",
    "mue": "cast(w.mue_value as varchar)",
    "day_units": UNITS.format("w.day_units"),
    "keep_units": UNITS.format("greatest(w.day_mue - w.units_before, 0)"),
    "day_lines": "w.day_lines",
    "earlier": "case when w.partner_batch is not null then ' (with earlier batch ' || w.partner_batch || ')' "
               "else '' end",
    "earlier_batch": "w.partner_batch",
    "partner": "w.partner_ref",
    "partner_line": "w.partner_line",
    "partner_code": "w.partner_hcpcs",
    "partner_dos": "strftime(w.partner_dos, '%Y-%m-%d')",
    "column_1": "w.ptp_column_1",
    "modifier_indicator": "w.ptp_modifier_indicator",
    "x_modifiers": f"array_to_string(list_filter(string_split(w.modifiers, ','), lambda m: m in "
                   f"{sql_list(X_MODIFIERS)}), ', ')",
    "assistant_modifiers": "array_to_string(list_filter(string_split(w.modifiers, ','), "
                           "lambda m: m in ('80', '81', '82', 'AS')), ', ')",
    "pctc_modifier": "array_to_string(list_filter(string_split(w.modifiers, ','), "
                     "lambda m: m in ('26', 'TC')), ' and ')",
    "bilateral_indicator": "w.bilat_surg",
    "bilateral_paid": "case w.bilat_surg when '1' then 'paid at 150%' when '3' then 'each side paid at 100%' end",
    "assistant_indicator": "w.asst_surg",
    "cosurgeon_indicator": "w.co_surg",
    "team_indicator": "w.team_surg",
    "failing_npi": "w.failing_npi",
    "aoc_primaries": AOC_PRIMARIES,
    "aoc_near": "w.aoc_near",
    "other_part": "w.other_part_ref",
    "global_becomes": "w.global_becomes",
    # An MUE of adjudication indicator 2 is a limit set by policy, which contractors do not pay past on appeal;
    # past one of indicator 3 (clinical) the record of a repeated service may be.
    "appeal": "case when contains(w.message, '(adjudication indicator 2,') then '; units past an MUE of "
              "adjudication indicator 2 (policy) are not paid on appeal' else ', or appeal with the record if "
              "the service was repeated' end",
    "aoc_near_what": "w.aoc_near_what",
    "cosurgeon_first": "w.cosurgeon_first",
    "visit_modifiers": "case when w.date_of_service > w.partner_dos then '24 (or FT) only if the visit was "
                       "unrelated to the surgery' "
                       "when w.date_of_service = w.partner_dos then '25 only if the visit was a significant, "
                       "separately identifiable service (57 if it was the decision for a major surgery)' "
                       "else '57 only if the visit was the decision for the surgery' end "
                       # A visit in the periods of several surgeries needs each one's excuse, or FT for all.
                       "|| case when contains(w.message, 'more surgery line(s)') then '; it also lies in the "
                       "period of another surgery (see the explanation), which needs its own: 24 after the "
                       "surgery''s day, 25 on it, 57 for the decision for a major surgery, or FT for a visit "
                       "unrelated to every one of them' else '' end",
    # A duplicate's other lines (assets/worklist.py, DUPLICATES): the line it overlaps, the line kept, the
    # copies, and what becomes of the line it overlaps.
    "dup_partner": "w.dup_partner_ref",
    "dup_partner_line": "w.dup_partner_line",
    "dup_partner_action": "w.dup_partner_action",
    "keeper": "w.dup_keeper",
    "copies": "w.dup_copies",
}


# A bilateral code (indicator 1, paid at 150% with 50; or 3, each side at 100%) with an MUE of 1, billed for
# each side on a line of its own: one service billed as -50.
# The bilateral indicators under which 50 pays one line for both sides (1: 150%; 3: each side at 100%).
PAID_BILATERAL = "('1', '3')"
BILATERAL_DAY = (f"w.bilat_surg in {PAID_BILATERAL} and w.mue_value = 1 and len(w.day_sides) = 2 "
                 "and list_has_any(string_split(coalesce(w.modifiers, ''), ','), ['RT', 'LT'])")


# A duplicate pair that is the right and the left side of a bilateral code, of this batch (whatever its MUE: two
# lines of one code overlap, and one line with 50 is what pays both sides).
_SIDE = "list_contains(string_split(coalesce(w.modifiers, ''), ','), '{0}') and list_contains(string_split(" \
        "coalesce(w.partner_billed, ''), '-'), '{1}')"
BILATERAL_SIDES = (f"w.bilat_surg in {PAID_BILATERAL} and w.dup_others = 1 "
                   f"and w.partner_batch is null and (({_SIDE.format('RT', 'LT')}) or ({_SIDE.format('LT', 'RT')}))")


@dataclass(frozen=True)
class Instruction:
    """One rule's instruction for a finding whose facts meet `when` (SQL over FIELDS' `w`; '' always)."""

    rule_id: str
    action: str
    text: str
    when: str = ""
    removes: bool = False
    # Chosen once the MUE days are known (`w.units_before`, assets/worklist.py DAYS), in place of the rule's
    # instruction without a condition.
    after_days: bool = False


@dataclass(frozen=True)
class Precedence:
    """Where findings share a cause: the findings of `resolves` (empty: of any rule) that meet `when` need no
    fix of their own, because the fix of `governs` on the same lines settles them. `when` is SQL over the
    finding `w` (with its MUE day's `day_fixed_by`, the rule whose fix removes lines of the day, and
    `day_fits`, the day within its MUE once they are gone) and its line `l` (`bundled`, `removed`,
    `removed_by`). `title` and `why` are the Worklist's closing note; `governs` is shown as the line's
    instruction even when it is a review finding."""

    id: str
    title: str
    why: str
    governs: tuple[str, ...]
    resolves: tuple[str, ...]
    when: str


DUPLICATE_RULES = ("DUP_COMPONENT", "DUP_EXACT")
# An evaluation and management visit, as GLOBAL_EM_IN_PERIOD reads one.
EM_LINE = "w.hcpcs between '99202' and '99499'"
HOSPITAL_POS = "('19', '21', '22', '23')"
# The finding's partner line is removed for a bundle of its own (a line bundled into a line that stays).
PARTNER_BUNDLED = ("w.partner_line_id in (select line_id from worklist_findings where rule_id = 'PTP_NO_BYPASS' "
                   "and severity = 'deny' and not partner_gone)")
REPEAT = ("or append 76 (same physician) or 77 (another physician) to a repeat that was really done, with "
          "the record")
# A line that repeats its own claim and line of an earlier batch, unchanged (docs/RULES.md: a claim sent again
# unchanged is a second submission): the claim went out already.
SENT_BEFORE_WHEN = ("w.partner_batch is not null and w.partner_claim_id = w.claim_id "
                    "and w.partner_line_number = w.line_number")
SENT_BEFORE = ("{line}: this line went out already, unchanged, in batch {earlier_batch}: do not send it again (a "
               "payer denies a second submission as a duplicate); if the first was wrong, correct what was wrong "
               "and send the claim as a correction")

def line_has(rule_id: str) -> str:
    """SQL: the finding's line (`w`) has a finding of `rule_id` on the Worklist."""
    return (f"exists (select 1 from worklist_findings g where g.line_id = w.line_id "
            f"and g.rule_id = '{rule_id}')")


# An MUE of 0 on a line whose status is not payable either: the status's instruction says what to bill instead
# (Precedence "status_units"), and the MUE's gives way to it.
STATUS_DENIED = ("exists (select 1 from worklist_findings s where s.line_id = w.line_id "
                 "and s.rule_id = 'STATUS_NOT_PAYABLE' and s.severity = 'deny')")
MUE_NONE = f"w.mue_value = 0 and not {STATUS_DENIED}"

NO_COSURGEONS = "{line}: {code} does not permit co-surgeons (co-surgeon indicator {cosurgeon_indicator}): "

# In priority order: a line's instructions are listed in this order, and of two that remove the line the first
# is the one shown.
INSTRUCTIONS = [
    # A line that went out already, unchanged: first of all, so that its other findings' fixes (a bundle, units)
    # are not offered for a claim the payer already has.
    # Sent again beside another provider's part: the copy that went out is the line to correct.
    Instruction("DUP_COMPONENT", "do not send again",
                SENT_BEFORE + "; and {other_part} bills the other part: correct the claim that went out to "
                "{code}-{global_becomes}",
                when=f"{SENT_BEFORE_WHEN} and w.other_part_ref is not null", removes=True),
    Instruction("DUP_COMPONENT", "do not send again", SENT_BEFORE, when=SENT_BEFORE_WHEN, removes=True),
    Instruction("DUP_EXACT", "do not send again", SENT_BEFORE, when=SENT_BEFORE_WHEN, removes=True),
    Instruction("PTP_NO_BYPASS", "remove line",
                "{line}: {billed} is bundled into {column_1} on {partner} (NCCI edit, no modifier allowed): "
                "remove this line", when="w.ptp_modifier_indicator = '0'", removes=True),
    # 59 and the X modifiers are not for visits (NCCI Policy Manual, chapter I; MLN1783722): a visit's
    # modifier is 25, or 57 for the decision for surgery.
    Instruction("PTP_NO_BYPASS", "remove line",
                "{line}: visit {billed} is bundled into {column_1} on {partner}: remove this line, or, only if "
                "the visit was a significant, separately identifiable service and the record shows it, append "
                "25 (57 if it was the decision for a major surgery); 59 and the X modifiers do not apply to "
                "visits", when=EM_LINE, removes=True),
    Instruction("PTP_NO_BYPASS", "remove line",
                "{line}: {billed} is bundled into {column_1} on {partner}: remove this line, or, only if it "
                "was a "
                "separate site or session, append XS, XE, XP, XU or 59 with the record", removes=True),
    Instruction("PTP_BYPASSED", "confirm modifier",
                "{line}: {billed} is unbundled from {column_1} on {partner} by a modifier: confirm the note "
                "shows a "
                "separate site, session or encounter, else remove the modifier and the line"),
    Instruction("MOD_SPLIT_SAME_BILLER", "keep as billed",
                "{line} ({billed}) and {partner_line} ({partner_code}-TC) are one service billed by NPI "
                "{biller}, but at hospital place of service {pos} the facility bills the technical part: keep "
                "{line} as billed and remove {partner_line}",
                when=f"w.component = '26' and w.partner_batch is null and w.place_of_service in {HOSPITAL_POS}"),
    Instruction("MOD_SPLIT_SAME_BILLER", "remove line",
                "{partner_line} ({partner_code}-26) and {line} ({billed}) are one service billed by NPI "
                "{biller}, but at hospital place of service {pos} the facility bills the technical part: keep "
                "{partner_line} and remove {line}",
                when=f"w.component = 'TC' and w.partner_batch is null and w.place_of_service in {HOSPITAL_POS}",
                removes=True),
    Instruction("MOD_SPLIT_SAME_BILLER", "bill as global",
                "{line} ({billed}) and {partner_line} ({partner_code}-TC) are one service billed by NPI "
                "{biller}: "
                "bill {line} as {code} global, without 26 or TC, and remove {partner_line}",
                when="w.component = '26' and w.partner_batch is null"),
    Instruction("MOD_SPLIT_SAME_BILLER", "remove line",
                "{partner_line} ({partner_code}-26) and {line} ({billed}) are one service billed by NPI "
                "{biller}: "
                "bill {partner_line} as {code} global, without 26 or TC, and remove {line}",
                when="w.component = 'TC' and w.partner_batch is null", removes=True),
    Instruction("MOD_SPLIT_SAME_BILLER", "correct as global",
                "{line}: {billed} and {partner} are one service billed by NPI {biller}: bill it once as "
                "{code} "
                "global (correct the claim that went out first)"),
    # The two sides of a bilateral code (indicator 1 or 3) with an MUE of one, each on a line of its own: one
    # service, billed once with 50, not a line and its copy.
    Instruction("DUP_COMPONENT", "bill as bilateral",
                "{line}: {billed} and {partner} are the two sides of one service: bill it once as {code}-50 on "
                "this line (bilateral indicator {bilateral_indicator}, {bilateral_paid}) and remove the other "
                "side's line", when=f"{BILATERAL_SIDES} and w.dup_role = 'keep_copy'"),
    Instruction("DUP_COMPONENT", "remove line",
                "{line}: {billed} and {partner} are the two sides of one service, billed once as {code}-50 on "
                "{partner_line} (bilateral indicator {bilateral_indicator}, {bilateral_paid}): remove this line",
                when=f"{BILATERAL_SIDES} and w.dup_role = 'remove_copy'", removes=True),
    Instruction("DUP_COMPONENT", "bill as TC",
                "{line}: {code} global overlaps {dup_partner}: bill {claim} as {code}-TC, or drop it if the "
                "technical part was not yours", when="w.dup_role = 'bill_tc'"),
    Instruction("DUP_COMPONENT", "bill as 26",
                "{line}: {code} global overlaps {dup_partner}: bill {claim} as {code}-26, or drop it if the "
                "professional part was not yours", when="w.dup_role = 'bill_26'"),
    Instruction("DUP_COMPONENT", "remove line",
                "{line}: {code} global overlaps {dup_partner}, which bill both parts: remove this line",
                when="w.dup_role = 'remove_global'", removes=True),
    Instruction("DUP_COMPONENT", "remove line",
                "{line}: {code} global at hospital place of service {pos} overlaps {dup_partner}: remove this "
                "line; the other provider bills the professional part and the hospital the technical part",
                when="w.dup_role = 'remove_hospital_global'", removes=True),
    Instruction("DUP_COMPONENT", "keep as billed",
                "{line}: {billed} overlaps {dup_partner}: keep this line as billed; {dup_partner_line} is to "
                "{dup_partner_action}", when="w.dup_role = 'keep_part'"),
    Instruction("DUP_COMPONENT", "remove line",
                "{line}: {billed} overlaps {dup_partner}, a global line of the same provider that includes "
                "it: "
                "remove this line", when="w.dup_role = 'remove_part'", removes=True),
    Instruction("DUP_COMPONENT", "keep as billed",
                "{line}: {code} global overlaps {dup_partner} of the same provider: keep this line and "
                "remove "
                "{dup_partner_line}", when="w.dup_role = 'keep_global'"),
    Instruction("DUP_COMPONENT", "keep as billed",
                "{line}: {billed} overlaps {partner}, which is removed (bundled): keep this line as billed",
                when=f"w.dup_role = 'resolved' and {PARTNER_BUNDLED}"),
    Instruction("DUP_COMPONENT", "decide to match",
                "{line}: {billed} overlaps {partner}, whose finding of the same overlap an auditor decided: "
                "decide this one to match (keep both lines only if each part was really billed once)",
                when="w.dup_role = 'resolved'"),
    Instruction("DUP_COMPONENT", "keep, remove copies",
                f"{{line}}: {{billed}} is billed again on {{copies}}: keep this line and remove the copies, "
                f"{REPEAT}",
                when="w.dup_role = 'keep_copy'"),
    Instruction("DUP_COMPONENT", "remove line",
                f"{{line}}: {{billed}} repeats {{keeper}}: remove this line, {REPEAT}", removes=True),
    Instruction("DUP_EXACT", "keep as billed",
                "{line}: {billed} repeats {partner}, which is removed (bundled): keep this line as billed",
                when=f"w.dup_role = 'resolved' and {PARTNER_BUNDLED}"),
    Instruction("DUP_EXACT", "decide to match",
                "{line}: {billed} repeats {partner}, whose finding of the same repeat an auditor decided: "
                "decide this one to match", when="w.dup_role = 'resolved'"),
    Instruction("DUP_EXACT", "keep, remove copies",
                "{line}: {billed} is billed again on {copies} by NPI {provider}: keep this line and remove "
                "the copies, " + REPEAT, when="w.dup_role = 'keep_copy'"),
    Instruction("DUP_EXACT", "remove line",
                f"{{line}}: {{billed}} repeats {{keeper}} by NPI {{provider}}: remove this line, {REPEAT}",
                removes=True),
    # A code without a technical component (a visit: PC/TC indicator 0) has nothing for the facility to bill:
    # TC is the mistake, not the line.
    Instruction("MOD_TC_IN_HOSPITAL", "remove modifier",
                "{line}: {code} has no technical component (PC/TC indicator {pctc}, {rvu_release}): remove TC "
                "and bill {code}", when="w.pctc not in ('1', '3')"),
    Instruction("MOD_TC_IN_HOSPITAL", "remove line",
                "{line}: {billed} at hospital place of service {pos}: remove this line from the professional "
                "claim; the facility bills the technical part", removes=True),
    Instruction("MOD_ASSISTANT_NOT_PAYABLE", "remove line",
                "{line}: Medicare pays no assistant at surgery for {code} (assistant indicator "
                "{assistant_indicator}): remove this {assistant_modifiers} line", when="w.severity = 'deny'",
                removes=True),
    Instruction("MOD_ASSISTANT_NOT_PAYABLE", "send records",
                "{line}: an assistant ({assistant_modifiers}) for {code} is paid only with the record of "
                "medical "
                "necessity (assistant indicator 0): send it with the claim"),
    # An MUE of 0: no unit of the code is paid on a day; fewer units fix nothing.
    Instruction("MUE_LINE", "remove line",
                "{line}: {code} has an MUE of 0: Medicare pays no unit of it; remove this line, or bill the code "
                "that describes the service (see the explanation)", when=MUE_NONE, removes=True),
    Instruction("MUE_LINE", "correct units",
                "{line}: {code} billed {units} units on one line, its MUE is {mue} per line: bill {mue} on "
                "this "
                "line, and appeal any medically necessary excess with the record"),
    # Each side on a line of its own, of a code paid bilateral with 50 (indicator 1 or 3) with an MUE of one:
    # one line with 50 is the claim Medicare pays, not the units cut to one.
    Instruction("MUE_DOS", "bill as bilateral",
                "{line}: {code} is billed for each side ({day_lines}{earlier}), {day_units} units over its MUE "
                "of {mue} per day: bill it once as {code}-50 on this line (bilateral indicator "
                "{bilateral_indicator}, {bilateral_paid}) and remove the other side's line",
                when=f"{BILATERAL_DAY} and w.side_lines = 2 and w.line_id = w.first_side_line"),
    Instruction("MUE_DOS", "remove line",
                "{line}: {code} is billed for each side ({day_lines}{earlier}), {day_units} units over its MUE "
                "of {mue} per day: remove this line; the other side's line is billed once as {code}-50 "
                "(bilateral indicator {bilateral_indicator}, {bilateral_paid})",
                when=f"{BILATERAL_DAY} and w.side_lines = 2", removes=True),
    # A day of more lines than its two sides (a side billed twice): which line stays is the copies' fix.
    Instruction("MUE_DOS", "bill as bilateral",
                "{line}: {code} is billed for each side ({day_lines}{earlier}), {day_units} units over its MUE "
                "of {mue} per day: bill it once as {code}-50 on one line (bilateral indicator "
                "{bilateral_indicator}, {bilateral_paid}) and remove the other side's line",
                when=BILATERAL_DAY),
    Instruction("MUE_DOS", "remove line",
                "{line}: {code} has an MUE of 0 per day: Medicare pays no unit of it; remove this line, or bill "
                "the code that describes the service (see the explanation)", when=MUE_NONE, removes=True),
    # Every unit of the day in sight, or the rest in earlier batches (sent already, so before tonight's): the lines
    # before this one (the earlier batches', then tonight's by claim and line) keep the MUE's units.
    Instruction("MUE_DOS", "remove line",
                "{line}: {code} {units} unit(s) here; the patient's units on {dos} by NPI {provider} "
                "({day_lines}{earlier}) add up to {day_units}, over its MUE of {mue} per day, and the lines "
                "before this one bill the {mue} it allows: remove this line{appeal}",
                when="w.units_before >= w.day_mue", after_days=True),
    Instruction("MUE_DOS", "correct units",
                "{line}: {code} {units} unit(s) here; the patient's units on {dos} by NPI {provider} "
                "({day_lines}{earlier}) add up to {day_units}, over its MUE of {mue} per day: correct this line "
                "to {keep_units} unit(s){appeal}",
                when="w.units_before + w.units > w.day_mue", after_days=True),
    Instruction("MUE_DOS", "keep as billed",
                "{line}: {code} {units} unit(s) here; the patient's units on {dos} by NPI {provider} "
                "({day_lines}{earlier}) add up to {day_units}, over its MUE of {mue} per day: keep this line as "
                "billed; the lines after it go (see their rows){appeal}",
                when="w.units_before is not null", after_days=True),
    Instruction("MUE_DOS", "correct units",
                "{line}: {code} {units} unit(s) here; the patient's units on {dos} by NPI {provider} "
                "({day_lines}{earlier}) add up to {day_units}, over its MUE of {mue} per day: correct them to "
                "{mue} in all{appeal}"),
    # At a hospital the global line is denied too (MOD_GLOBAL_IN_HOSPITAL): the physician's part is the 26.
    Instruction("MOD_26_AND_TC", "remove modifier",
                "{line}: {code} carries both 26 and TC at hospital place of service {pos}: remove TC and bill "
                "{code}-26; the hospital bills the technical part",
                when=f"w.place_of_service in {HOSPITAL_POS} and w.pctc = '1'"),
    Instruction("MOD_26_AND_TC", "correct modifiers",
                "{line}: {code} carries both 26 and TC: bill {code} global without either, or keep only the "
                "modifier of the part you performed"),
    Instruction("MOD_PCTC_INVALID", "remove line",
                "{line}: {code} has PC/TC indicator {pctc} ({rvu_release}) and no separate component; without "
                "{pctc_modifier} it repeats {pctc_repeats}: remove this line",
                when="w.pctc_repeats is not null", removes=True),
    Instruction("MOD_PCTC_INVALID", "remove modifier",
                "{line}: {code} has PC/TC indicator {pctc} ({rvu_release}) and no separate component: remove "
                "{pctc_modifier} and bill {code}"),
    Instruction("MOD_GLOBAL_IN_HOSPITAL", "bill as 26",
                "{line}: {code} global at hospital place of service {pos}: bill {code}-26; the hospital "
                "bills the "
                "technical part"),
    Instruction("GLOBAL_EM_IN_PERIOD", "add modifier or remove",
                "{line}: visit {code} on {dos} falls in the global period of {partner_code} on {partner_dos} "
                "({partner_line}, NPI {provider}): append {visit_modifiers} and the record shows it; "
                "otherwise remove it"),
    # One of its primaries billed for the patient nearby (another day by this provider, or this day by
    # another): adding a primary would bill the service twice.
    Instruction("AOC_NO_PRIMARY", "correct line",
                "{line}: add-on {code} has no primary service by NPI {provider} on {dos}, but {aoc_near} bills "
                "one: if this add-on belongs to that service, correct this line's {aoc_near_what} to match it; "
                "otherwise bill one of its primaries with it, or correct the code",
                when="w.severity = 'deny' and w.aoc_near is not null"),
    Instruction("AOC_NO_PRIMARY", "add primary",
                "{line}: add-on {code} has no primary service by NPI {provider} on {dos}: bill one of its "
                "primaries "
                "({aoc_primaries}) with it, or correct the code",
                when=f"w.severity = 'deny' and {AOC_PRIMARIES} <> ''"),
    Instruction("AOC_NO_PRIMARY", "add primary",
                "{line}: add-on {code} has no primary service by NPI {provider} on {dos}: bill its primary "
                "(the "
                "explanation lists the codes) with it, or correct the code", when="w.severity = 'deny'"),
    Instruction("AOC_NO_PRIMARY", "confirm primary",
                "{line}: add-on {code} has none of the listed primaries by NPI {provider} on {dos}: confirm "
                "the "
                "payer accepts the primary billed, or bill one of those listed"),
    Instruction("MOD_BILATERAL_INVALID", "remove modifier",
                "{line}: {code} cannot be billed bilateral (bilateral indicator 9): remove 50 and bill "
                "{code} once",
                when="w.severity = 'deny'"),
    # Indicator 2: the code already covers both sides; a line per side would bill it twice.
    Instruction("MOD_BILATERAL_INVALID", "remove modifier",
                "{line}: {code} already covers both sides and is paid once at 100% (bilateral indicator 2): "
                "remove 50 and bill {code} once, on this line",
                when="w.bilat_surg = '2'"),
    # A second line for the other side would pass the code's MUE of one a day.
    Instruction("MOD_BILATERAL_INVALID", "remove modifier",
                "{line}: {code}-50 is paid once at 100% (bilateral indicator {bilateral_indicator}), and its MUE "
                "of 1 a day allows no line for the other side: remove 50 and bill {code} once",
                when="w.mue_value = 1"),
    Instruction("MOD_BILATERAL_INVALID", "remove modifier",
                "{line}: {code}-50 is paid once at 100% (bilateral indicator {bilateral_indicator}): remove "
                "50; "
                "bill each side on its own line with RT and LT only where the payer allows it"),
    # Each surgeon's line with 62: one of them bills the code without 62, the others' lines go (told alike, both
    # surgeons billed it at 100%).
    Instruction("MOD_COSURGEON_NOT_PAYABLE", "remove modifier",
                NO_COSURGEONS + "bill it by one surgeon, on this line without 62, and remove the other surgeon's "
                "line (see its row); if the other surgeon performed it, the other way round",
                when="w.severity = 'deny' and w.cosurgeons > 1 and w.cosurgeon_first = w.line_ref"),
    Instruction("MOD_COSURGEON_NOT_PAYABLE", "remove line",
                NO_COSURGEONS + "it is billed by one surgeon, on {cosurgeon_first} without 62 (see its row): "
                "remove this line",
                when="w.severity = 'deny' and w.cosurgeons > 1", removes=True),
    Instruction("MOD_COSURGEON_NOT_PAYABLE", "remove modifier", NO_COSURGEONS + "bill it by one surgeon without 62",
                when="w.severity = 'deny'"),
    Instruction("MOD_COSURGEON_NOT_PAYABLE", "send records",
                "{line}: co-surgeons for {code} are paid only with the record that two were needed "
                "(co-surgeon "
                "indicator 1): send it with the claim"),
    Instruction("MOD_TEAM_NOT_PAYABLE", "remove modifier",
                "{line}: {code} does not permit team surgery (team indicator {team_indicator}): bill it "
                "without 66",
                when="w.severity = 'deny'"),
    Instruction("MOD_TEAM_NOT_PAYABLE", "send records",
                "{line}: team surgery for {code} is paid only with the record of the team's medical "
                "necessity "
                "(team indicator 1): send it with the claim"),
    Instruction("STATUS_NOT_PAYABLE", "remove line",
                "{line}: {code} has fee schedule status {status} ({rvu_release}): it is bundled into the day's "
                "other services and never paid on its own: remove this line",
                when="w.severity = 'deny' and w.status in ('B', 'P')", removes=True),
    Instruction("STATUS_NOT_PAYABLE", "get ABN or remove",
                "{line}: {code} is not covered by Medicare (status N, {rvu_release}): bill it to the patient "
                "with GA only where a signed ABN is on file, else remove this line",
                when="w.severity = 'deny' and w.status = 'N'"),
    Instruction("STATUS_NOT_PAYABLE", "remove line",
                "{line}: {code} (status T, {rvu_release}) is paid only when no other fee-schedule service of "
                "NPI {provider} is billed that day: remove this line",
                when="w.severity = 'deny' and w.status = 'T'", removes=True),
    Instruction("STATUS_NOT_PAYABLE", "correct code",
                "{line}: {code} has fee schedule status {status} ({rvu_release}) and is not valid for Medicare "
                "on {dos}: bill the HCPCS code Medicare uses for the service instead",
                when="w.severity = 'deny'"),
    Instruction("STATUS_NOT_PAYABLE", "confirm coverage",
                "{line}: {code} has restricted coverage (status {status}): confirm the record meets the "
                "coverage "
                "conditions", when="w.severity = 'review'"),
    Instruction("STATUS_NOT_PAYABLE", "nothing to fix",
                "{line}: {code} is reported for quality measurement, not paid: nothing to fix",
                when=f"w.status = 'M' or regexp_full_match(w.hcpcs, '{CATEGORY_II}')"),
    Instruction("STATUS_NOT_PAYABLE", "nothing to fix",
                "{line}: {code} (status {status}) is paid under its own schedule: nothing to fix"),
    Instruction("NPI_INVALID", "correct NPI",
                "{line}: the check digit fails for {failing_npi}: correct it from NPPES"),
    Instruction("DX_MISSING", "add diagnosis",
                "{claim}: add the ICD-10-CM diagnosis that supports {code} on {dos}"),
    Instruction("RECORDING_EVIDENCE", "confirm record",
                "{line}: {code} billed with fluoroscopy {partner_code} ({partner_line}): confirm the report "
                "shows a permanent cine or video recording; without one, {code} is not supported"),
    Instruction("MOD_BYPASS_UNNEEDED", "remove modifier",
                "{line}: no NCCI edit pairs {code} with another line of this patient, day and NPI "
                "{provider}: remove "
                "{x_modifiers} unless a claim outside this batch explains it"),
    Instruction("MPPR_IMAGING", "nothing to fix",
                "{line}: {code} is paid at the multiple-procedure reduction behind {partner_line}: nothing "
                "to fix"),
    Instruction("CODE_NOT_IN_FEE_SCHEDULE", "check code",
                "{line}: {code} is not in {rvu_release}: check the code and the date of service"),
    Instruction("MUE_NOT_PUBLISHED", "nothing to fix",
                "{line}: no MUE is published for {code}: nothing to fix; check the {units} unit(s) against "
                "the "
                "record"),
]

# What a line overlapped by a duplicate is to become, in the words of the other line's instruction.
PARTNER_ACTIONS = {
    "bill_tc": "be billed as {code}-TC",
    "bill_26": "be billed as {code}-26",
    "remove_global": "be removed",
    "remove_hospital_global": "be removed",
    "remove_part": "be removed",
    "remove_copy": "be removed",
    "keep_global": "stay as billed",
    "keep_part": "stay as billed",
    "keep_copy": "stay as billed",
    "resolved": "stay as billed",
}
# The same for a line of an earlier batch, already sent: a global line overlapped by tonight's 26 (or TC) is
# corrected to the other part; any other stays.
EARLIER_GLOBAL_ACTIONS = {
    "26": "be corrected to {code}-TC on a corrected claim (it went out in batch {earlier_batch})",
    "TC": "be corrected to {code}-26 on a corrected claim (it went out in batch {earlier_batch})",
}
EARLIER_ACTION = "stay as billed (it went out in batch {earlier_batch})"

# MUE_DOS settled by the fix of other lines of its day: the day's units, once the lines to remove are gone,
# fit the MUE (`w.day_fits`; assets/worklist.py, DAYS), and `w.day_fixed_by` is the rule whose fix removes
# them.

PRECEDENCE = [
    Precedence(
        "bundled", "A bundled line goes, every copy of it",
        "a column 2 line that is also a duplicate is removed for the bundle, and so are its copies: the "
        "service "
        "is paid inside the column 1 code, so keeping one copy would still be denied",
        governs=("PTP_NO_BYPASS",), resolves=DUPLICATE_RULES, when=f"l.bundled and not ({SENT_BEFORE_WHEN})"),
    Precedence(
        "split", "One biller's 26 and TC are one global line",
        "the MUE counts the 26 and the TC line of one service as two units; billed as one global line, the "
        "day "
        "is back within the MUE, so the units are not cut as well",
        governs=("MOD_SPLIT_SAME_BILLER",), resolves=("MUE_DOS",),
        when="w.day_fixed_by = 'MOD_SPLIT_SAME_BILLER' and w.day_fits"),
    Precedence(
        "copy", "Removing the copy clears the units",
        "a duplicate's units count twice toward the day's MUE; once the copy is removed the day fits, so the "
        "units of the line kept are not cut as well",
        governs=DUPLICATE_RULES, resolves=("MUE_DOS",),
        when=f"w.day_fixed_by in {sql_list(DUPLICATE_RULES)} and w.day_fits"),
    Precedence(
        "bundled_units", "Removing a bundled line clears its units",
        "the units of a line removed for a bundle no longer count toward the day's MUE",
        governs=("PTP_NO_BYPASS",), resolves=("MUE_DOS",),
        when="w.day_fixed_by = 'PTP_NO_BYPASS' and w.day_fits"),
    Precedence(
        "removed_units", "Removing a line clears its units",
        "the units of a line removed for any other reason (a technical part in a hospital, an assistant "
        "Medicare never pays, a bundled status) no longer count toward the day's MUE",
        governs=(), resolves=("MUE_DOS",),
        when="w.day_fixed_by is not null and w.day_fixed_by <> 'MUE_DOS' and w.day_fits"),
    Precedence(
        "status_units", "A code Medicare does not pay has no units to correct",
        "an MUE of 0 means no unit of the code is paid; the fix of the code's status (another code, an ABN, "
        "or the line removed) settles its units too",
        governs=("STATUS_NOT_PAYABLE",), resolves=("MUE_LINE", "MUE_DOS"),
        when=f"w.mue_value = 0 and {STATUS_DENIED}"),
    Precedence(
        "hospital_part", "A global line billed as 26 in a hospital leaves the TC line alone",
        "at a hospital place of service a global line is billed as its professional part (26); it then no "
        "longer overlaps another line's technical part (TC), so that one change settles both findings",
        governs=("MOD_GLOBAL_IN_HOSPITAL",), resolves=("DUP_COMPONENT",),
        when="w.component = 'global' and w.partner_component = 'TC' "
             f"and {line_has('MOD_GLOBAL_IN_HOSPITAL')} "
             "and not exists (select 1 from worklist_findings o where o.rule_id = 'DUP_COMPONENT' "
             "and o.patient = w.patient and o.date_of_service = w.date_of_service and o.hcpcs = w.hcpcs "
             "and o.line_id <> w.line_id and o.component <> 'TC')"),
    Precedence(
        "no_part", "A modifier the code has no part for goes once",
        "TC on a code without a technical component, at a hospital, is both an invalid modifier and a "
        "technical part billed by the physician: removing TC settles both",
        governs=("MOD_PCTC_INVALID",), resolves=("MOD_TC_IN_HOSPITAL",),
        when=f"w.pctc not in ('1', '3') and {line_has('MOD_PCTC_INVALID')}"),
    Precedence(
        "chain", "A line bundled into a removed line stays",
        "a column 2 line whose column 1 line is itself removed (bundled into a third line, a technical part in "
        "a hospital, an assistant Medicare never pays ...) is no longer billed beside it: the edit between them "
        "is moot, and the line stays unless another edit bundles it",
        governs=(), resolves=("PTP_NO_BYPASS",), when="w.partner_gone"),
    Precedence(
        "surgery_gone", "A visit after a removed surgery stays",
        "a visit whose only surgery with a period around it is removed lies in no global period once the "
        "surgery is gone, and is paid as billed",
        governs=(), resolves=("GLOBAL_EM_IN_PERIOD",), when="w.partner_gone"),
    Precedence(
        "injection_alone", "An injection left alone stays",
        "a status-T injection is denied only beside another fee-schedule service of its day; once every other "
        "one is removed, it is paid on its own",
        governs=(), resolves=("STATUS_NOT_PAYABLE",), when="w.partner_gone"),
    Precedence(
        "removed", "A line to remove needs no other fix",
        "nothing on a line that is not billed can be denied: its units, modifiers and other findings go with "
        "it",
        governs=(), resolves=(), when="l.removed and w.rule_id <> l.removed_by"),
]

# How the Worklist picks which side of a conflict between two lines changes (the instructions above).
SIDE_RULES = [
    ("The global gives way to another provider's component",
     "a 26 or TC line of another provider shows that part was theirs; the global line claims both, so it is "
     "billed as the other part (or dropped), and the component line stays as billed"),
    ("A global line of the same provider includes its components",
     "a 26 or TC line beside the same provider's global line for the same service is removed"),
    ("The first copy stays",
     "of lines that repeat each other, the one billed in an earlier batch, else the first by claim and line, "
     "stays; the others are removed or marked as repeats (76, 77)"),
    ("Review items never change a deny fix",
     "a review finding that no fix settles is shown beside the instruction, marked review: it is payable as "
     "billed and needs a look, not a change"),
]

PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def template_sql(template: str, alias: str = "w") -> str:
    """A template as a SQL string expression over FIELDS, read from the table `alias` (a fact that is null
    reads as empty text)."""
    parts, last = [], 0
    for match in PLACEHOLDER.finditer(template):
        if match.group(1) not in FIELDS:
            raise KeyError(f"template field {{{match.group(1)}}} is not one of the Worklist's facts: "
                           f"{template!r}")
        if match.start() > last:
            parts.append(_literal(template[last:match.start()]))
        field = FIELDS[match.group(1)].replace("w.", f"{alias}.")
        parts.append(f"coalesce(cast({field} as varchar), '')")
        last = match.end()
    if last < len(template):
        parts.append(_literal(template[last:]))
    return f"concat({', '.join(parts)})" if parts else "''"


def instructions_for(rule_id: str) -> list[Instruction]:
    return [i for i in INSTRUCTIONS if i.rule_id == rule_id]
