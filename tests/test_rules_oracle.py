"""A second, deliberately naive reading of RULES.md, line by line in Python, against the same reference
tables: thousands of generated lines must get exactly the same findings and prices from both.

The generator draws from 76120, its real NCCI partners and common codes, with modifiers, places of service,
providers and dates chosen so that encounters collide often. Any disagreement names the line.
"""

import random
import re
import shutil
from collections import defaultdict
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import duckdb
import pytest

from .helpers import scrub, write_csv

CODES = ["76120", "76120", "76120", "92611", "76000", "77001", "77002", "36591", "96523", "75571", "76125",
         "93452", "99213", "99214", "71046", "70450", "70460", "71250", "74176", "74177", "93000", "93010",
         "10005", "G0514", "20930", "0275T", "0042T", "99999", "81105", "0353U", "G0117", "99446", "80053",
         "J1100", "0001F", "A4550", "00100", "36415"]
MODIFIERS = ["", "", "", "", "26", "26", "TC", "59", "XU", "XS", "25", "76", "77", "RT", "26,TC", "TC,59"]
NPIS = ["1234567893", "9876543213", "1112223338", "1234567890"]
BILLERS = ["5550001114", "1112223338", ""]
DATES = ["2024-05-20", "2024-06-28", "2024-07-01", "2024-07-02", "2024-09-30", "2025-10-15", "2026-02-10",
         "2026-05-12"]
POS = ["11", "11", "11", "22", "21", "24", "19"]
DX = ["R13.10", "R13.10", "I10", "", "12345"]
BYPASS = {"59", "XE", "XP", "XS", "XU", "24", "25", "27", "57", "58", "78", "79", "91", "E1", "E2", "E3", "E4",
          "FA", "F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "F9", "TA", "T1", "T2", "T3", "T4", "T5",
          "T6", "T7", "T8", "T9", "LT", "RT", "LC", "LD", "LM", "RC", "RI"}
HOSPITAL = {"19", "21", "22", "23"}
FACILITY = {"19", "21", "22", "23", "24", "26", "31", "34", "41", "42", "51", "52", "53", "56", "61"}


def generate(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    claim = 0
    while len(rows) < n:
        claim += 1
        patient = f"G{rng.randint(1, n // 12):04d}"
        dos = rng.choice(DATES)
        rendering = rng.choice(NPIS[:3]) if rng.random() > 0.03 else NPIS[3]
        billing = rng.choice(BILLERS)
        pos = rng.choice(POS)
        claim_type = "institutional" if rng.random() < 0.05 else "professional"
        dx = rng.choice(DX)
        for number in range(1, rng.randint(1, 4) + 1):
            rows.append(dict(claim_id=f"GC{claim:05d}", line_number=number, patient_id=patient,
                             date_of_service=dos, hcpcs=rng.choice(CODES), modifiers=rng.choice(MODIFIERS),
                             units=rng.choice(["1", "1", "1", "2", "3"]), rendering_npi=rendering,
                             billing_npi=billing, place_of_service=pos, claim_type=claim_type, diagnosis_1=dx))
    return rows


class Reference:
    """The reference tables, read plainly."""

    def __init__(self, con):
        self.releases = defaultdict(list)
        for rid, table, start, end in con.execute(
                "select release_id, table_name, effective_start, effective_end from ref_releases").fetchall():
            self.releases[table].append((rid, start, end))
        self.rvu = {(r, c, m): row for r, c, m, *row in con.execute(
            """select release_id, hcpcs, modifier, status, pctc, mult_proc, work_rvu, pe_nonfacility,
                      pe_facility, pe_facility_na, mp_rvu, conversion_factor from ref_rvu""").fetchall()}
        self.mue = {(r, s, c): (v, m) for r, s, c, v, m in con.execute(
            "select release_id, service_type, hcpcs, mue_value, mai from ref_mue").fetchall()}
        self.codes = set(CODES)
        self.ptp = defaultdict(list)
        for r, c1, c2, eff, dele, ind in con.execute(
                "select release_id, column_1, column_2, effective_date, deletion_date, modifier_indicator "
                "from ref_ptp where column_1 in (select unnest($codes)) and column_2 in (select unnest($codes))",
                {"codes": sorted(self.codes)}).fetchall():
            self.ptp[(r, c1, c2)].append((eff, dele, ind))

    def release(self, table: str, dos: date) -> tuple[str, bool]:
        rels = self.releases[table]
        if table in ("rvu", "gpci"):  # rates of the DOS's own year first, the nearest release of that year
            same_year = [r for r in rels if r[1].year == dos.year]
            if same_year:
                nearest = min(same_year, key=lambda r: (max((r[1] - dos).days, (dos - r[2]).days, 0), r[1]))
                return nearest[0], nearest[1] <= dos <= nearest[2]
        holding = [r for r in rels if r[1] <= dos <= r[2]]
        if holding:
            return max(holding, key=lambda r: r[1])[0], True
        before = [r for r in rels if r[1] <= dos]
        if before:
            return max(before, key=lambda r: r[1])[0], False
        return min(rels, key=lambda r: r[1])[0], False

    def active_edits(self, release: str, c1: str, c2: str, dos: date) -> list[str]:
        return [ind for eff, dele, ind in self.ptp.get((release, c1, c2), [])
                if eff <= dos and (dele is None or dos <= dele) and ind in ("0", "1")]


def luhn_ok(npi: str) -> bool:
    if len(npi) != 10 or not npi.isdigit():
        return False
    total = 0
    for i, d in enumerate(reversed("80840" + npi)):
        d = int(d)
        total += (d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 == 1 else d
    return total % 10 == 0


def judge(rows: list[dict], ref: Reference) -> tuple[dict, dict]:
    lines = []
    for r in rows:
        mods = sorted({m for m in r["modifiers"].split(",") if m})
        dos = date.fromisoformat(r["date_of_service"])
        comp = "26" if "26" in mods else "TC" if "TC" in mods else "global"
        rvu_rel, _ = ref.release("rvu", dos)
        ptp_rel, _ = ref.release("ptp", dos)
        mue_table = "mue_outpatient_hospital" if r["claim_type"] == "institutional" else "mue_practitioner"
        mue_rel, _ = ref.release(mue_table, dos)
        # Indicators from the row of the line's component, else the code's row; only a row of its own prices it.
        own = ref.rvu.get((rvu_rel, r["hcpcs"], "" if comp == "global" else comp))
        base = own or ref.rvu.get((rvu_rel, r["hcpcs"], ""))
        row = own
        price = None
        if row is not None and row[0] not in ("C", "X", "E", "J", "M") and not re.fullmatch(r"\d{4}F", r["hcpcs"]):
            _, _, _, work, pe_nf, pe_f, pe_f_na, mp, cf = row
            facility = r["place_of_service"] in FACILITY
            pe = pe_f if facility and not pe_f_na else pe_nf
            fee = ((work + pe + mp) * cf).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            price = (fee * Decimal(r["units"])).quantize(Decimal("0.01"))
        mue = ref.mue.get((mue_rel, mue_table.removeprefix("mue_"), r["hcpcs"]))
        lines.append(dict(r, mods=set(mods), dos=dos, comp=comp, ptp_rel=ptp_rel, base=base, price=price,
                          mue=mue, provider=r["rendering_npi"] or r["billing_npi"],
                          biller=r["billing_npi"] or r["rendering_npi"], units=Decimal(r["units"]),
                          key=(r["claim_id"], int(r["line_number"]))))
    found = defaultdict(set)
    encounter = defaultdict(list)
    for line in lines:
        encounter[(line["patient_id"], line["dos"])].append(line)
    claim_dx = defaultdict(set)
    for line in lines:
        if line["diagnosis_1"]:
            claim_dx[line["claim_id"]].add(line["diagnosis_1"].replace(".", "").upper())
    for a in lines:
        pctc = a["base"][1] if a["base"] else None
        status = a["base"][0] if a["base"] else None
        same_day = [b for b in encounter[(a["patient_id"], a["dos"])] if b is not a]
        same_provider = [b for b in same_day if b["provider"] == a["provider"]]
        repeat = lambda x: bool(x["mods"] & {"76", "77"})  # noqa: E731
        if a["mue"] and a["mue"][1] == 1 and a["units"] > a["mue"][0]:
            found[a["key"]].add("MUE_LINE")
        if a["mue"] and a["mue"][1] in (2, 3):
            total = a["units"] + sum(b["units"] for b in same_provider if b["hcpcs"] == a["hcpcs"])
            if total > a["mue"][0]:
                found[a["key"]].add("MUE_DOS")
        paired = False
        for b in same_provider:
            for c1, c2, col2 in ((b["hcpcs"], a["hcpcs"], True), (a["hcpcs"], b["hcpcs"], False)):
                for ind in ref.active_edits(a["ptp_rel"] if col2 else b["ptp_rel"], c1, c2, a["dos"]):
                    paired = True
                    if col2:
                        bypass = bool((a["mods"] | b["mods"]) & BYPASS)
                        found[a["key"]].add("PTP_BYPASSED" if ind == "1" and bypass else "PTP_NO_BYPASS")
        if "26" in a["mods"] and "TC" in a["mods"]:
            found[a["key"]].add("MOD_26_AND_TC")
        if a["base"] and (("26" in a["mods"] and pctc not in ("1", "6")) or ("TC" in a["mods"] and pctc != "1")):
            found[a["key"]].add("MOD_PCTC_INVALID")
        professional_in_hospital = a["claim_type"] == "professional" and a["place_of_service"] in HOSPITAL
        if professional_in_hospital and pctc == "1" and a["comp"] == "global":
            found[a["key"]].add("MOD_GLOBAL_IN_HOSPITAL")
        if professional_in_hospital and a["comp"] == "TC":
            found[a["key"]].add("MOD_TC_IN_HOSPITAL")
        if a["biller"] and any(b["hcpcs"] == a["hcpcs"] and b["biller"] == a["biller"]
                               and {a["comp"], b["comp"]} == {"26", "TC"} for b in same_day):
            found[a["key"]].add("MOD_SPLIT_SAME_BILLER")
        if a["mods"] & {"59", "XE", "XP", "XS", "XU"} and not paired:
            found[a["key"]].add("MOD_BYPASS_UNNEEDED")
        overlap = lambda x, y: "global" in (x["comp"], y["comp"]) or x["comp"] == y["comp"]  # noqa: E731
        if pctc == "1" and any(b["hcpcs"] == a["hcpcs"] and overlap(a, b) and not repeat(a) and not repeat(b)
                               for b in same_day):
            found[a["key"]].add("DUP_COMPONENT")
        if pctc != "1" and any(b["hcpcs"] == a["hcpcs"] and b["mods"] == a["mods"] and not repeat(a)
                               and not repeat(b) for b in same_provider):
            found[a["key"]].add("DUP_EXACT")
        if status in ("B", "N", "P", "I", "D", "F", "G", "H", "R", "C", "X", "E", "J", "M") or re.fullmatch(
                r"\d{4}F", a["hcpcs"]) or (
                status == "T" and any(b["base"] and b["base"][0] in ("A", "R", "T") for b in same_provider)):
            found[a["key"]].add("STATUS_NOT_PAYABLE")
        if a["base"] is None:
            found[a["key"]].add("CODE_NOT_IN_FEE_SCHEDULE")
        if a["mue"] is None:
            found[a["key"]].add("MUE_NOT_PUBLISHED")
        dx = claim_dx[a["claim_id"]]
        if not dx or any(not re.fullmatch(r"[A-Z][0-9][0-9A-Z][0-9A-Z]{0,4}", d) for d in dx):
            found[a["key"]].add("DX_MISSING")
        if any(n and not luhn_ok(n) for n in (a["rendering_npi"], a["billing_npi"])):
            found[a["key"]].add("NPI_INVALID")
        if a["hcpcs"] == "76120" and any(b["hcpcs"] in ("76000", "77001", "77002", "77003") for b in same_day):
            found[a["key"]].add("RECORDING_EVIDENCE")
    # MPPR: in each session, every indicator-4 line but the highest priced.
    sessions = defaultdict(list)
    for line in lines:
        base = line["base"]
        if base and base[2] == "4" and line["price"] is not None:
            sessions[(line["patient_id"], line["dos"], line["provider"])].append(line)
    for members in sessions.values():
        if len(members) >= 2:
            ranked = sorted(members, key=lambda x: -x["price"])
            for line in ranked[1:]:
                found[line["key"]].add("MPPR_IMAGING")
    prices = {line["key"]: "" if line["price"] is None else str(line["price"]) for line in lines}
    return found, prices


@pytest.fixture(scope="module")
def generated_run(tmp_path_factory, reference_db):
    work = tmp_path_factory.mktemp("oracle")
    db = work / "claimscrub.duckdb"
    shutil.copyfile(reference_db, db)
    rows = generate(3000, seed=20240715)
    run = scrub([write_csv(work / "generated.csv", rows)], work / "out", db)
    assert run.exit_code == 0, run.stderr
    con = duckdb.connect(str(db), read_only=True)
    expected = judge(rows, Reference(con))
    con.close()
    return run, expected


def test_generated_lines_get_the_same_findings_as_a_plain_reading_of_the_rules(generated_run):
    run, (expected, _) = generated_run
    actual = defaultdict(set)
    for f in run.flags:
        actual[(f["claim_id"], int(f["line_number"]))].add(f["rule_id"])
    keys = set(actual) | set(expected)
    wrong = {k: (sorted(actual.get(k, ())), sorted(expected.get(k, ()))) for k in sorted(keys)
             if actual.get(k, set()) != expected.get(k, set())}
    assert not wrong, f"{len(wrong)} lines differ (scrubber, plain reading): {list(wrong.items())[:10]}"
    assert sum(len(v) for v in expected.values()) > 1000


def test_generated_lines_get_the_same_prices_as_a_plain_reading_of_the_formula(generated_run):
    run, (_, prices) = generated_run
    actual = {(l["claim_id"], int(l["line_number"])): l["expected_allowed"] for l in run.lines}
    wrong = {k: (actual[k], prices[k]) for k in prices if actual[k] != prices[k]}
    assert not wrong, list(wrong.items())[:10]


def test_every_rule_is_exercised_by_the_generated_lines(generated_run):
    _, (expected, _) = generated_run
    fired = {rule for rules in expected.values() for rule in rules}
    assert fired >= {"MUE_LINE", "MUE_DOS", "PTP_NO_BYPASS", "PTP_BYPASSED", "MOD_26_AND_TC", "MOD_PCTC_INVALID",
                     "MOD_GLOBAL_IN_HOSPITAL", "MOD_TC_IN_HOSPITAL", "MOD_SPLIT_SAME_BILLER",
                     "MOD_BYPASS_UNNEEDED", "DUP_COMPONENT", "DUP_EXACT", "STATUS_NOT_PAYABLE",
                     "CODE_NOT_IN_FEE_SCHEDULE", "DX_MISSING", "NPI_INVALID", "RECORDING_EVIDENCE",
                     "MPPR_IMAGING"}


def test_a_batch_judged_in_parts_by_patient_gets_the_same_findings_as_judged_whole(generated_run, tmp_path,
                                                                                   reference_db, monkeypatch):
    """Big batches are judged in parts of about two million lines; here 3,000 lines in parts of 400."""
    run, _ = generated_run
    monkeypatch.setattr("assets.scrub.LINES_PER_PART", 400)
    db = tmp_path / "claimscrub.duckdb"
    shutil.copyfile(reference_db, db)
    parted = scrub([write_csv(tmp_path / "generated.csv", generate(3000, seed=20240715))], tmp_path / "out", db)
    assert parted.exit_code == 0, parted.stderr
    assert len(parted.flags) > 1000
    assert parted.flags == run.flags
