"""Nightly operation: the definitions load, the inbox sensor registers each complete export once, the nightly
schedule scrubs what arrived as one batch, and running anything again changes nothing."""

import json
import os
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from openpyxl import load_workbook

from assets.feedback import FEEDBACK_ASSETS
from assets.flow import ALL_ASSETS, ROWS_ACCOUNTED
from assets.inbox import archived_file, inbox_files
from assets.readers import file_sha256
from pipelines.definitions import defs
from pipelines.nightly import inbox_sensor, nightly_scrub, remittance_sensor
from pipelines.partitions import INBOX_PARTITIONS
from pipelines.resources import run_resources
from reference.assets import PER_RUN_CHECKS

from .engine import engine_scrub
from .helpers import module_site, read_csv, scrub, write_csv
from .x12_files import write_835

NIGHT = datetime(2024, 7, 9, 2, 0, tzinfo=timezone.utc)
# Every claim table, with the columns that are the same on every rerun (not when a run started).
TABLES = {
    "batch_files": "*", "raw_claim_rows": "*", "claim_lines": "*", "claim_quarantine": "*",
    "priced_lines": "*", "line_flags": "*", "batch_order": "*", "batches": "batch_id, files",
}


@pytest.fixture
def inbox(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "o'brien é inbox"  # a quote, a space and a letter outside ASCII in the path
    path.mkdir()
    monkeypatch.setenv("CLAIMSCRUB_INBOX", str(path))
    return path


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


class Sensor:
    """Drives the inbox sensor tick by tick, as the daemon does: it keeps the cursor and applies the
    partitions the sensor asks for."""

    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance
        self.cursor = None

    def tick(self) -> list[dg.RunRequest]:
        result = inbox_sensor(dg.build_sensor_context(instance=self.instance, cursor=self.cursor))
        for request in result.dynamic_partitions_requests:
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        self.cursor = result.cursor
        return list(result.run_requests)


def drop(inbox: Path, name: str, rows: list[dict], done: bool = True) -> Path:
    path = write_csv(inbox / name, rows)
    if done:
        (inbox / f"{name}.done").touch()
    return path


def line(claim_id, hcpcs, npi="1234567893", modifiers="", patient="PX", dos="2024-07-08", number=1):
    return dict(claim_id=claim_id, line_number=number, patient_id=patient, date_of_service=dos, hcpcs=hcpcs,
                modifiers=modifiers, units=1, rendering_npi=npi, diagnosis_1="R13.10")


def snapshot(db: Path) -> dict[str, list]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {t: sorted(map(repr, con.execute(f"select {c} from {t}").fetchall())) for t, c in TABLES.items()}
    finally:
        con.close()


def test_definitions_load_with_the_sensor_the_schedule_and_the_checks():
    repository = defs.get_repository_def()
    assert {s.name for s in repository.sensor_defs} == {"inbox_sensor", "remittance_sensor"}
    assert {s.name for s in repository.schedule_defs} == {"nightly_scrub"}
    assert {"scrub_job", "register_inbox_file"} <= {j.name for j in repository.get_all_jobs()}
    checks = {key.name for key in repository.asset_graph.asset_check_keys}
    assert ROWS_ACCOUNTED in checks
    assert repository.get_job("scrub_job").executor_def.name == "in_process"


def test_the_sites_dagster_instance_runs_one_run_at_a_time_and_fails_a_run_whose_worker_died(tmp_path,
                                                                                             monkeypatch):
    """The project's dagster.yaml, as `make ui` copies it into DAGSTER_HOME: one run at a time, and run
    monitoring on, so that a night whose worker died with its machine does not hold the queue for good."""
    shutil.copyfile(Path(__file__).resolve().parent.parent / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as site:
        assert site.get_concurrency_config().run_queue_config.max_concurrent_runs == 1
        assert site.run_monitoring_enabled
        assert site.run_monitoring_max_runtime_seconds == 6 * 3600
        assert site.run_monitoring_start_timeout_seconds == 180


def test_sensor_requests_one_run_per_complete_file_and_none_for_a_partial_one(inbox, instance):
    sensor = Sensor(instance)
    drop(inbox, "monday.csv", [line("A1", "76120")])
    growing = drop(inbox, "tuesday.csv", [line("B1", "76000")], done=False)
    # Excel's lock file of an open workbook is never taken; a file whose name only starts with ~ is.
    (inbox / "~$claims.xlsx").write_bytes(b"lock")
    tilde = drop(inbox, "~weekend.csv", [line("W1", "76120", patient="PW")])

    assert [r.partition_key for r in sensor.tick()] == [f"monday.csv@{_sha12(inbox / 'monday.csv')}",
                                                        f"~weekend.csv@{_sha12(tilde)}"]
    with open(growing, "a") as fh:  # still being copied: its size changes between looks
        fh.write("B2,1,PX,2024-07-08,76000,,1,1234567893,,,,R13.10,\n")
    assert sensor.tick() == []
    assert [r.partition_key for r in sensor.tick()] == [f"tuesday.csv@{_sha12(growing)}"]
    assert sensor.tick() == []
    assert sorted(instance.get_dynamic_partitions(INBOX_PARTITIONS.name)) == sorted(
        [f"monday.csv@{_sha12(inbox / 'monday.csv')}", f"tuesday.csv@{_sha12(growing)}",
         f"~weekend.csv@{_sha12(tilde)}"])


def test_the_same_export_dropped_twice_is_registered_once(inbox, instance):
    sensor = Sensor(instance)
    first = drop(inbox, "monday.csv", [line("A1", "76120")])
    assert len(sensor.tick()) == 1
    os.utime(first, ns=(0, 0))  # copied over again, same content
    drop(inbox, "monday-again.csv", [line("A1", "76120")])
    assert sensor.tick() == [] and sensor.tick() == []
    drop(inbox, "monday.csv", [line("A1", "76120"), line("A1", "76000", number=2)])  # a new version
    assert len(sensor.tick()) == 1


def _sha12(path: Path) -> str:
    return file_sha256(path)[:12]


def _register(instance, requests: list[dg.RunRequest]) -> None:
    for request in requests:
        result = dg.materialize([inbox_files], partition_key=request.partition_key, instance=instance)
        assert result.success


def _run_nightly(instance, request: dg.RunRequest, db: Path) -> None:
    result = dg.materialize([*ALL_ASSETS, *PER_RUN_CHECKS], instance=instance, run_config=request.run_config,
                            tags=request.tags, resources=run_resources(str(db)))
    assert result.success


# Two scrubs and a nightly run through Dagster's instance: the slow tier (CI runs it).
@pytest.mark.slow
def test_inbox_and_nightly_run_give_the_findings_of_one_scrub_of_both_files(tmp_path, inbox, instance, db_path,
                                                                              reference_db, monkeypatch):
    reports = tmp_path / "rapports d'été"
    monkeypatch.setenv("CLAIMSCRUB_REPORTS", str(reports))
    rows_radiology = [line("R1", "76120", modifiers="26"), line("R2", "76120", npi="5550001114")]
    rows_procedure = [line("P1", "76120", npi="5550001114"), line("P2", "76000", npi="5550001114"),
                      line("P3", "76120", patient="PY", npi="1234567893")]
    sensor = Sensor(instance)
    drop(inbox, "radiology.csv", rows_radiology)
    drop(inbox, "procedure.csv", rows_procedure, done=False)
    _register(instance, sensor.tick())
    _register(instance, sensor.tick())  # the second look finds procedure.csv complete

    request = nightly_scrub(dg.build_schedule_context(instance=instance, scheduled_execution_time=NIGHT))
    assert isinstance(request, dg.RunRequest)
    assert len(request.run_config["ops"]["raw_claim_rows"]["config"]["files"]) == 2
    dg.validate_run_config(defs.resolve_job_def("scrub_job"), request.run_config)
    _run_nightly(instance, request, db_path)
    batch = request.tags["claimscrub/batch"]
    nightly_flags = read_csv(reports / batch / "flags.csv")

    separate_db = tmp_path / "separate.duckdb"
    separate_db.write_bytes(reference_db.read_bytes())
    by_hand = scrub([inbox / "procedure.csv", inbox / "radiology.csv"], tmp_path / "by-hand", separate_db)
    assert by_hand.exit_code == 0, by_hand.stderr
    # A finding id names its batch: the nightly batch and the command's differ in that only.
    assert [{**f, "finding_id": ""} for f in nightly_flags] == [{**f, "finding_id": ""} for f in by_hand.flags]
    assert {f["rule_id"] for f in nightly_flags if f["claim_id"] == "P1"} >= {"DUP_COMPONENT"}
    # The trend compares nights of this inbox, whatever tonight's files are called; by hand, the file names.
    source = f"inbox {inbox.resolve()}"
    assert json.loads((reports / batch / "summary.json").read_text())["source"] == source
    with duckdb.connect(str(db_path), read_only=True) as con:
        recorded = con.execute("select source from run_history where batch_id = ?", [batch]).fetchall()
    assert recorded == [(source,)]
    assert by_hand.summary["source"] == "files procedure.csv; radiology.csv"

    before = snapshot(db_path)
    assert sensor.tick() == []
    assert isinstance(nightly_scrub(dg.build_schedule_context(instance=instance, scheduled_execution_time=NIGHT)),
                      dg.SkipReason)
    _run_nightly(instance, request, db_path)  # a retry of the same night
    assert snapshot(db_path) == before


# A nightly run that fails and its retry through Dagster's instance: the slow tier (CI runs it).
@pytest.mark.slow
def test_a_nightly_run_that_failed_leaves_no_report_and_its_files_for_the_next_night(inbox, instance, tmp_path,
                                                                                       db_path, monkeypatch):
    sensor = Sensor(instance)
    drop(inbox, "monday.csv", [line("A1", "76120")])
    _register(instance, sensor.tick())
    not_a_folder = tmp_path / "reports"
    not_a_folder.write_text("")  # the report step cannot create its folder here
    monkeypatch.setenv("CLAIMSCRUB_REPORTS", str(not_a_folder))
    request = nightly_scrub(dg.build_schedule_context(instance=instance, scheduled_execution_time=NIGHT))
    result = dg.materialize([*ALL_ASSETS, *PER_RUN_CHECKS], instance=instance, run_config=request.run_config,
                            tags=request.tags, resources=run_resources(str(db_path)),
                            raise_on_error=False)
    assert not result.success
    assert not_a_folder.read_text() == "" and list(tmp_path.glob("*partial*")) == []
    retry = nightly_scrub(dg.build_schedule_context(instance=instance, scheduled_execution_time=NIGHT))
    assert isinstance(retry, dg.RunRequest)
    assert retry.run_config == request.run_config


CROSS_BATCH = {
    # case: (earlier batch's line, new line, rule that flags the new line); each case has a patient of its own,
    # so that one pair of batches holds them all.
    "duplicate": (line("A1", "76120", patient="PX1"), line("B1", "76120", patient="PX1"), "DUP_COMPONENT"),
    "global plus 26": (line("A2", "76120", patient="PX2"),
                       line("B2", "76120", modifiers="26", npi="5550001114", patient="PX2"), "DUP_COMPONENT"),
    "PTP pair": (line("A3", "76120", patient="PX3"), line("B3", "76000", patient="PX3"), "PTP_NO_BYPASS"),
    "units over the MUE for the day": (line("A4", "76120", modifiers="26", patient="PX4"),
                                       line("B4", "76120", modifiers="26", patient="PX4"), "MUE_DOS"),
    # 10005 (MUE 1 a day): the right side sent earlier, the left tonight; no copy to remove.
    "units over the MUE, both sides": (line("A5", "10005", modifiers="RT", patient="PX5"),
                                       line("B5", "10005", modifiers="LT", patient="PX5"), "MUE_DOS"),
}
# What the Worklist tells the biller about the new line: the line sent earlier stays; a global one is
# corrected.
CROSS_BATCH_ACTIONS = {
    "duplicate": ("remove line", "B1 line 1: 76120 repeats A1 line 1: remove this line"),
    "global plus 26": ("keep as billed", "keep this line as billed; A2 line 1 is to be corrected to 76120-TC on a "
                                         "corrected claim (it went out in batch {earlier})"),
    "PTP pair": ("remove line", "B3 line 1: 76000 is bundled into 76120 on A3 line 1 (76120, NPI 1234567893, same "
                                "day, earlier batch {earlier})"),
    "units over the MUE for the day": ("remove line", "B4 line 1: 76120-26 repeats A4 line 1: remove this line"),
    # The day's units count the line of the earlier batch too, as the finding does; it went out first, and holds
    # the day's one unit.
    "units over the MUE, both sides": ("remove line", "(with earlier batch {earlier})) add up to 2, over its MUE "
                                                      "of 1 per day, and the lines before this one bill the 1 it "
                                                      "allows: remove this line"),
}


@pytest.fixture(scope="module")
def cross_batch(tmp_path_factory, reference_db) -> dict:
    """Monday's batch with the earlier lines, Tuesday's with the new ones: judged alone, with history, and
    Monday's again after Tuesday's (through the engine: the history is the judge's and the write stage's; the
    nightly pipeline's own runs are tested above)."""
    snapshots = []
    with module_site(tmp_path_factory, reference_db, "cross-batch") as (work, db):
        monday = write_csv(work / "monday.csv", [earlier for earlier, _, _ in CROSS_BATCH.values()])
        tuesday = write_csv(work / "tuesday.csv", [new for _, new, _ in CROSS_BATCH.values()])
        runs = {"earlier": engine_scrub([monday], work / "monday", db, history=True),
                "alone": engine_scrub([tuesday], work / "alone", db),
                "new": engine_scrub([tuesday], work / "tuesday", db, history=True)}
        snapshots.append(snapshot(db))
        runs["again"] = engine_scrub([monday], work / "monday-again", db, history=True)
        snapshots.append(snapshot(db))
        runs["tuesday again"] = engine_scrub([tuesday], work / "tuesday-again", db, history=True)
        snapshots.append(snapshot(db))
    for run in runs.values():
        assert run.exit_code == 0, run.stderr
    book = load_workbook(runs["new"].out_dir / "denial-risk-report.xlsx")
    return {**runs, "book": book, "snapshots": snapshots}


def _rows(sheet) -> list[dict]:
    header = [c.value for c in sheet[2]]
    return [dict(zip(header, (c.value for c in r))) for r in sheet.iter_rows(min_row=3)]


@pytest.mark.slow  # the cross-batch nights: five scrubs with history
@pytest.mark.parametrize("case", list(CROSS_BATCH))
def test_a_new_line_conflicting_with_an_earlier_batch_is_flagged_naming_that_batch(cross_batch, case):
    earlier_line, new_line, rule = CROSS_BATCH[case]
    earlier, new = cross_batch["earlier"], cross_batch["new"]
    claim, partner = new_line["claim_id"], earlier_line["claim_id"]
    assert rule not in cross_batch["alone"].findings(claim, 1), "without history a batch is judged on its own"

    found = [f for f in new.flags if f["rule_id"] == rule and f["claim_id"] == claim]
    assert found
    assert found[0]["partner_batch"] == earlier.summary["batch_id"]
    assert earlier.summary["batch_id"] in found[0]["message"]
    book = cross_batch["book"]
    if rule != "MUE_DOS":
        assert found[0]["partner_claim_id"] == partner
        shown = _rows(book["Findings"])
        assert [f["Partner line"] for f in shown if f["Rule"] == rule and f["Claim"] == claim] == [
            f"{partner} line 1"]
    to_fix = next(w for w in _rows(book["Worklist"]) if w["Claim"] == claim)
    action, instruction = CROSS_BATCH_ACTIONS[case]
    assert to_fix["Action"] == action
    assert instruction.format(earlier=earlier.summary["batch_id"]) in to_fix["Instruction"]


@pytest.mark.slow  # the cross-batch nights: five scrubs with history
def test_an_earlier_batch_is_not_judged_against_later_ones(cross_batch):
    assert cross_batch["again"].flags == cross_batch["earlier"].flags
    assert cross_batch["earlier"].flags == []


@pytest.mark.slow  # four scrubs
def test_a_claim_sent_again_replaces_its_earlier_version_in_history(tmp_path, db_path):
    # R1 went out Monday and is sent again Tuesday (corrected: another diagnosis); R2 is a new claim repeating it.
    # Q1 went out Monday as a knee replacement (27447: 90 global days) and was corrected Tuesday to an injection
    # (20610: 0 days); Q3, a primary for Wednesday's add-on, was corrected away the same way.
    # S1 went out Monday and is sent again Wednesday with a row that cannot be scrubbed: Monday's S1 is void
    # all the same, and S2 repeats nothing.
    monday = write_csv(tmp_path / "monday.csv", [line("R1", "99213", patient="PR"), line("S1", "76120", patient="PS"),
                                                 line("Q1", "27447", patient="PQ", dos="2024-07-01"),
                                                 line("Q3", "11042", patient="PQ", dos="2024-07-12")])
    resent = {**line("R1", "99213", patient="PR"), "diagnosis_1": "R10.9"}
    tuesday = write_csv(tmp_path / "tuesday.csv", [resent, line("Q1", "20610", patient="PQ", dos="2024-07-01"),
                                                  line("Q3", "11055", patient="PQ", dos="2024-07-12")])
    # A visit nine days after Monday's surgery date, and 11045 (an add-on of 11042) on Q3's day.
    wednesday = write_csv(tmp_path / "wednesday.csv", [line("R2", "99213", patient="PR"),
                                                      {**line("S1", "76120", patient="PS"), "units": 0},
                                                      line("S2", "76120", patient="PS"),
                                                      line("Q2", "99213", patient="PQ", dos="2024-07-10"),
                                                      line("Q4", "11045", patient="PQ", dos="2024-07-12")])
    for name, export in (("monday", monday), ("tuesday", tuesday), ("wednesday", wednesday)):
        run = engine_scrub([export], tmp_path / name, db_path, history=True)
        assert run.exit_code == 0, run.stderr
        if name == "tuesday":
            assert [f for f in run.flags if f["claim_id"] == "R1"] == [], \
                "a claim is never a duplicate of its own earlier version"
    repeats = [f for f in run.flags if f["rule_id"] == "DUP_EXACT"]
    assert [(f["claim_id"], f["partner_claim_id"]) for f in repeats] == [("R2", "R1")]
    # Only Tuesday's version of each claim is history: no surgery's period holds the visit, and the add-on has
    # no primary.
    found = {(f["claim_id"], f["rule_id"]) for f in run.flags}
    assert ("Q2", "GLOBAL_EM_IN_PERIOD") not in found
    assert ("Q4", "AOC_NO_PRIMARY") in found
    assert not [key for key in found if key[0] == "S2"]


@pytest.mark.slow  # four scrubs
def test_the_same_claim_sent_again_unchanged_is_a_second_submission(tmp_path, db_path):
    """A payer denies a claim it already has as a duplicate (CARC 18): the same claim id, patient and rows sent
    again on another night are judged against the first, which names its batch. The night's own file scrubbed
    again is not (it replaces its own rows)."""
    # The first line names its provider as the billing NPI alone.
    rows = [{**line("D1", "99213", patient="PD", npi=""), "billing_npi": "1234567893"},
            line("D1", "73560", patient="PD", number=2)]
    monday = engine_scrub([write_csv(tmp_path / "monday.csv", rows)], tmp_path / "monday", db_path, history=True)
    # The same rows in another order, in a file of their own, written otherwise (the same values read): a date
    # and units in other forms, and the billing NPI as the rendering one too, as an 837P without a rendering
    # provider is read.
    resent = [{**rows[1], "date_of_service": "07/08/2024", "units": "1.0"},
              {**rows[0], "rendering_npi": "1234567893"}]
    tuesday = engine_scrub([write_csv(tmp_path / "tuesday.csv", resent)], tmp_path / "tuesday", db_path,
                           history=True)
    assert monday.exit_code == tuesday.exit_code == 0, tuesday.stderr
    repeats = {(f["line_number"], f["rule_id"]): f for f in tuesday.flags if f["rule_id"].startswith("DUP_")}
    assert set(repeats) == {("1", "DUP_EXACT"), ("2", "DUP_COMPONENT")}
    for found in repeats.values():
        assert (found["partner_claim_id"], found["partner_batch"]) == ("D1", monday.summary["batch_id"])
    # The biller is told the claim went out already, not that D1 line 1 repeats D1 line 1.
    worklist = _rows(load_workbook(tuesday.out_dir / "denial-risk-report.xlsx")["Worklist"])
    assert [(w["Line"], w["Action"]) for w in worklist if w["Claim"] == "D1"] == [(1, "do not send again"),
                                                                                 (2, "do not send again")]
    assert (f"D1 line 1: this line went out already, unchanged, in batch {monday.summary['batch_id']}: do not "
            "send it again") in worklist[0]["Instruction"]
    again = engine_scrub([write_csv(tmp_path / "tuesday.csv", resent)], tmp_path / "again", db_path,
                         history=True)
    assert again.flags == tuesday.flags


@pytest.mark.slow  # two scrubs with history
def test_a_part_sent_again_unchanged_names_its_own_earlier_copy_and_is_not_sent_again(tmp_path, db_path):
    """A radiologist's 76120-26 and another provider's global, both sent again unchanged: the 26 overlaps the
    earlier global and its own earlier copy. It named the global (the earlier batch's first line), and the
    Worklist told the biller to keep it as billed and to correct the global to TC: sent again, the 26 is denied
    as a duplicate of itself."""
    rows = [line("G1", "76120", npi="1234567893", patient="PG"),
            line("P1", "76120", npi="1245319599", modifiers="26", patient="PG")]
    monday = engine_scrub([write_csv(tmp_path / "monday.csv", rows)], tmp_path / "monday", db_path, history=True)
    # Tuesday's export holds another claim too (the same file again would be Monday's export scrubbed again).
    tuesday = engine_scrub([write_csv(tmp_path / "tuesday.csv", [*rows, line("N1", "99213", patient="PN")])],
                           tmp_path / "tuesday", db_path, history=True)
    assert monday.exit_code == tuesday.exit_code == 0, tuesday.stderr
    batch = monday.summary["batch_id"]
    dups = {f["claim_id"]: (f["partner_claim_id"], f["partner_line_number"], f["partner_batch"])
            for f in tuesday.flags if f["rule_id"] == "DUP_COMPONENT"}
    assert dups == {"G1": ("G1", "1", batch), "P1": ("P1", "1", batch)}
    worklist = _rows(load_workbook(tuesday.out_dir / "denial-risk-report.xlsx")["Worklist"])
    assert sorted((w["Claim"], w["Action"]) for w in worklist if w["Claim"] in ("G1", "P1")) == [
        ("G1", "do not send again"), ("P1", "do not send again")]


@pytest.mark.slow  # two scrubs with history
def test_every_line_of_a_claim_sent_again_unchanged_is_told_not_to_be_sent_again(tmp_path, db_path):
    """76120 bundled into 92611 on a claim that went out last night: sent again unchanged, its line was told to go
    for the bundle ("remove line"), as if the claim were a new one to correct, not one the payer already has."""
    rows = [line("B1", "92611", patient="PB"), line("B1", "76120", patient="PB", number=2)]
    monday = engine_scrub([write_csv(tmp_path / "monday.csv", rows)], tmp_path / "monday", db_path, history=True)
    tuesday = engine_scrub([write_csv(tmp_path / "tuesday.csv", [*rows, line("N1", "99213", patient="PN")])],
                           tmp_path / "tuesday", db_path, history=True)
    assert monday.exit_code == tuesday.exit_code == 0, tuesday.stderr
    assert ("2", "PTP_NO_BYPASS") in {(f["line_number"], f["rule_id"]) for f in tuesday.flags
                                      if f["claim_id"] == "B1"}
    worklist = _rows(load_workbook(tuesday.out_dir / "denial-risk-report.xlsx")["Worklist"])
    assert [(w["Line"], w["Action"]) for w in worklist if w["Claim"] == "B1"] == [
        (1, "do not send again"), (2, "do not send again")]


@pytest.mark.slow  # two scrubs with history
def test_a_global_sent_again_beside_another_providers_26_is_told_to_correct_the_copy_that_went_out(
        tmp_path, db_path):
    """The global went out last night; tonight it is sent again unchanged, beside a radiologist's 26. Its row
    said only "do not send it again": the correction to TC of the claim that went out was in the radiologist's
    row alone, which another biller works."""
    global_line = line("G7", "76120", npi="1234567893", patient="PG7")
    monday = engine_scrub([write_csv(tmp_path / "monday.csv", [global_line])], tmp_path / "monday", db_path,
                          history=True)
    tuesday = engine_scrub([write_csv(tmp_path / "tuesday.csv", [global_line, line(
        "R7", "76120", npi="1245319599", modifiers="26", patient="PG7")])], tmp_path / "tuesday", db_path,
        history=True)
    assert monday.exit_code == tuesday.exit_code == 0, tuesday.stderr
    [row] = [w for w in _rows(load_workbook(tuesday.out_dir / "denial-risk-report.xlsx")["Worklist"])
             if w["Claim"] == "G7"]
    assert row["Action"] == "do not send again"
    assert row["Instruction"].endswith("; and R7 line 1 (76120-26, NPI 1245319599, same day) bills the other part: "
                                       "correct the claim that went out to 76120-TC")


@pytest.mark.slow  # two scrubs with history
def test_a_day_whose_mue_an_earlier_batch_used_up_has_tonights_line_removed(tmp_path, db_path):
    """20610 (MUE 2 per day, indicator 3): 2 units went out last night, 1 more tonight. In one batch the later
    line is told to go; across two nights it was told to "correct them to 2 in all", on a line of 1 unit."""
    monday = engine_scrub([write_csv(tmp_path / "monday.csv", [{**line("M1", "20610", patient="PM"), "units": 2}])],
                          tmp_path / "monday", db_path, history=True)
    # Repeated the same day (76): no duplicate of last night's line, but its units count.
    tuesday = engine_scrub([write_csv(tmp_path / "tuesday.csv", [line("M2", "20610", patient="PM", modifiers="76"),
                                                                 {**line("M3", "20610", patient="PN"), "units": 1}])],
                           tmp_path / "tuesday", db_path, history=True)
    assert monday.exit_code == tuesday.exit_code == 0, tuesday.stderr
    assert [(f["claim_id"], f["rule_id"], f["partner_batch"]) for f in tuesday.flags] == [
        ("M2", "MUE_DOS", monday.summary["batch_id"])]
    [row] = [w for w in _rows(load_workbook(tuesday.out_dir / "denial-risk-report.xlsx")["Worklist"])
             if w["Claim"] == "M2"]
    assert row["Action"] == "remove line"
    assert row["Instruction"] == (
        f"M2 line 1: 20610 1 unit(s) here; the patient's units on 2024-07-08 by NPI 1234567893 (M2 line 1 (with "
        f"earlier batch {monday.summary['batch_id']})) add up to 3, over its MUE of 2 per day, and the lines "
        "before this one bill the 2 it allows: remove this line, or appeal with the record if the service was "
        "repeated")


# Three nights: the slow tier (CI runs it).
@pytest.mark.slow
def test_an_export_scrubbed_again_under_another_name_counts_once_in_history(tmp_path, db_path):
    """A renamed copy of Monday's export is that export scrubbed again, not a second submission: judged alone,
    and on Wednesday its lines count once (99213's MUE is 2 a day: Monday's and Tuesday's copies and
    Wednesday's claim would be 3)."""
    monday = write_csv(tmp_path / "monday.csv", [line("K1", "99213", patient="PK")])
    tuesday = tmp_path / "monday-copy.csv"
    tuesday.write_bytes(monday.read_bytes())
    wednesday = write_csv(tmp_path / "wednesday.csv", [line("K2", "99213", patient="PK")])
    runs = [engine_scrub([export], tmp_path / export.stem, db_path, history=True)
            for export in (monday, tuesday, wednesday)]
    assert [run.exit_code for run in runs] == [0, 0, 0], runs[-1].stderr
    assert runs[1].flags == []
    found = {f["rule_id"]: f for f in runs[2].flags}
    assert sorted(found) == ["DUP_EXACT"]
    assert (found["DUP_EXACT"]["partner_claim_id"], found["DUP_EXACT"]["partner_batch"]) == (
        "K1", runs[1].summary["batch_id"])


# Two nights: the slow tier (CI runs it).
@pytest.mark.slow
def test_an_injection_denied_for_a_visit_of_an_earlier_night_names_that_visit_and_its_batch(tmp_path, db_path):
    # 94760 (status T) is paid only when no other service of the provider shares the day: Monday's 99214 is
    # one. The finding named neither it nor its batch, and the biller could not find the other service.
    monday = engine_scrub([write_csv(tmp_path / "monday.csv", [line("V1", "99214", patient="PT")])],
                          tmp_path / "monday", db_path, history=True)
    tuesday = engine_scrub([write_csv(tmp_path / "tuesday.csv", [line("T1", "94760", patient="PT")])],
                           tmp_path / "tuesday", db_path, history=True)
    (found,) = [f for f in tuesday.flags if f["rule_id"] == "STATUS_NOT_PAYABLE"]
    assert found["severity"] == "deny"
    assert (found["partner_claim_id"], found["partner_line_number"], found["partner_batch"]) == (
        "V1", "1", monday.summary["batch_id"])
    assert "Other service that day: 99214 (claim V1 line 1)." in found["message"]


# Three nights: the slow tier (CI runs it).
@pytest.mark.slow
def test_a_surgery_sent_twice_unchanged_is_one_surgery_in_a_visits_global_period_message(tmp_path, db_path):
    # 27447 went out Monday and again Tuesday, unchanged (a second submission): Wednesday's visit lies in one
    # surgery's period, not in "27447 and 1 more surgery line", whose excuse the biller would look for.
    # Tuesday's file writes the date its own way: another file, the same claim as read.
    surgery = [line("S1", "27447", patient="PS", dos="2024-07-01")]
    resent = [line("S1", "27447", patient="PS", dos="07/01/2024")]
    runs = [engine_scrub([write_csv(tmp_path / f"{night}.csv", rows)], tmp_path / night, db_path, history=True)
            for night, rows in (("monday", surgery), ("tuesday", resent),
                                ("wednesday", [line("V1", "99213", patient="PS", dos="2024-07-10")]))]
    (found,) = [f for f in runs[2].flags if f["rule_id"] == "GLOBAL_EM_IN_PERIOD"]
    assert "more surgery line" not in found["message"], found["message"]
    assert found["partner_batch"] == runs[0].summary["batch_id"]


# Four nights: the slow tier (CI runs it).
@pytest.mark.slow
def test_a_renamed_copy_scrubbed_after_a_correction_does_not_bring_the_old_version_back(tmp_path, db_path):
    """Monday's K1 bills 99214; Tuesday corrects it to 99213; a renamed copy of Monday's export is scrubbed
    again. Monday's version stays replaced: Thursday's 99214 for the same patient and day is no copy of it (it
    was denied as one, the copy's claims taken for the newest versions)."""
    monday = write_csv(tmp_path / "monday.csv", [line("K1", "99214", patient="PK")])
    tuesday = write_csv(tmp_path / "tuesday.csv", [line("K1", "99213", patient="PK")])
    copy = tmp_path / "monday (1).csv"
    copy.write_bytes(monday.read_bytes())
    thursday = write_csv(tmp_path / "thursday.csv", [line("K3", "99214", patient="PK")])
    runs = [engine_scrub([export], tmp_path / export.stem.replace(" ", "_"), db_path, history=True)
            for export in (monday, tuesday, copy, thursday)]
    assert [run.exit_code for run in runs] == [0, 0, 0, 0], runs[-1].stderr
    assert runs[3].flags == []
    # The copy itself is judged as Monday's export was: not a duplicate of Tuesday's correction of it.
    assert runs[2].flags == runs[0].flags == []


# Three nights on a database made before the claims each batch sent, or their versions, were kept: the slow
# tier (CI runs it).
@pytest.mark.slow
@pytest.mark.parametrize("made_before", ["drop table claim_sends",
                                         ("alter table claim_sends drop column content; "
                                          "alter table claim_sends drop column patient; "
                                          "drop table claim_sends_content"),
                                         # Contents worked out another way (another version, or DuckDB's).
                                         ("update claim_sends set content = 0; "
                                          "update claim_sends_content set key = 'another way'")])
def test_a_claim_id_sent_for_another_patient_is_another_claim_on_a_database_made_before(tmp_path, db_path,
                                                                                        made_before):
    # M1 went out Monday as P3's knee replacement; Tuesday's M1 is P4's (an id used again for another patient,
    # or a claim sent under the wrong patient, which stays on that patient's record until it is voided). C1
    # went out Monday as P3's knee replacement too and was corrected Tuesday to an injection (20610: 0 days).
    # The database then loses what it kept of the sends, as one made before them. Wednesday P3's visit V3 is in
    # Monday's M1's period, P4's visit V4 in Tuesday's; P3's visit V5 is in no period: C1 was corrected.
    surgery = {"patient": "P3", "dos": "2024-07-01"}
    nights = [[line("M1", "27447", **surgery), line("C1", "27447", patient="P3", dos="2024-11-01")],
              [line("M1", "27447", **{**surgery, "patient": "P4"}),
               line("C1", "20610", patient="P3", dos="2024-11-01")],
              [line("V3", "99213", patient="P3", dos="2024-07-09"),
               line("V4", "99213", patient="P4", dos="2024-07-09"),
               line("V5", "99213", patient="P3", dos="2024-11-05")]]
    batches = []
    for number, rows in enumerate(nights):
        run = engine_scrub([write_csv(tmp_path / f"night{number}.csv", rows)], tmp_path / f"out{number}", db_path,
                           history=True)
        assert run.exit_code == 0, run.stderr
        batches.append(run.summary["batch_id"])
        if number == 1:
            with duckdb.connect(str(db_path)) as con:
                con.execute(made_before)
    found = {(f["claim_id"], f["rule_id"]): f for f in run.flags}
    assert {key for key in found if key[0] in ("V3", "V4", "V5")} == {("V3", "GLOBAL_EM_IN_PERIOD"),
                                                                      ("V4", "GLOBAL_EM_IN_PERIOD")}
    assert (found[("V3", "GLOBAL_EM_IN_PERIOD")]["partner_claim_id"],
            found[("V3", "GLOBAL_EM_IN_PERIOD")]["partner_batch"]) == ("M1", batches[0])
    assert found[("V4", "GLOBAL_EM_IN_PERIOD")]["partner_batch"] == batches[1]


# How earlier releases stored claim lines: a table of their own, and raw rows without the scrubbable mark.
OLD_LINE_STORE = """
create table old_lines as select * from claim_lines;
drop view claim_lines;
alter table old_lines rename to claim_lines;
alter table raw_claim_rows drop column scrubbable;
"""


# Two scrubs around a migration of the store: the slow tier (CI runs it).
@pytest.mark.slow
def test_a_database_that_stored_claim_lines_as_a_table_still_judges_against_them(tmp_path, db_path):
    monday = [line("A1", "76120", patient="P1"), {**line("A9", "76120", patient="P2"), "units": "x"}]
    earlier = scrub([write_csv(tmp_path / "monday.csv", monday)], tmp_path / "monday", db_path, "--history")
    assert [q["claim_id"] for q in earlier.quarantine] == ["A9"]
    with duckdb.connect(str(db_path)) as con:
        con.execute(OLD_LINE_STORE)

    tuesday = [line("B1", "76120", patient="P1"), line("B2", "76120", patient="P2")]
    new = scrub([write_csv(tmp_path / "tuesday.csv", tuesday)], tmp_path / "tuesday", db_path, "--history")
    assert new.exit_code == 0, new.stderr
    duplicates = [(f["claim_id"], f["partner_claim_id"]) for f in new.flags if f["rule_id"] == "DUP_COMPONENT"]
    # B2's twin on Monday was quarantined: it is not a claim line, then or now.
    assert duplicates == [("B1", "A1")]
    with duckdb.connect(str(db_path), read_only=True) as con:
        kept = con.execute("select claim_id from claim_lines where batch_id = ?",
                           [earlier.summary["batch_id"]]).fetchall()
    assert kept == [("A1",)]
    assert scrub([tmp_path / "monday.csv"], tmp_path / "monday-again", db_path, "--history").flags == earlier.flags


@pytest.mark.slow  # the cross-batch nights: five scrubs with history
def test_running_every_batch_twice_gives_the_same_tables(cross_batch):
    after_both, after_monday_again, after_tuesday_again = cross_batch["snapshots"]
    assert after_monday_again == after_both
    assert after_tuesday_again == after_both
    assert any("Earlier batch" in row for row in after_both["line_flags"])
    assert cross_batch["tuesday again"].flags == cross_batch["new"].flags


# A nightly run and a feedback run through Dagster's instance: the slow tier (CI runs it).
@pytest.mark.slow
def test_an_835_in_the_inbox_is_loaded_once_and_refreshes_the_payer_feedback(tmp_path, inbox, instance, db_path):
    claims = [line("F1", "92611"), line("F1", "76120", number=2)]
    for row in claims:
        row.update(charge="120.00", payer="ACME HEALTH")
    sensor = Sensor(instance)
    drop(inbox, "claims.csv", claims)
    _register(instance, sensor.tick())
    _run_nightly(instance, nightly_scrub(dg.build_schedule_context(instance=instance,
                                                                   scheduled_execution_time=NIGHT)), db_path)
    write_835(inbox / "remit.835", claims, {("F1", 2): [("CO", "97")]})
    (inbox / "remit.835.done").touch()
    _register(instance, sensor.tick())

    requests = list(remittance_sensor(dg.build_sensor_context(instance=instance)).run_requests)
    assert len(requests) == 1 and requests[0].run_key.startswith("remit.835@")
    later = nightly_scrub(dg.build_schedule_context(instance=instance, scheduled_execution_time=NIGHT))
    assert isinstance(later, dg.SkipReason)  # an 835 is not a claim export to scrub
    result = dg.materialize(FEEDBACK_ASSETS, instance=instance, run_config=requests[0].run_config,
                            resources=run_resources(str(db_path)))
    assert result.success
    feedback = Path(os.environ["CLAIMSCRUB_HOME"]) / "reports" / "payer-feedback"
    outcomes = {r["rule_id"]: r for r in read_csv(feedback / "rule_outcomes.csv")}
    assert (outcomes["PTP_NO_BYPASS"]["flagged_lines"], outcomes["PTP_NO_BYPASS"]["denied_lines"]) == ("1", "1")


def _batch_of(request: dg.RunRequest) -> dict:
    """The night's batch configuration: the op config that names its files."""
    return next(op["config"] for op in request.run_config["ops"].values() if "set_aside_files" in op["config"])


def test_versions_of_a_file_due_for_one_night_are_one_whatever_night_reads_them(inbox, instance):
    """A file corrected the same day, its night's run failed: the next night took both versions (only those of
    the last 24 hours were compared), and quarantined the correction's lines as repeats of the stale ones. A
    system that writes claims.csv every day sends different exports of one name on different days: both go."""
    sensor = Sensor(instance)
    yesterday = datetime.now(timezone.utc).replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(days=2)
    registered = []
    for name, rows, when in [
            ("corr.csv", [line("K1", "76120", patient="PK")], yesterday),
            ("corr.csv", [line("K1", "76000", patient="PK")], yesterday + timedelta(minutes=5)),
            ("daily.csv", [line("D1", "76120", patient="PD")], yesterday - timedelta(days=1)),
            ("daily.csv", [line("D2", "76120", patient="PE")], yesterday + timedelta(hours=1))]:
        drop(inbox, name, rows)
        requests = sensor.tick()
        _register(instance, requests)
        archived = archived_file(requests[0].partition_key)
        os.utime(archived, (when.timestamp(), when.timestamp()))
        registered.append(archived)
    # The night after them failed; tonight, more than a day after they came, reads them all.
    tonight = yesterday.replace(hour=2) + timedelta(days=2)
    batch = _batch_of(nightly_scrub(dg.build_schedule_context(instance=instance, scheduled_execution_time=tonight)))
    stale, corrected, first_day, second_day = (str(path.resolve()) for path in registered)
    assert batch["set_aside_files"] == [stale] and batch["set_aside_for"] == [corrected]
    assert sorted(batch["files"]) == sorted([corrected, first_day, second_day])


def test_the_nightly_run_prices_at_the_sites_locality(inbox, instance, monkeypatch):
    monkeypatch.setenv("CLAIMSCRUB_LOCALITY", "01112-05")
    sensor = Sensor(instance)
    drop(inbox, "monday.csv", [line("A1", "76120")])
    _register(instance, sensor.tick())
    request = nightly_scrub(dg.build_schedule_context(instance=instance, scheduled_execution_time=NIGHT))
    assert request.run_config["ops"]["priced_lines"]["config"]["default_locality"] == "01112-05"


# Three nights through Dagster's instance: the slow tier (CI runs it).
@pytest.mark.slow
def test_a_file_the_read_refuses_and_a_replaced_version_are_set_aside_and_the_night_goes_on(
        inbox, instance, db_path):
    sensor = Sensor(instance)
    drop(inbox, "good.csv", [line("G1", "76120", patient="PA")])
    # Its header passes registration; the quote opened in its first row is found by the read only.
    (inbox / "quote.csv").write_text("claim_id,line_number,patient_id,date_of_service,hcpcs,units\n"
                                     'Q1,1,PC,2024-07-08,"76120,1\nQ2,1,PD,2024-07-08,99213,1\n')
    (inbox / "quote.csv.done").touch()
    drop(inbox, "claims.csv", [line("A1", "76120", patient="PB"), line("A2", "99214", patient="PB", number=2)])
    (inbox / "no-codes.csv").write_text("claim_id,line_number,patient_id,date_of_service,units\nN1,1,PN,2024-07-08,1\n")
    (inbox / "no-codes.csv.done").touch()
    requests = sensor.tick()
    refused = [r for r in requests if r.partition_key.startswith("no-codes.csv@")]
    assert not dg.materialize([inbox_files], partition_key=refused[0].partition_key, instance=instance,
                              raise_on_error=False).success  # refused at registration, as the UI shows it
    _register(instance, [r for r in requests if r not in refused])
    corrected = drop(inbox, "claims.csv", [line("A1", "76120", patient="PB"),
                                           line("A2", "99213", patient="PB", number=2)])
    os.utime(corrected)  # overwritten later the same day
    (inbox / "claims.csv.done").touch()
    _register(instance, sensor.tick())

    request = nightly_scrub(dg.build_schedule_context(instance=instance, scheduled_execution_time=NIGHT))
    _run_nightly(instance, request, db_path)
    out = Path(request.run_config["ops"]["scrub_report"]["config"]["out_dir"])
    assert sorted((r["source_file"], r["claim_id"], r["hcpcs"]) for r in read_csv(out / "lines.csv")) == [
        ("claims.csv", "A1", "76120"), ("claims.csv", "A2", "99213"), ("good.csv", "G1", "76120")]
    assert read_csv(out / "quarantine.csv") == []
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_read"] == 3
    set_aside = {entry["file"]: entry["reason"] for entry in summary["files_set_aside"]}
    assert set_aside["quote.csv"].startswith("a quote opened in data row 1 is never closed")
    assert set_aside["no-codes.csv"].startswith("not registered: required column missing: hcpcs")
    assert set_aside["claims.csv"].startswith(
        f"replaced by a later version of the same name (sha256 {_sha12(corrected)}…")
    cells = [row[0] for row in load_workbook(out / "denial-risk-report.xlsx", read_only=True)["Summary"]
             .iter_rows(max_row=20, values_only=True) if row and row[0]]
    assert "Not scrubbed: 3 files set aside" in cells
    assert any(c.startswith("quote.csv: a quote opened in data row 1") for c in cells)
    # None comes back the next night: a corrected file is a new version, registered on its own.
    assert isinstance(nightly_scrub(dg.build_schedule_context(instance=instance, scheduled_execution_time=NIGHT)),
                      dg.SkipReason)
    # A night whose only file was refused at registration still says so in its report.
    (inbox / "notes.csv").write_text("name,phone\nA,1\n")
    (inbox / "notes.csv.done").touch()
    assert not dg.materialize([inbox_files], partition_key=sensor.tick()[0].partition_key, instance=instance,
                              raise_on_error=False).success
    request = nightly_scrub(dg.build_schedule_context(instance=instance, scheduled_execution_time=NIGHT))
    _run_nightly(instance, request, db_path)
    summary = json.loads((Path(request.run_config["ops"]["scrub_report"]["config"]["out_dir"]) / "summary.json")
                         .read_text())
    assert (summary["rows_read"], summary["files"]) == (0, [])
    assert [entry["file"] for entry in summary["files_set_aside"]] == ["notes.csv"]
    # A file refused, then an earlier night run again from the UI: the next night still names the file (it
    # looked only for refusals after the newest night, which the run again had become).
    (inbox / "letter.csv").write_text("dear,team\nsee,attached\n")
    (inbox / "letter.csv.done").touch()
    assert not dg.materialize([inbox_files], partition_key=sensor.tick()[0].partition_key, instance=instance,
                              raise_on_error=False).success
    _run_nightly(instance, request, db_path)
    drop(inbox, "friday.csv", [line("F1", "76120", patient="PF")])
    _register(instance, sensor.tick())
    request = nightly_scrub(dg.build_schedule_context(instance=instance, scheduled_execution_time=NIGHT))
    _run_nightly(instance, request, db_path)
    summary = json.loads((Path(request.run_config["ops"]["scrub_report"]["config"]["out_dir"]) / "summary.json")
                         .read_text())
    assert [entry["file"] for entry in summary["files_set_aside"]] == ["letter.csv"]


def test_one_file_the_sensor_cannot_read_or_name_does_not_stop_the_others(inbox, instance, monkeypatch):
    from pipelines import nightly

    drop(inbox, "good.csv", [line("G1", "76120")])
    drop(inbox, "locked.csv", [line("L1", "76120")])
    latin1 = drop(inbox, "r\udce9sum\udce9.csv", [line("R1", "76000")])  # latin-1 bytes, as a share leaves them
    hashed = nightly.file_sha256

    def unreadable(path):
        if path.name == "locked.csv":
            raise PermissionError(13, "Permission denied")
        return hashed(path)

    monkeypatch.setattr(nightly, "file_sha256", unreadable)
    sensor = Sensor(instance)
    keys = sorted(r.partition_key for r in sensor.tick())
    assert keys == sorted([f"good.csv@{_sha12(inbox / 'good.csv')}",
                           f"r\ufffdsum\ufffd.csv@{_sha12(latin1)}"])
    _register(instance, [dg.RunRequest(partition_key=key) for key in keys])
    monkeypatch.setattr(nightly, "file_sha256", hashed)
    assert [r.partition_key for r in sensor.tick()] == [f"locked.csv@{_sha12(inbox / 'locked.csv')}"]


def test_a_done_marker_left_from_an_earlier_version_does_not_vouch_for_the_next(inbox, instance):
    sensor = Sensor(instance)
    drop(inbox, "claims.csv", [line("A1", "76120")])
    assert len(sensor.tick()) == 1
    marker = inbox / "claims.csv.done"
    os.utime(marker, ns=(1_000_000_000, 1_000_000_000))
    copying = drop(inbox, "claims.csv", [line("B1", "76000")], done=False)  # tomorrow's, still being copied
    assert sensor.tick() == []
    assert [r.partition_key for r in sensor.tick()] == [f"claims.csv@{_sha12(copying)}"]


def test_an_empty_file_is_registered_once_it_has_stayed_empty_and_is_refused(inbox, instance):
    sensor = Sensor(instance)
    empty = inbox / "tonight.csv"
    empty.write_bytes(b"")  # the practice system's export ran and wrote nothing
    assert sensor.tick() == [] and sensor.tick() == []  # just created: a copy may not have started writing
    an_hour_ago = time.time() - 3600
    os.utime(empty, (an_hour_ago, an_hour_ago))
    assert sensor.tick() == []
    requests = sensor.tick()
    assert [r.partition_key for r in requests] == [f"tonight.csv@{_sha12(empty)}"]
    registered = dg.materialize([inbox_files], partition_key=requests[0].partition_key, instance=instance,
                                raise_on_error=False)
    assert not registered.success  # refused as empty, and named in the next night's report


def test_a_registered_file_whose_archived_copy_is_gone_does_not_stop_the_schedule(inbox, instance):
    sensor = Sensor(instance)
    drop(inbox, "gone.csv", [line("G1", "76120")])
    drop(inbox, "tonight.csv", [line("T1", "76000")])
    requests = sensor.tick()
    _register(instance, requests)
    gone = next(r.partition_key for r in requests if r.partition_key.startswith("gone.csv@"))
    archived_file(gone).unlink()  # a site cleared its archive by hand
    request = nightly_scrub(dg.build_schedule_context(instance=instance, scheduled_execution_time=NIGHT))
    assert isinstance(request, dg.RunRequest)
    assert sorted(Path(f).name for f in request.run_config["ops"]["raw_claim_rows"]["config"]["files"]) == [
        "gone.csv", "tonight.csv"]  # the read says the first is gone, and scrubs the other


# A nightly run through Dagster's instance: the slow tier (CI runs it).
@pytest.mark.slow
def test_a_version_replaced_by_an_unreadable_one_is_scrubbed_in_its_stead(inbox, instance, db_path):
    sensor = Sensor(instance)
    drop(inbox, "claims.csv", [line("A1", "76120", patient="PB")])
    _register(instance, sensor.tick())
    broken = inbox / "claims.csv"
    broken.write_text("claim_id,line_number,patient_id,date_of_service,hcpcs,units\n"
                      'A1,1,PB,2024-07-08,"76120,1\nA2,1,PB,2024-07-08,76000,1\n')
    os.utime(broken)
    (inbox / "claims.csv.done").touch()
    _register(instance, sensor.tick())
    request = nightly_scrub(dg.build_schedule_context(instance=instance, scheduled_execution_time=NIGHT))
    _run_nightly(instance, request, db_path)
    out = Path(request.run_config["ops"]["scrub_report"]["config"]["out_dir"])
    assert [(r["claim_id"], r["hcpcs"]) for r in read_csv(out / "lines.csv")] == [("A1", "76120")]
    summary = json.loads((out / "summary.json").read_text())
    assert [(e["file"], e["reason"][:28]) for e in summary["files_set_aside"]] == [
        ("claims.csv", "a quote opened in data row 1")]
