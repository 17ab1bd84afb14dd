"""The rules of RULES.md, one module per family, and the registry they make together.

Each family module (see base.py) declares its registry entries beside the SQL that emits them: adding a rule
is adding an entry and its SQL to a family (or a new family to FAMILIES), plus its test cases. The engine
(assets/scrub.py) gathers every family's line rules, pair rules and steps; the registry supplies what a
finding says beyond its line and message (category, default severity, likely CARC, explanation, fix,
source), and the workbook's Rules sheet prints it.
"""

from dataclasses import asdict

import pandas as pd

from . import (addons, bundling, coverage, data, documentation, duplicates, global_surgery, modifiers, payment,
               surgery_modifiers, units)
from .base import LineRule, PairRule, Rule, Step

FAMILIES = [units, bundling, addons, global_surgery, modifiers, surgery_modifiers, duplicates, coverage,
            documentation, data, payment]

RULES: list[Rule] = [rule for family in FAMILIES for rule in family.RULES]
LINE_RULES: dict[str, LineRule] = {rule: line for family in FAMILIES for rule, line in family.LINE_RULES.items()}
PAIR_RULES: dict[str, PairRule] = {rule: pair for family in FAMILIES for rule, pair in family.PAIR_RULES.items()}
STEPS: list[Step] = [step for family in FAMILIES for step in family.STEPS]


def registry_frame(carc_text: dict[str, str] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame([asdict(rule) for rule in RULES]).drop(columns=["also_carc", "also_severity"])
    frame["severities"] = [_listed([rule.severity, *rule.also_severity]) for rule in RULES]
    carc_text = carc_text or {}
    codes = [[rule.carc, *rule.also_carc] if rule.carc else [] for rule in RULES]
    frame["carcs"] = [", ".join(each) for each in codes]
    frame["carc_text"] = [carc_text.get(each[0], "") if len(each) == 1
                          else "; ".join(f"{code}: {carc_text.get(code, '')}" for code in each)
                          for each in codes]
    return frame


def _listed(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def register_rules(con, carc_text: dict[str, str] | None = None) -> None:
    """The registry as the temporary table `rule_registry` of `con`, which the judge's and the write stage's
    statements join their findings to."""
    con.register("registry_frame", registry_frame(carc_text))
    con.execute("create or replace temp table rule_registry as select * from registry_frame")
    con.unregister("registry_frame")


def emitted_rule_ids() -> list[str]:
    """Every rule id that some line rule, pair rule or step emits, once per emitter."""
    return [*LINE_RULES, *PAIR_RULES, *(rule for step in STEPS for rule in step.emits)]
