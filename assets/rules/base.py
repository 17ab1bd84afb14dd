"""What a rule module declares, and the vocabulary its SQL shares with the engine (assets/scrub.py).

A rule family is one module of this package. It declares:

- `RULES`: its registry entries (id, category, default severity, likely CARC, explanation, fix, source);
- `LINE_RULES`: rules that judge a line by itself (a condition and a message over the line's columns);
- `PAIR_RULES`: rules between two lines of one encounter that bill the same code;
- `STEPS`: any other statement, with the working tables it reads and makes and the rule ids it emits.

Line rules and line candidates read a line as `claim_line` (the batch's claim line), `priced` (its price
context), `rendering_check` and `billing_check` (the NPI check digit of each NPI). Pair rules read the two
lines as `a` (the batch's line that is flagged) and `b` (the other line). Steps read the engine's working
tables: `sl` (the batch's lines, and with history earlier batches' lines of the same encounters, at line ids
below zero), `line_hits` (the lines that a line rule or a candidate marks, with `claim_line` and `priced` as
columns), `same_code` (pairs of lines of one encounter billing the same code), `history_lines`, and insert
their findings into `found`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rule:
    id: str
    category: str
    severity: str
    carc: str
    explanation: str
    fix: str
    source: str
    # The reference table whose release decides the finding (rvu, ptp, mue, aoc), or "" for a rule that reads
    # none: a newer release of it ends a standing dismissal, and `rejudge` names it as the cause of a change.
    judged_by: str = ""
    # Other CARCs its findings carry where the line decides (STATUS_NOT_PAYABLE: by the code's status), shown
    # with `carc` on the Rules sheet; `carc` stays the one a finding without its own takes.
    also_carc: tuple[str, ...] = ()
    # Other severities its findings take where the line decides (by status, edit type or indicator value),
    # shown with `severity` on the Rules sheet; `severity` stays the one a finding without its own takes.
    also_severity: tuple[str, ...] = ()


@dataclass(frozen=True)
class LineRule:
    """A rule that judges a line by itself: `condition` marks the line, `message` says why. `severity` and `carc`
    are SQL expressions where they depend on the line (else the registry's)."""

    condition: str
    message: str
    severity: str | None = None
    carc: str | None = None


@dataclass(frozen=True)
class PairRule:
    """A rule between the batch's line `a` and another line `b` of its encounter that bills the same code."""

    condition: str
    message: str


@dataclass(frozen=True)
class Step:
    """One statement of a rule family. `reads` and `makes` name working tables, from which the engine orders
    the steps; `emits` names the rule ids whose findings it inserts into `found`. A step `per_part` runs for
    each part of a batch judged in parts (by patient); otherwise once, before the parts. `candidates` are
    conditions over a line (as line rules read it) that put the line in `line_hits` for this step."""

    name: str
    sql: str
    reads: frozenset[str] = frozenset()
    makes: frozenset[str] = frozenset()
    emits: tuple[str, ...] = ()
    per_part: bool = True
    candidates: tuple[str, ...] = field(default_factory=tuple)


def sql_list(values) -> str:
    """A list of SQL string literals, for values that come from constants in code."""
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"


# Modifiers that NCCI lets separate a PTP pair (RULES.md, "Bypass modifiers").
BYPASS_MODIFIERS = [
    "59", "XE", "XP", "XS", "XU", "24", "25", "27", "57", "58", "78", "79", "91",
    "E1", "E2", "E3", "E4", "FA", "F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "F9",
    "TA", "T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9",
    "LT", "RT", "LC", "LD", "LM", "RC", "RI",
]
X_MODIFIERS = ["59", "XE", "XP", "XS", "XU"]
HOSPITAL_POS = ["19", "21", "22", "23"]

# Sources shared by the RVU-based rules.
NCCI_CH1 = "CMS NCCI Policy Manual for Medicare Services, Chapter I (general correct coding, modifiers)"
NCCI_CH9 = "CMS NCCI Policy Manual for Medicare Services, Chapter IX (radiology)"
MCPM_13 = "CMS Medicare Claims Processing Manual, Chapter 13 sections 20 and 150 (PC/TC, place of service)"
PFS_LAYOUT = "CMS National Physician Fee Schedule Relative Value File record layout (RVU25D readme)"
MUE_PAGE = "CMS Medically Unlikely Edits program pages (adjudication indicators 1, 2, 3)"
MLN_59 = "CMS MLN1783722, Proper Use of Modifiers 59, XE, XP, XS and XU"
