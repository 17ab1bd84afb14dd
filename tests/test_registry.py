"""One rule, one place: every registered rule has SQL that emits it, every emitted rule is registered, the
rule book and the README list exactly the registry's rules, and a finding of an unregistered rule stops the
run with one line naming it."""

import re
from pathlib import Path

import pytest

from assets import scrub as engine
from assets.rules import LINE_RULES, PAIR_RULES, RULES, STEPS, emitted_rule_ids
from assets.rules.base import Step

from .helpers import scrub, write_csv

ROOT = Path(__file__).resolve().parent.parent
REGISTERED = {rule.id: rule for rule in RULES}


def test_every_registered_rule_is_emitted_and_every_emitted_rule_is_registered():
    emitted = set(emitted_rule_ids())
    assert set(REGISTERED) - emitted == set(), "registered rules that no SQL emits"
    assert emitted - set(REGISTERED) == set(), "emitted rules missing from the registry"
    assert len(REGISTERED) == len(RULES), "a rule id registered twice"


def test_each_step_names_in_its_sql_the_rules_it_says_it_emits():
    for step in STEPS:
        for rule_id in step.emits:
            assert f"'{rule_id}'" in step.sql, f"{step.name} declares {rule_id} but its SQL never names it"
    assert not set(LINE_RULES) & set(PAIR_RULES)


def test_steps_are_ordered_after_the_tables_they_read():
    made = set(engine.BATCH_TABLES)
    for step in [*engine.BATCH_STEPS, *engine.PART_STEPS]:
        assert step.reads <= made, f"{step.name} runs before {step.reads - made} is made"
        made |= step.makes
    with pytest.raises(engine.RuleOrderError, match="reads nowhere, which no step makes"):
        engine.ordered([Step("lost", "select 1", reads=frozenset({"nowhere"}))], frozenset())


def _rule_table_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and re.fullmatch(r"[A-Z][A-Z0-9]*_[A-Z0-9_]+", cells[0]):
            rows[cells[0]] = cells
    return rows


def _carcs(cell: str) -> list[str]:
    """The CARCs a rule book cell names, in order, each the first word of a comma- or semicolon-separated part
    ("96 (N), 97 (B, P, T)" names 96 and 97; "97 (or 236) with M80/N20" names 97); "-" and "audit" name none."""
    parts = [part.strip().split(" ")[0] for part in re.split(r"[,;](?![^(]*\))", cell)]
    return [part for part in parts if re.fullmatch(r"\d{1,3}|[A-Z]\d{1,3}", part)]


def test_the_rule_book_lists_exactly_the_registered_rules_with_their_category_severity_and_carc():
    book = _rule_table_rows((ROOT / "docs" / "RULES.md").read_text())
    assert set(book) == set(REGISTERED), (
        f"in docs/RULES.md, not registered: {sorted(set(book) - set(REGISTERED))}; "
        f"registered, not in docs/RULES.md: {sorted(set(REGISTERED) - set(book))}")
    for rule_id, cells in book.items():
        rule = REGISTERED[rule_id]
        assert cells[1] == rule.category, f"{rule_id}: category {cells[1]} in the book, {rule.category} registered"
        # The registry's default severity and CARC come first in the book's cells, then those a line decides.
        severities = re.findall(r"\b(deny|review|info)\b", cells[2])
        assert severities[:1] == [rule.severity] and set(severities) == {rule.severity, *rule.also_severity}, (
            f"{rule_id}: severity {cells[2]!r} in the book, {rule.severity} {rule.also_severity} registered")
        carcs = _carcs(cells[-1])  # every rule table ends with the likely CARC
        assert carcs[:1] == [rule.carc] if rule.carc else carcs == [], (
            f"{rule_id}: CARC {cells[-1]!r} in the book, {rule.carc!r} registered")
        assert set(carcs) == {rule.carc, *rule.also_carc} - {""}, (
            f"{rule_id}: CARCs {cells[-1]!r} in the book, {rule.carc} {rule.also_carc} registered")


def test_the_readme_rule_list_names_exactly_the_registered_rules():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The rules"):]
    section = section[:section.index("\n## ", 1)]
    listed = {rule_id for line in section.splitlines() if line.startswith("| ")
              for rule_id in re.findall(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b", line.split("|")[1])}
    assert listed == set(REGISTERED), (sorted(listed - set(REGISTERED)), sorted(set(REGISTERED) - listed))


def test_a_finding_of_an_unregistered_rule_stops_the_run_naming_it(tmp_path, db_path, monkeypatch):
    stray = Step("stray", "insert into found by name select line_id, 'NOT_A_RULE' as rule_id, 'x' as message "
                 "from sl where line_id >= 0", reads=frozenset({"sl"}), emits=("NOT_A_RULE",))
    monkeypatch.setattr(engine, "PART_STEPS", [*engine.PART_STEPS, stray])
    export = write_csv(tmp_path / "claims.csv", [dict(
        claim_id="C1", line_number=1, patient_id="P1", date_of_service="2024-07-15", hcpcs="76120", units=1,
        rendering_npi="1234567893", diagnosis_1="R13.10")])
    run = scrub([export], tmp_path / "out", db_path)
    assert run.exit_code == 1
    assert len(run.stderr.strip().splitlines()) == 1
    assert "NOT_A_RULE" in run.stderr and "registry" in run.stderr
    assert not (tmp_path / "out" / "flags.csv").exists()


def test_every_rule_names_the_reference_table_whose_release_decides_it():
    """A newer release of that table ends a standing dismissal of the rule, and rejudge lays changes to it."""
    tables = {rule.id: rule.judged_by for rule in RULES}
    assert set(tables.values()) == {"", "rvu", "ptp", "mue", "aoc"}
    assert {rule for rule, table in tables.items() if table in ("ptp", "mue", "aoc")} == {
        "PTP_NO_BYPASS", "PTP_BYPASSED", "MOD_BYPASS_UNNEEDED", "MUE_LINE", "MUE_DOS", "MUE_NOT_PUBLISHED",
        "AOC_NO_PRIMARY"}
    assert {rule for rule, table in tables.items() if not table} == {
        "MOD_26_AND_TC", "MOD_TC_IN_HOSPITAL", "MOD_SPLIT_SAME_BILLER", "DX_MISSING", "NPI_INVALID",
        "RECORDING_EVIDENCE"}
