"""The labeled corpus: every rule of RULES.md with lines where it must fire and lines just outside it.

All scenarios go through one real `claimscrub scrub` run; each scenario has its own patient, so scenarios
cannot meet in one encounter unless they mean to. Expectations are the complete set of findings of each
line: a missing finding fails recall, an extra one fails precision.

Code facts used here come from the bundled releases (RVU25D, PTP 2024Q2/Q3, MUE 2024Q2/Q3): e.g. 76120 is
PC/TC 1 with MUE 1 (indicator 3); PTP 92611/76120 has modifier indicator 0 and 76120/76000 indicator 1;
81105/0353U is active in 2024Q2 and deleted 2024-06-30 in 2024Q3. The 2025Q1 edits come from a hand-made
release in tests/fixtures (indicator 9, a mid-quarter deletion, a future effective date).
"""

import shutil
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import pytest

from assets.rules import RULES
from reference.loaders import Release, load_release

from .engine import engine_scrub
from .helpers import write_csv

FIXTURES = Path(__file__).parent / "fixtures"
NPI_A = "1234567893"   # valid check digits
NPI_B = "9876543213"
NPI_G = "5550001114"   # billing group
NPI_H = "1112223338"
Q3 = "2024-07-15"

ROWS: list[dict] = []
EXPECT: dict[tuple[str, int], set[str]] = {}


def line(claim: str, n: int, patient: str, code: str, expect: set[str], *, mods: str = "", units="1",
         dos: str = Q3, rendering: str = NPI_A, billing: str = NPI_G, pos: str = "11",
         claim_type: str = "professional", dx: str = "R13.10", **extra) -> None:
    ROWS.append(dict(claim_id=claim, line_number=n, patient_id=patient, date_of_service=dos, hcpcs=code,
                     modifiers=mods, units=units, rendering_npi=rendering, billing_npi=billing,
                     place_of_service=pos, claim_type=claim_type, diagnosis_1=dx, **extra))
    EXPECT[(claim, n)] = expect


# --- units ---------------------------------------------------------------------------------------------
# G0514 is also an add-on code (AOC type 1) billed here without its primary.
line("U1", 1, "PU1", "G0514", {"MUE_LINE", "AOC_NO_PRIMARY"}, units="2")    # MUE 1, indicator 1
line("U2", 1, "PU2", "G0514", {"AOC_NO_PRIMARY"}, units="1")                 # at the limit
line("U3", 1, "PU3", "10005", {"MUE_DOS"}, mods="RT")                        # MUE 1, indicator 2: the day adds up
line("U3", 2, "PU3", "10005", {"MUE_DOS"}, mods="LT")
line("U4", 1, "PU4", "10005", set(), mods="RT")                               # another provider's line
line("U4", 2, "PU4", "10005", set(), mods="LT", rendering=NPI_B)
line("U5", 1, "PU5", "10005", set(), mods="RT")                               # another day
line("U5", 2, "PU5", "10005", set(), mods="LT", dos="2024-07-16")
line("U6", 1, "PU6", "76120", {"MUE_DOS"}, units="2")                        # indicator 3 on one line
# J0716 in MUE 2024Q2: 4 per day (indicator 3) for practitioners, 4 per line (indicator 1) for outpatient
# hospitals. The hospital's 3 units add to the physician's 2 on the day: only the per-day line is flagged.
line("U10", 1, "PU10", "J0716", {"DUP_EXACT", "STATUS_NOT_PAYABLE"}, units="3", dos="2024-05-01", pos="22",
     claim_type="institutional")
line("U10b", 1, "PU10", "J0716", {"DUP_EXACT", "STATUS_NOT_PAYABLE", "MUE_DOS"}, units="2", dos="2024-05-01")
line("U7", 1, "PU7", "99213", set(), units="2")                               # MUE 2: at the limit

# --- bundling ------------------------------------------------------------------------------------------
line("B1", 1, "PB1", "92611", set())
line("B1", 2, "PB1", "76120", {"PTP_NO_BYPASS"})                             # indicator 0
line("B2", 1, "PB2", "92611", set())
line("B2", 2, "PB2", "76120", {"PTP_NO_BYPASS"}, mods="59")                  # indicator 0: 59 cannot help
line("B3", 1, "PB3", "76120", {"RECORDING_EVIDENCE"})
line("B3", 2, "PB3", "76000", {"PTP_NO_BYPASS"})                             # indicator 1, no bypass
line("B4", 1, "PB4", "76120", {"RECORDING_EVIDENCE"}, mods="XS")
line("B4", 2, "PB4", "76000", {"PTP_BYPASSED"})                              # bypass on the other line
line("B5", 1, "PB5", "76120", {"RECORDING_EVIDENCE"})
line("B5", 2, "PB5", "76000", set(), rendering=NPI_B)                         # another provider
line("B6", 1, "PB6", "76120", set())
line("B6", 2, "PB6", "76000", set(), dos="2024-07-16")                        # another day
line("B7", 1, "PB7", "93452", set())                                          # cardiac cath: no PTP pair with 76120
line("B7", 2, "PB7", "76120", set())
line("B8a", 1, "PB8", "92611", set())                                         # the pair split over two claims
line("B8b", 1, "PB8", "76120", {"PTP_NO_BYPASS"})
line("B9", 1, "PB9", "81105", {"STATUS_NOT_PAYABLE"}, dos="2024-06-14")      # 2024Q2: edit active
line("B9", 2, "PB9", "0353U", {"PTP_NO_BYPASS", "CODE_NOT_IN_FEE_SCHEDULE"}, dos="2024-06-14")
line("B10", 1, "PB10", "81105", {"STATUS_NOT_PAYABLE"})                       # 2024Q3: deleted 2024-06-30
line("B10", 2, "PB10", "0353U", {"CODE_NOT_IN_FEE_SCHEDULE", "MUE_NOT_PUBLISHED"})  # dropped from 2024Q3 MUE
# Hand-made 2025Q1 release: 76120/76000 indicator 9, 92611/76120 deleted 2025-01-31, 71046/99213 from 2025-03-01.
line("B11", 1, "PB11", "76120", {"RECORDING_EVIDENCE"}, dos="2025-02-10")
line("B11", 2, "PB11", "76000", set(), dos="2025-02-10")                      # indicator 9: not applied
line("B12", 1, "PB12", "92611", set(), dos="2025-01-31")
line("B12", 2, "PB12", "76120", {"PTP_NO_BYPASS"}, dos="2025-01-31")         # the deletion day still counts
line("B13", 1, "PB13", "92611", set(), dos="2025-02-01")
line("B13", 2, "PB13", "76120", set(), dos="2025-02-01")                      # deleted the day before
line("B14", 1, "PB14", "71046", set(), dos="2025-02-28")
line("B14", 2, "PB14", "99213", set(), dos="2025-02-28")                      # not yet effective
line("B15", 1, "PB15", "71046", set(), dos="2025-03-03")
line("B15", 2, "PB15", "99213", {"PTP_NO_BYPASS"}, dos="2025-03-03")         # effective
line("B16", 1, "PB16", "71046", set(), dos="2025-03-03", mods="XU")
line("B16", 2, "PB16", "99213", {"PTP_BYPASSED"}, dos="2025-03-03")

# --- modifiers -----------------------------------------------------------------------------------------
line("M1", 1, "PM1", "76120", {"MOD_26_AND_TC"}, mods="26,TC")
line("M2", 1, "PM2", "99213", {"MOD_PCTC_INVALID"}, mods="26")              # PC/TC 0
line("M3", 1, "PM3", "99213", {"MOD_PCTC_INVALID"}, mods="TC")
line("M4", 1, "PM4", "93010", {"MOD_PCTC_INVALID"}, mods="26")              # PC/TC 2: professional only
line("M5", 1, "PM5", "93010", {"MOD_PCTC_INVALID"}, mods="TC")
line("M6", 1, "PM6", "76120", set(), mods="26")                               # PC/TC 1: fine
line("M7", 1, "PM7", "76120", {"MOD_GLOBAL_IN_HOSPITAL"}, pos="21")
line("M8", 1, "PM8", "76120", set(), mods="26", pos="21")
line("M9", 1, "PM9", "76120", set(), pos="21", claim_type="institutional")   # the hospital's own claim
line("M10", 1, "PM10", "76120", set(), pos="24")                              # ASC: facility, not hospital
line("M11", 1, "PM11", "76120", {"MOD_TC_IN_HOSPITAL"}, mods="TC", pos="22")
line("M12", 1, "PM12", "99213", set(), pos="22")                              # PC/TC 0 in a hospital
line("M13", 1, "PM13", "76120", {"MOD_SPLIT_SAME_BILLER"}, mods="26")       # one biller, two renderers
line("M13", 2, "PM13", "76120", {"MOD_SPLIT_SAME_BILLER"}, mods="TC", rendering=NPI_B)
line("M14", 1, "PM14", "76120", set(), mods="26")                             # two billers split it: right
line("M14", 2, "PM14", "76120", set(), mods="TC", rendering=NPI_B, billing=NPI_H)
line("M15", 1, "PM15", "71046", {"MOD_BYPASS_UNNEEDED"}, mods="59")
line("M16", 1, "PM16", "71046", {"MOD_BYPASS_UNNEEDED"}, mods="XE")         # no edit with 76120 either
line("M16", 2, "PM16", "76120", set())
line("M17", 1, "PM17", "99213", set(), mods="25")                             # 25 is not 59/X

# --- duplicates ----------------------------------------------------------------------------------------
line("D1a", 1, "PD1", "76120", {"DUP_COMPONENT"}, billing=NPI_H)              # global overlaps 26
line("D1b", 1, "PD1", "76120", {"DUP_COMPONENT"}, mods="26", rendering=NPI_B)
line("D2a", 1, "PD2", "76120", {"DUP_COMPONENT"}, mods="26")
line("D2b", 1, "PD2", "76120", {"DUP_COMPONENT"}, mods="26", rendering=NPI_B, billing=NPI_H)
line("D3a", 1, "PD3", "76120", set(), mods="TC", billing=NPI_H)              # 26 and TC do not overlap
line("D3b", 1, "PD3", "76120", set(), mods="26", rendering=NPI_B)
line("D4", 1, "PD4", "76120", {"MUE_DOS"})                                   # 76 repeat: no duplicate
line("D4", 2, "PD4", "76120", {"MUE_DOS"}, mods="76")
line("D5a", 1, "PD5", "76120", set())                                         # 77 repeat by another physician
line("D5b", 1, "PD5", "76120", set(), mods="77", rendering=NPI_B)
line("D6a", 1, "PD6", "76120", {"DUP_COMPONENT", "MUE_DOS"})                 # two identical lines
line("D6b", 1, "PD6", "76120", {"DUP_COMPONENT", "MUE_DOS"})
line("D7", 1, "PD7", "99213", {"DUP_EXACT"})
line("D7", 2, "PD7", "99213", {"DUP_EXACT"})
line("D8", 1, "PD8", "99213", set())                                          # another provider
line("D8", 2, "PD8", "99213", set(), rendering=NPI_B)
line("D9", 1, "PD9", "99213", set())                                          # another modifier set
line("D9", 2, "PD9", "99213", set(), mods="25")
line("D10", 1, "PD10", "99213", set())
line("D10", 2, "PD10", "99213", set(), mods="76")
line("D11", 1, "PD11", "99213", set())
line("D11", 2, "PD11", "99213", set(), dos="2024-07-16")

# --- coverage, data, documentation, pricing ------------------------------------------------------------
line("S1", 1, "PS1", "20930", {"STATUS_NOT_PAYABLE", "MUE_DOS", "AOC_NO_PRIMARY"})  # status B, MUE 0, add-on
line("S2", 1, "PS2", "0001F", {"STATUS_NOT_PAYABLE", "MUE_NOT_PUBLISHED"})  # status I
line("S2b", 1, "PS2b", "9999F", {"STATUS_NOT_PAYABLE", "CODE_NOT_IN_FEE_SCHEDULE", "MUE_NOT_PUBLISHED"})
line("S3", 1, "PS3", "0275T", {"STATUS_NOT_PAYABLE"})                        # status R: review
line("S4", 1, "PS4", "0042T", {"STATUS_NOT_PAYABLE"})                        # status C: info, not priced
line("S5", 1, "PS5", "99213", set())                                          # status T with another service
line("S5", 2, "PS5", "G0117", {"STATUS_NOT_PAYABLE", "PTP_NO_BYPASS"})  # and 99213/G0117 bundles it
line("S6", 1, "PS6", "G0117", set())                                          # status T alone: payable
line("S7", 1, "PS7", "99999", {"CODE_NOT_IN_FEE_SCHEDULE", "MUE_NOT_PUBLISHED"})
# Status T beside a carrier-priced service (C) of the same provider: another fee-schedule service that day.
line("S8", 1, "PS8", "76125", {"STATUS_NOT_PAYABLE"})                        # C: info, not priced
line("S8", 2, "PS8", "96523", {"STATUS_NOT_PAYABLE", "PTP_NO_BYPASS"})     # T, and 76125/96523 bundles it
# Status T billed twice and nothing else: the same service again (a duplicate), not another service.
line("S12", 1, "PS12", "36591", {"DUP_EXACT"})
line("S12", 2, "PS12", "36591", {"DUP_EXACT"})
# 86153 is listed only with a 26 row (PC/TC 6): in the fee schedule, and TC cannot be used with it.
line("S9", 1, "PS9", "86153", {"MOD_PCTC_INVALID"}, mods="TC")
line("S10", 1, "PS10", "86153", set())                                       # no row of its own: not priced
line("S11", 1, "PS11", "86153", set(), mods="26")                            # its own row: priced
line("X1", 1, "PX1", "99213", {"DX_MISSING"}, dx="")
line("X2", 1, "PX2", "99213", {"DX_MISSING"}, dx="123.4")
line("X3", 1, "PX3", "99213", set(), dx="r1310")                              # lower case, no dot: fine
line("X7", 1, "PX7", "99213", set())                                          # the claim's diagnosis covers
line("X7", 2, "PX7", "71046", set(), dx="")                                   # the line that repeats none
line("X8", 1, "PX8", "99213", {"DX_MISSING"}, dx="R13.10")                   # one malformed diagnosis puts
line("X8", 2, "PX8", "71046", {"DX_MISSING"}, dx="XYZ")                      # the whole claim at risk
line("X9", 1, "PX9", "99213", {"DX_MISSING"}, dx="I1.0")                     # a dot inside the category
line("X10", 1, "PX10", "99213", set(), dx="i10.")                             # a dot after it: I10
line("X11", 1, "PX11", "99213", {"DX_MISSING"}, dx="R13.1.0")               # a second dot
line("X12", 1, "PX12", "99213", {"DX_MISSING"}, dx="R13..10")               # two dots after the category
line("X13", 1, "PX13", "99213", {"DX_MISSING"}, dx="R13.10.")               # a dot after the code
line("X14", 1, "PX14", "99213", set(), dx="R13.10")                         # the one dot where it belongs
line("X15", 1, "PX15A", "99213", {"DX_MISSING"}, dx="")                      # one claim id, two patients: two
line("X15", 2, "PX15B", "71046", set(), dx="R13.10")                         # claims, each with its own dx
line("X4", 1, "PX4", "99213", {"NPI_INVALID"}, rendering="1234567890")
line("X5", 1, "PX5", "99213", {"NPI_INVALID"}, billing="555000111")
line("X6", 1, "PX6", "99213", set(), rendering="")                            # blank rendering: billing serves
line("X16", 1, "PX16", "99213", {"NPI_INVALID"}, rendering="1234567890", billing="1234567890")  # one NPI, both
line("L1", 1, "PL1", "76120", set(), locality="01112-05")                   # San Francisco GPCIs
line("L2", 1, "PL2", "76120", set(), service_zip="94103")                     # the same locality by ZIP
line("L3", 1, "PL3", "76120", set(), service_zip="35203")                     # Alabama by ZIP
line("L4", 1, "PL4", "76120", set(), locality="01112-05", service_zip="35203")  # the locality wins
line("L5", 1, "PL5", "76120", set(), locality="99999-99")                   # no such locality: said
line("L6", 1, "PL6", "76120", set(), service_zip="00000")                     # no such ZIP: said
line("I1", 1, "PI1", "70450", {"MPPR_IMAGING"})                              # the lower-priced imaging code
line("I2", 1, "PI1", "71250", set())
# One code's 26 and TC halves are one procedure, not two: no reduction (the split itself is a finding).
line("I3", 1, "PI3", "70450", {"MOD_SPLIT_SAME_BILLER"}, mods="26")
line("I3", 2, "PI3", "70450", {"MOD_SPLIT_SAME_BILLER"}, mods="TC")
# Codes rank by their per-unit amount: two units of 70450 are the bigger line, 71250 the dearer code.
line("I4", 1, "PI4", "70450", {"MPPR_IMAGING"}, units="2")
line("I4", 2, "PI4", "71250", set())
# Two units of one imaging code alone: one code, no reduction here.
line("I5", 1, "PI5", "70450", set(), units="2")
# Another rendering provider's imaging code the same day: another session.
line("I6", 1, "PI6", "70450", set())
line("I6", 2, "PI6", "71250", set(), rendering=NPI_B)

RULE_SEVERITY = {"S3": "review", "S4": "info", "B4": "review", "M13": "review", "I1": "info"}


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory, reference_db):
    work = tmp_path_factory.mktemp("corpus")
    db = work / "claimscrub.duckdb"
    shutil.copyfile(reference_db, db)
    con = duckdb.connect(str(db))
    load_release(con, Release(id="PTP TEST 2025Q1", table="ptp", layout="ptp_txt",
                              effective_start=date(2025, 1, 1), effective_end=date(2025, 3, 31),
                              files=[FIXTURES / "ptp_handmade_2025Q1.txt"], origin="test"))
    con.close()
    export = write_csv(work / "corpus.csv", ROWS)
    run = engine_scrub([export], work / "out", db)
    assert run.exit_code == 0, run.stderr
    return run


@pytest.mark.parametrize("claim, n", sorted(EXPECT), ids=[f"{c}-{n}" for c, n in sorted(EXPECT)])
def test_each_line_gets_exactly_its_findings(corpus_run, claim, n):
    assert corpus_run.findings(claim, n) == EXPECT[(claim, n)]


def test_every_graded_rule_fires_somewhere_in_the_corpus(corpus_run):
    fired = {f["rule_id"] for f in corpus_run.flags}
    assert fired >= {"MUE_LINE", "MUE_DOS", "PTP_NO_BYPASS", "PTP_BYPASSED", "MOD_26_AND_TC", "MOD_PCTC_INVALID",
                     "MOD_GLOBAL_IN_HOSPITAL", "MOD_TC_IN_HOSPITAL", "MOD_SPLIT_SAME_BILLER",
                     "MOD_BYPASS_UNNEEDED", "DUP_COMPONENT", "DUP_EXACT", "STATUS_NOT_PAYABLE",
                     "CODE_NOT_IN_FEE_SCHEDULE", "MUE_NOT_PUBLISHED", "DX_MISSING", "NPI_INVALID",
                     "RECORDING_EVIDENCE", "MPPR_IMAGING"}


def test_each_finding_takes_a_severity_and_carc_its_rule_lists_on_the_rules_sheet(corpus_run):
    registry = {rule.id: rule for rule in RULES}
    for finding in corpus_run.flags:
        rule = registry[finding["rule_id"]]
        assert finding["severity"] in (rule.severity, *rule.also_severity), finding
        assert finding["carc"] in ("", rule.carc, *rule.also_carc), finding


def test_severity_category_and_carc_follow_the_rule_book(corpus_run):
    def flag(claim, rule):
        return next(f for f in corpus_run.flags if f["claim_id"] == claim and f["rule_id"] == rule)

    assert (flag("U1", "MUE_LINE")["severity"], flag("U1", "MUE_LINE")["carc"]) == ("deny", "151")
    assert (flag("B1", "PTP_NO_BYPASS")["category"], flag("B1", "PTP_NO_BYPASS")["carc"]) == ("bundling", "97")
    assert flag("B4", "PTP_BYPASSED")["severity"] == "review"
    assert (flag("M1", "MOD_26_AND_TC")["category"], flag("M1", "MOD_26_AND_TC")["carc"]) == ("modifier", "4")
    assert flag("M13", "MOD_SPLIT_SAME_BILLER")["severity"] == "review"
    assert (flag("D7", "DUP_EXACT")["category"], flag("D7", "DUP_EXACT")["carc"]) == ("duplicate", "18")
    assert flag("S1", "STATUS_NOT_PAYABLE")["severity"] == "deny"
    assert flag("S3", "STATUS_NOT_PAYABLE")["severity"] == "review"
    assert flag("S4", "STATUS_NOT_PAYABLE")["severity"] == "info"
    assert flag("S5", "STATUS_NOT_PAYABLE")["severity"] == "deny"
    assert flag("S7", "CODE_NOT_IN_FEE_SCHEDULE")["severity"] == "info"
    assert flag("I1", "MPPR_IMAGING")["severity"] == "info"


def test_bundling_findings_name_the_partner_line_and_the_edit(corpus_run):
    f = next(f for f in corpus_run.flags if f["claim_id"] == "B8b" and f["rule_id"] == "PTP_NO_BYPASS")
    assert (f["partner_claim_id"], f["partner_line_number"]) == ("B8a", "1")
    assert (f["ptp_column_1"], f["ptp_column_2"], f["ptp_modifier_indicator"]) == ("92611", "76120", "0")
    assert f["ptp_rationale"] and f["ptp_release"] == "PTP 2024Q3"
    f = next(f for f in corpus_run.flags if f["claim_id"] == "B9" and f["rule_id"] == "PTP_NO_BYPASS")
    assert f["ptp_release"] == "PTP 2024Q2"
    f = next(f for f in corpus_run.flags if f["claim_id"] == "B12" and f["rule_id"] == "PTP_NO_BYPASS")
    assert f["ptp_release"] == "PTP TEST 2025Q1"


def test_dollars_at_risk_is_the_flagged_lines_expected_allowed(corpus_run):
    for f in corpus_run.flags:
        assert f["dollars_at_risk"] == (corpus_run.line(f["claim_id"], f["line_number"])["expected_allowed"]
                                        or "0.00")
    assert next(f for f in corpus_run.flags if f["claim_id"] == "B1")["dollars_at_risk"] == "106.42"
    assert next(f for f in corpus_run.flags if f["claim_id"] == "M11")["dollars_at_risk"] == "88.31"


def test_a_locality_or_zip_the_files_do_not_know_is_said_in_the_price_note(corpus_run):
    unknown, no_zip, known = corpus_run.line("L5", 1), corpus_run.line("L6", 1), corpus_run.line("L1", 1)
    assert (unknown["locality"], unknown["expected_allowed"]) == ("national", "106.42")
    assert unknown["price_note"] == ("locality 99999-99 is not a pricing locality of GPCI 2025: priced at the "
                                     "national amount")
    assert no_zip["price_note"].startswith("ZIP 00000 is not in ZIP") and no_zip["locality"] == "national"
    assert known["price_note"] == ""


def test_every_finding_says_why(corpus_run):
    for f in corpus_run.flags:
        assert f["message"].strip(), f
    message = next(f["message"] for f in corpus_run.flags
                   if f["claim_id"] == "S2b" and f["rule_id"] == "STATUS_NOT_PAYABLE")
    assert message.startswith("9999F is not in the fee schedule (RVU") and "Category II" in message
    npi = {f["claim_id"]: f["message"] for f in corpus_run.flags if f["rule_id"] == "NPI_INVALID"}
    assert npi["X4"] == "Rendering NPI 1234567890 fails the NPI check digit."
    assert npi["X5"] == "billing NPI 555000111 fails the NPI check digit."
    assert npi["X16"] == "Rendering and billing NPI 1234567890 fails the NPI check digit."


def test_every_finding_names_its_releases(corpus_run):
    for f in corpus_run.flags:
        assert f["rvu_release"] and f["ptp_release"] and f["mue_release"] and f["aoc_release"], f
    # The add-on edits judge every line: their release is named with the others, line by line and in the run's.
    assert {line["aoc_release"] for line in corpus_run.lines} == {"AOC 2024Q3"}
    used = {(r["table"], r["release"]) for r in corpus_run.summary["reference_releases"]}
    assert ("aoc", "AOC 2024Q3") in used and ("ptp", "PTP 2024Q3") in used


def _fee(work, pe, mp, gpci=("1.000", "1.000", "1.000"), cf="32.3465") -> str:
    w, p, m = (Decimal(g) for g in gpci)
    total = (Decimal(work) * w + Decimal(pe) * p + Decimal(mp) * m) * Decimal(cf)
    return str(total.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def test_prices_follow_the_cms_formula(corpus_run):
    price = lambda c, n: corpus_run.line(c, n)["expected_allowed"]  # noqa: E731
    assert price("M6", 1) == "18.11"                         # 76120-26 national
    assert price("M11", 1) == "88.31"                        # 76120-TC, facility PE 2.72
    assert price("M7", 1) == "106.42"                        # facility PE marked NA: non-facility PE
    assert price("U6", 1) == "212.84"                        # two units
    assert price("U1", 1) == str(Decimal(_fee("1.17", "0.64", "0.07")) * 2)  # G0514 x 2
    assert price("M12", 1) == _fee("1.30", "0.57", "0.10")    # 99213 in a facility: facility PE
    assert price("I1", 1) == _fee("0.85", "2.35", "0.05") and price("I2", 1) == _fee("1.08", "2.91", "0.06")
    assert price("S4", 1) == "" and price("S7", 1) == ""     # carrier-priced, not in the schedule
    assert price("S10", 1) == "" and price("S11", 1) == _fee("0.69", "0.27", "0.02")  # 86153 global, 86153-26


def test_lines_are_priced_at_their_localitys_gpcis(corpus_run):
    # GPCI 2025 (Addendum E): 01112-05 work 1.088, PE 1.419, MP 0.445; 10112-00 work 1.000, PE 0.869, MP 0.575.
    san_francisco = _fee("0.38", "2.88", "0.03", ("1.088", "1.419", "0.445"))
    alabama = _fee("0.38", "2.88", "0.03", ("1.000", "0.869", "0.575"))
    assert (corpus_run.line("L1", 1)["locality"], corpus_run.line("L1", 1)["expected_allowed"]) == (
        "01112-05", san_francisco)
    assert corpus_run.line("L2", 1)["expected_allowed"] == san_francisco
    assert (corpus_run.line("L3", 1)["locality"], corpus_run.line("L3", 1)["expected_allowed"]) == (
        "10112-00", alabama)
    assert corpus_run.line("L4", 1)["expected_allowed"] == san_francisco
    assert corpus_run.line("B1", 1)["locality"] == "national"


def test_lines_name_the_release_that_judged_them(corpus_run):
    q2 = corpus_run.line("B9", 1)
    assert (q2["ptp_release"], q2["mue_release"], q2["reference_match"]) == ("PTP 2024Q2", "MUE 2024Q2",
                                                                                 "approximate")
    q3 = corpus_run.line("B1", 1)
    assert (q3["ptp_release"], q3["mue_release"], q3["rvu_release"]) == ("PTP 2024Q3", "MUE 2024Q3", "RVU25D")
    assert corpus_run.line("B11", 1)["ptp_release"] == "PTP TEST 2025Q1"
