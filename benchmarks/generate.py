"""Synthetic claim exports of any size with the mix of a real night's export.

About 2.5 lines a claim; office visits, imaging and procedures, with CPT 76120 and its NCCI partners
(76000, 77001-77003, 92611, 75571, 36591) among the common codes; 26/TC, 25, 59/XU and LT/RT modifiers;
surgeries of 090, 010 and 000 global days, a few of them with the modifiers that change their payment (50,
62, 66, 80, 81, 82, AS); visits by the surgeon in a surgery's global period (a claim of their own, days
later, with 24, FT or 57 now and then); add-on codes mostly with their primary service, sometimes without;
a few percent of problems the rules catch (units over the MUE, 26 and TC on one line, a global imaging
line in a hospital, duplicate lines, a missing diagnosis, an NPI that fails its check digit) and about one
row in a hundred that cannot be scrubbed at all (bad date, no claim id, a short code, zero units, a
repeated claim line).

Random choices come from numpy with a fixed seed, so a size always gives the same file; DuckDB formats
the text and writes the CSV, a million lines at a time.

    python -m benchmarks.generate 2000000 claims.csv
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

SEED = 76120
HEADER = ["Claim ID", "Line", "Member ID", "DOS", "CPT Code", "Mod 1", "Mod 2", "Units", "Charge",
          "Rendering NPI", "Billing NPI", "POS", "Dx 1", "Dx 2", "Payer"]

# Line-level code mix: (code, weight, PC/TC indicator 1, i.e. billable as global, 26 or TC).
CODES = [
    ("99213", 22, False), ("99214", 14, False), ("99212", 6, False), ("99215", 3, False),
    ("99203", 2, False), ("99204", 2, False), ("71046", 8, True), ("74018", 3, True), ("73030", 3, True),
    ("72100", 3, True), ("70450", 2, True), ("73721", 2, True), ("76700", 2, True), ("93306", 2, True),
    ("77067", 2, True), ("76120", 4, True), ("76000", 2, True), ("77002", 1.0, True), ("77001", 0.5, True),
    ("77003", 0.5, True), ("92611", 0.5, False), ("75571", 0.5, True), ("36591", 0.5, False),
    ("93000", 5, False), ("93010", 0.5, False), ("20610", 1, False), ("97110", 5, False),
    # Add-on codes billed without their primary now and then; the surgeries and the primaries of the add-on
    # codes below come on claims of their own (weight 0 here).
    ("11045", 0.05, False), ("17003", 0.05, False), ("11105", 0.05, False), ("66984", 0, False),
    ("27447", 0, False), ("29881", 0, False), ("47562", 0, False), ("49505", 0, False), ("64721", 0, False),
    ("10060", 0, False), ("17000", 0, False), ("17110", 0, False), ("11042", 0, False), ("11102", 0, False),
    ("20600", 0, False), ("69210", 0, False), ("11104", 0, False),
]
# Surgeries billed on a claim of their own, by RVU global days (090, 010, 000): the surgeon's visits on the
# next claim fall in the period of the first two kinds.
SURGERIES = (["66984", "27447", "29881", "47562", "49505", "64721", "10060", "17000", "17110", "11042", "11102",
              "20600", "69210", "20610"],
             [0.15, 0.08, 0.08, 0.05, 0.05, 0.05, 0.1, 0.1, 0.06, 0.06, 0.08, 0.04, 0.05, 0.05])
# Claims of a primary service and its add-on code.
ADD_ON_PAIRS = ([("20610", "77002"), ("11042", "11045"), ("17000", "17003"), ("11104", "11105")],
                [0.5, 0.2, 0.2, 0.1])
PAYMENT_MODIFIERS = (["50", "62", "66", "80", "81", "82", "AS"], [0.3, 0.15, 0.05, 0.25, 0.05, 0.05, 0.15])
FOLLOW_UP_MODIFIERS = (["", "24", "FT", "57"], [0.55, 0.35, 0.05, 0.05])
CLAIM_SIZES = ([1, 2, 3, 4, 5], [0.25, 0.30, 0.20, 0.15, 0.10])  # 2.55 lines a claim
POS = (["11", "22", "21", "19", "23"], [0.80, 0.10, 0.05, 0.03, 0.02])
DIAGNOSES = ["R13.10", "K21.9", "I10", "E11.9", "R07.9", "J18.9", "Z00.00", "M54.5", "R10.9", "I25.10",
             "M17.11", "N39.0", "R06.02", "E78.5", "F41.1", "K59.00"]
PAYERS = ["Medicare Part B", "Acme Health", "Blue Plan", "Northwind Medicaid", "Contoso Advantage"]
DEFECTS = ["bad_date", "no_claim_id", "short_code", "zero_units", "repeated_line"]

PROVIDERS = 400  # rendering NPIs; billing groups hold 20 each
FIRST_DAY = np.datetime64("2024-07-01")
DAYS = 92

# Fractions, per line unless said otherwise.
P_UNREADABLE = 0.01
P_NO_DX = 0.005         # per claim
P_BAD_NPI = 0.003       # per claim
P_BYPASS = 0.01
P_26_AND_TC = 0.002
P_GLOBAL_IN_HOSPITAL = 0.05  # of imaging lines in a hospital
P_EXTRA_UNITS = 0.01
P_DUPLICATE = 0.005     # per claim: its first line billed again as its last
P_US_DATE = 0.2         # per claim: MM/DD/YYYY instead of ISO
P_SURGERY = 0.04        # per claim: a surgery billed alone
P_FOLLOW_UP = 0.6       # of surgeries: the next claim is a visit of the patient to the surgeon, days later
FOLLOW_UP_DAYS = 30     # at most this many days later, less one
P_ADD_ON_PAIR = 0.02    # per claim of two lines or more: a primary service and its add-on code, alone
P_PAYMENT_MODIFIER = 0.3  # of surgery lines


def npi_with_check_digit(base9: int) -> str:
    digits = [int(d) for d in f"80840{base9:09d}"]
    total = 0
    for i, d in enumerate(reversed(digits)):
        total += (d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 == 0 else d
    return f"{base9:09d}{(10 - total % 10) % 10}"


RENDERING = [npi_with_check_digit(123400000 + 37 * i) for i in range(PROVIDERS)]
BILLING = [npi_with_check_digit(555000000 + 101 * i) for i in range(PROVIDERS // 20)]

FORMAT = """
select
    case when defect = 'no_claim_id' then null else 'C' || lpad(claim_no::varchar, 10, '0') end,
    case when defect = 'repeated_line' and line_number > 1 then line_number - 1 else line_number end,
    'M' || lpad(patient_no::varchar, 9, '0'),
    case when defect = 'bad_date' then '2024-13-' || (day + 1)::varchar
         when us_date then strftime(dos, '%m/%d/%Y') else strftime(dos, '%Y-%m-%d') end,
    case when defect = 'short_code' then left($codes[code + 1], 4) else $codes[code + 1] end,
    nullif(mod_1, ''), nullif(mod_2, ''),
    case when defect = 'zero_units' then 0 else units end,
    printf('%.2f', charge_cents / 100),
    case when bad_npi then left($rendering[provider + 1], 9) || ((right($rendering[provider + 1], 1)::int + 1) % 10)::varchar
         else $rendering[provider + 1] end,
    $billing[provider // 20 + 1],
    $pos[pos + 1],
    case when not no_dx then $dx[dx_1 + 1] end,
    case when not no_dx then $dx[dx_2 + 1] end,
    $payers[payer + 1]
from chunk_frame
order by ordinal
"""


def _distinct_codes(rng: np.random.Generator, claim: np.ndarray) -> np.ndarray:
    """A code per line, weighted by the mix; a claim bills a code once and holds one visit at most, as
    real claims do (the planted duplicates are added on top)."""
    weights = np.array([w for _, w, _ in CODES], dtype=float)
    code = rng.choice(len(CODES), size=len(claim), p=weights / weights.sum())
    visit = np.array([c.startswith("99") for c, _, _ in CODES])
    others = np.flatnonzero(~visit)
    for _ in range(6):
        group = np.where(visit[code], -1, code)
        repeated = pd.DataFrame({"claim": claim, "group": group}).duplicated().to_numpy()
        if not repeated.any():
            break
        code[repeated] = rng.choice(others, size=int(repeated.sum()),
                                    p=weights[others] / weights[others].sum())
    return code


def _claims(rng: np.random.Generator, first_claim: int, claims: int, patients: int,
            first_day: np.datetime64 = FIRST_DAY) -> pd.DataFrame:
    """One chunk of claims, one row per line, as integer choices and flags."""
    sizes = rng.choice(CLAIM_SIZES[0], size=claims, p=CLAIM_SIZES[1])
    # A surgery is billed alone; the claim after it, now and then, is one visit of the patient to the surgeon.
    surgical = rng.random(claims) < P_SURGERY
    surgical[1:] &= ~surgical[:-1]
    surgical[-1] = False
    follow_up = np.zeros(claims, dtype=bool)
    follow_up[1:] = surgical[:-1] & (rng.random(claims - 1) < P_FOLLOW_UP)
    sizes[surgical | follow_up] = 1
    # Some claims bill a primary service and its add-on code, and nothing else.
    paired = np.flatnonzero((rng.random(claims) < P_ADD_ON_PAIR) & (sizes >= 2))
    sizes[paired] = 2
    duplicate = rng.random(claims) < P_DUPLICATE
    sizes = sizes + duplicate
    lines = int(sizes.sum())
    claim = np.repeat(np.arange(claims), sizes)
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    line_number = np.arange(lines) - starts + 1
    per_claim = {
        "patient_no": rng.integers(0, patients, claims),
        "day": rng.integers(0, DAYS, claims),
        "provider": rng.integers(0, PROVIDERS, claims),
        "pos": rng.choice(len(POS[0]), size=claims, p=POS[1]),
        "payer": rng.integers(0, len(PAYERS), claims),
        "dx_1": rng.integers(0, len(DIAGNOSES), claims),
        "dx_2": rng.integers(0, len(DIAGNOSES), claims),
        "no_dx": rng.random(claims) < P_NO_DX,
        "bad_npi": rng.random(claims) < P_BAD_NPI,
        "us_date": rng.random(claims) < P_US_DATE,
    }
    # The visit after a surgery comes 0 to 29 days later, within the export's days.
    after = np.flatnonzero(follow_up)
    for name in ("patient_no", "provider"):
        per_claim[name][after] = per_claim[name][after - 1]
    per_claim["day"][surgical] %= DAYS - FOLLOW_UP_DAYS
    per_claim["day"][after] = per_claim["day"][after - 1] + rng.integers(0, FOLLOW_UP_DAYS, len(after))
    frame = pd.DataFrame({name: values[claim] for name, values in per_claim.items()})
    code = _distinct_codes(rng, claim)
    code_index = {c: i for i, (c, _, _) in enumerate(CODES)}
    first_line = np.cumsum(sizes) - sizes
    surgery_codes = np.array([code_index[c] for c in SURGERIES[0]])
    code[first_line[surgical]] = rng.choice(surgery_codes, int(surgical.sum()), p=SURGERIES[1])
    visits = np.array([code_index[c] for c in ("99213", "99214", "99212")])
    code[first_line[after]] = rng.choice(visits, len(after), p=[0.6, 0.3, 0.1])
    pairs = np.array([[code_index[c] for c in pair] for pair in ADD_ON_PAIRS[0]])[
        rng.choice(len(ADD_ON_PAIRS[0]), len(paired), p=ADD_ON_PAIRS[1])]
    code[first_line[paired]], code[first_line[paired] + 1] = pairs[:, 0], pairs[:, 1]
    # The duplicated line repeats the claim's first code.
    last_of_duplicated = np.flatnonzero(duplicate[claim] & (line_number == sizes[claim]))
    code[last_of_duplicated] = code[last_of_duplicated - line_number[last_of_duplicated] + 1]
    imaging = np.array([pctc for _, _, pctc in CODES])[code]
    hospital = np.isin(frame["pos"].to_numpy(), [1, 2, 3, 4])
    evaluation = np.array([c.startswith("99") for c, _, _ in CODES])[code]
    draw = rng.random((4, lines))
    mod_1 = np.full(lines, "", dtype=object)
    # Imaging in a hospital is billed with 26 (the hospital bills the technical part), mostly.
    mod_1[imaging & hospital & (draw[0] >= P_GLOBAL_IN_HOSPITAL)] = "26"
    office_imaging = imaging & ~hospital
    mod_1[office_imaging & (draw[0] < 0.05)] = "26"
    mod_1[office_imaging & (draw[0] >= 0.05) & (draw[0] < 0.08)] = "TC"
    # A visit billed with a procedure carries 25, mostly.
    mod_1[evaluation & (sizes[claim] > 1) & (draw[0] < 0.85)] = "25"
    mod_2 = np.full(lines, "", dtype=object)
    bypass = draw[1] < P_BYPASS
    mod_2[bypass] = np.where(draw[2][bypass] < 0.5, "59", "XU")
    sided = np.array([c == "73030" for c, _, _ in CODES])[code]
    mod_2[sided] = np.where(draw[2][sided] < 0.5, "LT", "RT")
    both = imaging & (draw[3] < P_26_AND_TC)
    mod_1[both], mod_2[both] = "26", "TC"
    # Surgeries with a payment modifier (bilateral, co-surgeon, team, assistant), now and then.
    adjusted = np.isin(code, surgery_codes) & (draw[3] >= 1 - P_PAYMENT_MODIFIER)
    mod_1[adjusted] = rng.choice(PAYMENT_MODIFIERS[0], int(adjusted.sum()), p=PAYMENT_MODIFIERS[1])
    # The follow-up visit says, now and then, that it is unrelated (24, FT) or the decision for surgery (57).
    visit_after = first_line[after]
    mod_1[visit_after] = rng.choice(FOLLOW_UP_MODIFIERS[0], len(after), p=FOLLOW_UP_MODIFIERS[1])
    defects = np.array(DEFECTS, dtype=object)
    defect = np.where(rng.random(lines) < P_UNREADABLE, defects[rng.integers(0, len(DEFECTS), lines)], "")
    return frame.assign(
        ordinal=np.arange(lines), claim_no=first_claim + claim, line_number=line_number,
        dos=first_day + frame["day"].to_numpy().astype("timedelta64[D]"),
        code=code, mod_1=mod_1, mod_2=mod_2,
        units=np.where(rng.random(lines) < P_EXTRA_UNITS, 2, 1),
        charge_cents=rng.integers(4000, 40000, lines), defect=defect,
    )


def generate(path: Path, lines: int, seed: int = SEED, chunk_lines: int = 1_000_000, first_day: str = "",
             patients: int = 0, first_claim: int = 0) -> Path:
    """Write a claim export of exactly `lines` data rows (plus the header) to `path`: dates of service in the
    DAYS from `first_day` (default FIRST_DAY), patients numbered below `patients` (default one per 8 lines).
    Earlier quarters of the same patients, with claim numbers from `first_claim` on, make a history for
    `--history` runs."""
    rng = np.random.default_rng(seed)
    patients = patients or max(1, lines // 8)
    start = np.datetime64(first_day) if first_day else FIRST_DAY
    params = {"codes": [c for c, _, _ in CODES], "rendering": RENDERING, "billing": BILLING,
              "pos": POS[0], "dx": DIAGNOSES, "payers": PAYERS}
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    written = 0
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp, open(path, "w", newline="") as out:
        out.write(",".join(HEADER) + "\n")
        while written < lines:
            want = min(chunk_lines, lines - written)
            claims = max(1, int(want / 2.55) + 8)
            frame = _claims(rng, first_claim, claims, patients, start).head(want)
            first_claim += claims
            part = Path(tmp) / "part.csv"
            con.register("chunk_frame", frame)
            con.execute(f"copy ({FORMAT}) to $part (header false, delimiter ',')", {**params, "part": str(part)})
            con.unregister("chunk_frame")
            with open(part) as src:
                out.flush()
                shutil.copyfileobj(src, out)
            written += len(frame)
    con.close()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lines", type=int)
    parser.add_argument("path", type=Path)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--first-day", default="", help="first date of service (YYYY-MM-DD; default 2024-07-01)")
    parser.add_argument("--patients", type=int, default=0, help="how many patients (default one per 8 lines)")
    parser.add_argument("--first-claim", type=int, default=0, help="number of the first claim (default 0)")
    args = parser.parse_args()
    generate(args.path, args.lines, args.seed, first_day=args.first_day, patients=args.patients,
             first_claim=args.first_claim)


if __name__ == "__main__":
    main()
