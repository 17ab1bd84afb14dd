"""`claimscrub rejudge` after a newer CMS quarter is loaded: claims scrubbed under PTP 2024Q3 are judged again once
the 2026 official-layout PTP sample (PTP 2026Q3) is loaded. Exactly the findings of lines dated in its quarter
appear and disappear, each naming the release that caused it; lines of other quarters are untouched, and so is
every stored finding."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from assets.rejudge import rejudge_impact
from pipelines.cli import main
from pipelines.definitions import defs
from pipelines.resources import duckdb_resource

from .helpers import module_site, read_csv, scrub, write_csv
from .test_reference import MUE_2026, PTP_2026

NPI, GROUP = "1234567893", "5550001114"


def pair(claim: str, patient: str, dos: str, first: str, second: str) -> list[dict]:
    return [{"claim_id": claim, "line_number": number, "patient_id": patient, "date_of_service": dos,
             "hcpcs": code, "units": 1, "rendering_npi": NPI, "billing_npi": GROUP, "place_of_service": "11",
             "claim_type": "professional", "diagnosis_1": "R13.10", "payer": "ACME HEALTH"}
            for number, code in enumerate((first, second), 1)]


ROWS = [
    # 2026Q3: 0001U/0417U is an edit from 2025 on, which PTP 2024Q3 lacks (appears); PTP 2026Q3 has no 92611/76120
    # (disappears); 0001U/0029U ends 2026-06-30 in PTP 2026Q3 (disappears).
    *pair("Q3-NEW", "PAT-1", "2026-07-15", "0001U", "0417U"),
    *pair("Q3-GONE", "PAT-2", "2026-07-16", "92611", "76120"),
    *pair("Q3-ENDED", "PAT-3", "2026-08-03", "0001U", "0029U"),
    # The same pairs in 2026Q2 and 2024Q3: still judged by PTP 2024Q3.
    *pair("Q2-NEW", "PAT-4", "2026-05-12", "0001U", "0417U"),
    *pair("Q2-GONE", "PAT-5", "2026-05-12", "92611", "76120"),
    *pair("OLD-GONE", "PAT-6", "2024-08-12", "92611", "76120"),
]
EXPECTED = {
    ("Q3-NEW", "2", "PTP_NO_BYPASS", "appears", "PTP 2026Q3"),
    ("Q3-GONE", "2", "PTP_NO_BYPASS", "disappears", "PTP 2026Q3"),
    ("Q3-ENDED", "2", "PTP_NO_BYPASS", "disappears", "PTP 2026Q3"),
}
IMPACT_COLUMNS = ["batch_id", "claim_id", "line_number", "date_of_service", "hcpcs", "modifiers", "provider_npi",
                  "payer", "patient", "rule_id", "finding_id", "change", "severity_then", "severity_now",
                  "dollars_then", "dollars_now", "dollars_newly_at_risk", "dollars_no_longer_at_risk",
                  "caused_by_table", "caused_by", "rvu_release_then", "rvu_release_now", "gpci_release_then",
                  "gpci_release_now", "ptp_release_then", "ptp_release_now", "mue_release_then", "mue_release_now",
                  "aoc_release_then", "aoc_release_now", "message"]


def cli(*args):
    return CliRunner().invoke(main, [*map(str, args)])


def stored(db: Path) -> list[tuple]:
    """What the judge stored: every finding and every line's releases."""
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("""select f.*, p.ptp_release, p.rvu_release from line_flags f
                              join priced_lines p using (batch_id, line_id) order by all""").fetchall()


def changes(folder: Path) -> set[tuple]:
    return {(r["claim_id"], r["line_number"], r["rule_id"], r["change"], r["caused_by"])
            for r in read_csv(folder / "impact.csv")}


@pytest.fixture(scope="module")
def judged(tmp_path_factory, reference_db):
    with module_site(tmp_path_factory, reference_db, "rejudge") as (folder, db):
        run = scrub([write_csv(folder / "claims.csv", ROWS)], folder / "out", db)
        assert run.exit_code == 0, run.stderr
        loaded = cli("reference", "load", PTP_2026, "--db", db)
        assert loaded.exit_code == 0, loaded.output
        before = stored(db)
        result = cli("rejudge", "--since", "2024-01-01", "--out", folder / "impact", "--db", db)
        assert result.exit_code == 0, result.output
    return {"folder": folder, "db": db, "run": run, "before": before, "result": result}


def test_rejudge_lists_exactly_the_findings_that_appear_and_disappear_in_the_new_quarter(judged):
    assert changes(judged["folder"] / "impact") == EXPECTED
    flagged_then = {(f["claim_id"], f["line_number"], f["rule_id"]) for f in judged["run"].flags
                    if f["rule_id"] == "PTP_NO_BYPASS"}
    assert {("Q3-GONE", "2", "PTP_NO_BYPASS"), ("Q2-GONE", "2", "PTP_NO_BYPASS"),
            ("OLD-GONE", "2", "PTP_NO_BYPASS")} <= flagged_then  # stored, and kept for the other dates


def test_rejudge_says_what_it_judged_and_found(judged):
    assert judged["result"].stdout.splitlines()[0] == (
        "Judged again 12 stored lines dated on or after 2024-01-01 (1 batch) under AOC 2024Q3, AOC 2026Q2, "
        "GPCI 2025, GPCI 2026, MUE 2024Q3, MUE 2026Q2, PTP 2024Q3, PTP 2026Q3, RVU25D, RVU26B: findings: 1 appear, "
        "2 disappear, 0 change severity, 0 change dollars; $0.00 newly at risk of denial.")


def test_the_stored_findings_are_left_as_they_are(judged):
    assert stored(judged["db"]) == judged["before"]
    assert {row[-2] for row in judged["before"]} == {"PTP 2024Q3"}


def test_each_change_names_the_releases_that_judge_its_line_then_and_now(judged):
    rows = read_csv(judged["folder"] / "impact" / "impact.csv")
    assert list(rows[0]) == IMPACT_COLUMNS
    gone = next(r for r in rows if r["claim_id"] == "Q3-GONE")
    assert (gone["ptp_release_then"], gone["ptp_release_now"], gone["caused_by_table"]) == (
        "PTP 2024Q3", "PTP 2026Q3", "PTP")
    assert (gone["severity_then"], gone["severity_now"], gone["dollars_then"], gone["dollars_no_longer_at_risk"]) \
        == ("deny", "", "113.56", "113.56")
    assert gone["rvu_release_then"] == gone["rvu_release_now"] == "RVU26B"
    assert gone["patient"].startswith("P-") and gone["patient"] != "PAT-2"
    ids = {(f["claim_id"], f["line_number"], f["rule_id"]): f["finding_id"] for f in judged["run"].flags}
    assert gone["finding_id"] == ids[("Q3-GONE", "2", "PTP_NO_BYPASS")]


def test_the_workbook_sums_up_by_release_and_rule_and_lists_claims_for_recoupment_review(judged):
    book = load_workbook(judged["folder"] / "impact" / "rejudge-impact.xlsx", read_only=True)
    assert book.sheetnames == ["Summary", "Claims", "Changes"]
    summary = list(book["Summary"].iter_rows(values_only=True))
    assert summary[0][0].startswith("Stored lines dated on or after 2024-01-01 (12 lines, 1 batch)")
    assert summary[2][:6] == ("PTP 2026Q3", "PTP_NO_BYPASS", 1, 2, 0, 0)
    assert summary[2][7] == pytest.approx(113.56)
    claims = list(book["Claims"].iter_rows(values_only=True))
    assert claims[0][0].startswith("3 claims to review for recoupment")
    assert {row[0] for row in claims[2:]} == {"Q3-NEW", "Q3-GONE", "Q3-ENDED"}
    assert len(list(book["Changes"].iter_rows())) == 2 + len(EXPECTED)


def test_a_rejudge_from_after_the_new_quarter_finds_nothing(judged, tmp_path):
    result = cli("rejudge", "--since", "2026-10-01", "--out", tmp_path / "none", "--db", judged["db"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Judged again 0 stored lines dated on or after 2026-10-01 (0 batches)")
    assert read_csv(tmp_path / "none" / "impact.csv") == []


def test_patients_show_in_clear_only_when_asked(judged, tmp_path):
    result = cli("rejudge", "--since", "2026-07-01", "--out", tmp_path / "ids", "--db", judged["db"], "--show-ids")
    assert result.exit_code == 0, result.output
    assert {r["patient"] for r in read_csv(tmp_path / "ids" / "impact.csv")} == {"PAT-1", "PAT-2", "PAT-3"}


def test_each_change_is_laid_to_the_table_behind_its_rule(judged, tmp_path):
    db = tmp_path / "claimscrub.duckdb"
    shutil.copyfile(judged["db"], db)
    assert cli("reference", "load", MUE_2026, "--db", db).exit_code == 0
    result = cli("rejudge", "--since", "2026-07-01", "--out", tmp_path / "impact", "--db", db)
    assert result.exit_code == 0, result.output
    found = changes(tmp_path / "impact")
    # 76120, 92611 and 0417U have no MUE in the MUE 2026Q3 excerpt: MUE_NOT_PUBLISHED appears, the MUE's doing.
    assert {c for c in found if c[2] == "MUE_NOT_PUBLISHED"} == {
        (claim, line, "MUE_NOT_PUBLISHED", "appears", "MUE 2026Q3")
        for claim, line in [("Q3-NEW", "2"), ("Q3-GONE", "1"), ("Q3-GONE", "2"), ("Q3-ENDED", "2")]}
    assert {c for c in found if c[2] == "PTP_NO_BYPASS"} == EXPECTED


# A scrub and an import or remittance of its own: the slow tier (CI runs it).
@pytest.mark.slow
def test_a_release_loaded_again_under_its_name_is_named_as_the_cause(judged, tmp_path):
    """A revised file (ccipra-v322r1) replaces PTP 2026Q3's rows under the same name: the change it makes to a
    batch scrubbed under the first file is laid to it (the names then and now being equal, it was laid to none)."""
    db = tmp_path / "claimscrub.duckdb"
    shutil.copyfile(judged["db"], db)
    run = scrub([write_csv(tmp_path / "later.csv", pair("REV", "PAT-9", "2026-07-20", "0001U", "0417U"))],
                tmp_path / "out", db)
    assert ("REV", "2", "PTP_NO_BYPASS") in {(f["claim_id"], f["line_number"], f["rule_id"]) for f in run.flags}
    revised = tmp_path / "ccipra-v322r1-f1.txt"
    revised.write_text("".join(line for line in PTP_2026.read_text().splitlines(keepends=True)
                               if not line.startswith("0001U\t0417U\t")))
    loaded = cli("reference", "load", revised, "--db", db)
    assert loaded.exit_code == 0 and "PTP 2026Q3: loaded" in loaded.stdout, loaded.output
    result = cli("rejudge", "--since", "2026-07-20", "--out", tmp_path / "impact", "--db", db)
    assert result.exit_code == 0, result.output
    rows = [r for r in read_csv(tmp_path / "impact" / "impact.csv") if r["claim_id"] == "REV"]
    assert [(r["line_number"], r["rule_id"], r["change"], r["caused_by_table"], r["caused_by"]) for r in rows] == [
        ("2", "PTP_NO_BYPASS", "disappears", "PTP", "PTP 2026Q3")]


def test_rejudge_is_an_asset_a_run_after_a_reference_load_produces(judged, tmp_path):
    repository = defs.get_repository_def()
    assert repository.asset_graph.get(dg.AssetKey("rejudge_impact")).group_name == "review"
    assert defs.resolve_job_def("rejudge_job") is not None
    db = tmp_path / "claimscrub.duckdb"
    shutil.copyfile(judged["db"], db)
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [rejudge_impact], resources={"duckdb": duckdb_resource(str(db))}, instance=instance,
            run_config={"ops": {"rejudge_impact": {"config": {"out_dir": str(tmp_path / "nightly")}}}})
    assert result.success
    # No day given: from the start of the period of the release a user loaded last (PTP 2026Q3).
    assert changes(tmp_path / "nightly") == EXPECTED
    metadata = result.asset_materializations_for_node("rejudge_impact")[0].metadata
    assert metadata["since"].value == "2026-07-01" and metadata["appears"].value == 1


def test_rejudge_takes_the_database_lock_every_writer_takes(judged, tmp_path):
    holder = duckdb.connect(str(judged["db"]))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "rejudge", "--since", "2026-07-01", "--out",
             str(tmp_path / "out"), "--db", str(judged["db"])], capture_output=True, text=True, timeout=120,
            env={**os.environ, "CLAIMSCRUB_LOCK_TIMEOUT": "0.5"})
    finally:
        holder.close()
    assert result.returncode == 1
    assert "is in use by another process; gave up after 0.5 s" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_mistake_on_the_command_line_is_one_line_and_exit_2(judged, tmp_path):
    (tmp_path / "a-file").write_text("")
    for args, says in [
        (["--since", "07/01/2026", "--out", tmp_path / "o"], "'07/01/2026' does not match the format '%Y-%m-%d'"),
        (["--since", "2026-07-01", "--out", tmp_path / "a-file" / "o"], "is a file, not a folder"),
        (["--since", "2026-07-01", "--out", "/proc/claimscrub-impact"], "cannot be written"),
    ]:
        result = cli("rejudge", *args, "--db", judged["db"])
        assert result.exit_code == 2 and says in result.stderr, result.output
    missing = cli("rejudge", "--since", "2026-07-01", "--out", tmp_path / "o", "--db", tmp_path / "none.duckdb")
    assert missing.exit_code == 2
    assert missing.stderr.strip() == f"claimscrub: {tmp_path / 'none.duckdb'}: no such database; scrub claims first"


@pytest.mark.slow  # a per-shard site of its own: the slow tier (CI runs it)
def test_a_per_shard_site_is_judged_again_shard_by_shard_with_the_same_changes(judged, tmp_path_factory,
                                                                                 reference_db):
    with module_site(tmp_path_factory, reference_db, "rejudge-shards") as (folder, db):
        made = cli("db", "init", "--db", db, "--shards", 3, "--layout", "per-shard")
        assert made.exit_code == 0, made.output
        run = scrub([write_csv(folder / "claims.csv", ROWS)], folder / "out", db)
        assert run.exit_code == 0, run.stderr
        assert cli("reference", "load", PTP_2026, "--db", db).exit_code == 0
        shard_files = sorted(folder.glob("*.shard-*-of-3.duckdb"))
        assert len(shard_files) == 3
        result = cli("rejudge", "--since", "2024-01-01", "--out", folder / "impact", "--db", db)
        assert result.exit_code == 0, result.output
        assert changes(folder / "impact") == EXPECTED
        assert result.stdout.splitlines()[0] == judged["result"].stdout.splitlines()[0]
        # Nothing stored changes in any shard file either.
        after = sorted(row for path in shard_files for row in _shard_findings(path))
        assert after == sorted(row[2:] for row in judged["before"])


def _shard_findings(path: Path) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("""select f.* exclude (batch_id, line_id), p.ptp_release, p.rvu_release
                              from line_flags f join priced_lines p using (batch_id, line_id)""").fetchall()
