"""The labelled corpus of the rules beyond 76120 (RULES.md, "Rules beyond 76120" and "Payment adjustments by
modifier"): add-on codes without their primary, visits in a surgery's global period, the surgery modifiers the
fee schedule's indicators do not allow, and what those modifiers do to the price.

As in tests/test_rules.py, every scenario has a patient of its own and the whole corpus goes through one real
`claimscrub scrub` run; each line's complete set of findings is asserted, those of the other rules included.
Lines are dated in 2026Q2, so RVU26B (CF 33.4009) prices them and AOC 2026Q2 and MUE 2026Q2 judge them; PTP
2024Q3, the newest PTP release, judges them too. Code facts used here, read from the bundled releases:

- AOC 2026Q2: 11045 is a type 1 add-on of 11042; 15777 is type 2 (primary CCCCC); 64727 is type 3 with
  64702-64726 (64721 among them); 96160 is type 3 with the office visits (99213 among them); 20701's type 1
  rows (20240 and 11010 among their primaries) were deleted 2022-12-31 and its type 3 rows (11010, not 20240)
  are active; 99415 is type 1 with 99202-99215, its edit with 99211 deleted 2020-12-31; 0836T's only edit
  (primary 88177) was deleted 2024-03-31, while the undated AOC 2024Q3 file lists it.
- RVU26B global days: 33278 090, 58580 010, 11981 000 (all status A); 37215 is 090 with status R; 99213 and
  99211 are status A; 99024 is status B. PTP 2024Q3 has no edit between 33278, 58580 or 11981 and the visits
  used with them, nor between the add-on pairs used here, except 99211/99415 (modifier indicator 0).
- RVU26B indicators (bilateral, assistant, co-surgeon, team): 43752 0/1/0/0, 20600 1/1/0/0, 11010 2/1/0/0,
  92230 3/0/0/0, 11300 9/0/0/0, 93503 0/0/0/0, 29280 1/1/0/0, 64704 0/2/1/0, 92961 9/9/9/9, 20650 0/1/1/0,
  28666 0/1/2/0, 45990 0/0/1/1, 61618 0/2/1/2, 27227 1/2/2/0, 27829 1/2/2/0.
"""

import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest
from openpyxl import Workbook

from reference.loaders import AOC_HEADER, Release, load_release

from .engine import engine_scrub
from .helpers import write_csv

NPI_A = "1234567893"   # valid check digits
NPI_B = "9876543213"
NPI_G = "5550001114"   # billing group
DOS = "2026-05-12"

ROWS: list[dict] = []
ROWS_SECOND_FILE: list[dict] = []   # the batch's second file
EXPECT: dict[tuple[str, int], set[str]] = {}
# The severity of each finding of the six rules, and the surgery line each GLOBAL_EM_IN_PERIOD finding names.
SEVERITY: dict[tuple[str, int, str], str] = {}
PARTNER: dict[tuple[str, int], tuple[str, str]] = {}
BEYOND = {"AOC_NO_PRIMARY", "GLOBAL_EM_IN_PERIOD", "MOD_BILATERAL_INVALID", "MOD_ASSISTANT_NOT_PAYABLE",
          "MOD_COSURGEON_NOT_PAYABLE", "MOD_TEAM_NOT_PAYABLE"}
DEFAULT_SEVERITY = {"GLOBAL_EM_IN_PERIOD": "deny"}


def line(claim: str, n: int, patient: str, code: str, expect: set[str], *, mods: str = "", units="1",
         dos: str = DOS, rendering: str = NPI_A, billing: str = NPI_G, pos: str = "11", dx: str = "R10.9",
         severity: str | None = None, partner: tuple[str, int] | None = None, second_file: bool = False) -> None:
    (ROWS_SECOND_FILE if second_file else ROWS).append(dict(claim_id=claim, line_number=n, patient_id=patient, date_of_service=dos, hcpcs=code,
                     modifiers=mods, units=units, rendering_npi=rendering, billing_npi=billing,
                     place_of_service=pos, claim_type="professional", diagnosis_1=dx))
    EXPECT[(claim, n)] = expect
    for rule in expect & BEYOND:
        SEVERITY[(claim, n, rule)] = severity or DEFAULT_SEVERITY[rule]
    if partner:
        PARTNER[(claim, n)] = (partner[0], str(partner[1]))


# --- add-on codes (AOC_NO_PRIMARY) --------------------------------------------------------------------------
# Type 1: 11045 (debridement, each additional 20 sq cm) is paid only with 11042 by the same provider that day.
line("A1", 1, "PA1", "11042", set())                                           # the primary
line("A1", 2, "PA1", "11045", set())                                           # with it: clean
line("A2", 1, "PA2", "11042", set())
line("A2", 2, "PA2", "11045", {"AOC_NO_PRIMARY"}, rendering=NPI_B, severity="deny")  # another provider's primary
line("A3", 1, "PA3", "11042", set())
line("A3", 2, "PA3", "11045", {"AOC_NO_PRIMARY"}, dos="2026-05-13", severity="deny")  # primary: a day before
line("A4a", 1, "PA4", "11042", set())                                          # the primary on another claim
line("A4b", 1, "PA4", "11045", set())                                          # of the same day and provider
line("A5", 1, "PA5", "11042", set())
# No rendering NPI: the provider is the billing group, not the surgeon who rendered the primary.
line("A5", 2, "PA5", "11045", {"AOC_NO_PRIMARY"}, rendering="", severity="deny")
line("A6", 1, "PA6", "11042", {"MUE_DOS"}, units="2")                         # MUE 1 (indicator 2): denied itself
line("A6", 2, "PA6", "11045", set())                                           # a denied primary still counts
# Type 2: 15777 (CCCCC) needs any other service of the patient, day and provider; alone it is a review.
line("A7", 1, "PA7", "15777", {"AOC_NO_PRIMARY"}, severity="review")
line("A8", 1, "PA8", "99213", set())
line("A8", 2, "PA8", "15777", set())                                           # with a visit: clean
line("A9", 1, "PA9", "99024", {"STATUS_NOT_PAYABLE"})                         # status B, denied itself
line("A9", 2, "PA9", "15777", set())                                           # whatever the other line's findings
line("A10", 1, "PA10", "99213", set(), rendering=NPI_B)
line("A10", 2, "PA10", "15777", {"AOC_NO_PRIMARY"}, severity="review")        # the other service is another's
# Type 3: 64727 (nerve decompression, microscope) lists 64702-64726; the contractor may add others: review.
line("A11", 1, "PA11", "64721", set())                                         # carpal tunnel, a listed primary
line("A11", 2, "PA11", "64727", set())
line("A12", 1, "PA12", "99213", set())
line("A12", 2, "PA12", "64727", {"AOC_NO_PRIMARY"}, severity="review")        # a service not listed
line("A13", 1, "PA13", "64727", {"AOC_NO_PRIMARY"}, severity="review")        # alone
line("A14", 1, "PA14", "99213", set())                                         # 96160 (type 3) lists 99213
line("A14", 2, "PA14", "96160", set())
# Edits no longer active on the DOS.
line("A15", 1, "PA15", "11010", set())                                         # 20701's active type 3 lists 11010
line("A15", 2, "PA15", "20701", set())
line("A16", 1, "PA16", "20240", set())
# 20701/20240 was a type 1 edit deleted 2022-12-31: the type 3 rows decide now, and they do not list 20240.
line("A16", 2, "PA16", "20701", {"AOC_NO_PRIMARY"}, severity="review")
line("A17", 1, "PA17", "99213", set())                                         # 99415 lists 99213
line("A17", 2, "PA17", "99415", set())
line("A18", 1, "PA18", "99211", set())
# 99415/99211 deleted 2020-12-31: 99211 does not count; PTP 99211/99415 (indicator 0) bundles 99415 besides.
line("A18", 2, "PA18", "99415", {"AOC_NO_PRIMARY", "PTP_NO_BYPASS"}, severity="deny")
# 0836T's only edit was deleted 2024-03-31: not an add-on in 2026 (status C, no MUE published).
line("A19", 1, "PA19", "0836T", {"STATUS_NOT_PAYABLE", "MUE_NOT_PUBLISHED"})
# The same line in 2024Q3 is judged by the undated AOC 2024Q3 file, where the edit is active.
line("A20", 1, "PA20", "0836T", {"AOC_NO_PRIMARY", "STATUS_NOT_PAYABLE", "MUE_NOT_PUBLISHED"}, dos="2024-07-15",
     severity="deny")

# A date between the AOC releases (2026Q1) is judged by the newest release that starts before it: in this corpus
# the hand-made AOC TEST 2025Q1 below (AOC 2024Q3 with the bundled releases alone), where 11045 is type 1.
line("A21", 1, "PA21", "11045", {"AOC_NO_PRIMARY"}, dos="2026-02-10", severity="deny")
line("A22", 1, "PA22", "11042", set(), dos="2026-02-10")
line("A22", 2, "PA22", "11045", set(), dos="2026-02-10")
# 37252's edit with 33882 took effect 2026-01-01 (it counts); its edit with 33884 was deleted 2025-12-31, the
# day before 33884 left the fee schedule (it does not).
line("A23", 1, "PA23", "33882", set())
line("A23", 2, "PA23", "37252", set())
line("A24", 1, "PA24", "33884", {"CODE_NOT_IN_FEE_SCHEDULE", "MUE_NOT_PUBLISHED"})
line("A24", 2, "PA24", "37252", {"AOC_NO_PRIMARY"}, severity="deny")
# C9726 is type 3 with CCCCC, 19301 and 19302: CCCCC lets no other service stand in (a review), 19301 does.
line("A25", 1, "PA25", "99213", set())
line("A25", 2, "PA25", "C9726", {"AOC_NO_PRIMARY", "CODE_NOT_IN_FEE_SCHEDULE"}, severity="review")
line("A26", 1, "PA26", "19301", set())
line("A26", 2, "PA26", "C9726", {"CODE_NOT_IN_FEE_SCHEDULE"})
# The primary's provider is its billing NPI where it has no rendering NPI: the add-on's rendering NPI here.
line("A27", 1, "PA27", "11042", set(), rendering="", billing=NPI_A)
line("A27", 2, "PA27", "11045", set())
# 0131U's own AOC_DelDT is 2025-12-31: in 2026 it is no add-on (and not in the fee schedule).
line("A28", 1, "PA28", "0131U", {"CODE_NOT_IN_FEE_SCHEDULE", "MUE_NOT_PUBLISHED"})

# --- global surgery (GLOBAL_EM_IN_PERIOD) -------------------------------------------------------------------
# 090: 33278 on 2026-04-02, period 04-01 to 07-01. The visits after June are judged by RVU26B all the same
# (its year); the one of 03-31 by RVU26B too.
line("G1S", 1, "PG1", "33278", set(), dos="2026-04-02")
line("G1a", 1, "PG1", "99213", set(), dos="2026-03-31")                        # d - 2: before the period
line("G1b", 1, "PG1", "99213", {"GLOBAL_EM_IN_PERIOD"}, dos="2026-04-01", partner=("G1S", 1))  # d - 1
line("G1c", 1, "PG1", "99213", {"GLOBAL_EM_IN_PERIOD"}, dos="2026-04-02", partner=("G1S", 1))  # d
line("G1d", 1, "PG1", "99213", {"GLOBAL_EM_IN_PERIOD"}, dos="2026-07-01", partner=("G1S", 1))  # d + 90
line("G1e", 1, "PG1", "99213", set(), dos="2026-07-02")                        # d + 91: after it
# 010: 58580 on 05-04, period 05-04 to 05-14.
line("G2S", 1, "PG2", "58580", set(), dos="2026-05-04")
line("G2a", 1, "PG2", "99213", set(), dos="2026-05-03")                        # d - 1: a 010 period starts on d
line("G2b", 1, "PG2", "99213", {"GLOBAL_EM_IN_PERIOD"}, dos="2026-05-04", partner=("G2S", 1))
line("G2c", 1, "PG2", "99213", {"GLOBAL_EM_IN_PERIOD"}, dos="2026-05-14", partner=("G2S", 1))  # d + 10
line("G2d", 1, "PG2", "99213", set(), dos="2026-05-15")                        # d + 11
# 000: 11981 on 05-04, the day only.
line("G3S", 1, "PG3", "11981", set(), dos="2026-05-04")
line("G3a", 1, "PG3", "99213", set(), dos="2026-05-03")
line("G3b", 1, "PG3", "99213", {"GLOBAL_EM_IN_PERIOD"}, dos="2026-05-04", partner=("G3S", 1))
line("G3c", 1, "PG3", "99213", set(), dos="2026-05-05")
# Modifiers that do not excuse.
line("G4", 1, "PG4", "33278", set(), dos="2026-05-04")
line("G4", 2, "PG4", "99213", {"GLOBAL_EM_IN_PERIOD"}, mods="24", dos="2026-05-04", partner=("G4", 1))  # 24 on d
line("G5", 1, "PG5", "58580", set(), dos="2026-05-04")
line("G5", 2, "PG5", "99213", {"GLOBAL_EM_IN_PERIOD"}, mods="57", dos="2026-05-04", partner=("G5", 1))  # 57, 010
line("G6", 1, "PG6", "58580", set(), dos="2026-05-04")
line("G6x", 1, "PG6", "99213", {"GLOBAL_EM_IN_PERIOD"}, mods="25", dos="2026-05-05", partner=("G6", 1))  # 25, d+1
line("G7", 1, "PG7", "33278", set(), dos="2026-05-04")
line("G7x", 1, "PG7", "99213", {"GLOBAL_EM_IN_PERIOD"}, mods="57", dos="2026-05-05", partner=("G7", 1))  # 57, d+1
# Modifiers that excuse.
line("G8", 1, "PG8", "33278", set(), dos="2026-05-04")
line("G8x", 1, "PG8", "99213", set(), mods="24", dos="2026-05-20")            # 24 after the day of surgery
line("G9", 1, "PG9", "11981", set(), dos="2026-05-04")
line("G9", 2, "PG9", "99213", set(), mods="25", dos="2026-05-04")             # 25 on the day of a 000
line("G10", 1, "PG10", "58580", set(), dos="2026-05-04")
line("G10", 2, "PG10", "99213", set(), mods="25", dos="2026-05-04")           # 25 on the day of a 010
line("G11", 1, "PG11", "33278", set(), dos="2026-05-04")
line("G11x", 1, "PG11", "99213", set(), mods="57", dos="2026-05-03")          # 57 the day before a 090
line("G12", 1, "PG12", "33278", set(), dos="2026-05-04")
line("G12", 2, "PG12", "99213", set(), mods="57", dos="2026-05-04")           # 57 on the day of a 090
line("G13", 1, "PG13", "33278", set(), dos="2026-05-04")
line("G13x", 1, "PG13", "99213", set(), mods="FT", dos="2026-06-15")          # FT, d + 42
line("G14", 1, "PG14", "11981", set(), dos="2026-05-04")
line("G14", 2, "PG14", "99213", set(), mods="FT", dos="2026-05-04")           # FT on the day of a 000
line("G15", 1, "PG15", "33278", set(), dos="2026-05-04")
line("G15x", 1, "PG15", "99213", set(), mods="FT", dos="2026-05-03")          # FT the day before a 090
line("G16", 1, "PG16", "33278", set(), dos="2026-05-04")
line("G16", 2, "PG16", "99213", set(), mods="25", dos="2026-05-04")           # 25 on the day: the book's e = d
# Not an E/M, not a surgery, not the same provider.
line("G17", 1, "PG17", "33278", set(), dos="2026-05-04")
line("G17x", 1, "PG17", "99024", {"STATUS_NOT_PAYABLE"}, dos="2026-05-11")    # postoperative visit: status B
line("G18", 1, "PG18", "33278", set(), dos="2026-05-04")
line("G18x", 1, "PG18", "99213", set(), dos="2026-05-11", rendering=NPI_B)    # another provider's visit
line("G19", 1, "PG19", "37215", {"STATUS_NOT_PAYABLE"}, dos="2026-05-04")     # 090 but status R: no period
line("G19x", 1, "PG19", "99213", set(), dos="2026-05-11")
line("G20", 1, "PG20", "58580", set(), dos="2026-05-04")
line("G20x", 1, "PG20", "99211", {"GLOBAL_EM_IN_PERIOD"}, dos="2026-05-09", partner=("G20", 1))  # 99211 is E/M
# Several surgeries: the finding names the earliest unexcused one (DOS, then claim, then line).
line("G21A", 1, "PG21", "33278", set(), dos="2026-05-01")
line("G21B", 1, "PG21", "58580", set(), dos="2026-05-06")
line("G21C", 1, "PG21", "99213", {"GLOBAL_EM_IN_PERIOD"}, dos="2026-05-08", partner=("G21A", 1))
line("G22A", 1, "PG22", "33278", set(), dos="2026-05-01")
line("G22B", 1, "PG22", "11981", set(), dos="2026-05-10")
# 24 excuses the visit from 33278 (done before) but not from 11981 (done that day).
line("G22C", 1, "PG22", "99213", {"GLOBAL_EM_IN_PERIOD"}, mods="24", dos="2026-05-10", partner=("G22B", 1))
line("G23B", 1, "PG23", "33278", set(), dos="2026-05-06")
line("G23A", 1, "PG23", "11981", set(), dos="2026-05-06")                     # 000: its period is over by 05-12
line("G23A", 2, "PG23", "58580", set(), dos="2026-05-06")
line("G23C", 1, "PG23", "99213", {"GLOBAL_EM_IN_PERIOD"}, dos="2026-05-12", partner=("G23A", 2))  # G23A first
# The surgery's global days come from the release that judges the surgery's DOS: 55705 is 010 in RVU25D and
# 000 in RVU26B.
line("G24", 1, "PG24", "55705", set(), dos="2025-12-30")                     # RVU25D: 010, to 2026-01-09
line("G24x", 1, "PG24", "99213", {"GLOBAL_EM_IN_PERIOD"}, dos="2026-01-05", partner=("G24", 1))
line("G25", 1, "PG25", "55705", set(), dos="2026-05-04")                     # RVU26B: 000
line("G25x", 1, "PG25", "99213", set(), dos="2026-05-06")
# Global days MMM (59409, vaginal delivery only) have no period here.
line("G26", 1, "PG26", "59409", set(), dos="2026-05-04")
line("G26x", 1, "PG26", "99213", set(), dos="2026-05-04")
line("G26y", 1, "PG26", "99213", set(), dos="2026-05-06")
# Modifiers as exports write them: lower case, with a space.
line("G28", 1, "PG28", "33278", set(), dos="2026-05-04")
line("G28x", 1, "PG28", "99213", set(), mods="ft", dos="2026-05-20")
line("G28y", 1, "PG28", "99213", set(), mods="25 24", dos="2026-05-21")
# The surgery and the visit need not share a file: the visit comes in the batch's second file.
line("G27", 1, "PG27", "58580", set(), dos="2026-05-04")
line("G27x", 1, "PG27", "99213", {"GLOBAL_EM_IN_PERIOD"}, dos="2026-05-06", partner=("G27", 1), second_file=True)
line("G27y", 1, "PG27", "58580", set(), dos="2026-06-01", second_file=True)
line("G27z", 1, "PG27", "99213", {"GLOBAL_EM_IN_PERIOD"}, dos="2026-06-03", partner=("G27y", 1))

# The surgery's status and global days come from the release of its own DOS: 0583T is status C (YYY) in
# RVU25D and status A (000) in RVU26B. PTP 0583T/99213 (indicator 1) bundles the visit besides.
line("G29", 1, "PG29", "0583T", {"STATUS_NOT_PAYABLE"}, dos="2025-12-31")
line("G29", 2, "PG29", "99213", {"PTP_NO_BYPASS"}, dos="2025-12-31")
line("G30", 1, "PG30", "0583T", set())
line("G30", 2, "PG30", "99213", {"GLOBAL_EM_IN_PERIOD", "PTP_NO_BYPASS"}, partner=("G30", 1))
# A surgery of December 2025 (RVU25D) holds a January 2026 visit (RVU26B) in its period.
line("G31", 1, "PG31", "33278", set(), dos="2025-12-20")
line("G31x", 1, "PG31", "99213", {"GLOBAL_EM_IN_PERIOD"}, dos="2026-01-10", partner=("G31", 1))
# A component's own row decides: 51725-26 is status A with global days 000.
line("G32", 1, "PG32", "51725", set(), mods="26")
line("G32", 2, "PG32", "99213", {"GLOBAL_EM_IN_PERIOD", "PTP_NO_BYPASS"}, partner=("G32", 1))
# 24 excuses a visit after the day of surgery only, not the day before a 090.
line("G33", 1, "PG33", "33278", set(), dos="2026-05-04")
line("G33x", 1, "PG33", "99213", {"GLOBAL_EM_IN_PERIOD"}, mods="24", dos="2026-05-03", partner=("G33", 1))
# 99242 lies in 99202-99499 but is status I: no E/M here (its MUE is 0 and the status denies it).
line("G34", 1, "PG34", "33278", set(), dos="2026-05-04")
line("G34x", 1, "PG34", "99242", {"STATUS_NOT_PAYABLE", "MUE_DOS"}, dos="2026-05-20")
# The surgery's provider is its billing NPI where it has no rendering NPI; the visit's rendering NPI is the same.
line("G35", 1, "PG35", "33278", set(), dos="2026-05-04", rendering="", billing=NPI_A)
line("G35x", 1, "PG35", "99213", {"GLOBAL_EM_IN_PERIOD"}, dos="2026-05-20", partner=("G35", 1))


# --- the rules for 76120 and the other graded rules on 2026 dates (RVU26B, MUE 2026Q2, PTP 2024Q3) --------
line("O1", 1, "PO1", "76000", {"PTP_NO_BYPASS"})                              # 76120/76000, indicator 1
line("O1", 2, "PO1", "76120", {"RECORDING_EVIDENCE"})
line("O2", 1, "PO2", "76000", {"PTP_BYPASSED"})                               # XU on the other line
line("O2", 2, "PO2", "76120", {"RECORDING_EVIDENCE"}, mods="XU")
line("O3", 1, "PO3", "92611", set())
line("O3", 2, "PO3", "76120", {"PTP_NO_BYPASS"}, mods="59")                   # 92611/76120, indicator 0
line("O4", 1, "PO4", "99213", {"MOD_BYPASS_UNNEEDED"}, mods="59")
line("O5", 1, "PO5", "76120", {"DUP_COMPONENT"}, mods="26")                   # any providers
line("O5", 2, "PO5", "76120", {"DUP_COMPONENT"}, mods="26", rendering=NPI_B)
line("O6", 1, "PO6", "76120", {"MOD_SPLIT_SAME_BILLER"}, mods="26")          # one billing NPI, two renderings
line("O6", 2, "PO6", "76120", {"MOD_SPLIT_SAME_BILLER"}, mods="TC", rendering=NPI_B)
line("O7", 1, "PO7", "76120", {"MUE_DOS"}, mods="26")                         # 76 spares the duplicate, not the
line("O7", 2, "PO7", "76120", {"MUE_DOS"}, mods="26,76")                      # MUE of 1 a day (indicator 3)
line("O8", 1, "PO8", "G0514", {"MUE_LINE", "AOC_NO_PRIMARY"}, units="2", severity="deny")  # MUE 1, indicator 1
line("O9", 1, "PO9", "99213", set())
line("O9", 2, "PO9", "36591", {"STATUS_NOT_PAYABLE", "PTP_NO_BYPASS"})        # status T beside another service
line("O10", 1, "PO10", "70450", {"MPPR_IMAGING"})
line("O10", 2, "PO10", "71250", set())
line("O11", 1, "PO11", "76120", {"MOD_GLOBAL_IN_HOSPITAL"}, pos="22")
line("O12", 1, "PO12", "76120", {"MOD_TC_IN_HOSPITAL"}, mods="TC", pos="22")
line("O13", 1, "PO13", "99213", {"MOD_PCTC_INVALID"}, mods="26")              # PC/TC indicator 0

# --- a hand-made AOC release for 2025Q1 (built in corpus_run): what the real files do not show -------------
# RVU25D prices these lines, MUE 2024Q3 and PTP 2024Q3 judge them.
Q1 = "2025-02-10"
# 11045 has an active type 1 row (11042) and an active type 3 row (17000): type 1 decides, with its primaries.
line("T1", 1, "PT1", "17000", set(), dos=Q1)
line("T1", 2, "PT1", "11045", {"AOC_NO_PRIMARY"}, dos=Q1, severity="deny")
line("T2", 1, "PT2", "11042", set(), dos=Q1)
line("T2", 2, "PT2", "11045", set(), dos=Q1)
# 17003's primary 17000 is deleted 2025-02-10 (its Primary_Code_DelDT); the edit, with 11042, stays.
line("T3", 1, "PT3", "17000", set(), dos="2025-02-10")
line("T3", 2, "PT3", "17003", set(), dos="2025-02-10")                        # the deletion day still counts
line("T4", 1, "PT4", "17000", set(), dos="2025-02-11")
line("T4", 2, "PT4", "17003", {"AOC_NO_PRIMARY"}, dos="2025-02-11", severity="deny")  # the day after: not
# 11201 itself is deleted as an add-on code from 2025-02-11 (AOC_DelDT 2025-02-10).
line("T5", 1, "PT5", "11201", {"AOC_NO_PRIMARY"}, dos="2025-02-10", severity="deny")
line("T6", 1, "PT6", "11201", set(), dos="2025-02-11")
# 64727's only edit (type 3) takes effect on 2025-02-15.
line("T7", 1, "PT7", "64727", set(), dos="2025-02-14")
line("T8", 1, "PT8", "64727", {"AOC_NO_PRIMARY"}, dos="2025-02-15", severity="review")
# 15777: a type 3 row lists CCCCC and 11042; CCCCC is no code, so another service does not satisfy it.
line("T9", 1, "PT9", "99213", set(), dos=Q1)
line("T9", 2, "PT9", "15777", {"AOC_NO_PRIMARY"}, dos=Q1, severity="review")
line("T10", 1, "PT10", "11042", set(), dos=Q1)
line("T10", 2, "PT10", "15777", set(), dos=Q1)
# 20701/20240 is deleted on 2025-02-10 (AOC_Edit_DelDT), 20701/11010 stays: 20240 counts up to that day.
line("T11", 1, "PT11", "20240", set(), dos="2025-02-10")
line("T11", 2, "PT11", "20701", set(), dos="2025-02-10")
line("T12", 1, "PT12", "20240", set(), dos="2025-02-11")
line("T12", 2, "PT12", "20701", {"AOC_NO_PRIMARY"}, dos="2025-02-11", severity="deny")

# The hand-made workbook, in the official layout (Julian dates): type, add-on, AOC_DelDT, primary,
# Primary_Code_DelDT, AOC_Edit_EffDT, AOC_Edit_DelDT.
HANDMADE_AOC = [
    ("1", "11045", "", "11042", "", "2013091", ""),
    ("3", "11045", "", "17000", "", "2013091", ""),
    ("1", "17003", "", "17000", "2025041", "2013091", ""),
    ("1", "17003", "", "11042", "", "2013091", ""),
    ("1", "11201", "2025041", "11200", "", "2013091", ""),
    ("3", "64727", "", "64721", "", "2025046", ""),
    ("3", "15777", "", "CCCCC", "", "2013091", ""),
    ("3", "15777", "", "11042", "", "2013091", ""),
    ("1", "20701", "", "20240", "", "2020001", "2025041"),
    ("1", "20701", "", "11010", "", "2020001", ""),
]


def handmade_aoc_workbook(path):
    book = Workbook()
    sheet = book.active
    sheet.append(["CPT codes and descriptions only are copyright American Medical Association."])
    sheet.append(AOC_HEADER)
    for edit_type, add_on, add_on_deleted, primary, primary_deleted, effective, deleted in HANDMADE_AOC:
        sheet.append([edit_type, add_on, add_on_deleted, primary, primary_deleted, effective, deleted, ""])
    book.save(path)
    return path


# --- surgery modifiers and their payment adjustments --------------------------------------------------------
line("M1", 1, "PM1", "43752", {"MOD_BILATERAL_INVALID"}, mods="50", severity="review")   # bilateral 0
line("M2", 1, "PM2", "20600", set(), mods="50")                                          # bilateral 1: x1.50
line("M3", 1, "PM3", "11010", {"MOD_BILATERAL_INVALID"}, mods="50", severity="review")   # bilateral 2
line("M4", 1, "PM4", "92230", set(), mods="50")                                          # bilateral 3: x2.00
line("M5", 1, "PM5", "11300", {"MOD_BILATERAL_INVALID"}, mods="50", severity="deny")     # bilateral 9
line("M6", 1, "PM6", "20600", set())                                                     # no modifier
line("M7", 1, "PM7", "93503", {"MOD_ASSISTANT_NOT_PAYABLE"}, mods="80", severity="review")  # assistant 0
line("M8", 1, "PM8", "29280", {"MOD_ASSISTANT_NOT_PAYABLE"}, mods="80", severity="deny")    # assistant 1
line("M9", 1, "PM9", "64704", set(), mods="80")                                             # assistant 2
line("M10", 1, "PM10", "92961", {"MOD_ASSISTANT_NOT_PAYABLE"}, mods="80", severity="deny")  # assistant 9
line("M11", 1, "PM11", "64704", set(), mods="81")
line("M12", 1, "PM12", "64704", set(), mods="82")
line("M13", 1, "PM13", "64704", set(), mods="AS")                                           # x0.136
line("M14", 1, "PM14", "64704", set(), mods="80,AS")                                        # 80 wins: x0.16
line("M15", 1, "PM15", "29280", {"MOD_ASSISTANT_NOT_PAYABLE"}, mods="AS", severity="deny")  # AS, assistant 1
line("M16", 1, "PM16", "93503", {"MOD_ASSISTANT_NOT_PAYABLE"}, mods="82", severity="review")  # 82, assistant 0
line("M17", 1, "PM17", "29280", {"MOD_COSURGEON_NOT_PAYABLE"}, mods="62", severity="deny")    # co-surgeon 0
line("M18", 1, "PM18", "20650", {"MOD_COSURGEON_NOT_PAYABLE"}, mods="62", severity="review")  # co-surgeon 1
line("M19", 1, "PM19", "28666", set(), mods="62")                                             # co-surgeon 2
line("M20", 1, "PM20", "92961", {"MOD_COSURGEON_NOT_PAYABLE"}, mods="62", severity="deny")    # co-surgeon 9
line("M21", 1, "PM21", "29280", {"MOD_TEAM_NOT_PAYABLE"}, mods="66", severity="deny")         # team 0
line("M22", 1, "PM22", "45990", {"MOD_TEAM_NOT_PAYABLE"}, mods="66", severity="review")       # team 1
line("M23", 1, "PM23", "61618", set(), mods="66")                                             # team 2
line("M24", 1, "PM24", "92961", {"MOD_TEAM_NOT_PAYABLE"}, mods="66", severity="deny")         # team 9
line("M25", 1, "PM25", "61618", set(), mods="66,80")                                   # 66 unprices whatever else
line("M26", 1, "PM26", "27227", set(), mods="62,80")                                   # co-surgery, then assistant
line("M27", 1, "PM27", "27829", set(), mods="50,62,80")                                # bilateral, co, assistant
line("M28", 1, "PM28", "92961", {"MOD_BILATERAL_INVALID", "MOD_ASSISTANT_NOT_PAYABLE",
                                 "MOD_COSURGEON_NOT_PAYABLE"}, mods="50,62,80", severity="deny")  # all 9
line("M29", 1, "PM29", "20650", {"MOD_COSURGEON_NOT_PAYABLE"}, mods="62", pos="22", severity="review")  # facility
line("M30", 1, "PM30", "20600", set(), mods="RT")                                     # RT is no bilateral
line("M31", 1, "PM31", "20600", set(), mods="50", units="2")                          # the adjusted fee x units
line("M32", 1, "PM32", "99999", {"CODE_NOT_IN_FEE_SCHEDULE", "MUE_NOT_PUBLISHED"}, mods="50,62,66,80")  # no row
# Indicators of a component come from its own row: 76519 global is bilateral 2, 76519-26 bilateral 3; 72159
# global is assistant 0, 72159-TC assistant 9 (both status R); 77022-26 is assistant 9 (77022 is status C).
line("M33", 1, "PM33", "76519", {"MOD_BILATERAL_INVALID"}, mods="50", severity="review")
line("M34", 1, "PM34", "76519", set(), mods="26,50")
line("M35", 1, "PM35", "72159", {"MOD_ASSISTANT_NOT_PAYABLE", "STATUS_NOT_PAYABLE"}, mods="TC,80", severity="deny")
line("M36", 1, "PM36", "72159", {"MOD_ASSISTANT_NOT_PAYABLE", "STATUS_NOT_PAYABLE"}, mods="80", severity="review")
line("M37", 1, "PM37", "77022", {"MOD_ASSISTANT_NOT_PAYABLE"}, mods="26,AS", severity="deny")


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory, reference_db):
    work = tmp_path_factory.mktemp("beyond")
    db = work / "claimscrub.duckdb"
    shutil.copyfile(reference_db, db)
    with duckdb.connect(str(db)) as con:
        load_release(con, Release(id="AOC TEST 2025Q1", table="aoc", layout="aoc_xlsx",
                                  effective_start=date(2025, 1, 1), effective_end=date(2025, 3, 31),
                                  files=[handmade_aoc_workbook(work / "aoc_handmade.xlsx")], origin="test"))
    run = engine_scrub([write_csv(work / "beyond.csv", ROWS), write_csv(work / "beyond-more.csv", ROWS_SECOND_FILE)],
                work / "out", db)
    assert run.exit_code == 0, run.stderr
    return run


def test_the_corpus_is_big_enough():
    assert len(EXPECT) >= 80 and len(EXPECT) == len(ROWS) + len(ROWS_SECOND_FILE)


@pytest.mark.parametrize("claim, n", sorted(EXPECT), ids=[f"{c}-{n}" for c, n in sorted(EXPECT)])
def test_each_line_gets_exactly_its_findings(corpus_run, claim, n):
    assert corpus_run.findings(claim, n) == EXPECT[(claim, n)]


def test_every_rule_beyond_76120_fires_in_the_corpus(corpus_run):
    assert {f["rule_id"] for f in corpus_run.flags} >= BEYOND


def test_severities_follow_the_rule_book(corpus_run):
    found = {(f["claim_id"], int(f["line_number"]), f["rule_id"]): f["severity"] for f in corpus_run.flags
             if f["rule_id"] in BEYOND}
    assert found == SEVERITY


def test_category_and_carc_of_each_rule(corpus_run):
    expected = {"AOC_NO_PRIMARY": ("bundling", "B15"), "GLOBAL_EM_IN_PERIOD": ("bundling", "97"),
                "MOD_BILATERAL_INVALID": ("modifier", "4"), "MOD_ASSISTANT_NOT_PAYABLE": ("modifier", "54"),
                "MOD_COSURGEON_NOT_PAYABLE": ("modifier", "54"), "MOD_TEAM_NOT_PAYABLE": ("modifier", "54")}
    for f in corpus_run.flags:
        if f["rule_id"] in expected:
            assert (f["category"], f["carc"]) == expected[f["rule_id"]], f


def test_a_visit_in_a_global_period_names_the_earliest_surgery_it_is_not_excused_from(corpus_run):
    named = {(f["claim_id"], int(f["line_number"])): (f["partner_claim_id"], f["partner_line_number"])
             for f in corpus_run.flags if f["rule_id"] == "GLOBAL_EM_IN_PERIOD"}
    assert named == PARTNER
    message = next(f["message"] for f in corpus_run.flags if f["claim_id"] == "G21C")
    assert "33278" in message and "90-day" in message
    # The other surgery whose period holds the visit is named too: it needs its own excuse.
    assert "(and 1 more surgery line(s): 58580, claim G21B line 1, 2026-05-06)" in message
    # A surgery of December 2025 gives a January visit its period from RVU25D, not from the visit's RVU26B: the
    # finding names the release that gave the days (the visit's own releases are in its release columns).
    across = next(f for f in corpus_run.flags if f["claim_id"] == "G24x")
    assert "(claim G24 line 1, 2025-12-30; global days 010 in RVU25D)" in across["message"]
    assert across["rvu_release"] == "RVU26B"


def test_an_add_on_finding_names_its_release_type_and_primaries(corpus_run):
    def message(claim):
        return next(f["message"] for f in corpus_run.flags if f["claim_id"] == claim
                    and f["rule_id"] == "AOC_NO_PRIMARY")

    assert "AOC 2026Q2" in message("A2") and "edit type 1" in message("A2") and "11042" in message("A2")
    assert "edit type 2" in message("A7")
    assert "edit type 3" in message("A16") and "20240" not in message("A16")
    assert "AOC 2024Q3" in message("A20") and "88177" in message("A20")
    assert "AOC TEST 2025Q1" in message("T1") and "(11042)" in message("T1")     # the type 1 row's primaries
    assert "(11042)" in message("T9")                                            # CCCCC is not listed
    assert "AOC TEST 2025Q1" in message("A21")     # 2026Q1: the newest release that starts before it
    assert "edit type 3" in message("A25") and "(19301, 19302)" in message("A25")


# Per-unit fees, national (GPCIs 1.000), non-facility, RVU26B, CF 33.4009, rounded half up to the cent, then
# each modifier factor applied and rounded in turn (bilateral, co-surgery, assistant):
PRICES = {
    # 43752: (0.79 + 0.15 + 0.09) = 1.03 x 33.4009 = 34.402927 -> 34.40; bilateral 0: x1.00
    "M1": "34.40",
    # 20600: (0.64 + 0.96 + 0.08) = 1.68 x 33.4009 = 56.113512 -> 56.11; bilateral 1: x1.50 = 84.165 -> 84.17
    "M2": "84.17",
    # 11010: (4.09 + 9.21 + 0.75) = 14.05 x 33.4009 = 469.282645 -> 469.28; bilateral 2: x1.00
    "M3": "469.28",
    # 92230: (0.59 + 3.35 + 0.04) = 3.98 x 33.4009 = 132.935582 -> 132.94; bilateral 3: x2.00 = 265.88
    "M4": "265.88",
    # 11300: (0.59 + 2.24 + 0.06) = 2.89 x 33.4009 = 96.528601 -> 96.53; bilateral 9: x1.00
    "M5": "96.53",
    "M6": "56.11",     # 20600 without 50
    # 93503: (1.95 + 0.31 + 0.18) = 2.44 x 33.4009 = 81.498196 -> 81.50; 80: x0.16 = 13.04
    "M7": "13.04",
    # 29280: (0.38 + 0.48 + 0.04) = 0.90 x 33.4009 = 30.06081 -> 30.06; 80: x0.16 = 4.8096 -> 4.81
    "M8": "4.81",
    # 64704: (4.57 + 4.10 + 0.56) = 9.23 x 33.4009 = 308.290307 -> 308.29; 80: x0.16 = 49.3264 -> 49.33
    "M9": "49.33",
    # 92961: (4.23 + 1.24 + 0.98) = 6.45 x 33.4009 = 215.435805 -> 215.44; 80: x0.16 = 34.4704 -> 34.47
    "M10": "34.47",
    "M11": "49.33",    # 81, as 80
    "M12": "49.33",    # 82, as 80
    "M13": "41.93",    # AS: 308.29 x 0.136 = 41.92744 -> 41.93
    "M14": "49.33",    # 80 and AS: the assistant factor 0.16 only
    "M15": "4.09",     # 29280-AS: 30.06 x 0.136 = 4.08816 -> 4.09
    "M16": "13.04",    # 93503-82
    "M17": "18.79",    # 29280-62: 30.06 x 0.625 = 18.7875 -> 18.79
    # 20650: (2.22 + 4.87 + 0.38) = 7.47 x 33.4009 = 249.504723 -> 249.50; 62: x0.625 = 155.9375 -> 155.94
    "M18": "155.94",
    # 28666: (2.59 + 2.11 + 0.21) = 4.91 x 33.4009 = 163.998419 -> 164.00; 62: x0.625 = 102.50
    "M19": "102.50",
    "M20": "134.65",   # 92961-62: 215.44 x 0.625 = 134.65
    "M21": "", "M22": "", "M23": "", "M24": "", "M25": "",   # 66: priced by report, not here
    # 27227: (24.77 + 14.56 + 5.26) = 44.59 x 33.4009 = 1489.346131 -> 1489.35; 62: x0.625 = 930.84375 ->
    # 930.84; 80: x0.16 = 148.9344 -> 148.93 (one rounding at the end would give 148.94)
    "M26": "148.93",
    # 27829: (8.58 + 9.94 + 1.63) = 20.15 x 33.4009 = 673.028135 -> 673.03; 50 (bilateral 1): x1.50 = 1009.545
    # -> 1009.55; 62: x0.625 = 630.96875 -> 630.97; 80: x0.16 = 100.9552 -> 100.96 (at once: 100.95)
    "M27": "100.96",
    # 92961 (bilateral 9): 215.44 x1.00; 62: 134.65; 80: x0.16 = 21.544 -> 21.54
    "M28": "21.54",
    # 20650 in a hospital outpatient department (POS 22), facility PE: (2.22 + 2.19 + 0.38) = 4.79 x 33.4009 =
    # 159.990311 -> 159.99; 62: x0.625 = 99.99375 -> 99.99
    "M29": "99.99",
    "M30": "56.11",
    "M31": "168.34",   # 20600-50, 2 units: 84.17 x 2
    "M32": "",         # not in the fee schedule
    # 76519: (0.53 + 1.53 + 0.02) = 2.08 x 33.4009 = 69.473872 -> 69.47; bilateral 2: x1.00
    "M33": "69.47",
    # 76519-26: (0.53 + 0.36 + 0.01) = 0.90 x 33.4009 = 30.06081 -> 30.06; its row's bilateral 3: x2.00
    "M34": "60.12",
    # 72159-TC: (0.00 + 7.59 + 0.04) = 7.63 x 33.4009 = 254.848867 -> 254.85; 80: x0.16 = 40.776 -> 40.78
    "M35": "40.78",
    # 72159: (1.76 + 8.21 + 0.13) = 10.10 x 33.4009 = 337.34909 -> 337.35; 80: x0.16 = 53.976 -> 53.98
    "M36": "53.98",
    # 77022-26: (4.13 + 1.37 + 0.22) = 5.72 x 33.4009 = 191.053148 -> 191.05; AS: x0.136 = 25.9828 -> 25.98
    "M37": "25.98",
}
UNIT_FEES = {"M1": "34.40", "M2": "56.11", "M9": "308.29", "M18": "249.50", "M23": "1218.46", "M27": "673.03"}


@pytest.mark.parametrize("claim", sorted(PRICES))
def test_payment_modifiers_adjust_the_expected_allowed(corpus_run, claim):
    priced = corpus_run.line(claim, 1)
    assert (priced["expected_allowed"], priced["locality"]) == (PRICES[claim], "national")
    assert (priced["rvu_release"], priced["facility"]) == ("RVU26B", "true" if claim == "M29" else "false")


def test_lines_keep_the_fee_schedules_unit_fee(corpus_run):
    # 61618: (18.22 + 12.18 + 6.08) = 36.48 x 33.4009 = 1218.464832 -> 1218.46, though 66 leaves it unpriced.
    assert {claim: corpus_run.line(claim, 1)["unit_fee"] for claim in UNIT_FEES} == UNIT_FEES


def test_team_surgery_is_not_priced_and_says_why(corpus_run):
    for claim in ("M21", "M22", "M23", "M24", "M25"):
        assert "team surgery" in corpus_run.line(claim, 1)["price_note"]
    assert corpus_run.line("M9", 1)["price_note"] == ""


def test_dollars_at_risk_is_the_adjusted_expected_allowed(corpus_run):
    for f in corpus_run.flags:
        assert f["dollars_at_risk"] == (corpus_run.line(f["claim_id"], f["line_number"])["expected_allowed"]
                                        or "0.00"), f
    risk = {f["claim_id"]: f["dollars_at_risk"] for f in corpus_run.flags if f["rule_id"] in BEYOND}
    assert (risk["M7"], risk["M17"], risk["M18"], risk["M22"]) == ("13.04", "18.79", "155.94", "0.00")
    # 99213: (1.30 + 1.46 + 0.09) = 2.85 x 33.4009 = 95.192565 -> 95.19
    assert risk["G2b"] == "95.19"


# --- history: a surgery of an earlier batch puts tonight's visits in its period -------------------------
EARLIER = [  # claim, patient, code, DOS
    ("H1S", "PH1", "33278", "2026-04-06"),   # 090: period to 07-05
    ("H2S", "PH2", "58580", "2026-06-30"),   # 010: period to 07-10
    ("H3S", "PH3", "33278", "2026-07-06"),   # 090 the day after the visit: period from 07-05
    ("H4S", "PH4", "33278", "2026-04-05"),   # 090: period to 07-04
    ("H6S", "PH6", "11042", "2026-07-05"),   # the primary of tonight's add-on, same day and provider
]
TONIGHT = {  # claim: (patient, code, findings without history, findings with it, the line named)
    "H1": ("PH1", "99213", set(), {"GLOBAL_EM_IN_PERIOD"}, ("H1S", "1")),   # d + 90, the batch's first date
    "H2": ("PH2", "99213", set(), {"GLOBAL_EM_IN_PERIOD"}, ("H2S", "1")),   # d + 5
    "H3": ("PH3", "99213", set(), {"GLOBAL_EM_IN_PERIOD"}, ("H3S", "1")),   # d - 1
    "H4": ("PH4", "99213", set(), set(), None),                             # d + 91
    "H5": ("PH5", "99213", set(), set(), None),                             # no surgery at all
    "H6": ("PH6", "11045", {"AOC_NO_PRIMARY"}, set(), None),                # its primary came last night
}


def _history_line(claim, patient, code, dos):
    return dict(claim_id=claim, line_number=1, patient_id=patient, date_of_service=dos, hcpcs=code, modifiers="",
                units="1", rendering_npi=NPI_A, billing_npi=NPI_G, place_of_service="11",
                claim_type="professional", diagnosis_1="R10.9")


@pytest.fixture(scope="module")
def history_runs(tmp_path_factory, reference_db):
    work = tmp_path_factory.mktemp("beyond-history")
    db = work / "claimscrub.duckdb"
    shutil.copyfile(reference_db, db)
    earlier = engine_scrub([write_csv(work / "earlier.csv", [_history_line(*row) for row in EARLIER])],
                           work / "earlier", db, history=True)
    assert earlier.exit_code == 0, earlier.stderr
    tonight = write_csv(work / "tonight.csv", [_history_line(claim, patient, code, "2026-07-05")
                                               for claim, (patient, code, *_) in TONIGHT.items()])
    alone = engine_scrub([tonight], work / "alone", db)
    assert alone.exit_code == 0, alone.stderr
    together = engine_scrub([tonight], work / "together", db, history=True)
    assert together.exit_code == 0, together.stderr
    return earlier, alone, together


@pytest.mark.parametrize("claim", sorted(TONIGHT))
def test_a_surgery_of_an_earlier_batch_puts_a_visit_in_its_period_with_history(history_runs, claim):
    earlier, alone, together = history_runs
    _, _, without, with_history, named = TONIGHT[claim]
    assert alone.findings(claim, 1) == without, "without history a batch is judged on its own"
    assert together.findings(claim, 1) == with_history
    for f in together.flags:
        if f["claim_id"] == claim:
            assert (f["partner_claim_id"], f["partner_line_number"]) == named
            assert f["partner_batch"] == earlier.summary["batch_id"]
            assert f["message"].endswith(f"Earlier batch: {earlier.summary['batch_id']}.")
            assert f["severity"] == "deny" and f["dollars_at_risk"] == "95.19"


def test_the_earlier_batch_is_not_judged_again(history_runs):
    earlier, _, together = history_runs
    assert earlier.flags == []
    assert {f["claim_id"] for f in together.flags} <= set(TONIGHT)


# --- history under a release loaded since: an earlier surgery's period is that of the release judging it now --
# RULES.md: "The surgery's global days come from the RVU release that judges the surgery line's DOS". A
# release of 2025Q2 loaded after last night's run now judges a 2025-06-30 surgery, in place of RVU25D (2025Q4)
# that judged it then: in it 55705 has no global period (RVU25D: 010) and 11042 a 90-day one (RVU25D: 000).
RVU_2025Q2_ROWS = [
    "55705,,,A,,4.61,2.81,NA,2.81,,0.56,7.98,7.98,0,XXX,0.10,0.80,0.10,2,0,1,1,0,,32.3465,09,0,99,0.00,0.00,0.00",
    "11042,,,A,,1.01,2.73,,0.68,,0.13,3.87,1.82,0,090,0.00,0.00,0.00,2,0,1,0,0,,32.3465,09,0,99,0.00,0.00,0.00",
    "99213,,,A,,1.30,1.35,,0.57,,0.10,2.75,1.97,0,XXX,0.00,0.00,0.00,0,0,0,0,0,,32.3465,09,0,99,0.00,0.00,0.00",
]
SURGERIES_LAST_NIGHT = [("G1S", "PG1", "55705", "2025-06-30"), ("G2S", "PG2", "11042", "2025-06-30")]
VISITS_TONIGHT = {"G1": ("PG1", set(), None), "G2": ("PG2", {"GLOBAL_EM_IN_PERIOD"}, ("G2S", "1"))}


@pytest.fixture(scope="module")
def release_since_runs(tmp_path_factory, reference_db):
    work = tmp_path_factory.mktemp("beyond-release-since")
    db = work / "claimscrub.duckdb"
    shutil.copyfile(reference_db, db)
    surgeries = [_history_line(*row) for row in SURGERIES_LAST_NIGHT]
    last_night = engine_scrub([write_csv(work / "last-night.csv", surgeries)], work / "last-night", db, history=True)
    assert last_night.exit_code == 0, last_night.stderr
    header = (Path(__file__).parent / "fixtures" / "reference" / "PPRRVU2025_Oct_excerpt.csv").read_text(
        encoding="latin-1").splitlines()[:10]
    excerpt = work / "PPRRVU2025_Apr_excerpt.csv"
    excerpt.write_text("\n".join([*header, *RVU_2025Q2_ROWS]) + "\n", encoding="latin-1")
    with duckdb.connect(str(db)) as con:
        load_release(con, Release(id="RVU25B TEST", table="rvu", layout="pprrvu", effective_start=date(2025, 4, 1),
                                  effective_end=date(2025, 6, 30), files=[excerpt], origin="test"))
    visits = [_history_line(claim, patient, "99213", "2025-07-05") for claim, (patient, *_) in VISITS_TONIGHT.items()]
    tonight = engine_scrub([write_csv(work / "tonight.csv", visits)], work / "tonight", db, history=True)
    assert tonight.exit_code == 0, tonight.stderr
    # The same lines in one batch, on a database of the same releases: what history must agree with.
    together_db = work / "together.duckdb"
    shutil.copyfile(reference_db, together_db)
    with duckdb.connect(str(together_db)) as con:
        load_release(con, Release(id="RVU25B TEST", table="rvu", layout="pprrvu", effective_start=date(2025, 4, 1),
                                  effective_end=date(2025, 6, 30), files=[excerpt], origin="test"))
    together = engine_scrub([write_csv(work / "together.csv", [*surgeries, *visits])], work / "together",
                            together_db)
    assert together.exit_code == 0, together.stderr
    return last_night, tonight, together


@pytest.mark.parametrize("claim", sorted(VISITS_TONIGHT))
def test_an_earlier_surgery_has_the_period_of_the_release_that_judges_its_date_now(release_since_runs, claim):
    last_night, tonight, together = release_since_runs
    _, expected, named = VISITS_TONIGHT[claim]
    assert tonight.findings(claim, 1) == expected
    assert together.findings(claim, 1) == expected, "history judges as one batch of both nights would"
    for f in tonight.flags:
        if f["claim_id"] == claim:
            assert (f["partner_claim_id"], f["partner_line_number"], f["partner_batch"]) == \
                (*named, last_night.summary["batch_id"])
