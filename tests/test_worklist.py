"""The Worklist as a biller reads it, and the Summary's numbers as a manager adds them up.

One run scrubs the bundled sample together with a hand-built export holding each conflict the Worklist has to
settle with one instruction: a global line overlapping another provider's 26, a 26 and TC split by one biller
over the day's MUE, duplicates over the MUE (a PC/TC code and an exact copy), and a PTP column 2 line that is
also a duplicate; and one line of each rule family beyond 76120. The tests read the workbook with openpyxl and
compare it with flags.csv.
"""

import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

from assets.report_data import name_without_dates, source_key
from assets.rules import RULES
from assets.rules.worklist import INSTRUCTIONS, PRECEDENCE, SIDE_RULES, template_sql

from .helpers import module_site, read_csv, scrub, write_csv

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "claims_sample.csv"
RADIOLOGY, CARDIO, GROUP = "1234567893", "9876543213", "5550001114"


def line(claim, number, patient, dos, hcpcs="76120", modifiers="", units="1", npi=RADIOLOGY, biller=GROUP,
         pos="11"):
    return {"claim_id": claim, "line_number": number, "patient_id": patient, "date_of_service": dos,
            "hcpcs": hcpcs, "modifiers": modifiers, "units": units, "rendering_npi": npi,
            "billing_npi": biller, "place_of_service": pos, "claim_type": "professional",
            "diagnosis_1": "R13.10", "payer": "Acme Health"}


CONFLICTS = [
    # A global line on one claim, another provider's 26 on another (the C-16 and C-17).
    line("C-17", 1, "P-OVERLAP", "2024-07-22"),
    line("C-16", 1, "P-OVERLAP", "2024-07-22", modifiers="26", npi=CARDIO),
    # A global line beside two copies of another provider's 26: the global becomes TC, and of the 26 lines the
    # first stays and the copy goes (both were kept, and their duplicate stayed denied).
    line("C-DG", 1, "P-DUP26", "2024-07-22"),
    line("C-D26", 1, "P-DUP26", "2024-07-22", modifiers="26", npi=CARDIO),
    line("C-D26", 2, "P-DUP26", "2024-07-22", modifiers="26", npi=CARDIO),
    # One biller splits 76120 into 26 and TC on two claims: two units on the day, MUE 1.
    line("C-S1", 1, "P-SPLIT", "2024-07-23", modifiers="26"),
    line("C-S2", 1, "P-SPLIT", "2024-07-23", modifiers="TC"),
    # Duplicates over the MUE: a PC/TC code (DUP_COMPONENT), and a code without components (DUP_EXACT).
    line("C-DUP", 1, "P-DUP", "2024-07-24"),
    line("C-DUP", 2, "P-DUP", "2024-07-24"),
    line("C-DX", 1, "P-DX", "2024-07-24", hcpcs="10060"),
    line("C-DX", 2, "P-DX", "2024-07-24", hcpcs="10060"),
    # 76120 twice with 92611, which bundles it (indicator 0): column 2 lines that are also duplicates.
    line("C-PTP", 1, "P-PTP", "2024-07-25", hcpcs="92611"),
    line("C-PTP", 2, "P-PTP", "2024-07-25"),
    line("C-PTP", 3, "P-PTP", "2024-07-25"),
    # Beyond 76120: an add-on without its primary, a visit in a surgery's global period, an assistant at
    # surgery.
    line("C-AOC", 1, "P-AOC", "2024-07-26", hcpcs="G0514"),
    line("C-SURG", 1, "P-SURG", "2024-07-01", hcpcs="27447"),
    line("C-EM", 1, "P-SURG", "2024-07-15", hcpcs="99213"),
    # A visit on the day of one surgery (000 days) and in the period of an earlier one (010): two excuses.
    line("C-SURG2", 1, "P-SURG2", "2024-07-01", hcpcs="10060"),
    line("C-SURG3", 1, "P-SURG2", "2024-07-05", hcpcs="11042"),
    line("C-SURG3", 2, "P-SURG2", "2024-07-05", hcpcs="99213", modifiers="59"),
    line("C-ASST", 1, "P-ASST", "2024-07-26", hcpcs="10060", modifiers="80"),
    # A visit bundled into a procedure (indicator 1): its modifier would be 25, never 59.
    line("C-VIS", 1, "P-VIS", "2024-07-26", hcpcs="11042"),
    line("C-VIS", 2, "P-VIS", "2024-07-26", hcpcs="99213"),
    # 92611 bundles 76120 (indicator 0) and 76120 bundles 76000 (indicator 1): once 76120 goes, 76000 stays.
    line("C-CHAIN", 1, "P-CHAIN", "2024-07-26", hcpcs="92611"),
    line("C-CHAIN", 2, "P-CHAIN", "2024-07-26"),
    line("C-CHAIN", 3, "P-CHAIN", "2024-07-26", hcpcs="76000"),
    # The same chain beside 64483, which also bundles 76000: 76000 goes with 76120.
    line("C-CHAIN2", 1, "P-CHAIN2", "2024-07-26", hcpcs="92611"),
    line("C-CHAIN2", 2, "P-CHAIN2", "2024-07-26"),
    line("C-CHAIN2", 3, "P-CHAIN2", "2024-07-26", hcpcs="76000"),
    line("C-CHAIN2", 4, "P-CHAIN2", "2024-07-26", hcpcs="64483"),
    # One biller's 26 and TC in a hospital: the facility bills the technical part, the 26 stays as billed.
    line("C-HOSP", 1, "P-HOSP", "2024-07-26", modifiers="26", pos="22"),
    line("C-HOSP", 2, "P-HOSP", "2024-07-26", modifiers="TC", pos="22"),
    # A bundled supply (status B, MUE 0): removed, which settles its units.
    line("C-BUN", 1, "P-BUN", "2024-07-26", hcpcs="A4550"),
    # A professional component of a code that has none (99214-26): denied, and not priced here.
    line("C-NP", 1, "P-NP", "2024-07-26", hcpcs="99214", modifiers="26"),
    # Both knees on lines of their own (27447: bilateral indicator 1, MUE 1): one line with 50.
    line("C-BIL", 1, "P-BIL", "2024-07-26", hcpcs="27447", modifiers="RT"),
    line("C-BIL", 2, "P-BIL", "2024-07-26", hcpcs="27447", modifiers="LT"),
    # One knee and its assistant's line under the surgeon's NPI: two units of the day, but not two sides.
    line("C-BIL2", 1, "P-BIL2", "2024-07-26", hcpcs="27447", modifiers="RT"),
    line("C-BIL2", 2, "P-BIL2", "2024-07-26", hcpcs="27447", modifiers="80"),
    # A global line of one provider beside its own 26 and another provider's 26: the global gives way to the
    # other's 26 (billed as TC), its own 26 goes.
    line("C-MIX", 1, "P-MIX", "2024-07-26", modifiers="26", npi=CARDIO),
    line("C-MIX", 2, "P-MIX", "2024-07-26", modifiers="26"),
    line("C-MIX", 3, "P-MIX", "2024-07-26", npi=CARDIO),
    # Two copies of a global line and another provider's 26: one copy stays, billed as TC.
    line("C-GCOPY", 1, "P-GCOPY", "2024-07-26", npi=CARDIO),
    line("C-GCOPY", 2, "P-GCOPY", "2024-07-26", npi=CARDIO),
    line("C-G26", 1, "P-GCOPY", "2024-07-26", modifiers="26"),
    # A global line in a hospital beside another provider's 26: the hospital bills the technical part, so
    # nothing is left for the global line.
    line("C-HG", 1, "P-HG", "2024-07-26", pos="22"),
    line("C-H26", 1, "P-HG", "2024-07-26", modifiers="26", npi=CARDIO, pos="22"),
    # One provider bills the global and both its parts: the global stays, both parts go.
    line("C-ALL", 1, "P-ALL", "2024-07-26", modifiers="26"),
    line("C-ALL", 2, "P-ALL", "2024-07-26", modifiers="TC"),
    line("C-ALL", 3, "P-ALL", "2024-07-26"),
    # 99213 has no professional component: 26 goes, and then line 1 repeats line 2.
    line("C-PC", 1, "P-PC", "2024-07-26", hcpcs="99213", modifiers="26"),
    line("C-PC", 2, "P-PC", "2024-07-26", hcpcs="99213"),
    # One draw billed 25 times on one day (an export that repeats its lines): one copy kept, and each cell
    # lists at most 20 other lines, then how many more.
    # Each copy under a payer of its own: more payers than the Summary lists one by one.
    *({**line("C-MANY", n, "P-MANY", "2024-07-26", hcpcs="36415"), "payer": f"Plan {n:02d}"}
      for n in range(1, 26)),
    # A supply with an MUE of 0 (A4890, status R: payable where covered): no unit is paid, so fewer units fix
    # nothing. And 11010-50 on the claim: bilateral indicator 2, the code already covers both sides.
    line("C-MUE0", 1, "P-MUE0", "2024-07-26", hcpcs="A4890"),
    line("C-MUE0", 2, "P-MUE0", "2024-07-26", hcpcs="11010", modifiers="50"),
    # A global line and another provider's TC, both in a hospital: billed as 26, the global line no longer
    # overlaps the TC, which the facility bills (one change, not the same instruction twice).
    line("C-HT", 1, "P-HT", "2024-07-26", modifiers="TC", pos="22"),
    line("C-HGL", 1, "P-HT", "2024-07-26", npi=CARDIO, pos="22"),
    # An NPI failing its check digit, named by its role: the billing one, and one NPI in both roles (as an 837P
    # without a rendering provider is read).
    line("C-NPIB", 1, "P-NPIB", "2024-07-26", hcpcs="99213", biller="1234567890"),
    line("C-NPI2", 1, "P-NPI2", "2024-07-26", hcpcs="99213", npi="1234567890", biller="1234567890"),
    # Both sides of 70120 on lines of their own (bilateral indicator 3: each side at 100% with 50; MUE 1).
    line("C-BIL3", 1, "P-BIL3", "2024-07-26", hcpcs="70120", modifiers="RT"),
    line("C-BIL3", 2, "P-BIL3", "2024-07-26", hcpcs="70120", modifiers="LT"),
    # A visit billed with TC at a hospital: a visit has no technical part to leave to the facility.
    line("C-VTC", 1, "P-VTC", "2024-07-26", hcpcs="99213", modifiers="TC", pos="22"),
    # 11042-50: bilateral indicator 0, and an MUE of 1 a day leaves no room for a line per side.
    line("C-B0", 1, "P-B0", "2024-07-26", hcpcs="11042", modifiers="50"),
    line("C-B0", 2, "P-B0", "2024-07-26", modifiers="26,TC"),
    # Two visits on claims of their own in the period of one surgery whose claim has nothing to fix.
    line("C-KNEE", 1, "P-KNEE", "2024-07-01", hcpcs="27447", npi=CARDIO),
    line("C-KV1", 1, "P-KNEE", "2024-07-10", hcpcs="99213", npi=CARDIO),
    line("C-KV2", 1, "P-KNEE", "2024-07-20", hcpcs="99215", npi=CARDIO),
    # 11042 bundled into G0245 (indicator 0) and removed: its add-on 11045 has no primary left.
    line("C-ORPH", 1, "P-ORPH", "2024-07-26", hcpcs="G0245"),
    line("C-ORPH", 2, "P-ORPH", "2024-07-26", hcpcs="11042"),
    line("C-ORPH", 3, "P-ORPH", "2024-07-26", hcpcs="11045"),
    # 11045 the day after its primary 11042, same provider: its date is likelier the mistake than a missing
    # primary; and 11045 the same day as another provider's 11042.
    line("C-NEAR", 1, "P-NEAR", "2024-07-25", hcpcs="11042"),
    line("C-NEAR2", 1, "P-NEAR", "2024-07-26", hcpcs="11045"),
    line("C-OTHER", 1, "P-OTHER", "2024-07-26", hcpcs="11042", npi=CARDIO),
    line("C-OTHER", 2, "P-OTHER", "2024-07-26", hcpcs="11045"),
    # 76120-26 bundled into 76125-26 (indicator 1, no bypass modifier) and removed: 76125 is an add-on of edit
    # type 2, which without another service is a review, still payable.
    line("C-T2", 1, "P-T2", "2024-07-26", hcpcs="76125", modifiers="26"),
    line("C-T2", 2, "P-T2", "2024-07-26", modifiers="26"),
    # Lines whose only cause goes with another line's fix: 10060 (010 days) is bundled into 11042 (000 days) and
    # removed, and the visit five days later lies in no period once it is gone; the column 1 line 76120-TC is
    # removed from the professional claim at a hospital, and 76000-26 is no longer billed beside it; the
    # status-T injection 94760's only other service, an assistant's 10060-80, goes.
    line("C-GONE", 1, "P-GONE", "2024-07-10", hcpcs="11042"),
    line("C-GONE", 2, "P-GONE", "2024-07-10", hcpcs="10060"),
    line("C-GONEV", 1, "P-GONE", "2024-07-15", hcpcs="99213"),
    line("C-TCP", 1, "P-TCP", "2024-07-10", modifiers="TC", pos="22"),
    line("C-TCP", 2, "P-TCP", "2024-07-10", hcpcs="76000", modifiers="26", pos="22"),
    line("C-INJ", 1, "P-INJ", "2024-07-10", hcpcs="94760"),
    line("C-INJ", 2, "P-INJ", "2024-07-10", hcpcs="10060", modifiers="80"),
    # Both sides of 70030 (bilateral indicator 3) with an MUE of 2: no MUE finding, but the two lines overlap.
    line("C-B32", 1, "P-B32", "2024-07-10", hcpcs="70030", modifiers="RT"),
    line("C-B32", 2, "P-B32", "2024-07-10", hcpcs="70030", modifiers="LT"),
    # 26 and TC on one line at a hospital: the global line would be denied there too.
    line("C-HPT", 1, "P-HPT", "2024-07-10", modifiers="26,TC", pos="22"),
    # An assistant's 11042-80 (indicator 1: removed) and 11045-80 (indicator 0: a review) beside it.
    line("C-ASA", 1, "P-ASA", "2024-07-10", hcpcs="11042", modifiers="80"),
    line("C-ASA", 2, "P-ASA", "2024-07-10", hcpcs="11045", modifiers="80"),
    # A chain of four (G0406 bundles 90839, which bundles 90870, which bundles 62320; indicator 0): 90839 goes,
    # 90870 stays beside nothing that bundles it, and 62320 goes, bundled into 90870, which stays.
    line("C-CH4", 1, "P-CH4", "2024-07-10", hcpcs="G0406"),
    line("C-CH4", 2, "P-CH4", "2024-07-10", hcpcs="90839"),
    line("C-CH4", 3, "P-CH4", "2024-07-10", hcpcs="90870"),
    line("C-CH4", 4, "P-CH4", "2024-07-10", hcpcs="62320"),
    # 64493 bundled into 11981 and removed: its add-on 64494 goes, and 64495, whose primaries are those two.
    line("C-ADD2", 1, "P-ADD2", "2024-07-10", hcpcs="11981"),
    line("C-ADD2", 2, "P-ADD2", "2024-07-10", hcpcs="64493"),
    line("C-ADD2", 3, "P-ADD2", "2024-07-10", hcpcs="64494"),
    line("C-ADD2", 4, "P-ADD2", "2024-07-10", hcpcs="64495"),
    # Two surgeons each bill 25560-62 (co-surgeon indicator 0): one bills it without 62, the other's line goes.
    line("C-CO1", 1, "P-CO", "2024-07-10", hcpcs="25560", modifiers="62"),
    line("C-CO2", 1, "P-CO", "2024-07-10", hcpcs="25560", modifiers="62", npi=CARDIO),
    # One claim id given to lines of two patients: two claims (docs/RULES.md), each with a deny finding.
    line("C-TWO", 1, "P-TWO-A", "2024-07-10", modifiers="26,TC"),
    line("C-TWO", 2, "P-TWO-B", "2024-07-10", modifiers="26,TC"),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory, reference_db):
    with module_site(tmp_path_factory, reference_db, "worklist") as (work, db):
        result = scrub([SAMPLE, write_csv(work / "conflicts.csv", CONFLICTS)], work / "out", db)
    assert result.exit_code == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def book(run):
    return load_workbook(run.out_dir / "denial-risk-report.xlsx")


def sheet_rows(sheet, first_row=1) -> list[list]:
    return [list(r) for r in sheet.iter_rows(min_row=first_row, values_only=True)]


@pytest.fixture(scope="module")
def worklist(book) -> list[dict]:
    header, *body = sheet_rows(book["Worklist"], 2)
    end = next(i for i, r in enumerate(body) if all(v is None for v in r))
    return [dict(zip(header, r)) for r in body[:end]]


@pytest.fixture(scope="module")
def rows_by_line(worklist) -> dict[tuple[str, int], dict]:
    return {(w["Claim"], w["Line"]): w for w in worklist}


def section(sheet, title: str) -> list[list]:
    found = sheet_rows(sheet)
    start = next(i for i, r in enumerate(found) if r[0] == title) + 1
    end = next((i for i in range(start, len(found)) if all(v is None for v in found[i])), len(found))
    return found[start:end]


def money(value: str) -> Decimal:
    return Decimal(value or "0")


# The instructions and precedence rules live beside the registry; every rule brings its instruction.


def test_every_registered_rule_has_an_instruction_for_any_finding_of_it():
    registered = {rule.id for rule in RULES}
    unconditional = {i.rule_id for i in INSTRUCTIONS if not i.when}
    assert registered - unconditional == set(), "rules without an instruction for every finding"
    assert {i.rule_id for i in INSTRUCTIONS} <= registered
    for rule in registered:
        last = [i for i in INSTRUCTIONS if i.rule_id == rule][-1]
        assert not last.when, f"{rule}: its last instruction must hold whatever the finding"


def test_instructions_name_only_facts_the_worklist_knows():
    for instruction in INSTRUCTIONS:
        template_sql(instruction.text), template_sql(instruction.action)
    with pytest.raises(KeyError, match="no_such_fact"):
        template_sql("{line}: {no_such_fact}")
    assert all(p.title and p.why and p.when for p in PRECEDENCE)


# The lines of the Worklist: what is wrong on which line, and what to do.


def test_each_line_to_fix_has_one_row_with_its_code_modifiers_units_provider_and_explanations(run, worklist):
    flags = run.flags
    deny_claims = {f["claim_id"] for f in flags if f["severity"] == "deny"}
    to_fix = {(f["claim_id"], int(f["line_number"])) for f in flags
              if f["claim_id"] in deny_claims and f["severity"] in ("deny", "review")}
    # And the add-on lines without a finding of their own that go with their primary (see below).
    to_fix |= {("C-ORPH", 3), ("C-ADD2", 3), ("C-ADD2", 4)}
    assert len(worklist) == len(to_fix) and {(w["Claim"], w["Line"]) for w in worklist} == to_fix
    for row in worklist:
        if (row["Claim"], row["Line"]) in {("C-ORPH", 3), ("C-ADD2", 3), ("C-ADD2", 4)}:
            continue
        own = [f for f in flags if (f["claim_id"], int(f["line_number"])) == (row["Claim"], row["Line"])
               and f["severity"] != "info"]
        first = own[0]
        assert (row["Code"], row["Modifiers"] or "", row["Units"], row["Provider NPI"]) == (
            first["hcpcs"], first["modifiers"], float(first["units"]), first["provider_npi"])
        # Each finding's own explanation, not only its rule's generic fix.
        for finding in own:
            assert finding["message"] in row["Explanation (each finding's own)"]
    c16 = next(w for w in worklist if w["Claim"] == "C-16")
    assert (c16["Code"], c16["Modifiers"], c16["Units"], c16["Provider NPI"]) == ("76120", "26", 1, CARDIO)


def test_a_global_line_overlapping_another_providers_26_is_billed_as_tc_and_the_26_kept(rows_by_line):
    c17, c16 = rows_by_line[("C-17", 1)], rows_by_line[("C-16", 1)]
    assert c17["Instruction"] == (
        "C-17 line 1: 76120 global overlaps C-16 line 1 (76120-26, NPI 9876543213, same "
                                  "day): bill C-17 as 76120-TC, or drop it if the technical part was not "
                                  "yours")
    assert c17["Action"] == "bill as TC"
    assert c16["Instruction"] == (
        "C-16 line 1: 76120-26 overlaps C-17 line 1 (76120, NPI 1234567893, same day): "
                                  "keep this line as billed; C-17 line 1 is to be billed as 76120-TC")
    assert c16["Action"] == "keep as billed"
    # Both sides name each other.
    assert c17["Partner lines"] == "C-16 line 1 (76120-26, NPI 9876543213, same day)"
    assert c16["Partner lines"] == "C-17 line 1 (76120, NPI 1234567893, same day)"


def test_the_two_sides_of_a_conflict_between_claims_sort_next_to_each_other(worklist):
    claims = [w["Claim"] for w in worklist]
    for pair in (["C-17", "C-16"], ["C-S1", "C-S2"], ["CLM00150", "CLM00151"]):
        at = [claims.index(c) for c in pair]
        assert sorted(at) == list(range(min(at), min(at) + 2)), pair
    # Each claim's lines sit together, under it.
    blocks = [c for i, c in enumerate(claims) if i == 0 or claims[i - 1] != c]
    assert len(blocks) == len(set(blocks))
    # Within the billing provider's block, the biggest dollars at risk come first (a cluster by its total).
    clusters, seen = [], set()
    for w in worklist:
        if w["Claim"] not in seen:
            seen.add(w["Claim"])
            clusters.append((w["Claim"], w["Claim at risk"]))
    assert clusters[0] == ("C-BIL", 2515.26)  # both knees, 1,257.63 each


def test_one_billers_26_and_tc_over_the_mue_become_one_global_line_not_fewer_units(rows_by_line):
    s1, s2 = rows_by_line[("C-S1", 1)], rows_by_line[("C-S2", 1)]
    combine = ("C-S1 line 1 (76120-26) and C-S2 line 1 (76120-TC) are one service billed by NPI 5550001114: "
               "bill "
               "C-S1 line 1 as 76120 global, without 26 or TC, and remove C-S2 line 1")
    assert s1["Instruction"] == s2["Instruction"] == combine
    assert (s1["Action"], s2["Action"]) == ("bill as global", "remove line")
    assert s1["Resolves"] == s2["Resolves"] == (
        "MOD_SPLIT_SAME_BILLER; also MUE_DOS (One biller's 26 and TC are one global line)")
    assert s1["Also to review"] is None  # the review finding is the instruction here
    # The sample's own split, on one claim, reads the same way.
    sample = rows_by_line[("CLM00153", 1)]
    assert sample["Instruction"].endswith("bill CLM00153 line 1 as 76120 global, without 26 or TC, and "
                                          "remove "
                                          "CLM00153 line 2")
    assert rows_by_line[("CLM00153", 2)]["Action"] == "remove line"


def test_a_duplicate_over_the_mue_keeps_one_copy_and_the_units_follow(rows_by_line):
    for claim, code, rule in (("C-DUP", "76120", "DUP_COMPONENT"), ("C-DX", "10060", "DUP_EXACT")):
        kept, copy = rows_by_line[(claim, 1)], rows_by_line[(claim, 2)]
        assert kept["Action"] == "keep, remove copies" and copy["Action"] == "remove line"
        assert kept["Instruction"].startswith(f"{claim} line 1: {code} is billed again on {claim} line 2")
        assert copy["Instruction"].startswith(f"{claim} line 2: {code} repeats {claim} line 1")
        # The copy goes; its units are not moved onto the line kept, which would break the MUE again.
        assert "units" not in kept["Instruction"] + copy["Instruction"]
        assert kept["Resolves"] == copy["Resolves"] == (
            f"{rule}; also MUE_DOS (Removing the copy clears the units)")


def test_a_global_line_gives_way_to_another_providers_part_whatever_else_is_billed(rows_by_line):
    # Its own 26 goes; the global is billed as TC beside the other provider's 26, which stays.
    assert rows_by_line[("C-MIX", 1)]["Action"] == "remove line"
    assert rows_by_line[("C-MIX", 3)]["Action"] == "bill as TC"
    assert rows_by_line[("C-MIX", 3)]["Instruction"].startswith(
        "C-MIX line 3: 76120 global overlaps C-MIX line 2 (76120-26, NPI 1234567893, same day): bill C-MIX as "
        "76120-TC")
    assert rows_by_line[("C-MIX", 2)]["Instruction"].endswith("C-MIX line 3 is to be billed as 76120-TC")
    # Of two copies of the global, the first stays and is billed as TC; the copy goes.
    assert rows_by_line[("C-GCOPY", 1)]["Action"] == "bill as TC"
    assert rows_by_line[("C-GCOPY", 2)]["Action"] == "remove line"
    assert rows_by_line[("C-G26", 1)]["Instruction"].endswith("C-GCOPY line 1 is to be billed as 76120-TC")


def test_a_global_line_beside_both_its_parts_of_its_own_provider_stays_and_they_go(rows_by_line):
    assert [rows_by_line[("C-ALL", n)]["Action"] for n in (1, 2, 3)] == ["remove line", "remove line",
                                                                          "keep as billed"]
    assert rows_by_line[("C-ALL", 3)]["Instruction"] == (
        "C-ALL line 3: 76120 global overlaps C-ALL line 1 (76120-26, NPI 1234567893, same day) and C-ALL line 2 "
        "(76120-TC, NPI 1234567893, same day) of the same provider: keep this line and remove C-ALL line 1 and "
        "C-ALL line 2")


def test_a_global_line_in_a_hospital_beside_another_providers_26_is_removed(rows_by_line):
    hospital = rows_by_line[("C-HG", 1)]
    assert hospital["Action"] == "remove line"
    assert hospital["Instruction"] == (
        "C-HG line 1: 76120 global at hospital place of service 22 overlaps C-H26 line 1 (76120-26, NPI "
        "9876543213, same day): remove this line; the other provider bills the professional part and the "
        "hospital the technical part")
    assert rows_by_line[("C-H26", 1)]["Instruction"].endswith("C-HG line 1 is to be removed")


def test_a_code_of_mue_0_is_removed_not_cut_to_0_units(rows_by_line):
    row = rows_by_line[("C-MUE0", 1)]
    assert row["Action"] == "remove line"
    assert row["Instruction"] == ("C-MUE0 line 1: A4890 has an MUE of 0 per day: Medicare pays no unit of it; "
                                  "remove this line, or bill the code that describes the service (see the "
                                  "explanation)")


def test_50_on_a_code_that_already_covers_both_sides_is_removed_not_split_into_sides(rows_by_line):
    review = rows_by_line[("C-MUE0", 2)]["Also to review"]
    assert review == ("[review] MOD_BILATERAL_INVALID: C-MUE0 line 2: 11010 already covers both sides and is paid "
                      "once at 100% (bilateral indicator 2): remove 50 and bill 11010 once, on this line")


def test_a_hospital_global_line_beside_a_tc_line_is_told_once_to_bill_26(rows_by_line):
    row = rows_by_line[("C-HGL", 1)]
    assert (row["Action"], row["Instruction"]) == (
        "bill as 26", "C-HGL line 1: 76120 global at hospital place of service 22: bill 76120-26; the hospital "
                      "bills the technical part")
    assert "DUP_COMPONENT (A global line billed as 26 in a hospital leaves the TC line alone)" in row["Resolves"]
    assert rows_by_line[("C-HT", 1)]["Action"] == "remove line"


def test_an_npi_failing_its_check_digit_is_named_by_its_role(rows_by_line):
    assert rows_by_line[("C-NPIB", 1)]["Instruction"] == (
        "C-NPIB line 1: the check digit fails for billing NPI 1234567890: correct it from NPPES")
    assert rows_by_line[("C-NPI2", 1)]["Instruction"] == (
        "C-NPI2 line 1: the check digit fails for rendering and billing NPI 1234567890: correct it from NPPES")


def test_a_line_that_would_repeat_another_once_its_invalid_26_goes_is_removed(rows_by_line):
    row = rows_by_line[("C-PC", 1)]
    assert row["Action"] == "remove line"
    assert row["Instruction"] == ("C-PC line 1: 99213 has PC/TC indicator 0 (RVU25D) and no separate component; "
                                  "without 26 it repeats C-PC line 2: remove this line")


def test_a_copy_of_a_part_beside_another_providers_global_is_removed_and_the_first_kept(rows_by_line):
    assert rows_by_line[("C-DG", 1)]["Action"] == "bill as TC"
    assert rows_by_line[("C-D26", 1)]["Action"] == "keep as billed"
    copy = rows_by_line[("C-D26", 2)]
    assert copy["Action"] == "remove line"
    assert copy["Instruction"].startswith("C-D26 line 2: 76120-26 repeats C-D26 line 1: remove this line")
    assert "MUE_DOS (Removing the copy clears the units)" in copy["Resolves"]


def test_a_line_billed_many_times_lists_twenty_other_lines_and_counts_the_rest(rows_by_line):
    kept = rows_by_line[("C-MANY", 1)]
    copies = ", ".join(f"C-MANY line {n}" for n in range(2, 22))
    assert kept["Action"] == "keep, remove copies"
    assert kept["Instruction"].startswith(f"C-MANY line 1: 36415 is billed again on {copies} and 4 more by NPI ")
    for number in range(2, 26):
        row = rows_by_line[("C-MANY", number)]
        assert row["Action"] == "remove line"
        assert row["Instruction"].startswith(f"C-MANY line {number}: 36415 repeats C-MANY line 1 by NPI ")
    for number in range(1, 26):
        partners = rows_by_line[("C-MANY", number)]["Partner lines"].split("\n")
        # The day's 24 other lines (MUE_DOS): the first 20 by claim and line, then the count of the rest.
        assert partners[-1] == "and 4 more" and len(partners) == 21
        assert f"C-MANY line {number} (" not in "\n".join(partners)
    # By line number as a number: line 2 before line 10, the count of the rest last.
    listed = rows_by_line[("C-MANY", 25)]["Partner lines"].split("\n")
    assert [p.split(" (")[0] for p in listed[:-1]] == [f"C-MANY line {n}" for n in range(1, 21)]


@pytest.mark.slow
def test_a_day_billed_three_thousand_times_is_scrubbed_and_listed_in_brief(tmp_path, reference_db):
    rows = [line(f"C-{n // 50}", n % 50 + 1, "P-ONE", "2024-07-26", hcpcs="36415") for n in range(3000)]
    db = tmp_path / "claimscrub.duckdb"
    db.write_bytes(reference_db.read_bytes())
    result = scrub([write_csv(tmp_path / "repeated.csv", rows)], tmp_path / "out", db)
    assert result.exit_code == 0, result.stderr
    flags = read_csv(result.out_dir / "flags.csv")
    assert sum(f["rule_id"] == "DUP_EXACT" for f in flags) == 3000
    assert sum(f["rule_id"] == "MUE_DOS" for f in flags) == 3000
    header, *body = sheet_rows(load_workbook(result.out_dir / "denial-risk-report.xlsx", read_only=True)
                               ["Worklist"], 2)
    rows = [dict(zip(header, r)) for r in body if r and str(r[0]).startswith("C-")]
    assert len(rows) == 3000
    assert rows[0]["Instruction"].startswith("C-0 line 1: 36415 is billed again on C-0 line 2, ")
    assert " and 2979 more by NPI " in rows[0]["Instruction"]


def test_a_bundled_line_that_is_also_a_duplicate_goes_every_copy_of_it(rows_by_line):
    for number, other in ((2, 3), (3, 2)):
        row = rows_by_line[("C-PTP", number)]
        assert row["Action"] == "remove line"
        assert row["Instruction"] == (
            f"C-PTP line {number}: 76120 is bundled into 92611 on C-PTP line 1 (92611, NPI "
                                      "1234567893, same day) (NCCI edit, no modifier allowed): remove this "
                                      "line")
        assert row["Resolves"] == (
            "PTP_NO_BYPASS; also DUP_COMPONENT (A bundled line goes, every copy of it), "
                                   "MUE_DOS (Removing a bundled line clears its units)")
        assert row["Partner lines"].split("\n") == [
            "C-PTP line 1 (92611, NPI 1234567893, same day)",
            f"C-PTP line {other} (76120, NPI 1234567893, same day)"]


def test_a_visit_bundled_into_a_procedure_is_told_25_never_59(rows_by_line):
    row = rows_by_line[("C-VIS", 2)]
    assert row["Action"] == "remove line"
    assert "append 25 (57 if it was the decision for a major surgery)" in row["Instruction"]
    assert "append XS" not in row["Instruction"]
    assert row["Resolves"] == "PTP_NO_BYPASS; also GLOBAL_EM_IN_PERIOD (A line to remove needs no other fix)"


def test_a_line_bundled_into_a_line_that_goes_stays(rows_by_line):
    # 92611 bundles 76120, which bundles 76000: 76120 goes, and 76000 is no longer billed beside it.
    assert rows_by_line[("C-CHAIN", 2)]["Action"] == "remove line"
    fluoroscopy = rows_by_line[("C-CHAIN", 3)]
    assert fluoroscopy["Action"] == "keep as billed"
    assert fluoroscopy["Resolves"] == "PTP_NO_BYPASS (A line bundled into a removed line stays)"
    # Unless another edit bundles it too: 64483/76000 still applies once 76120 is gone.
    assert rows_by_line[("C-CHAIN2", 2)]["Action"] == "remove line"
    assert rows_by_line[("C-CHAIN2", 3)]["Action"] == "remove line"


def test_a_line_whose_only_cause_goes_with_another_fix_stays(rows_by_line):
    """Each was told to go beside the removal of the line that caused its finding: the biller gave away a visit
    outside any period left, a fluoroscopy no longer billed beside its column 1 line, an injection left alone."""
    assert rows_by_line[("C-GONE", 2)]["Action"] == "remove line"
    visit = rows_by_line[("C-GONEV", 1)]
    assert (visit["Action"], visit["Instruction"], visit["Resolves"]) == (
        "keep as billed", "C-GONEV line 1: keep as billed; GLOBAL_EM_IN_PERIOD clear once C-GONE line 2 is fixed",
        "GLOBAL_EM_IN_PERIOD (A visit after a removed surgery stays)")
    assert rows_by_line[("C-TCP", 1)]["Action"] == "remove line"
    fluoroscopy = rows_by_line[("C-TCP", 2)]
    assert (fluoroscopy["Action"], fluoroscopy["Resolves"]) == (
        "keep as billed", "PTP_NO_BYPASS (A line bundled into a removed line stays)")
    assert rows_by_line[("C-INJ", 2)]["Action"] == "remove line"
    injection = rows_by_line[("C-INJ", 1)]
    assert (injection["Action"], injection["Resolves"]) == (
        "keep as billed", "STATUS_NOT_PAYABLE (An injection left alone stays)")
    # A surgery that goes beside another one whose period still holds the visit, or a column 1 line beside a
    # second edit against the line, leaves the finding: C-SURG3 and C-CHAIN2 above.
    assert rows_by_line[("C-CHAIN2", 3)]["Action"] == "remove line"


def test_a_chain_of_bundles_removes_every_other_line(rows_by_line):
    """62320 was told to stay until 90870 was fixed, and 90870 to stay as billed: both stayed, and 62320 was
    denied as bundled into 90870."""
    assert [rows_by_line[("C-CH4", n)]["Action"] for n in (2, 3, 4)] == ["remove line", "keep as billed",
                                                                        "remove line"]
    assert rows_by_line[("C-CH4", 4)]["Instruction"].startswith(
        "C-CH4 line 4: 62320 is bundled into 90870 on C-CH4 line 3")


def test_an_add_on_of_an_add_on_that_goes_goes_too(rows_by_line):
    """64495 had no row: its primaries 64493 (bundled) and 64494 (an add-on of 64493) both went, and it was
    denied on the corrected claim."""
    last = rows_by_line[("C-ADD2", 4)]
    assert (last["Action"], last["Instruction"]) == (
        "remove line", "C-ADD2 line 4: add-on 64495 loses its primary service: C-ADD2 line 2 (64493), C-ADD2 line 3 "
                       "(64494) go (see their rows), and an add-on without its primary is denied: remove this line "
                       "too, unless another of its primaries by the same provider that day stays")
    assert rows_by_line[("C-ADD2", 3)]["Action"] == "remove line"


def test_co_surgeons_on_a_code_that_permits_none_are_told_which_line_stays(rows_by_line):
    """Both surgeons were told "bill it by one surgeon without 62": followed by both, the code went out twice at
    100%."""
    first, second = rows_by_line[("C-CO1", 1)], rows_by_line[("C-CO2", 1)]
    assert (first["Action"], second["Action"]) == ("remove modifier", "remove line")
    assert "bill it by one surgeon, on this line without 62, and remove the other surgeon's line" in first[
        "Instruction"]
    assert second["Instruction"].endswith("it is billed by one surgeon, on C-CO1 line 1 without 62 (see its row): "
                                          "remove this line")


def test_a_line_removed_for_any_reason_clears_the_days_units(rows_by_line):
    # One biller's 76120-26 and -TC in a hospital: the TC goes (the facility bills it), the 26 stays as billed
    # and its units are not cut.
    part, technical = rows_by_line[("C-HOSP", 1)], rows_by_line[("C-HOSP", 2)]
    assert technical["Action"] == "remove line" and "MUE_DOS (Removing a line clears its units)" in technical[
        "Resolves"]
    assert (part["Action"], part["Instruction"]) == (
        "keep as billed", "C-HOSP line 1: keep as billed; MUE_DOS clear once C-HOSP line 2 is fixed")
    supply = rows_by_line[("C-BUN", 1)]
    assert supply["Action"] == "remove line" and "never paid on its own: remove this line" in supply["Instruction"]
    assert supply["Resolves"] == "STATUS_NOT_PAYABLE; also MUE_DOS (Removing a line clears its units)"


def test_a_day_over_its_mue_keeps_its_first_lines_and_removes_the_rest(rows_by_line):
    """Lines of one unit each over the day's MUE were each told "correct them to 1 in all": an instruction no
    line could follow alone. By claim and line, the first lines keep the MUE's units and the others go."""
    first, second = rows_by_line[("C-BIL2", 1)], rows_by_line[("C-BIL2", 2)]
    # 27447's MUE is of adjudication indicator 2 (policy): no appeal pays past it, and none is offered.
    assert first["Instruction"].endswith("keep this line as billed; the lines after it go (see their rows); units "
                                         "past an MUE of adjudication indicator 2 (policy) are not paid on appeal")
    assert second["Instruction"].endswith("and the lines before this one bill the 1 it allows: remove this line; "
                                          "units past an MUE of adjudication indicator 2 (policy) are not paid on "
                                          "appeal")
    # (Past one of indicator 3, clinical, an appeal with the record is offered: tests/test_nightly.py, 20610.)


def test_each_side_of_a_bilateral_code_on_its_own_line_is_told_to_bill_50(rows_by_line):
    # The side billed first becomes the one line with 50; the other side's line goes.
    first, second = rows_by_line[("C-BIL", 1)], rows_by_line[("C-BIL", 2)]
    assert first["Action"] == "bill as bilateral"
    assert "bill it once as 27447-50 on this line (bilateral indicator 1, paid at 150%) and remove the other " \
           "side's line" in first["Instruction"]
    assert second["Action"] == "remove line"
    assert second["Instruction"].startswith("C-BIL line 2: 27447 is billed for each side (C-BIL line 1, C-BIL line "
                                            "2), 2 units over its MUE of 1 per day: remove this line; the other "
                                            "side's line is billed once as 27447-50")
    # A side beside a line that is no side is no bilateral service: the day's first line keeps the MUE's unit,
    # the line after it goes.
    assert [rows_by_line[("C-BIL2", number)]["Action"] for number in (1, 2)] == ["keep as billed", "remove line"]


def test_both_sides_of_a_bilateral_radiology_code_are_one_line_with_50_not_a_line_and_its_copy(rows_by_line):
    """70120 (bilateral indicator 3: each side at 100% with 50; MUE 1) has a technical component, so its two
    sides are DUP_COMPONENT findings as well: the Worklist kept the right side and removed the left as its
    copy, losing the left side's payment."""
    first, second = rows_by_line[("C-BIL3", 1)], rows_by_line[("C-BIL3", 2)]
    assert (first["Action"], second["Action"]) == ("bill as bilateral", "remove line")
    assert first["Instruction"].startswith("C-BIL3 line 1: 70120-RT and C-BIL3 line 2 (70120-LT, NPI ")
    assert first["Instruction"].endswith("are the two sides of one service: bill it once as 70120-50 on this line "
                                         "(bilateral indicator 3, each side paid at 100%) and remove the other "
                                         "side's line")
    assert "billed once as 70120-50 on C-BIL3 line 1 (bilateral indicator 3" in second["Instruction"]


def test_a_visit_billed_with_tc_at_a_hospital_loses_the_modifier_not_the_line(rows_by_line):
    """A visit has no technical part for the facility to bill: the line was told to go. Its two findings say the
    same fix once (they said "remove modifier + remove modifier", twice in other words)."""
    row = rows_by_line[("C-VTC", 1)]
    assert row["Action"] == "remove modifier"
    assert row["Instruction"] == ("C-VTC line 1: 99213 has PC/TC indicator 0 (RVU25D) and no separate component: "
                                  "remove TC and bill 99213")
    assert row["Resolves"] == ("MOD_PCTC_INVALID; also MOD_TC_IN_HOSPITAL (A modifier the code has no part for goes "
                               "once)")


def test_both_sides_of_a_bilateral_code_over_no_mue_are_one_line_with_50(rows_by_line):
    """70030-RT and -LT, MUE 2: the Worklist kept the right side and removed the left as its copy."""
    first, second = rows_by_line[("C-B32", 1)], rows_by_line[("C-B32", 2)]
    assert (first["Action"], second["Action"]) == ("bill as bilateral", "remove line")
    assert "bill it once as 70030-50 on this line (bilateral indicator 3, each side paid at 100%)" in first[
        "Instruction"]


def test_26_and_tc_on_one_line_at_a_hospital_keep_the_26(rows_by_line):
    """Billed global, as the instruction's first choice said, the line met MOD_GLOBAL_IN_HOSPITAL next."""
    row = rows_by_line[("C-HPT", 1)]
    assert (row["Action"], row["Instruction"]) == (
        "remove modifier", "C-HPT line 1: 76120 carries both 26 and TC at hospital place of service 22: remove TC "
                           "and bill 76120-26; the hospital bills the technical part")


def test_a_bilateral_modifier_on_a_code_of_mue_one_is_not_told_to_split_into_sides(rows_by_line):
    """11042-50, bilateral indicator 0: a line per side, as the instruction offered, passes its MUE of 1."""
    review = rows_by_line[("C-B0", 1)]["Also to review"]
    assert "its MUE of 1 a day allows no line for the other side: remove 50 and bill 11042 once" in review
    assert "RT and LT" not in review


def test_visits_in_one_surgerys_period_sit_together_when_the_surgery_has_nothing_to_fix(worklist):
    """Their claims were linked only through the surgery's claim, which has no row: by their dollars, claims of
    76120 lines sat between the 99215 visit and the 99213 one."""
    claims = [w["Claim"] for w in worklist]
    first = claims.index("C-KV2")
    assert claims[first:first + 2] == ["C-KV2", "C-KV1"]


def test_a_primary_to_remove_says_its_add_on_goes_with_it(rows_by_line):
    """Removed alone, 11042 left 11045 without its primary: the biller who followed the sheet met AOC_NO_PRIMARY
    on the corrected claim."""
    row = rows_by_line[("C-ORPH", 2)]
    assert row["Action"] == "remove line"
    assert row["Instruction"].endswith(
        "With this line goes the primary service of add-on C-ORPH line 3 (11045), which is denied without one: "
        "remove that line too, unless another of its primaries by the same provider that day stays")
    # A line that stays has no such note, nor a line whose add-on is of edit type 2 (a review alone).
    assert "primary service of add-on" not in rows_by_line[("C-VIS", 2)]["Instruction"]
    assert rows_by_line[("C-T2", 2)]["Action"] == "remove line"
    assert "primary service of add-on" not in rows_by_line[("C-T2", 2)]["Instruction"]
    assert ("C-T2", 1) not in rows_by_line or rows_by_line[("C-T2", 1)]["Action"] != "remove line"


def test_an_add_on_left_without_its_primary_has_a_row_that_says_it_goes(rows_by_line):
    """The add-on was named only in its primary's row: 11045 with no finding of its own had no row, and 11045-80
    (assistant indicator 0, a review) had one that said to send it with the record. Worked row by row, both
    were kept, and denied AOC_NO_PRIMARY once the primary was gone."""
    expected = ("add-on 11045 loses its primary service: {primary} goes (see its row), and an add-on without its "
                "primary is denied: remove this line too, unless another of its primaries by the same provider "
                "that day stays")
    for addon, primary in ((("C-ORPH", 3), "C-ORPH line 2 (11042)"), (("C-ASA", 2), "C-ASA line 1 (11042-80)")):
        row = rows_by_line[addon]
        assert (row["Severity"], row["Action"], row["Also to review"]) == ("deny", "remove line", None)
        assert row["Instruction"] == f"{addon[0]} line {addon[1]}: " + expected.format(primary=primary)
        assert row["Patient"] == rows_by_line[(addon[0], addon[1] - 1)]["Patient"]
    assert rows_by_line[("C-ASA", 1)]["Action"] == "remove line"
    # Its dollars are not at risk yet (no finding): the Worklist's dollars still add up to the headline.
    assert rows_by_line[("C-ORPH", 3)]["Dollars at risk"] is None


def test_an_add_on_beside_its_primary_on_another_day_or_of_another_provider_is_corrected_not_given_a_second(
        rows_by_line):
    """Told to bill a primary with it, the biller added a second 11042: the one already billed the day before
    by the same provider, or the same day by another, was never named."""
    told = {key: (row["Action"], row["Instruction"]) for key, row in rows_by_line.items()}
    assert told[("C-NEAR2", 1)] == ("correct line", (
        "C-NEAR2 line 1: add-on 11045 has no primary service by NPI 1234567893 on 2024-07-26, but C-NEAR line 1 "
        "(11042, NPI 1234567893, 2024-07-25) bills one: if this add-on belongs to that service, correct this "
        "line's date of service to match it; otherwise bill one of its primaries with it, or correct the code"))
    other = rows_by_line[("C-OTHER", 2)]
    assert other["Action"] == "correct line"
    assert "but C-OTHER line 1 (11042, NPI 9876543213, 2024-07-26) bills one: if this add-on belongs to that " \
           "service, correct this line's rendering NPI to match it" in other["Instruction"]
    # With no primary nearby, the primary is what is missing.
    assert rows_by_line[("C-AOC", 1)]["Action"] == "add primary"


def test_rules_beyond_76120_get_line_specific_instructions(rows_by_line):
    assert rows_by_line[("C-AOC", 1)]["Instruction"] == (
        "C-AOC line 1: add-on G0514 has no primary service by NPI 1234567893 on 2024-07-26: bill one of its "
        "primaries (G0513) with it, or correct the code")
    assert rows_by_line[("C-EM", 1)]["Instruction"] == (
        "C-EM line 1: visit 99213 on 2024-07-15 falls in the global period of 27447 on 2024-07-01 (C-SURG "
        "line 1, "
        "NPI 1234567893): append 24 (or FT) only if the visit was unrelated to the surgery and the record "
        "shows it; otherwise remove it")
    assert rows_by_line[("C-EM", 1)]["Partner lines"] == "C-SURG line 1 (27447, NPI 1234567893, 2024-07-01)"
    two = rows_by_line[("C-SURG3", 2)]["Instruction"]
    assert "global period of 10060 on 2024-07-01" in two and "append 24 (or FT)" in two
    assert ("it also lies in the period of another surgery (see the explanation), which needs its own: 24 after "
            "the surgery's day, 25 on it, 57 for the decision for a major surgery, or FT for a visit unrelated "
            "to every one of them") in two
    assert rows_by_line[("C-ASST", 1)]["Instruction"] == (
        "C-ASST line 1: Medicare pays no assistant at surgery for 10060 (assistant indicator 1): remove this "
        "80 line")
    assert rows_by_line[("CLM00141", 1)]["Instruction"] == (
        "CLM00141 line 1: 76120 2 unit(s) here; the patient's units on 2024-07-10 by NPI 1234567893 "
        "(CLM00141 line 1) "
        "add up to 2, over its MUE of 1 per day: correct this line to 1 unit(s), or appeal with the record if "
        "the service was repeated")
    assert rows_by_line[("CLM00155", 1)]["Instruction"] == (
        "CLM00155 line 1: the check digit fails for rendering NPI 1234567890: correct it from NPPES")


def test_no_claim_gets_two_instructions_that_contradict_each_other(worklist, rows_by_line):
    by_claim = defaultdict(list)
    for row in worklist:
        by_claim[row["Claim"]].append(row)
        actions = row["Action"].split(" + ")
        # A line to remove is told nothing else; a line is never told both to stay and to go.
        assert "remove line" not in actions or actions == ["remove line"], row
        if row["Resolves"] and "MUE_DOS (" in row["Resolves"]:
            assert "correct them to" not in (row["Instruction"] or ""), row
    lines = {f"{claim} line {number}": row for (claim, number), row in rows_by_line.items()}
    for row in worklist:
        text = row["Instruction"] or ""
        # What one row says of another line, that line's own row says too.
        for other in re.findall(r"and remove (\S+ line \d+)", text):
            assert lines[other]["Action"] == "remove line", (row, other)
        for other, code in re.findall(r"; (\S+ line \d+) is to be billed as (\S+)", text):
            assert lines[other]["Action"] == f"bill as {code.split('-')[1]}", (row, other)
        for copies in re.findall(r"is billed again on (.+?)(?: by NPI \d+)?: keep this line", text):
            for other in re.sub(r" and \d+ more$", "", copies).split(", "):
                assert lines[other]["Action"] == "remove line", (row, other)
    for claim, rows in by_claim.items():
        kept = [r for r in rows if r["Action"].startswith("keep")]
        removed = [r for r in rows if r["Action"] == "remove line"]
        assert not {(r["Line"]) for r in kept} & {(r["Line"]) for r in removed}, claim


def test_review_items_appear_as_text_beside_the_deny_items_marked_review(run, rows_by_line, worklist):
    review = rows_by_line[("CLM00147", 1)]
    assert review["Severity"] == "review" and review["Action"] == "review"
    assert review["Dollars at risk"] is None
    assert review["Also to review"] == (
        "[review] RECORDING_EVIDENCE: CLM00147 line 1: 76120 billed with fluoroscopy 76000 (CLM00147 line "
        "2): "
        "confirm the report shows a permanent cine or video recording; without one, 76120 is not supported")
    explanation = review["Explanation (each finding's own)"]
    assert "RECORDING_EVIDENCE (review): 76120 billed with fluoroscopy" in explanation
    assert rows_by_line[("CLM00147", 2)]["Action"] == "remove line"


def test_the_caption_counts_the_lines_to_fix_apart_from_those_to_review(book, worklist):
    """A deny line kept as billed, its findings settled by the fix of other lines, was counted "to fix"."""
    to_fix = sum(w["Severity"] == "deny" and w["Action"] != "keep as billed" for w in worklist)
    kept = sum(w["Severity"] == "deny" and w["Action"] == "keep as billed" for w in worklist)
    assert 0 < to_fix < len(worklist) and kept > 0
    # A claim id given to two patients (C-TWO) is two claims.
    claims = len({(w["Claim"], w["Patient"]) for w in worklist})
    assert claims == len({w["Claim"] for w in worklist}) + 1
    assert book["Worklist"]["A1"].value.startswith(
        f"{len(worklist):,} lines on the {claims:,} claims with a deny finding not dismissed or fixed: "
        f"{to_fix:,} to fix, {kept:,} kept as billed once the others are, the rest to review; ")
    assert "CLM00148" not in {w["Claim"] for w in worklist}  # review findings only: on the Findings sheet


def test_the_closing_note_lists_each_precedence_rule_and_why(book, worklist):
    found = sheet_rows(book["Worklist"], 3 + len(worklist))
    assert all(v is None for v in found[0])
    note = [r[0] for r in found[1:]]
    assert note[0].startswith("How the Worklist chooses one instruction where findings share a cause")
    assert note[1:] == [f"{p.title}: {p.why}." for p in PRECEDENCE] + [f"{t}: {w}." for t, w in SIDE_RULES]
    assert book["Worklist"].auto_filter.ref == f"A2:S{len(worklist) + 2}"  # the note is outside the filter


# The Summary's numbers, cell by cell against flags.csv.


def _once(flags, key) -> dict:
    """Dollars at risk per key, each (key, line) counted once."""
    lines = {(key(f), f["claim_id"], f["line_number"]): money(f["dollars_at_risk"]) for f in flags}
    totals = defaultdict(Decimal)
    for (k, _, _), amount in lines.items():
        totals[k] += amount
    return dict(totals)


def test_the_summary_reconciles_with_flags_csv_cell_by_cell(run, book, worklist):
    flags = run.flags
    deny = [f for f in flags if f["severity"] == "deny"]
    headline = _once(deny, lambda f: "all")["all"]
    summary = book["Summary"]
    facts = {r[0]: r[1] for r in sheet_rows(summary) if r[0]}
    assert Decimal(str(facts["Dollars at risk of denial"])) == headline
    assert facts["Lines with a deny finding"] == len({(f["claim_id"], f["line_number"]) for f in deny})
    # A claim id given to two patients is two claims.
    claims = {(f["claim_id"], run.line(f["claim_id"], f["line_number"])["patient"]) for f in deny}
    assert len(claims) == len({f["claim_id"] for f in deny}) + 1
    assert facts["Claims with a deny finding"] == len(claims)
    # Deny lines without a price (99214-26 among them) are said: their dollars count as 0.00.
    unpriced = {(f["claim_id"], f["line_number"]) for f in deny
                if run.line(f["claim_id"], f["line_number"])["expected_allowed"] == ""}
    assert ("C-NP", "1") in unpriced
    assert facts["Of those lines, not priced here (counted at $0.00)"] == len(unpriced)
    assert sum(Decimal(str(w["Dollars at risk"] or 0)) for w in worklist) == headline

    categories = section(summary, "Findings and dollars at risk of denial by category (a line can fall under "
                                  "several categories)")
    by_category = _once(deny, lambda f: f["category"])
    for category, findings, deny_findings, dollars in (r[:4] for r in categories[1:-1]):
        assert findings == sum(f["category"] == category for f in flags)
        assert deny_findings == sum(f["category"] == category for f in deny)
        assert Decimal(str(dollars)) == by_category.get(category, 0)
    assert sum(Decimal(str(r[3])) for r in categories[1:-1]) > headline  # one line, several categories
    assert categories[-1][:4] == ["All findings; dollars with each line counted once", len(flags), len(deny),
                                  float(headline)]

    severities = section(summary, "Findings and dollars by severity (a line counts under each; info dollars: no "
                                  "money at stake)")
    by_severity = _once(flags, lambda f: f["severity"])
    for severity, findings, dollars in (r[:3] for r in severities[1:4]):
        assert findings == sum(f["severity"] == severity for f in flags)
        assert Decimal(str(dollars)) == by_severity.get(severity, 0)

    rules = section(summary, "Top rules by dollars at risk of denial (a line can fall under several rules)")
    by_rule = _once(deny, lambda f: f["rule_id"])
    ranked = sorted(by_rule, key=lambda r: (-by_rule[r], -sum(f["rule_id"] == r for f in deny), r))
    assert rules[0][:5] == ["Rule", "Category", "Severity", "Deny findings", "Dollars at risk"]
    *listed, rest = rules[1:-1]
    for rule, _, severity, findings, dollars in (r[:5] for r in listed):
        assert severity == "deny" and findings == sum(f["rule_id"] == rule for f in deny)
        assert Decimal(str(dollars)) == by_rule[rule]
    assert [r[0] for r in listed] == ranked[:10]
    # The rules past the first ten on one row: the rows then add up to every deny finding.
    assert len(ranked) > 10 and rest[0] == f"{len(ranked) - 10} other rules"
    assert rest[3] == sum(f["rule_id"] in ranked[10:] for f in deny)
    assert Decimal(str(rest[4])) == sum(by_rule[r] for r in ranked[10:])
    assert sum(r[3] for r in rules[1:-1]) == len(deny)
    assert rules[-1][0] == "All deny findings; dollars with each line counted once"
    assert rules[-1][4] == float(headline)

    for title, column in (("Top providers by dollars at risk (a claim with several providers counts under each)",
                           "provider_npi"),
                          ("Top payers by dollars at risk (a claim with several payers counts under each)", "payer")):
        table = section(summary, title)
        totals = _once(deny, lambda f: f[column])
        ranked = sorted(totals, key=lambda name: (-totals[name], name))
        listed = table[1:-1]
        if len(ranked) > 10:
            # The rest on one row, so that the rows add up to the total below them.
            *listed, rest = listed
            assert rest[0] == f"{len(ranked) - 10} other {column.split('_')[0]}s"
            assert Decimal(str(rest[3])) == sum(totals[name] for name in ranked[10:])
        assert [r[0] for r in listed] == ranked[:10]
        for name, claims, findings, dollars in (r[:4] for r in listed):
            assert Decimal(str(dollars)) == totals[name]
            assert claims == len({(f["claim_id"], run.line(f["claim_id"], f["line_number"])["patient"])
                                  for f in deny if f[column] == name})
        assert sum(Decimal(str(r[3])) for r in table[1:-1]) == headline
        assert table[-1][3] == float(headline) == float(sum(totals.values()))


def test_each_summary_figure_is_the_sum_of_the_findings_sheet_under_the_filter_its_note_names(run, book):
    header, *findings = sheet_rows(book["Findings"], 2)
    findings = [dict(zip(header, r)) for r in findings]
    assert len(findings) == len(run.flags)  # every finding, as flags.csv
    note = section(book["Summary"], "How the numbers add up: each figure is the sum of Dollars at risk on "
                                    "the Findings sheet under this filter")
    assert note[0][:3] == ["Figure", "Dollars", "Findings sheet filter"]
    checked = 0
    for figure, dollars, described in (r[:3] for r in note[1:]):
        # The split by decision (one filter per decision, "or" among its words): tests/test_review.py.
        if dollars is None or described.startswith("not a finding") or figure.startswith("Review decision"):
            continue
        filters = dict(part.split(" = ") for part in described.split(";")[0].split(", "))
        total = sum(Decimal(str(f["Dollars at risk"])) for f in findings
                    if all(str(f[column]) == value for column, value in filters.items()))
        assert total == Decimal(str(dollars)), figure
        checked += 1
    assert checked >= 10


# Where a run's files came from, for the trend.


@pytest.mark.parametrize("name, key", [
    ("claims_2026-05-12.csv", "claims.csv"), ("claims-20260512.csv", "claims.csv"),
    ("Claims 05-12-2026.CSV", "claims.csv"), ("2026_05_12_claims.csv", "claims.csv"),
    ("claims.05122026.xlsx", "claims.xlsx"), ("radiology_export_20260512_v2.csv", "radiology_export_v2.csv"),
    ("claims_sample.csv", "claims_sample.csv"), ("batch_123456789.csv", "batch_123456789.csv"),
    ("20260512.csv", "dated.csv"),
])
def test_a_files_source_is_its_name_without_dates(name, key):
    assert name_without_dates(name) == key


def test_a_runs_source_names_each_file_once_in_order():
    names = ["radiology_2026-05-12.csv", "procedure_2026-05-12.csv", "radiology_2026-05-13.csv"]
    assert source_key(names) == "files procedure.csv; radiology.csv"
