"""The loop closed: the same claims scrubbed as CSV and as 837P give the same findings, and an 835 for
them yields rule outcomes, missed denials and denial patterns, small patterns suppressed."""

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

import pipelines.definitions
from pipelines.cli import main

from .helpers import Run, module_site, read_csv, scrub, write_csv
from .x12_files import BILLING_ZIP, npi, write_835, write_837p

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "x12"
DOC, GROUP = npi("123456789"), npi("555000111")


def _line(claim_id, number, patient, code, modifiers="", units=1, pos="11", dx="R13.10", payer="ACME HEALTH",
          rendering=DOC):
    return {"claim_id": claim_id, "line_number": number, "patient_id": patient, "date_of_service": "2024-08-12",
            "hcpcs": code, "modifiers": modifiers, "units": units, "charge": "120.00", "rendering_npi": rendering,
            "billing_npi": GROUP, "place_of_service": pos, "claim_type": "professional", "diagnosis_1": dx,
            "payer": payer, "service_zip": BILLING_ZIP}  # the 837P's, where it has no service facility loop


# Six 92611 + 76120 claims (76120 bundled: PTP_NO_BYPASS), 76120 over its MUE twice, a global 76120 in the
# hospital, a clean visit, a visit paid nothing for contractual and deductible reasons only, an exact
# duplicate, 26 and TC on one line, a claim without a diagnosis and one with a bad NPI.
CLAIMS = [
    *[r for i in range(1, 7) for r in (_line(f"PTP-{i}", 1, f"PAT{i:02d}", "92611"),
                                       _line(f"PTP-{i}", 2, f"PAT{i:02d}", "76120"))],
    _line("MUE-1", 1, "PAT11", "76120", units=2),
    _line("MUE-2", 1, "PAT12", "76120", units=2),
    _line("GLOBAL-1", 1, "PAT13", "76120", pos="22"),
    _line("CLEAN-1", 1, "PAT14", "99213"),
    _line("CONTRACT-1", 1, "PAT15", "99213"),
    _line("DUP-1", 1, "PAT16", "99213"),
    _line("DUP-1", 2, "PAT16", "99213"),
    _line("SPLIT-1", 1, "PAT17", "76120", modifiers="26,TC"),
    _line("NODX-1", 1, "PAT18", "99214", dx=""),
    _line("BADNPI-1", 1, "PAT19", "99214", rendering="1234567890", payer="BLUE PLAN"),
]

# What the payer did: every other line is paid. PTP-4..6 carry no REF*6R (matched by position and code).
DENIALS = {
    **{(f"PTP-{i}", 2): [("CO", "97")] for i in range(1, 7)},
    ("MUE-1", 1): [("CO", "151")],
    ("MUE-2", 1): [("CO", "151")],
    ("CLEAN-1", 1): [("CO", "16")],
    ("CONTRACT-1", 1): [("CO", "45"), ("PR", "1")],
    ("DUP-1", 2): [("OA", "18")],
    ("SPLIT-1", 1): [("CO", "4")],
}


@dataclass
class Loop:
    as_837p: Run
    as_csv: Run
    remit_stdout: str
    feedback_out: Path
    feedback_stdout: str
    db: Path


def _cli(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def loop(tmp_path_factory, reference_db) -> Loop:
    """Scrub the claims as 837P, load the 835, scrub them again as CSV (its report now has the payer's
    answers), then write the feedback."""
    with module_site(tmp_path_factory, reference_db, "feedback") as (folder, db):
        claims_837 = write_837p(folder / "claims.837", CLAIMS, bom=True, interchanges=2)
        claims_csv = write_csv(folder / "claims.csv", CLAIMS)
        remittance = write_835(folder / "remit.835", CLAIMS, DENIALS, without_line_ref={"PTP-4", "PTP-5", "PTP-6"})
        as_837p = scrub([claims_837], folder / "out-837p", db)
        remitted = _cli("remit", str(remittance), "--db", str(db))
        assert remitted.exit_code == 0, remitted.stderr
        as_csv = scrub([claims_csv], folder / "out-csv", db)
        feedback = _cli("feedback", "--out", str(folder / "feedback"), "--db", str(db))
        assert feedback.exit_code == 0, feedback.stderr
    return Loop(as_837p, as_csv, remitted.stdout, folder / "feedback", feedback.stdout, db)


def _findings(run: Run) -> list[tuple]:
    skip = {"source_file", "source_row", "finding_id"}  # a finding id names its batch
    return sorted(tuple(v for k, v in row.items() if k not in skip) for row in run.flags)


def test_same_claims_as_csv_and_as_837p_give_the_same_findings(loop):
    assert loop.as_837p.exit_code == 0, loop.as_837p.stderr
    assert loop.as_csv.exit_code == 0, loop.as_csv.stderr
    assert _findings(loop.as_837p) == _findings(loop.as_csv)
    by_line = {(f["claim_id"], f["line_number"], f["rule_id"]) for f in loop.as_837p.flags}
    assert {("PTP-4", "2", "PTP_NO_BYPASS"), ("MUE-1", "1", "MUE_DOS"), ("DUP-1", "2", "DUP_EXACT"),
            ("SPLIT-1", "1", "MOD_26_AND_TC"), ("NODX-1", "1", "DX_MISSING")} <= by_line


def test_same_claims_as_csv_and_as_837p_give_the_same_lines(loop):
    def lines(run: Run) -> list[tuple]:
        return sorted(tuple(v for k, v in r.items() if k not in {"source_file", "source_row"}) for r in run.lines)

    assert lines(loop.as_837p) == lines(loop.as_csv)
    assert loop.as_837p.summary["rows_read"] == len(CLAIMS) == loop.as_837p.summary["lines_scrubbed"]


def test_remit_reports_what_it_loaded_and_matched(loop):
    assert loop.remit_stdout.strip() == (
        "remit.835: loaded: 15 claim payments, 22 service lines; 22 match scrubbed lines, 11 denied."
    )


def test_a_reversal_is_not_counted_as_a_denial_in_what_remit_says(loop, tmp_path):
    # A reversal (CLP02 22) takes back what a claim was paid: its lines, paid nothing with a CAS, are no
    # denials (feedback leaves them out), and remit's line said "1 denied".
    db = tmp_path / "claimscrub.duckdb"
    db.write_bytes(loop.db.read_bytes())
    one = [r for r in CLAIMS if r["claim_id"] == "MUE-1"]
    reversal = write_835(tmp_path / "reversal.835", one, {("MUE-1", 1): [("CO", "151")]}, issued="20241101")
    reversal.write_bytes(reversal.read_bytes().replace(b"CLP*MUE-1*4*", b"CLP*MUE-1*22*"))
    result = _cli("remit", str(reversal), "--db", str(db))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "reversal.835: loaded: 1 claim payment, 1 service line; 1 matches a scrubbed line, 0 denied."), result.stdout


def test_rule_outcomes_count_deny_findings_the_payer_denied(loop):
    rows = read_csv(loop.feedback_out / "rule_outcomes.csv")
    assert list(rows[0]) == ["rule_id", "flagged_lines", "denied_lines", "observed_precision", "dismissed_lines",
                             "dismissed_denied", "fixed_lines"]
    assert {r["rule_id"]: (r["flagged_lines"], r["denied_lines"], r["observed_precision"]) for r in rows} == {
        "PTP_NO_BYPASS": ("6", "6", "1.0"),
        "MUE_DOS": ("2", "2", "1.0"),
        "MOD_26_AND_TC": ("1", "1", "1.0"),
        "DUP_EXACT": ("2", "1", "0.5"),
        "MOD_GLOBAL_IN_HOSPITAL": ("1", "0", "0.0"),
        "NPI_INVALID": ("1", "0", "0.0"),
    }


def test_a_killed_feedback_runs_staging_folder_is_swept_by_the_next(loop, tmp_path):
    # Its staging holds the claims' denial patterns: named with its process's id, a killed run's is removed.
    db = tmp_path / "claimscrub.duckdb"
    shutil.copyfile(loop.db, db)
    gone = subprocess.Popen(["true"])
    gone.wait()
    killed = tmp_path / f".feedback.partial-{gone.pid}-k1lled_x"
    killed.mkdir()
    (killed / "missed_denials.csv").write_text("claim_id\nC1\n")
    result = _cli("feedback", "--out", str(tmp_path / "feedback"), "--db", str(db))
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["claimscrub.duckdb", "claimscrub.duckdb.lock",
                                                                 "feedback"])


def test_feedback_says_how_many_of_each_it_wrote_in_plain_words(loop):
    counted = {name: len(read_csv(loop.feedback_out / f"{name}.csv"))
               for name in ("rule_outcomes", "missed_denials", "denial_patterns", "overruled_dismissals")}

    def words(count: int, noun: str) -> str:
        return f"{count} {noun}" + ("" if count == 1 else "s")

    first, second = loop.feedback_stdout.splitlines()
    assert first == (f"{words(counted['rule_outcomes'], 'rule')} with remitted deny findings, "
                     f"{words(counted['missed_denials'], 'missed denial')}, "
                     f"{words(counted['denial_patterns'], 'denial pattern row')} (min count 5), "
                     f"{words(counted['overruled_dismissals'], 'dismissal')} the payer did not agree with.")
    assert second == f"Feedback: {loop.feedback_out.resolve()}"
    assert 1 in counted.values(), "a count of one, said in the singular"


@pytest.mark.slow  # four scrubs and two feedback runs
def test_a_rescrub_of_an_earlier_batch_leaves_the_remittance_on_the_claims_latest_batch(tmp_path, db_path):
    # Monday's claim has a bad NPI; Tuesday's corrected version of it went out and was paid.
    monday = write_csv(tmp_path / "monday.csv", [_line("FIX-1", 1, "PAT31", "99214", rendering="1234567890")])
    tuesday = write_csv(tmp_path / "tuesday.csv", [_line("FIX-1", 1, "PAT31", "99214")])
    remittance = write_835(tmp_path / "remit.835", [_line("FIX-1", 1, "PAT31", "99214")], {})

    def npi_rows() -> list:
        result = _cli("feedback", "--out", str(tmp_path / "feedback"), "--db", str(db_path))
        assert result.exit_code == 0, result.stderr
        return [r for r in read_csv(tmp_path / "feedback" / "rule_outcomes.csv") if r["rule_id"] == "NPI_INVALID"]

    for export in (monday, tuesday):
        assert scrub([export], tmp_path / export.stem, db_path).exit_code == 0
    assert _cli("remit", str(remittance), "--db", str(db_path)).exit_code == 0
    assert npi_rows() == []
    assert scrub([monday], tmp_path / "monday-again", db_path).exit_code == 0  # the rerun does not make it latest
    assert npi_rows() == []


def test_the_answer_the_payer_issued_last_counts_whatever_order_the_835s_were_loaded_in(loop, tmp_path):
    # An 835 issued before the one already loaded (an old file found in an archive) pays every line: the
    # denials of the later one stand.
    db = tmp_path / "claimscrub.duckdb"
    db.write_bytes(loop.db.read_bytes())
    earlier = write_835(tmp_path / "earlier.835", CLAIMS, {}, issued="20240901")
    assert _cli("remit", str(earlier), "--db", str(db)).exit_code == 0
    result = _cli("feedback", "--out", str(tmp_path / "feedback"), "--db", str(db))
    assert result.exit_code == 0, result.stderr
    denied = {r["rule_id"]: r["denied_lines"] for r in read_csv(tmp_path / "feedback" / "rule_outcomes.csv")}
    assert denied == {r["rule_id"]: r["denied_lines"] for r in read_csv(loop.feedback_out / "rule_outcomes.csv")}
    assert denied["MUE_DOS"] == "2"
    # Issued after it, the same payments are the payer's last word.
    later = write_835(tmp_path / "later.835", CLAIMS, {}, issued="20241001")
    assert _cli("remit", str(later), "--db", str(db)).exit_code == 0
    assert _cli("feedback", "--out", str(tmp_path / "feedback"), "--db", str(db)).exit_code == 0
    assert {r["rule_id"]: r["denied_lines"] for r in read_csv(tmp_path / "feedback" / "rule_outcomes.csv")}[
        "MUE_DOS"] == "0"


def test_a_later_answer_without_line_references_replaces_the_earlier_one_in_the_denial_patterns(loop, tmp_path):
    # The first 835 named most lines by REF*6R; a later one pays every line and names none (matched by code and
    # position): each line's last answer is a payment, whatever key matched it.
    db = tmp_path / "claimscrub.duckdb"
    db.write_bytes(loop.db.read_bytes())
    assert any(int(r["denied_lines"]) for r in read_csv(loop.feedback_out / "denial_patterns.csv"))
    later = write_835(tmp_path / "later.835", CLAIMS, {}, without_line_ref={r["claim_id"] for r in CLAIMS},
                      issued="20241001")
    assert _cli("remit", str(later), "--db", str(db)).exit_code == 0
    assert _cli("feedback", "--out", str(tmp_path / "feedback"), "--db", str(db)).exit_code == 0
    assert read_csv(tmp_path / "feedback" / "denial_patterns.csv") == []
    assert read_csv(tmp_path / "feedback" / "missed_denials.csv") == []


def test_an_835_is_dated_by_its_production_date_else_its_payment_date(tmp_path):
    from assets.x12 import read_835

    # The CMS example: produced 2004-03-08 (DTM*405), paid 2004-03-15 (BPR16).
    assert {c["issued"] for c in read_835(FIXTURES / "835_5010_Example1.txt").claims} == {"2004-03-08"}
    payment_only = write_835(tmp_path / "bpr-only.835", CLAIMS[:1], {}, issued="20240920")
    assert {c["issued"] for c in read_835(payment_only).claims} == {"2024-09-20"}


def test_missed_denials_are_denied_lines_without_a_deny_finding(loop):
    rows = read_csv(loop.feedback_out / "missed_denials.csv")
    assert rows == [{
        "claim_id": "CLEAN-1", "line_number": "1", "hcpcs": "99213", "group_code": "CO", "carc": "16",
        "carc_text": "Claim/service lacks information or has submission/billing error(s).", "amount": "120.00",
    }]


def test_denial_patterns_below_the_threshold_are_summed_into_one_suppressed_row(loop):
    rows = read_csv(loop.feedback_out / "denial_patterns.csv")
    assert list(rows[0]) == ["payer", "hcpcs", "adjustment", "carc_text", "denied_lines", "denied_amount"]
    shown, suppressed = rows
    assert (shown["payer"], shown["hcpcs"], shown["adjustment"], shown["denied_lines"], shown["denied_amount"]) \
        == ("ACME HEALTH", "76120", "CO-97", "6", "720.00")
    assert shown["carc_text"].startswith("The benefit for this service is included in the payment/allowance")
    # CO-151 (2 lines), CO-16, OA-18 and CO-4 (1 each): never shown on their own.
    assert (suppressed["payer"], suppressed["hcpcs"], suppressed["adjustment"], suppressed["denied_lines"],
            suppressed["denied_amount"]) == ("(suppressed)", "", "", "5", "600.00")
    assert suppressed["carc_text"] == "4 group(s) of fewer than 5 denied lines"


def test_a_lower_min_count_shows_smaller_patterns(loop, tmp_path):
    result = _cli("feedback", "--out", str(tmp_path / "fb"), "--db", str(loop.db), "--min-count", "2")
    assert result.exit_code == 0, result.stderr
    rows = read_csv(tmp_path / "fb" / "denial_patterns.csv")
    assert [(r["hcpcs"], r["adjustment"], r["denied_lines"]) for r in rows] == [
        ("76120", "CO-97", "6"), ("76120", "CO-151", "2"), ("", "", "3")]


def test_feedback_workbooks_carry_the_payer_feedback_sheet(loop):
    for path in (loop.feedback_out / "payer-feedback.xlsx", loop.as_csv.out_dir / "denial-risk-report.xlsx"):
        sheet = load_workbook(path, read_only=True)["Payer feedback"]
        values = [cell for row in sheet.iter_rows(values_only=True) for cell in row if cell is not None]
        assert "CLEAN-1" in values and "CO-97" in values and "(suppressed)" in values, path
        printed = load_workbook(path)["Payer feedback"]  # page settings: read in full
        assert (printed.page_setup.orientation, printed.page_setup.fitToWidth) == ("landscape", 1), path


def test_loading_the_same_835_again_is_skipped(loop):
    result = _cli("remit", str(loop.feedback_out.parent / "remit.835"), "--db", str(loop.db))
    assert result.exit_code == 0, result.stderr
    assert "remit.835: already loaded, skipped: 15 claim payments" in result.stdout


def test_shared_835_samples_count_claim_payments_and_service_lines_exactly(tmp_path, db_path):
    names = ["835_5010_Example1.txt", "835_5010_ExampleFromNth.txt", "835_5010_835_WithMultipleInterchanges.txt"]
    result = _cli("remit", *(str(FIXTURES / n) for n in names), "--db", str(db_path))
    assert result.exit_code == 0, result.stderr
    counts = [line.split(": ")[0] + ": " + line.split(": ")[2].split(";")[0] for line in result.stdout.splitlines()]
    assert counts == [
        "835_5010_Example1.txt: 10 claim payments, 9 service lines",
        "835_5010_ExampleFromNth.txt: 56 claim payments, 91 service lines",
        "835_5010_835_WithMultipleInterchanges.txt: 56 claim payments, 91 service lines",
    ]


@pytest.mark.parametrize("name", ["837P_5010_Example1_HealthInsurance.txt", "x12_999_accepted.txt"])
def test_remit_of_a_file_that_is_not_an_835_exits_2(tmp_path, db_path, name):
    result = _cli("remit", str(FIXTURES / name), "--db", str(db_path))
    assert result.exit_code == 2
    assert name in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_remit_of_a_folder_asks_for_its_files(tmp_path, db_path):
    result = _cli("remit", str(tmp_path), "--db", str(db_path))
    assert result.exit_code == 2
    assert result.stderr == f"claimscrub: {tmp_path}: is a folder, not an 835 file (name the files in it)\n"
    # A --db typed wrong: no new, empty database to load the 835 into, matching nothing.
    typo = tmp_path / "claimscrb.duckdb"
    wrong = _cli("remit", str(FIXTURES / "835_5010_Example1.txt"), "--db", str(typo))
    assert wrong.exit_code == 2 and not typo.exists()
    assert wrong.stderr == (f"claimscrub: {typo}: no such database; scrub claims first (an 835 is matched to the "
                            "lines they scrubbed)\n")


def test_feedback_before_any_835_exits_2(tmp_path, db_path):
    result = _cli("feedback", "--out", str(tmp_path / "fb"), "--db", str(db_path))
    assert result.exit_code == 2
    assert "no 835 remittance loaded yet" in result.stderr
    assert not (tmp_path / "fb").exists()
    # A folder that cannot be made is said before the database is read, in one line.
    nowhere = _cli("feedback", "--out", "/proc/claimscrub-feedback", "--db", str(db_path))
    assert nowhere.exit_code == 2
    assert nowhere.stderr == "claimscrub: --out /proc/claimscrub-feedback: cannot be written (No such file or directory)\n"


def test_payer_feedback_is_an_asset_of_the_feedback_group():
    graph = pipelines.definitions.defs.resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups["payer_feedback"] == groups["remittances"] == "feedback"


@pytest.mark.slow  # a per-shard site of its own: the slow tier (CI runs it)
def test_a_per_shard_site_matches_the_remittance_and_writes_the_same_feedback(loop, tmp_path_factory,
                                                                               reference_db):
    with module_site(tmp_path_factory, reference_db, "feedback-shards") as (folder, db):
        assert _cli("db", "init", "--db", str(db), "--shards", "3", "--layout", "per-shard").exit_code == 0
        claims_csv = write_csv(folder / "claims.csv", CLAIMS)
        remittance = write_835(folder / "remit.835", CLAIMS, DENIALS, without_line_ref={"PTP-4", "PTP-5", "PTP-6"})
        assert scrub([claims_csv], folder / "first", db).exit_code == 0
        remitted = _cli("remit", str(remittance), "--db", str(db))
        assert remitted.exit_code == 0, remitted.stderr
        feedback = _cli("feedback", "--out", str(folder / "feedback"), "--db", str(db))
        assert feedback.exit_code == 0, feedback.stderr
    assert remitted.stdout == loop.remit_stdout
    assert feedback.stdout.replace(str(folder / "feedback"), "OUT") == \
        loop.feedback_stdout.replace(str(loop.feedback_out), "OUT")
    for name in ("rule_outcomes.csv", "missed_denials.csv", "overruled_dismissals.csv"):
        assert read_csv(folder / "feedback" / name) == read_csv(loop.feedback_out / name), name


# A scrub and a remittance of their own: the slow tier (CI runs it).
@pytest.mark.slow
def test_a_remittance_line_of_a_quarantined_row_answers_no_scrubbed_line(tmp_path, reference_db):
    """The 835 answers every billed line, the quarantined ones too: line 1 (units 0, quarantined) is denied,
    line 2 of the same code is paid. Line 1's answer, named by its REF*6R, must not be taken for line 2's as
    the first 99213 of the claim's scrubbed lines."""
    db = tmp_path / "site.duckdb"
    db.write_bytes(reference_db.read_bytes())
    claims = [_line("Q-1", 1, "PAT30", "99213", units=0), _line("Q-1", 2, "PAT30", "99213")]
    run = scrub([write_csv(tmp_path / "claims.csv", claims)], tmp_path / "out", db)
    assert run.exit_code == 0 and run.summary["rows_quarantined"] == 1, run.stderr
    remittance = write_835(tmp_path / "remit.835", claims, {("Q-1", 1): [("CO", "16")]})
    remitted = _cli("remit", str(remittance), "--db", str(db))
    assert remitted.exit_code == 0, remitted.stderr
    assert remitted.stdout.strip().endswith("2 service lines; 1 matches a scrubbed line, 1 denied.")
    feedback = _cli("feedback", "--out", str(tmp_path / "feedback"), "--db", str(db))
    assert feedback.exit_code == 0, feedback.stderr
    assert read_csv(tmp_path / "feedback" / "missed_denials.csv") == []
    # Without REF*6R the lines match by position among the claim's 99213 lines as billed, the quarantined row
    # first: its denial is still not line 2's, and line 2's payment is.
    later = write_835(tmp_path / "later.835", claims, {("Q-1", 1): [("CO", "16")]}, without_line_ref={"Q-1"},
                      issued="20241001")
    remitted = _cli("remit", str(later), "--db", str(db))
    assert remitted.exit_code == 0, remitted.stderr
    assert remitted.stdout.strip().endswith("2 service lines; 1 matches a scrubbed line, 1 denied.")
    assert _cli("feedback", "--out", str(tmp_path / "feedback2"), "--db", str(db)).exit_code == 0
    assert read_csv(tmp_path / "feedback2" / "missed_denials.csv") == []


# A scrub and an import or remittance of its own: the slow tier (CI runs it).
@pytest.mark.slow
def test_a_line_item_number_naming_a_line_of_another_code_is_not_taken_for_it(tmp_path, db_path):
    # A practice system numbers its line items across the file (REF*6R 1, 3, 5 ...), and the payer echoes them:
    # the denial of line 2 (76120, REF*6R 3 here) was laid on line 3, a 99213 that was paid.
    rows = [_line("REF-1", 1, "PAT41", "92611"), _line("REF-1", 2, "PAT41", "76120"),
            _line("REF-1", 3, "PAT41", "99213")]
    assert scrub([write_csv(tmp_path / "claims.csv", rows)], tmp_path / "out", db_path).exit_code == 0
    remittance = write_835(tmp_path / "remit.835", rows, {("REF-1", 2): [("CO", "97")]})
    data = remittance.read_bytes()
    for number, counter in ((1, b"1"), (2, b"3"), (3, b"5")):
        data = data.replace(b"REF*6R*" + str(number).encode() + b"~", b"REF*6R*X" + counter + b"~", 1)
    remittance.write_bytes(data.replace(b"REF*6R*X", b"REF*6R*"))
    assert _cli("remit", str(remittance), "--db", str(db_path)).exit_code == 0
    result = _cli("feedback", "--out", str(tmp_path / "feedback"), "--db", str(db_path))
    assert result.exit_code == 0, result.stderr
    assert read_csv(tmp_path / "feedback" / "missed_denials.csv") == []
    ptp = next(r for r in read_csv(tmp_path / "feedback" / "rule_outcomes.csv") if r["rule_id"] == "PTP_NO_BYPASS")
    assert ptp["denied_lines"] == "1"


# A scrub and an import or remittance of its own: the slow tier (CI runs it).
@pytest.mark.slow
def test_an_answer_issued_before_a_correction_was_scrubbed_answers_the_claim_it_was_about(tmp_path, db_path):
    # September's claim billed 76120 twice (MUE denial, CO-151); the payer said so on 2024-09-15. The corrected
    # claim, one unit, is scrubbed after that: the old answer is not the corrected line's missed denial.
    first = scrub([write_csv(tmp_path / "sept.csv", [_line("COR-1", 1, "PAT42", "76120", units=2)])],
                  tmp_path / "sept", db_path)
    assert first.exit_code == 0 and {f["rule_id"] for f in first.flags} >= {"MUE_DOS"}
    with duckdb.connect(str(db_path)) as con:  # scrubbed in September, as the practice did
        con.execute("update batches set started_at = timestamp '2024-09-02 02:00:00'")
    answer = write_835(tmp_path / "remit.835", [_line("COR-1", 1, "PAT42", "76120", units=2)],
                       {("COR-1", 1): [("CO", "151")]}, issued="20240915")
    assert _cli("remit", str(answer), "--db", str(db_path)).exit_code == 0
    corrected = scrub([write_csv(tmp_path / "fixed.csv", [_line("COR-1", 1, "PAT42", "76120")])],
                      tmp_path / "fixed", db_path)
    assert corrected.exit_code == 0 and corrected.flags == []
    result = _cli("feedback", "--out", str(tmp_path / "feedback"), "--db", str(db_path))
    assert result.exit_code == 0, result.stderr
    assert read_csv(tmp_path / "feedback" / "missed_denials.csv") == []
    mue = next(r for r in read_csv(tmp_path / "feedback" / "rule_outcomes.csv") if r["rule_id"] == "MUE_DOS")
    assert mue["denied_lines"] == "1"


def test_feedback_that_cannot_replace_a_file_leaves_the_previous_feedback_whole(loop, tmp_path, monkeypatch):
    import hashlib
    import os

    out = tmp_path / "feedback"
    shutil.copytree(loop.feedback_out, out)

    def contents() -> dict:
        return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}

    # Yesterday's files differ from what tonight writes: one of them is older.
    (out / "denial_patterns.csv").write_text("stale\n")
    before = contents()
    real_replace = os.replace

    def locked(src, dst):  # the workbook open in Excel on a share
        if out / "payer-feedback.xlsx" in (Path(src), Path(dst)):
            raise PermissionError(13, "Permission denied", str(src))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", locked)
    result = _cli("feedback", "--out", str(out), "--db", str(loop.db))
    assert result.exit_code == 1
    assert contents() == before


@pytest.mark.parametrize("damage, said", [
    (("SVC*HC:99213*120.00*96.00", "SVC*HC:99213*120.00*abc"), "(SVC03) holds 'abc', not an amount"),
    (("*20240915~", "*20241399~"), "(BPR16) holds '20241399', not a date (CCYYMMDD)"),
])
def test_an_835_with_an_amount_or_date_that_is_none_is_refused_whole(tmp_path, db_path, damage, said):
    """Read as nothing, a paid amount of `abc` left a denied line neither paid nor denied, and a date of month
    13 made the answer undated, without a word."""
    line = _line("BAD-1", 1, "PAT41", "99213")
    remittance = write_835(tmp_path / "bad.835", [line], {})
    text = remittance.read_text()
    assert damage[0] in text
    remittance.write_text(text.replace(damage[0], damage[1], 1))
    result = _cli("remit", str(remittance), "--db", str(db_path))
    assert result.exit_code == 2
    assert said in result.stderr and len(result.stderr.splitlines()) == 1
    with duckdb.connect(str(db_path), read_only=True) as con:
        assert con.execute("select count(*) from duckdb_tables() where table_name = 'remit_files'").fetchall() == [
            (0,)] or con.execute("select count(*) from remit_files").fetchall() == [(0,)]
