"""837P claim files as scrub input: other projects' samples counted exactly, the mapping of each column,
any separators, line breaks or byte-order mark, quarantine of an unscrubbable line, and exit 2."""

import shutil
from pathlib import Path

import pytest

from .helpers import module_site, scrub, write_csv
from .x12_files import Separators, npi, write_837p

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "x12"

# Service lines (SV1 segments) of each shared 837P sample.
SAMPLE_LINES = {
    "x12_valid.txt": 2,
    "x12_complex.txt": 10,
    "x12_many_claims.txt": 820,
    "837P_5010_Example1_HealthInsurance.txt": 4,
    "837P_5010_Example2_Encounter.txt": 4,
    "837P_5010_Example3_COB.txt": 3,
    "837P_5010_MedicaidExample.txt": 10,
}

GROUP, OTHER_GROUP = npi("555000111"), npi("555000222")
CLAIM_DOC, LINE_DOC = npi("123456789"), npi("987654321")



def _head(control: int) -> str:
    """An 837P file's first segments, one a line: the envelope of interchange `control` and the billing
    provider's loop (2000A)."""
    return f"""\
ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*RECEIVER       *240901*1200*^*00501*{control:09d}*0*T*:~
GS*HC*SENDER*RECEIVER*20240901*1200*{control}*X*005010X222A1~
ST*837*0001*005010X222A1~
BHT*0019*00*0001*20240901*1200*CH~
HL*1**20*1~
NM1*85*2*GROUP*****XX*{GROUP}~
"""


# One segment a line, so that a segment's number is its line number here.
MAPPING_837P = _head(7) + f"""\
HL*2*1*22*1~
SBR*P*18*******CI~
NM1*IL*1*DOE*JANE****MI*MEMBER-1~
NM1*PR*2*ACME HEALTH*****PI*P1~
HL*3*2*23*0~
PAT*19~
NM1*QC*1*DOE*TED~
CLM*MAP-1*200***22:B:1*Y*A*Y*Y~
DTP*472*D8*20240812~
HI*ABK:R1310*ABF:K219~
NM1*82*1*DOC*CLAIM****XX*{CLAIM_DOC}~
NM1*77*2*CLINIC*****XX*1234567893~
N3*2 CLINIC RD~
N4*BALTIMORE*MD*212011234~
SBR*S*18*******CI~
NM1*IL*1*DOE*JANE****MI*OTHER-MEMBER~
NM1*PR*2*OTHER PAYER*****PI*P2~
NM1*82*1*OTHER*DOC****XX*9999999999~
LX*1~
SV1*HC:76120:26*100*UN*1***1~
LX*2~
SV1*HC:99213*100*UN*1*11**1~
DTP*472*RD8*20240813-20240815~
NM1*82*1*DOC*LINE****XX*{LINE_DOC}~
HL*4**20*1~
NM1*85*2*OTHER GROUP*****XX*{OTHER_GROUP}~
HL*5*4*22*0~
SBR*P*18*******CI~
NM1*IL*1*ROE*RICHARD****MI*MEMBER-2~
NM1*PR*2*BLUE PLAN*****PI*P3~
CLM*MAP-2*100***11:B:1*Y*A*Y*Y~
HI*ABK:I10~
LX*1~
SV1*HC:7612*50*UN*0***1~
DTP*472*D8*20240814~
LX*2~
SV1*HC:99213*50*UN*1***1~
DTP*472*D8*20240814~
SE*43*0001~
GE*1*7~
IEA*1*000000007~
"""



# Where a service was rendered: no service facility loop on the claim, so the billing provider's address
# (2010AA, San Francisco) for line 1; line 2 names its own service facility (2420C, Birmingham).
LOCATIONS_837P = f"""\
ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*RECEIVER       *240901*1200*^*00501*000000009*0*T*:~
GS*HC*SENDER*RECEIVER*20240901*1200*9*X*005010X222A1~
ST*837*0001*005010X222A1~
BHT*0019*00*0001*20240901*1200*CH~
HL*1**20*1~
NM1*85*2*GROUP*****XX*{GROUP}~
N3*1 MAIN ST~
N4*SAN FRANCISCO*CA*941031234~
NM1*87*2*PAY TO ADDRESS~
N4*BIRMINGHAM*AL*35203~
HL*2*1*22*0~
SBR*P*18*******CI~
NM1*IL*1*DOE*JANE****MI*MEMBER-3~
NM1*PR*2*ACME HEALTH*****PI*P1~
CLM*LOC-1*200***11:B:1*Y*A*Y*Y~
DTP*472*D8*20240812~
HI*ABK:R1310~
LX*1~
SV1*HC:76120*100*UN*1***1~
LX*2~
SV1*HC:76120:26*100*UN*1***1~
NM1*77*2*CLINIC*****XX*1234567893~
N4*BIRMINGHAM*AL*35203~
SE*20*0001~
GE*1*9~
IEA*1*000000009~
"""


def _with_set_counts(text: str) -> str:
    """The file with each SE01 set to its transaction set's segment count (ST to SE)."""
    out, count = [], 0
    for segment in text.splitlines():
        count = 1 if segment.startswith("ST*") else count + 1
        out.append(segment.replace("SE*n*", f"SE*{count}*") if segment.startswith("SE*n*") else segment)
    return "\n".join(out) + "\n"


# Two siblings under one subscriber (2000C, no member id of their own) seen the same day for the same visit;
# anesthesia time in minutes (SV103 MJ); a second SV1 under one LX; and an 837I set beside the 837P one.
DEPENDENTS_837P = _with_set_counts(_head(8) + """\
HL*2*1*22*1~
SBR*P*18*******CI~
NM1*IL*1*BETA*BOB****MI*SUB-9~
NM1*PR*2*ACME HEALTH*****PI*P1~
HL*3*2*23*0~
PAT*19~
NM1*QC*1*BETA*AMY~
DMG*D8*20150101*F~
CLM*SIB-1*100***11:B:1*Y*A*Y*Y~
HI*ABK:J069~
LX*1~
SV1*HC:99213*100*UN*1***1~
DTP*472*D8*20240810~
HL*4*2*23*0~
PAT*19~
NM1*QC*1*BETA*BEN~
DMG*D8*20180101*M~
CLM*SIB-2*400***11:B:1*Y*A*Y*Y~
HI*ABK:J069~
LX*1~
SV1*HC:99213*100*UN*1***1~
DTP*472*D8*20240810~
LX*2~
SV1*HC:01996*300*MJ*30***1~
DTP*472*D8*20240810~
SV1*HC:20610*100*UN*1***1~
DTP*472*D8*20240810~
SE*n*0001~
GE*1*8~
GS*HC*SENDER*RECEIVER*20240901*1200*9*X*005010X223A2~
ST*837*0002*005010X223A2~
BHT*0019*00*0002*20240901*1200*CH~
SE*n*0002~
GE*1*9~
IEA*2*000000008~
""")

# The same claims written three ways; each file's claim ids carry its own prefix.
VARIANTS = {
    "pipes-newline-terminator.837": {"sep": Separators("|", ">", "\n", "^"), "line_breaks": False},
    "bom-no-line-breaks.837": {"bom": True, "line_breaks": False},
    "three-interchanges-crlf.837": {"interchanges": 3},
    "wrapped-80-columns.837": {"line_breaks": False, "wrap": 80},
    # A break just before the ISA's terminator, and one inside a later interchange's ISA.
    "wrapped-105-columns.837": {"line_breaks": False, "wrap": 105},
    "wrapped-116-columns-three-interchanges.837": {"line_breaks": False, "wrap": 116, "interchanges": 3},
}


def _variant_rows(prefix: str) -> list[dict]:
    base = {"patient_id": "PAT01", "date_of_service": "2024-08-12", "rendering_npi": CLAIM_DOC,
            "billing_npi": GROUP, "place_of_service": "11", "diagnosis_1": "R13.10", "payer": "ACME HEALTH",
            "charge": "100.00"}
    return [
        {**base, "claim_id": f"{prefix}-1", "line_number": 1, "hcpcs": "76120", "modifiers": "26", "units": 1,
         "place_of_service": "22"},
        {**base, "claim_id": f"{prefix}-2", "line_number": 1, "hcpcs": "99213", "modifiers": "", "units": 1},
        {**base, "claim_id": f"{prefix}-2", "line_number": 2, "hcpcs": "71046", "modifiers": "26,59",
         "units": 2},
        {**base, "claim_id": f"{prefix}-3", "line_number": 1, "hcpcs": "93000", "modifiers": "", "units": 1,
         "patient_id": "PAT02"},
    ]


@pytest.fixture(scope="module")
def handmade_run(tmp_path_factory, reference_db):
    """One scrub of the hand-written mapping file and the three encodings of the same claims."""
    with module_site(tmp_path_factory, reference_db, "x12-handmade") as (folder, db):
        mapping = folder / "mapping.837"
        mapping.write_text(MAPPING_837P, encoding="ascii")
        dependents = folder / "dependents.837"
        dependents.write_text(DEPENDENTS_837P, encoding="ascii")
        files = [mapping, dependents]
        for n, (name, options) in enumerate(VARIANTS.items()):
            files.append(write_837p(folder / name, _variant_rows(f"V{n}"), **options))
        locations = folder / "locations.837"
        locations.write_text(LOCATIONS_837P, encoding="ascii")
        return scrub([*files, locations], folder / "out", db, "--show-ids")


@pytest.fixture(scope="module")
def samples_run(tmp_path_factory, reference_db):
    with module_site(tmp_path_factory, reference_db, "x12-samples") as (folder, db):
        return scrub([FIXTURES / name for name in SAMPLE_LINES], folder / "out", db)


def test_shared_837p_samples_read_every_service_line_exactly(samples_run):
    assert samples_run.exit_code == 0, samples_run.stderr
    files = {f["file"]: f for f in samples_run.summary["files"]}
    assert {name: f["rows_read"] for name, f in files.items()} == SAMPLE_LINES
    for f in files.values():
        assert f["kind"] == "x12"
        assert f["rows_read"] == f["lines_scrubbed"] + f["rows_quarantined"]


def test_shared_837p_sample_lines_keep_their_sv1_segment_number(samples_run):
    lines = [r for r in samples_run.lines if r["source_file"] == "837P_5010_Example1_HealthInsurance.txt"]
    assert [(r["claim_id"], r["line_number"], r["hcpcs"], r["source_row"]) for r in lines] == [
        ("26463774", "1", "99213", "33"), ("26463774", "2", "87070", "36"),
        ("26463774", "3", "99214", "39"), ("26463774", "4", "86663", "42"),
    ]


def test_837p_columns_come_from_the_loops_the_guide_names(handmade_run):
    assert handmade_run.exit_code == 0, handmade_run.stderr
    first, second = handmade_run.line("MAP-1", 1), handmade_run.line("MAP-1", 2)
    # Line 1: no DTP or SV105 of its own, so the claim's date and CLM05 place; 2310B renders it.
    assert (first["source_row"], first["date_of_service"], first["hcpcs"], first["modifiers"]) == (
        "26", "2024-08-12", "76120", "26")
    assert (first["place_of_service"], first["provider_npi"], first["payer"], first["patient"]) == (
        "22", CLAIM_DOC, "ACME HEALTH", "MEMBER-1 DOE TED")  # a dependent (2000C): the subscriber's id, TED
    assert first["locality"] != "national"  # from the 2310C ZIP
    # Line 2: its own date (the first day of its range), place of service and 2420A rendering provider; the
    # 2330D provider is ignored. The range is said: its units count toward its first day's MUE.
    assert (second["source_row"], second["date_of_service"], second["place_of_service"],
            second["provider_npi"]) == ("28", "2024-08-13", "11", LINE_DOC)
    ranges = ("mapping.837: 1 line dated by a range of days (DTP*472*RD8): a line is judged on the "
              "first day of its range, and all its units count toward that day (bill one line per day where a "
              "code's MUE is per day)")
    assert any(n.endswith(ranges) for n in handmade_run.stderr.splitlines())
    other = handmade_run.line("MAP-2", 2)
    assert (other["provider_npi"], other["payer"], other["patient"]) == (OTHER_GROUP, "BLUE PLAN", "MEMBER-2")
    assert "DX_MISSING" not in handmade_run.findings("MAP-1", 1) | handmade_run.findings("MAP-2", 2)


def test_837p_dependents_of_one_subscriber_are_patients_of_their_own(handmade_run):
    amy, ben = handmade_run.line("SIB-1", 1), handmade_run.line("SIB-2", 1)
    assert (amy["patient"], ben["patient"]) == ("SUB-9 BETA AMY 20150101", "SUB-9 BETA BEN 20180101")
    assert "DUP_EXACT" not in handmade_run.findings("SIB-1", 1) | handmade_run.findings("SIB-2", 1)


def test_837p_anesthesia_minutes_are_one_service_and_a_second_sv1_under_one_lx_is_kept(handmade_run):
    assert handmade_run.line("SIB-2", 2)["units"] == "1"  # SV1*HC:01996*300*MJ*30: 30 minutes, one service
    (second,) = [q for q in handmade_run.quarantine if q["claim_id"] == "SIB-2"]
    assert (second["source_file"], second["source_row"]) == ("dependents.837", "32")
    assert "line_number is missing" in second["reasons"]
    notes = [line for line in handmade_run.stderr.splitlines() if not line.startswith("warning: ")]
    assert any(n.endswith("dependents.837: 1 transaction set not 837P left out: 837 (005010X223A2: institutional claims, 837I)")
               for n in notes), notes


def test_837p_service_line_that_cannot_be_scrubbed_is_quarantined(handmade_run):
    (row,) = [q for q in handmade_run.quarantine if q["claim_id"] == "MAP-2"]
    assert (row["source_file"], row["source_row"], row["line_number"]) == ("mapping.837", "40", "1")
    assert "hcpcs '7612' is not five letters and digits" in row["reasons"]
    assert "units '0' is not a positive number" in row["reasons"]
    summary = handmade_run.summary
    assert summary["rows_read"] == summary["lines_scrubbed"] + summary["rows_quarantined"]


def test_837p_reads_alike_whatever_its_separators_line_breaks_or_bom(handmade_run):
    def seen(file_name: str) -> list[tuple]:
        return sorted(
            (r["claim_id"].split("-", 1)[1], r["line_number"], r["date_of_service"], r["hcpcs"], r["modifiers"],
             r["units"], r["place_of_service"], r["provider_npi"], r["patient"], r["worst_severity"])
            for r in handmade_run.lines if r["source_file"] == file_name
        )

    expected = seen("three-interchanges-crlf.837")
    assert len(expected) == 4
    assert seen("pipes-newline-terminator.837") == expected
    assert seen("bom-no-line-breaks.837") == expected
    assert seen("wrapped-80-columns.837") == expected
    assert seen("wrapped-105-columns.837") == expected
    assert seen("wrapped-116-columns-three-interchanges.837") == expected
    assert ("2", "2", "2024-08-12", "71046", "26,59", "2", "11", CLAIM_DOC, "PAT01") == expected[2][:9]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("remittance.835", FIXTURES / "835_5010_Example1.txt", "holds no 837P professional claim"),
        ("acknowledgment.277", FIXTURES / "x12_277CA_rejected.txt", "holds no 837P professional claim"),
        ("mismatched-trailer.999", FIXTURES / "x12_999_accepted.txt",
         "not a valid X12 file: segment 10: IEA does not close interchange 000000286"),
        ("truncated.837", MAPPING_837P.split("LX*2~")[0], "not a valid X12 file: the file ends before the interchange trailer"),
        ("short-isa.837", "ISA*00*    *00~GS*HC~", "not a valid X12 file"),
        # An ISA four characters short: the next segment's separator fell where the terminator belongs.
        ("isa-cut-short.837", MAPPING_837P.replace("*SUBMITTER      *", "*SUBMITTER  *", 1),
         "not a valid X12 file: the ISA at segment 1 is not 106 characters with 16 elements"),
        # A stray terminator inside a patient's name: the segment is named by number, its text not quoted.
        ("split-name.837", MAPPING_837P.replace("NM1*QC*1*DOE*TED~", "NM1*QC*1*DOE~TEDWARDSON*THEODORE~", 1),
         "not a valid X12 file: segment 14 has no segment id"),
    ],
)
def test_file_that_is_not_a_valid_837p_exits_2_with_one_line(tmp_path, db_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, Path):
        shutil.copyfile(content, path)
    else:
        path.write_text(content)
    run = scrub([path], tmp_path / "out", db_path)
    assert run.exit_code == 2
    assert run.stderr.strip().splitlines() == [run.stderr.strip()]
    assert str(path) in run.stderr and message in run.stderr
    assert "TEDWARDSON" not in run.stderr and "THEODORE" not in run.stderr
    assert not (tmp_path / "out").exists()


def test_837p_service_location_is_the_lines_facility_else_the_claims_else_the_billing_providers(handmade_run):
    assert handmade_run.exit_code == 0, handmade_run.stderr
    # No 2310C: the billing provider's ZIP (94103, San Francisco), not the pay-to address's; line 2's 2420C.
    assert [handmade_run.line("LOC-1", n)["locality"] for n in (1, 2)] == ["01112-05", "10112-00"]


def test_the_range_note_counts_the_837p_lines_a_range_dates(tmp_path):
    # A claim dated by a range (before its first LX) and three lines without dates of their own, one line with
    # a single day of its own; an 837I set beside it with a range of its own, left out.
    from assets.x12 import x12_notes

    from .x12_files import Separators, _envelope, _render

    claim = [["HL", "1", "", "20", "1"], ["HL", "2", "1", "22", "0"],
             ["CLM", "R1", "100", "", "", "11:B:1"], ["DTP", "472", "RD8", "20260302-20260306"],
             *[segment for n in (1, 2, 3) for segment in (["LX", str(n)], ["SV1", "HC:99213", "100", "UN", "1"])],
             ["LX", "4"], ["SV1", "HC:99213", "100", "UN", "1"], ["DTP", "472", "D8", "20260302"]]
    institutional = [["CLM", "I1", "100"], ["DTP", "472", "RD8", "20260302-20260303"]]
    interchange = _envelope([("837", "005010X222A1", claim), ("837", "005010X223A2", institutional)],
                            Separators(), 1)
    path = tmp_path / "ranges.837"
    path.write_bytes(_render([interchange], Separators(), True, False))
    notes = x12_notes(path)
    assert any(": 3 lines dated by a range of days (DTP*472*RD8)" in note for note in notes), notes



# Two nights of 837P: the slow tier (CI runs it).
@pytest.mark.slow
def test_a_void_837p_claim_is_quarantined_and_takes_the_claim_it_voids_out_of_history(tmp_path, db_path):
    visit = {"claim_id": "V2", "line_number": 1, "patient_id": "PV", "date_of_service": "2024-08-12",
             "hcpcs": "76120", "units": 1, "rendering_npi": npi("123456789"), "billing_npi": npi("123456789"),
             "diagnosis_1": "R13.10"}
    first = scrub([write_csv(tmp_path / "monday.csv", [visit])], tmp_path / "monday", db_path)
    assert first.exit_code == 0 and len(first.lines) == 1
    void = scrub([write_837p(tmp_path / "tuesday.837", [{**visit, "frequency": "8"}])], tmp_path / "tuesday",
                 db_path, "--history")
    assert void.exit_code == 0, void.stderr
    assert (void.lines, void.flags) == ([], [])
    assert [(q["claim_id"], q["line_number"], q["reasons"]) for q in void.quarantine] == [
        ("V2", "1", ("claim V2 voids a claim sent before (837P claim frequency code 8): it bills nothing and is "
                     "not scrubbed; the claim it voids leaves history"))]
    # The same service billed again on a new claim is no repeat of the voided one.
    again = scrub([write_csv(tmp_path / "wednesday.csv", [{**visit, "claim_id": "V3"}])], tmp_path / "wednesday",
                  db_path, "--history")
    assert again.exit_code == 0 and again.flags == []


def test_an_837p_claim_without_a_service_line_is_quarantined_not_dropped(tmp_path, db_path):
    # K2 lost its 2400 loop (LX, SV1, DTP) in a damaged transmission: it was gone from every output without a
    # word. It is now a quarantined row at its CLM, and the rows read count it.
    rows = [{"claim_id": claim, "line_number": 1, "patient_id": patient, "date_of_service": "2024-08-12",
             "hcpcs": "99213", "modifiers": "", "units": 1, "charge": "100", "rendering_npi": "1234567893",
             "billing_npi": "5550001114", "place_of_service": "11", "claim_type": "professional",
             "diagnosis_1": "R13.10", "payer": "ACME"} for claim, patient in (("K1", "P1"), ("K2", "P2"))]
    path = write_837p(tmp_path / "lost.837", rows)
    text = path.read_text()
    head, tail = text.split("CLM*K2*", 1)
    claim, rest = tail.split("LX*1", 1)
    path.write_text(head + "CLM*K2*" + claim + rest[rest.index("NM1*82"):])
    run = scrub([path], tmp_path / "out", db_path)
    assert run.exit_code == 0, run.stderr
    assert [r["claim_id"] for r in run.lines] == ["K1"]
    (lost,) = run.quarantine
    assert lost["claim_id"] == "K2" and "hcpcs is missing" in lost["reasons"], lost
    assert run.summary["rows_read"] == 2 and run.summary["rows_quarantined"] == 1


def _dependent_claim(hl: int, last: str, first: str, claim: str, code: str, dos: str) -> str:
    """A dependent's loop (2000C) under subscriber loop 2, with one claim of one service line."""
    return (f"HL*{hl}*2*23*0~\nPAT*19~\nNM1*QC*1*{last}*{first}~\nDMG*D8*20150101*F~\n"
            f"CLM*{claim}*100***11:B:1*Y*A*Y*Y~\nHI*ABK:R1310~\nLX*1~\nSV1*HC:{code}*100*UN*1***1~\n"
            f"DTP*472*D8*{dos}~\n")


# One child, billed twice the same day by two systems: one writes the name in capitals, the other does not.
CASED_DEPENDENT_837P = _with_set_counts(
    _head(11) + "HL*2*1*22*1~\nSBR*P*18*******CI~\nNM1*IL*1*KIDD*KARL****MI*MBK01~\nNM1*PR*2*ACME HEALTH*****PI*P1~\n"
    + _dependent_claim(3, "KIDD", "KATE", "KID-1", "76120", "20240812")
    + _dependent_claim(4, "Kidd", "Kate", "KID-2", "76120", "20240812")
    + "SE*n*0001~\nGE*1*11~\nIEA*1*000000011~\n")


def test_837p_dependent_is_one_patient_whatever_the_case_of_her_name(tmp_path, db_path):
    # Sent from a DOS transfer: an end-of-file mark and a mainframe's NUL padding after the last IEA.
    path = tmp_path / "kidd.837"
    path.write_bytes(CASED_DEPENDENT_837P.encode("ascii") + b"\x1a" + b"\x00" * 64)
    run = scrub([path], tmp_path / "out", db_path, "--show-ids")
    assert run.exit_code == 0, run.stderr
    assert {r["patient"] for r in run.lines} == {"MBK01 KIDD KATE 20150101"}
    assert "DUP_COMPONENT" in run.findings("KID-1", 1) & run.findings("KID-2", 1)


def test_an_837i_given_for_claims_is_named_as_institutional(tmp_path, db_path):
    path = tmp_path / "hospital.837"
    institutional = _head(12).replace("005010X222A1", "005010X223A2").splitlines()[:4]  # its envelope alone
    path.write_text(_with_set_counts("\n".join([*institutional, "SE*n*0001~", "GE*1*12~", "IEA*1*000000012~"])),
                    encoding="ascii")
    run = scrub([path], tmp_path / "out", db_path)
    assert run.exit_code == 2
    assert run.stderr.strip().endswith("X12 file holds no 837P professional claim (transaction sets found: 837 "
                                       "(005010X223A2: institutional claims, 837I))")
