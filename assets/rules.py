"""The rule registry: one entry per finding of RULES.md, with what a biller and an auditor need to know.

The scrub queries produce (line, rule id, detail); everything else a finding says (category, default
severity, likely CARC, explanation, fix, source) comes from here, and so does the workbook's Rules sheet.
"""

from dataclasses import asdict, dataclass

import pandas as pd

NCCI_CH1 = "CMS NCCI Policy Manual for Medicare Services, Chapter I (general correct coding, modifiers)"
NCCI_CH9 = "CMS NCCI Policy Manual for Medicare Services, Chapter IX (radiology)"
MCPM_13 = "CMS Medicare Claims Processing Manual, Chapter 13 sections 20 and 150 (PC/TC, place of service)"
PFS_LAYOUT = "CMS National Physician Fee Schedule Relative Value File record layout (RVU25D readme)"
MUE_PAGE = "CMS Medically Unlikely Edits program pages (adjudication indicators 1, 2, 3)"
MLN_59 = "CMS MLN1783722, Proper Use of Modifiers 59, XE, XP, XS and XU"


@dataclass(frozen=True)
class Rule:
    id: str
    category: str
    severity: str
    carc: str
    explanation: str
    fix: str
    source: str


RULES = [
    Rule("MUE_LINE", "units", "deny", "151",
         "The line bills more units than the code's Medically Unlikely Edit allows on one line.",
         "Check the units against the record; bill the MUE value, and report any medically necessary "
         "excess on an appeal with documentation.", MUE_PAGE),
    Rule("MUE_DOS", "units", "deny", "151",
         "The units of this code for this patient, day and provider add up to more than its MUE allows "
         "per day; the whole day's units are denied.",
         "Correct the units across the day's lines (duplicate entries are the usual cause); if the service "
         "really was repeated, expect to appeal with records.", MUE_PAGE),
    Rule("PTP_NO_BYPASS", "bundling", "deny", "97",
         "An NCCI procedure-to-procedure edit bundles this code (column 2) into another code billed for "
         "the same patient, day and provider, and no modifier may or does separate them.",
         "Remove the column 2 line, or, only if the services were distinct (separate site, session or "
         "encounter) and the edit allows a modifier, append the right one (XS, XE, XP, XU or 59) with "
         "documentation.", NCCI_CH1),
    Rule("PTP_BYPASSED", "bundling", "review", "97",
         "An NCCI edit bundles this code into another billed the same day, and a bypass modifier unbundles "
         "it: payable, but auditors check that the services were truly distinct.",
         "Confirm the note documents a separate site, session or encounter; otherwise remove the modifier "
         "and the line.", MLN_59),
    Rule("MOD_26_AND_TC", "modifier", "deny", "4",
         "The line carries both 26 (professional) and TC (technical): a line is one component or the "
         "global service, never both.",
         "Bill the global code with neither modifier, or split into a 26 line and a TC line for the "
         "parties that performed each.", MCPM_13),
    Rule("MOD_PCTC_INVALID", "modifier", "deny", "4",
         "The modifier does not fit the code: 26 is valid only for PC/TC indicator 1 or 6 codes, TC only "
         "for indicator 1 codes.",
         "Remove the 26 or TC modifier; the code has no separate professional or technical component.",
         PFS_LAYOUT),
    Rule("MOD_GLOBAL_IN_HOSPITAL", "modifier", "deny", "4",
         "A global (no 26/TC) imaging service on a professional claim in a hospital place of service: the "
         "hospital is paid the technical part, so the physician may bill only the professional component.",
         "Append modifier 26 and bill the professional component only.", MCPM_13),
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
         "Remove the 59/X modifier unless another claim not in this batch explains it.", MLN_59),
    Rule("DUP_COMPONENT", "duplicate", "deny", "18",
         "The same component of this service (global overlaps 26 and TC) is billed more than once for the "
         "patient and day, by this or another provider, without a repeat-procedure modifier.",
         "Remove the duplicate line; if the service was repeated, append 76 (same physician) or 77 (another "
         "physician) with documentation; if two parties split it, bill 26 and TC, not global.", NCCI_CH9),
    Rule("DUP_EXACT", "duplicate", "deny", "18",
         "The same code, modifiers and provider appear more than once for the patient and day with no "
         "repeat-procedure modifier: the payer denies the copies as exact duplicates.",
         "Remove the duplicate lines, or combine them into one line with the total units.", NCCI_CH1),
    Rule("STATUS_NOT_PAYABLE", "coverage", "deny", "96",
         "The fee schedule status of the code for this component and date decides: bundled, non-covered, "
         "invalid or deleted codes are denied; restricted ones are paid only in limited circumstances; "
         "carrier-priced codes, codes paid under another schedule (clinical lab, drugs at ASP, anesthesia, "
         "vaccine administration) and CPT Category II quality codes are not denials, only not priced here.",
         "Deny: check the code for the date of service and bill the payable code, or obtain an ABN where the "
         "service is non-covered. Review: confirm the coverage conditions are documented. Info: nothing to "
         "fix; the payer prices it under its own schedule.", PFS_LAYOUT),
    Rule("CODE_NOT_IN_FEE_SCHEDULE", "data", "info", "",
         "The code is not in the physician fee schedule release for this date: it cannot be priced and may "
         "be invalid or carrier-priced.",
         "Check the code and the date of service; load a newer fee schedule release if the code is new.",
         PFS_LAYOUT),
    Rule("MUE_NOT_PUBLISHED", "data", "info", "",
         "No Medically Unlikely Edit is published for this code in the release for this date: units are "
         "not limited by an MUE.",
         "Nothing to fix; check the units against the record.", MUE_PAGE),
    Rule("DX_MISSING", "documentation", "review", "16",
         "The claim has no diagnosis code, or one that is not shaped like an ICD-10-CM code.",
         "Add the ICD-10-CM diagnosis that supports the service (letter, digit, then up to five characters).",
         "CMS-1500 / 837P item 21 instructions"),
    Rule("NPI_INVALID", "data", "deny", "16",
         "A rendering or billing NPI fails the NPI check digit: the claim will be rejected at the front end.",
         "Correct the NPI from NPPES.", "CMS NPI check digit standard (Luhn over 80840 + the first nine digits)"),
    Rule("RECORDING_EVIDENCE", "documentation", "review", "",
         "76120 (cine/video recording) is billed with plain fluoroscopy on the same day: the note must show "
         "a permanent cine or video recording was made, not fluoroscopy alone.",
         "Confirm the report documents the recording; otherwise bill the fluoroscopy only.", NCCI_CH9),
    Rule("MPPR_IMAGING", "pricing", "info", "59",
         "Two or more imaging services subject to the multiple-procedure reduction (indicator 4) in one "
         "session: the lower-priced ones are paid 50% less on the technical and 5% less on the professional "
         "component.",
         "Nothing to fix; expect the reduced payment.", PFS_LAYOUT),
]

def registry_frame(carc_text: dict[str, str] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame([asdict(rule) for rule in RULES])
    carc_text = carc_text or {}
    frame["carc_text"] = [carc_text.get(code, "") for code in frame["carc"]]
    return frame
