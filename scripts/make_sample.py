"""Write samples/claims_sample.csv: a few hundred invented claim lines with known problems.

Deterministic (fixed seed). Patients, claims and NPIs are made up; NPIs carry valid check digits.
    python scripts/make_sample.py
"""

import csv
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "samples" / "claims_sample.csv"
HEADER = ["Claim ID", "Line", "Member ID", "DOS", "CPT Code", "Mod 1", "Mod 2", "Units", "Charge",
          "Rendering NPI", "Billing NPI", "POS", "Dx 1", "Dx 2", "Payer"]


def npi(base9: str) -> str:
    digits = [int(d) for d in "80840" + base9]
    total = 0
    for i, d in enumerate(reversed(digits)):
        total += (d * 2 - 9 if d * 2 > 9 else d * 2) if i % 2 == 0 else d
    return base9 + str((10 - total % 10) % 10)


RADIOLOGY = npi("123456789")
CARDIO = npi("987654321")
GROUP = npi("555000111")
VISITS = ["99212", "99213", "99214"]
TESTS = ["71046", "93000", "74018", "73030", "72100"]
DX = ["R13.10", "K21.9", "I10", "E11.9", "R07.9", "J18.9", "Z00.00", "M54.5"]
PAYERS = ["Medicare Part B", "Acme Health", "Blue Plan"]


def main() -> None:
    rng = random.Random(76120)
    rows = []
    claim_no = 0

    def claim(lines, patient, dos, pos="11", rendering=RADIOLOGY, billing=GROUP, payer=None, dx=None):
        nonlocal claim_no
        claim_no += 1
        cid = f"CLM{claim_no:05d}"
        payer = payer or rng.choice(PAYERS)
        dx = dx if dx is not None else rng.sample(DX, 2)
        for n, (code, mods, units) in enumerate(lines, start=1):
            mods = list(mods) + ["", ""]
            rows.append([cid, n, patient, dos, code, mods[0], mods[1], units, f"{rng.randint(40, 400)}.00",
                         rendering, billing, pos, dx[0] if dx else "", dx[1] if len(dx) > 1 else "", payer])
        return cid

    days = [f"2024-{m:02d}-{d:02d}" for m in (7, 8, 9) for d in (3, 9, 15, 22, 28)]
    # Clean office visits and tests: most of the export.
    for i in range(90):
        codes = [rng.choice(VISITS)] + rng.sample(TESTS, rng.randint(0, 2))
        claim([(c, [], 1) for c in codes], f"PT{i:04d}", rng.choice(days))
    # 76120 billed globally in the office, and with 26 in the hospital: both correct.
    for i in range(25):
        claim([("76120", [], 1), ("99213", ["25"], 1)], f"PT{100 + i:04d}", rng.choice(days), dx=["R13.10"])
        claim([("76120", ["26"], 1)], f"PT{200 + i:04d}", rng.choice(days), pos="22", rendering=CARDIO,
              billing=CARDIO)
    # The problems a scrubber is for.
    claim([("76120", [], 2)], "PT3001", "2024-07-10")                                  # MUE_DOS (2 > 1)
    claim([("76120", ["26", "TC"], 1)], "PT3002", "2024-07-11")                        # MOD_26_AND_TC
    claim([("99213", ["26"], 1)], "PT3003", "2024-07-12")                              # MOD_PCTC_INVALID
    claim([("76120", [], 1)], "PT3004", "2024-07-15", pos="21", rendering=CARDIO)     # MOD_GLOBAL_IN_HOSPITAL
    claim([("76120", ["TC"], 1)], "PT3005", "2024-07-16", pos="22", rendering=CARDIO)  # MOD_TC_IN_HOSPITAL
    claim([("92611", [], 1), ("76120", [], 1)], "PT3006", "2024-08-01")                # PTP_NO_BYPASS (ind 0)
    claim([("76120", [], 1), ("76000", [], 1)], "PT3007", "2024-08-02")                # PTP_NO_BYPASS (ind 1)
    claim([("76120", [], 1), ("76000", ["XU"], 1)], "PT3008", "2024-08-05")            # PTP_BYPASSED
    claim([("71046", ["59"], 1)], "PT3009", "2024-08-06")                              # MOD_BYPASS_UNNEEDED
    claim([("76120", [], 1)], "PT3010", "2024-08-07")                                  # DUP_COMPONENT with the
    claim([("76120", ["26"], 1)], "PT3010", "2024-08-07", pos="11", rendering=CARDIO, billing=CARDIO)  # 26 line
    claim([("99213", [], 1), ("99213", [], 1)], "PT3011", "2024-08-08")                # DUP_EXACT
    claim([("76120", ["26"], 1), ("76120", ["TC"], 1)], "PT3012", "2024-08-09")        # MOD_SPLIT_SAME_BILLER
    claim([("99213", [], 1)], "PT3013", "2024-08-12", dx=[])                           # DX_MISSING
    claim([("99213", [], 1)], "PT3014", "2024-08-13", rendering="1234567890")          # NPI_INVALID
    claim([("76120", [], 1), ("76120", ["76"], 1)], "PT3015", "2024-08-14")            # 76 repeat: no duplicate
    # Rows that cannot be scrubbed: each goes to the quarantine with its reasons.
    rows.append(["CLM09001", 1, "PT9001", "2024-13-45", "76120", "", "", 1, "90.00", RADIOLOGY, GROUP, "11",
                 "R13.10", "", "Acme Health"])
    rows.append(["", 1, "PT9002", "2024-07-03", "99213", "", "", 1, "90.00", RADIOLOGY, GROUP, "11",
                 "I10", "", "Acme Health"])
    rows.append(["CLM09003", 1, "PT9003", "2024-07-03", "7612", "", "", 0, "90.00", RADIOLOGY, GROUP, "11",
                 "I10", "", "Acme Health"])
    rows.append(["CLM00001", 1, "PT0000", "2024-07-03", "99213", "", "", 1, "90.00", RADIOLOGY, GROUP, "11",
                 "I10", "", "Acme Health"])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerows(rows)


if __name__ == "__main__":
    main()
